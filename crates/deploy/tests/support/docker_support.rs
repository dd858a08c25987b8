//! Helpers for the Docker deployer's tests against the real engine: a tiny static C HTTP server
//! built into `FROM scratch` images, unique names, HTTP fetches, waiting for events, and a
//! guard that removes whatever a test left behind.

#![allow(dead_code, clippy::print_stderr, clippy::unwrap_used)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use skiff_deploy::docker::delete_labelled;
use skiff_deploy::{DeployError, RUN_ID_LABEL};
use skiff_types::event::{CollectingReporter, Event, Level};
use skiff_types::image::BuiltImage;

/// The server: answers every request with `$BODY`, prints a start line and one line per
/// request, and ignores `SIGTERM` like most apps running as PID 1. With `$DELAY` it waits that
/// many seconds before it listens (an app that takes time to start); with `$EXIT` it exits
/// with that code instead of listening.
const SERVER_C: &str = r#"
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    signal(SIGTERM, SIG_IGN);
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *body = getenv("BODY");
    if (body == NULL) body = "no BODY set";
    const char *port_text = getenv("PORT");
    int port = port_text ? atoi(port_text) : 8080;
    const char *delay = getenv("DELAY");
    if (delay != NULL) sleep(atoi(delay));
    if (getenv("EXIT") != NULL) return atoi(getenv("EXIT"));
    int server = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(server, (struct sockaddr *)&address, sizeof address) < 0) { perror("bind"); return 1; }
    if (listen(server, 64) < 0) { perror("listen"); return 1; }
    printf("listening on port %d with body %s\n", port, body);
    fprintf(stderr, "ready (stderr)\n");
    unsigned long served = 0;
    for (;;) {
        int client = accept(server, NULL, NULL);
        if (client < 0) continue;
        char request[4096];
        ssize_t got = read(client, request, sizeof request - 1);
        if (got < 0) got = 0;
        request[got] = 0;
        char *end = strpbrk(request, "\r\n");
        if (end) *end = 0;
        printf("request %lu: %s\n", ++served, request);
        char response[8192];
        int length = snprintf(response, sizeof response,
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
            "Connection: close\r\n\r\n%s", strlen(body), body);
        if (write(client, response, length) < 0) perror("write");
        close(client);
    }
}
"#;

/// The value of `DOCKER_HOST`, which the library gets from its caller.
pub fn docker_host() -> Option<String> {
    std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty())
}

/// Whether the engine answers and `docker` and `gcc` are installed. Without them the test is
/// skipped — or fails when `CI=true`, where a missing engine is a broken environment.
pub async fn engine_available(test: &str) -> bool {
    let missing = match delete_labelled(docker_host().as_deref(), Some("skiff-probe-none")).await {
        Err(DeployError::EngineUnavailable { endpoint, reason }) => {
            Some(format!("no Docker engine at {endpoint}: {reason}"))
        }
        Err(e) => Some(format!("the Docker engine misbehaves: {e}")),
        Ok(_) => ["docker", "gcc"]
            .into_iter()
            .find(|tool| Command::new(tool).arg("--version").output().is_err())
            .map(|tool| format!("`{tool}` is not installed")),
    };
    let Some(missing) = missing else {
        return true;
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{test}: {missing}. CI=true requires a Docker engine (start one with \
             `scripts/devenv/up docker` or set DOCKER_HOST)"
        );
    }
    eprintln!("skipping {test}: {missing}");
    false
}

/// A random lower-case hex string; unique enough for names shared on one engine.
pub fn unique() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn docker() -> Command {
    let mut command = Command::new("docker");
    // The classic builder: BuildKit may not be installed for the CLI.
    command.env("DOCKER_BUILDKIT", "0");
    command
}

/// The static server binary, compiled once into the target's scratch directory.
fn server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let source = dir.join("skiff-docker-test-server.c");
        let binary = dir.join("skiff-docker-test-server");
        let fresh = std::fs::read_to_string(&source).is_ok_and(|s| s == SERVER_C);
        if !(fresh && binary.is_file()) {
            // Another test process may compile at the same time: write, then rename.
            let scratch = dir.join(format!("skiff-docker-test-server-{}", unique()));
            let scratch_source = scratch.with_extension("c");
            std::fs::write(&scratch_source, SERVER_C).unwrap();
            run(Command::new("gcc")
                .args(["-static", "-O2", "-o"])
                .arg(&scratch)
                .arg(&scratch_source));
            std::fs::rename(&scratch, &binary).unwrap();
            std::fs::rename(&scratch_source, &source).unwrap();
        }
        binary
    })
}

/// Builds `reference` (`FROM scratch` + the server, `ENV BODY=<body>`) and returns it as the
/// build stage would: `image_name`, the reference, the image ID.
pub fn build_image(image_name: &str, reference: &str, body: &str) -> BuiltImage {
    build_image_running(image_name, reference, body, "/server")
}

/// Like [`build_image`], with another entrypoint (a missing one makes a container that cannot
/// start).
pub fn build_image_running(
    image_name: &str,
    reference: &str,
    body: &str,
    entrypoint: &str,
) -> BuiltImage {
    build_image_with(image_name, reference, body, entrypoint, "")
}

/// Like [`build_image_running`], with `ENV` lines added (`"DELAY=2"`).
pub fn build_image_with(
    image_name: &str,
    reference: &str,
    body: &str,
    entrypoint: &str,
    env: &str,
) -> BuiltImage {
    let env = if env.is_empty() {
        String::new()
    } else {
        format!("ENV {env}\n")
    };
    let context = tempfile::tempdir().unwrap();
    std::fs::copy(server_binary(), context.path().join("server")).unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM scratch\nCOPY server /server\nENV BODY={body}\n{env}EXPOSE 8080\n\
             ENTRYPOINT [\"{entrypoint}\"]\n"
        ),
    )
    .unwrap();
    let output = run(docker()
        .args(["build", "-q", "-t", reference])
        .arg(context.path()));
    let image_id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    BuiltImage {
        image_name: image_name.to_owned(),
        reference: reference.parse().unwrap(),
        image_id: image_id.starts_with("sha256:").then_some(image_id),
    }
}

/// Removes, on drop, the run's labelled containers and networks, the named containers, and
/// the images — also when the test panicked.
#[derive(Debug, Default)]
pub struct Leftovers {
    pub run_ids: Vec<String>,
    pub containers: Vec<String>,
    pub images: Vec<String>,
}

impl Leftovers {
    /// Leftovers of run `run_id`.
    pub fn for_run(run_id: &str) -> Leftovers {
        Leftovers {
            run_ids: vec![run_id.to_owned()],
            containers: Vec::new(),
            images: Vec::new(),
        }
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let output = docker().args(args).output().ok()?;
            Some(String::from_utf8_lossy(&output.stdout).into_owned())
        };
        let mut containers = self.containers.clone();
        let mut networks = Vec::new();
        for run_id in &self.run_ids {
            let filter = format!("label={RUN_ID_LABEL}={run_id}");
            if let Some(ids) = quiet(&["ps", "-aq", "--filter", &filter]) {
                containers.extend(ids.split_whitespace().map(str::to_owned));
            }
            if let Some(ids) = quiet(&["network", "ls", "-q", "--filter", &filter]) {
                networks.extend(ids.split_whitespace().map(str::to_owned));
            }
        }
        for container in containers {
            quiet(&["rm", "-f", &container]);
        }
        for network in networks {
            quiet(&["network", "rm", &network]);
        }
        for image in &self.images {
            quiet(&["rmi", "-f", "--no-prune", image]);
        }
    }
}

/// Containers carrying `label` (`key=value`), running or not.
pub fn containers_labelled(label: &str) -> Vec<String> {
    let output = run(docker().args([
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("label={label}"),
    ]));
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Networks carrying `label`.
pub fn networks_labelled(label: &str) -> Vec<String> {
    let output = run(docker().args([
        "network",
        "ls",
        "--format",
        "{{.Name}}",
        "--filter",
        &format!("label={label}"),
    ]));
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Whether a container with this name or ID exists.
pub fn container_exists(name: &str) -> bool {
    docker()
        .args(["container", "inspect", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Creates (without starting) a container `name` with only the given labels.
pub fn create_plain_container(name: &str, image: &str, labels: &[&str]) {
    let mut command = docker();
    command.args(["create", "--name", name]);
    for label in labels {
        command.args(["--label", label]);
    }
    run(command.arg(image));
}

/// One HTTP/1.0 GET of `/`: the body, or why there is none.
pub fn http_get(address: SocketAddr) -> Result<String, String> {
    let mut stream =
        TcpStream::connect_timeout(&address, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.0 200") => Ok(body.to_owned()),
        _ => Err(format!("unexpected response {response:?}")),
    }
}

/// GETs `address` until it answers `expected` (a container that just started may not listen
/// yet), for up to 15 s; returns the last answer.
pub async fn fetch_until(address: SocketAddr, expected: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = tokio::task::spawn_blocking(move || http_get(address))
            .await
            .map_err(|e| e.to_string())?;
        if answer.as_deref() == Ok(expected) || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits up to 15 s for an event matching `wanted`.
pub async fn wait_for_event(
    reporter: &CollectingReporter,
    what: &str,
    wanted: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(event) = reporter.events().into_iter().find(|e| wanted(e)) {
            return event;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within 15 s; events: {:#?}",
            reporter.events()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The log lines reported, as (container, line).
pub fn log_lines(reporter: &CollectingReporter) -> Vec<(String, String)> {
    reporter
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::LogLine {
                container, line, ..
            } => Some((container, line)),
            _ => None,
        })
        .collect()
}

/// The warnings reported.
pub fn warnings(reporter: &CollectingReporter) -> Vec<String> {
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

/// The local addresses reported as forwarded to `container`.
pub fn forwarded(reporter: &CollectingReporter, container: &str) -> Vec<SocketAddr> {
    reporter
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::PortForwarded {
                resource,
                local_address,
                ..
            } if resource == container => local_address.parse().ok(),
            _ => None,
        })
        .collect()
}
