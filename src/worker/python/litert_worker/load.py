"""Stage `load`: the Keras model from each kind of model source, and the opt-ins that guard
code (factories, custom objects) and unsafe deserialization."""

import contextlib
import importlib.util
import json
import os
import re
import sys
import zipfile

from .libs import tf_modules
from .protocol import BuildError


def import_file(path, allow_code):
    if not allow_code:
        raise BuildError("code_not_allowed", f"running `{path}` needs --allow-code")
    spec = importlib.util.spec_from_file_location(f"litert_user_{abs(hash(path))}", path)
    if spec is None or spec.loader is None:
        raise BuildError("load", f"cannot import `{path}`")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(path))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    return module


def call_factory(callable_plan, allow_code):
    module = import_file(callable_plan["file"], allow_code)
    fn = getattr(module, callable_plan["function"], None)
    if fn is None:
        raise BuildError("load", f"`{callable_plan['file']}` has no `{callable_plan['function']}`")
    return fn(**(callable_plan.get("args") or {}))


def custom_objects(plans, allow_code):
    objects = {}
    for plan in plans or []:
        module = import_file(plan["file"], allow_code)
        obj = getattr(module, plan["function"], None)
        if obj is None:
            raise BuildError("load", f"`{plan['file']}` has no `{plan['function']}`")
        objects[plan["function"]] = obj
    return objects


# Keras reads the JSON entries of a `.keras` whole; real configs are a few MB even for
# billion-parameter models, so anything past this is a decompression bomb.
MAX_JSON_ENTRY = 64 * 2**20


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def check_keras_archive(path):
    """A `.keras` file is a zip (config.json, metadata.json, model.weights.h5). Refuse what
    is not one, and entries that inflate past what loading them could afford, before Keras
    reads anything. The sizes are the archive's own; Python's zip reader never inflates an
    entry past its declared size, so a lying header cannot get around this."""
    if os.path.isdir(path):
        return
    if not zipfile.is_zipfile(path):
        raise BuildError(
            "not_a_keras_archive",
            f"`{path}` is not a `.keras` model: a `.keras` file is a zip archive, and this one is not",
        )
    limit = int(os.environ.get("LITERT_WORKER_MEMORY") or 0)
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise BuildError("not_a_keras_archive", f"`{path}` is not a readable `.keras` archive: {e}") from e
    for info in entries:
        is_json = info.filename.endswith(".json")
        bound = MAX_JSON_ENTRY if is_json else limit
        if bound and info.file_size > bound:
            why = "the limit for a Keras config" if is_json else "the worker's memory limit (LITERT_WORKER_MEMORY)"
            raise BuildError(
                "archive_too_large",
                f"`{path}`: entry `{info.filename}` inflates to {_size(info.file_size)} "
                f"({_size(info.compress_size)} compressed), over {why} of {_size(bound)}",
            )


def check_json_file(path):
    size = os.path.getsize(path)
    if size > MAX_JSON_ENTRY:
        raise BuildError(
            "archive_too_large",
            f"`{path}` is {_size(size)}, over the limit for a Keras config of {_size(MAX_JSON_ENTRY)}",
        )


@contextlib.contextmanager
def unsafe_refused(allow_unsafe):
    """Keras' safe mode for every format, with one clear error when it refuses code."""
    from keras.src.saving.serialization_lib import SafeModeScope

    try:
        with SafeModeScope(not allow_unsafe):
            yield
    except ValueError as e:
        if "safe_mode" in str(e) or "lambda" in str(e).lower():
            raise BuildError(
                "unsafe_model",
                "the model file contains Python code (a `Lambda` layer), which Keras' safe mode refuses to load",
            ) from e
        raise


def load_model(build):
    np, tf, keras = tf_modules()
    m = build.plan["model"]
    kind = m["kind"]
    if kind == "keras":
        objs = custom_objects(m.get("custom_objects"), build.allow_code)
        check_keras_archive(m["path"])
        with unsafe_refused(build.allow_unsafe):
            return keras.saving.load_model(m["path"], custom_objects=objs, safe_mode=not build.allow_unsafe)
    if kind == "h5":
        objs = custom_objects(m.get("custom_objects"), build.allow_code)
        with unsafe_refused(build.allow_unsafe):
            return keras.saving.load_model(
                m["path"], custom_objects=objs, compile=False, safe_mode=not build.allow_unsafe
            )
    if kind == "saved_model":
        return saved_model_as_keras(m["path"])
    if kind == "weights":
        arch = m["architecture"]
        if arch["kind"] == "config":
            path = arch["path"]
            if path.endswith(".keras"):
                check_keras_archive(path)
                with unsafe_refused(build.allow_unsafe):
                    model = keras.saving.load_model(path, safe_mode=not build.allow_unsafe)
            else:
                check_json_file(path)
                objs = custom_objects(m.get("custom_objects"), build.allow_code)
                with open(path, encoding="utf-8") as f, unsafe_refused(build.allow_unsafe):
                    model = keras.models.model_from_json(f.read(), custom_objects=objs)
        else:
            model = call_factory(arch["factory"], build.allow_code)
        model.load_weights(m["path"])
        return model
    if kind == "preset":
        g = build.plan.get("generation") or {}
        return load_preset(m, stored_dtype=g.get("writer") == "native")
    if kind == "factory":
        model = call_factory(m["factory"], build.allow_code)
        if not isinstance(model, keras.Model):
            raise BuildError("load", f"the factory returned {type(model).__name__}, not a keras.Model")
        return model
    raise BuildError("load", f"unknown model kind `{kind}`")


def saved_model_as_keras(path):
    """Wrap a SavedModel's serving signature in a Keras model with named inputs."""
    np, tf, keras = tf_modules()
    loaded = tf.saved_model.load(path)
    if "serving_default" not in loaded.signatures:
        raise BuildError("load", f"`{path}` has no `serving_default` signature")
    fn = loaded.signatures["serving_default"]
    _, kw = fn.structured_input_signature
    inputs = {}
    for name, spec in sorted(kw.items()):
        shape = list(spec.shape)
        inputs[name] = keras.Input(shape=shape[1:], batch_size=shape[0], dtype=spec.dtype.name, name=name)
    layer = keras.layers.TFSMLayer(path, call_endpoint="serving_default")
    if len(inputs) == 1:
        (only,) = inputs.values()
        outputs = layer(only)
        return keras.Model(only, outputs)
    outputs = layer(inputs)
    return keras.Model(inputs, outputs)


def load_preset(m, stored_dtype=False):
    """The preset's task model. `stored_dtype`: a preset on disk stored in a half-precision
    dtype keeps its variables in it, computing in float32 (the model the native LLM writer's
    check runs), where KerasHub would make float32 copies of every weight."""
    import keras_hub

    task = m["task"]
    cls = getattr(keras_hub.models, task, None)
    if cls is None:
        raise BuildError("load", f"keras_hub has no task class `{task}`")
    preset = m["preset"]
    source = preset.get("path") or preset.get("name")
    args = dict(m.get("args") or {})
    if stored_dtype and "path" in preset and "dtype" not in args:
        stored = _stored_dtype(preset["path"])
        if stored in ("bfloat16", "float16"):
            args["dtype"] = _stored_in(stored)
    try:
        with large_weights_read_in_slices(zero_init=args.get("load_weights", True)):
            model = cls.from_preset(source, **args)
    except Exception as e:  # noqa: BLE001 - classify download failures for a clear hint
        text = f"{type(e).__name__}: {e}"
        if "path" not in preset and re.search(
            r"(Connection|Resolve|resolve|network|Max retries|Temporary failure|getaddrinfo|urlopen|HTTP)", text
        ):
            raise BuildError("network", f"cannot download preset `{source}`: no network access to the preset hub") from e
        raise
    if m.get("lora"):
        with_adapter(model, m["lora"])
    return model


def with_adapter(model, path):
    """Load the LoRA adapter at `path` into `model`'s backbone, as KerasHub's fine-tuning
    workflow does (`enable_lora` at the adapter's rank, then its factors)."""
    backbone = getattr(model, "backbone", None)
    if backbone is None or not hasattr(backbone, "load_lora_weights"):
        raise BuildError("load", f"`{type(model).__name__}` has no KerasHub backbone to load a LoRA adapter into")
    try:
        backbone.load_lora_weights(path)
    except Exception as e:  # noqa: BLE001 - Keras' own words, with the file named
        raise BuildError("load", f"the LoRA adapter `{path}` could not be loaded into the preset: {type(e).__name__}: {e}") from e


def _stored_dtype(path):
    """The dtype policy name a preset's backbone was saved with (`config.json`), or None."""
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
            dtype = json.load(f).get("config", {}).get("dtype")
    except (OSError, ValueError):
        return None
    if isinstance(dtype, dict):
        dtype = dtype.get("config", {}).get("name")
    return dtype if isinstance(dtype, str) else None


def _stored_in(dtype):
    """A dtype policy with variables in `dtype` and float32 computations: Keras casts each
    variable to float32 where a layer reads it, so the outputs are those of a float32 model
    loaded from the same preset (checked in tests/generation.rs) at half its memory."""
    np, tf, keras = tf_modules()

    class StoredDtypePolicy(keras.DTypePolicy):
        def _parse_name(self, name):
            return "float32", name

    return StoredDtypePolicy(dtype)


# Variables at least this large are read from a `.weights.h5` and assigned a slice at a time.
SLICED_BYTES = 64 << 20


class _SlicedDataset:
    """A large variable of a `.weights.h5` still on disk: `Variable.assign` copies it in a
    slice at a time; anything else that takes it as an array reads it whole. Keras stores
    bfloat16 as opaque 2-byte values marked `dtype: bfloat16` (real Gemma presets); they
    are read as `ml_dtypes.bfloat16`, as Keras reads them."""

    def __init__(self, dataset):
        import ml_dtypes
        import numpy as np

        self.dataset = dataset
        self.shape = dataset.shape
        self.bfloat16 = dataset.attrs.get("dtype") == "bfloat16"
        self.dtype = np.dtype(ml_dtypes.bfloat16) if self.bfloat16 else dataset.dtype

    def read(self, start=None, stop=None):
        value = self.dataset[start:stop] if start is not None else self.dataset[()]
        return value.view(self.dtype) if self.bfloat16 else value

    def __array__(self, dtype=None, copy=None):
        value = self.read()
        return value if dtype is None else value.astype(dtype)


@contextlib.contextmanager
def large_weights_read_in_slices(zero_init):
    """While a preset loads, its large variables go from the `.weights.h5` into the model a
    slice at a time, and (`zero_init`, when the weights file is loaded) start as zeros.

    Keras draws random initial values for every variable (several transient copies of the
    largest one), then reads each variable whole into numpy and converts that to a tensor
    before assigning it: two more. For a Gemma-2B-width preset the largest is its 2 GB
    embedding, and loading was the export's peak (docs/llm.md#memory). Only plain
    single-file stores are read this way; a value Keras does anything else with is read
    whole, as before. Zeros are safe because loading refuses a file that does not cover
    every variable of a layer."""
    np, tf, keras = tf_modules()
    from keras.src.backend.common.variables import Variable
    from keras.src.backend.tensorflow.core import Variable as TfVariable
    from keras.src.backend.common.stateless_scope import in_stateless_scope
    from keras.src.saving.saving_lib import H5IOStore
    from keras.src.backend import standardize_dtype

    read, assign = H5IOStore.__getitem__, Variable.assign

    def lazy_read(self, key):
        if type(self) is H5IOStore and key in self._h5_entry_group:
            dataset = self._h5_entry_group[key]
            large = dataset.ndim >= 1 and dataset.size * dataset.dtype.itemsize >= SLICED_BYTES
            bfloat16 = dataset.attrs.get("dtype") == "bfloat16" and dataset.dtype.itemsize == 2
            plain = "dtype" not in dataset.attrs and dataset.dtype.kind == "f"
            if large and (plain or bfloat16):
                return _SlicedDataset(dataset)
        return read(self, key)

    def sliced_assign(self, value):
        if (
            isinstance(value, _SlicedDataset)
            and tuple(value.shape) == tuple(self.shape)
            and standardize_dtype(self.dtype) == standardize_dtype(value.dtype)
            and isinstance(getattr(self, "_value", None), tf.Variable)
            and not in_stateless_scope()
        ):
            row_bytes = max(1, value.dtype.itemsize * int(np.prod(value.shape[1:])))
            step = max(1, SLICED_BYTES // row_bytes)
            rows = value.shape[0]
            for start in range(0, rows, step):
                stop = min(start + step, rows)
                # The raw op writes into the variable's buffer; `variable[a:b].assign` reads
                # the variable first and so copies all of it for every slice.
                tf.raw_ops.ResourceStridedSliceAssign(
                    ref=self._value.handle, begin=[start], end=[stop], strides=[1], value=value.read(start, stop)
                )
            return self
        return assign(self, value)

    init = TfVariable._initialize_with_initializer

    def zeros_init(self, initializer):
        size = int(np.prod(self._shape)) * np.dtype(self._dtype).itemsize if self._shape else 0
        if size < SLICED_BYTES:
            return init(self, initializer)
        self._initialize(lambda: tf.zeros(self._shape, dtype=self._dtype))

    H5IOStore.__getitem__, Variable.assign = lazy_read, sliced_assign
    if zero_init:
        TfVariable._initialize_with_initializer = zeros_init
    try:
        yield
    finally:
        H5IOStore.__getitem__, Variable.assign = read, assign
        TfVariable._initialize_with_initializer = init
