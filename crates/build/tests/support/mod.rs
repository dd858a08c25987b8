//! Shared helpers for tests that need the real Docker engine and registry.
//!
//! A part that is not running makes a test skip locally and fail in CI (`CI=true`).

#![allow(dead_code, clippy::unwrap_used, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{LogsOptions, RemoveContainerOptions, RemoveImageOptions};
use futures_util::StreamExt;
use skiff_build::ArtifactSpec;
use skiff_build::BuildRequest;
use skiff_build::artifact::{BuilderSpec, DockerSpec};
use skiff_build::docker::DockerEngine;

/// Whether this run is CI, where a missing part is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A missing part: panic in CI, otherwise print why the test is skipped.
pub fn missing(part: &str, why: &str) {
    let message = format!("{part} is not available: {why}");
    if in_ci() {
        panic!("{message} (CI=true: tests needing it fail; `.ci/run` starts it)");
    }
    eprintln!("skipping: {message} (with CI=true this fails the test)");
}

/// The engine at `DOCKER_HOST` (or the default socket), or `None` (after a skip note) when it
/// is not running outside CI.
pub async fn require_engine() -> Option<DockerEngine> {
    let host = std::env::var("DOCKER_HOST").ok();
    match DockerEngine::connect(host.as_deref()).await {
        Ok(engine) => Some(engine),
        Err(e) => {
            missing("the Docker engine", &e.to_string());
            None
        }
    }
}

/// The test registry (`SKIFF_TEST_REGISTRY`, default `127.0.0.1:5000`) if it answers `/v2/`.
pub fn require_registry() -> Option<String> {
    let registry = std::env::var("SKIFF_TEST_REGISTRY")
        .ok()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "127.0.0.1:5000".to_owned());
    match http_get(&registry, "/v2/", None) {
        Ok(response) if response.status == 200 || response.status == 401 => Some(registry),
        Ok(response) => {
            missing(
                &format!("the registry at {registry}"),
                &format!("GET /v2/ answered {}", response.status),
            );
            None
        }
        Err(e) => {
            missing(&format!("the registry at {registry}"), &e.to_string());
            None
        }
    }
}

/// A name no other test (or run) uses: `skiff-test-<what>-<pid>-<nanos>`.
pub fn unique(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("skiff-test-{what}-{}-{nanos}-{n}", std::process::id())
}

/// One HTTP response: status and headers (names lower-cased).
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
}

/// A tiny HTTP/1.1 GET over a TCP stream (headers only are kept).
pub fn http_get(host: &str, path: &str, accept: Option<&str>) -> std::io::Result<HttpResponse> {
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host)?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{host} does not resolve")))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{accept}Connection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {head:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(HttpResponse { status, headers })
}

const HELLO_C: &str = r#"#include <stdio.h>
int main(void) {
    printf("skiff-hello-marker\n");
    FILE *f = fopen("/msg.txt", "r");
    if (!f) { perror("/msg.txt"); return 1; }
    int c;
    while ((c = fgetc(f)) != EOF) putchar(c);
    fclose(f);
    return 0;
}
"#;

const CAT_C: &str = r#"#include <stdio.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "r");
        if (!f) { perror(argv[i]); return 1; }
        int c;
        while ((c = fgetc(f)) != EOF) putchar(c);
        fclose(f);
    }
    return 0;
}
"#;

/// Compiles `source` statically once per test process; `None` (after a skip note, or a panic
/// in CI) when no C compiler is available.
fn compiled(name: &str, source: &str, cell: &'static OnceLock<Option<PathBuf>>) -> Option<PathBuf> {
    cell.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("skiff-build-bins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = dir.join(format!("{name}.c"));
        std::fs::write(&c, source).unwrap();
        let out = dir.join(name);
        match Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&out)
            .arg(&c)
            .output()
        {
            Ok(o) if o.status.success() => Some(out),
            Ok(o) => {
                missing(
                    "a static C toolchain (gcc -static)",
                    &String::from_utf8_lossy(&o.stderr),
                );
                None
            }
            Err(e) => {
                missing("gcc", &e.to_string());
                None
            }
        }
    })
    .clone()
}

/// A static binary printing `skiff-hello-marker` and then `/msg.txt`.
pub fn hello_binary() -> Option<PathBuf> {
    static CELL: OnceLock<Option<PathBuf>> = OnceLock::new();
    compiled("hello", HELLO_C, &CELL)
}

/// A static `cat`, for `RUN ["/cat", …]` steps in scratch images.
pub fn cat_binary() -> Option<PathBuf> {
    static CELL: OnceLock<Option<PathBuf>> = OnceLock::new();
    compiled("cat", CAT_C, &CELL)
}

/// Writes `files` (path → contents) under `dir`.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, contents) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
}

/// Copies an executable into `dir` as `name`.
pub fn copy_binary(binary: &Path, dir: &Path, name: &str) {
    std::fs::copy(binary, dir.join(name)).unwrap();
}

/// A `docker:` artifact for `image` with context `dir`.
pub fn docker_artifact(image: &str, dir: &Path, spec: DockerSpec) -> ArtifactSpec {
    ArtifactSpec {
        image: image.to_owned(),
        context: dir.to_path_buf(),
        builder: BuilderSpec::Docker(DockerSpec {
            dockerfile: if spec.dockerfile.is_empty() {
                "Dockerfile".into()
            } else {
                spec.dockerfile.clone()
            },
            ..spec
        }),
        requires: vec![],
        platforms: vec![],
    }
}

/// A request to build `artifact` as `tag`.
pub fn request<'a>(
    artifact: &'a ArtifactSpec,
    tag: &str,
    env: &'a BTreeMap<String, String>,
) -> BuildRequest<'a> {
    BuildRequest {
        artifact,
        tag: tag.parse().unwrap(),
        push: false,
        required: BTreeMap::new(),
        env,
    }
}

/// A tar of `files` (path, contents, mode), as a context packer would make.
pub fn tar_of(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, contents, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, path, *contents).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Runs `image` to completion and returns its stdout and stderr; the container is removed.
pub async fn run_image(engine: &DockerEngine, image: &str) -> (i64, String) {
    let docker = engine.client();
    let created = docker
        .create_container(
            None,
            ContainerCreateBody {
                image: Some(image.to_owned()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let id = created.id;
    docker.start_container(&id, None).await.unwrap();
    let mut wait = docker.wait_container(&id, None);
    let mut status = 0;
    while let Some(item) = wait.next().await {
        match item {
            Ok(response) => status = response.status_code,
            // A non-zero exit arrives as an error carrying the code.
            Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => status = code,
            Err(e) => panic!("waiting for {id}: {e}"),
        }
    }
    let mut logs = docker.logs(
        &id,
        Some(LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    );
    let mut output = String::new();
    while let Some(chunk) = logs.next().await {
        output.push_str(&chunk.unwrap().to_string());
    }
    docker
        .remove_container(
            &id,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    (status, output)
}

/// Removes the images it names when dropped (also when the test panics).
#[derive(Debug, Default)]
pub struct Cleanup {
    references: Vec<String>,
}

impl Cleanup {
    pub fn new() -> Cleanup {
        Cleanup::default()
    }

    /// Removes `reference` at the end of the test.
    pub fn image(&mut self, reference: impl Into<String>) {
        self.references.push(reference.into());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let references = std::mem::take(&mut self.references);
        if references.is_empty() {
            return;
        }
        // A fresh runtime on its own thread: drop may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let host = std::env::var("DOCKER_HOST").ok();
                let Ok(engine) = DockerEngine::connect(host.as_deref()).await else {
                    return;
                };
                for reference in references.iter().rev() {
                    let _ = engine
                        .client()
                        .remove_image(
                            reference,
                            // Keep parent layers: a build running in parallel may be using
                            // them as its layer cache.
                            Some(RemoveImageOptions {
                                force: true,
                                noprune: true,
                                ..Default::default()
                            }),
                            None,
                        )
                        .await;
                }
            });
        })
        .join();
    }
}
