//! What happened to each build of a run, as the report, `litert test` and the cache see it:
//! built (or, in a checking run, would have been), up to date and checked without
//! rebuilding, converted but rejected (with the reasons), or failed at a stage.

use super::{Failure, bundle, contract, gates, golden, quant};
use crate::recipe::BuildPlan;
use crate::tflite;
use crate::worker::protocol::BuildResult;

/// What happened to one build.
#[derive(Debug)]
pub struct Outcome {
    pub plan: BuildPlan,
    pub status: Status,
    pub seconds: f64,
    /// Why it was built rather than found up to date (empty when not built).
    pub rebuilt_because: Vec<String>,
}

#[derive(Debug)]
pub enum Status {
    /// Written to `plan.output` (or, in a checking run, would have been).
    Built(Converted),
    /// Not rebuilt: the lock says its inputs are unchanged and the artifact on disk is the
    /// locked one. Its snapshot was still checked.
    UpToDate(Box<Verified>),
    /// Converted, but parity or a gate failed (the reasons): nothing was written.
    Rejected(Converted, Vec<String>),
    /// The build could not finish.
    Failed(Failure),
}

/// What a conversion produced and what litert found in it.
#[derive(Debug)]
pub struct Converted {
    pub result: Box<BuildResult>,
    /// The artifact as the native reader sees it.
    pub model: Box<tflite::model::ModelInfo>,
    pub size: u64,
    pub sha256: String,
    pub gates: Vec<gates::GateResult>,
    pub snapshot: contract::SnapshotOutcome,
    /// The artifact against its quantization mode.
    pub quantization: Option<quant::Verification>,
    /// The `.litertlm` bundle written with a generation artifact.
    pub bundle: Option<bundle::Built>,
    /// The cache it was restored from, when it was not converted in this run.
    pub restored_from: Option<String>,
    /// Its lock entry (when written, or when a shard records it in its fragment).
    pub entry: Option<crate::lock::Entry>,
}

/// An up-to-date artifact, checked against its snapshot without rebuilding.
#[derive(Debug)]
pub struct Verified {
    pub model: tflite::model::ModelInfo,
    pub size: u64,
    pub snapshot: contract::SnapshotOutcome,
    /// The native re-run on its golden outputs (checking runs, when it has them).
    pub golden: Option<golden::Check>,
    /// Why it is not acceptable after all (its snapshot no longer holds).
    pub reasons: Vec<String>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        match &self.status {
            Status::Built(_) => true,
            Status::UpToDate(v) => v.reasons.is_empty(),
            _ => false,
        }
    }

    /// A build that failed before it started, or without a worker.
    pub(super) fn failed(plan: BuildPlan, failure: Failure, seconds: f64) -> Self {
        Self {
            plan,
            status: Status::Failed(failure),
            seconds,
            rebuilt_because: vec![],
        }
    }
}
