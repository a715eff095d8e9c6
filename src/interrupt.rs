//! SIGINT and SIGTERM: what `litert` must undo before it exits on one. Workers run in
//! process groups of their own (so a terminal's Ctrl-C reaches only `litert`), and every
//! worker group and private directory (worker scripts, the worker's `TMPDIR`, artifacts
//! being built) is registered here while it exists. On a signal, a dedicated thread waits
//! for any commit in progress (artifact, snapshot and lock entry change together, see
//! [`commit`]), kills every registered group, removes every registered directory and exits
//! with 128 + the signal number (130, 143).
//!
//! The signals are blocked in every thread and taken with `sigwait` by one thread, so no
//! code runs in a signal handler and no unsafe code is needed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use nix::sys::signal::{SigSet, Signal, killpg};
use nix::unistd::Pid;

#[derive(Default)]
struct Registry {
    groups: BTreeSet<i32>,
    dirs: BTreeSet<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    groups: BTreeSet::new(),
    dirs: BTreeSet::new(),
});

/// Held while a build's results are moved into place; a signal waits for it.
static COMMIT: Mutex<()> = Mutex::new(());

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Take SIGINT and SIGTERM from now on. Call first thing in `main`, before any thread
/// starts: threads inherit the blocked mask, and child processes get a clean one (the
/// standard library resets it before `exec`).
pub fn install() {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    if set.thread_block().is_err() {
        // Without the mask the default action (exit) stays: no cleanup, but no harm either.
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("litert-signals".into())
        .spawn(move || {
            if let Ok(signal) = set.wait() {
                stop(signal);
            }
        });
    if spawned.is_err() {
        let _ = set.thread_unblock();
    }
}

fn stop(signal: Signal) -> ! {
    // A commit in progress finishes first, so the project is left consistent.
    let _commit = COMMIT.lock().unwrap_or_else(PoisonError::into_inner);
    let (groups, dirs) = {
        let r = registry();
        (r.groups.clone(), r.dirs.clone())
    };
    for &group in &groups {
        let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
    }
    for dir in &dirs {
        remove_dir(dir);
    }
    let code = 128 + signal as i32;
    eprintln!(
        "litert: stopped by {}: {} worker(s) stopped, temporary files removed; litert.lock describes every artifact written",
        signal.as_str(),
        groups.len()
    );
    std::process::exit(code);
}

fn remove_dir(dir: &Path) {
    // A worker killed a moment ago may still be closing files: try twice.
    for _ in 0..2 {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            _ => return,
        }
    }
}

/// Hold this while changing an artifact, its snapshot and its lock entry: a signal that
/// arrives meanwhile waits until they are consistent again.
pub fn commit() -> MutexGuard<'static, ()> {
    COMMIT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A process group killed on a signal while this lives.
pub struct Group(i32);

impl Group {
    pub fn track(pgid: i32) -> Self {
        registry().groups.insert(pgid);
        Self(pgid)
    }

    /// Kill every process of the group (ignoring a group that is already gone).
    pub fn kill(&self) {
        let _ = killpg(Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        registry().groups.remove(&self.0);
    }
}

/// A directory removed on a signal while this lives (its owner removes it otherwise).
pub struct Dir(PathBuf);

impl Dir {
    pub fn track(path: &Path) -> Self {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        registry().dirs.insert(path.clone());
        Self(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        registry().dirs.remove(&self.0);
    }
}
