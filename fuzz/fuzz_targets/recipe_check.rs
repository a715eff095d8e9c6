//! Fuzz the recipe loader: any bytes as a recipe file must give plans or diagnostics, never
//! a panic, and every diagnostic must render (human and JSON) against the sources it names.
//! Seeds: `recipes/` and `tests/fixtures/` (see `fuzz/README.md`).

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use litert::diag::Sources;
use litert::recipe::{Overrides, check_bytes};

fuzz_target!(|data: &[u8]| {
    let mut sources = Sources::default();
    // A path under the fuzz crate, so `extends:` and model paths resolve somewhere real and
    // harmless (the corpus never names files outside the repository).
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes/fuzz.yaml");
    let checked = check_bytes(&path, data, &Overrides::default(), &mut sources);
    for diag in &checked.diagnostics {
        let text = diag.render(&sources, false);
        assert!(!text.is_empty());
        let _ = diag.to_json(&sources);
    }
    if !checked.has_errors() {
        for plan in &checked.plans {
            let _ = serde_json::to_string(plan).expect("a plan serializes");
        }
    }
});
