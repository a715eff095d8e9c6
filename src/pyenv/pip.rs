//! The real build of an environment, in the temporary directory [`super::provision`] gives
//! it: `python -m venv`, `pip install --no-deps` of every pin (its log kept, its failures
//! turned into a hint), scripts relocated to the environment's final directory, then a
//! check that the packages import and have the pinned versions.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

use super::disk;
use super::lock::{Lock, normalize};
use super::provision::{INSTALL_LOG, Layout, Marker, VERIFY_IMPORTS, venv_python};
use super::python::{self, Interp, tail_lines};
use crate::diag::Hinted;
use crate::progress::Ui;

/// The real build: `python -m venv`, `pip install --no-deps` of every pin, then a check that
/// the packages import and have the pinned versions.
pub struct PipBuild<'a> {
    pub base: &'a Path,
    pub base_info: &'a Interp,
    pub lock: &'a Lock,
    pub layout: &'a Layout,
}

impl PipBuild<'_> {
    pub fn build(&self, tmp: &Path, ui: &Ui) -> anyhow::Result<Marker> {
        ui.stage("creating the virtual environment");
        let out = python::command(self.base, true)
            .args(["-m", "venv"])
            .arg(tmp)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run `{}`", self.base.display()))?;
        if !out.status.success() {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            return Err(Hinted::new(
                format!(
                    "`{} -m venv` failed ({}):\n{}",
                    self.base.display(),
                    out.status,
                    tail_lines(&text, 15)
                ),
                "on Debian and Ubuntu, install the venv package (`apt-get install python3-venv`), or set LITERT_BASE_PYTHON to another Python",
            )
            .into());
        }
        let python = venv_python(tmp);
        self.pip_install(tmp, &python, ui)?;
        relocate(tmp, &self.layout.root)?;

        ui.stage("verifying: importing tensorflow, keras, keras_hub, ai_edge_litert");
        let marker = verify(&python, self.lock, self.base_info)?;
        Ok(marker)
    }

    fn pip_install(&self, tmp: &Path, python: &Path, ui: &Ui) -> anyhow::Result<()> {
        let lock_path = tmp.join("requirements.lock");
        fs::write(&lock_path, self.lock.text)?;
        // pip unpacks wheels (TensorFlow's is ~570 MB) into TMPDIR; keep that on the disk we
        // checked, and inside the directory that is removed on failure.
        let pip_tmp = tmp.join(".pip-tmp");
        fs::create_dir_all(&pip_tmp)?;
        let log_path = tmp.join(INSTALL_LOG);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let total = self.lock.pins.len() as u64;
        ui.counted(total, "downloading packages");
        // One pipe for both of pip's streams keeps its errors in order with its progress
        // lines, in the log and in the tail shown on failure.
        let (reader, writer) = io::pipe()?;
        let mut cmd = python::command(python, true);
        cmd.args(["-m", "pip", "install"])
            .args(["--no-deps", "--only-binary", ":all:", "--no-input"])
            .args(["--progress-bar", "off", "--disable-pip-version-check"])
            .arg("-r")
            .arg(&lock_path)
            .env("TMPDIR", &pip_tmp)
            .env("TEMP", &pip_tmp)
            .env("TMP", &pip_tmp)
            .env("PIP_NO_INPUT", "1")
            // Settings that would send the install somewhere other than this venv.
            .env_remove("PIP_USER")
            .env_remove("PIP_TARGET")
            .env_remove("PIP_PREFIX")
            .env_remove("PIP_ROOT")
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot run pip with `{}`", python.display()))?;
        // Our copies of the write end must go, or the reader never sees the end of output.
        drop(cmd);
        let mut seen = 0u64;
        let mut log = &log;
        for line in BufReader::new(reader).lines() {
            let line = line.unwrap_or_default();
            let _ = io::Write::write_all(&mut log, format!("{line}\n").as_bytes());
            if let Some(rest) = line
                .strip_prefix("Collecting ")
                .or_else(|| line.strip_prefix("Requirement already satisfied: "))
            {
                seen += 1;
                ui.set_position(seen.min(total));
                let name = rest.split([' ', '=']).next().unwrap_or(rest);
                ui.set_message(format!("downloading {name}"));
            } else if line.starts_with("Installing collected packages") {
                ui.stage(format!("installing {total} packages"));
            }
        }
        let status = child.wait()?;
        let _ = fs::remove_dir_all(&pip_tmp);
        if status.success() {
            return Ok(());
        }
        let text = fs::read_to_string(&log_path).unwrap_or_default();
        // The temporary directory, log included, goes away with the error: keep a copy.
        let kept = fs::copy(&log_path, &self.layout.failed_log).is_ok();
        let log_note = if kept {
            format!("full pip log: {}", self.layout.failed_log.display())
        } else {
            "the pip log could not be kept".to_string()
        };
        Err(Hinted::new(
            format!(
                "installing the worker packages with pip failed ({status}); the end of pip's output:\n{}",
                tail_lines(&text, 20)
            ),
            format!("{}; {log_note}", pip_hint(&text, self.lock)),
        )
        .into())
    }
}

/// What the user can do about a failed pip run, judged from its output.
pub fn pip_hint(log: &str, lock: &Lock) -> String {
    let has = |needles: &[&str]| needles.iter().any(|n| log.contains(n));
    if has(&["No space left on device"]) {
        format!(
            "the disk filled up: free space (about {} is needed) or set LITERT_CACHE_DIR to a larger disk, then run `litert env setup`",
            crate::units::human_bytes(disk::REQUIRED_FREE_BYTES)
        )
    } else if has(&[
        "NewConnectionError",
        "Failed to establish a new connection",
        "Temporary failure in name resolution",
        "Name or service not known",
        "Network is unreachable",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "Could not fetch URL",
        "ProxyError",
        "SSLError",
    ]) {
        "pip could not reach the package index: check the network (PyPI must be reachable, or set PIP_INDEX_URL to a mirror that has these packages), then run `litert env setup`".to_string()
    } else if has(&[
        "No matching distribution found",
        "Could not find a version that satisfies",
    ]) {
        format!(
            "a pinned package has no wheel for this Python or platform (the lock is for CPython {}); use an interpreter that already has TensorFlow via LITERT_PYTHON or --python",
            lock.requires_python.human()
        )
    } else {
        "run `litert env setup` to retry".to_string()
    }
}

/// Point the scripts of a venv built in `tmp` at where it will live. `venv` and pip write
/// absolute paths into `bin/` (shebangs, activate scripts) and `pyvenv.cfg`; we only ever
/// run `bin/python`, which does not care, but a user running `<env>/bin/pip` would.
fn relocate(tmp: &Path, root: &Path) -> anyhow::Result<()> {
    let (Some(from), Some(to)) = (tmp.to_str(), root.to_str()) else {
        return Ok(());
    };
    let bin = if cfg!(windows) { "Scripts" } else { "bin" };
    let mut files = vec![tmp.join("pyvenv.cfg")];
    if let Ok(entries) = fs::read_dir(tmp.join(bin)) {
        files.extend(entries.flatten().map(|e| e.path()));
    }
    for file in files {
        let Ok(meta) = fs::symlink_metadata(&file) else {
            continue;
        };
        if !meta.is_file() || meta.len() > 1_000_000 {
            continue;
        }
        let Ok(text) = fs::read_to_string(&file) else {
            continue; // binary (a copied interpreter, a Windows launcher)
        };
        if text.contains(from) {
            fs::write(&file, text.replace(from, to))
                .with_context(|| format!("cannot rewrite {}", file.display()))?;
        }
    }
    Ok(())
}

/// Check a freshly installed environment: every pin at its version, every module importing.
fn verify(python: &Path, lock: &Lock, base: &Interp) -> anyhow::Result<Marker> {
    let names: Vec<&str> = lock.pins.iter().map(|p| p.name.as_str()).collect();
    let interp = python::query(python, true, "packages", &names)
        .context("the new environment's Python does not run")?;
    let mut packages = BTreeMap::new();
    let mut wrong = Vec::new();
    for pin in &lock.pins {
        match interp.packages.get(&pin.name).cloned().flatten() {
            Some(v) if v == pin.version => {
                packages.insert(normalize(&pin.name), v);
            }
            Some(v) => wrong.push(format!("{} {} (lock: {})", pin.name, v, pin.version)),
            None => wrong.push(format!("{} missing (lock: {})", pin.name, pin.version)),
        }
    }
    if !wrong.is_empty() {
        return Err(Hinted::new(
            format!(
                "the new environment does not match the lock: {}",
                wrong.join(", ")
            ),
            "run `litert env setup --force` to rebuild it",
        )
        .into());
    }
    let imports = python::query(python, true, "imports", VERIFY_IMPORTS)
        .context("the new environment's Python does not run")?;
    if let Some(bad) = imports.imports.iter().find(|i| !i.ok) {
        return Err(Hinted::new(
            format!(
                "the new environment cannot import `{}`: {}\n{}",
                bad.module,
                bad.error.as_deref().unwrap_or("unknown error"),
                tail_lines(&bad.traceback.join("\n"), 8)
            ),
            "this platform may not support the pinned TensorFlow; use an interpreter that has it via LITERT_PYTHON or --python",
        )
        .into());
    }
    Ok(Marker {
        lock_digest: lock.digest.clone(),
        python_version: interp.python_version,
        base_python: base.executable.clone(),
        packages,
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        litert_version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relocation_rewrites_scripts_but_not_binaries() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("abc.tmp-1");
        let root = dir.path().join("abc");
        let bin = tmp.join(if cfg!(windows) { "Scripts" } else { "bin" });
        fs::create_dir_all(&bin).unwrap();
        let tmp_s = tmp.to_str().unwrap();
        fs::write(
            bin.join("pip"),
            format!("#!{tmp_s}/bin/python\nimport pip\n"),
        )
        .unwrap();
        fs::write(bin.join("blob"), [0u8, 159, 146, 150]).unwrap();
        fs::write(
            tmp.join("pyvenv.cfg"),
            format!("command = python -m venv {tmp_s}\n"),
        )
        .unwrap();
        relocate(&tmp, &root).unwrap();
        let pip = fs::read_to_string(bin.join("pip")).unwrap();
        assert!(
            pip.starts_with(&format!("#!{}/bin/python", root.display())),
            "{pip}"
        );
        assert!(
            fs::read_to_string(tmp.join("pyvenv.cfg"))
                .unwrap()
                .contains(root.to_str().unwrap())
        );
        assert_eq!(
            fs::read(bin.join("blob")).unwrap(),
            vec![0u8, 159, 146, 150]
        );
    }

    #[test]
    fn pip_failures_get_the_right_hint() {
        let lock = Lock::parse("# requires-python: >=3.11,<3.14\nalpha==1.0\n").unwrap();
        assert!(pip_hint("OSError: [Errno 28] No space left on device", &lock).contains("disk"));
        assert!(
            pip_hint(
                "WARNING: Retrying ... NewConnectionError('<pip._vendor...>: Failed to establish a new connection')",
                &lock
            )
            .contains("PIP_INDEX_URL")
        );
        assert!(
            pip_hint(
                "ERROR: No matching distribution found for tensorflow==2.21.0",
                &lock
            )
            .contains("LITERT_PYTHON")
        );
        assert!(pip_hint("something else", &lock).contains("retry"));
    }
}
