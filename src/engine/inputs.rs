//! Digests of a build's inputs, for the lock file and the up-to-date check: the model
//! source (files, or every file of a directory, names included) and the calibration data.
//! Files are streamed through SHA-256, never loaded whole.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::recipe::BuildPlan;
use crate::recipe::digest;
use crate::recipe::plan::{AccuracySource, ArchitecturePlan, ModelPlan, PresetRef};

/// `sha256:<hex>` over the model source. A preset by name hashes the name: the files live
/// on a hub and cannot be seen offline.
pub fn model_digest(model: &ModelPlan) -> anyhow::Result<String> {
    let mut h = Sha256::new();
    match model {
        ModelPlan::Keras {
            path,
            custom_objects,
        }
        | ModelPlan::H5 {
            path,
            custom_objects,
        } => {
            add_path(&mut h, path)?;
            for c in custom_objects {
                add_path(&mut h, &c.file)?;
            }
        }
        ModelPlan::SavedModel { path } => add_path(&mut h, path)?,
        ModelPlan::Weights {
            path,
            architecture,
            custom_objects,
        } => {
            add_path(&mut h, path)?;
            match architecture {
                ArchitecturePlan::Config { path } => add_path(&mut h, path)?,
                ArchitecturePlan::Factory { factory } => add_path(&mut h, &factory.file)?,
            }
            for c in custom_objects {
                add_path(&mut h, &c.file)?;
            }
        }
        ModelPlan::Preset {
            preset: PresetRef::Path(dir),
            ..
        } => add_path(&mut h, dir)?,
        ModelPlan::Preset {
            preset: PresetRef::Name(name),
            ..
        } => h.update(format!("preset:{name}").as_bytes()),
        ModelPlan::Factory { factory } => add_path(&mut h, &factory.file)?,
    }
    Ok(finish(h))
}

/// `sha256:<hex>` over the data a build reads besides the model: its calibration data
/// and, when the recipe names one, its accuracy data; `None` when it reads neither.
pub fn calibration_digest(plan: &BuildPlan) -> anyhow::Result<Option<String>> {
    let calibration = plan
        .calibration
        .as_ref()
        .map(digest::calibration_digest)
        .transpose()?;
    let accuracy = match plan.accuracy.as_ref().map(|a| &a.source) {
        Some(AccuracySource::Data(data)) => Some(digest::calibration_digest(data)?),
        _ => None,
    };
    Ok(match (calibration, accuracy) {
        (None, None) => None,
        (Some(c), None) => Some(c),
        (c, Some(a)) => Some(format!(
            "{}+accuracy {a}",
            c.unwrap_or_else(|| "none".to_string())
        )),
    })
}

fn finish(h: Sha256) -> String {
    let bytes = h.finalize();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// `sha256:<hex>` of one file's bytes.
pub fn file_sha256(path: &Path) -> anyhow::Result<String> {
    let mut h = Sha256::new();
    add_file(&mut h, path)?;
    let bytes = h.finalize();
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A file's bytes, or a directory's files in sorted order with their relative names.
fn add_path(h: &mut Sha256, path: &Path) -> anyhow::Result<()> {
    if path.is_dir() {
        let mut files = Vec::new();
        walk(path, path, &mut files)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        files.sort();
        for rel in files {
            h.update(rel.to_string_lossy().as_bytes());
            h.update([0]);
            add_file(h, &path.join(&rel))?;
        }
        Ok(())
    } else {
        add_file(h, path)
    }
}

fn add_file(h: &mut Sha256, path: &Path) -> anyhow::Result<()> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.update([0xff]);
    Ok(())
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_path_buf());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_digests_see_contents_and_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "1").unwrap();
        let plan = ModelPlan::SavedModel {
            path: dir.path().to_path_buf(),
        };
        let first = model_digest(&plan).unwrap();
        assert_eq!(first, model_digest(&plan).unwrap());
        std::fs::write(dir.path().join("a"), "2").unwrap();
        let second = model_digest(&plan).unwrap();
        assert_ne!(first, second);
        std::fs::rename(dir.path().join("a"), dir.path().join("b")).unwrap();
        assert_ne!(second, model_digest(&plan).unwrap());
    }
}
