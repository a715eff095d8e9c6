//! `calibration:`: exactly one data source (arrays, images, prompts, a generator), checked
//! to exist, and calibration that the chosen quantization would silently ignore.

use std::collections::BTreeMap;

use super::{Cx, Kind};
use crate::recipe::plan::*;
use crate::recipe::types::*;

impl Cx<'_> {
    pub(super) fn calibration(
        &mut self,
        r: &Recipe,
        mode: Option<QuantizationMode>,
        image_size: Option<[u32; 2]>,
    ) -> Option<CalibrationPlan> {
        let needs = mode.is_some_and(QuantizationMode::needs_calibration);
        let kwargs_calibrate = mode.is_none()
            && r.litert_kwargs
                .as_ref()
                .and_then(|k| k.optimizations.as_ref())
                .is_some_and(|o| !o.is_empty());
        let Some(c) = &r.calibration else {
            if let Some(m) = mode.filter(|m| m.needs_calibration()) {
                let d = self.err(
                    "E0250",
                    "/quantization/mode",
                    format!("mode `{}` needs calibration data", m.as_str()),
                );
                d.label = Some("calibrates activation ranges on representative samples".into());
                d.hints.push(
                    "add `calibration:` with `npz`, `npy`, `images`, `prompts` or `generator`"
                        .into(),
                );
            }
            let int8_ops = r
                .litert_kwargs
                .as_ref()
                .and_then(|k| k.target_spec.as_ref())
                .and_then(|t| t.supported_ops.as_ref())
                .is_some_and(|ops| {
                    ops.contains(&OpsSet::TfliteBuiltinsInt8) || ops.contains(&OpsSet::Int16x8)
                });
            if mode.is_none() && int8_ops {
                let d = self.err(
                    "E0263",
                    "/litert_kwargs/target_spec/supported_ops",
                    "integer-only ops need calibration data",
                );
                d.label = Some("full integer quantization".into());
                d.hints
                    .push("add `calibration:`, or use `quantization: {mode: full_int8}`".into());
            }
            return None;
        };
        if !needs && !kwargs_calibrate {
            self.calibration_ignored(r, mode);
        }
        let source = self.data_source(r, c, image_size, "/calibration");
        source.map(|source| CalibrationPlan {
            source,
            samples: c.samples.unwrap_or(100),
            seed: c.seed.unwrap_or(0),
            shuffle: c.shuffle.unwrap_or(true),
        })
    }

    /// The one data source of a `calibration` (or `accuracy.data`) block at `base`.
    pub(super) fn data_source(
        &mut self,
        r: &Recipe,
        c: &Calibration,
        image_size: Option<[u32; 2]>,
        base: &str,
    ) -> Option<CalibrationSource> {
        self.exactly_one(
            base,
            ["E0290", "E0290"],
            &[
                ("npz", c.npz.is_some()),
                ("npy", c.npy.is_some()),
                ("images", c.images.is_some()),
                ("prompts", c.prompts.is_some()),
                ("generator", c.generator.is_some()),
            ],
        )?;
        self.calibration_source(r, c, image_size, base)
    }

    fn calibration_source(
        &mut self,
        r: &Recipe,
        c: &Calibration,
        image_size: Option<[u32; 2]>,
        base: &str,
    ) -> Option<CalibrationSource> {
        if let Some(p) = &c.npz {
            if !p.ends_with(".npz") {
                let d = self.err(
                    "E0221",
                    &format!("{base}/npz"),
                    format!("`{p}` does not end in `.npz`"),
                );
                d.hints
                    .push("for one `.npy` file per input use `npy: {input_name: file.npy}`".into());
            }
            return Some(CalibrationSource::Npz {
                path: self.existing(&format!("{base}/npz"), p, Kind::File),
            });
        }
        if let Some(files) = &c.npy {
            let mut out = BTreeMap::new();
            for (input, file) in files {
                let ptr = format!("{base}/npy/{}", crate::recipe::load::escape_segment(input));
                out.insert(input.clone(), self.existing(&ptr, file, Kind::File));
            }
            return Some(CalibrationSource::Npy { files: out });
        }
        if let Some(img) = &c.images {
            let dir = self.existing(&format!("{base}/images/dir"), &img.dir, Kind::Dir);
            let size = match (&img.size, image_size) {
                (Some(ImageSize::Square(n)), _) => Some([*n, *n]),
                (Some(ImageSize::HeightWidth(v)), _) => Some([
                    v.first().copied().unwrap_or(1),
                    v.get(1).copied().unwrap_or(1),
                ]),
                (None, Some(s)) => Some(s),
                (None, None) => {
                    let d = self.err(
                        "E0291",
                        &format!("{base}/images"),
                        "image calibration needs a size",
                    );
                    d.hints.push(
                        "set `image_size` on the recipe, or `size` under `calibration.images`"
                            .into(),
                    );
                    None
                }
            };
            for (key, v) in [("mean", &img.mean), ("std", &img.std)] {
                if let Some(v) = v
                    && v.len() != 1
                    && v.len() != 3
                {
                    let d = self.err(
                        "E0293",
                        &format!("{base}/images/{key}"),
                        format!("`{key}` has {} values", v.len()),
                    );
                    d.label = Some("give 1 value, or 3 (one per channel)".into());
                }
            }
            if img.std.iter().flatten().any(|s| *s == 0.0) {
                self.err("E0293", &format!("{base}/images/std"), "`std` contains 0")
                    .label = Some("would divide by zero".into());
            }
            return size.map(|size| CalibrationSource::Images {
                dir,
                input: img.input.clone(),
                size,
                scale: img.scale.unwrap_or(1.0),
                mean: img.mean.clone().unwrap_or_default(),
                std: img.std.clone().unwrap_or_default(),
                channel_order: img.channel_order.unwrap_or(ChannelOrder::Rgb),
            });
        }
        if let Some(p) = &c.prompts {
            let is_preset = r.model.as_ref().is_some_and(|m| m.preset.is_some());
            if !is_preset {
                let d = self.err(
                    "E0292",
                    &format!("{base}/prompts"),
                    "prompt calibration needs a KerasHub preset model",
                );
                d.label = Some("prompts are tokenized by the preset's preprocessor".into());
                d.hints
                    .push("use `npz`/`npy` token arrays for other models".into());
            }
            if r.sequence_length.is_none() {
                let d = self.err(
                    "E0292",
                    &format!("{base}/prompts"),
                    "prompt calibration needs `sequence_length`",
                );
                d.label = Some("prompts are padded or truncated to it".into());
                d.hints.push("set `sequence_length` on the recipe".into());
            }
            return Some(CalibrationSource::Prompts {
                path: self.existing(&format!("{base}/prompts/file"), &p.file, Kind::File),
            });
        }
        if let Some(g) = &c.generator {
            return self
                .callable(&format!("{base}/generator"), g)
                .map(|generator| CalibrationSource::Generator { generator });
        }
        None
    }

    /// E0251. A variant that inherits the top-level `calibration:` but quantizes without
    /// calibrating is pointed at where the variant sets its mode, by name, with the line that
    /// drops the inherited data.
    fn calibration_ignored(&mut self, r: &Recipe, mode: Option<QuantizationMode>) {
        let (spans, variant_keys) = (self.spans, self.variant_keys);
        let inherited_by = self
            .variant
            .clone()
            .filter(|_| !variant_keys.iter().any(|k| k == "calibration"));
        let in_variant = |v: &Option<String>| match v {
            Some(v) => format!("variant `{v}`: "),
            None => String::new(),
        };
        let message = format!(
            "{}calibration data would be ignored",
            in_variant(&self.variant)
        );
        let set_by_variant = |k: &str| variant_keys.iter().any(|key| key == k);
        let d = match &inherited_by {
            Some(_) if set_by_variant("quantization") => {
                let d = self.err_key("E0251", "/quantization", message);
                if let Some(span) = spans.get("/calibration") {
                    d.related.push((
                        span.key.unwrap_or(span.value),
                        "calibration inherited from here".into(),
                    ));
                }
                d
            }
            _ => self.err_key("E0251", "/calibration", message),
        };
        match mode {
            Some(_) if r.quantization.is_none() && r.litert_kwargs.is_none() => {
                d.label = Some("nothing is quantized".into());
                d.hints.push("add `quantization: {mode: full_int8}` (or `int8_fallback`, `int16x8`), or remove `calibration`".into());
            }
            Some(m) if r.quantization.is_some() => {
                d.label = Some(format!("mode `{}` does not calibrate", m.as_str()));
                d.hints.push("remove `calibration`, or use a calibrating mode: `int8_fallback`, `full_int8` or `int16x8`".into());
            }
            _ => {
                d.label = Some(
                    "the converter ignores a representative dataset without `optimizations`".into(),
                );
                d.hints.push("add `optimizations: [DEFAULT]` to `litert_kwargs`, or use `quantization: {mode: full_int8}`".into());
            }
        }
        if let Some(v) = inherited_by {
            // The generic advice would remove the data the other variants need.
            d.hints.clear();
            d.hints.push(format!(
                "drop the inherited data in this variant only:\n  variants:\n    {v}:\n      calibration: null"
            ));
        }
    }
}
