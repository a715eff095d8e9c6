//! `model:`: exactly one source (a `.keras`/`.h5` file, a SavedModel, weights and an
//! architecture, a KerasHub preset, a Python factory), its files checked to exist as the
//! right kind of thing and to stay where the recipe says, and the code it would run named.

use std::path::PathBuf;

use super::{Cx, Kind};
use crate::recipe::plan::*;
use crate::recipe::types::*;

impl Cx<'_> {
    pub(super) fn model(&mut self, r: &Recipe) -> Option<ModelPlan> {
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
            let lora = p.lora.as_ref().map(|f| {
                if !f.ends_with(".lora.h5") {
                    let d = self.err(
                        "E0255",
                        "/model/preset/lora",
                        format!("`{f}` is not a LoRA adapter file"),
                    );
                    d.label = Some("KerasHub names them `*.lora.h5`".into());
                    d.hints.push(
                        "save the fine-tune's adapter with `backbone.save_lora_weights(\"x.lora.h5\")`"
                            .into(),
                    );
                }
                self.existing("/model/preset/lora", f, Kind::File)
            });
            return preset.map(|preset| ModelPlan::Preset {
                preset,
                task: p.task.clone(),
                args: p.args.clone().unwrap_or_default(),
                var,
                lora,
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

    pub(super) fn callable(&mut self, pointer: &str, f: &Factory) -> Option<CallablePlan> {
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
}

pub(super) fn model_runs_code(m: &ModelPlan) -> bool {
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
