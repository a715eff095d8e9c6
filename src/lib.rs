//! `litert` turns version-controlled YAML recipes into LiteRT (`.tflite`) models.
//!
//! Data flows one way. Each module imports only the modules listed below it (modules on one
//! line import neither each other), which `tests/layout.rs` checks:
//!
//! - [`cli`] owns the command line and nothing else.
//! - [`engine`] runs `apply` and `test`: what is up to date from the lock files, the worker
//!   pool, acceptance (parity, gates, snapshots, the lock), one transaction per build, the
//!   report.
//! - [`cache`] shares artifacts through an object store; [`shard`] splits a run over CI
//!   machines.
//! - [`worker`] speaks to the Python worker (protocol, processes, the embedded package).
//! - [`runtime`] runs artifacts natively through LiteRT's C API.
//! - [`pyenv`] provisions the Python environment the worker and the runtime take.
//! - [`recipe`] loads, validates and resolves recipes into build plans.
//! - [`lock`] owns `litert.lock`, its guard and the fragments of sharded runs, and finds the
//!   project root.
//! - [`snapshot`] makes and compares signature snapshots, and says where golden outputs go.
//! - [`litertlm`] reads, writes and compares `.litertlm` bundles; [`llm`] writes a language
//!   model's prefill/decode `.tflite` natively from a preset's config and weights.
//! - [`tflite`] reads `.tflite` models natively, compares them, and writes them.
//! - Leaves, for all of the above: [`diag`] renders located diagnostics, [`diff`] is the shape
//!   of a semantic diff, [`digest`] hashes, [`fsio`] writes files atomically, [`interrupt`]
//!   undoes work in progress on SIGINT/SIGTERM, [`progress`] decides whether progress is
//!   shown, [`provenance`] names the metadata entries that say where an artifact came from,
//!   [`units`] formats and parses numbers.

pub mod cache;
pub mod cli;
pub mod diag;
pub mod diff;
pub mod digest;
pub mod engine;
pub mod fsio;
pub mod interrupt;
pub mod litertlm;
pub mod llm;
pub mod lock;
pub mod progress;
pub mod provenance;
pub mod pyenv;
pub mod recipe;
pub mod runtime;
pub mod shard;
pub mod snapshot;
pub mod tflite;
pub mod units;
pub mod worker;
