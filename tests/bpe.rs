//! Byte-level BPE tokenizers in bundles: KerasHub's Llama 3 and Qwen 3 tokenizers (a
//! `vocabulary.json` and a `merges.txt`) written by litert as a HuggingFace tokenizer JSON,
//! checked against Keras' own tokenization (ids and text) with the `tokenizers` package, and
//! run by LiteRT-LM in a bundle: the runtime's prompt ids are Keras', its greedy text the
//! artifact's, its start and stop tokens the families', its chat template the family's.

use std::path::{Path, PathBuf};

use crate::support::{TestContext, artifacts, fixture_dir, worker_json};
use serde_json::Value;

fn presets() -> PathBuf {
    fixture_dir("tests/presets/build_presets.py")
}

/// Texts the bundle must tokenize as Keras does: the check prompts, punctuation, numbers,
/// non-ASCII, leading and repeated spaces, new lines, and the families' special tokens
/// inside text.
const TEXTS: &[&str] = &[
    "the fox",
    "red kites",
    "Hello, world! It's 2024: 12 birds flew 3.5 km (about 2 miles).",
    "Numbers 1234567890 and 007; prices $9.99, 100% off -- isn't it?",
    "café naïve Straße 東京 Ελληνικά 😀 ÅÉÎ ñ",
    " leading space",
    "   three leading spaces and  two  inside ",
    "line one\nline two\n\n\ttabbed\r\nend",
    "<|begin_of_text|>the fox<|eot_id|> red kites<|end_of_text|>",
    "<|im_start|>user\nhi<|im_end|>\n<|endoftext|>",
    "",
];

/// Keras' tokenizer of `preset` and `tokenizers` on the JSON litert wrote, on every text:
/// ids, and the text each decodes the ids to; and Keras' own `tokenizers` object, serialized.
const COMPARE: &str = r#"
import json, sys
import keras_hub, tokenizers
preset, path, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
keras = keras_hub.models.Tokenizer.from_preset(preset)
ours = tokenizers.Tokenizer.from_file(path)
out = {"class": type(keras).__name__, "start": keras.start_token_id, "end": keras.end_token_id,
       "end2": getattr(keras, "end_token2_id", None), "texts": []}
for t in texts:
    k = [int(i) for i in keras(t)]
    o = ours.encode(t).ids
    out["texts"].append({"text": t, "keras": k, "ours": o,
                         "keras_text": keras.detokenize(k), "ours_text": ours.decode(o, skip_special_tokens=False)})
# KerasHub's own tokenizers object: litert's JSON must be the same tokenizer.
theirs = json.loads(keras._tokenizer.to_str())
mine = json.loads(ours.to_str())
out["same_pre_tokenizer"] = theirs["pre_tokenizer"] == mine["pre_tokenizer"]
out["same_decoder"] = theirs["decoder"] == mine["decoder"]
out["same_vocab"] = theirs["model"]["vocab"] == mine["model"]["vocab"]
out["same_merges"] = theirs["model"]["merges"] == mine["model"]["merges"]
out["same_added"] = sorted(json.dumps(t, sort_keys=True) for t in theirs["added_tokens"]) == \
    sorted(json.dumps(t, sort_keys=True) for t in mine["added_tokens"])
print(json.dumps(out))
"#;

fn compare(preset: &Path, json: &Path) -> Value {
    worker_json(
        COMPARE,
        &[
            preset.display().to_string(),
            json.display().to_string(),
            serde_json::to_string(TEXTS).unwrap(),
        ],
    )
}

/// The JSON litert writes natively from `vocabulary.json` and `merges.txt` is KerasHub's
/// tokenizer: the same ids as Keras for every text, the same decoded text, and, loaded by
/// `tokenizers`, the same pre-tokenizer, decoder, vocabulary, merges and special tokens as
/// the `tokenizers` object KerasHub builds itself.
#[test]
fn the_written_tokenizer_tokenizes_as_keras() {
    let dir = tempfile::tempdir().unwrap();
    for (preset, class) in [
        ("trained_llama3", "Llama3Tokenizer"),
        ("trained_qwen3", "Qwen3Tokenizer"),
    ] {
        let preset = presets().join(preset);
        let converted = litert::litertlm::bpe::from_preset(&preset).unwrap();
        assert_eq!(converted.family.class, class);
        let json = dir.path().join(format!("{class}.json"));
        std::fs::write(&json, &converted.json).unwrap();
        let r = compare(&preset, &json);
        assert_eq!(r["class"], class);
        for key in [
            "same_pre_tokenizer",
            "same_decoder",
            "same_vocab",
            "same_merges",
            "same_added",
        ] {
            assert_eq!(r[key], true, "{class}: {key}");
        }
        let texts = r["texts"].as_array().unwrap();
        assert_eq!(texts.len(), TEXTS.len());
        for t in texts {
            assert_eq!(t["keras"], t["ours"], "{class}: {t:#}");
            assert_eq!(t["keras_text"], t["ours_text"], "{class}: {t:#}");
            // Byte-level BPE over the whole byte alphabet loses nothing.
            assert_eq!(t["ours_text"], t["text"], "{class}: {t:#}");
        }
        // Special tokens inside a text stay whole.
        let special = &texts[8]["ours"];
        let vocab = converted.vocab().unwrap();
        if class == "Llama3Tokenizer" {
            let eot = vocab.id("<|eot_id|>").unwrap();
            assert!(
                special.as_array().unwrap().contains(&eot.into()),
                "{special}"
            );
        }
        // The start and end tokens litert puts in a bundle are Keras'.
        let start: Vec<i64> = r["start"].as_i64().into_iter().collect();
        assert_eq!(vocab.ids_of("bos"), start, "{class}");
        let ends: Vec<i64> = [&r["end"], &r["end2"]]
            .iter()
            .filter_map(|v| v.as_i64())
            .collect();
        assert_eq!(vocab.ids_of("eos"), ends, "{class}");
    }
}

fn recipe(dir: &Path, name: &str, preset: &str, bundle: &str) {
    let prompts = serde_json::to_string(&TEXTS[..5]).unwrap();
    let text = format!(
        "version: 1\nname: {name}\nmodel:\n  preset: {{path: {}, task: CausalLM}}\ngeneration:\n  prefill: [8, 32]\n  capacity: 96\n  check:\n    prompts: {prompts}\n    steps: 8\n  bundle:\n{bundle}output: out/{name}.tflite\n",
        presets().join(preset).display()
    );
    std::fs::write(dir.join(format!("{name}.yaml")), text).unwrap();
}

fn llm_metadata(info: &Value) -> &Value {
    info["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|s| s.get("llm_metadata"))
        .unwrap()
}

fn token_ids(token: &Value) -> Vec<i64> {
    token["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_i64().unwrap())
        .collect()
}

/// A bundle of each BPE family, built by `apply` and run by LiteRT-LM: the runtime loads
/// litert's tokenizer JSON, tokenizes every check prompt (punctuation, numbers, non-ASCII,
/// a leading space) as Keras does and generates the artifact's greedy text; Llama 3 starts
/// with `<|begin_of_text|>` and stops at `<|end_of_text|>` and `<|eot_id|>`, Qwen 3 starts
/// with nothing and stops at `<|im_end|>`.
#[test]
fn byte_level_bpe_bundles_run_in_litert_lm_as_keras_tokenizes() {
    let work = TestContext::new();
    let d = work.path();
    recipe(d, "llama3", "trained_llama3", "    verify: true\n");
    recipe(d, "qwen3", "trained_qwen3", "    verify: true\n");
    let out = work.litert(&["apply", "--json", "llama3.yaml", "qwen3.yaml"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let arts = artifacts(&out);
    for (id, start, stops) in [
        (
            "llama3",
            Some("<|begin_of_text|>"),
            vec!["<|end_of_text|>", "<|eot_id|>"],
        ),
        ("qwen3", None, vec!["<|im_end|>"]),
    ] {
        let a = &arts[id];
        assert_eq!(a["status"], "built", "{id}: {a:#}");
        let tok = &a["result"]["generation"]["tokenizer"];
        assert_eq!(tok["kind"], "bpe", "{id}: {tok:#}");
        let check = &a["bundle"]["check"];
        assert_eq!(check["ok"], true, "{id}: {check:#}");
        let run = &check["run"];
        assert_eq!(run["prompts"].as_array().unwrap().len(), 5, "{id}");
        let inspect = work.litert(&["inspect", "--json", &format!("out/{id}.litertlm")]);
        assert_eq!(inspect.code, 0, "{}", inspect.stderr);
        let info: Value = serde_json::from_str(&inspect.stdout).unwrap();
        assert_eq!(info["problems"].as_array().unwrap().len(), 0, "{info:#}");
        let tokenizer = info["sections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["data_type"] == "HF_Tokenizer_Zlib")
            .unwrap_or_else(|| panic!("{id}: no HF tokenizer section in {info:#}"));
        assert_eq!(tokenizer["tokenizer"]["model_type"], "BPE");
        let m = llm_metadata(&info);
        let piece = |t: &Value| t["pieces"][0].as_str().map(str::to_string);
        assert_eq!(
            m["start_token"]
                .as_object()
                .map(|_| piece(&m["start_token"]).unwrap()),
            start.map(str::to_string),
            "{id}: {m:#}"
        );
        let stop_pieces: Vec<String> = m["stop_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| piece(t).unwrap())
            .collect();
        assert_eq!(stop_pieces, stops, "{id}");
        // What the runtime itself reports.
        assert_eq!(
            run["start_token"].is_null(),
            start.is_none(),
            "{id}: {run:#}"
        );
        let runtime_stops: Vec<i64> = run["stop_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t.as_array().unwrap().iter().map(|i| i.as_i64().unwrap()))
            .collect();
        let bundle_stops: Vec<i64> = m["stop_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(token_ids)
            .collect();
        assert_eq!(runtime_stops, bundle_stops, "{id}");
    }
    // The family's chat template: what LiteRT-LM's conversation API renders for a user
    // turn, and what a session with the template on feeds the model.
    for (id, user, model) in [
        (
            "llama3",
            ("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
        ),
        (
            "qwen3",
            ("<|im_start|>user\n", "<|im_end|>\n"),
            "<|im_start|>assistant\n",
        ),
    ] {
        let r = worker_json(
            CHAT,
            &[
                d.join(format!("out/{id}.litertlm")).display().to_string(),
                "the fox".into(),
                user.0.into(),
                user.1.into(),
                model.into(),
            ],
        );
        assert!(
            r["rendered"]
                .as_str()
                .unwrap()
                .contains(&format!("{}the fox{}", user.0, user.1)),
            "{id}: {r:#}"
        );
        assert_eq!(r["templated"], r["by_hand"], "{id}: {r:#}");
    }
}

/// LiteRT-LM with a bundle's prompt template: the conversation API's rendering of a user
/// turn, and a session's greedy text with the template on and with the prompt wrapped by
/// hand in the bundle's affixes (the same text: the runtime applied those affixes).
const CHAT: &str = r#"
import json, sys
import litert_lm
litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
bundle, text, user_prefix, user_suffix, model_prefix = sys.argv[1:6]
engine = litert_lm.Engine(bundle, backend=litert_lm.Backend.CPU())
conv = engine.create_conversation()
rendered = conv.render_message_to_string({"role": "user", "content": text})
conv.close()
def generate(prompt, template):
    s = engine.create_session(apply_prompt_template=template, max_output_tokens=6)
    s.run_prefill([prompt])
    out = s.run_decode().texts[0]
    s.close()
    return out
templated = generate(text, True)
by_hand = generate(user_prefix + text + user_suffix + model_prefix, False)
engine.close()
print(json.dumps({"rendered": rendered, "templated": templated, "by_hand": by_hand}))
"#;
