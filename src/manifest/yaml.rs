//! The only place that parses YAML and JSON text: documents are split on `---` lines
//! (so every document knows its starting line) and each is decoded straight into a
//! `serde_json::Value` under a budget of nodes and depth.
//!
//! The budget is what stops alias bombs ("billion laughs"): serde_yaml expands aliases
//! as it replays events, and every expanded node is counted here, so expansion stops as
//! soon as the budget is spent instead of after memory is. Must not validate Kubernetes
//! semantics: that is `manifest`'s job.
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::Cell;
use std::fmt;

/// Maximum nesting of sequences/mappings in one document.
pub const MAX_DEPTH: usize = 100;
/// Nodes every file may hold regardless of its size (small files with a few aliases).
pub const BASE_NODES: usize = 10_000;

/// The node budget of a file of `bytes` bytes: without aliases, a file cannot hold more
/// than one value per two bytes, so a legitimate file always fits.
pub fn node_budget(bytes: usize) -> usize {
    BASE_NODES + bytes / 2
}

/// A node budget shared by all documents of one file.
#[derive(Debug)]
pub struct Budget {
    used: Cell<usize>,
    max: usize,
}

impl Budget {
    pub fn new(max: usize) -> Budget {
        Budget {
            used: Cell::new(0),
            max,
        }
    }

    fn spend<E: de::Error>(&self) -> Result<(), E> {
        let used = self.used.get() + 1;
        self.used.set(used);
        if used > self.max {
            return Err(E::custom(format!(
                "document expands to more than {} nodes (alias bomb?): refused",
                self.max
            )));
        }
        Ok(())
    }
}

/// One YAML document of a file: its 0-based index, the 1-based line where its content
/// starts, and its text (with the `---` marker blanked so line numbers stay true).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDocument {
    pub index: usize,
    pub line: usize,
    /// Line of the chunk's first line (the `---` line, or 1).
    pub first_line: usize,
    pub text: String,
}

/// Splits a YAML stream into documents on lines that start with `---`. YAML forbids a
/// document marker at column 0 inside content, so this is exact for valid YAML.
pub fn split_documents(text: &str) -> Vec<RawDocument> {
    // Most files hold one document: no marker, no `...`, `\n` line ends. Its text is the
    // file's (with a final newline), without rebuilding it line by line.
    let single = !text.contains('\r')
        && !text
            .lines()
            .any(|line| line.starts_with("---") || line == "...");
    if single {
        let mut whole = String::with_capacity(text.len() + 1);
        whole.push_str(text);
        if !whole.is_empty() && !whole.ends_with('\n') {
            whole.push('\n');
        }
        let offset = whole.lines().position(|l| !is_blank_line(l)).unwrap_or(0);
        return vec![RawDocument {
            index: 0,
            line: 1 + offset,
            first_line: 1,
            text: whole,
        }];
    }
    split_lines(text)
}

/// [`split_documents`] line by line (any number of documents, any line ends).
fn split_lines(text: &str) -> Vec<RawDocument> {
    let mut chunks: Vec<(usize, String)> = vec![(1, String::new())];
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        let is_marker = line.starts_with("---")
            && line[3..]
                .chars()
                .next()
                .is_none_or(|c| c == ' ' || c == '\t');
        if is_marker {
            // Keep anything after the marker (`--- {a: 1}`) at its column.
            chunks.push((number, format!("   {}\n", &line[3..])));
        } else if line == "..." {
            if let Some(last) = chunks.last_mut() {
                last.1.push('\n');
            }
        } else if let Some(last) = chunks.last_mut() {
            last.1.push_str(line);
            last.1.push('\n');
        }
    }
    // A stream that opens with `---` (after comments) has no document before it.
    if chunks.len() > 1 && chunks[0].1.lines().all(is_blank_line) {
        chunks.remove(0);
    }
    chunks
        .into_iter()
        .enumerate()
        .map(|(index, (first_line, text))| {
            let offset = text.lines().position(|l| !is_blank_line(l)).unwrap_or(0);
            RawDocument {
                index,
                line: first_line + offset,
                first_line,
                text,
            }
        })
        .collect()
}

fn is_blank_line(line: &str) -> bool {
    let trimmed = line.trim();
    trimmed.is_empty() || trimmed.starts_with('#')
}

/// A parse failure: the 1-based line within the file when known, and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: Option<usize>,
    pub message: String,
}

/// Decodes one YAML document; `Ok(None)` for an empty document.
pub fn parse_yaml(doc: &RawDocument, budget: &Budget) -> Result<Option<Value>, ParseError> {
    if doc.text.lines().all(is_blank_line) {
        return Ok(None);
    }
    let deserializer = serde_yaml::Deserializer::from_str(&doc.text);
    let seed = NodeSeed { budget, depth: 0 };
    match seed.deserialize(deserializer) {
        Ok(Value::Null) => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(err) => {
            // An error at end of input points one past the last line; keep it in the document.
            let last = doc.first_line + doc.text.lines().count().saturating_sub(1);
            let line = err
                .location()
                .map(|l| (doc.first_line + l.line().saturating_sub(1)).min(last));
            let message = shorten(&strip_location(&err.to_string()));
            Err(ParseError { line, message })
        }
    }
}

/// Decodes a JSON file (one document).
pub fn parse_json(bytes: &[u8], budget: &Budget) -> Result<Option<Value>, ParseError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let seed = NodeSeed { budget, depth: 0 };
    let value = seed
        .deserialize(&mut deserializer)
        .and_then(|v| deserializer.end().map(|()| v));
    match value {
        Ok(Value::Null) => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(err) => Err(ParseError {
            line: Some(err.line().max(1)),
            message: shorten(&strip_location(&err.to_string())),
        }),
    }
}

/// Renders a value as YAML (block style, keys in their stored order), for diffs.
pub fn render(value: &Value) -> String {
    serde_yaml::to_string(value)
        .unwrap_or_else(|err| format!("# cannot render as YAML: {err}\n{value}\n"))
}

/// serde error texts end in " at line N column M"; the line is reported separately.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

/// Longest parse-error message kept, in bytes (a safety net: keys and paths come from the
/// input, so an error could otherwise be as long as the file).
pub const MAX_MESSAGE: usize = 600;
/// Path segments kept at each end when an error's path is long.
const PATH_KEEP: usize = 3;
/// Longest key printed within a shortened path, in characters.
const MAX_SEGMENT: usize = 40;

/// Keeps a parse-error message short. serde_yaml prefixes a message with the path of the
/// failing node (`data.x[0][0]…: reason`), one segment per nesting level; a long path keeps
/// its first and last [`PATH_KEEP`] segments around `…(N levels)…`. Any message still over
/// [`MAX_MESSAGE`] bytes keeps its start and end.
fn shorten(message: &str) -> String {
    let short = match split_path(message) {
        Some((segments, rest)) if segments.len() > 2 * PATH_KEEP + 1 => {
            let cut = |s: &str| -> String {
                if s.chars().count() > MAX_SEGMENT {
                    let head: String = s.chars().take(MAX_SEGMENT).collect();
                    format!("{head}…")
                } else {
                    s.to_string()
                }
            };
            let mut out = String::new();
            for s in &segments[..PATH_KEEP] {
                out.push_str(&cut(s));
            }
            let hidden = segments.len() - 2 * PATH_KEEP;
            out.push_str(&format!("…({hidden} levels)…"));
            for s in &segments[segments.len() - PATH_KEEP..] {
                out.push_str(&cut(s));
            }
            format!("{}{rest}", out.trim_start_matches('.'))
        }
        _ => message.to_string(),
    };
    if short.len() <= MAX_MESSAGE {
        return short;
    }
    let keep = MAX_MESSAGE / 2 - 20;
    let mut head_end = keep;
    while !short.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = short.len() - keep;
    while !short.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    format!(
        "{}…({} bytes)…{}",
        &short[..head_end],
        tail_start - head_end,
        &short[tail_start..]
    )
}

/// Splits serde_yaml's `path: reason` into the path's segments (`key`, `.key`, `[N]`, `?`,
/// each with its separator, so joining them gives the path back) and `: reason`; `None` if
/// the message does not start with a path of at least two segments.
fn split_path(message: &str) -> Option<(Vec<&str>, &str)> {
    let mut segments = Vec::new();
    let mut at = 0;
    let bytes = message.as_bytes();
    while at < bytes.len() {
        if bytes[at..].starts_with(b": ") {
            break;
        }
        let start = at;
        if bytes[at] == b'[' {
            let close = message[at..].find(']')?;
            let digits = &message[at + 1..at + close];
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            at += close + 1;
        } else {
            if bytes[at] == b'.' {
                at += 1;
            }
            // A key runs to the next separator (keys holding `.`, `[` or `: ` are split
            // wrongly, which only changes how the path is shortened).
            while at < bytes.len()
                && bytes[at] != b'.'
                && bytes[at] != b'['
                && !bytes[at..].starts_with(b": ")
            {
                at += 1;
            }
            if at == start + usize::from(bytes[start] == b'.') {
                return None;
            }
        }
        segments.push(&message[start..at]);
    }
    if segments.len() < 2 || !bytes[at..].starts_with(b": ") {
        return None;
    }
    Some((segments, &message[at..]))
}

#[derive(Clone, Copy)]
struct NodeSeed<'b> {
    budget: &'b Budget,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML/JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.budget.spend()?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.budget.spend()?;
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.budget.spend()?;
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.budget.spend()?;
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("NaN and infinite numbers are not valid in a manifest"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.budget.spend()?;
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.budget.spend()?;
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.budget.spend()?;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.budget.spend()?;
        let inner = self.deeper::<A::Error>()?;
        let mut out = Vec::new();
        while let Some(value) = seq.next_element_seed(inner)? {
            out.push(value);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.budget.spend()?;
        let inner = self.deeper::<A::Error>()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if key == "<<" {
                return Err(de::Error::custom("YAML merge keys (<<) are not supported"));
            }
            let value = map.next_value_seed(inner)?;
            match out.entry(key) {
                serde_json::map::Entry::Occupied(e) => {
                    return Err(de::Error::custom(format!("duplicate key {:?}", e.key())));
                }
                serde_json::map::Entry::Vacant(e) => {
                    e.insert(value);
                }
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<Value, A::Error> {
        Err(de::Error::custom(
            "YAML tags (!tag) are not supported in manifests",
        ))
    }
}

impl NodeSeed<'_> {
    fn deeper<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!(
                "nested more than {MAX_DEPTH} levels deep: refused"
            )));
        }
        Ok(NodeSeed {
            budget: self.budget,
            depth: self.depth + 1,
        })
    }
}

/// Mapping keys: scalars become strings (as Kubernetes' YAML-to-JSON conversion does);
/// mappings or sequences as keys are refused.
#[derive(Clone, Copy)]
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = String;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar mapping key")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Err(E::custom("null mapping keys are not supported"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_document_files_split_as_line_by_line() {
        for text in [
            "",
            "a: 1",
            "a: 1\n",
            "# comment\n\na: 1\nb:\n  - x\n",
            "\n\n  \nkind: ConfigMap\n\n",
            "a: |\n  --- not a marker inside a block\n",
            "a: 1\n\n\n",
        ] {
            assert_eq!(split_documents(text), split_lines(text), "{text:?}");
        }
    }

    fn docs(text: &str) -> Vec<(usize, usize)> {
        split_documents(text)
            .iter()
            .map(|d| (d.index, d.line))
            .collect()
    }

    #[test]
    fn splits_on_markers_and_keeps_lines() {
        assert_eq!(docs("a: 1\n---\nb: 2\n"), vec![(0, 1), (1, 3)]);
        assert_eq!(
            docs("# header\n---\na: 1\n---\n\n# c\nb: 2\n"),
            vec![(0, 3), (1, 7)]
        );
        assert_eq!(docs("---\na: 1\n---\n---\nb: 2\n").len(), 3);
        let split = split_documents("--- {a: 1}\n");
        assert_eq!(split.len(), 1);
        let budget = Budget::new(100);
        assert_eq!(
            parse_yaml(&split[0], &budget).unwrap(),
            Some(serde_json::json!({"a": 1}))
        );
    }

    #[test]
    fn error_lines_are_file_lines() {
        let split = split_documents("a: 1\n---\nb: 2\nc: [unclosed\n");
        let err = parse_yaml(&split[1], &Budget::new(100)).unwrap_err();
        assert!(err.line.unwrap() >= 4, "{err:?}");
    }

    #[test]
    fn alias_bomb_is_refused_by_the_budget() {
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n\
                    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n\
                    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n\
                    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
        let split = split_documents(bomb);
        let err = parse_yaml(&split[0], &Budget::new(node_budget(bomb.len()))).unwrap_err();
        assert!(err.message.contains("alias bomb"), "{err:?}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("{}1{}", "[".repeat(150), "]".repeat(150));
        let split = split_documents(&deep);
        assert!(parse_yaml(&split[0], &Budget::new(100_000)).is_err());
        assert!(parse_json(deep.as_bytes(), &Budget::new(100_000)).is_err());
    }

    #[test]
    fn deep_paths_in_errors_are_shortened() {
        let depth = 20_000;
        let deep = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: deep}}\ndata:\n  x: {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let split = split_documents(&deep);
        let err = parse_yaml(&split[0], &Budget::new(node_budget(deep.len()))).unwrap_err();
        assert_eq!(
            err.message,
            format!(
                "data.x[0]…(94 levels)…[0][0][0]: nested more than {MAX_DEPTH} levels deep: refused"
            )
        );
        assert_eq!(err.line, Some(5));
        // Mappings with long keys: segments are cut too.
        let key = "k".repeat(60);
        let mut text = String::new();
        for _ in 0..150 {
            text.push_str(&format!("{{{key}: "));
        }
        text.push('1');
        text.push_str(&"}".repeat(150));
        let split = split_documents(&text);
        let err = parse_yaml(&split[0], &Budget::new(100_000)).unwrap_err();
        assert!(
            err.message.len() < 400,
            "{} bytes: {}",
            err.message.len(),
            err.message
        );
        assert!(err.message.contains("levels)…"), "{}", err.message);
        assert!(
            err.message
                .ends_with(": nested more than 100 levels deep: refused")
        );
    }

    #[test]
    fn shorten_keeps_short_messages_and_caps_long_ones() {
        for m in [
            "did not find expected ',' or ']'",
            "document expands to more than 10371 nodes (alias bomb?): refused",
            "a.b[0].c: duplicate key \"x\"",
            "nested more than 100 levels deep: refused",
        ] {
            assert_eq!(shorten(m), m);
        }
        let long = format!("duplicate key \"{}é\"", "x".repeat(5000));
        let short = shorten(&long);
        assert!(short.len() <= MAX_MESSAGE, "{}", short.len());
        assert!(
            short.starts_with("duplicate key \"xxx") && short.ends_with("xé\""),
            "{short}"
        );
        assert_eq!(
            split_path("a.b[1]?.c: why"),
            Some((vec!["a", ".b", "[1]", "?", ".c"], ": why"))
        );
        assert_eq!(split_path("no path here"), None);
        assert_eq!(split_path("é.ü: x"), Some((vec!["é", ".ü"], ": x")));
    }

    #[test]
    fn duplicate_keys_merge_keys_and_tags_are_refused() {
        for text in [
            "a: 1\na: 2\n",
            "x: &x {a: 1}\ny:\n  <<: *x\n",
            "a: !custom 1\n",
        ] {
            let split = split_documents(text);
            assert!(parse_yaml(&split[0], &Budget::new(100)).is_err(), "{text}");
        }
    }

    #[test]
    fn scalar_keys_become_strings_and_empty_documents_are_none() {
        let split = split_documents("1: a\ntrue: b\n");
        assert_eq!(
            parse_yaml(&split[0], &Budget::new(100)).unwrap(),
            Some(serde_json::json!({"1": "a", "true": "b"}))
        );
        let split = split_documents("# only a comment\n");
        assert_eq!(parse_yaml(&split[0], &Budget::new(100)).unwrap(), None);
        assert_eq!(parse_json(b"null", &Budget::new(100)).unwrap(), None);
    }
}
