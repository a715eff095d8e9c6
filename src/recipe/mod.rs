//! Recipes: the wire types, loading with spans, schema validation, resolution (`extends`,
//! variants, templates, defaults) into build plans, and the semantic rules between them.
//! Nothing here knows about the worker or the `.tflite` format.
//!
//! The pipeline for one recipe file: [`extends::load_chain`] (parse, follow `extends`) →
//! [`resolve::render_variants`] (split variants, render [`template`]s) → per variant
//! [`schema::validate`] → typed [`types::Recipe`] → [`rules::build_plan`].

pub mod digest;
pub mod extends;
pub mod load;
pub mod plan;
pub mod reference;
pub mod resolve;
pub mod rules;
pub mod schema;
pub mod starter;
pub mod template;
pub mod types;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, FileId, Sources};
pub use plan::BuildPlan;
pub use resolve::Overrides;

/// What checking one recipe file found: its plans (when every variant passed) and every
/// diagnostic, warnings included.
#[derive(Debug, Default)]
pub struct Checked {
    pub plans: Vec<BuildPlan>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Load, validate and resolve one recipe file into build plans, collecting every problem.
pub fn check_file(path: &Path, overrides: &Overrides, sources: &mut Sources) -> Checked {
    check_source(path, None, overrides, sources)
}

/// [`check_file`] on recipe bytes already in memory, as if read from `path` (the fuzz
/// target's entry point; `extends:` and the paths a recipe names are still looked up on disk).
pub fn check_bytes(
    path: &Path,
    bytes: &[u8],
    overrides: &Overrides,
    sources: &mut Sources,
) -> Checked {
    check_source(path, Some(bytes), overrides, sources)
}

fn check_source(
    path: &Path,
    bytes: Option<&[u8]>,
    overrides: &Overrides,
    sources: &mut Sources,
) -> Checked {
    let doc = match extends::load_chain_from(path, bytes, sources) {
        Ok(doc) => doc,
        Err(diagnostics) => {
            return Checked {
                plans: Vec::new(),
                diagnostics,
            };
        }
    };
    let variants = match resolve::render_variants(path, &doc, overrides) {
        Ok(v) => v,
        Err(diagnostics) => {
            return Checked {
                plans: Vec::new(),
                diagnostics,
            };
        }
    };
    let file_dirs: Vec<PathBuf> = (0..sources.len())
        .map(|i| rules::parent_of(sources.path(FileId(i))))
        .collect();
    let mut plans = Vec::new();
    let mut diagnostics = Vec::new();
    for rv in &variants {
        let schema_errors = schema::validate(&rv.value, &rv.spans);
        if !schema_errors.is_empty() {
            diagnostics.extend(schema_errors);
            continue;
        }
        let recipe: types::Recipe = match serde_json::from_value(rv.value.clone()) {
            Ok(r) => r,
            Err(err) => {
                // The schema is generated from these types, so this means the two disagree.
                diagnostics.push(Diagnostic::error(
                    "E0000",
                    format!("internal error: recipe passed the schema but not the types: {err}"),
                ));
                continue;
            }
        };
        let (plan, diags) = rules::build_plan(rv, &recipe, &file_dirs);
        plans.extend(plan);
        diagnostics.extend(diags);
    }
    let mut diagnostics = resolve::dedupe(diagnostics);
    check_outputs_distinct(&plans, &mut diagnostics);
    if diagnostics.iter().any(Diagnostic::is_error) {
        plans.clear();
    }
    Checked { plans, diagnostics }
}

/// Two artifacts of one recipe must not overwrite each other.
fn check_outputs_distinct(plans: &[BuildPlan], diagnostics: &mut Vec<Diagnostic>) {
    let mut seen: BTreeMap<&Path, &str> = BTreeMap::new();
    for plan in plans {
        if let Some(first) = seen.insert(&plan.output, &plan.id) {
            diagnostics.push(
                Diagnostic::error(
                    "E0232",
                    format!("`{first}` and `{}` both write `{}`", plan.id, plan.output.display()),
                )
                .hint("give each variant its own file, e.g. `output: build/{{ name }}-{{ variant }}.tflite`"),
            );
        }
    }
}

/// Artifacts of different recipe files checked in one run must not share an id (they would
/// share a lock entry and a snapshot) or write the same output or snapshot file (one would
/// overwrite the other while the report says "up to date"). One error per clash, at the
/// second recipe's key, with the first recipe's as the related location.
pub fn check_distinct_across(plans: &[BuildPlan], sources: &Sources) -> Vec<Diagnostic> {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut ids: BTreeMap<(PathBuf, &str), &BuildPlan> = BTreeMap::new();
    let mut files: BTreeMap<PathBuf, (&BuildPlan, &'static str)> = BTreeMap::new();
    let mut diagnostics = Vec::new();
    for plan in plans {
        let mut clash = |first: &BuildPlan, key: &'static str, what: String| {
            if abs(&first.recipe) == abs(&plan.recipe) {
                return; // within one file: the recipe's own rules report it
            }
            let mut d = Diagnostic::error("E0233", what).hint(
                "give each recipe its own `name` and `output` (and `snapshot`), or check them in separate runs",
            );
            d = match key_loc(sources, &plan.recipe, key) {
                Some(loc) => d.at(loc).label("here"),
                None => d.note(format!("in `{}`", plan.recipe.display())),
            };
            d = match key_loc(sources, &first.recipe, key) {
                Some(loc) => d.related(loc, "first here"),
                None => d.note(format!("first in `{}`", first.recipe.display())),
            };
            diagnostics.push(d);
        };
        let same_id = ids.insert((abs(&plan.root), plan.id.as_str()), plan);
        if let Some(first) = same_id {
            clash(
                first,
                "name",
                format!(
                    "artifact `{}` is defined by two recipes: `{}` and `{}`",
                    plan.id,
                    first.recipe.display(),
                    plan.recipe.display()
                ),
            );
        }
        for (path, key) in [(&plan.output, "output"), (&plan.snapshot, "snapshot")] {
            // One id gives one default snapshot path: that clash is already reported.
            if key == "snapshot" && same_id.is_some() {
                continue;
            }
            if let Some((first, first_key)) = files.insert(abs(path), (plan, key)) {
                let key = if first_key == key { key } else { "output" };
                clash(
                    first,
                    key,
                    format!(
                        "`{}` and `{}` (from `{}` and `{}`) both write `{}`",
                        first.id,
                        plan.id,
                        first.recipe.display(),
                        plan.recipe.display(),
                        path.display()
                    ),
                );
            }
        }
    }
    diagnostics
}

/// Where a top-level `key:` is written in a recipe file (its value), when the file itself
/// says it (not inherited through `extends`).
fn key_loc(sources: &Sources, recipe: &Path, key: &str) -> Option<crate::diag::Loc> {
    let file = (0..sources.len())
        .map(FileId)
        .find(|&id| sources.path(id) == recipe)?;
    let text = sources.text(file);
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
            let value = rest.trim();
            let start = offset + key.len() + 1 + (rest.len() - rest.trim_start().len());
            return Some(crate::diag::Loc::new(file, start..start + value.len()));
        }
        offset += line.len();
    }
    None
}
