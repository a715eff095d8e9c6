//! One build = one transaction: the artifact (and its bundle), its snapshot (and golden
//! outputs) and its `litert.lock` entry change together or not at all.
//!
//! Under the project's lock (so concurrent runs interleave whole builds) and the interrupt
//! guard (so SIGINT/SIGTERM wait for it), every new file is first written in full beside
//! its destination: the artifact already is (in its private build directory), then the
//! snapshot and the new lock. Only when all are written are they renamed into place, each
//! previous file kept as a hard link until the last rename succeeded. A failure at any
//! step (a full disk, a read-only directory) puts back what was already replaced, so the
//! project is as it was before the build and the lock describes every artifact on disk.

use std::path::{Path, PathBuf};

use super::Failure;
use crate::fsio::{self, Staged};
use crate::lock::{Entry, Locked};
use crate::recipe::BuildPlan;

/// What a finished, accepted build changes.
pub struct Change<'a> {
    pub plan: &'a BuildPlan,
    /// The finished artifact, inside its private build directory.
    pub artifact: &'a Path,
    /// Further finished files and where they go (a generation artifact's bundle).
    pub companions: Vec<(&'a Path, &'a Path)>,
    /// Small files beside the snapshot to write (`Some`) or remove (`None`): golden outputs.
    pub files: Vec<(PathBuf, Option<Vec<u8>>)>,
    /// The snapshot text to store at `plan.snapshot`, when the verdict writes one.
    pub snapshot: Option<&'a str>,
    /// The lock entry to record (`None` under `--locked`, which never writes the lock).
    pub entry: Option<Entry>,
}

/// Apply `change`, or leave everything as it was and say why.
pub fn commit(change: Change<'_>) -> Result<(), Failure> {
    let plan = change.plan;
    let _signals = crate::interrupt::commit();
    let locking = |e: anyhow::Error| Failure {
        stage: "write".into(),
        message: format!("{e:#}"),
        hint: None,
        detail: None,
    };
    // The project's lock is held either way; `litert.lock` is read only when this build
    // records an entry in it.
    let (_guard, mut locked) = match &change.entry {
        Some(_) => (None, Some(Locked::open(&plan.root).map_err(locking)?)),
        None => (Some(Locked::guard(&plan.root).map_err(locking)?), None),
    };
    // Stage: write everything new in full. Nothing is replaced yet.
    let nothing_changed = |what: &Path, e: std::io::Error| Failure {
        stage: "write".into(),
        message: format!(
            "cannot write `{}`: {e}; nothing was changed (the previous artifact, snapshot and lock entry are as they were)",
            what.display()
        ),
        hint: hint_for(&e),
        detail: None,
    };
    let mut staged: Vec<Pending> = Vec::new();
    fsio::prepare(change.artifact, &plan.output).map_err(|e| nothing_changed(&plan.output, e))?;
    staged.push(Pending::Artifact(
        change.artifact.to_path_buf(),
        plan.output.clone(),
    ));
    for (finished, dest) in change.companions {
        fsio::prepare(finished, dest).map_err(|e| nothing_changed(dest, e))?;
        staged.push(Pending::Artifact(
            finished.to_path_buf(),
            dest.to_path_buf(),
        ));
    }
    for (dest, bytes) in change.files {
        match bytes {
            Some(bytes) => {
                let s = fsio::stage(&dest, bytes).map_err(|e| nothing_changed(&dest, e))?;
                staged.push(Pending::File(s, dest));
            }
            None => staged.push(Pending::Remove(dest)),
        }
    }
    if let Some(text) = change.snapshot {
        let s =
            fsio::stage(&plan.snapshot, text).map_err(|e| nothing_changed(&plan.snapshot, e))?;
        staged.push(Pending::File(s, plan.snapshot.clone()));
    }
    if let (Some(entry), Some(locked)) = (change.entry, locked.as_mut()) {
        locked.lock.artifacts.insert(plan.id.clone(), entry);
        let path = locked.path().to_path_buf();
        let s = fsio::stage(&path, locked.lock.render()).map_err(|e| nothing_changed(&path, e))?;
        staged.push(Pending::File(s, path));
    }
    // Commit: rename each into place, keeping its predecessor until all are done.
    let mut done: Vec<(PathBuf, Previous)> = Vec::new();
    for pending in staged {
        let dest = pending.dest().to_path_buf();
        let result = Previous::keep(&dest).and_then(|previous| {
            pending.commit()?;
            done.push((dest.clone(), previous));
            Ok(())
        });
        if let Err(e) = result {
            let restored = done
                .into_iter()
                .rev()
                .all(|(path, previous)| previous.restore(&path).is_ok());
            return Err(Failure {
                stage: "write".into(),
                message: if restored {
                    format!(
                        "cannot replace `{}`: {e}; rolled back: the previous artifact, snapshot and lock entry are as they were",
                        dest.display()
                    )
                } else {
                    format!(
                        "cannot replace `{}`: {e}, and restoring the previous files failed too: check `{}`, its snapshot and litert.lock",
                        dest.display(),
                        plan.output.display()
                    )
                },
                hint: hint_for(&e),
                detail: None,
            });
        }
    }
    let _ = std::fs::remove_file(crate::snapshot::pending_path(&plan.snapshot));
    Ok(())
}

fn hint_for(e: &std::io::Error) -> Option<String> {
    (e.raw_os_error() == Some(28))
        .then(|| "free some disk space and run `litert apply` again".into())
}

/// A file written and waiting to be renamed into place.
enum Pending {
    /// The artifact (already given its destination's mode) and where it goes.
    Artifact(PathBuf, PathBuf),
    File(Staged, PathBuf),
    /// A file that goes (kept as the previous file until the end, like the others).
    Remove(PathBuf),
}

impl Pending {
    fn dest(&self) -> &Path {
        match self {
            Self::Artifact(_, d) | Self::File(_, d) | Self::Remove(d) => d,
        }
    }

    fn commit(self) -> std::io::Result<()> {
        match self {
            Self::Artifact(from, to) => fsio::rename_into_place(&from, &to),
            Self::File(staged, _) => staged.commit(),
            Self::Remove(d) => match std::fs::remove_file(&d) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        }
    }
}

/// What was at a destination before this transaction replaced it.
enum Previous {
    Absent,
    /// A hard link to the previous file, removed when dropped.
    Linked(tempfile::NamedTempFile<()>),
}

impl Previous {
    fn keep(dest: &Path) -> std::io::Result<Self> {
        if std::fs::symlink_metadata(dest).is_err() {
            return Ok(Self::Absent);
        }
        tempfile::Builder::new()
            .prefix(".litert-previous-")
            .make_in(fsio::parent_dir(dest), |p| std::fs::hard_link(dest, p))
            .map(Self::Linked)
    }

    fn restore(self, dest: &Path) -> std::io::Result<()> {
        match self {
            Self::Absent => std::fs::remove_file(dest),
            Self::Linked(link) => link.persist(dest).map(drop).map_err(|e| e.error),
        }
    }
}
