//! The layout `src/lib.rs` states: every module of the library sits in one layer of its
//! flow, imports only modules of lower layers, and is listed in the flow comment in that
//! order; every source file starts with a `//!` paragraph saying what it owns.

use std::path::{Path, PathBuf};

use crate::support::root;

/// `src/lib.rs`'s flow, top to bottom: a module may import those of the layers below it;
/// modules of one layer import neither each other.
const LAYERS: &[&[&str]] = &[
    &["cli"],
    &["engine"],
    &["cache", "shard"],
    &["worker"],
    &["runtime"],
    &["pyenv"],
    &["recipe"],
    &["lock"],
    &["snapshot"],
    &["litertlm", "llm"],
    &["tflite"],
    &[
        "diag",
        "diff",
        "digest",
        "fsio",
        "interrupt",
        "progress",
        "provenance",
        "units",
    ],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`None` for `lib.rs` and `main.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs");
    (name != "lib" && name != "main").then(|| name.to_string())
}

/// Every `crate::NAME` a file mentions (imports, paths and doc links alike).
fn mentions(text: &str) -> Vec<String> {
    text.match_indices("crate::")
        .map(|(i, m)| {
            text[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn every_library_module_is_in_one_layer_of_the_flow() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let mut declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    declared.sort_unstable();
    let mut layered: Vec<&str> = LAYERS.iter().flat_map(|l| l.iter().copied()).collect();
    layered.sort_unstable();
    assert_eq!(
        declared, layered,
        "place each module of src/lib.rs in LAYERS"
    );
    // The flow comment names the modules in the order of the layers.
    let positions: Vec<usize> = LAYERS
        .iter()
        .flat_map(|l| l.iter())
        .map(|m| {
            lib.find(&format!("[`{m}`]"))
                .unwrap_or_else(|| panic!("lib.rs's flow comment does not name `{m}`"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "lib.rs's flow comment names the modules out of the layers' order"
    );
}

#[test]
fn no_module_imports_one_above_it() {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let own = layer_of(&module).unwrap_or_else(|| panic!("`{module}` is in no layer"));
        let text = std::fs::read_to_string(&file).unwrap();
        for other in mentions(&text) {
            match layer_of(&other) {
                Some(layer) if other != module && layer <= own => wrong.push(format!(
                    "{}: `{module}` uses `crate::{other}`",
                    file.strip_prefix(&src).unwrap().display()
                )),
                _ => {}
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_source_file_says_what_it_owns() {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let silent: Vec<String> = files
        .iter()
        .filter(|f| !f.to_string_lossy().ends_with("_generated.rs"))
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//! "))
        .map(|f| f.strip_prefix(&src).unwrap().display().to_string())
        .collect();
    assert!(
        silent.is_empty(),
        "files without a `//!` paragraph: {silent:?}"
    );
}
