"""Stage `load`: the Keras model from each kind of model source, and the opt-ins that guard
code (factories, custom objects) and unsafe deserialization."""

import importlib.util
import os
import re
import sys

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


def load_model(build):
    np, tf, keras = tf_modules()
    m = build.plan["model"]
    kind = m["kind"]
    if kind == "keras":
        objs = custom_objects(m.get("custom_objects"), build.allow_code)
        try:
            return keras.saving.load_model(m["path"], custom_objects=objs, safe_mode=not build.allow_unsafe)
        except ValueError as e:
            if "safe_mode" in str(e) or "lambda" in str(e).lower():
                raise BuildError(
                    "unsafe_model",
                    "the model file contains Python code (a `Lambda` layer), which Keras' safe mode refuses to load",
                ) from e
            raise
    if kind == "h5":
        objs = custom_objects(m.get("custom_objects"), build.allow_code)
        return keras.saving.load_model(m["path"], custom_objects=objs, compile=False)
    if kind == "saved_model":
        return saved_model_as_keras(m["path"])
    if kind == "weights":
        arch = m["architecture"]
        if arch["kind"] == "config":
            path = arch["path"]
            if path.endswith(".keras"):
                model = keras.saving.load_model(path, safe_mode=not build.allow_unsafe)
            else:
                with open(path, encoding="utf-8") as f:
                    model = keras.models.model_from_json(
                        f.read(), custom_objects=custom_objects(m.get("custom_objects"), build.allow_code)
                    )
        else:
            model = call_factory(arch["factory"], build.allow_code)
        model.load_weights(m["path"])
        return model
    if kind == "preset":
        return load_preset(m)
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


def load_preset(m):
    import keras_hub

    task = m["task"]
    cls = getattr(keras_hub.models, task, None)
    if cls is None:
        raise BuildError("load", f"keras_hub has no task class `{task}`")
    preset = m["preset"]
    source = preset.get("path") or preset.get("name")
    try:
        return cls.from_preset(source, **(m.get("args") or {}))
    except Exception as e:  # noqa: BLE001 - classify download failures for a clear hint
        text = f"{type(e).__name__}: {e}"
        if "path" not in preset and re.search(
            r"(Connection|Resolve|resolve|network|Max retries|Temporary failure|getaddrinfo|urlopen|HTTP)", text
        ):
            raise BuildError("network", f"cannot download preset `{source}`: no network access to the preset hub") from e
        raise
