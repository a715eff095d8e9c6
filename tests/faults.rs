//! Fault injection: whatever goes wrong during `litert apply` (the worker killed at any
//! stage, SIGTERM or SIGINT to litert, concurrent runs with different `TMPDIR`s, a full
//! disk, a tampered artifact, a stale lock), the project stays consistent — every artifact
//! on disk is the one `litert.lock` describes, no temporary file or worker directory is
//! left — and the report still says what happened. Every test works in a scratch copy of
//! the example project with a private `TMPDIR`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::{Output, TestContext, artifacts};

/// `litert` in `dir` of the project with `TMPDIR` set and progress lines forced (the tests
/// read the worker's pid from them).
fn command_in(project: &TestContext, dir: &Path, tmp: &Path, args: &[&str]) -> Command {
    let mut cmd = project.command_in(dir, args);
    cmd.env("LITERT_PROGRESS", "1")
        .env_remove("LITERT_NO_PROGRESS")
        .env("TMPDIR", tmp);
    cmd
}

/// [`command_in`] the project's root.
fn command(project: &TestContext, tmp: &Path, args: &[&str]) -> Command {
    command_in(project, project.path(), tmp, args)
}

fn run(project: &TestContext, tmp: &Path, args: &[&str]) -> Output {
    project.output(&mut command(project, tmp, args))
}

fn run_in(project: &TestContext, dir: &Path, tmp: &Path, args: &[&str]) -> Output {
    project.output(&mut command_in(project, dir, tmp, args))
}

/// A running `litert`, its progress lines read as they come.
struct Running {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: Vec<String>,
    worker: Option<i32>,
}

impl Running {
    fn start(project: &TestContext, tmp: &Path, args: &[&str]) -> Self {
        let mut child = command(project, tmp, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("litert starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            stderr: vec![],
            worker: None,
        }
    }

    /// Read progress until a line ends with `· {stage}` (noting the worker's pid on the
    /// way); false when litert finished first.
    fn wait_for(&mut self, stage: &str) -> bool {
        let suffix = format!("· {stage}");
        while let Ok(line) = self.lines.recv() {
            if let Some(pid) = line.split("worker pid ").nth(1) {
                self.worker = pid.trim().parse().ok();
            }
            let hit = line.trim_end().ends_with(&suffix) || line.contains(&format!("{suffix} "));
            self.stderr.push(line);
            if hit {
                return true;
            }
        }
        false
    }

    fn finish(mut self) -> Output {
        let stdout = self.child.stdout.take();
        let status = self.child.wait().expect("litert exits");
        self.stderr.extend(self.lines.iter());
        let mut text = String::new();
        if let Some(mut s) = stdout {
            use std::io::Read;
            let _ = s.read_to_string(&mut text);
        }
        Output {
            code: status.code().unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                128 + status.signal().unwrap_or(0)
            }),
            stdout: text,
            stderr: self.stderr.join("\n"),
        }
    }
}

fn signal(pid: i32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Whether a process is still running (a zombie or a vanished pid is not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// Everything litert might leave behind: temp files and build directories in the project,
/// worker directories in `TMPDIR`.
fn leftovers(project: &Path, tmp: &Path) -> Vec<PathBuf> {
    let mut found = vec![];
    for dir in [
        project.to_path_buf(),
        project.join("build"),
        project.join("snapshots"),
        tmp.to_path_buf(),
    ] {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".litert-") || name.starts_with("litert-worker-") {
                found.push(e.path());
            }
        }
    }
    found
}

/// Every locked artifact that exists on disk has the locked bytes.
fn assert_consistent(project: &Path) {
    let lock = litert::lock::LockFile::read(&project.join("litert.lock")).expect("lock reads");
    for (id, entry) in &lock.artifacts {
        let path = project.join(&entry.output);
        if let Ok(sha) = litert::digest::file_sha256(&path) {
            assert_eq!(
                sha,
                entry.sha256,
                "{id}: `{}` is not the locked artifact",
                path.display()
            );
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The worker killed (SIGKILL, as the out-of-memory killer does) at each stage: the build
/// fails at a stage, nothing is written, the lock is unchanged, nothing is left behind,
/// and the next build in the same run still gets a worker.
#[test]
fn worker_killed_at_each_stage() {
    for stage in ["import", "load", "signature", "convert", "parity"] {
        let project = TestContext::example_project();
        let tmp = tempfile::tempdir().unwrap();
        let lock_before = read(&project.path().join("litert.lock"));
        let mut running = Running::start(
            &project,
            tmp.path(),
            &[
                "apply",
                "--json",
                "recipes/mlp_quickstart.yaml",
                "recipes/multi_input.yaml",
            ],
        );
        assert!(
            running.wait_for(stage),
            "{stage}: never reached\n{}",
            running.stderr.join("\n")
        );
        let worker = running.worker.expect("the worker's pid was reported");
        signal(worker, "KILL");
        let out = running.finish();
        assert_eq!(out.code, 1, "{stage}: {}\n{}", out.stdout, out.stderr);
        let arts = artifacts(&out);
        let killed = &arts["mlp_quickstart"];
        assert_eq!(killed["status"], "failed", "{stage}: {killed:#}");
        assert!(
            killed["message"]
                .as_str()
                .unwrap()
                .contains("exited unexpectedly"),
            "{stage}: {killed:#}"
        );
        assert_eq!(
            arts["multi_input"]["status"], "built",
            "{stage}: a fresh worker builds the rest"
        );
        assert!(
            !project.path().join("build/mlp_quickstart.tflite").exists(),
            "{stage}"
        );
        // The lock gained the one build that finished, and nothing else changed.
        let lock = litert::lock::LockFile::read(&project.path().join("litert.lock")).unwrap();
        let before: litert::lock::LockFile = serde_saphyr::from_str(&lock_before).unwrap();
        assert_eq!(
            lock.artifacts["mlp_quickstart"], before.artifacts["mlp_quickstart"],
            "{stage}"
        );
        assert_consistent(project.path());
        assert_eq!(
            leftovers(project.path(), tmp.path()),
            Vec::<PathBuf>::new(),
            "{stage}"
        );
        assert!(!alive(worker), "{stage}: the worker is gone");
    }
}

/// SIGTERM and SIGINT to litert alone (not its process group): the worker's group is
/// killed, temporary files and worker directories are removed, the builds that finished
/// are in the lock, and litert exits 143 / 130.
#[test]
fn sigterm_and_sigint_stop_everything_and_keep_the_lock_consistent() {
    for (sig, code) in [("TERM", 143), ("INT", 130)] {
        let project = TestContext::example_project();
        let tmp = tempfile::tempdir().unwrap();
        let mut running = Running::start(
            &project,
            tmp.path(),
            &[
                "apply",
                "recipes/multi_input.yaml",
                "recipes/mlp_quickstart.yaml",
            ],
        );
        // The first build finishes and commits; stop litert while the second converts.
        assert!(running.wait_for("done"), "{}", running.stderr.join("\n"));
        assert!(running.wait_for("convert"), "{}", running.stderr.join("\n"));
        let worker = running.worker.expect("worker pid");
        let pid = i32::try_from(running.child.id()).unwrap();
        signal(pid, sig);
        let out = running.finish();
        assert_eq!(out.code, code, "SIG{sig}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("stopped by SIG{sig}")),
            "{}",
            out.stderr
        );
        // SIGKILL is delivered at once, but reaping the orphan may take a moment.
        for _ in 0..50 {
            if !alive(worker) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(
            !alive(worker),
            "SIG{sig}: the worker {worker} was not stopped: {}\n{}",
            read(Path::new(&format!("/proc/{worker}/stat"))),
            out.stderr
        );
        assert!(project.path().join("build/multi_input.tflite").is_file());
        assert!(!project.path().join("build/mlp_quickstart.tflite").exists());
        assert_consistent(project.path());
        assert_eq!(
            leftovers(project.path(), tmp.path()),
            Vec::<PathBuf>::new(),
            "SIG{sig}"
        );
    }
}

/// Two applies in one project, each with its own `TMPDIR`: neither loses the other's lock
/// entries.
#[test]
fn concurrent_applies_with_different_tmpdirs_keep_every_entry() {
    let project = TestContext::example_project();
    std::fs::remove_file(project.path().join("litert.lock")).unwrap();
    let (tmp_a, tmp_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = command(
        &project,
        tmp_a.path(),
        &[
            "apply",
            "recipes/mlp_quickstart.yaml",
            "recipes/functional.yaml",
            "recipes/custom_signature.yaml",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let b = command(
        &project,
        tmp_b.path(),
        &[
            "apply",
            "recipes/multi_input.yaml",
            "recipes/dict_inputs.yaml",
            "recipes/dynamic_shapes.yaml",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    for mut child in [a, b] {
        assert!(child.wait().unwrap().success());
    }
    let lock = litert::lock::LockFile::read(&project.path().join("litert.lock")).unwrap();
    let ids: Vec<&str> = lock.artifacts.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "custom_signature",
            "dict_inputs",
            "dynamic_frames",
            "functional_classifier",
            "mlp_quickstart",
            "multi_input"
        ]
    );
    assert_consistent(project.path());
    assert!(leftovers(project.path(), tmp_a.path()).is_empty());
    assert!(leftovers(project.path(), tmp_b.path()).is_empty());
}

/// Mount a tmpfs of `size` at `dir`, or say why not (not root, no mount permission).
fn mount_tmpfs(dir: &Path, size: &str) -> Option<Mounted> {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(Mounted(dir.to_path_buf())),
        Ok(o) => {
            eprintln!(
                "skipped: cannot mount a tmpfs here: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            eprintln!("skipped: cannot run mount: {e}");
            None
        }
    }
}

struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fill a file system to the last byte.
fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.write_all(&[0]);
}

/// A full disk where the snapshot goes: the artifact was ready, but the build is rolled
/// back as a whole (no new artifact, no lock entry) and the report says so.
#[test]
fn a_full_disk_for_the_snapshot_rolls_the_build_back() {
    let project = TestContext::example_project();
    let tmp = tempfile::tempdir().unwrap();
    let snapshots = project.path().join("snapshots");
    std::fs::remove_file(snapshots.join("mlp_quickstart.yaml")).unwrap();
    let saved: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&snapshots)
        .unwrap()
        .flatten()
        .map(|e| (e.path(), std::fs::read(e.path()).unwrap()))
        .collect();
    let Some(_mount) = mount_tmpfs(&snapshots, "512k") else {
        return;
    };
    for (path, bytes) in &saved {
        std::fs::write(path, bytes).unwrap();
    }
    fill(&snapshots);
    let lock_before = read(&project.path().join("litert.lock"));
    let out = run(
        &project,
        tmp.path(),
        &["apply", "--force", "recipes/mlp_quickstart.yaml"],
    );
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("failed at `write`"), "{}", out.stdout);
    assert!(out.stdout.contains("nothing was changed"), "{}", out.stdout);
    assert!(
        out.stdout.contains("0 built, 0 up to date, 1 failed"),
        "the report is printed: {}",
        out.stdout
    );
    assert!(!project.path().join("build/mlp_quickstart.tflite").exists());
    assert_eq!(read(&project.path().join("litert.lock")), lock_before);
    assert_eq!(leftovers(project.path(), tmp.path()), Vec::<PathBuf>::new());
}

/// A full disk where the lock goes (the artifact lives elsewhere): the new artifact never
/// replaces the previous one, the lock is untouched, and the report is printed.
#[test]
fn a_full_disk_for_the_lock_keeps_the_previous_artifact() {
    // The project is a file system of its own, outside the context (which holds the model).
    let ctx = TestContext::new();
    ctx.copy("models/mlp.keras");
    let outside = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let root = outside.path().join("project");
    let Some(_mount) = mount_tmpfs(&root, "256k") else {
        return;
    };
    std::fs::create_dir(root.join(".git")).unwrap();
    let artifact = outside.path().join("out/mlp.tflite");
    std::fs::write(
        root.join("mlp.yaml"),
        format!(
            "version: 1\nname: mlp\nmodel:\n  keras: {}\nbatch_size: 1\noutput: {}\n",
            ctx.join("models/mlp.keras").display(),
            artifact.display()
        ),
    )
    .unwrap();
    let first = run_in(&ctx, &root, tmp.path(), &["apply", "mlp.yaml"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    use std::os::unix::fs::MetadataExt;
    let previous = std::fs::metadata(&artifact).unwrap().ino();
    let lock_before = read(&root.join("litert.lock"));
    fill(&root);
    let out = run_in(&ctx, &root, tmp.path(), &["apply", "--force", "mlp.yaml"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("failed at `write`"), "{}", out.stdout);
    assert!(out.stdout.contains("litert.lock"), "{}", out.stdout);
    assert!(out.stdout.contains("nothing was changed"), "{}", out.stdout);
    assert!(
        out.stdout.contains("1 failed"),
        "the report is printed: {}",
        out.stdout
    );
    assert_eq!(
        std::fs::metadata(&artifact).unwrap().ino(),
        previous,
        "the previous artifact was never replaced"
    );
    assert_eq!(read(&root.join("litert.lock")), lock_before);
    assert_eq!(leftovers(&root, tmp.path()), Vec::<PathBuf>::new());
    assert!(leftovers(artifact.parent().unwrap(), tmp.path()).is_empty());
}

/// `litert test` holds the artifact on disk to the lock: a flipped byte or another model in
/// its place fails, naming the file; a missing one is rebuilt and compared. `test` writes
/// nothing, not even `build/`.
#[test]
fn test_checks_the_artifact_on_disk_and_writes_nothing() {
    let project = TestContext::example_project();
    let tmp = tempfile::tempdir().unwrap();
    let p = project.path();
    let ok = run(
        &project,
        tmp.path(),
        &["test", "recipes/mlp_quickstart.yaml"],
    );
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);
    assert!(
        ok.stdout
            .contains("built because `build/mlp_quickstart.tflite` is missing"),
        "{}",
        ok.stdout
    );
    assert!(!p.join("build").exists(), "litert test created build/");

    assert_eq!(
        run(
            &project,
            tmp.path(),
            &[
                "apply",
                "recipes/mlp_quickstart.yaml",
                "recipes/multi_input.yaml"
            ]
        )
        .code,
        0
    );
    let artifact = p.join("build/mlp_quickstart.tflite");
    let mut bytes = std::fs::read(&artifact).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&artifact, &bytes).unwrap();
    let junit = tmp.path().join("junit.xml");
    let flipped = run(
        &project,
        tmp.path(),
        &[
            "test",
            "recipes/mlp_quickstart.yaml",
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    assert_eq!(flipped.code, 1, "{}", flipped.stdout);
    assert!(
        flipped
            .stdout
            .contains("`build/mlp_quickstart.tflite` is not the artifact in litert.lock"),
        "{}",
        flipped.stdout
    );
    let xml = read(&junit);
    assert!(xml.contains("is not the artifact in litert.lock"), "{xml}");
    assert!(
        xml.contains("differs from the locked bytes"),
        "the cause is in JUnit: {xml}"
    );

    std::fs::copy(p.join("build/multi_input.tflite"), &artifact).unwrap();
    let replaced = run(
        &project,
        tmp.path(),
        &["test", "recipes/mlp_quickstart.yaml"],
    );
    assert_eq!(replaced.code, 1, "{}", replaced.stdout);
    assert!(
        replaced
            .stdout
            .contains("is not the artifact in litert.lock"),
        "{}",
        replaced.stdout
    );
    assert_eq!(leftovers(p, tmp.path()), Vec::<PathBuf>::new());
}

/// A lock made by another toolchain, or by other worker packages, fails `test` and
/// `--locked` with the way out.
#[test]
fn stale_locks_fail_test_and_locked() {
    let project = TestContext::example_project();
    let tmp = tempfile::tempdir().unwrap();
    let p = project.path();
    let lock_path = p.join("litert.lock");
    let original = read(&lock_path);

    let other_toolchain = original.replace(
        "toolchain: litert 0.1.0 / worker ",
        "toolchain: litert 0.0.9 / worker ",
    );
    std::fs::write(&lock_path, &other_toolchain).unwrap();
    for args in [
        &["test", "recipes/mlp_quickstart.yaml"][..],
        &["apply", "--locked", "recipes/mlp_quickstart.yaml"][..],
    ] {
        let out = run(&project, tmp.path(), args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stdout);
        assert!(
            out.stdout.contains("litert.lock is stale"),
            "{args:?}: {}",
            out.stdout
        );
        assert!(
            out.stdout.contains("without `--locked`"),
            "{args:?}: {}",
            out.stdout
        );
    }

    // The same litert version and environment, but other code shaping the bytes (a litert
    // built from another commit): stale too (docs/reproducibility.md, the toolchain identity).
    let at = original
        .find(" / code ")
        .expect("the lock names the code digest")
        + 8;
    let code = &original[at..at + 16];
    // `litert test` with `lock` in place of the lock: it fails, calling the lock stale.
    let stale_test = |lock: &str| {
        std::fs::write(&lock_path, lock).unwrap();
        let out = run(
            &project,
            tmp.path(),
            &["test", "recipes/mlp_quickstart.yaml"],
        );
        assert_eq!(out.code, 1, "{}", out.stdout);
        assert!(
            out.stdout.contains("litert.lock is stale"),
            "{}",
            out.stdout
        );
        out
    };
    let other_code = original.replace(&format!(" / code {code}"), " / code 0000000000000000");
    let out = stale_test(&other_code);
    assert!(
        out.stdout.contains("code 0000000000000000"),
        "{}",
        out.stdout
    );

    let other_worker = original.replace("tensorflow: \"2.21.0\"", "tensorflow: \"2.20.0\"");
    assert_ne!(other_worker, original);
    let out = stale_test(&other_worker);
    // The entry disagrees with its own toolchain: refused before anything is rebuilt.
    assert!(
        out.stdout.contains("tensorflow 2.20.0 (pinned: 2.21.0)"),
        "{}",
        out.stdout
    );
    assert_eq!(read(&lock_path), other_worker, "test writes nothing");
}

/// A rejected artifact is reported as not written: no `snapshot ... written`, no
/// temporary path as `artifact.file`.
#[test]
fn a_rejected_artifact_is_reported_as_not_written() {
    let project = TestContext::example_project();
    let tmp = tempfile::tempdir().unwrap();
    let p = project.path();
    std::fs::remove_file(p.join("snapshots/mlp_quickstart.yaml")).unwrap();
    let recipe = read(&p.join("recipes/mlp_quickstart.yaml"))
        .replace("max_size: 500 KiB", "max_size: 1 KiB");
    std::fs::write(p.join("recipes/mlp_quickstart.yaml"), recipe).unwrap();
    let text = run(
        &project,
        tmp.path(),
        &["apply", "recipes/mlp_quickstart.yaml"],
    );
    assert_eq!(text.code, 1);
    assert!(
        text.stdout
            .contains("not written (the artifact was rejected)"),
        "{}",
        text.stdout
    );
    assert!(!text.stdout.contains("` written"), "{}", text.stdout);
    let json = run(
        &project,
        tmp.path(),
        &["apply", "--json", "recipes/mlp_quickstart.yaml"],
    );
    let a = &artifacts(&json)["mlp_quickstart"];
    assert_eq!(a["status"], "rejected");
    assert_eq!(a["snapshot"]["status"], "not_written", "{a:#}");
    assert_eq!(a["artifact"]["file"], "", "{a:#}");
    assert!(!p.join("snapshots/mlp_quickstart.yaml").exists());
}

/// Two outputs of equal shape: the artifact names them after their Keras layers, so swapping
/// their order in Keras changes nothing an app sees (the converter lists outputs by name) and
/// the snapshot holds; renaming one is a diff naming both names, and that artifact is not
/// written.
#[test]
fn renamed_outputs_are_a_snapshot_diff_and_swapped_ones_are_not() {
    let project = TestContext::new();
    let tmp = tempfile::tempdir().unwrap();
    let p = project.path();
    std::fs::write(
        p.join("heads.py"),
        "import keras\n\n\ndef two_heads(swap=False, second=\"logits\"):\n    keras.utils.set_random_seed(0)\n    x = keras.Input((4,), batch_size=1, name=\"x\")\n    scores = keras.layers.Dense(2, name=\"scores\")(x)\n    other = keras.layers.Dense(2, name=second)(x)\n    return keras.Model(x, [other, scores] if swap else [scores, other])\n",
    )
    .unwrap();
    let recipe = |args: &str| {
        format!(
            "version: 1\nname: heads\nmodel:\n  factory:\n    callable: heads.py:two_heads\n    args: {{{args}}}\noutput: build/heads.tflite\n"
        )
    };
    let apply = |args: &str| {
        std::fs::write(p.join("heads.yaml"), recipe(args)).unwrap();
        run(
            &project,
            tmp.path(),
            &["apply", "--allow-code", "heads.yaml"],
        )
    };
    let first = apply("swap: false");
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let snapshot = read(&p.join("snapshots/heads.yaml"));
    assert!(
        snapshot.contains("- name: logits") && snapshot.contains("- name: scores"),
        "{snapshot}"
    );

    let swapped = apply("swap: true");
    assert_eq!(swapped.code, 0, "{}\n{}", swapped.stdout, swapped.stderr);
    assert_eq!(read(&p.join("snapshots/heads.yaml")), snapshot);
    let before = std::fs::read(p.join("build/heads.tflite")).unwrap();

    let renamed = apply("swap: true, second: probs");
    assert_eq!(renamed.code, 1, "{}", renamed.stdout);
    assert!(
        renamed.stdout.contains("-  - name: logits"),
        "{}",
        renamed.stdout
    );
    assert!(
        renamed.stdout.contains("+  - name: probs"),
        "{}",
        renamed.stdout
    );
    assert_eq!(std::fs::read(p.join("build/heads.tflite")).unwrap(), before);
    assert_eq!(read(&p.join("snapshots/heads.yaml")), snapshot);
}
