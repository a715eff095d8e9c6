//! The human renderings of what `inspect` reads: a `.tflite` model's summary and a
//! `.litertlm` bundle's (whose embedded models' signatures print as a model's do). The JSON
//! forms are the types' own (`docs/inspect.md`).

use std::fmt::Write as _;

use crate::litertlm::model::{BundleInfo, KeyValue};
use crate::provenance::Provenance;
use crate::tflite::model::{
    ModelInfo, SignatureSource, SignatureTensor, describe, dims, quantization_summary,
};
use crate::units::{count, group};

/// Where litert built a model from (its `litert.*` metadata), and what the project's
/// `litert.lock` says of it (`lock`, a sentence).
pub fn provenance(p: &Provenance, lock: &str) -> String {
    let mut w = String::new();
    let _ = writeln!(w);
    let _ = writeln!(w, "provenance (litert metadata)");
    for (key, value) in [
        ("artifact", &p.artifact),
        ("recipe", &p.recipe),
        ("plan", &p.plan),
        ("toolchain", &p.toolchain),
    ] {
        let _ = writeln!(w, "  {key:<9}  {}", value.escape_debug());
    }
    let _ = writeln!(w, "  lock       {lock}");
    w
}

/// The human summary.
pub fn model(info: &ModelInfo) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "{}", info.file);
    let mut size = format!("{} bytes", group(info.size_bytes));
    if info.layout.appended_bytes > 0 || info.layout.buffers_outside_flatbuffer > 0 {
        size.push_str(&format!(
            " (FlatBuffer {}",
            group(info.layout.flatbuffer_bytes)
        ));
        if info.layout.buffers_outside_flatbuffer > 0 {
            size.push_str(&format!(
                ", {} buffers outside it: {} bytes",
                info.layout.buffers_outside_flatbuffer,
                group(info.layout.bytes_outside_flatbuffer)
            ));
        }
        if info.layout.appended_bytes > 0 {
            size.push_str(&format!(
                ", {} bytes appended: {}",
                group(info.layout.appended_bytes),
                info.layout.appended_kind.as_deref().unwrap_or("unknown")
            ));
        }
        size.push(')');
    }
    let _ = writeln!(w, "  size         {size}");
    let mut schema = format!("v{}", info.schema_version);
    if let Some(v) = &info.min_runtime_version {
        schema.push_str(&format!(", min runtime {v}"));
    }
    let _ = writeln!(w, "  schema       {schema}");
    if let Some(d) = info.description.as_deref().filter(|d| !d.is_empty()) {
        let _ = writeln!(w, "  description  {}", d.escape_debug());
    }

    for sig in &info.signatures {
        let _ = writeln!(w);
        let origin = match sig.source {
            SignatureSource::SignatureDef => format!("subgraph {}", sig.subgraph_index),
            SignatureSource::Subgraph => {
                "no SignatureDefs: subgraph 0 inputs and outputs".to_string()
            }
        };
        let _ = writeln!(w, "signature `{}` ({origin})", sig.key);
        io_table(w, Some("inputs"), &sig.inputs);
        io_table(w, Some("outputs"), &sig.outputs);
    }

    let _ = writeln!(w);
    let _ = writeln!(w, "subgraphs ({})", info.subgraphs.len());
    for sg in &info.subgraphs {
        let name = sg
            .name
            .as_deref()
            .map(|n| format!(" `{n}`"))
            .unwrap_or_default();
        let _ = writeln!(
            w,
            "  {}{name}: {}, {}, {}, {}",
            sg.index,
            count(sg.operator_count, "op"),
            count(sg.tensor_count, "tensor"),
            count(sg.inputs.len() as u64, "input"),
            count(sg.outputs.len() as u64, "output")
        );
    }

    for sg in &info.subgraphs {
        let Some(tensors) = &sg.tensors else { continue };
        let _ = writeln!(w);
        let _ = writeln!(w, "subgraph {} tensors", sg.index);
        let rows: Vec<SignatureTensor> = tensors
            .iter()
            .map(|t| SignatureTensor {
                name: t.name.clone(),
                tensor: t.clone(),
            })
            .collect();
        io_table(w, None, &rows);
    }

    let total: u64 = info.ops.values().sum();
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "ops ({} in {})",
        group(total),
        count(info.ops.len() as u64, "kind")
    );
    let mut ops: Vec<(&String, &u64)> = info.ops.iter().collect();
    ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let width = ops.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, count) in ops {
        let mut versions: Vec<i32> = info
            .operator_codes
            .iter()
            .filter(|c| &c.name == name)
            .map(|c| c.version)
            .collect();
        versions.sort_unstable();
        versions.dedup();
        let versions: Vec<String> = versions.iter().map(|v| format!("v{v}")).collect();
        let _ = writeln!(w, "  {name:<width$}  {count:>6}  {}", versions.join(" "));
    }
    if !info.custom_ops.is_empty() {
        let _ = writeln!(w, "  custom ops: {}", info.custom_ops.join(", "));
    }
    if !info.flex_ops.is_empty() {
        let _ = writeln!(w, "  Flex ops: {}", info.flex_ops.join(", "));
    }

    let _ = writeln!(w);
    let q = &info.quantization;
    if q.tensors == 0 {
        let _ = writeln!(w, "quantization: none");
    } else {
        let by: Vec<String> = q.by_dtype.iter().map(|(d, n)| format!("{d} {n}")).collect();
        let blocks: String = q
            .block_sizes
            .iter()
            .map(|(b, n)| format!(", {} blockwise (block size {b})", group(*n)))
            .collect();
        let _ = writeln!(
            w,
            "quantization: {} ({}), {} per-channel{blocks}",
            count(q.tensors, "tensor"),
            by.join(", "),
            group(q.per_channel)
        );
    }

    let _ = writeln!(w);
    let _ = writeln!(w, "weights: {} bytes", group(info.weights.total_bytes));
    for (dtype, dw) in &info.weights.by_dtype {
        let _ = writeln!(
            w,
            "  {dtype:<10} {:>14} bytes in {}",
            group(dw.bytes),
            count(dw.tensors, "tensor")
        );
    }
    if !info.weights.largest.is_empty() {
        let _ = writeln!(w, "  largest");
        for t in &info.weights.largest {
            let _ = writeln!(
                w,
                "    {:>14} bytes  {} {}  `{}` (subgraph {}, tensor {})",
                group(t.bytes),
                t.dtype,
                dims(&t.shape),
                t.name,
                t.subgraph,
                t.index
            );
        }
    }
    if let Some(check) = &info.weights_check {
        let _ = writeln!(
            w,
            "  check: {}, {}, {:.2}% zero, {} all-zero tensors, {} skipped",
            count(check.tensors_checked, "tensor"),
            count(check.elements, "element"),
            check.zero_fraction * 100.0,
            check.all_zero_tensors.len(),
            check.tensors_skipped
        );
        for t in check.all_zero_tensors.iter().take(10) {
            let _ = writeln!(w, "    all zeros: {t}");
        }
    }

    if !info.metadata.is_empty() {
        let _ = writeln!(w);
        let _ = writeln!(w, "metadata");
        let width = info
            .metadata
            .iter()
            .map(|m| m.name.len())
            .max()
            .unwrap_or(0);
        for m in &info.metadata {
            let _ = writeln!(w, "  {:<width$}  {} bytes", m.name, group(m.size_bytes));
        }
    }

    if !info.warnings.is_empty() {
        let _ = writeln!(w);
        let _ = writeln!(w, "warnings");
        for warning in &info.warnings {
            let _ = writeln!(w, "  - {warning}");
        }
    }
    out
}

fn io_table(w: &mut String, title: Option<&str>, rows: &[SignatureTensor]) {
    if let Some(title) = title {
        let _ = writeln!(w, "  {title}");
    }
    if rows.is_empty() {
        let _ = writeln!(w, "    (none)");
        return;
    }
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            let mut q = quantization_summary(r.tensor.quantization.as_ref());
            if r.tensor.sparsity.is_some() {
                q.push_str(", sparse");
            }
            [
                r.name.clone(),
                describe(&r.tensor),
                q,
                format!("tensor {}", r.tensor.index),
            ]
        })
        .collect();
    let width = |i: usize| {
        cells
            .iter()
            .map(|c| c.get(i).map_or(0, String::len))
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    for [name, ty, q, tensor] in &cells {
        let _ = writeln!(w, "    {name:<w0$}  {ty:<w1$}  {q:<w2$}  {tensor}");
    }
}

fn value(kv: &KeyValue) -> String {
    match kv.value.as_str() {
        Some(s) => format!("{s:?}"),
        None => kv.value.to_string(),
    }
}

/// The human summary of a bundle.
pub fn bundle(info: &BundleInfo) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "{}", info.file);
    let _ = writeln!(
        w,
        "  size         {} bytes (header {} bytes)",
        group(info.size_bytes),
        group(info.header_bytes)
    );
    let _ = writeln!(w, "  format       LiteRT-LM {}", info.format_version);
    for kv in &info.system_metadata {
        let _ = writeln!(w, "  {:<12} {}", kv.key, value(kv));
    }

    let _ = writeln!(w);
    let _ = writeln!(w, "sections ({})", info.sections.len());
    let width = info
        .sections
        .iter()
        .map(|s| s.data_type.len())
        .max()
        .unwrap_or(0);
    for s in &info.sections {
        let items: Vec<String> = s
            .items
            .iter()
            .map(|kv| format!("{}={}", kv.key, value(kv)))
            .collect();
        let line = format!(
            "  {}  {:<width$}  {:>12} .. {:>12}  {:>14} bytes  {}",
            s.index,
            s.data_type,
            group(s.begin_offset),
            group(s.end_offset),
            group(s.size_bytes),
            items.join(" ")
        );
        let _ = writeln!(w, "{}", line.trim_end());
    }

    for s in &info.sections {
        if let Some(t) = &s.tokenizer {
            let _ = writeln!(w);
            let kind = match &t.model_type {
                Some(m) => format!("{} ({m})", t.kind),
                None => t.kind.clone(),
            };
            let _ = writeln!(
                w,
                "tokenizer (section {}): {kind}, {} pieces",
                s.index,
                group(t.vocab_size)
            );
            for sp in t.special_tokens.iter().take(12) {
                let piece = sp
                    .piece
                    .as_deref()
                    .map(|p| format!(" {p:?}"))
                    .unwrap_or_default();
                let _ = writeln!(w, "  {:<8} {}{piece}", sp.role, sp.id);
            }
            if t.special_tokens.len() > 12 {
                let _ = writeln!(w, "  ... {} more", t.special_tokens.len() - 12);
            }
        }
        if let Some(m) = &s.llm_metadata {
            let _ = writeln!(w);
            let _ = writeln!(w, "llm metadata (section {})", s.index);
            let start = m
                .start_token
                .as_ref()
                .map_or("(none)".into(), |t| t.render());
            let _ = writeln!(w, "  start token      {start}");
            let stops: Vec<String> = m.stop_tokens.iter().map(|t| t.render()).collect();
            let stops = if stops.is_empty() {
                "(none)".into()
            } else {
                stops.join("; ")
            };
            let _ = writeln!(w, "  stop tokens      {stops}");
            let _ = writeln!(w, "  max tokens       {}", m.max_num_tokens);
            if let Some(t) = &m.model_type {
                let _ = writeln!(w, "  model type       {t}");
            }
            if let Some(p) = &m.prompt_templates {
                for (role, a) in [
                    ("user", &p.user),
                    ("model", &p.model),
                    ("system", &p.system),
                ] {
                    if let Some(a) = a {
                        let _ = writeln!(
                            w,
                            "  {role:<6} template  prefix {:?} suffix {:?}",
                            a.prefix, a.suffix
                        );
                    }
                }
            }
            if let Some(j) = &m.jinja_prompt_template {
                let _ = writeln!(w, "  jinja template   {} chars", j.chars().count());
            }
            if let Some(s) = &m.sampler {
                let _ = writeln!(
                    w,
                    "  sampler          {} k {} p {} temperature {}",
                    s.kind, s.k, s.p, s.temperature
                );
            }
        }
        if let Some(model) = &s.model {
            for sig in &model.signatures {
                let _ = writeln!(w);
                let _ = writeln!(w, "model (section {}) signature `{}`", s.index, sig.key);
                io_table(w, Some("inputs"), &sig.inputs);
                io_table(w, Some("outputs"), &sig.outputs);
            }
        }
    }

    let _ = writeln!(w);
    if info.problems.is_empty() {
        let _ = writeln!(
            w,
            "LiteRT-LM: nothing missing (stop tokens, tokenizer, model, metadata)"
        );
    } else {
        let _ = writeln!(w, "problems");
        for p in &info.problems {
            let _ = writeln!(w, "  - {p}");
        }
    }
    out
}
