//! Fuzz the `.litertlm` reader: any bytes must give a description or an error, never a panic
//! (preamble, header FlatBuffer, section ranges, the embedded `.tflite`, SentencePiece and
//! zlib-compressed HuggingFace tokenizers, the LlmMetadata protobuf), and a description must
//! survive the diff.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run litertlm_read fuzz/corpus/litertlm_read SEEDS --
//! -max_len=300000 -max_total_time=60` from the package root, where SEEDS holds bundles (the
//! bench leaves one at `target/test-models/bench-litertlm/toy.litertlm`); bundles are mostly
//! 16 KiB alignment padding, so the default 4 KiB input limit would only ever see headers.

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
