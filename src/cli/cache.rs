//! `litert cache push|pull|status`: act on the remote cache directly (the cache flags every
//! building verb takes are [`super::common::CacheArgs`]).

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::common::{
    BuildArgs, CacheArgs, RecipeArgs, checked_plans, default_paths, in_ci, print_outcomes,
};
use super::{Exit, Hinted, output};
use crate::cache::{self, Presence, Remote};
use crate::engine::{self, contract::Policy, progress::Progress};
use crate::recipe::BuildPlan;

/// Share built artifacts through a remote cache.
///
/// `apply` and `test` use the cache on their own when one is configured (`--cache URL`,
/// `LITERT_CACHE_URL` or `cache.url` in the project's `.litert.yaml`): they restore what it
/// holds, verified, instead of converting, and push what they build. These verbs act on it
/// directly.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert cache status recipes/ --cache s3://team-bucket/litert\n  litert cache push recipes/          # upload every up-to-date artifact\n  litert cache pull recipes/          # restore every artifact the cache holds, build nothing\n\nExit codes: 0 done, 1 something could not be pushed, pulled or reached, 2 invalid recipes or\narguments."
)]
pub struct CacheCommand {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Upload every artifact that is up to date here and not yet in the cache.
    Push(Target),
    /// Restore every artifact that is not up to date here from the cache; build nothing.
    Pull(PullArgs),
    /// Say, per artifact, whether it is up to date here and whether the cache holds it.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
struct Target {
    /// Recipe files, directories or glob patterns (default: `recipes/`).
    paths: Vec<PathBuf>,
    #[command(flatten)]
    cache: CacheArgs,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    recipe: RecipeArgs,
}

#[derive(Debug, Args)]
struct PullArgs {
    /// Recipe files, directories or glob patterns (default: `recipes/`).
    paths: Vec<PathBuf>,
    #[command(flatten)]
    build: BuildArgs,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    recipe: RecipeArgs,
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    target: Target,
}

pub fn run(args: CacheCommand) -> anyhow::Result<Exit> {
    match args.action {
        Action::Push(t) => push(t),
        Action::Pull(p) => pull(p),
        Action::Status(s) => status(s.target),
    }
}

/// The plans of a cache verb and the cache it works on.
type Opened = (Vec<BuildPlan>, Arc<Remote>);

/// Plans and the open cache, or the exit code to stop with.
fn open(target: &Target) -> anyhow::Result<Result<Opened, Exit>> {
    let paths = default_paths(target.paths.clone())?;
    let Some(plans) = checked_plans(&paths, &target.recipe)? else {
        output::stderr("error: fix the recipe errors above\n");
        return Ok(Err(Exit::Usage));
    };
    let Some(remote) = target.cache.open(&plans)? else {
        anyhow::bail!(Hinted::new(
            "no cache is configured",
            "name one with `--cache URL` or `LITERT_CACHE_URL`, or set `cache.url` in the project's `.litert.yaml`"
        ));
    };
    Ok(Ok((plans, remote)))
}

#[derive(Debug, Serialize)]
struct Row {
    id: String,
    key: String,
    /// `up_to_date`, `stale: REASONS`, or `unknown: ERROR`.
    local: String,
    /// `present`, `absent`, `unusable: WHY`; for push: `pushed`, `already_there`,
    /// `skipped`, `failed: WHY`.
    remote: String,
}

fn local_rows(plans: &[BuildPlan]) -> anyhow::Result<Vec<(Row, Option<crate::lock::Inputs>)>> {
    let fresh = engine::freshness::status(plans)?;
    Ok(plans
        .iter()
        .zip(fresh)
        .map(|(plan, f)| match f {
            Ok(f) => {
                let local = if f.reasons.is_empty() {
                    "up_to_date".to_string()
                } else {
                    format!("stale: {}", f.reasons.join("; "))
                };
                (
                    Row {
                        id: plan.id.clone(),
                        key: cache::key(&f.inputs),
                        local,
                        remote: String::new(),
                    },
                    Some(f.inputs),
                )
            }
            Err(e) => (
                Row {
                    id: plan.id.clone(),
                    key: String::new(),
                    local: format!("unknown: {e:#}"),
                    remote: "unknown".into(),
                },
                None,
            ),
        })
        .collect())
}

fn print_rows(rows: &[Row], json: bool, remote: &Remote) -> anyhow::Result<()> {
    if json {
        let v = serde_json::json!({ "cache": remote.url(), "artifacts": rows });
        return output::stdout(&format!("{}\n", serde_json::to_string_pretty(&v)?));
    }
    let mut text = String::new();
    for r in rows {
        text.push_str(&format!(
            "{}  {}  local: {}  cache: {}\n",
            r.id,
            crate::digest::short(&r.key),
            r.local,
            r.remote
        ));
    }
    output::stdout(&text)
}

fn status(target: Target) -> anyhow::Result<Exit> {
    let (plans, remote) = match open(&target)? {
        Ok(v) => v,
        Err(code) => return Ok(code),
    };
    let mut failed = false;
    let mut rows = Vec::new();
    for (mut row, inputs) in local_rows(&plans)? {
        if let Some(inputs) = inputs {
            row.remote = match remote.presence(&row.key, &inputs) {
                Presence::Present(r) => format!(
                    "present (sha256 {}, {} bytes)",
                    crate::digest::short(&r.artifact.sha256),
                    r.artifact.size
                ),
                Presence::Absent => "absent".into(),
                Presence::Unusable(why) => {
                    failed = true;
                    format!("unusable: {why}")
                }
            };
        }
        rows.push(row);
    }
    print_rows(&rows, target.json, &remote)?;
    Ok(if failed { Exit::Failure } else { Exit::Success })
}

fn push(target: Target) -> anyhow::Result<Exit> {
    let (plans, remote) = match open(&target)? {
        Ok(v) => v,
        Err(code) => return Ok(code),
    };
    if remote.read_only() {
        anyhow::bail!(Hinted::new(
            format!("the cache `{}` is read-only in this run", remote.url()),
            "drop `--cache-read-only` / `LITERT_CACHE_READ_ONLY` to push"
        ));
    }
    let locks = engine::freshness::read_locks(plans.iter())?;
    let mut failed = false;
    let mut rows = Vec::new();
    for ((mut row, inputs), plan) in local_rows(&plans)?.into_iter().zip(&plans) {
        let entry = locks
            .get(&plan.root)
            .and_then(|l| l.artifacts.get(&plan.id));
        row.remote = match (inputs, entry) {
            _ if !cache::cacheable(plan) => {
                "skipped (its `.litertlm` bundle is not kept in the cache)".into()
            }
            (Some(_), Some(entry)) if row.local == "up_to_date" => {
                match remote.push_artifact(plan, entry, None) {
                    Ok(cache::Pushed::Stored) => "pushed".into(),
                    Ok(cache::Pushed::AlreadyThere) => "already_there".into(),
                    Err(why) => {
                        failed = true;
                        format!("failed: {why}")
                    }
                }
            }
            _ => "skipped (not up to date here: run `litert apply` first)".into(),
        };
        rows.push(row);
    }
    print_rows(&rows, target.json, &remote)?;
    Ok(if failed { Exit::Failure } else { Exit::Success })
}

fn pull(args: PullArgs) -> anyhow::Result<Exit> {
    let paths = default_paths(args.paths)?;
    let Some(plans) = checked_plans(&paths, &args.recipe)? else {
        output::stderr("error: nothing was pulled: fix the recipe errors above\n");
        return Ok(Exit::Usage);
    };
    let policy = Policy {
        update_snapshots: false,
        ci: in_ci(),
        locked: false,
        write: true,
    };
    let mut session = args.build.session(&plans, policy, false)?;
    if session.cache.is_none() {
        anyhow::bail!(Hinted::new(
            "no cache is configured",
            "name one with `--cache URL` or `LITERT_CACHE_URL`, or set `cache.url` in the project's `.litert.yaml`"
        ));
    }
    session.pull_only = true;
    let outcomes = engine::session::run(plans, &session, &Progress::new())?;
    print_outcomes(&outcomes, args.json)
}
