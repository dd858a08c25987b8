//! Sync into local Docker containers: the run's running containers (label selector) whose
//! image is the deployed reference. Files go through the Engine API's archive upload
//! (`PUT /containers/{id}/archive`), which needs nothing inside the container — it works on
//! `FROM scratch` images. Deletions and container hooks run through exec; a container without
//! `rm` gives [`SyncError::NoRm`] (the runner rebuilds).

use std::collections::HashMap;

use bollard::Docker;
use bollard::errors::Error as EngineError;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bollard::query_parameters::{ListContainersOptions, UploadToContainerOptions};
use futures_util::StreamExt;
use skiff_types::event::Reporter;

use crate::archive::Archive;
use crate::driver::{self, Transport};
use crate::{SyncError, SyncPlan, SyncReport, SyncTarget, Syncer};

pub use skiff_connect::DEFAULT_DOCKER_HOST;
use skiff_connect::DockerConnection;

/// Syncs into containers of the local Docker engine. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct DockerSyncer {
    docker: Docker,
    endpoint: String,
}

/// A container found for a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DockerContainer {
    pub(crate) id: String,
    pub(crate) name: String,
}

impl DockerSyncer {
    /// Connects to `docker_host` (`DOCKER_HOST`'s value: `unix:///path`, `tcp://host:port`;
    /// `None` means [`DEFAULT_DOCKER_HOST`]).
    pub async fn connect(docker_host: Option<&str>) -> Result<DockerSyncer, SyncError> {
        let connection = DockerConnection::shared(docker_host)
            .await
            .map_err(|error| SyncError::Docker {
                endpoint: error.endpoint().to_owned(),
                operation: "connect".to_owned(),
                message: error.to_string(),
            })?;
        Ok(DockerSyncer::from_connection(&connection))
    }

    /// A syncer over a connection the run already made.
    pub fn from_connection(connection: &DockerConnection) -> DockerSyncer {
        DockerSyncer::new(connection.client().clone(), connection.endpoint())
    }

    /// A syncer using an existing client; `endpoint` is only used in messages.
    pub fn new(docker: Docker, endpoint: impl Into<String>) -> DockerSyncer {
        DockerSyncer {
            docker,
            endpoint: endpoint.into(),
        }
    }

    fn error(&self, container: &DockerContainer, operation: &str, error: EngineError) -> SyncError {
        match error {
            EngineError::DockerResponseServerError {
                status_code: 404 | 409,
                message,
            } => SyncError::ContainerGone {
                container: container.name.clone(),
                detail: message,
            },
            other => SyncError::Docker {
                endpoint: self.endpoint.clone(),
                operation: format!("{operation} {}", container.name),
                message: other.to_string(),
            },
        }
    }

    /// Runs `command` in `container`: its exit code and output.
    async fn run(
        &self,
        container: &DockerContainer,
        command: &[String],
        env: &[(String, String)],
    ) -> Result<(i64, String), SyncError> {
        let exec = self
            .docker
            .create_exec(
                &container.id,
                ExecConfig {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(command.to_vec()),
                    env: (!env.is_empty())
                        .then(|| env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.error(container, "exec", e))?;
        let started = self
            .docker
            .start_exec(&exec.id, None::<StartExecOptions>)
            .await;
        let mut output = String::new();
        match started {
            Ok(StartExecResults::Attached {
                output: mut stream, ..
            }) => {
                while let Some(chunk) = stream.next().await {
                    match chunk {
                        Ok(chunk) => output.push_str(&String::from_utf8_lossy(&chunk.into_bytes())),
                        Err(error) => return Err(self.error(container, "exec", error)),
                    }
                }
            }
            Ok(StartExecResults::Detached) => {}
            // The runtime refuses a command that does not exist when starting it.
            Err(EngineError::DockerResponseServerError { message, .. })
                if missing_command(&message) =>
            {
                return Ok((127, message));
            }
            Err(error) => return Err(self.error(container, "exec", error)),
        }
        let inspected = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| self.error(container, "exec", e))?;
        let code = inspected.exit_code.unwrap_or(0);
        if code != 0 && missing_command(&output) {
            return Ok((127, output));
        }
        Ok((code, output))
    }

    pub(crate) async fn workdir(&self, container: &DockerContainer) -> Result<String, SyncError> {
        let inspected = self
            .docker
            .inspect_container(&container.id, None)
            .await
            .map_err(|e| self.error(container, "inspect", e))?;
        Ok(inspected
            .config
            .and_then(|c| c.working_dir)
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".to_owned()))
    }

    pub(crate) async fn upload(
        &self,
        container: &DockerContainer,
        path: &str,
        archive: &[u8],
    ) -> Result<(), SyncError> {
        self.docker
            .upload_to_container(
                &container.id,
                Some(UploadToContainerOptions {
                    path: path.to_owned(),
                    ..Default::default()
                }),
                bollard::body_full(archive.to_vec().into()),
            )
            .await
            .map_err(|e| self.error(container, "upload files to", e))
    }
}

/// Whether the engine's image name for a container (`docker ps`'s `Image`) is `reference`:
/// the same string, or the same digest (the engine may drop the tag of `name:tag@digest`).
fn same_image(listed: &str, reference: &str) -> bool {
    if listed == reference {
        return true;
    }
    match (listed.rsplit_once('@'), reference.rsplit_once('@')) {
        (Some((listed_name, listed_digest)), Some((name, digest))) => {
            listed_digest == digest
                && (listed_name == name || name.starts_with(&format!("{listed_name}:")))
        }
        _ => false,
    }
}

/// Whether the runtime's message says the command does not exist.
fn missing_command(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("executable file not found")
        || message.contains("no such file or directory")
        || message.contains("not found")
}

#[async_trait::async_trait]
impl Transport for DockerSyncer {
    type Container = DockerContainer;

    fn name(container: &DockerContainer) -> String {
        container.name.clone()
    }

    async fn containers(&self, target: &SyncTarget) -> Result<Vec<DockerContainer>, SyncError> {
        let filters = HashMap::from([
            ("label".to_owned(), vec![target.selector.clone()]),
            ("status".to_owned(), vec!["running".to_owned()]),
        ]);
        let listed = self
            .docker
            .list_containers(Some(ListContainersOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| SyncError::Docker {
                endpoint: self.endpoint.clone(),
                operation: format!("list the containers labelled {}", target.selector),
                message: e.to_string(),
            })?;
        Ok(listed
            .into_iter()
            .filter(|c| {
                c.image
                    .as_deref()
                    .is_some_and(|image| same_image(image, &target.reference))
            })
            .filter_map(|c| {
                let id = c.id?;
                let name = c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .unwrap_or_else(|| id.chars().take(12).collect());
                Some(DockerContainer { id, name })
            })
            .collect())
    }

    async fn copy(
        &self,
        container: &DockerContainer,
        _target: &SyncTarget,
        archive: &Archive,
    ) -> Result<(), SyncError> {
        if let Some(absolute) = &archive.absolute {
            self.upload(container, "/", absolute).await?;
        }
        if let Some(relative) = &archive.relative {
            let workdir = self.workdir(container).await?;
            self.upload(container, &workdir, relative).await?;
        }
        Ok(())
    }

    async fn delete(
        &self,
        container: &DockerContainer,
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
            let (code, output) = self.run(container, &command, &[]).await?;
            match code {
                0 => return Ok(()),
                126 | 127 => detail = output.trim().to_owned(),
                _ => {
                    return Err(SyncError::Exec {
                        container: container.name.clone(),
                        command: command.join(" "),
                        message: format!("exit code {code}: {}", output.trim()),
                    });
                }
            }
        }
        Err(SyncError::NoRm {
            container: container.name.clone(),
            image: target.reference.clone(),
            paths: paths.join(", "),
            detail,
        })
    }

    async fn exec(
        &self,
        container: &DockerContainer,
        command: &[String],
        env: &[(String, String)],
    ) -> Result<String, SyncError> {
        let (code, output) = self.run(container, command, env).await?;
        if code != 0 {
            return Err(SyncError::Exec {
                container: container.name.clone(),
                command: command.join(" "),
                message: format!("exit code {code}: {}", output.trim()),
            });
        }
        Ok(output)
    }
}

#[async_trait::async_trait]
impl Syncer for DockerSyncer {
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
    use super::same_image;

    #[test]
    fn images_match_by_reference_or_digest() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert!(same_image("app:1", "app:1"));
        assert!(!same_image("app:1", "app:2"));
        assert!(same_image(
            &format!("app@{digest}"),
            &format!("app:1@{digest}")
        ));
        assert!(!same_image(
            &format!("other@{digest}"),
            &format!("app:1@{digest}")
        ));
        assert!(!same_image("app:1", &format!("app:1@{digest}")));
    }
}
