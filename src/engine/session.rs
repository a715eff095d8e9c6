//! One `apply` or `test` run over many build plans: decide what is up to date from the lock
//! files (no Python for those), refuse what a checking run must not accept (a stale lock, an
//! artifact on disk that is not the locked one), provision the worker only if something
//! must be built, and build the rest; each accepted build records itself in its project's
//! `litert.lock` as it finishes ([`super::transaction`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::contract::{self, Policy};
use super::progress::Progress;
use super::{ApplyOptions, Failure, Outcome, Status};
use crate::lock::{Inputs, LockFile};
use crate::recipe::BuildPlan;
use crate::worker::env::{self, EnvRequest};

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
}

/// Whether a plan must be built, and why.
#[derive(Debug, Clone)]
pub struct Freshness {
    pub inputs: Inputs,
    /// Empty when up to date.
    pub reasons: Vec<String>,
    /// The plan's entry in its project's lock, if any.
    pub entry: Option<crate::lock::Entry>,
}

/// The up-to-date verdict for each plan (in order), reading each project's lock once.
///
/// An unreadable lock file stops the whole run (its error says how to recover); a build
/// whose inputs cannot be read fails on its own.
pub fn freshness(
    plans: &[BuildPlan],
    external_python: bool,
) -> anyhow::Result<Vec<anyhow::Result<Freshness>>> {
    let toolchain = contract::toolchain(external_python);
    let mut locks: BTreeMap<PathBuf, LockFile> = BTreeMap::new();
    for plan in plans {
        if !locks.contains_key(&plan.root) {
            let lock = LockFile::read(&plan.root.join(crate::lock::FILE_NAME))?;
            locks.insert(plan.root.clone(), lock);
        }
    }
    Ok(plans
        .iter()
        .map(|plan| {
            let inputs = contract::inputs_of(plan, &toolchain)?;
            let entry = locks
                .get(&plan.root)
                .and_then(|l| l.artifacts.get(&plan.id));
            let reasons = contract::stale_reasons(plan, &inputs, entry);
            Ok(Freshness {
                inputs,
                reasons,
                entry: entry.cloned(),
            })
        })
        .collect())
}

/// Run every plan: verify what is up to date, build the rest (each build commits itself to
/// the lock as it finishes).
pub fn run(
    plans: Vec<BuildPlan>,
    s: &Session,
    progress: &Progress,
) -> anyhow::Result<Vec<Outcome>> {
    let fresh = freshness(&plans, s.env.python_override.is_some())?;
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(plans.len());
    let mut to_build: Vec<(usize, BuildPlan, Freshness)> = Vec::new();
    let mut locked = BTreeMap::new();
    let mut inputs = BTreeMap::new();
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
            outcomes.push(Some(failed(plan, stage, message, Some(hint), f.reasons)));
            continue;
        }
        if f.reasons.is_empty() && !s.force {
            let names = f
                .entry
                .as_ref()
                .map(|e| e.keras_outputs.clone())
                .unwrap_or_default();
            outcomes.push(Some(super::verify_up_to_date(plan, &names, s.policy)));
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
    if !to_build.is_empty() {
        let worker_env = env::ensure(&s.env)?;
        for mismatch in &worker_env.mismatches {
            progress.warn(mismatch);
        }
        let options = ApplyOptions {
            env: worker_env,
            allow_code: s.allow_code,
            allow_unsafe: s.allow_unsafe,
            jobs: s.jobs,
            timeout: s.timeout,
            verbose: s.verbose,
            policy: s.policy,
            locked,
            inputs,
        };
        let plans: Vec<BuildPlan> = to_build.iter().map(|(_, p, _)| p.clone()).collect();
        let built = super::apply(plans, &options, progress);
        for ((i, _, f), mut outcome) in to_build.into_iter().zip(built) {
            outcome.rebuilt_because = f.reasons;
            if let Some(slot) = outcomes.get_mut(i) {
                *slot = Some(outcome);
            }
        }
    }
    Ok(outcomes.into_iter().flatten().collect())
}

/// What a run that holds builds to the lock (`test`, `apply --locked`) refuses before
/// building: a lock made by another toolchain, and (when only checking) an artifact on
/// disk that is not the locked one. As (stage, message, hint).
fn refuse(
    plan: &BuildPlan,
    f: &Freshness,
    policy: Policy,
) -> Option<(&'static str, String, String)> {
    let entry = f.entry.as_ref().filter(|_| policy.locked)?;
    if entry.inputs.toolchain != f.inputs.toolchain {
        return Some((
            "lock",
            format!(
                "litert.lock is stale: `{}` was locked by {}, this is {}",
                plan.id, entry.inputs.toolchain, f.inputs.toolchain
            ),
            "run `litert apply` (without `--locked`) with this litert and worker environment, review and commit litert.lock; or use the toolchain that wrote it".into(),
        ));
    }
    if policy.write {
        return None;
    }
    let bundle = plan
        .generation
        .as_ref()
        .and_then(|g| g.bundle.as_ref())
        .zip(entry.bundle.as_ref())
        .map(|(b, e)| (&b.output, &e.sha256));
    std::iter::once((&plan.output, &entry.sha256))
        .chain(bundle)
        .find_map(|(path, locked)| match crate::digest::file_sha256(path) {
            Ok(sha) if sha != *locked => Some((
                "lock",
                format!(
                    "`{}` is not the artifact in litert.lock (sha256 {} on disk, {} locked)",
                    path.display(),
                    sha.get(..12).unwrap_or(&sha),
                    locked.get(..12).unwrap_or(locked)
                ),
                "rebuild it with `litert apply`, or delete it so `litert test` rebuilds it and compares".into(),
            )),
            _ => None,
        })
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
