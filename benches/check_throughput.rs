//! Recipe validation throughput: 1,000 recipes through the full front half (parse with
//! spans, `extends`, variants, templates, schema, semantic rules), on one thread.
//! Target (issue 2): at least 2,000 recipes/s. Run: `cargo bench --bench check_throughput`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use litert::diag::Sources;
use litert::recipe::{self, Overrides};

const RECIPES: usize = 1000;
const TARGET_PER_SECOND: f64 = 2000.0;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temp dir");
    let files = write_corpus(&root, dir.path());

    // Warm up (file cache, schema compilation), then measure the best of 5 passes.
    let overrides = Overrides::default();
    let mut best = f64::INFINITY;
    let mut artifacts = 0;
    for pass in 0..6 {
        let mut sources = Sources::default();
        let start = Instant::now();
        let mut n = 0;
        for f in &files {
            let checked = recipe::check_file(f, &overrides, &mut sources);
            assert!(!checked.has_errors(), "{} is invalid", f.display());
            n += checked.plans.len();
        }
        let secs = start.elapsed().as_secs_f64();
        if pass > 0 {
            best = best.min(secs);
        }
        artifacts = n;
    }
    let rate = RECIPES as f64 / best;
    println!(
        "in-process: {RECIPES} recipes ({artifacts} artifacts) in {:.1} ms = {rate:.0} recipes/s on one thread",
        best * 1e3
    );
    println!(
        "  ratio to the 2,000 recipes/s target: {:.2}x",
        rate / TARGET_PER_SECOND
    );

    // The same through the binary, as a user runs it (one process, all files).
    let bin = common::litert();
    {
        let start = Instant::now();
        let out = Command::new(&bin)
            .arg("check")
            .arg(dir.path())
            .output()
            .expect("litert runs");
        let secs = start.elapsed().as_secs_f64();
        common::assert_succeeded(&out, "litert check");
        println!(
            "binary `litert check DIR`: {RECIPES} recipes in {:.1} ms = {:.0} recipes/s",
            secs * 1e3,
            RECIPES as f64 / secs
        );
    }
}

/// 1,000 recipes: the example recipes, copied with distinct names, paths made absolute.
fn write_corpus(root: &Path, dir: &Path) -> Vec<PathBuf> {
    let recipes = root.join("recipes");
    let mut examples: Vec<(String, String)> = std::fs::read_dir(&recipes)
        .expect("recipes/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let abs = format!("{}/", root.display());
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                text.replace("../", &abs),
            )
        })
        .collect();
    examples.sort();
    let bases: Vec<_> = examples
        .iter()
        .filter(|(n, _)| n.starts_with('_'))
        .cloned()
        .collect();
    for (name, text) in &bases {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let mains: Vec<_> = examples
        .iter()
        .filter(|(n, _)| !n.starts_with('_'))
        .collect();
    (0..RECIPES)
        .map(|i| {
            let (name, text) = mains[i % mains.len()];
            let path = dir.join(format!("r{i:04}_{name}"));
            // Distinct outputs per copy, as a real tree of recipes would have.
            std::fs::write(&path, text.replace("build/", &format!("build/r{i:04}/"))).unwrap();
            path
        })
        .collect()
}
