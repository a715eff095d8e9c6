//! Fuzz the `.litertlm` reader: any bytes must give a description or an error, never a panic
//! (preamble, header FlatBuffer, section ranges, the embedded `.tflite`, SentencePiece and
//! zlib-compressed HuggingFace tokenizers, the LlmMetadata protobuf), and a description must
//! survive the diff.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run litertlm_read fuzz/corpus/litertlm_read fuzz/seeds/litertlm`
//! from the package root; the seeds are bundles written by litert (see `fuzz/seeds/README`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use litert::litertlm::{diff, read_bytes};

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = read_bytes(data, "fuzz.litertlm") {
        let d = diff::diff(&info, &info);
        assert!(d.equivalent);
        let _ = format!("{info:?}").len();
    }
});
