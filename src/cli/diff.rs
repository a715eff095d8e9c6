//! `litert diff`: the semantic difference of two `.tflite` models or two `.litertlm` bundles,
//! with `diff`'s exit codes (0 equivalent, 1 different, 2 error). The comparisons live in
//! `tflite::diff` and `litertlm::diff`.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;

use super::inspect::load;
use super::{Exit, Hinted, bundle, output};
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
    let (a_bundle, b_bundle) = (bundle::is_bundle(&args.a), bundle::is_bundle(&args.b));
    if a_bundle || b_bundle {
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
        let d = crate::litertlm::diff::diff(&bundle::load(&args.a)?, &bundle::load(&args.b)?);
        if args.json {
            let mut text = serde_json::to_string_pretty(&d)?;
            text.push('\n');
            output::stdout(&text)?;
        } else {
            let changes = d
                .changes
                .iter()
                .map(|c| (c.kind.marker(), c.message.as_str()));
            output::stdout(&render(&d.a, &d.b, d.equivalent, changes))?;
        }
        return Ok(if d.equivalent {
            Exit::Success
        } else {
            Exit::Failure
        });
    }
    let a = load(&args.a, ReadOptions::default())?;
    let b = load(&args.b, ReadOptions::default())?;
    let d = diff(&a, &b);
    if args.json {
        let mut text = serde_json::to_string_pretty(&d)?;
        text.push('\n');
        output::stdout(&text)?;
    } else {
        let changes = d
            .changes
            .iter()
            .map(|c| (c.kind.marker(), c.message.as_str()));
        output::stdout(&render(&d.a, &d.b, d.equivalent, changes))?;
    }
    Ok(if d.equivalent {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// The human form of a model or bundle diff: a header, then one line per change marked `+`,
/// `-` or `~`.
pub fn render<'c>(
    a: &str,
    b: &str,
    equivalent: bool,
    changes: impl ExactSizeIterator<Item = (char, &'c str)>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "--- {a}");
    let _ = writeln!(out, "+++ {b}");
    if equivalent {
        let _ = writeln!(out, "no semantic differences");
        return out;
    }
    let n = changes.len();
    for (marker, message) in changes {
        let _ = writeln!(out, "{marker} {message}");
    }
    let _ = writeln!(out, "{n} difference{}", if n == 1 { "" } else { "s" });
    out
}
