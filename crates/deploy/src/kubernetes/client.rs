//! The cluster connection (made by [`skiff_connect::kubernetes`]) as this crate uses it: the
//! mapping of kube-rs errors to
//! [`DeployError`] that every Kubernetes component of this crate shares.
//!
//! ```no_run
//! use skiff_deploy::kubernetes::client::{connect, KubeTarget};
//!
//! # async fn example() -> Result<(), skiff_deploy::DeployError> {
//! let target = KubeTarget {
//!     kubeconfig: Some("/home/dev/.kube/config".into()),
//!     context: Some("kind-dev".into()),
//!     namespace: None,
//!     ..KubeTarget::default()
//! };
//! let connection = connect(&target).await?;
//! assert_eq!(connection.context, "kind-dev");
//! # Ok(()) }
//! ```

pub use skiff_connect::kubernetes::{Connection, KubeTarget, PROBE_TIMEOUT};
pub(crate) use skiff_types::error::chain as error_chain;

use crate::DeployError;

/// Reads the kubeconfig `target` names, selects its context, and checks within
/// [`PROBE_TIMEOUT`] that the API server answers ([`skiff_connect::kubernetes::connect`]).
///
/// Errors: an unreadable or invalid file, or an unknown context (the available ones are listed)
/// → [`DeployError::Kubeconfig`]; no answer from the server → [`DeployError::ClusterUnreachable`].
pub async fn connect(target: &KubeTarget) -> Result<Connection, DeployError> {
    Ok(skiff_connect::kubernetes::connect(target).await?)
}

/// What an operation's failure means when the API server itself has gone away (crashed,
/// restarted, network down) since [`connect`]: when `error` is a plain API error and the server
/// does not answer a version probe either (within [`PROBE_TIMEOUT`]), the cause is the server,
/// not the object — the error becomes [`DeployError::ClusterUnreachable`], naming the context,
/// the server and what to do. Any other error, or a server that answers, is returned as is.
pub async fn explain_unreachable(connection: &Connection, error: DeployError) -> DeployError {
    let DeployError::Api { operation, .. } = &error else {
        return error;
    };
    let probe = tokio::time::timeout(PROBE_TIMEOUT, connection.client.apiserver_version()).await;
    let cause = match probe {
        Err(_) => format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
        // It answers (whatever it says): the failure was about the operation.
        Ok(Ok(_) | Err(kube::Error::Api(_))) => return error,
        Ok(Err(e)) => error_chain(&e),
    };
    DeployError::ClusterUnreachable {
        context: connection.context.clone(),
        server: connection.server.clone(),
        reason: format!(
            "{operation} failed: {cause}; check that the API server is running and that the \
             kubeconfig names its address — nothing was lost, and once it answers again the next \
             save (`skiff dev`) or command deploys again"
        ),
    }
}

/// Maps a kube-rs error of `operation` (`"apply deployment/web"`, `"list pods"`, …; the first
/// word is used as the verb when the server does not name one):
///
/// * 403 → [`DeployError::Forbidden`] with verb, resource (`deployments.apps`) and namespace
///   parsed from the server's message;
/// * 400 and 422 → [`DeployError::Rejected`] naming the object the server names (else
///   `operation`) and its message;
/// * anything else → [`DeployError::Api`].
pub(crate) fn api_error(operation: &str, error: &kube::Error) -> DeployError {
    api_error_for(operation, None, error)
}

/// [`api_error`], with the object to name in [`DeployError::Rejected`] given by the caller.
pub(crate) fn api_error_for(
    operation: &str,
    object: Option<&str>,
    error: &kube::Error,
) -> DeployError {
    let kube::Error::Api(status) = error else {
        return DeployError::Api {
            operation: operation.to_owned(),
            message: error_chain(error),
        };
    };
    match status.code {
        403 => forbidden(operation, status),
        400 | 422 => DeployError::Rejected {
            object: object.map(str::to_owned).unwrap_or_else(|| {
                match status
                    .details
                    .as_ref()
                    .filter(|d| !d.name.is_empty() && !d.kind.is_empty())
                {
                    Some(details) => {
                        format!("{}/{}", details.kind.to_ascii_lowercase(), details.name)
                    }
                    None => operation.to_owned(),
                }
            }),
            message: status.message.clone(),
        },
        code => DeployError::Api {
            operation: operation.to_owned(),
            message: if status.reason.is_empty() {
                format!("{} ({code})", status.message)
            } else {
                format!("{} ({code} {})", status.message, status.reason)
            },
        },
    }
}

/// The text between `prefix` and the next `terminator` in `text`.
fn between<'a>(text: &'a str, prefix: &str, terminator: char) -> Option<&'a str> {
    let start = text.find(prefix)? + prefix.len();
    let rest = &text[start..];
    let end = rest.find(terminator)?;
    Some(&rest[..end])
}

/// Parses RBAC's `User "u" cannot patch resource "deployments" in API group "apps" in the
/// namespace "dev"` (or `at the cluster scope`).
fn forbidden(operation: &str, status: &kube::core::Status) -> DeployError {
    let message = &status.message;
    let verb = between(message, "cannot ", ' ')
        .map(str::to_owned)
        .unwrap_or_else(|| {
            operation
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        });
    let group = between(message, "in API group \"", '"')
        .map(str::to_owned)
        .or_else(|| status.details.as_ref().map(|d| d.group.clone()));
    let resource = between(message, "resource \"", '"')
        .map(str::to_owned)
        .or_else(|| status.details.as_ref().map(|d| d.kind.clone()))
        .unwrap_or_default();
    let resource = match group.as_deref() {
        Some(group) if !group.is_empty() && !resource.is_empty() => format!("{resource}.{group}"),
        _ => resource,
    };
    let namespace = between(message, "in the namespace \"", '"')
        .unwrap_or_default()
        .to_owned();
    DeployError::Forbidden {
        verb,
        resource,
        namespace,
        message: message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::{Status, response::StatusDetails};

    fn api(code: u16, message: &str, details: Option<StatusDetails>) -> kube::Error {
        let mut status = Status::failure(message, "").with_code(code);
        status.details = details;
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn forbidden_names_verb_resource_and_namespace() {
        let error = api(
            403,
            r#"deployments.apps "web" is forbidden: User "system:serviceaccount:dev:nobody" cannot patch resource "deployments" in API group "apps" in the namespace "dev""#,
            None,
        );
        match api_error("apply deployment/web", &error) {
            DeployError::Forbidden {
                verb,
                resource,
                namespace,
                ..
            } => {
                assert_eq!(verb, "patch");
                assert_eq!(resource, "deployments.apps");
                assert_eq!(namespace, "dev");
            }
            other => panic!("{other:?}"),
        }
        let error = api(
            403,
            r#"namespaces is forbidden: User "x" cannot list resource "namespaces" in API group "" at the cluster scope"#,
            None,
        );
        match api_error("list namespaces", &error) {
            DeployError::Forbidden {
                verb,
                resource,
                namespace,
                ..
            } => {
                assert_eq!(
                    (verb.as_str(), resource.as_str(), namespace.as_str()),
                    ("list", "namespaces", "")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_is_rejected_and_others_are_api_errors() {
        let details = StatusDetails {
            name: "Bad_Name".into(),
            group: "apps".into(),
            kind: "Deployment".into(),
            uid: String::new(),
            causes: Vec::new(),
            retry_after_seconds: 0,
        };
        let error = api(
            422,
            "Deployment.apps \"Bad_Name\" is invalid",
            Some(details),
        );
        match api_error("apply", &error) {
            DeployError::Rejected { object, message } => {
                assert_eq!(object, "deployment/Bad_Name");
                assert!(message.contains("is invalid"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            api_error("get x", &api(500, "boom", None)),
            DeployError::Api { .. }
        ));
    }

    /// A connection to a port nothing listens on (one just released by the system).
    fn dead_connection() -> Connection {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let server = format!("http://127.0.0.1:{port}");
        let config = kube::Config::new(server.parse().expect("a URL"));
        Connection {
            client: kube::Client::try_from(config).expect("a client"),
            context: "gone".into(),
            server,
            default_namespace: "default".into(),
        }
    }

    #[tokio::test]
    async fn an_api_error_of_a_server_that_went_away_names_the_server_and_what_to_do() {
        let connection = dead_connection();
        let error = DeployError::Api {
            operation: "apply deployment/web".into(),
            message: "client error (Connect)".into(),
        };
        match explain_unreachable(&connection, error).await {
            DeployError::ClusterUnreachable {
                context,
                server,
                reason,
            } => {
                assert_eq!(context, "gone");
                assert_eq!(server, connection.server);
                assert!(
                    reason.starts_with("apply deployment/web failed: "),
                    "{reason}"
                );
                assert!(reason.contains("next save"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Errors that are about the object stay as they are.
        let rejected = DeployError::Rejected {
            object: "deployment/web".into(),
            message: "invalid".into(),
        };
        assert!(matches!(
            explain_unreachable(&connection, rejected).await,
            DeployError::Rejected { .. }
        ));
    }
}
