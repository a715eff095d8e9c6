//! What a build will need in memory, known before Python starts: the weight bytes of the
//! model source on disk (a `.keras` archive's weights entry, an `.h5` file, a SavedModel's
//! `variables/`, a local preset's `*.weights.h5`), and the peak an export reaches for them.
//! Measured (issue 14, a random Gemma at Gemma 2B's width): a plain export peaks at about 7×
//! the float32 weight bytes, on top of TensorFlow's own ~0.6 GB. A generation export, which
//! loads a slice at a time, releases the Keras model before converting and never hands the
//! converter a float tied table, peaks near 2.4× with int8 weights (2.1× at 2 layers, 2.3× at
//! Gemma 2B's 18, over the baseline) and 5× with float weights (not remeasured since those
//! changes; docs/llm.md#memory). A small model's export stays under 2 GiB (ResNet50 peaks at
//! ~1.7 GB). The native LLM writer streams the weights: its peak is the check's Keras model
//! and its eager `generate()` (1.38× a bfloat16 preset's bytes at Gemma 2B's size, measured
//! with the bundle verified), or TensorFlow's baseline with the check off (0.76 GiB there).
//! `apply` sizes `--jobs` from the largest estimate and warns before a build that will not
//! fit the machine or the worker's own memory limit.

use std::path::Path;

use crate::recipe::BuildPlan;
use crate::recipe::plan::{ModelPlan, PresetRef};
use crate::recipe::types::{GenerationWriter, QuantizationMode};
use crate::units::human_bytes;

/// TensorFlow and Keras imported, before any model.
const BASELINE: u64 = 600 << 20;
/// Peak process memory per float32 weight byte during an export, in tenths (measured, see
/// above).
fn peak_tenths_per_weight_byte(plan: &BuildPlan) -> u64 {
    match (&plan.generation, plan.quantization.mode) {
        // The native writer streams the weights (a few MB at a time); only the check's
        // Keras model and its generate() hold them: 1.26× a bfloat16 preset's bytes over
        // the baseline, measured at Gemma 2B's size (docs/llm.md#the-native-writer).
        (Some(g), _) if g.writer == GenerationWriter::Native => {
            if g.check.is_some() {
                14
            } else {
                0
            }
        }
        (Some(_), Some(QuantizationMode::DynamicRange)) => 24,
        (Some(_), _) => 50,
        (None, _) => 70,
    }
}

/// What any export may need, however small its model.
pub const SMALL_MODEL_PEAK: u64 = 2 << 30;

/// The weight bytes of the model source, when they can be read from disk.
pub fn weight_bytes(model: &ModelPlan) -> Option<u64> {
    match model {
        ModelPlan::Keras { path, .. } => keras_weights(path),
        ModelPlan::H5 { path, .. } | ModelPlan::Weights { path, .. } => {
            std::fs::metadata(path).ok().map(|m| m.len())
        }
        ModelPlan::SavedModel { path } => tree_bytes(&path.join("variables")),
        ModelPlan::Preset {
            preset: PresetRef::Path(dir),
            ..
        } => {
            let total: u64 = std::fs::read_dir(dir)
                .ok()?
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".weights.h5"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum();
            (total > 0).then_some(total)
        }
        // A named preset is downloaded by the worker; a factory builds its model in Python.
        ModelPlan::Preset { .. } | ModelPlan::Factory { .. } => None,
    }
}

/// The uncompressed size of the weights inside a `.keras` archive, from its directory.
fn keras_weights(path: &Path) -> Option<u64> {
    let file = std::fs::File::open(path).ok()?;
    let mut archive = zip::ZipArchive::new(file).ok()?;
    let index = archive.index_for_name("model.weights.h5")?;
    let entry = archive.by_index_raw(index).ok()?;
    Some(entry.size())
}

fn tree_bytes(dir: &Path) -> Option<u64> {
    let mut total = 0u64;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let meta = entry.metadata().ok()?;
        total = total.saturating_add(if meta.is_dir() {
            tree_bytes(&entry.path()).unwrap_or(0)
        } else {
            meta.len()
        });
    }
    Some(total)
}

/// The estimated peak memory of one build.
pub fn peak(plan: &BuildPlan) -> u64 {
    weight_bytes(&plan.model).map_or(SMALL_MODEL_PEAK, |w| {
        BASELINE
            .saturating_add(w.saturating_mul(peak_tenths_per_weight_byte(plan)) / 10)
            .max(SMALL_MODEL_PEAK)
    })
}

/// `MemAvailable` from `/proc/meminfo` (Linux); `None` elsewhere.
pub fn mem_available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// How many of the requested workers fit, and what to warn about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fit {
    pub jobs: usize,
    /// Why fewer workers run than asked, when they do.
    pub note: Option<String>,
    /// Builds that may not fit at all, one line each.
    pub warnings: Vec<String>,
}

/// `fit` with this machine's available memory and the workers' own limit.
pub fn fit_this_machine(plans: &[BuildPlan], requested: usize) -> Fit {
    fit(plans, requested, mem_available(), |jobs| {
        crate::worker::memory::budget(jobs).ok().flatten()
    })
}

/// Fit `requested` workers for `plans` into `available` bytes (unknown: no limit).
/// `worker_limit(jobs)` is each worker's own memory limit when `jobs` run
/// (`worker::memory::budget`): a build that fits the machine but not that limit is named too.
pub fn fit(
    plans: &[BuildPlan],
    requested: usize,
    available: Option<u64>,
    worker_limit: impl Fn(usize) -> Option<u64>,
) -> Fit {
    let requested = requested.max(1);
    let Some(available) = available else {
        return Fit {
            jobs: requested,
            note: None,
            warnings: vec![],
        };
    };
    let largest = plans.iter().map(peak).max().unwrap_or(SMALL_MODEL_PEAK);
    let allowed = usize::try_from(available / largest.max(1))
        .unwrap_or(usize::MAX)
        .max(1);
    let jobs = requested.min(allowed);
    let note = (jobs < requested).then(|| {
        format!(
            "running {jobs} worker(s) instead of {requested}: the largest build may need about {} and {} is available",
            human_bytes(largest),
            human_bytes(available)
        )
    });
    let limit = worker_limit(jobs);
    let warnings = plans
        .iter()
        .filter_map(|p| {
            let need = peak(p);
            let weights = weight_bytes(&p.model)?;
            let short = need > available;
            let over_limit = limit.filter(|&l| need > l);
            if !short && over_limit.is_none() {
                return None;
            }
            let mut text = format!(
                "`{}` may need about {} of memory ({} of weights; its export peaks near {}× that)",
                p.id,
                human_bytes(need),
                human_bytes(weights),
                peak_tenths_per_weight_byte(p) as f64 / 10.0,
            );
            if short {
                text += &format!(
                    ", and {} is available: it may be stopped for lack of memory",
                    human_bytes(available)
                );
            }
            if let Some(limit) = over_limit {
                text += &format!(
                    "; it is over the worker's memory limit of {}: set `{}=none` (or a size) to lift it",
                    human_bytes(limit),
                    crate::worker::memory::ENV_VAR,
                );
            }
            Some(text)
        })
        .collect();
    Fit {
        jobs,
        note,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn keras_file(dir: &Path, weights: usize) -> std::path::PathBuf {
        let path = dir.join("m.keras");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("config.json", options).unwrap();
        zip.write_all(b"{}").unwrap();
        zip.start_file("model.weights.h5", options).unwrap();
        zip.write_all(&vec![0u8; weights]).unwrap();
        zip.finish().unwrap();
        path
    }

    #[test]
    fn keras_weights_are_read_from_the_archive_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = keras_file(dir.path(), 3 << 20);
        // Compressed, the file is tiny; the directory still says 3 MiB.
        assert!(std::fs::metadata(&path).unwrap().len() < 100_000);
        let model = ModelPlan::Keras {
            path,
            custom_objects: vec![],
        };
        assert_eq!(weight_bytes(&model), Some(3 << 20));
        let missing = ModelPlan::Keras {
            path: dir.path().join("none.keras"),
            custom_objects: vec![],
        };
        assert_eq!(weight_bytes(&missing), None);
    }

    #[test]
    fn local_presets_sum_their_weight_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.weights.h5"), vec![0u8; 1000]).unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        let model = ModelPlan::Preset {
            preset: PresetRef::Path(dir.path().to_path_buf()),
            task: "CausalLM".into(),
            args: Default::default(),
            var: None,
            lora: None,
        };
        assert_eq!(weight_bytes(&model), Some(1000));
    }

    #[test]
    fn jobs_shrink_to_the_largest_build_and_big_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.h5");
        // 3 GiB of weights as a sparse file: ~21.6 GiB estimated.
        std::fs::File::create(&big)
            .unwrap()
            .set_len(3 << 30)
            .unwrap();
        let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/classifier_quant.yaml");
        let mut plans = crate::recipe::check_file(
            &recipe,
            &crate::recipe::Overrides::default(),
            &mut crate::diag::Sources::default(),
        )
        .plans;
        assert!(plans.len() >= 2);
        plans[1].model = ModelPlan::H5 {
            path: big,
            custom_objects: vec![],
        };
        let no_limit = |_| None;
        let f = fit(&plans, 4, Some(16 << 30), no_limit);
        assert_eq!(f.jobs, 1);
        assert!(f.note.as_deref().unwrap().contains("instead of 4"), "{f:?}");
        assert_eq!(f.warnings.len(), 1);
        assert!(f.warnings[0].contains("3.0 GiB of weights"), "{f:?}");
        assert!(f.warnings[0].contains("16.0 GiB is available"), "{f:?}");
        // Room on the machine but not under the worker's limit: named, with the way out.
        let limit = |jobs| Some((12 << 30) / jobs as u64);
        let f = fit(&plans, 1, Some(40 << 30), limit);
        assert_eq!(f.warnings.len(), 1, "{f:?}");
        assert!(!f.warnings[0].contains("is available"), "{f:?}");
        assert!(
            f.warnings[0].contains("over the worker's memory limit of 12.0 GiB"),
            "{f:?}"
        );
        assert!(f.warnings[0].contains("LITERT_WORKER_MEMORY=none"), "{f:?}");
        // Short on both: both said.
        let f = fit(&plans, 1, Some(16 << 30), limit);
        assert!(f.warnings[0].contains("16.0 GiB is available"), "{f:?}");
        assert!(
            f.warnings[0].contains("over the worker's memory limit"),
            "{f:?}"
        );
        // Small builds: as many as memory allows at 2 GiB each.
        let small = &plans[..1];
        assert_eq!(fit(small, 4, Some(5 << 30), no_limit).jobs, 2);
        assert_eq!(fit(small, 4, Some(3 << 30), no_limit).jobs, 1);
        assert_eq!(fit(&plans[..1], 1, None, no_limit).jobs, 1);
    }

    #[test]
    fn generation_exports_release_the_model_and_peak_lower() {
        let plans = |file: &str| {
            let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            crate::recipe::check_file(
                &recipe,
                &crate::recipe::Overrides::default(),
                &mut crate::diag::Sources::default(),
            )
            .plans
        };
        let gemma = plans("recipes/gemma_int8.yaml");
        assert!(gemma[0].generation.is_some());
        assert_eq!(peak_tenths_per_weight_byte(&gemma[0]), 24);
        let mut float = gemma[0].clone();
        float.quantization.mode = None;
        assert_eq!(peak_tenths_per_weight_byte(&float), 50);
        let mut native = gemma[0].clone();
        let g = native.generation.as_mut().unwrap();
        g.writer = GenerationWriter::Native;
        assert_eq!(peak_tenths_per_weight_byte(&native), 14);
        native.generation.as_mut().unwrap().check = None;
        assert_eq!(peak_tenths_per_weight_byte(&native), 0);
        let plain = &plans("recipes/classifier_quant.yaml")[0];
        assert_eq!(peak_tenths_per_weight_byte(plain), 70);
    }
}
