//! `litert lock merge`: join the lock fragments of a sharded run into `litert.lock`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Exit, output};
use crate::lock::fragment::{self, Fragment};
use crate::lock::{FILE_NAME, LockFile, Locked};

/// Work with `litert.lock`.
#[derive(Debug, Args)]
pub struct LockCommand {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    Merge(MergeArgs),
}

/// Merge the lock fragments of a sharded run (`litert apply --shard I/N`) into `litert.lock`.
///
/// Every shard's fragment must be there, all made from the `litert.lock` that is here now;
/// the result is the lock one machine building every artifact would have written.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert lock merge litert-shard-*.lock\n  litert lock merge fragments/*.lock --project path/to/project\n\nExit codes: 0 merged, 2 a fragment is missing, unreadable or from another lock."
)]
struct MergeArgs {
    /// The fragment files, one per shard.
    #[arg(required = true)]
    fragments: Vec<PathBuf>,
    /// The project whose `litert.lock` the fragments merge into.
    #[arg(long, value_name = "DIR", default_value = ".")]
    project: PathBuf,
}

pub fn run(args: LockCommand) -> anyhow::Result<Exit> {
    let Action::Merge(args) = args.action;
    let fragments = args
        .fragments
        .iter()
        .map(|p| Ok((p.clone(), Fragment::read(p)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let root = args.project;
    // Hold the project's lock while reading the base and writing the result, as `apply`
    // does, so a concurrent apply cannot slip in between.
    let mut locked = Locked::open(&root)?;
    let base_digest = fragment::lock_digest(&root.join(FILE_NAME))?;
    let base: LockFile = std::mem::take(&mut locked.lock);
    let merged = fragment::merge(base, &base_digest, &fragments)?;
    let count: usize = fragments.iter().map(|(_, f)| f.artifacts.len()).sum();
    locked.lock = merged;
    locked.save()?;
    output::stderr(&format!(
        "merged {} fragment(s), {count} artifact(s), into `{}`\n",
        fragments.len(),
        root.join(FILE_NAME).display()
    ));
    Ok(Exit::Success)
}
