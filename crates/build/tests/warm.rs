//! Warm rebuilds against the real Docker engine: the image a warm rebuild gives must be what a
//! clean `docker build` of the same sources gives — the same files with the same modes and
//! contents (the Go binary byte for byte) — and what the warm path cannot reproduce falls back
//! with the reason.
//!
//! The article's Go service needs the stand-in base images `golang:1.22-alpine` and
//! `alpine:3.19` that `scripts/devenv/up docker` builds.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use skiff_build::artifact::DockerSpec;
use skiff_build::docker::{DockerBuilder, DockerEngine};
use skiff_build::oci::DaemonlessBuilder;
use skiff_build::warm::{self, BUILDER_LABEL, WarmBuilder, WarmOptions, WarmRebuild};
use skiff_build::{BuildError, Builder};
use skiff_types::change::ChangeSet;
use skiff_types::event::{CollectingReporter, NullReporter};
use support::*;

/// Every file of `image`'s filesystem: path → (kind and mode, SHA-256 of the content).
fn filesystem(image: &str) -> BTreeMap<String, (String, String)> {
    let created = Command::new("docker")
        .args(["create", image, "/bin/true"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let id = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    let exported = Command::new("docker")
        .args(["export", &id])
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rm", "-f", &id]).output();
    assert!(exported.status.success());
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(exported.stdout.as_slice());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let header = entry.header();
        let kind = format!(
            "{:?} {:o}",
            header.entry_type(),
            header.mode().unwrap() & 0o7777
        );
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        let link = entry
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(&data));
        files.insert(path, (kind, format!("{digest} {link}")));
    }
    files
}

fn base_images_available() -> bool {
    ["golang:1.22-alpine", "alpine:3.19"].iter().all(|image| {
        let ok = Command::new("docker")
            .args(["image", "inspect", image])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            missing(
                image,
                "scripts/devenv/up docker builds the stand-in base images",
            );
        }
        ok
    })
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn changes(dir: &Path, modified: &[&str], deleted: &[&str]) -> ChangeSet {
    ChangeSet {
        modified: modified.iter().map(|f| dir.join(f)).collect(),
        deleted: deleted.iter().map(|f| dir.join(f)).collect(),
    }
}

fn warm_builder(engine: &Arc<DockerEngine>) -> Arc<WarmBuilder> {
    let daemonless = DaemonlessBuilder::new(Some(Arc::clone(engine)), &[], None).unwrap();
    Arc::new(WarmBuilder::new(
        Arc::clone(engine),
        Arc::new(daemonless),
        WarmOptions {
            run_id: support::unique("run"),
        },
    ))
}

fn builder_containers(image: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label={BUILDER_LABEL}={image}"),
            "--format",
            "{{.Names}}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Removes the test's images (by repository) when dropped.
struct Images(String);

impl Drop for Images {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' {} | xargs -r docker rmi -f >/dev/null 2>&1",
                    self.0
                ),
            ])
            .status();
    }
}

fn rebuilt(outcome: WarmRebuild) -> (String, String) {
    match outcome {
        WarmRebuild::Rebuilt { image, summary } => (image.reference.to_string(), summary),
        other => panic!("not rebuilt warm: {other:?}"),
    }
}

#[tokio::test]
async fn the_articles_go_service_rebuilds_warm_to_what_a_clean_build_gives() {
    let Some(engine) = require_engine().await else {
        return;
    };
    if !base_images_available() {
        return;
    }
    let engine = Arc::new(engine);
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&workspace().join("examples/go-webapp"), dir.path());
    let repository = format!("localhost:5000/{}", support::unique("warm-go"));
    let _images = Images(repository.clone());
    let artifact = docker_artifact(&repository, dir.path(), DockerSpec::default());
    let env = BTreeMap::new();
    let clean = DockerBuilder::new(Arc::clone(&engine), false);
    clean
        .build(
            &request(&artifact, &format!("{repository}:v1"), &env),
            &NullReporter,
        )
        .await
        .unwrap();
    let warm = warm_builder(&engine);
    warm.prepare(
        &request(&artifact, &format!("{repository}:v1"), &env),
        &NullReporter,
    )
    .await
    .unwrap();
    assert_eq!(builder_containers(&repository).len(), 1);

    // A code change: only `go build` runs again, and the image equals a clean build's.
    let main_go = dir.path().join("main.go");
    let source = std::fs::read_to_string(&main_go).unwrap();
    std::fs::write(&main_go, source.replace("hello from go-webapp", "warm")).unwrap();
    let reporter = CollectingReporter::default();
    let (warm_image, summary) = rebuilt(
        warm.rebuild(
            &request(&artifact, &format!("{repository}:v2"), &env),
            &changes(dir.path(), &["main.go"], &[]),
            &reporter,
        )
        .await
        .unwrap(),
    );
    assert!(
        summary.starts_with("1 file into stage builder, RUN go build "),
        "{summary}"
    );
    assert!(!summary.contains("go mod"), "{summary}");
    clean
        .build(
            &request(&artifact, &format!("{repository}:clean"), &env),
            &NullReporter,
        )
        .await
        .unwrap();
    let (warm_files, clean_files) = (
        filesystem(&warm_image),
        filesystem(&format!("{repository}:clean")),
    );
    assert_eq!(warm_files.get("app/server"), clean_files.get("app/server"));
    assert_eq!(warm_files, clean_files);

    // go.mod changed: `go mod download` runs again before `go build`.
    let go_mod = dir.path().join("go.mod");
    let module = std::fs::read_to_string(&go_mod).unwrap();
    std::fs::write(&go_mod, format!("{module}// a comment\n")).unwrap();
    let (_, summary) = rebuilt(
        warm.rebuild(
            &request(&artifact, &format!("{repository}:v3"), &env),
            &changes(dir.path(), &["go.mod"], &[]),
            &NullReporter,
        )
        .await
        .unwrap(),
    );
    assert!(summary.contains("RUN go mod "), "{summary}");
    assert!(summary.contains("RUN go build "), "{summary}");

    // A compile error is a failed build with the compiler's words; the fix builds again.
    std::fs::write(
        &main_go,
        source.replace("fmt.Fprint(w, message)", "fmt.Fprint(w, missing)"),
    )
    .unwrap();
    let error = warm
        .rebuild(
            &request(&artifact, &format!("{repository}:v4"), &env),
            &changes(dir.path(), &["main.go"], &[]),
            &NullReporter,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, BuildError::Failed { .. }), "{error}");
    assert!(error.to_string().contains("undefined: missing"), "{error}");
    std::fs::write(&main_go, source.replace("hello from go-webapp", "fixed")).unwrap();
    rebuilt(
        warm.rebuild(
            &request(&artifact, &format!("{repository}:v5"), &env),
            &changes(dir.path(), &["main.go"], &[]),
            &NullReporter,
        )
        .await
        .unwrap(),
    );

    // A changed Dockerfile is rebuilt clean, and says why.
    let dockerfile = dir.path().join("Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    std::fs::write(&dockerfile, format!("{text}# a comment\n")).unwrap();
    let outcome = warm
        .rebuild(
            &request(&artifact, &format!("{repository}:v6"), &env),
            &changes(dir.path(), &["Dockerfile"], &[]),
            &NullReporter,
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        WarmRebuild::NotWarm {
            reason: "the Dockerfile changed".into()
        }
    );

    let removed = warm.shutdown().await;
    assert_eq!(removed.len(), 1);
    assert!(builder_containers(&repository).is_empty());
}

#[tokio::test]
async fn plain_shell_stages_rebuild_warm_to_the_clean_image() {
    let Some(engine) = require_engine().await else {
        return;
    };
    if !base_images_available() {
        return;
    }
    let engine = Arc::new(engine);
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            (
                "Dockerfile",
                "FROM alpine:3.19 AS gen\nWORKDIR /src\nCOPY parts/ parts/\nCOPY secret.txt ./\nRUN cat parts/*.txt > /out.txt && rm -f secret.txt && mkdir -p /gen/sub && ls -R /src > /gen/listing && echo generated > /gen/sub/file\n\nFROM alpine:3.19\nCOPY --from=gen /out.txt /out.txt\nCOPY --from=gen /gen /gen/\nCOPY static.txt /static.txt\nCMD [\"cat\", \"/out.txt\"]\n",
            ),
            ("parts/a.txt", "a1\n"),
            ("parts/b.txt", "b1\n"),
            ("secret.txt", "s1\n"),
            ("static.txt", "static 1\n"),
        ],
    );
    let repository = format!("localhost:5000/{}", support::unique("warm-sh"));
    let _images = Images(repository.clone());
    let artifact = docker_artifact(&repository, dir.path(), DockerSpec::default());
    let env = BTreeMap::new();
    let clean = DockerBuilder::new(Arc::clone(&engine), false);
    clean
        .build(
            &request(&artifact, &format!("{repository}:v1"), &env),
            &NullReporter,
        )
        .await
        .unwrap();
    let warm = warm_builder(&engine);
    warm.prepare(
        &request(&artifact, &format!("{repository}:v1"), &env),
        &NullReporter,
    )
    .await
    .unwrap();

    // Changed, added, deleted, a file the stage deletes, and a file of the final stage.
    write_files(
        dir.path(),
        &[
            ("parts/a.txt", "a2\n"),
            ("parts/c.txt", "c1\n"),
            ("secret.txt", "s2\n"),
            ("static.txt", "static 2\n"),
        ],
    );
    std::fs::remove_file(dir.path().join("parts/b.txt")).unwrap();
    let (warm_image, summary) = rebuilt(
        warm.rebuild(
            &request(&artifact, &format!("{repository}:v2"), &env),
            &changes(
                dir.path(),
                &["parts/a.txt", "parts/c.txt", "secret.txt", "static.txt"],
                &["parts/b.txt"],
            ),
            &NullReporter,
        )
        .await
        .unwrap(),
    );
    assert!(
        summary.starts_with("5 files into stage gen, RUN cat "),
        "{summary}"
    );
    clean
        .build(
            &request(&artifact, &format!("{repository}:clean"), &env),
            &NullReporter,
        )
        .await
        .unwrap();
    let warm_files = filesystem(&warm_image);
    assert_eq!(warm_files, filesystem(&format!("{repository}:clean")));
    let out = warm_files.get("out.txt").unwrap();
    use sha2::Digest;
    assert_eq!(
        out.1,
        format!("{} ", hex::encode(sha2::Sha256::digest(b"a2\nc1\n")))
    );
    let listing: BTreeSet<&String> = warm_files.keys().collect();
    assert!(listing.contains(&"gen/sub/file".to_owned()), "{listing:?}");

    // Only the final stage's own file: nothing runs.
    write_files(dir.path(), &[("static.txt", "static 3\n")]);
    let (_, summary) = rebuilt(
        warm.rebuild(
            &request(&artifact, &format!("{repository}:v3"), &env),
            &changes(dir.path(), &["static.txt"], &[]),
            &NullReporter,
        )
        .await
        .unwrap(),
    );
    assert!(
        summary.starts_with("1 file into the final stage, image "),
        "{summary}"
    );

    // A leftover of a killed run is removed by the next one (and by `skiff delete`).
    let leftovers = warm::remove_builder_containers(&engine, std::slice::from_ref(&repository))
        .await
        .unwrap();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    assert!(builder_containers(&repository).is_empty());
    // The builder container is gone: the next change says so, and builds clean.
    let outcome = warm
        .rebuild(
            &request(&artifact, &format!("{repository}:v4"), &env),
            &changes(dir.path(), &["parts/a.txt"], &[]),
            &NullReporter,
        )
        .await
        .unwrap();
    assert!(
        matches!(&outcome, WarmRebuild::NotWarm { reason } if reason.contains("gone")),
        "{outcome:?}"
    );
}
