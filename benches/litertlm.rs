//! `.litertlm` bundles, measured.
//!
//! 1. The writer on a 1 GiB model: wall time and peak RSS of a process that writes the
//!    bundle, against `cp` of the same model (time) and the bundle's size (memory: streamed,
//!    the peak stays far below it), and Google's own Python writer (litert-lm-builder 0.18.1,
//!    from the cross-check venv) on the same inputs.
//! 2. LiteRT-LM's own benchmark (`litert_lm.Benchmark`: init time, prefill and decode
//!    tokens/s, CPU) on the toy prefill/decode model of `tests/litertlm/toy_llm.py`, bundled
//!    by litert (needs the worker environment: `litert env setup`).
//! 3. The flagship recipe applied to the small trained Gemma preset of the tests (export,
//!    generation check, bundle, LiteRT-LM check), and LiteRT-LM's benchmark on its bundle.
//!
//! Run with `cargo bench --bench litertlm`.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use litert::litertlm::proto::litert_lm::{LlmMetadata, TokenIds, TokenUnion, token_union};
use litert::litertlm::proto::sentencepiece::{ModelProto, model_proto};
use litert::litertlm::{Bundle, Data};
use prost::Message as _;
use support::{fixtures, python};

const MODEL_BYTES: usize = 1 << 30;
const RUNS: usize = 3;

fn token(id: i32) -> TokenUnion {
    TokenUnion {
        token_union: Some(token_union::TokenUnion::TokenIds(TokenIds {
            ids: vec![id],
        })),
    }
}

fn spm(dir: &Path) -> PathBuf {
    let path = dir.join("bench.spm");
    let proto = ModelProto {
        pieces: (0..256)
            .map(|i| model_proto::SentencePiece {
                piece: Some(format!("p{i}")),
                score: Some(0.0),
                r#type: None,
            })
            .collect(),
        trainer_spec: None,
    };
    std::fs::write(&path, proto.encode_to_vec()).expect("write spm");
    path
}

fn bundle(model: &Path, spm: &Path, stop: i32, capacity: i32) -> Bundle {
    let mut b = Bundle::default();
    b.add_prefill_decode_model(model)
        .add_sentencepiece(Data::File(spm.to_path_buf()))
        .add_llm_metadata(&LlmMetadata {
            start_token: Some(token(1)),
            stop_tokens: vec![token(stop)],
            max_num_tokens: capacity,
            ..Default::default()
        });
    b
}

/// `bench --write-child MODEL SPM OUT`: write one bundle and exit (measured from outside).
fn child(args: &[String]) {
    let (model, spm, out) = (
        Path::new(&args[2]),
        Path::new(&args[3]),
        Path::new(&args[4]),
    );
    bundle(model, spm, 2, 128).write(out).expect("write bundle");
}

/// (median wall seconds, max peak RSS MB) of `cmd` over RUNS runs, under GNU time.
fn measure(cmd: &[&std::ffi::OsStr]) -> (f64, f64) {
    let mut walls = Vec::new();
    let mut peak: f64 = 0.0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%M"])
            .args(cmd)
            .output()
            .expect("/usr/bin/time runs");
        walls.push(start.elapsed().as_secs_f64());
        common::assert_succeeded(&out, &format!("{cmd:?}"));
        let text = String::from_utf8_lossy(&out.stderr);
        let kb: f64 = text
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(f64::NAN);
        peak = peak.max(kb / 1024.0);
    }
    walls.sort_by(f64::total_cmp);
    (walls[RUNS / 2], peak)
}

fn synthetic(dir: &Path) -> PathBuf {
    let path = dir.join("synthetic_1024mb.tflite");
    if !path.exists() {
        let mut spec = fixtures::no_signature();
        let n = i32::try_from(MODEL_BYTES / 4).expect("fits");
        spec.subgraphs[0].tensors.push(
            fixtures::t("huge/kernel", fixtures::dtype::FLOAT32, &[n])
                .data(vec![0x3f; MODEL_BYTES]),
        );
        std::fs::write(&path, fixtures::build(&spec)).expect("write synthetic model");
    }
    path
}

const GOOGLE_WRITER: &str = r#"
import sys
from litert_lm_builder import litertlm_builder as b
model, spm, meta, out = sys.argv[1:5]
builder = b.LitertLmFileBuilder()
builder.add_tflite_model(model, b.TfLiteModelType.PREFILL_DECODE)
builder.add_sentencepiece_tokenizer(spm)
builder.add_llm_metadata(meta)
with open(out, "wb") as f:
    builder.build(f)
"#;

fn writer(dir: &Path) {
    let model = synthetic(dir);
    let spm = spm(dir);
    let exe = std::env::current_exe().expect("bench executable");
    let ours = dir.join("ours.litertlm");
    let (ours_s, ours_mb) = measure(&[
        exe.as_os_str(),
        "--write-child".as_ref(),
        model.as_os_str(),
        spm.as_os_str(),
        ours.as_os_str(),
    ]);
    let size_mb = std::fs::metadata(&ours).expect("bundle").len() as f64 / (1 << 20) as f64;
    let copy = dir.join("copy.tflite");
    let (cp_s, cp_mb) = measure(&["cp".as_ref(), model.as_os_str(), copy.as_os_str()]);
    let py = python::python();
    let meta = dir.join("meta.textproto");
    std::fs::write(
        &meta,
        "start_token{token_ids{ids:1}} stop_tokens{token_ids{ids:2}} max_num_tokens:128\n",
    )
    .expect("write metadata");
    let theirs = dir.join("google.litertlm");
    let (g_s, g_mb) = measure(&[
        py.as_os_str(),
        "-c".as_ref(),
        GOOGLE_WRITER.as_ref(),
        model.as_os_str(),
        spm.as_os_str(),
        meta.as_os_str(),
        theirs.as_os_str(),
    ]);
    for p in [&ours, &copy, &theirs] {
        let _ = std::fs::remove_file(p);
    }
    println!("writer: a bundle of a {size_mb:.0} MB model (median of {RUNS} processes)");
    println!("  {:<34} {:>8} {:>9}", "", "wall s", "peak MB");
    println!(
        "  {:<34} {ours_s:>8.2} {ours_mb:>9.1}",
        "litert (Rust writer)"
    );
    println!(
        "  {:<34} {cp_s:>8.2} {cp_mb:>9.1}",
        "cp of the model (baseline)"
    );
    println!(
        "  {:<34} {g_s:>8.2} {g_mb:>9.1}",
        "litert-lm-builder 0.18.1 (Python)"
    );
    println!(
        "  ratios: time vs cp {:.2}, vs Google's writer {:.2}; peak RSS / bundle size {:.4}",
        ours_s / cp_s,
        ours_s / g_s,
        ours_mb / size_mb
    );
}

const RUNTIME_BENCH: &str = r#"
import json, sys
import litert_lm
litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
rows = []
for prefill, decode in [(8, 64), (32, 64)]:
    best = None
    for _ in range(5):
        info = litert_lm.Benchmark(model_path=sys.argv[1], backend=litert_lm.Backend.CPU(),
                                   prefill_tokens=prefill, decode_tokens=decode).run()
        if best is None or info.last_decode_tokens_per_second > best.last_decode_tokens_per_second:
            best = info
    rows.append({"prefill": prefill, "decode": decode, "init_s": best.init_time_in_second,
                 "ttft_s": best.time_to_first_token_in_second,
                 "prefill_tps": best.last_prefill_tokens_per_second,
                 "decode_tps": best.last_decode_tokens_per_second})
print(json.dumps(rows))
"#;

fn runtime(dir: &Path) {
    let litert = Path::new(env!("CARGO_BIN_EXE_litert"));
    let show = Command::new(litert)
        .args(["env", "show", "--json"])
        .output();
    let env: serde_json::Value = show
        .ok()
        .and_then(|o| serde_json::from_slice(&o.stdout).ok())
        .unwrap_or_default();
    let Some(worker) = env["python"]
        .as_str()
        .filter(|_| env["provisioned"] != false)
    else {
        println!("(no worker environment: run `litert env setup` for the LiteRT-LM benchmark)");
        return;
    };
    let toy = dir.join("toy");
    if !toy.join("READY").exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/litertlm/toy_llm.py");
        let ok = Command::new(worker)
            .arg(script)
            .arg(&toy)
            .env("TF_CPP_MIN_LOG_LEVEL", "3")
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "building the toy model failed");
    }
    let path = dir.join("toy.litertlm");
    bundle(&toy.join("toy.tflite"), &toy.join("toy.spm"), 2, 128)
        .write(&path)
        .expect("write toy bundle");
    print_runtime_bench(
        worker,
        &path,
        "toy model (2 layers, cache 128, vocab 64), bundled by the writer directly",
    );
    preset_bundle(dir, worker, litert);
}

/// LiteRT-LM's own benchmark on `bundle`, best of 5 per (prefill, decode) length.
fn print_runtime_bench(worker: &str, bundle: &Path, what: &str) {
    let out = Command::new(worker)
        .arg("-c")
        .arg(RUNTIME_BENCH)
        .arg(bundle)
        .output()
        .expect("run the LiteRT-LM benchmark");
    common::assert_succeeded(&out, "the LiteRT-LM benchmark");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON rows");
    println!("LiteRT-LM benchmark, {what}, CPU, best of 5");
    println!(
        "  {:>7} {:>6} {:>8} {:>8} {:>12} {:>11}",
        "prefill", "decode", "init s", "TTFT s", "prefill t/s", "decode t/s"
    );
    for r in rows.as_array().into_iter().flatten() {
        println!(
            "  {:>7} {:>6} {:>8.3} {:>8.4} {:>12.0} {:>11.0}",
            r["prefill"].as_u64().unwrap_or(0),
            r["decode"].as_u64().unwrap_or(0),
            r["init_s"].as_f64().unwrap_or(f64::NAN),
            r["ttft_s"].as_f64().unwrap_or(f64::NAN),
            r["prefill_tps"].as_f64().unwrap_or(f64::NAN),
            r["decode_tps"].as_f64().unwrap_or(f64::NAN)
        );
    }
}

/// Part 3: the flagship recipe end to end on the small trained Gemma preset of the tests
/// (`litert apply`: export, generation check, bundle, LiteRT-LM check), then LiteRT-LM's
/// benchmark on the bundle it wrote.
fn preset_bundle(dir: &Path, worker: &str, litert: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let presets = support::fixture_dir("tests/presets/build_presets.py");
    let project = dir.join("gemma_project");
    let _ = std::fs::remove_dir_all(&project);
    std::fs::create_dir_all(project.join("recipes")).expect("bench project");
    std::fs::create_dir_all(project.join(".git")).expect("bench project");
    let recipe = std::fs::read_to_string(root.join("recipes/gemma_int8.yaml"))
        .expect("flagship recipe")
        .replace("prefill: [32, 128]", "prefill: [8, 32]")
        .replace("capacity: 1024", "capacity: 128");
    std::fs::write(project.join("recipes/gemma_int8.yaml"), recipe).expect("write recipe");
    let preset = format!("preset={}", presets.join("trained_gemma").display());
    let start = Instant::now();
    let out = Command::new(litert)
        .args(["apply", "recipes/gemma_int8.yaml", "--set", &preset])
        .current_dir(&project)
        .output()
        .expect("litert apply");
    let seconds = start.elapsed().as_secs_f64();
    common::assert_succeeded(&out, "litert apply");
    let bundle = project.join("build/gemma_int8.litertlm");
    let size = std::fs::metadata(&bundle).map(|m| m.len()).unwrap_or(0);
    println!(
        "litert apply recipes/gemma_int8.yaml on the trained test Gemma (2 layers, hidden 64, vocab 42, int8 weights, cache 128): {seconds:.1} s including export, generation check, bundle and LiteRT-LM check; bundle {size} bytes"
    );
    print_runtime_bench(
        worker,
        &bundle,
        "trained test Gemma bundled by `litert apply`",
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--write-child") {
        child(&args);
        return;
    }
    let dir = python::cache_dir().join("bench-litertlm");
    std::fs::create_dir_all(&dir).expect("bench dir");
    writer(&dir);
    runtime(&dir);
}
