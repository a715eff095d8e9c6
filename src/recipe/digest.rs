//! Digests of the data a build reads besides the model: calibration data (and held-out
//! accuracy data, which has the same shape). A digest covers the bytes of every file the
//! worker would read and every setting that changes which samples it makes of them, and
//! nothing that depends on where the files live, so the same data digests the same on every
//! machine and checkout. The lock file and the build cache record it.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::plan::{CalibrationPlan, CalibrationSource};
use super::types::ChannelOrder;

/// Image files the worker reads from a calibration folder (matched case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "bmp"];

/// `sha256:<hex>` over the calibration data and the settings that pick samples from it.
///
/// For a Python generator only its source file is covered: what the code reads at run time
/// is beyond what litert can see.
pub fn calibration_digest(plan: &CalibrationPlan) -> anyhow::Result<String> {
    let mut h = Hasher(Sha256::new());
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
    Ok(format!("sha256:{}", hex(&h.0.finalize())))
}

/// Image files under `dir`, recursively, as (path relative to `dir` with `/`, path), sorted
/// by the relative path so the order does not depend on the file system.
pub fn image_files(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).with_context(|| format!("cannot read `{}`", d.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot read `{}`", d.display()))?;
            let path = entry.path();
            let meta = std::fs::metadata(&path)
                .with_context(|| format!("cannot read `{}`", path.display()))?;
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let is_image = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
            if is_image {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Length-prefixed fields, so no two different inputs hash the same stream.
struct Hasher(Sha256);

impl Hasher {
    fn field(&mut self, name: &str, value: &str) {
        for part in [name.as_bytes(), value.as_bytes()] {
            self.0.update((part.len() as u64).to_le_bytes());
            self.0.update(part);
        }
    }

    fn file(&mut self, name: &str, path: &Path) -> anyhow::Result<()> {
        let mut f = std::fs::File::open(path)
            .with_context(|| format!("cannot read calibration file `{}`", path.display()))?;
        let len = f
            .metadata()
            .with_context(|| format!("cannot read calibration file `{}`", path.display()))?
            .len();
        self.0.update((name.len() as u64).to_le_bytes());
        self.0.update(name.as_bytes());
        self.0.update(len.to_le_bytes());
        let mut buf = vec![0u8; 1 << 16];
        let mut read = 0u64;
        loop {
            let n = f
                .read(&mut buf)
                .with_context(|| format!("cannot read calibration file `{}`", path.display()))?;
            if n == 0 {
                break;
            }
            read += n as u64;
            self.0.update(buf.get(..n).unwrap_or_default());
        }
        if read != len {
            anyhow::bail!("`{}` changed while it was read", path.display());
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
