//! Describing the worker environment for `litert env show`: which interpreter the worker
//! would run, where its environment is and whether it is provisioned, the lock, and the
//! installed version of each pinned package beside the lock's, gathered in a
//! [`ShowReport`]. Never provisions. Rendering the report is the command line's business.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{EnvRequest, KEY_PACKAGES, Layout, Lock, provision};

/// What `litert env show` reports (its `--json` form, field for field).
#[derive(Debug, Serialize)]
pub struct ShowReport {
    pub python: String,
    /// `None` while litert's own environment is not provisioned.
    pub python_version: Option<String>,
    pub external: bool,
    pub provisioned: bool,
    /// The provisioned environment's directory; `None` for an external interpreter.
    pub env: Option<String>,
    pub cache_dir: Option<String>,
    pub lock_digest: String,
    pub requires_python: String,
    pub pins: usize,
    pub packages: Vec<PackageRow>,
    /// External interpreter only: how it differs from the lock, one per entry.
    pub mismatches: Vec<String>,
}

/// One pinned package: the lock's version and the installed one, if any.
#[derive(Debug, Serialize)]
pub struct PackageRow {
    pub name: String,
    pub lock: String,
    pub installed: Option<String>,
}

/// Why there is no report.
#[derive(Debug)]
pub enum DescribeError {
    /// The interpreter named by `LITERT_PYTHON` or `--python` did not answer.
    Interpreter(anyhow::Error),
    /// litert cannot tell where its own environment would be.
    Cache(anyhow::Error),
}

/// Describe the environment `req` asks for: every pin with `all`, else the
/// [`KEY_PACKAGES`] in their order of importance.
pub fn describe(req: &EnvRequest, lock: &Lock, all: bool) -> Result<ShowReport, DescribeError> {
    let mut report = ShowReport {
        python: String::new(),
        python_version: None,
        external: req.python_override.is_some(),
        provisioned: false,
        env: None,
        cache_dir: None,
        lock_digest: lock.digest.clone(),
        requires_python: lock.requires_python.to_string(),
        pins: lock.pins.len(),
        packages: Vec::new(),
        mismatches: Vec::new(),
    };
    let installed = if let Some(python) = &req.python_override {
        let interp = super::query_against_lock(python, lock).map_err(DescribeError::Interpreter)?;
        report.python = python.display().to_string();
        report.python_version = Some(interp.python_version.clone());
        report.mismatches = super::mismatches(lock, &interp);
        report.cache_dir = super::cache_dir().ok().map(|d| d.display().to_string());
        super::installed(&interp)
    } else {
        let cache = super::cache_dir().map_err(DescribeError::Cache)?;
        let layout = Layout::new(&cache, lock);
        report.python = layout.python().display().to_string();
        report.env = Some(layout.root.display().to_string());
        report.cache_dir = Some(cache.display().to_string());
        match provision::read_ready(&layout, lock) {
            Some(marker) => {
                report.provisioned = true;
                report.python_version = Some(marker.python_version);
                marker.packages
            }
            None => Default::default(),
        }
    };
    report.packages = package_rows(lock, &installed, all);
    Ok(report)
}

/// The lock's pins beside `installed` (normalized name -> version): all of them in the
/// lock's order, or only the key packages in their order of importance.
fn package_rows(lock: &Lock, installed: &BTreeMap<String, String>, all: bool) -> Vec<PackageRow> {
    let mut rows: Vec<PackageRow> = lock
        .pins
        .iter()
        .filter(|pin| all || KEY_PACKAGES.contains(&pin.name.as_str()))
        .map(|pin| PackageRow {
            name: pin.name.clone(),
            lock: pin.version.clone(),
            installed: installed.get(&pin.name).cloned(),
        })
        .collect();
    if !all {
        rows.sort_by_key(|row| {
            KEY_PACKAGES
                .iter()
                .position(|k| *k == row.name)
                .unwrap_or(usize::MAX)
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn lock() -> Lock {
        Lock::parse(
            "# requires-python: >=3.11,<3.14\nabsl-py==2.3.1\nkeras==3.15.1\nnumpy==2.4.6\ntensorflow==2.21.0\n",
        )
        .unwrap()
    }

    fn rows(rows: &[PackageRow]) -> Vec<(&str, &str, Option<&str>)> {
        rows.iter()
            .map(|r| (r.name.as_str(), r.lock.as_str(), r.installed.as_deref()))
            .collect()
    }

    #[test]
    fn key_packages_come_in_their_order_of_importance() {
        let installed = BTreeMap::from([
            ("keras".to_string(), "3.10.0".to_string()),
            ("numpy".to_string(), "2.4.6".to_string()),
        ]);
        assert_eq!(
            rows(&package_rows(&lock(), &installed, false)),
            [
                ("tensorflow", "2.21.0", None),
                ("keras", "3.15.1", Some("3.10.0")),
                ("numpy", "2.4.6", Some("2.4.6")),
            ]
        );
    }

    #[test]
    fn all_lists_every_pin_in_the_lock_s_order() {
        let names: Vec<String> = package_rows(&lock(), &BTreeMap::new(), true)
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["absl-py", "keras", "numpy", "tensorflow"]);
    }

    #[test]
    fn an_interpreter_that_does_not_exist_is_an_interpreter_error() {
        let req = EnvRequest {
            python_override: Some(PathBuf::from("/nonexistent/litert-test/python")),
            progress: false,
        };
        match describe(&req, &lock(), false) {
            Err(DescribeError::Interpreter(err)) => {
                assert!(format!("{err:#}").contains("LITERT_PYTHON or --python"))
            }
            other => panic!("expected an interpreter error, got {other:?}"),
        }
    }
}
