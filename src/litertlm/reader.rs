//! Reading a `.litertlm` bundle into a [`BundleInfo`]: memory-map, check the preamble, run
//! the FlatBuffer verifier on the header, check every section's range against the file and
//! the others, then describe each section: models by the `.tflite` reader on the section's
//! bytes, tokenizers by [`super::tokenizer`], the LlmMetadata by prost. Every offset and
//! length comes from the file and is checked before use, so a malformed bundle gives a
//! [`ReadError`], never a panic. Model weights are never read.

use std::fs::File;
use std::path::Path;

use flatbuffers::VerifierOptions;
use prost::Message as _;

use super::fb;
use super::format::{self, SectionType};
use super::model::{
    Affixes, BundleInfo, KeyValue, LlmMetadataInfo, PromptTemplates, Sampler, SectionInfo, Token,
};
use super::proto::litert_lm::{self as pb, llm_model_type, token_union};
use super::tokenizer::{self, Vocab};
use crate::tflite::{self, ModelInfo, ReadOptions};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read `{path}`")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not a LiteRT-LM bundle: {0}")]
    NotLitertlm(String),
    #[error("unsupported LiteRT-LM format version {0} (this build reads 1.x)")]
    UnsupportedVersion(String),
    #[error("the bundle header is invalid: {0}")]
    Invalid(String),
    #[error("section {index} ({data_type}) is invalid: {message}")]
    Section {
        index: usize,
        data_type: String,
        message: String,
    },
}

/// Does the file start like a bundle? (How `inspect` and `diff` choose a reader.)
pub fn is_litertlm(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == format::MAGIC)
}

/// Read the bundle at `path`, memory-mapped.
pub fn read_path(path: &Path) -> Result<BundleInfo, ReadError> {
    let io_err = |source| ReadError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        return Err(ReadError::NotLitertlm("it is a directory".into()));
    }
    if meta.len() < format::HEADER_OFFSET as u64 {
        return Err(too_small(meta.len()));
    }
    let map = crate::fsio::map_readonly(&file).map_err(io_err)?;
    read_bytes(&map, &path.display().to_string())
}

fn too_small(len: u64) -> ReadError {
    ReadError::NotLitertlm(format!(
        "the file has {len} bytes, fewer than the 32-byte preamble"
    ))
}

/// Header limits: a bundle has a handful of sections and entries.
fn verifier_options() -> VerifierOptions {
    VerifierOptions {
        max_depth: 16,
        max_tables: 1_000_000,
        max_apparent_size: 1 << 31,
        ignore_missing_null_terminator: false,
    }
}

/// Read a bundle from bytes in memory; `file` is the name to report.
pub fn read_bytes(bytes: &[u8], file: &str) -> Result<BundleInfo, ReadError> {
    let Some(preamble) = bytes.get(..format::HEADER_OFFSET) else {
        return Err(too_small(bytes.len() as u64));
    };
    if &preamble[..8] != format::MAGIC {
        return Err(ReadError::NotLitertlm(format!(
            "the file starts with `{}`, expected `LITERTLM`",
            preamble[..8].escape_ascii()
        )));
    }
    let word = |i: usize| {
        u32::from_le_bytes([
            preamble[i],
            preamble[i + 1],
            preamble[i + 2],
            preamble[i + 3],
        ])
    };
    let version = format!("{}.{}.{}", word(8), word(12), word(16));
    if word(8) != format::MAJOR_VERSION {
        return Err(ReadError::UnsupportedVersion(version));
    }
    let mut end = [0u8; 8];
    end.copy_from_slice(&preamble[24..32]);
    let header_end = u64::from_le_bytes(end);
    let len = bytes.len() as u64;
    if header_end <= format::HEADER_OFFSET as u64 || header_end > len {
        return Err(ReadError::Invalid(format!(
            "the header ends at byte {header_end}, outside 33..={len}"
        )));
    }
    let header = &bytes[format::HEADER_OFFSET..header_end as usize];
    let root = flatbuffers::root_with_opts::<fb::LiteRTLMMetaData>(&verifier_options(), header)
        .map_err(|e| ReadError::Invalid(format!("the FlatBuffer does not verify: {e}")))?;

    let system_metadata = match root.system_metadata() {
        Some(s) => key_values(s.entries(), "system metadata")?,
        None => Vec::new(),
    };
    let objects = root
        .section_metadata()
        .and_then(|m| m.objects())
        .ok_or_else(|| ReadError::Invalid("it has no section metadata".into()))?;

    let mut problems = Vec::new();
    let mut sections = Vec::with_capacity(objects.len());
    let mut ranges: Vec<(u64, u64, usize)> = Vec::new();
    for (index, obj) in objects.iter().enumerate() {
        let kind = SectionType::from_byte(obj.data_type());
        let (begin, end) = (obj.begin_offset(), obj.end_offset());
        let bad = |message: String| ReadError::Section {
            index,
            data_type: kind.name(),
            message,
        };
        if begin > end || end > len {
            return Err(bad(format!(
                "its bytes [{begin}, {end}) lie outside the file of {len} bytes"
            )));
        }
        if begin < header_end {
            return Err(bad(format!(
                "it begins at byte {begin}, inside the header (which ends at {header_end})"
            )));
        }
        if begin % format::BLOCK_SIZE != 0 {
            problems.push(format!(
                "section {index} begins at byte {begin}, not on a 16 KiB boundary"
            ));
        }
        ranges.push((begin, end, index));
        let items = key_values(obj.items(), &format!("section {index} items"))?;
        sections.push(SectionInfo {
            index: index as u32,
            data_type: kind.name(),
            items,
            begin_offset: begin,
            end_offset: end,
            size_bytes: end - begin,
            sha256: None,
            model: None,
            tokenizer: None,
            llm_metadata: None,
        });
    }
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        if pair[1].0 < pair[0].1 {
            return Err(ReadError::Invalid(format!(
                "sections {} and {} overlap",
                pair[0].2, pair[1].2
            )));
        }
    }

    // Content: tokenizers first, so metadata tokens can be named by their pieces.
    let mut vocab: Option<Vocab> = None;
    for (index, obj) in objects.iter().enumerate() {
        let kind = SectionType::from_byte(obj.data_type());
        let data = &bytes[obj.begin_offset() as usize..obj.end_offset() as usize];
        let section = &mut sections[index];
        let bad = |message: String| ReadError::Section {
            index,
            data_type: kind.name(),
            message,
        };
        match kind {
            SectionType::TfliteModel => {
                let info =
                    tflite::read_bytes(data, &format!("{file}#{index}"), ReadOptions::default())
                        .map_err(|e| bad(format!("the embedded model: {e}")))?;
                section.model = Some(Box::new(info));
            }
            SectionType::SentencePieceTokenizer | SectionType::HfTokenizerZlib => {
                let v = if kind == SectionType::SentencePieceTokenizer {
                    tokenizer::sentencepiece(data)
                } else {
                    tokenizer::hf_zlib(data)
                }
                .map_err(bad)?;
                section.tokenizer = Some(v.info.clone());
                section.sha256 = Some(crate::digest::sha256_hex(data));
                if vocab.is_none() {
                    vocab = Some(v);
                }
            }
            _ => section.sha256 = Some(crate::digest::sha256_hex(data)),
        }
    }
    for (index, obj) in objects.iter().enumerate() {
        if SectionType::from_byte(obj.data_type()) != SectionType::LlmMetadataProto {
            continue;
        }
        let data = &bytes[obj.begin_offset() as usize..obj.end_offset() as usize];
        let meta = pb::LlmMetadata::decode(data).map_err(|e| ReadError::Section {
            index,
            data_type: SectionType::LlmMetadataProto.name(),
            message: format!("not an LlmMetadata protobuf: {e}"),
        })?;
        sections[index].llm_metadata = Some(describe_metadata(&meta, vocab.as_ref()));
    }
    problems.extend(runtime_problems(&sections, vocab.as_ref()));

    Ok(BundleInfo {
        format: "litertlm".into(),
        file: file.to_string(),
        size_bytes: len,
        format_version: version,
        header_bytes: header_end,
        system_metadata,
        sections,
        problems,
    })
}

fn key_values(
    list: Option<flatbuffers::Vector<'_, flatbuffers::ForwardsUOffset<fb::KeyValuePair<'_>>>>,
    what: &str,
) -> Result<Vec<KeyValue>, ReadError> {
    let mut out = Vec::new();
    for (i, kv) in list.into_iter().flatten().enumerate() {
        let key = kv
            .key()
            .ok_or_else(|| ReadError::Invalid(format!("{what}: entry {i} has no key")))?;
        let t = kv.value_type();
        let missing = || ReadError::Invalid(format!("{what}: `{key}` has no value"));
        let value = match t {
            fb::VData::UInt8 => kv.value_as_uint_8().ok_or_else(missing)?.value().into(),
            fb::VData::Int8 => kv.value_as_int_8().ok_or_else(missing)?.value().into(),
            fb::VData::UInt16 => kv.value_as_uint_16().ok_or_else(missing)?.value().into(),
            fb::VData::Int16 => kv.value_as_int_16().ok_or_else(missing)?.value().into(),
            fb::VData::UInt32 => kv.value_as_uint_32().ok_or_else(missing)?.value().into(),
            fb::VData::Int32 => kv.value_as_int_32().ok_or_else(missing)?.value().into(),
            fb::VData::Float32 => kv.value_as_float_32().ok_or_else(missing)?.value().into(),
            fb::VData::Bool => kv.value_as_bool().ok_or_else(missing)?.value().into(),
            fb::VData::StringValue => kv
                .value_as_string_value()
                .ok_or_else(missing)?
                .value()
                .unwrap_or_default()
                .into(),
            fb::VData::UInt64 => kv.value_as_uint_64().ok_or_else(missing)?.value().into(),
            fb::VData::Int64 => kv.value_as_int_64().ok_or_else(missing)?.value().into(),
            fb::VData::Double => kv.value_as_double().ok_or_else(missing)?.value().into(),
            _ => {
                return Err(ReadError::Invalid(format!(
                    "{what}: `{key}` has a value of unknown type {}",
                    t.0
                )));
            }
        };
        out.push(KeyValue {
            key: key.to_string(),
            value_type: t.variant_name().unwrap_or("NONE").to_string(),
            value,
        });
    }
    Ok(out)
}

fn token(t: &pb::TokenUnion, vocab: Option<&Vocab>) -> Token {
    match &t.token_union {
        Some(token_union::TokenUnion::TokenIds(ids)) => Token {
            pieces: vocab.map(|v| {
                ids.ids
                    .iter()
                    .map(|&id| v.piece(id.into()).map(str::to_string))
                    .collect()
            }),
            ids: Some(ids.ids.clone()),
            text: None,
        },
        Some(token_union::TokenUnion::TokenStr(s)) => Token {
            ids: None,
            text: Some(s.clone()),
            pieces: None,
        },
        None => Token {
            ids: None,
            text: None,
            pieces: None,
        },
    }
}

fn describe_metadata(m: &pb::LlmMetadata, vocab: Option<&Vocab>) -> LlmMetadataInfo {
    let affixes = |a: &Option<pb::PromptAffixes>| {
        a.as_ref().map(|a| Affixes {
            prefix: a.prefix.clone(),
            suffix: a.suffix.clone(),
        })
    };
    use llm_model_type::ModelType as M;
    let model_type = m
        .llm_model_type
        .as_ref()
        .and_then(|t| t.model_type.as_ref())
        .map(|t| {
            match t {
                M::GenericModel(_) => "generic_model",
                M::Gemma3n(_) => "gemma3n",
                M::FunctionGemma(_) => "function_gemma",
                M::Gemma3(_) => "gemma3",
                M::Qwen3(_) => "qwen3",
                M::Qwen2p5(_) => "qwen2p5",
                M::Gemma4(_) => "gemma4",
                M::FastVlm(_) => "fast_vlm",
                M::Lfm2(_) => "lfm2",
                M::Minicpm5(_) => "minicpm5",
                M::Gemma3270m(_) => "gemma3270m",
            }
            .to_string()
        });
    LlmMetadataInfo {
        start_token: m.start_token.as_ref().map(|t| token(t, vocab)),
        stop_tokens: m.stop_tokens.iter().map(|t| token(t, vocab)).collect(),
        max_num_tokens: m.max_num_tokens,
        model_type,
        prompt_templates: m.prompt_templates.as_ref().map(|p| PromptTemplates {
            user: affixes(&p.user),
            model: affixes(&p.model),
            system: affixes(&p.system),
        }),
        jinja_prompt_template: m.jinja_prompt_template.clone(),
        sampler: m.sampler_params.as_ref().map(|s| Sampler {
            kind: match pb::sampler_parameters::Type::try_from(s.r#type) {
                Ok(t) => t.as_str_name().to_ascii_lowercase(),
                Err(_) => format!("unknown({})", s.r#type),
            },
            k: s.k,
            p: s.p,
            temperature: s.temperature,
            seed: s.seed,
        }),
        supports_thinking: m.supports_thinking,
        supports_function_calling: m.supports_function_calling,
        pad_token: m.pad_token.as_ref().map(|t| token(t, vocab)),
        min_runtime_version: m.min_runtime_version.clone(),
    }
}

/// What LiteRT-LM needs to run a text LLM on CPU (each found by removing it, see
/// `research/litert_lm.md`), checked without running it.
fn runtime_problems(sections: &[SectionInfo], vocab: Option<&Vocab>) -> Vec<String> {
    let mut out = Vec::new();
    let model = sections.iter().find(|s| {
        s.model.is_some()
            && s.items
                .iter()
                .any(|kv| kv.key == format::MODEL_TYPE_KEY && kv.value == format::PREFILL_DECODE)
    });
    match model.and_then(|s| s.model.as_deref()) {
        None => out.push(format!(
            "no prefill/decode model: LiteRT-LM runs the TFLiteModel section whose `{}` is `{}`",
            format::MODEL_TYPE_KEY,
            format::PREFILL_DECODE
        )),
        Some(m) => out.extend(model_problems(m)),
    }
    if vocab.is_none() {
        out.push("no tokenizer: LiteRT-LM fails with `No tokenizer found`".into());
    }
    let meta = sections.iter().find_map(|s| s.llm_metadata.as_ref());
    let Some(meta) = meta else {
        out.push(
            "no LlmMetadataProto section: LiteRT-LM aborts the process when it loads the bundle"
                .into(),
        );
        return out;
    };
    if meta.stop_tokens.is_empty() {
        out.push("no stop tokens: LiteRT-LM refuses to create a session".into());
    }
    if let Some(kind) = meta
        .sampler
        .as_ref()
        .map(|s| s.kind.as_str())
        .filter(|k| matches!(*k, "greedy" | "top_k"))
    {
        // Measured with litert-lm-api 0.18.1: "Sampler type: N not implemented yet".
        out.push(format!(
            "the default sampler is `{kind}`, which LiteRT-LM's CPU sampler does not implement: sessions without their own sampler fail (use top_p with k = 1 for greedy)"
        ));
    }
    if let Some(v) = vocab {
        let tokens = meta.start_token.iter().chain(&meta.stop_tokens);
        for id in tokens.filter_map(|t| t.ids.as_ref()).flatten() {
            if i64::from(*id) < 0 || i64::from(*id) as u64 >= v.len() {
                out.push(format!(
                    "token id {id} is outside the tokenizer's {} pieces",
                    v.len()
                ));
            }
        }
    }
    if let Some(capacity) = model
        .and_then(|s| s.model.as_deref())
        .and_then(cache_capacity)
        && i64::from(meta.max_num_tokens) > capacity
    {
        out.push(format!(
            "max_num_tokens {} is more than the model's cache of {capacity} entries",
            meta.max_num_tokens
        ));
    }
    out
}

/// The KV cache capacity: the last dimension of the decode signature's mask.
pub fn cache_capacity(model: &ModelInfo) -> Option<i64> {
    let decode = model.signatures.iter().find(|s| s.key == "decode")?;
    let mask = decode
        .inputs
        .iter()
        .find(|t| t.name == "mask" || t.name == "attn_mask")?;
    mask.tensor.shape.get(3).map(|&c| i64::from(c))
}

fn model_problems(m: &ModelInfo) -> Vec<String> {
    let mut out = Vec::new();
    let has = |key: &str| m.signatures.iter().any(|s| s.key == key);
    if !has("decode") {
        out.push("the model has no `decode` signature".into());
    }
    if !m.signatures.iter().any(|s| s.key.starts_with("prefill")) {
        out.push("the model has no `prefill*` signature".into());
    }
    out
}
