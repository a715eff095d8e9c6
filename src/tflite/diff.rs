//! The semantic difference of two models: what a deploying engineer would have to change in
//! their app, and what changed in the graph. Signatures match by key; inputs and outputs match
//! by name, and a name that disappears where another appears at the same position is a rename.
//! Weight values are not compared (their sizes per dtype are). `docs/inspect.md` documents
//! every change kind.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::model::{
    ModelInfo, Quantization, Signature, SignatureTensor, Tensor, describe, dims,
    quantization_summary,
};
use crate::diff::{Diff, Kind};

/// The result of comparing model `a` with model `b`.
pub type ModelDiff = Diff<ChangeKind>;

/// One difference between two models.
pub type Change = crate::diff::Change<ChangeKind>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    SchemaVersionChanged,
    DescriptionChanged,
    SignatureAdded,
    SignatureRemoved,
    SignatureSubgraphChanged,
    TensorAdded,
    TensorRemoved,
    TensorRenamed,
    TensorsReordered,
    DtypeChanged,
    ShapeChanged,
    ShapeSignatureChanged,
    QuantizationChanged,
    SparsityChanged,
    SubgraphCountChanged,
    OpCountChanged,
    OpVersionChanged,
    MetadataAdded,
    MetadataRemoved,
    MetadataChanged,
    MinRuntimeVersionChanged,
    WeightsChanged,
    AppendedDataChanged,
    SizeChanged,
}

impl Kind for ChangeKind {
    fn marker(self) -> char {
        match self {
            Self::SignatureAdded | Self::TensorAdded | Self::MetadataAdded => '+',
            Self::SignatureRemoved | Self::TensorRemoved | Self::MetadataRemoved => '-',
            _ => '~',
        }
    }
}

/// Compare two model descriptions.
pub fn diff(a: &ModelInfo, b: &ModelInfo) -> ModelDiff {
    let mut d = Differ {
        changes: Vec::new(),
    };
    if a.schema_version != b.schema_version {
        d.push(
            ChangeKind::SchemaVersionChanged,
            "schema_version".into(),
            json!(a.schema_version),
            json!(b.schema_version),
            format!(
                "schema version {} -> {}",
                a.schema_version, b.schema_version
            ),
        );
    }
    if a.description != b.description {
        d.push(
            ChangeKind::DescriptionChanged,
            "description".into(),
            json!(a.description),
            json!(b.description),
            format!(
                "description {} -> {}",
                opt(&a.description),
                opt(&b.description)
            ),
        );
    }
    d.signatures(&a.signatures, &b.signatures);
    if a.subgraphs.len() != b.subgraphs.len() {
        d.push(
            ChangeKind::SubgraphCountChanged,
            "subgraphs".into(),
            json!(a.subgraphs.len()),
            json!(b.subgraphs.len()),
            format!("subgraphs {} -> {}", a.subgraphs.len(), b.subgraphs.len()),
        );
    }
    d.ops(a, b);
    d.metadata(a, b);
    d.weights(a, b);
    if a.layout.appended_bytes != b.layout.appended_bytes {
        d.push(
            ChangeKind::AppendedDataChanged,
            "layout/appended_bytes".into(),
            json!(a.layout.appended_bytes),
            json!(b.layout.appended_bytes),
            format!(
                "bytes appended after the FlatBuffer {} -> {}",
                a.layout.appended_bytes, b.layout.appended_bytes
            ),
        );
    }
    if a.size_bytes != b.size_bytes {
        let delta = i128::from(b.size_bytes) - i128::from(a.size_bytes);
        d.push(
            ChangeKind::SizeChanged,
            "size_bytes".into(),
            json!(a.size_bytes),
            json!(b.size_bytes),
            format!(
                "size {} -> {} bytes ({delta:+})",
                a.size_bytes, b.size_bytes
            ),
        );
    }
    ModelDiff::new(a.file.clone(), b.file.clone(), d.changes)
}

struct Differ {
    changes: Vec<Change>,
}

impl Differ {
    fn push(&mut self, kind: ChangeKind, path: String, a: Value, b: Value, message: String) {
        self.changes.push(Change::new(kind, path, a, b, message));
    }

    fn signatures(&mut self, a: &[Signature], b: &[Signature]) {
        let ka = keyed(a, |s| &s.key);
        let kb = keyed(b, |s| &s.key);
        for (key, sa) in &ka {
            let path = format!("signatures/{key}");
            match lookup(&kb, key) {
                None => self.push(
                    ChangeKind::SignatureRemoved,
                    path,
                    json!(key),
                    Value::Null,
                    format!("signature `{key}`"),
                ),
                Some(sb) => {
                    if sa.subgraph_index != sb.subgraph_index {
                        self.push(
                            ChangeKind::SignatureSubgraphChanged,
                            format!("{path}/subgraph_index"),
                            json!(sa.subgraph_index),
                            json!(sb.subgraph_index),
                            format!(
                                "signature `{key}` runs subgraph {} -> {}",
                                sa.subgraph_index, sb.subgraph_index
                            ),
                        );
                    }
                    self.side(key, "input", &sa.inputs, &sb.inputs);
                    self.side(key, "output", &sa.outputs, &sb.outputs);
                }
            }
        }
        for (key, _) in kb.iter().filter(|(k, _)| lookup(&ka, k).is_none()) {
            self.push(
                ChangeKind::SignatureAdded,
                format!("signatures/{key}"),
                Value::Null,
                json!(key),
                format!("signature `{key}`"),
            );
        }
    }

    /// Inputs (or outputs) of one signature. Names are matched as keyed names, so a name that
    /// occurs twice is compared occurrence by occurrence.
    fn side(&mut self, key: &str, what: &str, a: &[SignatureTensor], b: &[SignatureTensor]) {
        let plural = format!("{what}s");
        let ka = keyed(a, |t| &t.name);
        let kb = keyed(b, |t| &t.name);
        let in_a = |n: &str| lookup(&ka, n).is_some();
        let in_b = |n: &str| lookup(&kb, n).is_some();
        for (pos, (name, ta)) in ka.iter().enumerate() {
            let path = format!("signatures/{key}/{plural}/{name}");
            if let Some(tb) = lookup(&kb, name) {
                let label = format!("{what} `{key}/{name}`");
                self.tensor(&path, &label, &ta.tensor, &tb.tensor);
                continue;
            }
            // Gone from `b`: a rename when `b` has a new name at the same position.
            match kb.get(pos).filter(|(n, _)| !in_a(n)) {
                Some((new_name, tb)) => {
                    self.push(
                        ChangeKind::TensorRenamed,
                        path.clone(),
                        json!(name),
                        json!(new_name),
                        format!("{what} `{key}/{name}` renamed to `{new_name}`"),
                    );
                    let label = format!("{what} `{key}/{new_name}`");
                    self.tensor(&path, &label, &ta.tensor, &tb.tensor);
                }
                None => self.push(
                    ChangeKind::TensorRemoved,
                    path,
                    json!(name),
                    Value::Null,
                    format!("{what} `{key}/{name}` ({})", describe(&ta.tensor)),
                ),
            }
        }
        for (pos, (name, tb)) in kb.iter().enumerate() {
            if in_a(name) {
                continue;
            }
            let renamed = ka.get(pos).is_some_and(|(n, _)| !in_b(n));
            if !renamed {
                self.push(
                    ChangeKind::TensorAdded,
                    format!("signatures/{key}/{plural}/{name}"),
                    Value::Null,
                    json!(name),
                    format!("{what} `{key}/{name}` ({})", describe(&tb.tensor)),
                );
            }
        }
        let common_a: Vec<&str> = ka
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| in_b(n))
            .collect();
        let common_b: Vec<&str> = kb
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| in_a(n))
            .collect();
        if common_a != common_b {
            self.push(
                ChangeKind::TensorsReordered,
                format!("signatures/{key}/{plural}"),
                json!(common_a),
                json!(common_b),
                format!(
                    "{plural} of `{key}` reordered: {} -> {}",
                    common_a.join(", "),
                    common_b.join(", ")
                ),
            );
        }
    }

    fn tensor(&mut self, path: &str, label: &str, a: &Tensor, b: &Tensor) {
        if a.dtype != b.dtype {
            self.push(
                ChangeKind::DtypeChanged,
                format!("{path}/dtype"),
                json!(a.dtype),
                json!(b.dtype),
                format!("{label}: dtype {} -> {}", a.dtype, b.dtype),
            );
        }
        if a.shape != b.shape {
            self.push(
                ChangeKind::ShapeChanged,
                format!("{path}/shape"),
                json!(a.shape),
                json!(b.shape),
                format!("{label}: shape {} -> {}", dims(&a.shape), dims(&b.shape)),
            );
        }
        if a.shape_signature != b.shape_signature {
            self.push(
                ChangeKind::ShapeSignatureChanged,
                format!("{path}/shape_signature"),
                json!(a.shape_signature),
                json!(b.shape_signature),
                format!(
                    "{label}: shape signature {} -> {}",
                    dims(&a.shape_signature),
                    dims(&b.shape_signature)
                ),
            );
        }
        if !same_quantization(a.quantization.as_ref(), b.quantization.as_ref()) {
            self.push(
                ChangeKind::QuantizationChanged,
                format!("{path}/quantization"),
                json!(a.quantization),
                json!(b.quantization),
                format!(
                    "{label}: quantization {} -> {}",
                    quantization_summary(a.quantization.as_ref()),
                    quantization_summary(b.quantization.as_ref())
                ),
            );
        }
        if a.sparsity != b.sparsity {
            self.push(
                ChangeKind::SparsityChanged,
                format!("{path}/sparsity"),
                json!(a.sparsity),
                json!(b.sparsity),
                format!(
                    "{label}: sparsity {} -> {}",
                    if a.sparsity.is_some() {
                        "sparse"
                    } else {
                        "dense"
                    },
                    if b.sparsity.is_some() {
                        "sparse"
                    } else {
                        "dense"
                    }
                ),
            );
        }
    }

    fn ops(&mut self, a: &ModelInfo, b: &ModelInfo) {
        let names: BTreeSet<&String> = a.ops.keys().chain(b.ops.keys()).collect();
        for name in &names {
            let ca = a.ops.get(*name).copied().unwrap_or(0);
            let cb = b.ops.get(*name).copied().unwrap_or(0);
            if ca != cb {
                self.push(
                    ChangeKind::OpCountChanged,
                    format!("ops/{name}"),
                    json!(ca),
                    json!(cb),
                    format!("op {name}: {ca} -> {cb}"),
                );
            }
        }
        let (va, vb) = (versions(a), versions(b));
        for name in names {
            if let (Some(x), Some(y)) = (va.get(name.as_str()), vb.get(name.as_str()))
                && x != y
            {
                let show =
                    |s: &BTreeSet<i32>| s.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
                self.push(
                    ChangeKind::OpVersionChanged,
                    format!("operator_codes/{name}/version"),
                    json!(x),
                    json!(y),
                    format!("op {name} version {} -> {}", show(x), show(y)),
                );
            }
        }
    }

    fn metadata(&mut self, a: &ModelInfo, b: &ModelInfo) {
        let ka = keyed(&a.metadata, |m| &m.name);
        let kb = keyed(&b.metadata, |m| &m.name);
        for (name, ma) in &ka {
            let path = format!("metadata/{name}");
            match lookup(&kb, name) {
                None => self.push(
                    ChangeKind::MetadataRemoved,
                    path,
                    json!(name),
                    Value::Null,
                    format!("metadata `{name}` ({} bytes)", ma.size_bytes),
                ),
                Some(mb) if mb.size_bytes != ma.size_bytes => self.push(
                    ChangeKind::MetadataChanged,
                    format!("{path}/size_bytes"),
                    json!(ma.size_bytes),
                    json!(mb.size_bytes),
                    format!(
                        "metadata `{name}`: {} -> {} bytes",
                        ma.size_bytes, mb.size_bytes
                    ),
                ),
                Some(_) => {}
            }
        }
        for (name, mb) in kb.iter().filter(|(n, _)| lookup(&ka, n).is_none()) {
            self.push(
                ChangeKind::MetadataAdded,
                format!("metadata/{name}"),
                Value::Null,
                json!(name),
                format!("metadata `{name}` ({} bytes)", mb.size_bytes),
            );
        }
        if a.min_runtime_version != b.min_runtime_version {
            self.push(
                ChangeKind::MinRuntimeVersionChanged,
                "min_runtime_version".into(),
                json!(a.min_runtime_version),
                json!(b.min_runtime_version),
                format!(
                    "min runtime version {} -> {}",
                    opt(&a.min_runtime_version),
                    opt(&b.min_runtime_version)
                ),
            );
        }
    }

    fn weights(&mut self, a: &ModelInfo, b: &ModelInfo) {
        let dtypes: BTreeSet<&String> = a
            .weights
            .by_dtype
            .keys()
            .chain(b.weights.by_dtype.keys())
            .collect();
        for dtype in dtypes {
            let wa = a.weights.by_dtype.get(dtype);
            let wb = b.weights.by_dtype.get(dtype);
            if wa != wb {
                let show = |w: Option<&super::model::DtypeWeights>| match w {
                    Some(w) => format!("{} bytes in {} tensors", w.bytes, w.tensors),
                    None => "none".to_string(),
                };
                self.push(
                    ChangeKind::WeightsChanged,
                    format!("weights/by_dtype/{dtype}"),
                    json!(wa),
                    json!(wb),
                    format!("{dtype} weights: {} -> {}", show(wa), show(wb)),
                );
            }
        }
        // Same bytes, other blocks: the block size is not in the weight counts.
        let (la, lb) = (a.quantization.int4_layout(), b.quantization.int4_layout());
        if la != lb {
            let show = |l: &Option<String>| l.clone().unwrap_or_else(|| "none".to_string());
            self.push(
                ChangeKind::WeightsChanged,
                "quantization/int4".into(),
                json!(la),
                json!(lb),
                format!("int4 weights: {} -> {}", show(&la), show(&lb)),
            );
        }
    }
}

/// Items by name, where the second `x` is `x#2`: files may repeat a signature key, an input
/// name or a metadata name, and each occurrence must meet its counterpart, not the first one.
fn keyed<T>(items: &[T], name: impl Fn(&T) -> &str) -> Vec<(String, &T)> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    items
        .iter()
        .map(|item| {
            let n = name(item);
            let count = seen.entry(n).or_insert(0);
            *count += 1;
            let key = if *count == 1 {
                n.to_string()
            } else {
                format!("{n}#{count}")
            };
            (key, item)
        })
        .collect()
}

fn lookup<'a, T>(keyed: &[(String, &'a T)], key: &str) -> Option<&'a T> {
    keyed.iter().find(|(k, _)| k == key).map(|(_, t)| *t)
}

fn versions(m: &ModelInfo) -> BTreeMap<&str, BTreeSet<i32>> {
    let mut v: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    for code in &m.operator_codes {
        v.entry(code.name.as_str())
            .or_default()
            .insert(code.version);
    }
    v
}

fn opt(s: &Option<String>) -> String {
    s.as_ref()
        .map_or_else(|| "none".to_string(), |s| format!("`{s}`"))
}

/// Quantization equality: bit-exact scales, so a NaN scale still equals itself.
fn same_quantization(a: Option<&Quantization>, b: Option<&Quantization>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            bits(&a.scale) == bits(&b.scale)
                && a.zero_point == b.zero_point
                && (a.quantized_dimension == b.quantized_dimension || a.scale.len() <= 1)
                && a.details == b.details
                && a.block_size == b.block_size
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, dtype: &str) -> SignatureTensor {
        SignatureTensor {
            name: name.to_string(),
            tensor: Tensor {
                index: 0,
                name: name.to_string(),
                dtype: dtype.to_string(),
                shape: vec![1, 2],
                shape_signature: vec![-1, 2],
                quantization: None,
                sparsity: None,
                is_variable: false,
                data_bytes: 0,
            },
        }
    }

    fn side(a: &[SignatureTensor], b: &[SignatureTensor]) -> Vec<(ChangeKind, String)> {
        let mut d = Differ {
            changes: Vec::new(),
        };
        d.side("sig", "input", a, b);
        d.changes.into_iter().map(|c| (c.kind, c.message)).collect()
    }

    #[test]
    fn same_position_new_name_is_a_rename() {
        let changes = side(&[tensor("x", "float32")], &[tensor("y", "float32")]);
        assert_eq!(
            changes,
            [(
                ChangeKind::TensorRenamed,
                "input `sig/x` renamed to `y`".to_string()
            )]
        );
    }

    #[test]
    fn extra_name_is_an_addition_and_order_is_checked() {
        let a = [tensor("x", "float32"), tensor("m", "bool")];
        let b = [
            tensor("m", "bool"),
            tensor("x", "int8"),
            tensor("z", "float32"),
        ];
        let kinds: Vec<ChangeKind> = side(&a, &b).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            kinds,
            [
                ChangeKind::DtypeChanged,
                ChangeKind::TensorAdded,
                ChangeKind::TensorsReordered
            ]
        );
    }

    #[test]
    fn removed_name_without_replacement_is_a_removal() {
        let a = [tensor("x", "float32"), tensor("m", "bool")];
        let b = [tensor("x", "float32")];
        let changes = side(&a, &b);
        assert_eq!(
            changes,
            [(
                ChangeKind::TensorRemoved,
                "input `sig/m` (bool [-1,2])".to_string()
            )]
        );
    }

    #[test]
    fn repeated_names_meet_their_own_occurrence() {
        let a = [tensor("x", "float32"), tensor("x", "int8")];
        assert!(side(&a, &a).is_empty());
        let b = [tensor("x", "float32"), tensor("x", "uint8")];
        assert_eq!(
            side(&a, &b),
            [(
                ChangeKind::DtypeChanged,
                "input `sig/x#2`: dtype int8 -> uint8".to_string()
            )]
        );
    }

    #[test]
    fn quantization_compares_bit_exactly_and_the_axis_only_with_several_scales() {
        let q = |scale: Vec<f32>, zp: Vec<i64>| Quantization {
            scale,
            zero_point: zp,
            quantized_dimension: 3,
            min: vec![],
            max: vec![],
            details: None,
            block_size: None,
        };
        // The axis only matters when there is more than one scale.
        let mut other_axis = q(vec![0.5], vec![-1]);
        other_axis.quantized_dimension = 0;
        assert!(same_quantization(
            Some(&q(vec![0.5], vec![-1])),
            Some(&other_axis)
        ));
        assert!(!same_quantization(Some(&q(vec![0.5], vec![-1])), None));
    }
}
