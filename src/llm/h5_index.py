"""Print where each dataset of a Keras `.weights.h5` file lies in the file, as one JSON
line: litert reads the bytes itself (memory-mapped), so no tensor passes through Python.
Keras writes every dataset contiguous and uncompressed; any other layout is reported, not
hidden, and litert refuses it by name."""

import json
import sys

import h5py


def describe(name, obj, out):
    if not isinstance(obj, h5py.Dataset):
        return
    dtype = obj.dtype
    if dtype.kind == "f" and dtype.itemsize in (2, 4) and dtype.byteorder in ("<", "="):
        kind = {2: "float16", 4: "float32"}[dtype.itemsize]
    elif dtype.kind == "V" and dtype.itemsize == 2 and obj.attrs.get("dtype") in ("bfloat16", b"bfloat16"):
        kind = "bfloat16"
    else:
        kind = str(dtype)
    layout = "contiguous"
    if obj.chunks is not None or obj.compression is not None:
        layout = "chunked"
    offset = obj.id.get_offset()
    out.append({"name": name, "shape": list(obj.shape), "dtype": kind, "layout": layout,
                "offset": offset, "nbytes": int(obj.id.get_storage_size())})


def main(path):
    out = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: describe(name, obj, out))
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
