//! A KerasHub LoRA adapter (`Backbone.save_lora_weights`) merged into the base weights as
//! they stream: each adapted kernel `W` is written as `W + A·B`, in float32, before it is
//! quantized. `lora_targets.py` (run with the worker's interpreter) says which dataset of
//! the preset each adapter layer changes; the adapter's values are read here, memory-mapped.
//!
//! The scale is 1: KerasHub's `enable_lora(rank)` (which `load_lora_weights` calls) sets
//! `lora_alpha = rank`, and Keras adds `lora_alpha / rank · A·B`. The file stores the rank
//! only. Each element of `A·B` is summed over the rank in order, in float32, with no fused
//! multiply-add, so the merged values are the same on every machine.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use serde::Deserialize;

use super::LlmError;
use super::weights::{Weights, script_json};

const TARGETS_SCRIPT: &str = include_str!("lora_targets.py");

#[derive(Debug, Deserialize)]
struct Targets {
    rank: usize,
    targets: Vec<Target>,
}

#[derive(Debug, Deserialize)]
struct Target {
    layer: usize,
    target: String,
    a: String,
    b: String,
}

/// An adapter and the base datasets it changes.
pub struct Adapter {
    file: Arc<Weights>,
    rank: usize,
    /// Base dataset → (Keras layer index, `A` dataset, `B` dataset).
    targets: BTreeMap<String, (usize, String, String)>,
    /// The base datasets a [`Delta`] was handed out for.
    used: RefCell<BTreeSet<String>>,
}

/// What one adapted kernel adds: `A·B` (`A` shaped as the kernel but its last axis, which is
/// the rank; `B` `[rank, last]`).
#[derive(Clone)]
pub struct Delta {
    file: Arc<Weights>,
    rank: usize,
    a: String,
    b: String,
}

impl Adapter {
    /// Read the adapter at `path` for the preset at `preset`; `python()` gives the worker's
    /// interpreter (one to index the file, one to map its layers).
    pub fn open(
        path: &Path,
        preset: &Path,
        python: &dyn Fn() -> Command,
    ) -> Result<Self, LlmError> {
        let bad = |message: String| LlmError::Weights {
            path: path.to_path_buf(),
            message,
        };
        let t: Targets = script_json(
            python(),
            TARGETS_SCRIPT,
            &[preset.as_os_str(), path.as_os_str()],
        )
        .map_err(|e| {
            bad(format!(
                "the LoRA adapter cannot be applied to the preset `{}`: {e}",
                preset.display()
            ))
        })?;
        if t.rank == 0 {
            return Err(bad("its rank is 0".into()));
        }
        let file = Arc::new(Weights::open(path, python())?);
        let targets = t
            .targets
            .into_iter()
            .map(|x| (x.target, (x.layer, x.a, x.b)))
            .collect();
        Ok(Self {
            file,
            rank: t.rank,
            targets,
            used: RefCell::default(),
        })
    }

    /// What the adapter adds to the base dataset `source` of shape `shape`, if anything;
    /// refused by name when its factors do not fit that shape.
    pub fn delta(&self, source: &str, shape: &[usize]) -> Result<Option<Delta>, LlmError> {
        let Some((layer, a, b)) = self.targets.get(source) else {
            return Ok(None);
        };
        let (Some((&last, lead)), r) = (shape.split_last(), self.rank) else {
            return Err(self.bad(format!("`{source}` is a scalar; LoRA adapts matrices")));
        };
        let want_a: Vec<usize> = lead.iter().copied().chain([r]).collect();
        let got_a = self.file.get(a, want_a.len()).map(|v| v.shape.to_vec());
        let got_b = self.file.get(b, 2).map(|v| v.shape.to_vec());
        if got_a.as_deref().ok() != Some(&want_a[..])
            || got_b.as_deref().ok() != Some(&[r, last][..])
        {
            return Err(self.bad(format!(
                "layer {layer}'s factors are {} and {}, but the base's `{source}` {shape:?} at rank {r} needs {want_a:?} and {:?}",
                describe(got_a),
                describe(got_b),
                [r, last]
            )));
        }
        self.used.borrow_mut().insert(source.to_string());
        Ok(Some(Delta {
            file: Arc::clone(&self.file),
            rank: r,
            a: a.clone(),
            b: b.clone(),
        }))
    }

    /// Refuse an adapter that changes a dataset the writer never read as a matrix.
    pub fn all_used(&self) -> Result<(), LlmError> {
        let used = self.used.borrow();
        let unused: Vec<&String> = self.targets.keys().filter(|k| !used.contains(*k)).collect();
        if unused.is_empty() {
            return Ok(());
        }
        Err(self.bad(format!(
            "it adapts {} which the native writer does not read as a matrix",
            unused
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    fn bad(&self, message: String) -> LlmError {
        LlmError::Weights {
            path: self.path().to_path_buf(),
            message,
        }
    }

    fn path(&self) -> &Path {
        self.file.path()
    }
}

fn describe(shape: Result<Vec<usize>, LlmError>) -> String {
    match shape {
        Ok(s) => format!("{s:?}"),
        Err(_) => "missing".into(),
    }
}

impl Delta {
    /// Add `A·B` to `buf`, the rows of a matrix over a kernel of `shape`: element `(k, c)`
    /// of `buf` (`cols` wide) is the kernel's element at row-major offset
    /// `row_offsets[k] + col_offsets[c]`.
    pub fn add(
        &self,
        shape: &[usize],
        row_offsets: &[usize],
        col_offsets: &[usize],
        buf: &mut [f32],
    ) -> Result<(), LlmError> {
        let last = shape.last().copied().unwrap_or(1);
        let a = self.file.get(&self.a, shape.len())?;
        let b = self.file.get(&self.b, 2)?;
        let b: Vec<f32> = (0..b.len()).map(|i| b.at(i)).collect();
        let cols = col_offsets.len();
        let mut factors = vec![0.0f32; self.rank];
        for (k, &ro) in row_offsets.iter().enumerate() {
            let mut lead = usize::MAX;
            for (c, &co) in col_offsets.iter().enumerate() {
                let (p, j) = ((ro + co) / last, (ro + co) % last);
                if p != lead {
                    lead = p;
                    for (t, f) in factors.iter_mut().enumerate() {
                        *f = a.at(p * self.rank + t);
                    }
                }
                let mut d = 0.0f32;
                for (t, f) in factors.iter().enumerate() {
                    d += f * b[t * last + j];
                }
                buf[k * cols + c] += d;
            }
        }
        Ok(())
    }
}
