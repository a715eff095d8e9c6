//! The build pipeline behind `litert apply` and `litert test`. A run ([`session`]) decides
//! from the lock files what is up to date ([`freshness`]; no Python for those), restores
//! what the remote cache holds, and hands the rest to the worker pool ([`pool`]), which
//! converts each plan in a worker under a timeout (a language model the native writer
//! writes is written first, [`native`], and the worker only checks it), then checks the artifact, writes its
//! `.litertlm` bundle ([`bundle`]) and accepts it ([`accept`]: parity, gates, quantization,
//! the lock under `--locked`, the snapshot), committing artifact, snapshot and lock entry as
//! one transaction ([`transaction`]). [`describe`] asks a worker what a model takes and
//! gives, for `litert init`. [`toolchain`] is the part of a build's identity that this
//! litert itself contributes. A failed build never leaves a temp file or touches the
//! previous artifact ([`failure`] says why it failed); a crashed worker is replaced so the
//! remaining builds still run. Each build ends as an [`Outcome`], which [`report`] prints.

mod accept;
pub mod accuracy;
pub mod bundle;
pub mod contract;
pub mod describe;
mod failure;
pub mod footprint;
pub mod freshness;
pub mod gates;
pub mod generation;
pub mod golden;
mod native;
mod outcome;
mod pool;
pub mod progress;
pub mod quant;
pub mod report;
pub mod session;
pub mod toolchain;
pub mod transaction;

pub use failure::Failure;
pub use outcome::{Converted, Outcome, Status, Verified};
