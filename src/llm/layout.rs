//! Where each weight of a decoder lies in a KerasHub preset's `.weights.h5` (per family, as a
//! table), how it becomes the `[out, in]` matrix a fully-connected op reads, and how it is
//! stored: one buffer each, streamed from the file a block of rows at a time and quantized on
//! the way ([`super::quant`]). Shapes are checked against the config.

use std::sync::Arc;

use super::LlmError;
use super::graph::{Blocks, Shared, Stored};
use super::lora::{Adapter, Delta};
use super::preset::{Architecture, Family};
use super::quant::{
    Storage, f16_bits, f16_to_f32, int4_block_scale, int4_row, int4_scale, int8_row, int8_scale,
};
use super::weights::Weights;
use crate::tflite::tensor_type as tt;
use crate::tflite::{BufferDef, QuantDef};

/// The dynamic-range rule of the TensorFlow converter, kept so both writers store the same
/// tensors as int8: weights under 1,024 elements stay float32.
const MIN_QUANTIZED_ELEMENTS: usize = 1024;

/// The float32 values read and converted together: a block of output rows of about this
/// many bytes bounds the memory of a streamed weight, and is wide enough that the pages a
/// block reads from a column-major source serve it whole.
const BLOCK_BYTES: usize = 16 << 20;

/// Inputs of an `[in, out]` source transposed together (see [`Matrix::rows`]).
const TILE_COLS: usize = 32;

fn block_rows(cols: usize) -> usize {
    (BLOCK_BYTES / (4 * cols.max(1))).max(1)
}

/// Blocks converted at once, one thread each: the machine's cores, at most 4 (the memory of
/// a streamed weight is this many blocks).
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// `work(r0, n)` on every block of `step` rows of a `rows`-row matrix, [`threads`] blocks
/// at a time, each result handed to `done` in row order. Each row's result depends on its
/// row alone, so the bytes are the same however many threads run.
fn in_blocks<T: Send, E: Send>(
    rows: usize,
    step: usize,
    work: impl Fn(usize, usize) -> Result<T, E> + Sync,
    panicked: impl Fn() -> E,
    mut done: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E> {
    let starts: Vec<usize> = (0..rows).step_by(step.max(1)).collect();
    for group in starts.chunks(threads()) {
        let results: Vec<Result<T, E>> = if let [r0] = group {
            vec![work(*r0, step.min(rows - r0))]
        } else {
            std::thread::scope(|s| {
                let running: Vec<_> = group
                    .iter()
                    .map(|&r0| {
                        let work = &work;
                        s.spawn(move || work(r0, step.min(rows - r0)))
                    })
                    .collect();
                running
                    .into_iter()
                    .map(|t| t.join().unwrap_or_else(|_| Err(panicked())))
                    .collect()
            })
        };
        for r in results {
            done(r?)?;
        }
    }
    Ok(())
}

/// (dimension, stride) of each source axis that makes up a matrix axis.
type Axes = Vec<(usize, usize)>;

/// A weight as an `[out, in]` matrix over a stored tensor: the tensor's axes that make the
/// output rows and those that make the inputs, each in row-major order.
#[derive(Clone)]
struct Matrix {
    source: String,
    rank: usize,
    out_axes: Vec<usize>,
    in_axes: Vec<usize>,
    /// A LoRA adapter's change to the source, added as it is read.
    lora: Option<Delta>,
}

impl Matrix {
    fn new(source: String, rank: usize, out_axes: &[usize], in_axes: &[usize]) -> Self {
        Self {
            source,
            rank,
            out_axes: out_axes.to_vec(),
            in_axes: in_axes.to_vec(),
            lora: None,
        }
    }

    /// `(rows, cols)` and, for each, the (dimension, stride) pairs that locate an element.
    fn layout(&self, shape: &[usize]) -> ((usize, usize), Axes, Axes) {
        let mut strides = vec![1usize; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * shape[i + 1];
        }
        let axes = |list: &[usize]| {
            list.iter()
                .map(|&a| (shape[a], strides[a]))
                .collect::<Vec<_>>()
        };
        let (o, i) = (axes(&self.out_axes), axes(&self.in_axes));
        let rows = o.iter().map(|d| d.0).product();
        let cols = i.iter().map(|d| d.0).product();
        ((rows, cols), o, i)
    }

    /// Rows `r0..r0+n` as float32 into `buf` (`n × cols`).
    fn rows(
        &self,
        weights: &Weights,
        r0: usize,
        n: usize,
        buf: &mut Vec<f32>,
    ) -> Result<usize, LlmError> {
        let view = weights.get(&self.source, self.rank)?;
        let ((_, cols), o, i) = self.layout(view.shape);
        let offset = |mut idx: usize, dims: &[(usize, usize)]| {
            let mut off = 0;
            for &(d, s) in dims.iter().rev() {
                off += (idx % d) * s;
                idx /= d;
            }
            off
        };
        buf.clear();
        buf.resize(n * cols, 0.0);
        let row_offsets: Vec<usize> = (r0..r0 + n).map(|r| offset(r, &o)).collect();
        let col_offsets: Vec<usize> = (0..cols).map(|c| offset(c, &i)).collect();
        let consecutive =
            |offsets: &[usize]| offsets.iter().zip(offsets[0]..).all(|(&a, b)| a == b);
        // Walk the source in its own order: along a row when a row's inputs are adjacent
        // in the file (`[out, in]` layouts), else across the block's rows for each input.
        if consecutive(&col_offsets) {
            for (k, &ro) in row_offsets.iter().enumerate() {
                view.contiguous(ro, &mut buf[k * cols..(k + 1) * cols]);
            }
        } else if i.last().is_some_and(|&(_, stride)| stride == 1) {
            for (k, &ro) in row_offsets.iter().enumerate() {
                view.gather(ro, &col_offsets, &mut buf[k * cols..(k + 1) * cols]);
            }
        } else if consecutive(&row_offsets) {
            // `[in, out]` (a Dense kernel): the block's rows of one input are adjacent.
            // Read a few inputs' columns, then transpose them into the rows while both
            // fit in cache. A column's stride in the tile is one cache line more than its
            // length: at a power of two the columns would share one set of the cache.
            let stride = n + 16;
            let mut tile = vec![0.0f32; TILE_COLS * stride];
            for c0 in (0..cols).step_by(TILE_COLS) {
                let width = TILE_COLS.min(cols - c0);
                for (j, &co) in col_offsets[c0..c0 + width].iter().enumerate() {
                    let column = &mut tile[j * stride..j * stride + n];
                    view.contiguous(co + row_offsets[0], column);
                }
                for (k, row) in buf.chunks_mut(cols).enumerate() {
                    for (j, v) in row[c0..c0 + width].iter_mut().enumerate() {
                        *v = tile[j * stride + k];
                    }
                }
            }
        } else {
            let mut column = vec![0.0f32; n];
            for (c, &co) in col_offsets.iter().enumerate() {
                view.gather(co, &row_offsets, &mut column);
                for (k, v) in column.iter().enumerate() {
                    buf[k * cols + c] = *v;
                }
            }
        }
        if let Some(delta) = &self.lora {
            delta.add(view.shape, &row_offsets, &col_offsets, buf)?;
        }
        Ok(cols)
    }

    fn dims(&self, weights: &Weights) -> Result<(usize, usize), LlmError> {
        let view = weights.get(&self.source, self.rank)?;
        Ok(self.layout(view.shape).0)
    }
}

/// Store `m` as one buffer with `storage` (int8 and int4 only from 1,024 elements up), with
/// what `adapter` adds to it merged in; the tensor every subgraph refers to.
fn store(
    shared: &mut Shared,
    weights: &Arc<Weights>,
    adapter: Option<&Adapter>,
    name: &str,
    mut m: Matrix,
    storage: Storage,
) -> Result<Stored, LlmError> {
    if let Some(adapter) = adapter {
        let view = weights.get(&m.source, m.rank)?;
        m.lora = adapter.delta(&m.source, view.shape)?;
    }
    let (rows, cols) = m.dims(weights)?;
    let storage = match storage {
        Storage::Int8PerChannel | Storage::Int4 { .. } if rows * cols < MIN_QUANTIZED_ELEMENTS => {
            Storage::Float32
        }
        s => s,
    };
    if let Some(reason) = storage.refuse(&format!("the inputs of `{name}`"), cols) {
        return Err(LlmError::Unsupported(reason));
    }
    // Scales per row (or per block of a row) live in the FlatBuffer or in a buffer that
    // precedes the weight's: a first pass computes them.
    let per_row = match storage {
        Storage::Int4 { block: Some(b) } => cols / b,
        _ => 1,
    };
    let mut scales: Vec<f32> = Vec::new();
    let mut block_bits: Vec<u16> = Vec::new();
    if matches!(storage, Storage::Int8PerChannel | Storage::Int4 { .. }) {
        let block_scales = |r0: usize, n: usize| -> Result<(Vec<f32>, Vec<u16>), LlmError> {
            let mut buf = Vec::new();
            m.rows(weights, r0, n, &mut buf)?;
            let (mut scales, mut bits) = (Vec::new(), Vec::new());
            for (k, row) in buf.chunks(cols).enumerate() {
                match storage {
                    Storage::Int8PerChannel => scales.push(int8_scale(row)),
                    Storage::Int4 { block: None } => scales.push(int4_scale(row)),
                    Storage::Int4 { block: Some(b) } => {
                        for (j, values) in row.chunks(b).enumerate() {
                            let bits_of = int4_block_scale(values).ok_or_else(|| {
                                LlmError::Weights {
                                    path: weights.path().to_path_buf(),
                                    message: format!(
                                        "`{name}` row {} inputs {}..{}: an int4 scale of max|w| / 7 overflows float16 (max|w| over {})",
                                        r0 + k,
                                        j * b,
                                        (j + 1) * b,
                                        7.0 * 65504.0
                                    ),
                                }
                            })?;
                            bits.push(bits_of);
                            scales.push(f16_to_f32(bits_of));
                        }
                    }
                    Storage::Float32 | Storage::Float16 => {}
                }
            }
            Ok((scales, bits))
        };
        let panicked = || LlmError::Weights {
            path: weights.path().to_path_buf(),
            message: format!("converting `{name}` failed (a thread panicked)"),
        };
        in_blocks(rows, block_rows(cols), block_scales, panicked, |(s, b)| {
            weights.release(&m.source);
            scales.extend(s);
            block_bits.extend(b);
            Ok(())
        })?;
    }
    let quantization = matches!(
        storage,
        Storage::Int8PerChannel | Storage::Int4 { block: None }
    )
    .then(|| QuantDef {
        scale: scales.clone(),
        zero_point: vec![0; rows],
        quantized_dimension: 0,
        blockwise: None,
    });
    let blocks = match storage {
        Storage::Int4 { block: Some(size) } => {
            let bytes = block_bits.iter().flat_map(|b| b.to_le_bytes()).collect();
            Some(Blocks {
                scales: Box::new(Stored {
                    name: format!("{name}_scales"),
                    buffer: shared.buffer(BufferDef::Bytes(bytes)),
                    shape: vec![rows as i32, per_row as i32],
                    dtype: tt::FLOAT16,
                    quantization: None,
                    blocks: None,
                }),
                size,
            })
        }
        _ => None,
    };
    let len = storage.matrix_bytes(rows, cols);
    let source = Arc::clone(weights);
    let fill = move |w: &mut dyn std::io::Write| -> std::io::Result<()> {
        let block_bytes = |r0: usize, n: usize| -> std::io::Result<Vec<u8>> {
            let mut buf = Vec::new();
            m.rows(&source, r0, n, &mut buf)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let mut bytes = Vec::new();
            for (k, row) in buf.chunks(cols).enumerate() {
                let r = r0 + k;
                match storage {
                    Storage::Float32 => bytes.extend(row.iter().flat_map(|v| v.to_le_bytes())),
                    Storage::Float16 => {
                        bytes.extend(row.iter().flat_map(|&v| f16_bits(v).to_le_bytes()));
                    }
                    Storage::Int8PerChannel => int8_row(row, scales[r], &mut bytes),
                    Storage::Int4 { .. } => {
                        int4_row(row, &scales[r * per_row..(r + 1) * per_row], &mut bytes);
                    }
                }
            }
            Ok(bytes)
        };
        let panicked = || std::io::Error::other("a weight conversion thread panicked");
        in_blocks(rows, block_rows(cols), block_bytes, panicked, |bytes| {
            source.release(&m.source);
            w.write_all(&bytes)
        })
    };
    let buffer = shared.buffer(BufferDef::streamed(len, fill));
    let dtype = match storage {
        Storage::Float32 => tt::FLOAT32,
        Storage::Float16 => tt::FLOAT16,
        Storage::Int8PerChannel => tt::INT8,
        Storage::Int4 { .. } => tt::INT4,
    };
    Ok(Stored {
        name: name.to_string(),
        buffer,
        shape: vec![rows as i32, cols as i32],
        dtype,
        quantization,
        blocks,
    })
}

/// A small float32 vector (a norm's scale), read whole, `plus_one` for Gemma's `1 + scale`.
fn vector(
    shared: &mut Shared,
    weights: &Weights,
    name: &str,
    source: &str,
    plus_one: bool,
) -> Result<Stored, LlmError> {
    let view = weights.get(source, 1)?;
    let bytes = (0..view.len())
        .flat_map(|i| {
            let v = view.at(i);
            (if plus_one { 1.0 + v } else { v }).to_le_bytes()
        })
        .collect();
    Ok(Stored {
        name: name.to_string(),
        buffer: shared.buffer(BufferDef::Bytes(bytes)),
        shape: vec![view.len() as i32],
        dtype: tt::FLOAT32,
        quantization: None,
        blocks: None,
    })
}

/// One layer's weights.
pub struct Layer {
    pub pre_attention_norm: Stored,
    pub q: Stored,
    pub k: Stored,
    pub v: Stored,
    /// Per-head RMS norm scales of queries and keys ([`Architecture::qk_norm_eps`]).
    pub q_norm: Option<Stored>,
    pub k_norm: Option<Stored>,
    pub o: Stored,
    pub post_attention_norm: Option<Stored>,
    pub pre_ffw_norm: Stored,
    pub gate: Stored,
    pub up: Stored,
    pub down: Stored,
    pub post_ffw_norm: Option<Stored>,
}

/// Every weight of the model, stored once.
pub struct Model {
    pub arch: Architecture,
    pub table: Stored,
    /// Per-row scales of an int8 or per-channel int4 table, for the lookup (a blockwise
    /// table's lookup reads its float16 block scales).
    pub table_scales: Option<Stored>,
    /// The untied output projection; `None`: the table.
    pub head: Option<Stored>,
    pub final_norm: Stored,
    pub layers: Vec<Layer>,
}

/// A family's datasets: the block's layer name (`NAME`, `NAME_1`, ...), the final norm, and
/// within a block each weight's path; whether norms scale by `1 + w`; the axes that make
/// the query/key/value kernels' output rows and inputs.
struct Layout {
    block: &'static str,
    final_norm: &'static str,
    norm_plus_one: bool,
    pre_attention_norm: &'static str,
    post_attention_norm: &'static str,
    pre_ffw_norm: &'static str,
    post_ffw_norm: &'static str,
    /// query, key, value, attention output
    attention: [&'static str; 4],
    /// query norm, key norm (families with them)
    qk_norm: [&'static str; 2],
    qkv_axes: (&'static [usize], &'static [usize]),
    /// gate, up, down
    ffw: [&'static str; 3],
}

const GEMMA: Layout = Layout {
    block: "gemma_decoder_block",
    final_norm: "rms_normalization",
    norm_plus_one: true,
    pre_attention_norm: "pre_attention_norm",
    post_attention_norm: "post_attention_norm",
    pre_ffw_norm: "pre_ffw_norm",
    post_ffw_norm: "post_ffw_norm",
    attention: [
        "attention/query_dense",
        "attention/key_dense",
        "attention/value_dense",
        "attention/output_dense",
    ],
    qk_norm: ["", ""],
    // [heads, hidden, head_dim]
    qkv_axes: (&[0, 2], &[1]),
    ffw: ["gating_ffw", "gating_ffw_2", "ffw_linear"],
};

const GEMMA3: Layout = Layout {
    block: "gemma3_decoder_block",
    qk_norm: ["attention/query_norm", "attention/key_norm"],
    ..GEMMA
};

const LLAMA: Layout = Layout {
    block: "llama_transformer_decoder",
    final_norm: "llama_layer_norm",
    norm_plus_one: false,
    pre_attention_norm: "_self_attention_layernorm",
    post_attention_norm: "",
    pre_ffw_norm: "_feedforward_layernorm",
    post_ffw_norm: "",
    attention: [
        "_self_attention_layer/_query_dense",
        "_self_attention_layer/_key_dense",
        "_self_attention_layer/_value_dense",
        "_self_attention_layer/_output_dense",
    ],
    qk_norm: ["", ""],
    // [hidden, heads, head_dim]
    qkv_axes: (&[1, 2], &[0]),
    ffw: [
        "_feedforward_gate_dense",
        "_feedforward_intermediate_dense",
        "_feedforward_output_dense",
    ],
};

const QWEN3: Layout = Layout {
    block: "qwen3_transformer_decoder",
    final_norm: "qwen3_layer_norm",
    qk_norm: [
        "_self_attention_layer/_query_dense_layer_norm",
        "_self_attention_layer/_key_dense_layer_norm",
    ],
    ..LLAMA
};

/// Store every weight of the preset once, with what `adapter` changes merged in.
pub fn load(
    shared: &mut Shared,
    weights: &Arc<Weights>,
    adapter: Option<&Adapter>,
    arch: Architecture,
    storage: Storage,
    table_storage: Storage,
) -> Result<Model, LlmError> {
    let f = match arch.family {
        Family::Gemma => &GEMMA,
        Family::Gemma3 => &GEMMA3,
        Family::Llama => &LLAMA,
        Family::Qwen3 => &QWEN3,
    };
    let matrix =
        |shared: &mut Shared, name: &str, source: String, rank, out: &[usize], inp: &[usize]| {
            store(
                shared,
                weights,
                adapter,
                name,
                Matrix::new(source, rank, out, inp),
                storage,
            )
        };
    let embedding = "layers/reversible_embedding/vars";
    let table = store(
        shared,
        weights,
        adapter,
        "token_embedding",
        Matrix::new(format!("{embedding}/0"), 2, &[0], &[1]),
        table_storage,
    )?;
    if table.shape != [arch.vocab as i32, arch.hidden as i32] {
        return Err(mismatch(weights, &table, [arch.vocab, arch.hidden]));
    }
    let table_scales = table.quantization.as_ref().map(|q| {
        let bytes = q.scale.iter().flat_map(|s| s.to_le_bytes()).collect();
        Stored {
            name: "token_embedding_scales".into(),
            buffer: shared.buffer(BufferDef::Bytes(bytes)),
            shape: vec![q.scale.len() as i32],
            dtype: tt::FLOAT32,
            quantization: None,
            blocks: None,
        }
    });
    let untied = format!("{embedding}/1");
    let head = if weights.has(&untied) {
        Some(store(
            shared,
            weights,
            adapter,
            "output_projection",
            Matrix::new(untied, 2, &[1], &[0]),
            table_storage,
        )?)
    } else {
        None
    };
    let plus_one = f.norm_plus_one;
    let final_source = format!("layers/{}/vars/0", f.final_norm);
    let final_norm = vector(shared, weights, "final_norm", &final_source, plus_one)?;
    let (qh, kvh, h, ff) = (
        arch.q_heads * arch.head_dim,
        arch.kv_heads * arch.head_dim,
        arch.hidden,
        arch.intermediate,
    );
    let mut layers = Vec::with_capacity(arch.layers);
    for i in 0..arch.layers {
        let block = match i {
            0 => format!("layers/{}", f.block),
            _ => format!("layers/{}_{i}", f.block),
        };
        let source = |path: &str| format!("{block}/{path}/vars/0");
        let name = |path: &str| format!("layer_{i}/{}", path.rsplit('/').next().unwrap_or(path));
        // A norm's scale, as long as the vectors it scales.
        let sized = |shared: &mut Shared, path: &str, len: usize| {
            let v = vector(shared, weights, &name(path), &source(path), plus_one)?;
            if v.shape != [len as i32] {
                return Err(LlmError::Weights {
                    path: weights.path().to_path_buf(),
                    message: format!(
                        "`{}` has {:?} elements, the config implies {len}",
                        v.name, v.shape
                    ),
                });
            }
            Ok(v)
        };
        let norm = |shared: &mut Shared, path: &str| sized(shared, path, h);
        let optional_norm =
            |shared: &mut Shared, on: bool, path: &str| on.then(|| norm(shared, path)).transpose();
        let head_norm = |shared: &mut Shared, on: bool, path: &str| {
            on.then(|| sized(shared, path, arch.head_dim)).transpose()
        };
        let [wq, wk, wv, wo] = f.attention;
        let [nq, nk] = f.qk_norm;
        let qk_norm = arch.qk_norm_eps.is_some();
        let [wg, wu, wd] = f.ffw;
        let (qkv_out, qkv_in) = f.qkv_axes;
        // Each matrix with the [out, in] shape the config implies.
        let checked = |shared: &mut Shared,
                       path: &str,
                       rank,
                       out: &[usize],
                       inp: &[usize],
                       expect: [usize; 2]| {
            let w = matrix(shared, &name(path), source(path), rank, out, inp)?;
            if w.shape != [expect[0] as i32, expect[1] as i32] {
                return Err(mismatch(weights, &w, expect));
            }
            Ok(w)
        };
        layers.push(Layer {
            pre_attention_norm: norm(shared, f.pre_attention_norm)?,
            q: checked(shared, wq, 3, qkv_out, qkv_in, [qh, h])?,
            k: checked(shared, wk, 3, qkv_out, qkv_in, [kvh, h])?,
            v: checked(shared, wv, 3, qkv_out, qkv_in, [kvh, h])?,
            q_norm: head_norm(shared, qk_norm, nq)?,
            k_norm: head_norm(shared, qk_norm, nk)?,
            // [heads, head_dim, hidden] in every family
            o: checked(shared, wo, 3, &[2], &[0, 1], [h, qh])?,
            post_attention_norm: optional_norm(
                shared,
                arch.post_attention_norm,
                f.post_attention_norm,
            )?,
            pre_ffw_norm: norm(shared, f.pre_ffw_norm)?,
            // Dense kernels: [in, out]
            gate: checked(shared, wg, 2, &[1], &[0], [ff, h])?,
            up: checked(shared, wu, 2, &[1], &[0], [ff, h])?,
            down: checked(shared, wd, 2, &[1], &[0], [h, ff])?,
            post_ffw_norm: optional_norm(shared, arch.post_ffw_norm, f.post_ffw_norm)?,
        });
    }
    if let Some(adapter) = adapter {
        adapter.all_used()?;
    }
    Ok(Model {
        arch,
        table,
        table_scales,
        head,
        final_norm,
        layers,
    })
}

/// A stored weight whose shape is not the one the config implies.
fn mismatch(weights: &Weights, w: &Stored, expect: [usize; 2]) -> LlmError {
    LlmError::Weights {
        path: weights.path().to_path_buf(),
        message: format!(
            "`{}` is {:?} as a matrix, the config implies {expect:?}",
            w.name, w.shape
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way `rows` walks a source (rows of contiguous inputs, inputs gathered along a
    /// row, an `[in, out]` source transposed by tiles, any other order) reads the element
    /// that plain row-major indexing names, for blocks that start anywhere.
    #[test]
    fn every_walk_of_a_source_reads_the_elements_indexing_names() {
        let dir = tempfile::tempdir().unwrap();
        // Element i holds i (float32) or i mod 256 (bfloat16, exact): a misread shows.
        let float32: Vec<u8> = (0..6 * 7 * 40)
            .flat_map(|i| (i as f32).to_le_bytes())
            .collect();
        let bfloat16: Vec<u8> = (0..50 * 70)
            .flat_map(|i| (((i % 256) as f32).to_bits() >> 16).to_le_bytes()[..2].to_vec())
            .collect();
        let weights = Weights::for_test(
            &dir.path().join("w.h5"),
            &[
                ("a", &[6, 7, 40], "float32", float32),
                ("b", &[50, 70], "bfloat16", bfloat16),
            ],
        );
        let cases: [(&str, usize, &[usize], &[usize]); 7] = [
            ("a", 3, &[0], &[1, 2]), // contiguous rows
            ("a", 3, &[1], &[0, 2]), // gathered along a row
            ("a", 3, &[1, 2], &[0]), // [in, out]: tiles
            ("a", 3, &[2], &[0, 1]), // [in, out] with 42 inputs: a partial tile
            ("a", 3, &[0, 2], &[1]), // neither
            ("b", 2, &[0], &[1]),
            ("b", 2, &[1], &[0]),
        ];
        for (source, rank, out, inp) in cases {
            let m = Matrix::new(source.into(), rank, out, inp);
            let view = weights.get(source, rank).unwrap();
            let ((rows, cols), o, i) = m.layout(view.shape);
            let offset = |mut idx: usize, dims: &[(usize, usize)]| {
                let mut off = 0;
                for &(d, s) in dims.iter().rev() {
                    off += (idx % d) * s;
                    idx /= d;
                }
                off
            };
            for (r0, n) in [(0, rows), (1, rows - 1), (rows / 2, 1)] {
                let mut buf = Vec::new();
                assert_eq!(m.rows(&weights, r0, n, &mut buf).unwrap(), cols);
                for k in 0..n {
                    for c in 0..cols {
                        let want = view.at(offset(r0 + k, &o) + offset(c, &i));
                        assert_eq!(
                            buf[k * cols + c],
                            want,
                            "{source} out {out:?} in {inp:?}: row {} input {c}",
                            r0 + k
                        );
                    }
                }
            }
        }
    }
}
