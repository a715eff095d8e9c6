//! Reading the tables a model's description is made of: tensors (with their quantization
//! and sparsity), signatures and metadata, each checked against the file before use and
//! noted in the [`Extent`] of what the FlatBuffer covers.

use super::*;

impl<'a> Reader<'a> {
    pub(super) fn tensors(
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
        let block_size = q.details_as_blockwise_quantization().map(|b| {
            self.extent.table(&b._tab);
            b.block_size()
        });
        let details = match q.details_type().0 {
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
            block_size,
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

    pub(super) fn signatures(
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

    pub(super) fn metadata(
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
}
