//! The worker's memory budget. A model file from the internet can ask for any amount of
//! memory (a JSON bomb in a `.keras`, an oversized HDF5 dataset); the worker caps its own
//! private memory at start (`RLIMIT_DATA`, set by `litert_worker.main` from the variable
//! below), so such a build fails with a clear out-of-memory error instead of taking the
//! machine down with it.
//!
//! Why `RLIMIT_DATA` and not `RLIMIT_AS`: measured here, a worker that has imported
//! TensorFlow and exported a model maps 2.5 GB of address space (shared libraries,
//! reservations never touched) but holds 0.37 GB of private data (heap, anonymous maps:
//! numpy arrays, tensors) and 0.6 GB resident. An address-space cap either breaks ordinary
//! builds or bounds nothing; the data cap tracks what a build really allocates.

/// The environment variable the worker reads its limit from (bytes; `0` for none). Users may
/// set it too (`LITERT_WORKER_MEMORY=8GiB`); `none` turns the bound off.
pub const ENV_VAR: &str = "LITERT_WORKER_MEMORY";

/// The share of physical memory all workers together may hold by default.
const SHARE_NUM: u64 = 3;
const SHARE_DEN: u64 = 4;

/// The limit in bytes for each of `jobs` workers (`None`: unbounded), from
/// `LITERT_WORKER_MEMORY` when set, else three quarters of physical memory split between
/// the workers. An unreadable setting is an error the caller reports.
pub fn budget(jobs: usize) -> Result<Option<u64>, String> {
    match std::env::var(ENV_VAR) {
        Ok(text) => parse(&text),
        Err(_) => {
            Ok(physical_memory().map(|total| total / SHARE_DEN * SHARE_NUM / (jobs.max(1) as u64)))
        }
    }
}

fn parse(text: &str) -> Result<Option<u64>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("none") || t == "0" {
        return Ok(None);
    }
    match crate::units::parse_byte_size(t) {
        Some(n) if n > 0 => Ok(Some(n)),
        _ => Err(format!(
            "`{ENV_VAR}={text}` is not a size (e.g. `8GiB`, `6000MB`, or `none`)"
        )),
    }
}

/// `MemTotal` from `/proc/meminfo` (Linux); `None` elsewhere.
fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_none() {
        assert_eq!(parse("8GiB").unwrap(), Some(8 << 30));
        assert_eq!(parse("none").unwrap(), None);
        assert_eq!(parse("0").unwrap(), None);
        assert!(parse("lots").is_err());
    }

    #[test]
    fn physical_memory_is_read() {
        let total = physical_memory().expect("Linux has /proc/meminfo");
        assert!(total > 64 << 20, "{total}");
    }
}
