//! `quantization:`: the mode, and the integer I/O it allows.

use super::Cx;
use crate::recipe::types::*;

impl Cx<'_> {
    pub(super) fn quantization(&mut self, r: &Recipe) -> (Option<QuantizationMode>, QuantizedIo) {
        let Some(q) = &r.quantization else {
            // Without a typed mode, raw quantization attributes (if any) decide; with
            // neither, nothing is quantized.
            let raw = r.litert_kwargs.as_ref().is_some_and(|k| {
                k.optimizations.is_some()
                    || k.inference_input_type.is_some()
                    || k.inference_output_type.is_some()
                    || k.target_spec
                        .as_ref()
                        .is_some_and(|t| t.supported_types.is_some() || t.supported_ops.is_some())
            });
            return (
                if raw {
                    None
                } else {
                    Some(QuantizationMode::None)
                },
                QuantizedIo::Float32,
            );
        };
        let mode = q.mode.unwrap_or(QuantizationMode::None);
        let io = q.io.unwrap_or(QuantizedIo::Float32);
        let allowed: &[QuantizedIo] = match mode {
            QuantizationMode::FullInt8 => {
                &[QuantizedIo::Float32, QuantizedIo::Int8, QuantizedIo::Uint8]
            }
            QuantizationMode::Int16x8 => &[QuantizedIo::Float32, QuantizedIo::Int16],
            _ => &[QuantizedIo::Float32],
        };
        if q.io.is_some() && !allowed.contains(&io) {
            let choices = allowed
                .iter()
                .map(|a| format!("`{}`", io_name(*a)))
                .collect::<Vec<_>>()
                .join(", ");
            let d = self.err(
                "E0252",
                "/quantization/io",
                format!(
                    "`io: {}` does not apply to mode `{}`",
                    io_name(io),
                    mode.as_str()
                ),
            );
            d.label = Some(format!("mode `{}` allows {choices}", mode.as_str()));
            if matches!(io, QuantizedIo::Int8 | QuantizedIo::Uint8) {
                d.hints
                    .push("integer inputs and outputs need `mode: full_int8`".into());
            }
        }
        if mode == QuantizationMode::DynamicInt4 && r.generation.is_none() {
            let d = self.err(
                "E0253",
                "/quantization/mode",
                "`dynamic_int4` is only for generation exports",
            );
            d.label = Some("int4 weights are written by the native LLM writer".into());
            d.hints.push(
                "use `dynamic_range` (int8 weights) here; `dynamic_int4` works in a recipe with `generation:` over a local Gemma or Llama preset".into(),
            );
        }
        if let Some(b) = q.block_size {
            if mode != QuantizationMode::DynamicInt4 {
                let d = self.err(
                    "E0254",
                    "/quantization/block_size",
                    format!("`block_size` does not apply to mode `{}`", mode.as_str()),
                );
                d.label = Some("only `dynamic_int4` has blocks".into());
            } else if b % 32 != 0 {
                let d = self.err(
                    "E0254",
                    "/quantization/block_size",
                    format!("block size {b} is not a multiple of 32"),
                );
                d.label = Some("XNNPACK's blockwise int4 kernels need a multiple of 32".into());
                d.hints.push(
                    "use 32, 64 or 128, or leave it out for one scale per output channel".into(),
                );
            }
        }
        if q.embedding.is_some() && mode != QuantizationMode::DynamicInt4 {
            let d = self.err(
                "E0254",
                "/quantization/embedding",
                format!("`embedding` does not apply to mode `{}`", mode.as_str()),
            );
            d.label = Some("only `dynamic_int4` stores the table apart from the layers".into());
        }
        (Some(mode), io)
    }
}

fn io_name(io: QuantizedIo) -> &'static str {
    match io {
        QuantizedIo::Float32 => "float32",
        QuantizedIo::Int8 => "int8",
        QuantizedIo::Uint8 => "uint8",
        QuantizedIo::Int16 => "int16",
    }
}
