//! The native writer's step in a build: a generation plan that the native writer writes
//! becomes its artifact here, before the worker runs the generation check on it. The plan
//! is translated into the writer's [`Spec`]; the writer knows nothing of recipes.

use std::path::Path;

use super::Failure;
use crate::llm::{MaskDtype, Names, Spec, Storage};
use crate::provenance::Provenance;
use crate::pyenv::WorkerEnv;
use crate::recipe::BuildPlan;
use crate::recipe::plan::{GenerationPlan, ModelPlan, PresetRef};
use crate::recipe::types::{EmbeddingStorage, GenerationWriter, QuantizationMode};

/// Whether the native writer writes `plan`'s artifact.
pub fn writes(plan: &BuildPlan) -> bool {
    plan.generation
        .as_ref()
        .is_some_and(|g| g.writer == GenerationWriter::Native)
}

/// Write `plan`'s artifact (one [`writes`]) to `out`.
pub fn write(
    plan: &BuildPlan,
    out: &Path,
    env: &WorkerEnv,
    provenance: &Provenance,
) -> Result<(), Failure> {
    let Some(g) = plan.generation.as_ref() else {
        return Ok(());
    };
    let failure = |message: String| Failure {
        stage: "convert".into(),
        message,
        hint: Some("`generation.writer: converter` exports it through TensorFlow instead".into()),
        detail: None,
    };
    let ModelPlan::Preset {
        preset: PresetRef::Path(dir),
        lora,
        ..
    } = &plan.model
    else {
        return Err(failure("the native writer reads presets on disk".into()));
    };
    let storage = match plan.quantization.mode {
        None | Some(QuantizationMode::None) => Storage::Float32,
        Some(QuantizationMode::Float16) => Storage::Float16,
        Some(QuantizationMode::DynamicRange) => Storage::Int8PerChannel,
        Some(QuantizationMode::DynamicInt4) => Storage::Int4 {
            block: plan.quantization.block_size.map(|b| b as usize),
        },
        Some(other) => {
            return Err(failure(format!(
                "the native writer does not write `{}`",
                other.as_str()
            )));
        }
    };
    let table_storage = match plan.quantization.embedding {
        Some(EmbeddingStorage::Int4) => storage,
        Some(EmbeddingStorage::Int8) => Storage::Int8PerChannel,
        None => storage.default_table(),
    };
    let prefill: Vec<usize> = g.prefill.iter().map(|&t| t as usize).collect();
    let spec = Spec {
        preset: dir,
        lora: lora.as_deref(),
        capacity: g.capacity as usize,
        prefill: &prefill,
        mask_dtype: mask_dtype(g),
        names: names(g),
        storage,
        table_storage,
        metadata: provenance
            .entries()
            .into_iter()
            .map(|(name, value)| (name, value.into_bytes()))
            .collect(),
    };
    crate::llm::write(&spec, &|| env.command(), out).map_err(|e| match e {
        // What the native writer does not implement, the converter may.
        crate::llm::LlmError::Unsupported(_) => failure(e.to_string()),
        // A broken preset or a full disk fails either way: no hint to switch writers.
        other => Failure {
            hint: None,
            ..failure(other.to_string())
        },
    })?;
    Ok(())
}

fn mask_dtype(g: &GenerationPlan) -> MaskDtype {
    match g.mask_dtype {
        crate::recipe::types::MaskDtype::Float32 => MaskDtype::Float32,
        crate::recipe::types::MaskDtype::Float16 => MaskDtype::Float16,
        crate::recipe::types::MaskDtype::Bool => MaskDtype::Bool,
    }
}

fn names(g: &GenerationPlan) -> Names {
    let n = &g.names;
    Names {
        tokens: n.tokens.clone(),
        input_pos: n.input_pos.clone(),
        mask: n.mask.clone(),
        k_cache: n.k_cache.clone(),
        v_cache: n.v_cache.clone(),
        logits: n.logits.clone(),
        prefill: n.prefill.clone(),
        decode: n.decode.clone(),
    }
}
