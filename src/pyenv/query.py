# Embedded in `litert` (src/pyenv/python.rs) and run as `python -c <this> MODE ARGS...`.
# Replies with exactly one JSON line on the original stdout. Everything else that writes to
# stdout (site hooks, TensorFlow's C++ logging, print() in imported modules) is sent to stderr
# first, so the reply cannot be corrupted. Keep this runnable on old Pythons (3.6+): for the
# base-interpreter check, a clear "too old" from litert beats a SyntaxError.
import json
import os
import sys

_reply = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr


def reply(obj):
    _reply.write(json.dumps(obj))
    _reply.write("\n")
    _reply.flush()


def main(argv):
    import platform

    mode = argv[0] if argv else "base"
    info = {
        "python_version": platform.python_version(),
        "implementation": sys.implementation.name,
        "executable": sys.executable,
        "prefix": sys.prefix,
        "platform": sys.platform,
        "machine": platform.machine(),
    }
    if mode == "base":
        import importlib.util

        info["venv"] = importlib.util.find_spec("venv") is not None
        info["ensurepip"] = importlib.util.find_spec("ensurepip") is not None
    elif mode == "packages":
        # argv: packages DIST... -- MODULE...
        import importlib.metadata
        import importlib.util

        rest = argv[1:]
        split = rest.index("--") if "--" in rest else len(rest)
        versions = {}
        for name in rest[:split]:
            try:
                versions[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                versions[name] = None
        info["packages"] = versions
        # find_spec on a top-level name locates the module without importing it.
        info["modules"] = {
            m: importlib.util.find_spec(m) is not None for m in rest[split + 1 :]
        }
    elif mode == "imports":
        # argv: imports MODULE...   (in order; each time is the extra cost of that import)
        import importlib
        import time
        import traceback

        results = []
        for name in argv[1:]:
            start = time.perf_counter()
            try:
                importlib.import_module(name)
                results.append(
                    {"module": name, "ok": True, "seconds": time.perf_counter() - start}
                )
            except BaseException as exc:  # noqa: BLE001 - report every failure, even SystemExit
                tail = traceback.format_exc().strip().splitlines()[-8:]
                results.append(
                    {
                        "module": name,
                        "ok": False,
                        "seconds": time.perf_counter() - start,
                        "error": "%s: %s" % (type(exc).__name__, exc),
                        "traceback": tail,
                    }
                )
        info["imports"] = results
    else:
        info["error"] = "unknown mode %r" % mode
    reply(info)


main(sys.argv[1:])
