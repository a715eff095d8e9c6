//! Golden outputs: a behaviour gate that needs no Python. When `apply` accepts an artifact,
//! the worker's parity stage has left a few inputs (as fed to the artifact) and Keras'
//! reference outputs in `<artifact>.golden.npz` beside the temporary artifact; they are kept
//! beside the signature snapshot (`snapshots/<id>.golden.npz`, size-capped by the worker, so
//! they can be committed), with `snapshots/<id>.golden.json` recording what the last apply
//! measured (parity errors, accuracy). `litert test` re-runs an up-to-date artifact natively
//! on those inputs and holds it to the recipe's parity tolerance, catching new weights or
//! op changes behind an unchanged signature.
//!
//! Arrays in the `.npz` are named `<sample>/in/<input name>` and `<sample>/out/<output name>`;
//! where the files go is [`crate::snapshot::golden`]'s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::recipe::BuildPlan;
use crate::recipe::plan::TolerancePlan;
use crate::runtime::{self, CpuSettings, Runtime, Tensor};
use crate::snapshot::golden::{npz_path, record_path, restored_record_path, worker_path};
use crate::tflite::model::ModelInfo;
use crate::worker::protocol::BuildResult;

/// Bumped when the golden format changes.
pub const FORMAT: u32 = 1;

/// What the last apply measured, kept beside the golden data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub format: u32,
    pub artifact: String,
    /// Samples in the `.npz`.
    pub samples: usize,
    /// Parity of the artifact against Keras when it was built (max abs error per output).
    pub parity_max_abs_error: BTreeMap<String, f64>,
    /// The accuracy report of that apply, when the recipe asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<crate::worker::protocol::AccuracyReport>,
}

/// The golden files an accepted artifact leaves beside its snapshot, for the build's
/// transaction: the worker's data and the record of this apply, or (when the worker made
/// none: parity off, Flex ops, inputs over the size cap) the removal of stale ones, as
/// `(path, Some(bytes))` to write and `(path, None)` to remove. Unchanged files are not
/// listed.
///
/// With `keep_close` (the artifact is the locked one, byte for byte), committed golden
/// files that the new ones match are kept as they are: the same inputs, and Keras' outputs
/// within the recipe's parity tolerance. Keras' float outputs differ in the last bits
/// between CPUs, and a locked build of an unchanged artifact must leave the checkout clean.
pub fn files(
    plan: &BuildPlan,
    temp_artifact: &Path,
    result: &BuildResult,
    keep_close: bool,
) -> std::io::Result<Vec<(PathBuf, Option<Vec<u8>>)>> {
    let from = worker_path(temp_artifact);
    let npz = npz_path(&plan.snapshot);
    let record = record_path(&plan.snapshot);
    if !from.is_file() {
        return Ok([npz, record]
            .into_iter()
            .filter(|p| std::fs::symlink_metadata(p).is_ok())
            .map(|p| (p, None))
            .collect());
    }
    // Read, not renamed: the build directory and `snapshots/` may be on different file
    // systems, and the file is capped at about 1 MiB.
    let data = std::fs::read(&from)?;
    if keep_close && record.is_file() && still_holds(plan, &npz, &data) {
        return Ok(Vec::new());
    }
    let samples = runtime::tensor::read_npz(std::io::Cursor::new(&data))
        .ok()
        .map_or(0, |arrays| {
            arrays
                .iter()
                .filter_map(|(n, _)| n.split('/').next()?.parse::<usize>().ok())
                .max()
                .map_or(0, |m| m + 1)
        });
    // A cache restore brings the record of the build that measured these outputs.
    let measured = restored_record(plan, temp_artifact).unwrap_or_else(|| Record {
        format: FORMAT,
        artifact: plan.id.clone(),
        samples,
        parity_max_abs_error: result
            .parity
            .iter()
            .flat_map(|p| &p.outputs)
            .map(|o| (o.name.clone(), o.max_abs_error))
            .collect(),
        accuracy: result.accuracy.clone(),
    });
    let text = serde_json::to_string_pretty(&measured).map_err(std::io::Error::other)?;
    // Files that already hold these bytes are left alone.
    Ok([(npz, data), (record, (text + "\n").into_bytes())]
        .into_iter()
        .filter(|(path, bytes)| std::fs::read(path).ok().as_ref() != Some(bytes))
        .map(|(path, bytes)| (path, Some(bytes)))
        .collect())
}

/// Whether the committed golden data at `committed` says what `fresh` says: the same
/// arrays, identical inputs, and outputs within the recipe's parity tolerance of each other.
fn still_holds(plan: &BuildPlan, committed: &Path, fresh: &[u8]) -> bool {
    let Ok(old) = std::fs::read(committed) else {
        return false;
    };
    let read = |bytes: &[u8]| runtime::tensor::read_npz(std::io::Cursor::new(bytes)).ok();
    let (Some(old), Some(new)) = (read(&old), read(fresh)) else {
        return false;
    };
    old.len() == new.len()
        && old.iter().zip(&new).all(|((on, ot), (nn, nt))| {
            if on != nn || ot.dtype != nt.dtype || ot.shape != nt.shape {
                return false;
            }
            let Some(output) = on.split_once("/out/").map(|(_, name)| name) else {
                return ot.bytes == nt.bytes;
            };
            let tol = tolerance(plan, output);
            ot.to_f64()
                .iter()
                .zip(nt.to_f64())
                .all(|(o, n)| o == &n || (o - n).abs() <= tol.atol + tol.rtol * o.abs())
        })
}

/// The record a cache restore brought for this artifact, if it is one of this format for
/// this very artifact (the cache verified its bytes; anything else is made afresh).
fn restored_record(plan: &BuildPlan, temp_artifact: &Path) -> Option<Record> {
    let text = std::fs::read_to_string(restored_record_path(temp_artifact)).ok()?;
    let record: Record = serde_json::from_str(&text).ok()?;
    (record.format == FORMAT && record.artifact == plan.id).then_some(record)
}

/// Read the record of the last apply, if there is one.
pub fn read_record(plan: &BuildPlan) -> Option<Record> {
    let text = std::fs::read_to_string(record_path(&plan.snapshot)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The native re-run of one artifact on its golden inputs.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub file: PathBuf,
    pub samples: usize,
    pub outputs: Vec<OutputCheck>,
    pub ok: bool,
    /// Why the check could not run (then `ok` is false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputCheck {
    pub name: String,
    pub max_abs_error: f64,
    pub atol: f64,
    pub rtol: f64,
    /// Elements outside `atol + rtol * |reference|`.
    pub violations: u64,
}

impl Check {
    /// The reason the artifact fails this gate, if it does.
    pub fn reason(&self) -> Option<String> {
        if self.ok {
            return None;
        }
        if let Some(e) = &self.error {
            return Some(format!(
                "the golden outputs in `{}` could not be checked: {e}",
                self.file.display()
            ));
        }
        let bad: Vec<String> = self
            .outputs
            .iter()
            .filter(|o| o.violations > 0)
            .map(|o| {
                format!(
                    "`{}` max abs error {:.3e} (atol {:.0e}, rtol {:.0e}, {} element(s) outside)",
                    o.name, o.max_abs_error, o.atol, o.rtol, o.violations
                )
            })
            .collect();
        Some(format!(
            "the artifact no longer reproduces its golden outputs (`{}`): {}",
            self.file.display(),
            bad.join("; ")
        ))
    }
}

/// The runtime, loaded once per process for every check.
fn runtime() -> Result<&'static Runtime, String> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            runtime::load(crate::progress::wanted())
                .map(|(r, _)| r)
                .map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Re-run the artifact on its golden inputs, if it has golden outputs.
pub fn check(plan: &BuildPlan, model: &ModelInfo) -> Option<Check> {
    let file = npz_path(&plan.snapshot);
    if !file.is_file() {
        return None;
    }
    Some(match check_file(plan, model, &file) {
        Ok((samples, outputs)) => Check {
            ok: outputs.iter().all(|o| o.violations == 0),
            file,
            samples,
            outputs,
            error: None,
        },
        Err(e) => Check {
            file,
            samples: 0,
            outputs: vec![],
            ok: false,
            error: Some(e),
        },
    })
}

type Samples = BTreeMap<usize, (Vec<(String, Tensor)>, Vec<(String, Tensor)>)>;

fn read_samples(file: &Path) -> Result<Samples, String> {
    let f = std::fs::File::open(file).map_err(|e| e.to_string())?;
    let mut samples = Samples::new();
    for (name, t) in runtime::tensor::read_npz(f)? {
        let mut parts = name.splitn(3, '/');
        let (Some(i), Some(side), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("unexpected array `{name}`"));
        };
        let i: usize = i
            .parse()
            .map_err(|_| format!("unexpected array `{name}`"))?;
        let entry = samples.entry(i).or_default();
        match side {
            "in" => entry.0.push((rest.to_string(), t)),
            "out" => entry.1.push((rest.to_string(), t)),
            _ => return Err(format!("unexpected array `{name}`")),
        }
    }
    Ok(samples)
}

fn check_file(
    plan: &BuildPlan,
    model: &ModelInfo,
    file: &Path,
) -> Result<(usize, Vec<OutputCheck>), String> {
    let samples = read_samples(file)?;
    let rt = runtime()?;
    let loaded = rt.open(&plan.output).map_err(|e| e.to_string())?;
    let index = loaded
        .select(Some("serving_default"))
        .or_else(|_| loaded.select(None))
        .map_err(|e| e.to_string())?;
    // XNNPACK, as the Python interpreter the reference parity ran through.
    let cpu = CpuSettings {
        threads: 1,
        xnnpack: true,
    };
    let mut compiled = loaded.compile(index, cpu).map_err(|e| e.to_string())?;
    let quant: BTreeMap<&str, (f64, i64)> = model
        .signatures
        .iter()
        .find(|s| s.key == compiled.key)
        .into_iter()
        .flat_map(|s| &s.outputs)
        .filter_map(|o| {
            let q = o.tensor.quantization.as_ref()?;
            match (q.scale.as_slice(), q.zero_point.as_slice()) {
                ([s], [z]) if *s != 0.0 => Some((o.name.as_str(), (f64::from(*s), *z))),
                ([s], []) if *s != 0.0 => Some((o.name.as_str(), (f64::from(*s), 0))),
                _ => None,
            }
        })
        .collect();
    let mut stats: BTreeMap<String, OutputCheck> = BTreeMap::new();
    for (inputs, references) in samples.values() {
        compiled.set_inputs(inputs).map_err(|e| e.to_string())?;
        let got = compiled.run_checked().map_err(|e| e.to_string())?;
        for (name, reference) in references {
            let Some((_, out)) = got.iter().find(|(n, _)| n == name) else {
                return Err(format!("the artifact has no output `{name}`"));
            };
            if out.shape != reference.shape {
                return Err(format!(
                    "output `{name}` has shape {:?}, the reference {:?}",
                    out.shape, reference.shape
                ));
            }
            let tol = tolerance(plan, name);
            let values = out.to_f64();
            let dequant = |v: f64| match (quant.get(name.as_str()), out.dtype.is_float()) {
                (Some((scale, zero)), false) => (v - *zero as f64) * scale,
                _ => v,
            };
            let st = stats.entry(name.clone()).or_insert(OutputCheck {
                name: name.clone(),
                max_abs_error: 0.0,
                atol: tol.atol,
                rtol: tol.rtol,
                violations: 0,
            });
            for (v, r) in values.into_iter().zip(reference.to_f64()) {
                let diff = (dequant(v) - r).abs();
                // NaN differences count as violations, as numpy's comparison does.
                if diff.is_nan() || diff > tol.atol + tol.rtol * r.abs() {
                    st.violations += 1;
                }
                if diff > st.max_abs_error || diff.is_nan() {
                    st.max_abs_error = diff;
                }
            }
        }
    }
    Ok((samples.len(), stats.into_values().collect()))
}

fn tolerance(plan: &BuildPlan, name: &str) -> TolerancePlan {
    let t = &plan.parity.tolerance;
    t.get(name)
        .or_else(|| t.get("*"))
        .copied()
        .unwrap_or(TolerancePlan {
            atol: 1e-4,
            rtol: 1e-4,
        })
}
