//! Semantic rules: what the schema cannot say. Exactly-one-of choices, files that must exist
//! relative to the recipe, options that conflict (quantization mode against raw converter
//! attributes, `sequence_length` against explicit shapes), settings the converter would
//! silently ignore. A variant that passes every rule becomes a [`BuildPlan`].

use std::collections::BTreeMap;
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

/// An input whose shape the recipe spells out: (pointer of the shape, name, shape, dtype).
type ExplicitShape = (String, String, Vec<Option<u32>>, Option<Dtype>);

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
        let (inputs, image_size) = self.inputs(r);
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
        let runs_code = model.as_ref().is_some_and(model_runs_code)
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
            digest: plan_digest(rv, &root),
            root,
            description: r.description.clone(),
            model: model?,
            runs_code,
            inputs,
            quantization: QuantizationPlan { mode: qmode, io },
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

    fn model(&mut self, r: &Recipe) -> Option<ModelPlan> {
        let Some(m) = &r.model else {
            let d = self.err(
                "E0210",
                "",
                "missing `model`: say where the model comes from",
            );
            d.hints
                .push("e.g. `model: {keras: models/classifier.keras}`".into());
            return None;
        };
        self.exactly_one(
            "/model",
            ["E0211", "E0212"],
            &[
                ("keras", m.keras.is_some()),
                ("h5", m.h5.is_some()),
                ("saved_model", m.saved_model.is_some()),
                ("weights", m.weights.is_some()),
                ("preset", m.preset.is_some()),
                ("factory", m.factory.is_some()),
            ],
        )?;
        let customs = self.custom_objects(m);
        if let Some(p) = &m.keras {
            if !p.ends_with(".keras") {
                self.wrong_extension("/model/keras", p, ".keras");
            }
            return Some(ModelPlan::Keras {
                path: self.existing("/model/keras", p, Kind::File),
                custom_objects: customs,
            });
        }
        if let Some(p) = &m.h5 {
            if !(p.ends_with(".h5") || p.ends_with(".hdf5")) {
                self.wrong_extension("/model/h5", p, ".h5");
            }
            return Some(ModelPlan::H5 {
                path: self.existing("/model/h5", p, Kind::File),
                custom_objects: customs,
            });
        }
        if let Some(p) = &m.saved_model {
            let path = self.existing("/model/saved_model", p, Kind::Dir);
            if path.is_dir() && !path.join("saved_model.pb").is_file() {
                let d = self.err(
                    "E0222",
                    "/model/saved_model",
                    format!("`{p}` is not a SavedModel directory"),
                );
                d.label = Some("no `saved_model.pb` inside".into());
            }
            return Some(ModelPlan::SavedModel { path });
        }
        if let Some(w) = &m.weights {
            let path = self.existing("/model/weights/file", &w.file, Kind::File);
            let a = &w.architecture;
            let which = self.exactly_one(
                "/model/weights/architecture",
                ["E0213", "E0213"],
                &[
                    ("config", a.config.is_some()),
                    ("factory", a.factory.is_some()),
                ],
            );
            let arch = match (which, &a.config, &a.factory) {
                (Some(_), Some(c), None) => Some(ArchitecturePlan::Config {
                    path: self.existing("/model/weights/architecture/config", c, Kind::File),
                }),
                (Some(_), None, Some(f)) => self
                    .callable("/model/weights/architecture/factory", f)
                    .map(|factory| ArchitecturePlan::Factory { factory }),
                _ => None,
            };
            return arch.map(|architecture| ModelPlan::Weights {
                path,
                architecture,
                custom_objects: customs,
            });
        }
        if let Some(p) = &m.preset {
            // A name that looks like a path is a local preset directory: `--set` can then
            // point a recipe written for a hub preset at a local copy.
            let local_name = p.name.as_ref().filter(|n| looks_like_path(n));
            let which = self.exactly_one(
                "/model/preset",
                ["E0213", "E0213"],
                &[("name", p.name.is_some()), ("path", p.path.is_some())],
            );
            let preset = match (which, &p.name, &p.path) {
                (Some(_), Some(_), None) if local_name.is_some() => {
                    let dir = local_name.cloned().unwrap_or_default();
                    Some(PresetRef::Path(self.preset_dir("/model/preset/name", &dir)))
                }
                (Some(_), Some(n), None) => Some(PresetRef::Name(n.clone())),
                (Some(_), None, Some(dir)) => {
                    Some(PresetRef::Path(self.preset_dir("/model/preset/path", dir)))
                }
                _ => None,
            };
            let var = p.name.as_ref().and_then(|n| {
                r.vars
                    .iter()
                    .flatten()
                    .find_map(|(k, v)| (v.as_str() == Some(n.as_str())).then(|| k.clone()))
            });
            return preset.map(|preset| ModelPlan::Preset {
                preset,
                task: p.task.clone(),
                args: p.args.clone().unwrap_or_default(),
                var,
            });
        }
        if let Some(f) = &m.factory {
            return self
                .callable("/model/factory", f)
                .map(|factory| ModelPlan::Factory { factory });
        }
        None
    }

    /// A local preset directory: it must exist and hold the `config.json` that
    /// `save_to_preset` writes.
    fn preset_dir(&mut self, pointer: &str, dir: &str) -> PathBuf {
        let before = self.diags.len();
        let path = self.existing(pointer, dir, Kind::Dir);
        if pointer.ends_with("/name")
            && let Some(d) = self.diags.get_mut(before)
        {
            d.hints.push(
                "a preset `name` containing `/` or starting with `.` is a local preset directory; hub presets are plain names such as `gemma_2b_en`"
                    .into(),
            );
        }
        if path.is_dir() && !path.join("config.json").is_file() {
            let d = self.err(
                "E0223",
                pointer,
                format!("`{dir}` is not a KerasHub preset directory"),
            );
            d.label = Some("no `config.json` inside".into());
            d.hints
                .push("make one with `task.save_to_preset(dir)`".into());
        }
        path
    }

    fn wrong_extension(&mut self, pointer: &str, path: &str, expected: &str) {
        let key = if path.ends_with(".h5") || path.ends_with(".hdf5") {
            Some("h5")
        } else if path.ends_with(".keras") {
            Some("keras")
        } else if !path.contains('.') || path.ends_with('/') {
            Some("saved_model")
        } else {
            None
        };
        let d = self.err(
            "E0221",
            pointer,
            format!("`{path}` does not end in `{expected}`"),
        );
        d.label = Some(format!("expected a `{expected}` file"));
        if let Some(k) = key {
            d.hints
                .push(format!("for this file use `model: {{{k}: {path}}}`"));
        }
    }

    fn custom_objects(&mut self, m: &ModelSource) -> Vec<CallablePlan> {
        let mut out = Vec::new();
        for (i, spec) in m.custom_objects.iter().flatten().enumerate() {
            let f = Factory {
                callable: spec.clone(),
                args: None,
            };
            if let Some(c) = self.callable(&format!("/model/custom_objects/{i}"), &f) {
                out.push(c);
            }
        }
        out
    }

    fn callable(&mut self, pointer: &str, f: &Factory) -> Option<CallablePlan> {
        let callable_ptr = if pointer.contains("custom_objects") {
            pointer.to_string()
        } else {
            format!("{pointer}/callable")
        };
        let Some((file, function)) = f.callable.rsplit_once(':') else {
            let d = self.err(
                "E0224",
                &callable_ptr,
                format!("`{}` is not `file.py:function`", f.callable),
            );
            d.label = Some("expected `path/to/file.py:function`".into());
            return None;
        };
        if !file.ends_with(".py") {
            let d = self.err(
                "E0224",
                &callable_ptr,
                format!("`{}` is not `file.py:function`", f.callable),
            );
            d.label = Some("expected `path/to/file.py:function`".into());
            return None;
        }
        let path = self.existing(&callable_ptr, file, Kind::File);
        Some(CallablePlan {
            file: path,
            function: function.to_string(),
            args: f.args.clone().unwrap_or_default(),
        })
    }

    fn inputs(&mut self, r: &Recipe) -> (InputsPlan, Option<[u32; 2]>) {
        let image_size = r.image_size.as_ref().map(|s| match s {
            ImageSize::Square(n) => [*n, *n],
            ImageSize::HeightWidth(v) => [
                v.first().copied().unwrap_or(1),
                v.get(1).copied().unwrap_or(1),
            ],
        });
        if r.inputs.is_some() && r.input_signature.is_some() {
            let other = self.spans.get("/inputs").and_then(|s| s.key);
            let d = self.err_key(
                "E0240",
                "/input_signature",
                "`input_signature` and `inputs` cannot both be given",
            );
            d.label = Some("the whole signature".into());
            if let Some(loc) = other {
                d.related.push((loc, "per-input overrides".into()));
            }
            d.hints.push(
                "put the overrides into `input_signature`, or drop it and keep `inputs`".into(),
            );
        }
        // (pointer of the shape, input name, shape, dtype) of every explicitly shaped input.
        let mut explicit: Vec<ExplicitShape> = Vec::new();
        let signature = r.input_signature.as_ref().map(|sig| self.signature(sig));
        if let Some(sig) = &signature {
            let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
            for (i, spec) in sig.iter().enumerate() {
                if let Some(first) = seen.insert(spec.name.as_str(), i) {
                    let prev = self
                        .spans
                        .get(&format!("/input_signature/{first}/name"))
                        .map(|s| s.value);
                    let d = self.err(
                        "E0241",
                        &format!("/input_signature/{i}/name"),
                        format!("input `{}` is named twice", spec.name),
                    );
                    d.label = Some("second input with this name".into());
                    if let Some(loc) = prev {
                        d.related.push((loc, "first here".into()));
                    }
                }
                let at = match &r.input_signature {
                    Some(InputSignature::Mapping(_)) => super::load::escape_segment(&spec.name),
                    _ => i.to_string(),
                };
                explicit.push((
                    format!("/input_signature/{at}/shape"),
                    spec.name.clone(),
                    spec.shape.clone(),
                    Some(spec.dtype),
                ));
            }
        }
        for (name, o) in r.inputs.iter().flatten() {
            if let Some(shape) = &o.shape {
                let ptr = format!("/inputs/{}/shape", super::load::escape_segment(name));
                explicit.push((ptr, name.clone(), shape.clone(), o.dtype));
            }
        }
        for (ptr, name, shape, dtype) in &explicit {
            if let (Some(b), Some(Some(first))) = (r.batch_size, shape.first())
                && *first != b
            {
                let d = self.err(
                    "E0243",
                    ptr,
                    format!("input `{name}` has batch dimension {first}, but `batch_size` is {b}"),
                );
                d.label = Some("conflicts with `batch_size`".into());
                d.hints
                    .push("drop one of the two, or make them agree".into());
            }
            if let (Some(len), Some(Some(dim))) = (r.sequence_length, shape.get(1))
                && dtype.is_some_and(Dtype::is_integer)
                && shape.len() == 2
                && *dim != len
            {
                let d = self.err(
                    "E0242",
                    ptr,
                    format!("input `{name}` has length {dim}, but `sequence_length` is {len}"),
                );
                d.label = Some("conflicts with `sequence_length`".into());
                d.hints
                    .push("drop one of the two, or make them agree".into());
            }
            if let Some([h, w]) = image_size
                && shape.len() == 4
                && let (Some(Some(sh)), Some(Some(sw))) = (shape.get(1), shape.get(2))
                && (*sh, *sw) != (h, w)
            {
                let d = self.err(
                    "E0244",
                    ptr,
                    format!("input `{name}` is {sh}x{sw}, but `image_size` is {h}x{w}"),
                );
                d.label = Some("conflicts with `image_size`".into());
            }
        }
        let plan = InputsPlan {
            signature,
            overrides: r.inputs.clone().unwrap_or_default(),
            batch_size: r.batch_size,
            sequence_length: r.sequence_length,
            image_size,
        };
        (plan, image_size)
    }

    fn quantization(&mut self, r: &Recipe) -> (Option<QuantizationMode>, QuantizedIo) {
        let Some(q) = &r.quantization else {
            // Without a typed mode, raw quantization attributes (if any) decide; with
            // neither, nothing is quantized.
            let raw = r.litert_kwargs.as_ref().is_some_and(|k| {
                k.optimizations.is_some()
                    || k.inference_input_type.is_some()
                    || k.inference_output_type.is_some()
                    || k.target_spec
                        .as_ref()
                        .is_some_and(|t| t.supported_types.is_some() || t.supported_ops.is_some())
            });
            return (
                if raw {
                    None
                } else {
                    Some(QuantizationMode::None)
                },
                QuantizedIo::Float32,
            );
        };
        let mode = q.mode.unwrap_or(QuantizationMode::None);
        let io = q.io.unwrap_or(QuantizedIo::Float32);
        let allowed: &[QuantizedIo] = match mode {
            QuantizationMode::FullInt8 => {
                &[QuantizedIo::Float32, QuantizedIo::Int8, QuantizedIo::Uint8]
            }
            QuantizationMode::Int16x8 => &[QuantizedIo::Float32, QuantizedIo::Int16],
            _ => &[QuantizedIo::Float32],
        };
        if q.io.is_some() && !allowed.contains(&io) {
            let choices = allowed
                .iter()
                .map(|a| format!("`{}`", io_name(*a)))
                .collect::<Vec<_>>()
                .join(", ");
            let d = self.err(
                "E0252",
                "/quantization/io",
                format!(
                    "`io: {}` does not apply to mode `{}`",
                    io_name(io),
                    mode.as_str()
                ),
            );
            d.label = Some(format!("mode `{}` allows {choices}", mode.as_str()));
            if matches!(io, QuantizedIo::Int8 | QuantizedIo::Uint8) {
                d.hints
                    .push("integer inputs and outputs need `mode: full_int8`".into());
            }
        }
        (Some(mode), io)
    }

    fn calibration(
        &mut self,
        r: &Recipe,
        mode: Option<QuantizationMode>,
        image_size: Option<[u32; 2]>,
    ) -> Option<CalibrationPlan> {
        let needs = mode.is_some_and(QuantizationMode::needs_calibration);
        let kwargs_calibrate = mode.is_none()
            && r.litert_kwargs
                .as_ref()
                .and_then(|k| k.optimizations.as_ref())
                .is_some_and(|o| !o.is_empty());
        let Some(c) = &r.calibration else {
            if let Some(m) = mode.filter(|m| m.needs_calibration()) {
                let d = self.err(
                    "E0250",
                    "/quantization/mode",
                    format!("mode `{}` needs calibration data", m.as_str()),
                );
                d.label = Some("calibrates activation ranges on representative samples".into());
                d.hints.push(
                    "add `calibration:` with `npz`, `npy`, `images`, `prompts` or `generator`"
                        .into(),
                );
            }
            let int8_ops = r
                .litert_kwargs
                .as_ref()
                .and_then(|k| k.target_spec.as_ref())
                .and_then(|t| t.supported_ops.as_ref())
                .is_some_and(|ops| {
                    ops.contains(&OpsSet::TfliteBuiltinsInt8) || ops.contains(&OpsSet::Int16x8)
                });
            if mode.is_none() && int8_ops {
                let d = self.err(
                    "E0263",
                    "/litert_kwargs/target_spec/supported_ops",
                    "integer-only ops need calibration data",
                );
                d.label = Some("full integer quantization".into());
                d.hints
                    .push("add `calibration:`, or use `quantization: {mode: full_int8}`".into());
            }
            return None;
        };
        if !needs && !kwargs_calibrate {
            self.calibration_ignored(r, mode);
        }
        let source = self.data_source(r, c, image_size, "/calibration");
        source.map(|source| CalibrationPlan {
            source,
            samples: c.samples.unwrap_or(100),
            seed: c.seed.unwrap_or(0),
            shuffle: c.shuffle.unwrap_or(true),
        })
    }

    /// The one data source of a `calibration` (or `accuracy.data`) block at `base`.
    fn data_source(
        &mut self,
        r: &Recipe,
        c: &Calibration,
        image_size: Option<[u32; 2]>,
        base: &str,
    ) -> Option<CalibrationSource> {
        self.exactly_one(
            base,
            ["E0290", "E0290"],
            &[
                ("npz", c.npz.is_some()),
                ("npy", c.npy.is_some()),
                ("images", c.images.is_some()),
                ("prompts", c.prompts.is_some()),
                ("generator", c.generator.is_some()),
            ],
        )?;
        self.calibration_source(r, c, image_size, base)
    }

    fn calibration_source(
        &mut self,
        r: &Recipe,
        c: &Calibration,
        image_size: Option<[u32; 2]>,
        base: &str,
    ) -> Option<CalibrationSource> {
        if let Some(p) = &c.npz {
            if !p.ends_with(".npz") {
                let d = self.err(
                    "E0221",
                    &format!("{base}/npz"),
                    format!("`{p}` does not end in `.npz`"),
                );
                d.hints
                    .push("for one `.npy` file per input use `npy: {input_name: file.npy}`".into());
            }
            return Some(CalibrationSource::Npz {
                path: self.existing(&format!("{base}/npz"), p, Kind::File),
            });
        }
        if let Some(files) = &c.npy {
            let mut out = BTreeMap::new();
            for (input, file) in files {
                let ptr = format!("{base}/npy/{}", super::load::escape_segment(input));
                out.insert(input.clone(), self.existing(&ptr, file, Kind::File));
            }
            return Some(CalibrationSource::Npy { files: out });
        }
        if let Some(img) = &c.images {
            let dir = self.existing(&format!("{base}/images/dir"), &img.dir, Kind::Dir);
            let size = match (&img.size, image_size) {
                (Some(ImageSize::Square(n)), _) => Some([*n, *n]),
                (Some(ImageSize::HeightWidth(v)), _) => Some([
                    v.first().copied().unwrap_or(1),
                    v.get(1).copied().unwrap_or(1),
                ]),
                (None, Some(s)) => Some(s),
                (None, None) => {
                    let d = self.err(
                        "E0291",
                        &format!("{base}/images"),
                        "image calibration needs a size",
                    );
                    d.hints.push(
                        "set `image_size` on the recipe, or `size` under `calibration.images`"
                            .into(),
                    );
                    None
                }
            };
            for (key, v) in [("mean", &img.mean), ("std", &img.std)] {
                if let Some(v) = v
                    && v.len() != 1
                    && v.len() != 3
                {
                    let d = self.err(
                        "E0293",
                        &format!("{base}/images/{key}"),
                        format!("`{key}` has {} values", v.len()),
                    );
                    d.label = Some("give 1 value, or 3 (one per channel)".into());
                }
            }
            if img.std.iter().flatten().any(|s| *s == 0.0) {
                self.err("E0293", &format!("{base}/images/std"), "`std` contains 0")
                    .label = Some("would divide by zero".into());
            }
            return size.map(|size| CalibrationSource::Images {
                dir,
                input: img.input.clone(),
                size,
                scale: img.scale.unwrap_or(1.0),
                mean: img.mean.clone().unwrap_or_default(),
                std: img.std.clone().unwrap_or_default(),
                channel_order: img.channel_order.unwrap_or(ChannelOrder::Rgb),
            });
        }
        if let Some(p) = &c.prompts {
            let is_preset = r.model.as_ref().is_some_and(|m| m.preset.is_some());
            if !is_preset {
                let d = self.err(
                    "E0292",
                    &format!("{base}/prompts"),
                    "prompt calibration needs a KerasHub preset model",
                );
                d.label = Some("prompts are tokenized by the preset's preprocessor".into());
                d.hints
                    .push("use `npz`/`npy` token arrays for other models".into());
            }
            if r.sequence_length.is_none() {
                let d = self.err(
                    "E0292",
                    &format!("{base}/prompts"),
                    "prompt calibration needs `sequence_length`",
                );
                d.label = Some("prompts are padded or truncated to it".into());
                d.hints.push("set `sequence_length` on the recipe".into());
            }
            return Some(CalibrationSource::Prompts {
                path: self.existing(&format!("{base}/prompts/file"), &p.file, Kind::File),
            });
        }
        if let Some(g) = &c.generator {
            return self
                .callable(&format!("{base}/generator"), g)
                .map(|generator| CalibrationSource::Generator { generator });
        }
        None
    }

    fn converter(
        &mut self,
        r: &Recipe,
        mode: Option<QuantizationMode>,
        io: QuantizedIo,
        flex: bool,
        custom: bool,
    ) -> ConverterSettings {
        let base_mode = mode.unwrap_or(QuantizationMode::None);
        let mut settings = ConverterSettings::for_mode(base_mode, io, flex, custom);
        let Some(kw) = &r.litert_kwargs else {
            return settings;
        };
        if let Some(m) = mode.filter(|_| r.quantization.is_some()) {
            // With a typed mode, raw quantization attributes may only repeat what it says.
            let owned = &settings;
            let mut conflicts: Vec<(&str, String)> = Vec::new();
            if kw
                .optimizations
                .as_ref()
                .is_some_and(|o| *o != owned.optimizations)
            {
                conflicts.push(("/litert_kwargs/optimizations", "optimizations".into()));
            }
            if let Some(ts) = &kw.target_spec {
                if ts
                    .supported_types
                    .as_ref()
                    .is_some_and(|t| *t != owned.supported_types)
                {
                    conflicts.push((
                        "/litert_kwargs/target_spec/supported_types",
                        "target_spec.supported_types".into(),
                    ));
                }
                if ts
                    .supported_ops
                    .as_ref()
                    .is_some_and(|o| *o != owned.supported_ops)
                {
                    conflicts.push((
                        "/litert_kwargs/target_spec/supported_ops",
                        "target_spec.supported_ops".into(),
                    ));
                }
            }
            for (ptr, key, value) in [
                (
                    "/litert_kwargs/inference_input_type",
                    "inference_input_type",
                    kw.inference_input_type,
                ),
                (
                    "/litert_kwargs/inference_output_type",
                    "inference_output_type",
                    kw.inference_output_type,
                ),
            ] {
                if value.is_some_and(|v| {
                    Some(v) != owned.inference_input_type
                        && !(v == QuantizedIo::Float32 && owned.inference_input_type.is_none())
                }) {
                    conflicts.push((ptr, key.into()));
                }
            }
            let mode_span = self
                .spans
                .get("/quantization/mode")
                .or_else(|| self.spans.get("/quantization"))
                .map(|s| s.value);
            for (ptr, key) in conflicts {
                let d = self.err(
                    "E0260",
                    ptr,
                    format!(
                        "`litert_kwargs.{key}` conflicts with `quantization.mode: {}`",
                        m.as_str()
                    ),
                );
                d.label = Some("differs from what the mode sets".into());
                if let Some(loc) = mode_span {
                    d.related.push((loc, "the mode sets this".into()));
                }
                d.hints.push(format!("remove `{key}` (run `litert plan` to see the settings the mode maps to), or remove `quantization` and set every converter attribute yourself"));
            }
        } else {
            if kw.optimizations.as_ref().is_some_and(|o| {
                o.iter()
                    .any(|x| matches!(x, Optimize::OptimizeForSize | Optimize::OptimizeForLatency))
            }) {
                let d = self.warn("W0267", "/litert_kwargs/optimizations", "`OPTIMIZE_FOR_SIZE` and `OPTIMIZE_FOR_LATENCY` are deprecated aliases of `DEFAULT`");
                d.hints
                    .push("write `DEFAULT`, or use `quantization: {mode: dynamic_range}`".into());
            }
            let optimizing = kw.optimizations.as_ref().is_some_and(|o| !o.is_empty());
            let integer_io = [kw.inference_input_type, kw.inference_output_type]
                .into_iter()
                .flatten()
                .any(|t| t != QuantizedIo::Float32);
            if integer_io && (!optimizing || r.calibration.is_none()) {
                let ptr = if kw
                    .inference_input_type
                    .is_some_and(|t| t != QuantizedIo::Float32)
                {
                    "/litert_kwargs/inference_input_type"
                } else {
                    "/litert_kwargs/inference_output_type"
                };
                let d = self.err(
                    "E0264",
                    ptr,
                    "integer inputs/outputs need full integer quantization",
                );
                d.label = Some("needs `optimizations` and calibration data".into());
                d.hints.push(
                    "use `quantization: {mode: full_int8, io: int8}` with `calibration:`".into(),
                );
            }
        }
        let ops = kw
            .target_spec
            .as_ref()
            .and_then(|t| t.supported_ops.as_ref());
        if ops.is_some_and(|o| o.contains(&OpsSet::SelectTfOps)) && !flex {
            let d = self.err(
                "E0265",
                "/litert_kwargs/target_spec/supported_ops",
                "`SELECT_TF_OPS` (Flex) is not allowed by the op policy",
            );
            d.label = Some("the plain LiteRT runtime cannot run Flex ops".into());
            d.hints.push(
                "opt in with `ops: {flex: true}` (which also adds `SELECT_TF_OPS` for you)".into(),
            );
        }
        if kw.allow_custom_ops == Some(true) && !custom {
            let d = self.err(
                "E0266",
                "/litert_kwargs/allow_custom_ops",
                "custom ops are not allowed by the op policy",
            );
            d.label = Some("the app would have to register these kernels".into());
            d.hints.push("opt in with `ops: {custom: true}`".into());
        }
        settings.apply_kwargs(kw);
        if r.quantization.is_none() {
            settings.representative_dataset =
                r.calibration.is_some() && !settings.optimizations.is_empty();
        }
        settings
    }

    fn parity(&mut self, r: &Recipe, converter: &ConverterSettings) -> ParityPlan {
        let p = r.parity.clone().unwrap_or_default();
        let (default, why) = TolerancePlan::default_with_reason(converter);
        let tolerance_from = if p.tolerance.as_ref().is_some_and(|t| t.contains_key("*")) {
            "the recipe's `parity.tolerance`".to_string()
        } else {
            why.to_string()
        };
        let mut tolerance = BTreeMap::from([("*".to_string(), default)]);
        for (name, t) in p.tolerance.iter().flatten() {
            let base = tolerance.get("*").copied().unwrap_or(default);
            tolerance.insert(
                name.clone(),
                TolerancePlan {
                    atol: t.atol.unwrap_or(base.atol),
                    rtol: t.rtol.unwrap_or(base.rtol),
                },
            );
        }
        ParityPlan {
            enabled: p.enabled.unwrap_or(true),
            samples: p.samples.unwrap_or(8),
            seed: p.seed.unwrap_or(0),
            tolerance,
            tolerance_from,
        }
    }

    fn accuracy(
        &mut self,
        r: &Recipe,
        converter: &ConverterSettings,
        calibration: Option<&CalibrationPlan>,
        image_size: Option<[u32; 2]>,
    ) -> Option<AccuracyPlan> {
        let quantized =
            !converter.optimizations.is_empty() || !converter.supported_types.is_empty();
        let a = r.accuracy.clone().unwrap_or_default();
        let gates = AccuracyGates {
            min_cosine_similarity: a.min_cosine_similarity,
            max_abs_error: a.max_abs_error,
            max_mean_abs_error: a.max_mean_abs_error,
            min_top1_agreement: a.min_top1_agreement,
            max_accuracy_drop: a.max_accuracy_drop,
        };
        let any_gate = gates != AccuracyGates::default();
        let enabled = a.enabled.unwrap_or(quantized || r.accuracy.is_some());
        if !enabled {
            if any_gate || a.data.is_some() || a.labels.is_some() {
                let d = self.err_key(
                    "E0296",
                    "/accuracy/enabled",
                    "accuracy is off, so its data and gates would be ignored",
                );
                d.hints
                    .push("remove `enabled: false`, or the rest of `accuracy`".into());
            }
            return None;
        }
        let data = a.data.as_ref().and_then(|c| {
            self.data_source(r, c, image_size, "/accuracy/data")
                .map(|source| CalibrationPlan {
                    source,
                    samples: c.samples.unwrap_or(100),
                    seed: c.seed.unwrap_or(0),
                    shuffle: c.shuffle.unwrap_or(true),
                })
        });
        if let Some(labels) = &a.labels {
            let keyed = matches!(
                data.as_ref().map(|d| &d.source),
                Some(CalibrationSource::Npz { .. } | CalibrationSource::Npy { .. })
            );
            if a.data.is_none() || (data.is_some() && !keyed) {
                let d = self.err(
                    "E0294",
                    "/accuracy/labels",
                    format!("labels `{labels}` need `accuracy.data` as `npz` or `npy`"),
                );
                d.label = Some("labels are read from the held-out data".into());
                d.hints.push(
                    "add `data: {npz: held_out.npz}` with an array of that name next to the inputs"
                        .into(),
                );
            }
            if let Some(CalibrationSource::Npy { files }) = data.as_ref().map(|d| &d.source)
                && !files.contains_key(labels)
            {
                let d = self.err(
                    "E0294",
                    "/accuracy/labels",
                    format!("`accuracy.data.npy` has no entry `{labels}`"),
                );
                d.hints.push(format!(
                    "add `{labels}: labels.npy` under `accuracy.data.npy`"
                ));
            }
        }
        if a.max_accuracy_drop.is_some() && a.labels.is_none() {
            let d = self.err_key(
                "E0295",
                "/accuracy/max_accuracy_drop",
                "`max_accuracy_drop` needs `labels`",
            );
            d.label = Some("accuracy is measured against labels".into());
            d.hints.push(
                "name the label array with `labels:`, or gate on `min_top1_agreement` instead"
                    .into(),
            );
        }
        // Random inputs say little about accuracy, so as many as parity uses; held-out
        // calibration data is real, so up to the calibration default.
        let samples = r.parity.as_ref().and_then(|p| p.samples).unwrap_or(8);
        let seed = r.parity.as_ref().and_then(|p| p.seed).unwrap_or(0);
        let source = match (data, calibration) {
            (Some(d), _) => AccuracySource::Data(d),
            (None, _) if a.data.is_some() => return None,
            (None, Some(c)) => AccuracySource::HeldOut {
                samples: 100,
                seed: c.seed,
            },
            (None, None) => AccuracySource::Random { samples, seed },
        };
        Some(AccuracyPlan {
            source,
            labels: a.labels.clone(),
            gates,
        })
    }

    fn gates(&mut self, r: &Recipe, flex: bool, custom: bool) -> GatesPlan {
        let g = r.gates.clone().unwrap_or_default();
        if g.no_flex == Some(true) && flex {
            let d = self.err(
                "E0281",
                "/gates/no_flex",
                "`gates.no_flex` forbids what `ops.flex` allows",
            );
            d.hints.push("drop one of the two".into());
        }
        if g.no_custom_ops == Some(true) && custom {
            let d = self.err(
                "E0281",
                "/gates/no_custom_ops",
                "`gates.no_custom_ops` forbids what `ops.custom` allows",
            );
            d.hints.push("drop one of the two".into());
        }
        let max_size_bytes = match &g.max_size {
            None => None,
            Some(ByteSize::Bytes(b)) => Some(*b),
            Some(ByteSize::Text(t)) => match crate::units::parse_byte_size(t) {
                Some(b) => Some(b),
                None => {
                    let d = self.err(
                        "E0280",
                        "/gates/max_size",
                        format!("cannot read `{t}` as a size"),
                    );
                    d.hints
                        .push("write e.g. `4 MiB`, `500 kB` or a number of bytes".into());
                    None
                }
            },
        };
        GatesPlan {
            no_flex: g.no_flex.unwrap_or(!flex),
            no_custom_ops: g.no_custom_ops.unwrap_or(!custom),
            max_size_bytes,
            target_runtime: g.target_runtime.clone(),
            verify_quantization: g.verify_quantization.unwrap_or(true),
        }
    }

    /// The generation block: only for KerasHub causal LMs of a supported family, with
    /// prefill lengths that fit the cache, a capacity the model can embed, and without the
    /// keys that shape a forward-pass export.
    fn generation(
        &mut self,
        r: &Recipe,
        model: Option<&ModelPlan>,
        qmode: Option<QuantizationMode>,
        converter: &ConverterSettings,
        output: Option<&Path>,
    ) -> Option<GenerationPlan> {
        let g = r.generation.as_ref()?;
        let before = self.diags.iter().filter(|d| d.is_error()).count();
        let capacity = g.capacity.unwrap_or(256);
        match model {
            Some(ModelPlan::Preset { task, preset, .. }) => {
                if !task.ends_with("CausalLM") {
                    let d = self.err(
                        "E0310",
                        "/model/preset/task",
                        format!("generation needs a causal LM, but the task is `{task}`"),
                    );
                    d.label = Some("not a causal LM".into());
                    d.hints.push(
                        "use `task: CausalLM` (or a class such as `GemmaCausalLM`), or remove `generation`".into(),
                    );
                }
                if let PresetRef::Path(dir) = preset {
                    self.generation_backbone(dir, capacity);
                }
            }
            Some(_) => {
                let d = self.err_key(
                    "E0310",
                    "/generation",
                    "generation needs a KerasHub causal LM preset (`model.preset` with `task: CausalLM`)",
                );
                d.label = Some("the model is not a KerasHub preset".into());
            }
            None => {}
        }
        for key in [
            "sequence_length",
            "inputs",
            "input_signature",
            "image_size",
            "calibration",
            "accuracy",
            "parity",
        ] {
            let set = match key {
                "sequence_length" => r.sequence_length.is_some(),
                "inputs" => r.inputs.is_some(),
                "input_signature" => r.input_signature.is_some(),
                "image_size" => r.image_size.is_some(),
                "calibration" => r.calibration.is_some(),
                "accuracy" => r.accuracy.is_some(),
                _ => r.parity.is_some(),
            };
            if set {
                let hint = match key {
                    "sequence_length" | "inputs" | "input_signature" => {
                        "the signatures are `generation.prefill` lengths and `decode`, over `generation.capacity`"
                    }
                    "accuracy" | "parity" => {
                        "a generation export is checked by `generation.check` (token ids, per-step logits, top-1 agreement)"
                    }
                    _ => "remove it",
                };
                let d = self.err_key(
                    "E0315",
                    &format!("/{key}"),
                    format!("`{key}` does not apply to a generation export"),
                );
                d.label = Some("conflicts with `generation`".into());
                d.hints.push(hint.into());
            }
        }
        if let Some(mode) = qmode
            && !matches!(
                mode,
                QuantizationMode::None | QuantizationMode::DynamicRange | QuantizationMode::Float16
            )
        {
            let d = self.err(
                "E0314",
                "/quantization/mode",
                format!(
                    "`{}` is not available for generation exports",
                    mode.as_str()
                ),
            );
            d.label = Some("the KV cache and mask stay float".into());
            d.hints
                .push("use `none`, `dynamic_range` (int8 weights) or `float16`".into());
        }
        let prefill = match &g.prefill {
            Some(list) => {
                let mut seen = std::collections::BTreeSet::new();
                for (i, &t) in list.iter().enumerate() {
                    let pointer = format!("/generation/prefill/{i}");
                    if t == 0 || t > capacity {
                        let d = self.err(
                            "E0311",
                            &pointer,
                            format!(
                                "prefill length {t} does not fit the KV-cache capacity {capacity}"
                            ),
                        );
                        d.label = Some(format!("must be 1..={capacity}"));
                        d.hints.push(
                            "raise `generation.capacity`, or choose a shorter prefill length"
                                .into(),
                        );
                    } else if !seen.insert(t) {
                        let d = self.err(
                            "E0311",
                            &pointer,
                            format!("prefill length {t} is listed twice"),
                        );
                        d.label = Some("duplicate".into());
                    }
                }
                seen.into_iter().collect::<Vec<u32>>()
            }
            None => {
                let fit: Vec<u32> = [32, 128].into_iter().filter(|&t| t <= capacity).collect();
                if fit.is_empty() { vec![capacity] } else { fit }
            }
        };
        let n = g.names.clone().unwrap_or_default();
        let names = GenerationNamesPlan {
            prefill: n.prefill.unwrap_or_else(|| "prefill_{T}".into()),
            decode: n.decode.unwrap_or_else(|| "decode".into()),
            tokens: n.tokens.unwrap_or_else(|| "tokens".into()),
            input_pos: n.input_pos.unwrap_or_else(|| "input_pos".into()),
            mask: n.mask.unwrap_or_else(|| "mask".into()),
            k_cache: n.k_cache.unwrap_or_else(|| "kv_cache_k_{i}".into()),
            v_cache: n.v_cache.unwrap_or_else(|| "kv_cache_v_{i}".into()),
            logits: n.logits.unwrap_or_else(|| "logits".into()),
        };
        let tensor_names = [
            ("tokens", &names.tokens),
            ("input_pos", &names.input_pos),
            ("mask", &names.mask),
            ("k_cache", &names.k_cache),
            ("v_cache", &names.v_cache),
            ("logits", &names.logits),
        ];
        for (i, (key, name)) in tensor_names.iter().enumerate() {
            if let Some((other, _)) = tensor_names[..i].iter().find(|(_, n)| n == name) {
                let d = self.err(
                    "E0317",
                    &format!("/generation/names/{key}"),
                    format!("`names.{key}` and `names.{other}` are both `{name}`"),
                );
                d.label = Some("tensor names must differ".into());
            }
        }
        let keys = names.signature_keys(&prefill);
        if keys[..keys.len() - 1].contains(&names.decode) {
            let d = self.err(
                "E0317",
                "/generation/names/decode",
                format!(
                    "the decode signature `{}` is also a prefill signature",
                    names.decode
                ),
            );
            d.label = Some("signature keys must differ".into());
        }
        let c = g.check.clone().unwrap_or_default();
        let quantized =
            !converter.optimizations.is_empty() || !converter.supported_types.is_empty();
        let steps = c.steps.unwrap_or(16.min(capacity.saturating_sub(2)).max(1));
        if steps + 2 > capacity {
            let d = self.err(
                "E0316",
                "/generation/check/steps",
                format!(
                    "{steps} new tokens and a prompt of at least 2 tokens do not fit the KV-cache capacity {capacity}"
                ),
            );
            d.label = Some(format!("at most {}", capacity.saturating_sub(2)));
        }
        if c.enabled == Some(false)
            && (c.prompts.is_some() || c.min_top1_agreement.is_some() || c.tolerance.is_some())
        {
            self.warn(
                "E0316",
                "/generation/check/enabled",
                "the generation check is off, so its prompts, tolerance and gate are not used",
            );
        }
        let check = c.enabled.unwrap_or(true).then(|| GenerationCheckPlan {
            prompts: c.prompts.clone().unwrap_or_else(|| {
                vec!["The capital of France is".into(), "Once upon a time".into()]
            }),
            steps,
            fill_cache: c.fill_cache.unwrap_or(true),
            tolerance: TolerancePlan {
                atol: c.tolerance.as_ref().and_then(|t| t.atol).unwrap_or(1e-3),
                rtol: c.tolerance.as_ref().and_then(|t| t.rtol).unwrap_or(1e-3),
            },
            min_top1_agreement: c.min_top1_agreement.unwrap_or(0.9),
            quantized,
        });
        let local_preset = match model {
            Some(ModelPlan::Preset {
                preset: PresetRef::Path(dir),
                ..
            }) => Some(dir.as_path()),
            _ => None,
        };
        let bundle = g
            .bundle
            .as_ref()
            .and_then(|b| self.bundle(b, output, local_preset, check.is_some()));
        let after = self.diags.iter().filter(|d| d.is_error()).count();
        (after == before).then(|| GenerationPlan {
            prefill,
            capacity,
            mask_dtype: g.mask_dtype.unwrap_or(MaskDtype::Float32),
            names,
            check,
            bundle,
        })
    }

    /// The `.litertlm` bundle: its output, and tokens and templates that can work. With a
    /// local preset its tokenizer is read here, so an unknown stop token or a preset without
    /// a tokenizer is a located error before anything is built (a named preset is checked
    /// by `apply`, once downloaded).
    fn bundle(
        &mut self,
        b: &GenerationBundle,
        output: Option<&Path>,
        local_preset: Option<&Path>,
        checked: bool,
    ) -> Option<BundlePlan> {
        let out = match &b.output {
            Some(o) => self.resolve_path("/generation/bundle/output", o),
            None => output?.with_extension("litertlm"),
        };
        if let Some(j) = &b.jinja_template
            && let Err(e) = minijinja::Environment::new().template_from_str(j)
        {
            let d = self.err(
                "E0319",
                "/generation/bundle/jinja_template",
                format!("the prompt template is not valid Jinja: {e}"),
            );
            d.label = Some("invalid template".into());
        }
        let verify = b.verify.unwrap_or(true);
        if verify && !checked {
            let message = "the bundle check compares LiteRT-LM's text with the generation check's, which is off";
            let d = if b.verify.is_some() {
                self.err("E0319", "/generation/bundle/verify", message)
            } else {
                self.err_key("E0319", "/generation/bundle", message)
            };
            d.label = Some("needs `generation.check`".into());
            d.hints.push(
                "turn `generation.check` on, or set `generation.bundle.verify: false`".into(),
            );
        }
        if let Some(dir) = local_preset {
            self.bundle_tokens(b, dir);
        }
        Some(BundlePlan {
            output: out,
            start_token: b.start_token.clone(),
            stop_tokens: b.stop_tokens.clone(),
            prompt_template: b.prompt_template.clone(),
            jinja_template: b.jinja_template.clone(),
            verify,
        })
    }

    /// Check the bundle's tokens against a local preset's tokenizer.
    fn bundle_tokens(&mut self, b: &GenerationBundle, dir: &Path) {
        use crate::litertlm::spec;
        // A preset directory that is not there yet is the model check's error.
        if !dir.join("config.json").is_file() {
            return;
        }
        let vocab = match spec::find_tokenizer(dir).and_then(|f| {
            let v = spec::read_vocab(&f)?;
            Ok((f, v))
        }) {
            Ok(v) => v,
            Err(message) => {
                let d = self.err_key("E0318", "/generation/bundle", message);
                d.label = Some("the bundle needs the preset's tokenizer".into());
                return;
            }
        };
        let (file, vocab) = vocab;
        let tokens = b
            .start_token
            .iter()
            .map(|t| {
                (
                    "/generation/bundle/start_token".to_string(),
                    t,
                    "start token",
                )
            })
            .chain(b.stop_tokens.iter().flatten().enumerate().map(|(i, t)| {
                (
                    format!("/generation/bundle/stop_tokens/{i}"),
                    t,
                    "stop token",
                )
            }))
            .collect::<Vec<_>>();
        let mut located = false;
        for (pointer, token, what) in tokens {
            if let Err(message) = spec::resolve(&token.into(), &vocab, file.path(), what) {
                let d = self.err("E0318", &pointer, message);
                d.label = Some("not in the tokenizer".into());
                located = true;
            }
        }
        // Tokens left to the tokenizer's defaults: it must have them.
        let recipe = spec::BundleSpec {
            start_token: b.start_token.as_ref().map(Into::into),
            stop_tokens: b
                .stop_tokens
                .as_ref()
                .map(|l| l.iter().map(Into::into).collect()),
            ..Default::default()
        };
        if !located && let Err(message) = spec::llm_metadata(&recipe, &vocab, file.path()) {
            let d = self.err_key("E0318", "/generation/bundle", message);
            d.label = Some("the tokenizer has no default for it".into());
        }
    }

    /// What a local preset's `config.json` says about generation: a supported family, and
    /// a learned position embedding long enough for the capacity.
    fn generation_backbone(&mut self, dir: &Path, capacity: u32) {
        const SUPPORTED: [(&str, &str); 3] = [
            ("GemmaBackbone", "Gemma"),
            ("LlamaBackbone", "Llama"),
            ("GPT2Backbone", "GPT-2"),
        ];
        let Ok(text) = std::fs::read_to_string(dir.join("config.json")) else {
            return;
        };
        let Ok(config) = serde_json::from_str::<serde_json::Value>(&text) else {
            return;
        };
        // A config without a class name says nothing about the family; the worker decides.
        let Some(class) = config["class_name"].as_str() else {
            return;
        };
        if !SUPPORTED.iter().any(|(c, _)| *c == class) {
            let d = self.err_key(
                "E0312",
                "/generation",
                format!("generation does not support the preset's backbone `{class}`"),
            );
            d.label = Some("unsupported model family".into());
            d.notes.push(format!(
                "supported families: {}",
                SUPPORTED
                    .iter()
                    .map(|(_, f)| *f)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return;
        }
        if let Some(limit) = config["config"]["max_sequence_length"].as_u64()
            && u64::from(capacity) > limit
        {
            let d = self.err(
                "E0313",
                "/generation/capacity",
                format!(
                    "a KV-cache capacity of {capacity} is beyond the model's position embedding ({limit} positions)"
                ),
            );
            d.label = Some(format!("at most {limit}"));
        }
    }

    /// The recipe's `input_signature` as named specs. Keras names unnamed inputs `args_N`;
    /// so do we, with a warning, since the names are what an app binds to.
    fn signature(&mut self, sig: &InputSignature) -> Vec<InputSpec> {
        match sig {
            InputSignature::Mapping(map) => map
                .iter()
                .map(|(name, s)| InputSpec {
                    name: name.clone(),
                    shape: s.shape.clone(),
                    dtype: s.dtype,
                })
                .collect(),
            InputSignature::List(list) => list
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let name = e.name.clone().unwrap_or_else(|| {
                        let d = self.warn(
                            "W0245",
                            &format!("/input_signature/{i}"),
                            format!("input {i} of `input_signature` has no name; it is named `args_{i}`"),
                        );
                        d.hints.push(format!(
                            "name it (`name: pixels`): apps bind to input names, and `args_{i}` says nothing"
                        ));
                        format!("args_{i}")
                    });
                    InputSpec {
                        name,
                        shape: e.shape.clone(),
                        dtype: e.dtype,
                    }
                })
                .collect(),
        }
    }

    /// E0251. A variant that inherits the top-level `calibration:` but quantizes without
    /// calibrating is pointed at where the variant sets its mode, by name, with the line that
    /// drops the inherited data.
    fn calibration_ignored(&mut self, r: &Recipe, mode: Option<QuantizationMode>) {
        let (spans, variant_keys) = (self.spans, self.variant_keys);
        let inherited_by = self
            .variant
            .clone()
            .filter(|_| !variant_keys.iter().any(|k| k == "calibration"));
        let in_variant = |v: &Option<String>| match v {
            Some(v) => format!("variant `{v}`: "),
            None => String::new(),
        };
        let message = format!(
            "{}calibration data would be ignored",
            in_variant(&self.variant)
        );
        let set_by_variant = |k: &str| variant_keys.iter().any(|key| key == k);
        let d = match &inherited_by {
            Some(_) if set_by_variant("quantization") => {
                let d = self.err_key("E0251", "/quantization", message);
                if let Some(span) = spans.get("/calibration") {
                    d.related.push((
                        span.key.unwrap_or(span.value),
                        "calibration inherited from here".into(),
                    ));
                }
                d
            }
            _ => self.err_key("E0251", "/calibration", message),
        };
        match mode {
            Some(_) if r.quantization.is_none() && r.litert_kwargs.is_none() => {
                d.label = Some("nothing is quantized".into());
                d.hints.push("add `quantization: {mode: full_int8}` (or `int8_fallback`, `int16x8`), or remove `calibration`".into());
            }
            Some(m) if r.quantization.is_some() => {
                d.label = Some(format!("mode `{}` does not calibrate", m.as_str()));
                d.hints.push("remove `calibration`, or use a calibrating mode: `int8_fallback`, `full_int8` or `int16x8`".into());
            }
            _ => {
                d.label = Some(
                    "the converter ignores a representative dataset without `optimizations`".into(),
                );
                d.hints.push("add `optimizations: [DEFAULT]` to `litert_kwargs`, or use `quantization: {mode: full_int8}`".into());
            }
        }
        if let Some(v) = inherited_by {
            // The generic advice would remove the data the other variants need.
            d.hints.clear();
            d.hints.push(format!(
                "drop the inherited data in this variant only:\n  variants:\n    {v}:\n      calibration: null"
            ));
        }
    }

    /// A recipe's `snapshot:` is written by `--update-snapshots` and `snapshot accept`, so it
    /// must stay inside the project: a recipe from a pull request must not be able to
    /// overwrite files elsewhere. Checked lexically and, for the part that exists, after
    /// following symlinks.
    fn snapshot_path(&mut self, rel: &str) -> PathBuf {
        let path = self.resolve_path("/snapshot", rel);
        if !inside(&path, &self.root) {
            let root_shown = self.root.display().to_string();
            let d = self.err(
                "E0234",
                "/snapshot",
                format!("snapshot `{rel}` is outside the project (`{root_shown}`)"),
            );
            d.label = Some("snapshots must stay inside the project".into());
            d.notes.push("the project root is the nearest directory above the recipe with `litert.lock` or `.git`".into());
            d.hints.push(
                "remove `snapshot:` to use `snapshots/NAME.yaml`, or name a path under the project"
                    .into(),
            );
        }
        path
    }

    fn output(&mut self, r: &Recipe) -> Option<PathBuf> {
        let Some(out) = &r.output else {
            let d = self.err(
                "E0231",
                "",
                "missing `output`: where should the artifact go?",
            );
            d.hints.push("e.g. `output: build/{{ name }}.tflite` (or `build/{{ name }}-{{ variant }}.tflite` with variants)".into());
            return None;
        };
        if !out.ends_with(".tflite") {
            let d = self.err(
                "E0230",
                "/output",
                format!("output `{out}` does not end in `.tflite`"),
            );
            d.label = Some("LiteRT artifacts must end in `.tflite`".into());
            let stem = out.rsplit_once('.').map_or(out.as_str(), |(s, _)| s);
            d.hints.push(format!("write `{stem}.tflite`"));
            return None;
        }
        Some(self.resolve_path("/output", out))
    }
}

fn model_runs_code(m: &ModelPlan) -> bool {
    match m {
        ModelPlan::Factory { .. } => true,
        ModelPlan::Weights {
            architecture: ArchitecturePlan::Factory { .. },
            ..
        } => true,
        ModelPlan::Keras { custom_objects, .. }
        | ModelPlan::H5 { custom_objects, .. }
        | ModelPlan::Weights { custom_objects, .. } => !custom_objects.is_empty(),
        _ => false,
    }
}

/// Whether a preset `name` is really a directory: preset names never contain a path
/// separator or start with `.` or `~`.
fn looks_like_path(name: &str) -> bool {
    name.contains('/') || name.contains('\\') || name.starts_with('.') || name.starts_with('~')
}

fn io_name(io: QuantizedIo) -> &'static str {
    match io {
        QuantizedIo::Float32 => "float32",
        QuantizedIo::Int8 => "int8",
        QuantizedIo::Uint8 => "uint8",
        QuantizedIo::Int16 => "int16",
    }
}

/// `sha256:` over the rendered variant with keys in sorted order (so reordering keys in
/// YAML is not a change), the recipe's path relative to the project root, and the variant.
fn plan_digest(rv: &RenderedVariant, root: &Path) -> String {
    let rel = std::path::absolute(&rv.recipe_path)
        .ok()
        .zip(std::path::absolute(root).ok())
        .and_then(|(r, root)| r.strip_prefix(&root).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| rv.recipe_path.clone());
    // Text for people and the inputs of templates (already rendered into the values) do
    // not change what is built.
    let mut value = rv.value.clone();
    if let Some(obj) = value.as_object_mut() {
        for key in ["description", "vars", "env"] {
            obj.remove(key);
        }
    }
    let mut h = crate::digest::Hasher::new();
    h.field("recipe", &canonical_json(&value));
    h.field("path", &rel.to_string_lossy());
    h.field("variant", rv.variant.as_deref().unwrap_or(""));
    h.finish()
}

fn canonical_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(k.clone()),
                        canonical_json(&m[k])
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        serde_json::Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical_json).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
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
