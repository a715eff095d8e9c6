//! What the reader derives from the tables it walked: the weight summary (each buffer
//! counted once, the largest tensors), the quantization summary and the warnings a
//! deploying engineer should see.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::super::model::{
    DtypeWeights, LargeTensor, Layout, QuantizationSummary, Signature, SignatureSource, Tensor,
    WeightSummary, WeightsCheck,
};

pub(super) fn weight_summary(tensors: &[Vec<Tensor>], buffer_ids: &[Vec<u32>]) -> WeightSummary {
    let mut seen = HashSet::new();
    let mut by_dtype: BTreeMap<String, DtypeWeights> = BTreeMap::new();
    let mut total = 0u64;
    let mut all = Vec::new();
    for (sg, (ts, ids)) in tensors.iter().zip(buffer_ids).enumerate() {
        for (t, &buffer) in ts.iter().zip(ids) {
            if buffer == 0 || t.data_bytes == 0 || !seen.insert(buffer) {
                continue;
            }
            total = total.saturating_add(t.data_bytes);
            let entry = by_dtype.entry(t.dtype.clone()).or_insert(DtypeWeights {
                tensors: 0,
                bytes: 0,
            });
            entry.tensors += 1;
            entry.bytes = entry.bytes.saturating_add(t.data_bytes);
            all.push(LargeTensor {
                subgraph: u32::try_from(sg).unwrap_or(u32::MAX),
                index: t.index,
                name: t.name.clone(),
                dtype: t.dtype.clone(),
                shape: t.shape.clone(),
                bytes: t.data_bytes,
            });
        }
    }
    all.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then(a.subgraph.cmp(&b.subgraph))
            .then(a.index.cmp(&b.index))
    });
    all.truncate(5);
    WeightSummary {
        total_bytes: total,
        by_dtype,
        largest: all,
    }
}

pub(super) fn quantization_summary(tensors: &[Vec<Tensor>]) -> QuantizationSummary {
    let mut out = QuantizationSummary {
        tensors: 0,
        per_channel: 0,
        by_dtype: BTreeMap::new(),
        block_sizes: BTreeMap::new(),
    };
    for t in tensors.iter().flatten() {
        if let Some(q) = &t.quantization {
            out.tensors += 1;
            if q.is_per_channel() {
                out.per_channel += 1;
            }
            if let Some(b) = q.block_size {
                *out.block_sizes.entry(b).or_insert(0) += 1;
            }
            *out.by_dtype.entry(t.dtype.clone()).or_insert(0) += 1;
        }
    }
    out
}

pub(super) fn collect_warnings(
    signatures: &[Signature],
    flex_ops: &BTreeSet<String>,
    custom_ops: &BTreeSet<String>,
    layout: &Layout,
    weights_check: Option<&WeightsCheck>,
) -> Vec<String> {
    let mut out = Vec::new();
    if !flex_ops.is_empty() {
        out.push(format!(
            "Flex ops present ({}): the LiteRT runtime cannot run this model without the Flex delegate",
            join(flex_ops)
        ));
    }
    if !custom_ops.is_empty() {
        out.push(format!(
            "custom ops present ({}): the runtime needs them registered with its op resolver",
            join(custom_ops)
        ));
    }
    if signatures
        .iter()
        .all(|s| s.source == SignatureSource::Subgraph)
        && !signatures.is_empty()
    {
        out.push(
            "no SignatureDefs: inputs and outputs are subgraph 0's, named by their tensors"
                .to_string(),
        );
    }
    for sig in signatures {
        let dynamic: Vec<&str> = sig
            .inputs
            .iter()
            .filter(|i| i.tensor.is_dynamic())
            .map(|i| i.name.as_str())
            .collect();
        if !dynamic.is_empty() {
            out.push(format!(
                "signature `{}` has inputs with dynamic dimensions ({}): resize them before allocating tensors",
                sig.key,
                dynamic.join(", ")
            ));
        }
    }
    if layout.buffers_outside_flatbuffer > 0 && !layout.buffer_location_metadata {
        out.push(
            "buffers are stored outside the FlatBuffer but the `buffer_location` metadata is missing".to_string(),
        );
    }
    if let Some(check) = weights_check
        && !check.all_zero_tensors.is_empty()
    {
        out.push(format!(
            "{} constant tensors are all zeros: were the weights saved?",
            check.all_zero_tensors.len()
        ));
    }
    out
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
