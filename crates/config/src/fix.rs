//! `skiff fix`: a configuration file upgraded to a newer apiVersion, as text, with its comments
//! kept where the field they stand before keeps its place.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize as _;
use serde_yaml::Value;

use crate::document::{LATEST_API_VERSION, SUPPORTED_API_VERSIONS, parse_documents};
use crate::error::{ConfigError, Location, Warning};
use crate::upgrade;

/// A configuration file upgraded by [`fix`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixed {
    /// The upgraded file.
    pub text: String,
    /// Whether any document was upgraded (otherwise `text` is the file as it was).
    pub changed: bool,
    /// What the upgrade dropped or changed.
    pub warnings: Vec<Warning>,
}

/// Upgrades every document of `file` to `target` (default: the newest apiVersion skiff reads).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let file = dir.path().join("skaffold.yaml");
/// std::fs::write(&file, "apiVersion: skaffold/v1beta2\nkind: Config\n# the app\nbuild:\n  artifacts:\n  - image: app\n").unwrap();
/// let fixed = skiff_config::fix(&file, None).unwrap();
/// assert!(fixed.text.starts_with("apiVersion: skaffold/v4beta14\nkind: Config\n# the app\nbuild:\n"));
/// ```
pub fn fix(file: &Path, target: Option<&str>) -> Result<Fixed, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    fix_text(file, &text, target)
}

/// Where `version` stands among every apiVersion, oldest first.
fn rank(version: &str) -> Option<usize> {
    let version = if version == "skaffold/v4" {
        LATEST_API_VERSION
    } else {
        version
    };
    upgrade::CHAIN
        .iter()
        .chain(
            SUPPORTED_API_VERSIONS
                .iter()
                .filter(|v| v.starts_with("skaffold/v4beta")),
        )
        .position(|v| *v == version)
}

pub(crate) fn fix_text(
    file: &Path,
    text: &str,
    target: Option<&str>,
) -> Result<Fixed, ConfigError> {
    let target = target.unwrap_or(LATEST_API_VERSION);
    let target = if target == "skaffold/v4" {
        LATEST_API_VERSION
    } else {
        target
    };
    let Some(target_rank) = rank(target) else {
        return Err(ConfigError::Invalid {
            location: None,
            field: None,
            message: format!("`--version {target}` is not an apiVersion skiff knows"),
            help: Some(format!(
                "use one from skaffold/v1alpha1 to {LATEST_API_VERSION}"
            )),
        });
    };
    // Checks the file (and gives its errors their positions) before rewriting it.
    parse_documents(file, text)?;
    // The documents as written (with their `.`-keys), the empty ones left out as
    // `parse_documents` leaves them out.
    let mut trees = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let tree = Value::deserialize(document).map_err(|error| ConfigError::Syntax {
            location: Location::start_of(file),
            message: error.to_string(),
        })?;
        if !tree.is_null() {
            trees.push(tree);
        }
    }
    let mut warnings = Vec::new();
    let mut outputs = Vec::new();
    let mut changed = false;
    for tree in trees {
        let version = tree
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let version_rank = rank(&version).unwrap_or(target_rank);
        if version_rank > target_rank {
            return Err(ConfigError::Invalid {
                location: None,
                field: Some("apiVersion".into()),
                message: format!(
                    "{} has apiVersion {version}, newer than {target}: skiff upgrades, it does not downgrade",
                    file.display()
                ),
                help: None,
            });
        }
        if version_rank == target_rank {
            outputs.push(None);
            continue;
        }
        changed = true;
        let mut upgraded_tree = if upgrade::is_older(&version) {
            let chain_target = upgrade::CHAIN.contains(&target).then_some(target);
            let upgraded = upgrade::upgrade(&tree, &version, chain_target).map_err(|error| {
                ConfigError::Invalid {
                    location: None,
                    field: Some(error.field),
                    message: error.message,
                    help: None,
                }
            })?;
            for note in upgraded.notes {
                warnings.push(Warning {
                    location: None,
                    message: note.message,
                });
            }
            upgraded.tree
        } else {
            tree
        };
        if let Value::Mapping(map) = &mut upgraded_tree {
            map.insert("apiVersion".into(), target.into());
        }
        outputs.push(Some(upgraded_tree));
    }
    if !changed {
        return Ok(Fixed {
            text: text.to_owned(),
            changed,
            warnings,
        });
    }
    let sources = split_documents(text);
    let mut out = String::new();
    let mut next_output = outputs.into_iter();
    for (i, source) in sources.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        if source
            .trim()
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            out.push_str(source);
            continue;
        }
        match next_output.next().flatten() {
            None => out.push_str(source),
            Some(tree) => {
                let yaml = serde_yaml::to_string(&tree).map_err(|error| ConfigError::Syntax {
                    location: Location::start_of(file),
                    message: error.to_string(),
                })?;
                out.push_str(&with_comments(source, &yaml));
            }
        }
    }
    // What skiff writes, skiff must read.
    parse_documents(file, &out)?;
    Ok(Fixed {
        text: out,
        changed,
        warnings,
    })
}

/// The text of each document (without its `---` line).
fn split_documents(text: &str) -> Vec<String> {
    let mut documents = vec![String::new()];
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") {
            documents.push(String::new());
            continue;
        }
        if let Some(last) = documents.last_mut() {
            last.push_str(line);
        }
    }
    if documents.len() > 1 && documents[0].trim().is_empty() {
        documents.remove(0);
    }
    documents
}

/// `output` (serde_yaml's rendering of the upgraded document) with the comment lines of
/// `source` put back before the field they stood before, where that field still is.
fn with_comments(source: &str, output: &str) -> String {
    let mut pending = String::new();
    let mut before: HashMap<String, String> = HashMap::new();
    let source_lines: Vec<&str> = source.lines().collect();
    let paths = line_paths(&source_lines);
    for (line, path) in source_lines.iter().zip(&paths) {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            pending.push_str(line);
            pending.push('\n');
            continue;
        }
        if trimmed.is_empty() {
            if !pending.is_empty() {
                pending.push('\n');
            }
            continue;
        }
        if let Some(path) = path {
            if !pending.is_empty() {
                before.entry(path.clone()).or_default().push_str(&pending);
                pending.clear();
            }
        }
    }
    let output_lines: Vec<&str> = output.lines().collect();
    let output_paths = line_paths(&output_lines);
    let mut out = String::new();
    for (line, path) in output_lines.iter().zip(&output_paths) {
        if let Some(comment) = path.as_ref().and_then(|p| before.remove(p)) {
            out.push_str(&comment);
        }
        out.push_str(line);
        out.push('\n');
    }
    // Comments at the end of the document stay at its end.
    out.push_str(&pending);
    out
}

/// For each line of a block-style YAML document, the path of the key (or sequence item) it
/// starts (`build.artifacts[0].image`), or `None`. Best effort: flow style and multi-line
/// scalars give `None` or an approximate path.
fn line_paths(lines: &[&str]) -> Vec<Option<String>> {
    // (column of the key, path of the key, next item index of a sequence under it)
    let mut frames: Vec<(usize, String)> = Vec::new();
    let mut items: HashMap<String, usize> = HashMap::new();
    let mut block_scalar: Option<usize> = None;
    let mut out = Vec::with_capacity(lines.len());
    for line in lines {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            out.push(None);
            continue;
        }
        if let Some(column) = block_scalar {
            if indent > column {
                out.push(None);
                continue;
            }
            block_scalar = None;
        }
        let (mut column, mut rest, item) = match trimmed.strip_prefix("- ") {
            Some(rest) => (indent + 2, rest, true),
            None if trimmed == "-" => (indent + 2, "", true),
            None => (indent, trimmed, false),
        };
        let path;
        if item {
            while frames
                .last()
                .is_some_and(|(c, p)| *c > indent || (*c == indent && p.ends_with(']')))
            {
                frames.pop();
            }
            // A sequence may stand at its key's column (`key:\n- a`) or below it.
            let parent = frames.last().map(|(_, p)| p.clone()).unwrap_or_default();
            let index = items.entry(parent.clone()).or_insert(0);
            path = format!("{parent}[{index}]");
            *index += 1;
            // Nested `- - x`: rare in configs; treat the rest as the item's content.
            while let Some(inner) = rest.strip_prefix("- ") {
                rest = inner;
                column += 2;
            }
            frames.push((indent, path.clone()));
            // Keys inside the item are deeper than the dash.
            if let Some(key) = key_of(rest) {
                let key_path = format!("{path}.{key}");
                frames.push((column, key_path.clone()));
                items.remove(&key_path);
                if value_opens_block(rest) {
                    block_scalar = Some(column);
                }
                out.push(Some(path.clone()));
                continue;
            }
            out.push(Some(path));
            continue;
        }
        while frames.last().is_some_and(|(c, _)| *c >= column) {
            frames.pop();
        }
        let Some(key) = key_of(rest) else {
            out.push(None);
            continue;
        };
        let parent = frames.last().map(|(_, p)| p.clone()).unwrap_or_default();
        path = if parent.is_empty() {
            key.to_owned()
        } else {
            format!("{parent}.{key}")
        };
        items.remove(&path);
        frames.push((column, path.clone()));
        if value_opens_block(rest) {
            block_scalar = Some(column);
        }
        out.push(Some(path));
    }
    out
}

/// The key of a `key: value` (or `key:`) line.
fn key_of(rest: &str) -> Option<&str> {
    if rest.starts_with(['{', '[', '"', '\'', '|', '>', '&', '*', '!']) {
        return None;
    }
    let (key, _) = rest
        .split_once(':')
        .filter(|(_, after)| after.is_empty() || after.starts_with(' '))?;
    Some(key.trim())
}

fn value_opens_block(rest: &str) -> bool {
    let value = rest.split_once(": ").map(|(_, v)| v.trim()).unwrap_or("");
    value.starts_with('|') || value.starts_with('>')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_a_block_document() {
        let lines = [
            "apiVersion: v",
            "build:",
            "  artifacts:",
            "  - image: a",
            "    docker:",
            "      dockerfile: D",
            "  - image: b",
            "deploy:",
            "  kubectl:",
            "    manifests:",
            "    - k8s/*.yaml",
        ];
        let paths = line_paths(&lines);
        assert_eq!(paths[0].as_deref(), Some("apiVersion"));
        assert_eq!(paths[3].as_deref(), Some("build.artifacts[0]"));
        assert_eq!(
            paths[5].as_deref(),
            Some("build.artifacts[0].docker.dockerfile")
        );
        assert_eq!(paths[6].as_deref(), Some("build.artifacts[1]"));
        assert_eq!(paths[7].as_deref(), Some("deploy"));
        assert_eq!(paths[10].as_deref(), Some("deploy.kubectl.manifests[0]"));
    }

    #[test]
    fn comments_follow_fields_that_stay() {
        let source = "# header\napiVersion: skaffold/v2beta10\nkind: Config\nbuild:\n  # the app\n  artifacts:\n  - image: app # trailing\ndeploy:\n  # moved away\n  kubectl:\n    manifests: [k8s/*.yaml]\n# the end\n";
        let fixed = fix_text(Path::new("skaffold.yaml"), source, None).unwrap();
        assert!(fixed.changed);
        assert!(
            fixed.text.starts_with("# header\napiVersion: skaffold/v4beta14\nkind: Config\nbuild:\n  # the app\n  artifacts:\n"),
            "{}",
            fixed.text
        );
        assert!(
            fixed
                .text
                .contains("manifests:\n  rawYaml:\n  - k8s/*.yaml\n"),
            "{}",
            fixed.text
        );
        assert!(fixed.text.ends_with("# the end\n"), "{}", fixed.text);
    }

    #[test]
    fn a_current_file_is_left_as_it_is() {
        let source = "apiVersion: skaffold/v4beta14\nkind: Config\n";
        let fixed = fix_text(Path::new("skaffold.yaml"), source, None).unwrap();
        assert!(!fixed.changed);
        assert_eq!(fixed.text, source);
    }

    #[test]
    fn no_downgrades() {
        let source = "apiVersion: skaffold/v4beta14\nkind: Config\n";
        let error =
            fix_text(Path::new("skaffold.yaml"), source, Some("skaffold/v2beta1")).unwrap_err();
        assert!(error.to_string().contains("does not downgrade"), "{error}");
    }
}
