//! Connecting to a cluster: which kubeconfig, which context, which namespace — all passed in
//! explicitly by the caller (`--kubeconfig`, `--kube-context`/`deploy.kubeContext`, `-n`) —
//! and a probe that the API server answers. Also the mapping of kube-rs errors to
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

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

use crate::DeployError;

/// How long [`connect`] waits for the API server to answer its version probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which cluster to talk to, as the caller resolved it from flags, config and environment.
///
/// This crate reads no environment: when no explicit `--kubeconfig` is given, the caller passes
/// the files of `KUBECONFIG` (or `~/.kube/config`) in [`KubeTarget::default_kubeconfigs`];
/// [`KubeTarget::kubeconfig_search_path`] computes that list from the values it read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeTarget {
    /// `--kubeconfig`: one explicit file; it must exist. Wins over `default_kubeconfigs`.
    pub kubeconfig: Option<PathBuf>,
    /// Used when `kubeconfig` is `None`: files merged in order, first value wins (as kubectl
    /// merges `KUBECONFIG`); files that do not exist are skipped.
    pub default_kubeconfigs: Vec<PathBuf>,
    /// `--kube-context` or `deploy.kubeContext`; `None` → the kubeconfig's `current-context`.
    pub context: Option<String>,
    /// `-n/--namespace`; `None` → the context's namespace, else `default`.
    pub namespace: Option<String>,
}

impl KubeTarget {
    /// The kubeconfig files kubectl would read: the entries of `kubeconfig_env` (the value of
    /// `KUBECONFIG`, split like `PATH`) when set and non-empty, else `<home>/.kube/config`.
    ///
    /// ```
    /// use std::path::{Path, PathBuf};
    /// use skiff_deploy::kubernetes::client::KubeTarget;
    ///
    /// let paths = KubeTarget::kubeconfig_search_path(Some("/a:/b".as_ref()), Some(Path::new("/home/me")));
    /// assert_eq!(paths, [PathBuf::from("/a"), PathBuf::from("/b")]);
    /// let paths = KubeTarget::kubeconfig_search_path(None, Some(Path::new("/home/me")));
    /// assert_eq!(paths, [PathBuf::from("/home/me/.kube/config")]);
    /// ```
    pub fn kubeconfig_search_path(
        kubeconfig_env: Option<&OsStr>,
        home: Option<&Path>,
    ) -> Vec<PathBuf> {
        let from_env: Vec<PathBuf> = kubeconfig_env
            .map(|value| {
                std::env::split_paths(value)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if !from_env.is_empty() {
            return from_env;
        }
        home.map(|home| vec![home.join(".kube").join("config")])
            .unwrap_or_default()
    }
}

/// A client for one cluster, and what it was made from.
#[derive(Clone)]
pub struct Connection {
    /// The kube-rs client; its default namespace is `default_namespace`.
    pub client: kube::Client,
    /// The kube-context used.
    pub context: String,
    /// The API server URL.
    pub server: String,
    /// Where namespaced objects without a namespace go: `-n`, else the context's namespace,
    /// else `default`.
    pub default_namespace: String,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("context", &self.context)
            .field("server", &self.server)
            .field("default_namespace", &self.default_namespace)
            .finish_non_exhaustive()
    }
}

/// Reads the kubeconfig `target` names, selects its context, and checks within
/// [`PROBE_TIMEOUT`] that the API server answers.
///
/// Errors: an unreadable or invalid file, or an unknown context (the available ones are listed)
/// → [`DeployError::Kubeconfig`]; no answer from the server → [`DeployError::ClusterUnreachable`].
pub async fn connect(target: &KubeTarget) -> Result<Connection, DeployError> {
    let (kubeconfig, files) = read_kubeconfig(target)?;
    let context = select_context(&kubeconfig, target.context.as_deref(), &files)?;
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..KubeConfigOptions::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| DeployError::Kubeconfig {
            kubeconfig: files.clone(),
            reason: format!("context `{context}`: {}", error_chain(&e)),
        })?;
    if let Some(namespace) = target.namespace.as_deref().filter(|n| !n.is_empty()) {
        namespace.clone_into(&mut config.default_namespace);
    }
    let default_namespace = config.default_namespace.clone();
    let server = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_owned();
    let client = kube::Client::try_from(config).map_err(|e| DeployError::Kubeconfig {
        kubeconfig: files.clone(),
        reason: format!(
            "context `{context}`: cannot build a client: {}",
            error_chain(&e)
        ),
    })?;
    let unreachable = |reason: String| DeployError::ClusterUnreachable {
        context: context.clone(),
        server: server.clone(),
        reason,
    };
    match tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version()).await {
        Err(_) => {
            return Err(unreachable(format!(
                "no answer within {} s",
                PROBE_TIMEOUT.as_secs()
            )));
        }
        Ok(Err(kube::Error::Api(status))) if status.code == 401 => {
            return Err(DeployError::Kubeconfig {
                kubeconfig: files,
                reason: format!(
                    "context `{context}`: the API server {server} refused its credentials (401 Unauthorized: {})",
                    status.message
                ),
            });
        }
        // The server answered; whatever it thinks of `/version`, it is there.
        Ok(Err(kube::Error::Api(_))) | Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(unreachable(error_chain(&e))),
    }
    Ok(Connection {
        client,
        context,
        server,
        default_namespace,
    })
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

/// Reads and merges the kubeconfig files; returns them with a description of the files read.
fn read_kubeconfig(target: &KubeTarget) -> Result<(Kubeconfig, String), DeployError> {
    if let Some(path) = &target.kubeconfig {
        let name = path.display().to_string();
        let config = Kubeconfig::read_from(path).map_err(|e| DeployError::Kubeconfig {
            kubeconfig: name.clone(),
            reason: kubeconfig_reason(&e),
        })?;
        return Ok((config, name));
    }
    let existing: Vec<&PathBuf> = target
        .default_kubeconfigs
        .iter()
        .filter(|p| p.exists())
        .collect();
    if existing.is_empty() {
        let searched = join_paths(target.default_kubeconfigs.iter());
        return Err(DeployError::Kubeconfig {
            kubeconfig: if searched.is_empty() {
                "(none)".to_owned()
            } else {
                searched
            },
            reason: "no kubeconfig file found; pass --kubeconfig or set KUBECONFIG".to_owned(),
        });
    }
    let mut merged = Kubeconfig::default();
    for path in &existing {
        let next = Kubeconfig::read_from(path).map_err(|e| DeployError::Kubeconfig {
            kubeconfig: path.display().to_string(),
            reason: kubeconfig_reason(&e),
        })?;
        merged = merged.merge(next).map_err(|e| DeployError::Kubeconfig {
            kubeconfig: path.display().to_string(),
            reason: kubeconfig_reason(&e),
        })?;
    }
    Ok((merged, join_paths(existing.into_iter())))
}

fn join_paths<'a>(paths: impl Iterator<Item = &'a PathBuf>) -> String {
    paths
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

fn kubeconfig_reason(error: &KubeconfigError) -> String {
    match error {
        KubeconfigError::ReadConfig(io, _) => format!("cannot read it: {io}"),
        KubeconfigError::Parse(e) => format!("not a valid kubeconfig: {e}"),
        other => error_chain(other),
    }
}

/// The context to use: the requested one, else `current-context`; it must exist.
fn select_context(
    kubeconfig: &Kubeconfig,
    requested: Option<&str>,
    files: &str,
) -> Result<String, DeployError> {
    let available: Vec<&str> = kubeconfig
        .contexts
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let listing = if available.is_empty() {
        "it defines no contexts".to_owned()
    } else {
        format!("available: {}", available.join(", "))
    };
    let requested = requested.filter(|c| !c.is_empty());
    let Some(context) = requested.or(kubeconfig
        .current_context
        .as_deref()
        .filter(|c| !c.is_empty()))
    else {
        return Err(DeployError::Kubeconfig {
            kubeconfig: files.to_owned(),
            reason: format!("no current-context is set and no kube-context was given ({listing})"),
        });
    };
    if !available.contains(&context) {
        let source = if requested.is_some() {
            "kube-context"
        } else {
            "current-context"
        };
        return Err(DeployError::Kubeconfig {
            kubeconfig: files.to_owned(),
            reason: format!("no context named `{context}` (the {source}); {listing}"),
        });
    }
    Ok(context.to_owned())
}

/// An error and its sources, `: `-separated, without repeating a message a source repeats.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        let text = next.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = next.source();
    }
    out
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

    #[test]
    fn contexts_are_checked_and_listed() {
        let config = Kubeconfig::from_yaml(
            "apiVersion: v1\nkind: Config\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n- name: b\n  context: {cluster: c, user: u}\ncurrent-context: a\n",
        )
        .expect("valid kubeconfig");
        assert_eq!(select_context(&config, None, "f").expect("current"), "a");
        assert_eq!(select_context(&config, Some("b"), "f").expect("named"), "b");
        match select_context(&config, Some("nope"), "/k") {
            Err(DeployError::Kubeconfig { kubeconfig, reason }) => {
                assert_eq!(kubeconfig, "/k");
                assert!(
                    reason.contains("`nope`") && reason.contains("available: a, b"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
