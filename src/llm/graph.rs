//! Building one subgraph of a `.tflite` model op by op, with the shape of every tensor known
//! when it is made (every shape in a prefill/decode graph is static), over a model-wide set
//! of buffers and operator codes that all subgraphs share.

use std::collections::HashMap;

use crate::tflite::{
    BlockwiseDef, BufferDef, OperatorDef, Options, QuantDef, SubgraphDef, TensorDef,
};
use crate::tflite::{builtin_op as op, tensor_type as tt};

/// What the subgraphs of one model share: buffers (weights are stored once) and op codes.
#[derive(Default)]
pub struct Shared {
    pub buffers: Vec<BufferDef>,
    pub opcodes: Vec<i32>,
    opcode_index: HashMap<i32, u32>,
    /// Small constants by content, so every subgraph's `[0, 0]` is one buffer.
    constants: HashMap<Vec<u8>, u32>,
}

impl Shared {
    pub fn new() -> Self {
        Self {
            // Buffer 0 is the empty buffer every activation tensor points at.
            buffers: vec![BufferDef::Empty],
            ..Self::default()
        }
    }

    /// A new buffer; its index.
    pub fn buffer(&mut self, def: BufferDef) -> u32 {
        self.buffers.push(def);
        (self.buffers.len() - 1) as u32
    }

    fn constant(&mut self, bytes: Vec<u8>) -> u32 {
        if let Some(&b) = self.constants.get(&bytes) {
            return b;
        }
        let b = self.buffer(BufferDef::Bytes(bytes.clone()));
        self.constants.insert(bytes, b);
        b
    }

    fn opcode(&mut self, code: i32) -> u32 {
        *self.opcode_index.entry(code).or_insert_with(|| {
            self.opcodes.push(code);
            (self.opcodes.len() - 1) as u32
        })
    }
}

/// A stored weight: its buffer, shape, type and quantization, as every subgraph refers to it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub name: String,
    pub buffer: u32,
    pub shape: Vec<i32>,
    pub dtype: i8,
    /// Per-channel scales (int8, int4 per channel).
    pub quantization: Option<QuantDef>,
    /// Blockwise scales (int4 with a block size).
    pub blocks: Option<Blocks>,
}

/// The scales of a blockwise-quantized weight: a float16 `[out, in / size]` weight of its
/// own, which each subgraph's tensor of the weight names by index.
#[derive(Debug, Clone)]
pub struct Blocks {
    pub scales: Box<Stored>,
    pub size: usize,
}

/// A tensor of the subgraph being built.
pub type T = i32;

/// One subgraph under construction.
pub struct Graph<'s> {
    pub shared: &'s mut Shared,
    name: String,
    tensors: Vec<TensorDef>,
    operators: Vec<OperatorDef>,
    inputs: Vec<T>,
    /// Each stored weight's tensor in this subgraph, made on first use.
    weights: HashMap<u32, T>,
    /// Each float16 weight's float32 tensor (one DEQUANTIZE per weight and subgraph).
    dequantized: HashMap<u32, T>,
    counter: usize,
}

impl<'s> Graph<'s> {
    pub fn new(shared: &'s mut Shared, name: &str) -> Self {
        Self {
            shared,
            name: name.to_string(),
            tensors: Vec::new(),
            operators: Vec::new(),
            inputs: Vec::new(),
            weights: HashMap::new(),
            dequantized: HashMap::new(),
            counter: 0,
        }
    }

    pub fn shape(&self, t: T) -> &[i32] {
        &self.tensors[t as usize].shape
    }

    fn add(&mut self, name: String, shape: &[i32], dtype: i8, buffer: u32) -> T {
        self.tensors.push(TensorDef {
            name,
            shape: shape.to_vec(),
            shape_signature: None,
            dtype,
            buffer,
            quantization: None,
        });
        (self.tensors.len() - 1) as T
    }

    /// A graph input.
    pub fn input(&mut self, name: &str, shape: &[i32], dtype: i8) -> T {
        let t = self.add(name.to_string(), shape, dtype, 0);
        self.inputs.push(t);
        t
    }

    /// An activation named after what makes it (names need only be unique per subgraph).
    fn activation(&mut self, what: &str, shape: &[i32], dtype: i8) -> T {
        self.counter += 1;
        let name = format!("{}/{what}_{}", self.name, self.counter);
        self.add(name, shape, dtype, 0)
    }

    /// This subgraph's tensor for a stored weight.
    pub fn weight(&mut self, w: &Stored) -> T {
        if let Some(&t) = self.weights.get(&w.buffer) {
            return t;
        }
        let quantization = match &w.blocks {
            Some(blocks) => Some(QuantDef {
                blockwise: Some(BlockwiseDef {
                    scales: self.weight(&blocks.scales),
                    block_size: blocks.size as i32,
                }),
                ..QuantDef::default()
            }),
            None => w.quantization.clone(),
        };
        let t = self.add(w.name.clone(), &w.shape, w.dtype, w.buffer);
        self.tensors[t as usize].quantization = quantization;
        self.weights.insert(w.buffer, t);
        t
    }

    /// A weight as the ops read it: float16 dequantized to float32 (once per subgraph),
    /// float32, int8 and int4 as stored.
    pub fn matrix(&mut self, w: &Stored) -> T {
        let t = self.weight(w);
        if w.dtype != tt::FLOAT16 {
            return t;
        }
        if let Some(&d) = self.dequantized.get(&w.buffer) {
            return d;
        }
        let d = self.dequantize(t);
        self.dequantized.insert(w.buffer, d);
        d
    }

    pub fn const_i32(&mut self, values: &[i32], shape: &[i32]) -> T {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let b = self.shared.constant(bytes);
        self.counter += 1;
        let name = format!("{}/const_{}", self.name, self.counter);
        self.add(name, shape, tt::INT32, b)
    }

    pub fn const_f32(&mut self, values: &[f32], shape: &[i32]) -> T {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let b = self.shared.constant(bytes);
        self.counter += 1;
        let name = format!("{}/const_{}", self.name, self.counter);
        self.add(name, shape, tt::FLOAT32, b)
    }

    pub fn scalar(&mut self, value: f32) -> T {
        self.const_f32(&[value], &[])
    }

    fn emit(&mut self, code: i32, inputs: &[T], outputs: &[T], options: Options) {
        let opcode_index = self.shared.opcode(code);
        self.operators.push(OperatorDef {
            opcode_index,
            inputs: inputs.to_vec(),
            outputs: outputs.to_vec(),
            options,
        });
    }

    /// An op with one float32 output of `shape`.
    fn op(&mut self, code: i32, what: &str, inputs: &[T], shape: &[i32], options: Options) -> T {
        let out = self.activation(what, shape, tt::FLOAT32);
        self.emit(code, inputs, &[out], options);
        out
    }

    fn broadcast(&self, a: T, b: T) -> Vec<i32> {
        broadcast(self.shape(a), self.shape(b))
    }

    pub fn add_(&mut self, a: T, b: T) -> T {
        let s = self.broadcast(a, b);
        self.op(op::ADD, "add", &[a, b], &s, Options::Add { fused: 0 })
    }

    pub fn sub(&mut self, a: T, b: T) -> T {
        let s = self.broadcast(a, b);
        self.op(op::SUB, "sub", &[a, b], &s, Options::Sub { fused: 0 })
    }

    /// `a >= b`, broadcast: a bool tensor.
    pub fn greater_equal(&mut self, a: T, b: T) -> T {
        let s = self.broadcast(a, b);
        let out = self.activation("greater_equal", &s, tt::BOOL);
        self.emit(op::GREATER_EQUAL, &[a, b], &[out], Options::GreaterEqual);
        out
    }

    pub fn mul(&mut self, a: T, b: T) -> T {
        let s = self.broadcast(a, b);
        self.op(op::MUL, "mul", &[a, b], &s, Options::Mul { fused: 0 })
    }

    pub fn div(&mut self, a: T, b: T) -> T {
        let s = self.broadcast(a, b);
        self.op(op::DIV, "div", &[a, b], &s, Options::Div { fused: 0 })
    }

    pub fn neg(&mut self, x: T) -> T {
        let s = self.shape(x).to_vec();
        self.op(op::NEG, "neg", &[x], &s, Options::Neg)
    }

    pub fn unary(&mut self, code: i32, what: &str, x: T, options: Options) -> T {
        let s = self.shape(x).to_vec();
        self.op(code, what, &[x], &s, options)
    }

    /// The mean over the last axis, keeping it.
    pub fn mean_last(&mut self, x: T) -> T {
        let mut s = self.shape(x).to_vec();
        let axis = s.len() as i32 - 1;
        if let Some(last) = s.last_mut() {
            *last = 1;
        }
        let a = self.const_i32(&[axis], &[1]);
        self.op(
            op::MEAN,
            "mean",
            &[x, a],
            &s,
            Options::Reducer { keep_dims: true },
        )
    }

    pub fn reshape(&mut self, x: T, shape: &[i32]) -> T {
        let dtype = self.tensors[x as usize].dtype;
        let s = self.const_i32(shape, &[shape.len() as i32]);
        let out = self.activation("reshape", shape, dtype);
        let options = Options::Reshape {
            new_shape: shape.to_vec(),
        };
        self.emit(op::RESHAPE, &[x, s], &[out], options);
        out
    }

    pub fn transpose(&mut self, x: T, perm: &[i32]) -> T {
        let dtype = self.tensors[x as usize].dtype;
        let from = self.shape(x).to_vec();
        let shape: Vec<i32> = perm.iter().map(|&p| from[p as usize]).collect();
        let p = self.const_i32(perm, &[perm.len() as i32]);
        let out = self.activation("transpose", &shape, dtype);
        self.emit(op::TRANSPOSE, &[x, p], &[out], Options::Transpose);
        out
    }

    /// `x [.., in] · w [out, in]ᵀ` (the weight as stored: float32, or int8 / int4 with the
    /// input quantized on the fly, as dynamic-range models run).
    pub fn fully_connected(&mut self, x: T, w: T) -> T {
        let mut s = self.shape(x).to_vec();
        let out_dim = self.shape(w)[0];
        if let Some(last) = s.last_mut() {
            *last = out_dim;
        }
        let quantized = matches!(self.tensors[w as usize].dtype, tt::INT8 | tt::INT4);
        let options = Options::FullyConnected {
            fused: 0,
            keep_num_dims: true,
            asymmetric_quantize_inputs: quantized,
        };
        self.op(op::FULLY_CONNECTED, "fc", &[x, w, -1], &s, options)
    }

    pub fn batch_matmul(&mut self, a: T, b: T, adj_y: bool) -> T {
        let (x, y) = (self.shape(a).to_vec(), self.shape(b).to_vec());
        let n = x.len();
        let mut s = x.clone();
        s[n - 1] = if adj_y { y[n - 2] } else { y[n - 1] };
        let options = Options::BatchMatMul {
            adj_x: false,
            adj_y,
            asymmetric_quantize_inputs: false,
        };
        self.op(op::BATCH_MATMUL, "matmul", &[a, b], &s, options)
    }

    pub fn softmax(&mut self, x: T) -> T {
        self.unary(op::SOFTMAX, "softmax", x, Options::Softmax { beta: 1.0 })
    }

    pub fn concat(&mut self, parts: &[T], axis: i32) -> T {
        let dtype = self.tensors[parts[0] as usize].dtype;
        let mut s = self.shape(parts[0]).to_vec();
        let a = if axis < 0 {
            s.len() as i32 + axis
        } else {
            axis
        } as usize;
        s[a] = parts.iter().map(|&p| self.shape(p)[a]).sum();
        let out = self.activation("concat", &s, dtype);
        self.emit(
            op::CONCATENATION,
            parts,
            &[out],
            Options::Concatenation {
                axis: a as i32,
                fused: 0,
            },
        );
        out
    }

    /// `x[begin .. begin + size]` along every axis.
    pub fn slice(&mut self, x: T, begin: &[i32], size: &[i32]) -> T {
        let dtype = self.tensors[x as usize].dtype;
        let n = begin.len() as i32;
        let b = self.const_i32(begin, &[n]);
        let z = self.const_i32(size, &[n]);
        let out = self.activation("slice", size, dtype);
        self.emit(op::SLICE, &[x, b, z], &[out], Options::Slice);
        out
    }

    pub fn cast(&mut self, x: T, dtype: i8) -> T {
        let s = self.shape(x).to_vec();
        let out = self.activation("cast", &s, dtype);
        self.emit(op::CAST, &[x], &[out], Options::Cast);
        out
    }

    /// Rows of `table` [V, H] at `ids` → [.., H], in the table's type.
    pub fn gather(&mut self, table: T, ids: T) -> T {
        let dtype = self.tensors[table as usize].dtype;
        let mut s = self.shape(ids).to_vec();
        s.extend_from_slice(&self.shape(table)[1..]);
        let out = self.activation("gather", &s, dtype);
        let options = Options::Gather {
            axis: 0,
            batch_dims: 0,
        };
        self.emit(op::GATHER, &[table, ids], &[out], options);
        out
    }

    pub fn dequantize(&mut self, x: T) -> T {
        let s = self.shape(x).to_vec();
        self.op(op::DEQUANTIZE, "dequantize", &[x], &s, Options::Dequantize)
    }

    /// `cache` with `update` written at `indices` (int32 [rank]).
    pub fn dynamic_update_slice(&mut self, cache: T, update: T, indices: T, name: &str) -> T {
        let s = self.shape(cache).to_vec();
        let out = self.add(name.to_string(), &s, tt::FLOAT32, 0);
        self.emit(
            op::DYNAMIC_UPDATE_SLICE,
            &[cache, update, indices],
            &[out],
            Options::DynamicUpdateSlice,
        );
        out
    }

    /// `cond ? a : b`, broadcast.
    pub fn select(&mut self, cond: T, a: T, b: T) -> T {
        let s = broadcast(self.shape(cond), &broadcast(self.shape(a), self.shape(b)));
        self.op(
            op::SELECT_V2,
            "select",
            &[cond, a, b],
            &s,
            Options::SelectV2,
        )
    }

    /// Rename tensor `t` (a signature output takes the name the runtime looks for).
    pub fn rename(&mut self, t: T, name: &str) {
        self.tensors[t as usize].name = name.to_string();
    }

    /// The finished subgraph with these outputs.
    pub fn finish(self, outputs: &[T]) -> SubgraphDef {
        SubgraphDef {
            name: self.name,
            tensors: self.tensors,
            inputs: self.inputs,
            outputs: outputs.to_vec(),
            operators: self.operators,
        }
    }
}

/// The shape two shapes broadcast to (numpy's rule).
fn broadcast(x: &[i32], y: &[i32]) -> Vec<i32> {
    let n = x.len().max(y.len());
    (0..n)
        .map(|i| {
            let dx = (i + x.len()).checked_sub(n).map_or(1, |j| x[j]);
            let dy = (i + y.len()).checked_sub(n).map_or(1, |j| y[j]);
            dx.max(dy)
        })
        .collect()
}
