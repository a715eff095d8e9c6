//! The native `.tflite` writer against the real LiteRT runtime: models written by
//! `litert::tflite::write` (weights after the FlatBuffer, some streamed) run through
//! `litert run` (LiteRT's C API) and through the official Python interpreter of the
//! cross-check's venv (TFLite's `InterpreterBuilder`), and their outputs match values
//! computed here; `litert inspect --json` describes them (an insta snapshot). Both runtimes
//! accepting these files is the evidence that the offset-buffer layout is right.

use litert::runtime::tensor::{Dtype, Tensor, npz_bytes, read_npz};
use litert::tflite::{
    BufferDef, ModelDef, OperatorDef, Options, QuantDef, SignatureDef, SubgraphDef, TensorDef,
    builtin_op, tensor_type, write_path,
};

use crate::support::TestContext;

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn i32_bytes(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn tensor(name: &str, shape: &[i32], dtype: i8, buffer: u32) -> TensorDef {
    TensorDef {
        name: name.to_string(),
        shape: shape.to_vec(),
        dtype,
        buffer,
        ..Default::default()
    }
}

fn op(opcode_index: u32, inputs: &[i32], outputs: &[i32], options: Options) -> OperatorDef {
    OperatorDef {
        opcode_index,
        inputs: inputs.to_vec(),
        outputs: outputs.to_vec(),
        options,
    }
}

fn names(list: &[(&str, u32)]) -> Vec<(String, u32)> {
    list.iter().map(|(n, i)| (n.to_string(), *i)).collect()
}

/// Weights in 1/256ths and inputs in 0..=255: every product and sum below is exact in
/// float32, so the runtime's fully connected layers must give exactly these values.
const W: [[f32; 4]; 3] = [
    [1.0, -2.0, 3.0, 1.0],
    [-4.0, 1.0, 0.0, 2.0],
    [0.0, 2.0, -1.0, -3.0],
];
const B: [f32; 3] = [0.5, -0.25, 0.125];
const C: [f32; 3] = [0.0, 1.0, -1.0];
/// int8 weights, per output channel scales.
const W8: [[i8; 4]; 2] = [[1, -2, 3, -4], [5, 6, -7, 8]];
const W8_SCALES: [f32; 2] = [0.5, 0.25];
/// The input: 0 and 255 present, so dynamic asymmetric int8 quantization of it (scale 1,
/// zero point -128) is exact.
const X: [f32; 4] = [0.0, 51.0, 102.0, 255.0];

fn w_bytes() -> Vec<u8> {
    let flat: Vec<f32> = W.iter().flatten().map(|w| w / 256.0).collect();
    f32_bytes(&flat)
}

/// `classify` (subgraph 0): x → FULLY_CONNECTED(w, b) → ADD(c) → SOFTMAX → probs, and
/// x → FULLY_CONNECTED(int8 per-channel w8, asymmetric inputs, no bias) → z.
/// `project` (subgraph 1): x → FULLY_CONNECTED(the same w and b, fused RELU) → y.
/// `w` and `w8` are streamed; `b` and `c` are bytes.
fn classifier() -> ModelDef {
    let mut w8 = tensor("w8", &[2, 4], tensor_type::INT8, 4);
    w8.quantization = Some(QuantDef {
        scale: W8_SCALES.to_vec(),
        zero_point: vec![0, 0],
        quantized_dimension: 0,
        blockwise: None,
    });
    let fc = |fused, asymmetric| Options::FullyConnected {
        fused,
        keep_num_dims: false,
        asymmetric_quantize_inputs: asymmetric,
    };
    let classify = SubgraphDef {
        name: "classify".into(),
        tensors: vec![
            tensor("x", &[1, 4], tensor_type::FLOAT32, 0),
            tensor("w", &[3, 4], tensor_type::FLOAT32, 1),
            tensor("b", &[3], tensor_type::FLOAT32, 2),
            tensor("h", &[1, 3], tensor_type::FLOAT32, 0),
            tensor("c", &[3], tensor_type::FLOAT32, 3),
            tensor("logits", &[1, 3], tensor_type::FLOAT32, 0),
            tensor("probs", &[1, 3], tensor_type::FLOAT32, 0),
            w8,
            tensor("z", &[1, 2], tensor_type::FLOAT32, 0),
        ],
        inputs: vec![0],
        outputs: vec![6, 8],
        operators: vec![
            op(0, &[0, 1, 2], &[3], fc(0, false)),
            op(1, &[3, 4], &[5], Options::Add { fused: 0 }),
            op(2, &[5], &[6], Options::Softmax { beta: 1.0 }),
            op(0, &[0, 7, -1], &[8], fc(0, true)),
        ],
    };
    let project = SubgraphDef {
        name: "project".into(),
        tensors: vec![
            tensor("x", &[1, 4], tensor_type::FLOAT32, 0),
            tensor("w", &[3, 4], tensor_type::FLOAT32, 1),
            tensor("b", &[3], tensor_type::FLOAT32, 2),
            tensor("y", &[1, 3], tensor_type::FLOAT32, 0),
        ],
        inputs: vec![0],
        outputs: vec![3],
        operators: vec![op(0, &[0, 1, 2], &[3], fc(1, false))],
    };
    let w = w_bytes();
    let w8_bytes: Vec<u8> = W8.iter().flatten().map(|&v| v as u8).collect();
    ModelDef {
        description: "litert native writer test".into(),
        buffers: vec![
            BufferDef::Empty,
            // Streamed in two pieces, as a weight read slice by slice would be.
            BufferDef::streamed(w.len() as u64, move |out| {
                let (a, b) = w.split_at(20);
                out.write_all(a)?;
                out.write_all(b)
            }),
            BufferDef::Bytes(f32_bytes(&B)),
            BufferDef::Bytes(f32_bytes(&C)),
            BufferDef::streamed(8, move |out| out.write_all(&w8_bytes)),
        ],
        subgraphs: vec![classify, project],
        signatures: vec![
            SignatureDef {
                key: "classify".into(),
                subgraph_index: 0,
                inputs: names(&[("x", 0)]),
                outputs: names(&[("probs", 6), ("z", 8)]),
            },
            SignatureDef {
                key: "project".into(),
                subgraph_index: 1,
                inputs: names(&[("x", 0)]),
                outputs: names(&[("y", 3)]),
            },
        ],
        operator_codes: vec![
            builtin_op::FULLY_CONNECTED,
            builtin_op::ADD,
            builtin_op::SOFTMAX,
        ],
        metadata: vec![],
    }
}

/// W·x/256 + b, in f64.
fn dense() -> Vec<f64> {
    W.iter()
        .zip(B)
        .map(|(row, b)| {
            row.iter()
                .zip(X)
                .map(|(w, x)| f64::from(*w) / 256.0 * f64::from(x))
                .sum::<f64>()
                + f64::from(b)
        })
        .collect()
}

fn f32_tensor(shape: &[usize], values: &[f32]) -> Tensor {
    Tensor {
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        bytes: f32_bytes(values),
    }
}

fn i32_tensor(shape: &[usize], values: &[i32]) -> Tensor {
    Tensor {
        dtype: Dtype::I32,
        shape: shape.to_vec(),
        bytes: i32_bytes(values),
    }
}

/// `litert run MODEL --signature KEY` on `inputs`: the outputs by name, and the JSON report.
fn run(
    ctx: &TestContext,
    model: &str,
    key: &str,
    inputs: &[(&str, Tensor)],
) -> (Vec<(String, Tensor)>, serde_json::Value) {
    let feeds: Vec<(String, Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    let input = format!("{key}.in.npz");
    let output = format!("{key}.out.npz");
    std::fs::write(ctx.join(&input), npz_bytes(&feeds).unwrap()).unwrap();
    let out = ctx.litert(&[
        "run",
        model,
        "--signature",
        key,
        "--input",
        &input,
        "--output",
        &output,
        "--json",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let report = serde_json::from_str(&out.stdout).unwrap();
    let outputs = read_npz(std::fs::File::open(ctx.join(&output)).unwrap()).unwrap();
    (outputs, report)
}

fn output<'a>(outputs: &'a [(String, Tensor)], name: &str) -> &'a Tensor {
    &outputs
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no output `{name}`"))
        .1
}

fn assert_close(got: &Tensor, want: &[f64], what: &str) {
    let got = got.to_f64();
    assert_eq!(got.len(), want.len(), "{what}: {got:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-6, "{what}: got {got:?}, want {want:?}");
    }
}

fn written(ctx: &TestContext, name: &str, model: ModelDef) {
    let path = ctx.join(name);
    let w = write_path(model, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(w.bytes, bytes.len() as u64);
}

/// The official Python interpreter (`ai_edge_litert.interpreter`, TFLite's
/// `InterpreterBuilder` behind it) on the same inputs: the outputs by name.
fn official(
    ctx: &TestContext,
    model: &str,
    key: &str,
    inputs: &[(&str, Tensor)],
) -> Vec<(String, Tensor)> {
    const SCRIPT: &str = "import sys, numpy as np\n\
from ai_edge_litert.interpreter import Interpreter\n\
model, key, inp, out = sys.argv[1:]\n\
runner = Interpreter(model_path=model, num_threads=1).get_signature_runner(key)\n\
np.savez(out, **runner(**dict(np.load(inp))))\n";
    let feeds: Vec<(String, Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    let (input, output) = (
        ctx.join(format!("{key}.py.in.npz")),
        ctx.join(format!("{key}.py.out.npz")),
    );
    std::fs::write(&input, npz_bytes(&feeds).unwrap()).unwrap();
    let out = std::process::Command::new(crate::support::python::python())
        .arg("-c")
        .arg(SCRIPT)
        .arg(ctx.join(model))
        .arg(key)
        .arg(&input)
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the official interpreter failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    read_npz(std::fs::File::open(&output).unwrap()).unwrap()
}

/// Whether the official interpreter's venv is skipped (as the cross-check is).
fn skip_official() -> bool {
    std::env::var_os("LITERT_SKIP_CROSSCHECK").is_some()
}

#[test]
fn litert_runs_a_written_model_with_weights_after_the_flatbuffer() {
    let ctx = TestContext::new();
    written(&ctx, "clf.tflite", classifier());

    let x = f32_tensor(&[1, 4], &X);
    let (outputs, report) = run(&ctx, "clf.tflite", "classify", &[("x", x.clone())]);
    assert_eq!(report["signature"], "classify");
    let mut official_outputs = Vec::new();
    if !skip_official() {
        official_outputs = official(&ctx, "clf.tflite", "classify", &[("x", x.clone())]);
    }
    let logits: Vec<f64> = dense()
        .iter()
        .zip(C)
        .map(|(h, c)| h + f64::from(c))
        .collect();
    let max = logits.iter().copied().fold(f64::MIN, f64::max);
    let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    let probs: Vec<f64> = exp.iter().map(|e| e / sum).collect();
    assert_close(output(&outputs, "probs"), &probs, "probs");
    if !official_outputs.is_empty() {
        assert_close(
            output(&official_outputs, "probs"),
            &probs,
            "probs (official interpreter)",
        );
    }
    let z: Vec<f64> = W8
        .iter()
        .zip(W8_SCALES)
        .map(|(row, s)| {
            row.iter()
                .zip(X)
                .map(|(w, x)| f64::from(*w) * f64::from(x))
                .sum::<f64>()
                * f64::from(s)
        })
        .collect();
    assert_eq!(z, [-408.0, 408.0]);
    assert_close(output(&outputs, "z"), &z, "z (int8 per-channel weights)");
    if !official_outputs.is_empty() {
        assert_close(
            output(&official_outputs, "z"),
            &z,
            "z (official interpreter)",
        );
    }

    // The second signature runs another subgraph over the same weight buffer.
    let (outputs, _) = run(&ctx, "clf.tflite", "project", &[("x", x.clone())]);
    let y: Vec<f64> = dense().iter().map(|v| v.max(0.0)).collect();
    assert!(y.contains(&0.0) && y.iter().any(|v| *v > 0.0), "{y:?}");
    assert_close(output(&outputs, "y"), &y, "y (fused RELU)");
    if !skip_official() {
        let outputs = official(&ctx, "clf.tflite", "project", &[("x", x)]);
        assert_close(output(&outputs, "y"), &y, "y (official interpreter)");
    }
}

#[test]
fn inspect_describes_a_written_model() {
    let ctx = TestContext::new();
    written(&ctx, "clf.tflite", classifier());
    let out = ctx.litert(&["inspect", "--json", "--weights", "clf.tflite"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn the_same_definition_writes_the_same_file() {
    let ctx = TestContext::new();
    written(&ctx, "a.tflite", classifier());
    written(&ctx, "b.tflite", classifier());
    assert_eq!(
        std::fs::read(ctx.join("a.tflite")).unwrap(),
        std::fs::read(ctx.join("b.tflite")).unwrap()
    );
}

/// The ops a decoder's KV cache and embedding need: DYNAMIC_UPDATE_SLICE writes one row of
/// a cache at a position given at run time, GATHER looks up embedding rows, RESHAPE and
/// BATCH_MATMUL (adj_y) score them against the updated cache.
#[test]
fn litert_runs_cache_update_gather_and_batch_matmul() {
    const TABLE: [[f32; 2]; 5] = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0], [-1.0, 3.0]];
    let table: Vec<f32> = TABLE.iter().flatten().copied().collect();
    let model = ModelDef {
        description: String::new(),
        buffers: vec![
            BufferDef::Empty,
            BufferDef::Bytes(f32_bytes(&table)),
            BufferDef::Bytes(i32_bytes(&[1, 2, 2])),
        ],
        subgraphs: vec![SubgraphDef {
            name: "decode".into(),
            tensors: vec![
                tensor("cache", &[1, 4, 2], tensor_type::FLOAT32, 0),
                tensor("update", &[1, 1, 2], tensor_type::FLOAT32, 0),
                tensor("start", &[3], tensor_type::INT32, 0),
                tensor("ids", &[2], tensor_type::INT32, 0),
                tensor("table", &[5, 2], tensor_type::FLOAT32, 1),
                tensor("new_cache", &[1, 4, 2], tensor_type::FLOAT32, 0),
                tensor("rows", &[2, 2], tensor_type::FLOAT32, 0),
                tensor("shape", &[3], tensor_type::INT32, 2),
                tensor("queries", &[1, 2, 2], tensor_type::FLOAT32, 0),
                tensor("scores", &[1, 2, 4], tensor_type::FLOAT32, 0),
            ],
            inputs: vec![0, 1, 2, 3],
            outputs: vec![5, 9],
            operators: vec![
                op(0, &[0, 1, 2], &[5], Options::DynamicUpdateSlice),
                op(
                    1,
                    &[4, 3],
                    &[6],
                    Options::Gather {
                        axis: 0,
                        batch_dims: 0,
                    },
                ),
                op(
                    2,
                    &[6, 7],
                    &[8],
                    Options::Reshape {
                        new_shape: vec![1, 2, 2],
                    },
                ),
                op(
                    3,
                    &[8, 5],
                    &[9],
                    Options::BatchMatMul {
                        adj_x: false,
                        adj_y: true,
                        asymmetric_quantize_inputs: false,
                    },
                ),
            ],
        }],
        signatures: vec![SignatureDef {
            key: "decode".into(),
            subgraph_index: 0,
            inputs: names(&[("cache", 0), ("update", 1), ("start", 2), ("ids", 3)]),
            outputs: names(&[("new_cache", 5), ("scores", 9)]),
        }],
        operator_codes: vec![
            builtin_op::DYNAMIC_UPDATE_SLICE,
            builtin_op::GATHER,
            builtin_op::RESHAPE,
            builtin_op::BATCH_MATMUL,
        ],
        metadata: vec![("note".into(), b"kv".to_vec())],
    };
    let ctx = TestContext::new();
    written(&ctx, "decode.tflite", model);

    let cache: Vec<f32> = (0..8).map(|i| i as f32).collect();
    let (pos, ids) = (2usize, [4i32, 1]);
    let inputs = [
        ("cache", f32_tensor(&[1, 4, 2], &cache)),
        ("update", f32_tensor(&[1, 1, 2], &[10.0, 20.0])),
        ("start", i32_tensor(&[3], &[0, pos as i32, 0])),
        ("ids", i32_tensor(&[2], &ids)),
    ];
    let (outputs, _) = run(&ctx, "decode.tflite", "decode", &inputs);
    let mut new_cache: Vec<f64> = cache.iter().map(|&v| f64::from(v)).collect();
    new_cache[pos * 2] = 10.0;
    new_cache[pos * 2 + 1] = 20.0;
    assert_close(output(&outputs, "new_cache"), &new_cache, "new_cache");
    let mut scores = Vec::new();
    for id in ids {
        let q = TABLE[id as usize];
        for row in new_cache.chunks(2) {
            scores.push(f64::from(q[0]) * row[0] + f64::from(q[1]) * row[1]);
        }
    }
    assert_close(output(&outputs, "scores"), &scores, "scores");
    if !skip_official() {
        let outputs = official(&ctx, "decode.tflite", "decode", &inputs);
        assert_close(
            output(&outputs, "new_cache"),
            &new_cache,
            "new_cache (official)",
        );
        assert_close(output(&outputs, "scores"), &scores, "scores (official)");
    }
}

/// Past 2 GiB, where only offset buffers can reach: a 2 GiB + 64 MiB buffer that no tensor
/// uses (streamed as zeros), then the constant an ADD reads, which lands past byte 2^31.
/// Both runtimes must find it there. Ignored by default because it writes a 2.2 GB file:
/// `cargo test --test it tflite_write -- --ignored`.
#[test]
#[ignore = "writes a 2.2 GB file"]
fn litert_reads_a_buffer_past_two_gib() {
    const BIG: u64 = (1 << 31) + (64 << 20);
    const C4: [f32; 4] = [0.5, -1.0, 2.0, 0.25];
    let model = ModelDef {
        description: String::new(),
        buffers: vec![
            BufferDef::Empty,
            BufferDef::streamed(BIG, |out| {
                let chunk = vec![0u8; 1 << 20];
                for _ in 0..(BIG >> 20) {
                    out.write_all(&chunk)?;
                }
                Ok(())
            }),
            BufferDef::Bytes(f32_bytes(&C4)),
        ],
        subgraphs: vec![SubgraphDef {
            name: "main".into(),
            tensors: vec![
                tensor("x", &[1, 4], tensor_type::FLOAT32, 0),
                tensor("c", &[4], tensor_type::FLOAT32, 2),
                tensor("y", &[1, 4], tensor_type::FLOAT32, 0),
            ],
            inputs: vec![0],
            outputs: vec![2],
            operators: vec![op(0, &[0, 1], &[2], Options::Add { fused: 0 })],
        }],
        signatures: vec![SignatureDef {
            key: "add".into(),
            subgraph_index: 0,
            inputs: names(&[("x", 0)]),
            outputs: names(&[("y", 2)]),
        }],
        operator_codes: vec![builtin_op::ADD],
        metadata: vec![],
    };
    let ctx = TestContext::new();
    written(&ctx, "big.tflite", model);
    // The FlatBuffer is the file's first few hundred bytes.
    let mut head = Vec::new();
    let file = std::fs::File::open(ctx.join("big.tflite")).unwrap();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, 1 << 16), &mut head).unwrap();
    let fb_model = litert::tflite::fb::root_as_model(&head).unwrap();
    let c = fb_model.buffers().unwrap().get(2);
    assert!(c.offset() > 1 << 31, "buffer 2 is at {}", c.offset());

    let x = f32_tensor(&[1, 4], &X);
    let want: Vec<f64> = X
        .iter()
        .zip(C4)
        .map(|(x, c)| f64::from(*x) + f64::from(c))
        .collect();
    let (outputs, _) = run(&ctx, "big.tflite", "add", &[("x", x.clone())]);
    assert_close(output(&outputs, "y"), &want, "y");
    if !skip_official() {
        let outputs = official(&ctx, "big.tflite", "add", &[("x", x)]);
        assert_close(output(&outputs, "y"), &want, "y (official interpreter)");
    }
}
