//! skiff's sync stage: changed files into running containers, without a rebuild.
//!
//! - [`rules`]: typed sync rules and the pure [`rules::decide`] — sync (a [`SyncPlan`]) or
//!   rebuild, naming the file that forced the rebuild.
//! - [`Syncer`]: applies a plan to every running container of one image; two transports:
//!   [`docker::DockerSyncer`] (Engine API archive upload, works on `FROM scratch`) and
//!   [`kubernetes::KubernetesSyncer`] (a tar stream to `tar x` through exec).
//! - [`archive`]: the tar archive both send; a file whose real path is outside the context is
//!   refused, entry names are normalised.
//! - [`hooks`]: `sync.hooks` host commands and Skaffold's hook variables.
//!
//! ```
//! use skiff_sync::SyncPlan;
//! let plan = SyncPlan::default();
//! assert!(plan.is_empty());
//! ```

use std::path::PathBuf;
use std::time::Duration;

use skiff_types::event::Reporter;

pub mod archive;
pub mod docker;
mod driver;
pub mod hooks;
pub mod kubernetes;
pub mod rules;

pub use rules::{Decision, SyncHook, SyncHooks, SyncRules, decide};

/// One file to copy: from the host into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCopy {
    /// Absolute path on the host.
    pub source: PathBuf,
    /// Path in the container: absolute, or relative to its working directory.
    pub destination: String,
}

/// One path to delete in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDelete {
    /// The deleted file on the host (for the hooks' `SKAFFOLD_FILES_DELETED`).
    pub source: PathBuf,
    /// Path in the container: absolute, or relative to its working directory.
    pub destination: String,
}

/// What to do in the containers of one artifact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// The artifact's context: no copied file may resolve outside it.
    pub context: PathBuf,
    /// Files to copy.
    pub copy: Vec<FileCopy>,
    /// Paths to delete.
    pub delete: Vec<FileDelete>,
    /// Hooks to run before and after.
    pub hooks: SyncHooks,
}

impl SyncPlan {
    /// Nothing to copy or delete.
    pub fn is_empty(&self) -> bool {
        self.copy.is_empty() && self.delete.is_empty()
    }
}

/// Which containers to sync: those of the run (`selector`) running `reference`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncTarget {
    /// The artifact's image name (`build.artifacts[].image`), for messages and events.
    pub image: String,
    /// The image reference the containers run (as deployed).
    pub reference: String,
    /// A `key=value` label selecting the run's pods or containers
    /// (`skaffold.dev/run-id=<id>`).
    pub selector: String,
    /// For hooks: `SKAFFOLD_KUBE_CONTEXT`.
    pub kube_context: Option<String>,
    /// The environment host hooks run with (the run's), besides the sync variables.
    pub env: std::collections::BTreeMap<String, String>,
}

/// What one sync did in one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerReport {
    /// `pod/container` or the container name.
    pub container: String,
    /// Files copied.
    pub copied: usize,
    /// Paths deleted.
    pub deleted: usize,
    /// Bytes of the archive sent.
    pub bytes: u64,
    /// Time taken in this container.
    pub duration: Duration,
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// One entry per container updated.
    pub containers: Vec<ContainerReport>,
    /// Wall time from start to done everywhere (hooks included).
    pub duration: Duration,
}

/// Errors of the sync stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// No running container uses the image.
    #[error("no running container of this run uses {reference} ({image}); nothing to sync into")]
    NoContainer {
        /// The artifact's image name.
        image: String,
        /// The reference looked for.
        reference: String,
    },
    /// The container cannot unpack an archive (no `tar`, `sh` or `head`).
    #[error(
        "cannot sync into {container}: its image {image} has no `tar` (skiff streams a tar \
         archive to `sh -c 'head -c N | tar x'`, or to busybox's); changes to it rebuild instead \
         — add busybox or tar to the image to sync ({detail})"
    )]
    NoTar {
        /// The container.
        container: String,
        /// The image reference.
        image: String,
        /// What the container answered.
        detail: String,
    },
    /// The container cannot delete files (no `rm`).
    #[error(
        "cannot delete {paths} in {container}: its image {image} has no `rm`; deletions rebuild \
         instead ({detail})"
    )]
    NoRm {
        /// The container.
        container: String,
        /// The image reference.
        image: String,
        /// The paths.
        paths: String,
        /// What the container answered.
        detail: String,
    },
    /// A file to copy resolves (through a symbolic link) outside the context.
    #[error(
        "{path} resolves to {target}, outside the artifact's context {context}; skiff does not \
         sync files from outside the context"
    )]
    OutsideContext {
        /// The file.
        path: PathBuf,
        /// Where it resolves to.
        target: PathBuf,
        /// The context.
        context: PathBuf,
    },
    /// A container path is not usable as a tar entry.
    #[error("container path `{path}` cannot be synced: {reason}")]
    BadPath {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// Reading a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The container went away while syncing (it is being replaced).
    #[error("{container} is gone: {detail}")]
    ContainerGone {
        /// The container.
        container: String,
        /// What the engine or API said.
        detail: String,
    },
    /// A Docker Engine API call failed.
    #[error("Docker engine at {endpoint}: {operation}: {message}")]
    Docker {
        /// The engine endpoint.
        endpoint: String,
        /// What skiff was doing.
        operation: String,
        /// What the engine said.
        message: String,
    },
    /// A Kubernetes API call failed.
    #[error("Kubernetes: {operation}: {message}")]
    Kubernetes {
        /// What skiff was doing.
        operation: String,
        /// What the API said.
        message: String,
    },
    /// A command in a container failed.
    #[error("`{command}` in {container} failed: {message}")]
    Exec {
        /// The container.
        container: String,
        /// The command.
        command: String,
        /// Exit code and output.
        message: String,
    },
    /// A `sync.hooks` host command failed.
    #[error("sync.hooks.{phase}: {source}")]
    HostHook {
        /// `before` or `after`.
        phase: &'static str,
        /// Why.
        #[source]
        source: skiff_hooks::HookError,
    },
    /// A `sync.hooks` container command failed.
    #[error("sync hook `{command}` ({phase} sync) failed: {message}")]
    Hook {
        /// `before` or `after`.
        phase: &'static str,
        /// The command.
        command: String,
        /// Why.
        message: String,
    },
}

impl SyncError {
    /// Whether the runner should rebuild the artifact instead (the container or the files
    /// cannot be synced), rather than report a failed iteration.
    pub fn rebuild_instead(&self) -> bool {
        matches!(
            self,
            SyncError::NoTar { .. }
                | SyncError::NoRm { .. }
                | SyncError::NoContainer { .. }
                | SyncError::OutsideContext { .. }
                | SyncError::BadPath { .. }
        )
    }
}

/// Copies files into running containers. Object-safe: the runner keeps a
/// `Box<dyn Syncer>` per deploy target.
#[async_trait::async_trait]
pub trait Syncer: Send + Sync {
    /// Apply `plan` to every running container of `target` (in parallel), running the plan's
    /// hooks before and after, and report an [`skiff_types::event::Event::Synced`].
    async fn sync(
        &self,
        target: &SyncTarget,
        plan: &SyncPlan,
        reporter: &dyn Reporter,
    ) -> Result<SyncReport, SyncError>;
}
