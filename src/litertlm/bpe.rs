//! KerasHub's byte-level BPE tokenizers (Llama 3, Qwen 3, GPT-2) as the HuggingFace tokenizer
//! JSON a bundle's `HF_Tokenizer_Zlib` section carries. A KerasHub preset keeps such a
//! tokenizer as `assets/tokenizer/vocabulary.json` (piece → id) and `merges.txt` (one `a b`
//! merge a line, in rank order) plus its Keras config (`tokenizer.json` at the preset's root:
//! the class, `unsplittable_tokens`, `add_prefix_space`); there is no HuggingFace
//! `tokenizer.json`. This module writes one, natively, that tokenizes as KerasHub 0.32's
//! `BytePairTokenizer` does in Python (its `tokenizers` workflow, which `tokenizer(text)` and
//! `generate()` use): the same BPE model, the same pre-tokenizer, the same special tokens,
//! the byte-level decoder. It also knows each class's start and end tokens, which KerasHub
//! hard-codes in the class rather than saving in the config.
//!
//! The JSON is deterministic (keys in a fixed order, the vocabulary by id, merges in rank
//! order) and uses only forms every `tokenizers` release since 0.13 reads (merges as
//! `"a b"` strings), since LiteRT-LM embeds its own copy of the Rust crate.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::model::SpecialToken;
use super::tokenizer::{self, Vocab};

/// Where `save_to_preset` puts a byte-pair tokenizer's assets.
pub const ASSETS: &str = "assets/tokenizer";
pub const VOCABULARY: &str = "vocabulary.json";
pub const MERGES: &str = "merges.txt";
/// The Keras config of the preset's tokenizer (not a HuggingFace tokenizer).
pub const CONFIG: &str = "tokenizer.json";

/// KerasHub 0.32's `SPLIT_PATTERN_TOKENIZERS` (`byte_pair_tokenizer.py`), the Llama 3 split
/// regex. KerasHub hands it to `pre_tokenizers.Split` as a Python `str`, which `tokenizers`
/// takes as a literal string, not a regex (a regex must be wrapped in `tokenizers.Regex`):
/// the split never matches real text, and with `ByteLevel(use_regex=False)` after it, the
/// whole text between special tokens is one BPE word. Written the same way here, since the
/// bundle must tokenize as Keras does (see `docs/llm.md`, "Byte-level BPE tokenizers").
pub const KERAS_SPLIT_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// What a KerasHub tokenizer class adds on top of the base byte-pair tokenizer: its special
/// tokens (the unsplittable ones when the config names none), the token it starts a prompt
/// with, and the tokens it stops generating at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    pub class: &'static str,
    pub special: &'static [&'static str],
    pub start: Option<&'static str>,
    pub ends: &'static [&'static str],
}

/// The classes whose tokenization is the base `BytePairTokenizer`'s (no override of the
/// pre-tokenizer or the model), from KerasHub 0.32's `llama3_tokenizer.py`,
/// `qwen3_tokenizer.py` and `gpt2_tokenizer.py`.
pub const FAMILIES: &[Family] = &[
    // `<|eot_id|>` is `end_token2`: KerasHub stops at it as well as at `<|end_of_text|>`,
    // since instruction-tuned Llama 3 models end their turns with it.
    Family {
        class: "Llama3Tokenizer",
        special: &[
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
        ],
        start: Some("<|begin_of_text|>"),
        ends: &["<|end_of_text|>", "<|eot_id|>"],
    },
    // Qwen 3 starts a prompt with no token; `<|endoftext|>` is its pad token.
    Family {
        class: "Qwen3Tokenizer",
        special: &["<|im_end|>", "<|endoftext|>"],
        start: None,
        ends: &["<|im_end|>"],
    },
    Family {
        class: "GPT2Tokenizer",
        special: &["<|endoftext|>"],
        start: Some("<|endoftext|>"),
        ends: &["<|endoftext|>"],
    },
];

/// A preset's byte-pair tokenizer, converted.
#[derive(Debug, Clone)]
pub struct KerasBpe {
    pub family: Family,
    /// The HuggingFace tokenizer JSON.
    pub json: Vec<u8>,
    /// `vocabulary.json`, the file errors about pieces name.
    pub vocabulary: PathBuf,
}

impl KerasBpe {
    /// The vocabulary of the JSON, with the class's start token as `bos` and its end tokens
    /// as `eos` (what a bundle's start and stop tokens default to).
    pub fn vocab(&self) -> Result<Vocab, String> {
        let mut vocab = tokenizer::hf_json(&self.json)?;
        let named = |piece: &str, role: &str| -> Result<SpecialToken, String> {
            let id = vocab.id(piece).ok_or_else(|| {
                format!(
                    "the {} token {piece:?} of a `{}` is not in `{}`",
                    if role == "bos" { "start" } else { "end" },
                    self.family.class,
                    self.vocabulary.display()
                )
            })?;
            Ok(SpecialToken {
                role: role.into(),
                id,
                piece: Some(piece.into()),
            })
        };
        let mut roles = Vec::new();
        if let Some(start) = self.family.start {
            roles.push(named(start, "bos")?);
        }
        for end in self.family.ends {
            roles.push(named(end, "eos")?);
        }
        vocab
            .info
            .special_tokens
            .retain(|t| !roles.iter().any(|r| r.id == t.id));
        vocab.info.special_tokens.extend(roles);
        vocab.info.special_tokens.sort_by_key(|t| t.id);
        vocab.no_start_token = self.family.start.is_none();
        Ok(vocab)
    }
}

/// Does the preset keep a byte-pair tokenizer?
pub fn is_keras_bpe(preset: &Path) -> bool {
    let assets = preset.join(ASSETS);
    assets.join(VOCABULARY).is_file() && assets.join(MERGES).is_file()
}

/// Read a preset's byte-pair tokenizer and write its HuggingFace JSON.
pub fn from_preset(preset: &Path) -> Result<KerasBpe, String> {
    let assets = preset.join(ASSETS);
    let vocabulary = assets.join(VOCABULARY);
    let merges_path = assets.join(MERGES);
    let config_path = preset.join(CONFIG);
    let read =
        |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read `{}`: {e}", p.display()));

    let config: Value = serde_json::from_slice(&read(&config_path)?).map_err(|e| {
        format!(
            "`{}` is not KerasHub's tokenizer config: {e}",
            config_path.display()
        )
    })?;
    let class = config
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            format!(
                "`{}` names no tokenizer class (`class_name`)",
                config_path.display()
            )
        })?;
    let family = *FAMILIES.iter().find(|f| f.class == class).ok_or_else(|| {
        let known: Vec<String> = FAMILIES.iter().map(|f| format!("`{}`", f.class)).collect();
        format!(
            "the preset's tokenizer is a `{class}` (`{}`); litert writes the byte-pair tokenizers of {} into a bundle",
            config_path.display(),
            known.join(", ")
        )
    })?;
    let settings = config.get("config").cloned().unwrap_or(Value::Null);
    let add_prefix_space = settings
        .get("add_prefix_space")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // KerasHub's `unsplittable_tokens` default to the class's special tokens; a converted
    // Hugging Face preset saves its own list (every added token but the reserved ones).
    let special: Vec<String> = match settings.get("unsplittable_tokens") {
        None | Some(Value::Null) => family.special.iter().map(|s| s.to_string()).collect(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|t| {
                t.as_str().map(str::to_string).ok_or_else(|| {
                    format!(
                        "`{}`: `unsplittable_tokens` holds {t}, not a string",
                        config_path.display()
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "`{}`: `unsplittable_tokens` is {other}, not a list",
                config_path.display()
            ));
        }
    };

    let vocab = parse_vocabulary(&read(&vocabulary)?)
        .map_err(|e| format!("`{}`: {e}", vocabulary.display()))?;
    let merges_text = String::from_utf8(read(&merges_path)?)
        .map_err(|_| format!("`{}` is not UTF-8", merges_path.display()))?;
    let merges =
        parse_merges(&merges_text).map_err(|e| format!("`{}`: {e}", merges_path.display()))?;
    let json = tokenizer_json(&vocab, &merges, &special, add_prefix_space).map_err(|e| {
        format!(
            "the tokenizer in `{}` cannot be written: {e}",
            assets.display()
        )
    })?;
    Ok(KerasBpe {
        family,
        json,
        vocabulary,
    })
}

/// `vocabulary.json`: piece → id, in id order. Ids are non-negative and distinct.
pub fn parse_vocabulary(bytes: &[u8]) -> Result<Vec<(String, u32)>, String> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JSON vocabulary: {e}"))?;
    let map = doc
        .as_object()
        .ok_or("not a vocabulary: expected an object of piece → id")?;
    let mut pieces = Vec::with_capacity(map.len());
    let mut seen: HashMap<u32, &str> = HashMap::with_capacity(map.len());
    for (piece, id) in map {
        let id = id
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| format!("the piece {piece:?} has the id {id}, not a token id"))?;
        if let Some(other) = seen.insert(id, piece) {
            return Err(format!(
                "the pieces {other:?} and {piece:?} share the id {id}"
            ));
        }
        pieces.push((piece.clone(), id));
    }
    if pieces.is_empty() {
        return Err("the vocabulary is empty".into());
    }
    pieces.sort_by_key(|&(_, id)| id);
    Ok(pieces)
}

/// `merges.txt` as KerasHub reads it: one `a b` pair a line, trailing whitespace dropped,
/// lines with `#version:` skipped (the header some files carry).
pub fn parse_merges(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut merges = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.contains("#version:") {
            continue;
        }
        let mut parts = line.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty() => {
                merges.push((a.to_string(), b.to_string()));
            }
            _ => {
                return Err(format!(
                    "line {}: {line:?} is not a merge of two pieces separated by one space",
                    n + 1
                ));
            }
        }
    }
    Ok(merges)
}

/// The HuggingFace tokenizer JSON of a KerasHub byte-pair tokenizer: `vocab` in id order,
/// `merges` in rank order, `special` tokens matched whole before the BPE (each must be a
/// piece of the vocabulary, which gives its id).
pub fn tokenizer_json(
    vocab: &[(String, u32)],
    merges: &[(String, String)],
    special: &[String],
    add_prefix_space: bool,
) -> Result<Vec<u8>, String> {
    let ids: HashMap<&str, u32> = vocab.iter().map(|(p, id)| (p.as_str(), *id)).collect();
    for (a, b) in merges {
        // KerasHub refuses a merge of unknown pieces; `tokenizers` (KerasHub's and
        // LiteRT-LM's) refuses one whose result is not a piece.
        for piece in [a, b] {
            if !ids.contains_key(piece.as_str()) {
                return Err(format!(
                    "the merge `{a} {b}` uses {piece:?}, which is not in the vocabulary"
                ));
            }
        }
        if !ids.contains_key(format!("{a}{b}").as_str()) {
            return Err(format!(
                "the merge `{a} {b}` makes {:?}, which is not in the vocabulary",
                format!("{a}{b}")
            ));
        }
    }
    let mut added: Vec<(u32, &str)> = Vec::new();
    let mut seen = HashSet::new();
    for token in special {
        let id = *ids
            .get(token.as_str())
            .ok_or_else(|| format!("the special token {token:?} is not in the vocabulary"))?;
        if seen.insert(token.as_str()) {
            added.push((id, token));
        }
    }
    added.sort();
    let added_tokens: Vec<Value> = added
        .iter()
        .map(|(id, content)| {
            json!({
                "id": id,
                "content": content,
                "single_word": false,
                "lstrip": false,
                "rstrip": false,
                "normalized": false,
                "special": true,
            })
        })
        .collect();
    let mut vocab_map = Map::with_capacity(vocab.len());
    for (piece, id) in vocab {
        vocab_map.insert(piece.clone(), json!(id));
    }
    let merges: Vec<Value> = merges
        .iter()
        .map(|(a, b)| Value::String(format!("{a} {b}")))
        .collect();
    let doc = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": null,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"String": KERAS_SPLIT_PATTERN},
                    "behavior": "Isolated",
                    "invert": false,
                },
                {
                    "type": "ByteLevel",
                    "add_prefix_space": add_prefix_space,
                    "trim_offsets": true,
                    "use_regex": false,
                },
            ],
        },
        "post_processor": null,
        "decoder": {
            "type": "ByteLevel",
            "add_prefix_space": true,
            "trim_offsets": true,
            "use_regex": true,
        },
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": null,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": false,
            "byte_fallback": false,
            "vocab": Value::Object(vocab_map),
            "merges": merges,
        },
    });
    serde_json::to_vec(&doc).map_err(|e| format!("cannot serialize the tokenizer: {e}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A preset directory with a byte-pair tokenizer of `class`: pieces `a`, `b`, `ab`, `Ġ`,
    /// `Ġab` and the family's special tokens after them.
    pub(crate) fn preset(dir: &Path, class: &str, special: &[&str], unsplittable: Option<&[&str]>) {
        let assets = dir.join(ASSETS);
        std::fs::create_dir_all(&assets).unwrap();
        let mut vocab = Map::new();
        for p in ["a", "b", "ab", "\u{120}", "\u{120}ab"]
            .iter()
            .chain(special)
        {
            let id = vocab.len();
            vocab.insert(p.to_string(), json!(id));
        }
        std::fs::write(assets.join(VOCABULARY), Value::Object(vocab).to_string()).unwrap();
        std::fs::write(assets.join(MERGES), "#version: 0.2\na b\n\u{120} ab\n").unwrap();
        let config = json!({
            "module": "keras_hub.src.models.x",
            "class_name": class,
            "config": {"add_prefix_space": false, "unsplittable_tokens": unsplittable},
        });
        std::fs::write(dir.join(CONFIG), config.to_string()).unwrap();
    }

    pub(crate) const LLAMA3: &[&str] = &[
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
    ];

    fn doc(k: &KerasBpe) -> Value {
        serde_json::from_slice(&k.json).unwrap()
    }

    #[test]
    fn the_json_is_kerashubs_tokenizer_with_the_split_kerashub_writes() {
        let dir = tempfile::tempdir().unwrap();
        preset(dir.path(), "Llama3Tokenizer", LLAMA3, None);
        let k = from_preset(dir.path()).unwrap();
        let d = doc(&k);
        assert_eq!(d["model"]["type"], "BPE");
        assert_eq!(d["model"]["merges"], json!(["a b", "\u{120} ab"]));
        // The vocabulary in id order.
        let pieces: Vec<&String> = d["model"]["vocab"].as_object().unwrap().keys().collect();
        assert_eq!(pieces[..3], ["a", "b", "ab"]);
        assert_eq!(d["model"]["vocab"]["<|eot_id|>"], 9);
        let pre = &d["pre_tokenizer"]["pretokenizers"];
        assert_eq!(pre[0]["type"], "Split");
        assert_eq!(pre[0]["pattern"]["String"], KERAS_SPLIT_PATTERN);
        assert_eq!(pre[1]["type"], "ByteLevel");
        assert_eq!(pre[1]["use_regex"], false);
        assert_eq!(d["decoder"]["type"], "ByteLevel");
        assert_eq!(d["post_processor"], Value::Null);
        // The class's special tokens, matched whole, with their vocabulary ids.
        let added: Vec<(i64, &str)> = d["added_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["id"].as_i64().unwrap(), t["content"].as_str().unwrap()))
            .collect();
        assert_eq!(added.len(), 5);
        assert_eq!(added[0], (5, "<|begin_of_text|>"));
        assert!(d["added_tokens"][0]["special"].as_bool().unwrap());
        // Written twice, the same bytes.
        assert_eq!(k.json, from_preset(dir.path()).unwrap().json);
    }

    #[test]
    fn start_and_end_tokens_come_from_the_class() {
        let dir = tempfile::tempdir().unwrap();
        preset(dir.path(), "Llama3Tokenizer", LLAMA3, None);
        let v = from_preset(dir.path()).unwrap().vocab().unwrap();
        let roles: Vec<(&str, i64)> = v
            .info
            .special_tokens
            .iter()
            .map(|t| (t.role.as_str(), t.id))
            .collect();
        assert!(roles.contains(&("bos", 5)), "{roles:?}");
        assert!(
            roles.contains(&("eos", 6)) && roles.contains(&("eos", 9)),
            "{roles:?}"
        );
        assert!(!v.no_start_token);
        assert_eq!(v.info.kind, "huggingface");
        assert_eq!(v.len(), 10);

        let dir = tempfile::tempdir().unwrap();
        preset(
            dir.path(),
            "Qwen3Tokenizer",
            &["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            None,
        );
        let v = from_preset(dir.path()).unwrap().vocab().unwrap();
        assert!(v.no_start_token);
        assert_eq!(v.ids_of("eos"), [7]);
        assert!(v.ids_of("bos").is_empty());
    }

    #[test]
    fn the_configs_unsplittable_tokens_replace_the_classs() {
        let dir = tempfile::tempdir().unwrap();
        preset(
            dir.path(),
            "Qwen3Tokenizer",
            &["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            Some(&["<|im_start|>", "<|im_end|>", "<|im_end|>"]),
        );
        let d = doc(&from_preset(dir.path()).unwrap());
        let added: Vec<&str> = d["added_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["content"].as_str().unwrap())
            .collect();
        assert_eq!(added, ["<|im_start|>", "<|im_end|>"]);
    }

    #[test]
    fn bad_presets_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        preset(dir.path(), "BartTokenizer", &[], None);
        let e = from_preset(dir.path()).unwrap_err();
        assert!(
            e.contains("`BartTokenizer`") && e.contains("Llama3Tokenizer"),
            "{e}"
        );

        // A special token the vocabulary lacks.
        let dir = tempfile::tempdir().unwrap();
        preset(dir.path(), "Llama3Tokenizer", &LLAMA3[..4], None);
        let e = from_preset(dir.path()).unwrap_err();
        assert!(e.contains("\"<|eot_id|>\" is not in the vocabulary"), "{e}");

        // Merges of unknown pieces, or making one.
        let dir = tempfile::tempdir().unwrap();
        preset(dir.path(), "GPT2Tokenizer", &["<|endoftext|>"], None);
        let merges = dir.path().join(ASSETS).join(MERGES);
        std::fs::write(&merges, "a c\n").unwrap();
        let e = from_preset(dir.path()).unwrap_err();
        assert!(e.contains("uses \"c\""), "{e}");
        std::fs::write(&merges, "b a\n").unwrap();
        assert!(
            from_preset(dir.path())
                .unwrap_err()
                .contains("makes \"ba\"")
        );
        std::fs::write(&merges, "a b c\n").unwrap();
        let e = from_preset(dir.path()).unwrap_err();
        assert!(e.contains("merges.txt") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn vocabularies_need_distinct_token_ids() {
        assert!(
            parse_vocabulary(br#"{"a": 0, "b": 0}"#)
                .unwrap_err()
                .contains("share the id 0")
        );
        assert!(
            parse_vocabulary(br#"{"a": -1}"#)
                .unwrap_err()
                .contains("not a token id")
        );
        assert!(parse_vocabulary(br#"["a"]"#).is_err());
        assert!(parse_vocabulary(b"{}").is_err());
        assert_eq!(
            parse_vocabulary(br#"{"b": 1, "a": 0}"#).unwrap(),
            [("a".to_string(), 0), ("b".to_string(), 1)]
        );
    }
}
