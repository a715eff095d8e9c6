//! The worker's Python environment for tests (provisioned once per machine into the shared
//! cache, through litert's own `env setup`) and the fixtures built with it: models made by
//! a script from fixed seeds, under `target/`, once per change of the script.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::context::{TestContext, root};

/// The provisioned worker interpreter, provisioning it through litert's own `env setup`
/// on first use.
pub fn worker_python() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let ctx = TestContext::new();
            let setup = ctx.litert(&["env", "setup"]);
            assert_eq!(
                setup.code, 0,
                "litert env setup failed:\n{}\n{}",
                setup.stdout, setup.stderr
            );
            let show = ctx.litert(&["env", "show", "--json"]);
            assert_eq!(show.code, 0, "{}", show.stderr);
            let v: serde_json::Value = serde_json::from_str(&show.stdout).expect("env show --json");
            PathBuf::from(v["python"].as_str().expect("`python` in env show --json"))
        })
        .clone()
}

/// Run `script` with the worker's interpreter, its `litert_worker` package importable and the
/// environment the worker sets up; the script's last stdout line, as JSON.
pub fn worker_json<A: AsRef<std::ffi::OsStr>>(script: &str, args: &[A]) -> serde_json::Value {
    let out = Command::new(worker_python())
        .arg("-c")
        .arg(script)
        .args(args)
        .env("PYTHONPATH", root().join("src/worker/python"))
        .env("KERAS_BACKEND", "tensorflow")
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .env("TF_ENABLE_ONEDNN_OPTS", "0")
        .output()
        .expect("the worker interpreter runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("a JSON last line")
}

/// Run a fixture-building script with the worker interpreter into `out`, once per test
/// run (the script writes `READY` last).
pub fn build_fixtures(script: &str, out: &Path) {
    if out.join("READY").exists() {
        return;
    }
    let status = Command::new(worker_python())
        .arg(root().join(script))
        .arg(out)
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .status()
        .expect("the worker interpreter runs");
    assert!(status.success(), "{script} failed");
}

/// The output directory of a fixture-building script under `target/`, built on first use
/// and rebuilt when the script changes (its digest is in the name).
pub fn fixture_dir(script: &str) -> PathBuf {
    let text = std::fs::read(root().join(script)).expect("fixture script");
    let digest = litert::digest::sha256_hex(&text);
    let short = litert::digest::short(&digest);
    let name = Path::new(script)
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = root()
        .join("target")
        .join(format!("fixtures-{name}-{short}"));
    // Tests run in parallel threads: build each fixture once, not twice into one directory.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUILDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    build_fixtures(script, &dir);
    dir
}
