//! `litert` turns version-controlled YAML recipes into LiteRT (`.tflite`) models.
//!
//! Data flows one way: [`recipe`] loads, validates and resolves recipes into build plans;
//! [`engine`] runs them through the Python [`worker`], reads the results with the native
//! [`tflite`] reader and records them in [`snapshot`]s and the [`lock`] file; [`runtime`]
//! runs artifacts natively; [`cache`] shares artifacts through an object store and [`shard`]
//! splits a run over CI machines and merges their lock fragments; [`diag`] renders located
//! diagnostics; [`fsio`] writes files atomically for all of them; [`interrupt`] undoes work
//! in progress on SIGINT/SIGTERM; [`cli`] owns the command line and nothing else.

pub mod cache;
pub mod cli;
pub mod diag;
pub mod diff;
pub mod digest;
pub mod engine;
pub mod fsio;
pub mod interrupt;
pub mod litertlm;
pub mod lock;
pub mod progress;
pub mod pyenv;
pub mod recipe;
pub mod runtime;
pub mod shard;
pub mod snapshot;
pub mod tflite;
pub mod units;
pub mod worker;
