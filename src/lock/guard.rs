//! Exclusive access to a project's lock: an `flock` on the project root directory, held
//! while `litert.lock` is read, changed and written back (and while a build that leaves the
//! lock alone commits its files), so concurrent `litert` processes interleave whole changes.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{FILE_NAME, LockFile};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::sample_entry;

    #[test]
    fn round_trips_and_reads_missing_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut locked = Locked::open(dir.path()).unwrap();
        assert!(locked.lock.artifacts.is_empty());
        locked
            .lock
            .artifacts
            .insert("a".into(), sample_entry("abc"));
        locked.save().unwrap();
        drop(locked);
        let again = LockFile::read(&dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(again.artifacts["a"], sample_entry("abc"));
    }

    #[test]
    fn concurrent_writers_keep_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        std::thread::scope(|s| {
            for i in 0..8 {
                let root = dir.path();
                s.spawn(move || {
                    let mut locked = Locked::open(root).unwrap();
                    locked
                        .lock
                        .artifacts
                        .insert(format!("a{i}"), sample_entry("x"));
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
}
