//! `litert snapshot`: the review workflow for signature snapshots that `apply` left pending
//! (`snapshots/*.yaml.new`) because an artifact's contract changed.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::{Exit, Hinted, output};
use crate::snapshot::review::{self, Pending};

/// An accepted snapshot describes an artifact that was rejected and never written: the
/// artifact and its lock entry still have to be built.
const AFTER_ACCEPT: &str = "note: the artifact itself was not written when its snapshot changed: run `litert apply` to build it and update litert.lock, then `litert test` and `--locked` pass\n";

/// Review changed signature snapshots: accept or reject them.
///
/// See what changed in an artifact's contract, then accept (the new snapshot replaces the
/// stored one) or reject (the pending one is deleted).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert snapshot review\n  litert snapshot accept classifier-int8\n  litert snapshot accept --all\n  litert snapshot reject --all"
)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    command: SnapshotCommand,
    /// The snapshots directory (default: `snapshots/` under the project root).
    #[arg(long, global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// Walk through pending snapshots on a terminal: accept, reject or skip each.
    Review,
    /// Accept pending snapshots by name (file stem or artifact id), or all of them.
    Accept(Selection),
    /// Reject (delete) pending snapshots by name, or all of them.
    Reject(Selection),
    /// List pending snapshots.
    List(ListArgs),
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Print a JSON array of `{name, pending, snapshot}` on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct Selection {
    /// Snapshot names (`classifier-int8`) or artifact ids (`classifier:int8`).
    names: Vec<String>,
    /// Every pending snapshot.
    #[arg(long, conflicts_with = "names")]
    all: bool,
}

pub fn run(args: SnapshotArgs) -> anyhow::Result<Exit> {
    let dir = match args.dir {
        Some(d) => d,
        None => crate::lock::project_root(&std::env::current_dir()?).join("snapshots"),
    };
    let pending =
        review::pending(&dir).with_context(|| format!("cannot read `{}`", dir.display()))?;
    match args.command {
        SnapshotCommand::List(list) => {
            if list.json {
                let rows: Vec<_> = pending
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "name": p.name(),
                            "pending": p.new.display().to_string(),
                            "snapshot": p.stored.display().to_string(),
                        })
                    })
                    .collect();
                output::stdout(&format!("{}\n", serde_json::to_string_pretty(&rows)?))?;
            } else {
                let text: String = pending.iter().map(|p| format!("{}\n", p.name())).collect();
                output::stdout(&text)?;
            }
            if pending.is_empty() {
                output::stderr(&format!(
                    "no snapshots are pending review in `{}`\n",
                    dir.display()
                ));
            }
        }
        SnapshotCommand::Accept(sel) => {
            let chosen = select(&pending, &sel)?;
            for p in &chosen {
                p.accept()
                    .with_context(|| format!("cannot accept `{}`", p.new.display()))?;
                output::stderr(&format!("accepted {}\n", p.name()));
            }
            if !chosen.is_empty() {
                output::stderr(AFTER_ACCEPT);
            }
        }
        SnapshotCommand::Reject(sel) => {
            for p in select(&pending, &sel)? {
                p.reject()
                    .with_context(|| format!("cannot reject `{}`", p.new.display()))?;
                output::stderr(&format!("rejected {}\n", p.name()));
            }
        }
        SnapshotCommand::Review => interactive(&pending)?,
    }
    Ok(Exit::Success)
}

fn select<'a>(pending: &'a [Pending], sel: &Selection) -> anyhow::Result<Vec<&'a Pending>> {
    if sel.all {
        return Ok(pending.iter().collect());
    }
    if sel.names.is_empty() {
        bail!(Hinted::new(
            "name the snapshots, or pass `--all`",
            "see them with `litert snapshot list`"
        ));
    }
    sel.names
        .iter()
        .map(|name| {
            pending.iter().find(|p| p.matches(name)).ok_or_else(|| {
                let known: Vec<String> = pending.iter().map(Pending::name).collect();
                anyhow::Error::new(Hinted::new(
                    format!("no pending snapshot named `{name}`"),
                    if known.is_empty() {
                        "nothing is pending".to_string()
                    } else {
                        format!("pending: {}", known.join(", "))
                    },
                ))
            })
        })
        .collect()
}

fn interactive(pending: &[Pending]) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!(Hinted::new(
            "`litert snapshot review` asks questions and needs a terminal",
            "use `litert snapshot accept NAME` or `reject NAME` (or `--all`) in scripts",
        ));
    }
    if pending.is_empty() {
        output::stderr("no pending snapshots\n");
        return Ok(());
    }
    let stdin = std::io::stdin();
    for (i, p) in pending.iter().enumerate() {
        output::stderr(&format!(
            "\n[{}/{}] {}\n{}",
            i + 1,
            pending.len(),
            p.name(),
            p.diff()
        ));
        loop {
            output::stderr("accept, reject, skip or quit? [a/r/s/q] ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            if stdin.lock().read_line(&mut line)? == 0 {
                return Ok(());
            }
            match line.trim() {
                "a" => {
                    p.accept()?;
                    output::stderr(&format!("accepted\n{AFTER_ACCEPT}"));
                }
                "r" => {
                    p.reject()?;
                    output::stderr("rejected\n");
                }
                "s" => {}
                "q" => return Ok(()),
                _ => continue,
            }
            break;
        }
    }
    Ok(())
}
