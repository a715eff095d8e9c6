//! Reading a `.tflite` file into a [`ModelInfo`]: memory-map, check the identifier, run the
//! FlatBuffer verifier, then walk the verified tables. Weight bytes are never read here (only
//! their lengths); the one exception is the small `min_runtime_version` metadata string.
//! Everything that comes from the file is checked before use, so a malformed file gives a
//! [`ReadError`], never a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;

use flatbuffers::VerifierOptions;

use super::fb;
use super::model::{
    DimMetadata, Layout, MetadataEntry, ModelInfo, OperatorCode, PLACEHOLDER_SIGNATURE_KEY,
    Quantization, Signature, SignatureSource, SignatureTensor, Sparsity, Subgraph, Tensor,
};
use super::names::builtin_op::CUSTOM;
use super::names::{builtin_op_name, dtype_name};
use super::weights::{self, Source};
use crate::provenance::Provenance;

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
    let map = crate::fsio::map_readonly(&file).map_err(io_err)?;
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

mod extent;
mod summary;
mod tables;

use extent::Extent;
use summary::{collect_warnings, quantization_summary, weight_summary};

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
        let provenance = Provenance::from_metadata(
            metadata
                .iter()
                .filter(|m| Provenance::is_entry(&m.name))
                .filter_map(|m| {
                    let span = buffers.get(m.buffer as usize)?;
                    let bytes = self
                        .bytes
                        .get(span.start..span.start.saturating_add(span.len))?;
                    Some((m.name.as_str(), bytes))
                }),
        );
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
            provenance,
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
