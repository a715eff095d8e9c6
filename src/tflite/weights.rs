//! The weights check (`inspect --weights`, the guide's "verify weights were saved"): read
//! every constant tensor once, in file order, and count elements that are zero. A model whose
//! weights were never saved or were zeroed by a broken export shows up as all-zero tensors.
//! This is the only place that reads weight bytes.

use std::collections::HashSet;

use super::model::{Tensor, WeightsCheck};
use super::reader::BufferSpan;

/// Bytes per chunk: counting walks the mapped file in pieces so the kernel can stream it
/// rather than the check holding a large model in memory at once.
const CHUNK: usize = 1 << 20;

pub(crate) fn check(
    bytes: &[u8],
    tensors: &[Vec<Tensor>],
    buffer_ids: &[Vec<u32>],
    buffers: &[BufferSpan],
) -> WeightsCheck {
    let mut seen = HashSet::new();
    let mut result = WeightsCheck {
        tensors_checked: 0,
        elements: 0,
        zero_elements: 0,
        zero_fraction: 0.0,
        all_zero_tensors: Vec::new(),
        tensors_skipped: 0,
    };
    let mut todo = Vec::new();
    for (sg, (ts, ids)) in tensors.iter().zip(buffer_ids).enumerate() {
        for (t, &buffer) in ts.iter().zip(ids) {
            if buffer == 0 || t.data_bytes == 0 || !seen.insert(buffer) {
                continue;
            }
            if let Some(span) = buffers.get(buffer as usize) {
                todo.push((sg, t, *span));
            }
        }
    }
    // File order, so a cold read of a large model is sequential.
    todo.sort_by_key(|(_, _, span)| span.start);
    for (sg, t, span) in todo {
        let data = span
            .start
            .checked_add(span.len)
            .and_then(|end| bytes.get(span.start..end));
        let (Some(data), Some(kind)) = (data, ElementKind::of(t)) else {
            result.tensors_skipped += 1;
            continue;
        };
        let Some((elements, zeros)) = kind.count_zeros(data) else {
            result.tensors_skipped += 1;
            continue;
        };
        result.tensors_checked += 1;
        result.elements += elements;
        result.zero_elements += zeros;
        if elements > 0 && zeros == elements {
            result
                .all_zero_tensors
                .push(format!("{sg}:{} {}", t.index, t.name));
        }
    }
    if result.elements > 0 {
        result.zero_fraction = result.zero_elements as f64 / result.elements as f64;
    }
    result
}

/// How to find zeros in one tensor's bytes.
#[derive(Debug, Clone, Copy)]
enum ElementKind {
    /// IEEE floats of this many bytes: +0.0 and -0.0 are zero.
    Float(usize),
    /// bfloat16 and float16 share the "all bits but the sign are zero" test.
    Half,
    /// Integers of this many bytes, zero when equal to this (a per-tensor zero point).
    Int {
        width: usize,
        zero: i64,
        signed: bool,
    },
}

impl ElementKind {
    fn of(t: &Tensor) -> Option<Self> {
        if t.sparsity.is_some() {
            return None; // the stored values are compressed; their count is not the shape's
        }
        // A quantized value is zero when it equals the tensor's zero point.
        let zero = match &t.quantization {
            Some(q) if q.zero_point.len() == 1 => q.zero_point.first().copied().unwrap_or(0),
            _ => 0,
        };
        Some(match t.dtype.as_str() {
            "float32" | "complex64" => Self::Float(4),
            "float64" | "complex128" => Self::Float(8),
            "float16" | "bfloat16" => Self::Half,
            "int8" => Self::Int {
                width: 1,
                zero,
                signed: true,
            },
            "uint8" | "bool" => Self::Int {
                width: 1,
                zero,
                signed: false,
            },
            "int16" => Self::Int {
                width: 2,
                zero,
                signed: true,
            },
            "uint16" => Self::Int {
                width: 2,
                zero,
                signed: false,
            },
            "int32" => Self::Int {
                width: 4,
                zero,
                signed: true,
            },
            "uint32" => Self::Int {
                width: 4,
                zero,
                signed: false,
            },
            "int64" => Self::Int {
                width: 8,
                zero,
                signed: true,
            },
            "uint64" => Self::Int {
                width: 8,
                zero: 0,
                signed: false,
            },
            _ => return None,
        })
    }

    /// (elements, zero elements), or `None` when the bytes are not whole elements.
    fn count_zeros(self, data: &[u8]) -> Option<(u64, u64)> {
        let width = match self {
            Self::Float(w) => w,
            Self::Half => 2,
            Self::Int { width, .. } => width,
        };
        if !data.len().is_multiple_of(width) {
            return None;
        }
        let mut zeros = 0u64;
        for chunk in data.chunks(CHUNK - CHUNK % width) {
            for e in chunk.chunks_exact(width) {
                if self.is_zero(e) {
                    zeros += 1;
                }
            }
        }
        Some(((data.len() / width) as u64, zeros))
    }

    fn is_zero(self, e: &[u8]) -> bool {
        match self {
            // Little-endian: the sign bit is the top bit of the last byte.
            Self::Float(_) | Self::Half => match e.split_last() {
                Some((last, rest)) => last & 0x7f == 0 && rest.iter().all(|&b| b == 0),
                None => false,
            },
            Self::Int { zero: 0, .. } => e.iter().all(|&b| b == 0),
            Self::Int { zero, signed, .. } => {
                let mut buf = [0u8; 8];
                let fill = if signed && e.last().is_some_and(|b| b & 0x80 != 0) {
                    0xff
                } else {
                    0
                };
                buf.fill(fill);
                for (dst, src) in buf.iter_mut().zip(e) {
                    *dst = *src;
                }
                i64::from_le_bytes(buf) == zero
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_by_kind() {
        let f32s: Vec<u8> = [0.0f32, -0.0, 1.5, 0.0]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        assert_eq!(ElementKind::Float(4).count_zeros(&f32s), Some((4, 3)));
        let int8 = [0x80u8, 0x00, 0x80];
        assert_eq!(
            ElementKind::Int {
                width: 1,
                zero: -128,
                signed: true
            }
            .count_zeros(&int8),
            Some((3, 2))
        );
        assert_eq!(
            ElementKind::Int {
                width: 1,
                zero: 0,
                signed: true
            }
            .count_zeros(&int8),
            Some((3, 1))
        );
        let half = [0x00u8, 0x80, 0x00, 0x3c];
        assert_eq!(ElementKind::Half.count_zeros(&half), Some((2, 1)));
        assert_eq!(ElementKind::Float(4).count_zeros(&[0, 0, 0]), None);
    }
}
