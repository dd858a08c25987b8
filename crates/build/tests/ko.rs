//! `ko:` artifacts against the real Docker engine and registry: a tiny Go HTTP server is built
//! with `go build`, put on `scratch` at `/ko-app/<name>`, loaded into the engine, run and asked
//! over HTTP; pushed twice it keeps its digest. Without Go, the engine or the registry these
//! tests skip locally and fail in CI.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::RemoveContainerOptions;
use skiff_build::artifact::{BuilderSpec, KoSpec};
use skiff_build::oci::DaemonlessBuilder;
use skiff_build::{ArtifactSpec, BuildError, BuildRequest, Builder};
use skiff_types::event::NullReporter;
use support::{Cleanup, require_engine, require_registry, unique};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ko-hello")
}

/// The Go environment: the PATH, and writable caches; nothing is fetched.
fn go_env(scratch: &Path) -> Option<BTreeMap<String, String>> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).any(|d| d.join("go").is_file());
    if !found {
        support::missing("Go (golang-go)", "`go` is not on the PATH");
        return None;
    }
    Some(BTreeMap::from([
        ("PATH".to_owned(), path),
        ("HOME".to_owned(), scratch.display().to_string()),
        (
            "GOCACHE".to_owned(),
            scratch.join("cache").display().to_string(),
        ),
        (
            "GOPATH".to_owned(),
            scratch.join("gopath").display().to_string(),
        ),
        ("GOPROXY".to_owned(), "off".to_owned()),
    ]))
}

fn ko_artifact(image: &str, context: &Path, spec: KoSpec) -> ArtifactSpec {
    ArtifactSpec {
        image: image.to_owned(),
        context: context.to_path_buf(),
        builder: BuilderSpec::Ko(spec),
        requires: vec![],
        platforms: vec![],
    }
}

fn request<'a>(
    artifact: &'a ArtifactSpec,
    tag: &str,
    push: bool,
    env: &'a BTreeMap<String, String>,
) -> BuildRequest<'a> {
    BuildRequest {
        artifact,
        tag: tag.parse().unwrap(),
        push,
        required: BTreeMap::new(),
        env,
    }
}

fn spec() -> KoSpec {
    KoSpec {
        dir: ".".into(),
        main: ".".into(),
        ldflags: vec![
            "-s".into(),
            "-w".into(),
            "-X main.greeting=hello-from-ldflags".into(),
        ],
        labels: BTreeMap::from([("org.example.built-by".to_owned(), "skiff-ko".to_owned())]),
        ..KoSpec::default()
    }
}

fn get(port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text)
}

#[tokio::test]
async fn ko_server_builds_runs_and_answers() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let Some(env) = go_env(scratch.path()) else {
        return;
    };
    let name = unique("ko-server");
    let tag = format!("{name}:v1");
    let mut cleanup = Cleanup::new();
    cleanup.image(&tag);
    let artifact = ko_artifact(&name, &fixture(), spec());
    let builder = DaemonlessBuilder::new(Some(Arc::new(engine.clone())), &[], None).unwrap();
    let built = builder
        .build(&request(&artifact, &tag, false, &env), &NullReporter)
        .await
        .unwrap();
    assert_eq!(engine.image_id(&tag).await.unwrap(), built.image_id);

    let inspect = engine.client().inspect_image(&tag).await.unwrap();
    let config = inspect.config.unwrap();
    assert_eq!(config.entrypoint, Some(vec!["/ko-app/ko-hello".to_owned()]));
    let env_vars = config.env.unwrap_or_default();
    assert!(
        env_vars.contains(&"KO_DATA_PATH=/var/run/ko".to_owned()),
        "{env_vars:?}"
    );
    assert!(
        env_vars
            .iter()
            .any(|e| e.starts_with("PATH=") && e.ends_with(":/ko-app")),
        "{env_vars:?}"
    );
    assert_eq!(
        config
            .labels
            .unwrap_or_default()
            .get("org.example.built-by")
            .map(String::as_str),
        Some("skiff-ko")
    );

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let docker = engine.client();
    let created = docker
        .create_container(
            None,
            ContainerCreateBody {
                image: Some(tag.clone()),
                exposed_ports: Some(vec!["8080/tcp".to_owned()]),
                host_config: Some(HostConfig {
                    port_bindings: Some(HashMap::from([(
                        "8080/tcp".to_owned(),
                        Some(vec![PortBinding {
                            host_ip: Some("127.0.0.1".into()),
                            host_port: Some(port.to_string()),
                        }]),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    docker.start_container(&created.id, None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut answer = Err(std::io::Error::other("not asked yet"));
    while Instant::now() < deadline {
        answer = get(port);
        if answer.as_ref().is_ok_and(|a| a.contains("200 OK")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    docker
        .remove_container(
            &created.id,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    let answer = answer.unwrap();
    assert!(
        answer.contains("hello-from-ldflags; motd=from kodata"),
        "{answer}"
    );
}

#[tokio::test]
async fn ko_image_pushes_with_a_stable_digest() {
    let Some(registry) = require_registry() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let Some(env) = go_env(scratch.path()) else {
        return;
    };
    let name = format!("{registry}/{}", unique("ko-push"));
    let artifact = ko_artifact(&name, &fixture(), spec());
    let builder = DaemonlessBuilder::new(None, &[], None).unwrap();
    let first = builder
        .build(
            &request(&artifact, &format!("{name}:a"), true, &env),
            &NullReporter,
        )
        .await
        .unwrap();
    // A fresh builder, another tag: the same Go sources give the same image.
    let again = DaemonlessBuilder::new(None, &[], None).unwrap();
    let second = again
        .build(
            &request(&artifact, &format!("{name}:b"), true, &env),
            &NullReporter,
        )
        .await
        .unwrap();
    assert_eq!(first.reference.digest(), second.reference.digest());
    assert!(first.reference.digest().is_some());
}

#[tokio::test]
async fn go_build_failures_are_reported_with_the_compiler_output() {
    let scratch = tempfile::tempdir().unwrap();
    let Some(env) = go_env(scratch.path()) else {
        return;
    };
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("go.mod"),
        "module example.com/broken\n\ngo 1.19\n",
    )
    .unwrap();
    std::fs::write(
        context.path().join("main.go"),
        "package main\n\nfunc main() { undefinedThing() }\n",
    )
    .unwrap();
    let artifact = ko_artifact("broken", context.path(), KoSpec::default());
    let builder = DaemonlessBuilder::new(None, &[], None).unwrap();
    let error = builder
        .build(&request(&artifact, "broken:1", false, &env), &NullReporter)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, BuildError::Failed { .. }), "{error:?}");
    assert!(
        text.contains("undefinedThing") && text.contains("go build"),
        "{text}"
    );
}
