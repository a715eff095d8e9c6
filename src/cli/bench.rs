//! `litert bench`: time models natively (no Python), with XNNPACK and with LiteRT's builtin
//! kernels; for a recipe, every variant side by side with its size and the accuracy its last
//! `apply` measured, as a Markdown table and an SVG chart.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::common::{RecipeArgs, checked_plans};
use super::{Exit, output};
use crate::engine::golden;
use crate::progress::Ui;
use crate::runtime::{self, CpuSettings, bench};
use crate::units::human_bytes;

/// Benchmark models natively: init time, first invocation, warm latency, peak memory.
///
/// Takes `.tflite` files and recipes; a recipe's variants are compared side by side
/// (size, accuracy from the last `apply`, latency) in a Markdown table and an SVG chart.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  litert bench build/classifier-fp32.tflite\n  litert bench recipes/classifier_quant.yaml --svg quant.svg\n  litert bench model.tflite --threads 2 --iterations 500 --json\n\nInputs are synthetic (fixed pseudo-random values; dynamic dimensions run at size 1).\nLatency is the wall time of LiteRT's run call on this machine; peak memory is the process's\npeak resident set while the model ran (Linux).\n\nExit codes: 0 success, 1 a model failed to run, 2 a bad model, recipe or argument"
)]
pub struct BenchArgs {
    /// `.tflite` files and/or recipes (files, directories or globs).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// CPU threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,
    /// Untimed invocations before measuring.
    #[arg(long, default_value_t = 10)]
    pub warmup: u32,
    /// Timed invocations.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub iterations: u32,
    /// Which CPU kernels: XNNPACK (LiteRT's default), LiteRT's builtin ones, or both.
    #[arg(long, value_enum, default_value_t = Kernels::Both)]
    pub kernels: Kernels,
    /// The signature to run (default: the only one, else `serving_default`).
    #[arg(long, value_name = "KEY")]
    pub signature: Option<String>,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// For recipes: also write the comparison chart here, as SVG.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    #[command(flatten)]
    pub recipe: RecipeArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kernels {
    Both,
    Xnnpack,
    Builtin,
}

/// A model to benchmark: its path, recipe variant and accuracy from the last apply.
type Item = (PathBuf, Option<String>, Option<String>);

/// One model's results under each kernel setting.
#[derive(Debug, Serialize)]
struct ModelBench {
    model: String,
    /// The recipe variant, for models from a recipe.
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    size_bytes: u64,
    /// From the last `apply` (`snapshots/<id>.golden.json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy: Option<String>,
    runs: Vec<bench::Measurement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<Exit> {
    let (models, recipe_paths): (Vec<PathBuf>, Vec<PathBuf>) = args
        .paths
        .iter()
        .cloned()
        .partition(|p| p.extension().is_some_and(|e| e == "tflite"));
    // (recipe name, chart path, items); loose models form one group without a chart.
    let mut groups: Vec<(Option<String>, Option<PathBuf>, Vec<Item>)> = Vec::new();
    if !models.is_empty() {
        groups.push((
            None,
            None,
            models.into_iter().map(|m| (m, None, None)).collect(),
        ));
    }
    if !recipe_paths.is_empty() {
        let Some(plans) = checked_plans(&recipe_paths, &args.recipe)? else {
            output::stderr("error: nothing was benchmarked: fix the recipe errors above\n");
            return Ok(Exit::Usage);
        };
        let mut by_recipe: Vec<(String, Vec<_>)> = Vec::new();
        for plan in plans {
            let accuracy = golden::read_record(&plan).and_then(|r| accuracy_text(&r));
            let item = (plan.output.clone(), plan.variant.clone(), accuracy);
            match by_recipe.iter_mut().find(|(n, _)| *n == plan.name) {
                Some((_, items)) => items.push(item),
                None => by_recipe.push((plan.name.clone(), vec![item])),
            }
        }
        for (name, items) in by_recipe {
            groups.push((Some(name), args.svg.clone(), items));
        }
    }
    let (runtime, found) = runtime::load(crate::progress::wanted())?;
    let settings: Vec<CpuSettings> = match args.kernels {
        Kernels::Both => vec![true, false],
        Kernels::Xnnpack => vec![true],
        Kernels::Builtin => vec![false],
    }
    .into_iter()
    .map(|xnnpack| CpuSettings {
        threads: args.threads,
        xnnpack,
    })
    .collect();
    let total: usize = groups.iter().map(|g| g.2.len()).sum::<usize>() * settings.len();
    let ui = Ui::new(crate::progress::wanted());
    let mut done = 0usize;
    let mut any_failed = false;
    let mut any_input_error = false;
    let mut report = Vec::new();
    let mut text = String::new();
    for (recipe, chart, items) in groups {
        let mut benches = Vec::new();
        for (path, variant, accuracy) in items {
            let size_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let mut b = ModelBench {
                model: path.display().to_string(),
                variant,
                size_bytes,
                accuracy,
                runs: vec![],
                error: None,
            };
            if recipe.is_some() && !path.is_file() {
                b.error = Some("not built: run `litert apply` first".into());
                done += settings.len();
                benches.push(b);
                continue;
            }
            for cpu in &settings {
                done += 1;
                let label = format!(
                    "[{done}/{total}] {} ({})",
                    path.display(),
                    if cpu.xnnpack { "xnnpack" } else { "builtin" }
                );
                ui.counted(u64::from(args.warmup + args.iterations), label.clone());
                let s = bench::Settings {
                    warmup: args.warmup,
                    iterations: args.iterations,
                    cpu: *cpu,
                };
                match bench::measure(&runtime, &path, args.signature.as_deref(), s, |i, _| {
                    ui.set_position(u64::from(i));
                }) {
                    Ok(m) => b.runs.push(m),
                    Err(e) => {
                        any_failed = true;
                        any_input_error |= e.is_input();
                        b.error = Some(e.to_string());
                        break;
                    }
                }
            }
            benches.push(b);
        }
        ui.finish();
        if let Some(name) = &recipe {
            let _ = writeln!(text, "## {name}\n");
        }
        text.push_str(&markdown(&benches, recipe.is_some()));
        text.push('\n');
        if let Some(chart) = &chart {
            let svg = svg_chart(recipe.as_deref().unwrap_or(""), &benches, args.threads);
            match svg.and_then(|s| crate::fsio::write_atomic(chart, s).map_err(|e| e.to_string())) {
                Ok(()) => output::stderr(&format!("wrote the chart to `{}`\n", chart.display())),
                Err(e) => output::stderr(&format!(
                    "warning: cannot write the chart `{}`: {e}\n",
                    chart.display()
                )),
            }
        }
        report.extend(benches.into_iter().map(|b| (recipe.clone(), b)));
    }
    if args.json {
        let items: Vec<_> = report
            .iter()
            .map(|(recipe, b)| {
                let mut v = serde_json::to_value(b).unwrap_or_default();
                if let Some(r) = recipe {
                    v["recipe"] = serde_json::json!(r);
                }
                v
            })
            .collect();
        let json = serde_json::json!({
            "runtime": {
                "library": found.path.display().to_string(),
                "source": found.source.describe(),
                "ai_edge_litert": found.version,
            },
            "warmup": args.warmup,
            "iterations": args.iterations,
            "models": items,
        });
        output::stdout(&(serde_json::to_string_pretty(&json)? + "\n"))?;
    } else {
        let _ = writeln!(
            text,
            "LiteRT {} ({}), {} thread(s), {} warm-up + {} timed runs; xnnpack = LiteRT's default CPU path, builtin = without XNNPACK",
            found.version,
            found.source.describe(),
            args.threads,
            args.warmup,
            args.iterations
        );
        output::stdout(&text)?;
    }
    Ok(if any_input_error {
        Exit::Usage
    } else if any_failed {
        Exit::Failure
    } else {
        Exit::Success
    })
}

/// The accuracy a record carries, in one short phrase.
fn accuracy_text(r: &golden::Record) -> Option<String> {
    let a = r.accuracy.as_ref()?;
    if let Some(l) = &a.labels {
        return Some(format!(
            "{:.1}% (float {:.1}%)",
            l.artifact_accuracy * 100.0,
            l.float_accuracy * 100.0
        ));
    }
    let o = a.outputs.first()?;
    Some(match o.top1_agreement {
        Some(t) => format!("top-1 agreement {:.1}%", t * 100.0),
        None => format!("cosine {:.4}", o.cosine_similarity),
    })
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn markdown(benches: &[ModelBench], recipe: bool) -> String {
    let mut t = String::new();
    let first = if recipe { "variant" } else { "model" };
    let _ = writeln!(
        t,
        "| {first} | size | accuracy | kernels | init ms | first ms | median ms | p90 ms | p99 ms | peak RSS |"
    );
    t.push_str("|---|---:|---|---|---:|---:|---:|---:|---:|---:|\n");
    for b in benches {
        let name = if recipe {
            b.variant.clone().unwrap_or_else(|| b.model.clone())
        } else {
            b.model.clone()
        };
        let acc = b.accuracy.clone().unwrap_or_else(|| "—".into());
        if b.runs.is_empty() {
            let _ = writeln!(
                t,
                "| {name} | {} | {acc} | — | — | — | — | — | — | {} |",
                human_bytes(b.size_bytes),
                b.error.as_deref().unwrap_or("")
            );
            continue;
        }
        for m in &b.runs {
            let _ = writeln!(
                t,
                "| {name} | {} | {acc} | {} | {} | {} | {} | {} | {} | {} |",
                human_bytes(b.size_bytes),
                m.kernels,
                ms(m.init_ms),
                ms(m.first_invoke_ms),
                ms(m.warm.median_ms),
                ms(m.warm.p90_ms),
                ms(m.warm.p99_ms),
                m.peak_rss_bytes.map_or_else(|| "—".into(), human_bytes)
            );
        }
        if let Some(e) = &b.error {
            let _ = writeln!(t, "| {name} | | | error: {e} | | | | | | |");
        }
    }
    t
}

/// A grouped bar chart: warm median latency per variant, one bar per kernel setting, with
/// each variant's size under its name.
fn svg_chart(recipe: &str, benches: &[ModelBench], threads: u32) -> Result<String, String> {
    use plotters::prelude::*;

    let kernels = ["xnnpack", "builtin"];
    let max = benches
        .iter()
        .flat_map(|b| &b.runs)
        .map(|m| m.warm.p90_ms)
        .fold(0.0f64, f64::max)
        .max(1e-3);
    let n = benches.len().max(1);
    let width = (160 + 150 * n).max(480) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{recipe}: warm median latency, {threads} thread(s)"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..n as f64, 0.0..max * 1.15)
            .map_err(|e| e.to_string())?;
        let names: Vec<String> = benches
            .iter()
            .map(|b| {
                format!(
                    "{} ({})",
                    b.variant.clone().unwrap_or_else(|| b.model.clone()),
                    human_bytes(b.size_bytes)
                )
            })
            .collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n * 2 + 1)
            .x_label_formatter(&|x| {
                let i = (x - 0.5).round();
                if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("median ms (whisker: p90)")
            .draw()
            .map_err(|e| e.to_string())?;
        let colors = [RGBColor(31, 119, 180), RGBColor(255, 127, 14)];
        for (k, kernel) in kernels.iter().enumerate() {
            let color = colors[k];
            let bars: Vec<_> = benches
                .iter()
                .enumerate()
                .filter_map(|(i, b)| {
                    let m = b.runs.iter().find(|m| m.kernels == *kernel)?;
                    let x0 = i as f64 + 0.1 + 0.4 * k as f64;
                    Some((x0, m.warm.median_ms, m.warm.p90_ms))
                })
                .collect();
            if bars.is_empty() {
                continue;
            }
            chart
                .draw_series(bars.iter().map(|&(x0, median, _)| {
                    Rectangle::new([(x0, 0.0), (x0 + 0.38, median)], color.filled())
                }))
                .map_err(|e| e.to_string())?
                .label(*kernel)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
            chart
                .draw_series(bars.iter().map(|&(x0, median, p90)| {
                    PathElement::new(vec![(x0 + 0.19, median), (x0 + 0.19, p90)], BLACK)
                }))
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}
