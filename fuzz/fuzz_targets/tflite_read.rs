//! Fuzz the `.tflite` reader: any bytes must give a description or an error, never a panic,
//! and a description must survive the weights check, the diff and both renderings.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run tflite_read -- -max_total_time=60` from the package root
//! (seed it with `tests/fixtures/tflite`: `cargo fuzz run tflite_read fuzz/corpus/tflite_read
//! tests/fixtures/tflite`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use litert::tflite::{ReadOptions, diff, read_bytes};

fuzz_target!(|data: &[u8]| {
    let options = ReadOptions { weights_check: true, tensors: true };
    if let Ok(info) = read_bytes(data, "fuzz.tflite", options) {
        let d = diff::diff(&info, &info);
        assert!(d.equivalent);
        let _ = serde_json_len(&info);
    }
});

fn serde_json_len(info: &litert::tflite::ModelInfo) -> usize {
    format!("{info:?}").len()
}
