//! Accepting an artifact, converted here or restored from the remote cache: parity and
//! gates, quantization, the lock under `--locked`, the `.litertlm` bundle, the snapshot, and
//! one transaction of artifact, golden outputs, snapshot and lock entry when all hold.

use std::collections::BTreeMap;
use std::path::Path;

use super::{
    Acceptance, Converted, Failure, Status, TempArtifact, accuracy, bundle, contract, gates,
    generation, golden, quant, transaction, write_reason,
};
use crate::recipe::BuildPlan;
use crate::tflite;
use crate::worker::protocol::BuildResult;

/// Makes the `.litertlm` bundle of a converted artifact, when its recipe asks for one.
pub(super) type Bundler<'b> =
    &'b mut dyn FnMut(&Path, &BuildResult) -> Result<Option<bundle::Written>, Failure>;

/// Where an artifact being accepted came from.
pub(super) enum Restored<'b> {
    /// Converted here.
    No(Bundler<'b>),
    /// Restored from this cache (recipes with a bundle are never restored).
    From(String),
}

/// Restore an artifact from somewhere other than the worker (the remote cache): `fetch`
/// writes it to the path it is given and returns the worker's report of it and the build
/// time to record; the artifact then goes through the same checks and the same transaction
/// as a fresh build. `Err` with the reason when nothing could be fetched (nothing was
/// written).
pub fn restore<F>(
    plan: &BuildPlan,
    ctx: &Acceptance<'_>,
    source: &str,
    fetch: F,
) -> Result<Status, String>
where
    F: FnOnce(&Path) -> Result<(Box<BuildResult>, f64), String>,
{
    if !crate::cache::cacheable(plan) {
        return Err("its `.litertlm` bundle is not kept in the cache".into());
    }
    let temp = TempArtifact::create(&plan.output, ctx.policy.write).map_err(|f| f.message)?;
    let (result, seconds) = fetch(&temp.path)?;
    Ok(accept(
        plan,
        temp,
        result,
        ctx,
        Restored::From(source.to_string()),
        seconds,
    ))
}

/// Check an artifact waiting in its private directory (parity, gates, quantization, the
/// lock under `--locked`, its bundle, the snapshot) and commit it with its golden outputs
/// and lock entry when it passes. `seconds` is the build time its lock entry records (unless
/// the lock already knew this very artifact).
pub(super) fn accept(
    plan: &BuildPlan,
    temp: TempArtifact,
    result: Box<BuildResult>,
    ctx: &Acceptance<'_>,
    origin: Restored<'_>,
    seconds: f64,
) -> Status {
    let size = std::fs::metadata(&temp.path).map(|m| m.len()).unwrap_or(0);
    let model = match tflite::read_path(&temp.path, tflite::ReadOptions::default()) {
        Ok(m) => m,
        Err(e) => {
            return Status::Failed(Failure {
                stage: "inspect".into(),
                message: format!("the converter wrote a model litert cannot read: {e}"),
                hint: None,
                detail: None,
            });
        }
    };
    let mut gate_results = gates::check(plan, &model, size);
    gate_results.extend(accuracy::check(
        plan.accuracy.as_ref(),
        result.accuracy.as_ref(),
    ));
    if let (Some(g), Some(r)) = (&plan.generation, &result.generation) {
        gate_results.push(generation::contract(g, &model, r.num_layers));
    }
    let quantization = quant::verify_path(plan, &temp.path, &result.signature).ok();
    let mut reasons: Vec<String> = gate_results
        .iter()
        .filter(|g| !g.ok)
        .map(|g| g.message.clone())
        .collect();
    reasons.extend(
        quantization
            .as_ref()
            .and_then(quant::Verification::rejection),
    );
    if let Some(p) = &result.parity
        && !p.ok
    {
        reasons.insert(0, "parity with Keras failed".into());
    }
    if let Some(reason) = result
        .generation
        .as_ref()
        .and_then(|g| g.check.as_ref())
        .and_then(generation::rejection)
    {
        reasons.insert(0, reason);
    }
    let policy = ctx.policy;
    let sha256 = crate::digest::file_sha256(&temp.path).unwrap_or_default();
    let key = (plan.root.clone(), plan.id.clone());
    if policy.locked {
        reasons.extend(locked_reasons(
            ctx.locked.get(&key),
            &sha256,
            &result.versions,
        ));
    }
    // The bundle is written only for an artifact that holds so far.
    let (restored_from, written) = match origin {
        Restored::From(source) => (Some(source), None),
        Restored::No(make_bundle) if reasons.is_empty() => match make_bundle(&temp.path, &result) {
            Ok(w) => (None, w),
            Err(failure) => return Status::Failed(failure),
        },
        Restored::No(_) => (None, None),
    };
    if let Some(w) = &written {
        reasons.extend(bundle::rejection(&w.built));
        let entry = ctx.locked.get(&key).filter(|_| policy.locked);
        if let Some(entry) = entry
            && entry.reproducible
            && entry.bundle.as_ref().map(|b| &b.sha256) != Some(&w.built.sha256)
        {
            reasons.push(format!(
                "the rebuilt bundle differs from litert.lock (sha256 {} here, {} locked)",
                short(&w.built.sha256),
                entry.bundle.as_ref().map_or("none", |b| short(&b.sha256))
            ));
        }
    }
    let (snapshot, text) = contract::judge_snapshot(
        plan,
        &model,
        &result.keras_outputs,
        written.as_ref().map(|w| &*w.built.info),
        policy,
    );
    if let Some(reason) = contract::snapshot_reason(&snapshot) {
        reasons.push(reason);
    }
    let mut converted = Converted {
        result,
        model: Box::new(model),
        size,
        sha256,
        gates: gate_results,
        snapshot,
        quantization,
        bundle: written.as_ref().map(|w| w.built.clone()),
        restored_from,
        entry: None,
    };
    if !reasons.is_empty() {
        // A changed signature leaves its pending snapshot for review; nothing else is
        // written for a rejected artifact.
        if policy.write
            && matches!(
                converted.snapshot,
                contract::SnapshotOutcome::Changed { .. }
            )
        {
            let _ = contract::commit_snapshot(&converted.snapshot, &text);
        }
        converted.snapshot = converted.snapshot.unwritten();
        // The file it was read from is gone with the build directory.
        converted.model.file = String::new();
        return Status::Rejected(converted, reasons);
    }
    if !policy.write {
        converted.model.file = String::new();
        return Status::Built(converted);
    }
    let golden = match golden::files(plan, &temp.path, &converted.result) {
        Ok(files) => files,
        Err(e) => {
            return Status::Failed(Failure {
                stage: "write".into(),
                message: format!(
                    "cannot read the golden outputs the worker wrote: {}; nothing was changed",
                    write_reason(&e)
                ),
                hint: None,
                detail: None,
            });
        }
    };
    let inputs = ctx
        .inputs
        .get(&key)
        .cloned()
        .unwrap_or_else(|| crate::lock::Inputs {
            plan: plan.digest.clone(),
            model: String::new(),
            calibration: None,
            toolchain: String::new(),
        });
    let mut entry = contract::entry_for(plan, inputs, &converted);
    // The lock keeps the first build time of an artifact that stays the same, so a rebuild,
    // a shard or a cache restore leaves its entry byte for byte as it was.
    entry.build_seconds = Some(crate::shard::recorded_time(
        ctx.locked.get(&key),
        &entry,
        seconds,
    ));
    converted.entry = Some(entry.clone());
    // `--locked` never writes the lock; a shard's entries go to its fragment.
    let entry = (!policy.locked && ctx.write_lock).then_some(entry);
    let writes_snapshot = matches!(
        converted.snapshot,
        contract::SnapshotOutcome::Created { .. } | contract::SnapshotOutcome::Updated { .. }
    );
    let change = transaction::Change {
        plan,
        artifact: &temp.path,
        companions: written
            .iter()
            .map(|w| (w.built.temp.as_path(), w.built.output.as_path()))
            .collect(),
        files: golden,
        snapshot: writes_snapshot.then_some(text.as_str()),
        entry,
    };
    match transaction::commit(change) {
        Ok(()) => {
            converted.model.file = plan.output.display().to_string();
            Status::Built(converted)
        }
        Err(failure) => Status::Failed(failure),
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// Why a rebuilt artifact does not hold under `--locked`.
fn locked_reasons(
    entry: Option<&crate::lock::Entry>,
    sha256: &str,
    versions: &BTreeMap<String, String>,
) -> Vec<String> {
    let Some(entry) = entry else {
        return vec!["not in litert.lock, and `--locked` builds only locked artifacts".into()];
    };
    if entry.worker != *versions {
        return vec![format!(
            "litert.lock is stale: its worker packages differ from this environment ({} here); \
             rerun `litert apply` without `--locked` to lock what this environment builds, and commit litert.lock",
            versions_text(&entry.worker, versions)
        )];
    }
    // Artifacts with Flex ops do not repeat their bytes (measured), so `--locked` cannot
    // hold them to the locked sha256.
    if entry.reproducible && entry.sha256 != sha256 {
        return vec![format!(
            "the rebuilt bytes differ from litert.lock (sha256 {} here, {} locked)",
            short(sha256),
            short(&entry.sha256)
        )];
    }
    vec![]
}

/// The packages whose versions differ, as `tensorflow 2.20.0 → 2.21.0`.
fn versions_text(locked: &BTreeMap<String, String>, here: &BTreeMap<String, String>) -> String {
    let mut names: Vec<&String> = locked.keys().chain(here.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| locked.get(*n) != here.get(*n))
        .map(|n| {
            let v =
                |m: &BTreeMap<String, String>| m.get(n).cloned().unwrap_or_else(|| "none".into());
            format!("{n} {} → {}", v(locked), v(here))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
