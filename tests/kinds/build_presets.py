"""Tiny KerasHub presets of the model kinds the export guide covers beyond classifiers and
causal LMs (random weights, tokenizers made locally, `save_to_preset`, no network), and
realistic inputs for each, made by the preset's own preprocessor:

    python tests/kinds/build_presets.py OUT_DIR

Writes OUT_DIR/tiny_gemma3_vision (Gemma 3 with its vision encoder: 32x32 images, patch 8,
pool 2, so 4 vision tokens per image, 1 image per prompt), OUT_DIR/tiny_paligemma (32x32
images, patch 8: 16 image tokens before the text), OUT_DIR/tiny_retinanet (a RetinaNet
detector over a small ResNet, 3 classes) and OUT_DIR/tiny_t5 (a T5 seq2seq LM); beside each
an `<name>_inputs.npz` of 8 samples keyed by input name (images and prompts with
`<start_of_image>` run through the preprocessor, so the vision placeholders sit where the
preprocessor puts them), and READY last. Everything is seeded.
"""

import io
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
SAMPLES = 8


def sentences(n, seed, low=2, high=6):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(low, high)))) for _ in range(n)]


def spm_proto(vocab_size, specials, model_type="WORD", **ids):
    """A SentencePiece model trained on the test sentences, of at most `vocab_size` pieces.
    Word-level, unless special tokens must split inside a word (Gemma 3's image
    placeholders, which the preprocessor writes without spaces): then unigram."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences(400, 1, 4, 12)),
        model_writer=model,
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        model_type=model_type,
        user_defined_symbols=specials,
        num_threads=1,
        minloglevel=2,
        **ids,
    )
    return model.getvalue()


GEMMA_IDS = dict(pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>",
                 bos_piece="<bos>", unk_piece="<unk>")


def images(n, size, seed):
    """Photos-like uint8 images of varied sizes (the preprocessor resizes them)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h, w = int(rng.integers(size // 2, size * 2)), int(rng.integers(size // 2, size * 2))
        # Smooth gradients plus noise: more like a picture than white noise.
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x / w, y / h, (x + y) / (w + h)], axis=-1) * 200
        out.append(np.clip(base + rng.normal(0, 20, size=(h, w, 3)), 0, 255).astype(np.float32))
    return out


def save_inputs(out, name, batch):
    arrays = {}
    for k, v in batch.items():
        v = np.asarray(v)
        arrays[k] = v.astype(np.int32) if v.dtype == bool or v.dtype.kind in "iu" else v.astype(np.float32)
    np.savez(os.path.join(out, f"{name}_inputs.npz"), **arrays)


def tiny_gemma3_vision(out):
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    tokenizer = keras_hub.models.Gemma3Tokenizer(
        proto=spm_proto(80, ["<start_of_turn>", "<end_of_turn>", "<img>", "<start_of_image>", "<end_of_image>"],
                        model_type="UNIGRAM", **GEMMA_IDS))
    converter = keras_hub.layers.Gemma3ImageConverter(image_size=(32, 32), scale=1 / 127.5, offset=-1.0)
    pre = keras_hub.models.Gemma3CausalLMPreprocessor(
        tokenizer, image_converter=converter, sequence_length=24, max_images_per_prompt=1,
        num_vision_tokens_per_image=4)
    encoder = keras_hub.models.Gemma3VisionEncoder(
        image_size=32, patch_size=8, num_heads=2, hidden_dim=32, num_layers=1, intermediate_dim=64,
        output_dim=32, pool_size=2)
    backbone = keras_hub.models.Gemma3Backbone(
        vocabulary_size=tokenizer.vocabulary_size(), image_size=32, num_layers=2, num_query_heads=2,
        num_key_value_heads=1, hidden_dim=32, intermediate_dim=64, head_dim=16, vision_encoder=encoder)
    lm = keras_hub.models.Gemma3CausalLM(backbone=backbone, preprocessor=pre)
    lm.save_to_preset(os.path.join(out, "tiny_gemma3_vision"))
    prompts = [f"{s} <start_of_image>" if i % 2 == 0 else f"<start_of_image> {s}"
               for i, s in enumerate(sentences(SAMPLES, 5))]
    batch = pre.generate_preprocess({"prompts": prompts, "images": [[im] for im in images(SAMPLES, 32, 6)]})
    save_inputs(out, "tiny_gemma3_vision", batch)


def tiny_paligemma(out):
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    tokenizer = keras_hub.models.PaliGemmaTokenizer(proto=spm_proto(64, [], **GEMMA_IDS))
    converter = keras_hub.layers.PaliGemmaImageConverter(image_size=(32, 32), scale=1 / 127.5, offset=-1.0)
    pre = keras_hub.models.PaliGemmaCausalLMPreprocessor(tokenizer, image_converter=converter, sequence_length=16)
    backbone = keras_hub.models.PaliGemmaBackbone(
        vocabulary_size=tokenizer.vocabulary_size(), image_size=32, num_layers=2, num_query_heads=2,
        num_key_value_heads=1, hidden_dim=32, intermediate_dim=64, head_dim=16, vit_patch_size=8,
        vit_num_heads=2, vit_hidden_dim=32, vit_num_layers=1, vit_intermediate_dim=64)
    lm = keras_hub.models.PaliGemmaCausalLM(backbone=backbone, preprocessor=pre)
    lm.save_to_preset(os.path.join(out, "tiny_paligemma"))
    batch = pre.generate_preprocess({"prompts": sentences(SAMPLES, 7), "images": np.stack(
        [keras.ops.convert_to_numpy(keras.ops.image.resize(im, (32, 32))) for im in images(SAMPLES, 32, 8)])})
    batch = dict(batch)
    batch["images"] = converter(np.stack(
        [keras.ops.convert_to_numpy(keras.ops.image.resize(im, (32, 32))) for im in images(SAMPLES, 32, 8)]))
    save_inputs(out, "tiny_paligemma", batch)


def tiny_retinanet(out):
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    encoder = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 32, 32, 32],
        stackwise_num_blocks=[1, 1, 1, 1], stackwise_num_strides=[1, 2, 2, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(None, None, 3))
    backbone = keras_hub.models.RetinaNetBackbone(
        image_encoder=encoder, min_level=3, max_level=5, use_p5=False, image_shape=(None, None, 3))
    converter = keras_hub.layers.RetinaNetImageConverter(image_size=(64, 64), scale=1 / 255.0)
    pre = keras_hub.models.RetinaNetObjectDetectorPreprocessor(image_converter=converter)
    detector = keras_hub.models.RetinaNetObjectDetector(
        backbone=backbone, num_classes=3, preprocessor=pre, pre_logits_num_conv_layers=1)
    detector.save_to_preset(os.path.join(out, "tiny_retinanet"))
    batch = {"images": converter(np.stack(
        [keras.ops.convert_to_numpy(keras.ops.image.resize(im, (64, 64))) for im in images(SAMPLES, 64, 9)]))}
    save_inputs(out, "tiny_retinanet", batch)


def tiny_t5(out):
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    tokenizer = keras_hub.models.T5Tokenizer(
        proto=spm_proto(64, [], pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>",
                        unk_piece="<unk>"))
    pre = keras_hub.models.T5Seq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=16, decoder_sequence_length=16)
    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_heads=2, hidden_dim=32,
        intermediate_dim=64, key_value_dim=16, dropout=0.0)
    lm = keras_hub.models.T5Seq2SeqLM(backbone=backbone, preprocessor=pre)
    lm.save_to_preset(os.path.join(out, "tiny_t5"))
    x, _, _ = pre({"encoder_text": sentences(SAMPLES, 10, 4, 10), "decoder_text": sentences(SAMPLES, 11)})
    save_inputs(out, "tiny_t5", x)


def main(out):
    os.makedirs(out, exist_ok=True)
    tiny_gemma3_vision(out)
    tiny_paligemma(out)
    tiny_retinanet(out)
    tiny_t5(out)
    with open(os.path.join(out, "READY"), "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main(sys.argv[1])
