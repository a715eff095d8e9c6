//! Reproducible release builds: the lock file, the up-to-date check, signature snapshots
//! and their review, and `litert test` as the CI gate — each in a scratch project with its
//! own `.git` root, driven through the real binary with the shared worker environment.

use std::path::PathBuf;

use crate::support::{Output, TestContext, artifacts, worker_python};

/// A scratch project: `.git` (so it is its own root), a model, calibration data and a
/// recipe with a float and a full-int8 variant whose input name is `input_name`.
struct Project {
    ctx: TestContext,
}

impl Project {
    fn new(input_name: &str) -> Self {
        let ctx = TestContext::new();
        ctx.copy("models/classifier.keras");
        ctx.copy("data/classifier_calibration.npz");
        std::fs::rename(
            ctx.join("data/classifier_calibration.npz"),
            ctx.join("data/calibration.npz"),
        )
        .unwrap();
        let p = Self { ctx };
        p.write_recipe(input_name);
        p
    }

    fn write_recipe(&self, input_name: &str) {
        let npz = if input_name == "image" {
            "data/calibration.npz"
        } else {
            "data/renamed.npz"
        };
        if input_name != "image" {
            // Calibration arrays are keyed by input name; give the renamed input its data.
            let python = worker_python();
            let status = std::process::Command::new(python)
                .arg("-c")
                .arg("import numpy as np, sys; d = np.load(sys.argv[1]); np.savez(sys.argv[2], **{sys.argv[3]: d['image']})")
                .arg(self.path("data/calibration.npz"))
                .arg(self.path(npz))
                .arg(input_name)
                .status()
                .unwrap();
            assert!(status.success());
        }
        std::fs::write(
            self.path("recipe.yaml"),
            format!(
                "version: 1\nname: clf\nmodel: {{keras: models/classifier.keras}}\n\
                 input_signature:\n  - {{name: {input_name}, shape: [1, 28, 28, 1], dtype: float32}}\n\
                 output: build/clf-{{{{ variant }}}}.tflite\n\
                 variants:\n  fp32: {{}}\n  int8:\n    quantization: {{mode: full_int8, io: int8}}\n    calibration: {{npz: {npz}, samples: 16}}\n"
            ),
        )
        .unwrap();
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.ctx.join(rel)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.ctx.litert(args)
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.ctx.litert_with(args, env)
    }

    fn lock(&self) -> String {
        std::fs::read_to_string(self.path("litert.lock")).unwrap_or_default()
    }
}

fn sha_of(out: &Output, id: &str) -> String {
    artifacts(out)[id]["sha256"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn rebuilds_repeat_the_bytes_across_processes() {
    let p = Project::new("image");
    let first = p.run(&["apply", "--json", "recipe.yaml"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let lock = p.lock();
    assert!(
        lock.contains("clf:int8") && lock.contains("clf:fp32"),
        "{lock}"
    );
    let second = p.run(&["apply", "--json", "--force", "--locked", "recipe.yaml"]);
    assert_eq!(
        second.code, 0,
        "--locked rebuild differs:\n{}\n{}",
        second.stdout, second.stderr
    );
    for id in ["clf:fp32", "clf:int8"] {
        assert_eq!(sha_of(&first, id), sha_of(&second, id), "{id}");
        assert!(!sha_of(&first, id).is_empty());
    }
    assert_eq!(p.lock(), lock, "--locked never rewrites the lock");
}

#[test]
fn up_to_date_artifacts_start_no_python() {
    let p = Project::new("image");
    assert_eq!(p.run(&["apply", "recipe.yaml"]).code, 0);
    // A Python that does not exist: anything needing the worker would fail.
    let again = p.run_env(
        &["apply", "--json", "recipe.yaml"],
        &[("LITERT_PYTHON", "/nonexistent/python")],
    );
    // An external interpreter is a different toolchain: that alone is a reason to rebuild.
    assert_ne!(again.code, 0);
    let again = p.run(&["apply", "--json", "recipe.yaml"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    for (_, a) in artifacts(&again) {
        assert_eq!(a["status"], "up_to_date", "{a:#}");
    }
    let plan = p.run(&["plan", "recipe.yaml"]);
    assert!(
        plan.stderr.contains("clf:int8: up to date"),
        "{}",
        plan.stderr
    );

    // Changing the model's bytes makes both variants stale, and plan says why.
    let mut bytes = std::fs::read(p.path("models/classifier.keras")).unwrap();
    bytes.extend_from_slice(b"\0");
    std::fs::write(p.path("models/classifier.keras"), bytes).unwrap();
    let plan = p.run(&["plan", "recipe.yaml"]);
    assert!(
        plan.stderr
            .contains("clf:fp32: would build: the model source changed"),
        "{}",
        plan.stderr
    );

    // So does touching the artifact.
    let p = Project::new("image");
    assert_eq!(p.run(&["apply", "recipe.yaml"]).code, 0);
    std::fs::write(p.path("build/clf-fp32.tflite"), b"tampered").unwrap();
    let plan = p.run(&["plan", "recipe.yaml"]);
    assert!(
        plan.stderr.contains("differs from the locked bytes"),
        "{}",
        plan.stderr
    );
    assert!(
        plan.stderr.contains("clf:int8: up to date"),
        "{}",
        plan.stderr
    );
}

#[test]
fn a_renamed_input_fails_test_with_a_diff_naming_it() {
    let p = Project::new("image");
    assert_eq!(p.run(&["apply", "recipe.yaml"]).code, 0);
    assert_eq!(p.run(&["test", "recipe.yaml"]).code, 0);

    p.write_recipe("pixels");
    let junit = p.path("junit.xml");
    let out = p.run(&["test", "recipe.yaml", "--junit", junit.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("-  - name: image") && out.stdout.contains("+  - name: pixels"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("test: 0 passed, 2 failed"),
        "{}",
        out.stderr
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<testsuite name=\"litert\" tests=\"2\" failures=\"2\">"),
        "{xml}"
    );
    assert!(xml.contains("name: pixels"), "{xml}");
    // The way out, as `apply` gives it: accept the change, then commit.
    assert!(
        out.stdout
            .contains("run `litert apply recipe.yaml --update-snapshots` (or `litert apply` and `litert snapshot review`), then commit"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("if the change is intended, run `litert apply recipe.yaml`"),
        "{}",
        out.stdout
    );
    // `test` writes nothing.
    assert!(!p.path("snapshots/clf-fp32.yaml.new").exists());
}

/// `test` and `apply --locked` of a recipe never applied answer at once, without starting
/// Python (an interpreter that does not exist would fail any run that tried).
#[test]
fn a_never_applied_recipe_is_named_at_once_without_python() {
    let p = Project::new("image");
    let no_python = [("LITERT_PYTHON", "/nonexistent/python3")];
    for args in [
        &["test", "recipe.yaml"][..],
        &["apply", "--locked", "recipe.yaml"][..],
    ] {
        let out = p.run_env(args, &no_python);
        assert_eq!(out.code, 1, "{args:?}: {}\n{}", out.stdout, out.stderr);
        for id in ["clf:fp32", "clf:int8"] {
            assert!(
                out.stdout.contains(&format!(
                    "`{id}` was never applied: litert.lock has no entry for it"
                )),
                "{args:?}: {}",
                out.stdout
            );
        }
        assert!(
            out.stdout.contains(
                "hint: run `litert apply recipe.yaml`, review the report and the new snapshot, and commit litert.lock and snapshots/"
            ),
            "{args:?}: {}",
            out.stdout
        );
        assert!(
            !out.stderr.contains("/nonexistent"),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert!(!p.path("litert.lock").exists());
}

#[test]
fn a_changed_snapshot_waits_for_review() {
    let p = Project::new("image");
    assert_eq!(p.run(&["apply", "recipe.yaml"]).code, 0);
    let before = std::fs::read(p.path("build/clf-fp32.tflite")).unwrap();

    p.write_recipe("pixels");
    let out = p.run(&["apply", "--json", "recipe.yaml"]);
    assert_eq!(out.code, 1);
    let arts = artifacts(&out);
    assert_eq!(arts["clf:fp32"]["status"], "rejected");
    assert!(
        arts["clf:fp32"]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("the signature changed")
    );
    assert_eq!(
        std::fs::read(p.path("build/clf-fp32.tflite")).unwrap(),
        before,
        "the old artifact stays"
    );
    assert!(p.path("snapshots/clf-fp32.yaml.new").exists());

    let list = p.run(&["snapshot", "list"]);
    assert_eq!(list.stdout, "clf-fp32\nclf-int8\n");
    assert_eq!(p.run(&["snapshot", "accept", "clf:fp32"]).code, 0);
    assert_eq!(p.run(&["snapshot", "reject", "--all"]).code, 0);
    assert!(!p.path("snapshots/clf-int8.yaml.new").exists());
    let stored = std::fs::read_to_string(p.path("snapshots/clf-fp32.yaml")).unwrap();
    assert!(stored.contains("name: pixels"), "{stored}");

    let out = p.run(&["apply", "--json", "recipe.yaml"]);
    let arts = artifacts(&out);
    assert_eq!(
        arts["clf:fp32"]["status"], "built",
        "{:#}",
        arts["clf:fp32"]
    );
    assert_eq!(
        arts["clf:int8"]["status"], "rejected",
        "the int8 change was rejected, so it still differs"
    );
    let out = p.run(&["apply", "--update-snapshots", "recipe.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
}

#[test]
fn ci_does_not_create_snapshots() {
    let p = Project::new("image");
    let out = p.run_env(&["apply", "--json", "recipe.yaml"], &[("CI", "true")]);
    assert_eq!(out.code, 1);
    let arts = artifacts(&out);
    assert!(
        arts["clf:fp32"]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("CI does not create snapshots")
    );
    assert!(!p.path("build/clf-fp32.tflite").exists());
    assert!(!p.path("snapshots").exists());
}

#[test]
fn review_needs_a_terminal_and_names_must_exist() {
    let dir = TestContext::new();
    let snaps = dir.path().join("snapshots");
    std::fs::create_dir(&snaps).unwrap();
    let out = dir.litert(&["snapshot", "review", "--dir", snaps.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("needs a terminal"), "{}", out.stderr);
    let out = dir.litert(&[
        "snapshot",
        "accept",
        "nope",
        "--dir",
        snaps.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("no pending snapshot named `nope`"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_corrupt_lock_stops_the_run_with_a_hint() {
    let p = Project::new("image");
    std::fs::write(p.path("litert.lock"), "version: [\n").unwrap();
    for verb in ["apply", "plan", "test"] {
        let out = p.run(&[verb, "recipe.yaml"]);
        assert_eq!(out.code, 2, "{verb}: {}", out.stderr);
        assert!(
            out.stderr
                .contains("`./litert.lock` is not a valid lock file"),
            "{verb}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("hint: restore it from version control"),
            "{verb}: {}",
            out.stderr
        );
    }
    assert!(!p.path("build").exists(), "nothing was built");
}

/// Calibration data in another dtype is converted and the report says so; data shaped for
/// another signature is described as a whole array, in plain shapes.
#[test]
fn calibration_casts_are_reported_and_misshapen_arrays_named_whole() {
    let p = Project::new("image");
    let rewrite = |expr: &str| {
        let status = std::process::Command::new(worker_python())
            .arg("-c")
            .arg(format!(
                "import numpy as np, sys; d = np.load(sys.argv[1])['image']; np.savez(sys.argv[1], image={expr})"
            ))
            .arg(p.path("data/calibration.npz"))
            .status()
            .unwrap();
        assert!(status.success());
    };
    rewrite("d.astype(np.float64)");
    let out = p.run(&["apply", "recipe.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(
            "calibration data converted to the signature's dtypes: `image` float64 → float32"
        ),
        "{}",
        out.stdout
    );
    rewrite("d.astype(np.float32).reshape(len(d), -1)");
    let out = p.run(&["apply", "--json", "recipe.yaml"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let message = artifacts(&out)["clf:int8"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("every sample of input `image`")
            && message.contains("has shape [784]")
            && message.contains("but the signature takes [1, 28, 28, 1] per sample"),
        "{message}"
    );
    assert!(
        !message.contains("None") && !message.contains("sample 0"),
        "{message}"
    );
}

/// A lock entry whose `worker:` block disagrees with the toolchain it names (edited by
/// hand, say) fails `test` even when the artifact on disk is the locked one.
#[test]
fn an_edited_worker_block_fails_test_of_an_up_to_date_artifact() {
    let p = Project::new("image");
    assert_eq!(p.run(&["apply", "recipe.yaml"]).code, 0);
    assert_eq!(p.run(&["test", "recipe.yaml"]).code, 0);
    let lock = p.lock();
    let edited = lock.replacen("tensorflow: \"2.21.0\"", "tensorflow: \"2.20.0\"", 1);
    assert_ne!(edited, lock);
    std::fs::write(p.path("litert.lock"), &edited).unwrap();
    let out = p.run(&["test", "recipe.yaml"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("litert.lock is stale or edited")
            && out.stdout.contains("tensorflow 2.20.0 (pinned: 2.21.0)"),
        "{}",
        out.stdout
    );
    assert_eq!(p.lock(), edited, "test writes nothing");
}

/// `test --summary FILE` appends a Markdown table for a CI job summary: what was checked,
/// what drifted and why.
#[test]
fn test_appends_a_markdown_summary() {
    let p = Project::new("image");
    assert_eq!(p.run(&["apply", "recipe.yaml"]).code, 0);
    let summary = p.path("summary.md");
    std::fs::write(&summary, "before\n").unwrap();
    let out = p.run(&[
        "test",
        "recipe.yaml",
        "--summary",
        summary.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.starts_with("before\n## litert test\n"), "{text}");
    assert!(
        text.contains("2 artifacts checked: 2 passed, 0 failed."),
        "{text}"
    );
    assert!(text.contains("| `clf:fp32` | ✓ up to date |"), "{text}");

    p.write_recipe("pixels");
    let out = p.run(&[
        "test",
        "recipe.yaml",
        "--summary",
        summary.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let text = std::fs::read_to_string(&summary).unwrap();
    assert_eq!(text.matches("## litert test").count(), 2, "{text}");
    assert!(
        text.contains("2 artifacts checked: 0 passed, 2 failed."),
        "{text}"
    );
    assert!(text.contains("the signature changed"), "{text}");
    assert!(
        text.contains("changed since litert.lock: the recipe changed"),
        "{text}"
    );
}

/// A locked rebuild of an unchanged artifact keeps committed golden outputs that still hold
/// within the parity tolerance (Keras' float outputs differ in the last bits between CPUs),
/// and rewrites them when they do not.
#[test]
fn locked_rebuilds_keep_golden_outputs_that_still_hold() {
    let p = Project::new("image");
    assert_eq!(p.run(&["apply", "recipe.yaml"]).code, 0);
    let npz = p.path("snapshots/clf-fp32.golden.npz");
    let record = p.path("snapshots/clf-fp32.golden.json");
    let nudge = |delta: &str| {
        let status = std::process::Command::new(worker_python())
            .arg("-c")
            .arg(format!(
                "import numpy as np, sys; d = dict(np.load(sys.argv[1])); \
                 d = {{k: (v + np.asarray({delta}, v.dtype) if '/out/' in k else v) for k, v in d.items()}}; \
                 np.savez(sys.argv[1], **d)"
            ))
            .arg(&npz)
            .status()
            .unwrap();
        assert!(status.success());
        let mut r = std::fs::read_to_string(&record).unwrap();
        r.push(' ');
        std::fs::write(&record, r).unwrap();
    };
    // As another CPU would record them: the last bits differ.
    nudge("3e-8");
    let (before_npz, before_record) = (
        std::fs::read(&npz).unwrap(),
        std::fs::read(&record).unwrap(),
    );
    let out = p.run(&["apply", "--force", "--locked", "recipe.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        std::fs::read(&npz).unwrap(),
        before_npz,
        "kept: still within the tolerance"
    );
    assert_eq!(std::fs::read(&record).unwrap(), before_record);
    // Beyond the tolerance: the artifact's own golden outputs are recorded again.
    nudge("0.5");
    let stale = std::fs::read(&npz).unwrap();
    let out = p.run(&["apply", "--force", "--locked", "recipe.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_ne!(
        std::fs::read(&npz).unwrap(),
        stale,
        "rewritten: it no longer holds"
    );
    assert_eq!(p.run(&["test", "recipe.yaml"]).code, 0);
}
