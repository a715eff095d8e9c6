//! What is up to date, decided from the lock files alone (no Python): a plan whose recipe,
//! model, calibration data and toolchain are as its project's `litert.lock` recorded, and
//! whose artifact on disk is the locked one, is not rebuilt; it is read natively and held
//! to its snapshot (and, in a checking run, to its golden outputs) instead. Also what a run
//! that holds builds to the lock refuses before building anything.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use super::contract::{self, Policy};
use super::{Failure, Outcome, Status, Verified, golden};
use crate::lock::{Inputs, LockFile};
use crate::recipe::BuildPlan;
use crate::tflite;

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
    let toolchain = super::toolchain::identity(external_python);
    let locks = read_locks(plans.iter())?;
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

/// [`freshness`] for a run in this process's environment (`LITERT_PYTHON` or the
/// provisioned one), without provisioning anything: what `plan` and `cache status` report.
pub fn status(plans: &[BuildPlan]) -> anyhow::Result<Vec<anyhow::Result<Freshness>>> {
    let external = crate::pyenv::EnvRequest::from_env(None)
        .python_override
        .is_some();
    freshness(plans, external)
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

/// What a run that holds builds to the lock (`test`, `apply --locked`) refuses before
/// building: an artifact the lock has never seen, a lock made by another toolchain, and
/// (when only checking) an artifact on disk that is not the locked one. As (stage, message,
/// hint).
pub(super) fn refuse(
    plan: &BuildPlan,
    f: &Freshness,
    policy: Policy,
) -> Option<(&'static str, String, String)> {
    if !policy.locked {
        return None;
    }
    let Some(entry) = f.entry.as_ref() else {
        // Nothing to hold the build to: say so now rather than after a build.
        return Some((
            "lock",
            format!(
                "`{}` was never applied: litert.lock has no entry for it",
                plan.id
            ),
            format!(
                "run `litert apply {}`, review the report and the new snapshot, and commit litert.lock and snapshots/",
                plan.recipe.display()
            ),
        ));
    };
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
    if let Some(edited) = worker_disagrees(entry, &f.inputs.toolchain) {
        return Some((
            "lock",
            format!(
                "litert.lock is stale or edited: `{}` records {edited}, but its toolchain ({}) pins otherwise",
                plan.id, entry.inputs.toolchain
            ),
            "run `litert apply` (without `--locked`) to record what this toolchain builds, review and commit litert.lock; never edit it by hand".into(),
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
                    crate::digest::short(&sha),
                    crate::digest::short(locked)
                ),
                "rebuild it with `litert apply`, or delete it so `litert test` rebuilds it and compares".into(),
            )),
            _ => None,
        })
}

/// The packages an entry's `worker:` block records at versions other than the ones its
/// toolchain pins (the toolchain names the embedded requirements lock by digest, so the two
/// must agree); `None` when they agree, or when the worker was an external interpreter.
fn worker_disagrees(entry: &crate::lock::Entry, toolchain: &str) -> Option<String> {
    if super::toolchain::is_external(toolchain) {
        return None;
    }
    let pins = crate::pyenv::lock::Lock::embedded().ok()?;
    let wrong: Vec<String> = entry
        .worker
        .iter()
        .filter_map(|(name, recorded)| {
            let pinned = pins.version_of(name)?;
            (pinned != recorded).then(|| format!("{name} {recorded} (pinned: {pinned})"))
        })
        .collect();
    (!wrong.is_empty()).then(|| wrong.join(", "))
}

/// Check an up-to-date artifact without rebuilding it: read it natively and compare its
/// snapshot (writing a missing one, as a build would).
pub(super) fn verify_up_to_date(plan: BuildPlan, policy: Policy) -> Outcome {
    let start = Instant::now();
    let unreadable = |path: &std::path::Path, e: &dyn std::fmt::Display| Failure {
        stage: "inspect".into(),
        message: format!("cannot read `{}`: {e}", path.display()),
        hint: Some("rebuild it with `--force`".into()),
        detail: None,
    };
    let model = match tflite::read_path(&plan.output, tflite::ReadOptions::default()) {
        Ok(model) => model,
        Err(e) => {
            let failure = unreadable(&plan.output, &e);
            return Outcome::failed(plan, failure, start.elapsed().as_secs_f64());
        }
    };
    let size = model.size_bytes;
    let bundle = match plan.generation.as_ref().and_then(|g| g.bundle.as_ref()) {
        None => None,
        Some(b) => match crate::litertlm::read_path(&b.output) {
            Ok(info) => Some(info),
            Err(e) => {
                let failure = unreadable(&b.output, &e);
                return Outcome::failed(plan, failure, start.elapsed().as_secs_f64());
            }
        },
    };
    let (snapshot, text) = contract::judge_snapshot(&plan, &model, bundle.as_ref(), policy);
    let mut reasons: Vec<String> = contract::snapshot_reason(&plan, &snapshot)
        .into_iter()
        .collect();
    // Checking runs (`litert test`) also re-run the artifact on its golden outputs.
    let golden = (!policy.write)
        .then(|| golden::check(&plan, &model))
        .flatten();
    reasons.extend(golden.as_ref().and_then(golden::Check::reason));
    if policy.write
        && let Err(e) = contract::commit_snapshot(&snapshot, &text)
    {
        let failure = Failure::snapshot_write(&plan, &e);
        return Outcome::failed(plan, failure, start.elapsed().as_secs_f64());
    }
    let status = Status::UpToDate(Box::new(Verified {
        model,
        size,
        snapshot,
        golden,
        reasons,
    }));
    Outcome {
        plan,
        status,
        seconds: start.elapsed().as_secs_f64(),
        rebuilt_because: vec![],
    }
}
