//! `inputs:` and `input_signature:`: per-input overrides or a whole signature (not both),
//! names unique, and the shared sizes (`batch_size`, `sequence_length`, `image_size`)
//! consistent with shapes the recipe spells out. Also `outputs:`, the other half of the
//! signature: new names, none empty and no two alike.

use std::collections::BTreeMap;

use super::Cx;
use super::multimodal::Multimodal;
use crate::recipe::plan::*;
use crate::recipe::types::*;

/// An input whose shape the recipe spells out: (pointer of the shape, name, shape, dtype).
type ExplicitShape = (String, String, Vec<Option<u32>>, Option<Dtype>);

impl Cx<'_> {
    pub(super) fn inputs(
        &mut self,
        r: &Recipe,
        multimodal: Option<&Multimodal>,
    ) -> (InputsPlan, Option<[u32; 2]>) {
        let image_size = r.image_size.as_ref().map(|s| match s {
            ImageSize::Square(n) => [*n, *n],
            ImageSize::HeightWidth(v) => [
                v.first().copied().unwrap_or(1),
                v.get(1).copied().unwrap_or(1),
            ],
        });
        if r.inputs.is_some() && r.input_signature.is_some() {
            let other = self.spans.get("/inputs").and_then(|s| s.key);
            let d = self.err_key(
                "E0240",
                "/input_signature",
                "`input_signature` and `inputs` cannot both be given",
            );
            d.label = Some("the whole signature".into());
            if let Some(loc) = other {
                d.related.push((loc, "per-input overrides".into()));
            }
            d.hints.push(
                "put the overrides into `input_signature`, or drop it and keep `inputs`".into(),
            );
        }
        // (pointer of the shape, input name, shape, dtype) of every explicitly shaped input.
        let mut explicit: Vec<ExplicitShape> = Vec::new();
        let signature = r.input_signature.as_ref().map(|sig| self.signature(sig));
        if let Some(sig) = &signature {
            let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
            for (i, spec) in sig.iter().enumerate() {
                if let Some(first) = seen.insert(spec.name.as_str(), i) {
                    let prev = self
                        .spans
                        .get(&format!("/input_signature/{first}/name"))
                        .map(|s| s.value);
                    let d = self.err(
                        "E0241",
                        &format!("/input_signature/{i}/name"),
                        format!("input `{}` is named twice", spec.name),
                    );
                    d.label = Some("second input with this name".into());
                    if let Some(loc) = prev {
                        d.related.push((loc, "first here".into()));
                    }
                }
                let at = match &r.input_signature {
                    Some(InputSignature::Mapping(_)) => {
                        crate::recipe::load::escape_segment(&spec.name)
                    }
                    _ => i.to_string(),
                };
                explicit.push((
                    format!("/input_signature/{at}/shape"),
                    spec.name.clone(),
                    spec.shape.clone(),
                    Some(spec.dtype),
                ));
            }
        }
        for (name, o) in r.inputs.iter().flatten() {
            if let Some(shape) = &o.shape {
                let ptr = format!(
                    "/inputs/{}/shape",
                    crate::recipe::load::escape_segment(name)
                );
                explicit.push((ptr, name.clone(), shape.clone(), o.dtype));
            }
        }
        for (ptr, name, shape, dtype) in &explicit {
            if let (Some(b), Some(Some(first))) = (r.batch_size, shape.first())
                && *first != b
            {
                let d = self.err(
                    "E0243",
                    ptr,
                    format!("input `{name}` has batch dimension {first}, but `batch_size` is {b}"),
                );
                d.label = Some("conflicts with `batch_size`".into());
                d.hints
                    .push("drop one of the two, or make them agree".into());
            }
            if let (Some(len), Some(Some(dim))) = (r.sequence_length, shape.get(1))
                && dtype.is_some_and(Dtype::is_integer)
                && !multimodal.is_some_and(|m| m.is_vision_input(name))
                && shape.len() == 2
                && *dim != len
            {
                let d = self.err(
                    "E0242",
                    ptr,
                    format!("input `{name}` has length {dim}, but `sequence_length` is {len}"),
                );
                d.label = Some("conflicts with `sequence_length`".into());
                d.hints
                    .push("drop one of the two, or make them agree".into());
            }
            if let Some([h, w]) = image_size
                && shape.len() == 4
                && let (Some(Some(sh)), Some(Some(sw))) = (shape.get(1), shape.get(2))
                && (*sh, *sw) != (h, w)
            {
                let d = self.err(
                    "E0244",
                    ptr,
                    format!("input `{name}` is {sh}x{sw}, but `image_size` is {h}x{w}"),
                );
                d.label = Some("conflicts with `image_size`".into());
            }
        }
        let plan = InputsPlan {
            signature,
            overrides: r.inputs.clone().unwrap_or_default(),
            batch_size: r.batch_size,
            sequence_length: r.sequence_length,
            image_size,
            shapes: Vec::new(),
        };
        (plan, image_size)
    }

    /// The recipe's `outputs:` renames. Whether each names an output of the model, only the
    /// worker can tell (it loads the model); here: no empty name, no name given twice.
    pub(super) fn outputs(&mut self, r: &Recipe) -> BTreeMap<String, String> {
        let renames = r.outputs.clone().unwrap_or_default();
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (from, to) in &renames {
            let ptr = format!("/outputs/{}", crate::recipe::load::escape_segment(from));
            if to.trim().is_empty() {
                let d = self.err(
                    "E0245",
                    &ptr,
                    format!("output `{from}` is renamed to an empty name"),
                );
                d.label = Some("an app binds to this name".into());
                continue;
            }
            if let Some(first) = seen.insert(to.as_str(), from.as_str()) {
                let prev = self
                    .spans
                    .get(&format!(
                        "/outputs/{}",
                        crate::recipe::load::escape_segment(first)
                    ))
                    .map(|s| s.value);
                let d = self.err(
                    "E0245",
                    &ptr,
                    format!("outputs `{first}` and `{from}` are both renamed to `{to}`"),
                );
                d.label = Some("second output with this name".into());
                if let Some(loc) = prev {
                    d.related.push((loc, "first here".into()));
                }
            }
        }
        renames
    }

    /// The recipe's `input_signature` as named specs. Keras names unnamed inputs `args_N`;
    /// so do we, with a warning, since the names are what an app binds to.
    fn signature(&mut self, sig: &InputSignature) -> Vec<InputSpec> {
        match sig {
            InputSignature::Mapping(map) => map
                .iter()
                .map(|(name, s)| InputSpec {
                    name: name.clone(),
                    shape: s.shape.clone(),
                    dtype: s.dtype,
                })
                .collect(),
            InputSignature::List(list) => list
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let name = e.name.clone().unwrap_or_else(|| {
                        let d = self.warn(
                            "W0245",
                            &format!("/input_signature/{i}"),
                            format!("input {i} of `input_signature` has no name; it is named `args_{i}`"),
                        );
                        d.hints.push(format!(
                            "name it (`name: pixels`): apps bind to input names, and `args_{i}` says nothing"
                        ));
                        format!("args_{i}")
                    });
                    InputSpec {
                        name,
                        shape: e.shape.clone(),
                        dtype: e.dtype,
                    }
                })
                .collect(),
        }
    }
}
