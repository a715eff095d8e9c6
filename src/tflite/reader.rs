//! Reading a `.tflite` file into a [`ModelInfo`]: memory-map, check the identifier, run the
//! FlatBuffer verifier, then walk the verified tables. Weight bytes are never read here (only
//! their lengths); the one exception is the small `min_runtime_version` metadata string.
//! Everything that comes from the file is checked before use, so a malformed file gives a
//! [`ReadError`], never a panic.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::path::Path;

use flatbuffers::VerifierOptions;

use super::fb;
use super::model::{
    DimMetadata, DtypeWeights, LargeTensor, Layout, MetadataEntry, ModelInfo, OperatorCode,
    PLACEHOLDER_SIGNATURE_KEY, Quantization, QuantizationSummary, Signature, SignatureSource,
    SignatureTensor, Sparsity, Subgraph, Tensor, WeightSummary,
};
use super::names::{CUSTOM, builtin_op_name, dtype_name};
use super::weights::{self, Source};

/// What went wrong reading a model file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read `{path}`")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not a LiteRT model: {0}")]
    NotTflite(String),
    #[error("the FlatBuffer does not verify: {0}")]
    Invalid(#[from] flatbuffers::InvalidFlatbuffer),
    #[error("the model is inconsistent: {0}")]
    Inconsistent(String),
}

/// What to do beyond describing the model.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Read every constant tensor to count zeros (`inspect --weights`).
    pub weights_check: bool,
    /// List every tensor of every subgraph (`inspect --tensors`).
    pub tensors: bool,
}

/// The file identifier every LiteRT model carries at bytes 4..8.
const IDENTIFIER: &[u8; 4] = b"TFL3";

/// Verifier limits. Depth is fixed by our schema (Model > SubGraph > Tensor > Sparsity >
/// DimMetadata), so the default 64 is plenty. Large language models have hundreds of
/// thousands of tables, more than the default million once vtables of every tensor and
/// operator count, so the table limit is raised; the size limit stays at the 2 GB that a
/// FlatBuffer can address.
fn verifier_options() -> VerifierOptions {
    VerifierOptions {
        max_depth: 64,
        max_tables: 64_000_000,
        max_apparent_size: 1 << 31,
        ignore_missing_null_terminator: false,
    }
}

/// Read the model at `path`, memory-mapped.
pub fn read_path(path: &Path, options: ReadOptions) -> Result<ModelInfo, ReadError> {
    let io_err = |source| ReadError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        return Err(ReadError::NotTflite("it is a directory".to_string()));
    }
    let len = meta.len();
    if len < 8 {
        return Err(too_small(len));
    }
    // SAFETY: the map is read-only and lives only for this call. Another process truncating
    // or rewriting the file while we read it is undefined behaviour that no file API can rule
    // out; `litert` reads finished artifacts, and users are told not to inspect files that are
    // being written.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
    read_with(
        &map,
        &path.display().to_string(),
        options,
        Source::File(&file),
    )
}

fn too_small(len: u64) -> ReadError {
    ReadError::NotTflite(format!(
        "the file has {len} bytes, too few for a FlatBuffer"
    ))
}

/// Read a model from bytes already in memory; `file` is the name to report.
pub fn read_bytes(bytes: &[u8], file: &str, options: ReadOptions) -> Result<ModelInfo, ReadError> {
    read_with(bytes, file, options, Source::Bytes(bytes))
}

/// `weights` is where the weights check reads from: the same bytes, or the file itself.
fn read_with(
    bytes: &[u8],
    file: &str,
    options: ReadOptions,
    weights: Source<'_>,
) -> Result<ModelInfo, ReadError> {
    let Some(ident) = bytes.get(4..8) else {
        return Err(too_small(bytes.len() as u64));
    };
    if ident != IDENTIFIER {
        return Err(ReadError::NotTflite(format!(
            "the file identifier is `{}`, expected `TFL3`",
            ident.escape_ascii()
        )));
    }
    let model = fb::root_as_model_with_opts(&verifier_options(), bytes)?;
    Reader {
        bytes,
        extent: Extent::new(bytes),
    }
    .read(model, file, options, weights)
}

struct Reader<'a> {
    bytes: &'a [u8],
    extent: Extent,
}

/// Where each buffer's bytes are, without reading them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BufferSpan {
    /// Offset of the bytes in the file.
    pub start: usize,
    pub len: usize,
    /// Stored outside the FlatBuffer (the >2 GB scheme).
    pub outside: bool,
}

impl<'a> Reader<'a> {
    fn read(
        mut self,
        model: fb::Model<'a>,
        file: &str,
        options: ReadOptions,
        weight_source: Source<'_>,
    ) -> Result<ModelInfo, ReadError> {
        self.extent.table(&model._tab);
        let operator_codes = self.operator_codes(&model);
        let buffers = self.buffers(&model)?;
        let mut warnings = Vec::new();

        let mut subgraphs = Vec::new();
        let mut all_tensors: Vec<Vec<Tensor>> = Vec::new();
        let mut all_ops: BTreeMap<String, u64> = BTreeMap::new();
        for (index, sg) in model.subgraphs().into_iter().flatten().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            self.extent.table(&sg._tab);
            let tensors = self.tensors(&sg, index, &buffers)?;
            let mut ops = BTreeMap::new();
            let mut operator_count = 0u64;
            if let Some(operators) = sg.operators() {
                self.extent.slice(operators.bytes());
                for op in operators {
                    self.extent.table(&op._tab);
                    for v in [op.inputs(), op.outputs(), op.intermediates()]
                        .into_iter()
                        .flatten()
                    {
                        self.extent.slice(v.bytes());
                    }
                    if let Some(v) = op.custom_options() {
                        self.extent.slice(v.bytes());
                    }
                    if let Some(v) = op.mutating_variable_inputs() {
                        self.extent.slice(v.bytes());
                    }
                    let name = operator_codes
                        .get(op.opcode_index() as usize)
                        .map(|c| c.name.clone())
                        .ok_or_else(|| {
                            ReadError::Inconsistent(format!(
                                "an operator of subgraph {index} uses operator code {}, but the model has {}",
                                op.opcode_index(),
                                operator_codes.len()
                            ))
                        })?;
                    *ops.entry(name.clone()).or_insert(0) += 1;
                    *all_ops.entry(name).or_insert(0) += 1;
                    operator_count += 1;
                }
            }
            let name = sg.name().map(|s| self.extent.str(s).to_string());
            let inputs = pick(&tensors, sg.inputs(), &mut self.extent, || {
                format!("subgraph {index} inputs")
            })?;
            let outputs = pick(&tensors, sg.outputs(), &mut self.extent, || {
                format!("subgraph {index} outputs")
            })?;
            subgraphs.push(Subgraph {
                index,
                name,
                inputs,
                outputs,
                operator_count,
                tensor_count: tensors.len() as u64,
                ops,
                tensors: options.tensors.then(|| tensors.clone()),
            });
            all_tensors.push(tensors);
        }

        if subgraphs.is_empty() {
            return Err(ReadError::Inconsistent(
                "the model has no subgraphs".to_string(),
            ));
        }
        let signatures = self.signatures(&model, &subgraphs, &all_tensors)?;
        let metadata = self.metadata(&model, &buffers)?;
        let min_runtime_version = metadata
            .iter()
            .find(|m| m.name == "min_runtime_version")
            .and_then(|m| buffers.get(m.buffer as usize))
            .and_then(|span| {
                self.bytes
                    .get(span.start..span.start.saturating_add(span.len))
            })
            .map(decode_version);
        if let Some(v) = model.metadata_buffer() {
            self.extent.slice(v.bytes());
        }
        let description = model.description().map(|s| self.extent.str(s).to_string());

        let mut custom_ops = BTreeSet::new();
        let mut flex_ops = BTreeSet::new();
        for code in &operator_codes {
            if let Some(custom) = &code.custom_code
                && code.builtin_code == CUSTOM
            {
                if custom.starts_with("Flex") {
                    flex_ops.insert(custom.clone());
                } else {
                    custom_ops.insert(custom.clone());
                }
            }
        }

        let buffer_ids = subgraph_buffers(&model);
        let weights = weight_summary(&all_tensors, &buffer_ids);
        let quantization = quantization_summary(&all_tensors);
        let layout = self.layout(&buffers, &metadata, &mut warnings);
        let weights_check = options
            .weights_check
            .then(|| weights::check(weight_source, &all_tensors, &buffer_ids, &buffers));

        let info_warnings = collect_warnings(
            &signatures,
            &flex_ops,
            &custom_ops,
            &layout,
            weights_check.as_ref(),
        );
        warnings.extend(info_warnings);

        Ok(ModelInfo {
            file: file.to_string(),
            size_bytes: self.bytes.len() as u64,
            schema_version: model.version(),
            description,
            signatures,
            subgraphs,
            ops: all_ops,
            operator_codes,
            custom_ops: custom_ops.into_iter().collect(),
            flex_ops: flex_ops.into_iter().collect(),
            metadata,
            min_runtime_version,
            weights,
            quantization,
            layout,
            weights_check,
            warnings,
        })
    }

    fn operator_codes(&mut self, model: &fb::Model<'a>) -> Vec<OperatorCode> {
        let mut out = Vec::new();
        let Some(codes) = model.operator_codes() else {
            return out;
        };
        self.extent.slice(codes.bytes());
        for (index, code) in codes.iter().enumerate() {
            self.extent.table(&code._tab);
            // Since schema 3a the byte field holds 127 for every op >= 127 and the int field
            // the real code; old files only have the byte. The runtime takes the larger one.
            let builtin_code = i32::from(code.deprecated_builtin_code()).max(code.builtin_code());
            let custom_code = code.custom_code().map(|s| self.extent.str(s).to_string());
            let name = match (&custom_code, builtin_code) {
                (Some(custom), CUSTOM) => custom.clone(),
                _ => builtin_op_name(builtin_code),
            };
            out.push(OperatorCode {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                name,
                builtin_code,
                custom_code,
                version: code.version(),
            });
        }
        out
    }

    fn buffers(&mut self, model: &fb::Model<'a>) -> Result<Vec<BufferSpan>, ReadError> {
        let mut out = Vec::new();
        let Some(buffers) = model.buffers() else {
            return Ok(out);
        };
        self.extent.slice(buffers.bytes());
        for (index, buffer) in buffers.iter().enumerate() {
            self.extent.table(&buffer._tab);
            // An offset of 0 or 1 means "not stored outside": 1 is what the converter writes
            // as a placeholder while it lays out the file.
            if buffer.offset() > 1 {
                let start = usize::try_from(buffer.offset()).ok();
                let len = usize::try_from(buffer.size()).ok();
                match (start, len) {
                    (Some(start), Some(len)) => out.push(BufferSpan {
                        start,
                        len,
                        outside: true,
                    }),
                    _ => {
                        return Err(ReadError::Inconsistent(format!(
                            "buffer {index} has offset {} and size {}, which this machine cannot address",
                            buffer.offset(),
                            buffer.size()
                        )));
                    }
                }
            } else if let Some(data) = buffer.data() {
                let bytes = data.bytes();
                self.extent.slice(bytes);
                out.push(BufferSpan {
                    start: self.extent.offset_of(bytes),
                    len: bytes.len(),
                    outside: false,
                });
            } else {
                out.push(BufferSpan {
                    start: 0,
                    len: 0,
                    outside: false,
                });
            }
        }
        Ok(out)
    }

    fn tensors(
        &mut self,
        sg: &fb::SubGraph<'a>,
        subgraph: u32,
        buffers: &[BufferSpan],
    ) -> Result<Vec<Tensor>, ReadError> {
        let mut out = Vec::new();
        let Some(tensors) = sg.tensors() else {
            return Ok(out);
        };
        self.extent.slice(tensors.bytes());
        for (index, t) in tensors.iter().enumerate() {
            self.extent.table(&t._tab);
            let shape = self.ints(t.shape());
            let shape_signature = match t.shape_signature() {
                Some(sig) => self.ints(Some(sig)),
                None => shape.clone(),
            };
            let name = t
                .name()
                .map(|s| self.extent.str(s).to_string())
                .unwrap_or_default();
            let data_bytes = match buffers.get(t.buffer() as usize) {
                Some(span) => span.len as u64,
                None if t.buffer() == 0 => 0,
                None => {
                    return Err(ReadError::Inconsistent(format!(
                        "tensor {index} (`{name}`) of subgraph {subgraph} uses buffer {}, but the model has {}",
                        t.buffer(),
                        buffers.len()
                    )));
                }
            };
            let quantization = t.quantization().and_then(|q| self.quantization(&q));
            let sparsity = t.sparsity().map(|s| self.sparsity(&s));
            out.push(Tensor {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                name,
                dtype: dtype_name(t.type_()),
                shape,
                shape_signature,
                quantization,
                sparsity,
                is_variable: t.is_variable(),
                data_bytes,
            });
        }
        Ok(out)
    }

    fn ints(&mut self, v: Option<flatbuffers::Vector<'a, i32>>) -> Vec<i32> {
        match v {
            Some(v) => {
                self.extent.slice(v.bytes());
                v.iter().collect()
            }
            None => Vec::new(),
        }
    }

    fn quantization(&mut self, q: &fb::QuantizationParameters<'a>) -> Option<Quantization> {
        self.extent.table(&q._tab);
        let floats = |ext: &mut Extent, v: Option<flatbuffers::Vector<'a, f32>>| -> Vec<f32> {
            v.map(|v| {
                ext.slice(v.bytes());
                v.iter().collect()
            })
            .unwrap_or_default()
        };
        let scale = floats(&mut self.extent, q.scale());
        let min = floats(&mut self.extent, q.min());
        let max = floats(&mut self.extent, q.max());
        let zero_point: Vec<i64> = q
            .zero_point()
            .map(|v| {
                self.extent.slice(v.bytes());
                v.iter().collect()
            })
            .unwrap_or_default();
        let details = match q.details_type() {
            0 => None,
            1 => Some("custom".to_string()),
            2 => Some("blockwise".to_string()),
            3 => Some("multi_axis".to_string()),
            n => Some(format!("unknown({n})")),
        };
        // Converters write an empty QuantizationParameters table on most float tensors.
        if scale.is_empty()
            && zero_point.is_empty()
            && details.is_none()
            && min.is_empty()
            && max.is_empty()
        {
            return None;
        }
        Some(Quantization {
            scale,
            zero_point,
            quantized_dimension: q.quantized_dimension(),
            min,
            max,
            details,
        })
    }

    fn sparsity(&mut self, s: &fb::SparsityParameters<'a>) -> Sparsity {
        self.extent.table(&s._tab);
        let traversal_order = self.ints(s.traversal_order());
        let block_map = self.ints(s.block_map());
        let mut dim_metadata = Vec::new();
        if let Some(dims) = s.dim_metadata() {
            self.extent.slice(dims.bytes());
            for d in dims {
                self.extent.table(&d._tab);
                dim_metadata.push(DimMetadata {
                    format: match d.format() {
                        0 => "dense".to_string(),
                        1 => "sparse_csr".to_string(),
                        n => format!("unknown({n})"),
                    },
                    dense_size: d.dense_size(),
                });
            }
        }
        Sparsity {
            traversal_order,
            block_map,
            dim_metadata,
        }
    }

    fn signatures(
        &mut self,
        model: &fb::Model<'a>,
        subgraphs: &[Subgraph],
        tensors: &[Vec<Tensor>],
    ) -> Result<Vec<Signature>, ReadError> {
        let mut out = Vec::new();
        if let Some(defs) = model.signature_defs() {
            self.extent.slice(defs.bytes());
            for (n, def) in defs.iter().enumerate() {
                self.extent.table(&def._tab);
                let key = def
                    .signature_key()
                    .map(|s| self.extent.str(s).to_string())
                    .unwrap_or_default();
                let sg = def.subgraph_index();
                let sg_tensors = tensors.get(sg as usize).ok_or_else(|| {
                    ReadError::Inconsistent(format!(
                        "signature {n} (`{key}`) refers to subgraph {sg}, but the model has {}",
                        tensors.len()
                    ))
                })?;
                let mut side = |maps: Option<
                    flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<fb::TensorMap<'a>>>,
                >,
                                what: &str|
                 -> Result<Vec<SignatureTensor>, ReadError> {
                    let mut v = Vec::new();
                    if let Some(maps) = maps {
                        self.extent.slice(maps.bytes());
                        for m in maps {
                            self.extent.table(&m._tab);
                            let name = m
                                .name()
                                .map(|s| self.extent.str(s).to_string())
                                .unwrap_or_default();
                            let tensor = sg_tensors.get(m.tensor_index() as usize).cloned().ok_or_else(|| {
                                ReadError::Inconsistent(format!(
                                    "{what} `{name}` of signature `{key}` refers to tensor {} of subgraph {sg}, which has {}",
                                    m.tensor_index(),
                                    sg_tensors.len()
                                ))
                            })?;
                            v.push(SignatureTensor { name, tensor });
                        }
                    }
                    Ok(v)
                };
                let inputs = side(def.inputs(), "input")?;
                let outputs = side(def.outputs(), "output")?;
                out.push(Signature {
                    key,
                    subgraph_index: sg,
                    source: SignatureSource::SignatureDef,
                    inputs,
                    outputs,
                });
            }
        }
        if out.is_empty()
            && let Some(main) = subgraphs.first()
        {
            let named = |ts: &[Tensor]| {
                ts.iter()
                    .map(|t| SignatureTensor {
                        name: t.name.clone(),
                        tensor: t.clone(),
                    })
                    .collect()
            };
            out.push(Signature {
                key: PLACEHOLDER_SIGNATURE_KEY.to_string(),
                subgraph_index: 0,
                source: SignatureSource::Subgraph,
                inputs: named(&main.inputs),
                outputs: named(&main.outputs),
            });
        }
        Ok(out)
    }

    fn metadata(
        &mut self,
        model: &fb::Model<'a>,
        buffers: &[BufferSpan],
    ) -> Result<Vec<MetadataEntry>, ReadError> {
        let mut out = Vec::new();
        let Some(entries) = model.metadata() else {
            return Ok(out);
        };
        self.extent.slice(entries.bytes());
        for m in entries {
            self.extent.table(&m._tab);
            let name = m
                .name()
                .map(|s| self.extent.str(s).to_string())
                .unwrap_or_default();
            let span = buffers.get(m.buffer() as usize).ok_or_else(|| {
                ReadError::Inconsistent(format!(
                    "metadata `{name}` uses buffer {}, but the model has {}",
                    m.buffer(),
                    buffers.len()
                ))
            })?;
            out.push(MetadataEntry {
                name,
                buffer: m.buffer(),
                size_bytes: span.len as u64,
            });
        }
        Ok(out)
    }

    fn layout(
        &self,
        buffers: &[BufferSpan],
        metadata: &[MetadataEntry],
        warnings: &mut Vec<String>,
    ) -> Layout {
        let file_len = self.bytes.len();
        let flatbuffer_end = self.extent.end.min(file_len);
        let mut data_end = flatbuffer_end;
        let mut outside = 0u64;
        let mut outside_bytes = 0u64;
        for (index, span) in buffers.iter().enumerate() {
            if !span.outside {
                continue;
            }
            outside += 1;
            outside_bytes = outside_bytes.saturating_add(span.len as u64);
            let end = span.start.saturating_add(span.len);
            if end > file_len {
                warnings.push(format!(
                    "buffer {index} lies at bytes {}..{end}, past the end of the file ({file_len} bytes): the file is truncated",
                    span.start
                ));
            }
            data_end = data_end.max(end.min(file_len));
        }
        let rest = self.bytes.get(data_end..).unwrap_or_default();
        // Writers pad the end of a FlatBuffer (and the >2 GB layout pads to 16 bytes): a short
        // run of zeros is alignment, not appended data.
        let padding = rest.len() < 16 && rest.iter().all(|&b| b == 0);
        let (appended_bytes, appended_kind) = if rest.is_empty() || padding {
            (0, None)
        } else {
            let kind = if looks_like_zip(rest) {
                "zip"
            } else {
                "unknown"
            };
            (rest.len() as u64, Some(kind.to_string()))
        };
        Layout {
            flatbuffer_bytes: flatbuffer_end as u64,
            buffers_outside_flatbuffer: outside,
            bytes_outside_flatbuffer: outside_bytes,
            buffer_location_metadata: metadata.iter().any(|m| m.name == "buffer_location"),
            appended_bytes,
            appended_kind,
        }
    }
}

/// The tensors a subgraph's `inputs`/`outputs` list names.
fn pick(
    tensors: &[Tensor],
    indices: Option<flatbuffers::Vector<'_, i32>>,
    extent: &mut Extent,
    what: impl Fn() -> String,
) -> Result<Vec<Tensor>, ReadError> {
    let Some(indices) = indices else {
        return Ok(Vec::new());
    };
    extent.slice(indices.bytes());
    indices
        .iter()
        .map(|i| {
            usize::try_from(i)
                .ok()
                .and_then(|i| tensors.get(i))
                .cloned()
                .ok_or_else(|| {
                    ReadError::Inconsistent(format!(
                        "{} name tensor {i}, but the subgraph has {}",
                        what(),
                        tensors.len()
                    ))
                })
        })
        .collect()
}

/// Buffer indices of every tensor, by subgraph, so weights are counted once per buffer.
fn subgraph_buffers(model: &fb::Model<'_>) -> Vec<Vec<u32>> {
    model
        .subgraphs()
        .into_iter()
        .flatten()
        .map(|sg| {
            sg.tensors()
                .into_iter()
                .flatten()
                .map(|t| t.buffer())
                .collect()
        })
        .collect()
}

fn weight_summary(tensors: &[Vec<Tensor>], buffer_ids: &[Vec<u32>]) -> WeightSummary {
    let mut seen = HashSet::new();
    let mut by_dtype: BTreeMap<String, DtypeWeights> = BTreeMap::new();
    let mut total = 0u64;
    let mut all = Vec::new();
    for (sg, (ts, ids)) in tensors.iter().zip(buffer_ids).enumerate() {
        for (t, &buffer) in ts.iter().zip(ids) {
            if buffer == 0 || t.data_bytes == 0 || !seen.insert(buffer) {
                continue;
            }
            total = total.saturating_add(t.data_bytes);
            let entry = by_dtype.entry(t.dtype.clone()).or_insert(DtypeWeights {
                tensors: 0,
                bytes: 0,
            });
            entry.tensors += 1;
            entry.bytes = entry.bytes.saturating_add(t.data_bytes);
            all.push(LargeTensor {
                subgraph: u32::try_from(sg).unwrap_or(u32::MAX),
                index: t.index,
                name: t.name.clone(),
                dtype: t.dtype.clone(),
                shape: t.shape.clone(),
                bytes: t.data_bytes,
            });
        }
    }
    all.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then(a.subgraph.cmp(&b.subgraph))
            .then(a.index.cmp(&b.index))
    });
    all.truncate(5);
    WeightSummary {
        total_bytes: total,
        by_dtype,
        largest: all,
    }
}

fn quantization_summary(tensors: &[Vec<Tensor>]) -> QuantizationSummary {
    let mut out = QuantizationSummary {
        tensors: 0,
        per_channel: 0,
        by_dtype: BTreeMap::new(),
    };
    for t in tensors.iter().flatten() {
        if let Some(q) = &t.quantization {
            out.tensors += 1;
            if q.is_per_channel() {
                out.per_channel += 1;
            }
            *out.by_dtype.entry(t.dtype.clone()).or_insert(0) += 1;
        }
    }
    out
}

/// `min_runtime_version` is a short ASCII string padded with NULs to 16 bytes.
fn decode_version(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = bytes.get(..end.min(64)).unwrap_or_default();
    String::from_utf8_lossy(text).into_owned()
}

/// A zip archive starts with a local file header, or is an empty archive (only the end record).
fn looks_like_zip(bytes: &[u8]) -> bool {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let rest = bytes.get(start..).unwrap_or_default();
    rest.starts_with(b"PK\x03\x04") || rest.starts_with(b"PK\x05\x06")
}

fn collect_warnings(
    signatures: &[Signature],
    flex_ops: &BTreeSet<String>,
    custom_ops: &BTreeSet<String>,
    layout: &Layout,
    weights_check: Option<&super::model::WeightsCheck>,
) -> Vec<String> {
    let mut out = Vec::new();
    if !flex_ops.is_empty() {
        out.push(format!(
            "Flex ops present ({}): the LiteRT runtime cannot run this model without the Flex delegate",
            join(flex_ops)
        ));
    }
    if !custom_ops.is_empty() {
        out.push(format!(
            "custom ops present ({}): the runtime needs them registered with its op resolver",
            join(custom_ops)
        ));
    }
    if signatures
        .iter()
        .all(|s| s.source == SignatureSource::Subgraph)
        && !signatures.is_empty()
    {
        out.push(
            "no SignatureDefs: inputs and outputs are subgraph 0's, named by their tensors"
                .to_string(),
        );
    }
    for sig in signatures {
        let dynamic: Vec<&str> = sig
            .inputs
            .iter()
            .filter(|i| i.tensor.is_dynamic())
            .map(|i| i.name.as_str())
            .collect();
        if !dynamic.is_empty() {
            out.push(format!(
                "signature `{}` has inputs with dynamic dimensions ({}): resize them before allocating tensors",
                sig.key,
                dynamic.join(", ")
            ));
        }
    }
    if layout.buffers_outside_flatbuffer > 0 && !layout.buffer_location_metadata {
        out.push(
            "buffers are stored outside the FlatBuffer but the `buffer_location` metadata is missing".to_string(),
        );
    }
    if let Some(check) = weights_check
        && !check.all_zero_tensors.is_empty()
    {
        out.push(format!(
            "{} constant tensors are all zeros: were the weights saved?",
            check.all_zero_tensors.len()
        ));
    }
    out
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The highest byte any FlatBuffer object we walked reaches: the FlatBuffer's size, and so
/// where appended data starts. Positions come from pointer arithmetic on verified slices;
/// nothing is read.
struct Extent {
    base: usize,
    len: usize,
    end: usize,
}

impl Extent {
    fn new(bytes: &[u8]) -> Self {
        // The root offset and file identifier.
        Self {
            base: bytes.as_ptr() as usize,
            len: bytes.len(),
            end: 8.min(bytes.len()),
        }
    }

    fn offset_of(&self, s: &[u8]) -> usize {
        (s.as_ptr() as usize)
            .saturating_sub(self.base)
            .min(self.len)
    }

    fn note(&mut self, end: usize) {
        self.end = self.end.max(end.min(self.len));
    }

    /// A vector's elements (its 4-byte length sits just before them).
    fn slice(&mut self, s: &[u8]) {
        let end = self.offset_of(s).saturating_add(s.len());
        self.note(end);
    }

    /// A string, plus its NUL terminator.
    fn str<'s>(&mut self, s: &'s str) -> &'s str {
        let end = self
            .offset_of(s.as_bytes())
            .saturating_add(s.len())
            .saturating_add(1);
        self.note(end);
        s
    }

    /// A table and its vtable. Read with checked accesses, not through `flatbuffers::VTable`:
    /// the verifier accepts a vtable shorter than its 4-byte header, and `VTable` would then
    /// read past it (found by the fuzzer, `tests/fixtures/tflite/regressions/`).
    fn table(&mut self, tab: &flatbuffers::Table<'_>) {
        let buf = tab.buf();
        let loc = tab.loc();
        let u16_at = |at: usize| -> Option<usize> {
            let b = buf.get(at..at.checked_add(2)?)?;
            Some(usize::from(u16::from_le_bytes([*b.first()?, *b.get(1)?])))
        };
        let Some(soffset) = buf
            .get(loc..loc.saturating_add(4))
            .and_then(|b| b.try_into().ok())
            .map(i32::from_le_bytes)
        else {
            return;
        };
        // The vtable sits at `loc - soffset`.
        let Some(vt) = i64::try_from(loc)
            .ok()
            .and_then(|l| usize::try_from(l - i64::from(soffset)).ok())
        else {
            return;
        };
        let vt_len = u16_at(vt).unwrap_or(0);
        let object_len = if vt_len >= 4 {
            u16_at(vt + 2).unwrap_or(4)
        } else {
            4
        };
        self.note(vt.saturating_add(vt_len));
        self.note(loc.saturating_add(object_len.max(4)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_strings_stop_at_nul() {
        assert_eq!(decode_version(b"2.6.0\0\0\0\0\0\0\0\0\0\0\0"), "2.6.0");
        assert_eq!(decode_version(b"1.14.0"), "1.14.0");
        assert_eq!(decode_version(b""), "");
        assert_eq!(decode_version(b"\xff\xfe\0"), "\u{fffd}\u{fffd}");
    }

    #[test]
    fn zip_archives_are_recognised_after_padding() {
        assert!(looks_like_zip(b"PK\x03\x04rest"));
        assert!(looks_like_zip(b"\0\0\0\0PK\x05\x06"));
        assert!(!looks_like_zip(b"TFL3"));
        assert!(!looks_like_zip(b""));
    }

    #[test]
    fn extent_tracks_the_furthest_byte() {
        let bytes = [0u8; 64];
        let mut e = Extent::new(&bytes);
        assert_eq!(e.end, 8);
        e.slice(&bytes[10..20]);
        assert_eq!(e.end, 20);
        e.slice(&bytes[0..4]);
        assert_eq!(e.end, 20);
        let s = std::str::from_utf8(&bytes[30..40]).unwrap();
        e.str(s);
        assert_eq!(e.end, 41, "a string's NUL terminator belongs to it");
        e.note(1000);
        assert_eq!(e.end, 64, "never past the end of the buffer");
    }

    #[test]
    fn empty_model_table_is_rejected() {
        // A root offset pointing at a table with no fields: it verifies, but has no subgraphs.
        let mut fbb = flatbuffers::FlatBufferBuilder::new();
        let model = fb::Model::create(&mut fbb, &fb::ModelArgs::default());
        fb::finish_model_buffer(&mut fbb, model);
        let err = read_bytes(fbb.finished_data(), "x", ReadOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the model is inconsistent: the model has no subgraphs"
        );
    }
}
