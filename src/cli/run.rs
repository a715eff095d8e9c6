//! `litert run`: run a model natively on inputs from an `.npz` file and write its outputs as
//! `.npz`, with no Python.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use super::{Exit, output};
use crate::runtime::{self, CpuSettings, RunError, Tensor};

/// Run a LiteRT model on numpy inputs, natively (no Python, no TensorFlow).
///
/// Inputs are matched to the signature by name (tensor names for models without
/// signatures); dtypes and shapes are checked, and dynamic dimensions take the arrays' sizes.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert run build/classifier-fp32.tflite --input in.npz --output out.npz\n  litert run model.tflite --input in.npz --signature serving_default --json\n  python -c \"import numpy as np; np.savez('in.npz', x=np.zeros((1, 28, 28), np.float32))\"\n\nThe runtime is libLiteRt.so from the pinned ai-edge-litert wheel: from the worker\nenvironment if provisioned, else a runtime-only environment (that one wheel, no TensorFlow)\nprovisioned on first use, or LITERT_RUNTIME_LIB.\n\nExit codes: 0 success, 1 the model failed to run, 2 a bad model, input file, name, dtype or shape"
)]
pub struct RunArgs {
    /// The `.tflite` file.
    pub model: PathBuf,
    /// The inputs: an `.npz` with one array per input name (or an `.npy` for a one-input model).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// The signature to run (default: the only one, else `serving_default`).
    #[arg(long, value_name = "KEY")]
    pub signature: Option<String>,
    /// Write the outputs here as `.npz`, one array per output name.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print what ran and each output's dtype, shape and summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// CPU threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,
    /// Use LiteRT's builtin kernels instead of XNNPACK (outputs then differ slightly).
    #[arg(long)]
    pub no_xnnpack: bool,
}

pub fn run(args: RunArgs) -> anyhow::Result<Exit> {
    let feeds = match read_inputs(&args.input) {
        Ok(f) => f,
        Err(e) => return Ok(fail(&RunError::Input(e))),
    };
    let (runtime, found) = runtime::load(crate::progress::wanted())?;
    let cpu = CpuSettings {
        threads: args.threads,
        xnnpack: !args.no_xnnpack,
    };
    let result = (|| -> Result<_, RunError> {
        let loaded = runtime.open(&args.model)?;
        let index = loaded.select(args.signature.as_deref())?;
        let mut compiled = loaded.compile(index, cpu)?;
        let feeds = single_npy_name(feeds, &compiled.inputs)?;
        compiled.set_inputs(&feeds)?;
        let outputs = compiled.run_checked()?;
        // Quantized outputs read as integers; their scale and zero point give the values.
        let scales: Vec<Option<(f64, f64)>> = {
            let sig = loaded
                .info
                .signatures
                .iter()
                .find(|s| s.key == compiled.key)
                .or(loaded.info.signatures.first());
            outputs
                .iter()
                .map(|(name, _)| {
                    let q = sig?.outputs.iter().find(|o| &o.name == name)?;
                    let q = q.tensor.quantization.as_ref()?;
                    match (q.scale.as_slice(), q.zero_point.as_slice()) {
                        ([s], [z]) if *s > 0.0 => Some((f64::from(*s), *z as f64)),
                        ([s], []) if *s > 0.0 => Some((f64::from(*s), 0.0)),
                        _ => None,
                    }
                })
                .collect()
        };
        Ok((compiled.key.clone(), outputs, scales))
    })();
    let (key, outputs, scales) = match result {
        Ok(r) => r,
        Err(e) => return Ok(fail(&e)),
    };
    if let Some(path) = &args.output {
        let bytes = runtime::tensor::npz_bytes(&outputs).map_err(anyhow::Error::msg)?;
        crate::fsio::write_atomic(path, bytes)
            .map_err(|e| anyhow::anyhow!("cannot write `{}`: {e}", path.display()))?;
    }
    if args.json {
        let report = json!({
            "model": args.model.display().to_string(),
            "signature": key,
            "runtime": {
                "library": found.path.display().to_string(),
                "source": found.source.describe(),
                "ai_edge_litert": found.version,
                "kernels": if cpu.xnnpack { "xnnpack" } else { "builtin" },
                "threads": cpu.threads,
            },
            "outputs": outputs
                .iter()
                .zip(&scales)
                .map(|((n, t), q)| summary(n, t, *q))
                .collect::<Vec<_>>(),
        });
        output::stdout(&(serde_json::to_string_pretty(&report)? + "\n"))?;
    } else {
        for ((name, t), q) in outputs.iter().zip(&scales) {
            let s = summary(name, t, *q);
            let mut line = format!(
                "{name}: {} {:?} min {} max {} mean {}",
                t.dtype.name(),
                t.shape,
                s["min"],
                s["max"],
                s["mean"]
            );
            if let Some(d) = s.get("dequantized") {
                line.push_str(&format!(
                    "; dequantized (scale {}, zero point {}): min {} max {} mean {}",
                    d["scale"], d["zero_point"], d["min"], d["max"], d["mean"]
                ));
            }
            output::stdout(&format!("{line}\n"))?;
        }
    }
    if let Some(path) = &args.output {
        output::stderr(&format!(
            "wrote {} output(s) of signature `{key}` to `{}`\n",
            outputs.len(),
            path.display()
        ));
    }
    Ok(Exit::Success)
}

fn fail(e: &RunError) -> Exit {
    output::stderr(&format!("error: {e}\n"));
    if e.is_input() {
        Exit::Usage
    } else {
        Exit::Failure
    }
}

/// The arrays of an `.npz`, or the one array of an `.npy` (named later).
fn read_inputs(path: &Path) -> Result<Vec<(String, Tensor)>, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if path.extension().is_some_and(|e| e == "npy") {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        return npy_as_tensor(&bytes)
            .map(|t| vec![(String::new(), t)])
            .map_err(|e| format!("`{}`: {e}", path.display()));
    }
    runtime::tensor::read_npz(file).map_err(|e| format!("`{}`: {e}", path.display()))
}

fn npy_as_tensor(bytes: &[u8]) -> Result<Tensor, String> {
    runtime::tensor::read_npy(bytes)
}

/// An `.npy` input takes the name of the model's only input.
fn single_npy_name(
    mut feeds: Vec<(String, Tensor)>,
    inputs: &[runtime::session::Port],
) -> Result<Vec<(String, Tensor)>, RunError> {
    if feeds.len() == 1 && feeds[0].0.is_empty() {
        if inputs.len() != 1 {
            return Err(RunError::Input(format!(
                "an .npy file holds one array, but the signature has {} inputs: use an .npz with one array per input name",
                inputs.len()
            )));
        }
        feeds[0].0 = inputs[0].name.clone();
    }
    Ok(feeds)
}

/// dtype, shape and min/max/mean of one output; its values too when small; for a quantized
/// output (`quant`: scale and zero point), the same of its dequantized values.
fn summary(name: &str, t: &Tensor, quant: Option<(f64, f64)>) -> serde_json::Value {
    let values = t.to_f64();
    let mut v = json!({
        "name": name,
        "dtype": t.dtype.name(),
        "shape": t.shape,
    });
    stats(&mut v, &values);
    if let Some((scale, zero_point)) = quant.filter(|_| !t.dtype.name().starts_with("float")) {
        let real: Vec<f64> = values.iter().map(|q| (q - zero_point) * scale).collect();
        let mut d = json!({ "scale": scale, "zero_point": zero_point });
        stats(&mut d, &real);
        v["dequantized"] = d;
    }
    v
}

fn stats(v: &mut serde_json::Value, values: &[f64]) {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mean = if finite.is_empty() {
        0.0
    } else {
        finite.iter().sum::<f64>() / finite.len() as f64
    };
    let none = serde_json::Value::Null;
    v["min"] = if finite.is_empty() {
        none.clone()
    } else {
        json!(min)
    };
    v["max"] = if finite.is_empty() { none } else { json!(max) };
    v["mean"] = json!(mean);
    if values.len() <= 16 {
        v["values"] = json!(values);
    }
}
