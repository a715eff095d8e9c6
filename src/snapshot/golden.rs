//! Where golden outputs live, beside the snapshot they go with: `snapshots/<id>.golden.npz`
//! (a few inputs as fed to the artifact and Keras' outputs for them) and
//! `snapshots/<id>.golden.json` (what the apply that made them measured). Before they are
//! committed, they wait beside the temporary artifact, where the worker (or a cache restore)
//! leaves them. The build (`engine::golden`) and the remote cache both follow this layout;
//! what the files hold is the build's business.

use std::path::{Path, PathBuf};

/// Where the worker leaves the golden data for the artifact it writes at `temp_artifact`.
pub fn worker_path(temp_artifact: &Path) -> PathBuf {
    let mut name = temp_artifact.as_os_str().to_owned();
    name.push(".golden.npz");
    PathBuf::from(name)
}

/// Where an artifact restored from the remote cache brings the record of the build that
/// made it (the worker never writes one: a fresh build's record is made from its report).
pub fn restored_record_path(temp_artifact: &Path) -> PathBuf {
    let mut name = temp_artifact.as_os_str().to_owned();
    name.push(".golden.json");
    PathBuf::from(name)
}

/// `snapshots/<id>.golden.npz` for the snapshot `snapshots/<id>.yaml`.
pub fn npz_path(snapshot: &Path) -> PathBuf {
    snapshot.with_extension("golden.npz")
}

/// `snapshots/<id>.golden.json`.
pub fn record_path(snapshot: &Path) -> PathBuf {
    snapshot.with_extension("golden.json")
}
