//! Everything on the Python side of `litert`: the environment the worker runs in (provisioned
//! from a pinned lock, or an interpreter the user names) and, beside it, the worker itself.

pub mod env;
