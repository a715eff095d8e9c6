//! The real thing, end to end: provision the worker environment from the embedded lock with
//! the project's own code (`litert env setup`: venv, pip from PyPI, verify), then check it
//! with `litert env doctor`, which imports TensorFlow and the LiteRT interpreter in it.
//!
//! The environment goes to the cache every test shares (`target/litert-cache`), so that it
//! is built once per machine (about 2.5 GB; 35 s to 2 min) and reused by every later run and
//! by the `apply` tests. Tests provisioning it at once are serialized by litert's file lock.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{ENV_FILTERS, TestContext, VERSION_FILTER, cache_dir, snapshot};

#[test]
fn provisions_the_real_environment_and_doctor_passes() {
    let cache = cache_dir();
    let ctx = TestContext::new()
        .filter(r"(base Python\s+).*", "${1}[BASE PYTHON]")
        .filters_from(ENV_FILTERS)
        .filter(VERSION_FILTER.0, VERSION_FILTER.1);
    let setup = ctx.litert(&["env", "setup"]);
    // Visible with --nocapture: whether this run provisioned, and how long it took.
    eprintln!("{}", setup.stderr);
    assert_eq!(setup.code, 0, "env setup failed:\n{}", setup.stderr);
    let root = PathBuf::from(setup.stdout.trim());
    assert!(root.starts_with(cache.join("envs")), "{}", root.display());
    assert!(root.join("litert-env.json").is_file());

    let doctor = ctx.litert(&["env", "doctor"]);
    assert_eq!(
        doctor.code, 0,
        "env doctor failed:\n{}{}",
        doctor.stdout, doctor.stderr
    );
    let cache_text = cache.display().to_string();
    let stdout = doctor.stdout.replace(&cache_text, "[CACHE]");
    snapshot!(ctx, stdout);

    let show = ctx.litert(&["env", "show", "--json", "--all"]);
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
