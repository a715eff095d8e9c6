//! `litert schema`: print the recipe JSON Schema that editors and `check` use, or the
//! recipe reference generated from it.

use clap::{Args, ValueEnum};

use super::{Exit, output};
use crate::recipe;

/// Print the recipe JSON Schema, or the recipe reference generated from it.
///
/// The schema is the one `schemas/recipe.schema.json` holds and `check` validates with.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert schema > recipe.schema.json\n  litert schema --format markdown > docs/recipe-reference.md\n\nEditors pick the schema up from a first line such as\n  # yaml-language-server: $schema=../schemas/recipe.schema.json"
)]
pub struct SchemaArgs {
    /// `json` (the JSON Schema) or `markdown` (the recipe reference).
    #[arg(long, value_enum, default_value_t = SchemaFormat::Json)]
    pub format: SchemaFormat,
    /// The JSON Schema (the default; the same as `--format json`).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaFormat {
    Json,
    Markdown,
}

pub fn run(args: SchemaArgs) -> anyhow::Result<Exit> {
    let text = match args.format {
        SchemaFormat::Json => recipe::schema::render(),
        SchemaFormat::Markdown => recipe::reference::render(),
    };
    output::stdout(&text)?;
    Ok(Exit::Success)
}
