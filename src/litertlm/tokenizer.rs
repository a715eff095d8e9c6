//! Reading the tokenizers a bundle can carry: a SentencePiece model (its protobuf, decoded by
//! prost from our subset of `sentencepiece_model.proto`) or a HuggingFace `tokenizer.json`
//! (zlib after an 8-byte length). Gives the vocabulary size, the model type, the special
//! tokens, and id ↔ piece lookups for naming start and stop tokens. Bytes come from the file:
//! every length is checked, and decompression is bounded, so a hostile section gives an
//! error, never a panic or an unbounded allocation.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use prost::Message as _;

use super::model::{SpecialToken, TokenizerInfo};
use super::proto::sentencepiece::model_proto::sentence_piece;
use super::proto::sentencepiece::{ModelProto, TrainerSpec, trainer_spec};

/// The largest `tokenizer.json` we inflate (real ones are a few MB; Gemma 3's is 33 MB).
pub const MAX_HF_JSON_BYTES: u64 = 512 << 20;

/// A parsed tokenizer: what `inspect` shows, and its pieces by id.
#[derive(Debug, Clone)]
pub struct Vocab {
    pub info: TokenizerInfo,
    pieces: HashMap<i64, String>,
    /// The tokenizer starts a prompt with no token (Qwen 3), so a bundle of it has no start
    /// token unless the recipe names one; otherwise a missing `bos` is an error.
    pub no_start_token: bool,
    /// Pieces matched whole in text, never cut by the tokenizer's algorithm: SentencePiece's
    /// user-defined pieces, a HuggingFace tokenizer's added tokens (turn markers must be).
    whole: HashSet<String>,
}

impl Vocab {
    /// The ids of the special tokens with `role` (`bos`, `eos`), in the tokenizer's order.
    pub fn ids_of(&self, role: &str) -> Vec<i64> {
        self.info
            .special_tokens
            .iter()
            .filter(|t| t.role == role)
            .map(|t| t.id)
            .collect()
    }

    pub fn piece(&self, id: i64) -> Option<&str> {
        self.pieces.get(&id).map(String::as_str)
    }

    /// The id of a piece, if the vocabulary has it (smallest id if it has it twice).
    pub fn id(&self, piece: &str) -> Option<i64> {
        self.pieces
            .iter()
            .filter(|(_, p)| p.as_str() == piece)
            .map(|(&id, _)| id)
            .min()
    }

    /// Is `piece` matched whole wherever it is in a text?
    pub fn matches_whole(&self, piece: &str) -> bool {
        self.whole.contains(piece)
    }

    pub fn len(&self) -> u64 {
        self.info.vocab_size
    }

    pub fn is_empty(&self) -> bool {
        self.info.vocab_size == 0
    }
}

/// A SentencePiece model file's bytes.
pub fn sentencepiece(bytes: &[u8]) -> Result<Vocab, String> {
    let model = ModelProto::decode(bytes).map_err(|e| format!("not a SentencePiece model: {e}"))?;
    if model.pieces.is_empty() {
        return Err("not a SentencePiece model: it has no pieces".into());
    }
    let pieces: HashMap<i64, String> = model
        .pieces
        .iter()
        .enumerate()
        .map(|(i, p)| (i as i64, p.piece().to_string()))
        .collect();
    let whole = model
        .pieces
        .iter()
        .filter(|p| p.r#type == Some(sentence_piece::Type::UserDefined as i32))
        .map(|p| p.piece().to_string())
        .collect();
    let default_spec = TrainerSpec::default();
    let spec = model.trainer_spec.as_ref().unwrap_or(&default_spec);
    let model_type = match trainer_spec::ModelType::try_from(spec.model_type.unwrap_or(1)) {
        Ok(t) => t.as_str_name().to_ascii_lowercase(),
        Err(_) => format!("unknown({})", spec.model_type.unwrap_or(0)),
    };
    let special_tokens = [
        ("bos", spec.bos_id()),
        ("eos", spec.eos_id()),
        ("unk", spec.unk_id()),
        ("pad", spec.pad_id()),
    ]
    .into_iter()
    .filter(|(_, id)| *id >= 0)
    .map(|(role, id)| SpecialToken {
        role: role.into(),
        id: id.into(),
        piece: pieces.get(&i64::from(id)).cloned(),
    })
    .collect();
    Ok(Vocab {
        info: TokenizerInfo {
            kind: "sentencepiece".into(),
            vocab_size: model.pieces.len() as u64,
            model_type: Some(model_type),
            special_tokens,
        },
        pieces,
        no_start_token: false,
        whole,
    })
}

/// An HF_Tokenizer_Zlib section's bytes.
pub fn hf_zlib(bytes: &[u8]) -> Result<Vocab, String> {
    let Some((len, stream)) = bytes.split_first_chunk::<8>() else {
        return Err("the section is shorter than its 8-byte length".into());
    };
    let declared = u64::from_le_bytes(*len);
    if declared > MAX_HF_JSON_BYTES {
        return Err(format!(
            "the tokenizer declares {declared} bytes, more than the {MAX_HF_JSON_BYTES} read"
        ));
    }
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(stream)
        .take(declared + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!("the zlib stream is damaged: {e}"))?;
    if json.len() as u64 != declared {
        return Err(format!(
            "the tokenizer inflates to {} bytes, not the {declared} its length says",
            json.len()
        ));
    }
    hf_json(&json)
}

/// A HuggingFace `tokenizer.json`.
pub fn hf_json(json: &[u8]) -> Result<Vocab, String> {
    let doc: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("not a tokenizer JSON: {e}"))?;
    let model = doc
        .get("model")
        .ok_or("not a tokenizer JSON: it has no `model`")?;
    let mut pieces: HashMap<i64, String> = HashMap::new();
    match model.get("vocab") {
        // BPE, WordPiece, WordLevel: piece -> id.
        Some(serde_json::Value::Object(map)) => {
            for (piece, id) in map {
                if let Some(id) = id.as_i64() {
                    pieces.insert(id, piece.clone());
                }
            }
        }
        // Unigram: [[piece, score], ...] by id.
        Some(serde_json::Value::Array(list)) => {
            for (id, entry) in list.iter().enumerate() {
                if let Some(piece) = entry.get(0).and_then(|p| p.as_str()) {
                    pieces.insert(id as i64, piece.to_string());
                }
            }
        }
        _ => return Err("not a tokenizer JSON: `model.vocab` is missing".into()),
    }
    let mut special_tokens = Vec::new();
    let mut whole = HashSet::new();
    for t in doc
        .get("added_tokens")
        .and_then(|a| a.as_array())
        .into_iter()
        .flatten()
    {
        let (Some(id), Some(content)) = (
            t.get("id").and_then(|v| v.as_i64()),
            t.get("content").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        pieces.entry(id).or_insert_with(|| content.to_string());
        whole.insert(content.to_string());
        if t.get("special").and_then(|v| v.as_bool()) == Some(true) {
            special_tokens.push(SpecialToken {
                role: "special".into(),
                id,
                piece: Some(content.to_string()),
            });
        }
    }
    special_tokens.sort_by_key(|t| t.id);
    Ok(Vocab {
        info: TokenizerInfo {
            kind: "huggingface".into(),
            vocab_size: pieces.len() as u64,
            model_type: model
                .get("type")
                .and_then(|t| t.as_str())
                .map(str::to_string),
            special_tokens,
        },
        pieces,
        no_start_token: false,
        whole,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::litertlm::proto::sentencepiece::model_proto::SentencePiece;

    fn spm(pieces: &[&str]) -> Vec<u8> {
        ModelProto {
            pieces: pieces
                .iter()
                .map(|p| SentencePiece {
                    piece: Some(p.to_string()),
                    score: Some(0.0),
                    r#type: None,
                })
                .collect(),
            trainer_spec: Some(TrainerSpec {
                model_type: Some(2),
                bos_id: Some(2),
                eos_id: Some(1),
                unk_id: Some(3),
                pad_id: Some(0),
                ..Default::default()
            }),
        }
        .encode_to_vec()
    }

    #[test]
    fn sentencepiece_counts_pieces_and_names_special_ids() {
        let v = sentencepiece(&spm(&["<pad>", "<eos>", "<bos>", "<unk>", "▁a"])).unwrap();
        assert_eq!(v.info.vocab_size, 5);
        assert_eq!(v.info.model_type.as_deref(), Some("bpe"));
        assert_eq!(v.piece(1), Some("<eos>"));
        assert_eq!(v.id("<bos>"), Some(2));
        let bos = &v.info.special_tokens[0];
        assert_eq!(
            (bos.role.as_str(), bos.id, bos.piece.as_deref()),
            ("bos", 2, Some("<bos>"))
        );
    }

    #[test]
    fn garbage_is_not_a_sentencepiece_model() {
        assert!(sentencepiece(b"").is_err());
        assert!(sentencepiece(&[0xff; 40]).is_err());
    }

    #[test]
    fn hf_round_trip_through_the_section_encoding() {
        let json = br#"{"model":{"type":"BPE","vocab":{"a":0,"b":1,"<eos>":2}},
            "added_tokens":[{"id":2,"content":"<eos>","special":true},{"id":3,"content":"<x>","special":false}]}"#;
        let section = crate::litertlm::writer::compress_hf_tokenizer(json);
        let v = hf_zlib(&section).unwrap();
        assert_eq!(v.info.vocab_size, 4);
        assert_eq!(v.info.model_type.as_deref(), Some("BPE"));
        assert_eq!(v.info.special_tokens.len(), 1);
        assert_eq!(v.piece(3), Some("<x>"));
    }

    #[test]
    fn hf_sections_with_wrong_lengths_are_refused() {
        let mut section = crate::litertlm::writer::compress_hf_tokenizer(b"{}");
        assert!(hf_zlib(&section[..4]).is_err());
        section[0] = 9;
        assert!(hf_zlib(&section).unwrap_err().contains("not the 9"));
        let mut huge = section.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(hf_zlib(&huge).is_err());
    }
}
