//! One way to reach the Docker engine and a Kubernetes cluster, below the stage crates that talk
//! to them (build, deploy, sync): which endpoint `DOCKER_HOST` names, the API version both sides
//! speak, one health check, and one wording of what went wrong; for a cluster, the merged
//! kubeconfig, the context and a probe ([`kubernetes`]). A run connects once and hands clones of
//! the [`DockerConnection`] (a cheap handle) to every stage.
//!
//! ```no_run
//! # async fn example() -> Result<(), skiff_connect::ConnectError> {
//! let engine = skiff_connect::DockerConnection::connect(None).await?;
//! engine.ping().await?;
//! println!("{} speaks API {}", engine.endpoint(), engine.client().client_version());
//! # Ok(())
//! # }
//! ```

pub mod kubernetes;

use skiff_types::error::chain;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as EngineError;

/// Where the engine is when `DOCKER_HOST` is not set.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// How long connecting and negotiating may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one API request may take once connected: builds and pulls stream for minutes.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// Why the engine could not be reached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// Nothing (or nothing that speaks the Docker API) answers at the endpoint.
    #[error("{}", unreachable_message(endpoint, reason))]
    Unreachable {
        /// Where skiff looked.
        endpoint: String,
        /// What happened, in words ([`describe`]).
        reason: String,
        /// The client's error, when there is one.
        #[source]
        source: Option<EngineError>,
    },
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
}

impl ConnectError {
    /// Where skiff looked: the engine endpoint, the kubeconfig files, or the API server.
    pub fn endpoint(&self) -> &str {
        match self {
            ConnectError::Unreachable { endpoint, .. } => endpoint,
            ConnectError::Kubeconfig { kubeconfig, .. } => kubeconfig,
            ConnectError::ClusterUnreachable { server, .. } => server,
        }
    }

    /// What happened, without the endpoint and advice.
    pub fn reason(&self) -> &str {
        match self {
            ConnectError::Unreachable { reason, .. }
            | ConnectError::Kubeconfig { reason, .. }
            | ConnectError::ClusterUnreachable { reason, .. } => reason,
        }
    }
}

/// What every stage says when the engine at `endpoint` cannot be reached, for `reason`.
pub fn unreachable_message(endpoint: &str, reason: &str) -> String {
    format!(
        "cannot reach the Docker engine at {endpoint}: {reason}; start the engine, or point DOCKER_HOST at one that runs"
    )
}

/// A connection to one Docker engine; clones share it.
#[derive(Debug, Clone)]
pub struct DockerConnection {
    docker: Docker,
    endpoint: String,
}

impl DockerConnection {
    /// Connects to the engine at `docker_host` (the value of `DOCKER_HOST`: `unix:///path`,
    /// `/path`, `tcp://host:port` or `http://host:port`; `None` or empty means
    /// [`DEFAULT_DOCKER_HOST`]) and agrees on an API version with it.
    pub async fn connect(docker_host: Option<&str>) -> Result<DockerConnection, ConnectError> {
        let endpoint = docker_host
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .unwrap_or(DEFAULT_DOCKER_HOST)
            .to_owned();
        let unreachable = |reason: String, source: Option<EngineError>| ConnectError::Unreachable {
            endpoint: endpoint.clone(),
            reason,
            source,
        };
        let timeout = CONNECT_TIMEOUT.as_secs();
        let version = bollard::API_DEFAULT_VERSION;
        let connected = if let Some(path) = endpoint.strip_prefix("unix://") {
            Docker::connect_with_unix(path, timeout, version)
        } else if endpoint.starts_with('/') {
            Docker::connect_with_unix(&endpoint, timeout, version)
        } else if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
            Docker::connect_with_http(&endpoint, timeout, version)
        } else {
            let scheme = endpoint.split("://").next().unwrap_or_default();
            return Err(unreachable(
                format!(
                    "skiff connects to `unix://` sockets and plain `tcp://` endpoints, not `{scheme}://`"
                ),
                None,
            ));
        };
        let docker = connected.map_err(|e| unreachable(describe(&e), Some(e)))?;
        let mut docker = docker
            .negotiate_version()
            .await
            .map_err(|e| unreachable(describe(&e), Some(e)))?;
        docker.set_timeout(REQUEST_TIMEOUT);
        Ok(DockerConnection { docker, endpoint })
    }

    /// The connection to the engine at `docker_host` this process already made (connecting on
    /// first use), checked with [`DockerConnection::ping`]: every stage of a run, and every
    /// iteration of a dev loop, shares one client and one negotiated API version.
    pub async fn shared(docker_host: Option<&str>) -> Result<DockerConnection, ConnectError> {
        static CONNECTIONS: OnceLock<Mutex<HashMap<String, DockerConnection>>> = OnceLock::new();
        let key = docker_host
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .unwrap_or(DEFAULT_DOCKER_HOST)
            .to_owned();
        let connections = CONNECTIONS.get_or_init(|| Mutex::new(HashMap::new()));
        let known = connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some(connection) = known {
            connection.ping().await?;
            return Ok(connection);
        }
        let connection = DockerConnection::connect(Some(&key)).await?;
        connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, connection.clone());
        Ok(connection)
    }

    /// The endpoint it was reached at.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The API client.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// The health check: whether the engine answers now.
    pub async fn ping(&self) -> Result<(), ConnectError> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| ConnectError::Unreachable {
                endpoint: self.endpoint.clone(),
                reason: describe(&e),
                source: Some(e),
            })
    }
}

/// Whether `error` means the engine itself cannot be reached (rather than refusing one
/// request).
pub fn is_unreachable(error: &EngineError) -> bool {
    matches!(
        error,
        EngineError::SocketNotFoundError(_)
            | EngineError::HyperLegacyError { .. }
            | EngineError::IOError { .. }
            | EngineError::RequestTimeoutError
    )
}

/// An engine API error in words a person can act on, with its causes.
pub fn describe(error: &EngineError) -> String {
    match error {
        EngineError::SocketNotFoundError(path) => format!("socket {path} does not exist"),
        EngineError::RequestTimeoutError => "the engine did not answer in time".to_owned(),
        EngineError::DockerResponseServerError {
            status_code,
            message,
        } => format!("engine answered HTTP {status_code}: {message}"),
        EngineError::DockerStreamError { error } => error.clone(),
        other => {
            // The client's own wording ("Error in the hyper legacy client: …") says nothing a
            // person can act on; its causes ("tcp connect error: Connection refused") do.
            match (other, std::error::Error::source(other)) {
                (EngineError::HyperLegacyError { .. }, Some(cause)) => chain(cause),
                _ => chain(other),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_socket_is_unreachable_with_one_wording() {
        let error = DockerConnection::connect(Some("unix:///nonexistent/docker.sock"))
            .await
            .unwrap_err();
        assert_eq!(error.endpoint(), "unix:///nonexistent/docker.sock");
        let text = error.to_string();
        assert!(
            text.starts_with("cannot reach the Docker engine at unix:///nonexistent/docker.sock: "),
            "{text}"
        );
        assert!(
            text.ends_with("point DOCKER_HOST at one that runs"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_failed_connection_is_not_kept() {
        for _ in 0..2 {
            let error = DockerConnection::shared(Some("unix:///nonexistent/other.sock"))
                .await
                .unwrap_err();
            assert_eq!(error.endpoint(), "unix:///nonexistent/other.sock");
        }
    }

    #[tokio::test]
    async fn unknown_schemes_are_named() {
        let error = DockerConnection::connect(Some("ssh://host"))
            .await
            .unwrap_err();
        assert!(error.reason().contains("not `ssh://`"), "{error}");
        assert!(std::error::Error::source(&error).is_none());
    }
}
