//! Progress for people on stderr: whether to show it at all ([`wanted`], one rule for every
//! display), whether other programs' logs are shown ([`verbose`]), and the display of long
//! setup work ([`Ui`]: provisioning an environment or the runtime), one indicatif line naming
//! the stage (a spinner, or a bar while packages are fetched), drawn only on a terminal.
//! Without it nothing is drawn, so logs and test snapshots stay clean. (`apply`'s stage lines
//! are `engine::progress`.)

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether to show progress, as the README documents it: always with `LITERT_PROGRESS=1`
/// (CI logs, and the fault-injection tests, which read the worker's pid from `apply`'s stage
/// lines); otherwise on a terminal, unless `LITERT_NO_PROGRESS` is set (to anything but
/// empty).
pub fn wanted() -> bool {
    let forced = std::env::var("LITERT_PROGRESS").is_ok_and(|v| v == "1");
    forced
        || (std::io::stderr().is_terminal()
            && std::env::var_os("LITERT_NO_PROGRESS").is_none_or(|v| v.is_empty()))
}

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Record `-v`/`--verbose` for [`verbose`].
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

/// Whether other programs' logs reach stderr: the worker's (TensorFlow) and the LiteRT
/// runtime's. Off unless `-v`/`--verbose` is given or `LITERT_VERBOSE` is set to anything
/// but empty or `0`.
pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
        || std::env::var("LITERT_VERBOSE").is_ok_and(|v| !v.is_empty() && v != "0")
}

pub struct Ui {
    bar: ProgressBar,
    enabled: bool,
}

impl Ui {
    pub fn new(enabled: bool) -> Ui {
        let bar = if enabled {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        Ui { bar, enabled }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// An open-ended stage: a spinner, the message and the time spent so far.
    pub fn stage(&self, message: impl Into<String>) {
        if let Ok(style) = ProgressStyle::with_template("{spinner:.cyan} {msg} [{elapsed}]") {
            self.bar.set_style(style);
        }
        self.bar.set_length(0);
        self.bar.set_position(0);
        self.bar.set_message(message.into());
        self.bar.enable_steady_tick(Duration::from_millis(120));
    }

    /// A counted stage: a bar of `len` steps.
    pub fn counted(&self, len: u64, message: impl Into<String>) {
        if let Ok(style) =
            ProgressStyle::with_template("{spinner:.cyan} {msg} [{bar:30}] {pos}/{len} [{elapsed}]")
        {
            self.bar.set_style(style.progress_chars("=> "));
        }
        self.bar.set_length(len);
        self.bar.set_position(0);
        self.bar.set_message(message.into());
        self.bar.enable_steady_tick(Duration::from_millis(120));
    }

    pub fn set_position(&self, pos: u64) {
        self.bar.set_position(pos);
    }

    pub fn set_message(&self, message: impl Into<String>) {
        self.bar.set_message(message.into());
    }

    /// A line for people on stderr that must not be torn by the progress line; printed
    /// whether or not progress is drawn (waiting on another process is worth knowing in CI).
    pub fn note(&self, text: &str) {
        let line = format!("{text}\n");
        if self.enabled {
            self.bar.suspend(|| eprint_ignoring_errors(&line));
        } else {
            eprint_ignoring_errors(&line);
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// `eprint!` panics when stderr is closed; a progress note is never worth a panic.
fn eprint_ignoring_errors(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

impl Drop for Ui {
    fn drop(&mut self) {
        // An error return must not leave a spinner ticking over the error message.
        self.bar.finish_and_clear();
    }
}
