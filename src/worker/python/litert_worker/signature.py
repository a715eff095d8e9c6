"""Stage `signature`: explicit, named Keras input specs for the export, from the model's own
inputs, the recipe's overrides or its whole `input_signature`."""

from .libs import INT_DTYPES, tf_modules
from .protocol import BuildError, first_lines, names_text, shape_text


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
                    f"input_signature names {names_text(unknown)}, but the model's inputs are {names_text(sorted(by_name))}",
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
    vision = vision_sizes(model) if not inputs.get("shapes") else {}
    overrides = inputs.get("overrides") or {}
    whole = bool(inputs.get("signature"))
    for s in specs:
        shape = s["shape"]
        if inputs.get("batch_size") and shape:
            shape[0] = inputs["batch_size"]
        if s["name"] in vision:
            # Sized by the preprocessor (images per prompt, vision tokens), not by the text:
            # `sequence_length` does not apply. The recipe's own shape still wins.
            if not whole and (overrides.get(s["name"]) or {}).get("shape") is None:
                for axis, size in vision[s["name"]].items():
                    if axis < len(shape):
                        shape[axis] = size
            continue
        if inputs.get("sequence_length") and s["dtype"] in INT_DTYPES and len(shape) == 2:
            shape[1] = inputs["sequence_length"]
        if inputs.get("image_size") and len(shape) == 4 and s["dtype"] not in INT_DTYPES:
            shape[1], shape[2] = inputs["image_size"]
    # A local multimodal preset: litert sized every input from the preset's configuration
    # and the recipe (`litert plan` shows them), so they are used as they are.
    by_name = {s["name"]: s for s in specs}
    for planned in inputs.get("shapes") or []:
        spec = by_name.get(planned["name"])
        if spec is None:
            raise BuildError(
                "signature",
                f"the preset's configuration names input `{planned['name']}`, but the model's inputs are "
                f"{sorted(by_name)}",
                model_inputs=sorted(by_name),
            )
        spec["shape"] = list(planned["shape"])
        spec["dtype"] = planned["dtype"]
    return structure, specs


def vision_sizes(model):
    """The dimensions of a multimodal model's vision inputs that its preprocessor fixes, as
    {input: {axis: size}}: Gemma 3's `images` `[B, N, S, S, 3]` and `vision_indices`
    `[B, N × tokens per image]`, N being the preprocessor's `max_images_per_prompt`. Empty
    for every other model. (For local presets litert reads the same from the preset's files
    and sends the shapes; this serves presets loaded by name.)"""
    pre = getattr(model, "preprocessor", None)
    names = {t.name for t in (getattr(model, "inputs", None) or [])}
    if "vision_indices" not in names or pre is None:
        return {}
    count = getattr(pre, "max_images_per_prompt", None)
    per_image = getattr(pre, "num_vision_tokens_per_image", None)
    if not count or not per_image:
        return {}
    return {"images": {1: int(count)}, "vision_indices": {1: int(count) * int(per_image)}}


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


def keras_output_names(model):
    """The Keras names of the model's outputs in call order: the output layers' names of a
    Functional or Sequential model. Empty when the model returns a dict (its keys are the
    names) or declares no outputs (a subclassed model)."""
    if isinstance(getattr(model, "_outputs_struct", None), dict):
        return []
    names = getattr(model, "output_names", None)
    outputs = getattr(model, "outputs", None)
    if not names or not outputs or len(names) != len(outputs):
        return []
    return [str(n) for n in names]


class OutputNames:
    """The artifact's output names: the Keras names (a dict output's keys, else the output
    layers' names), `output_N` by position where Keras gives none, then the recipe's
    `outputs:` renames. The export and the parity check name a model call's result through
    the same object, so the two always agree. `seen` records, per output, the name it got
    and the Keras name it came from (`None` where Keras gives none)."""

    def __init__(self, build, model):
        self.renames = dict(build.plan.get("outputs") or {})
        self.keras = keras_output_names(model)
        self.seen = []
        struct = getattr(model, "_outputs_struct", None)
        # The outputs' own names when the model declares them (known before the export).
        self.declared = [str(k) for k in struct] if isinstance(struct, dict) else self.keras

    def name(self, out):
        """`out` (a tensor, a list or tuple of them, or a dict) as {artifact name: tensor},
        in the model's output order."""
        if isinstance(out, dict):
            pairs = [(str(k), v) for k, v in out.items()]
        else:
            flat = list(out) if isinstance(out, (list, tuple)) else [out]
            keras = self.keras if len(self.keras) == len(flat) else [None] * len(flat)
            pairs = list(zip(keras, flat))
        seen, named = [], {}
        for i, (keras, value) in enumerate(pairs):
            own = keras if keras is not None else f"output_{i}"
            name = self.renames.get(own, own)
            if name in named:
                raise BuildError(
                    "signature",
                    f"two outputs would be named `{name}`: name them apart with `outputs:` in the recipe",
                    model_outputs=[p for p, _ in seen],
                )
            named[name] = value
            seen.append((own, keras, name))
        self.seen = seen
        return named

    def check_renames(self, own=None):
        """Every `outputs:` key names an output of the model: of `own`, else of the
        outputs of the last call named."""
        if own is None:
            own = [o for o, _, _ in self.seen]
        unknown = sorted(set(self.renames) - set(own))
        if unknown:
            raise BuildError(
                "signature",
                f"`outputs` names {names_text(unknown)}, but the model's outputs are {names_text(own)}",
                model_outputs=own,
            )

    def report(self):
        """Per output in the model's order: the artifact's name and the Keras name."""
        return [{"name": name, "keras": keras} for _, keras, name in self.seen]


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
