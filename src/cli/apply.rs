//! `litert apply`: validate recipes, then bring every artifact up to date — rebuilding
//! through the Python worker only what the lock file says changed — and report each with
//! its parity checklist, gates and snapshot verdict.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;

use super::cache::CacheArgs;
use super::env::PythonArgs;
use super::recipes::{self, RecipeArgs};
use super::{Exit, Hinted, output};
use crate::diag::Sources;
use crate::engine::{self, contract::Policy, progress::Progress, report, session::Session};
use crate::recipe::{self, BuildPlan};

/// A year: any longer is a typo, and a bound keeps the deadline arithmetic exact.
const MAX_TIMEOUT_SECS: u64 = 365 * 24 * 3600;

/// Build the LiteRT artifacts of recipes, rebuilding only what changed.
///
/// Load the model, fix the input signature, calibrate, convert, check parity with Keras, the
/// recipe's gates and the signature snapshot, then write the artifact atomically and record
/// it in `litert.lock`. Artifacts whose inputs are unchanged since the lock are not rebuilt
/// (no Python is started for them).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert apply recipes/mlp_quickstart.yaml\n  litert apply recipes/ --jobs 2 --json > report.json\n  litert apply recipes/subclassed.yaml --allow-code\n  litert apply recipes/ --locked          # CI: rebuilt bytes must match litert.lock\n  litert apply recipes/ --update-snapshots\n  litert apply recipes/ --shard 2/4 --cache s3://team-bucket/litert   # one CI matrix job\n\nExit codes: 0 every artifact built or up to date, 1 a build failed or was rejected (parity,\na gate, a changed snapshot, bytes that differ under --locked), 2 an invalid recipe or bad\narguments."
)]
pub struct ApplyArgs {
    /// Recipe files, directories or glob patterns.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub build: BuildArgs,
    /// Rebuild even artifacts that are up to date.
    #[arg(long)]
    pub force: bool,
    /// Fail when a rebuilt artifact's bytes differ from `litert.lock` (and never write the
    /// lock).
    #[arg(long)]
    pub locked: bool,
    /// Accept changed signature snapshots instead of failing.
    #[arg(long)]
    pub update_snapshots: bool,
    /// Build only shard I of N (e.g. `2/4`, as `litert plan --matrix` assigns them) and write
    /// its lock fragment instead of `litert.lock`; `litert lock merge` joins the fragments.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<crate::lock::Shard>,
    /// Where `--shard` writes its lock fragment (default: `litert-shard-I-of-N.lock` at the
    /// project root).
    #[arg(long, value_name = "FILE", requires = "shard")]
    pub lock_fragment: Option<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub recipe: RecipeArgs,
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
    /// Show the worker's own log output (TensorFlow) on stderr.
    #[arg(long, short = 'v')]
    pub verbose: bool,
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
            verbose: self.verbose,
            policy,
            force,
            cache: self.cache.open(plans)?,
            pull_only: false,
            shard: None,
        })
    }
}

/// Check every recipe and collect the plans, printing diagnostics; `None` when one is
/// invalid.
pub fn checked_plans(
    paths: &[PathBuf],
    recipe: &RecipeArgs,
) -> anyhow::Result<Option<Vec<BuildPlan>>> {
    let overrides = recipe.overrides()?;
    let files = recipes::expand(paths)?;
    let mut sources = Sources::default();
    let mut plans = Vec::new();
    let mut invalid = false;
    for file in &files {
        let checked = recipe::check_file(file, &overrides, &mut sources);
        recipes::print_diagnostics(&checked.diagnostics, &sources);
        invalid |= checked.has_errors();
        plans.extend(checked.plans);
    }
    let clashes = recipe::check_distinct_across(&plans, &sources);
    recipes::print_diagnostics(&clashes, &sources);
    invalid |= !clashes.is_empty();
    Ok((!invalid).then_some(plans))
}

/// Whether `CI` is set to something other than empty or `false`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

pub fn run(args: ApplyArgs) -> anyhow::Result<Exit> {
    let Some(plans) = checked_plans(&args.paths, &args.recipe)? else {
        output::stderr("error: nothing was built: fix the recipe errors above\n");
        return Ok(Exit::Usage);
    };
    let policy = Policy {
        update_snapshots: args.update_snapshots,
        ci: in_ci(),
        locked: args.locked,
        write: true,
    };
    let mut session = args.build.session(&plans, policy, args.force)?;
    session.shard = args.shard.map(|shard| engine::session::ShardRun {
        shard,
        fragment: args.lock_fragment.clone(),
    });
    let outcomes = engine::session::run(plans, &session, &Progress::new())?;
    print_outcomes(&outcomes, args.json)
}

/// The build report on stdout (human or `--json`); success when every build is ok.
pub(super) fn print_outcomes(outcomes: &[engine::Outcome], json: bool) -> anyhow::Result<Exit> {
    let text = if json {
        report::json(outcomes)
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
