//! The prefill/decode graph of a decoder-only LM over its stored weights
//! ([`super::layout`]): one subgraph per signature sharing the weights, with the
//! ops the worker's converter path spells out in `generation/graph.py` (same contract, same
//! arithmetic order).

use std::sync::Arc;

use super::graph::{Graph, Shared, Stored, T};
use super::layout::{Model, load};
use super::lora::Adapter;
use super::preset::{Activation, Architecture, Rope};
use super::weights::Weights;
use super::{LlmError, MaskDtype, Spec};
use crate::tflite::{Options, SignatureDef, SubgraphDef};
use crate::tflite::{builtin_op as op, tensor_type as tt};

/// LiteRT-LM fills masked entries with about -0.7 × FLT_MAX (0 = attend).
const MASKED: f32 = -0.7 * f32::MAX;

/// Everything one subgraph computes once and the layers read.
struct Common {
    index: T,
    /// Each layer's (cos, sin, attention bias); layers with the same RoPE or window share
    /// the tensors.
    layers: Vec<(T, T, T)>,
}

impl Model {
    /// RMS norm over the last axis.
    fn norm(&self, g: &mut Graph<'_>, x: T, scale: &Stored, eps: f32) -> T {
        let sq = g.mul(x, x);
        let var = g.mean_last(sq);
        let eps = g.scalar(eps);
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
        // A quantized table's rows come out as integers (int8, or int4 that CAST widens),
        // scaled by their row's scale, or block by block by their float16 block scales.
        let x = match (&self.table_scales, &self.table.blocks) {
            (Some(scales), _) => {
                let rows = g.cast(rows, tt::FLOAT32);
                let s = g.weight(scales);
                let s = g.gather(s, tokens);
                let shape = g.shape(s).to_vec();
                let s = g.reshape(s, &[shape[0], shape[1], 1]);
                g.mul(rows, s)
            }
            (None, Some(blocks)) => {
                let rows = g.cast(rows, tt::FLOAT32);
                let shape = g.shape(rows).to_vec();
                let size = blocks.size as i32;
                let rows = g.reshape(rows, &[shape[0], shape[1], shape[2] / size, size]);
                let s = g.weight(&blocks.scales);
                let s = g.gather(s, tokens);
                let s = g.dequantize(s);
                let s = g.reshape(s, &[shape[0], shape[1], shape[2] / size, 1]);
                let x = g.mul(rows, s);
                g.reshape(x, &shape)
            }
            (None, None) => rows,
        };
        if self.arch.scale_embeddings {
            let s = g.scalar((self.arch.hidden as f32).sqrt());
            g.mul(x, s)
        } else {
            x
        }
    }

    fn rope(&self, g: &mut Graph<'_>, x: T, cos: T, sin: T) -> T {
        let s = g.shape(x).to_vec();
        let half = s[3] / 2;
        let x1 = g.slice(x, &[0, 0, 0, 0], &[s[0], s[1], s[2], half]);
        let x2 = g.slice(x, &[0, 0, 0, half], &[s[0], s[1], s[2], half]);
        let n2 = g.neg(x2);
        let rot = g.concat(&[n2, x1], -1);
        let a = g.mul(x, cos);
        let b = g.mul(rot, sin);
        g.add_(a, b)
    }

    /// cos and sin of every position's angles for one RoPE, `[1, t, 1, head_dim]`.
    fn angles(&self, g: &mut Graph<'_>, positions: T, rope: &Rope, t: i32) -> (T, T) {
        let d = self.arch.head_dim;
        let inv = rope.inverse_frequencies(d);
        let p = g.cast(positions, tt::FLOAT32);
        let p = g.reshape(p, &[t, 1]);
        let inv = g.const_f32(&inv, &[1, (d / 2) as i32]);
        let freq = g.mul(p, inv);
        let emb = g.concat(&[freq, freq], -1);
        let cos = g.unary(op::COS, "cos", emb, Options::Cos);
        let sin = g.unary(op::SIN, "sin", emb, Options::Sin);
        let cos = g.reshape(cos, &[1, t, 1, d as i32]);
        let sin = g.reshape(sin, &[1, t, 1, d as i32]);
        (cos, sin)
    }

    /// `bias` with the slots more than `window - 1` positions before each query masked
    /// (KerasHub's band: a query attends to itself and the `window - 1` before it). The
    /// cache slot of a position is the position, so the band comes from `input_pos`.
    fn band(&self, g: &mut Graph<'_>, positions: T, bias: T, window: usize, t: i32, c: i32) -> T {
        let p = g.cast(positions, tt::FLOAT32);
        let p = g.reshape(p, &[t, 1]);
        let slots: Vec<f32> = (0..c).map(|s| s as f32).collect();
        let slots = g.const_f32(&slots, &[1, c]);
        let distance = g.sub(p, slots);
        let w = g.scalar(window as f32);
        let outside = g.greater_equal(distance, w);
        let masked = g.scalar(MASKED);
        g.select(outside, masked, bias)
    }

    fn common(
        &self,
        g: &mut Graph<'_>,
        positions: T,
        mask: T,
        mask_dtype: MaskDtype,
        t: i32,
        c: i32,
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
        let mut angles: Vec<(Rope, (T, T))> = Vec::new();
        let mut biases: Vec<(usize, T)> = Vec::new();
        let mut layers = Vec::with_capacity(self.arch.layers);
        for i in 0..self.arch.layers {
            let rope = *self.arch.rope_of(i);
            let (cos, sin) = match angles.iter().find(|(r, _)| *r == rope) {
                Some(&(_, a)) => a,
                None => {
                    let a = self.angles(g, positions, &rope, t);
                    angles.push((rope, a));
                    a
                }
            };
            // A window as wide as the cache masks nothing.
            let layer_bias = match self.arch.window(i).filter(|&w| w < c as usize) {
                None => bias,
                Some(w) => match biases.iter().find(|(v, _)| *v == w) {
                    Some(&(_, b)) => b,
                    None => {
                        let b = self.band(g, positions, bias, w, t, c);
                        biases.push((w, b));
                        b
                    }
                },
            };
            layers.push((cos, sin, layer_bias));
        }
        let zeros = g.const_i32(&[0, 0], &[2]);
        let start = g.slice(positions, &[0], &[1]);
        let zero = g.const_i32(&[0], &[1]);
        let index = g.concat(&[zeros, start, zero], 0);
        Common { index, layers }
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
        let common = self.common(&mut g, positions, mask, spec.mask_dtype, t, c);
        let mut x = self.embed(&mut g, tokens);
        let mut outputs = Vec::new();
        let mut sig_outputs = Vec::new();
        let eps = a.norm_eps;
        for (i, layer) in self.layers.iter().enumerate() {
            let (cos, sin, bias) = common.layers[i];
            let hn = self.norm(&mut g, x, &layer.pre_attention_norm, eps);
            let wq = g.matrix(&layer.q);
            let wk = g.matrix(&layer.k);
            let wv = g.matrix(&layer.v);
            let q = g.fully_connected(hn, wq);
            let q = g.reshape(q, &[1, t, a.q_heads as i32, d]);
            let k = g.fully_connected(hn, wk);
            let k = g.reshape(k, &[1, t, kv, d]);
            let v = g.fully_connected(hn, wv);
            let v = g.reshape(v, &[1, t, kv, d]);
            let (q, k) = match (&layer.q_norm, &layer.k_norm, a.qk_norm_eps) {
                (Some(nq), Some(nk), Some(qk_eps)) => (
                    self.norm(&mut g, q, nq, qk_eps),
                    self.norm(&mut g, k, nk, qk_eps),
                ),
                _ => (q, k),
            };
            let q = self.rope(&mut g, q, cos, sin);
            let k = self.rope(&mut g, k, cos, sin);
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
            let scale = g.scalar(a.query_scale());
            let q = g.mul(q, scale);
            let qh = g.reshape(q, &[t, kv, groups, d]);
            let qh = g.transpose(qh, &[1, 2, 0, 3]);
            let qh = g.reshape(qh, &[kv, groups * t, d]);
            let keys = g.reshape(k_all, &[kv, c, d]);
            let s = g.batch_matmul(qh, keys, true);
            let s = self.soft_cap(&mut g, s, a.attention_soft_cap);
            let s = g.reshape(s, &[kv, groups, t, c]);
            let s = g.add_(s, bias);
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
                attn = self.norm(&mut g, attn, n, eps);
            }
            x = g.add_(x, attn);
            let hn = self.norm(&mut g, x, &layer.pre_ffw_norm, eps);
            let wg = g.matrix(&layer.gate);
            let wu = g.matrix(&layer.up);
            let wd = g.matrix(&layer.down);
            let gate = g.fully_connected(hn, wg);
            let gate = match a.activation {
                Activation::Gelu => {
                    g.unary(op::GELU, "gelu", gate, Options::Gelu { approximate: true })
                }
                Activation::Silu => {
                    let sig = g.unary(op::LOGISTIC, "sigmoid", gate, Options::Logistic);
                    g.mul(gate, sig)
                }
            };
            let up = g.fully_connected(hn, wu);
            let f = g.mul(gate, up);
            let mut f = g.fully_connected(f, wd);
            if let Some(n) = &layer.post_ffw_norm {
                f = self.norm(&mut g, f, n, eps);
            }
            x = g.add_(x, f);
        }
        if logits {
            let xn = self.norm(&mut g, x, &self.final_norm, eps);
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
    adapter: Option<&Adapter>,
    arch: Architecture,
) -> Result<crate::tflite::ModelDef, LlmError> {
    let mut shared = Shared::new();
    let model = load(
        &mut shared,
        &weights,
        adapter,
        arch,
        spec.storage,
        spec.table_storage,
    )?;
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
        metadata: spec.metadata.clone(),
    })
}
