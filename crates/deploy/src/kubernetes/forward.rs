//! Port-forwarding to Kubernetes resources (`portForward` entries, `--port-forward`).
//!
//! A [`PortForwarder`] opens one local listener per [`PortForwardSpec`] and keeps it open for as
//! long as the returned [`ForwardHandle`] lives — across redeploys. Every accepted connection is
//! routed on its own: the target pod is looked up *when the connection arrives* (the newest ready
//! pod behind the resource), and one kube-rs port-forward stream is opened for that connection
//! alone (a 1.20 API server ends a port-forward stream when the pod closes its side of one TCP
//! connection). So after a redeploy the same local port answers from the new pod.
//!
//! There is no kube-proxy involved: forwarding to a Service means picking a ready pod selected by
//! the Service and the Service port's `targetPort` on it (a number, or a named container port).
//!
//! Both directions are copied until both ends are done. Kubernetes 1.20's port-forward protocol
//! cannot carry a half-close: a client that shuts down its sending side before reading the answer
//! ends the whole forwarded connection (clients such as browsers and `curl` never do that).
//!
//! The local port is `localPort` if given, else the remote port if it is not privileged (≥ 1024),
//! else one the system picks. When that port is taken, the next free one (up to 100 further) is
//! used and a warning names both — the "address already in use" friction of a second `dev`
//! session or a leftover process.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use kube::core::Selector;
use skiff_types::event::{Event, Level, Reporter};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::DeployError;

/// The component name in the events this module reports.
const SOURCE: &str = "port-forward";
/// The address listened on when a spec names none (loopback, like Skaffold).
pub const DEFAULT_ADDRESS: &str = "127.0.0.1";
/// How many ports after a taken one are tried before letting the system pick.
const PORT_ATTEMPTS: u16 = 100;
/// How long a connection waits for a ready pod before it is dropped.
const DEFAULT_POD_WAIT: Duration = Duration::from_secs(30);
/// How often a waiting connection looks for a ready pod again.
const POD_POLL: Duration = Duration::from_millis(250);

/// The kind of resource a port is forwarded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// A Service: a ready pod matching its selector, on the Service port's `targetPort`.
    Service,
    /// A Deployment: a ready pod matching `spec.selector`.
    Deployment,
    /// A StatefulSet: a ready pod matching `spec.selector`.
    StatefulSet,
    /// A ReplicaSet: a ready pod matching `spec.selector`.
    ReplicaSet,
    /// A DaemonSet: a ready pod matching `spec.selector`.
    DaemonSet,
    /// One pod, by name.
    Pod,
}

impl ResourceKind {
    /// Parses a `portForward[].resourceType` (case-insensitive; kubectl's short names too).
    ///
    /// ```
    /// use skiff_deploy::kubernetes::forward::ResourceKind;
    /// assert_eq!(ResourceKind::from_skaffold("Service"), Some(ResourceKind::Service));
    /// assert_eq!(ResourceKind::from_skaffold("deploy"), Some(ResourceKind::Deployment));
    /// assert_eq!(ResourceKind::from_skaffold("job"), None);
    /// ```
    pub fn from_skaffold(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "service" | "services" | "svc" => Some(Self::Service),
            "deployment" | "deployments" | "deploy" => Some(Self::Deployment),
            "statefulset" | "statefulsets" | "sts" => Some(Self::StatefulSet),
            "replicaset" | "replicasets" | "rs" => Some(Self::ReplicaSet),
            "daemonset" | "daemonsets" | "ds" => Some(Self::DaemonSet),
            "pod" | "pods" | "po" => Some(Self::Pod),
            _ => None,
        }
    }

    /// The lower-case kind, as in `service/web`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Deployment => "deployment",
            Self::StatefulSet => "statefulset",
            Self::ReplicaSet => "replicaset",
            Self::DaemonSet => "daemonset",
            Self::Pod => "pod",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The port on the resource: a number or a port name.
///
/// For a Service it is the Service's port (by `port` or by `name`); for the others it is a
/// container port (by `containerPort` or by `name`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RemotePort {
    /// A port number.
    Number(u16),
    /// A port name (`http`).
    Name(String),
}

impl fmt::Display for RemotePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// One port to forward (a `portForward` entry, or one generated by `--port-forward=services`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForwardSpec {
    /// What kind of resource `name` is.
    pub resource_type: ResourceKind,
    /// The resource's name.
    pub name: String,
    /// The resource's namespace.
    pub namespace: String,
    /// The port on the resource.
    pub port: RemotePort,
    /// The wanted local port; `None`: the remote port if ≥ 1024, else any free port.
    pub local_port: Option<u16>,
    /// The local address to listen on (an IP, or a host name such as `localhost`);
    /// `None`: [`DEFAULT_ADDRESS`].
    pub address: Option<String>,
}

impl PortForwardSpec {
    /// The resource as `kind/name` (`service/web`).
    pub fn resource(&self) -> String {
        format!("{}/{}", self.resource_type, self.name)
    }
}

/// Starts port-forwards through one cluster connection.
#[derive(Clone)]
pub struct PortForwarder {
    client: kube::Client,
    pod_wait: Duration,
}

impl fmt::Debug for PortForwarder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortForwarder")
            .field("pod_wait", &self.pod_wait)
            .finish_non_exhaustive()
    }
}

impl PortForwarder {
    /// A forwarder using `client`.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            pod_wait: DEFAULT_POD_WAIT,
        }
    }

    /// How long a new connection waits for a ready pod before it is dropped with a warning
    /// (default 30 s).
    pub fn with_pod_wait(mut self, wait: Duration) -> Self {
        self.pod_wait = wait;
        self
    }

    /// Opens the local listener for `spec` and starts forwarding its connections.
    ///
    /// Reports a warning when the wanted local port is taken (naming it and the one used
    /// instead), then [`Event::PortForwarded`]. Must be called within a Tokio runtime; the
    /// forwarding runs in background tasks until the handle is stopped or dropped.
    ///
    /// # Errors
    ///
    /// [`DeployError::Listen`] when no local port can be opened on the address (or the address
    /// does not resolve); [`DeployError::Api`] (or [`DeployError::Forbidden`]) when a named
    /// remote port cannot be resolved because the resource cannot be read or has no such port.
    pub async fn start(
        &self,
        spec: PortForwardSpec,
        reporter: Arc<dyn Reporter>,
    ) -> Result<ForwardHandle, DeployError> {
        let resource = spec.resource();
        let ip = resolve_address(spec.address.as_deref()).await?;
        let remote_port = match &spec.port {
            RemotePort::Number(n) => *n,
            RemotePort::Name(name) => self.resolve_named_port(&spec, name).await?,
        };
        let wanted = spec
            .local_port
            .filter(|p| *p != 0)
            .or_else(|| (remote_port >= 1024).then_some(remote_port));
        let (listener, taken) = bind_listener(ip, wanted).await?;
        let local_address = listener.local_addr().map_err(|e| DeployError::Listen {
            address: SocketAddr::new(ip, wanted.unwrap_or(0)).to_string(),
            reason: e.to_string(),
        })?;
        if let Some((port, reason)) = taken {
            reporter.report(Event::Message {
                source: SOURCE,
                level: Level::Warning,
                text: format!(
                    "local port {port} is taken ({reason}); forwarding {resource} port {remote_port} on {local_address} instead"
                ),
            });
        }
        reporter.report(Event::PortForwarded {
            resource: resource.clone(),
            remote_port,
            local_address: local_address.to_string(),
        });
        let context = Arc::new(ForwardContext {
            client: self.client.clone(),
            spec,
            resource: resource.clone(),
            local_address,
            pod_wait: self.pod_wait,
            reporter,
        });
        let task = tokio::spawn(accept_loop(listener, context));
        Ok(ForwardHandle {
            resource,
            remote_port,
            local_address,
            task,
        })
    }

    /// The port number behind a port name, from the resource as it is now.
    async fn resolve_named_port(
        &self,
        spec: &PortForwardSpec,
        name: &str,
    ) -> Result<u16, DeployError> {
        let resource = spec.resource();
        let operation = format!("port-forward {resource} port {name}");
        let not_found = |what: &str| DeployError::Api {
            operation: operation.clone(),
            message: format!("{resource} has no {what} named `{name}`"),
        };
        let missing = || DeployError::Api {
            operation: operation.clone(),
            message: format!(
                "{resource} not found in namespace `{}`; cannot resolve the port name",
                spec.namespace
            ),
        };
        let client = self.client.clone();
        let ns = spec.namespace.as_str();
        let verb_error = |e: kube::Error| api_error(&operation, spec.resource_type, ns, e);
        match spec.resource_type {
            ResourceKind::Service => {
                let service = Api::<Service>::namespaced(client, ns)
                    .get_opt(&spec.name)
                    .await
                    .map_err(verb_error)?
                    .ok_or_else(missing)?;
                service
                    .spec
                    .and_then(|s| s.ports)
                    .unwrap_or_default()
                    .into_iter()
                    .find(|p| p.name.as_deref() == Some(name))
                    .and_then(|p| u16::try_from(p.port).ok())
                    .ok_or_else(|| not_found("port"))
            }
            ResourceKind::Pod => {
                let pod = Api::<Pod>::namespaced(client, ns)
                    .get_opt(&spec.name)
                    .await
                    .map_err(verb_error)?
                    .ok_or_else(missing)?;
                pod.spec
                    .as_ref()
                    .and_then(|s| container_port_named(s, name))
                    .ok_or_else(|| not_found("container port"))
            }
            kind => {
                let (_, template) = workload(&client, kind, ns, &spec.name)
                    .await
                    .map_err(verb_error)?
                    .ok_or_else(missing)?;
                template
                    .and_then(|t| t.spec)
                    .as_ref()
                    .and_then(|s| container_port_named(s, name))
                    .ok_or_else(|| not_found("container port"))
            }
        }
    }
}

/// A running port-forward. Dropping it stops the forward, like [`ForwardHandle::stop`].
#[derive(Debug)]
pub struct ForwardHandle {
    resource: String,
    remote_port: u16,
    local_address: SocketAddr,
    task: JoinHandle<()>,
}

impl ForwardHandle {
    /// The local address connections are accepted on (`127.0.0.1:9000`).
    pub fn local_address(&self) -> SocketAddr {
        self.local_address
    }

    /// The resource forwarded to, as `kind/name`.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The remote port (a Service's port, or a container port), named ports resolved.
    pub fn remote_port(&self) -> u16 {
        self.remote_port
    }

    /// Stops accepting and ends every forwarded connection; the local port is released.
    pub fn stop(&self) {
        self.task.abort();
    }

    /// Whether the forward has stopped.
    pub fn is_stopped(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for ForwardHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What every connection task of one forward needs.
struct ForwardContext {
    client: kube::Client,
    spec: PortForwardSpec,
    resource: String,
    local_address: SocketAddr,
    pod_wait: Duration,
    reporter: Arc<dyn Reporter>,
}

impl ForwardContext {
    fn warn(&self, text: String) {
        self.reporter.report(Event::Message {
            source: SOURCE,
            level: Level::Warning,
            text,
        });
    }

    fn debug(&self, text: String) {
        self.reporter.report(Event::Message {
            source: SOURCE,
            level: Level::Debug,
            text,
        });
    }
}

/// Where one connection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    pod: String,
    port: u16,
}

/// Accepts connections until aborted; the connection tasks live in a [`JoinSet`] owned by this
/// task, so aborting it ends them too.
async fn accept_loop(listener: TcpListener, context: Arc<ForwardContext>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(forward_connection(context.clone(), stream));
                }
                Err(e) => {
                    // E.g. too many open files: wait a little instead of spinning.
                    context.warn(format!(
                        "{}: cannot accept a connection on {}: {e}",
                        context.resource, context.local_address
                    ));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Forwards one accepted connection to the newest ready pod at this moment.
async fn forward_connection(context: Arc<ForwardContext>, mut local: TcpStream) {
    let _ = local.set_nodelay(true);
    let deadline = Instant::now() + context.pod_wait;
    let target = loop {
        match find_target(&context).await {
            Ok(target) => break target,
            Err(reason) => {
                if Instant::now() >= deadline {
                    context.warn(format!(
                        "{} (local {}): dropping a connection after waiting {} s for a ready pod: {reason}",
                        context.resource,
                        context.local_address,
                        context.pod_wait.as_secs()
                    ));
                    let _ = local.shutdown().await;
                    return;
                }
                tokio::time::sleep(POD_POLL).await;
            }
        }
    };
    let pods: Api<Pod> = Api::namespaced(context.client.clone(), &context.spec.namespace);
    let mut forwarder = match pods.portforward(&target.pod, &[target.port]).await {
        Ok(forwarder) => forwarder,
        Err(e) => {
            context.warn(format!(
                "{}: cannot forward to pod/{} port {}: {e}",
                context.resource, target.pod, target.port
            ));
            return;
        }
    };
    let errors = forwarder.take_error(target.port);
    let Some(mut upstream) = forwarder.take_stream(target.port) else {
        forwarder.abort();
        return;
    };
    if let Err(e) = tokio::io::copy_bidirectional(&mut local, &mut upstream).await {
        context.debug(format!(
            "{}: connection to pod/{} port {} ended: {e}",
            context.resource, target.pod, target.port
        ));
    }
    // Close both ends before waiting for the pod's error report: a client that reads until
    // the connection closes must not wait for it.
    drop(upstream);
    let _ = local.shutdown().await;
    drop(local);
    if let Some(errors) = errors
        && let Ok(Some(message)) = tokio::time::timeout(Duration::from_millis(500), errors).await
    {
        context.warn(format!(
            "{}: pod/{} port {}: {}",
            context.resource,
            target.pod,
            target.port,
            message.trim()
        ));
    }
    forwarder.abort();
    let _ = forwarder.join().await;
}

/// The newest ready pod behind the resource and the port on it; `Err` says why there is none.
async fn find_target(context: &ForwardContext) -> Result<Target, String> {
    let spec = &context.spec;
    let resource = &context.resource;
    let ns = spec.namespace.as_str();
    let client = context.client.clone();
    match spec.resource_type {
        ResourceKind::Pod => {
            let pod = Api::<Pod>::namespaced(client, ns)
                .get_opt(&spec.name)
                .await
                .map_err(|e| format!("cannot read {resource}: {e}"))?
                .ok_or_else(|| format!("{resource} not found in namespace `{ns}`"))?;
            if !is_ready(&pod) {
                return Err(format!("{resource} is not ready"));
            }
            let port = container_port(&pod, &spec.port)
                .ok_or_else(|| format!("{resource} has no container port {}", spec.port))?;
            Ok(Target {
                pod: spec.name.clone(),
                port,
            })
        }
        ResourceKind::Service => {
            let service = Api::<Service>::namespaced(client.clone(), ns)
                .get_opt(&spec.name)
                .await
                .map_err(|e| format!("cannot read {resource}: {e}"))?
                .ok_or_else(|| format!("{resource} not found in namespace `{ns}`"))?;
            let service_spec = service.spec.unwrap_or_default();
            let selector: Selector = service_spec
                .selector
                .unwrap_or_default()
                .into_iter()
                .collect();
            if selector.selects_all() {
                return Err(format!(
                    "{resource} has no selector; skiff forwards only to Services that select pods"
                ));
            }
            let service_port = service_spec
                .ports
                .unwrap_or_default()
                .into_iter()
                .find(|p| match &spec.port {
                    RemotePort::Number(n) => p.port == i32::from(*n),
                    RemotePort::Name(name) => p.name.as_deref() == Some(name.as_str()),
                })
                .ok_or_else(|| format!("{resource} has no port {}", spec.port))?;
            let target_port = match service_port.target_port {
                None => RemotePort::Number(
                    u16::try_from(service_port.port)
                        .map_err(|_| format!("{resource} has an invalid port"))?,
                ),
                Some(IntOrString::Int(n)) => RemotePort::Number(
                    u16::try_from(n)
                        .map_err(|_| format!("{resource} has an invalid target port {n}"))?,
                ),
                Some(IntOrString::String(name)) => RemotePort::Name(name),
            };
            let pod = newest_ready_pod(&client, ns, &selector, resource).await?;
            pod_target(pod, &target_port, resource)
        }
        kind => {
            let (selector, _) = workload(&client, kind, ns, &spec.name)
                .await
                .map_err(|e| format!("cannot read {resource}: {e}"))?
                .ok_or_else(|| format!("{resource} not found in namespace `{ns}`"))?;
            let selector = Selector::try_from(selector)
                .map_err(|e| format!("{resource} has an invalid selector: {e}"))?;
            if selector.selects_all() {
                return Err(format!("{resource} has an empty selector"));
            }
            let pod = newest_ready_pod(&client, ns, &selector, resource).await?;
            pod_target(pod, &spec.port, resource)
        }
    }
}

/// The pod's name and the port `port` means on it.
fn pod_target(pod: Pod, port: &RemotePort, resource: &str) -> Result<Target, String> {
    let number = container_port(&pod, port);
    let name = pod.metadata.name.unwrap_or_default();
    let port = number.ok_or_else(|| {
        format!("pod/{name} (behind {resource}) has no container port named `{port}`")
    })?;
    Ok(Target { pod: name, port })
}

/// The newest ready pod matching `selector`.
async fn newest_ready_pod(
    client: &kube::Client,
    namespace: &str,
    selector: &Selector,
    resource: &str,
) -> Result<Pod, String> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels_from(selector))
        .await
        .map_err(|e| format!("cannot list the pods of {resource}: {e}"))?;
    pick_newest_ready(pods.items).ok_or_else(|| {
        format!(
            "no ready pod matches {resource} (selector `{selector}`) in namespace `{namespace}`"
        )
    })
}

/// Of `pods`, the ready one created last (ties broken by name, so the choice is stable).
fn pick_newest_ready(pods: Vec<Pod>) -> Option<Pod> {
    pods.into_iter().filter(is_ready).max_by(|a, b| {
        let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a)
            .cmp(&created(b))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    })
}

/// Running, `Ready` condition true, and not being deleted.
fn is_ready(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let Some(status) = &pod.status else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The container port `port` means on `pod`: a number as is, a name resolved from the
/// containers' ports.
fn container_port(pod: &Pod, port: &RemotePort) -> Option<u16> {
    match port {
        RemotePort::Number(n) => Some(*n),
        RemotePort::Name(name) => pod
            .spec
            .as_ref()
            .and_then(|s| container_port_named(s, name)),
    }
}

/// The number of the container port called `name`.
fn container_port_named(spec: &PodSpec, name: &str) -> Option<u16> {
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(name))
        .and_then(|p| u16::try_from(p.container_port).ok())
}

/// A workload's selector and pod template.
async fn workload(
    client: &kube::Client,
    kind: ResourceKind,
    namespace: &str,
    name: &str,
) -> Result<Option<(LabelSelector, Option<PodTemplateSpec>)>, kube::Error> {
    let client = client.clone();
    Ok(match kind {
        ResourceKind::Deployment => Api::<Deployment>::namespaced(client, namespace)
            .get_opt(name)
            .await?
            .map(|o| (o.spec.selector, Some(o.spec.template))),
        ResourceKind::StatefulSet => Api::<StatefulSet>::namespaced(client, namespace)
            .get_opt(name)
            .await?
            .map(|o| (o.spec.selector, Some(o.spec.template))),
        ResourceKind::ReplicaSet => Api::<ReplicaSet>::namespaced(client, namespace)
            .get_opt(name)
            .await?
            .map(|o| (o.spec.selector, o.spec.template)),
        ResourceKind::DaemonSet => Api::<DaemonSet>::namespaced(client, namespace)
            .get_opt(name)
            .await?
            .map(|o| (o.spec.selector, Some(o.spec.template))),
        ResourceKind::Service | ResourceKind::Pod => None,
    })
}

/// A kube error while resolving something for `operation`, as a [`DeployError`].
fn api_error(
    operation: &str,
    kind: ResourceKind,
    namespace: &str,
    error: kube::Error,
) -> DeployError {
    match &error {
        kube::Error::Api(status) if status.code == 403 => DeployError::Forbidden {
            verb: "get".into(),
            resource: match kind {
                ResourceKind::Service => "services".into(),
                ResourceKind::Pod => "pods".into(),
                other => format!("{}s.apps", other.as_str()),
            },
            namespace: namespace.into(),
            message: status.message.clone(),
        },
        _ => DeployError::Api {
            operation: operation.into(),
            message: error.to_string(),
        },
    }
}

/// The IP to listen on for `address` (default loopback).
async fn resolve_address(address: Option<&str>) -> Result<IpAddr, DeployError> {
    let Some(address) = address.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    };
    let unbracketed = address.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(ip);
    }
    let mut resolved =
        tokio::net::lookup_host((address, 0))
            .await
            .map_err(|e| DeployError::Listen {
                address: address.into(),
                reason: format!("the address does not resolve: {e}"),
            })?;
    // Prefer IPv4, as `localhost` usually means 127.0.0.1 to the people typing it.
    let all: Vec<SocketAddr> = resolved.by_ref().collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or_else(|| all.first())
        .map(|a| a.ip())
        .ok_or_else(|| DeployError::Listen {
            address: address.into(),
            reason: "the address resolves to nothing".into(),
        })
}

/// Binds `ip:wanted`, or the next free port after it (up to [`PORT_ATTEMPTS`] further), or one
/// the system picks. Returns the listener and, when `wanted` was taken, that port and why.
async fn bind_listener(
    ip: IpAddr,
    wanted: Option<u16>,
) -> Result<(TcpListener, Option<(u16, String)>), DeployError> {
    let listen_error = |port: u16, e: std::io::Error| DeployError::Listen {
        address: SocketAddr::new(ip, port).to_string(),
        reason: e.to_string(),
    };
    let Some(wanted) = wanted else {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))
            .await
            .map_err(|e| listen_error(0, e))?;
        return Ok((listener, None));
    };
    let mut taken_reason = None;
    for offset in 0..=PORT_ATTEMPTS {
        let Some(port) = wanted.checked_add(offset) else {
            break;
        };
        match TcpListener::bind(SocketAddr::new(ip, port)).await {
            Ok(listener) => {
                let taken = taken_reason.map(|reason| (wanted, reason));
                return Ok((listener, taken));
            }
            Err(e) if port_unusable(&e) => {
                if taken_reason.is_none() {
                    taken_reason = Some(e.to_string());
                }
            }
            Err(e) => return Err(listen_error(port, e)),
        }
    }
    let listener = TcpListener::bind(SocketAddr::new(ip, 0))
        .await
        .map_err(|e| listen_error(0, e))?;
    let reason = taken_reason.unwrap_or_else(|| "address already in use".into());
    Ok((listener, Some((wanted, reason))))
}

/// Errors that mean "try another port": in use, or privileged.
fn port_unusable(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::AddrInUse | std::io::ErrorKind::PermissionDenied
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;

    fn pod(name: &str, created: i64, ready: bool, deleting: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(Timestamp::from_second(created).unwrap())),
                deletion_timestamp: deleting
                    .then(|| Time(Timestamp::from_second(created + 1).unwrap())),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn newest_ready_pod_wins() {
        let pods = vec![
            pod("old", 100, true, false),
            pod("newest-not-ready", 300, false, false),
            pod("new", 200, true, false),
            pod("terminating", 250, true, true),
        ];
        assert_eq!(
            pick_newest_ready(pods).and_then(|p| p.metadata.name),
            Some("new".to_owned())
        );
        assert!(pick_newest_ready(vec![pod("x", 1, false, false)]).is_none());
    }

    #[test]
    fn resource_kinds_parse() {
        for (text, kind) in [
            ("service", ResourceKind::Service),
            ("Deployment", ResourceKind::Deployment),
            ("statefulset", ResourceKind::StatefulSet),
            ("pod", ResourceKind::Pod),
            ("ReplicaSet", ResourceKind::ReplicaSet),
            ("daemonset", ResourceKind::DaemonSet),
        ] {
            assert_eq!(ResourceKind::from_skaffold(text), Some(kind));
            assert_eq!(ResourceKind::from_skaffold(kind.as_str()), Some(kind));
        }
    }

    #[tokio::test]
    async fn taken_port_moves_to_the_next_free_one() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (first, taken) = bind_listener(ip, None).await.unwrap();
        assert!(taken.is_none());
        let port = first.local_addr().unwrap().port();
        let (second, taken) = bind_listener(ip, Some(port)).await.unwrap();
        let (taken_port, reason) = taken.unwrap();
        assert_eq!(taken_port, port);
        assert!(!reason.is_empty());
        assert_ne!(second.local_addr().unwrap().port(), port);
    }

    #[tokio::test]
    async fn addresses_resolve() {
        assert_eq!(
            resolve_address(None).await.unwrap(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            resolve_address(Some("0.0.0.0")).await.unwrap(),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
        assert_eq!(
            resolve_address(Some("[::1]")).await.unwrap(),
            "::1".parse::<IpAddr>().unwrap()
        );
        assert!(
            resolve_address(Some("localhost"))
                .await
                .unwrap()
                .is_loopback()
        );
    }
}
