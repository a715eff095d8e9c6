//! The typed, serde-serializable description of a `.tflite` model that `inspect --json`,
//! `diff` and the signature snapshots are built on. Field names are the documented JSON
//! contract (`docs/inspect.md`): keys may be added, never renamed or removed. Also how a
//! tensor reads to people (`float32 [1,3]`, `scale 0.5 zero point -1`), as `inspect` and
//! `diff` print it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::provenance::Provenance;

/// The key LiteRT itself gives the signature it makes up for a model without SignatureDefs.
pub const PLACEHOLDER_SIGNATURE_KEY: &str = "<placeholder signature>";

/// Everything `inspect` reports about one model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The path as given on the command line.
    pub file: String,
    pub size_bytes: u64,
    pub schema_version: u32,
    pub description: Option<String>,
    /// The file's SignatureDefs in file order; without any, one placeholder signature with
    /// subgraph 0's inputs and outputs (`source` says which).
    pub signatures: Vec<Signature>,
    pub subgraphs: Vec<Subgraph>,
    /// Operator counts over all subgraphs, by builtin name or custom code.
    pub ops: BTreeMap<String, u64>,
    pub operator_codes: Vec<OperatorCode>,
    /// Custom codes of custom ops that are not Flex ops, sorted.
    pub custom_ops: Vec<String>,
    /// Custom codes starting with `Flex`, sorted.
    pub flex_ops: Vec<String>,
    pub metadata: Vec<MetadataEntry>,
    /// The `min_runtime_version` metadata entry, decoded.
    pub min_runtime_version: Option<String>,
    /// Where litert built it from: its `litert.*` metadata entries, decoded; `None` for a
    /// model litert did not build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    pub weights: WeightSummary,
    pub quantization: QuantizationSummary,
    pub layout: Layout,
    /// Present only when the weights check was asked for (`inspect --weights`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub weights_check: Option<WeightsCheck>,
    pub warnings: Vec<String>,
}

/// Where a signature's inputs and outputs came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureSource {
    /// A SignatureDef in the file.
    SignatureDef,
    /// No SignatureDefs: subgraph 0's inputs and outputs, named by their tensors.
    Subgraph,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub key: String,
    pub subgraph_index: u32,
    pub source: SignatureSource,
    pub inputs: Vec<SignatureTensor>,
    pub outputs: Vec<SignatureTensor>,
}

/// One input or output of a signature: its name in the signature and the tensor it maps to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureTensor {
    pub name: String,
    pub tensor: Tensor,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subgraph {
    pub index: u32,
    pub name: Option<String>,
    pub inputs: Vec<Tensor>,
    pub outputs: Vec<Tensor>,
    pub operator_count: u64,
    pub tensor_count: u64,
    pub ops: BTreeMap<String, u64>,
    /// Every tensor of the subgraph, in file order; only when asked for (`inspect --tensors`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tensors: Option<Vec<Tensor>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    pub index: u32,
    pub name: String,
    /// numpy-style name (`float32`, `int8`, ...; `unknown(N)` for codes this build lacks).
    pub dtype: String,
    pub shape: Vec<i32>,
    /// `shape` with -1 for dynamic dimensions (equal to `shape` when the file has none).
    pub shape_signature: Vec<i32>,
    pub quantization: Option<Quantization>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sparsity: Option<Sparsity>,
    pub is_variable: bool,
    /// Bytes of constant data (0 for activations and inputs).
    pub data_bytes: u64,
}

impl Tensor {
    /// Whether any dimension is dynamic.
    pub fn is_dynamic(&self) -> bool {
        self.shape_signature.iter().any(|&d| d < 0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantization {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i64>,
    pub quantized_dimension: i32,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub min: Vec<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub max: Vec<f32>,
    /// The kind of `details` (`custom`, `blockwise`, `multi_axis`, `unknown(N)`); when set,
    /// the runtime ignores `scale` and `zero_point`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub details: Option<String>,
    /// Elements per scale of `blockwise` details (the scales are another tensor).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub block_size: Option<i32>,
}

impl Quantization {
    pub fn is_per_channel(&self) -> bool {
        self.scale.len() > 1
    }
}

/// `[1,224,224,3]`.
pub fn dims(d: &[i32]) -> String {
    let inner: Vec<String> = d.iter().map(i32::to_string).collect();
    format!("[{}]", inner.join(","))
}

/// `float32 [1,3]`, with the shape signature when it has dynamic dimensions.
pub fn describe(t: &Tensor) -> String {
    if t.is_dynamic() {
        format!("{} {}", t.dtype, dims(&t.shape_signature))
    } else {
        format!("{} {}", t.dtype, dims(&t.shape))
    }
}

/// `none`, `scale 0.00392 zero point -128`, or `per-channel on axis 0 (32 scales)`.
pub fn quantization_summary(q: Option<&Quantization>) -> String {
    match q {
        None => "none".to_string(),
        Some(q) if q.is_per_channel() => {
            format!(
                "per-channel on axis {} ({} scales)",
                q.quantized_dimension,
                q.scale.len()
            )
        }
        Some(q) => match (q.scale.first(), q.zero_point.first()) {
            (Some(s), Some(z)) => format!("scale {s} zero point {z}"),
            (Some(s), None) => format!("scale {s}"),
            _ => match (&q.details, q.block_size) {
                (Some(_), Some(b)) => format!("blockwise, block size {b}"),
                (Some(d), None) => format!("{d} details"),
                (None, _) => "min/max only".to_string(),
            },
        },
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sparsity {
    pub traversal_order: Vec<i32>,
    pub block_map: Vec<i32>,
    pub dim_metadata: Vec<DimMetadata>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DimMetadata {
    /// `dense`, `sparse_csr` or `unknown(N)`.
    pub format: String,
    pub dense_size: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorCode {
    pub index: u32,
    /// Builtin name, or the custom code for custom ops.
    pub name: String,
    /// The effective builtin code: the larger of the old byte field and the new int field.
    pub builtin_code: i32,
    pub custom_code: Option<String>,
    pub version: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataEntry {
    pub name: String,
    pub buffer: u32,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightSummary {
    /// Bytes of constant data in all buffers that tensors refer to (each buffer once).
    pub total_bytes: u64,
    pub by_dtype: BTreeMap<String, DtypeWeights>,
    /// The largest constant tensors, largest first (at most 5).
    pub largest: Vec<LargeTensor>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DtypeWeights {
    pub tensors: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LargeTensor {
    pub subgraph: u32,
    pub index: u32,
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i32>,
    pub bytes: u64,
}

/// Quantized tensors over all subgraphs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantizationSummary {
    /// Tensors with scales, zero points or quantization details.
    pub tensors: u64,
    /// Of those, tensors with more than one scale.
    pub per_channel: u64,
    /// Quantized tensors by dtype.
    pub by_dtype: BTreeMap<String, u64>,
    /// Of those, blockwise-quantized tensors by block size.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub block_sizes: BTreeMap<i32, u64>,
}

impl QuantizationSummary {
    /// How the int4 weights are quantized: `blocks of 32`, `per channel`, or both
    /// (`per channel and blocks of 32`); `None` without int4 tensors.
    pub fn int4_layout(&self) -> Option<String> {
        let int4 = self.by_dtype.get("int4").copied().unwrap_or(0);
        if int4 == 0 {
            return None;
        }
        let blockwise: u64 = self.block_sizes.values().sum();
        let mut parts = Vec::new();
        if blockwise < int4 {
            parts.push("per channel".to_string());
        }
        if !self.block_sizes.is_empty() {
            let sizes: Vec<String> = self.block_sizes.keys().map(i32::to_string).collect();
            parts.push(format!("blocks of {}", sizes.join(", ")));
        }
        Some(parts.join(" and "))
    }
}

/// How the file's bytes are laid out: the FlatBuffer, buffers stored after it (the >2 GB
/// scheme), and anything appended (MediaPipe and TFLite Support append a zip of associated
/// files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layout {
    /// Bytes from the start of the file to the end of the last FlatBuffer object.
    pub flatbuffer_bytes: u64,
    /// Buffers whose data lives at a file offset outside the FlatBuffer.
    pub buffers_outside_flatbuffer: u64,
    pub bytes_outside_flatbuffer: u64,
    /// Whether the model carries the `buffer_location` metadata entry.
    pub buffer_location_metadata: bool,
    /// Bytes after the FlatBuffer (and after any outside buffers) that the model does not use.
    pub appended_bytes: u64,
    /// `zip` when the appended bytes are a zip archive, otherwise `unknown`.
    pub appended_kind: Option<String>,
}

/// Result of the on-request weights check: were weights really saved?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightsCheck {
    pub tensors_checked: u64,
    pub elements: u64,
    pub zero_elements: u64,
    pub zero_fraction: f64,
    /// Constant tensors whose every element is zero (`subgraph:index name`).
    pub all_zero_tensors: Vec<String>,
    /// Constant tensors of types the check cannot read element-wise (strings, sparse, ...).
    pub tensors_skipped: u64,
}

/// A shape as people read it: `[?,28,28]`, dynamic dimensions (`-1` in a shape signature)
/// as `?`.
pub fn shape_text(dims: &[i32]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|&d| {
            if d < 0 {
                "?".to_string()
            } else {
                d.to_string()
            }
        })
        .collect();
    format!("[{}]", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantization_summaries() {
        let q = |scale: Vec<f32>, zp: Vec<i64>| Quantization {
            scale,
            zero_point: zp,
            quantized_dimension: 3,
            min: vec![],
            max: vec![],
            details: None,
            block_size: None,
        };
        assert_eq!(quantization_summary(None), "none");
        assert_eq!(
            quantization_summary(Some(&q(vec![0.5], vec![-1]))),
            "scale 0.5 zero point -1"
        );
        assert_eq!(
            quantization_summary(Some(&q(vec![0.5, 0.25], vec![0, 0]))),
            "per-channel on axis 3 (2 scales)"
        );
    }
}
