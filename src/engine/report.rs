//! The `apply` report: a checklist per artifact for people, or the same facts as JSON.

use serde::Serialize;

use super::gates::{GateResult, human_bytes};
use super::{Outcome, Status};
use crate::worker::protocol::{ParityReport, SignatureInput};

/// The report for people.
pub fn human(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        let p = &o.plan;
        match &o.status {
            Status::Built {
                result,
                size,
                gates,
            } => {
                out.push_str(&format!(
                    "✓ {}  {}  {}  {:.1}s\n",
                    p.id,
                    p.output.display(),
                    human_bytes(*size),
                    o.seconds
                ));
                checklist(&mut out, &result.signature, result.parity.as_ref(), gates);
            }
            Status::Rejected {
                result,
                size,
                gates,
                reasons,
            } => {
                out.push_str(&format!(
                    "✗ {}  not written ({}): {}\n",
                    p.id,
                    human_bytes(*size),
                    reasons.join("; ")
                ));
                checklist(&mut out, &result.signature, result.parity.as_ref(), gates);
            }
            Status::Failed(f) => {
                out.push_str(&format!(
                    "✗ {}  ({}) failed at `{}`: {}\n",
                    p.id,
                    p.recipe.display(),
                    f.stage,
                    f.message
                ));
                if let Some(h) = &f.hint {
                    out.push_str(&format!("    hint: {h}\n"));
                }
                if let Some(d) = &f.detail {
                    for line in d.lines() {
                        out.push_str(&format!("    | {line}\n"));
                    }
                }
            }
        }
    }
    let built = outcomes.iter().filter(|o| o.ok()).count();
    let failed = outcomes.len() - built;
    out.push_str(&format!("{built} built, {failed} failed\n"));
    out
}

fn checklist(
    out: &mut String,
    sig: &[SignatureInput],
    parity: Option<&ParityReport>,
    gates: &[GateResult],
) {
    let inputs: Vec<String> = sig
        .iter()
        .map(|s| {
            let dims: Vec<String> = s
                .shape
                .iter()
                .map(|d| d.map_or("?".into(), |d| d.to_string()))
                .collect();
            format!("{} {}[{}]", s.name, s.dtype, dims.join(","))
        })
        .collect();
    out.push_str(&format!("    ✓ inputs: {}\n", inputs.join(", ")));
    match parity {
        None => out.push_str("    - parity: off\n"),
        Some(p) if p.skipped.is_some() => {
            out.push_str(&format!(
                "    - parity skipped: {}\n",
                p.skipped.as_deref().unwrap_or_default()
            ));
        }
        Some(p) => {
            let mark = |ok: bool| if ok { "✓" } else { "✗" };
            out.push_str(&format!(
                "    {} names match the Keras model\n",
                mark(p.names_ok)
            ));
            out.push_str(&format!("    {} shapes match\n", mark(p.shapes_ok)));
            for o in &p.outputs {
                out.push_str(&format!(
                    "    {} {}: max |Δ| {:.3e}, mean |Δ| {:.3e} (atol {}, rtol {}; {} {} samples{})\n",
                    mark(o.ok),
                    o.name,
                    o.max_abs_error,
                    o.mean_abs_error,
                    o.atol.map_or("-".into(), |v| format!("{v:e}")),
                    o.rtol.map_or("-".into(), |v| format!("{v:e}")),
                    p.samples,
                    p.source,
                    if o.violations > 0 { format!(", {} values outside", o.violations) } else { String::new() },
                ));
            }
        }
    }
    for g in gates {
        out.push_str(&format!(
            "    {} {}\n",
            if g.ok { "✓" } else { "✗" },
            g.message
        ));
    }
}

#[derive(Serialize)]
struct JsonOutcome<'a> {
    id: &'a str,
    recipe: String,
    variant: Option<&'a str>,
    output: String,
    status: &'static str,
    seconds: f64,
    size_bytes: Option<u64>,
    reasons: Vec<String>,
    stage: Option<&'a str>,
    message: Option<&'a str>,
    hint: Option<&'a str>,
    result: Option<&'a crate::worker::protocol::BuildResult>,
    gates: Option<&'a [GateResult]>,
}

/// The report as JSON: an object with `ok` and one entry per artifact.
pub fn json(outcomes: &[Outcome]) -> String {
    let items: Vec<JsonOutcome<'_>> = outcomes
        .iter()
        .map(|o| {
            let base = JsonOutcome {
                id: &o.plan.id,
                recipe: o.plan.recipe.display().to_string(),
                variant: o.plan.variant.as_deref(),
                output: o.plan.output.display().to_string(),
                status: "built",
                seconds: o.seconds,
                size_bytes: None,
                reasons: vec![],
                stage: None,
                message: None,
                hint: None,
                result: None,
                gates: None,
            };
            match &o.status {
                Status::Built {
                    result,
                    size,
                    gates,
                } => JsonOutcome {
                    size_bytes: Some(*size),
                    result: Some(result),
                    gates: Some(gates),
                    ..base
                },
                Status::Rejected {
                    result,
                    size,
                    gates,
                    reasons,
                } => JsonOutcome {
                    status: "rejected",
                    size_bytes: Some(*size),
                    result: Some(result),
                    gates: Some(gates),
                    reasons: reasons.clone(),
                    ..base
                },
                Status::Failed(f) => JsonOutcome {
                    status: "failed",
                    stage: Some(&f.stage),
                    message: Some(&f.message),
                    hint: f.hint.as_deref(),
                    ..base
                },
            }
        })
        .collect();
    let ok = outcomes.iter().all(Outcome::ok);
    let value = serde_json::json!({ "ok": ok, "artifacts": items });
    format!(
        "{}\n",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    )
}
