//! The semantic difference of two bundles: what would change for an app that runs them.
//! Sections match by type and `model_type` item (the n-th of each kind with the n-th);
//! embedded models are compared by the `.tflite` diff, tokenizers by kind, size, special
//! tokens and digest, the LlmMetadata field by field. `docs/inspect.md` lists the kinds.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::model::{BundleInfo, SectionInfo};
use crate::diff::{Diff, Kind};
use crate::tflite::diff::{ChangeKind as ModelChangeKind, diff as model_diff};

/// The result of comparing bundle `a` with bundle `b`; a change inside an embedded model
/// carries the `.tflite` diff's kind as `model_change`.
pub type BundleDiff = Diff<ChangeKind, ModelChangeKind>;

/// One difference between two bundles.
pub type Change = crate::diff::Change<ChangeKind, ModelChangeKind>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    FormatVersionChanged,
    SystemMetadataAdded,
    SystemMetadataRemoved,
    SystemMetadataChanged,
    SectionAdded,
    SectionRemoved,
    SectionItemsChanged,
    SectionContentChanged,
    ModelChanged,
    TokenizerChanged,
    LlmMetadataChanged,
    ProblemsChanged,
}

impl Kind for ChangeKind {
    fn marker(self) -> char {
        match self {
            Self::SystemMetadataAdded | Self::SectionAdded => '+',
            Self::SystemMetadataRemoved | Self::SectionRemoved => '-',
            _ => '~',
        }
    }
}

/// The key sections are matched by: type, then `model_type`, then rank among equals.
fn keys(info: &BundleInfo) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    info.sections
        .iter()
        .map(|s| {
            let mut key = s.data_type.clone();
            if let Some(mt) = s.items.iter().find(|kv| kv.key == "model_type") {
                key.push_str(&format!("({})", mt.value.as_str().unwrap_or("?")));
            }
            let n = seen.iter().filter(|k| **k == key).count();
            seen.push(key.clone());
            if n > 0 {
                key.push_str(&format!("/{n}"));
            }
            key
        })
        .collect()
}

pub fn diff(a: &BundleInfo, b: &BundleInfo) -> BundleDiff {
    let mut changes: Vec<Change> = Vec::new();
    let push = |changes: &mut Vec<Change>, kind, path, va, vb, message| {
        changes.push(Change::new(kind, path, va, vb, message));
    };
    if a.format_version != b.format_version {
        push(
            &mut changes,
            ChangeKind::FormatVersionChanged,
            "format_version".into(),
            json!(a.format_version),
            json!(b.format_version),
            format!(
                "format version {} -> {}",
                a.format_version, b.format_version
            ),
        );
    }
    for kv in &a.system_metadata {
        match b.system_metadata.iter().find(|o| o.key == kv.key) {
            None => push(
                &mut changes,
                ChangeKind::SystemMetadataRemoved,
                format!("system_metadata/{}", kv.key),
                kv.value.clone(),
                Value::Null,
                format!("system metadata `{}` removed", kv.key),
            ),
            Some(o) if o.value != kv.value || o.value_type != kv.value_type => push(
                &mut changes,
                ChangeKind::SystemMetadataChanged,
                format!("system_metadata/{}", kv.key),
                kv.value.clone(),
                o.value.clone(),
                format!("system metadata `{}` {} -> {}", kv.key, kv.value, o.value),
            ),
            Some(_) => {}
        }
    }
    for kv in &b.system_metadata {
        if !a.system_metadata.iter().any(|o| o.key == kv.key) {
            push(
                &mut changes,
                ChangeKind::SystemMetadataAdded,
                format!("system_metadata/{}", kv.key),
                Value::Null,
                kv.value.clone(),
                format!("system metadata `{}` = {} added", kv.key, kv.value),
            );
        }
    }
    let (ka, kb) = (keys(a), keys(b));
    for (key, sa) in ka.iter().zip(&a.sections) {
        match kb.iter().position(|k| k == key) {
            None => push(
                &mut changes,
                ChangeKind::SectionRemoved,
                format!("sections/{key}"),
                json!(sa.size_bytes),
                Value::Null,
                format!("section {key} removed ({} bytes)", sa.size_bytes),
            ),
            Some(j) => section(&mut changes, key, sa, &b.sections[j]),
        }
    }
    for (key, sb) in kb.iter().zip(&b.sections) {
        if !ka.contains(key) {
            changes.push(Change::new(
                ChangeKind::SectionAdded,
                format!("sections/{key}"),
                Value::Null,
                json!(sb.size_bytes),
                format!("section {key} added ({} bytes)", sb.size_bytes),
            ));
        }
    }
    if a.problems != b.problems {
        changes.push(Change::new(
            ChangeKind::ProblemsChanged,
            "problems".into(),
            json!(a.problems),
            json!(b.problems),
            format!(
                "runtime problems: {} -> {}",
                a.problems.len(),
                b.problems.len()
            ),
        ));
    }
    BundleDiff::new(a.file.clone(), b.file.clone(), changes)
}

fn section(changes: &mut Vec<Change>, key: &str, a: &SectionInfo, b: &SectionInfo) {
    let push = |changes: &mut Vec<Change>, kind, path, va, vb, message| {
        changes.push(Change::new(kind, path, va, vb, message));
    };
    if a.items != b.items {
        push(
            changes,
            ChangeKind::SectionItemsChanged,
            format!("sections/{key}/items"),
            json!(a.items),
            json!(b.items),
            format!("section {key} items changed"),
        );
    }
    if let (Some(ma), Some(mb)) = (&a.model, &b.model) {
        for c in model_diff(ma, mb).changes {
            changes.push(Change {
                kind: ChangeKind::ModelChanged,
                path: format!("sections/{key}/model/{}", c.path),
                a: c.a,
                b: c.b,
                model_change: Some(c.kind),
                message: format!("model: {}", c.message),
            });
        }
        return;
    }
    if let (Some(ta), Some(tb)) = (&a.tokenizer, &b.tokenizer)
        && (ta != tb || a.sha256 != b.sha256)
    {
        let what = if ta.kind != tb.kind {
            format!("{} -> {}", ta.kind, tb.kind)
        } else if ta.vocab_size != tb.vocab_size {
            format!("vocabulary {} -> {} pieces", ta.vocab_size, tb.vocab_size)
        } else if ta.special_tokens != tb.special_tokens {
            "special tokens changed".to_string()
        } else {
            "pieces changed".to_string()
        };
        push(
            changes,
            ChangeKind::TokenizerChanged,
            format!("sections/{key}/tokenizer"),
            json!({"tokenizer": ta, "sha256": a.sha256}),
            json!({"tokenizer": tb, "sha256": b.sha256}),
            format!("tokenizer: {what}"),
        );
        return;
    }
    if let (Some(la), Some(lb)) = (&a.llm_metadata, &b.llm_metadata) {
        let (va, vb) = (json!(la), json!(lb));
        if let (Value::Object(fa), Value::Object(fb)) = (&va, &vb) {
            for (field, x) in fa {
                let y = fb.get(field).unwrap_or(&Value::Null);
                if x != y {
                    push(
                        changes,
                        ChangeKind::LlmMetadataChanged,
                        format!("llm_metadata/{field}"),
                        x.clone(),
                        y.clone(),
                        format!("llm_metadata {field}: {x} -> {y}"),
                    );
                }
            }
        }
        return;
    }
    if a.sha256 != b.sha256 || a.size_bytes != b.size_bytes {
        push(
            changes,
            ChangeKind::SectionContentChanged,
            format!("sections/{key}"),
            json!(a.sha256),
            json!(b.sha256),
            format!(
                "section {key} content changed ({} -> {} bytes)",
                a.size_bytes, b.size_bytes
            ),
        );
    }
}
