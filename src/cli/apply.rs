//! `litert apply`: validate recipes, then bring every artifact up to date — rebuilding
//! through the Python worker only what the lock file says changed — and report each with
//! its parity checklist, gates and snapshot verdict.

use std::path::PathBuf;

use clap::Args;

use super::common::{BuildArgs, RecipeArgs, checked_plans, in_ci, print_outcomes};
use super::{Exit, output};
use crate::engine::{self, contract::Policy, progress::Progress};

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
