//! `litert init MODEL`: a starter recipe for a model. The worker loads the model (the same
//! loading and safety checks as a build) and reports what it takes and gives; the recipe is
//! written under the project's `recipes/`, checked before it is written, and never written
//! over an existing file.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use super::common::{PythonArgs, print_diagnostics};
use super::{Exit, Hinted, output};
use crate::diag::Sources;
use crate::recipe::{self, Overrides, starter};

/// Write a starter recipe for a model: its inputs and outputs as Keras declares them.
///
/// Takes a `.keras` or `.h5` file, a TensorFlow SavedModel directory or a local KerasHub
/// preset directory. Starts the Python worker once to load the model; converts nothing.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert init models/classifier.keras\n  litert init models/legacy.h5 --name legacy_mlp\n  litert init exported/saved_model/\n  litert init presets/my_bert --task TextClassifier\n\nThe recipe goes to recipes/NAME.yaml in the project (the nearest directory above with\nlitert.lock or .git); an existing file is never replaced. Then `litert check` and\n`litert apply` it.\n\nExit codes: 0 written, 1 the model could not be loaded, 2 bad arguments, a missing model\nor an existing recipe."
)]
pub struct InitArgs {
    /// A `.keras` or `.h5` file, a SavedModel directory, or a KerasHub preset directory.
    pub model: PathBuf,
    /// The recipe's and the artifact's name (default: from the model's file name).
    #[arg(long)]
    pub name: Option<String>,
    /// Where to write the recipe (default: `recipes/NAME.yaml` in the project).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// For a preset directory: the KerasHub task class (default: the one its `task.json`
    /// names).
    #[arg(long, value_name = "CLASS")]
    pub task: Option<String>,
    /// Load a `.keras` file outside Keras' safe mode (needed for `Lambda` layers).
    #[arg(long)]
    pub allow_unsafe: bool,
    /// Longest the model may take to load, in seconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
    #[command(flatten)]
    pub python: PythonArgs,
}

/// What kind of model a path holds, by what is on disk.
enum Kind {
    Keras,
    H5,
    SavedModel,
    Preset,
}

fn kind_of(path: &Path) -> anyhow::Result<Kind> {
    if path.is_dir() {
        if path.join("saved_model.pb").is_file() {
            return Ok(Kind::SavedModel);
        }
        if path.join("config.json").is_file() {
            return Ok(Kind::Preset);
        }
        bail!(Hinted::new(
            format!(
                "`{}` is a directory, but neither a SavedModel (`saved_model.pb`) nor a KerasHub preset (`config.json`)",
                path.display()
            ),
            "give a `.keras` or `.h5` file, a SavedModel directory or a preset saved with `task.save_to_preset(DIR)`"
        ));
    }
    if !path.is_file() {
        bail!(Hinted::new(
            format!("no model at `{}`", path.display()),
            "check the path"
        ));
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "keras" => Ok(Kind::Keras),
        "h5" | "hdf5" => Ok(Kind::H5),
        "tflite" => bail!(Hinted::new(
            format!("`{}` is already a LiteRT model", path.display()),
            "`litert inspect`, `litert run` and `litert bench` take it as it is; `litert init` starts from the Keras model it was made from"
        )),
        _ => bail!(Hinted::new(
            format!("`{}` is not a model litert can start from", path.display()),
            "give a `.keras` or `.h5` file, a SavedModel directory or a KerasHub preset directory"
        )),
    }
}

/// A recipe name from a file name: lower case, runs of other characters as `_`.
fn name_from(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name = String::new();
    for c in stem.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
            name.push(c);
        } else if !name.ends_with('_') {
            name.push('_');
        }
    }
    let name = name
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    if name.is_empty() {
        "model".to_string()
    } else {
        name
    }
}

fn valid_name(name: &str) -> bool {
    name.len() <= 100
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
}

/// `target` relative to the directory `base` (both made absolute), with `/` separators.
fn relative_to(target: &Path, base: &Path) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let parts = |p: &Path| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in abs(p).components() {
            match c {
                Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
                Component::ParentDir => {
                    out.pop();
                }
                _ => {}
            }
        }
        out
    };
    let (t, b) = (parts(target), parts(base));
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut rel: Vec<String> = vec!["..".to_string(); b.len() - common];
    rel.extend(t[common..].iter().cloned());
    if rel.is_empty() {
        ".".to_string()
    } else {
        rel.join("/")
    }
}

/// The task class a saved preset names (`task.json`'s `class_name`).
fn preset_task(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("task.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("class_name")?.as_str().map(str::to_string)
}

pub fn run(args: InitArgs) -> anyhow::Result<Exit> {
    let name = match &args.name {
        Some(n) if !valid_name(n) => bail!(Hinted::new(
            format!("`{n}` is not a valid recipe name"),
            "names use lower-case letters, digits, `_`, `-` and `.`, starting with a letter or digit"
        )),
        Some(n) => n.clone(),
        None => name_from(&args.model),
    };
    let kind = kind_of(&args.model)?;
    let recipe_path = match &args.output {
        Some(p) => p.clone(),
        None => {
            let root = crate::lock::project_root(Path::new("."));
            let dir = if root == Path::new(".") {
                PathBuf::from("recipes")
            } else {
                root.join("recipes")
            };
            dir.join(format!("{name}.yaml"))
        }
    };
    if std::fs::symlink_metadata(&recipe_path).is_ok() {
        bail!(Hinted::new(
            format!(
                "`{}` already exists; `litert init` never writes over a recipe",
                recipe_path.display()
            ),
            "choose another name with `--name`, or another file with `--output`"
        ));
    }
    let recipe_dir = crate::fsio::parent_dir(&recipe_path).to_path_buf();
    let model_rel = relative_to(&args.model, &recipe_dir);
    let source = match kind {
        Kind::Keras => starter::Source::Keras(model_rel),
        Kind::H5 => starter::Source::H5(model_rel),
        Kind::SavedModel => starter::Source::SavedModel(model_rel),
        Kind::Preset => {
            let Some(task) = args.task.clone().or_else(|| preset_task(&args.model)) else {
                bail!(Hinted::new(
                    format!(
                        "`{}` is a KerasHub preset without a `task.json`: which task loads it?",
                        args.model.display()
                    ),
                    "name the task class with `--task`, e.g. `--task TextClassifier` or `--task CausalLM`"
                ));
            };
            starter::Source::Preset {
                path: model_rel,
                task,
            }
        }
    };
    let mut draft = starter::Starter {
        name: name.clone(),
        source,
        given: args.model.display().to_string(),
        class_name: String::new(),
        structure: String::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        recipe_path: recipe_path.display().to_string(),
        schema: None,
    };
    // The draft without inputs is a recipe too: its plan is what the worker loads.
    let Some(plan) = checked(&recipe_path, &starter::render(&draft))?
        .into_iter()
        .next()
    else {
        bail!("the starter recipe yields no build plan");
    };
    output::stderr(&format!(
        "loading `{}` in the Python worker...\n",
        args.model.display()
    ));
    let described = crate::engine::describe::describe(
        &plan,
        &args.python.request(),
        false,
        args.allow_unsafe,
        Duration::from_secs(args.timeout),
    )?;
    let d = match described {
        Ok(d) => d,
        Err(f) => {
            output::stderr(&format!(
                "error: cannot read `{}` (at `{}`): {}\n",
                args.model.display(),
                f.stage,
                f.message
            ));
            if let Some(detail) = &f.detail {
                for line in detail.lines() {
                    output::stderr(&format!("  | {line}\n"));
                }
            }
            if let Some(hint) = &f.hint {
                output::stderr(&format!("\nhint: {hint}\n"));
            }
            return Ok(Exit::Failure);
        }
    };
    let port = |p: &crate::worker::protocol::SignatureInput| starter::Port {
        name: p.name.clone(),
        shape: p.shape.clone(),
        dtype: p.dtype.clone(),
    };
    draft.class_name = d.class_name.clone();
    draft.structure = d.structure.clone();
    draft.inputs = d.inputs.iter().map(port).collect();
    draft.outputs = d.outputs.iter().map(port).collect();
    let root = crate::lock::project_root(&recipe_dir);
    let schema = root.join(recipe::schema::COMMITTED_PATH);
    if schema.is_file() {
        draft.schema = Some(relative_to(&schema, &recipe_dir));
    }
    let text = starter::render(&draft);
    if checked(&recipe_path, &text)?.is_empty() {
        bail!(
            "the starter recipe does not pass `litert check` (a bug in litert: please report it)"
        );
    }
    crate::fsio::write_new(&recipe_path, &text)
        .with_context(|| format!("cannot write `{}`", recipe_path.display()))?;
    output::stderr(&format!(
        "wrote `{path}`: {} input(s), {} output(s) of a {} model\nnext: read it, then `litert check {path}` and `litert apply {path}`\n",
        d.inputs.len(),
        d.outputs.len(),
        d.class_name,
        path = recipe_path.display(),
    ));
    output::stdout(&format!("{}\n", recipe_path.display()))?;
    Ok(Exit::Success)
}

/// The plans of recipe `text` as if it were at `path`, printing its diagnostics; empty when
/// it has errors.
fn checked(path: &Path, text: &str) -> anyhow::Result<Vec<recipe::BuildPlan>> {
    let mut sources = Sources::default();
    let result = recipe::check_bytes(path, text.as_bytes(), &Overrides::default(), &mut sources);
    print_diagnostics(&result.diagnostics, &sources);
    Ok(if result.has_errors() {
        Vec::new()
    } else {
        result.plans
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_file_names() {
        assert_eq!(name_from(Path::new("models/My Model.keras")), "my_model");
        assert_eq!(name_from(Path::new("x/mlp_v2.h5")), "mlp_v2");
        assert_eq!(name_from(Path::new("x/__.keras")), "model");
        assert!(valid_name("mlp_v2"));
        assert!(!valid_name("Mlp"));
    }

    #[test]
    fn paths_are_relative_to_the_recipe() {
        assert_eq!(
            relative_to(Path::new("/p/models/a.keras"), Path::new("/p/recipes")),
            "../models/a.keras"
        );
        assert_eq!(
            relative_to(Path::new("/p/a.keras"), Path::new("/p")),
            "a.keras"
        );
    }
}
