"""Model factories for the Keras export test cases that need a subclassed model."""

import keras
from keras import layers


def default_layers():
    """The Keras test file's default stack: Dense(10, relu) → BatchNorm → Dense(1, sigmoid)."""
    return [layers.Dense(10, activation="relu"), layers.BatchNormalization(), layers.Dense(1, activation="sigmoid")]


class CustomModel(keras.Model):
    def __init__(self, layer_list):
        super().__init__()
        self.layer_list = layer_list

    def call(self, x):
        for layer in self.layer_list:
            x = layer(x)
        return x


def subclass_model(seed=16):
    keras.utils.clear_session()
    keras.utils.set_random_seed(seed)
    model = CustomModel(default_layers())
    model.build((None, 10))
    model(keras.ops.zeros((1, 10), dtype="float32"))
    return model


class TwoArguments(keras.Model):
    """A subclassed model whose `call` takes two tensors."""

    def __init__(self):
        super().__init__()
        self.left = layers.Dense(4)
        self.right = layers.Dense(4)

    def call(self, x, y):
        return self.left(x) + self.right(y)


def two_argument_model(seed=20):
    keras.utils.clear_session()
    keras.utils.set_random_seed(seed)
    model = TwoArguments()
    model(keras.ops.zeros((1, 10)), keras.ops.zeros((1, 5)))
    return model
