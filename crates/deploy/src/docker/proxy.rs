//! Ports served by this process in `dev`: a new container replaces the old one without a gap.
//!
//! A host port can be published by one container at a time, so replacing a container that
//! publishes it means stopping the old one first and waiting for the engine to publish the
//! port again (≈ 1.5 s measured here, during which connections are refused). With
//! [`DockerDeployOptions::port_proxy`] the user-facing port is instead a listener in this
//! process ([`PortProxy`]), and each container publishes on an ephemeral loopback port. A
//! replacement starts beside the old container; once its port accepts connections the proxy
//! sends new connections to it, and the old container is stopped after its open connections
//! finish (at most [`DRAIN_LIMIT`]). A replacement that exits or never accepts within
//! [`DockerDeployOptions::ready_timeout`] is removed and the old container keeps serving.
//!
//! The proxy connects to the container's address on the run's network when this host can
//! route to it (Linux), else to the port the engine published (Docker Desktop, rootless). The
//! engine's own port proxy accepts a connection before the app listens and then closes it, so
//! through a published port "accepts" means "accepted and not closed at once".

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, timeout};

use super::*;

/// How long the replaced container's open connections may go on before it is stopped.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// How long a connection that arrives before any container is there waits for one.
const NO_BACKEND_WAIT: Duration = Duration::from_secs(30);

/// How long a readiness probe may take to connect.
const PROBE_CONNECT: Duration = Duration::from_millis(300);

/// How long the engine's port proxy gets to close a connection the app did not take.
const PROBE_EOF_WAIT: Duration = Duration::from_millis(100);

/// How often a replacement's ports are probed while it starts.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);

/// Where the proxy finds the current container, and how many connections it has open.
#[derive(Debug, Clone)]
pub(super) struct Backend {
    address: SocketAddr,
    open: Arc<AtomicUsize>,
}

impl Backend {
    fn new(address: SocketAddr) -> Backend {
        Backend {
            address,
            open: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

/// One user-facing port: a listener in this process forwarding each connection to the
/// current container. Dropping it closes the port and every connection through it.
#[derive(Debug)]
pub(super) struct PortProxy {
    backend: watch::Sender<Option<Backend>>,
    task: JoinHandle<()>,
}

impl PortProxy {
    /// Listens on `address` (the port must be free).
    pub(super) fn bind(address: SocketAddr) -> std::io::Result<PortProxy> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let (backend, receiver) = watch::channel(None);
        let task = tokio::spawn(accept_loop(listener, receiver));
        Ok(PortProxy { backend, task })
    }

    /// Sends new connections to `address` from now on; returns the backend replaced.
    pub(super) fn switch(&self, address: SocketAddr) -> Option<Backend> {
        self.backend.send_replace(Some(Backend::new(address)))
    }
}

impl Drop for PortProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, backend: watch::Receiver<Option<Backend>>) {
    // Owned here so that aborting this task ends every connection too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((client, _)) = accepted {
                    connections.spawn(forward(client, backend.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn forward(mut client: TcpStream, mut backend: watch::Receiver<Option<Backend>>) {
    let current = match timeout(NO_BACKEND_WAIT, backend.wait_for(Option::is_some)).await {
        Ok(Ok(current)) => current.clone(),
        _ => None,
    };
    let Some(current) = current else {
        return;
    };
    current.open.fetch_add(1, Ordering::SeqCst);
    let _open = OpenGuard(Arc::clone(&current.open));
    let Ok(mut upstream) = TcpStream::connect(current.address).await else {
        // As the engine's own port proxy does: the client sees the connection closed.
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How this host reaches the containers' ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// The container's address on the run's network.
    ContainerAddress,
    /// The ephemeral loopback port the engine published.
    PublishedPort,
}

/// What one probe of a port found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Accepts,
    Refused,
    Unreachable,
}

async fn probe(address: SocketAddr, route: Route) -> Probe {
    let stream = match timeout(PROBE_CONNECT, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Probe::Refused,
        Ok(Err(_)) | Err(_) => return Probe::Unreachable,
    };
    if route == Route::ContainerAddress {
        return Probe::Accepts;
    }
    let mut stream = stream;
    let mut byte = [0u8; 1];
    match timeout(PROBE_EOF_WAIT, stream.read(&mut byte)).await {
        // Closed at once: the engine's proxy found nothing listening behind it.
        Ok(Ok(0) | Err(_)) => Probe::Refused,
        Ok(Ok(_)) | Err(_) => Probe::Accepts,
    }
}

/// Where a started container's ports can be reached: its address on the run's network and
/// the loopback port the engine published for each container port.
#[derive(Debug, Clone, Default)]
pub(super) struct ContainerAddresses {
    ip: Option<IpAddr>,
    published: BTreeMap<u16, SocketAddr>,
}

impl ContainerAddresses {
    fn of(&self, container_port: u16, route: Route) -> Option<SocketAddr> {
        match route {
            Route::ContainerAddress => self.ip.map(|ip| SocketAddr::new(ip, container_port)),
            Route::PublishedPort => self.published.get(&container_port).copied(),
        }
    }
}

impl DockerDeployer {
    /// Where container `id` can be reached, and whether it still runs (with its exit code).
    async fn addresses(
        &self,
        id: &str,
        name: &str,
    ) -> Result<(ContainerAddresses, Option<i64>), DeployError> {
        let inspect = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.engine_error(format!("inspect container {name}"), &e))?;
        let state = inspect.state.unwrap_or_default();
        let exited = (!state.running.unwrap_or(false)).then(|| state.exit_code.unwrap_or(-1));
        let settings = inspect.network_settings.unwrap_or_default();
        let ip = settings
            .networks
            .unwrap_or_default()
            .into_values()
            .filter_map(|n| n.ip_address?.parse().ok())
            .next();
        let mut published = BTreeMap::new();
        for (key, bindings) in settings.ports.unwrap_or_default() {
            let Some(port) = key.strip_suffix("/tcp").and_then(|p| p.parse::<u16>().ok()) else {
                continue;
            };
            let host_port = bindings
                .into_iter()
                .flatten()
                .find_map(|b| b.host_port?.parse::<u16>().ok());
            if let Some(host_port) = host_port {
                published.insert(
                    port,
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), host_port),
                );
            }
        }
        Ok((ContainerAddresses { ip, published }, exited))
    }

    /// The route to the containers, found once: the container's own address unless this host
    /// cannot reach it.
    async fn route(&self, addresses: &ContainerAddresses, container_port: u16) -> Route {
        if let Some(route) = *lock(&self.route) {
            return route;
        }
        let route = match addresses.of(container_port, Route::ContainerAddress) {
            Some(address)
                if probe(address, Route::ContainerAddress).await != Probe::Unreachable =>
            {
                Route::ContainerAddress
            }
            _ => Route::PublishedPort,
        };
        *lock(&self.route) = Some(route);
        route
    }

    /// Where this host reaches `container_port` of the container at `addresses`.
    async fn reach(
        &self,
        addresses: &ContainerAddresses,
        container_port: u16,
    ) -> Option<SocketAddr> {
        let route = self.route(addresses, container_port).await;
        addresses.of(container_port, route)
    }

    /// Waits until container `name` accepts connections on every one of `ports`; returns
    /// where each is reached. Fails when it exits first or `ready_timeout` passes.
    async fn wait_until_serving(
        &self,
        id: &str,
        name: &str,
        ports: &[u16],
    ) -> Result<BTreeMap<u16, SocketAddr>, DeployError> {
        let deadline = Instant::now() + self.options.ready_timeout;
        let mut waiting_for = ports.first().copied().unwrap_or_default();
        loop {
            let (addresses, exited) = self.addresses(id, name).await?;
            if let Some(code) = exited {
                return Err(DeployError::Docker {
                    operation: format!("start container {name}"),
                    message: format!(
                        "it exited (code {code}) before accepting connections on port \
                         {waiting_for}; its logs say why; the previous container keeps serving"
                    ),
                });
            }
            let mut found = BTreeMap::new();
            for &port in ports {
                // The probe depends on the route: through a published port "accepts" means
                // more than a connection.
                let route = self.route(&addresses, port).await;
                let Some(address) = addresses.of(port, route) else {
                    break;
                };
                if probe(address, route).await != Probe::Accepts {
                    break;
                }
                found.insert(port, address);
            }
            if found.len() == ports.len() {
                return Ok(found);
            }
            waiting_for = ports
                .iter()
                .copied()
                .find(|p| !found.contains_key(p))
                .unwrap_or(waiting_for);
            if Instant::now() >= deadline {
                return Err(DeployError::Docker {
                    operation: format!("start container {name}"),
                    message: format!(
                        "it did not accept connections on port {waiting_for} within {:.0} s; \
                         the previous container keeps serving (check that the app listens on \
                         that port, on all addresses, not only on 127.0.0.1)",
                        self.options.ready_timeout.as_secs_f64()
                    ),
                });
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    /// `replace` with the ports served by this process: the new container starts beside
    /// `previous`, and the proxies switch to it once it accepts connections.
    pub(super) async fn replace_behind_proxy(
        &self,
        state: &mut State,
        image: &BuiltImage,
        previous: Option<&Running>,
        previous_runs: bool,
        network: &str,
        reporter: &dyn Reporter,
    ) -> Result<Running, DeployError> {
        let name = self.next_container_name(state, &image.image_name);
        let ports = self.plan_ports(state, &image.image_name, &name, previous, reporter)?;
        for port in &ports {
            proxy_for(state, port, &name)?;
        }
        let ephemeral: Vec<PublishedPort> = ports
            .iter()
            .map(|p| PublishedPort {
                container_port: p.container_port,
                local_address: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            })
            .collect();
        let id = self
            .create_container(&name, image, network, &ephemeral)
            .await?;
        if let Err(e) = self.start(&id, &name, &ephemeral).await {
            self.discard(&id, &name, reporter).await;
            return Err(e);
        }
        let container_ports: Vec<u16> = ports.iter().map(|p| p.container_port).collect();
        let swap = Instant::now();
        let serving_old = previous.is_some() && previous_runs;
        let backends = if serving_old {
            match self.wait_until_serving(&id, &name, &container_ports).await {
                Ok(backends) => backends,
                Err(e) => {
                    if let Err(stop) = self.stop(&id, &name).await {
                        warn(reporter, format!("could not stop {name}: {stop}"));
                    }
                    self.discard(&id, &name, reporter).await;
                    return Err(e);
                }
            }
        } else {
            // Nothing serves yet: send connections to the new container at once.
            let (addresses, _) = match self.addresses(&id, &name).await {
                Ok(found) => found,
                Err(e) => {
                    self.discard(&id, &name, reporter).await;
                    return Err(e);
                }
            };
            let mut backends = BTreeMap::new();
            for &port in &container_ports {
                if let Some(address) = self.reach(&addresses, port).await {
                    backends.insert(port, address);
                }
            }
            backends
        };
        self.logs.add(&id, &name, &image.image_name);
        let mut replaced = Vec::new();
        for port in &ports {
            let (Some(proxy), Some(address)) = (
                state.proxies.get(&port.local_address),
                backends.get(&port.container_port),
            ) else {
                continue;
            };
            replaced.extend(proxy.switch(*address));
        }
        if let Some(old) = previous {
            let addresses = ports
                .iter()
                .map(|p| p.local_address.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let text = if serving_old {
                format!(
                    "replaced {} with {name}; {addresses} switched to it once it accepted \
                     connections ({:.1} s after it started), without a gap",
                    old.name,
                    swap.elapsed().as_secs_f64()
                )
            } else {
                format!("replaced {} (it was not running) with {name}", old.name)
            };
            reporter.report(Event::Message {
                source: SOURCE,
                level: Level::Info,
                text,
            });
            reporter.report(Event::Deployed {
                object: old.name.clone(),
                action: "deleted".to_owned(),
            });
            self.retire_in_background(state, old, replaced);
        }
        Ok(Running {
            name,
            id,
            reference: image.reference.to_string(),
            image_id: image.image_id.clone(),
            ports,
        })
    }

    /// Serves the user's ports of `image_name`'s container taken over from an earlier `dev`
    /// of this run (killed: its proxies went with it); returns it with those ports.
    pub(super) async fn serve_adopted(
        &self,
        state: &mut State,
        image_name: &str,
        reporter: &dyn Reporter,
    ) -> Result<Running, DeployError> {
        let Some(current) = state.running.get(image_name).cloned() else {
            return Err(DeployError::Docker {
                operation: "deploy".to_owned(),
                message: format!("no container of {image_name} to serve"),
            });
        };
        let ports = self.plan_ports(state, image_name, &current.name, None, reporter)?;
        let (addresses, _) = self.addresses(&current.id, &current.name).await?;
        for port in &ports {
            let Some(backend) = self.reach(&addresses, port.container_port).await else {
                continue;
            };
            proxy_for(state, port, &current.name)?.switch(backend);
        }
        let served = Running { ports, ..current };
        state.running.insert(image_name.to_owned(), served.clone());
        Ok(served)
    }

    /// Stops and removes `old` once the connections it still serves are done (at most
    /// [`DRAIN_LIMIT`]), without holding up the deploy: the new container serves already.
    /// A failure here leaves a labelled container that cleanup removes.
    fn retire_in_background(&self, state: &mut State, old: &Running, backends: Vec<Backend>) {
        let docker = self.docker.clone();
        let endpoint = self.endpoint.clone();
        let grace = self.options.stop_grace;
        let logs = Arc::clone(&self.logs);
        let (id, name) = (old.id.clone(), old.name.clone());
        state.retiring.retain(|task| !task.is_finished());
        state.retiring.push(tokio::spawn(async move {
            let deadline = Instant::now() + DRAIN_LIMIT;
            while backends.iter().any(|b| b.open_connections() > 0) && Instant::now() < deadline {
                tokio::time::sleep(PROBE_INTERVAL).await;
            }
            let _ = stop_container(&docker, &endpoint, &id, &name, grace).await;
            let _ = remove_container(&docker, &endpoint, &id, &name).await;
            logs.retire(&id);
        }));
    }
}

/// The proxy serving `port`'s local address, listening there first if none does yet.
fn proxy_for<'a>(
    state: &'a mut State,
    port: &PublishedPort,
    container: &str,
) -> Result<&'a PortProxy, DeployError> {
    match state.proxies.entry(port.local_address) {
        std::collections::btree_map::Entry::Occupied(served) => Ok(served.into_mut()),
        std::collections::btree_map::Entry::Vacant(free) => {
            let proxy = PortProxy::bind(port.local_address).map_err(|e| DeployError::Listen {
                address: port.local_address.to_string(),
                reason: format!(
                    "cannot serve {container}:{} there: {e}",
                    port.container_port
                ),
            })?;
            Ok(free.insert(proxy))
        }
    }
}

fn lock<T>(mutex: &StdMutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn echo_server(reply: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0u8; 64];
                    let _ = stream.read(&mut request).await;
                    let _ = stream.write_all(reply.as_bytes()).await;
                });
            }
        });
        address
    }

    async fn ask(address: SocketAddr) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(b"hello").await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    fn free_address() -> SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[tokio::test]
    async fn connections_go_to_the_backend_of_the_moment_they_arrive() {
        let old = echo_server("old").await;
        let new = echo_server("new").await;
        let address = free_address();
        let proxy = PortProxy::bind(address).unwrap();
        // A connection before any backend waits for one.
        let early = tokio::spawn(ask(address));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(proxy.switch(old).map(|b| b.address), None);
        assert_eq!(early.await.unwrap(), "old");
        assert_eq!(ask(address).await, "old");
        let replaced = proxy.switch(new).unwrap();
        assert_eq!(replaced.address, old);
        assert_eq!(ask(address).await, "new");
        assert_eq!(proxy.switch(new).map(|b| b.address), Some(new));
    }

    #[tokio::test]
    async fn open_connections_are_counted_until_they_end() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = listener.local_addr().unwrap();
        let address = free_address();
        let proxy = PortProxy::bind(address).unwrap();
        proxy.switch(backend);
        let client = TcpStream::connect(address).await.unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        let current = proxy.switch(backend).unwrap();
        assert_eq!(current.open_connections(), 1);
        drop(server_side);
        drop(client);
        let deadline = Instant::now() + Duration::from_secs(5);
        while current.open_connections() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(current.open_connections(), 0);
    }

    #[tokio::test]
    async fn dropping_the_proxy_frees_the_port() {
        let address = free_address();
        let proxy = PortProxy::bind(address).unwrap();
        assert!(std::net::TcpListener::bind(address).is_err());
        drop(proxy);
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpListener::bind(address).is_err() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(std::net::TcpListener::bind(address).is_ok());
    }

    #[tokio::test]
    async fn probes_tell_listening_from_refused_and_from_an_engine_proxy_closing() {
        let listening = echo_server("x").await;
        assert_eq!(
            probe(listening, Route::ContainerAddress).await,
            Probe::Accepts
        );
        assert_eq!(probe(listening, Route::PublishedPort).await, Probe::Accepts);
        assert_eq!(
            probe(free_address(), Route::ContainerAddress).await,
            Probe::Refused
        );
        // What the engine's port proxy does with nothing behind it: accept, then close.
        let closing = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closing_address = closing.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = closing.accept().await {
                drop(stream);
            }
        });
        assert_eq!(
            probe(closing_address, Route::PublishedPort).await,
            Probe::Refused
        );
    }
}
