//! `litert env setup | show | doctor | clean`: the arguments, and the printing (text or
//! `--json`) of what `pyenv` does: provision the Python worker environment now,
//! describe it, diagnose it check by check, remove other locks' environments.

use std::time::Instant;

use clap::{Args, Subcommand};

use super::common::PythonArgs;
use super::{Exit, output};
use crate::pyenv::describe::{DescribeError, ShowReport, describe};
use crate::pyenv::doctor::{DoctorReport, Status, diagnose};
use crate::pyenv::{self, Layout, Lock, provision};

/// Provision, describe or diagnose the Python environment the worker runs in.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert env setup                 # provision now (apply does it on first use)\n  litert env show --json\n  litert env doctor\n  LITERT_PYTHON=~/venvs/tf/bin/python litert env doctor\n\nEnvironment variables: LITERT_PYTHON (use this interpreter), LITERT_BASE_PYTHON (make the\nenvironment from this Python), LITERT_CACHE_DIR (where environments live), LITERT_NO_PROGRESS.\nSee docs/environment.md."
)]
pub struct EnvArgs {
    #[command(subcommand)]
    command: EnvCommand,
}

#[derive(Debug, Subcommand)]
enum EnvCommand {
    Setup(SetupArgs),
    Show(ShowArgs),
    Doctor(DoctorArgs),
    Clean(CleanArgs),
}

/// Provision the worker environment now (about 2 minutes and 2.5 GB the first time), then
/// print its directory on stdout. With an external interpreter, check it instead.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert env setup\n  litert env setup --force          # rebuild from scratch\n  LITERT_CACHE_DIR=/big/disk/litert litert env setup\n\nExit codes: 0 ready, 1 provisioning failed (the error says why and what to do)."
)]
pub struct SetupArgs {
    #[command(flatten)]
    python: PythonArgs,
    /// Rebuild the environment even if it is already provisioned.
    #[arg(long)]
    force: bool,
}

/// Describe the worker environment: interpreter, directory, lock digest and the key package
/// versions. Never provisions.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert env show\n  litert env show --all             # every pinned package\n  litert env show --json | jq -r .python"
)]
pub struct ShowArgs {
    #[command(flatten)]
    python: PythonArgs,
    /// Print JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// List every pinned package, not only the key ones.
    #[arg(long)]
    all: bool,
}

/// Check everything the worker needs, one line per check with what to do about failures:
/// the cache directory, free disk, the base Python, the environment, package versions
/// against the lock, and whether TensorFlow and the LiteRT interpreter import.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert env doctor\n  litert env doctor --json\n  litert env doctor --python /usr/bin/python3\n\nExit codes: 0 every check passed (warnings allowed), 1 a check failed."
)]
pub struct DoctorArgs {
    #[command(flatten)]
    python: PythonArgs,
    /// Print JSON on stdout instead of the checklist.
    #[arg(long)]
    json: bool,
}

/// Delete environments provisioned for other lock versions (older or newer litert
/// binaries), leftovers of interrupted installs and failed-install logs. Each environment is
/// about 2.5 GB.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert env clean --dry-run        # list what would go\n  litert env clean\n  litert env clean --all            # the current environment too\n\nAn environment being provisioned right now is skipped. Do not remove the current\nenvironment (--all) while a `litert apply` is running."
)]
pub struct CleanArgs {
    /// Remove the current lock's environment too (it is provisioned again on next use).
    #[arg(long)]
    all: bool,
    /// Only list what would be removed.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(args: EnvArgs) -> anyhow::Result<Exit> {
    match args.command {
        EnvCommand::Setup(args) => setup(args),
        EnvCommand::Show(args) => show(args),
        EnvCommand::Doctor(args) => doctor(args),
        EnvCommand::Clean(args) => clean(args),
    }
}

fn clean(args: CleanArgs) -> anyhow::Result<Exit> {
    let lock = Lock::embedded()?;
    let layout = Layout::new(&pyenv::cache_dir()?, &lock);
    let keep = (!args.all).then(|| lock.short_digest());
    let (removed, busy) = provision::clean(&layout.envs, keep, args.dry_run)?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut text = String::new();
    for r in &removed {
        text.push_str(&format!(
            "{verb} {} ({})\n",
            r.path.display(),
            crate::units::human_bytes(r.bytes)
        ));
    }
    for path in &busy {
        text.push_str(&format!("skipped {} (being provisioned)\n", path.display()));
    }
    let total: u64 = removed.iter().map(|r| r.bytes).sum();
    text.push_str(&match removed.len() {
        0 => "nothing to remove\n".to_string(),
        n => format!("{verb} {n} item(s), {}\n", crate::units::human_bytes(total)),
    });
    output::stderr(&text);
    Ok(Exit::Success)
}

fn setup(args: SetupArgs) -> anyhow::Result<Exit> {
    let req = args.python.request();
    let start = Instant::now();
    let (ready, built) = match pyenv::ensure_reporting(&req, args.force) {
        Ok(ensured) => (ensured.env, ensured.built),
        Err(err) => {
            output::print_error(&err);
            return Ok(Exit::Failure);
        }
    };
    warn_mismatches(&ready.mismatches);
    let versions = ["tensorflow", "keras", "ai-edge-litert"]
        .iter()
        .filter_map(|n| ready.packages.get(*n).map(|v| format!("{n} {v}")))
        .collect::<Vec<_>>()
        .join(", ");
    let how = if ready.external {
        "external interpreter, nothing to provision".to_string()
    } else if built {
        format!("provisioned in {:.1}s", start.elapsed().as_secs_f64())
    } else {
        "already provisioned".to_string()
    };
    output::stderr(&format!(
        "Python worker environment ready: Python {}, {versions} ({how})\n",
        ready.python_version
    ));
    let path = ready.root.as_ref().unwrap_or(&ready.python);
    output::stdout(&format!("{}\n", path.display()))?;
    Ok(Exit::Success)
}

fn warn_mismatches(mismatches: &[String]) {
    if mismatches.is_empty() {
        return;
    }
    let mut text = format!(
        "warning: the interpreter differs from litert's lock in {} place(s); exports may differ from ones made with the lock:\n",
        mismatches.len()
    );
    for m in mismatches.iter().take(12) {
        text.push_str(&format!("  - {m}\n"));
    }
    if mismatches.len() > 12 {
        text.push_str(&format!(
            "  … and {} more (`litert env show --all` lists every pin)\n",
            mismatches.len() - 12
        ));
    }
    output::stderr(&text);
}

fn show(args: ShowArgs) -> anyhow::Result<Exit> {
    let req = args.python.request();
    let lock = Lock::embedded()?;
    let report = match describe(&req, &lock, args.all) {
        Ok(report) => report,
        Err(DescribeError::Interpreter(err)) => {
            output::print_error(&err);
            return Ok(Exit::Failure);
        }
        Err(DescribeError::Cache(err)) => return Err(err),
    };
    if args.json {
        output::stdout(&(serde_json::to_string_pretty(&report)? + "\n"))?;
    } else {
        output::stdout(&render_show(&report))?;
    }
    warn_mismatches(&report.mismatches);
    Ok(Exit::Success)
}

fn render_show(r: &ShowReport) -> String {
    let mut out = String::new();
    let mut row = |label: &str, value: &str| out.push_str(&format!("{label:<15} {value}\n"));
    if r.external {
        row(
            "python",
            &format!("{} (external: LITERT_PYTHON or --python)", r.python),
        );
    } else {
        row("python", &r.python);
    }
    row("python version", r.python_version.as_deref().unwrap_or("-"));
    match (&r.env, r.external, r.provisioned) {
        (_, true, _) => row("environment", "none: an external interpreter is used"),
        (Some(env), false, true) => row("environment", &format!("{env} (provisioned)")),
        (Some(env), false, false) => row(
            "environment",
            &format!(
                "{env} (not provisioned yet: `litert env setup`, or the first `litert apply`)"
            ),
        ),
        (None, false, _) => row("environment", "-"),
    }
    row("cache", r.cache_dir.as_deref().unwrap_or("-"));
    row(
        "lock",
        &format!(
            "{} pins, Python {}, sha256 {}",
            r.pins, r.requires_python, r.lock_digest
        ),
    );
    let width = r
        .packages
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(0)
        .max(7);
    out.push_str(&format!(
        "\n  {:<width$}  {:<12}  lock\n",
        "package", "installed"
    ));
    for p in &r.packages {
        let installed = p.installed.as_deref().unwrap_or("-");
        let flag = match &p.installed {
            Some(v) if *v == p.lock => "",
            _ if !r.provisioned && !r.external => "",
            _ => "  ≠",
        };
        out.push_str(&format!(
            "  {:<width$}  {:<12}  {}{flag}\n",
            p.name, installed, p.lock
        ));
    }
    out
}

fn doctor(args: DoctorArgs) -> anyhow::Result<Exit> {
    let req = args.python.request();
    let lock = Lock::embedded()?;
    let report = diagnose(&req, &lock);
    if args.json {
        output::stdout(&(serde_json::to_string_pretty(&report)? + "\n"))?;
    } else {
        let text = render_doctor(&report);
        if output::stdout_color() {
            output::stdout(&output::paint_marks(&text))?;
        } else {
            output::stdout(&text)?;
        }
    }
    Ok(if report.ok {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn render_doctor(r: &DoctorReport) -> String {
    let width = r.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in &r.checks {
        out.push_str(&format!(
            "{} {:<width$}  {}\n",
            glyph(c.status),
            c.name,
            c.detail
        ));
        if let Some(hint) = &c.hint
            && c.status != Status::Pass
        {
            out.push_str(&format!("  {:<width$}  hint: {hint}\n", ""));
        }
    }
    let failed = r.checks.iter().filter(|c| c.status == Status::Fail).count();
    let warned = r.checks.iter().filter(|c| c.status == Status::Warn).count();
    out.push('\n');
    out.push_str(&match (failed, warned) {
        (0, 0) => "all checks passed\n".to_string(),
        (0, w) => format!("all checks passed, {w} warning(s)\n"),
        (f, _) => format!("{f} check(s) failed\n"),
    });
    out
}

fn glyph(status: Status) -> &'static str {
    match status {
        Status::Pass => "✓",
        Status::Warn => "!",
        Status::Fail => "✗",
        Status::Skip => "-",
    }
}
