//! Load: one generated config with 20 artifacts and 200 manifests, against the real Docker
//! engine and cluster. `skiff dev` starts, a change to one artifact's dependency rebuilds only
//! that artifact (the iteration line and the event log say so), and skiff's peak resident
//! memory (`VmHWM`) stays under 200 MiB. Without the engine or the cluster the test is skipped,
//! unless `CI=true`.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const ARTIFACTS: usize = 20;
const MANIFESTS: usize = 200;
const MAX_RSS_KIB: u64 = 200 * 1024;
const LONG: Duration = Duration::from_secs(300);

use skiff_e2e::harness::{Skiff, docker_available, kube_available, unique};

fn parts_available() -> bool {
    docker_available() && kube_available()
}

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The test's namespace and images; removed when dropped.
struct Cleanup {
    namespace: String,
    repository: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .args(["delete", "namespace", &self.namespace, "--wait=false"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | grep '^{}' | xargs -r docker rmi -f --no-prune >/dev/null 2>&1",
                    self.repository
                ),
            ])
            .status();
    }
}

/// A tiny `FROM scratch` image every artifact's build tags as its own.
fn base_image(dir: &Path, name: &str) {
    let context = dir.join("base");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("data.txt"), "load\n").unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY data.txt /data.txt\n",
    )
    .unwrap();
    run(
        "docker",
        &["build", "-q", "-t", name, &context.display().to_string()],
        None,
    );
}

fn artifact_image(repository: &str, i: usize) -> String {
    format!("{repository}/a{i:02}")
}

/// 20 custom artifacts (`aNN/`, each depending on its `src.txt`) whose build tags the base
/// image, and 200 ConfigMaps.
fn project(dir: &Path, repository: &str, base: &str) {
    let mut yaml = String::from(
        "apiVersion: skaffold/v4beta11\nkind: Config\nbuild:\n  tagPolicy:\n    inputDigest: {}\n  local:\n    push: false\n  artifacts:\n",
    );
    for i in 0..ARTIFACTS {
        let context = dir.join(format!("a{i:02}"));
        std::fs::create_dir_all(&context).unwrap();
        std::fs::write(context.join("src.txt"), format!("artifact {i}\n")).unwrap();
        let script = context.join("build.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nset -e\ndocker tag {base} \"$IMAGE\"\n"),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        yaml.push_str(&format!(
            "  - image: {}\n    context: a{i:02}\n    custom:\n      buildCommand: ./build.sh\n      dependencies:\n        paths: [src.txt]\n",
            artifact_image(repository, i)
        ));
    }
    yaml.push_str("manifests:\n  rawYaml: [k8s/*.yaml]\ndeploy:\n  kubectl: {}\n");
    std::fs::write(dir.join("skaffold.yaml"), yaml).unwrap();
    std::fs::create_dir_all(dir.join("k8s")).unwrap();
    let mut manifests = String::new();
    for i in 0..MANIFESTS {
        manifests.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: load-{i:03}\ndata:\n  index: \"{i}\"\n"
        ));
    }
    std::fs::write(dir.join("k8s/configmaps.yaml"), manifests).unwrap();
}

/// `VmHWM` of the process: its peak resident memory, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The `image` of every `buildStarted` event in the event log, from line `from` on.
fn builds_started(event_log: &Path, from: usize) -> Vec<String> {
    let text = std::fs::read_to_string(event_log).unwrap_or_default();
    text.lines()
        .skip(from)
        .filter(|l| l.contains("\"type\":\"buildStarted\""))
        .map(|l| {
            let start = l.find("\"image\":\"").unwrap() + "\"image\":\"".len();
            l[start..start + l[start..].find('"').unwrap()].to_owned()
        })
        .collect()
}

#[test]
fn dev_with_20_artifacts_and_200_manifests_rebuilds_one_and_stays_under_200_mib() {
    if !parts_available() {
        return;
    }
    let name = unique("skiff-load");
    let repository = format!("localhost:5000/{name}");
    let cleanup = Cleanup {
        namespace: name.clone(),
        repository: repository.clone(),
    };
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("project");
    std::fs::create_dir_all(&dir).unwrap();
    let base = format!("{repository}/base:v1");
    base_image(work.path(), &base);
    project(&dir, &repository, &base);
    run(
        "kubectl",
        &["create", "namespace", &cleanup.namespace],
        None,
    );

    let event_log = work.path().join("events.jsonl");
    let event_log_arg = format!("--event-log={}", event_log.display());
    let namespace_arg = format!("--namespace={}", cleanup.namespace);
    let mut skiff = Skiff::start_with_cache(
        &dir,
        &["dev", &namespace_arg, &event_log_arg],
        &work.path().join("cache"),
    );

    // Started: every artifact built once, every ConfigMap applied.
    let first = skiff.wait_line(0, LONG, |l| {
        (l.contains(" → ") && l.contains("total")).then(|| l.to_owned())
    });
    assert!(
        first.contains(&format!("{MANIFESTS} objects")),
        "first iteration: {first}\n{}",
        skiff.output()
    );
    let mut started = builds_started(&event_log, 0);
    started.sort();
    let mut all: Vec<String> = (0..ARTIFACTS)
        .map(|i| artifact_image(&repository, i))
        .collect();
    all.sort();
    assert_eq!(started, all);
    let configmaps = run(
        "kubectl",
        &["get", "configmaps", "-n", &cleanup.namespace, "-o", "name"],
        None,
    );
    assert_eq!(
        configmaps.lines().filter(|l| l.contains("/load-")).count(),
        MANIFESTS
    );

    // One dependency changes: only its artifact is rebuilt.
    let changed = 7;
    let mark = skiff.line_count();
    let events_mark = std::fs::read_to_string(&event_log).unwrap().lines().count();
    std::fs::write(dir.join(format!("a{changed:02}/src.txt")), "changed\n").unwrap();
    let line = skiff.wait_line(mark, LONG, |l| {
        (l.contains(" → ") && l.contains("total")).then(|| l.to_owned())
    });
    let image = artifact_image(&repository, changed);
    assert!(
        line.contains(&format!("rebuilt {image} (")),
        "iteration: {line}"
    );
    for i in (0..ARTIFACTS).filter(|i| *i != changed) {
        assert!(
            !line.contains(&artifact_image(&repository, i)),
            "iteration: {line}"
        );
    }
    // The event log is written as events happen; give the last lines a moment.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(builds_started(&event_log, events_mark), vec![image]);

    let peak = peak_rss_kib(skiff.pid());
    eprintln!("skiff peak RSS: {} KiB", peak);
    assert!(
        peak < MAX_RSS_KIB,
        "skiff's peak RSS {peak} KiB is over {MAX_RSS_KIB} KiB"
    );
    skiff.stop(LONG);
}
