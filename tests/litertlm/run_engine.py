"""Generate greedily with Google's LiteRT-LM runtime (`litert_lm.Engine`, CPU) from a bundle,
and say what the toy's rule expects: `tests/litertlm.rs` compares the two.

    python run_engine.py BUNDLE TOKENIZER.spm MAX_NEW PROMPT...

Prints one JSON object: the runtime's start and stop tokens, and per prompt the runtime's
token ids for it, its generated text, the rule's expected ids and their text.
"""

import json
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import litert_lm  # noqa: E402
import sentencepiece as spm  # noqa: E402
import toy_llm  # noqa: E402


def main():
    bundle, tokenizer, max_new, prompts = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
    sp = spm.SentencePieceProcessor(model_file=tokenizer)
    engine = litert_lm.Engine(bundle, backend=litert_lm.Backend.CPU())
    stops = {tuple(ids) for ids in engine.eos_token_ids}
    out = {"start": engine.bos_token_id, "stop": engine.eos_token_ids, "prompts": []}
    for prompt in prompts:
        ids = engine.tokenize(prompt)
        expected = toy_llm.expected([engine.bos_token_id] + ids, max_new)
        for i, t in enumerate(expected):
            if (t,) in stops:
                expected = expected[:i]
                break
        session = engine.create_session(
            apply_prompt_template=False,
            sampler_config=litert_lm.SamplerConfig(top_k=1),
            max_output_tokens=max_new,
        )
        session.run_prefill([prompt])
        text = session.run_decode().texts[0]
        session.close()
        out["prompts"].append(
            {
                "prompt": prompt,
                "ids": ids,
                "sentencepiece_ids": sp.encode(prompt),
                "text": text,
                "expected_ids": expected,
                "expected_text": sp.decode(expected),
            }
        )
    engine.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
