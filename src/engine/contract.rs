//! What an artifact promises beyond parity and gates: its signature snapshot still holds,
//! and (with `--locked`) its bytes are the ones in `litert.lock`. Also the up-to-date check
//! that lets `apply` skip a build without starting Python: same recipe, model, calibration
//! and toolchain as the lock says, and the artifact on disk still has the locked sha256.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::lock::{Entry, Inputs};
use crate::provenance::Provenance;
use crate::recipe::{BuildPlan, digest};
use crate::snapshot::{self, Comparison, Snapshot};
use crate::tflite::model::ModelInfo;

/// How snapshots and the lock are treated in this run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy {
    /// Accept changed snapshots (`--update-snapshots`).
    pub update_snapshots: bool,
    /// `CI` is set: a missing snapshot is a failure, never written.
    pub ci: bool,
    /// `--locked`: the artifact's bytes must be the locked ones.
    pub locked: bool,
    /// Write artifacts, snapshots and pending files (`apply`); `litert test` only checks.
    pub write: bool,
}

/// What happened to an artifact's snapshot.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SnapshotOutcome {
    Same {
        path: PathBuf,
    },
    /// There was none; it was written (or would be, in a checking run).
    Created {
        path: PathBuf,
    },
    /// Changed and accepted with `--update-snapshots`.
    Updated {
        path: PathBuf,
        diff: String,
    },
    /// Changed: the diff, and the pending file left for review (when writing).
    Changed {
        path: PathBuf,
        diff: String,
        pending: Option<PathBuf>,
    },
    /// None stored, and CI does not create them.
    MissingInCi {
        path: PathBuf,
    },
    /// There was none, and none was written because the artifact was rejected.
    NotWritten {
        path: PathBuf,
    },
}

impl SnapshotOutcome {
    /// The verdict for an artifact that was rejected: a snapshot it would have created was
    /// not written after all.
    pub fn unwritten(self) -> Self {
        match self {
            Self::Created { path } => Self::NotWritten { path },
            other => other,
        }
    }

    pub fn ok(&self) -> bool {
        matches!(
            self,
            Self::Same { .. } | Self::Created { .. } | Self::Updated { .. }
        )
    }
}

/// The snapshot verdict for `model`; writes nothing yet (see [`commit_snapshot`]).
pub fn judge_snapshot(
    plan: &BuildPlan,
    model: &ModelInfo,
    bundle: Option<&crate::litertlm::BundleInfo>,
    policy: Policy,
) -> (SnapshotOutcome, String) {
    let mut text = Snapshot::of(&plan.id, model).render();
    // A bundle's contract (tokens, tokenizer, sections) follows in the same file; its model
    // is the artifact whose signatures are above.
    if let Some(b) = bundle {
        text.push('\n');
        text.push_str(
            &crate::snapshot::bundle::BundleSnapshot::of(&plan.id, b)
                .without_model()
                .render(),
        );
    }
    let path = plan.snapshot.clone();
    let outcome = match snapshot::compare(&path, &text) {
        Comparison::Same => SnapshotOutcome::Same { path },
        Comparison::Missing if policy.ci => SnapshotOutcome::MissingInCi { path },
        Comparison::Missing => SnapshotOutcome::Created { path },
        Comparison::Changed(diff) if policy.update_snapshots => {
            SnapshotOutcome::Updated { path, diff }
        }
        Comparison::Changed(diff) => {
            let pending = policy.write.then(|| snapshot::pending_path(&path));
            SnapshotOutcome::Changed {
                path,
                diff,
                pending,
            }
        }
    };
    (outcome, text)
}

/// Write what the verdict says to write: the snapshot, or the pending `.new` file.
pub fn commit_snapshot(outcome: &SnapshotOutcome, text: &str) -> std::io::Result<()> {
    match outcome {
        SnapshotOutcome::Created { path } | SnapshotOutcome::Updated { path, .. } => {
            crate::fsio::write_atomic(path, text)?;
            let _ = std::fs::remove_file(snapshot::pending_path(path));
            Ok(())
        }
        SnapshotOutcome::Changed {
            pending: Some(p), ..
        } => crate::fsio::write_atomic(p, text),
        _ => Ok(()),
    }
}

/// The reason a snapshot verdict blocks the artifact, if it does, with the way out.
pub fn snapshot_reason(plan: &BuildPlan, outcome: &SnapshotOutcome) -> Option<String> {
    match outcome {
        SnapshotOutcome::Changed { path, pending, .. } => Some(match pending {
            Some(p) => format!(
                "the signature changed: `{}` differs (pending review in `{}`; `litert snapshot review`, or rerun with `--update-snapshots`)",
                path.display(),
                p.display()
            ),
            // A checking run writes no pending file: name the commands that do.
            None => format!(
                "the signature changed: `{}` differs; if that is intended, run `litert apply {} --update-snapshots` (or `litert apply` and `litert snapshot review`), then commit the snapshot and litert.lock",
                path.display(),
                plan.recipe.display()
            ),
        }),
        SnapshotOutcome::MissingInCi { path } => Some(format!(
            "no snapshot at `{}`, and CI does not create snapshots: run `litert apply` locally and commit it",
            path.display()
        )),
        _ => None,
    }
}

/// Where the artifact of `plan` comes from, as the artifact itself records it: known before
/// the build, from the plan and its digested inputs, never from the artifact's own bytes.
pub fn provenance(plan: &BuildPlan, inputs: &Inputs) -> Provenance {
    Provenance {
        artifact: plan.id.clone(),
        recipe: relative(&plan.recipe, &plan.root),
        plan: inputs.plan.clone(),
        toolchain: inputs.toolchain.clone(),
    }
}

/// A build's inputs, digested.
pub fn inputs_of(plan: &BuildPlan, toolchain: &str) -> anyhow::Result<Inputs> {
    Ok(Inputs {
        plan: plan.digest.clone(),
        model: digest::model_digest(&plan.model)?,
        calibration: digest::data_digest(plan)?,
        toolchain: toolchain.to_string(),
    })
}

/// Why an artifact must be rebuilt; empty when it is up to date.
pub fn stale_reasons(plan: &BuildPlan, inputs: &Inputs, entry: Option<&Entry>) -> Vec<String> {
    let Some(entry) = entry else {
        return vec!["not in litert.lock".to_string()];
    };
    let mut reasons = Vec::new();
    let was = &entry.inputs;
    if was.plan != inputs.plan {
        reasons.push("the recipe changed".to_string());
    }
    if was.model != inputs.model {
        reasons.push("the model source changed".to_string());
    }
    if was.calibration != inputs.calibration {
        reasons
            .push("the data it reads changed (calibration, accuracy data or corpus)".to_string());
    }
    if was.toolchain != inputs.toolchain {
        reasons.push(format!(
            "the toolchain changed ({} → {})",
            was.toolchain, inputs.toolchain
        ));
    }
    if relative(&plan.output, &plan.root) != entry.output {
        reasons.push("the output path changed".to_string());
    }
    let bundle = plan.generation.as_ref().and_then(|g| g.bundle.as_ref());
    let files = std::iter::once((&plan.output, Some(&entry.sha256)))
        .chain(bundle.map(|b| (&b.output, entry.bundle.as_ref().map(|e| &e.sha256))));
    for (path, locked) in files {
        match (crate::digest::file_sha256(path), locked) {
            (_, None) => reasons.push(format!("`{}` is not in litert.lock", path.display())),
            (Err(_), _) => reasons.push(format!("`{}` is missing", path.display())),
            (Ok(sha), Some(locked)) if sha != *locked => {
                reasons.push(format!(
                    "`{}` differs from the locked bytes",
                    path.display()
                ));
            }
            _ => {}
        }
    }
    if bundle.is_none() && entry.bundle.is_some() {
        reasons.push("the recipe no longer asks for a bundle".into());
    }
    reasons
}

/// The lock entry for an artifact just written.
pub fn entry_for(plan: &BuildPlan, inputs: Inputs, built: &super::Converted) -> Entry {
    Entry {
        recipe: relative(&plan.recipe, &plan.root),
        output: relative(&plan.output, &plan.root),
        inputs,
        worker: built.result.versions.clone(),
        sha256: built.sha256.clone(),
        size: built.size,
        reproducible: built.model.flex_ops.is_empty(),
        bundle: built.bundle.as_ref().map(|b| crate::lock::BundleEntry {
            output: relative(&b.output, &plan.root),
            sha256: b.sha256.clone(),
            size: b.size,
        }),
        build_seconds: None,
        writer: plan.generation.as_ref().map(|g| {
            match g.writer {
                crate::recipe::types::GenerationWriter::Native => "native",
                crate::recipe::types::GenerationWriter::Converter => "converter",
            }
            .to_string()
        }),
    }
}

/// `path` relative to `root` when inside it, with `/` separators; else the absolute path
/// (an artifact may go outside the project on purpose, e.g. into an app's assets).
pub fn relative(path: &Path, root: &Path) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (p, r) = (abs(path), abs(root));
    let Ok(rel) = p.strip_prefix(&r) else {
        return p.to_string_lossy().into_owned();
    };
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}
