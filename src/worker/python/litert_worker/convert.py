"""Stage `convert`: the plan's converter settings as TFLiteConverter arguments, and the
export itself, with the outputs under their names and unsupported ops named. Constants the
converter would fold with CPU-dependent arithmetic are folded here first, exactly (see
`exact_batch_norm`)."""

import contextlib
import errno
import os
import re
import tempfile

from .libs import tf_modules
from .protocol import BuildError
from .signature import keras_signature


def converter_kwargs(build, samples):
    np, tf, keras = tf_modules()
    c = build.plan["converter"]
    kw = {}
    opt = {"DEFAULT": tf.lite.Optimize.DEFAULT, "EXPERIMENTAL_SPARSITY": tf.lite.Optimize.EXPERIMENTAL_SPARSITY,
           "OPTIMIZE_FOR_SIZE": tf.lite.Optimize.OPTIMIZE_FOR_SIZE,
           "OPTIMIZE_FOR_LATENCY": tf.lite.Optimize.OPTIMIZE_FOR_LATENCY}
    ops = {"TFLITE_BUILTINS": tf.lite.OpsSet.TFLITE_BUILTINS, "TFLITE_BUILTINS_INT8": tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
           "SELECT_TF_OPS": tf.lite.OpsSet.SELECT_TF_OPS,
           "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8":
               tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
           "EXPERIMENTAL_STABLEHLO_OPS": tf.lite.OpsSet.EXPERIMENTAL_STABLEHLO_OPS}
    dtypes = {"float32": tf.float32, "float16": tf.float16, "int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16}
    kw["optimizations"] = [opt[o] for o in c["optimizations"]]
    target_spec = {"supported_ops": set(ops[o] for o in c["supported_ops"])}
    if c["supported_types"]:
        target_spec["supported_types"] = [dtypes[t] for t in c["supported_types"]]
    if c.get("experimental_select_user_tf_ops"):
        target_spec["experimental_select_user_tf_ops"] = list(c["experimental_select_user_tf_ops"])
    kw["target_spec"] = target_spec
    if c.get("inference_input_type"):
        kw["inference_input_type"] = dtypes[c["inference_input_type"]]
    if c.get("inference_output_type"):
        kw["inference_output_type"] = dtypes[c["inference_output_type"]]
    kw["allow_custom_ops"] = bool(c["allow_custom_ops"])
    for name, value in (c.get("flags") or {}).items():
        kw[name] = value
    if c["representative_dataset"]:
        if not samples:
            raise BuildError("calibration", "this quantization needs calibration samples, and there are none")

        def representative_dataset():
            for sample in samples:
                yield sample

        kw["representative_dataset"] = representative_dataset
    return kw


UNSUPPORTED_OP = re.compile(r"'((?:tf|tfl|mhlo|stablehlo)\.[A-Za-z0-9_]+)' op")


WRITE_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EFBIG: "the file is larger than the file system allows",
}


def unwritable(build, e):
    """A failed write says what and where: the artifact's directory, not the private
    temporary file litert builds it in."""
    where = os.path.dirname(build.plan.get("output") or "") or "."
    reason = WRITE_ERRORS.get(e.errno) or e.strerror or str(e)
    return BuildError("output_unwritable", f"cannot write the artifact in `{where}`: {reason}")


def convert(build, model, structure, specs, samples, names):
    """Export `model` to the build's temporary artifact, its outputs named by `names` (an
    `OutputNames`)."""
    np, tf, keras = tf_modules()
    kw = converter_kwargs(build, samples)
    signature = keras_signature(structure, specs)
    try:
        with exact_batch_norm():
            export(model, build.temp_output, signature, names, kw)
    except BuildError:
        raise
    except OSError as e:
        raise unwritable(build, e) from e
    except Exception as e:  # noqa: BLE001
        text = str(e)
        ops = sorted(set(UNSUPPORTED_OP.findall(text)))
        if "neither a custom op nor a flex op" in text or "Select TensorFlow op" in text or (
            ops and ("ConverterError" in type(e).__name__ or "failed to legalize" in text)
        ):
            raise BuildError(
                "unsupported_ops",
                f"the converter cannot express these ops with the allowed op sets: {', '.join(ops) or 'see log'}",
                ops=ops,
            ) from e
        raise
    if not os.path.exists(build.temp_output):
        raise BuildError("convert", "the converter reported success but wrote no file")


def export(model, path, signature, names, kw):
    """What `model.export(format="litert")` does in Keras 3.15 (an `ExportArchive`
    SavedModel, then `TFLiteConverter.from_saved_model` with builtin and Flex ops allowed
    until `kw` says otherwise), except that the endpoint returns the outputs as a dict
    under their names: a SavedModel signature calls a returned list's outputs `output_N`
    and keeps a dict's keys, and the artifact's signature takes its names from there."""
    np, tf, keras = tf_modules()

    def serve(*args):
        return names.name(model(*args, training=False))

    with tempfile.TemporaryDirectory() as saved_model:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", serve, input_signature=signature)
        archive.write_out(saved_model, verbose=False)
        names.check_renames()
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
        converter.experimental_enable_resource_variables = True
        configure(converter, kw)
        data = converter.convert()
    with open(path, "wb") as f:
        f.write(data)


def configure(converter, kw):
    """Set the plan's converter settings (`converter_kwargs`) on a `TFLiteConverter`."""
    for attr, value in kw.items():
        if attr == "target_spec":
            for key, v in value.items():
                setattr(converter.target_spec, key, v)
        else:
            setattr(converter, attr, value)


def add_metadata(path, entries):
    """Add litert's metadata entries (`[name, text]`, litert's provenance) to the converted
    artifact at `path`, each value in a buffer of its own, as LiteRT reads metadata. The
    model is rewritten through TensorFlow's object API, the way the converter itself adds
    its `CONVERSION_METADATA`, so the bytes depend only on the model and the entries."""
    if not entries:
        return
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(path)
    if any((b.offset or 0) > 1 for b in model.buffers or []):
        # Buffers after the FlatBuffer (a model over 2 GB) sit at absolute offsets that a
        # rewrite would move.
        raise BuildError("convert", "cannot add litert's metadata to a model whose buffers are stored after the FlatBuffer")
    model.metadata = list(model.metadata or [])
    for name, value in entries:
        buffer = schema.BufferT()
        buffer.data = list(value.encode("utf-8"))
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)
    flatbuffer_utils.write_model(model, path)


@contextlib.contextmanager
def exact_batch_norm():
    """Export inference-mode BatchNormalization as `x * scale + offset` with both constants
    computed here in float64 and rounded once to float32.

    Left to itself, TensorFlow folds `gamma * rsqrt(variance + epsilon)` while converting,
    with Eigen's vectorised rsqrt: the CPU's approximate `rsqrtps` plus one Newton step. That
    approximation differs between CPU vendors, so the folded weights differ in the last bit
    between machines (measured: 70 of 96 weights of `recipes/subclassed.yaml` one ulp apart
    between an AMD EPYC and an Intel Xeon; docs/reproducibility.md). A multiply and an add
    of constants fold the same everywhere (IEEE rounding), so the graph, the ops and the
    speed stay as before and the bytes no longer depend on the build machine.
    """
    np, tf, keras = tf_modules()
    from keras.src import backend, ops

    layer_class = keras.layers.BatchNormalization

    def value(variable):
        return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float64)
    original = layer_class.call

    def call(self, inputs, training=None, mask=None):
        if (training and self.trainable) or not isinstance(self.axis, int):
            return original(self, inputs, training=training, mask=mask)
        compute_dtype = backend.result_type(inputs.dtype, "float32")
        x = ops.cast(inputs, compute_dtype)
        with tf.init_scope():  # the export traces a graph; the variables' values are eager
            mean, variance = value(self.moving_mean), value(self.moving_variance)
            gamma = value(self.gamma) if self.scale else np.ones_like(mean)
            beta = value(self.beta) if self.center else np.zeros_like(mean)
        scale = gamma / np.sqrt(variance + float(self.epsilon))
        offset = beta - mean * scale
        # Broadcast as Keras' own batch_normalization does: a vector on the last axis (the
        # converter fuses only that form into a following FullyConnected), else reshaped.
        shape = [-1]
        if self.axis != -1:
            shape = [1] * len(x.shape)
            shape[self.axis] = -1
        scale = ops.convert_to_tensor(scale.astype(compute_dtype).reshape(shape))
        offset = ops.convert_to_tensor(offset.astype(compute_dtype).reshape(shape))
        return ops.cast(x * scale + offset, self.compute_dtype)

    layer_class.call = call
    try:
        yield
    finally:
        layer_class.call = original
