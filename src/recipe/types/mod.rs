//! The recipe wire format: what a user writes in YAML. These types are the single source of
//! the JSON Schema (`schemas/recipe.schema.json`, doc comments become descriptions) and of
//! the recipe reference in `docs/`. Everything is optional here because a base recipe named
//! by `extends:` and a variant are partial recipes; what a finished build needs is checked
//! after resolution (`rules`), where the errors can say which file and variant are at fault.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod converter;
mod generation;

pub use converter::*;
pub use generation::*;

/// # litert recipe
///
/// A recipe declares how one Keras model becomes one or more LiteRT (`.tflite`) artifacts:
/// where the model comes from, its input signature, quantization, calibration data,
/// converter options, parity validation, policy gates and where the artifact goes.
/// Relative paths are resolved against the directory of the file that contains them.
/// String values may use minijinja templates (`{{ vars.name }}`, `{{ name }}`, `{{ variant }}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "litert recipe")]
pub struct Recipe {
    /// Recipe format version. Only `1` exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,

    /// Artifact name: lower-case letters, digits, `_`, `-` and `.`. Defaults to the recipe
    /// file's stem. Used in reports, the lock file and default snapshot paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_.-]*$"), length(max = 100))]
    pub name: Option<String>,

    /// Free text shown by `litert plan` and recorded in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,

    /// A base recipe (path relative to this file) that this one deep-merges over: mappings
    /// merge key by key, every other value (lists included) is replaced. Chains are allowed;
    /// cycles are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<String>,

    /// Template variables, readable as `{{ vars.NAME }}` (or `{{ NAME }}`) in any string
    /// value. `--set NAME=VALUE` on the command line overrides a declared variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vars: Option<BTreeMap<String, Value>>,

    /// Environment variables that templates may read as `{{ env.NAME }}`. Nothing else of the
    /// environment is visible, so a recipe says what it depends on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,

    /// Where the model comes from: exactly one source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSource>,

    /// Overrides for named model inputs: shape (with `null` for dynamic dimensions) and/or
    /// dtype. Inputs not listed keep what the model declares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<BTreeMap<String, InputOverride>>,

    /// The whole input signature. Replaces what the model declares; every input needs a
    /// shape and a dtype. A list in call order (an input without a `name` is named `args_N`,
    /// as Keras does, with a warning), or a mapping from input name to `{shape, dtype}` for
    /// a model called with a dict. Cannot be combined with `inputs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_signature: Option<InputSignature>,

    /// Names for the artifact's outputs, by the model's own output name: the Keras name
    /// (the output layer's name, or the key of a dict output), or `output_N` for the N-th
    /// output of a model that names none (a subclassed model). Outputs not listed keep the
    /// Keras name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<BTreeMap<String, String>>,

    /// A static batch size: the first dimension of every input. Unset keeps the model's
    /// (usually dynamic) batch dimension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65536))]
    pub batch_size: Option<u32>,

    /// A static sequence length for text models: the second dimension of every integer
    /// token input (`token_ids`, `padding_mask`, `segment_ids`, ...). A KerasHub
    /// preprocessor's own `sequence_length` does not reach the export, so say it here.
    /// Inputs sized by images rather than text (Gemma 3's `vision_indices`) take their
    /// length from the preset's configuration instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1048576))]
    pub sequence_length: Option<u32>,

    /// A static image size for vision models: one number for square images or
    /// `[height, width]`. Becomes the spatial dimensions of the image input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<ImageSize>,

    /// Quantization, as a typed mode that maps to exact converter settings
    /// (`litert plan` shows them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,

    /// Representative data for calibration (full-integer, hybrid and 16x8 modes) and for
    /// parity checks: exactly one source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,

    /// Raw TFLite converter attributes, by name. Checked against the attributes and values
    /// the converter knows; `quantization` and `ops` are the preferred way to say the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub litert_kwargs: Option<LitertKwargs>,

    /// Which operator sets the artifact may use. Builtin ops only unless opted in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<OpPolicy>,

    /// Where the artifact is written (relative to this file). Must end in `.tflite`.
    /// Use `{{ variant }}` to give each variant its own file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,

    /// Where the signature snapshot of the artifact lives. Defaults to
    /// `snapshots/NAME.yaml` (`NAME-VARIANT.yaml` for variants) under the project root (the
    /// nearest directory above the recipe holding `litert.lock` or `.git`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,

    /// Numerical parity between the Keras model and the LiteRT artifact, run after
    /// conversion on seeded inputs or calibration samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parity: Option<Parity>,

    /// Accuracy of the artifact against the float Keras model on held-out samples:
    /// per-output error, cosine similarity, top-1 agreement, and the gates they must pass.
    /// On by default for quantized variants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<Accuracy>,

    /// Policy gates the artifact must pass before it is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<Gates>,

    /// Export a KerasHub causal LM for on-device text generation: one artifact holding a
    /// `prefill_{T}` signature per prefill length and `decode`, over a per-layer KV cache,
    /// in the contract Google's LiteRT-LM runtime runs. Replaces the forward-pass export
    /// (`sequence_length`); checked token by token against Keras `generate()`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<Generation>,

    /// Named variants of this recipe (e.g. `fp32`, `fp16`, `int8`). Each deep-merges its
    /// fields over the recipe and produces its own artifact. A variant may not contain
    /// `version`, `extends`, `vars`, `env` or `variants`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("propertyNames" = {"pattern": "^[a-z0-9][a-z0-9_.-]*$"}))]
    pub variants: Option<BTreeMap<String, Recipe>>,
}

/// Where the model comes from. Give exactly one of `keras`, `h5`, `saved_model`,
/// `weights`, `preset` or `factory`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSource {
    /// A Keras 3 `.keras` archive. Loaded in Keras' safe mode unless the command line passes
    /// `--allow-unsafe` (needed for `Lambda` layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keras: Option<String>,

    /// A legacy Keras 2 HDF5 model file (`.h5` / `.hdf5`), loaded by Keras 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h5: Option<String>,

    /// A TensorFlow SavedModel directory (the one holding `saved_model.pb`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_model: Option<String>,

    /// A weights file plus the architecture it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<WeightsSource>,

    /// A KerasHub preset: by name (needs the network) or by local directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<PresetSource>,

    /// A Python function that builds the model. Runs code, so `litert apply` needs
    /// `--allow-code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factory: Option<Factory>,

    /// Custom Python objects (layers, losses) the model file refers to, as
    /// `path/file.py:Name`. Runs code, so `litert apply` needs `--allow-code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_objects: Option<Vec<String>>,
}

/// A weights file (`.weights.h5`, or a legacy `.h5` of weights) and the architecture it
/// loads into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightsSource {
    /// The weights file.
    pub file: String,
    /// The architecture: exactly one of `config` or `factory`.
    pub architecture: Architecture,
}

/// A model architecture without weights.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// A Keras model config: a `.json` file from `model.to_json()`, or a `.keras` archive
    /// whose weights are replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// A Python function that builds the (unweighted) model. Runs code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factory: Option<Factory>,
}

/// A KerasHub preset and the task class that loads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PresetSource {
    /// A preset name such as `gemma_2b_en` (downloaded by KerasHub: needs the network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A local preset directory made by `save_to_preset` (relative to this file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The KerasHub task class, e.g. `CausalLM`, `TextClassifier`, `ImageClassifier`,
    /// `Seq2SeqLM` or a concrete class such as `GemmaCausalLM`.
    #[schemars(regex(pattern = r"^[A-Z][A-Za-z0-9]*$"))]
    pub task: String,
    /// Keyword arguments for `Task.from_preset` (e.g. `num_classes: 3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<BTreeMap<String, Value>>,
    /// A LoRA adapter of this preset, as `backbone.save_lora_weights("x.lora.h5")` saves a
    /// fine-tune (relative to this file): merged into the preset's weights on export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<String>,
}

/// A Python callable that returns a `keras.Model`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Factory {
    /// `path/to/file.py:function`, the path relative to this file.
    #[schemars(regex(pattern = r"^[^:]+\.py:[A-Za-z_][A-Za-z0-9_]*$"))]
    pub callable: String,
    /// Keyword arguments passed to the function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<BTreeMap<String, Value>>,
}

/// A change to one named model input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputOverride {
    /// The full shape, batch dimension first; `null` marks a dynamic dimension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Vec<Option<u32>>>,
    /// The input's dtype.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<Dtype>,
}

/// A whole input signature, in either of the forms Keras takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum InputSignature {
    /// Inputs in call order.
    List(Vec<SignatureEntry>),
    /// Inputs by name, for a model called with a dict.
    Mapping(BTreeMap<String, SignatureShape>),
}

/// One input of a listed input signature; `name` defaults to `args_N`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignatureEntry {
    /// The input's name in the artifact's signature (default `args_N`, N its position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_.-]*$"))]
    pub name: Option<String>,
    /// The full shape, batch dimension first; `null` marks a dynamic dimension.
    pub shape: Vec<Option<u32>>,
    /// The input's dtype.
    pub dtype: Dtype,
}

/// The shape and dtype of one named input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignatureShape {
    /// The full shape, batch dimension first; `null` marks a dynamic dimension.
    pub shape: Vec<Option<u32>>,
    /// The input's dtype.
    pub dtype: Dtype,
}

/// One input of a whole input signature, as the plan carries it (always named).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// The input's name in the artifact's signature.
    pub name: String,
    /// The full shape, batch dimension first; `null` marks a dynamic dimension.
    pub shape: Vec<Option<u32>>,
    /// The input's dtype.
    pub dtype: Dtype,
}

/// A tensor element type, by numpy name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Dtype {
    Float32,
    Float16,
    Bfloat16,
    Float64,
    Int8,
    Uint8,
    Int16,
    Int32,
    Int64,
    Bool,
    String,
}

/// Image size: one number for a square, or `[height, width]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ImageSize {
    Square(#[schemars(range(min = 1, max = 16384))] u32),
    HeightWidth(#[schemars(length(min = 2, max = 2))] Vec<u32>),
}

/// Quantization settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quantization {
    /// The quantization mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<QuantizationMode>,
    /// Input/output dtype of a full-integer model: `float32` (default), `int8` or `uint8`
    /// for `full_int8`; `float32` or `int16` for `int16x8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io: Option<QuantizedIo>,
    /// `dynamic_int4` only: how many consecutive inputs of a weight row share one scale (a
    /// multiple of 32 that divides every matrix's input dimension, e.g. 32, 64 or 128).
    /// Without it, one scale per output channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 32, max = 65536))]
    pub block_size: Option<u32>,
    /// `dynamic_int4` only: how the token embedding table and the logits projection are
    /// stored. `int8` (default): one scale per row, whatever the layers use. `int4`: the
    /// layers' layout (blocks of `block_size`, or one scale per row), for the smallest
    /// file where a large vocabulary dominates it; measure its agreement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<EmbeddingStorage>,
}

/// How `dynamic_int4` stores the token embedding table and the logits projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingStorage {
    /// int8, one scale per row.
    Int8,
    /// int4, in the layers' layout.
    Int4,
}

/// What the artifact's numbers become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuantizationMode {
    /// No quantization: float32 weights and activations.
    None,
    /// Dynamic-range: int8 weights, float activations; no calibration data. Weight tensors
    /// under 1,024 elements stay float32.
    DynamicRange,
    /// int4 weights (symmetric, per output channel or per `block_size` inputs), float
    /// activations. Generation exports written by the native writer only. Weight tensors
    /// under 1,024 elements stay float32.
    DynamicInt4,
    /// float16 weights (dequantized to float32 at run time on CPU).
    Float16,
    /// Hybrid: int8 weights and activations where a kernel exists, float fallback
    /// elsewhere; float I/O. Needs calibration.
    Int8Fallback,
    /// Full integer: every op int8, conversion fails if one cannot be. Needs calibration;
    /// `io` picks float32, int8 or uint8 inputs/outputs.
    FullInt8,
    /// 16-bit activations with 8-bit weights. Needs calibration.
    Int16x8,
}

/// Input/output dtype of an integer-quantized model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuantizedIo {
    Float32,
    Int8,
    Uint8,
    Int16,
}

/// Calibration data: give exactly one of `npz`, `npy`, `images`, `prompts` or `generator`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// A `.npz` archive with one array per input, keyed by input name, samples first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub npz: Option<String>,
    /// One `.npy` file per input name, samples first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub npy: Option<BTreeMap<String, String>>,
    /// A folder of images, decoded and preprocessed for an image input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImageCalibration>,
    /// A text file of prompts, one per line, tokenized by the KerasHub preset's
    /// preprocessor to `sequence_length`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts: Option<PromptCalibration>,
    /// A Python generator function yielding one `{input_name: array}` dict per sample.
    /// Runs code, so `litert apply` needs `--allow-code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<Factory>,
    /// How many samples to use (default 100, or all the data holds if fewer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub samples: Option<u32>,
    /// Seed for shuffling and sampling (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Shuffle before taking `samples` (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shuffle: Option<bool>,
}

/// A folder of images used as calibration data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageCalibration {
    /// The folder (searched recursively for `.jpg`, `.jpeg`, `.png`, `.bmp`).
    pub dir: String,
    /// The input the images feed; defaults to the model's only image input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Resize target; defaults to the recipe's `image_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<ImageSize>,
    /// Multiply pixel values (0..255) by this first (e.g. `0.00392156862745098` for 1/255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// Per-channel mean subtracted after scaling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f64>>,
    /// Per-channel standard deviation divided by after the mean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f64>>,
    /// Channel order the model expects (default `rgb`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_order: Option<ChannelOrder>,
}

/// Channel order of image inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

/// A text file of prompts used as calibration data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptCalibration {
    /// The text file, one prompt per line (blank lines skipped).
    pub file: String,
}

/// Parity check settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Parity {
    /// Run the parity check (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Number of inputs to compare on (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub samples: Option<u32>,
    /// Seed of the random inputs (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Tolerances per output name; `*` matches every output not named. Default
    /// `{"*": {atol: 1e-4, rtol: 1e-4}}` for float models; quantized modes default looser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<BTreeMap<String, Tolerance>>,
}

/// Allowed error for one output: `|litert - keras| <= atol + rtol * |keras|` elementwise.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tolerance {
    /// Absolute tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub atol: Option<f64>,
    /// Relative tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub rtol: Option<f64>,
}

/// Policy gates on the finished artifact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gates {
    /// Fail when the artifact contains Flex ops (default true unless `ops.flex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_flex: Option<bool>,
    /// Fail when the artifact contains custom ops (default true unless `ops.custom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_custom_ops: Option<bool>,
    /// Largest allowed artifact: bytes, or a string such as `"4 MiB"` or `"500 kB"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<ByteSize>,
    /// The oldest LiteRT runtime you ship, e.g. `"2.14.0"`: fail when the artifact's
    /// `min_runtime_version` is newer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+){0,2}$"))]
    pub target_runtime: Option<String>,
    /// Check that the artifact is what `quantization.mode` promises, read from the file
    /// itself: int8 or float16 weights, integer activations, input/output dtypes and their
    /// quantization parameters (default true). Keras accepts some settings silently and
    /// dynamic-range quantization leaves weight tensors under 1,024 elements in float32, so
    /// a model can come out unquantized; a failed check rejects the artifact. Raw
    /// `litert_kwargs` are checked too, but only warn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_quantization: Option<bool>,
}

/// Accuracy against the float Keras model. Every output of the artifact is compared with
/// the Keras model's output on the same held-out samples; the thresholds below are gates
/// (a failed one rejects the artifact).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Accuracy {
    /// Run the comparison (default: true for quantized variants and whenever `accuracy` is
    /// given, false for float exports without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The held-out samples, in the same forms as `calibration` (`npz`, `npy`, `images`,
    /// `prompts`, `generator`, with `samples`, `seed`, `shuffle`). Default: the calibration
    /// samples that calibration did not use, or seeded random inputs when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Calibration>,
    /// The array of `data` (an `npz` key or an `npy` entry) holding each sample's integer
    /// class label. With it, the report also gives the float model's and the artifact's
    /// accuracy on the labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// Gate: the smallest cosine similarity between the artifact's and the float model's
    /// output, averaged over samples, for every output (e.g. `0.99`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1.0, max = 1.0))]
    pub min_cosine_similarity: Option<f64>,
    /// Gate: the largest absolute error allowed anywhere in any output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub max_abs_error: Option<f64>,
    /// Gate: the largest mean absolute error allowed for any output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub max_mean_abs_error: Option<f64>,
    /// Gate: the smallest fraction of samples (and positions, for sequence outputs) where
    /// the artifact's top-1 class equals the float model's, for every classifier-like
    /// output (last dimension of 2 or more), e.g. `0.98`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_top1_agreement: Option<f64>,
    /// Gate: how much lower the artifact's accuracy on `labels` may be than the float
    /// model's, as a fraction (`0.01` = one percentage point). Needs `labels`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_accuracy_drop: Option<f64>,
}

/// A size in bytes, or a string with a unit (`B`, `kB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ByteSize {
    Bytes(u64),
    Text(
        #[schemars(regex(pattern = r"^\s*[0-9]+(\.[0-9]+)?\s*(B|kB|KB|KiB|MB|MiB|GB|GiB)\s*$"))]
        String,
    ),
}
