//! Re-applying up-to-date recipes (issue 5): 10 recipes whose lock entries match must be
//! verified without starting Python, in ≤ 0.3 s in total. Run:
//! `cargo bench --bench up_to_date`.

mod common;

use std::process::Command;
use std::time::Instant;

const RECIPES: [&str; 10] = [
    "recipes/mlp_quickstart.yaml",
    "recipes/functional.yaml",
    "recipes/multi_input.yaml",
    "recipes/dict_inputs.yaml",
    "recipes/custom_signature.yaml",
    "recipes/dynamic_shapes.yaml",
    "recipes/legacy_h5.yaml",
    "recipes/saved_model.yaml",
    "recipes/weights_and_config.yaml",
    "recipes/extends_raw_kwargs.yaml",
];

fn main() {
    let root = common::root();
    let bin = common::litert();
    let apply = || {
        Command::new(&bin)
            .current_dir(&root)
            .arg("apply")
            .arg("--json")
            .args(RECIPES)
            .env("LITERT_NO_PROGRESS", "1")
            .output()
            .expect("litert apply")
    };
    // Bring everything up to date first (this one may build).
    let first = apply();
    common::assert_succeeded(&first, "the first litert apply");
    let mut times = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let out = apply();
        times.push(start.elapsed().as_secs_f64());
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let all_fresh = report["artifacts"]
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x["status"] == "up_to_date"));
        assert!(all_fresh, "not everything was up to date");
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "re-apply 10 up-to-date recipes: median {:.1} ms, max {:.1} ms (target <= 300 ms; ratio to target {:.3})",
        median * 1e3,
        times[times.len() - 1] * 1e3,
        median / 0.3
    );
}
