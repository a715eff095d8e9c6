//! Writing files so that a reader never sees half of one: every file `litert` produces (an
//! artifact, a snapshot, the lock, a JUnit report) is written to a temporary file created
//! exclusively under an unpredictable name in the destination's directory, flushed to disk,
//! given the mode the destination should have, and renamed over it. A leaf module: it knows
//! nothing of what it writes. It also owns the one way files are memory-mapped for reading.

use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// `file` memory-mapped read-only.
///
/// Every reader of large files (`.tflite`, `.litertlm`, a preset's weights) maps them
/// through here.
pub fn map_readonly(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only. Another process truncating or rewriting the file while
    // it is mapped is undefined behaviour that no file API can rule out; `litert` reads
    // finished files (artifacts, bundles, presets), and users are told not to read files
    // that are being written.
    #[allow(unsafe_code)]
    unsafe {
        memmap2::Mmap::map(file)
    }
}

/// Drop the pages of `map[offset .. offset + len]` from this process's resident memory
/// (the file stays in the page cache): a reader streaming through a file larger than memory
/// keeps its resident size to what it reads at once. Best effort: an error is ignored.
pub fn release_pages(map: &memmap2::Mmap, offset: usize, len: usize) {
    const PAGE: usize = 4096;
    let start = offset / PAGE * PAGE;
    let end = (offset + len).min(map.len());
    if end <= start {
        return;
    }
    // SAFETY: `map` is a read-only mapping of a file litert does not write. After
    // MADV_DONTNEED the next access faults the same bytes back in from the file, so no
    // reference into the map ever observes different contents.
    #[allow(unsafe_code)]
    let _ = unsafe {
        map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
    };
}

/// The directory a path lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Write `bytes` to `path` atomically. The file keeps the mode of the file it replaces, or
/// gets the mode the process umask gives a new file.
pub fn write_atomic(path: &Path, bytes: impl AsRef<[u8]>) -> io::Result<()> {
    stage(path, bytes)?.commit()
}

/// Write `bytes` to a new file at `path`, atomically; never replaces a file that is there
/// (or that appears meanwhile): `AlreadyExists` instead.
pub fn write_new(path: &Path, bytes: impl AsRef<[u8]>) -> io::Result<()> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(io::Error::from(io::ErrorKind::AlreadyExists));
    }
    let staged = stage(path, bytes)?;
    staged
        .tmp
        .persist_noclobber(&staged.dest)
        .map_err(|e| e.error)?;
    sync_dir(parent_dir(path));
    Ok(())
}

/// Append `text` to the file at `path`, creating it: for files other programs own and
/// read afterwards (a CI job summary, `$GITHUB_STEP_SUMMARY`), where appending is the
/// contract and an atomic replace would drop what others wrote.
pub fn append(path: &Path, text: &str) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.flush()
}

/// A file written in full next to its destination, not yet moved into place: what
/// [`write_atomic`] does in two steps, for callers that change several files together and
/// must know every one is written before any replaces its predecessor. Removed on drop
/// unless committed.
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
}

/// Write `bytes` beside `path` (flushed, with the mode `path` should get), to be moved into
/// place by [`Staged::commit`].
pub fn stage(path: &Path, bytes: impl AsRef<[u8]>) -> io::Result<Staged> {
    stage_with(path, |w| w.write_all(bytes.as_ref())).map(|(staged, ())| staged)
}

/// [`stage`], with the bytes streamed by `write` through a buffer instead of held whole: for
/// files larger than memory should hold (a model's weights). When `write` fails, its error
/// comes back and the temporary file is removed.
pub fn stage_with<T, E: From<io::Error>>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T, E>,
) -> Result<(Staged, T), E> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir)?;
    // `tempfile` opens with O_CREAT|O_EXCL under a random name: never through a symlink,
    // never a file someone else made.
    let mut tmp = tempfile::Builder::new()
        .prefix(".litert-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    let mut buffered = io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
    let value = write(&mut buffered)?;
    buffered.flush()?;
    drop(buffered);
    tmp.as_file().set_permissions(mode_for(path))?;
    tmp.as_file().sync_all()?;
    Ok((
        Staged {
            tmp,
            dest: path.to_path_buf(),
        },
        value,
    ))
}

/// [`write_atomic`] with the bytes streamed by `write` ([`stage_with`]).
pub fn write_atomic_with<T, E: From<io::Error>>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T, E>,
) -> Result<T, E> {
    let (staged, value) = stage_with(path, write)?;
    staged.commit()?;
    Ok(value)
}

impl Staged {
    /// Rename the file over its destination.
    pub fn commit(self) -> io::Result<()> {
        self.tmp.persist(&self.dest).map_err(|e| e.error)?;
        sync_dir(parent_dir(&self.dest));
        Ok(())
    }
}

/// Move a finished file into place at `dest`, giving it `dest`'s mode (see [`mode_for`]).
pub fn persist(finished: &Path, dest: &Path) -> io::Result<()> {
    prepare(finished, dest)?;
    rename_into_place(finished, dest)
}

/// The first half of [`persist`]: give a finished file `dest`'s mode and flush it to disk.
pub fn prepare(finished: &Path, dest: &Path) -> io::Result<()> {
    std::fs::set_permissions(finished, mode_for(dest))?;
    if let Ok(f) = File::open(finished) {
        f.sync_all()?;
    }
    Ok(())
}

/// The second half of [`persist`]: rename a prepared file over `dest`.
pub fn rename_into_place(finished: &Path, dest: &Path) -> io::Result<()> {
    std::fs::rename(finished, dest)?;
    sync_dir(parent_dir(dest));
    Ok(())
}

/// The permissions a file written at `path` should get: those of the file there now, or
/// `0666` less the process umask for a new file (what `open(2)` would have given it).
pub fn mode_for(path: &Path) -> Permissions {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => Permissions::from_mode(m.permissions().mode() & 0o7777),
        _ => Permissions::from_mode(0o666 & !umask()),
    }
}

/// The process umask, read from `/proc` (changing it to read it would race other threads);
/// `022` where it cannot be read.
pub fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// A private directory (mode 0700, unpredictable name) next to a destination, for tools that
/// write a file by name (the converter): nobody else can plant a file or symlink inside it.
/// Removed with everything in it when dropped.
pub struct PrivateDir {
    dir: tempfile::TempDir,
}

impl PrivateDir {
    /// Create one in the directory of `dest`, creating that directory if needed.
    pub fn beside(dest: &Path) -> io::Result<Self> {
        let parent = parent_dir(dest);
        std::fs::create_dir_all(parent)?;
        let dir = tempfile::Builder::new()
            .prefix(".litert-build-")
            .permissions(Permissions::from_mode(0o700))
            .tempdir_in(parent)?;
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Best effort: make a rename durable. Some file systems refuse to sync a directory.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn replaces_atomically_and_keeps_the_previous_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.yaml");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o640)).unwrap();
        write_atomic(&path, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        // Nothing else is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_streamed_file_appears_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bin");
        let n = write_atomic_with(&path, |w| {
            for _ in 0..3 {
                w.write_all(b"abc")?;
            }
            Ok::<_, io::Error>(9)
        })
        .unwrap();
        assert_eq!(
            (n, std::fs::read(&path).unwrap()),
            (9, b"abcabcabc".to_vec())
        );
        let err = write_atomic_with(&path, |w| {
            w.write_all(b"partial")?;
            Err::<(), _>(io::Error::other("source gone"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "source gone");
        assert_eq!(std::fs::read(&path).unwrap(), b"abcabcabc");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_new_file_follows_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/b.yaml");
        write_atomic(&path, "x").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask());
    }

    #[test]
    fn a_symlink_at_the_destination_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, "keep").unwrap();
        let path = dir.path().join("out.yaml");
        symlink(&victim, &path).unwrap();
        write_atomic(&path, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
    }

    #[test]
    fn private_dirs_are_closed_to_others_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let kept;
        {
            let private = PrivateDir::beside(&dir.path().join("x/model.tflite")).unwrap();
            let mode = std::fs::metadata(private.path())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o700);
            std::fs::write(private.join("model.tflite"), "m").unwrap();
            kept = private.path().to_path_buf();
        }
        assert!(!kept.exists());
    }
}
