//! SHA-256 digests, the one place litert hashes anything: byte strings, single files
//! (artifacts), framed streams of named fields, files and directories (the build inputs
//! the lock file records). Files are streamed, never loaded whole.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

/// Lower-case hex of bytes (sha2 0.11 digests no longer implement `LowerHex`).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A digest as messages and names show it: its first 12 hex digits, after the `sha256:`
/// prefix when it has one (`sha256:0123456789ab`); anything shorter as it is.
pub fn short(digest: &str) -> &str {
    let prefix = if digest.starts_with("sha256:") { 7 } else { 0 };
    digest.get(..prefix + 12).unwrap_or(digest)
}

/// Hex SHA-256 of a byte string.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Hex SHA-256 of a file's bytes, exactly (what `sha256sum` prints).
pub fn file_sha256(path: &Path) -> anyhow::Result<String> {
    let mut h = Sha256::new();
    stream(&mut h, path)?;
    Ok(hex(&h.finalize()))
}

/// A digest over named parts, each length-prefixed so that no two different sequences of
/// parts hash the same stream.
pub struct Hasher(Sha256);

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

impl Hasher {
    pub fn new() -> Self {
        Self(Sha256::new())
    }

    /// A named text value.
    pub fn field(&mut self, name: &str, value: &str) {
        for part in [name.as_bytes(), value.as_bytes()] {
            self.0.update((part.len() as u64).to_le_bytes());
            self.0.update(part);
        }
    }

    /// A named file's bytes (its path is not part of the digest).
    pub fn file(&mut self, name: &str, path: &Path) -> anyhow::Result<()> {
        let len = std::fs::metadata(path)
            .with_context(|| format!("cannot read `{}`", path.display()))?
            .len();
        self.0.update((name.len() as u64).to_le_bytes());
        self.0.update(name.as_bytes());
        self.0.update(len.to_le_bytes());
        let read = stream(&mut self.0, path)?;
        if read != len {
            anyhow::bail!("`{}` changed while it was read", path.display());
        }
        Ok(())
    }

    /// Every file under a directory, by path relative to it (`/`-separated, sorted), or a
    /// single file when `path` is one.
    pub fn path(&mut self, name: &str, path: &Path) -> anyhow::Result<()> {
        if !path.is_dir() {
            return self.file(name, path);
        }
        for (rel, file) in files_under(path)? {
            self.file(&format!("{name}/{rel}"), &file)?;
        }
        Ok(())
    }

    /// `sha256:<hex>`.
    pub fn finish(self) -> String {
        format!("sha256:{}", hex(&self.0.finalize()))
    }
}

/// Files under `dir`, recursively, as (path relative to `dir` with `/`, path), sorted by
/// the relative path so the order does not depend on the file system.
pub fn files_under(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).with_context(|| format!("cannot read `{}`", d.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("cannot read `{}`", d.display()))?
                .path();
            let meta = std::fs::metadata(&path)
                .with_context(|| format!("cannot read `{}`", path.display()))?;
            if meta.is_dir() {
                stack.push(path);
            } else {
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

/// Feed a file to a SHA-256 state in 64 KiB pieces; returns the byte count.
fn stream(h: &mut Sha256, path: &Path) -> anyhow::Result<u64> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut read = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        if n == 0 {
            return Ok(read);
        }
        read += n as u64;
        h.update(buf.get(..n).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"abc").unwrap();
        assert_eq!(
            file_sha256(&dir.path().join("f")).unwrap(),
            sha256_hex(b"abc")
        );
    }

    #[test]
    fn directory_digests_see_contents_and_names_but_not_location() {
        let digest = |dir: &Path| {
            let mut h = Hasher::new();
            h.path("model", dir).unwrap();
            h.finish()
        };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for d in [a.path(), b.path()] {
            std::fs::create_dir(d.join("sub")).unwrap();
            std::fs::write(d.join("sub/x"), "1").unwrap();
        }
        assert_eq!(digest(a.path()), digest(b.path()));
        std::fs::write(b.path().join("sub/x"), "2").unwrap();
        assert_ne!(digest(a.path()), digest(b.path()));
        std::fs::write(b.path().join("sub/x"), "1").unwrap();
        std::fs::rename(b.path().join("sub/x"), b.path().join("sub/y")).unwrap();
        assert_ne!(digest(a.path()), digest(b.path()));
    }

    #[test]
    fn short_digests_keep_twelve_hex_digits() {
        let hex = sha256_hex(b"abc");
        assert_eq!(short(&hex), "ba7816bf8f01");
        assert_eq!(short(&format!("sha256:{hex}")), "sha256:ba7816bf8f01");
        assert_eq!(short("none"), "none");
    }

    #[test]
    fn fields_are_framed() {
        let digest = |parts: &[(&str, &str)]| {
            let mut h = Hasher::new();
            for (n, v) in parts {
                h.field(n, v);
            }
            h.finish()
        };
        assert_ne!(digest(&[("a", "bc")]), digest(&[("ab", "c")]));
    }
}
