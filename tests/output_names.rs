//! The artifact's outputs keep the Keras names (as its inputs do), the recipe's `outputs:`
//! renames them, and the report claims a match with Keras only where there is one.

use crate::support::TestContext;

/// The lines of an `apply` report that speak of output names.
fn name_lines(stdout: &str) -> String {
    stdout
        .lines()
        .filter(|l| {
            l.contains("output names") || l.contains("- output `") || l.contains("✗ output `")
        })
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}

fn artifact_outputs(ctx: &TestContext, artifact: &str) -> Vec<String> {
    let inspect = ctx.litert(&["inspect", artifact, "--json"]);
    assert_eq!(inspect.code, 0, "{}", inspect.stderr);
    let info: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    info["signatures"][0]["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn outputs_keep_keras_names_and_the_recipe_renames_them() {
    let ctx = TestContext::new();
    ctx.copy("models/mlp.keras").copy("models/factories.py");
    let recipe = |name: &str, model: &str, rest: &str| {
        std::fs::create_dir_all(ctx.join("recipes")).unwrap();
        std::fs::write(
            ctx.join(format!("recipes/{name}.yaml")),
            format!(
                "version: 1\nname: {name}\nmodel: {model}\noutput: ../build/{name}.tflite\n{rest}"
            ),
        )
        .unwrap();
    };
    // A Functional model whose output layer is `probs`; the same renamed; a subclassed
    // model, which names no output; and a rename of an output the model does not have.
    recipe("keras_names", "{keras: ../models/mlp.keras}", "");
    recipe(
        "renamed",
        "{keras: ../models/mlp.keras}",
        "outputs: {probs: class_probabilities}\n",
    );
    recipe(
        "positional",
        "{factory: {callable: ../models/factories.py:subclassed_mlp}}",
        "input_signature:\n  - {name: features, shape: [1, 10], dtype: float32}\n",
    );
    recipe(
        "unknown",
        "{keras: ../models/mlp.keras}",
        "outputs: {scores: class_scores}\n",
    );

    let mut report = String::new();
    for name in ["keras_names", "renamed", "positional"] {
        let out = ctx.litert(&["apply", "--allow-code", &format!("recipes/{name}.yaml")]);
        assert_eq!(out.code, 0, "{name}:\n{}\n{}", out.stdout, out.stderr);
        report.push_str(&format!("{name}:\n{}\n", name_lines(&out.stdout)));
    }
    assert_eq!(
        artifact_outputs(&ctx, "build/keras_names.tflite"),
        ["probs"]
    );
    assert_eq!(
        artifact_outputs(&ctx, "build/renamed.tflite"),
        ["class_probabilities"]
    );
    assert_eq!(
        artifact_outputs(&ctx, "build/positional.tflite"),
        ["output_0"]
    );

    let unknown = ctx.litert(&["apply", "recipes/unknown.yaml"]);
    assert_eq!(unknown.code, 1, "{}\n{}", unknown.stdout, unknown.stderr);
    let failed = unknown
        .stdout
        .lines()
        .chain(unknown.stderr.lines())
        .find(|l| l.contains("`outputs` names"))
        .unwrap_or_default()
        .trim()
        .to_string();
    report.push_str(&format!("unknown:\n{failed}\n"));
    assert!(!ctx.join("build/unknown.tflite").exists());
    insta::assert_snapshot!(report);
}

/// Two outputs renamed to one name, or to nothing, are refused before anything builds.
#[test]
fn colliding_output_names_are_refused_by_check() {
    let ctx = TestContext::new();
    ctx.copy("models/mlp.keras");
    std::fs::create_dir_all(ctx.join("recipes")).unwrap();
    std::fs::write(
        ctx.join("recipes/clash.yaml"),
        "version: 1\nmodel: {keras: ../models/mlp.keras}\noutput: ../build/clash.tflite\noutputs:\n  a: same\n  b: same\n  c: \"\"\n",
    )
    .unwrap();
    let out = ctx.litert(&["check", "recipes/clash.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    insta::assert_snapshot!(out.stderr);
}
