//! `inspect` and `diff` for LiteRT-LM bundles (`.litertlm`): loading with hinted errors and
//! the human renderings. `inspect.rs` and `diff.rs` route a file here when it starts with the
//! bundle magic; the description itself comes from `litertlm::reader`.

use std::fmt::Write as _;
use std::path::Path;

use super::Hinted;
use super::inspect::io_table;
use crate::litertlm::model::{BundleInfo, KeyValue};
use crate::litertlm::{ReadError, read_path};
use crate::units::group;

/// Is this path a bundle? By its first bytes, or by its extension (so that a bundle whose
/// first bytes are damaged still gets the bundle reader's error).
pub(crate) fn is_bundle(path: &Path) -> bool {
    crate::litertlm::is_litertlm(path) || path.extension().is_some_and(|e| e == "litertlm")
}

/// Read a bundle, turning reader errors into messages with a hint.
pub(crate) fn load(path: &Path) -> anyhow::Result<BundleInfo> {
    read_path(path).map_err(|err| {
        let hint = match &err {
            ReadError::Io { .. } => "check the path",
            ReadError::NotLitertlm(_) => {
                "LiteRT-LM bundles start with `LITERTLM`; is this a `.litertlm` file?"
            }
            ReadError::UnsupportedVersion(_) => {
                "this bundle was written for a newer LiteRT-LM format than litert reads"
            }
            ReadError::Invalid(_) | ReadError::Section { .. } => {
                "the bundle is damaged or truncated; build or download it again"
            }
        };
        let message = match &err {
            ReadError::Io { source, .. } => format!("{err}: {source}"),
            _ => err.to_string(),
        };
        anyhow::Error::new(Hinted::new(message, hint))
            .context(format!("cannot inspect `{}`", path.display()))
    })
}

fn value(kv: &KeyValue) -> String {
    match kv.value.as_str() {
        Some(s) => format!("{s:?}"),
        None => kv.value.to_string(),
    }
}

/// The human summary of a bundle.
pub fn render(info: &BundleInfo) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "{}", info.file);
    let _ = writeln!(
        w,
        "  size         {} bytes (header {} bytes)",
        group(info.size_bytes),
        group(info.header_bytes)
    );
    let _ = writeln!(w, "  format       LiteRT-LM {}", info.format_version);
    for kv in &info.system_metadata {
        let _ = writeln!(w, "  {:<12} {}", kv.key, value(kv));
    }

    let _ = writeln!(w);
    let _ = writeln!(w, "sections ({})", info.sections.len());
    let width = info
        .sections
        .iter()
        .map(|s| s.data_type.len())
        .max()
        .unwrap_or(0);
    for s in &info.sections {
        let items: Vec<String> = s
            .items
            .iter()
            .map(|kv| format!("{}={}", kv.key, value(kv)))
            .collect();
        let line = format!(
            "  {}  {:<width$}  {:>12} .. {:>12}  {:>14} bytes  {}",
            s.index,
            s.data_type,
            group(s.begin_offset),
            group(s.end_offset),
            group(s.size_bytes),
            items.join(" ")
        );
        let _ = writeln!(w, "{}", line.trim_end());
    }

    for s in &info.sections {
        if let Some(t) = &s.tokenizer {
            let _ = writeln!(w);
            let kind = match &t.model_type {
                Some(m) => format!("{} ({m})", t.kind),
                None => t.kind.clone(),
            };
            let _ = writeln!(
                w,
                "tokenizer (section {}): {kind}, {} pieces",
                s.index,
                group(t.vocab_size)
            );
            for sp in t.special_tokens.iter().take(12) {
                let piece = sp
                    .piece
                    .as_deref()
                    .map(|p| format!(" {p:?}"))
                    .unwrap_or_default();
                let _ = writeln!(w, "  {:<8} {}{piece}", sp.role, sp.id);
            }
            if t.special_tokens.len() > 12 {
                let _ = writeln!(w, "  ... {} more", t.special_tokens.len() - 12);
            }
        }
        if let Some(m) = &s.llm_metadata {
            let _ = writeln!(w);
            let _ = writeln!(w, "llm metadata (section {})", s.index);
            let start = m
                .start_token
                .as_ref()
                .map_or("(none)".into(), |t| t.render());
            let _ = writeln!(w, "  start token      {start}");
            let stops: Vec<String> = m.stop_tokens.iter().map(|t| t.render()).collect();
            let stops = if stops.is_empty() {
                "(none)".into()
            } else {
                stops.join("; ")
            };
            let _ = writeln!(w, "  stop tokens      {stops}");
            let _ = writeln!(w, "  max tokens       {}", m.max_num_tokens);
            if let Some(t) = &m.model_type {
                let _ = writeln!(w, "  model type       {t}");
            }
            if let Some(p) = &m.prompt_templates {
                for (role, a) in [
                    ("user", &p.user),
                    ("model", &p.model),
                    ("system", &p.system),
                ] {
                    if let Some(a) = a {
                        let _ = writeln!(
                            w,
                            "  {role:<6} template  prefix {:?} suffix {:?}",
                            a.prefix, a.suffix
                        );
                    }
                }
            }
            if let Some(j) = &m.jinja_prompt_template {
                let _ = writeln!(w, "  jinja template   {} chars", j.chars().count());
            }
            if let Some(s) = &m.sampler {
                let _ = writeln!(
                    w,
                    "  sampler          {} k {} p {} temperature {}",
                    s.kind, s.k, s.p, s.temperature
                );
            }
        }
        if let Some(model) = &s.model {
            for sig in &model.signatures {
                let _ = writeln!(w);
                let _ = writeln!(w, "model (section {}) signature `{}`", s.index, sig.key);
                io_table(w, Some("inputs"), &sig.inputs);
                io_table(w, Some("outputs"), &sig.outputs);
            }
        }
    }

    let _ = writeln!(w);
    if info.problems.is_empty() {
        let _ = writeln!(
            w,
            "LiteRT-LM: nothing missing (stop tokens, tokenizer, model, metadata)"
        );
    } else {
        let _ = writeln!(w, "problems");
        for p in &info.problems {
            let _ = writeln!(w, "  - {p}");
        }
    }
    out
}
