//! What the remote cache stores for one artifact besides its bytes and its golden outputs:
//! the record. It names the key it was stored under and the build inputs that key was made
//! from, gives the sha256 and size of each stored object, carries the small text files (the
//! signature snapshot and the golden outputs' record, so a restore takes two round trips),
//! what the lock needs from the machine that built it (worker versions, build time), and the
//! worker's report (parity, accuracy, calibration). A record is written last, so one that
//! exists points at objects that were complete when it was written; a reader still verifies
//! them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::lock::Inputs;
use crate::worker::protocol::BuildResult;

/// The record format this litert reads and writes.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub format: u32,
    /// The cache key (see [`super::key`]).
    pub key: String,
    /// The artifact id that was built (`name` or `name:variant`).
    pub id: String,
    pub inputs: Inputs,
    pub artifact: Blob,
    /// The signature snapshot, as `snapshots/<id>.yaml` holds it.
    pub snapshot: String,
    /// The golden outputs `litert test` re-runs the artifact on, with the record of the build
    /// that measured them; absent when the build made none (parity off, Flex ops, inputs over
    /// the size cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub golden: Option<Golden>,
    /// The worker that built it: Python and package versions (the lock's `worker`).
    pub worker: BTreeMap<String, String>,
    /// How long the build took where it ran; the lock records it for shard balancing.
    pub build_seconds: Option<f64>,
    /// The worker's report; absent for artifacts pushed by `litert cache push`, whose
    /// report was not kept.
    pub report: Option<BuildResult>,
    /// The litert version that wrote the record.
    pub litert: String,
}

/// One stored object: its sha256 (hex) and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blob {
    pub sha256: String,
    pub size: u64,
}

impl Record {
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Parse a stored record and check that it is the one `key` and `inputs` ask for: a
    /// record copied under another key (by hand or by a buggy writer) is not trusted.
    pub fn parse(bytes: &[u8], key: &str, inputs: &Inputs) -> Result<Self, String> {
        let record: Self =
            serde_json::from_slice(bytes).map_err(|e| format!("the record is not valid ({e})"))?;
        if record.format != FORMAT {
            return Err(format!(
                "the record has format {}, this litert reads {FORMAT}",
                record.format
            ));
        }
        if record.key != key {
            return Err(format!(
                "the record names key {} but is stored under {key}",
                crate::digest::short(&record.key)
            ));
        }
        if record.inputs != *inputs {
            return Err("the record's build inputs are not this artifact's".to_string());
        }
        let golden = record.golden.iter().map(|g| &g.npz);
        let well_formed = std::iter::once(&record.artifact)
            .chain(golden)
            .all(|b| is_hex_sha256(&b.sha256));
        if !well_formed {
            return Err("the record's sha256 values are malformed".to_string());
        }
        Ok(record)
    }
}

/// The two golden files of an artifact: `snapshots/<id>.golden.npz` (stored as its own
/// object) and the text of `snapshots/<id>.golden.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Golden {
    pub npz: Blob,
    pub record: String,
}

impl Blob {
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            sha256: crate::digest::sha256_hex(bytes),
            size: bytes.len() as u64,
        }
    }
}

fn is_hex_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Records for the cache's tests.
#[cfg(test)]
pub(super) mod samples {
    use super::*;

    pub fn inputs() -> Inputs {
        Inputs {
            plan: "sha256:p".into(),
            model: "sha256:m".into(),
            calibration: None,
            toolchain: "t".into(),
        }
    }

    /// A well-formed record of artifact `a` under `key`.
    pub fn record(key: &str) -> Record {
        Record {
            format: FORMAT,
            key: key.into(),
            id: "a".into(),
            inputs: inputs(),
            artifact: Blob {
                sha256: "a".repeat(64),
                size: 3,
            },
            snapshot: "a: 1\n".into(),
            golden: None,
            worker: BTreeMap::new(),
            build_seconds: Some(1.5),
            report: None,
            litert: "0.1.0".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::samples::{inputs, record as sample};
    use super::*;

    fn record() -> Record {
        sample("k")
    }

    #[test]
    fn round_trips_and_refuses_a_record_under_the_wrong_key_or_inputs() {
        let text = record().to_json();
        assert!(Record::parse(text.as_bytes(), "k", &inputs()).is_ok());
        let err = Record::parse(text.as_bytes(), "other", &inputs()).unwrap_err();
        assert!(err.contains("stored under other"), "{err}");
        let mut changed = inputs();
        changed.model = "sha256:x".into();
        assert!(Record::parse(text.as_bytes(), "k", &changed).is_err());
        assert!(Record::parse(b"{not json", "k", &inputs()).is_err());
        let mut bad = record();
        bad.artifact.sha256 = "zz".into();
        assert!(Record::parse(bad.to_json().as_bytes(), "k", &inputs()).is_err());
        let mut bad = record();
        bad.golden = Some(Golden {
            npz: Blob {
                sha256: "../x".into(),
                size: 1,
            },
            record: "{}".into(),
        });
        assert!(Record::parse(bad.to_json().as_bytes(), "k", &inputs()).is_err());
    }
}
