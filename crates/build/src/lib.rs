//! skiff's build stage: turns an artifact into an image.
//!
//! This crate owns the [`Builder`] trait and its implementations — the Docker engine
//! ([`docker::DockerBuilder`]) and user commands ([`custom::CustomBuilder`]) — plus what every
//! builder needs: `.dockerignore` matching, Dockerfile parsing and dependency discovery, build
//! context packing, taggers, the build cache and registry credentials. It takes typed options
//! ([`ArtifactSpec`]); scheduling several artifacts is the runner's job.
//!
//! A third party can implement [`Builder`] and hand it to the runner as `Box<dyn Builder>`:
//!
//! ```
//! use skiff_build::{BuildError, BuildRequest, Builder};
//! use skiff_types::event::Reporter;
//! use skiff_types::image::BuiltImage;
//!
//! struct Prebuilt;
//!
//! #[async_trait::async_trait]
//! impl Builder for Prebuilt {
//!     async fn build(&self, request: &BuildRequest<'_>, _reporter: &dyn Reporter) -> Result<BuiltImage, BuildError> {
//!         Ok(BuiltImage { image_name: request.artifact.image.clone(), reference: request.tag.clone(), image_id: None })
//!     }
//! }
//! let _boxed: Box<dyn Builder> = Box::new(Prebuilt);
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use skiff_types::event::Reporter;
use skiff_types::image::{BuiltImage, ImageRef};

pub mod artifact;
pub mod cache;
pub mod context;
pub mod credentials;
pub mod custom;
pub mod dependencies;
pub mod docker;
pub mod dockerfile;
pub mod dockerignore;
pub mod ko;
pub mod oci;
pub mod tag;
pub mod warm;

pub use artifact::{ArtifactSpec, BuilderSpec};

/// One build to perform.
#[derive(Debug, Clone)]
pub struct BuildRequest<'a> {
    /// What to build.
    pub artifact: &'a ArtifactSpec,
    /// The reference to produce (`--default-repo` already applied, tag chosen).
    pub tag: ImageRef,
    /// Push the result to its registry (the returned reference then carries the digest).
    pub push: bool,
    /// The built references of required artifacts, by their alias.
    pub required: BTreeMap<String, String>,
    /// Environment variables for templates and commands; the library reads none of its own.
    pub env: &'a BTreeMap<String, String>,
}

/// Errors of the build stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The build ran and failed.
    #[error("building {image} failed: {reason}")]
    Failed {
        /// The artifact's image name.
        image: String,
        /// What went wrong, with the builder's last output lines.
        reason: String,
    },
    /// The artifact uses a builder kind that skiff does not run.
    #[error(
        "artifact {image} uses the `{kind}` builder, which skiff does not support yet; use `docker` or `custom`"
    )]
    Unsupported {
        /// The artifact's image name.
        image: String,
        /// The builder kind, as spelled in skaffold.yaml.
        kind: String,
    },
    /// The Docker engine cannot be reached.
    #[error("{}", skiff_connect::unreachable_message(endpoint, reason))]
    EngineUnavailable {
        /// Where skiff looked.
        endpoint: String,
        /// The connection error.
        reason: String,
    },
    /// The artifact's Dockerfile does not exist.
    #[error("artifact {image}: Dockerfile {} does not exist", path.display())]
    MissingDockerfile {
        /// The artifact's image name.
        image: String,
        /// The path looked for.
        path: PathBuf,
    },
    /// The Dockerfile cannot be parsed.
    #[error("{}:{line}: {message}", path.display())]
    Dockerfile {
        /// The Dockerfile.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A base image is neither local nor pullable.
    #[error(
        "artifact {image}: base image {base} is not in the local engine and cannot be pulled ({reason}); build or load it locally first — this machine cannot pull from the internet"
    )]
    BaseImage {
        /// The artifact's image name.
        image: String,
        /// The base image.
        base: String,
        /// The engine's words.
        reason: String,
    },
    /// A feature needs BuildKit, which is not in use.
    #[error("artifact {image}: `{feature}` needs BuildKit; set `build.local.useBuildkit: true`")]
    NeedsBuildKit {
        /// The artifact's image name.
        image: String,
        /// The option (`secrets`, `ssh`).
        feature: String,
    },
    /// The registry refused or could not be reached.
    #[error("pushing {reference} to {registry} failed: {reason}")]
    Push {
        /// The reference pushed.
        reference: String,
        /// The registry host.
        registry: String,
        /// The HTTP status or connection error, in words.
        reason: String,
    },
    /// A command could not be started.
    #[error("artifact {image}: cannot run `{command}`: {reason}")]
    Command {
        /// The artifact's image name.
        image: String,
        /// The command.
        command: String,
        /// Why.
        reason: String,
    },
    /// A template (build arg, tag template) could not be rendered.
    #[error("artifact {image}: {field}: {source}")]
    Template {
        /// The artifact's image name.
        image: String,
        /// The field.
        field: String,
        /// Why.
        source: skiff_types::template::TemplateError,
    },
    /// A tag could not be computed.
    #[error("artifact {image}: cannot compute the tag: {reason}")]
    Tag {
        /// The artifact's image name.
        image: String,
        /// Why.
        reason: String,
    },
    /// A registry request failed (pulling a base image, pushing an image).
    #[error("registry {registry}: {action} failed: {reason}")]
    Registry {
        /// The registry host.
        registry: String,
        /// What skiff was doing.
        action: String,
        /// The HTTP status and the registry's words, or the connection error.
        reason: String,
    },
    /// A registry could not be reached: the connection failed, or it did not answer in time.
    #[error("registry {registry}: {action} failed: {cause}; {}", registry_question(.registry))]
    RegistryUnreachable {
        /// The registry host.
        registry: String,
        /// What skiff was doing.
        action: String,
        /// The connection error or the timeout, in words.
        cause: String,
    },
    /// Loading the image into the local Docker engine failed.
    #[error("loading {reference} into the Docker engine at {endpoint} failed: {reason}")]
    Load {
        /// The image reference.
        reference: String,
        /// The engine endpoint.
        endpoint: String,
        /// The engine's words.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl From<skiff_connect::ConnectError> for BuildError {
    fn from(error: skiff_connect::ConnectError) -> BuildError {
        BuildError::EngineUnavailable {
            endpoint: error.endpoint().to_owned(),
            reason: error.reason().to_owned(),
        }
    }
}

/// What a registry that cannot be reached makes one ask.
pub(crate) fn registry_question(registry: &str) -> String {
    format!("is the registry running, and is {registry} the right address?")
}

/// What to do when a push cannot reach `registry` (down, or a wrong address): said the same way
/// whichever builder pushed. The build itself succeeded; only the push is missing.
pub(crate) fn push_again_hint(registry: &str) -> String {
    format!(
        "is the registry running at {registry}? Start it (or correct the address), then build again; `skiff dev` pushes again on the next change"
    )
}

/// Builds one artifact into an image.
#[async_trait::async_trait]
pub trait Builder: Send + Sync {
    /// Build `request`, sending progress and output lines to `reporter`.
    async fn build(
        &self,
        request: &BuildRequest<'_>,
        reporter: &dyn Reporter,
    ) -> Result<BuiltImage, BuildError>;
}
