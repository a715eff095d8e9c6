//! Writing a bundle: sections are streamed from their files (or small in-memory buffers) into
//! a file in a private directory beside the destination, each on a 16 KiB boundary, then the
//! header is written at the front and the file is moved into place (`fsio`). Nothing is held
//! in memory but a copy buffer, the header and the small generated sections, so a 2 GB model
//! costs a few megabytes to bundle.
//!
//! The same sections give the same bytes, always: no clock, no random id. LiteRT-LM's own
//! writer stamps a random `uuid` and a `creation_timestamp` into the system metadata; `litert`
//! writes a `uuid` derived from the SHA-256 of the sections instead (a UUID v8, RFC 9562), so a
//! cache keyed on it changes exactly when the content does, and no timestamp.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flatbuffers::FlatBufferBuilder;
use prost::Message as _;
use sha2::{Digest, Sha256};

use super::fb;
use super::format::{self, SectionType};
use super::proto::litert_lm::LlmMetadata;
use crate::fsio;

/// A metadata value, as the header's typed union carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int32(i32),
    Int64(i64),
    UInt64(u64),
    Bool(bool),
    Float32(f32),
}

/// Where a section's bytes come from.
#[derive(Debug, Clone)]
pub enum Data {
    /// Copied from a file, which must not change while the bundle is written.
    File(PathBuf),
    /// Small generated content (metadata protos, compressed tokenizers).
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone)]
pub struct Section {
    pub kind: SectionType,
    pub items: Vec<(String, Value)>,
    pub data: Data,
}

/// A bundle to write: system metadata and sections, in file order.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    pub system_metadata: Vec<(String, Value)>,
    pub sections: Vec<Section>,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub size_bytes: u64,
    /// The content-derived id stored as the `uuid` system metadata entry.
    pub uuid: String,
    /// `[begin, end)` of each section.
    pub sections: Vec<(u64, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot read `{path}`")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("`{path}` changed size while it was being bundled")]
    Changed { path: String },
    #[error("cannot write `{path}`")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("the bundle is invalid: {0}")]
    Invalid(String),
}

/// The system metadata key of the content-derived id.
pub const UUID_KEY: &str = "uuid";
/// Bytes copied per read: large enough for throughput, small enough to be nothing.
const COPY_BUFFER: usize = 1 << 20;

impl Bundle {
    /// A prefill/decode `.tflite` model from a file (tagged `tf_lite_prefill_decode`).
    pub fn add_prefill_decode_model(&mut self, path: &Path) -> &mut Self {
        self.sections.push(Section {
            kind: SectionType::TfliteModel,
            items: vec![(
                format::MODEL_TYPE_KEY.into(),
                Value::Str(format::PREFILL_DECODE.into()),
            )],
            data: Data::File(path.to_path_buf()),
        });
        self
    }

    /// A SentencePiece model (`.spm` / `tokenizer.model` bytes, stored as they are).
    pub fn add_sentencepiece(&mut self, data: Data) -> &mut Self {
        self.sections.push(Section {
            kind: SectionType::SentencePieceTokenizer,
            items: Vec::new(),
            data,
        });
        self
    }

    /// A HuggingFace `tokenizer.json`, stored as the format wants it: its length as a
    /// little-endian u64, then zlib.
    pub fn add_hf_tokenizer_json(&mut self, json: &[u8]) -> &mut Self {
        self.sections.push(Section {
            kind: SectionType::HfTokenizerZlib,
            items: Vec::new(),
            data: Data::Bytes(compress_hf_tokenizer(json)),
        });
        self
    }

    /// The generation metadata, encoded by prost (deterministic: fields in number order).
    pub fn add_llm_metadata(&mut self, metadata: &LlmMetadata) -> &mut Self {
        self.sections.push(Section {
            kind: SectionType::LlmMetadataProto,
            items: Vec::new(),
            data: Data::Bytes(metadata.encode_to_vec()),
        });
        self
    }

    /// Write the bundle to `dest` atomically.
    pub fn write(&self, dest: &Path) -> Result<Written, WriteError> {
        let werr = |source| WriteError::Write {
            path: dest.display().to_string(),
            source,
        };
        if self
            .system_metadata
            .iter()
            .any(|(k, _)| k == UUID_KEY || k.is_empty())
        {
            return Err(WriteError::Invalid(format!(
                "system metadata may not set `{UUID_KEY}` (it is derived from the content) or an empty key"
            )));
        }
        // Sizes first: the header (whose size does not depend on the offset values, as long
        // as none is zero) must be placed before the sections.
        let sizes = self
            .sections
            .iter()
            .map(|s| match &s.data {
                Data::Bytes(b) => Ok(b.len() as u64),
                Data::File(p) => {
                    std::fs::metadata(p)
                        .map(|m| m.len())
                        .map_err(|source| WriteError::Read {
                            path: p.display().to_string(),
                            source,
                        })
                }
            })
            .collect::<Result<Vec<u64>, _>>()?;
        let placeholder = uuid_from_digest(&[0; 32]);
        let header_len = |ranges: &[(u64, u64)], uuid: &str| self.header(ranges, uuid).len() as u64;
        let dummy: Vec<(u64, u64)> = sizes.iter().map(|_| (1, 1)).collect();
        let flatbuffer_len = header_len(&dummy, &placeholder);
        let mut ranges = Vec::with_capacity(sizes.len());
        let mut offset = format::align_up(format::HEADER_OFFSET as u64 + flatbuffer_len);
        for size in &sizes {
            ranges.push((offset, offset + size));
            offset = format::align_up(offset + size);
        }
        let total = ranges.last().map_or(offset, |r| r.1);

        let dir = fsio::PrivateDir::beside(dest).map_err(werr)?;
        let tmp = dir.join("bundle.litertlm");
        let file = File::create(&tmp).map_err(werr)?;
        let mut out = BufWriter::with_capacity(COPY_BUFFER, file);
        // The content digest covers each section's type, items and bytes, framed by lengths.
        let mut digest = Sha256::new();
        let mut pos = 0u64;
        let mut buf = vec![0u8; COPY_BUFFER];
        for ((section, size), (begin, _)) in self.sections.iter().zip(&sizes).zip(&ranges) {
            zeros(&mut out, begin - pos).map_err(werr)?;
            digest.update([section.kind.byte()]);
            digest.update((section.items.len() as u64).to_le_bytes());
            for (k, v) in &section.items {
                frame(&mut digest, k.as_bytes());
                frame(&mut digest, format!("{v:?}").as_bytes());
            }
            digest.update(size.to_le_bytes());
            match &section.data {
                Data::Bytes(b) => {
                    digest.update(b);
                    out.write_all(b).map_err(werr)?;
                }
                Data::File(p) => copy_file(p, *size, &mut out, &mut digest, &mut buf, dest)?,
            }
            pos = begin + size;
        }
        if pos < total {
            zeros(&mut out, total - pos).map_err(werr)?;
        }
        let uuid = uuid_from_digest(&digest.finalize().into());
        let header = self.header(&ranges, &uuid);
        if header.len() as u64 != flatbuffer_len {
            return Err(WriteError::Invalid(
                "the header changed size between layout and write".into(),
            ));
        }
        let mut file = out.into_inner().map_err(|e| werr(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(werr)?;
        let mut preamble = [0u8; format::HEADER_OFFSET];
        preamble[..8].copy_from_slice(format::MAGIC);
        let (major, minor, patch) = format::VERSION;
        preamble[8..12].copy_from_slice(&major.to_le_bytes());
        preamble[12..16].copy_from_slice(&minor.to_le_bytes());
        preamble[16..20].copy_from_slice(&patch.to_le_bytes());
        preamble[24..32]
            .copy_from_slice(&(format::HEADER_OFFSET as u64 + flatbuffer_len).to_le_bytes());
        file.write_all(&preamble).map_err(werr)?;
        file.write_all(&header).map_err(werr)?;
        file.sync_all().map_err(werr)?;
        drop(file);
        fsio::persist(&tmp, dest).map_err(werr)?;
        Ok(Written {
            size_bytes: total,
            uuid,
            sections: ranges,
        })
    }

    /// The header FlatBuffer for these section ranges.
    fn header(&self, ranges: &[(u64, u64)], uuid: &str) -> Vec<u8> {
        let mut b = FlatBufferBuilder::with_capacity(4096);
        let mut entries: Vec<_> = self
            .system_metadata
            .iter()
            .map(|(k, v)| key_value(&mut b, k, v))
            .collect();
        entries.push(key_value(&mut b, UUID_KEY, &Value::Str(uuid.into())));
        let entries = b.create_vector(&entries);
        let system = fb::SystemMetadata::create(
            &mut b,
            &fb::SystemMetadataArgs {
                entries: Some(entries),
            },
        );
        let objects: Vec<_> = self
            .sections
            .iter()
            .zip(ranges)
            .map(|(s, &(begin, end))| {
                let items: Vec<_> = s
                    .items
                    .iter()
                    .map(|(k, v)| key_value(&mut b, k, v))
                    .collect();
                let items = b.create_vector(&items);
                fb::SectionObject::create(
                    &mut b,
                    &fb::SectionObjectArgs {
                        items: Some(items),
                        begin_offset: begin,
                        end_offset: end,
                        data_type: s.kind.byte(),
                    },
                )
            })
            .collect();
        let objects = b.create_vector(&objects);
        let sections = fb::SectionMetadata::create(
            &mut b,
            &fb::SectionMetadataArgs {
                objects: Some(objects),
            },
        );
        let root = fb::LiteRTLMMetaData::create(
            &mut b,
            &fb::LiteRTLMMetaDataArgs {
                system_metadata: Some(system),
                section_metadata: Some(sections),
            },
        );
        b.finish(root, None);
        b.finished_data().to_vec()
    }
}

fn key_value<'a>(
    b: &mut FlatBufferBuilder<'a>,
    key: &str,
    value: &Value,
) -> flatbuffers::WIPOffset<fb::KeyValuePair<'a>> {
    let key = b.create_string(key);
    let (value_type, value) = match value {
        Value::Str(s) => {
            let s = b.create_string(s);
            let t = fb::StringValue::create(b, &fb::StringValueArgs { value: Some(s) });
            (fb::VData::StringValue, t.as_union_value())
        }
        Value::Int32(v) => {
            let t = fb::Int32::create(b, &fb::Int32Args { value: *v });
            (fb::VData::Int32, t.as_union_value())
        }
        Value::Int64(v) => {
            let t = fb::Int64::create(b, &fb::Int64Args { value: *v });
            (fb::VData::Int64, t.as_union_value())
        }
        Value::UInt64(v) => {
            let t = fb::UInt64::create(b, &fb::UInt64Args { value: *v });
            (fb::VData::UInt64, t.as_union_value())
        }
        Value::Bool(v) => {
            let t = fb::Bool::create(b, &fb::BoolArgs { value: *v });
            (fb::VData::Bool, t.as_union_value())
        }
        Value::Float32(v) => {
            let t = fb::Float32::create(b, &fb::Float32Args { value: *v });
            (fb::VData::Float32, t.as_union_value())
        }
    };
    fb::KeyValuePair::create(
        b,
        &fb::KeyValuePairArgs {
            key: Some(key),
            value_type,
            value: Some(value),
        },
    )
}

fn frame(digest: &mut Sha256, bytes: &[u8]) {
    digest.update((bytes.len() as u64).to_le_bytes());
    digest.update(bytes);
}

fn zeros(out: &mut impl Write, mut n: u64) -> io::Result<()> {
    const ZEROS: [u8; 4096] = [0; 4096];
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        out.write_all(&ZEROS[..k])?;
        n -= k as u64;
    }
    Ok(())
}

/// Copy exactly `size` bytes of `path`, hashing them; a file that grew or shrank since its
/// size was taken is an error, never a silently shifted bundle.
fn copy_file(
    path: &Path,
    size: u64,
    out: &mut impl Write,
    digest: &mut Sha256,
    buf: &mut [u8],
    dest: &Path,
) -> Result<(), WriteError> {
    let rerr = |source| WriteError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut f = File::open(path).map_err(rerr)?;
    let mut left = size;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = f.read(&mut buf[..want]).map_err(rerr)?;
        if n == 0 {
            return Err(WriteError::Changed {
                path: path.display().to_string(),
            });
        }
        digest.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|source| WriteError::Write {
                path: dest.display().to_string(),
                source,
            })?;
        left -= n as u64;
    }
    if f.read(&mut buf[..1]).map_err(rerr)? != 0 {
        return Err(WriteError::Changed {
            path: path.display().to_string(),
        });
    }
    Ok(())
}

/// `len` as u64 little-endian, then the zlib stream (what LiteRT-LM's HF_Tokenizer_Zlib
/// section holds). miniz_oxide at a fixed level gives the same bytes for the same input.
pub fn compress_hf_tokenizer(json: &[u8]) -> Vec<u8> {
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    let mut enc = flate2::write::ZlibEncoder::new(&mut out, flate2::Compression::new(6));
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(json);
    let _ = enc.finish();
    out
}

/// A UUID (version 8: custom, RFC 9562) made of the first 16 bytes of a SHA-256.
pub fn uuid_from_digest(digest: &[u8; 32]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::digest::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
