//! Running one model: the file verified by the native reader first (the library trusts the
//! FlatBuffer, and a truncated file crashes it), a signature chosen by key, inputs matched by
//! name and checked for dtype and shape, dynamic dimensions resized, outputs read back and
//! checked to have been written at all.

use std::path::Path;
use std::sync::Arc;

use super::ffi::{self, CpuSettings, TensorType};
use super::tensor::{Dtype, Tensor};
use crate::tflite::{
    self,
    model::{ModelInfo, shape_text},
};

/// Why a model could not be run. `Input` errors are the caller's (exit 2); `Runtime` ones
/// are the model's or the library's (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Runtime(String),
}

impl RunError {
    pub fn is_input(&self) -> bool {
        matches!(self, RunError::Input(_))
    }
}

impl From<ffi::Error> for RunError {
    fn from(e: ffi::Error) -> Self {
        RunError::Runtime(format!("LiteRT: {e}"))
    }
}

/// The LiteRT library, loaded, with its environment.
pub struct Runtime {
    env: Arc<ffi::Environment>,
    lib: Arc<ffi::Library>,
}

impl Runtime {
    pub fn load(library: &Path) -> Result<Runtime, RunError> {
        let lib = ffi::Library::open(library).map_err(|e| RunError::Runtime(e.to_string()))?;
        let env = ffi::Environment::new(&lib)?;
        Ok(Runtime { env, lib })
    }

    pub fn library_path(&self) -> &str {
        self.lib.path()
    }

    /// Verify `path` natively, then load it into the runtime.
    pub fn open(&self, path: &Path) -> Result<Loaded, RunError> {
        let info = tflite::read_path(path, tflite::ReadOptions::default()).map_err(|e| {
            RunError::Input(format!("`{}` is not a usable model: {e}", path.display()))
        })?;
        if let Some(w) = info.warnings.iter().find(|w| w.contains("truncated")) {
            return Err(RunError::Input(format!(
                "`{}` cannot be run: {w}",
                path.display()
            )));
        }
        if !info.flex_ops.is_empty() {
            return Err(RunError::Input(format!(
                "`{}` uses Flex (TensorFlow) ops ({}), which the LiteRT runtime cannot run",
                path.display(),
                info.flex_ops.join(", ")
            )));
        }
        let model = Arc::new(ffi::Model::from_verified_file(&self.env, path)?);
        let signatures = model.signatures()?;
        Ok(Loaded {
            info,
            model,
            signatures,
        })
    }
}

/// A verified, loaded model.
pub struct Loaded {
    pub info: ModelInfo,
    model: Arc<ffi::Model>,
    pub signatures: Vec<ffi::SignatureInfo>,
}

/// One input or output of the chosen signature.
#[derive(Clone, Debug)]
pub struct Port {
    pub name: String,
    /// `None` for element types litert does not read or write (float16, strings, ...).
    pub dtype: Option<Dtype>,
    pub type_code: i32,
    /// Current dimensions.
    pub dims: Vec<i32>,
    /// -1 where the dimension is dynamic (from the file).
    pub shape_signature: Vec<i32>,
}

impl Port {
    fn dtype_name(&self) -> String {
        self.dtype.map_or_else(
            || format!("LiteRT type {}", self.type_code),
            |d| d.name().to_string(),
        )
    }

    fn bytes(&self) -> usize {
        let n: usize = self
            .dims
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(0))
            .product();
        n * self.dtype.map_or(1, Dtype::size)
    }

    fn tensor_type(&self) -> TensorType {
        TensorType {
            element_type: self.type_code,
            dims: self.dims.clone(),
        }
    }
}

fn dtype_of(code: i32) -> Option<Dtype> {
    Dtype::ALL.into_iter().find(|d| d.code() == code)
}

impl Loaded {
    /// The index of the signature to run: `key`, else the only one, else `serving_default`.
    pub fn select(&self, key: Option<&str>) -> Result<usize, RunError> {
        let keys: Vec<&str> = self.signatures.iter().map(|s| s.key.as_str()).collect();
        let found = match key {
            Some(k) => keys.iter().position(|s| *s == k),
            None if keys.len() == 1 => Some(0),
            None => keys.iter().position(|s| *s == "serving_default"),
        };
        found.ok_or_else(|| {
            let list = keys
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            RunError::Input(match key {
                Some(k) => format!("the model has no signature `{k}`; it has {list}"),
                None => format!(
                    "the model has several signatures ({list}): choose one with `--signature KEY`"
                ),
            })
        })
    }

    /// Compile the model for the CPU, for signature `index`.
    pub fn compile(&self, index: usize, cpu: CpuSettings) -> Result<Compiled, RunError> {
        let sig = self
            .signatures
            .get(index)
            .ok_or_else(|| RunError::Input(format!("no signature {index}")))?;
        // Dynamic dimensions come from the file: the runtime reports current sizes only.
        let file_sig = self
            .info
            .signatures
            .iter()
            .find(|s| s.key == sig.key)
            .or_else(|| (self.info.signatures.len() == 1).then(|| &self.info.signatures[0]));
        let ports = |list: &[(String, TensorType)], input: bool| -> Vec<Port> {
            list.iter()
                .map(|(name, t)| {
                    let shape_signature = file_sig
                        .and_then(|s| {
                            let side = if input { &s.inputs } else { &s.outputs };
                            side.iter().find(|x| &x.name == name)
                        })
                        .map_or_else(|| t.dims.clone(), |x| x.tensor.shape_signature.clone());
                    Port {
                        name: name.clone(),
                        dtype: dtype_of(t.element_type),
                        type_code: t.element_type,
                        dims: t.dims.clone(),
                        shape_signature,
                    }
                })
                .collect()
        };
        let compiled = ffi::CompiledModel::new(&self.model, cpu, index).map_err(|e| {
            RunError::Runtime(format!(
                "LiteRT could not compile the model: {e} (custom ops: {})",
                if self.info.custom_ops.is_empty() {
                    "none".to_string()
                } else {
                    self.info.custom_ops.join(", ")
                }
            ))
        })?;
        Ok(Compiled {
            compiled,
            key: sig.key.clone(),
            inputs: ports(&sig.inputs, true),
            outputs: ports(&sig.outputs, false),
            allocated: false,
        })
    }
}

/// A compiled signature with its buffers.
pub struct Compiled {
    compiled: ffi::CompiledModel,
    pub key: String,
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
    allocated: bool,
}

impl Compiled {
    /// Match `feeds` to the signature's inputs by name, check dtype and shape, resize dynamic
    /// dimensions, and copy the data in.
    pub fn set_inputs(&mut self, feeds: &[(String, Tensor)]) -> Result<(), RunError> {
        let wanted: Vec<String> = self.inputs.iter().map(|p| p.name.clone()).collect();
        let names = || {
            wanted
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some((extra, _)) = feeds.iter().find(|(n, _)| !wanted.contains(n)) {
            return Err(RunError::Input(format!(
                "input `{extra}` is not an input of signature `{}`, whose inputs are {}",
                self.key,
                names()
            )));
        }
        let mut ordered = Vec::with_capacity(self.inputs.len());
        let mut resized = false;
        for (i, port) in self.inputs.iter_mut().enumerate() {
            let Some((_, t)) = feeds.iter().find(|(n, _)| *n == port.name) else {
                return Err(RunError::Input(format!(
                    "no array for input `{}` of signature `{}` (expected {} {}); the inputs are {}",
                    port.name,
                    self.key,
                    port.dtype_name(),
                    shape_text(&port.shape_signature),
                    names()
                )));
            };
            if port.dtype != Some(t.dtype) {
                return Err(RunError::Input(format!(
                    "input `{}` must be {}, got {}",
                    port.name,
                    port.dtype_name(),
                    t.dtype.name()
                )));
            }
            let dims = check_shape(port, &t.shape)?;
            if dims != port.dims {
                self.compiled.resize_input(i, &dims)?;
                port.dims = dims;
                resized = true;
                self.allocated = false;
            }
            ordered.push(t);
        }
        if resized {
            let dims = self.compiled.output_dims(self.outputs.len())?;
            for (port, d) in self.outputs.iter_mut().zip(dims) {
                port.dims = d;
            }
        }
        self.ensure_allocated()?;
        for (i, t) in ordered.into_iter().enumerate() {
            self.compiled.write_input(i, &t.bytes)?;
        }
        Ok(())
    }

    /// Inputs of the current shapes with deterministic values (for benchmarks): dynamic
    /// dimensions become 1.
    pub fn synthetic_inputs(&self) -> Result<Vec<(String, Tensor)>, RunError> {
        self.inputs
            .iter()
            .map(|p| {
                let dtype = p.dtype.ok_or_else(|| {
                    RunError::Input(format!(
                        "input `{}` has {}, which litert cannot fill",
                        p.name,
                        p.dtype_name()
                    ))
                })?;
                let shape: Vec<usize> = p
                    .shape_signature
                    .iter()
                    .zip(&p.dims)
                    .map(|(&s, &d)| {
                        if s < 0 {
                            1
                        } else {
                            usize::try_from(d).unwrap_or(1)
                        }
                    })
                    .collect();
                let n: usize = shape.iter().product();
                let mut bytes = Vec::with_capacity(n * dtype.size());
                let mut state = 0x2545_f491_u32;
                for _ in 0..n {
                    // xorshift: cheap, fixed, different values per element.
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    push_value(&mut bytes, dtype, state);
                }
                Ok((
                    p.name.clone(),
                    Tensor {
                        dtype,
                        shape,
                        bytes,
                    },
                ))
            })
            .collect()
    }

    fn ensure_allocated(&mut self) -> Result<(), RunError> {
        if self.allocated {
            return Ok(());
        }
        for p in self.outputs.iter() {
            if p.dims.iter().any(|&d| d < 0) {
                return Err(RunError::Runtime(format!(
                    "output `{}` has no size before the model runs ({}): LiteRT's compiled-model API cannot return outputs sized at run time",
                    p.name,
                    shape_text(&p.dims)
                )));
            }
        }
        let ins: Vec<_> = self
            .inputs
            .iter()
            .map(|p| (p.tensor_type(), p.bytes()))
            .collect();
        let outs: Vec<_> = self
            .outputs
            .iter()
            .map(|p| (p.tensor_type(), p.bytes()))
            .collect();
        self.compiled.allocate(&ins, &outs)?;
        self.allocated = true;
        Ok(())
    }

    /// One invocation on the inputs already set.
    pub fn invoke(&mut self) -> Result<(), RunError> {
        self.compiled.run().map_err(|e| {
            let dynamic: Vec<String> = self
                .outputs
                .iter()
                .filter(|p| p.shape_signature.iter().any(|&d| d < 0))
                .map(|p| format!("`{}`", p.name))
                .collect();
            let note = if dynamic.is_empty() {
                String::new()
            } else {
                format!(
                    " (outputs {} have dynamic dimensions: when an output's size is computed while the model runs, e.g. by a SHAPE → RESHAPE chain, LiteRT's compiled-model API cannot return it)",
                    dynamic.join(", ")
                )
            };
            RunError::Runtime(format!("the model failed to run: {e}{note}"))
        })
    }

    /// Run and return the outputs, refusing any output the runtime did not write (an
    /// output sized while the model runs, such as a SHAPE → RESHAPE chain, which LiteRT's
    /// compiled-model API leaves unfilled). The output buffers are pre-filled with a byte
    /// pattern; an output that still holds it after the run is suspect, and is refused only
    /// if it also still holds a second, different pattern after a second run. Most models run
    /// once; a second run (which advances a stateful model) happens only then.
    pub fn run_checked(&mut self) -> Result<Vec<(String, Tensor)>, RunError> {
        const FIRST: u8 = 0xa5;
        const SECOND: u8 = 0x5a;
        let untouched =
            |t: &Tensor, fill: u8| !t.bytes.is_empty() && t.bytes.iter().all(|&b| b == fill);
        for i in 0..self.outputs.len() {
            self.compiled.fill_output(i, FIRST)?;
        }
        self.invoke()?;
        let first = self.outputs_now()?;
        if !first.iter().any(|(_, t)| untouched(t, FIRST)) {
            return Ok(first);
        }
        for i in 0..self.outputs.len() {
            self.compiled.fill_output(i, SECOND)?;
        }
        self.invoke()?;
        let second = self.outputs_now()?;
        if let Some((name, _)) = second.iter().find(|(_, t)| untouched(t, SECOND)) {
            return Err(RunError::Runtime(format!(
                "output `{name}` was not written by the runtime (its size is computed while the model runs, e.g. by a SHAPE → RESHAPE chain, and LiteRT's compiled-model API leaves such outputs unfilled); refusing to return uninitialised memory"
            )));
        }
        Ok(second)
    }

    fn outputs_now(&self) -> Result<Vec<(String, Tensor)>, RunError> {
        self.outputs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let dtype = p.dtype.ok_or_else(|| {
                    RunError::Runtime(format!(
                        "output `{}` has {}, which litert cannot read",
                        p.name,
                        p.dtype_name()
                    ))
                })?;
                let bytes = self.compiled.read_output(i, p.bytes())?;
                let shape = p
                    .dims
                    .iter()
                    .map(|&d| usize::try_from(d).unwrap_or(0))
                    .collect();
                Ok((
                    p.name.clone(),
                    Tensor {
                        dtype,
                        shape,
                        bytes,
                    },
                ))
            })
            .collect()
    }
}

fn push_value(out: &mut Vec<u8>, dtype: Dtype, r: u32) {
    let unit = f64::from(r) / f64::from(u32::MAX);
    match dtype {
        Dtype::F32 => out.extend_from_slice(&(unit as f32).to_le_bytes()),
        Dtype::F64 => out.extend_from_slice(&unit.to_le_bytes()),
        Dtype::I8 => out.push(r as u8),
        Dtype::U8 => out.push(r as u8),
        Dtype::Bool => out.push((r & 1) as u8),
        // Small non-negative integers: token ids and indices stay in range.
        Dtype::I16 | Dtype::U16 => out.extend_from_slice(&((r % 8) as u16).to_le_bytes()),
        Dtype::I32 | Dtype::U32 => out.extend_from_slice(&(r % 8).to_le_bytes()),
        Dtype::I64 | Dtype::U64 => out.extend_from_slice(&u64::from(r % 8).to_le_bytes()),
    }
}

/// The dimensions to run with, or why `shape` does not fit the port.
fn check_shape(port: &Port, shape: &[usize]) -> Result<Vec<i32>, RunError> {
    let expected = &port.shape_signature;
    let mismatch = || {
        RunError::Input(format!(
            "input `{}` must have shape {}, got {}",
            port.name,
            shape_text(expected),
            shape_text(&shape.iter().map(|&d| d as i64 as i32).collect::<Vec<_>>())
        ))
    };
    if shape.len() != expected.len() {
        return Err(mismatch());
    }
    let mut dims = Vec::with_capacity(shape.len());
    for (&got, &want) in shape.iter().zip(expected) {
        let got = i32::try_from(got).map_err(|_| mismatch())?;
        if want >= 0 && got != want {
            return Err(mismatch());
        }
        dims.push(got);
    }
    Ok(dims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(sig: Vec<i32>) -> Port {
        Port {
            name: "x".into(),
            dtype: Some(Dtype::F32),
            type_code: 1,
            dims: sig.iter().map(|&d| d.max(1)).collect(),
            shape_signature: sig,
        }
    }

    #[test]
    fn shapes_are_checked_and_dynamic_dims_accepted() {
        assert_eq!(
            check_shape(&port(vec![1, -1, 3]), &[1, 7, 3]).unwrap(),
            vec![1, 7, 3]
        );
        let err = check_shape(&port(vec![1, 4]), &[1, 5]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "input `x` must have shape [1,4], got [1,5]"
        );
        assert!(check_shape(&port(vec![1, 4]), &[4]).is_err());
    }
}
