//! The Python worker: the protocol both sides speak, running worker processes (under a
//! memory budget), and the embedded `litert_worker` package. The worker receives fully
//! resolved build plans as data, never generated code; the environment it runs in is
//! [`crate::pyenv`]'s.

pub mod memory;
pub mod process;
pub mod protocol;
