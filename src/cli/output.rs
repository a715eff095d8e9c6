//! Process output conventions shared by every verb: exit codes, data on stdout (a closed
//! pipe is not an error), errors on stderr in the `error:` / `Caused by:` / `hint:` form,
//! and whether colour is wanted.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

pub use crate::diag::Hinted;

/// The documented exit codes (README, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything held.
    Success = 0,
    /// The command ran, and what it checked did not hold (a diff, a drift, a failed gate).
    Failure = 1,
    /// Invalid input: a bad recipe, a missing or unreadable file, a bad argument.
    Usage = 2,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// Write data to stdout. A reader that went away (`litert plan x | head`) is not an error.
pub fn stdout(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Write a line of text meant for people to stderr; failures to write are ignored.
pub fn stderr(text: &str) {
    let mut err = io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// Whether stderr output may use ANSI colours: a terminal, and `NO_COLOR` unset or empty.
pub fn stderr_color() -> bool {
    io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether stdout may use ANSI colours: a terminal, and `NO_COLOR` unset or empty.
pub fn stdout_color() -> bool {
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The report's marks in colour, as the diagnostics on stderr are: `✓` green, `✗` red.
pub fn paint_marks(text: &str) -> String {
    text.replace('✓', "\x1b[32m✓\x1b[0m")
        .replace('✗', "\x1b[31m✗\x1b[0m")
}

/// Print an error chain: the outermost message, then each cause, then any hints.
pub fn print_error(err: &anyhow::Error) {
    stderr(&render_error(err));
}

fn render_error(err: &anyhow::Error) -> String {
    let mut text = String::new();
    let mut hints = Vec::new();
    for (i, cause) in err.chain().enumerate() {
        if let Some(hinted) = cause.downcast_ref::<Hinted>() {
            hints.push(hinted.hint.clone());
        }
        if i == 0 {
            text.push_str(&format!("error: {cause}\n"));
        } else {
            text.push_str(&format!("  Caused by: {cause}\n"));
        }
    }
    for hint in hints {
        text.push_str(&format!("\nhint: {hint}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn marks_are_painted() {
        assert_eq!(
            paint_marks("✓ a\n    ✗ b\n"),
            "\x1b[32m✓\x1b[0m a\n    \x1b[31m✗\x1b[0m b\n"
        );
    }

    #[test]
    fn error_chain_renders_causes_and_hints() {
        let err = Err::<(), _>(Hinted::new("disk on fire", "free some space"))
            .context("cannot write `a.tflite`")
            .unwrap_err();
        assert_eq!(
            render_error(&err),
            "error: cannot write `a.tflite`\n  Caused by: disk on fire\n\nhint: free some space\n"
        );
    }
}
