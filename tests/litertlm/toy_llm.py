"""A toy prefill/decode LLM in the contract LiteRT-LM runs, made with TensorFlow, and its
SentencePiece tokenizer trained here: the inputs `tests/litertlm.rs` bundles with litert's
Rust writer and runs with Google's runtime.

The model copies with a lag: after position p it predicts `next(token[p - LAG])`, reading the
token at p - LAG back from its KV cache, so a right answer needs cache entries written by both
prefill and decode at the right slots (a DYNAMIC_UPDATE_SLICE at input_pos[0]).

    python toy_llm.py OUT_DIR   -> OUT_DIR/toy.tflite, toy.spm, toy.json, and READY last

`toy.json` records the cache capacity, the special ids and the model's rule for the checker.
Deterministic: fixed corpus, one training thread, no randomness in the model.
"""

import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LAYERS = 2
CAPACITY = 128
PREFILL_LENGTHS = (8, 32)
LAG = 2
VOCAB = 64
FIRST_NORMAL = 3  # SentencePiece's defaults: 0 <unk>, 1 <s>, 2 </s>


def next_token(t):
    """The toy's rule: the next normal id after `t` (special ids map into the normal range)."""
    span = VOCAB - FIRST_NORMAL
    return FIRST_NORMAL + ((t - FIRST_NORMAL + 1) % span)


def expected(ids, steps):
    """Greedy generation by the rule: `ids` is the full input (start token included)."""
    seq = list(ids)
    out = []
    for _ in range(steps):
        p = len(seq) - 1
        t = next_token(seq[max(p - LAG, 0)])
        out.append(t)
        seq.append(t)
    return out


def train_tokenizer(out):
    import sentencepiece as spm

    words = [
        "red", "green", "blue", "cat", "dog", "bird", "runs", "sits", "sings", "the", "a",
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ]
    lines = [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(8)) for i in range(400)]
    corpus = out / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(out / "toy"),
        vocab_size=VOCAB,
        model_type="bpe",
        character_coverage=1.0,
        num_threads=1,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    (out / "toy.model").rename(out / "toy.spm")
    (out / "toy.vocab").unlink()
    corpus.unlink()


def build_model(out):
    import tensorflow as tf
    from tensorflow.compiler.tf2xla.python import xla

    cache_shape = [1, CAPACITY, 1, VOCAB]
    names = [f"kv_cache_{kv}_{i}" for i in range(LAYERS) for kv in ("k", "v")]

    def step(tokens, input_pos, mask, caches):
        # The mask is part of the contract; touch it without letting -0.7*FLT_MAX through.
        zero = tf.minimum(tf.reduce_min(mask), 0.0) * 0.0
        onehot = tf.one_hot(tokens, VOCAB, dtype=tf.float32) + zero  # [1, T, V]
        update = tf.expand_dims(onehot, 2)  # [1, T, 1, V]
        start = input_pos[0]
        new = {}
        for name in names:
            new[name] = xla.dynamic_update_slice(
                caches[name], update, tf.stack([0, start, 0, 0])
            )
        return new

    def signature(t):
        spec = {
            "tokens": tf.TensorSpec([1, t], tf.int32, name="tokens"),
            "input_pos": tf.TensorSpec([t], tf.int32, name="input_pos"),
            "mask": tf.TensorSpec([1, 1, t, CAPACITY], tf.float32, name="mask"),
        }
        for n in names:
            spec[n] = tf.TensorSpec(cache_shape, tf.float32, name=n)
        return spec

    class Toy(tf.Module):
        pass

    toy = Toy()

    def make_prefill(t):
        @tf.function(input_signature=[signature(t)])
        def prefill(inputs):
            caches = {n: inputs[n] for n in names}
            return step(inputs["tokens"], inputs["input_pos"], inputs["mask"], caches)

        return prefill

    @tf.function(input_signature=[signature(1)])
    def decode(inputs):
        caches = {n: inputs[n] for n in names}
        new = step(inputs["tokens"], inputs["input_pos"], inputs["mask"], caches)
        pos = tf.maximum(inputs["input_pos"][0] - LAG, 0)
        seen = tf.gather(new["kv_cache_k_0"][0, :, 0, :], pos)  # one-hot of token[p - LAG]
        t = tf.argmax(seen, output_type=tf.int32)
        nxt = FIRST_NORMAL + tf.math.floormod(t - FIRST_NORMAL + 1, VOCAB - FIRST_NORMAL)
        logits = tf.reshape(tf.one_hot(nxt, VOCAB, on_value=10.0, off_value=-10.0), [1, 1, VOCAB])
        new["logits"] = logits
        return new

    signatures = {f"prefill_{t}": make_prefill(t) for t in PREFILL_LENGTHS}
    signatures["decode"] = decode
    for k, f in signatures.items():
        setattr(toy, k, f)
    saved = out / "saved"
    tf.saved_model.save(
        toy,
        str(saved),
        signatures={
            k: f.get_concrete_function() for k, f in signatures.items()
        },
    )
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved), signature_keys=list(signatures)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    (out / "toy.tflite").write_bytes(converter.convert())


def main():
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    train_tokenizer(out)
    build_model(out)
    (out / "toy.json").write_text(
        json.dumps(
            {
                "capacity": CAPACITY,
                "vocab": VOCAB,
                "bos_id": 1,
                "eos_id": 2,
                "lag": LAG,
                "prefill_lengths": list(PREFILL_LENGTHS),
            }
        )
    )
    (out / "READY").write_text("")


if __name__ == "__main__":
    main()
