//! The crafted fixtures: they are current, the reader describes each edge case correctly,
//! and no corruption of them (truncation, bit flips, huge lengths) makes the reader panic.

use litert::tflite::model::SignatureSource;
use litert::tflite::{PLACEHOLDER_SIGNATURE_KEY, ReadError, ReadOptions, read_bytes, read_path};

use crate::support::fixtures;

#[test]
fn committed_fixtures_are_current() {
    let dir = fixtures::dir();
    let update = std::env::var_os("LITERT_UPDATE_FIXTURES").is_some();
    for (name, bytes) in fixtures::all() {
        let path = dir.join(name);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == bytes,
            "`{}` is stale; rerun with LITERT_UPDATE_FIXTURES=1",
            path.display()
        );
    }
}

fn read(name: &str) -> litert::tflite::ModelInfo {
    read_path(
        &fixtures::dir().join(name),
        ReadOptions {
            weights_check: true,
            tensors: true,
        },
    )
    .unwrap()
}

#[test]
fn basic_model_is_described() {
    let info = read("basic.tflite");
    assert_eq!(info.schema_version, 3);
    assert_eq!(info.description.as_deref(), Some("MLIR Converted."));
    assert_eq!(info.min_runtime_version.as_deref(), Some("2.6.0"));
    let sig = &info.signatures[0];
    assert_eq!(sig.key, "serving_default");
    assert_eq!(sig.source, SignatureSource::SignatureDef);
    let names: Vec<&str> = sig.inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["x", "mask"]);
    assert_eq!(sig.inputs[0].tensor.shape, [1, 4]);
    assert_eq!(sig.inputs[0].tensor.shape_signature, [-1, 4]);
    assert_eq!(sig.inputs[1].tensor.dtype, "bool");
    // Op codes >= 127 live only in the new field.
    assert_eq!(info.ops.get("CALL_ONCE"), Some(&1));
    assert_eq!(info.ops.get("VAR_HANDLE"), Some(&1));
    assert_eq!(info.custom_ops, ["MyCustomOp"]);
    assert_eq!(info.flex_ops, ["FlexAddV2"]);
    assert_eq!(info.subgraphs.len(), 2);
    assert_eq!(info.subgraphs[1].name.as_deref(), Some("init"));
    assert_eq!(info.quantization.per_channel, 1);
    assert_eq!(info.weights.by_dtype["int8"].bytes, 12);
    assert_eq!(
        info.metadata
            .iter()
            .map(|m| m.size_bytes)
            .collect::<Vec<_>>(),
        [16, 40]
    );
    assert!(info.warnings.iter().any(|w| w.contains("Flex delegate")));
    assert_eq!(info.layout.appended_bytes, 0);
    let check = info.weights_check.unwrap();
    // kernel: 12 elements, 6 zero; bias: 3 zero elements (all-zero); the sparse tensor's
    // stored values are not counted.
    assert_eq!(
        (check.elements, check.zero_elements, check.tensors_skipped),
        (15, 9, 1)
    );
    assert_eq!(check.all_zero_tensors, ["0:4 dense/bias"]);
}

#[test]
fn model_without_signatures_falls_back_to_subgraph_zero() {
    let info = read("no_signature.tflite");
    let sig = &info.signatures[0];
    assert_eq!(sig.key, PLACEHOLDER_SIGNATURE_KEY);
    assert_eq!(sig.source, SignatureSource::Subgraph);
    assert_eq!(sig.inputs[0].name, "input");
    assert_eq!(sig.outputs[0].name, "output");
    // Pre-3a files: only the one-byte code.
    assert_eq!(info.ops.get("CONV_2D"), Some(&1));
    assert_eq!(info.ops.get("DEQUANTIZE"), Some(&1));
    assert_eq!(info.weights.by_dtype["float16"].bytes, 24);
}

#[test]
fn appended_zip_is_found() {
    let plain = read("no_signature.tflite");
    let info = read("appended_zip.tflite");
    assert_eq!(info.layout.appended_bytes, 22);
    assert_eq!(info.layout.appended_kind.as_deref(), Some("zip"));
    assert_eq!(info.layout.flatbuffer_bytes, plain.size_bytes);
}

#[test]
fn buffers_outside_the_flatbuffer_are_resolved() {
    let info = read("outside_buffers.tflite");
    assert_eq!(info.layout.buffers_outside_flatbuffer, 2);
    assert_eq!(info.layout.bytes_outside_flatbuffer, 24 + 16);
    assert!(info.layout.buffer_location_metadata);
    assert_eq!(info.layout.appended_bytes, 0);
    assert_eq!(info.weights.by_dtype["float16"].bytes, 24);
    let check = info.weights_check.unwrap();
    assert_eq!((check.elements, check.zero_elements), (16, 4));
}

#[test]
fn unknown_codes_render_as_unknown() {
    let info = read("unknown_codes.tflite");
    assert_eq!(info.signatures[0].inputs[0].tensor.dtype, "unknown(99)");
    assert_eq!(info.ops.get("unknown(500)"), Some(&1));
}

#[test]
fn short_and_foreign_files_are_errors() {
    for len in 0..8 {
        let bytes = vec![0u8; len];
        assert!(matches!(
            read_bytes(&bytes, "x", ReadOptions::default()),
            Err(ReadError::NotTflite(_))
        ));
    }
    let mut bytes = std::fs::read(fixtures::dir().join("basic.tflite")).unwrap();
    bytes[4..8].copy_from_slice(b"ONNX");
    let err = read_bytes(&bytes, "x", ReadOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "not a LiteRT model: the file identifier is `ONNX`, expected `TFL3`"
    );
    let zeros = vec![0u8; 4096];
    assert!(read_bytes(&zeros, "x", ReadOptions::default()).is_err());
}

/// Every prefix, every single-bit flip, and every aligned word set to a huge length: the
/// reader returns `Ok` or `Err`, never panics (a panic fails the test).
#[test]
fn corrupted_fixtures_never_panic() {
    let opts = ReadOptions {
        weights_check: true,
        tensors: true,
    };
    for (name, bytes) in fixtures::all() {
        for len in 0..bytes.len() {
            let _ = read_bytes(&bytes[..len], name, opts);
        }
        let mut flipped = bytes.clone();
        for i in 0..flipped.len() {
            for bit in 0..8 {
                flipped[i] ^= 1 << bit;
                let _ = read_bytes(&flipped, name, opts);
                flipped[i] ^= 1 << bit;
            }
        }
        for i in (0..bytes.len().saturating_sub(4)).step_by(4) {
            for word in [u32::MAX, 0x7fff_ffff, 0x8000_0000, bytes.len() as u32] {
                let mut patched = bytes.clone();
                patched[i..i + 4].copy_from_slice(&word.to_le_bytes());
                let _ = read_bytes(&patched, name, opts);
            }
        }
    }
}

/// Inputs the fuzzer found to break the reader or the diff, kept so they never do again.
#[test]
fn fuzzer_regressions_do_not_panic() {
    let dir = fixtures::dir().join("regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let opts = ReadOptions {
            weights_check: true,
            tensors: true,
        };
        // A model must always be equivalent to itself (duplicate names once broke that).
        if let Ok(info) = read_bytes(&bytes, "regression", opts) {
            assert!(litert::tflite::diff::diff(&info, &info).equivalent);
        }
        n += 1;
    }
    assert!(n > 0, "no regression inputs in `{}`", dir.display());
}

/// A root offset pointing back at itself, and tables whose offsets form a cycle, must end
/// in a verifier error rather than endless recursion.
#[test]
fn self_referential_offsets_are_rejected() {
    let mut bytes = vec![0u8; 64];
    bytes[4..8].copy_from_slice(b"TFL3");
    assert!(read_bytes(&bytes, "x", ReadOptions::default()).is_err());
    let mut bytes = std::fs::read(fixtures::dir().join("basic.tflite")).unwrap();
    let n = bytes.len();
    for i in (8..n - 4).step_by(4) {
        // uoffset fields pointing 0 bytes ahead (at themselves).
        let saved: [u8; 4] = bytes[i..i + 4].try_into().unwrap();
        bytes[i..i + 4].copy_from_slice(&0u32.to_le_bytes());
        let _ = read_bytes(&bytes, "x", ReadOptions::default());
        bytes[i..i + 4].copy_from_slice(&saved);
    }
}
