//! Located diagnostics.
