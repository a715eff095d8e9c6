//! `generation:`: a KerasHub causal LM exported as a prefill/decode artifact: the family and
//! capacity the preset allows, prefill lengths, the names of the LiteRT-LM contract, the
//! generation check, and the `.litertlm` bundle's tokens and templates.

use std::path::Path;

use super::{Cx, Kind};
use crate::recipe::plan::*;
use crate::recipe::types::*;

impl Cx<'_> {
    /// The generation block: only for KerasHub causal LMs of a supported family, with
    /// prefill lengths that fit the cache, a capacity the model can embed, and without the
    /// keys that shape a forward-pass export.
    pub(super) fn generation(
        &mut self,
        r: &Recipe,
        model: Option<&ModelPlan>,
        qmode: Option<QuantizationMode>,
        converter: &ConverterSettings,
        output: Option<&Path>,
    ) -> Option<GenerationPlan> {
        let g = r.generation.as_ref()?;
        let before = self.diags.iter().filter(|d| d.is_error()).count();
        let capacity = g.capacity.unwrap_or(256);
        match model {
            Some(ModelPlan::Preset { task, preset, .. }) => {
                if !task.ends_with("CausalLM") {
                    let d = self.err(
                        "E0310",
                        "/model/preset/task",
                        format!("generation needs a causal LM, but the task is `{task}`"),
                    );
                    d.label = Some("not a causal LM".into());
                    d.hints.push(
                        "use `task: CausalLM` (or a class such as `GemmaCausalLM`), or remove `generation`".into(),
                    );
                }
                if let PresetRef::Path(dir) = preset {
                    self.generation_backbone(dir, capacity);
                }
            }
            Some(_) => {
                let d = self.err_key(
                    "E0310",
                    "/generation",
                    "generation needs a KerasHub causal LM preset (`model.preset` with `task: CausalLM`)",
                );
                d.label = Some("the model is not a KerasHub preset".into());
            }
            None => {}
        }
        for key in [
            "sequence_length",
            "inputs",
            "input_signature",
            "outputs",
            "image_size",
            "calibration",
            "accuracy",
            "parity",
        ] {
            let set = match key {
                "sequence_length" => r.sequence_length.is_some(),
                "inputs" => r.inputs.is_some(),
                "input_signature" => r.input_signature.is_some(),
                "outputs" => r.outputs.is_some(),
                "image_size" => r.image_size.is_some(),
                "calibration" => r.calibration.is_some(),
                "accuracy" => r.accuracy.is_some(),
                _ => r.parity.is_some(),
            };
            if set {
                let hint = match key {
                    "sequence_length" | "inputs" | "input_signature" => {
                        "the signatures are `generation.prefill` lengths and `decode`, over `generation.capacity`"
                    }
                    "outputs" => {
                        "the outputs are named by `generation.names.logits` and the cache names"
                    }
                    "accuracy" | "parity" => {
                        "a generation export is checked by `generation.check` (token ids, per-step logits, top-1 agreement)"
                    }
                    _ => "remove it",
                };
                let d = self.err_key(
                    "E0315",
                    &format!("/{key}"),
                    format!("`{key}` does not apply to a generation export"),
                );
                d.label = Some("conflicts with `generation`".into());
                d.hints.push(hint.into());
            }
        }
        if let Some(mode) = qmode
            && !matches!(
                mode,
                QuantizationMode::None
                    | QuantizationMode::DynamicRange
                    | QuantizationMode::DynamicInt4
                    | QuantizationMode::Float16
            )
        {
            let d = self.err(
                "E0314",
                "/quantization/mode",
                format!(
                    "`{}` is not available for generation exports",
                    mode.as_str()
                ),
            );
            d.label = Some("the KV cache and mask stay float".into());
            d.hints.push(
                "use `none`, `dynamic_range` (int8 weights), `dynamic_int4` or `float16`".into(),
            );
        }
        let prefill = match &g.prefill {
            Some(list) => {
                let mut seen = std::collections::BTreeSet::new();
                for (i, &t) in list.iter().enumerate() {
                    let pointer = format!("/generation/prefill/{i}");
                    if t == 0 || t > capacity {
                        let d = self.err(
                            "E0311",
                            &pointer,
                            format!(
                                "prefill length {t} does not fit the KV-cache capacity {capacity}"
                            ),
                        );
                        d.label = Some(format!("must be 1..={capacity}"));
                        d.hints.push(
                            "raise `generation.capacity`, or choose a shorter prefill length"
                                .into(),
                        );
                    } else if !seen.insert(t) {
                        let d = self.err(
                            "E0311",
                            &pointer,
                            format!("prefill length {t} is listed twice"),
                        );
                        d.label = Some("duplicate".into());
                    }
                }
                seen.into_iter().collect::<Vec<u32>>()
            }
            None => {
                let fit: Vec<u32> = [32, 128].into_iter().filter(|&t| t <= capacity).collect();
                if fit.is_empty() { vec![capacity] } else { fit }
            }
        };
        let n = g.names.clone().unwrap_or_default();
        let names = GenerationNamesPlan {
            prefill: n.prefill.unwrap_or_else(|| "prefill_{T}".into()),
            decode: n.decode.unwrap_or_else(|| "decode".into()),
            tokens: n.tokens.unwrap_or_else(|| "tokens".into()),
            input_pos: n.input_pos.unwrap_or_else(|| "input_pos".into()),
            mask: n.mask.unwrap_or_else(|| "mask".into()),
            k_cache: n.k_cache.unwrap_or_else(|| "kv_cache_k_{i}".into()),
            v_cache: n.v_cache.unwrap_or_else(|| "kv_cache_v_{i}".into()),
            logits: n.logits.unwrap_or_else(|| "logits".into()),
        };
        let tensor_names = [
            ("tokens", &names.tokens),
            ("input_pos", &names.input_pos),
            ("mask", &names.mask),
            ("k_cache", &names.k_cache),
            ("v_cache", &names.v_cache),
            ("logits", &names.logits),
        ];
        for (i, (key, name)) in tensor_names.iter().enumerate() {
            if let Some((other, _)) = tensor_names[..i].iter().find(|(_, n)| n == name) {
                let d = self.err(
                    "E0317",
                    &format!("/generation/names/{key}"),
                    format!("`names.{key}` and `names.{other}` are both `{name}`"),
                );
                d.label = Some("tensor names must differ".into());
            }
        }
        let keys = names.signature_keys(&prefill);
        if keys[..keys.len() - 1].contains(&names.decode) {
            let d = self.err(
                "E0317",
                "/generation/names/decode",
                format!(
                    "the decode signature `{}` is also a prefill signature",
                    names.decode
                ),
            );
            d.label = Some("signature keys must differ".into());
        }
        let c = g.check.clone().unwrap_or_default();
        let quantized =
            !converter.optimizations.is_empty() || !converter.supported_types.is_empty();
        let steps = c.steps.unwrap_or(16.min(capacity.saturating_sub(2)).max(1));
        if steps + 2 > capacity {
            let d = self.err(
                "E0316",
                "/generation/check/steps",
                format!(
                    "{steps} new tokens and a prompt of at least 2 tokens do not fit the KV-cache capacity {capacity}"
                ),
            );
            d.label = Some(format!("at most {}", capacity.saturating_sub(2)));
        }
        if c.enabled == Some(false)
            && (c.prompts.is_some()
                || c.min_top1_agreement.is_some()
                || c.tolerance.is_some()
                || c.corpus.is_some())
        {
            self.warn(
                "E0316",
                "/generation/check/enabled",
                "the generation check is off, so its prompts, tolerance, corpus and gates are not used",
            );
        }
        let enabled = c.enabled.unwrap_or(true);
        let corpus = c
            .corpus
            .as_ref()
            .filter(|_| enabled)
            .map(|corpus| self.corpus(corpus));
        let check = enabled.then(|| GenerationCheckPlan {
            prompts: c.prompts.clone().unwrap_or_else(|| {
                vec!["The capital of France is".into(), "Once upon a time".into()]
            }),
            steps,
            fill_cache: c.fill_cache.unwrap_or(true),
            tolerance: TolerancePlan {
                atol: c.tolerance.as_ref().and_then(|t| t.atol).unwrap_or(1e-3),
                rtol: c.tolerance.as_ref().and_then(|t| t.rtol).unwrap_or(1e-3),
            },
            min_top1_agreement: c.min_top1_agreement.unwrap_or(0.9),
            quantized,
            corpus,
        });
        let local_preset = match model {
            Some(ModelPlan::Preset {
                preset: PresetRef::Path(dir),
                ..
            }) => Some(dir.as_path()),
            _ => None,
        };
        let bundle = g
            .bundle
            .as_ref()
            .and_then(|b| self.bundle(b, output, local_preset, check.is_some()));
        let (writer, writer_note) =
            self.generation_writer(g, local_preset, qmode, r.litert_kwargs.is_some());
        if qmode == Some(QuantizationMode::DynamicInt4) {
            self.generation_int4(r, local_preset, writer, writer_note.as_deref());
        }
        let after = self.diags.iter().filter(|d| d.is_error()).count();
        (after == before).then(|| GenerationPlan {
            prefill,
            capacity,
            mask_dtype: g.mask_dtype.unwrap_or(MaskDtype::Float32),
            names,
            writer,
            writer_note,
            check,
            bundle,
        })
    }

    /// The corpus of the generation check: a file that exists and holds text (its tokens
    /// are counted by the worker, which has the tokenizer), and its gates' defaults.
    fn corpus(&mut self, corpus: &Corpus) -> CorpusPlan {
        let s = corpus.settings();
        let pointer = match corpus {
            Corpus::File(_) => "/generation/check/corpus",
            Corpus::Settings(_) => "/generation/check/corpus/file",
        };
        let path = self.existing(pointer, &s.file, Kind::File);
        if path.is_file() {
            let problem = match std::fs::read(&path) {
                Err(e) => Some(format!("cannot read the corpus `{}`: {e}", s.file)),
                Ok(bytes) => match String::from_utf8(bytes) {
                    Err(_) => Some(format!("the corpus `{}` is not UTF-8 text", s.file)),
                    Ok(text) if text.is_empty() => {
                        Some(format!("the corpus `{}` is empty", s.file))
                    }
                    Ok(text) if text.trim().is_empty() => {
                        Some(format!("the corpus `{}` holds only whitespace", s.file))
                    }
                    Ok(_) => None,
                },
            };
            if let Some(message) = problem {
                let d = self.err("E0325", pointer, message);
                d.label = Some("needs held-out text".into());
                d.hints.push(
                    "point it at a text the model was not trained on, a few hundred tokens or more"
                        .into(),
                );
            }
        }
        CorpusPlan {
            path,
            min_top1_agreement: s.min_top1_agreement.unwrap_or(0.9),
            max_perplexity_ratio: s.max_perplexity_ratio.unwrap_or(1.1),
            max_tokens: s.max_tokens.unwrap_or(4096),
        }
    }

    /// The `.litertlm` bundle: its output, and tokens and templates that can work. With a
    /// local preset its tokenizer is read here, so an unknown stop token or a preset without
    /// a tokenizer is a located error before anything is built (a named preset is checked
    /// by `apply`, once downloaded).
    fn bundle(
        &mut self,
        b: &GenerationBundle,
        output: Option<&Path>,
        local_preset: Option<&Path>,
        checked: bool,
    ) -> Option<BundlePlan> {
        let out = match &b.output {
            Some(o) => self.resolve_path("/generation/bundle/output", o),
            None => output?.with_extension("litertlm"),
        };
        if let Some(j) = &b.jinja_template
            && let Err(e) = minijinja::Environment::new().template_from_str(j)
        {
            let d = self.err(
                "E0319",
                "/generation/bundle/jinja_template",
                format!("the prompt template is not valid Jinja: {e}"),
            );
            d.label = Some("invalid template".into());
        }
        let verify = b.verify.unwrap_or(true);
        if verify && !checked {
            let message = "the bundle check compares LiteRT-LM's text with the generation check's, which is off";
            let d = if b.verify.is_some() {
                self.err("E0319", "/generation/bundle/verify", message)
            } else {
                self.err_key("E0319", "/generation/bundle", message)
            };
            d.label = Some("needs `generation.check`".into());
            d.hints.push(
                "turn `generation.check` on, or set `generation.bundle.verify: false`".into(),
            );
        }
        if let Some(dir) = local_preset {
            self.bundle_tokens(b, dir);
        }
        Some(BundlePlan {
            output: out,
            start_token: b.start_token.clone(),
            stop_tokens: b.stop_tokens.clone(),
            prompt_template: b.prompt_template.clone(),
            jinja_template: b.jinja_template.clone(),
            verify,
        })
    }

    /// Check the bundle's tokens against a local preset's tokenizer.
    fn bundle_tokens(&mut self, b: &GenerationBundle, dir: &Path) {
        use crate::litertlm::spec;
        // A preset directory that is not there yet is the model check's error.
        if !dir.join("config.json").is_file() {
            return;
        }
        let vocab = match spec::find_tokenizer(dir).and_then(|f| {
            let v = spec::read_vocab(&f)?;
            Ok((f, v))
        }) {
            Ok(v) => v,
            Err(message) => {
                let d = self.err_key("E0318", "/generation/bundle", message);
                d.label = Some("the bundle needs the preset's tokenizer".into());
                return;
            }
        };
        let (file, vocab) = vocab;
        // A model row the tokenizer has no piece for makes LiteRT-LM's decode fail in the
        // bundle check (seen: `litert_lm_session_run_decode failed` after a whole build).
        if let Some(rows) = std::fs::read_to_string(dir.join("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|c| c["config"]["vocabulary_size"].as_u64())
            && vocab.len() < rows
        {
            let d = self.err_key(
                "E0318",
                "/generation/bundle",
                format!(
                    "the tokenizer `{}` has {} pieces but the model has {rows} vocabulary rows; LiteRT-LM cannot run such a bundle",
                    file.path().display(),
                    vocab.len()
                ),
            );
            d.label = Some("tokenizer smaller than the model's vocabulary".into());
            d.hints.push(
                "give the preset its own tokenizer, or remove `generation.bundle` to export the `.tflite` alone".into(),
            );
            return;
        }
        let tokens = b
            .start_token
            .iter()
            .map(|t| {
                (
                    "/generation/bundle/start_token".to_string(),
                    t,
                    "start token",
                )
            })
            .chain(b.stop_tokens.iter().flatten().enumerate().map(|(i, t)| {
                (
                    format!("/generation/bundle/stop_tokens/{i}"),
                    t,
                    "stop token",
                )
            }))
            .collect::<Vec<_>>();
        let mut located = false;
        for (pointer, token, what) in tokens {
            if let Err(message) = spec::resolve(&token.into(), &vocab, file.path(), what) {
                let d = self.err("E0318", &pointer, message);
                d.label = Some("not in the tokenizer".into());
                located = true;
            }
        }
        // Tokens left to the tokenizer's defaults: it must have them.
        let recipe = spec::BundleSpec {
            start_token: b.start_token.as_ref().map(Into::into),
            stop_tokens: b
                .stop_tokens
                .as_ref()
                .map(|l| l.iter().map(Into::into).collect()),
            ..Default::default()
        };
        if !located && let Err(message) = spec::llm_metadata(&recipe, &vocab, file.path()) {
            let d = self.err_key("E0318", "/generation/bundle", message);
            d.label = Some("the tokenizer has no default for it".into());
        }
    }

    /// The writer: the recipe's choice, refused where the native writer cannot do it, or by
    /// default the native one where it can (a local preset of a family it implements, a
    /// quantization it writes, no converter settings), with the reason when it cannot.
    fn generation_writer(
        &mut self,
        g: &Generation,
        preset: Option<&Path>,
        qmode: Option<QuantizationMode>,
        raw_kwargs: bool,
    ) -> (GenerationWriter, Option<String>) {
        let why_not = || -> Option<String> {
            let Some(dir) = preset else {
                return Some("the native writer reads presets on disk; a named preset is downloaded by Keras".into());
            };
            if let Err(e) = crate::llm::architecture(dir) {
                return Some(match e {
                    crate::llm::LlmError::Config { message, .. } => message,
                    other => other.to_string(),
                });
            }
            if raw_kwargs {
                return Some("`litert_kwargs` are converter settings".into());
            }
            match qmode {
                None
                | Some(
                    QuantizationMode::None
                    | QuantizationMode::DynamicRange
                    | QuantizationMode::DynamicInt4
                    | QuantizationMode::Float16,
                ) => None,
                Some(m) => Some(format!("the native writer does not write `{}`", m.as_str())),
            }
        };
        match g.writer {
            Some(GenerationWriter::Converter) => (GenerationWriter::Converter, None),
            Some(GenerationWriter::Native) => {
                if let Some(reason) = why_not() {
                    let d = self.err(
                        "E0320",
                        "/generation/writer",
                        format!("the native writer cannot write this model: {reason}"),
                    );
                    d.label = Some("not writable natively".into());
                    d.hints.push(format!(
                        "it implements {} presets on disk; use `writer: converter`",
                        crate::llm::SUPPORTED
                    ));
                }
                (GenerationWriter::Native, None)
            }
            None => match why_not() {
                None => (GenerationWriter::Native, None),
                Some(reason) => (GenerationWriter::Converter, Some(reason)),
            },
        }
    }

    /// `dynamic_int4`: only the native writer writes it (never a fallback to the converter,
    /// which has no int4 mode), and a block size must divide every matrix's inputs.
    fn generation_int4(
        &mut self,
        r: &Recipe,
        preset: Option<&Path>,
        writer: GenerationWriter,
        writer_note: Option<&str>,
    ) {
        if writer == GenerationWriter::Converter {
            let why = match writer_note {
                Some(reason) => format!("the native writer cannot write this model: {reason}"),
                None => "the recipe asks for `writer: converter`".to_string(),
            };
            let d = self.err(
                "E0253",
                "/quantization/mode",
                format!("`dynamic_int4` is written only by the native writer, and {why}"),
            );
            d.label = Some("the TensorFlow converter has no int4 mode".into());
            d.hints.push(format!(
                "use `dynamic_range` (int8 weights), or a local {} preset with the native writer",
                crate::llm::SUPPORTED
            ));
            return;
        }
        let block = r.quantization.as_ref().and_then(|q| q.block_size);
        let Some(dir) = preset else { return };
        let Ok(arch) = crate::llm::architecture(dir) else {
            return;
        };
        let storage = crate::llm::Storage::Int4 {
            block: block.map(|b| b as usize),
        };
        if let Some(reason) = arch.refuse_storage(storage) {
            let pointer = if block.is_some() {
                "/quantization/block_size"
            } else {
                "/quantization/mode"
            };
            let d = self.err("E0254", pointer, reason);
            d.label = Some("does not fit this preset".into());
            if block.is_some() {
                d.hints.push(
                    "choose a block size that divides it, or leave `block_size` out for one scale per output channel".into(),
                );
            }
        }
    }

    /// What a local preset's `config.json` says about generation: a supported family, and
    /// a learned position embedding long enough for the capacity.
    fn generation_backbone(&mut self, dir: &Path, capacity: u32) {
        const SUPPORTED: [(&str, &str); 6] = [
            ("GemmaBackbone", "Gemma"),
            ("Gemma3Backbone", "Gemma 3"),
            ("LlamaBackbone", "Llama"),
            ("Llama3Backbone", "Llama 3"),
            ("Qwen3Backbone", "Qwen 3"),
            ("GPT2Backbone", "GPT-2"),
        ];
        let Ok(text) = std::fs::read_to_string(dir.join("config.json")) else {
            return;
        };
        let Ok(config) = serde_json::from_str::<serde_json::Value>(&text) else {
            return;
        };
        // A config without a class name says nothing about the family; the worker decides.
        let Some(class) = config["class_name"].as_str() else {
            return;
        };
        if !SUPPORTED.iter().any(|(c, _)| *c == class) {
            let d = self.err_key(
                "E0312",
                "/generation",
                format!("generation does not support the preset's backbone `{class}`"),
            );
            d.label = Some("unsupported model family".into());
            d.notes.push(format!(
                "supported families: {}",
                SUPPORTED
                    .iter()
                    .map(|(_, f)| *f)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return;
        }
        if let Some(limit) = config["config"]["max_sequence_length"].as_u64()
            && u64::from(capacity) > limit
        {
            let d = self.err(
                "E0313",
                "/generation/capacity",
                format!(
                    "a KV-cache capacity of {capacity} is beyond the model's position embedding ({limit} positions)"
                ),
            );
            d.label = Some(format!("at most {limit}"));
        }
    }
}
