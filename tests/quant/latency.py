"""Interpreter latency of .tflite files: the median of many invocations after a warm-up,
all in one process on one thread, so the numbers compare with each other.

    python tests/quant/latency.py RUNS FILE.tflite... > latency.json
"""

import json
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def measure(path, runs):
    interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in interpreter.get_input_details():
        dtype = d["dtype"]
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            x = rng.integers(max(info.min, -100), min(info.max, 100), size=d["shape"]).astype(dtype)
        else:
            x = rng.random(d["shape"]).astype(dtype)
        interpreter.set_tensor(d["index"], x)
    for _ in range(max(3, runs // 10)):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        interpreter.invoke()
        times.append(time.perf_counter_ns() - start)
    times.sort()
    return {"runs": runs, "median_us": times[len(times) // 2] / 1000.0,
            "p10_us": times[len(times) // 10] / 1000.0, "p90_us": times[(len(times) * 9) // 10] / 1000.0}


def main():
    runs = int(sys.argv[1])
    print(json.dumps({path: measure(path, runs) for path in sys.argv[2:]}, indent=1))


if __name__ == "__main__":
    main()
