//! `litert check`: validate recipes (syntax, schema, semantic rules) without running
//! anything, reporting every problem of every recipe at once.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::common::{RecipeArgs, default_paths, expand, print_diagnostics};
use super::{Exit, output};
use crate::diag::{JsonDiagnostic, Sources};
use crate::recipe;

/// Validate recipes (syntax, schema, semantic rules) without running anything.
///
/// Reports every error of every recipe at once, with its file, line and column. Runs no
/// Python.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert check                      # every recipe under recipes/\n  litert check recipes/mlp.yaml\n  litert check 'recipes/**/*.yaml' --json\n\nDirectories are searched recursively; files whose names start with `_` are base recipes\n(for `extends:`) and are only checked through the recipes that extend them.\nExit codes: 0 all valid (warnings allowed), 2 an invalid recipe or bad arguments."
)]
pub struct CheckArgs {
    /// Recipe files, directories or glob patterns (default: `recipes/`).
    pub paths: Vec<PathBuf>,
    /// Output format: `human` diagnostics on stderr, or `json` data on stdout.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Print the report as JSON on stdout (the same as `--format json`).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    #[command(flatten)]
    pub recipe: RecipeArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Serialize)]
struct Report {
    ok: bool,
    errors: usize,
    warnings: usize,
    recipes: Vec<RecipeReport>,
}

#[derive(Serialize)]
struct RecipeReport {
    file: String,
    ok: bool,
    artifacts: Vec<String>,
    diagnostics: Vec<JsonDiagnostic>,
}

pub fn run(mut args: CheckArgs) -> anyhow::Result<Exit> {
    if args.json {
        args.format = Format::Json;
    }
    let overrides = args.recipe.overrides()?;
    let files = expand(&default_paths(args.paths)?)?;
    let mut sources = Sources::default();
    let mut report = Report {
        ok: true,
        errors: 0,
        warnings: 0,
        recipes: Vec::new(),
    };
    let mut all_plans = Vec::new();
    for file in &files {
        let checked = recipe::check_file(file, &overrides, &mut sources);
        all_plans.extend(checked.plans.iter().cloned());
        let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
        report.errors += errors;
        report.warnings += checked.diagnostics.len() - errors;
        if args.format == Format::Human {
            print_diagnostics(&checked.diagnostics, &sources);
        }
        report.recipes.push(RecipeReport {
            file: file.display().to_string(),
            ok: errors == 0,
            artifacts: checked.plans.iter().map(|p| p.id.clone()).collect(),
            diagnostics: checked
                .diagnostics
                .iter()
                .map(|d| d.to_json(&sources))
                .collect(),
        });
    }
    // Clashes between files: reported with the recipe that repeats an id or output.
    for d in recipe::check_distinct_across(&all_plans, &sources) {
        if args.format == Format::Human {
            print_diagnostics(std::slice::from_ref(&d), &sources);
        }
        report.errors += 1;
        let file = match d.place {
            crate::diag::Place::Span(loc) => sources.path(loc.file).display().to_string(),
            crate::diag::Place::File(id) => sources.path(id).display().to_string(),
            crate::diag::Place::Nowhere => String::new(),
        };
        let json = d.to_json(&sources);
        if let Some(r) = report.recipes.iter_mut().find(|r| r.file == file) {
            r.ok = false;
            r.diagnostics.push(json);
        } else if let Some(r) = report.recipes.last_mut() {
            r.ok = false;
            r.diagnostics.push(json);
        }
    }
    report.ok = report.errors == 0;
    match args.format {
        Format::Json => output::stdout(&format!("{}\n", serde_json::to_string_pretty(&report)?))?,
        Format::Human => output::stderr(&summary(&report)),
    }
    Ok(if report.ok {
        Exit::Success
    } else {
        Exit::Usage
    })
}

fn summary(report: &Report) -> String {
    let n = report.recipes.len();
    let artifacts: usize = report.recipes.iter().map(|r| r.artifacts.len()).sum();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let invalid = report.recipes.iter().filter(|r| !r.ok).count();
    if report.ok {
        let warn = if report.warnings > 0 {
            format!(", {}", plural(report.warnings, "warning"))
        } else {
            String::new()
        };
        format!(
            "checked {}: all valid ({}{warn})\n",
            plural(n, "recipe"),
            plural(artifacts, "artifact")
        )
    } else {
        format!(
            "checked {}: {} invalid ({}, {})\n",
            plural(n, "recipe"),
            invalid,
            plural(report.errors, "error"),
            plural(report.warnings, "warning")
        )
    }
}
