//! The Python environment the worker runs in, and the one the native runtime takes
//! `libLiteRt.so` from (`runtime::library`). `litert` provisions its own from the pinned
//! lock embedded in the binary (`requirements.lock`) into a cache directory keyed by the
//! lock's digest, on first need; or it uses an interpreter the user names (`--python` or
//! `LITERT_PYTHON`), whose package versions it checks against the lock. This module owns
//! finding the cache, deciding which interpreter to use, and comparing it with the lock;
//! provisioning itself lives in [`provision`], interpreter queries in [`python`], what
//! `litert env show` reports in [`describe`] and `litert env doctor`'s checks in [`doctor`].

pub mod describe;
pub mod disk;
pub mod doctor;
pub mod lock;
pub mod pip;
pub mod provision;
pub mod python;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

pub use lock::{Lock, Pin, PythonRange};
pub use provision::{Layout, Marker};
pub use python::Interp;

use crate::diag::Hinted;
use crate::progress::Ui;

/// The distributions the worker cannot do without, with the module each provides. An
/// external interpreter missing one of these is refused; other differences are warnings.
pub const REQUIRED: &[(&str, &str)] = &[
    ("tensorflow", "tensorflow"),
    ("keras", "keras"),
    ("ai-edge-litert", "ai_edge_litert"),
];

/// The packages `env show` lists by default: the ones that decide what an export produces.
pub const KEY_PACKAGES: &[&str] = &[
    "tensorflow",
    "keras",
    "keras-hub",
    "tensorflow-text",
    "ai-edge-litert",
    "numpy",
    "h5py",
    "pillow",
    "protobuf",
    "flatbuffers",
];

/// How the caller wants the environment.
#[derive(Debug, Clone, Default)]
pub struct EnvRequest {
    /// `--python` flag or `LITERT_PYTHON`: use this interpreter instead of provisioning.
    pub python_override: Option<PathBuf>,
    /// Show progress ([`crate::progress::wanted`]).
    pub progress: bool,
}

impl EnvRequest {
    /// The request the process environment implies: `flag`, else `LITERT_PYTHON` (when set
    /// and not empty); progress as [`crate::progress::wanted`] says.
    pub fn from_env(flag: Option<PathBuf>) -> EnvRequest {
        let python_override = flag.filter(|p| !p.as_os_str().is_empty()).or_else(|| {
            std::env::var_os("LITERT_PYTHON")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        EnvRequest {
            python_override,
            progress: crate::progress::wanted(),
        }
    }
}

/// A usable worker environment.
#[derive(Debug, Clone)]
pub struct WorkerEnv {
    /// The interpreter to run the worker with.
    pub python: PathBuf,
    /// The provisioned environment's directory; `None` for an external interpreter.
    pub root: Option<PathBuf>,
    pub external: bool,
    pub python_version: String,
    /// Normalized name -> installed version, for the lock's pins that are installed.
    pub packages: BTreeMap<String, String>,
    /// Hex sha256 of the embedded lock.
    pub lock_digest: String,
    /// External interpreter only: pins that differ or are missing, one per entry.
    pub mismatches: Vec<String>,
}

impl WorkerEnv {
    /// A command running this environment's Python the way the worker should be run: `-I`
    /// for our own environment (nothing from the user's `PYTHONPATH` or user site leaks in),
    /// the user's settings kept for an external interpreter; TensorFlow as Keras' backend.
    pub fn command(&self) -> Command {
        python::command(&self.python, !self.external)
    }
}

/// Return the worker environment: the external interpreter if one was asked for (checked),
/// else the provisioned one, provisioning it first if this is the first need.
pub fn ensure(req: &EnvRequest) -> anyhow::Result<WorkerEnv> {
    ensure_reporting(req, false).map(|e| e.env)
}

/// What [`ensure_reporting`] did.
#[derive(Debug, Clone)]
pub struct Ensured {
    pub env: WorkerEnv,
    /// This call provisioned the environment (it was not there, or `force`).
    pub built: bool,
}

/// [`ensure`], optionally rebuilding the provisioned environment even if it exists, and
/// saying whether it provisioned.
pub fn ensure_reporting(req: &EnvRequest, force: bool) -> anyhow::Result<Ensured> {
    let lock = Lock::embedded()?;
    if let Some(python) = &req.python_override {
        return external(python, &lock).map(|env| Ensured { env, built: false });
    }
    let layout = Layout::new(&cache_dir()?, &lock);
    let (marker, built) = match provision::read_ready(&layout, &lock) {
        Some(marker) if !force => (marker, false),
        _ => {
            let (base, base_info) = find_base(&lock)?;
            let ui = Ui::new(req.progress);
            let pip = pip::PipBuild {
                base: &base,
                base_info: &base_info,
                lock: &lock,
                layout: &layout,
            };
            let ensured = provision::ensure_with(
                &layout,
                &lock,
                &ui,
                force,
                disk::REQUIRED_FREE_BYTES,
                &|tmp, ui| pip.build(tmp, ui),
            )?;
            ui.finish();
            ensured
        }
    };
    Ok(Ensured {
        env: WorkerEnv {
            python: layout.python(),
            root: Some(layout.root.clone()),
            external: false,
            python_version: marker.python_version,
            packages: marker.packages,
            lock_digest: lock.digest,
            mismatches: Vec::new(),
        },
        built,
    })
}

/// The cache directory: `LITERT_CACHE_DIR`, else `$XDG_CACHE_HOME/litert`, else
/// `~/.cache/litert` (on Windows `%LOCALAPPDATA%\litert\cache`). Always absolute, since the
/// environment's scripts record absolute paths.
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    let dir = resolve_cache_dir(|name| std::env::var_os(name))?;
    std::path::absolute(&dir)
        .with_context(|| format!("cannot make the cache path {} absolute", dir.display()))
}

/// [`cache_dir`]'s rule over any source of environment variables.
pub fn resolve_cache_dir(var: impl Fn(&str) -> Option<OsString>) -> anyhow::Result<PathBuf> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set("LITERT_CACHE_DIR") {
        return Ok(dir);
    }
    // The XDG spec says relative values are invalid and must be ignored.
    if let Some(xdg) = set("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Ok(xdg.join("litert"));
    }
    if cfg!(windows)
        && let Some(local) = set("LOCALAPPDATA")
    {
        return Ok(local.join("litert").join("cache"));
    }
    if let Some(home) = set("HOME").or_else(|| set("USERPROFILE")) {
        return Ok(home.join(".cache").join("litert"));
    }
    Err(Hinted::new(
        "cannot find a cache directory: none of LITERT_CACHE_DIR, XDG_CACHE_HOME or HOME is set",
        "set LITERT_CACHE_DIR to a directory litert may write to",
    )
    .into())
}

/// The interpreter environments are made from: `LITERT_BASE_PYTHON`, else `python3`.
pub fn base_python() -> PathBuf {
    explicit_base_python().unwrap_or_else(|| PathBuf::from(default_python()))
}

fn explicit_base_python() -> Option<PathBuf> {
    std::env::var_os("LITERT_BASE_PYTHON")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn default_python() -> &'static str {
    if cfg!(windows) { "python" } else { "python3" }
}

/// Find a Python to make the environment from: `LITERT_BASE_PYTHON` if set (and only it);
/// else `python3`, and when that is missing or unsupported, the versioned names the lock
/// supports, newest first (`python3.13`, `python3.12`, ...): a machine whose default
/// `python3` is too old often has a newer one beside it.
pub fn find_base(lock: &Lock) -> anyhow::Result<(PathBuf, Interp)> {
    if let Some(explicit) = explicit_base_python() {
        return check_base(&explicit, lock).map(|info| (explicit, info));
    }
    let default = PathBuf::from(default_python());
    let first_err = match check_base(&default, lock) {
        Ok(info) => return Ok((default, info)),
        Err(err) => err,
    };
    let range = lock.requires_python;
    if !cfg!(windows) && range.min.0 == range.below.0 {
        for minor in (range.min.1..range.below.1).rev() {
            let candidate = PathBuf::from(format!("python{}.{minor}", range.min.0));
            if let Ok(info) = check_base(&candidate, lock) {
                return Ok((candidate, info));
            }
        }
    }
    Err(first_err)
}

/// Which setting named the base interpreter, for messages.
fn base_python_source() -> &'static str {
    if std::env::var_os("LITERT_BASE_PYTHON").is_some_and(|v| !v.is_empty()) {
        "LITERT_BASE_PYTHON"
    } else {
        "the Python on PATH"
    }
}

/// Check that `base` can make the environment: it runs, is a supported CPython version and
/// has `venv` and `ensurepip`.
pub fn check_base(base: &Path, lock: &Lock) -> anyhow::Result<Interp> {
    let range = lock.requires_python;
    let install_hint = format!(
        "install Python {} (with venv and pip), or set LITERT_BASE_PYTHON to one; or set LITERT_PYTHON to an interpreter that already has TensorFlow",
        range.human()
    );
    let info = match python::query(base, true, "base", &[]) {
        Ok(info) => info,
        Err(python::QueryError::NotFound(_)) => {
            return Err(Hinted::new(
                format!(
                    "cannot provision the Python worker environment: `{}` ({}) was not found",
                    base.display(),
                    base_python_source()
                ),
                install_hint,
            )
            .into());
        }
        Err(err) => {
            return Err(Hinted::new(
                format!(
                    "cannot use `{}` to provision the Python worker environment: {err}",
                    base.display()
                ),
                install_hint,
            )
            .into());
        }
    };
    let version = lock::parse_minor(&info.python_version).unwrap_or((0, 0));
    if info.implementation != "cpython" || !range.contains(version) {
        return Err(Hinted::new(
            format!(
                "`{}` is {} {}; the worker environment needs CPython {}",
                base.display(),
                info.implementation,
                info.python_version,
                range.human()
            ),
            install_hint,
        )
        .into());
    }
    if info.venv != Some(true) || info.ensurepip != Some(true) {
        return Err(Hinted::new(
            format!(
                "`{}` (Python {}) cannot create virtual environments: its `venv`/`ensurepip` modules are missing",
                base.display(),
                info.python_version
            ),
            format!(
                "on Debian and Ubuntu install them (`apt-get install python{}.{}-venv`), or set LITERT_BASE_PYTHON to another Python",
                version.0, version.1
            ),
        )
        .into());
    }
    Ok(info)
}

/// Check an interpreter the user named: it runs and has the required modules; differences
/// from the lock are reported, not refused.
pub fn external(python: &Path, lock: &Lock) -> anyhow::Result<WorkerEnv> {
    let interp = query_against_lock(python, lock)?;
    let missing = missing_required(&interp);
    if !missing.is_empty() {
        return Err(Hinted::new(
            format!(
                "the Python at `{}` (LITERT_PYTHON or --python) lacks {}, which the worker needs",
                python.display(),
                missing.join(", ")
            ),
            format!(
                "install them there (`{} -m pip install tensorflow=={} keras=={} ai-edge-litert=={}`), or unset LITERT_PYTHON to let litert provision its own environment",
                python.display(),
                lock.version_of("tensorflow").unwrap_or("?"),
                lock.version_of("keras").unwrap_or("?"),
                lock.version_of("ai-edge-litert").unwrap_or("?"),
            ),
        )
        .into());
    }
    let packages = installed(&interp);
    Ok(WorkerEnv {
        python: python.to_path_buf(),
        root: None,
        external: true,
        mismatches: mismatches(lock, &interp),
        python_version: interp.python_version,
        packages,
        lock_digest: lock.digest.clone(),
    })
}

/// Ask `python` for the versions of every pin and whether the required modules exist.
pub fn query_against_lock(python: &Path, lock: &Lock) -> anyhow::Result<Interp> {
    let mut args: Vec<&str> = lock.pins.iter().map(|p| p.name.as_str()).collect();
    args.push("--");
    args.extend(REQUIRED.iter().map(|(_, module)| *module));
    python::query(python, false, "packages", &args).map_err(|err| {
        Hinted::new(
            format!("cannot use the Python named by LITERT_PYTHON or --python: {err}"),
            "point LITERT_PYTHON (or --python) at a Python interpreter, or unset it to let litert provision its own environment",
        )
        .into()
    })
}

/// The [`REQUIRED`] distributions whose module `interp` cannot find (as asked for by
/// [`query_against_lock`]).
pub fn missing_required(interp: &Interp) -> Vec<&'static str> {
    REQUIRED
        .iter()
        .filter(|(_, module)| interp.modules.get(*module) != Some(&true))
        .map(|(dist, _)| *dist)
        .collect()
}

/// The pins an interpreter has installed, by normalized name.
pub fn installed(interp: &Interp) -> BTreeMap<String, String> {
    interp
        .packages
        .iter()
        .filter_map(|(name, v)| v.as_ref().map(|v| (lock::normalize(name), v.clone())))
        .collect()
}

/// Human-readable differences between what `interp` has and the lock, Python version first.
pub fn mismatches(lock: &Lock, interp: &Interp) -> Vec<String> {
    let mut out = Vec::new();
    let version = lock::parse_minor(&interp.python_version).unwrap_or((0, 0));
    if !lock.requires_python.contains(version) {
        out.push(format!(
            "Python {} (lock: {})",
            interp.python_version,
            lock.requires_python.human()
        ));
    }
    for pin in &lock.pins {
        match interp.packages.get(&pin.name).cloned().flatten() {
            Some(v) if v == pin.version => {}
            Some(v) => out.push(format!("{} {} (lock: {})", pin.name, v, pin.version)),
            None => out.push(format!(
                "{} not installed (lock: {})",
                pin.name, pin.version
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: BTreeMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn cache_dir_resolution_order() {
        let dir =
            |pairs: &[(&str, &str)]| resolve_cache_dir(vars(pairs)).map_err(|e| e.to_string());
        assert_eq!(
            dir(&[
                ("LITERT_CACHE_DIR", "/x"),
                ("XDG_CACHE_HOME", "/xdg"),
                ("HOME", "/h")
            ]),
            Ok(PathBuf::from("/x"))
        );
        assert_eq!(
            dir(&[
                ("LITERT_CACHE_DIR", ""),
                ("XDG_CACHE_HOME", "/xdg"),
                ("HOME", "/h")
            ]),
            Ok(PathBuf::from("/xdg/litert"))
        );
        assert_eq!(
            dir(&[("XDG_CACHE_HOME", "relative"), ("HOME", "/h")]),
            Ok(PathBuf::from("/h/.cache/litert"))
        );
        assert_eq!(
            dir(&[("HOME", "/h")]),
            Ok(PathBuf::from("/h/.cache/litert"))
        );
        assert!(dir(&[]).unwrap_err().contains("LITERT_CACHE_DIR"));
    }

    fn interp(version: &str, packages: &[(&str, Option<&str>)]) -> Interp {
        Interp {
            python_version: version.into(),
            implementation: "cpython".into(),
            executable: "/usr/bin/python3".into(),
            venv: None,
            ensurepip: None,
            packages: packages
                .iter()
                .map(|(n, v)| (n.to_string(), v.map(String::from)))
                .collect(),
            modules: BTreeMap::new(),
            imports: Vec::new(),
        }
    }

    #[test]
    fn mismatches_list_python_then_each_differing_pin() {
        let lock = Lock::parse(
            "# requires-python: >=3.11,<3.14\nkeras==3.15.1\nnumpy==2.4.6\ntensorflow==2.21.0\n",
        )
        .unwrap();
        let same = interp(
            "3.12.1",
            &[
                ("keras", Some("3.15.1")),
                ("numpy", Some("2.4.6")),
                ("tensorflow", Some("2.21.0")),
            ],
        );
        assert!(mismatches(&lock, &same).is_empty());
        let differs = interp(
            "3.10.4",
            &[
                ("keras", Some("3.10.0")),
                ("numpy", None),
                ("tensorflow", Some("2.21.0")),
            ],
        );
        assert_eq!(
            mismatches(&lock, &differs),
            vec![
                "Python 3.10.4 (lock: 3.11–3.13)",
                "keras 3.10.0 (lock: 3.15.1)",
                "numpy not installed (lock: 2.4.6)",
            ]
        );
        assert_eq!(installed(&differs).len(), 2);
    }

    #[test]
    fn request_from_env_prefers_the_flag() {
        let req = EnvRequest::from_env(Some(PathBuf::from("/opt/py")));
        assert_eq!(req.python_override, Some(PathBuf::from("/opt/py")));
    }
}
