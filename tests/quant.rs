//! Quantization end to end: every mode built from one real classifier and verified from the
//! artifact with litert's own reader; calibration sources, sample count, seed and shuffling;
//! data refused before conversion; accuracy against the float model with gates; KerasHub
//! presets made locally (Gemma, BERT, ResNet) in float, dynamic-range and int8.

use std::path::PathBuf;

use crate::support::{TestContext, artifacts, fixture_dir};
use serde_json::Value;

fn digits() -> PathBuf {
    fixture_dir("tests/quant/build_digits.py")
}

fn presets() -> PathBuf {
    fixture_dir("tests/presets/build_presets.py")
}

fn checks(a: &Value) -> Vec<(String, bool)> {
    a["quantization"]["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no quantization checks: {a:#}"))
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_string(),
                c["ok"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn sig_dtypes(a: &Value, side: &str) -> Vec<String> {
    a["artifact"]["signatures"][0][side]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tensor"]["dtype"].as_str().unwrap().to_string())
        .collect()
}

fn weight_dtypes(a: &Value) -> Vec<String> {
    a["artifact"]["weights"]["by_dtype"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// A digest of what the model computes with: every tensor's name, type, shape, quantization
/// and weight bytes. litert's provenance metadata is left out on purpose: it names the
/// variant, so two variants built from the same data differ there and nowhere else.
fn model_digest(path: &str) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let model = litert::tflite::fb::root_as_model(&bytes).expect("a TFLite model");
    let buffers = model.buffers().expect("buffers");
    let mut h = sha2::Sha256::new();
    for sg in model.subgraphs().expect("subgraphs") {
        for t in sg.tensors().expect("tensors") {
            h.update(t.name().unwrap_or_default());
            h.update(t.type_().to_le_bytes());
            h.update(format!(
                "{:?}",
                t.shape().map(|s| s.iter().collect::<Vec<_>>())
            ));
            if let Some(q) = t.quantization() {
                h.update(format!(
                    "{:?}{:?}",
                    q.scale().map(|s| s.iter().collect::<Vec<_>>()),
                    q.zero_point().map(|z| z.iter().collect::<Vec<_>>())
                ));
            }
            if let Some(data) = buffers.get(t.buffer() as usize).data() {
                h.update(data.bytes());
            }
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// One trained classifier in every mode: each artifact is what its mode promises, as read
/// from the file (weights, activations, I/O dtypes and scales), and stays accurate on the
/// held-out split.
#[test]
fn every_mode_is_verified_from_the_artifact() {
    let dir = digits();
    let dir_s = dir.to_string_lossy().into_owned();
    let project = quant_project();
    let out = project.litert_with(
        &["apply", "--json", "tests/quant/digits.yaml"],
        &[("LITERT_QUANT_DIR", &dir_s)],
    );
    let arts = artifacts(&out);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(arts.len(), 8);
    for (id, a) in &arts {
        assert_eq!(a["status"], "built", "{id}");
        assert_eq!(a["quantization"]["enforced"], true, "{id}");
        for (check, ok) in checks(a) {
            assert!(ok, "{id}: {check}");
        }
        // Accuracy on the labels of the held-out split (20% of 1,797 digits).
        let acc = &a["result"]["accuracy"];
        assert_eq!(acc["source"], "data", "{id}");
        assert_eq!(acc["samples"], 359, "{id}");
        let labels = &acc["labels"];
        assert!(
            labels["float_accuracy"].as_f64().unwrap() > 0.95,
            "{id}: {acc:#}"
        );
        assert!(
            labels["artifact_accuracy"].as_f64().unwrap() > 0.95,
            "{id}: {acc:#}"
        );
        assert!(acc["outputs"][0]["top1_agreement"].as_f64().unwrap() >= 0.97);
    }
    let a = |v: &str| &arts[&format!("digits:{v}")];
    let names = |a: &Value| -> Vec<String> { checks(a).into_iter().map(|(c, _)| c).collect() };
    assert_eq!(names(a("fp32")), ["float_weights", "io"]);
    assert_eq!(weight_dtypes(a("fp32")), ["float32"]);
    assert_eq!(
        names(a("dynamic_range")),
        ["int8_weights", "float_activations", "io"]
    );
    // The last layer (64x10 = 640 weights) is under 1,024 elements and stays float32.
    assert_eq!(weight_dtypes(a("dynamic_range")), ["float32", "int8"]);
    assert_eq!(
        names(a("float16")),
        ["float16_weights", "no_int8_weights", "io"]
    );
    assert!(weight_dtypes(a("float16")).contains(&"float16".to_string()));
    assert_eq!(
        names(a("int8_fallback")),
        ["int8_weights", "int8_activations", "io"]
    );
    assert_eq!(
        names(a("full_int8")),
        [
            "int8_weights",
            "no_float_weights",
            "int8_activations",
            "integer_only",
            "io"
        ]
    );
    for (variant, io) in [
        ("full_int8", "float32"),
        ("full_int8_int8_io", "int8"),
        ("full_int8_uint8_io", "uint8"),
        ("int16x8", "float32"),
    ] {
        assert_eq!(sig_dtypes(a(variant), "inputs"), [io], "{variant}");
        assert_eq!(sig_dtypes(a(variant), "outputs"), [io], "{variant}");
    }
    let input = &a("full_int8_int8_io")["artifact"]["signatures"][0]["inputs"][0]["tensor"];
    assert!(input["quantization"]["scale"][0].as_f64().unwrap() > 0.0);
    assert_eq!(
        names(a("int16x8")),
        [
            "int8_weights",
            "no_float_weights",
            "int16_activations",
            "io"
        ]
    );
    assert!(
        a("int16x8")["artifact"]["quantization"]["by_dtype"]["int16"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Calibration took 200 of the 1,437 training samples.
    let cal = &a("full_int8")["result"]["calibration"];
    assert_eq!(
        (
            &cal["source"],
            &cal["available"],
            &cal["used"],
            &cal["held_out"]
        ),
        (
            &Value::from("npz"),
            &Value::from(1438),
            &Value::from(200),
            &Value::from(1238)
        )
    );
    // Size: dynamic range and int8 are about a third of float32 here, float16 about half.
    let size = |v: &str| a(v)["size_bytes"].as_f64().unwrap();
    assert!(size("dynamic_range") / size("fp32") < 0.4);
    assert!((size("float16") / size("fp32") - 0.5).abs() < 0.1);
    assert!(size("full_int8") / size("fp32") < 0.4);
}

/// A mode the model cannot honour is rejected (dynamic range on a model whose weights are
/// all under 1,024 elements), with the reason; raw converter settings are checked too but
/// only warn; an accuracy gate that does not hold rejects the artifact.
#[test]
fn broken_promises_and_failed_gates_reject_the_artifact() {
    let dir = digits();
    let work = TestContext::new();
    std::fs::write(
        work.path().join("r.yaml"),
        format!(
            "version: 1\nname: promises\nmodel: {{keras: {digits}/digits.keras}}\nbatch_size: 1\n\
             output: out/{{{{ variant }}}}.tflite\nvariants:\n\
             \x20 dynamic_range:\n    quantization: {{mode: dynamic_range}}\n    litert_kwargs: {{optimizations: [DEFAULT]}}\n    parity: {{enabled: false}}\n\
             \x20 raw_kwargs:\n    litert_kwargs: {{optimizations: [DEFAULT], _experimental_disable_per_channel: true}}\n    parity: {{enabled: false}}\n\
             \x20 strict_gate:\n    quantization: {{mode: full_int8}}\n    calibration: {{npz: {digits}/calib.npz, samples: 20}}\n    \
             accuracy: {{data: {{npz: {digits}/test.npz}}, labels: label, min_cosine_similarity: 0.9999999}}\n",
            digits = dir.display()
        ),
    )
    .unwrap();
    let out = work.litert(&["apply", "--json", "r.yaml"]);
    let arts = artifacts(&out);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert_eq!(arts["promises:dynamic_range"]["status"], "built");
    let raw = &arts["promises:raw_kwargs"];
    assert_eq!(raw["status"], "built", "{raw:#}");
    assert_eq!(raw["quantization"]["mode"], "dynamic_range");
    assert_eq!(raw["quantization"]["enforced"], false);
    let strict = &arts["promises:strict_gate"];
    assert_eq!(strict["status"], "rejected", "{strict:#}");
    let reasons = strict["reasons"].to_string();
    assert!(reasons.contains("cosine similarity"), "{reasons}");
    assert!(!work.path().join("out/strict_gate.tflite").exists());

    // The keras suite's tiny sequential model: nothing reaches 1,024 elements.
    let suite = fixture_dir("tests/keras_suite/build_models.py");
    let tiny = work.path().join("tiny.yaml");
    std::fs::write(
        &tiny,
        format!(
            "version: 1\nname: tiny\nmodel: {{keras: {}/sequential.keras}}\noutput: out/tiny-{{{{ variant }}}}.tflite\n\
             variants:\n  typed:\n    quantization: {{mode: dynamic_range}}\n  raw:\n    litert_kwargs: {{optimizations: [DEFAULT]}}\n",
            suite.display()
        ),
    )
    .unwrap();
    let out = work.litert(&["apply", "tiny.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("✗ tiny:typed  not written"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("not what `quantization.mode: dynamic_range` promises (int8_weights)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("under 1,024 elements"),
        "{}",
        out.stdout
    );
    // The same settings as raw converter attributes: built, with the failed check as a warning.
    assert!(out.stdout.contains("✓ tiny:raw"), "{}", out.stdout);
    assert!(
        out.stdout.contains("      ! no weight tensor is int8"),
        "{}",
        out.stdout
    );
}

/// npz, npy and a Python generator as calibration sources; the same data and seed give the
/// same model (weights and scales), another seed or no shuffling another; the sample count is honoured.
#[test]
fn calibration_sources_sample_count_seed_and_shuffle() {
    let dir = digits();
    let dir_s = dir.to_string_lossy().into_owned();
    let project = quant_project();
    let out = project.litert_with(
        &[
            "apply",
            "--json",
            "--allow-code",
            "tests/quant/calibration.yaml",
        ],
        &[("LITERT_QUANT_DIR", &dir_s)],
    );
    let arts = artifacts(&out);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let used = |v: &str| {
        let c = &arts[&format!("calib:{v}")]["result"]["calibration"];
        (
            c["source"].as_str().unwrap().to_string(),
            c["used"].as_u64().unwrap(),
        )
    };
    assert_eq!(used("npz_seed0"), ("npz".into(), 50));
    assert_eq!(used("npy"), ("npy".into(), 32));
    assert_eq!(used("generator"), ("generator".into(), 20));
    let file = |v: &str| model_digest(arts[&format!("calib:{v}")]["output"].as_str().unwrap());
    assert_eq!(file("npz_seed0"), file("npz_seed0_again"));
    assert_ne!(file("npz_seed0"), file("npz_seed1"));
    assert_ne!(file("npz_seed0"), file("npz_in_order"));
    for (id, a) in &arts {
        for (check, ok) in checks(a) {
            assert!(ok, "{id}: {check}");
        }
    }
}

/// Data that cannot calibrate is refused before conversion, each error naming its file.
#[test]
fn bad_calibration_data_is_refused_before_conversion() {
    let dir = digits();
    let presets = presets();
    let dir_s = dir.to_string_lossy().into_owned();
    let presets_s = presets.to_string_lossy().into_owned();
    let project = quant_project();
    let out = project.litert_with(
        &[
            "apply",
            "--json",
            "--allow-code",
            "tests/quant/bad_calibration.yaml",
            "tests/presets/bad_calibration.yaml",
        ],
        &[
            ("LITERT_QUANT_DIR", &dir_s),
            ("LITERT_PRESETS_DIR", &presets_s),
        ],
    );
    assert_eq!(out.code, 1);
    let arts = artifacts(&out);
    let mut lines = Vec::new();
    for (id, a) in &arts {
        assert_eq!(a["status"], "failed", "{id}: {a:#}");
        // Data that cannot even be read fails while digesting the build's inputs, before
        // the worker starts; the rest fails in the worker's calibration stage.
        assert!(
            a["stage"] == "calibrate" || a["stage"] == "inputs",
            "{id}: {a:#}"
        );
        let message = a["message"]
            .as_str()
            .unwrap()
            .replace(&dir_s, "[DIGITS]")
            .replace(&presets_s, "[PRESETS]");
        assert!(
            message.contains("[DIGITS]")
                || message.contains("[PRESETS]")
                || message.contains("digits_gen.py"),
            "{id} names no file: {message}"
        );
        lines.push(format!("{id}: {message}"));
    }
    insta::assert_snapshot!(lines.join("\n"));
}

/// KerasHub presets made locally with `save_to_preset`: a Gemma CausalLM (SentencePiece
/// tokenizer trained locally), a BERT classifier (WordPiece vocabulary) and a ResNet image
/// classifier, with the recipe's sequence length / image size as static shapes, in float,
/// dynamic-range and int8 (calibrated on prompts and on a folder of images): no Flex ops,
/// parity and accuracy checked. `full_int8` on BERT is refused: its layer norms stay float.
/// (The real `recipes/gemma_int8.yaml`, a generation export, runs in `tests/generation.rs`.)
#[test]
fn keras_hub_presets_in_every_mode() {
    let presets = presets();
    let presets_s = presets.to_string_lossy().into_owned();
    let project = quant_project();
    let out = project.litert_with(
        &[
            "apply",
            "--json",
            "tests/presets/gemma.yaml",
            "tests/presets/bert.yaml",
            "tests/presets/resnet.yaml",
            "tests/presets/bert_full_int8.yaml",
        ],
        &[("LITERT_PRESETS_DIR", &presets_s)],
    );
    let arts = artifacts(&out);
    assert_eq!(arts.len(), 10);
    for (id, a) in &arts {
        if id == "tiny_bert_full_int8" {
            continue;
        }
        assert_eq!(a["status"], "built", "{id}: {a:#}");
        assert_eq!(
            a["artifact"]["flex_ops"],
            serde_json::json!([]),
            "{id}: Flex ops"
        );
        for input in a["artifact"]["signatures"][0]["inputs"].as_array().unwrap() {
            let shape = &input["tensor"]["shape_signature"];
            assert!(
                shape
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|d| d.as_i64() > Some(0)),
                "{id}: dynamic input {shape}"
            );
        }
        for (check, ok) in checks(a) {
            assert!(ok, "{id}: {check}");
        }
        if a["result"]["parity"].is_object() {
            assert_eq!(a["result"]["parity"]["ok"], true, "{id}");
        }
    }
    let shape = |id: &str| arts[id]["result"]["signature"][0]["shape"].clone();
    assert_eq!(shape("tiny_gemma:int8"), serde_json::json!([1, 16]));
    assert_eq!(shape("tiny_bert:int8"), serde_json::json!([1, 16]));
    assert_eq!(shape("tiny_resnet:int8"), serde_json::json!([1, 32, 32, 3]));
    assert_eq!(
        arts["tiny_gemma:int8"]["result"]["calibration"]["source"],
        "prompts"
    );
    assert_eq!(
        arts["tiny_resnet:int8"]["result"]["calibration"]["available"], 12,
        "every image under the folder, recursively, and nothing else"
    );
    assert_eq!(sig_dtypes(&arts["tiny_resnet:int8"], "inputs"), ["int8"]);
    let bert = &arts["tiny_bert_full_int8"];
    assert_eq!(bert["status"], "rejected", "{bert:#}");
    assert!(
        bert["reasons"].to_string().contains("integer_only"),
        "{bert:#}"
    );
    assert_eq!(out.code, 1);
}

/// `recipes/gemma_int8.yaml` targets the hub preset: offline, it fails at `load` and says
/// how to point it at a local preset.
#[test]
fn gemma_recipe_offline_says_how_to_use_a_local_preset() {
    let project = quant_project();
    let out = project.litert(&["apply", "--json", "recipes/gemma_int8.yaml"]);
    assert_eq!(out.code, 1);
    let a = &artifacts(&out)["gemma_int8"];
    assert_eq!(a["status"], "failed");
    assert_eq!(a["stage"], "load");
    assert!(
        a["message"]
            .as_str()
            .unwrap()
            .contains("cannot download preset `gemma_2b_en`"),
        "{a:#}"
    );
    assert!(
        a["hint"].as_str().unwrap().contains("--set preset=DIR"),
        "{a:#}"
    );
}

/// The quantization and preset recipes (and the Gemma example) in a scratch project, so
/// their lock entries and snapshots stay out of the repository.
fn quant_project() -> TestContext {
    TestContext::scratch(
        &["tests/quant", "tests/presets"],
        &["recipes/gemma_int8.yaml"],
    )
}
