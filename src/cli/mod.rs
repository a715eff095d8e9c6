//! The command line: argument parsing (clap) and one module per verb. Verbs print data to
//! stdout and everything else to stderr, and map outcomes to the documented exit codes.

mod diff;
mod inspect;
mod output;
mod schema;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use output::{Exit, Hinted};

/// Turn version-controlled YAML recipes into LiteRT (`.tflite`) models, reproducibly.
#[derive(Debug, Parser)]
#[command(
    name = "litert",
    version,
    about,
    after_help = "Examples:\n  litert check recipes/\n  litert plan recipes/mlp_quickstart.yaml --json\n  litert schema > recipe.schema.json\n\nExit codes: 0 success, 1 a check found a difference or failure, 2 invalid input or usage"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Schema(schema::SchemaArgs),
    Inspect(inspect::InspectArgs),
    Diff(diff::DiffArgs),
}

/// Parse the process arguments, run the verb and return its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() { Exit::Usage } else { Exit::Success };
            let _ = err.print();
            return code.into();
        }
    };
    let exit = match cli.command {
        Command::Schema(args) => schema::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Diff(args) => diff::run(args),
    };
    match exit {
        Ok(code) => code.into(),
        Err(err) => {
            output::print_error(&err);
            Exit::Usage.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
