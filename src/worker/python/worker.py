"""litert's conversion worker: Keras 3 + TensorFlow behind a JSON-lines protocol.

Embedded in the `litert` binary and run as `python -u -B worker.py`. It reads one request
per line on stdin and writes one event per line on the protocol channel. It receives fully
resolved build plans as data and never runs code from a recipe unless the request says the
user allowed it. TensorFlow is imported once and serves every build of one `litert apply`.

Protocol (version 1):
  -> {"op": "build", "id": ID, "plan": PLAN, "temp_output": PATH, "allow_code": B, "allow_unsafe": B}
  -> {"op": "shutdown"}
  <- {"event": "hello", "protocol": 1, "python": "3.11.7", "pid": N}
  <- {"event": "progress", "id": ID, "stage": STAGE, "message": TEXT}
  <- {"event": "result", "id": ID, ...}
  <- {"event": "error", "id": ID, "stage": STAGE, "kind": KIND, "message": TEXT, "traceback": TAIL, ...}
  <- {"event": "bye"}
"""

import os
import sys

# The protocol gets its own copy of fd 1; fd 1 itself then points at stderr, so `print`
# and TensorFlow's C++ logging can never corrupt a protocol line.
_PROTO = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
os.dup2(2, 1)
sys.stdout = sys.stderr

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import json  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import importlib.util  # noqa: E402
import re  # noqa: E402

PROTOCOL = 1


def emit(event):
    _PROTO.write(json.dumps(event, default=_jsonable) + "\n")
    _PROTO.flush()


def _jsonable(value):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:
        pass
    return str(value)


class BuildError(Exception):
    """An error the user can act on, with a kind that litert turns into a hint."""

    def __init__(self, kind, message, **extra):
        super().__init__(message)
        self.kind = kind
        self.extra = extra


class Build:
    def __init__(self, request):
        self.id = request["id"]
        self.plan = request["plan"]
        self.temp_output = request["temp_output"]
        self.allow_code = bool(request.get("allow_code"))
        self.allow_unsafe = bool(request.get("allow_unsafe"))
        self.stage = "start"
        self.timings = {}
        self._t = time.perf_counter()

    def progress(self, stage, message=""):
        now = time.perf_counter()
        self.timings[self.stage] = round(now - self._t, 4)
        self._t = now
        self.stage = stage
        emit({"event": "progress", "id": self.id, "stage": stage, "message": message})


# --------------------------------------------------------------------------- imports

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


# --------------------------------------------------------------------------- model loading


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


# --------------------------------------------------------------------------- signatures

INT_DTYPES = {"int8", "uint8", "int16", "int32", "int64"}


def model_inputs(model):
    """The model's declared inputs as (structure, [(key, name, shape, dtype)])."""
    try:
        struct = model._inputs_struct  # Functional models keep the call structure.
    except AttributeError:
        struct = None
    inputs = getattr(model, "inputs", None)
    if not inputs:
        return None, []
    if isinstance(struct, dict):
        items = [(k, v) for k, v in struct.items()]
        kind = "dict"
    elif isinstance(struct, (list, tuple)) and len(inputs) > 1:
        items = [(None, v) for v in inputs]
        kind = "list"
    else:
        items = [(None, inputs[0])]
        kind = "single"
    out = []
    for key, tensor in items:
        name = tensor.name
        out.append({"key": key, "name": name, "shape": list(tensor.shape), "dtype": str(tensor.dtype)})
    return kind, out


def build_signature(build, model):
    """Keras InputSpecs with explicit names: the artifact's signature never depends on
    process history (`keras_tensor_N`)."""
    np, tf, keras = tf_modules()
    inputs = build.plan["inputs"]
    kind, declared = model_inputs(model)
    if inputs.get("signature"):
        specs = [dict(name=s["name"], shape=list(s["shape"]), dtype=s["dtype"]) for s in inputs["signature"]]
        if kind == "dict":
            by_name = {d["name"]: d for d in declared}
            keys = {d["name"]: d["key"] for d in declared}
            unknown = [s["name"] for s in specs if s["name"] not in by_name and s["name"] not in keys.values()]
            if unknown:
                raise BuildError(
                    "signature",
                    f"input_signature names {unknown}, but the model's inputs are {sorted(by_name)}",
                    model_inputs=sorted(by_name),
                )
        elif declared and len(specs) != len(declared):
            raise BuildError(
                "signature",
                f"input_signature has {len(specs)} inputs, but the model takes {len(declared)}: "
                f"{[d['name'] for d in declared]}",
                model_inputs=[d["name"] for d in declared],
            )
        for i, s in enumerate(specs):
            s["key"] = declared[i]["key"] if kind == "dict" and i < len(declared) else None
            if kind == "dict":
                s["key"] = next((d["key"] for d in declared if d["name"] == s["name"]), s["name"])
        structure = kind or "positional"
    else:
        if not declared:
            return inferred_signature(model)
        specs = [dict(key=d["key"], name=d["name"], shape=list(d["shape"]), dtype=d["dtype"]) for d in declared]
        overrides = inputs.get("overrides") or {}
        names = [s["name"] for s in specs]
        unknown = [n for n in overrides if n not in names]
        if unknown:
            raise BuildError(
                "signature",
                f"`inputs` names {unknown}, but the model's inputs are {names}",
                model_inputs=names,
            )
        for s in specs:
            o = overrides.get(s["name"]) or {}
            if o.get("shape") is not None:
                s["shape"] = list(o["shape"])
            if o.get("dtype") is not None:
                s["dtype"] = o["dtype"]
        structure = kind
    for s in specs:
        shape = s["shape"]
        if inputs.get("batch_size") and shape:
            shape[0] = inputs["batch_size"]
        if inputs.get("sequence_length") and s["dtype"] in INT_DTYPES and len(shape) == 2:
            shape[1] = inputs["sequence_length"]
        if inputs.get("image_size") and len(shape) == 4 and s["dtype"] not in INT_DTYPES:
            shape[1], shape[2] = inputs["image_size"]
    return structure, specs


def inferred_signature(model):
    """A subclassed model declares no inputs; Keras infers them from the shapes it was
    built with. Name them `args_N` explicitly, which is what TensorFlow would call them, so
    the names are stable."""
    np, tf, keras = tf_modules()
    try:
        from keras.src.export.export_utils import get_input_signature

        inferred = keras.tree.flatten(get_input_signature(model))
    except Exception as e:  # noqa: BLE001
        raise BuildError(
            "signature",
            f"cannot infer the input signature ({first_lines(str(e), 1)}): give `input_signature` in the recipe",
        ) from e
    specs = [
        dict(key=None, name=f"args_{i}", shape=list(spec.shape), dtype=str(spec.dtype))
        for i, spec in enumerate(inferred)
    ]
    return "positional", specs


def keras_signature(structure, specs):
    np, tf, keras = tf_modules()
    made = [keras.InputSpec(shape=tuple(s["shape"]), dtype=s["dtype"], name=s["name"]) for s in specs]
    if structure == "dict":
        return [{s["key"]: m for s, m in zip(specs, made)}]
    if structure == "list":
        return [made]
    if structure == "single":
        return made[:1]
    return made  # positional arguments of a subclassed model's call


# --------------------------------------------------------------------------- calibration


class Data:
    """Samples read from one data source (calibration or held-out accuracy data): a list of
    {input name: array} dicts in source order, the file each came from (for errors), and
    arrays that are not inputs (labels)."""

    def __init__(self, kind, samples, origins, extras=None):
        self.kind = kind
        self.samples = samples
        self.origins = origins
        self.extras = extras or {}


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def read_data(src, build, model, specs, limit, what):
    """Read every sample a source holds (a generator: at most `limit`), checking it is
    readable and not empty. Errors name the file."""
    np, tf, keras = tf_modules()
    names = [s["name"] for s in specs]
    kind = src["kind"]
    if kind in ("npz", "npy"):
        arrays, origin_of = {}, {}
        if kind == "npz":
            path = src["path"]
            try:
                with open(path, "rb") as f:
                    if f.read(4) != b"PK\x03\x04":
                        raise ValueError("not an .npz archive (a zip of .npy files, as `numpy.savez` writes)")
                with np.load(path, allow_pickle=False) as data:
                    if not hasattr(data, "files"):
                        raise ValueError("not an .npz archive")
                    arrays = {k: data[k] for k in data.files}
            except Exception as e:  # noqa: BLE001
                raise BuildError(what, f"cannot read {what} data `{path}`: {first_lines(str(e), 1)}", file=path) from e
            origin_of = {k: path for k in arrays}
        else:
            for name, path in src["files"].items():
                try:
                    arrays[name] = np.load(path, allow_pickle=False)
                except Exception as e:  # noqa: BLE001
                    raise BuildError(what, f"cannot read {what} data `{path}`: {first_lines(str(e), 1)}",
                                     file=path) from e
                origin_of[name] = path
        where = src.get("path") or ", ".join(sorted(set(origin_of.values())))
        missing = [n for n in names if n not in arrays]
        if missing:
            raise BuildError(
                what,
                f"`{where}` has no array for input(s) {missing}; it has {sorted(arrays)}",
                file=where,
            )
        for n in names:
            if arrays[n].ndim == 0:
                raise BuildError(what, f"array `{n}` in `{origin_of[n]}` is a scalar; give samples first",
                                 file=origin_of[n])
        counts = {n: len(arrays[n]) for n in names}
        if len(set(counts.values())) > 1:
            raise BuildError(what, f"the inputs of `{where}` hold different sample counts: {counts}", file=where)
        count = min(counts.values()) if counts else 0
        if count == 0:
            raise BuildError(what, f"{what} data `{where}` is empty (0 samples)", file=where)
        samples = [{n: arrays[n][i] for n in names} for i in range(count)]
        origins = [{n: origin_of[n] for n in names}] * count
        extras = {k: v for k, v in arrays.items() if k not in names}
        extras_origin = {k: origin_of[k] for k in extras}
        data = Data(kind, samples, origins, extras)
        data.extras_origin = extras_origin
        return data
    if kind == "images":
        return image_data(src, specs, what)
    if kind == "prompts":
        return prompt_data(src, build, model, specs, what)
    if kind == "generator":
        gen = call_factory(src["generator"], build.allow_code)
        where = f"{src['generator']['file']}:{src['generator']['function']}"
        samples = []
        try:
            for item in gen:
                if not isinstance(item, dict):
                    raise BuildError(what, f"`{where}` yielded {type(item).__name__}, not a dict of input name to array",
                                     file=src["generator"]["file"])
                samples.append(item)
                if len(samples) >= limit:
                    break
        except TypeError as e:
            if "not iterable" in str(e):
                raise BuildError(what, f"`{where}` returned something that is not iterable; make it a generator",
                                 file=src["generator"]["file"]) from e
            raise
        if not samples:
            raise BuildError(what, f"`{where}` yielded no samples", file=src["generator"]["file"])
        return Data(kind, samples, [{n: where for n in names}] * len(samples))
    raise BuildError(what, f"unknown {what} source `{kind}`")


def select(data, count, seed, shuffle):
    """Shuffle (seeded) and split: the first `count` samples, and the rest (held out)."""
    np, tf, keras = tf_modules()
    order = list(range(len(data.samples)))
    if shuffle:
        order = [int(i) for i in np.random.default_rng(seed).permutation(len(order))]
    return order[:count], order[count:]


def conform(data, indices, specs, what):
    """The chosen samples as {input: array with batch dim} in the signature's dtypes, after
    checking shapes and dtypes against the signature."""
    np, tf, keras = tf_modules()
    out = []
    for i in indices:
        sample = data.samples[i]
        fixed = {}
        for s in specs:
            origin = data.origins[i].get(s["name"], "?")
            if s["name"] not in sample:
                raise BuildError(what, f"sample {i} from `{origin}` has no input `{s['name']}`", file=origin)
            arr = np.asarray(sample[s["name"]])
            want_dtype = np.dtype(s["dtype"]) if s["dtype"] != "string" else None
            if want_dtype is not None:
                if arr.dtype.kind in "fc" and want_dtype.kind in "iub":
                    raise BuildError(
                        what,
                        f"input `{s['name']}` from `{origin}` is {arr.dtype}, but the signature says {s['dtype']}: "
                        "float data for an integer input would be truncated",
                        file=origin,
                    )
                if arr.dtype.kind not in "fciub":
                    raise BuildError(
                        what, f"input `{s['name']}` from `{origin}` has dtype {arr.dtype}, not numbers", file=origin
                    )
                arr = arr.astype(want_dtype)
            want = s["shape"]
            if arr.ndim == len(want) - 1:
                arr = arr[None, ...]
            if arr.ndim != len(want) or any(w is not None and w != a for w, a in zip(want, arr.shape)):
                raise BuildError(
                    what,
                    f"sample {i} of input `{s['name']}` from `{origin}` has shape {list(arr.shape)}, "
                    f"but the signature says {[w if w is not None else None for w in want]}",
                    file=origin,
                )
            fixed[s["name"]] = arr
        out.append(fixed)
    return out


def calibration_samples(build, specs, model):
    """The calibration samples (a list of {input name: array with batch dim} dicts, in the
    signature's dtypes) and the held-out rest, with a summary for the report."""
    cal = build.plan.get("calibration")
    if not cal:
        return None, [], None
    data = read_data(cal["source"], build, model, specs, cal["samples"], "calibration")
    chosen, rest = select(data, cal["samples"], cal.get("seed", 0), cal.get("shuffle", True))
    samples = conform(data, chosen, specs, "calibration")
    held_out = conform(data, rest, specs, "calibration")
    summary = {"source": data.kind, "available": len(data.samples), "used": len(samples), "held_out": len(held_out)}
    return samples, held_out, summary


def image_data(src, specs, what):
    np, tf, keras = tf_modules()
    from PIL import Image

    image_specs = [s for s in specs if len(s["shape"]) == 4]
    target = src.get("input") or (image_specs[0]["name"] if len(image_specs) == 1 else None)
    if target is None:
        raise BuildError(what, f"cannot tell which input the images feed; set `{what}.images.input`")
    spec = next((s for s in specs if s["name"] == target), None)
    if spec is None:
        raise BuildError(what, f"`{what}.images.input` names `{target}`, but the inputs are {[s['name'] for s in specs]}")
    channels = spec["shape"][-1] if len(spec["shape"]) == 4 else 3
    if channels not in (1, 3):
        raise BuildError(what, f"input `{target}` has {channels} channels; images give 1 (grey) or 3 (colour)")
    files = []
    for root, dirs, names in os.walk(src["dir"]):
        dirs.sort()
        for n in names:
            if n.lower().endswith(IMAGE_EXTENSIONS):
                files.append(os.path.join(root, n))
    # The same order as litert's digest: by path relative to the folder, with `/`.
    files.sort(key=lambda p: os.path.relpath(p, src["dir"]).replace(os.sep, "/"))
    if not files:
        raise BuildError(what, f"no images ({', '.join(IMAGE_EXTENSIONS)}) under `{src['dir']}`", file=src["dir"])
    h, w = src["size"]
    mean = np.asarray(src.get("mean") or [0.0], dtype=np.float32)
    std = np.asarray(src.get("std") or [1.0], dtype=np.float32)
    samples = []
    for path in files:
        try:
            with Image.open(path) as im:
                im.load()
                im = im.convert("L" if channels == 1 else "RGB").resize((w, h), Image.BILINEAR)
                arr = np.asarray(im, dtype=np.float32)
        except Exception as e:  # noqa: BLE001
            raise BuildError(what, f"cannot decode image `{path}`: {first_lines(str(e), 1)}", file=path) from e
        if arr.ndim == 2:
            arr = arr[..., None]
        if src.get("channel_order") == "bgr" and channels == 3:
            arr = arr[..., ::-1]
        arr = (arr * src.get("scale", 1.0) - mean) / std
        samples.append({target: arr.astype(np.float32)})
    return Data("images", samples, [{target: p} for p in files])


def prompt_data(src, build, model, specs, what):
    path = src["path"]
    try:
        with open(path, encoding="utf-8") as f:
            prompts = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise BuildError(what, f"cannot read prompts `{path}`: {e}", file=path) from e
    if not prompts:
        raise BuildError(what, f"`{path}` has no prompts (every line is blank)", file=path)
    pre = getattr(model, "preprocessor", None)
    if pre is None:
        raise BuildError(what, "the preset has no preprocessor to tokenize prompts with", file=path)
    length = build.plan["inputs"].get("sequence_length")
    np, tf, keras = tf_modules()
    if hasattr(pre, "generate_preprocess"):
        # Causal LMs: the prompt as generation sees it (start token, no end token).
        batch = pre.generate_preprocess(prompts, sequence_length=length)
    else:
        pre.sequence_length = length
        batch = pre(prompts)
        if isinstance(batch, tuple):
            batch = batch[0]
    batch = {k: np.asarray(v) for k, v in batch.items()}
    names = [s["name"] for s in specs]
    missing = [n for n in names if n not in batch]
    if missing:
        raise BuildError(what, f"the preprocessor gives {sorted(batch)}, not the inputs {missing}", file=path)
    samples = [{n: batch[n][i] for n in names} for i in range(len(prompts))]
    return Data("prompts", samples, [{n: f"{path}:{i + 1}" for n in names} for i in range(len(prompts))])


# --------------------------------------------------------------------------- conversion


def converter_kwargs(build, samples):
    np, tf, keras = tf_modules()
    c = build.plan["converter"]
    kw = {}
    opt = {"DEFAULT": tf.lite.Optimize.DEFAULT, "EXPERIMENTAL_SPARSITY": tf.lite.Optimize.EXPERIMENTAL_SPARSITY,
           "OPTIMIZE_FOR_SIZE": tf.lite.Optimize.OPTIMIZE_FOR_SIZE,
           "OPTIMIZE_FOR_LATENCY": tf.lite.Optimize.OPTIMIZE_FOR_LATENCY}
    ops = {"TFLITE_BUILTINS": tf.lite.OpsSet.TFLITE_BUILTINS, "TFLITE_BUILTINS_INT8": tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
           "SELECT_TF_OPS": tf.lite.OpsSet.SELECT_TF_OPS,
           "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8":
               tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
           "EXPERIMENTAL_STABLEHLO_OPS": tf.lite.OpsSet.EXPERIMENTAL_STABLEHLO_OPS}
    dtypes = {"float32": tf.float32, "float16": tf.float16, "int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16}
    kw["optimizations"] = [opt[o] for o in c["optimizations"]]
    target_spec = {"supported_ops": set(ops[o] for o in c["supported_ops"])}
    if c["supported_types"]:
        target_spec["supported_types"] = [dtypes[t] for t in c["supported_types"]]
    if c.get("experimental_select_user_tf_ops"):
        target_spec["experimental_select_user_tf_ops"] = list(c["experimental_select_user_tf_ops"])
    kw["target_spec"] = target_spec
    if c.get("inference_input_type"):
        kw["inference_input_type"] = dtypes[c["inference_input_type"]]
    if c.get("inference_output_type"):
        kw["inference_output_type"] = dtypes[c["inference_output_type"]]
    kw["allow_custom_ops"] = bool(c["allow_custom_ops"])
    for name, value in (c.get("flags") or {}).items():
        kw[name] = value
    if c["representative_dataset"]:
        if not samples:
            raise BuildError("calibration", "this quantization needs calibration samples, and there are none")

        def representative_dataset():
            for sample in samples:
                yield sample

        kw["representative_dataset"] = representative_dataset
    return kw


UNSUPPORTED_OP = re.compile(r"'((?:tf|tfl|mhlo|stablehlo)\.[A-Za-z0-9_]+)' op")


def convert(build, model, structure, specs, samples):
    np, tf, keras = tf_modules()
    kw = converter_kwargs(build, samples)
    signature = keras_signature(structure, specs)
    try:
        model.export(build.temp_output, format="litert", input_signature=signature, verbose=False, **kw)
    except Exception as e:  # noqa: BLE001
        text = str(e)
        ops = sorted(set(UNSUPPORTED_OP.findall(text)))
        if "neither a custom op nor a flex op" in text or "Select TensorFlow op" in text or (
            ops and ("ConverterError" in type(e).__name__ or "failed to legalize" in text)
        ):
            raise BuildError(
                "unsupported_ops",
                f"the converter cannot express these ops with the allowed op sets: {', '.join(ops) or 'see log'}",
                ops=ops,
            ) from e
        raise
    if not os.path.exists(build.temp_output):
        raise BuildError("convert", "the converter reported success but wrote no file")


# --------------------------------------------------------------------------- parity


def parity(build, model, structure, specs, samples):
    np, tf, keras = tf_modules()
    from ai_edge_litert.interpreter import Interpreter

    p = build.plan["parity"]
    interpreter = Interpreter(model_path=build.temp_output)
    try:
        interpreter.allocate_tensors()
    except RuntimeError as e:
        if "Select TensorFlow op" in str(e) or "Flex" in str(e):
            # Flex ops were opted in; the LiteRT interpreter cannot run them.
            return {"samples": 0, "source": "none", "names_ok": True, "shapes_ok": True, "outputs": [],
                    "ok": True, "skipped": "the artifact has Flex ops, which the LiteRT interpreter cannot run"}
        raise
    signatures = interpreter.get_signature_list()
    if "serving_default" not in signatures:
        raise BuildError("parity", f"the artifact has no `serving_default` signature (has {sorted(signatures)})")
    runner = interpreter.get_signature_runner("serving_default")
    in_details = runner.get_input_details()
    out_details = runner.get_output_details()
    names_ok = sorted(in_details) == sorted(s["name"] for s in specs)
    feeds = list(samples[: p["samples"]]) if samples else []
    if len(feeds) < p["samples"]:
        feeds += random_feeds(specs, p["samples"] - len(feeds), p["seed"])
    stats = {}
    shapes_ok = True
    for feed in feeds:
        lite_in = {}
        for name, arr in feed.items():
            d = in_details[name]
            lite_in[name] = quantize(np, arr, d)
        lite_out = runner(**lite_in)
        ref = keras_outputs(model, structure, specs, feed)
        if set(ref) != set(lite_out):
            # Keras output names are positional (`output_0`) for lists, dict keys otherwise.
            raise BuildError(
                "parity",
                f"output names differ: Keras {sorted(ref)}, LiteRT {sorted(lite_out)}",
            )
        for name, ref_arr in ref.items():
            got = dequantize(np, lite_out[name], out_details[name])
            ref_arr = np.asarray(ref_arr, dtype=np.float64)
            if got.shape != ref_arr.shape:
                shapes_ok = False
                st = stats.setdefault(name, {"max_abs": float("inf"), "sum_abs": 0.0, "n": 0, "violations": 0})
                st["shape_mismatch"] = [list(ref_arr.shape), list(got.shape)]
                continue
            tol = p["tolerance"].get(name) or p["tolerance"]["*"]
            diff = np.abs(got - ref_arr)
            allowed = tol["atol"] + tol["rtol"] * np.abs(ref_arr)
            st = stats.setdefault(name, {"max_abs": 0.0, "sum_abs": 0.0, "n": 0, "violations": 0})
            st["max_abs"] = max(st["max_abs"], float(diff.max()) if diff.size else 0.0)
            st["sum_abs"] += float(diff.sum())
            st["n"] += int(diff.size)
            st["violations"] += int((diff > allowed).sum())
            st["atol"], st["rtol"] = tol["atol"], tol["rtol"]
            st["shape"] = list(got.shape)
    outputs = []
    for name in sorted(stats):
        st = stats[name]
        outputs.append({
            "name": name,
            "shape": st.get("shape"),
            "max_abs_error": st["max_abs"],
            "mean_abs_error": st["sum_abs"] / st["n"] if st["n"] else 0.0,
            "atol": st.get("atol"),
            "rtol": st.get("rtol"),
            "violations": st["violations"],
            "shape_mismatch": st.get("shape_mismatch"),
            "ok": st["violations"] == 0 and "shape_mismatch" not in st,
        })
    return {
        "samples": len(feeds),
        "source": "calibration" if samples else "random",
        "names_ok": names_ok,
        "shapes_ok": shapes_ok,
        "outputs": outputs,
        "ok": names_ok and shapes_ok and all(o["ok"] for o in outputs),
    }


def quantize(np, arr, detail):
    dtype = detail["dtype"]
    scale, zero = detail.get("quantization", (0.0, 0))
    if np.issubdtype(dtype, np.integer) and not np.issubdtype(arr.dtype, np.integer) and scale:
        info = np.iinfo(dtype)
        return np.clip(np.round(arr / scale + zero), info.min, info.max).astype(dtype)
    return arr.astype(dtype)


def dequantize(np, arr, detail):
    scale, zero = detail.get("quantization", (0.0, 0))
    arr = np.asarray(arr)
    if np.issubdtype(arr.dtype, np.integer) and scale:
        return (arr.astype(np.float64) - zero) * scale
    return arr.astype(np.float64)


def keras_outputs(model, structure, specs, feed):
    np, tf, keras = tf_modules()
    if structure == "dict":
        args = [{s["key"]: feed[s["name"]] for s in specs}]
    elif structure == "list":
        args = [[feed[s["name"]] for s in specs]]
    else:
        args = [feed[s["name"]] for s in specs]
    out = model(*args, training=False)
    if isinstance(out, dict):
        return {k: np.asarray(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return {f"output_{i}": np.asarray(v) for i, v in enumerate(out)}
    return {"output_0": np.asarray(out)}


# --------------------------------------------------------------------------- accuracy


def random_feeds(specs, count, seed):
    """Seeded random inputs: normal floats, 0/1 integers (valid token ids and masks)."""
    np, tf, keras = tf_modules()
    rng = np.random.default_rng(seed)
    feeds = []
    for _ in range(count):
        feed = {}
        for s in specs:
            shape = [d if d is not None else (1 if i == 0 else 4) for i, d in enumerate(s["shape"])]
            if s["dtype"] in INT_DTYPES:
                feed[s["name"]] = rng.integers(0, 2, size=shape).astype(s["dtype"])
            elif s["dtype"] == "bool":
                feed[s["name"]] = rng.integers(0, 2, size=shape).astype(bool)
            else:
                feed[s["name"]] = rng.normal(size=shape).astype(s["dtype"])
        feeds.append(feed)
    return feeds


def accuracy_labels(plan, data, chosen):
    """The integer label of each chosen sample, when the recipe names a label array."""
    np, tf, keras = tf_modules()
    name = plan.get("labels")
    if not name:
        return None
    where = plan["source"]["source"].get("path") or ", ".join(sorted(set(getattr(data, "extras_origin", {}).values())))
    if name not in data.extras:
        raise BuildError("accuracy", f"`{where}` has no label array `{name}`; it has {sorted(data.extras)}",
                         file=where)
    arr = np.asarray(data.extras[name])
    if arr.ndim == 0 or len(arr) != len(data.samples) or arr.dtype.kind not in "iub":
        raise BuildError("accuracy", f"labels `{name}` in `{where}` must be one integer per sample "
                         f"({len(data.samples)}); got {arr.dtype} {list(arr.shape)}", file=where)
    flat = arr.reshape(len(arr), -1)
    return [int(flat[i][0]) for i in chosen]


def check_accuracy_data(build, model, specs):
    """Read and check the held-out data (and its labels) before conversion starts."""
    plan = build.plan["accuracy"]
    src = plan["source"]
    data = read_data(src["source"], build, model, specs, src["samples"], "accuracy")
    chosen, _ = select(data, src["samples"], src.get("seed", 0), src.get("shuffle", True))
    conform(data, chosen, specs, "accuracy")
    accuracy_labels(plan, data, chosen)


def accuracy(build, model, structure, specs, held_out):
    """The artifact against the float Keras model on held-out samples: per output max and
    mean absolute error, cosine similarity (per sample, then averaged), top-1 agreement over
    the last axis when it is a class axis, and accuracy on labels when the recipe names
    them."""
    np, tf, keras = tf_modules()
    from ai_edge_litert.interpreter import Interpreter

    plan = build.plan["accuracy"]
    src = plan["source"]
    labels = None
    if src["kind"] == "data":
        data = read_data(src["source"], build, model, specs, src["samples"], "accuracy")
        chosen, _ = select(data, src["samples"], src.get("seed", 0), src.get("shuffle", True))
        feeds = conform(data, chosen, specs, "accuracy")
        source = "data"
        labels = accuracy_labels(plan, data, chosen)
    elif src["kind"] == "held_out" and held_out:
        feeds = held_out[: src["samples"]]
        source = "held_out"
    else:
        # No real data to hold out: as many random inputs as parity uses.
        count = min(src["samples"], build.plan["parity"]["samples"]) if src["kind"] == "held_out" else src["samples"]
        feeds = random_feeds(specs, count, src["seed"])
        source = "random"
    interpreter = Interpreter(model_path=build.temp_output)
    try:
        interpreter.allocate_tensors()
    except RuntimeError as e:
        if "Select TensorFlow op" in str(e) or "Flex" in str(e):
            return {"source": source, "samples": 0, "outputs": [],
                    "skipped": "the artifact has Flex ops, which the LiteRT interpreter cannot run"}
        raise
    runner = interpreter.get_signature_runner("serving_default")
    in_details = runner.get_input_details()
    out_details = runner.get_output_details()
    stats = {}
    hits = {"float": 0, "artifact": 0}
    label_output = None
    for k, feed in enumerate(feeds):
        lite_out = runner(**{n: quantize(np, a, in_details[n]) for n, a in feed.items()})
        ref = keras_outputs(model, structure, specs, feed)
        for name, ref_arr in ref.items():
            if name not in lite_out:
                continue
            got = dequantize(np, lite_out[name], out_details[name])
            ref_arr = np.asarray(ref_arr, dtype=np.float64)
            if got.shape != ref_arr.shape:
                raise BuildError("accuracy", f"output `{name}` has shape {list(got.shape)} in the artifact and "
                                 f"{list(ref_arr.shape)} in Keras")
            st = stats.setdefault(name, {"max": 0.0, "sum": 0.0, "n": 0, "cos": [], "agree": 0, "positions": 0})
            diff = np.abs(got - ref_arr)
            st["max"] = max(st["max"], float(diff.max()) if diff.size else 0.0)
            st["sum"] += float(diff.sum())
            st["n"] += int(diff.size)
            a, b = got.ravel(), ref_arr.ravel()
            na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
            st["cos"].append(1.0 if na == 0.0 and nb == 0.0 else (float(a @ b) / (na * nb) if na and nb else 0.0))
            if ref_arr.ndim >= 2 and ref_arr.shape[-1] >= 2:
                ga, ra = got.argmax(axis=-1), ref_arr.argmax(axis=-1)
                st["agree"] += int((ga == ra).sum())
                st["positions"] += int(ra.size)
        if labels is not None:
            if label_output is None:
                classy = [n for n, st in sorted(stats.items()) if st["positions"]]
                if not classy:
                    raise BuildError("accuracy", "labels were given, but no output has a class axis")
                label_output = classy[0]
            ref_arr = np.asarray(ref[label_output]).reshape(-1)
            got = dequantize(np, lite_out[label_output], out_details[label_output]).reshape(-1)
            hits["float"] += int(int(ref_arr.argmax()) == labels[k])
            hits["artifact"] += int(int(got.argmax()) == labels[k])
    outputs = []
    for name in sorted(stats):
        st = stats[name]
        outputs.append({
            "name": name,
            "max_abs_error": st["max"],
            "mean_abs_error": st["sum"] / st["n"] if st["n"] else 0.0,
            "cosine_similarity": float(np.mean(st["cos"])) if st["cos"] else 1.0,
            "min_cosine_similarity": float(np.min(st["cos"])) if st["cos"] else 1.0,
            "top1_agreement": st["agree"] / st["positions"] if st["positions"] else None,
        })
    report = {"source": source, "samples": len(feeds), "outputs": outputs}
    if labels is not None and feeds:
        report["labels"] = {"output": label_output, "float_accuracy": hits["float"] / len(feeds),
                            "artifact_accuracy": hits["artifact"] / len(feeds)}
    return report


# --------------------------------------------------------------------------- main loop


def run_build(request):
    build = Build(request)
    try:
        build.progress("import", "importing TensorFlow")
        np, tf, keras = tf_modules()
        build.progress("load", build.plan["model"]["kind"])
        # Every build starts from a fresh Keras session, so auto-generated names (and with
        # them the artifact's bytes) do not depend on the builds this worker ran before.
        keras.utils.clear_session()
        model = load_model(build)
        build.progress("signature")
        structure, specs = build_signature(build, model)
        samples, held_out, cal_summary = None, [], None
        if build.plan.get("calibration"):
            build.progress("calibrate")
            samples, held_out, cal_summary = calibration_samples(build, specs, model)
        if (build.plan.get("accuracy") or {}).get("source", {}).get("kind") == "data":
            # Held-out data is read and checked before the (slow) conversion starts.
            build.progress("calibrate", "accuracy data")
            check_accuracy_data(build, model, specs)
        build.progress("convert")
        convert(build, model, structure, specs, samples)
        report = None
        if build.plan["parity"]["enabled"]:
            build.progress("parity")
            report = parity(build, model, structure, specs, samples)
        acc = None
        if build.plan.get("accuracy"):
            build.progress("accuracy")
            acc = accuracy(build, model, structure, specs, held_out)
        build.progress("done")
        emit({
            "event": "result",
            "id": build.id,
            "signature": [{"name": s["name"], "shape": s["shape"], "dtype": s["dtype"]} for s in specs],
            "parity": report,
            "calibration": cal_summary,
            "accuracy": acc,
            "timings": build.timings,
            "versions": versions(),
        })
    except BuildError as e:
        emit({"event": "error", "id": build.id, "stage": build.stage, "kind": e.kind, "message": str(e),
              "traceback": tail(traceback.format_exc()), **e.extra})
    except MemoryError:
        emit({"event": "error", "id": build.id, "stage": build.stage, "kind": "out_of_memory",
              "message": "the worker ran out of memory", "traceback": tail(traceback.format_exc())})
    except Exception as e:  # noqa: BLE001 - every failure becomes a structured error
        emit({"event": "error", "id": build.id, "stage": build.stage, "kind": type(e).__name__,
              "message": first_lines(str(e)), "traceback": tail(traceback.format_exc())})


def first_lines(text, n=6):
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(lines[:n]) or "(no message)"


def tail(text, n=12):
    return "\n".join(text.rstrip().splitlines()[-n:])


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


def main():
    emit({"event": "hello", "protocol": PROTOCOL, "python": sys.version.split()[0], "pid": os.getpid()})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError as e:
            emit({"event": "error", "id": None, "stage": "protocol", "kind": "protocol", "message": str(e)})
            continue
        op = request.get("op")
        if op == "build":
            run_build(request)
        elif op == "shutdown":
            break
        else:
            emit({"event": "error", "id": request.get("id"), "stage": "protocol", "kind": "protocol",
                  "message": f"unknown op {op!r}"})
    emit({"event": "bye"})


if __name__ == "__main__":
    main()
