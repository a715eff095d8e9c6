//! The integration tests, one module per area, in one binary (one link instead of one per
//! file). Every test runs `litert` through a [`support::TestContext`]: a scratch project,
//! never the checkout. The staleness checks of generated files are the `generated` binary.

mod support;

// Shared with the shard benchmark (`benches/shards.rs`).
mod servers;

mod apply;
mod bpe;
mod cache;
mod ci_docs;
mod env_cli;
mod env_provision;
mod env_real;
mod faults;
mod generation;
mod hostile;
mod init;
mod kinds;
mod layout;
mod litertlm;
mod lock_and_snapshots;
mod output_names;
mod provenance;
mod quant;
mod recipe_check;
mod runtime;
mod tflite_cli;
mod tflite_crosscheck;
mod tflite_fixtures;
mod tflite_write;
