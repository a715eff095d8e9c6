//! `litert schema`: print the recipe JSON Schema that editors and `check` use.

use clap::Args;

use super::{Exit, output};

/// Print the recipe JSON Schema (the same one `schemas/recipe.schema.json` holds).
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  litert schema > recipe.schema.json")]
pub struct SchemaArgs {}

pub fn run(_args: SchemaArgs) -> anyhow::Result<Exit> {
    output::stdout(&crate::recipe::schema::render())?;
    Ok(Exit::Success)
}
