//! Generation exports end to end on tiny local presets (a briefly trained Gemma, random
//! Llama and GPT-2 with tokenizers made at test time): one artifact with LiteRT-LM's
//! prefill/decode signatures over per-layer KV caches, read back natively, driven as
//! LiteRT-LM drives it and compared with Keras `generate()`; the flagship recipe on a local
//! preset; and the snapshot that makes a dropped prefill length fail `litert test`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::{self, TestContext, artifacts, fixture_dir, root, worker_json};
use serde_json::Value;

fn presets() -> PathBuf {
    fixture_dir("tests/presets/build_presets.py")
}

fn project() -> TestContext {
    TestContext::new()
}

fn recipe(dir: &Path, file: &str, preset: &str, capacity: u32, prefill: &str, variants: &str) {
    let text = format!(
        "version: 1\nname: {}\nmodel:\n  preset: {{path: {}, task: CausalLM}}\ngeneration:\n  prefill: {prefill}\n  capacity: {capacity}\n  check:\n    prompts: [\"the fox\", \"red kites\"]\n    steps: 8\noutput: out/{{{{ name }}}}-{{{{ variant }}}}.tflite\nvariants:\n{variants}",
        file.trim_end_matches(".yaml"),
        presets().join(preset).display()
    );
    std::fs::write(dir.join(file), text).unwrap();
}

fn check(a: &Value) -> &Value {
    &a["result"]["generation"]["check"]
}

/// Each checked prompt's `side` (`keras_ids`, `litert_ids`) of artifact `a`.
fn prompt_ids(a: &Value, side: &str) -> Vec<Value> {
    check(a)["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[side].clone())
        .collect()
}

/// Held-out text for the trained Gemma: sentences of its word list (seeded, not its training
/// sentences), 141 tokens with the start token.
const HELD_OUT: &str = "while red fox jumps a play fox day sing .
over and kites jumps .
over and fox lazy in fox red .
in brown dog an .
while lazy old small a birds play a jumps fox .
summer and river boats boats play old .
small green over old summer where blue .
jumps lazy day kites seven where while summer .
brown jumps river where children summer boats jumps over near .
jumps fox old blue an with children quick boats children seven .
summer fox sing an dog .
red red summer over seven blue red .
dog and near kites children with in while .
small while in in the .
small trees an the while kites play river dog day fox .
red red red red a every red fox birds jumps sing .
";

/// Write `held_out.txt` beside `recipe` and name it as the recipe's corpus, with `settings`
/// (e.g. `, max_tokens: 100`) after the file.
fn with_corpus(dir: &Path, recipe: &str, settings: &str) {
    std::fs::write(dir.join("held_out.txt"), HELD_OUT).unwrap();
    let text = std::fs::read_to_string(dir.join(recipe)).unwrap();
    let text = text.replace(
        "    steps: 8\n",
        &format!("    steps: 8\n    corpus: {{file: held_out.txt{settings}}}\n"),
    );
    std::fs::write(dir.join(recipe), text).unwrap();
}

fn gate<'a>(a: &'a Value, name: &str) -> &'a Value {
    a["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == name)
        .unwrap_or_else(|| panic!("no gate `{name}` in {:#}", a["gates"]))
}

fn signature_keys(a: &Value) -> Vec<String> {
    let mut keys: Vec<String> = a["artifact"]["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    keys
}

/// A preset's large variables go from its `.weights.h5` into the model a slice at a time,
/// starting from zeros instead of random values (the worker's load, docs/llm.md#memory);
/// the model that makes is the one Keras' own loading makes, weight for weight and logit for
/// logit, for float32 and for bfloat16 presets (kept in bfloat16 for the native writer's check).
#[test]
fn a_preset_loaded_a_slice_at_a_time_has_keras_own_weights() {
    let script = r#"
import json, sys
import numpy as np, keras_hub
from litert_worker import load
load.SLICED_BYTES = 1024  # every variable of a tiny preset above 1 KB takes the sliced path
sliced = []
made = load._SlicedDataset.__init__
def counting(self, dataset):
    sliced.append(dataset.name)
    made(self, dataset)
load._SlicedDataset.__init__ = counting
# Stored in bfloat16, as real Gemma presets are (opaque 2-byte values marked `dtype`).
import os, tempfile
bf16 = os.path.join(tempfile.mkdtemp(), "bf16")
keras_hub.models.CausalLM.from_preset(sys.argv[1], dtype="bfloat16").save_to_preset(bf16)
report = {}
x = {"token_ids": np.array([[2, 5, 6, 7, 8, 9]], np.int32), "padding_mask": np.ones((1, 6), np.int32)}
for path in sys.argv[1:] + [bf16]:
    # The native writer's check keeps a bfloat16 preset in bfloat16, computing in float32.
    ours = load.load_preset({"task": "CausalLM", "preset": {"path": path}}, stored_dtype=True)
    theirs = keras_hub.models.CausalLM.from_preset(path)
    report["bf16" if path == bf16 else path] = {
        "sliced": len(sliced),
        "weights": len(ours.weights),
        "dtypes": sorted({str(w.dtype) for w in ours.weights if len(w.shape) > 1}),
        "equal": all(np.array_equal(np.asarray(a.numpy(), np.float32), b.numpy()) for a, b in zip(ours.weights, theirs.weights)),
        "same_logits": bool(np.array_equal(np.asarray(ours(x)), np.asarray(theirs(x)))),
    }
    sliced.clear()
print(json.dumps(report))
"#;
    let report = worker_json(
        script,
        &["trained_gemma", "tiny_llama"].map(|p| presets().join(p)),
    );
    assert_eq!(report.as_object().unwrap().len(), 3, "{report}");
    for (preset, r) in report.as_object().unwrap() {
        assert!(r["sliced"].as_u64().unwrap() >= 2, "{preset}: {r}");
        assert_eq!(r["equal"], true, "{preset}: {r}");
        assert_eq!(r["same_logits"], true, "{preset}: {r}");
    }
    // A bfloat16 preset is held in bfloat16 (KerasHub alone makes float32 copies), and
    // computes what the float32 model computes.
    assert_eq!(
        report["bf16"]["dtypes"],
        serde_json::json!(["bfloat16"]),
        "{report}"
    );
}

/// The check's Keras references read the token embedding a slice at a time
/// (`generation/embedding.py`): the lookup, the vocabulary projection (in many slices, the
/// last one short) and the whole model's logits are bit for bit Keras' own, tied (Gemma)
/// and untied (Llama 3), stored in float32 and in bfloat16; a pass limited to some
/// positions gives exactly those positions' logits.
#[test]
fn the_checks_lean_embedding_computes_what_keras_does() {
    let script = r#"
import json, os, sys, tempfile
import numpy as np, keras_hub, tensorflow as tf
from litert_worker import load
from litert_worker.generation import embedding
embedding.HEAD_CHUNK = 7
report = {}
for path in sys.argv[1:]:
    bf16 = os.path.join(tempfile.mkdtemp(), "bf16")
    keras_hub.models.CausalLM.from_preset(path, dtype="bfloat16").save_to_preset(bf16)
    for label, source in ((path, path), (path + ":bf16", bf16)):
        m = load.load_preset({"task": "CausalLM", "preset": {"path": source}}, stored_dtype=True)
        emb = m.backbone.token_embedding
        x = tf.constant([[2, 5, 9, 11, 3]])
        h = tf.random.stateless_normal((1, 5, m.backbone.hidden_dim), seed=(1, 2))
        run = lambda: (emb(x).numpy(), emb(h, reverse=True).numpy(),
                       m({"token_ids": x, "padding_mask": tf.ones_like(x)}).numpy())
        keras = run()
        with embedding.lean_heads():
            lean = run()
        with embedding.lean_heads(rows=(1, 3)):
            rows = m({"token_ids": x, "padding_mask": tf.ones_like(x)}).numpy()
        report[label] = {
            "tied": bool(emb.tie_weights),
            "equal": [bool(np.array_equal(a, b)) for a, b in zip(keras, lean)],
            "rows": bool(np.array_equal(rows, keras[2][:, 1:3])),
        }
print(json.dumps(report))
"#;
    let report = worker_json(
        script,
        &["trained_gemma", "trained_llama3"].map(|p| presets().join(p)),
    );
    let report = report.as_object().unwrap();
    assert_eq!(report.len(), 4, "{report:?}");
    for (preset, r) in report {
        assert_eq!(
            r["equal"],
            serde_json::json!([true, true, true]),
            "{preset}: {r}"
        );
        assert_eq!(r["rows"], true, "{preset}: {r}");
    }
    let tied: Vec<bool> = report
        .values()
        .map(|r| r["tied"].as_bool().unwrap())
        .collect();
    assert!(tied.contains(&true) && tied.contains(&false), "{report:?}");
}

/// The tied table's bytes go into the converted file in place, in both buffer layouts
/// (inside the FlatBuffer, and after it as in files over 2 GB, like Gemma 2B's), and a
/// file that is not what the export wrote (two table buffers, no placeholder) is refused.
#[test]
fn the_tied_table_is_written_into_either_buffer_layout() {
    use support::fixtures::{Sg, Spec, dtype, t};
    let spec = |outside: bool, tables: usize, fill: u8| Spec {
        subgraphs: vec![Sg {
            tensors: (0..tables)
                .map(|i| t(&format!("table{i}"), dtype::INT8, &[3, 4]).data(vec![fill; 12]))
                .chain([t("tokens", dtype::INT32, &[1])])
                .collect(),
            inputs: vec![tables as i32],
            ..Sg::default()
        }],
        outside,
        ..Spec::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("inside", spec(false, 1, 127)),
        ("outside", spec(true, 1, 127)),
        ("two_buffers", spec(false, 2, 127)),
        ("no_placeholder", spec(true, 1, 5)),
    ];
    for (name, spec) in &cases {
        std::fs::write(dir.path().join(name), support::fixtures::build(spec)).unwrap();
    }
    let script = r#"
import json, sys
import numpy as np
from litert_worker.generation import TiedInt8Table
from litert_worker.protocol import BuildError
table = object.__new__(TiedInt8Table)  # what __init__ leaves: the shape and the int8 rows
table.shape, table.rows = (3, 4), np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
report = {}
for path in sys.argv[1:]:
    try:
        table.write_into(path)
        report[path] = "written"
    except BuildError as e:
        report[path] = str(e)
print(json.dumps(report))
"#;
    let paths: Vec<PathBuf> = cases.iter().map(|(n, _)| dir.path().join(n)).collect();
    let report = worker_json(script, &paths);
    let rows: Vec<u8> = (-6i8..6).map(|v| v as u8).collect();
    for (name, spec) in &cases[..2] {
        let path = dir.path().join(name);
        assert_eq!(report[path.to_str().unwrap()], "written", "{report}");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            bytes.len(),
            support::fixtures::build(spec).len(),
            "{name}: resized"
        );
        assert!(
            bytes.windows(12).any(|w| w == rows),
            "{name}: rows not written"
        );
        assert!(
            !bytes.windows(12).any(|w| w == [127; 12]),
            "{name}: placeholder left"
        );
    }
    let refused = |name: &str| report[dir.path().join(name).to_str().unwrap()].to_string();
    assert!(
        refused("two_buffers").contains("in 2 buffers, not one"),
        "{report}"
    );
    assert!(
        refused("no_placeholder").contains("does not hold the placeholder"),
        "{report}"
    );
}

/// Every supported family in float32 generates the same token ids as Keras for every
/// prompt, including the one that fills the cache to its last slot; the quantized Gemma
/// passes its top-1 agreement gate and, with the float one, the corpus gates at their
/// defaults; weights are stored once across the three signatures.
#[test]
fn every_family_generates_what_keras_generates() {
    let work = project();
    let d = work.path();
    recipe(
        d,
        "gemma.yaml",
        "trained_gemma",
        32,
        "[8, 16]",
        "  fp32: {}\n  int8:\n    quantization: {mode: dynamic_range}\n",
    );
    with_corpus(d, "gemma.yaml", "");
    recipe(d, "llama.yaml", "tiny_llama", 32, "[8, 16]", "  fp32: {}\n");
    // Random weights make near-ties that int8 flips: the GPT-2 variant is here for its tied
    // table, so its agreement gate is loose.
    recipe(
        d,
        "gpt2.yaml",
        "tiny_gpt2",
        64,
        "[8, 16]",
        "  fp32: {}\n  int8:\n    quantization: {mode: dynamic_range}\n    generation: {check: {min_top1_agreement: 0.5}}\n",
    );
    let out = work.litert(&["apply", "--json", "gemma.yaml", "llama.yaml", "gpt2.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let arts = artifacts(&out);
    for (id, family) in [
        ("gemma:fp32", "gemma"),
        ("gemma:int8", "gemma"),
        ("llama:fp32", "llama"),
        ("gpt2:fp32", "gpt2"),
        ("gpt2:int8", "gpt2"),
    ] {
        let a = &arts[id];
        assert_eq!(a["status"], "built", "{id}: {a:#}");
        assert_eq!(a["result"]["generation"]["family"], family, "{id}");
        assert_eq!(
            signature_keys(a),
            ["decode", "prefill_16", "prefill_8"],
            "{id}"
        );
        let c = check(a);
        assert_eq!(c["ok"], true, "{id}: {c:#}");
        let prompts = c["prompts"].as_array().unwrap();
        assert_eq!(prompts.len(), 3, "{id}");
        let fill = prompts.iter().find(|p| p["fills_cache"] == true).unwrap();
        let capacity = c["capacity"].as_u64().unwrap();
        // Prompt + new tokens = capacity + 1: the last decode step writes slot C-1.
        assert_eq!(
            fill["prompt_tokens"].as_u64().unwrap() + 8,
            capacity + 1,
            "{id}"
        );
        for p in prompts {
            assert!(p["keras_text"].is_string(), "{id}: {p:#}");
            if id.ends_with("fp32") {
                assert_eq!(p["keras_ids"], p["litert_ids"], "{id}: {p:#}");
                assert_eq!(p["logit_violations"], 0, "{id}: {p:#}");
            }
        }
        let gates = a["gates"].as_array().unwrap();
        let contract = gates
            .iter()
            .find(|g| g["gate"] == "generation_contract")
            .unwrap();
        assert_eq!(contract["ok"], true, "{id}: {contract:#}");
        assert!(a["artifact"]["flex_ops"].as_array().unwrap().is_empty());
    }
    // The trained Gemma's greedy continuations are confident: int8 weights keep them.
    assert_eq!(check(&arts["gemma:int8"])["top1_agreement"], 1.0);
    // The held-out text, teacher-forced in windows of the capacity (32: the start token and
    // 31 corpus tokens, later windows after 15 tokens of context): every token after the
    // start token predicted once, on both sides (140 corpus tokens: 31 + 7 × 16 ≥ 140, 8
    // windows). Float32 predicts what Keras does, at Keras'
    // perplexity; int8 passes the default gates.
    for id in ["gemma:fp32", "gemma:int8"] {
        let corpus = &check(&arts[id])["corpus"];
        assert_eq!(corpus["tokens"], 141, "{id}: {corpus:#}");
        assert_eq!(corpus["predictions"], 140, "{id}: {corpus:#}");
        assert_eq!(corpus["windows"], 8, "{id}: {corpus:#}");
        for g in ["corpus_top1_agreement", "corpus_perplexity_ratio"] {
            assert_eq!(
                gate(&arts[id], g)["ok"],
                true,
                "{id}: {:#}",
                arts[id]["gates"]
            );
        }
    }
    let fp32 = &check(&arts["gemma:fp32"])["corpus"];
    assert_eq!(fp32["top1_agreement"], 1.0, "{fp32:#}");
    let ratio = fp32["perplexity_ratio"].as_f64().unwrap();
    assert!((ratio - 1.0).abs() < 1e-4, "{fp32:#}");
    // int8 moves the perplexity by well under 1% either way (measured: 0.9963).
    let int8 = &check(&arts["gemma:int8"])["corpus"];
    let ratio = int8["perplexity_ratio"].as_f64().unwrap();
    assert!((ratio - 1.0).abs() < 0.01, "{int8:#}");
    // The tokenizer as the bundle step needs it.
    let tok = &arts["gemma:fp32"]["result"]["generation"]["tokenizer"];
    assert_eq!(tok["kind"], "sentencepiece");
    assert_eq!(tok["start_token_id"], 2);
    assert_eq!(tok["end_token_id"], 1);
    assert!(
        tok["files"][0]
            .as_str()
            .unwrap()
            .ends_with("vocabulary.spm")
    );
    // Weights are stored once: the three signatures share them, so the file is about the
    // size of the float32 weights (trained_gemma: ~62k parameters = ~250 KB), not three times.
    let size = arts["gemma:fp32"]["size_bytes"].as_u64().unwrap();
    assert!(size < 400_000, "{size}");
    // The tied embedding is stored once with int8 weights too (the converter alone writes it
    // twice), for Gemma and GPT-2.
    for id in ["gemma:int8", "gpt2:int8"] {
        assert_tied_table_stored_once(&work, &d.join(arts[id]["output"].as_str().unwrap()));
    }
}

/// The decode subgraph's lookup table and logits weights, both int8 [vocabulary, hidden],
/// are one buffer: the file's int8 bytes are the decode subgraph's (which reads every weight)
/// less a second tensor over the table, if it has one.
fn assert_tied_table_stored_once(work: &TestContext, artifact: &Path) {
    let out = work.litert(&["inspect", "--json", "--tensors", artifact.to_str().unwrap()]);
    let inspected: Value = serde_json::from_str(&out.stdout).unwrap();
    let decode = inspected["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "decode")
        .unwrap();
    let vocab = &decode["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "logits")
        .unwrap()["tensor"]["shape"][2];
    let subgraph = decode["subgraph_index"].as_u64().unwrap() as usize;
    let consts: Vec<&Value> = inspected["subgraphs"][subgraph]["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["dtype"] == "int8" && t["data_bytes"].as_u64().unwrap() > 0)
        .collect();
    let tables: Vec<&&Value> = consts.iter().filter(|t| t["shape"][0] == *vocab).collect();
    // The converter's graph has two tensors over the table's one buffer (the lookup's and
    // the projection's); the native writer's one tensor serves both ops.
    assert!(
        matches!(tables.len(), 1 | 2),
        "{}: {tables:#?}",
        artifact.display()
    );
    let table = (tables.len() - 1) as u64 * tables[0]["data_bytes"].as_u64().unwrap();
    let decode_int8: u64 = consts
        .iter()
        .map(|t| t["data_bytes"].as_u64().unwrap())
        .sum();
    let file_int8 = inspected["weights"]["by_dtype"]["int8"]["bytes"]
        .as_u64()
        .unwrap();
    assert_eq!(
        file_int8 + table,
        decode_int8,
        "{}: {:#}",
        artifact.display(),
        inspected["weights"]
    );
}

/// The flagship recipe builds a small trained Gemma from a local preset, and its snapshot
/// holds every signature and cache tensor: dropping a prefill length fails `litert test`.
#[test]
fn flagship_recipe_on_a_local_preset_and_its_contract() {
    let work = project();
    let d = work.path();
    let recipes = d.join("recipes");
    std::fs::create_dir(&recipes).unwrap();
    let flagship = std::fs::read_to_string(root().join("recipes/gemma_int8.yaml"))
        .unwrap()
        .replace("prefill: [32, 128]", "prefill: [8, 16]")
        .replace("capacity: 1024", "capacity: 48");
    std::fs::write(recipes.join("gemma_int8.yaml"), &flagship).unwrap();
    let preset = format!("preset={}", presets().join("trained_gemma").display());
    let out = work.litert(&[
        "apply",
        "--json",
        "recipes/gemma_int8.yaml",
        "--set",
        &preset,
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let a = &artifacts(&out)["gemma_int8"];
    assert_eq!(check(a)["ok"], true, "{a:#}");
    let snapshot = std::fs::read_to_string(d.join("snapshots/gemma_int8.yaml")).unwrap();
    for needle in [
        "key: decode",
        "key: prefill_8",
        "key: prefill_16",
        "name: kv_cache_k_1",
        "name: kv_cache_v_0",
        "name: input_pos",
    ] {
        assert!(snapshot.contains(needle), "{needle} not in\n{snapshot}");
    }
    // The bundle beside it: written by litert, run by LiteRT-LM with the same greedy text,
    // locked and snapshot-tested.
    let bundle = &a["bundle"];
    assert_eq!(bundle["check"]["ok"], true, "{bundle:#}");
    assert_eq!(
        bundle["check"]["run"]["prompts"].as_array().unwrap().len(),
        2
    );
    let bundle_path = d.join("build/gemma_int8.litertlm");
    let bytes = std::fs::read(&bundle_path).unwrap();
    assert_eq!(&bytes[..8], b"LITERTLM");
    let lock = std::fs::read_to_string(d.join("litert.lock")).unwrap();
    assert!(lock.contains("output: build/gemma_int8.litertlm"), "{lock}");
    for needle in [
        "SP_Tokenizer",
        "stop_tokens",
        "<end_of_turn>",
        "max_num_tokens: 48",
    ] {
        assert!(snapshot.contains(needle), "{needle} not in\n{snapshot}");
    }
    let inspect = work.litert(&["inspect", "--json", "build/gemma_int8.litertlm"]);
    assert_eq!(inspect.code, 0, "{}", inspect.stderr);
    let info: Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(info["problems"].as_array().unwrap().len(), 0, "{info:#}");
    let out = work.litert(&["test", "recipes/gemma_int8.yaml", "--set", &preset]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    // A rebuild gives the same bundle bytes.
    let again = work.litert(&[
        "apply",
        "--force",
        "--locked",
        "recipes/gemma_int8.yaml",
        "--set",
        &preset,
    ]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert_eq!(std::fs::read(&bundle_path).unwrap(), bytes);
    // A tampered bundle fails `litert test`, naming it.
    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    std::fs::write(&bundle_path, &tampered).unwrap();
    let out = work.litert(&["test", "recipes/gemma_int8.yaml", "--set", &preset]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("gemma_int8.litertlm"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    std::fs::write(&bundle_path, &bytes).unwrap();
    // An unknown stop token is a located recipe error, found before anything is built.
    std::fs::write(
        recipes.join("bad_stop.yaml"),
        flagship
            .replace("name: gemma_int8", "name: bad_stop")
            .replace("\"<end_of_turn>\"]", "\"<|eot_id|>\"]"),
    )
    .unwrap();
    let out = work.litert(&["check", "recipes/bad_stop.yaml", "--set", &preset]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("E0318") && out.stderr.contains("<|eot_id|>"),
        "{}",
        out.stderr
    );
    std::fs::remove_file(recipes.join("bad_stop.yaml")).unwrap();
    std::fs::write(
        recipes.join("gemma_int8.yaml"),
        flagship.replace("prefill: [8, 16]", "prefill: [16]"),
    )
    .unwrap();
    let out = work.litert(&["test", "recipes/gemma_int8.yaml", "--set", &preset]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("prefill_8"), "{all}");
}

/// The prefill then decode step of `artifact`, run natively with `litert run` on the same
/// inputs: 8 prompt tokens, then one more; the decode step's logits.
fn prefill_then_decode(
    work: &TestContext,
    artifact: &Path,
    layers: usize,
    kv: usize,
    capacity: usize,
    head_dim: usize,
) -> Vec<f32> {
    use litert::runtime::tensor::{Dtype, Tensor, npz_bytes, read_npz};
    let d = work.path();
    let i32s = |v: &[i32], shape: &[usize]| Tensor {
        dtype: Dtype::I32,
        shape: shape.to_vec(),
        bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    };
    let f32s = |v: &[f32], shape: &[usize]| Tensor {
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    };
    // Causal mask over the cache: row r attends slots 0..=pos[r].
    let mask = |t: usize, start: usize| -> Vec<f32> {
        (0..t)
            .flat_map(|r| {
                (0..capacity).map(move |c| if c <= start + r { 0.0 } else { -0.7 * f32::MAX })
            })
            .collect()
    };
    let cache_shape = [1, kv, capacity, head_dim];
    let mut caches: Vec<(String, Tensor)> = (0..layers)
        .flat_map(|i| {
            ["k", "v"].map(|k| {
                (
                    format!("kv_cache_{k}_{i}"),
                    f32s(&vec![0.0; kv * capacity * head_dim], &cache_shape),
                )
            })
        })
        .collect();
    let run = |sig: &str, inputs: Vec<(String, Tensor)>| -> Vec<(String, Tensor)> {
        std::fs::write(d.join("in.npz"), npz_bytes(&inputs).unwrap()).unwrap();
        let out = work.litert(&[
            "run",
            artifact.to_str().unwrap(),
            "--signature",
            sig,
            "--input",
            "in.npz",
            "--output",
            "out.npz",
        ]);
        assert_eq!(out.code, 0, "{sig}: {}", out.stderr);
        read_npz(std::fs::File::open(d.join("out.npz")).unwrap()).unwrap()
    };
    let tokens: Vec<i32> = vec![2, 5, 9, 13, 7, 21, 30, 4];
    let mut inputs = vec![
        ("tokens".to_string(), i32s(&tokens, &[1, 8])),
        (
            "input_pos".to_string(),
            i32s(&(0..8).collect::<Vec<_>>(), &[8]),
        ),
        ("mask".to_string(), f32s(&mask(8, 0), &[1, 1, 8, capacity])),
    ];
    inputs.extend(caches.clone());
    let out = run("prefill_8", inputs);
    for (name, t) in out {
        if let Some(c) = caches.iter_mut().find(|(n, _)| *n == name) {
            c.1 = t;
        }
    }
    let mut inputs = vec![
        ("tokens".to_string(), i32s(&[11], &[1, 1])),
        ("input_pos".to_string(), i32s(&[8], &[1])),
        ("mask".to_string(), f32s(&mask(1, 8), &[1, 1, 1, capacity])),
    ];
    inputs.extend(caches);
    let out = run("decode", inputs);
    let logits = &out.iter().find(|(n, _)| n == "logits").unwrap().1;
    logits
        .bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// The native writer against the converter on trained and random presets of both native
/// families (and Gemma 2's options): float32 artifacts give the same logits within 1e-5 natively (prefill, then a
/// decode step over the cache the prefill wrote); int8 ones pass the same generation check
/// against Keras; the report names the writer; a rebuild gives the same bytes.
/// With the check off, the worker describes the preset while litert writes; a native write
/// that fails (a truncated weights file) fails its build alone and leaves nothing behind;
/// the next build, on the same worker (`--jobs 1`), builds.
#[test]
fn with_the_check_off_a_failed_native_write_fails_alone() {
    let work = project();
    let d = work.path();
    let broken = d.join("broken_preset");
    support::copy_tree(&presets().join("trained_gemma"), &broken);
    let weights = broken.join("model.weights.h5");
    let len = std::fs::metadata(&weights).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&weights)
        .unwrap();
    file.set_len(len / 2).unwrap();
    let off = "  off: {generation: {check: {enabled: false}}}\n";
    recipe(d, "broken.yaml", "trained_gemma", 32, "[8, 16]", off);
    let text = std::fs::read_to_string(d.join("broken.yaml")).unwrap();
    let text = text.replace(
        &presets().join("trained_gemma").display().to_string(),
        &broken.display().to_string(),
    );
    std::fs::write(d.join("broken.yaml"), text).unwrap();
    recipe(d, "gemma.yaml", "trained_gemma", 32, "[8, 16]", off);
    let out = work.litert(&[
        "apply",
        "--json",
        "--jobs",
        "1",
        "broken.yaml",
        "gemma.yaml",
    ]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let arts = artifacts(&out);
    let failed = &arts["broken:off"];
    assert_eq!(failed["status"], "failed", "{failed:#}");
    assert_eq!(failed["stage"], "convert", "{failed:#}");
    let message = failed["message"].as_str().unwrap();
    assert!(message.contains("truncated"), "{message}");
    assert!(!d.join("out/broken-off.tflite").exists());
    let built = &arts["gemma:off"];
    assert_eq!(built["status"], "built", "{built:#}");
    assert_eq!(built["result"]["generation"]["writer"], "native");
    assert!(check(built).is_null(), "{:#}", check(built));
    assert_eq!(built["result"]["generation"]["num_layers"], 2);
    assert!(d.join("out/gemma-off.tflite").is_file());
}

#[test]
fn the_native_writer_agrees_with_the_converter() {
    let work = project();
    let d = work.path();
    let variants = "  native: {generation: {writer: native}}\n  converter: {generation: {writer: converter}}\n  native_int8:\n    quantization: {mode: dynamic_range}\n    generation: {writer: native}\n  converter_int8:\n    quantization: {mode: dynamic_range}\n    generation: {writer: converter}\n";
    recipe(d, "gemma.yaml", "trained_gemma", 32, "[8, 16]", variants);
    recipe(
        d,
        "llama.yaml",
        "tiny_llama",
        32,
        "[8, 16]",
        &variants.replace(
            "dynamic_range}\n    generation: {writer",
            "dynamic_range}\n    generation: {check: {min_top1_agreement: 0.5}, writer",
        ),
    );
    recipe(
        d,
        "gemma2.yaml",
        "tiny_gemma2",
        32,
        "[8, 16]",
        &variants.replace(
            "dynamic_range}\n    generation: {writer",
            "dynamic_range}\n    generation: {check: {min_top1_agreement: 0.5}, writer",
        ),
    );
    let out = work.litert(&["apply", "--json", "gemma.yaml", "llama.yaml", "gemma2.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let arts = artifacts(&out);
    // (name, layers, kv heads, head dim)
    for (name, layers, kv, head_dim) in [
        ("gemma", 2, 1, 16),
        ("llama", 2, 2, 8),
        ("gemma2", 2, 2, 16),
    ] {
        for v in ["native", "converter", "native_int8", "converter_int8"] {
            let a = &arts[&format!("{name}:{v}")];
            assert_eq!(a["status"], "built", "{name}:{v}: {a:#}");
            assert_eq!(check(a)["ok"], true, "{name}:{v}: {:#}", check(a));
            let writer = if v.starts_with("native") {
                "native"
            } else {
                "converter"
            };
            assert_eq!(a["result"]["generation"]["writer"], writer, "{name}:{v}");
        }
        let path = |v: &str| d.join(arts[&format!("{name}:{v}")]["output"].as_str().unwrap());
        let native = prefill_then_decode(&work, &path("native"), layers, kv, 32, head_dim);
        let converter = prefill_then_decode(&work, &path("converter"), layers, kv, 32, head_dim);
        assert_eq!(native.len(), converter.len());
        let worst = native
            .iter()
            .zip(&converter)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-5, "{name}: float32 logits differ by {worst}");
        let argmax = |l: &[f32]| (0..l.len()).max_by(|&i, &j| l[i].total_cmp(&l[j])).unwrap();
        let int8 = prefill_then_decode(&work, &path("native_int8"), layers, kv, 32, head_dim);
        let conv8 = prefill_then_decode(&work, &path("converter_int8"), layers, kv, 32, head_dim);
        assert_eq!(argmax(&int8), argmax(&conv8), "{name}: int8 top-1");
    }
    // Both writers record where the artifact came from (docs/reproducibility.md).
    for v in ["native", "converter"] {
        let id = format!("gemma:{v}");
        let inspect = work.litert(&["inspect", "--json", arts[&id]["output"].as_str().unwrap()]);
        let info: Value = serde_json::from_str(&inspect.stdout).unwrap();
        assert_eq!(
            info["provenance"]["artifact"],
            id.as_str(),
            "{:#}",
            info["provenance"]
        );
        assert_eq!(
            info["provenance"]["recipe"], "gemma.yaml",
            "{:#}",
            info["provenance"]
        );
    }
    // The trained Gemma's int8 continuations agree with Keras whichever writer wrote them.
    assert_eq!(check(&arts["gemma:native_int8"])["top1_agreement"], 1.0);
    let first =
        std::fs::read(d.join(arts["gemma:native_int8"]["output"].as_str().unwrap())).unwrap();
    let again = work.litert(&["apply", "--force", "--locked", "gemma.yaml"]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    let second =
        std::fs::read(d.join(arts["gemma:native_int8"]["output"].as_str().unwrap())).unwrap();
    assert_eq!(first, second, "the native artifact is not reproducible");
    let lock = std::fs::read_to_string(d.join("litert.lock")).unwrap();
    assert!(
        lock.contains("writer: native") && lock.contains("writer: converter"),
        "{lock}"
    );
}

/// int4 weights: the trained Gemma exported with `dynamic_int4` in blocks of 32 and per
/// channel, with the default int8 embedding table and with `embedding: int4`, builds
/// natively, keeps Keras' greedy tokens (top-1 agreement at least 0.9 in blocks, 0.8 per
/// channel), runs in LiteRT-LM through its bundle, and stores its weights in about 0.6 of
/// int8's bytes (less with the int4 table), with the block size in `inspect` and the
/// snapshot. A block size that does not divide the hidden size, `embedding` without int4,
/// and int4 through the converter or without `generation`, are refused by `check`.
#[test]
fn int4_weights_generate_like_keras_in_litert_lm() {
    let work = project();
    let d = work.path();
    recipe(
        d,
        "gemma.yaml",
        "trained_gemma",
        32,
        "[8, 16]",
        "  int8:\n    quantization: {mode: dynamic_range}\n    generation: {bundle: {}}\n  int4_b32:\n    quantization: {mode: dynamic_int4, block_size: 32}\n    generation: {bundle: {}}\n  int4_channel:\n    quantization: {mode: dynamic_int4}\n    generation: {bundle: {}, check: {min_top1_agreement: 0.8}}\n  int4_b32_table:\n    quantization: {mode: dynamic_int4, block_size: 32, embedding: int4}\n    generation: {bundle: {}}\n  int4_channel_table:\n    quantization: {mode: dynamic_int4, embedding: int4}\n    generation: {bundle: {}, check: {min_top1_agreement: 0.8}}\n",
    );
    let out = work.litert(&["apply", "--json", "gemma.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let arts = artifacts(&out);
    let weight_bytes = |id: &str| {
        let path = d.join(arts[id]["output"].as_str().unwrap());
        let out = work.litert(&["inspect", "--json", path.to_str().unwrap()]);
        let info: Value = serde_json::from_str(&out.stdout).unwrap();
        (info["weights"]["total_bytes"].as_u64().unwrap(), info)
    };
    let (int8_bytes, _) = weight_bytes("gemma:int8");
    // One scale per 64-input row is the coarsest int4 there is: its gate is lower (measured
    // on 2026-12-07: 1.0 in blocks of 32 with either table; per channel 0.96 with the int8
    // table, 1.0 with the int4 one).
    let mut with_int8_table = BTreeMap::new();
    for (v, layout, gate, int4_table) in [
        ("int4_b32", "blocks of 32", 0.9, false),
        ("int4_channel", "per channel", 0.8, false),
        ("int4_b32_table", "blocks of 32", 0.9, true),
        ("int4_channel_table", "per channel", 0.8, true),
    ] {
        let id = format!("gemma:{v}");
        let a = &arts[&id];
        assert_eq!(a["status"], "built", "{id}: {a:#}");
        assert_eq!(a["result"]["generation"]["writer"], "native", "{id}");
        let c = check(a);
        assert_eq!(c["ok"], true, "{id}: {c:#}");
        let agreement = c["top1_agreement"].as_f64().unwrap();
        assert!(agreement >= gate, "{id}: top-1 agreement {agreement}");
        // LiteRT-LM loads the bundle and generates (what `apply` checks of every bundle).
        assert_eq!(a["bundle"]["check"]["ok"], true, "{id}: {:#}", a["bundle"]);
        let (bytes, info) = weight_bytes(&id);
        // The layers' matrices take half int8's bytes (plus float16 block scales: 1/16 of
        // a byte per weight in blocks of 32); the int8 table and float32 norms stay, so the
        // whole file's weights come to 0.60 of int8's here (30,112 against 49,824 bytes).
        assert!(
            bytes * 100 <= int8_bytes * 62,
            "{id}: {bytes} weight bytes, int8 has {int8_bytes}"
        );
        // Seven matrices in each of two layers; the table int8 unless `embedding: int4`
        // makes it int4 too, in the layers' layout, and the file smaller.
        let by_dtype = &info["weights"]["by_dtype"];
        let verified = a["quantization"]["checks"].as_array().unwrap();
        let table_check = verified.iter().find(|c| c["check"] == "int4_table");
        if int4_table {
            assert_eq!(
                table_check.map(|c| &c["ok"]),
                Some(&Value::Bool(true)),
                "{id}: {verified:#?}"
            );
            assert_eq!(by_dtype["int4"]["tensors"], 15, "{id}: {info:#}");
            assert!(by_dtype["int8"].is_null(), "{id}: {info:#}");
            let int8_table = with_int8_table[layout];
            assert!(
                bytes < int8_table,
                "{id}: {bytes} weight bytes, {int8_table} with an int8 table"
            );
        } else {
            assert!(table_check.is_none(), "{id}: {verified:#?}");
            assert_eq!(by_dtype["int4"]["tensors"], 14, "{id}: {info:#}");
            assert_eq!(by_dtype["int8"]["tensors"], 1, "{id}: {info:#}");
            with_int8_table.insert(layout, bytes);
        }
        let snapshot =
            std::fs::read_to_string(d.join(format!("snapshots/gemma-{v}.yaml"))).unwrap();
        assert!(
            snapshot.contains(&format!("int4 weight tensors, {layout}")),
            "{id}:\n{snapshot}"
        );
    }
    let path = d.join(arts["gemma:int4_b32"]["output"].as_str().unwrap());
    let shown = work.litert(&["inspect", path.to_str().unwrap()]);
    assert!(
        shown.stdout.contains("blockwise (block size 32)"),
        "{}",
        shown.stdout
    );
    // What cannot be written is refused before anything is built, by name.
    let refused = |file: &str, text: String, code: &str, needle: &str| {
        std::fs::write(d.join(file), text).unwrap();
        let out = work.litert(&["check", file]);
        assert_eq!(out.code, 2, "{file}: {}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(code) && out.stderr.contains(needle),
            "{file}: {}",
            out.stderr
        );
    };
    let preset = presets().join("trained_gemma");
    let generation = |quantization: &str, writer: &str| {
        format!(
            "version: 1\nname: r\nmodel:\n  preset: {{path: {}, task: CausalLM}}\nquantization: {quantization}\ngeneration:\n  capacity: 32\n  prefill: [8]\n{writer}output: out/r.tflite\n",
            preset.display()
        )
    };
    refused(
        "b128.yaml",
        generation("{mode: dynamic_int4, block_size: 128}", ""),
        "E0254",
        "block size 128 does not divide the hidden size",
    );
    refused(
        "b48.yaml",
        generation("{mode: dynamic_int4, block_size: 48}", ""),
        "E0254",
        "not a multiple of 32",
    );
    refused(
        "table.yaml",
        generation("{mode: dynamic_range, embedding: int4}", ""),
        "E0254",
        "`embedding` does not apply to mode `dynamic_range`",
    );
    refused(
        "converter.yaml",
        generation("{mode: dynamic_int4}", "  writer: converter\n"),
        "E0253",
        "written only by the native writer",
    );
    refused(
        "forward.yaml",
        format!(
            "version: 1\nname: r\nmodel:\n  preset: {{path: {}, task: CausalLM}}\nsequence_length: 8\nquantization: {{mode: dynamic_int4}}\noutput: out/r.tflite\n",
            preset.display()
        ),
        "E0253",
        "only for generation exports",
    );
}

/// A bundle whose tokenizer has fewer pieces than the model has rows is refused by `check`
/// (LiteRT-LM would fail at the first decode, after the whole build).
#[test]
fn a_tokenizer_smaller_than_the_vocabulary_is_refused_before_building() {
    let work = project();
    let d = work.path();
    let preset = d.join("big_vocab");
    std::fs::create_dir_all(preset.join("assets/tokenizer")).unwrap();
    let source = presets().join("trained_gemma");
    for file in [
        "config.json",
        "tokenizer.json",
        "preprocessor.json",
        "task.json",
        "metadata.json",
    ] {
        if source.join(file).is_file() {
            std::fs::copy(source.join(file), preset.join(file)).unwrap();
        }
    }
    std::fs::copy(
        source.join("assets/tokenizer/vocabulary.spm"),
        preset.join("assets/tokenizer/vocabulary.spm"),
    )
    .unwrap();
    let config = std::fs::read_to_string(preset.join("config.json")).unwrap();
    let mut v: Value = serde_json::from_str(&config).unwrap();
    v["config"]["vocabulary_size"] = 256_000.into();
    std::fs::write(preset.join("config.json"), v.to_string()).unwrap();
    std::fs::write(
        d.join("r.yaml"),
        format!(
            "version: 1\nname: r\nmodel:\n  preset: {{path: {}, task: CausalLM}}\ngeneration:\n  capacity: 32\n  prefill: [8]\n  bundle: {{}}\noutput: out/r.tflite\n",
            preset.display()
        ),
    )
    .unwrap();
    let out = work.litert(&["check", "r.yaml"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("E0318") && out.stderr.contains("256000 vocabulary rows"),
        "{}",
        out.stderr
    );
}

/// A quantization that breaks the model fails the corpus gates at their defaults, while the
/// float artifact of the same model passes them. The model: the trained Gemma, the same
/// function, with one hidden dimension's norm scale folded into the weights it feeds (its
/// `1 + scale` 1000 times smaller in every block's two norms, that input's weights 1000
/// times larger in the attention and feed-forward projections after them). Every output
/// channel of those projections then holds an outlier weight, and int8 with one scale per
/// output channel (`dynamic_range`) rounds the channel's other weights to 0 or one step:
/// the failure outlier weights cause in real LLMs, here made certain. The report's corpus
/// lines are snapshotted, numbers that vary filtered.
#[test]
fn a_quantization_that_breaks_the_model_fails_the_corpus_gates() {
    let work = project();
    let d = work.path();
    let script = r#"
import json, sys
import numpy as np, keras_hub
src, dst = sys.argv[1:]
lm = keras_hub.models.CausalLM.from_preset(src)
backbone = lm.backbone
dead = 0
for i in range(backbone.num_layers):
    block = backbone.get_layer(f"decoder_block_{i}")
    attention = block.attention
    for norm, projections, axis in [
        (block.pre_attention_norm, [attention.query_dense, attention.key_dense, attention.value_dense], 1),
        (block.pre_ffw_norm, [block.gating_ffw, block.gating_ffw_2], 0),
    ]:
        scale = norm.scale.numpy()
        scale[dead] = (1.0 + scale[dead]) / 1000.0 - 1.0
        norm.scale.assign(scale)
        for p in projections:
            kernel = p.kernel.numpy()
            row = [slice(None)] * kernel.ndim
            row[axis] = dead
            kernel[tuple(row)] *= 1000.0
            p.kernel.assign(kernel)
lm.save_to_preset(dst)
print(json.dumps({"layers": backbone.num_layers}))
"#;
    let preset = d.join("outlier_gemma");
    let made = worker_json(script, &[presets().join("trained_gemma"), preset.clone()]);
    assert_eq!(made["layers"], 2, "{made}");
    recipe(
        d,
        "outlier.yaml",
        "trained_gemma",
        32,
        "[8, 16]",
        "  fp32: {}\n  int8:\n    quantization: {mode: dynamic_range}\n",
    );
    let text = std::fs::read_to_string(d.join("outlier.yaml"))
        .unwrap()
        .replace(
            &presets().join("trained_gemma").display().to_string(),
            &preset.display().to_string(),
        );
    std::fs::write(d.join("outlier.yaml"), text).unwrap();
    with_corpus(d, "outlier.yaml", "");
    let out = work.litert(&["apply", "outlier.yaml"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| {
            l.starts_with('✓')
                || l.starts_with('✗')
                || l.contains("corpus")
                || l.contains("agreement with Keras")
        })
        .collect();
    let text = lines.join("\n");
    let numbers = [
        (r"\d+\.\d+s\b", "[SECONDS]"),
        (r"\d+(\.\d+)? [KM]?i?B\b", "[SIZE]"),
        (r"\d+\.\d+%", "[PERCENT]"),
        (r"\d+\.\d+ vs Keras' \d+\.\d+", "[PPL] vs Keras' [PPL]"),
        (r"ratio \d+\.\d+", "ratio [RATIO]"),
    ];
    insta::with_settings!({ filters => numbers.to_vec() }, {
        insta::assert_snapshot!(text);
    });
    let fp32 = out.stdout.split("outlier:int8").next().unwrap();
    assert!(
        fp32.contains("✓ corpus: top-1 agreement") && fp32.contains("✓ corpus: perplexity"),
        "{}",
        out.stdout
    );
    let int8 = out.stdout.split("outlier:int8").nth(1).unwrap();
    assert!(
        int8.contains("✗ corpus: top-1 agreement") && int8.contains("✗ corpus: perplexity"),
        "{}",
        out.stdout
    );
    // The float artifact of the folded model predicts as Keras does (the filter hides it).
    assert!(fp32.contains("ratio 1.0000)"), "{}", out.stdout);
}

/// Llama 3 (3.1's RoPE frequency scaling, an untied head), Qwen 3 (query/key norms, tied
/// embeddings, no start token) and Gemma 3 (query/key norms, five local layers with a
/// sliding window narrower than the cache between global ones, two RoPE bases), each a
/// small trained preset: the native writer's float32 artifact generates Keras' tokens for
/// every prompt (the cache-filling one slides the window past its first slots), int8
/// passes the agreement gate, and each family's recipe builds from a local preset (Gemma
/// 3's bundle runs in LiteRT-LM with the same greedy text).
#[test]
fn llama3_qwen3_and_gemma3_generate_what_keras_generates() {
    let work = project();
    let d = work.path();
    let variants = "  fp32: {}\n  int8:\n    quantization: {mode: dynamic_range}\n";
    // (family, test preset, the recipe's default preset)
    let families = [
        ("llama3", "trained_llama3", "llama3.2_1b"),
        ("qwen3", "trained_qwen3", "qwen3_0.6b_en"),
        ("gemma3", "trained_gemma3", "gemma3_1b"),
    ];
    for (family, preset, _) in families {
        recipe(
            d,
            &format!("{family}.yaml"),
            preset,
            32,
            "[8, 16]",
            variants,
        );
    }
    let recipes = d.join("recipes");
    std::fs::create_dir(&recipes).unwrap();
    let mut args = vec!["apply".to_string(), "--json".to_string()];
    args.extend(families.map(|(f, _, _)| format!("{f}.yaml")));
    for (family, preset, default) in families {
        let file = format!("{family}_int8.yaml");
        let text = std::fs::read_to_string(root().join("recipes").join(&file))
            .unwrap()
            .replace("prefill: [32, 128]", "prefill: [8, 16]")
            .replace("capacity: 1024", "capacity: 48")
            // `--set preset=DIR` for this recipe alone: its variable's default.
            .replace(
                &format!("  preset: {default}\n"),
                &format!("  preset: {}\n", presets().join(preset).display()),
            );
        std::fs::write(recipes.join(&file), text).unwrap();
        args.push(format!("recipes/{file}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = work.litert(&args);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let arts = artifacts(&out);
    for (family, _, _) in families {
        for id in [
            format!("{family}:fp32"),
            format!("{family}:int8"),
            format!("{family}_int8"),
        ] {
            let a = &arts[&id];
            assert_eq!(a["status"], "built", "{id}: {a:#}");
            let g = &a["result"]["generation"];
            assert_eq!(g["family"], family, "{id}");
            assert_eq!(g["writer"], "native", "{id}");
            let c = check(a);
            assert_eq!(c["ok"], true, "{id}: {c:#}");
            if id.ends_with("fp32") {
                let prompts = c["prompts"].as_array().unwrap();
                assert!(prompts.iter().any(|p| p["fills_cache"] == true), "{id}");
                for p in prompts {
                    assert_eq!(p["keras_ids"], p["litert_ids"], "{id}: {p:#}");
                    assert_eq!(p["logit_violations"], 0, "{id}: {p:#}");
                }
            } else {
                let agreement = c["top1_agreement"].as_f64().unwrap();
                assert!(agreement >= 0.9, "{id}: {agreement}");
            }
        }
    }
    // Qwen 3 has no start token: the prompts are tokenized as they are.
    let qwen = &arts["qwen3:fp32"]["result"]["generation"]["tokenizer"];
    assert_eq!(qwen["kind"], "bpe", "{qwen:#}");
    assert!(qwen["start_token_id"].is_null(), "{qwen:#}");
    // Each recipe's bundle (Gemma 3's SentencePiece, Llama 3's and Qwen 3's byte-level BPE)
    // runs in LiteRT-LM with Keras' greedy text.
    for (family, _, _) in families {
        let bundle = &arts[&format!("{family}_int8")]["bundle"];
        assert_eq!(bundle["check"]["ok"], true, "{family}: {bundle:#}");
    }
}

/// A recipe FILE in `dir` over the test preset PRESET, with the LoRA adapter `lora` if
/// given: capacity 24, prefill 8, the check's two prompts × 8 steps.
fn lora_recipe(dir: &Path, file: &str, preset: &str, lora: Option<&Path>, variants: &str) {
    let lora = lora.map_or(String::new(), |p| format!(", lora: {}", p.display()));
    let text = format!(
        "version: 1\nname: {}\nmodel:\n  preset: {{path: {}, task: CausalLM{lora}}}\ngeneration:\n  prefill: [8]\n  capacity: 24\n  check:\n    prompts: [\"the quick brown fox\", \"children play with red kites\"]\n    steps: 8\noutput: out/{{{{ name }}}}-{{{{ variant }}}}.tflite\nvariants:\n{variants}",
        file.trim_end_matches(".yaml"),
        presets().join(preset).display()
    );
    std::fs::write(dir.join(file), text).unwrap();
}

/// LoRA fine-tunes of the trained Llama 3, Qwen 3 and Gemma 3 (their own adapters, taught
/// reversed sentences as Gemma's is) export merged by either writer: each generates the
/// fine-tuned Keras model's greedy tokens, which are not the base's; int8 keeps top-1
/// agreement at least 0.9.
#[test]
fn every_familys_lora_fine_tune_exports_merged() {
    let work = project();
    let d = work.path();
    let families = ["llama3", "qwen3", "gemma3"];
    let mut files = Vec::new();
    for family in families {
        let preset = format!("trained_{family}");
        let adapter = presets().join(format!("{preset}.lora.h5"));
        let base = format!("{family}_base.yaml");
        let tuned = format!("{family}_tuned.yaml");
        lora_recipe(d, &base, &preset, None, "  native: {}\n");
        lora_recipe(
            d,
            &tuned,
            &preset,
            Some(&adapter),
            "  native: {}\n  converter: {generation: {writer: converter}}\n  int8: {quantization: {mode: dynamic_range}}\n",
        );
        files.extend([base, tuned]);
    }
    let mut args = vec!["apply", "--json"];
    args.extend(files.iter().map(String::as_str));
    let out = work.litert(&args);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let arts = artifacts(&out);
    let ids = |id: &str, side: &str| prompt_ids(&arts[id], side);
    for family in families {
        for writer in ["native", "converter"] {
            let id = format!("{family}_tuned:{writer}");
            let c = check(&arts[&id]);
            assert_eq!(c["ok"], true, "{id}: {c:#}");
            assert_eq!(ids(&id, "litert_ids"), ids(&id, "keras_ids"), "{id}");
        }
        let id = format!("{family}_tuned:int8");
        let agreement = check(&arts[&id])["top1_agreement"].as_f64().unwrap();
        assert!(agreement >= 0.9, "{id}: {agreement}");
        assert_ne!(
            ids(&format!("{family}_tuned:native"), "keras_ids"),
            ids(&format!("{family}_base:native"), "keras_ids"),
            "{family}: the fine-tune generates what the base does"
        );
    }
}

/// A LoRA fine-tune (`save_lora_weights` of the trained Gemma, taught reversed sentences)
/// named beside its base preset exports merged, by either writer: each artifact generates what
/// Keras' fine-tuned model generates, which is not what the base generates. An adapter of
/// another model, and a file that is not an adapter, are refused by name.
#[test]
fn a_lora_fine_tune_exports_merged_and_generates_like_the_fine_tuned_keras_model() {
    let work = project();
    let d = work.path();
    let adapter = presets().join("trained_gemma.lora.h5");
    let write = |file: &str, preset: &str, lora: Option<&Path>, variants: &str| {
        lora_recipe(d, file, preset, lora, variants);
    };
    write("base.yaml", "trained_gemma", None, "  native: {}\n");
    write(
        "tuned.yaml",
        "trained_gemma",
        Some(&adapter),
        "  native: {}\n  converter: {generation: {writer: converter}}\n  int8: {quantization: {mode: dynamic_range}}\n",
    );
    let out = work.litert(&["apply", "--json", "base.yaml", "tuned.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let arts = artifacts(&out);
    let ids = |id: &str, side: &str| prompt_ids(&arts[id], side);
    for id in ["tuned:native", "tuned:converter"] {
        let c = check(&arts[id]);
        assert_eq!(c["ok"], true, "{id}: {c:#}");
        assert_eq!(ids(id, "litert_ids"), ids(id, "keras_ids"), "{id}");
    }
    let agreement = check(&arts["tuned:int8"])["top1_agreement"]
        .as_f64()
        .unwrap();
    assert!(agreement >= 0.9, "int8: {agreement}");
    // Keras' fine-tuned model is not the base: the adapter was merged, not dropped.
    assert_ne!(
        ids("tuned:native", "keras_ids"),
        ids("base:native", "keras_ids")
    );
    assert_ne!(
        std::fs::read(d.join("out/tuned-native.tflite")).unwrap(),
        std::fs::read(d.join("out/base-native.tflite")).unwrap()
    );

    // The Gemma adapter on Gemma 3: its layers are not the base's.
    write(
        "other.yaml",
        "trained_gemma3",
        Some(&adapter),
        "  native: {}\n",
    );
    let other = work.litert(&["apply", "other.yaml"]);
    assert_eq!(other.code, 1, "{}", other.stdout);
    assert!(
        other.stdout.contains("cannot be applied to the preset")
            && other.stdout.contains("Gemma3Backbone"),
        "{}",
        other.stdout
    );
    assert!(!d.join("out/other-native.tflite").exists());

    // A file that is not an adapter, refused before anything runs.
    std::fs::copy(
        presets().join("trained_gemma/model.weights.h5"),
        d.join("weights.h5"),
    )
    .unwrap();
    write(
        "wrong.yaml",
        "trained_gemma",
        Some(&d.join("weights.h5")),
        "  native: {}\n",
    );
    let wrong = work.litert(&["check", "wrong.yaml"]);
    let said = format!("{}{}", wrong.stdout, wrong.stderr);
    assert_eq!(wrong.code, 2, "{said}");
    assert!(
        said.contains("E0255") && said.contains("save_lora_weights"),
        "{said}"
    );
}
