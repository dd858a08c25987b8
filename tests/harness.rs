//! What the end-to-end tests share: whether the real parts are there (a missing part fails the
//! test when `CI=true`, else skips it), copies of the example app, unique names, and [`Skiff`],
//! a running `skiff` whose output lines are collected.

#![allow(clippy::unwrap_used, clippy::print_stderr, clippy::missing_panics_doc)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Whether this is CI (`CI=true`): a missing part fails the test instead of skipping it.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A missing part: panic in CI, otherwise say why the test is skipped.
pub fn missing(message: &str) -> bool {
    if ci() {
        panic!("{message} (CI=true: tests needing it fail; `scripts/devenv/up` starts it)");
    }
    eprintln!("skipped: {message}");
    false
}

/// Whether a Docker engine answers (else [`missing`]).
pub fn docker_available() -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok || missing("no Docker engine answers (`docker info` failed)")
}

/// Whether `KUBECONFIG` names a kubeconfig file (else [`missing`]).
pub fn kube_available() -> bool {
    std::env::var_os("KUBECONFIG").is_some_and(|k| Path::new(&k).is_file())
        || missing("KUBECONFIG names no kubeconfig file")
}

/// Copies the directory tree `from` to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of the example where every `hello-http` (image, objects, port-forward entry) is
/// `name`, and the compiled binary left out.
pub fn example_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &crate::workspace_root().join("examples/hello-http"),
        dir.path(),
    );
    let _ = std::fs::remove_file(dir.path().join("hello"));
    for file in ["skaffold.yaml", "k8s/deployment.yaml", "k8s/service.yaml"] {
        let path = dir.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("hello-http", name)).unwrap();
    }
    dir
}

/// [`example_copy`] without the example's sync rule: every change to `www/` rebuilds.
pub fn example_copy_rebuilding(name: &str) -> tempfile::TempDir {
    let dir = example_copy(name);
    let path = dir.path().join("skaffold.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text
        .find("    sync:\n")
        .expect("the example has a sync rule");
    let end = start + text[start..].find("manifests:").unwrap();
    std::fs::write(&path, format!("{}{}", &text[..start], &text[end..])).unwrap();
    dir
}

/// A copy of the article's Go service (`examples/go-webapp`: its Dockerfile, deployment and
/// skaffold.yaml as the article has them) where the image and the Deployment are named `name`
/// (tests run side by side on one engine and cluster).
pub fn go_webapp_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &crate::workspace_root().join("examples/go-webapp"),
        dir.path(),
    );
    for file in ["skaffold.yaml", "k8s/deployment.yaml"] {
        let path = dir.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("go-webapp", name)).unwrap();
    }
    dir
}

/// Writes the message the Go service answers with (`main.go`'s `message`).
pub fn set_go_message(dir: &Path, message: &str) {
    let path = dir.join("main.go");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("const message = \"").unwrap() + "const message = \"".len();
    let end = start + text[start..].find('"').unwrap();
    std::fs::write(
        &path,
        format!("{}{message}{}", &text[..start], &text[end..]),
    )
    .unwrap();
}

/// Makes `dir` a git repository with everything committed — what a new user's project is.
pub fn git_commit_all(dir: &Path) {
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=skiff tests",
            "-c",
            "user.email=tests@skiff.invalid",
            "commit",
            "-q",
            "-m",
            "the project",
        ],
    ] {
        let output = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A name no other test run uses: `prefix`, the process ID and a counter.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// A running `skiff` whose output lines (stdout and stderr) are collected.
#[derive(Debug)]
pub struct Skiff {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Skiff {
    /// Starts `skiff ARGS` in `dir`, collecting its output lines.
    pub fn start(dir: &Path, args: &[&str]) -> Skiff {
        Skiff::start_with_cache(dir, args, &std::env::temp_dir().join("skiff-e2e-dev-cache"))
    }

    /// [`Skiff::start`] with `cache` as `XDG_CACHE_HOME` (a cold artifact cache, say).
    pub fn start_with_cache(dir: &Path, args: &[&str], cache: &Path) -> Skiff {
        Skiff::start_with_env(dir, args, cache, &[])
    }

    /// [`Skiff::start_with_cache`] with `env` set on top of this process's environment
    /// (`DOCKER_HOST` naming a test's own engine, say).
    pub fn start_with_env(dir: &Path, args: &[&str], cache: &Path, env: &[(&str, &str)]) -> Skiff {
        let mut child = Command::new(crate::skiff_bin())
            .args(args)
            .current_dir(dir)
            .env("XDG_CACHE_HOME", cache)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [out, err] {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut buffer = Vec::new();
                while reader.read_until(b'\n', &mut buffer).is_ok_and(|n| n > 0) {
                    let line = String::from_utf8_lossy(&buffer).trim_end().to_owned();
                    buffer.clear();
                    eprintln!("skiff| {line}");
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Skiff { child, lines }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits (up to `timeout`) for a line `find` accepts, among those from `from` on.
    pub fn wait_line<T>(
        &mut self,
        from: usize,
        timeout: Duration,
        find: impl Fn(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let found = {
                let lines = self.lines.lock().unwrap();
                lines[from.min(lines.len())..].iter().find_map(|l| find(l))
            };
            if let Some(found) = found {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("skiff exited ({status}) early:\n{}", self.output());
            }
            assert!(
                Instant::now() < deadline,
                "timed out; output:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `SIGKILL`: no chance to clean up.
    pub fn kill_hard(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The process ID (for `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The lines from `from` on.
    pub fn lines_from(&self, from: usize) -> Vec<String> {
        let lines = self.lines.lock().unwrap();
        lines[from.min(lines.len())..].to_vec()
    }

    /// How many lines it printed so far.
    pub fn line_count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// Sends it SIGINT, as Ctrl-C does.
    pub fn interrupt(&mut self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits up to `timeout` for it to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("skiff did not exit; output:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Ctrl-C, then a clean exit (status 0) within `timeout`, or a panic with the output.
    pub fn stop(&mut self, timeout: Duration) {
        self.interrupt();
        let status = self.wait_exit(timeout);
        assert!(
            status.success(),
            "skiff exited with {status}:\n{}",
            self.output()
        );
    }
}

impl Drop for Skiff {
    fn drop(&mut self) {
        // A failed test: let skiff clean up what it deployed, then make sure it is gone.
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-INT", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body `GET /` returns at `address` when it answers 200.
pub fn http_get(address: &str) -> Option<String> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// Waits until `address` serves `want`; panics with `skiff`'s output after `timeout`.
pub fn wait_served(address: &str, want: &str, timeout: Duration, skiff: &Skiff) {
    let deadline = Instant::now() + timeout;
    loop {
        if http_get(address).as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{address} never served {want:?} (last: {:?}); output:\n{}",
            http_get(address),
            skiff.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The local address of a `Port forwarding … -> ADDRESS` line.
pub fn forwarded_address(line: &str) -> Option<String> {
    let rest = line.strip_prefix("Port forwarding ")?;
    Some(rest.rsplit_once(" -> ")?.1.trim().to_owned())
}

/// The names of the containers (running or not) skiff labelled with `image`.
pub fn labelled_containers(image: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label=skiff.dev/image={image}"),
            "--format",
            "{{.Names}}",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A local port free now (the system's choice, released again for the test to hand out).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Removes the engine's images whose reference matches `self.0` (`localhost:5000/NAME`, say)
/// when dropped — also when the test panicked. Untagged with `--no-prune`: a parallel build may
/// use the parent layers as cache.
#[derive(Debug)]
pub struct EngineImages(pub String);

impl Drop for EngineImages {
    fn drop(&mut self) {
        let Ok(output) = Command::new("docker")
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}", "--filter"])
            .arg(format!("reference={}", self.0))
            .output()
        else {
            return;
        };
        for image in String::from_utf8_lossy(&output.stdout).lines() {
            let _ = Command::new("docker")
                .args(["rmi", "-f", "--no-prune", image])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs `skiff ARGS` in `dir` to completion; panics unless it succeeds. Returns its stdout
/// and stderr.
pub fn run_skiff(dir: &Path, args: &[&str]) -> String {
    run_skiff_with(dir, args, &[])
}

/// [`run_skiff`] with `cache` as `XDG_CACHE_HOME` (the artifact cache of a test's own).
pub fn run_skiff_with_cache(dir: &Path, args: &[&str], cache: &Path) -> String {
    run_skiff_with(dir, args, &[("XDG_CACHE_HOME", cache.as_os_str())])
}

fn run_skiff_with(dir: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> String {
    let output = Command::new(crate::skiff_bin())
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("skiff {}:\n{text}", args.join(" "));
    assert!(
        output.status.success(),
        "skiff {} failed:\n{text}",
        args.join(" ")
    );
    text
}
