//! The prefill/decode model of a decoder-only LM, built from its [`Architecture`] and its
//! weights: which stored tensor each weight comes from (per family), how it is laid out for
//! the ops that read it, and one subgraph per signature over the shared weights, with the
//! ops the worker's converter path spells out in `generation/graph.py` (same contract, same
//! arithmetic order).

use std::sync::Arc;

use super::graph::{Graph, Shared, Stored, T};
use super::preset::{Architecture, Family};
use super::quant::{Storage, f16_bits, int8_row, int8_scale};
use super::weights::Weights;
use super::{LlmError, MaskDtype, Spec};
use crate::tflite::{BufferDef, Options, QuantDef, SignatureDef, SubgraphDef};
use crate::tflite::{builtin_op as op, tensor_type as tt};

/// LiteRT-LM fills masked entries with about -0.7 × FLT_MAX (0 = attend).
const MASKED: f32 = -0.7 * f32::MAX;

/// The dynamic-range rule of the TensorFlow converter, kept so both writers store the same
/// tensors as int8: weights under 1,024 elements stay float32.
const MIN_QUANTIZED_ELEMENTS: usize = 1024;

/// The float32 values read and converted together: a block of output rows of about this
/// many bytes bounds the memory of a streamed weight, and is wide enough that the pages a
/// block reads from a column-major source serve it whole.
const BLOCK_BYTES: usize = 16 << 20;

fn block_rows(cols: usize) -> usize {
    (BLOCK_BYTES / (4 * cols.max(1))).max(1)
}

/// (dimension, stride) of each source axis that makes up a matrix axis.
type Axes = Vec<(usize, usize)>;

/// A weight as an `[out, in]` matrix over a stored tensor: the tensor's axes that make the
/// output rows and those that make the inputs, each in row-major order.
#[derive(Debug, Clone)]
struct Matrix {
    source: String,
    rank: usize,
    out_axes: Vec<usize>,
    in_axes: Vec<usize>,
}

impl Matrix {
    fn new(source: String, rank: usize, out_axes: &[usize], in_axes: &[usize]) -> Self {
        Self {
            source,
            rank,
            out_axes: out_axes.to_vec(),
            in_axes: in_axes.to_vec(),
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
        // Walk the source in its own order: along a row when a row's inputs are adjacent
        // in the file (`[out, in]` layouts), else across the block's rows for each input.
        if i.last().is_some_and(|&(_, stride)| stride == 1) {
            for (k, &ro) in row_offsets.iter().enumerate() {
                view.gather(ro, &col_offsets, &mut buf[k * cols..(k + 1) * cols]);
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
        Ok(cols)
    }

    fn dims(&self, weights: &Weights) -> Result<(usize, usize), LlmError> {
        let view = weights.get(&self.source, self.rank)?;
        Ok(self.layout(view.shape).0)
    }
}

/// Store `m` as one buffer with `storage` (int8 only from 1,024 elements up); the tensor
/// every subgraph refers to.
fn store(
    shared: &mut Shared,
    weights: &Arc<Weights>,
    name: &str,
    m: Matrix,
    storage: Storage,
) -> Result<Stored, LlmError> {
    let (rows, cols) = m.dims(weights)?;
    let storage = match storage {
        Storage::Int8PerChannel if rows * cols < MIN_QUANTIZED_ELEMENTS => Storage::Float32,
        s => s,
    };
    let mut quantization = None;
    let mut scales = Vec::new();
    if storage == Storage::Int8PerChannel {
        // The scales live in the FlatBuffer, which precedes the weights: a first pass.
        let mut buf = Vec::new();
        let step = block_rows(cols);
        for r0 in (0..rows).step_by(step) {
            let n = step.min(rows - r0);
            m.rows(weights, r0, n, &mut buf)?;
            weights.release(&m.source);
            scales.extend(buf.chunks(cols).map(int8_scale));
        }
        quantization = Some(QuantDef {
            scale: scales.clone(),
            zero_point: vec![0; rows],
            quantized_dimension: 0,
        });
    }
    let len = (rows * cols) as u64 * storage.element_bytes();
    let source = Arc::clone(weights);
    let fill = move |w: &mut dyn std::io::Write| -> std::io::Result<()> {
        let mut buf = Vec::new();
        let mut bytes = Vec::new();
        let step = block_rows(cols);
        for r0 in (0..rows).step_by(step) {
            let n = step.min(rows - r0);
            m.rows(&source, r0, n, &mut buf)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            source.release(&m.source);
            bytes.clear();
            for (k, row) in buf.chunks(cols).enumerate() {
                match storage {
                    Storage::Float32 => bytes.extend(row.iter().flat_map(|v| v.to_le_bytes())),
                    Storage::Float16 => {
                        bytes.extend(row.iter().flat_map(|&v| f16_bits(v).to_le_bytes()));
                    }
                    Storage::Int8PerChannel => int8_row(row, scales[r0 + k], &mut bytes),
                }
            }
            w.write_all(&bytes)?;
        }
        Ok(())
    };
    let buffer = shared.buffer(BufferDef::streamed(len, fill));
    let dtype = match storage {
        Storage::Float32 => tt::FLOAT32,
        Storage::Float16 => tt::FLOAT16,
        Storage::Int8PerChannel => tt::INT8,
    };
    Ok(Stored {
        name: name.to_string(),
        buffer,
        shape: vec![rows as i32, cols as i32],
        dtype,
        quantization,
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
    })
}

/// One layer's weights.
struct Layer {
    pre_attention_norm: Stored,
    q: Stored,
    k: Stored,
    v: Stored,
    o: Stored,
    post_attention_norm: Option<Stored>,
    pre_ffw_norm: Stored,
    gate: Stored,
    up: Stored,
    down: Stored,
    post_ffw_norm: Option<Stored>,
}

/// Every weight of the model, stored once.
struct Model {
    arch: Architecture,
    table: Stored,
    /// Per-row scales of an int8 table, for the lookup.
    table_scales: Option<Stored>,
    /// The untied output projection; `None`: the table.
    head: Option<Stored>,
    final_norm: Stored,
    layers: Vec<Layer>,
}

fn block_prefix(arch: &Architecture, i: usize) -> String {
    let class = match arch.family {
        Family::Gemma => "gemma_decoder_block",
        Family::Llama => "llama_transformer_decoder",
    };
    if i == 0 {
        format!("layers/{class}")
    } else {
        format!("layers/{class}_{i}")
    }
}

fn load(
    shared: &mut Shared,
    weights: &Arc<Weights>,
    arch: Architecture,
    storage: Storage,
) -> Result<Model, LlmError> {
    let gemma = arch.family == Family::Gemma;
    let m = |s: String, rank, o: &[usize], i: &[usize]| Matrix::new(s, rank, o, i);
    let table_source = "layers/reversible_embedding/vars/0".to_string();
    let table = store(
        shared,
        weights,
        "token_embedding",
        m(table_source, 2, &[0], &[1]),
        storage,
    )?;
    if table.shape != [arch.vocab as i32, arch.hidden as i32] {
        return Err(LlmError::Weights {
            path: weights.path().to_path_buf(),
            message: format!(
                "the token embedding is {:?}, the config says [{}, {}]",
                table.shape, arch.vocab, arch.hidden
            ),
        });
    }
    let table_scales = table.quantization.as_ref().map(|q| {
        let bytes = q.scale.iter().flat_map(|s| s.to_le_bytes()).collect();
        Stored {
            name: "token_embedding_scales".into(),
            buffer: shared.buffer(BufferDef::Bytes(bytes)),
            shape: vec![q.scale.len() as i32],
            dtype: tt::FLOAT32,
            quantization: None,
        }
    });
    let head_source = "layers/reversible_embedding/vars/1";
    let head = if weights.has(head_source) {
        Some(store(
            shared,
            weights,
            "output_projection",
            m(head_source.into(), 2, &[1], &[0]),
            storage,
        )?)
    } else {
        None
    };
    let final_norm = match arch.family {
        Family::Gemma => vector(
            shared,
            weights,
            "final_norm",
            "layers/rms_normalization/vars/0",
            true,
        )?,
        Family::Llama => vector(
            shared,
            weights,
            "final_norm",
            "layers/llama_layer_norm/vars/0",
            false,
        )?,
    };
    let mut layers = Vec::with_capacity(arch.layers);
    for i in 0..arch.layers {
        let p = block_prefix(&arch, i);
        let name = |what: &str| format!("layer_{i}/{what}");
        let var = |path: &str| format!("{p}/{path}/vars/0");
        let layer = if gemma {
            let opt_norm =
                |shared: &mut Shared, on: bool, what: &str| -> Result<Option<Stored>, LlmError> {
                    on.then(|| vector(shared, weights, &name(what), &var(what), true))
                        .transpose()
                };
            Layer {
                pre_attention_norm: vector(
                    shared,
                    weights,
                    &name("pre_attention_norm"),
                    &var("pre_attention_norm"),
                    true,
                )?,
                q: store(
                    shared,
                    weights,
                    &name("query"),
                    m(var("attention/query_dense"), 3, &[0, 2], &[1]),
                    storage,
                )?,
                k: store(
                    shared,
                    weights,
                    &name("key"),
                    m(var("attention/key_dense"), 3, &[0, 2], &[1]),
                    storage,
                )?,
                v: store(
                    shared,
                    weights,
                    &name("value"),
                    m(var("attention/value_dense"), 3, &[0, 2], &[1]),
                    storage,
                )?,
                o: store(
                    shared,
                    weights,
                    &name("attention_output"),
                    m(var("attention/output_dense"), 3, &[2], &[0, 1]),
                    storage,
                )?,
                post_attention_norm: opt_norm(
                    shared,
                    arch.post_attention_norm,
                    "post_attention_norm",
                )?,
                pre_ffw_norm: vector(
                    shared,
                    weights,
                    &name("pre_ffw_norm"),
                    &var("pre_ffw_norm"),
                    true,
                )?,
                gate: store(
                    shared,
                    weights,
                    &name("ffw_gating"),
                    m(var("gating_ffw"), 2, &[1], &[0]),
                    storage,
                )?,
                up: store(
                    shared,
                    weights,
                    &name("ffw_gating_2"),
                    m(var("gating_ffw_2"), 2, &[1], &[0]),
                    storage,
                )?,
                down: store(
                    shared,
                    weights,
                    &name("ffw_linear"),
                    m(var("ffw_linear"), 2, &[1], &[0]),
                    storage,
                )?,
                post_ffw_norm: opt_norm(shared, arch.post_ffw_norm, "post_ffw_norm")?,
            }
        } else {
            let attn = |what: &str| var(&format!("_self_attention_layer/{what}"));
            Layer {
                pre_attention_norm: vector(
                    shared,
                    weights,
                    &name("self_attention_layernorm"),
                    &var("_self_attention_layernorm"),
                    false,
                )?,
                q: store(
                    shared,
                    weights,
                    &name("query"),
                    m(attn("_query_dense"), 3, &[1, 2], &[0]),
                    storage,
                )?,
                k: store(
                    shared,
                    weights,
                    &name("key"),
                    m(attn("_key_dense"), 3, &[1, 2], &[0]),
                    storage,
                )?,
                v: store(
                    shared,
                    weights,
                    &name("value"),
                    m(attn("_value_dense"), 3, &[1, 2], &[0]),
                    storage,
                )?,
                o: store(
                    shared,
                    weights,
                    &name("attention_output"),
                    m(attn("_output_dense"), 3, &[2], &[0, 1]),
                    storage,
                )?,
                post_attention_norm: None,
                pre_ffw_norm: vector(
                    shared,
                    weights,
                    &name("feedforward_layernorm"),
                    &var("_feedforward_layernorm"),
                    false,
                )?,
                gate: store(
                    shared,
                    weights,
                    &name("feedforward_gate"),
                    m(var("_feedforward_gate_dense"), 2, &[1], &[0]),
                    storage,
                )?,
                up: store(
                    shared,
                    weights,
                    &name("feedforward_intermediate"),
                    m(var("_feedforward_intermediate_dense"), 2, &[1], &[0]),
                    storage,
                )?,
                down: store(
                    shared,
                    weights,
                    &name("feedforward_output"),
                    m(var("_feedforward_output_dense"), 2, &[1], &[0]),
                    storage,
                )?,
                post_ffw_norm: None,
            }
        };
        let (q, kv, h) = (
            (arch.q_heads * arch.head_dim) as i32,
            (arch.kv_heads * arch.head_dim) as i32,
            arch.hidden as i32,
        );
        let f = arch.intermediate as i32;
        let expect = [
            (&layer.q, [q, h]),
            (&layer.k, [kv, h]),
            (&layer.v, [kv, h]),
            (&layer.o, [h, q]),
            (&layer.gate, [f, h]),
            (&layer.up, [f, h]),
            (&layer.down, [h, f]),
        ];
        for (w, shape) in expect {
            if w.shape != shape {
                return Err(LlmError::Weights {
                    path: weights.path().to_path_buf(),
                    message: format!(
                        "`{}` is {:?} as a matrix, the config implies {shape:?}",
                        w.name, w.shape
                    ),
                });
            }
        }
        layers.push(layer);
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

/// Everything one subgraph computes once and every layer reads.
struct Common {
    bias: T,
    cos: T,
    sin: T,
    index: T,
}

impl Model {
    fn norm(&self, g: &mut Graph<'_>, x: T, scale: &Stored) -> T {
        let sq = g.mul(x, x);
        let var = g.mean_last(sq);
        let eps = g.scalar(self.arch.norm_eps);
        let var = g.add_(var, eps);
        let r = g.unary(op::RSQRT, "rsqrt", var, Options::Rsqrt);
        let y = g.mul(x, r);
        let s = g.weight(scale);
        g.mul(y, s)
    }

    fn soft_cap(&self, g: &mut Graph<'_>, x: T, cap: Option<f32>) -> T {
        let Some(cap) = cap else { return x };
        let c = g.scalar(cap);
        let y = g.div(x, c);
        let y = g.unary(op::TANH, "tanh", y, Options::Tanh);
        g.mul(y, c)
    }

    fn embed(&self, g: &mut Graph<'_>, tokens: T) -> T {
        let table = g.matrix(&self.table);
        let rows = g.gather(table, tokens);
        let x = match &self.table_scales {
            Some(scales) => {
                let rows = g.cast(rows, tt::FLOAT32);
                let s = g.weight(scales);
                let s = g.gather(s, tokens);
                let shape = g.shape(s).to_vec();
                let s = g.reshape(s, &[shape[0], shape[1], 1]);
                g.mul(rows, s)
            }
            None => rows,
        };
        if self.arch.family == Family::Gemma {
            let s = g.scalar((self.arch.hidden as f32).sqrt());
            g.mul(x, s)
        } else {
            x
        }
    }

    fn rope(&self, g: &mut Graph<'_>, x: T, c: &Common) -> T {
        let s = g.shape(x).to_vec();
        let half = s[3] / 2;
        let x1 = g.slice(x, &[0, 0, 0, 0], &[s[0], s[1], s[2], half]);
        let x2 = g.slice(x, &[0, 0, 0, half], &[s[0], s[1], s[2], half]);
        let n2 = g.neg(x2);
        let rot = g.concat(&[n2, x1], -1);
        let a = g.mul(x, c.cos);
        let b = g.mul(rot, c.sin);
        g.add_(a, b)
    }

    fn common(
        &self,
        g: &mut Graph<'_>,
        positions: T,
        mask: T,
        mask_dtype: MaskDtype,
        t: i32,
    ) -> Common {
        let bias = match mask_dtype {
            MaskDtype::Float32 => mask,
            MaskDtype::Float16 => g.cast(mask, tt::FLOAT32),
            MaskDtype::Bool => {
                let zero = g.scalar(0.0);
                let masked = g.scalar(MASKED);
                g.select(mask, zero, masked)
            }
        };
        let d = self.arch.head_dim;
        // 1 / wavelength^(2j/d), as KerasHub's RotaryEmbedding computes it in float32.
        let inv: Vec<f32> = (0..d / 2)
            .map(|j| {
                let exponent = (2 * j) as f32 / d as f32;
                1.0 / (f64::from(self.arch.rope_wavelength).powf(f64::from(exponent)) as f32)
            })
            .collect();
        let mut p = g.cast(positions, tt::FLOAT32);
        if self.arch.rope_scaling != 1.0 {
            let s = g.scalar(self.arch.rope_scaling);
            p = g.div(p, s);
        }
        let p = g.reshape(p, &[t, 1]);
        let inv = g.const_f32(&inv, &[1, (d / 2) as i32]);
        let freq = g.mul(p, inv);
        let emb = g.concat(&[freq, freq], -1);
        let cos = g.unary(op::COS, "cos", emb, Options::Cos);
        let sin = g.unary(op::SIN, "sin", emb, Options::Sin);
        let cos = g.reshape(cos, &[1, t, 1, d as i32]);
        let sin = g.reshape(sin, &[1, t, 1, d as i32]);
        let zeros = g.const_i32(&[0, 0], &[2]);
        let start = g.slice(positions, &[0], &[1]);
        let zero = g.const_i32(&[0], &[1]);
        let index = g.concat(&[zeros, start, zero], 0);
        Common {
            bias,
            cos,
            sin,
            index,
        }
    }

    /// One signature's subgraph: `t` tokens; logits only for decode.
    fn signature(
        &self,
        shared: &mut Shared,
        spec: &Spec<'_>,
        key: &str,
        t: usize,
        logits: bool,
    ) -> (SubgraphDef, SignatureDef) {
        let a = &self.arch;
        let names = &spec.names;
        let (t, c) = (t as i32, spec.capacity as i32);
        let (kv, d, h) = (a.kv_heads as i32, a.head_dim as i32, a.hidden as i32);
        let groups = (a.q_heads / a.kv_heads) as i32;
        let mut g = Graph::new(shared, key);
        let tokens = g.input(&names.tokens, &[1, t], tt::INT32);
        let positions = g.input(&names.input_pos, &[t], tt::INT32);
        let mask_type = match spec.mask_dtype {
            MaskDtype::Float32 => tt::FLOAT32,
            MaskDtype::Float16 => tt::FLOAT16,
            MaskDtype::Bool => tt::BOOL,
        };
        let mask = g.input(&names.mask, &[1, 1, t, c], mask_type);
        let mut caches = Vec::new();
        for i in 0..a.layers {
            let k = g.input(
                &names.k_cache.replace("{i}", &i.to_string()),
                &[1, kv, c, d],
                tt::FLOAT32,
            );
            let v = g.input(
                &names.v_cache.replace("{i}", &i.to_string()),
                &[1, kv, c, d],
                tt::FLOAT32,
            );
            caches.push((k, v));
        }
        let mut sig_inputs = vec![
            (names.tokens.clone(), tokens as u32),
            (names.input_pos.clone(), positions as u32),
            (names.mask.clone(), mask as u32),
        ];
        for (i, &(k, v)) in caches.iter().enumerate() {
            sig_inputs.push((names.k_cache.replace("{i}", &i.to_string()), k as u32));
            sig_inputs.push((names.v_cache.replace("{i}", &i.to_string()), v as u32));
        }
        let common = self.common(&mut g, positions, mask, spec.mask_dtype, t);
        let mut x = self.embed(&mut g, tokens);
        let mut outputs = Vec::new();
        let mut sig_outputs = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let hn = self.norm(&mut g, x, &layer.pre_attention_norm);
            let wq = g.matrix(&layer.q);
            let wk = g.matrix(&layer.k);
            let wv = g.matrix(&layer.v);
            let q = g.fully_connected(hn, wq);
            let q = g.reshape(q, &[1, t, a.q_heads as i32, d]);
            let k = g.fully_connected(hn, wk);
            let k = g.reshape(k, &[1, t, kv, d]);
            let v = g.fully_connected(hn, wv);
            let v = g.reshape(v, &[1, t, kv, d]);
            let q = self.rope(&mut g, q, &common);
            let k = self.rope(&mut g, k, &common);
            let kt = g.transpose(k, &[0, 2, 1, 3]);
            let vt = g.transpose(v, &[0, 2, 1, 3]);
            let kname = names.k_cache.replace("{i}", &i.to_string());
            let vname = names.v_cache.replace("{i}", &i.to_string());
            let k_all =
                g.dynamic_update_slice(caches[i].0, kt, common.index, &format!("{key}/{kname}"));
            let v_all =
                g.dynamic_update_slice(caches[i].1, vt, common.index, &format!("{key}/{vname}"));
            outputs.extend([k_all, v_all]);
            sig_outputs.push((kname, k_all as u32));
            sig_outputs.push((vname, v_all as u32));
            if !logits && i + 1 == self.layers.len() {
                // Prefill returns only the caches: the last layer's output feeds nothing.
                break;
            }
            let scale = g.scalar(a.query_scale);
            let q = g.mul(q, scale);
            let qh = g.reshape(q, &[t, kv, groups, d]);
            let qh = g.transpose(qh, &[1, 2, 0, 3]);
            let qh = g.reshape(qh, &[kv, groups * t, d]);
            let keys = g.reshape(k_all, &[kv, c, d]);
            let s = g.batch_matmul(qh, keys, true);
            let s = self.soft_cap(&mut g, s, a.attention_soft_cap);
            let s = g.reshape(s, &[kv, groups, t, c]);
            let s = g.add_(s, common.bias);
            let p = g.softmax(s);
            let p = g.reshape(p, &[kv, groups * t, c]);
            let values = g.reshape(v_all, &[kv, c, d]);
            let o = g.batch_matmul(p, values, false);
            let o = g.reshape(o, &[kv, groups, t, d]);
            let o = g.transpose(o, &[2, 0, 1, 3]);
            let o = g.reshape(o, &[1, t, a.q_heads as i32 * d]);
            let wo = g.matrix(&layer.o);
            let mut attn = g.fully_connected(o, wo);
            if let Some(n) = &layer.post_attention_norm {
                attn = self.norm(&mut g, attn, n);
            }
            x = g.add_(x, attn);
            let hn = self.norm(&mut g, x, &layer.pre_ffw_norm);
            let wg = g.matrix(&layer.gate);
            let wu = g.matrix(&layer.up);
            let wd = g.matrix(&layer.down);
            let gate = g.fully_connected(hn, wg);
            let gate = match a.family {
                Family::Gemma => {
                    g.unary(op::GELU, "gelu", gate, Options::Gelu { approximate: true })
                }
                Family::Llama => {
                    let sig = g.unary(op::LOGISTIC, "sigmoid", gate, Options::Logistic);
                    g.mul(gate, sig)
                }
            };
            let up = g.fully_connected(hn, wu);
            let f = g.mul(gate, up);
            let mut f = g.fully_connected(f, wd);
            if let Some(n) = &layer.post_ffw_norm {
                f = self.norm(&mut g, f, n);
            }
            x = g.add_(x, f);
        }
        if logits {
            let xn = self.norm(&mut g, x, &self.final_norm);
            let w = match &self.head {
                Some(head) => g.matrix(head),
                None => g.matrix(&self.table),
            };
            let l = g.fully_connected(xn, w);
            let l = self.soft_cap(&mut g, l, a.final_soft_cap);
            g.rename(l, &format!("{key}/{}", names.logits));
            outputs.push(l);
            sig_outputs.push((names.logits.clone(), l as u32));
        }
        let _ = h;
        let subgraph = g.finish(&outputs);
        let signature = SignatureDef {
            key: key.to_string(),
            subgraph_index: 0,
            inputs: sig_inputs,
            outputs: sig_outputs,
        };
        (subgraph, signature)
    }
}

/// The whole model: weights stored once, one subgraph per signature.
pub fn build(
    spec: &Spec<'_>,
    weights: Arc<Weights>,
    arch: Architecture,
) -> Result<crate::tflite::ModelDef, LlmError> {
    let mut shared = Shared::new();
    let model = load(&mut shared, &weights, arch, spec.storage)?;
    let mut subgraphs = Vec::new();
    let mut signatures = Vec::new();
    let mut keys: Vec<(String, usize, bool)> = spec
        .prefill
        .iter()
        .map(|&t| (spec.names.prefill.replace("{T}", &t.to_string()), t, false))
        .collect();
    keys.push((spec.names.decode.clone(), 1, true));
    for (key, t, logits) in keys {
        let (sg, mut sig) = model.signature(&mut shared, spec, &key, t, logits);
        sig.subgraph_index = subgraphs.len() as u32;
        subgraphs.push(sg);
        signatures.push(sig);
    }
    Ok(crate::tflite::ModelDef {
        description: format!("litert native writer ({})", model.arch.family.name()),
        buffers: shared.buffers,
        subgraphs,
        signatures,
        operator_codes: shared.opcodes,
        metadata: Vec::new(),
    })
}
