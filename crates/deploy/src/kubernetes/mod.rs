//! Kubernetes: the deployer, status checks, port-forwarding and logs, through kube-rs.

pub mod apply;
pub mod client;
pub mod forward;
pub mod logs;
pub mod status;

pub use apply::KubernetesDeployer;
