//! `litert inspect`: describe a `.tflite` model or a `.litertlm` bundle (`bundle.rs`) for the
//! engineer who deploys it, either as a compact human summary or as the documented JSON
//! contract (`docs/inspect.md`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{Exit, Hinted, output};
use crate::tflite::model::{
    ModelInfo, SignatureSource, SignatureTensor, describe, dims, quantization_summary,
};
use crate::tflite::{ReadError, ReadOptions, read_path};
use crate::units::group;

/// Describe a LiteRT model (signatures, tensors, quantization, ops, metadata, sizes) or a
/// LiteRT-LM bundle (sections, tokenizer, generation metadata, the embedded model's signatures).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert inspect model.tflite\n  litert inspect model.tflite --json | jq '.signatures[0].inputs'\n  litert inspect model.tflite --weights\n  litert inspect model.tflite --tensors\n  litert inspect gemma.litertlm --json | jq '.sections[].data_type'\n\nExit codes: 0 success, 2 the file is missing or not a valid model"
)]
pub struct InspectArgs {
    /// The `.tflite` file, or a `.litertlm` bundle (recognised by its first bytes).
    pub model: PathBuf,
    /// Print the description as JSON (the contract in `docs/inspect.md`).
    #[arg(long)]
    pub json: bool,
    /// Also read every weight to count zeros (a check that the weights were saved).
    #[arg(long)]
    pub weights: bool,
    /// Also list every tensor of every subgraph.
    #[arg(long)]
    pub tensors: bool,
}

pub fn run(args: InspectArgs) -> anyhow::Result<Exit> {
    if super::bundle::is_bundle(&args.model) {
        let info = super::bundle::load(&args.model)?;
        if args.json {
            let mut text = serde_json::to_string_pretty(&info)?;
            text.push('\n');
            output::stdout(&text)?;
        } else {
            output::stdout(&super::bundle::render(&info))?;
        }
        return Ok(Exit::Success);
    }
    let info = load(
        &args.model,
        ReadOptions {
            weights_check: args.weights,
            tensors: args.tensors,
        },
    )?;
    if args.json {
        let mut text = serde_json::to_string_pretty(&info)?;
        text.push('\n');
        output::stdout(&text)?;
    } else {
        output::stdout(&render(&info))?;
    }
    Ok(Exit::Success)
}

/// Read a model, turning reader errors into messages with a hint.
pub(crate) fn load(path: &Path, options: ReadOptions) -> anyhow::Result<ModelInfo> {
    read_path(path, options).map_err(|err| {
        let hint = match &err {
            ReadError::Io { .. } => "check the path; `litert inspect` reads `.tflite` files",
            ReadError::NotTflite(_) => {
                "LiteRT models are FlatBuffers with the identifier `TFL3` at byte 4; is this a `.tflite` file?"
            }
            ReadError::Invalid(_) | ReadError::Inconsistent(_) => {
                "the file is damaged or truncated; export or download it again"
            }
        };
        let message = match &err {
            ReadError::Io { source, .. } => format!("{err}: {source}"),
            _ => err.to_string(),
        };
        anyhow::Error::new(Hinted::new(message, hint))
            .context(format!("cannot inspect `{}`", path.display()))
    })
}

/// The human summary.
pub fn render(info: &ModelInfo) -> String {
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
            "  {}{name}: {} ops, {} tensors, {} inputs, {} outputs",
            sg.index,
            group(sg.operator_count),
            group(sg.tensor_count),
            sg.inputs.len(),
            sg.outputs.len()
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
    let _ = writeln!(w, "ops ({} in {} kinds)", group(total), info.ops.len());
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
        let _ = writeln!(
            w,
            "quantization: {} tensors ({}), {} per-channel",
            group(q.tensors),
            by.join(", "),
            group(q.per_channel)
        );
    }

    let _ = writeln!(w);
    let _ = writeln!(w, "weights: {} bytes", group(info.weights.total_bytes));
    for (dtype, dw) in &info.weights.by_dtype {
        let _ = writeln!(
            w,
            "  {dtype:<10} {:>14} bytes in {} tensors",
            group(dw.bytes),
            group(dw.tensors)
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
            "  check: {} tensors, {} elements, {:.2}% zero, {} all-zero tensors, {} skipped",
            group(check.tensors_checked),
            group(check.elements),
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

pub(crate) fn io_table(w: &mut String, title: Option<&str>, rows: &[SignatureTensor]) {
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
