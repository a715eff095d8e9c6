//! `litert init`: a starter recipe from what Keras declares, which `check` accepts and
//! `apply` builds as written, never written over an existing file.

use crate::support::TestContext;

#[test]
fn init_writes_a_recipe_that_checks_and_builds() {
    let ctx = TestContext::new();
    ctx.copy("models/mlp.keras");
    let out = ctx.litert(&["init", "models/mlp.keras"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "recipes/mlp.yaml\n");
    let recipe = std::fs::read_to_string(ctx.join("recipes/mlp.yaml")).unwrap();
    insta::assert_snapshot!(recipe);

    let check = ctx.litert(&["check", "recipes/mlp.yaml"]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    let apply = ctx.litert(&["apply", "recipes/mlp.yaml"]);
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    assert!(ctx.join("build/mlp.tflite").is_file());
    // The artifact keeps the Keras output name, and the report says so.
    assert!(
        apply.stdout.contains("✓ input names match the Keras model")
            && apply
                .stdout
                .contains("✓ output names are the Keras model's: `probs`"),
        "{}",
        apply.stdout
    );
    let inspect = ctx.litert(&["inspect", "build/mlp.tflite", "--json"]);
    let info: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let input = &info["signatures"][0]["inputs"][0];
    assert_eq!(input["name"], "pixels", "{info:#}");
    assert_eq!(
        info["signatures"][0]["outputs"][0]["name"], "probs",
        "{info:#}"
    );
    assert_eq!(
        input["tensor"]["shape_signature"],
        serde_json::json!([1, 28, 28]),
        "{info:#}"
    );

    // Never over an existing recipe, even an edited one.
    std::fs::write(ctx.join("recipes/mlp.yaml"), "# mine\n").unwrap();
    let again = ctx.litert(&["init", "models/mlp.keras"]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(
        std::fs::read_to_string(ctx.join("recipes/mlp.yaml")).unwrap(),
        "# mine\n"
    );
}

/// A legacy `.h5` file and a SavedModel directory, from a subdirectory of the project.
#[test]
fn init_takes_h5_files_and_saved_models() {
    let ctx = TestContext::new();
    ctx.copy("models/mlp_legacy.h5");
    ctx.copy_tree("models/mlp_saved_model");
    let models = ctx.join("models");
    for (model, recipe) in [
        ("mlp_legacy.h5", "recipes/mlp_legacy.yaml"),
        ("mlp_saved_model", "recipes/mlp_saved_model.yaml"),
    ] {
        let out = ctx.litert_in(&models, &["init", model]);
        assert_eq!(out.code, 0, "{model}: {}", out.stderr);
        let check = ctx.litert(&["check", recipe]);
        assert_eq!(check.code, 0, "{model}: {}", check.stderr);
    }
    let h5 = std::fs::read_to_string(ctx.join("recipes/mlp_legacy.yaml")).unwrap();
    assert!(h5.contains("  h5: ../models/mlp_legacy.h5\n"), "{h5}");
    let sm = std::fs::read_to_string(ctx.join("recipes/mlp_saved_model.yaml")).unwrap();
    assert!(
        sm.contains("  saved_model: ../models/mlp_saved_model\n"),
        "{sm}"
    );
}

/// What is not a Keras model is refused before Python starts.
#[test]
fn init_refuses_what_it_cannot_start_from() {
    let ctx = TestContext::new();
    std::fs::write(ctx.join("model.tflite"), b"x").unwrap();
    std::fs::create_dir(ctx.join("empty")).unwrap();
    let no_python = [("LITERT_PYTHON", "/nonexistent/python3")];
    for (args, needle) in [
        (
            &["init", "missing.keras"][..],
            "no model at `missing.keras`",
        ),
        (&["init", "model.tflite"], "is already a LiteRT model"),
        (&["init", "empty"], "neither a SavedModel"),
        (
            &["init", "empty", "--name", "Bad Name"],
            "not a valid recipe name",
        ),
    ] {
        let out = ctx.litert_with(args, &no_python);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
}
