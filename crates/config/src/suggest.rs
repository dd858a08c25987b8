//! Turns serde's schema errors into messages that name the field and say what to do.

use std::path::Path;

use crate::error::{ConfigError, Location};

/// Translate a typed-deserialization error from serde_yaml into [`ConfigError::Invalid`].
pub(crate) fn schema_error(file: &Path, error: &serde_yaml::Error) -> ConfigError {
    let location = error.location().map(|l| Location::from_yaml(file, l));
    let mut text = error.to_string();
    if let Some(location) = &location {
        let suffix = format!(" at line {} column {}", location.line, location.column);
        if let Some(stripped) = text.strip_suffix(&suffix) {
            text = stripped.to_owned();
        }
    }
    let (field, message) = split_path(&text);
    invalid(location, field, message)
}

/// Translate an error from deserializing a YAML tree (no positions; the caller knows where).
pub(crate) fn tree_error(location: Option<Location>, error: &serde_yaml::Error) -> ConfigError {
    let text = error.to_string();
    let (field, message) = split_path(&text);
    invalid(location, field, message)
}

/// serde_yaml prefixes messages with the path of the value (`build.artifacts[0].docker: …`).
fn split_path(text: &str) -> (Option<String>, &str) {
    if let Some((path, rest)) = text.split_once(": ") {
        let is_path = !path.is_empty()
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '[' | ']' | '_' | '-'));
        if is_path {
            return (Some(path.to_owned()), rest);
        }
    }
    (None, text)
}

fn invalid(location: Option<Location>, field: Option<String>, message: &str) -> ConfigError {
    if let Some((unknown, expected)) = parse_unknown(message, "unknown field `") {
        let help = suggestion(unknown, &expected, "field");
        return ConfigError::Invalid {
            location,
            field,
            message: format!("unknown field `{unknown}`"),
            help,
        };
    }
    if let Some((unknown, expected)) = parse_unknown(message, "unknown variant `") {
        let help = suggestion(unknown, &expected, "value");
        return ConfigError::Invalid {
            location,
            field,
            message: format!("unknown value `{unknown}`"),
            help,
        };
    }
    ConfigError::Invalid {
        location,
        field,
        message: message.to_owned(),
        help: None,
    }
}

/// Parses serde's "unknown field `x`, expected one of `a`, `b`" (and its short forms:
/// "expected `a`", "expected `a` or `b`", "there are no fields").
fn parse_unknown<'a>(message: &'a str, prefix: &str) -> Option<(&'a str, Vec<&'a str>)> {
    let rest = message.strip_prefix(prefix)?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest.split('`').skip(1).step_by(2).collect::<Vec<_>>();
    Some((unknown, expected))
}

/// "did you mean `dockerfile`?" when one name is close; otherwise the list of valid names.
pub(crate) fn suggestion(unknown: &str, candidates: &[&str], noun: &str) -> Option<String> {
    if candidates.is_empty() {
        return Some(format!("this mapping takes no {noun}s"));
    }
    let lower = unknown.to_ascii_lowercase();
    let best = candidates
        .iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase()),
                *c,
            )
        })
        .min_by_key(|(distance, _)| *distance);
    match best {
        Some((distance, candidate)) if distance <= (unknown.len() / 3).max(2) => {
            Some(format!("did you mean `{candidate}`?"))
        }
        _ => Some(format!(
            "valid {noun}s here: {}",
            candidates
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested() {
        assert_eq!(
            suggestion("dockerfle", &["dockerfile", "target"], "field").as_deref(),
            Some("did you mean `dockerfile`?")
        );
        assert_eq!(
            suggestion("DockerFile", &["dockerfile", "target"], "field").as_deref(),
            Some("did you mean `dockerfile`?")
        );
        assert_eq!(
            suggestion("zzz", &["dockerfile", "target"], "field").as_deref(),
            Some("valid fields here: `dockerfile`, `target`")
        );
    }

    #[test]
    fn serde_messages_are_parsed() {
        let (unknown, expected) = parse_unknown(
            "unknown field `x`, expected one of `a`, `b`",
            "unknown field `",
        )
        .unwrap_or_default();
        assert_eq!((unknown, expected), ("x", vec!["a", "b"]));
        let (_, expected) =
            parse_unknown("unknown field `x`, expected `a` or `b`", "unknown field `")
                .unwrap_or_default();
        assert_eq!(expected, vec!["a", "b"]);
        assert_eq!(
            split_path("build.artifacts[0]: missing field `image`")
                .0
                .as_deref(),
            Some("build.artifacts[0]")
        );
        assert_eq!(split_path("invalid type: string").0, None);
    }
}
