//! `litert check` and `litert plan` through the real binary: every invalid recipe in the
//! corpus gets its rendered diagnostic snapshotted, every example recipe passes, and the
//! inputs that could exhaust a parser (huge files, bombs, deep nesting) are refused.

use crate::support::{TestContext, root};

#[test]
fn invalid_recipes_render_their_diagnostics() {
    let ctx = TestContext::with_fixtures();
    insta::glob!("fixtures/invalid/[!_]*.yaml", |path| {
        let (rel, out) = ctx.check_fixture(path);
        assert_eq!(out.code, 2, "{rel} should be invalid:\n{}", out.stderr);
        insta::assert_snapshot!(out.diagnostic());
    });
}

#[test]
fn invalid_recipes_as_json() {
    let ctx = TestContext::with_fixtures();
    let out = ctx.litert(&[
        "check",
        "tests/fixtures/invalid/many_errors_at_once.yaml",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 2);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("stdout is JSON");
    insta::assert_json_snapshot!(report);
}

#[test]
fn example_recipes_all_pass_check() {
    let ctx = TestContext::with_fixtures();
    let out = ctx.litert(&["check", "recipes"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("all valid"), "{}", out.stderr);
}

#[test]
fn example_recipes_plan_snapshots() {
    let ctx = TestContext::with_fixtures();
    insta::glob!(root(), "recipes/[!_]*.yaml", |path| {
        let rel = path
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let out = ctx.litert(&["plan", &rel]);
        assert_eq!(out.code, 0, "{rel}:\n{}", out.stderr);
        insta::assert_snapshot!(out.stdout);
    });
}

#[test]
fn plan_json_is_an_array_of_plans() {
    let ctx = TestContext::with_fixtures();
    let out = ctx.litert(&["plan", "recipes/classifier_quant.yaml", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plans: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let plans = plans.as_array().unwrap();
    assert_eq!(plans.len(), 8);
    let int8 = plans
        .iter()
        .find(|p| p["id"] == "classifier:full_int8_int8_io")
        .unwrap();
    assert_eq!(
        int8["converter"]["supported_ops"],
        serde_json::json!(["TFLITE_BUILTINS_INT8"])
    );
    assert_eq!(int8["converter"]["inference_input_type"], "int8");
}

#[test]
fn set_overrides_a_declared_variable() {
    let ctx = TestContext::with_fixtures();
    let out = ctx.litert(&[
        "plan",
        "recipes/gemma_int8.yaml",
        "--set",
        "capacity=512",
        "--json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plans: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plans[0]["generation"]["capacity"], 512);
}

#[test]
fn set_of_an_undeclared_variable_is_an_error() {
    let ctx = TestContext::with_fixtures();
    let out = ctx.litert(&["check", "recipes/gemma_int8.yaml", "--set", "capacty=256"]);
    assert_eq!(out.code, 2);
    insta::assert_snapshot!(out.diagnostic());
}

#[test]
fn set_without_equals_is_a_usage_error() {
    let ctx = TestContext::with_fixtures();
    let out = ctx.litert(&["check", "recipes/gemma_int8.yaml", "--set", "preset"]);
    assert_eq!(out.code, 2);
    insta::assert_snapshot!(out.diagnostic());
}

#[test]
fn offline_preset_points_at_a_local_directory() {
    let ctx = TestContext::with_fixtures();
    let dir = tempfile::tempdir().unwrap();
    let set = format!("preset={}", dir.path().display());
    // A preset name that is a path is a local preset directory, so it must be one.
    let out = ctx.litert(&["check", "recipes/gemma_int8.yaml", "--set", &set]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("E0223"), "{}", out.stderr);
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    // The recipe bundles the preset's tokenizer: a preset without one is refused by name.
    let out = ctx.litert(&["check", "recipes/gemma_int8.yaml", "--set", &set]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("E0318") && out.stderr.contains("vocabulary.spm"),
        "{}",
        out.stderr
    );
    // The Gemma-like fixture preset's tokenizer (bos 2, eos 1, `<end_of_turn>`).
    let spm = dir.path().join("assets/tokenizer/vocabulary.spm");
    std::fs::create_dir_all(spm.parent().unwrap()).unwrap();
    std::fs::copy(
        root().join("tests/fixtures/generation/gemma_preset/assets/tokenizer/vocabulary.spm"),
        &spm,
    )
    .unwrap();
    let out = ctx.litert(&["plan", "recipes/gemma_int8.yaml", "--json", "--set", &set]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plans: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        plans[0]["model"]["preset"]["path"],
        dir.path().display().to_string()
    );
}

#[test]
fn missing_recipe_file() {
    let ctx = TestContext::with_fixtures();
    let out = ctx.litert(&["check", "recipes/no_such_recipe.yaml"]);
    assert_eq!(out.code, 2);
    insta::assert_snapshot!(out.diagnostic());
}

#[test]
fn a_50_megabyte_recipe_is_refused_before_parsing() {
    let ctx = TestContext::new();
    let path = ctx.join("huge.yaml");
    let mut text = String::from("version: 1\nvars:\n  blob: \"");
    text.push_str(&"x".repeat(50 * 1024 * 1024));
    text.push_str("\"\n");
    std::fs::write(&path, text).unwrap();
    let out = ctx.litert(&["check", "huge.yaml"]);
    assert_eq!(out.code, 2);
    insta::assert_snapshot!(out.diagnostic());
}

#[test]
fn a_directory_of_recipes_reports_every_file() {
    let ctx = TestContext::with_fixtures();
    let out = ctx.litert(&["check", "tests/fixtures/invalid", "--format", "json"]);
    assert_eq!(out.code, 2);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let recipes = report["recipes"].as_array().unwrap();
    assert!(recipes.len() >= 40, "{}", recipes.len());
    assert!(
        recipes.iter().all(|r| r["ok"] == false),
        "every corpus file is invalid"
    );
}

/// Two recipe files of one run that define the same artifact id, or write the same output,
/// are refused by `check`, `plan`, `apply` and `test`, with both locations.
#[test]
fn duplicates_across_recipe_files_are_refused_with_both_locations() {
    let ctx = TestContext::new();
    ctx.copy("models/mlp.keras");
    std::fs::create_dir(ctx.join("r")).unwrap();
    let model = ctx.join("models/mlp.keras");
    let recipe = |name: &str, output: &str| {
        format!(
            "version: 1\nname: {name}\nmodel:\n  keras: {}\noutput: ../build/{output}.tflite\n",
            model.display()
        )
    };
    std::fs::write(ctx.join("r/a.yaml"), recipe("mlp", "mlp")).unwrap();
    std::fs::write(ctx.join("r/b.yaml"), recipe("mlp", "other")).unwrap();
    std::fs::write(ctx.join("r/c.yaml"), recipe("third", "mlp")).unwrap();
    let out = ctx.litert(&["check", "r"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let text = out.stderr.replace(&model.display().to_string(), "MODEL");
    insta::assert_snapshot!(text);
    for verb in ["plan", "apply", "test"] {
        let out = ctx.litert(&[verb, "r/a.yaml", "r/c.yaml"]);
        assert_eq!(out.code, 2, "{verb}: {}", out.stderr);
        assert!(
            out.stderr.contains("error[E0233]"),
            "{verb}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("--> r/c.yaml:5:9"),
            "{verb}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("::: r/a.yaml:5:9"),
            "{verb}: {}",
            out.stderr
        );
    }
    assert!(!ctx.join("build").exists());
}

/// Every verb that prints data takes `--json` (`check` and `schema` keep `--format`).
#[test]
fn every_verb_that_prints_data_takes_json() {
    let ctx = TestContext::new();
    for verb in [
        &["check"][..],
        &["plan"],
        &["apply"],
        &["test"],
        &["inspect"],
        &["diff"],
        &["run"],
        &["bench"],
        &["schema"],
        &["snapshot", "list"],
        &["env", "show"],
        &["env", "doctor"],
        &["cache", "status"],
        &["cache", "pull"],
        &["cache", "push"],
    ] {
        let mut args = verb.to_vec();
        args.push("--help");
        let out = ctx.litert(&args);
        assert_eq!(out.code, 0, "{verb:?}: {}", out.stderr);
        assert!(out.stdout.contains("--json"), "{verb:?}:\n{}", out.stdout);
    }
    let ctx = TestContext::with_fixtures();
    let json = ctx.litert(&["check", "recipes/mlp_quickstart.yaml", "--json"]);
    let format = ctx.litert(&["check", "recipes/mlp_quickstart.yaml", "--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    assert_eq!(json.stdout, format.stdout);
    let schema = ctx.litert(&["schema", "--json"]);
    assert_eq!(schema.stdout, ctx.litert(&["schema"]).stdout);
}

/// Run from a subdirectory, verbs find the project upwards (as cargo finds `Cargo.toml`).
#[test]
fn verbs_find_the_project_from_a_subdirectory() {
    let ctx = TestContext::with_fixtures();
    let out = ctx.litert_in(&ctx.join("recipes"), &["check"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("all valid"), "{}", out.stderr);
    let out = ctx.litert_in(&ctx.join("models"), &["check", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let file = report["recipes"][0]["file"].as_str().unwrap();
    assert_eq!(
        std::path::Path::new(file)
            .parent()
            .unwrap()
            .canonicalize()
            .unwrap(),
        ctx.join("recipes").canonicalize().unwrap(),
        "{report:#}"
    );
    // A project without `recipes/` says which project it looked in.
    let bare = TestContext::new();
    std::fs::create_dir(bare.join("sub")).unwrap();
    let out = bare.litert_in(&bare.join("sub"), &["check"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("no `recipes/` directory in this project"),
        "{}",
        out.stderr
    );
}

/// A directory may hold YAML that is not a recipe (a CI workflow): `check DIR` skips it
/// with a note; named explicitly, it is checked.
#[test]
fn check_of_a_directory_skips_yaml_that_is_not_a_recipe() {
    let ctx = TestContext::new();
    ctx.copy("models/mlp.keras");
    std::fs::create_dir(ctx.join("r")).unwrap();
    std::fs::write(
        ctx.join("r/mlp.yaml"),
        "version: 1\nmodel: {keras: ../models/mlp.keras}\noutput: ../build/mlp.tflite\n",
    )
    .unwrap();
    std::fs::write(ctx.join("r/workflow.yaml"), "on: push\njobs: {}\n").unwrap();
    let out = ctx.litert(&["check", "r"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!(out.diagnostic());
    let out = ctx.litert(&["check", "r/workflow.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

/// A model where a recipe was expected is named for what it is, with the verbs that take it.
#[test]
fn a_model_given_as_a_recipe_is_named_a_model() {
    let ctx = TestContext::with_fixtures();
    let out = ctx.litert(&["bench", "models/mlp.keras"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    insta::assert_snapshot!(out.diagnostic());
    let out = ctx.litert(&["check", "models/mlp_legacy.h5"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("`models/mlp_legacy.h5` is a Keras model, not a recipe"),
        "{}",
        out.stderr
    );
}

#[test]
fn snapshot_list_says_when_nothing_is_pending() {
    let ctx = TestContext::with_fixtures();
    let out = ctx.litert(&["snapshot", "list"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.contains("no snapshots are pending review"),
        "{}",
        out.stderr
    );
    let out = ctx.litert(&["snapshot", "list", "--json"]);
    assert_eq!(out.stdout.trim(), "[]");
}
