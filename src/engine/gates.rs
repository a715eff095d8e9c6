//! Policy gates on a finished artifact, before it is written: size, and what the
//! artifact's own contents say (checked with the native `.tflite` reader).

use std::path::Path;

use serde::Serialize;

use crate::recipe::BuildPlan;

#[derive(Debug, Clone, Serialize)]
pub struct GateResult {
    pub gate: &'static str,
    pub ok: bool,
    pub message: String,
}

/// Every gate the plan asks for, in a stable order.
pub fn check(plan: &BuildPlan, _artifact: &Path, size: u64) -> Vec<GateResult> {
    let mut out = Vec::new();
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

/// `409.0 KiB`, `13.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(409_032), "399.4 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
