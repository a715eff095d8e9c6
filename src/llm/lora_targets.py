"""Print which dataset of a preset's `model.weights.h5` each layer of a KerasHub LoRA adapter
(`Backbone.save_lora_weights`) changes, as one JSON line:
`{"rank": R, "targets": [{"layer": I, "target": DATASET, "a": DATASET, "b": DATASET}]}`.

The adapter names a layer by its index among the backbone's layers that have weights, an
order Keras derives from the architecture alone. So a copy of the backbone is built from the
preset's config with every size shrunk to a few units (the same layers, never the model's
memory), LoRA enabled as `load_lora_weights` enables it, each adapted kernel filled with a
marker of its own, the copy saved, and each marker looked up in the saved file. litert reads
the values itself; no weight of the preset or the adapter passes through here."""

import json
import os
import sys
import tempfile

import h5py
import numpy as np

# Sizes of the copy: small, and consistent for every family (head_dim divides hidden_dim
# whatever the number of heads; RoPE needs an even head_dim).
SHRUNK = {"vocabulary_size": 8, "intermediate_dim": 8, "head_dim": 4}
MARKER = 1000.0


def fail(message):
    sys.stderr.write(message + "\n")
    sys.exit(1)


def adapter_layers(path):
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        fail(f"h5py could not read it: {e}")
    with f:
        if "lora/vars/rank" not in f:
            fail("it is not a KerasHub LoRA adapter (no `lora/vars/rank`; save one with `backbone.save_lora_weights`)")
        rank = int(f["lora/vars/rank"][()])
        layers = {}
        for key in f["lora"].keys():
            if key.isdigit():
                layers[int(key)] = {"a": f"lora/{key}/vars/lora_kernel_a", "b": f"lora/{key}/vars/lora_kernel_b"}
    return rank, layers


def main(preset, adapter):
    rank, layers = adapter_layers(adapter)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import keras_hub  # noqa: F401 - registers the backbone classes for deserialization

    with open(os.path.join(preset, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    c = config["config"]
    for key, size in SHRUNK.items():
        if key in c:
            c[key] = size
    if "hidden_dim" in c:
        c["hidden_dim"] = SHRUNK["head_dim"] * int(c.get("num_query_heads") or 1)
    c["dtype"] = "float32"
    backbone = keras.saving.deserialize_keras_object(config)
    backbone.enable_lora(rank)
    with_weights = [layer for layer in backbone._flatten_layers(include_self=False) if layer.weights]
    enabled = sorted(backbone._lora_enabled_layers)
    if sorted(layers) != enabled:
        fail(
            f"it adapts the layers {sorted(layers)} (by Keras' index), but LoRA on this preset's "
            f"`{type(backbone).__name__}` adapts {enabled} (KerasHub's default targets): an adapter of "
            "another model, or one made with other `target_layer_names`"
        )
    for n, index in enumerate(enabled):
        kernel = with_weights[index]._kernel
        kernel.assign(np.full(kernel.shape, MARKER + n, np.float32))
    targets = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "copy.weights.h5")
        backbone.save_weights(path)

        def find(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f" and obj.size:
                values = np.asarray(obj[()]).ravel()
                n = float(values[0]) - MARKER
                if n == int(n) and 0 <= n < len(enabled) and np.all(values == values[0]):
                    targets[enabled[int(n)]] = name

        with h5py.File(path, "r") as f:
            f.visititems(find)
    missing = [i for i in enabled if i not in targets]
    if missing:
        fail(f"the weights of the adapted layers {missing} were not found in the preset's layout")
    out = [{"layer": i, "target": targets[i], **layers[i]} for i in enabled]
    sys.stdout.write(json.dumps({"rank": rank, "targets": out}) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
