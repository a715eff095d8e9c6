//! The native LLM writer: a decoder-only language model's prefill/decode `.tflite` (LiteRT-LM's
//! contract, as `generation/graph.py` exports it through the TensorFlow converter) written
//! straight from a KerasHub preset: the architecture from `config.json` ([`preset`]), each
//! weight streamed from `model.weights.h5` ([`weights`]) and quantized on the way
//! ([`quant`]) into its one buffer, a LoRA adapter merged in as it streams ([`lora`]), the
//! graph built op by op ([`graph`], [`decoder`]). No
//! TensorFlow, no Keras model, never a whole tensor in memory. It knows nothing of recipes:
//! the engine hands it a [`Spec`].

mod decoder;
mod graph;
mod layout;
mod lora;
pub mod preset;
pub mod quant;
mod weights;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use lora::Adapter;
pub use preset::{Architecture, Family, SUPPORTED};
pub use quant::Storage;
use weights::Weights;

/// dtype of the `mask` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskDtype {
    Float32,
    Float16,
    Bool,
}

/// Signature and tensor names (`{T}`: a prefill length, `{i}`: a layer).
#[derive(Debug, Clone)]
pub struct Names {
    pub tokens: String,
    pub input_pos: String,
    pub mask: String,
    pub k_cache: String,
    pub v_cache: String,
    pub logits: String,
    pub prefill: String,
    pub decode: String,
}

/// What to write.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    /// The preset directory (`config.json`, `model.weights.h5`).
    pub preset: &'a Path,
    /// A LoRA adapter of the preset (`save_lora_weights`), merged into its weights.
    pub lora: Option<&'a Path>,
    pub capacity: usize,
    pub prefill: &'a [usize],
    pub mask_dtype: MaskDtype,
    pub names: Names,
    /// How the layers' matrices are stored.
    pub storage: Storage,
    /// How the token embedding table and the logits projection are stored
    /// ([`Storage::default_table`] unless the recipe says otherwise).
    pub table_storage: Storage,
    /// Metadata entries (name, value) written into the model as they are.
    pub metadata: Vec<(String, Vec<u8>)>,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    pub architecture: Architecture,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Weights { path: PathBuf, message: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("could not write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Write(#[from] crate::tflite::WriteError),
}

/// The architecture of the preset at `dir`, refused by name if the writer does not
/// implement it.
pub fn architecture(dir: &Path) -> Result<Architecture, LlmError> {
    Architecture::read(dir)
}

/// Write the model `spec` describes to `out` (created or truncated; the caller owns making
/// it visible), reading the weights files' indexes with `python()` (the worker's interpreter).
pub fn write(
    spec: &Spec<'_>,
    python: &dyn Fn() -> Command,
    out: &Path,
) -> Result<Written, LlmError> {
    let arch = architecture(spec.preset)?;
    let weights = Arc::new(Weights::open(
        &spec.preset.join("model.weights.h5"),
        python(),
    )?);
    let adapter = spec
        .lora
        .map(|path| Adapter::open(path, spec.preset, python))
        .transpose()?;
    let model = decoder::build(spec, weights, adapter.as_ref(), arch.clone())?;
    let io = |source| LlmError::Io {
        path: out.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(out).map_err(io)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let written = crate::tflite::write(model, &mut w)?;
    w.flush().map_err(io)?;
    w.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    Ok(Written {
        architecture: arch,
        bytes: written.bytes,
    })
}
