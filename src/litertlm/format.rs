//! The fixed layout of a `.litertlm` file, shared by the writer and the reader: the 32-byte
//! preamble, the 16 KiB section alignment, the section types and the key names the runtime
//! looks for.
//!
//! ```text
//! 0   "LITERTLM"
//! 8   major, minor, patch: u32 little-endian each
//! 20  zeros
//! 24  u64 little-endian: where the header ends (32 + FlatBuffer size)
//! 32  the LiteRTLMMetaData FlatBuffer (`litertlm_subset.fbs`)
//! ... zeros up to the first 16 KiB boundary, then each section on its own boundary
//! ```

/// The first eight bytes of every bundle.
pub const MAGIC: &[u8; 8] = b"LITERTLM";

/// The format version `litert` writes: the one LiteRT-LM's own writer (litert-lm-builder
/// 0.18.1) writes, and whose sections the runtime of the same release reads.
pub const VERSION: (u32, u32, u32) = (1, 7, 0);

/// The only major version the reader accepts: a new major version may move anything.
pub const MAJOR_VERSION: u32 = 1;

/// Where the header's end is stored, and where the FlatBuffer starts.
pub const HEADER_END_OFFSET: usize = 24;
pub const HEADER_OFFSET: usize = 32;

/// Every section begins on a multiple of this (the runtime maps sections by block).
pub const BLOCK_SIZE: u64 = 16 * 1024;

/// The `model_type` item of a TFLite section that LiteRT-LM runs as the prefill/decode model.
pub const MODEL_TYPE_KEY: &str = "model_type";
pub const PREFILL_DECODE: &str = "tf_lite_prefill_decode";

/// `begin` rounded up to the next block boundary.
pub fn align_up(offset: u64) -> u64 {
    offset.div_ceil(BLOCK_SIZE) * BLOCK_SIZE
}

/// What a section holds (`AnySectionDataType` of the format as litert-lm-builder 0.18.1 has
/// it; the byte is the wire value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SectionType {
    None,
    GenericBinaryData,
    Deprecated,
    TfliteModel,
    SentencePieceTokenizer,
    LlmMetadataProto,
    HfTokenizerZlib,
    TfliteWeights,
    EmbeddingMetadataProto,
    ExecutorMetadataProto,
    TtsMetadataProto,
    AsrMetadataProto,
    Unknown(u8),
}

impl SectionType {
    pub fn from_byte(b: u8) -> Self {
        match b {
            0 => Self::None,
            1 => Self::GenericBinaryData,
            2 => Self::Deprecated,
            3 => Self::TfliteModel,
            4 => Self::SentencePieceTokenizer,
            5 => Self::LlmMetadataProto,
            6 => Self::HfTokenizerZlib,
            7 => Self::TfliteWeights,
            8 => Self::EmbeddingMetadataProto,
            9 => Self::ExecutorMetadataProto,
            10 => Self::TtsMetadataProto,
            11 => Self::AsrMetadataProto,
            n => Self::Unknown(n),
        }
    }

    pub fn byte(self) -> u8 {
        match self {
            Self::None => 0,
            Self::GenericBinaryData => 1,
            Self::Deprecated => 2,
            Self::TfliteModel => 3,
            Self::SentencePieceTokenizer => 4,
            Self::LlmMetadataProto => 5,
            Self::HfTokenizerZlib => 6,
            Self::TfliteWeights => 7,
            Self::EmbeddingMetadataProto => 8,
            Self::ExecutorMetadataProto => 9,
            Self::TtsMetadataProto => 10,
            Self::AsrMetadataProto => 11,
            Self::Unknown(n) => n,
        }
    }

    /// The name the format gives the type (what `litertlm_peek` prints).
    pub fn name(self) -> String {
        match self {
            Self::None => "NONE".into(),
            Self::GenericBinaryData => "GenericBinaryData".into(),
            Self::Deprecated => "Deprecated".into(),
            Self::TfliteModel => "TFLiteModel".into(),
            Self::SentencePieceTokenizer => "SP_Tokenizer".into(),
            Self::LlmMetadataProto => "LlmMetadataProto".into(),
            Self::HfTokenizerZlib => "HF_Tokenizer_Zlib".into(),
            Self::TfliteWeights => "TFLiteWeights".into(),
            Self::EmbeddingMetadataProto => "EmbeddingMetadataProto".into(),
            Self::ExecutorMetadataProto => "ExecutorMetadataProto".into(),
            Self::TtsMetadataProto => "TtsMetadataProto".into(),
            Self::AsrMetadataProto => "AsrMetadataProto".into(),
            Self::Unknown(n) => format!("unknown({n})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip_through_their_byte() {
        for b in 0..=255u8 {
            assert_eq!(SectionType::from_byte(b).byte(), b);
        }
        // The values LiteRT-LM documents for the sections a text LLM needs.
        assert_eq!(SectionType::TfliteModel.byte(), 3);
        assert_eq!(SectionType::SentencePieceTokenizer.byte(), 4);
        assert_eq!(SectionType::LlmMetadataProto.byte(), 5);
        assert_eq!(SectionType::HfTokenizerZlib.byte(), 6);
    }

    #[test]
    fn alignment_is_to_the_next_block() {
        assert_eq!(align_up(0), 0);
        assert_eq!(align_up(1), 16384);
        assert_eq!(align_up(16384), 16384);
        assert_eq!(align_up(16385), 32768);
    }
}
