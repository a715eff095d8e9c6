//! What the benchmarks share: the `litert` binary cargo built for them (with the bench,
//! i.e. release, profile), the repository root, the worker's Python interpreter, and the
//! machine's load average to read the figures by. (The tests' presets come from the tests'
//! own `support::fixture_dir`, named by their script's digest.)

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn litert() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_litert"))
}

/// `LITERT_PYTHON`, else the environment litert provisions (provisioning it if needed).
pub fn worker_python() -> String {
    if let Ok(p) = std::env::var("LITERT_PYTHON")
        && !p.is_empty()
    {
        return p;
    }
    // `env setup` prints the environment's path on stdout: keep it off the bench's tables.
    let setup = Command::new(litert())
        .args(["env", "setup"])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("litert env setup");
    assert!(setup.success(), "litert env setup failed");
    let out = Command::new(litert())
        .args(["env", "show", "--json"])
        .output()
        .expect("litert env show");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("env show --json");
    v["python"]
        .as_str()
        .expect("`python` in env show --json")
        .to_string()
}

/// Panic, naming `what` and showing both of its streams, unless the process that gave `out`
/// succeeded: how every bench checks the commands it runs.
pub fn assert_succeeded(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run `cmd` to completion; its stdout, once [`assert_succeeded`].
pub fn output(cmd: &mut Command, what: &str) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_succeeded(&out, what);
    out.stdout
}

/// `/proc/loadavg`'s 1, 5 and 15 minute averages, and the number of cores beside them.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let avg: Vec<&str> = text.split_whitespace().take(3).collect();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{} (1, 5, 15 min) on {cores} cores", avg.join(" / "))
}
