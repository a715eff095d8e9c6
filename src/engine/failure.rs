//! Why a build could not finish, in the user's terms: the [`Failure`] every stage reports,
//! and the tables that turn what went wrong (a worker's error, a worker process that died or
//! hung, a file that could not be written) into a message and a hint to act on.

use crate::recipe::BuildPlan;
use crate::worker::process::ProcessError;
use crate::worker::protocol::{ErrorKind, WorkerError};

/// Why a build could not finish, with the stage it reached.
#[derive(Debug)]
pub struct Failure {
    pub stage: String,
    pub message: String,
    pub hint: Option<String>,
    pub detail: Option<String>,
}

impl Failure {
    pub(super) fn snapshot_write(plan: &BuildPlan, e: &std::io::Error) -> Self {
        Self {
            stage: "write".into(),
            message: format!(
                "cannot write the snapshot `{}`: {e}",
                plan.snapshot.display()
            ),
            hint: None,
            detail: None,
        }
    }

    pub(super) fn unexpected_reply(stage: &str) -> Self {
        Self {
            stage: stage.into(),
            message: "the worker answered with something other than what was asked".into(),
            hint: Some("this is a bug in litert: please report it with `--verbose` output".into()),
            detail: None,
        }
    }
}

/// Why a file could not be written, in words; the error's own text names the hidden
/// build directory, which means nothing to the user.
pub(super) fn write_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ReadOnlyFilesystem => "the file system is read-only".into(),
        K::StorageFull => "no space left on the device".into(),
        K::QuotaExceeded => "the disk quota is exhausted".into(),
        K::PermissionDenied => "permission denied".into(),
        K::NotADirectory => "a part of the path is a file, not a directory".into(),
        _ => e.to_string(),
    }
}

/// What to try when the worker ran out of memory: fewer workers, unless there was one.
fn memory_hint(jobs: usize) -> String {
    if jobs > 1 {
        format!("{jobs} workers ran at once: try `--jobs 1`, or a smaller model")
    } else {
        "the build needs more memory than the worker may use: raise its limit with `LITERT_WORKER_MEMORY=SIZE` (default: three quarters of physical memory) if the machine has it, or use a smaller model".to_string()
    }
}

pub(super) fn process_failure(stage: &str, e: &ProcessError, jobs: usize) -> Failure {
    let hint = match e {
        ProcessError::Spawn { .. } => {
            Some("check the interpreter with `litert env doctor`".to_string())
        }
        ProcessError::Died {
            status: Some(s), ..
        } if s.contains("SIGKILL") => Some(format!(
            "the machine may be out of memory. {}",
            memory_hint(jobs)
        )),
        // Native code that cannot allocate under the worker's memory cap often crashes
        // instead of raising MemoryError.
        ProcessError::Died {
            status: Some(s), ..
        } if ["SIGSEGV", "SIGABRT", "SIGBUS"]
            .iter()
            .any(|sig| s.contains(sig)) =>
        {
            match crate::worker::memory::budget(jobs) {
                Ok(Some(limit)) => Some(format!(
                    "a crash in native code is often an allocation that failed at the worker's memory limit ({}, `LITERT_WORKER_MEMORY`). {}",
                    crate::units::human_bytes(limit),
                    memory_hint(jobs)
                )),
                _ => None,
            }
        }
        _ => None,
    };
    Failure {
        stage: stage.to_string(),
        message: e.to_string(),
        hint,
        detail: e
            .stderr_tail()
            .filter(|t| !t.is_empty())
            .map(str::to_string),
    }
}

/// The hint for a worker's error, by its kind: what the user can do about it.
fn hint(plan: &BuildPlan, e: &WorkerError, jobs: usize) -> Option<String> {
    let text = match e.kind {
        ErrorKind::UnsupportedOps => {
            "allow TensorFlow ops with `ops: {flex: true}` in the recipe (the app then needs the Flex delegate), \
             or give static shapes (`batch_size`, `sequence_length`) so the ops lower to builtins"
                .to_string()
        }
        ErrorKind::Network => format!(
            "this machine cannot download presets: save the preset locally (`task.save_to_preset(DIR)`) and point \
             the recipe at it with {}",
            match &plan.model {
                crate::recipe::plan::ModelPlan::Preset { var: Some(v), .. } =>
                    format!("`--set {v}=DIR` (an absolute path, or relative to the recipe)"),
                _ => "`model.preset.path`".to_string(),
            }
        ),
        ErrorKind::CodeNotAllowed => "review the code, then rerun with `--allow-code`".to_string(),
        ErrorKind::UnsafeModel => {
            "the model contains a `Lambda` layer or other code; if you trust it, rerun with `--allow-unsafe`".to_string()
        }
        ErrorKind::Signature if !e.model_inputs.is_empty() => format!(
            "name the model's inputs in the recipe: {}",
            e.model_inputs.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
        ),
        ErrorKind::OutOfMemory => memory_hint(jobs),
        ErrorKind::NotAKerasArchive => {
            "a `.keras` file is what `model.save(\"model.keras\")` writes; check the recipe names the right file".to_string()
        }
        ErrorKind::ArchiveTooLarge => {
            "this is not a model file Keras wrote as it is; get it again from a source you trust".to_string()
        }
        ErrorKind::OutputUnwritable => {
            "free space or fix the permissions of the output directory, or point `output:` elsewhere".to_string()
        }
        // The message says it all.
        ErrorKind::Load
        | ErrorKind::Signature
        | ErrorKind::Calibration
        | ErrorKind::Accuracy
        | ErrorKind::Convert
        | ErrorKind::Parity
        | ErrorKind::Generation
        | ErrorKind::Bundle
        | ErrorKind::Protocol
        | ErrorKind::Unknown => return None,
    };
    Some(text)
}

pub(super) fn worker_failure(plan: &BuildPlan, e: &WorkerError, jobs: usize) -> Failure {
    let mut message = e.message.clone();
    if !e.ops.is_empty() && !message.contains(&e.ops[0]) {
        message.push_str(&format!(" ({})", e.ops.join(", ")));
    }
    // Our own error kinds explain themselves; an exception from user code or a library
    // shows where it came from.
    let detail =
        (e.kind == ErrorKind::Unknown && !e.traceback.is_empty()).then(|| e.traceback.clone());
    Failure {
        stage: e.stage.clone(),
        message,
        hint: hint(plan, e, jobs),
        detail,
    }
}
