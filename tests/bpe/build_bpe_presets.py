"""Tiny KerasHub causal LMs whose tokenizers are byte-level BPE (KerasHub's `Llama3Tokenizer`
and `Qwen3Tokenizer`: a `vocabulary.json` and a `merges.txt`, no HuggingFace
`tokenizer.json`), for the bundle's HuggingFace tokenizer section.

    python tests/bpe/build_bpe_presets.py OUT_DIR

The BPE is trained here with the `tokenizers` package on the test sentences plus digits,
punctuation and non-ASCII text, over the whole byte alphabet (so any text tokenizes), with
each family's special tokens. The model is a random-weight (seed 0) Llama 2 `LlamaBackbone`
whose vocabulary is the tokenizer's: the tokenizer is what is under test, and the native
writer exports this backbone today. Writes OUT_DIR/{llama3_bpe, qwen3_bpe} (presets) and
READY last. Everything is seeded: the same script makes the same files.
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import keras  # noqa: E402
import keras_hub  # noqa: E402

WORDS = (
    "the quick brown fox jumps over a lazy dog while seven small birds sing in green trees "
    "near an old river where children play with red kites and blue boats every summer day"
).split()

EXTRA = [
    "In 2024, 12 birds flew 3.5 km (about 2 miles)!",
    "Numbers: 1, 22, 333, 4444 and 55555; prices $9.99 or 100%.",
    "café, naïve, Straße, 東京, Ελληνικά and 😀 are not ASCII.",
    "\"Quoted\" text -- it's, we're, they'll: done?",
    "  leading spaces\tand tabs\nand new lines",
]

# Each family's special tokens, in the order they get the first ids.
SPECIAL = {
    "llama3": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
               "<|eot_id|>"],
    "qwen3": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
}


def sentences(n, seed):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 12)))) + " ." for _ in range(n)]


def train_bpe(special):
    """A byte-level BPE over the test text: KerasHub's `vocabulary` dict and `merges` list."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sentences(400, 1) + EXTRA * 20, trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return model["vocab"], merges


def causal_lm(out, name, tokenizer_cls, preprocessor_cls, special, **tokenizer_kwargs):
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    vocab, merges = train_bpe(special)
    tokenizer = tokenizer_cls(vocabulary=vocab, merges=merges, **tokenizer_kwargs)
    pre = preprocessor_cls(tokenizer, sequence_length=16)
    backbone = keras_hub.models.LlamaBackbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_query_heads=4, num_key_value_heads=2,
        hidden_dim=32, intermediate_dim=64,
    )
    keras_hub.models.LlamaCausalLM(backbone=backbone, preprocessor=pre).save_to_preset(os.path.join(out, name))


def main(out):
    os.makedirs(out, exist_ok=True)
    causal_lm(out, "llama3_bpe", keras_hub.models.Llama3Tokenizer, keras_hub.models.Llama3CausalLMPreprocessor,
              SPECIAL["llama3"])
    # Every special token unsplittable, as KerasHub's converter of Hugging Face Qwen 3
    # checkpoints saves it (the class alone keeps only `<|im_end|>` and `<|endoftext|>` whole).
    causal_lm(out, "qwen3_bpe", keras_hub.models.Qwen3Tokenizer, keras_hub.models.Qwen3CausalLMPreprocessor,
              SPECIAL["qwen3"], unsplittable_tokens=SPECIAL["qwen3"])
    with open(os.path.join(out, "READY"), "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main(sys.argv[1])
