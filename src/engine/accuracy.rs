//! Accuracy gates and the report section for them. The worker measures the artifact against
//! the float Keras model on held-out samples (per-output error, cosine similarity, top-1
//! agreement, label accuracy); this module judges those numbers against the recipe's
//! `accuracy` thresholds and renders them for people.

use super::gates::GateResult;
use crate::recipe::plan::AccuracyPlan;
use crate::worker::protocol::AccuracyReport;

/// Every threshold the plan sets, against the report. A missing report (the worker could
/// not compare) fails every threshold, so a gate is never passed silently.
pub fn check(plan: Option<&AccuracyPlan>, report: Option<&AccuracyReport>) -> Vec<GateResult> {
    let Some(plan) = plan else {
        return Vec::new();
    };
    let g = &plan.gates;
    let mut out = Vec::new();
    let missing = |gate: &'static str, why: &str| GateResult {
        gate,
        ok: false,
        message: format!("`accuracy.{gate}` cannot be checked: {why}"),
    };
    let report = match report {
        Some(r) if r.skipped.is_none() => r,
        Some(r) => {
            let why = r.skipped.clone().unwrap_or_default();
            return set_gates(g)
                .into_iter()
                .map(|gate| missing(gate, &why))
                .collect();
        }
        None => {
            return set_gates(g)
                .into_iter()
                .map(|gate| missing(gate, "no accuracy report"))
                .collect();
        }
    };
    if let Some(min) = g.min_cosine_similarity {
        for o in &report.outputs {
            let ok = o.cosine_similarity >= min;
            out.push(GateResult {
                gate: "min_cosine_similarity",
                ok,
                message: format!(
                    "{}: cosine similarity {:.6} {} {min}",
                    o.name,
                    o.cosine_similarity,
                    if ok { "≥" } else { "is below" }
                ),
            });
        }
    }
    if let Some(max) = g.max_abs_error {
        for o in &report.outputs {
            let ok = o.max_abs_error <= max;
            out.push(GateResult {
                gate: "max_abs_error",
                ok,
                message: format!(
                    "{}: max |Δ| {:.3e} {} {max:e}",
                    o.name,
                    o.max_abs_error,
                    if ok { "≤" } else { "exceeds" }
                ),
            });
        }
    }
    if let Some(max) = g.max_mean_abs_error {
        for o in &report.outputs {
            let ok = o.mean_abs_error <= max;
            out.push(GateResult {
                gate: "max_mean_abs_error",
                ok,
                message: format!(
                    "{}: mean |Δ| {:.3e} {} {max:e}",
                    o.name,
                    o.mean_abs_error,
                    if ok { "≤" } else { "exceeds" }
                ),
            });
        }
    }
    if let Some(min) = g.min_top1_agreement {
        let mut any = false;
        for o in &report.outputs {
            let Some(agree) = o.top1_agreement else {
                continue;
            };
            any = true;
            let ok = agree >= min;
            out.push(GateResult {
                gate: "min_top1_agreement",
                ok,
                message: format!(
                    "{}: top-1 agreement {} {} {}",
                    o.name,
                    percent(agree),
                    if ok { "≥" } else { "is below" },
                    percent(min)
                ),
            });
        }
        if !any {
            out.push(missing(
                "min_top1_agreement",
                "no output has a class axis (a last dimension of 2 or more)",
            ));
        }
    }
    if let Some(max) = g.max_accuracy_drop {
        match &report.labels {
            Some(l) => {
                let drop = l.float_accuracy - l.artifact_accuracy;
                let ok = drop <= max;
                out.push(GateResult {
                    gate: "max_accuracy_drop",
                    ok,
                    message: format!(
                        "accuracy {} vs float {} (drop {} {} {})",
                        percent(l.artifact_accuracy),
                        percent(l.float_accuracy),
                        percent(drop),
                        if ok { "≤" } else { "exceeds" },
                        percent(max)
                    ),
                });
            }
            None => out.push(missing(
                "max_accuracy_drop",
                "the report has no label accuracy",
            )),
        }
    }
    out
}

/// The accuracy gates a recipe sets (thresholds it must meet), by name.
pub fn set_gates(g: &crate::recipe::plan::AccuracyGates) -> Vec<&'static str> {
    [
        ("min_cosine_similarity", g.min_cosine_similarity.is_some()),
        ("max_abs_error", g.max_abs_error.is_some()),
        ("max_mean_abs_error", g.max_mean_abs_error.is_some()),
        ("min_top1_agreement", g.min_top1_agreement.is_some()),
        ("max_accuracy_drop", g.max_accuracy_drop.is_some()),
    ]
    .into_iter()
    .filter_map(|(n, set)| set.then_some(n))
    .collect()
}

/// `98.6%`, `0.25%`.
fn percent(f: f64) -> String {
    let p = f * 100.0;
    if p.abs() >= 10.0 || p == 0.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.2}%")
    }
}

/// The report section: one line per output, and the label accuracy.
pub fn render(report: &AccuracyReport) -> String {
    let mut out = String::new();
    if let Some(why) = &report.skipped {
        out.push_str(&format!("    - accuracy skipped: {why}\n"));
        return out;
    }
    let source = match report.source.as_str() {
        "data" => "held-out samples",
        "held_out" => "held-out calibration samples",
        "random" => "random inputs",
        other => other,
    };
    let count = match report.available {
        // Say how much of the data was used, so a sample is never mistaken for the whole.
        Some(n) if n > report.samples => format!("{} of {n}", report.samples),
        _ => report.samples.to_string(),
    };
    out.push_str(&format!(
        "    accuracy vs the float model ({count} {source}):\n"
    ));
    for o in &report.outputs {
        let top1 = o.top1_agreement.map_or(String::new(), |a| {
            format!(", top-1 agreement {}", percent(a))
        });
        out.push_str(&format!(
            "      {}: cosine {:.6} (min {:.6}), max |Δ| {:.3e}, mean |Δ| {:.3e}{top1}\n",
            o.name, o.cosine_similarity, o.min_cosine_similarity, o.max_abs_error, o.mean_abs_error
        ));
    }
    if let Some(l) = &report.labels {
        out.push_str(&format!(
            "      labels ({}): accuracy {} (float {}, {} {})\n",
            l.output,
            percent(l.artifact_accuracy),
            percent(l.float_accuracy),
            if l.artifact_accuracy <= l.float_accuracy {
                "drop"
            } else {
                "gain"
            },
            percent((l.float_accuracy - l.artifact_accuracy).abs())
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::plan::{AccuracyGates, AccuracySource};
    use crate::worker::protocol::{LabelAccuracy, OutputAccuracy};

    fn report() -> AccuracyReport {
        AccuracyReport {
            source: "data".into(),
            samples: 360,
            available: Some(1797),
            outputs: vec![OutputAccuracy {
                name: "output_0".into(),
                max_abs_error: 0.0123,
                mean_abs_error: 0.00042,
                cosine_similarity: 0.99987,
                min_cosine_similarity: 0.9931,
                top1_agreement: Some(0.9944),
            }],
            labels: Some(LabelAccuracy {
                output: "output_0".into(),
                float_accuracy: 0.9694,
                artifact_accuracy: 0.9667,
            }),
            skipped: None,
        }
    }

    fn plan(gates: AccuracyGates) -> AccuracyPlan {
        AccuracyPlan {
            source: AccuracySource::Random {
                samples: 8,
                seed: 0,
            },
            labels: Some("label".into()),
            gates,
        }
    }

    #[test]
    fn report_section_reads_well() {
        insta::assert_snapshot!(render(&report()));
    }

    #[test]
    fn gates_pass_and_fail() {
        let p = plan(AccuracyGates {
            min_cosine_similarity: Some(0.999),
            max_abs_error: Some(0.01),
            max_mean_abs_error: Some(0.001),
            min_top1_agreement: Some(0.99),
            max_accuracy_drop: Some(0.001),
        });
        let results = check(Some(&p), Some(&report()));
        let lines: Vec<String> = results
            .iter()
            .map(|g| {
                format!(
                    "{} {}: {}",
                    if g.ok { "ok  " } else { "FAIL" },
                    g.gate,
                    g.message
                )
            })
            .collect();
        insta::assert_snapshot!(lines.join("\n"));
    }

    #[test]
    fn a_skipped_comparison_fails_every_gate() {
        let p = plan(AccuracyGates {
            min_top1_agreement: Some(0.9),
            ..Default::default()
        });
        let mut r = report();
        r.skipped = Some("the artifact has Flex ops".into());
        let results = check(Some(&p), Some(&r));
        assert_eq!(results.len(), 1);
        assert!(!results[0].ok);
        assert!(results[0].message.contains("Flex"));
    }
}
