//! The command line: argument parsing (clap) and one module per verb. Verbs print data to
//! stdout and everything else to stderr, and map outcomes to the documented exit codes.
//! What they share is in [`common`] (argument groups, checked plans, the build report),
//! [`output`] (exit codes, stdout/stderr, errors) and [`render`] (the human `inspect`
//! summaries); no verb imports another.

mod apply;
mod bench;
mod cache;
mod check;
mod common;
mod diff;
mod env;
mod init;
mod inspect;
mod lock;
mod output;
mod plan;
mod render;
mod run;
mod schema;
mod snapshot;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use output::{Exit, Hinted};

/// Turn version-controlled YAML recipes into LiteRT (`.tflite`) models, reproducibly.
#[derive(Debug, Parser)]
#[command(
    name = "litert",
    version,
    about,
    after_help = "Examples:\n  litert init models/classifier.keras\n  litert check recipes/\n  litert plan recipes/mlp_quickstart.yaml --json\n  litert apply recipes/mlp_quickstart.yaml\n  litert inspect build/mlp_quickstart.tflite\n  litert diff old.tflite new.tflite\n\nExit codes: 0 success, 1 a check found a difference or failure, 2 invalid input or usage"
)]
pub struct Cli {
    /// Show other programs' logs on stderr: the worker's (TensorFlow) and the LiteRT
    /// runtime's. [env: LITERT_VERBOSE=1]
    #[arg(long, short = 'v', global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Init(init::InitArgs),
    Check(check::CheckArgs),
    Plan(plan::PlanArgs),
    Apply(apply::ApplyArgs),
    Test(test::TestArgs),
    Snapshot(snapshot::SnapshotArgs),
    Inspect(inspect::InspectArgs),
    Diff(diff::DiffArgs),
    Run(run::RunArgs),
    Bench(bench::BenchArgs),
    Schema(schema::SchemaArgs),
    Env(env::EnvArgs),
    Cache(cache::CacheCommand),
    Lock(lock::LockCommand),
}

/// Parse the process arguments, run the verb and return its exit code.
pub fn main() -> ExitCode {
    crate::interrupt::install();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() {
                Exit::Usage
            } else {
                Exit::Success
            };
            let _ = err.print();
            return code.into();
        }
    };
    crate::progress::set_verbose(cli.verbose);
    let exit = match cli.command {
        Command::Init(args) => init::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Test(args) => test::run(args),
        Command::Snapshot(args) => snapshot::run(args),
        Command::Check(args) => check::run(args),
        Command::Env(args) => env::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Run(args) => run::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Cache(args) => cache::run(args),
        Command::Lock(args) => lock::run(args),
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
