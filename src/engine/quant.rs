//! Is the artifact what its quantization mode promises? Read from the `.tflite` file itself,
//! never from the settings: Keras accepts some wrong settings silently (a string
//! `optimizations`, a dataset without `optimizations`) and dynamic-range quantization leaves
//! weight tensors under 1,024 elements in float32, so a "quantized" export can come out
//! float. Each mode's promise becomes a list of checks on weights (constant tensors),
//! activations and the signature's inputs and outputs. With a typed `quantization.mode` a
//! failed check rejects the artifact (unless `gates.verify_quantization: false`); settings
//! given only as raw `litert_kwargs` are checked the same way but only warn.

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;

use crate::recipe::BuildPlan;
use crate::recipe::types::{EmbeddingStorage, QuantizationMode, QuantizedIo};
use crate::tflite::{self, model::ModelInfo, model::Tensor};
use crate::worker::protocol::SignatureInput;

/// What the artifact should look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Float,
    DynamicRange,
    /// int4 weights with this block size (`None`: per channel); `int4_table`: the embedding
    /// table (and an untied logits projection) int4 too, so no weight is int8.
    DynamicInt4 {
        block: Option<u32>,
        int4_table: bool,
    },
    Float16,
    Int8Fallback,
    FullInt8(QuantizedIo),
    Int16x8(QuantizedIo),
}

impl Expect {
    fn label(self) -> &'static str {
        match self {
            Self::Float => "none",
            Self::DynamicRange => "dynamic_range",
            Self::DynamicInt4 { .. } => "dynamic_int4",
            Self::Float16 => "float16",
            Self::Int8Fallback => "int8_fallback",
            Self::FullInt8(_) => "full_int8",
            Self::Int16x8(_) => "int16x8",
        }
    }
}

/// One verified promise.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub ok: bool,
    pub message: String,
}

/// The artifact against its mode.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// The mode checked against (`full_int8`, ...), as the recipe says it or as the raw
    /// converter settings imply it.
    pub mode: &'static str,
    /// Whether a failed check rejects the artifact.
    pub enforced: bool,
    pub checks: Vec<Check>,
    /// What to do when it fails, where there is a known next step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// Why the artifact is rejected, if it is.
    pub fn rejection(&self) -> Option<String> {
        if !self.enforced || self.ok() {
            return None;
        }
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.check)
            .collect();
        Some(format!(
            "the artifact is not what `quantization.mode: {}` promises ({})",
            self.mode,
            failed.join(", ")
        ))
    }
}

/// What the plan asks for, and whether a mismatch rejects the artifact.
pub fn expectation(plan: &BuildPlan) -> (Expect, bool) {
    let io = plan.quantization.io;
    if let Some(mode) = plan.quantization.mode
        && (mode != QuantizationMode::None || plan.converter.optimizations.is_empty())
    {
        let e = match mode {
            QuantizationMode::None => Expect::Float,
            QuantizationMode::DynamicRange => Expect::DynamicRange,
            QuantizationMode::DynamicInt4 => Expect::DynamicInt4 {
                block: plan.quantization.block_size,
                int4_table: plan.quantization.embedding == Some(EmbeddingStorage::Int4),
            },
            QuantizationMode::Float16 => Expect::Float16,
            QuantizationMode::Int8Fallback => Expect::Int8Fallback,
            QuantizationMode::FullInt8 => Expect::FullInt8(io),
            QuantizationMode::Int16x8 => Expect::Int16x8(io),
        };
        // A recipe without `quantization` still reaches here as mode `none`; only a typed
        // mode the recipe wrote is a promise worth rejecting for, but a float export that
        // came out quantized is wrong either way.
        return (e, plan.gates.verify_quantization);
    }
    // Raw converter attributes: infer the mode they amount to, and only warn.
    use crate::recipe::types::{OpsSet, SupportedType};
    let c = &plan.converter;
    let io = c.inference_input_type.unwrap_or(QuantizedIo::Float32);
    let e = if c.optimizations.is_empty() {
        Expect::Float
    } else if c.supported_types.contains(&SupportedType::Float16) {
        Expect::Float16
    } else if c.supported_ops.contains(&OpsSet::Int16x8) {
        Expect::Int16x8(io)
    } else if c.supported_ops.contains(&OpsSet::TfliteBuiltinsInt8) {
        Expect::FullInt8(io)
    } else if c.representative_dataset {
        Expect::Int8Fallback
    } else {
        Expect::DynamicRange
    };
    (e, false)
}

/// Read the artifact at `path` (every tensor) and check it against the plan.
pub fn verify_path(
    plan: &BuildPlan,
    path: &Path,
    signature: &[SignatureInput],
) -> Result<Verification, String> {
    let options = tflite::ReadOptions {
        tensors: true,
        ..Default::default()
    };
    let model = tflite::read_path(path, options).map_err(|e| e.to_string())?;
    let (expect, enforced) = expectation(plan);
    Ok(verify(expect, enforced, &model, signature))
}

/// Counts over every tensor of every subgraph.
#[derive(Default)]
struct Census {
    int8_weights: u64,
    int8_weight_bytes: u64,
    int4_weights: u64,
    int4_weight_bytes: u64,
    /// The block size of each int4 weight (`None`: one scale per channel).
    int4_blocks: std::collections::BTreeSet<Option<i32>>,
    f16_weights: u64,
    f32_weights: u64,
    weight_bytes: u64,
    /// Elements of the largest float32 weight tensor.
    largest_f32_weight: u64,
    int8_activations: u64,
    int16_activations: u64,
    float_activations: u64,
    /// Float activations that are not a signature input or output.
    inner_float_activations: u64,
}

fn elements(t: &Tensor) -> u64 {
    t.shape
        .iter()
        .map(|&d| u64::try_from(d.max(0)).unwrap_or(0))
        .product()
}

fn census(model: &ModelInfo) -> Census {
    let mut io: HashSet<(u32, u32)> = HashSet::new();
    for s in &model.signatures {
        for t in s.inputs.iter().chain(&s.outputs) {
            io.insert((s.subgraph_index, t.tensor.index));
        }
    }
    let mut c = Census::default();
    for sg in &model.subgraphs {
        // Control-flow subgraphs pass float tensors through their own inputs and outputs.
        let own_io: HashSet<u32> = sg
            .inputs
            .iter()
            .chain(&sg.outputs)
            .map(|t| t.index)
            .collect();
        for t in sg.tensors.iter().flatten() {
            let quantized = t.quantization.is_some();
            if t.data_bytes > 0 {
                c.weight_bytes += t.data_bytes;
                match t.dtype.as_str() {
                    "int8" if quantized => {
                        c.int8_weights += 1;
                        c.int8_weight_bytes += t.data_bytes;
                    }
                    "int4" if quantized => {
                        c.int4_weights += 1;
                        c.int4_weight_bytes += t.data_bytes;
                        c.int4_blocks
                            .insert(t.quantization.as_ref().and_then(|q| q.block_size));
                    }
                    "float16" => c.f16_weights += 1,
                    "float32" => {
                        c.f32_weights += 1;
                        c.largest_f32_weight = c.largest_f32_weight.max(elements(t));
                    }
                    _ => {}
                }
            } else if !t.is_variable {
                match t.dtype.as_str() {
                    "int8" if quantized => c.int8_activations += 1,
                    "int16" if quantized => c.int16_activations += 1,
                    "float32" | "float16" => {
                        c.float_activations += 1;
                        let boundary = io.contains(&(sg.index, t.index))
                            || (sg.index > 0 && own_io.contains(&t.index));
                        if !boundary {
                            c.inner_float_activations += 1;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    c
}

fn check(check: &'static str, ok: bool, message: String) -> Check {
    Check { check, ok, message }
}

/// Check `model` against `expect`. `signature` is what the export asked for: inputs
/// declared as integers (token ids) keep their dtype in every mode.
pub fn verify(
    expect: Expect,
    enforced: bool,
    model: &ModelInfo,
    signature: &[SignatureInput],
) -> Verification {
    let c = census(model);
    let mut checks = Vec::new();
    let int8_weights = || {
        let ok = c.int8_weights > 0;
        check(
            "int8_weights",
            ok,
            if ok {
                format!(
                    "{} int8 weight tensors with scales ({:.0}% of weight bytes)",
                    c.int8_weights,
                    pct(c.int8_weight_bytes, c.weight_bytes)
                )
            } else if c.largest_f32_weight > 0 && c.largest_f32_weight < 1024 {
                format!(
                    "no weight tensor is int8: the largest float32 weight has {} elements, and the converter leaves weights under 1,024 elements in float32",
                    c.largest_f32_weight
                )
            } else {
                "no weight tensor is int8: every weight is still float".to_string()
            },
        )
    };
    let no_float_weights = || {
        let n = c.f32_weights + c.f16_weights;
        check(
            "no_float_weights",
            n == 0,
            if n == 0 {
                "no float weights".into()
            } else {
                format!("{n} weight tensors are still float")
            },
        )
    };
    let int_activations = |dtype: &'static str, n: u64| {
        check(
            if dtype == "int8" {
                "int8_activations"
            } else {
                "int16_activations"
            },
            n > 0,
            if n > 0 {
                format!("{n} quantized {dtype} activation tensors")
            } else {
                format!("no {dtype} activations: the ops still compute in float")
            },
        )
    };
    match expect {
        Expect::Float => {
            let n = c.int8_weights + c.int4_weights + c.f16_weights;
            checks.push(check(
                "float_weights",
                n == 0,
                if n == 0 {
                    "weights are float32".into()
                } else {
                    format!(
                        "{n} weight tensors are int8, int4 or float16, but nothing should be quantized"
                    )
                },
            ));
        }
        Expect::DynamicRange => {
            checks.push(int8_weights());
            // Embedding lookups (GATHER) of an int8 table give int8 rows before they are
            // dequantized, so a few int8 activations are normal; integer quantization
            // makes nearly every activation int8.
            let ok = c.int8_activations * 2 < c.float_activations;
            checks.push(check(
                "float_activations",
                ok,
                if ok {
                    format!(
                        "activations compute in float ({} float, {} int8 from embedding lookups)",
                        c.float_activations, c.int8_activations
                    )
                } else {
                    format!(
                        "{} of {} activations are int8: this is integer quantization, not dynamic range",
                        c.int8_activations,
                        c.int8_activations + c.float_activations
                    )
                },
            ));
        }
        Expect::DynamicInt4 { block, int4_table } => {
            let layout = |b: Option<i32>| match b {
                Some(b) => format!("blocks of {b}"),
                None => "per channel".to_string(),
            };
            let want = block.map(|b| b as i32);
            let ok = c.int4_weights > 0 && c.int4_blocks.iter().all(|&b| b == want);
            let seen: Vec<String> = c.int4_blocks.iter().map(|&b| layout(b)).collect();
            checks.push(check(
                "int4_weights",
                ok,
                if c.int4_weights == 0 {
                    "no weight tensor is int4".to_string()
                } else if ok {
                    format!(
                        "{} int4 weight tensors, {} ({:.0}% of weight bytes)",
                        c.int4_weights,
                        layout(want),
                        pct(c.int4_weight_bytes, c.weight_bytes)
                    )
                } else {
                    format!(
                        "int4 weights are quantized {}, the recipe asks for {}",
                        seen.join(" and "),
                        layout(want)
                    )
                },
            ));
            // The table is the only weight an int4 model stores in int8.
            if int4_table {
                let n = c.int8_weights;
                checks.push(check(
                    "int4_table",
                    n == 0,
                    if n == 0 {
                        "the embedding table is int4 too (no int8 weights)".into()
                    } else {
                        format!(
                            "{n} int8 weight tensors, but `embedding: int4` promises an int4 table"
                        )
                    },
                ));
            }
        }
        Expect::Float16 => {
            let ok = c.f16_weights > 0;
            checks.push(check(
                "float16_weights",
                ok,
                if ok {
                    format!("{} float16 weight tensors", c.f16_weights)
                } else {
                    "no weight tensor is float16".into()
                },
            ));
            checks.push(check(
                "no_int8_weights",
                c.int8_weights == 0,
                if c.int8_weights == 0 {
                    "no int8 weights".into()
                } else {
                    format!("{} int8 weight tensors in a float16 model", c.int8_weights)
                },
            ));
        }
        Expect::Int8Fallback => {
            checks.push(int8_weights());
            checks.push(int_activations("int8", c.int8_activations));
        }
        Expect::FullInt8(_) => {
            checks.push(int8_weights());
            checks.push(no_float_weights());
            checks.push(int_activations("int8", c.int8_activations));
            checks.push(check(
                "integer_only",
                c.inner_float_activations == 0,
                if c.inner_float_activations == 0 {
                    "every op computes in integers".into()
                } else {
                    format!(
                        "{} float tensors inside the graph: some ops fell back to float",
                        c.inner_float_activations
                    )
                },
            ));
        }
        Expect::Int16x8(_) => {
            checks.push(int8_weights());
            checks.push(no_float_weights());
            checks.push(int_activations("int16", c.int16_activations));
        }
    }
    checks.push(io_check(expect, model, signature));
    let small_weights_only = c.int8_weights == 0
        && c.largest_f32_weight > 0
        && c.largest_f32_weight < 1024
        && checks.iter().any(|k| k.check == "int8_weights" && !k.ok);
    let hint = small_weights_only.then(|| {
        "every weight of this model is under 1,024 elements, which the converter keeps in float32, so there is nothing to quantize: drop the mode, or keep it and accept the float weights with `gates: {verify_quantization: false}`".to_string()
    });
    Verification {
        mode: expect.label(),
        enforced,
        checks,
        hint,
    }
}

/// The signature's float inputs and outputs have the promised dtype, and integer ones carry
/// a scale and zero point an app can (de)quantize with.
fn io_check(expect: Expect, model: &ModelInfo, signature: &[SignatureInput]) -> Check {
    let want = match expect {
        Expect::FullInt8(io) | Expect::Int16x8(io) => io,
        _ => QuantizedIo::Float32,
    };
    let want_name = match want {
        QuantizedIo::Float32 => "float32",
        QuantizedIo::Int8 => "int8",
        QuantizedIo::Uint8 => "uint8",
        QuantizedIo::Int16 => "int16",
    };
    let Some(sig) = model.signatures.first() else {
        return check("io", false, "the artifact has no signature".into());
    };
    let mut wrong = Vec::new();
    for (kind, list) in [("input", &sig.inputs), ("output", &sig.outputs)] {
        for t in list {
            // Token ids and masks stay integers in every mode.
            let declared = signature
                .iter()
                .find(|s| s.name == t.name)
                .map(|s| s.dtype.as_str());
            let float_tensor = match kind {
                "input" => declared.is_none_or(|d| d.starts_with("float")),
                _ => true,
            };
            if !float_tensor {
                continue;
            }
            let dtype = t.tensor.dtype.as_str();
            let scaled = t
                .tensor
                .quantization
                .as_ref()
                .is_some_and(|q| q.scale.iter().any(|s| *s > 0.0));
            let ok = if want == QuantizedIo::Float32 {
                dtype == "float32"
            } else {
                dtype == want_name && scaled
            };
            if !ok {
                let extra = if want != QuantizedIo::Float32 && dtype == want_name {
                    " without a scale"
                } else {
                    ""
                };
                wrong.push(format!("{kind} `{}` is {dtype}{extra}", t.name));
            }
        }
    }
    if wrong.is_empty() {
        let note = if want == QuantizedIo::Float32 {
            ""
        } else {
            " with scales and zero points"
        };
        check(
            "io",
            true,
            format!("inputs and outputs are {want_name}{note}"),
        )
    } else {
        check(
            "io",
            false,
            format!(
                "expected {want_name} inputs and outputs: {}",
                wrong.join(", ")
            ),
        )
    }
}

#[allow(clippy::cast_precision_loss)]
fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}
