"""The request loop: one build at a time, each stage reporting progress, every failure a
structured error event."""

import os
import sys
import json
import traceback

from .accuracy import accuracy, check_accuracy_data
from . import generation
from .bundle import check_bundle
from .convert import add_metadata, convert, converter_kwargs
from .data import calibration_samples
from .libs import tf_modules, versions
from .load import load_model
from .parity import parity
from .protocol import PROTOCOL, Build, BuildError, emit, first_lines, tail
from .signature import OutputNames, build_signature, keras_output_names, model_inputs, inferred_signature


def run_build(request):
    build = Build(request)
    try:
        build.progress("import", "importing TensorFlow")
        np, tf, keras = tf_modules()
        build.progress("load", build.plan["model"]["kind"])
        # Every build starts from a fresh Keras session, so auto-generated names (and with
        # them the artifact's bytes) do not depend on the builds this worker ran before.
        keras.utils.clear_session()
        g = build.plan.get("generation")
        if g and g.get("writer") == "native" and not g.get("check"):
            # litert wrote the artifact; with no check to run, Keras never builds the model
            # (it would hold every weight): the preset's config and tokenizer describe it.
            build.progress("load", "tokenizer")
            info = generation.describe(build, generation.PresetOnly(build.plan["model"]))
            build.progress("done")
            emit(generation_result(build, info, None))
            return
        model = load_model(build)
        if build.plan.get("generation"):
            # The generation export releases the model before converting: hand over the
            # only reference.
            holder = [model]
            del model
            emit(run_generation(build, holder))
            return
        build.progress("signature")
        structure, specs = build_signature(build, model)
        names = OutputNames(build, model)
        if names.declared:
            names.check_renames(names.declared)
        samples, held_out, cal_summary, data_feeds = None, [], None, None
        if build.plan.get("calibration"):
            build.progress("calibrate")
            samples, held_out, cal_summary = calibration_samples(build, specs, model)
        if (build.plan.get("accuracy") or {}).get("source", {}).get("kind") == "data":
            # Held-out data is read and checked before the (slow) conversion starts.
            build.progress("calibrate", "accuracy data")
            data_feeds = check_accuracy_data(build, model, specs)
        build.progress("convert")
        convert(build, model, structure, specs, samples, names)
        add_metadata(build.temp_output, build.metadata)
        outputs = names.report()
        report = None
        if build.plan["parity"]["enabled"]:
            build.progress("parity")
            report = parity(build, model, structure, specs, names, samples, data_feeds)
        acc = None
        if build.plan.get("accuracy"):
            build.progress("accuracy")
            acc = accuracy(build, model, structure, specs, names, held_out)
        build.progress("done")
        emit({
            "event": "result",
            "id": build.id,
            "signature": [{"name": s["name"], "shape": s["shape"], "dtype": s["dtype"]} for s in specs],
            "outputs": outputs,
            "parity": report,
            "calibration": cal_summary,
            "accuracy": acc,
            "timings": build.timings,
            "versions": versions(),
        })
    except Exception as e:  # noqa: BLE001 - every failure becomes a structured error
        emit(failure(build.id, build.stage, e))


def run_generation(build, holder):
    """A causal LM as a prefill/decode artifact, checked against Keras `generate()`.
    `holder` holds the only reference to the model, which the export releases."""
    g = build.plan["generation"]
    # Refuse what cannot be exported before anything slow runs.
    fam = generation.exportable(holder.pop(), g)
    pre = getattr(fam.model, "preprocessor", None)
    refs = None
    if g.get("check"):
        build.progress("parity", "Keras generate() on the check prompts")
        refs = generation.references(fam.model, g)
    if g.get("writer") == "native":
        # litert wrote the artifact itself (src/llm) before this build started; the worker
        # describes and checks it.
        info = generation.describe(build, fam)
        # The artifact's run below needs the memory of Keras' model (a reference cycle
        # keeps it until collected).
        del fam
        generation.release()
    else:
        build.progress("convert", "prefill/decode signatures")
        # The export releases the model before converting: hand over the only reference.
        holder.append(fam)
        del fam
        info = generation.export(build, holder, converter_kwargs(build, None))
        add_metadata(build.temp_output, build.metadata)
    report = None
    if refs is not None:
        build.progress("parity", "generation")
        report = generation.parity(build, refs, pre)
    build.progress("done")
    return generation_result(build, info, report)


def generation_result(build, info, report):
    """The result event of a generation build."""
    g = build.plan["generation"]
    return {
        "event": "result",
        "id": build.id,
        "signature": generation.decode_signature(g, info),
        "parity": None,
        "generation": {**info, "check": report},
        "calibration": None,
        "accuracy": None,
        "timings": build.timings,
        "versions": versions(),
    }
def run_describe(request):
    """Load a model and report its inputs and outputs, for `litert init`."""
    build = Build(request)
    try:
        build.progress("import", "importing TensorFlow")
        np, tf, keras = tf_modules()
        keras.utils.clear_session()
        build.progress("load", build.plan["model"]["kind"])
        model = load_model(build)
        structure, inputs = model_inputs(model)
        if not inputs:
            structure, inputs = inferred_signature(model)
        inputs = [{"name": i["name"], "shape": _dims(i["shape"]), "dtype": str(i["dtype"])} for i in inputs]
        emit({
            "event": "description",
            "id": build.id,
            "structure": structure,
            "inputs": inputs,
            "outputs": describe_outputs(model),
            "class_name": type(model).__name__,
        })
    except Exception as e:  # noqa: BLE001 - every failure becomes a structured error
        emit(failure(build.id, build.stage, e))


def _dims(shape):
    return [None if d is None else int(d) for d in shape]


def describe_outputs(model):
    """The model's outputs with their Keras names: dict keys, else the output layers' names."""
    outputs = getattr(model, "outputs", None) or []
    struct = getattr(model, "_outputs_struct", None)
    if isinstance(struct, dict):
        pairs = list(struct.items())
    else:
        names = keras_output_names(model) or [""] * len(outputs)
        pairs = list(zip(names, outputs))
    return [{"name": str(n), "shape": _dims(t.shape), "dtype": str(t.dtype)} for n, t in pairs]


def run_check_bundle(request):
    """Run a written bundle with LiteRT-LM; one result or one error event."""
    rid = request.get("id")
    try:
        emit({"event": "progress", "id": rid, "stage": "bundle", "message": "LiteRT-LM"})
        emit({"event": "bundle_check", "id": rid, **check_bundle(request)})
    except Exception as e:  # noqa: BLE001 - every failure becomes a structured error
        emit(failure(rid, "bundle", e))


def failure(rid, stage, e):
    """The error event for an exception a build or a bundle check raised (called while it
    is being handled, for its traceback)."""
    event = {"event": "error", "id": rid, "stage": stage, "traceback": tail(traceback.format_exc())}
    if isinstance(e, BuildError):
        return {**event, "kind": e.kind, "message": str(e), **e.extra}
    # At the worker's limit Python raises MemoryError, TensorFlow's kernels raise
    # ResourceExhaustedError (under a generic "Graph execution error" headline) and the
    # converter's C++ fails with std::bad_alloc.
    if isinstance(e, MemoryError) or type(e).__name__ == "ResourceExhaustedError" or "std::bad_alloc" in str(e):
        return {**event, "kind": "out_of_memory", "message": out_of_memory_message()}
    return {**event, "kind": type(e).__name__, "message": first_lines(str(e))}


def limit_memory():
    """Cap this process's private memory at the budget litert computed (see
    `src/worker/memory.rs`): a hostile model then fails with MemoryError, not the machine."""
    limit = int(os.environ.get("LITERT_WORKER_MEMORY") or 0)
    if limit <= 0:
        return None
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    return limit


def out_of_memory_message():
    limit = int(os.environ.get("LITERT_WORKER_MEMORY") or 0)
    if limit > 0:
        shown = f"{limit / 2**30:.1f} GiB" if limit >= 2**30 else f"{limit / 2**20:.0f} MiB"
        return f"the worker ran out of memory (its limit is {shown}: LITERT_WORKER_MEMORY)"
    return "the worker ran out of memory"


def main():
    limit_memory()
    emit({"event": "hello", "protocol": PROTOCOL, "python": sys.version.split()[0], "pid": os.getpid()})
    # Every request needs TensorFlow: import it now, while litert prepares the first request
    # (the native LLM writer runs meanwhile). A failure is reported by the request that
    # imports it again.
    try:
        tf_modules()
    except Exception:  # noqa: BLE001
        pass
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
        elif op == "check_bundle":
            run_check_bundle(request)
        elif op == "describe":
            run_describe(request)
        elif op == "shutdown":
            break
        else:
            emit({"event": "error", "id": request.get("id"), "stage": "protocol", "kind": "protocol",
                  "message": f"unknown op {op!r}"})
    emit({"event": "bye"})


if __name__ == "__main__":
    main()
