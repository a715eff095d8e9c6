"""Stage `accuracy`: the artifact against the float Keras model on held-out data: errors,
cosine similarity, top-1 agreement and label accuracy."""

from .data import conform, random_feeds, read_data, select
from .libs import tf_modules
from .parity import dequantize, keras_outputs, quantize
from .protocol import BuildError, names_text, shape_text


def accuracy_labels(plan, data, chosen):
    """The integer label of each chosen sample, when the recipe names a label array."""
    np, tf, keras = tf_modules()
    name = plan.get("labels")
    if not name:
        return None
    where = plan["source"]["source"].get("path") or ", ".join(sorted(set(getattr(data, "extras_origin", {}).values())))
    if name not in data.extras:
        raise BuildError("accuracy", f"`{where}` has no label array `{name}`; it has {names_text(sorted(data.extras))}",
                         file=where)
    arr = np.asarray(data.extras[name])
    if arr.ndim == 0 or len(arr) != len(data.samples) or arr.dtype.kind not in "iub":
        raise BuildError("accuracy", f"labels `{name}` in `{where}` must be one integer per sample "
                         f"({len(data.samples)}); got {arr.dtype} {shape_text(arr.shape)}", file=where)
    flat = arr.reshape(len(arr), -1)
    return [int(flat[i][0]) for i in chosen]


def check_accuracy_data(build, model, specs):
    """Read and check the held-out data (and its labels) before conversion starts."""
    plan = build.plan["accuracy"]
    src = plan["source"]
    data = read_data(src["source"], build, model, specs, src["samples"], "accuracy")
    chosen, _ = select(data, src["samples"], src.get("seed", 0), src.get("shuffle", True))
    feeds = conform(data, chosen, specs, "accuracy")
    accuracy_labels(plan, data, chosen)
    return feeds


def accuracy(build, model, structure, specs, names, held_out):
    """The artifact against the float Keras model on held-out samples: per output max and
    mean absolute error, cosine similarity (per sample, then averaged), top-1 agreement over
    the last axis when it is a class axis, and accuracy on labels when the recipe names
    them."""
    np, tf, keras = tf_modules()
    from ai_edge_litert.interpreter import Interpreter

    plan = build.plan["accuracy"]
    src = plan["source"]
    labels = None
    available = None
    if src["kind"] == "data":
        data = read_data(src["source"], build, model, specs, src["samples"], "accuracy")
        chosen, _ = select(data, src["samples"], src.get("seed", 0), src.get("shuffle", True))
        feeds = conform(data, chosen, specs, "accuracy")
        source = "data"
        available = len(data.samples)
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
        ref = keras_outputs(model, structure, specs, feed, names)
        for name, ref_arr in ref.items():
            if name not in lite_out:
                continue
            got = dequantize(np, lite_out[name], out_details[name])
            ref_arr = np.asarray(ref_arr, dtype=np.float64)
            if got.shape != ref_arr.shape:
                raise BuildError("accuracy", f"output `{name}` has shape {shape_text(got.shape)} in the artifact and "
                                 f"{shape_text(ref_arr.shape)} in Keras")
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
    if available is not None:
        report["available"] = available
    if labels is not None and feeds:
        report["labels"] = {"output": label_output, "float_accuracy": hits["float"] / len(feeds),
                            "artifact_accuracy": hits["artifact"] / len(feeds)}
    return report
