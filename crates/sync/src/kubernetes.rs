//! Sync into Kubernetes pods: the running pods of the run (label selector) and, in them, the
//! containers whose image is the deployed reference.
//!
//! Files go as a tar archive streamed to the container through exec (stdin). Kubernetes before
//! 1.29 cannot signal the end of stdin over the WebSocket protocol kube-rs speaks, and `tar`
//! reads its input to the end, so the archive is unpacked by `sh -c 'head -c <size> | tar -xf -
//! -C <dir>'` (then the same through `busybox`), which ends on its own and reports an exit
//! code. An image with neither gives [`SyncError::NoTar`]: the runner rebuilds and says why
//! once. Deletions run `rm -rf --` (then `busybox rm`). Absolute destinations unpack at `/`,
//! relative ones in the container's working directory (where exec starts).
//!
//! When the cluster runs its pods on the local Docker engine (a one-node cluster on the
//! developer's machine, `--vm-driver=none` style), [`KubernetesSyncer::with_local_engine`] lets
//! copies go through the engine's archive upload instead: no exec, no `tar` needed in the image,
//! and a fraction of the time. A pod whose container the engine does not know is synced through
//! exec as above.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use skiff_types::event::Reporter;

use crate::archive::Archive;
use crate::docker::{DockerContainer, DockerSyncer};
use crate::driver::{self, Transport};
use crate::{SyncError, SyncPlan, SyncReport, SyncTarget, Syncer};

/// Longest a single exec (copy, delete, hook) may take.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(120);

/// Syncs into pods through the Kubernetes API. See the [module docs](self).
pub struct KubernetesSyncer {
    client: kube::Client,
    namespace: Option<String>,
    /// Image reference → the unpack command that worked in it.
    unpackers: Mutex<HashMap<String, usize>>,
    /// The Docker engine the pods may run on.
    local_engine: Option<DockerSyncer>,
    /// Cleared when the engine turned out not to hold a pod's container.
    engine_holds_pods: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for KubernetesSyncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesSyncer")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// A container of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodContainer {
    namespace: String,
    pod: String,
    container: String,
    /// The runtime's ID when the runtime is Docker (`docker://<id>` in the pod status).
    docker_id: Option<String>,
}

/// What one exec gave.
struct Ran {
    /// Exit code; 127 when the command does not exist.
    code: i32,
    /// stdout, stderr and the status message.
    output: String,
}

impl KubernetesSyncer {
    /// A syncer looking for pods in `namespace` (`None`: every namespace the client may list).
    pub fn new(client: kube::Client, namespace: Option<String>) -> KubernetesSyncer {
        KubernetesSyncer {
            client,
            namespace,
            unpackers: Mutex::new(HashMap::new()),
            local_engine: None,
            engine_holds_pods: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Copies into pods whose containers run on `engine` through its archive upload; see the
    /// [module docs](self).
    pub fn with_local_engine(mut self, engine: DockerSyncer) -> KubernetesSyncer {
        self.local_engine = Some(engine);
        self
    }

    /// Copies `archive` through the local engine; `Ok(false)` when the engine does not hold
    /// the container (the caller goes through exec).
    async fn copy_through_engine(
        &self,
        container: &PodContainer,
        archive: &Archive,
    ) -> Result<bool, SyncError> {
        use std::sync::atomic::Ordering;
        let (Some(engine), Some(id)) = (&self.local_engine, &container.docker_id) else {
            return Ok(false);
        };
        if !self.engine_holds_pods.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let local = DockerContainer {
            id: id.clone(),
            name: Self::name(container),
        };
        // The working directory also tells whether this engine holds the container.
        let workdir = match engine.workdir(&local).await {
            Ok(workdir) => workdir,
            Err(_) => {
                self.engine_holds_pods.store(false, Ordering::Relaxed);
                return Ok(false);
            }
        };
        if let Some(absolute) = &archive.absolute {
            engine.upload(&local, "/", absolute).await?;
        }
        if let Some(relative) = &archive.relative {
            engine.upload(&local, &workdir, relative).await?;
        }
        Ok(true)
    }

    fn unpack_commands(size: usize, dir: &str) -> [Vec<String>; 2] {
        [
            vec![
                "sh".to_owned(),
                "-c".to_owned(),
                format!("head -c {size} | tar -xf - -C '{dir}'"),
            ],
            vec![
                "busybox".to_owned(),
                "sh".to_owned(),
                "-c".to_owned(),
                format!("busybox head -c {size} | busybox tar -xf - -C '{dir}'"),
            ],
        ]
    }

    async fn run(
        &self,
        container: &PodContainer,
        command: &[String],
        stdin: Option<&[u8]>,
    ) -> Result<Ran, SyncError> {
        let name = Self::name(container);
        let run = async {
            let ran = match skiff_connect::kubernetes::exec(
                &self.client,
                &container.namespace,
                &container.pod,
                &container.container,
                command,
                stdin,
            )
            .await
            {
                Ok(ran) => ran,
                Err(skiff_connect::kubernetes::ExecError::Api(error)) => {
                    return Err(api_error(&name, "exec", error));
                }
                Err(error) => {
                    return Err(SyncError::Kubernetes {
                        operation: format!("send files to {name}"),
                        message: error.to_string(),
                    });
                }
            };
            let mut output = ran.output.clone();
            let code = match ran.exit_code() {
                Some(0) => 0,
                code => {
                    let message = ran.message().to_owned();
                    output.push_str(&message);
                    match code {
                        Some(code) => code,
                        None if missing_command(&message) => 127,
                        None if gone(&message) => {
                            return Err(SyncError::ContainerGone {
                                container: name.clone(),
                                detail: message,
                            });
                        }
                        None => {
                            return Err(SyncError::Kubernetes {
                                operation: format!("exec in {name}"),
                                message,
                            });
                        }
                    }
                }
            };
            Ok(Ran { code, output })
        };
        tokio::time::timeout(EXEC_TIMEOUT, run)
            .await
            .map_err(|_| SyncError::Exec {
                container: name.clone(),
                command: command.join(" "),
                message: format!("did not finish within {} s", EXEC_TIMEOUT.as_secs()),
            })?
    }

    async fn unpack(
        &self,
        container: &PodContainer,
        target: &SyncTarget,
        archive: &[u8],
        dir: &str,
    ) -> Result<(), SyncError> {
        let commands = Self::unpack_commands(archive.len(), dir);
        let known = self
            .unpackers
            .lock()
            .ok()
            .and_then(|u| u.get(&target.reference).copied());
        let order: Vec<usize> = match known {
            Some(index) => vec![index],
            None => (0..commands.len()).collect(),
        };
        let mut detail = String::new();
        for index in order {
            let command = &commands[index];
            let ran = self.run(container, command, Some(archive)).await?;
            match ran.code {
                0 => {
                    if let Ok(mut unpackers) = self.unpackers.lock() {
                        unpackers.insert(target.reference.clone(), index);
                    }
                    return Ok(());
                }
                126 | 127 => detail = ran.output.trim().to_owned(),
                code => {
                    return Err(SyncError::Exec {
                        container: Self::name(container),
                        command: command.join(" "),
                        message: format!("exit code {code}: {}", ran.output.trim()),
                    });
                }
            }
        }
        Err(SyncError::NoTar {
            container: Self::name(container),
            image: target.reference.clone(),
            detail,
        })
    }
}

/// Whether a message says the command does not exist.
fn missing_command(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("executable file not found") || message.contains("no such file or directory")
}

/// Whether a message says the container or pod is gone.
fn gone(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("not found")
        || message.contains("not running")
        || message.contains("stopped state")
        || message.contains("is terminated")
}

/// The API's words; for a request that reached no API server (it crashed, is restarting, the
/// network is down), that said plainly, and what to do.
fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            let text = skiff_types::error::chain(error);
            format!(
                "the Kubernetes API server does not answer ({text}); check that it is running — \
                 the next save syncs again once it answers"
            )
        }
        _ => error.to_string(),
    }
}

fn api_error(name: &str, operation: &str, error: kube::Error) -> SyncError {
    let message = describe(&error);
    let code = match &error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    };
    if code == Some(404) || (code.is_some_and(|c| (400..500).contains(&c)) && gone(&message)) {
        return SyncError::ContainerGone {
            container: name.to_owned(),
            detail: message,
        };
    }
    SyncError::Kubernetes {
        operation: format!("{operation} in {name}"),
        message,
    }
}

#[async_trait::async_trait]
impl Transport for KubernetesSyncer {
    type Container = PodContainer;

    fn name(container: &PodContainer) -> String {
        format!("{}/{}", container.pod, container.container)
    }

    async fn containers(&self, target: &SyncTarget) -> Result<Vec<PodContainer>, SyncError> {
        let api: Api<Pod> = match &self.namespace {
            Some(namespace) => Api::namespaced(self.client.clone(), namespace),
            None => Api::all(self.client.clone()),
        };
        let pods = api
            .list(&ListParams::default().labels(&target.selector))
            .await
            .map_err(|e| SyncError::Kubernetes {
                operation: format!("list the pods labelled {}", target.selector),
                message: describe(&e),
            })?;
        let mut found = Vec::new();
        for pod in pods {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let (Some(name), Some(spec), Some(status)) = (
                pod.metadata.name.clone(),
                pod.spec.as_ref(),
                pod.status.as_ref(),
            ) else {
                continue;
            };
            if status.phase.as_deref() != Some("Running") {
                continue;
            }
            for container in &spec.containers {
                if container.image.as_deref() != Some(target.reference.as_str()) {
                    continue;
                }
                let running = status.container_statuses.iter().flatten().any(|s| {
                    s.name == container.name
                        && s.state.as_ref().is_some_and(|s| s.running.is_some())
                });
                let docker_id = status
                    .container_statuses
                    .iter()
                    .flatten()
                    .find(|s| s.name == container.name)
                    .and_then(|s| s.container_id.as_deref())
                    .and_then(|id| id.strip_prefix("docker://"))
                    .map(str::to_owned);
                if running {
                    found.push(PodContainer {
                        docker_id,
                        namespace: pod
                            .metadata
                            .namespace
                            .clone()
                            .unwrap_or_else(|| "default".to_owned()),
                        pod: name.clone(),
                        container: container.name.clone(),
                    });
                }
            }
        }
        Ok(found)
    }

    async fn copy(
        &self,
        container: &PodContainer,
        target: &SyncTarget,
        archive: &Archive,
    ) -> Result<(), SyncError> {
        if self.copy_through_engine(container, archive).await? {
            return Ok(());
        }
        if let Some(absolute) = &archive.absolute {
            self.unpack(container, target, absolute, "/").await?;
        }
        if let Some(relative) = &archive.relative {
            self.unpack(container, target, relative, ".").await?;
        }
        Ok(())
    }

    async fn delete(
        &self,
        container: &PodContainer,
        target: &SyncTarget,
        paths: &[String],
    ) -> Result<(), SyncError> {
        let mut detail = String::new();
        for rm in [
            &["rm", "-rf", "--"][..],
            &["busybox", "rm", "-rf", "--"][..],
        ] {
            let command: Vec<String> = rm
                .iter()
                .map(|s| (*s).to_owned())
                .chain(paths.iter().cloned())
                .collect();
            let ran = self.run(container, &command, None).await?;
            match ran.code {
                0 => return Ok(()),
                126 | 127 => detail = ran.output.trim().to_owned(),
                code => {
                    return Err(SyncError::Exec {
                        container: Self::name(container),
                        command: command.join(" "),
                        message: format!("exit code {code}: {}", ran.output.trim()),
                    });
                }
            }
        }
        Err(SyncError::NoRm {
            container: Self::name(container),
            image: target.reference.clone(),
            paths: paths.join(", "),
            detail,
        })
    }

    async fn exec(
        &self,
        container: &PodContainer,
        command: &[String],
        _env: &[(String, String)],
    ) -> Result<String, SyncError> {
        let ran = self.run(container, command, None).await?;
        if ran.code != 0 {
            return Err(SyncError::Exec {
                container: Self::name(container),
                command: command.join(" "),
                message: format!("exit code {}: {}", ran.code, ran.output.trim()),
            });
        }
        Ok(ran.output)
    }
}

#[async_trait::async_trait]
impl Syncer for KubernetesSyncer {
    async fn sync(
        &self,
        target: &SyncTarget,
        plan: &SyncPlan,
        reporter: &dyn Reporter,
    ) -> Result<SyncReport, SyncError> {
        driver::run(self, target, plan, reporter).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_no_api_server_answers_says_so_and_what_to_do() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let url = format!("http://127.0.0.1:{port}").parse().expect("a URL");
        let client = kube::Client::try_from(kube::Config::new(url)).expect("a client");
        let error = Api::<Pod>::namespaced(client, "default")
            .list(&ListParams::default())
            .await
            .expect_err("nothing listens there");
        let text = describe(&error);
        assert!(
            text.starts_with("the Kubernetes API server does not answer (")
                && text.contains("Connection refused")
                && text.contains("next save"),
            "{text}"
        );
        let refused = kube::Error::Api(Box::new(
            kube::core::Status::failure("pods is forbidden", "Forbidden").with_code(403),
        ));
        assert!(!describe(&refused).contains("does not answer"));
    }
}
