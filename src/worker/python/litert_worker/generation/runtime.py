"""Driving the artifact as LiteRT-LM does: its signature runners with the caches carried
between calls, prefill in chunks of the exported lengths, greedy decode."""

import os
import shutil
import tempfile

from ..libs import tf_modules
from ..protocol import BuildError
from .graph import MASKED


class Runtime:
    """The artifact's signatures with the caches carried between calls, fed the way
    LiteRT-LM feeds them: prefill in chunks of an exported length (pads: token 0,
    position 0, fully masked rows), the last prompt token held back for the first decode.

    It runs on LiteRT's `CompiledModel` with XNNPACK and, as LiteRT-LM does, XNNPACK's
    weight cache in a file (beside the artifact, removed on `close`): every signature
    then reads one packed copy of the weights, where the `Interpreter` packed them once
    per signature (measured for a 2.4 GiB artifact with three signatures: 8.6 GiB against
    3.3 GiB). A cache that cannot be written (a full disk) costs memory, not the check:
    XNNPACK then packs in memory."""

    def __init__(self, path, g, threads=None):
        np, tf, keras = tf_modules()
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.options import CpuOptions, Options

        self.np = np
        self.g = g
        names = g["names"]
        # In the artifact's private directory, which litert removes whatever happens here.
        self.scratch = tempfile.mkdtemp(prefix=".litert-xnnpack-", dir=os.path.dirname(os.path.abspath(path)))
        try:
            cpu = CpuOptions(num_threads=threads or 0,
                             xnnpack_weight_cache_path=os.path.join(self.scratch, "weights.xnnpack"))
            self.model = CompiledModel.from_file(path, options=Options(cpu_options=cpu))
            sigs = self.model.get_signature_list()
            want = [names["prefill"].format(T=T) for T in g["prefill"]] + [names["decode"]]
            missing = [k for k in want if k not in sigs]
            if missing:
                raise BuildError("parity", f"the artifact lacks signature(s) {missing}; it has {sorted(sigs)}")
            self.prefill_runners = {T: Signature(np, self.model, names["prefill"].format(T=T)) for T in g["prefill"]}
            self.decode_runner = Signature(np, self.model, names["decode"])
        except Exception:
            self.close()
            raise
        details = self.decode_runner.inputs
        self.cache_names = sorted(n for n in details if n not in (names["tokens"], names["input_pos"], names["mask"]))
        self.cache_shapes = {n: details[n][0] for n in self.cache_names}
        self.mask_dtype = details[names["mask"]][1]
        self.reset()

    def close(self):
        """Release the model and remove its weight cache."""
        self.model = self.prefill_runners = self.decode_runner = None
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

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

    def teacher_forced(self, ids, start):
        """The logits predicting `ids[start:]`, as `(position, logits)` after each decode
        step: `ids[:start - 1]` prefilled, then every later token decoded in turn, the
        given token fed whatever the artifact predicted. A generator, so a long window
        never holds more than one row of logits."""
        np = self.np
        self.reset()
        pos = self.prefill(ids[:start - 1])
        for token in ids[start - 1:-1]:
            logits = self.decode(token, pos)
            if not np.all(np.isfinite(logits)):
                raise BuildError("parity", f"decode at position {pos} gave non-finite logits on the corpus")
            yield pos, logits
            pos += 1

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


class Signature:
    """One signature of a `CompiledModel` called like the `Interpreter`'s signature
    runners: numpy arrays in by input name, numpy arrays out by output name."""

    def __init__(self, np, model, key):
        self.np, self.model, self.key = np, model, key
        self.inputs = {n: (tuple(d["shape"]), np.dtype(d["dtype"]))
                       for n, d in model.get_input_tensor_details(key).items()}
        self.outputs = {n: (tuple(d["shape"]), np.dtype(d["dtype"]))
                        for n, d in model.get_output_tensor_details(key).items()}
        self.in_buffers = {n: model.create_input_buffer_by_name(key, n) for n in self.inputs}
        self.out_buffers = {n: model.create_output_buffer_by_name(key, n) for n in self.outputs}

    def __call__(self, **arrays):
        np = self.np
        if set(arrays) != set(self.inputs):
            raise BuildError("parity", f"signature `{self.key}` takes {sorted(self.inputs)}, was given {sorted(arrays)}")
        for n, a in arrays.items():
            shape, dtype = self.inputs[n]
            self.in_buffers[n].write(np.ascontiguousarray(a, dtype).reshape(shape))
        self.model.run_by_name(self.key, self.in_buffers, self.out_buffers)
        return {n: self.out_buffers[n].read(int(np.prod(shape)), dtype).reshape(shape)
                for n, (shape, dtype) in self.outputs.items()}
