//! skiff's render stage: the exact objects to deploy.
//!
//! This crate owns the [`Renderer`] trait: from manifest sources (raw YAML, kustomize, helm)
//! and the images just built, produce a [`ManifestSet`] with images, labels and namespaces
//! filled in. The implementations arrive with the render-stage work.
//!
//! ```
//! use skiff_render::RenderError;
//! let error = RenderError::NoMatch { glob: "k8s/*.yaml".into() };
//! assert!(error.to_string().contains("k8s/*.yaml"));
//! ```

use skiff_types::event::Reporter;
use skiff_types::image::BuiltImage;
pub use skiff_types::manifest::ManifestSet;

/// Errors of the render stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// A `rawYaml` glob matched no file.
    #[error("manifest glob `{glob}` matches no file")]
    NoMatch {
        /// The glob as configured.
        glob: String,
    },
}

/// Produces the objects to deploy.
#[async_trait::async_trait]
pub trait Renderer: Send + Sync {
    /// Render every source with `images` substituted.
    async fn render(
        &self,
        images: &[BuiltImage],
        reporter: &dyn Reporter,
    ) -> Result<ManifestSet, RenderError>;
}
