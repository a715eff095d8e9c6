//! Free disk space where the environment will live, checked before a 2.5 GB install starts
//! rather than discovered by pip half-way through it.

use std::io;
use std::path::Path;

use crate::diag::Hinted;
use crate::units::human_bytes;

/// What a first provisioning needs in the cache directory: the environment (about 2.5 GB,
/// measured) plus pip's unpacking space, which we keep on the same disk.
pub const REQUIRED_FREE_BYTES: u64 = 3_000_000_000;

/// Bytes available to this user on the filesystem holding `path`, or holding its nearest
/// existing ancestor when `path` does not exist yet (a cache dir made on first use).
pub fn available(path: &Path) -> io::Result<u64> {
    let mut probe = path;
    loop {
        if probe.exists() {
            return fs4::available_space(probe);
        }
        match probe.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => probe = parent,
            _ => return fs4::available_space("."),
        }
    }
}

/// Fail with the numbers when fewer than `needed` bytes are free at `path`.
pub fn check(path: &Path, needed: u64) -> anyhow::Result<u64> {
    let free = available(path)?;
    if free < needed {
        return Err(not_enough(path, free, needed).into());
    }
    Ok(free)
}

pub fn not_enough(path: &Path, free: u64, needed: u64) -> Hinted {
    Hinted::new(
        format!(
            "not enough free disk space for the Python worker environment in {}: {} free, about {} needed",
            path.display(),
            human_bytes(free),
            human_bytes(needed)
        ),
        "free some space, or set LITERT_CACHE_DIR to a directory on a larger disk",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_space_of_a_path_not_made_yet_uses_its_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        let free = available(&deep).unwrap();
        assert!(free > 0);
        assert!(check(&deep, 1).is_ok());
    }

    #[test]
    fn too_little_space_is_an_error_with_the_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let err = check(dir.path(), u64::MAX).unwrap_err();
        let hinted = err.downcast_ref::<Hinted>().expect("a hinted error");
        assert!(hinted.message.contains("free, about"), "{}", hinted.message);
        assert!(hinted.message.contains("needed"), "{}", hinted.message);
        assert!(hinted.hint.contains("LITERT_CACHE_DIR"));
        let msg = not_enough(Path::new("/cache"), 1_200_000_000, REQUIRED_FREE_BYTES).message;
        assert_eq!(
            msg,
            "not enough free disk space for the Python worker environment in /cache: 1.1 GiB free, about 2.8 GiB needed"
        );
    }
}
