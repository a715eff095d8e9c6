//! The native runtime through the real binary: golden outputs recorded by `apply` and
//! re-run by `litert test` without Python, `litert run` against Keras' reference outputs and
//! its refusals, and `litert bench` of a model and of a recipe. One scratch project (a float
//! and a full-int8 variant of the classifier) is applied once per test binary; tests that
//! change files work in copies of it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::support::{Output, TestContext, copy_tree};
use litert::runtime::tensor::{Dtype, Tensor, npz_bytes, read_npz};

const RECIPE: &str = "version: 1\nname: clf\nmodel: {keras: models/classifier.keras}\n\
input_signature:\n  - {name: image, shape: [1, 28, 28, 1], dtype: float32}\n\
output: build/clf-{{ variant }}.tflite\n\
variants:\n  fp32: {}\n  int8:\n    quantization: {mode: full_int8, io: int8}\n    calibration: {npz: data/calibration.npz, samples: 16}\n";

/// The applied project, built once.
fn applied() -> &'static Path {
    static PROJECT: OnceLock<TestContext> = OnceLock::new();
    PROJECT
        .get_or_init(|| {
            let ctx = TestContext::new();
            ctx.copy("models/classifier.keras");
            ctx.copy("data/classifier_calibration.npz");
            std::fs::rename(
                ctx.join("data/classifier_calibration.npz"),
                ctx.join("data/calibration.npz"),
            )
            .unwrap();
            std::fs::write(ctx.join("recipe.yaml"), RECIPE).unwrap();
            let out = ctx.litert(&["apply", "recipe.yaml"]);
            assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
            ctx
        })
        .path()
}

/// A copy of the applied project.
fn copy() -> TestContext {
    let ctx = TestContext::new();
    copy_tree(applied(), ctx.path());
    ctx
}

fn golden(dir: &Path, id: &str) -> Vec<(String, Tensor)> {
    let f = std::fs::File::open(dir.join(format!("snapshots/{id}.golden.npz"))).unwrap();
    read_npz(f).unwrap()
}

fn run(project: &TestContext, args: &[&str]) -> Output {
    project.litert(args)
}

/// The `error:` lines of stderr (LiteRT itself logs INFO lines there with `-v`).
fn errors(out: &Output) -> String {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn apply_records_golden_outputs_beside_the_snapshot() {
    let dir = applied();
    for id in ["clf-fp32", "clf-int8"] {
        let arrays = golden(dir, id);
        let names: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"0/in/image"), "{names:?}");
        assert!(names.contains(&"0/out/probs"), "{names:?}");
        let record =
            std::fs::read_to_string(dir.join(format!("snapshots/{id}.golden.json"))).unwrap();
        assert!(record.contains("\"parity_max_abs_error\""), "{record}");
    }
    // The int8 variant's golden inputs are what the artifact takes: quantized int8.
    let int8 = golden(dir, "clf-int8");
    let (_, image) = int8.iter().find(|(n, _)| n == "0/in/image").unwrap();
    assert_eq!(image.dtype, Dtype::I8);
}

#[test]
fn litert_test_reruns_golden_outputs_without_python() {
    let p = copy();
    // No interpreter on PATH and none to provision from: anything starting Python fails.
    let out = p.litert_with(
        &["test", "recipe.yaml"],
        &[
            ("PATH", "/nonexistent"),
            ("LITERT_BASE_PYTHON", "/nonexistent/python3"),
        ],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout
            .matches("golden outputs: 4 sample(s) re-run natively")
            .count(),
        2,
        "{}",
        out.stdout
    );

    // New behaviour behind the same signature: the reference no longer holds.
    let path = p.path().join("snapshots/clf-fp32.golden.npz");
    let mut arrays = golden(p.path(), "clf-fp32");
    for (name, t) in &mut arrays {
        if name == "1/out/probs" {
            let shifted: Vec<u8> = t
                .bytes
                .chunks_exact(4)
                .flat_map(|c| (f32::from_le_bytes(c.try_into().unwrap()) + 0.5).to_le_bytes())
                .collect();
            t.bytes = shifted;
        }
    }
    std::fs::write(&path, npz_bytes(&arrays).unwrap()).unwrap();
    let out = run(&p, &["test", "recipe.yaml", "--json"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let fp32 = v["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "clf:fp32")
        .unwrap()
        .clone();
    assert_eq!(fp32["golden"]["ok"], false, "{fp32:#}");
    let reason = fp32["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains("no longer reproduces its golden outputs")
            && reason.contains("`probs` max abs error 5.000e-1"),
        "{reason}"
    );
}

#[test]
fn run_reproduces_the_keras_reference() {
    let p = copy();
    let arrays = golden(p.path(), "clf-fp32");
    let input = arrays
        .iter()
        .find(|(n, _)| n == "0/in/image")
        .unwrap()
        .1
        .clone();
    let reference = arrays
        .iter()
        .find(|(n, _)| n == "0/out/probs")
        .unwrap()
        .1
        .clone();
    std::fs::write(
        p.path().join("in.npz"),
        npz_bytes(&[("image".to_string(), input)]).unwrap(),
    )
    .unwrap();
    let out = run(
        &p,
        &[
            "run",
            "build/clf-fp32.tflite",
            "--input",
            "in.npz",
            "--output",
            "out.npz",
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["signature"], "serving_default");
    assert_eq!(v["runtime"]["kernels"], "xnnpack");
    assert_eq!(v["outputs"][0]["shape"], serde_json::json!([1, 10]));
    let got = read_npz(std::fs::File::open(p.path().join("out.npz")).unwrap()).unwrap();
    assert_eq!(got[0].0, "probs");
    let max = got[0]
        .1
        .to_f64()
        .iter()
        .zip(reference.to_f64())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f64, f64::max);
    assert!(max < 1e-5, "max |Δ| {max}");
}

fn write_npz(dir: &Path, name: &str, arrays: &[(&str, Dtype, Vec<usize>)]) -> PathBuf {
    let tensors: Vec<(String, Tensor)> = arrays
        .iter()
        .map(|(n, dtype, shape)| {
            let len = shape.iter().product::<usize>() * dtype.size();
            (
                n.to_string(),
                Tensor {
                    dtype: *dtype,
                    shape: shape.clone(),
                    bytes: vec![0; len],
                },
            )
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, npz_bytes(&tensors).unwrap()).unwrap();
    path
}

#[test]
fn run_refuses_wrong_inputs_and_damaged_models_with_exit_2() {
    let p = copy();
    let d = p.path();
    write_npz(d, "f64.npz", &[("image", Dtype::F64, vec![1, 28, 28, 1])]);
    write_npz(d, "shape.npz", &[("image", Dtype::F32, vec![1, 28, 28])]);
    write_npz(d, "name.npz", &[("pixels", Dtype::F32, vec![1, 28, 28, 1])]);
    let cases = [
        (
            "f64.npz",
            "error: input `image` must be float32, got float64",
        ),
        (
            "shape.npz",
            "error: input `image` must have shape [1,28,28,1], got [1,28,28]",
        ),
        (
            "name.npz",
            "error: input `pixels` is not an input of signature `serving_default`, whose inputs are `image`",
        ),
    ];
    for (file, want) in cases {
        let out = run(&p, &["run", "build/clf-fp32.tflite", "--input", file]);
        assert_eq!(out.code, 2, "{file}: {}", out.stderr);
        assert_eq!(errors(&out), want);
    }
    let out = run(
        &p,
        &[
            "run",
            "build/clf-fp32.tflite",
            "--input",
            "f64.npz",
            "--signature",
            "nope",
        ],
    );
    assert_eq!(out.code, 2);
    assert_eq!(
        errors(&out),
        "error: the model has no signature `nope`; it has `serving_default`"
    );

    // A truncated file never reaches the library (which would crash on it).
    let bytes = std::fs::read(d.join("build/clf-fp32.tflite")).unwrap();
    std::fs::write(d.join("cut.tflite"), &bytes[..bytes.len() / 3]).unwrap();
    write_npz(d, "ok.npz", &[("image", Dtype::F32, vec![1, 28, 28, 1])]);
    let out = run(&p, &["run", "cut.tflite", "--input", "ok.npz"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        errors(&out).starts_with("error: `cut.tflite` is not a usable model"),
        "{}",
        out.stderr
    );

    let out = run(
        &p,
        &["run", "build/clf-fp32.tflite", "--input", "missing.npz"],
    );
    assert_eq!(out.code, 2);
    assert!(
        errors(&out).contains("cannot read `missing.npz`"),
        "{}",
        out.stderr
    );

    // Integer I/O stays integer: no silent casts.
    let out = run(&p, &["run", "build/clf-int8.tflite", "--input", "ok.npz"]);
    assert_eq!(out.code, 2);
    assert_eq!(
        errors(&out),
        "error: input `image` must be int8, got float32"
    );
}

#[test]
fn bench_times_both_kernel_settings_and_charts_a_recipe() {
    let p = copy();
    let d = p.path();
    let out = run(
        &p,
        &[
            "bench",
            "build/clf-fp32.tflite",
            "--warmup",
            "1",
            "--iterations",
            "3",
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let runs = v["models"][0]["runs"].as_array().unwrap();
    let kernels: Vec<&str> = runs.iter().filter_map(|r| r["kernels"].as_str()).collect();
    assert_eq!(kernels, ["xnnpack", "builtin"]);
    for r in runs {
        assert_eq!(r["warm"]["runs"], 3);
        assert!(r["warm"]["median_ms"].as_f64().unwrap() > 0.0, "{r:#}");
        assert!(r["init_ms"].as_f64().unwrap() > 0.0, "{r:#}");
        assert_eq!(r["threads"], 1);
    }

    // No chart unless asked for.
    let out = run(
        &p,
        &[
            "bench",
            "recipe.yaml",
            "--warmup",
            "0",
            "--iterations",
            "1",
            "--kernels",
            "xnnpack",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!d.join("build/clf.bench.svg").exists(), "{}", out.stderr);

    let out = run(
        &p,
        &[
            "bench",
            "recipe.yaml",
            "--warmup",
            "1",
            "--iterations",
            "3",
            "--kernels",
            "xnnpack",
            "--svg",
            "build/clf.bench.svg",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("## clf"), "{}", out.stdout);
    let rows: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("| fp32 |") || l.starts_with("| int8 |"))
        .collect();
    assert_eq!(rows.len(), 2, "{}", out.stdout);
    let svg = std::fs::read_to_string(d.join("build/clf.bench.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("fp32") && svg.contains("int8"));
}

/// LiteRT's own log (`INFO: [environment.cc:..] Creating LiteRT environment ...`) stays off
/// stderr unless asked for with `-v` or `LITERT_VERBOSE=1`; litert's own errors always show.
#[test]
fn the_runtime_log_shows_only_when_asked_for() {
    let p = copy();
    let arrays = golden(p.path(), "clf-fp32");
    let input = arrays
        .iter()
        .find(|(n, _)| n == "0/in/image")
        .unwrap()
        .1
        .clone();
    std::fs::write(
        p.path().join("in.npz"),
        npz_bytes(&[("image".to_string(), input)]).unwrap(),
    )
    .unwrap();
    let args = ["run", "build/clf-fp32.tflite", "--input", "in.npz"];
    let quiet = run(&p, &args);
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert!(!quiet.stderr.contains("INFO: ["), "{}", quiet.stderr);
    let mut verbose = vec!["-v"];
    verbose.extend(args);
    let loud = run(&p, &verbose);
    assert_eq!(loud.code, 0, "{}", loud.stderr);
    assert!(loud.stderr.contains("INFO: ["), "{}", loud.stderr);
    assert_eq!(loud.stdout, quiet.stdout);
    let by_env = p.litert_with(&args, &[("LITERT_VERBOSE", "1")]);
    assert!(by_env.stderr.contains("INFO: ["), "{}", by_env.stderr);
    // An error of litert's own still reaches the terminal, without the log around it.
    let wrong = run(&p, &["run", "build/clf-int8.tflite", "--input", "in.npz"]);
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(wrong.stderr.starts_with("error: "), "{}", wrong.stderr);
    assert!(!wrong.stderr.contains("INFO: ["), "{}", wrong.stderr);
}

/// An int8 model's outputs are integers; `run` also shows them dequantized with the
/// output's scale and zero point.
#[test]
fn run_shows_quantized_outputs_dequantized() {
    let p = copy();
    write_npz(
        p.path(),
        "q.npz",
        &[("image", Dtype::I8, vec![1, 28, 28, 1])],
    );
    let out = run(
        &p,
        &["run", "build/clf-int8.tflite", "--input", "q.npz", "--json"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let o = &v["outputs"][0];
    assert_eq!(o["dtype"], "int8", "{o:#}");
    let d = &o["dequantized"];
    let (scale, zero) = (
        d["scale"].as_f64().unwrap(),
        d["zero_point"].as_f64().unwrap(),
    );
    assert!(scale > 0.0, "{o:#}");
    let raw = o["values"].as_array().unwrap();
    let real = d["values"].as_array().unwrap();
    assert_eq!(raw.len(), 10);
    for (q, r) in raw.iter().zip(real) {
        let expected = (q.as_f64().unwrap() - zero) * scale;
        assert!((r.as_f64().unwrap() - expected).abs() < 1e-9, "{o:#}");
    }
    let human = run(&p, &["run", "build/clf-int8.tflite", "--input", "q.npz"]);
    assert!(
        human.stdout.contains("; dequantized (scale "),
        "{}",
        human.stdout
    );
    // Float outputs have nothing to dequantize.
    let float = run(&p, &["run", "build/clf-fp32.tflite", "--input", "q.npz"]);
    assert_eq!(float.code, 2, "{}", float.stderr);
}
