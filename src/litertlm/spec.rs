//! What goes into a bundle built from a KerasHub preset, decided before anything is written:
//! which tokenizer the preset has (a KerasHub byte-pair one converted by [`super::bpe`]), which token ids the start and stop tokens are (from
//! the recipe, or the tokenizer's own defaults), the prompt template, and the cache capacity
//! as `max_num_tokens`. Every failure names the preset file it is about, so `apply` can stop
//! with an error the user can act on. This is the seam between a recipe's bundle settings
//! and [`super::writer::Bundle`].

use std::path::{Path, PathBuf};

use super::proto::litert_lm::{
    GenericModel, LlmMetadata, LlmModelType, PromptAffixes, PromptTemplates, SamplerParameters,
    TokenIds, TokenUnion, llm_model_type, sampler_parameters, token_union,
};
use super::tokenizer::{self, Vocab};
use super::writer::{Bundle, Data};
use super::{bpe, chat};

/// A token named in a recipe: by id, or by its piece (`"<eos>"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRef {
    Id(i64),
    Piece(String),
}

/// Affixes around each role's turn (LiteRT-LM's non-Jinja prompt template).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Template {
    pub user: Option<(String, String)>,
    pub model: Option<(String, String)>,
    pub system: Option<(String, String)>,
}

/// The bundle settings of one artifact, fully resolved except for token lookups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleSpec {
    /// `None`: the tokenizer's start (bos) token.
    pub start_token: Option<TokenRef>,
    /// `None`: the tokenizer's end (eos) token.
    pub stop_tokens: Option<Vec<TokenRef>>,
    pub template: Option<Template>,
    /// A Jinja chat template (LiteRT-LM's conversation API prefers it to `template`).
    pub jinja_template: Option<String>,
    /// The KV cache capacity of the prefill/decode model.
    pub max_num_tokens: u32,
}

/// A preset's tokenizer file, as LiteRT-LM wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizerFile {
    SentencePiece(PathBuf),
    HuggingFaceJson(PathBuf),
    /// KerasHub's byte-level BPE (`vocabulary.json` + `merges.txt`, Llama 3, Qwen 3, GPT-2),
    /// which the bundle carries as a HuggingFace JSON that litert writes ([`bpe`]).
    KerasBpe {
        preset: PathBuf,
        vocabulary: PathBuf,
    },
}

impl TokenizerFile {
    /// The file errors about its pieces name.
    pub fn path(&self) -> &Path {
        match self {
            Self::SentencePiece(p) | Self::HuggingFaceJson(p) => p,
            Self::KerasBpe { vocabulary, .. } => vocabulary,
        }
    }
}

/// Where KerasHub's `save_to_preset` puts a SentencePiece model, then the usual HuggingFace
/// file names.
const SENTENCEPIECE_FILES: &[&str] = &["assets/tokenizer/vocabulary.spm", "tokenizer.model"];
const HF_FILES: &[&str] = &["assets/tokenizer/tokenizer.json", "tokenizer.json"];

/// Find the tokenizer of a local preset directory. KerasHub's own `tokenizer.json` is a
/// Keras config, not a HuggingFace tokenizer, and is skipped.
pub fn find_tokenizer(preset: &Path) -> Result<TokenizerFile, String> {
    for rel in SENTENCEPIECE_FILES {
        let p = preset.join(rel);
        if p.is_file() {
            return Ok(TokenizerFile::SentencePiece(p));
        }
    }
    for rel in HF_FILES {
        let p = preset.join(rel);
        if p.is_file()
            && std::fs::read(&p)
                .ok()
                .is_some_and(|b| tokenizer::hf_json(&b).is_ok())
        {
            return Ok(TokenizerFile::HuggingFaceJson(p));
        }
    }
    if bpe::is_keras_bpe(preset) {
        return Ok(TokenizerFile::KerasBpe {
            preset: preset.to_path_buf(),
            vocabulary: preset.join(bpe::ASSETS).join(bpe::VOCABULARY),
        });
    }
    let bpe_files = format!("{}/{{{},{}}}", bpe::ASSETS, bpe::VOCABULARY, bpe::MERGES);
    let looked: Vec<String> = SENTENCEPIECE_FILES
        .iter()
        .chain(HF_FILES)
        .copied()
        .chain([bpe_files.as_str()])
        .map(|f| format!("`{f}`"))
        .collect();
    Err(format!(
        "the preset `{}` has no tokenizer LiteRT-LM can use (looked for {})",
        preset.display(),
        looked.join(", ")
    ))
}

/// A preset's tokenizer, read: its vocabulary and what its bundle section holds.
pub struct Loaded {
    pub vocab: Vocab,
    section: Section,
}

enum Section {
    /// The SentencePiece model file, stored as it is.
    SentencePiece(PathBuf),
    /// A HuggingFace tokenizer JSON (the preset's, or the one written for a KerasHub BPE).
    HuggingFaceJson(Vec<u8>),
}

/// Read a tokenizer file (converting a KerasHub BPE to its HuggingFace JSON).
pub fn load(file: &TokenizerFile) -> Result<Loaded, String> {
    let read =
        |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read `{}`: {e}", p.display()));
    let named = |e: String| format!("`{}`: {e}", file.path().display());
    match file {
        TokenizerFile::SentencePiece(p) => Ok(Loaded {
            vocab: tokenizer::sentencepiece(&read(p)?).map_err(named)?,
            section: Section::SentencePiece(p.clone()),
        }),
        TokenizerFile::HuggingFaceJson(p) => {
            let json = read(p)?;
            Ok(Loaded {
                vocab: tokenizer::hf_json(&json).map_err(named)?,
                section: Section::HuggingFaceJson(json),
            })
        }
        TokenizerFile::KerasBpe { preset, .. } => {
            let converted = bpe::from_preset(preset)?;
            Ok(Loaded {
                vocab: converted.vocab()?,
                section: Section::HuggingFaceJson(converted.json),
            })
        }
    }
}

/// The tokenizer's vocabulary, for naming and checking tokens.
pub fn read_vocab(file: &TokenizerFile) -> Result<Vocab, String> {
    load(file).map(|l| l.vocab)
}

/// The id of `token` in `vocab`; errors name the tokenizer `file` and say `what` it is.
pub fn resolve(token: &TokenRef, vocab: &Vocab, file: &Path, what: &str) -> Result<i32, String> {
    let id = match token {
        TokenRef::Id(id) => *id,
        TokenRef::Piece(p) => vocab.id(p).ok_or_else(|| {
            format!(
                "{what} `{p}` is not a piece of the tokenizer `{}`",
                file.display()
            )
        })?,
    };
    if id < 0 || id as u64 >= vocab.len() {
        return Err(format!(
            "{what} {id} is outside the {} pieces of the tokenizer `{}`",
            vocab.len(),
            file.display()
        ));
    }
    i32::try_from(id).map_err(|_| format!("{what} {id} does not fit a token id"))
}

fn ids(ids: Vec<i32>) -> TokenUnion {
    TokenUnion {
        token_union: Some(token_union::TokenUnion::TokenIds(TokenIds { ids })),
    }
}

/// The LlmMetadata for `spec` over this tokenizer: greedy sampling by default (top-p over k = 1, what
/// `apply` verifies by running a default session), the generic model type, the cache capacity as the token budget.
pub fn llm_metadata(spec: &BundleSpec, vocab: &Vocab, file: &Path) -> Result<LlmMetadata, String> {
    let start = match &spec.start_token {
        Some(t) => Some(resolve(t, vocab, file, "start token")?),
        // The tokenizer's convention: the model was trained, and Keras prompts it, without
        // one (LiteRT-LM then prepends nothing).
        None if vocab.no_start_token => None,
        None => {
            let id = vocab.ids_of("bos").first().copied().ok_or_else(|| {
                format!(
                    "the tokenizer `{}` has no start (bos) token; name one in the recipe",
                    file.display()
                )
            })?;
            Some(resolve(&TokenRef::Id(id), vocab, file, "start token")?)
        }
    };
    let stops = match &spec.stop_tokens {
        Some(list) if list.is_empty() => {
            return Err("the stop token list is empty; LiteRT-LM needs at least one".into());
        }
        Some(list) => list
            .iter()
            .map(|t| resolve(t, vocab, file, "stop token"))
            .collect::<Result<Vec<_>, _>>()?,
        None => {
            // Every end token of the tokenizer (Llama 3 has two); SentencePiece has one.
            let ends = vocab.ids_of("eos");
            if ends.is_empty() {
                return Err(format!(
                    "the tokenizer `{}` has no end (eos) token; name the stop tokens in the recipe",
                    file.display()
                ));
            }
            ends.into_iter()
                .map(|id| resolve(&TokenRef::Id(id), vocab, file, "stop token"))
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    if let Some(j) = &spec.jinja_template {
        let env = minijinja::Environment::new();
        env.template_from_str(j)
            .map_err(|e| format!("the prompt template is not valid Jinja: {e}"))?;
    }
    let affixes = |a: &Option<(String, String)>| {
        a.as_ref().map(|(prefix, suffix)| PromptAffixes {
            prefix: prefix.clone(),
            suffix: suffix.clone(),
        })
    };
    Ok(LlmMetadata {
        start_token: start.map(|s| ids(vec![s])),
        stop_tokens: stops.into_iter().map(|s| ids(vec![s])).collect(),
        prompt_templates: spec.template.as_ref().map(|t| PromptTemplates {
            user: affixes(&t.user),
            model: affixes(&t.model),
            system: affixes(&t.system),
        }),
        // Greedy as top-p sampling over the top k = 1 token: LiteRT-LM 0.18's CPU sampler
        // implements only `TOP_P` ("Sampler type: 3 not implemented yet" for `GREEDY`, 1
        // for `TOP_K`; measured), and its own Python API asks for greedy this way.
        sampler_params: Some(SamplerParameters {
            r#type: sampler_parameters::Type::TopP.into(),
            k: 1,
            p: 0.95,
            temperature: 1.0,
            seed: Some(0),
        }),
        max_num_tokens: i32::try_from(spec.max_num_tokens).unwrap_or(i32::MAX),
        llm_model_type: Some(LlmModelType {
            model_type: Some(llm_model_type::ModelType::GenericModel(
                GenericModel::default(),
            )),
        }),
        jinja_prompt_template: spec.jinja_template.clone(),
        supports_thinking: Some(false),
        supports_function_calling: Some(false),
        pad_token: None,
        min_runtime_version: None,
    })
}

/// The bundle of a prefill/decode model and a preset's tokenizer, ready to write. Without a
/// template in `spec`, the bundle carries the family's chat format ([`chat`]).
pub fn bundle(model: &Path, preset: &Path, spec: &BundleSpec) -> Result<Bundle, String> {
    let file = find_tokenizer(preset)?;
    let loaded = load(&file)?;
    let metadata = if spec.template.is_none() && spec.jinja_template.is_none() {
        // No template in the recipe: the family's chat format, if the tokenizer has it.
        let template = chat::tokenizer_class(preset)
            .and_then(|class| chat::default_template(&class, &loaded.vocab));
        let with_default = BundleSpec {
            template,
            ..spec.clone()
        };
        llm_metadata(&with_default, &loaded.vocab, file.path())?
    } else {
        llm_metadata(spec, &loaded.vocab, file.path())?
    };
    let mut b = Bundle::default();
    b.add_prefill_decode_model(model);
    match loaded.section {
        Section::SentencePiece(p) => {
            b.add_sentencepiece(Data::File(p));
        }
        Section::HuggingFaceJson(json) => {
            b.add_hf_tokenizer_json(&json);
        }
    }
    b.add_llm_metadata(&metadata);
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::litertlm::format::SectionType;
    use crate::litertlm::proto::sentencepiece::{ModelProto, TrainerSpec, model_proto};
    use prost::Message as _;

    fn preset_with_spm(dir: &Path) {
        let pieces = ["<pad>", "<eos>", "<bos>", "<unk>", "<end_of_turn>", "▁hi"];
        let proto = ModelProto {
            pieces: pieces
                .iter()
                .map(|p| model_proto::SentencePiece {
                    piece: Some(p.to_string()),
                    score: Some(0.0),
                    r#type: None,
                })
                .collect(),
            trainer_spec: Some(TrainerSpec {
                bos_id: Some(2),
                eos_id: Some(1),
                unk_id: Some(3),
                pad_id: Some(0),
                ..Default::default()
            }),
        };
        let spm = dir.join("assets/tokenizer/vocabulary.spm");
        std::fs::create_dir_all(spm.parent().unwrap()).unwrap();
        std::fs::write(spm, proto.encode_to_vec()).unwrap();
        // KerasHub's own config file, which is not a HuggingFace tokenizer.
        std::fs::write(dir.join("tokenizer.json"), r#"{"module":"keras_hub"}"#).unwrap();
    }

    fn spec() -> BundleSpec {
        BundleSpec {
            max_num_tokens: 256,
            ..Default::default()
        }
    }

    #[test]
    fn start_and_stop_tokens_default_to_the_tokenizers() {
        let dir = tempfile::tempdir().unwrap();
        preset_with_spm(dir.path());
        let file = find_tokenizer(dir.path()).unwrap();
        assert!(matches!(file, TokenizerFile::SentencePiece(_)));
        let m = llm_metadata(&spec(), &read_vocab(&file).unwrap(), file.path()).unwrap();
        assert_eq!(m.start_token, Some(ids(vec![2])));
        assert_eq!(m.stop_tokens, vec![ids(vec![1])]);
        assert_eq!(m.max_num_tokens, 256);
    }

    #[test]
    fn recipe_tokens_are_looked_up_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        preset_with_spm(dir.path());
        let file = find_tokenizer(dir.path()).unwrap();
        let vocab = read_vocab(&file).unwrap();
        let mut s = spec();
        s.stop_tokens = Some(vec![
            TokenRef::Piece("<eos>".into()),
            TokenRef::Piece("<end_of_turn>".into()),
        ]);
        let m = llm_metadata(&s, &vocab, file.path()).unwrap();
        assert_eq!(m.stop_tokens, vec![ids(vec![1]), ids(vec![4])]);

        s.stop_tokens = Some(vec![TokenRef::Piece("<|eot|>".into())]);
        let err = llm_metadata(&s, &vocab, file.path()).unwrap_err();
        assert!(
            err.contains("`<|eot|>` is not a piece") && err.contains("vocabulary.spm"),
            "{err}"
        );
        s.stop_tokens = Some(vec![TokenRef::Id(6)]);
        assert!(
            llm_metadata(&s, &vocab, file.path())
                .unwrap_err()
                .contains("outside the 6 pieces")
        );
        s.stop_tokens = Some(Vec::new());
        assert!(llm_metadata(&s, &vocab, file.path()).is_err());
    }

    #[test]
    fn an_invalid_jinja_template_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        preset_with_spm(dir.path());
        let file = find_tokenizer(dir.path()).unwrap();
        let mut s = spec();
        s.jinja_template = Some("{% for m in messages %}{{ m.content }".into());
        let err = llm_metadata(&s, &read_vocab(&file).unwrap(), file.path()).unwrap_err();
        assert!(err.contains("not valid Jinja"), "{err}");
    }

    #[test]
    fn a_preset_without_a_tokenizer_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), "{}").unwrap();
        let err = find_tokenizer(dir.path()).unwrap_err();
        assert!(
            err.contains(&dir.path().display().to_string()) && err.contains("vocabulary.spm"),
            "{err}"
        );
    }

    /// A Llama 3 tokenizer preset at `dir`, and the model a bundle of it copies (unread).
    fn llama3_preset(dir: &Path) -> std::path::PathBuf {
        let llama3 = crate::litertlm::bpe::tests::LLAMA3;
        crate::litertlm::bpe::tests::preset(dir, "Llama3Tokenizer", llama3, None);
        let model = dir.join("model.tflite");
        std::fs::write(&model, b"not read here").unwrap();
        model
    }

    const QWEN3: &[&str] = &["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

    #[test]
    fn byte_pair_presets_get_their_familys_tokens_and_a_json_section() {
        let dir = tempfile::tempdir().unwrap();
        let model = llama3_preset(dir.path());
        let file = find_tokenizer(dir.path()).unwrap();
        assert!(matches!(file, TokenizerFile::KerasBpe { .. }));
        assert!(file.path().ends_with("assets/tokenizer/vocabulary.json"));
        let m = llm_metadata(&spec(), &read_vocab(&file).unwrap(), file.path()).unwrap();
        // <|begin_of_text|>, then <|end_of_text|> and <|eot_id|>.
        assert_eq!(m.start_token, Some(ids(vec![5])));
        assert_eq!(m.stop_tokens, vec![ids(vec![6]), ids(vec![9])]);
        let b = bundle(&model, dir.path(), &spec()).unwrap();
        let kinds: Vec<_> = b.sections.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                SectionType::TfliteModel,
                SectionType::HfTokenizerZlib,
                SectionType::LlmMetadataProto
            ]
        );
        let Data::Bytes(section) = &b.sections[1].data else {
            panic!("the tokenizer is written, not copied")
        };
        let v = tokenizer::hf_zlib(section).unwrap();
        assert_eq!(v.info.model_type.as_deref(), Some("BPE"));
        assert_eq!(v.len(), 10);
    }

    #[test]
    fn qwen3_has_no_start_token_unless_the_recipe_names_one() {
        let dir = tempfile::tempdir().unwrap();
        crate::litertlm::bpe::tests::preset(dir.path(), "Qwen3Tokenizer", QWEN3, None);
        let file = find_tokenizer(dir.path()).unwrap();
        let vocab = read_vocab(&file).unwrap();
        let m = llm_metadata(&spec(), &vocab, file.path()).unwrap();
        assert_eq!(m.start_token, None);
        assert_eq!(m.stop_tokens, vec![ids(vec![7])]);
        // Overridden in the recipe, by piece or id.
        let mut s = spec();
        s.start_token = Some(TokenRef::Piece("<|endoftext|>".into()));
        s.stop_tokens = Some(vec![TokenRef::Piece("<|im_end|>".into()), TokenRef::Id(5)]);
        let m = llm_metadata(&s, &vocab, file.path()).unwrap();
        assert_eq!(m.start_token, Some(ids(vec![5])));
        assert_eq!(m.stop_tokens, vec![ids(vec![7]), ids(vec![5])]);
        s.start_token = Some(TokenRef::Piece("<|begin_of_text|>".into()));
        let err = llm_metadata(&s, &vocab, file.path()).unwrap_err();
        assert!(err.contains("vocabulary.json"), "{err}");
    }

    fn metadata_of(b: &Bundle) -> LlmMetadata {
        let Data::Bytes(bytes) = &b.sections[2].data else {
            panic!("the metadata is generated")
        };
        LlmMetadata::decode(bytes.as_slice()).unwrap()
    }

    #[test]
    fn the_familys_chat_template_is_the_default_and_the_recipe_can_drop_it() {
        let dir = tempfile::tempdir().unwrap();
        let model = llama3_preset(dir.path());
        let m = metadata_of(&bundle(&model, dir.path(), &spec()).unwrap());
        let t = m.prompt_templates.unwrap();
        assert_eq!(t.user.unwrap().suffix, "<|eot_id|>");
        // `prompt_template: {}` in the recipe: no affixes.
        let mut s = spec();
        s.template = Some(Template::default());
        let m = metadata_of(&bundle(&model, dir.path(), &s).unwrap());
        assert_eq!(m.prompt_templates, Some(PromptTemplates::default()));
        // A Jinja template in the recipe replaces it too.
        s.template = None;
        s.jinja_template = Some("{{ messages[0].content }}".into());
        let m = metadata_of(&bundle(&model, dir.path(), &s).unwrap());
        assert_eq!(m.prompt_templates, None);
    }
}
