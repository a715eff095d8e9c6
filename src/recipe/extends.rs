//! A recipe and the chain of recipes it `extends:`: read (bounded in size), parsed with
//! spans, refused when a base is not a recipe (without ever printing its text) or when the
//! chain forms a cycle, and deep-merged, base first.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::load::{self, Document};
use crate::diag::{Diagnostic, FileId, Sources};

/// Read `path` and everything it extends, returning the merged document.
pub fn load_chain(path: &Path, sources: &mut Sources) -> Result<Document, Vec<Diagnostic>> {
    load_chain_from(path, None, sources)
}

/// [`load_chain`], with the recipe's own bytes given (`extends:` is still read from disk,
/// relative to `path`).
pub fn load_chain_from(
    path: &Path,
    bytes: Option<&[u8]>,
    sources: &mut Sources,
) -> Result<Document, Vec<Diagnostic>> {
    let mut stack: Vec<PathBuf> = Vec::new();
    let bytes = match bytes {
        Some(bytes) => bytes.to_vec(),
        None => read_bounded(path).map_err(|err| {
            vec![Diagnostic::error(
                "E0010",
                format!("cannot read `{}`: {}", path.display(), io_reason(&err)),
            )]
        })?,
    };
    if let Some(diag) = a_model_not_a_recipe(path, &bytes) {
        return Err(vec![diag]);
    }
    let file = sources.add(path, String::from_utf8_lossy(&bytes).into_owned());
    let doc = load::parse(file, &bytes).map_err(|d| vec![*d])?;
    follow_extends(path, doc, sources, &mut stack)
}

/// A model file given where a recipe was expected (`litert bench model.keras`): say what it
/// is and what takes it, instead of parsing its bytes as YAML.
fn a_model_not_a_recipe(path: &Path, bytes: &[u8]) -> Option<Diagnostic> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let magic = |m: &[u8]| bytes.starts_with(m);
    let keras = "a Keras model";
    let what = match ext.as_str() {
        "tflite" => "a LiteRT model",
        "litertlm" => "a LiteRT-LM bundle",
        "keras" | "h5" | "hdf5" => keras,
        "pb" => "a TensorFlow SavedModel file",
        "npz" | "npy" => "numpy data",
        _ if bytes.get(4..8) == Some(b"TFL3") => "a LiteRT model",
        _ if magic(b"\x89HDF\r\n\x1a\n") => "an HDF5 file (a legacy Keras model?)",
        _ if magic(b"PK\x03\x04") => "a zip archive (a `.keras` model?)",
        _ => return None,
    };
    let hint = if what.contains("LiteRT") {
        "`litert inspect`, `litert run` and `litert bench` take it as it is"
    } else if what == "numpy data" {
        "a recipe points to data under `calibration:` or `accuracy.data:`"
    } else {
        "`litert init MODEL` writes a starter recipe for a model; `litert apply` builds it, and `litert run`/`litert bench` take the `.tflite` it writes"
    };
    Some(
        Diagnostic::error(
            "E0013",
            format!("`{}` is {what}, not a recipe", path.display()),
        )
        .hint(hint),
    )
}

/// Merge `doc` (read from `path`) onto the chain of recipes it extends.
fn follow_extends(
    path: &Path,
    mut doc: Document,
    sources: &mut Sources,
    stack: &mut Vec<PathBuf>,
) -> Result<Document, Vec<Diagnostic>> {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    stack.push(canonical);
    let Some(extends) = doc.value.get("extends").cloned() else {
        stack.pop();
        return Ok(doc);
    };
    let ext_span = doc.spans.get("/extends").map(|s| s.value);
    let Value::String(rel) = extends else {
        // The schema reports the wrong type; drop the key so nothing else trips on it.
        return Ok(doc);
    };
    let base_path = path.parent().unwrap_or(Path::new(".")).join(&rel);
    let base_canonical = base_path
        .canonicalize()
        .unwrap_or_else(|_| base_path.clone());
    if let Some(pos) = stack.iter().position(|p| *p == base_canonical) {
        let cycle: Vec<String> = stack[pos..]
            .iter()
            .chain(std::iter::once(&base_canonical))
            .map(|p| {
                format!(
                    "`{}`",
                    p.file_name()
                        .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
                )
            })
            .collect();
        let mut diag = Diagnostic::error(
            "E0011",
            format!("`extends` forms a cycle: {}", cycle.join(" -> ")),
        );
        if let Some(loc) = ext_span {
            diag = diag.at(loc).label("extends a recipe that extends this one");
        }
        return Err(vec![
            diag.hint("a base recipe must not extend the recipes built on it"),
        ]);
    }
    let base = read_base(&base_path, &rel, ext_span, sources)?;
    let base = follow_extends(&base_path, base, sources, stack)?;
    stack.pop();
    if let Some(obj) = doc.value.as_object_mut() {
        obj.remove("extends");
    }
    Ok(merge_documents(base, &doc, ""))
}

/// Read the recipe an `extends:` names. It must be a recipe: a `.yaml`/`.yml` file holding a
/// mapping with `version:`. Until it is shown to be one, its text is not registered for
/// diagnostics, so naming a credentials file never prints a line of it.
fn read_base(
    base_path: &Path,
    rel: &str,
    named_at: Option<crate::diag::Loc>,
    sources: &mut Sources,
) -> Result<Document, Vec<Diagnostic>> {
    let not_a_recipe = |why: String| {
        let diag = Diagnostic::error("E0012", format!("`extends` names `{rel}`, which is not a recipe: {why}"))
            .hint("`extends` takes the path of a base recipe (a `.yaml` file with `version: 1`), relative to this recipe");
        vec![match named_at {
            Some(loc) => diag.at(loc).label("named here"),
            None => diag,
        }]
    };
    let yaml = base_path
        .extension()
        .is_some_and(|e| e == "yaml" || e == "yml");
    if !yaml {
        return Err(not_a_recipe(
            "its name does not end in `.yaml` or `.yml`".into(),
        ));
    }
    let bytes = read_bounded(base_path).map_err(|err| {
        let diag = Diagnostic::error(
            "E0010",
            format!("cannot read `{}`: {}", base_path.display(), io_reason(&err)),
        );
        vec![match named_at {
            Some(loc) => diag.at(loc).label("named here"),
            None => diag,
        }]
    })?;
    // Parse under the id the file will get, and register it only once it is a recipe.
    let file = FileId(sources.len());
    let doc = match load::parse(file, &bytes) {
        Ok(doc) => doc,
        Err(diag) => {
            // Only the position is reported, never the message (it may quote the file).
            let place = match diag.place {
                crate::diag::Place::Span(loc) => {
                    let mut scratch = Sources::default();
                    let id = scratch.add(base_path, String::from_utf8_lossy(&bytes).into_owned());
                    let (line, col) = scratch.line_col(id, loc.range().start);
                    format!(" at line {line}, column {col}")
                }
                _ => String::new(),
            };
            return Err(not_a_recipe(format!(
                "it does not parse as a recipe{place} (check it with `litert check {}`)",
                base_path.display()
            )));
        }
    };
    let has_version = doc
        .value
        .as_object()
        .is_some_and(|m| m.contains_key("version"));
    if !has_version {
        return Err(not_a_recipe("it is not a mapping with `version:`".into()));
    }
    let registered = sources.add(base_path, String::from_utf8_lossy(&bytes).into_owned());
    debug_assert_eq!(registered, file);
    Ok(doc)
}

/// Read at most one byte more than a recipe may have, so a huge file is refused without
/// being loaded.
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(std::io::Error::from(std::io::ErrorKind::IsADirectory));
    }
    let mut bytes = Vec::new();
    file.take(load::MAX_RECIPE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn io_reason(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "it is a directory".into(),
        _ => err.to_string(),
    }
}

/// Deep-merge `over` (whose spans are rooted at `over_prefix`) onto `base`.
pub(super) fn merge_documents(mut base: Document, over: &Document, over_prefix: &str) -> Document {
    // Only the part under `over_prefix` is copied: a recipe with many variants must not
    // copy the whole document once per variant.
    let over_value = over
        .value
        .pointer(over_prefix)
        .cloned()
        .unwrap_or(Value::Null);
    deep_merge(&mut base.value, over_value);
    for (rest, span) in over.spans.under(over_prefix) {
        base.spans.insert(rest, span);
    }
    base.spans.retain_existing(&base.value);
    base
}

/// Mappings merge key by key; anything else is replaced.
pub fn deep_merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, over) => *slot = over,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_merge_merges_maps_and_replaces_lists() {
        let mut base = serde_json::json!({"a": {"b": 1, "c": [1, 2]}, "d": 1});
        deep_merge(&mut base, serde_json::json!({"a": {"c": [3]}, "d": null}));
        assert_eq!(
            base,
            serde_json::json!({"a": {"b": 1, "c": [3]}, "d": null})
        );
    }
}
