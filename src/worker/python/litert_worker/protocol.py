"""The protocol channel and what every stage shares: events, structured errors, the build
being run. The channel is litert's copy of fd 1 (see `worker.py`)."""

import json
import time

PROTOCOL = 1
_PROTO = None


def open_channel(stream):
    """Use `stream` for protocol events (called once, by the entry script)."""
    global _PROTO
    _PROTO = stream



def emit(event):
    _PROTO.write(json.dumps(event, default=_jsonable) + "\n")
    _PROTO.flush()


def _jsonable(value):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:
        pass
    return str(value)


def names_text(names):
    """`a`, `b` for messages (not Python's list syntax); `none` for no names."""
    names = list(names)
    return ", ".join(f"`{n}`" for n in names) if names else "none"


def shape_text(shape):
    """`[1, 28, 28, 1]`, `?` for a dynamic dimension (not Python's `None`)."""
    return "[" + ", ".join("?" if d is None else str(int(d)) for d in shape) + "]"


class BuildError(Exception):
    """An error the user can act on, with a kind that litert turns into a hint."""

    def __init__(self, kind, message, **extra):
        super().__init__(message)
        self.kind = kind
        self.extra = extra


class Build:
    def __init__(self, request):
        self.id = request["id"]
        self.plan = request["plan"]
        self.temp_output = request.get("temp_output")
        # Entries litert adds to the metadata of an artifact the converter writes.
        self.metadata = request.get("metadata") or []
        self.allow_code = bool(request.get("allow_code"))
        self.allow_unsafe = bool(request.get("allow_unsafe"))
        self.stage = "start"
        self.timings = {}
        self._t = time.perf_counter()

    def progress(self, stage, message=""):
        now = time.perf_counter()
        # A stage can come back (a generation build's parity runs before and after the
        # conversion): its times add up.
        self.timings[self.stage] = round(self.timings.get(self.stage, 0.0) + now - self._t, 4)
        self._t = now
        self.stage = stage
        emit({"event": "progress", "id": self.id, "stage": stage, "message": message})


def first_lines(text, n=6):
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(lines[:n]) or "(no message)"


def tail(text, n=12):
    return "\n".join(text.rstrip().splitlines()[-n:])
