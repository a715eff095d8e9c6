//! The build pipeline behind `litert apply`: hands each build plan to a worker, watches its
//! progress under a timeout, and hands what comes back to `accept`, which checks it
//! (parity, gates, the lock under `--locked`) and commits the artifact, its snapshot and its
//! lock entry as one transaction ([`transaction`]). An artifact restored from the remote
//! cache ([`restore`]) goes through the same checks and the same transaction. A failed build
//! never leaves a temp file or touches the previous artifact; a crashed worker is replaced so
//! the remaining builds still run.

mod accept;
pub mod accuracy;
pub mod bundle;
pub mod contract;
pub mod footprint;
pub mod gates;
pub mod generation;
pub mod golden;
pub mod progress;
pub mod quant;
pub mod report;
pub mod session;
pub mod transaction;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::recipe::BuildPlan;
use crate::tflite;
use crate::worker::env::WorkerEnv;
use crate::worker::process::{ProcessError, Worker};
use crate::worker::protocol::{BuildResult, Event, Request, WorkerError};
use accept::{Restored, accept};
use progress::Progress;

pub use accept::restore;

/// How `apply` runs.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The worker's Python environment.
    pub env: WorkerEnv,
    pub allow_code: bool,
    pub allow_unsafe: bool,
    pub jobs: usize,
    /// Longest a single build may take.
    pub timeout: Duration,
    /// Echo the worker's stderr (TensorFlow's logs) as it arrives.
    pub verbose: bool,
    /// How snapshots and the lock are treated.
    pub policy: contract::Policy,
    /// The lock entry of each plan to build that has one, by (project root, artifact id).
    pub locked: BTreeMap<(PathBuf, String), crate::lock::Entry>,
    /// The digested inputs of each plan to build, for its new lock entry.
    pub inputs: BTreeMap<(PathBuf, String), crate::lock::Inputs>,
    /// Record entries in `litert.lock` (false for one shard of a sharded run, whose entries
    /// go to its lock fragment).
    pub write_lock: bool,
}

/// What checking a finished artifact needs from the run.
pub struct Acceptance<'a> {
    pub policy: contract::Policy,
    pub locked: &'a BTreeMap<(PathBuf, String), crate::lock::Entry>,
    pub inputs: &'a BTreeMap<(PathBuf, String), crate::lock::Inputs>,
    pub write_lock: bool,
}

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

/// Why a build could not finish, with the stage it reached.
#[derive(Debug)]
pub struct Failure {
    pub stage: String,
    pub message: String,
    pub hint: Option<String>,
    pub detail: Option<String>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        match &self.status {
            Status::Built(_) => true,
            Status::UpToDate(v) => v.reasons.is_empty(),
            _ => false,
        }
    }
}

/// Check an up-to-date artifact without rebuilding it: read it natively and compare its
/// snapshot (writing a missing one, as a build would).
pub fn verify_up_to_date(
    plan: BuildPlan,
    keras_outputs: &[String],
    policy: contract::Policy,
) -> Outcome {
    let start = Instant::now();
    let status = match tflite::read_path(&plan.output, tflite::ReadOptions::default()) {
        Err(e) => Status::Failed(Failure {
            stage: "inspect".into(),
            message: format!("cannot read `{}`: {e}", plan.output.display()),
            hint: Some("rebuild it with `--force`".into()),
            detail: None,
        }),
        Ok(model) => {
            let size = model.size_bytes;
            let bundle = match plan.generation.as_ref().and_then(|g| g.bundle.as_ref()) {
                None => None,
                Some(b) => match crate::litertlm::read_path(&b.output) {
                    Ok(info) => Some(info),
                    Err(e) => {
                        let failure = Failure {
                            stage: "inspect".into(),
                            message: format!("cannot read `{}`: {e}", b.output.display()),
                            hint: Some("rebuild it with `--force`".into()),
                            detail: None,
                        };
                        return Outcome {
                            plan,
                            status: Status::Failed(failure),
                            seconds: start.elapsed().as_secs_f64(),
                            rebuilt_because: vec![],
                        };
                    }
                },
            };
            let (snapshot, text) =
                contract::judge_snapshot(&plan, &model, keras_outputs, bundle.as_ref(), policy);
            let mut reasons: Vec<String> =
                contract::snapshot_reason(&snapshot).into_iter().collect();
            // Checking runs (`litert test`) also re-run the artifact on its golden outputs.
            let golden = (!policy.write)
                .then(|| golden::check(&plan, &model))
                .flatten();
            reasons.extend(golden.as_ref().and_then(golden::Check::reason));
            if policy.write
                && let Err(e) = contract::commit_snapshot(&snapshot, &text)
            {
                return failed_write(plan, &e, start);
            }
            Status::UpToDate(Box::new(Verified {
                model,
                size,
                snapshot,
                golden,
                reasons,
            }))
        }
    };
    Outcome {
        plan,
        status,
        seconds: start.elapsed().as_secs_f64(),
        rebuilt_because: vec![],
    }
}

fn failed_write(plan: BuildPlan, e: &std::io::Error, start: Instant) -> Outcome {
    let failure = Failure::snapshot_write(&plan, e);
    Outcome {
        plan,
        status: Status::Failed(failure),
        seconds: start.elapsed().as_secs_f64(),
        rebuilt_because: vec![],
    }
}

impl Failure {
    fn snapshot_write(plan: &BuildPlan, e: &std::io::Error) -> Self {
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
}

/// Run every plan, `options.jobs` at a time, and report each in input order.
pub fn apply(plans: Vec<BuildPlan>, options: &ApplyOptions, progress: &Progress) -> Vec<Outcome> {
    let total = plans.len();
    let queue: Mutex<VecDeque<(usize, BuildPlan)>> =
        Mutex::new(plans.into_iter().enumerate().collect());
    let results: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::with_capacity(total));
    let jobs = options.jobs.clamp(1, total.max(1));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                let mut slot = WorkerSlot {
                    worker: None,
                    options,
                };
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some((index, plan)) = next else { break };
                    let outcome = slot.build(plan, index, total, progress);
                    if let Ok(mut r) = results.lock() {
                        r.push((index, outcome));
                    }
                }
                if let Some(worker) = slot.worker.take() {
                    worker.shutdown();
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, o)| o).collect()
}

/// One thread's worker, started on first use and replaced after a crash.
struct WorkerSlot<'a> {
    worker: Option<Worker>,
    options: &'a ApplyOptions,
}

impl WorkerSlot<'_> {
    fn build(
        &mut self,
        plan: BuildPlan,
        index: usize,
        total: usize,
        progress: &Progress,
    ) -> Outcome {
        let start = Instant::now();
        let label = format!("[{}/{total}] {}", index + 1, plan.id);
        let status = self.run(&plan, &label, progress, start);
        let seconds = start.elapsed().as_secs_f64();
        progress.finish(&label, matches!(status, Status::Built(_)));
        Outcome {
            plan,
            status,
            seconds,
            rebuilt_because: vec![],
        }
    }

    fn run(
        &mut self,
        plan: &BuildPlan,
        label: &str,
        progress: &Progress,
        start: Instant,
    ) -> Status {
        if plan.runs_code && !self.options.allow_code {
            return Status::Failed(Failure {
                stage: "plan".into(),
                message: "this recipe runs Python code from the project (a factory, custom objects or a generator)".into(),
                hint: Some("review the code it names, then rerun with `--allow-code`".into()),
                detail: None,
            });
        }
        let temp = match TempArtifact::create(&plan.output, self.options.policy.write) {
            Ok(t) => t,
            Err(failure) => return Status::Failed(failure),
        };
        let worker = match self.worker.take() {
            Some(w) => w,
            None => {
                progress.stage(label, "starting worker");
                let mut command = self.options.env.command();
                match crate::worker::memory::budget(self.options.jobs) {
                    Ok(limit) => command.env(
                        crate::worker::memory::ENV_VAR,
                        limit.unwrap_or(0).to_string(),
                    ),
                    Err(message) => {
                        return Status::Failed(Failure {
                            stage: "start".into(),
                            message,
                            hint: Some("unset it for the default, three quarters of physical memory split between `--jobs`".into()),
                            detail: None,
                        });
                    }
                };
                match Worker::spawn(command, self.options.verbose, Duration::from_secs(120)) {
                    Ok(w) => {
                        progress.stage(label, &format!("worker pid {}", w.pid));
                        w
                    }
                    Err(e) => {
                        return Status::Failed(process_failure("start", &e, self.options.jobs));
                    }
                }
            }
        };
        let id = plan.id.clone();
        let request = Request::Build {
            id: &id,
            plan,
            temp_output: &temp.path.to_string_lossy(),
            allow_code: self.options.allow_code,
            allow_unsafe: self.options.allow_unsafe,
        };
        let result = match self.exchange(worker, &request, plan, label, progress) {
            Ok(Event::Result(r)) => r,
            Ok(_) => return Status::Failed(unexpected_reply("convert")),
            Err(failure) => return Status::Failed(failure),
        };
        progress.stage(label, "checking");
        let options = self.options;
        let ctx = Acceptance {
            policy: options.policy,
            locked: &options.locked,
            inputs: &options.inputs,
            write_lock: options.write_lock,
        };
        let mut bundler = |artifact: &Path, result: &BuildResult| {
            self.bundle(plan, artifact, result, label, progress)
        };
        accept(
            plan,
            temp,
            result,
            &ctx,
            Restored::No(&mut bundler),
            start.elapsed().as_secs_f64(),
        )
    }
}

impl WorkerSlot<'_> {
    /// Send `request` and wait for its answer (a result of the plan's id, or its error)
    /// under the build's timeout, showing progress. A worker that answers is kept for the
    /// next request; one that died or hung is dropped, so the next build gets a fresh one.
    fn exchange(
        &mut self,
        mut worker: Worker,
        request: &Request<'_>,
        plan: &BuildPlan,
        label: &str,
        progress: &Progress,
    ) -> Result<Event, Failure> {
        let jobs = self.options.jobs;
        let mut stage = match request {
            Request::CheckBundle { .. } => "bundle",
            _ => "start",
        }
        .to_string();
        if let Err(e) = worker.send(request) {
            return Err(process_failure(&stage, &e, jobs));
        }
        // A deadline beyond what the clock can hold is no deadline.
        let deadline = Instant::now().checked_add(self.options.timeout);
        let id = plan.id.as_str();
        loop {
            let remaining = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            match worker.next_event(remaining.max(Duration::from_millis(1))) {
                Ok(Event::Progress { stage: s, .. }) => {
                    progress.stage(label, &s);
                    stage = s;
                }
                Ok(Event::Result(r)) if r.id == id => {
                    self.worker = Some(worker);
                    return Ok(Event::Result(r));
                }
                Ok(Event::BundleCheck(b)) if b.id == id => {
                    self.worker = Some(worker);
                    return Ok(Event::BundleCheck(b));
                }
                Ok(Event::Error(e)) if e.id.as_deref() == Some(id) => {
                    self.worker = Some(worker);
                    return Err(worker_failure(plan, &e, jobs));
                }
                Ok(_) => {}
                Err(e) => {
                    let mut failure = process_failure(&stage, &e, jobs);
                    if matches!(e, ProcessError::Timeout(_)) {
                        failure.message = format!(
                            "the build did not finish within {}s, so its worker was stopped",
                            self.options.timeout.as_secs()
                        );
                        failure.hint = Some("raise the limit with `--timeout SECONDS`".to_string());
                    }
                    return Err(failure);
                }
            }
        }
    }

    /// Write the bundle of an accepted generation artifact and, unless the recipe says not
    /// to, run it with LiteRT-LM in the worker and judge what it generated.
    fn bundle(
        &mut self,
        plan: &BuildPlan,
        artifact: &Path,
        result: &BuildResult,
        label: &str,
        progress: &Progress,
    ) -> Result<Option<bundle::Written>, Failure> {
        let (Some(g), Some(generated)) = (&plan.generation, &result.generation) else {
            return Ok(None);
        };
        let Some(b) = &g.bundle else {
            return Ok(None);
        };
        progress.stage(label, "bundle");
        let mut written = bundle::write(b, g, artifact, generated, self.options.policy.write)?;
        let Some(check) = generated.check.as_ref().filter(|_| b.verify) else {
            return Ok(Some(written));
        };
        let Some(worker) = self.worker.take() else {
            return Err(unexpected_reply("bundle"));
        };
        let bundle_path = written.built.temp.to_string_lossy().into_owned();
        let request = Request::CheckBundle {
            id: &plan.id,
            bundle: &bundle_path,
            max_new: check.steps,
            prompts: bundle::prompts(check, &bundle::stop_tokens(&written.built.info)),
        };
        match self.exchange(worker, &request, plan, label, progress)? {
            Event::BundleCheck(run) => {
                written.built.check = Some(bundle::judge(check, *run));
                Ok(Some(written))
            }
            _ => Err(unexpected_reply("bundle")),
        }
    }
}

fn unexpected_reply(stage: &str) -> Failure {
    Failure {
        stage: stage.into(),
        message: "the worker answered with something other than what was asked".into(),
        hint: Some("this is a bug in litert: please report it with `--verbose` output".into()),
        detail: None,
    }
}

/// Why a file could not be written, in words; the error's own text names the hidden
/// build directory, which means nothing to the user.
fn write_reason(e: &std::io::Error) -> String {
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

/// The artifact while it is being written: `artifact.tflite` inside a private directory
/// next to the output (mode 0700, unpredictable name, so nothing can be planted there), moved
/// into place only when accepted. The directory goes when this drops, so a failure never
/// leaves a half-written artifact behind.
struct TempArtifact {
    _dir: crate::fsio::PrivateDir,
    path: PathBuf,
    // Dropped last: the signal handler forgets the directory only once it is removed.
    _tracked: crate::interrupt::Dir,
}

impl TempArtifact {
    /// Beside the output when the run writes; in the system temp directory when it only
    /// checks (`litert test` creates nothing in the project, not even `build/`).
    fn create(output: &Path, writes: bool) -> Result<Self, Failure> {
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

/// What to try when the worker ran out of memory: fewer workers, unless there was one.
fn memory_hint(jobs: usize) -> String {
    if jobs > 1 {
        format!("{jobs} workers ran at once: try `--jobs 1`, or a smaller model")
    } else {
        "the build needs more memory than the worker may use: raise its limit with `LITERT_WORKER_MEMORY=SIZE` (default: three quarters of physical memory) if the machine has it, or use a smaller model".to_string()
    }
}

fn process_failure(stage: &str, e: &ProcessError, jobs: usize) -> Failure {
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

fn worker_failure(plan: &BuildPlan, e: &WorkerError, jobs: usize) -> Failure {
    let hint = match e.kind.as_str() {
        "unsupported_ops" => Some(
            "allow TensorFlow ops with `ops: {flex: true}` in the recipe (the app then needs the Flex delegate), \
             or give static shapes (`batch_size`, `sequence_length`) so the ops lower to builtins"
                .to_string(),
        ),
        "network" => Some(format!(
            "this machine cannot download presets: save the preset locally (`task.save_to_preset(DIR)`) and point \
             the recipe at it with {}",
            match &plan.model {
                crate::recipe::plan::ModelPlan::Preset { var: Some(v), .. } =>
                    format!("`--set {v}=DIR` (an absolute path, or relative to the recipe)"),
                _ => "`model.preset.path`".to_string(),
            }
        )),
        "code_not_allowed" => Some("review the code, then rerun with `--allow-code`".to_string()),
        "unsafe_model" => Some(
            "the model contains a `Lambda` layer or other code; if you trust it, rerun with `--allow-unsafe`".to_string(),
        ),
        "signature" if !e.model_inputs.is_empty() => Some(format!(
            "name the model's inputs in the recipe: {}",
            e.model_inputs.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
        )),
        "out_of_memory" => Some(memory_hint(jobs)),
        "not_a_keras_archive" => Some(
            "a `.keras` file is what `model.save(\"model.keras\")` writes; check the recipe names the right file".to_string(),
        ),
        "archive_too_large" => Some(
            "this is not a model file Keras wrote as it is; get it again from a source you trust".to_string(),
        ),
        "output_unwritable" => Some(
            "free space or fix the permissions of the output directory, or point `output:` elsewhere".to_string(),
        ),
        _ => None,
    };
    let mut message = e.message.clone();
    if !e.ops.is_empty() && !message.contains(&e.ops[0]) {
        message.push_str(&format!(" ({})", e.ops.join(", ")));
    }
    // Our own error kinds explain themselves; an exception from user code or a library
    // shows where it came from.
    let known = matches!(
        e.kind.as_str(),
        "load"
            | "signature"
            | "calibration"
            | "accuracy"
            | "convert"
            | "parity"
            | "network"
            | "unsupported_ops"
            | "code_not_allowed"
            | "unsafe_model"
            | "out_of_memory"
            | "not_a_keras_archive"
            | "archive_too_large"
            | "output_unwritable"
    );
    let detail = (!known && !e.traceback.is_empty()).then(|| e.traceback.clone());
    Failure {
        stage: e.stage.clone(),
        message,
        hint,
        detail,
    }
}
