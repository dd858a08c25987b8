//! Issue #10, "faults during dev": the Docker engine stops (SIGTERM, then in a second round
//! SIGKILL) and comes back while `skiff dev -p docker` runs. While it is down, a save gives a
//! message naming the engine's socket and what to do — once per outage, however many saves —
//! and `skiff dev` keeps running; the first save after the engine is back rebuilds, redeploys
//! on the same port and the new content is served. Ctrl-C then removes the run's containers
//! and network from that engine.
//!
//! The engine stopped is the test's own (`scripts/devenv/own-dockerd`, everything under a
//! short temporary directory), never the shared one other tests use. skiff and the example's
//! `build.sh` find it through the `DOCKER_HOST` the test gives skiff. Without `dockerd` or the
//! `docker` CLI the test is skipped, unless `CI=true`.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use skiff_e2e::harness::{
    Skiff, example_copy_rebuilding, forwarded_address, http_get, missing, unique, wait_served,
};

const LONG: Duration = Duration::from_secs(180);

#[test]
fn dev_survives_the_docker_engine_stopping_and_coming_back() {
    with_own_engine(rebuild_body);
}

#[test]
fn dev_with_sync_rules_rebuilds_after_the_docker_engine_came_back() {
    with_own_engine(sync_body);
}

/// Runs `body` with a fresh short directory for an own engine; cleans that directory up
/// afterwards, whatever became of the body.
fn with_own_engine(body: fn(&Path)) {
    if !runs("dockerd", &["--version"]) {
        missing("no `dockerd` binary (`scripts/devenv/up docker` installs it)");
        return;
    }
    if !runs("docker", &["--version"]) {
        missing("no `docker` CLI (`scripts/devenv/up docker` installs it)");
        return;
    }
    // Short: the engine's unix sockets live under it (~108 bytes at most).
    let dir = tempfile::Builder::new()
        .prefix("skd")
        .tempdir_in("/tmp")
        .unwrap();
    let _sweep = Sweep(dir.path().to_owned());
    // The shared engine's bridge: its containers and every Kubernetes pod need it, and a
    // second dockerd started with the wrong flags deletes it.
    let shared_bridge = Path::new("/sys/class/net/docker0");
    let bridged = shared_bridge.exists();
    body(dir.path());
    assert!(
        !bridged || shared_bridge.exists(),
        "the own engine deleted the shared engine's docker0 bridge"
    );
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn host(dir: &Path) -> String {
    format!("unix://{}/docker.sock", dir.display())
}

/// The test's own `dockerd` on `dir`, stopped (and everything it left cleaned up) when dropped.
struct OwnEngine {
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnEngine {
    fn new(dir: &Path) -> OwnEngine {
        OwnEngine {
            dir: dir.to_owned(),
            child: None,
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.join("dockerd.log")
    }

    /// Starts `own-dockerd` and waits until the engine answers.
    fn start(&mut self) {
        assert!(self.child.is_none(), "the own engine runs already");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let child = Command::new(skiff_e2e::workspace_root().join("scripts/devenv/own-dockerd"))
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(90);
        while !self.answers() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "own-dockerd exited ({status}) before answering; its log:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "own-dockerd did not answer in 90 s; its log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn answers(&self) -> bool {
        Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .env("DOCKER_HOST", host(&self.dir))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The end of the engine's log.
    fn log_text(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Sends `signal` to the engine and waits until it has exited.
    fn stop(&mut self, signal: &str) {
        let mut child = self.child.take().expect("the own engine runs");
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
        let deadline = Instant::now() + Duration::from_secs(90);
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not exit on SIG{signal}; its log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!self.answers(), "the engine still answers after it exited");
    }

    /// `docker ARGS` against the own engine.
    fn docker(&self, args: &[&str]) -> String {
        let output = Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", host(&self.dir))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

impl Drop for OwnEngine {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        sweep(&self.dir);
    }
}

/// Cleans up `dir` when dropped, whatever became of the test body.
struct Sweep(PathBuf);

impl Drop for Sweep {
    fn drop(&mut self) {
        sweep(&self.0);
    }
}

/// Ends what an engine on `dir` may have left running — the processes whose command line
/// names `dir` (its dockerd, containerd and shims) and their children (the containers' first
/// processes) — then unmounts what it mounted under `dir` and removes `dir`. A killed
/// `dockerd` leaves its shims and their containers running. `dir` is this test's own
/// temporary directory, so nothing else matches; pid files are not trusted (a stale one may
/// name a reused pid).
fn sweep(dir: &Path) {
    let Some(dir_text) = dir.to_str().filter(|d| d.len() > "/tmp/".len()) else {
        return;
    };
    let mut processes: Vec<(u32, u32, bool)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let names_dir = String::from_utf8_lossy(&cmdline).contains(dir_text);
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(0);
        processes.push((pid, ppid, names_dir));
    }
    let ours: Vec<u32> = processes
        .iter()
        .filter(|(pid, _, names_dir)| *names_dir && *pid != std::process::id())
        .map(|(pid, _, _)| *pid)
        .collect();
    let children = processes
        .iter()
        .filter(|(_, ppid, _)| ours.contains(ppid))
        .map(|(pid, _, _)| *pid);
    let doomed: Vec<u32> = ours.iter().copied().chain(children).collect();
    for pid in doomed {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(dir_text))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = Command::new("umount")
            .args(["-l", point])
            .stderr(Stdio::null())
            .status();
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The engine-gone message: it names the socket and says what to do.
fn is_engine_message(line: &str, socket: &str) -> bool {
    line.contains("Docker engine")
        && line.contains(socket)
        && line.contains("does not answer")
        && line.contains("start it again")
}

/// The example rebuilt on every save (no sync rule), through two outages: `SIGTERM`, then
/// `SIGKILL` (which leaves the engine's shims and containers running without it).
fn rebuild_body(dir: &Path) {
    let socket = host(dir);
    let mut engine = OwnEngine::new(dir);
    engine.start();

    let name = unique("hello-fault");
    let project = example_copy_rebuilding(&name);
    let msg = project.path().join("www/msg.txt");
    let cache = tempfile::tempdir().unwrap();
    let env = [("DOCKER_HOST", socket.as_str()), ("NO_COLOR", "1")];
    let mut skiff =
        Skiff::start_with_env(project.path(), &["dev", "-p", "docker"], cache.path(), &env);
    let address = skiff.wait_line(0, LONG, forwarded_address);
    wait_served(&address, "Hello from skiff!\n", LONG, &skiff);
    let skiffs = "label=app.kubernetes.io/managed-by=skiff";
    assert!(!engine.docker(&["ps", "-q", "--filter", skiffs]).is_empty());

    for (round, signal) in ["TERM", "KILL"].into_iter().enumerate() {
        eprintln!("--- round {round}: SIG{signal} to the own dockerd");
        let outage = skiff.line_count();
        engine.stop(signal);

        // Two saves while it is down: each fails, skiff keeps running, and the engine is
        // named once for the outage, not once per save.
        for attempt in 0..2 {
            let mark = skiff.line_count();
            std::fs::write(&msg, format!("down {round}.{attempt}\n")).unwrap();
            skiff.wait_line(mark, LONG, |l| {
                (l.starts_with("msg.txt → ") && l.contains("failed")).then_some(())
            });
        }
        let told: Vec<String> = skiff
            .lines_from(outage)
            .into_iter()
            .filter(|l| is_engine_message(l, &socket))
            .collect();
        assert_eq!(
            told.len(),
            1,
            "want one message naming {socket} and what to do; output:\n{}",
            skiff.output()
        );

        // Back on the same directory: the next save rebuilds and redeploys. In round 1 the
        // content is the stopped container's own, so the image is the same: the container
        // must be replaced all the same, not left stopped as "unchanged".
        engine.start();
        let mark = skiff.line_count();
        let content = "back\n";
        std::fs::write(&msg, content).unwrap();
        skiff.wait_line(mark, LONG, |l| {
            l.starts_with("msg.txt → rebuilt").then_some(())
        });
        let address_now = skiff
            .lines_from(mark)
            .iter()
            .rev()
            .find_map(|l| forwarded_address(l))
            .unwrap_or_else(|| address.clone());
        assert_eq!(address_now, address, "the host port moved");
        wait_served(&address, content, LONG, &skiff);
        skiff.wait_line(outage, LONG, |l| {
            (l.contains("Docker engine") && l.contains("answers again")).then_some(())
        });
    }

    // Ctrl-C: a clean exit, and nothing of the run left on the engine.
    skiff.stop(LONG);
    assert_eq!(engine.docker(&["ps", "-aq", "--filter", skiffs]), "");
    assert_eq!(
        engine.docker(&["network", "ls", "-q", "--filter", skiffs]),
        ""
    );
    assert!(http_get(&address).is_none());
    drop(engine);
}

/// The example with its sync rule: a save while the engine is down cannot sync (said once);
/// after the engine is back no container runs to sync into, so the next save rebuilds and
/// redeploys, and the new content is served.
fn sync_body(dir: &Path) {
    let socket = host(dir);
    let mut engine = OwnEngine::new(dir);
    engine.start();

    let name = unique("hello-fault-sync");
    let project = skiff_e2e::harness::example_copy(&name);
    let msg = project.path().join("www/msg.txt");
    let cache = tempfile::tempdir().unwrap();
    // No log stream notices the outage: the failed sync itself must lead to the message.
    let env = [("DOCKER_HOST", socket.as_str()), ("NO_COLOR", "1")];
    let mut skiff = Skiff::start_with_env(
        project.path(),
        &["dev", "-p", "docker", "--tail=false"],
        cache.path(),
        &env,
    );
    let address = skiff.wait_line(0, LONG, forwarded_address);
    wait_served(&address, "Hello from skiff!\n", LONG, &skiff);
    let mark = skiff.line_count();
    std::fs::write(&msg, "synced\n").unwrap();
    wait_served(&address, "synced\n", LONG, &skiff);
    skiff.wait_line(mark, LONG, |l| {
        l.starts_with("msg.txt → synced").then_some(())
    });

    let outage = skiff.line_count();
    engine.stop("TERM");
    let mark = skiff.line_count();
    std::fs::write(&msg, "down\n").unwrap();
    skiff.wait_line(mark, LONG, |l| {
        (l.starts_with("msg.txt → ") && l.contains("sync failed")).then_some(())
    });
    let told = skiff
        .lines_from(outage)
        .iter()
        .filter(|l| is_engine_message(l, &socket))
        .count();
    assert_eq!(told, 1, "output:\n{}", skiff.output());

    engine.start();
    let mark = skiff.line_count();
    std::fs::write(&msg, "back\n").unwrap();
    skiff.wait_line(mark, LONG, |l| {
        l.starts_with("msg.txt → rebuilt").then_some(())
    });
    wait_served(&address, "back\n", LONG, &skiff);

    // The new container is synced into again.
    let mark = skiff.line_count();
    std::fs::write(&msg, "synced again\n").unwrap();
    wait_served(&address, "synced again\n", LONG, &skiff);
    skiff.wait_line(mark, LONG, |l| {
        l.starts_with("msg.txt → synced").then_some(())
    });

    skiff.stop(LONG);
    let skiffs = "label=app.kubernetes.io/managed-by=skiff";
    assert_eq!(engine.docker(&["ps", "-aq", "--filter", skiffs]), "");
    assert_eq!(
        engine.docker(&["network", "ls", "-q", "--filter", skiffs]),
        ""
    );
    drop(engine);
}
