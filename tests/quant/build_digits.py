"""A small real classifier for the quantization tests and the comparison table: an MLP
trained on the handwritten digits in `data/digits.npz` (1,797 8x8 images from
scikit-learn's copy of the UCI data set), plus its calibration and held-out data.

    python tests/quant/build_digits.py OUT_DIR [--mobilenet]

Writes OUT_DIR/digits.keras, calib.npz (the training split, `pixels`), test.npz (the
held-out split: `pixels` and `label`), npy/pixels.npy, data that must be refused
(bad_*.npz), and READY last. With --mobilenet also mobilenet_v2.keras (224x224, random
weights) and mobilenet_calib.npz, for latency where compute dominates. Seeded and
deterministic.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEST_FRACTION = 0.2


def split():
    with np.load(os.path.join(ROOT, "data", "digits.npz")) as d:
        x = d["images"].astype(np.float32) / 16.0
        y = d["labels"].astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    n_test = int(len(x) * TEST_FRACTION)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def digits(out):
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    x_train, y_train, x_test, y_test = split()
    inputs = keras.Input((64,), name="pixels")
    h = keras.layers.Dense(128, activation="relu")(inputs)
    h = keras.layers.Dense(64, activation="relu")(h)
    outputs = keras.layers.Dense(10, activation="softmax")(h)
    model = keras.Model(inputs, outputs, name="digits")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=40, batch_size=32, verbose=0, shuffle=True)
    _, acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"digits MLP: held-out accuracy {acc:.4f} on {len(x_test)} samples", file=sys.stderr)
    model.save(os.path.join(out, "digits.keras"))
    np.savez(os.path.join(out, "calib.npz"), pixels=x_train)
    np.savez(os.path.join(out, "test.npz"), pixels=x_test, label=y_test)
    os.makedirs(os.path.join(out, "npy"), exist_ok=True)
    np.save(os.path.join(out, "npy", "pixels.npy"), x_train[:64])
    # Data that must be refused before conversion, each for its own reason.
    np.savez(os.path.join(out, "bad_shape.npz"), pixels=x_train[:8, :63])
    np.savez(os.path.join(out, "bad_name.npz"), image=x_train[:8])
    np.savez(os.path.join(out, "bad_empty.npz"), pixels=np.zeros((0, 64), np.float32))
    with open(os.path.join(out, "bad_not_npz.npz"), "wb") as f:
        f.write(b"this is not a zip archive")


def mobilenet(out):
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(224, 224, 3), weights=None, classes=10)
    inputs = keras.Input((224, 224, 3), name="image")
    keras.Model(inputs, model(inputs), name="mobilenet_v2").save(os.path.join(out, "mobilenet_v2.keras"))
    rng = np.random.default_rng(1)
    np.savez(os.path.join(out, "mobilenet_calib.npz"),
             image=rng.uniform(-1.0, 1.0, size=(16, 224, 224, 3)).astype(np.float32))


def main(out, with_mobilenet):
    os.makedirs(out, exist_ok=True)
    digits(out)
    if with_mobilenet:
        mobilenet(out)
    with open(os.path.join(out, "READY"), "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main(sys.argv[1], "--mobilenet" in sys.argv[2:])
