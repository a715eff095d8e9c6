//! One `apply` split over many machines: which artifacts each of N shards builds. They are
//! assigned from nothing but their ids and the build times `litert.lock` records, so every
//! CI job computes the same assignment on its own (`litert plan --matrix`, `litert apply
//! --shard I/N`). What a shard writes instead of the lock, and how the pieces are put back
//! together, is [`crate::lock::fragment`]'s.

use std::path::{Path, PathBuf};

use anyhow::bail;
use serde::Serialize;

use crate::diag::Hinted;
use crate::lock::LockFile;
use crate::recipe::BuildPlan;

/// The estimate for an artifact the lock has no time for.
const DEFAULT_SECONDS: f64 = 10.0;

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
        share.estimate_seconds = crate::lock::round_seconds(share.estimate_seconds);
    }
    shares
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sha: &str, seconds: Option<f64>) -> crate::lock::Entry {
        crate::lock::Entry {
            build_seconds: seconds,
            ..crate::lock::sample_entry(sha)
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
}
