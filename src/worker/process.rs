//! One worker process: spawned with the embedded script, spoken to over stdin/stdout, its
//! stderr kept (the last lines) for error reports. A reader thread turns stdout lines into
//! [`Event`]s on a channel so waiting can time out.
//!
//! The worker runs in a process group of its own, with a private directory (mode 0700) that
//! holds its script and serves as its `TMPDIR` (Keras writes a temporary SavedModel per
//! export there, gigabytes for a large model). Dropping the worker kills the whole group and
//! removes the directory, whatever happened to the worker; on SIGINT/SIGTERM
//! [`crate::interrupt`] does the same.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::protocol::{Event, PROTOCOL, Request};

macro_rules! embed {
    ($path:literal) => {
        ($path, include_str!(concat!("python/", $path)))
    };
}

/// The worker: its entry script and the `litert_worker` package (one module per build
/// stage), embedded so the binary and the Python code can never drift apart. Written into
/// a private directory when a worker starts.
pub const SCRIPT_FILES: &[(&str, &str)] = &[
    embed!("worker.py"),
    embed!("litert_worker/__init__.py"),
    embed!("litert_worker/accuracy.py"),
    embed!("litert_worker/bundle.py"),
    embed!("litert_worker/convert.py"),
    embed!("litert_worker/data.py"),
    embed!("litert_worker/generation/__init__.py"),
    embed!("litert_worker/generation/corpus.py"),
    embed!("litert_worker/generation/embedding.py"),
    embed!("litert_worker/generation/families/__init__.py"),
    embed!("litert_worker/generation/families/gemma.py"),
    embed!("litert_worker/generation/families/gemma3.py"),
    embed!("litert_worker/generation/families/gpt2.py"),
    embed!("litert_worker/generation/families/llama.py"),
    embed!("litert_worker/generation/families/qwen3.py"),
    embed!("litert_worker/generation/graph.py"),
    embed!("litert_worker/generation/parity.py"),
    embed!("litert_worker/generation/runtime.py"),
    embed!("litert_worker/generation/text.py"),
    embed!("litert_worker/libs.py"),
    embed!("litert_worker/load.py"),
    embed!("litert_worker/main.py"),
    embed!("litert_worker/parity.py"),
    embed!("litert_worker/protocol.py"),
    embed!("litert_worker/signature.py"),
];

/// How many lines of the worker's stderr to keep for error reports.
const STDERR_TAIL: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start the worker with `{python}`: {source}")]
    Spawn {
        python: String,
        source: std::io::Error,
    },
    #[error("the worker exited unexpectedly{}", exit_suffix(.status))]
    Died {
        status: Option<String>,
        stderr_tail: String,
    },
    #[error("the worker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the worker sent a line that is not protocol: {line}")]
    Protocol { line: String },
    #[error("the worker speaks protocol {found}, this litert speaks {PROTOCOL}")]
    Version { found: u32 },
    #[error("cannot write to the worker: {0}")]
    Write(std::io::Error),
}

fn exit_suffix(status: &Option<String>) -> String {
    status
        .as_ref()
        .map_or_else(String::new, |s| format!(" ({s})"))
}

impl ProcessError {
    /// The end of the worker's stderr, when it died.
    pub fn stderr_tail(&self) -> Option<&str> {
        match self {
            Self::Died { stderr_tail, .. } => Some(stderr_tail),
            _ => None,
        }
    }
}

pub struct Worker {
    child: Child,
    /// The worker's process group (its pid): TensorFlow may start helpers of its own.
    group: crate::interrupt::Group,
    stdin: Option<ChildStdin>,
    events: Receiver<Result<Event, String>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    // Dropped after `group` is killed (field order): nothing writes into it any more.
    _private: PrivateTree,
    pub python_version: String,
    pub pid: u32,
}

impl Worker {
    /// Start a worker and wait for its `hello` (TensorFlow is not imported yet, so this is
    /// quick).
    /// `python` is the interpreter command as the environment wants it run (see
    /// [`crate::pyenv::WorkerEnv::command`]); the script and its flags are added here.
    pub fn spawn(
        mut python: Command,
        echo_stderr: bool,
        timeout: Duration,
    ) -> Result<Self, ProcessError> {
        let shown = python.get_program().to_string_lossy().into_owned();
        let spawn_err = |source| ProcessError::Spawn {
            python: shown.clone(),
            source,
        };
        let private = PrivateTree::new().map_err(spawn_err)?;
        let script_dir = private.dir.path().join("script");
        for (name, text) in SCRIPT_FILES {
            let path = script_dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(spawn_err)?;
            }
            std::fs::write(&path, text).map_err(spawn_err)?;
        }
        let tmp = private.dir.path().join("tmp");
        std::fs::create_dir(&tmp).map_err(spawn_err)?;
        let script: PathBuf = script_dir.join("worker.py");
        let mut child = python
            .arg("-u")
            .arg("-B")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONNOUSERSITE", "1")
            .env("TMPDIR", &tmp)
            .env("TMP", &tmp)
            .env("TEMP", &tmp)
            .process_group(0)
            .spawn()
            .map_err(spawn_err)?;
        // A new group's id is its leader's pid.
        let group = crate::interrupt::Group::track(i32::try_from(child.id()).unwrap_or(i32::MAX));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr_pipe = child.stderr.take();
        let (tx, events) = mpsc::channel();
        if let Some(stdout) = stdout {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line.trim().is_empty() {
                        continue;
                    }
                    let parsed = serde_json::from_str::<Event>(&line).map_err(|_| line);
                    if tx.send(parsed).is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(pipe) = stderr_pipe {
            let keep = Arc::clone(&stderr);
            // Always drain stderr, or a chatty TensorFlow blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if echo_stderr {
                        eprintln!("  | {line}");
                    }
                    if is_boilerplate(&line) {
                        continue;
                    }
                    if let Ok(mut tail) = keep.lock() {
                        if tail.len() == STDERR_TAIL {
                            tail.pop_front();
                        }
                        tail.push_back(line);
                    }
                }
            });
        }
        let mut worker = Self {
            child,
            group,
            stdin,
            events,
            stderr,
            _private: private,
            python_version: String::new(),
            pid: 0,
        };
        match worker.next_event(timeout)? {
            Event::Hello {
                protocol,
                python,
                pid,
            } => {
                if protocol != PROTOCOL {
                    return Err(ProcessError::Version { found: protocol });
                }
                worker.python_version = python;
                worker.pid = pid;
                Ok(worker)
            }
            other => Err(ProcessError::Protocol {
                line: format!("{other:?}"),
            }),
        }
    }

    pub fn send(&mut self, request: &Request<'_>) -> Result<(), ProcessError> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(self.died());
        };
        let mut line = serde_json::to_string(request)
            .map_err(|e| ProcessError::Write(std::io::Error::other(e)))?;
        line.push('\n');
        match stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
        {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(self.died()),
            Err(e) => Err(ProcessError::Write(e)),
        }
    }

    /// The next event, or an error if the worker died, misbehaved or stayed silent too long.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Event, ProcessError> {
        match self.events.recv_timeout(timeout) {
            Ok(Ok(event)) => Ok(event),
            Ok(Err(line)) => Err(ProcessError::Protocol { line }),
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                Err(ProcessError::Timeout(timeout))
            }
            Err(RecvTimeoutError::Disconnected) => Err(self.died()),
        }
    }

    fn died(&mut self) -> ProcessError {
        // Give the process a moment to be reaped so its exit status (signal, OOM kill) is known.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut status = None;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                status = Some(describe_status(s));
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The stderr thread may still be draining the last lines.
        std::thread::sleep(Duration::from_millis(50));
        ProcessError::Died {
            status,
            stderr_tail: self.stderr_tail(),
        }
    }

    pub fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// Ask the worker to exit, then make sure it has.
    pub fn shutdown(mut self) {
        let _ = self.send(&Request::Shutdown);
        if let Ok(Event::Bye) = self.next_event(Duration::from_secs(10)) {
            // Past `bye` the worker only tears its interpreter down (about a second with
            // TensorFlow loaded): the drop stops it instead of waiting for that.
            return;
        }
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Drop kills what is left of the group.
    }

    /// Kill the worker and anything it started, and reap it.
    fn kill(&mut self) {
        self.group.kill();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Even when the worker itself has exited, a helper it started may live on.
        self.kill();
    }
}

/// The worker's private directory, `litert-worker-*` in the system temp directory, removed
/// on drop and on a signal.
struct PrivateTree {
    dir: tempfile::TempDir,
    // Dropped last: the signal handler forgets the directory only once it is removed.
    _tracked: crate::interrupt::Dir,
}

impl PrivateTree {
    fn new() -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("litert-worker-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()?;
        Ok(Self {
            _tracked: crate::interrupt::Dir::track(dir.path()),
            dir,
        })
    }
}

/// TensorFlow's start-up chatter (oneDNN, CUDA probing, absl) says nothing about a failure.
fn is_boilerplate(line: &str) -> bool {
    line.starts_with("WARNING: All log messages before absl::InitializeLog()")
        || line.contains("oneDNN custom operations are on")
        || line.contains("Could not find cuda drivers")
        || line.contains("failed call to cuInit")
        || line.contains("Created TensorFlow Lite XNNPACK delegate")
}

fn describe_status(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return match sig {
                9 => "killed by SIGKILL, often the out-of-memory killer".to_string(),
                11 => "crashed with SIGSEGV".to_string(),
                6 => "aborted with SIGABRT".to_string(),
                15 => "terminated by SIGTERM".to_string(),
                _ => format!("killed by signal {sig}"),
            };
        }
    }
    match status.code() {
        Some(code) => format!("exit code {code}"),
        None => "no exit code".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_module_is_embedded() {
        fn python_files(dir: &std::path::Path, rel: &str, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.path().is_dir() && name != "__pycache__" {
                    python_files(&entry.path(), &format!("{rel}{name}/"), out);
                } else if name.ends_with(".py") {
                    out.push(format!("{rel}{name}"));
                }
            }
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/worker/python");
        let mut on_disk = Vec::new();
        python_files(&dir.join("litert_worker"), "litert_worker/", &mut on_disk);
        on_disk.push("worker.py".into());
        on_disk.sort();
        let mut embedded: Vec<String> = SCRIPT_FILES.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk, "list new worker modules in SCRIPT_FILES");
    }
}
