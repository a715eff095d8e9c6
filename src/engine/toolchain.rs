//! The toolchain part of a build's identity, the lock's `inputs.toolchain`:
//! `litert VERSION / worker ENV / code CODE`. `ENV` names the pinned worker environment (the
//! digest of the embedded requirements lock, or `external` for an interpreter the user
//! named); `CODE` is a digest of the code that shapes an artifact's bytes, taken from the
//! sources compiled into this binary: the embedded worker package, the native writer, the
//! provenance it records and the rules that turn a recipe into converter settings. A litert
//! that would write other bytes thus has another identity even at the same version, and
//! the artifacts it did not build are stale (docs/reproducibility.md).

use std::sync::OnceLock;

use crate::digest::Hasher;

/// Collect a source file beside its path under `src/`.
macro_rules! source {
    ($path:literal) => {
        ($path, include_str!(concat!("../", $path)))
    };
}

/// The Rust and Python sources besides the worker package whose changes can change an
/// artifact's bytes. A test holds this list to the directories it covers.
const SOURCES: &[(&str, &str)] = &[
    source!("engine/native.rs"),
    source!("llm/decoder.rs"),
    source!("llm/graph.rs"),
    source!("llm/h5_index.py"),
    source!("llm/layout.rs"),
    source!("llm/lora.rs"),
    source!("llm/lora_targets.py"),
    source!("llm/mod.rs"),
    source!("llm/preset.rs"),
    source!("llm/quant.rs"),
    source!("llm/weights.rs"),
    source!("provenance.rs"),
    source!("recipe/rules/converter.rs"),
    source!("recipe/rules/quantization.rs"),
    source!("tflite/write/build.rs"),
    source!("tflite/write/mod.rs"),
    source!("tflite/write/validate.rs"),
];

/// This litert's toolchain identity.
pub fn identity(external_python: bool) -> String {
    let worker = if external_python {
        EXTERNAL.to_string()
    } else {
        crate::pyenv::lock::Lock::embedded()
            .map_or_else(|_| "unknown".to_string(), |l| l.short_digest().to_string())
    };
    format!(
        "litert {} / worker {worker} / code {}",
        env!("CARGO_PKG_VERSION"),
        code_digest()
    )
}

const EXTERNAL: &str = "external";

/// Whether `identity` names an external interpreter rather than the pinned environment.
pub fn is_external(identity: &str) -> bool {
    identity
        .split(" / ")
        .any(|part| part == format!("worker {EXTERNAL}"))
}

/// The digest of the code that shapes the bytes: 16 hex digits.
pub fn code_digest() -> &'static str {
    static DIGEST: OnceLock<String> = OnceLock::new();
    DIGEST.get_or_init(|| {
        digest_of(
            crate::worker::process::SCRIPT_FILES
                .iter()
                .map(|(path, text)| (format!("worker/python/{path}"), *text))
                .chain(SOURCES.iter().map(|(path, text)| (path.to_string(), *text))),
        )
    })
}

fn digest_of<'a>(files: impl Iterator<Item = (String, &'a str)>) -> String {
    let mut h = Hasher::new();
    h.field("litert-code-digest", "1");
    for (path, text) in files {
        h.field(&path, text);
    }
    let full = h.finish();
    full.trim_start_matches("sha256:")[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of the directories the digest covers is in it: a new writer module
    /// cannot be left out.
    #[test]
    fn the_code_digest_covers_every_writer_source() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut on_disk = Vec::new();
        for dir in ["llm", "tflite/write"] {
            for entry in std::fs::read_dir(src.join(dir)).unwrap().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                // The writer's own tests write nothing into artifacts.
                if name != "tests.rs" {
                    on_disk.push(format!("{dir}/{name}"));
                }
            }
        }
        on_disk.sort();
        let listed: Vec<&str> = SOURCES
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| p.starts_with("llm/") || p.starts_with("tflite/write/"))
            .collect();
        assert_eq!(listed, on_disk, "list new writer sources in SOURCES");
    }

    #[test]
    fn any_change_to_a_source_changes_the_identity() {
        let files = || {
            crate::worker::process::SCRIPT_FILES
                .iter()
                .chain(SOURCES)
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect::<Vec<_>>()
        };
        let digest = |files: &[(String, String)]| {
            digest_of(files.iter().map(|(p, t)| (p.clone(), t.as_str())))
        };
        let base = files();
        let before = digest(&base);
        for i in 0..base.len() {
            let mut changed = base.clone();
            changed[i].1.push(' ');
            assert_ne!(digest(&changed), before, "{}", base[i].0);
        }
        assert!(identity(false).ends_with(&format!(" / code {}", code_digest())));
        assert_eq!(code_digest().len(), 16);
    }

    #[test]
    fn an_external_interpreter_is_named() {
        assert!(is_external(&identity(true)));
        assert!(!is_external(&identity(false)));
        assert!(!is_external("litert 0.1.0 / worker d3b619f8ae82573a"));
    }
}
