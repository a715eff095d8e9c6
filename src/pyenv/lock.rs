//! The pinned package lock (`src/pyenv/requirements.lock`, embedded in the binary): parsing
//! it, its digest (which names the environment's cache directory) and the Python versions it
//! supports.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Context, bail};

/// The lock text as committed; the binary carries it so that an installed `litert` always
/// provisions the set it was tested with.
pub const LOCK_TEXT: &str = include_str!("requirements.lock");

/// One exact pin, `name==version`, with the name normalized as PyPI does (PEP 503).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub name: String,
    pub version: String,
}

/// A `major.minor` Python version range, lower bound inclusive, upper bound exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PythonRange {
    pub min: (u32, u32),
    pub below: (u32, u32),
}

impl PythonRange {
    pub fn contains(&self, version: (u32, u32)) -> bool {
        version >= self.min && version < self.below
    }

    /// The supported versions as people say them: `3.11–3.13`.
    pub fn human(&self) -> String {
        let last = if self.below.1 > 0 {
            (self.below.0, self.below.1 - 1)
        } else {
            self.below
        };
        format!("{}.{}–{}.{}", self.min.0, self.min.1, last.0, last.1)
    }
}

impl fmt::Display for PythonRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            ">={}.{},<{}.{}",
            self.min.0, self.min.1, self.below.0, self.below.1
        )
    }
}

/// The parsed lock.
#[derive(Debug, Clone)]
pub struct Lock {
    pub pins: Vec<Pin>,
    pub requires_python: PythonRange,
    /// Hex sha256 of the lock text, byte for byte.
    pub digest: String,
    pub text: &'static str,
}

impl Lock {
    /// The lock embedded in this binary.
    pub fn embedded() -> anyhow::Result<Lock> {
        Lock::parse(LOCK_TEXT).context("the embedded package lock is malformed (a build bug)")
    }

    /// Parse lock text: `name==version` lines, `#` comments, and one
    /// `# requires-python: >=X.Y,<X.Z` header.
    pub fn parse(text: &'static str) -> anyhow::Result<Lock> {
        let mut pins = Vec::new();
        let mut requires_python = None;
        let mut seen = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            if let Some(comment) = line.strip_prefix('#') {
                if let Some(spec) = comment.trim().strip_prefix("requires-python:") {
                    requires_python = Some(
                        parse_range(spec.trim())
                            .with_context(|| format!("line {line_no}: bad requires-python"))?,
                    );
                }
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let Some((name, version)) = line.split_once("==") else {
                bail!("line {line_no}: expected `name==version`, found `{line}`");
            };
            let name = normalize(name.trim());
            let version = version.trim();
            let valid_name =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            let valid_version = !version.is_empty()
                && version
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '!' | '-'));
            if !valid_name || !valid_version {
                bail!("line {line_no}: expected `name==version`, found `{line}`");
            }
            if let Some(first) = seen.insert(name.clone(), line_no) {
                bail!("line {line_no}: `{name}` is already pinned on line {first}");
            }
            pins.push(Pin {
                name,
                version: version.to_string(),
            });
        }
        let Some(requires_python) = requires_python else {
            bail!("no `# requires-python: >=X.Y,<X.Z` line");
        };
        if pins.is_empty() {
            bail!("no pins");
        }
        Ok(Lock {
            pins,
            requires_python,
            digest: crate::digest::sha256_hex(text.as_bytes()),
            text,
        })
    }

    /// The first 16 hex digits of the digest: the environment's directory name.
    pub fn short_digest(&self) -> &str {
        self.digest.get(..16).unwrap_or(&self.digest)
    }

    /// The pinned version of a package, by any spelling of its name.
    pub fn version_of(&self, name: &str) -> Option<&str> {
        let name = normalize(name);
        self.pins
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.version.as_str())
    }
}

/// PEP 503 name normalization: lowercase, runs of `-`, `_` and `.` become one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

fn parse_range(spec: &str) -> anyhow::Result<PythonRange> {
    let mut min = None;
    let mut below = None;
    for part in spec.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix(">=") {
            min = Some(parse_minor(v)?);
        } else if let Some(v) = part.strip_prefix('<') {
            below = Some(parse_minor(v)?);
        } else {
            bail!("unsupported clause `{part}` (only `>=X.Y` and `<X.Y`)");
        }
    }
    match (min, below) {
        (Some(min), Some(below)) if min < below => Ok(PythonRange { min, below }),
        _ => bail!("`{spec}` is not a range of the form `>=X.Y,<X.Z`"),
    }
}

/// Parse `3.11` (or `3.11.7`, keeping major and minor).
pub fn parse_minor(version: &str) -> anyhow::Result<(u32, u32)> {
    let mut parts = version.trim().split('.');
    let major = parts.next().unwrap_or_default().parse::<u32>();
    let minor = parts.next().unwrap_or_default().parse::<u32>();
    match (major, minor) {
        (Ok(major), Ok(minor)) => Ok((major, minor)),
        _ => bail!("`{version}` is not a version like 3.11"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_lock_parses_and_pins_the_known_good_set() {
        let lock = Lock::embedded().unwrap();
        for (name, version) in [
            ("tensorflow", "2.21.0"),
            ("keras", "3.15.1"),
            ("keras-hub", "0.32.0"),
            ("tensorflow-text", "2.21.1"),
            ("ai-edge-litert", "2.3.0"),
            ("numpy", "2.4.6"),
            ("h5py", "3.14.0"),
        ] {
            assert_eq!(lock.version_of(name), Some(version), "{name}");
        }
        for name in ["pillow", "protobuf", "setuptools", "wheel"] {
            assert!(lock.version_of(name).is_some(), "{name} must be pinned");
        }
        // Measured: pinning tensorflow-cpu next to tensorflow installs TensorFlow twice.
        assert_eq!(lock.version_of("tensorflow-cpu"), None);
        assert_eq!(lock.requires_python.to_string(), ">=3.11,<3.14");
        assert_eq!(lock.requires_python.human(), "3.11–3.13");
    }

    #[test]
    fn embedded_lock_is_sorted_and_normalized() {
        let lock = Lock::embedded().unwrap();
        let names: Vec<_> = lock.pins.iter().map(|p| p.name.clone()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "keep the lock sorted so diffs stay readable");
        for line in LOCK_TEXT.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split("==").next().unwrap();
            assert_eq!(name, normalize(name), "write names normalized: {line}");
        }
    }

    #[test]
    fn digest_is_sha256_of_the_text() {
        let lock = Lock::parse("# requires-python: >=3.11,<3.14\na==1\n").unwrap();
        assert_eq!(lock.digest.len(), 64);
        assert_eq!(
            lock.digest,
            crate::digest::sha256_hex(b"# requires-python: >=3.11,<3.14\na==1\n")
        );
        assert_eq!(lock.short_digest(), &lock.digest[..16]);
        assert_eq!(
            crate::digest::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let other = Lock::parse("# requires-python: >=3.11,<3.14\na==2\n").unwrap();
        assert_ne!(lock.digest, other.digest);
    }

    #[test]
    fn names_normalize_like_pypi() {
        assert_eq!(normalize("Pygments"), "pygments");
        assert_eq!(normalize("typing_extensions"), "typing-extensions");
        assert_eq!(normalize("backports.strenum"), "backports-strenum");
        assert_eq!(normalize("a__b-.c"), "a-b-c");
    }

    #[test]
    fn bad_locks_are_rejected_with_the_line() {
        let cases = [
            ("# requires-python: >=3.11,<3.14\nnumpy>=2\n", "line 2"),
            ("# requires-python: >=3.11,<3.14\nnumpy==\n", "line 2"),
            (
                "# requires-python: >=3.11,<3.14\na==1\nA==2\n",
                "already pinned",
            ),
            ("a==1\n", "requires-python"),
            ("# requires-python: >=3.14,<3.11\na==1\n", "line 1"),
            ("# requires-python: ~=3.11\na==1\n", "line 1"),
            ("# requires-python: >=3.11,<3.14\n", "no pins"),
        ];
        for (text, needle) in cases {
            let err = format!("{:#}", Lock::parse(text).unwrap_err());
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn python_range_membership() {
        let range = parse_range(">=3.11,<3.14").unwrap();
        assert!(!range.contains((3, 10)));
        assert!(range.contains((3, 11)));
        assert!(range.contains((3, 13)));
        assert!(!range.contains((3, 14)));
        assert_eq!(parse_minor("3.11.7").unwrap(), (3, 11));
        assert!(parse_minor("three").is_err());
    }
}
