//! Accepting an artifact, converted here or restored from the remote cache, in two steps
//! with the bundle between them (the worker pool runs them in order): [`check`] holds it to
//! parity and gates, its quantization and the lock under `--locked`; [`accept`] adds the
//! `.litertlm` bundle's verdict and the snapshot, and commits artifact, golden outputs,
//! snapshot and lock entry as one transaction when all hold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::failure::write_reason;
use super::session::RunContext;
use super::{
    Converted, Failure, Status, accuracy, bundle, contract, gates, generation, golden, quant,
    transaction,
};
use crate::recipe::BuildPlan;
use crate::tflite;
use crate::worker::protocol::BuildResult;

/// The artifact while it is being written: `artifact.tflite` inside a private directory
/// next to the output (mode 0700, unpredictable name, so nothing can be planted there), moved
/// into place only when accepted. The directory goes when this drops, so a failure never
/// leaves a half-written artifact behind.
pub(super) struct TempArtifact {
    _dir: crate::fsio::PrivateDir,
    pub path: PathBuf,
    // Dropped last: the signal handler forgets the directory only once it is removed.
    _tracked: crate::interrupt::Dir,
}

impl TempArtifact {
    /// Beside the output when the run writes; in the system temp directory when it only
    /// checks (`litert test` creates nothing in the project, not even `build/`).
    pub fn create(output: &Path, writes: bool) -> Result<Self, Failure> {
        let beside = if writes {
            output.to_path_buf()
        } else {
            std::env::temp_dir().join("litert-test.tflite")
        };
        let dir = crate::fsio::PrivateDir::beside(&beside).map_err(|e| Failure {
            stage: "plan".into(),
            message: format!(
                "cannot write the artifact in `{}`: {}",
                crate::fsio::parent_dir(&beside).display(),
                write_reason(&e)
            ),
            hint: Some(
                "free space or fix the permissions of the output directory, or point `output:` elsewhere"
                    .into(),
            ),
            detail: None,
        })?;
        // Keras refuses a name that does not end in `.tflite`.
        let path = dir.join("artifact.tflite");
        let path = std::path::absolute(&path).unwrap_or(path);
        let tracked = crate::interrupt::Dir::track(dir.path());
        Ok(Self {
            _dir: dir,
            path,
            _tracked: tracked,
        })
    }
}

/// An artifact waiting in its private directory, with the worker's report of it.
pub(super) struct Candidate {
    pub temp: TempArtifact,
    pub result: Box<BuildResult>,
    /// The cache it was restored from, when it was not converted in this run (recipes with
    /// a bundle are never restored).
    pub restored_from: Option<String>,
    /// The build time its lock entry records (unless the lock already knew this very
    /// artifact).
    pub seconds: f64,
}

/// What [`check`] found in a candidate.
pub(super) struct Checked {
    model: tflite::model::ModelInfo,
    size: u64,
    sha256: String,
    gates: Vec<gates::GateResult>,
    quantization: Option<quant::Verification>,
    /// Why it cannot be accepted; empty when it holds so far.
    reasons: Vec<String>,
}

impl Checked {
    /// Whether it holds so far: only then is its bundle written.
    pub fn holds(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// Restore an artifact from somewhere other than the worker (the remote cache): `fetch`
/// writes it to the path it is given and returns the worker's report of it and the build
/// time to record; the artifact then goes through the same checks and the same transaction
/// as a fresh build. `Err` with the reason when nothing could be fetched (nothing was
/// written).
pub fn restore<F>(
    plan: &BuildPlan,
    ctx: &RunContext<'_>,
    source: &str,
    fetch: F,
) -> Result<Status, String>
where
    F: FnOnce(&Path) -> Result<(Box<BuildResult>, f64), String>,
{
    if !crate::cache::cacheable(plan) {
        return Err("its `.litertlm` bundle is not kept in the cache".into());
    }
    let temp = TempArtifact::create(&plan.output, ctx.policy().write).map_err(|f| f.message)?;
    let (result, seconds) = fetch(&temp.path)?;
    let candidate = Candidate {
        temp,
        result,
        restored_from: Some(source.to_string()),
        seconds,
    };
    Ok(match check(plan, &candidate, ctx) {
        Ok(checked) => accept(plan, candidate, checked, None, ctx),
        Err(failure) => Status::Failed(failure),
    })
}

/// Read the candidate natively and hold it to parity, the gates, its quantization mode and
/// (under `--locked`) the locked bytes and worker.
pub(super) fn check(
    plan: &BuildPlan,
    candidate: &Candidate,
    ctx: &RunContext<'_>,
) -> Result<Checked, Failure> {
    let (path, result) = (&candidate.temp.path, &candidate.result);
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let model = tflite::read_path(path, tflite::ReadOptions::default()).map_err(|e| Failure {
        stage: "inspect".into(),
        message: format!("the converter wrote a model litert cannot read: {e}"),
        hint: None,
        detail: None,
    })?;
    let mut gate_results = gates::check(plan, &model, size);
    gate_results.extend(accuracy::check(
        plan.accuracy.as_ref(),
        result.accuracy.as_ref(),
    ));
    if let (Some(g), Some(r)) = (&plan.generation, &result.generation) {
        gate_results.push(generation::contract(g, &model, r.num_layers));
    }
    if let Some(g) = &plan.generation {
        gate_results.extend(generation::corpus_gates(g, result.generation.as_ref()));
    }
    let quantization = quant::verify_path(plan, path, &result.signature).ok();
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
    let sha256 = crate::digest::file_sha256(path).unwrap_or_default();
    if ctx.policy().locked {
        reasons.extend(locked_reasons(
            plan,
            ctx.locked_entry(plan),
            &sha256,
            &result.versions,
        ));
    }
    Ok(Checked {
        model,
        size,
        sha256,
        gates: gate_results,
        quantization,
        reasons,
    })
}

/// Judge the bundle written for a checked candidate (if any) and its snapshot, and commit
/// it with its golden outputs and lock entry when everything holds.
pub(super) fn accept(
    plan: &BuildPlan,
    candidate: Candidate,
    checked: Checked,
    written: Option<bundle::Written>,
    ctx: &RunContext<'_>,
) -> Status {
    let Candidate {
        temp,
        result,
        restored_from,
        seconds,
    } = candidate;
    let Checked {
        model,
        size,
        sha256,
        gates,
        quantization,
        mut reasons,
    } = checked;
    let policy = ctx.policy();
    if let Some(w) = &written {
        reasons.extend(bundle::rejection(&w.built));
        let entry = ctx.locked_entry(plan).filter(|_| policy.locked);
        if let Some(entry) = entry
            && entry.reproducible
            && entry.bundle.as_ref().map(|b| &b.sha256) != Some(&w.built.sha256)
        {
            reasons.push(format!(
                "the rebuilt bundle differs from litert.lock (sha256 {} here, {} locked)",
                crate::digest::short(&w.built.sha256),
                entry
                    .bundle
                    .as_ref()
                    .map_or("none", |b| crate::digest::short(&b.sha256))
            ));
        }
    }
    let (snapshot, text) = contract::judge_snapshot(
        plan,
        &model,
        written.as_ref().map(|w| &*w.built.info),
        policy,
    );
    if let Some(reason) = contract::snapshot_reason(plan, &snapshot) {
        reasons.push(reason);
    }
    let mut converted = Converted {
        result,
        model: Box::new(model),
        size,
        sha256,
        gates,
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
    // An artifact that is the locked one keeps golden files that still hold (see there).
    let unchanged = !policy.update_snapshots
        && ctx
            .locked_entry(plan)
            .is_some_and(|e| e.sha256 == converted.sha256);
    let golden = match golden::files(plan, &temp.path, &converted.result, unchanged) {
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
        .get(&(plan.root.clone(), plan.id.clone()))
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
    entry.build_seconds = Some(crate::lock::recorded_time(
        ctx.locked_entry(plan),
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

/// Why a rebuilt artifact does not hold under `--locked`.
fn locked_reasons(
    plan: &BuildPlan,
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
            "the rebuilt bytes differ from litert.lock (sha256 {} here, {} locked); if the change is intended, run `litert apply {}` (`--update-snapshots` if the signature changed too, or `litert snapshot review`), then commit litert.lock and snapshots/",
            crate::digest::short(sha256),
            crate::digest::short(&entry.sha256),
            plan.recipe.display()
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
