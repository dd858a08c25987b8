//! Finds where a field stands in a block-style YAML document, for messages about values that
//! only exist after profiles were applied (serde knows no positions there).
//!
//! Best effort by design: it reads indentation, not YAML, and answers `None` when unsure
//! (flow style, anchors); callers then point at the document instead.

use crate::document::Document;
use crate::error::Location;

/// One step of a field path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    /// A mapping key.
    Key(&'a str),
    /// A sequence index.
    Index(usize),
}

/// The steps of a dotted field path (`a.b[0].c`), for locating it in the file. Map keys
/// that contain dots are not told apart; locating is best effort.
pub(crate) fn field_steps(field: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    for part in field.split('.') {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            steps.push(Step::Key(&rest[..open]));
            rest = &rest[open..];
            while let Some(close) = rest.find(']') {
                if let Ok(index) = rest[1..close].parse() {
                    steps.push(Step::Index(index));
                }
                rest = &rest[close + 1..];
                if !rest.starts_with('[') {
                    break;
                }
            }
        } else {
            steps.push(Step::Key(rest));
        }
    }
    steps
}

/// Where `path` stands in `document`, or the document's start when it cannot tell.
pub(crate) fn locate(document: &Document, path: &[Step<'_>]) -> Location {
    locate_in(&document.file, &document.text, document.index, path)
}

/// Where `path` stands in the `index`-th document of `file`, whose text is `text`.
pub(crate) fn locate_in(
    file: &std::path::Path,
    text: &str,
    index: usize,
    path: &[Step<'_>],
) -> Location {
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .filter(|&i| i <= text.len())
        .collect();
    let lines: Vec<&str> = text.split('\n').collect();
    let (start, end) = document_lines(&lines, index);
    let found = find(&lines, start, end, -1, path).unwrap_or((start, 0));
    let (line, column) = found;
    Location {
        file: file.to_path_buf(),
        line: line + 1,
        column: column + 1,
        offset: line_starts.get(line).copied().unwrap_or(0) + column,
    }
}

fn is_content(line: &str) -> bool {
    let trimmed = line.trim_start();
    !trimmed.is_empty() && !trimmed.starts_with('#')
}

fn is_separator(line: &str) -> bool {
    line == "---"
        || line.starts_with("--- ")
        || line.starts_with("---\t")
        || line.starts_with("---#")
}

/// The line range of the `index`-th non-empty document.
fn document_lines(lines: &[&str], index: usize) -> (usize, usize) {
    let mut segments = Vec::new();
    let mut start = 0;
    for (i, line) in lines.iter().enumerate() {
        if is_separator(line.trim_end()) {
            segments.push((start, i));
            start = i + 1;
        }
    }
    segments.push((start, lines.len()));
    segments
        .into_iter()
        .filter(|&(s, e)| lines[s..e].iter().any(|l| is_content(l)))
        .nth(index)
        .unwrap_or((0, lines.len()))
}

/// Column where a line's content starts, after any `- ` sequence markers, and that content.
fn content_start(line: &str) -> (usize, &str) {
    let mut column = line.len() - line.trim_start().len();
    let mut rest = line.trim_start();
    while let Some(stripped) = rest.strip_prefix("- ") {
        let trimmed = stripped.trim_start();
        column += rest.len() - trimmed.len();
        rest = trimmed;
    }
    (column, rest)
}

fn find(
    lines: &[&str],
    start: usize,
    end: usize,
    parent: isize,
    path: &[Step<'_>],
) -> Option<(usize, usize)> {
    let Some((step, rest)) = path.split_first() else {
        return Some((start.saturating_sub(1), 0));
    };
    match *step {
        Step::Key(key) => {
            for i in start..end {
                let line = lines[i];
                if !is_content(line) {
                    continue;
                }
                let indent = line.len() - line.trim_start().len();
                let (column, content) = content_start(line);
                if (column as isize) <= parent && (indent as isize) <= parent {
                    return None;
                }
                let matches = content
                    .strip_prefix(key)
                    .or_else(|| content.strip_prefix(&format!("\"{key}\"")))
                    .is_some_and(|after| after.starts_with(':'));
                if matches && column as isize > parent {
                    if rest.is_empty() {
                        return Some((i, column));
                    }
                    let block_end = block_end(lines, i + 1, end, column);
                    return find(lines, i + 1, block_end, column as isize, rest);
                }
            }
            None
        }
        Step::Index(wanted) => {
            let mut seen = 0;
            let mut item_indent = None;
            for i in start..end {
                let line = lines[i];
                if !is_content(line) {
                    continue;
                }
                let indent = line.len() - line.trim_start().len();
                if line.trim_start().starts_with("- ") || line.trim_start() == "-" {
                    let item = *item_indent.get_or_insert(indent);
                    if indent != item {
                        continue;
                    }
                    if seen == wanted {
                        let (column, _) = content_start(line);
                        if rest.is_empty() {
                            return Some((i, indent));
                        }
                        // The item's own keys start on this line, at `column`.
                        let block_end = block_end(lines, i + 1, end, indent);
                        return find(lines, i, block_end, column as isize - 1, rest);
                    }
                    seen += 1;
                }
            }
            None
        }
    }
}

/// First line at or after `from` whose indentation is at most `indent` (the end of a block).
fn block_end(lines: &[&str], from: usize, end: usize, indent: usize) -> usize {
    (from..end)
        .find(|&i| {
            let line = lines[i];
            is_content(line) && {
                let own = line.len() - line.trim_start().len();
                own < indent || (own == indent && !line.trim_start().starts_with("- "))
            }
        })
        .unwrap_or(end)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::document::parse_documents;
    use std::path::Path;

    const TEXT: &str = "apiVersion: skaffold/v4\nkind: Config\nbuild:\n  artifacts:\n  - image: a\n    docker:\n      dockerfile: D\n  - image: b\n    custom:\n      buildCommand: x\ndeploy:\n  kubectl:\n    manifests:\n    - k8s/*.yaml\n---\napiVersion: skaffold/v4\nkind: Config\nmetadata:\n  name: two\n";

    fn at(doc: usize, path: &[Step<'_>]) -> (usize, usize) {
        let docs = parse_documents(Path::new("s.yaml"), TEXT).unwrap();
        let l = locate(&docs[doc], path);
        (l.line, l.column)
    }

    #[test]
    fn finds_keys_and_items() {
        use Step::*;
        assert_eq!(at(0, &[Key("build"), Key("artifacts"), Index(1)]), (8, 3));
        assert_eq!(
            at(
                0,
                &[Key("build"), Key("artifacts"), Index(1), Key("custom")]
            ),
            (9, 5)
        );
        assert_eq!(
            at(
                0,
                &[
                    Key("build"),
                    Key("artifacts"),
                    Index(0),
                    Key("docker"),
                    Key("dockerfile")
                ]
            ),
            (7, 7)
        );
        assert_eq!(
            at(0, &[Key("deploy"), Key("kubectl"), Key("manifests")]),
            (13, 5)
        );
        assert_eq!(at(1, &[Key("metadata"), Key("name")]), (19, 3));
    }

    #[test]
    fn unknown_paths_point_at_the_document() {
        assert_eq!(at(1, &[Step::Key("build")]), (16, 1));
    }
}
