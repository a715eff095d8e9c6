//! A preset's `model.weights.h5`, read without TensorFlow or Keras: h5py (in the worker's
//! environment) says where each dataset lies, once (`h5_index.py`); the file is then
//! memory-mapped and every value is read straight from it, a row at a time, so the writer
//! never holds a tensor. Keras stores its datasets contiguous and uncompressed
//! (`h5py.Dataset.chunks` is `None` for every variable of a KerasHub preset, measured), in
//! float32, float16, or bfloat16 (an opaque 2-byte type with the attribute
//! `dtype: bfloat16`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use memmap2::Mmap;
use serde::Deserialize;

use super::LlmError;
use super::quant::{bf16_to_f32, f16_to_f32};

const INDEX_SCRIPT: &str = include_str!("h5_index.py");

/// The element type of a stored dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    Float32,
    Float16,
    Bfloat16,
}

impl Dtype {
    fn bytes(self) -> usize {
        match self {
            Self::Float32 => 4,
            Self::Float16 | Self::Bfloat16 => 2,
        }
    }
}

#[derive(Debug, Deserialize)]
struct IndexEntry {
    name: String,
    shape: Vec<u64>,
    dtype: String,
    layout: String,
    offset: Option<u64>,
}

/// One dataset: where it lies and how to read it.
#[derive(Debug, Clone)]
struct Entry {
    shape: Vec<usize>,
    dtype: Dtype,
    offset: usize,
}

/// A memory-mapped weights file and the datasets in it.
pub struct Weights {
    path: PathBuf,
    map: Mmap,
    entries: BTreeMap<String, Entry>,
    /// Datasets of a type the writer does not read, and why.
    unreadable: BTreeMap<String, String>,
}

/// A dataset of [`Weights`]: its shape and a reader of its values.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub shape: &'a [usize],
    dtype: Dtype,
    bytes: &'a [u8],
}

impl View<'_> {
    /// Elements `base + offsets[k]` (row-major indices) as float32 into `out[k]`; exact for
    /// every stored dtype. One dtype dispatch per call, not per element.
    pub fn gather(&self, base: usize, offsets: &[usize], out: &mut [f32]) {
        let b = self.bytes;
        let pairs = out.iter_mut().zip(offsets);
        match self.dtype {
            Dtype::Float32 => {
                for (o, &i) in pairs {
                    let j = 4 * (base + i);
                    *o = f32::from_le_bytes([b[j], b[j + 1], b[j + 2], b[j + 3]]);
                }
            }
            Dtype::Float16 => {
                for (o, &i) in pairs {
                    let j = 2 * (base + i);
                    *o = f16_to_f32(u16::from_le_bytes([b[j], b[j + 1]]));
                }
            }
            Dtype::Bfloat16 => {
                for (o, &i) in pairs {
                    let j = 2 * (base + i);
                    *o = bf16_to_f32(u16::from_le_bytes([b[j], b[j + 1]]));
                }
            }
        }
    }

    /// Elements `start..start + out.len()` (row-major indices) as float32 into `out`: what
    /// [`View::gather`] reads for consecutive offsets, in a loop that vectorizes.
    pub fn contiguous(&self, start: usize, out: &mut [f32]) {
        let size = self.dtype.bytes();
        let bytes = &self.bytes[size * start..size * (start + out.len())];
        let pairs = out.iter_mut().zip(bytes.chunks_exact(size));
        match self.dtype {
            Dtype::Float32 => {
                for (o, b) in pairs {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            Dtype::Float16 => {
                for (o, b) in pairs {
                    *o = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
                }
            }
            Dtype::Bfloat16 => {
                for (o, b) in pairs {
                    *o = bf16_to_f32(u16::from_le_bytes([b[0], b[1]]));
                }
            }
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Element `i` (row-major) as float32; exact for every stored dtype.
    pub fn at(&self, i: usize) -> f32 {
        let b = self.bytes;
        match self.dtype {
            Dtype::Float32 => {
                f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
            }
            Dtype::Float16 => f16_to_f32(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])),
            Dtype::Bfloat16 => bf16_to_f32(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])),
        }
    }
}

/// Run `script` with `python` (the worker's interpreter) and `args`; its last stdout line as
/// JSON, or why not (the last line it wrote to stderr, where its refusals go).
pub(super) fn script_json<T: serde::de::DeserializeOwned>(
    mut python: Command,
    script: &str,
    args: &[&std::ffi::OsStr],
) -> Result<T, String> {
    let out = python
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .map_err(|e| format!("could not run the worker's Python: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(last.unwrap_or("(no message)").to_string());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| "its answer could not be read".to_string())
}

impl Weights {
    /// Index `path` with `python` (a command for the worker's interpreter) and map it.
    pub fn open(path: &Path, python: Command) -> Result<Self, LlmError> {
        let bad = |message: String| LlmError::Weights {
            path: path.to_path_buf(),
            message,
        };
        if !path.is_file() {
            return Err(bad("the preset has no weights file".into()));
        }
        let index: Vec<IndexEntry> = script_json(python, INDEX_SCRIPT, &[path.as_os_str()])
            .map_err(|e| bad(format!("h5py could not index it: {e}")))?;
        let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        let map =
            crate::fsio::map_readonly(&file).map_err(|e| bad(format!("could not map it: {e}")))?;
        Self::from_index(path, map, index)
    }

    fn from_index(path: &Path, map: Mmap, index: Vec<IndexEntry>) -> Result<Self, LlmError> {
        let bad = |message: String| LlmError::Weights {
            path: path.to_path_buf(),
            message,
        };
        let mut entries = BTreeMap::new();
        let mut unreadable = BTreeMap::new();
        for e in index {
            let dtype = match e.dtype.as_str() {
                "float32" => Dtype::Float32,
                "float16" => Dtype::Float16,
                "bfloat16" => Dtype::Bfloat16,
                // Refused when read: a file may hold other data beside its weights (a LoRA
                // adapter's rank is an int64).
                other => {
                    unreadable.insert(
                        e.name.clone(),
                        format!(
                            "`{}` is stored as `{other}`; the native writer reads float32, float16 and bfloat16",
                            e.name
                        ),
                    );
                    continue;
                }
            };
            let shape: Vec<usize> = e
                .shape
                .iter()
                .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
                .collect();
            let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            let nbytes = count.and_then(|c| c.checked_mul(dtype.bytes()));
            let offset = e.offset.and_then(|o| usize::try_from(o).ok());
            if e.layout != "contiguous" {
                return Err(bad(format!(
                    "`{}` is stored {}; the native writer reads contiguous datasets (as Keras writes them)",
                    e.name, e.layout
                )));
            }
            let (Some(nbytes), Some(offset)) = (nbytes, offset) else {
                if nbytes == Some(0) {
                    continue;
                }
                return Err(bad(format!("`{}` has no data in the file", e.name)));
            };
            if offset.checked_add(nbytes).is_none_or(|end| end > map.len()) {
                return Err(bad(format!(
                    "`{}` lies beyond the end of the file ({} bytes): the file is truncated",
                    e.name,
                    map.len()
                )));
            }
            entries.insert(
                e.name,
                Entry {
                    shape,
                    dtype,
                    offset,
                },
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            map,
            entries,
            unreadable,
        })
    }

    /// The dataset `name`, which must have `rank` dimensions.
    pub fn get(&self, name: &str, rank: usize) -> Result<View<'_>, LlmError> {
        let e = self.entries.get(name).ok_or_else(|| LlmError::Weights {
            path: self.path.clone(),
            message: match self.unreadable.get(name) {
                Some(why) => why.clone(),
                None => format!("the tensor `{name}` the config implies is missing"),
            },
        })?;
        if e.shape.len() != rank {
            return Err(LlmError::Weights {
                path: self.path.clone(),
                message: format!(
                    "`{name}` has shape {:?}, expected {rank} dimensions",
                    e.shape
                ),
            });
        }
        let len = e.shape.iter().product::<usize>() * e.dtype.bytes();
        Ok(View {
            shape: &e.shape,
            dtype: e.dtype,
            bytes: &self.map[e.offset..e.offset + len],
        })
    }

    /// Let go of the resident pages of dataset `name` (read again from the file if needed).
    pub fn release(&self, name: &str) {
        if let Some(e) = self.entries.get(name) {
            let len = e.shape.iter().product::<usize>() * e.dtype.bytes();
            crate::fsio::release_pages(&self.map, e.offset, len);
        }
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file holds `name`.
    pub fn has(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// A file at `path` of `datasets` (name, shape, dtype, bytes) laid end to end, mapped
    /// as [`Weights::open`] maps a preset's: what a test reads without h5py.
    #[cfg(test)]
    pub(super) fn for_test(path: &Path, datasets: &[(&str, &[usize], &str, Vec<u8>)]) -> Self {
        let (mut bytes, mut index) = (Vec::new(), Vec::new());
        for (name, shape, dtype, data) in datasets {
            index.push(IndexEntry {
                name: name.to_string(),
                shape: shape.iter().map(|&d| d as u64).collect(),
                dtype: dtype.to_string(),
                layout: "contiguous".into(),
                offset: Some(bytes.len() as u64),
            });
            bytes.extend_from_slice(data);
        }
        std::fs::write(path, &bytes).expect("test weights");
        let file = std::fs::File::open(path).expect("test weights");
        let map = crate::fsio::map_readonly(&file).expect("mapped");
        Self::from_index(path, map, index).expect("indexed")
    }
}
