//! The build pipeline behind `litert apply`: hands each build plan to a worker, watches its
//! progress under a timeout, checks what comes back (parity, gates, the lock under
//! `--locked`) and commits the artifact, its snapshot and its lock entry as one transaction
//! ([`transaction`]) as soon as the build is accepted. A failed build never leaves a temp
//! file or touches the previous artifact; a crashed worker is replaced so the remaining
//! builds still run.

pub mod accuracy;
pub mod contract;
pub mod gates;
pub mod generation;
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
use progress::Progress;

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
}

/// An up-to-date artifact, checked against its snapshot without rebuilding.
#[derive(Debug)]
pub struct Verified {
    pub model: tflite::model::ModelInfo,
    pub size: u64,
    pub snapshot: contract::SnapshotOutcome,
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
            let (snapshot, text) = contract::judge_snapshot(&plan, &model, keras_outputs, policy);
            let reasons: Vec<String> = contract::snapshot_reason(&snapshot).into_iter().collect();
            if policy.write
                && let Err(e) = contract::commit_snapshot(&snapshot, &text)
            {
                return failed_write(plan, &e, start);
            }
            Status::UpToDate(Box::new(Verified {
                model,
                size,
                snapshot,
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

/// Memory one worker may need: TensorFlow alone is ~0.6 GB, a ResNet50 export peaks at
/// ~1.7 GB (measured; `shared/research/keras_litert.md` §4g).
pub const WORKER_MEMORY_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// How many workers fit in the memory available now (at least one), or `None` when that
/// cannot be read.
pub fn jobs_memory_allows() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    usize::try_from((kib * 1024 / WORKER_MEMORY_BYTES).max(1)).ok()
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
        let status = self.run(&plan, &label, progress);
        let seconds = start.elapsed().as_secs_f64();
        progress.finish(&label, matches!(status, Status::Built(_)));
        Outcome {
            plan,
            status,
            seconds,
            rebuilt_because: vec![],
        }
    }

    fn run(&mut self, plan: &BuildPlan, label: &str, progress: &Progress) -> Status {
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
                match Worker::spawn(
                    self.options.env.command(),
                    self.options.verbose,
                    Duration::from_secs(120),
                ) {
                    Ok(w) => {
                        progress.stage(label, &format!("worker pid {}", w.pid));
                        w
                    }
                    Err(e) => return Status::Failed(process_failure("start", &e)),
                }
            }
        };
        let mut worker = worker;
        let id = plan.id.clone();
        let request = Request::Build {
            id: &id,
            plan,
            temp_output: &temp.path.to_string_lossy(),
            allow_code: self.options.allow_code,
            allow_unsafe: self.options.allow_unsafe,
        };
        if let Err(e) = worker.send(&request) {
            return Status::Failed(process_failure("start", &e));
        }
        let deadline = Instant::now() + self.options.timeout;
        let mut stage = "start".to_string();
        let result = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match worker.next_event(remaining.max(Duration::from_millis(1))) {
                Ok(Event::Progress { stage: s, .. }) => {
                    progress.stage(label, &s);
                    stage = s;
                }
                Ok(Event::Result(r)) if r.id == id => break Ok(r),
                Ok(Event::Error(e)) if e.id.as_deref() == Some(id.as_str()) => {
                    break Err(worker_failure(plan, &e));
                }
                Ok(_) => {}
                Err(e) => {
                    // The worker is gone or hung: this build fails at its stage, and the
                    // next build gets a fresh worker.
                    let mut failure = process_failure(&stage, &e);
                    if matches!(e, ProcessError::Timeout(_)) {
                        failure.message = format!(
                            "the build did not finish within {}s, so its worker was stopped",
                            self.options.timeout.as_secs()
                        );
                        failure.hint = Some("raise the limit with `--timeout SECONDS`".to_string());
                    }
                    return Status::Failed(failure);
                }
            }
        };
        self.worker = Some(worker);
        let result = match result {
            Ok(r) => r,
            Err(failure) => return Status::Failed(failure),
        };
        progress.stage(label, "checking");
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
        let policy = self.options.policy;
        let sha256 = crate::digest::file_sha256(&temp.path).unwrap_or_default();
        if policy.locked {
            let key = (plan.root.clone(), plan.id.clone());
            reasons.extend(locked_reasons(
                self.options.locked.get(&key),
                &sha256,
                &result.versions,
            ));
        }
        let (snapshot, text) =
            contract::judge_snapshot(plan, &model, &result.keras_outputs, policy);
        if let Some(reason) = contract::snapshot_reason(&snapshot) {
            reasons.push(reason);
        }
        let converted = Converted {
            result,
            model: Box::new(model),
            size,
            sha256,
            gates: gate_results,
            snapshot,
            quantization,
        };
        let mut converted = converted;
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
        let key = (plan.root.clone(), plan.id.clone());
        let entry = (!policy.locked).then(|| {
            contract::entry_for(
                plan,
                self.options
                    .inputs
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| crate::lock::Inputs {
                        plan: plan.digest.clone(),
                        model: String::new(),
                        calibration: None,
                        toolchain: String::new(),
                    }),
                &converted.result.versions,
                &converted.result.keras_outputs,
                &converted.model,
                converted.sha256.clone(),
                converted.size,
            )
        });
        let writes_snapshot = matches!(
            converted.snapshot,
            contract::SnapshotOutcome::Created { .. } | contract::SnapshotOutcome::Updated { .. }
        );
        let change = transaction::Change {
            plan,
            artifact: &temp.path,
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
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
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
                "cannot create a build directory next to `{}`: {e}",
                beside.display()
            ),
            hint: None,
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

fn process_failure(stage: &str, e: &ProcessError) -> Failure {
    let hint = match e {
        ProcessError::Spawn { .. } => {
            Some("check the interpreter with `litert env doctor`".to_string())
        }
        ProcessError::Died {
            status: Some(s), ..
        } if s.contains("SIGKILL") => {
            Some("the machine may be out of memory: try `--jobs 1`, or a smaller model".to_string())
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

fn worker_failure(plan: &BuildPlan, e: &WorkerError) -> Failure {
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
        "out_of_memory" => Some("try `--jobs 1`, or a smaller model".to_string()),
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
    );
    let detail = (!known && !e.traceback.is_empty()).then(|| e.traceback.clone());
    Failure {
        stage: e.stage.clone(),
        message,
        hint,
        detail,
    }
}
