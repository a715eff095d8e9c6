"""Dump what the official LiteRT interpreter reports about .tflite models, as JSON.

Usage: python interpreter_dump.py MODEL...   (prints {path: description} on stdout)

Used by tests/tflite_crosscheck.rs to check `litert inspect --json --tensors`, and by
benches/inspect.rs as the Python route being compared (`--bench MODEL`: only what a user
would call to learn a model's interface, timed without the imports).
"""

import collections
import json
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def ints(values):
    return [int(v) for v in values]


def tensor(d):
    qp = d["quantization_parameters"]
    sp = d.get("sparsity_parameters") or {}
    sparsity = None
    if sp:
        sparsity = {
            "traversal_order": ints(sp.get("traversal_order", [])),
            "block_map": ints(sp.get("block_map", [])),
            "dim_metadata": [
                {"format": int(m["format"]), "dense_size": int(m.get("dense_size", 0))}
                for m in sp.get("dim_metadata", [])
            ],
        }
    return {
        "index": int(d["index"]),
        "name": d["name"],
        "dtype": np.dtype(d["dtype"]).name,
        "shape": ints(d["shape"]),
        "shape_signature": ints(d["shape_signature"]),
        "scales": [float(s) for s in qp["scales"]],
        "zero_points": ints(qp["zero_points"]),
        "quantized_dimension": int(qp["quantized_dimension"]),
        "sparsity": sparsity,
    }


def describe(path):
    it = Interpreter(model_path=path)
    signatures = {}
    for key, io in it._get_full_signature_list().items():
        runner = it.get_signature_runner(key)
        signatures[key] = {
            "subgraph_index": int(getattr(runner, "_subgraph_index", -1)),
            "inputs": {k: int(v) for k, v in io["inputs"].items()},
            "outputs": {k: int(v) for k, v in io["outputs"].items()},
        }
    subgraphs = []
    for sg in range(it.num_subgraphs()):
        subgraphs.append([tensor(t) for t in it.get_tensor_details(sg)])
    ops = collections.Counter(op["op_name"] for op in it._get_ops_details())
    return {
        "signatures": signatures,
        "num_subgraphs": int(it.num_subgraphs()),
        "inputs": [int(d["index"]) for d in it.get_input_details()],
        "outputs": [int(d["index"]) for d in it.get_output_details()],
        "subgraphs": subgraphs,
        "ops": dict(ops),
    }


def bench(path):
    # The usual Python route to a model's interface, timed without the imports.
    start = time.perf_counter()
    it = Interpreter(model_path=path)
    sigs = it.get_signature_list()
    details = it.get_input_details() + it.get_output_details()
    elapsed = time.perf_counter() - start
    return {"signatures": len(sigs), "io": len(details), "in_process_s": elapsed}


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--bench":
        print(json.dumps(bench(args[1])))
    else:
        print(json.dumps({p: describe(p) for p in args}))
