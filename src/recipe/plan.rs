//! The resolved build plan: one per artifact (recipe × variant), with every default applied,
//! paths resolved, and quantization mapped to the exact converter settings. This is what
//! `litert plan` prints and what the worker receives as data. It has no optional knobs left
//! for the worker to interpret.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use super::types::{
    ChannelOrder, Dtype, EmbeddingStorage, GenerationWriter, InputOverride, InputSpec,
    LitertKwargs, MaskDtype, OpsSet, Optimize, PromptTemplate, QuantizationMode, QuantizedIo,
    SupportedType, TokenName,
};

/// Everything needed to build one artifact.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildPlan {
    /// `name` or `name:variant`: how reports, the lock and snapshots refer to the artifact.
    pub id: String,
    pub name: String,
    pub variant: Option<String>,
    pub recipe: PathBuf,
    /// `sha256:` of the resolved recipe variant (`extends` merged, templates rendered) and
    /// its path within the project: what the lock file compares to see a recipe change.
    pub digest: String,
    /// The project root: the nearest directory above the recipe holding `litert.lock` or
    /// `.git` (the recipe's own directory when there is none). `litert.lock` lives here.
    pub root: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub model: ModelPlan,
    /// True when building runs Python code from the recipe's project (factories, custom
    /// objects, generators): `litert apply` then needs `--allow-code`.
    pub runs_code: bool,
    pub inputs: InputsPlan,
    /// The recipe's output names, by the model's own output name (`outputs:`); outputs not
    /// listed keep their Keras names.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    pub quantization: QuantizationPlan,
    pub calibration: Option<CalibrationPlan>,
    pub converter: ConverterSettings,
    pub parity: ParityPlan,
    /// Accuracy against the float model; `None` when off.
    pub accuracy: Option<AccuracyPlan>,
    pub gates: GatesPlan,
    /// A prefill/decode export for text generation instead of the forward pass; `None`
    /// for every other model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationPlan>,
    pub output: PathBuf,
    pub snapshot: PathBuf,
}

/// The model source, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelPlan {
    Keras {
        path: PathBuf,
        custom_objects: Vec<CallablePlan>,
    },
    H5 {
        path: PathBuf,
        custom_objects: Vec<CallablePlan>,
    },
    SavedModel {
        path: PathBuf,
    },
    Weights {
        path: PathBuf,
        architecture: ArchitecturePlan,
        custom_objects: Vec<CallablePlan>,
    },
    Preset {
        preset: PresetRef,
        task: String,
        args: BTreeMap<String, Value>,
        /// The template variable whose value names the preset, if any: `--set VAR=DIR`
        /// points the recipe at a local preset directory.
        #[serde(skip_serializing_if = "Option::is_none")]
        var: Option<String>,
        /// A LoRA adapter merged into the preset's weights.
        #[serde(skip_serializing_if = "Option::is_none")]
        lora: Option<PathBuf>,
    },
    Factory {
        factory: CallablePlan,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ArchitecturePlan {
    Config { path: PathBuf },
    Factory { factory: CallablePlan },
}

/// A preset by name (needs the network) or by local directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PresetRef {
    Name(String),
    Path(PathBuf),
}

/// `file.py:function` split, with the file resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallablePlan {
    pub file: PathBuf,
    pub function: String,
    pub args: BTreeMap<String, Value>,
}

/// What the input signature will be. The worker applies these to the model's own inputs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InputsPlan {
    /// The whole signature, when the recipe gives it.
    pub signature: Option<Vec<InputSpec>>,
    /// Per-input changes by name.
    pub overrides: BTreeMap<String, InputOverride>,
    pub batch_size: Option<u32>,
    pub sequence_length: Option<u32>,
    /// `[height, width]`.
    pub image_size: Option<[u32; 2]>,
    /// Every input's shape, when litert knows the model's inputs before building (a local
    /// multimodal preset, whose `config.json` and `preprocessor.json` size the image and
    /// vision inputs), and where each came from. The worker uses these shapes as they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shapes: Vec<InputShape>,
}

/// One input's shape as the artifact will have it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputShape {
    pub name: String,
    /// Batch dimension first; `null` is dynamic.
    pub shape: Vec<Option<u32>>,
    pub dtype: Dtype,
    /// Where the shape came from: the recipe (`inputs`, `batch_size`, `sequence_length`,
    /// `image_size`) or the preset's configuration, dimension by dimension.
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuantizationPlan {
    /// The typed mode, or `None` when `litert_kwargs` alone decides.
    pub mode: Option<QuantizationMode>,
    pub io: QuantizedIo,
    /// `dynamic_int4`'s block size; `None`: one scale per output channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u32>,
    /// `dynamic_int4`'s embedding table and logits projection; `None`: int8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<EmbeddingStorage>,
}

/// Exactly what is set on `tf.lite.TFLiteConverter` before `convert()`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConverterSettings {
    pub optimizations: Vec<Optimize>,
    pub supported_ops: Vec<OpsSet>,
    pub supported_types: Vec<SupportedType>,
    pub inference_input_type: Option<QuantizedIo>,
    pub inference_output_type: Option<QuantizedIo>,
    /// Whether a representative dataset (from `calibration`) is attached.
    pub representative_dataset: bool,
    pub allow_custom_ops: bool,
    /// The remaining boolean attributes by converter name, only those that are set.
    pub flags: BTreeMap<String, bool>,
    pub experimental_select_user_tf_ops: Vec<String>,
}

impl ConverterSettings {
    /// The settings a typed mode stands for, before any raw `litert_kwargs`.
    pub fn for_mode(mode: QuantizationMode, io: QuantizedIo, flex: bool, custom: bool) -> Self {
        let mut ops = match mode {
            QuantizationMode::FullInt8 => vec![OpsSet::TfliteBuiltinsInt8],
            QuantizationMode::Int16x8 => vec![OpsSet::Int16x8],
            _ => vec![OpsSet::TfliteBuiltins],
        };
        if flex {
            ops.push(OpsSet::SelectTfOps);
        }
        let optimizations = match mode {
            QuantizationMode::None => vec![],
            _ => vec![Optimize::Default],
        };
        let integer_io = matches!(mode, QuantizationMode::FullInt8 | QuantizationMode::Int16x8)
            && io != QuantizedIo::Float32;
        let mut flags = BTreeMap::new();
        // Keras sets this for every export; keeping it makes our bytes match Keras'.
        flags.insert("experimental_enable_resource_variables".to_string(), true);
        Self {
            optimizations,
            supported_ops: ops,
            supported_types: if mode == QuantizationMode::Float16 {
                vec![SupportedType::Float16]
            } else {
                vec![]
            },
            inference_input_type: integer_io.then_some(io),
            inference_output_type: integer_io.then_some(io),
            representative_dataset: mode.needs_calibration(),
            allow_custom_ops: custom,
            flags,
            experimental_select_user_tf_ops: vec![],
        }
    }

    /// Apply raw converter attributes over these settings (the rules have already refused
    /// conflicting ones).
    pub fn apply_kwargs(&mut self, kw: &LitertKwargs) {
        if let Some(o) = &kw.optimizations {
            self.optimizations.clone_from(o);
        }
        if let Some(ts) = &kw.target_spec {
            if let Some(ops) = &ts.supported_ops {
                self.supported_ops.clone_from(ops);
            }
            if let Some(types) = &ts.supported_types {
                self.supported_types.clone_from(types);
            }
            if let Some(user) = &ts.experimental_select_user_tf_ops {
                self.experimental_select_user_tf_ops.clone_from(user);
            }
        }
        if kw.inference_input_type.is_some() {
            self.inference_input_type = kw.inference_input_type;
        }
        if kw.inference_output_type.is_some() {
            self.inference_output_type = kw.inference_output_type;
        }
        if let Some(b) = kw.allow_custom_ops {
            self.allow_custom_ops = b;
        }
        for (name, value) in kwargs_flags(kw) {
            self.flags.insert(name.to_string(), value);
        }
    }
}

/// The boolean converter attributes of `litert_kwargs` that are set, by converter name.
pub fn kwargs_flags(kw: &LitertKwargs) -> Vec<(&'static str, bool)> {
    let all = [
        (
            "exclude_conversion_metadata",
            kw.exclude_conversion_metadata,
        ),
        ("experimental_new_converter", kw.experimental_new_converter),
        ("experimental_new_quantizer", kw.experimental_new_quantizer),
        (
            "experimental_new_dynamic_range_quantizer",
            kw.experimental_new_dynamic_range_quantizer,
        ),
        (
            "experimental_enable_resource_variables",
            kw.experimental_enable_resource_variables,
        ),
        (
            "experimental_lower_to_saved_model",
            kw.experimental_lower_to_saved_model,
        ),
        (
            "experimental_use_stablehlo_quantizer",
            kw.experimental_use_stablehlo_quantizer,
        ),
        (
            "_experimental_disable_per_channel",
            kw._experimental_disable_per_channel,
        ),
        (
            "_experimental_lower_tensor_list_ops",
            kw._experimental_lower_tensor_list_ops,
        ),
        ("unfold_batchmatmul", kw.unfold_batchmatmul),
        (
            "legalize_custom_tensor_list_ops",
            kw.legalize_custom_tensor_list_ops,
        ),
        (
            "canonicalizing_inf_as_min_max_float",
            kw.canonicalizing_inf_as_min_max_float,
        ),
        ("serialize_debug_metadata", kw.serialize_debug_metadata),
    ];
    all.into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .collect()
}

impl QuantizationMode {
    pub fn needs_calibration(self) -> bool {
        matches!(self, Self::Int8Fallback | Self::FullInt8 | Self::Int16x8)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::DynamicRange => "dynamic_range",
            Self::DynamicInt4 => "dynamic_int4",
            Self::Float16 => "float16",
            Self::Int8Fallback => "int8_fallback",
            Self::FullInt8 => "full_int8",
            Self::Int16x8 => "int16x8",
        }
    }
}

/// Calibration data, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationPlan {
    pub source: CalibrationSource,
    pub samples: u32,
    pub seed: u64,
    pub shuffle: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CalibrationSource {
    Npz {
        path: PathBuf,
    },
    Npy {
        files: BTreeMap<String, PathBuf>,
    },
    Images {
        dir: PathBuf,
        input: Option<String>,
        size: [u32; 2],
        scale: f64,
        mean: Vec<f64>,
        std: Vec<f64>,
        channel_order: ChannelOrder,
    },
    Prompts {
        path: PathBuf,
    },
    Generator {
        generator: CallablePlan,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParityPlan {
    pub enabled: bool,
    pub samples: u32,
    pub seed: u64,
    /// Per output name; `*` for all others.
    pub tolerance: BTreeMap<String, TolerancePlan>,
    /// Why the `*` tolerance is what it is (the recipe's, or which default), for reports.
    pub tolerance_from: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TolerancePlan {
    pub atol: f64,
    pub rtol: f64,
}

impl TolerancePlan {
    /// Default tolerances, by what the converter is asked to do (so typed modes and raw
    /// `litert_kwargs` get the same): tight for float exports, Keras' own 1e-2 for
    /// weight-only quantization, loose when activations are quantized too (accuracy gates
    /// judge those better).
    pub fn default_for(converter: &ConverterSettings) -> Self {
        Self::default_with_reason(converter).0
    }

    /// [`Self::default_for`], and why, in words for a report.
    pub fn default_with_reason(converter: &ConverterSettings) -> (Self, &'static str) {
        let (t, why) = if converter.representative_dataset {
            (0.1, "the default when activations are quantized")
        } else if !converter.optimizations.is_empty() {
            (1e-2, "the default for weight-only quantization, Keras' own")
        } else {
            (1e-4, "the default for a float export")
        };
        (Self { atol: t, rtol: t }, why)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatesPlan {
    pub no_flex: bool,
    pub no_custom_ops: bool,
    pub max_size_bytes: Option<u64>,
    pub target_runtime: Option<String>,
    /// Whether a failed check of the artifact against the quantization mode rejects it.
    pub verify_quantization: bool,
}

/// Accuracy against the float Keras model, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccuracyPlan {
    /// Where the held-out samples come from.
    pub source: AccuracySource,
    /// Array of the data holding class labels.
    pub labels: Option<String>,
    pub gates: AccuracyGates,
}

/// Held-out samples for the accuracy comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AccuracySource {
    /// The recipe's own held-out data.
    Data(CalibrationPlan),
    /// The calibration samples calibration did not use; seeded random inputs (`samples`,
    /// `seed`) when there are none.
    HeldOut { samples: u32, seed: u64 },
    /// Seeded random inputs: the variant has no data to hold out.
    Random { samples: u32, seed: u64 },
}

/// Accuracy thresholds; unset ones are not checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AccuracyGates {
    pub min_cosine_similarity: Option<f64>,
    pub max_abs_error: Option<f64>,
    pub max_mean_abs_error: Option<f64>,
    pub min_top1_agreement: Option<f64>,
    pub max_accuracy_drop: Option<f64>,
}

/// The prefill/decode export, resolved (LiteRT-LM's contract).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenerationPlan {
    /// Prefill lengths, ascending.
    pub prefill: Vec<u32>,
    pub capacity: u32,
    pub mask_dtype: MaskDtype,
    pub names: GenerationNamesPlan,
    /// What writes the artifact, and why when it is not the recipe's own choice.
    pub writer: GenerationWriter,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writer_note: Option<String>,
    /// What `apply` compares against Keras `generate()`; `None` when off.
    pub check: Option<GenerationCheckPlan>,
    /// The `.litertlm` bundle built beside the artifact; `None` when the recipe asks for none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<BundlePlan>,
}

impl From<&TokenName> for crate::litertlm::spec::TokenRef {
    fn from(t: &TokenName) -> Self {
        match t {
            TokenName::Id(id) => Self::Id(i64::from(*id)),
            TokenName::Piece(p) => Self::Piece(p.clone()),
        }
    }
}

/// The `.litertlm` bundle of a generation export: where it goes and what its LlmMetadata
/// says beyond what the tokenizer and the cache decide.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BundlePlan {
    pub output: PathBuf,
    /// `None`: the tokenizer's start token.
    pub start_token: Option<TokenName>,
    /// `None`: the tokenizer's end token.
    pub stop_tokens: Option<Vec<TokenName>>,
    pub prompt_template: Option<PromptTemplate>,
    pub jinja_template: Option<String>,
    /// Run it with LiteRT-LM after the build and compare with the generation check.
    pub verify: bool,
}

/// Signature and tensor names; `{T}` is a prefill length, `{i}` a layer index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenerationNamesPlan {
    pub prefill: String,
    pub decode: String,
    pub tokens: String,
    pub input_pos: String,
    pub mask: String,
    pub k_cache: String,
    pub v_cache: String,
    pub logits: String,
}

impl GenerationNamesPlan {
    /// Every signature key the artifact must have, prefill lengths first.
    pub fn signature_keys(&self, prefill: &[u32]) -> Vec<String> {
        let mut keys: Vec<String> = prefill
            .iter()
            .map(|t| self.prefill.replace("{T}", &t.to_string()))
            .collect();
        keys.push(self.decode.clone());
        keys
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenerationCheckPlan {
    pub prompts: Vec<String>,
    /// New tokens compared per prompt.
    pub steps: u32,
    /// Also check a prompt that fills the cache to its last slot.
    pub fill_cache: bool,
    /// Per-step logits tolerance (float artifacts).
    pub tolerance: TolerancePlan,
    /// Gate on per-step top-1 agreement (quantized artifacts).
    pub min_top1_agreement: f64,
    /// Quantized: judged by `min_top1_agreement` rather than identical ids and logits.
    pub quantized: bool,
    /// The held-out text teacher-forced through both sides; `None` when the recipe names none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corpus: Option<CorpusPlan>,
}

/// The corpus of the generation check and its gates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorpusPlan {
    /// The text file, resolved against the recipe's directory.
    pub path: PathBuf,
    /// Gate: the smallest fraction of predictions whose top-1 token is Keras'.
    pub min_top1_agreement: f64,
    /// Gate: the largest ratio of the artifact's perplexity to Keras'.
    pub max_perplexity_ratio: f64,
    /// Corpus tokens used at most.
    pub max_tokens: u32,
}

impl Dtype {
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            Self::Int8 | Self::Uint8 | Self::Int16 | Self::Int32 | Self::Int64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_int8_with_int8_io_maps_to_the_guide_settings() {
        let s = ConverterSettings::for_mode(
            QuantizationMode::FullInt8,
            QuantizedIo::Int8,
            false,
            false,
        );
        assert_eq!(s.optimizations, vec![Optimize::Default]);
        assert_eq!(s.supported_ops, vec![OpsSet::TfliteBuiltinsInt8]);
        assert_eq!(s.inference_input_type, Some(QuantizedIo::Int8));
        assert!(s.representative_dataset);
    }

    #[test]
    fn float16_sets_supported_types_and_no_dataset() {
        let s = ConverterSettings::for_mode(
            QuantizationMode::Float16,
            QuantizedIo::Float32,
            false,
            false,
        );
        assert_eq!(s.supported_types, vec![SupportedType::Float16]);
        assert!(!s.representative_dataset);
        assert_eq!(s.inference_input_type, None);
    }

    #[test]
    fn flex_is_opt_in() {
        let s =
            ConverterSettings::for_mode(QuantizationMode::None, QuantizedIo::Float32, false, false);
        assert_eq!(s.supported_ops, vec![OpsSet::TfliteBuiltins]);
        let s =
            ConverterSettings::for_mode(QuantizationMode::None, QuantizedIo::Float32, true, false);
        assert_eq!(
            s.supported_ops,
            vec![OpsSet::TfliteBuiltins, OpsSet::SelectTfOps]
        );
    }
}
