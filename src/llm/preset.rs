//! What a preset's `config.json` says about the decoder: the family (from the backbone's
//! class) and its dimensions and options, each read by name. A family or an option the
//! writer does not implement is refused here, by name, before anything is written.

use std::path::Path;

use serde_json::Value;

use super::LlmError;
use super::quant::Storage;

/// The families the native writer implements: each is a table of weight paths
/// ([`super::layout`]) and the options below, over one decoder ([`super::decoder`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `GemmaBackbone`: Gemma 1 and 2.
    Gemma,
    /// `Gemma3Backbone`, text only.
    Gemma3,
    /// `LlamaBackbone` (Llama 2), `Llama3Backbone` (Llama 3, 3.1, 3.2) and `MistralBackbone`.
    Llama,
    /// `Qwen3Backbone`.
    Qwen3,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Self::Gemma => "gemma",
            Self::Gemma3 => "gemma3",
            Self::Llama => "llama",
            Self::Qwen3 => "qwen3",
        }
    }
}

/// The backbone classes the native writer implements, for messages.
pub const SUPPORTED: &str = "GemmaBackbone (Gemma 1 and 2), Gemma3Backbone (text), LlamaBackbone, Llama3Backbone, MistralBackbone, Qwen3Backbone";

/// The feed-forward gate's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// GELU, tanh approximation (Gemma).
    Gelu,
    /// SiLU, `x · sigmoid(x)` (Llama, Qwen).
    Silu,
}

/// Llama 3.1's RoPE frequency scaling (KerasHub's `LlamaRotaryEmbedding`): wavelengths
/// longer than `original_length / low_freq_factor` are stretched by `factor`, shorter than
/// `original_length / high_freq_factor` kept, those between interpolated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrequencyScaling {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_length: f32,
}

/// One rotary embedding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rope {
    pub wavelength: f32,
    /// Inverse frequencies are divided by this (the linear `scaling_factor` of KerasHub
    /// 0.32's `RotaryEmbedding`, which is the same as dividing positions by it).
    pub scaling: f32,
    pub frequency_scaling: Option<FrequencyScaling>,
}

impl Rope {
    fn plain(wavelength: f32, scaling: f32) -> Self {
        Self {
            wavelength,
            scaling,
            frequency_scaling: None,
        }
    }

    /// The `head_dim / 2` inverse frequencies, in float32 as KerasHub computes them.
    pub fn inverse_frequencies(&self, head_dim: usize) -> Vec<f32> {
        (0..head_dim / 2)
            .map(|j| {
                let exponent = (2 * j) as f32 / head_dim as f32;
                let inv = 1.0 / (f64::from(self.wavelength).powf(f64::from(exponent)) as f32);
                let Some(s) = self.frequency_scaling else {
                    return if self.scaling == 1.0 {
                        inv
                    } else {
                        inv / self.scaling
                    };
                };
                let wavelen = 2.0 * std::f32::consts::PI / inv;
                let low_wavelen = s.original_length / s.low_freq_factor;
                let high_wavelen = s.original_length / s.high_freq_factor;
                if wavelen > low_wavelen {
                    inv / s.factor
                } else if wavelen >= high_wavelen {
                    let smooth = (s.original_length / wavelen - s.low_freq_factor)
                        / (s.high_freq_factor - s.low_freq_factor);
                    (1.0 - smooth) * (inv / s.factor) + smooth * inv
                } else {
                    inv
                }
            })
            .collect()
    }
}

/// Which layers attend through the sliding window (the others attend to the whole cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalLayers {
    /// Every layer (Mistral, Qwen 3).
    All,
    /// Even layers (Gemma 2).
    Even,
    /// All but every `n`th: `i % n < n - 1` (Gemma 3: five local, one global).
    AllButEvery(usize),
}

impl LocalLayers {
    fn contains(self, layer: usize) -> bool {
        match self {
            Self::All => true,
            Self::Even => layer.is_multiple_of(2),
            Self::AllButEvery(n) => layer % n < n - 1,
        }
    }
}

/// A sliding window: each query attends to itself and the `size - 1` positions before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlidingWindow {
    pub size: usize,
    pub layers: LocalLayers,
    /// The RoPE of the windowed layers, when it is not the global one (Gemma 3).
    pub rope: Option<Rope>,
}

/// The decoder's architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct Architecture {
    pub family: Family,
    pub vocab: usize,
    pub layers: usize,
    pub hidden: usize,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
    pub norm_eps: f32,
    /// Token embeddings are multiplied by `sqrt(hidden)` (Gemma).
    pub scale_embeddings: bool,
    pub activation: Activation,
    /// RMS norms of each query and key head before RoPE, with this epsilon (Gemma 3, Qwen 3).
    pub qk_norm_eps: Option<f32>,
    pub rope: Rope,
    pub attention_soft_cap: Option<f32>,
    pub final_soft_cap: Option<f32>,
    pub post_attention_norm: bool,
    pub post_ffw_norm: bool,
    pub sliding_window: Option<SlidingWindow>,
}

impl Architecture {
    /// Why `storage` cannot store this model's matrices, naming the dimension (int4: a
    /// block size must divide every matrix's inputs; weights under 1,024 elements, which
    /// stay float32, are held to it too).
    pub fn refuse_storage(&self, storage: Storage) -> Option<String> {
        [
            (
                "the hidden size (the inputs of the query, key, value, gate and up projections and of the logits)",
                self.hidden,
            ),
            (
                "heads × head_dim (the inputs of the attention output projection)",
                self.q_heads * self.head_dim,
            ),
            (
                "the intermediate size (the inputs of the down projection)",
                self.intermediate,
            ),
        ]
        .into_iter()
        .find_map(|(what, cols)| storage.refuse(what, cols))
    }

    /// Read `DIR/config.json`.
    pub fn read(dir: &Path) -> Result<Self, LlmError> {
        let path = dir.join("config.json");
        let bad = |message: String| LlmError::Config {
            path: path.clone(),
            message,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        Self::from_json(&value).map_err(bad)
    }

    fn from_json(v: &Value) -> Result<Self, String> {
        let class = v["class_name"].as_str().unwrap_or("(none)");
        let c = Config(&v["config"]);
        match class {
            "GemmaBackbone" => gemma(&c),
            "Gemma3Backbone" => gemma3(&c),
            "LlamaBackbone" | "Llama3Backbone" | "MistralBackbone" => llama(&c, class),
            "Qwen3Backbone" => qwen3(&c),
            other => Err(format!(
                "the backbone `{other}` is not implemented by the native writer (it implements {SUPPORTED})"
            )),
        }
        .and_then(|a| a.validate())
    }

    fn validate(self) -> Result<Self, String> {
        if !self.q_heads.is_multiple_of(self.kv_heads) {
            return Err(format!(
                "{} query heads are not a multiple of {} key/value heads",
                self.q_heads, self.kv_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(format!(
                "a head dimension of {} is odd; RoPE needs an even one",
                self.head_dim
            ));
        }
        Ok(self)
    }

    /// Scale applied to queries before the attention scores: 1/sqrt(head_dim) in every
    /// family (KerasHub 0.32's Gemma blocks force `query_head_dim_normalize=True` whatever
    /// the config says, and the artifact must do what Keras does).
    pub fn query_scale(&self) -> f32 {
        (1.0 / (self.head_dim as f64).sqrt()) as f32
    }

    /// The sliding window layer `i` attends through, if any.
    pub fn window(&self, layer: usize) -> Option<usize> {
        let w = self.sliding_window?;
        w.layers.contains(layer).then_some(w.size)
    }

    /// The RoPE of layer `i`.
    pub fn rope_of(&self, layer: usize) -> &Rope {
        match &self.sliding_window {
            Some(SlidingWindow {
                rope: Some(local),
                layers,
                ..
            }) if layers.contains(layer) => local,
            _ => &self.rope,
        }
    }
}

/// A backbone's `config` object, each key read by name.
struct Config<'a>(&'a Value);

impl Config<'_> {
    fn int(&self, key: &str) -> Result<usize, String> {
        self.0[key]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("`config.{key}` must be a positive integer"))
    }

    fn opt_int(&self, key: &str) -> Result<Option<usize>, String> {
        match &self.0[key] {
            Value::Null => Ok(None),
            _ => self.int(key).map(Some),
        }
    }

    fn float(&self, key: &str, default: f64) -> Result<f32, String> {
        Ok(self.opt_float(key)?.unwrap_or(default as f32))
    }

    fn opt_float(&self, key: &str) -> Result<Option<f32>, String> {
        match &self.0[key] {
            Value::Null => Ok(None),
            x => x
                .as_f64()
                .map(|f| Some(f as f32))
                .ok_or_else(|| format!("`config.{key}` must be a number or null")),
        }
    }

    fn flag(&self, key: &str, default: bool) -> bool {
        self.0[key].as_bool().unwrap_or(default)
    }

    /// What every family reads alike, with the options off: the family's function sets
    /// the ones it has (`Architecture { .., ..base }`).
    fn decoder(
        &self,
        family: Family,
        head_dim: usize,
        intermediate: usize,
    ) -> Result<Architecture, String> {
        Ok(Architecture {
            family,
            vocab: self.int("vocabulary_size")?,
            layers: self.int("num_layers")?,
            hidden: self.int("hidden_dim")?,
            q_heads: self.int("num_query_heads")?,
            kv_heads: self.int("num_key_value_heads")?,
            head_dim,
            intermediate,
            norm_eps: self.float("layer_norm_epsilon", 1e-6)?,
            scale_embeddings: false,
            activation: Activation::Silu,
            qk_norm_eps: None,
            rope: Rope::plain(10_000.0, 1.0),
            attention_soft_cap: None,
            final_soft_cap: None,
            post_attention_norm: false,
            post_ffw_norm: false,
            sliding_window: None,
        })
    }

    /// Refuse a key whose value is not null, false or absent: a feature not implemented.
    fn refuse(&self, key: &str, what: &str) -> Result<(), String> {
        match &self.0[key] {
            Value::Null | Value::Bool(false) => Ok(()),
            _ => Err(format!(
                "`config.{key}` ({what}) is not implemented by the native writer"
            )),
        }
    }
}

fn gemma(c: &Config<'_>) -> Result<Architecture, String> {
    // KerasHub passes `intermediate_dim / 2` to each gated feed-forward half.
    let base = c.decoder(
        Family::Gemma,
        c.int("head_dim")?,
        c.int("intermediate_dim")? / 2,
    )?;
    Ok(Architecture {
        scale_embeddings: true,
        activation: Activation::Gelu,
        attention_soft_cap: c.opt_float("attention_logit_soft_cap")?,
        final_soft_cap: c.opt_float("final_logit_soft_cap")?,
        post_attention_norm: c.flag("use_post_attention_norm", false),
        post_ffw_norm: c.flag("use_post_ffw_norm", false),
        sliding_window: c
            .flag("use_sliding_window_attention", false)
            .then(|| c.int("sliding_window_size"))
            .transpose()?
            .map(|size| SlidingWindow {
                size,
                layers: LocalLayers::Even,
                rope: None,
            }),
        ..base
    })
}

fn gemma3(c: &Config<'_>) -> Result<Architecture, String> {
    c.refuse(
        "vision_encoder",
        "Gemma 3's vision encoder; export the text-only model",
    )?;
    c.refuse(
        "use_bidirectional_attention",
        "bidirectional attention, for embedding models",
    )?;
    c.refuse("is_embedding_model", "an embedding model")?;
    // Gemma 3's blocks pass `gate_dim_reduction=1`: each half is `intermediate_dim` wide.
    let base = c.decoder(
        Family::Gemma3,
        c.int("head_dim")?,
        c.int("intermediate_dim")?,
    )?;
    Ok(Architecture {
        scale_embeddings: true,
        activation: Activation::Gelu,
        // The attention's query/key norms keep their own default epsilon: the block does
        // not pass the config's.
        qk_norm_eps: c.flag("use_query_key_norm", true).then_some(1e-6),
        // Global layers; the local ones' is the window's.
        rope: Rope::plain(1_000_000.0, c.float("global_rope_scaling_factor", 1.0)?),
        attention_soft_cap: c.opt_float("attention_logit_soft_cap")?,
        final_soft_cap: c.opt_float("final_logit_soft_cap")?,
        post_attention_norm: c.flag("use_post_attention_norm", false),
        post_ffw_norm: c.flag("use_post_ffw_norm", false),
        sliding_window: if c.flag("use_sliding_window_attention", false) {
            Some(SlidingWindow {
                size: c.int("sliding_window_size")?,
                layers: LocalLayers::AllButEvery(6),
                rope: Some(Rope::plain(
                    10_000.0,
                    c.float("local_rope_scaling_factor", 1.0)?,
                )),
            })
        } else {
            None
        },
        ..base
    })
}

fn llama(c: &Config<'_>, class: &str) -> Result<Architecture, String> {
    let keys = [
        "rope_frequency_adjustment_factor",
        "rope_low_freq_factor",
        "rope_high_freq_factor",
        "rope_pretraining_sequence_length",
    ];
    let set: Vec<Option<f32>> = keys
        .iter()
        .map(|k| c.opt_float(k))
        .collect::<Result<_, _>>()?;
    let frequency_scaling = match set[..] {
        [
            Some(factor),
            Some(low_freq_factor),
            Some(high_freq_factor),
            Some(original_length),
        ] => {
            if high_freq_factor <= low_freq_factor {
                return Err(format!(
                    "`config.rope_high_freq_factor` ({high_freq_factor}) must exceed `config.rope_low_freq_factor` ({low_freq_factor})"
                ));
            }
            Some(FrequencyScaling {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_length,
            })
        }
        [None, None, None, None] => None,
        _ => {
            return Err(format!(
                "Llama 3.1 RoPE frequency scaling needs all of `config.{}` set, or none",
                keys.join("`, `config.")
            ));
        }
    };
    // KerasHub 0.32's `LlamaRotaryEmbedding` computes its own frequencies and never
    // applies this factor: what Keras generates is not what the preset was trained for.
    let position_scaling = c.float("rope_position_scaling_factor", 1.0)?;
    if position_scaling != 1.0 {
        return Err(format!(
            "`config.rope_position_scaling_factor` ({position_scaling}: RoPE position scaling, which KerasHub's Llama attention ignores) is not implemented by the native writer"
        ));
    }
    if class == "MistralBackbone" {
        // KerasHub's dense attention does not apply it either, but a Mistral preset
        // trained with one expects it.
        c.refuse("sliding_window", "Mistral's sliding window")?;
    }
    let head_dim = c.int("hidden_dim")? / c.int("num_query_heads")?;
    let base = c.decoder(Family::Llama, head_dim, c.int("intermediate_dim")?)?;
    Ok(Architecture {
        rope: Rope {
            wavelength: c.float("rope_max_wavelength", 10_000.0)?,
            scaling: 1.0,
            frequency_scaling,
        },
        ..base
    })
}

fn qwen3(c: &Config<'_>) -> Result<Architecture, String> {
    let base = c.decoder(
        Family::Qwen3,
        c.int("head_dim")?,
        c.int("intermediate_dim")?,
    )?;
    Ok(Architecture {
        // The attention's query/key norms keep their own default epsilon (1e-5): the
        // decoder does not pass the config's.
        qk_norm_eps: Some(1e-5),
        rope: Rope::plain(
            c.float("rope_max_wavelength", 10_000.0)?,
            c.float("rope_scaling_factor", 1.0)?,
        ),
        // Keras applies the window on every layer (32,768 unless the config says).
        sliding_window: Some(SlidingWindow {
            size: c.opt_int("sliding_window_size")?.unwrap_or(32_768),
            layers: LocalLayers::All,
            rope: None,
        }),
        ..base
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemma_and_llama_configs_are_read_and_others_refused_by_name() {
        let gemma = serde_json::json!({"class_name": "GemmaBackbone", "config": {
            "vocabulary_size": 42, "num_layers": 2, "num_query_heads": 2, "num_key_value_heads": 1,
            "hidden_dim": 32, "intermediate_dim": 64, "head_dim": 16, "layer_norm_epsilon": 1e-6,
            "query_head_dim_normalize": true, "attention_logit_soft_cap": 50.0,
            "final_logit_soft_cap": null, "use_sliding_window_attention": false}});
        let a = Architecture::from_json(&gemma).unwrap();
        assert_eq!(
            (a.family, a.intermediate, a.head_dim),
            (Family::Gemma, 32, 16)
        );
        assert_eq!(a.query_scale(), 0.25);
        assert_eq!(a.attention_soft_cap, Some(50.0));
        assert_eq!(a.window(0), None);

        let mut llama = serde_json::json!({"class_name": "LlamaBackbone", "config": {
            "vocabulary_size": 36, "num_layers": 2, "num_query_heads": 4, "num_key_value_heads": 2,
            "hidden_dim": 32, "intermediate_dim": 64, "rope_max_wavelength": 500000}});
        let a = Architecture::from_json(&llama).unwrap();
        assert_eq!(
            (a.family, a.head_dim, a.rope.wavelength),
            (Family::Llama, 8, 500_000.0)
        );
        llama["config"]["rope_frequency_adjustment_factor"] = 8.into();
        let e = Architecture::from_json(&llama).unwrap_err();
        assert!(e.contains("rope_low_freq_factor"), "{e}");

        let gpt2 = serde_json::json!({"class_name": "GPT2Backbone", "config": {}});
        let e = Architecture::from_json(&gpt2).unwrap_err();
        assert!(
            e.contains("`GPT2Backbone`") && e.contains("Qwen3Backbone"),
            "{e}"
        );
    }

    /// Llama 3.1's scaling, against the values KerasHub's `LlamaRotaryEmbedding` gives for
    /// Llama 3.1 8B's config (head_dim 128, wavelength 500,000, factor 8, low 1, high 4,
    /// original length 8,192): high frequencies kept, low ones divided by 8, the band
    /// between interpolated.
    #[test]
    fn llama_31_frequency_scaling() {
        let llama3 = serde_json::json!({"class_name": "Llama3Backbone", "config": {
            "vocabulary_size": 36, "num_layers": 2, "num_query_heads": 4, "num_key_value_heads": 2,
            "hidden_dim": 512, "intermediate_dim": 64, "rope_max_wavelength": 500000,
            "rope_frequency_adjustment_factor": 8.0, "rope_low_freq_factor": 1.0,
            "rope_high_freq_factor": 4.0, "rope_pretraining_sequence_length": 8192}});
        let a = Architecture::from_json(&llama3).unwrap();
        let plain = Rope::plain(500_000.0, 1.0).inverse_frequencies(128);
        let scaled = a.rope.inverse_frequencies(128);
        assert_eq!(scaled[0], plain[0]);
        assert_eq!(scaled[63], plain[63] / 8.0);
        // Wavelength 2π/inv between 2,048 and 8,192: between inv/8 and inv.
        let mid = (0..64)
            .find(|&j| (2048.0..=8192.0).contains(&(2.0 * std::f32::consts::PI / plain[j])))
            .unwrap();
        assert!(scaled[mid] < plain[mid] && scaled[mid] > plain[mid] / 8.0);
    }

    #[test]
    fn qwen3_and_gemma3_options() {
        let qwen3 = serde_json::json!({"class_name": "Qwen3Backbone", "config": {
            "vocabulary_size": 64, "num_layers": 2, "num_query_heads": 4, "num_key_value_heads": 2,
            "head_dim": 16, "hidden_dim": 32, "intermediate_dim": 64, "rope_max_wavelength": 1000000,
            "layer_norm_epsilon": 1e-6, "tie_word_embeddings": true, "sliding_window_size": 8}});
        let a = Architecture::from_json(&qwen3).unwrap();
        assert_eq!(
            (a.family, a.head_dim, a.qk_norm_eps),
            (Family::Qwen3, 16, Some(1e-5))
        );
        assert_eq!((a.window(0), a.window(1)), (Some(8), Some(8)));

        let mut gemma3 = serde_json::json!({"class_name": "Gemma3Backbone", "config": {
            "vocabulary_size": 42, "image_size": 896, "num_layers": 8, "num_query_heads": 4,
            "num_key_value_heads": 1, "hidden_dim": 64, "intermediate_dim": 128, "head_dim": 16,
            "query_head_dim_normalize": true, "use_query_key_norm": true,
            "use_sliding_window_attention": true, "sliding_window_size": 8,
            "local_rope_scaling_factor": 1.0, "global_rope_scaling_factor": 8.0,
            "vision_encoder": null}});
        let a = Architecture::from_json(&gemma3).unwrap();
        assert_eq!((a.family, a.intermediate), (Family::Gemma3, 128));
        let windows: Vec<_> = (0..8).map(|i| a.window(i)).collect();
        assert_eq!(windows[5], None);
        assert_eq!(windows[4], Some(8));
        assert_eq!(windows[6], Some(8));
        assert_eq!(a.rope_of(5).wavelength, 1_000_000.0);
        assert_eq!(a.rope_of(5).scaling, 8.0);
        assert_eq!(a.rope_of(0).wavelength, 10_000.0);
        gemma3["config"]["vision_encoder"] =
            serde_json::json!({"class_name": "Gemma3VisionEncoder"});
        let e = Architecture::from_json(&gemma3).unwrap_err();
        assert!(e.contains("`config.vision_encoder`"), "{e}");
    }
}
