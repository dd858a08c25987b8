//! The engine connection as the deployer uses it: its health, and its errors as [`DeployError`]s.

use super::*;

/// Whether the engine was found gone, shared by the deployer and its log followers so that an
/// outage is reported once, however many streams and deploys notice it.
#[derive(Debug)]
pub(super) struct EngineHealth {
    pub(super) endpoint: String,
    pub(super) lost: AtomicBool,
}

impl EngineHealth {
    /// The engine stopped answering: say so, unless already said for this outage.
    pub(super) fn lost(&self, reporter: &dyn Reporter, reason: &str) {
        if self.lost.swap(true, Ordering::SeqCst) {
            return;
        }
        let reason = plain_reason(reason);
        warn(
            reporter,
            format!(
                "the Docker engine at {} does not answer ({reason}); start it again (or set \
                 DOCKER_HOST to one that runs) — skiff keeps watching, and the next change \
                 after the engine is back rebuilds and redeploys",
                self.endpoint
            ),
        );
    }

    /// The engine answers: say so once after an outage.
    pub(super) fn back(&self, reporter: &dyn Reporter) {
        if self.lost.swap(false, Ordering::SeqCst) {
            reporter.report(Event::Message {
                source: SOURCE,
                level: Level::Info,
                text: format!("the Docker engine at {} answers again", self.endpoint),
            });
        }
    }

    /// Notes `error` if it says the engine is unreachable.
    pub(super) fn observe(&self, reporter: &dyn Reporter, error: &DeployError) {
        if let DeployError::EngineUnavailable { reason, .. } = error {
            self.lost(reporter, reason);
        }
    }
}

/// Connects to the engine at `docker_host` and negotiates the API version.
pub(super) async fn connect_engine(
    docker_host: Option<&str>,
) -> Result<(Docker, String), DeployError> {
    let connection = DockerConnection::shared(docker_host).await?;
    Ok((
        connection.client().clone(),
        connection.endpoint().to_owned(),
    ))
}

/// A connection failure in words that say what happened to the engine.
pub(super) fn plain_reason(reason: &str) -> String {
    let reason = reason.strip_prefix("ping: ").unwrap_or(reason);
    if reason.contains("os error 2") || reason.contains("does not exist") {
        "its socket is gone: the engine is not running".to_owned()
    } else if reason.contains("Connection refused") || reason.contains("os error 111") {
        "connection refused: the engine is not running".to_owned()
    } else if reason.contains("error reading a body")
        || reason.contains("connection closed")
        || reason.contains("reset by peer")
    {
        "the connection broke off: the engine stopped".to_owned()
    } else {
        reason.to_owned()
    }
}

/// Whether the engine answers `/_ping` in time.
pub(super) async fn ping(docker: &Docker, endpoint: &str) -> Result<(), DeployError> {
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(engine_error(endpoint, "ping".to_owned(), &e)),
        Err(_) => Err(engine_error(
            endpoint,
            "ping".to_owned(),
            &EngineError::RequestTimeoutError,
        )),
    }
}

/// An engine error as a [`DeployError`]: connection failures mean the engine is unavailable.
pub(super) fn engine_error(endpoint: &str, operation: String, error: &EngineError) -> DeployError {
    match error {
        EngineError::DockerResponseServerError { message, .. } => DeployError::Docker {
            operation,
            message: message.clone(),
        },
        error if is_unreachable(error) => DeployError::EngineUnavailable {
            endpoint: endpoint.to_owned(),
            reason: format!("{operation}: {}", describe(error)),
        },
        other => DeployError::Docker {
            operation,
            message: describe(other),
        },
    }
}
