//! Keeping LiteRT's own log off the user's terminal. The runtime writes `INFO: [...]` lines
//! to fd 2 when it loads, creates its environment, compiles and first runs a model and shuts
//! down ("NPU accelerator could not be loaded" among them, which reads like a broken setup),
//! and litert's own words drown in them. While such a call runs, [`hush`] points fd 2 at a
//! temporary file and puts it back afterwards, unless the user asked for the log
//! (`-v`/`--verbose` or `LITERT_VERBOSE=1`, see [`crate::progress::verbose`]). What the
//! library wrote is kept, so an error it reports can carry its `ERROR` lines.
//!
//! litert itself prints nothing inside these windows: each wraps one C call and ends before
//! the result is reported. Windows nest and may overlap across threads: the first one in
//! redirects, the last one out restores.

use std::fs::File;
use std::io::{Seek, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::sync::{Mutex, PoisonError};

struct State {
    depth: usize,
    /// The real fd 2, while redirected.
    saved: Option<OwnedFd>,
    /// Where fd 2 points while redirected.
    log: Option<File>,
}

static STATE: Mutex<State> = Mutex::new(State {
    depth: 0,
    saved: None,
    log: None,
});

/// One window of silence; fd 2 comes back when the last open one is dropped.
#[must_use]
pub struct Hush {
    /// Where this window's part of the log starts; `None` when nothing was redirected.
    start: Option<u64>,
}

/// Redirect fd 2 away from the terminal until the returned guard is dropped (nothing, when
/// the log is wanted or fd 2 cannot be redirected).
pub fn hush() -> Hush {
    if crate::progress::verbose() {
        return Hush { start: None };
    }
    let mut state = STATE.lock().unwrap_or_else(PoisonError::into_inner);
    if state.depth == 0 {
        let _ = std::io::stderr().flush();
        let Ok(saved) = nix::unistd::dup(std::io::stderr()) else {
            return Hush { start: None };
        };
        let Ok(log) = tempfile::tempfile() else {
            return Hush { start: None };
        };
        if nix::unistd::dup2_stderr(&log).is_err() {
            return Hush { start: None };
        }
        state.saved = Some(saved);
        state.log = Some(log);
    }
    state.depth += 1;
    // fd 2 and `log` share one file offset, so its position is where this window starts.
    let start = state
        .log
        .as_mut()
        .and_then(|log| log.stream_position().ok())
        .unwrap_or(0);
    Hush { start: Some(start) }
}

impl Hush {
    /// The `ERROR` lines LiteRT wrote during this window, one per line.
    pub fn errors(&self) -> Vec<String> {
        let Some(start) = self.start else {
            return Vec::new();
        };
        let state = STATE.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(log) = state.log.as_ref() else {
            return Vec::new();
        };
        let len = log.metadata().map_or(0, |m| m.len());
        let mut bytes = vec![0; usize::try_from(len.saturating_sub(start)).unwrap_or(0)];
        if log.read_exact_at(&mut bytes, start).is_err() {
            return Vec::new();
        }
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| l.starts_with("ERROR") || l.starts_with("FATAL"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Hush {
    fn drop(&mut self) {
        if self.start.is_none() {
            return;
        }
        let mut state = STATE.lock().unwrap_or_else(PoisonError::into_inner);
        state.depth = state.depth.saturating_sub(1);
        if state.depth == 0 {
            if let Some(saved) = state.saved.take() {
                let _ = nix::unistd::dup2_stderr(&saved);
            }
            state.log = None;
        }
    }
}
