//! Generation exports measured (issue 14, "Measured"), every figure in one run:
//!
//! 1. decode time per step at position 16 and near the end of a 512-slot KV cache (target
//!    ratio ≤ 1.5), next to one call of the plain forward-pass export (`model.export`), whose
//!    cost grows with its window;
//! 2. decode tokens/s of the prefill/decode artifact (the worker's own `Runtime` over
//!    `ai_edge_litert` signature runners, XNNPACK, 1 and 2 threads) against Keras
//!    `generate()` (greedy) on CPU, medians of 3 whole generations;
//! 3. wall time and peak memory of the whole process tree (litert + worker, /proc sampled
//!    every 50 ms) of `litert apply` with the native and the converter writer, against each
//!    other and against a plain `model.export` of the same preset, as
//!    ratios and as multiples of the float32 weight bytes; and file sizes, with how many
//!    buffers hold a vocabulary-sized matrix (a tied embedding stored once or twice).
//!
//! For a tiny Gemma preset and a "wide" Gemma at Gemma 2B's width and head layout (hidden
//! 2048, 8 query heads, 1 KV head, head dim 256, FFW 2 × 16384): its vocabulary (at most
//! 256,000) and layer count are picked so the predicted peak (8× the float32 weights) leaves
//! 8 GiB of MemAvailable for the other jobs of a shared machine, and a run is killed if
//! MemAvailable falls under 3 GiB. `LITERT_BENCH_GEN_VOCAB` / `LITERT_BENCH_GEN_LAYERS`
//! force them. `LITERT_BENCH_GEN_WIDE=0` skips the wide model altogether (it is neither
//! built nor sized), so the tiny half runs in a few GB beside other jobs; the wide half
//! needs most of a 24 GB machine to itself.
//!
//! Run: `nice -n 10 cargo bench --bench generation` (both models) or
//! `LITERT_BENCH_GEN_WIDE=0 nice -n 10 cargo bench --bench generation` (tiny only). Models, a
//! scratch project (its own lock and snapshots) and artifacts live under
//! `target/bench-generation/`; the tables, with the load average at the start and the end,
//! are printed and written to `target/generation_bench.md`. `LITERT_PYTHON` picks the
//! interpreter, else the provisioned environment.

mod common;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CAPACITY: u64 = 512;
const GIB: f64 = (1u64 << 30) as f64;

fn main() {
    let root = common::root();
    let bin = common::litert();
    let python = common::worker_python();
    let work = root.join("target/bench-generation");
    let models = work.join("models");
    let project = work.join("project");
    std::fs::create_dir_all(project.join(".git")).expect("bench project");
    std::fs::create_dir_all(work.join("plain")).expect("bench dir");

    let wide = wide_enabled().then(wide_size);
    let mut gen_models = Command::new(&python);
    gen_models
        .arg(root.join("benches/support/gen_models.py"))
        .arg(&models);
    if let Some((vocab, layers)) = wide {
        gen_models.arg(vocab.to_string()).arg(layers.to_string());
    }
    let out = gen_models
        .stderr(Stdio::inherit())
        .output()
        .expect("gen_models.py");
    common::assert_succeeded(&out, "gen_models.py");
    let sizes: Value = serde_json::from_slice(&out.stdout).expect("gen_models.py JSON");

    // The machine may be shared: the tables say how loaded it was, at the start and the end.
    let mut md = format!("\nload average at start: {}\n", common::load_average());
    let mut runs = vec![("tiny_gemma".to_string(), "fp32")];
    if let Some((vocab, layers)) = wide {
        runs.push((format!("wide_gemma_v{vocab}_l{layers}"), "dynamic_range"));
    }
    for (name, variant) in &runs {
        let (name, variant) = (name.as_str(), *variant);
        let weight_bytes = sizes[name]["weight_bytes"].as_f64().expect("weight bytes");
        let preset = PathBuf::from(sizes[name]["path"].as_str().expect("path"));
        let params = sizes[name]["params"].as_u64().unwrap_or(0);
        eprintln!("== {name}: {params} parameters, {weight_bytes} float32 weight bytes");
        let tiny = name == "tiny_gemma";
        let variants: &[&str] = if tiny {
            &["fp32", "dynamic_range"]
        } else {
            &[variant]
        };

        // 3. Export: apply (check off, then on) against plain `model.export` at window 128.
        let mut rows = Vec::new();
        let mut artifacts = HashMap::new();
        for v in variants {
            let mut by_writer: HashMap<(&str, bool), (f64, u64)> = HashMap::new();
            for (writer, check) in [
                ("native", false),
                ("native", true),
                ("converter", false),
                ("converter", true),
            ] {
                let file = format!("{name}-{v}-{writer}-{check}.yaml");
                write_recipe(&project.join(&file), &preset, v, writer, check, tiny);
                let m = measure(
                    Command::new(&bin)
                        .args(["apply", "--json", "--force", &file])
                        .current_dir(&project)
                        .env("LITERT_PYTHON", &python)
                        .env("LITERT_NO_PROGRESS", "1"),
                );
                let Some(m) = m else {
                    push(
                        &mut rows,
                        format!(
                            "| {name} | {v} | `litert apply` (check {}) | killed: MemAvailable under 3 GiB | | | |\n",
                            on_off(check)
                        ),
                    );
                    continue;
                };
                let report: Value = serde_json::from_slice(&m.stdout).unwrap_or(Value::Null);
                let a = &report["artifacts"][0];
                assert_eq!(
                    a["status"],
                    "built",
                    "{file}: {a:#}\n{}",
                    String::from_utf8_lossy(&m.stderr)
                );
                let path = project.join(a["output"].as_str().expect("output"));
                push(
                    &mut rows,
                    row(
                        &python,
                        name,
                        v,
                        &format!("`litert apply` ({writer} writer, check {})", on_off(check)),
                        &m,
                        &sizes[name],
                        &path,
                    ),
                );
                by_writer.insert((writer, check), (m.wall, m.peak));
                if writer == "native" {
                    artifacts.insert((v.to_string(), check), (m, path));
                }
            }
            for check in [false, true] {
                if let (Some(n), Some(c)) = (
                    by_writer.get(&("native", check)),
                    by_writer.get(&("converter", check)),
                ) {
                    push(
                        &mut rows,
                        format!(
                            "| {name} | {v} | ratio native / converter writer (check {}) | | {:.2} | {:.2} | |\n",
                            on_off(check),
                            n.0 / c.0,
                            n.1 as f64 / c.1 as f64
                        ),
                    );
                }
            }
            let plain = work.join(format!("plain/{name}-{v}-w128.tflite"));
            let mut cmd = Command::new(&python);
            cmd.arg(root.join("benches/support/plain_export.py"))
                .arg(&preset)
                .arg(&plain)
                .arg("128")
                .arg(v);
            match measure(&mut cmd) {
                Some(m) => {
                    assert!(
                        m.ok,
                        "plain export failed: {}",
                        String::from_utf8_lossy(&m.stderr)
                    );
                    push(
                        &mut rows,
                        row(
                            &python,
                            name,
                            v,
                            "plain `model.export`, window 128",
                            &m,
                            &sizes[name],
                            &plain,
                        ),
                    );
                    for check in [false, true] {
                        if let Some((a, _)) = artifacts.get(&(v.to_string(), check)) {
                            push(
                                &mut rows,
                                format!(
                                    "| {name} | {v} | ratio apply (check {}) / plain | | {:.2} | {:.2} | |\n",
                                    on_off(check),
                                    a.wall / m.wall,
                                    a.peak as f64 / m.peak as f64
                                ),
                            );
                        }
                    }
                }
                None => push(
                    &mut rows,
                    format!(
                        "| {name} | {v} | plain `model.export` | killed: MemAvailable under 3 GiB | | | |\n"
                    ),
                ),
            }
        }
        let _ = write!(
            md,
            "\n### {name}: {params} parameters, float32 weights {}\n\n| model | mode | export | wall | vs plain | peak RSS of the process tree (× float32 weights) | file (vocab-sized buffers, ×tensors sharing each) |\n|---|---|---|---:|---:|---:|---:|\n",
            decimal_bytes(weight_bytes)
        );
        for r in &rows {
            md.push_str(r);
        }

        // 1 and 2. Speed, in one process, against the forward-pass exports.
        let Some((_, artifact)) = artifacts.get(&(variant.to_string(), true)) else {
            continue;
        };
        let mut forward = serde_json::Map::new();
        let windows: &[u64] = if tiny { &[16, 128, CAPACITY] } else { &[128] };
        for w in windows {
            let plain = work.join(format!("plain/{name}-{variant}-w{w}.tflite"));
            if !plain.exists() {
                let ok = Command::new(&python)
                    .arg(root.join("benches/support/plain_export.py"))
                    .arg(&preset)
                    .arg(&plain)
                    .arg(w.to_string())
                    .arg(variant)
                    .status()
                    .expect("plain export")
                    .success();
                assert!(ok, "plain export at window {w} failed");
            }
            forward.insert(w.to_string(), json!(plain));
        }
        let spec = json!({
            "worker": root.join("src/worker/python"),
            "preset": preset,
            "artifact": artifact,
            "capacity": CAPACITY,
            "prefill": [32, 128],
            "new_tokens": if tiny { 120 } else { 32 },
            "runs": if tiny { 400 } else { 30 },
            "forward": forward,
            "keras": true,
        });
        let spec_path = work.join(format!("{name}-speed.json"));
        std::fs::write(&spec_path, spec.to_string()).expect("spec");
        let out = Command::new(&python)
            .arg(root.join("benches/support/gen_speed.py"))
            .arg(&spec_path)
            .stderr(Stdio::inherit())
            .output()
            .expect("gen_speed.py");
        common::assert_succeeded(&out, "gen_speed.py");
        let s: Value = serde_json::from_slice(&out.stdout).expect("gen_speed JSON");
        let t = speed_table(name, variant, &s);
        eprint!("{t}");
        md.push_str(&t);
    }
    let _ = writeln!(md, "\nload average at end: {}", common::load_average());
    if wide.is_none() {
        md.push_str("\n### wide Gemma (Gemma 2B width): skipped (`LITERT_BENCH_GEN_WIDE=0`)\n");
    }
    print!("{md}");
    let _ = std::fs::write(root.join("target/generation_bench.md"), &md);
}

/// `bytes` in decimal units, so a 55 kB tiny model does not read as "0.000 GB".
fn decimal_bytes(bytes: f64) -> String {
    match bytes {
        b if b >= 1e9 => format!("{:.2} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        b => format!("{:.1} kB", b / 1e3),
    }
}

/// Keeps a table row and shows it at once: a long run reports what it has so far.
fn push(rows: &mut Vec<String>, row: String) {
    eprint!("{row}");
    rows.push(row);
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// False when `LITERT_BENCH_GEN_WIDE` is `0` (or `false`/`no`/`off`): run the tiny preset only.
fn wide_enabled() -> bool {
    !std::env::var("LITERT_BENCH_GEN_WIDE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "0" | "false" | "no" | "off"
        )
    })
}

/// The wide model's vocabulary and layer count: Gemma 2B's (256,000, as many layers as fit
/// up to 2) when the predicted peak fits, else a smaller vocabulary at one layer.
fn wide_size() -> (u64, u64) {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    if let (Some(v), Some(l)) = (
        env("LITERT_BENCH_GEN_VOCAB"),
        env("LITERT_BENCH_GEN_LAYERS"),
    ) {
        return (v, l);
    }
    let avail = mem_available() as f64;
    // Predicted peak 8× the float32 weights (7× measured in issue 14, plus a margin), and
    // 8 GiB left for everyone else.
    let budget = (avail - 8.0 * GIB) / 8.0;
    let per_layer = 4.0 * (2048.0 * 256.0 * 18.0 + 2048.0 * 32768.0 * 1.5);
    let mut layers = 2u64;
    loop {
        let left = budget - per_layer * layers as f64;
        let vocab = ((left / (4.0 * 2048.0)) as u64 / 16_000 * 16_000).min(256_000);
        if vocab >= 32_000 || layers == 1 {
            let vocab = vocab.max(16_000);
            eprintln!(
                "MemAvailable {:.1} GiB: wide Gemma with vocabulary {vocab} and {layers} layer(s)",
                avail / GIB
            );
            return (vocab, layers);
        }
        layers -= 1;
    }
}

fn mem_available() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn write_recipe(path: &Path, preset: &Path, variant: &str, writer: &str, check: bool, tiny: bool) {
    let quant = if variant == "fp32" {
        String::new()
    } else {
        format!("quantization: {{mode: {variant}}}\n")
    };
    let steps = if tiny { 8 } else { 4 };
    let text = format!(
        "version: 1\nname: {}\nmodel:\n  preset: {{path: {}, task: CausalLM}}\n{quant}generation:\n  writer: {writer}\n  prefill: [32, 128]\n  capacity: {CAPACITY}\n  check:\n    enabled: {check}\n{}output: out/{{{{ name }}}}.tflite\n",
        path.file_stem()
            .unwrap()
            .to_string_lossy()
            .replace('.', "_"),
        preset.display(),
        if check {
            format!("    prompts: [\"the quick brown fox\", \"red kites\"]\n    steps: {steps}\n")
        } else {
            String::new()
        }
    );
    std::fs::write(path, text).expect("write recipe");
}

struct Measured {
    wall: f64,
    peak: u64,
    ok: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs `cmd` in its own process group, sampling the RSS of its whole process tree every
/// 50 ms; None if it was killed because MemAvailable fell under 3 GiB.
fn measure(cmd: &mut Command) -> Option<Measured> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let start = Instant::now();
    let mut child = cmd
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .process_group(0)
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        peak = peak.max(tree_rss(pid));
        if mem_available() < 3 * (1 << 30) {
            // Our own child's group: the worker and everything it started.
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{pid}")])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let wall = start.elapsed().as_secs_f64();
    let status = status?;
    Some(Measured {
        wall,
        peak,
        ok: status.success(),
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    })
}

/// Resident bytes of `root` and all its descendants (from /proc).
fn tree_rss(root: u32) -> u64 {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: comm may hold spaces, so split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    let mut total = 0;
    while let Some(pid) = stack.pop() {
        if !seen.insert(pid) {
            continue;
        }
        let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        total += pages * 4096;
        stack.extend(children.get(&pid).into_iter().flatten().copied());
    }
    total
}

/// One export row: wall time, peak, the file's size and its vocabulary-sized buffers.
fn row(
    python: &str,
    name: &str,
    variant: &str,
    what: &str,
    m: &Measured,
    sizes: &Value,
    file: &Path,
) -> String {
    let weight_bytes = sizes["weight_bytes"].as_f64().unwrap_or(1.0);
    let elements = sizes["embedding_elements"].as_u64().unwrap_or(0);
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    format!(
        "| {name} | {variant} | {what} | {:.1} s | | {:.2} GiB ({:.2}×) | {:.1} MB ({}) |\n",
        m.wall,
        m.peak as f64 / GIB,
        m.peak as f64 / weight_bytes,
        size as f64 / 1e6,
        vocab_buffers(python, file, elements)
    )
}

/// How many distinct buffers of the file hold an embedding-sized matrix (`elements` =
/// vocabulary × hidden), read from the FlatBuffer by `support/vocab_buffers.py` (`litert
/// inspect` lists only the five largest weights and no buffer indices): 2 means the tied
/// embedding is stored twice. `×k` = the number of tensors (over all signatures) that share
/// the buffer.
fn vocab_buffers(python: &str, file: &Path, elements: u64) -> String {
    let out = Command::new(python)
        .arg(common::root().join("benches/support/vocab_buffers.py"))
        .arg(file)
        .arg(elements.to_string())
        .stderr(Stdio::inherit())
        .output()
        .expect("vocab_buffers.py");
    if !out.status.success() || !file.exists() {
        return "?".into();
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let buffers = v.as_array().cloned().unwrap_or_default();
    let each: Vec<String> = buffers
        .iter()
        .map(|b| {
            format!(
                "{} {} ×{}",
                b["dtype"].as_str().unwrap_or("?").to_ascii_lowercase(),
                b["shape"],
                b["tensors"]
            )
        })
        .collect();
    format!("{}: {}", buffers.len(), each.join(", "))
}

fn speed_table(name: &str, variant: &str, s: &Value) -> String {
    let mut t = format!(
        "\n#### {name} ({variant} artifact, capacity {CAPACITY}): decode vs forward pass\n\n| threads | decode ms at pos 16 | decode ms at pos {} | ratio (target ≤ 1.5) | artifact tokens/s | Keras `generate()` tokens/s (cache {}) | forward-pass export, ms per call by window |\n|---:|---:|---:|---:|---:|---:|---|\n",
        CAPACITY - 2,
        s["keras_cache_length"]
    );
    for th in ["1", "2"] {
        let d = &s["decode"][th];
        let fwd: Vec<String> = s["forward_ms"]
            .as_object()
            .map(|m| {
                let mut v: Vec<(u64, f64)> = m
                    .iter()
                    .map(|(w, x)| (w.parse().unwrap_or(0), x[th].as_f64().unwrap_or(0.0)))
                    .collect();
                v.sort_by_key(|x| x.0);
                v.iter().map(|(w, ms)| format!("{w}: {ms:.2}")).collect()
            })
            .unwrap_or_default();
        let _ = writeln!(
            t,
            "| {th} | {:.3} | {:.3} | {:.2} | {:.1} | {} | {} |",
            d["ms_at"]["16"].as_f64().unwrap_or(0.0),
            d["ms_at"][(CAPACITY - 2).to_string()]
                .as_f64()
                .unwrap_or(0.0),
            d["ratio_end_vs_16"].as_f64().unwrap_or(0.0),
            s["artifact_tokens_per_s"][th].as_f64().unwrap_or(0.0),
            if th == "1" {
                format!("{:.1}", s["keras_tokens_per_s"].as_f64().unwrap_or(0.0))
            } else {
                "(TF default threads)".into()
            },
            fwd.join(", ")
        );
    }
    t
}
