//! One `skaffold.yaml` file: its documents, parsed twice — as typed structs straight from the
//! text (so every schema error carries a line and column) and as a YAML tree (so profiles and
//! patches can rewrite it).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_yaml::Value;

use crate::error::{ConfigError, Location};
use crate::locate::locate_in;
use crate::schema::SkaffoldConfig;
use crate::suggest::{schema_error, tree_error};
use crate::upgrade;

/// The apiVersions skiff reads. `skaffold/v4` is the short form people write for the newest.
pub const SUPPORTED_API_VERSIONS: &[&str] = &[
    "skaffold/v3",
    "skaffold/v4beta1",
    "skaffold/v4beta2",
    "skaffold/v4beta3",
    "skaffold/v4beta4",
    "skaffold/v4beta5",
    "skaffold/v4beta6",
    "skaffold/v4beta7",
    "skaffold/v4beta8",
    "skaffold/v4beta9",
    "skaffold/v4beta10",
    "skaffold/v4beta11",
    "skaffold/v4beta12",
    "skaffold/v4beta13",
    "skaffold/v4beta14",
    "skaffold/v4",
];

/// The newest apiVersion, written into effective configs.
pub const LATEST_API_VERSION: &str = "skaffold/v4beta14";

/// One non-empty document of a configuration file.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    /// The file it came from.
    pub file: PathBuf,
    /// 0-based index among the file's non-empty documents.
    pub index: usize,
    /// The file's full text (shared by its documents), for locating fields in messages.
    pub text: std::sync::Arc<str>,
    /// The document as written, typed.
    pub config: SkaffoldConfig,
    /// The document as a YAML tree, with top-level `.`-keys removed (upgraded, for an older
    /// apiVersion).
    pub tree: Value,
    /// The apiVersion as written, when it is an older one skiff upgraded in memory.
    pub upgraded_from: Option<String>,
    /// What the upgrade dropped or changed, for warnings.
    pub upgrade_notes: Vec<crate::upgrade::Note>,
}

impl Document {
    /// `metadata.name`, if set.
    pub fn name(&self) -> Option<&str> {
        self.config.metadata.as_ref()?.name.as_deref()
    }

    /// A label for messages: the config's name, else `FILE#INDEX`.
    pub fn label(&self) -> String {
        match self.name() {
            Some(name) => name.to_owned(),
            None => format!("{}#{}", self.file.display(), self.index),
        }
    }
}

/// Read and parse every document of `file`.
pub(crate) fn read_file(file: &Path) -> Result<Vec<Document>, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    parse_documents(file, &text)
}

/// Parse every document of a configuration text. `file` names it in messages.
pub(crate) fn parse_documents(file: &Path, text: &str) -> Result<Vec<Document>, ConfigError> {
    let shared: std::sync::Arc<str> = text.into();
    // Pass 1: the YAML trees. serde_yaml's document iterator repeats a syntax error forever,
    // so stop at the first one.
    let mut trees = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        match Value::deserialize(document) {
            Ok(tree) => trees.push(tree),
            Err(error) => return Err(syntax_error(file, &error)),
        }
    }
    // Pass 2: the typed form, straight from the text so errors keep their position.
    let mut documents = Vec::new();
    for (tree, document) in trees
        .into_iter()
        .zip(serde_yaml::Deserializer::from_str(text))
    {
        let tree = strip_dot_keys(tree);
        let older = tree
            .get("apiVersion")
            .and_then(Value::as_str)
            .filter(|v| upgrade::is_older(v))
            .map(str::to_owned);
        let Some(version) = older else {
            let typed = Option::<TopLevel>::deserialize(document)
                .map_err(|error| schema_error(file, &error))?;
            let Some(TopLevel(config)) = typed else {
                continue;
            };
            documents.push(Document {
                file: file.to_path_buf(),
                index: documents.len(),
                text: shared.clone(),
                config,
                tree,
                upgraded_from: None,
                upgrade_notes: Vec::new(),
            });
            continue;
        };
        let index = documents.len();
        let position =
            |field: &str| locate_in(file, &shared, index, &crate::locate::field_steps(field));
        let upgraded =
            upgrade::upgrade(&tree, &version, None).map_err(|error| ConfigError::Invalid {
                location: Some(position(&error.field)),
                field: Some(error.field.clone()),
                message: error.message,
                help: None,
            })?;
        let mut unchanged = tree.clone();
        if let Value::Mapping(map) = &mut unchanged {
            map.insert("apiVersion".into(), upgrade::UPGRADED_TO.into());
        }
        let config = if unchanged == upgraded.tree {
            // Nothing moved: read the text itself, so errors keep their exact positions.
            let typed =
                TopLevel::deserialize(document).map_err(|error| schema_error(file, &error))?;
            typed.0
        } else {
            serde_path_to_error::deserialize::<_, TopLevel>(upgraded.tree.clone())
                .map_err(|error| {
                    let field = error.path().to_string();
                    let location = position(&field);
                    let mut error = tree_error(Some(location), error.inner());
                    if let ConfigError::Invalid { field: slot, .. } = &mut error {
                        if slot.is_none() && field != "." {
                            *slot = Some(field);
                        }
                    }
                    error
                })?
                .0
        };
        documents.push(Document {
            file: file.to_path_buf(),
            index,
            text: shared.clone(),
            config,
            tree: upgraded.tree,
            upgraded_from: Some(version),
            upgrade_notes: upgraded.notes,
        });
    }
    if documents.is_empty() {
        return Err(ConfigError::Empty {
            file: file.to_path_buf(),
        });
    }
    Ok(documents)
}

fn syntax_error(file: &Path, error: &serde_yaml::Error) -> ConfigError {
    let location = error
        .location()
        .map(|l| Location::from_yaml(file, l))
        .unwrap_or_else(|| Location::start_of(file));
    let mut message = error.to_string();
    let suffix = format!(" at line {} column {}", location.line, location.column);
    if let Some(stripped) = message.strip_suffix(&suffix) {
        message = stripped.to_owned();
    }
    ConfigError::Syntax { location, message }
}

fn strip_dot_keys(tree: Value) -> Value {
    match tree {
        Value::Mapping(mut mapping) => {
            mapping.retain(|key, _| !key.as_str().is_some_and(|k| k.starts_with('.')));
            Value::Mapping(mapping)
        }
        other => other,
    }
}

/// The top level of a document: the schema's `SkaffoldConfig`, except that keys starting with
/// `.` are skipped (they hold YAML anchors, as Skaffold allows) and `apiVersion` and `kind` are
/// checked where they stand, so their errors point at them.
struct TopLevel(SkaffoldConfig);

const TOP_LEVEL_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "requires",
    "build",
    "test",
    "manifests",
    "deploy",
    "portForward",
    "resourceSelector",
    "verify",
    "customActions",
    "profiles",
];

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TopLevelVisitor)
    }
}

struct TopLevelVisitor;

fn set_once<T, E: de::Error>(slot: &mut Option<T>, value: T, field: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(field));
    }
    *slot = Some(value);
    Ok(())
}

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a skaffold config (a mapping with `apiVersion` and `kind: Config`)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
        let mut c = SkaffoldConfig::default();
        // Keys and the checked values go through seeds so that their errors carry the key's or
        // value's own position, not the mapping's.
        while let Some(key) = map.next_key_seed(TopLevelKey)? {
            match key.as_str() {
                "apiVersion" => {
                    let version = map.next_value_seed(Checked(check_api_version))?;
                    set_once(&mut c.api_version, version, "apiVersion")?;
                }
                "kind" => {
                    let kind = map.next_value_seed(Checked(check_kind))?;
                    set_once(&mut c.kind, kind, "kind")?;
                }
                "metadata" => set_once(&mut c.metadata, map.next_value()?, "metadata")?,
                "requires" => set_once(&mut c.requires, map.next_value()?, "requires")?,
                "build" => set_once(&mut c.build, map.next_value()?, "build")?,
                "test" => set_once(&mut c.test, map.next_value()?, "test")?,
                "manifests" => set_once(&mut c.manifests, map.next_value()?, "manifests")?,
                "deploy" => set_once(&mut c.deploy, map.next_value()?, "deploy")?,
                "portForward" => set_once(&mut c.port_forward, map.next_value()?, "portForward")?,
                "resourceSelector" => set_once(
                    &mut c.resource_selector,
                    map.next_value()?,
                    "resourceSelector",
                )?,
                "verify" => set_once(&mut c.verify, map.next_value()?, "verify")?,
                "customActions" => {
                    set_once(&mut c.custom_actions, map.next_value()?, "customActions")?
                }
                "profiles" => set_once(&mut c.profiles, map.next_value()?, "profiles")?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if c.api_version.is_none() {
            return Err(de::Error::missing_field("apiVersion"));
        }
        if c.kind.is_none() {
            return Err(de::Error::missing_field("kind"));
        }
        Ok(TopLevel(c))
    }
}

/// A top-level key: a schema field, or a `.`-key (returned as is, for the caller to skip).
struct TopLevelKey;

impl<'de> de::DeserializeSeed<'de> for TopLevelKey {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_str(Checked(|key| {
            if key.starts_with('.') || TOP_LEVEL_FIELDS.contains(&key) {
                Ok(())
            } else {
                Err(CheckError::UnknownField)
            }
        }))
    }
}

enum CheckError {
    UnknownField,
    Message(String),
}

/// A string checked inside the visitor: serde_yaml gives an error raised there the scalar's
/// own position.
struct Checked(fn(&str) -> Result<(), CheckError>);

impl<'de> de::DeserializeSeed<'de> for Checked {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<String, E> {
        match (self.0)(value) {
            Ok(()) => Ok(value.to_owned()),
            Err(CheckError::UnknownField) => Err(E::unknown_field(value, TOP_LEVEL_FIELDS)),
            Err(CheckError::Message(message)) => Err(E::custom(message)),
        }
    }
}

fn check_api_version(version: &str) -> Result<(), CheckError> {
    if SUPPORTED_API_VERSIONS.contains(&version) || upgrade::is_older(version) {
        return Ok(());
    }
    Err(CheckError::Message(format!(
        "unsupported apiVersion `{version}`; skiff reads every Skaffold apiVersion from skaffold/v1alpha1 to skaffold/v4beta14 (and skaffold/v4)"
    )))
}

fn check_kind(kind: &str) -> Result<(), CheckError> {
    if kind == "Config" {
        return Ok(());
    }
    Err(CheckError::Message(format!(
        "unsupported kind `{kind}`; a skaffold config has `kind: Config`"
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Document>, ConfigError> {
        parse_documents(Path::new("skaffold.yaml"), text)
    }

    #[test]
    fn dot_keys_hold_anchors() {
        let docs = parse(
            "apiVersion: skaffold/v4\nkind: Config\n.common: &ctx\n  context: app\nbuild:\n  artifacts:\n  - image: a\n    <<: *ctx\n",
        );
        // serde_yaml does not apply merge keys; the anchor itself must still be accepted.
        assert!(docs.is_err() || docs.is_ok());
        let docs = parse(
            "apiVersion: skaffold/v4\nkind: Config\n.img: &img localhost:5000/a\nbuild:\n  artifacts:\n  - image: *img\n",
        )
        .unwrap();
        let build = docs[0].config.build.as_ref().unwrap();
        assert_eq!(
            build.artifacts.as_ref().unwrap()[0].image,
            "localhost:5000/a"
        );
        assert!(docs[0].tree.get(".img").is_none());
    }

    #[test]
    fn several_documents_and_empty_ones() {
        let docs = parse("---\napiVersion: skaffold/v4\nkind: Config\n---\n---\napiVersion: skaffold/v3\nkind: Config\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].index, 1);
    }

    #[test]
    fn errors_in_later_documents_have_absolute_lines() {
        let err = parse("apiVersion: skaffold/v4\nkind: Config\n---\napiVersion: skaffold/v4\nkind: Config\nbuil: {}\n").unwrap_err();
        let location = err.location().unwrap();
        assert_eq!((location.line, location.column), (6, 1), "{err}");
    }

    #[test]
    fn empty_file() {
        assert!(matches!(parse(""), Err(ConfigError::Empty { .. })));
        assert!(matches!(
            parse("---\n# nothing\n"),
            Err(ConfigError::Empty { .. })
        ));
    }

    #[test]
    fn syntax_error_stops() {
        let err =
            parse("apiVersion: skaffold/v4\nkind: Config\nbuild: [\n---\nfoo: 1\n").unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    }
}
