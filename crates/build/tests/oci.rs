//! The daemonless image path against the real registry (`SKIFF_TEST_REGISTRY`) and Docker
//! engine (`DOCKER_HOST`): assembling, pushing (only missing blobs), pulling and running,
//! loading into the engine, equivalence with Docker's own build of a no-`RUN` Dockerfile,
//! basic auth, and the errors of bad bases, unreachable and refusing registries.
//! Without the parts these tests skip locally and fail in CI.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateImageOptions, RemoveContainerOptions};
use futures_util::StreamExt;
use skiff_build::artifact::DockerSpec;
use skiff_build::credentials::DockerConfig;
use skiff_build::docker::{DockerBuilder, DockerEngine};
use skiff_build::oci::DaemonlessBuilder;
use skiff_build::oci::deliver;
use skiff_build::{BuildError, BuildRequest, Builder};
use skiff_types::event::NullReporter;
use support::{Cleanup, docker_artifact, require_engine, require_registry, unique, write_files};

const HELLO_DOCKERFILE: &str =
    "FROM scratch\nCOPY hello /hello\nCOPY msg.txt /msg.txt\nENTRYPOINT [\"/hello\"]\n";

fn env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn request<'a>(
    artifact: &'a skiff_build::ArtifactSpec,
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

/// A context with the static hello binary, `msg.txt` and [`HELLO_DOCKERFILE`].
fn hello_context(dir: &Path, message: &str) -> bool {
    let Some(hello) = support::hello_binary() else {
        return false;
    };
    write_files(
        dir,
        &[("Dockerfile", HELLO_DOCKERFILE), ("msg.txt", message)],
    );
    support::copy_binary(&hello, dir, "hello");
    true
}

// ---------------------------------------------------------------------------------------------
// A recording proxy in front of the registry: one request per connection, each logged as
// `METHOD path`.

struct RecordingProxy {
    address: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    fn start(upstream: &str) -> RecordingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let upstream = upstream.to_owned();
        let shared = Arc::clone(&log);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let upstream = upstream.clone();
                let log = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = proxy_one(client, &upstream, &log);
                });
            }
        });
        RecordingProxy { address, log }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

fn read_head(stream: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut byte = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buffer.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buffer).into_owned(), rest));
        }
        let n = stream.read(&mut byte)?;
        if n == 0 {
            return Err(std::io::Error::other("closed before the head ended"));
        }
        buffer.extend_from_slice(&byte[..n]);
    }
}

fn without_connection_header(head: &str) -> String {
    let mut lines: Vec<&str> = head
        .trim_end()
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

fn proxy_one(
    mut client: TcpStream,
    upstream: &str,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (head, mut body) = read_head(&mut client)?;
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while body.len() < length {
        let mut chunk = vec![0u8; 65536];
        let n = client.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    log.lock().unwrap().push(format!("{method} {path}"));
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(without_connection_header(&head).as_bytes())?;
    server.write_all(&body)?;
    let mut response = Vec::new();
    server.read_to_end(&mut response)?;
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |e| e + 4);
    let head = String::from_utf8_lossy(&response[..end]).into_owned();
    // The registry builds its Location URLs from the Host header, which names the proxy.
    let head = without_connection_header(&head);
    client.write_all(head.as_bytes())?;
    client.write_all(&response[end..])?;
    client.flush()
}

fn uploads(log: &[String]) -> Vec<&String> {
    log.iter()
        .filter(|l| l.starts_with("PUT ") && l.contains("/blobs/uploads/"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Helpers for the engine.

async fn pull(engine: &DockerEngine, reference: &str) {
    let (image, tag) = reference.rsplit_once(':').unwrap();
    let mut stream = engine.client().create_image(
        Some(CreateImageOptions {
            from_image: Some(image.to_owned()),
            tag: Some(tag.to_owned()),
            ..Default::default()
        }),
        None,
        None,
    );
    while let Some(item) = stream.next().await {
        item.unwrap_or_else(|e| panic!("docker pull {reference}: {e}"));
    }
}

/// Every entry of a container made from `image`, as `path type mode uid:gid size [target]`.
async fn filesystem(engine: &DockerEngine, image: &str) -> Vec<String> {
    let docker = engine.client();
    let created = docker
        .create_container(
            None,
            ContainerCreateBody {
                image: Some(image.to_owned()),
                cmd: Some(vec!["/none".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut stream = docker.export_container(&created.id);
    let mut tar = Vec::new();
    while let Some(chunk) = stream.next().await {
        tar.extend_from_slice(&chunk.unwrap());
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
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        let path = entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_owned();
        let target = entry
            .link_name()
            .unwrap()
            .map(|l| format!(" -> {}", l.to_string_lossy()))
            .unwrap_or_default();
        out.push(format!(
            "{path} {:?} {:o} {}:{} {}{target}",
            header.entry_type(),
            header.mode().unwrap() & 0o7777,
            header.uid().unwrap(),
            header.gid().unwrap(),
            header.size().unwrap(),
        ));
    }
    out.sort();
    out
}

/// The runtime settings Docker reports for `image`, as comparable text.
async fn runtime_settings(engine: &DockerEngine, image: &str) -> String {
    let inspect = engine.client().inspect_image(image).await.unwrap();
    let config = inspect.config.unwrap();
    let mut ports: Vec<String> = config.exposed_ports.unwrap_or_default();
    ports.sort();
    let mut env = config.env.unwrap_or_default();
    env.sort();
    let labels: BTreeMap<String, String> = config.labels.unwrap_or_default().into_iter().collect();
    let mut volumes: Vec<String> = config.volumes.unwrap_or_default();
    volumes.sort();
    format!(
        "entrypoint={:?}\ncmd={:?}\nenv={env:?}\nworkdir={:?}\nuser={:?}\nports={ports:?}\nlabels={labels:?}\nvolumes={volumes:?}\nstopsignal={:?}\nos={:?} arch={:?}",
        config.entrypoint,
        config.cmd,
        config.working_dir.unwrap_or_default(),
        config.user.unwrap_or_default(),
        config.stop_signal,
        inspect.os,
        inspect.architecture,
    )
}

fn daemonless(engine: Option<DockerEngine>) -> DaemonlessBuilder {
    DaemonlessBuilder::new(engine.map(Arc::new), &[], None).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn scratch_image_pushed_pulled_and_run() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let Some(registry) = require_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    if !hello_context(dir.path(), "pushed without docker build\n") {
        return;
    }
    let name = format!("{registry}/{}", unique("oci-push"));
    let tag = format!("{name}:v1");
    let mut cleanup = Cleanup::new();
    cleanup.image(&tag);
    let artifact = docker_artifact(&name, dir.path(), DockerSpec::default());
    let env = env();
    // No engine: the image is assembled and pushed without it.
    let builder = daemonless(None);
    let built = builder
        .build(&request(&artifact, &tag, true, &env), &NullReporter)
        .await
        .unwrap();
    let digest = built.reference.digest().unwrap().to_owned();
    assert!(digest.starts_with("sha256:"), "{}", built.reference);
    assert_eq!(
        engine.image_id(&tag).await.unwrap(),
        None,
        "nothing went through the engine"
    );

    pull(&engine, &tag).await;
    let (status, output) = support::run_image(&engine, &tag).await;
    assert_eq!(status, 0, "{output}");
    assert!(output.contains("skiff-hello-marker"), "{output}");
    assert!(output.contains("pushed without docker build"), "{output}");
    // The engine's image ID is the config digest skiff computed.
    assert_eq!(engine.image_id(&tag).await.unwrap(), built.image_id);
}

#[tokio::test]
async fn second_push_uploads_nothing_and_one_changed_file_uploads_one_layer() {
    let Some(registry) = require_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    if !hello_context(dir.path(), "first\n") {
        return;
    }
    let proxy = RecordingProxy::start(&registry);
    let name = format!("{}/{}", proxy.address, unique("oci-twice"));
    let artifact = docker_artifact(&name, dir.path(), DockerSpec::default());
    let env = env();
    let builder = daemonless(None);
    let tag = format!("{name}:v1");
    let images = builder
        .assemble(&request(&artifact, &tag, true, &env))
        .await
        .unwrap();
    let first = deliver::push(builder.client(), &images, &tag.parse().unwrap())
        .await
        .unwrap();
    let log = proxy.take();
    // Two layers (hello, msg.txt) and the config.
    assert_eq!(first.uploaded.len(), 3, "{first:?}");
    assert_eq!(uploads(&log).len(), 3, "{log:#?}");

    // The same image again: every blob is checked with HEAD, none is uploaded.
    let again = builder
        .assemble(&request(&artifact, &tag, true, &env))
        .await
        .unwrap();
    let second = deliver::push(builder.client(), &again, &tag.parse().unwrap())
        .await
        .unwrap();
    let log = proxy.take();
    assert_eq!(second.digest, first.digest);
    assert!(second.uploaded.is_empty(), "{second:?}");
    assert_eq!(second.existed.len(), 3);
    assert!(uploads(&log).is_empty(), "{log:#?}");
    assert!(!log.iter().any(|l| l.starts_with("POST ")), "{log:#?}");
    assert_eq!(
        log.iter().filter(|l| l.starts_with("HEAD ")).count(),
        3,
        "{log:#?}"
    );

    // One file changed: its layer, the config and the manifest are sent, nothing else.
    std::fs::write(dir.path().join("msg.txt"), "second\n").unwrap();
    let tag2 = format!("{name}:v2");
    let changed = builder
        .assemble(&request(&artifact, &tag2, true, &env))
        .await
        .unwrap();
    assert_eq!(
        changed[0].layers[0], images[0].layers[0],
        "the unchanged layer is rebuilt identically"
    );
    assert_ne!(changed[0].layers[1].digest, images[0].layers[1].digest);
    let third = deliver::push(builder.client(), &changed, &tag2.parse().unwrap())
        .await
        .unwrap();
    let log = proxy.take();
    assert_eq!(
        third.uploaded,
        vec![
            changed[0].layers[1].digest.clone(),
            changed[0].id().unwrap()
        ],
        "{third:?}"
    );
    assert_eq!(uploads(&log).len(), 2, "{log:#?}");
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("PUT ") && l.contains("/manifests/"))
            .count(),
        1,
        "{log:#?}"
    );
}

#[tokio::test]
async fn digests_are_stable_across_builds() {
    let dir = tempfile::tempdir().unwrap();
    if !hello_context(dir.path(), "stable\n") {
        return;
    }
    write_files(
        dir.path(),
        &[
            (
                "Dockerfile",
                "FROM scratch\nENV B=2 A=1\nLABEL z=1 a=2 m=3\nEXPOSE 8080 53/udp 443\nWORKDIR /srv/app\nCOPY . .\nCMD [\"/srv/app/hello\"]\n",
            ),
            ("sub/deep/file.txt", "deep\n"),
        ],
    );
    let env = env();
    let artifact = docker_artifact("stable", dir.path(), DockerSpec::default());
    let first = daemonless(None)
        .assemble(&request(&artifact, "stable:1", false, &env))
        .await
        .unwrap();
    // Touch every file: modification times must not matter.
    std::thread::sleep(Duration::from_millis(1100));
    for file in ["hello", "msg.txt", "sub/deep/file.txt"] {
        let text = std::fs::read(dir.path().join(file)).unwrap();
        std::fs::write(dir.path().join(file), text).unwrap();
    }
    let second = daemonless(None)
        .assemble(&request(&artifact, "stable:2", false, &env))
        .await
        .unwrap();
    assert_eq!(
        first[0].manifest_document().unwrap().digest,
        second[0].manifest_document().unwrap().digest
    );
    assert_eq!(first[0].id().unwrap(), second[0].id().unwrap());
}

#[tokio::test]
async fn loaded_into_the_engine_and_reloaded_after_a_change() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    if !hello_context(dir.path(), "loaded one\n") {
        return;
    }
    let name = unique("oci-load");
    let mut cleanup = Cleanup::new();
    let env = env();
    let artifact = docker_artifact(&name, dir.path(), DockerSpec::default());
    let builder = daemonless(Some(engine.clone()));
    let tag1 = format!("{name}:one");
    cleanup.image(&tag1);
    let built = builder
        .build(&request(&artifact, &tag1, false, &env), &NullReporter)
        .await
        .unwrap();
    assert_eq!(engine.image_id(&tag1).await.unwrap(), built.image_id);
    let (status, output) = support::run_image(&engine, &tag1).await;
    assert_eq!(status, 0, "{output}");
    assert!(output.contains("loaded one"), "{output}");

    // The second load sends only the changed layer (the engine has the binary's layer).
    std::fs::write(dir.path().join("msg.txt"), "loaded two\n").unwrap();
    let tag2 = format!("{name}:two");
    cleanup.image(&tag2);
    let images = builder
        .assemble(&request(&artifact, &tag2, false, &env))
        .await
        .unwrap();
    let omit = std::collections::BTreeSet::from([images[0].layers[0].diff_id.clone()]);
    let archive =
        deliver::docker_archive(builder.client(), &images[0], &tag2.parse().unwrap(), &omit)
            .await
            .unwrap();
    let full = deliver::docker_archive(
        builder.client(),
        &images[0],
        &tag2.parse().unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    assert!(
        archive.len() * 4 < full.len(),
        "{} vs {}",
        archive.len(),
        full.len()
    );
    let built2 = builder
        .deliver(
            &request(&artifact, &tag2, false, &env),
            &images,
            &NullReporter,
        )
        .await
        .unwrap();
    assert_ne!(built2.image_id, built.image_id);
    let (status, output) = support::run_image(&engine, &tag2).await;
    assert_eq!(status, 0, "{output}");
    assert!(output.contains("loaded two"), "{output}");
}

/// A no-RUN Dockerfile exercising the classic builder's COPY rules, built by Docker and by
/// skiff: same files (type, mode, owner, size, link target) and the same settings.
#[tokio::test]
async fn no_run_dockerfile_matches_dockers_build() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let Some(hello) = support::hello_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_files(
        root,
        &[
            (
                "Dockerfile",
                "FROM scratch\n\
                 ARG VERSION=1.2.3\n\
                 LABEL org.example.version=$VERSION maintainer=\"skiff tests\"\n\
                 ENV APP_HOME=/srv/app LANG=C.UTF-8\n\
                 ENV MODE=test\n\
                 WORKDIR $APP_HOME\n\
                 COPY hello bin/\n\
                 COPY static/ ./public/\n\
                 COPY conf/app.conf conf/extra.conf /etc/app/\n\
                 COPY single.txt /opt/renamed.txt\n\
                 COPY tree /data\n\
                 COPY --chown=1000:2000 owned.txt /home/owned/\n\
                 COPY *.md docs/\n\
                 WORKDIR /var/empty/work\n\
                 WORKDIR /srv/app\n\
                 EXPOSE 8080 9090/udp\n\
                 VOLUME /data\n\
                 STOPSIGNAL SIGTERM\n\
                 USER 1000:2000\n\
                 ENTRYPOINT [\"/srv/app/bin/hello\"]\n\
                 CMD [\"--serve\"]\n",
            ),
            ("static/index.html", "<h1>hi</h1>\n"),
            ("static/css/site.css", "body{}\n"),
            ("conf/app.conf", "a=1\n"),
            ("conf/extra.conf", "b=2\n"),
            ("single.txt", "single\n"),
            ("tree/a/b/c.txt", "c\n"),
            ("tree/top.txt", "top\n"),
            ("owned.txt", "owned\n"),
            ("README.md", "readme\n"),
            ("CHANGES.md", "changes\n"),
            ("ignored.log", "not copied\n"),
            (".dockerignore", "*.log\ntree/a/b/ignored*\n"),
            ("tree/a/b/ignored.txt", "ignored\n"),
        ],
    );
    support::copy_binary(&hello, root, "hello");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("hello"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        root.join("conf/extra.conf"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("single.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(root.join("tree/a"), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(root.join("static"), std::fs::Permissions::from_mode(0o775)).unwrap();
    std::os::unix::fs::symlink("b/c.txt", root.join("tree/a/link")).unwrap();

    let name = unique("oci-same");
    let docker_tag = format!("{name}:docker");
    let skiff_tag = format!("{name}:skiff");
    let mut cleanup = Cleanup::new();
    cleanup.image(&docker_tag);
    cleanup.image(&skiff_tag);
    let artifact = docker_artifact(&name, root, DockerSpec::default());
    let env = env();
    DockerBuilder::new(Arc::new(engine.clone()), false)
        .build(&request(&artifact, &docker_tag, false, &env), &NullReporter)
        .await
        .unwrap();
    daemonless(Some(engine.clone()))
        .build(&request(&artifact, &skiff_tag, false, &env), &NullReporter)
        .await
        .unwrap();

    let by_docker = filesystem(&engine, &docker_tag).await;
    let by_skiff = filesystem(&engine, &skiff_tag).await;
    if by_docker != by_skiff {
        let only_docker: Vec<_> = by_docker.iter().filter(|l| !by_skiff.contains(l)).collect();
        let only_skiff: Vec<_> = by_skiff.iter().filter(|l| !by_docker.contains(l)).collect();
        panic!(
            "filesystems differ\nonly in Docker's build: {only_docker:#?}\nonly in skiff's: {only_skiff:#?}"
        );
    }
    assert!(
        by_skiff
            .iter()
            .any(|l| l.starts_with("srv/app/bin/hello Regular 755 0:0")),
        "{by_skiff:#?}"
    );
    assert!(
        by_skiff
            .iter()
            .any(|l| l.starts_with("home/owned/owned.txt Regular 644 1000:2000")),
        "{by_skiff:#?}"
    );
    assert!(
        by_skiff
            .iter()
            .any(|l| l.starts_with("etc/app/extra.conf Regular 640 0:0")),
        "{by_skiff:#?}"
    );
    assert!(
        by_skiff
            .iter()
            .any(|l| l.starts_with("data/a/link Symlink 777 0:0 0 -> b/c.txt")),
        "{by_skiff:#?}"
    );
    assert!(
        !by_skiff.iter().any(|l| l.contains("ignored")),
        "{by_skiff:#?}"
    );
    assert_eq!(
        runtime_settings(&engine, &docker_tag).await,
        runtime_settings(&engine, &skiff_tag).await
    );
    let (status, output) = support::run_image(&engine, &skiff_tag).await;
    assert_eq!(status, 1, "hello exits 1 without /msg.txt: {output}");
    assert!(output.contains("skiff-hello-marker"), "{output}");
}

#[tokio::test]
async fn dockerfile_with_run_is_refused_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            ("Dockerfile", "FROM scratch\nCOPY a /a\nRUN [\"/a\"]\n"),
            ("a", "a"),
        ],
    );
    let artifact = docker_artifact("with-run", dir.path(), DockerSpec::default());
    let env = env();
    let error = daemonless(None)
        .assemble(&request(&artifact, "with-run:1", false, &env))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("RUN at Dockerfile:3"), "{error}");
    assert_eq!(
        skiff_build::oci::builder::daemonless_check(
            dir.path(),
            &DockerSpec::default(),
            &BTreeMap::new()
        ),
        Err("RUN at Dockerfile:3".to_owned())
    );
    let opted_out = DockerSpec {
        daemon_build: true,
        ..DockerSpec::default()
    };
    write_files(dir.path(), &[("Dockerfile", "FROM scratch\nCOPY a /a\n")]);
    assert_eq!(
        skiff_build::oci::builder::daemonless_check(
            dir.path(),
            &DockerSpec::default(),
            &BTreeMap::new()
        ),
        Ok(())
    );
    assert_eq!(
        skiff_build::oci::builder::daemonless_check(dir.path(), &opted_out, &BTreeMap::new()),
        Err("--docker-daemon-build".to_owned())
    );
}

/// Bases from a registry (with a cross-repository mount), from the local engine and from an
/// OCI layout directory.
#[tokio::test]
async fn bases_from_registry_engine_and_layout() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let Some(registry) = require_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    if !hello_context(dir.path(), "base message\n") {
        return;
    }
    let env = env();
    let mut cleanup = Cleanup::new();
    // The base: hello + msg.txt, pushed to the registry.
    let base_name = format!("{registry}/{}", unique("oci-base"));
    let base_tag = format!("{base_name}:v1");
    let base_artifact = docker_artifact(&base_name, dir.path(), DockerSpec::default());
    let builder = daemonless(None);
    builder
        .build(
            &request(&base_artifact, &base_tag, true, &env),
            &NullReporter,
        )
        .await
        .unwrap();

    // An app on that base, pushed to another repository: the base layers are mounted.
    let app_dir = tempfile::tempdir().unwrap();
    write_files(
        app_dir.path(),
        &[
            (
                "Dockerfile",
                &format!("FROM {base_tag}\nCOPY msg.txt /msg.txt\n"),
            ),
            ("msg.txt", "app message\n"),
        ],
    );
    let app_name = format!("{registry}/{}", unique("oci-app"));
    let app_tag = format!("{app_name}:v1");
    cleanup.image(&app_tag);
    let app = docker_artifact(&app_name, app_dir.path(), DockerSpec::default());
    let fresh = daemonless(None);
    let images = fresh
        .assemble(&request(&app, &app_tag, true, &env))
        .await
        .unwrap();
    assert_eq!(images[0].layers.len(), 3);
    let report = deliver::push(fresh.client(), &images, &app_tag.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(report.mounted.len(), 2, "{report:?}");
    assert_eq!(report.uploaded.len(), 2, "{report:?}");
    pull(&engine, &app_tag).await;
    let (status, output) = support::run_image(&engine, &app_tag).await;
    assert_eq!(status, 0, "{output}");
    assert!(output.contains("app message"), "{output}");

    // The same app on a base only the local engine has (no registry in its name).
    let local_base = format!("{}:local", unique("oci-local-base"));
    cleanup.image(&local_base);
    engine
        .tag(&app_tag, &local_base.parse().unwrap())
        .await
        .unwrap();
    write_files(
        app_dir.path(),
        &[(
            "Dockerfile",
            &format!("FROM {local_base}\nCOPY msg.txt /msg2.txt\nENTRYPOINT [\"/hello\"]\n"),
        )],
    );
    let on_local = format!("{}:v1", unique("oci-on-local"));
    cleanup.image(&on_local);
    let app = docker_artifact("on-local", app_dir.path(), DockerSpec::default());
    let with_engine = daemonless(Some(engine.clone()));
    with_engine
        .build(&request(&app, &on_local, false, &env), &NullReporter)
        .await
        .unwrap();
    let (status, output) = support::run_image(&engine, &on_local).await;
    assert_eq!(status, 0, "{output}");
    assert!(output.contains("app message"), "{output}");

    // An OCI layout written by skiff, used as a base.
    let layout = tempfile::tempdir().unwrap();
    deliver::write_layout(with_engine.client(), &images, layout.path(), Some("v1"))
        .await
        .unwrap();
    write_files(
        app_dir.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM oci-layout://{}:v1\nCOPY msg.txt /msg.txt\n",
                layout.path().display()
            ),
        )],
    );
    let std_msg = "from the layout base\n";
    write_files(app_dir.path(), &[("msg.txt", std_msg)]);
    let on_layout = format!("{}:v1", unique("oci-on-layout"));
    cleanup.image(&on_layout);
    let app = docker_artifact("on-layout", app_dir.path(), DockerSpec::default());
    with_engine
        .build(&request(&app, &on_layout, false, &env), &NullReporter)
        .await
        .unwrap();
    let (status, output) = support::run_image(&engine, &on_layout).await;
    assert_eq!(status, 0, "{output}");
    assert!(output.contains(std_msg.trim()), "{output}");
}

// ---------------------------------------------------------------------------------------------
// Registries started by the tests: basic auth, read-only.

struct TestRegistry {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `docker-registry` on a free loopback port with `extra` config (YAML lines).
fn start_registry(extra: &str) -> Option<TestRegistry> {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{port}");
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {}}}\n{extra}http: {{addr: \"{address}\"}}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = match Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            support::missing("docker-registry", &e.to_string());
            return None;
        }
    };
    let registry = TestRegistry {
        child,
        address,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if support::http_get(&registry.address, "/v2/", None).is_ok() {
            return Some(registry);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("docker-registry did not start on {}", registry.address);
}

fn htpasswd(dir: &Path, user: &str, password: &str) -> Option<std::path::PathBuf> {
    let output = match Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
    {
        Ok(output) if output.status.success() => output,
        Ok(output) => panic!("htpasswd: {}", String::from_utf8_lossy(&output.stderr)),
        Err(e) => {
            support::missing("htpasswd (apache2-utils)", &e.to_string());
            return None;
        }
    };
    let path = dir.join("htpasswd");
    std::fs::write(&path, output.stdout).unwrap();
    Some(path)
}

fn docker_config_with(dir: &Path, registry: &str, user: &str, password: &str) -> Arc<DockerConfig> {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        format!(r#"{{"auths":{{"{registry}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    Arc::new(DockerConfig::load(&path).unwrap())
}

#[tokio::test]
async fn basic_auth_registry() {
    let secrets = tempfile::tempdir().unwrap();
    let Some(passwords) = htpasswd(secrets.path(), "skiff", "s3cret") else {
        return;
    };
    let Some(registry) = start_registry(&format!(
        "auth:\n  htpasswd:\n    realm: skiff-test\n    path: {}\n",
        passwords.display()
    )) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    if !hello_context(dir.path(), "authenticated\n") {
        return;
    }
    let name = format!("{}/auth/app", registry.address);
    let tag = format!("{name}:v1");
    let artifact = docker_artifact(&name, dir.path(), DockerSpec::default());
    let env = env();

    // Without credentials: a clear refusal.
    let anonymous = DaemonlessBuilder::new(None, &[], None).unwrap();
    let error = anonymous
        .build(&request(&artifact, &tag, true, &env), &NullReporter)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, BuildError::Push { .. }), "{error:?}");
    assert!(text.contains("docker login"), "{text}");

    // Wrong password: refused, naming the user.
    let wrong = DaemonlessBuilder::new(
        None,
        &[],
        Some(docker_config_with(
            secrets.path(),
            &registry.address,
            "skiff",
            "nope",
        )),
    )
    .unwrap();
    let text = wrong
        .build(&request(&artifact, &tag, true, &env), &NullReporter)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("refused the credentials of user \"skiff\""),
        "{text}"
    );

    // The right password: pushed, and readable back with the same credentials.
    let config = docker_config_with(secrets.path(), &registry.address, "skiff", "s3cret");
    let right = DaemonlessBuilder::new(None, &[], Some(Arc::clone(&config))).unwrap();
    let built = right
        .build(&request(&artifact, &tag, true, &env), &NullReporter)
        .await
        .unwrap();
    let repo = skiff_build::oci::registry::Repository::of(&tag.parse().unwrap());
    let manifest = right.client().get_manifest(&repo, "v1").await.unwrap();
    assert_eq!(Some(manifest.digest.as_str()), built.reference.digest());
}

#[tokio::test]
async fn bad_base_unreachable_registry_and_refused_push_are_clear_errors() {
    let Some(registry) = require_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    if !hello_context(dir.path(), "x\n") {
        return;
    }
    let env = env();

    // A base that exists nowhere.
    write_files(
        dir.path(),
        &[(
            "Dockerfile",
            &format!("FROM {registry}/skiff-no-such-base:nope\nCOPY msg.txt /msg.txt\n"),
        )],
    );
    let artifact = docker_artifact("bad-base", dir.path(), DockerSpec::default());
    let error = daemonless(None)
        .build(&request(&artifact, "bad-base:1", true, &env), &NullReporter)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, BuildError::BaseImage { .. }), "{error:?}");
    assert!(
        text.contains("skiff-no-such-base:nope") && text.contains("404"),
        "{text}"
    );

    // A registry nothing listens on.
    write_files(dir.path(), &[("Dockerfile", HELLO_DOCKERFILE)]);
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let name = format!("127.0.0.1:{closed}/app");
    let artifact = docker_artifact(&name, dir.path(), DockerSpec::default());
    let error = daemonless(None)
        .build(
            &request(&artifact, &format!("{name}:v1"), true, &env),
            &NullReporter,
        )
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, BuildError::Push { .. }), "{error:?}");
    assert!(
        text.contains("cannot connect") && text.contains(&format!("127.0.0.1:{closed}")),
        "{text}"
    );

    // A registry in read-only mode refuses the push.
    let Some(readonly) = start_registry("  maintenance:\n    readonly:\n      enabled: true\n")
    else {
        return;
    };
    let name = format!("{}/app", readonly.address);
    let artifact = docker_artifact(&name, dir.path(), DockerSpec::default());
    let error = daemonless(None)
        .build(
            &request(&artifact, &format!("{name}:v1"), true, &env),
            &NullReporter,
        )
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, BuildError::Push { .. }), "{error:?}");
    assert!(
        text.contains("HTTP 405") || text.contains("HTTP 503"),
        "{text}"
    );
}

/// Rebuild-and-deliver after changing one file, both ending with the image in the local engine:
/// skiff's assembler (load) against the engine's build. Prints the medians; skiff must win.
#[tokio::test]
async fn one_file_rebuild_is_faster_than_the_engines_build() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    if !hello_context(dir.path(), "round 0\n") {
        return;
    }
    write_files(
        dir.path(),
        &[
            (
                "Dockerfile",
                "FROM scratch\nWORKDIR /app\nCOPY hello /app/hello\nCOPY static/ /app/static/\nCOPY msg.txt /msg.txt\nENV MODE=dev\nEXPOSE 8080\nENTRYPOINT [\"/app/hello\"]\n",
            ),
            ("static/index.html", "<h1>index</h1>\n"),
            ("static/app.js", "console.log(1)\n"),
        ],
    );
    let name = unique("oci-bench");
    let mut cleanup = Cleanup::new();
    let artifact = docker_artifact(&name, dir.path(), DockerSpec::default());
    let env = env();
    let skiff = daemonless(Some(engine.clone()));
    let docker = DockerBuilder::new(Arc::new(engine.clone()), false);
    let mut skiff_times = Vec::new();
    let mut docker_times = Vec::new();
    for round in 0..6 {
        std::fs::write(dir.path().join("msg.txt"), format!("round {round}\n")).unwrap();
        let tag = format!("{name}:skiff-{round}");
        cleanup.image(&tag);
        let started = Instant::now();
        let reporter = skiff_types::event::CollectingReporter::default();
        skiff
            .build(&request(&artifact, &tag, false, &env), &reporter)
            .await
            .unwrap();
        skiff_times.push(started.elapsed());
        if round == 5 {
            eprintln!("{:?}", reporter.events());
        }
        let tag = format!("{name}:docker-{round}");
        cleanup.image(&tag);
        let started = Instant::now();
        docker
            .build(&request(&artifact, &tag, false, &env), &NullReporter)
            .await
            .unwrap();
        docker_times.push(started.elapsed());
    }
    // Round 0 is the cold build; the others change one file.
    let median = |times: &mut Vec<Duration>| {
        let mut warm = times[1..].to_vec();
        warm.sort();
        warm[warm.len() / 2]
    };
    let skiff_median = median(&mut skiff_times);
    let docker_median = median(&mut docker_times);
    eprintln!(
        "one-file rebuild + load into the engine: skiff {skiff_median:?} (cold {:?}), docker build {docker_median:?} (cold {:?})",
        skiff_times[0], docker_times[0]
    );
    let (status, output) = support::run_image(&engine, &format!("{name}:skiff-5")).await;
    assert_eq!(status, 0, "{output}");
    assert!(output.contains("round 5"), "{output}");
    assert!(
        skiff_median < docker_median,
        "skiff {skiff_median:?} vs docker {docker_median:?}"
    );
}

/// Several platforms: one manifest each, under an index the tag names.
#[tokio::test]
async fn several_platforms_are_pushed_as_an_index() {
    let Some(registry) = require_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            ("Dockerfile", "FROM scratch\nCOPY msg.txt /msg.txt\n"),
            ("msg.txt", "any platform\n"),
        ],
    );
    let name = format!("{registry}/{}", unique("oci-index"));
    let mut artifact = docker_artifact(&name, dir.path(), DockerSpec::default());
    artifact.platforms = vec!["linux/amd64".into(), "linux/arm64".into()];
    let env = env();
    let builder = daemonless(None);
    let built = builder
        .build(
            &request(&artifact, &format!("{name}:multi"), true, &env),
            &NullReporter,
        )
        .await
        .unwrap();
    let repo = skiff_build::oci::registry::Repository::of(&built.reference);
    let index = builder.client().get_manifest(&repo, "multi").await.unwrap();
    assert_eq!(index.media_type, "application/vnd.oci.image.index.v1+json");
    assert_eq!(Some(index.digest.as_str()), built.reference.digest());
    let text = String::from_utf8(index.bytes).unwrap();
    assert!(
        text.contains("\"architecture\":\"arm64\"") && text.contains("\"architecture\":\"amd64\""),
        "{text}"
    );
}
