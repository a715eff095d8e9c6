"""Speed half of `benches/generation.rs`, in one process so the figures compare:

- decode: the generation artifact's `decode` runner at position ~16 and near the end of
  the cache (same cost expected: attention always spans the whole masked cache), with
  XNNPACK at 1 and 2 threads;
- tokens/s: greedy generation driven exactly as `apply`'s check drives it (the worker's
  own `Runtime`: chunked prefill, then decode steps), against Keras `generate()` (greedy)
  on the same preset, each the median of 3 whole generations after a warm-up (Keras'
  cache is prompt + new tokens long, the artifact's the bench's capacity);
- forward: one `serving_default` call of each plain `model.export` (the whole window per
  call, so its cost grows with the window).

    python gen_speed.py SPEC.json   (prints one JSON object)

SPEC: {"worker": dir of litert_worker, "preset": dir, "artifact": path, "capacity": C,
"prefill": [...], "new_tokens": N, "runs": R, "forward": {"WINDOW": path}, "keras": bool}"""

import json
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

spec = json.load(open(sys.argv[1]))
sys.path.insert(0, spec["worker"])

import numpy as np  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from litert_worker.generation import Runtime  # noqa: E402

NAMES = {"prefill": "prefill_{T}", "decode": "decode", "tokens": "tokens", "input_pos": "input_pos",
         "mask": "mask", "k_cache": "kv_cache_k_{i}", "v_cache": "kv_cache_v_{i}", "logits": "logits"}
C = spec["capacity"]
g = {"names": NAMES, "prefill": spec["prefill"], "capacity": C, "mask_dtype": "float32"}
runs = spec["runs"]
N = spec["new_tokens"]
PROMPT = [2, 5, 9, 11, 7, 14, 6, 8]  # start token + ids the tiny tokenizer knows


def median_ms(f, n):
    f()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def median_s(f, n=3):
    """Median seconds of `n` whole generations (a shared machine makes single runs noisy)."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


out = {"decode": {}, "artifact_tokens_per_s": {}, "forward_ms": {}}
for threads in (1, 2):
    rt = Runtime(spec["artifact"], g, threads=threads)
    # Time per decode step at a position: the runner as LiteRT-LM calls it (caches in and
    # out of the same names), positions fixed so every call costs the same.
    per_pos = {}
    for pos in (16, C - 2):
        per_pos[str(pos)] = median_ms(lambda pos=pos: rt.decode(5, pos), runs)
    out["decode"][str(threads)] = {"ms_at": per_pos, "ratio_end_vs_16": per_pos[str(C - 2)] / per_pos["16"]}
    rt.generate(PROMPT, 2)  # warm
    out["artifact_tokens_per_s"][str(threads)] = N / median_s(lambda: rt.generate(PROMPT, N))
    del rt

for window, path in spec["forward"].items():
    per = {}
    for threads in (1, 2):
        it = Interpreter(model_path=path, num_threads=threads)
        run = it.get_signature_runner()
        args = {d: np.ones(v["shape"], v["dtype"]) for d, v in run.get_input_details().items()}
        per[str(threads)] = median_ms(lambda run=run, args=args: run(**args), max(3, runs // 10))
        del it, run
    out["forward_ms"][window] = per

if spec["keras"]:
    import keras_hub

    model = keras_hub.models.CausalLM.from_preset(spec["preset"])
    model.compile(sampler="greedy")
    model.preprocessor = None
    total = len(PROMPT) + N
    seq = np.zeros((1, total), np.int32)
    seq[0, :len(PROMPT)] = PROMPT
    mask = np.zeros((1, total), np.int32)
    mask[0, :len(PROMPT)] = 1
    model.generate({"token_ids": seq, "padding_mask": mask}, stop_token_ids=None)  # traces
    out["keras_tokens_per_s"] = N / median_s(
        lambda: model.generate({"token_ids": seq, "padding_mask": mask}, stop_token_ids=None))
    out["keras_cache_length"] = total

print(json.dumps(out))
