//! Cross-check against the official interpreter (`ai_edge_litert.interpreter`) on real
//! models that nobody on the team made, taken from wheels on PyPI: every signature, every
//! tensor of every subgraph (name, dtype, shape, shape signature, quantization, sparsity),
//! subgraph 0's inputs/outputs and op histogram must agree with `litert inspect --json
//! --tensors`. The test also asserts that the model set covers each case the reader must
//! handle. It provisions its own venv and models (see `support/python.rs`); set
//! `LITERT_SKIP_CROSSCHECK=1` to skip it on a machine without network access to PyPI.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{TestContext, python};

fn ours(path: &Path) -> Value {
    let path_text = path.to_string_lossy();
    let out = TestContext::new().litert(&["inspect", "--json", "--tensors", &path_text]);
    assert!(
        out.code == 0,
        "litert inspect failed on `{}`: {}",
        path.display(),
        out.stderr
    );
    serde_json::from_str(&out.stdout).unwrap()
}

/// numpy's dtype name for each of our dtype names, where they differ.
fn numpy_dtype(ours: &str) -> &str {
    match ours {
        "resource" | "variant" => "object",
        "string" => "bytes",
        other => other,
    }
}

fn f32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| (x.as_f64().unwrap_or(f64::NAN) as f32).to_bits())
                .collect()
        })
        .unwrap_or_default()
}

fn i64s(v: &Value) -> Vec<i64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

/// Compare one tensor; push a line per mismatch.
fn compare_tensor(label: &str, mine: &Value, theirs: &Value, errors: &mut Vec<String>) {
    let mut check = |what: &str, a: Value, b: Value| {
        if a != b {
            errors.push(format!("{label}: {what}: litert {a} vs interpreter {b}"));
        }
    };
    check("name", mine["name"].clone(), theirs["name"].clone());
    let dtype = mine["dtype"].as_str().unwrap_or_default();
    check(
        "dtype",
        Value::from(numpy_dtype(dtype)),
        theirs["dtype"].clone(),
    );
    check("shape", mine["shape"].clone(), theirs["shape"].clone());
    check(
        "shape_signature",
        mine["shape_signature"].clone(),
        theirs["shape_signature"].clone(),
    );
    let q = &mine["quantization"];
    let (scale, zp) = if q.is_null() {
        (vec![], vec![])
    } else {
        (f32s(&q["scale"]), i64s(&q["zero_point"]))
    };
    check(
        "scales",
        Value::from(scale.clone()),
        Value::from(f32s(&theirs["scales"])),
    );
    check(
        "zero_points",
        Value::from(zp),
        Value::from(i64s(&theirs["zero_points"])),
    );
    if !scale.is_empty() {
        check(
            "quantized_dimension",
            q["quantized_dimension"].clone(),
            theirs["quantized_dimension"].clone(),
        );
    }
    let sparsity = &mine["sparsity"];
    let theirs_sp = &theirs["sparsity"];
    if sparsity.is_null() || theirs_sp.is_null() {
        check(
            "sparsity",
            Value::from(!sparsity.is_null()),
            Value::from(!theirs_sp.is_null()),
        );
    } else {
        check(
            "traversal_order",
            sparsity["traversal_order"].clone(),
            theirs_sp["traversal_order"].clone(),
        );
        check(
            "block_map",
            sparsity["block_map"].clone(),
            theirs_sp["block_map"].clone(),
        );
        let dims = |v: &Value, ours: bool| -> Vec<(String, i64)> {
            v["dim_metadata"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|m| {
                            let format = if ours {
                                m["format"].as_str().unwrap_or_default().to_string()
                            } else {
                                match m["format"].as_i64() {
                                    Some(0) => "dense".to_string(),
                                    Some(1) => "sparse_csr".to_string(),
                                    other => format!("unknown({other:?})"),
                                }
                            };
                            // dense_size only means something for dense dimensions.
                            let size = if format == "dense" {
                                m["dense_size"].as_i64().unwrap_or(-1)
                            } else {
                                0
                            };
                            (format, size)
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let (a, b) = (dims(sparsity, true), dims(theirs_sp, false));
        if a != b {
            errors.push(format!(
                "{label}: dim_metadata: litert {a:?} vs interpreter {b:?}"
            ));
        }
    }
}

fn compare(path: &Path, mine: &Value, theirs: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let name = path.display().to_string();

    // Signatures: same keys, each mapping its names to the same tensors of the same subgraph.
    let sigs = mine["signatures"].as_array().cloned().unwrap_or_default();
    let their_sigs = theirs["signatures"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let from_defs: Vec<&Value> = sigs
        .iter()
        .filter(|s| s["source"] == "signature_def")
        .collect();
    let keys: BTreeSet<String> = from_defs
        .iter()
        .filter_map(|s| s["key"].as_str().map(String::from))
        .collect();
    let their_keys: BTreeSet<String> = their_sigs.keys().cloned().collect();
    if keys != their_keys {
        errors.push(format!(
            "{name}: signature keys: litert {keys:?} vs interpreter {their_keys:?}"
        ));
    }
    if from_defs.is_empty() && !(sigs.len() == 1 && sigs[0]["key"] == "<placeholder signature>") {
        errors.push(format!(
            "{name}: no SignatureDefs but no placeholder signature"
        ));
    }
    for sig in &from_defs {
        let key = sig["key"].as_str().unwrap_or_default();
        let Some(their) = their_sigs.get(key) else {
            continue;
        };
        let sg = sig["subgraph_index"].as_i64().unwrap_or(-1);
        if their["subgraph_index"].as_i64() != Some(-1)
            && their["subgraph_index"].as_i64() != Some(sg)
        {
            errors.push(format!(
                "{name}: signature `{key}` subgraph: litert {sg} vs interpreter {}",
                their["subgraph_index"]
            ));
        }
        for side in ["inputs", "outputs"] {
            let mine_map: BTreeMap<String, i64> = sig[side]
                .as_array()
                .into_iter()
                .flatten()
                .map(|io| {
                    (
                        io["name"].as_str().unwrap_or_default().to_string(),
                        io["tensor"]["index"].as_i64().unwrap_or(-1),
                    )
                })
                .collect();
            let their_map: BTreeMap<String, i64> = their[side]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_i64().unwrap_or(-2)))
                .collect();
            if mine_map != their_map {
                errors.push(format!("{name}: signature `{key}` {side}: litert {mine_map:?} vs interpreter {their_map:?}"));
            }
        }
    }

    // Subgraphs and every tensor the interpreter reports.
    let subgraphs = mine["subgraphs"].as_array().cloned().unwrap_or_default();
    if Some(subgraphs.len() as u64) != theirs["num_subgraphs"].as_u64() {
        errors.push(format!(
            "{name}: subgraphs: litert {} vs interpreter {}",
            subgraphs.len(),
            theirs["num_subgraphs"]
        ));
    }
    let mut compared = 0;
    for (sg_index, (sg, their_tensors)) in subgraphs
        .iter()
        .zip(theirs["subgraphs"].as_array().into_iter().flatten())
        .enumerate()
    {
        let tensors = sg["tensors"].as_array().cloned().unwrap_or_default();
        for their in their_tensors.as_array().into_iter().flatten() {
            let index = their["index"].as_u64().unwrap_or(u64::MAX) as usize;
            match tensors.get(index) {
                Some(t) => {
                    compare_tensor(
                        &format!("{name}: subgraph {sg_index} tensor {index}"),
                        t,
                        their,
                        &mut errors,
                    );
                    compared += 1;
                }
                None => errors.push(format!(
                    "{name}: subgraph {sg_index}: litert has no tensor {index}"
                )),
            }
        }
    }
    if compared == 0 {
        errors.push(format!("{name}: the interpreter reported no tensors"));
    }

    // Subgraph 0 I/O order and op histogram (the interpreter reports ops of subgraph 0 only).
    let ids = |v: &Value| -> Vec<i64> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["index"].as_i64())
            .collect()
    };
    let first = subgraphs.first().cloned().unwrap_or(Value::Null);
    if ids(&first["inputs"]) != i64s(&theirs["inputs"]) {
        errors.push(format!(
            "{name}: subgraph 0 inputs: litert {:?} vs interpreter {}",
            ids(&first["inputs"]),
            theirs["inputs"]
        ));
    }
    if ids(&first["outputs"]) != i64s(&theirs["outputs"]) {
        errors.push(format!(
            "{name}: subgraph 0 outputs: litert {:?} vs interpreter {}",
            ids(&first["outputs"]),
            theirs["outputs"]
        ));
    }
    if first["ops"] != theirs["ops"] {
        errors.push(format!(
            "{name}: subgraph 0 ops: litert {} vs interpreter {}",
            first["ops"], theirs["ops"]
        ));
    }
    errors
}

/// What each model contributes to the required coverage.
fn coverage(info: &Value) -> BTreeSet<&'static str> {
    let mut c = BTreeSet::new();
    let sigs = info["signatures"].as_array().cloned().unwrap_or_default();
    if sigs.iter().any(|s| s["source"] == "subgraph") {
        c.insert("no SignatureDefs");
    }
    if info["subgraphs"].as_array().is_some_and(|s| s.len() > 1) {
        c.insert("several subgraphs");
    }
    if info["custom_ops"].as_array().is_some_and(|s| !s.is_empty()) {
        c.insert("custom ops");
    }
    if info["layout"]["appended_bytes"].as_u64().unwrap_or(0) > 0 {
        c.insert("appended data");
    }
    if info["weights"]["by_dtype"].get("float16").is_some() {
        c.insert("float16 weights");
    }
    if info["operator_codes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|o| o["builtin_code"].as_i64().unwrap_or(0) >= 127)
    {
        c.insert("op codes >= 127");
    }
    for sig in &sigs {
        for io in sig["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(sig["outputs"].as_array().into_iter().flatten())
        {
            let t = &io["tensor"];
            if matches!(t["dtype"].as_str(), Some("int8" | "uint8")) {
                c.insert("int8/uint8 I/O");
            }
            if t["shape_signature"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|d| d.as_i64() == Some(-1))
            {
                c.insert("dynamic dims");
            }
        }
    }
    for sg in info["subgraphs"].as_array().into_iter().flatten() {
        for t in sg["tensors"].as_array().into_iter().flatten() {
            if !t["sparsity"].is_null() {
                c.insert("sparse tensors");
            }
            if t["dtype"] == "int8"
                && t["quantization"]["scale"]
                    .as_array()
                    .is_some_and(|s| s.len() > 1)
            {
                c.insert("per-channel int8");
            }
        }
    }
    c
}

#[test]
fn inspect_agrees_with_the_official_interpreter_on_real_models() {
    if std::env::var_os("LITERT_SKIP_CROSSCHECK").is_some() {
        eprintln!("skipped: LITERT_SKIP_CROSSCHECK is set");
        return;
    }
    let python = python::python();
    let models = python::models();
    assert!(
        models.len() >= 10,
        "expected at least 10 real models, found {}",
        models.len()
    );

    let out = Command::new(&python)
        .arg(python::dump_script())
        .args(&models)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "interpreter dump failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();

    let mut errors = Vec::new();
    let mut covered: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let root = python::cache_dir().join("models");
    for path in &models {
        let mine = ours(path);
        let key = path.display().to_string();
        errors.extend(compare(path, &mine, &theirs[&key]));
        let short = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        for item in coverage(&mine) {
            covered.entry(item).or_default().push(short.clone());
        }
    }
    eprintln!("cross-checked {} models; coverage:", models.len());
    for (item, files) in &covered {
        eprintln!("  {item}: {}", files.join(", "));
    }
    assert!(
        errors.is_empty(),
        "{} mismatches:\n{}",
        errors.len(),
        errors.join("\n")
    );
    for item in [
        "no SignatureDefs",
        "several subgraphs",
        "custom ops",
        "sparse tensors",
        "per-channel int8",
        "float16 weights",
        "int8/uint8 I/O",
        "dynamic dims",
        "appended data",
        "op codes >= 127",
    ] {
        assert!(covered.contains_key(item), "no real model covers `{item}`");
    }
}
