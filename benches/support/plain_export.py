"""The baseline of `benches/generation.rs`: a plain `model.export(format="litert")` of a
KerasHub causal LM preset, the forward pass over a fixed window (what the flagship recipe
built before generation exports), with static [1, WINDOW] inputs so no Flex ops appear.

    python plain_export.py PRESET_DIR OUT.tflite WINDOW [dynamic_range]"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import tensorflow as tf  # noqa: E402

preset, out, window = sys.argv[1], sys.argv[2], int(sys.argv[3])
quantize = len(sys.argv) > 4 and sys.argv[4] == "dynamic_range"
model = keras_hub.models.CausalLM.from_preset(preset)
signature = [{
    "token_ids": keras.InputSpec(shape=(1, window), dtype="int32", name="token_ids"),
    "padding_mask": keras.InputSpec(shape=(1, window), dtype="int32", name="padding_mask"),
}]
kw = {"optimizations": [tf.lite.Optimize.DEFAULT]} if quantize else {}
model.export(out, format="litert", input_signature=signature, verbose=False, **kw)
