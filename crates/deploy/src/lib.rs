//! skiff's deploy stage: puts rendered objects where they run.
//!
//! This crate owns the [`Deployer`] trait: apply a [`ManifestSet`], say what changed, and clean
//! up exactly what this run created. Kubernetes and local-Docker deployers, status checks,
//! port-forwarding and logs arrive with the deploy-stage work.
//!
//! ```
//! use skiff_deploy::DeployOutcome;
//! let outcome = DeployOutcome::default();
//! assert!(outcome.changed.is_empty());
//! ```

use skiff_types::event::Reporter;
pub use skiff_types::manifest::ManifestSet;

/// What one deploy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployOutcome {
    /// Objects created or changed, as `kind/name` (`namespace/kind/name` when namespaced).
    pub changed: Vec<String>,
    /// Objects left as they were because their rendered form did not change.
    pub unchanged: Vec<String>,
}

/// Errors of the deploy stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// The target rejected an object.
    #[error("{object} was rejected: {message}")]
    Rejected {
        /// The object, as `kind/name`.
        object: String,
        /// The server's message.
        message: String,
    },
}

/// Deploys rendered objects and removes them again.
#[async_trait::async_trait]
pub trait Deployer: Send + Sync {
    /// Apply `manifests`.
    async fn deploy(
        &self,
        manifests: &ManifestSet,
        reporter: &dyn Reporter,
    ) -> Result<DeployOutcome, DeployError>;

    /// Remove what this deployer created in this run.
    async fn cleanup(&self, reporter: &dyn Reporter) -> Result<(), DeployError>;
}
