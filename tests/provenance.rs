//! Every artifact says where it came from in its LiteRT metadata (recipe, plan digest,
//! toolchain), the same on every rebuild, and `inspect` traces it to its lock entry.

use crate::support::TestContext;

#[test]
fn an_artifact_names_its_recipe_plan_and_toolchain() {
    let ctx = TestContext::new();
    ctx.copy("models/mlp.keras");
    std::fs::create_dir_all(ctx.join("recipes")).unwrap();
    std::fs::write(ctx.join("litert.lock"), "").unwrap();
    std::fs::write(
        ctx.join("recipes/mlp.yaml"),
        "version: 1\nname: mlp\nmodel: {keras: ../models/mlp.keras}\noutput: ../build/mlp-{{ variant }}.tflite\nvariants:\n  fp32: {}\n",
    )
    .unwrap();
    let apply = ctx.litert(&["apply", "recipes/mlp.yaml"]);
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);

    let lock = litert::lock::LockFile::read(&ctx.join("litert.lock")).unwrap();
    let entry = &lock.artifacts["mlp:fp32"];
    let inspect = ctx.litert(&["inspect", "build/mlp-fp32.tflite", "--json"]);
    assert_eq!(inspect.code, 0, "{}", inspect.stderr);
    let info: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let p = &info["provenance"];
    assert_eq!(p["artifact"], "mlp:fp32", "{p:#}");
    assert_eq!(p["recipe"], "recipes/mlp.yaml", "{p:#}");
    assert_eq!(p["plan"], entry.inputs.plan.as_str(), "{p:#}");
    assert_eq!(p["toolchain"], entry.inputs.toolchain.as_str(), "{p:#}");
    let names: Vec<&str> = info["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    for name in [
        "litert.artifact",
        "litert.recipe",
        "litert.plan",
        "litert.toolchain",
    ] {
        assert!(names.contains(&name), "{names:?}");
    }

    // The human output traces the file to its lock entry, from anywhere in the project.
    let human = ctx.litert_in(
        &ctx.join("recipes"),
        &["inspect", "../build/mlp-fp32.tflite"],
    );
    assert_eq!(human.code, 0, "{}", human.stderr);
    let section: String = human
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("provenance"))
        .map(|l| format!("{l}\n"))
        .collect();
    let settings = {
        let mut s = insta::Settings::clone_current();
        s.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[plan]");
        s.add_filter(
            r"litert \S+ / worker \S+( / code [0-9a-f]+)?",
            "[toolchain]",
        );
        s.add_filter(r"`[^`]*litert\.lock`", "`[project]/litert.lock`");
        s.add_filter(r"\(sha256 [0-9a-f]{12}\)", "(sha256 [artifact])");
        s
    };
    settings.bind(|| insta::assert_snapshot!(section));

    // A rebuild writes the same bytes, provenance included.
    let first = std::fs::read(ctx.join("build/mlp-fp32.tflite")).unwrap();
    let again = ctx.litert(&["apply", "--force", "--locked", "recipes/mlp.yaml"]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert_eq!(
        std::fs::read(ctx.join("build/mlp-fp32.tflite")).unwrap(),
        first
    );

    // A file changed after the build (here: bytes appended) is not the one the lock records.
    let mut changed = first.clone();
    changed.extend_from_slice(b"appended after the build");
    std::fs::write(ctx.join("elsewhere.tflite"), &changed).unwrap();
    let other = ctx.litert(&["inspect", "elsewhere.tflite"]);
    assert!(
        other
            .stdout
            .contains("has the same recipe plan but other bytes"),
        "{}\n{}",
        other.stdout,
        other.stderr
    );
}
