//! JSON Patch ([RFC 6902]) applied to a `serde_yaml::Value` tree.
//!
//! Skaffold profiles carry `patches: [{op, path, value, from}]` that edit the configuration
//! before it is interpreted. Paths are JSON Pointers ([RFC 6901]): `""` is the whole document,
//! `/build/artifacts/0/image` walks mapping keys and sequence indices, `~1` stands for `/` and
//! `~0` for `~` inside a key, and `-` names the position after the last element of a sequence
//! (only meaningful for `add`). Mapping keys are matched as YAML strings; a tagged value
//! (`!tag value`) is looked through when a path descends into it.
//!
//! [`apply`] applies one operation; [`apply_all`] applies a list atomically — if any operation
//! fails the document is left exactly as it was and the index of the failing operation is
//! returned.
//!
//! ```
//! use skiff_config::patch::{apply_all, PatchOp};
//!
//! let mut doc: serde_yaml::Value = serde_yaml::from_str(
//!     "build:\n  artifacts:\n  - image: app\n    context: .\n",
//! )?;
//! let ops = [
//!     PatchOp::from_parts("replace", "/build/artifacts/0/context", None, Some("src".into()))?,
//!     PatchOp::from_parts("add", "/build/artifacts/-", None, Some(serde_yaml::from_str("image: sidecar")?))?,
//! ];
//! apply_all(&mut doc, &ops).map_err(|(_, err)| err)?;
//! assert_eq!(doc["build"]["artifacts"][0]["context"], "src");
//! assert_eq!(doc["build"]["artifacts"][1]["image"], "sidecar");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [RFC 6902]: https://www.rfc-editor.org/rfc/rfc6902
//! [RFC 6901]: https://www.rfc-editor.org/rfc/rfc6901

use serde_yaml::Value;

/// The operation names [`PatchOp::from_parts`] accepts.
pub const OP_NAMES: [&str; 6] = ["add", "remove", "replace", "move", "copy", "test"];

/// One JSON Patch operation. Paths are JSON Pointers as written in the configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOp {
    /// Insert `value` at `path`: set a mapping key, or insert into a sequence (shifting later
    /// elements; `-` appends). Adding at `""` replaces the whole document.
    Add {
        /// Where to add.
        path: String,
        /// What to add.
        value: Value,
    },
    /// Remove the value at `path`, which must exist.
    Remove {
        /// What to remove.
        path: String,
    },
    /// Replace the value at `path`, which must exist.
    Replace {
        /// What to replace.
        path: String,
        /// The new value.
        value: Value,
    },
    /// Remove the value at `from` and add it at `path`.
    Move {
        /// Where the value is taken from.
        from: String,
        /// Where it is added.
        path: String,
    },
    /// Add a copy of the value at `from` at `path`.
    Copy {
        /// Where the value is copied from.
        from: String,
        /// Where the copy is added.
        path: String,
    },
    /// Fail unless the value at `path` equals `value` (numbers compare by value, mappings
    /// regardless of key order).
    Test {
        /// What to check.
        path: String,
        /// The expected value.
        value: Value,
    },
}

/// Why a patch operation could not be built or applied.
///
/// `path` fields hold the pointer as far as it could be followed: for a lookup that fails
/// part-way, the prefix up to and including the token that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// A mapping has no such key, or `-` was used where an existing element is needed.
    #[error("patch path `{path}` does not exist in the document")]
    PathNotFound {
        /// The pointer up to the missing element.
        path: String,
    },
    /// A sequence index is past the end of the sequence.
    #[error(
        "patch path `{path}` refers to index {index}, but the sequence there has {len} elements"
    )]
    IndexOutOfBounds {
        /// The pointer up to the index.
        path: String,
        /// The index as written.
        index: usize,
        /// The length of the sequence.
        len: usize,
    },
    /// A token used on a sequence is not a valid index (digits without leading zeros, or `-`).
    #[error("patch path `{path}` uses `{token}` as a sequence index, but it is not a valid index")]
    InvalidIndex {
        /// The pointer up to the token.
        path: String,
        /// The offending token.
        token: String,
    },
    /// The pointer descends into a scalar (string, number, boolean or null).
    #[error("patch path `{path}` is a scalar value, so nothing can be addressed inside it")]
    NotAContainer {
        /// The pointer to the scalar.
        path: String,
    },
    /// A `test` operation found a different value.
    #[error("patch test failed: the value at `{path}` is not the expected value")]
    TestFailed {
        /// The tested pointer.
        path: String,
    },
    /// `add`, `replace` or `test` was given no `value`.
    #[error("patch operation `{op}` requires a `value`")]
    MissingValue {
        /// The operation name.
        op: String,
    },
    /// `move` or `copy` was given no `from`.
    #[error("patch operation `{op}` requires a `from` path")]
    MissingFrom {
        /// The operation name.
        op: String,
    },
    /// The operation name is not one of [`OP_NAMES`].
    #[error(
        "unknown patch operation `{op}`; expected one of add, remove, replace, move, copy or test"
    )]
    UnknownOp {
        /// The name as written.
        op: String,
    },
    /// A path is not a JSON Pointer.
    #[error(
        "patch path `{path}` is not a valid JSON pointer: it must be empty or start with `/`, and `~` may only appear as `~0` or `~1`"
    )]
    InvalidPointer {
        /// The path as written.
        path: String,
    },
    /// A `move` whose destination lies inside its source.
    #[error("patch cannot move `{from}` into `{path}`, which is inside it")]
    MoveIntoChild {
        /// The source pointer.
        from: String,
        /// The destination pointer.
        path: String,
    },
    /// A `remove` of the whole document (`""`).
    #[error("patch cannot remove the whole document (path ``)")]
    RootNotRemovable,
}

impl PatchOp {
    /// Builds an operation from the fields of a `patches` entry, checking that the operation is
    /// known, that it has the fields it needs, and that its paths are JSON Pointers. Fields an
    /// operation does not use are ignored, as RFC 6902 requires.
    pub fn from_parts(
        op: &str,
        path: &str,
        from: Option<&str>,
        value: Option<Value>,
    ) -> Result<PatchOp, PatchError> {
        let need_value = |value: Option<Value>| {
            value.ok_or_else(|| PatchError::MissingValue { op: op.to_owned() })
        };
        let need_from = |from: Option<&str>| {
            let from = from.ok_or_else(|| PatchError::MissingFrom { op: op.to_owned() })?;
            Pointer::parse(from)?;
            Ok::<String, PatchError>(from.to_owned())
        };
        if !OP_NAMES.contains(&op) {
            return Err(PatchError::UnknownOp { op: op.to_owned() });
        }
        Pointer::parse(path)?;
        let path = path.to_owned();
        Ok(match op {
            "add" => PatchOp::Add {
                path,
                value: need_value(value)?,
            },
            "remove" => PatchOp::Remove { path },
            "replace" => PatchOp::Replace {
                path,
                value: need_value(value)?,
            },
            "move" => PatchOp::Move {
                from: need_from(from)?,
                path,
            },
            "copy" => PatchOp::Copy {
                from: need_from(from)?,
                path,
            },
            _ => PatchOp::Test {
                path,
                value: need_value(value)?,
            },
        })
    }

    /// The operation's name as written in a patch: `add`, `remove`, ...
    pub fn name(&self) -> &'static str {
        match self {
            PatchOp::Add { .. } => "add",
            PatchOp::Remove { .. } => "remove",
            PatchOp::Replace { .. } => "replace",
            PatchOp::Move { .. } => "move",
            PatchOp::Copy { .. } => "copy",
            PatchOp::Test { .. } => "test",
        }
    }

    /// The operation's target path.
    pub fn path(&self) -> &str {
        match self {
            PatchOp::Add { path, .. }
            | PatchOp::Remove { path }
            | PatchOp::Replace { path, .. }
            | PatchOp::Move { path, .. }
            | PatchOp::Copy { path, .. }
            | PatchOp::Test { path, .. } => path,
        }
    }

    /// The operation's source path, for `move` and `copy`.
    pub fn from(&self) -> Option<&str> {
        match self {
            PatchOp::Move { from, .. } | PatchOp::Copy { from, .. } => Some(from),
            _ => None,
        }
    }
}

/// Applies one operation to `doc`. On error `doc` is unchanged.
pub fn apply(doc: &mut Value, op: &PatchOp) -> Result<(), PatchError> {
    match op {
        PatchOp::Add { path, value } => add(doc, &Pointer::parse(path)?, value.clone()),
        PatchOp::Remove { path } => remove(doc, &Pointer::parse(path)?).map(drop),
        PatchOp::Replace { path, value } => {
            *resolve(doc, &Pointer::parse(path)?)? = value.clone();
            Ok(())
        }
        PatchOp::Move { from, path } => {
            let source = Pointer::parse(from)?;
            let target = Pointer::parse(path)?;
            if source.is_proper_prefix_of(&target) {
                return Err(PatchError::MoveIntoChild {
                    from: from.clone(),
                    path: path.clone(),
                });
            }
            if source.same_location(&target) {
                return resolve(doc, &source).map(drop);
            }
            // Removing first can shift sequence indices the destination refers to, and the
            // destination can still fail; work on a copy so a failure changes nothing.
            let mut scratch = doc.clone();
            let value = remove(&mut scratch, &source)?;
            add(&mut scratch, &target, value)?;
            *doc = scratch;
            Ok(())
        }
        PatchOp::Copy { from, path } => {
            let source = Pointer::parse(from)?;
            let target = Pointer::parse(path)?;
            let value = resolve(doc, &source)?.clone();
            add(doc, &target, value)
        }
        PatchOp::Test { path, value } => {
            let pointer = Pointer::parse(path)?;
            if deep_eq(resolve(doc, &pointer)?, value) {
                Ok(())
            } else {
                Err(PatchError::TestFailed { path: path.clone() })
            }
        }
    }
}

/// Applies `ops` in order, all or nothing: on failure `doc` is unchanged and the error comes
/// with the index of the operation that failed.
pub fn apply_all(doc: &mut Value, ops: &[PatchOp]) -> Result<(), (usize, PatchError)> {
    if ops.is_empty() {
        return Ok(());
    }
    let mut scratch = doc.clone();
    for (index, op) in ops.iter().enumerate() {
        apply(&mut scratch, op).map_err(|err| (index, err))?;
    }
    *doc = scratch;
    Ok(())
}

/// A parsed JSON Pointer that remembers where each token ends in the original text, so errors
/// can quote the pointer as the user wrote it.
#[derive(Debug)]
struct Pointer<'a> {
    raw: &'a str,
    /// Unescaped token and the byte offsets of its leading `/` and of its end in `raw`.
    tokens: Vec<(String, usize, usize)>,
}

impl<'a> Pointer<'a> {
    fn parse(raw: &'a str) -> Result<Pointer<'a>, PatchError> {
        let invalid = || PatchError::InvalidPointer {
            path: raw.to_owned(),
        };
        if raw.is_empty() {
            return Ok(Pointer {
                raw,
                tokens: Vec::new(),
            });
        }
        let body = raw.strip_prefix('/').ok_or_else(invalid)?;
        let mut tokens = Vec::new();
        let mut start = 0;
        for escaped in body.split('/') {
            let mut token = String::with_capacity(escaped.len());
            let mut chars = escaped.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => token.push('~'),
                        Some('1') => token.push('/'),
                        _ => return Err(invalid()),
                    }
                } else {
                    token.push(c);
                }
            }
            // `start` indexes `raw`: the `/` before this token.
            let end = start + 1 + escaped.len();
            tokens.push((token, start, end));
            start = end;
        }
        Ok(Pointer { raw, tokens })
    }

    /// The pointer up to and including token `index`.
    fn through(&self, index: usize) -> String {
        let end = self.tokens.get(index).map_or(self.raw.len(), |t| t.2);
        self.raw.get(..end).unwrap_or(self.raw).to_owned()
    }

    /// The pointer up to, not including, token `index`.
    fn before(&self, index: usize) -> String {
        let end = self.tokens.get(index).map_or(self.raw.len(), |t| t.1);
        self.raw.get(..end).unwrap_or(self.raw).to_owned()
    }

    fn token_names(&self) -> impl Iterator<Item = &str> {
        self.tokens.iter().map(|t| t.0.as_str())
    }

    fn is_proper_prefix_of(&self, other: &Pointer<'_>) -> bool {
        self.tokens.len() < other.tokens.len()
            && self
                .token_names()
                .zip(other.token_names())
                .all(|(a, b)| a == b)
    }

    fn same_location(&self, other: &Pointer<'_>) -> bool {
        self.tokens.len() == other.tokens.len() && self.token_names().eq(other.token_names())
    }
}

/// Looks through YAML tags (`!tag value`) to the tagged value.
fn untagged(value: &mut Value) -> &mut Value {
    match value {
        Value::Tagged(tagged) => untagged(&mut tagged.value),
        other => other,
    }
}

/// Parses token `index` of `pointer` as an index into a sequence of length `len`. `-` yields
/// `len` (the position after the last element); callers that need an existing element reject
/// it.
fn sequence_index(pointer: &Pointer<'_>, index: usize, len: usize) -> Result<usize, PatchError> {
    let token = pointer.tokens.get(index).map_or("", |t| t.0.as_str());
    if token == "-" {
        return Ok(len);
    }
    let well_formed = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    let invalid = || PatchError::InvalidIndex {
        path: pointer.through(index),
        token: token.to_owned(),
    };
    if !well_formed {
        return Err(invalid());
    }
    token.parse().map_err(|_| invalid())
}

/// The child of `parent` named by token `index` of `pointer`, which must exist.
fn child<'v>(
    parent: &'v mut Value,
    pointer: &Pointer<'_>,
    index: usize,
) -> Result<&'v mut Value, PatchError> {
    let token = pointer.tokens.get(index).map_or("", |t| t.0.as_str());
    match untagged(parent) {
        Value::Mapping(mapping) => mapping
            .get_mut(token)
            .ok_or_else(|| PatchError::PathNotFound {
                path: pointer.through(index),
            }),
        Value::Sequence(sequence) => {
            let len = sequence.len();
            let position = sequence_index(pointer, index, len)?;
            if token == "-" {
                return Err(PatchError::PathNotFound {
                    path: pointer.through(index),
                });
            }
            sequence
                .get_mut(position)
                .ok_or_else(|| PatchError::IndexOutOfBounds {
                    path: pointer.through(index),
                    index: position,
                    len,
                })
        }
        _ => Err(PatchError::NotAContainer {
            path: pointer.before(index),
        }),
    }
}

/// The value the first `depth` tokens of `pointer` lead to.
fn resolve_prefix<'v>(
    doc: &'v mut Value,
    pointer: &Pointer<'_>,
    depth: usize,
) -> Result<&'v mut Value, PatchError> {
    let mut current = doc;
    for index in 0..depth {
        current = child(current, pointer, index)?;
    }
    Ok(current)
}

fn resolve<'v>(doc: &'v mut Value, pointer: &Pointer<'_>) -> Result<&'v mut Value, PatchError> {
    resolve_prefix(doc, pointer, pointer.tokens.len())
}

fn add(doc: &mut Value, pointer: &Pointer<'_>, value: Value) -> Result<(), PatchError> {
    let Some(last) = pointer.tokens.len().checked_sub(1) else {
        *doc = value;
        return Ok(());
    };
    let parent = resolve_prefix(doc, pointer, last)?;
    let token = pointer.tokens.get(last).map_or("", |t| t.0.as_str());
    match untagged(parent) {
        Value::Mapping(mapping) => {
            mapping.insert(Value::String(token.to_owned()), value);
            Ok(())
        }
        Value::Sequence(sequence) => {
            let len = sequence.len();
            let position = sequence_index(pointer, last, len)?;
            if position > len {
                return Err(PatchError::IndexOutOfBounds {
                    path: pointer.through(last),
                    index: position,
                    len,
                });
            }
            sequence.insert(position, value);
            Ok(())
        }
        _ => Err(PatchError::NotAContainer {
            path: pointer.before(last),
        }),
    }
}

fn remove(doc: &mut Value, pointer: &Pointer<'_>) -> Result<Value, PatchError> {
    let Some(last) = pointer.tokens.len().checked_sub(1) else {
        return Err(PatchError::RootNotRemovable);
    };
    let parent = resolve_prefix(doc, pointer, last)?;
    let token = pointer.tokens.get(last).map_or("", |t| t.0.as_str());
    match untagged(parent) {
        Value::Mapping(mapping) => {
            mapping
                .shift_remove(token)
                .ok_or_else(|| PatchError::PathNotFound {
                    path: pointer.through(last),
                })
        }
        Value::Sequence(sequence) => {
            let len = sequence.len();
            let position = sequence_index(pointer, last, len)?;
            if token == "-" {
                return Err(PatchError::PathNotFound {
                    path: pointer.through(last),
                });
            }
            if position >= len {
                return Err(PatchError::IndexOutOfBounds {
                    path: pointer.through(last),
                    index: position,
                    len,
                });
            }
            Ok(sequence.remove(position))
        }
        _ => Err(PatchError::NotAContainer {
            path: pointer.before(last),
        }),
    }
}

/// JSON equality as RFC 6902's `test` defines it: numbers by value, mappings regardless of key
/// order, sequences element-wise. Tags must match too.
fn deep_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => match (x.as_f64(), y.as_f64()) {
                    (Some(x), Some(y)) => x == y,
                    _ => false,
                },
            }
        }
        (Value::Sequence(x), Value::Sequence(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| deep_eq(x, y))
        }
        (Value::Mapping(x), Value::Mapping(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| deep_eq(x, y)))
        }
        (Value::Tagged(x), Value::Tagged(y)) => x.tag == y.tag && deep_eq(&x.value, &y.value),
        (a, b) => a == b,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A failing unwrap is a failing test.
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    fn op(name: &str, path: &str, from: Option<&str>, value: Option<&str>) -> PatchOp {
        PatchOp::from_parts(name, path, from, value.map(yaml)).unwrap()
    }

    /// Applies `ops` to the YAML `doc` and returns the result.
    fn patched(doc: &str, ops: &[PatchOp]) -> Result<Value, (usize, PatchError)> {
        let mut doc = yaml(doc);
        apply_all(&mut doc, ops)?;
        Ok(doc)
    }

    fn err(doc: &str, patch: PatchOp) -> PatchError {
        let mut doc = yaml(doc);
        let before = doc.clone();
        let error = apply(&mut doc, &patch).unwrap_err();
        assert_eq!(doc, before, "a failed {patch:?} changed the document");
        error
    }

    // RFC 6902 appendix A, translated to YAML.

    #[test]
    fn rfc_a1_add_object_member() {
        let ops = [op("add", "/baz", None, Some("qux"))];
        assert_eq!(
            patched(r#"{"foo": "bar"}"#, &ops),
            Ok(yaml(r#"{"baz": "qux", "foo": "bar"}"#))
        );
    }

    #[test]
    fn rfc_a2_add_array_element() {
        let ops = [op("add", "/foo/1", None, Some("qux"))];
        assert_eq!(
            patched(r#"{"foo": ["bar", "baz"]}"#, &ops),
            Ok(yaml(r#"{"foo": ["bar", "qux", "baz"]}"#))
        );
    }

    #[test]
    fn rfc_a3_remove_object_member() {
        let ops = [op("remove", "/baz", None, None)];
        assert_eq!(
            patched(r#"{"baz": "qux", "foo": "bar"}"#, &ops),
            Ok(yaml(r#"{"foo": "bar"}"#))
        );
    }

    #[test]
    fn rfc_a4_remove_array_element() {
        let ops = [op("remove", "/foo/1", None, None)];
        assert_eq!(
            patched(r#"{"foo": ["bar", "qux", "baz"]}"#, &ops),
            Ok(yaml(r#"{"foo": ["bar", "baz"]}"#))
        );
    }

    #[test]
    fn rfc_a5_replace_value() {
        let ops = [op("replace", "/baz", None, Some("boo"))];
        assert_eq!(
            patched(r#"{"baz": "qux", "foo": "bar"}"#, &ops),
            Ok(yaml(r#"{"baz": "boo", "foo": "bar"}"#))
        );
    }

    #[test]
    fn rfc_a6_move_value() {
        let ops = [op("move", "/qux/thud", Some("/foo/waldo"), None)];
        assert_eq!(
            patched(
                r#"{"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}"#,
                &ops
            ),
            Ok(yaml(
                r#"{"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}"#
            ))
        );
    }

    #[test]
    fn rfc_a7_move_array_element() {
        let ops = [op("move", "/foo/3", Some("/foo/1"), None)];
        assert_eq!(
            patched(r#"{"foo": ["all", "grass", "cows", "eat"]}"#, &ops),
            Ok(yaml(r#"{"foo": ["all", "cows", "eat", "grass"]}"#))
        );
    }

    #[test]
    fn rfc_a8_test_success() {
        let ops = [
            op("test", "/baz", None, Some("qux")),
            op("test", "/foo/1", None, Some("2")),
        ];
        let doc = r#"{"baz": "qux", "foo": ["a", 2, "c"]}"#;
        assert_eq!(patched(doc, &ops), Ok(yaml(doc)));
    }

    #[test]
    fn rfc_a9_test_error() {
        let error = err(r#"{"baz": "qux"}"#, op("test", "/baz", None, Some("bar")));
        assert_eq!(
            error,
            PatchError::TestFailed {
                path: "/baz".to_owned()
            }
        );
    }

    #[test]
    fn rfc_a10_add_nested_member_object() {
        let ops = [op("add", "/child", None, Some(r#"{"grandchild": {}}"#))];
        assert_eq!(
            patched(r#"{"foo": "bar"}"#, &ops),
            Ok(yaml(r#"{"foo": "bar", "child": {"grandchild": {}}}"#))
        );
    }

    #[test]
    fn rfc_a11_ignore_unrecognized_elements() {
        // `from` is not used by `add`; it is ignored rather than rejected.
        let ops = [op("add", "/baz", Some("/nowhere"), Some("qux"))];
        assert_eq!(
            patched(r#"{"foo": "bar"}"#, &ops),
            Ok(yaml(r#"{"foo": "bar", "baz": "qux"}"#))
        );
    }

    #[test]
    fn rfc_a12_add_to_nonexistent_target() {
        let error = err(
            r#"{"foo": "bar"}"#,
            op("add", "/baz/bat", None, Some("qux")),
        );
        assert_eq!(
            error,
            PatchError::PathNotFound {
                path: "/baz".to_owned()
            }
        );
        assert_eq!(
            error.to_string(),
            "patch path `/baz` does not exist in the document"
        );
    }

    #[test]
    fn rfc_a14_escape_ordering() {
        let ops = [op("test", "/~01", None, Some("10"))];
        let doc = r#"{"/": 9, "~1": 10}"#;
        assert_eq!(patched(doc, &ops), Ok(yaml(doc)));
    }

    #[test]
    fn rfc_a15_strings_and_numbers_differ() {
        let error = err(
            r#"{"/": 9, "~1": 10}"#,
            op("test", "/~01", None, Some(r#""10""#)),
        );
        assert_eq!(
            error,
            PatchError::TestFailed {
                path: "/~01".to_owned()
            }
        );
    }

    #[test]
    fn rfc_a16_add_array_value() {
        let ops = [op("add", "/foo/-", None, Some(r#"["abc", "def"]"#))];
        assert_eq!(
            patched(r#"{"foo": ["bar"]}"#, &ops),
            Ok(yaml(r#"{"foo": ["bar", ["abc", "def"]]}"#))
        );
    }

    // Further cases per operation.

    #[test]
    fn add_cases() {
        let doc = "a: [1, 2]\nb: {c: 1}\n";
        // Index == len appends; a mapping key that exists is replaced in place.
        let ops = [
            op("add", "/a/2", None, Some("3")),
            op("add", "/b/c", None, Some("9")),
        ];
        assert_eq!(patched(doc, &ops), Ok(yaml("a: [1, 2, 3]\nb: {c: 9}\n")));
        assert_eq!(
            patched(doc, &[op("add", "", None, Some("x"))]),
            Ok(yaml("x"))
        );
        assert_eq!(
            err(doc, op("add", "/a/3", None, Some("3"))),
            PatchError::IndexOutOfBounds {
                path: "/a/3".to_owned(),
                index: 3,
                len: 2
            }
        );
        assert_eq!(
            err(doc, op("add", "/a/01", None, Some("3"))),
            PatchError::InvalidIndex {
                path: "/a/01".to_owned(),
                token: "01".to_owned()
            }
        );
        assert_eq!(
            err(doc, op("add", "/a/x", None, Some("3"))),
            PatchError::InvalidIndex {
                path: "/a/x".to_owned(),
                token: "x".to_owned()
            }
        );
        assert_eq!(
            err(doc, op("add", "/b/c/d", None, Some("3"))),
            PatchError::NotAContainer {
                path: "/b/c".to_owned()
            }
        );
        assert!(matches!(
            err(
                doc,
                op("add", "/a/99999999999999999999999", None, Some("3"))
            ),
            PatchError::InvalidIndex { .. }
        ));
    }

    #[test]
    fn add_keeps_key_order() {
        let mut doc = yaml("z: 1\na: 2\n");
        apply(&mut doc, &op("add", "/m", None, Some("3"))).unwrap();
        apply(&mut doc, &op("replace", "/z", None, Some("0"))).unwrap();
        assert_eq!(serde_yaml::to_string(&doc).unwrap(), "z: 0\na: 2\nm: 3\n");
    }

    #[test]
    fn remove_cases() {
        let doc = "a: [1, 2]\nb: {c: 1, d: 2, e: 3}\n";
        let mut removed = yaml(doc);
        apply(&mut removed, &op("remove", "/b/d", None, None)).unwrap();
        assert_eq!(
            serde_yaml::to_string(&removed["b"]).unwrap(),
            "c: 1\ne: 3\n"
        );
        assert_eq!(
            err(doc, op("remove", "/a/2", None, None)),
            PatchError::IndexOutOfBounds {
                path: "/a/2".to_owned(),
                index: 2,
                len: 2
            }
        );
        assert_eq!(
            err(doc, op("remove", "/a/-", None, None)),
            PatchError::PathNotFound {
                path: "/a/-".to_owned()
            }
        );
        assert_eq!(
            err(doc, op("remove", "/b/x", None, None)),
            PatchError::PathNotFound {
                path: "/b/x".to_owned()
            }
        );
        assert_eq!(
            err(doc, op("remove", "", None, None)),
            PatchError::RootNotRemovable
        );
    }

    #[test]
    fn replace_cases() {
        let doc = "a: [1, 2]\n";
        assert_eq!(
            patched(doc, &[op("replace", "/a/1", None, Some("x"))]),
            Ok(yaml("a: [1, x]"))
        );
        assert_eq!(
            patched(doc, &[op("replace", "", None, Some("[]"))]),
            Ok(yaml("[]"))
        );
        assert_eq!(
            err(doc, op("replace", "/b", None, Some("x"))),
            PatchError::PathNotFound {
                path: "/b".to_owned()
            }
        );
        assert_eq!(
            err(doc, op("replace", "/a/2", None, Some("x"))),
            PatchError::IndexOutOfBounds {
                path: "/a/2".to_owned(),
                index: 2,
                len: 2
            }
        );
    }

    #[test]
    fn move_cases() {
        let doc = "a: {b: {c: 1}}\nl: [x, y]\n";
        assert_eq!(
            err(doc, op("move", "/a/b/c", Some("/a"), None)),
            PatchError::MoveIntoChild {
                from: "/a".to_owned(),
                path: "/a/b/c".to_owned()
            }
        );
        // `/ab` is not inside `/a`.
        assert_eq!(
            patched("a: 1\n", &[op("move", "/ab", Some("/a"), None)]),
            Ok(yaml("ab: 1"))
        );
        // Moving onto itself is a no-op, but the source must exist.
        assert_eq!(
            patched(doc, &[op("move", "/a", Some("/a"), None)]),
            Ok(yaml(doc))
        );
        assert_eq!(
            err(doc, op("move", "/q", Some("/q"), None)),
            PatchError::PathNotFound {
                path: "/q".to_owned()
            }
        );
        // A failing destination leaves the source in place.
        assert_eq!(
            err(doc, op("move", "/l/5", Some("/a"), None)),
            PatchError::IndexOutOfBounds {
                path: "/l/5".to_owned(),
                index: 5,
                len: 2
            }
        );
        assert_eq!(
            patched(doc, &[op("move", "/l/-", Some("/l/0"), None)]),
            Ok(yaml("a: {b: {c: 1}}\nl: [y, x]\n"))
        );
    }

    #[test]
    fn copy_cases() {
        let doc = "a: {b: 1}\nl: [x]\n";
        assert_eq!(
            patched(doc, &[op("copy", "/l/0", Some("/a"), None)]),
            Ok(yaml("a: {b: 1}\nl: [{b: 1}, x]\n"))
        );
        assert_eq!(
            patched(doc, &[op("copy", "", Some("/l"), None)]),
            Ok(yaml("[x]"))
        );
        assert_eq!(
            err(doc, op("copy", "/c", Some("/zz"), None)),
            PatchError::PathNotFound {
                path: "/zz".to_owned()
            }
        );
    }

    #[test]
    fn test_compares_deeply() {
        let doc = "a: {x: 1, y: [1.0, true, null]}\n";
        let same = [op("test", "/a", None, Some("{y: [1, true, ~], x: 1.0}"))];
        assert_eq!(patched(doc, &same), Ok(yaml(doc)));
        assert_eq!(
            err(doc, op("test", "/a/y", None, Some("[1, true]"))),
            PatchError::TestFailed {
                path: "/a/y".to_owned()
            }
        );
        assert_eq!(
            err(doc, op("test", "/a/z", None, Some("1"))),
            PatchError::PathNotFound {
                path: "/a/z".to_owned()
            }
        );
    }

    #[test]
    fn escapes_in_keys() {
        let doc = r#"{"a/b": {"c~d": 1}}"#;
        assert_eq!(
            patched(doc, &[op("replace", "/a~1b/c~0d", None, Some("2"))]),
            Ok(yaml(r#"{"a/b": {"c~d": 2}}"#))
        );
        assert_eq!(
            patched("{}", &[op("add", "/~1~0", None, Some("v"))]),
            Ok(yaml(r#"{"/~": "v"}"#))
        );
        // The empty key is addressable as `/`.
        assert_eq!(
            patched("{}", &[op("add", "/", None, Some("v"))]),
            Ok(yaml(r#"{"": "v"}"#))
        );
    }

    #[test]
    fn tagged_values_are_looked_through() {
        let doc = "a: !custom {b: 1}\n";
        let out = patched(doc, &[op("add", "/a/c", None, Some("2"))]).unwrap();
        assert_eq!(out, yaml("a: !custom {b: 1, c: 2}\n"));
    }

    #[test]
    fn apply_all_is_atomic() {
        let original = yaml("a: 1\nl: [1]\n");
        let mut doc = original.clone();
        let ops = [
            op("replace", "/a", None, Some("2")),
            op("add", "/l/-", None, Some("2")),
            op("remove", "/missing", None, None),
        ];
        assert_eq!(
            apply_all(&mut doc, &ops),
            Err((
                2,
                PatchError::PathNotFound {
                    path: "/missing".to_owned()
                }
            ))
        );
        assert_eq!(doc, original);
        apply_all(&mut doc, &ops[..2]).unwrap();
        assert_eq!(doc, yaml("a: 2\nl: [1, 2]\n"));
        apply_all(&mut doc, &[]).unwrap();
    }

    #[test]
    fn from_parts_validates() {
        assert_eq!(
            PatchOp::from_parts("add", "/a", None, None),
            Err(PatchError::MissingValue {
                op: "add".to_owned()
            })
        );
        assert_eq!(
            PatchOp::from_parts("test", "/a", None, None),
            Err(PatchError::MissingValue {
                op: "test".to_owned()
            })
        );
        assert_eq!(
            PatchOp::from_parts("copy", "/a", None, None),
            Err(PatchError::MissingFrom {
                op: "copy".to_owned()
            })
        );
        let unknown = PatchOp::from_parts("merge", "/a", None, None).unwrap_err();
        assert_eq!(
            unknown,
            PatchError::UnknownOp {
                op: "merge".to_owned()
            }
        );
        assert!(
            unknown
                .to_string()
                .contains("add, remove, replace, move, copy or test")
        );
        assert_eq!(
            PatchOp::from_parts("remove", "a/b", None, None),
            Err(PatchError::InvalidPointer {
                path: "a/b".to_owned()
            })
        );
        assert_eq!(
            PatchOp::from_parts("move", "/a", Some("/b~2"), None),
            Err(PatchError::InvalidPointer {
                path: "/b~2".to_owned()
            })
        );
        let moved = PatchOp::from_parts("move", "/a", Some("/b"), Some(yaml("1"))).unwrap();
        assert_eq!(
            moved,
            PatchOp::Move {
                from: "/b".to_owned(),
                path: "/a".to_owned()
            }
        );
        assert_eq!(
            (moved.name(), moved.path(), moved.from()),
            ("move", "/a", Some("/b"))
        );
        // Ops built directly are validated when applied.
        let mut doc = yaml("{}");
        let bad = PatchOp::Remove {
            path: "nope".to_owned(),
        };
        assert_eq!(
            apply(&mut doc, &bad),
            Err(PatchError::InvalidPointer {
                path: "nope".to_owned()
            })
        );
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..3).prop_map(|n| Value::Number(n.into())),
            prop::sample::select(vec!["a", "b", "-", "0", "~"])
                .prop_map(|s| Value::String(s.to_owned())),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Sequence),
                prop::collection::vec(
                    (
                        prop::sample::select(vec!["a", "b", "0", "", "/", "~"]),
                        inner
                    ),
                    0..4
                )
                .prop_map(|entries| {
                    Value::Mapping(
                        entries
                            .into_iter()
                            .map(|(k, v)| (Value::String(k.to_owned()), v))
                            .collect(),
                    )
                }),
            ]
        })
    }

    fn arb_pointer() -> impl Strategy<Value = String> {
        let token = prop::sample::select(vec![
            "a",
            "b",
            "0",
            "1",
            "2",
            "-",
            "01",
            "",
            "~0",
            "~1",
            "~",
            "~2",
            "99999999999999999999999",
        ]);
        (prop::collection::vec(token, 0..4), any::<bool>()).prop_map(|(tokens, slash)| {
            let joined = tokens.iter().map(|t| format!("/{t}")).collect::<String>();
            if slash {
                joined
            } else {
                joined.trim_start_matches('/').to_owned()
            }
        })
    }

    fn arb_op() -> impl Strategy<Value = (String, String, Option<String>, Option<Value>)> {
        (
            prop::sample::select(vec![
                "add", "remove", "replace", "move", "copy", "test", "bogus",
            ]),
            arb_pointer(),
            prop::option::of(arb_pointer()),
            prop::option::of(arb_value()),
        )
            .prop_map(|(op, path, from, value)| (op.to_owned(), path, from, value))
    }

    proptest! {
        #[test]
        fn random_ops_never_panic(doc in arb_value(), ops in prop::collection::vec(arb_op(), 0..6)) {
            let built: Vec<PatchOp> = ops
                .into_iter()
                .filter_map(|(op, path, from, value)| {
                    PatchOp::from_parts(&op, &path, from.as_deref(), value).ok()
                })
                .collect();
            let mut one_by_one = doc.clone();
            for op in &built {
                let before = one_by_one.clone();
                if apply(&mut one_by_one, op).is_err() {
                    prop_assert_eq!(&one_by_one, &before);
                }
            }
            let mut all = doc.clone();
            match apply_all(&mut all, &built) {
                Ok(()) => {}
                Err((index, _)) => {
                    prop_assert!(index < built.len());
                    prop_assert_eq!(&all, &doc);
                }
            }
        }

        #[test]
        fn unvalidated_ops_never_panic(doc in arb_value(), path in ".{0,12}", from in ".{0,12}", value in arb_value()) {
            let mut doc = doc;
            for op in [
                PatchOp::Add { path: path.clone(), value: value.clone() },
                PatchOp::Remove { path: path.clone() },
                PatchOp::Replace { path: path.clone(), value: value.clone() },
                PatchOp::Move { from: from.clone(), path: path.clone() },
                PatchOp::Copy { from: from.clone(), path: path.clone() },
                PatchOp::Test { path: path.clone(), value: value.clone() },
            ] {
                let _ = apply(&mut doc, &op);
            }
        }
    }
}
