"""A calibration generator (runs code: `litert apply --allow-code`): digit-like samples,
seeded, one {input name: array} dict per sample."""

import numpy as np


def samples(count=40, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield {"pixels": (rng.random(64) < 0.3).astype(np.float32) * rng.random(64).astype(np.float32)}


def not_a_generator():
    return 42
