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
