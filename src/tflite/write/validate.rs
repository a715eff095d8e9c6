//! The checks [`write`](super::write) makes before writing anything: every index in range,
//! buffer 0 empty, quantization the interpreter accepts, names unique. A model that passes
//! them gives a file whose tables agree with each other.

use super::{BUFFER_LOCATION, ModelDef, QuantDef, TensorDef, WriteError};
use crate::tflite::names::{builtin_op, dtype_name, dtype_width, tensor_type};

/// Check every index and count, so the file the runtime gets is consistent.
pub(super) fn validate(model: &ModelDef) -> Result<(), WriteError> {
    let invalid = |msg: String| Err(WriteError::Invalid(msg));
    match model.buffers.first() {
        None => return invalid("a model needs buffer 0, the empty sentinel".into()),
        Some(b) if !b.is_empty() => {
            return invalid(
                "buffer 0 must be empty: it is the sentinel of tensors without data".into(),
            );
        }
        Some(_) => {}
    }
    if model.subgraphs.is_empty() {
        return invalid("a model needs at least one subgraph".into());
    }
    for (i, &code) in model.operator_codes.iter().enumerate() {
        if code < 0 || code == builtin_op::CUSTOM {
            return invalid(format!(
                "operator code {i} is {code}, which is not a builtin operator (custom operators are not written)"
            ));
        }
    }
    let buffers = model.buffers.len();
    for (s, sg) in model.subgraphs.iter().enumerate() {
        let tensors = sg.tensors.len();
        let tensor = |i: i32, what: &str| -> Result<(), WriteError> {
            if usize::try_from(i).is_ok_and(|i| i < tensors) {
                Ok(())
            } else {
                invalid(format!(
                    "{what} of subgraph {s} names tensor {i}, but the subgraph has {tensors}"
                ))
            }
        };
        for &i in &sg.inputs {
            tensor(i, "an input")?;
        }
        for &i in &sg.outputs {
            tensor(i, "an output")?;
        }
        for (t, def) in sg.tensors.iter().enumerate() {
            if def.buffer as usize >= buffers {
                return invalid(format!(
                    "tensor {t} (`{}`) of subgraph {s} uses buffer {}, but the model has {buffers}",
                    def.name, def.buffer
                ));
            }
            if let Some(msg) = data_size_mismatch(def, model.buffers[def.buffer as usize].len()) {
                return invalid(format!("tensor {t} (`{}`) of subgraph {s} {msg}", def.name));
            }
            if let Some(sig) = &def.shape_signature
                && sig.len() != def.shape.len()
            {
                return invalid(format!(
                    "tensor {t} (`{}`) of subgraph {s} has rank {} but a shape signature of rank {}",
                    def.name,
                    def.shape.len(),
                    sig.len()
                ));
            }
            if let Some(q) = &def.quantization {
                check_quantization(q, def, &sg.tensors).or_else(|e| {
                    invalid(format!("tensor {t} (`{}`) of subgraph {s}: {e}", def.name))
                })?;
            }
        }
        for (o, op) in sg.operators.iter().enumerate() {
            if op.opcode_index as usize >= model.operator_codes.len() {
                return invalid(format!(
                    "operator {o} of subgraph {s} uses operator code {}, but the model has {}",
                    op.opcode_index,
                    model.operator_codes.len()
                ));
            }
            for &i in &op.inputs {
                if i != -1 {
                    tensor(i, &format!("operator {o}'s input"))?;
                }
            }
            for &i in &op.outputs {
                tensor(i, &format!("operator {o}'s output"))?;
            }
        }
    }
    for sig in &model.signatures {
        let Some(sg) = model.subgraphs.get(sig.subgraph_index as usize) else {
            return invalid(format!(
                "signature `{}` runs subgraph {}, but the model has {}",
                sig.key,
                sig.subgraph_index,
                model.subgraphs.len()
            ));
        };
        for (name, index) in sig.inputs.iter().chain(&sig.outputs) {
            if *index as usize >= sg.tensors.len() {
                return invalid(format!(
                    "`{name}` of signature `{}` is tensor {index}, but subgraph {} has {}",
                    sig.key,
                    sig.subgraph_index,
                    sg.tensors.len()
                ));
            }
        }
    }
    let mut keys: Vec<&str> = model.signatures.iter().map(|s| s.key.as_str()).collect();
    keys.sort_unstable();
    if let Some(pair) = keys.windows(2).find(|w| w.first() == w.get(1)) {
        return invalid(format!(
            "two signatures are named `{}`",
            pair.first().unwrap_or(&"")
        ));
    }
    for (name, _) in &model.metadata {
        if name == BUFFER_LOCATION.0 {
            return invalid(format!("the metadata name `{name}` is the writer's own"));
        }
    }
    Ok(())
}

/// A constant tensor whose buffer holds a different number of bytes than its shape and type
/// need: the interpreter refuses it (`Subgraph::SetTensorParametersReadOnly` in
/// `tensorflow/lite/core/subgraph.cc` ensures `required_bytes == bytes` for every type but
/// strings, resources, variants and sparse tensors, then the builder reports "Tensor N is
/// invalidly specified in schema"), so say it here, with names. int4 packs two elements a
/// byte (`BytesRequired` in `tensorflow/lite/util.cc` rounds up); types without a fixed
/// element width (strings) and shapes with unknown dimensions are not checked.
fn data_size_mismatch(t: &TensorDef, buffer_len: u64) -> Option<String> {
    if buffer_len == 0 {
        return None;
    }
    let mut elements = 1u64;
    for &d in &t.shape {
        elements = elements.checked_mul(u64::try_from(d).ok()?)?;
    }
    let need = if t.dtype == tensor_type::INT4 {
        elements.div_ceil(2)
    } else {
        dtype_width(t.dtype)?.checked_mul(elements)?
    };
    (need != buffer_len).then(|| {
        format!(
            "is {} {:?}, {need} bytes, but buffer {} holds {buffer_len}",
            dtype_name(t.dtype),
            t.shape,
            t.buffer
        )
    })
}

/// What the interpreter checks of affine quantization, and XNNPACK of blockwise
/// quantization, said before the runtime says it.
fn check_quantization(q: &QuantDef, t: &TensorDef, tensors: &[TensorDef]) -> Result<(), String> {
    let shape = &t.shape;
    if let Some(b) = &q.blockwise {
        let scales = usize::try_from(b.scales)
            .ok()
            .and_then(|i| tensors.get(i))
            .ok_or_else(|| {
                format!(
                    "blockwise scales are tensor {}, but the subgraph has {}",
                    b.scales,
                    tensors.len()
                )
            })?;
        let last = shape.last().copied().unwrap_or(0);
        if b.block_size <= 0 || last % b.block_size != 0 {
            return Err(format!(
                "block size {} does not divide the last dimension of shape {shape:?}",
                b.block_size
            ));
        }
        let mut want = shape.to_vec();
        if let Some(l) = want.last_mut() {
            *l /= b.block_size;
        }
        if scales.dtype != tensor_type::FLOAT16 || scales.shape != want {
            return Err(format!(
                "blockwise scales `{}` are {} {:?}; block size {} needs float16 {want:?}",
                scales.name,
                dtype_name(scales.dtype),
                scales.shape,
                b.block_size
            ));
        }
        return Ok(());
    }
    if q.scale.is_empty() || q.scale.len() != q.zero_point.len() {
        return Err(format!(
            "quantization has {} scales and {} zero points; it needs as many of each, at least one",
            q.scale.len(),
            q.zero_point.len()
        ));
    }
    if q.scale.len() > 1 {
        let dim = usize::try_from(q.quantized_dimension)
            .ok()
            .and_then(|d| shape.get(d));
        match dim {
            Some(&n) if n as usize == q.scale.len() => {}
            _ => {
                return Err(format!(
                    "{} per-channel scales along dimension {} do not fit shape {shape:?}",
                    q.scale.len(),
                    q.quantized_dimension
                ));
            }
        }
    }
    Ok(())
}
