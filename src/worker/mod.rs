//! The Python worker: the protocol both sides speak, and running worker processes. The
//! worker receives fully resolved build plans as data and never generated code.

pub mod process;
pub mod protocol;
