"""The Python side of benches/runtime.rs: the official LiteRT interpreter on the same inputs
and under the same settings as `litert run` / `litert bench`.

  python runtime_compare.py outputs MODEL IN.npz EXPECTED.npz
      Makes deterministic inputs for MODEL's default signature (or its subgraph 0 inputs when it
      has no SignatureDefs), saves them to IN.npz by input name, runs the interpreter
      (XNNPACK, 1 thread) and saves its outputs by output name to EXPECTED.npz. Prints the
      signature key it used, or a JSON line {"skip": reason}.

  python runtime_compare.py bench MODEL THREADS WARMUP ITERATIONS
      Times `Interpreter.invoke()` in a loop after a warm-up (XNNPACK, THREADS threads) and
      prints {"median_ms": ..., "p90_ms": ..., "p99_ms": ...} as JSON.
"""

import json
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def make_input(detail, rng):
    dtype = np.dtype(detail["dtype"])
    shape = [max(int(d), 1) for d in detail["shape"]]
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0, 8, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    raise ValueError(f"input dtype {dtype} is not generated")


def outputs(model, in_path, out_path):
    interp = Interpreter(model_path=model, num_threads=1)
    rng = np.random.default_rng(0)
    sigs = interp.get_signature_list()
    key = "serving_default" if "serving_default" in sigs else (sorted(sigs)[0] if sigs else None)
    try:
        if key is not None:
            runner = interp.get_signature_runner(key)
            feeds = {n: make_input(d, rng) for n, d in runner.get_input_details().items()}
            result = runner(**feeds)
        else:
            interp.allocate_tensors()
            feeds = {}
            for d in interp.get_input_details():
                feeds[d["name"]] = make_input(d, rng)
                interp.set_tensor(d["index"], feeds[d["name"]])
            interp.invoke()
            result = {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}
    except Exception as e:  # noqa: BLE001 - reported to the bench as a skip
        print(json.dumps({"skip": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}))
        return
    np.savez(in_path, **feeds)
    np.savez(out_path, **{k: np.asarray(v) for k, v in result.items()})
    print(json.dumps({"signature": key}))


def bench(model, threads, warmup, iterations):
    interp = Interpreter(model_path=model, num_threads=threads)
    interp.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], make_input(d, rng))
    for _ in range(warmup + 1):
        interp.invoke()
    samples = []
    for _ in range(iterations):
        t = time.perf_counter()
        interp.invoke()
        samples.append((time.perf_counter() - t) * 1e3)
    samples.sort()

    def pct(p):
        return samples[min(len(samples), max(1, int(np.ceil(p / 100 * len(samples))))) - 1]

    print(json.dumps({"median_ms": float(np.median(samples)), "p90_ms": pct(90), "p99_ms": pct(99)}))


if __name__ == "__main__":
    if sys.argv[1] == "outputs":
        outputs(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        bench(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
