//! `litert inspect`: describe a `.tflite` model or a `.litertlm` bundle for the engineer who
//! deploys it, either as a compact human summary ([`super::render`]) or as the documented
//! JSON contract (`docs/inspect.md`).

use std::path::{Path, PathBuf};

use clap::Args;

use super::common::{is_bundle, load_bundle, load_model};
use super::{Exit, output, render};
use crate::provenance::Provenance;
use crate::tflite::ReadOptions;

/// Describe a LiteRT model (signatures, tensors, quantization, ops, metadata, sizes) or a
/// LiteRT-LM bundle (sections, tokenizer, generation metadata, the embedded model's signatures).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert inspect model.tflite\n  litert inspect model.tflite --json | jq '.signatures[0].inputs'\n  litert inspect model.tflite --weights\n  litert inspect model.tflite --tensors\n  litert inspect gemma.litertlm --json | jq '.sections[].data_type'\n\nExit codes: 0 success, 2 the file is missing or not a valid model"
)]
pub struct InspectArgs {
    /// The `.tflite` file, or a `.litertlm` bundle (recognised by its first bytes).
    pub model: PathBuf,
    /// Print the description as JSON (the contract in `docs/inspect.md`).
    #[arg(long)]
    pub json: bool,
    /// Also read every weight to count zeros (a check that the weights were saved).
    #[arg(long)]
    pub weights: bool,
    /// Also list every tensor of every subgraph.
    #[arg(long)]
    pub tensors: bool,
}

pub fn run(args: InspectArgs) -> anyhow::Result<Exit> {
    let text = if is_bundle(&args.model) {
        let info = load_bundle(&args.model)?;
        if args.json {
            json(&info)?
        } else {
            render::bundle(&info)
        }
    } else {
        let options = ReadOptions {
            weights_check: args.weights,
            tensors: args.tensors,
        };
        let info = load_model(&args.model, options)?;
        if args.json {
            json(&info)?
        } else {
            let mut text = render::model(&info);
            if let Some(p) = &info.provenance {
                text.push_str(&render::provenance(p, &traced(p, &args.model)));
            }
            text
        }
    };
    output::stdout(&text)?;
    Ok(Exit::Success)
}

/// What the `litert.lock` of the project around the working directory says of a model
/// built from `p`: whether its entry records exactly this file.
fn traced(p: &Provenance, model: &Path) -> String {
    let root = crate::lock::project_root(Path::new("."));
    let path = root.join(crate::lock::FILE_NAME);
    let Ok(lock) = crate::lock::LockFile::read(&path) else {
        return format!("`{}` cannot be read", path.display());
    };
    let Some(entry) = lock.artifacts.get(&p.artifact) else {
        return format!(
            "`{}` has no entry `{}` (run `litert inspect` in the project that built it)",
            path.display(),
            p.artifact
        );
    };
    match crate::digest::file_sha256(model) {
        Ok(sha) if sha == entry.sha256 => format!(
            "`{}` entry `{}` records this file (sha256 {})",
            path.display(),
            p.artifact,
            crate::digest::short(&sha)
        ),
        _ if entry.inputs.plan == p.plan => format!(
            "`{}` entry `{}` has the same recipe plan but other bytes: built by another toolchain, or changed after the build",
            path.display(),
            p.artifact
        ),
        _ => format!(
            "`{}` entry `{}` is a later build: its recipe plan differs from this file's",
            path.display(),
            p.artifact
        ),
    }
}

fn json(value: &impl serde::Serialize) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(value)? + "\n")
}
