"""Keras' token embedding (`ReversibleEmbedding`), run so that it reads only what it
uses of its stored table, for the check's Keras references of a large model."""

from contextlib import contextmanager

from ..libs import tf_modules


# Vocabulary rows the projection converts at once (128 MB of float32 at hidden 2048).
HEAD_CHUNK = 16384


@contextmanager
def lean_heads(rows=None):
    """Keras' token embedding (`ReversibleEmbedding`) reading only what it uses of its
    stored table: Keras' own converts the whole table to the compute dtype for every
    lookup, and for the vocabulary projection converts and transposes it, transient
    float32 copies of 2 GB each at Gemma 2B's width. Here a lookup converts the rows it
    takes, and the projection a slice of the vocabulary at a time: the same values,
    products and soft-cap, in the same dtype. `rows=(a, b)`: only the positions `a..b`
    of a full-sequence pass, the ones a reference reads."""
    np, tf, keras = tf_modules()
    cls = keras.layers.ReversibleEmbedding
    keras_call = cls.call

    def stored(variable):
        """The `tf.Variable` under a Keras variable: reading the Keras variable inside a
        layer converts all of it to the compute dtype."""
        raw = getattr(variable, "_value", None)
        return raw if isinstance(raw, tf.Variable) else None

    def call(layer, inputs, reverse=False):
        raw = None
        if not (getattr(layer, "quantization_mode", None) or getattr(layer, "lora_enabled", False)
                or (layer.mask_zero and not reverse)):
            raw = stored(layer.reverse_embeddings if reverse and not layer.tie_weights else layer.embeddings)
        if raw is None:
            # Keras' own path where its table is not one stored variable, or a mask is due.
            return keras_call(layer, inputs, reverse=reverse)
        if not reverse:
            # The rows looked up, then converted: Keras converts the table, then looks up.
            ids = inputs if inputs.dtype in (tf.int32, tf.int64) else tf.cast(inputs, tf.int32)
            return tf.cast(raw.sparse_read(ids), layer.compute_dtype)
        if rows is not None and len(inputs.shape) == 3 and inputs.shape[1] >= rows[1]:
            inputs = inputs[:, rows[0]:rows[1]]
        dtype = layer.reverse_dtype or layer.compute_dtype
        inputs = tf.cast(inputs, dtype)
        vocab = raw.shape[0] if layer.tie_weights else raw.shape[1]
        parts = []
        for a in range(0, vocab, HEAD_CHUNK):
            b = min(a + HEAD_CHUNK, vocab)
            # Rows of a tied table are read as rows (a sparse read copies only them: once
            # a variable has been gathered from, TensorFlow copies all of it on a plain read).
            w = tf.cast(raw.sparse_read(tf.range(a, b)) if layer.tie_weights else raw[:, a:b], dtype)
            parts.append(tf.matmul(inputs, w, transpose_b=layer.tie_weights))
        logits = tf.concat(parts, axis=-1)
        if layer.logit_soft_cap is not None:
            cap = layer.logit_soft_cap
            logits = tf.tanh(logits / cap) * cap
        return logits

    cls.call = call
    try:
        yield
    finally:
        cls.call = keras_call
