//! One `apply` or `test` run over many build plans: decide what is up to date from the lock
//! files (no Python for those), provision the worker only if something must be built,
//! build the rest, and record what was written in each project's `litert.lock`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::contract::{self, Policy};
use super::progress::Progress;
use super::{ApplyOptions, Failure, Outcome, Status};
use crate::lock::{Inputs, LockFile, Locked};
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
            Ok(Freshness { inputs, reasons })
        })
        .collect())
}

/// Run every plan: verify what is up to date, build the rest, update the locks.
pub fn run(
    plans: Vec<BuildPlan>,
    s: &Session,
    progress: &Progress,
) -> anyhow::Result<Vec<Outcome>> {
    let fresh = freshness(&plans, s.env.python_override.is_some())?;
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(plans.len());
    let mut to_build: Vec<(usize, BuildPlan, Freshness)> = Vec::new();
    let mut locked_sha256 = BTreeMap::new();
    for (i, (plan, f)) in plans.into_iter().zip(fresh).enumerate() {
        match f {
            Err(e) => outcomes.push(Some(Outcome {
                plan,
                status: Status::Failed(Failure {
                    stage: "inputs".into(),
                    message: format!("{e:#}"),
                    hint: None,
                    detail: None,
                }),
                seconds: 0.0,
                rebuilt_because: vec![],
            })),
            Ok(f) if f.reasons.is_empty() && !s.force => {
                outcomes.push(Some(super::verify_up_to_date(plan, s.policy)));
            }
            Ok(f) => {
                if let Ok(lock) = LockFile::read(&plan.root.join(crate::lock::FILE_NAME)) {
                    // Artifacts with Flex ops do not repeat their bytes (measured), so
                    // `--locked` cannot hold them to the locked sha256.
                    if let Some(e) = lock.artifacts.get(&plan.id) {
                        locked_sha256
                            .insert(plan.id.clone(), e.reproducible.then(|| e.sha256.clone()));
                    }
                }
                outcomes.push(None);
                to_build.push((i, plan, f));
            }
        }
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
            locked_sha256,
        };
        let plans: Vec<BuildPlan> = to_build.iter().map(|(_, p, _)| p.clone()).collect();
        let built = super::apply(plans, &options, progress);
        let mut lock_updates: BTreeMap<PathBuf, Vec<(String, crate::lock::Entry)>> =
            BTreeMap::new();
        for ((i, _, f), mut outcome) in to_build.into_iter().zip(built) {
            if let Status::Built(c) = &outcome.status
                && s.policy.write
                && !s.policy.locked
            {
                let entry = contract::entry_for(
                    &outcome.plan,
                    f.inputs.clone(),
                    &c.result.versions,
                    &c.model,
                    c.sha256.clone(),
                    c.size,
                );
                lock_updates
                    .entry(outcome.plan.root.clone())
                    .or_default()
                    .push((outcome.plan.id.clone(), entry));
            }
            outcome.rebuilt_because = f.reasons;
            if let Some(slot) = outcomes.get_mut(i) {
                *slot = Some(outcome);
            }
        }
        for (root, entries) in lock_updates {
            let mut locked = Locked::open(&root)?;
            for (id, entry) in entries {
                locked.lock.artifacts.insert(id, entry);
            }
            locked.save()?;
        }
    }
    Ok(outcomes.into_iter().flatten().collect())
}
