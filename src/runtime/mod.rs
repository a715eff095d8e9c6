//! Running `.tflite` models natively through LiteRT's C API, with no Python: [`library`]
//! finds (or provisions) `libLiteRt.so`, [`ffi`] is the only unsafe code in the crate and
//! wraps the C API in owning types, [`quiet`] keeps the library's own log off stderr,
//! [`session`] verifies a file with the native reader,
//! matches inputs to a signature and runs it, [`tensor`] reads and writes numpy `.npz`
//! files, and [`bench`] times invocations. `litert run`, `litert bench` and the golden-output
//! check of `litert test` are built on it.

pub mod bench;
pub mod ffi;
pub mod library;
pub mod quiet;
pub mod session;
pub mod tensor;

pub use ffi::CpuSettings;
pub use session::{Compiled, Loaded, RunError, Runtime};
pub use tensor::{Dtype, Tensor};

/// Load the runtime from wherever [`library::ensure`] finds it (provisioning the
/// runtime-only environment if nothing else has the library).
pub fn load(progress: bool) -> anyhow::Result<(Runtime, library::Found)> {
    let found = library::ensure(progress)?;
    let runtime = Runtime::load(&found.path)?;
    Ok((runtime, found))
}
