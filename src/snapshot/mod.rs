//! Signature snapshots: the part of an artifact an app depends on — every signature's
//! inputs and outputs (name, dtype, shape, shape signature, quantization), the op histogram
//! with versions, Flex and custom ops, the runtime version it needs, the subgraph count —
//! as one canonical, reviewable YAML file per artifact. Bytes are not part of it: the lock
//! file records those. This module makes, compares and stores snapshots, and says where the
//! golden outputs beside them go ([`golden`]); it knows nothing of recipes or the worker.

pub mod bundle;
pub mod golden;
pub mod review;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::tflite::model::{ModelInfo, Quantization, SignatureTensor};

/// Bumped when the snapshot format changes, so old snapshots read as "changed", not broken.
pub const FORMAT: u32 = 1;

/// The contract of one artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: u32,
    pub artifact: String,
    pub signatures: Vec<SignatureSnap>,
    /// Op name → versions used (each with its count).
    pub ops: BTreeMap<String, BTreeMap<String, u64>>,
    #[serde(serialize_with = "flow")]
    pub flex_ops: Vec<String>,
    #[serde(serialize_with = "flow")]
    pub custom_ops: Vec<String>,
    pub min_runtime_version: Option<String>,
    pub subgraphs: usize,
    /// Present when weights are int4: `N int4 weight tensors, blocks of 32` (or `per
    /// channel`). The layout decides which runtimes run the model (XNNPACK runs both;
    /// blockwise int4 is newer than per-channel), so a change of block size is a change of
    /// contract. Absent otherwise, so snapshots of other models keep their text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int4_weights: Option<String>,
}

/// Short lists read best on one line (`[1, 28, 28]`).
fn flow<S: serde::Serializer, T: Serialize>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
    serde_saphyr::FlowSeq(v).serialize(s)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureSnap {
    pub key: String,
    pub inputs: Vec<TensorSnap>,
    pub outputs: Vec<TensorSnap>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorSnap {
    pub name: String,
    pub dtype: String,
    #[serde(serialize_with = "flow")]
    pub shape: Vec<i32>,
    #[serde(serialize_with = "flow")]
    pub shape_signature: Vec<i32>,
    /// `none`, `per-tensor scale=S zero_point=Z`, or `per-channel N channels, axis A`.
    pub quantization: String,
}

impl Snapshot {
    /// The snapshot of a model, named by its artifact id.
    pub fn of(artifact: &str, model: &ModelInfo) -> Self {
        let signatures = model
            .signatures
            .iter()
            .map(|s| SignatureSnap {
                key: s.key.clone(),
                inputs: s.inputs.iter().map(tensor).collect(),
                outputs: s.outputs.iter().map(tensor).collect(),
            })
            .collect();
        let mut ops: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for sg in &model.subgraphs {
            for (name, count) in &sg.ops {
                let versions = versions_of(model, name);
                let slot = ops.entry(name.clone()).or_default();
                *slot.entry(versions).or_default() += count;
            }
        }
        Self {
            format: FORMAT,
            artifact: artifact.to_string(),
            signatures,
            ops,
            flex_ops: model.flex_ops.clone(),
            custom_ops: model.custom_ops.clone(),
            min_runtime_version: model.min_runtime_version.clone(),
            subgraphs: model.subgraphs.len(),
            int4_weights: int4_weights(model),
        }
    }

    /// The canonical text written to `snapshots/*.yaml`.
    pub fn render(&self) -> String {
        let body = serde_saphyr::to_string(self).unwrap_or_default();
        format!(
            "# litert signature snapshot of `{}`: what an app built on this artifact depends on.\n\
             # Written by `litert apply`; review changes like code (`litert snapshot review`).\n{body}",
            self.artifact
        )
    }
}

fn tensor(t: &SignatureTensor) -> TensorSnap {
    TensorSnap {
        name: t.name.clone(),
        dtype: t.tensor.dtype.clone(),
        shape: t.tensor.shape.clone(),
        shape_signature: t.tensor.shape_signature.clone(),
        quantization: quantization(t.tensor.quantization.as_ref()),
    }
}

fn quantization(q: Option<&Quantization>) -> String {
    match q {
        None => "none".to_string(),
        Some(q) if q.scale.is_empty() && q.details.is_none() => "none".to_string(),
        Some(q) if q.is_per_channel() => {
            format!(
                "per-channel {} channels, axis {}",
                q.scale.len(),
                q.quantized_dimension
            )
        }
        Some(q) => format!(
            "per-tensor scale={} zero_point={}",
            q.scale.first().copied().unwrap_or(0.0),
            q.zero_point.first().copied().unwrap_or(0)
        ),
    }
}

/// `N int4 weight tensors, blocks of 32` (each buffer once), when there are any.
fn int4_weights(model: &ModelInfo) -> Option<String> {
    let layout = model.quantization.int4_layout()?;
    let n = model.weights.by_dtype.get("int4").map_or(0, |d| d.tensors);
    Some(format!("{n} int4 weight tensors, {layout}"))
}

/// The versions an op appears with, as `v1` or `v1,v3` (stable order).
fn versions_of(model: &ModelInfo, op: &str) -> String {
    let mut versions: Vec<i32> = model
        .operator_codes
        .iter()
        .filter(|c| c.name == op)
        .map(|c| c.version)
        .collect();
    versions.sort_unstable();
    versions.dedup();
    versions
        .iter()
        .map(|v| format!("v{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// How a freshly made snapshot relates to the stored one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    Same,
    /// No snapshot stored yet.
    Missing,
    /// Stored and different: the unified diff, stored text first.
    Changed(String),
}

/// Compare `text` (a rendered snapshot) with what is stored at `path`.
pub fn compare(path: &Path, text: &str) -> Comparison {
    match std::fs::read_to_string(path) {
        Err(_) => Comparison::Missing,
        Ok(stored) if stored == text => Comparison::Same,
        Ok(stored) => Comparison::Changed(diff(&stored, text, path)),
    }
}

/// A unified diff of two snapshot texts.
pub fn diff(old: &str, new: &str, path: &Path) -> String {
    let d = similar::TextDiff::from_lines(old, new);
    d.unified_diff()
        .context_radius(3)
        .header(
            &path.display().to_string(),
            &format!("{} (new)", path.display()),
        )
        .to_string()
}

/// Where a changed snapshot waits for review.
pub fn pending_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".new");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_files_sit_next_to_the_snapshot() {
        assert_eq!(
            pending_path(Path::new("snapshots/a.yaml")),
            PathBuf::from("snapshots/a.yaml.new")
        );
    }

    #[test]
    fn quantization_summaries() {
        assert_eq!(quantization(None), "none");
        let q = Quantization {
            scale: vec![0.5],
            zero_point: vec![-128],
            quantized_dimension: 0,
            min: vec![],
            max: vec![],
            details: None,
            block_size: None,
        };
        assert_eq!(
            quantization(Some(&q)),
            "per-tensor scale=0.5 zero_point=-128"
        );
    }

    #[test]
    fn diff_shows_the_changed_line() {
        let d = diff("a: 1\nname: x\n", "a: 1\nname: y\n", Path::new("s.yaml"));
        assert!(d.contains("-name: x") && d.contains("+name: y"), "{d}");
    }
}
