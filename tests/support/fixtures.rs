//! Small `.tflite` models crafted with the generated FlatBuffer builders, one per edge case
//! the reader must handle. They are committed under `tests/fixtures/tflite/` (a few hundred
//! bytes each) and `tests/tflite_fixtures.rs` checks that the committed bytes still match
//! what this code builds (`LITERT_UPDATE_FIXTURES=1` rewrites them).

#![allow(dead_code)]

use flatbuffers::{FlatBufferBuilder, WIPOffset};
use litert::tflite::fb;

/// TensorType codes used below.
pub mod dtype {
    pub const FLOAT32: i8 = 0;
    pub const FLOAT16: i8 = 1;
    pub const INT32: i8 = 2;
    pub const UINT8: i8 = 3;
    pub const BOOL: i8 = 6;
    pub const INT8: i8 = 9;
    pub const RESOURCE: i8 = 13;
}

#[derive(Clone, Default)]
pub struct T {
    pub name: String,
    pub dtype: i8,
    pub shape: Vec<i32>,
    pub shape_signature: Option<Vec<i32>>,
    /// (scales, zero points, quantized dimension)
    pub quant: Option<(Vec<f32>, Vec<i64>, i32)>,
    pub data: Option<Vec<u8>>,
    pub sparse: bool,
    pub variable: bool,
}

pub fn t(name: &str, dtype: i8, shape: &[i32]) -> T {
    T {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
        ..T::default()
    }
}

impl T {
    pub fn sig(mut self, s: &[i32]) -> Self {
        self.shape_signature = Some(s.to_vec());
        self
    }
    pub fn quant(mut self, scale: &[f32], zp: &[i64], dim: i32) -> Self {
        self.quant = Some((scale.to_vec(), zp.to_vec(), dim));
        self
    }
    pub fn data(mut self, d: Vec<u8>) -> Self {
        self.data = Some(d);
        self
    }
    pub fn sparse(mut self) -> Self {
        self.sparse = true;
        self
    }
}

#[derive(Clone, Default)]
pub struct Sg {
    pub name: Option<String>,
    pub tensors: Vec<T>,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    /// (operator code index, inputs, outputs)
    pub ops: Vec<(u32, Vec<i32>, Vec<i32>)>,
}

#[derive(Clone)]
pub struct OpCode {
    pub deprecated: i8,
    pub code: i32,
    pub custom: Option<String>,
    pub version: i32,
}

pub fn builtin(code: i32, version: i32) -> OpCode {
    // How current converters write codes: the real code in the int field, and 127 in the old
    // byte for codes that do not fit.
    let deprecated = if code < 127 { code as i8 } else { 127 };
    OpCode {
        deprecated,
        code,
        custom: None,
        version,
    }
}

pub fn legacy(code: i8) -> OpCode {
    // Files from before schema 3a: only the byte.
    OpCode {
        deprecated: code,
        code: 0,
        custom: None,
        version: 1,
    }
}

pub fn custom(name: &str) -> OpCode {
    OpCode {
        deprecated: 32,
        code: 32,
        custom: Some(name.into()),
        version: 1,
    }
}

/// (key, subgraph, inputs (name, tensor), outputs (name, tensor))
pub type SignatureSpec = (String, u32, Vec<(String, u32)>, Vec<(String, u32)>);

#[derive(Clone, Default)]
pub struct Spec {
    pub description: Option<String>,
    pub opcodes: Vec<OpCode>,
    pub subgraphs: Vec<Sg>,
    /// (key, subgraph, inputs (name, tensor), outputs (name, tensor))
    pub signatures: Vec<SignatureSpec>,
    pub metadata: Vec<(String, Vec<u8>)>,
    /// Store tensor data after the FlatBuffer (the >2 GB layout) with `buffer_location`.
    pub outside: bool,
    pub appended: Vec<u8>,
}

/// Serialize a spec. Buffer 0 is the empty sentinel; each tensor with data gets its own
/// buffer, then each metadata entry.
pub fn build(spec: &Spec) -> Vec<u8> {
    if !spec.outside {
        let mut out = build_once(spec, &[]);
        out.extend_from_slice(&spec.appended);
        return out;
    }
    // Outside buffers: offsets are fixed-width scalars, so a first pass with placeholder
    // offsets gives the FlatBuffer's final size.
    let payloads: Vec<&Vec<u8>> = spec
        .subgraphs
        .iter()
        .flat_map(|sg| sg.tensors.iter())
        .filter_map(|t| t.data.as_ref())
        .collect();
    let placeholder: Vec<(u64, u64)> = payloads.iter().map(|p| (2, p.len() as u64)).collect();
    let first = build_once(spec, &placeholder);
    let mut offset = align16(first.len() as u64);
    let mut spans = Vec::new();
    for p in &payloads {
        spans.push((offset, p.len() as u64));
        offset = align16(offset + p.len() as u64);
    }
    let mut out = build_once(spec, &spans);
    assert_eq!(out.len(), first.len());
    for (p, (start, _)) in payloads.iter().zip(&spans) {
        out.resize(*start as usize, 0);
        out.extend_from_slice(p);
    }
    out.resize(align16(out.len() as u64) as usize, 0);
    out.extend_from_slice(&spec.appended);
    out
}

fn align16(n: u64) -> u64 {
    n.div_ceil(16) * 16
}

fn build_once(spec: &Spec, outside: &[(u64, u64)]) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let empty = fb::Buffer::create(&mut fbb, &fb::BufferArgs::default());
    let mut buffers = vec![empty];
    let mut next_outside = outside.iter();

    let mut subgraphs = Vec::new();
    for sg in &spec.subgraphs {
        let mut tensors = Vec::new();
        for t in &sg.tensors {
            let buffer = match &t.data {
                Some(d) => {
                    let args = match next_outside.next() {
                        Some(&(offset, size)) => fb::BufferArgs {
                            data: None,
                            offset,
                            size,
                        },
                        None => fb::BufferArgs {
                            data: Some(fbb.create_vector(d)),
                            offset: 0,
                            size: 0,
                        },
                    };
                    buffers.push(fb::Buffer::create(&mut fbb, &args));
                    (buffers.len() - 1) as u32
                }
                None => 0,
            };
            let shape = fbb.create_vector(&t.shape);
            let shape_signature = t.shape_signature.as_ref().map(|s| fbb.create_vector(s));
            let name = fbb.create_string(&t.name);
            let quantization = match &t.quant {
                Some((scale, zp, dim)) => {
                    let scale = fbb.create_vector(scale);
                    let zero_point = fbb.create_vector(zp);
                    Some(fb::QuantizationParameters::create(
                        &mut fbb,
                        &fb::QuantizationParametersArgs {
                            scale: Some(scale),
                            zero_point: Some(zero_point),
                            quantized_dimension: *dim,
                            ..Default::default()
                        },
                    ))
                }
                // What converters write for float tensors: an empty table.
                None => Some(fb::QuantizationParameters::create(
                    &mut fbb,
                    &Default::default(),
                )),
            };
            let sparsity = t.sparse.then(|| {
                let order = fbb.create_vector(&[0i32, 1]);
                let dense = fb::DimensionMetadata::create(
                    &mut fbb,
                    &fb::DimensionMetadataArgs {
                        format: 0,
                        dense_size: 2,
                        ..Default::default()
                    },
                );
                let csr = fb::DimensionMetadata::create(
                    &mut fbb,
                    &fb::DimensionMetadataArgs {
                        format: 1,
                        dense_size: 0,
                        ..Default::default()
                    },
                );
                let dims = fbb.create_vector(&[dense, csr]);
                fb::SparsityParameters::create(
                    &mut fbb,
                    &fb::SparsityParametersArgs {
                        traversal_order: Some(order),
                        block_map: None,
                        dim_metadata: Some(dims),
                    },
                )
            });
            tensors.push(fb::Tensor::create(
                &mut fbb,
                &fb::TensorArgs {
                    shape: Some(shape),
                    type_: t.dtype,
                    buffer,
                    name: Some(name),
                    quantization,
                    is_variable: t.variable,
                    sparsity,
                    shape_signature,
                    has_rank: true,
                    external_buffer: 0,
                },
            ));
        }
        let mut ops = Vec::new();
        for (code, ins, outs) in &sg.ops {
            let inputs = fbb.create_vector(ins);
            let outputs = fbb.create_vector(outs);
            ops.push(fb::Operator::create(
                &mut fbb,
                &fb::OperatorArgs {
                    opcode_index: *code,
                    inputs: Some(inputs),
                    outputs: Some(outputs),
                    ..Default::default()
                },
            ));
        }
        let tensors = fbb.create_vector(&tensors);
        let inputs = fbb.create_vector(&sg.inputs);
        let outputs = fbb.create_vector(&sg.outputs);
        let operators = fbb.create_vector(&ops);
        let name = sg.name.as_ref().map(|n| fbb.create_string(n));
        subgraphs.push(fb::SubGraph::create(
            &mut fbb,
            &fb::SubGraphArgs {
                tensors: Some(tensors),
                inputs: Some(inputs),
                outputs: Some(outputs),
                operators: Some(operators),
                name,
                debug_metadata_index: -1,
            },
        ));
    }

    let mut metadata = Vec::new();
    let mut entries = spec.metadata.clone();
    if spec.outside {
        entries.push(("buffer_location".into(), b"outside flatbuffers".to_vec()));
    }
    for (name, bytes) in &entries {
        let data = fbb.create_vector(bytes);
        buffers.push(fb::Buffer::create(
            &mut fbb,
            &fb::BufferArgs {
                data: Some(data),
                offset: 0,
                size: 0,
            },
        ));
        let buffer = (buffers.len() - 1) as u32;
        let name = fbb.create_string(name);
        metadata.push(fb::Metadata::create(
            &mut fbb,
            &fb::MetadataArgs {
                name: Some(name),
                buffer,
            },
        ));
    }

    let mut opcodes = Vec::new();
    for c in &spec.opcodes {
        let custom_code = c.custom.as_ref().map(|s| fbb.create_string(s));
        opcodes.push(fb::OperatorCode::create(
            &mut fbb,
            &fb::OperatorCodeArgs {
                deprecated_builtin_code: c.deprecated,
                custom_code,
                version: c.version,
                builtin_code: c.code,
            },
        ));
    }

    let mut sigs = Vec::new();
    for (key, sg, ins, outs) in &spec.signatures {
        let inputs = tensor_maps(&mut fbb, ins);
        let outputs = tensor_maps(&mut fbb, outs);
        let key = fbb.create_string(key);
        sigs.push(fb::SignatureDef::create(
            &mut fbb,
            &fb::SignatureDefArgs {
                inputs: Some(inputs),
                outputs: Some(outputs),
                signature_key: Some(key),
                subgraph_index: *sg,
            },
        ));
    }

    let operator_codes = fbb.create_vector(&opcodes);
    let subgraphs = fbb.create_vector(&subgraphs);
    let description = spec.description.as_ref().map(|d| fbb.create_string(d));
    let buffers = fbb.create_vector(&buffers);
    let metadata = fbb.create_vector(&metadata);
    let signature_defs = (!sigs.is_empty()).then(|| fbb.create_vector(&sigs));
    let model = fb::Model::create(
        &mut fbb,
        &fb::ModelArgs {
            version: 3,
            operator_codes: Some(operator_codes),
            subgraphs: Some(subgraphs),
            description,
            buffers: Some(buffers),
            metadata_buffer: None,
            metadata: Some(metadata),
            signature_defs,
        },
    );
    fb::finish_model_buffer(&mut fbb, model);
    fbb.finished_data().to_vec()
}

fn tensor_maps<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    list: &[(String, u32)],
) -> WIPOffset<flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<fb::TensorMap<'a>>>> {
    let v: Vec<WIPOffset<fb::TensorMap>> = list
        .iter()
        .map(|(n, i)| {
            let name = fbb.create_string(n);
            fb::TensorMap::create(
                fbb,
                &fb::TensorMapArgs {
                    name: Some(name),
                    tensor_index: *i,
                },
            )
        })
        .collect();
    fbb.create_vector(&v)
}

fn version_string(v: &str) -> Vec<u8> {
    let mut b = v.as_bytes().to_vec();
    b.resize(16, 0);
    b
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|f| f.to_le_bytes()).collect()
}

/// A small quantized classifier with a SignatureDef, a dynamic batch dim, per-channel int8
/// weights, a sparse tensor, an op code >= 127, a custom op and a Flex op, and a second
/// (initialisation) subgraph.
pub fn basic() -> Spec {
    let main = Sg {
        name: Some("main".into()),
        tensors: vec![
            t("serving_default_x:0", dtype::FLOAT32, &[1, 4]).sig(&[-1, 4]),
            t("serving_default_mask:0", dtype::BOOL, &[1]),
            t("x_int8", dtype::INT8, &[1, 4])
                .sig(&[-1, 4])
                .quant(&[0.05], &[-3], 0),
            t("dense/kernel", dtype::INT8, &[3, 4])
                .quant(&[0.01, 0.02, 0.03], &[0, 0, 0], 0)
                .data(vec![1, 0, 2, 0, 0, 0, 0, 0, 5, 6, 7, 8]),
            t("dense/bias", dtype::INT32, &[3]).data(vec![0; 12]),
            t("dense/out", dtype::INT8, &[1, 3])
                .sig(&[-1, 3])
                .quant(&[0.1], &[2], 0),
            t("sparse/w", dtype::FLOAT32, &[2, 2])
                .sparse()
                .data(f32_bytes(&[1.0, 2.0])),
            t("StatefulPartitionedCall:0", dtype::FLOAT32, &[1, 3]).sig(&[-1, 3]),
        ],
        inputs: vec![0, 1],
        outputs: vec![7],
        ops: vec![
            (0, vec![0], vec![2]),
            (1, vec![2, 3, 4], vec![5]),
            (2, vec![5], vec![7]),
            (3, vec![], vec![]),
            (4, vec![7, 6], vec![7]),
            (5, vec![7, 1], vec![7]),
        ],
    };
    let init = Sg {
        name: Some("init".into()),
        tensors: vec![t("var", dtype::RESOURCE, &[])],
        inputs: vec![],
        outputs: vec![],
        ops: vec![(6, vec![], vec![0])],
    };
    Spec {
        description: Some("MLIR Converted.".into()),
        opcodes: vec![
            builtin(114, 1), // QUANTIZE
            builtin(9, 9),   // FULLY_CONNECTED
            builtin(6, 2),   // DEQUANTIZE
            builtin(129, 1), // CALL_ONCE, only in the new field
            custom("MyCustomOp"),
            custom("FlexAddV2"),
            builtin(142, 1), // VAR_HANDLE
        ],
        subgraphs: vec![main, init],
        signatures: vec![(
            "serving_default".into(),
            0,
            vec![("x".into(), 0), ("mask".into(), 1)],
            vec![("probabilities".into(), 7)],
        )],
        metadata: vec![
            ("min_runtime_version".into(), version_string("2.6.0")),
            ("CONVERSION_METADATA".into(), vec![7; 40]),
        ],
        ..Spec::default()
    }
}

/// `basic` after a careless re-export: an input renamed, an output retyped, the batch fixed,
/// another op, a newer op version, the Flex op gone.
pub fn basic_changed() -> Spec {
    let mut s = basic();
    s.signatures = vec![(
        "serving_default".into(),
        0,
        vec![("features".into(), 0), ("mask".into(), 1)],
        vec![("probabilities".into(), 7)],
    )];
    let main = &mut s.subgraphs[0];
    main.tensors[0] = t("serving_default_features:0", dtype::FLOAT32, &[1, 4]);
    main.tensors[7] =
        t("StatefulPartitionedCall:0", dtype::UINT8, &[1, 3]).quant(&[0.00390625], &[0], 0);
    main.ops.pop();
    main.ops.push((2, vec![7], vec![7]));
    s.opcodes[1] = builtin(9, 11);
    s.signatures.push((
        "decode".into(),
        0,
        vec![("ids".into(), 0)],
        vec![("text".into(), 7)],
    ));
    s
}

/// A converter output without SignatureDefs, with only the old one-byte op codes (pre-3a)
/// and float16 weights.
pub fn no_signature() -> Spec {
    let main = Sg {
        name: None,
        tensors: vec![
            t("input", dtype::FLOAT32, &[1, 8, 8, 3]),
            t("conv/w16", dtype::FLOAT16, &[4, 1, 1, 3]).data([0x00, 0x3c].repeat(12)),
            t("conv/w", dtype::FLOAT32, &[4, 1, 1, 3]),
            t("conv/b", dtype::FLOAT32, &[4]).data(vec![0; 16]),
            t("output", dtype::FLOAT32, &[1, 8, 8, 4]),
        ],
        inputs: vec![0],
        outputs: vec![4],
        ops: vec![(0, vec![1], vec![2]), (1, vec![0, 2, 3], vec![4])],
    };
    Spec {
        description: Some("TOCO Converted.".into()),
        opcodes: vec![legacy(6), legacy(3)], // DEQUANTIZE, CONV_2D
        subgraphs: vec![main],
        ..Spec::default()
    }
}

/// `no_signature` with an empty zip archive appended, as MediaPipe ships its models.
pub fn appended_zip() -> Spec {
    let mut s = no_signature();
    let mut eocd = b"PK\x05\x06".to_vec();
    eocd.resize(22, 0);
    s.appended = eocd;
    s
}

/// Weights stored after the FlatBuffer at offset/size, as converters write models over 2 GB.
pub fn outside_buffers() -> Spec {
    let mut s = no_signature();
    s.outside = true;
    s.description = Some("large model layout".into());
    s
}

/// Codes this build does not know: a tensor type and a builtin operator from the future.
pub fn unknown_codes() -> Spec {
    let main = Sg {
        name: Some("main".into()),
        tensors: vec![t("in", 99, &[2]), t("out", dtype::FLOAT32, &[2])],
        inputs: vec![0],
        outputs: vec![1],
        ops: vec![(0, vec![0], vec![1])],
    };
    Spec {
        opcodes: vec![OpCode {
            deprecated: 127,
            code: 500,
            custom: None,
            version: 3,
        }],
        subgraphs: vec![main],
        signatures: vec![(
            "serving_default".into(),
            0,
            vec![("in".into(), 0)],
            vec![("out".into(), 1)],
        )],
        ..Spec::default()
    }
}

/// Every committed fixture: (file name, bytes).
pub fn all() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("basic.tflite", build(&basic())),
        ("basic_changed.tflite", build(&basic_changed())),
        ("no_signature.tflite", build(&no_signature())),
        ("appended_zip.tflite", build(&appended_zip())),
        ("outside_buffers.tflite", build(&outside_buffers())),
        ("unknown_codes.tflite", build(&unknown_codes())),
    ]
}

pub fn dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tflite")
}
