//! `litert diff`: the semantic difference of two `.tflite` models or two `.litertlm` bundles,
//! with `diff`'s exit codes (0 equivalent, 1 different, 2 error). The comparisons live in
//! `tflite::diff` and `litertlm::diff`.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::common::{is_bundle, load_bundle, load_model};
use super::{Exit, Hinted, output};
use crate::diff::{Diff, Kind};
use crate::tflite::ReadOptions;
use crate::tflite::diff::diff;

/// Show what differs between two LiteRT models (signatures, inputs and outputs, ops, sizes) or
/// two LiteRT-LM bundles (sections, tokenizer, generation metadata, the embedded models).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert diff old.tflite new.tflite\n  litert diff old.tflite new.tflite --json | jq '.changes[].kind'\n  litert diff old.litertlm new.litertlm\n\nExit codes: 0 equivalent, 1 different, 2 a file is missing or not a valid model"
)]
pub struct DiffArgs {
    /// The model to compare from.
    pub a: PathBuf,
    /// The model to compare to.
    pub b: PathBuf,
    /// Print the differences as JSON (the contract in `docs/inspect.md`).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: DiffArgs) -> anyhow::Result<Exit> {
    let (a_bundle, b_bundle) = (is_bundle(&args.a), is_bundle(&args.b));
    if a_bundle != b_bundle {
        return Err(anyhow::Error::new(Hinted::new(
            format!(
                "cannot compare a bundle with a model: `{}` is a {}, `{}` is not",
                args.a.display(),
                if a_bundle {
                    "`.litertlm` bundle"
                } else {
                    "model"
                },
                args.b.display()
            ),
            "compare two `.litertlm` bundles, or two `.tflite` models",
        )));
    }
    if a_bundle {
        let d = crate::litertlm::diff::diff(&load_bundle(&args.a)?, &load_bundle(&args.b)?);
        return print(&d, args.json);
    }
    let a = load_model(&args.a, ReadOptions::default())?;
    let b = load_model(&args.b, ReadOptions::default())?;
    print(&diff(&a, &b), args.json)
}

/// The diff on stdout (JSON or human), with `diff`'s exit code.
fn print<K: Kind + Serialize, I: Serialize>(d: &Diff<K, I>, json: bool) -> anyhow::Result<Exit> {
    let text = if json {
        let mut text = serde_json::to_string_pretty(d)?;
        text.push('\n');
        text
    } else {
        d.render()
    };
    output::stdout(&text)?;
    Ok(if d.equivalent {
        Exit::Success
    } else {
        Exit::Failure
    })
}
