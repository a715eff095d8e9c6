//! One `apply` or `test` run over many build plans: decide what is up to date from the lock
//! files (no Python for those), restore what the remote cache has, provision the worker only
//! if something must still be built, build the rest, push it to the cache, and record what
//! was written in each project's `litert.lock` (or, for one shard of a CI matrix, in its lock
//! fragment).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
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
    pub shard: crate::shard::Shard,
    /// Where the fragment goes; by default `litert-shard-I-of-N.lock` at the project root.
    pub fragment: Option<PathBuf>,
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
    let (plans, mut fragment) = match &s.shard {
        Some(run) => {
            let (share, fragment) = shard_share(plans, run)?;
            (share, Some(fragment))
        }
        None => (plans, None),
    };
    let fresh = freshness(&plans, s.env.python_override.is_some())?;
    let previous = read_locks(plans.iter())?;
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
                // Artifacts with Flex ops do not repeat their bytes (measured), so
                // `--locked` cannot hold them to the locked sha256.
                if let Some(e) = previous
                    .get(&plan.root)
                    .and_then(|l| l.artifacts.get(&plan.id))
                {
                    locked_sha256.insert(plan.id.clone(), e.reproducible.then(|| e.sha256.clone()));
                }
                outcomes.push(None);
                to_build.push((i, plan, f));
            }
        }
    }
    let mut records = Records::default();
    if let Some(cache) = &s.cache {
        to_build = restore_from_cache(
            to_build,
            cache,
            s.policy,
            &locked_sha256,
            &mut outcomes,
            &mut records,
            progress,
        );
    }
    if s.pull_only {
        for (i, plan, f) in to_build.drain(..) {
            let message = match s.cache.as_ref().and_then(|c| c.down_reason()) {
                Some(why) => why,
                None => "not in the cache".to_string(),
            };
            if let Some(slot) = outcomes.get_mut(i) {
                *slot = Some(Outcome {
                    plan,
                    status: Status::Failed(Failure {
                        stage: "cache".into(),
                        message,
                        hint: Some("build it with `litert apply`".into()),
                        detail: None,
                    }),
                    seconds: 0.0,
                    rebuilt_because: f.reasons,
                });
            }
        }
    }
    let mut built_here: Vec<usize> = Vec::new();
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
            locked_sha256: locked_sha256.clone(),
        };
        let plans: Vec<BuildPlan> = to_build.iter().map(|(_, p, _)| p.clone()).collect();
        let built = super::apply(plans, &options, progress);
        for ((i, _, f), mut outcome) in to_build.into_iter().zip(built) {
            outcome.rebuilt_because = f.reasons;
            records.seconds.insert(i, outcome.seconds);
            records.inputs.insert(i, f.inputs);
            built_here.push(i);
            if let Some(slot) = outcomes.get_mut(i) {
                *slot = Some(outcome);
            }
        }
    }
    // Every artifact restored or built gets its lock entry, with its build time carried
    // over when the lock already knew this very artifact.
    let mut entries: BTreeMap<usize, crate::lock::Entry> = BTreeMap::new();
    for (&i, &seconds) in &records.seconds {
        let Some(Some(outcome)) = outcomes.get(i) else {
            continue;
        };
        let Status::Built(c) = &outcome.status else {
            continue;
        };
        let Some(inputs) = records.inputs.get(&i).cloned() else {
            continue;
        };
        let mut entry = contract::entry_for(
            &outcome.plan,
            inputs,
            &c.result.versions,
            &c.model,
            c.sha256.clone(),
            c.size,
        );
        let before = previous
            .get(&outcome.plan.root)
            .and_then(|l| l.artifacts.get(&outcome.plan.id));
        entry.build_seconds = Some(crate::shard::recorded_time(before, &entry, seconds));
        entries.insert(i, entry);
    }
    if let Some(cache) = &s.cache
        && s.policy.write
        && !cache.read_only()
    {
        for &i in &built_here {
            if let (Some(Some(outcome)), Some(entry)) = (outcomes.get(i), entries.get(&i)) {
                push_to_cache(cache, outcome, entry, progress);
            }
        }
    }
    if let Some(fragment) = fragment.as_mut() {
        for (i, outcome) in outcomes.iter().enumerate() {
            let Some(outcome) = outcome else { continue };
            if !outcome.ok() {
                continue;
            }
            let entry = match entries.get(&i) {
                Some(e) => Some(e.clone()),
                None => previous
                    .get(&outcome.plan.root)
                    .and_then(|l| l.artifacts.get(&outcome.plan.id))
                    .cloned(),
            };
            if let Some(entry) = entry {
                fragment.1.artifacts.insert(outcome.plan.id.clone(), entry);
            }
        }
        if s.policy.write {
            fragment.1.write(&fragment.0)?;
        }
    } else if s.policy.write && !s.policy.locked {
        let mut lock_updates: BTreeMap<PathBuf, Vec<(String, crate::lock::Entry)>> =
            BTreeMap::new();
        for (i, entry) in entries {
            if let Some(Some(outcome)) = outcomes.get(i) {
                lock_updates
                    .entry(outcome.plan.root.clone())
                    .or_default()
                    .push((outcome.plan.id.clone(), entry));
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

/// The lock file of each project the plans belong to.
pub fn read_locks<'a>(
    plans: impl Iterator<Item = &'a BuildPlan>,
) -> anyhow::Result<BTreeMap<PathBuf, LockFile>> {
    let mut locks = BTreeMap::new();
    for plan in plans {
        if !locks.contains_key(&plan.root) {
            let lock = LockFile::read(&plan.root.join(crate::lock::FILE_NAME))?;
            locks.insert(plan.root.clone(), lock);
        }
    }
    Ok(locks)
}

/// This shard's plans and its (empty) fragment with where it goes.
fn shard_share(
    plans: Vec<BuildPlan>,
    run: &ShardRun,
) -> anyhow::Result<(Vec<BuildPlan>, (PathBuf, crate::shard::Fragment))> {
    let root = crate::shard::single_root(&plans)?;
    let shares = crate::shard::plan_shares(&plans, &root, run.shard.total)?;
    let mine: std::collections::BTreeSet<&String> = shares
        .get(run.shard.index - 1)
        .map(|s| s.artifacts.iter().collect())
        .unwrap_or_default();
    let base = crate::shard::lock_digest(&root.join(crate::lock::FILE_NAME))?;
    let path = run
        .fragment
        .clone()
        .unwrap_or_else(|| crate::shard::Fragment::default_path(&root, run.shard));
    let fragment = crate::shard::Fragment::new(run.shard, base);
    let share = plans.into_iter().filter(|p| mine.contains(&p.id)).collect();
    Ok((share, (path, fragment)))
}

type Pending = Vec<(usize, BuildPlan, Freshness)>;

/// What a run records per outcome index: the build time for the lock, and the inputs built.
#[derive(Default)]
struct Records {
    seconds: BTreeMap<usize, f64>,
    inputs: BTreeMap<usize, Inputs>,
}

/// Restore from the cache whatever it holds of `to_build`; returns what is left to build.
/// Every way the cache can fail to help (a miss, a corrupt entry, a server that is down, an
/// entry that differs from the lock under `--locked`) leaves the artifact to a local build,
/// with a warning for everything but a plain miss (once for a server that is down).
fn restore_from_cache(
    to_build: Pending,
    cache: &crate::cache::Remote,
    policy: Policy,
    locked_sha256: &BTreeMap<String, Option<String>>,
    outcomes: &mut [Option<Outcome>],
    records: &mut Records,
    progress: &Progress,
) -> Pending {
    use crate::cache::Lookup;
    let mut left = Vec::new();
    for (i, plan, f) in to_build {
        let key = crate::cache::key(&f.inputs);
        let id = plan.id.clone();
        // A record without the worker's report cannot answer an accuracy gate.
        let needs_report = plan
            .accuracy
            .as_ref()
            .is_some_and(|a| !super::accuracy::set_gates(&a.gates).is_empty());
        let mut record_time = None;
        let was_down = cache.down_reason().is_some();
        let start = std::time::Instant::now();
        let restored = super::restore(&plan, policy, locked_sha256, cache.url(), |dest| {
            let hit = match cache.fetch(&key, &f.inputs, &id, dest) {
                Lookup::Hit(hit) => hit,
                Lookup::Miss => return Err(String::new()),
                Lookup::Unusable(why) => return Err(why),
            };
            if hit.record.report.is_none() && needs_report {
                return Err(String::new());
            }
            if policy.locked
                && let Some(Some(want)) = locked_sha256.get(&id)
                && *want != hit.record.artifact.sha256
            {
                return Err(format!(
                    "the cached artifact differs from litert.lock (sha256 {} cached, {} locked)",
                    crate::cache::short(&hit.record.artifact.sha256),
                    crate::cache::short(want)
                ));
            }
            record_time = hit.record.build_seconds;
            Ok(hit.report)
        });
        match restored {
            Ok(status) => {
                let seconds = start.elapsed().as_secs_f64();
                records.seconds.insert(i, record_time.unwrap_or(seconds));
                records.inputs.insert(i, f.inputs);
                if let Some(slot) = outcomes.get_mut(i) {
                    *slot = Some(Outcome {
                        plan,
                        status,
                        seconds,
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

/// Push an artifact just built, with its snapshot and report. A failure is a warning: the
/// artifact is already written and recorded.
fn push_to_cache(
    cache: &crate::cache::Remote,
    outcome: &Outcome,
    entry: &crate::lock::Entry,
    progress: &Progress,
) {
    let Status::Built(c) = &outcome.status else {
        return;
    };
    if cache.down_reason().is_some() {
        return;
    }
    let snapshot = crate::snapshot::Snapshot::of(&outcome.plan.id, &c.model).render();
    let record = crate::cache::Record {
        format: crate::cache::record::FORMAT,
        key: crate::cache::key(&entry.inputs),
        id: outcome.plan.id.clone(),
        inputs: entry.inputs.clone(),
        artifact: crate::cache::Blob {
            sha256: c.sha256.clone(),
            size: c.size,
        },
        snapshot: crate::cache::Blob {
            sha256: crate::digest::sha256_hex(snapshot.as_bytes()),
            size: snapshot.len() as u64,
        },
        worker: entry.worker.clone(),
        build_seconds: entry.build_seconds,
        report: Some((*c.result).clone()),
        litert: env!("CARGO_PKG_VERSION").to_string(),
    };
    if let Err(why) = cache.push(&record, &outcome.plan.output, &snapshot) {
        progress.warn(&format!(
            "{}: not pushed to the cache: {why} (the artifact is written and recorded)",
            outcome.plan.id
        ));
    }
}
