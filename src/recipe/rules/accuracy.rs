//! `accuracy:`: the comparison with the float model on held-out data, its data source and
//! labels, and its gates.

use super::Cx;
use crate::recipe::plan::*;
use crate::recipe::types::*;

impl Cx<'_> {
    pub(super) fn accuracy(
        &mut self,
        r: &Recipe,
        converter: &ConverterSettings,
        calibration: Option<&CalibrationPlan>,
        image_size: Option<[u32; 2]>,
    ) -> Option<AccuracyPlan> {
        let quantized =
            !converter.optimizations.is_empty() || !converter.supported_types.is_empty();
        let a = r.accuracy.clone().unwrap_or_default();
        let gates = AccuracyGates {
            min_cosine_similarity: a.min_cosine_similarity,
            max_abs_error: a.max_abs_error,
            max_mean_abs_error: a.max_mean_abs_error,
            min_top1_agreement: a.min_top1_agreement,
            max_accuracy_drop: a.max_accuracy_drop,
        };
        let any_gate = gates != AccuracyGates::default();
        let enabled = a.enabled.unwrap_or(quantized || r.accuracy.is_some());
        if !enabled {
            if any_gate || a.data.is_some() || a.labels.is_some() {
                let d = self.err_key(
                    "E0296",
                    "/accuracy/enabled",
                    "accuracy is off, so its data and gates would be ignored",
                );
                d.hints
                    .push("remove `enabled: false`, or the rest of `accuracy`".into());
            }
            return None;
        }
        let data = a.data.as_ref().and_then(|c| {
            self.data_source(r, c, image_size, "/accuracy/data")
                .map(|source| CalibrationPlan {
                    source,
                    samples: c.samples.unwrap_or(100),
                    seed: c.seed.unwrap_or(0),
                    shuffle: c.shuffle.unwrap_or(true),
                })
        });
        if let Some(labels) = &a.labels {
            let keyed = matches!(
                data.as_ref().map(|d| &d.source),
                Some(CalibrationSource::Npz { .. } | CalibrationSource::Npy { .. })
            );
            if a.data.is_none() || (data.is_some() && !keyed) {
                let d = self.err(
                    "E0294",
                    "/accuracy/labels",
                    format!("labels `{labels}` need `accuracy.data` as `npz` or `npy`"),
                );
                d.label = Some("labels are read from the held-out data".into());
                d.hints.push(
                    "add `data: {npz: held_out.npz}` with an array of that name next to the inputs"
                        .into(),
                );
            }
            if let Some(CalibrationSource::Npy { files }) = data.as_ref().map(|d| &d.source)
                && !files.contains_key(labels)
            {
                let d = self.err(
                    "E0294",
                    "/accuracy/labels",
                    format!("`accuracy.data.npy` has no entry `{labels}`"),
                );
                d.hints.push(format!(
                    "add `{labels}: labels.npy` under `accuracy.data.npy`"
                ));
            }
        }
        if a.max_accuracy_drop.is_some() && a.labels.is_none() {
            let d = self.err_key(
                "E0295",
                "/accuracy/max_accuracy_drop",
                "`max_accuracy_drop` needs `labels`",
            );
            d.label = Some("accuracy is measured against labels".into());
            d.hints.push(
                "name the label array with `labels:`, or gate on `min_top1_agreement` instead"
                    .into(),
            );
        }
        // Random inputs say little about accuracy, so as many as parity uses; held-out
        // calibration data is real, so up to the calibration default.
        let samples = r.parity.as_ref().and_then(|p| p.samples).unwrap_or(8);
        let seed = r.parity.as_ref().and_then(|p| p.seed).unwrap_or(0);
        let source = match (data, calibration) {
            (Some(d), _) => AccuracySource::Data(d),
            (None, _) if a.data.is_some() => return None,
            (None, Some(c)) => AccuracySource::HeldOut {
                samples: 100,
                seed: c.seed,
            },
            (None, None) => AccuracySource::Random { samples, seed },
        };
        Some(AccuracyPlan {
            source,
            labels: a.labels.clone(),
            gates,
        })
    }
}
