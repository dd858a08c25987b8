//! skiff's deploy stage: puts rendered objects (or images) where they run, proves they came
//! up, and gives the developer ports and log streams that survive redeploys.
//!
//! This crate owns the [`Deployer`] trait and its two implementations —
//! [`kubernetes::KubernetesDeployer`] (server-side apply through kube-rs; no `kubectl` needed)
//! and [`docker::DockerDeployer`] (`deploy.docker`: containers on the local engine) — plus the
//! separate components the runner composes around a deploy: status checks
//! ([`kubernetes::status`]), port-forwarding ([`kubernetes::forward`]) and logs
//! ([`kubernetes::logs`]). Everything it creates carries the run's labels, and cleanup never
//! touches what lacks them.
//!
//! ```
//! use skiff_deploy::{ResourceRef, RUN_ID_LABEL};
//!
//! let web = ResourceRef { api_version: "apps/v1".into(), kind: "Deployment".into(), namespace: Some("dev".into()), name: "web".into() };
//! assert_eq!(web.to_string(), "deployment/web");
//! assert_eq!(RUN_ID_LABEL, "skaffold.dev/run-id");
//! ```

use std::fmt;

use skiff_types::event::Reporter;
use skiff_types::image::BuiltImage;
pub use skiff_types::manifest::ManifestSet;

pub mod docker;
pub mod kubernetes;

pub use skiff_types::labels::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, RUN_ID_LABEL};

/// One Kubernetes object, by identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceRef {
    /// `apps/v1`, `v1`, …
    pub api_version: String,
    /// `Deployment`, `Service`, …
    pub kind: String,
    /// The namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl fmt::Display for ResourceRef {
    /// `deployment/web`, as kubectl and Skaffold print resources.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.to_ascii_lowercase(), self.name)
    }
}

/// What one apply did to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyAction {
    /// It did not exist.
    Created,
    /// It existed and was changed.
    Configured,
    /// Its rendered form had not changed since the last apply of this session; not sent.
    Unchanged,
}

/// What to deploy: rendered objects for Kubernetes, built images for local containers.
#[derive(Debug, Clone, Copy)]
pub struct DeployInput<'a> {
    /// The rendered objects.
    pub manifests: &'a ManifestSet,
    /// The images just built.
    pub images: &'a [BuiltImage],
}

/// What one deploy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployOutcome {
    /// Every object (or container, as a `Container` kind) and what happened to it.
    pub resources: Vec<(ResourceRef, ApplyAction)>,
}

/// Errors of the deploy stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// The kubeconfig cannot be read or names no such context.
    #[error("kubeconfig {kubeconfig}: {reason}")]
    Kubeconfig {
        /// The file (or files) read.
        kubeconfig: String,
        /// What is wrong, naming the context.
        reason: String,
    },
    /// The cluster's API server cannot be reached.
    #[error("cannot reach the Kubernetes API server of context `{context}` ({server}): {reason}")]
    ClusterUnreachable {
        /// The kube-context.
        context: String,
        /// The server URL.
        server: String,
        /// The connection error.
        reason: String,
    },
    /// RBAC forbids an operation.
    #[error("forbidden: cannot {verb} {resource} in namespace `{namespace}`: {message}")]
    Forbidden {
        /// The verb (`patch`, `delete`, `list`, …).
        verb: String,
        /// The resource (`deployments.apps`).
        resource: String,
        /// The namespace (empty for cluster scope).
        namespace: String,
        /// The server's message.
        message: String,
    },
    /// The API server rejected an object.
    #[error("{object} was rejected: {message}")]
    Rejected {
        /// The object, as `kind/name`.
        object: String,
        /// The server's message.
        message: String,
    },
    /// A rendered manifest is not a Kubernetes object skiff can apply.
    #[error("{origin}: {message}")]
    Manifest {
        /// Where it came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A resource failed to become ready (fail-fast reason or deadline).
    #[error("{resource} failed: {reason}")]
    NotReady {
        /// `kind/name`.
        resource: String,
        /// Why: `ImagePullBackOff: …`, `CrashLoopBackOff` with last log lines, deadline.
        reason: String,
    },
    /// The Docker engine cannot be reached.
    #[error("{}", skiff_connect::unreachable_message(endpoint, reason))]
    EngineUnavailable {
        /// Where skiff looked.
        endpoint: String,
        /// The connection error.
        reason: String,
    },
    /// The Docker engine refused an operation.
    #[error("docker: {operation} failed: {message}")]
    Docker {
        /// What skiff asked for (`create container web`, …).
        operation: String,
        /// The engine's message.
        message: String,
    },
    /// A local port could not be opened.
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
    /// Another Kubernetes API error.
    #[error("{operation}: {message}")]
    Api {
        /// What skiff asked for.
        operation: String,
        /// The server's or client's message.
        message: String,
    },
}

impl From<skiff_connect::ConnectError> for DeployError {
    fn from(error: skiff_connect::ConnectError) -> DeployError {
        match error {
            skiff_connect::ConnectError::Kubeconfig { kubeconfig, reason } => {
                DeployError::Kubeconfig { kubeconfig, reason }
            }
            skiff_connect::ConnectError::ClusterUnreachable {
                context,
                server,
                reason,
            } => DeployError::ClusterUnreachable {
                context,
                server,
                reason,
            },
            other => DeployError::EngineUnavailable {
                endpoint: other.endpoint().to_owned(),
                reason: other.reason().to_owned(),
            },
        }
    }
}

/// Deploys and removes again. Status, port-forward and logs are separate components.
#[async_trait::async_trait]
pub trait Deployer: Send + Sync {
    /// Apply `input`, reporting each object as it is created or changed.
    async fn deploy(
        &self,
        input: &DeployInput<'_>,
        reporter: &dyn Reporter,
    ) -> Result<DeployOutcome, DeployError>;

    /// Remove what this deployer's run created (by the run's labels).
    async fn cleanup(&self, reporter: &dyn Reporter) -> Result<(), DeployError>;
}
