//! What a model takes and gives, asked of the worker without converting anything (`litert
//! init` writes a starter recipe from it): one worker, one `describe` request, the same
//! loading (and the same safety refusals) as a build.

use std::time::{Duration, Instant};

use super::Failure;
use super::failure::{process_failure, worker_failure};
use crate::pyenv::EnvRequest;
use crate::recipe::BuildPlan;
use crate::worker::process::Worker;
use crate::worker::protocol::{Description, Event, Request};

/// Load `plan`'s model in a worker and describe its inputs and outputs.
pub fn describe(
    plan: &BuildPlan,
    env: &EnvRequest,
    allow_code: bool,
    allow_unsafe: bool,
    timeout: Duration,
) -> anyhow::Result<Result<Description, Failure>> {
    let worker_env = crate::pyenv::ensure(env)?;
    let mut command = worker_env.command();
    if let Ok(limit) = crate::worker::memory::budget(1) {
        command.env(
            crate::worker::memory::ENV_VAR,
            limit.unwrap_or(0).to_string(),
        );
    }
    let verbose = crate::progress::verbose();
    let mut worker = match Worker::spawn(command, verbose, Duration::from_secs(120)) {
        Ok(w) => w,
        Err(e) => return Ok(Err(process_failure("start", &e, 1))),
    };
    let request = Request::Describe {
        id: &plan.id,
        plan,
        allow_code,
        allow_unsafe,
    };
    if let Err(e) = worker.send(&request) {
        return Ok(Err(process_failure("start", &e, 1)));
    }
    let deadline = Instant::now() + timeout;
    let mut stage = "start".to_string();
    let answer = loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match worker.next_event(remaining.max(Duration::from_millis(1))) {
            Ok(Event::Progress { stage: s, .. }) => stage = s,
            Ok(Event::Description(d)) if d.id == plan.id => break Ok(*d),
            Ok(Event::Error(e)) if e.id.as_deref() == Some(plan.id.as_str()) => {
                break Err(worker_failure(plan, &e, 1));
            }
            Ok(_) => {}
            Err(e) => return Ok(Err(process_failure(&stage, &e, 1))),
        }
    };
    worker.shutdown();
    Ok(answer)
}
