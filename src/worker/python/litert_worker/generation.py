"""Stage `generation`: a KerasHub causal LM exported as ONE `.tflite` with LiteRT-LM's
prefill/decode contract over a per-layer KV cache, and its parity with Keras `generate()`.

The contract (`shared/research/litert_lm.md`): signatures `prefill_{T}` (one per prefill
length) and `decode`; inputs `tokens` int32 [1,T], `input_pos` int32 [T], `mask` [1,1,T,C];
each layer's `kv_cache_k_{i}` / `kv_cache_v_{i}` [1,H,C,D] is an input AND an output of every
signature under the same name; `decode` returns `logits` [1,1,V]. The runtime pads unused
prefill slots with token 0 and position 0 and masks their rows completely, so a cache update
is one contiguous dynamic-update-slice at `input_pos[0]` (a scatter by position would let
the pads overwrite slot 0), RoPE takes its positions from `input_pos`, and attention takes
its mask from `mask` only (the model never builds its own causal mask).

The forward pass is written here, per family, from the KerasHub model's own layers (their
weights and their RoPE), so every signature reads the same variables: the converter stores
each weight once, shared by all subgraphs."""

import gc
import os
import shutil
import time

from .libs import tf_modules
from .bundle import preset_dir
from .protocol import BuildError

# LiteRT-LM fills masked entries with about -0.7 * FLT_MAX (0 = attend).
MASKED = -0.7 * 3.4028234663852886e38


# --------------------------------------------------------------------------------------
# Families: how each KerasHub causal LM maps onto the shared decoder skeleton.


class Family:
    """A decoder-only transformer as the export sees it: an embedding, `num_layers`
    blocks each with q/k/v projections and a cached attention, and a head."""

    name = "?"

    def __init__(self, model):
        self.model = model
        self.backbone = model.backbone
        self.table = None  # a TiedInt8Table when the artifact stores int8 weights

    def lookup(self, tokens):
        """The token embedding of `tokens`."""
        if self.table is not None:
            return self.table.lookup(tokens)
        return self.backbone.token_embedding(tokens)

    def logits(self, h):
        """The vocabulary projection of the final hidden state."""
        if self.table is not None:
            return self.table.logits(h)
        return self.backbone.token_embedding(h, reverse=True)

    # Filled by subclasses.
    num_layers = kv_heads = head_dim = q_heads = hidden = vocab = 0

    def max_positions(self):
        """The largest position the model can embed, or None when RoPE has no limit."""
        return None

    def refuse(self, capacity):
        """A reason this model cannot be exported with this capacity, or None."""
        return None


class Gemma(Family):
    name = "gemma"

    def __init__(self, model):
        super().__init__(model)
        b = self.backbone
        self.num_layers = b.num_layers
        self.q_heads = b.num_query_heads
        self.kv_heads = b.num_key_value_heads
        self.head_dim = b.head_dim
        self.hidden = b.hidden_dim
        self.vocab = b.vocabulary_size
        self.blocks = list(b.transformer_layers)

    def refuse(self, capacity):
        for i, blk in enumerate(self.blocks):
            if blk.use_sliding_window_attention and capacity > blk.attention.sliding_window_size:
                return (f"layer {i} uses sliding-window attention (window {blk.attention.sliding_window_size}), "
                        f"which this export does not implement; use a capacity of at most that")
        return None

    def embed(self, tokens, positions):
        np, tf, keras = tf_modules()
        x = self.lookup(tokens)
        return x * tf.cast(tf.sqrt(float(self.hidden)), x.dtype)

    def block(self, i, x, positions, attend):
        blk = self.blocks[i]
        attn = blk.attention
        h = blk.pre_attention_norm(x)
        q = attn._apply_rope(attn.query_dense(h), 0, positions=positions)
        k = attn._apply_rope(attn.key_dense(h), 0, positions=positions)
        v = attn.value_dense(h)
        if attn.query_head_dim_normalize:
            scale = 1.0 / float(self.head_dim) ** 0.5
        else:
            scale = 1.0 / float(self.hidden // self.q_heads) ** 0.5
        o = attend(q, k, v, scale, attn.logit_soft_cap)
        a = attn.output_dense(o)
        if blk.use_post_attention_norm:
            a = blk.post_attention_norm(a)
        x = x + a
        h = blk.pre_ffw_norm(x)
        np, tf, keras = tf_modules()
        f = keras.activations.gelu(blk.gating_ffw(h), approximate=True) * blk.gating_ffw_2(h)
        f = blk.ffw_linear(f)
        if blk.use_post_ffw_norm:
            f = blk.post_ffw_norm(f)
        return x + f

    def head(self, x):
        return self.logits(self.backbone.layer_norm(x))


class Llama(Family):
    name = "llama"

    def __init__(self, model):
        super().__init__(model)
        b = self.backbone
        self.num_layers = b.num_layers
        self.q_heads = b.num_query_heads
        self.kv_heads = b.num_key_value_heads
        self.hidden = b.hidden_dim
        self.head_dim = b.hidden_dim // b.num_query_heads
        self.vocab = b.vocabulary_size
        self.blocks = list(b.transformer_layers)

    def embed(self, tokens, positions):
        return self.lookup(tokens)

    def block(self, i, x, positions, attend):
        np, tf, keras = tf_modules()
        blk = self.blocks[i]
        attn = blk._self_attention_layer
        h = blk._self_attention_layernorm(x)
        q = attn.rotary_embedding_layer(attn._query_dense(h), positions=positions)
        k = attn.rotary_embedding_layer(attn._key_dense(h), positions=positions)
        v = attn._value_dense(h)
        o = attend(q, k, v, float(attn._inv_norm_factor), None)
        x = x + attn._output_dense(o)
        h = blk._feedforward_layernorm(x)
        gate = blk.activation(blk._feedforward_gate_dense(h))
        f = blk._feedforward_output_dense(gate * blk._feedforward_intermediate_dense(h))
        return x + f

    def head(self, x):
        return self.logits(self.backbone.layer_norm(x))


class Gpt2(Family):
    name = "gpt2"

    def __init__(self, model):
        super().__init__(model)
        b = self.backbone
        self.num_layers = b.num_layers
        self.q_heads = self.kv_heads = b.num_heads
        self.hidden = b.hidden_dim
        self.head_dim = b.hidden_dim // b.num_heads
        self.vocab = b.vocabulary_size
        self.blocks = list(b.transformer_layers)

    def max_positions(self):
        return int(self.backbone.max_sequence_length)

    def embed(self, tokens, positions):
        np, tf, keras = tf_modules()
        table = self.backbone.position_embedding.position_embeddings
        pos = tf.gather(tf.convert_to_tensor(table), positions)[None]
        return self.lookup(tokens) + tf.cast(pos, "float32")

    def block(self, i, x, positions, attend):
        np, tf, keras = tf_modules()
        blk = self.blocks[i]
        attn = blk._self_attention_layer
        h = blk._self_attention_layer_norm(x)
        q = attn._query_dense(h)
        k = attn._key_dense(h)
        v = attn._value_dense(h)
        o = attend(q, k, v, 1.0 / float(attn._key_dim) ** 0.5, None)
        x = x + attn._output_dense(o)
        h = blk._feedforward_layer_norm(x)
        f = blk._feedforward_output_dense(blk._feedforward_intermediate_dense(h))
        return x + f

    def head(self, x):
        return self.logits(self.backbone.layer_norm(x))


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


FAMILIES = {"GemmaCausalLM": Gemma, "LlamaCausalLM": Llama, "GPT2CausalLM": Gpt2}


def family_of(model):
    cls = type(model).__name__
    fam = FAMILIES.get(cls)
    if fam is None:
        raise BuildError(
            "generation",
            f"`{cls}` is not supported for generation exports; supported: {', '.join(sorted(FAMILIES))}",
            family=cls,
            supported=sorted(FAMILIES),
        )
    if fam is Gemma and type(model.backbone).__name__ != "GemmaBackbone":
        raise BuildError("generation", f"`{cls}` with a `{type(model.backbone).__name__}` is not supported")
    return fam(model)


# --------------------------------------------------------------------------------------
# The graph.


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

                def attend(q, k, v, scale, soft_cap, k_cache=k_cache, v_cache=v_cache, box=box):
                    # q [1,T,Hq,D]; k, v [1,T,H,D] -> [1,H,T,D], written at `start`.
                    k_all = xla.dynamic_update_slice(k_cache, tf.transpose(k, [0, 2, 1, 3]), [0, 0, start, 0])
                    v_all = xla.dynamic_update_slice(v_cache, tf.transpose(v, [0, 2, 1, 3]), [0, 0, start, 0])
                    box["k"], box["v"] = k_all, v_all
                    G = fam.q_heads // H
                    qh = tf.reshape(q * scale, [T, H, G, D])
                    qh = tf.reshape(tf.transpose(qh, [1, 2, 0, 3]), [H, G * T, D])
                    s = tf.matmul(qh, k_all[0], transpose_b=True)  # [H, G*T, C]
                    if soft_cap is not None:
                        s = tf.tanh(s / soft_cap) * soft_cap
                    s = tf.reshape(s, [H, G, T, C]) + bias[None]
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
    info = {
        "family": fam.name,
        "num_layers": fam.num_layers,
        "kv_heads": fam.kv_heads,
        "head_dim": fam.head_dim,
        "capacity": g["capacity"],
        "prefill": list(g["prefill"]),
        "cache_layout": "[1, kv_heads, capacity, head_dim]",
        "tokenizer": tokenizer_info(model, build.plan["model"]),
        "preset_dir": preset_dir(build.plan["model"]) if g.get("bundle") else None,
    }
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
        for k, v in converter_kwargs.items():
            if k == "target_spec":
                for tk, tv in v.items():
                    setattr(converter.target_spec, tk, tv)
            else:
                setattr(converter, k, v)
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


# --------------------------------------------------------------------------------------
# Driving the artifact as LiteRT-LM does.


class Runtime:
    """The artifact's signature runners with the caches carried between calls, fed the
    way LiteRT-LM feeds them: prefill in chunks of an exported length (pads: token 0,
    position 0, fully masked rows), the last prompt token held back for the first decode."""

    def __init__(self, path, g, threads=None):
        np, tf, keras = tf_modules()
        from ai_edge_litert.interpreter import Interpreter

        self.np = np
        self.g = g
        names = g["names"]
        kwargs = {"num_threads": threads} if threads else {}
        self.interpreter = Interpreter(model_path=path, **kwargs)
        sigs = self.interpreter.get_signature_list()
        want = [names["prefill"].format(T=T) for T in g["prefill"]] + [names["decode"]]
        missing = [k for k in want if k not in sigs]
        if missing:
            raise BuildError("parity", f"the artifact lacks signature(s) {missing}; it has {sorted(sigs)}")
        self.prefill_runners = {T: self.interpreter.get_signature_runner(names["prefill"].format(T=T))
                                for T in g["prefill"]}
        self.decode_runner = self.interpreter.get_signature_runner(names["decode"])
        details = self.decode_runner.get_input_details()
        self.cache_names = sorted(n for n in details if n not in (names["tokens"], names["input_pos"], names["mask"]))
        self.cache_shapes = {n: tuple(details[n]["shape"]) for n in self.cache_names}
        self.mask_dtype = details[names["mask"]]["dtype"]
        self.reset()

    def reset(self):
        np = self.np
        self.caches = {n: np.zeros(s, np.float32) for n, s in self.cache_shapes.items()}

    def _mask(self, start, real, T):
        np = self.np
        C = self.g["capacity"]
        rows = np.arange(T)[:, None]
        cols = np.arange(C)[None, :]
        attend = (rows < real) & (cols <= start + rows)
        if self.mask_dtype == np.bool_:
            m = attend
        else:
            m = np.where(attend, 0.0, MASKED).astype(self.mask_dtype)
        return m[None, None]

    def _call(self, runner, tokens, positions, mask):
        names = self.g["names"]
        out = runner(**{names["tokens"]: tokens, names["input_pos"]: positions, names["mask"]: mask}, **self.caches)
        for n in self.cache_names:
            self.caches[n] = out[n]
        return out

    def plan_chunks(self, start, count):
        """The prefill lengths LiteRT-LM-style chunking uses for `count` tokens from
        `start`: the smallest length that takes the rest and fits, else the largest full
        chunk that fits."""
        C = self.g["capacity"]
        lengths = sorted(self.g["prefill"])
        chunks = []
        while count > 0:
            fit = [T for T in lengths if T >= count and start + T <= C]
            if fit:
                T = fit[0]
                chunks.append((T, count))
                return chunks
            full = [T for T in lengths if T <= count and start + T <= C]
            if not full:
                raise BuildError("parity", f"no prefill length fits {count} token(s) at position {start} "
                                 f"with capacity {C}")
            T = full[-1]
            chunks.append((T, T))
            start += T
            count -= T
        return chunks

    def prefill(self, ids):
        """Prefill `ids` from position 0; returns the next position."""
        np = self.np
        pos = 0
        for T, real in self.plan_chunks(0, len(ids)):
            tokens = np.zeros((1, T), np.int32)
            positions = np.zeros((T,), np.int32)
            tokens[0, :real] = ids[pos:pos + real]
            positions[:real] = np.arange(pos, pos + real)
            self._call(self.prefill_runners[T], tokens, positions, self._mask(pos, real, T))
            pos += real
        return pos

    def decode(self, token, pos):
        np = self.np
        out = self._call(self.decode_runner, np.array([[token]], np.int32), np.array([pos], np.int32),
                         self._mask(pos, 1, 1))
        return np.asarray(out[self.g["names"]["logits"]], np.float64).reshape(-1)

    def generate(self, prompt, steps, forced=None):
        """Greedy generation of `steps` tokens after `prompt` (ids, start token included).
        With `forced`, feed those tokens instead of the artifact's own picks (teacher
        forcing), so every step's logits are judged on the reference's context."""
        np = self.np
        self.reset()
        pos = self.prefill(prompt[:-1])
        token = prompt[-1]
        picks, logits = [], []
        for k in range(steps):
            lg = self.decode(token, pos)
            if not np.all(np.isfinite(lg)):
                raise BuildError("parity", f"decode step {k} at position {pos} gave non-finite logits")
            logits.append(lg)
            picks.append(int(np.argmax(lg)))
            token = forced[k] if forced is not None else picks[-1]
            pos += 1
        for n, c in self.caches.items():
            if not np.all(np.isfinite(c)):
                raise BuildError("parity", f"cache `{n}` holds NaN or Inf after generation (masked pad rows?)")
        return picks, np.stack(logits)


# --------------------------------------------------------------------------------------
# Parity with Keras generate().


def tokenize(pre, text):
    """Token ids as generation sees a prompt (`pre`: the model's preprocessor): the start
    token, no end token."""
    np, tf, keras = tf_modules()
    tok = getattr(pre, "tokenizer", None)
    if tok is None:
        raise BuildError("parity", "the preset has no tokenizer to tokenize the check prompts with")
    ids = [int(i) for i in np.asarray(tok(text)).reshape(-1)]
    start = getattr(tok, "start_token_id", None)
    if start is not None and getattr(pre, "add_start_token", True):
        ids = [int(start)] + ids
    return ids


def detokenize(pre, ids):
    try:
        np, tf, keras = tf_modules()
        text = pre.tokenizer.detokenize(np.asarray(ids, np.int32))
        if hasattr(text, "numpy"):
            text = text.numpy()
        return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    except Exception:  # noqa: BLE001 - the text is for people; the ids are what is checked
        return None


def keras_reference(model, prompt, steps):
    """Keras' greedy `generate()` ids for `steps` new tokens, and the logits that chose
    each of them (one forward pass over the generated sequence). `generate()` makes the
    first `steps - 1`; the last is the greedy pick of the forward pass's last logits, so
    Keras never needs a position beyond the cache (prompt + steps - 1 tokens are fed)."""
    np, tf, keras = tf_modules()
    n, total = len(prompt), len(prompt) + steps - 1
    seq = np.zeros((1, total), np.int32)
    seq[0, :n] = prompt
    if steps > 1:
        if type(getattr(model, "sampler", None)).__name__ != "GreedySampler":
            # Some families default to top-k sampling; the comparison is greedy on both sides.
            model.compile(sampler="greedy")
        mask = np.zeros((1, total), np.int32)
        mask[0, :n] = 1
        pre, jit = model.preprocessor, model.jit_compile
        # Compiled with XLA, Keras' generate() holds no transient copies of the weights;
        # as a TensorFlow graph it held about 6 GB more for a Gemma-2B-width model, more
        # than the whole export (docs/llm.md#memory).
        model.preprocessor, model.jit_compile, model.generate_function = None, True, None
        try:
            out = model.generate({"token_ids": seq, "padding_mask": mask}, stop_token_ids=None)
        finally:
            model.preprocessor, model.jit_compile, model.generate_function = pre, jit, None
        seq = np.asarray(out["token_ids"], np.int32)
    forward = tf.function(lambda s: model({"token_ids": s, "padding_mask": tf.ones_like(s)}, training=False), jit_compile=True)
    logits = np.asarray(forward(tf.constant(seq))[0, n - 1:total], np.float64)
    ids = [int(t) for t in seq[0, n:total]] + [int(np.argmax(logits[-1]))]
    return ids, logits


def check_prompts(pre, C, g):
    """The recipe's check prompts as ids, plus one that fills the cache to its last slot
    (prompt + new tokens = capacity, so the last decode step writes slot C-1)."""
    N = g["steps"]
    prompts = []
    for text in g["prompts"]:
        ids = tokenize(pre, text)
        if len(ids) + N > C:
            raise BuildError("parity", f"check prompt {text!r} ({len(ids)} tokens) plus {N} new tokens "
                             f"exceeds the cache capacity {C}")
        prompts.append({"text": text, "ids": ids, "fills_cache": False})
    if g["fill_cache"]:
        want = C + 1 - N
        pool = []
        for text in g["prompts"] * (want + 1):
            pool += tokenize(pre, " " + text)[1:]
            if len(pool) >= want:
                break
        base = tokenize(pre, "")
        ids = (base + pool)[:want]
        if len(ids) == want:
            prompts.append({"text": detokenize(pre, ids), "ids": ids, "fills_cache": True})
    return prompts


def references(model, g):
    """Keras' side of the generation check: the check prompts with `generate()`'s greedy
    ids and logits. Computed before the export, which releases the model."""
    c = g["check"]
    prompts = check_prompts(getattr(model, "preprocessor", None), g["capacity"], c)
    for p in prompts:
        p["keras_ids"], p["keras_logits"] = keras_reference(model, p["ids"], c["steps"])
    return prompts


def parity(build, refs, pre):
    """The artifact driven as LiteRT-LM drives it, against the Keras `references`."""
    np, tf, keras = tf_modules()
    g = build.plan["generation"]
    c = g["check"]
    quantized = c["quantized"]
    N = c["steps"]
    rt = Runtime(build.temp_output, g)
    atol, rtol = c["tolerance"]["atol"], c["tolerance"]["rtol"]
    results, agree, total, worst = [], 0, 0, 0.0
    for p in refs:
        ref_ids, ref_logits = p["keras_ids"], p["keras_logits"]
        own_ids, _ = rt.generate(p["ids"], N)
        forced_picks, lite_logits = rt.generate(p["ids"], N, forced=ref_ids)
        diff = np.abs(lite_logits - ref_logits)
        violations = int((diff > atol + rtol * np.abs(ref_logits)).sum())
        same = sum(int(a == b) for a, b in zip(forced_picks, ref_ids))
        agree += same
        total += N
        worst = max(worst, float(diff.max()))
        first_diff = next((k for k, (a, b) in enumerate(zip(own_ids, ref_ids)) if a != b), None)
        results.append({
            "prompt": p["text"],
            "prompt_tokens": len(p["ids"]),
            "prompt_ids": [int(i) for i in p["ids"]],
            "fills_cache": p["fills_cache"],
            "keras_ids": ref_ids,
            "litert_ids": own_ids,
            "keras_text": detokenize(pre, ref_ids),
            "litert_text": detokenize(pre, own_ids),
            "identical": first_diff is None,
            "first_difference": first_diff,
            "top1_agreement": same / N,
            "max_abs_logit_error": float(diff.max()),
            "mean_abs_logit_error": float(diff.mean()),
            "logit_violations": violations,
        })
    overall = agree / total if total else 1.0
    if quantized:
        ok = overall >= c["min_top1_agreement"]
    else:
        ok = all(r["identical"] and r["logit_violations"] == 0 for r in results)
    return {
        "steps": N,
        "capacity": g["capacity"],
        "quantized": quantized,
        "atol": atol,
        "rtol": rtol,
        "min_top1_agreement": c["min_top1_agreement"] if quantized else None,
        "top1_agreement": overall,
        "max_abs_logit_error": worst,
        "prompts": results,
        "ok": ok,
    }
