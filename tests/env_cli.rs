//! `litert env` through the binary without provisioning anything: help texts, `show` and
//! `doctor` before the environment exists, and the errors for unusable interpreters.

use std::process::Command;

use crate::support::{ENV_FILTERS, TestContext, VERSION_FILTER, snapshot};

/// A context with a private, empty worker cache (`[CACHE]` in outputs) and no base Python
/// from the caller's environment, and the filters of `litert env` output.
fn env_context() -> TestContext {
    TestContext::new()
        .private_cache()
        .env_remove("LITERT_BASE_PYTHON")
        .filters_from(ENV_FILTERS)
        .filter(VERSION_FILTER.0, VERSION_FILTER.1)
}

#[test]
fn help_texts() {
    let ctx = env_context();
    for args in [
        &["env", "--help"][..],
        &["env", "setup", "--help"],
        &["env", "show", "--help"],
        &["env", "doctor", "--help"],
        &["env", "clean", "--help"],
    ] {
        let out = ctx.litert(args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert!(out.stdout.contains("Examples:"), "{args:?}");
        insta::assert_snapshot!(args.join("_").replace("--", ""), out.stdout);
    }
}

#[test]
fn clean_removes_other_locks_environments_only() {
    let ctx = env_context();
    let old = ctx.join("cache").join("envs/0123456789abcdef");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("big"), "x").unwrap();
    let out = ctx.litert(&["env", "clean", "--dry-run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(old.exists());
    let out = ctx.litert(&["env", "clean"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!old.exists());
    insta::assert_snapshot!(out.stderr, @r"
    removed [CACHE]/envs/0123456789abcdef (1 B)
    removed 1 item(s), 1 B
    ");
}

#[test]
fn show_before_provisioning() {
    let ctx = env_context();
    let out = ctx.litert(&["env", "show"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "");
    snapshot!(ctx, out.stdout);
    // Showing never provisions.
    assert!(!ctx.join("cache").join("envs").exists());

    let out = ctx.litert(&["env", "show", "--json", "--all"]);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["provisioned"], false);
    assert_eq!(report["external"], false);
    assert_eq!(report["python_version"], serde_json::Value::Null);
    assert_eq!(report["lock_digest"].as_str().unwrap().len(), 64);
    assert_eq!(
        report["packages"].as_array().unwrap().len(),
        report["pins"].as_u64().unwrap() as usize
    );
}

#[test]
fn doctor_without_an_environment_or_a_base_python() {
    let ctx = env_context();
    let out = ctx.litert_with(
        &["env", "doctor"],
        &[("LITERT_BASE_PYTHON", "/nonexistent/python3")],
    );
    assert_eq!(out.code, 1);
    snapshot!(ctx, out.stdout);

    let out = ctx.litert_with(
        &["env", "doctor", "--json"],
        &[("LITERT_BASE_PYTHON", "/nonexistent/python3")],
    );
    assert_eq!(out.code, 1);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["base Python", "environment"]);
}

#[test]
fn setup_without_a_base_python_says_what_to_do() {
    let ctx = env_context();
    let out = ctx.litert_with(
        &["env", "setup"],
        &[("LITERT_BASE_PYTHON", "/nonexistent/python3")],
    );
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "");
    snapshot!(ctx, out.diagnostic());
}

#[test]
fn an_external_interpreter_that_does_not_exist() {
    let ctx = env_context();
    for args in [&["env", "setup"][..], &["env", "show"]] {
        let out = ctx.litert_with(args, &[("LITERT_PYTHON", "/nonexistent/python3")]);
        assert_eq!(out.code, 1, "{args:?}");
        assert!(
            out.stderr.contains("`/nonexistent/python3` was not found"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("hint: "), "{}", out.stderr);
    }
    // The flag wins over the variable; an empty variable means unset.
    let out = ctx.litert_with(
        &[
            "env",
            "show",
            "--json",
            "--python",
            "/nonexistent/flag-python",
        ],
        &[("LITERT_PYTHON", "")],
    );
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("flag-python"), "{}", out.stderr);
    let out = ctx.litert_with(&["env", "show", "--json"], &[("LITERT_PYTHON", "")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// An interpreter without TensorFlow is refused by `setup`; `doctor` says what is missing.
/// Uses the machine's `python3` (the supported setup has one; CI does).
#[test]
fn an_external_interpreter_without_tensorflow_is_refused() {
    let Some(python) = plain_python() else {
        return;
    };
    let ctx = env_context();
    let out = ctx.litert_with(&["env", "setup"], &[("LITERT_PYTHON", &python)]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("lacks tensorflow, keras, ai-edge-litert"),
        "{}",
        out.stderr
    );
    let out = ctx.litert(&["env", "doctor", "--python", &python]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("✗ package versions"), "{}", out.stdout);
    assert!(out.stdout.contains("- base Python"), "{}", out.stdout);
    // show reports the differences as warnings, and succeeds.
    let out = ctx.litert(&["env", "show", "--python", &python]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.starts_with("warning: "), "{}", out.stderr);
    assert!(
        out.stderr.contains("ai-edge-litert not installed (lock: "),
        "{}",
        out.stderr
    );
}

/// `python3` if it exists and has no TensorFlow (a developer machine might have it).
fn plain_python() -> Option<String> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import importlib.util as u; print(u.find_spec('tensorflow') is None)",
        ])
        .output()
        .ok()?;
    (String::from_utf8_lossy(&out.stdout).trim() == "True").then(|| "python3".to_string())
}
