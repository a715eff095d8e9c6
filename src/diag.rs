//! Diagnostics: what went wrong, where (file and byte span), and what to do about it.
//! Located diagnostics render like rustc (`error[E0100]: ...`, `--> file:line:col`, a
//! snippet with a caret, `= hint: ...`) for people, or as JSON data for scripts; [`Hinted`]
//! is the plain error with a hint that every layer may return. This module knows nothing of
//! recipes; it only holds source texts and spans.

use std::ops::Range;
use std::path::{Path, PathBuf};

use annotate_snippets::{AnnotationKind, Group, Level, Origin, Renderer, Snippet};
use serde::Serialize;

/// Index of a file in a [`Sources`] registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub usize);

/// A byte span in a registered file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub file: FileId,
    start: usize,
    end: usize,
}

impl Loc {
    pub fn new(file: FileId, range: Range<usize>) -> Self {
        Self {
            file,
            start: range.start,
            end: range.end.max(range.start),
        }
    }

    pub fn range(&self) -> Range<usize> {
        self.start..self.end
    }
}

/// The files diagnostics may point into, with their text (lossy for non-UTF-8 files, so a
/// snippet can still be shown).
#[derive(Debug, Default)]
pub struct Sources {
    files: Vec<(PathBuf, String)>,
}

impl Sources {
    pub fn add(&mut self, path: &Path, text: String) -> FileId {
        self.files.push((path.to_path_buf(), text));
        FileId(self.files.len() - 1)
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn path(&self, id: FileId) -> &Path {
        self.files
            .get(id.0)
            .map_or(Path::new("<unknown>"), |(p, _)| p)
    }

    pub fn text(&self, id: FileId) -> &str {
        self.files.get(id.0).map_or("", |(_, t)| t)
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, id: FileId, offset: usize) -> (usize, usize) {
        let text = self.text(id);
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = text[line_start..offset].chars().count() + 1;
        (line, col)
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// Where a diagnostic points: a span, or just a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Span(Loc),
    File(FileId),
    Nowhere,
}

/// One finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub place: Place,
    pub label: Option<String>,
    /// Secondary spans (e.g. "first defined here"), each with a label.
    pub related: Vec<(Loc, String)>,
    pub notes: Vec<String>,
    pub hints: Vec<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: message.into(),
            place: Place::Nowhere,
            label: None,
            related: Vec::new(),
            notes: Vec::new(),
            hints: Vec::new(),
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, message)
        }
    }

    pub fn at(mut self, loc: Loc) -> Self {
        self.place = Place::Span(loc);
        self
    }

    pub fn in_file(mut self, file: FileId) -> Self {
        self.place = Place::File(file);
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn related(mut self, loc: Loc, label: impl Into<String>) -> Self {
        self.related.push((loc, label.into()));
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    fn file(&self) -> Option<FileId> {
        match self.place {
            Place::Span(loc) => Some(loc.file),
            Place::File(file) => Some(file),
            Place::Nowhere => None,
        }
    }

    /// Render for people, rustc style. `color` adds ANSI styling.
    pub fn render(&self, sources: &Sources, color: bool) -> String {
        let level = match self.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        let title = level.primary_title(&self.message).id(self.code);
        let mut group = Group::with_title(title);
        let path_of = |file: FileId| sources.path(file).display().to_string();
        match self.place {
            Place::Span(loc) => {
                let text = sources.text(loc.file);
                let mut snippet = Snippet::source(text).path(path_of(loc.file)).fold(true);
                let mut primary = AnnotationKind::Primary.span(clamp(text, loc.range()));
                if let Some(label) = &self.label {
                    primary = primary.label(label.as_str());
                }
                snippet = snippet.annotation(primary);
                for (rel, label) in &self.related {
                    if rel.file == loc.file {
                        snippet = snippet.annotation(
                            AnnotationKind::Context
                                .span(clamp(text, rel.range()))
                                .label(label.as_str()),
                        );
                    }
                }
                group = group.element(snippet);
                for (rel, label) in &self.related {
                    if rel.file != loc.file {
                        let t = sources.text(rel.file);
                        group = group.element(
                            Snippet::source(t)
                                .path(path_of(rel.file))
                                .fold(true)
                                .annotation(
                                    AnnotationKind::Context
                                        .span(clamp(t, rel.range()))
                                        .label(label.as_str()),
                                ),
                        );
                    }
                }
            }
            Place::File(file) => {
                group = group.element(Origin::path(path_of(file)));
            }
            Place::Nowhere => {}
        }
        for note in &self.notes {
            group = group.element(Level::NOTE.message(note.as_str()));
        }
        for hint in &self.hints {
            group = group.element(Level::HELP.with_name(Some("hint")).message(hint.as_str()));
        }
        let renderer = if color {
            Renderer::styled()
        } else {
            Renderer::plain()
        };
        let mut out = renderer.render(&[group]);
        // A blank line between diagnostics, as rustc does.
        out.push_str("\n\n");
        out
    }

    /// The diagnostic as data, for `--format json`.
    pub fn to_json(&self, sources: &Sources) -> JsonDiagnostic {
        let (line, column, end_line, end_column) = match self.place {
            Place::Span(loc) => {
                let (l, c) = sources.line_col(loc.file, loc.range().start);
                let (el, ec) = sources.line_col(loc.file, loc.range().end);
                (Some(l), Some(c), Some(el), Some(ec))
            }
            _ => (None, None, None, None),
        };
        JsonDiagnostic {
            severity: self.severity,
            code: self.code,
            message: self.message.clone(),
            file: self.file().map(|f| sources.path(f).display().to_string()),
            line,
            column,
            end_line,
            end_column,
            label: self.label.clone(),
            notes: self.notes.clone(),
            hints: self.hints.clone(),
        }
    }
}

/// Keep spans inside the text and on character boundaries, whatever produced them.
fn clamp(text: &str, range: Range<usize>) -> Range<usize> {
    let start = floor_char_boundary(text, range.start.min(text.len()));
    let mut end = range.end.clamp(start, text.len());
    while end < text.len() && !text.is_char_boundary(end) {
        end += 1;
    }
    start..end
}

/// A diagnostic as data. Lines and columns are 1-based; columns count characters.
#[derive(Debug, Clone, Serialize)]
pub struct JsonDiagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub end_line: Option<usize>,
    pub end_column: Option<usize>,
    pub label: Option<String>,
    pub notes: Vec<String>,
    pub hints: Vec<String>,
}

/// An error that knows what the user can do about it: printed as the message, then a
/// `hint:` line after the whole cause chain.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Hinted {
    pub message: String,
    pub hint: String,
}

impl Hinted {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rustc_style() {
        let mut sources = Sources::default();
        let f = sources.add(Path::new("r.yaml"), "version: 1\nmodle: x\n".into());
        let d = Diagnostic::error("E0101", "unknown key `modle`")
            .at(Loc::new(f, 11..16))
            .label("not a recipe key")
            .hint("did you mean `model`?");
        let out = d.render(&sources, false);
        assert!(out.contains("error[E0101]: unknown key `modle`"), "{out}");
        assert!(out.contains("--> r.yaml:2:1"), "{out}");
        assert!(out.contains("hint: did you mean `model`?"), "{out}");
        let json = d.to_json(&sources);
        assert_eq!((json.line, json.column), (Some(2), Some(1)));
    }

    #[test]
    fn spans_outside_the_text_do_not_panic() {
        let mut sources = Sources::default();
        let f = sources.add(Path::new("r.yaml"), "é".into());
        let d = Diagnostic::error("E0001", "x").at(Loc::new(f, 1..99));
        let _ = d.render(&sources, false);
        let _ = d.to_json(&sources);
    }
}
