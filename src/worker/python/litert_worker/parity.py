"""Stage `parity`: the artifact against Keras on the same inputs, through the LiteRT
interpreter's signature runner, with integer I/O (de)quantized. It also leaves the first
few inputs (as fed to the artifact) and Keras' outputs beside the artifact as golden data
(`<artifact>.golden.npz`), which `litert` keeps beside the snapshot so `litert test` can
re-run the artifact natively without Python."""

import io
import zipfile

from .data import random_feeds
from .libs import tf_modules
from .protocol import BuildError, names_text, shape_text


def parity(build, model, structure, specs, names, samples, data_feeds=None):
    """Parity runs on real inputs when the recipe has some (calibration samples, else the
    accuracy data), topped up with seeded N(0,1) inputs: random inputs exaggerate the error
    of a quantized model far outside the range it was trained on."""
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
        raise BuildError("parity", f"the artifact has no `serving_default` signature (has {names_text(sorted(signatures))})")
    runner = interpreter.get_signature_runner("serving_default")
    in_details = runner.get_input_details()
    out_details = runner.get_output_details()
    names_ok = sorted(in_details) == sorted(s["name"] for s in specs)
    if samples:
        feeds, source = list(samples[: p["samples"]]), "calibration"
    elif data_feeds:
        feeds, source = list(data_feeds[: p["samples"]]), "accuracy_data"
    else:
        feeds, source = [], "random"
    from_data = len(feeds)
    if len(feeds) < p["samples"]:
        feeds += random_feeds(specs, p["samples"] - len(feeds), p["seed"])
    stats = {}
    shapes_ok = True
    golden = []
    for feed in feeds:
        lite_in = {}
        for name, arr in feed.items():
            d = in_details[name]
            lite_in[name] = quantize(np, arr, d)
        lite_out = runner(**lite_in)
        ref = keras_outputs(model, structure, specs, feed, names)
        if len(golden) < GOLDEN_MAX_SAMPLES:
            golden.append((lite_in, ref))
        if set(ref) != set(lite_out):
            raise BuildError(
                "parity",
                f"output names differ: Keras {names_text(sorted(ref))}, LiteRT {names_text(sorted(lite_out))}",
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
    write_golden(np, build.temp_output + ".golden.npz", golden)
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
        "source": source,
        "from_data": from_data,
        "random": len(feeds) - from_data,
        "names_ok": names_ok,
        "shapes_ok": shapes_ok,
        "outputs": outputs,
        "ok": names_ok and shapes_ok and all(o["ok"] for o in outputs),
    }


# Golden data is committed beside the snapshots: a few samples, at most 1 MiB of arrays.
GOLDEN_MAX_SAMPLES = 4
GOLDEN_MAX_BYTES = 1 << 20


def write_golden(np, path, samples):
    """Samples as `<i>/in/<name>` and `<i>/out/<name>` arrays in a compressed .npz whose bytes
    depend only on the arrays (fixed zip timestamps), as many whole samples as fit the cap."""
    arrays, total = {}, 0
    for i, (ins, outs) in enumerate(samples):
        sample = {f"{i}/in/{k}": np.ascontiguousarray(v) for k, v in ins.items()}
        sample.update({f"{i}/out/{k}": np.ascontiguousarray(np.asarray(v)) for k, v in outs.items()})
        size = sum(a.nbytes for a in sample.values())
        if total + size > GOLDEN_MAX_BYTES:
            break
        arrays.update(sample)
        total += size
    if not arrays:
        return
    with zipfile.ZipFile(path, "w") as z:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, buf.getvalue())


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


def keras_outputs(model, structure, specs, feed, names):
    """Keras' outputs for `feed`, by the artifact's output names (`names`, the
    `OutputNames` the export used)."""
    np, tf, keras = tf_modules()
    if structure == "dict":
        args = [{s["key"]: feed[s["name"]] for s in specs}]
    elif structure == "list":
        args = [[feed[s["name"]] for s in specs]]
    else:
        args = [feed[s["name"]] for s in specs]
    out = model(*args, training=False)
    return {k: np.asarray(v) for k, v in names.name(out).items()}
