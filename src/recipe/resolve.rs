//! From a recipe's merged document (its `extends:` chain already laid under it, see
//! [`super::extends`]) to one rendered document per variant: splits out `variants:`,
//! applies `--set` overrides to `vars:` and renders minijinja templates in string values
//! ([`super::template`]). Spans follow every value through the merges, so later diagnostics
//! point at the file and line the value came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::extends::merge_documents;
use super::load::{self, Document, NodeSpan, Spans};
use super::template::{RECIPE_FUEL, Renderer, TEMPLATE_FUEL, TemplateContext};
use crate::diag::Diagnostic;

/// Keys that only make sense at the top of a recipe file, not inside a variant.
const TOP_LEVEL_ONLY: &[&str] = &["version", "extends", "vars", "env", "variants"];

/// More variants than any real recipe has; every variant is validated and planned on its
/// own, so the bound keeps `check` on a hostile recipe fast.
pub const MAX_VARIANTS: usize = 1000;

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
    /// The top-level keys the variant sets itself; every other key is inherited.
    pub variant_keys: Vec<String>,
    pub value: Value,
    pub spans: Spans,
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
            variant_keys: Vec::new(),
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

    let mut variants: Vec<(Option<String>, Vec<String>, Document)> = Vec::new();
    match root.get("variants") {
        None | Some(Value::Null) => variants.push((None, Vec::new(), base.clone())),
        Some(Value::Object(map)) if map.is_empty() => {
            diags.push(at(
                Diagnostic::error("E0271", "`variants` is empty")
                    .hint("remove `variants`, or name at least one variant"),
                doc.spans.get("/variants"),
            ));
        }
        Some(Value::Object(map)) if map.len() > MAX_VARIANTS => {
            diags.push(at(
                Diagnostic::error(
                    "E0274",
                    format!(
                        "{} variants; a recipe may have at most {MAX_VARIANTS}",
                        map.len()
                    ),
                )
                .hint("split the recipe into several, sharing settings through `extends:`"),
                doc.spans.get("/variants").map(|s| NodeSpan {
                    value: s.key.unwrap_or(s.value),
                    key: None,
                }),
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
                let merged = merge_documents(base.clone(), doc, &prefix);
                let keys = body
                    .as_object()
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                variants.push((Some(name.clone()), keys, merged));
            }
        }
        // Wrong type: the schema check reports it.
        Some(_) => variants.push((None, Vec::new(), base.clone())),
    }
    if !diags.is_empty() {
        return Err(diags);
    }

    let mut out = Vec::new();
    let mut renderer = Renderer::default();
    for (variant, variant_keys, mut merged) in variants {
        let ctx = TemplateContext {
            vars: vars.clone(),
            env: env.clone(),
            name: template_name(recipe_path, &merged.value),
            variant: variant.clone(),
        };
        let mut value = std::mem::take(&mut merged.value);
        let rendering = Rendering {
            context: &ctx,
            value: ctx.to_minijinja(),
            spans: &merged.spans,
        };
        render_value(&mut value, "", &rendering, &mut renderer, &mut diags);
        out.push(RenderedVariant {
            recipe_path: recipe_path.to_path_buf(),
            variant,
            variant_keys,
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

/// Values that are templates for another engine, kept as written: a bundle's chat template
/// is Jinja that LiteRT-LM renders on the device.
const VERBATIM: &[&str] = &["/generation/bundle/jinja_template"];

/// Render templates in every string value, except inside `vars` (its values are data),
/// `description` (free text that may legitimately contain braces) and [`VERBATIM`].
fn render_value(
    value: &mut Value,
    pointer: &str,
    ctx: &Rendering<'_>,
    renderer: &mut Renderer,
    diags: &mut Vec<Diagnostic>,
) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if pointer.is_empty() && (k == "vars" || k == "description" || k == "env") {
                    continue;
                }
                let child = format!("{pointer}/{}", load::escape_segment(k));
                if VERBATIM.contains(&child.as_str()) {
                    continue;
                }
                render_value(v, &child, ctx, renderer, diags);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                render_value(v, &format!("{pointer}/{i}"), ctx, renderer, diags);
            }
        }
        Value::String(s) if is_template(s) => match renderer.render(s, &ctx.value) {
            Ok(rendered) => *value = rendered,
            Err(err) => diags.push(template_error(err, pointer, ctx.context, ctx.spans)),
        },
        _ => {}
    }
}

fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// What one variant's strings render against.
struct Rendering<'a> {
    context: &'a TemplateContext,
    value: minijinja::Value,
    spans: &'a Spans,
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
    if err.kind() == minijinja::ErrorKind::OutOfFuel {
        diag = diag
            .note(format!(
                "rendering is bounded: {TEMPLATE_FUEL} steps per value, {RECIPE_FUEL} per recipe"
            ))
            .hint("templates fill in names, paths and numbers; compute anything larger before writing the recipe");
    } else if err.kind() == minijinja::ErrorKind::InvalidOperation
        && err
            .detail()
            .is_some_and(|d| d.starts_with("renders to more than"))
    {
        diag = diag.hint(
            "templates fill in names, paths and numbers; a value this long is a runaway loop",
        );
    } else if err.kind() == minijinja::ErrorKind::UndefinedError {
        let mut names: Vec<String> = ctx.vars.keys().cloned().collect();
        names.extend(["name", "variant"].map(String::from));
        let mut known: Vec<String> = ctx.vars.keys().map(|k| format!("`{k}`")).collect();
        known.extend(["`name`", "`variant`", "`vars.*`", "`env.*`"].map(String::from));
        diag = diag.note(format!("available: {}", known.join(", ")));
        // minijinja names the variable: "`varient` is undefined".
        let missing = detail
            .strip_prefix('`')
            .and_then(|d| d.split_once("` is undefined"))
            .map(|(name, _)| name);
        if let Some(best) = missing.and_then(|m| super::schema::did_you_mean(m, &names)) {
            return at(
                diag.hint(format!("did you mean `{best}`?")),
                spans.nearest(pointer),
            );
        }
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

    #[test]
    fn set_values_are_yaml_scalars() {
        assert_eq!(parse_set_value("8"), Value::from(8));
        assert_eq!(parse_set_value("true"), Value::Bool(true));
        assert_eq!(parse_set_value("gemma_2b_en"), Value::from("gemma_2b_en"));
    }
}
