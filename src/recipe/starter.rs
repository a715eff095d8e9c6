//! The starter recipe `litert init` writes for a model: what the model declares (inputs by
//! name, outputs), with the batch dimension made static, the usual settings spelled out and
//! commented, and the quantized variants to try left as comments. It is meant to pass
//! `litert check` and build with `litert apply` as written, and to be read first.

use std::fmt::Write as _;

/// Where the model comes from, as the recipe's `model:` says it (paths relative to the
/// recipe).
#[derive(Debug, Clone)]
pub enum Source {
    Keras(String),
    H5(String),
    SavedModel(String),
    Preset { path: String, task: String },
}

/// One input or output as Keras declares it (`None`: a dynamic dimension).
#[derive(Debug, Clone)]
pub struct Port {
    pub name: String,
    pub shape: Vec<Option<i64>>,
    pub dtype: String,
}

/// Everything the starter recipe says.
#[derive(Debug, Clone)]
pub struct Starter {
    pub name: String,
    pub source: Source,
    /// How the model was named on the command line, for the header comment.
    pub given: String,
    /// The Keras class (`Functional`, `Sequential`, `TextClassifier`, ...).
    pub class_name: String,
    /// `positional` when Keras inferred the inputs of a subclassed model.
    pub structure: String,
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
    /// The recipe's path relative to the working directory, for the next steps.
    pub recipe_path: String,
    /// `schemas/recipe.schema.json` relative to the recipe, when the project has one.
    pub schema: Option<String>,
}

/// A text model's sequence length and a vision model's image size when Keras leaves them
/// dynamic: common defaults, flagged in the recipe as choices to make.
const SEQUENCE_LENGTH: i64 = 128;
const IMAGE_SIZE: i64 = 224;

fn dims(shape: &[Option<i64>]) -> String {
    let parts: Vec<String> = shape
        .iter()
        .map(|d| d.map_or_else(|| "null".to_string(), |n| n.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

fn is_int(dtype: &str) -> bool {
    dtype.starts_with("int") || dtype.starts_with("uint")
}

/// A YAML plain scalar, or a quoted one where plain would be read differently.
fn key(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && !matches!(
            name,
            "true" | "false" | "null" | "yes" | "no" | "on" | "off"
        );
    if plain {
        name.to_string()
    } else {
        serde_json::to_string(name).unwrap_or_else(|_| format!("\"{name}\""))
    }
}

/// A path as a YAML scalar: plain when it is only path characters, else quoted.
fn path_value(p: &str) -> String {
    let plain = !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
    if plain {
        p.to_string()
    } else {
        serde_json::to_string(p).unwrap_or_default()
    }
}

/// The static shape the starter asks for: batch 1, a text model's sequence length and a
/// vision model's image size where Keras leaves them dynamic; other dynamic dimensions stay
/// dynamic. Also says which dimensions it chose.
fn starter_shape(port: &Port) -> (Vec<Option<i64>>, Vec<&'static str>) {
    let mut shape = port.shape.clone();
    let mut chose = Vec::new();
    if let Some(first) = shape.first_mut()
        && first.is_none()
        && port.shape.len() >= 2
    {
        *first = Some(1);
        chose.push("batch 1");
    }
    if is_int(&port.dtype) && shape.len() == 2 && shape[1].is_none() {
        shape[1] = Some(SEQUENCE_LENGTH);
        chose.push("sequence length 128");
    }
    if !is_int(&port.dtype) && shape.len() == 4 && shape[1].is_none() && shape[2].is_none() {
        shape[1] = Some(IMAGE_SIZE);
        shape[2] = Some(IMAGE_SIZE);
        chose.push("image size 224×224");
    }
    (shape, chose)
}

/// The recipe text.
pub fn render(s: &Starter) -> String {
    let mut t = String::new();
    if let Some(schema) = &s.schema {
        let _ = writeln!(t, "# yaml-language-server: $schema={schema}");
    }
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    let _ = writeln!(
        t,
        "# Written by `litert init {}`: a starting point from what Keras declares\n\
         # ({} model, {}, {}). Read it, then:\n\
         #   litert check {r}\n\
         #   litert apply {r}     # builds, checks parity with Keras, records litert.lock\n\
         # and commit the recipe, litert.lock and snapshots/. Every key: `litert schema`\n\
         # (docs/recipe-reference.md); quantization: docs/quantization.md.",
        s.given,
        s.class_name,
        plural(s.inputs.len(), "input"),
        plural(s.outputs.len(), "output"),
        r = s.recipe_path,
    );
    let _ = writeln!(t, "version: 1");
    let _ = writeln!(t, "name: {}", s.name);
    let _ = writeln!(t, "model:");
    match &s.source {
        Source::Keras(p) => {
            let _ = writeln!(t, "  keras: {}", path_value(p));
        }
        Source::H5(p) => {
            let _ = writeln!(t, "  h5: {}", path_value(p));
        }
        Source::SavedModel(p) => {
            let _ = writeln!(t, "  saved_model: {}", path_value(p));
        }
        Source::Preset { path, task } => {
            let _ = writeln!(
                t,
                "  preset:\n    path: {}\n    task: {task}",
                path_value(path)
            );
        }
    }
    inputs(&mut t, s);
    if !s.outputs.is_empty() {
        let _ = writeln!(t, "# Outputs, as Keras names them:");
        for o in &s.outputs {
            let name = if o.name.is_empty() {
                "(unnamed)"
            } else {
                o.name.as_str()
            };
            let _ = writeln!(t, "#   {name}: {} {}", dims(&o.shape), o.dtype);
        }
    }
    let _ = writeln!(t, "output: ../build/{}.tflite", s.name);
    let _ = writeln!(
        t,
        "# After converting, compare the artifact with Keras on seeded random inputs (give\n\
         # `calibration` data to compare on real ones); per output name, `*` for the rest.\n\
         parity:\n  samples: 8\n  tolerance:\n    \"*\": {{atol: 1.0e-4, rtol: 1.0e-4}}"
    );
    let _ = writeln!(
        t,
        "# Refuse an artifact that needs TensorFlow (Flex) ops at run time; add\n\
         # `max_size: 10 MiB` to hold its size.\n\
         gates:\n  no_flex: true"
    );
    let _ = writeln!(
        t,
        "# To compare quantized artifacts, turn the recipe into variants (one artifact each) and\n\
         # make `output` name them: `output: ../build/{}-{{{{ variant }}}}.tflite`\n\
         # variants:\n\
         #   fp32: {{}}\n\
         #   dynamic_range:\n\
         #     quantization: {{mode: dynamic_range}}\n\
         #   int8:\n\
         #     quantization: {{mode: full_int8}}\n\
         #     calibration: {{npz: ../data/calibration.npz, samples: 100}}   # arrays keyed by input name",
        s.name
    );
    t
}

fn inputs(t: &mut String, s: &Starter) {
    if s.inputs.is_empty() {
        return;
    }
    if s.structure == "positional" {
        // A subclassed model: Keras inferred the inputs from the shapes it was built with,
        // and only a whole signature can change them.
        let _ = writeln!(
            t,
            "# The inputs Keras inferred for this subclassed model (static batch of 1; `null`\n\
             # is a dynamic dimension)."
        );
        let _ = writeln!(t, "input_signature:");
        for p in &s.inputs {
            let (shape, _) = starter_shape(p);
            let _ = writeln!(
                t,
                "  - {{name: {}, shape: {}, dtype: {}}}",
                key(&p.name),
                dims(&shape),
                p.dtype
            );
        }
        return;
    }
    let _ = writeln!(
        t,
        "# The model's inputs by name, with static shapes where Keras leaves them open (a\n\
         # static shape gives a smaller, faster artifact every runtime accepts; `null` keeps a\n\
         # dimension dynamic). As Keras declares them:"
    );
    for p in &s.inputs {
        let _ = writeln!(t, "#   {}: {} {}", p.name, dims(&p.shape), p.dtype);
    }
    let _ = writeln!(t, "inputs:");
    for p in &s.inputs {
        let (shape, chose) = starter_shape(p);
        let note = if chose.is_empty() {
            String::new()
        } else {
            format!("   # {}", chose.join(", "))
        };
        let _ = writeln!(t, "  {}: {{shape: {}}}{note}", key(&p.name), dims(&shape));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sequence_and_image_dimensions_become_static() {
        let port = |shape: Vec<Option<i64>>, dtype: &str| Port {
            name: "x".into(),
            shape,
            dtype: dtype.into(),
        };
        assert_eq!(
            starter_shape(&port(vec![None, Some(28), Some(28)], "float32")).0,
            vec![Some(1), Some(28), Some(28)]
        );
        assert_eq!(
            starter_shape(&port(vec![None, None], "int32")).0,
            vec![Some(1), Some(128)]
        );
        assert_eq!(
            starter_shape(&port(vec![None, None, None, Some(3)], "float32")).0,
            vec![Some(1), Some(224), Some(224), Some(3)]
        );
        assert_eq!(
            starter_shape(&port(vec![None, None, Some(8)], "float32")).0,
            vec![Some(1), None, Some(8)]
        );
    }

    #[test]
    fn names_that_yaml_would_misread_are_quoted() {
        assert_eq!(key("pixels"), "pixels");
        assert_eq!(key("no"), "\"no\"");
        assert_eq!(key("input 1"), "\"input 1\"");
        assert_eq!(key("1st"), "\"1st\"");
    }
}
