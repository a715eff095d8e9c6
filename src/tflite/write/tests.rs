//! The writer checked through the project's own reader: what goes in comes back out.

use super::*;
use crate::tflite::{ReadOptions, builtin_op, fb, read_bytes, tensor_type};

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn t(name: &str, shape: &[i32], dtype: i8, buffer: u32) -> TensorDef {
    TensorDef {
        name: name.to_string(),
        shape: shape.to_vec(),
        dtype,
        buffer,
        ..Default::default()
    }
}

/// Two subgraphs sharing one weight buffer, a streamed int8 per-channel weight, op codes on
/// both sides of 127, metadata.
fn sample() -> ModelDef {
    let weight: Vec<f32> = (0..12).map(|i| i as f32 * 0.25).collect();
    let int8: Vec<u8> = (0..8u8).map(|i| i.wrapping_mul(37)).collect();
    let streamed = int8.clone();
    let mut w8 = t("w8", &[2, 4], tensor_type::INT8, 3);
    w8.quantization = Some(QuantDef {
        scale: vec![0.5, 0.25],
        zero_point: vec![0, 0],
        quantized_dimension: 0,
        blockwise: None,
    });
    let mut x = t("x", &[1, 4], tensor_type::FLOAT32, 0);
    x.shape_signature = Some(vec![-1, 4]);
    let main = SubgraphDef {
        name: "main".into(),
        tensors: vec![
            x,
            t("w", &[3, 4], tensor_type::FLOAT32, 1),
            t("b", &[3], tensor_type::FLOAT32, 2),
            t("h", &[1, 3], tensor_type::FLOAT32, 0),
            w8,
            t("z", &[1, 2], tensor_type::FLOAT32, 0),
            t("g", &[1, 3], tensor_type::FLOAT32, 0),
        ],
        inputs: vec![0],
        outputs: vec![6, 5],
        operators: vec![
            OperatorDef {
                opcode_index: 0,
                inputs: vec![0, 1, 2],
                outputs: vec![3],
                options: Options::FullyConnected {
                    fused: 0,
                    keep_num_dims: false,
                    asymmetric_quantize_inputs: false,
                },
            },
            OperatorDef {
                opcode_index: 0,
                inputs: vec![0, 4, -1],
                outputs: vec![5],
                options: Options::FullyConnected {
                    fused: 0,
                    keep_num_dims: false,
                    asymmetric_quantize_inputs: true,
                },
            },
            OperatorDef {
                opcode_index: 1,
                inputs: vec![3],
                outputs: vec![6],
                options: Options::Gelu { approximate: true },
            },
        ],
    };
    let second = SubgraphDef {
        name: "second".into(),
        tensors: vec![
            t("x2", &[1, 4], tensor_type::FLOAT32, 0),
            t("w", &[3, 4], tensor_type::FLOAT32, 1),
            t("y2", &[1, 3], tensor_type::FLOAT32, 0),
        ],
        inputs: vec![0],
        outputs: vec![2],
        operators: vec![OperatorDef {
            opcode_index: 0,
            inputs: vec![0, 1, -1],
            outputs: vec![2],
            options: Options::FullyConnected {
                fused: 1,
                keep_num_dims: true,
                asymmetric_quantize_inputs: false,
            },
        }],
    };
    ModelDef {
        description: "written by litert".into(),
        buffers: vec![
            BufferDef::Empty,
            BufferDef::Bytes(f32_bytes(&weight)),
            BufferDef::Bytes(f32_bytes(&[1.0, 0.0, -1.0])),
            BufferDef::streamed(8, move |w| w.write_all(&streamed)),
        ],
        subgraphs: vec![main, second],
        signatures: vec![
            SignatureDef {
                key: "classify".into(),
                subgraph_index: 0,
                inputs: vec![("features".into(), 0)],
                outputs: vec![("probs".into(), 6), ("z".into(), 5)],
            },
            SignatureDef {
                key: "project".into(),
                subgraph_index: 1,
                inputs: vec![("features".into(), 0)],
                outputs: vec![("out".into(), 2)],
            },
        ],
        operator_codes: vec![builtin_op::FULLY_CONNECTED, builtin_op::GELU],
        metadata: vec![("note".into(), b"hello".to_vec())],
    }
}

fn written(model: ModelDef) -> (Vec<u8>, Written) {
    let mut out = Vec::new();
    let w = write(model, &mut out).unwrap();
    (out, w)
}

#[test]
fn the_reader_reads_back_what_was_written() {
    let (bytes, w) = written(sample());
    assert_eq!(w.bytes, bytes.len() as u64);
    let info = read_bytes(
        &bytes,
        "m.tflite",
        ReadOptions {
            tensors: true,
            weights_check: true,
        },
    )
    .unwrap();
    assert_eq!(info.schema_version, 3);
    assert_eq!(info.description.as_deref(), Some("written by litert"));
    let keys: Vec<_> = info.signatures.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["classify", "project"]);
    let classify = &info.signatures[0];
    assert_eq!(classify.subgraph_index, 0);
    assert_eq!(classify.inputs[0].name, "features");
    assert_eq!(classify.inputs[0].tensor.name, "x");
    assert_eq!(classify.inputs[0].tensor.shape, [1, 4]);
    assert_eq!(classify.inputs[0].tensor.shape_signature, [-1, 4]);
    assert_eq!(classify.inputs[0].tensor.dtype, "float32");
    let outs: Vec<_> = classify
        .outputs
        .iter()
        .map(|o| (o.name.as_str(), o.tensor.name.as_str()))
        .collect();
    assert_eq!(outs, [("probs", "g"), ("z", "z")]);
    assert_eq!(info.signatures[1].subgraph_index, 1);
    assert_eq!(info.signatures[1].outputs[0].tensor.shape, [1, 3]);

    let tensors = info.subgraphs[0].tensors.as_ref().unwrap();
    let w8 = &tensors[4];
    assert_eq!((w8.name.as_str(), w8.dtype.as_str()), ("w8", "int8"));
    let q = w8.quantization.as_ref().unwrap();
    assert_eq!(q.scale, [0.5, 0.25]);
    assert_eq!(q.zero_point, [0, 0]);
    assert_eq!(q.quantized_dimension, 0);
    assert_eq!(tensors[1].data_bytes, 48);
    assert_eq!(w8.data_bytes, 8);

    assert_eq!(info.ops.get("FULLY_CONNECTED"), Some(&3));
    assert_eq!(info.ops.get("GELU"), Some(&1));
    let codes: Vec<_> = info
        .operator_codes
        .iter()
        .map(|c| (c.name.as_str(), c.builtin_code))
        .collect();
    assert_eq!(codes, [("FULLY_CONNECTED", 9), ("GELU", 150)]);

    // The shared weight counts once; its bytes live outside the FlatBuffer.
    assert_eq!(info.weights.total_bytes, 48 + 12 + 8);
    assert_eq!(info.layout.buffers_outside_flatbuffer, 3);
    assert_eq!(info.layout.bytes_outside_flatbuffer, 68);
    assert!(info.layout.buffer_location_metadata);
    assert_eq!(info.layout.appended_bytes, 0);
    let meta: Vec<_> = info
        .metadata
        .iter()
        .map(|m| (m.name.as_str(), m.size_bytes))
        .collect();
    assert_eq!(meta, [("note", 5), ("buffer_location", 19)]);
    let check = info.weights_check.unwrap();
    assert_eq!((check.tensors_checked, check.elements), (3, 12 + 3 + 8));
    assert_eq!(check.zero_elements, 1 + 1 + 1);
    // The one warning is about the dynamic batch dimension the sample asks for.
    assert_eq!(info.warnings.len(), 1, "{:?}", info.warnings);
    assert!(
        info.warnings[0]
            .starts_with("signature `classify` has inputs with dynamic dimensions (features)"),
        "{:?}",
        info.warnings
    );
}

#[test]
fn buffers_sit_after_the_flatbuffer_aligned_and_intact() {
    let (bytes, _) = written(sample());
    let model = fb::root_as_model(&bytes).unwrap();
    let buffers = model.buffers().unwrap();
    let want: [&[u8]; 4] = [
        &[],
        &f32_bytes(&(0..12).map(|i| i as f32 * 0.25).collect::<Vec<_>>()),
        &f32_bytes(&[1.0, 0.0, -1.0]),
        &(0..8u8).map(|i| i.wrapping_mul(37)).collect::<Vec<_>>(),
    ];
    let mut previous_end = 0;
    for (i, want) in want.iter().enumerate() {
        let b = buffers.get(i);
        assert!(b.data().is_none(), "buffer {i} has inline data");
        if want.is_empty() {
            assert_eq!((b.offset(), b.size()), (0, 0));
            continue;
        }
        let (start, len) = (b.offset() as usize, b.size() as usize);
        assert_eq!(start % 64, 0, "buffer {i} starts at {start}");
        assert!(start >= previous_end);
        assert_eq!(&bytes[start..start + len], *want, "buffer {i}");
        if previous_end > 0 {
            assert!(
                bytes[previous_end..start].iter().all(|&b| b == 0),
                "padding"
            );
        }
        previous_end = start + len;
    }
    assert_eq!(
        previous_end,
        bytes.len(),
        "the file ends with the last buffer"
    );
    // Metadata values are inline, where LiteRT reads them.
    let meta = model.metadata().unwrap();
    let location = meta.get(1);
    assert_eq!(location.name(), Some("buffer_location"));
    let value = buffers.get(location.buffer() as usize).data().unwrap();
    assert_eq!(value.bytes(), b"outside flatbuffers");
}

#[test]
fn operator_codes_and_options_are_in_the_public_format() {
    let (bytes, _) = written(sample());
    let model = fb::root_as_model(&bytes).unwrap();
    let codes = model.operator_codes().unwrap();
    assert_eq!(codes.get(0).deprecated_builtin_code(), 9);
    assert_eq!(codes.get(0).builtin_code(), 9);
    assert_eq!(codes.get(1).deprecated_builtin_code(), 127);
    assert_eq!(codes.get(1).builtin_code(), 150);
    let sg = model.subgraphs().unwrap().get(0);
    let ops = sg.operators().unwrap();
    let fc = ops.get(1);
    assert_eq!(fc.inputs().unwrap().iter().collect::<Vec<_>>(), [0, 4, -1]);
    assert_eq!(fc.builtin_options_type().0, 8);
    let fc = fc.builtin_options_as_fully_connected_options().unwrap();
    assert!(fc.asymmetric_quantize_inputs());
    assert!(!fc.keep_num_dims());
    let gelu = ops.get(2);
    assert_eq!(gelu.builtin_options_type().0, 116);
    assert!(
        gelu.builtin_options_as_gelu_options()
            .unwrap()
            .approximate()
    );
    let second = model
        .subgraphs()
        .unwrap()
        .get(1)
        .operators()
        .unwrap()
        .get(0);
    let fc = second.builtin_options_as_fully_connected_options().unwrap();
    assert_eq!(fc.fused_activation_function(), 1);
    assert!(fc.keep_num_dims());
    assert_eq!(model.signature_defs().unwrap().get(1).subgraph_index(), 1);
}

/// Every options variant, its union value in the public format, and that the file verifies.
#[test]
fn every_options_variant_writes_its_table() {
    let cases: Vec<(Options, u8)> = vec![
        (Options::None, 0),
        (Options::Add { fused: 1 }, 11),
        (Options::Sub { fused: 0 }, 28),
        (Options::Mul { fused: 0 }, 21),
        (Options::Div { fused: 0 }, 29),
        (
            Options::FullyConnected {
                fused: 0,
                keep_num_dims: true,
                asymmetric_quantize_inputs: true,
            },
            8,
        ),
        (
            Options::BatchMatMul {
                adj_x: false,
                adj_y: true,
                asymmetric_quantize_inputs: false,
            },
            101,
        ),
        (
            Options::Reshape {
                new_shape: vec![2, -1],
            },
            17,
        ),
        (Options::Softmax { beta: 1.0 }, 9),
        (Options::Concatenation { axis: -1, fused: 0 }, 10),
        (
            Options::Gather {
                axis: 0,
                batch_dims: 0,
            },
            23,
        ),
        (Options::Transpose, 26),
        (Options::Reducer { keep_dims: true }, 27),
        (
            Options::StridedSlice {
                begin_mask: 1,
                end_mask: 2,
                shrink_axis_mask: 4,
                ellipsis_mask: 0,
                new_axis_mask: 0,
                offset: true,
            },
            32,
        ),
        (Options::Slice, 48),
        (Options::Cast, 37),
        (Options::Gelu { approximate: false }, 116),
        (Options::DynamicUpdateSlice, 117),
        (
            Options::Pack {
                values_count: 2,
                axis: 0,
            },
            59,
        ),
        (Options::SelectV2, 98),
        (Options::Neg, 42),
        (Options::Squeeze { dims: vec![0] }, 30),
        (Options::Exp, 33),
        (Options::Split { num_splits: 2 }, 35),
        (Options::LogSoftmax, 36),
        (Options::Dequantize, 38),
        (Options::Quantize, 89),
        (Options::MaximumMinimum, 39),
        (
            Options::ArgMax {
                output_type: tensor_type::INT32,
            },
            40,
        ),
        (Options::Less, 41),
        (Options::Greater, 44),
        (Options::GreaterEqual, 45),
        (Options::LessEqual, 46),
        (Options::Equal, 53),
        (Options::Tile, 51),
        (Options::ExpandDims, 52),
        (Options::Pow, 56),
        (Options::SquaredDifference, 76),
        (Options::Cos, 84),
        (Options::Sin, 0),
        (Options::Tanh, 0),
        (Options::Logistic, 0),
        (Options::Rsqrt, 0),
        (Options::Sqrt, 0),
        (
            Options::Cumsum {
                exclusive: false,
                reverse: true,
            },
            102,
        ),
        (Options::BroadcastTo, 104),
        (Options::Range, 73),
        (Options::Fill, 68),
        (
            Options::Shape {
                out_type: tensor_type::INT64,
            },
            55,
        ),
    ];
    let tensors = vec![
        t("a", &[2, 2], tensor_type::FLOAT32, 0),
        t("b", &[2, 2], tensor_type::INT32, 0),
    ];
    let operators = cases
        .iter()
        .map(|(options, _)| OperatorDef {
            opcode_index: 0,
            inputs: vec![0],
            outputs: vec![1],
            options: options.clone(),
        })
        .collect();
    let model = ModelDef {
        buffers: vec![BufferDef::Empty],
        subgraphs: vec![SubgraphDef {
            tensors,
            inputs: vec![0],
            outputs: vec![1],
            operators,
            ..Default::default()
        }],
        operator_codes: vec![builtin_op::ADD],
        ..Default::default()
    };
    let (bytes, _) = written(model);
    let model = fb::root_as_model(&bytes).unwrap();
    let ops = model.subgraphs().unwrap().get(0).operators().unwrap();
    for (i, (options, want)) in cases.iter().enumerate() {
        let op = ops.get(i);
        assert_eq!(op.builtin_options_type().0, *want, "{options:?}");
        assert_eq!(op.builtin_options().is_some(), *want != 0, "{options:?}");
    }
    let cast = ops.get(15).builtin_options_as_cast_options().unwrap();
    assert_eq!(
        (cast.in_data_type(), cast.out_data_type()),
        (tensor_type::FLOAT32, tensor_type::INT32)
    );
    let reshape = ops.get(7).builtin_options_as_reshape_options().unwrap();
    assert_eq!(
        reshape.new_shape().unwrap().iter().collect::<Vec<_>>(),
        [2, -1]
    );
    // No buffer outside, so no `buffer_location` entry.
    assert!(model.metadata().is_none());
    let info = read_bytes(&bytes, "m", ReadOptions::default()).unwrap();
    assert_eq!(info.ops.get("ADD"), Some(&(cases.len() as u64)));
}

#[test]
fn the_same_model_gives_the_same_bytes() {
    let (a, wa) = written(sample());
    let (b, wb) = written(sample());
    assert_eq!(a, b);
    assert_eq!(wa, wb);
}

#[test]
fn a_fill_must_write_exactly_its_length() {
    let with = |buffer: BufferDef| {
        let mut model = sample();
        model.buffers[3] = buffer;
        write(model, &mut Vec::new()).unwrap_err().to_string()
    };
    assert_eq!(
        with(BufferDef::streamed(8, |w| w.write_all(&[1; 5]))),
        "buffer 3 was declared as 8 bytes, but its fill wrote 5"
    );
    assert_eq!(
        with(BufferDef::streamed(8, |w| w.write_all(&[1; 9]))),
        "buffer 3 was declared as 8 bytes, but its fill wrote more"
    );
    assert_eq!(
        with(BufferDef::streamed(8, |w| {
            w.write_all(&[1; 4])?;
            w.write_all(&[1; 4])?;
            w.write_all(&[1])
        })),
        "buffer 3 was declared as 8 bytes, but its fill wrote more"
    );
    assert_eq!(
        with(BufferDef::streamed(8, |_| Err(std::io::Error::other(
            "disk gone"
        )))),
        "filling buffer 3 failed"
    );
    // Written in pieces is fine.
    let mut model = sample();
    model.buffers[3] = BufferDef::streamed(8, |w| {
        for piece in [[0u8, 37], [74, 111], [148, 185], [222, 3]] {
            w.write_all(&piece)?;
        }
        Ok(())
    });
    let mut pieces = Vec::new();
    write(model, &mut pieces).unwrap();
    assert_eq!(pieces, written(sample()).0);
}

#[test]
fn inconsistent_models_are_refused_before_anything_is_written() {
    let refused = |change: &dyn Fn(&mut ModelDef)| {
        let mut model = sample();
        change(&mut model);
        let mut out = Vec::new();
        let err = write(model, &mut out).unwrap_err().to_string();
        assert!(out.is_empty(), "{err}");
        err
    };
    assert_eq!(
        refused(&|m| m.buffers[0] = BufferDef::Bytes(vec![1])),
        "the model is invalid: buffer 0 must be empty: it is the sentinel of tensors without data"
    );
    assert_eq!(
        refused(&|m| m.subgraphs[0].tensors[1].buffer = 9),
        "the model is invalid: tensor 1 (`w`) of subgraph 0 uses buffer 9, but the model has 4"
    );
    assert_eq!(
        refused(&|m| m.subgraphs[0].operators[0].inputs[0] = 7),
        "the model is invalid: operator 0's input of subgraph 0 names tensor 7, but the subgraph has 7"
    );
    assert_eq!(
        refused(&|m| m.subgraphs[1].operators[0].opcode_index = 2),
        "the model is invalid: operator 0 of subgraph 1 uses operator code 2, but the model has 2"
    );
    assert_eq!(
        refused(&|m| m.signatures[1].subgraph_index = 2),
        "the model is invalid: signature `project` runs subgraph 2, but the model has 2"
    );
    assert_eq!(
        refused(&|m| m.signatures[1].outputs[0].1 = 3),
        "the model is invalid: `out` of signature `project` is tensor 3, but subgraph 1 has 3"
    );
    assert_eq!(
        refused(&|m| m.signatures[1].key = "classify".into()),
        "the model is invalid: two signatures are named `classify`"
    );
    assert_eq!(
        refused(&|m| {
            if let Some(q) = &mut m.subgraphs[0].tensors[4].quantization {
                q.quantized_dimension = 1;
            }
        }),
        "the model is invalid: tensor 4 (`w8`) of subgraph 0: 2 per-channel scales along dimension 1 do not fit shape [2, 4]"
    );
    assert_eq!(
        refused(&|m| m.subgraphs[1].tensors[1].shape = vec![4, 4]),
        "the model is invalid: tensor 1 (`w`) of subgraph 1 is float32 [4, 4], 64 bytes, but buffer 1 holds 48"
    );
    assert_eq!(
        refused(&|m| m.subgraphs[0].tensors[4].dtype = tensor_type::INT16),
        "the model is invalid: tensor 4 (`w8`) of subgraph 0 is int16 [2, 4], 16 bytes, but buffer 3 holds 8"
    );
    assert_eq!(
        refused(&|m| m.operator_codes[1] = builtin_op::CUSTOM),
        "the model is invalid: operator code 1 is 32, which is not a builtin operator (custom operators are not written)"
    );
    assert_eq!(
        refused(&|m| m.metadata.push(("buffer_location".into(), vec![]))),
        "the model is invalid: the metadata name `buffer_location` is the writer's own"
    );
}

#[test]
fn the_size_estimate_bounds_the_flatbuffer() {
    let model = sample();
    let estimate = estimate_size(&model);
    let spans: Vec<_> = model
        .buffers
        .iter()
        .map(|b| (!b.is_empty()).then_some((u64::MAX, b.len())))
        .collect();
    let flatbuffer = build(&model, &spans, estimate);
    assert!(
        (flatbuffer.len() as u64) < estimate,
        "{} bytes, estimated {estimate}",
        flatbuffer.len()
    );
}
