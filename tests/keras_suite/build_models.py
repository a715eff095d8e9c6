"""Fixture models for Keras' own LiteRT export tests (keras/src/export/litert_test.py),
rebuilt deterministically so each test case can run as a litert recipe.

    python tests/keras_suite/build_models.py OUT_DIR

Every model is seeded; the layer stacks and input names follow the Keras test file.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from factories import default_layers  # noqa: E402


def seeded(seed):
    # A fresh session per model: unnamed layers then get the names a fresh process gives
    # them (`input_layer`, `dense`), not names that depend on the models built before.
    keras.utils.clear_session()
    keras.utils.set_random_seed(seed)


def sequential(seed=0):
    seeded(seed)
    model = keras.Sequential(default_layers())
    model.build((None, 10))
    return model


def functional(seed=1):
    seeded(seed)
    inp = keras.Input((10,))
    x = inp
    for layer in default_layers():
        x = layer(x)
    return keras.Model(inp, x)


def multi_output(seed=2):
    seeded(seed)
    inp = keras.Input((10,))
    x = layers.Dense(20, activation="relu")(inp)
    return keras.Model(inp, [layers.Dense(1, activation="sigmoid", name="output1")(x),
                             layers.Dense(3, activation="softmax", name="output2")(x)])


def two_inputs(names, seed=3):
    seeded(seed)
    a = keras.Input((10,), name=names[0])
    b = keras.Input((10,), name=names[1])
    return keras.Model([a, b], layers.Add()([a, b]))


def dict_two_inputs(seed=4):
    seeded(seed)
    x = keras.Input((10,), name="x")
    y = keras.Input((10,), name="y")
    return keras.Model({"x": x, "y": y}, layers.Add()([x, y]))


def conv(filters, seed):
    seeded(seed)
    inp = keras.Input((28, 28, 3))
    x = inp
    for f in filters:
        x = layers.Conv2D(f, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    if len(filters) > 1:
        x = layers.Dense(128, activation="relu")(x)
    return keras.Model(inp, layers.Dense(10, activation="softmax")(x))


def named(seed=5):
    seeded(seed)
    inp = keras.Input((10,), name="feature_input")
    x = layers.Dense(32, activation="relu", name="encoder")(inp)
    x = layers.Dense(16, activation="relu", name="bottleneck")(x)
    return keras.Model(inp, layers.Dense(1, activation="sigmoid", name="prediction_output")(x), name="named_model")


def named_functional(seed=6):
    seeded(seed)
    inp = keras.Input((10,), name="input_layer")
    x = layers.Dense(32, activation="relu", name="hidden_layer")(inp)
    return keras.Model(inp, layers.Dense(1, activation="sigmoid", name="output_layer")(x))


def concat_inputs(seed=7):
    seeded(seed)
    a = keras.Input((10,), name="input_1")
    b = keras.Input((5,), name="input_2")
    x = layers.Concatenate(name="concat_layer")([a, b])
    return keras.Model([a, b], layers.Dense(1, activation="sigmoid", name="output")(x))


def shared_multi_output(seed=8):
    seeded(seed)
    inp = keras.Input((10,), name="input_layer")
    x = layers.Dense(32, activation="relu", name="shared_layer")(inp)
    return keras.Model(inp, [layers.Dense(1, activation="sigmoid", name="output_1")(x),
                             layers.Dense(2, activation="softmax", name="output_2")(x)])


def dict_concat(seed=9):
    seeded(seed)
    a = keras.Input((5,), name="feature_a")
    b = keras.Input((3,), name="feature_b")
    x = layers.Concatenate()([a, b])
    return keras.Model({"feature_a": a, "feature_b": b}, layers.Dense(1)(x))


def dict_multiply(seed=10):
    seeded(seed)
    a = keras.Input((10,), name="input_x")
    b = keras.Input((10,), name="input_y")
    return keras.Model({"input_x": a, "input_y": b}, layers.Multiply()([a, b]))


def dict_tokens_mask(seed=11):
    seeded(seed)
    t = keras.Input((20,), name="tokens")
    m = keras.Input((20,), name="mask")
    x = layers.Multiply()([layers.Dense(16, activation="relu")(t), layers.Dense(16, activation="relu")(m)])
    return keras.Model({"tokens": t, "mask": m}, layers.Dense(1, activation="sigmoid")(x))


def dict_shared(seed=12):
    seeded(seed)
    a = keras.Input((10,), name="branch_a")
    b = keras.Input((10,), name="branch_b")
    shared = layers.Dense(8, activation="relu")
    model = keras.Model({"branch_a": a, "branch_b": b}, layers.Add()([shared(a), shared(b)]))
    model.compile("adam", "mse")
    rng = np.random.default_rng(12)
    model.fit({"branch_a": rng.normal(size=(5, 10)), "branch_b": rng.normal(size=(5, 10))},
              rng.normal(size=(5, 8)), epochs=1, verbose=0)
    return model


def dict_multi_output(seed=13):
    seeded(seed)
    a = keras.Input((10,), name="feature_1")
    b = keras.Input((10,), name="feature_2")
    return keras.Model({"feature_1": a, "feature_2": b},
                       [layers.Dense(5, name="output_a")(a), layers.Dense(3, name="output_b")(b)])


def lstm(seed=17):
    """The Keras test file's (unused) `lstm` model: with a dynamic batch, TensorFlow lowers
    it to TensorList ops that LiteRT builtins cannot express."""
    seeded(seed)
    inp = keras.Input((4, 10), name="sequence")
    x = layers.Bidirectional(layers.LSTM(10, return_sequences=True))(inp)
    x = layers.Bidirectional(layers.LSTM(10))(x)
    return keras.Model(inp, layers.Dense(1)(x))


def lambda_layer(seed=18):
    """A Lambda layer is Python code inside the model file: Keras' safe mode refuses it."""
    seeded(seed)
    inp = keras.Input((10,), name="x")
    return keras.Model(inp, layers.Lambda(lambda t: t * 2.0)(layers.Dense(4)(inp)))


def any_size_image(seed=19):
    """Dynamic spatial dimensions, for the recipe's `image_size` to fix."""
    seeded(seed)
    inp = keras.Input((None, None, 3), name="image")
    x = layers.Conv2D(8, 3, activation="relu")(inp)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(4, activation="softmax")(x))


def main(out):
    os.makedirs(out, exist_ok=True)
    models = {
        "sequential": sequential(),
        "functional": functional(),
        "multi_output": multi_output(),
        "two_inputs": two_inputs(("input_1", "input_2")),
        "two_inputs_xy": two_inputs(("x", "y")),
        "dict_two_inputs": dict_two_inputs(),
        "conv_small": conv([32], 14),
        "conv_large": conv([64, 64], 15),
        "named": named(),
        "named_functional": named_functional(),
        "concat_inputs": concat_inputs(),
        "shared_multi_output": shared_multi_output(),
        "dict_concat": dict_concat(),
        "dict_multiply": dict_multiply(),
        "dict_tokens_mask": dict_tokens_mask(),
        "dict_shared": dict_shared(),
        "dict_multi_output": dict_multi_output(),
        "lstm": lstm(),
        "lambda_layer": lambda_layer(),
        "any_size_image": any_size_image(),
    }
    for name, model in models.items():
        model.save(os.path.join(out, f"{name}.keras"))
    rng = np.random.default_rng(0)
    np.savez(os.path.join(out, "calib_10.npz"), input_layer=rng.normal(size=(10, 10)).astype("float32"))
    np.savez(os.path.join(out, "calib_conv.npz"), input_layer=rng.normal(size=(5, 28, 28, 3)).astype("float32"))
    with open(os.path.join(out, "READY"), "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main(sys.argv[1])
