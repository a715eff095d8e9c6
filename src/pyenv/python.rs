//! Asking a Python interpreter about itself: its version, whether it can make virtual
//! environments, which package versions it has, and whether (and how fast) modules import.
//! One embedded script (`query.py`) answers with a single JSON line on a protected stdout.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::Deserialize;

/// The query script, run with `python -c`.
pub const QUERY_PY: &str = include_str!("query.py");

/// What the query script reports; the optional parts depend on the mode asked for.
#[derive(Debug, Clone, Deserialize)]
pub struct Interp {
    pub python_version: String,
    pub implementation: String,
    pub executable: String,
    #[serde(default)]
    pub venv: Option<bool>,
    #[serde(default)]
    pub ensurepip: Option<bool>,
    /// Distribution name (as asked) -> installed version, `None` when not installed.
    #[serde(default)]
    pub packages: BTreeMap<String, Option<String>>,
    /// Top-level module -> whether it can be found (without importing it).
    #[serde(default)]
    pub modules: BTreeMap<String, bool>,
    #[serde(default)]
    pub imports: Vec<ImportResult>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ImportResult {
    pub module: String,
    pub ok: bool,
    pub seconds: f64,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub traceback: Vec<String>,
}

/// Why an interpreter could not answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("`{0}` was not found")]
    NotFound(String),
    #[error("cannot run `{0}`: {1}")]
    Spawn(String, io::Error),
    #[error("`{python}` did not answer ({status}){stderr}")]
    Failed {
        python: String,
        status: String,
        stderr: String,
    },
}

/// A command for `python` with the settings every litert-run Python gets: TensorFlow as the
/// Keras backend whatever the user's `KERAS_BACKEND` says (the worker only supports it), and
/// TensorFlow's C++ info logging off unless the user asked for it, oneDNN off (see below). `isolated` adds `-I` (no
/// user site-packages, no `PYTHON*` variables): right for our own environment, wrong for an
/// interpreter the user chose, whose `PYTHONPATH` may be how it finds its packages.
pub fn command(python: &Path, isolated: bool) -> Command {
    let mut cmd = Command::new(python);
    if isolated {
        cmd.arg("-I");
    }
    cmd.env("KERAS_BACKEND", "tensorflow");
    if std::env::var_os("TF_CPP_MIN_LOG_LEVEL").is_none() {
        cmd.env("TF_CPP_MIN_LOG_LEVEL", "2");
    }
    // oneDNN's CPU allocator keeps every tensor byte it ever held: a loaded model costs
    // twice its weights and nothing comes back when it is dropped. Without it, a
    // prefill/decode export of a Gemma-2B-width model peaks at 3.9x its float32 weights
    // instead of 6.7x, and twice as fast (docs/llm.md#memory). The user's setting wins.
    if std::env::var_os("TF_ENABLE_ONEDNN_OPTS").is_none() {
        cmd.env("TF_ENABLE_ONEDNN_OPTS", "0");
    }
    cmd
}

/// Run the query script in `mode` with `args`.
pub fn query(
    python: &Path,
    isolated: bool,
    mode: &str,
    args: &[&str],
) -> Result<Interp, QueryError> {
    let shown = python.display().to_string();
    let out = command(python, isolated)
        .arg("-B")
        .arg("-c")
        .arg(QUERY_PY)
        .arg(mode)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| match err.kind() {
            io::ErrorKind::NotFound => QueryError::NotFound(shown.clone()),
            _ => QueryError::Spawn(shown.clone(), err),
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .and_then(|l| serde_json::from_str::<Interp>(l).ok());
    match parsed {
        Some(interp) if out.status.success() => Ok(interp),
        _ => {
            let tail = tail_lines(&String::from_utf8_lossy(&out.stderr), 12);
            Err(QueryError::Failed {
                python: shown,
                status: out.status.to_string(),
                stderr: if tail.is_empty() {
                    String::new()
                } else {
                    format!(":\n{tail}")
                },
            })
        }
    }
}

/// The last `n` non-empty lines of `text`, each indented, for showing inside an error.
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(n);
    lines[start..]
        .iter()
        .map(|l| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_non_empty_lines() {
        assert_eq!(tail_lines("a\n\nb\nc\n\n", 2), "  | b\n  | c");
        assert_eq!(tail_lines("", 3), "");
    }

    #[test]
    fn a_missing_interpreter_is_not_found() {
        let err = query(Path::new("/nonexistent/python3"), true, "base", &[]).unwrap_err();
        assert!(matches!(err, QueryError::NotFound(_)), "{err}");
    }

    #[test]
    fn the_query_script_answers_on_a_real_python() {
        // python3 is part of the supported setup (CI has it); without it there is nothing to ask.
        let Ok(interp) = query(Path::new("python3"), true, "base", &[]) else {
            return;
        };
        assert!(interp.python_version.starts_with('3'));
        assert!(interp.venv.is_some());
        let interp = query(
            Path::new("python3"),
            true,
            "packages",
            &[
                "pip",
                "surely-not-installed-pkg",
                "--",
                "json",
                "surely_not_a_module",
            ],
        )
        .unwrap();
        assert_eq!(interp.packages.get("surely-not-installed-pkg"), Some(&None));
        assert_eq!(interp.modules.get("json"), Some(&true));
        assert_eq!(interp.modules.get("surely_not_a_module"), Some(&false));
        let interp = query(
            Path::new("python3"),
            true,
            "imports",
            &["json", "nope_nope"],
        )
        .unwrap();
        assert!(interp.imports[0].ok);
        assert!(!interp.imports[1].ok);
        assert!(
            interp.imports[1]
                .error
                .as_deref()
                .unwrap_or_default()
                .contains("ModuleNotFoundError")
        );
    }

    #[test]
    fn noise_on_stdout_does_not_corrupt_the_reply() {
        // A sitecustomize-like print before the reply: simulated by a module that prints.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("noisy.py"),
            "import os\nprint('hello from print')\nos.write(1, b'raw fd write\\n')\n",
        )
        .unwrap();
        let mut cmd = command(Path::new("python3"), false);
        let Ok(out) = cmd
            .env("PYTHONPATH", dir.path())
            .arg("-c")
            .arg(QUERY_PY)
            .args(["imports", "noisy"])
            .output()
        else {
            return;
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        let interp: Interp = serde_json::from_str(stdout.trim()).unwrap();
        assert!(interp.imports[0].ok);
        assert!(String::from_utf8_lossy(&out.stderr).contains("raw fd write"));
    }
}
