//! Helpers shared by the `tflite_*` integration tests: crafted fixtures, and the Python
//! environment (official interpreter, pip-fetched real models) for the cross-check.

#![allow(dead_code)]

pub mod fixtures;
pub mod python;
