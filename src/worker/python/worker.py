"""litert's conversion worker: Keras 3 + TensorFlow behind a JSON-lines protocol.

Embedded in the `litert` binary with the `litert_worker` package beside it, and run as
`python -u -B worker.py`. It reads one request per line on stdin and writes one event per
line on the protocol channel. It receives fully resolved build plans as data and never runs
code from a recipe unless the request says the user allowed it. TensorFlow is imported once
and serves every build of one `litert apply`.

Protocol (version 1):
  -> {"op": "build", "id": ID, "plan": PLAN, "temp_output": PATH, "allow_code": B, "allow_unsafe": B}
  -> {"op": "describe", "id": ID, "plan": PLAN, "allow_code": B, "allow_unsafe": B}
  -> {"op": "shutdown"}
  <- {"event": "hello", "protocol": 1, "python": "3.11.7", "pid": N}
  <- {"event": "progress", "id": ID, "stage": STAGE, "message": TEXT}
  <- {"event": "result", "id": ID, ...}
  <- {"event": "description", "id": ID, "structure": S, "inputs": [...], "outputs": [...], "class_name": C}
  <- {"event": "error", "id": ID, "stage": STAGE, "kind": KIND, "message": TEXT, "traceback": TAIL, ...}
  <- {"event": "bye"}
"""

import os
import sys

# The protocol gets its own copy of fd 1; fd 1 itself then points at stderr, so `print`
# and TensorFlow's C++ logging can never corrupt a protocol line. This runs before any
# other import.
_channel = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
os.dup2(2, 1)
sys.stdout = sys.stderr

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

# Python runs isolated (`-I`), which leaves the script's directory off the path; the package
# sits beside this script in the private directory litert wrote it to.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from litert_worker import protocol  # noqa: E402

protocol.open_channel(_channel)

from litert_worker.main import main  # noqa: E402

if __name__ == "__main__":
    main()
