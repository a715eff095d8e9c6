"""The prefill/decode graph: one `tf.function` per signature over the family's layers, a
SavedModel holding every variable once, the conversion, and the int8 table of a tied
embedding that the export writes into the converted file itself."""

import gc
import os
import shutil
import time

from ..bundle import preset_dir
from ..convert import configure
from ..libs import tf_modules
from ..protocol import BuildError
from .families import family_of

# LiteRT-LM fills masked entries with about -0.7 * FLT_MAX (0 = attend).
MASKED = -0.7 * 3.4028234663852886e38


class TiedInt8Table:
    """A tied embedding quantized once, so an int8-weight artifact stores its table once,
    and so the converter never holds it as float32.

    Left to itself, the converter quantizes a tied embedding twice: per tensor where it is
    gathered (a gathered row cannot carry a per-row scale) and per channel where it projects
    onto the vocabulary, so the file holds two int8 copies (41% of a Gemma-2B-width file).
    Here the table is quantized per row up front, in numpy. The graph the converter sees
    holds a placeholder in its place, a constant filled with 127 (one value: it costs the
    converter nothing, where a float32 table cost it twice the table):
    - the lookup gathers int8 rows of the placeholder and their scales (kept as int32 bits,
      so the weight quantizer leaves them exact) and dequantizes;
    - the projection multiplies by a float32 placeholder of 127.0 and then by the scales.
      The converter folds those scales into it, and its per-channel quantization gives the
      table's own row scales and int8 rows of 127: the same bytes as the lookup's
      placeholder, which its buffer deduplication stores once (once it no longer folds the
      final norm's scale into them too).
    `write_into` then puts the real table into that one buffer of the written file."""

    PLACEHOLDER = 127

    def __init__(self, embedding):
        np, tf, keras = tf_modules()
        table = embedding.embeddings.value  # the tf.Variable under the Keras one
        V, H = (int(d) for d in table.shape)
        q = np.empty((V, H), np.int8)
        scale = np.empty((V,), np.float32)
        # A slice at a time: whole-table numpy temporaries cost several times the table
        # (2 GB for Gemma's), more than the rest of the export.
        step = max(1, (64 << 20) // (4 * H))
        for start in range(0, V, step):
            rows = table[start:start + step].numpy()
            amax = np.abs(rows).max(axis=1)
            s = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
            q[start:start + step] = np.clip(np.rint(rows / s[:, None]), -127, 127)
            scale[start:start + step] = s
        self.shape = (V, H)
        self.rows = q
        self.soft_cap = embedding.logit_soft_cap
        self.scale_bits = tf.Variable(scale.view(np.int32), trainable=False, name="token_embedding_scale_bits")

    def write_into(self, path):
        """Put the real table into the written artifact, in place: every [V, H] int8
        tensor of every subgraph must point at one buffer, holding the placeholder."""
        import mmap

        np, tf, keras = tf_modules()
        from tensorflow.lite.python import schema_py_generated as schema

        V, H = self.shape
        with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as mm:
            model = schema.Model.GetRootAs(mm, 0)
            buffers = set()
            for s in range(model.SubgraphsLength()):
                graph = model.Subgraphs(s)
                for t in range(graph.TensorsLength()):
                    tensor = graph.Tensors(t)
                    if tensor.Type() == schema.TensorType.INT8 and tensor.ShapeAsNumpy().tolist() == [V, H]:
                        buffers.add(tensor.Buffer())
            if len(buffers) != 1:
                raise BuildError("generation", f"the converter stored the tied embedding in {len(buffers)} buffers, not one")
            buffer = model.Buffers(buffers.pop())
            # A file over 2 GB keeps its buffers after the FlatBuffer, at an offset from
            # the file's start; a smaller one keeps them inside it.
            if buffer.Offset() > 1:
                start, size = buffer.Offset(), buffer.Size()
            else:
                data = buffer._tab.Offset(4)  # the `data` vector's field (schema: Buffer.data)
                start, size = (buffer._tab.Vector(data), buffer._tab.VectorLen(data)) if data else (0, 0)
            if size != V * H:
                raise BuildError("generation", f"the tied embedding's buffer holds {size} bytes, not {V * H}")
            stored = np.frombuffer(mm, np.int8, V * H, start).reshape(V, H)
            step = max(1, (64 << 20) // H)
            for row in range(0, V, step):
                if not (stored[row:row + step] == self.PLACEHOLDER).all():
                    del stored
                    raise BuildError("generation", "the tied embedding's buffer does not hold the placeholder the export wrote")
                stored[row:row + step] = self.rows[row:row + step]
            del stored
            mm.flush()

    @classmethod
    def applies(cls, fam, converter_kwargs):
        """Whether the artifact stores int8 weights without calibration (dynamic range)
        and the family ties its input and output embeddings."""
        np, tf, keras = tf_modules()
        int8_weights = bool(converter_kwargs.get("optimizations")) and "representative_dataset" not in converter_kwargs
        float16 = tf.float16 in converter_kwargs.get("target_spec", {}).get("supported_types", [])
        emb = fam.backbone.token_embedding
        tied = bool(getattr(emb, "tie_weights", False)) and emb.reverse_dtype is None
        # Under 1,024 elements the converter keeps weights float32 and already stores one copy.
        big = fam.vocab * fam.hidden >= 1024
        return int8_weights and not float16 and tied and big

    def lookup(self, tokens):
        np, tf, keras = tf_modules()
        rows = tf.fill(self.shape, tf.constant(self.PLACEHOLDER, tf.int8))
        scale = tf.bitcast(tf.gather(self.scale_bits, tokens), tf.float32)
        return tf.cast(tf.gather(rows, tokens), tf.float32) * scale[..., None]

    def logits(self, h):
        np, tf, keras = tf_modules()
        rows = tf.fill(self.shape, tf.constant(float(self.PLACEHOLDER), tf.float32))
        scale = tf.bitcast(self.scale_bits, tf.float32)
        out = tf.matmul(h, rows, transpose_b=True) * scale
        if self.soft_cap is not None:
            out = tf.tanh(out / self.soft_cap) * self.soft_cap
        return out


def signature_functions(fam, g, tf):
    """One `tf.function` per signature key, with its explicit input signature."""
    C = g["capacity"]
    H, D, L = fam.kv_heads, fam.head_dim, fam.num_layers
    mask_dtype = {"float32": tf.float32, "float16": tf.float16, "bool": tf.bool}[g["mask_dtype"]]
    names = g["names"]
    from tensorflow.compiler.tf2xla.python import xla

    def step(T, with_logits):
        def forward(tokens, input_pos, mask, *caches):
            start = input_pos[0]
            if mask_dtype == tf.bool:
                bias = tf.where(mask[0], 0.0, MASKED)
            else:
                bias = tf.cast(mask[0], tf.float32)  # [1, T, C]

            x = fam.embed(tokens, input_pos)
            out = {}
            for i in range(L):
                k_cache, v_cache = caches[2 * i], caches[2 * i + 1]
                box = {}

                def attend(q, k, v, scale, soft_cap, window=None, k_cache=k_cache, v_cache=v_cache, box=box):
                    # q [1,T,Hq,D]; k, v [1,T,H,D] -> [1,H,T,D], written at `start`.
                    # `window`: a sliding window (KerasHub's band: a query attends to
                    # itself and the `window - 1` positions before it); the cache slot
                    # of a position is the position, so the band comes from `input_pos`.
                    k_all = xla.dynamic_update_slice(k_cache, tf.transpose(k, [0, 2, 1, 3]), [0, 0, start, 0])
                    v_all = xla.dynamic_update_slice(v_cache, tf.transpose(v, [0, 2, 1, 3]), [0, 0, start, 0])
                    box["k"], box["v"] = k_all, v_all
                    G = fam.q_heads // H
                    qh = tf.reshape(q * scale, [T, H, G, D])
                    qh = tf.reshape(tf.transpose(qh, [1, 2, 0, 3]), [H, G * T, D])
                    s = tf.matmul(qh, k_all[0], transpose_b=True)  # [H, G*T, C]
                    if soft_cap is not None:
                        s = tf.tanh(s / soft_cap) * soft_cap
                    layer_bias = bias
                    if window is not None and window < C:
                        distance = tf.cast(input_pos, tf.float32)[:, None] - tf.range(C, dtype=tf.float32)[None]
                        layer_bias = tf.where(distance >= float(window), MASKED, bias)
                    s = tf.reshape(s, [H, G, T, C]) + layer_bias[None]
                    p = tf.nn.softmax(s, axis=-1)
                    o = tf.matmul(tf.reshape(p, [H, G * T, C]), v_all[0])  # [H, G*T, D]
                    o = tf.transpose(tf.reshape(o, [H, G, T, D]), [2, 0, 1, 3])
                    return tf.reshape(o, [1, T, fam.q_heads, D])

                x = fam.block(i, x, input_pos, attend)
                out[names["k_cache"].format(i=i)] = box["k"]
                out[names["v_cache"].format(i=i)] = box["v"]
            if with_logits:
                # Decode: logits of the one token. Prefill returns only the caches, so the
                # vocabulary projection (the largest matmul) never runs over T rows.
                out[names["logits"]] = fam.head(x)
            return out

        specs = [
            tf.TensorSpec([1, T], tf.int32, name=names["tokens"]),
            tf.TensorSpec([T], tf.int32, name=names["input_pos"]),
            tf.TensorSpec([1, 1, T, C], mask_dtype, name=names["mask"]),
        ]
        for i in range(L):
            specs.append(tf.TensorSpec([1, H, C, D], tf.float32, name=names["k_cache"].format(i=i)))
            specs.append(tf.TensorSpec([1, H, C, D], tf.float32, name=names["v_cache"].format(i=i)))
        return forward, specs

    fns = {}
    for T in g["prefill"]:
        fns[names["prefill"].format(T=T)] = step(T, False)
    fns[names["decode"]] = step(1, True)
    return fns


def write_savedmodel(tf, fns, path):
    """A SavedModel of every signature that holds each variable they read exactly once.

    (`keras.export.ExportArchive` saves every variable twice, as the Keras variable and as
    the `tf.Variable` under it: a SavedModel of twice the weights, read back whole by the
    converter.)"""
    module = tf.Module()
    signatures, variables, seen = {}, [], set()
    for key, (fn, specs) in fns.items():
        concrete = tf.function(fn, input_signature=specs).get_concrete_function()
        signatures[key] = concrete
        for v in concrete.variables:
            if id(v) not in seen:
                seen.add(id(v))
                variables.append(v)
    module.variables_read = variables
    tf.saved_model.save(module, path, signatures=signatures)


def exportable(model, g):
    """The model's family, or a BuildError saying why this model and capacity cannot be
    exported (checked before anything slow runs)."""
    fam = family_of(model)
    reason = fam.refuse(g["capacity"])
    if reason:
        raise BuildError("generation", reason)
    limit = fam.max_positions()
    if limit is not None and g["capacity"] > limit:
        raise BuildError(
            "generation",
            f"a KV-cache capacity of {g['capacity']} is beyond what the model's position embedding reaches ({limit})",
        )
    return fam


def export(build, holder, converter_kwargs):
    """Write the prefill/decode artifact to `build.temp_output`; returns what the result
    event reports about it (family, cache layout, tokenizer).

    `holder` is a list holding the only reference to the model's family (`exportable`),
    which holds the Keras model: the model is traced and saved, then released before the
    converter runs, so the process never holds the Keras weights and the converter's copies
    at once (docs/llm.md#memory)."""
    np, tf, keras = tf_modules()
    g = build.plan["generation"]
    fam = holder.pop()
    model = fam.model
    info = describe(build, fam)
    if TiedInt8Table.applies(fam, converter_kwargs):
        fam.table = TiedInt8Table(fam.backbone.token_embedding)
        # The converter would fold the final norm's scale into the projection's weights,
        # which makes them other bytes than the table's. (A recipe flag still wins.)
        converter_kwargs = {"_experimental_disable_fuse_mul_and_fc": True, **converter_kwargs}
    fns = signature_functions(fam, g, tf)
    keys = list(fns)
    # The SavedModel that carries every signature lives in the build's private directory,
    # which litert removes whatever happens.
    work = os.path.join(os.path.dirname(build.temp_output), "generation-savedmodel")
    t = time.perf_counter()
    try:
        write_savedmodel(tf, fns, work)
        saved = time.perf_counter() - t
        table = fam.table
        del fns, fam, model
        release()
        converter = tf.lite.TFLiteConverter.from_saved_model(work, signature_keys=keys)
        configure(converter, converter_kwargs)
        blob = converter.convert()
        del converter
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with open(build.temp_output, "wb") as f:
        f.write(blob)
    del blob
    if table is not None:
        table.write_into(build.temp_output)
    return {**info, "signatures": keys, "savedmodel_seconds": round(saved, 3)}


class PresetOnly:
    """What `describe` reads of a family, from a preset's `config.json` and its tokenizer
    alone: for an artifact litert's native writer wrote when no check needs the model."""

    NAMES = {"GemmaBackbone": "gemma", "Gemma3Backbone": "gemma3", "LlamaBackbone": "llama",
             "Llama3Backbone": "llama3", "Qwen3Backbone": "qwen3"}

    def __init__(self, model_plan):
        import json
        import types

        import keras_hub

        directory = preset_dir(model_plan)
        with open(os.path.join(directory, "config.json")) as f:
            spec = json.load(f)
        c = spec["config"]
        self.name = self.NAMES.get(spec.get("class_name"), spec.get("class_name"))
        self.num_layers = int(c["num_layers"])
        self.kv_heads = int(c["num_key_value_heads"])
        self.head_dim = int(c.get("head_dim") or c["hidden_dim"] // c["num_query_heads"])
        tokenizer = keras_hub.models.Tokenizer.from_preset(directory)
        self.model = types.SimpleNamespace(preprocessor=types.SimpleNamespace(tokenizer=tokenizer))


def describe(build, fam):
    """What the result event reports about a generation artifact of `fam`, whichever writer
    wrote it (litert's native writer writes it before the worker runs; `export` here)."""
    g = build.plan["generation"]
    names = g["names"]
    return {
        "family": fam.name,
        "writer": g.get("writer", "converter"),
        "num_layers": fam.num_layers,
        "kv_heads": fam.kv_heads,
        "head_dim": fam.head_dim,
        "capacity": g["capacity"],
        "prefill": list(g["prefill"]),
        "cache_layout": "[1, kv_heads, capacity, head_dim]",
        "tokenizer": tokenizer_info(fam.model, build.plan["model"]),
        "preset_dir": preset_dir(build.plan["model"]) if g.get("bundle") else None,
        "signatures": [names["prefill"].format(T=t) for t in g["prefill"]] + [names["decode"]],
    }


def release():
    """Give the released model's memory back before the next stage allocates (with oneDNN
    off, TensorFlow's CPU allocator returns freed tensors to the system)."""
    np, tf, keras = tf_modules()
    gc.collect()
    keras.utils.clear_session()
    gc.collect()


def decode_signature(g, info):
    """The decode signature's inputs, as the result event reports an export's signature."""
    names = g["names"]
    C, H, D = g["capacity"], info["kv_heads"], info["head_dim"]
    sig = [{"name": names["tokens"], "shape": [1, 1], "dtype": "int32"},
           {"name": names["input_pos"], "shape": [1], "dtype": "int32"},
           {"name": names["mask"], "shape": [1, 1, 1, C], "dtype": g["mask_dtype"]}]
    for i in range(info["num_layers"]):
        for key in ("k_cache", "v_cache"):
            sig.append({"name": names[key].format(i=i), "shape": [1, H, C, D], "dtype": "float32"})
    return sig


def tokenizer_info(model, model_plan):
    """The tokenizer's kind, special tokens and, for a local preset, its file: what the
    `.litertlm` bundle step packs next to the model."""
    pre = getattr(model, "preprocessor", None)
    tok = getattr(pre, "tokenizer", None)
    if tok is None:
        return None
    info = {"class": type(tok).__name__, "vocabulary_size": int(tok.vocabulary_size())}
    for key in ("start_token_id", "end_token_id", "pad_token_id"):
        value = getattr(tok, key, None)
        if value is not None:
            info[key] = int(value)
    if hasattr(tok, "proto"):
        info["kind"] = "sentencepiece"
    elif hasattr(tok, "merges"):
        info["kind"] = "bpe"
    directory = (model_plan.get("preset") or {}).get("path")
    if directory:
        assets = os.path.join(directory, "assets", "tokenizer")
        if os.path.isdir(assets):
            files = sorted(os.listdir(assets))
            if files:
                info["files"] = [os.path.join(assets, f) for f in files]
    return info
