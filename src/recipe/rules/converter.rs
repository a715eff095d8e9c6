//! `litert_kwargs:` and `ops:`: the converter settings a quantization mode maps to, raw
//! converter attributes checked against the known ones and against the mode, Flex and
//! custom ops only with the recipe's opt-in.

use super::Cx;
use crate::recipe::plan::*;
use crate::recipe::types::*;

impl Cx<'_> {
    pub(super) fn converter(
        &mut self,
        r: &Recipe,
        mode: Option<QuantizationMode>,
        io: QuantizedIo,
        flex: bool,
        custom: bool,
    ) -> ConverterSettings {
        let base_mode = mode.unwrap_or(QuantizationMode::None);
        let mut settings = ConverterSettings::for_mode(base_mode, io, flex, custom);
        let Some(kw) = &r.litert_kwargs else {
            return settings;
        };
        if let Some(m) = mode.filter(|_| r.quantization.is_some()) {
            // With a typed mode, raw quantization attributes may only repeat what it says.
            let owned = &settings;
            let mut conflicts: Vec<(&str, String)> = Vec::new();
            if kw
                .optimizations
                .as_ref()
                .is_some_and(|o| *o != owned.optimizations)
            {
                conflicts.push(("/litert_kwargs/optimizations", "optimizations".into()));
            }
            if let Some(ts) = &kw.target_spec {
                if ts
                    .supported_types
                    .as_ref()
                    .is_some_and(|t| *t != owned.supported_types)
                {
                    conflicts.push((
                        "/litert_kwargs/target_spec/supported_types",
                        "target_spec.supported_types".into(),
                    ));
                }
                if ts
                    .supported_ops
                    .as_ref()
                    .is_some_and(|o| *o != owned.supported_ops)
                {
                    conflicts.push((
                        "/litert_kwargs/target_spec/supported_ops",
                        "target_spec.supported_ops".into(),
                    ));
                }
            }
            for (ptr, key, value) in [
                (
                    "/litert_kwargs/inference_input_type",
                    "inference_input_type",
                    kw.inference_input_type,
                ),
                (
                    "/litert_kwargs/inference_output_type",
                    "inference_output_type",
                    kw.inference_output_type,
                ),
            ] {
                if value.is_some_and(|v| {
                    Some(v) != owned.inference_input_type
                        && !(v == QuantizedIo::Float32 && owned.inference_input_type.is_none())
                }) {
                    conflicts.push((ptr, key.into()));
                }
            }
            let mode_span = self
                .spans
                .get("/quantization/mode")
                .or_else(|| self.spans.get("/quantization"))
                .map(|s| s.value);
            for (ptr, key) in conflicts {
                let d = self.err(
                    "E0260",
                    ptr,
                    format!(
                        "`litert_kwargs.{key}` conflicts with `quantization.mode: {}`",
                        m.as_str()
                    ),
                );
                d.label = Some("differs from what the mode sets".into());
                if let Some(loc) = mode_span {
                    d.related.push((loc, "the mode sets this".into()));
                }
                d.hints.push(format!("remove `{key}` (run `litert plan` to see the settings the mode maps to), or remove `quantization` and set every converter attribute yourself"));
            }
        } else {
            if kw.optimizations.as_ref().is_some_and(|o| {
                o.iter()
                    .any(|x| matches!(x, Optimize::OptimizeForSize | Optimize::OptimizeForLatency))
            }) {
                let d = self.warn("W0267", "/litert_kwargs/optimizations", "`OPTIMIZE_FOR_SIZE` and `OPTIMIZE_FOR_LATENCY` are deprecated aliases of `DEFAULT`");
                d.hints
                    .push("write `DEFAULT`, or use `quantization: {mode: dynamic_range}`".into());
            }
            let optimizing = kw.optimizations.as_ref().is_some_and(|o| !o.is_empty());
            let integer_io = [kw.inference_input_type, kw.inference_output_type]
                .into_iter()
                .flatten()
                .any(|t| t != QuantizedIo::Float32);
            if integer_io && (!optimizing || r.calibration.is_none()) {
                let ptr = if kw
                    .inference_input_type
                    .is_some_and(|t| t != QuantizedIo::Float32)
                {
                    "/litert_kwargs/inference_input_type"
                } else {
                    "/litert_kwargs/inference_output_type"
                };
                let d = self.err(
                    "E0264",
                    ptr,
                    "integer inputs/outputs need full integer quantization",
                );
                d.label = Some("needs `optimizations` and calibration data".into());
                d.hints.push(
                    "use `quantization: {mode: full_int8, io: int8}` with `calibration:`".into(),
                );
            }
        }
        let ops = kw
            .target_spec
            .as_ref()
            .and_then(|t| t.supported_ops.as_ref());
        if ops.is_some_and(|o| o.contains(&OpsSet::SelectTfOps)) && !flex {
            let d = self.err(
                "E0265",
                "/litert_kwargs/target_spec/supported_ops",
                "`SELECT_TF_OPS` (Flex) is not allowed by the op policy",
            );
            d.label = Some("the plain LiteRT runtime cannot run Flex ops".into());
            d.hints.push(
                "opt in with `ops: {flex: true}` (which also adds `SELECT_TF_OPS` for you)".into(),
            );
        }
        if kw.allow_custom_ops == Some(true) && !custom {
            let d = self.err(
                "E0266",
                "/litert_kwargs/allow_custom_ops",
                "custom ops are not allowed by the op policy",
            );
            d.label = Some("the app would have to register these kernels".into());
            d.hints.push("opt in with `ops: {custom: true}`".into());
        }
        settings.apply_kwargs(kw);
        if r.quantization.is_none() {
            settings.representative_dataset =
                r.calibration.is_some() && !settings.optimizations.is_empty();
        }
        settings
    }
}
