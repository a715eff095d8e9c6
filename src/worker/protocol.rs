//! The worker protocol, version 1: JSON lines. Requests carry a fully resolved
//! [`BuildPlan`] as data; events report progress, results and structured errors. The
//! Python side lives in `python/worker.py`; both sides change together.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::recipe::BuildPlan;

/// The protocol version this binary speaks; the worker says its own in `hello`.
pub const PROTOCOL: u32 = 1;

/// What `litert` asks of the worker.
#[derive(Debug, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request<'a> {
    Build {
        id: &'a str,
        plan: &'a BuildPlan,
        /// Where the worker writes the artifact; `litert` renames it into place.
        temp_output: &'a str,
        /// Metadata entries (name, text) the worker adds to an artifact the converter
        /// writes: the artifact's provenance ([`crate::provenance`]).
        metadata: Vec<(String, String)>,
        allow_code: bool,
        allow_unsafe: bool,
    },
    /// Run a written `.litertlm` bundle with LiteRT-LM.
    CheckBundle {
        id: &'a str,
        bundle: &'a str,
        /// New tokens per prompt.
        max_new: u32,
        prompts: Vec<BundlePrompt>,
    },
    /// Load the plan's model and report its inputs and outputs (`litert init`); nothing is
    /// converted.
    Describe {
        id: &'a str,
        plan: &'a BuildPlan,
        allow_code: bool,
        allow_unsafe: bool,
    },
    Shutdown,
}

/// A prompt for the bundle check, with the tokens the generation check made for it.
#[derive(Debug, Clone, Serialize)]
pub struct BundlePrompt {
    pub text: String,
    pub expected_ids: Vec<i64>,
}

/// What the worker reports.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Hello {
        protocol: u32,
        python: String,
        pid: u32,
    },
    Progress {
        id: String,
        stage: String,
        #[serde(default)]
        message: String,
    },
    Result(Box<BuildResult>),
    BundleCheck(Box<BundleCheck>),
    Description(Box<Description>),
    Error(Box<WorkerError>),
    Bye,
}

/// A finished build.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BuildResult {
    pub id: String,
    /// The input signature the artifact was exported with.
    pub signature: Vec<SignatureInput>,
    /// The artifact's outputs in the model's output order: the name each got and the Keras
    /// name it came from (empty for a generation export, whose outputs the plan names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputName>,
    pub parity: Option<ParityReport>,
    /// What calibration read and used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<CalibrationSummary>,
    /// The artifact against the float Keras model on held-out samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<AccuracyReport>,
    /// For a generation export: what the artifact holds and how it generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationResult>,
    /// Seconds per stage.
    pub timings: BTreeMap<String, f64>,
    /// Package versions of the worker (`python`, `tensorflow`, `keras`, ...).
    pub versions: BTreeMap<String, String>,
}

/// One output of the artifact and where its name came from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct OutputName {
    /// The name in the artifact's signature.
    pub name: String,
    /// The Keras name (an output layer's name or a dict output's key); `None` where Keras
    /// names none (the artifact then says `output_N`, or the recipe's `outputs:` name).
    pub keras: Option<String>,
}

/// A model's inputs and outputs as Keras declares them (`None` for a dynamic dimension).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Description {
    pub id: String,
    /// How the model takes its inputs: `single`, `list`, `dict`, or `positional` (a
    /// subclassed model whose inputs Keras inferred, named `args_N`).
    pub structure: String,
    pub inputs: Vec<SignatureInput>,
    /// Outputs with their Keras names (layer names, or dict keys); a name is empty where
    /// Keras gives none.
    pub outputs: Vec<SignatureInput>,
    /// The Keras class of the model (`Functional`, `Sequential`, a KerasHub task...).
    pub class_name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SignatureInput {
    pub name: String,
    pub shape: Vec<Option<i64>>,
    pub dtype: String,
}

/// Keras against LiteRT on the same inputs.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ParityReport {
    pub samples: u32,
    /// Where the real inputs came from: `calibration`, `accuracy_data`, or `random` when
    /// the recipe has no data (then every sample is seeded N(0,1)).
    pub source: String,
    /// How many samples came from that data; the rest are random.
    #[serde(default)]
    pub from_data: u32,
    #[serde(default)]
    pub random: u32,
    pub names_ok: bool,
    pub shapes_ok: bool,
    pub outputs: Vec<OutputParity>,
    pub ok: bool,
    /// Why no comparison could run (e.g. Flex ops the interpreter cannot execute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OutputParity {
    pub name: String,
    pub shape: Option<Vec<i64>>,
    pub max_abs_error: f64,
    pub mean_abs_error: f64,
    pub atol: Option<f64>,
    pub rtol: Option<f64>,
    pub violations: u64,
    pub shape_mismatch: Option<Vec<Vec<i64>>>,
    pub ok: bool,
}

/// A prefill/decode export: its layout, its tokenizer and its generation check.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GenerationResult {
    /// `gemma`, `llama` or `gpt2`.
    pub family: String,
    /// What wrote the artifact: `native` (litert's own writer) or `converter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
    /// Signature keys, prefill first.
    pub signatures: Vec<String>,
    pub num_layers: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub capacity: u32,
    pub prefill: Vec<u32>,
    pub cache_layout: String,
    /// What a `.litertlm` bundle needs from the tokenizer.
    #[serde(default)]
    pub tokenizer: Option<TokenizerInfo>,
    /// The preset's local directory (the recipe's, or KerasHub's download), when the
    /// recipe asks for a bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset_dir: Option<String>,
    /// The artifact against Keras `generate()`; `None` when the check is off.
    #[serde(default)]
    pub check: Option<GenerationCheck>,
}

/// The preset's tokenizer.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TokenizerInfo {
    /// The KerasHub class, e.g. `GemmaTokenizer`.
    pub class: String,
    /// `sentencepiece` or `bpe`.
    #[serde(default)]
    pub kind: Option<String>,
    pub vocabulary_size: u64,
    #[serde(default)]
    pub start_token_id: Option<i64>,
    #[serde(default)]
    pub end_token_id: Option<i64>,
    #[serde(default)]
    pub pad_token_id: Option<i64>,
    /// The tokenizer's files in a local preset (`assets/tokenizer/...`).
    #[serde(default)]
    pub files: Vec<String>,
}

/// What LiteRT-LM did with a bundle.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BundleCheck {
    pub id: String,
    pub start_token: Option<i64>,
    pub stop_tokens: Vec<Vec<i64>>,
    /// Seconds to load the bundle, and for the whole check.
    pub load_seconds: f64,
    pub seconds: f64,
    pub prompts: Vec<BundlePromptRun>,
}

/// One prompt, run by LiteRT-LM.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BundlePromptRun {
    pub prompt: String,
    /// The runtime's token ids for the prompt (without its start token).
    pub ids: Vec<i64>,
    /// Its greedy text.
    pub text: String,
    /// Its detokenization of the tokens the generation check expects.
    pub expected_text: String,
}

/// Generation parity over every check prompt.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GenerationCheck {
    /// New tokens compared per prompt.
    pub steps: u32,
    pub capacity: u32,
    pub quantized: bool,
    pub atol: f64,
    pub rtol: f64,
    /// The gate, for quantized artifacts.
    pub min_top1_agreement: Option<f64>,
    /// Steps where the artifact's top-1 token equals Keras' (given Keras' tokens so far).
    pub top1_agreement: f64,
    pub max_abs_logit_error: f64,
    pub prompts: Vec<PromptGeneration>,
    /// The prompts' verdict (the corpus is judged by the engine's gates).
    pub ok: bool,
    /// The held-out text, teacher-forced through both sides; `None` without a corpus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpus: Option<CorpusCheck>,
}

/// The corpus, teacher-forced: every token after the first predicted by the artifact (a
/// decode step over the cache) and by Keras (a forward pass over the same window).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CorpusCheck {
    /// The text file as the plan resolved it.
    pub file: String,
    /// Tokens used (start token included), and in the whole file.
    pub tokens: u64,
    pub available_tokens: u64,
    /// Next-token predictions compared.
    pub predictions: u64,
    /// Windows of at most the cache's capacity the corpus was cut into.
    pub windows: u64,
    /// Predictions where the artifact's top-1 token is Keras'.
    pub top1_agreement: f64,
    /// exp of the mean negative log-likelihood of the corpus's next tokens.
    pub perplexity: f64,
    pub keras_perplexity: f64,
    /// `perplexity / keras_perplexity`.
    pub perplexity_ratio: f64,
}

/// One check prompt, generated by both sides.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PromptGeneration {
    pub prompt: Option<String>,
    pub prompt_tokens: u32,
    /// The prompt's ids as Keras tokenized it, start token first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt_ids: Vec<i64>,
    /// Prompt and new tokens fill the cache to its last slot.
    pub fills_cache: bool,
    pub keras_ids: Vec<i64>,
    pub litert_ids: Vec<i64>,
    pub keras_text: Option<String>,
    pub litert_text: Option<String>,
    pub identical: bool,
    /// The first step where the artifact's own greedy tokens differ from Keras'.
    pub first_difference: Option<u32>,
    pub top1_agreement: f64,
    pub max_abs_logit_error: f64,
    pub mean_abs_logit_error: f64,
    /// Logits outside `atol + rtol * |keras|`.
    pub logit_violations: u64,
}

/// The calibration data as the worker read it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CalibrationSummary {
    /// `npz`, `npy`, `images`, `prompts` or `generator`.
    pub source: String,
    /// Samples the source holds (for a generator: the ones read).
    pub available: u64,
    /// Samples given to the converter.
    pub used: u64,
    /// Samples left over, available to the accuracy check as held-out data.
    pub held_out: u64,
    /// Conversions to the signature's dtypes, e.g. "`image` float64 → float32".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cast: Vec<String>,
}

/// Accuracy of the artifact against the float Keras model.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AccuracyReport {
    /// `data` (the recipe's held-out data), `held_out` (calibration samples calibration did
    /// not use) or `random` (seeded random inputs).
    pub source: String,
    pub samples: u64,
    /// How many samples the data holds (for `data`): the report says how many were used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<u64>,
    pub outputs: Vec<OutputAccuracy>,
    /// Accuracy on the labels, when the recipe names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<LabelAccuracy>,
    /// Why no comparison ran (e.g. Flex ops the interpreter cannot execute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// One output of the artifact against the same output of the float model.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OutputAccuracy {
    pub name: String,
    pub max_abs_error: f64,
    pub mean_abs_error: f64,
    /// Cosine similarity of the flattened outputs, averaged over samples.
    pub cosine_similarity: f64,
    /// The lowest per-sample cosine similarity.
    pub min_cosine_similarity: f64,
    /// For outputs whose last dimension is a class axis (2 or more): the fraction of
    /// samples (and positions) where both models pick the same class.
    #[serde(default)]
    pub top1_agreement: Option<f64>,
}

/// Accuracy on labelled held-out data.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LabelAccuracy {
    /// The output whose top-1 class is compared with the label.
    pub output: String,
    pub float_accuracy: f64,
    pub artifact_accuracy: f64,
}

/// The kinds of error the worker raises: the first argument of every `BuildError` in the
/// `litert_worker` package, plus what its request loop reports itself. Everything else the
/// worker reports is a Python exception class name (user code, a library), which reads as
/// [`ErrorKind::Unknown`]. Both sides change together: a test reads the embedded Python
/// sources and fails on a kind this enum does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The model source could not be loaded (a factory, a file, a preset).
    Load,
    /// The input signature does not fit the model.
    Signature,
    /// The calibration data could not be read or does not fit the inputs.
    Calibration,
    /// The accuracy data or labels could not be used.
    Accuracy,
    /// The converter failed without a more specific reason.
    Convert,
    /// The converter cannot express some ops with the allowed op sets (`ops` names them).
    UnsupportedOps,
    /// The artifact could not be run the way the parity check runs it.
    Parity,
    /// The model or capacity cannot be exported for generation.
    Generation,
    /// LiteRT-LM could not load or run a bundle.
    Bundle,
    /// A preset could not be downloaded.
    Network,
    /// The recipe runs project code without `--allow-code`.
    CodeNotAllowed,
    /// The model holds code (a `Lambda` layer) and `--allow-unsafe` was not given.
    UnsafeModel,
    /// The worker ran out of memory (its limit, or the machine's).
    OutOfMemory,
    /// A `.keras` file that is not a readable archive.
    NotAKerasArchive,
    /// A `.keras` archive larger than what it claims to hold allows.
    ArchiveTooLarge,
    /// The artifact could not be written.
    OutputUnwritable,
    /// The worker could not understand a request.
    Protocol,
    /// An exception from user code or a library: its class name is not a kind.
    #[serde(other)]
    Unknown,
}

/// A failed build, as the worker saw it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct WorkerError {
    pub id: Option<String>,
    /// The stage that failed: `import`, `load`, `signature`, `calibrate`, `convert`, `parity`.
    pub stage: String,
    /// What went wrong, as the worker names it; a Python exception class name (an error
    /// from user code or a library) reads as [`ErrorKind::Unknown`].
    pub kind: ErrorKind,
    pub message: String,
    #[serde(default)]
    pub traceback: String,
    /// For `unsupported_ops`: the ops the converter could not express.
    #[serde(default)]
    pub ops: Vec<String>,
    /// For `signature` errors: the model's own input names.
    #[serde(default)]
    pub model_inputs: Vec<String>,
    #[serde(default)]
    pub file: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse() {
        let e: Event =
            serde_json::from_str(r#"{"event":"hello","protocol":1,"python":"3.11.7","pid":4}"#)
                .unwrap();
        assert!(matches!(e, Event::Hello { protocol: 1, .. }));
        let e: Event = serde_json::from_str(
            r#"{"event":"error","id":"a","stage":"convert","kind":"unsupported_ops","message":"m","ops":["tf.X"]}"#,
        )
        .unwrap();
        let Event::Error(err) = e else {
            panic!("not an error")
        };
        assert_eq!(err.ops, vec!["tf.X".to_string()]);
        assert_eq!(err.kind, ErrorKind::UnsupportedOps);
        let e: Event = serde_json::from_str(
            r#"{"event":"error","id":"a","stage":"load","kind":"ZeroDivisionError","message":"m"}"#,
        )
        .unwrap();
        let Event::Error(err) = e else {
            panic!("not an error")
        };
        assert_eq!(err.kind, ErrorKind::Unknown);
    }

    /// The kinds the embedded Python package can raise: the literal first argument of each
    /// `BuildError(...)`, the `what` that `read_data` passes on (its callers' last
    /// argument), and the `"kind": "..."` literals of the events the request loop makes.
    fn python_kinds() -> Vec<(String, String)> {
        let mut kinds = Vec::new();
        for (file, text) in super::super::process::SCRIPT_FILES {
            let after = |needle: &str| -> Vec<&str> {
                text.match_indices(needle)
                    .map(|(i, _)| text[i + needle.len()..].trim_start())
                    .collect()
            };
            let literal = |rest: &str| -> Option<String> {
                let rest = rest.strip_prefix('"')?;
                rest.find('"').map(|end| rest[..end].to_string())
            };
            for rest in after("BuildError(") {
                match literal(rest) {
                    Some(kind) => kinds.push((file.to_string(), kind)),
                    // `class BuildError(Exception)`, and the stages that name their kind
                    // through `read_data`'s `what` (checked at its call sites below).
                    None if rest.starts_with("Exception)") || rest.starts_with("what,") => {}
                    None => panic!(
                        "{file}: a `BuildError` whose kind is not a string literal: {}",
                        rest.lines().next().unwrap_or_default()
                    ),
                }
            }
            for rest in after("read_data(") {
                let call = rest.split(')').next().unwrap_or_default();
                if let Some(kind) = call.rsplit(',').next().and_then(|a| literal(a.trim())) {
                    kinds.push((file.to_string(), kind));
                }
            }
            for rest in after("\"kind\":") {
                if let Some(kind) = literal(rest) {
                    kinds.push((file.to_string(), kind));
                }
            }
        }
        kinds
    }

    #[test]
    fn every_kind_the_worker_raises_is_known() {
        let kinds = python_kinds();
        // The scan sees the kinds it must (so it cannot pass by finding nothing).
        for expected in [
            "load",
            "generation",
            "bundle",
            "calibration",
            "out_of_memory",
        ] {
            assert!(
                kinds.iter().any(|(_, k)| k == expected),
                "the scan of the worker's sources found no `{expected}`: {kinds:?}"
            );
        }
        for (file, kind) in kinds {
            let parsed: ErrorKind = serde_json::from_value(serde_json::json!(kind)).unwrap();
            assert_ne!(
                parsed,
                ErrorKind::Unknown,
                "{file} raises the error kind `{kind}`, which `ErrorKind` does not name"
            );
        }
    }
}
