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
use crate::diag::{Diagnostic, FileId, Sources};

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
    let file = sources.add(path, String::from_utf8_lossy(&bytes).into_owned());
    let doc = load::parse(file, &bytes).map_err(|d| vec![*d])?;
    follow_extends(path, doc, sources, &mut stack)
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
fn merge_documents(mut base: Document, over: &Document, over_prefix: &str) -> Document {
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

/// Fuel is minijinja's unit of rendering work: about one instruction, or 64 bytes (or 64
/// list items) of data made. A real recipe template (`build/{{ name }}-{{ variant }}.tflite`)
/// uses tens; one string may use [`TEMPLATE_FUEL`], and every template of one recipe file
/// together (all variants) [`RECIPE_FUEL`], so `check` on a hostile recipe returns quickly
/// and within a few megabytes however its loops nest. (Fuzzing found `[x] * 1010 * 1010`:
/// a million-item list costs only ~16,000 fuel, hence the tight per-value bound.)
pub const TEMPLATE_FUEL: u64 = 10_000;
/// See [`TEMPLATE_FUEL`].
pub const RECIPE_FUEL: u64 = 500_000;
/// A rendered value is a path, a name or a number; text longer than this is a runaway loop.
/// Bounding the writer (rather than checking afterwards) stops a single huge `{{ value }}`
/// before it is ever held in memory.
pub const MAX_RENDERED_BYTES: usize = 64 * 1024;
/// The same bound for a whole-expression value (`"{{ [range(99999)] * 1000 }}"`), counted
/// in JSON nodes while converting it.
const MAX_RENDERED_NODES: usize = 10_000;

/// Renders template strings within the recipe's budget.
pub struct Renderer {
    env: Environment<'static>,
    remaining: u64,
}

impl Default for Renderer {
    fn default() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        // Printing a value builds its whole text before the output bound can stop it, and
        // minijinja repeats sequences lazily (`[1] * 20000000` is cheap, its text is not:
        // found by fuzzing, 2 s per value). Values too big to print are refused up front.
        env.set_formatter(|out, state, value| {
            check_printable(value)?;
            minijinja::escape_formatter(out, state, value)
        });
        env.add_filter("string", |value: minijinja::Value| {
            check_printable(&value)?;
            Ok::<_, minijinja::Error>(value.to_string())
        });
        // Both print their arguments whole before anything can bound them.
        env.remove_filter("format");
        env.remove_filter("pprint");
        Self {
            env,
            remaining: RECIPE_FUEL,
        }
    }
}

impl Renderer {
    /// A string that is exactly one `{{ expression }}` keeps the expression's type (so
    /// `batch_size: "{{ batch }}"` becomes a number); anything else renders to text.
    fn render(&mut self, s: &str, ctx: &minijinja::Value) -> Result<Value, minijinja::Error> {
        if self.remaining == 0 {
            return Err(out_of_fuel(true));
        }
        let fuel = self.remaining.min(TEMPLATE_FUEL);
        let recipe_bound = fuel < TEMPLATE_FUEL;
        self.env.set_fuel(Some(fuel));
        let trimmed = s.trim();
        let expression = trimmed
            .strip_prefix("{{")
            .and_then(|r| r.strip_suffix("}}"))
            .filter(|inner| !inner.contains("{{") && !inner.contains("}}"))
            .map(str::trim)
            // Only a single valid expression is wrapped, so the wrapper cannot be escaped.
            .filter(|inner| self.env.compile_expression(inner).is_ok());
        let source = match expression {
            Some(inner) => format!("{{% set {RESULT_VAR} = ({inner}) %}}"),
            None => s.to_string(),
        };
        let mut out = BoundedWriter::default();
        let result = self
            .env
            .template_from_str(&source)
            .and_then(|t| t.render_captured_to(ctx.clone(), &mut out));
        let captured = match result {
            Ok(captured) => captured,
            Err(err) if err.kind() == minijinja::ErrorKind::OutOfFuel => {
                self.remaining = self.remaining.saturating_sub(fuel);
                return Err(out_of_fuel(recipe_bound));
            }
            Err(_) if out.overflowed => return Err(too_long()),
            Err(err) => return Err(err),
        };
        let used = captured
            .state()
            .fuel_levels()
            .map_or(fuel, |(used, _)| used);
        self.remaining = self.remaining.saturating_sub(used);
        if expression.is_none() {
            return String::from_utf8(out.bytes)
                .map(Value::String)
                .map_err(|_| too_long());
        }
        let result = captured
            .state()
            .lookup(RESULT_VAR)
            .filter(|v| !v.is_undefined())
            .ok_or_else(|| {
                minijinja::Error::new(minijinja::ErrorKind::UndefinedError, "undefined value")
            })?;
        let mut nodes = 0;
        to_json(&result, &mut nodes)
    }
}

/// Refuse a value whose text would exceed [`MAX_RENDERED_BYTES`], counting at least one
/// byte per item (a walk that stops as soon as the bound is passed).
fn check_printable(value: &minijinja::Value) -> Result<(), minijinja::Error> {
    fn walk(v: &minijinja::Value, budget: &mut usize) -> bool {
        use minijinja::value::ValueKind;
        let n = match v.kind() {
            ValueKind::String | ValueKind::Bytes | ValueKind::Seq | ValueKind::Map => {
                v.len().unwrap_or(0)
            }
            ValueKind::Iterable | ValueKind::Plain => v.len().unwrap_or(1),
            _ => 1,
        };
        if n > *budget {
            return false;
        }
        *budget -= n;
        if matches!(
            v.kind(),
            ValueKind::Seq | ValueKind::Map | ValueKind::Iterable
        ) && let Ok(items) = v.try_iter()
        {
            for item in items {
                // A map's items are its keys; their values are printed too.
                let value = if v.kind() == ValueKind::Map {
                    v.get_item(&item).unwrap_or_default()
                } else {
                    item.clone()
                };
                if !walk(&item, budget) || (v.kind() == ValueKind::Map && !walk(&value, budget)) {
                    return false;
                }
            }
        }
        true
    }
    let mut budget = MAX_RENDERED_BYTES;
    if walk(value, &mut budget) {
        Ok(())
    } else {
        Err(too_long())
    }
}

/// Where a whole-expression template leaves its value.
const RESULT_VAR: &str = "__litert_value";

fn out_of_fuel(recipe_bound: bool) -> minijinja::Error {
    let what = if recipe_bound {
        "the recipe's templates together do more work than the limit for one recipe"
    } else {
        "the template does more work than the limit for one value"
    };
    minijinja::Error::new(minijinja::ErrorKind::OutOfFuel, what)
}

fn too_long() -> minijinja::Error {
    minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        format!("renders to more than {MAX_RENDERED_BYTES} bytes"),
    )
}

/// Collects rendered text, refusing more than [`MAX_RENDERED_BYTES`].
#[derive(Default)]
struct BoundedWriter {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for BoundedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_RENDERED_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("rendered text too long"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Convert a rendered value to JSON data, refusing more than [`MAX_RENDERED_NODES`] nodes
/// (a lazy `range` or a repeated list may stand for far more data than it holds).
fn to_json(value: &minijinja::Value, nodes: &mut usize) -> Result<Value, minijinja::Error> {
    use minijinja::value::ValueKind;
    *nodes += 1;
    if *nodes > MAX_RENDERED_NODES {
        return Err(too_long());
    }
    Ok(match value.kind() {
        ValueKind::Undefined | ValueKind::None => Value::Null,
        ValueKind::Bool => Value::Bool(value.is_true()),
        ValueKind::String => {
            let text = value.as_str().unwrap_or_default();
            if text.len() > MAX_RENDERED_BYTES {
                return Err(too_long());
            }
            Value::String(text.to_string())
        }
        ValueKind::Number => {
            if let Ok(i) = i64::try_from(value.clone()) {
                Value::from(i)
            } else if let Ok(f) = f64::try_from(value.clone()) {
                serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
            } else {
                Value::String(value.to_string())
            }
        }
        ValueKind::Map => {
            let mut map = Map::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                let key = match key.as_str() {
                    Some(k) => k.to_string(),
                    None => key.to_string(),
                };
                map.insert(key, to_json(&item, nodes)?);
            }
            Value::Object(map)
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let mut items = Vec::new();
            for item in value.try_iter()? {
                items.push(to_json(&item, nodes)?);
            }
            Value::Array(items)
        }
        _ => {
            let text = value.to_string();
            if text.len() > MAX_RENDERED_BYTES {
                return Err(too_long());
            }
            Value::String(text)
        }
    })
}

/// Render one template string against `vars` as a recipe value would be (the fuzz target's
/// entry point).
pub fn render_template(template: &str, vars: &BTreeMap<String, Value>) -> Result<Value, String> {
    let ctx = TemplateContext {
        vars: vars.clone(),
        env: BTreeMap::new(),
        name: "fuzz".into(),
        variant: Some("v".into()),
    };
    Renderer::default()
        .render(template, &ctx.to_minijinja())
        .map_err(|e| e.to_string())
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

    fn render_string(s: &str, ctx: &TemplateContext) -> Result<Value, minijinja::Error> {
        Renderer::default().render(s, &ctx.to_minijinja())
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

    /// Found by fuzzing (`fuzz/regressions/template_render/`): a repeated list stands for a
    /// million items; rendering it must stop at the bounds, not build it all.
    #[test]
    fn huge_values_stop_at_the_bounds() {
        for t in [
            "{{ [1] * 1010 * 1010 }}vars",
            "{{ [1] * 1010 * 1010 }}",
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "{{ 'x' * 100000000 }}",
            // Found by fuzzing: printing a lazily repeated sequence took seconds.
            "x/{{ [rane]  * 20102010 }}",
            "x/{{ [seq] * 20102010 }}",
            "{{ ([1] * 20102010)|string }}",
            "{{ {'a': [1] * 20102010} }}x",
            "x/{{ [[1] * 5000] * 5000 }}",
            "{{ '%s'|format([1] * 20102010) }}",
        ] {
            let err = render_string(t, &ctx()).unwrap_err();
            assert!(
                matches!(
                    err.kind(),
                    minijinja::ErrorKind::OutOfFuel
                        | minijinja::ErrorKind::InvalidOperation
                        | minijinja::ErrorKind::UnknownFilter
                ),
                "{t}: {err}"
            );
        }
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
