//! Each model family's chat format, as LiteRT-LM's per-role prompt template: what a bundle
//! carries when the recipe names no template of its own. The family is the preset's
//! tokenizer class (KerasHub's `tokenizer.json` config at the preset's root), and a format
//! applies only when the tokenizer matches each of its markers whole: a template whose
//! markers would be cut into pieces prompts the model with text it never saw.

use std::path::Path;

use super::spec::Template;
use super::tokenizer::Vocab;

/// A family's turn markers.
struct Format {
    /// The KerasHub tokenizer classes that use it.
    classes: &'static [&'static str],
    /// Pieces the tokenizer must have whole.
    markers: &'static [&'static str],
    user: (&'static str, &'static str),
    model: (&'static str, &'static str),
    system: Option<(&'static str, &'static str)>,
}

const FORMATS: &[Format] = &[
    // Gemma's turns; Gemma has no system role (its own template folds a system prompt into
    // the first user turn).
    Format {
        classes: &["GemmaTokenizer", "Gemma3Tokenizer"],
        markers: &["<start_of_turn>", "<end_of_turn>"],
        user: ("<start_of_turn>user\n", "<end_of_turn>\n"),
        model: ("<start_of_turn>model\n", "<end_of_turn>\n"),
        system: None,
    },
    // ChatML.
    Format {
        classes: &["Qwen3Tokenizer"],
        markers: &["<|im_start|>", "<|im_end|>"],
        user: ("<|im_start|>user\n", "<|im_end|>\n"),
        model: ("<|im_start|>assistant\n", "<|im_end|>\n"),
        system: Some(("<|im_start|>system\n", "<|im_end|>\n")),
    },
    // Llama 3's headers: a turn ends with `<|eot_id|>`, one of its stop tokens.
    Format {
        classes: &["Llama3Tokenizer"],
        markers: &["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        user: ("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
        model: (
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            "<|eot_id|>",
        ),
        system: Some((
            "<|start_header_id|>system<|end_header_id|>\n\n",
            "<|eot_id|>",
        )),
    },
];

/// The tokenizer class a preset's Keras config names, if it names one.
pub fn tokenizer_class(preset: &Path) -> Option<String> {
    let text = std::fs::read(preset.join("tokenizer.json")).ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&text).ok()?;
    doc.get("class_name")?.as_str().map(str::to_string)
}

/// The chat template of a tokenizer `class` over `vocab`, if its family has one and the
/// tokenizer has every marker of it.
pub fn default_template(class: &str, vocab: &Vocab) -> Option<Template> {
    let format = FORMATS.iter().find(|f| f.classes.contains(&class))?;
    if !format.markers.iter().all(|m| vocab.matches_whole(m)) {
        return None;
    }
    let pair = |(prefix, suffix): (&str, &str)| Some((prefix.to_string(), suffix.to_string()));
    Some(Template {
        user: pair(format.user),
        model: pair(format.model),
        system: format.system.and_then(pair),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::litertlm::{bpe, spec};

    fn bpe_vocab(class: &str, special: &[&str], unsplittable: Option<&[&str]>) -> (Vocab, String) {
        let dir = tempfile::tempdir().unwrap();
        bpe::tests::preset(dir.path(), class, special, unsplittable);
        let class = tokenizer_class(dir.path()).unwrap();
        let vocab = spec::read_vocab(&spec::find_tokenizer(dir.path()).unwrap()).unwrap();
        (vocab, class)
    }

    #[test]
    fn each_family_gets_its_turn_markers() {
        let (vocab, class) = bpe_vocab("Llama3Tokenizer", bpe::tests::LLAMA3, None);
        let t = default_template(&class, &vocab).unwrap();
        assert_eq!(
            t.user,
            Some((
                "<|start_header_id|>user<|end_header_id|>\n\n".into(),
                "<|eot_id|>".into()
            ))
        );
        assert_eq!(
            t.model.unwrap().0,
            "<|start_header_id|>assistant<|end_header_id|>\n\n"
        );
        let qwen = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
        let (vocab, class) = bpe_vocab("Qwen3Tokenizer", &qwen, Some(&qwen));
        let t = default_template(&class, &vocab).unwrap();
        assert_eq!(
            t.system,
            Some(("<|im_start|>system\n".into(), "<|im_end|>\n".into()))
        );
        assert_eq!(t.model.unwrap().0, "<|im_start|>assistant\n");
        // GPT-2 has no chat format.
        let (vocab, class) = bpe_vocab("GPT2Tokenizer", &["<|endoftext|>"], None);
        assert_eq!(default_template(&class, &vocab), None);
    }

    #[test]
    fn markers_the_tokenizer_would_cut_give_no_template() {
        // KerasHub's Qwen3Tokenizer alone keeps `<|im_start|>` in the vocabulary but not
        // whole: ChatML would reach the model in pieces.
        let qwen = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
        let (vocab, class) = bpe_vocab("Qwen3Tokenizer", &qwen, None);
        assert!(vocab.id("<|im_start|>").is_some());
        assert_eq!(default_template(&class, &vocab), None);
    }
}
