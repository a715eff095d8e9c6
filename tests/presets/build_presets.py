"""Tiny KerasHub presets (random weights, tokenizers made locally) saved with
`save_to_preset`, plus calibration data for them, so preset recipes run without the network.

    python tests/presets/build_presets.py OUT_DIR

Writes OUT_DIR/{tiny_gemma, tiny_bert, tiny_resnet} (presets), OUT_DIR/{trained_gemma,
tiny_llama, tiny_gpt2, trained_llama3, trained_qwen3, trained_gemma3} (causal LMs for
generation exports: Gemma, Llama 3, Qwen 3 and Gemma 3 trained briefly on the sentences
below so their greedy continuations are confident, and random-weight Llama and GPT-2, all
with tokenizers made here), OUT_DIR/prompts.txt,
OUT_DIR/images/ (PNG and JPEG files of several sizes and modes), OUT_DIR/bad_images/ (one
of them corrupt), and READY last. Everything is seeded: the same script makes the same
files. Layer sizes are chosen so every weight matrix has at least 1,024 elements, the
size below which dynamic-range quantization keeps weights in float32.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import io  # noqa: E402

import numpy as np  # noqa: E402
import keras  # noqa: E402
import keras_hub  # noqa: E402

WORDS = (
    "the quick brown fox jumps over a lazy dog while seven small birds sing in green trees "
    "near an old river where children play with red kites and blue boats every summer day"
).split()

BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(WORDS)) + ["."]


# Each word's two likely successors (a fixed draw): the sentences follow them 85% and 10%
# of the time, so a trained model's next-word choices are clear, as a real language
# model's are, rather than near ties between equally likely random words.
_DRAW = np.random.default_rng(99)
SUCCESSORS = {w: _DRAW.choice(WORDS, size=2, replace=False) for w in WORDS}


def sentences(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = [str(rng.choice(WORDS))]
        for _ in range(int(rng.integers(4, 12)) - 1):
            r = rng.random()
            nxt = SUCCESSORS[words[-1]]
            words.append(str(nxt[0] if r < 0.85 else nxt[1] if r < 0.95 else rng.choice(WORDS)))
        out.append(" ".join(words) + " .")
    return out


def gemma_tokenizer_proto():
    """A SentencePiece model trained here, with Gemma's special tokens at Gemma's ids."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences(400, 1)),
        model_writer=model,
        vocab_size=42,
        model_type="WORD",
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        pad_piece="<pad>",
        eos_piece="<eos>",
        bos_piece="<bos>",
        unk_piece="<unk>",
        user_defined_symbols=["<start_of_turn>", "<end_of_turn>"],
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


def gemma(vocabulary_size=None, sequence_length=16, **dims):
    """A random-weight (seed 0) Gemma causal LM with the test SentencePiece tokenizer; the
    vocabulary defaults to the tokenizer's."""
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    tokenizer = keras_hub.models.GemmaTokenizer(proto=gemma_tokenizer_proto())
    pre = keras_hub.models.GemmaCausalLMPreprocessor(tokenizer, sequence_length=sequence_length)
    backbone = keras_hub.models.GemmaBackbone(
        vocabulary_size=vocabulary_size or tokenizer.vocabulary_size(), **dims)
    return keras_hub.models.GemmaCausalLM(backbone=backbone, preprocessor=pre)


def tiny_gemma(out):
    lm = gemma(num_layers=2, num_query_heads=2, num_key_value_heads=1, hidden_dim=32, intermediate_dim=64,
               head_dim=16)
    lm.save_to_preset(os.path.join(out, "tiny_gemma"))


def trained_gemma(out):
    """A small Gemma trained for a few epochs on the test sentences: its predictions are
    confident, as a real language model's are, so quantization is judged on real margins."""
    lm = gemma(num_layers=2, num_query_heads=4, num_key_value_heads=1, hidden_dim=64, intermediate_dim=128,
               head_dim=16)
    train(lm, "trained_gemma", out)


def trained_lora(out, name, prompts=False):
    """A LoRA fine-tune of the trained preset OUT/NAME (KerasHub's workflow: `enable_lora`,
    fit, keep the adapter apart), taught the test sentences with their words reversed, so
    its greedy continuations are not the base model's. Saved as OUT/NAME.lora.h5. `prompts`:
    as `as_samples`'."""
    keras.utils.clear_session()
    keras.utils.set_random_seed(1)
    lm = keras_hub.models.CausalLM.from_preset(os.path.join(out, name))
    lm.backbone.enable_lora(4)
    lm.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
               weighted_metrics=[])
    x = [" ".join(reversed(s[:-2].split())) + " ." for s in sentences(512, 5)]
    lm.fit(as_samples(x, prompts), batch_size=32, epochs=6, verbose=0)
    lm.backbone.save_lora_weights(os.path.join(out, f"{name}.lora.h5"))


def tiny_gemma2(out):
    """Gemma 2's options on the tiny Gemma: post-attention and post-FFW norms, attention and
    final logit soft-capping, the hidden-size query scale, sliding windows wider than the
    tests' caches."""
    lm = gemma(num_layers=2, num_query_heads=4, num_key_value_heads=2, hidden_dim=32, intermediate_dim=64,
               head_dim=16, query_head_dim_normalize=False, use_post_ffw_norm=True,
               use_post_attention_norm=True, final_logit_soft_cap=30.0, attention_logit_soft_cap=50.0,
               use_sliding_window_attention=True, sliding_window_size=64)
    lm.save_to_preset(os.path.join(out, "tiny_gemma2"))


def tiny_llama(out):
    import sentencepiece as spm

    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences(400, 1)), model_writer=model, vocab_size=36, model_type="WORD",
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2,
    )
    tokenizer = keras_hub.models.LlamaTokenizer(proto=model.getvalue())
    pre = keras_hub.models.LlamaCausalLMPreprocessor(tokenizer, sequence_length=16)
    backbone = keras_hub.models.LlamaBackbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_query_heads=4, num_key_value_heads=2,
        hidden_dim=32, intermediate_dim=64,
    )
    keras_hub.models.LlamaCausalLM(backbone=backbone, preprocessor=pre).save_to_preset(os.path.join(out, "tiny_llama"))


def tiny_gpt2(out):
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    # Byte-level BPE over characters: a token is a character, with or without the space
    # before it (`Ġ`).
    chars = sorted(set("".join(WORDS)) | {"."})
    vocab = {"<|endoftext|>": 0}
    for c in chars + ["\u0120"] + ["\u0120" + c for c in chars]:
        vocab[c] = len(vocab)
    merges = ["\u0120 " + c for c in chars]
    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=vocab, merges=merges)
    pre = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer, sequence_length=16)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_heads=2, hidden_dim=32,
        intermediate_dim=64, max_sequence_length=64,
    )
    keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=pre).save_to_preset(os.path.join(out, "tiny_gpt2"))


def as_samples(texts, prompts):
    """`texts` as a causal LM's `fit` takes them: as they are, or, for a preprocessor of
    prompt/response pairs (`prompts`: Gemma 3's), each text a response to an empty prompt."""
    return {"prompts": [""] * len(texts), "responses": texts} if prompts else texts


def train(lm, name, out, prompts=False):
    """Fit `lm` for a few epochs on the test sentences (their greedy continuations become
    confident, as a real language model's are) and save it as OUT/NAME. `prompts`: as
    `as_samples`'."""
    lm.compile(optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
               weighted_metrics=[])
    lm.fit(as_samples(sentences(512, 4), prompts), batch_size=32, epochs=12, verbose=0)
    lm.save_to_preset(os.path.join(out, name))


def byte_level_bpe(specials):
    """A byte-level BPE vocabulary and merges made here: every byte's character (so any
    text tokenizes), then merges that make each test word one token, with and without the
    space before it (`Ġ`); `specials` last, as real Llama 3 and Qwen 3 vocabularies have them."""
    # GPT-2's byte-to-character table.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    vocab = {}
    for c in sorted(cs):
        vocab[chr(c)] = len(vocab)
    merges = []
    # Words after a space first: they are most of the text.
    for word in ["\u0120" + w for w in sorted(set(WORDS)) + ["."]] + sorted(set(WORDS)):
        piece = word[0]
        for ch in word[1:]:
            merge = f"{piece} {ch}"
            piece += ch
            if merge not in merges:
                merges.append(merge)
                vocab.setdefault(piece, len(vocab))
    for token in specials:
        vocab[token] = len(vocab)
    return vocab, merges


def trained_llama3(out):
    """Llama 3.1 in small: RoPE frequency scaling with Llama 3.1's factors (so the three
    frequency bands all occur at head_dim 16), an untied output projection, byte-level BPE."""
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    vocab, merges = byte_level_bpe(["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                    "<|end_header_id|>", "<|eot_id|>"])
    tokenizer = keras_hub.models.Llama3Tokenizer(vocabulary=vocab, merges=merges)
    pre = keras_hub.models.Llama3CausalLMPreprocessor(tokenizer, sequence_length=16)
    backbone = keras_hub.models.Llama3Backbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_query_heads=4, num_key_value_heads=2,
        hidden_dim=64, intermediate_dim=128, rope_max_wavelength=500_000, rope_frequency_adjustment_factor=8.0,
        rope_low_freq_factor=1.0, rope_high_freq_factor=4.0, rope_pretraining_sequence_length=8192,
    )
    train(keras_hub.models.Llama3CausalLM(backbone=backbone, preprocessor=pre), "trained_llama3", out)


def trained_qwen3(out):
    """Qwen 3 in small: query/key norms, an explicit head dimension, tied embeddings,
    byte-level BPE with no start token."""
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab, merges = byte_level_bpe(specials)
    # Every special token unsplittable, as KerasHub's converter of Hugging Face Qwen 3
    # checkpoints saves it (the class alone keeps only `<|im_end|>` and `<|endoftext|>`
    # whole, and ChatML needs `<|im_start|>` too).
    tokenizer = keras_hub.models.Qwen3Tokenizer(vocabulary=vocab, merges=merges, unsplittable_tokens=specials)
    pre = keras_hub.models.Qwen3CausalLMPreprocessor(tokenizer, sequence_length=16)
    backbone = keras_hub.models.Qwen3Backbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_query_heads=4, num_key_value_heads=2,
        head_dim=16, hidden_dim=64, intermediate_dim=128, rope_max_wavelength=1_000_000,
        tie_word_embeddings=True,
    )
    train(keras_hub.models.Qwen3CausalLM(backbone=backbone, preprocessor=pre), "trained_qwen3", out)


def trained_gemma3(out):
    """Gemma 3 (text) in small: six layers, so five local ones (a sliding window of 8,
    narrower than the tests' caches; RoPE base 10k) and one global (base 1M, scaling 8);
    query/key norms; post-attention and post-FFW norms."""
    import sentencepiece as spm

    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences(400, 1)), model_writer=model, vocab_size=47, model_type="WORD",
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
        unk_piece="<unk>",
        user_defined_symbols=["<start_of_turn>", "<end_of_turn>", "<img>", "<start_of_image>", "<end_of_image>"],
        num_threads=1, minloglevel=2,
    )
    tokenizer = keras_hub.models.Gemma3Tokenizer(proto=model.getvalue())
    pre = keras_hub.models.Gemma3CausalLMPreprocessor(tokenizer=tokenizer, sequence_length=16)
    backbone = keras_hub.models.Gemma3Backbone(
        vocabulary_size=tokenizer.vocabulary_size(), image_size=16, num_layers=6, num_query_heads=4,
        num_key_value_heads=1, hidden_dim=64, intermediate_dim=128, head_dim=16, use_post_ffw_norm=True,
        use_post_attention_norm=True, use_sliding_window_attention=True, sliding_window_size=8,
        global_rope_scaling_factor=8.0,
    )
    train(keras_hub.models.Gemma3CausalLM(backbone=backbone, preprocessor=pre), "trained_gemma3", out, prompts=True)


def tiny_bert(out):
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=BERT_VOCAB)
    pre = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=16)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(BERT_VOCAB),
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        max_sequence_length=32,
    )
    clf = keras_hub.models.BertTextClassifier(backbone=backbone, num_classes=3, preprocessor=pre)
    clf.save_to_preset(os.path.join(out, "tiny_bert"))


def tiny_resnet(out):
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 64],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=(None, None, 3),
    )
    clf = keras_hub.models.ResNetImageClassifier(backbone=backbone, num_classes=4, pooling="avg",
                                                 activation="softmax")
    clf.save_to_preset(os.path.join(out, "tiny_resnet"))


def data(out):
    from PIL import Image

    with open(os.path.join(out, "prompts.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(sentences(24, 2)) + "\n\n")
    rng = np.random.default_rng(3)
    images = os.path.join(out, "images")
    os.makedirs(os.path.join(images, "more"), exist_ok=True)
    for i in range(12):
        h, w = int(rng.integers(20, 60)), int(rng.integers(20, 60))
        pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        im = Image.fromarray(pixels, "RGB")
        if i % 4 == 1:
            im = im.convert("L")  # grey images become three equal channels
        if i % 4 == 2:
            im = im.convert("RGBA")
        sub = images if i < 8 else os.path.join(images, "more")
        if i % 3 == 0:
            im.convert("RGB").save(os.path.join(sub, f"img_{i:02d}.jpg"), quality=90)
        else:
            im.save(os.path.join(sub, f"img_{i:02d}.png"))
    with open(os.path.join(images, "README.txt"), "w") as f:
        f.write("not an image: skipped\n")
    bad = os.path.join(out, "bad_images")
    os.makedirs(bad, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8), "RGB").save(os.path.join(bad, "a.png"))
    with open(os.path.join(bad, "b_corrupt.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + b"this is not a PNG body")
    os.makedirs(os.path.join(out, "no_images"), exist_ok=True)
    with open(os.path.join(out, "empty_prompts.txt"), "w") as f:
        f.write("\n  \n")
    # Token ids as floats: refused, not truncated.
    np.savez(os.path.join(out, "float_tokens.npz"), token_ids=np.full((4, 16), 5.5, np.float32),
             segment_ids=np.zeros((4, 16), np.float32), padding_mask=np.ones((4, 16), np.float32))


def main(out):
    os.makedirs(out, exist_ok=True)
    data(out)
    tiny_gemma(out)
    tiny_bert(out)
    tiny_resnet(out)
    trained_gemma(out)
    trained_lora(out, "trained_gemma")
    tiny_gemma2(out)
    tiny_llama(out)
    tiny_gpt2(out)
    trained_llama3(out)
    trained_qwen3(out)
    trained_gemma3(out)
    # Adapters of the other families, after every preset, so that none of those changes.
    trained_lora(out, "trained_llama3")
    trained_lora(out, "trained_qwen3")
    trained_lora(out, "trained_gemma3", prompts=True)
    with open(os.path.join(out, "READY"), "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main(sys.argv[1])
