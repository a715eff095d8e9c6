//! The model kinds the export guide covers beyond classifiers and causal LMs: Gemma 3 with
//! its vision encoder, PaliGemma, a RetinaNet object detector and T5, from tiny local presets
//! built at test time (`tests/kinds/build_presets.py`: random weights, `save_to_preset`, no
//! network) and recipes written as the guide does it (`tests/kinds/*.yaml`). One `apply`
//! builds every kind and variant in one worker; parity and accuracy run on inputs the
//! presets' own preprocessors made (images plus prompts with the vision placeholders where
//! the preprocessor puts them); `litert test` then re-runs each artifact natively on its
//! golden outputs. The multimodal shape rules are also checked without Python, on the cut-down
//! preset configurations in `tests/fixtures/multimodal/`.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::{TestContext, artifacts, fixture_dir, root};

fn presets() -> PathBuf {
    fixture_dir("tests/kinds/build_presets.py")
}

const RECIPES: [&str; 4] = [
    "tests/kinds/gemma3_vision.yaml",
    "tests/kinds/paligemma.yaml",
    "tests/kinds/retinanet.yaml",
    "tests/kinds/t5.yaml",
];

fn shape(a: &Value, input: &str) -> Value {
    a["result"]["signature"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == input)
        .unwrap_or_else(|| panic!("no input `{input}`: {a:#}"))["shape"]
        .clone()
}

/// Every kind, every variant, in one `apply` (one worker): built with builtin ops only and
/// static shapes, parity within tolerance on the preprocessors' data, accuracy gates held,
/// the signature as snapshotted; then `litert test` runs every artifact natively on its
/// golden outputs. A quantized variant left at the default tolerance is rejected with a hint
/// that says how such variants are judged.
#[test]
fn every_kind_exports_from_a_recipe_and_runs_natively() {
    let presets = presets();
    let presets_s = presets.to_string_lossy().into_owned();
    let project = TestContext::scratch(&["tests/kinds"], &[]);
    let env = [("LITERT_KINDS_DIR", presets_s.as_str())];
    let mut args = vec!["apply", "--json", "--allow-code"];
    args.extend(RECIPES);
    args.push("tests/kinds/t5_default_tolerance.yaml");
    args.push("tests/kinds/gemma3_vision_by_factory.yaml");
    args.push("tests/kinds/gemma3_vision_signature.yaml");
    let out = project.litert_with(&args, &env);
    let arts = artifacts(&out);
    assert_eq!(arts.len(), 12, "{}", out.stderr);
    for (id, a) in &arts {
        // The measured errors, for the record (`cargo test kinds:: -- --nocapture`).
        let list = |v: &Value, field: &str| {
            v.as_array()
                .map(|o| {
                    o.iter()
                        .map(|o| {
                            let x = o[field].as_f64().unwrap_or(f64::NAN);
                            format!("{} {x:.3e}", o["name"].as_str().unwrap_or("?"))
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        };
        eprintln!(
            "{id}: {}; parity max|Δ| {}; accuracy min cosine {}",
            a["status"],
            list(&a["result"]["parity"]["outputs"], "max_abs_error"),
            list(&a["result"]["accuracy"]["outputs"], "min_cosine_similarity"),
        );
        if id == "tiny_t5_default_tolerance" {
            continue;
        }
        assert_eq!(a["status"], "built", "{id}: {a:#}");
        assert_eq!(a["artifact"]["flex_ops"], serde_json::json!([]), "{id}");
        for input in a["artifact"]["signatures"][0]["inputs"].as_array().unwrap() {
            let dims = &input["tensor"]["shape_signature"];
            assert!(
                dims.as_array()
                    .unwrap()
                    .iter()
                    .all(|d| d.as_i64() > Some(0)),
                "{id}: dynamic input {dims}"
            );
        }
        let parity = &a["result"]["parity"];
        assert_eq!(parity["ok"], true, "{id}: {parity:#}");
        // Every parity sample is real data from the preset's preprocessor, none random.
        assert_eq!(parity["source"], "accuracy_data", "{id}");
        assert_eq!(parity["random"], 0, "{id}: {parity:#}");
        if id.starts_with("tiny_gemma3_vision_") {
            continue; // the same signature as `tiny_gemma3_vision:fp32`, asserted below
        }
        let model: litert::tflite::model::ModelInfo =
            serde_json::from_value(a["artifact"].clone()).unwrap();
        let text = litert::snapshot::Snapshot::of(id, &model).render();
        insta::assert_snapshot!(format!("signature_{}", id.replace(':', "-")), text);
    }
    // The vision inputs are sized by the preset's preprocessor, the text by the recipe.
    let g = &arts["tiny_gemma3_vision:fp32"];
    assert_eq!(shape(g, "vision_indices"), serde_json::json!([1, 4]));
    assert_eq!(shape(g, "images"), serde_json::json!([1, 1, 32, 32, 3]));
    assert_eq!(shape(g, "token_ids"), serde_json::json!([1, 24]));
    // Loaded without litert seeing the preset's files (as a hub preset is), the worker
    // sizes them the same from the loaded preprocessor.
    let f = &arts["tiny_gemma3_vision_by_factory"];
    assert_eq!(f["result"]["signature"], g["result"]["signature"], "{f:#}");
    // A whole `input_signature` stands as written.
    let w = &arts["tiny_gemma3_vision_signature"];
    assert_eq!(
        shape(w, "vision_indices"),
        serde_json::json!([1, 4]),
        "{w:#}"
    );
    assert_eq!(
        shape(&arts["tiny_paligemma:fp32"], "images"),
        serde_json::json!([1, 32, 32, 3])
    );
    let strict = &arts["tiny_t5_default_tolerance"];
    assert_eq!(strict["status"], "rejected", "{strict:#}");
    let hint = strict["hint"].to_string();
    assert!(
        hint.contains("usually judged by `accuracy` on real data")
            && hint.contains("parity: {tolerance: {\\\"*\\\": {atol: "),
        "{strict:#}"
    );
    assert_eq!(
        out.code, 1,
        "only the default-tolerance variant is rejected"
    );

    // Native runs of every artifact on its golden outputs (the preprocessors' images and
    // prompts, Keras' outputs), with no Python to start.
    let mut args = vec!["test"];
    args.extend(RECIPES);
    let test = project.litert_with(
        &args,
        &[
            env[0],
            ("PATH", "/nonexistent"),
            ("LITERT_BASE_PYTHON", "/nonexistent/python3"),
        ],
    );
    assert_eq!(test.code, 0, "{}\n{}", test.stdout, test.stderr);
    assert_eq!(
        test.stdout
            .matches("golden outputs: 4 sample(s) re-run natively")
            .count(),
        9,
        "{}",
        test.stdout
    );
}

/// For a local multimodal preset, `plan` lists every input's shape and where it came from:
/// the text length from `sequence_length`, images per prompt from the recipe's `images`
/// (one by one), vision tokens from the preset's configuration. `vision_indices` takes no
/// `sequence_length`, so spelling it out with its own length is no conflict.
#[test]
fn multimodal_plans_show_every_input_shape() {
    let project = TestContext::scratch(
        &[
            "tests/fixtures/multimodal",
            "tests/fixtures/multimodal/gemma3_vision_preset",
            "tests/fixtures/multimodal/paligemma_preset",
        ],
        &["recipes/gemma3_vision.yaml"],
    );
    let out = project.litert(&["plan", "tests/fixtures/multimodal/gemma3_one_image.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!("plan_gemma3_one_image", out.stdout);
    let out = project.litert(&["plan", "tests/fixtures/multimodal/paligemma.yaml", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plans: Value = serde_json::from_str(&out.stdout).unwrap();
    insta::assert_json_snapshot!("plan_paligemma_shapes", plans[0]["inputs"]["shapes"]);
    // The example recipe, pointed at a local preset: sized from that preset's files.
    let dir = project.join("tests/fixtures/multimodal/gemma3_vision_preset");
    let set = format!("preset={}", dir.display());
    let out = project.litert(&[
        "plan",
        "recipes/gemma3_vision.yaml",
        "--set",
        &set,
        "--json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plans: Value = serde_json::from_str(&out.stdout).unwrap();
    let shapes = &plans[0]["inputs"]["shapes"];
    let of = |name: &str| {
        shapes
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["shape"]
            .clone()
    };
    assert_eq!(of("images"), serde_json::json!([1, 2, 32, 32, 3]));
    assert_eq!(of("vision_indices"), serde_json::json!([1, 8]));
    assert_eq!(of("vision_mask"), serde_json::json!([1, 1024]));
    // `vision_indices` spelled out at its own length is no `sequence_length` conflict.
    std::fs::write(
        project.join("tests/fixtures/multimodal/two_images.yaml"),
        "version: 1\nmodel: {preset: {path: gemma3_vision_preset, task: CausalLM}}\n\
         sequence_length: 24\ninputs: {vision_indices: {shape: [null, 8], dtype: int32}}\n\
         output: out/two.tflite\n",
    )
    .unwrap();
    let out = project.litert(&["check", "tests/fixtures/multimodal/two_images.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // A whole `input_signature` is held to the same rules, pointed at where it says so.
    std::fs::write(
        project.join("tests/fixtures/multimodal/bad_signature.yaml"),
        "version: 1\nmodel: {preset: {path: gemma3_vision_preset, task: CausalLM}}\n\
         sequence_length: 24\ninput_signature:\n\
         \x20 - {name: token_ids, shape: [1, 24], dtype: int32}\n\
         \x20 - {name: vision_indices, shape: [1, 24], dtype: int32}\n\
         output: out/bad.tflite\n",
    )
    .unwrap();
    let out = project.litert(&["check", "tests/fixtures/multimodal/bad_signature.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("error[E0247]: `vision_indices` of length 24 means 6 images")
            && out.stderr.contains("bad_signature.yaml:6:"),
        "{}",
        out.stderr
    );
    // A hub preset's configuration is not on disk: the worker sizes it when it loads.
    let out = project.litert(&["plan", "recipes/gemma3_vision.yaml", "--json"]);
    let plans: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(plans[0]["inputs"].get("shapes").is_none(), "{:#}", plans[0]);
    assert!(root().join("recipes/retinanet_detector.yaml").is_file());
}
