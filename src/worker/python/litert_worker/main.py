"""The request loop: one build at a time, each stage reporting progress, every failure a
structured error event."""

import os
import sys
import json
import traceback

from .accuracy import accuracy, check_accuracy_data
from . import generation
from .convert import convert, converter_kwargs
from .data import calibration_samples
from .libs import tf_modules, versions
from .load import load_model
from .parity import parity
from .protocol import PROTOCOL, Build, BuildError, emit, first_lines, tail
from .signature import build_signature, keras_output_names


def run_build(request):
    build = Build(request)
    try:
        build.progress("import", "importing TensorFlow")
        np, tf, keras = tf_modules()
        build.progress("load", build.plan["model"]["kind"])
        # Every build starts from a fresh Keras session, so auto-generated names (and with
        # them the artifact's bytes) do not depend on the builds this worker ran before.
        keras.utils.clear_session()
        model = load_model(build)
        if build.plan.get("generation"):
            emit(run_generation(build, model))
            return
        build.progress("signature")
        structure, specs = build_signature(build, model)
        samples, held_out, cal_summary = None, [], None
        if build.plan.get("calibration"):
            build.progress("calibrate")
            samples, held_out, cal_summary = calibration_samples(build, specs, model)
        if (build.plan.get("accuracy") or {}).get("source", {}).get("kind") == "data":
            # Held-out data is read and checked before the (slow) conversion starts.
            build.progress("calibrate", "accuracy data")
            check_accuracy_data(build, model, specs)
        build.progress("convert")
        convert(build, model, structure, specs, samples)
        report = None
        if build.plan["parity"]["enabled"]:
            build.progress("parity")
            report = parity(build, model, structure, specs, samples)
        acc = None
        if build.plan.get("accuracy"):
            build.progress("accuracy")
            acc = accuracy(build, model, structure, specs, held_out)
        build.progress("done")
        emit({
            "event": "result",
            "id": build.id,
            "signature": [{"name": s["name"], "shape": s["shape"], "dtype": s["dtype"]} for s in specs],
            "keras_outputs": keras_output_names(model),
            "parity": report,
            "calibration": cal_summary,
            "accuracy": acc,
            "timings": build.timings,
            "versions": versions(),
        })
    except BuildError as e:
        emit({"event": "error", "id": build.id, "stage": build.stage, "kind": e.kind, "message": str(e),
              "traceback": tail(traceback.format_exc()), **e.extra})
    except MemoryError:
        emit({"event": "error", "id": build.id, "stage": build.stage, "kind": "out_of_memory",
              "message": "the worker ran out of memory", "traceback": tail(traceback.format_exc())})
    except Exception as e:  # noqa: BLE001 - every failure becomes a structured error
        emit({"event": "error", "id": build.id, "stage": build.stage, "kind": type(e).__name__,
              "message": first_lines(str(e)), "traceback": tail(traceback.format_exc())})


def run_generation(build, model):
    """A causal LM as a prefill/decode artifact, checked against Keras `generate()`."""
    g = build.plan["generation"]
    build.progress("convert", "prefill/decode signatures")
    info = generation.export(build, model, converter_kwargs(build, None))
    report = None
    if g.get("check"):
        build.progress("parity", "generation")
        report = generation.parity(build, model)
    build.progress("done")
    decode = generation.decode_signature(g, info)
    return {
        "event": "result",
        "id": build.id,
        "signature": decode,
        "parity": None,
        "generation": {**info, "check": report},
        "calibration": None,
        "accuracy": None,
        "timings": build.timings,
        "versions": versions(),
    }


def main():
    emit({"event": "hello", "protocol": PROTOCOL, "python": sys.version.split()[0], "pid": os.getpid()})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError as e:
            emit({"event": "error", "id": None, "stage": "protocol", "kind": "protocol", "message": str(e)})
            continue
        op = request.get("op")
        if op == "build":
            run_build(request)
        elif op == "shutdown":
            break
        else:
            emit({"event": "error", "id": request.get("id"), "stage": "protocol", "kind": "protocol",
                  "message": f"unknown op {op!r}"})
    emit({"event": "bye"})


if __name__ == "__main__":
    main()
