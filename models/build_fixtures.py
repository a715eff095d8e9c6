"""Build the small, seeded example models and calibration data the example recipes use.

Run with an interpreter that has Keras 3 + TensorFlow (e.g. `litert env` once it exists):

    python models/build_fixtures.py

Every model is tiny and built from fixed seeds, so the committed files can be re-made.
Keras archives embed a save timestamp, so re-running changes bytes but not weights.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(os.path.dirname(HERE), "data")


def seeded(seed=0):
    keras.utils.set_random_seed(seed)


def mlp():
    seeded(0)
    inp = keras.Input((28, 28), name="pixels")
    x = layers.Flatten()(inp)
    x = layers.Dense(64, activation="relu")(x)
    out = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="mlp")


def classifier():
    """A small conv net: enough weights (>1,024 per tensor) for quantization to show."""
    seeded(1)
    inp = keras.Input((28, 28, 1), name="image")
    x = layers.Conv2D(16, 3, activation="relu")(inp)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(64, activation="relu")(x)
    out = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="classifier")


def multi_input():
    seeded(2)
    a = keras.Input((10,), name="input_1")
    b = keras.Input((5,), name="input_2")
    x = layers.Concatenate(name="concat_layer")([a, b])
    out = layers.Dense(1, activation="sigmoid", name="output")(x)
    return keras.Model([a, b], out, name="multi_input")


def dict_inputs():
    seeded(3)
    tokens = keras.Input((20,), name="tokens")
    mask = keras.Input((20,), name="mask")
    t = layers.Dense(16, activation="relu")(tokens)
    m = layers.Dense(16, activation="relu")(mask)
    out = layers.Dense(1, activation="sigmoid")(layers.Multiply()([t, m]))
    return keras.Model({"tokens": tokens, "mask": mask}, out, name="dict_inputs")


def frames():
    seeded(4)
    inp = keras.Input((None, 8), name="frames")
    x = layers.Conv1D(4, 3, padding="same")(inp)
    x = layers.GlobalAveragePooling1D()(x)
    out = layers.Dense(2)(x)
    return keras.Model(inp, out, name="frames")


def main():
    os.makedirs(DATA, exist_ok=True)
    mlp().save(os.path.join(HERE, "mlp.keras"))
    clf = classifier()
    clf.save(os.path.join(HERE, "classifier.keras"))
    multi_input().save(os.path.join(HERE, "multi_input.keras"))
    dict_inputs().save(os.path.join(HERE, "dict_inputs.keras"))
    frames().save(os.path.join(HERE, "frames.keras"))

    # The same MLP in the legacy HDF5 format, as architecture JSON + weights, and as a
    # SavedModel directory.
    m = mlp()
    m.save(os.path.join(HERE, "mlp_legacy.h5"))
    with open(os.path.join(HERE, "mlp_architecture.json"), "w") as f:
        f.write(m.to_json())
    m.save_weights(os.path.join(HERE, "mlp.weights.h5"))
    m.export(os.path.join(HERE, "mlp_saved_model"), format="tf_saved_model", verbose=False)

    rng = np.random.default_rng(0)
    np.savez(os.path.join(DATA, "classifier_calibration.npz"),
             image=rng.random((32, 28, 28, 1), dtype=np.float32))
    print("fixtures written", file=sys.stderr)


if __name__ == "__main__":
    main()
