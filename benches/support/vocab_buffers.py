"""Which distinct buffers of a `.tflite` hold a vocabulary-sized matrix, for
`benches/generation.rs`: 2 means a tied embedding is stored twice (once for the token
lookup, once for the logits). `litert inspect --json` names no buffer indices and lists only
the five largest weights, which on a tiny model are mask and RoPE constants, so this reads
the FlatBuffer itself (memory-mapped and lazily, so a multi-GB file costs no memory).

    python vocab_buffers.py MODEL.tflite ELEMENTS

Prints one JSON list, one entry per distinct buffer with data whose tensors have ELEMENTS
elements: {"buffer": index, "dtype": "INT8", "shape": [...], "bytes": n, "tensors": k}."""

import json
import mmap
import sys

from ai_edge_litert import schema_py_generated as schema

TYPES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


def main(path, elements):
    with open(path, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    model = schema.Model.GetRootAs(data, 0)
    found = {}
    for s in range(model.SubgraphsLength()):
        sub = model.Subgraphs(s)
        for t in range(sub.TensorsLength()):
            tensor = sub.Tensors(t)
            index = tensor.Buffer()
            if index == 0:  # buffer 0 is the empty sentinel: activations, inputs
                continue
            shape = [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []
            n = 1
            for d in shape:
                n *= d
            if n != elements:
                continue
            buffer = model.Buffers(index)
            # Inline data, or (files over 2 GB) an offset/size outside the FlatBuffer.
            size = buffer.DataLength() or buffer.Size()
            if not size:
                continue
            entry = found.setdefault(index, {"buffer": index, "dtype": TYPES.get(tensor.Type(), "?"),
                                             "shape": shape, "bytes": int(size), "tensors": 0})
            entry["tensors"] += 1
    print(json.dumps(sorted(found.values(), key=lambda e: e["buffer"])))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]))
