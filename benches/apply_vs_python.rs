//! `litert apply` against plain Python exports, measured in the same run (issue 4):
//!
//! 1. one `litert apply` of 10 small recipes against 10 separate Python processes, each
//!    calling `model.export(format="litert")` on the same model (target ratio ≤ 0.3);
//! 2. one recipe against one plain Python export, parity off (target ratio ≤ 1.15).
//!
//! Run: `cargo bench --bench apply_vs_python`. The worker's
//! interpreter comes from `LITERT_PYTHON`, else the provisioned environment.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const MODELS: [(&str, &str); 5] = [
    ("mlp", "models/mlp.keras"),
    ("classifier", "models/classifier.keras"),
    ("multi_input", "models/multi_input.keras"),
    ("dict_inputs", "models/dict_inputs.keras"),
    ("frames", "models/frames.keras"),
];

const PLAIN_EXPORT: &str = r#"
import os, sys
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
model = keras.saving.load_model(sys.argv[1])
model.export(sys.argv[2], format="litert", verbose=False)
"#;

fn main() {
    let root = common::root();
    let bin = common::litert();
    let python = common::worker_python();
    let dir = tempfile::tempdir().expect("temp dir");
    let recipes = write_recipes(&root, dir.path(), 10, false);
    let runs = 3;

    // 1. Ten builds: one apply (one worker, TensorFlow imported once) vs ten processes.
    let mut apply_s = Vec::new();
    let mut python_s = Vec::new();
    for _ in 0..runs {
        apply_s.push(time(|| run_apply(&bin, &python, &recipes)));
        python_s.push(time(|| {
            for (i, r) in recipes.iter().enumerate() {
                let model = root.join(MODELS[i % MODELS.len()].1);
                let out = dir.path().join(format!("plain{i}.tflite"));
                let _ = r;
                run_plain(&python, &model, &out);
            }
        }));
    }
    let (a, p) = (median(&mut apply_s), median(&mut python_s));
    println!(
        "10 builds: litert apply {a:.2}s, 10 python processes {p:.2}s, ratio {:.3} (target <= 0.3)",
        a / p
    );

    // 2. One build, parity off: the cost of litert around the same export.
    let one = write_recipes(&root, dir.path(), 1, false);
    let mut apply1 = Vec::new();
    let mut python1 = Vec::new();
    for _ in 0..runs {
        apply1.push(time(|| run_apply(&bin, &python, &one)));
        python1.push(time(|| {
            run_plain(
                &python,
                &root.join(MODELS[0].1),
                &dir.path().join("one.tflite"),
            )
        }));
    }
    let (a, p) = (median(&mut apply1), median(&mut python1));
    println!(
        "1 build, parity off: litert apply {a:.2}s, python {p:.2}s, ratio {:.3} (target <= 1.15)",
        a / p
    );

    // For reference: the 10 builds with parity on (what `apply` does by default).
    let checked = write_recipes(&root, dir.path(), 10, true);
    let mut with_parity = Vec::new();
    for _ in 0..runs {
        with_parity.push(time(|| run_apply(&bin, &python, &checked)));
    }
    println!(
        "10 builds with parity checks: litert apply {:.2}s",
        median(&mut with_parity)
    );
}

fn write_recipes(root: &Path, dir: &Path, n: usize, parity: bool) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let (name, model) = MODELS[i % MODELS.len()];
            let path = dir.join(format!("r{i}_{name}_{parity}.yaml"));
            let text = format!(
                "version: 1\nname: r{i}-{name}\nmodel: {{keras: {}}}\noutput: out{i}_{parity}.tflite\nparity: {{enabled: {parity}}}\n",
                root.join(model).display()
            );
            std::fs::write(&path, text).expect("write recipe");
            path
        })
        .collect()
}

fn run_apply(bin: &Path, python: &str, recipes: &[PathBuf]) {
    let out = Command::new(bin)
        .arg("apply")
        // Every run must build: the lock would otherwise make the second one a no-op.
        .arg("--force")
        .args(recipes)
        .env("LITERT_PYTHON", python)
        .env("LITERT_NO_PROGRESS", "1")
        .output()
        .expect("litert apply");
    common::assert_succeeded(&out, "litert apply");
}

fn run_plain(python: &str, model: &Path, out: &Path) {
    let status = Command::new(python)
        .arg("-c")
        .arg(PLAIN_EXPORT)
        .arg(model)
        .arg(out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("python");
    assert!(
        status.success(),
        "plain export of {} failed",
        model.display()
    );
}

fn time(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
