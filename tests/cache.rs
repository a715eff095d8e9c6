//! Many machines (issue 12): the remote cache against real servers on 127.0.0.1 — moto's
//! S3 endpoint and a plain HTTP server that takes PUT — and sharded applies whose lock
//! fragments merge into the lock one process writes. Every project is a scratch copy with its
//! own `.git` root; conversions are real, on the small MLP the examples use.

use std::path::{Path, PathBuf};

use crate::servers;
use crate::support::{Output, TestContext, artifacts};

const IDS: [&str; 3] = ["mlp:b1", "mlp:b2", "mlp:f16"];

/// A project with one recipe of three variants of the same model.
struct Project {
    ctx: TestContext,
}

impl Project {
    fn new() -> Self {
        let ctx = TestContext::new();
        ctx.copy("models/mlp.keras");
        std::fs::create_dir(ctx.join("recipes")).unwrap();
        std::fs::write(
            ctx.join("recipes/mlp.yaml"),
            "version: 1\nname: mlp\nmodel: {keras: ../models/mlp.keras}\n\
             parity: {samples: 2}\noutput: ../build/mlp-{{ variant }}.tflite\n\
             variants:\n  b1: {batch_size: 1}\n  b2: {batch_size: 2}\n  \
             f16: {batch_size: 1, quantization: {mode: float16}}\n",
        )
        .unwrap();
        Self { ctx }
    }

    /// A second checkout of the same project: the recipe, the model and, when asked, the
    /// lock and snapshots of `self` — never the built artifacts.
    fn clone_sources(&self, with_lock: bool) -> Self {
        let other = Self::new();
        if with_lock {
            std::fs::copy(self.path("litert.lock"), other.path("litert.lock")).unwrap();
            copy_dir(&self.path("snapshots"), &other.path("snapshots"));
        }
        other
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.ctx.join(rel)
    }

    fn run(&self, args: &[&str], env: &[(String, String)]) -> Output {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.ctx.litert_with(args, &env)
    }

    fn lock(&self) -> String {
        std::fs::read_to_string(self.path("litert.lock")).unwrap()
    }

    fn sha(&self, rel: &str) -> String {
        litert::digest::file_sha256(&self.path(rel)).unwrap()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The golden files under `snapshots/` (name and bytes): what `litert test` re-runs the
/// artifacts on natively.
fn golden_files(p: &Project) -> Vec<(String, Vec<u8>)> {
    files(&p.path("snapshots"))
        .into_iter()
        .filter(|f| f.to_string_lossy().contains(".golden."))
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&f).unwrap())
        })
        .collect()
}

/// `litert test` passes, and re-ran every artifact on its golden outputs.
fn test_passes_with_golden_outputs(p: &Project) {
    let out = p.run(&["test", "recipes/", "--json"], &[]);
    ok(&out);
    for (id, a) in artifacts(&out) {
        assert_eq!(a["golden"]["ok"], true, "{id}: {a}");
        assert!(a["golden"]["samples"].as_u64().unwrap() > 0, "{id}: {a}");
    }
}

fn ok(out: &Output) {
    assert_eq!(
        out.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
}

/// How the report says each artifact came to be: `built`, `restored` or another status.
fn how(out: &Output) -> Vec<(String, String)> {
    artifacts(out)
        .into_iter()
        .map(|(id, a)| {
            let how = if a["restored_from"].is_string() {
                "restored".to_string()
            } else {
                a["status"].as_str().unwrap_or_default().to_string()
            };
            (id, how)
        })
        .collect()
}

fn all(how: &str) -> Vec<(String, String)> {
    IDS.iter()
        .map(|i| (i.to_string(), how.to_string()))
        .collect()
}

/// Files under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn s3_cache_serves_a_second_machine_without_converting_and_the_same_lock() {
    let server = servers::s3();
    let env = servers::s3_env(&server);
    let url = format!("s3://{}/team/litert", servers::BUCKET);
    let first = Project::new();
    let out = first.run(&["apply", "recipes/", "--json", "--cache", &url], &env);
    ok(&out);
    assert_eq!(how(&out), all("built"));
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);

    let status = first.run(&["cache", "status", "--cache", &url, "--json"], &env);
    ok(&status);
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    for a in v["artifacts"].as_array().unwrap() {
        assert_eq!(a["local"], "up_to_date", "{a}");
        assert!(a["remote"].as_str().unwrap().starts_with("present"), "{a}");
    }

    // Another machine: a clean checkout with the committed lock and snapshots, no artifacts.
    let second = first.clone_sources(true);
    let out = second.run(&["apply", "recipes/", "--json", "--locked"], &{
        let mut e = env.clone();
        e.push(("LITERT_CACHE_URL".into(), url.clone()));
        e
    });
    ok(&out);
    assert_eq!(how(&out), all("restored"));
    for id in IDS {
        let file = format!("build/mlp-{}.tflite", id.trim_start_matches("mlp:"));
        assert_eq!(first.sha(&file), second.sha(&file), "{file}");
    }
    // The golden outputs came with them (the committed ones are kept, not deleted), and
    // `litert test` re-runs every restored artifact on them.
    let golden = golden_files(&first);
    assert_eq!(
        golden.len(),
        2 * IDS.len(),
        "{:?}",
        golden.iter().map(|g| &g.0).collect::<Vec<_>>()
    );
    assert_eq!(golden_files(&second), golden);
    test_passes_with_golden_outputs(&second);
    // `--locked` writes no lock; a plain apply finds everything up to date and leaves the
    // lock byte for byte as the first machine wrote it.
    let again = second.run(&["apply", "recipes/", "--json"], &env);
    ok(&again);
    assert_eq!(how(&again), all("up_to_date"));
    assert_eq!(second.lock(), first.lock());

    // A third machine without the lock: restored, and the lock it writes is the first one's
    // (the build times come from the cache records).
    let third = first.clone_sources(false);
    let out = third.run(&["apply", "recipes/", "--json", "--cache", &url], &env);
    ok(&out);
    assert_eq!(how(&out), all("restored"));
    assert_eq!(third.lock(), first.lock());
    assert!(first.lock().contains("build_seconds:"), "{}", first.lock());
    // Nothing was committed there: the golden outputs come from the cache alone.
    assert_eq!(golden_files(&third), golden);
    test_passes_with_golden_outputs(&third);
}

#[test]
fn http_cache_failures_never_lose_work() {
    let store = tempfile::tempdir().unwrap();
    let server = servers::http(store.path(), false);
    let url = format!("{}/cache", server.url());
    let first = Project::new();
    ok(&first.run(&["apply", "recipes/mlp.yaml", "--cache", &url], &[]));
    // Per artifact: the artifact, its golden outputs and the record.
    let objects = files(store.path());
    assert_eq!(objects.len(), 9, "{objects:?}");

    // Corrupt one stored artifact and truncate another's record: those two are rebuilt
    // locally with a warning, the third is restored.
    let artifact = objects
        .iter()
        .find(|p| p.ends_with("artifact.tflite"))
        .unwrap();
    let mut bytes = std::fs::read(artifact).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(artifact, bytes).unwrap();
    let record = objects
        .iter()
        .filter(|p| p.ends_with("record.json"))
        .find(|p| p.parent() != artifact.parent())
        .unwrap();
    std::fs::write(record, "{\"format\": 1, \"key\"").unwrap();
    let second = first.clone_sources(true);
    let out = second.run(&["apply", "recipes/", "--json", "--cache", &url], &[]);
    ok(&out);
    let hows = how(&out);
    assert_eq!(
        hows.iter().filter(|(_, h)| h == "restored").count(),
        1,
        "{hows:?}"
    );
    assert!(
        out.stderr
            .contains("the `artifact.tflite` object's bytes are not the record's")
            && out.stderr.contains("the record is not valid")
            && out.stderr.contains("building it locally"),
        "{}",
        out.stderr
    );
    assert_eq!(second.lock(), first.lock());
    drop(server);

    // The server is gone: one warning, every artifact built locally, the lock written.
    let third = first.clone_sources(false);
    let dead = format!("http://127.0.0.1:{}/cache", servers::closed_port());
    let out = third.run(&["apply", "recipes/", "--json", "--cache", &dead], &[]);
    ok(&out);
    assert_eq!(how(&out), all("built"));
    assert_eq!(
        out.stderr.matches("cannot be reached").count(),
        1,
        "{}",
        out.stderr
    );
    assert_eq!(third.lock().lines().count(), first.lock().lines().count());

    // A server that refuses writes: a warning per artifact, each written and locked anyway.
    let refusing_store = tempfile::tempdir().unwrap();
    let refusing = servers::http(refusing_store.path(), true);
    let fourth = first.clone_sources(false);
    let out = fourth.run(
        &["apply", "recipes/", "--json", "--cache", &refusing.url()],
        &[],
    );
    ok(&out);
    assert!(
        out.stderr.contains("not pushed to the cache"),
        "{}",
        out.stderr
    );
    assert!(fourth.path("build/mlp-b1.tflite").exists());
    assert!(fourth.lock().contains("mlp:f16"));

    // Read-only: restores, never writes.
    let empty_store = tempfile::tempdir().unwrap();
    let empty = servers::http(empty_store.path(), false);
    let fifth = first.clone_sources(false);
    let out = fifth.run(
        &[
            "apply",
            "recipes/",
            "--cache",
            &empty.url(),
            "--cache-read-only",
        ],
        &[],
    );
    ok(&out);
    assert!(files(empty_store.path()).is_empty());
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
}

#[test]
fn shards_merge_into_the_lock_one_process_writes() {
    let single = Project::new();
    ok(&single.run(&["apply", "recipes/"], &[]));
    let lock = single.lock();

    // The matrix, as a GitHub Actions job would read it.
    let m = single.run(
        &[
            "plan", "recipes/", "--matrix", "--shards", "2", "--format", "github",
        ],
        &[],
    );
    ok(&m);
    assert_eq!(m.stdout.lines().count(), 1, "{}", m.stdout);
    let matrix: serde_json::Value = serde_json::from_str(&m.stdout).unwrap();
    let shards: Vec<&str> = matrix["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["shard"].as_str().unwrap())
        .collect();
    assert_eq!(shards, ["1/2", "2/2"]);
    let detail = single.run(
        &[
            "plan", "recipes/", "--matrix", "--shards", "2", "--format", "json",
        ],
        &[],
    );
    let shares: serde_json::Value = serde_json::from_str(&detail.stdout).unwrap();
    let mut assigned: Vec<String> = shares
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["artifacts"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assigned.sort();
    assert_eq!(assigned, IDS);

    // Each shard in its own clean checkout of the committed lock, as CI runs them.
    let merged = single.clone_sources(true);
    for shard in ["1/2", "2/2"] {
        let machine = single.clone_sources(true);
        let out = machine.run(&["apply", "recipes/", "--shard", shard, "--json"], &[]);
        ok(&out);
        assert_eq!(machine.lock(), lock, "a shard leaves litert.lock alone");
        let name = format!("litert-shard-{}-of-2.lock", &shard[..1]);
        std::fs::copy(machine.path(&name), merged.path(&name)).unwrap();
    }
    // A missing fragment is refused; both give back the single-process lock exactly.
    let partial = merged.run(&["lock", "merge", "litert-shard-1-of-2.lock"], &[]);
    assert_eq!(partial.code, 2, "{}", partial.stderr);
    assert!(
        partial.stderr.contains("no fragment for shard 2/2"),
        "{}",
        partial.stderr
    );
    let out = merged.run(
        &[
            "lock",
            "merge",
            "litert-shard-1-of-2.lock",
            "litert-shard-2-of-2.lock",
        ],
        &[],
    );
    ok(&out);
    assert_eq!(merged.lock(), lock);

    // From no lock at all: the fragments hold every artifact, with its measured time.
    let fresh = single.clone_sources(false);
    for shard in ["1/2", "2/2"] {
        ok(&fresh.run(&["apply", "recipes/", "--shard", shard], &[]));
    }
    ok(&fresh.run(
        &[
            "lock",
            "merge",
            "litert-shard-1-of-2.lock",
            "litert-shard-2-of-2.lock",
        ],
        &[],
    ));
    let strip = |l: &str| -> String {
        l.lines()
            .filter(|x| !x.contains("build_seconds"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&fresh.lock()), strip(&lock));
}

#[test]
fn cache_verbs_push_what_is_built_and_pull_without_building() {
    let store = tempfile::tempdir().unwrap();
    let url = format!("file://{}", store.path().display());
    let first = Project::new();
    ok(&first.run(&["apply", "recipes/"], &[]));
    let rows = |out: &Output| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["remote"].as_str().unwrap().to_string())
            .collect()
    };
    let push = first.run(&["cache", "push", "--cache", &url, "--json"], &[]);
    ok(&push);
    assert_eq!(rows(&push), ["pushed"; 3]);
    let again = first.run(&["cache", "push", "--cache", &url, "--json"], &[]);
    assert_eq!(rows(&again), ["already_there"; 3]);
    let refused = first.run(
        &["cache", "push", "--cache", &url, "--cache-read-only"],
        &[],
    );
    assert_eq!(refused.code, 2, "{}", refused.stderr);

    // Another checkout pulls everything: restored and verified, nothing converted, and the
    // lock stays the one the first machine wrote.
    let second = first.clone_sources(true);
    let pull = second.run(&["cache", "pull", "--cache", &url, "--json"], &[]);
    ok(&pull);
    assert_eq!(how(&pull), all("restored"));
    assert_eq!(second.lock(), first.lock());
    assert_eq!(golden_files(&second), golden_files(&first));
    test_passes_with_golden_outputs(&second);
    let status = second.run(&["cache", "status", "--cache", &url, "--json"], &[]);
    ok(&status);
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert!(v["artifacts"].as_array().unwrap().iter().all(
        |a| a["local"] == "up_to_date" && a["remote"].as_str().unwrap().starts_with("present")
    ));

    // From an empty cache, pull builds nothing and says what is missing.
    let empty = tempfile::tempdir().unwrap();
    let third = first.clone_sources(true);
    let pull = third.run(
        &[
            "cache",
            "pull",
            "--cache",
            &format!("file://{}", empty.path().display()),
        ],
        &[],
    );
    assert_eq!(pull.code, 1, "{}", pull.stdout);
    assert!(pull.stdout.contains("not in the cache"), "{}", pull.stdout);
    assert!(!third.path("build/mlp-b1.tflite").exists());
}
