//! The shape of every semantic diff litert prints (`litert diff` of two `.tflite` models or
//! two `.litertlm` bundles): the two sides, whether they are equivalent, and the changes,
//! each with a kind, a path, both sides' values and a message; and its one human rendering.
//! Which kinds there are and how changes are found is the comparing module's
//! (`tflite::diff`, `litertlm::diff`); the JSON field names are the contract in
//! `docs/inspect.md`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a change kind says about itself.
pub trait Kind: Copy {
    /// `+` for something new in `b`, `-` for something gone, `~` for a change.
    fn marker(self) -> char;
}

/// The inner kind of a diff whose items embed nothing that is diffed in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Never {}

/// The result of comparing `a` with `b`: `K` is the comparison's kind of change, `I` the
/// kind of a change inside an embedded model (a bundle embeds `.tflite` models).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diff<K, I = Never> {
    pub a: String,
    pub b: String,
    pub equivalent: bool,
    pub changes: Vec<Change<K, I>>,
}

/// One difference. `a` and `b` hold the two sides' values (`null` for the missing side of an
/// addition or removal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change<K, I = Never> {
    pub kind: K,
    /// Where: `signatures/<key>/inputs/<name>`, `sections/<type>/...`, `size_bytes`, ...
    pub path: String,
    pub a: Value,
    pub b: Value,
    /// For a change inside an embedded model: that model diff's own kind.
    // A default function rather than `default`, which would ask `I: Default` of `Never`.
    #[serde(skip_serializing_if = "Option::is_none", default = "Option::default")]
    pub model_change: Option<I>,
    /// The change in words, as the human output prints it.
    pub message: String,
}

impl<K, I> Change<K, I> {
    pub fn new(kind: K, path: String, a: Value, b: Value, message: String) -> Self {
        Self {
            kind,
            path,
            a,
            b,
            model_change: None,
            message,
        }
    }
}

impl<K: Kind, I> Diff<K, I> {
    /// The diff of `a` and `b` (the files as named) made of `changes`.
    pub fn new(a: String, b: String, changes: Vec<Change<K, I>>) -> Self {
        Self {
            a,
            b,
            equivalent: changes.is_empty(),
            changes,
        }
    }

    /// The human form: a header, then one line per change marked `+`, `-` or `~`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "--- {}", self.a);
        let _ = writeln!(out, "+++ {}", self.b);
        if self.equivalent {
            let _ = writeln!(out, "no semantic differences");
            return out;
        }
        for c in &self.changes {
            let _ = writeln!(out, "{} {}", c.kind.marker(), c.message);
        }
        let n = self.changes.len();
        let _ = writeln!(out, "{n} difference{}", if n == 1 { "" } else { "s" });
        out
    }
}
