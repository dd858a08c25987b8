//! The Docker deployer against the real engine: run, serve, log, redeploy, port conflicts,
//! cleanup, `skiff delete`, ports served by the process (`port_proxy`), and an engine that is
//! not there.
//!
//! Every test uses its own run id and image names and removes what it created, also when it
//! fails. Without an engine the tests are skipped, unless `CI=true`.

#![allow(clippy::unwrap_used)]

#[path = "support/docker_support.rs"]
mod docker_support;

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use docker_support::{
    Leftovers, build_image, build_image_running, build_image_with, container_exists,
    containers_labelled, create_plain_container, docker_host, engine_available, fetch_until,
    forwarded, log_lines, networks_labelled, unique, wait_for_event, warnings,
};
use skiff_deploy::docker::{
    DockerDeployOptions, DockerDeployer, DockerPort, DockerTarget, container_name, delete_labelled,
    network_name,
};
use skiff_deploy::{
    ApplyAction, DeployError, DeployInput, Deployer, MANAGED_BY_LABEL, ManifestSet, RUN_ID_LABEL,
    ResourceRef,
};
use skiff_types::event::{CollectingReporter, Event};
use skiff_types::image::BuiltImage;

fn target() -> DockerTarget {
    DockerTarget {
        docker_host: docker_host(),
    }
}

fn options(run_id: &str, image_name: &str, local_port: Option<u16>) -> DockerDeployOptions {
    DockerDeployOptions {
        run_id: run_id.to_owned(),
        images: vec![image_name.to_owned()],
        ports: vec![DockerPort {
            image: image_name.to_owned(),
            container_port: 8080,
            local_port,
            address: None,
        }],
        stop_grace: Duration::from_secs(1),
        ..DockerDeployOptions::default()
    }
}

async fn deploy(
    deployer: &DockerDeployer,
    images: &[BuiltImage],
    reporter: &CollectingReporter,
) -> Vec<(ResourceRef, ApplyAction)> {
    let manifests = ManifestSet::default();
    let input = DeployInput {
        manifests: &manifests,
        images,
    };
    deployer
        .deploy(&input, reporter)
        .await
        .unwrap_or_else(|e| panic!("deploy failed: {e}"))
        .resources
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn container(name: &str) -> ResourceRef {
    ResourceRef {
        api_version: "docker".into(),
        kind: "Container".into(),
        namespace: None,
        name: name.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_serves_logs_redeploys_and_cleans_up() {
    if !engine_available("runs_serves_logs_redeploys_and_cleans_up").await {
        return;
    }
    let run_id = unique();
    let image_name = format!("skiff-it-{run_id}/web");
    let mut leftovers = Leftovers::for_run(&run_id);
    let v1 = build_image(&image_name, &format!("{image_name}:v1"), "hello-one");
    leftovers.images.push(v1.reference.to_string());
    let v2 = build_image(&image_name, &format!("{image_name}:v2"), "hello-two");
    leftovers.images.push(v2.reference.to_string());
    let port = free_port();

    let deployer = DockerDeployer::connect(target(), options(&run_id, &image_name, Some(port)))
        .await
        .unwrap();
    let reporter = Arc::new(CollectingReporter::default());
    // Following starts before anything runs: containers are picked up as they start.
    let logs = deployer.follow_logs(reporter.clone());

    // First deploy: created, published on 127.0.0.1:<port>, serving the image's BODY.
    let first = container_name(&image_name, &run_id, 1);
    let resources = deploy(&deployer, std::slice::from_ref(&v1), &reporter).await;
    assert_eq!(resources, [(container(&first), ApplyAction::Created)]);
    assert_eq!(forwarded(&reporter, &first), [local(port)]);
    assert_eq!(
        fetch_until(local(port), "hello-one").await.as_deref(),
        Ok("hello-one")
    );
    wait_for_event(&reporter, "start line of the first container", |e| {
        matches!(e, Event::LogLine { pod: None, container, image: Some(image), line }
            if *container == first && *image == image_name
                && line == "listening on port 8080 with body hello-one")
    })
    .await;
    wait_for_event(&reporter, "request line", |e| {
        matches!(e, Event::LogLine { container, line, .. }
            if *container == first && line.starts_with("request 1: GET / HTTP/1.0"))
    })
    .await;

    // The container: labelled, on the run's network with its image basename as alias, the
    // image's env intact, the port bound to loopback only.
    let engine = bollard::Docker::connect_with_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let inspect = engine.inspect_container(&first, None).await.unwrap();
    let config = inspect.config.unwrap();
    let labels = config.labels.unwrap();
    assert_eq!(labels[RUN_ID_LABEL], run_id);
    assert_eq!(labels[MANAGED_BY_LABEL], "skiff");
    assert_eq!(labels["skiff.dev/image"], image_name);
    assert!(
        config.env.unwrap().contains(&"BODY=hello-one".to_owned()),
        "the image's env is kept"
    );
    let networks = inspect.network_settings.unwrap().networks.unwrap();
    let endpoint = &networks[&network_name(&run_id)];
    assert!(
        endpoint
            .aliases
            .as_ref()
            .unwrap()
            .contains(&"web".to_owned()),
        "{endpoint:?}"
    );
    let bindings = inspect.host_config.unwrap().port_bindings.unwrap();
    let binding = &bindings["8080/tcp"].as_ref().unwrap()[0];
    assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        binding.host_port.as_deref(),
        Some(port.to_string().as_str())
    );

    // Redeploy with a new image: the same local port answers with the new body, and the
    // SIGTERM-ignoring old container costs the short grace period, not 10 s.
    let second = container_name(&image_name, &run_id, 2);
    let started = Instant::now();
    let resources = deploy(&deployer, std::slice::from_ref(&v2), &reporter).await;
    let took = started.elapsed();
    assert_eq!(resources, [(container(&second), ApplyAction::Configured)]);
    assert!(
        took < Duration::from_secs(5),
        "redeploy took {took:?}; the old container was not stopped with the short grace"
    );
    assert_eq!(forwarded(&reporter, &second), [local(port)]);
    assert_eq!(
        fetch_until(local(port), "hello-two").await.as_deref(),
        Ok("hello-two")
    );
    assert!(
        !container_exists(&first),
        "the replaced container is removed"
    );
    wait_for_event(&reporter, "start line of the new container", |e| {
        matches!(e, Event::LogLine { container, line, .. }
            if *container == second && line == "listening on port 8080 with body hello-two")
    })
    .await;
    assert!(reporter.events().iter().any(|e| matches!(e,
        Event::Deployed { object, action } if *object == first && action == "deleted")));

    // The same reference again: left running.
    let resources = deploy(&deployer, std::slice::from_ref(&v2), &reporter).await;
    assert_eq!(resources, [(container(&second), ApplyAction::Unchanged)]);
    assert_eq!(
        fetch_until(local(port), "hello-two").await.as_deref(),
        Ok("hello-two")
    );
    wait_for_event(&reporter, "second request line of the new container", |e| {
        matches!(e, Event::LogLine { container, line, .. }
            if *container == second && line.starts_with("request 2:"))
    })
    .await;

    // Every line once: request lines are numbered, so no two lines of a container are equal.
    let lines = log_lines(&reporter);
    let distinct: HashSet<_> = lines.iter().collect();
    assert_eq!(
        distinct.len(),
        lines.len(),
        "a line was reported twice: {lines:#?}"
    );
    assert!(lines.contains(&(first.clone(), "ready (stderr)".to_owned())));

    // Cleanup: nothing labelled with the run id is left.
    deployer.cleanup(&*reporter).await.unwrap();
    logs.stop();
    let label = format!("{RUN_ID_LABEL}={run_id}");
    assert_eq!(containers_labelled(&label), Vec::<String>::new());
    assert_eq!(networks_labelled(&label), Vec::<String>::new());
    assert!(reporter.events().iter().any(|e| matches!(e,
        Event::Deployed { object, action } if *object == second && action == "deleted")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_port_moves_to_the_next_free_one_with_a_warning() {
    if !engine_available("taken_port_moves_to_the_next_free_one_with_a_warning").await {
        return;
    }
    let run_id = unique();
    let image_name = format!("skiff-it-{run_id}/api");
    let mut leftovers = Leftovers::for_run(&run_id);
    let image = build_image(&image_name, &format!("{image_name}:v1"), "from-api");
    leftovers.images.push(image.reference.to_string());
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let wanted = taken.local_addr().unwrap().port();

    let mut options = options(&run_id, &image_name, Some(wanted));
    // An image that this iteration did not build: warned about, not an error.
    options.images.push(format!("skiff-it-{run_id}/not-built"));
    let deployer = DockerDeployer::connect(target(), options).await.unwrap();
    let reporter = Arc::new(CollectingReporter::default());
    let name = container_name(&image_name, &run_id, 1);
    deploy(&deployer, std::slice::from_ref(&image), &reporter).await;

    let used = forwarded(&reporter, &name);
    assert_eq!(used.len(), 1, "{:#?}", reporter.events());
    let used = used[0];
    assert_ne!(used.port(), wanted);
    assert_eq!(used.ip().to_string(), "127.0.0.1");
    let warnings = warnings(&reporter);
    assert!(
        warnings.iter().any(|w| w.contains(&format!("port {wanted} "))
            && w.contains(&used.port().to_string())),
        "no warning naming {wanted} and {}: {warnings:#?}",
        used.port()
    );
    assert!(
        warnings.iter().any(|w| w.contains("not-built")),
        "{warnings:#?}"
    );
    assert_eq!(
        fetch_until(used, "from-api").await.as_deref(),
        Ok("from-api")
    );

    // Following after the container started still gets its first lines; a second follower
    // takes over without repeating them.
    let logs = deployer.follow_logs(reporter.clone());
    wait_for_event(
        &reporter,
        "start line",
        |e| matches!(e, Event::LogLine { line, .. } if line.starts_with("listening on port 8080")),
    )
    .await;
    let again = deployer.follow_logs(reporter.clone());
    drop(logs);
    assert_eq!(
        fetch_until(used, "from-api").await.as_deref(),
        Ok("from-api")
    );
    wait_for_event(
        &reporter,
        "request 2",
        |e| matches!(e, Event::LogLine { line, .. } if line.starts_with("request 2:")),
    )
    .await;
    let lines = log_lines(&reporter);
    let distinct: HashSet<_> = lines.iter().collect();
    assert_eq!(
        distinct.len(),
        lines.len(),
        "a line was reported twice: {lines:#?}"
    );
    again.stop();

    deployer.cleanup(&*reporter).await.unwrap();
    drop(taken);
    assert_eq!(
        containers_labelled(&format!("{RUN_ID_LABEL}={run_id}")),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_redeploy_keeps_the_old_container_serving() {
    if !engine_available("failed_redeploy_keeps_the_old_container_serving").await {
        return;
    }
    let run_id = unique();
    let image_name = format!("skiff-it-{run_id}/web");
    let mut leftovers = Leftovers::for_run(&run_id);
    let good = build_image(&image_name, &format!("{image_name}:good"), "still-here");
    leftovers.images.push(good.reference.to_string());
    let broken = build_image_running(
        &image_name,
        &format!("{image_name}:broken"),
        "never",
        "/missing",
    );
    leftovers.images.push(broken.reference.to_string());
    let port = free_port();
    let deployer = DockerDeployer::connect(target(), options(&run_id, &image_name, Some(port)))
        .await
        .unwrap();
    let reporter = Arc::new(CollectingReporter::default());
    let logs = deployer.follow_logs(reporter.clone());
    let first = container_name(&image_name, &run_id, 1);
    deploy(&deployer, std::slice::from_ref(&good), &reporter).await;
    assert_eq!(
        fetch_until(local(port), "still-here").await.as_deref(),
        Ok("still-here")
    );

    // The new container cannot start: the error says so, the old one serves again on the
    // same port, and the failed one is gone.
    let manifests = ManifestSet::default();
    let input = DeployInput {
        manifests: &manifests,
        images: std::slice::from_ref(&broken),
    };
    let error = deployer.deploy(&input, &*reporter).await.unwrap_err();
    assert!(error.to_string().contains("/missing"), "{error}");
    assert!(container_exists(&first));
    assert!(!container_exists(&container_name(&image_name, &run_id, 2)));
    assert_eq!(
        fetch_until(local(port), "still-here").await.as_deref(),
        Ok("still-here")
    );
    let containers = deployer.containers().await;
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].name, first);

    // The restarted container's logs are followed again, without repeating earlier lines:
    // each process start printed one start line and served one `request 1`.
    let count = |prefix: &str| {
        log_lines(&reporter)
            .iter()
            .filter(|(container, line)| *container == first && line.starts_with(prefix))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while count("listening on port 8080 with body still-here") < 2 || count("request 1:") < 2 {
        assert!(Instant::now() < deadline, "{:#?}", log_lines(&reporter));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count("listening on port"), 2, "{:#?}", log_lines(&reporter));
    assert_eq!(count("request 1:"), 2, "{:#?}", log_lines(&reporter));
    assert_eq!(count("ready (stderr)"), 2, "{:#?}", log_lines(&reporter));

    // A later good deploy still works.
    let resources = deploy(&deployer, std::slice::from_ref(&good), &reporter).await;
    assert_eq!(resources, [(container(&first), ApplyAction::Unchanged)]);
    deployer.cleanup(&*reporter).await.unwrap();
    logs.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_never_touches_a_same_named_container_without_skiffs_labels() {
    if !engine_available("delete_never_touches_a_same_named_container_without_skiffs_labels").await
    {
        return;
    }
    let run_id = unique();
    let image_name = format!("skiff-it-{run_id}/worker");
    let mut leftovers = Leftovers::for_run(&run_id);
    let image = build_image(&image_name, &format!("{image_name}:v1"), "worker");
    leftovers.images.push(image.reference.to_string());
    let name = container_name(&image_name, &run_id, 1);
    leftovers.containers.push(name.clone());
    let reporter = CollectingReporter::default();

    // `skiff delete` for the run removes its container and network …
    let mut options = options(&run_id, &image_name, None);
    options.ports.clear();
    let deployer = DockerDeployer::connect(target(), options.clone())
        .await
        .unwrap();
    deploy(&deployer, std::slice::from_ref(&image), &reporter).await;
    assert!(container_exists(&name));
    let removed = delete_labelled(docker_host().as_deref(), Some(&run_id))
        .await
        .unwrap();
    let mut removed: Vec<_> = removed
        .into_iter()
        .map(|r| format!("{}:{}", r.kind, r.name))
        .collect();
    removed.sort();
    assert_eq!(
        removed,
        [
            format!("Container:{name}"),
            format!("Network:{}", network_name(&run_id))
        ]
    );
    assert!(!container_exists(&name));

    // … but a container of the same name without skiff's labels (here: the run id without
    // the managed-by label) survives it …
    create_plain_container(
        &name,
        &image.reference.to_string(),
        &[&format!("{RUN_ID_LABEL}={run_id}")],
    );
    // Nor does a Kubernetes pod's sandbox container that carries the pod's skiff labels
    // (dockershim copies them), nor one with skiff's labels but not started by this deployer.
    let sandbox = format!("k8s_POD_web-{run_id}");
    let foreign = format!("skiff-foreign-{run_id}");
    leftovers
        .containers
        .extend([sandbox.clone(), foreign.clone()]);
    let run_label = format!("{RUN_ID_LABEL}={run_id}");
    let managed = format!("{MANAGED_BY_LABEL}=skiff");
    create_plain_container(
        &sandbox,
        &image.reference.to_string(),
        &[
            &run_label,
            &managed,
            "skiff.dev/image=web",
            "io.kubernetes.docker.type=podsandbox",
            "io.kubernetes.pod.uid=0000",
        ],
    );
    create_plain_container(
        &foreign,
        &image.reference.to_string(),
        &[&run_label, &managed],
    );
    let removed = delete_labelled(docker_host().as_deref(), Some(&run_id))
        .await
        .unwrap();
    assert_eq!(removed, []);
    for survivor in [&name, &sandbox, &foreign] {
        assert!(container_exists(survivor), "{survivor} was removed");
    }

    // … and a deployer of the run refuses to replace it.
    let deployer = DockerDeployer::connect(target(), options).await.unwrap();
    let manifests = ManifestSet::default();
    let input = DeployInput {
        manifests: &manifests,
        images: std::slice::from_ref(&image),
    };
    let error = deployer.deploy(&input, &reporter).await.unwrap_err();
    assert!(
        matches!(&error, DeployError::Docker { message, .. } if message.contains("leaves it alone")),
        "{error}"
    );
    assert!(container_exists(&name));
    deployer.cleanup(&reporter).await.unwrap();
    assert!(
        container_exists(&name),
        "cleanup removed a container it does not own"
    );
}

/// An image the engine lacks — built elsewhere and pushed, as the daemonless builder does — is
/// pulled from its registry, by digest, and the container runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)] // the skip is said the way `engine_available` says it
async fn image_missing_from_the_engine_is_pulled_from_its_registry() {
    let test = "image_missing_from_the_engine_is_pulled_from_its_registry";
    if !engine_available(test).await {
        return;
    }
    let Some(registry) = std::env::var("SKIFF_TEST_REGISTRY")
        .ok()
        .filter(|r| !r.is_empty())
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: CI=true requires SKIFF_TEST_REGISTRY (`scripts/devenv/up registry`)"
        );
        eprintln!("skipping {test}: SKIFF_TEST_REGISTRY is not set");
        return;
    };
    let run_id = unique();
    let image_name = format!("{registry}/skiff-it-{run_id}/pulled");
    let tagged = format!("{image_name}:v1");
    let mut leftovers = Leftovers::for_run(&run_id);
    let built = build_image(&image_name, &tagged, "hello-pulled");
    leftovers.images.push(tagged.clone());
    let docker = |args: &[&str]| {
        let output = std::process::Command::new("docker")
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    docker(&["push", &tagged]);
    let pushed = docker(&[
        "image",
        "inspect",
        "--format",
        "{{index .RepoDigests 0}}",
        &tagged,
    ]);
    let (_, digest) = pushed.split_once('@').unwrap();
    // Gone from the engine: by name and by ID.
    docker(&["rmi", "--no-prune", &tagged]);
    leftovers.images.push(pushed.clone());
    let image = BuiltImage {
        reference: format!("{tagged}@{digest}").parse().unwrap(),
        ..built
    };

    let port = free_port();
    let deployer = DockerDeployer::connect(target(), options(&run_id, &image_name, Some(port)))
        .await
        .unwrap();
    let reporter = CollectingReporter::default();
    let resources = deploy(&deployer, std::slice::from_ref(&image), &reporter).await;
    assert_eq!(resources.len(), 1, "{resources:?}");
    assert_eq!(
        fetch_until(local(port), "hello-pulled").await.as_deref(),
        Ok("hello-pulled")
    );
    deployer.cleanup(&reporter).await.unwrap();
}

#[tokio::test]
async fn engine_down_is_engine_unavailable() {
    for host in ["unix:///nonexistent.sock", "tcp://127.0.0.1:1"] {
        let target = DockerTarget {
            docker_host: Some(host.to_owned()),
        };
        let options = DockerDeployOptions {
            run_id: "engine-down".into(),
            images: vec!["web".into()],
            ..Default::default()
        };
        let error = DockerDeployer::connect(target, options).await.unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(&error, DeployError::EngineUnavailable { endpoint, .. } if endpoint == host),
            "{host}: {error:?}"
        );
        assert!(message.contains(host), "{message}");
        assert!(message.contains("start the engine"), "{message}");

        let error = delete_labelled(Some(host), Some("engine-down"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, DeployError::EngineUnavailable { .. }),
            "{error:?}"
        );
    }
}

#[tokio::test]
async fn compose_is_refused_with_a_clear_error() {
    let options = DockerDeployOptions {
        run_id: "compose".into(),
        use_compose: true,
        ..Default::default()
    };
    let error = DockerDeployer::connect(target(), options)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("skiff does not run Docker Compose"),
        "{error}"
    );
}

/// Asks `address` every few milliseconds until `stop` is set; returns every answer body, in
/// order, and the number of requests that got none (refused, reset, empty).
async fn poll(
    address: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Vec<String>, usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut answers = Vec::new();
    let mut failed = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let answer = async {
            let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
            stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.ok()?;
            let mut text = String::new();
            stream.read_to_string(&mut text).await.ok()?;
            let body = text.split("\r\n\r\n").nth(1)?.to_owned();
            (!body.is_empty()).then_some(body)
        };
        match tokio::time::timeout(Duration::from_secs(5), answer).await {
            Ok(Some(body)) => {
                if answers.last() != Some(&body) {
                    answers.push(body);
                }
            }
            _ => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (answers, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_the_port_proxy_a_replacement_takes_over_without_a_refused_request() {
    if !engine_available("behind_the_port_proxy_a_replacement_takes_over_without_a_refused_request")
        .await
    {
        return;
    }
    let run_id = unique();
    let image_name = format!("skiff-it-{run_id}/web");
    let mut leftovers = Leftovers::for_run(&run_id);
    let v1 = build_image(&image_name, &format!("{image_name}:v1"), "proxied-one");
    leftovers.images.push(v1.reference.to_string());
    // Slow to start: listens two seconds after it starts.
    let v2 = build_image_with(
        &image_name,
        &format!("{image_name}:v2"),
        "proxied-two",
        "/server",
        "DELAY=2",
    );
    leftovers.images.push(v2.reference.to_string());
    let exits = build_image_with(
        &image_name,
        &format!("{image_name}:exits"),
        "x",
        "/server",
        "EXIT=3",
    );
    leftovers.images.push(exits.reference.to_string());
    let never = build_image_with(
        &image_name,
        &format!("{image_name}:never"),
        "never",
        "/server",
        "DELAY=3600",
    );
    leftovers.images.push(never.reference.to_string());
    let port = free_port();
    let mut options = options(&run_id, &image_name, Some(port));
    options.port_proxy = true;
    options.ready_timeout = Duration::from_secs(4);
    let deployer = DockerDeployer::connect(target(), options).await.unwrap();
    let reporter = Arc::new(CollectingReporter::default());

    let first = container_name(&image_name, &run_id, 1);
    let resources = deploy(&deployer, std::slice::from_ref(&v1), &reporter).await;
    assert_eq!(resources, [(container(&first), ApplyAction::Created)]);
    assert_eq!(forwarded(&reporter, &first), [local(port)]);
    assert_eq!(
        fetch_until(local(port), "proxied-one").await.as_deref(),
        Ok("proxied-one")
    );
    // The container itself publishes only an ephemeral loopback port; the user's port is
    // this process's.
    let engine = bollard::Docker::connect_with_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let inspect = engine.inspect_container(&first, None).await.unwrap();
    let published = inspect.network_settings.unwrap().ports.unwrap();
    let binding = &published["8080/tcp"].as_ref().unwrap()[0];
    assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
    assert_ne!(
        binding.host_port.as_deref(),
        Some(port.to_string().as_str())
    );

    // A replacement that listens only after 2 s: every request during the swap is answered,
    // first by the old container, then by the new one, never refused.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let polling = tokio::spawn(poll(local(port), Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = container_name(&image_name, &run_id, 2);
    let resources = deploy(&deployer, std::slice::from_ref(&v2), &reporter).await;
    assert_eq!(resources, [(container(&second), ApplyAction::Configured)]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (answers, failed) = polling.await.unwrap();
    assert_eq!(answers, ["proxied-one", "proxied-two"]);
    assert_eq!(failed, 0, "requests refused during the swap");
    assert_eq!(forwarded(&reporter, &second), [local(port)]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while container_exists(&first) {
        assert!(
            Instant::now() < deadline,
            "the replaced container is removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A replacement that exits, and one that never listens: each is an error naming why,
    // removed, and the current container goes on serving.
    for (broken, why) in [
        (&exits, "exited (code 3)"),
        (&never, "did not accept connections"),
    ] {
        let manifests = ManifestSet::default();
        let input = DeployInput {
            manifests: &manifests,
            images: std::slice::from_ref(broken),
        };
        let error = deployer.deploy(&input, &*reporter).await.unwrap_err();
        assert!(error.to_string().contains(why), "{error}");
        assert!(
            error
                .to_string()
                .contains("previous container keeps serving"),
            "{error}"
        );
        assert_eq!(
            fetch_until(local(port), "proxied-two").await.as_deref(),
            Ok("proxied-two")
        );
        let containers = deployer.containers().await;
        assert_eq!(containers.len(), 1);
        assert_eq!(containers[0].name, second);
    }

    // Cleanup: the containers are gone and so is the port.
    deployer.cleanup(&*reporter).await.unwrap();
    let label = format!("{RUN_ID_LABEL}={run_id}");
    assert_eq!(containers_labelled(&label), Vec::<String>::new());
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpListener::bind(local(port)).is_err() {
        assert!(Instant::now() < deadline, "the port is free again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
