//! The fast reader: block-style YAML as Kubernetes manifests are written.
//!
//! It understands block mappings and sequences (including `- key: value` items and sequences
//! at their key's indentation), plain scalars, one-line quoted scalars, block scalars (`|`,
//! `>`, with `-`/`+` chomping) and one-line flow collections (`[a, "b"]`, `{a: 1}`). Anything
//! else — and anything it is not sure about — makes it give up ([`Bail`]) so that the caller
//! reads the document with serde_yaml instead. It never guesses: a document it accepts means
//! what serde_yaml would read.

use std::borrow::Cow;
use std::collections::HashSet;

use super::{Key, Node, Scalar, unquote};

/// The document is outside the fast reader's subset (or malformed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bail;

type Result<T> = std::result::Result<T, Bail>;

/// How deeply collections may nest before the fast reader gives up.
const MAX_DEPTH: usize = 100;

/// Reads one document (no `---` lines): `None` when it holds only blank lines and comments.
pub(crate) fn parse(text: &str) -> Result<Option<Node<'_>>> {
    let mut parser = Parser::new(text)?;
    let Some((indent, _)) = parser.next_content()? else {
        return Ok(None);
    };
    let node = parser.block(indent, -1, 0)?;
    if parser.next_content()?.is_some() {
        return Err(Bail);
    }
    Ok(Some(node))
}

struct Parser<'a> {
    lines: Vec<&'a str>,
    /// Whether the last line ends with a newline.
    final_newline: bool,
    /// The current line.
    at: usize,
}

fn indent_of(line: &str) -> usize {
    line.bytes().take_while(|&b| b == b' ').count()
}

/// `- ` (or a lone `-`) starts a sequence entry.
fn is_entry(text: &str) -> bool {
    let b = text.as_bytes();
    b.first() == Some(&b'-') && (b.len() == 1 || b[1] == b' ')
}

/// What is left after a scalar or flow collection must be blanks or a comment.
fn check_trailing(after: &str) -> Result<()> {
    let trimmed = after.trim_start_matches([' ', '\t']);
    if trimmed.is_empty() || (trimmed.starts_with('#') && trimmed.len() < after.len()) {
        Ok(())
    } else {
        Err(Bail)
    }
}

/// The quoted scalar at the start of `text` (`"…"` or `'…'`, on this line) and what follows.
fn quoted(text: &str) -> Result<(&str, &str)> {
    let b = text.as_bytes();
    let quote = b[0];
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' if quote == b'"' => i += 2,
            c if c == quote => {
                if quote == b'\'' && b.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    continue;
                }
                return Ok((&text[..=i], &text[i + 1..]));
            }
            _ => i += 1,
        }
    }
    Err(Bail)
}

/// A quoted key or scalar as a [`Key`] (its text checked by unquoting).
fn quoted_key(raw: &str) -> Result<Key<'_>> {
    let text = unquote(raw).ok_or(Bail)?;
    Ok(Key {
        text,
        raw: Some(Cow::Borrowed(raw)),
    })
}

/// Splits `text` into a key and the rest after its `:` when it is a mapping entry.
fn split_key(text: &str) -> Result<Option<(Key<'_>, &str)>> {
    if is_entry(text) {
        return Ok(None);
    }
    let b = text.as_bytes();
    match b.first() {
        None => return Ok(None),
        Some(b'"' | b'\'') => {
            let (raw, after) = quoted(text)?;
            let after_blanks = after.trim_start_matches(' ');
            return match after_blanks.strip_prefix(':') {
                Some(rest) if rest.is_empty() || rest.starts_with(' ') => {
                    Ok(Some((quoted_key(raw)?, rest)))
                }
                Some(_) => Err(Bail),
                None => Ok(None),
            };
        }
        // Flow keys, complex keys, anchors, tags, aliases: not keys here; the value reader
        // gives up on them.
        Some(
            b'[' | b'{' | b'?' | b'&' | b'*' | b'!' | b'|' | b'>' | b'%' | b'@' | b'`' | b'#'
            | b',' | b']' | b'}',
        ) => return Ok(None),
        Some(_) => {}
    }
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b':' => match b.get(i + 1) {
                None | Some(b' ') => {
                    let key = text[..i].trim_end_matches(' ');
                    if key.is_empty()
                        || key == "<<"
                        || key.contains('\t')
                        || key.starts_with("---")
                        || key.starts_with("...")
                    {
                        return Err(Bail);
                    }
                    return Ok(Some((
                        Key {
                            text: Cow::Borrowed(key),
                            raw: None,
                        },
                        &text[i + 1..],
                    )));
                }
                Some(b'\t') => return Err(Bail),
                Some(_) => {}
            },
            b'#' if i > 0 && matches!(b[i - 1], b' ' | b'\t') => return Ok(None),
            _ => {}
        }
        i += 1;
    }
    Ok(None)
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Result<Parser<'a>> {
        let mut lines = Vec::with_capacity(text.len() / 24 + 1);
        // A final newline ends the last line; it does not start another.
        let final_newline = text.ends_with('\n');
        let text = text.strip_suffix('\n').unwrap_or(text);
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.contains('\r') {
                return Err(Bail);
            }
            lines.push(line);
        }
        Ok(Parser {
            lines,
            final_newline,
            at: 0,
        })
    }

    /// The next line with content (not consumed): its indentation and the line. Skips blank
    /// and comment lines; gives up on a tab in indentation.
    fn next_content(&mut self) -> Result<Option<(usize, &'a str)>> {
        while let Some(&line) = self.lines.get(self.at) {
            let indent = indent_of(line);
            let rest = &line[indent..];
            let trimmed = rest.trim_start_matches([' ', '\t']);
            // Tabs in indentation (even of blank lines) are left to serde_yaml, which is strict
            // about them.
            if trimmed.len() < rest.len() {
                return Err(Bail);
            }
            if trimmed.is_empty() || trimmed.starts_with('#') {
                self.at += 1;
                continue;
            }
            return Ok(Some((indent, line)));
        }
        Ok(None)
    }

    /// The node whose first line (the current one) has content at column `indent`, inside a
    /// parent at column `parent`.
    fn block(&mut self, indent: usize, parent: isize, depth: usize) -> Result<Node<'a>> {
        if depth > MAX_DEPTH {
            return Err(Bail);
        }
        let line = self.lines[self.at];
        let text = &line[indent..];
        if is_entry(text) {
            self.sequence(indent, depth)
        } else if split_key(text)?.is_some() {
            self.mapping(indent, false, depth)
        } else {
            self.value(text, parent, depth)
        }
    }

    fn sequence(&mut self, indent: usize, depth: usize) -> Result<Node<'a>> {
        let mut items = Vec::new();
        while let Some((n, line)) = self.next_content()? {
            if n < indent {
                break;
            }
            if n > indent {
                return Err(Bail);
            }
            let text = &line[indent..];
            if !is_entry(text) {
                break;
            }
            let after_dash = &text[1..];
            let spaces = indent_of(after_dash);
            let rest = &after_dash[spaces..];
            if rest.is_empty() || rest.starts_with('#') {
                self.at += 1;
                let item = match self.next_content()? {
                    Some((m, _)) if m > indent => self.block(m, indent as isize, depth + 1)?,
                    _ => Node::null(),
                };
                items.push(item);
            } else if rest.starts_with('\t') || is_entry(rest) {
                return Err(Bail);
            } else if split_key(rest)?.is_some() {
                items.push(self.mapping(indent + 1 + spaces, true, depth + 1)?);
            } else {
                items.push(self.value(rest, indent as isize, depth + 1)?);
            }
        }
        Ok(Node::Seq(items))
    }

    /// A mapping whose keys are at column `indent`. `inline_first`: the first key follows a
    /// `- ` on the current line.
    fn mapping(&mut self, indent: usize, inline_first: bool, depth: usize) -> Result<Node<'a>> {
        if depth > MAX_DEPTH {
            return Err(Bail);
        }
        let mut entries: Vec<(Key<'a>, Node<'a>)> = Vec::new();
        let mut seen: Option<HashSet<String>> = None;
        let mut first = inline_first;
        loop {
            let text = if first {
                first = false;
                &self.lines[self.at][indent..]
            } else {
                let Some((n, line)) = self.next_content()? else {
                    break;
                };
                if n < indent {
                    break;
                }
                if n > indent {
                    return Err(Bail);
                }
                &line[indent..]
            };
            let Some((key, rest)) = split_key(text)? else {
                // A `- ` here, a scalar, or something the fast reader does not know.
                return Err(Bail);
            };
            let duplicate = match &mut seen {
                Some(seen) => !seen.insert(key.text.to_string()),
                None => entries.iter().any(|(k, _)| k.text == key.text),
            };
            if duplicate {
                return Err(Bail);
            }
            if seen.is_none() && entries.len() >= 32 {
                // Large mappings (ConfigMap data) are checked with a set.
                let mut set: HashSet<String> =
                    entries.iter().map(|(k, _)| k.text.to_string()).collect();
                set.insert(key.text.to_string());
                seen = Some(set);
            }
            let value = self.value_of_key(rest, indent, depth)?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }

    /// The value after `key:` on the current line (`rest`), or on the lines below.
    fn value_of_key(&mut self, rest: &'a str, indent: usize, depth: usize) -> Result<Node<'a>> {
        let rest = rest.trim_start_matches(' ');
        if !(rest.is_empty() || rest.starts_with('#')) {
            return self.value(rest, indent as isize, depth + 1);
        }
        self.at += 1;
        match self.next_content()? {
            Some((m, _)) if m > indent => self.block(m, indent as isize, depth + 1),
            Some((m, line)) if m == indent && is_entry(&line[m..]) => self.sequence(m, depth + 1),
            _ => Ok(Node::null()),
        }
    }

    /// A value written on the current line (`text`), in a parent at column `parent`; consumes
    /// the line (and a block scalar's lines).
    fn value(&mut self, text: &'a str, parent: isize, depth: usize) -> Result<Node<'a>> {
        let b = text.as_bytes();
        let next = b.get(1).copied();
        let node = match b[0] {
            b'|' | b'>' => return self.block_scalar(text, parent),
            b'"' | b'\'' => {
                let (raw, after) = quoted(text)?;
                check_trailing(after)?;
                if unquote(raw).is_none() {
                    return Err(Bail);
                }
                Node::Scalar(Scalar::Quoted(Cow::Borrowed(raw)))
            }
            b'[' | b'{' => {
                let mut flow = Flow {
                    text,
                    bytes: b,
                    at: 0,
                };
                let node = flow.node(depth)?;
                check_trailing(&text[flow.at..])?;
                node
            }
            b'&' | b'*' | b'!' | b'%' | b'@' | b'`' | b',' | b']' | b'}' | b'#' | b'\t' => {
                return Err(Bail);
            }
            b'?' | b':' => return Err(Bail),
            b'-' if matches!(next, None | Some(b' ' | b'\t')) => return Err(Bail),
            _ => {
                let end = comment_start(b).unwrap_or(b.len());
                let plain = text[..end].trim_end_matches([' ', '\t']);
                if plain.contains(": ") || plain.contains(":\t") || plain.ends_with(':') {
                    return Err(Bail);
                }
                Node::Scalar(Scalar::Plain(Cow::Borrowed(plain)))
            }
        };
        self.at += 1;
        // A more indented line after a one-line value continues it (or is an error).
        if let Some((n, _)) = self.next_content()? {
            if n as isize > parent {
                return Err(Bail);
            }
        }
        Ok(node)
    }

    fn block_scalar(&mut self, text: &'a str, parent: isize) -> Result<Node<'a>> {
        let header_len = text
            .bytes()
            .position(|b| b == b' ' || b == b'\t')
            .unwrap_or(text.len());
        let header = &text[..header_len];
        if !matches!(header, "|" | "|-" | "|+" | ">" | ">-" | ">+") {
            return Err(Bail);
        }
        check_trailing(&text[header_len..])?;
        self.at += 1;
        let start = self.at;
        let mut content_indent: Option<usize> = None;
        let mut leading_blank = 0;
        while let Some(&line) = self.lines.get(self.at) {
            let n = indent_of(line);
            if n == line.len() {
                if content_indent.is_none() {
                    leading_blank = leading_blank.max(n);
                }
                self.at += 1;
                continue;
            }
            match content_indent {
                None => {
                    if n as isize <= parent {
                        break;
                    }
                    if leading_blank > n || line.as_bytes()[n] == b'\t' {
                        return Err(Bail);
                    }
                    content_indent = Some(n);
                }
                Some(c) if n < c => break,
                Some(_) => {}
            }
            self.at += 1;
        }
        // A block scalar that ends the text without a newline has no final line break, which
        // the line model here cannot express.
        if self.at == self.lines.len() && !self.final_newline {
            return Err(Bail);
        }
        // Blank lines after the last content line only matter for `+` (keep) chomping.
        let mut end = self.at;
        if let Some(indent) = content_indent {
            while end > start {
                let blank = self.lines[end - 1];
                // A line of spaces deeper than the content is content (spaces), not blank.
                if indent_of(blank) != blank.len() || blank.len() > indent {
                    break;
                }
                end -= 1;
            }
        }
        // Each line followed by a newline.
        let mut content = String::new();
        match content_indent {
            None => {
                if header.ends_with('+') {
                    content = "\n".repeat(self.at - start);
                }
            }
            Some(indent) => {
                for line in &self.lines[start..end] {
                    if line.len() > indent {
                        content.push_str(&line[indent..]);
                    }
                    content.push('\n');
                }
                if header.ends_with('+') {
                    for _ in end..self.at {
                        content.push('\n');
                    }
                }
            }
        }
        Ok(Node::Scalar(Scalar::Block {
            header: Cow::Borrowed(header),
            text: content,
        }))
    }
}

/// Where a ` #` comment starts on a line of a plain scalar.
fn comment_start(b: &[u8]) -> Option<usize> {
    (1..b.len()).find(|&i| b[i] == b'#' && matches!(b[i - 1], b' ' | b'\t'))
}

/// A one-line flow collection.
struct Flow<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Flow<'a> {
    fn blanks(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn node(&mut self, depth: usize) -> Result<Node<'a>> {
        if depth > MAX_DEPTH {
            return Err(Bail);
        }
        self.blanks();
        match self.peek().ok_or(Bail)? {
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                loop {
                    self.blanks();
                    if self.peek() == Some(b']') {
                        self.at += 1;
                        break;
                    }
                    items.push(self.node(depth + 1)?);
                    self.blanks();
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            break;
                        }
                        _ => return Err(Bail),
                    }
                }
                Ok(Node::Seq(items))
            }
            b'{' => {
                self.at += 1;
                let mut entries: Vec<(Key<'a>, Node<'a>)> = Vec::new();
                loop {
                    self.blanks();
                    if self.peek() == Some(b'}') {
                        self.at += 1;
                        break;
                    }
                    let key = self.key()?;
                    if key.text == "<<" || entries.iter().any(|(k, _)| k.text == key.text) {
                        return Err(Bail);
                    }
                    self.blanks();
                    let value = match self.peek() {
                        Some(b',' | b'}') => Node::null(),
                        _ => self.node(depth + 1)?,
                    };
                    entries.push((key, value));
                    self.blanks();
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            break;
                        }
                        _ => return Err(Bail),
                    }
                }
                Ok(Node::Map(entries))
            }
            b'"' | b'\'' => {
                let text = self.text;
                let (raw, _) = quoted(&text[self.at..])?;
                self.at += raw.len();
                if unquote(raw).is_none() {
                    return Err(Bail);
                }
                Ok(Node::Scalar(Scalar::Quoted(Cow::Borrowed(raw))))
            }
            _ => {
                let plain = self.plain()?;
                Ok(Node::Scalar(Scalar::Plain(Cow::Borrowed(plain))))
            }
        }
    }

    /// A key in a flow mapping, and its `:`.
    fn key(&mut self) -> Result<Key<'a>> {
        let key = match self.peek().ok_or(Bail)? {
            b'"' | b'\'' => {
                let text = self.text;
                let (raw, _) = quoted(&text[self.at..])?;
                self.at += raw.len();
                quoted_key(raw)?
            }
            _ => Key {
                text: Cow::Borrowed(self.plain()?),
                raw: None,
            },
        };
        self.blanks();
        if self.peek() != Some(b':') {
            return Err(Bail);
        }
        self.at += 1;
        Ok(key)
    }

    /// A plain scalar inside a flow collection.
    fn plain(&mut self) -> Result<&'a str> {
        let start = self.at;
        let b = self.bytes;
        match b.get(start) {
            None => return Err(Bail),
            Some(
                b'&' | b'*' | b'!' | b'?' | b'|' | b'>' | b'%' | b'@' | b'`' | b'#' | b',' | b'['
                | b']' | b'{' | b'}' | b'"' | b'\'',
            ) => return Err(Bail),
            Some(b'-') if matches!(b.get(start + 1), None | Some(b' ' | b'\t')) => {
                return Err(Bail);
            }
            Some(b':') => return Err(Bail),
            Some(_) => {}
        }
        let mut i = start;
        while i < b.len() {
            match b[i] {
                b',' | b'[' | b']' | b'{' | b'}' => break,
                b':' if matches!(
                    b.get(i + 1),
                    None | Some(b' ' | b'\t' | b',' | b'[' | b']' | b'{' | b'}')
                ) =>
                {
                    break;
                }
                b'#' if i > start && matches!(b[i - 1], b' ' | b'\t') => return Err(Bail),
                _ => i += 1,
            }
        }
        self.at = i;
        let plain = self.text[start..i].trim_end_matches([' ', '\t']);
        if plain.is_empty() || plain.contains('\t') {
            return Err(Bail);
        }
        Ok(plain)
    }
}
