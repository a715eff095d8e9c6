"""The `.litertlm` bundle, run by Google's LiteRT-LM runtime (`litert_lm.Engine`, CPU) the
way an app runs it: the bundle's own default sampler (greedy, from its LlmMetadata), the
runtime's own tokenizer and start token, prompt templates off. litert writes the bundle (in Rust) and compares what this returns with the
generation check's interpreter-driven tokens; nothing here judges."""

import os
import time

from .protocol import BuildError


def check_bundle(request):
    """Generate `max_new` tokens for each prompt; return the runtime's prompt ids, its text,
    and its detokenization of the tokens litert expects (so both texts come from the same
    detokenizer)."""
    try:
        import litert_lm
    except ImportError as e:
        raise BuildError("bundle", f"LiteRT-LM is not in the worker environment ({e}); run `litert env setup`")
    litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
    start = time.perf_counter()
    try:
        engine = litert_lm.Engine(request["bundle"], backend=litert_lm.Backend.CPU())
    except Exception as e:  # noqa: BLE001 - the runtime's refusal is the finding
        raise BuildError("bundle", f"LiteRT-LM cannot load the bundle: {e}")
    load_seconds = time.perf_counter() - start
    prompts = []
    try:
        for p in request["prompts"]:
            # The bundle's own sampler (its LlmMetadata says greedy): what an app gets.
            session = engine.create_session(
                apply_prompt_template=False,
                max_output_tokens=int(request["max_new"]),
            )
            try:
                session.run_prefill([p["text"]])
                text = session.run_decode().texts[0]
            finally:
                session.close()
            prompts.append({
                "prompt": p["text"],
                "ids": [int(i) for i in engine.tokenize(p["text"])],
                "text": text,
                "expected_text": engine.detokenize([int(i) for i in p["expected_ids"]]),
            })
        result = {
            "start_token": engine.bos_token_id,
            "stop_tokens": engine.eos_token_ids,
            "load_seconds": round(load_seconds, 4),
            "seconds": round(time.perf_counter() - start, 4),
            "prompts": prompts,
        }
    finally:
        engine.close()
    return result


def preset_dir(model_plan):
    """The preset's local directory: the recipe's, or where KerasHub downloaded it."""
    preset = model_plan.get("preset") or {}
    if preset.get("path"):
        return preset["path"]
    name = preset.get("name")
    if not name:
        return None
    try:
        from keras_hub.src.utils.preset_utils import get_file

        return os.path.dirname(get_file(name, "config.json"))
    except Exception:  # noqa: BLE001 - without it, apply says the bundle has no preset directory
        return None
