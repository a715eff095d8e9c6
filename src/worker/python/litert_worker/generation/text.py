"""The preset's tokenizer as generation uses it: a text as the ids a prompt becomes (start
token first, no end token), and ids back as text for people."""

from ..libs import tf_modules
from ..protocol import BuildError


def tokenize(pre, text):
    """Token ids as generation sees a prompt (`pre`: the model's preprocessor): the start
    token, no end token."""
    np, tf, keras = tf_modules()
    tok = getattr(pre, "tokenizer", None)
    if tok is None:
        raise BuildError("parity", "the preset has no tokenizer to tokenize the check's text with")
    ids = [int(i) for i in np.asarray(tok(text)).reshape(-1)]
    start = getattr(tok, "start_token_id", None)
    if start is not None and getattr(pre, "add_start_token", True):
        ids = [int(start)] + ids
    return ids


def detokenize(pre, ids):
    try:
        np, tf, keras = tf_modules()
        text = pre.tokenizer.detokenize(np.asarray(ids, np.int32))
        if hasattr(text, "numpy"):
            text = text.numpy()
        return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    except Exception:  # noqa: BLE001 - the text is for people; the ids are what is checked
        return None
