//! `litert inspect` against the Python route (`Interpreter(model_path=...)`, the signature
//! list, input and output details), process against process, on the largest real model the
//! cross-check downloads and on synthetic models whose single weight buffer grows from 1 MB
//! to 1 GB, to show that reading time does not grow with weight size.
//!
//! Run with `cargo bench --bench inspect`. Targets: >= 50x less wall time, peak RSS <= 20 MB.
//! Provisions the same venv and models as the cross-check (`tests/support/python.rs`).

mod common;

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use support::{fixtures, python};

const LITERT_RUNS: usize = 50;
const PYTHON_RUNS: usize = 11;

/// Median wall time of `runs` runs of `cmd`, spawned and awaited from here (the same way for
/// both routes, stdout captured).
fn wall_ms(runs: usize, cmd: &[&Path]) -> f64 {
    // One warm-up run so both routes start with the model and the program in the page cache.
    let _ = Command::new(cmd[0]).args(&cmd[1..]).output();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let out = Command::new(cmd[0])
                .args(&cmd[1..])
                .output()
                .expect("spawn");
            let elapsed = start.elapsed().as_secs_f64() * 1e3;
            common::assert_succeeded(&out, &format!("{cmd:?}"));
            elapsed
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times.get(runs / 2).copied().unwrap_or(f64::NAN)
}

/// Peak RSS in MB from GNU time, whose own small footprint is what a child inherits before
/// `exec`; `None` where `/usr/bin/time` is missing.
fn gnu_time_rss_mb(cmd: &[&Path]) -> Option<f64> {
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .args(cmd)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let kb: f64 = text.lines().last()?.trim().parse().ok()?;
    Some(kb / 1024.0)
}

/// Peak RSS and the in-process time the Python route reports, from `measure.py`.
fn measure(runs: &str, cmd: &[&Path]) -> Value {
    let py = python::python();
    let out = Command::new(&py)
        .arg(python::measure_script())
        .arg(runs)
        .args(cmd)
        .output()
        .expect("run measure.py");
    common::assert_succeeded(&out, "measure.py");
    serde_json::from_slice(&out.stdout).expect("measure.py prints JSON")
}

/// A model whose one weight tensor has `bytes` bytes, inside the FlatBuffer.
fn synthetic(dir: &Path, bytes: usize) -> PathBuf {
    let path = dir.join(format!("synthetic_{}mb.tflite", bytes >> 20));
    if path.exists() {
        return path;
    }
    let mut spec = fixtures::no_signature();
    let n = i32::try_from(bytes / 4).expect("fits");
    spec.subgraphs[0]
        .tensors
        .push(fixtures::t("huge/kernel", fixtures::dtype::FLOAT32, &[n]).data(vec![0x3f; bytes]));
    let data = fixtures::build(&spec);
    std::fs::write(&path, data).expect("write synthetic model");
    path
}

/// Export ResNet50 (random weights, batch 1) once into `dir` with the worker environment.
fn resnet50(litert: &Path, dir: &Path) -> Option<PathBuf> {
    let out = dir.join("resnet50_random.tflite");
    if out.exists() {
        return Some(out);
    }
    let show = std::process::Command::new(litert)
        .args(["env", "show", "--json"])
        .output()
        .ok()?;
    let env: Value = serde_json::from_slice(&show.stdout).ok()?;
    let Some(python) = env["python"]
        .as_str()
        .filter(|_| env["provisioned"] != false)
    else {
        println!("(no worker environment: run `litert env setup` to include the ResNet50 case)");
        return None;
    };
    let script = "import sys, keras\nm = keras.applications.ResNet50(weights=None)\n\
                  m.export(sys.argv[1], format='litert', verbose=False, input_signature=[keras.InputSpec(shape=(1, 224, 224, 3), dtype='float32', name='image')])\n";
    let status = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&out)
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    status.success().then_some(out)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: only build then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let litert = PathBuf::from(env!("CARGO_BIN_EXE_litert"));
    let py = python::python();
    let dump = python::dump_script();
    let dir = python::cache_dir().join("bench");
    std::fs::create_dir_all(&dir).expect("bench dir");

    let mut models: Vec<PathBuf> = python::models();
    models.sort_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0));
    let largest = models.pop().expect("real models");
    let mut cases = vec![largest];
    // The reference model: a ResNet50 with random weights (~100 MB), exported by
    // the worker environment litert provisions (skipped, with a note, without one).
    if let Some(resnet) = resnet50(&litert, &dir) {
        cases.push(resnet);
    }
    for mb in [1usize, 100, 1024] {
        cases.push(synthetic(&dir, mb << 20));
    }

    println!(
        "{:<42} {:>8} {:>10} {:>7} {:>10} {:>10} {:>7} {:>7}",
        "model", "MB", "litert ms", "RSS MB", "python ms", "py in-proc", "RSS MB", "ratio"
    );
    for model in &cases {
        let mb = std::fs::metadata(model).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
        let litert_cmd = [
            litert.as_path(),
            Path::new("inspect"),
            Path::new("--json"),
            model,
        ];
        let python_cmd = [py.as_path(), dump.as_path(), Path::new("--bench"), model];
        let ours_ms = wall_ms(LITERT_RUNS, &litert_cmd);
        let theirs_ms = wall_ms(PYTHON_RUNS, &python_cmd);
        let ours = measure("3", &litert_cmd);
        let theirs = measure("3", &python_cmd);
        // measure.py's figure is an upper bound: a child forked from Python starts with
        // Python's resident pages, and Linux counts them in the child's peak.
        let rss = |v: &Value, cmd: &[&Path]| {
            gnu_time_rss_mb(cmd).unwrap_or(v["max_rss_kb"].as_f64().unwrap_or(f64::NAN) / 1024.0)
        };
        let in_proc = theirs["in_process_median_s"].as_f64().unwrap_or(f64::NAN) * 1e3;
        let name = model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!(
            "{:<42} {:>8.1} {:>10.2} {:>7.1} {:>10.1} {:>10.2} {:>7.1} {:>6.0}x",
            name,
            mb,
            ours_ms,
            rss(&ours, &litert_cmd),
            theirs_ms,
            in_proc,
            rss(&theirs, &python_cmd),
            theirs_ms / ours_ms,
        );
    }
    println!(
        "wall: median of {LITERT_RUNS} (litert) / {PYTHON_RUNS} (python) process runs; python = \
         `Interpreter(model_path)` + signature list + input/output details; in-proc excludes \
         imports; RSS: peak resident set (GNU time, else an upper bound from getrusage)"
    );
}
