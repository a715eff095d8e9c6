//! The typed, serde-serializable description of a `.litertlm` bundle that `inspect --json`,
//! `diff` and bundle snapshots are built on. Field names are the documented JSON contract
//! (`docs/inspect.md`, "Bundles"): keys may be added, never renamed or removed.

use serde::{Deserialize, Serialize};

use crate::tflite::ModelInfo;

/// Everything `inspect` reports about one bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleInfo {
    /// Always `"litertlm"`: tells a bundle description from a model description.
    pub format: String,
    /// The path as given on the command line.
    pub file: String,
    pub size_bytes: u64,
    /// `major.minor.patch` from the preamble.
    pub format_version: String,
    /// Where the header ends (32 + the FlatBuffer's size).
    pub header_bytes: u64,
    pub system_metadata: Vec<KeyValue>,
    pub sections: Vec<SectionInfo>,
    /// Why LiteRT-LM would refuse or misrun this bundle, as far as can be told without
    /// running it (a missing tokenizer, no stop tokens, a misaligned section, ...).
    pub problems: Vec<String>,
}

/// A typed metadata entry: `type` is the union member's name (`StringValue`, `Int32`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    #[serde(rename = "type")]
    pub value_type: String,
    pub value: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SectionInfo {
    pub index: u32,
    /// The format's name of the type (`TFLiteModel`, `SP_Tokenizer`, `unknown(N)`, ...).
    pub data_type: String,
    pub items: Vec<KeyValue>,
    pub begin_offset: u64,
    pub end_offset: u64,
    pub size_bytes: u64,
    /// SHA-256 of the section's bytes, for every section except models (whose weights are
    /// never read by `inspect`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    /// A TFLite section, described by the `.tflite` reader.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub model: Option<Box<ModelInfo>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tokenizer: Option<TokenizerInfo>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub llm_metadata: Option<LlmMetadataInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizerInfo {
    /// `sentencepiece` or `huggingface`.
    pub kind: String,
    pub vocab_size: u64,
    /// SentencePiece: `unigram`, `bpe`, `word`, `char`; HuggingFace: the model's `type`.
    pub model_type: Option<String>,
    /// SentencePiece: the trainer's special ids with their pieces (`bos`, `eos`, `unk`, `pad`;
    /// absent when disabled). HuggingFace: the added special tokens.
    pub special_tokens: Vec<SpecialToken>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecialToken {
    /// `bos`, `eos`, `unk`, `pad` for SentencePiece; `special` for HuggingFace added tokens.
    pub role: String,
    pub id: i64,
    pub piece: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmMetadataInfo {
    pub start_token: Option<Token>,
    pub stop_tokens: Vec<Token>,
    pub max_num_tokens: i32,
    /// Which member of `llm_model_type` is set (`generic_model`, `gemma3`, ...).
    pub model_type: Option<String>,
    pub prompt_templates: Option<PromptTemplates>,
    pub jinja_prompt_template: Option<String>,
    pub sampler: Option<Sampler>,
    pub supports_thinking: Option<bool>,
    pub supports_function_calling: Option<bool>,
    pub pad_token: Option<Token>,
    pub min_runtime_version: Option<String>,
}

/// A token by ids or by text; `pieces` names the ids when the bundle's tokenizer knows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ids: Option<Vec<i32>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pieces: Option<Vec<Option<String>>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptTemplates {
    pub user: Option<Affixes>,
    pub model: Option<Affixes>,
    pub system: Option<Affixes>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Affixes {
    pub prefix: String,
    pub suffix: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampler {
    /// `greedy`, `top_k`, `top_p`, `unspecified` or `unknown(N)`.
    #[serde(rename = "type")]
    pub kind: String,
    pub k: i32,
    pub p: f32,
    pub temperature: f32,
    pub seed: Option<i32>,
}

impl Token {
    /// `2 <bos>`, `1,107 <eos> <end_of_turn>`, `"<eos>"`.
    pub fn render(&self) -> String {
        if let Some(ids) = &self.ids {
            let ids_text: Vec<String> = ids.iter().map(i32::to_string).collect();
            let mut s = ids_text.join(",");
            if let Some(pieces) = &self.pieces {
                for p in pieces {
                    s.push(' ');
                    s.push_str(&p.as_deref().map_or("?".into(), |p| format!("{p:?}")));
                }
            }
            s
        } else if let Some(t) = &self.text {
            format!("{t:?}")
        } else {
            "(empty)".into()
        }
    }
}
