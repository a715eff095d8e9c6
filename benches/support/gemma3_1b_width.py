"""A random Gemma 3 (text) at Gemma 3 1B's width, saved as a KerasHub preset in bfloat16:
vocabulary 262,144, hidden 1152, 26 layers (a global one every sixth, the rest local with a
sliding window of 512), 4 query heads and 1 KV head of 256, FFW 2 x 6912, query/key norms
(0.96 B parameters, 2.0 GB). Its SentencePiece WORD tokenizer, trained here, has a piece
for every row, Gemma 3's turn markers, and the test presets' words (so the held-out text
and the check prompts tokenize into words, not unknowns).

    python gemma3_1b_width.py OUT_DIR PRESETS_DIR   (PRESETS_DIR: tests/presets)
"""
import io
import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import sentencepiece as spm  # noqa: E402

out, presets = sys.argv[1], sys.argv[2]
sys.path.insert(0, presets)
import build_presets  # noqa: E402

V = 262144


def lines():
    # The presets' words and the prompts' first, a few times each, then one filler word
    # per piece still missing, 40 a line.
    for _ in range(20):
        yield " ".join(build_presets.WORDS)
        yield "the quick brown fox children play with red kites ."
    words = [f"w{i:x}" for i in range(V)]
    for i in range(0, len(words), 40):
        yield " ".join(words[i:i + 40])


model = io.BytesIO()
spm.SentencePieceTrainer.train(
    sentence_iterator=lines(), model_writer=model, vocab_size=V, model_type="WORD",
    pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
    unk_piece="<unk>",
    user_defined_symbols=["<start_of_turn>", "<end_of_turn>", "<img>", "<start_of_image>", "<end_of_image>"],
    num_threads=2, minloglevel=2, hard_vocab_limit=False,
)
keras.utils.set_random_seed(0)
tokenizer = keras_hub.models.Gemma3Tokenizer(proto=model.getvalue())
if tokenizer.vocabulary_size() != V:
    sys.exit(f"the tokenizer has {tokenizer.vocabulary_size()} pieces, not {V}")
pre = keras_hub.models.Gemma3CausalLMPreprocessor(tokenizer=tokenizer, sequence_length=128)
backbone = keras_hub.models.Gemma3Backbone(
    vocabulary_size=V, image_size=896, num_layers=26, num_query_heads=4, num_key_value_heads=1,
    hidden_dim=1152, intermediate_dim=6912, head_dim=256, query_head_dim_normalize=True,
    use_query_key_norm=True, use_post_ffw_norm=True, use_post_attention_norm=True,
    use_sliding_window_attention=True, sliding_window_size=512, local_rope_scaling_factor=1.0,
    global_rope_scaling_factor=1.0, vision_encoder=None, dtype="bfloat16",
)
keras_hub.models.Gemma3CausalLM(backbone=backbone, preprocessor=pre).save_to_preset(out)
print("parameters", backbone.count_params())
