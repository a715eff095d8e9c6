//! Digests of what a build reads: the resolved recipe variant itself ([`plan_digest`]), the
//! model source, and the data besides it (calibration data, held-out accuracy data, which
//! has the same shape, and the generation check's corpus). A digest covers the bytes
//! of every file the worker would read and every setting that changes what it makes of
//! them, and nothing that depends on where the files live, so the same inputs digest the
//! same on every machine and checkout. The lock file and the up-to-date check record them.

use std::path::{Path, PathBuf};

use super::plan::{
    AccuracySource, ArchitecturePlan, BuildPlan, CalibrationPlan, CalibrationSource, ModelPlan,
    PresetRef,
};
use super::resolve::RenderedVariant;
use super::types::ChannelOrder;
use crate::digest::{Hasher, files_under};

/// Image files the worker reads from a calibration folder (matched case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "bmp"];

/// `sha256:` over the rendered variant with keys in sorted order (so reordering keys in
/// YAML is not a change), the recipe's path relative to the project root, and the variant.
pub fn plan_digest(rv: &RenderedVariant, root: &Path) -> String {
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

/// `sha256:` over the model source. A preset by name hashes the name: its files live on a
/// hub and cannot be seen offline.
pub fn model_digest(model: &ModelPlan) -> anyhow::Result<String> {
    let mut h = Hasher::new();
    h.field("litert-model-digest", "1");
    let customs = |h: &mut Hasher, objects: &[super::plan::CallablePlan]| -> anyhow::Result<()> {
        for c in objects {
            h.field("custom_object", &c.function);
            h.file("custom_object_source", &c.file)?;
        }
        Ok(())
    };
    match model {
        ModelPlan::Keras {
            path,
            custom_objects,
        }
        | ModelPlan::H5 {
            path,
            custom_objects,
        } => {
            h.file("model", path)?;
            customs(&mut h, custom_objects)?;
        }
        ModelPlan::SavedModel { path } => h.path("saved_model", path)?,
        ModelPlan::Weights {
            path,
            architecture,
            custom_objects,
        } => {
            h.file("weights", path)?;
            match architecture {
                ArchitecturePlan::Config { path } => h.file("config", path)?,
                ArchitecturePlan::Factory { factory } => h.file("factory", &factory.file)?,
            }
            customs(&mut h, custom_objects)?;
        }
        ModelPlan::Preset { preset, lora, .. } => {
            match preset {
                PresetRef::Path(dir) => h.path("preset", dir)?,
                PresetRef::Name(name) => h.field("preset_name", name),
            }
            if let Some(adapter) = lora {
                h.file("lora", adapter)?;
            }
        }
        ModelPlan::Factory { factory } => h.file("factory", &factory.file)?,
    }
    Ok(h.finish())
}

/// `sha256:` over the data a build reads besides the model: its calibration data and, when
/// the recipe names them, its accuracy data and its generation check's corpus; `None` when
/// it reads none of them.
pub fn data_digest(plan: &BuildPlan) -> anyhow::Result<Option<String>> {
    let calibration = plan
        .calibration
        .as_ref()
        .map(calibration_digest)
        .transpose()?;
    let accuracy = match plan.accuracy.as_ref().map(|a| &a.source) {
        Some(AccuracySource::Data(data)) => Some(calibration_digest(data)?),
        _ => None,
    };
    let data = match (calibration, accuracy) {
        (None, None) => None,
        (Some(c), None) => Some(c),
        (c, Some(a)) => Some(format!(
            "{}+accuracy {a}",
            c.unwrap_or_else(|| "none".to_string())
        )),
    };
    let corpus = plan
        .generation
        .as_ref()
        .and_then(|g| g.check.as_ref())
        .and_then(|c| c.corpus.as_ref());
    Ok(match corpus {
        None => data,
        Some(corpus) => {
            // Only the bytes: how much of it is read and the gates are recipe settings,
            // in the plan's digest.
            let mut h = Hasher::new();
            h.field("litert-corpus-digest", "1");
            h.file("corpus", &corpus.path)?;
            Some(format!(
                "{}+corpus {}",
                data.unwrap_or_else(|| "none".to_string()),
                h.finish()
            ))
        }
    })
}

/// `sha256:<hex>` over the calibration data and the settings that pick samples from it.
///
/// For a Python generator only its source file is covered: what the code reads at run time
/// is beyond what litert can see.
pub fn calibration_digest(plan: &CalibrationPlan) -> anyhow::Result<String> {
    let mut h = Hasher::new();
    h.field("litert-data-digest", "1");
    h.field("samples", &plan.samples.to_string());
    h.field("seed", &plan.seed.to_string());
    h.field("shuffle", if plan.shuffle { "true" } else { "false" });
    match &plan.source {
        CalibrationSource::Npz { path } => {
            h.field("kind", "npz");
            h.file("npz", path)?;
        }
        CalibrationSource::Npy { files } => {
            h.field("kind", "npy");
            // BTreeMap: sorted by input name.
            for (input, path) in files {
                h.file(input, path)?;
            }
        }
        CalibrationSource::Images {
            dir,
            input,
            size,
            scale,
            mean,
            std,
            channel_order,
        } => {
            h.field("kind", "images");
            h.field("input", input.as_deref().unwrap_or(""));
            h.field("size", &format!("{}x{}", size[0], size[1]));
            h.field("scale", &format!("{scale:e}"));
            h.field("mean", &format!("{mean:?}"));
            h.field("std", &format!("{std:?}"));
            h.field(
                "channel_order",
                match channel_order {
                    ChannelOrder::Rgb => "rgb",
                    ChannelOrder::Bgr => "bgr",
                },
            );
            let files = image_files(dir)?;
            if files.is_empty() {
                anyhow::bail!(
                    "no images ({}) under `{}`",
                    IMAGE_EXTENSIONS.map(|e| format!(".{e}")).join(", "),
                    dir.display()
                );
            }
            for (rel, path) in files {
                h.file(&rel, &path)?;
            }
        }
        CalibrationSource::Prompts { path } => {
            h.field("kind", "prompts");
            h.file("prompts", path)?;
        }
        CalibrationSource::Generator { generator } => {
            h.field("kind", "generator");
            h.field("function", &generator.function);
            h.field(
                "args",
                &serde_json::to_string(&generator.args).unwrap_or_default(),
            );
            h.file("source", &generator.file)?;
        }
    }
    Ok(h.finish())
}

/// Image files under `dir`, recursively, as (path relative to `dir` with `/`, path), sorted
/// by the relative path so the order does not depend on the file system.
pub fn image_files(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut files = files_under(dir)?;
    files.retain(|(_, path)| {
        path.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
    });
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn plan(source: CalibrationSource) -> CalibrationPlan {
        CalibrationPlan {
            source,
            samples: 10,
            seed: 0,
            shuffle: true,
        }
    }

    fn images(dir: &Path) -> CalibrationSource {
        CalibrationSource::Images {
            dir: dir.to_path_buf(),
            input: None,
            size: [8, 8],
            scale: 1.0 / 255.0,
            mean: vec![],
            std: vec![],
            channel_order: ChannelOrder::Rgb,
        }
    }

    #[test]
    fn same_bytes_same_digest_wherever_they_live() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            std::fs::create_dir_all(d.join("sub")).unwrap();
            std::fs::write(d.join("x.png"), b"one").unwrap();
            std::fs::write(d.join("sub/y.JPG"), b"two").unwrap();
            std::fs::write(d.join("notes.txt"), b"ignored").unwrap();
        }
        std::fs::write(b.path().join("notes.txt"), b"different, still ignored").unwrap();
        let da = calibration_digest(&plan(images(a.path()))).unwrap();
        let db = calibration_digest(&plan(images(b.path()))).unwrap();
        assert_eq!(da, db);
        assert!(da.starts_with("sha256:") && da.len() == 71, "{da}");

        // A changed image, a renamed image, other settings: different digests.
        std::fs::write(b.path().join("sub/y.JPG"), b"tw0").unwrap();
        assert_ne!(da, calibration_digest(&plan(images(b.path()))).unwrap());
        std::fs::write(b.path().join("sub/y.JPG"), b"two").unwrap();
        std::fs::rename(b.path().join("x.png"), b.path().join("z.png")).unwrap();
        assert_ne!(da, calibration_digest(&plan(images(b.path()))).unwrap());
        let mut seeded = plan(images(a.path()));
        seeded.seed = 1;
        assert_ne!(da, calibration_digest(&seeded).unwrap());
    }

    #[test]
    fn npy_files_are_keyed_by_input() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.npy"), b"A").unwrap();
        std::fs::write(d.path().join("b.npy"), b"B").unwrap();
        let files = |x: &str, y: &str| {
            plan(CalibrationSource::Npy {
                files: BTreeMap::from([
                    ("x".to_string(), d.path().join(x)),
                    ("y".to_string(), d.path().join(y)),
                ]),
            })
        };
        assert_ne!(
            calibration_digest(&files("a.npy", "b.npy")).unwrap(),
            calibration_digest(&files("b.npy", "a.npy")).unwrap()
        );
    }

    #[test]
    fn missing_files_and_empty_folders_are_errors_naming_them() {
        let d = tempfile::tempdir().unwrap();
        let e = calibration_digest(&plan(CalibrationSource::Npz {
            path: d.path().join("gone.npz"),
        }))
        .unwrap_err();
        assert!(format!("{e:#}").contains("gone.npz"), "{e:#}");
        let e = calibration_digest(&plan(images(d.path()))).unwrap_err();
        assert!(format!("{e:#}").contains("no images"), "{e:#}");
    }
}
