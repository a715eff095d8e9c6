//! The lock fragment of one shard of a sharded run (`apply --shard I/N`): the lock entries
//! of its share that hold after the run, and the digest of the lock it started from.
//! `litert lock merge` lays the fragments over that lock, which gives the `litert.lock` one
//! machine building everything would have written, byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::{Entry, LockFile};
use crate::diag::Hinted;

/// GitHub Actions refuses a matrix of more than 256 jobs.
pub const MAX_SHARDS: usize = 256;

/// Shard `index` (1-based) of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub total: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parsed = s.split_once('/').and_then(|(i, n)| {
            Some((
                i.trim().parse::<usize>().ok()?,
                n.trim().parse::<usize>().ok()?,
            ))
        });
        match parsed {
            Some((index, total))
                if (1..=MAX_SHARDS).contains(&total) && (1..=total).contains(&index) =>
            {
                Ok(Self { index, total })
            }
            _ => Err(format!(
                "`{s}` is not a shard: write I/N with 1 <= I <= N <= {MAX_SHARDS}, e.g. `2/4`"
            )),
        }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

/// sha256 of the lock file's bytes as a shard found them (`none` when there is none): the
/// fragments of one sharded run must all start from the same lock.
pub fn lock_digest(lock_path: &Path) -> anyhow::Result<String> {
    match std::fs::read(lock_path) {
        Ok(bytes) => Ok(format!("sha256:{}", crate::digest::sha256_hex(&bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok("none".to_string()),
        Err(e) => Err(e).with_context(|| format!("cannot read `{}`", lock_path.display())),
    }
}

/// What one shard found and built: the lock entries of its share that hold after the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fragment {
    pub version: u32,
    /// `I/N`.
    pub shard: String,
    /// [`lock_digest`] of the lock the shard started from.
    pub base: String,
    pub artifacts: BTreeMap<String, Entry>,
}

const FRAGMENT_FORMAT: u32 = 1;

impl Fragment {
    pub fn new(shard: Shard, base: String) -> Self {
        Self {
            version: FRAGMENT_FORMAT,
            shard: shard.to_string(),
            base,
            artifacts: BTreeMap::new(),
        }
    }

    /// The default file name of a shard's fragment, at the project root.
    pub fn default_path(root: &Path, shard: Shard) -> PathBuf {
        root.join(format!(
            "litert-shard-{}-of-{}.lock",
            shard.index, shard.total
        ))
    }

    pub fn render(&self) -> String {
        let body = serde_saphyr::to_string(self).unwrap_or_default();
        format!(
            "# litert lock fragment of shard {}: merge with `litert lock merge`.\n{body}",
            self.shard
        )
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        crate::fsio::write_atomic(path, self.render())
            .with_context(|| format!("cannot write `{}`", path.display()))
    }

    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        let fragment: Self = serde_saphyr::from_str(&text).map_err(|e| {
            Hinted::new(
                format!(
                    "`{}` is not a lock fragment: {}",
                    path.display(),
                    e.to_string().lines().next().unwrap_or_default()
                ),
                "pass the files `litert apply --shard I/N` wrote",
            )
        })?;
        if fragment.version != FRAGMENT_FORMAT {
            bail!(
                "`{}` has fragment format {}, this litert reads {FRAGMENT_FORMAT}",
                path.display(),
                fragment.version
            );
        }
        Ok(fragment)
    }
}

/// Lay `fragments` over `base` (the lock they started from, with its [`lock_digest`]).
/// Every shard 1..N must be there exactly once, all from the same base; an artifact in two
/// fragments must have the same entry in both.
pub fn merge(
    base: LockFile,
    base_digest: &str,
    fragments: &[(PathBuf, Fragment)],
) -> anyhow::Result<LockFile> {
    let Some((_, first)) = fragments.first() else {
        bail!(Hinted::new(
            "no lock fragments to merge",
            "pass the `litert-shard-*.lock` files the shard jobs wrote"
        ));
    };
    let total = first
        .shard
        .parse::<Shard>()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .total;
    let mut seen: BTreeMap<usize, &Path> = BTreeMap::new();
    let mut merged = base;
    let mut from: BTreeMap<String, &Path> = BTreeMap::new();
    for (path, fragment) in fragments {
        let shard: Shard = fragment
            .shard
            .parse()
            .map_err(|e: String| anyhow::anyhow!("`{}`: {e}", path.display()))?;
        if shard.total != total {
            bail!(Hinted::new(
                format!(
                    "`{}` is shard {shard} but `{}` is one of {total}",
                    path.display(),
                    fragments[0].0.display()
                ),
                "merge the fragments of one sharded run"
            ));
        }
        if let Some(other) = seen.insert(shard.index, path) {
            bail!(Hinted::new(
                format!(
                    "`{}` and `{}` are both shard {shard}",
                    other.display(),
                    path.display()
                ),
                "merge one fragment per shard"
            ));
        }
        if fragment.base != base_digest {
            bail!(Hinted::new(
                format!(
                    "`{}` was built against another litert.lock ({} here, {} there)",
                    path.display(),
                    crate::digest::short(base_digest),
                    crate::digest::short(&fragment.base)
                ),
                "merge in a checkout of the commit the shards built, before changing litert.lock"
            ));
        }
        for (id, entry) in &fragment.artifacts {
            if let Some(other) = from.get(id)
                && merged.artifacts.get(id) != Some(entry)
            {
                bail!(
                    "`{id}` has different entries in `{}` and `{}`",
                    other.display(),
                    path.display()
                );
            }
            from.insert(id.clone(), path);
            merged.artifacts.insert(id.clone(), entry.clone());
        }
    }
    let missing: Vec<String> = (1..=total)
        .filter(|i| !seen.contains_key(i))
        .map(|i| format!("{i}/{total}"))
        .collect();
    if !missing.is_empty() {
        bail!(Hinted::new(
            format!("no fragment for shard {}", missing.join(", ")),
            "every shard of the run must finish and hand over its fragment before the merge"
        ));
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sha: &str, seconds: Option<f64>) -> Entry {
        Entry {
            build_seconds: seconds,
            ..crate::lock::sample_entry(sha)
        }
    }

    #[test]
    fn shards_parse_and_refuse_nonsense() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, total: 4 }));
        for bad in ["0/4", "5/4", "1/0", "x", "1/257", "1-4"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn fragments_merge_over_their_base_and_refuse_gaps_and_strangers() {
        let mut base = LockFile {
            version: 1,
            ..Default::default()
        };
        base.artifacts.insert("old".into(), entry("o", Some(1.0)));
        base.artifacts.insert("a".into(), entry("stale", Some(1.0)));
        let mut f1 = Fragment::new(Shard { index: 1, total: 2 }, "sha256:b".into());
        f1.artifacts.insert("a".into(), entry("new", Some(2.0)));
        let mut f2 = Fragment::new(Shard { index: 2, total: 2 }, "sha256:b".into());
        f2.artifacts.insert("b".into(), entry("bb", Some(3.0)));
        // A fragment survives its own round trip exactly.
        let again: Fragment = serde_saphyr::from_str(&f1.render()).unwrap();
        assert_eq!(again, f1);
        let frags = vec![
            (PathBuf::from("1"), f1.clone()),
            (PathBuf::from("2"), f2.clone()),
        ];
        let merged = merge(base.clone(), "sha256:b", &frags).unwrap();
        assert_eq!(merged.artifacts["a"].sha256, "new");
        assert_eq!(merged.artifacts["b"].sha256, "bb");
        assert_eq!(merged.artifacts["old"].sha256, "o");

        let err = merge(base.clone(), "sha256:b", &frags[..1]).unwrap_err();
        assert!(
            err.to_string().contains("no fragment for shard 2/2"),
            "{err}"
        );
        let err = merge(base.clone(), "sha256:other", &frags).unwrap_err();
        assert!(err.to_string().contains("another litert.lock"), "{err}");
        let dup = vec![(PathBuf::from("1"), f1.clone()), (PathBuf::from("1b"), f1)];
        assert!(merge(base, "sha256:b", &dup).is_err());
    }
}
