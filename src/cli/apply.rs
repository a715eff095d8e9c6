//! `litert apply`: validate recipes, then build every artifact through the Python worker
//! and report each with its parity checklist.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;

use super::env::PythonArgs;
use super::recipes::{self, RecipeArgs};
use super::{Exit, Hinted, output};
use crate::diag::Sources;
use crate::engine::{self, ApplyOptions, progress::Progress, report};
use crate::recipe;
use crate::worker;

/// Build LiteRT artifacts from recipes: load the model, fix the input signature, calibrate,
/// convert, check parity with Keras and the recipe's gates, then write the artifact
/// atomically. TensorFlow is imported once per worker and serves every build.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert apply recipes/mlp_quickstart.yaml\n  litert apply recipes/ --jobs 2 --json > report.json\n  litert apply recipes/subclassed.yaml --allow-code\n\nExit codes: 0 every artifact built, 1 a build failed or was rejected by parity or a gate,\n2 an invalid recipe or bad arguments."
)]
pub struct ApplyArgs {
    /// Recipe files, directories or glob patterns.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Allow recipes to run Python code from the project: model factories, custom objects,
    /// calibration generators.
    #[arg(long)]
    pub allow_code: bool,
    /// Load `.keras` files outside Keras' safe mode (needed for `Lambda` layers).
    #[arg(long)]
    pub allow_unsafe: bool,
    /// Run this many workers at once (each holds its own TensorFlow, ~0.6-2 GB).
    #[arg(long, short = 'j', default_value_t = 1)]
    pub jobs: usize,
    /// Longest one build may take, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
    #[command(flatten)]
    pub python: PythonArgs,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Show the worker's own log output (TensorFlow) on stderr.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    #[command(flatten)]
    pub recipe: RecipeArgs,
}

pub fn run(args: ApplyArgs) -> anyhow::Result<Exit> {
    let overrides = args.recipe.overrides()?;
    let files = recipes::expand(&args.paths)?;
    let mut sources = Sources::default();
    let mut plans = Vec::new();
    let mut invalid = false;
    for file in &files {
        let checked = recipe::check_file(file, &overrides, &mut sources);
        recipes::print_diagnostics(&checked.diagnostics, &sources);
        invalid |= checked.has_errors();
        plans.extend(checked.plans);
    }
    if invalid {
        output::stderr("error: nothing was built: fix the recipe errors above\n");
        return Ok(Exit::Usage);
    }
    if args.jobs == 0 {
        bail!(Hinted::new(
            "`--jobs 0` runs nothing",
            "use `--jobs 1` or more"
        ));
    }
    let env = worker::env::ensure(&args.python.request())?;
    for mismatch in &env.mismatches {
        output::stderr(&format!("warning: {mismatch}\n"));
    }
    let mut jobs = args.jobs.min(plans.len().max(1));
    if let Some(fit) = engine::jobs_memory_allows()
        && jobs > fit
    {
        output::stderr(&format!(
            "note: running {fit} worker(s) instead of {jobs}: each may need up to 2 GiB and that is what memory allows\n"
        ));
        jobs = fit;
    }
    let options = ApplyOptions {
        env,
        allow_code: args.allow_code,
        allow_unsafe: args.allow_unsafe,
        jobs,
        timeout: Duration::from_secs(args.timeout.max(1)),
        verbose: args.verbose,
    };
    let outcomes = engine::apply(plans, &options, &Progress::new());
    let text = if args.json {
        report::json(&outcomes)
    } else {
        report::human(&outcomes)
    };
    output::stdout(&text)?;
    Ok(if outcomes.iter().all(engine::Outcome::ok) {
        Exit::Success
    } else {
        Exit::Failure
    })
}
