//! Where an artifact came from, carried in the artifact itself: four LiteRT metadata entries
//! (`litert.artifact`, `litert.recipe`, `litert.plan`, `litert.toolchain`) naming its id in
//! `litert.lock`, its recipe relative to the project root, the digest of the resolved recipe
//! variant and the toolchain that built it. The engine makes them from the plan; the worker
//! adds them to a converted artifact and the native writer writes them; the reader decodes
//! them for `litert inspect`, so a `.tflite` found on a device leads back to its recipe and
//! its lock entry.
//!
//! Everything in them is known before the build and the same on every machine (no time, no
//! absolute path, not the artifact's own sha256), so the bytes stay reproducible and the lock,
//! which records the artifact's sha256, does not depend on itself.

use serde::{Deserialize, Serialize};

/// The metadata entry names, in the order they are written.
pub const ENTRIES: [&str; 4] = [
    "litert.artifact",
    "litert.recipe",
    "litert.plan",
    "litert.toolchain",
];

/// Longest value read back: the entries are short text, a longer one is not ours.
const MAX_VALUE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The artifact's id (`name` or `name:variant`), its key in `litert.lock`.
    pub artifact: String,
    /// The recipe, relative to the project root (`/` separators).
    pub recipe: String,
    /// The digest of the resolved recipe variant (the lock's `inputs.plan`).
    pub plan: String,
    /// The litert version, worker environment and code that built it (the lock's
    /// `inputs.toolchain`).
    pub toolchain: String,
}

impl Provenance {
    /// The metadata entries, as (name, UTF-8 value) in [`ENTRIES`] order.
    pub fn entries(&self) -> Vec<(String, String)> {
        let values = [&self.artifact, &self.recipe, &self.plan, &self.toolchain];
        ENTRIES
            .iter()
            .zip(values)
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect()
    }

    /// The provenance in a model's metadata (name, value bytes), when all four entries are
    /// there as UTF-8 text; `None` for a model litert did not build.
    pub fn from_metadata<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Option<Self> {
        let mut values: [Option<String>; 4] = Default::default();
        for (name, bytes) in entries {
            let Some(slot) = ENTRIES.iter().position(|e| *e == name) else {
                continue;
            };
            if bytes.len() > MAX_VALUE {
                return None;
            }
            values[slot] = Some(String::from_utf8(bytes.to_vec()).ok()?);
        }
        let [Some(artifact), Some(recipe), Some(plan), Some(toolchain)] = values else {
            return None;
        };
        Some(Self {
            artifact,
            recipe,
            plan,
            toolchain,
        })
    }

    /// Whether `name` is one of the provenance entries.
    pub fn is_entry(name: &str) -> bool {
        ENTRIES.contains(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Provenance {
        Provenance {
            artifact: "clf:int8".into(),
            recipe: "recipes/clf.yaml".into(),
            plan: "sha256:ab".into(),
            toolchain: "litert 0.1.0 / worker 12 / code 34".into(),
        }
    }

    #[test]
    fn entries_read_back() {
        let entries = sample().entries();
        let read = Provenance::from_metadata(
            entries
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes()))
                .chain([("min_runtime_version", &b"2.6.0\0"[..])]),
        );
        assert_eq!(read, Some(sample()));
    }

    #[test]
    fn a_partial_or_binary_set_is_not_provenance() {
        let entries = sample().entries();
        let partial = entries[..3].iter().map(|(n, v)| (n.as_str(), v.as_bytes()));
        assert_eq!(Provenance::from_metadata(partial), None);
        let binary = entries.iter().map(|(n, v)| {
            let bytes: &[u8] = if n == "litert.plan" {
                &[0xff, 0xfe]
            } else {
                v.as_bytes()
            };
            (n.as_str(), bytes)
        });
        assert_eq!(Provenance::from_metadata(binary), None);
    }
}
