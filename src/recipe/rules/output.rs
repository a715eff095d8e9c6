//! `output:` and `snapshot:`: where the artifact goes (a `.tflite` path) and where its
//! snapshot goes (inside the project).

use std::path::PathBuf;

use super::{Cx, inside};
use crate::recipe::types::*;

impl Cx<'_> {
    pub(super) fn output(&mut self, r: &Recipe) -> Option<PathBuf> {
        let Some(out) = &r.output else {
            let d = self.err(
                "E0231",
                "",
                "missing `output`: where should the artifact go?",
            );
            d.hints.push("e.g. `output: build/{{ name }}.tflite` (or `build/{{ name }}-{{ variant }}.tflite` with variants)".into());
            return None;
        };
        if !out.ends_with(".tflite") {
            let d = self.err(
                "E0230",
                "/output",
                format!("output `{out}` does not end in `.tflite`"),
            );
            d.label = Some("LiteRT artifacts must end in `.tflite`".into());
            let stem = out.rsplit_once('.').map_or(out.as_str(), |(s, _)| s);
            d.hints.push(format!("write `{stem}.tflite`"));
            return None;
        }
        Some(self.resolve_path("/output", out))
    }

    /// A recipe's `snapshot:` is written by `--update-snapshots` and `snapshot accept`, so it
    /// must stay inside the project: a recipe from a pull request must not be able to
    /// overwrite files elsewhere. Checked lexically and, for the part that exists, after
    /// following symlinks.
    pub(super) fn snapshot_path(&mut self, rel: &str) -> PathBuf {
        let path = self.resolve_path("/snapshot", rel);
        if !inside(&path, &self.root) {
            let root_shown = self.root.display().to_string();
            let d = self.err(
                "E0234",
                "/snapshot",
                format!("snapshot `{rel}` is outside the project (`{root_shown}`)"),
            );
            d.label = Some("snapshots must stay inside the project".into());
            d.notes.push("the project root is the nearest directory above the recipe with `litert.lock` or `.git`".into());
            d.hints.push(
                "remove `snapshot:` to use `snapshots/NAME.yaml`, or name a path under the project"
                    .into(),
            );
        }
        path
    }
}
