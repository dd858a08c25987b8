//! Reads `skaffold.yaml` the way Skaffold does, once, into effective typed configs.
//!
//! This crate owns the configuration: every apiVersion from `skaffold/v3` to
//! `skaffold/v4beta14` (and `skaffold/v4`), several documents per file, `requires` between
//! files, `-m` modules, profiles (`-p`, activation rules, section replacement and JSON
//! patches), the fields Skaffold templates, Skaffold's defaults, and validation whose errors
//! carry `file:line:column`, the offending field and a suggestion. It reads files but never
//! the environment: the caller passes environment variables in [`LoadOptions`].
//!
//! ```
//! use skiff_config::{load, LoadOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(
//!     dir.path().join("skaffold.yaml"),
//!     "apiVersion: skaffold/v4\nkind: Config\nbuild:\n  artifacts:\n  - image: localhost:5000/app\n",
//! )
//! .unwrap();
//! let loaded = load(&LoadOptions { working_dir: dir.path().into(), ..Default::default() }).unwrap();
//! let artifact = &loaded.configs[0].config.build.as_ref().unwrap().artifacts.as_ref().unwrap()[0];
//! assert_eq!(artifact.docker.as_ref().unwrap().dockerfile.as_deref(), Some("Dockerfile"));
//! ```

mod defaults;
mod document;
mod error;
mod fix;
pub mod kubeconfig;
mod locate;
pub mod patch;
mod profiles;
mod resolve;
pub mod schema;
mod suggest;
pub mod support;
mod templating;
mod upgrade;
mod validate;

pub use defaults::{DEFAULT_RAW_YAML, STATUS_CHECK_DEADLINE_SECONDS};
pub use document::{LATEST_API_VERSION, SUPPORTED_API_VERSIONS};
pub use error::{ConfigError, Location, Warning};
pub use fix::{Fixed, fix};
pub use resolve::{EffectiveConfig, LoadOptions, Loaded, config_file, load};
pub use templating::UnresolvedTemplate;

/// The builder kinds an artifact sets (`docker`, `custom`, `ko`, …), as spelled in YAML.
pub fn builder_kinds(artifact: &schema::Artifact) -> Vec<&'static str> {
    validate::builder_kinds(artifact)
}
