//! One `apply` or `test` run over many build plans: decide what is up to date from the lock
//! files (no Python for those), refuse what a checking run must not accept (a stale lock, an
//! artifact on disk that is not the locked one), provision the worker only if something
//! must be built, and build the rest; each accepted build records itself in its project's
//! `litert.lock` as it finishes ([`super::transaction`]). With a remote cache, what it holds
//! is restored (verified) before anything is built, and what is built is pushed; one shard
//! of a sharded run builds its share and writes a lock fragment instead of the lock.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::contract::Policy;
use super::freshness::{Freshness, freshness, refuse, verify_up_to_date};
use super::progress::Progress;
use super::{Failure, Outcome, Status, accept, pool};
use crate::lock::{Entry, Inputs};
use crate::pyenv::{self, EnvRequest};
use crate::recipe::BuildPlan;

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct Session {
    pub env: EnvRequest,
    pub allow_code: bool,
    pub allow_unsafe: bool,
    pub jobs: usize,
    pub timeout: Duration,
    pub verbose: bool,
    pub policy: Policy,
    /// Rebuild even what is up to date (`--force`).
    pub force: bool,
    /// The remote cache, if the run uses one.
    pub cache: Option<Arc<crate::cache::Remote>>,
    /// Restore from the cache only; build nothing (`litert cache pull`).
    pub pull_only: bool,
    /// Build one shard's share and write its lock fragment instead of the lock.
    pub shard: Option<ShardRun>,
}

/// One shard of a sharded run (`apply --shard I/N`).
#[derive(Debug, Clone)]
pub struct ShardRun {
    pub shard: crate::lock::Shard,
    /// Where the fragment goes; by default `litert-shard-I-of-N.lock` at the project root.
    pub fragment: Option<PathBuf>,
}

/// What every build of one run shares, borrowed for the length of the run: the session's
/// settings and what the lock files say about the plans to build. One copy, read alike by
/// the worker pool, the cache restore and acceptance.
pub struct RunContext<'a> {
    pub session: &'a Session,
    /// The lock entry of each plan to build that has one, by (project root, artifact id).
    pub locked: &'a BTreeMap<(PathBuf, String), Entry>,
    /// The digested inputs of each plan to build, for its new lock entry.
    pub inputs: &'a BTreeMap<(PathBuf, String), Inputs>,
    /// Record entries in `litert.lock` (false for one shard of a sharded run, whose entries
    /// go to its lock fragment).
    pub write_lock: bool,
}

impl RunContext<'_> {
    pub fn policy(&self) -> Policy {
        self.session.policy
    }

    /// The lock entry `plan` had when the run started.
    pub fn locked_entry(&self, plan: &BuildPlan) -> Option<&Entry> {
        self.locked.get(&(plan.root.clone(), plan.id.clone()))
    }
}

/// Run every plan: verify what is up to date, build the rest (each build commits itself to
/// the lock as it finishes).
pub fn run(
    plans: Vec<BuildPlan>,
    s: &Session,
    progress: &Progress,
) -> anyhow::Result<Vec<Outcome>> {
    let (plans, mut fragment) = match &s.shard {
        Some(run) => {
            let (share, fragment) = shard_share(plans, run)?;
            (share, Some(fragment))
        }
        None => (plans, None),
    };
    let fresh = freshness(&plans, s.env.python_override.is_some())?;
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(plans.len());
    let mut to_build: Vec<(usize, BuildPlan, Freshness)> = Vec::new();
    let mut locked = BTreeMap::new();
    let mut inputs = BTreeMap::new();
    // The lock entries of what is up to date, for a shard's fragment.
    let mut up_to_date = BTreeMap::new();
    for (i, (plan, f)) in plans.into_iter().zip(fresh).enumerate() {
        let f = match f {
            Err(e) => {
                outcomes.push(Some(failed(plan, "inputs", format!("{e:#}"), None, vec![])));
                continue;
            }
            Ok(f) => f,
        };
        if let Some(refusal) = refuse(&plan, &f, s.policy) {
            let (stage, message, hint) = refusal;
            // Nothing was built: a never-applied artifact has no reasons to show beyond that.
            let because = if f.entry.is_some() { f.reasons } else { vec![] };
            outcomes.push(Some(failed(plan, stage, message, Some(hint), because)));
            continue;
        }
        if f.reasons.is_empty() && !s.force {
            if let Some(e) = &f.entry {
                up_to_date.insert(plan.id.clone(), e.clone());
            }
            outcomes.push(Some(verify_up_to_date(plan, s.policy)));
            continue;
        }
        let key = (plan.root.clone(), plan.id.clone());
        if let Some(e) = &f.entry {
            locked.insert(key.clone(), e.clone());
        }
        inputs.insert(key, f.inputs.clone());
        outcomes.push(None);
        to_build.push((i, plan, f));
    }
    let ctx = RunContext {
        session: s,
        locked: &locked,
        inputs: &inputs,
        write_lock: fragment.is_none(),
    };
    if let Some(cache) = &s.cache {
        to_build = restore_from_cache(to_build, cache, &ctx, &mut outcomes, progress);
    }
    if s.pull_only {
        for (i, plan, f) in to_build.drain(..) {
            let message = match s.cache.as_ref().and_then(|c| c.down_reason()) {
                Some(why) => why,
                None => "not in the cache".to_string(),
            };
            if let Some(slot) = outcomes.get_mut(i) {
                *slot = Some(failed(
                    plan,
                    "cache",
                    message,
                    Some("build it with `litert apply`".into()),
                    f.reasons,
                ));
            }
        }
    }
    let mut built_here: Vec<usize> = Vec::new();
    if !to_build.is_empty() {
        let worker_env = pyenv::ensure(&s.env)?;
        for mismatch in &worker_env.mismatches {
            progress.warn(mismatch);
        }
        let plans: Vec<BuildPlan> = to_build.iter().map(|(_, p, _)| p.clone()).collect();
        let built = pool::build_all(plans, &ctx, &worker_env, progress);
        for ((i, _, f), mut outcome) in to_build.into_iter().zip(built) {
            outcome.rebuilt_because = f.reasons;
            built_here.push(i);
            if let Some(slot) = outcomes.get_mut(i) {
                *slot = Some(outcome);
            }
        }
    }
    if let Some(cache) = &s.cache
        && s.policy.write
        && !cache.read_only()
    {
        for &i in &built_here {
            if let Some(Some(outcome)) = outcomes.get(i) {
                push_to_cache(cache, outcome, progress);
            }
        }
    }
    if let Some((path, fragment)) = fragment.as_mut() {
        for outcome in outcomes.iter().flatten().filter(|o| o.ok()) {
            let entry = match &outcome.status {
                Status::Built(c) => c.entry.clone(),
                _ => up_to_date.get(&outcome.plan.id).cloned(),
            };
            if let Some(entry) = entry {
                fragment.artifacts.insert(outcome.plan.id.clone(), entry);
            }
        }
        if s.policy.write {
            fragment.write(path)?;
        }
    }
    Ok(outcomes.into_iter().flatten().collect())
}

/// This shard's plans and its (empty) fragment with where it goes.
fn shard_share(
    plans: Vec<BuildPlan>,
    run: &ShardRun,
) -> anyhow::Result<(Vec<BuildPlan>, (PathBuf, crate::lock::Fragment))> {
    let root = crate::shard::single_root(&plans)?;
    let shares = crate::shard::plan_shares(&plans, &root, run.shard.total)?;
    let mine: std::collections::BTreeSet<&String> = shares
        .get(run.shard.index - 1)
        .map(|s| s.artifacts.iter().collect())
        .unwrap_or_default();
    let base = crate::lock::fragment::lock_digest(&root.join(crate::lock::FILE_NAME))?;
    let path = run
        .fragment
        .clone()
        .unwrap_or_else(|| crate::lock::Fragment::default_path(&root, run.shard));
    let fragment = crate::lock::Fragment::new(run.shard, base);
    let share = plans.into_iter().filter(|p| mine.contains(&p.id)).collect();
    Ok((share, (path, fragment)))
}

type Pending = Vec<(usize, BuildPlan, Freshness)>;

/// Restore from the cache whatever it holds of `to_build`; returns what is left to build.
/// Every way the cache can fail to help (a miss, a corrupt entry, a server that is down, an
/// entry that differs from the lock under `--locked`) leaves the artifact to a local build,
/// with a warning for everything but a plain miss (once for a server that is down).
fn restore_from_cache(
    to_build: Pending,
    cache: &crate::cache::Remote,
    ctx: &RunContext<'_>,
    outcomes: &mut [Option<Outcome>],
    progress: &Progress,
) -> Pending {
    use crate::cache::Lookup;
    let mut left = Vec::new();
    for (i, plan, f) in to_build {
        if !crate::cache::cacheable(&plan) {
            left.push((i, plan, f));
            continue;
        }
        let key = crate::cache::key(&f.inputs);
        let id = plan.id.clone();
        // A record without the worker's report cannot answer an accuracy gate.
        let needs_report = plan
            .accuracy
            .as_ref()
            .is_some_and(|a| !super::accuracy::set_gates(&a.gates).is_empty());
        let locked_sha = f
            .entry
            .as_ref()
            .filter(|e| e.reproducible)
            .map(|e| e.sha256.clone());
        let was_down = cache.down_reason().is_some();
        let start = std::time::Instant::now();
        let restored = accept::restore(&plan, ctx, cache.url(), |dest| {
            let hit = match cache.fetch(&key, &f.inputs, &id, dest) {
                Lookup::Hit(hit) => hit,
                Lookup::Miss => return Err(String::new()),
                Lookup::Unusable(why) => return Err(why),
            };
            if hit.record.report.is_none() && needs_report {
                return Err(String::new());
            }
            if ctx.policy().locked
                && let Some(want) = &locked_sha
                && *want != hit.record.artifact.sha256
            {
                return Err(format!(
                    "the cached artifact differs from litert.lock (sha256 {} cached, {} locked)",
                    crate::digest::short(&hit.record.artifact.sha256),
                    crate::digest::short(want)
                ));
            }
            let seconds = hit
                .record
                .build_seconds
                .unwrap_or_else(|| start.elapsed().as_secs_f64());
            Ok((hit.report, seconds))
        });
        match restored {
            Ok(status) => {
                if let Some(slot) = outcomes.get_mut(i) {
                    *slot = Some(Outcome {
                        plan,
                        status,
                        seconds: start.elapsed().as_secs_f64(),
                        rebuilt_because: f.reasons,
                    });
                }
            }
            Err(why) => {
                if !why.is_empty() && !was_down {
                    if cache.down_reason().is_some() {
                        progress.warn(&format!("{why}; building locally"));
                    } else {
                        progress.warn(&format!("{}: {why}; building it locally", plan.id));
                    }
                }
                left.push((i, plan, f));
            }
        }
    }
    left
}

/// Push an artifact just built, with its snapshot, golden outputs and report. A failure is a
/// warning: the artifact is already written and recorded.
fn push_to_cache(cache: &crate::cache::Remote, outcome: &Outcome, progress: &Progress) {
    let Status::Built(c) = &outcome.status else {
        return;
    };
    let Some(entry) = &c.entry else {
        return;
    };
    if cache.down_reason().is_some() || !crate::cache::cacheable(&outcome.plan) {
        return;
    }
    if let Err(why) = cache.push_artifact(&outcome.plan, entry, Some(&c.result)) {
        progress.warn(&format!(
            "{}: not pushed to the cache: {why} (the artifact is written and recorded)",
            outcome.plan.id
        ));
    }
}

fn failed(
    plan: BuildPlan,
    stage: &str,
    message: String,
    hint: Option<String>,
    because: Vec<String>,
) -> Outcome {
    Outcome {
        plan,
        status: Status::Failed(Failure {
            stage: stage.into(),
            message,
            hint,
            detail: None,
        }),
        seconds: 0.0,
        rebuilt_because: because,
    }
}
