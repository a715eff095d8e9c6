//! Shared helpers for integration tests: run the real `litert` binary from the repository
//! root, without colour, and capture what it printed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Exit code and stderr in one text, the way a snapshot should show a diagnostic.
    pub fn diagnostic(&self) -> String {
        format!("exit code: {}\n{}", self.code, self.stderr)
    }
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn litert_in(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_litert"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("CI")
        .output()
        .expect("the litert binary runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn litert(args: &[&str]) -> Output {
    litert_in(&root(), args)
}

/// The cache every test shares, so the worker environment is provisioned once per machine
/// (about 2 minutes and 2.5 GB) and reused by every test binary and run.
pub fn cache_dir() -> PathBuf {
    root().join("target").join("litert-cache")
}

/// Run `litert` with the shared worker cache and no progress output.
pub fn litert_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_litert"));
    cmd.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("LITERT_NO_PROGRESS", "1")
        .env("LITERT_CACHE_DIR", cache_dir())
        .env_remove("LITERT_PYTHON")
        .env_remove("CI");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the litert binary runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The provisioned worker interpreter, provisioning it through litert's own `env setup`
/// on first use.
pub fn worker_python() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let setup = litert_env(&root(), &["env", "setup"], &[]);
            assert_eq!(
                setup.code, 0,
                "litert env setup failed:\n{}\n{}",
                setup.stdout, setup.stderr
            );
            let show = litert_env(&root(), &["env", "show", "--json"], &[]);
            assert_eq!(show.code, 0, "{}", show.stderr);
            let v: serde_json::Value = serde_json::from_str(&show.stdout).expect("env show --json");
            PathBuf::from(v["python"].as_str().expect("`python` in env show --json"))
        })
        .clone()
}

/// Run a fixture-building script with the worker interpreter into `out`, once per test
/// binary (the script writes `READY` last).
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

/// Parse `litert apply --json` output into (id -> artifact entry).
pub fn artifacts(out: &Output) -> std::collections::BTreeMap<String, serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "apply --json printed no JSON ({e}):\n{}\n{}",
            out.stdout, out.stderr
        )
    });
    v["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| (a["id"].as_str().unwrap_or_default().to_string(), a.clone()))
        .collect()
}

/// A scratch project (its own `.git` root, so its `litert.lock` and `snapshots/` stay out
/// of the repository) holding copies of the named repository files and of every file
/// directly inside the named directories, at the same relative paths.
pub fn scratch(dirs: &[&str], files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join(".git")).expect(".git");
    let mut all: Vec<String> = files.iter().map(|f| f.to_string()).collect();
    for d in dirs {
        for entry in std::fs::read_dir(root().join(d))
            .expect("fixture dir")
            .flatten()
        {
            if entry.path().is_file() {
                all.push(format!("{d}/{}", entry.file_name().to_string_lossy()));
            }
        }
    }
    for rel in all {
        let dest = dir.path().join(&rel);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(root().join(&rel), &dest).unwrap_or_else(|e| panic!("copy {rel}: {e}"));
    }
    dir
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

/// A scratch copy of the repository's example project (`recipes/`, `models/`, `data/`,
/// `snapshots/`, `litert.lock`), with its own `.git` root: tests that apply the examples
/// work here, so the checkout's lock, snapshots and `build/` stay as committed.
pub fn example_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join(".git")).expect(".git");
    for d in ["recipes", "models", "data", "snapshots", "schemas"] {
        copy_tree(&root().join(d), &dir.path().join(d));
    }
    std::fs::copy(root().join("litert.lock"), dir.path().join("litert.lock")).expect("lock");
    dir
}

/// Copy a directory tree (files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let (src, dest) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dest);
        } else {
            std::fs::copy(&src, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        }
    }
}

/// `litert check` on a corpus file, named relative to the repository (as its snapshot shows
/// it). Whatever the file holds, `check` must not panic.
pub fn check_fixture(path: &Path) -> (String, Output) {
    let rel = path
        .strip_prefix(root())
        .expect("fixture inside the repository")
        .to_string_lossy()
        .into_owned();
    let out = litert(&["check", &rel]);
    assert!(
        !out.stderr.contains("panicked"),
        "{rel} panicked:\n{}",
        out.stderr
    );
    (rel, out)
}
