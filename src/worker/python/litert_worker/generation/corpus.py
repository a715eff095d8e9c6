"""The corpus check: a held-out text, teacher-forced through the artifact as a device runs
it and through Keras, compared prediction by prediction.

The text is tokenized once (start token first, as generation sees a prompt) and cut into
windows that fit the cache. A window is the start token, then up to `capacity - 1` corpus
tokens; after the first, a window repeats the last `capacity // 2` tokens before it as
context, so every corpus token after the first is predicted exactly once and none from
a bare start token (except the first, as a generation would). On the artifact a window runs
as LiteRT-LM runs a prompt and then generates: the context is prefilled in chunks of the
exported lengths and every later token is fed to `decode`, one step at a time, each
step's `logits` predicting the next corpus token (teacher forcing: the corpus token, not
the artifact's pick, is fed next). The prefill signatures give no logits, so the tokens
they take are context only. Keras runs one forward pass of the causal LM over the same
window at the same positions (0 on), whose logits at the same places predict the same
tokens.

Measured per prediction: the top-1 token on each side and each side's negative
log-likelihood of the corpus token; reported: the top-1 agreement, each side's perplexity
(exp of the mean NLL) and their ratio. The engine judges them against the recipe's gates.
Only those numbers cross from Keras to the comparison, never a vocabulary-wide row per
token (a 256k vocabulary over a thousand tokens is a gigabyte)."""

from ..libs import tf_modules
from ..protocol import BuildError
from .embedding import lean_heads
from .text import tokenize


def windows(n, prefix, capacity):
    """The windows over `n` corpus tokens after `prefix` start tokens (0 or 1), as
    `(begin, first, end)`: the window holds the prefix and corpus tokens `begin..end`, and
    predicts corpus tokens `first..end` (the earlier ones are its context)."""
    context = max(1, capacity // 2 - prefix)
    span = capacity - prefix
    out = []
    first = 0 if prefix else 1
    begin = 0
    while first < n:
        end = min(n, begin + span)
        out.append((begin, first, end))
        first = end
        begin = max(0, first - context)
    return out


def read(pre, c, capacity):
    """The corpus as ids (the start token apart), capped at `max_tokens`, and its
    windows."""
    path = c["path"]
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise BuildError("parity", f"cannot read the corpus `{path}`: {e}") from None
    empty = tokenize(pre, "")
    ids = tokenize(pre, text)
    prefix, body = ids[:len(empty)], ids[len(empty):]
    available = len(body)
    body = body[:c["max_tokens"]]
    if len(prefix) + len(body) < 2:
        raise BuildError("parity", f"the corpus `{path}` is {len(prefix) + len(body)} token(s) long; "
                         "predicting a next token needs at least 2")
    return {
        "prefix": prefix,
        "body": body,
        "available": available,
        "windows": windows(len(body), len(prefix), capacity),
    }


def keras_side(model, pre, g):
    """Keras' top-1 token and NLL for every corpus prediction, one forward pass per window.
    Computed before the export, which releases the model."""
    np, tf, keras = tf_modules()
    corpus = read(pre, g["check"]["corpus"], g["capacity"])

    C = g["capacity"]

    def score(tokens, mask):
        logits = model({"token_ids": tokens, "padding_mask": mask}, training=False)[0]
        # The logits at position k predict token k + 1.
        logits = tf.cast(logits[:-1], tf.float32)
        picked = tf.gather(logits, tokens[0, 1:], axis=1, batch_dims=1)
        nll = tf.reduce_logsumexp(logits, axis=-1) - picked
        return tf.argmax(logits, axis=-1, output_type=tf.int32), nll

    # Eagerly, as `keras_reference` runs (no float32 copy of every weight at once). A short
    # last window is padded at its end, which causal attention keeps from the positions
    # before it, so every window has one shape.
    top1, nll = [], []
    for begin, first, end in corpus["windows"]:
        w = corpus["prefix"] + corpus["body"][begin:end]
        start = len(corpus["prefix"]) + first - begin
        tokens = np.zeros((1, C), np.int32)
        mask = np.zeros((1, C), np.int32)
        tokens[0, :len(w)], mask[0, :len(w)] = w, 1
        with lean_heads():
            a, b = score(tf.constant(tokens), tf.constant(mask))
        top1 += [int(x) for x in np.asarray(a)[start - 1:len(w) - 1]]
        nll += [float(x) for x in np.asarray(b, np.float64)[start - 1:len(w) - 1]]
    return {**corpus, "keras_top1": top1, "keras_nll": nll}


def measure(rt, ref, path):
    """The artifact's side of every prediction, driven by `rt` (a `Runtime`), against
    Keras' `ref`; the numbers the report and the gates read."""
    np = rt.np
    prefix, body = ref["prefix"], ref["body"]
    top1, nll, k = [], [], 0
    for begin, first, end in ref["windows"]:
        w = prefix + body[begin:end]
        start = len(prefix) + first - begin
        for pos, logits in rt.teacher_forced(w, start):
            target = w[pos + 1]
            top = float(np.max(logits))
            top1.append(int(np.argmax(logits)))
            nll.append(float(top + np.log(np.sum(np.exp(logits - top))) - logits[target]))
            k += 1
    keras_top1, keras_nll = ref["keras_top1"], ref["keras_nll"]
    if k != len(keras_top1):
        raise BuildError("parity", f"the corpus gave {k} predictions on the artifact and {len(keras_top1)} in Keras")
    n = len(top1)
    agree = sum(int(a == b) for a, b in zip(top1, keras_top1))
    mean, keras_mean = float(np.mean(nll)), float(np.mean(keras_nll))
    perplexity, keras_perplexity = float(np.exp(mean)), float(np.exp(keras_mean))
    if not (np.isfinite(perplexity) and np.isfinite(keras_perplexity)):
        raise BuildError("parity", f"the perplexity on the corpus overflows (mean NLL {mean:.1f} on the artifact, "
                         f"{keras_mean:.1f} in Keras)")
    return {
        "file": path,
        "tokens": len(prefix) + len(body),
        "available_tokens": len(prefix) + ref["available"],
        "predictions": n,
        "windows": len(ref["windows"]),
        "top1_agreement": agree / n,
        "perplexity": perplexity,
        "keras_perplexity": keras_perplexity,
        # From the NLLs: the same quotient, without dividing two large numbers.
        "perplexity_ratio": float(np.exp(mean - keras_mean)),
    }
