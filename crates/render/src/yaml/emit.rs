//! Writes a [`Node`] as block-style YAML: two-space indentation, sequences under a key at the
//! key's indentation (as `kubectl` and Skaffold print them), scalars exactly as they were read.

use super::{Node, Scalar};

const SPACES: &str = "                                                                ";

fn indent(out: &mut String, n: usize) {
    let mut n = n;
    while n > SPACES.len() {
        out.push_str(SPACES);
        n -= SPACES.len();
    }
    out.push_str(&SPACES[..n]);
}

/// `node` as one YAML document (no `---`), ending with a newline.
pub(crate) fn emit_document(node: &Node) -> String {
    let mut out = String::with_capacity(512);
    match node {
        Node::Map(entries) if !entries.is_empty() => mapping(&mut out, entries, 0, false),
        Node::Seq(items) if !items.is_empty() => sequence(&mut out, items, 0),
        other => {
            inline(&mut out, other, 0);
            out.push('\n');
        }
    }
    out
}

/// A value on the line it starts (after `key:` or `-`), for scalars and empty collections;
/// returns `false` for a collection that needs its own lines.
fn inline(out: &mut String, node: &Node, level: usize) -> bool {
    match node {
        Node::Map(entries) if entries.is_empty() => out.push_str("{}"),
        Node::Seq(items) if items.is_empty() => out.push_str("[]"),
        Node::Map(_) | Node::Seq(_) => return false,
        Node::Scalar(Scalar::Plain(s) | Scalar::Quoted(s)) => out.push_str(s),
        Node::Scalar(Scalar::Block { header, text }) => {
            out.push_str(header);
            for line in text.lines() {
                out.push('\n');
                if !line.is_empty() {
                    indent(out, level + 2);
                    out.push_str(line);
                }
            }
        }
    }
    true
}

/// A mapping whose keys are at column `level`; `first_inline`: the first key goes on the
/// current line (after `- `).
fn mapping(out: &mut String, entries: &[(super::Key, Node)], level: usize, first_inline: bool) {
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 || !first_inline {
            indent(out, level);
        }
        out.push_str(key.written());
        out.push(':');
        match value {
            Node::Scalar(Scalar::Plain(s)) if s.is_empty() => out.push('\n'),
            Node::Map(entries) if !entries.is_empty() => {
                out.push('\n');
                mapping(out, entries, level + 2, false);
            }
            Node::Seq(items) if !items.is_empty() => {
                out.push('\n');
                sequence(out, items, level);
            }
            other => {
                out.push(' ');
                inline(out, other, level);
                out.push('\n');
            }
        }
    }
}

/// A sequence whose `-` are at column `level`.
fn sequence(out: &mut String, items: &[Node], level: usize) {
    for item in items {
        indent(out, level);
        out.push('-');
        match item {
            Node::Scalar(Scalar::Plain(s)) if s.is_empty() => out.push('\n'),
            Node::Map(entries) if !entries.is_empty() => {
                out.push(' ');
                mapping(out, entries, level + 2, true);
            }
            Node::Seq(items) if !items.is_empty() => {
                out.push('\n');
                sequence(out, items, level + 2);
            }
            other => {
                out.push(' ');
                inline(out, other, level);
                out.push('\n');
            }
        }
    }
}
