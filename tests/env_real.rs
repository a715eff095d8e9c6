//! The real thing, end to end: provision the worker environment from the embedded lock with
//! the project's own code (`litert env setup`: venv, pip from PyPI, verify), then check it
//! with `litert env doctor`, which imports TensorFlow and the LiteRT interpreter in it.
//!
//! The environment goes to a shared, stable cache so that it is built once per machine
//! (about 2.5 GB; 35 s to 2 min) and reused by every later run and by the `apply` tests:
//! `LITERT_CACHE_DIR` when set, else `<repo>/target/litert-cache` ([`test_cache_dir`]).
//! Concurrent test binaries provisioning it at once are serialized by litert's file lock.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Output;

/// The cache directory the real-environment tests share.
fn test_cache_dir() -> PathBuf {
    std::env::var_os("LITERT_CACHE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| common::root().join("target").join("litert-cache"))
}

fn litert(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_litert"))
        .args(args)
        .current_dir(common::root())
        .env("NO_COLOR", "1")
        .env("LITERT_CACHE_DIR", test_cache_dir())
        .env_remove("LITERT_PYTHON")
        .env_remove("CI")
        .output()
        .expect("the litert binary runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn provisions_the_real_environment_and_doctor_passes() {
    let cache = test_cache_dir();
    let setup = litert(&["env", "setup"]);
    // Visible with --nocapture: whether this run provisioned, and how long it took.
    eprintln!("{}", setup.stderr);
    assert_eq!(setup.code, 0, "env setup failed:\n{}", setup.stderr);
    let root = PathBuf::from(setup.stdout.trim());
    assert!(root.starts_with(cache.join("envs")), "{}", root.display());
    assert!(root.join("litert-env.json").is_file());

    let doctor = litert(&["env", "doctor"]);
    assert_eq!(
        doctor.code, 0,
        "env doctor failed:\n{}{}",
        doctor.stdout, doctor.stderr
    );
    let cache_text = cache.display().to_string();
    let stdout = doctor.stdout.replace(&cache_text, "[CACHE]");
    insta::with_settings!({filters => vec![
        (r"(base Python\s+).*", "${1}[BASE PYTHON]"),
        (r"\b[0-9a-f]{16}\b", "[DIGEST16]"),
        (r"\d+(\.\d+)? [kKMGT]?i?B free", "[SIZE] free"),
        (r"\b\d+\.\d+s\b", "[TIME]"),
        (r"\b\d+ pins\b", "[N] pins"),
        (r"\b\d+(\.\d+)+\b", "[V]"),
    ]}, {
        insta::assert_snapshot!(stdout);
    });

    let show = litert(&["env", "show", "--json", "--all"]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    let report: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(report["provisioned"], true);
    assert_eq!(report["external"], false);
    for package in report["packages"].as_array().unwrap() {
        assert_eq!(package["installed"], package["lock"], "{package}");
    }

    // The environment's interpreter runs TensorFlow, through the command the worker will use.
    let python = report["python"].as_str().unwrap();
    let out = Command::new(python)
        .args(["-I", "-c", "import tensorflow as tf; print(tf.__version__)"])
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .output()
        .unwrap();
    let tf = report["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "tensorflow")
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        tf["lock"].as_str().unwrap()
    );
}
