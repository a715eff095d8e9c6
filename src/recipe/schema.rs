//! The recipe JSON Schema: generated from the wire types in [`super::types`], committed as
//! `schemas/recipe.schema.json` (a test fails when it is stale), and used to validate every
//! recipe so that `litert check` and editors agree. Validation errors are rewritten into
//! located diagnostics that name the key or value at fault and suggest a fix.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use super::load::{Spans, escape_segment};
use super::types::Recipe;
use crate::diag::Diagnostic;

/// Where the committed schema lives, relative to the repository root.
pub const COMMITTED_PATH: &str = "schemas/recipe.schema.json";

/// The schema as JSON data.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
        let schema = generator.into_root_schema_for::<Recipe>();
        let mut value = serde_json::to_value(schema).unwrap_or(Value::Null);
        if let Some(obj) = value.as_object_mut() {
            // Editors and SchemaStore key schemas by `$id`; keep it stable.
            obj.insert(
                "$id".into(),
                Value::String("https://litert.dev/schemas/recipe.schema.json".into()),
            );
        }
        value
    })
}

/// The schema as the pretty-printed text `litert schema` prints and the repository commits.
pub fn render() -> String {
    let mut text = serde_json::to_string_pretty(schema()).unwrap_or_default();
    text.push('\n');
    text
}

fn validator() -> Option<&'static Validator> {
    static VALIDATOR: OnceLock<Option<Validator>> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| jsonschema::validator_for(schema()).ok())
        .as_ref()
}

/// Validate a document against the schema, returning every problem found.
pub fn validate(value: &Value, spans: &Spans) -> Vec<Diagnostic> {
    let Some(validator) = validator() else {
        return vec![Diagnostic::error(
            "E0000",
            "internal error: the recipe schema does not compile",
        )];
    };
    let mut out = Vec::new();
    for err in validator.iter_errors(value) {
        explain(&err, spans, &mut out);
    }
    out
}

fn explain(err: &ValidationError<'_>, spans: &Spans, out: &mut Vec<Diagnostic>) {
    let pointer = err.instance_path().to_string();
    let instance = err.instance();
    let at_value = |diag: Diagnostic| match spans.nearest(&pointer) {
        Some(span) => diag.at(span.value),
        None => diag,
    };
    let what = describe_path(&pointer);
    match err.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = allowed_keys(&err.schema_path().to_string());
            for key in unexpected {
                let child = format!("{pointer}/{}", escape_segment(key));
                let mut diag = Diagnostic::error("E0101", format!("unknown key `{key}` in {what}"));
                diag = match spans.get(&child).and_then(|s| s.key) {
                    Some(loc) => diag.at(loc).label("not a known key here"),
                    None => at_value(diag),
                };
                if let Some(hint) = pointer.is_empty().then(|| misplaced_hint(key)).flatten() {
                    diag = diag.hint(hint);
                } else if let Some(best) = did_you_mean(key, &allowed) {
                    diag = diag.hint(format!("did you mean `{best}`?"));
                } else if !allowed.is_empty() {
                    diag = diag.note(format!("known keys: {}", quote_list(&allowed)));
                }
                out.push(diag);
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or("?");
            out.push(at_value(
                Diagnostic::error("E0102", format!("missing required key `{name}` in {what}"))
                    .label(format!("`{name}` is needed here")),
            ));
        }
        ValidationErrorKind::Type { kind } => {
            out.push(at_value(wrong_type(&what, &type_names(kind), instance)));
        }
        ValidationErrorKind::Enum { options } => {
            out.push(bad_choice(at_value, &what, instance, &strings_of(options)));
        }
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            // A documented enum becomes `oneOf` of `const`s: report it as a bad choice.
            let consts: Vec<String> = context
                .iter()
                .flat_map(|branch| branch.iter())
                .filter_map(|e| match e.kind() {
                    ValidationErrorKind::Constant { expected_value } => {
                        expected_value.as_str().map(str::to_string)
                    }
                    _ => None,
                })
                .collect();
            if !consts.is_empty() && consts.len() == context.len() {
                out.push(bad_choice(at_value, &what, instance, &consts));
                return;
            }
            // Unions (`image_size`, `max_size`, and every optional section: the section or
            // `null`): if exactly one branch takes a value of this type, its errors are the
            // useful ones, however deep (a quoted number in `parity.tolerance.*.atol` is
            // reported there, not as a wrong type for `parity`).
            let here = |e: &ValidationError<'_>| {
                matches!(e.kind(), ValidationErrorKind::Type { .. })
                    && e.instance_path().to_string() == pointer
            };
            let typed: Vec<_> = context
                .iter()
                .filter(|branch| !branch.iter().any(here))
                .collect();
            if let [branch] = typed.as_slice() {
                for e in branch.iter() {
                    explain(e, spans, out);
                }
                return;
            }
            let expected: Vec<String> = context
                .iter()
                .flat_map(|b| b.iter())
                .filter(|e| here(e))
                .filter_map(|e| match e.kind() {
                    ValidationErrorKind::Type { kind } => Some(type_names(kind)),
                    _ => None,
                })
                .collect();
            let expected = if expected.is_empty() {
                "a different value".to_string()
            } else {
                expected.join(" or ")
            };
            out.push(at_value(wrong_type(&what, &expected, instance)));
        }
        ValidationErrorKind::Pattern { pattern } => {
            out.push(
                at_value(Diagnostic::error(
                    "E0104",
                    format!(
                        "invalid {what}: {} does not match the required form",
                        show(instance)
                    ),
                ))
                .label("not in the required form")
                .note(format!("must match the pattern `{pattern}`")),
            );
        }
        ValidationErrorKind::Minimum { limit }
        | ValidationErrorKind::ExclusiveMinimum { limit } => {
            out.push(
                at_value(Diagnostic::error(
                    "E0105",
                    format!("{what} is too small: {}", show(instance)),
                ))
                .label(format!("must be at least {limit}")),
            );
        }
        ValidationErrorKind::Maximum { limit }
        | ValidationErrorKind::ExclusiveMaximum { limit } => {
            out.push(
                at_value(Diagnostic::error(
                    "E0105",
                    format!("{what} is too large: {}", show(instance)),
                ))
                .label(format!("must be at most {limit}")),
            );
        }
        ValidationErrorKind::MinItems { limit } | ValidationErrorKind::MaxItems { limit } => {
            let n = instance.as_array().map_or(0, Vec::len);
            out.push(
                at_value(Diagnostic::error("E0106", format!("{what} has {n} items"))).label(
                    format!(
                        "needs {} {limit}",
                        if matches!(err.kind(), ValidationErrorKind::MinItems { .. }) {
                            "at least"
                        } else {
                            "at most"
                        }
                    ),
                ),
            );
        }
        ValidationErrorKind::MaxLength { limit } | ValidationErrorKind::MinLength { limit } => {
            out.push(
                at_value(Diagnostic::error(
                    "E0106",
                    format!("{what} has the wrong length"),
                ))
                .label(format!("length limit is {limit}")),
            );
        }
        ValidationErrorKind::PropertyNames { error } => {
            let name = error.instance().as_str().unwrap_or("?").to_string();
            let child = format!("{pointer}/{}", escape_segment(&name));
            let diag = Diagnostic::error("E0104", format!("invalid name `{name}` in {what}"))
                .label("not a valid name")
                .note("names use lower-case letters, digits, `_`, `-` and `.`, starting with a letter or digit");
            out.push(match spans.get(&child).and_then(|s| s.key) {
                Some(loc) => diag.at(loc),
                None => at_value(diag),
            });
        }
        _ => {
            out.push(at_value(Diagnostic::error(
                "E0100",
                format!("invalid {what}: {err}"),
            )));
        }
    }
}

fn wrong_type(what: &str, expected: &str, instance: &Value) -> Diagnostic {
    let diag = Diagnostic::error(
        "E0103",
        format!(
            "wrong type for {what}: expected {expected}, found {}",
            type_of(instance)
        ),
    )
    .label(format!("expected {expected}"));
    match instance.as_str().and_then(|s| unquote_hint(s, expected)) {
        Some(hint) => diag.hint(hint),
        None => diag,
    }
}

/// The fix for a scalar that YAML read as a string where a number or a boolean was wanted:
/// quotes around a number, or YAML 1.1's `yes`/`no`, which YAML 1.2 reads as strings.
fn unquote_hint(text: &str, expected: &str) -> Option<String> {
    let t = text.trim();
    let wants_number = expected.contains("a number") || expected.contains("an integer");
    let number = if expected.contains("a number") {
        t.parse::<f64>().is_ok_and(f64::is_finite)
    } else {
        t.parse::<i64>().is_ok()
    };
    if wants_number && number {
        return Some(format!("drop the quotes: `{t}` without them is a number"));
    }
    if !expected.contains("`true` or `false`") {
        return None;
    }
    let value = match t.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "on" => "true",
        "false" | "no" | "n" | "off" => "false",
        _ => return None,
    };
    Some(if t.eq_ignore_ascii_case(value) {
        format!("drop the quotes: `{value}` without them is a boolean")
    } else {
        format!("write `{value}`: recipes are YAML 1.2, where `{t}` is a string, not a boolean")
    })
}

fn bad_choice(
    at_value: impl Fn(Diagnostic) -> Diagnostic,
    what: &str,
    instance: &Value,
    choices: &[String],
) -> Diagnostic {
    let mut diag = at_value(Diagnostic::error(
        "E0107",
        format!("invalid value {} for {what}", show(instance)),
    ))
    .label(format!("expected one of {}", quote_list(choices)));
    if let Some(given) = instance.as_str()
        && let Some(best) = did_you_mean(given, choices)
    {
        diag = diag.hint(format!("did you mean `{best}`?"));
    }
    diag
}

/// The property names the schema allows at the object an `additionalProperties` error
/// came from (its schema path ends in `/additionalProperties`).
fn allowed_keys(schema_path: &str) -> Vec<String> {
    let base = schema_path
        .strip_suffix("/additionalProperties")
        .unwrap_or(schema_path);
    let props = schema().pointer(&format!("{base}/properties"));
    props
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Names people bring from `model.export(...)`, the `TFLiteConverter` or other tools, and
/// where a recipe says the same thing; a spelling suggestion would only mislead (`verbose`
/// is close to `version`).
fn misplaced_hint(key: &str) -> Option<String> {
    let hint = match key {
        "optimizations" => {
            "quantization is a typed setting: `quantization: {mode: dynamic_range}` (see `litert schema`); the raw converter attribute goes under `litert_kwargs: {optimizations: [DEFAULT]}`"
        }
        "representative_dataset" => {
            "calibration data goes under `calibration:`, e.g. `calibration: {npz: data/calibration.npz, samples: 100}`, with a quantization mode that calibrates"
        }
        "target_spec"
        | "supported_ops"
        | "supported_types"
        | "inference_input_type"
        | "inference_output_type"
        | "allow_custom_ops"
        | "exclude_conversion_metadata" => {
            return Some(format!(
                "converter attributes go under `litert_kwargs:`, e.g. `litert_kwargs: {{{key}: ...}}`; the typed `quantization:` and `ops:` settings are checked more closely"
            ));
        }
        k if k.starts_with("experimental_") => {
            return Some(format!(
                "converter attributes go under `litert_kwargs:`, e.g. `litert_kwargs: {{{k}: true}}`"
            ));
        }
        "verbose" => {
            "a recipe has no `verbose` setting: `litert apply --verbose` shows the worker's output, and progress goes to stderr (`LITERT_NO_PROGRESS=1` turns it off)"
        }
        "format" | "filepath" => "`litert` always exports LiteRT; the artifact's path is `output:`",
        _ => return None,
    };
    Some(hint.to_string())
}

/// The closest known name, if it is close enough to be a likely typo.
pub fn did_you_mean(given: &str, known: &[String]) -> Option<String> {
    let given_l = given.to_lowercase();
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(&given_l, &k.to_lowercase()), k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.clone())
}

/// "`model.keras`" for `/model/keras`, "the recipe" for the root.
pub fn describe_path(pointer: &str) -> String {
    if pointer.is_empty() {
        return "the recipe".to_string();
    }
    let mut out = String::new();
    for seg in pointer.trim_start_matches('/').split('/') {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if seg.parse::<usize>().is_ok() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    format!("`{out}`")
}

fn type_names(kind: &TypeKind) -> String {
    let name = |t: &jsonschema::JsonType| match t.to_string().as_str() {
        "object" => "a mapping".to_string(),
        "array" => "a list".to_string(),
        "string" => "a string".to_string(),
        "integer" => "an integer".to_string(),
        "number" => "a number".to_string(),
        "boolean" => "`true` or `false`".to_string(),
        "null" => "nothing (`null`)".to_string(),
        other => other.to_string(),
    };
    match kind {
        TypeKind::Single(t) => name(t),
        TypeKind::Multiple(ts) => {
            // Optional fields accept `null` too; saying so in every message is noise.
            let names: Vec<String> = ts
                .iter()
                .filter(|t| t.to_string() != "null")
                .map(|t| name(&t))
                .collect();
            if names.is_empty() {
                "nothing (`null`)".to_string()
            } else {
                names.join(" or ")
            }
        }
    }
}

fn type_of(v: &Value) -> String {
    match v {
        Value::Null => "nothing (`null`)".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number `{n}`"),
        Value::String(s) => format!("the string {}", show_str(s)),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => show_str(s),
        Value::Array(_) => "(a list)".into(),
        Value::Object(_) => "(a mapping)".into(),
        other => format!("`{other}`"),
    }
}

fn show_str(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() > MAX {
        let cut: String = s.chars().take(MAX).collect();
        format!("`{cut}…`")
    } else {
        format!("`{s}`")
    }
}

fn strings_of(options: &Value) -> Vec<String> {
    options
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn quote_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::FileId;
    use crate::recipe::load;

    fn errors(text: &str) -> Vec<String> {
        let doc = load::parse(FileId(0), text.as_bytes()).expect("parses");
        validate(&doc.value, &doc.spans)
            .into_iter()
            .map(|d| d.message)
            .collect()
    }

    #[test]
    fn schema_compiles_and_accepts_a_minimal_recipe() {
        assert!(validator().is_some());
        assert!(errors("version: 1\nmodel: {keras: m.keras}\noutput: m.tflite\n").is_empty());
    }

    #[test]
    fn unknown_key_suggests_the_right_one() {
        let doc = load::parse(FileId(0), b"version: 1\nsequence_lenght: 8\n").unwrap();
        let diags = validate(&doc.value, &doc.spans);
        assert_eq!(diags.len(), 1);
        assert_eq!(
            diags[0].hints,
            vec!["did you mean `sequence_length`?".to_string()]
        );
    }

    #[test]
    fn documented_enum_reads_as_a_choice() {
        let e = errors("version: 1\nquantization: {mode: full_int9}\n");
        assert_eq!(
            e,
            vec!["invalid value `full_int9` for `quantization.mode`".to_string()]
        );
    }

    #[test]
    fn a_wrong_leaf_in_an_optional_section_is_reported_at_the_leaf() {
        let cases = [
            (
                "parity: {tolerance: {\"*\": {atol: \"0.01\"}}}",
                "wrong type for `parity.tolerance.*.atol`: expected a number, found the string `0.01`",
            ),
            (
                "calibration: {npz: c.npz, samples: \"32\"}",
                "wrong type for `calibration.samples`: expected an integer, found the string `32`",
            ),
            (
                "accuracy: {min_cosine_similarity: \"0.99\"}",
                "wrong type for `accuracy.min_cosine_similarity`: expected a number, found the string `0.99`",
            ),
            (
                "gates: {no_flex: yes}",
                "wrong type for `gates.no_flex`: expected `true` or `false`, found the string `yes`",
            ),
        ];
        for (section, message) in cases {
            let e = errors(&format!(
                "version: 1\nmodel: {{keras: m.keras}}\noutput: m.tflite\n{section}\n"
            ));
            assert_eq!(e, vec![message.to_string()], "{section}");
        }
    }

    #[test]
    fn quoted_scalars_get_the_fix() {
        assert_eq!(
            unquote_hint("0.01", "a number").as_deref(),
            Some("drop the quotes: `0.01` without them is a number")
        );
        assert_eq!(unquote_hint("0.5", "an integer"), None);
        assert_eq!(unquote_hint("one", "an integer"), None);
        assert_eq!(
            unquote_hint("no", "`true` or `false`").as_deref(),
            Some("write `false`: recipes are YAML 1.2, where `no` is a string, not a boolean")
        );
        assert_eq!(
            unquote_hint("true", "`true` or `false`").as_deref(),
            Some("drop the quotes: `true` without them is a boolean")
        );
    }

    #[test]
    fn all_errors_at_once() {
        let e = errors("version: x\nbatch_size: 0\nops: {flex: yes}\n");
        assert_eq!(e.len(), 3, "{e:?}");
    }
}
