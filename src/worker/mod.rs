//! The Python worker: the environment it runs in (provisioned from a pinned lock, or an
//! interpreter the user names), the protocol both sides speak, and running worker
//! processes. The worker receives fully resolved build plans as data, never generated code.

pub mod env;
pub mod memory;
pub mod process;
pub mod protocol;
