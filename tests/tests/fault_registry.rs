//! Issue #10, "registry down during a push": `skiff dev` pushes every rebuilt image to a registry
//! the test owns (`scripts/devenv/own-registry`, never the shared one on 127.0.0.1:5000); the
//! test kills it (SIGKILL) and saves a file. The build must succeed, the push fail with a message
//! naming the registry, the image and what to do; the running app keep serving the old content;
//! `skiff dev` keep watching; and once the registry is back on the same port and data, the next
//! save push (a new tag in the registry) and deploy. Missing parts skip the test, unless
//! `CI=true`, where they fail it.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use skiff_e2e::harness::*;

const LONG: Duration = Duration::from_secs(120);

/// `docker-registry` on 127.0.0.1:`port`, storing under `dir`, run by the test: killed when
/// dropped.
struct OwnRegistry {
    dir: PathBuf,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl OwnRegistry {
    fn start(dir: &Path) -> OwnRegistry {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut registry = OwnRegistry {
            dir: dir.to_path_buf(),
            port,
            log: dir.join("registry.log"),
            child: None,
        };
        registry.restart();
        registry
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port and data directory; waits until it answers.
    fn restart(&mut self) {
        assert!(self.child.is_none(), "the registry is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(skiff_e2e::workspace_root().join("scripts/devenv/own-registry"))
            .arg(&self.dir)
            .arg(self.port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while registry_get(&self.address(), "/v2/").is_none() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "the registry exited ({status}):\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the registry on {} does not answer:\n{}",
                self.address(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL, and wait until it is gone: the registry dies as a crashed one does.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("the registry is running");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            TcpStream::connect(self.address()).is_err(),
            "something still listens on {}",
            self.address()
        );
    }

    /// The tags the registry holds for `repository` (none when it does not know it).
    fn tags(&self, repository: &str) -> Vec<String> {
        let body = registry_get(&self.address(), &format!("/v2/{repository}/tags/list"))
            .unwrap_or_else(|| panic!("the registry on {} does not answer", self.address()));
        let Some(at) = body.find("\"tags\":[") else {
            return Vec::new();
        };
        let list = &body[at + "\"tags\":[".len()..];
        let list = &list[..list.find(']').unwrap()];
        let mut tags: Vec<String> = list
            .split(',')
            .map(|t| t.trim().trim_matches('"').to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        tags.sort();
        tags
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The body of `GET path` at `address` when it answers 200 (200 or 404 for the registry's
/// JSON answers, whose body is still wanted).
fn registry_get(address: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    (head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.1 404")).then(|| body.to_owned())
}

/// An iteration's summary line (`msg.txt → …  — total …`) from `from` on.
fn iteration_line(skiff: &mut Skiff, from: usize) -> String {
    skiff.wait_line(from, LONG, |l| {
        (l.contains(" → ") && l.contains(" — total ")).then(|| l.to_owned())
    })
}

fn registry_installed() -> bool {
    let installed = Command::new("docker-registry")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    installed || missing("docker-registry is not installed (`scripts/devenv/up registry`)")
}

fn gcc_installed() -> bool {
    let installed = Command::new("gcc")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    installed || missing("gcc is not installed (`scripts/devenv/up docker` installs it)")
}

/// Where the app runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// `deploy.docker`: a container on the local engine.
    Docker,
    /// `deploy.kubectl` on the local cluster, whose kubelet pulls from the test's registry.
    Kubernetes,
}

/// The example app as a Docker artifact (a `FROM scratch` Dockerfile without `RUN`, so the
/// daemonless builder can assemble it), pushing every build, deployed to `target`.
fn project(name: &str, target: Target) -> tempfile::TempDir {
    let dir = example_copy(name);
    let status = Command::new("gcc")
        .args(["-static", "-O2", "-o", "hello", "main.c"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "gcc -static failed");
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY hello /hello\nCOPY www /www\nEXPOSE 8080\nENTRYPOINT [\"/hello\"]\n",
    )
    .unwrap();
    // The manifests name the artifact as it is configured; `--default-repo` moves it to the
    // test's registry.
    let deployment = dir.path().join("k8s/deployment.yaml");
    let text = std::fs::read_to_string(&deployment).unwrap();
    std::fs::write(
        &deployment,
        text.replace(&format!("localhost:5000/{name}"), name),
    )
    .unwrap();
    let deploy = match target {
        Target::Docker => format!("  docker:\n    images:\n    - {name}\n"),
        Target::Kubernetes => "  kubectl: {}\nmanifests:\n  rawYaml:\n  - k8s/*.yaml\n".to_owned(),
    };
    std::fs::write(
        dir.path().join("skaffold.yaml"),
        format!(
            "apiVersion: skaffold/v4beta11
kind: Config
metadata:
  name: {name}
build:
  tagPolicy:
    inputDigest: {{}}
  local:
    push: true
  artifacts:
  - image: {name}
    docker:
      dockerfile: Dockerfile
deploy:
{deploy}portForward:
- resourceType: service
  resourceName: {name}
  port: 8080
  localPort: 9080
"
        ),
    )
    .unwrap();
    dir
}

/// The whole fault, with the builder `extra` selects.
fn registry_down_during_a_push(prefix: &str, target: Target, extra: &[&str]) {
    if !docker_available() || !registry_installed() || !gcc_installed() {
        return;
    }
    if target == Target::Kubernetes && !kube_available() {
        return;
    }
    let name = unique(prefix);
    let data = tempfile::tempdir().unwrap();
    let mut registry = OwnRegistry::start(data.path());
    let address = registry.address();
    let repository = format!("{address}/{name}");
    let _images = EngineImages(repository.clone());
    let dir = project(&name, target);
    let cache = tempfile::tempdir().unwrap();
    let mut args = vec!["dev", "--default-repo", &address];
    args.extend_from_slice(extra);
    let mut skiff = Skiff::start_with_cache(dir.path(), &args, cache.path());

    // First iteration: built, pushed to our registry, deployed.
    let app = skiff.wait_line(0, Duration::from_secs(240), forwarded_address);
    wait_served(&app, "Hello from skiff!\n", LONG, &skiff);
    let first = iteration_line(&mut skiff, 0);
    assert!(first.starts_with("initial → rebuilt"), "{first}");
    let pushed = registry.tags(&name);
    assert_eq!(pushed.len(), 1, "one tag after the first push: {pushed:?}");

    // The registry dies; a save builds, and the push fails with a message that says which
    // registry, which image, and what to do.
    registry.kill();
    let mark = skiff.line_count();
    std::fs::write(dir.path().join("www/msg.txt"), "second\n").unwrap();
    let summary = iteration_line(&mut skiff, mark);
    assert!(
        summary.starts_with("msg.txt → build failed"),
        "the iteration should fail in the build (the push): {summary}\n{}",
        skiff.output()
    );
    // The error line goes to stderr, the summary to stdout: either may be read first.
    let failure = skiff.wait_line(mark, Duration::from_secs(30), |l| {
        (l.contains("failed") && l.contains(&address) && !l.contains(" — total "))
            .then(|| l.to_owned())
    });
    for wanted in [
        address.as_str(),
        name.as_str(),
        "is the registry running",
        "next change",
    ] {
        assert!(
            failure.contains(wanted) && summary.contains(wanted),
            "the failure should say {wanted:?}:\n{failure}\n{summary}"
        );
    }
    // The running app is untouched, and skiff keeps watching.
    assert_eq!(http_get(&app).as_deref(), Some("Hello from skiff!\n"));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(http_get(&app).as_deref(), Some("Hello from skiff!\n"));

    // The registry is back (same port, same data): the failed push left nothing in it.
    registry.restart();
    assert_eq!(registry.tags(&name), pushed);

    // The same content saved again: the image of the failed push must not count as pushed.
    let mark = skiff.line_count();
    std::fs::write(dir.path().join("www/msg.txt"), "second\n").unwrap();
    let summary = iteration_line(&mut skiff, mark);
    assert!(
        summary.starts_with("msg.txt → rebuilt"),
        "{summary}\n{}",
        skiff.output()
    );
    wait_served(&app, "second\n", LONG, &skiff);
    let now = registry.tags(&name);
    assert_eq!(now.len(), 2, "a new tag after the push: {now:?}");
    assert!(now.contains(&pushed[0]), "{now:?}");

    // New content: pushed and served as usual.
    let mark = skiff.line_count();
    std::fs::write(dir.path().join("www/msg.txt"), "third\n").unwrap();
    wait_served(&app, "third\n", LONG, &skiff);
    let summary = iteration_line(&mut skiff, mark);
    assert!(summary.starts_with("msg.txt → rebuilt"), "{summary}");
    assert_eq!(registry.tags(&name).len(), 3);

    // The registry comes back empty (its data lost): the first content again is a cache hit,
    // and a hit must still push when the registry lacks the tag.
    registry.kill();
    std::fs::remove_dir_all(registry.dir.join("data")).unwrap();
    registry.restart();
    assert_eq!(registry.tags(&name), Vec::<String>::new());
    let mark = skiff.line_count();
    std::fs::write(dir.path().join("www/msg.txt"), "Hello from skiff!\n").unwrap();
    wait_served(&app, "Hello from skiff!\n", LONG, &skiff);
    let summary = iteration_line(&mut skiff, mark);
    assert!(summary.starts_with("msg.txt → rebuilt"), "{summary}");
    assert_eq!(registry.tags(&name), pushed);

    skiff.stop(LONG);
}

/// The Docker engine builds and pushes; the app runs on the same engine.
#[test]
fn registry_down_during_an_engine_push_on_docker() {
    registry_down_during_a_push(
        "fault-reg-engine",
        Target::Docker,
        &["--docker-daemon-build"],
    );
}

/// skiff assembles the image and pushes it itself; the kubelet pulls it from the registry.
#[test]
fn registry_down_during_a_daemonless_push_on_kubernetes() {
    registry_down_during_a_push("fault-reg-oci", Target::Kubernetes, &[]);
}
