//! Hostile and careless input, through the real binary: the corpus in
//! `tests/fixtures/hostile/` (recipes written as an attacker or a hurried new user would)
//! must each give a clear, located error, never a panic, a hang or a file written outside
//! the project; and what a rejected base recipe holds is never printed.

use crate::support::{TestContext, artifacts, fixture_dir};

#[test]
fn hostile_recipes_are_refused_with_located_errors() {
    let ctx = TestContext::with_fixtures();
    insta::glob!("fixtures/hostile/[!_]*.yaml", |path| {
        let (rel, out) = ctx.check_fixture(path);
        assert_eq!(out.code, 2, "{rel} should be invalid:\n{}", out.stderr);
        assert!(
            !out.stderr.contains("hostile-fixture-secret") && !out.stderr.contains("AKIA"),
            "{rel} printed a line of a file that is not a recipe:\n{}",
            out.stderr
        );
        insta::assert_snapshot!(out.diagnostic());
    });
}

/// A recipe with 1,500 variants is refused at once (E0274) instead of being validated 1,500
/// times (a 750 KB one with 60,000 is already over the YAML node budget, E0001).
#[test]
fn a_recipe_with_too_many_variants_is_refused() {
    let dir = TestContext::new();
    let mut text = String::from(
        "version: 1\nmodel: {keras: m.keras}\noutput: \"out-{{ variant }}.tflite\"\nvariants:\n",
    );
    for i in 0..1_500 {
        text.push_str(&format!("  v{i}: {{}}\n"));
    }
    std::fs::write(dir.path().join("many.yaml"), text).unwrap();
    let out = dir.litert(&["check", "many.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    insta::assert_snapshot!(out.diagnostic());
}

#[test]
fn extends_errors_never_print_a_non_recipe_file_as_json_either() {
    let ctx = TestContext::with_fixtures();
    for recipe in ["extends_yaml_that_is_not_a_recipe", "extends_broken_yaml"] {
        let out = ctx.litert(&[
            "check",
            &format!("tests/fixtures/hostile/{recipe}.yaml"),
            "--format",
            "json",
        ]);
        assert_eq!(out.code, 2);
        assert!(
            !out.stdout.contains("hostile-fixture-secret"),
            "{}",
            out.stdout
        );
        assert!(!out.stdout.contains("AKIA"), "{}", out.stdout);
    }
}

/// `apply --timeout` past what a clock can hold is a usage error, not a panic.
#[test]
fn an_absurd_timeout_is_a_usage_error() {
    let ctx = TestContext::example_project();
    let out = ctx.litert(&[
        "apply",
        "--timeout",
        "9223372036854775807",
        "recipes/mlp_quickstart.yaml",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    insta::assert_snapshot!(out.diagnostic());
}

/// The docs use an (empty) `litert.lock` to mark the project root.
#[test]
fn an_empty_lock_marks_the_project_root() {
    let project = TestContext::scratch(&[], &["recipes/mlp_quickstart.yaml", "models/mlp.keras"]);
    std::fs::write(project.path().join("litert.lock"), "").unwrap();
    let out = project.litert(&["plan", "recipes/mlp_quickstart.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = project.litert(&["test", "recipes/mlp_quickstart.yaml"]);
    assert!(
        !out.stderr.contains("not a valid lock file"),
        "{}",
        out.stderr
    );
}

/// An artifact may go outside the project (an app's assets); the lock then records its
/// absolute path as it is, with one leading slash.
#[test]
fn an_absolute_output_is_locked_with_one_leading_slash() {
    let outside = tempfile::tempdir().unwrap();
    let project = TestContext::scratch(&[], &["models/mlp.keras"]);
    let target = outside.path().join("assets").join("mlp.tflite");
    std::fs::write(
        project.path().join("mlp.yaml"),
        format!(
            "version: 1\nmodel: {{keras: models/mlp.keras}}\nbatch_size: 1\noutput: {}\n",
            target.display()
        ),
    )
    .unwrap();
    let out = project.litert(&["apply", "mlp.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(target.is_file());
    let lock = std::fs::read_to_string(project.path().join("litert.lock")).unwrap();
    let line = lock
        .lines()
        .find(|l| l.trim_start().starts_with("output:"))
        .expect("an output line");
    assert_eq!(
        line.trim_start(),
        format!("output: {}", target.display()),
        "{lock}"
    );
}

/// Model files from the internet: not a zip, a decompression bomb, a Lambda layer in each
/// format (refused without `--allow-unsafe`, loaded with it).
#[test]
fn hostile_model_files() {
    let models = fixture_dir("tests/fixtures/hostile/models/build_models.py");
    let project = TestContext::new();
    let p = project.path();
    std::fs::write(p.join("notes.txt"), "just some text\n").unwrap();
    std::os::unix::fs::symlink(p.join("notes.txt"), p.join("link.keras")).unwrap();
    let m = |f: &str| models.join(f).display().to_string();
    let recipe = |name: &str, model: String| {
        std::fs::write(
            p.join(format!("{name}.yaml")),
            format!(
                "version: 1\nmodel: {model}\nbatch_size: 1\noutput: build/{name}.tflite\nparity: {{enabled: false}}\n"
            ),
        )
        .unwrap();
        format!("{name}.yaml")
    };
    let garbage = recipe("garbage", format!("{{keras: {}}}", m("garbage.keras")));
    let link = recipe("link", "{keras: link.keras}".into());
    let bomb = recipe("bomb", format!("{{keras: {}}}", m("bomb.keras")));
    let h5 = recipe("lambda_h5", format!("{{h5: {}}}", m("lambda.h5")));
    let weights = recipe(
        "lambda_weights",
        format!(
            "{{weights: {{file: {}, architecture: {{config: {}}}}}}}",
            m("lambda.weights.h5"),
            m("lambda_architecture.json")
        ),
    );
    let all = [&garbage, &link, &bomb, &h5, &weights];
    let mut args = vec!["apply", "--json"];
    args.extend(all.iter().map(|s| s.as_str()));
    let out = project.litert(&args);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let arts = artifacts(&out);
    let message = |id: &str| arts[id]["message"].as_str().unwrap_or_default().to_string();
    for id in ["garbage", "link"] {
        assert_eq!(arts[id]["status"], "failed");
        assert!(
            message(id).contains("is not a `.keras` model"),
            "{id}: {}",
            message(id)
        );
        assert!(arts[id]["detail"].is_null(), "no traceback: {:#}", arts[id]);
    }
    assert!(
        message("bomb").contains("entry `config.json` inflates to 100.0 MiB"),
        "{}",
        message("bomb")
    );
    for id in ["lambda_h5", "lambda_weights"] {
        assert_eq!(arts[id]["status"], "failed");
        assert!(
            message(id).contains("`Lambda` layer"),
            "{id}: {}",
            message(id)
        );
        assert!(
            arts[id]["hint"]
                .as_str()
                .unwrap_or_default()
                .contains("--allow-unsafe"),
            "{:#}",
            arts[id]
        );
    }
    let out = project.litert(&["apply", "--json", "--allow-unsafe", &h5, &weights]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(p.join("build/lambda_h5.tflite").is_file());
    assert!(p.join("build/lambda_weights.tflite").is_file());
}

/// A worker over its memory budget (here: calibration data that inflates to 1 GiB, and a
/// kernel TensorFlow cannot allocate, under a 900 MiB cap) fails with a clear error naming
/// the budget, and no `--jobs 1` advice when one job ran; a budget that is not a size is
/// refused.
#[test]
fn the_worker_memory_is_bounded() {
    let models = fixture_dir("tests/fixtures/hostile/models/build_models.py");
    let digits = fixture_dir("tests/quant/build_digits.py");
    let project = TestContext::new();
    let p = project.path();
    std::fs::write(
        p.join("bomb.yaml"),
        format!(
            "version: 1\nmodel: {{keras: {}/digits.keras}}\nbatch_size: 1\noutput: build/bomb.tflite\n\
             quantization: {{mode: full_int8}}\ncalibration: {{npz: {}/zeros.npz}}\n",
            digits.display(),
            models.display()
        ),
    )
    .unwrap();
    let out = project.litert_with(
        &["apply", "--json", "bomb.yaml"],
        &[("LITERT_WORKER_MEMORY", "900MiB")],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let arts = artifacts(&out);
    let a = &arts["bomb"];
    assert_eq!(a["status"], "failed", "{a:#}");
    assert_eq!(a["stage"], "calibrate", "{a:#}");
    assert_eq!(
        a["message"], "the worker ran out of memory (its limit is 900 MiB: LITERT_WORKER_MEMORY)",
        "{a:#}"
    );
    let hint = a["hint"].as_str().unwrap_or_default();
    assert!(hint.contains("LITERT_WORKER_MEMORY=SIZE"), "{a:#}");
    assert!(!hint.contains("--jobs 1"), "one job ran: {a:#}");

    // TensorFlow's own allocator fails differently (ResourceExhaustedError, "Graph execution
    // error" or "OOM when allocating"): a 1.2 GB kernel under the same cap reads the same.
    std::fs::write(
        p.join("wide.py"),
        "import keras\n\ndef build():\n    return keras.Sequential([keras.Input((300_000,)), keras.layers.Dense(1024)])\n",
    )
    .unwrap();
    std::fs::write(
        p.join("wide.yaml"),
        "version: 1\nmodel: {factory: {callable: wide.py:build}}\noutput: build/wide.tflite\n",
    )
    .unwrap();
    let out = project.litert_with(
        &["apply", "--json", "--allow-code", "wide.yaml"],
        &[("LITERT_WORKER_MEMORY", "900MiB")],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let a = &artifacts(&out)["wide"];
    assert_eq!(a["stage"], "load", "{a:#}");
    assert_eq!(
        a["message"], "the worker ran out of memory (its limit is 900 MiB: LITERT_WORKER_MEMORY)",
        "{a:#}"
    );
    let out = project.litert_with(
        &["apply", "--json", "bomb.yaml"],
        &[("LITERT_WORKER_MEMORY", "bananas")],
    );
    assert_eq!(out.code, 1);
    let arts = artifacts(&out);
    assert!(
        arts["bomb"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("`LITERT_WORKER_MEMORY=bananas` is not a size"),
        "{:#}",
        arts["bomb"]
    );
}

/// Recipes as a hurried new user writes them: each diagnostic (or the warning of an
/// otherwise valid recipe) is snapshotted.
#[test]
fn careless_recipes_get_pointed_diagnostics() {
    let ctx = TestContext::with_fixtures();
    insta::glob!("fixtures/careless/*.yaml", |path| {
        let (_, out) = ctx.check_fixture(path);
        insta::assert_snapshot!(out.diagnostic());
    });
}

/// Parity of a quantized variant runs on the recipe's data and says so; a rejection says
/// why the tolerance was what it was and what to do, and a "quantized" model whose weights
/// are all too small to quantize points at `verify_quantization`.
#[test]
fn parity_uses_the_recipes_data_and_rejections_carry_hints() {
    let digits = fixture_dir("tests/quant/build_digits.py");
    let models = fixture_dir("tests/fixtures/hostile/models/build_models.py");
    let project = TestContext::new();
    let p = project.path();
    let d = digits.display();
    std::fs::write(
        p.join("digits.yaml"),
        format!(
            "version: 1\nmodel: {{keras: {d}/digits.keras}}\nbatch_size: 1\noutput: build/digits.tflite\n\
             quantization: {{mode: dynamic_range}}\n\
             accuracy:\n  data: {{npz: {d}/test.npz, samples: 100}}\n  labels: label\n"
        ),
    )
    .unwrap();
    std::fs::write(
        p.join("tiny.yaml"),
        format!(
            "version: 1\nmodel: {{keras: {}/tiny.keras}}\nbatch_size: 1\noutput: build/tiny.tflite\n\
             quantization: {{mode: dynamic_range}}\n",
            models.display()
        ),
    )
    .unwrap();
    std::fs::write(
        p.join("strict.yaml"),
        format!(
            "version: 1\nmodel: {{keras: {d}/digits.keras}}\nbatch_size: 1\noutput: build/strict.tflite\n\
             quantization: {{mode: dynamic_range}}\nparity: {{tolerance: {{\"*\": {{atol: 1.0e-9, rtol: 0}}}}}}\n"
        ),
    )
    .unwrap();
    let out = project.litert(&["apply", "digits.yaml", "tiny.yaml", "strict.yaml"]);
    let text = out.stdout.clone() + &out.stderr;
    assert!(
        text.contains("parity on 8 samples from the accuracy data"),
        "{text}"
    );
    assert!(
        text.contains("the default for weight-only quantization"),
        "{text}"
    );
    assert!(
        text.contains("accuracy vs the float model (100 of "),
        "{text}"
    );
    // No data and a tolerance a quantized model cannot meet; weights too small to quantize.
    assert!(text.contains("parity on 8 random samples"), "{text}");
    assert!(text.contains("the recipe's `parity.tolerance`"), "{text}");
    assert!(
        text.contains("hint: parity compares every output value with Keras'"),
        "{text}"
    );
    assert!(
        text.contains("give `calibration` or `accuracy.data`"),
        "{text}"
    );
    assert!(
        text.contains("`gates: {verify_quantization: false}`"),
        "{text}"
    );
    let out = project.litert(&["apply", "--json", "tiny.yaml"]);
    let arts = artifacts(&out);
    let hint = arts["tiny"]["hint"].as_str().unwrap_or_default();
    assert!(hint.contains("verify_quantization"), "{:#}", arts["tiny"]);
}

/// `input_signature` in the mapping form (a dict-input model) and with unnamed entries
/// (named `args_N`, as Keras does) builds, with those names in the artifact.
#[test]
fn input_signature_mapping_and_unnamed_forms_build() {
    let project = TestContext::scratch(
        &[],
        &[
            "tests/fixtures/careless/input_signature_forms.yaml",
            "models/dict_inputs.keras",
            "models/mlp.keras",
        ],
    );
    let out = project.litert(&[
        "apply",
        "--json",
        "tests/fixtures/careless/input_signature_forms.yaml",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("W0245"), "{}", out.stderr);
    let arts = artifacts(&out);
    let names = |id: &str| -> Vec<String> {
        arts[id]["artifact"]["signatures"][0]["inputs"]
            .as_array()
            .unwrap_or_else(|| panic!("{:#}", arts[id]))
            .iter()
            .map(|i| i["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(names("input_signature_forms:mapping"), ["mask", "tokens"]);
    assert_eq!(names("input_signature_forms:unnamed"), ["args_0"]);
}

/// A mounted tmpfs, unmounted when dropped.
struct Mount(std::path::PathBuf);

impl Mount {
    /// Needs root (or a user namespace); `None` when this machine does not allow it.
    fn tmpfs(dir: &std::path::Path, options: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A full disk and a read-only output directory say what and where, with no traceback and
/// no hidden temporary path. Needs `mount` (root); says so and checks nothing otherwise.
#[test]
fn full_disk_and_read_only_output_are_clear_errors() {
    let digits = fixture_dir("tests/quant/build_digits.py");
    let project = TestContext::new();
    let p = project.path();
    let Some(_full) = Mount::tmpfs(&p.join("full"), "size=16k") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let Some(_ro) = Mount::tmpfs(&p.join("ro"), "ro") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    for dir in ["full", "ro"] {
        std::fs::write(
            p.join(format!("{dir}.yaml")),
            format!(
                "version: 1\nmodel: {{keras: {}/digits.keras}}\nbatch_size: 1\noutput: {dir}/digits.tflite\n",
                digits.display()
            ),
        )
        .unwrap();
    }
    let out = project.litert(&["apply", "--json", "full.yaml", "ro.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let arts = artifacts(&out);
    for (id, stage, why) in [
        (
            "full",
            "convert",
            "cannot write the artifact in `full`: no space left on the device",
        ),
        (
            "ro",
            "plan",
            "cannot write the artifact in `ro`: the file system is read-only",
        ),
    ] {
        let a = &arts[id];
        assert_eq!(a["status"], "failed", "{a:#}");
        assert_eq!(a["stage"], stage, "{a:#}");
        assert_eq!(a["message"], why, "{a:#}");
        assert!(a["detail"].is_null(), "no traceback: {a:#}");
        assert!(!a.to_string().contains(".litert-build"), "{a:#}");
    }
    assert_eq!(
        std::fs::read_dir(p.join("full")).unwrap().count(),
        0,
        "nothing left behind"
    );
}

/// A `snapshot:` path inside the project that goes through a symlink to a directory outside
/// it is outside the project too.
#[test]
fn a_snapshot_through_a_symlink_out_of_the_project_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let project = TestContext::scratch(&[], &["models/mlp.keras"]);
    let p = project.path();
    std::os::unix::fs::symlink(outside.path(), p.join("shared")).unwrap();
    std::fs::write(
        p.join("r.yaml"),
        "version: 1\nmodel: {keras: models/mlp.keras}\noutput: build/r.tflite\nsnapshot: shared/r.yaml\n",
    )
    .unwrap();
    let out = project.litert(&["check", "r.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("error[E0234]"), "{}", out.stderr);
    std::fs::write(
        p.join("ok.yaml"),
        "version: 1\nmodel: {keras: models/mlp.keras}\noutput: build/ok.tflite\nsnapshot: review/ok.yaml\n",
    )
    .unwrap();
    let out = project.litert(&["check", "ok.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}
