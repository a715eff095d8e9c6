//! The `.litertlm` bundle of a generation export, between the worker's artifact and the
//! build's transaction: written (in Rust, [`crate::litertlm`]) into the build's private
//! directory from the artifact and the preset's tokenizer, read back natively, and judged
//! against what LiteRT-LM generated from it (the worker runs the runtime; the verdict is
//! here): the runtime must tokenize each check prompt as Keras did and produce the same
//! greedy text as the interpreter-driven generation check, cut at the bundle's stop tokens.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Failure;
use crate::litertlm::{self, BundleInfo, spec};
use crate::recipe::plan::{BundlePlan, GenerationPlan};
use crate::worker::protocol::{BundleCheck, BundlePrompt, GenerationCheck, GenerationResult};

/// A bundle written for an accepted artifact, waiting for the transaction.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    /// Where it goes.
    pub output: PathBuf,
    /// Where it is now (inside the build's private directory).
    #[serde(skip)]
    pub temp: PathBuf,
    pub size: u64,
    pub sha256: String,
    #[serde(skip)]
    pub info: Box<BundleInfo>,
    /// LiteRT-LM's run and its verdict; `None` when `verify: false`.
    pub check: Option<Verdict>,
}

/// LiteRT-LM against the generation check.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub ok: bool,
    /// What differs, one line each.
    pub mismatches: Vec<String>,
    pub run: BundleCheck,
}

/// A written bundle and the private directory holding it until the transaction moves it.
pub struct Written {
    pub built: Built,
    _dir: crate::fsio::PrivateDir,
    // Dropped last: the signal handler forgets the directory only once it is removed.
    _tracked: crate::interrupt::Dir,
}

/// Write the bundle of `artifact` in a private directory beside its output (in the system
/// temp directory when the run only checks), and read it back.
pub fn write(
    plan: &BundlePlan,
    g: &GenerationPlan,
    artifact: &Path,
    result: &GenerationResult,
    writes: bool,
) -> Result<Written, Failure> {
    let failure = |message: String, hint: Option<&str>| Failure {
        stage: "bundle".into(),
        message,
        hint: hint.map(str::to_string),
        detail: None,
    };
    let preset = result.preset_dir.as_deref().ok_or_else(|| {
        failure(
            "the worker could not tell where the preset's files are, so the bundle has no tokenizer".into(),
            Some("point the recipe at a local preset directory (`task.save_to_preset(DIR)`)"),
        )
    })?;
    let bundle =
        spec::bundle(artifact, Path::new(preset), &spec_of(plan, g.capacity)).map_err(|m| {
            failure(
                m,
                Some("fix `generation.bundle` in the recipe, or the preset"),
            )
        })?;
    let beside = if writes {
        plan.output.clone()
    } else {
        std::env::temp_dir().join("litert-test.litertlm")
    };
    let dir = crate::fsio::PrivateDir::beside(&beside).map_err(|e| {
        failure(
            format!(
                "cannot write the bundle in `{}`: {}",
                crate::fsio::parent_dir(&beside).display(),
                super::failure::write_reason(&e)
            ),
            Some("free space or fix the permissions of the output directory"),
        )
    })?;
    let tracked = crate::interrupt::Dir::track(dir.path());
    let temp = dir.join("bundle.litertlm");
    bundle.write(&temp).map_err(|e| {
        failure(
            format!("cannot write the bundle: {}", error_chain(&e)),
            Some("free space or fix the permissions of the output directory"),
        )
    })?;
    let info = litertlm::read_path(&temp)
        .map_err(|e| failure(format!("litert cannot read the bundle it wrote: {e}"), None))?;
    if !info.problems.is_empty() {
        return Err(failure(
            format!("the bundle would not run: {}", info.problems.join("; ")),
            None,
        ));
    }
    let sha256 = crate::digest::file_sha256(&temp)
        .map_err(|e| failure(format!("cannot read the bundle it wrote: {e:#}"), None))?;
    Ok(Written {
        built: Built {
            output: plan.output.clone(),
            size: info.size_bytes,
            temp,
            sha256,
            info: Box::new(info),
            check: None,
        },
        _dir: dir,
        _tracked: tracked,
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// The recipe's bundle settings as the writer takes them.
pub fn spec_of(plan: &BundlePlan, capacity: u32) -> spec::BundleSpec {
    let affixes = |a: &Option<crate::recipe::types::Affixes>| {
        a.as_ref().map(|a| (a.prefix.clone(), a.suffix.clone()))
    };
    spec::BundleSpec {
        start_token: plan.start_token.as_ref().map(Into::into),
        stop_tokens: plan
            .stop_tokens
            .as_ref()
            .map(|l| l.iter().map(Into::into).collect()),
        template: plan.prompt_template.as_ref().map(|t| spec::Template {
            user: affixes(&t.user),
            model: affixes(&t.model),
            system: affixes(&t.system),
        }),
        jinja_template: plan.jinja_template.clone(),
        max_num_tokens: capacity,
    }
}

/// The stop tokens the bundle's LlmMetadata holds.
pub fn stop_tokens(info: &BundleInfo) -> Vec<i64> {
    info.sections
        .iter()
        .filter_map(|s| s.llm_metadata.as_ref())
        .flat_map(|m| m.stop_tokens.iter())
        .flat_map(|t| t.ids.iter().flatten().map(|&i| i64::from(i)))
        .collect()
}

/// What LiteRT-LM is asked to generate: the recipe's prompts (not the one made to fill the
/// cache: the runtime keeps room of its own), each with the artifact's greedy tokens from
/// the generation check, cut before the first stop token as the runtime stops there.
pub fn prompts(check: &GenerationCheck, stops: &[i64]) -> Vec<BundlePrompt> {
    check
        .prompts
        .iter()
        .filter(|p| !p.fills_cache)
        .filter_map(|p| {
            let text = p.prompt.clone()?;
            let end = p
                .litert_ids
                .iter()
                .position(|t| stops.contains(t))
                .unwrap_or(p.litert_ids.len());
            Some(BundlePrompt {
                text,
                expected_ids: p.litert_ids[..end].to_vec(),
            })
        })
        .collect()
}

/// Judge LiteRT-LM's run: the same prompt tokens as Keras (after the start token) and the
/// same text as the generation check's tokens.
pub fn judge(check: &GenerationCheck, run: BundleCheck) -> Verdict {
    let mut mismatches = Vec::new();
    let asked = check
        .prompts
        .iter()
        .filter(|p| !p.fills_cache && p.prompt.is_some())
        .count();
    if run.prompts.len() != asked {
        mismatches.push(format!(
            "LiteRT-LM answered {} of {asked} prompts",
            run.prompts.len()
        ));
    }
    for r in &run.prompts {
        let keras = check
            .prompts
            .iter()
            .find(|p| p.prompt.as_deref() == Some(r.prompt.as_str()));
        if let Some(k) = keras
            && !k.prompt_ids.is_empty()
        {
            // Keras' ids start with the start token, which the runtime adds itself.
            let keras_ids = match (k.prompt_ids.first(), run.start_token) {
                (Some(first), Some(start)) if *first == start => &k.prompt_ids[1..],
                _ => &k.prompt_ids[..],
            };
            if r.ids != keras_ids {
                mismatches.push(format!(
                    "{:?}: LiteRT-LM tokenizes it as {:?}, Keras as {:?}",
                    r.prompt, r.ids, keras_ids
                ));
                continue;
            }
        }
        if r.text != r.expected_text {
            mismatches.push(format!(
                "{:?}: LiteRT-LM generated {:?}, the artifact's own greedy tokens read {:?}",
                r.prompt, r.text, r.expected_text
            ));
        }
    }
    Verdict {
        ok: mismatches.is_empty(),
        mismatches,
        run,
    }
}

/// Why the bundle blocks the build, if it does.
pub fn rejection(built: &Built) -> Option<String> {
    let v = built.check.as_ref()?;
    (!v.ok).then(|| {
        format!(
            "LiteRT-LM does not generate what the artifact generates from its bundle: {}",
            v.mismatches.join("; ")
        )
    })
}

/// The report's lines for a bundle.
pub fn render(b: &Built) -> String {
    let mut out = format!(
        "    ✓ bundle {}  {}  sha256 {}\n",
        b.output.display(),
        crate::units::human_bytes(b.size),
        crate::digest::short(&b.sha256)
    );
    match &b.check {
        None => out.push_str("    - LiteRT-LM check: off (`generation.bundle.verify: false`)\n"),
        Some(v) if v.ok => out.push_str(&format!(
            "    ✓ LiteRT-LM generated the artifact's own greedy text for {} prompt(s) (loaded in {:.2}s)\n",
            v.run.prompts.len(),
            v.run.load_seconds
        )),
        Some(v) => {
            for m in &v.mismatches {
                out.push_str(&format!("    ✗ LiteRT-LM: {m}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::protocol::{BundlePromptRun, PromptGeneration};

    fn prompt(
        text: &str,
        ids: Vec<i64>,
        litert_ids: Vec<i64>,
        fills_cache: bool,
    ) -> PromptGeneration {
        PromptGeneration {
            prompt: Some(text.into()),
            prompt_tokens: u32::try_from(ids.len()).unwrap(),
            prompt_ids: ids,
            fills_cache,
            keras_ids: litert_ids.clone(),
            litert_ids,
            keras_text: None,
            litert_text: None,
            identical: true,
            first_difference: None,
            top1_agreement: 1.0,
            max_abs_logit_error: 0.0,
            mean_abs_logit_error: 0.0,
            logit_violations: 0,
        }
    }

    fn check(prompts: Vec<PromptGeneration>) -> GenerationCheck {
        GenerationCheck {
            steps: 4,
            capacity: 32,
            quantized: false,
            atol: 1e-3,
            rtol: 1e-3,
            min_top1_agreement: None,
            top1_agreement: 1.0,
            max_abs_logit_error: 0.0,
            prompts,
            ok: true,
            corpus: None,
        }
    }

    fn run(prompts: Vec<BundlePromptRun>) -> BundleCheck {
        BundleCheck {
            id: "a".into(),
            start_token: Some(2),
            stop_tokens: vec![vec![1]],
            load_seconds: 0.0,
            seconds: 0.0,
            prompts,
        }
    }

    fn ran(prompt: &str, ids: Vec<i64>, text: &str, expected: &str) -> BundlePromptRun {
        BundlePromptRun {
            prompt: prompt.into(),
            ids,
            text: text.into(),
            expected_text: expected.into(),
        }
    }

    #[test]
    fn prompts_stop_where_the_runtime_stops_and_skip_the_cache_filler() {
        let c = check(vec![
            prompt("a b", vec![2, 7, 8], vec![9, 1, 9, 9], false),
            prompt("fill", vec![2; 29], vec![9, 9, 9, 9], true),
        ]);
        let p = prompts(&c, &[1]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].text, "a b");
        assert_eq!(p[0].expected_ids, vec![9]);
    }

    #[test]
    fn the_runtime_must_tokenize_and_generate_as_the_artifact() {
        let c = check(vec![prompt("a b", vec![2, 7, 8], vec![9, 9, 9, 9], false)]);
        assert!(judge(&c, run(vec![ran("a b", vec![7, 8], "x x", "x x")])).ok);
        let v = judge(&c, run(vec![ran("a b", vec![7, 8, 3], "x x", "x x")]));
        assert!(
            !v.ok && v.mismatches[0].contains("tokenizes"),
            "{:?}",
            v.mismatches
        );
        let v = judge(&c, run(vec![ran("a b", vec![7, 8], "x y", "x x")]));
        assert!(
            !v.ok && v.mismatches[0].contains("generated"),
            "{:?}",
            v.mismatches
        );
        let v = judge(&c, run(vec![]));
        assert!(
            !v.ok && v.mismatches[0].contains("0 of 1"),
            "{:?}",
            v.mismatches
        );
    }
}
