//! The one error type of this crate, and the warnings that do not stop loading.

use std::fmt;
use std::path::{Path, PathBuf};

use skiff_types::template::TemplateError;

use crate::patch::PatchError;

/// A position in a configuration file (1-based line and column, 0-based byte offset).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// 0-based byte offset into the file.
    pub offset: usize,
}

impl Location {
    pub(crate) fn from_yaml(file: &Path, location: serde_yaml::Location) -> Location {
        Location {
            file: file.to_path_buf(),
            line: location.line(),
            column: location.column(),
            offset: location.index(),
        }
    }

    /// The location of the start of a file.
    pub fn start_of(file: &Path) -> Location {
        Location {
            file: file.to_path_buf(),
            line: 1,
            column: 1,
            offset: 0,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Something the user should fix, though the configuration loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where, when known.
    pub location: Option<Location>,
    /// One sentence that says what to change.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(location) => write!(f, "{location}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No configuration file was given and none of the default names exists.
    #[error(
        "no skaffold.yaml or skaffold.yml in {}; pass the file with -f/--filename",
        dir.display()
    )]
    NotFound {
        /// The directory searched.
        dir: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no configuration document.
    #[error("{}: the file is empty; a skaffold config needs at least `apiVersion` and `kind: Config`", file.display())]
    Empty {
        /// The file.
        file: PathBuf,
    },
    /// The YAML itself is malformed.
    #[error("{location}: YAML syntax error: {message}")]
    Syntax {
        /// Where the parser stopped.
        location: Location,
        /// The parser's words.
        message: String,
    },
    /// The YAML is well-formed but does not fit the schema: unknown field, wrong type, missing
    /// required field, bad value.
    #[error("{}{}{message}{}", location_prefix(location.as_ref()), field_prefix(field), help_suffix(help.as_deref()))]
    Invalid {
        /// Where, when known.
        location: Option<Location>,
        /// The offending field as a dotted path (`build.artifacts[0].docker`), when known.
        field: Option<String>,
        /// What is wrong.
        message: String,
        /// What to do about it, e.g. "did you mean `dockerfile`?".
        help: Option<String>,
    },
    /// `-p NAME` names a profile that no loaded configuration defines.
    #[error("profile `{name}` is not defined in {}{}", file.display(), available_suffix(available))]
    UnknownProfile {
        /// The requested name.
        name: String,
        /// The root configuration file.
        file: PathBuf,
        /// The profiles that exist.
        available: Vec<String>,
    },
    /// `-m NAME` names no configuration's `metadata.name`.
    #[error("module `{name}` is not defined in {}{}", file.display(), available_suffix(available))]
    UnknownModule {
        /// The requested name.
        name: String,
        /// The root configuration file.
        file: PathBuf,
        /// The config names that exist.
        available: Vec<String>,
    },
    /// A profile's activation rule is malformed.
    #[error("{location}: profile `{profile}`: {message}")]
    Activation {
        /// Where the profile is.
        location: Location,
        /// The profile.
        profile: String,
        /// What is wrong.
        message: String,
    },
    /// A profile's patch could not be applied.
    #[error("{location}: profile `{profile}`, patch {index} (`{op} {path}`): {source}")]
    Patch {
        /// Where the patch is.
        location: Box<Location>,
        /// The profile.
        profile: String,
        /// 0-based index of the patch in the profile.
        index: usize,
        /// The operation.
        op: String,
        /// The JSON pointer the patch targets.
        path: String,
        /// Why it failed.
        source: Box<PatchError>,
    },
    /// `requires` loops back to a configuration already being loaded.
    #[error("cyclic `requires`: {}", chain.join(" → "))]
    Cycle {
        /// The chain of configurations, the first repeated at the end.
        chain: Vec<String>,
    },
    /// A `requires` entry points at something skiff cannot load.
    #[error("{location}: {message}")]
    Requires {
        /// Where the entry is.
        location: Location,
        /// What is wrong.
        message: String,
    },
    /// A templated field is malformed or uses an undefined variable.
    #[error("{}: field `{field}`: {source}{}", file.display(), template_help(source))]
    Template {
        /// The file.
        file: PathBuf,
        /// The field, as a dotted path.
        field: String,
        /// Why.
        source: TemplateError,
    },
    /// A field is set that skiff cannot act on, and going on without it would do the wrong
    /// thing (see `NOT_ACTED_ON`).
    #[error("{}`{field}`: {message}", location_prefix(location.as_ref()))]
    NotSupported {
        /// Where it is set.
        location: Option<Location>,
        /// The field (`build.cluster`).
        field: String,
        /// Why, and what to do.
        message: String,
    },
    /// The configuration asks for something skiff does not do yet.
    #[error("{what} is not supported by skiff yet{}", location_suffix(location.as_ref()))]
    Unsupported {
        /// Where it is configured, when known.
        location: Option<Location>,
        /// What, naming the kind (`the jib builder for artifact app`).
        what: String,
    },
}

impl ConfigError {
    /// Where the error is, when it is in a file.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Syntax { location, .. }
            | ConfigError::Activation { location, .. }
            | ConfigError::Requires { location, .. } => Some(location),
            ConfigError::Patch { location, .. } => Some(location),
            ConfigError::Invalid { location, .. }
            | ConfigError::Unsupported { location, .. }
            | ConfigError::NotSupported { location, .. } => location.as_ref(),
            _ => None,
        }
    }
}

fn location_prefix(location: Option<&Location>) -> String {
    location.map(|l| format!("{l}: ")).unwrap_or_default()
}

fn location_suffix(location: Option<&Location>) -> String {
    location.map(|l| format!(" ({l})")).unwrap_or_default()
}

fn field_prefix(field: &Option<String>) -> String {
    field
        .as_deref()
        .filter(|f| !f.is_empty())
        .map(|f| format!("{f}: "))
        .unwrap_or_default()
}

fn help_suffix(help: Option<&str>) -> String {
    help.map(|h| format!("; {h}")).unwrap_or_default()
}

fn available_suffix(available: &[String]) -> String {
    if available.is_empty() {
        " (it defines none)".to_owned()
    } else {
        format!("; available: {}", available.join(", "))
    }
}

fn template_help(error: &TemplateError) -> &'static str {
    match error {
        TemplateError::MissingVariable { .. } => {
            "; set the environment variable, or give a default: {{default \"value\" .NAME}}"
        }
        _ => "",
    }
}
