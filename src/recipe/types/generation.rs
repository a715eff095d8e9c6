//! The recipe's `generation:` section: a causal LM exported with LiteRT-LM's prefill/decode
//! contract, its generation check and its `.litertlm` bundle.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Tolerance;

/// Text generation with a KV cache (LiteRT-LM's prefill/decode contract).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Generation {
    /// Prefill lengths: one `prefill_{T}` signature each (default `[32, 128]`, or those of
    /// them that fit the capacity). A runtime prefills a prompt in chunks of these lengths,
    /// padding the last one; export a short one too, since a chunk longer than the space
    /// left in the cache is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16))]
    pub prefill: Option<Vec<u32>>,
    /// KV-cache capacity in tokens (prompt and generated together): the last dimension of
    /// `mask` and the cache's sequence dimension (default 256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 1048576))]
    pub capacity: Option<u32>,
    /// dtype of the `mask` input: `float32` (default; 0 attends, a large negative value
    /// masks), `float16`, or `bool` (true attends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_dtype: Option<MaskDtype>,
    /// Signature and tensor names (default: LiteRT-LM's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<GenerationNames>,
    /// What writes the artifact: `native` (litert builds the graph itself and streams the
    /// preset's weights into it, in a fraction of the converter's memory; Gemma 1/2 and
    /// Llama presets on disk, with no quantization, `float16`, `dynamic_range` or
    /// `dynamic_int4`) or `converter` (TensorFlow's converter over a SavedModel; every
    /// family; no int4). Default: `native` where it applies, else `converter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<GenerationWriter>,
    /// The check `apply` runs: the artifact driven as LiteRT-LM drives it, against Keras
    /// `generate()` with a greedy sampler on tokenized prompts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<GenerationCheck>,
    /// Also pack a LiteRT-LM bundle (`.litertlm`): the prefill/decode model, the preset's
    /// tokenizer and the generation metadata, in the file Google's LiteRT-LM runtime loads.
    /// `apply` runs it with LiteRT-LM and requires the tokens of its own check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<GenerationBundle>,
}

/// The `.litertlm` bundle of a generation export.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerationBundle {
    /// Where the bundle goes, relative to the recipe (default: the `.tflite` output with the
    /// extension `.litertlm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"\.litertlm$"))]
    pub output: Option<String>,
    /// The token generation starts from, by id or piece (default: the tokenizer's start
    /// token, e.g. `<bos>`, `<|begin_of_text|>`; none for Qwen 3, which starts with none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_token: Option<TokenName>,
    /// Tokens that end generation, by id or piece (default: the tokenizer's end tokens, e.g.
    /// `<eos>`; `<|end_of_text|>` and `<|eot_id|>` for Llama 3; `<|im_end|>` for Qwen 3).
    /// LiteRT-LM needs at least one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub stop_tokens: Option<Vec<TokenName>>,
    /// Text around each role's turn when the runtime applies its prompt template (default:
    /// the family's chat format, Gemma turns, ChatML for Qwen 3 or Llama 3 headers, when the
    /// tokenizer keeps its markers whole; `{}` for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_template: Option<PromptTemplate>,
    /// A Jinja chat template (LiteRT-LM's conversation API prefers it to
    /// `prompt_template`); checked for syntax.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub jinja_template: Option<String>,
    /// Run the bundle with LiteRT-LM after each build and require the same greedy text as
    /// the generation check (default true; needs `generation.check`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
}

/// A token, by id or by its piece in the tokenizer's vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TokenName {
    Id(u32),
    Piece(#[schemars(length(min = 1))] String),
}

/// Text around each role's turn.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Affixes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Affixes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Affixes>,
}

/// A prefix and a suffix.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Affixes {
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub suffix: String,
}

/// What writes a generation artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GenerationWriter {
    Native,
    Converter,
}

/// dtype of the attention-mask input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaskDtype {
    Float32,
    Float16,
    Bool,
}

/// Names in the generation artifact. LiteRT-LM looks signatures and tensors up by these
/// names; change them only for another runtime.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerationNames {
    /// Prefill signature keys; `{T}` becomes the prefill length (default `prefill_{T}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*\{T\}[A-Za-z0-9_]*$"))]
    pub prefill: Option<String>,
    /// The decode signature key (default `decode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub decode: Option<String>,
    /// Token-id input (default `tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub tokens: Option<String>,
    /// Position input (default `input_pos`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub input_pos: Option<String>,
    /// Attention-mask input (default `mask`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub mask: Option<String>,
    /// Key cache of layer `{i}`, an input and an output of every signature (default
    /// `kv_cache_k_{i}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*\{i\}[A-Za-z0-9_]*$"))]
    pub k_cache: Option<String>,
    /// Value cache of layer `{i}` (default `kv_cache_v_{i}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*\{i\}[A-Za-z0-9_]*$"))]
    pub v_cache: Option<String>,
    /// The decode output (default `logits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub logits: Option<String>,
}

/// Generation parity settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerationCheck {
    /// Run the check (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Prompts to generate from (tokenized by the preset's tokenizer, start token first).
    /// One more prompt is made from them that fills the cache to its last slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub prompts: Option<Vec<String>>,
    /// New tokens compared per prompt (default 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4096))]
    pub steps: Option<u32>,
    /// Also check a prompt that fills the cache up to its last slot (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_cache: Option<bool>,
    /// Per-step logits tolerance for float artifacts (default `atol: 1e-3, rtol: 1e-3`);
    /// float artifacts must also generate identical token ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<Tolerance>,
    /// Gate for quantized artifacts on the prompts' continuations: the smallest fraction of
    /// steps where the artifact's top-1 token equals Keras' greedy token, given Keras'
    /// tokens so far (default 0.9). The corpus has its own gates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_top1_agreement: Option<f64>,
    /// A held-out text, teacher-forced through the artifact and Keras: top-1 agreement and
    /// perplexity on it, gated. A file (UTF-8 text, relative to the recipe), or the file
    /// with its gates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpus: Option<Corpus>,
}

/// The corpus of the generation check: its file, or the file and its gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Corpus {
    File(#[schemars(length(min = 1))] String),
    Settings(CorpusSettings),
}

/// The corpus file and its gates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorpusSettings {
    /// The held-out text (UTF-8), relative to the recipe; tokenized by the preset's
    /// tokenizer, start token first.
    #[schemars(length(min = 1))]
    pub file: String,
    /// The smallest fraction of the corpus's tokens where the artifact's top-1 next token
    /// equals Keras', both given the corpus so far (default 0.9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_top1_agreement: Option<f64>,
    /// The largest ratio of the artifact's perplexity on the corpus to Keras' (default
    /// 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0))]
    pub max_perplexity_ratio: Option<f64>,
    /// Corpus tokens used at most, from the start (default 4096): each costs one decode
    /// step of the artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1048576))]
    pub max_tokens: Option<u32>,
}

impl Corpus {
    /// The corpus's settings, whichever form the recipe wrote.
    pub fn settings(&self) -> CorpusSettings {
        match self {
            Self::File(file) => CorpusSettings {
                file: file.clone(),
                ..CorpusSettings::default()
            },
            Self::Settings(s) => s.clone(),
        }
    }
}
