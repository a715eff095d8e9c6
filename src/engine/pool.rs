//! The worker pool: `--jobs` threads, each with one worker process (started on first use,
//! replaced after a crash), taking plans from one queue. Each build runs in order: the
//! conversion in the worker under the build's timeout, [`accept::check`], the `.litertlm`
//! bundle (written here, run with LiteRT-LM in the same worker) when the artifact holds so
//! far, then [`accept::accept`]. A crashed or hung worker fails its build only.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::accept::{self, Candidate, TempArtifact};
use super::failure::{process_failure, worker_failure};
use super::progress::Progress;
use super::session::RunContext;
use super::{Failure, Outcome, Status, bundle};
use crate::pyenv::WorkerEnv;
use crate::recipe::BuildPlan;
use crate::worker::process::{ProcessError, Worker};
use crate::worker::protocol::{BuildResult, Event, Request};

/// Build every plan, `jobs` at a time, with workers of `env`; the outcomes in input order.
pub(super) fn build_all(
    plans: Vec<BuildPlan>,
    ctx: &RunContext<'_>,
    env: &WorkerEnv,
    progress: &Progress,
) -> Vec<Outcome> {
    let total = plans.len();
    let queue: Mutex<VecDeque<(usize, BuildPlan)>> =
        Mutex::new(plans.into_iter().enumerate().collect());
    let results: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::with_capacity(total));
    let jobs = ctx.session.jobs.clamp(1, total.max(1));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                let mut slot = WorkerSlot {
                    worker: None,
                    ctx,
                    env,
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
    ctx: &'a RunContext<'a>,
    env: &'a WorkerEnv,
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
        let status = match self.run(&plan, &label, progress, start) {
            Ok(status) => status,
            Err(failure) => Status::Failed(failure),
        };
        let seconds = start.elapsed().as_secs_f64();
        progress.finish(&label, matches!(status, Status::Built(_)));
        Outcome {
            plan,
            status,
            seconds,
            rebuilt_because: vec![],
        }
    }

    /// Convert, check, bundle and accept one plan.
    fn run(
        &mut self,
        plan: &BuildPlan,
        label: &str,
        progress: &Progress,
        start: Instant,
    ) -> Result<Status, Failure> {
        let session = self.ctx.session;
        if plan.runs_code && !session.allow_code {
            return Err(Failure {
                stage: "plan".into(),
                message: "this recipe runs Python code from the project (a factory, custom objects or a generator)".into(),
                hint: Some("review the code it names, then rerun with `--allow-code`".into()),
                detail: None,
            });
        }
        let temp = TempArtifact::create(&plan.output, self.ctx.policy().write)?;
        let provenance = self
            .ctx
            .inputs
            .get(&(plan.root.clone(), plan.id.clone()))
            .map(|inputs| super::contract::provenance(plan, inputs))
            .ok_or_else(|| Failure::unexpected_reply("inputs"))?;
        // The worker starts first: it imports TensorFlow while the native writer runs.
        let mut worker = match self.worker.take() {
            Some(w) => w,
            None => self.start(label, progress)?,
        };
        let native = super::native::writes(plan);
        let request = Request::Build {
            id: &plan.id,
            plan,
            temp_output: &temp.path.to_string_lossy(),
            // The native writer writes them.
            metadata: if native {
                Vec::new()
            } else {
                provenance.entries()
            },
            allow_code: session.allow_code,
            allow_unsafe: session.allow_unsafe,
        };
        // With no generation check, the worker only describes the preset (its config and
        // tokenizer) and never opens the artifact: it does so while the native writer writes.
        let early = native && plan.generation.as_ref().is_some_and(|g| g.check.is_none());
        if early {
            self.send(&mut worker, &request)?;
        }
        if native {
            progress.stage(label, "writing natively");
            if let Err(failure) = super::native::write(plan, &temp.path, self.env, &provenance) {
                if early {
                    // Its answer is drained, so the next build's exchange starts clean.
                    let _ = self.answer(worker, plan, label, progress, stage_of(&request));
                } else {
                    self.worker = Some(worker);
                }
                return Err(failure);
            }
        }
        if !early {
            self.send(&mut worker, &request)?;
        }
        let result = match self.answer(worker, plan, label, progress, stage_of(&request))? {
            Event::Result(r) => r,
            _ => return Err(Failure::unexpected_reply("convert")),
        };
        progress.stage(label, "checking");
        let candidate = Candidate {
            temp,
            result,
            restored_from: None,
            seconds: start.elapsed().as_secs_f64(),
        };
        let checked = accept::check(plan, &candidate, self.ctx)?;
        // The bundle is written only for an artifact that holds so far.
        let written = if checked.holds() {
            self.bundle(
                plan,
                &candidate.temp.path,
                &candidate.result,
                label,
                progress,
            )?
        } else {
            None
        };
        Ok(accept::accept(plan, candidate, checked, written, self.ctx))
    }

    /// A new worker, under the memory budget of `--jobs` workers.
    fn start(&self, label: &str, progress: &Progress) -> Result<Worker, Failure> {
        let jobs = self.ctx.session.jobs;
        progress.stage(label, "starting worker");
        let mut command = self.env.command();
        match crate::worker::memory::budget(jobs) {
            Ok(limit) => command.env(
                crate::worker::memory::ENV_VAR,
                limit.unwrap_or(0).to_string(),
            ),
            Err(message) => {
                return Err(Failure {
                    stage: "start".into(),
                    message,
                    hint: Some("unset it for the default, three quarters of physical memory split between `--jobs`".into()),
                    detail: None,
                });
            }
        };
        let worker = Worker::spawn(command, self.ctx.session.verbose, Duration::from_secs(120))
            .map_err(|e| process_failure("start", &e, jobs))?;
        progress.stage(label, &format!("worker pid {}", worker.pid));
        Ok(worker)
    }

    /// Send `request` and wait for its [`answer`](Self::answer).
    fn exchange(
        &mut self,
        mut worker: Worker,
        request: &Request<'_>,
        plan: &BuildPlan,
        label: &str,
        progress: &Progress,
    ) -> Result<Event, Failure> {
        self.send(&mut worker, request)?;
        self.answer(worker, plan, label, progress, stage_of(request))
    }

    fn send(&self, worker: &mut Worker, request: &Request<'_>) -> Result<(), Failure> {
        worker
            .send(request)
            .map_err(|e| process_failure(stage_of(request), &e, self.ctx.session.jobs))
    }

    /// Wait for the answer to the request `worker` is serving (a result of the plan's id,
    /// or its error) under the build's timeout, showing progress; `stage` names the work
    /// until the worker reports its own. A worker that answers is kept for the next
    /// request; one that died or hung is dropped, so the next build gets a fresh one.
    fn answer(
        &mut self,
        mut worker: Worker,
        plan: &BuildPlan,
        label: &str,
        progress: &Progress,
        stage: &str,
    ) -> Result<Event, Failure> {
        let jobs = self.ctx.session.jobs;
        let timeout = self.ctx.session.timeout;
        let mut stage = stage.to_string();
        // A deadline beyond what the clock can hold is no deadline.
        let deadline = Instant::now().checked_add(timeout);
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
                            timeout.as_secs()
                        );
                        failure.hint = Some("raise the limit with `--timeout SECONDS`".to_string());
                    }
                    return Err(failure);
                }
            }
        }
    }

    /// Write the bundle of a generation artifact that holds so far and, unless the recipe
    /// says not to, run it with LiteRT-LM in the worker and judge what it generated.
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
        let mut written = bundle::write(b, g, artifact, generated, self.ctx.policy().write)?;
        let Some(check) = generated.check.as_ref().filter(|_| b.verify) else {
            return Ok(Some(written));
        };
        let Some(worker) = self.worker.take() else {
            return Err(Failure::unexpected_reply("bundle"));
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
            _ => Err(Failure::unexpected_reply("bundle")),
        }
    }
}

/// What a request's work is called until the worker reports its own stage.
fn stage_of(request: &Request<'_>) -> &'static str {
    match request {
        Request::CheckBundle { .. } => "bundle",
        _ => "start",
    }
}
