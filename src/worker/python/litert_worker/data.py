"""Stage `calibrate`: samples from calibration and accuracy data sources (npz, npy, images,
prompts, generators), checked against the signature with the file named in every error, and
seeded random inputs where there is no data."""

import os

from .libs import INT_DTYPES, tf_modules
from .load import call_factory
from .protocol import BuildError, first_lines, names_text, shape_text


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
            except MemoryError:
                raise  # the worker's memory limit: reported as such, with the limit named
            except Exception as e:  # noqa: BLE001
                raise BuildError(what, f"cannot read {what} data `{path}`: {first_lines(str(e), 1)}", file=path) from e
            origin_of = {k: path for k in arrays}
        else:
            for name, path in src["files"].items():
                try:
                    arrays[name] = np.load(path, allow_pickle=False)
                except MemoryError:
                    raise
                except Exception as e:  # noqa: BLE001
                    raise BuildError(what, f"cannot read {what} data `{path}`: {first_lines(str(e), 1)}",
                                     file=path) from e
                origin_of[name] = path
        where = src.get("path") or ", ".join(sorted(set(origin_of.values())))
        missing = [n for n in names if n not in arrays]
        if missing:
            raise BuildError(
                what,
                f"`{where}` has no array for input(s) {names_text(missing)}; it has {names_text(sorted(arrays))}",
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


def conform(data, indices, specs, what, casts=None):
    """The chosen samples as {input: array with batch dim} in the signature's dtypes, after
    checking shapes and dtypes against the signature. Casts that change the data's dtype
    are added to `casts` (as text), so the report can say so."""
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
                if arr.dtype != want_dtype and casts is not None:
                    casts.add(f"`{s['name']}` {arr.dtype} → {want_dtype}")
                arr = arr.astype(want_dtype)
            want = s["shape"]
            if arr.ndim == len(want) - 1:
                arr = arr[None, ...]
            if arr.ndim != len(want) or any(w is not None and w != a for w, a in zip(want, arr.shape)):
                raise BuildError(what, wrong_shape(data, i, s, origin, arr.shape), file=origin)
            fixed[s["name"]] = arr
        out.append(fixed)
    return out


def wrong_shape(data, i, spec, origin, got):
    """Why sample `i` does not fit the signature: about the whole array when every sample
    has the same shape (the data was made for another signature), else about the sample."""
    np, tf, keras = tf_modules()
    name, want = spec["name"], spec["shape"]
    shapes = {tuple(np.shape(smp.get(name))) for smp in data.samples if name in smp}
    per_sample = shape_text(want[1:]) if len(want) > 1 else shape_text(want)
    if len(shapes) == 1:
        (one,) = shapes
        return (
            f"every sample of input `{name}` in `{origin}` has shape {shape_text(one)} "
            f"({len(data.samples)} samples: an array of {shape_text((len(data.samples),) + one)}), "
            f"but the signature takes {shape_text(want)} per sample: give an array of "
            f"{shape_text((len(data.samples),) + tuple(want[1:]))}, or change the recipe's input shape"
        )
    return (
        f"sample {i} of input `{name}` in `{origin}` has shape {shape_text(got)}, "
        f"but the signature takes {shape_text(want)} (or {per_sample} without the batch dimension)"
    )


def calibration_samples(build, specs, model):
    """The calibration samples (a list of {input name: array with batch dim} dicts, in the
    signature's dtypes) and the held-out rest, with a summary for the report."""
    cal = build.plan.get("calibration")
    if not cal:
        return None, [], None
    data = read_data(cal["source"], build, model, specs, cal["samples"], "calibration")
    chosen, rest = select(data, cal["samples"], cal.get("seed", 0), cal.get("shuffle", True))
    casts = set()
    samples = conform(data, chosen, specs, "calibration", casts)
    held_out = conform(data, rest, specs, "calibration", casts)
    summary = {"source": data.kind, "available": len(data.samples), "used": len(samples), "held_out": len(held_out),
               "cast": sorted(casts)}
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
        raise BuildError(what, f"the preprocessor gives {names_text(sorted(batch))}, not the inputs {names_text(missing)}", file=path)
    samples = [{n: batch[n][i] for n in names} for i in range(len(prompts))]
    return Data("prompts", samples, [{n: f"{path}:{i + 1}" for n in names} for i in range(len(prompts))])


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
