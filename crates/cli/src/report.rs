//! Errors as the user sees them: one paragraph for stderr. A configuration error that points
//! into a file also shows that file around the spot, underlined (rendered with miette).

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource, Report,
    SourceSpan,
};
use skiff_config::ConfigError;

/// The text to print on stderr for `error`, ending in a newline.
pub fn render(error: &anyhow::Error, color: bool) -> String {
    error
        .downcast_ref::<ConfigError>()
        .and_then(|config| located(config, color))
        .unwrap_or_else(|| format!("error: {}\n", message(error)))
}

/// The error and its causes joined with `: `, leaving out a cause whose text is already
/// there (many errors, `ConfigError::Read` among them, print their source themselves).
fn message(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

/// The miette rendering of a located configuration error; `None` when the error has no
/// location or its file cannot be read back, so the plain message is used instead.
fn located(error: &ConfigError, color: bool) -> Option<String> {
    let location = error.location()?;
    let text = std::fs::read_to_string(&location.file).ok()?;
    let span = token_span(&text, location.offset)?;
    let diagnostic =
        MietteDiagnostic::new(error.to_string()).with_label(LabeledSpan::underline(span));
    let report = Report::new(diagnostic)
        .with_source_code(NamedSource::new(location.file.display().to_string(), text));
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let mut out = String::new();
    GraphicalReportHandler::new_themed(theme)
        .with_links(false)
        .with_wrap_lines(false)
        .render_report(&mut out, report.as_ref())
        .ok()?;
    Some(out)
}

/// The token that starts at `offset`: up to whitespace, `:`, `,` or the end of the line, at
/// least one character, inside `text`. `None` for an empty text.
fn token_span(text: &str, offset: usize) -> Option<SourceSpan> {
    let last = text.char_indices().next_back()?.0;
    let mut start = offset.min(last);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let rest = &text[start..];
    let first = rest.chars().next().map_or(1, char::len_utf8);
    let token = rest
        .find(|c: char| c.is_whitespace() || c == ':' || c == ',')
        .unwrap_or(rest.len());
    Some(SourceSpan::new(start.into(), token.max(first)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::PathBuf;

    use skiff_config::Location;

    use super::*;

    fn span(text: &str, offset: usize) -> (usize, usize) {
        let span = token_span(text, offset).unwrap();
        (span.offset(), span.len())
    }

    #[test]
    fn the_span_covers_the_token() {
        let text = "a:\n  dockerfle: Dockerfile\n";
        assert_eq!(span(text, 5), (5, 9));
        assert_eq!(span(text, 16), (16, 10));
    }

    #[test]
    fn the_span_is_never_empty_nor_past_the_end() {
        assert_eq!(span("a: b\n", 1), (1, 1));
        assert_eq!(span("a: b\n", 2), (2, 1));
        assert_eq!(span("a: b\n", 400), (4, 1));
        assert_eq!(span("ab", 2), (1, 1));
        assert!(token_span("", 0).is_none());
        // In the middle of a multi-byte character: back to its start.
        assert_eq!(span("é:", 1), (0, 2));
    }

    fn invalid(file: PathBuf, offset: usize) -> anyhow::Error {
        ConfigError::Invalid {
            location: Some(Location {
                file,
                line: 2,
                column: 3,
                offset,
            }),
            field: Some("a.b".to_owned()),
            message: "unknown field `bb`".to_owned(),
            help: Some("did you mean `b`?".to_owned()),
        }
        .into()
    }

    #[test]
    fn a_located_error_shows_the_file_and_keeps_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("skaffold.yaml");
        std::fs::write(&file, "a:\n  bb: 1\n").unwrap();
        let out = render(&invalid(file.clone(), 5), false);
        assert!(
            out.contains(&format!(
                "{}:2:3: a.b: unknown field `bb`; did you mean `b`?",
                file.display()
            )),
            "{out}"
        );
        assert!(out.contains("  bb: 1"), "{out}");
        assert!(!out.contains('\u{1b}'), "{out}");
        let colored = render(&invalid(file, 5), true);
        assert!(colored.contains('\u{1b}'), "{colored}");
    }

    #[test]
    fn an_unreadable_file_or_wild_offset_falls_back_or_clamps() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone.yaml");
        let out = render(&invalid(missing.clone(), 5), false);
        assert_eq!(
            out,
            format!(
                "error: {}:2:3: a.b: unknown field `bb`; did you mean `b`?\n",
                missing.display()
            )
        );

        let file = dir.path().join("skaffold.yaml");
        std::fs::write(&file, "a: 1\n").unwrap();
        let out = render(&invalid(file, 10_000), false);
        assert!(out.contains("unknown field `bb`"), "{out}");
    }

    #[test]
    fn other_errors_are_one_line() {
        let error = anyhow::Error::from(ConfigError::UnknownProfile {
            name: "nope".to_owned(),
            file: PathBuf::from("/p/skaffold.yaml"),
            available: vec!["dev".to_owned()],
        });
        assert_eq!(
            render(&error, true),
            "error: profile `nope` is not defined in /p/skaffold.yaml; available: dev\n"
        );
        let error = anyhow::anyhow!("disk full").context("cannot write out.yaml");
        assert_eq!(
            render(&error, false),
            "error: cannot write out.yaml: disk full\n"
        );
        let error = anyhow::Error::from(ConfigError::Read {
            path: PathBuf::from("/p/missing.yaml"),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not found"),
        });
        assert_eq!(
            render(&error, false),
            "error: cannot read /p/missing.yaml: not found\n"
        );
    }
}
