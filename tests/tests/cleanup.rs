//! Cleanup safety on the real Docker engine: `skiff dev -p docker` killed with `SIGKILL` cannot
//! clean up, so its labelled containers remain; the next `skiff dev` of the same project and
//! `skiff delete` remove them by label, and never touch a container that lacks skiff's labels
//! (same name pattern, same name, even the same image) nor skiff's containers of another
//! project. Without a Docker engine the test is skipped, unless `CI=true`.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(180);

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn docker_available() -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok && ci() {
        panic!("no Docker engine answers (CI=true: `scripts/devenv/up docker` starts it)");
    }
    if !ok {
        eprintln!("skipped: no Docker engine answers (`docker info` failed)");
    }
    ok
}

fn copy_dir(from: &Path, to: &Path) {
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

/// A copy of `examples/hello-http` where every `hello-http` is `name` (as in `dev.rs`).
fn example_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &skiff_e2e::workspace_root().join("examples/hello-http"),
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

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// A running `skiff`, its output lines collected.
struct Skiff {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Skiff {
    fn start(dir: &Path, args: &[&str]) -> Skiff {
        let mut child = Command::new(skiff_e2e::skiff_bin())
            .args(args)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .env(
                "XDG_CACHE_HOME",
                std::env::temp_dir().join("skiff-e2e-cleanup-cache"),
            )
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

    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    fn wait_line(&mut self, timeout: Duration, find: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.lines.lock().unwrap().iter().find(|l| find(l)) {
                return line.clone();
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
    fn kill_hard(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Skiff {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

fn labelled_containers(image: &str) -> Vec<String> {
    lines(&docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=skiff.dev/image={image}"),
        "--format",
        "{{.Names}}",
    ]))
}

fn exists(container: &str) -> bool {
    Command::new("docker")
        .args(["inspect", "--type", "container", container])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn run_id_of(container: &str) -> String {
    docker(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"skaffold.dev/run-id\"}}",
        container,
    ])
}

fn networks_of_run(run_id: &str) -> Vec<String> {
    lines(&docker(&[
        "network",
        "ls",
        "--filter",
        &format!("label=skaffold.dev/run-id={run_id}"),
        "--format",
        "{{.Name}}",
    ]))
}

/// Removes, when dropped, the test's own containers and the images of `localhost:5000/<name>`.
struct Cleanup {
    name: String,
    containers: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for container in &self.containers {
            let _ = Command::new("docker")
                .args(["rm", "-f", container])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "docker ps -aq --filter label=skiff.dev/image=localhost:5000/{0} | xargs -r docker rm -f >/dev/null 2>&1; \
                     docker images -q localhost:5000/{0} | xargs -r docker rmi -f --no-prune >/dev/null 2>&1",
                    self.name
                ),
            ])
            .status();
    }
}

/// `skiff dev -p docker` until its container serves; returns it and the container names.
fn dev_until_deployed(dir: &Path, image: &str) -> (Skiff, Vec<String>) {
    let mut skiff = Skiff::start(dir, &["dev", "-p", "docker"]);
    skiff.wait_line(LONG, |l| l.starts_with("Port forwarding "));
    let containers = labelled_containers(image);
    assert!(!containers.is_empty(), "no container:\n{}", skiff.output());
    (skiff, containers)
}

fn skiff_delete(dir: &Path) -> String {
    let output = Command::new(skiff_e2e::skiff_bin())
        .args(["delete", "-p", "docker"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("skiff delete:\n{text}");
    assert!(output.status.success(), "skiff delete failed:\n{text}");
    text
}

#[test]
fn dev_killed_leaves_labelled_containers_that_next_dev_and_delete_remove_sparing_others() {
    if !docker_available() {
        return;
    }
    let name = unique("hello-killed");
    let image = format!("localhost:5000/{name}");
    let dir = example_copy(&name);
    let mut cleanup = Cleanup {
        name: name.clone(),
        containers: Vec::new(),
    };

    // Run 1, killed: its containers and network stay behind.
    let (mut first, first_containers) = dev_until_deployed(dir.path(), &image);
    let first_run = run_id_of(&first_containers[0]);
    first.kill_hard();
    assert_eq!(labelled_containers(&image), first_containers);
    assert_eq!(networks_of_run(&first_run).len(), 1);

    // Not skiff's: same name pattern, same image, no labels.
    let built = docker(&[
        "inspect",
        "--format",
        "{{.Config.Image}}",
        &first_containers[0],
    ]);
    let lookalike = format!("{}-lookalike", first_containers[0]);
    docker(&["create", "--name", &lookalike, &built]);
    cleanup.containers.push(lookalike.clone());
    assert_eq!(
        docker(&[
            "inspect",
            "--format",
            "{{index .Config.Labels \"app.kubernetes.io/managed-by\"}}",
            &lookalike
        ]),
        "",
        "the test's image must not carry skiff's labels"
    );
    // skiff's, but of another project (another image).
    let other_project = format!("{name}-other-project");
    docker(&[
        "create",
        "--name",
        &other_project,
        "--label",
        "app.kubernetes.io/managed-by=skiff",
        "--label",
        &format!("skaffold.dev/run-id={}", unique("other-run")),
        "--label",
        &format!("skiff.dev/image=localhost:5000/{name}-other"),
        &built,
    ]);
    cleanup.containers.push(other_project.clone());

    // Run 2 of the same project removes run 1's leftovers at start, and nothing else.
    let (mut second, second_containers) = dev_until_deployed(dir.path(), &image);
    for container in &first_containers {
        assert!(
            !second_containers.contains(container),
            "{container} of the killed run is still there:\n{}",
            second.output()
        );
    }
    second.wait_line(LONG, |l| l.contains("earlier run"));
    assert!(networks_of_run(&first_run).is_empty());
    assert!(exists(&lookalike), "the unlabelled container was removed");
    assert!(
        exists(&other_project),
        "another project's container was removed"
    );

    // Run 2, killed too; `skiff delete` removes its leftovers, and nothing else.
    let second_run = run_id_of(&second_containers[0]);
    second.kill_hard();
    assert_eq!(labelled_containers(&image), second_containers);
    let deleted = skiff_delete(dir.path());
    for container in &second_containers {
        assert!(deleted.contains(container.as_str()), "{deleted}");
    }
    assert_eq!(labelled_containers(&image), Vec::<String>::new());
    assert!(networks_of_run(&second_run).is_empty());
    assert!(exists(&lookalike), "the unlabelled container was removed");
    assert!(
        exists(&other_project),
        "another project's container was removed"
    );

    // An unlabelled container with exactly a removed container's name: left alone.
    let same_name = second_containers[0].clone();
    docker(&["create", "--name", &same_name, &built]);
    cleanup.containers.push(same_name.clone());
    let deleted = skiff_delete(dir.path());
    assert!(deleted.contains("Nothing to delete"), "{deleted}");
    assert!(
        exists(&same_name),
        "the same-named unlabelled container was removed"
    );
    assert!(exists(&lookalike));
    assert!(exists(&other_project));
}
