//! Pending snapshots (`*.yaml.new`, left by `apply` when an artifact's contract changed)
//! and what a reviewer does with them: accept (replace the stored snapshot) or reject
//! (delete the pending one).

use std::path::{Path, PathBuf};

/// One snapshot waiting for review.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The `.new` file.
    pub new: PathBuf,
    /// The snapshot it would replace (it may not exist yet).
    pub stored: PathBuf,
}

impl Pending {
    /// The name reviewers use: the snapshot's file stem (`classifier-int8`).
    pub fn name(&self) -> String {
        self.stored
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".yaml").to_string())
            .unwrap_or_default()
    }

    /// Whether `wanted` names this snapshot: its file stem, or its artifact id
    /// (`classifier:int8`), which the file name spells with `-`.
    pub fn matches(&self, wanted: &str) -> bool {
        let name = self.name();
        name == wanted || name == wanted.replace(':', "-")
    }

    pub fn diff(&self) -> String {
        let old = std::fs::read_to_string(&self.stored).unwrap_or_default();
        let new = std::fs::read_to_string(&self.new).unwrap_or_default();
        super::diff(&old, &new, &self.stored)
    }

    pub fn accept(&self) -> std::io::Result<()> {
        std::fs::rename(&self.new, &self.stored)
    }

    pub fn reject(&self) -> std::io::Result<()> {
        std::fs::remove_file(&self.new)
    }
}

/// Every pending snapshot under `dir`, sorted.
pub fn pending(dir: &Path) -> std::io::Result<Vec<Pending>> {
    let mut out = Vec::new();
    if dir.is_dir() {
        walk(dir, &mut out)?;
    }
    out.sort_by(|a, b| a.new.cmp(&b.new));
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<Pending>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, out)?;
        } else if let Some(stored) = path.to_str().and_then(|p| p.strip_suffix(".new"))
            && stored.ends_with(".yaml")
        {
            out.push(Pending {
                stored: PathBuf::from(stored),
                new: path.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_accepts_and_rejects() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "old\n").unwrap();
        std::fs::write(dir.path().join("a.yaml.new"), "new\n").unwrap();
        std::fs::write(dir.path().join("b-int8.yaml.new"), "b\n").unwrap();
        let p = pending(dir.path()).unwrap();
        assert_eq!(p.len(), 2);
        assert!(p[1].matches("b:int8"));
        assert!(p[0].diff().contains("+new"));
        p[0].accept().unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.yaml")).unwrap(),
            "new\n"
        );
        p[1].reject().unwrap();
        assert!(pending(dir.path()).unwrap().is_empty());
    }
}
