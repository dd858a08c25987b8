//! Containers that run to completion on the local engine: `verify` test containers and
//! `customActions`. Each is created with the run's labels, its output streamed as
//! `[NAME] …` lines, waited for (within its timeout, then killed) and removed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, LogsOptions, RemoveContainerOptions,
    WaitContainerOptions,
};
use futures_util::StreamExt;
use skiff_types::event::{Event, Level, Reporter};

use super::engine::{connect_engine, engine_error};
use super::run_labels;
use crate::DeployError;

/// One container to run to completion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OneShot {
    /// Names it in output and in the container's name (`skiff-verify-NAME-…`).
    pub name: String,
    /// What kind of run it is (`verify`, `action`): part of the container's name.
    pub kind: String,
    /// The image (it must be in the engine; nothing is pulled).
    pub image: String,
    /// Replaces the image's entrypoint when set.
    pub command: Option<Vec<String>>,
    /// Replaces the image's command when not empty.
    pub args: Vec<String>,
    /// `NAME=value` variables.
    pub env: Vec<(String, String)>,
    /// Killed after this long; `None`: no limit.
    pub timeout: Option<Duration>,
}

/// How a one-shot container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneShotOutcome {
    /// It exited with this code.
    Exited {
        /// The exit code (0: passed).
        code: i64,
        /// How long it ran.
        duration: Duration,
    },
    /// It was killed at its timeout.
    TimedOut {
        /// The timeout.
        after: Duration,
    },
    /// It was killed because `stop` completed first.
    Stopped,
}

impl OneShotOutcome {
    /// Whether it exited with 0.
    pub fn passed(&self) -> bool {
        matches!(self, OneShotOutcome::Exited { code: 0, .. })
    }
}

fn container_name(spec: &OneShot, run_id: &str) -> String {
    let clean: String = spec
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let run: String = run_id.chars().take(8).collect();
    format!("skiff-{}-{clean}-{run}-{nanos:08x}", spec.kind)
}

/// Runs `spec` on the engine at `docker_host`, labelled with `run_id`, to completion — or
/// until `stop` completes, when it is killed; the container is removed whatever happens.
pub async fn run_to_completion(
    docker_host: Option<&str>,
    run_id: &str,
    spec: &OneShot,
    stop: impl std::future::Future<Output = ()> + Send,
    reporter: &dyn Reporter,
) -> Result<OneShotOutcome, DeployError> {
    let (docker, endpoint) = connect_engine(docker_host).await?;
    let name = container_name(spec, run_id);
    let labels: HashMap<String, String> = run_labels(run_id).into_iter().collect();
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: spec.command.clone(),
        cmd: (!spec.args.is_empty()).then(|| spec.args.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels),
        ..Default::default()
    };
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            body,
        )
        .await
        .map_err(|e| match &e {
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            } => DeployError::Docker {
                operation: format!("run {}", spec.name),
                message: format!(
                    "the image {} is not in the Docker engine; build it (or pass --build-artifacts) first",
                    spec.image
                ),
            },
            _ => engine_error(&endpoint, format!("create container {name}"), &e),
        })?;
    let id = created.id;
    let started = Instant::now();
    let result = async {
        docker
            .start_container(&id, None)
            .await
            .map_err(|e| engine_error(&endpoint, format!("start container {name}"), &e))?;
        let mut logs = docker.logs(
            &id,
            Some(LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        let stream = async {
            let mut pending = String::new();
            while let Some(Ok(chunk)) = logs.next().await {
                let bytes = match chunk {
                    LogOutput::StdOut { message }
                    | LogOutput::StdErr { message }
                    | LogOutput::Console { message } => message,
                    LogOutput::StdIn { .. } => continue,
                };
                pending.push_str(&String::from_utf8_lossy(&bytes));
                while let Some(end) = pending.find('\n') {
                    let line: String = pending.drain(..=end).collect();
                    say(reporter, spec, line.trim_end());
                }
            }
            if !pending.trim().is_empty() {
                say(reporter, spec, pending.trim_end());
            }
        };
        let wait = async {
            let mut waiting = docker.wait_container(&id, None::<WaitContainerOptions>);
            let mut code = None;
            while let Some(next) = waiting.next().await {
                match next {
                    Ok(response) => code = Some(response.status_code),
                    // A non-zero exit arrives as an error carrying the code.
                    Err(bollard::errors::Error::DockerContainerWaitError { code: c, .. }) => {
                        code = Some(c);
                    }
                    Err(e) => {
                        return Err(engine_error(
                            &endpoint,
                            format!("wait for container {name}"),
                            &e,
                        ));
                    }
                }
            }
            Ok(code.unwrap_or(-1))
        };
        let both = async {
            let (code, ()) = tokio::join!(wait, stream);
            code
        };
        let limit = spec.timeout.unwrap_or(Duration::MAX);
        let ended = tokio::select! {
            code = tokio::time::timeout(limit, both) => match code {
                Ok(code) => {
                    return Ok(OneShotOutcome::Exited {
                        code: code?,
                        duration: started.elapsed(),
                    });
                }
                Err(_) => OneShotOutcome::TimedOut { after: limit },
            },
            () = stop => OneShotOutcome::Stopped,
        };
        let _ = docker
            .kill_container(&id, None::<KillContainerOptions>)
            .await;
        Ok(ended)
    }
    .await;
    let removed = docker
        .remove_container(
            &id,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await;
    if let Err(error) = removed {
        reporter.report(Event::Message {
            source: "deploy",
            level: Level::Warning,
            text: format!(
                "could not remove the finished container {name}: {}",
                skiff_connect::describe(&error)
            ),
        });
    }
    result
}

fn say(reporter: &dyn Reporter, spec: &OneShot, line: &str) {
    reporter.report(Event::Message {
        source: "deploy",
        level: Level::Info,
        text: format!("[{}] {line}", spec.name),
    });
}
