//! The `apply` report: a checklist per artifact for people, or the same facts as JSON.

use serde::Serialize;

use super::contract::SnapshotOutcome;
use super::gates::GateResult;
use super::{Converted, Outcome, Status};
use crate::recipe::BuildPlan;
use crate::tflite::model::SignatureTensor;
use crate::units::human_bytes;

/// The report for people.
pub fn human(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        let p = &o.plan;
        match &o.status {
            Status::Built(c) => {
                out.push_str(&format!(
                    "✓ {}  {}  {}  {:.1}s\n",
                    p.id,
                    p.output.display(),
                    human_bytes(c.size),
                    o.seconds
                ));
                because(&mut out, o);
                if let Some(from) = &c.restored_from {
                    out.push_str(&format!(
                        "    ✓ restored from the cache `{from}`: sha256 and snapshot verified, not converted here\n"
                    ));
                }
                checklist(&mut out, p, c);
            }
            Status::UpToDate(v) => {
                let mark = if v.reasons.is_empty() { "✓" } else { "✗" };
                out.push_str(&format!(
                    "{mark} {}  {}  up to date\n",
                    p.id,
                    p.output.display()
                ));
                for r in &v.reasons {
                    out.push_str(&format!("    ✗ {r}\n"));
                }
                snapshot_line(&mut out, &v.snapshot);
                if let Some(g) = v.golden.as_ref().filter(|g| g.ok) {
                    out.push_str(&format!(
                        "    ✓ golden outputs: {} sample(s) re-run natively, within the parity tolerance\n",
                        g.samples
                    ));
                }
            }
            Status::Rejected(c, reasons) => {
                out.push_str(&format!(
                    "✗ {}  not written ({}): {}\n",
                    p.id,
                    human_bytes(c.size),
                    reasons.join("; ")
                ));
                because(&mut out, o);
                checklist(&mut out, p, c);
                for hint in rejection_hints(p, c) {
                    out.push_str(&format!("    hint: {hint}\n"));
                }
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
                because(&mut out, o);
                if let Some(d) = &f.detail {
                    for line in d.lines() {
                        out.push_str(&format!("    | {line}\n"));
                    }
                }
            }
        }
    }
    let built = outcomes
        .iter()
        .filter(|o| matches!(o.status, Status::Built(_)))
        .count();
    let fresh = outcomes
        .iter()
        .filter(|o| matches!(o.status, Status::UpToDate(_)) && o.ok())
        .count();
    let failed = outcomes.len() - built - fresh;
    let restored = outcomes
        .iter()
        .filter(|o| matches!(&o.status, Status::Built(c) if c.restored_from.is_some()))
        .count();
    let restored = if restored > 0 {
        format!(" ({restored} from the cache)")
    } else {
        String::new()
    };
    out.push_str(&format!(
        "{built} built{restored}, {fresh} up to date, {failed} failed\n"
    ));
    out
}

/// Why it was (or would have been) rebuilt: what changed since the lock.
fn because(out: &mut String, o: &Outcome) {
    if !o.rebuilt_because.is_empty() {
        let label = match o.status {
            Status::Built(_) => "built because",
            _ => "changed since litert.lock:",
        };
        out.push_str(&format!("    {label} {}\n", o.rebuilt_because.join("; ")));
    }
}

fn snapshot_line(out: &mut String, s: &SnapshotOutcome) {
    match s {
        SnapshotOutcome::Same { path } => {
            out.push_str(&format!("    ✓ snapshot `{}` holds\n", path.display()))
        }
        SnapshotOutcome::Created { path } => {
            out.push_str(&format!("    ✓ snapshot `{}` written\n", path.display()))
        }
        SnapshotOutcome::Updated { path, diff } => {
            out.push_str(&format!("    ✓ snapshot `{}` updated:\n", path.display()));
            indent(out, diff);
        }
        SnapshotOutcome::Changed { path, diff, .. } => {
            out.push_str(&format!("    ✗ snapshot `{}` changed:\n", path.display()));
            indent(out, diff);
        }
        SnapshotOutcome::MissingInCi { path } => {
            out.push_str(&format!("    ✗ snapshot `{}` is missing\n", path.display()));
        }
        SnapshotOutcome::NotWritten { path } => {
            out.push_str(&format!(
                "    - snapshot `{}` not written (the artifact was rejected)\n",
                path.display()
            ));
        }
    }
}

fn indent(out: &mut String, text: &str) {
    for line in text.lines() {
        out.push_str(&format!("      {line}\n"));
    }
}

/// `8 samples: 5 from the calibration data, 3 random`.
fn parity_samples(p: &crate::worker::protocol::ParityReport) -> String {
    let data = match p.source.as_str() {
        "accuracy_data" => "the accuracy data",
        _ => "the calibration data",
    };
    match (p.from_data, p.random) {
        (0, _) => format!(
            "{} random samples (seeded N(0,1); the recipe has no data)",
            p.samples
        ),
        (d, 0) => format!("{d} samples from {data}"),
        (d, r) => format!("{} samples: {d} from {data}, {r} random", p.samples),
    }
}

/// What to do about a rejected artifact, for the reasons that have a next step.
pub fn rejection_hints(plan: &BuildPlan, c: &Converted) -> Vec<String> {
    let mut hints = Vec::new();
    if let Some(p) = c
        .result
        .parity
        .as_ref()
        .filter(|p| !p.ok && p.skipped.is_none())
    {
        let data = if p.from_data == 0 && p.random > 0 {
            " Parity ran on random inputs, which exaggerate a quantized model's error: give `calibration` or `accuracy.data` so it runs on real ones."
        } else {
            ""
        };
        let quantized = !plan.converter.optimizations.is_empty();
        if quantized {
            let worst = p
                .outputs
                .iter()
                .filter(|o| !o.ok)
                .map(|o| o.max_abs_error)
                .filter(|e| e.is_finite())
                .fold(0.0_f64, f64::max);
            let atol = tolerance_above(worst);
            let place = match &plan.variant {
                Some(v) => format!("under `variants.{v}`"),
                None => "in the recipe".to_string(),
            };
            hints.push(format!(
                "parity compares every output value with Keras' (tolerance: {}; {}).{data} A quantized variant's values move by design (here by up to {worst:.3}), so it is usually judged by `accuracy` on real data (e.g. `accuracy: {{data: {{npz: held_out.npz}}, min_cosine_similarity: 0.99}}`) rather than value by value: give it a parity tolerance its error fits (`parity: {{tolerance: {{\"*\": {{atol: {atol}, rtol: {atol}}}}}}}` {place}) or turn parity off for it (`parity: {{enabled: false}}`)",
                plan.parity.tolerance_from,
                parity_samples(p),
            ));
        } else {
            hints.push(format!(
                "parity compares every output value with Keras' (tolerance: {}; {}).{data} If `accuracy` shows the model still does its job, loosen `parity.tolerance` for this variant (e.g. `parity: {{tolerance: {{\"*\": {{atol: 0.05, rtol: 0.05}}}}}}`) or turn parity off for it (`parity: {{enabled: false}}`)",
                plan.parity.tolerance_from,
                parity_samples(p),
            ));
        }
    }
    if let Some(hint) = c.quantization.as_ref().and_then(|q| q.hint.clone()) {
        hints.push(hint);
    }
    hints
}

/// A round tolerance above an observed error: one significant digit, rounded up (0.093 →
/// 0.1, 0.23 → 0.3, 0.86 → 0.9), so the suggestion reads as a setting, not a measurement.
fn tolerance_above(error: f64) -> String {
    if error <= 0.0 {
        return "0.01".into();
    }
    let scale = 10f64.powf(error.log10().floor());
    let digit = (error / scale).floor() + 1.0;
    let value = digit * scale;
    // Print without float noise: as many decimals as the scale needs, no trailing zeros.
    let decimals = (-scale.log10().round()).max(0.0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Where the artifact's output names came from. A match with Keras is claimed only for an
/// output whose name in the artifact's signature is its Keras name.
fn output_names(out: &mut String, c: &Converted) {
    let artifact: Vec<&str> = c
        .model
        .signatures
        .first()
        .map(|s| s.outputs.iter().map(|o| o.name.as_str()).collect())
        .unwrap_or_default();
    let mut same = Vec::new();
    let mut lines = Vec::new();
    for (i, o) in c.result.outputs.iter().enumerate() {
        if !artifact.contains(&o.name.as_str()) {
            lines.push(format!(
                "    ✗ output `{}` is not in the artifact's signature\n",
                o.name
            ));
            continue;
        }
        match &o.keras {
            Some(keras) if *keras == o.name => same.push(format!("`{keras}`")),
            Some(keras) => lines.push(format!(
                "    - output `{}` is Keras' `{keras}`, renamed by the recipe's `outputs`\n",
                o.name
            )),
            None if o.name == format!("output_{i}") => lines.push(format!(
                "    - output `{}`: the model names none, so it is named by position (name it with `outputs` in the recipe)\n",
                o.name
            )),
            None => lines.push(format!(
                "    - output `{}`: the model names none, named by the recipe's `outputs`\n",
                o.name
            )),
        }
    }
    if !same.is_empty() {
        out.push_str(&format!(
            "    ✓ output names are the Keras model's: {}\n",
            same.join(", ")
        ));
    }
    for line in lines {
        out.push_str(&line);
    }
}

fn checklist(out: &mut String, p: &BuildPlan, c: &Converted) {
    let plan = p;
    // The artifact's own signature, as the reader sees it: what an app will bind to.
    if let [sig] = c.model.signatures.as_slice() {
        out.push_str(&format!("    ✓ inputs: {}\n", tensors(&sig.inputs)));
        out.push_str(&format!("    ✓ outputs: {}\n", tensors(&sig.outputs)));
    } else {
        for sig in &c.model.signatures {
            out.push_str(&format!(
                "    ✓ `{}`: {} → {}\n",
                sig.key,
                tensors(&sig.inputs),
                tensors(&sig.outputs)
            ));
        }
    }
    output_names(out, c);
    if let Some(cal) = c.result.calibration.as_ref().filter(|c| !c.cast.is_empty()) {
        out.push_str(&format!(
            "    - calibration data converted to the signature's dtypes: {}\n",
            cal.cast.join(", ")
        ));
    }
    let parity = c.result.parity.as_ref();
    let gates = &c.gates;
    match parity {
        None if c.result.generation.is_some() => {}
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
                "    {} input names match the Keras model\n",
                mark(p.names_ok)
            ));
            out.push_str(&format!("    {} shapes match\n", mark(p.shapes_ok)));
            out.push_str(&format!("    parity on {}\n", parity_samples(p)));
            for o in &p.outputs {
                let from = if plan.parity.tolerance.contains_key(&o.name) {
                    "the recipe's `parity.tolerance`"
                } else {
                    plan.parity.tolerance_from.as_str()
                };
                out.push_str(&format!(
                    "    {} {}: max |Δ| {:.3e}, mean |Δ| {:.3e} (atol {}, rtol {}: {from}{})\n",
                    mark(o.ok),
                    o.name,
                    o.max_abs_error,
                    o.mean_abs_error,
                    o.atol.map_or("-".into(), |v| format!("{v:e}")),
                    o.rtol.map_or("-".into(), |v| format!("{v:e}")),
                    if o.violations > 0 {
                        format!("; {} values outside", o.violations)
                    } else {
                        String::new()
                    },
                ));
            }
        }
    }
    if let Some(g) = &c.result.generation {
        out.push_str(&super::generation::render(g));
    }
    if let Some(b) = &c.bundle {
        out.push_str(&super::bundle::render(b));
    }
    if let Some(q) = &c.quantization {
        // Raw converter settings only warn: `!` rather than `✗`.
        let bad = if q.enforced { "✗" } else { "!" };
        out.push_str(&format!("    quantization `{}`:\n", q.mode));
        for check in &q.checks {
            out.push_str(&format!(
                "      {} {}\n",
                if check.ok { "✓" } else { bad },
                check.message
            ));
        }
    }
    if let Some(a) = &c.result.accuracy {
        out.push_str(&super::accuracy::render(a));
    }
    for g in gates {
        out.push_str(&format!(
            "    {} {}\n",
            if g.ok { "✓" } else { "✗" },
            g.message
        ));
    }
    snapshot_line(out, &c.snapshot);
}

/// `pixels float32[1,28,28]`, `image int8[1,?,?,3] (quantized)`. Three or more tensors
/// that differ only in a trailing number counting up from their first (a KV cache's layers)
/// are one entry, `kv_cache_k_{0..27} float32[1,1,512,256]`, where the first stood.
fn tensors(list: &[SignatureTensor]) -> String {
    let described: Vec<(&str, String)> = list
        .iter()
        .map(|t| {
            let q = if t.tensor.quantization.is_some() {
                " (quantized)"
            } else {
                ""
            };
            let what = format!(
                "{}{}{q}",
                t.tensor.dtype,
                crate::tflite::model::shape_text(&t.tensor.shape_signature)
            );
            (t.name.as_str(), what)
        })
        .collect();
    collapse_numbered(&described).join(", ")
}

/// `name what` per entry, runs of numbered names collapsed as [`tensors`] says.
fn collapse_numbered(list: &[(&str, String)]) -> Vec<String> {
    fn split(name: &str) -> Option<(&str, u64)> {
        let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
        let digits = &name[stem.len()..];
        // `x_01` is not a count: only canonical numbers collapse.
        let canonical = !digits.is_empty() && (digits == "0" || !digits.starts_with('0'));
        canonical
            .then(|| digits.parse().ok().map(|n| (stem, n)))
            .flatten()
    }
    // (stem, what) → the numbers in order of appearance.
    let mut groups: std::collections::HashMap<(&str, &str), Vec<u64>> = Default::default();
    for (name, what) in list {
        if let Some((stem, n)) = split(name) {
            groups.entry((stem, what.as_str())).or_default().push(n);
        }
    }
    let counts = |v: &[u64]| v.len() >= 3 && v.windows(2).all(|w| w[1] == w[0] + 1);
    let mut out = Vec::new();
    for (name, what) in list {
        let run = split(name).and_then(|(stem, n)| {
            let numbers = &groups[&(stem, what.as_str())];
            counts(numbers).then_some((stem, n, numbers))
        });
        match run {
            Some((stem, n, numbers)) if n == numbers[0] => out.push(format!(
                "{stem}{{{}..{}}} {what}",
                numbers[0],
                numbers[numbers.len() - 1]
            )),
            Some(_) => {}
            None => out.push(format!("{name} {what}")),
        }
    }
    out
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
    hint: Option<String>,
    result: Option<&'a crate::worker::protocol::BuildResult>,
    /// The artifact as `litert inspect --json` describes it.
    artifact: Option<&'a crate::tflite::model::ModelInfo>,
    gates: Option<&'a [GateResult]>,
    snapshot: Option<&'a SnapshotOutcome>,
    sha256: Option<&'a str>,
    /// Why it was rebuilt rather than up to date.
    rebuilt_because: &'a [String],
    /// The artifact checked against its quantization mode.
    quantization: Option<&'a super::quant::Verification>,
    /// The native re-run on golden outputs (`litert test`).
    #[serde(skip_serializing_if = "Option::is_none")]
    golden: Option<&'a super::golden::Check>,
    /// The cache the artifact was restored from instead of being converted.
    #[serde(skip_serializing_if = "Option::is_none")]
    restored_from: Option<&'a str>,
    /// The `.litertlm` bundle of a generation artifact, with LiteRT-LM's check.
    #[serde(skip_serializing_if = "Option::is_none")]
    bundle: Option<&'a super::bundle::Built>,
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
                artifact: None,
                gates: None,
                snapshot: None,
                sha256: None,
                rebuilt_because: &o.rebuilt_because,
                quantization: None,
                golden: None,
                restored_from: None,
                bundle: None,
            };
            match &o.status {
                Status::Built(c) => JsonOutcome {
                    size_bytes: Some(c.size),
                    result: Some(&c.result),
                    artifact: Some(&c.model),
                    gates: Some(&c.gates),
                    snapshot: Some(&c.snapshot),
                    sha256: Some(&c.sha256),
                    quantization: c.quantization.as_ref(),
                    restored_from: c.restored_from.as_deref(),
                    bundle: c.bundle.as_ref(),
                    ..base
                },
                Status::UpToDate(v) => JsonOutcome {
                    status: if v.reasons.is_empty() {
                        "up_to_date"
                    } else {
                        "rejected"
                    },
                    size_bytes: Some(v.size),
                    artifact: Some(&v.model),
                    snapshot: Some(&v.snapshot),
                    golden: v.golden.as_ref(),
                    reasons: v.reasons.clone(),
                    ..base
                },
                Status::Rejected(c, reasons) => JsonOutcome {
                    status: "rejected",
                    size_bytes: Some(c.size),
                    result: Some(&c.result),
                    artifact: Some(&c.model),
                    gates: Some(&c.gates),
                    snapshot: Some(&c.snapshot),
                    sha256: Some(&c.sha256),
                    quantization: c.quantization.as_ref(),
                    bundle: c.bundle.as_ref(),
                    reasons: reasons.clone(),
                    hint: Some(rejection_hints(&o.plan, c).join("\n")).filter(|h| !h.is_empty()),
                    ..base
                },
                Status::Failed(f) => JsonOutcome {
                    status: "failed",
                    stage: Some(&f.stage),
                    message: Some(&f.message),
                    hint: f.hint.clone(),
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

/// The report as Markdown for a CI job summary (`litert test --summary`,
/// `$GITHUB_STEP_SUMMARY`): what was checked, what changed and why, sizes, accuracy.
pub fn markdown(title: &str, outcomes: &[Outcome]) -> String {
    let failed = outcomes.iter().filter(|o| !o.ok()).count();
    let mut md = format!(
        "## {title}\n\n{} {} checked: {} passed, {failed} failed.\n\n",
        outcomes.len(),
        if outcomes.len() == 1 {
            "artifact"
        } else {
            "artifacts"
        },
        outcomes.len() - failed
    );
    md.push_str("| artifact | result | size | notes |\n|---|---|---:|---|\n");
    for o in outcomes {
        let (result, size, mut notes) = match &o.status {
            Status::Built(c) => {
                let mut notes = Vec::new();
                if let Some(from) = &c.restored_from {
                    notes.push(format!("restored from `{from}`"));
                }
                if let Some(acc) = c.result.accuracy.as_ref().filter(|a| a.skipped.is_none()) {
                    for out in &acc.outputs {
                        notes.push(format!(
                            "`{}` vs Keras: cosine {:.4}, max |Δ| {:.2e}",
                            out.name, out.cosine_similarity, out.max_abs_error
                        ));
                    }
                }
                ("✓ rebuilt, as locked".to_string(), Some(c.size), notes)
            }
            Status::UpToDate(v) if v.reasons.is_empty() => {
                let mut notes = Vec::new();
                if let Some(g) = v.golden.as_ref().filter(|g| g.ok) {
                    notes.push(format!("golden outputs: {} sample(s) re-run", g.samples));
                }
                ("✓ up to date".to_string(), Some(v.size), notes)
            }
            Status::UpToDate(v) => ("✗ drift".to_string(), Some(v.size), v.reasons.clone()),
            Status::Rejected(c, reasons) => {
                ("✗ rejected".to_string(), Some(c.size), reasons.clone())
            }
            Status::Failed(f) => (
                format!("✗ failed at `{}`", f.stage),
                None,
                vec![f.message.clone()],
            ),
        };
        if !o.rebuilt_because.is_empty() {
            notes.push(format!(
                "changed since litert.lock: {}",
                o.rebuilt_because.join("; ")
            ));
        }
        md.push_str(&format!(
            "| `{}` | {result} | {} | {} |\n",
            o.plan.id,
            size.map(human_bytes).unwrap_or_default(),
            cell(&notes.join("; "))
        ));
    }
    md.push('\n');
    md
}

/// Text for one Markdown table cell: no pipes or line breaks that would end it.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {

    #[test]
    fn numbered_tensors_collapse_into_one_entry() {
        let f = "float32[1,1,8,4]".to_string();
        let mut list = vec![("tokens", "int32[1,1]".to_string())];
        let names: Vec<String> = (0..4)
            .flat_map(|i| [format!("kv_cache_k_{i}"), format!("kv_cache_v_{i}")])
            .collect();
        list.extend(names.iter().map(|n| (n.as_str(), f.clone())));
        assert_eq!(
            super::collapse_numbered(&list),
            [
                "tokens int32[1,1]",
                "kv_cache_k_{0..3} float32[1,1,8,4]",
                "kv_cache_v_{0..3} float32[1,1,8,4]"
            ]
        );
        // Two of a kind, a gap, another shape or a padded number stay as they are.
        let few = [
            ("x_0", f.clone()),
            ("x_1", f.clone()),
            ("y_0", f.clone()),
            ("y_2", f.clone()),
            ("y_3", f.clone()),
            ("z_00", f.clone()),
            ("z_01", f.clone()),
            ("z_02", f.clone()),
        ];
        let listed: Vec<String> = few.iter().map(|(n, w)| format!("{n} {w}")).collect();
        assert_eq!(super::collapse_numbered(&few), listed);
    }

    use super::tolerance_above;

    #[test]
    fn suggested_tolerances_are_round_and_above_the_error() {
        assert_eq!(tolerance_above(0.093), "0.1");
        assert_eq!(tolerance_above(0.23), "0.3");
        assert_eq!(tolerance_above(0.86), "0.9");
        assert_eq!(tolerance_above(2.7e-3), "0.003");
        assert_eq!(tolerance_above(3.0), "4");
        assert_eq!(tolerance_above(0.0), "0.01");
    }
}
