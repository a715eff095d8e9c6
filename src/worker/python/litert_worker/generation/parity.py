"""Parity with Keras `generate()`: the check prompts tokenized as generation sees them,
Keras' greedy references (computed before the export releases the model), and the
artifact driven as LiteRT-LM drives it against them; with the recipe's corpus, the
teacher-forced comparison on it (`corpus`)."""

from ..libs import tf_modules
from ..protocol import BuildError
from . import corpus
from .embedding import lean_heads
from .runtime import Runtime
from .text import detokenize, tokenize


def keras_reference(model, prompt, steps):
    """Keras' greedy `generate()` ids for `steps` new tokens, and the logits that chose
    each of them (one forward pass over the generated sequence). `generate()` makes the
    first `steps - 1`; the last is the greedy pick of the forward pass's last logits, so
    Keras never needs a position beyond the cache (prompt + steps - 1 tokens are fed).

    Both run eagerly, one op at a time, so each layer's float32 view of its bfloat16
    weights lives only while the layer runs; compiled (XLA or a graph), TensorFlow kept
    a float32 copy of every weight at once (docs/llm.md#memory)."""
    np, tf, keras = tf_modules()
    n, total = len(prompt), len(prompt) + steps - 1
    seq = np.zeros((1, total), np.int32)
    seq[0, :n] = prompt
    if steps > 1:
        if type(getattr(model, "sampler", None)).__name__ != "GreedySampler":
            # Some families default to top-k sampling; the comparison is greedy on both sides.
            model.compile(sampler="greedy")
        mask = np.zeros((1, total), np.int32)
        mask[0, :n] = 1
        pre, eager = model.preprocessor, model.run_eagerly
        model.preprocessor, model.run_eagerly, model.generate_function = None, True, None
        try:
            # The generate function itself: `generate()` would also batch its outputs,
            # which fails on Gemma 3's (a text-only model returns `images: None`).
            generate = model.make_generate_function()
            # Its one full-length pass fills the cache; the logits it reads come one
            # step at a time after it, so that pass projects its last position only.
            with lean_heads(rows=(total - 1, total)):
                out = generate({"token_ids": seq, "padding_mask": mask}, stop_token_ids=None)
        finally:
            model.preprocessor, model.run_eagerly, model.generate_function = pre, eager, None
        seq = np.asarray(out["token_ids"], np.int32)
    s = tf.constant(seq)
    with lean_heads(rows=(n - 1, total)):
        logits = model({"token_ids": s, "padding_mask": tf.ones_like(s)}, training=False)
    logits = np.asarray(logits[0], np.float64)
    ids = [int(t) for t in seq[0, n:total]] + [int(np.argmax(logits[-1]))]
    return ids, logits


def check_prompts(pre, C, g):
    """The recipe's check prompts as ids, plus one that fills the cache to its last slot
    (prompt + new tokens = capacity, so the last decode step writes slot C-1)."""
    N = g["steps"]
    prompts = []
    for text in g["prompts"]:
        ids = tokenize(pre, text)
        if len(ids) + N > C:
            raise BuildError("parity", f"check prompt {text!r} ({len(ids)} tokens) plus {N} new tokens "
                             f"exceeds the cache capacity {C}")
        prompts.append({"text": text, "ids": ids, "fills_cache": False})
    if g["fill_cache"]:
        want = C + 1 - N
        pool = []
        for text in g["prompts"] * (want + 1):
            pool += tokenize(pre, " " + text)[1:]
            if len(pool) >= want:
                break
        base = tokenize(pre, "")
        ids = (base + pool)[:want]
        if len(ids) == want:
            prompts.append({"text": detokenize(pre, ids), "ids": ids, "fills_cache": True})
    return prompts


def references(model, g):
    """Keras' side of the generation check: the check prompts with `generate()`'s greedy
    ids and logits, and the corpus's predictions when the recipe names one. Computed before
    the export, which releases the model."""
    c = g["check"]
    pre = getattr(model, "preprocessor", None)
    prompts = check_prompts(pre, g["capacity"], c)
    for p in prompts:
        p["keras_ids"], p["keras_logits"] = keras_reference(model, p["ids"], c["steps"])
    text = corpus.keras_side(model, pre, g) if c.get("corpus") else None
    return {"prompts": prompts, "corpus": text}


def parity(build, refs, pre):
    """The artifact driven as LiteRT-LM drives it, against the Keras `references`."""
    g = build.plan["generation"]
    with Runtime(build.temp_output, g) as rt:
        return judge(rt, refs, pre, g)


def judge(rt, refs, pre, g):
    """The check's report: the artifact run by `rt` against Keras' `refs`."""
    np = rt.np
    c = g["check"]
    quantized = c["quantized"]
    N = c["steps"]
    atol, rtol = c["tolerance"]["atol"], c["tolerance"]["rtol"]
    results, agree, total, worst = [], 0, 0, 0.0
    for p in refs["prompts"]:
        ref_ids, ref_logits = p["keras_ids"], p["keras_logits"]
        own_ids, _ = rt.generate(p["ids"], N)
        forced_picks, lite_logits = rt.generate(p["ids"], N, forced=ref_ids)
        diff = np.abs(lite_logits - ref_logits)
        violations = int((diff > atol + rtol * np.abs(ref_logits)).sum())
        same = sum(int(a == b) for a, b in zip(forced_picks, ref_ids))
        agree += same
        total += N
        worst = max(worst, float(diff.max()))
        first_diff = next((k for k, (a, b) in enumerate(zip(own_ids, ref_ids)) if a != b), None)
        results.append({
            "prompt": p["text"],
            "prompt_tokens": len(p["ids"]),
            "prompt_ids": [int(i) for i in p["ids"]],
            "fills_cache": p["fills_cache"],
            "keras_ids": ref_ids,
            "litert_ids": own_ids,
            "keras_text": detokenize(pre, ref_ids),
            "litert_text": detokenize(pre, own_ids),
            "identical": first_diff is None,
            "first_difference": first_diff,
            "top1_agreement": same / N,
            "max_abs_logit_error": float(diff.max()),
            "mean_abs_logit_error": float(diff.mean()),
            "logit_violations": violations,
        })
    overall = agree / total if total else 1.0
    if quantized:
        ok = overall >= c["min_top1_agreement"]
    else:
        ok = all(r["identical"] and r["logit_violations"] == 0 for r in results)
    return {
        "steps": N,
        "capacity": g["capacity"],
        "quantized": quantized,
        "atol": atol,
        "rtol": rtol,
        "min_top1_agreement": c["min_top1_agreement"] if quantized else None,
        "top1_agreement": overall,
        "max_abs_logit_error": worst,
        "prompts": results,
        "ok": ok,
        "corpus": corpus.measure(rt, refs["corpus"], c["corpus"]["path"]) if refs["corpus"] else None,
    }
