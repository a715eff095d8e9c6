//! From a recipe path to one rendered document per variant: reads the `extends:` chain
//! (deep merge, cycles refused), splits out `variants:`, applies `--set` overrides to `vars:`
//! and renders minijinja templates in string values with strict undefined variables. Spans
//! follow every value through the merges, so later diagnostics point at the file and line
//! the value came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

use super::load::{self, Document, NodeSpan, Spans};
use crate::diag::{Diagnostic, Sources};

/// Keys that only make sense at the top of a recipe file, not inside a variant.
const TOP_LEVEL_ONLY: &[&str] = &["version", "extends", "vars", "env", "variants"];

/// Variant and recipe names share one form.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
        && name.len() <= 100
}

/// How the command line adjusts resolution.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--set NAME=VALUE`, in command-line order.
    pub sets: Vec<(String, String)>,
}

/// One variant of a recipe, merged and rendered, not yet checked against the rules.
#[derive(Debug, Clone)]
pub struct RenderedVariant {
    /// The recipe file named on the command line.
    pub recipe_path: PathBuf,
    pub variant: Option<String>,
    pub value: Value,
    pub spans: Spans,
}

/// Read `path` and everything it extends, returning the merged document.
pub fn load_chain(path: &Path, sources: &mut Sources) -> Result<Document, Vec<Diagnostic>> {
    let mut stack: Vec<PathBuf> = Vec::new();
    load_chain_inner(path, sources, &mut stack, None)
}

fn load_chain_inner(
    path: &Path,
    sources: &mut Sources,
    stack: &mut Vec<PathBuf>,
    referenced_at: Option<crate::diag::Loc>,
) -> Result<Document, Vec<Diagnostic>> {
    let bytes = match read_bounded(path) {
        Ok(bytes) => bytes,
        Err(err) => {
            let mut diag = Diagnostic::error(
                "E0010",
                format!("cannot read `{}`: {}", path.display(), io_reason(&err)),
            );
            if let Some(loc) = referenced_at {
                diag = diag.at(loc).label("named here");
            }
            return Err(vec![diag]);
        }
    };
    let file = sources.add(path, String::from_utf8_lossy(&bytes).into_owned());
    let mut doc = load::parse(file, &bytes).map_err(|d| vec![*d])?;
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
    let base = load_chain_inner(&base_path, sources, stack, ext_span)?;
    stack.pop();
    if let Some(obj) = doc.value.as_object_mut() {
        obj.remove("extends");
    }
    Ok(merge_documents(base, doc, ""))
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
fn merge_documents(mut base: Document, over: Document, over_prefix: &str) -> Document {
    let over_value = if over_prefix.is_empty() {
        over.value
    } else {
        over.value
            .pointer(over_prefix)
            .cloned()
            .unwrap_or(Value::Null)
    };
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

/// Split a merged document into its variants and render each one.
pub fn render_variants(
    recipe_path: &Path,
    doc: &Document,
    overrides: &Overrides,
) -> Result<Vec<RenderedVariant>, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let Some(root) = doc.value.as_object() else {
        // The schema says why; render the non-mapping as-is so validation reports it.
        return Ok(vec![RenderedVariant {
            recipe_path: recipe_path.to_path_buf(),
            variant: None,
            value: doc.value.clone(),
            spans: doc.spans.clone(),
        }]);
    };
    let vars = collect_vars(root, &doc.spans, overrides, &mut diags);
    let env = collect_env(root);
    let mut base = doc.clone();
    if let Some(obj) = base.value.as_object_mut() {
        obj.remove("variants");
    }
    base.spans.retain_existing(&base.value);

    let mut variants: Vec<(Option<String>, Document)> = Vec::new();
    match root.get("variants") {
        None | Some(Value::Null) => variants.push((None, base.clone())),
        Some(Value::Object(map)) if map.is_empty() => {
            diags.push(at(
                Diagnostic::error("E0271", "`variants` is empty")
                    .hint("remove `variants`, or name at least one variant"),
                doc.spans.get("/variants"),
            ));
        }
        Some(Value::Object(map)) => {
            for (name, body) in map {
                let prefix = format!("/variants/{}", load::escape_segment(name));
                if !is_valid_name(name) {
                    diags.push(at_key(
                        Diagnostic::error("E0272", format!("invalid variant name `{name}`"))
                            .label("not a valid name")
                            .note("names use lower-case letters, digits, `_`, `-` and `.`, starting with a letter or digit"),
                        doc.spans.get(&prefix),
                    ));
                    continue;
                }
                if let Value::Object(fields) = body {
                    for key in fields
                        .keys()
                        .filter(|k| TOP_LEVEL_ONLY.contains(&k.as_str()))
                    {
                        diags.push(at_key(
                            Diagnostic::error(
                                "E0270",
                                format!("`{key}` is not allowed inside variant `{name}`"),
                            )
                            .label("only allowed at the top of a recipe")
                            .hint(format!("move `{key}` to the top level of the recipe")),
                            doc.spans
                                .get(&format!("{prefix}/{}", load::escape_segment(key))),
                        ));
                    }
                } else if !body.is_null() {
                    diags.push(at(
                        Diagnostic::error(
                            "E0273",
                            format!("variant `{name}` must be a mapping of recipe fields"),
                        )
                        .label("expected a mapping"),
                        doc.spans.get(&prefix),
                    ));
                    continue;
                }
                let merged = merge_documents(base.clone(), doc.clone(), &prefix);
                variants.push((Some(name.clone()), merged));
            }
        }
        // Wrong type: the schema check reports it.
        Some(_) => variants.push((None, base.clone())),
    }
    if !diags.is_empty() {
        return Err(diags);
    }

    let mut out = Vec::new();
    for (variant, mut merged) in variants {
        let ctx = TemplateContext {
            vars: vars.clone(),
            env: env.clone(),
            name: template_name(recipe_path, &merged.value),
            variant: variant.clone(),
        };
        let mut value = std::mem::take(&mut merged.value);
        render_value(&mut value, "", &ctx, &merged.spans, &mut diags);
        out.push(RenderedVariant {
            recipe_path: recipe_path.to_path_buf(),
            variant,
            value,
            spans: merged.spans,
        });
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(dedupe(diags))
    }
}

/// The recipe's `name` (un-rendered), or the file stem, for use inside templates.
fn template_name(recipe_path: &Path, value: &Value) -> String {
    value
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| default_name(recipe_path))
}

/// A recipe's default name: its file stem.
pub fn default_name(recipe_path: &Path) -> String {
    recipe_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .map(|n| {
            n.strip_suffix(".yaml")
                .or_else(|| n.strip_suffix(".yml"))
                .unwrap_or(&n)
                .to_string()
        })
        .unwrap_or_default()
}

fn collect_vars(
    root: &Map<String, Value>,
    spans: &Spans,
    overrides: &Overrides,
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<String, Value> {
    let mut vars: BTreeMap<String, Value> = match root.get("vars") {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => BTreeMap::new(),
    };
    for (key, raw) in &overrides.sets {
        if !vars.contains_key(key) {
            let known: Vec<String> = vars.keys().cloned().collect();
            let mut diag = Diagnostic::error(
                "E0300",
                format!("`--set {key}=...` names no variable of this recipe"),
            );
            diag = match super::schema::did_you_mean(key, &known) {
                Some(best) => diag.hint(format!("did you mean `{best}`?")),
                None if known.is_empty() => {
                    diag.hint("declare it under `vars:` in the recipe first")
                }
                None => diag.note(format!(
                    "declared variables: {}",
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            let place = spans.get("/vars").or_else(|| spans.get(""));
            diags.push(match place {
                Some(span) => diag.in_file(span.value.file),
                None => diag,
            });
            continue;
        }
        vars.insert(key.clone(), parse_set_value(raw));
    }
    vars
}

/// `--set` values are YAML scalars: `8` is a number, `true` a boolean, anything else text.
fn parse_set_value(raw: &str) -> Value {
    if let Ok(n) = raw.parse::<i64>() {
        return Value::from(n);
    }
    if let Ok(f) = raw.parse::<f64>()
        && f.is_finite()
    {
        return Value::from(f);
    }
    match raw {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" | "~" => Value::Null,
        _ => Value::String(raw.to_string()),
    }
}

fn collect_env(root: &Map<String, Value>) -> BTreeMap<String, Option<String>> {
    let mut env = BTreeMap::new();
    if let Some(Value::Array(names)) = root.get("env") {
        for name in names.iter().filter_map(Value::as_str) {
            env.insert(name.to_string(), std::env::var(name).ok());
        }
    }
    env
}

#[derive(Debug, Clone)]
struct TemplateContext {
    vars: BTreeMap<String, Value>,
    env: BTreeMap<String, Option<String>>,
    name: String,
    variant: Option<String>,
}

impl TemplateContext {
    fn to_minijinja(&self) -> minijinja::Value {
        let mut ctx: BTreeMap<String, minijinja::Value> = BTreeMap::new();
        for (k, v) in &self.vars {
            ctx.insert(
                k.clone(),
                minijinja::Value::from(minijinja::value::Serde(v)),
            );
        }
        ctx.insert(
            "vars".into(),
            minijinja::Value::from(minijinja::value::Serde(&self.vars)),
        );
        let set_env: BTreeMap<&String, &String> = self
            .env
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
            .collect();
        ctx.insert(
            "env".into(),
            minijinja::Value::from(minijinja::value::Serde(&set_env)),
        );
        ctx.insert("name".into(), minijinja::Value::from(self.name.clone()));
        ctx.insert(
            "variant".into(),
            self.variant
                .clone()
                .map_or(minijinja::Value::from(""), minijinja::Value::from),
        );
        minijinja::Value::from(minijinja::value::Serde(&ctx))
    }
}

/// Render templates in every string value, except inside `vars` (its values are data) and
/// `description` (free text that may legitimately contain braces).
fn render_value(
    value: &mut Value,
    pointer: &str,
    ctx: &TemplateContext,
    spans: &Spans,
    diags: &mut Vec<Diagnostic>,
) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if pointer.is_empty() && (k == "vars" || k == "description" || k == "env") {
                    continue;
                }
                let child = format!("{pointer}/{}", load::escape_segment(k));
                render_value(v, &child, ctx, spans, diags);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                render_value(v, &format!("{pointer}/{i}"), ctx, spans, diags);
            }
        }
        Value::String(s) if s.contains("{{") || s.contains("{%") || s.contains("{#") => {
            match render_string(s, ctx) {
                Ok(rendered) => *value = rendered,
                Err(err) => diags.push(template_error(err, pointer, ctx, spans)),
            }
        }
        _ => {}
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env
}

/// A string that is exactly one `{{ expression }}` keeps the expression's type (so
/// `batch_size: "{{ batch }}"` becomes a number); anything else renders to text.
fn render_string(s: &str, ctx: &TemplateContext) -> Result<Value, minijinja::Error> {
    let env = environment();
    let trimmed = s.trim();
    if let Some(inner) = trimmed
        .strip_prefix("{{")
        .and_then(|r| r.strip_suffix("}}"))
        && !inner.contains("{{")
        && !inner.contains("}}")
    {
        let expr = env.compile_expression(inner.trim())?;
        let result = expr.eval(ctx.to_minijinja())?;
        if result.is_undefined() {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::UndefinedError,
                "undefined value",
            ));
        }
        return serde_json::to_value(&result).map_err(|e| {
            minijinja::Error::new(minijinja::ErrorKind::BadSerialization, e.to_string())
        });
    }
    env.render_str(s, ctx.to_minijinja()).map(Value::String)
}

fn template_error(
    err: minijinja::Error,
    pointer: &str,
    ctx: &TemplateContext,
    spans: &Spans,
) -> Diagnostic {
    let detail = err
        .detail()
        .map_or_else(|| err.kind().to_string(), str::to_string);
    let mut diag = Diagnostic::error(
        "E0301",
        format!(
            "template in {} failed: {detail}",
            super::schema::describe_path(pointer)
        ),
    )
    .label("in this template");
    if err.kind() == minijinja::ErrorKind::UndefinedError {
        let mut known: Vec<String> = ctx.vars.keys().map(|k| format!("`{k}`")).collect();
        known.extend(["`name`", "`variant`", "`vars.*`", "`env.*`"].map(String::from));
        diag = diag.note(format!("available: {}", known.join(", ")));
        let unset: Vec<&String> = ctx
            .env
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k)
            .collect();
        if !unset.is_empty() {
            diag = diag.hint(format!(
                "declared in `env:` but not set in the environment: {}",
                unset
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        } else {
            diag = diag
                .hint("declare variables under `vars:`, and environment variables under `env:`");
        }
    }
    at(diag, spans.nearest(pointer))
}

fn at(diag: Diagnostic, span: Option<NodeSpan>) -> Diagnostic {
    match span {
        Some(s) => diag.at(s.value),
        None => diag,
    }
}

fn at_key(diag: Diagnostic, span: Option<NodeSpan>) -> Diagnostic {
    match span {
        Some(s) => diag.at(s.key.unwrap_or(s.value)),
        None => diag,
    }
}

/// The same base-recipe mistake shows up once per variant; report it once.
pub fn dedupe(diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = Vec::with_capacity(diags.len());
    for d in diags {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> TemplateContext {
        TemplateContext {
            vars: BTreeMap::from([
                ("seq".into(), Value::from(128)),
                ("dir".into(), Value::from("m")),
            ]),
            env: BTreeMap::new(),
            name: "demo".into(),
            variant: Some("int8".into()),
        }
    }

    #[test]
    fn whole_expression_keeps_its_type() {
        assert_eq!(
            render_string("{{ seq }}", &ctx()).unwrap(),
            Value::from(128)
        );
        assert_eq!(
            render_string("{{ vars.seq * 2 }}", &ctx()).unwrap(),
            Value::from(256)
        );
    }

    #[test]
    fn mixed_text_renders_to_a_string() {
        assert_eq!(
            render_string("build/{{ name }}-{{ variant }}.tflite", &ctx()).unwrap(),
            Value::from("build/demo-int8.tflite")
        );
    }

    #[test]
    fn undefined_variables_are_errors() {
        assert!(render_string("{{ nope }}", &ctx()).is_err());
        assert!(render_string("x-{{ nope }}", &ctx()).is_err());
    }

    #[test]
    fn deep_merge_merges_maps_and_replaces_lists() {
        let mut base = serde_json::json!({"a": {"b": 1, "c": [1, 2]}, "d": 1});
        deep_merge(&mut base, serde_json::json!({"a": {"c": [3]}, "d": null}));
        assert_eq!(
            base,
            serde_json::json!({"a": {"b": 1, "c": [3]}, "d": null})
        );
    }

    #[test]
    fn set_values_are_yaml_scalars() {
        assert_eq!(parse_set_value("8"), Value::from(8));
        assert_eq!(parse_set_value("true"), Value::Bool(true));
        assert_eq!(parse_set_value("gemma_2b_en"), Value::from("gemma_2b_en"));
    }
}
