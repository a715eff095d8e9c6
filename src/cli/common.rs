//! What the verbs share, so that no verb borrows from another (cargo's `command_prelude` is
//! the model): the argument groups (`RecipeArgs`, `BuildArgs` with `PythonArgs` and
//! `CacheArgs`), turning command-line paths into checked build plans, the build report that
//! `apply`, `test` and `cache pull` print, and reading a model or a bundle with hinted
//! errors.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use super::{Exit, Hinted, output};
use crate::cache::{self, Remote, Settings};
use crate::diag::{Diagnostic, Sources};
use crate::engine::{self, contract::Policy, report, session::Session};
use crate::litertlm::model::BundleInfo;
use crate::pyenv::EnvRequest;
use crate::recipe::{self, BuildPlan, Overrides};
use crate::tflite::model::ModelInfo;
use crate::tflite::{ReadError, ReadOptions, read_path};

/// A year: any longer is a typo, and a bound keeps the deadline arithmetic exact.
const MAX_TIMEOUT_SECS: u64 = 365 * 24 * 3600;

/// Flags every recipe verb takes.
#[derive(Debug, Args)]
pub struct RecipeArgs {
    /// Override a template variable declared under `vars:` (repeatable), e.g.
    /// `--set preset=presets/tiny_gemma`.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
}

impl RecipeArgs {
    pub fn overrides(&self) -> anyhow::Result<Overrides> {
        let mut sets = Vec::new();
        for s in &self.sets {
            let Some((k, v)) = s.split_once('=') else {
                bail!(output::Hinted::new(
                    format!("`--set {s}` is not `NAME=VALUE`"),
                    "write e.g. `--set sequence_length=128`"
                ));
            };
            sets.push((k.trim().to_string(), v.to_string()));
        }
        Ok(Overrides { sets })
    }
}

/// Expand paths into recipe files: files as given, directories searched recursively for
/// `*.yaml` / `*.yml` (skipping names that start with `_` or `.`, which are base recipes
/// meant for `extends:` and hidden files), and glob patterns.
pub fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        let text = path.to_string_lossy();
        if text.contains(['*', '?', '[']) && !path.exists() {
            let matches =
                glob::glob(&text).with_context(|| format!("invalid glob pattern `{text}`"))?;
            let mut found: Vec<PathBuf> = matches
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            if found.is_empty() {
                bail!(output::Hinted::new(
                    format!("no recipe matches `{text}`"),
                    "check the pattern, or quote it so the shell does not expand it"
                ));
            }
            found.sort();
            out.extend(found);
        } else if path.is_dir() {
            let before = out.len();
            let mut skipped = Vec::new();
            walk(path, &mut out, &mut skipped)
                .with_context(|| format!("cannot read directory `{}`", path.display()))?;
            out[before..].sort();
            skipped.sort();
            for file in skipped {
                output::stderr(&format!(
                    "note: skipped `{}`: not a recipe (no top-level `version:`, `model:` or `extends:`)\n",
                    file.display()
                ));
            }
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, skipped: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            walk(&path, out, skipped)?;
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            if looks_like_recipe(&path) {
                out.push(path);
            } else {
                skipped.push(path);
            }
        }
    }
    Ok(())
}

/// Whether a YAML file found in a directory is meant as a recipe: a top-level `version:`,
/// `model:` or `extends:` key. Other YAML (CI workflows, dataset cards) is left alone; a
/// file that cannot be read is kept, so that checking it reports why.
fn looks_like_recipe(path: &Path) -> bool {
    use std::io::Read;
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(1 << 20).read_to_end(&mut bytes));
    if read.is_err() {
        return true;
    }
    String::from_utf8_lossy(&bytes).lines().any(|line| {
        ["version:", "model:", "extends:"]
            .iter()
            .any(|key| line.starts_with(key))
    })
}

/// The recipe paths to use when none are given: the project's `recipes/` directory, the
/// project found upwards from the working directory (as cargo finds `Cargo.toml`).
pub fn default_paths(paths: Vec<PathBuf>) -> anyhow::Result<Vec<PathBuf>> {
    if !paths.is_empty() {
        return Ok(paths);
    }
    let root = crate::lock::project_root(Path::new("."));
    let dir = if root == Path::new(".") {
        PathBuf::from("recipes")
    } else {
        root.join("recipes")
    };
    if dir.is_dir() {
        Ok(vec![dir])
    } else {
        bail!(output::Hinted::new(
            format!(
                "no recipes given and no `recipes/` directory in this project ({})",
                std::path::absolute(&root).unwrap_or(root).display()
            ),
            "name recipe files or directories, e.g. `litert check recipes/`"
        ))
    }
}

/// Print diagnostics for people on stderr.
pub fn print_diagnostics(diags: &[Diagnostic], sources: &Sources) {
    let color = output::stderr_color();
    for d in diags {
        output::stderr(&d.render(sources, color));
    }
}

/// What every building verb (`apply`, `test`) takes.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Allow recipes to run Python code from the project: model factories, custom objects,
    /// calibration generators.
    #[arg(long)]
    pub allow_code: bool,
    /// Load `.keras` files outside Keras' safe mode (needed for `Lambda` layers).
    #[arg(long)]
    pub allow_unsafe: bool,
    /// Run this many workers at once (each holds its own TensorFlow, up to ~2 GB).
    #[arg(long, short = 'j', default_value_t = 1)]
    pub jobs: usize,
    /// Longest one build may take, in seconds (at most a year).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
    pub timeout: u64,
    #[command(flatten)]
    pub python: PythonArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
}

impl BuildArgs {
    /// The session for `plans`, with the worker count capped by memory.
    pub fn session(
        &self,
        plans: &[BuildPlan],
        policy: Policy,
        force: bool,
    ) -> anyhow::Result<Session> {
        if self.jobs == 0 {
            bail!(Hinted::new(
                "`--jobs 0` runs nothing",
                "use `--jobs 1` or more"
            ));
        }
        let fit = engine::footprint::fit_this_machine(plans, self.jobs.min(plans.len().max(1)));
        for warning in &fit.warnings {
            output::stderr(&format!("warning: {warning}\n"));
        }
        if let Some(note) = &fit.note {
            output::stderr(&format!("note: {note}\n"));
        }
        let jobs = fit.jobs;
        Ok(Session {
            env: self.python.request(),
            allow_code: self.allow_code,
            allow_unsafe: self.allow_unsafe,
            jobs,
            timeout: Duration::from_secs(self.timeout.max(1)),
            verbose: crate::progress::verbose(),
            policy,
            force,
            cache: self.cache.open(plans)?,
            pull_only: false,
            shard: None,
        })
    }
}

pub fn checked_plans(
    paths: &[PathBuf],
    recipe: &RecipeArgs,
) -> anyhow::Result<Option<Vec<BuildPlan>>> {
    let overrides = recipe.overrides()?;
    let files = expand(paths)?;
    let mut sources = Sources::default();
    let mut plans = Vec::new();
    let mut invalid = false;
    for file in &files {
        let checked = recipe::check_file(file, &overrides, &mut sources);
        print_diagnostics(&checked.diagnostics, &sources);
        invalid |= checked.has_errors();
        plans.extend(checked.plans);
    }
    let clashes = recipe::check_distinct_across(&plans, &sources);
    print_diagnostics(&clashes, &sources);
    invalid |= !clashes.is_empty();
    Ok((!invalid).then_some(plans))
}

/// Whether `CI` is set to something other than empty or `false`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
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

/// Which remote cache a run uses.
#[derive(Debug, Args, Clone, Default)]
pub struct CacheArgs {
    /// Share artifacts through this cache: s3://BUCKET[/PREFIX], gs://…, az://…,
    /// http(s)://HOST/PATH (plain GET/PUT) or file:///DIR. Default: the project's
    /// `.litert.yaml` setting.
    #[arg(long, value_name = "URL", env = "LITERT_CACHE_URL")]
    pub cache: Option<String>,
    /// Restore from the cache but never write to it (for untrusted builds: pull requests).
    #[arg(long, env = "LITERT_CACHE_READ_ONLY")]
    pub cache_read_only: bool,
    /// Use no cache, whatever the environment or the project says.
    #[arg(long, conflicts_with = "cache")]
    pub no_cache: bool,
}

impl CacheArgs {
    /// The settings for a run over `plans`, if it uses a cache.
    pub fn settings(&self, plans: &[BuildPlan]) -> anyhow::Result<Option<Settings>> {
        let roots: BTreeSet<PathBuf> = plans.iter().map(|p| p.root.clone()).collect();
        cache::settings::resolve(
            self.cache.as_deref(),
            self.cache_read_only,
            self.no_cache,
            &roots,
        )
    }

    /// The open cache for a run over `plans`, if it uses one.
    pub fn open(&self, plans: &[BuildPlan]) -> anyhow::Result<Option<Arc<Remote>>> {
        match self.settings(plans)? {
            Some(s) => Ok(Some(Arc::new(Remote::open(&s)?))),
            None => Ok(None),
        }
    }
}

/// The build report on stdout (human or `--json`); success when every build is ok.
pub fn print_outcomes(outcomes: &[engine::Outcome], json: bool) -> anyhow::Result<Exit> {
    let text = if json {
        report::json(outcomes)
    } else if output::stdout_color() {
        output::paint_marks(&report::human(outcomes))
    } else {
        report::human(outcomes)
    };
    output::stdout(&text)?;
    Ok(if outcomes.iter().all(engine::Outcome::ok) {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// Is this path a bundle? By its first bytes, or by its extension (so that a bundle whose
/// first bytes are damaged still gets the bundle reader's error).
pub fn is_bundle(path: &Path) -> bool {
    crate::litertlm::is_litertlm(path) || path.extension().is_some_and(|e| e == "litertlm")
}

/// Read a model, turning reader errors into messages with a hint.
pub fn load_model(path: &Path, options: ReadOptions) -> anyhow::Result<ModelInfo> {
    read_path(path, options).map_err(|err| {
        let hint = match &err {
            ReadError::Io { .. } => "check the path; `litert inspect` reads `.tflite` files",
            ReadError::NotTflite(_) => {
                "LiteRT models are FlatBuffers with the identifier `TFL3` at byte 4; is this a `.tflite` file?"
            }
            ReadError::Invalid(_) | ReadError::Inconsistent(_) => {
                "the file is damaged or truncated; export or download it again"
            }
        };
        let message = match &err {
            ReadError::Io { source, .. } => format!("{err}: {source}"),
            _ => err.to_string(),
        };
        anyhow::Error::new(Hinted::new(message, hint))
            .context(format!("cannot inspect `{}`", path.display()))
    })
}

/// Read a bundle, turning reader errors into messages with a hint.
pub fn load_bundle(path: &Path) -> anyhow::Result<BundleInfo> {
    crate::litertlm::read_path(path).map_err(|err| {
        let hint = match &err {
            crate::litertlm::ReadError::Io { .. } => "check the path",
            crate::litertlm::ReadError::NotLitertlm(_) => {
                "LiteRT-LM bundles start with `LITERTLM`; is this a `.litertlm` file?"
            }
            crate::litertlm::ReadError::UnsupportedVersion(_) => {
                "this bundle was written for a newer LiteRT-LM format than litert reads"
            }
            crate::litertlm::ReadError::Invalid(_) | crate::litertlm::ReadError::Section { .. } => {
                "the bundle is damaged or truncated; build or download it again"
            }
        };
        let message = match &err {
            crate::litertlm::ReadError::Io { source, .. } => format!("{err}: {source}"),
            _ => err.to_string(),
        };
        anyhow::Error::new(Hinted::new(message, hint))
            .context(format!("cannot inspect `{}`", path.display()))
    })
}
