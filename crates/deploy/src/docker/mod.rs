//! `deploy.docker`: the run's images as containers on the local Docker engine.
//!
//! [`DockerDeployer`] runs each image named in `deploy.docker.images` as one container on a
//! per-run bridge network (`skiff-<run id>`), where every container is reachable by its image's
//! basename. Containers carry the run's labels ([`RUN_ID_LABEL`], [`MANAGED_BY_LABEL`],
//! [`IMAGE_LABEL`]), keep the environment their image declares, and publish the `portForward`
//! ports on `127.0.0.1` (or the entry's `address`). A wanted local port that is already in use
//! moves to the next free one, with a warning naming both.
//!
//! A redeploy with a new image reference replaces the container. When the old container holds
//! a published host port, the new one is created first, the old one is stopped with the short
//! grace period of [`DockerDeployOptions::stop_grace`] (then killed — most apps run as PID 1
//! and ignore `SIGTERM`, which costs the engine's default 10 s otherwise), and the new one
//! starts on the same host port; if it cannot start, the old one is started again and kept.
//! Containers without published ports start before the old one is stopped. An unchanged
//! reference leaves the container running. With [`DockerDeployOptions::port_proxy`] (`dev`)
//! the ports are served by this process instead and a replacement takes over without a gap
//! (see `proxy.rs`).
//!
//! [`DockerDeployer::follow_logs`] streams every container of the run — including those a later
//! redeploy starts — as [`Event::LogLine`]s, each line once. [`Deployer::cleanup`] removes the
//! run's containers and network; [`delete_labelled`] does the same for `skiff delete`, and
//! [`delete_labelled_images`] for the containers of given images only (one project's). The
//! first deploy of a deployer removes what an earlier run of the same images left behind (a
//! `dev` killed with `SIGKILL`). All select by label only, so a container without skiff's
//! labels is never touched, whatever its name.
//!
//! The engine may stop and come back while a deployer lives (a restarted `dockerd`): the
//! deployer says so once per outage — when a log stream or a deploy loses the engine, or when
//! [`DockerDeployer::check_engine`] finds it gone — naming the endpoint and what to do, and
//! once when it answers again. Log followers wait for it instead of giving up, and the next
//! deploy replaces the containers the restart stopped, on the same host ports.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as EngineError;
use bollard::models::{
    ContainerCreateBody, ContainerSummaryStateEnum, EndpointSettings, HostConfig,
    NetworkCreateRequest, NetworkingConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptionsBuilder, KillContainerOptions, ListContainersOptions,
    ListNetworksOptions, LogsOptions, RemoveContainerOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use futures_util::future::join_all;
use skiff_types::event::{Event, Level, Reporter};
use skiff_types::image::{BuiltImage, ImageRef};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::{
    ApplyAction, DeployError, DeployInput, DeployOutcome, Deployer, MANAGED_BY_LABEL,
    MANAGED_BY_VALUE, RUN_ID_LABEL, ResourceRef,
};

mod cleanup;
pub use oneshot::{OneShot, OneShotOutcome, run_to_completion};
mod engine;
mod logs;
mod names;
mod oneshot;
mod ports;
mod proxy;

pub use cleanup::{delete_labelled, delete_labelled_images};
pub use logs::LogHandle;
pub use skiff_connect::DEFAULT_DOCKER_HOST;

use cleanup::*;
use engine::*;
use logs::*;
use names::*;
use ports::*;
pub use proxy::DRAIN_LIMIT;
use proxy::*;
use skiff_connect::{DockerConnection, describe, is_unreachable};

/// The label naming the artifact image a container runs.
pub const IMAGE_LABEL: &str = "skiff.dev/image";

/// The label saying how a container's ports reach the user: [`PORTS_PROXIED`] when the
/// process that started it serves them (its own published ports are ephemeral).
pub const PORTS_LABEL: &str = "skiff.dev/ports";

/// [`PORTS_LABEL`]'s value for a container behind the port proxy.
pub const PORTS_PROXIED: &str = "proxied";

/// The grace period between `SIGTERM` and `SIGKILL` in `dev` and for [`delete_labelled`].
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(1);

/// [`ResourceRef::api_version`] of containers and networks.
pub const DOCKER_API_VERSION: &str = "docker";

/// The reporter source for messages from this module.
const SOURCE: &str = "deploy";

/// Where the search for a local port starts when the container port is privileged (< 1024)
/// and no `localPort` was given: `80` → `8080`, `443` → `8443`.
const PRIVILEGED_PORT_OFFSET: u16 = 8000;

/// How often a broken log stream is re-opened before giving up.
const LOG_RETRIES: u32 = 5;

/// The longest wait between attempts to re-open a log stream while the engine is away.
const LOG_RECONNECT_MAX: Duration = Duration::from_secs(5);

/// How long a replacement may take to accept connections behind the port proxy.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`DockerDeployer::check_engine`] waits for the engine's answer.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Which engine to talk to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerTarget {
    /// The value of `DOCKER_HOST` (`unix:///path`, `tcp://host:port`, `http://host:port`);
    /// `None` or empty means [`DEFAULT_DOCKER_HOST`].
    pub docker_host: Option<String>,
}

/// One `portForward` entry for a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerPort {
    /// The artifact image name (as in `deploy.docker.images`) or its basename (the container's
    /// network alias).
    pub image: String,
    /// The port the app listens on inside the container.
    pub container_port: u16,
    /// The wanted local port; `None` means the container port (when ≥ 1024).
    pub local_port: Option<u16>,
    /// The local address to publish on; `None` means `127.0.0.1`.
    pub address: Option<String>,
}

/// How a [`DockerDeployer`] runs the images of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerDeployOptions {
    /// The run id: the [`RUN_ID_LABEL`] value and part of every name.
    pub run_id: String,
    /// `deploy.docker.images`: the artifact image names to run.
    pub images: Vec<String>,
    /// The `portForward` entries that name these images.
    pub ports: Vec<DockerPort>,
    /// Time between `SIGTERM` and `SIGKILL` when a container is replaced or removed: short in
    /// `dev` ([`DEFAULT_STOP_GRACE`]); Skaffold waits 10 s.
    pub stop_grace: Duration,
    /// `deploy.docker.useCompose`; refused, skiff does not run Compose.
    pub use_compose: bool,
    /// Serve the forwarded ports from this process instead of publishing them on the
    /// containers, so that a replacement takes over without a gap (see the `proxy` module).
    /// Only for a process that stays up while the containers run (`dev`): the ports close
    /// with the deployer.
    pub port_proxy: bool,
    /// With `port_proxy`: how long a replacement may take to accept connections before it is
    /// given up and the old container keeps serving.
    pub ready_timeout: Duration,
}

impl Default for DockerDeployOptions {
    fn default() -> Self {
        DockerDeployOptions {
            run_id: String::new(),
            images: Vec::new(),
            ports: Vec::new(),
            stop_grace: DEFAULT_STOP_GRACE,
            use_compose: false,
            port_proxy: false,
            ready_timeout: DEFAULT_READY_TIMEOUT,
        }
    }
}

/// A host port a container publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishedPort {
    /// The port inside the container.
    pub container_port: u16,
    /// Where it is published: `127.0.0.1:8080`.
    pub local_address: SocketAddr,
}

/// A container the deployer currently runs for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerContainer {
    /// The artifact image name.
    pub image_name: String,
    /// The reference it runs.
    pub reference: String,
    /// The container name: `skiff-<image basename>-<short run id>-<generation>`.
    pub name: String,
    /// The container ID.
    pub id: String,
    /// Its published ports.
    pub ports: Vec<PublishedPort>,
}

/// The container name for `image_name`'s `generation`-th container in run `run_id`:
/// `skiff-<image basename>-<short run id>-<generation>`.
///
/// ```
/// use skiff_deploy::docker::container_name;
///
/// assert_eq!(container_name("localhost:5000/team/Web_App", "3F2A9C1E-77", 2), "skiff-web_app-3f2a9c1e-2");
/// ```
pub fn container_name(image_name: &str, run_id: &str, generation: u64) -> String {
    container_name_for(&sanitize(image_basename(image_name)), run_id, generation)
}

/// The name of run `run_id`'s network: `skiff-<run id>`.
///
/// ```
/// assert_eq!(skiff_deploy::docker::network_name("abc-123"), "skiff-abc-123");
/// ```
pub fn network_name(run_id: &str) -> String {
    format!("skiff-{}", sanitize(run_id))
}

/// Runs images as containers on the local Docker engine. See the [module docs](self).
#[derive(Debug)]
pub struct DockerDeployer {
    docker: Docker,
    endpoint: String,
    options: DockerDeployOptions,
    /// Image name → the sanitized short name used in container names and as network alias.
    short_names: BTreeMap<String, String>,
    state: tokio::sync::Mutex<State>,
    logs: Arc<LogHub>,
    health: Arc<EngineHealth>,
    /// How this host reaches the containers' ports, once found (with `port_proxy`).
    route: StdMutex<Option<Route>>,
}

/// What the deployer has running.
#[derive(Debug, Default)]
struct State {
    /// The network's ID once it exists.
    network: Option<String>,
    /// Image name → its current container.
    running: BTreeMap<String, Running>,
    /// Image name → the last generation used.
    generations: HashMap<String, u64>,
    /// Whether the once-per-session warnings about the options were given.
    options_checked: bool,
    /// Whether leftovers of earlier runs were looked for (once per session).
    swept: bool,
    /// With `port_proxy`: the user-facing listeners, by their address.
    proxies: BTreeMap<SocketAddr, PortProxy>,
    /// Replaced containers being drained and removed.
    retiring: Vec<JoinHandle<()>>,
}

/// One container this deployer runs.
#[derive(Debug, Clone)]
struct Running {
    name: String,
    id: String,
    reference: String,
    image_id: Option<String>,
    ports: Vec<PublishedPort>,
}

impl DockerDeployer {
    /// Connects to the engine of `target` and agrees on an API version with it.
    ///
    /// Fails with [`DeployError::EngineUnavailable`] when no engine answers there, and with
    /// [`DeployError::Docker`] for options skiff cannot honour (`useCompose`, an empty run id).
    pub async fn connect(
        target: DockerTarget,
        options: DockerDeployOptions,
    ) -> Result<DockerDeployer, DeployError> {
        if options.use_compose {
            return Err(DeployError::Docker {
                operation: "deploy.docker.useCompose".to_owned(),
                message: "skiff does not run Docker Compose; remove `useCompose: true` to run \
                          each image of `deploy.docker.images` as a container, or run \
                          `docker compose up` yourself"
                    .to_owned(),
            });
        }
        if sanitize(&options.run_id).is_empty() {
            return Err(DeployError::Docker {
                operation: "deploy".to_owned(),
                message: format!(
                    "the run id `{}` gives no usable container name; it needs letters or digits",
                    options.run_id
                ),
            });
        }
        let (docker, endpoint) = connect_engine(target.docker_host.as_deref()).await?;
        let short_names = short_names(&options.images);
        let health = Arc::new(EngineHealth {
            endpoint: endpoint.clone(),
            lost: AtomicBool::new(false),
        });
        let logs = Arc::new(LogHub {
            docker: docker.clone(),
            runtime: Handle::try_current().ok(),
            inner: StdMutex::new(LogHubInner::default()),
            health: Arc::clone(&health),
        });
        Ok(DockerDeployer {
            docker,
            endpoint,
            options,
            short_names,
            state: tokio::sync::Mutex::new(State::default()),
            logs,
            health,
            route: StdMutex::new(None),
        })
    }

    /// Asks the engine whether it answers. When it does not, reports (once per outage) that it
    /// is gone, naming the endpoint and what to do; when it answers after an outage, reports
    /// that once too. The dev loop calls this after a failed iteration: a build that failed
    /// because the engine stopped says so only in the builder's words.
    pub async fn check_engine(&self, reporter: &dyn Reporter) -> bool {
        match ping(&self.docker, &self.endpoint).await {
            Ok(()) => {
                self.health.back(reporter);
                true
            }
            Err(error) => {
                self.health.observe(reporter, &error);
                false
            }
        }
    }

    /// The endpoint the engine was reached at.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The options this deployer runs with.
    pub fn options(&self) -> &DockerDeployOptions {
        &self.options
    }

    /// The run's network name.
    pub fn network_name(&self) -> String {
        network_name(&self.options.run_id)
    }

    /// The containers running now, one per deployed image.
    pub async fn containers(&self) -> Vec<DockerContainer> {
        let state = self.state.lock().await;
        state
            .running
            .iter()
            .map(|(image_name, running)| DockerContainer {
                image_name: image_name.clone(),
                reference: running.reference.clone(),
                name: running.name.clone(),
                id: running.id.clone(),
                ports: running.ports.clone(),
            })
            .collect()
    }

    /// Follows the output of every container of this run — the running ones and each one a
    /// later deploy starts — and reports each line once as an [`Event::LogLine`]
    /// (`pod: None`, the container name, the image name).
    ///
    /// Following lasts until the returned handle is stopped or dropped. A second call takes
    /// over from the first; lines already reported are not reported again.
    pub fn follow_logs(&self, reporter: Arc<dyn Reporter>) -> LogHandle {
        let session = self.logs.start(reporter);
        LogHandle {
            hub: Arc::clone(&self.logs),
            session,
        }
    }

    fn short_name(&self, image_name: &str) -> String {
        self.short_names
            .get(image_name)
            .cloned()
            .unwrap_or_else(|| sanitize(image_basename(image_name)))
    }

    fn engine_error(&self, operation: impl Into<String>, error: &EngineError) -> DeployError {
        engine_error(&self.endpoint, operation.into(), error)
    }

    /// Warnings about the options, once per deployer.
    fn check_options(&self, state: &mut State, reporter: &dyn Reporter) {
        if std::mem::replace(&mut state.options_checked, true) {
            return;
        }
        if self.options.images.is_empty() {
            warn(
                reporter,
                "deploy.docker.images is empty: no container will be started".to_owned(),
            );
        }
        for port in &self.options.ports {
            if self.image_of_port(port).is_none() {
                warn(
                    reporter,
                    format!(
                        "portForward entry `{}` port {} names no image of deploy.docker.images; \
                         it is ignored",
                        port.image, port.container_port
                    ),
                );
            }
        }
    }

    /// The image name a port entry belongs to.
    fn image_of_port(&self, port: &DockerPort) -> Option<&str> {
        self.options
            .images
            .iter()
            .find(|image| {
                **image == port.image
                    || self.short_name(image) == port.image
                    || image_basename(image) == port.image
            })
            .map(String::as_str)
    }

    /// Removes the containers (and networks) an earlier run of the same images left behind —
    /// a `dev` killed with `SIGKILL` cannot clean up. Selects by label only: skiff's labels,
    /// [`IMAGE_LABEL`] naming one of [`DockerDeployOptions::images`], and another run id. A
    /// failure is a warning: the deploy goes on.
    async fn sweep_leftovers(&self, reporter: &dyn Reporter) {
        if self.options.images.is_empty() {
            return;
        }
        let result = remove_leftovers(
            &self.docker,
            &self.endpoint,
            &self.options.images,
            Some(&self.options.run_id),
            self.options.stop_grace,
        )
        .await;
        let (removed, error) = match result {
            Ok(removed) => (removed, None),
            Err((removed, error)) => (removed, Some(error)),
        };
        if !removed.is_empty() {
            warn(
                reporter,
                format!(
                    "removing what an earlier run of {} left behind (it did not clean up, \
                     e.g. it was killed)",
                    self.options.images.join(", ")
                ),
            );
        }
        report_deleted(reporter, &removed);
        if let Some(error) = error {
            warn(
                reporter,
                format!("could not remove what an earlier run left behind: {error}"),
            );
        }
    }

    /// Takes over the running containers of this run id that an earlier invocation left (`skiff
    /// run` leaves them running; the run id is the same for the same project and target), so
    /// that a deploy of the same image leaves them as they are and a new image replaces them
    /// on the same host ports. Of several containers for one image, the newest generation is
    /// taken. Nothing is taken when the engine cannot list them: the deploy then starts afresh.
    /// With `port_proxy`, containers that publish the user's ports themselves (left by `run`)
    /// are removed instead: those ports are this process's to serve; proxied ones (left by a
    /// killed `dev`) are taken over, and the deploy serves their ports again.
    async fn adopt_running(&self, state: &mut State) {
        let Ok(containers) =
            skiffs_containers(&self.docker, &self.endpoint, Some(&self.options.run_id)).await
        else {
            return;
        };
        for container in containers {
            let Some(image_name) = container
                .labels
                .as_ref()
                .and_then(|l| l.get(IMAGE_LABEL))
                .filter(|image| self.options.images.contains(image))
                .cloned()
            else {
                continue;
            };
            let proxied = container
                .labels
                .as_ref()
                .and_then(|l| l.get(PORTS_LABEL))
                .is_some_and(|v| v == PORTS_PROXIED);
            let running = container.state == Some(ContainerSummaryStateEnum::RUNNING);
            let ports: Vec<PublishedPort> = container
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    let ip: IpAddr = p.ip.as_deref()?.parse().ok()?;
                    Some(PublishedPort {
                        container_port: p.private_port,
                        local_address: SocketAddr::new(ip, p.public_port?),
                    })
                })
                .collect();
            let (Some(id), Some(reference)) = (container.id.clone(), container.image.clone())
            else {
                continue;
            };
            let image_id = container.image_id.clone();
            let Some((_, name)) = id_and_name(container) else {
                continue;
            };
            let generation = name
                .rsplit_once('-')
                .and_then(|(_, g)| g.parse::<u64>().ok())
                .unwrap_or(0);
            let newest = state.generations.entry(image_name.clone()).or_insert(0);
            if self.options.port_proxy && !proxied {
                // It publishes the user-facing ports itself, which this process is to serve:
                // replaced like any changed container, only without a proxy to switch.
                *newest = (*newest).max(generation);
                let _ = stop_container(
                    &self.docker,
                    &self.endpoint,
                    &id,
                    &name,
                    self.options.stop_grace,
                )
                .await;
                let _ = remove_container(&self.docker, &self.endpoint, &id, &name).await;
                continue;
            }
            if generation < *newest || !running {
                *newest = (*newest).max(generation);
                continue;
            }
            *newest = generation;
            // Behind a proxy its published ports are ephemeral, not the user's: the deploy
            // that keeps it serves the user's ports anew.
            let ports = if proxied { Vec::new() } else { ports };
            self.logs.add(&id, &name, &image_name);
            state.running.insert(
                image_name,
                Running {
                    name,
                    id,
                    reference,
                    image_id,
                    ports,
                },
            );
        }
    }

    /// The network's ID, creating the network on first use.
    async fn ensure_network(
        &self,
        state: &mut State,
        reporter: &dyn Reporter,
    ) -> Result<String, DeployError> {
        if let Some(id) = &state.network {
            return Ok(id.clone());
        }
        let name = self.network_name();
        if let Some(id) = self.find_network(&name).await? {
            state.network = Some(id.clone());
            return Ok(id);
        }
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".to_owned()),
            labels: Some(run_labels(&self.options.run_id)),
            ..Default::default()
        };
        let id = match self.docker.create_network(request).await {
            Ok(created) => created.id,
            Err(EngineError::DockerResponseServerError {
                status_code: 409, ..
            }) => self.find_network(&name).await?.unwrap_or_default(),
            Err(e) => return Err(self.engine_error(format!("create network {name}"), &e)),
        };
        if id.is_empty() {
            return Err(DeployError::Docker {
                operation: format!("create network {name}"),
                message: "the engine returned no network ID".to_owned(),
            });
        }
        reporter.report(Event::Message {
            source: SOURCE,
            level: Level::Debug,
            text: format!("created network {name}"),
        });
        state.network = Some(id.clone());
        Ok(id)
    }

    /// The ID of this run's network `name`, if it exists (and carries the run's labels).
    async fn find_network(&self, name: &str) -> Result<Option<String>, DeployError> {
        let filters = HashMap::from([
            ("name".to_owned(), vec![name.to_owned()]),
            (
                "label".to_owned(),
                label_filters(Some(&self.options.run_id)),
            ),
        ]);
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| self.engine_error(format!("list networks named {name}"), &e))?;
        Ok(networks
            .into_iter()
            .find(|n| {
                n.name.as_deref() == Some(name)
                    && is_skiffs(n.labels.as_ref(), Some(&self.options.run_id))
            })
            .and_then(|n| n.id))
    }

    /// Picks the published ports of `image_name`'s next container.
    fn plan_ports(
        &self,
        state: &State,
        image_name: &str,
        container: &str,
        previous: Option<&Running>,
        reporter: &dyn Reporter,
    ) -> Result<Vec<PublishedPort>, DeployError> {
        // Ports other containers of this run hold, and those already picked here.
        let mut reserved: BTreeSet<SocketAddr> = state
            .running
            .iter()
            .filter(|(image, _)| image.as_str() != image_name)
            .flat_map(|(_, r)| r.ports.iter().map(|p| p.local_address))
            .collect();
        let mut planned = Vec::new();
        for port in &self.options.ports {
            if self.image_of_port(port) != Some(image_name)
                || planned
                    .iter()
                    .any(|p: &PublishedPort| p.container_port == port.container_port)
            {
                continue;
            }
            let ip = parse_address(port.address.as_deref())?;
            // A replacement keeps the old container's host port: it is freed by the swap.
            let kept = previous.and_then(|r| {
                r.ports
                    .iter()
                    .find(|p| p.container_port == port.container_port && p.local_address.ip() == ip)
            });
            let local_address = match kept {
                Some(kept) => kept.local_address,
                None => choose_local_port(ip, port, container, &reserved, reporter)?,
            };
            reserved.insert(local_address);
            planned.push(PublishedPort {
                container_port: port.container_port,
                local_address,
            });
        }
        Ok(planned)
    }

    /// Creates `name` for `image`, removing a stale container of this run with that name.
    async fn create_container(
        &self,
        name: &str,
        image: &BuiltImage,
        network: &str,
        ports: &[PublishedPort],
    ) -> Result<String, DeployError> {
        let short_name = self.short_name(&image.image_name);
        let mut labels = run_labels(&self.options.run_id);
        labels.insert(IMAGE_LABEL.to_owned(), image.image_name.clone());
        if self.options.port_proxy {
            labels.insert(PORTS_LABEL.to_owned(), PORTS_PROXIED.to_owned());
        }
        let mut port_bindings = HashMap::new();
        let mut exposed = Vec::new();
        for port in ports {
            let key = format!("{}/tcp", port.container_port);
            exposed.push(key.clone());
            port_bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: Some(port.local_address.ip().to_string()),
                    // Port 0: one the engine picks.
                    host_port: Some(match port.local_address.port() {
                        0 => String::new(),
                        port => port.to_string(),
                    }),
                }]),
            );
        }
        let endpoint = EndpointSettings {
            aliases: Some(vec![short_name]),
            ..Default::default()
        };
        let mut body = ContainerCreateBody {
            image: Some(image.reference.to_string()),
            labels: Some(labels),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            stop_timeout: Some(i64::from(grace_seconds(self.options.stop_grace))),
            host_config: Some(HostConfig {
                network_mode: Some(network.to_owned()),
                port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(network.to_owned(), endpoint)])),
            }),
            ..Default::default()
        };
        let operation = format!("create container {name}");
        let mut removed_stale = false;
        let mut used_image_id = false;
        let mut pulled = false;
        loop {
            let options = CreateContainerOptions {
                name: Some(name.to_owned()),
                ..Default::default()
            };
            match self
                .docker
                .create_container(Some(options), body.clone())
                .await
            {
                Ok(created) => return Ok(created.id),
                Err(EngineError::DockerResponseServerError {
                    status_code: 409,
                    message,
                }) if !removed_stale => {
                    if !self.remove_stale(name).await? {
                        return Err(DeployError::Docker {
                            operation,
                            message: format!(
                                "a container named {name} already exists and does not carry \
                                 this run's skiff labels, so skiff leaves it alone; remove or \
                                 rename it ({message})"
                            ),
                        });
                    }
                    removed_stale = true;
                }
                // A pushed `name:tag@digest` may be unknown to the engine by that name while
                // the image itself is there.
                Err(EngineError::DockerResponseServerError {
                    status_code: 404, ..
                }) if !used_image_id && image.image_id.is_some() => {
                    body.image.clone_from(&image.image_id);
                    used_image_id = true;
                }
                // Not in the engine at all: built elsewhere and pushed (a daemonless build,
                // `skiff build --push` on another machine). Like `docker run`, pull it once.
                Err(EngineError::DockerResponseServerError {
                    status_code: 404, ..
                }) if !pulled => {
                    let pulled_as = self.pull(&image.reference).await?;
                    body.image = Some(pulled_as);
                    pulled = true;
                }
                Err(e) => return Err(self.engine_error(operation, &e)),
            }
        }
    }

    /// Pulls `reference` into the engine; returns the name to create containers from (by
    /// digest when it has one: the engine records a digest pull under `repository@digest`).
    async fn pull(&self, reference: &ImageRef) -> Result<String, DeployError> {
        let from = match reference.digest() {
            Some(digest) => format!("{}@{digest}", reference.repository()),
            None => reference.to_string(),
        };
        let options = CreateImageOptionsBuilder::new().from_image(&from).build();
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            match step {
                Ok(_) => {}
                Err(e) if is_unreachable(&e) => {
                    return Err(self.engine_error(format!("pull {from}"), &e));
                }
                Err(e) => {
                    return Err(DeployError::Docker {
                        operation: format!("pull {from}"),
                        message: format!(
                            "{reference} is not in the Docker engine and pulling it failed: {}; \
                             check that the registry is running and reachable from the engine \
                             (and `docker login` to it if it needs credentials)",
                            describe(&e)
                        ),
                    });
                }
            }
        }
        Ok(from)
    }

    /// Removes the container `name` if it belongs to this run (a leftover of an earlier
    /// deployer with the same run id). Returns whether it did.
    async fn remove_stale(&self, name: &str) -> Result<bool, DeployError> {
        let inspect = match self.docker.inspect_container(name, None).await {
            Ok(inspect) => inspect,
            Err(EngineError::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(true),
            Err(e) => return Err(self.engine_error(format!("inspect container {name}"), &e)),
        };
        let labels = inspect.config.as_ref().and_then(|c| c.labels.as_ref());
        if !is_skiffs_container(labels, Some(&self.options.run_id)) {
            return Ok(false);
        }
        let id = inspect.id.unwrap_or_else(|| name.to_owned());
        self.stop(&id, name).await?;
        self.remove(&id, name).await?;
        Ok(true)
    }

    async fn start(
        &self,
        id: &str,
        name: &str,
        ports: &[PublishedPort],
    ) -> Result<(), DeployError> {
        match self.docker.start_container(id, None).await {
            Ok(()) => Ok(()),
            Err(EngineError::DockerResponseServerError { message, .. })
                if is_port_conflict(&message) =>
            {
                Err(DeployError::Listen {
                    address: ports
                        .iter()
                        .map(|p| p.local_address.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    reason: format!("container {name} cannot publish it: {message}"),
                })
            }
            Err(e) => Err(self.engine_error(format!("start container {name}"), &e)),
        }
    }

    async fn stop(&self, id: &str, name: &str) -> Result<(), DeployError> {
        stop_container(
            &self.docker,
            &self.endpoint,
            id,
            name,
            self.options.stop_grace,
        )
        .await
    }

    async fn remove(&self, id: &str, name: &str) -> Result<(), DeployError> {
        remove_container(&self.docker, &self.endpoint, id, name).await
    }

    /// Removes a container that never ran, after a failure; the first error is what counts.
    async fn discard(&self, id: &str, name: &str, reporter: &dyn Reporter) {
        if let Err(e) = self.remove(id, name).await {
            warn(reporter, format!("could not remove container {name}: {e}"));
        }
    }

    /// Whether the container still exists (`None`: it does not) and runs.
    async fn running(&self, id: &str, name: &str) -> Result<Option<bool>, DeployError> {
        match self.docker.inspect_container(id, None).await {
            Ok(inspect) => Ok(Some(
                inspect
                    .state
                    .and_then(|state| state.running)
                    .unwrap_or(false),
            )),
            Err(EngineError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.engine_error(format!("inspect container {name}"), &e)),
        }
    }

    /// The name of `image_name`'s next container (its next generation).
    fn next_container_name(&self, state: &mut State, image_name: &str) -> String {
        let next = state.generations.entry(image_name.to_owned()).or_insert(0);
        *next += 1;
        container_name_for(&self.short_name(image_name), &self.options.run_id, *next)
    }

    /// Starts `image`'s next container, replacing `previous` (which runs, unless
    /// `previous_runs` is false: an engine restart stopped it, say). On error, `previous` is
    /// left as it was.
    async fn replace(
        &self,
        state: &mut State,
        image: &BuiltImage,
        previous: Option<&Running>,
        previous_runs: bool,
        network: &str,
        reporter: &dyn Reporter,
    ) -> Result<Running, DeployError> {
        if self.options.port_proxy {
            return self
                .replace_behind_proxy(state, image, previous, previous_runs, network, reporter)
                .await;
        }
        let name = self.next_container_name(state, &image.image_name);
        let mut ports = self.plan_ports(state, &image.image_name, &name, previous, reporter)?;
        let mut id = self.create_container(&name, image, network, &ports).await?;
        let shares_port = previous.is_some_and(|old| ports.iter().any(|p| old.ports.contains(p)));
        if !shares_port {
            let mut attempts: u32 = 0;
            loop {
                match self.start(&id, &name, &ports).await {
                    Ok(()) => break,
                    // Another process took the port between the check and the start (e.g.
                    // another project starting at the same moment): choose the ports again.
                    Err(DeployError::Listen { .. }) if attempts < 3 => {
                        attempts += 1;
                        self.discard(&id, &name, reporter).await;
                        tokio::time::sleep(Duration::from_millis(50 * u64::from(attempts))).await;
                        ports =
                            self.plan_ports(state, &image.image_name, &name, previous, reporter)?;
                        id = self.create_container(&name, image, network, &ports).await?;
                    }
                    Err(e) => {
                        self.discard(&id, &name, reporter).await;
                        return Err(e);
                    }
                }
            }
        }

        match previous {
            Some(old) if shares_port => {
                // The host port can be bound once: stop the old container, start the new one,
                // and only then remove the old one, so that it can come back on failure.
                let swap = Instant::now();
                if let Err(e) = self.stop(&old.id, &old.name).await {
                    self.discard(&id, &name, reporter).await;
                    return Err(e);
                }
                if let Err(e) = self.start(&id, &name, &ports).await {
                    self.discard(&id, &name, reporter).await;
                    if !previous_runs {
                        return Err(e);
                    }
                    match self.docker.start_container(&old.id, None).await {
                        Ok(()) => self.logs.follow(&old.id),
                        Err(restart) => warn(
                            reporter,
                            format!(
                                "could not start {} again after the failed replacement: {}",
                                old.name,
                                describe(&restart)
                            ),
                        ),
                    }
                    return Err(e);
                }
                let gap = swap.elapsed();
                self.logs.add(&id, &name, &image.image_name);
                let addresses = ports
                    .iter()
                    .filter(|p| old.ports.contains(p))
                    .map(|p| p.local_address.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                let text = if previous_runs {
                    format!(
                        "replaced {} with {name}; {addresses} was unserved for {:.1} s",
                        old.name,
                        gap.as_secs_f64()
                    )
                } else {
                    format!(
                        "replaced {} (it was not running) with {name}, serving {addresses} again",
                        old.name
                    )
                };
                reporter.report(Event::Message {
                    source: SOURCE,
                    level: Level::Info,
                    text,
                });
                self.retire(old, reporter).await;
            }
            Some(old) => {
                self.logs.add(&id, &name, &image.image_name);
                if let Err(e) = self.stop(&old.id, &old.name).await {
                    warn(reporter, format!("could not stop {}: {e}", old.name));
                }
                reporter.report(Event::Message {
                    source: SOURCE,
                    level: Level::Info,
                    text: format!("replaced {} with {name}", old.name),
                });
                self.retire(old, reporter).await;
            }
            None => self.logs.add(&id, &name, &image.image_name),
        }
        Ok(Running {
            name,
            id,
            reference: image.reference.to_string(),
            image_id: image.image_id.clone(),
            ports,
        })
    }

    /// Removes a replaced (stopped) container; a failure is only a warning, the new one runs.
    async fn retire(&self, old: &Running, reporter: &dyn Reporter) {
        match self.remove(&old.id, &old.name).await {
            Ok(()) => reporter.report(Event::Deployed {
                object: old.name.clone(),
                action: "deleted".to_owned(),
            }),
            Err(e) => warn(
                reporter,
                format!("could not remove replaced container {}: {e}", old.name),
            ),
        }
        self.logs.retire(&old.id);
    }
}

#[async_trait::async_trait]
impl Deployer for DockerDeployer {
    async fn deploy(
        &self,
        input: &DeployInput<'_>,
        reporter: &dyn Reporter,
    ) -> Result<DeployOutcome, DeployError> {
        if self.health.lost.load(Ordering::SeqCst) {
            // Back after an outage: say so before what the deploy reports.
            self.check_engine(reporter).await;
        }
        let result = self.deploy_images(input, reporter).await;
        match &result {
            Ok(_) => self.health.back(reporter),
            Err(error) => self.health.observe(reporter, error),
        }
        result
    }

    async fn cleanup(&self, reporter: &dyn Reporter) -> Result<(), DeployError> {
        let mut state = self.state.lock().await;
        // What they would stop is removed below with the rest of the run.
        for task in state.retiring.drain(..) {
            task.abort();
        }
        let result = remove_labelled(
            &self.docker,
            &self.endpoint,
            Some(&self.options.run_id),
            self.options.stop_grace,
        )
        .await;
        let removed = match result {
            Ok(removed) => removed,
            Err((removed, error)) => {
                report_deleted(reporter, &removed);
                return Err(error);
            }
        };
        report_deleted(reporter, &removed);
        state.running.clear();
        state.proxies.clear();
        state.network = None;
        self.logs.retire_all();
        Ok(())
    }
}

impl DockerDeployer {
    async fn deploy_images(
        &self,
        input: &DeployInput<'_>,
        reporter: &dyn Reporter,
    ) -> Result<DeployOutcome, DeployError> {
        let mut state = self.state.lock().await;
        self.check_options(&mut state, reporter);
        let first_deploy = !std::mem::replace(&mut state.swept, true);
        if first_deploy {
            self.sweep_leftovers(reporter).await;
            self.adopt_running(&mut state).await;
        }
        let mut outcome = DeployOutcome::default();
        for image_name in &self.options.images {
            let Some(image) = input.images.iter().find(|b| b.image_name == *image_name) else {
                if !state.running.contains_key(image_name) {
                    warn(
                        reporter,
                        format!(
                            "image {image_name} of deploy.docker.images was not built; \
                             no container runs it"
                        ),
                    );
                }
                continue;
            };
            let reference = image.reference.to_string();
            let mut previous = state.running.get(image_name).cloned();
            let mut previous_runs = true;
            if let Some(current) = &previous {
                if let Some(runs) = self.running(&current.id, &current.name).await? {
                    previous_runs = runs;
                    // A container an engine restart stopped is replaced even with the same
                    // image: "unchanged" would leave the app down.
                    if runs && current.reference == reference && current.image_id == image.image_id
                    {
                        reporter.report(Event::Deployed {
                            object: current.name.clone(),
                            action: "unchanged".to_owned(),
                        });
                        if first_deploy {
                            // Taken over from an earlier invocation: say where it serves.
                            let current = if self.options.port_proxy {
                                self.serve_adopted(&mut state, image_name, reporter).await?
                            } else {
                                current.clone()
                            };
                            report_ports(reporter, &current);
                        }
                        outcome
                            .resources
                            .push((container_ref(&current.name), ApplyAction::Unchanged));
                        continue;
                    }
                } else {
                    // Removed behind skiff's back (or the engine came back without its old
                    // state): start afresh, and look the network up again too.
                    state.running.remove(image_name);
                    state.network = None;
                    previous = None;
                }
            }
            let network = self.ensure_network(&mut state, reporter).await?;
            let running = self
                .replace(
                    &mut state,
                    image,
                    previous.as_ref(),
                    previous_runs,
                    &network,
                    reporter,
                )
                .await?;
            let action = if previous.is_some() {
                ApplyAction::Configured
            } else {
                ApplyAction::Created
            };
            reporter.report(Event::Deployed {
                object: running.name.clone(),
                action: if previous.is_some() {
                    "configured"
                } else {
                    "created"
                }
                .to_owned(),
            });
            report_ports(reporter, &running);
            outcome
                .resources
                .push((container_ref(&running.name), action));
            state.running.insert(image_name.clone(), running);
        }
        Ok(outcome)
    }
}

fn warn(reporter: &dyn Reporter, text: String) {
    reporter.report(Event::Message {
        source: SOURCE,
        level: Level::Warning,
        text,
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use skiff_types::event::CollectingReporter;

    #[test]
    fn names() {
        assert_eq!(
            container_name("gcr.io/p/web", "1234abcd-ef56", 3),
            "skiff-web-1234abcd-3"
        );
        assert_eq!(container_name("web:tag", "run", 1), "skiff-web-run-1");
        assert_eq!(container_name("///", "run", 1), "skiff-app-run-1");
        assert_eq!(network_name("Run ID/1"), "skiff-run-id-1");
        assert_eq!(sanitize("--A b__c--"), "a-b__c");
        assert_eq!(image_basename("localhost:5000/a/b@sha256:00"), "b");
    }

    #[test]
    fn same_basenames_get_distinct_short_names() {
        let images = ["a/web".to_owned(), "b/web".to_owned(), "api".to_owned()];
        let short = short_names(&images);
        assert_eq!(short["a/web"], "a-web");
        assert_eq!(short["b/web"], "b-web");
        assert_eq!(short["api"], "api");
    }

    #[test]
    fn labels_select_only_skiffs_objects() {
        let mine = run_labels("r1");
        assert!(is_skiffs(Some(&mine), Some("r1")));
        assert!(is_skiffs(Some(&mine), None));
        assert!(!is_skiffs(Some(&mine), Some("r2")));
        let foreign = HashMap::from([(RUN_ID_LABEL.to_owned(), "r1".to_owned())]);
        assert!(!is_skiffs(Some(&foreign), Some("r1")));
        assert!(!is_skiffs(None, None));
        let mut container = mine.clone();
        assert!(!is_skiffs_container(Some(&container), Some("r1")));
        container.insert(IMAGE_LABEL.to_owned(), "web".to_owned());
        assert!(is_skiffs_container(Some(&container), Some("r1")));
        container.insert("io.kubernetes.pod.uid".to_owned(), "u".to_owned());
        assert!(!is_skiffs_container(Some(&container), Some("r1")));
        assert_eq!(
            label_filters(Some("r1")),
            [
                "app.kubernetes.io/managed-by=skiff",
                "skaffold.dev/run-id=r1"
            ]
        );
    }

    #[test]
    fn line_buffer_joins_fragments_and_strips_cr() {
        let mut buffer = LineBuffer::default();
        assert!(buffer.push(b"hel").is_empty());
        assert_eq!(buffer.push(b"lo\r\nwor"), ["hello"]);
        assert_eq!(buffer.push(b"ld\n\nx"), ["world", ""]);
        assert_eq!(buffer.finish().as_deref(), Some("x"));
        assert_eq!(buffer.finish(), None);
    }

    #[test]
    fn grace_rounds_up() {
        assert_eq!(grace_seconds(Duration::ZERO), 0);
        assert_eq!(grace_seconds(Duration::from_millis(200)), 1);
        assert_eq!(grace_seconds(Duration::from_secs(10)), 10);
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_address(None).unwrap().to_string(), "127.0.0.1");
        assert_eq!(
            parse_address(Some("localhost")).unwrap().to_string(),
            "127.0.0.1"
        );
        assert_eq!(parse_address(Some("[::1]")).unwrap().to_string(), "::1");
        assert!(matches!(
            parse_address(Some("example.com")),
            Err(DeployError::Listen { .. })
        ));
    }

    #[test]
    fn an_outage_is_told_once_and_its_end_once() {
        let reporter = CollectingReporter::default();
        let health = EngineHealth {
            endpoint: "unix:///tmp/e/docker.sock".to_owned(),
            lost: AtomicBool::new(false),
        };
        health.back(&reporter);
        let refused = "ping: client error (Connect): Connection refused (os error 111)";
        health.lost(&reporter, refused);
        health.lost(&reporter, "error reading a body from connection");
        health.observe(
            &reporter,
            &DeployError::EngineUnavailable {
                endpoint: health.endpoint.clone(),
                reason: refused.to_owned(),
            },
        );
        health.back(&reporter);
        health.back(&reporter);
        health.lost(&reporter, "ping: socket /tmp/e/docker.sock does not exist");
        let texts: Vec<(Level, String)> = reporter
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Message { level, text, .. } => Some((level, text)),
                _ => None,
            })
            .collect();
        assert_eq!(texts.len(), 3, "{texts:?}");
        assert_eq!(texts[0].0, Level::Warning);
        assert!(texts[0].1.starts_with(
            "the Docker engine at unix:///tmp/e/docker.sock does not answer \
             (connection refused: the engine is not running); start it again"
        ));
        assert_eq!(
            texts[1],
            (
                Level::Info,
                "the Docker engine at unix:///tmp/e/docker.sock answers again".to_owned()
            )
        );
        assert!(
            texts[2]
                .1
                .contains("(its socket is gone: the engine is not running)")
        );
    }

    #[test]
    fn taken_port_moves_on_with_a_warning() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let wanted = taken.local_addr().unwrap().port();
        let reporter = CollectingReporter::default();
        let port = DockerPort {
            image: "web".into(),
            container_port: 8080,
            local_port: Some(wanted),
            address: None,
        };
        let chosen = choose_local_port(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            &port,
            "skiff-web-x-1",
            &BTreeSet::new(),
            &reporter,
        )
        .unwrap();
        assert!(chosen.port() > wanted);
        let warning = reporter
            .events()
            .into_iter()
            .find_map(|e| match e {
                Event::Message {
                    level: Level::Warning,
                    text,
                    ..
                } => Some(text),
                _ => None,
            })
            .unwrap();
        assert!(warning.contains(&wanted.to_string()), "{warning}");
        assert!(warning.contains(&chosen.port().to_string()), "{warning}");
    }

    #[test]
    fn privileged_port_without_local_port_starts_at_offset() {
        let reporter = CollectingReporter::default();
        let port = DockerPort {
            image: "web".into(),
            container_port: 80,
            local_port: None,
            address: None,
        };
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let chosen = choose_local_port(ip, &port, "c", &BTreeSet::new(), &reporter);
        // 8080 may be taken on a developer machine; then the next one is used.
        assert!(chosen.unwrap().port() >= 8080);
    }

    #[test]
    fn port_conflict_messages() {
        assert!(is_port_conflict(
            "driver failed programming external connectivity on endpoint x: Bind for \
             127.0.0.1:8080 failed: port is already allocated"
        ));
        assert!(is_port_conflict(
            "Error starting userland proxy: listen tcp4 127.0.0.1:8080: bind: address already in use"
        ));
        assert!(!is_port_conflict("No such image"));
    }

    #[tokio::test]
    async fn compose_is_refused_before_connecting() {
        let options = DockerDeployOptions {
            run_id: "r".into(),
            use_compose: true,
            ..Default::default()
        };
        let target = DockerTarget {
            docker_host: Some("unix:///nonexistent.sock".into()),
        };
        let error = DockerDeployer::connect(target, options).await.unwrap_err();
        assert!(error.to_string().contains("Compose"), "{error}");
    }
}
