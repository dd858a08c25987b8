//! `rawYaml` globs: relative to the config's directory, `*`/`?`/`[…]`/`{a,b}` within a path
//! component and `**` across them. A glob matching a directory takes every file below it, as
//! Skaffold does; files come in path order, each once.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use globset::GlobBuilder;

use crate::RenderError;

fn is_pattern(component: &str) -> bool {
    component.contains(['*', '?', '[', '{'])
}

/// What `globs` select under `base_dir`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Expansion {
    /// The files, in order, without repeats.
    pub files: Vec<PathBuf>,
    /// The patterns that matched no file, as written: Skaffold warns about them
    /// (`k8s/*.yaml did not match any file`) and goes on, so a project without manifests in
    /// the default place still renders.
    pub unmatched: Vec<String>,
}

/// The files `globs` select under `base_dir`. A pattern matching nothing is reported in
/// [`Expansion::unmatched`] when `unmatched_is_warning`, an error otherwise; a plain path
/// naming no file is always an error.
pub(crate) fn expand_all(
    base_dir: &Path,
    globs: &[String],
    unmatched_is_warning: bool,
) -> Result<Expansion, RenderError> {
    let mut seen = HashSet::new();
    let mut expansion = Expansion::default();
    for glob in globs {
        let files = match expand(base_dir, glob) {
            Err(RenderError::NoMatch { .. }) if unmatched_is_warning && is_glob(glob) => {
                expansion.unmatched.push(glob.clone());
                continue;
            }
            other => other?,
        };
        for file in files {
            if seen.insert(file.clone()) {
                expansion.files.push(file);
            }
        }
    }
    Ok(expansion)
}

/// Whether `glob` has a pattern component (rather than naming one path).
fn is_glob(glob: &str) -> bool {
    Path::new(glob)
        .components()
        .any(|c| matches!(c, Component::Normal(text) if is_pattern(&text.to_string_lossy())))
}

/// The files one glob selects, sorted.
pub(crate) fn expand(base_dir: &Path, glob: &str) -> Result<Vec<PathBuf>, RenderError> {
    if glob.starts_with("http://") || glob.starts_with("https://") {
        return Err(RenderError::Unsupported {
            kind: "manifests.rawYaml URL".into(),
            detail: glob.to_owned(),
        });
    }
    let no_match = || RenderError::NoMatch {
        glob: glob.to_owned(),
        dir: base_dir.to_path_buf(),
    };
    let base = if base_dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base_dir
    };
    let full = base.join(glob);
    // The literal directory the walk starts from, and the pattern components after it.
    let mut root = PathBuf::new();
    let mut rest: Vec<String> = Vec::new();
    let mut recursive = false;
    for component in full.components() {
        let text = component.as_os_str().to_string_lossy();
        if !rest.is_empty() || (matches!(component, Component::Normal(_)) && is_pattern(&text)) {
            recursive |= text.contains("**");
            rest.push(text.into_owned());
        } else {
            root.push(component);
        }
    }
    let in_pattern = !rest.is_empty();
    let pattern_depth = rest.len();
    let mut files = Vec::new();
    if !in_pattern {
        if full.is_file() {
            files.push(full);
        } else if full.is_dir() {
            walk_files(&full, &mut files);
        }
    } else {
        let matcher = matcher(base, glob)?;
        let mut matched = Vec::new();
        let depth = if recursive { usize::MAX } else { pattern_depth };
        walk_matching(&root, depth, &matcher, &mut matched);
        matched.sort();
        for path in matched {
            if path.is_dir() {
                walk_files(&path, &mut files);
            } else {
                files.push(path);
            }
        }
    }
    if files.is_empty() {
        return Err(no_match());
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// A matcher for the paths `glob` (relative to `base_dir`) selects — what [`expand`] walks
/// with: `*` and `?` stay within a path component, `**` crosses them, the literal part is
/// escaped.
pub(crate) fn matcher(base_dir: &Path, glob: &str) -> Result<globset::GlobMatcher, RenderError> {
    let full = base_dir.join(glob);
    let mut pattern = String::new();
    let mut in_pattern = false;
    for component in full.components() {
        let text = component.as_os_str().to_string_lossy();
        let is_glob =
            in_pattern || (matches!(component, Component::Normal(_)) && is_pattern(&text));
        if !pattern.is_empty() && !pattern.ends_with('/') {
            pattern.push('/');
        }
        if is_glob {
            in_pattern = true;
            pattern.push_str(&text);
        } else {
            pattern.push_str(&escape(&text));
        }
    }
    GlobBuilder::new(&pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|error| RenderError::InvalidGlob {
            glob: glob.to_owned(),
            message: error.kind().to_string(),
        })
}

/// `text` with glob metacharacters escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Paths under `dir` (up to `depth` levels down) that `matcher` matches; does not follow
/// symbolic links to directories.
fn walk_matching(dir: &Path, depth: usize, matcher: &globset::GlobMatcher, out: &mut Vec<PathBuf>) {
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_real_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if matcher.is_match(&path) {
            out.push(path.clone());
        } else if is_real_dir {
            walk_matching(&path, depth - 1, matcher, out);
        }
    }
}

/// Every file below `dir`, sorted; symbolic links to files count, to directories do not.
fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<(PathBuf, bool)> = entries
        .flatten()
        .map(|e| {
            let dir = e.file_type().is_ok_and(|t| t.is_dir());
            (e.path(), dir)
        })
        .collect();
    paths.sort();
    for (path, is_dir) in paths {
        if is_dir {
            walk_files(&path, out);
        } else if path.is_file() {
            out.push(path);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "k8s/a.yaml",
            "k8s/b.yaml",
            "k8s/notes.txt",
            "k8s/sub/c.yaml",
            "k8s/sub/deeper/d.yaml",
            "other/e.yml",
        ] {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        dir
    }

    fn names(base: &Path, files: &[PathBuf]) -> Vec<String> {
        files
            .iter()
            .map(|f| f.strip_prefix(base).unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn star_stays_in_its_directory() {
        let dir = tree();
        let files = expand(dir.path(), "k8s/*.yaml").unwrap();
        assert_eq!(names(dir.path(), &files), ["k8s/a.yaml", "k8s/b.yaml"]);
    }

    #[test]
    fn double_star_descends() {
        let dir = tree();
        let files = expand(dir.path(), "k8s/**/*.yaml").unwrap();
        assert_eq!(
            names(dir.path(), &files),
            [
                "k8s/a.yaml",
                "k8s/b.yaml",
                "k8s/sub/c.yaml",
                "k8s/sub/deeper/d.yaml"
            ]
        );
    }

    #[test]
    fn directories_and_literal_files() {
        let dir = tree();
        let files = expand(dir.path(), "k8s/sub").unwrap();
        assert_eq!(
            names(dir.path(), &files),
            ["k8s/sub/c.yaml", "k8s/sub/deeper/d.yaml"]
        );
        let files = expand(dir.path(), "other/e.yml").unwrap();
        assert_eq!(names(dir.path(), &files), ["other/e.yml"]);
        let absolute = dir.path().join("k8s/{a,b}.yaml");
        let files = expand(Path::new("/nowhere"), &absolute.to_string_lossy()).unwrap();
        assert_eq!(names(dir.path(), &files), ["k8s/a.yaml", "k8s/b.yaml"]);
    }

    #[test]
    fn no_match_names_the_glob() {
        let dir = tree();
        let error = expand(dir.path(), "deploy/*.yaml").unwrap_err();
        assert!(matches!(&error, RenderError::NoMatch { glob, .. } if glob == "deploy/*.yaml"));
        assert!(error.to_string().contains("deploy/*.yaml"), "{error}");
        assert!(expand(dir.path(), "k8s/missing.yaml").is_err());
        assert!(matches!(
            expand(dir.path(), "k8s/[.yaml"),
            Err(RenderError::InvalidGlob { .. })
        ));
        assert!(matches!(
            expand(dir.path(), "https://example.com/app.yaml"),
            Err(RenderError::Unsupported { .. })
        ));
    }

    #[test]
    fn expand_all_keeps_first_occurrence_order() {
        let dir = tree();
        let files = expand_all(
            dir.path(),
            &["k8s/b.yaml".to_owned(), "k8s/*.yaml".to_owned()],
            false,
        )
        .unwrap();
        assert_eq!(
            names(dir.path(), &files.files),
            ["k8s/b.yaml", "k8s/a.yaml"]
        );
        assert!(files.unmatched.is_empty());
    }

    #[test]
    fn an_unmatched_pattern_is_listed_and_a_missing_path_is_an_error() {
        let dir = tree();
        let expansion = expand_all(
            dir.path(),
            &["deploy/*.yaml".to_owned(), "k8s/a.yaml".to_owned()],
            true,
        )
        .unwrap();
        assert_eq!(names(dir.path(), &expansion.files), ["k8s/a.yaml"]);
        assert_eq!(expansion.unmatched, ["deploy/*.yaml"]);
        assert!(expand_all(dir.path(), &["deploy/*.yaml".to_owned()], false).is_err());
        let error = expand_all(dir.path(), &["k8s/missing.yaml".to_owned()], true).unwrap_err();
        assert!(
            matches!(&error, RenderError::NoMatch { glob, .. } if glob == "k8s/missing.yaml"),
            "{error}"
        );
    }
}
