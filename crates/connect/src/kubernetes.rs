//! Connecting to a cluster: which kubeconfig (every file of `KUBECONFIG` merged as kubectl
//! merges them, or one explicit `--kubeconfig`), which context, which namespace — all passed in
//! by the caller — and a probe that the API server answers.
//!
//! ```no_run
//! use skiff_connect::kubernetes::{connect, KubeTarget};
//!
//! # async fn example() -> Result<(), skiff_connect::ConnectError> {
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

use skiff_types::error::chain;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

use crate::ConnectError;

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
    /// use skiff_connect::kubernetes::KubeTarget;
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
/// → [`ConnectError::Kubeconfig`]; no answer from the server → [`ConnectError::ClusterUnreachable`].
pub async fn connect(target: &KubeTarget) -> Result<Connection, ConnectError> {
    let (kubeconfig, files) = read_kubeconfig(target)?;
    let context = select_context(&kubeconfig, target.context.as_deref(), &files)?;
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..KubeConfigOptions::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| ConnectError::Kubeconfig {
            kubeconfig: files.clone(),
            reason: format!("context `{context}`: {}", chain(&e)),
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
    let client = kube::Client::try_from(config).map_err(|e| ConnectError::Kubeconfig {
        kubeconfig: files.clone(),
        reason: format!("context `{context}`: cannot build a client: {}", chain(&e)),
    })?;
    let unreachable = |reason: String| ConnectError::ClusterUnreachable {
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
            return Err(ConnectError::Kubeconfig {
                kubeconfig: files,
                reason: format!(
                    "context `{context}`: the API server {server} refused its credentials (401 Unauthorized: {})",
                    status.message
                ),
            });
        }
        // The server answered; whatever it thinks of `/version`, it is there.
        Ok(Err(kube::Error::Api(_))) | Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(unreachable(chain(&e))),
    }
    Ok(Connection {
        client,
        context,
        server,
        default_namespace,
    })
}

/// Reads and merges the kubeconfig files; returns them with a description of the files read.
fn read_kubeconfig(target: &KubeTarget) -> Result<(Kubeconfig, String), ConnectError> {
    if let Some(path) = &target.kubeconfig {
        let name = path.display().to_string();
        let config = Kubeconfig::read_from(path).map_err(|e| ConnectError::Kubeconfig {
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
        return Err(ConnectError::Kubeconfig {
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
        let next = Kubeconfig::read_from(path).map_err(|e| ConnectError::Kubeconfig {
            kubeconfig: path.display().to_string(),
            reason: kubeconfig_reason(&e),
        })?;
        merged = merged.merge(next).map_err(|e| ConnectError::Kubeconfig {
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
        other => chain(other),
    }
}

/// The context to use: the requested one, else `current-context`; it must exist.
fn select_context(
    kubeconfig: &Kubeconfig,
    requested: Option<&str>,
    files: &str,
) -> Result<String, ConnectError> {
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
        return Err(ConnectError::Kubeconfig {
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
        return Err(ConnectError::Kubeconfig {
            kubeconfig: files.to_owned(),
            reason: format!("no context named `{context}` (the {source}); {listing}"),
        });
    }
    Ok(context.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_are_checked_and_listed() {
        let config = Kubeconfig::from_yaml(
            "apiVersion: v1\nkind: Config\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n- name: b\n  context: {cluster: c, user: u}\ncurrent-context: a\n",
        )
        .expect("valid kubeconfig");
        assert_eq!(select_context(&config, None, "f").expect("current"), "a");
        assert_eq!(select_context(&config, Some("b"), "f").expect("named"), "b");
        match select_context(&config, Some("nope"), "/k") {
            Err(ConnectError::Kubeconfig { kubeconfig, reason }) => {
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

/// What a command run in a container printed, and how the API says it ended.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    /// Standard output, then standard error.
    pub output: String,
    /// The final status; `None`: the API sent none (taken as success).
    pub status: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>,
}

impl ExecOutput {
    /// The command's exit code: 0 on `Success`, else the `ExitCode` cause; `None` when the
    /// status names no code (the command could not run: see [`ExecOutput::message`]).
    pub fn exit_code(&self) -> Option<i32> {
        let Some(status) = &self.status else {
            return Some(0);
        };
        if status.status.as_deref() == Some("Success") {
            return Some(0);
        }
        status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|causes| {
                causes
                    .iter()
                    .find(|c| c.reason.as_deref() == Some("ExitCode"))
            })
            .and_then(|c| c.message.as_deref()?.parse().ok())
    }

    /// The status message (why a command failed or could not run); empty when none.
    pub fn message(&self) -> &str {
        self.status
            .as_ref()
            .and_then(|s| s.message.as_deref())
            .unwrap_or_default()
    }
}

/// Runs `command` in `container` of `pod` (in `namespace`) through the API's exec, with
/// `stdin` on its standard input when given (the stream is kept open until the command ends:
/// Kubernetes before 1.29 cannot signal its end), and collects what it prints.
pub async fn exec(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    container: &str,
    command: &[String],
    stdin: Option<&[u8]>,
) -> Result<ExecOutput, ExecError> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, AttachParams};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = AttachParams::default()
        .container(container.to_owned())
        .stdin(stdin.is_some())
        .stdout(true)
        .stderr(true);
    let mut process = api
        .exec(pod, command.to_vec(), &params)
        .await
        .map_err(ExecError::Api)?;
    let mut writer = process.stdin();
    if let (Some(writer), Some(data)) = (writer.as_mut(), stdin) {
        writer.write_all(data).await.map_err(ExecError::Stdin)?;
        let _ = writer.flush().await;
    }
    let mut stdout = process.stdout();
    let mut stderr = process.stderr();
    let status = process.take_status();
    let read = |stream: Option<tokio::io::ReadHalf<tokio::io::SimplexStream>>| async move {
        let mut text = Vec::new();
        if let Some(mut stream) = stream {
            let _ = stream.read_to_end(&mut text).await;
        }
        text
    };
    let (out, err, status) = tokio::join!(read(stdout.take()), read(stderr.take()), async {
        match status {
            Some(status) => status.await,
            None => None,
        }
    });
    drop(writer);
    let mut output = String::from_utf8_lossy(&out).into_owned();
    output.push_str(&String::from_utf8_lossy(&err));
    Ok(ExecOutput { output, status })
}

/// Why an exec could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The API refused or could not be reached.
    #[error("{}", chain(.0))]
    Api(#[source] kube::Error),
    /// The input could not be sent.
    #[error("sending input failed: {0}")]
    Stdin(#[source] std::io::Error),
}
