"""Models for `benches/generation.rs`: a tiny Gemma preset (the test preset's recipe, from
tests/presets/build_presets.py) and a "wide" Gemma preset at Gemma 2B's width and head layout
(hidden 2048, 8 query heads, 1 KV head, head dim 256, FFW 2 x 16384) with a vocabulary and a
layer count the bench picks to fit the machine's free memory. Random weights, the tiny
SentencePiece tokenizer of the test presets (ids above its 42 pieces are never tokenized,
which does not change the cost of anything measured).

    python gen_models.py OUT_DIR [VOCAB LAYERS]

Without VOCAB and LAYERS only the tiny preset is made (the bench's LITERT_BENCH_GEN_WIDE=0).
Prints one JSON line: {name: {"params": N, "weight_bytes": 4N, "path": dir,
"embedding_elements": vocab x hidden}}."""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "presets"))

import keras  # noqa: E402
import keras_hub  # noqa: E402
import build_presets  # noqa: E402


def wide_gemma(path, vocab, layers):
    lm = build_presets.gemma(vocabulary_size=vocab, sequence_length=128, num_layers=layers, num_query_heads=8,
                             num_key_value_heads=1, hidden_dim=2048, intermediate_dim=32768, head_dim=256)
    lm.save_to_preset(path)
    return int(lm.backbone.count_params())


def wide_params(wide, vocab, layers):
    """The wide preset's parameter count, making the preset unless it is already there."""
    if not os.path.exists(os.path.join(wide, "config.json")):
        return wide_gemma(wide, vocab, layers)
    # Counting without loading: the parameter count follows from the config.
    c = json.load(open(os.path.join(wide, "config.json")))["config"]
    h, v, ff = c["hidden_dim"], c["vocabulary_size"], c["intermediate_dim"]
    q, kv, d = c["num_query_heads"], c["num_key_value_heads"], c["head_dim"]
    per_layer = h * d * (2 * q + 2 * kv) + h * ff + ff // 2 * h + 2 * h
    return v * h + c["num_layers"] * per_layer + h


def main(out, vocab, layers):
    os.makedirs(out, exist_ok=True)
    sizes = {}
    tiny = os.path.join(out, "tiny_gemma")
    if not os.path.exists(os.path.join(tiny, "config.json")):
        build_presets.tiny_gemma(out)
    keras.utils.clear_session()
    sizes["tiny_gemma"] = int(keras_hub.models.GemmaCausalLM.from_preset(tiny).backbone.count_params())
    if vocab is not None:
        name = f"wide_gemma_v{vocab}_l{layers}"
        sizes[name] = wide_params(os.path.join(out, name), vocab, layers)
    report = {}
    for k, n in sizes.items():
        c = json.load(open(os.path.join(out, k, "config.json")))["config"]
        report[k] = {"params": n, "weight_bytes": 4 * n, "path": os.path.join(out, k),
                     "embedding_elements": c["vocabulary_size"] * c["hidden_dim"]}
    print(json.dumps(report))


if __name__ == "__main__":
    if len(sys.argv) == 4:
        main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) == 2:
        main(sys.argv[1], None, None)
    else:
        sys.exit(__doc__)
