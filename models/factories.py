"""Python factories the example recipes name with `model: {factory: ...}`.

A factory returns a `keras.Model`. Recipes that use one run code, so `litert apply` needs
`--allow-code` for them.
"""

import keras
from keras import layers


class SubclassedMLP(keras.Model):
    """A subclassed model: Keras cannot infer its signature, so the recipe gives one."""

    def __init__(self, hidden=32, classes=3, **kwargs):
        super().__init__(**kwargs)
        self.hidden = layers.Dense(hidden, activation="relu")
        self.norm = layers.BatchNormalization()
        self.out = layers.Dense(classes, activation="softmax")

    def call(self, x, training=False):
        return self.out(self.norm(self.hidden(x), training=training))


def subclassed_mlp(hidden=32, classes=3, seed=0):
    keras.utils.set_random_seed(seed)
    model = SubclassedMLP(hidden=hidden, classes=classes)
    model(keras.ops.zeros((1, 10)))
    return model
