//! skiff's sync stage: changed files into running containers, without a rebuild.
//!
//! This crate owns the [`Syncer`] trait: given the files to copy and delete (already mapped to
//! their paths in the container), update every running container of an artifact. The
//! Kubernetes and Docker transports arrive with the sync-stage work.
//!
//! ```
//! use skiff_sync::SyncPlan;
//! let plan = SyncPlan::default();
//! assert!(plan.is_empty());
//! ```

use std::path::PathBuf;

use skiff_types::event::Reporter;
use skiff_types::image::ImageRef;

/// One file to copy: from the host into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCopy {
    /// Absolute path on the host.
    pub source: PathBuf,
    /// Absolute path in the container.
    pub destination: String,
}

/// What to do in the containers of one artifact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// Files to copy.
    pub copy: Vec<FileCopy>,
    /// Absolute container paths to delete.
    pub delete: Vec<String>,
}

impl SyncPlan {
    /// Nothing to copy or delete.
    pub fn is_empty(&self) -> bool {
        self.copy.is_empty() && self.delete.is_empty()
    }
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Containers updated.
    pub containers: usize,
    /// Files copied into each.
    pub files: usize,
    /// Bytes sent to each.
    pub bytes: u64,
}

/// Errors of the sync stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// No running container uses the image.
    #[error("no running container uses {image}")]
    NoContainer {
        /// The image.
        image: String,
    },
}

/// Copies files into running containers.
#[async_trait::async_trait]
pub trait Syncer: Send + Sync {
    /// Apply `plan` to every running container built from `image`.
    async fn sync(
        &self,
        image: &ImageRef,
        plan: &SyncPlan,
        reporter: &dyn Reporter,
    ) -> Result<SyncOutcome, SyncError>;
}
