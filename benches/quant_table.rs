//! The quantization comparison table of `docs/quantization.md`, measured (issue 6): one
//! recipe with a variant per mode, built by `litert apply`, for
//!
//! 1. an MLP trained on scikit-learn's handwritten digits (`data/digits.npz`): size,
//!    interpreter latency, and accuracy on the held-out split as `apply` measures it;
//! 2. MobileNetV2 at 224x224 with random weights, where compute dominates the latency
//!    (accuracy n/a).
//!
//! Latency is the median of many `invoke()` calls in one Python process on one thread with
//! the interpreter's default (XNNPACK) delegate, all files in the same run.
//!
//! Run: `cargo bench --bench quant_table`. Prints the Markdown
//! tables and writes them to `target/quant_table.md`. `LITERT_PYTHON` picks the
//! interpreter, else the provisioned environment; `QUANT_TABLE_RUNS` the number of timed
//! runs (default 2000 for the MLP, a tenth of it for MobileNet).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn main() {
    let root = common::root();
    let bin = common::litert();
    let python = common::worker_python();
    let runs: usize = std::env::var("QUANT_TABLE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let dir = root.join("target/bench-quant-table");
    if !dir.join("READY").exists() {
        let status = Command::new(&python)
            .arg(root.join("tests/quant/build_digits.py"))
            .arg(&dir)
            .arg("--mobilenet")
            .env("TF_CPP_MIN_LOG_LEVEL", "3")
            .status()
            .expect("the worker interpreter runs");
        assert!(status.success(), "build_digits.py failed");
    }
    let mut text = String::new();
    let digits = apply(&bin, &python, &root, &dir, "tests/quant/digits.yaml");
    let latency = latency_of(&python, &root, &digits, runs);
    text.push_str(&table(
        "digits MLP (64-128-64-10, trained; 359 held-out samples)",
        &digits,
        &latency,
        true,
    ));
    let mobilenet = apply(&bin, &python, &root, &dir, "tests/quant/mobilenet.yaml");
    let latency = latency_of(&python, &root, &mobilenet, (runs / 10).max(20));
    text.push_str(&table(
        "MobileNetV2 224x224 (random weights)",
        &mobilenet,
        &latency,
        false,
    ));
    print!("{text}");
    let _ = std::fs::write(root.join("target/quant_table.md"), &text);
}

/// `litert apply --json` of one recipe: artifact id -> report entry.
fn apply(
    bin: &Path,
    python: &str,
    root: &Path,
    dir: &Path,
    recipe: &str,
) -> BTreeMap<String, Value> {
    // Its own project (a `.git` marker under `target/`), so the bench's lock entries and
    // snapshots stay out of the repository's.
    let project = dir.join("project");
    std::fs::create_dir_all(project.join(".git")).expect("bench project");
    let src = root.join(recipe);
    let dest = project.join(recipe);
    std::fs::create_dir_all(dest.parent().expect("recipe dir")).expect("bench project");
    for entry in std::fs::read_dir(src.parent().expect("recipe dir"))
        .expect("recipes")
        .flatten()
    {
        let _ = std::fs::copy(entry.path(), dest.with_file_name(entry.file_name()));
    }
    let out = Command::new(bin)
        .args(["apply", "--json", "--force", recipe])
        .current_dir(&project)
        .env("LITERT_PYTHON", python)
        .env("LITERT_NO_PROGRESS", "1")
        .env("LITERT_QUANT_DIR", dir)
        .output()
        .expect("litert apply");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "apply --json printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut arts = BTreeMap::new();
    for a in v["artifacts"].as_array().expect("artifacts") {
        arts.insert(
            a["variant"].as_str().unwrap_or_default().to_string(),
            a.clone(),
        );
    }
    arts
}

/// Latency of every artifact, measured in one process so they compare.
fn latency_of(
    python: &str,
    root: &Path,
    arts: &BTreeMap<String, Value>,
    runs: usize,
) -> BTreeMap<String, Value> {
    let files: Vec<String> = arts
        .values()
        .filter(|a| a["status"] == "built")
        .map(|a| {
            root.join(a["output"].as_str().unwrap_or_default())
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let out = Command::new(python)
        .arg(root.join("tests/quant/latency.py"))
        .arg(runs.to_string())
        .args(&files)
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .output()
        .expect("latency.py");
    common::assert_succeeded(&out, "latency.py");
    let by_file: BTreeMap<String, Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    arts.iter()
        .map(|(variant, a)| {
            let file = root
                .join(a["output"].as_str().unwrap_or_default())
                .to_string_lossy()
                .into_owned();
            (
                variant.clone(),
                by_file.get(&file).cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// Variants in the order of the guide's table, labelled by the recipe's mode (the guide's
/// names are mapped once, in docs/quantization.md).
const ORDER: [(&str, &str); 8] = [
    ("fp32", "`none`"),
    ("dynamic_range", "`dynamic_range`"),
    ("float16", "`float16`"),
    ("int8_fallback", "`int8_fallback`"),
    ("full_int8", "`full_int8`"),
    ("full_int8_int8_io", "`full_int8`, `io: int8`"),
    ("full_int8_uint8_io", "`full_int8`, `io: uint8`"),
    ("int16x8", "`int16x8`"),
];

#[allow(clippy::cast_precision_loss)]
fn table(
    title: &str,
    arts: &BTreeMap<String, Value>,
    latency: &BTreeMap<String, Value>,
    with_accuracy: bool,
) -> String {
    let base_size = arts["fp32"]["size_bytes"].as_f64().unwrap_or(1.0);
    let base_latency = latency["fp32"]["median_us"].as_f64().unwrap_or(1.0);
    let mut out = format!(
        "\n### {title}\n\n| mode | size | vs float32 | latency (median) | vs float32 | accuracy (held-out) | top-1 agreement with float |\n|---|---:|---:|---:|---:|---:|---:|\n"
    );
    for (variant, label) in ORDER {
        let Some(a) = arts.get(variant) else { continue };
        if a["status"] != "built" {
            let why = a["message"]
                .as_str()
                .or(a["reasons"][0].as_str())
                .unwrap_or("not built")
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            out.push_str(&format!(
                "| {label} | {} at `{}`: {why} | | | | | |\n",
                a["status"].as_str().unwrap_or_default(),
                a["stage"].as_str().unwrap_or("gates")
            ));
            continue;
        }
        let size = a["size_bytes"].as_f64().unwrap_or(0.0);
        let l = &latency[variant];
        let median = l["median_us"].as_f64().unwrap_or(0.0);
        let acc = &a["result"]["accuracy"];
        let (accuracy, agreement) = if with_accuracy {
            (
                acc["labels"]["artifact_accuracy"]
                    .as_f64()
                    .map_or("n/a".to_string(), |v| format!("{:.2}%", v * 100.0)),
                acc["outputs"][0]["top1_agreement"]
                    .as_f64()
                    .map_or("n/a".to_string(), |v| format!("{:.2}%", v * 100.0)),
            )
        } else {
            ("n/a".to_string(), "n/a".to_string())
        };
        out.push_str(&format!(
            "| {label} | {:.1} KiB | {:.2}× | {} | {:.2}× | {accuracy} | {agreement} |\n",
            size / 1024.0,
            base_size / size,
            human_us(median),
            base_latency / median,
        ));
    }
    out
}

fn human_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}
