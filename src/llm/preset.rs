//! What a preset's `config.json` says about the decoder: the family (from the backbone's
//! class) and its dimensions and options, each read by name. A family or an option the
//! writer does not implement is refused here, by name, before anything is written.

use std::path::Path;

use serde_json::Value;

use super::LlmError;
use super::quant::Storage;

/// The families the native writer implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `GemmaBackbone`: Gemma 1 and 2.
    Gemma,
    /// `LlamaBackbone`: Llama 2 and 3, and `MistralBackbone`.
    Llama,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Self::Gemma => "gemma",
            Self::Llama => "llama",
        }
    }
}

/// The backbone classes the native writer implements, for messages.
pub const SUPPORTED: &str = "GemmaBackbone (Gemma 1 and 2), LlamaBackbone";

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
    pub rope_wavelength: f32,
    pub rope_scaling: f32,
    /// Scale applied to queries before the attention scores.
    pub query_scale: f32,
    pub attention_soft_cap: Option<f32>,
    pub final_soft_cap: Option<f32>,
    pub post_attention_norm: bool,
    pub post_ffw_norm: bool,
    /// Gemma 2's sliding window on alternating layers, as (window, whether it is used).
    pub sliding_window: Option<usize>,
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
        let c = &v["config"];
        let int = |key: &str| -> Result<usize, String> {
            c[key]
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("`config.{key}` must be a positive integer"))
        };
        let float = |key: &str, default: f64| -> Result<f32, String> {
            match &c[key] {
                Value::Null => Ok(default as f32),
                x => x
                    .as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| format!("`config.{key}` must be a number")),
            }
        };
        let opt_float = |key: &str| -> Result<Option<f32>, String> {
            match &c[key] {
                Value::Null => Ok(None),
                x => x
                    .as_f64()
                    .map(|f| Some(f as f32))
                    .ok_or_else(|| format!("`config.{key}` must be a number or null")),
            }
        };
        let flag = |key: &str| c[key].as_bool().unwrap_or(false);
        match class {
            "GemmaBackbone" => {
                let head_dim = int("head_dim")?;
                // KerasHub 0.32's decoder block builds its attention with
                // `query_head_dim_normalize=True` whatever the config says, so Keras scales
                // queries by 1/sqrt(head_dim) always; the artifact must do what Keras does.
                let query_scale = (1.0 / (head_dim as f64).sqrt()) as f32;
                // KerasHub passes `intermediate_dim / 2` to each gated feed-forward half.
                let intermediate = int("intermediate_dim")? / 2;
                Ok(Self {
                    family: Family::Gemma,
                    vocab: int("vocabulary_size")?,
                    layers: int("num_layers")?,
                    hidden: int("hidden_dim")?,
                    q_heads: int("num_query_heads")?,
                    kv_heads: int("num_key_value_heads")?,
                    head_dim,
                    intermediate,
                    norm_eps: float("layer_norm_epsilon", 1e-6)?,
                    rope_wavelength: 10_000.0,
                    rope_scaling: 1.0,
                    query_scale,
                    attention_soft_cap: opt_float("attention_logit_soft_cap")?,
                    final_soft_cap: opt_float("final_logit_soft_cap")?,
                    post_attention_norm: flag("use_post_attention_norm"),
                    post_ffw_norm: flag("use_post_ffw_norm"),
                    sliding_window: flag("use_sliding_window_attention")
                        .then(|| int("sliding_window_size"))
                        .transpose()?,
                })
            }
            "LlamaBackbone" | "MistralBackbone" => {
                for key in [
                    "rope_frequency_adjustment_factor",
                    "rope_low_freq_factor",
                    "rope_high_freq_factor",
                ] {
                    if !c[key].is_null() {
                        return Err(format!(
                            "`config.{key}` (Llama 3.1 RoPE frequency scaling) is not implemented by the native writer"
                        ));
                    }
                }
                if class == "MistralBackbone" && !c["sliding_window"].is_null() {
                    return Err("`config.sliding_window` (Mistral's sliding window) is not implemented by the native writer".into());
                }
                let hidden = int("hidden_dim")?;
                let q_heads = int("num_query_heads")?;
                let head_dim = hidden / q_heads;
                Ok(Self {
                    family: Family::Llama,
                    vocab: int("vocabulary_size")?,
                    layers: int("num_layers")?,
                    hidden,
                    q_heads,
                    kv_heads: int("num_key_value_heads")?,
                    head_dim,
                    intermediate: int("intermediate_dim")?,
                    norm_eps: float("layer_norm_epsilon", 1e-6)?,
                    rope_wavelength: float("rope_max_wavelength", 10_000.0)?,
                    rope_scaling: float("rope_position_scaling_factor", 1.0)?,
                    query_scale: (1.0 / (head_dim as f64).sqrt()) as f32,
                    attention_soft_cap: None,
                    final_soft_cap: None,
                    post_attention_norm: false,
                    post_ffw_norm: false,
                    sliding_window: None,
                })
            }
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

    /// A reason this architecture cannot be written with this KV-cache capacity.
    pub fn refuse_capacity(&self, capacity: usize) -> Option<String> {
        let window = self.sliding_window?;
        (capacity > window).then(|| {
            format!(
                "layers use sliding-window attention (window {window}), which the writers do not implement; use a capacity of at most {window}"
            )
        })
    }
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
        assert_eq!(a.query_scale, 0.25);
        assert_eq!(a.attention_soft_cap, Some(50.0));
        assert_eq!(a.refuse_capacity(100_000), None);

        let mut llama = serde_json::json!({"class_name": "LlamaBackbone", "config": {
            "vocabulary_size": 36, "num_layers": 2, "num_query_heads": 4, "num_key_value_heads": 2,
            "hidden_dim": 32, "intermediate_dim": 64, "rope_max_wavelength": 500000}});
        let a = Architecture::from_json(&llama).unwrap();
        assert_eq!(
            (a.family, a.head_dim, a.rope_wavelength),
            (Family::Llama, 8, 500_000.0)
        );
        llama["config"]["rope_frequency_adjustment_factor"] = 8.into();
        let e = Architecture::from_json(&llama).unwrap_err();
        assert!(e.contains("rope_frequency_adjustment_factor"), "{e}");

        let gpt2 = serde_json::json!({"class_name": "GPT2Backbone", "config": {}});
        let e = Architecture::from_json(&gpt2).unwrap_err();
        assert!(
            e.contains("`GPT2Backbone`") && e.contains("LlamaBackbone"),
            "{e}"
        );
    }
}
