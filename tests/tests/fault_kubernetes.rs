//! Kubernetes faults under `skiff dev`, caused for real: the API server dies mid-session (a
//! second kube-apiserver the test owns, `scripts/devenv/own-apiserver`, on its own port against
//! the devenv's etcd — the shared one on 6443 is never touched), and the app's pod is deleted by
//! hand. Each time skiff must say what happened, keep the loop alive, and the next save after
//! recovery must work: redeployed, served through the same port-forward, logs still streaming.
//! Without Docker, the cluster or kubectl the tests are skipped, unless `CI=true`.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use skiff_e2e::harness::*;

const LONG: Duration = Duration::from_secs(180);
const APP_LINE: &str = "hello-http listening on :8080";

/// The pod of a `[pod container] hello-http listening on :8080` line of the app `name`.
fn app_started_in(line: &str, name: &str) -> Option<String> {
    let rest = line.strip_prefix('[')?;
    let (prefix, text) = rest.split_once("] ")?;
    let (pod, container) = prefix.split_once(' ')?;
    (container == name && text == APP_LINE && pod.starts_with(&format!("{name}-")))
        .then(|| pod.to_owned())
}

/// Whether the process is still running (not exited, not a zombie waiting to be reaped).
fn running(skiff: &Skiff) -> bool {
    std::fs::read_to_string(format!("/proc/{}/status", skiff.pid()))
        .is_ok_and(|status| !status.lines().any(|l| l.starts_with("State:\tZ")))
}

/// The app prints one line per start: any other line under its prefix is not its output (a
/// kubelet error about a removed container's log, say).
fn assert_only_app_lines(skiff: &Skiff, name: &str) {
    let prefix = format!("[{name}-");
    let foreign: Vec<String> = skiff
        .lines_from(0)
        .into_iter()
        .filter(|l| l.starts_with(&prefix) && app_started_in(l, name).is_none())
        .collect();
    assert!(foreign.is_empty(), "not the app's output: {foreign:#?}");
}

/// kubectl against `kubeconfig`; stdout, or the failure.
fn kubectl(kubeconfig: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run kubectl: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
        || missing("kubectl is not installed (scripts/devenv/up installs the cluster's tools)")
}

fn shared_kubeconfig() -> PathBuf {
    PathBuf::from(std::env::var_os("KUBECONFIG").unwrap())
}

/// The example app's Deployment and Service `name`, as `kind/name`.
fn app_objects(kubeconfig: &Path, name: &str) -> Vec<String> {
    let listed = kubectl(
        kubeconfig,
        &[
            "get",
            "deployment,service",
            "-o",
            "name",
            "--ignore-not-found",
        ],
    )
    .unwrap();
    listed
        .lines()
        .filter(|l| l.ends_with(&format!("/{name}")))
        .map(str::to_owned)
        .collect()
}

fn wait_objects_gone(kubeconfig: &Path, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !app_objects(kubeconfig, name).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(app_objects(kubeconfig, name), Vec::<String>::new());
}

/// Removes, when dropped, the app's objects (through the shared API server) and its images.
struct Leftovers(String);

impl Drop for Leftovers {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .args([
                "delete",
                "deployment,service",
                &self.0,
                "--ignore-not-found",
                "--wait=false",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "docker images -q localhost:5000/{} | xargs -r docker rmi -f --no-prune >/dev/null 2>&1",
                    self.0
                ),
            ])
            .status();
    }
}

/// The test's own kube-apiserver (`scripts/devenv/own-apiserver PORT KUBECONFIG`).
struct OwnApiserver {
    port: u16,
    kubeconfig: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl OwnApiserver {
    /// Whether the devenv cluster this needs is there (its binary and etcd); `missing` else.
    fn available() -> bool {
        let cache = std::env::var_os("KUBE_CACHE").map_or_else(
            || PathBuf::from("/var/cache/skiff-devenv/kubernetes-1.20.2"),
            PathBuf::from,
        );
        cache.join("kube-apiserver").is_file()
            || missing(&format!(
                "{} is missing (scripts/devenv/up kubernetes builds it)",
                cache.join("kube-apiserver").display()
            ))
    }

    fn new(dir: &Path) -> OwnApiserver {
        OwnApiserver {
            port: free_port(),
            kubeconfig: dir.join("own-apiserver.kubeconfig"),
            log: dir.join("own-apiserver.log"),
            child: None,
        }
    }

    fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Starts it (again, on the same port) and waits until `/readyz` answers.
    fn start(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(skiff_e2e::workspace_root().join("scripts/devenv/own-apiserver"))
            .arg(self.port.to_string())
            .arg(&self.kubeconfig)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "own-apiserver on port {} exited ({status}):\n{}",
                    self.port,
                    self.log_tail()
                );
            }
            if self.kubeconfig.is_file()
                && kubectl(&self.kubeconfig, &["get", "--raw", "/readyz"]).as_deref() == Ok("ok")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "own-apiserver on port {} not ready after 120 s:\n{}",
                self.port,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// SIGKILL: the API server crashes.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for OwnApiserver {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn dev_on_kubernetes_survives_its_api_server_restarting() {
    if !docker_available()
        || !kube_available()
        || !kubectl_available()
        || !OwnApiserver::available()
    {
        return;
    }
    let name = unique("hello-kapi");
    let dir = example_copy_rebuilding(&name);
    let _leftovers = Leftovers(name.clone());
    let state = tempfile::tempdir().unwrap();
    let mut apiserver = OwnApiserver::new(state.path());
    apiserver.start();
    let kubeconfig = apiserver.kubeconfig.clone();

    let mut skiff = Skiff::start(
        dir.path(),
        &["dev", "--kubeconfig", kubeconfig.to_str().unwrap()],
    );
    let address = skiff.wait_line(0, Duration::from_secs(240), |l| {
        l.starts_with(&format!("Port forwarding service/{name} "))
            .then(|| forwarded_address(l))
            .flatten()
    });
    wait_served(&address, "Hello from skiff!\n", LONG, &skiff);
    let first_pod = skiff.wait_line(0, LONG, |l| app_started_in(l, &name));
    skiff.wait_line(0, LONG, |l| l.starts_with("initial → ").then_some(()));

    // The API server crashes; a save now cannot be deployed.
    apiserver.kill();
    let mark = skiff.line_count();
    std::fs::write(dir.path().join("www/msg.txt"), "while it was down\n").unwrap();
    let failed = skiff.wait_line(mark, LONG, |l| {
        (l.starts_with("msg.txt → ") && l.contains("failed")).then(|| l.to_owned())
    });
    let error = skiff.wait_line(mark, LONG, |l| {
        l.starts_with("error: ").then(|| l.to_owned())
    });
    assert!(
        error.contains("Kubernetes API server") && error.contains(&apiserver.server()),
        "the error does not name the API server {}: {error}\n(iteration: {failed})",
        apiserver.server()
    );
    assert!(
        error.contains("next save"),
        "the error does not say what to do: {error}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(running(&skiff), "skiff exited:\n{}", skiff.output());

    // Back on the same port: the next save is built, deployed and served.
    apiserver.start();
    let mark = skiff.line_count();
    std::fs::write(dir.path().join("www/msg.txt"), "after the restart\n").unwrap();
    wait_served(&address, "after the restart\n", LONG, &skiff);
    let line = skiff.wait_line(mark, LONG, |l| {
        (l.starts_with("msg.txt → ") && l.contains(" — total ")).then(|| l.to_owned())
    });
    assert!(
        line.contains("rebuilt") && !line.contains("failed"),
        "{line}"
    );
    // The log follower found its way back: the new pod's first line, with skiff's prefix.
    let new_pod = skiff.wait_line(mark, LONG, |l| app_started_in(l, &name));
    assert_ne!(new_pod, first_pod, "{}", skiff.output());

    assert_only_app_lines(&skiff, &name);

    skiff.stop(LONG);
    wait_objects_gone(&kubeconfig, &name);
}

#[test]
fn dev_on_kubernetes_follows_a_pod_deleted_by_hand() {
    if !docker_available() || !kube_available() || !kubectl_available() {
        return;
    }
    let kubeconfig = shared_kubeconfig();
    let name = unique("hello-kpod");
    let dir = example_copy_rebuilding(&name);
    let _leftovers = Leftovers(name.clone());
    let mut skiff = Skiff::start(dir.path(), &["dev"]);
    let address = skiff.wait_line(0, Duration::from_secs(240), |l| {
        l.starts_with(&format!("Port forwarding service/{name} "))
            .then(|| forwarded_address(l))
            .flatten()
    });
    wait_served(&address, "Hello from skiff!\n", LONG, &skiff);
    let first_pod = skiff.wait_line(0, LONG, |l| app_started_in(l, &name));
    skiff.wait_line(0, LONG, |l| l.starts_with("initial → ").then_some(()));

    // Deleted by hand; the Deployment makes another pod.
    let mark = skiff.line_count();
    kubectl(&kubeconfig, &["delete", "pod", &first_pod, "--wait=false"]).unwrap();
    // Its log comes through skiff with the prefix of the new pod.
    let new_pod = skiff.wait_line(mark, LONG, |l| app_started_in(l, &name));
    assert_ne!(new_pod, first_pod);
    // Once the old pod is gone, only the new one can answer through the forward.
    let deadline = Instant::now() + LONG;
    while kubectl(
        &kubeconfig,
        &["get", "pod", &first_pod, "-o", "name", "--ignore-not-found"],
    )
    .unwrap()
        != ""
    {
        assert!(Instant::now() < deadline, "pod/{first_pod} is still there");
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_served(&address, "Hello from skiff!\n", LONG, &skiff);

    // A save still works: rebuilt, rolled out, served on the same port.
    let mark = skiff.line_count();
    std::fs::write(
        dir.path().join("www/msg.txt"),
        "after the pod was deleted\n",
    )
    .unwrap();
    wait_served(&address, "after the pod was deleted\n", LONG, &skiff);
    let line = skiff.wait_line(mark, LONG, |l| {
        (l.starts_with("msg.txt → ") && l.contains(" — total ")).then(|| l.to_owned())
    });
    assert!(
        line.contains("rebuilt") && !line.contains("failed"),
        "{line}"
    );
    let newest_pod = skiff.wait_line(mark, LONG, |l| app_started_in(l, &name));
    assert_ne!(newest_pod, new_pod);

    assert_only_app_lines(&skiff, &name);

    skiff.stop(LONG);
    wait_objects_gone(&kubeconfig, &name);
}
