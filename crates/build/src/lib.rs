//! skiff's build stage: turns an artifact into an image.
//!
//! This crate owns the [`Builder`] trait. The Docker-engine, custom-command and daemonless
//! builders, the taggers, the cache and push arrive with the build-stage work; a third party can
//! already implement [`Builder`] and hand it to the runner as `Box<dyn Builder>`.
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
//!     async fn build(&self, request: &BuildRequest, _reporter: &dyn Reporter) -> Result<BuiltImage, BuildError> {
//!         Ok(BuiltImage { image_name: request.image_name.clone(), reference: request.tag.clone(), image_id: None })
//!     }
//! }
//! let _boxed: Box<dyn Builder> = Box::new(Prebuilt);
//! ```

use std::path::PathBuf;

use skiff_types::event::Reporter;
use skiff_types::image::{BuiltImage, ImageRef};

/// One artifact to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    /// The artifact's image name as configured (`build.artifacts[].image`).
    pub image_name: String,
    /// The artifact's context directory (absolute).
    pub context: PathBuf,
    /// The reference the build must produce.
    pub tag: ImageRef,
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
        /// What went wrong, in the builder's words.
        reason: String,
    },
    /// The artifact uses a builder kind that skiff does not run.
    #[error("artifact {image} uses the `{kind}` builder, which skiff does not support yet")]
    Unsupported {
        /// The artifact's image name.
        image: String,
        /// The builder kind, as spelled in skaffold.yaml.
        kind: String,
    },
}

/// Builds one artifact into an image.
#[async_trait::async_trait]
pub trait Builder: Send + Sync {
    /// Build `request`, sending progress and output lines to `reporter`.
    async fn build(
        &self,
        request: &BuildRequest,
        reporter: &dyn Reporter,
    ) -> Result<BuiltImage, BuildError>;
}
