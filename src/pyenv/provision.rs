//! Provisioning the environment from the lock: the directory layout under the cache, the
//! inter-process file lock, building in a temporary sibling directory (venv, pip, verify),
//! the completion marker, and the atomic rename that makes an environment visible only
//! once it is whole. A failed or killed install leaves nothing that could be mistaken for
//! an environment: the temporary directory is removed on error, and one left by a killed
//! process is removed by the next process to take the lock.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::disk;
use super::lock::Lock;
use crate::diag::Hinted;
use crate::progress::Ui;

/// The file inside a finished environment that says it is finished, and with what.
pub const MARKER: &str = "litert-env.json";
/// pip's output, kept inside the environment (and copied beside it when an install fails).
pub const INSTALL_LOG: &str = "litert-install.log";
/// The modules that must import for the environment to be of any use to the worker.
pub const VERIFY_IMPORTS: &[&str] = &[
    "tensorflow",
    "keras",
    "keras_hub",
    "ai_edge_litert",
    "ai_edge_litert.interpreter",
];

/// Where one lock's environment and its bookkeeping live under the cache directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub cache: PathBuf,
    pub envs: PathBuf,
    /// The environment itself: `<cache>/envs/<first 16 hex of the lock digest>`.
    pub root: PathBuf,
    /// Held (flock) by the one process provisioning this lock's environment.
    pub lock_file: PathBuf,
    /// pip's log from the last failed attempt.
    pub failed_log: PathBuf,
    short: String,
}

impl Layout {
    pub fn new(cache: &Path, lock: &Lock) -> Layout {
        let short = lock.short_digest().to_string();
        let envs = cache.join("envs");
        Layout {
            cache: cache.to_path_buf(),
            root: envs.join(&short),
            lock_file: envs.join(format!("{short}.lock")),
            failed_log: envs.join(format!("{short}.failed.log")),
            envs,
            short,
        }
    }

    pub fn python(&self) -> PathBuf {
        venv_python(&self.root)
    }

    fn temp_prefix(&self) -> String {
        format!("{}.tmp-", self.short)
    }
}

/// The interpreter inside a virtual environment.
pub fn venv_python(root: &Path) -> PathBuf {
    if cfg!(windows) {
        root.join("Scripts").join("python.exe")
    } else {
        root.join("bin").join("python")
    }
}

/// What the marker records: enough to answer `env show` and `ensure` without starting Python.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Marker {
    pub lock_digest: String,
    pub python_version: String,
    /// The interpreter the venv was made from; the env breaks if it is removed.
    pub base_python: String,
    pub packages: BTreeMap<String, String>,
    pub created_unix: u64,
    pub litert_version: String,
}

/// The finished environment for `lock`, if there is one and its interpreter still exists.
pub fn read_ready(layout: &Layout, lock: &Lock) -> Option<Marker> {
    let text = fs::read_to_string(layout.root.join(MARKER)).ok()?;
    let marker: Marker = serde_json::from_str(&text).ok()?;
    (marker.lock_digest == lock.digest && layout.python().exists()).then_some(marker)
}

/// Builds an environment in the given (empty, existing) temporary directory, which will be
/// renamed to the layout's root afterwards; returns what the marker should say.
pub type Build<'a> = dyn Fn(&Path, &Ui) -> anyhow::Result<Marker> + 'a;

/// Return the finished environment, building it first if needed (or if `force`), safely
/// against other processes doing the same. `needed_bytes` of free disk are required before
/// a build starts. Also says whether this call built it (false: it was there, or another
/// process finished it while we waited).
pub fn ensure_with(
    layout: &Layout,
    lock: &Lock,
    ui: &Ui,
    force: bool,
    needed_bytes: u64,
    build: &Build<'_>,
) -> anyhow::Result<(Marker, bool)> {
    if !force && let Some(marker) = read_ready(layout, lock) {
        return Ok((marker, false));
    }
    fs::create_dir_all(&layout.envs).map_err(|err| unwritable(&layout.envs, &err))?;
    let guard = acquire(layout, ui)?;
    // Whoever held the lock before us may just have finished the same environment.
    if !force && let Some(marker) = read_ready(layout, lock) {
        return Ok((marker, false));
    }
    clean_stale(layout)?;
    if layout.root.exists() {
        // Broken (no marker, an old marker, a vanished base interpreter) or forced.
        fs::remove_dir_all(&layout.root).with_context(|| {
            format!(
                "cannot remove the old environment {}",
                layout.root.display()
            )
        })?;
    }
    disk::check(&layout.envs, needed_bytes)?;

    let tmp = TempDir::create(&layout.envs.join(format!(
        "{}{}",
        layout.temp_prefix(),
        std::process::id()
    )))
    .map_err(|err| unwritable(&layout.envs, &err))?;
    let marker = build(&tmp.path, ui)?;
    let text = serde_json::to_string_pretty(&marker)?;
    fs::write(tmp.path.join(MARKER), text + "\n")
        .with_context(|| format!("cannot write {}", tmp.path.join(MARKER).display()))?;
    fs::rename(&tmp.path, &layout.root).with_context(|| {
        format!(
            "cannot move the new environment into place at {}",
            layout.root.display()
        )
    })?;
    tmp.disarm();
    drop(guard);
    Ok((marker, true))
}

/// Take the provisioning lock for this layout, waiting (and saying so) while another
/// process holds it. The lock is released when the returned file is dropped, including when
/// the process dies, which is why a lock file and not a lock directory.
fn acquire(layout: &Layout, ui: &Ui) -> anyhow::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&layout.lock_file)
        .map_err(|err| unwritable(&layout.lock_file, &err))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            ui.note(&format!(
                "waiting for another litert process to finish setting up the Python environment (lock: {})",
                layout.lock_file.display()
            ));
            file.lock()
                .with_context(|| format!("cannot lock {}", layout.lock_file.display()))?;
        }
        Err(TryLockError::Error(err)) => {
            return Err(err).with_context(|| format!("cannot lock {}", layout.lock_file.display()));
        }
    }
    Ok(file)
}

/// Remove this lock's temporary build directories. Only call with the lock held: then no
/// live process is building in them, so they were left by a killed one.
pub fn clean_stale(layout: &Layout) -> anyhow::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let entries = match fs::read_dir(&layout.envs) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(err) => return Err(err.into()),
    };
    let prefix = layout.temp_prefix();
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let path = entry.path();
            fs::remove_dir_all(&path)
                .with_context(|| format!("cannot remove the stale {}", path.display()))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// One thing `clean` removed (or would remove), with its size.
#[derive(Debug, Clone)]
pub struct Removed {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Remove environments (and their temporary directories and failed logs) under `envs`,
/// except the one named `keep`. Each digest's provisioning lock is taken first, so an
/// environment being provisioned right now is skipped (returned in the second list). Lock
/// files stay: deleting a lock file another process may be about to open would let two
/// processes hold "the" lock at once.
pub fn clean(
    envs: &Path,
    keep: Option<&str>,
    dry_run: bool,
) -> anyhow::Result<(Vec<Removed>, Vec<PathBuf>)> {
    let mut removed = Vec::new();
    let mut busy = Vec::new();
    let entries = match fs::read_dir(envs) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok((removed, busy)),
        Err(err) => return Err(err.into()),
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let digest = name.split('.').next().unwrap_or_default();
        let ours = digest.len() == 16 && digest.chars().all(|c| c.is_ascii_hexdigit());
        if !ours || name.ends_with(".lock") || Some(digest) == keep {
            continue;
        }
        // Hold this digest's lock while removing, so no provisioning runs underneath.
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(envs.join(format!("{digest}.lock")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                busy.push(path);
                continue;
            }
            Err(TryLockError::Error(err)) => return Err(err.into()),
        }
        let bytes = size_of(&path);
        if !dry_run {
            let result = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            result.with_context(|| format!("cannot remove {}", path.display()))?;
        }
        removed.push(Removed { path, bytes });
    }
    Ok((removed, busy))
}

/// Bytes of regular files under `path` (symlinks not followed); best effort.
fn size_of(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| size_of(&e.path())).sum())
        .unwrap_or(0)
}

fn unwritable(path: &Path, err: &io::Error) -> anyhow::Error {
    Hinted::new(
        format!(
            "cannot write to the litert cache at {}: {err}",
            path.display()
        ),
        "set LITERT_CACHE_DIR to a writable directory",
    )
    .into()
}

/// A directory removed on drop unless disarmed: the half-made environment of an error.
struct TempDir {
    path: PathBuf,
    armed: std::cell::Cell<bool>,
}

impl TempDir {
    fn create(path: &Path) -> io::Result<TempDir> {
        fs::create_dir(path)?;
        Ok(TempDir {
            path: path.to_path_buf(),
            armed: std::cell::Cell::new(true),
        })
    }

    fn disarm(&self) {
        self.armed.set(false);
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.armed.get() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    fn test_lock() -> Lock {
        Lock::parse("# requires-python: >=3.11,<3.14\nalpha==1.0\nbeta==2.0\n").unwrap()
    }

    /// A stand-in for venv + pip: makes `bin/python` (a plain file is enough for `exists`).
    fn fake_build(tmp: &Path, lock: &Lock) -> anyhow::Result<Marker> {
        let python = venv_python(tmp);
        fs::create_dir_all(python.parent().unwrap())?;
        fs::write(&python, "")?;
        Ok(Marker {
            lock_digest: lock.digest.clone(),
            python_version: "3.11.7".into(),
            base_python: "/usr/bin/python3".into(),
            packages: lock
                .pins
                .iter()
                .map(|p| (p.name.clone(), p.version.clone()))
                .collect(),
            created_unix: 0,
            litert_version: "test".into(),
        })
    }

    #[test]
    fn layout_is_keyed_by_the_digest() {
        let lock = test_lock();
        let layout = Layout::new(Path::new("/c"), &lock);
        let short = &lock.digest[..16];
        assert_eq!(layout.root, Path::new("/c/envs").join(short));
        assert_eq!(
            layout.lock_file,
            Path::new("/c/envs").join(format!("{short}.lock"))
        );
        assert!(layout.python().starts_with(&layout.root));
    }

    #[test]
    fn builds_once_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let lock = test_lock();
        let layout = Layout::new(dir.path(), &lock);
        let calls = AtomicUsize::new(0);
        let build = |tmp: &Path, _: &Ui| {
            calls.fetch_add(1, Ordering::SeqCst);
            fake_build(tmp, &lock)
        };
        let ui = Ui::new(false);
        let first = ensure_with(&layout, &lock, &ui, false, 0, &build).unwrap();
        let second = ensure_with(&layout, &lock, &ui, false, 0, &build).unwrap();
        assert_eq!(first.0, second.0);
        assert!(first.1 && !second.1, "built once, then reused");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(layout.root.join(MARKER).is_file());
        // Forcing rebuilds.
        ensure_with(&layout, &lock, &ui, true, 0, &build).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_failed_build_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let lock = test_lock();
        let layout = Layout::new(dir.path(), &lock);
        let build = |tmp: &Path, _: &Ui| -> anyhow::Result<Marker> {
            fs::write(tmp.join("half-made"), "x")?;
            anyhow::bail!("pip exploded")
        };
        let err = ensure_with(&layout, &lock, &Ui::new(false), false, 0, &build).unwrap_err();
        assert_eq!(err.to_string(), "pip exploded");
        assert!(!layout.root.exists());
        let left: Vec<_> = fs::read_dir(&layout.envs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec![format!("{}.lock", lock.short_digest())]);
    }

    #[test]
    fn stale_temp_dirs_are_cleaned_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let lock = test_lock();
        let layout = Layout::new(dir.path(), &lock);
        let stale = layout.envs.join(format!("{}999999", layout.temp_prefix()));
        fs::create_dir_all(stale.join("lib/site-packages")).unwrap();
        let other_lock = layout.envs.join("0000000000000000.tmp-1");
        fs::create_dir_all(&other_lock).unwrap();
        let build = |tmp: &Path, _: &Ui| fake_build(tmp, &lock);
        ensure_with(&layout, &lock, &Ui::new(false), false, 0, &build).unwrap();
        assert!(!stale.exists(), "a killed process's temp dir is removed");
        assert!(
            other_lock.exists(),
            "another lock's build is not ours to touch"
        );
    }

    #[test]
    fn a_broken_environment_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let lock = test_lock();
        let layout = Layout::new(dir.path(), &lock);
        // A directory without a marker: e.g. made by hand or by an older litert.
        fs::create_dir_all(layout.root.join("junk")).unwrap();
        let build = |tmp: &Path, _: &Ui| fake_build(tmp, &lock);
        ensure_with(&layout, &lock, &Ui::new(false), false, 0, &build).unwrap();
        assert!(!layout.root.join("junk").exists());
        assert!(read_ready(&layout, &lock).is_some());
        // The base interpreter vanished: the venv's python no longer exists.
        fs::remove_file(layout.python()).unwrap();
        assert!(read_ready(&layout, &lock).is_none());
        ensure_with(&layout, &lock, &Ui::new(false), false, 0, &build).unwrap();
        assert!(read_ready(&layout, &lock).is_some());
    }

    #[test]
    fn not_enough_disk_stops_before_building() {
        let dir = tempfile::tempdir().unwrap();
        let lock = test_lock();
        let layout = Layout::new(dir.path(), &lock);
        let build = |_: &Path, _: &Ui| -> anyhow::Result<Marker> { panic!("must not build") };
        let err =
            ensure_with(&layout, &lock, &Ui::new(false), false, u64::MAX, &build).unwrap_err();
        assert!(err.downcast_ref::<Hinted>().is_some(), "{err:#}");
    }

    #[test]
    fn concurrent_provisioning_builds_once() {
        let dir = tempfile::tempdir().unwrap();
        let lock = Arc::new(test_lock());
        let layout = Arc::new(Layout::new(dir.path(), &lock));
        let calls = Arc::new(AtomicUsize::new(0));
        let inside = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (lock, layout, calls, inside, start) = (
                    lock.clone(),
                    layout.clone(),
                    calls.clone(),
                    inside.clone(),
                    start.clone(),
                );
                std::thread::spawn(move || {
                    start.wait();
                    let build = |tmp: &Path, _: &Ui| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        assert_eq!(
                            inside.fetch_add(1, Ordering::SeqCst),
                            0,
                            "two builders at once"
                        );
                        // Long enough that the other threads find the lock taken.
                        std::thread::sleep(Duration::from_millis(300));
                        let marker = fake_build(tmp, &lock);
                        inside.fetch_sub(1, Ordering::SeqCst);
                        marker
                    };
                    ensure_with(&layout, &lock, &Ui::new(false), false, 0, &build)
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let built = results
            .iter()
            .filter(|r| matches!(r, Ok((_, true))))
            .count();
        assert_eq!(built, 1, "{results:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(read_ready(&layout, &lock).is_some());
    }

    #[test]
    fn clean_removes_other_environments_and_keeps_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let envs = dir.path().join("envs");
        for name in [
            "aaaaaaaaaaaaaaaa",
            "aaaaaaaaaaaaaaaa.lock",
            "bbbbbbbbbbbbbbbb",
            "bbbbbbbbbbbbbbbb.tmp-12",
            "not-ours",
        ] {
            if name.contains('.') && !name.contains("tmp") {
                fs::create_dir_all(&envs).unwrap();
                fs::write(envs.join(name), "").unwrap();
            } else {
                fs::create_dir_all(envs.join(name)).unwrap();
                fs::write(envs.join(name).join("f"), "12345").unwrap();
            }
        }
        fs::write(envs.join("bbbbbbbbbbbbbbbb.failed.log"), "log").unwrap();
        let (dry, _) = clean(&envs, Some("aaaaaaaaaaaaaaaa"), true).unwrap();
        assert_eq!(dry.len(), 3);
        assert!(
            envs.join("bbbbbbbbbbbbbbbb").exists(),
            "a dry run removes nothing"
        );
        let (removed, busy) = clean(&envs, Some("aaaaaaaaaaaaaaaa"), false).unwrap();
        assert!(busy.is_empty());
        assert_eq!(removed.iter().map(|r| r.bytes).sum::<u64>(), 13);
        let mut left: Vec<_> = fs::read_dir(&envs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "aaaaaaaaaaaaaaaa",
                "aaaaaaaaaaaaaaaa.lock",
                "bbbbbbbbbbbbbbbb.lock",
                "not-ours"
            ]
        );
        // An environment being provisioned (its lock held) is skipped.
        let held = File::create(envs.join("aaaaaaaaaaaaaaaa.lock")).unwrap();
        held.lock().unwrap();
        let (removed, busy) = clean(&envs, None, false).unwrap();
        assert!(removed.is_empty());
        assert_eq!(busy, vec![envs.join("aaaaaaaaaaaaaaaa")]);
    }
}
