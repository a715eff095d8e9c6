//! Multimodal presets (Gemma 3 with its vision encoder, PaliGemma): the input shapes a local
//! preset's own `config.json` and `preprocessor.json` imply, merged with the recipe's
//! `inputs`, `batch_size`, `sequence_length` and `image_size`, and the combinations the
//! preprocessor could never produce refused (E0246–E0249).
//!
//! These models take inputs that are not text: Gemma 3's `vision_indices` holds one position
//! per vision token (images per prompt × tokens per image), not one per text token, so
//! `sequence_length` must not size it; the images' size is fixed by the vision encoder's
//! position embedding. Network presets are sized the same way by the worker, from the loaded
//! preprocessor.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::Cx;
use crate::recipe::load::escape_segment;
use crate::recipe::plan::*;
use crate::recipe::types::*;

/// What a local preset's configuration says about its image inputs.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Multimodal {
    /// Gemma 3 with a vision encoder: `images` `[B, N, S, S, 3]`, `vision_indices`
    /// `[B, N×V]`, and `token_ids`, `padding_mask`, `vision_mask` `[B, T]`.
    Gemma3 {
        image_size: u32,
        /// `max_images_per_prompt` of the preprocessor (1 without one).
        max_images: u32,
        /// `num_vision_tokens_per_image`: (image size / patch size)² / pool size².
        tokens_per_image: u32,
    },
    /// PaliGemma: `images` `[B, S, S, 3]` (its (S / patch size)² vision tokens precede
    /// the text), and `token_ids`, `padding_mask`, `response_mask` `[B, T]`.
    PaliGemma { image_size: u32 },
}

impl Multimodal {
    /// Read a local preset directory; `None` for anything that is not a multimodal preset
    /// (or whose configuration cannot be read: the worker then decides).
    pub(super) fn of_preset(dir: &Path) -> Option<Multimodal> {
        let config: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).ok()?).ok()?;
        let pre: Option<Value> = std::fs::read_to_string(dir.join("preprocessor.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let pre = pre.as_ref().map(|p| &p["config"]);
        let c = &config["config"];
        let uint = |v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
        match config["class_name"].as_str()? {
            "Gemma3Backbone" => {
                let enc = &c["vision_encoder"]["config"];
                if !enc.is_object() {
                    return None; // a text-only Gemma 3
                }
                let image_size = uint(&enc["image_size"]).or_else(|| uint(&c["image_size"]))?;
                let patch = uint(&enc["patch_size"])?.max(1);
                let pool = uint(&enc["pool_size"]).unwrap_or(14).max(1);
                let derived = (image_size / patch).pow(2) / pool.pow(2);
                let tokens_per_image = pre
                    .and_then(|p| uint(&p["num_vision_tokens_per_image"]))
                    .unwrap_or(derived);
                let max_images = pre
                    .and_then(|p| uint(&p["max_images_per_prompt"]))
                    .unwrap_or(1);
                Some(Multimodal::Gemma3 {
                    image_size,
                    max_images,
                    tokens_per_image,
                })
            }
            "PaliGemmaBackbone" => {
                let image_size = uint(&c["image_size"])?;
                Some(Multimodal::PaliGemma { image_size })
            }
            _ => None,
        }
    }

    /// Integer inputs that are not text and so take no `sequence_length`.
    pub(super) fn is_vision_input(&self, name: &str) -> bool {
        matches!(self, Multimodal::Gemma3 { .. }) && name == "vision_indices"
    }

    fn text_inputs(&self) -> &'static [&'static str] {
        match self {
            Multimodal::Gemma3 { .. } => &["token_ids", "padding_mask", "vision_mask"],
            Multimodal::PaliGemma { .. } => &["token_ids", "padding_mask", "response_mask"],
        }
    }

    fn image_size(&self) -> u32 {
        match self {
            Multimodal::Gemma3 { image_size, .. } | Multimodal::PaliGemma { image_size, .. } => {
                *image_size
            }
        }
    }
}

/// The shapes a recipe spells out by input name (its `inputs`, or its whole
/// `input_signature` as overrides), the pointer of each entry, and which key they came from.
fn spelled_out(
    r: &Recipe,
) -> (
    BTreeMap<String, InputOverride>,
    BTreeMap<String, String>,
    &'static str,
) {
    let mut shapes = BTreeMap::new();
    let mut at = BTreeMap::new();
    let mut add = |name: String, pointer: String, shape: &[Option<u32>], dtype: Dtype| {
        shapes.insert(
            name.clone(),
            InputOverride {
                shape: Some(shape.to_vec()),
                dtype: Some(dtype),
            },
        );
        at.insert(name, pointer);
    };
    match &r.input_signature {
        Some(InputSignature::Mapping(map)) => {
            for (name, s) in map {
                let pointer = format!("/input_signature/{}", escape_segment(name));
                add(name.clone(), pointer, &s.shape, s.dtype);
            }
        }
        Some(InputSignature::List(list)) => {
            for (i, e) in list.iter().enumerate() {
                let name = e.name.clone().unwrap_or_else(|| format!("args_{i}"));
                add(name, format!("/input_signature/{i}"), &e.shape, e.dtype);
            }
        }
        None => {
            let inputs = r.inputs.clone().unwrap_or_default();
            for name in inputs.keys() {
                at.insert(name.clone(), format!("/inputs/{}", escape_segment(name)));
            }
            return (inputs, at, "inputs");
        }
    }
    (shapes, at, "input_signature")
}

/// A dimension and where it came from.
#[derive(Clone)]
struct Dim(Option<u32>, String);

impl Dim {
    fn dynamic() -> Dim {
        Dim(None, "dynamic".into())
    }
}

impl Cx<'_> {
    /// The multimodal preset the recipe names, when it is a local one.
    pub(super) fn multimodal(&self, model: Option<&ModelPlan>) -> Option<Multimodal> {
        match model? {
            ModelPlan::Preset {
                preset: PresetRef::Path(dir),
                ..
            } => Multimodal::of_preset(dir),
            _ => None,
        }
    }

    /// Every input's shape for a multimodal preset, with its source, after refusing what
    /// its preprocessor could not produce.
    pub(super) fn multimodal_shapes(
        &mut self,
        r: &Recipe,
        mm: &Multimodal,
        image_size: Option<[u32; 2]>,
    ) -> Vec<InputShape> {
        // The shapes the recipe spells out, `inputs` or a whole `input_signature`, and where
        // each entry was written.
        let (overrides, at, origin) = spelled_out(r);
        let ptr = |name: &str| {
            let entry = at
                .get(name)
                .cloned()
                .unwrap_or_else(|| format!("/inputs/{}", escape_segment(name)));
            format!("{entry}/shape")
        };
        let explicit = |name: &str| overrides.get(name).and_then(|o| o.shape.clone());
        let batch = match r.batch_size {
            Some(b) => Dim(Some(b), "batch_size".into()),
            None => Dim::dynamic(),
        };
        // The text length: `sequence_length`, else the first text input the recipe shapes;
        // every text input shares it.
        let mut text = r
            .sequence_length
            .map(|t| Dim(Some(t), "sequence_length".into()));
        let mut text_from: Option<String> = None;
        for name in mm.text_inputs() {
            let Some(o) = overrides.get(*name) else {
                continue;
            };
            let Some(&len) = o.shape.as_ref().and_then(|s| s.get(1)) else {
                continue;
            };
            let Some(Dim(want, from)) = &text else {
                text = Some(Dim(len, format!("{origin}.{name}")));
                text_from = Some(name.to_string());
                continue;
            };
            // A conflict with `sequence_length` on an integer input is E0242 already.
            let reported = r.sequence_length.is_some() && o.dtype.is_some_and(Dtype::is_integer);
            if len != *want && !reported {
                let show = |d: Option<u32>| d.map_or("dynamic".to_string(), |d| d.to_string());
                let what = if from == "sequence_length" {
                    "`sequence_length` is".to_string()
                } else {
                    format!("`{}` has", from.rsplit('.').next().unwrap_or(from))
                };
                let d = self.err(
                    "E0249",
                    &ptr(name),
                    format!(
                        "input `{name}` has length {}, but {what} {}: the text inputs share one length",
                        show(len),
                        show(*want)
                    ),
                );
                d.label = Some("differs from the other text inputs".into());
                d.hints
                    .push("give the text length once, as `sequence_length`".into());
            }
        }
        let text = text.unwrap_or_else(Dim::dynamic);
        let size = mm.image_size();
        if let Some([h, w]) = image_size
            && (h, w) != (size, size)
        {
            let d = self.err(
                "E0246",
                "/image_size",
                format!(
                    "`image_size` is {h}x{w}, but the preset's vision encoder takes {size}x{size} images"
                ),
            );
            d.label = Some(format!("must be {size}"));
            d.hints.push(format!(
                "the encoder's position embedding fixes the image size: use `image_size: {size}` or leave it out (the preset's size is used)"
            ));
        }
        let image_from = if image_size.is_some() {
            "image_size"
        } else {
            "preset: image_size"
        };
        let text_shape = |name: &str| InputShape {
            name: name.into(),
            shape: vec![batch.0, text.0],
            dtype: Dtype::Int32,
            from: format!("{}, {}", batch.1, text.1),
        };
        let mut shapes = Vec::new();
        match *mm {
            Multimodal::Gemma3 {
                max_images,
                tokens_per_image,
                ..
            } => {
                // Images per prompt: the recipe's `images` or `vision_indices`, else the
                // preprocessor's maximum.
                let images = explicit("images");
                if let Some(shape) = &images {
                    self.check_image_shape("images", shape, 5, size, &ptr("images"));
                }
                let indices = explicit("vision_indices");
                let mut count = Dim(Some(max_images), "preset: max_images_per_prompt".into());
                if let Some(n) = images.as_ref().and_then(|s| s.get(1).copied()) {
                    count = Dim(n, format!("{origin}.images"));
                } else if let Some(Some(len)) = indices.as_ref().and_then(|s| s.get(1).copied())
                    && len % tokens_per_image == 0
                {
                    count = Dim(
                        Some(len / tokens_per_image),
                        format!("{origin}.vision_indices"),
                    );
                }
                if let Some(n) = count.0
                    && (n == 0 || n > max_images)
                {
                    let at = if images.is_some() {
                        ptr("images")
                    } else {
                        ptr("vision_indices")
                    };
                    let what = if count.1.ends_with(".vision_indices") {
                        format!(
                            "`vision_indices` of length {} means {n} images per prompt ({tokens_per_image} vision tokens each)",
                            n * tokens_per_image
                        )
                    } else {
                        format!("{n} images per prompt")
                    };
                    let d = self.err(
                        "E0247",
                        &at,
                        format!(
                            "{what}, but the preprocessor takes 1 to {max_images} (`max_images_per_prompt`)"
                        ),
                    );
                    d.label = Some(format!("must be 1..={max_images}"));
                    d.hints.push(
                        "export at most the images the preprocessor packs into one prompt; a preset with a larger `max_images_per_prompt` takes more".into(),
                    );
                }
                let want = count.0.map(|n| n * tokens_per_image);
                if let Some(shape) = &indices
                    && let Some(&len) = shape.get(1)
                    && len != want
                {
                    let show = |d: Option<u32>| d.map_or("dynamic".to_string(), |d| d.to_string());
                    let d = self.err(
                        "E0248",
                        &ptr("vision_indices"),
                        format!(
                            "`vision_indices` has length {}, but {} image(s) per prompt × {tokens_per_image} vision tokens per image is {}",
                            show(len),
                            show(count.0),
                            show(want)
                        ),
                    );
                    d.label = Some("one position per vision token".into());
                    d.hints.push(format!(
                        "the vision encoder makes {tokens_per_image} tokens per image (`num_vision_tokens_per_image`): set the images per prompt with `inputs.images` and leave `vision_indices` out"
                    ));
                }
                if let (Some(t), Some(v)) = (text.0, want)
                    && t <= v
                {
                    let at = if r.sequence_length.is_some() {
                        "/sequence_length".to_string()
                    } else {
                        text_from
                            .as_deref()
                            .map_or_else(|| "/inputs".to_string(), ptr)
                    };
                    let d = self.err(
                        "E0249",
                        &at,
                        format!(
                            "a text length of {t} cannot hold {v} vision tokens ({} image(s) × {tokens_per_image})",
                            count.0.unwrap_or(0)
                        ),
                    );
                    d.label = Some(format!("must be more than {v}"));
                    d.hints.push(
                        "each image's placeholder tokens sit in the prompt; the preprocessor refuses a `sequence_length` that is not longer than all of them".into(),
                    );
                }
                shapes.push(text_shape("token_ids"));
                shapes.push(text_shape("padding_mask"));
                shapes.push(InputShape {
                    name: "images".into(),
                    shape: vec![batch.0, count.0, Some(size), Some(size), Some(3)],
                    dtype: Dtype::Float32,
                    from: format!("{}, {}, {image_from}", batch.1, count.1),
                });
                shapes.push(InputShape {
                    name: "vision_indices".into(),
                    shape: vec![batch.0, want],
                    dtype: Dtype::Int32,
                    from: format!(
                        "{}, {} × preset: num_vision_tokens_per_image ({tokens_per_image})",
                        batch.1, count.1
                    ),
                });
                shapes.push(text_shape("vision_mask"));
            }
            Multimodal::PaliGemma { .. } => {
                if let Some(shape) = explicit("images") {
                    self.check_image_shape("images", &shape, 4, size, &ptr("images"));
                }
                shapes.push(InputShape {
                    name: "images".into(),
                    shape: vec![batch.0, Some(size), Some(size), Some(3)],
                    dtype: Dtype::Float32,
                    from: format!("{}, {image_from}", batch.1),
                });
                shapes.push(text_shape("token_ids"));
                shapes.push(text_shape("padding_mask"));
                shapes.push(text_shape("response_mask"));
            }
        }
        // A shape the recipe spells out is the recipe's (checked against the rest above).
        for s in &mut shapes {
            if let Some(o) = overrides.get(&s.name) {
                if let Some(dtype) = o.dtype {
                    s.dtype = dtype;
                }
                if let Some(shape) = &o.shape {
                    s.shape.clone_from(shape);
                    s.from = origin.into();
                }
            }
        }
        let known: Vec<&str> = shapes.iter().map(|s| s.name.as_str()).collect();
        for name in overrides.keys() {
            if !known.contains(&name.as_str()) {
                let d = self.err_key(
                    "E0246",
                    &at[name],
                    format!("the preset has no input `{name}`"),
                );
                d.label = Some("not an input of this model".into());
                d.notes.push(format!("its inputs: {}", known.join(", ")));
            }
        }
        if r.input_signature.is_some() {
            // A whole signature names the inputs the artifact takes; the worker checks them
            // against the model.
            shapes.retain(|s| overrides.contains_key(&s.name));
        }
        shapes
    }

    /// An image input the recipe shapes: the rank the model takes, the encoder's size and
    /// three channels.
    fn check_image_shape(
        &mut self,
        name: &str,
        shape: &[Option<u32>],
        rank: usize,
        size: u32,
        ptr: &str,
    ) {
        let spatial = &shape[shape.len().saturating_sub(3)..];
        let ok = shape.len() == rank && spatial == [Some(size), Some(size), Some(3)];
        if !ok {
            let want = if rank == 5 {
                format!("[batch, images per prompt, {size}, {size}, 3]")
            } else {
                format!("[batch, {size}, {size}, 3]")
            };
            let d = self.err(
                "E0246",
                ptr,
                format!("input `{name}` must be {want} for this preset's vision encoder"),
            );
            d.label = Some(format!("the encoder takes {size}x{size} RGB images"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preset(config: &str, pre: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        if let Some(p) = pre {
            std::fs::write(dir.path().join("preprocessor.json"), p).unwrap();
        }
        dir
    }

    #[test]
    fn gemma3_vision_reads_encoder_and_preprocessor() {
        let dir = preset(
            r#"{"class_name": "Gemma3Backbone", "config": {"image_size": 32,
                "vision_encoder": {"class_name": "Gemma3VisionEncoder",
                  "config": {"image_size": 32, "patch_size": 8, "pool_size": 2}}}}"#,
            Some(
                r#"{"class_name": "Gemma3CausalLMPreprocessor", "config": {
                "max_images_per_prompt": 2, "num_vision_tokens_per_image": 4}}"#,
            ),
        );
        assert_eq!(
            Multimodal::of_preset(dir.path()),
            Some(Multimodal::Gemma3 {
                image_size: 32,
                max_images: 2,
                tokens_per_image: 4
            })
        );
    }

    #[test]
    fn text_only_gemma3_and_other_backbones_are_not_multimodal() {
        let text = preset(
            r#"{"class_name": "Gemma3Backbone", "config": {"image_size": 896, "vision_encoder": null}}"#,
            None,
        );
        assert_eq!(Multimodal::of_preset(text.path()), None);
        let bert = preset(r#"{"class_name": "BertBackbone", "config": {}}"#, None);
        assert_eq!(Multimodal::of_preset(bert.path()), None);
    }

    #[test]
    fn paligemma_reads_its_image_size() {
        let dir = preset(
            r#"{"class_name": "PaliGemmaBackbone", "config": {"image_size": 224, "vit_patch_size": 14}}"#,
            None,
        );
        assert_eq!(
            Multimodal::of_preset(dir.path()),
            Some(Multimodal::PaliGemma { image_size: 224 })
        );
    }
}
