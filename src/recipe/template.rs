//! Template rendering for recipe values: minijinja with strict undefined variables, no
//! auto-escaping, and budgets (fuel per value and per recipe, bounded output) so a hostile
//! template is an error instead of a hang; a value that is exactly one `{{ expression }}`
//! keeps the expression's type.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

#[derive(Debug, Clone)]
pub(super) struct TemplateContext {
    pub(super) vars: BTreeMap<String, Value>,
    pub(super) env: BTreeMap<String, Option<String>>,
    pub(super) name: String,
    pub(super) variant: Option<String>,
}

impl TemplateContext {
    pub(super) fn to_minijinja(&self) -> minijinja::Value {
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
    pub(super) fn render(
        &mut self,
        s: &str,
        ctx: &minijinja::Value,
    ) -> Result<Value, minijinja::Error> {
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
}
