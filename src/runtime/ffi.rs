//! The only unsafe code in `litert`: LiteRT's C API (`libLiteRt.so` from the pinned
//! `ai-edge-litert` wheel), loaded at run time with `libloading`, behind owning wrappers.
//!
//! Every C call goes through one of the small `unsafe` blocks below and every status it
//! returns is checked. Handles are owned by exactly one wrapper and destroyed in `Drop`, and
//! each wrapper keeps what it depends on alive (`Arc`s of the library and environment, a
//! compiled model keeps its model), so no handle outlives its library or its parents.
//! Declarations follow the headers `litert/c/litert_*.h` of the LiteRT release the wheel is
//! built from; [`Library::open`] refuses a library that lacks any of them.
//!
//! Nothing here knows about files, signatures by name or numpy: that is [`super::session`].
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::Path;
use std::sync::Arc;

use super::quiet::{self, Hush};

/// `LiteRtStatus`: 0 is success.
type Status = c_int;
type Handle = *mut c_void;

/// The largest rank LiteRT supports (`LITERT_TENSOR_MAX_RANK`).
pub const MAX_RANK: usize = 8;

/// `LiteRtLayout` (68 bytes): a 7-bit rank and a 1-bit `has_strides` flag in one
/// `unsigned int`, then fixed arrays of dimensions and strides.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct RawLayout {
    rank_and_flags: u32,
    dimensions: [i32; MAX_RANK],
    strides: [u32; MAX_RANK],
}

/// `LiteRtRankedTensorType` (72 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct RawTensorType {
    element_type: c_int,
    layout: RawLayout,
}

const _: () = assert!(std::mem::size_of::<RawLayout>() == 68);
const _: () = assert!(std::mem::size_of::<RawTensorType>() == 72);

const HW_ACCELERATOR_CPU: c_int = 1;
const BUFFER_TYPE_HOST_MEMORY: c_int = 1;
const LOCK_READ: c_int = 0;
const LOCK_WRITE: c_int = 1;

/// An element type and shape as the runtime sees a tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorType {
    /// `LiteRtElementType` (the TfLiteType codes).
    pub element_type: i32,
    pub dims: Vec<i32>,
}

impl RawLayout {
    fn dims(&self) -> Vec<i32> {
        let rank = ((self.rank_and_flags & 0x7f) as usize).min(MAX_RANK);
        self.dimensions[..rank].to_vec()
    }

    fn of(dims: &[i32]) -> Result<Self, Error> {
        if dims.len() > MAX_RANK {
            return Err(Error::msg(format!(
                "rank {} is more than LiteRT's maximum of {MAX_RANK}",
                dims.len()
            )));
        }
        let mut layout = RawLayout {
            rank_and_flags: dims.len() as u32,
            ..RawLayout::default()
        };
        layout.dimensions[..dims.len()].copy_from_slice(dims);
        Ok(layout)
    }
}

/// A failed C call: which one, and the `LiteRtStatus` it returned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot load `{path}`: {source}")]
    Load {
        path: String,
        #[source]
        source: libloading::Error,
    },
    #[error("`{call}` failed: {}", status_name(*.status))]
    Call { call: &'static str, status: c_int },
    #[error("{0}")]
    Msg(String),
}

impl Error {
    fn msg(text: String) -> Self {
        Error::Msg(text)
    }

    /// This error with the `ERROR` lines the library logged while `hush` was open (it logs
    /// the reason a call failed; the status code alone says little).
    fn with_log(self, hush: &Hush) -> Self {
        let lines = hush.errors();
        if lines.is_empty() {
            self
        } else {
            Error::Msg(format!("{self}; LiteRT's log: {}", lines.join(" / ")))
        }
    }
}

/// The names of `LiteRtStatus` codes (`litert_common.h`).
fn status_name(status: c_int) -> String {
    let name = match status {
        1 => "invalid argument",
        2 => "memory allocation failure",
        3 => "runtime failure",
        4 => "missing input tensor",
        5 => "unsupported",
        6 => "not found",
        7 => "timeout expired",
        8 => "wrong version",
        9 => "unknown error",
        10 => "already exists",
        500 => "file I/O error",
        501 => "invalid FlatBuffer",
        502 => "dynamic loading error",
        504 => "compilation error",
        1000 => "index out of bounds",
        _ => "error",
    };
    format!("{name} (status {status})")
}

fn check(call: &'static str, status: Status) -> Result<(), Error> {
    if status == 0 {
        Ok(())
    } else {
        Err(Error::Call { call, status })
    }
}

/// Declares the C functions: one field per function, loaded by name in `Api::load`.
macro_rules! api {
    ($( $name:ident : fn($($arg:ty),*) $(-> $ret:ty)? ;)*) => {
        #[allow(non_snake_case)]
        struct Api {
            $( $name: unsafe extern "C" fn($($arg),*) $(-> $ret)?, )*
        }

        impl Api {
            /// # Safety
            /// The library must export these symbols with exactly these C signatures.
            unsafe fn load(lib: &libloading::Library) -> Result<Api, libloading::Error> {
                Ok(Api {
                    $( $name: unsafe {
                        *lib.get::<unsafe extern "C" fn($($arg),*) $(-> $ret)?>(
                            concat!(stringify!($name), "\0").as_bytes(),
                        )?
                    }, )*
                })
            }
        }
    };
}

api! {
    LiteRtCreateEnvironment: fn(c_int, *const c_void, *mut Handle) -> Status;
    LiteRtDestroyEnvironment: fn(Handle);
    LiteRtCreateModelFromFile: fn(Handle, *const c_char, *mut Handle) -> Status;
    LiteRtDestroyModel: fn(Handle);
    LiteRtGetNumModelSignatures: fn(Handle, *mut usize) -> Status;
    LiteRtGetModelSignature: fn(Handle, usize, *mut Handle) -> Status;
    LiteRtGetSignatureKey: fn(Handle, *mut *const c_char) -> Status;
    LiteRtGetNumSignatureInputs: fn(Handle, *mut usize) -> Status;
    LiteRtGetSignatureInputName: fn(Handle, usize, *mut *const c_char) -> Status;
    LiteRtGetSignatureInputTensorByIndex: fn(Handle, usize, *mut Handle) -> Status;
    LiteRtGetNumSignatureOutputs: fn(Handle, *mut usize) -> Status;
    LiteRtGetSignatureOutputName: fn(Handle, usize, *mut *const c_char) -> Status;
    LiteRtGetSignatureOutputTensorByIndex: fn(Handle, usize, *mut Handle) -> Status;
    LiteRtGetRankedTensorType: fn(Handle, *mut RawTensorType) -> Status;
    LiteRtCreateOptions: fn(*mut Handle) -> Status;
    LiteRtDestroyOptions: fn(Handle);
    LiteRtSetOptionsHardwareAccelerators: fn(Handle, c_int) -> Status;
    LiteRtCreateOpaqueOptions: fn(*const c_char, *mut c_void, Option<unsafe extern "C" fn(*mut c_void)>, *mut Handle) -> Status;
    LiteRtDestroyOpaqueOptions: fn(Handle);
    LiteRtAddOpaqueOptions: fn(Handle, Handle) -> Status;
    LiteRtCreateCompiledModel: fn(Handle, Handle, Handle, *mut Handle) -> Status;
    LiteRtDestroyCompiledModel: fn(Handle);
    LiteRtCompiledModelResizeInputTensor: fn(Handle, usize, usize, *const c_int, usize) -> Status;
    LiteRtGetCompiledModelInputBufferRequirements: fn(Handle, usize, usize, *mut Handle) -> Status;
    LiteRtGetCompiledModelOutputBufferRequirements: fn(Handle, usize, usize, *mut Handle) -> Status;
    LiteRtGetCompiledModelOutputTensorLayouts: fn(Handle, usize, usize, *mut RawLayout, bool) -> Status;
    LiteRtGetTensorBufferRequirementsBufferSize: fn(Handle, *mut usize) -> Status;
    LiteRtCreateManagedTensorBuffer: fn(Handle, c_int, *const RawTensorType, usize, *mut Handle) -> Status;
    LiteRtDestroyTensorBuffer: fn(Handle);
    LiteRtGetTensorBufferSize: fn(Handle, *mut usize) -> Status;
    LiteRtLockTensorBuffer: fn(Handle, *mut *mut c_void, c_int) -> Status;
    LiteRtUnlockTensorBuffer: fn(Handle) -> Status;
    LiteRtRunCompiledModel: fn(Handle, usize, usize, *mut Handle, usize, *mut Handle) -> Status;
}

/// The loaded library and its function table. Dropped (unloaded) only when every object made
/// through it is gone, since each holds an `Arc` of it.
pub struct Library {
    api: Api,
    path: String,
    // Declared last so the function pointers above never outlive the mapping.
    _lib: libloading::Library,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library").field("path", &self.path).finish()
    }
}

impl Library {
    /// Load `libLiteRt.so` and resolve every function `litert` calls.
    pub fn open(path: &Path) -> Result<Arc<Library>, Error> {
        let load_err = |source| Error::Load {
            path: path.display().to_string(),
            source,
        };
        // SAFETY: loading runs the library's initialisers. This is LiteRT's own runtime from
        // the pinned wheel (libc/libstdc++ only), found in the environment litert provisioned
        // or named explicitly by the user.
        let hush = quiet::hush();
        let lib = unsafe { libloading::Library::new(path) }.map_err(load_err)?;
        drop(hush);
        // SAFETY: the signatures in `api!` are those of the LiteRT C headers for this ABI.
        let api = unsafe { Api::load(&lib) }.map_err(load_err)?;
        Ok(Arc::new(Library {
            api,
            path: path.display().to_string(),
            _lib: lib,
        }))
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

/// A `LiteRtEnvironment`: the runtime's process-level state, shared by models.
pub struct Environment {
    lib: Arc<Library>,
    raw: Handle,
}

// SAFETY: the environment is created once and only read by LiteRT afterwards; litert uses
// it from one thread at a time.
unsafe impl Send for Environment {}
unsafe impl Sync for Environment {}

impl Environment {
    pub fn new(lib: &Arc<Library>) -> Result<Arc<Environment>, Error> {
        let mut raw = std::ptr::null_mut();
        let hush = quiet::hush();
        // SAFETY: zero options and a valid out pointer.
        check("LiteRtCreateEnvironment", unsafe {
            (lib.api.LiteRtCreateEnvironment)(0, std::ptr::null(), &mut raw)
        })
        .map_err(|e| e.with_log(&hush))?;
        if raw.is_null() {
            return Err(Error::msg(
                "LiteRtCreateEnvironment returned no environment".into(),
            ));
        }
        Ok(Arc::new(Environment {
            lib: lib.clone(),
            raw,
        }))
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        let _hush = quiet::hush();
        // SAFETY: created by LiteRtCreateEnvironment; every model and buffer made with it holds
        // an Arc of this environment, so none is left.
        unsafe { (self.lib.api.LiteRtDestroyEnvironment)(self.raw) }
    }
}

/// One signature's names and tensor types, as the runtime reports them.
#[derive(Clone, Debug)]
pub struct SignatureInfo {
    pub key: String,
    pub inputs: Vec<(String, TensorType)>,
    pub outputs: Vec<(String, TensorType)>,
}

/// A `LiteRtModel` loaded from a file the native reader has already verified.
pub struct Model {
    env: Arc<Environment>,
    raw: Handle,
}

// SAFETY: after loading, litert only reads the model (signature queries, compilation), and
// LiteRT does not mutate it on those paths.
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

fn api(env: &Environment) -> &Api {
    &env.lib.api
}

/// Copy a C string the library owns.
///
/// # Safety
/// `ptr` is null or points to a NUL-terminated string that is valid for this call.
unsafe fn owned_str(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

impl Model {
    /// Load a model. The caller must have verified the file with the native reader: the
    /// library trusts the FlatBuffer, and a truncated one crashes the process.
    pub fn from_verified_file(env: &Arc<Environment>, path: &Path) -> Result<Model, Error> {
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::msg(format!("`{}` contains a NUL byte", path.display())))?;
        let mut raw = std::ptr::null_mut();
        let hush = quiet::hush();
        // SAFETY: valid environment, NUL-terminated path, valid out pointer.
        check("LiteRtCreateModelFromFile", unsafe {
            (api(env).LiteRtCreateModelFromFile)(env.raw, c_path.as_ptr(), &mut raw)
        })
        .map_err(|e| e.with_log(&hush))?;
        if raw.is_null() {
            return Err(Error::msg(
                "LiteRtCreateModelFromFile returned no model".into(),
            ));
        }
        Ok(Model {
            env: env.clone(),
            raw,
        })
    }

    /// Every signature, in the runtime's order (the index `CompiledModel::run` takes).
    pub fn signatures(&self) -> Result<Vec<SignatureInfo>, Error> {
        let a = api(&self.env);
        let mut n = 0usize;
        // SAFETY (this block and the loop): handles come from this live model; out pointers
        // are valid locals; strings are copied before the next call.
        check("LiteRtGetNumModelSignatures", unsafe {
            (a.LiteRtGetNumModelSignatures)(self.raw, &mut n)
        })?;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let mut sig = std::ptr::null_mut();
            check("LiteRtGetModelSignature", unsafe {
                (a.LiteRtGetModelSignature)(self.raw, i, &mut sig)
            })?;
            let mut key = std::ptr::null();
            check("LiteRtGetSignatureKey", unsafe {
                (a.LiteRtGetSignatureKey)(sig, &mut key)
            })?;
            let key = unsafe { owned_str(key) };
            let mut n_in = 0usize;
            check("LiteRtGetNumSignatureInputs", unsafe {
                (a.LiteRtGetNumSignatureInputs)(sig, &mut n_in)
            })?;
            let mut inputs = Vec::with_capacity(n_in);
            for j in 0..n_in {
                let mut name = std::ptr::null();
                check("LiteRtGetSignatureInputName", unsafe {
                    (a.LiteRtGetSignatureInputName)(sig, j, &mut name)
                })?;
                let mut tensor = std::ptr::null_mut();
                check("LiteRtGetSignatureInputTensorByIndex", unsafe {
                    (a.LiteRtGetSignatureInputTensorByIndex)(sig, j, &mut tensor)
                })?;
                inputs.push((unsafe { owned_str(name) }, self.tensor_type(tensor)?));
            }
            let mut n_out = 0usize;
            check("LiteRtGetNumSignatureOutputs", unsafe {
                (a.LiteRtGetNumSignatureOutputs)(sig, &mut n_out)
            })?;
            let mut outputs = Vec::with_capacity(n_out);
            for j in 0..n_out {
                let mut name = std::ptr::null();
                check("LiteRtGetSignatureOutputName", unsafe {
                    (a.LiteRtGetSignatureOutputName)(sig, j, &mut name)
                })?;
                let mut tensor = std::ptr::null_mut();
                check("LiteRtGetSignatureOutputTensorByIndex", unsafe {
                    (a.LiteRtGetSignatureOutputTensorByIndex)(sig, j, &mut tensor)
                })?;
                outputs.push((unsafe { owned_str(name) }, self.tensor_type(tensor)?));
            }
            out.push(SignatureInfo {
                key,
                inputs,
                outputs,
            });
        }
        Ok(out)
    }

    fn tensor_type(&self, tensor: Handle) -> Result<TensorType, Error> {
        let mut t = RawTensorType::default();
        // SAFETY: a tensor handle of this live model and a valid out pointer.
        check("LiteRtGetRankedTensorType", unsafe {
            (api(&self.env).LiteRtGetRankedTensorType)(tensor, &mut t)
        })?;
        Ok(TensorType {
            element_type: t.element_type,
            dims: t.layout.dims(),
        })
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        let _hush = quiet::hush();
        // SAFETY: created by LiteRtCreateModelFromFile; compiled models hold an Arc of it.
        unsafe { (api(&self.env).LiteRtDestroyModel)(self.raw) }
    }
}

/// How the model is compiled for the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuSettings {
    /// Threads for the CPU kernels (XNNPACK or the builtin ones).
    pub threads: u32,
    /// `true`: XNNPACK runs what it supports (LiteRT's default); `false`: LiteRT's builtin
    /// kernels only.
    pub xnnpack: bool,
}

/// Frees the options payload: a `CString` this module leaked to the library.
unsafe extern "C" fn free_payload(ptr: *mut c_void) {
    if !ptr.is_null() {
        // SAFETY: `ptr` came from `CString::into_raw` in `CompiledModel::new`, and the library
        // calls this destructor once.
        drop(unsafe { CString::from_raw(ptr.cast()) });
    }
}

/// `LiteRtOptions`, destroyed when dropped.
struct Options<'a> {
    env: &'a Environment,
    raw: Handle,
}

impl Drop for Options<'_> {
    fn drop(&mut self) {
        // SAFETY: created by LiteRtCreateOptions; the compiled model does not keep it.
        unsafe { (api(self.env).LiteRtDestroyOptions)(self.raw) }
    }
}

impl<'a> Options<'a> {
    fn cpu(env: &'a Environment, cpu: CpuSettings) -> Result<Self, Error> {
        let a = api(env);
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid out pointer.
        check("LiteRtCreateOptions", unsafe {
            (a.LiteRtCreateOptions)(&mut raw)
        })?;
        let options = Options { env, raw };
        // SAFETY: live options handle.
        check("LiteRtSetOptionsHardwareAccelerators", unsafe {
            (a.LiteRtSetOptionsHardwareAccelerators)(options.raw, HW_ACCELERATOR_CPU)
        })?;
        // The CPU accelerator reads its settings as TOML from an opaque payload named
        // `xnnpack` (`litert/c/options/litert_cpu_options.cc`).
        let mode = if cpu.xnnpack { "delegate" } else { "builtin" };
        let toml = format!("kernel_mode = \"{mode}\"\nnum_threads = {}\n", cpu.threads);
        let payload = CString::new(toml).map_err(|_| Error::msg("NUL in options".into()))?;
        let identifier = c"xnnpack";
        let payload = payload.into_raw();
        let mut opaque = std::ptr::null_mut();
        // SAFETY: the identifier is static; the payload and its destructor are ours; on
        // failure the payload is freed here, on success the opaque options own it.
        let status = unsafe {
            (a.LiteRtCreateOpaqueOptions)(
                identifier.as_ptr(),
                payload.cast(),
                Some(free_payload),
                &mut opaque,
            )
        };
        if status != 0 {
            unsafe { free_payload(payload.cast()) };
            return Err(Error::Call {
                call: "LiteRtCreateOpaqueOptions",
                status,
            });
        }
        // SAFETY: ownership of `opaque` passes to the options on success only.
        let status = unsafe { (a.LiteRtAddOpaqueOptions)(options.raw, opaque) };
        if status != 0 {
            unsafe { (a.LiteRtDestroyOpaqueOptions)(opaque) };
            return Err(Error::Call {
                call: "LiteRtAddOpaqueOptions",
                status,
            });
        }
        Ok(options)
    }
}

/// A model compiled for the CPU, with one set of host-memory buffers for one signature.
pub struct CompiledModel {
    model: Arc<Model>,
    raw: Handle,
    signature: usize,
    inputs: Vec<Buffer>,
    outputs: Vec<Buffer>,
    /// Scratch arrays of raw handles for `LiteRtRunCompiledModel`.
    input_handles: Vec<Handle>,
    output_handles: Vec<Handle>,
    /// Whether a run succeeded: the first one logs (delegates settle), later ones do not,
    /// and timed runs are not slowed by redirecting fd 2.
    ran: bool,
}

// SAFETY: a compiled model and its buffers are used by one thread at a time (`&mut self`
// for everything that runs or writes).
unsafe impl Send for CompiledModel {}

impl CompiledModel {
    pub fn new(model: &Arc<Model>, cpu: CpuSettings, signature: usize) -> Result<Self, Error> {
        let env = &model.env;
        let hush = quiet::hush();
        let options = Options::cpu(env, cpu).map_err(|e| e.with_log(&hush))?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: live environment, model and options; valid out pointer. The options stay
        // ours (the header says the caller owns them) and are dropped after this call.
        check("LiteRtCreateCompiledModel", unsafe {
            (api(env).LiteRtCreateCompiledModel)(env.raw, model.raw, options.raw, &mut raw)
        })
        .map_err(|e| e.with_log(&hush))?;
        drop(options);
        if raw.is_null() {
            return Err(Error::msg(
                "LiteRtCreateCompiledModel returned nothing".into(),
            ));
        }
        Ok(CompiledModel {
            model: model.clone(),
            raw,
            signature,
            inputs: Vec::new(),
            outputs: Vec::new(),
            input_handles: Vec::new(),
            output_handles: Vec::new(),
            ran: false,
        })
    }

    fn api(&self) -> &Api {
        api(&self.model.env)
    }

    /// Resize input `index` (before [`Self::allocate`]) for a model with dynamic dimensions.
    pub fn resize_input(&mut self, index: usize, dims: &[i32]) -> Result<(), Error> {
        let hush = quiet::hush();
        // SAFETY: live compiled model; `dims` is a valid array of its length.
        check("LiteRtCompiledModelResizeInputTensor", unsafe {
            (self.api().LiteRtCompiledModelResizeInputTensor)(
                self.raw,
                self.signature,
                index,
                dims.as_ptr(),
                dims.len(),
            )
        })
        .map_err(|e| e.with_log(&hush))
    }

    /// The output shapes the runtime computes from the current input shapes.
    pub fn output_dims(&self, count: usize) -> Result<Vec<Vec<i32>>, Error> {
        let mut layouts = vec![RawLayout::default(); count];
        // SAFETY: `layouts` holds `count` writable layouts, as the call requires.
        check("LiteRtGetCompiledModelOutputTensorLayouts", unsafe {
            (self.api().LiteRtGetCompiledModelOutputTensorLayouts)(
                self.raw,
                self.signature,
                count,
                layouts.as_mut_ptr(),
                true,
            )
        })?;
        Ok(layouts.iter().map(RawLayout::dims).collect())
    }

    /// Create host-memory buffers for the given input and output types, sized as the
    /// compiled model requires (never smaller than the tensors' bytes).
    pub fn allocate(
        &mut self,
        inputs: &[(TensorType, usize)],
        outputs: &[(TensorType, usize)],
    ) -> Result<(), Error> {
        let hush = quiet::hush();
        self.allocate_buffers(inputs, outputs)
            .map_err(|e| e.with_log(&hush))
    }

    fn allocate_buffers(
        &mut self,
        inputs: &[(TensorType, usize)],
        outputs: &[(TensorType, usize)],
    ) -> Result<(), Error> {
        self.inputs.clear();
        self.outputs.clear();
        for (i, (t, bytes)) in inputs.iter().enumerate() {
            let need = self.required_size(true, i)?.max(*bytes);
            self.inputs.push(Buffer::new(&self.model.env, t, need)?);
        }
        for (i, (t, bytes)) in outputs.iter().enumerate() {
            let need = self.required_size(false, i)?.max(*bytes);
            self.outputs.push(Buffer::new(&self.model.env, t, need)?);
        }
        self.input_handles = self.inputs.iter().map(|b| b.raw).collect();
        self.output_handles = self.outputs.iter().map(|b| b.raw).collect();
        Ok(())
    }

    fn required_size(&self, input: bool, index: usize) -> Result<usize, Error> {
        let a = self.api();
        let mut req = std::ptr::null_mut();
        // SAFETY: live compiled model, valid out pointer; the requirements stay owned by the
        // compiled model and are read at once.
        if input {
            check("LiteRtGetCompiledModelInputBufferRequirements", unsafe {
                (a.LiteRtGetCompiledModelInputBufferRequirements)(
                    self.raw,
                    self.signature,
                    index,
                    &mut req,
                )
            })?;
        } else {
            check("LiteRtGetCompiledModelOutputBufferRequirements", unsafe {
                (a.LiteRtGetCompiledModelOutputBufferRequirements)(
                    self.raw,
                    self.signature,
                    index,
                    &mut req,
                )
            })?;
        }
        let mut size = 0usize;
        check("LiteRtGetTensorBufferRequirementsBufferSize", unsafe {
            (a.LiteRtGetTensorBufferRequirementsBufferSize)(req, &mut size)
        })?;
        Ok(size)
    }

    /// Copy `bytes` into input buffer `index`.
    pub fn write_input(&mut self, index: usize, bytes: &[u8]) -> Result<(), Error> {
        let api = api(&self.model.env);
        let buffer = self
            .inputs
            .get(index)
            .ok_or_else(|| Error::msg(format!("no input buffer {index}")))?;
        buffer.write(api, bytes)
    }

    /// Fill output buffer `index` with one byte value (to tell unwritten outputs apart).
    pub fn fill_output(&mut self, index: usize, value: u8) -> Result<(), Error> {
        let api = api(&self.model.env);
        let buffer = self
            .outputs
            .get(index)
            .ok_or_else(|| Error::msg(format!("no output buffer {index}")))?;
        let len = buffer.size(api)?;
        buffer.write(api, &vec![value; len])
    }

    /// The first `len` bytes of output buffer `index`.
    pub fn read_output(&self, index: usize, len: usize) -> Result<Vec<u8>, Error> {
        let buffer = self
            .outputs
            .get(index)
            .ok_or_else(|| Error::msg(format!("no output buffer {index}")))?;
        buffer.read(self.api(), len)
    }

    /// Run the signature on the buffers from [`Self::allocate`].
    pub fn run(&mut self) -> Result<(), Error> {
        if self.inputs.is_empty() && self.outputs.is_empty() {
            return Err(Error::msg("no buffers were allocated".into()));
        }
        let run = self.api().LiteRtRunCompiledModel;
        let hush = (!self.ran).then(quiet::hush);
        // SAFETY: the handle arrays hold this compiled model's live buffers, one per input
        // and output of the signature, and are not aliased during the call.
        let result = check("LiteRtRunCompiledModel", unsafe {
            run(
                self.raw,
                self.signature,
                self.input_handles.len(),
                self.input_handles.as_mut_ptr(),
                self.output_handles.len(),
                self.output_handles.as_mut_ptr(),
            )
        });
        match hush {
            Some(hush) => result.map_err(|e| e.with_log(&hush))?,
            None => result?,
        }
        self.ran = true;
        Ok(())
    }
}

impl Drop for CompiledModel {
    fn drop(&mut self) {
        let _hush = quiet::hush();
        self.inputs.clear();
        self.outputs.clear();
        // SAFETY: created by LiteRtCreateCompiledModel; its buffers are destroyed above.
        unsafe { (self.api().LiteRtDestroyCompiledModel)(self.raw) }
    }
}

/// A managed host-memory `LiteRtTensorBuffer`.
struct Buffer {
    env: Arc<Environment>,
    raw: Handle,
}

impl Buffer {
    fn new(env: &Arc<Environment>, t: &TensorType, size: usize) -> Result<Buffer, Error> {
        let tensor_type = RawTensorType {
            element_type: t.element_type,
            layout: RawLayout::of(&t.dims)?,
        };
        let mut raw = std::ptr::null_mut();
        // SAFETY: live environment; the tensor type is read during the call only.
        check("LiteRtCreateManagedTensorBuffer", unsafe {
            (api(env).LiteRtCreateManagedTensorBuffer)(
                env.raw,
                BUFFER_TYPE_HOST_MEMORY,
                &tensor_type,
                size,
                &mut raw,
            )
        })?;
        Ok(Buffer {
            env: env.clone(),
            raw,
        })
    }

    fn size(&self, a: &Api) -> Result<usize, Error> {
        let mut size = 0usize;
        // SAFETY: live buffer, valid out pointer.
        check("LiteRtGetTensorBufferSize", unsafe {
            (a.LiteRtGetTensorBufferSize)(self.raw, &mut size)
        })?;
        Ok(size)
    }

    fn write(&self, a: &Api, bytes: &[u8]) -> Result<(), Error> {
        let size = self.size(a)?;
        if bytes.len() > size {
            return Err(Error::msg(format!(
                "{} bytes do not fit a buffer of {size}",
                bytes.len()
            )));
        }
        let mut addr = std::ptr::null_mut();
        // SAFETY: live buffer; while locked, `addr` points to `size` writable bytes and
        // `bytes.len() <= size`; the lock is released right after the copy.
        check("LiteRtLockTensorBuffer", unsafe {
            (a.LiteRtLockTensorBuffer)(self.raw, &mut addr, LOCK_WRITE)
        })?;
        if addr.is_null() {
            unsafe { (a.LiteRtUnlockTensorBuffer)(self.raw) };
            return Err(Error::msg("the tensor buffer has no host memory".into()));
        }
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr.cast::<u8>(), bytes.len()) };
        check("LiteRtUnlockTensorBuffer", unsafe {
            (a.LiteRtUnlockTensorBuffer)(self.raw)
        })
    }

    fn read(&self, a: &Api, len: usize) -> Result<Vec<u8>, Error> {
        let size = self.size(a)?;
        if len > size {
            return Err(Error::msg(format!(
                "{len} bytes asked of a buffer of {size}"
            )));
        }
        let mut addr = std::ptr::null_mut();
        // SAFETY: as in `write`, reading `len <= size` bytes.
        check("LiteRtLockTensorBuffer", unsafe {
            (a.LiteRtLockTensorBuffer)(self.raw, &mut addr, LOCK_READ)
        })?;
        if addr.is_null() {
            unsafe { (a.LiteRtUnlockTensorBuffer)(self.raw) };
            return Err(Error::msg("the tensor buffer has no host memory".into()));
        }
        let out = unsafe { std::slice::from_raw_parts(addr.cast::<u8>(), len) }.to_vec();
        check("LiteRtUnlockTensorBuffer", unsafe {
            (a.LiteRtUnlockTensorBuffer)(self.raw)
        })?;
        Ok(out)
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: created by LiteRtCreateManagedTensorBuffer and unlocked.
        unsafe { (api(&self.env).LiteRtDestroyTensorBuffer)(self.raw) }
    }
}
