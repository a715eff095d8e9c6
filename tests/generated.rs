//! Generated files that are committed must match what the code generates now: the recipe
//! JSON Schema and the recipe reference. `LITERT_UPDATE_GENERATED=1 cargo test --test
//! generated` rewrites them.

mod common;

use common::{litert, root};

fn check_or_update(args: &[&str], rel: &str) {
    let out = litert(args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let path = root().join(rel);
    if std::env::var_os("LITERT_UPDATE_GENERATED").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &out.stdout).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == out.stdout,
        "`{rel}` is stale: run `LITERT_UPDATE_GENERATED=1 cargo test --test generated` and commit it"
    );
}

#[test]
fn committed_schema_is_current() {
    check_or_update(&["schema"], "schemas/recipe.schema.json");
}

#[test]
fn recipe_reference_is_current() {
    check_or_update(
        &["schema", "--format", "markdown"],
        "docs/recipe-reference.md",
    );
}

#[test]
fn schema_is_valid_json_schema_with_an_id() {
    let out = litert(&["schema"]);
    let schema: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(
        schema["$id"]
            .as_str()
            .unwrap()
            .ends_with("recipe.schema.json")
    );
    assert!(jsonschema::validator_for(&schema).is_ok());
}
