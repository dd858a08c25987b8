//! The labels skiff puts on what it creates — Kubernetes objects, containers, builder
//! containers — so that cleanup removes only what is skiff's, and only the run's own.

/// The label every object and container of a run carries, with the run id as value.
pub const RUN_ID_LABEL: &str = "skaffold.dev/run-id";
/// The label that marks what skiff manages.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// [`MANAGED_BY_LABEL`]'s value.
pub const MANAGED_BY_VALUE: &str = "skiff";
