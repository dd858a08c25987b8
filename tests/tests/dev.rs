//! `skiff dev` and `skiff run` on the example app (`examples/hello-http`), driving the binary
//! against the real Docker engine (and, for `run`, the local cluster). Without the part a test
//! needs it is skipped, unless `CI=true`, where it fails.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skiff_e2e::harness::*;

const LONG: Duration = Duration::from_secs(120);

#[test]
fn dev_on_docker_rebuilds_on_save_survives_a_broken_build_and_cleans_up() {
    if !docker_available() {
        return;
    }
    let name = unique("hello-dev");
    let image = format!("localhost:5000/{name}");
    let dir = example_copy_rebuilding(&name);
    let _images = EngineImages(format!("localhost:5000/{name}"));
    let mut skiff = Skiff::start(dir.path(), &["dev", "-p", "docker"]);

    let address = skiff.wait_line(0, LONG, forwarded_address);
    wait_served(&address, "Hello from skiff!\n", LONG, &skiff);

    // A saved source file: rebuilt, and the new content served on the same port.
    let mark = skiff.line_count();
    std::fs::write(dir.path().join("www/msg.txt"), "second\n").unwrap();
    wait_served(&address, "second\n", LONG, &skiff);
    skiff.wait_line(mark, LONG, |l| {
        l.starts_with("msg.txt → rebuilt").then_some(())
    });

    // A broken build: the error is printed, the old version is still served.
    let source = std::fs::read_to_string(dir.path().join("main.c")).unwrap();
    let mark = skiff.line_count();
    std::fs::write(
        dir.path().join("main.c"),
        format!("{source}\nthis is not C;\n"),
    )
    .unwrap();
    skiff.wait_line(mark, LONG, |l| {
        (l.starts_with("main.c → ") && l.contains("failed")).then_some(())
    });
    skiff.wait_line(mark, LONG, |l| l.starts_with("error: ").then_some(()));
    assert_eq!(http_get(&address).as_deref(), Some("second\n"));

    // Fixed (with a new message): the new version is served. The message names this test: after
    // Ctrl-C a parallel test may publish the same host port, and must not pass for ours.
    let third = format!("third from {name}\n");
    std::fs::write(dir.path().join("main.c"), &source).unwrap();
    std::fs::write(dir.path().join("www/msg.txt"), &third).unwrap();
    wait_served(&address, &third, LONG, &skiff);
    assert!(!labelled_containers(&image).is_empty());

    // Ctrl-C: the process exits and the run's containers are gone, so this run serves nothing.
    skiff.stop(LONG);
    assert_eq!(labelled_containers(&image), Vec::<String>::new());
    assert_ne!(http_get(&address), Some(third));
}

#[test]
fn run_tail_on_kubernetes_prints_the_apps_log_line() {
    if !docker_available() || !kube_available() {
        return;
    }
    let name = unique("hello-run");
    let dir = example_copy_rebuilding(&name);
    let _images = EngineImages(format!("localhost:5000/{name}"));
    let mut skiff = Skiff::start(dir.path(), &["run", "--tail"]);
    skiff.wait_line(0, Duration::from_secs(240), |l| {
        (l.contains(&name) && l.ends_with("hello-http listening on :8080")).then_some(())
    });
    skiff.stop(LONG);
    let deleted = Command::new(skiff_e2e::skiff_bin())
        .arg("delete")
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(deleted.success());
}

fn kube_objects(name: &str) -> Vec<String> {
    let output = Command::new("kubectl")
        .args([
            "get",
            "deployment,service",
            "-o",
            "name",
            "--ignore-not-found",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kubectl get failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.ends_with(&format!("/{name}")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn dev_on_kubernetes_serves_the_new_content_on_the_same_port_and_cleans_up() {
    if !docker_available() || !kube_available() {
        return;
    }
    let kubectl = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success());
    if !kubectl && !missing("kubectl is not installed") {
        return;
    }
    let name = unique("hello-kdev");
    let dir = example_copy_rebuilding(&name);
    let _images = EngineImages(format!("localhost:5000/{name}"));
    let mut skiff = Skiff::start(dir.path(), &["dev"]);
    let address = skiff.wait_line(0, Duration::from_secs(240), |l| {
        l.starts_with(&format!("Port forwarding service/{name} "))
            .then(|| forwarded_address(l))
            .flatten()
    });
    wait_served(&address, "Hello from skiff!\n", LONG, &skiff);
    assert_eq!(kube_objects(&name).len(), 2);

    std::fs::write(dir.path().join("www/msg.txt"), "from the cluster\n").unwrap();
    wait_served(&address, "from the cluster\n", LONG, &skiff);

    skiff.stop(LONG);
    // Deletion is asynchronous: the objects go within moments.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !kube_objects(&name).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(kube_objects(&name), Vec::<String>::new());
}

/// The HTTP API's address from skiff's `Serving the HTTP API on http://…` line.
fn api_address(line: &str) -> Option<String> {
    let rest = line.strip_prefix("Serving the HTTP API on http://")?;
    Some(rest.split_whitespace().next()?.to_owned())
}

/// One HTTP request; the status line and body.
fn http(address: &str, method: &str, path: &str, body: &str) -> (String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// `"count":N` of the iteration state in a `/v2/state` body.
fn iteration_count(state: &str) -> usize {
    let at = state.find("\"count\":").unwrap() + "\"count\":".len();
    state[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

fn iteration_lines(skiff: &Skiff, from: usize) -> Vec<String> {
    skiff
        .lines_from(from)
        .into_iter()
        .filter(|l| l.contains(" → ") && l.contains(" — total "))
        .collect()
}

#[test]
fn dev_on_docker_a_burst_is_one_iteration_and_the_event_log_has_timings() {
    if !docker_available() {
        return;
    }
    let name = unique("hello-burst");
    let image = format!("localhost:5000/{name}");
    let dir = example_copy_rebuilding(&name);
    let _images = EngineImages(format!("localhost:5000/{name}"));
    let log = dir.path().join("events.jsonl");
    let mut skiff = Skiff::start(
        dir.path(),
        &["dev", "-p", "docker", "--event-log", "events.jsonl"],
    );
    let address = skiff.wait_line(0, LONG, forwarded_address);
    wait_served(&address, "Hello from skiff!\n", LONG, &skiff);
    skiff.wait_line(0, LONG, |l| l.starts_with("initial → ").then_some(()));

    // 20 files written back to back (an editor saving everything), the message last.
    let mark = skiff.line_count();
    for n in 1..=19 {
        std::fs::write(
            dir.path().join(format!("www/page{n}.txt")),
            format!("{n}\n"),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("www/msg.txt"), "after the burst\n").unwrap();
    wait_served(&address, "after the burst\n", LONG, &skiff);
    // Give a (wrong) second iteration time to show up.
    std::thread::sleep(Duration::from_secs(3));
    let iterations = iteration_lines(&skiff, mark);
    assert_eq!(iterations.len(), 1, "{iterations:#?}");
    assert!(
        iterations[0].starts_with("msg.txt") && iterations[0].contains(" → rebuilt "),
        "{iterations:#?}"
    );

    skiff.interrupt();
    assert!(skiff.wait_exit(LONG).success(), "{}", skiff.output());
    assert_eq!(labelled_containers(&image), Vec::<String>::new());

    // The event log: one JSON object per line; both iterations finished, with timings.
    let text = std::fs::read_to_string(&log).unwrap();
    let finished: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"type\":\"iterationFinished\""))
        .collect();
    assert_eq!(finished.len(), 2, "{text}");
    for line in &finished {
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
        assert!(line.contains("\"totalMs\":"), "{line}");
        assert!(line.contains("\"timestamp\":\""), "{line}");
        assert!(
            line.contains("{\"phase\":\"build\",\"durationMs\":"),
            "{line}"
        );
        assert!(line.contains("\"error\":null"), "{line}");
    }
    assert!(
        finished[1].contains("\"trigger\":\"msg.txt"),
        "{}",
        finished[1]
    );
    assert!(text.contains("\"type\":\"portForwarded\""), "{text}");
    assert!(text.contains("\"type\":\"buildFinished\""), "{text}");
}

#[test]
fn dev_with_manual_trigger_runs_on_post_execute_and_serves_state_and_events() {
    if !docker_available() {
        return;
    }
    let name = unique("hello-manual");
    let image = format!("localhost:5000/{name}");
    let dir = example_copy_rebuilding(&name);
    let _images = EngineImages(format!("localhost:5000/{name}"));
    let mut skiff = Skiff::start(
        dir.path(),
        &[
            "dev",
            "-p",
            "docker",
            "--trigger=manual",
            "--rpc-http-port",
            "0",
        ],
    );
    let api = skiff.wait_line(0, LONG, api_address);
    let address = skiff.wait_line(0, LONG, forwarded_address);
    wait_served(&address, "Hello from skiff!\n", LONG, &skiff);
    skiff.wait_line(0, LONG, |l| l.starts_with("initial → ").then_some(()));

    let (status, state) = http(&api, "GET", "/v2/state", "");
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(iteration_count(&state), 1, "{state}");
    assert!(
        state.contains("\"deployState\":{\"status\":\"Complete\""),
        "{state}"
    );
    assert!(
        state.contains(&format!("\"{image}\":\"Complete\"")),
        "{state}"
    );

    // The event stream: history first, then live events.
    let events = Arc::new(Mutex::new(String::new()));
    {
        let events = Arc::clone(&events);
        let api = api.clone();
        std::thread::spawn(move || {
            let mut stream = TcpStream::connect(&api).unwrap();
            stream
                .write_all(b"GET /v2/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .unwrap();
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                events
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
    }

    // A save in manual mode: nothing happens until asked.
    let mark = skiff.line_count();
    std::fs::write(dir.path().join("www/msg.txt"), "on request\n").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(http_get(&address).as_deref(), Some("Hello from skiff!\n"));
    assert!(iteration_lines(&skiff, mark).is_empty());

    let (status, _) = http(
        &api,
        "POST",
        "/v2/execute",
        r#"{"build": true, "sync": true, "deploy": true}"#,
    );
    assert!(status.contains(" 200 "), "{status}");
    wait_served(&address, "on request\n", LONG, &skiff);
    skiff.wait_line(mark, LONG, |l| {
        l.starts_with("msg.txt → rebuilt").then_some(())
    });
    let (_, state) = http(&api, "GET", "/v2/state", "");
    assert_eq!(iteration_count(&state), 2, "{state}");

    let deadline = Instant::now() + Duration::from_secs(10);
    while events
        .lock()
        .unwrap()
        .matches("\"type\":\"iterationFinished\"")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "/v2/events:\n{}",
            events.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let seen = events.lock().unwrap().clone();
    assert!(
        seen.contains("\"type\":\"iterationStarted\",\"trigger\":\"initial\""),
        "{seen}"
    );
    assert!(seen.contains("\"trigger\":\"msg.txt\""), "{seen}");

    let (status, _) = http(&api, "GET", "/v2/nothing", "");
    assert!(status.contains(" 404 "), "{status}");

    // SIGTERM cleans up like the first Ctrl-C.
    let status = Command::new("kill")
        .args(["-TERM", &skiff.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(skiff.wait_exit(LONG).success(), "{}", skiff.output());
    assert_eq!(labelled_containers(&image), Vec::<String>::new());
}

#[test]
fn dev_on_kubernetes_forwards_services_and_redeploys_a_manifest_without_a_build() {
    if !docker_available() || !kube_available() {
        return;
    }
    let name = unique("hello-ksvc");
    let dir = example_copy_rebuilding(&name);
    let _images = EngineImages(format!("localhost:5000/{name}"));
    let mut skiff = Skiff::start(
        dir.path(),
        &["dev", "--port-forward=services", "--tail=false"],
    );
    let address = skiff.wait_line(0, Duration::from_secs(240), |l| {
        l.starts_with(&format!("Port forwarding service/{name} 8080 "))
            .then(|| forwarded_address(l))
            .flatten()
    });
    wait_served(&address, "Hello from skiff!\n", LONG, &skiff);
    skiff.wait_line(0, LONG, |l| l.starts_with("initial → ").then_some(()));

    // A manifest edit: applied again, nothing rebuilt, still served.
    let mark = skiff.line_count();
    let path = dir.path().join("k8s/deployment.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            "      terminationGracePeriodSeconds: 1",
            "      terminationGracePeriodSeconds: 2",
        ),
    )
    .unwrap();
    let line = skiff.wait_line(mark, LONG, |l| {
        l.starts_with("deployment.yaml → ").then(|| l.to_owned())
    });
    assert!(!line.contains("rebuilt"), "{line}");
    assert!(line.contains("applied 1 object"), "{line}");
    assert!(
        !skiff
            .output()
            .lines()
            .skip(mark)
            .any(|l| l.starts_with("Building [")),
        "{}",
        skiff.output()
    );
    wait_served(&address, "Hello from skiff!\n", LONG, &skiff);

    skiff.interrupt();
    assert!(skiff.wait_exit(LONG).success(), "{}", skiff.output());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !kube_objects(&name).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(kube_objects(&name), Vec::<String>::new());
}

/// The pods of the example's Deployment `name`.
fn kube_pods(name: &str) -> Vec<String> {
    let output = Command::new("kubectl")
        .args(["get", "pods", "-l", &format!("app={name}"), "-o", "name"])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The IDs of the running containers of `image`.
fn running_container_ids(image: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=skiff.dev/image={image}"),
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn dev_on_docker_syncs_a_static_file_into_the_same_container() {
    if !docker_available() {
        return;
    }
    let name = unique("hello-sync");
    let image = format!("localhost:5000/{name}");
    let dir = example_copy(&name);
    let _images = EngineImages(format!("localhost:5000/{name}"));
    let mut skiff = Skiff::start(dir.path(), &["dev", "-p", "docker"]);
    let address = skiff.wait_line(0, LONG, forwarded_address);
    wait_served(&address, "Hello from skiff!\n", LONG, &skiff);
    let before = running_container_ids(&image);
    assert_eq!(before.len(), 1, "{}", skiff.output());

    // A file the sync rule covers: copied into the running container, nothing rebuilt.
    let mark = skiff.line_count();
    std::fs::write(dir.path().join("www/msg.txt"), "synced\n").unwrap();
    wait_served(&address, "synced\n", LONG, &skiff);
    let line = skiff.wait_line(mark, LONG, |l| {
        l.starts_with("msg.txt → ").then(|| l.to_owned())
    });
    assert!(line.contains("synced into 1 container"), "{line}");
    assert!(!skiff.output()[..].contains("msg.txt → rebuilt"));
    assert_eq!(
        running_container_ids(&image),
        before,
        "a new container was created"
    );

    // A source file outside the rules: rebuilt, with the reason.
    let mark = skiff.line_count();
    let source = std::fs::read_to_string(dir.path().join("main.c")).unwrap();
    std::fs::write(
        dir.path().join("main.c"),
        format!("{source}\n/* edited */\n"),
    )
    .unwrap();
    skiff.wait_line(mark, LONG, |l| {
        (l.contains("main.c matches no sync rule")).then_some(())
    });
    skiff.wait_line(mark, LONG, |l| {
        l.starts_with("main.c → rebuilt").then_some(())
    });
    // The rebuilt image holds the synced file too (it was built from the context).
    wait_served(&address, "synced\n", LONG, &skiff);

    skiff.stop(LONG);
    assert_eq!(labelled_containers(&image), Vec::<String>::new());
}

#[test]
fn dev_on_kubernetes_syncs_a_static_file_into_the_same_pod() {
    if !docker_available() || !kube_available() {
        return;
    }
    if !Path::new("/bin/busybox").exists()
        && !missing("/bin/busybox is missing (scripts/devenv/up installs busybox-static)")
    {
        return;
    }
    let name = unique("hello-ksync");
    let dir = example_copy(&name);
    let _images = EngineImages(format!("localhost:5000/{name}"));
    let mut skiff = Skiff::start(dir.path(), &["dev"]);
    let address = skiff.wait_line(0, Duration::from_secs(240), |l| {
        l.starts_with(&format!("Port forwarding service/{name} "))
            .then(|| forwarded_address(l))
            .flatten()
    });
    wait_served(&address, "Hello from skiff!\n", LONG, &skiff);
    let pods = kube_pods(&name);
    assert_eq!(pods.len(), 1, "{pods:?}");

    let mark = skiff.line_count();
    std::fs::write(dir.path().join("www/msg.txt"), "synced into the pod\n").unwrap();
    wait_served(&address, "synced into the pod\n", LONG, &skiff);
    let line = skiff.wait_line(mark, LONG, |l| {
        l.starts_with("msg.txt → ").then(|| l.to_owned())
    });
    assert!(line.contains("synced into 1 container"), "{line}");
    assert_eq!(kube_pods(&name), pods, "the pod was replaced");

    skiff.stop(LONG);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !kube_objects(&name).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(kube_objects(&name), Vec::<String>::new());
}
