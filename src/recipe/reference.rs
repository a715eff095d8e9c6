//! The recipe reference (`docs/recipe-reference.md`), generated from the JSON Schema so the
//! documentation cannot drift from what `check` accepts: one table per recipe section,
//! each key with its type and the doc comment it was given in [`super::types`].

use serde_json::Value;

use super::schema::schema;

/// Render the whole reference as Markdown.
pub fn render() -> String {
    let root = schema();
    let mut out = String::from(
        "# Recipe reference\n\n\
         <!-- Generated from the recipe types by `litert schema --format markdown`; do not edit. \
         `LITERT_UPDATE_GENERATED=1 cargo test --test generated` rewrites it. -->\n\n",
    );
    if let Some(desc) = root.get("description").and_then(Value::as_str) {
        out.push_str(desc);
        out.push_str("\n\n");
    }
    out.push_str("## Top level (`Recipe`)\n\n");
    section(&mut out, root);
    if let Some(defs) = root.get("$defs").and_then(Value::as_object) {
        for (name, def) in defs {
            if name == "Recipe" {
                continue;
            }
            out.push_str(&format!("## `{name}`\n\n"));
            if let Some(desc) = def.get("description").and_then(Value::as_str) {
                out.push_str(desc);
                out.push_str("\n\n");
            }
            if def.get("properties").is_some() {
                section(&mut out, def);
            } else if let Some(choices) = choices(def) {
                out.push_str("| value | meaning |\n|---|---|\n");
                for (value, meaning) in choices {
                    out.push_str(&format!("| `{value}` | {} |\n", cell(&meaning)));
                }
                out.push('\n');
            } else {
                out.push_str(&format!("Type: {}\n\n", type_of(def)));
            }
        }
    }
    out
}

fn section(out: &mut String, obj: &Value) {
    let required: Vec<&str> = obj
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str("| key | type | required | description |\n|---|---|---|---|\n");
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (key, prop) in props {
            let desc = prop
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("");
            let req = if required.contains(&key.as_str()) {
                "yes"
            } else {
                ""
            };
            out.push_str(&format!(
                "| `{key}` | {} | {req} | {} |\n",
                type_of(prop),
                cell(desc)
            ));
        }
    }
    out.push('\n');
}

/// A documented unit enum (`oneOf` of `const`s) or a plain `enum`.
fn choices(def: &Value) -> Option<Vec<(String, String)>> {
    if let Some(values) = def.get("enum").and_then(Value::as_array) {
        return Some(values.iter().map(|v| (plain(v), String::new())).collect());
    }
    let one_of = def.get("oneOf")?.as_array()?;
    one_of
        .iter()
        .map(|b| {
            let c = b.get("const")?;
            Some((
                plain(c),
                b.get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ))
        })
        .collect()
}

fn plain(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// A short human type for a property schema.
fn type_of(prop: &Value) -> String {
    if prop.get("$ref").and_then(Value::as_str) == Some("#") {
        return "[recipe fields](#top-level-recipe)".to_string();
    }
    if let Some(r) = prop.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("[`{name}`](#{})", name.to_lowercase());
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = prop.get(key).and_then(Value::as_array) {
            let parts: Vec<String> = branches
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                .map(|b| {
                    b.get("const")
                        .map_or_else(|| type_of(b), |c| format!("`{}`", plain(c)))
                })
                .collect();
            return parts.join(" or ");
        }
    }
    let ty = match prop.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".to_string(),
    };
    match ty.as_str() {
        "array" => format!(
            "list of {}",
            prop.get("items").map_or_else(|| "any".into(), type_of)
        ),
        "object" => match prop.get("additionalProperties") {
            Some(v @ Value::Object(_)) => format!("map of name → {}", type_of(v)),
            _ => "mapping".into(),
        },
        other => other.to_string(),
    }
}

fn cell(text: &str) -> String {
    text.replace('\n', " ").replace('|', "\\|")
}
