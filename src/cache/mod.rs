//! The remote build cache: artifacts shared between CI runners and laptops through an object
//! store (`s3://`, `gs://`, `az://`, plain `http(s)://` GET/PUT, `file://`), addressed by
//! the digests of what built them. The key is made from an artifact's build inputs (resolved
//! recipe, model source, calibration data, toolchain), exactly what the lock compares. Under
//! it: `artifact.tflite`, `golden.npz` (the golden outputs `litert test` re-runs the artifact
//! on, when the build made them) and `record.json`, a [`Record`] of both that also carries
//! the signature snapshot and the golden outputs' record.
//!
//! Nothing fetched is trusted: the record must be the one for this key and these inputs,
//! every object's sha256 and size must be the record's, and the artifact read natively must
//! render the record's snapshot. A server that is down, a missing object or a corrupt one is
//! never an error here: the caller is told why the cache could not help and builds locally.
//! The first transport failure marks the cache down for the rest of the run, so a dead server
//! costs one timeout, not one per artifact.

pub mod record;
pub mod settings;
pub mod store;

use std::path::Path;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

pub use record::{Blob, Golden, Record};
pub use settings::Settings;

use crate::lock::{Entry, Inputs};
use crate::recipe::BuildPlan;
use crate::snapshot::{Snapshot, golden};
use crate::tflite;
use crate::worker::protocol::{BuildResult, SignatureInput};

/// Where a cache's objects live under its prefix; bumped when their layout changes.
const LAYOUT: &str = "litert-cache-v1";

/// The cache key of a build: hex sha256 over its input digests, framed.
pub fn key(inputs: &Inputs) -> String {
    let mut h = crate::digest::Hasher::new();
    h.field("litert-cache-key", "1");
    h.field("plan", &inputs.plan);
    h.field("model", &inputs.model);
    h.field(
        "calibration",
        inputs.calibration.as_deref().unwrap_or("none"),
    );
    h.field("toolchain", &inputs.toolchain);
    h.finish().trim_start_matches("sha256:").to_string()
}

/// Whether the cache can hold what `plan` builds: not an artifact with a `.litertlm`
/// bundle, which the cache does not keep (its lock entry names the bundle too).
pub fn cacheable(plan: &BuildPlan) -> bool {
    plan.generation.as_ref().is_none_or(|g| g.bundle.is_none())
}

/// A verified artifact from the cache, written to the path the caller gave (and its golden
/// outputs beside it, where a build's worker leaves them: [`golden::worker_path`]).
#[derive(Debug)]
pub struct Hit {
    pub record: Record,
    /// The worker's report, or one made from the artifact itself when the record has none.
    pub report: Box<BuildResult>,
}

/// What a look-up found.
#[derive(Debug)]
pub enum Lookup {
    Hit(Box<Hit>),
    /// Nothing stored under the key.
    Miss,
    /// Something is stored but unusable (corrupt, truncated, inconsistent), or the cache
    /// cannot be reached: the reason, for a warning.
    Unusable(String),
}

/// What is stored under a key, without downloading the artifact (`litert cache status`).
#[derive(Debug)]
pub enum Presence {
    Present(Box<Record>),
    Absent,
    Unusable(String),
}

/// What a push did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Stored,
    /// A record was already there: content-addressed entries are never overwritten.
    AlreadyThere,
}

/// An open cache.
pub struct Remote {
    url: String,
    read_only: bool,
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    runtime: tokio::runtime::Runtime,
    /// Why the cache was given up on in this run (the first transport failure).
    down: Mutex<Option<String>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.url)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// A transport or server failure (as opposed to a missing or corrupt object).
struct Down(String);

impl Remote {
    /// Open the cache `settings` name. Only the URL is checked; nothing is contacted.
    pub fn open(settings: &Settings) -> anyhow::Result<Self> {
        let location = store::parse(&settings.url)?;
        let (store, prefix) = store::open(&settings.url, &location)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Self {
            url: settings.url.clone(),
            read_only: settings.read_only,
            store,
            prefix,
            runtime,
            down: Mutex::new(None),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Why the cache was given up on in this run, if it was.
    pub fn down_reason(&self) -> Option<String> {
        self.down.lock().ok().and_then(|d| d.clone())
    }

    fn object(&self, key: &str, name: &str) -> StorePath {
        let mut path = self.prefix.clone();
        for part in [LAYOUT, key, name] {
            path = path.clone().join(part);
        }
        path
    }

    fn mark_down(&self, why: &str) -> String {
        let message = format!("the cache `{}` cannot be reached: {why}", self.url);
        if let Ok(mut d) = self.down.lock()
            && d.is_none()
        {
            *d = Some(message.clone());
        }
        message
    }

    /// Read a whole (small) object; `Ok(None)` when absent.
    fn get_small(&self, path: &StorePath) -> Result<Option<Vec<u8>>, Down> {
        self.runtime.block_on(async {
            match self.store.get(path).await {
                Ok(r) => r.bytes().await.map(|b| Some(b.to_vec())).map_err(down),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(down(e)),
            }
        })
    }

    /// Stream an object into `dest`; returns the bytes written, `Ok(None)` when absent.
    async fn get_to_file(&self, path: &StorePath, dest: &Path) -> Result<Option<u64>, Down> {
        use std::io::Write;
        let result = match self.store.get(path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(down(e)),
        };
        let mut file = std::fs::File::create(dest)
            .map_err(|e| Down(format!("cannot write `{}`: {e}", dest.display())))?;
        let mut stream = result.into_stream();
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(down)?;
            file.write_all(&chunk)
                .map_err(|e| Down(format!("cannot write `{}`: {e}", dest.display())))?;
            written += chunk.len() as u64;
        }
        // Not flushed to disk here: `dest` is a scratch file in the build's private
        // directory, and what is kept of it is flushed when it is committed.
        Ok(Some(written))
    }

    /// Look `key` up and, when it is there, download the artifact to `dest` and verify it
    /// (see the module docs). `id` is the artifact id the snapshot must name.
    ///
    /// Two round trips: the record (which carries the small text files), then the artifact
    /// and the golden outputs at once.
    pub fn fetch(&self, key: &str, inputs: &Inputs, id: &str, dest: &Path) -> Lookup {
        if let Some(why) = self.down_reason() {
            return Lookup::Unusable(why);
        }
        let bad = |why: String| {
            Lookup::Unusable(format!("cache entry {}: {why}", crate::digest::short(key)))
        };
        let record = match self.get_small(&self.object(key, "record.json")) {
            Ok(None) => return Lookup::Miss,
            Ok(Some(bytes)) => match Record::parse(&bytes, key, inputs) {
                Ok(r) => r,
                Err(why) => return bad(why),
            },
            Err(Down(why)) => return Lookup::Unusable(self.mark_down(&why)),
        };
        let mut files = vec![("artifact.tflite", &record.artifact, dest.to_path_buf())];
        if let Some(g) = &record.golden {
            files.push(("golden.npz", &g.npz, golden::worker_path(dest)));
        }
        let objects: Vec<StorePath> = files
            .iter()
            .map(|(name, _, _)| self.object(key, name))
            .collect();
        let fetched = self.runtime.block_on(futures_util::future::join_all(
            files
                .iter()
                .zip(&objects)
                .map(|((_, _, path), object)| self.get_to_file(object, path)),
        ));
        for ((name, blob, path), got) in files.iter().zip(fetched) {
            match got {
                Ok(Some(_)) => {}
                Ok(None) => return bad(format!("the `{name}` object is missing")),
                Err(Down(why)) => return Lookup::Unusable(self.mark_down(&why)),
            }
            let sha = crate::digest::file_sha256(path).unwrap_or_default();
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            if sha != blob.sha256 || size != blob.size {
                return bad(format!(
                    "the `{name}` object's bytes are not the record's (sha256 {} and {size} bytes, record {} and {} bytes)",
                    crate::digest::short(&sha),
                    crate::digest::short(&blob.sha256),
                    blob.size
                ));
            }
        }
        if let Some(g) = &record.golden
            && let Err(e) = std::fs::write(golden::restored_record_path(dest), &g.record)
        {
            return bad(format!("cannot write its golden record: {e}"));
        }
        // The artifact, read natively, must be the one the snapshot describes.
        let model = match tflite::read_path(dest, tflite::ReadOptions::default()) {
            Ok(m) => m,
            Err(e) => return bad(format!("the artifact cannot be read: {e}")),
        };
        if Snapshot::of(id, &model).render() != record.snapshot {
            return bad("the artifact's signature is not the one its snapshot records".into());
        }
        let report = match &record.report {
            Some(r) => {
                let mut r = r.clone();
                r.id = id.to_string();
                Box::new(r)
            }
            None => Box::new(report_from_artifact(id, &model, &record)),
        };
        Lookup::Hit(Box::new(Hit { record, report }))
    }

    /// What is stored under `key` (the record only).
    pub fn presence(&self, key: &str, inputs: &Inputs) -> Presence {
        if let Some(why) = self.down_reason() {
            return Presence::Unusable(why);
        }
        match self.get_small(&self.object(key, "record.json")) {
            Ok(None) => Presence::Absent,
            Ok(Some(bytes)) => match Record::parse(&bytes, key, inputs) {
                Ok(r) => Presence::Present(Box::new(r)),
                Err(why) => {
                    Presence::Unusable(format!("cache entry {}: {why}", crate::digest::short(key)))
                }
            },
            Err(Down(why)) => Presence::Unusable(self.mark_down(&why)),
        }
    }

    /// Store an artifact and its golden outputs under `record.key`, then the record (which
    /// carries the snapshot), so a reader never finds a record before its objects. An
    /// existing record is left alone.
    pub fn push(
        &self,
        record: &Record,
        artifact: &Path,
        golden_npz: Option<Vec<u8>>,
    ) -> Result<Pushed, String> {
        if self.read_only {
            return Err(format!("the cache `{}` is read-only in this run", self.url));
        }
        if let Some(why) = self.down_reason() {
            return Err(why);
        }
        let key = record.key.as_str();
        let record_path = self.object(key, "record.json");
        let exists = self.runtime.block_on(async {
            match self.store.head(&record_path).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(down(e)),
            }
        });
        match exists {
            Ok(true) => return Ok(Pushed::AlreadyThere),
            Ok(false) => {}
            Err(Down(why)) => return Err(self.mark_down(&why)),
        }
        let bytes = std::fs::read(artifact)
            .map_err(|e| format!("cannot read `{}`: {e}", artifact.display()))?;
        if crate::digest::sha256_hex(&bytes) != record.artifact.sha256 {
            return Err(format!(
                "`{}` changed since it was built; not pushed",
                artifact.display()
            ));
        }
        let mut objects = vec![(self.object(key, "artifact.tflite"), PutPayload::from(bytes))];
        if let Some(npz) = golden_npz {
            objects.push((self.object(key, "golden.npz"), PutPayload::from(npz)));
        }
        let puts = self.runtime.block_on(futures_util::future::join_all(
            objects
                .into_iter()
                .map(|(path, payload)| async move { self.store.put(&path, payload).await }),
        ));
        let record_put = match puts.into_iter().find_map(Result::err) {
            Some(e) => Err(e),
            None => self.runtime.block_on(self.store.put(
                &record_path,
                PutPayload::from(record.to_json().into_bytes()),
            )),
        };
        match record_put {
            Ok(_) => Ok(Pushed::Stored),
            Err(e) => Err(self.mark_down(&down(e).0)),
        }
    }

    /// Push the artifact of `plan` as its lock `entry` describes it, with its snapshot and
    /// golden outputs as they are in the project, and the worker's `report` when the build
    /// just happened here. The snapshot must still hold for the artifact (it is what the
    /// cache will serve).
    pub fn push_artifact(
        &self,
        plan: &BuildPlan,
        entry: &Entry,
        report: Option<&BuildResult>,
    ) -> Result<Pushed, String> {
        if !cacheable(plan) {
            return Err("its `.litertlm` bundle is not kept in the cache".into());
        }
        let model = tflite::read_path(&plan.output, tflite::ReadOptions::default())
            .map_err(|e| format!("cannot read `{}`: {e}", plan.output.display()))?;
        let snapshot = Snapshot::of(&plan.id, &model).render();
        if std::fs::read_to_string(&plan.snapshot).ok().as_deref() != Some(snapshot.as_str()) {
            return Err(format!(
                "its snapshot `{}` does not hold; run `litert apply` first",
                plan.snapshot.display()
            ));
        }
        let golden = read_golden(&plan.snapshot)?;
        let record = Record {
            format: record::FORMAT,
            key: key(&entry.inputs),
            id: plan.id.clone(),
            inputs: entry.inputs.clone(),
            artifact: Blob {
                sha256: entry.sha256.clone(),
                size: entry.size,
            },
            snapshot,
            golden: golden.as_ref().map(|(npz, record)| Golden {
                npz: Blob::of(npz),
                record: record.clone(),
            }),
            worker: entry.worker.clone(),
            build_seconds: entry.build_seconds,
            report: report.cloned(),
            litert: env!("CARGO_PKG_VERSION").to_string(),
        };
        self.push(&record, &plan.output, golden.map(|(npz, _)| npz))
    }
}

/// The bytes of an artifact's golden `.npz` and the text of its `.json` record.
type GoldenFiles = (Vec<u8>, String);

/// The golden files beside `snapshot`, when both are there (one without the other is not a
/// pair a build wrote: it is not pushed).
fn read_golden(snapshot: &Path) -> Result<Option<GoldenFiles>, String> {
    let npz = match std::fs::read(golden::npz_path(snapshot)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read the golden outputs: {e}")),
    };
    let record_path = golden::record_path(snapshot);
    match std::fs::read_to_string(&record_path) {
        Ok(text) => Ok(Some((npz, text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read `{}`: {e}", record_path.display())),
    }
}

fn down(e: object_store::Error) -> Down {
    // The backend's message names the operation and path; its source says why (refused
    // connection, HTTP status, timeout).
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(&format!(": {s_text}"));
        }
        source = s.source();
    }
    Down(text)
}

/// The report of an artifact whose worker report was not kept: its signature as the artifact
/// declares it, and the worker versions of the record; no parity or accuracy figures.
fn report_from_artifact(
    id: &str,
    model: &tflite::model::ModelInfo,
    record: &Record,
) -> BuildResult {
    let signature = model
        .signatures
        .first()
        .map(|s| {
            s.inputs
                .iter()
                .map(|t| SignatureInput {
                    name: t.name.clone(),
                    shape: t
                        .tensor
                        .shape_signature
                        .iter()
                        .map(|&d| (d >= 0).then_some(i64::from(d)))
                        .collect(),
                    dtype: t.tensor.dtype.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    BuildResult {
        id: id.to_string(),
        signature,
        parity: None,
        calibration: None,
        accuracy: None,
        timings: Default::default(),
        versions: record.worker.clone(),
        outputs: vec![],
        generation: None,
    }
}

#[cfg(test)]
mod tests {
    use super::record::samples::{inputs, record as sample_record};
    use super::*;

    #[test]
    fn keys_follow_every_input_and_only_the_inputs() {
        let base = key(&inputs());
        assert_eq!(base.len(), 64);
        assert_eq!(base, key(&inputs()));
        let mut i = inputs();
        i.calibration = Some("sha256:c".into());
        assert_ne!(key(&i), base);
        let mut i = inputs();
        i.toolchain = "u".into();
        assert_ne!(key(&i), base);
        let mut i = inputs();
        i.plan = "sha256:q".into();
        assert_ne!(key(&i), base);
    }

    #[test]
    fn a_local_cache_misses_then_refuses_a_record_without_objects() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("c").display());
        let remote = Remote::open(&Settings {
            url,
            read_only: false,
        })
        .unwrap();
        let k = key(&inputs());
        let dest = dir.path().join("a.tflite");
        assert!(matches!(
            remote.fetch(&k, &inputs(), "a", &dest),
            Lookup::Miss
        ));
        // A record whose objects never arrived (a writer that died) is unusable, not a hit.
        let record = sample_record(&k);
        let path = dir
            .path()
            .join("c")
            .join(LAYOUT)
            .join(&k)
            .join("record.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, record.to_json()).unwrap();
        match remote.fetch(&k, &inputs(), "a", &dest) {
            Lookup::Unusable(why) => {
                assert!(why.contains("`artifact.tflite` object is missing"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        // Not a transport failure: the cache stays usable.
        assert!(remote.down_reason().is_none());
    }

    #[test]
    fn read_only_caches_refuse_pushes() {
        let dir = tempfile::tempdir().unwrap();
        let remote = Remote::open(&Settings {
            url: format!("file://{}", dir.path().display()),
            read_only: true,
        })
        .unwrap();
        let record = sample_record("k");
        let err = remote
            .push(&record, &dir.path().join("x"), None)
            .unwrap_err();
        assert!(err.contains("read-only"), "{err}");
    }
}
