//! The weights check (`inspect --weights`, the guide's "verify weights were saved"): read
//! every constant tensor once, in file order, and count elements that are zero. A model whose
//! weights were never saved or were zeroed by a broken export shows up as all-zero tensors.
//! This is the only place that reads weight bytes. For files it reads through a fixed-size
//! buffer rather than the memory map, so a multi-gigabyte model never becomes resident.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};

use super::model::{Tensor, WeightsCheck};
use super::reader::BufferSpan;

/// Bytes per read: a multiple of every element width.
const CHUNK: usize = 1 << 20;

/// Where weight bytes come from: a byte slice already in memory, or a file read in chunks.
pub(crate) enum Source<'a> {
    Bytes(&'a [u8]),
    File(&'a std::fs::File),
}

impl Source<'_> {
    /// Feed `len` bytes at `start` to `f` in chunks; false when they cannot all be read.
    fn chunks(&mut self, start: usize, len: usize, f: &mut dyn FnMut(&[u8])) -> bool {
        match self {
            Source::Bytes(bytes) => {
                let Some(data) = start.checked_add(len).and_then(|end| bytes.get(start..end))
                else {
                    return false;
                };
                data.chunks(CHUNK).for_each(f);
                true
            }
            Source::File(file) => {
                let mut file = *file;
                if file.seek(SeekFrom::Start(start as u64)).is_err() {
                    return false;
                }
                let mut buf = vec![0u8; CHUNK.min(len)];
                let mut left = len;
                while left > 0 {
                    let n = left.min(CHUNK);
                    let Some(piece) = buf.get_mut(..n) else {
                        return false;
                    };
                    if file.read_exact(piece).is_err() {
                        return false;
                    }
                    f(piece);
                    left -= n;
                }
                true
            }
        }
    }
}

pub(crate) fn check(
    mut source: Source<'_>,
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
        let Some(kind) = ElementKind::of(t).filter(|k| span.len % k.width() == 0) else {
            result.tensors_skipped += 1;
            continue;
        };
        let mut zeros = 0u64;
        if !source.chunks(span.start, span.len, &mut |chunk| {
            zeros += kind.count_zeros(chunk)
        }) {
            result.tensors_skipped += 1;
            continue;
        }
        let elements = (span.len / kind.width()) as u64;
        result.tensors_checked += 1;
        result.elements = result.elements.saturating_add(elements);
        result.zero_elements = result.zero_elements.saturating_add(zeros);
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

    fn width(self) -> usize {
        match self {
            Self::Float(w) => w,
            Self::Half => 2,
            Self::Int { width, .. } => width,
        }
    }

    /// Zero elements in whole elements of `data` (a trailing partial element is ignored).
    fn count_zeros(self, data: &[u8]) -> u64 {
        data.chunks_exact(self.width())
            .filter(|e| self.is_zero(e))
            .count() as u64
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
        assert_eq!(ElementKind::Float(4).count_zeros(&f32s), 3);
        let int8 = [0x80u8, 0x00, 0x80];
        let zp = ElementKind::Int {
            width: 1,
            zero: -128,
            signed: true,
        };
        assert_eq!(zp.count_zeros(&int8), 2);
        assert_eq!(
            ElementKind::Int {
                width: 1,
                zero: 0,
                signed: true
            }
            .count_zeros(&int8),
            1
        );
        assert_eq!(ElementKind::Half.count_zeros(&[0x00, 0x80, 0x00, 0x3c]), 1);
    }

    #[test]
    fn file_and_bytes_sources_agree() {
        let data: Vec<u8> = (0..(3 * CHUNK + 5)).map(|i| (i % 7) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &data).unwrap();
        let count = |mut s: Source<'_>| {
            let mut zeros = 0;
            let ok = s.chunks(3, 3 * CHUNK, &mut |c| {
                zeros += ElementKind::Half.count_zeros(c)
            });
            (ok, zeros)
        };
        let from_bytes = count(Source::Bytes(&data));
        assert_eq!(from_bytes, count(Source::File(&file)));
        assert!(from_bytes.0);
        assert!(!Source::Bytes(&data).chunks(data.len(), 1, &mut |_| {}));
        assert!(!Source::File(&file).chunks(data.len(), 1, &mut |_| {}));
    }
}
