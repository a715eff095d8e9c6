//! The FlatBuffer half of the writer: a [`ModelDef`] becomes the `Model` table (with the
//! operator options union), buffers stored outside named only by offset and size, metadata
//! values inline. Built with the flatc-generated code of `tflite_subset.fbs`.

use flatbuffers::{FlatBufferBuilder, UnionWIPOffset, WIPOffset};

use super::{
    BUFFER_LOCATION, ModelDef, OperatorDef, Options, SCHEMA_VERSION, SignatureDef, SubgraphDef,
    TensorDef,
};
use crate::tflite::fb;

/// A generous upper bound of the FlatBuffer's size (strings, vectors, and a table's worth
/// of room for each table), so the builder is never asked for more than it can address.
pub(super) fn estimate_size(model: &ModelDef) -> u64 {
    const TABLE: u64 = 96;
    let s = |t: &str| t.len() as u64 + 8;
    let v = |n: usize, width: u64| n as u64 * width + 8;
    let mut total = 4096 + s(&model.description);
    total += model.buffers.len() as u64 * (TABLE + 8);
    total += model.operator_codes.len() as u64 * (TABLE + 8);
    for (name, value) in &model.metadata {
        total += 2 * TABLE + s(name) + v(value.len(), 1) + 16;
    }
    for sg in &model.subgraphs {
        total += TABLE + s(&sg.name) + v(sg.inputs.len(), 4) + v(sg.outputs.len(), 4);
        for t in &sg.tensors {
            total += TABLE + 8 + s(&t.name) + v(t.shape.len(), 4);
            total += t.shape_signature.as_ref().map_or(0, |x| v(x.len(), 4));
            total += t.quantization.as_ref().map_or(0, |q| {
                TABLE
                    + v(q.scale.len(), 4)
                    + v(q.zero_point.len(), 8)
                    + q.blockwise.as_ref().map_or(0, |_| TABLE + 12)
            });
        }
        for op in &sg.operators {
            total += 2 * TABLE + 8 + v(op.inputs.len(), 4) + v(op.outputs.len(), 4);
            total += match &op.options {
                Options::Reshape { new_shape } => v(new_shape.len(), 4),
                Options::Squeeze { dims } => v(dims.len(), 4),
                _ => 0,
            };
        }
    }
    for sig in &model.signatures {
        total += TABLE + s(&sig.key);
        for (name, _) in sig.inputs.iter().chain(&sig.outputs) {
            total += TABLE + 8 + s(name);
        }
    }
    total
}

/// The FlatBuffer of `model`, with `spans[i]` the (offset, size) of buffer `i` when it is
/// stored outside.
pub(super) fn build(model: &ModelDef, spans: &[Option<(u64, u64)>], estimate: u64) -> Vec<u8> {
    let capacity = usize::try_from(estimate).unwrap_or(0).min(1 << 30);
    let mut fbb = FlatBufferBuilder::with_capacity(capacity);

    let subgraphs: Vec<_> = model
        .subgraphs
        .iter()
        .map(|sg| subgraph(&mut fbb, sg))
        .collect();
    let subgraphs = fbb.create_vector(&subgraphs);

    let codes: Vec<_> = model
        .operator_codes
        .iter()
        .map(|&code| {
            fb::OperatorCode::create(
                &mut fbb,
                &fb::OperatorCodeArgs {
                    // Since schema 3a the byte holds min(code, 127) and the int the code.
                    deprecated_builtin_code: i8::try_from(code.min(127)).unwrap_or(127),
                    builtin_code: code,
                    version: 1,
                    custom_code: None,
                },
            )
        })
        .collect();
    let codes = fbb.create_vector(&codes);

    // Metadata values follow the model's buffers, inline.
    let mut metadata_values: Vec<(&str, &[u8])> = model
        .metadata
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_slice()))
        .collect();
    if spans.iter().any(Option::is_some) {
        metadata_values.push(BUFFER_LOCATION);
    }
    let mut buffers: Vec<_> = spans
        .iter()
        .map(|span| {
            let (offset, size) = span.unwrap_or((0, 0));
            fb::Buffer::create(
                &mut fbb,
                &fb::BufferArgs {
                    data: None,
                    offset,
                    size,
                },
            )
        })
        .collect();
    let mut metadata = Vec::with_capacity(metadata_values.len());
    for (name, value) in metadata_values {
        let index = u32::try_from(buffers.len()).unwrap_or(u32::MAX);
        let data = fbb.create_vector(value);
        buffers.push(fb::Buffer::create(
            &mut fbb,
            &fb::BufferArgs {
                data: Some(data),
                ..Default::default()
            },
        ));
        let name = fbb.create_string(name);
        metadata.push(fb::Metadata::create(
            &mut fbb,
            &fb::MetadataArgs {
                name: Some(name),
                buffer: index,
            },
        ));
    }
    let buffers = fbb.create_vector(&buffers);
    let metadata = (!metadata.is_empty()).then(|| fbb.create_vector(&metadata));

    let signatures: Vec<_> = model
        .signatures
        .iter()
        .map(|sig| signature(&mut fbb, sig))
        .collect();
    let signatures = fbb.create_vector(&signatures);
    let description = fbb.create_string(&model.description);

    let root = fb::Model::create(
        &mut fbb,
        &fb::ModelArgs {
            version: SCHEMA_VERSION,
            operator_codes: Some(codes),
            subgraphs: Some(subgraphs),
            description: Some(description),
            buffers: Some(buffers),
            metadata_buffer: None,
            metadata,
            signature_defs: Some(signatures),
        },
    );
    fb::finish_model_buffer(&mut fbb, root);
    fbb.finished_data().to_vec()
}

fn subgraph<'a>(fbb: &mut FlatBufferBuilder<'a>, sg: &SubgraphDef) -> WIPOffset<fb::SubGraph<'a>> {
    let tensors: Vec<_> = sg.tensors.iter().map(|t| tensor(fbb, t)).collect();
    let tensors = fbb.create_vector(&tensors);
    let operators: Vec<_> = sg
        .operators
        .iter()
        .map(|op| operator(fbb, op, &sg.tensors))
        .collect();
    let operators = fbb.create_vector(&operators);
    let inputs = fbb.create_vector(&sg.inputs);
    let outputs = fbb.create_vector(&sg.outputs);
    let name = fbb.create_string(&sg.name);
    fb::SubGraph::create(
        fbb,
        &fb::SubGraphArgs {
            tensors: Some(tensors),
            inputs: Some(inputs),
            outputs: Some(outputs),
            operators: Some(operators),
            name: Some(name),
            debug_metadata_index: -1,
        },
    )
}

fn tensor<'a>(fbb: &mut FlatBufferBuilder<'a>, t: &TensorDef) -> WIPOffset<fb::Tensor<'a>> {
    let shape = fbb.create_vector(&t.shape);
    let shape_signature = t.shape_signature.as_ref().map(|s| fbb.create_vector(s));
    let quantization = t.quantization.as_ref().map(|q| {
        // Blockwise parameters live in their own table (and scales tensor): the runtime
        // ignores `scale` and `zero_point` then, so they are left out.
        let (scale, zero_point) = match q.blockwise {
            Some(_) => (None, None),
            None => (
                Some(fbb.create_vector(&q.scale)),
                Some(fbb.create_vector(&q.zero_point)),
            ),
        };
        let details = q.blockwise.as_ref().map(|b| {
            fb::BlockwiseQuantization::create(
                fbb,
                &fb::BlockwiseQuantizationArgs {
                    scales: b.scales,
                    zero_points: -1,
                    block_size: b.block_size,
                },
            )
            .as_union_value()
        });
        fb::QuantizationParameters::create(
            fbb,
            &fb::QuantizationParametersArgs {
                scale,
                zero_point,
                details_type: if details.is_some() {
                    fb::QuantizationDetails::BlockwiseQuantization
                } else {
                    fb::QuantizationDetails::NONE
                },
                details,
                quantized_dimension: q.quantized_dimension,
                ..Default::default()
            },
        )
    });
    let name = fbb.create_string(&t.name);
    fb::Tensor::create(
        fbb,
        &fb::TensorArgs {
            shape: Some(shape),
            type_: t.dtype,
            buffer: t.buffer,
            name: Some(name),
            quantization,
            shape_signature,
            // The rank is always known here; it tells a scalar from an unranked tensor.
            has_rank: true,
            ..Default::default()
        },
    )
}

fn operator<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    op: &OperatorDef,
    tensors: &[TensorDef],
) -> WIPOffset<fb::Operator<'a>> {
    let (builtin_options_type, builtin_options) = options(fbb, op, tensors);
    let inputs = fbb.create_vector(&op.inputs);
    let outputs = fbb.create_vector(&op.outputs);
    fb::Operator::create(
        fbb,
        &fb::OperatorArgs {
            opcode_index: op.opcode_index,
            inputs: Some(inputs),
            outputs: Some(outputs),
            builtin_options_type,
            builtin_options,
            debug_metadata_index: -1,
            ..Default::default()
        },
    )
}

fn signature<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    sig: &SignatureDef,
) -> WIPOffset<fb::SignatureDef<'a>> {
    let mut maps = |list: &[(String, u32)]| {
        let maps: Vec<_> = list
            .iter()
            .map(|(name, index)| {
                let name = fbb.create_string(name);
                fb::TensorMap::create(
                    fbb,
                    &fb::TensorMapArgs {
                        name: Some(name),
                        tensor_index: *index,
                    },
                )
            })
            .collect();
        fbb.create_vector(&maps)
    };
    let inputs = maps(&sig.inputs);
    let outputs = maps(&sig.outputs);
    let key = fbb.create_string(&sig.key);
    fb::SignatureDef::create(
        fbb,
        &fb::SignatureDefArgs {
            inputs: Some(inputs),
            outputs: Some(outputs),
            signature_key: Some(key),
            subgraph_index: sig.subgraph_index,
        },
    )
}

type Union = Option<WIPOffset<UnionWIPOffset>>;

/// The options union of one operator: its type and table.
fn options(
    fbb: &mut FlatBufferBuilder<'_>,
    op: &OperatorDef,
    tensors: &[TensorDef],
) -> (fb::BuiltinOptions, Union) {
    use fb::BuiltinOptions as T;
    macro_rules! empty {
        ($table:ident, $args:ident) => {
            (
                T::$table,
                Some(fb::$table::create(fbb, &fb::$args {}).as_union_value()),
            )
        };
    }
    macro_rules! table {
        ($table:ident, $args:expr) => {
            (
                T::$table,
                Some(fb::$table::create(fbb, &$args).as_union_value()),
            )
        };
    }
    let dtype_of = |index: Option<&i32>| {
        index
            .and_then(|&i| usize::try_from(i).ok())
            .and_then(|i| tensors.get(i))
            .map_or(0, |t| t.dtype)
    };
    match &op.options {
        Options::None
        | Options::Sin
        | Options::Tanh
        | Options::Logistic
        | Options::Rsqrt
        | Options::Sqrt => (T::NONE, None),
        Options::Add { fused } => table!(
            AddOptions,
            fb::AddOptionsArgs {
                fused_activation_function: *fused,
                pot_scale_int16: true,
            }
        ),
        Options::Sub { fused } => table!(
            SubOptions,
            fb::SubOptionsArgs {
                fused_activation_function: *fused,
                pot_scale_int16: true,
            }
        ),
        Options::Mul { fused } => table!(
            MulOptions,
            fb::MulOptionsArgs {
                fused_activation_function: *fused,
            }
        ),
        Options::Div { fused } => table!(
            DivOptions,
            fb::DivOptionsArgs {
                fused_activation_function: *fused,
            }
        ),
        Options::FullyConnected {
            fused,
            keep_num_dims,
            asymmetric_quantize_inputs,
        } => table!(
            FullyConnectedOptions,
            fb::FullyConnectedOptionsArgs {
                fused_activation_function: *fused,
                weights_format: 0,
                keep_num_dims: *keep_num_dims,
                asymmetric_quantize_inputs: *asymmetric_quantize_inputs,
            }
        ),
        Options::BatchMatMul {
            adj_x,
            adj_y,
            asymmetric_quantize_inputs,
        } => table!(
            BatchMatMulOptions,
            fb::BatchMatMulOptionsArgs {
                adj_x: *adj_x,
                adj_y: *adj_y,
                asymmetric_quantize_inputs: *asymmetric_quantize_inputs,
            }
        ),
        Options::Reshape { new_shape } => {
            let new_shape = fbb.create_vector(new_shape);
            table!(
                ReshapeOptions,
                fb::ReshapeOptionsArgs {
                    new_shape: Some(new_shape),
                }
            )
        }
        Options::Softmax { beta } => table!(SoftmaxOptions, fb::SoftmaxOptionsArgs { beta: *beta }),
        Options::Concatenation { axis, fused } => table!(
            ConcatenationOptions,
            fb::ConcatenationOptionsArgs {
                axis: *axis,
                fused_activation_function: *fused,
            }
        ),
        Options::Gather { axis, batch_dims } => table!(
            GatherOptions,
            fb::GatherOptionsArgs {
                axis: *axis,
                batch_dims: *batch_dims,
            }
        ),
        Options::Transpose => empty!(TransposeOptions, TransposeOptionsArgs),
        Options::Reducer { keep_dims } => table!(
            ReducerOptions,
            fb::ReducerOptionsArgs {
                keep_dims: *keep_dims,
            }
        ),
        Options::StridedSlice {
            begin_mask,
            end_mask,
            shrink_axis_mask,
            ellipsis_mask,
            new_axis_mask,
            offset,
        } => table!(
            StridedSliceOptions,
            fb::StridedSliceOptionsArgs {
                begin_mask: *begin_mask,
                end_mask: *end_mask,
                ellipsis_mask: *ellipsis_mask,
                new_axis_mask: *new_axis_mask,
                shrink_axis_mask: *shrink_axis_mask,
                offset: *offset,
            }
        ),
        Options::Slice => empty!(SliceOptions, SliceOptionsArgs),
        Options::Cast => table!(
            CastOptions,
            fb::CastOptionsArgs {
                in_data_type: dtype_of(op.inputs.first()),
                out_data_type: dtype_of(op.outputs.first()),
            }
        ),
        Options::Gelu { approximate } => table!(
            GeluOptions,
            fb::GeluOptionsArgs {
                approximate: *approximate,
            }
        ),
        Options::DynamicUpdateSlice => {
            empty!(DynamicUpdateSliceOptions, DynamicUpdateSliceOptionsArgs)
        }
        Options::Pack { values_count, axis } => table!(
            PackOptions,
            fb::PackOptionsArgs {
                values_count: *values_count,
                axis: *axis,
            }
        ),
        Options::SelectV2 => empty!(SelectV2Options, SelectV2OptionsArgs),
        Options::Neg => empty!(NegOptions, NegOptionsArgs),
        Options::Squeeze { dims } => {
            let dims = fbb.create_vector(dims);
            table!(
                SqueezeOptions,
                fb::SqueezeOptionsArgs {
                    squeeze_dims: Some(dims),
                }
            )
        }
        Options::Exp => empty!(ExpOptions, ExpOptionsArgs),
        Options::Split { num_splits } => table!(
            SplitOptions,
            fb::SplitOptionsArgs {
                num_splits: *num_splits,
            }
        ),
        Options::LogSoftmax => empty!(LogSoftmaxOptions, LogSoftmaxOptionsArgs),
        Options::Dequantize => empty!(DequantizeOptions, DequantizeOptionsArgs),
        Options::Quantize => empty!(QuantizeOptions, QuantizeOptionsArgs),
        Options::MaximumMinimum => empty!(MaximumMinimumOptions, MaximumMinimumOptionsArgs),
        Options::ArgMax { output_type } => table!(
            ArgMaxOptions,
            fb::ArgMaxOptionsArgs {
                output_type: *output_type,
            }
        ),
        Options::Less => empty!(LessOptions, LessOptionsArgs),
        Options::Greater => empty!(GreaterOptions, GreaterOptionsArgs),
        Options::GreaterEqual => empty!(GreaterEqualOptions, GreaterEqualOptionsArgs),
        Options::LessEqual => empty!(LessEqualOptions, LessEqualOptionsArgs),
        Options::Equal => empty!(EqualOptions, EqualOptionsArgs),
        Options::Tile => empty!(TileOptions, TileOptionsArgs),
        Options::ExpandDims => empty!(ExpandDimsOptions, ExpandDimsOptionsArgs),
        Options::Pow => empty!(PowOptions, PowOptionsArgs),
        Options::SquaredDifference => {
            empty!(SquaredDifferenceOptions, SquaredDifferenceOptionsArgs)
        }
        Options::Cos => empty!(CosOptions, CosOptionsArgs),
        Options::Cumsum { exclusive, reverse } => table!(
            CumsumOptions,
            fb::CumsumOptionsArgs {
                exclusive: *exclusive,
                reverse: *reverse,
            }
        ),
        Options::BroadcastTo => empty!(BroadcastToOptions, BroadcastToOptionsArgs),
        Options::Range => empty!(RangeOptions, RangeOptionsArgs),
        Options::Fill => empty!(FillOptions, FillOptionsArgs),
        Options::Shape { out_type } => table!(
            ShapeOptions,
            fb::ShapeOptionsArgs {
                out_type: *out_type,
            }
        ),
    }
}
