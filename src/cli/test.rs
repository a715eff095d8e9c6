//! `litert test`: the CI gate. Every artifact must match its signature snapshot, and its
//! bytes must be the ones in `litert.lock` — verified natively when up to date, rebuilt
//! (into a temporary file; nothing is written) when not.

use std::path::PathBuf;

use clap::Args;

use super::common::{BuildArgs, RecipeArgs, checked_plans, default_paths, print_outcomes};
use super::{Exit, output};
use crate::engine::{self, Outcome, Status, contract::Policy, progress::Progress};

/// CI gate: every artifact still matches its snapshot and `litert.lock`.
///
/// Verifies what is up to date without Python, rebuilds the rest in a scratch file and
/// compares. Writes nothing but the reports you ask for.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert test                         # every recipe under recipes/\n  litert test recipes/gemma_int8.yaml --allow-code\n  litert test --junit test-results.xml --json > report.json\n  litert test --summary \"$GITHUB_STEP_SUMMARY\"\n\nExit codes: 0 no drift, 1 drift (a changed snapshot, bytes that differ from the lock, an\nartifact missing from the lock, a failed build), 2 an invalid recipe or bad arguments."
)]
pub struct TestArgs {
    /// Recipe files, directories or glob patterns (default: `recipes/`).
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub build: BuildArgs,
    /// Rebuild even artifacts that are up to date, and compare the bytes.
    #[arg(long)]
    pub force: bool,
    /// Also write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also append a Markdown summary to this file (for CI job summaries, e.g.
    /// `--summary "$GITHUB_STEP_SUMMARY"`).
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub recipe: RecipeArgs,
}

pub fn run(args: TestArgs) -> anyhow::Result<Exit> {
    let paths = default_paths(args.paths)?;
    let Some(plans) = checked_plans(&paths, &args.recipe)? else {
        output::stderr("error: nothing was tested: fix the recipe errors above\n");
        return Ok(Exit::Usage);
    };
    let policy = Policy {
        update_snapshots: false,
        ci: true,
        locked: true,
        write: false,
    };
    let session = args.build.session(&plans, policy, args.force)?;
    let outcomes = engine::session::run(plans, &session, &Progress::new())?;
    if let Some(path) = &args.junit {
        crate::fsio::write_atomic(path, junit(&outcomes))
            .map_err(|e| anyhow::anyhow!("cannot write `{}`: {e}", path.display()))?;
    }
    if let Some(path) = &args.summary {
        let text = engine::report::markdown("litert test", &outcomes);
        crate::fsio::append(path, &text)
            .map_err(|e| anyhow::anyhow!("cannot write `{}`: {e}", path.display()))?;
    }
    let exit = print_outcomes(&outcomes, args.json)?;
    let failed = outcomes.iter().filter(|o| !o.ok()).count();
    output::stderr(&format!(
        "test: {} passed, {failed} failed\n",
        outcomes.len() - failed
    ));
    Ok(exit)
}

/// A JUnit report: one test case per artifact, failures with the reasons and diffs.
fn junit(outcomes: &[Outcome]) -> String {
    let failures = outcomes.iter().filter(|o| !o.ok()).count();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"litert\" tests=\"{}\" failures=\"{failures}\">\n",
        outcomes.len()
    );
    for o in outcomes {
        xml.push_str(&format!(
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            escape(&o.plan.recipe.display().to_string()),
            escape(&o.plan.id),
            o.seconds
        ));
        if o.ok() {
            xml.push_str("/>\n");
            continue;
        }
        let (mut message, detail) = match &o.status {
            Status::Rejected(c, reasons) => (reasons.join("; "), snapshot_diff(&c.snapshot)),
            Status::UpToDate(v) => (v.reasons.join("; "), snapshot_diff(&v.snapshot)),
            Status::Failed(f) => (
                format!("failed at `{}`: {}", f.stage, f.message),
                f.detail.clone().unwrap_or_default(),
            ),
            Status::Built(_) => (String::new(), String::new()),
        };
        if !o.rebuilt_because.is_empty() {
            message.push_str(&format!(
                " (built because {})",
                o.rebuilt_because.join("; ")
            ));
        }
        xml.push_str(&format!(
            ">\n    <failure message=\"{}\">{}</failure>\n  </testcase>\n",
            escape(&message),
            escape(&detail)
        ));
    }
    xml.push_str("</testsuite>\n");
    xml
}

fn snapshot_diff(s: &engine::contract::SnapshotOutcome) -> String {
    match s {
        engine::contract::SnapshotOutcome::Changed { diff, .. } => diff.clone(),
        _ => String::new(),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
