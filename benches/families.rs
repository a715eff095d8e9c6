//! Each language-model family's export measured (issue 22, "Measured"), every figure in one
//! run: for the trained test presets of Gemma, Gemma 3, Llama 3 and Qwen 3
//! (`tests/presets/build_presets.py`), in float32, int8 (`dynamic_range`) and int4 (blocks of
//! 32 and per channel, with the default int8 embedding table and with `embedding: int4`), all
//! written by the native writer and bundled by `litert apply`:
//!
//! - file bytes, and weight bytes (every constant buffer, `litert inspect --json`) against
//!   int8's;
//! - teacher-forced top-1 agreement with Keras and the perplexity ratio on held-out text
//!   (`generation.check.corpus`: sentences of the presets' word list, seeded apart from
//!   their training sentences);
//! - LiteRT-LM decode tokens/s of the bundle (`litert_lm.Benchmark`, CPU, 1 and 2 threads,
//!   prefill 8, decode 64, best of 3).
//!
//! The recipe's gates are opened (every variant is written and measured, whatever its
//! agreement): the table shows where the default gates would stop one.
//!
//! `LITERT_BENCH_FAMILIES_WIDE=1` adds a random Gemma 3 at Gemma 3 1B's width (bfloat16,
//! 0.96 B parameters, `benches/support/gemma3_1b_width.py`, built once, 2 GB; its rows take
//! about as long as all the others and need ~12 GB free); `LITERT_BENCH_FAMILIES=a,b` measures only
//! the families so labelled (`gemma`, `gemma3`, `llama3`, `qwen3`, `gemma3_1b_width`);
//! `LITERT_BENCH_FAMILIES_VARIANTS=a,b` only the variants so labelled (keep `int8` for the
//! ratios).
//!
//! Run: `nice -n 10 cargo bench --bench families`. The presets are the tests' (built by the
//! provisioned environment once per version of their script, `target/fixtures-presets-*`);
//! the scratch project and the artifacts live under `target/bench-families/`; the table is
//! printed and written to `target/families_bench.md`. `LITERT_PYTHON` picks the interpreter
//! of the held-out text and LiteRT-LM's benchmark, else the provisioned environment.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::process::Command;

use serde_json::Value;

/// (family, test preset)
const FAMILIES: &[(&str, &str)] = &[
    ("gemma", "trained_gemma"),
    ("gemma3", "trained_gemma3"),
    ("llama3", "trained_llama3"),
    ("qwen3", "trained_qwen3"),
];

/// (variant, its recipe keys)
const VARIANTS: &[(&str, &str)] = &[
    ("float32", "{}"),
    ("int8", "{quantization: {mode: dynamic_range}}"),
    (
        "int4_b32",
        "{quantization: {mode: dynamic_int4, block_size: 32}}",
    ),
    ("int4_channel", "{quantization: {mode: dynamic_int4}}"),
    (
        "int4_b32_int4_table",
        "{quantization: {mode: dynamic_int4, block_size: 32, embedding: int4}}",
    ),
    (
        "int4_channel_int4_table",
        "{quantization: {mode: dynamic_int4, embedding: int4}}",
    ),
];

const DECODE_BENCH: &str = r#"
import json, sys
import litert_lm
litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
out = {}
for threads in (1, 2):
    best = 0.0
    for _ in range(3):
        info = litert_lm.Benchmark(model_path=sys.argv[1], backend=litert_lm.Backend.CPU(thread_count=threads),
                                   prefill_tokens=8, decode_tokens=64).run()
        best = max(best, info.last_decode_tokens_per_second)
    out[str(threads)] = best
print(json.dumps(out))
"#;

const HELD_OUT: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
import build_presets
print("\n".join(build_presets.sentences(60, 99)))
"#;

/// LiteRT-LM's benchmark leaves `<bundle>_<time>_<size>.xnnpack_cache` files beside the
/// bundle (the size of its weights each): remove them.
fn remove_xnnpack_caches(bundle: &std::path::Path) {
    let (Some(dir), Some(name)) = (bundle.parent(), bundle.file_name()) else {
        return;
    };
    let name = name.to_string_lossy().into_owned();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with(&name) && file.ends_with(".xnnpack_cache") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The random Gemma 3 at 1B's width, built once under `dir` (in a scratch directory renamed
/// when complete, so an interrupted build is not mistaken for a preset).
fn wide_gemma3(root: &std::path::Path, python: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let preset = dir.join("gemma3_1b_width");
    if !preset.join("model.weights.h5").exists() {
        let scratch = dir.join("gemma3_1b_width.partial");
        let _ = std::fs::remove_dir_all(&scratch);
        common::output(
            Command::new(python)
                .arg(root.join("benches/support/gemma3_1b_width.py"))
                .arg(&scratch)
                .arg(root.join("tests/presets")),
            "building the Gemma 3 1B-width preset",
        );
        std::fs::rename(&scratch, &preset).expect("the Gemma 3 1B-width preset");
    }
    preset
}

fn main() {
    let root = common::root();
    let litert = common::litert();
    let python = common::worker_python();
    let dir = root.join("target/bench-families");
    let presets = support::fixture_dir("tests/presets/build_presets.py");
    let project = dir.join("project");
    let _ = std::fs::remove_dir_all(&project);
    std::fs::create_dir_all(project.join(".git")).expect("bench project");
    let text = common::output(
        Command::new(&python)
            .arg("-c")
            .arg(HELD_OUT)
            .arg(root.join("tests/presets"))
            .env("TF_CPP_MIN_LOG_LEVEL", "3"),
        "writing the held-out text",
    );
    std::fs::write(project.join("held_out.txt"), text).expect("held-out text");
    let mut families: Vec<(&str, std::path::PathBuf)> = FAMILIES
        .iter()
        .map(|(family, preset)| (*family, presets.join(preset)))
        .collect();
    if std::env::var_os("LITERT_BENCH_FAMILIES_WIDE").is_some_and(|v| v == "1") {
        families.push(("gemma3_1b_width", wide_gemma3(&root, &python, &dir)));
    }
    if let Ok(only) = std::env::var("LITERT_BENCH_FAMILIES") {
        families.retain(|(family, _)| only.split(',').any(|o| o == *family));
    }
    let variants: Vec<(&str, &str)> = match std::env::var("LITERT_BENCH_FAMILIES_VARIANTS") {
        Ok(only) => VARIANTS
            .iter()
            .copied()
            .filter(|(v, _)| only.split(',').any(|o| o == *v))
            .collect(),
        Err(_) => VARIANTS.to_vec(),
    };
    let load_before = common::load_average();

    let mut table = String::from(
        "| family | variant | file bytes | weight bytes | vs int8 | corpus top-1 | perplexity ratio | decode t/s, 1 thread | 2 threads |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (family, preset) in families {
        let listed: String = variants
            .iter()
            .map(|(v, keys)| format!("  {v}: {keys}\n"))
            .collect();
        let recipe = format!(
            "version: 1\nname: {family}\nmodel:\n  preset: {{path: {}, task: CausalLM}}\ngeneration:\n  prefill: [8, 32]\n  capacity: 128\n  check:\n    prompts: [\"the quick brown fox\", \"children play with red kites\"]\n    steps: 8\n    min_top1_agreement: 0.0\n    corpus: {{file: held_out.txt, min_top1_agreement: 0.0, max_perplexity_ratio: 1000}}\n  bundle: {{}}\noutput: out/{{{{ name }}}}-{{{{ variant }}}}.tflite\nvariants:\n{listed}",
            preset.display()
        );
        let file = format!("{family}.yaml");
        std::fs::write(project.join(&file), recipe).expect("recipe");
        let out = common::output(
            Command::new(&litert)
                .args(["apply", "--json", &file])
                .current_dir(&project),
            &format!("litert apply {file}"),
        );
        let report: Value = serde_json::from_slice(&out).expect("apply --json");
        let artifacts = report["artifacts"].as_array().expect("artifacts");
        let mut rows = Vec::new();
        for (variant, _) in &variants {
            let id = format!("{family}:{variant}");
            let a = artifacts
                .iter()
                .find(|a| a["id"] == id.as_str())
                .unwrap_or_else(|| panic!("{id} not in the report"));
            let tflite = project.join(a["output"].as_str().expect("output"));
            let info: Value = serde_json::from_slice(&common::output(
                Command::new(&litert)
                    .arg("inspect")
                    .arg("--json")
                    .arg(&tflite),
                "litert inspect",
            ))
            .expect("inspect --json");
            let corpus = &a["result"]["generation"]["check"]["corpus"];
            let bundle = project.join(a["bundle"]["output"].as_str().expect("bundle"));
            let speed: Value = serde_json::from_slice(&common::output(
                Command::new(&python)
                    .arg("-c")
                    .arg(DECODE_BENCH)
                    .arg(&bundle),
                "LiteRT-LM benchmark",
            ))
            .expect("benchmark JSON");
            rows.push((
                *variant,
                info["size_bytes"].as_u64().unwrap_or(0),
                info["weights"]["total_bytes"].as_u64().unwrap_or(0),
                corpus["top1_agreement"].as_f64().unwrap_or(f64::NAN),
                corpus["perplexity_ratio"].as_f64().unwrap_or(f64::NAN),
                speed["1"].as_f64().unwrap_or(f64::NAN),
                speed["2"].as_f64().unwrap_or(f64::NAN),
            ));
            remove_xnnpack_caches(&bundle);
        }
        let int8 = rows
            .iter()
            .find(|r| r.0 == "int8")
            .map_or(f64::NAN, |r| r.2 as f64);
        for (variant, file, weights, top1, ratio, t1, t2) in rows {
            let _ = writeln!(
                table,
                "| {family} | {variant} | {file} | {weights} | {:.2} | {:.3} | {ratio:.4} | {t1:.0} | {t2:.0} |",
                weights as f64 / int8,
                top1
            );
        }
    }
    let text = format!(
        "{table}\nload average {load_before} at the start, {} at the end\n",
        common::load_average()
    );
    println!("{text}");
    std::fs::write(root.join("target/families_bench.md"), &text).expect("write the table");
}
