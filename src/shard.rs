//! One `apply` split over many machines, and put back together. Artifacts are assigned to N
//! shards from nothing but their ids and the build times `litert.lock` records, so every CI
//! job computes the same assignment on its own (`litert plan --matrix`, `litert apply
//! --shard I/N`). A shard writes a lock fragment instead of the lock; `litert lock merge`
//! lays the fragments over the lock they all started from, which gives the `litert.lock` one
//! machine building everything would have written, byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::diag::Hinted;
use crate::lock::{Entry, LockFile};
use crate::recipe::BuildPlan;

/// GitHub Actions refuses a matrix of more than 256 jobs.
pub const MAX_SHARDS: usize = 256;

/// The estimate for an artifact the lock has no time for.
const DEFAULT_SECONDS: f64 = 10.0;

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

/// The one project root all `plans` belong to: a sharded run records one lock.
pub fn single_root(plans: &[BuildPlan]) -> anyhow::Result<PathBuf> {
    let Some(first) = plans.first() else {
        bail!(Hinted::new(
            "no artifacts to shard",
            "name the recipes of the project, e.g. `recipes/`"
        ));
    };
    if let Some(other) = plans.iter().find(|p| p.root != first.root) {
        bail!(Hinted::new(
            format!(
                "the recipes belong to two projects (`{}` and `{}`), and a sharded run records one lock",
                first.root.display(),
                other.root.display()
            ),
            "shard each project on its own"
        ));
    }
    Ok(first.root.clone())
}

/// The shares of `plans` (all of the project at `root`) over `total` shards, by the build
/// times in the project's lock.
pub fn plan_shares(plans: &[BuildPlan], root: &Path, total: usize) -> anyhow::Result<Vec<Share>> {
    let lock = LockFile::read(&root.join(crate::lock::FILE_NAME))?;
    let ids: Vec<String> = plans.iter().map(|p| p.id.clone()).collect();
    Ok(assign(&estimates(&ids, &lock), total))
}

/// One shard's share: artifact ids (sorted) and the seconds the lock expects them to take.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Share {
    pub shard: String,
    pub artifacts: Vec<String>,
    pub estimate_seconds: f64,
}

/// The estimated build time of each id: the lock's `build_seconds`, else the median of the
/// known ones (an unknown artifact is taken to be typical), else a default.
pub fn estimates(ids: &[String], lock: &LockFile) -> Vec<(String, f64)> {
    let known: Vec<f64> = ids
        .iter()
        .filter_map(|id| lock.artifacts.get(id).and_then(|e| e.build_seconds))
        .filter(|s| s.is_finite() && *s >= 0.0)
        .collect();
    let fallback = median(known).unwrap_or(DEFAULT_SECONDS);
    ids.iter()
        .map(|id| {
            let t = lock
                .artifacts
                .get(id)
                .and_then(|e| e.build_seconds)
                .filter(|s| s.is_finite() && *s >= 0.0)
                .unwrap_or(fallback);
            (id.clone(), t)
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// Assign artifacts to `total` shards, longest first, each to the least loaded shard (the
/// lowest-numbered among equals): within 4/3 of the best possible balance, and the same
/// answer on every machine for the same ids and lock.
pub fn assign(estimates: &[(String, f64)], total: usize) -> Vec<Share> {
    let mut items: Vec<&(String, f64)> = estimates.iter().collect();
    items.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut shares: Vec<Share> = (1..=total)
        .map(|i| Share {
            shard: format!("{i}/{total}"),
            artifacts: Vec::new(),
            estimate_seconds: 0.0,
        })
        .collect();
    for (id, seconds) in items {
        let lightest = shares
            .iter_mut()
            .min_by(|a, b| a.estimate_seconds.total_cmp(&b.estimate_seconds));
        if let Some(share) = lightest {
            share.artifacts.push(id.clone());
            share.estimate_seconds += seconds;
        }
    }
    for share in &mut shares {
        share.artifacts.sort();
        share.estimate_seconds = round_seconds(share.estimate_seconds);
    }
    shares
}

/// Seconds as the lock records them: tenths.
pub fn round_seconds(s: f64) -> f64 {
    (s * 10.0).round() / 10.0
}

/// The build time to record for `new`: the one already in the lock when the artifact is
/// the same one (same inputs, worker, bytes), so rebuilds, shards and cache restores leave
/// the lock as it was; otherwise the time just measured.
pub fn recorded_time(previous: Option<&Entry>, new: &Entry, measured: f64) -> f64 {
    if let Some(prev) = previous
        && let Some(t) = prev.build_seconds
    {
        let mut same = prev.clone();
        same.build_seconds = new.build_seconds;
        if same == *new {
            return t;
        }
    }
    round_seconds(measured)
}

/// The GitHub Actions `strategy.matrix` for the shares: one job per shard, on one line for
/// `$GITHUB_OUTPUT`.
pub fn github_matrix(shares: &[Share]) -> String {
    let include: Vec<serde_json::Value> = shares
        .iter()
        .map(|s| {
            serde_json::json!({
                "shard": s.shard,
                "artifacts": s.artifacts.len(),
                "estimate_seconds": s.estimate_seconds,
            })
        })
        .collect();
    format!("{}\n", serde_json::json!({ "include": include }))
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
    fn assignment_is_balanced_deterministic_and_complete() {
        let est: Vec<(String, f64)> = [("a", 8.0), ("b", 7.0), ("c", 6.0), ("d", 5.0), ("e", 4.0)]
            .iter()
            .map(|(i, t)| (i.to_string(), *t))
            .collect();
        let shares = assign(&est, 2);
        assert_eq!(shares[0].artifacts, ["a", "d", "e"]);
        assert_eq!(shares[1].artifacts, ["b", "c"]);
        assert_eq!(
            (shares[0].estimate_seconds, shares[1].estimate_seconds),
            (17.0, 13.0)
        );
        // The input order does not matter.
        let mut reversed = est.clone();
        reversed.reverse();
        assert_eq!(assign(&reversed, 2), shares);
        // More shards than artifacts: some stay empty, none is lost.
        let many = assign(&est, 7);
        assert_eq!(many.iter().map(|s| s.artifacts.len()).sum::<usize>(), 5);
    }

    #[test]
    fn unknown_times_are_taken_as_typical() {
        let mut lock = LockFile::default();
        lock.artifacts.insert("a".into(), entry("x", Some(2.0)));
        lock.artifacts.insert("b".into(), entry("x", Some(30.0)));
        lock.artifacts.insert("c".into(), entry("x", Some(4.0)));
        let ids: Vec<String> = ["a", "b", "c", "new"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let est = estimates(&ids, &lock);
        assert_eq!(est[3], ("new".to_string(), 4.0));
    }

    #[test]
    fn a_known_artifact_keeps_its_recorded_time() {
        let prev = entry("x", Some(3.2));
        assert_eq!(recorded_time(Some(&prev), &entry("x", None), 9.87), 3.2);
        assert_eq!(recorded_time(Some(&prev), &entry("y", None), 9.87), 9.9);
        assert_eq!(recorded_time(None, &entry("x", None), 0.04), 0.0);
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
