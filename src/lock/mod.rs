//! `litert.lock`: per artifact, what produced it — the digests of its resolved recipe, model
//! source and calibration data, the worker's package versions — and what came out (sha256
//! and size, and the build time CI shards are balanced by). One stable, diff-friendly YAML
//! file at the project root, updated under an exclusive lock on the project root directory
//! itself ([`guard`]), so concurrent `apply` runs do not lose each other's entries; one
//! shard of a sharded run writes a fragment instead, merged later ([`fragment`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::diag::Hinted;

pub mod fragment;
pub mod guard;

pub use fragment::{Fragment, Shard};
pub use guard::Locked;

pub const FILE_NAME: &str = "litert.lock";
const FORMAT: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LockFile {
    pub version: u32,
    /// By artifact id (`name` or `name:variant`).
    pub artifacts: BTreeMap<String, Entry>,
}

/// What produced one artifact, and what it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The recipe, relative to the project root.
    pub recipe: String,
    /// The artifact, relative to the project root.
    pub output: String,
    /// Inputs of the build; all must match for the artifact to be up to date.
    pub inputs: Inputs,
    /// The worker that built it: Python and package versions.
    pub worker: BTreeMap<String, String>,
    pub sha256: String,
    pub size: u64,
    /// False when the artifact has Flex ops: their serialized attributes come out in varying
    /// order, so a rebuild is not promised to repeat the bytes.
    pub reproducible: bool,
    /// Seconds the build took when this artifact was first built (kept while it stays the
    /// same), for balancing CI shards (`src/shard.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_seconds: Option<f64>,
    /// The `.litertlm` bundle built with a generation artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<BundleEntry>,
    /// What wrote a generation artifact: `native` (litert's own writer) or `converter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
}

/// A bundle written beside its artifact, and what it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleEntry {
    /// Relative to the project root.
    pub output: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    /// The resolved recipe variant (templates rendered, `extends` merged).
    pub plan: String,
    pub model: String,
    pub calibration: Option<String>,
    /// The litert version and the digest of the worker's pinned package lock (or
    /// `external` for an interpreter the user named).
    pub toolchain: String,
}

impl LockFile {
    /// Read `path`; a missing file is an empty lock.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    version: FORMAT,
                    artifacts: BTreeMap::new(),
                });
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read `{}`", path.display())),
        };
        // An empty file (or one with only comments) marks the project root before the first
        // build; the docs suggest `touch litert.lock`.
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return Ok(Self {
                version: FORMAT,
                artifacts: BTreeMap::new(),
            });
        }
        let lock: Self = serde_saphyr::from_str(&text).map_err(|e| {
            Hinted::new(
                format!("`{}` is not a valid lock file: {}", path.display(), e.to_string().lines().next().unwrap_or("").trim_start_matches("error: ")),
                "restore it from version control, or delete it and run `litert apply` to make a new one",
            )
        })?;
        if lock.version != FORMAT {
            anyhow::bail!(Hinted::new(
                format!(
                    "`{}` has lock format {}, this litert writes {FORMAT}",
                    path.display(),
                    lock.version
                ),
                "use the litert version that wrote it, or delete it and rebuild",
            ));
        }
        Ok(lock)
    }

    pub fn render(&self) -> String {
        let body = serde_saphyr::to_string(self).unwrap_or_default();
        format!(
            "# litert.lock: what produced each artifact. Written by `litert apply`; commit it.\n{body}"
        )
    }
}

/// The project `dir` belongs to: the nearest directory at or above it that holds
/// `litert.lock` or `.git`, else `dir`. Recipes resolve their default snapshot paths and
/// lock entries against it; `litert snapshot` finds `snapshots/` there.
pub fn project_root(dir: &Path) -> PathBuf {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let found = abs
        .ancestors()
        .find(|a| a.join(FILE_NAME).exists() || a.join(".git").exists());
    match found {
        Some(root) => relative_to_cwd(root),
        None => dir.to_path_buf(),
    }
}

/// Show paths relative to the working directory when they are inside it.
fn relative_to_cwd(path: &Path) -> PathBuf {
    let Ok(cwd) = std::env::current_dir() else {
        return path.to_path_buf();
    };
    match path.strip_prefix(&cwd) {
        Ok(rel) if rel.as_os_str().is_empty() => PathBuf::from("."),
        Ok(rel) => rel.to_path_buf(),
        Err(_) => path.to_path_buf(),
    }
}

/// The build time to record for `new`: the one already in the lock when the artifact is
/// the same one (same inputs, worker, bytes), so rebuilds, shards and cache restores leave
/// the lock as it was; otherwise the time just measured.
pub fn recorded_time(previous: Option<&Entry>, new: &Entry, measured: f64) -> f64 {
    if let Some(prev) = previous
        && let Some(t) = prev.build_seconds
    {
        let mut same = prev.clone();
        same.build_seconds = new.build_seconds;
        if same == *new {
            return t;
        }
    }
    round_seconds(measured)
}

/// Seconds as the lock records them: tenths.
pub fn round_seconds(s: f64) -> f64 {
    (s * 10.0).round() / 10.0
}

/// An entry of artifact `a` with content `sha`, for tests here and in the modules that
/// read the lock.
#[cfg(test)]
pub(crate) fn sample_entry(sha: &str) -> Entry {
    Entry {
        recipe: "recipes/a.yaml".into(),
        output: "build/a.tflite".into(),
        inputs: Inputs {
            plan: "p".into(),
            model: "m".into(),
            calibration: None,
            toolchain: "t".into(),
        },
        worker: BTreeMap::from([("tensorflow".into(), "2.21.0".into())]),
        sha256: sha.into(),
        size: 3,
        reproducible: true,
        build_seconds: Some(1.5),
        bundle: None,
        writer: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_artifact_keeps_its_recorded_time() {
        let entry = |sha: &str, seconds: Option<f64>| Entry {
            build_seconds: seconds,
            ..sample_entry(sha)
        };
        let prev = entry("x", Some(3.2));
        assert_eq!(recorded_time(Some(&prev), &entry("x", None), 9.87), 3.2);
        assert_eq!(recorded_time(Some(&prev), &entry("y", None), 9.87), 9.9);
        assert_eq!(recorded_time(None, &entry("x", None), 0.04), 0.0);
    }

    #[test]
    fn an_empty_lock_is_an_empty_project() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        for text in ["", "\n", "# litert.lock\n\n"] {
            std::fs::write(&path, text).unwrap();
            let lock = LockFile::read(&path).unwrap();
            assert!(lock.artifacts.is_empty());
            assert_eq!(lock.version, FORMAT);
        }
    }

    #[test]
    fn a_corrupt_lock_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "version: [\n").unwrap();
        let err = LockFile::read(&dir.path().join(FILE_NAME)).unwrap_err();
        assert!(err.to_string().contains("not a valid lock file"), "{err}");
    }
}
