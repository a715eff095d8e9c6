//! `parity:`: the comparison with Keras (samples, tolerances per output).

use std::collections::BTreeMap;

use super::Cx;
use crate::recipe::plan::*;
use crate::recipe::types::*;

impl Cx<'_> {
    pub(super) fn parity(&mut self, r: &Recipe, converter: &ConverterSettings) -> ParityPlan {
        let p = r.parity.clone().unwrap_or_default();
        let (default, why) = TolerancePlan::default_with_reason(converter);
        let tolerance_from = if p.tolerance.as_ref().is_some_and(|t| t.contains_key("*")) {
            "the recipe's `parity.tolerance`".to_string()
        } else {
            why.to_string()
        };
        let mut tolerance = BTreeMap::from([("*".to_string(), default)]);
        for (name, t) in p.tolerance.iter().flatten() {
            let base = tolerance.get("*").copied().unwrap_or(default);
            tolerance.insert(
                name.clone(),
                TolerancePlan {
                    atol: t.atol.unwrap_or(base.atol),
                    rtol: t.rtol.unwrap_or(base.rtol),
                },
            );
        }
        ParityPlan {
            enabled: p.enabled.unwrap_or(true),
            samples: p.samples.unwrap_or(8),
            seed: p.seed.unwrap_or(0),
            tolerance,
            tolerance_from,
        }
    }
}
