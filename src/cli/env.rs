//! `litert env setup | show | doctor`: provision the Python worker environment now, describe
//! it, and diagnose it check by check with what to do about each problem. Also owns the
//! `--python` flag (with `LITERT_PYTHON`) that every verb running Python shares.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{Exit, Hinted, output};
use crate::worker::env::{
    self, EnvRequest, KEY_PACKAGES, Layout, Lock, REQUIRED, disk, provision, python,
};

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

/// The interpreter choice shared by every verb that runs Python.
#[derive(Debug, Clone, Args)]
pub struct PythonArgs {
    /// Use this Python (with tensorflow, keras and ai-edge-litert installed) instead of the
    /// environment litert provisions; package versions are checked against the lock.
    /// [env: LITERT_PYTHON]
    // Not clap's `env`: clap takes an empty LITERT_PYTHON as an empty path and fails, where
    // an empty variable should mean unset. `EnvRequest::from_env` reads it instead.
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
}

impl PythonArgs {
    pub fn request(&self) -> EnvRequest {
        EnvRequest::from_env(self.python.clone())
    }
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
    let layout = Layout::new(&env::cache_dir()?, &lock);
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
            disk::human(r.bytes)
        ));
    }
    for path in &busy {
        text.push_str(&format!("skipped {} (being provisioned)\n", path.display()));
    }
    let total: u64 = removed.iter().map(|r| r.bytes).sum();
    text.push_str(&match removed.len() {
        0 => "nothing to remove\n".to_string(),
        n => format!("{verb} {n} item(s), {}\n", disk::human(total)),
    });
    output::stderr(&text);
    Ok(Exit::Success)
}

fn setup(args: SetupArgs) -> anyhow::Result<Exit> {
    let req = args.python.request();
    let start = Instant::now();
    let (ready, built) = match env::ensure_reporting(&req, args.force) {
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

#[derive(Serialize)]
struct ShowReport {
    python: String,
    python_version: Option<String>,
    external: bool,
    provisioned: bool,
    env: Option<String>,
    cache_dir: Option<String>,
    lock_digest: String,
    requires_python: String,
    pins: usize,
    packages: Vec<PackageRow>,
    mismatches: Vec<String>,
}

#[derive(Serialize)]
struct PackageRow {
    name: String,
    lock: String,
    installed: Option<String>,
}

fn show(args: ShowArgs) -> anyhow::Result<Exit> {
    let req = args.python.request();
    let lock = Lock::embedded()?;
    let mut report = ShowReport {
        python: String::new(),
        python_version: None,
        external: req.python_override.is_some(),
        provisioned: false,
        env: None,
        cache_dir: None,
        lock_digest: lock.digest.clone(),
        requires_python: lock.requires_python.to_string(),
        pins: lock.pins.len(),
        packages: Vec::new(),
        mismatches: Vec::new(),
    };
    let installed = if let Some(python) = &req.python_override {
        let interp = match env::query_against_lock(python, &lock) {
            Ok(interp) => interp,
            Err(err) => {
                output::print_error(&err);
                return Ok(Exit::Failure);
            }
        };
        report.python = python.display().to_string();
        report.python_version = Some(interp.python_version.clone());
        report.mismatches = env::mismatches(&lock, &interp);
        report.cache_dir = env::cache_dir().ok().map(|d| d.display().to_string());
        env::installed(&interp)
    } else {
        let cache = env::cache_dir()?;
        let layout = Layout::new(&cache, &lock);
        report.python = layout.python().display().to_string();
        report.env = Some(layout.root.display().to_string());
        report.cache_dir = Some(cache.display().to_string());
        match provision::read_ready(&layout, &lock) {
            Some(marker) => {
                report.provisioned = true;
                report.python_version = Some(marker.python_version);
                marker.packages
            }
            None => Default::default(),
        }
    };
    for pin in &lock.pins {
        if args.all || KEY_PACKAGES.contains(&pin.name.as_str()) {
            report.packages.push(PackageRow {
                name: pin.name.clone(),
                lock: pin.version.clone(),
                installed: installed.get(&pin.name).cloned(),
            });
        }
    }
    if !args.all {
        // Key packages in their order of importance, not alphabetically.
        report.packages.sort_by_key(|row| {
            KEY_PACKAGES
                .iter()
                .position(|k| *k == row.name)
                .unwrap_or(usize::MAX)
        });
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

impl Status {
    fn glyph(self) -> &'static str {
        match self {
            Status::Pass => "✓",
            Status::Warn => "!",
            Status::Fail => "✗",
            Status::Skip => "-",
        }
    }
}

#[derive(Debug, Serialize)]
struct Check {
    name: String,
    status: Status,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

impl Check {
    fn new(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Check {
        self.hint = Some(hint.into());
        self
    }

    /// A failed check from an error: its message, and its hint when it has one.
    fn from_error(name: &str, err: &anyhow::Error) -> Check {
        let hinted = err.chain().find_map(|c| c.downcast_ref::<Hinted>());
        let check = Check::new(name, Status::Fail, format!("{err:#}"));
        match hinted {
            Some(h) => check.hint(h.hint.clone()),
            None => check,
        }
    }
}

#[derive(Serialize)]
struct DoctorReport {
    ok: bool,
    python: Option<String>,
    external: bool,
    env: Option<String>,
    lock_digest: String,
    checks: Vec<Check>,
}

fn doctor(args: DoctorArgs) -> anyhow::Result<Exit> {
    let req = args.python.request();
    let lock = Lock::embedded()?;
    let report = diagnose(&req, &lock);
    if args.json {
        output::stdout(&(serde_json::to_string_pretty(&report)? + "\n"))?;
    } else {
        output::stdout(&render_doctor(&report))?;
    }
    Ok(if report.ok {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn diagnose(req: &EnvRequest, lock: &Lock) -> DoctorReport {
    let mut checks = Vec::new();
    let external = req.python_override.is_some();

    // The cache directory: where environments (and later, build caches) live.
    let cache = env::cache_dir();
    let layout = cache.as_ref().ok().map(|c| Layout::new(c, lock));
    match (&cache, &layout) {
        (Ok(cache), Some(layout)) => checks.push(match writable(&layout.envs) {
            Ok(()) => Check::new(
                "cache directory",
                Status::Pass,
                format!("{} (writable)", cache.display()),
            ),
            Err(err) => Check::new(
                "cache directory",
                Status::Fail,
                format!("{} is not writable: {err}", cache.display()),
            )
            .hint("set LITERT_CACHE_DIR to a directory you can write to"),
        }),
        _ => {
            let detail = cache
                .as_ref()
                .err()
                .map_or_else(|| "unknown".to_string(), |e| format!("{e:#}"));
            checks.push(
                Check::new("cache directory", Status::Fail, detail)
                    .hint("set LITERT_CACHE_DIR to a directory you can write to"),
            );
        }
    }

    let ready = layout.as_ref().and_then(|l| provision::read_ready(l, lock));

    // Free disk: only a first provisioning needs much.
    if let Ok(cache) = &cache {
        checks.push(match disk::available(cache) {
            Ok(free) if ready.is_some() || external => Check::new(
                "free disk",
                Status::Pass,
                format!("{} free in the cache directory", disk::human(free)),
            ),
            Ok(free) if free >= disk::REQUIRED_FREE_BYTES => Check::new(
                "free disk",
                Status::Pass,
                format!(
                    "{} free (about {} needed to provision)",
                    disk::human(free),
                    disk::human(disk::REQUIRED_FREE_BYTES)
                ),
            ),
            Ok(free) => {
                let h = disk::not_enough(cache, free, disk::REQUIRED_FREE_BYTES);
                Check::new("free disk", Status::Fail, h.message).hint(h.hint)
            }
            Err(err) => Check::new(
                "free disk",
                Status::Warn,
                format!("cannot tell the free space: {err}"),
            ),
        });
    }

    // The base Python: what a (re)provisioning would use.
    if external {
        checks.push(Check::new(
            "base Python",
            Status::Skip,
            "not used: an external interpreter is set (LITERT_PYTHON or --python)",
        ));
    } else {
        checks.push(match env::find_base(lock) {
            Ok((base, info)) => Check::new(
                "base Python",
                Status::Pass,
                format!(
                    "{}: CPython {} ({})",
                    base.display(),
                    info.python_version,
                    info.executable
                ),
            ),
            Err(err) if ready.is_some() => {
                // The environment exists; only a rebuild would need the base Python.
                let mut check = Check::from_error("base Python", &err);
                check.status = Status::Warn;
                check.detail = format!("{} (only needed to rebuild the environment)", check.detail);
                check
            }
            Err(err) => Check::from_error("base Python", &err),
        });
    }

    // The interpreter the worker would run, and its packages.
    let mut python_path = None;
    let mut env_dir = None;
    let usable = if let Some(python) = &req.python_override {
        python_path = Some(python.display().to_string());
        match env::query_against_lock(python, lock) {
            Ok(interp) => {
                checks.push(Check::new(
                    "environment",
                    Status::Pass,
                    format!(
                        "external interpreter {} (Python {})",
                        python.display(),
                        interp.python_version
                    ),
                ));
                let missing: Vec<&str> = REQUIRED
                    .iter()
                    .filter(|(_, m)| interp.modules.get(*m) != Some(&true))
                    .map(|(d, _)| *d)
                    .collect();
                let mism = env::mismatches(lock, &interp);
                checks.push(if !missing.is_empty() {
                    Check::new(
                        "package versions",
                        Status::Fail,
                        format!("missing what the worker needs: {}", missing.join(", ")),
                    )
                    .hint("install them into that interpreter, or unset LITERT_PYTHON to let litert provision its own environment")
                } else if mism.is_empty() {
                    Check::new(
                        "package versions",
                        Status::Pass,
                        format!("all {} pins match the lock", lock.pins.len()),
                    )
                } else {
                    Check::new(
                        "package versions",
                        Status::Warn,
                        format!("{} differ from the lock: {}", mism.len(), summarize(&mism)),
                    )
                    .hint("exports may differ from ones made with the lock; unset LITERT_PYTHON to use litert's own environment")
                });
                missing.is_empty()
            }
            Err(err) => {
                checks.push(Check::from_error("environment", &err));
                false
            }
        }
    } else if let Some(layout) = &layout {
        python_path = Some(layout.python().display().to_string());
        env_dir = Some(layout.root.display().to_string());
        match &ready {
            Some(marker) => {
                checks.push(Check::new(
                    "environment",
                    Status::Pass,
                    format!(
                        "{} (Python {}, lock sha256 {}…)",
                        layout.root.display(),
                        marker.python_version,
                        lock.short_digest()
                    ),
                ));
                checks.push(versions_check(&layout.python(), lock));
                true
            }
            None => {
                let (detail, hint) = if layout.root.exists() {
                    (
                        format!("{} is incomplete or broken", layout.root.display()),
                        "run `litert env setup --force` to rebuild it",
                    )
                } else {
                    (
                        format!("not provisioned yet ({})", layout.root.display()),
                        "run `litert env setup` (or let the first `litert apply` do it)",
                    )
                };
                checks.push(Check::new("environment", Status::Fail, detail).hint(hint));
                false
            }
        }
    } else {
        false
    };

    // The imports the worker does, timed: TensorFlow's dominates every apply's start-up.
    let modules = ["tensorflow", "keras", "ai_edge_litert.interpreter"];
    let python_for_imports = python_path.as_ref().map(PathBuf::from);
    match (usable, python_for_imports) {
        (true, Some(py)) => match python::query(&py, !external, "imports", &modules) {
            Ok(interp) => {
                for result in interp.imports {
                    let name = format!("import {}", result.module);
                    checks.push(if result.ok {
                        Check::new(name, Status::Pass, format!("{:.2}s", result.seconds))
                    } else {
                        Check::new(
                            name,
                            Status::Fail,
                            result.error.unwrap_or_else(|| "failed".into()),
                        )
                        .hint(if external {
                            "fix that interpreter's installation, or unset LITERT_PYTHON"
                        } else {
                            "run `litert env setup --force` to rebuild the environment"
                        })
                    });
                }
            }
            Err(err) => checks.push(Check::new("imports", Status::Fail, err.to_string())),
        },
        _ => {
            for m in modules {
                checks.push(Check::new(
                    format!("import {m}"),
                    Status::Skip,
                    "skipped: no usable environment",
                ));
            }
        }
    }

    DoctorReport {
        ok: checks.iter().all(|c| c.status != Status::Fail),
        python: python_path,
        external,
        env: env_dir,
        lock_digest: lock.digest.clone(),
        checks,
    }
}

/// Compare what is really installed in the provisioned environment with the lock (the
/// marker says what was installed; someone may have pip-installed into it since).
fn versions_check(python_path: &std::path::Path, lock: &Lock) -> Check {
    let names: Vec<&str> = lock.pins.iter().map(|p| p.name.as_str()).collect();
    match python::query(python_path, true, "packages", &names) {
        Ok(interp) => {
            let mism: Vec<String> = env::mismatches(lock, &interp);
            if mism.is_empty() {
                Check::new(
                    "package versions",
                    Status::Pass,
                    format!("all {} pins match the lock", lock.pins.len()),
                )
            } else {
                Check::new(
                    "package versions",
                    Status::Fail,
                    format!("{} differ from the lock: {}", mism.len(), summarize(&mism)),
                )
                .hint("run `litert env setup --force` to rebuild the environment")
            }
        }
        Err(err) => Check::new("package versions", Status::Fail, err.to_string())
            .hint("run `litert env setup --force` to rebuild the environment"),
    }
}

fn summarize(items: &[String]) -> String {
    let mut text = items.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
    if items.len() > 5 {
        text.push_str(&format!("; … and {} more", items.len() - 5));
    }
    text
}

fn writable(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    tempfile::NamedTempFile::new_in(dir).map(drop)
}

fn render_doctor(r: &DoctorReport) -> String {
    let width = r.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in &r.checks {
        out.push_str(&format!(
            "{} {:<width$}  {}\n",
            c.status.glyph(),
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
