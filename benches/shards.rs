//! Many models, many machines (issue 12): a generated project of 200 small recipes built by
//! 1 process and by 4 shard processes, each against a cold and then a warm remote cache (a
//! real S3 server, moto's, on 127.0.0.1). Every shard runs in its own checkout, as CI
//! machines do. Checks that a warm cache converts nothing, that each warm shard finishes
//! within the 2 s target, and that the merged lock is byte-identical to the single-process
//! one. Run: `nice -n 10 cargo bench --bench shards`.
//!
//! To keep 400 conversions affordable on a small machine, all 200 recipes share one small
//! model (`models/mlp.keras`, a 784→256→10 MLP); they differ in name, batch size and
//! quantization mode, so every artifact is a real and distinct conversion.

mod common;
#[path = "../tests/servers/mod.rs"]
mod servers;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const RECIPES: usize = 200;
const SHARDS: usize = 4;

fn project_dir() -> PathBuf {
    common::root().join("target/bench-shards")
}

/// A checkout of the generated project: recipes and the model; optionally the lock and
/// snapshots of `from`.
fn checkout(name: &str, from: Option<&Path>) -> PathBuf {
    let dir = project_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join(".git")).unwrap();
    std::fs::create_dir_all(dir.join("models")).unwrap();
    std::fs::copy(
        common::root().join("models/mlp.keras"),
        dir.join("models/mlp.keras"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("recipes")).unwrap();
    let modes = ["none", "float16", "dynamic_range"];
    for i in 0..RECIPES {
        let mode = modes[i % modes.len()];
        let batch = 1 + (i / modes.len()) % 67;
        std::fs::write(
            dir.join(format!("recipes/r{i:03}.yaml")),
            format!(
                "version: 1\nname: r{i:03}\nmodel: {{keras: ../models/mlp.keras}}\n\
                 batch_size: {batch}\nquantization: {{mode: {mode}}}\nparity: {{samples: 2}}\n\
                 output: ../build/r{i:03}.tflite\n"
            ),
        )
        .unwrap();
    }
    if let Some(from) = from {
        std::fs::copy(from.join("litert.lock"), dir.join("litert.lock")).unwrap();
        let snaps = dir.join("snapshots");
        std::fs::create_dir_all(&snaps).unwrap();
        for e in std::fs::read_dir(from.join("snapshots")).unwrap().flatten() {
            std::fs::copy(e.path(), snaps.join(e.file_name())).unwrap();
        }
    }
    dir
}

fn litert(dir: &Path, args: &[&str], env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(common::litert());
    cmd.current_dir(dir)
        .args(args)
        .env("LITERT_NO_PROGRESS", "1")
        .env_remove("CI")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd
}

/// Run and time one apply; returns (seconds, artifacts restored, artifacts built).
fn apply(dir: &Path, args: &[&str], env: &[(String, String)]) -> (f64, usize, usize) {
    let start = Instant::now();
    let out = litert(dir, args, env).output().expect("litert apply");
    let seconds = start.elapsed().as_secs_f64();
    common::assert_succeeded(&out, &format!("apply {args:?}"));
    counts(&out.stdout, seconds)
}

fn counts(stdout: &[u8], seconds: f64) -> (f64, usize, usize) {
    let v: serde_json::Value = serde_json::from_slice(stdout).expect("apply --json");
    let a = v["artifacts"].as_array().expect("artifacts");
    let restored = a.iter().filter(|x| x["restored_from"].is_string()).count();
    let built = a
        .iter()
        .filter(|x| x["status"] == "built" && !x["restored_from"].is_string())
        .count();
    (seconds, restored, built)
}

/// The 4 shards at once, each in its own checkout of `base`; returns (wall seconds, per
/// shard (seconds, restored, built)) and leaves the merged lock in `merged`.
fn shards(
    label: &str,
    base: &Path,
    url: &str,
    env: &[(String, String)],
    merged: &Path,
) -> (f64, Vec<(f64, usize, usize)>) {
    let dirs: Vec<PathBuf> = (1..=SHARDS)
        .map(|i| checkout(&format!("{label}-shard{i}"), Some(base)))
        .collect();
    let start = Instant::now();
    let children: Vec<_> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let shard = format!("{}/{SHARDS}", i + 1);
            let t = Instant::now();
            let child = litert(
                dir,
                &[
                    "apply", "recipes/", "--json", "--shard", &shard, "--cache", url,
                ],
                env,
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("litert apply --shard");
            (t, child)
        })
        .collect();
    let mut per = Vec::new();
    for (t, child) in children {
        let out = child.wait_with_output().expect("shard");
        let seconds = t.elapsed().as_secs_f64();
        common::assert_succeeded(&out, "a shard");
        per.push(counts(&out.stdout, seconds));
    }
    let wall = start.elapsed().as_secs_f64();
    let mut fragments = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let name = format!("litert-shard-{}-of-{SHARDS}.lock", i + 1);
        std::fs::copy(dir.join(&name), merged.join(&name)).unwrap();
        fragments.push(name);
    }
    let mut args = vec!["lock", "merge"];
    args.extend(fragments.iter().map(String::as_str));
    let out = litert(merged, &args, &[]).output().unwrap();
    common::assert_succeeded(&out, "merging the shards' lock fragments");
    (wall, per)
}

fn main() {
    let server = servers::s3();
    let env = servers::s3_env(&server);
    let single_url = format!("s3://{}/single", servers::BUCKET);
    let shard_url = format!("s3://{}/sharded", servers::BUCKET);

    // 1 process, cold cache: builds all 200 and pushes them.
    let single = checkout("single", None);
    let (cold1, r, b) = apply(
        &single,
        &["apply", "recipes/", "--json", "--cache", &single_url],
        &env,
    );
    assert_eq!((r, b), (0, RECIPES));
    let lock = std::fs::read(single.join("litert.lock")).unwrap();

    // 1 process, warm cache, a clean checkout with the committed lock and snapshots.
    let warm_single = checkout("single-warm", Some(&single));
    let (warm1, r, b) = apply(
        &warm_single,
        &["apply", "recipes/", "--json", "--cache", &single_url],
        &env,
    );
    assert_eq!((r, b), (RECIPES, 0), "a warm cache converts nothing");

    // 4 shards, cold cache (another prefix), then warm.
    let merged_cold = checkout("merged-cold", Some(&single));
    let (cold4, cold_per) = shards("cold", &single, &shard_url, &env, &merged_cold);
    assert_eq!(cold_per.iter().map(|p| p.2).sum::<usize>(), RECIPES);
    let merged_warm = checkout("merged-warm", Some(&single));
    let load_before_warm = common::load_average();
    let (warm4, warm_per) = shards("warm", &single, &shard_url, &env, &merged_warm);
    assert!(
        warm_per.iter().all(|p| p.2 == 0),
        "a warm cache converts nothing"
    );
    assert_eq!(warm_per.iter().map(|p| p.1).sum::<usize>(), RECIPES);

    // One warm shard alone, as a CI runner of its own sees it (the four above share this
    // machine's cores and one S3 server).
    let alone = checkout("warm-alone", Some(&single));
    let (alone_seconds, r, b) = apply(
        &alone,
        &[
            "apply",
            "recipes/",
            "--json",
            "--shard",
            &format!("1/{SHARDS}"),
            "--cache",
            &shard_url,
        ],
        &env,
    );
    assert_eq!(b, 0, "a warm cache converts nothing");

    let same_cold = std::fs::read(merged_cold.join("litert.lock")).unwrap() == lock;
    let same_warm = std::fs::read(merged_warm.join("litert.lock")).unwrap() == lock;
    let slowest_warm = warm_per.iter().map(|p| p.0).fold(0.0, f64::max);
    let fmt = |per: &[(f64, usize, usize)]| {
        per.iter()
            .map(|p| format!("{:.1}s ({} built, {} restored)", p.0, p.2, p.1))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "{RECIPES} recipes (one shared MLP; batch sizes and quantization modes vary), moto S3 on 127.0.0.1"
    );
    println!("1 process, cold cache:  {cold1:.1}s ({RECIPES} built)");
    println!("1 process, warm cache:  {warm1:.2}s ({RECIPES} restored, 0 built)");
    println!(
        "4 shards, cold cache:   {cold4:.1}s wall; {}",
        fmt(&cold_per)
    );
    println!(
        "4 shards, warm cache:   {warm4:.2}s wall; {}",
        fmt(&warm_per)
    );
    println!(
        "speed-up of 4 shards over 1 process, cold: {:.2}x",
        cold1 / cold4
    );
    println!(
        "slowest warm shard: {slowest_warm:.2}s (target <= 2 s; ratio to target {:.2}); {:.2}x the 1-process warm run",
        slowest_warm / 2.0,
        slowest_warm / warm1
    );
    println!(
        "one warm shard alone: {alone_seconds:.2}s ({r} restored; ratio to target {:.2})",
        alone_seconds / 2.0
    );
    println!(
        "merged lock byte-identical to the single-process lock: cold {same_cold}, warm {same_warm}"
    );
    println!(
        "load average (1, 5, 15 min) before the warm shards: {load_before_warm}; at the end: {}",
        common::load_average()
    );
    assert!(same_cold && same_warm, "the merged lock differs");
}
