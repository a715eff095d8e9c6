//! `litert inspect` and `litert diff` through the real binary: human output and JSON as insta
//! snapshots, exit codes, and errors.

use crate::support::TestContext;

const DIR: &str = "tests/fixtures/tflite";

/// Run the binary in a scratch copy of the fixtures (and of `Cargo.toml`, a file that is not
/// a model), so paths in the output are the relative ones given.
fn run(args: &[&str]) -> (i32, String, String) {
    let ctx = TestContext::new();
    ctx.copy_tree(DIR).copy("Cargo.toml");
    let out = ctx.litert(args);
    (out.code, out.stdout, out.stderr)
}

fn transcript(args: &[&str]) -> String {
    let (code, stdout, stderr) = run(args);
    format!(
        "$ litert {}\nexit: {code}\n--- stdout\n{stdout}--- stderr\n{stderr}",
        args.join(" ")
    )
}

fn fixture(name: &str) -> String {
    format!("{DIR}/{name}")
}

#[test]
fn inspect_human() {
    for name in [
        "basic",
        "no_signature",
        "appended_zip",
        "outside_buffers",
        "unknown_codes",
    ] {
        let path = fixture(&format!("{name}.tflite"));
        insta::assert_snapshot!(format!("inspect_{name}"), transcript(&["inspect", &path]));
    }
}

#[test]
fn inspect_weights_check() {
    insta::assert_snapshot!(transcript(&[
        "inspect",
        "--weights",
        &fixture("basic.tflite")
    ]));
}

#[test]
fn inspect_json_contract() {
    let (code, stdout, _) = run(&["inspect", "--json", &fixture("basic.tflite")]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for key in [
        "file",
        "size_bytes",
        "schema_version",
        "description",
        "signatures",
        "subgraphs",
        "ops",
        "custom_ops",
        "flex_ops",
        "metadata",
        "min_runtime_version",
    ] {
        assert!(v.get(key).is_some(), "missing top-level key `{key}`");
    }
    let sig = &v["signatures"][0];
    for key in ["key", "subgraph_index", "inputs", "outputs"] {
        assert!(sig.get(key).is_some(), "missing signature key `{key}`");
    }
    let tensor = &sig["inputs"][0]["tensor"];
    assert_eq!(sig["inputs"][0]["name"], "x");
    for key in [
        "index",
        "name",
        "dtype",
        "shape",
        "shape_signature",
        "quantization",
    ] {
        assert!(tensor.get(key).is_some(), "missing tensor key `{key}`");
    }
    let q = &sig["outputs"][0]["tensor"]["quantization"];
    assert!(q.is_null());
    let q = &v["subgraphs"][0]["inputs"][0]["quantization"];
    assert!(q.is_null());
    let sg = &v["subgraphs"][0];
    for key in [
        "index",
        "name",
        "inputs",
        "outputs",
        "operator_count",
        "tensor_count",
        "ops",
    ] {
        assert!(sg.get(key).is_some(), "missing subgraph key `{key}`");
    }
    assert_eq!(v["metadata"][0]["name"], "min_runtime_version");
    assert_eq!(v["metadata"][0]["size_bytes"], 16);
    insta::assert_snapshot!(stdout);
}

#[test]
fn diff_of_changed_model() {
    let a = fixture("basic.tflite");
    let b = fixture("basic_changed.tflite");
    insta::assert_snapshot!(transcript(&["diff", &a, &b]));
    let (code, stdout, _) = run(&["diff", "--json", &a, &b]);
    assert_eq!(code, 1);
    insta::assert_snapshot!("diff_json", stdout);
}

#[test]
fn diff_of_equal_models_exits_zero() {
    let a = fixture("basic.tflite");
    insta::assert_snapshot!(transcript(&["diff", &a, &a]));
    let (code, stdout, _) = run(&["diff", "--json", &a, &a]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["equivalent"], true);
}

#[test]
fn diff_sees_appended_data() {
    let (code, stdout, _) = run(&[
        "diff",
        &fixture("no_signature.tflite"),
        &fixture("appended_zip.tflite"),
    ]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("~ bytes appended after the FlatBuffer 0 -> 22"),
        "{stdout}"
    );
}

#[test]
fn errors_exit_two() {
    insta::assert_snapshot!(
        "inspect_missing",
        transcript(&["inspect", "does/not/exist.tflite"])
    );
    insta::assert_snapshot!("inspect_not_tflite", transcript(&["inspect", "Cargo.toml"]));
    insta::assert_snapshot!(
        "diff_missing",
        transcript(&["diff", &fixture("basic.tflite"), "nope.tflite"])
    );
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.tflite");
    let mut bytes = std::fs::read(crate::support::root().join(fixture("basic.tflite"))).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&broken, bytes).unwrap();
    let (code, _, stderr) = run(&["inspect", broken.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.starts_with("error: cannot inspect `"), "{stderr}");
    assert!(
        stderr.contains("hint: the file is damaged or truncated"),
        "{stderr}"
    );
    let empty = dir.path().join("empty.tflite");
    std::fs::write(&empty, b"").unwrap();
    let (code, _, stderr) = run(&["inspect", empty.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("the file has 0 bytes"), "{stderr}");
}
