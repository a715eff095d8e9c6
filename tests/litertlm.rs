//! `.litertlm` bundles written by litert's Rust writer: byte-reproducible, read back by
//! `inspect` and `diff` (JSON and human), refused with a clear error when damaged, read by
//! Google's independent reader (`litertlm_peek`, test venv), and run by Google's LiteRT-LM
//! runtime (`litert_lm.Engine` from the worker environment) on a TensorFlow-made toy
//! prefill/decode model whose greedy output is known in advance.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{self, TestContext, fixture_dir, root, worker_python};
use litert::litertlm::proto::litert_lm::{
    GenericModel, LlmMetadata, LlmModelType, TokenIds, TokenUnion, llm_model_type, token_union,
};
use litert::litertlm::proto::sentencepiece::{ModelProto, TrainerSpec, model_proto};
use litert::litertlm::{self, Bundle, Data, Value, format};
use prost::Message as _;

fn ids(ids: &[i32]) -> TokenUnion {
    TokenUnion {
        token_union: Some(token_union::TokenUnion::TokenIds(TokenIds {
            ids: ids.to_vec(),
        })),
    }
}

fn metadata(start: i32, stops: &[i32], max_tokens: i32) -> LlmMetadata {
    LlmMetadata {
        start_token: Some(ids(&[start])),
        stop_tokens: stops.iter().map(|&s| ids(&[s])).collect(),
        max_num_tokens: max_tokens,
        llm_model_type: Some(LlmModelType {
            model_type: Some(llm_model_type::ModelType::GenericModel(
                GenericModel::default(),
            )),
        }),
        supports_thinking: Some(false),
        supports_function_calling: Some(false),
        ..Default::default()
    }
}

/// A small SentencePiece model proto: `<unk>`, `<s>`, `</s>`, then `▁w0`...
fn spm_bytes(n: usize) -> Vec<u8> {
    let mut pieces = vec!["<unk>".to_string(), "<s>".into(), "</s>".into()];
    pieces.extend((3..n).map(|i| format!("▁w{i}")));
    ModelProto {
        pieces: pieces
            .into_iter()
            .map(|p| model_proto::SentencePiece {
                piece: Some(p),
                score: Some(0.0),
                r#type: None,
            })
            .collect(),
        trainer_spec: Some(TrainerSpec {
            model_type: Some(2),
            ..Default::default()
        }),
    }
    .encode_to_vec()
}

fn small_bundle(model: &Path, stop: i32) -> Bundle {
    let mut b = Bundle::default();
    b.system_metadata
        .push(("Authors".into(), Value::Str("litert tests".into())));
    b.add_prefill_decode_model(model)
        .add_sentencepiece(Data::Bytes(spm_bytes(40)))
        .add_llm_metadata(&metadata(1, &[stop], 64));
    b
}

fn basic_model() -> PathBuf {
    root().join("tests/fixtures/tflite/basic.tflite")
}

#[test]
fn the_same_sections_give_the_same_bytes_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.litertlm"), dir.path().join("b.litertlm"));
    let wa = small_bundle(&basic_model(), 2).write(&a).unwrap();
    let wb = small_bundle(&basic_model(), 2).write(&b).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(wa, wb);
    // Nothing left beside the bundle but the bundles.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);

    let info = litertlm::read_path(&a).unwrap();
    assert_eq!(info.format_version, "1.7.0");
    assert_eq!(info.size_bytes, std::fs::metadata(&a).unwrap().len());
    let uuid = info
        .system_metadata
        .iter()
        .find(|kv| kv.key == "uuid")
        .unwrap();
    assert_eq!(uuid.value, wa.uuid);
    let kinds: Vec<&str> = info.sections.iter().map(|s| s.data_type.as_str()).collect();
    assert_eq!(kinds, ["TFLiteModel", "SP_Tokenizer", "LlmMetadataProto"]);
    for s in &info.sections {
        assert_eq!(s.begin_offset % format::BLOCK_SIZE, 0);
    }
    // The model section holds the model's bytes exactly, and the `.tflite` reader reads it.
    let bytes = std::fs::read(&a).unwrap();
    let m = &info.sections[0];
    assert_eq!(
        &bytes[m.begin_offset as usize..m.end_offset as usize],
        std::fs::read(basic_model()).unwrap()
    );
    assert!(!m.model.as_ref().unwrap().signatures.is_empty());
    let tok = info.sections[1].tokenizer.as_ref().unwrap();
    assert_eq!((tok.kind.as_str(), tok.vocab_size), ("sentencepiece", 40));
    let meta = info.sections[2].llm_metadata.as_ref().unwrap();
    assert_eq!(meta.max_num_tokens, 64);
    assert_eq!(meta.stop_tokens[0].ids.as_deref(), Some(&[2][..]));
    assert_eq!(
        meta.stop_tokens[0].pieces.as_ref().unwrap()[0].as_deref(),
        Some("</s>")
    );
    // basic.tflite is no prefill/decode model, and inspect says so.
    assert!(
        info.problems
            .iter()
            .any(|p| p.contains("no `decode` signature")),
        "{:?}",
        info.problems
    );

    // A different stop token is a different content id.
    let c = dir.path().join("c.litertlm");
    let wc = small_bundle(&basic_model(), 3).write(&c).unwrap();
    assert_ne!(wc.uuid, wa.uuid);
}

#[test]
fn inspect_and_diff_read_bundles() {
    let dir = TestContext::new();
    small_bundle(&basic_model(), 2)
        .write(&dir.path().join("a.litertlm"))
        .unwrap();
    small_bundle(&basic_model(), 3)
        .write(&dir.path().join("b.litertlm"))
        .unwrap();
    let out = dir.litert(&["inspect", "a.litertlm"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!("inspect_bundle", out.stdout);
    let out = dir.litert(&["inspect", "a.litertlm", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["format"], "litertlm");
    assert_eq!(v["sections"][1]["tokenizer"]["vocab_size"], 40);
    assert_eq!(
        v["sections"][2]["llm_metadata"]["stop_tokens"][0]["ids"][0],
        2
    );
    assert_eq!(
        v["sections"][0]["model"]["signatures"][0]["key"],
        "serving_default"
    );

    let same = dir.litert(&["diff", "a.litertlm", "a.litertlm"]);
    assert_eq!(same.code, 0, "{}{}", same.stdout, same.stderr);
    let changed = dir.litert(&["diff", "a.litertlm", "b.litertlm"]);
    assert_eq!(changed.code, 1, "{}", changed.stderr);
    insta::assert_snapshot!("diff_bundle_stop_token", changed.stdout);
    let json = dir.litert(&["diff", "a.litertlm", "b.litertlm", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let kinds: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"system_metadata/uuid"), "{kinds:?}");
    assert!(kinds.contains(&"llm_metadata/stop_tokens"), "{kinds:?}");

    std::fs::copy(basic_model(), dir.path().join("m.tflite")).unwrap();
    let mixed = dir.litert(&["diff", "a.litertlm", "m.tflite"]);
    assert_eq!(mixed.code, 2);
    assert!(
        mixed
            .stderr
            .contains("cannot compare a bundle with a model"),
        "{}",
        mixed.stderr
    );
}

#[test]
fn damaged_bundles_are_refused_clearly() {
    let dir = TestContext::new();
    let good = dir.path().join("good.litertlm");
    small_bundle(&basic_model(), 2).write(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated_preamble", bytes[..20].to_vec()),
        ("truncated_sections", bytes[..bytes.len() - 100].to_vec()),
        ("magic", {
            let mut b = bytes.clone();
            b[0] = b'X';
            b
        }),
        ("major_version", {
            let mut b = bytes.clone();
            b[8] = 2;
            b
        }),
        ("header_end", {
            let mut b = bytes.clone();
            b[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
            b
        }),
    ];
    let mut transcript = String::new();
    for (name, data) in cases {
        let path = dir.path().join(format!("{name}.litertlm"));
        std::fs::write(&path, data).unwrap();
        let out = dir.litert(&["inspect", &format!("{name}.litertlm")]);
        assert_eq!(out.code, 2, "{name}: {}{}", out.stdout, out.stderr);
        transcript.push_str(&format!("## {name}\n{}\n", out.stderr));
    }
    insta::assert_snapshot!("damaged_bundles", transcript);

    // Every single-byte change in the header and every truncation of it: a description or an
    // error, never a panic.
    let header_end = u64::from_le_bytes(bytes[24..32].try_into().unwrap()) as usize;
    for i in 0..header_end {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] ^= flip;
            let _ = litertlm::read_bytes(&b, "flipped");
        }
        let _ = litertlm::read_bytes(&bytes[..i], "truncated");
    }
}

/// The toy model and tokenizer, built once by the worker's TensorFlow.
fn toy() -> PathBuf {
    fixture_dir("tests/litertlm/toy_llm.py")
}

fn toy_bundle(toy: &Path, dest: &Path, stop: i32) {
    let spm = std::fs::read(toy.join("toy.spm")).unwrap();
    let mut b = Bundle::default();
    b.add_prefill_decode_model(&toy.join("toy.tflite"))
        .add_sentencepiece(Data::Bytes(spm))
        .add_llm_metadata(&metadata(1, &[stop], 128));
    b.write(dest).unwrap();
}

fn run_engine(bundle: &Path, toy: &Path, max_new: usize, prompts: &[&str]) -> serde_json::Value {
    let out = Command::new(worker_python())
        .arg(root().join("tests/litertlm/run_engine.py"))
        .arg(bundle)
        .arg(toy.join("toy.spm"))
        .arg(max_new.to_string())
        .args(prompts)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "run_engine.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn litert_lm_runs_our_bundle_and_generates_the_expected_tokens() {
    let toy = toy();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("toy.litertlm");
    toy_bundle(&toy, &bundle, 2);
    let info = litertlm::read_path(&bundle).unwrap();
    assert!(info.problems.is_empty(), "{:?}", info.problems);

    // A short prompt (one prefill_8 chunk) and a long one (more than 32 tokens, so the
    // runtime prefills in several chunks that must land at the right cache slots).
    let short = "the red cat sings";
    let long = "one two three four five six seven eight nine ten red green blue cat dog bird runs sits sings the a one two";
    let v = run_engine(&bundle, &toy, 12, &[short, long]);
    assert_eq!(v["start"], 1);
    assert_eq!(v["stop"], serde_json::json!([[2]]));
    for p in v["prompts"].as_array().unwrap() {
        // The runtime tokenizes with the bundled tokenizer exactly as SentencePiece does.
        assert_eq!(p["ids"], p["sentencepiece_ids"], "{p}");
        assert_eq!(p["expected_ids"].as_array().unwrap().len(), 12, "{p}");
        assert_eq!(p["text"], p["expected_text"], "{p}");
    }
    assert!(v["prompts"][1]["ids"].as_array().unwrap().len() > 32);

    // The stop token comes from our LlmMetadata: make the rule's fourth token a stop token
    // and generation ends before it.
    let fourth = v["prompts"][0]["expected_ids"][3].as_i64().unwrap() as i32;
    let stopping = dir.path().join("stop.litertlm");
    toy_bundle(&toy, &stopping, fourth);
    let v = run_engine(&stopping, &toy, 12, &[short]);
    let p = &v["prompts"][0];
    assert_eq!(p["expected_ids"].as_array().unwrap().len(), 3, "{p}");
    assert_eq!(p["text"], p["expected_text"], "{p}");
}

#[test]
fn googles_reader_reads_our_bundle() {
    if std::env::var_os("LITERT_SKIP_CROSSCHECK").is_some() {
        eprintln!("skipped: LITERT_SKIP_CROSSCHECK is set");
        return;
    }
    let toy = toy();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("toy.litertlm");
    toy_bundle(&toy, &bundle, 2);
    let dump = dir.path().join("dump");
    let out = support::python::litertlm_peek()
        .arg(format!("--litertlm_file={}", bundle.display()))
        .arg(format!("--dump_files_dir={}", dump.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "litertlm_peek failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = litertlm::read_path(&bundle).unwrap();
    let uuid = info
        .system_metadata
        .iter()
        .find(|kv| kv.key == "uuid")
        .unwrap();
    assert!(stdout.contains(uuid.value.as_str().unwrap()), "{stdout}");
    for needle in [
        "TFLiteModel",
        "SP_Tokenizer",
        "LlmMetadataProto",
        "tf_lite_prefill_decode",
        "max_num_tokens: 128",
    ] {
        assert!(
            stdout.contains(needle),
            "`{needle}` missing from:\n{stdout}"
        );
    }
    // The sections it extracts are the bytes we put in.
    let mut dumped: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dump)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    dumped.sort();
    let model = std::fs::read(toy.join("toy.tflite")).unwrap();
    let spm = std::fs::read(toy.join("toy.spm")).unwrap();
    assert!(
        dumped.iter().any(|(_, b)| *b == model),
        "no dumped file equals the model: {:?}",
        dumped.iter().map(|d| &d.0).collect::<Vec<_>>()
    );
    assert!(
        dumped.iter().any(|(_, b)| *b == spm),
        "no dumped file equals the tokenizer"
    );
}
