//! Diagnosing the worker environment for `litert env doctor`: the checks (cache directory,
//! free disk, base Python, the environment, package versions against the lock, timed
//! imports), each with a status and what to do about a problem, gathered in a
//! [`DoctorReport`]. Rendering the report is the command line's business.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{EnvRequest, Interp, Layout, Lock, disk, provision, python};
use crate::diag::Hinted;

/// What to do when litert's own environment is damaged: only a rebuild repairs it.
const REBUILD_HINT: &str = "run `litert env setup --force` to rebuild the environment";

/// The modules the worker imports, timed in that order.
const IMPORTS: [&str; 3] = ["tensorflow", "keras", "ai_edge_litert.interpreter"];

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    /// Works, but something deserves attention; the report still passes.
    Warn,
    Fail,
    /// Not run: it does not apply, or what it needs is missing.
    Skip,
}

/// One line of the diagnosis.
#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    /// What to do about it; shown when the check did not pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    fn new(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Check {
        self.hint = Some(hint.into());
        self
    }

    /// A failed check from an error: its message, and its hint when it has one.
    fn from_error(name: &str, err: &anyhow::Error) -> Check {
        let hinted = err.chain().find_map(|c| c.downcast_ref::<Hinted>());
        let check = Check::new(name, Status::Fail, format!("{err:#}"));
        match hinted {
            Some(h) => check.hint(h.hint.clone()),
            None => check,
        }
    }
}

/// Every check, in the order they ran, and what they were run on.
#[derive(Debug, Serialize)]
pub struct DoctorReport {
    /// No check failed (warnings allowed).
    pub ok: bool,
    /// The interpreter the worker would run.
    pub python: Option<String>,
    pub external: bool,
    /// The provisioned environment's directory; `None` for an external interpreter.
    pub env: Option<String>,
    pub lock_digest: String,
    pub checks: Vec<Check>,
}

/// Run every check for the environment `req` asks for. Never provisions; never fails: a
/// problem is a failed check.
pub fn diagnose(req: &EnvRequest, lock: &Lock) -> DoctorReport {
    diagnose_in(req, lock, super::cache_dir())
}

/// [`diagnose`] with the cache directory given (as [`super::cache_dir`] would return it).
fn diagnose_in(req: &EnvRequest, lock: &Lock, cache: anyhow::Result<PathBuf>) -> DoctorReport {
    let mut checks = Vec::new();
    let external = req.python_override.is_some();

    // The cache directory: where environments (and later, build caches) live.
    let layout = cache.as_ref().ok().map(|c| Layout::new(c, lock));
    match (&cache, &layout) {
        (Ok(cache), Some(layout)) => checks.push(match writable(&layout.envs) {
            Ok(()) => Check::new(
                "cache directory",
                Status::Pass,
                format!("{} (writable)", cache.display()),
            ),
            Err(err) => Check::new(
                "cache directory",
                Status::Fail,
                format!("{} is not writable: {err}", cache.display()),
            )
            .hint("set LITERT_CACHE_DIR to a directory you can write to"),
        }),
        _ => {
            let detail = cache
                .as_ref()
                .err()
                .map_or_else(|| "unknown".to_string(), |e| format!("{e:#}"));
            checks.push(
                Check::new("cache directory", Status::Fail, detail)
                    .hint("set LITERT_CACHE_DIR to a directory you can write to"),
            );
        }
    }

    let ready = layout.as_ref().and_then(|l| provision::read_ready(l, lock));

    // Free disk: only a first provisioning needs much.
    if let Ok(cache) = &cache {
        checks.push(match disk::available(cache) {
            Ok(free) if ready.is_some() || external => Check::new(
                "free disk",
                Status::Pass,
                format!(
                    "{} free in the cache directory",
                    crate::units::human_bytes(free)
                ),
            ),
            Ok(free) if free >= disk::REQUIRED_FREE_BYTES => Check::new(
                "free disk",
                Status::Pass,
                format!(
                    "{} free (about {} needed to provision)",
                    crate::units::human_bytes(free),
                    crate::units::human_bytes(disk::REQUIRED_FREE_BYTES)
                ),
            ),
            Ok(free) => {
                let h = disk::not_enough(cache, free, disk::REQUIRED_FREE_BYTES);
                Check::new("free disk", Status::Fail, h.message).hint(h.hint)
            }
            Err(err) => Check::new(
                "free disk",
                Status::Warn,
                format!("cannot tell the free space: {err}"),
            ),
        });
    }

    // The base Python: what a (re)provisioning would use.
    if external {
        checks.push(Check::new(
            "base Python",
            Status::Skip,
            "not used: an external interpreter is set (LITERT_PYTHON or --python)",
        ));
    } else {
        checks.push(match super::find_base(lock) {
            Ok((base, info)) => Check::new(
                "base Python",
                Status::Pass,
                format!(
                    "{}: CPython {} ({})",
                    base.display(),
                    info.python_version,
                    info.executable
                ),
            ),
            Err(err) if ready.is_some() => {
                // The environment exists; only a rebuild would need the base Python.
                let mut check = Check::from_error("base Python", &err);
                check.status = Status::Warn;
                check.detail = format!("{} (only needed to rebuild the environment)", check.detail);
                check
            }
            Err(err) => Check::from_error("base Python", &err),
        });
    }

    // The interpreter the worker would run, and its packages.
    let mut python_path = None;
    let mut env_dir = None;
    let usable = if let Some(python) = &req.python_override {
        python_path = Some(python.display().to_string());
        match super::query_against_lock(python, lock) {
            Ok(interp) => {
                checks.push(Check::new(
                    "environment",
                    Status::Pass,
                    format!(
                        "external interpreter {} (Python {})",
                        python.display(),
                        interp.python_version
                    ),
                ));
                let versions = package_versions(lock, &interp, true);
                // For an external interpreter only a missing required package fails the
                // check, and without one the worker cannot run.
                let usable = versions.status != Status::Fail;
                checks.push(versions);
                usable
            }
            Err(err) => {
                checks.push(Check::from_error("environment", &err));
                false
            }
        }
    } else if let Some(layout) = &layout {
        python_path = Some(layout.python().display().to_string());
        env_dir = Some(layout.root.display().to_string());
        match &ready {
            Some(marker) => {
                checks.push(Check::new(
                    "environment",
                    Status::Pass,
                    format!(
                        "{} (Python {}, lock sha256 {}…)",
                        layout.root.display(),
                        marker.python_version,
                        lock.short_digest()
                    ),
                ));
                checks.push(installed_versions(&layout.python(), lock));
                true
            }
            None => {
                let (detail, hint) = if layout.root.exists() {
                    (
                        format!("{} is incomplete or broken", layout.root.display()),
                        "run `litert env setup --force` to rebuild it",
                    )
                } else {
                    (
                        format!("not provisioned yet ({})", layout.root.display()),
                        "run `litert env setup` (or let the first `litert apply` do it)",
                    )
                };
                checks.push(Check::new("environment", Status::Fail, detail).hint(hint));
                false
            }
        }
    } else {
        false
    };

    // The imports the worker does, timed: TensorFlow's dominates every apply's start-up.
    let python_for_imports = python_path.as_ref().map(PathBuf::from);
    match (usable, python_for_imports) {
        (true, Some(py)) => match python::query(&py, !external, "imports", &IMPORTS) {
            Ok(interp) => {
                for result in interp.imports {
                    let name = format!("import {}", result.module);
                    checks.push(if result.ok {
                        Check::new(name, Status::Pass, format!("{:.2}s", result.seconds))
                    } else {
                        Check::new(
                            name,
                            Status::Fail,
                            result.error.unwrap_or_else(|| "failed".into()),
                        )
                        .hint(if external {
                            "fix that interpreter's installation, or unset LITERT_PYTHON"
                        } else {
                            REBUILD_HINT
                        })
                    });
                }
            }
            Err(err) => checks.push(Check::new("imports", Status::Fail, err.to_string())),
        },
        _ => {
            for m in IMPORTS {
                checks.push(Check::new(
                    format!("import {m}"),
                    Status::Skip,
                    "skipped: no usable environment",
                ));
            }
        }
    }

    DoctorReport {
        ok: checks.iter().all(|c| c.status != Status::Fail),
        python: python_path,
        external,
        env: env_dir,
        lock_digest: lock.digest.clone(),
        checks,
    }
}

/// Ask the provisioned environment what is really installed (the marker says what was
/// installed; someone may have pip-installed into it since) and compare it with the lock.
fn installed_versions(python_path: &Path, lock: &Lock) -> Check {
    let names: Vec<&str> = lock.pins.iter().map(|p| p.name.as_str()).collect();
    match python::query(python_path, true, "packages", &names) {
        Ok(interp) => package_versions(lock, &interp, false),
        Err(err) => {
            Check::new("package versions", Status::Fail, err.to_string()).hint(REBUILD_HINT)
        }
    }
}

/// The "package versions" check: what `interp` has against the lock. An external
/// interpreter must have the packages the worker cannot do without, and other differences
/// are only warnings (the user chose it); in litert's own environment any difference is a
/// failure, since it was installed from the lock and only a rebuild puts it right.
fn package_versions(lock: &Lock, interp: &Interp, external: bool) -> Check {
    let name = "package versions";
    let missing = if external {
        super::missing_required(interp)
    } else {
        Vec::new()
    };
    if !missing.is_empty() {
        return Check::new(
            name,
            Status::Fail,
            format!("missing what the worker needs: {}", missing.join(", ")),
        )
        .hint("install them into that interpreter, or unset LITERT_PYTHON to let litert provision its own environment");
    }
    let mism = super::mismatches(lock, interp);
    if mism.is_empty() {
        return Check::new(
            name,
            Status::Pass,
            format!("all {} pins match the lock", lock.pins.len()),
        );
    }
    let detail = format!("{} differ from the lock: {}", mism.len(), summarize(&mism));
    if external {
        Check::new(name, Status::Warn, detail)
            .hint("exports may differ from ones made with the lock; unset LITERT_PYTHON to use litert's own environment")
    } else {
        Check::new(name, Status::Fail, detail).hint(REBUILD_HINT)
    }
}

/// The first five items, and how many more there are.
fn summarize(items: &[String]) -> String {
    let mut text = items.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
    if items.len() > 5 {
        text.push_str(&format!("; … and {} more", items.len() - 5));
    }
    text
}

/// Whether files can be created in `dir` (made first if missing): the only test that
/// answers for permissions, read-only mounts and quotas alike.
fn writable(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    tempfile::NamedTempFile::new_in(dir).map(drop)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use anyhow::Context;

    use super::*;

    fn lock() -> Lock {
        Lock::parse(
            "# requires-python: >=3.11,<3.14\nai-edge-litert==2.1.0\nkeras==3.15.1\nnumpy==2.4.6\ntensorflow==2.21.0\n",
        )
        .unwrap()
    }

    /// An interpreter's answer: Python 3.12 with these packages; the required modules are
    /// found unless `without_modules` names them.
    fn interp(packages: &[(&str, Option<&str>)], without_modules: &[&str]) -> Interp {
        Interp {
            python_version: "3.12.1".into(),
            implementation: "cpython".into(),
            executable: "/usr/bin/python3".into(),
            venv: None,
            ensurepip: None,
            packages: packages
                .iter()
                .map(|(n, v)| (n.to_string(), v.map(String::from)))
                .collect(),
            modules: super::super::REQUIRED
                .iter()
                .map(|(_, m)| (m.to_string(), !without_modules.contains(m)))
                .collect::<BTreeMap<_, _>>(),
            imports: Vec::new(),
        }
    }

    const MATCHING: &[(&str, Option<&str>)] = &[
        ("ai-edge-litert", Some("2.1.0")),
        ("keras", Some("3.15.1")),
        ("numpy", Some("2.4.6")),
        ("tensorflow", Some("2.21.0")),
    ];

    const DIFFERING: &[(&str, Option<&str>)] = &[
        ("ai-edge-litert", Some("2.1.0")),
        ("keras", Some("3.10.0")),
        ("numpy", None),
        ("tensorflow", Some("2.21.0")),
    ];

    #[test]
    fn matching_versions_pass_in_either_environment() {
        for external in [false, true] {
            let check = package_versions(&lock(), &interp(MATCHING, &[]), external);
            assert_eq!(check.name, "package versions");
            assert_eq!(check.status, Status::Pass);
            assert_eq!(check.detail, "all 4 pins match the lock");
            assert_eq!(check.hint, None);
        }
    }

    #[test]
    fn differences_fail_litert_s_own_environment_but_only_warn_for_an_external_one() {
        let detail = "2 differ from the lock: keras 3.10.0 (lock: 3.15.1); numpy not installed (lock: 2.4.6)";
        let own = package_versions(&lock(), &interp(DIFFERING, &[]), false);
        assert_eq!(own.status, Status::Fail);
        assert_eq!(own.detail, detail);
        assert_eq!(own.hint.as_deref(), Some(REBUILD_HINT));

        let external = package_versions(&lock(), &interp(DIFFERING, &[]), true);
        assert_eq!(external.status, Status::Warn);
        assert_eq!(external.detail, detail);
        assert!(external.hint.unwrap().contains("unset LITERT_PYTHON"));
    }

    #[test]
    fn an_external_interpreter_without_a_required_package_fails() {
        let check = package_versions(
            &lock(),
            &interp(MATCHING, &["tensorflow", "ai_edge_litert"]),
            true,
        );
        assert_eq!(check.status, Status::Fail);
        assert_eq!(
            check.detail,
            "missing what the worker needs: tensorflow, ai-edge-litert"
        );
        assert!(check.hint.unwrap().starts_with("install them"));
        // litert's own environment is checked by versions alone: its imports are checked
        // separately.
        let own = package_versions(&lock(), &interp(MATCHING, &["tensorflow"]), false);
        assert_eq!(own.status, Status::Pass);
    }

    #[test]
    fn summarize_keeps_five_and_counts_the_rest() {
        let items = |n: usize| (1..=n).map(|i| format!("p{i}")).collect::<Vec<_>>();
        assert_eq!(summarize(&[]), "");
        assert_eq!(summarize(&items(5)), "p1; p2; p3; p4; p5");
        assert_eq!(summarize(&items(7)), "p1; p2; p3; p4; p5; … and 2 more");
    }

    #[test]
    fn writable_makes_the_directory_and_leaves_nothing_in_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a").join("envs");
        writable(&dir).unwrap();
        assert!(dir.is_dir());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        // Under a regular file no directory can be made.
        let file = tmp.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(writable(&file.join("envs")).is_err());
    }

    #[test]
    fn a_check_from_an_error_keeps_the_whole_chain_and_the_hint() {
        let err = Err::<(), _>(Hinted::new("python3 was not found", "install Python"))
            .context("cannot provision")
            .unwrap_err();
        let check = Check::from_error("base Python", &err);
        assert_eq!(check.status, Status::Fail);
        assert_eq!(check.detail, "cannot provision: python3 was not found");
        assert_eq!(check.hint.as_deref(), Some("install Python"));
        let plain = Check::from_error("base Python", &anyhow::anyhow!("boom"));
        assert_eq!(plain.hint, None);
    }

    #[test]
    fn an_interpreter_that_does_not_exist_fails_and_skips_the_imports() {
        let tmp = tempfile::tempdir().unwrap();
        let req = EnvRequest {
            python_override: Some(tmp.path().join("no-such-python")),
            progress: false,
        };
        let report = diagnose_in(&req, &lock(), Ok(tmp.path().to_path_buf()));
        assert!(!report.ok);
        assert!(report.external);
        assert_eq!(report.env, None);
        assert_eq!(
            report.python.as_deref(),
            Some(tmp.path().join("no-such-python").to_str().unwrap())
        );
        let statuses: Vec<(&str, Status)> = report
            .checks
            .iter()
            .map(|c| (c.name.as_str(), c.status))
            .collect();
        assert_eq!(
            statuses,
            [
                ("cache directory", Status::Pass),
                ("free disk", Status::Pass),
                ("base Python", Status::Skip),
                ("environment", Status::Fail),
                ("import tensorflow", Status::Skip),
                ("import keras", Status::Skip),
                ("import ai_edge_litert.interpreter", Status::Skip),
            ]
        );
        assert!(
            report.checks[3]
                .hint
                .as_ref()
                .unwrap()
                .contains("LITERT_PYTHON")
        );
        assert!(tmp.path().join("envs").is_dir());
    }

    #[test]
    fn without_a_cache_directory_the_cache_check_fails_with_its_reason() {
        let req = EnvRequest {
            python_override: Some(PathBuf::from("/nonexistent/python")),
            progress: false,
        };
        let report = diagnose_in(&req, &lock(), Err(anyhow::anyhow!("no HOME")));
        assert!(!report.ok);
        let cache = &report.checks[0];
        assert_eq!(
            (cache.name.as_str(), cache.status, cache.detail.as_str()),
            ("cache directory", Status::Fail, "no HOME")
        );
        assert!(cache.hint.as_ref().unwrap().contains("LITERT_CACHE_DIR"));
        // No free-disk check without a directory to measure.
        assert_eq!(report.checks[1].name, "base Python");
    }
}
