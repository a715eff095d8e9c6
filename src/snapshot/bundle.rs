//! Bundle snapshots: the contract of a `.litertlm` artifact, beside the signature snapshot of
//! the model inside it. What an app built on the bundle depends on and a rebuild must not
//! change unnoticed: the start and stop tokens (ids and pieces), the token budget, the prompt
//! templates, the tokenizer (kind, size, special tokens, digest of its bytes), the section
//! layout by type, and the embedded model's signature snapshot (whose KV-cache inputs and
//! outputs are the cache layout). Stored and compared as text like signature snapshots.

use serde::{Deserialize, Serialize};

use super::Snapshot;
use crate::litertlm::model::{BundleInfo, LlmMetadataInfo, TokenizerInfo};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleSnapshot {
    pub format: u32,
    pub artifact: String,
    pub format_version: String,
    /// Section types in file order, with their `model_type` where they have one.
    pub sections: Vec<String>,
    pub tokenizer: Option<TokenizerSnap>,
    pub llm_metadata: Option<LlmMetadataInfo>,
    /// The prefill/decode model's signature snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Snapshot>,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizerSnap {
    #[serde(flatten)]
    pub info: TokenizerInfo,
    pub sha256: Option<String>,
}

impl BundleSnapshot {
    pub fn of(artifact: &str, bundle: &BundleInfo) -> Self {
        let sections = bundle
            .sections
            .iter()
            .map(|s| match s.items.iter().find(|kv| kv.key == "model_type") {
                Some(mt) => format!("{} ({})", s.data_type, mt.value.as_str().unwrap_or("?")),
                None => s.data_type.clone(),
            })
            .collect();
        let tokenizer = bundle.sections.iter().find_map(|s| {
            s.tokenizer.as_ref().map(|t| TokenizerSnap {
                info: t.clone(),
                sha256: s.sha256.clone(),
            })
        });
        Self {
            format: super::FORMAT,
            artifact: artifact.to_string(),
            format_version: bundle.format_version.clone(),
            sections,
            tokenizer,
            llm_metadata: bundle.sections.iter().find_map(|s| s.llm_metadata.clone()),
            model: bundle
                .sections
                .iter()
                .find_map(|s| s.model.as_deref())
                .map(|m| Snapshot::of(artifact, m)),
            problems: bundle.problems.clone(),
        }
    }

    /// Without the embedded model's signatures (when they are in the snapshot already).
    pub fn without_model(mut self) -> Self {
        self.model = None;
        self
    }

    /// The canonical text written to `snapshots/*.yaml`.
    pub fn render(&self) -> String {
        let body = serde_saphyr::to_string(self).unwrap_or_default();
        format!(
            "# litert bundle snapshot of `{}`: tokens, tokenizer, cache layout and signatures an app depends on.\n\
             # Written by `litert apply`; review changes like code (`litert snapshot review`).\n{body}",
            self.artifact
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::litertlm::proto::litert_lm::{LlmMetadata, TokenIds, TokenUnion, token_union};
    use crate::litertlm::proto::sentencepiece::{ModelProto, model_proto};
    use crate::litertlm::{Bundle, Data, read_path};
    use prost::Message as _;

    fn bundle(stop: i32, pieces: usize) -> String {
        let dir = tempfile::tempdir().unwrap();
        let spm = ModelProto {
            pieces: (0..pieces)
                .map(|i| model_proto::SentencePiece {
                    piece: Some(format!("p{i}")),
                    score: None,
                    r#type: None,
                })
                .collect(),
            trainer_spec: None,
        };
        let token = |id| TokenUnion {
            token_union: Some(token_union::TokenUnion::TokenIds(TokenIds {
                ids: vec![id],
            })),
        };
        let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tflite/basic.tflite");
        let path = dir.path().join("b.litertlm");
        let mut b = Bundle::default();
        b.add_prefill_decode_model(&model)
            .add_sentencepiece(Data::Bytes(spm.encode_to_vec()))
            .add_llm_metadata(&LlmMetadata {
                start_token: Some(token(1)),
                stop_tokens: vec![token(stop)],
                max_num_tokens: 64,
                ..Default::default()
            });
        b.write(&path).unwrap();
        BundleSnapshot::of("b", &read_path(&path).unwrap()).render()
    }

    #[test]
    fn a_changed_stop_token_or_tokenizer_changes_the_snapshot() {
        let base = bundle(2, 10);
        assert_eq!(base, bundle(2, 10));
        assert!(base.contains("stop_tokens"), "{base}");
        let stop = bundle(3, 10);
        assert_ne!(base, stop);
        assert!(super::super::diff(&base, &stop, "s.yaml".as_ref()).contains("p3"));
        assert_ne!(base, bundle(2, 11));
    }
}
