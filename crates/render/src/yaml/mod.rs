//! YAML documents as the render stage reads, changes and writes them.
//!
//! Manifests are read into a small tree ([`Node`]) that keeps every scalar exactly as it was
//! written (plain, quoted or block), so re-emitting a document cannot change what a value means
//! — `yes`, `0755` or `1e3` come out the way they went in — and so key order is the input's.
//! Comments and formatting are not kept.
//!
//! Reading is two-tier. [`fast`] handles the block-style YAML that Kubernetes manifests are
//! written in, an order of magnitude faster than a general parser; whenever a document uses
//! anything outside that subset (anchors, tags, multi-line flow or quoted scalars, complex
//! keys, merge keys, tabs in indentation, …) or is malformed, the document is read again with
//! `serde_yaml`, which also produces the error messages. Tests check that both tiers agree.

mod emit;
mod fast;

use std::borrow::Cow;

pub(crate) use emit::emit_document;

/// A YAML node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node<'a> {
    /// A mapping, in input order.
    Map(Vec<(Key<'a>, Node<'a>)>),
    /// A sequence.
    Seq(Vec<Node<'a>>),
    /// A scalar.
    Scalar(Scalar<'a>),
}

/// A mapping key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key<'a> {
    /// The key as a string: quotes removed, escapes resolved.
    pub text: Cow<'a, str>,
    /// How it is written when that differs from `text` (a quoted key).
    pub raw: Option<Cow<'a, str>>,
}

/// A scalar, as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    /// A plain scalar; empty for a value left out (`key:`), which YAML reads as null.
    Plain(Cow<'a, str>),
    /// A one-line quoted scalar, quotes included.
    Quoted(Cow<'a, str>),
    /// A block scalar: its header (`|`, `>-`, …) and its lines, indentation removed, each
    /// followed by `\n`.
    Block {
        /// `|`, `|-`, `|+`, `>`, `>-` or `>+`.
        header: Cow<'a, str>,
        /// The content lines, each followed by a newline.
        text: String,
    },
}

impl<'a> Key<'a> {
    /// A key for `text`, quoted when YAML would read it as something else.
    pub fn new(text: &'a str) -> Key<'a> {
        Key {
            text: Cow::Borrowed(text),
            raw: (!is_safe_plain(text)).then(|| Cow::Owned(double_quoted(text))),
        }
    }

    /// A key for an owned `text`.
    pub fn owned(text: String) -> Key<'a> {
        let raw = (!is_safe_plain(&text)).then(|| Cow::Owned(double_quoted(&text)));
        Key {
            text: Cow::Owned(text),
            raw,
        }
    }

    /// How the key is written.
    pub fn written(&self) -> &str {
        self.raw.as_deref().unwrap_or(&self.text)
    }
}

impl<'a> Scalar<'a> {
    /// A string scalar for `value`: plain when that reads back as the same string in YAML 1.1
    /// and 1.2 alike, double-quoted otherwise.
    pub fn string(value: &'a str) -> Scalar<'a> {
        if is_safe_plain(value) {
            Scalar::Plain(Cow::Borrowed(value))
        } else {
            Scalar::Quoted(Cow::Owned(double_quoted(value)))
        }
    }

    /// [`Scalar::string`] for an owned value.
    pub fn owned(value: String) -> Scalar<'a> {
        if is_safe_plain(&value) {
            Scalar::Plain(Cow::Owned(value))
        } else {
            Scalar::Quoted(Cow::Owned(double_quoted(&value)))
        }
    }

    /// Whether YAML reads it as null.
    pub fn is_null(&self) -> bool {
        matches!(self, Scalar::Plain(s) if is_null_plain(s))
    }

    /// The scalar's text when it is a one-line scalar that is not null: plain scalars as
    /// written (so `8080` gives `"8080"`), quoted ones unquoted.
    pub fn as_str(&self) -> Option<Cow<'_, str>> {
        match self {
            Scalar::Plain(s) if is_null_plain(s) => None,
            Scalar::Plain(s) => Some(Cow::Borrowed(s)),
            Scalar::Quoted(raw) => unquote(raw),
            Scalar::Block { .. } => None,
        }
    }
}

impl<'a> Node<'a> {
    /// A null scalar (`key:`).
    pub fn null() -> Node<'a> {
        Node::Scalar(Scalar::Plain(Cow::Borrowed("")))
    }

    /// The value under `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k.text == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value under `key` in a mapping, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node<'a>> {
        match self {
            Node::Map(entries) => entries
                .iter_mut()
                .find(|(k, _)| k.text == key)
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a one-line, non-null scalar.
    pub fn as_str(&self) -> Option<Cow<'_, str>> {
        match self {
            Node::Scalar(s) => s.as_str(),
            _ => None,
        }
    }

    /// Whether the node is a null scalar.
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Scalar(s) if s.is_null())
    }

    /// What kind of node it is, for messages: "a mapping", "a list", "a string", "null".
    pub fn describe(&self) -> &'static str {
        match self {
            Node::Map(_) => "a mapping",
            Node::Seq(_) => "a list",
            Node::Scalar(s) if s.is_null() => "null",
            Node::Scalar(_) => "a scalar",
        }
    }
}

/// One document of a YAML stream, not parsed yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawDocument<'a> {
    /// Its text, without the `---` marker.
    pub text: &'a str,
    /// 1-based position in the stream, counting empty documents.
    pub index: usize,
    /// 1-based line of the stream where `text` starts.
    pub line: usize,
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    /// 1-based line in the stream, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Splits a stream at its `---` and `...` lines. A `---` line may carry the start of the
/// document (`--- {a: 1}`); a comment after it is dropped.
pub(crate) fn split_documents(text: &str) -> Vec<RawDocument<'_>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut documents = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    let mut index = 1;
    for (line_number, line) in (1..).zip(text.split_inclusive('\n')) {
        let content = line.trim_end_matches(['\n', '\r']);
        let marker = marker_rest(content);
        if let Some(rest) = marker {
            documents.push(RawDocument {
                text: &text[start..offset],
                index,
                line: start_line,
            });
            index += 1;
            let rest_trimmed = rest.trim_start_matches([' ', '\t']);
            if rest_trimmed.is_empty() || rest_trimmed.starts_with('#') {
                start = offset + line.len();
                start_line = line_number + 1;
            } else {
                // The document starts on the marker line, after `---`.
                start = offset + 3;
                start_line = line_number;
            }
        }
        offset += line.len();
    }
    documents.push(RawDocument {
        text: &text[start..],
        index,
        line: start_line,
    });
    // Comments (or directives) before the first `---` are not a document.
    if documents.len() > 1 && !has_content(documents[0].text) {
        documents.remove(0);
        for document in &mut documents {
            document.index -= 1;
        }
    }
    documents
}

/// Whether a document's text holds more than blank lines, comments and directives.
fn has_content(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim_start_matches([' ', '\t']);
        !(line.is_empty() || line.starts_with('#') || line.starts_with('%'))
    })
}

/// What follows a document marker (`---` or `...`) on its line, if the line is one.
fn marker_rest(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("---")
        .or_else(|| line.strip_prefix("..."))?;
    (rest.is_empty() || rest.starts_with([' ', '\t'])).then_some(rest)
}

/// Parses one document: `Ok(None)` when it holds nothing (only comments, or null).
pub(crate) fn parse_document<'a>(
    document: &RawDocument<'a>,
) -> Result<Option<Node<'a>>, YamlError> {
    match fast::parse(document.text) {
        Ok(node) => Ok(node.filter(|n| !n.is_null())),
        Err(fast::Bail) => parse_with_serde(document),
    }
}

/// The general path: serde_yaml, then the tree converted.
fn parse_with_serde(document: &RawDocument<'_>) -> Result<Option<Node<'static>>, YamlError> {
    let mut value: serde_yaml::Value = serde_yaml::from_str(document.text).map_err(|error| {
        let location = error.location();
        let mut message = error.to_string();
        if let Some(at) = &location {
            let suffix = format!(" at line {} column {}", at.line(), at.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_owned();
            } else if let Some(i) = message.find(&format!("{suffix},")) {
                message.replace_range(i..i + suffix.len(), "");
            }
        }
        YamlError {
            line: location.as_ref().map(|l| document.line + l.line() - 1),
            column: location.as_ref().map(serde_yaml::Location::column),
            message,
        }
    })?;
    value.apply_merge().map_err(|error| YamlError {
        line: Some(document.line),
        column: None,
        message: error.to_string(),
    })?;
    if value.is_null() {
        return Ok(None);
    }
    from_value(value).map(Some).map_err(|message| YamlError {
        line: Some(document.line),
        column: None,
        message,
    })
}

/// Converts a serde_yaml tree; fails on what the emitter cannot write back faithfully.
pub(crate) fn from_value(value: serde_yaml::Value) -> Result<Node<'static>, String> {
    use serde_yaml::Value;
    Ok(match value {
        Value::Null => Node::Scalar(Scalar::Plain(Cow::Borrowed("null"))),
        Value::Bool(b) => Node::Scalar(Scalar::Plain(Cow::Owned(b.to_string()))),
        Value::Number(n) => Node::Scalar(Scalar::Plain(Cow::Owned(number_text(&n)))),
        Value::String(s) => Node::Scalar(Scalar::owned(s)),
        Value::Sequence(items) => Node::Seq(
            items
                .into_iter()
                .map(from_value)
                .collect::<Result<_, _>>()?,
        ),
        Value::Mapping(mapping) => {
            let mut entries = Vec::with_capacity(mapping.len());
            for (key, value) in mapping {
                let key = match key {
                    Value::String(s) => Key::owned(s),
                    Value::Bool(b) => plain_key(b.to_string()),
                    Value::Number(n) => plain_key(number_text(&n)),
                    Value::Null => plain_key("null".to_owned()),
                    _ => {
                        return Err(
                            "a mapping key that is a list or a mapping is not supported".into()
                        );
                    }
                };
                entries.push((key, from_value(value)?));
            }
            Node::Map(entries)
        }
        Value::Tagged(tagged) => match tagged.value {
            Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => {
                return Err(format!(
                    "the YAML tag `{}` on a list or mapping is not supported",
                    tagged.tag
                ));
            }
            // The non-specific tag `!` (which serde_yaml spells `!!`) makes a scalar a string:
            // written back as that string, without the tag.
            scalar if matches!(tagged.tag.to_string().as_str(), "!" | "!!") => match scalar {
                Value::String(s) => Node::Scalar(Scalar::owned(s)),
                Value::Number(n) => Node::Scalar(Scalar::owned(number_text(&n))),
                Value::Bool(b) => Node::Scalar(Scalar::owned(b.to_string())),
                Value::Null => Node::Scalar(Scalar::owned(String::new())),
                other => from_value(other)?,
            },
            scalar => match from_value(scalar)? {
                Node::Scalar(Scalar::Plain(s) | Scalar::Quoted(s)) => {
                    Node::Scalar(Scalar::Plain(Cow::Owned(format!("{} {s}", tagged.tag))))
                }
                other => other,
            },
        },
    })
}

fn plain_key(text: String) -> Key<'static> {
    Key {
        text: Cow::Owned(text),
        raw: None,
    }
}

/// A number as YAML writes it (serde_yaml spells infinities and NaN the YAML way).
fn number_text(n: &serde_yaml::Number) -> String {
    if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
        if f.is_nan() {
            return ".nan".into();
        }
        if f.is_infinite() {
            return if f > 0.0 { ".inf" } else { "-.inf" }.into();
        }
        // Written so that YAML 1.1 (a `.` in the mantissa, a signed exponent) and YAML 1.2
        // readers both see a float.
        let text = n.to_string();
        let (mantissa, exponent) = match text.split_once(['e', 'E']) {
            Some((m, e)) => (m, Some(e)),
            None => (text.as_str(), None),
        };
        let mut out = mantissa.to_owned();
        if !out.contains('.') {
            out.push_str(".0");
        }
        if let Some(exponent) = exponent {
            out.push('e');
            if !exponent.starts_with(['+', '-']) {
                out.push('+');
            }
            out.push_str(exponent);
        }
        return out;
    }
    n.to_string()
}

fn is_null_plain(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

/// Whether `s` can be written as a plain scalar and read back as the same string by YAML 1.1
/// (Kubernetes' Go YAML) and YAML 1.2 readers. Deliberately narrow: anything else is quoted.
fn is_safe_plain(s: &str) -> bool {
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else {
        return false;
    };
    // A leading digit is fine only with a `/`, which no YAML number or timestamp has
    // (`127.0.0.1:5000/app:v1`).
    if !(first.is_ascii_alphabetic()
        || first == b'/'
        || first == b'_'
        || (first.is_ascii_digit() && s.contains('/')))
    {
        return false;
    }
    if !bytes
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-' | b'@' | b':'))
    {
        return false;
    }
    if s.ends_with(':') {
        return false;
    }
    !matches!(
        s.to_ascii_lowercase().as_str(),
        "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
    )
}

/// `s` as a YAML double-quoted scalar.
pub(crate) fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            '\u{feff}' => out.push_str("\\uFEFF"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The string a one-line quoted scalar stands for; `None` for a bad escape.
pub(crate) fn unquote(raw: &str) -> Option<Cow<'_, str>> {
    if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        if !inner.contains('\'') {
            return Some(Cow::Borrowed(inner));
        }
        return Some(Cow::Owned(inner.replace("''", "'")));
    }
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escaped = match chars.next()? {
            '0' => '\0',
            'a' => '\u{7}',
            'b' => '\u{8}',
            't' | '\t' => '\t',
            'n' => '\n',
            'v' => '\u{b}',
            'f' => '\u{c}',
            'r' => '\r',
            'e' => '\u{1b}',
            ' ' => ' ',
            '"' => '"',
            '/' => '/',
            '\\' => '\\',
            'N' => '\u{85}',
            '_' => '\u{a0}',
            'L' => '\u{2028}',
            'P' => '\u{2029}',
            kind @ ('x' | 'u' | 'U') => {
                let len = match kind {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let mut code = 0u32;
                for _ in 0..len {
                    code = code * 16 + chars.next()?.to_digit(16)?;
                }
                char::from_u32(code)?
            }
            _ => return None,
        };
        out.push(escaped);
    }
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests;
