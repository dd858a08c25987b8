//! `.dockerignore` matching with Docker's exact semantics.
//!
//! The build context sent to the engine, the files an artifact depends on and the files the
//! watcher reacts to must all agree with what Docker itself leaves out, or skiff rebuilds for
//! nothing (or, worse, misses a change). So this module re-implements moby's `patternmatcher`
//! and `ignorefile` packages rather than approximating them with gitignore rules:
//!
//! - each line is one pattern; a line *starting* with `#` is a comment; surrounding whitespace
//!   is trimmed and blank lines are skipped; a UTF-8 byte-order mark is ignored;
//! - patterns are cleaned like Go's `filepath.Clean` (`./a` → `a`, `a/` → `a`, `a//b` → `a/b`)
//!   and a leading `/` is dropped: every pattern is anchored at the context root;
//! - `*` matches any run of characters except `/`, `?` one character except `/`, `[a-z]` /
//!   `[^a-z]` a character class, `\x` the character `x`; `**` matches any number of
//!   directories (`**/` may match none, a trailing `**` matches everything below);
//! - a path is matched by a pattern when the pattern matches the path itself or any of its
//!   parent directories, so ignoring a directory ignores everything under it;
//! - `!pattern` re-includes what it matches, and the last matching pattern decides — so
//!   `!keep.txt` after `build` re-includes `build/keep.txt` only if it is written
//!   `!build/keep.txt`, exactly as Docker does.
//!
//! Quirks of Docker's matcher are kept on purpose (a pattern starting with `**` followed by
//! literal text matches any path *ending* with that text, `**` does not cross a newline in a
//! file name). Two corner cases are deliberately not replicated: inside a character class `*`
//! and `?` are plain characters (Docker turns them into regular-expression fragments, which
//! makes such patterns nonsensical), and `\` before a letter is that letter (Docker hands
//! `\d`, `\w`, … to Go's regexp engine as classes).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::BuildError;

/// A `.dockerignore` file (or any list of patterns with its semantics), ready to match paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
    has_exceptions: bool,
    source: Option<PathBuf>,
}

/// A syntax error in a `.dockerignore` pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DockerIgnoreError {
    /// The 1-based line of the offending pattern (its position when built from a list).
    pub line: usize,
    /// What is wrong, naming the pattern.
    pub message: String,
}

impl DockerIgnore {
    /// Patterns that exclude nothing.
    pub fn empty() -> DockerIgnore {
        DockerIgnore::default()
    }

    /// Parse the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<DockerIgnore, DockerIgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut ignore = DockerIgnore::default();
        for (index, raw) in text.split('\n').enumerate() {
            // Docker tests for a comment before trimming: ` # x` is a pattern.
            if raw.starts_with('#') {
                continue;
            }
            ignore.push_line(raw, index + 1)?;
        }
        Ok(ignore)
    }

    /// Build from individual patterns (no comment handling), e.g. Skaffold's
    /// `custom.dependencies.ignore`; each is normalised like a `.dockerignore` line.
    pub fn from_patterns<I, S>(patterns: I) -> Result<DockerIgnore, DockerIgnoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut ignore = DockerIgnore::default();
        for (index, pattern) in patterns.into_iter().enumerate() {
            ignore.push_line(pattern.as_ref(), index + 1)?;
        }
        Ok(ignore)
    }

    /// The ignore file for an artifact, as BuildKit picks it: `<dockerfile>.dockerignore` next
    /// to the Dockerfile (e.g. `Dockerfile.dev.dockerignore`) if it exists, else
    /// `<context>/.dockerignore`, else no exclusions. A relative `dockerfile` is taken relative
    /// to `context`.
    ///
    /// A malformed pattern is a [`BuildError::Dockerfile`] naming the ignore file and line.
    pub fn for_artifact(context: &Path, dockerfile: &Path) -> Result<DockerIgnore, BuildError> {
        let dockerfile = if dockerfile.is_absolute() {
            dockerfile.to_path_buf()
        } else {
            context.join(dockerfile)
        };
        let mut specific = dockerfile.into_os_string();
        specific.push(".dockerignore");
        let specific = PathBuf::from(specific);
        let general = context.join(".dockerignore");
        for candidate in [specific, general] {
            if candidate.is_file() {
                return DockerIgnore::load(&candidate);
            }
        }
        Ok(DockerIgnore::empty())
    }

    /// Read and parse the ignore file at `path`.
    pub fn load(path: &Path) -> Result<DockerIgnore, BuildError> {
        let bytes = std::fs::read(path).map_err(|source| BuildError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8_lossy(&bytes);
        let mut ignore = DockerIgnore::parse(&text).map_err(|e| BuildError::Dockerfile {
            path: path.to_path_buf(),
            line: e.line,
            message: format!(".dockerignore: {}", e.message),
        })?;
        ignore.source = Some(path.to_path_buf());
        Ok(ignore)
    }

    /// The file the patterns were read from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// Whether there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The normalised patterns, in order, exceptions prefixed with `!` (for fingerprints and
    /// messages).
    pub fn patterns(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| {
                if p.exception {
                    format!("!{}", p.cleaned)
                } else {
                    p.cleaned.clone()
                }
            })
            .collect()
    }

    /// Whether `rel_path` (relative to the context root, `/`-separated) is left out of the
    /// build context: the last pattern matching the path or one of its parent directories is
    /// an exclusion. The context root itself is never excluded.
    pub fn is_excluded(&self, rel_path: &str) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        let cleaned = clean_path(rel_path);
        let file = cleaned.trim_start_matches('/');
        if file.is_empty() || file == "." {
            return false;
        }
        // The parent directories of `file`, shortest first: `a`, `a/b` for `a/b/c`.
        let parents: Vec<&str> = file
            .char_indices()
            .filter(|&(_, c)| c == '/')
            .map(|(i, _)| &file[..i])
            .collect();
        let mut excluded = false;
        for pattern in &self.patterns {
            // As Docker: an exclusion only matters while not excluded, an exception only
            // while excluded — which makes the last matching pattern win.
            if pattern.exception != excluded {
                continue;
            }
            let matched =
                pattern.matches(file) || parents.iter().any(|parent| pattern.matches(parent));
            if matched {
                excluded = !pattern.exception;
            }
        }
        excluded
    }

    /// Whether a walker must look inside the directory `dir_rel`: true when the directory is
    /// not excluded, or when it is but a `!` pattern might re-include something below it.
    /// Conservative — exception patterns with wildcards always answer true — so skipping a
    /// directory for which this is false never loses a file.
    pub fn may_contain_included(&self, dir_rel: &str) -> bool {
        if !self.is_excluded(dir_rel) {
            return true;
        }
        if !self.has_exceptions {
            return false;
        }
        let cleaned = clean_path(dir_rel);
        let dir = cleaned.trim_start_matches('/');
        let dir_slash = format!("{dir}/");
        self.patterns
            .iter()
            .filter(|p| p.exception)
            .any(|p| match &p.kind {
                Kind::Exact => p.cleaned.starts_with(&dir_slash),
                Kind::Prefix(prefix) => {
                    prefix.starts_with(&dir_slash) || dir_slash.starts_with(prefix.as_str())
                }
                Kind::Suffix(_) | Kind::Tokens(_) => true,
            })
    }

    fn push_line(&mut self, raw: &str, line: usize) -> Result<(), DockerIgnoreError> {
        let mut pattern = raw.trim();
        if pattern.is_empty() {
            return Ok(());
        }
        let exception = pattern.starts_with('!');
        if exception {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = clean_path(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        if exception && cleaned.is_empty() {
            return Err(DockerIgnoreError {
                line,
                message: "illegal exclusion pattern: \"!\"".to_owned(),
            });
        }
        let kind = compile(&cleaned).map_err(|()| DockerIgnoreError {
            line,
            message: format!("syntax error in pattern `{}`", raw.trim()),
        })?;
        self.has_exceptions |= exception;
        self.patterns.push(Pattern {
            exception,
            cleaned,
            kind,
        });
        Ok(())
    }
}

impl fmt::Display for DockerIgnore {
    /// The normalised patterns, one per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for pattern in self.patterns() {
            writeln!(f, "{pattern}")?;
        }
        Ok(())
    }
}

/// One compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    exception: bool,
    cleaned: String,
    kind: Kind,
}

/// How a pattern matches, mirroring moby's `matchType`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// No wildcard: the path equals the pattern.
    Exact,
    /// Literal text then a trailing `**`: the path starts with the text.
    Prefix(String),
    /// A leading `**` then literal text: the path ends with the text.
    Suffix(String),
    /// Anything else.
    Tokens(Vec<Token>),
}

/// One element of a wildcard pattern (the regular expression Docker builds, as tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// This character.
    Literal(char),
    /// `*`: `[^/]*`.
    Star,
    /// `?`: `[^/]`.
    Any,
    /// `**` followed by more pattern: `(.*/)?`.
    AnyDirs,
    /// `**` at the end after other wildcards: `.*`.
    AnyTail,
    /// `[...]`.
    Class(Class),
}

/// A character class.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Class {
    negated: bool,
    ranges: Vec<(char, char)>,
}

impl Class {
    fn matches(&self, c: char) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != self.negated
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.cleaned,
            Kind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Kind::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Kind::Tokens(tokens) => match_tokens(tokens, path),
        }
    }
}

/// Translate a cleaned pattern the way moby's `Pattern.compile` does; `Err` for what Go's
/// `filepath.Match` rejects (a bad character class, a trailing `\`).
fn compile(pattern: &str) -> Result<Kind, ()> {
    #[derive(PartialEq)]
    enum Type {
        Exact,
        Prefix,
        Suffix,
        Tokens,
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut kind = Type::Exact;
    let mut pos = 0;
    let mut iteration = 0;
    while pos < chars.len() {
        let ch = chars[pos];
        pos += 1;
        match ch {
            '*' if chars.get(pos) == Some(&'*') => {
                pos += 1;
                if chars.get(pos) == Some(&'/') {
                    pos += 1;
                }
                if pos >= chars.len() {
                    if kind == Type::Exact {
                        kind = Type::Prefix;
                    } else {
                        tokens.push(Token::AnyTail);
                        kind = Type::Tokens;
                    }
                } else {
                    tokens.push(Token::AnyDirs);
                    kind = Type::Tokens;
                }
                if iteration == 0 {
                    kind = Type::Suffix;
                }
            }
            '*' => {
                tokens.push(Token::Star);
                kind = Type::Tokens;
            }
            '?' => {
                tokens.push(Token::Any);
                kind = Type::Tokens;
            }
            '\\' => {
                let escaped = chars.get(pos).copied().ok_or(())?;
                pos += 1;
                tokens.push(Token::Literal(escaped));
                kind = Type::Tokens;
            }
            '[' => {
                let (class, next) = parse_class(&chars, pos)?;
                pos = next;
                tokens.push(Token::Class(class));
                kind = Type::Tokens;
            }
            ']' => {
                tokens.push(Token::Literal(']'));
                kind = Type::Tokens;
            }
            other => tokens.push(Token::Literal(other)),
        }
        iteration += 1;
    }
    Ok(match kind {
        Type::Exact => Kind::Exact,
        Type::Prefix => Kind::Prefix(pattern.strip_suffix("**").unwrap_or(pattern).to_owned()),
        Type::Suffix => Kind::Suffix(pattern.get(2..).unwrap_or_default().to_owned()),
        Type::Tokens => Kind::Tokens(tokens),
    })
}

/// Parse a character class whose `[` was just consumed (Go `filepath.Match` syntax); returns
/// the class and the position after its `]`.
fn parse_class(chars: &[char], mut pos: usize) -> Result<(Class, usize), ()> {
    let mut negated = false;
    if chars.get(pos) == Some(&'^') {
        negated = true;
        pos += 1;
    }
    let mut ranges = Vec::new();
    loop {
        if chars.get(pos) == Some(&']') && !ranges.is_empty() {
            return Ok((Class { negated, ranges }, pos + 1));
        }
        let lo = class_char(chars, &mut pos)?;
        let hi = if chars.get(pos) == Some(&'-') {
            pos += 1;
            class_char(chars, &mut pos)?
        } else {
            lo
        };
        ranges.push((lo, hi));
    }
}

/// One (possibly escaped) character of a class; like Go's `getEsc`, it may be neither `-`
/// nor `]`, and must not be the last character of the pattern.
fn class_char(chars: &[char], pos: &mut usize) -> Result<char, ()> {
    let mut c = *chars.get(*pos).ok_or(())?;
    if c == '-' || c == ']' {
        return Err(());
    }
    if c == '\\' {
        *pos += 1;
        c = *chars.get(*pos).ok_or(())?;
    }
    *pos += 1;
    if *pos >= chars.len() {
        return Err(());
    }
    Ok(c)
}

/// Whether `tokens` match all of `text`, by simulating the pattern over the set of reachable
/// positions (linear in the pattern times the text, no backtracking).
fn match_tokens(tokens: &[Token], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let n = text.len();
    let mut current = vec![false; n + 1];
    current[0] = true;
    for token in tokens {
        let mut next = vec![false; n + 1];
        match token {
            Token::Literal(_) | Token::Any | Token::Class(_) => {
                for p in 0..n {
                    if current[p] {
                        let c = text[p];
                        next[p + 1] = match token {
                            Token::Literal(l) => c == *l,
                            Token::Any => c != '/',
                            Token::Class(class) => class.matches(c),
                            _ => false,
                        };
                    }
                }
            }
            Token::Star | Token::AnyTail => {
                let barrier = if matches!(token, Token::Star) {
                    '/'
                } else {
                    '\n'
                };
                let mut active = false;
                for p in 0..=n {
                    active |= current[p];
                    next[p] = active;
                    if p < n && text[p] == barrier {
                        active = false;
                    }
                }
            }
            Token::AnyDirs => {
                let mut active = false;
                for p in 0..=n {
                    active |= current[p];
                    next[p] |= current[p];
                    if p < n {
                        if text[p] == '\n' {
                            active = false;
                        } else if active && text[p] == '/' {
                            next[p + 1] = true;
                        }
                    }
                }
            }
        }
        if !next.iter().any(|&b| b) {
            return false;
        }
        current = next;
    }
    current[n]
}

/// A glob with Go's `filepath.Match` syntax — what `COPY`/`ADD` sources use: `*` and `?` do
/// not match `/`, `[...]` classes, `\x` escapes, and `**` is just two `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathGlob {
    tokens: Vec<Token>,
}

impl PathGlob {
    /// Compile `pattern`; `None` when Go would report `ErrBadPattern`.
    pub(crate) fn new(pattern: &str) -> Option<PathGlob> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut pos = 0;
        while pos < chars.len() {
            let ch = chars[pos];
            pos += 1;
            match ch {
                '*' => tokens.push(Token::Star),
                '?' => tokens.push(Token::Any),
                '\\' => {
                    tokens.push(Token::Literal(*chars.get(pos)?));
                    pos += 1;
                }
                '[' => {
                    let (mut class, next) = parse_class(&chars, pos).ok()?;
                    // Go's classes never match the separator in practice (paths are matched
                    // segment by segment here), so exclude it explicitly.
                    if class.negated {
                        class.ranges.push(('/', '/'));
                    }
                    pos = next;
                    tokens.push(Token::Class(class));
                }
                other => tokens.push(Token::Literal(other)),
            }
        }
        Some(PathGlob { tokens })
    }

    /// Whether the glob matches all of `text`.
    pub(crate) fn matches(&self, text: &str) -> bool {
        match_tokens(&self.tokens, text)
    }
}

/// Go's `containsWildcards`: whether `*`, `?` or `[` appears unescaped.
pub(crate) fn has_wildcards(pattern: &str) -> bool {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Go's `path.Clean` for `/`-separated paths: collapse `//`, drop `.` elements, resolve `..`
/// lexically, drop a trailing `/`; the empty path is `.`.
pub(crate) fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => match parts.last() {
                Some(last) if *last != ".." => {
                    parts.pop();
                }
                _ => {
                    if !rooted {
                        parts.push("..");
                    }
                }
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_owned()
    } else {
        joined
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ignore(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).unwrap()
    }

    #[test]
    fn clean_path_matches_go() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("./a", "a"),
            ("a/", "a"),
            ("a//b", "a/b"),
            ("a/./b/", "a/b"),
            ("a/../b", "b"),
            ("../a", "../a"),
            ("/../a", "/a"),
            ("/", "/"),
            ("a/b/../..", "."),
            ("a/../../b", "../b"),
        ] {
            assert_eq!(clean_path(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn docker_documented_examples() {
        let i = ignore("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
        assert!(i.is_excluded("somedir/temporary.txt"));
        assert!(i.is_excluded("somedir/temp"));
        assert!(!i.is_excluded("temporary.txt"));
        assert!(i.is_excluded("somedir/subdir/temporary.txt"));
        assert!(!i.is_excluded("a/b/c/temporary.txt"));
        assert!(i.is_excluded("tempa"));
        assert!(i.is_excluded("tempb"));
        assert!(!i.is_excluded("tempab"));
        assert!(!i.is_excluded("temp"));
        // A directory named like that is excluded with everything in it.
        assert!(i.is_excluded("somedir/temp/inner/file"));
    }

    #[test]
    fn double_star() {
        let i = ignore("**/*.go");
        assert!(i.is_excluded("main.go"));
        assert!(i.is_excluded("a/b/c/main.go"));
        assert!(!i.is_excluded("main.golang"));
        let i = ignore("a/**/b");
        assert!(i.is_excluded("a/b"));
        assert!(i.is_excluded("a/x/y/b"));
        assert!(i.is_excluded("a/x/b/file"));
        assert!(!i.is_excluded("a/xb"));
        let i = ignore("vendor/**");
        assert!(i.is_excluded("vendor/x"));
        assert!(i.is_excluded("vendor/x/y"));
        assert!(!i.is_excluded("vendor"));
        let i = ignore("**");
        assert!(i.is_excluded("anything/at/all"));
        // Docker's suffix quirk: a leading `**` then literal text matches by suffix.
        let i = ignore("**/foo");
        assert!(i.is_excluded("foo"));
        assert!(i.is_excluded("a/b/foo"));
        assert!(!i.is_excluded("a/xfoo"));
        let i = ignore("**foo");
        assert!(i.is_excluded("xfoo"));
    }

    #[test]
    fn exceptions_last_match_wins() {
        let i = ignore("*.md\n!README.md\n");
        assert!(i.is_excluded("CHANGES.md"));
        assert!(!i.is_excluded("README.md"));
        // `*` does not cross `/`: docs/x.md was never excluded.
        assert!(!i.is_excluded("docs/x.md"));
        let i = ignore("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(i.is_excluded("README-secret.md"));
        assert!(!i.is_excluded("README-public.md"));
        let i = ignore("!README.md\n*.md\n");
        assert!(i.is_excluded("README.md"));
    }

    #[test]
    fn directories_and_reincludes_below_them() {
        let i = ignore("node_modules\n.git\n");
        assert!(i.is_excluded("node_modules"));
        assert!(i.is_excluded("node_modules/left-pad/index.js"));
        assert!(i.is_excluded(".git/HEAD"));
        assert!(!i.is_excluded("src/node_modules_helper.js"));
        assert!(!i.may_contain_included("node_modules"));

        let i = ignore("build\n!build/keep.txt\n");
        assert!(i.is_excluded("build"));
        assert!(i.is_excluded("build/other.txt"));
        assert!(!i.is_excluded("build/keep.txt"));
        assert!(i.may_contain_included("build"));
        assert!(!i.may_contain_included("build/sub"));

        let i = ignore("build\n!build/keep\n");
        assert!(!i.is_excluded("build/keep/deep/file"));

        let i = ignore("*\n!src\n");
        assert!(i.is_excluded("Makefile"));
        assert!(!i.is_excluded("src"));
        assert!(!i.is_excluded("src/main.rs"));

        let i = ignore("docs\n!**/*.md\n");
        assert!(!i.is_excluded("docs/a/b.md"));
        assert!(i.is_excluded("docs/a/b.txt"));
        assert!(i.may_contain_included("docs/a"));
    }

    #[test]
    fn leading_slash_dot_and_comments() {
        let i = ignore("/secret\n./tmp/\n  # not a comment\n#comment\n\n   \n");
        assert!(i.is_excluded("secret"));
        assert!(i.is_excluded("tmp/a"));
        assert!(i.is_excluded("# not a comment"));
        assert!(!i.is_excluded("comment"));
        assert_eq!(i.patterns(), ["secret", "tmp", "# not a comment"]);
        let i = ignore("\u{feff}a\r\nb\r\n");
        assert!(i.is_excluded("a"));
        assert!(i.is_excluded("b"));
        assert!(!i.is_excluded("."));
        assert!(!i.is_excluded(""));
        assert!(i.is_excluded("./a/x"));
    }

    #[test]
    fn classes_and_escapes() {
        let i = ignore("file[0-9].txt\n[^a]x\n\\*star\n");
        assert!(i.is_excluded("file1.txt"));
        assert!(!i.is_excluded("filea.txt"));
        assert!(i.is_excluded("bx"));
        assert!(!i.is_excluded("ax"));
        assert!(i.is_excluded("*star"));
        assert!(!i.is_excluded("xstar"));
        let i = ignore("a.b\n(x)\n");
        assert!(i.is_excluded("a.b"));
        assert!(!i.is_excluded("axb"));
        assert!(i.is_excluded("(x)"));
    }

    #[test]
    fn syntax_errors() {
        let e = DockerIgnore::parse("ok\n!\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("illegal exclusion"));
        for bad in ["[", "a[", "[]", "[a", "a\\", "[a-]", "[^]"] {
            let e = DockerIgnore::parse(bad).unwrap_err();
            assert!(e.message.contains("syntax error"), "{bad}: {e}");
        }
    }

    #[test]
    fn for_artifact_prefers_the_dockerfile_specific_file() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path();
        assert!(
            DockerIgnore::for_artifact(ctx, Path::new("Dockerfile"))
                .unwrap()
                .is_empty()
        );
        std::fs::write(ctx.join(".dockerignore"), "general\n").unwrap();
        let i = DockerIgnore::for_artifact(ctx, Path::new("Dockerfile")).unwrap();
        assert!(i.is_excluded("general"));
        assert_eq!(i.source(), Some(ctx.join(".dockerignore").as_path()));
        std::fs::write(ctx.join("Dockerfile.dev.dockerignore"), "specific\n").unwrap();
        let i = DockerIgnore::for_artifact(ctx, &ctx.join("Dockerfile.dev")).unwrap();
        assert!(i.is_excluded("specific"));
        assert!(!i.is_excluded("general"));
        std::fs::write(ctx.join(".dockerignore"), "ok\n[\n").unwrap();
        match DockerIgnore::for_artifact(ctx, Path::new("Dockerfile")) {
            Err(BuildError::Dockerfile { line, path, .. }) => {
                assert_eq!(line, 2);
                assert_eq!(path, ctx.join(".dockerignore"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Proptest cases: `default`, or `SKIFF_FUZZ_CASES` for a longer fuzzing run
    /// (`SKIFF_FUZZ_CASES=100000 cargo test ... fuzz`).
    fn fuzz_cases(default: u32) -> u32 {
        std::env::var("SKIFF_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(fuzz_cases(256)))]
        #[test]
        fn never_panics(text in "[-a-z*?!#/\\\\\\[\\]^. \n\t]{0,80}", path in "[-a-z*?/. \\[\\]]{0,40}") {
            if let Ok(i) = DockerIgnore::parse(&text) {
                let _ = i.is_excluded(&path);
                let _ = i.may_contain_included(&path);
            }
        }

        #[test]
        fn never_panics_on_any_text(text in any::<String>(), path in any::<String>()) {
            if let Ok(i) = DockerIgnore::parse(&text) {
                let _ = i.is_excluded(&path);
                let _ = i.may_contain_included(&path);
            }
        }

        #[test]
        fn skipping_directories_loses_nothing(text in "[ab*!/\n]{0,30}", dir in "[ab]{1,2}(/[ab]{1,2})?", rest in "[ab]{1,2}(/[ab]{1,2})?") {
            if let Ok(i) = DockerIgnore::parse(&text) {
                if !i.may_contain_included(&dir) {
                    let below = format!("{dir}/{rest}");
                    prop_assert!(i.is_excluded(&below), "{below} included although {dir} was skippable");
                }
            }
        }
    }
}
