//! `litert.lock`: per artifact, what produced it — the digests of its resolved recipe, model
//! source and calibration data, the worker's package versions — and what came out (sha256
//! and size). One stable, diff-friendly YAML file at the project root, updated under an
//! exclusive lock on the project root directory itself, so concurrent `apply` runs (any
//! `TMPDIR`, any user who can read the project) do not lose each other's entries.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::diag::Hinted;

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
    /// The Keras names of its `output_N` outputs, for its snapshot (see
    /// [`crate::snapshot::Snapshot::with_keras_outputs`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keras_outputs: Vec<String>,
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

/// The lock file of a project, with exclusive access while it is held.
pub struct Locked {
    path: PathBuf,
    _guard: File,
    pub lock: LockFile,
}

impl Locked {
    /// Take the project's lock (waiting for other `litert` processes), then read the file.
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        let path = root.join(FILE_NAME);
        let guard = project_guard(root)?;
        let lock = LockFile::read(&path)?;
        Ok(Self {
            path,
            _guard: guard,
            lock,
        })
    }

    /// Take the project's lock without reading the file, for a change that leaves it alone
    /// (a shard's build, whose entry goes to its fragment).
    pub fn guard(root: &Path) -> anyhow::Result<File> {
        project_guard(root)
    }

    /// Where the lock file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write the lock atomically; the guard is released when `self` drops.
    pub fn save(&self) -> anyhow::Result<()> {
        crate::fsio::write_atomic(&self.path, self.lock.render())
            .with_context(|| format!("cannot write `{}`", self.path.display()))
    }
}

/// An exclusive `flock` on the project root directory, held until the file drops.
///
/// The directory rather than a file: `litert.lock` is replaced by rename (so a lock on it
/// would guard a file that is gone), and a guard file elsewhere (such as `$TMPDIR`) is not
/// shared by processes with different temporary directories or users. Everyone who can
/// read the project can open its directory, and nothing is created in it.
fn project_guard(root: &Path) -> anyhow::Result<File> {
    let dir = if root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        root
    };
    let guard = File::open(dir)
        .with_context(|| format!("cannot open the project directory `{}`", dir.display()))?;
    guard
        .lock()
        .with_context(|| format!("cannot lock the project directory `{}`", dir.display()))?;
    Ok(guard)
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
        keras_outputs: vec![],
        reproducible: true,
        build_seconds: Some(1.5),
        bundle: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sha: &str) -> Entry {
        sample_entry(sha)
    }

    #[test]
    fn round_trips_and_reads_missing_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut locked = Locked::open(dir.path()).unwrap();
        assert!(locked.lock.artifacts.is_empty());
        locked.lock.artifacts.insert("a".into(), entry("abc"));
        locked.save().unwrap();
        drop(locked);
        let again = LockFile::read(&dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(again.artifacts["a"], entry("abc"));
    }

    #[test]
    fn concurrent_writers_keep_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        std::thread::scope(|s| {
            for i in 0..8 {
                let root = dir.path();
                s.spawn(move || {
                    let mut locked = Locked::open(root).unwrap();
                    locked.lock.artifacts.insert(format!("a{i}"), entry("x"));
                    locked.save().unwrap();
                });
            }
        });
        assert_eq!(
            LockFile::read(&dir.path().join(FILE_NAME))
                .unwrap()
                .artifacts
                .len(),
            8
        );
    }

    #[test]
    fn the_guard_is_the_project_directory_whatever_tmpdir_says() {
        let dir = tempfile::tempdir().unwrap();
        let held = Locked::open(dir.path()).unwrap();
        // Another open file description of the same directory cannot take it meanwhile.
        let other = File::open(dir.path()).unwrap();
        assert!(other.try_lock().is_err());
        drop(held);
        assert!(other.try_lock().is_ok());
        // Nothing was created in the project.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
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
