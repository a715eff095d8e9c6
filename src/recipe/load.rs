//! Reading one recipe file: bytes to UTF-8 to a YAML document, kept as JSON data plus a
//! map from every JSON pointer in it to the byte span of its key and value in the file.
//! The spans are what lets every later stage (schema, semantic rules, templates) point at
//! the offending line. Parsing is bounded: the file size is capped before parsing, and the
//! YAML parser's budgets refuse alias bombs and absurd nesting.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;

use crate::diag::{Diagnostic, FileId, Loc};

/// Recipes are small, hand-written files; anything larger is a mistake, and refusing it
/// before parsing keeps memory bounded.
pub const MAX_RECIPE_BYTES: usize = 1024 * 1024;

/// Deeper than any real recipe; refusing it keeps recursion bounded.
const MAX_DEPTH: usize = 64;

/// A parsed recipe file.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    pub spans: Spans,
}

/// Where each JSON pointer of a document came from.
#[derive(Debug, Clone, Default)]
pub struct Spans {
    map: HashMap<String, NodeSpan>,
}

/// The location of one value, and of its mapping key when it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSpan {
    pub value: Loc,
    pub key: Option<Loc>,
}

impl Spans {
    pub fn get(&self, pointer: &str) -> Option<NodeSpan> {
        self.map.get(pointer).copied()
    }

    pub fn insert(&mut self, pointer: String, span: NodeSpan) {
        self.map.insert(pointer, span);
    }

    /// The span of the value at `pointer`, or of its nearest ancestor that has one.
    pub fn nearest(&self, pointer: &str) -> Option<NodeSpan> {
        let mut p = pointer;
        loop {
            if let Some(span) = self.map.get(p) {
                return Some(*span);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }

    /// Entries at or under `prefix`, with the prefix removed (`""` for the value itself).
    pub fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (String, NodeSpan)> + 'a {
        self.map.iter().filter_map(move |(p, s)| {
            let rest = p.strip_prefix(prefix)?;
            (rest.is_empty() || rest.starts_with('/')).then(|| (rest.to_string(), *s))
        })
    }

    /// Drop entries whose pointer no longer exists in `value` (after a merge replaced them).
    pub fn retain_existing(&mut self, value: &Value) {
        self.map.retain(|p, _| value.pointer(p).is_some());
    }
}

/// Escape one JSON-pointer segment (RFC 6901).
pub fn escape_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Parse recipe bytes. `file` is the id the caller registered the file under.
pub fn parse(file: FileId, bytes: &[u8]) -> Result<Document, Box<Diagnostic>> {
    if bytes.len() > MAX_RECIPE_BYTES {
        return Err(Box::new(Diagnostic::error(
            "E0002",
            format!("recipe is larger than the limit of {MAX_RECIPE_BYTES} bytes"),
        )
        .in_file(file)
        .hint("a recipe describes a build; keep data (weights, calibration samples) in files it points to")));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            let at = err.valid_up_to();
            return Err(Box::new(
                Diagnostic::error("E0003", "recipe is not valid UTF-8")
                    .at(Loc::new(file, at..at + 1))
                    .label(format!(
                        "invalid byte 0x{:02x} here",
                        bytes.get(at).copied().unwrap_or(0)
                    ))
                    .hint("save the file as UTF-8"),
            ));
        }
    };
    if text.trim().is_empty() {
        return Err(Box::new(
            Diagnostic::error("E0004", "recipe is empty")
                .in_file(file)
                .hint("a recipe needs at least `version: 1` and a `model:`; see `litert schema`"),
        ));
    }
    // The parser's default budget is sized for large configuration files: at a million
    // events an alias bomb took a second of CPU (half a minute in the fuzzer) before it was
    // refused. A recipe has hundreds of nodes; these bounds refuse a bomb in milliseconds.
    let budget = serde_saphyr::budget! {
        max_events: 50_000,
        max_nodes: 20_000,
        max_aliases: 1_000,
        max_anchors: 1_000,
        max_recorded_anchor_events: 50_000,
        max_merge_keys: 1_000,
    };
    let options =
        serde_saphyr::options! { strict_booleans: true, with_snippet: false, budget: budget };
    let root: Spanned<Node> = serde_saphyr::from_str_with_options(text, options)
        .map_err(|err| Box::new(yaml_error(file, text, &err)))?;
    let mut spans = Spans::default();
    let value = into_json(file, text, root, String::new(), None, &mut spans, 0)?;
    if value.is_null() {
        return Err(Box::new(
            Diagnostic::error("E0004", "recipe is empty")
                .in_file(file)
                .hint("a recipe needs at least `version: 1` and a `model:`; see `litert schema`"),
        ));
    }
    Ok(Document { value, spans })
}

fn yaml_error(file: FileId, text: &str, err: &serde_saphyr::Error) -> Diagnostic {
    // The user-facing wording: the default one speaks to the library's caller ("set
    // DuplicateKeyPolicy in Options", "use from_str_multiple").
    let message = err.render_with_formatter(&serde_saphyr::UserMessageFormatter);
    // serde-saphyr renders "line L column C" into its message; prefer its own location
    // accessor and fall back to the start of the file.
    let loc = err
        .location()
        .and_then(|l| location_range(text, &l))
        .map(|r| Loc::new(file, r));
    let headline = plain_words(&first_line(&message));
    let mut diag = Diagnostic::error("E0001", format!("invalid YAML: {headline}"));
    diag = match loc {
        Some(loc) => diag.at(loc),
        None => diag.in_file(file),
    };
    if headline.contains("duplicate") {
        diag = diag.hint("each key may appear once in a mapping; remove or rename one of them");
    } else if headline.contains("multiple") && headline.contains("document") {
        diag = diag.hint("a recipe is one YAML document: remove the second `---` (variants go under `variants:`)");
    } else if headline.contains("too large") || headline.contains("alias") {
        diag = diag.hint("recipes may use anchors and aliases, but not to build huge documents");
    }
    diag
}

/// The parser's headline in the user's words: no location suffix (the snippet shows it)
/// and no Rust type names for a breached limit (`Depth { depth: 65 }`).
fn plain_words(headline: &str) -> String {
    let mut text = headline.to_string();
    // " at line 4, column 1" closes the message unless more follows (an alias's origin).
    if let Some(i) = text.rfind(" at line ")
        && text[i + 9..]
            .chars()
            .all(|c| c.is_ascii_digit() || c == ',' || c == ' ' || c.is_ascii_lowercase())
    {
        text.truncate(i);
    }
    if let Some(i) = text.find("limits breached: ") {
        let what = &text[i + "limits breached: ".len()..];
        let kind = what.split([' ', '{']).next().unwrap_or("");
        let number: String = what
            .split('{')
            .nth(1)
            .and_then(|r| r.split('}').next())
            .map(|r| r.chars().filter(char::is_ascii_digit).collect())
            .unwrap_or_default();
        let said = match kind {
            "Depth" => format!("nested {number} levels deep"),
            "Nodes" => format!("{number} nodes once aliases are expanded"),
            "Aliases" => format!("{number} aliases"),
            "Anchors" => format!("{number} anchors"),
            "Events" => format!("{number} parser events"),
            _ => "beyond the parser's limits".to_string(),
        };
        let rest = what.find('}').map_or("", |j| &what[j + 1..]);
        text = format!("the document is too large or too complex for a recipe: {said}{rest}");
    }
    text
}

/// serde-saphyr messages carry their own rendered snippet after the first line; we render
/// our own, so keep the headline and strip its "line N column M:" prefix.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line.find(": ") {
        Some(i) if line[..i].starts_with("line ") => line[i + 2..].to_string(),
        _ => line.to_string(),
    }
}

fn location_range(text: &str, loc: &serde_saphyr::Location) -> Option<Range<usize>> {
    let span = loc.span();
    if let (Some(start), Some(len)) = (span.byte_offset(), span.byte_len()) {
        let start = usize::try_from(start).ok()?;
        let len = usize::try_from(len).ok()?.max(1);
        if start <= text.len() {
            return Some(start..(start + len).min(text.len().max(start + 1)));
        }
    }
    let line = usize::try_from(loc.line()).ok()?;
    let column = usize::try_from(loc.column()).ok()?;
    line_col_to_offset(text, line, column).map(|o| o..o + 1)
}

/// Byte offset of a 1-based line and column (counted in characters).
fn line_col_to_offset(text: &str, line: usize, column: usize) -> Option<usize> {
    if line == 0 {
        return None;
    }
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let col = column.saturating_sub(1);
            let within = l
                .char_indices()
                .nth(col)
                .map_or(l.trim_end_matches('\n').len(), |(b, _)| b);
            return Some(offset + within);
        }
        offset += l.len();
    }
    Some(text.len())
}

fn span_range(text: &str, loc: &serde_saphyr::Location) -> Option<Range<usize>> {
    location_range(text, loc)
}

#[allow(clippy::too_many_arguments)]
fn into_json(
    file: FileId,
    text: &str,
    node: Spanned<Node>,
    pointer: String,
    key: Option<Loc>,
    spans: &mut Spans,
    depth: usize,
) -> Result<Value, Box<Diagnostic>> {
    let range = span_range(text, &node.referenced).unwrap_or(0..0);
    let here = Loc::new(file, range);
    if depth > MAX_DEPTH {
        return Err(Box::new(
            Diagnostic::error(
                "E0005",
                format!("recipe nests deeper than {MAX_DEPTH} levels"),
            )
            .at(here)
            .hint("recipes are shallow; this looks like generated or corrupted input"),
        ));
    }
    spans.insert(pointer.clone(), NodeSpan { value: here, key });
    Ok(match node.value {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(b),
        Node::Number(n) => Value::Number(n),
        Node::String(s) => Value::String(s),
        Node::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                out.push(into_json(
                    file,
                    text,
                    item,
                    format!("{pointer}/{i}"),
                    None,
                    spans,
                    depth + 1,
                )?);
            }
            Value::Array(out)
        }
        Node::Map(entries) => {
            let mut out = Map::new();
            for (k, v) in entries {
                let key_range = span_range(text, &k.referenced).unwrap_or(0..0);
                let key_loc = Loc::new(file, key_range);
                let child = format!("{pointer}/{}", escape_segment(&k.value));
                let value = into_json(file, text, v, child, Some(key_loc), spans, depth + 1)?;
                out.insert(k.value, value);
            }
            Value::Object(out)
        }
    })
}

/// A YAML node as serde hands it to us, with spans on every child.
enum Node {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        i64::try_from(v)
            .map(|v| Node::Number(v.into()))
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        u64::try_from(v)
            .map(|v| Node::Number(v.into()))
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        // JSON has no NaN or infinity; a recipe has no use for them either.
        Number::from_f64(v)
            .map(Node::Number)
            .ok_or_else(|| E::custom("`.nan` and `.inf` are not allowed in recipes"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyString>>()? {
            let value = map.next_value::<Spanned<Node>>()?;
            entries.push((
                Spanned::new(key.value.0, key.referenced, key.defined),
                value,
            ));
        }
        Ok(Node::Map(entries))
    }
}

/// Mapping keys: recipes only use string keys, but YAML allows `1:` or `true:`; accept
/// scalars and spell them as strings so the schema can report them as unknown keys.
struct KeyString(String);

impl<'de> Deserialize<'de> for KeyString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<KeyString, E> {
                Ok(KeyString(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<KeyString, E> {
                Ok(KeyString("null".to_string()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Document {
        parse(FileId(0), text.as_bytes()).expect("parses")
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let text = "version: 1\nmodel:\n  keras: m.keras\nlist: [a, b]\n";
        let d = doc(text);
        let keras = d.spans.get("/model/keras").unwrap();
        assert_eq!(&text[keras.value.range()], "m.keras");
        assert_eq!(&text[keras.key.unwrap().range()], "keras");
        let b = d.spans.get("/list/1").unwrap();
        assert_eq!(&text[b.value.range()], "b");
    }

    #[test]
    fn yaml_1_2_scalars() {
        let d = doc("a: no\nb: 0x10\nc: 1.5\nd: ~\ne: true\n");
        assert_eq!(d.value["a"], "no");
        assert_eq!(d.value["c"], 1.5);
        assert!(d.value["d"].is_null());
        assert_eq!(d.value["e"], true);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse(FileId(0), b"a: 1\na: 2\n").unwrap_err();
        assert!(err.message.contains("duplicate"), "{}", err.message);
    }

    #[test]
    fn nearest_falls_back_to_ancestor() {
        let d = doc("model:\n  keras: x\n");
        assert!(d.spans.nearest("/model/keras/deeper/still").is_some());
    }
}
