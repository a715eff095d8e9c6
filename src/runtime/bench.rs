//! Timing one model: load and compile time, the first invocation, warm latency percentiles
//! after a warm-up, the process's peak memory, and the cost of the timing itself.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::{CpuSettings, RunError, Runtime};

/// How to benchmark.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub warmup: u32,
    pub iterations: u32,
    pub cpu: CpuSettings,
}

/// Warm latency statistics, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub runs: usize,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl Stats {
    /// Nearest-rank percentiles of `samples` (seconds).
    pub fn of(samples: &[f64]) -> Stats {
        let mut s: Vec<f64> = samples.iter().map(|x| x * 1e3).collect();
        s.sort_by(f64::total_cmp);
        let pct = |p: f64| -> f64 {
            if s.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
            s[rank.clamp(1, s.len()) - 1]
        };
        let median = if s.is_empty() {
            0.0
        } else if s.len() % 2 == 1 {
            s[s.len() / 2]
        } else {
            (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
        };
        Stats {
            runs: s.len(),
            median_ms: median,
            p90_ms: pct(90.0),
            p99_ms: pct(99.0),
            mean_ms: if s.is_empty() {
                0.0
            } else {
                s.iter().sum::<f64>() / s.len() as f64
            },
            min_ms: s.first().copied().unwrap_or(0.0),
            max_ms: s.last().copied().unwrap_or(0.0),
        }
    }
}

/// One model under one CPU setting.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub signature: String,
    /// `xnnpack` (LiteRT's default CPU path) or `builtin` (LiteRT's own kernels only).
    pub kernels: &'static str,
    pub threads: u32,
    /// Verifying the file, loading it, compiling it and allocating buffers.
    pub init_ms: f64,
    pub first_invoke_ms: f64,
    pub warm: Stats,
    /// The process's peak resident memory while this model ran (Linux; reset before it).
    pub peak_rss_bytes: Option<u64>,
    /// What timing one invocation itself costs (two clock reads), per invocation.
    pub timer_overhead_ns: f64,
    /// Inputs with dynamic dimensions were run at size 1 there.
    pub dynamic_inputs: Vec<String>,
}

/// Benchmark `path`'s signature `key` (or its default) on synthetic inputs.
pub fn measure(
    runtime: &Runtime,
    path: &Path,
    key: Option<&str>,
    settings: Settings,
    mut progress: impl FnMut(u32, u32),
) -> Result<Measurement, RunError> {
    reset_peak_rss();
    let start = Instant::now();
    let loaded = runtime.open(path)?;
    let index = loaded.select(key)?;
    let mut compiled = loaded.compile(index, settings.cpu)?;
    let dynamic_inputs = compiled
        .inputs
        .iter()
        .filter(|p| p.shape_signature.iter().any(|&d| d < 0))
        .map(|p| p.name.clone())
        .collect();
    let feeds = compiled.synthetic_inputs()?;
    compiled.set_inputs(&feeds)?;
    let init = start.elapsed().as_secs_f64();
    let t = Instant::now();
    compiled.invoke()?;
    let first = t.elapsed().as_secs_f64();
    let total = settings.warmup + settings.iterations;
    for i in 0..settings.warmup {
        compiled.invoke()?;
        progress(i + 1, total);
    }
    let mut samples = Vec::with_capacity(settings.iterations as usize);
    for i in 0..settings.iterations {
        let t = Instant::now();
        compiled.invoke()?;
        samples.push(t.elapsed().as_secs_f64());
        progress(settings.warmup + i + 1, total);
    }
    Ok(Measurement {
        signature: compiled.key.clone(),
        kernels: if settings.cpu.xnnpack {
            "xnnpack"
        } else {
            "builtin"
        },
        threads: settings.cpu.threads,
        init_ms: init * 1e3,
        first_invoke_ms: first * 1e3,
        warm: Stats::of(&samples),
        peak_rss_bytes: peak_rss(),
        timer_overhead_ns: timer_overhead_ns(),
        dynamic_inputs,
    })
}

/// Median cost of an empty timed region (two `Instant::now` calls).
fn timer_overhead_ns() -> f64 {
    let mut s: Vec<f64> = (0..1001)
        .map(|_| {
            let t = Instant::now();
            t.elapsed().as_secs_f64() * 1e9
        })
        .collect();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// Reset the kernel's peak-RSS counter to the current RSS (`/proc/self/clear_refs`, value 5),
/// so each model's peak is its own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// `VmHWM` from `/proc/self/status`, in bytes.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(|i| f64::from(i) / 1e3).collect();
        let s = Stats::of(&samples);
        assert_eq!(s.runs, 100);
        assert!((s.median_ms - 50.5).abs() < 1e-9);
        assert!((s.p90_ms - 90.0).abs() < 1e-9);
        assert!((s.p99_ms - 99.0).abs() < 1e-9);
        assert!((s.min_ms - 1.0).abs() < 1e-9 && (s.max_ms - 100.0).abs() < 1e-9);
    }
}
