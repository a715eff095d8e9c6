//! Which cache a run uses: `--cache URL` (or `LITERT_CACHE_URL`) first, else the project's
//! setting in `.litert.yaml` at its root; `--no-cache` turns it off. Read-only when any of
//! `--cache-read-only`, `LITERT_CACHE_READ_ONLY` or the setting says so, which is how
//! untrusted builds (pull requests) use a cache without being able to poison it.
//!
//! ```yaml
//! # .litert.yaml
//! cache:
//!   url: s3://team-bucket/litert
//!   read_only: false
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::diag::Hinted;

/// The project settings file, at the project root (hidden, so recipe searches skip it).
pub const FILE_NAME: &str = ".litert.yaml";

/// The cache a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub url: String,
    pub read_only: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    cache: Option<CacheSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheSection {
    url: String,
    #[serde(default)]
    read_only: bool,
}

/// The project's own cache setting, if it has one.
pub fn project_setting(root: &Path) -> anyhow::Result<Option<Settings>> {
    let path = root.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("cannot read `{}`: {e}", path.display()),
    };
    let file: ProjectFile = serde_saphyr::from_str(&text).map_err(|e| {
        Hinted::new(
            format!(
                "`{}` is not a valid project settings file: {}",
                path.display(),
                e.to_string().lines().next().unwrap_or_default()
            ),
            "it holds `cache: {url: URL, read_only: BOOL}`; see docs/ci.md",
        )
    })?;
    Ok(file.cache.map(|c| Settings {
        url: c.url,
        read_only: c.read_only,
    }))
}

/// The cache for a run over projects at `roots`: the URL from the command line or the
/// environment wins; otherwise the projects' setting, which must agree when there are
/// several.
pub fn resolve(
    url: Option<&str>,
    read_only: bool,
    no_cache: bool,
    roots: &BTreeSet<PathBuf>,
) -> anyhow::Result<Option<Settings>> {
    if no_cache {
        return Ok(None);
    }
    if let Some(url) = url.filter(|u| !u.trim().is_empty()) {
        return Ok(Some(Settings {
            url: url.trim().to_string(),
            read_only,
        }));
    }
    let mut found: Option<(PathBuf, Settings)> = None;
    for root in roots {
        let Some(setting) = project_setting(root)? else {
            continue;
        };
        match &found {
            Some((other, s)) if s.url != setting.url => anyhow::bail!(Hinted::new(
                format!(
                    "the projects at `{}` and `{}` name different caches",
                    other.display(),
                    root.display()
                ),
                "apply them separately, or name one with `--cache URL`"
            )),
            _ => found = Some((root.clone(), setting)),
        }
    }
    Ok(found.map(|(_, mut s)| {
        s.read_only |= read_only;
        s
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_wins_over_the_project_and_read_only_adds_up() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            "cache:\n  url: file:///srv/cache\n",
        )
        .unwrap();
        let roots = BTreeSet::from([dir.path().to_path_buf()]);
        let s = resolve(None, true, false, &roots).unwrap().unwrap();
        assert_eq!(s.url, "file:///srv/cache");
        assert!(s.read_only);
        let s = resolve(Some("s3://b"), false, false, &roots)
            .unwrap()
            .unwrap();
        assert_eq!(s.url, "s3://b");
        assert!(
            resolve(Some("s3://b"), false, true, &roots)
                .unwrap()
                .is_none()
        );
        assert!(
            resolve(None, false, false, &BTreeSet::new())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_bad_settings_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "cache:\n  ulr: x\n").unwrap();
        let roots = BTreeSet::from([dir.path().to_path_buf()]);
        let err = resolve(None, false, false, &roots).unwrap_err();
        assert!(
            err.to_string()
                .contains("not a valid project settings file"),
            "{err}"
        );
    }
}
