//! Progress for long work: one line per stage change on stderr ("[2/8] classifier:int8 ·
//! convert"), when [`crate::progress::wanted`] says so (the fault-injection tests read the
//! worker's pid from the `worker pid N` line).

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

pub struct Progress {
    enabled: bool,
    start: Instant,
    lock: Mutex<()>,
}

impl Progress {
    pub fn new() -> Self {
        Self {
            enabled: crate::progress::wanted(),
            start: Instant::now(),
            lock: Mutex::new(()),
        }
    }

    pub fn hidden() -> Self {
        Self {
            enabled: false,
            start: Instant::now(),
            lock: Mutex::new(()),
        }
    }

    pub fn stage(&self, label: &str, stage: &str) {
        self.line(&format!("{label} · {stage}"));
    }

    /// A warning is printed whether or not progress is shown.
    pub fn warn(&self, message: &str) {
        let _guard = self.lock.lock();
        let _ = writeln!(std::io::stderr().lock(), "warning: {message}");
    }

    pub fn finish(&self, label: &str, ok: bool) {
        self.line(&format!("{label} · {}", if ok { "done" } else { "failed" }));
    }

    fn line(&self, text: &str) {
        if !self.enabled {
            return;
        }
        let _guard = self.lock.lock();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{:>6.1}s  {text}", self.start.elapsed().as_secs_f64());
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}
