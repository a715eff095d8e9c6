//! Provisioning through the real `litert` binary, with a fake base Python (a shell script
//! that answers litert's queries and plays `venv` and `pip`) so that the process-level
//! behaviours run in seconds: two processes provisioning at once, a failed pip, a process
//! killed mid-install, and the doctor's report on a healthy environment. The real install is
//! tested in `env_real.rs`.

#![cfg(unix)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{ENV_FILTERS, Output, TestContext, snapshot};

/// The fake interpreter. State (what pip should do, how often it ran) lives in
/// `$FAKE_PY_STATE`; gates are files so that tests can steer a running install.
const FAKE_PYTHON: &str = r#"#!/bin/sh
STATE="${FAKE_PY_STATE:?}"
self="$0"
while [ $# -gt 0 ]; do
  case "$1" in -I|-B|-E|-s|-u) shift ;; *) break ;; esac
done
root=$(dirname "$(dirname "$self")")
json_str() { printf '"%s"' "$1"; }
case "$1" in
  -m)
    case "$2" in
      venv)
        dir="$3"
        mkdir -p "$dir/bin" || exit 1
        cp "$self" "$dir/bin/python" && chmod +x "$dir/bin/python"
        printf 'home = /fake\nversion = 3.11.7\ncommand = fake -m venv %s\n' "$dir" > "$dir/pyvenv.cfg"
        printf '#!%s/bin/python\n# fake pip script\n' "$dir" > "$dir/bin/pip"
        exit 0 ;;
      pip)
        echo run >> "$STATE/pip-runs"
        lock=""; prev=""
        for a in "$@"; do [ "$prev" = "-r" ] && lock="$a"; prev="$a"; done
        : > "$STATE/pip-started"
        if [ -f "$STATE/gate" ]; then
          i=0
          while [ ! -f "$STATE/release" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
          [ -f "$STATE/abort" ] && exit 1
        fi
        if [ -f "$STATE/pip-fail" ]; then
          echo "Collecting tensorflow==2.21.0"
          echo "ERROR: Could not find a version that satisfies the requirement tensorflow==2.21.0" >&2
          echo "ERROR: No matching distribution found for tensorflow==2.21.0" >&2
          exit 1
        fi
        grep -v '^#' "$lock" | grep . | while read -r line; do echo "Collecting $line"; done
        echo "Installing collected packages: everything"
        cp "$lock" "$root/installed.lock"
        echo "Successfully installed everything"
        exit 0 ;;
    esac
    echo "fake python: unsupported -m $2" >&2; exit 2 ;;
  -c)
    mode="$3"; shift 3
    printf '{"python_version":"3.11.7","implementation":"cpython","executable":"%s"' "$self"
    case "$mode" in
      base) printf ',"venv":true,"ensurepip":true' ;;
      packages)
        printf ',"packages":{'
        sep=""; after=0; mods=""
        for name in "$@"; do
          if [ "$name" = "--" ]; then after=1; continue; fi
          if [ $after = 1 ]; then mods="$mods $name"; continue; fi
          v=""
          [ -f "$root/installed.lock" ] && v=$(grep "^$name==" "$root/installed.lock" | cut -d= -f3)
          if [ -n "$v" ]; then printf '%s"%s":"%s"' "$sep" "$name" "$v"; else printf '%s"%s":null' "$sep" "$name"; fi
          sep=","
        done
        printf '},"modules":{'
        sep=""
        for m in $mods; do
          if [ -f "$root/installed.lock" ]; then b=true; else b=false; fi
          printf '%s"%s":%s' "$sep" "$m" "$b"; sep=","
        done
        printf '}' ;;
      imports)
        printf ',"imports":['
        sep=""
        for m in "$@"; do
          if [ -f "$STATE/import-fail" ] && [ "$m" = "keras_hub" ]; then
            printf '%s{"module":"%s","ok":false,"seconds":0.5,"error":"ImportError: libfake.so: cannot open shared object file","traceback":["Traceback (most recent call last):","ImportError: libfake.so: cannot open shared object file"]}' "$sep" "$m"
          else
            printf '%s{"module":"%s","ok":true,"seconds":0.25}' "$sep" "$m"
          fi
          sep=","
        done
        printf ']' ;;
    esac
    printf '}\n'
    exit 0 ;;
esac
echo "fake python: unsupported arguments $*" >&2
exit 2
"#;

/// A scratch directory holding the fake interpreter, its state and the worker cache it
/// provisions into, and the context that runs `litert` with them.
struct Fake {
    ctx: TestContext,
}

impl Fake {
    fn new() -> Fake {
        let ctx = TestContext::new();
        fs::create_dir_all(ctx.join("state")).unwrap();
        let python = ctx.join("python3");
        fs::write(&python, FAKE_PYTHON).unwrap();
        fs::set_permissions(&python, fs::Permissions::from_mode(0o755)).unwrap();
        let (cache, state) = (ctx.join("cache"), ctx.join("state"));
        let ctx = ctx
            .env("LITERT_CACHE_DIR", cache)
            .env("LITERT_BASE_PYTHON", python)
            .env("FAKE_PY_STATE", state)
            .filters_from(ENV_FILTERS);
        Fake { ctx }
    }
    fn cache(&self) -> PathBuf {
        self.ctx.join("cache")
    }
    fn state(&self, name: &str) -> PathBuf {
        self.ctx.join("state").join(name)
    }
    fn set(&self, name: &str) {
        fs::write(self.state(name), "").unwrap();
    }
    fn pip_runs(&self) -> usize {
        fs::read_to_string(self.state("pip-runs"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
    fn envs(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.cache().join("envs"))
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
    fn command(&self, args: &[&str]) -> Command {
        self.ctx.command(args)
    }
    fn run(&self, args: &[&str]) -> Output {
        self.ctx.litert(args)
    }
    /// Output with this test's temporary directory made stable (the rest by the filters).
    fn filtered(&self, text: &str) -> String {
        text.replace(&self.ctx.path().display().to_string(), "[TMP]")
    }
}

fn wait_for(path: &Path) {
    // Bounded polling for a file another process makes; not a timing assertion.
    for _ in 0..1200 {
        if path.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} never appeared", path.display());
}

#[test]
fn setup_provisions_then_reuses() {
    let fake = Fake::new();
    let out = fake.run(&["env", "setup"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let root = PathBuf::from(out.stdout.trim());
    assert!(root.join("litert-env.json").is_file());
    assert!(root.join("bin/python").is_file());
    // The venv's scripts point at the final place, not the temporary build directory.
    let pip = fs::read_to_string(root.join("bin/pip")).unwrap();
    assert!(
        pip.starts_with(&format!("#!{}/bin/python", root.display())),
        "{pip}"
    );
    assert!(out.stderr.contains("provisioned in"), "{}", out.stderr);

    let again = fake.run(&["env", "setup"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout, out.stdout);
    assert!(
        again.stderr.contains("already provisioned"),
        "{}",
        again.stderr
    );
    assert_eq!(fake.pip_runs(), 1);

    let forced = fake.run(&["env", "setup", "--force"]);
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert_eq!(fake.pip_runs(), 2);
    let digest_dirs: Vec<_> = fake
        .envs()
        .into_iter()
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert_eq!(digest_dirs.len(), 1, "{digest_dirs:?}");
}

#[test]
fn two_processes_provisioning_at_once_install_once() {
    let fake = Fake::new();
    fake.set("gate");
    let first = fake
        .command(&["env", "setup"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first process holds the lock and sits inside pip.
    wait_for(&fake.state("pip-started"));
    let mut second = fake
        .command(&["env", "setup"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = second.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if line.contains("waiting for another litert process") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // Release the first install only once the second says it is waiting for it.
    rx.recv().expect("the second process says it waits");
    fake.set("release");
    let first_out = first.wait_with_output().unwrap();
    let second_status = second.wait().unwrap();
    let mut second_stdout = String::new();
    std::io::Read::read_to_string(&mut second.stdout.take().unwrap(), &mut second_stdout).unwrap();
    let second_stderr = reader.join().unwrap();
    assert!(
        first_out.status.success(),
        "{}",
        String::from_utf8_lossy(&first_out.stderr)
    );
    assert!(second_status.success(), "{second_stderr}");
    assert_eq!(String::from_utf8_lossy(&first_out.stdout), second_stdout);
    assert!(
        second_stderr.contains("already provisioned"),
        "{second_stderr}"
    );
    assert_eq!(
        fake.pip_runs(),
        1,
        "the second process reused the first's install"
    );
    assert!(
        fake.envs().iter().all(|n| !n.contains(".tmp-")),
        "{:?}",
        fake.envs()
    );
}

#[test]
fn a_failed_pip_shows_its_tail_and_leaves_no_environment() {
    let fake = Fake::new();
    fake.set("pip-fail");
    let out = fake.run(&["env", "setup"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "");
    snapshot!(fake.ctx, fake.filtered(&out.diagnostic()));
    // Only the lock file and the kept log remain: no temp dir, no environment.
    let names = fake.envs();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().any(|n| n.ends_with(".lock")));
    assert!(names.iter().any(|n| n.ends_with(".failed.log")));
    // The next attempt, with pip working again, succeeds.
    fs::remove_file(fake.state("pip-fail")).unwrap();
    let out = fake.run(&["env", "setup"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn an_environment_that_does_not_import_is_not_kept() {
    let fake = Fake::new();
    fake.set("import-fail");
    let out = fake.run(&["env", "setup"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("cannot import `keras_hub`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("libfake.so"), "{}", out.stderr);
    assert!(
        fake.envs().iter().all(|n| n.ends_with(".lock")),
        "{:?}",
        fake.envs()
    );
}

#[test]
fn a_killed_install_is_cleaned_up_by_the_next_run() {
    let fake = Fake::new();
    fake.set("gate");
    let mut victim = fake
        .command(&["env", "setup"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&fake.state("pip-started"));
    victim.kill().unwrap();
    victim.wait().unwrap();
    // The orphaned fake pip gives up without touching anything.
    fake.set("abort");
    fake.set("release");
    let stale: Vec<_> = fake
        .envs()
        .into_iter()
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert_eq!(
        stale.len(),
        1,
        "the killed process left its temp dir: {stale:?}"
    );

    fs::remove_file(fake.state("gate")).unwrap();
    let out = fake.run(&["env", "setup"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        fake.envs().iter().all(|n| !n.contains(".tmp-")),
        "{:?}",
        fake.envs()
    );
}

#[test]
fn doctor_and_show_on_a_healthy_environment() {
    let fake = Fake::new();
    assert_eq!(fake.run(&["env", "setup"]).code, 0);
    let doctor = fake.run(&["env", "doctor"]);
    assert_eq!(doctor.code, 0, "{}{}", doctor.stdout, doctor.stderr);
    snapshot!(fake.ctx, fake.filtered(&doctor.stdout));

    let json = fake.run(&["env", "doctor", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "pass"),
        "{report:#}"
    );

    let show = fake.run(&["env", "show", "--json"]);
    assert_eq!(show.code, 0);
    let report: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(report["provisioned"], true);
    assert_eq!(report["external"], false);
    assert_eq!(report["python_version"], "3.11.7");
    let tf = report["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "tensorflow")
        .unwrap();
    assert_eq!(tf["installed"], tf["lock"]);
}

#[test]
fn doctor_reports_a_package_changed_after_provisioning() {
    let fake = Fake::new();
    let out = fake.run(&["env", "setup"]);
    assert_eq!(out.code, 0);
    // Someone pip-installed another keras into the environment.
    let installed = PathBuf::from(out.stdout.trim()).join("installed.lock");
    let text = fs::read_to_string(&installed).unwrap();
    let changed: String = text
        .lines()
        .map(|l| {
            if l.starts_with("keras==") {
                "keras==3.10.0".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    fs::write(&installed, changed).unwrap();
    let doctor = fake.run(&["env", "doctor"]);
    assert_eq!(doctor.code, 1);
    assert!(
        doctor.stdout.contains("✗ package versions"),
        "{}",
        doctor.stdout
    );
    assert!(
        doctor.stdout.contains("keras 3.10.0 (lock: "),
        "{}",
        doctor.stdout
    );
    assert!(
        doctor.stdout.contains("litert env setup --force"),
        "{}",
        doctor.stdout
    );
}
