//! Port-forwarding and log tailing against the real one-node cluster.
//!
//! Each test builds (once) a `FROM scratch` image holding a tiny static C HTTP server, creates its
//! own namespace `skiff-fwd-<random>` with a Deployment and a Service (named port `http`), and
//! deletes the namespace at the end, even when it fails. Without a cluster the tests skip locally
//! and fail with `CI=true`.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_deploy::kubernetes::forward::{
    ForwardHandle, PortForwardSpec, PortForwarder, RemotePort, ResourceKind,
};
use skiff_deploy::kubernetes::logs::{LogOptions, LogPrefix, LogTailer, format_prefix};
use skiff_deploy::{DeployError, RUN_ID_LABEL};
use skiff_types::event::{CollectingReporter, Event, Level, Reporter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------
// Environment: cluster, image, namespace
// ---------------------------------------------------------------------------------------------

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A missing part: panic in CI, otherwise print why the test is skipped.
fn missing(part: &str, why: &str) {
    let message = format!("{part} is not available: {why}");
    if in_ci() {
        panic!("{message} (CI=true: tests needing it fail; `scripts/devenv/up` starts it)");
    }
    eprintln!("skipping: {message} (with CI=true this fails the test)");
}

/// A client for the cluster in `KUBECONFIG`, or `None` after a skip note.
async fn require_cluster() -> Option<kube::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(e) => {
            missing(
                "the Kubernetes cluster (KUBECONFIG)",
                &format!("no usable kubeconfig: {e}"),
            );
            return None;
        }
    };
    match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await {
        Ok(Ok(_)) => Some(client),
        Ok(Err(e)) => {
            missing("the Kubernetes cluster (KUBECONFIG)", &e.to_string());
            None
        }
        Err(_) => {
            missing(
                "the Kubernetes cluster (KUBECONFIG)",
                "the API server did not answer within 10 s",
            );
            None
        }
    }
}

const SERVER_C: &str = r#"
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void on_term(int sig) { (void)sig; _exit(0); }

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGTERM, on_term);
    signal(SIGPIPE, SIG_IGN);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    unsigned long instance = (unsigned long)now.tv_sec * 1000000UL + (unsigned long)now.tv_nsec / 1000UL;
    if (argc > 1 && strcmp(argv[1], "init") == 0) {
        printf("init container done instance=%lu\n", instance);
        return 0;
    }
    const char *body = getenv("BODY");
    if (!body) body = "hello";
    int port = getenv("PORT") ? atoi(getenv("PORT")) : 8080;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(s, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(s, 64) < 0) {
        perror("listen");
        return 1;
    }
    printf("skiff-test-server listening on :%d body=%s instance=%lu\n", port, body, instance);
    unsigned long served = 0;
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        char request[8192];
        size_t used = 0;
        while (used < sizeof request - 1) {
            ssize_t r = read(c, request + used, sizeof request - 1 - used);
            if (r <= 0) break;
            used += (size_t)r;
            request[used] = 0;
            if (strstr(request, "\r\n\r\n")) break;
        }
        request[used] = 0;
        char path[256] = "?";
        sscanf(request, "%*s %255s", path);
        served++;
        printf("request %lu path=%s instance=%lu\n", served, path, instance);
        char head[256];
        int n = snprintf(head, sizeof head,
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
            strlen(body));
        write(c, head, (size_t)n);
        write(c, body, strlen(body));
        shutdown(c, SHUT_WR);
        close(c);
        if (strcmp(path, "/exit") == 0) {
            printf("exiting instance=%lu\n", instance);
            return 3;
        }
    }
}
"#;

/// The test server's image in the cluster's Docker engine, built once per test process; `None`
/// (after a skip note, or a panic in CI) without a C compiler or Docker.
fn server_image() -> Option<String> {
    static IMAGE: OnceLock<Result<String, (String, String)>> = OnceLock::new();
    let result = IMAGE.get_or_init(build_server_image);
    match result {
        Ok(image) => Some(image.clone()),
        Err((part, why)) => {
            missing(part, why);
            None
        }
    }
}

fn build_server_image() -> Result<String, (String, String)> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    SERVER_C.hash(&mut hasher);
    let tag = format!("skiff-fwd-test-server:{:016x}", hasher.finish());
    let docker = |args: &[&str]| Command::new("docker").args(args).output();
    match docker(&["image", "inspect", &tag]) {
        Ok(out) if out.status.success() => return Ok(tag),
        Ok(_) => {}
        Err(e) => return Err(("the docker CLI".into(), e.to_string())),
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "skiff-fwd-server-{}",
        tag.rsplit(':').next().unwrap()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("server.c"), SERVER_C).unwrap();
    let compiled = Command::new("gcc")
        .args(["-static", "-O2", "-o", "server", "server.c"])
        .current_dir(&dir)
        .output();
    match compiled {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "gcc -static failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => return Err(("a C compiler (gcc)".into(), e.to_string())),
    }
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY server /server\nENTRYPOINT [\"/server\"]\n",
    )
    .unwrap();
    let built = docker(&["build", "-q", "-t", &tag, dir.to_str().unwrap()])
        .map_err(|e| ("the docker CLI".to_owned(), e.to_string()))?;
    if !built.status.success() {
        return Err((
            "the Docker engine".into(),
            format!(
                "docker build failed: {}",
                String::from_utf8_lossy(&built.stderr)
            ),
        ));
    }
    Ok(tag)
}

/// A namespace of one test, deleted on drop (also when the test fails).
struct TestNamespace {
    name: String,
}

impl TestNamespace {
    async fn create(client: &kube::Client) -> Self {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("skiff-fwd-{}-{nanos}-{n}", std::process::id());
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
        Self { name }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A fresh runtime on another thread: drop may run while the test's runtime unwinds.
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let client = kube::Client::try_default().await?;
                Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::background())
                    .await
                    .map(|_| ())
            })
        })
        .join();
        if !matches!(deleted, Ok(Ok(()))) {
            eprintln!("could not delete test namespace {}: {deleted:?}", self.name);
        }
    }
}

/// A namespace with the `web` Deployment (body `body`) and Service, ready.
struct Fixture {
    client: kube::Client,
    namespace: TestNamespace,
    image: String,
}

impl Fixture {
    /// `None` when the cluster or the image cannot be had (after a skip note).
    async fn start(body: &str, init_container: bool) -> Option<Self> {
        let client = require_cluster().await?;
        let image = server_image()?;
        let namespace = TestNamespace::create(&client).await;
        let fixture = Self {
            client,
            namespace,
            image,
        };
        fixture.create_web(body, init_container).await;
        fixture.wait_ready_body(body).await;
        Some(fixture)
    }

    fn ns(&self) -> &str {
        &self.namespace.name
    }

    fn run_selector(&self) -> String {
        format!("{RUN_ID_LABEL}={}", self.ns())
    }

    fn pod_template(&self, body: &str, init_container: bool) -> serde_json::Value {
        let mut spec = json!({
            "terminationGracePeriodSeconds": 2,
            "containers": [{
                "name": "server",
                "image": self.image,
                "imagePullPolicy": "Never",
                "env": [{"name": "BODY", "value": body}],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
            }],
        });
        if init_container {
            spec["initContainers"] = json!([{
                "name": "init",
                "image": self.image,
                "imagePullPolicy": "Never",
                "args": ["init"],
            }]);
        }
        json!({
            "metadata": {"labels": {"app": "web", RUN_ID_LABEL: self.ns()}},
            "spec": spec,
        })
    }

    async fn create_web(&self, body: &str, init_container: bool) {
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "labels": {"app": "web", RUN_ID_LABEL: self.ns()}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": self.pod_template(body, init_container),
            },
        }))
        .unwrap();
        Api::<Deployment>::namespaced(self.client.clone(), self.ns())
            .create(&PostParams::default(), &deployment)
            .await
            .unwrap();
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "labels": {RUN_ID_LABEL: self.ns()}},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            },
        }))
        .unwrap();
        Api::<Service>::namespaced(self.client.clone(), self.ns())
            .create(&PostParams::default(), &service)
            .await
            .unwrap();
    }

    /// Changes the body: a new pod replaces the old one.
    async fn redeploy(&self, body: &str) {
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "server", "env": [{"name": "BODY", "value": body}]}
        ]}}}});
        Api::<Deployment>::namespaced(self.client.clone(), self.ns())
            .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .unwrap();
    }

    /// The names of the ready pods.
    async fn ready_pods(&self) -> Vec<Pod> {
        Api::<Pod>::namespaced(self.client.clone(), self.ns())
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .collect()
    }

    /// Waits for a ready pod serving `body`; returns its name.
    async fn wait_ready_body(&self, body: &str) -> String {
        eventually(
            &format!("a ready pod with body {body}"),
            Duration::from_secs(90),
            || async {
                self.ready_pods().await.into_iter().find_map(|p| {
                    let env = p.spec.as_ref()?.containers.first()?.env.as_ref()?;
                    let value = env.iter().find(|e| e.name == "BODY")?.value.as_deref()?;
                    (value == body).then(|| p.metadata.name.clone().unwrap())
                })
            },
        )
        .await
    }

    fn spec(&self, kind: ResourceKind, name: &str, port: RemotePort) -> PortForwardSpec {
        PortForwardSpec {
            resource_type: kind,
            name: name.into(),
            namespace: self.ns().into(),
            port,
            local_port: None,
            address: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Polls `check` every 250 ms until it gives a value; panics after `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `GET path` over a plain TCP connection; the body of the answer.
async fn http_get(address: SocketAddr, path: &str) -> std::io::Result<String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
            .await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        match text.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.0 200") => Ok(body.to_owned()),
            _ => Err(std::io::Error::other(format!("not an answer: {text:?}"))),
        }
    };
    tokio::time::timeout(Duration::from_secs(40), exchange)
        .await
        .map_err(|_| std::io::Error::other("no answer within 40 s"))?
}

/// Waits until `address` answers with `body`.
async fn wait_for_body(address: SocketAddr, body: &str, timeout: Duration) {
    eventually(
        &format!("{address} to answer {body:?}"),
        timeout,
        || async { (http_get(address, "/").await.ok()? == body).then_some(()) },
    )
    .await;
}

/// Waits until connecting to `address` is refused.
async fn wait_closed(address: SocketAddr) {
    eventually(
        &format!("{address} to stop listening"),
        Duration::from_secs(5),
        || async {
            tokio::net::TcpStream::connect(address)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
}

fn collector() -> (Arc<CollectingReporter>, Arc<dyn Reporter>) {
    let collecting = Arc::new(CollectingReporter::default());
    let reporter: Arc<dyn Reporter> = collecting.clone();
    (collecting, reporter)
}

/// `(pod, container, image, line)` of every log line reported.
fn log_lines(reporter: &CollectingReporter) -> Vec<(String, String, Option<String>, String)> {
    reporter
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::LogLine {
                pod,
                container,
                image,
                line,
            } => Some((pod.unwrap_or_default(), container, image, line)),
            _ => None,
        })
        .collect()
}

fn warnings(reporter: &CollectingReporter) -> Vec<String> {
    reporter
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Message {
                level: Level::Warning,
                text,
                ..
            } => Some(text),
            _ => None,
        })
        .collect()
}

/// Panics if any `(pod, container, line)` was reported more than once.
fn assert_no_line_twice(reporter: &CollectingReporter) {
    let mut counts: HashMap<(String, String, String), usize> = HashMap::new();
    for (pod, container, _, line) in log_lines(reporter) {
        *counts.entry((pod, container, line)).or_default() += 1;
    }
    let repeated: BTreeMap<_, _> = counts.into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(repeated.is_empty(), "lines reported twice: {repeated:#?}");
}

async fn forward(
    forwarder: &PortForwarder,
    spec: PortForwardSpec,
    reporter: &Arc<dyn Reporter>,
) -> ForwardHandle {
    forwarder.start(spec, reporter.clone()).await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forwards_service_deployment_and_pod() {
    let Some(fx) = Fixture::start("hello from v1", false).await else {
        return;
    };
    let pod = fx.wait_ready_body("hello from v1").await;
    let (collected, reporter) = collector();
    let forwarder = PortForwarder::new(fx.client.clone());

    // Service by port name: port 80 is privileged, so the local port is a free one.
    let service = forward(
        &forwarder,
        fx.spec(
            ResourceKind::Service,
            "web",
            RemotePort::Name("http".into()),
        ),
        &reporter,
    )
    .await;
    assert_eq!(service.remote_port(), 80);
    assert_ne!(service.local_address().port(), 80);
    assert!(service.local_address().ip().is_loopback());
    assert_eq!(
        http_get(service.local_address(), "/").await.unwrap(),
        "hello from v1"
    );
    assert!(collected.events().contains(&Event::PortForwarded {
        resource: "service/web".into(),
        remote_port: 80,
        local_address: service.local_address().to_string(),
    }));

    // Service by port number.
    let by_number = forward(
        &forwarder,
        fx.spec(ResourceKind::Service, "web", RemotePort::Number(80)),
        &reporter,
    )
    .await;
    assert_eq!(
        http_get(by_number.local_address(), "/").await.unwrap(),
        "hello from v1"
    );

    // Deployment by container port: 8080 ≥ 1024, so 8080 locally unless taken (then the next).
    let deployment = forward(
        &forwarder,
        fx.spec(ResourceKind::Deployment, "web", RemotePort::Number(8080)),
        &reporter,
    )
    .await;
    assert_eq!(deployment.remote_port(), 8080);
    assert!((8080..=8180).contains(&deployment.local_address().port()));
    assert_eq!(
        http_get(deployment.local_address(), "/").await.unwrap(),
        "hello from v1"
    );

    // Pod by name, with a named port and an explicit local address.
    let mut pod_spec = fx.spec(ResourceKind::Pod, &pod, RemotePort::Name("http".into()));
    pod_spec.address = Some("localhost".into());
    let by_pod = forward(&forwarder, pod_spec, &reporter).await;
    assert_eq!(by_pod.remote_port(), 8080);
    assert_eq!(by_pod.resource(), format!("pod/{pod}"));
    assert_eq!(
        http_get(by_pod.local_address(), "/").await.unwrap(),
        "hello from v1"
    );
    // Several connections one after another and at once, each its own stream.
    let many =
        futures_util::future::join_all((0..5).map(|_| http_get(by_pod.local_address(), "/again")))
            .await;
    assert!(
        many.iter()
            .all(|r| r.as_deref().ok() == Some("hello from v1")),
        "{many:?}"
    );

    // stop() releases the ports.
    for handle in [&service, &by_number, &deployment, &by_pod] {
        handle.stop();
    }
    for handle in [&service, &by_number, &deployment, &by_pod] {
        wait_closed(handle.local_address()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn taken_local_port_moves_to_the_next_free_one_with_a_warning() {
    let Some(fx) = Fixture::start("busy", false).await else {
        return;
    };
    // Someone else already listens on the port we ask for.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let (collected, reporter) = collector();
    let mut spec = fx.spec(ResourceKind::Deployment, "web", RemotePort::Number(8080));
    spec.local_port = Some(taken);
    let handle = PortForwarder::new(fx.client.clone())
        .start(spec, reporter)
        .await
        .unwrap();
    let used = handle.local_address().port();
    assert_ne!(used, taken);
    assert!(used > taken && used <= taken.saturating_add(100), "{used}");
    let warning = warnings(&collected)
        .into_iter()
        .find(|w| w.contains(&taken.to_string()))
        .expect("a warning naming the taken port");
    assert!(
        warning.contains(&handle.local_address().to_string()),
        "{warning}"
    );
    assert!(warning.contains("in use"), "{warning}");
    assert_eq!(http_get(handle.local_address(), "/").await.unwrap(), "busy");
    drop(squatter);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redeploy_keeps_the_local_port_and_logs_follow_the_new_pod() {
    let Some(fx) = Fixture::start("body one", true).await else {
        return;
    };
    let first_pod = fx.wait_ready_body("body one").await;
    let (collected, reporter) = collector();
    let logs = LogTailer::start(
        fx.client.clone(),
        vec![fx.ns().to_owned()],
        fx.run_selector(),
        LogOptions {
            prefix: LogPrefix::PodAndContainer,
            since_start: false,
        },
        reporter.clone(),
    );
    assert_eq!(logs.prefix(), LogPrefix::PodAndContainer);
    assert_eq!(
        logs.format_prefix(&first_pod, "server"),
        format!("[{first_pod} server]")
    );
    let handle = PortForwarder::new(fx.client.clone())
        .start(
            fx.spec(
                ResourceKind::Service,
                "web",
                RemotePort::Name("http".into()),
            ),
            reporter.clone(),
        )
        .await
        .unwrap();
    let address = handle.local_address();
    assert_eq!(http_get(address, "/first").await.unwrap(), "body one");

    // The app's start line, with pod, container and image; the init container's line too.
    eventually(
        "the first pod's start line",
        Duration::from_secs(20),
        || async {
            log_lines(&collected)
                .into_iter()
                .find(|(pod, container, image, line)| {
                    pod == &first_pod
                        && container == "server"
                        && image.as_deref() == Some(fx.image.as_str())
                        && line.starts_with("skiff-test-server listening on :8080 body=body one")
                })
        },
    )
    .await;
    eventually(
        "the init container's line",
        Duration::from_secs(20),
        || async {
            log_lines(&collected)
                .into_iter()
                .find(|(pod, container, _, line)| {
                    pod == &first_pod
                        && container == "init"
                        && line.starts_with("init container done")
                })
        },
    )
    .await;
    eventually(
        "the first request's line",
        Duration::from_secs(20),
        || async {
            log_lines(&collected)
                .into_iter()
                .find(|(pod, _, _, line)| pod == &first_pod && line.contains("path=/first"))
        },
    )
    .await;

    // Redeploy: the same local port answers with the new body.
    fx.redeploy("body two").await;
    wait_for_body(address, "body two", Duration::from_secs(60)).await;
    assert_eq!(handle.local_address(), address);
    let second_pod = fx.wait_ready_body("body two").await;
    assert_ne!(second_pod, first_pod);
    assert_eq!(http_get(address, "/second").await.unwrap(), "body two");

    // The new pod's start line and request line arrive; nothing is reported twice.
    eventually(
        "the new pod's start line",
        Duration::from_secs(20),
        || async {
            log_lines(&collected)
                .into_iter()
                .find(|(pod, container, _, line)| {
                    pod == &second_pod
                        && container == "server"
                        && line.starts_with("skiff-test-server listening on :8080 body=body two")
                })
        },
    )
    .await;
    eventually(
        "the new pod's request line",
        Duration::from_secs(20),
        || async {
            log_lines(&collected)
                .into_iter()
                .find(|(pod, _, _, line)| pod == &second_pod && line.contains("path=/second"))
        },
    )
    .await;
    // Give any duplicate a chance to show up before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_no_line_twice(&collected);
    for pod in [&first_pod, &second_pod] {
        let starts = log_lines(&collected)
            .into_iter()
            .filter(|(p, _, _, line)| p == pod && line.contains("listening on"))
            .count();
        assert_eq!(starts, 1, "start lines of {pod}");
    }

    // stop(): no more lines, and the local port closes.
    logs.stop();
    eventually("the tailer to stop", Duration::from_secs(5), || async {
        logs.is_stopped().then_some(())
    })
    .await;
    let before = log_lines(&collected).len();
    assert_eq!(http_get(address, "/after-stop").await.unwrap(), "body two");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = log_lines(&collected);
    assert_eq!(
        after.len(),
        before,
        "lines after stop: {:?}",
        &after[before..]
    );
    handle.stop();
    wait_closed(address).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_container_is_followed_without_repeating_lines() {
    let Some(fx) = Fixture::start("restarts", false).await else {
        return;
    };
    let pod = fx.wait_ready_body("restarts").await;
    let (collected, reporter) = collector();
    let logs = LogTailer::start(
        fx.client.clone(),
        vec![fx.ns().to_owned()],
        fx.run_selector(),
        LogOptions::default(),
        reporter.clone(),
    );
    let handle = PortForwarder::new(fx.client.clone())
        .start(
            fx.spec(ResourceKind::Pod, &pod, RemotePort::Number(8080)),
            reporter.clone(),
        )
        .await
        .unwrap();
    eventually("the start line", Duration::from_secs(20), || async {
        log_lines(&collected)
            .into_iter()
            .find(|(p, _, _, line)| p == &pod && line.contains("listening on"))
    })
    .await;
    // The server exits after answering /exit; the kubelet restarts the container in place.
    assert_eq!(
        http_get(handle.local_address(), "/exit").await.unwrap(),
        "restarts"
    );
    eventually(
        "the restarted container's start line",
        Duration::from_secs(60),
        || async {
            let starts = log_lines(&collected)
                .into_iter()
                .filter(|(p, _, _, line)| p == &pod && line.contains("listening on"))
                .count();
            (starts >= 2).then_some(())
        },
    )
    .await;
    // The same port reaches the restarted instance (after waiting for it to be ready again).
    assert_eq!(
        http_get(handle.local_address(), "/after-restart")
            .await
            .unwrap(),
        "restarts"
    );
    eventually(
        "the restarted instance's request",
        Duration::from_secs(20),
        || async {
            log_lines(&collected)
                .into_iter()
                .find(|(p, _, _, line)| p == &pod && line.contains("path=/after-restart"))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_no_line_twice(&collected);
    let lines = log_lines(&collected);
    let count = |needle: &str| {
        lines
            .iter()
            .filter(|(_, _, _, l)| l.contains(needle))
            .count()
    };
    assert_eq!(count("listening on"), 2, "{lines:#?}");
    assert_eq!(count("exiting instance="), 1, "{lines:#?}");
    assert_eq!(count("path=/exit"), 1, "{lines:#?}");
    drop(logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ready_pod_drops_the_connection_with_a_warning() {
    let Some(client) = require_cluster().await else {
        return;
    };
    let namespace = TestNamespace::create(&client).await;
    // A Service that selects nothing.
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "lonely"},
        "spec": {
            "selector": {"app": "nobody"},
            "ports": [{"name": "http", "port": 9000, "targetPort": 8080, "protocol": "TCP"}],
        },
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), &namespace.name)
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let (collected, reporter) = collector();
    let forwarder = PortForwarder::new(client.clone()).with_pod_wait(Duration::from_secs(1));
    let spec = PortForwardSpec {
        resource_type: ResourceKind::Service,
        name: "lonely".into(),
        namespace: namespace.name.clone(),
        port: RemotePort::Name("http".into()),
        local_port: None,
        address: None,
    };
    // A port name that does not exist is an error naming it.
    let mut bad = spec.clone();
    bad.port = RemotePort::Name("nope".into());
    let error = forwarder.start(bad, reporter.clone()).await.unwrap_err();
    assert!(matches!(error, DeployError::Api { .. }), "{error:?}");
    assert!(error.to_string().contains("`nope`"), "{error}");

    let handle = forwarder.start(spec, reporter.clone()).await.unwrap();
    assert_eq!(handle.remote_port(), 9000);
    let mut stream = tokio::net::TcpStream::connect(handle.local_address())
        .await
        .unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the connection is dropped after the wait");
    assert!(read.is_err() || answer.is_empty(), "{answer:?}");
    let warning = eventually("the warning", Duration::from_secs(5), || async {
        warnings(&collected)
            .into_iter()
            .find(|w| w.contains("service/lonely") && w.contains("no ready pod"))
    })
    .await;
    assert!(warning.contains("dropping a connection"), "{warning}");
}

#[test]
fn prefixes_follow_skaffold() {
    assert_eq!(
        format_prefix(LogPrefix::PodAndContainer, "web-1", "app"),
        "[web-1 app]"
    );
    assert_eq!(format_prefix(LogPrefix::Container, "web-1", "app"), "[app]");
    assert_eq!(format_prefix(LogPrefix::None, "web-1", "app"), "");
    assert_eq!(
        format_prefix(LogPrefix::Auto, "web-1", "app"),
        "[web-1 app]"
    );
    assert_eq!(
        LogPrefix::from_skaffold("container"),
        Some(LogPrefix::Container)
    );
}
