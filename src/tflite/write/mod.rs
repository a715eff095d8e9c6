//! The native `.tflite` writer: a [`ModelDef`] (tensors, operators, signatures, buffers given
//! as bytes or as a function that streams them) becomes a LiteRT model file, written once,
//! front to back, and hashed on the way. It knows nothing of where the graph or the weights
//! come from.
//!
//! # File layout
//!
//! The FlatBuffer comes first and holds no weight bytes. Every non-empty buffer is stored
//! after it, at a 64-byte aligned absolute file offset, and the FlatBuffer's `Buffer` table
//! only names that `offset` and `size` (its `data` vector is absent). That is the layout
//! LiteRT uses for models over 2 GB, and the only one that lets a weight be streamed into
//! the file without being held in memory:
//!
//! - LiteRT's own guide to large models ("Large `.tflite` Models and Weight Storage
//!   Options", `buffer_offset` mode) says: `Buffer.data` absent, `Buffer.offset`/`size`
//!   relative to the start of the file, offsets 0 and 1 reserved, and a `buffer_location`
//!   metadata entry holding the string `outside flatbuffers` ("converter utilities and
//!   `BuildFromModel` rely on it to recognize this storage mode"). The converter's MLIR
//!   tests show the same entry (`tfl.metadata = {buffer_location = "outside flatbuffers",
//!   ...}`), so [`write`] adds it whenever a buffer is stored outside.
//! - The interpreter (`tensorflow/lite/core/interpreter_builder.cc`, `ParseTensors`) takes a
//!   buffer's `data` when present, else `allocation base + offset` when `offset > 1`, after
//!   checking `offset + size` against the file length; it needs no metadata for that.
//! - Metadata values stay inline (`data`): `ReadAllMetadata` and `GetMinimumRuntime`
//!   (`tensorflow/compiler/mlir/lite/core/model_builder_base.h`) read only `buffer->data()`,
//!   so a metadata value stored outside would be invisible (or crash the latter).
//!
//! The 64-byte alignment is what LiteRT asks of host tensor memory
//! (`LITERT_HOST_MEMORY_BUFFER_ALIGNMENT`); the converter itself aligns to 16.
//!
//! The FlatBuffer's size does not depend on the offset values (they are fixed-width scalars,
//! always present), so it is built once with placeholder offsets to learn its size, then
//! again with the real ones; the two must agree byte for byte in length.
//!
//! Everything written is deterministic: the same [`ModelDef`] gives the same bytes.

use std::fmt;
use std::io::{self, Write};

mod build;
#[cfg(test)]
mod tests;
mod validate;

use build::{build, estimate_size};
use validate::validate;

/// A whole model: what [`write`] turns into a file.
#[derive(Debug, Default)]
pub struct ModelDef {
    pub description: String,
    /// Buffer 0 must be [`BufferDef::Empty`]: tensors without data point at it.
    pub buffers: Vec<BufferDef>,
    pub subgraphs: Vec<SubgraphDef>,
    pub signatures: Vec<SignatureDef>,
    /// Builtin operator codes ([`builtin_op`](super::builtin_op)); an operator's
    /// `opcode_index` is a position in this list.
    pub operator_codes: Vec<i32>,
    /// Named metadata values (stored inline in the FlatBuffer, as LiteRT reads them).
    pub metadata: Vec<(String, Vec<u8>)>,
}

/// The bytes of one buffer.
pub enum BufferDef {
    Empty,
    Bytes(Vec<u8>),
    /// `len` bytes that `fill` writes when the writer reaches this buffer, so a large weight
    /// goes from its source to the file without being held. `fill` must write exactly `len`
    /// bytes; it is called once, in buffer order, and not at all when `len` is 0.
    Streamed {
        len: u64,
        #[allow(clippy::type_complexity)]
        fill: Box<dyn FnMut(&mut dyn Write) -> io::Result<()>>,
    },
}

impl BufferDef {
    /// A buffer of `len` bytes that `fill` writes.
    pub fn streamed(
        len: u64,
        fill: impl FnMut(&mut dyn Write) -> io::Result<()> + 'static,
    ) -> Self {
        BufferDef::Streamed {
            len,
            fill: Box::new(fill),
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            BufferDef::Empty => 0,
            BufferDef::Bytes(bytes) => bytes.len() as u64,
            BufferDef::Streamed { len, .. } => *len,
        }
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for BufferDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BufferDef::Empty => f.write_str("Empty"),
            BufferDef::Bytes(bytes) => write!(f, "Bytes({} bytes)", bytes.len()),
            BufferDef::Streamed { len, .. } => write!(f, "Streamed({len} bytes)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubgraphDef {
    pub name: String,
    pub tensors: Vec<TensorDef>,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub operators: Vec<OperatorDef>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TensorDef {
    pub name: String,
    pub shape: Vec<i32>,
    /// `shape` with -1 for dynamic dimensions; `None` when every dimension is static.
    pub shape_signature: Option<Vec<i32>>,
    /// A `TensorType` code ([`tensor_type`](super::tensor_type)).
    pub dtype: i8,
    /// Index into [`ModelDef::buffers`]; 0 for tensors without constant data.
    pub buffer: u32,
    pub quantization: Option<QuantDef>,
}

/// Affine quantization: `real = scale * (q - zero_point)`, per tensor (one scale) or per
/// channel along `quantized_dimension`; or blockwise, where `scale` and `zero_point` are
/// empty and [`BlockwiseDef`] names the tensor holding the scales.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QuantDef {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i64>,
    pub quantized_dimension: i32,
    pub blockwise: Option<BlockwiseDef>,
}

/// Blockwise quantization (`QuantizationDetails.BlockwiseQuantization`): one scale per
/// `block_size` consecutive elements along the last axis, zero point 0. XNNPACK runs it
/// for int4 fully-connected weights with float16 scales `[out, in / block_size]` and a
/// block size that is a multiple of 32.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockwiseDef {
    /// The scales tensor, an index into the same subgraph's tensors.
    pub scales: i32,
    pub block_size: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OperatorDef {
    pub opcode_index: u32,
    /// Tensor indices; -1 marks an optional input that is absent.
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub options: Options,
}

/// An operator's builtin options. `fused` is an `ActivationFunctionType` code (0 none,
/// 1 RELU, 3 RELU6, ...). Variants without fields write the op's empty options table, or
/// none for ops that have no options table (`Sin`, `Tanh`, `Logistic`, `Rsqrt`, `Sqrt` and
/// [`Options::None`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Options {
    None,
    Add {
        fused: i8,
    },
    Sub {
        fused: i8,
    },
    Mul {
        fused: i8,
    },
    Div {
        fused: i8,
    },
    FullyConnected {
        fused: i8,
        keep_num_dims: bool,
        asymmetric_quantize_inputs: bool,
    },
    BatchMatMul {
        adj_x: bool,
        adj_y: bool,
        asymmetric_quantize_inputs: bool,
    },
    Reshape {
        new_shape: Vec<i32>,
    },
    Softmax {
        beta: f32,
    },
    Concatenation {
        axis: i32,
        fused: i8,
    },
    Gather {
        axis: i32,
        batch_dims: i32,
    },
    Transpose,
    /// MEAN, SUM, REDUCE_MAX (and the other reductions).
    Reducer {
        keep_dims: bool,
    },
    StridedSlice {
        begin_mask: i32,
        end_mask: i32,
        shrink_axis_mask: i32,
        ellipsis_mask: i32,
        new_axis_mask: i32,
        offset: bool,
    },
    Slice,
    /// Written with the input and output tensors' types, as the converter does.
    Cast,
    Gelu {
        approximate: bool,
    },
    DynamicUpdateSlice,
    Pack {
        values_count: i32,
        axis: i32,
    },
    SelectV2,
    Neg,
    Squeeze {
        dims: Vec<i32>,
    },
    Exp,
    Split {
        num_splits: i32,
    },
    LogSoftmax,
    Dequantize,
    Quantize,
    /// MAXIMUM and MINIMUM.
    MaximumMinimum,
    ArgMax {
        output_type: i8,
    },
    Less,
    Greater,
    GreaterEqual,
    LessEqual,
    Equal,
    Tile,
    ExpandDims,
    Pow,
    SquaredDifference,
    Cos,
    Sin,
    Tanh,
    Logistic,
    Rsqrt,
    Sqrt,
    Cumsum {
        exclusive: bool,
        reverse: bool,
    },
    BroadcastTo,
    Range,
    Fill,
    Shape {
        out_type: i8,
    },
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SignatureDef {
    pub key: String,
    pub subgraph_index: u32,
    /// (name in the signature, tensor index in the subgraph).
    pub inputs: Vec<(String, u32)>,
    pub outputs: Vec<(String, u32)>,
}

/// What [`write`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub bytes: u64,
}

/// Why a model could not be written. Nothing is left half-valid on purpose: a caller writing
/// a file discards it on any error (see [`crate::fsio`]).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the model is invalid: {0}")]
    Invalid(String),
    #[error("buffer {index} was declared as {declared} bytes, but its fill wrote {written}")]
    ShortFill {
        index: usize,
        declared: u64,
        written: u64,
    },
    #[error("buffer {index} was declared as {declared} bytes, but its fill wrote more")]
    LongFill { index: usize, declared: u64 },
    #[error("filling buffer {index} failed")]
    Fill {
        index: usize,
        #[source]
        source: io::Error,
    },
    #[error(
        "the model's FlatBuffer would take about {0} bytes, more than the 2 GiB a FlatBuffer can address"
    )]
    TooLarge(u64),
    #[error("cannot write the model")]
    Io(#[from] io::Error),
}

/// The schema version every current model carries.
const SCHEMA_VERSION: u32 = 3;
/// Buffers stored after the FlatBuffer start at multiples of this.
pub const BUFFER_ALIGNMENT: u64 = 64;
/// The metadata entry that marks buffers stored outside the FlatBuffer, and its value.
const BUFFER_LOCATION: (&str, &[u8]) = ("buffer_location", b"outside flatbuffers");
/// A FlatBuffer addresses 2 GiB; stay clear of it, so the builder never reaches its limit.
const FLATBUFFER_LIMIT: u64 = (1 << 31) - (1 << 24);

/// Write `model` to `out`: the FlatBuffer, then every non-empty buffer at a 64-byte aligned
/// offset, streamed. Returns the byte count and SHA-256 of what was written. `out` gets
/// writes of every size (padding is a few bytes): give it a buffered writer, as
/// [`write_path`] does. Nothing is written when the model is refused ([`WriteError::Invalid`]
/// and [`WriteError::TooLarge`]).
pub fn write(mut model: ModelDef, out: &mut dyn Write) -> Result<Written, WriteError> {
    validate(&model)?;
    let estimate = estimate_size(&model);
    if estimate > FLATBUFFER_LIMIT {
        return Err(WriteError::TooLarge(estimate));
    }
    let lens: Vec<u64> = model.buffers.iter().map(BufferDef::len).collect();

    // Placeholder offsets (any value > 1 is written, and takes the same room), to learn
    // where the FlatBuffer ends.
    let placeholder: Vec<Option<(u64, u64)>> = lens
        .iter()
        .map(|&len| (len > 0).then_some((u64::MAX, len)))
        .collect();
    let first = build(&model, &placeholder, estimate);
    let flatbuffer_len = first.len() as u64;
    drop(first);

    let mut spans = Vec::with_capacity(lens.len());
    let mut end = flatbuffer_len;
    for &len in &lens {
        if len == 0 {
            spans.push(None);
        } else {
            let start = align(end);
            spans.push(Some((start, len)));
            end = start.checked_add(len).ok_or_else(|| {
                WriteError::Invalid("the buffers add up to more bytes than a file can hold".into())
            })?;
        }
    }
    let flatbuffer = build(&model, &spans, estimate);
    if flatbuffer.len() as u64 != flatbuffer_len {
        return Err(WriteError::Invalid(format!(
            "internal: the FlatBuffer took {} bytes with placeholder offsets and {} with real ones",
            flatbuffer_len,
            flatbuffer.len()
        )));
    }

    let mut w = Counting::new(out);
    w.write_all(&flatbuffer).map_err(WriteError::Io)?;
    drop(flatbuffer);
    for (index, (buffer, span)) in model.buffers.iter_mut().zip(&spans).enumerate() {
        let Some((start, len)) = *span else { continue };
        pad_to(&mut w, start)?;
        if w.written != start {
            return Err(WriteError::Invalid(format!(
                "internal: buffer {index} was laid out at byte {start}, but the file is at byte {}",
                w.written
            )));
        }
        match buffer {
            BufferDef::Empty => {}
            BufferDef::Bytes(bytes) => w.write_all(bytes).map_err(WriteError::Io)?,
            BufferDef::Streamed { fill, .. } => {
                let mut budget = Budget {
                    inner: &mut w,
                    left: len,
                    overflowed: false,
                };
                let result = fill(&mut budget);
                let (left, overflowed) = (budget.left, budget.overflowed);
                if overflowed {
                    return Err(WriteError::LongFill {
                        index,
                        declared: len,
                    });
                }
                result.map_err(|source| WriteError::Fill { index, source })?;
                if left > 0 {
                    return Err(WriteError::ShortFill {
                        index,
                        declared: len,
                        written: len - left,
                    });
                }
            }
        }
    }
    w.flush().map_err(WriteError::Io)?;
    Ok(Written { bytes: w.written })
}

/// [`write`] to a file at `path`, atomically ([`crate::fsio`]): the file appears whole or
/// not at all, and nothing is left behind on an error.
pub fn write_path(model: ModelDef, path: &std::path::Path) -> Result<Written, WriteError> {
    crate::fsio::write_atomic_with(path, |w| write(model, w))
}

/// `at` rounded up to [`BUFFER_ALIGNMENT`].
fn align(at: u64) -> u64 {
    at.div_ceil(BUFFER_ALIGNMENT) * BUFFER_ALIGNMENT
}

/// Zeros up to file offset `to`.
fn pad_to<W: Write>(w: &mut Counting<W>, to: u64) -> Result<(), WriteError> {
    const ZEROS: [u8; BUFFER_ALIGNMENT as usize] = [0; BUFFER_ALIGNMENT as usize];
    let gap = to.saturating_sub(w.written);
    let gap = usize::try_from(gap).unwrap_or(usize::MAX).min(ZEROS.len());
    w.write_all(ZEROS.get(..gap).unwrap_or_default())
        .map_err(WriteError::Io)
}

/// A writer that counts the bytes it passes on: where the next buffer starts.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Counting<W> {
    fn new(inner: W) -> Self {
        Self { inner, written: 0 }
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The writer a [`BufferDef::Streamed`] fill writes to: passes on at most the declared
/// length, and refuses more (so the buffers after it keep their offsets).
struct Budget<'a, W: Write> {
    inner: &'a mut Counting<W>,
    left: u64,
    overflowed: bool,
}

impl<W: Write> Write for Budget<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            self.overflowed = true;
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "more bytes than the buffer's declared length",
            ));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
