//! `litert plan`: print the fully resolved build plan of each recipe variant, the exact
//! data `apply` would hand the worker; with `--matrix`, the CI matrix that splits the
//! artifacts over shards.

use std::path::PathBuf;

use clap::Args;

use super::common::{RecipeArgs, checked_plans};
use super::{Exit, output};
use crate::recipe;

/// Print the fully resolved build plan of each recipe variant.
///
/// Defaults applied, templates rendered, paths normalised, and the exact converter settings
/// each quantization mode maps to; on stderr, what `apply` would rebuild and why.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert plan recipes/mlp.yaml\n  litert plan recipes/gemma_int8.yaml --set preset=presets/tiny_gemma --json\n  litert plan recipes/ --matrix --shards 4 --format github   # a GitHub Actions strategy.matrix\n\nExit codes: 0 printed, 2 an invalid recipe or bad arguments."
)]
pub struct PlanArgs {
    /// Recipe files, directories or glob patterns.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print JSON (an array of plans) instead of YAML documents; with `--matrix`, the same as
    /// `--format json`.
    #[arg(long)]
    pub json: bool,
    /// Print the CI matrix instead: the artifacts assigned to `--shards` shards, balanced by
    /// the build times in `litert.lock` (each shard runs `litert apply --shard I/N`).
    #[arg(long, requires = "shards")]
    pub matrix: bool,
    /// How many shards the matrix has.
    #[arg(long, value_name = "N", requires = "matrix", value_parser = clap::value_parser!(u16).range(1..=crate::lock::fragment::MAX_SHARDS as i64))]
    pub shards: Option<u16>,
    /// The matrix format: `text` (a table), `json` (shares with their artifacts) or `github`
    /// (one line of `strategy.matrix` JSON for `$GITHUB_OUTPUT`).
    #[arg(
        long,
        value_enum,
        default_value = "text",
        requires = "matrix",
        conflicts_with = "json"
    )]
    pub format: MatrixFormat,
    #[command(flatten)]
    pub recipe: RecipeArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MatrixFormat {
    Text,
    Json,
    Github,
}

pub fn run(args: PlanArgs) -> anyhow::Result<Exit> {
    let Some(plans) = checked_plans(&args.paths, &args.recipe)? else {
        output::stderr("error: no plan printed: fix the recipe errors above\n");
        return Ok(Exit::Usage);
    };
    if let Some(n) = args.shards {
        let format = if args.json {
            MatrixFormat::Json
        } else {
            args.format
        };
        return matrix(&plans, usize::from(n), format);
    }
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&plans)?)
    } else {
        let mut text = String::new();
        for plan in &plans {
            text.push_str("---\n");
            text.push_str(&serde_saphyr::to_string(plan)?);
        }
        text
    };
    output::stdout(&text)?;
    // What `apply` would do, by the lock files (no Python needed).
    let fresh = crate::engine::freshness::status(&plans)?;
    for (plan, f) in plans.iter().zip(fresh) {
        let line = match f {
            Ok(f) if f.reasons.is_empty() => format!("{}: up to date\n", plan.id),
            Ok(f) => format!("{}: would build: {}\n", plan.id, f.reasons.join("; ")),
            Err(e) => format!("{}: cannot tell ({e:#})\n", plan.id),
        };
        output::stderr(&line);
    }
    Ok(Exit::Success)
}

/// Print the shares of `plans` over `total` shards.
fn matrix(plans: &[recipe::BuildPlan], total: usize, format: MatrixFormat) -> anyhow::Result<Exit> {
    let root = crate::shard::single_root(plans)?;
    let shares = crate::shard::plan_shares(plans, &root, total)?;
    let text = match format {
        MatrixFormat::Github => crate::shard::github_matrix(&shares),
        MatrixFormat::Json => format!("{}\n", serde_json::to_string_pretty(&shares)?),
        MatrixFormat::Text => {
            let mut text = String::new();
            for s in &shares {
                text.push_str(&format!(
                    "shard {}: {} artifact(s), ~{:.1}s: {}\n",
                    s.shard,
                    s.artifacts.len(),
                    s.estimate_seconds,
                    s.artifacts.join(", ")
                ));
            }
            text
        }
    };
    output::stdout(&text)?;
    Ok(Exit::Success)
}
