//! Semantic rules: what the schema cannot say. Exactly-one-of choices, files that must exist
//! relative to the recipe, options that conflict (quantization mode against raw converter
//! attributes, `sequence_length` against explicit shapes), settings the converter would
//! silently ignore. A variant that passes every rule becomes a [`BuildPlan`].
//!
//! This file holds the rule context (`Cx`: where diagnostics point, how paths resolve) and
//! the plan that puts the sections together; each recipe section has the file of its name,
//! and `multimodal.rs` sizes the inputs of multimodal presets from their own configuration.

mod accuracy;
mod calibration;
mod converter;
mod gates;
mod generation;
mod inputs;
mod model;
mod multimodal;
mod output;
mod parity;
mod quantization;

use std::path::{Component, Path, PathBuf};

use super::load::Spans;
use super::plan::*;
use super::resolve::RenderedVariant;
use super::types::*;
use crate::diag::Diagnostic;

/// Check one rendered, schema-valid variant and build its plan.
///
/// `file_dirs[i]` is the directory of the file registered as `FileId(i)`: a relative path is
/// resolved against the directory of the file it was written in, which differs from the
/// recipe's own for values inherited through `extends:`.
/// The plan when the variant has no errors, and every diagnostic (warnings included, also
/// when the plan is good).
pub fn build_plan(
    rv: &RenderedVariant,
    recipe: &Recipe,
    file_dirs: &[PathBuf],
) -> (Option<BuildPlan>, Vec<Diagnostic>) {
    let mut cx = Cx {
        spans: &rv.spans,
        variant: rv.variant.clone(),
        variant_keys: &rv.variant_keys,
        diags: Vec::new(),
        dir: parent_dir(&rv.recipe_path),
        root: crate::lock::project_root(&parent_dir(&rv.recipe_path)),
        file_dirs,
    };
    let plan = cx.plan(rv, recipe);
    if cx.diags.iter().any(Diagnostic::is_error) {
        (None, cx.diags)
    } else {
        (plan, cx.diags)
    }
}

struct Cx<'a> {
    spans: &'a Spans,
    variant: Option<String>,
    /// Top-level keys the variant sets itself (see [`RenderedVariant::variant_keys`]).
    variant_keys: &'a [String],
    diags: Vec<Diagnostic>,
    /// The recipe file's directory: the default base for paths.
    dir: PathBuf,
    /// The project the recipe belongs to ([`crate::lock::project_root`] of `dir`).
    root: PathBuf,
    file_dirs: &'a [PathBuf],
}

/// The directory containing `path` (`.` for a bare file name).
pub fn parent_of(path: &std::path::Path) -> PathBuf {
    parent_dir(path)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Join and normalise `..`/`.` lexically: output files need not exist yet.
pub fn join_normalized(base: &Path, rel: &str) -> PathBuf {
    let joined = base.join(rel);
    let mut out = PathBuf::new();
    for comp in joined.components() {
        match comp {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    File,
    Dir,
}

impl Cx<'_> {
    fn err(
        &mut self,
        code: &'static str,
        pointer: &str,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let mut d = Diagnostic::error(code, message);
        match self.spans.nearest(pointer) {
            // Something missing from the whole recipe has no line to point at.
            Some(span) if pointer.is_empty() => d = d.in_file(span.value.file),
            Some(span) => d = d.at(span.value),
            None => {}
        }
        self.diags.push(d);
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    /// Like [`Self::err`], but pointing at the key of `pointer` rather than its value.
    fn err_key(
        &mut self,
        code: &'static str,
        pointer: &str,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let mut d = Diagnostic::error(code, message);
        if let Some(span) = self.spans.get(pointer) {
            d = d.at(span.key.unwrap_or(span.value));
        } else if let Some(span) = self.spans.nearest(pointer) {
            d = d.at(span.value);
        }
        self.diags.push(d);
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    fn warn(
        &mut self,
        code: &'static str,
        pointer: &str,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let d = self.err(code, pointer, message);
        d.severity = crate::diag::Severity::Warning;
        d
    }

    /// The one key of an exactly-one-of choice under `base` that is set. None set is
    /// `codes[0]` at the block; several is `codes[1]` at the second key, pointing back at
    /// the first.
    fn exactly_one(
        &mut self,
        base: &str,
        codes: [&'static str; 2],
        choices: &[(&'static str, bool)],
    ) -> Option<&'static str> {
        let what = super::schema::describe_path(base);
        let all = choices
            .iter()
            .map(|(k, _)| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let set: Vec<&'static str> = choices
            .iter()
            .filter_map(|(k, on)| on.then_some(*k))
            .collect();
        match set.as_slice() {
            [] => {
                let d = self.err(codes[0], base, format!("{what} names none of {all}"));
                d.label = Some("needs exactly one".into());
                None
            }
            [one] => Some(one),
            [first, second, ..] => {
                let first_span = self
                    .spans
                    .get(&format!("{base}/{first}"))
                    .and_then(|s| s.key);
                let d = self.err_key(
                    codes[1],
                    &format!("{base}/{second}"),
                    format!("{what} has both `{first}` and `{second}`"),
                );
                d.label = Some("second choice".into());
                if let Some(loc) = first_span {
                    d.related.push((loc, "first choice".into()));
                }
                d.hints.push(format!("keep exactly one of {all}"));
                None
            }
        }
    }

    /// Resolve the path written at `pointer` against the directory of the file it was
    /// written in.
    fn resolve_path(&self, pointer: &str, rel: &str) -> PathBuf {
        join_normalized(self.base_dir(pointer), rel)
    }

    /// The directory relative paths at `pointer` are resolved against: that of the recipe
    /// file the value came from.
    fn base_dir(&self, pointer: &str) -> &Path {
        self.spans
            .nearest(pointer)
            .and_then(|s| self.file_dirs.get(s.value.file.0))
            .unwrap_or(&self.dir)
    }

    /// Resolve a path from the recipe and check it exists as the right kind of thing.
    fn existing(&mut self, pointer: &str, rel: &str, kind: Kind) -> PathBuf {
        let path = self.resolve_path(pointer, rel);
        let ok = match kind {
            Kind::File => path.is_file(),
            Kind::Dir => path.is_dir(),
        };
        if !ok {
            let what = if kind == Kind::File {
                "file"
            } else {
                "directory"
            };
            let message = if path.exists() {
                format!("`{rel}` is not a {what}")
            } else {
                format!("{what} not found: `{rel}`")
            };
            // In the recipe's own terms (the path as written, from the recipe's directory),
            // whatever directory `litert` runs in.
            let looked = if Path::new(rel).is_absolute() {
                format!("looked for `{}`", path.display())
            } else {
                let dir = self.base_dir(pointer).display().to_string();
                let dir = if dir.is_empty() || dir == "." {
                    "./".to_string()
                } else {
                    format!("{}/", dir.trim_end_matches('/'))
                };
                format!("looked for `{rel}` in `{dir}`, the recipe's directory")
            };
            let d = self.err("E0220", pointer, message);
            d.label = Some(looked);
            d.notes.push(format!("resolved: `{}`", path.display()));
        }
        path
    }

    fn plan(&mut self, rv: &RenderedVariant, r: &Recipe) -> Option<BuildPlan> {
        self.version(r);
        let name = self.name(rv, r);
        let model = self.model(r);
        let multimodal = self.multimodal(model.as_ref());
        let (mut inputs, image_size) = self.inputs(r, multimodal.as_ref());
        if let Some(mm) = &multimodal {
            inputs.shapes = self.multimodal_shapes(r, mm, image_size);
        }
        let outputs = self.outputs(r);
        let (qmode, io) = self.quantization(r);
        let flex = r.ops.as_ref().and_then(|o| o.flex).unwrap_or(false);
        let custom = r.ops.as_ref().and_then(|o| o.custom).unwrap_or(false);
        let calibration = self.calibration(r, qmode, image_size);
        let converter = self.converter(r, qmode, io, flex, custom);
        let output = self.output(r);
        let generation = self.generation(r, model.as_ref(), qmode, &converter, output.as_deref());
        let mut parity = self.parity(r, &converter);
        let mut accuracy = self.accuracy(r, &converter, calibration.as_ref(), image_size);
        if generation.is_some() {
            // A prefill/decode artifact is judged by generation parity, not by the
            // forward-pass comparisons.
            parity.enabled = false;
            accuracy = None;
        }
        let gates = self.gates(r, flex, custom);
        let runs_code = model.as_ref().is_some_and(model::model_runs_code)
            || matches!(
                calibration.as_ref().map(|c| &c.source),
                Some(CalibrationSource::Generator { .. })
            )
            || matches!(
                accuracy.as_ref().map(|a| &a.source),
                Some(AccuracySource::Data(CalibrationPlan {
                    source: CalibrationSource::Generator { .. },
                    ..
                }))
            );
        let snapshot = match &r.snapshot {
            Some(s) => self.snapshot_path(s),
            None => {
                let file = match &rv.variant {
                    Some(v) => format!("{name}-{v}.yaml"),
                    None => format!("{name}.yaml"),
                };
                join_normalized(&self.root, &format!("snapshots/{file}"))
            }
        };
        let id = match &rv.variant {
            Some(v) => format!("{name}:{v}"),
            None => name.clone(),
        };
        let root = self.root.clone();
        Some(BuildPlan {
            id,
            name,
            variant: rv.variant.clone(),
            recipe: rv.recipe_path.clone(),
            digest: super::digest::plan_digest(rv, &root),
            root,
            description: r.description.clone(),
            model: model?,
            runs_code,
            inputs,
            outputs,
            quantization: QuantizationPlan {
                mode: qmode,
                io,
                block_size: r.quantization.as_ref().and_then(|q| q.block_size),
                embedding: r.quantization.as_ref().and_then(|q| q.embedding),
            },
            calibration,
            converter,
            parity,
            accuracy,
            gates,
            generation,
            output: output?,
            snapshot,
        })
    }

    fn version(&mut self, r: &Recipe) {
        match r.version {
            None => {
                let d = self.err("E0200", "", "missing `version`");
                d.label = Some("this recipe does not say its format version".into());
                d.hints
                    .push("add `version: 1` at the top of the recipe".into());
            }
            Some(1) => {}
            Some(v) => {
                self.err(
                    "E0201",
                    "/version",
                    format!("unsupported recipe version {v}"),
                )
                .hints
                .push("this litert reads recipe format version 1".into());
            }
        }
    }

    fn name(&mut self, rv: &RenderedVariant, r: &Recipe) -> String {
        if let Some(n) = &r.name {
            return n.clone();
        }
        let stem = super::resolve::default_name(&rv.recipe_path);
        if !super::resolve::is_valid_name(&stem) {
            self.err(
                "E0202",
                "",
                format!("the file name `{stem}` cannot be the recipe's name"),
            )
            .hints
            .push("add `name:` with lower-case letters, digits, `_`, `-` or `.`".into());
        }
        stem
    }
}

/// Whether `path` lies under `root`, both lexically and after following the symlinks of
/// the deepest ancestor of `path` that exists.
fn inside(path: &Path, root: &Path) -> bool {
    let abs = |p: &Path| {
        let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        join_normalized(&p, ".")
    };
    let (path, root) = (abs(path), abs(root));
    if !path.starts_with(&root) || path == root {
        return false;
    }
    let Ok(real_root) = root.canonicalize() else {
        return true;
    };
    path.ancestors()
        .find_map(|a| a.canonicalize().ok())
        .is_none_or(|real| real.starts_with(&real_root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise_lexically() {
        assert_eq!(
            join_normalized(Path::new("recipes"), "../models/a.keras"),
            PathBuf::from("models/a.keras")
        );
        assert_eq!(
            join_normalized(Path::new("."), "build/x.tflite"),
            PathBuf::from("build/x.tflite")
        );
        assert_eq!(
            join_normalized(Path::new("a"), "../../x"),
            PathBuf::from("../x")
        );
    }
}
