//! What the recipe verbs share: turning command-line paths (files, directories, globs) into
//! recipe files, parsing `--set`, and printing diagnostics.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use super::output;
use crate::diag::{Diagnostic, Sources};
use crate::recipe::Overrides;

/// Flags every recipe verb takes.
#[derive(Debug, Args)]
pub struct RecipeArgs {
    /// Override a template variable declared under `vars:` (repeatable), e.g.
    /// `--set preset=presets/tiny_gemma`.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
}

impl RecipeArgs {
    pub fn overrides(&self) -> anyhow::Result<Overrides> {
        let mut sets = Vec::new();
        for s in &self.sets {
            let Some((k, v)) = s.split_once('=') else {
                bail!(output::Hinted::new(
                    format!("`--set {s}` is not `NAME=VALUE`"),
                    "write e.g. `--set sequence_length=128`"
                ));
            };
            sets.push((k.trim().to_string(), v.to_string()));
        }
        Ok(Overrides { sets })
    }
}

/// Expand paths into recipe files: files as given, directories searched recursively for
/// `*.yaml` / `*.yml` (skipping names that start with `_` or `.`, which are base recipes
/// meant for `extends:` and hidden files), and glob patterns.
pub fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        let text = path.to_string_lossy();
        if text.contains(['*', '?', '[']) && !path.exists() {
            let matches =
                glob::glob(&text).with_context(|| format!("invalid glob pattern `{text}`"))?;
            let mut found: Vec<PathBuf> = matches
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            if found.is_empty() {
                bail!(output::Hinted::new(
                    format!("no recipe matches `{text}`"),
                    "check the pattern, or quote it so the shell does not expand it"
                ));
            }
            found.sort();
            out.extend(found);
        } else if path.is_dir() {
            let before = out.len();
            walk(path, &mut out)
                .with_context(|| format!("cannot read directory `{}`", path.display()))?;
            out[before..].sort();
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            walk(&path, out)?;
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push(path);
        }
    }
    Ok(())
}

/// The recipe paths to use when none are given: the `recipes/` directory.
pub fn default_paths(paths: Vec<PathBuf>) -> anyhow::Result<Vec<PathBuf>> {
    if !paths.is_empty() {
        return Ok(paths);
    }
    let dir = PathBuf::from("recipes");
    if dir.is_dir() {
        Ok(vec![dir])
    } else {
        bail!(output::Hinted::new(
            "no recipes given and no `recipes/` directory here",
            "name recipe files or directories, e.g. `litert check recipes/`"
        ))
    }
}

/// Print diagnostics for people on stderr.
pub fn print_diagnostics(diags: &[Diagnostic], sources: &Sources) {
    let color = output::stderr_color();
    for d in diags {
        output::stderr(&d.render(sources, color));
    }
}
