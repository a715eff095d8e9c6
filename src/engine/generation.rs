//! Generation exports in the pipeline: the artifact read natively against LiteRT-LM's
//! prefill/decode contract (every signature present, each layer's cache pair an input and
//! an output of every signature under the same name with the same shape, static shapes,
//! `logits` of rank 3 from `decode`), the corpus gates on the worker's teacher-forced
//! measurements, and the generation check's lines in the report.

use super::gates::GateResult;
use crate::recipe::plan::GenerationPlan;
use crate::tflite::model::{ModelInfo, Signature};
use crate::worker::protocol::{CorpusCheck, GenerationCheck, GenerationResult};

/// The contract, checked on the file. One gate result: the problems found, or what holds.
pub fn contract(plan: &GenerationPlan, model: &ModelInfo, layers: u32) -> GateResult {
    let names = &plan.names;
    let keys = names.signature_keys(&plan.prefill);
    let mut problems = Vec::new();
    for key in &keys {
        if !model.signatures.iter().any(|s| &s.key == key) {
            problems.push(format!("signature `{key}` is missing"));
        }
    }
    let caches: Vec<String> = (0..layers)
        .flat_map(|i| [&names.k_cache, &names.v_cache].map(|n| n.replace("{i}", &i.to_string())))
        .collect();
    for sig in &model.signatures {
        let key = &sig.key;
        let t = if *key == names.decode {
            Some(1)
        } else {
            plan.prefill
                .iter()
                .copied()
                .find(|t| names.prefill.replace("{T}", &t.to_string()) == *key)
        };
        let Some(t) = t else {
            problems.push(format!("unexpected signature `{key}`"));
            continue;
        };
        let t = i32::try_from(t).unwrap_or(i32::MAX);
        let c = i32::try_from(plan.capacity).unwrap_or(i32::MAX);
        expect_input(&mut problems, sig, &names.tokens, "int32", &[1, t]);
        expect_input(&mut problems, sig, &names.input_pos, "int32", &[t]);
        let mask_dtype = match plan.mask_dtype {
            crate::recipe::types::MaskDtype::Float32 => "float32",
            crate::recipe::types::MaskDtype::Float16 => "float16",
            crate::recipe::types::MaskDtype::Bool => "bool",
        };
        expect_input(&mut problems, sig, &names.mask, mask_dtype, &[1, 1, t, c]);
        for cache in &caches {
            let input = sig.inputs.iter().find(|x| &x.name == cache);
            let output = sig.outputs.iter().find(|x| &x.name == cache);
            match (input, output) {
                (Some(i), Some(o)) if i.tensor.shape != o.tensor.shape => problems.push(format!(
                    "`{key}`: cache `{cache}` is {:?} in and {:?} out",
                    i.tensor.shape, o.tensor.shape
                )),
                (Some(_), Some(_)) => {}
                _ => problems.push(format!(
                    "`{key}`: cache `{cache}` must be an input and an output"
                )),
            }
        }
        if *key == names.decode {
            match sig.outputs.iter().find(|x| x.name == names.logits) {
                Some(l) if l.tensor.shape.len() == 3 && l.tensor.shape[..2] == [1, 1] => {}
                Some(l) => problems.push(format!(
                    "`{key}`: `{}` is {:?}, not [1, 1, vocabulary]",
                    names.logits, l.tensor.shape
                )),
                None => problems.push(format!("`{key}` has no output `{}`", names.logits)),
            }
        }
        for x in sig.inputs.iter().chain(&sig.outputs) {
            if x.tensor.shape_signature.iter().any(|d| *d < 0) {
                problems.push(format!("`{key}`: `{}` has a dynamic dimension", x.name));
            }
        }
    }
    let ok = problems.is_empty();
    GateResult {
        gate: "generation_contract",
        ok,
        message: if ok {
            format!(
                "LiteRT-LM contract: {} over {} cache pairs of capacity {}",
                keys.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                layers,
                plan.capacity
            )
        } else {
            format!("LiteRT-LM contract broken: {}", problems.join("; "))
        },
    }
}

fn expect_input(
    problems: &mut Vec<String>,
    sig: &Signature,
    name: &str,
    dtype: &str,
    shape: &[i32],
) {
    match sig.inputs.iter().find(|x| x.name == name) {
        None => problems.push(format!("`{}` has no input `{name}`", sig.key)),
        Some(x) if x.tensor.dtype != dtype || x.tensor.shape != shape => problems.push(format!(
            "`{}`: `{name}` is {}{:?}, expected {dtype}{shape:?}",
            sig.key, x.tensor.dtype, x.tensor.shape
        )),
        Some(_) => {}
    }
}

/// The corpus gates, when the plan names a corpus: the artifact's top-1 agreement with Keras
/// and its perplexity against Keras', judged here on the worker's measurements. A missing
/// measurement fails both, so a gate is never passed silently.
pub fn corpus_gates(plan: &GenerationPlan, result: Option<&GenerationResult>) -> Vec<GateResult> {
    let Some(corpus) = plan.check.as_ref().and_then(|c| c.corpus.as_ref()) else {
        return Vec::new();
    };
    let measured = result
        .and_then(|r| r.check.as_ref())
        .and_then(|c| c.corpus.as_ref());
    let Some(m) = measured else {
        return ["corpus_top1_agreement", "corpus_perplexity_ratio"]
            .map(|gate| GateResult {
                gate,
                ok: false,
                message: format!(
                    "corpus `{}`: not measured, so `{gate}` cannot be checked",
                    corpus.path.display()
                ),
            })
            .into();
    };
    let agreement_ok = m.top1_agreement >= corpus.min_top1_agreement;
    let ratio_ok = m.perplexity_ratio <= corpus.max_perplexity_ratio;
    vec![
        GateResult {
            gate: "corpus_top1_agreement",
            ok: agreement_ok,
            message: format!(
                "corpus: top-1 agreement {:.1}% {} {:.1}% (`corpus.min_top1_agreement`)",
                100.0 * m.top1_agreement,
                if agreement_ok { "≥" } else { "is below" },
                100.0 * corpus.min_top1_agreement
            ),
        },
        GateResult {
            gate: "corpus_perplexity_ratio",
            ok: ratio_ok,
            message: format!(
                "corpus: perplexity ratio {:.4} {} {} (`corpus.max_perplexity_ratio`)",
                m.perplexity_ratio,
                if ratio_ok { "≤" } else { "exceeds" },
                corpus.max_perplexity_ratio
            ),
        },
    ]
}

/// Why the generation check rejects the artifact, if it does.
pub fn rejection(check: &GenerationCheck) -> Option<String> {
    if check.ok {
        return None;
    }
    Some(match check.min_top1_agreement {
        Some(min) => format!(
            "generation: top-1 agreement with Keras {:.1}% < {:.1}%",
            100.0 * check.top1_agreement,
            100.0 * min
        ),
        None => "generation differs from Keras `generate()`".to_string(),
    })
}

/// The report lines for people.
pub fn render(g: &GenerationResult) -> String {
    let mut out = format!(
        "    generation ({}): {} layers, cache {} of capacity {}\n",
        g.family, g.num_layers, g.cache_layout, g.capacity
    );
    let Some(c) = &g.check else {
        out.push_str("    - generation check: off\n");
        return out;
    };
    let mark = |ok: bool| if ok { "✓" } else { "✗" };
    let gate = match c.min_top1_agreement {
        Some(min) => format!(" (gate ≥ {:.1}%)", 100.0 * min),
        None => String::new(),
    };
    out.push_str(&format!(
        "    {} {} new tokens per prompt against Keras generate(): top-1 agreement {:.1}%{gate}, max |Δ logit| {:.3e}\n",
        mark(c.ok),
        c.steps,
        100.0 * c.top1_agreement,
        c.max_abs_logit_error
    ));
    for p in &c.prompts {
        let fill = if p.fills_cache {
            " (fills the cache)"
        } else {
            ""
        };
        let same = if p.identical {
            "identical ids".to_string()
        } else {
            format!(
                "ids differ from step {}",
                p.first_difference.map_or("?".into(), |s| s.to_string())
            )
        };
        out.push_str(&format!(
            "      {} {} prompt tokens{fill}: {same}, top-1 {:.1}%, max |Δ| {:.3e}{}\n",
            mark(p.identical || c.quantized),
            p.prompt_tokens,
            100.0 * p.top1_agreement,
            p.max_abs_logit_error,
            if p.logit_violations > 0 {
                format!(
                    ", {} logits outside atol {:e} rtol {:e}",
                    p.logit_violations, c.atol, c.rtol
                )
            } else {
                String::new()
            }
        ));
        let text = |t: &Option<String>| t.as_deref().unwrap_or("?").replace('\n', "⏎");
        out.push_str(&format!("        keras : {}\n", text(&p.keras_text)));
        out.push_str(&format!("        litert: {}\n", text(&p.litert_text)));
    }
    if let Some(corpus) = &c.corpus {
        out.push_str(&render_corpus(corpus));
    }
    out
}

/// The corpus's numbers (the gates' lines judge them).
fn render_corpus(c: &CorpusCheck) -> String {
    let used = if c.tokens < c.available_tokens {
        format!(
            "the first {} of its {} tokens",
            c.tokens, c.available_tokens
        )
    } else {
        format!("{} tokens", c.tokens)
    };
    format!(
        "    - corpus `{}` ({used}, {} next-token predictions in {} windows, teacher-forced):\n      \
         top-1 agreement with Keras {:.1}%, perplexity {:.3} vs Keras' {:.3} (ratio {:.4})\n",
        c.file,
        c.predictions,
        c.windows,
        100.0 * c.top1_agreement,
        c.perplexity,
        c.keras_perplexity,
        c.perplexity_ratio
    )
}
