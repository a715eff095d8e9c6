//! Where `libLiteRt.so` comes from: `LITERT_RUNTIME_LIB` if set; else the provisioned worker
//! environment, when it exists; else a runtime-only environment — one virtual environment
//! with just the pinned `ai-edge-litert` wheel, no TensorFlow (about 80 MB instead of
//! 2.5 GB) — that `litert` provisions on first need under `<cache>/runtime/`. Finding an
//! existing library starts no process.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;

use crate::diag::Hinted;
use crate::progress::Ui;
use crate::pyenv::{self, Layout, Lock, provision, python};

/// The runtime library's file name on this platform.
pub const LIB_NAME: &str = if cfg!(target_os = "macos") {
    "libLiteRt.dylib"
} else {
    "libLiteRt.so"
};

/// The wheel that carries the library.
const WHEEL: &str = "ai-edge-litert";

/// Which environment the library was found in, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `LITERT_RUNTIME_LIB`.
    Explicit,
    /// The provisioned worker environment.
    Worker,
    /// The runtime-only environment.
    RuntimeOnly,
}

impl Source {
    pub fn describe(&self) -> &'static str {
        match self {
            Source::Explicit => "LITERT_RUNTIME_LIB",
            Source::Worker => "worker environment",
            Source::RuntimeOnly => "runtime-only environment",
        }
    }
}

/// The library found, and where.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: PathBuf,
    pub source: Source,
    /// The pinned `ai-edge-litert` version.
    pub version: String,
}

/// Find the library without provisioning anything.
pub fn find() -> anyhow::Result<Option<Found>> {
    let lock = Lock::embedded()?;
    let version = pinned_version(&lock)?;
    if let Some(p) = std::env::var_os("LITERT_RUNTIME_LIB").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(p);
        if !path.is_file() {
            return Err(Hinted::new(
                format!(
                    "LITERT_RUNTIME_LIB names `{}`, which is not a file",
                    path.display()
                ),
                format!(
                    "point it at {LIB_NAME} from the ai-edge-litert {version} wheel, or unset it"
                ),
            )
            .into());
        }
        return Ok(Some(Found {
            path,
            source: Source::Explicit,
            version,
        }));
    }
    let cache = pyenv::cache_dir()?;
    let layout = Layout::new(&cache, &lock);
    if provision::read_ready(&layout, &lock).is_some()
        && let Some(path) = in_venv(&layout.root)
    {
        return Ok(Some(Found {
            path,
            source: Source::Worker,
            version,
        }));
    }
    let root = runtime_root(&cache, &version);
    if root.join(MARKER).is_file()
        && let Some(path) = in_venv(&root)
    {
        return Ok(Some(Found {
            path,
            source: Source::RuntimeOnly,
            version,
        }));
    }
    Ok(None)
}

/// Find the library, provisioning the runtime-only environment if there is none.
pub fn ensure(progress: bool) -> anyhow::Result<Found> {
    if let Some(found) = find()? {
        return Ok(found);
    }
    let lock = Lock::embedded()?;
    let version = pinned_version(&lock)?;
    let root = runtime_root(&pyenv::cache_dir()?, &version);
    provision_runtime(&lock, &version, &root, &Ui::new(progress))?;
    let path = in_venv(&root).ok_or_else(|| {
        anyhow::anyhow!(
            "the {WHEEL} {version} wheel installed into {} has no {LIB_NAME}",
            root.display()
        )
    })?;
    Ok(Found {
        path,
        source: Source::RuntimeOnly,
        version,
    })
}

fn pinned_version(lock: &Lock) -> anyhow::Result<String> {
    lock.version_of(WHEEL)
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("the embedded requirements.lock pins no {WHEEL}"))
}

const MARKER: &str = "litert-runtime.ok";

fn runtime_root(cache: &Path, version: &str) -> PathBuf {
    cache.join("runtime").join(format!("{WHEEL}-{version}"))
}

/// `<venv>/lib/python3.X/site-packages/ai_edge_litert/libLiteRt.so`, whichever Python.
fn in_venv(root: &Path) -> Option<PathBuf> {
    let lib = root.join("lib");
    let mut found: Vec<PathBuf> = fs::read_dir(&lib)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| {
            e.path()
                .join("site-packages")
                .join("ai_edge_litert")
                .join(LIB_NAME)
        })
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

/// `python -m venv` and `pip install --no-deps` of the one pinned wheel, into a temporary
/// directory renamed into place, under a file lock so concurrent processes provision once.
fn provision_runtime(lock: &Lock, version: &str, root: &Path, ui: &Ui) -> anyhow::Result<()> {
    let parent = root.parent().unwrap_or(root);
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let lock_path = parent.join(format!("{WHEEL}-{version}.lock"));
    let guard = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    ui.stage(format!(
        "provisioning the LiteRT runtime ({WHEEL} {version})"
    ));
    guard
        .lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    if root.join(MARKER).is_file() {
        return Ok(());
    }
    if root.exists() {
        fs::remove_dir_all(root)
            .with_context(|| format!("cannot remove the broken {}", root.display()))?;
    }
    let tmp = parent.join(format!(".{WHEEL}-{version}.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let result = (|| -> anyhow::Result<()> {
        let (base, _) = pyenv::find_base(lock)?;
        run_quiet(
            python::command(&base, true).args(["-m", "venv"]).arg(&tmp),
            "python -m venv",
        )?;
        ui.stage(format!("downloading {WHEEL} {version} (no TensorFlow)"));
        run_quiet(
            python::command(&provision::venv_python(&tmp), true)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--no-deps",
                    "--only-binary",
                    ":all:",
                ])
                .args([
                    "--no-input",
                    "--disable-pip-version-check",
                    "--progress-bar",
                    "off",
                ])
                .arg(format!("{WHEEL}=={version}"))
                .env_remove("PIP_USER")
                .env_remove("PIP_TARGET")
                .env_remove("PIP_PREFIX"),
            "pip install",
        )?;
        fs::write(tmp.join(MARKER), format!("{WHEEL}=={version}\n"))?;
        fs::rename(&tmp, root)
            .with_context(|| format!("cannot move the runtime into {}", root.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    ui.finish();
    result
}

fn run_quiet(cmd: &mut std::process::Command, what: &str) -> anyhow::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Err(Hinted::new(
        format!(
            "provisioning the LiteRT runtime failed: {what} ({}):\n{}",
            out.status,
            python::tail_lines(&text, 15)
        ),
        "set LITERT_RUNTIME_LIB to a libLiteRt.so from the pinned ai-edge-litert wheel, or run `litert env setup`",
    )
    .into())
}
