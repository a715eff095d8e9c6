//! Policy gates on a finished artifact, before it is written: its size, and what its own
//! contents say as the native `.tflite` reader sees them (Flex and custom ops, the runtime
//! version it needs).

use serde::Serialize;

use crate::recipe::BuildPlan;
use crate::tflite::model::ModelInfo;
use crate::units::human_bytes;

#[derive(Debug, Clone, Serialize)]
pub struct GateResult {
    pub gate: &'static str,
    pub ok: bool,
    pub message: String,
}

/// Every gate the plan asks for, in a stable order.
pub fn check(plan: &BuildPlan, model: &ModelInfo, size: u64) -> Vec<GateResult> {
    let mut out = Vec::new();
    let g = &plan.gates;
    if g.no_flex {
        let ok = model.flex_ops.is_empty();
        out.push(GateResult {
            gate: "no_flex",
            ok,
            message: if ok {
                "no Flex ops".to_string()
            } else {
                format!(
                    "Flex ops present ({}): the LiteRT runtime cannot run them without the Flex delegate",
                    model.flex_ops.join(", ")
                )
            },
        });
    }
    if g.no_custom_ops {
        let ok = model.custom_ops.is_empty();
        out.push(GateResult {
            gate: "no_custom_ops",
            ok,
            message: if ok {
                "no custom ops".to_string()
            } else {
                format!(
                    "custom ops present ({}): the app must register their kernels",
                    model.custom_ops.join(", ")
                )
            },
        });
    }
    if let Some(target) = &g.target_runtime {
        let needed = model
            .min_runtime_version
            .clone()
            .unwrap_or_else(|| "unknown".to_string());
        let ok = model
            .min_runtime_version
            .as_deref()
            .is_some_and(|v| version_le(v, target));
        out.push(GateResult {
            gate: "target_runtime",
            ok,
            message: if ok {
                format!("needs LiteRT {needed} ≤ target {target}")
            } else {
                format!("needs LiteRT {needed}, newer than `gates.target_runtime` {target}")
            },
        });
    }
    if let Some(max) = plan.gates.max_size_bytes {
        out.push(GateResult {
            gate: "max_size",
            ok: size <= max,
            message: if size <= max {
                format!("size {} ≤ {}", human_bytes(size), human_bytes(max))
            } else {
                format!(
                    "size {} exceeds `gates.max_size` {}",
                    human_bytes(size),
                    human_bytes(max)
                )
            },
        });
    }
    out
}

/// Whether dotted version `a` ≤ `b` (missing parts count as 0; non-numbers as 0).
fn version_le(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> {
        v.split('.')
            .map(|p| p.trim().parse().unwrap_or(0))
            .collect()
    };
    let (mut a, mut b) = (parts(a), parts(b));
    let n = a.len().max(b.len());
    a.resize(n, 0);
    b.resize(n, 0);
    a <= b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_le("1.14.0", "2.3"));
        assert!(version_le("2.3.0", "2.3"));
        assert!(!version_le("2.10.0", "2.9.9"));
    }
}
