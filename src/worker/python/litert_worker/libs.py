"""The heavy libraries, imported once per worker process, and the versions that produced
an artifact."""

import sys


INT_DTYPES = {"int8", "uint8", "int16", "int32", "int64"}


_TF = None


def tf_modules():
    """Import TensorFlow and Keras once per worker process."""
    global _TF
    if _TF is None:
        import numpy as np
        import tensorflow as tf
        import keras

        _TF = (np, tf, keras)
    return _TF


_VERSIONS = None


def versions():
    global _VERSIONS
    if _VERSIONS is None:
        from importlib import metadata

        found = {}
        for name in ("tensorflow", "keras", "keras-hub", "ai-edge-litert", "numpy", "h5py"):
            try:
                found[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                pass
        found["python"] = sys.version.split()[0]
        _VERSIONS = found
    return _VERSIONS
