//! Tests of the custom builder: environment, output streaming, failures and the image check.
#![allow(clippy::unwrap_used)] // A failing unwrap is a failing test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use skiff_build::artifact::{CustomSpec, DockerSpec, Requirement};
use skiff_build::custom::{CustomBuilder, ImageLookup, KEPT_LINES, command_env};
use skiff_build::{ArtifactSpec, BuildError, BuildRequest, Builder, BuilderSpec};
use skiff_types::event::{CollectingReporter, Event};
use skiff_types::image::{BuiltImage, ImageRef};

const IMAGE: &str = "localhost:5000/app:v1";

fn artifact(context: &Path, command: Option<&str>) -> ArtifactSpec {
    ArtifactSpec {
        image: "localhost:5000/app".to_owned(),
        context: context.to_path_buf(),
        builder: BuilderSpec::Custom(CustomSpec {
            build_command: command.map(str::to_owned),
            ..CustomSpec::default()
        }),
        requires: vec![Requirement {
            image: "base".to_owned(),
            alias: Some("BASE".to_owned()),
        }],
        platforms: vec!["linux/amd64".to_owned(), "linux/arm64".to_owned()],
    }
}

fn base_env() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
        ("FROM_ENV".to_owned(), "env-value".to_owned()),
        // Skaffold's variables win over the environment.
        ("IMAGE".to_owned(), "from-the-environment".to_owned()),
    ])
}

fn request<'a>(
    artifact: &'a ArtifactSpec,
    env: &'a BTreeMap<String, String>,
    push: bool,
) -> BuildRequest<'a> {
    BuildRequest {
        artifact,
        tag: IMAGE.parse().unwrap(),
        push,
        required: BTreeMap::from([("BASE".to_owned(), "base:abc123".to_owned())]),
        env,
    }
}

fn output_lines(reporter: &CollectingReporter) -> Vec<String> {
    reporter
        .events()
        .into_iter()
        .filter_map(|event| match event {
            Event::BuildOutput { image, line } => {
                assert_eq!(image, "localhost:5000/app");
                Some(line)
            }
            _ => None,
        })
        .collect()
}

async fn build(
    builder: &CustomBuilder,
    request: &BuildRequest<'_>,
) -> (Result<BuiltImage, BuildError>, Vec<String>) {
    let reporter = CollectingReporter::default();
    let result = tokio::time::timeout(Duration::from_secs(60), builder.build(request, &reporter))
        .await
        .expect("the build finishes");
    (result, output_lines(&reporter))
}

/// An image store that knows one reference, counting lookups.
#[derive(Default)]
struct FakeLookup {
    known: Option<String>,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl ImageLookup for FakeLookup {
    async fn image_id(&self, reference: &ImageRef) -> Result<Option<String>, BuildError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(
            (self.known.as_deref() == Some(reference.to_string().as_str()))
                .then(|| "sha256:1234".to_owned()),
        )
    }
}

#[tokio::test]
async fn success_streams_both_outputs_with_skaffold_variables() {
    let dir = tempfile::tempdir().unwrap();
    let command = r#"echo out-line; echo err-line >&2; echo "$IMAGE $PUSH_IMAGE $BUILD_CONTEXT"; echo "[$PLATFORMS][$SKIP_TEST][$IMAGE_REPO][$IMAGE_TAG][$BASE][$FROM_ENV]"; echo "pwd=$(pwd)""#;
    let artifact = artifact(dir.path(), Some(command));
    let env = base_env();
    let (result, lines) = build(&CustomBuilder::new(None), &request(&artifact, &env, false)).await;
    let built = result.unwrap();
    assert_eq!(built.image_name, "localhost:5000/app");
    assert_eq!(built.reference.to_string(), IMAGE);
    assert_eq!(built.image_id, None);

    assert!(lines.contains(&"out-line".to_owned()), "{lines:?}");
    assert!(lines.contains(&"err-line".to_owned()), "{lines:?}");
    let context = dir.path().display().to_string();
    assert!(
        lines.contains(&format!("{IMAGE} false {context}")),
        "{lines:?}"
    );
    assert!(
        lines.contains(
            &"[linux/amd64,linux/arm64][false][localhost:5000/app][v1][base:abc123][env-value]"
                .to_owned()
        ),
        "{lines:?}"
    );
    // The command runs in the context directory.
    let pwd = lines
        .iter()
        .find_map(|line| line.strip_prefix("pwd="))
        .expect("pwd line");
    assert_eq!(
        PathBuf::from(pwd).canonicalize().unwrap(),
        dir.path().canonicalize().unwrap()
    );
}

#[tokio::test]
async fn push_image_is_true_when_pushing_and_the_local_check_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = artifact(dir.path(), Some("echo push=$PUSH_IMAGE"));
    let env = base_env();
    let lookup = Arc::new(FakeLookup::default());
    let builder = CustomBuilder::new(Some(lookup.clone()));
    let (result, lines) = build(&builder, &request(&artifact, &env, true)).await;
    result.unwrap();
    assert_eq!(lines, ["push=true"]);
    assert_eq!(lookup.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn failure_reports_status_and_last_lines() {
    let dir = tempfile::tempdir().unwrap();
    let command = "i=1; while [ $i -le 30 ]; do echo line$i; i=$((i+1)); done; exit 3";
    let artifact = artifact(dir.path(), Some(command));
    let env = base_env();
    let (result, lines) = build(&CustomBuilder::new(None), &request(&artifact, &env, false)).await;
    assert_eq!(lines.len(), 30);
    match result.unwrap_err() {
        BuildError::Failed { image, reason } => {
            assert_eq!(image, "localhost:5000/app");
            assert!(reason.contains("exit status 3"), "{reason}");
            let quoted: Vec<&str> = reason.lines().skip(1).collect();
            assert_eq!(quoted.len(), KEPT_LINES, "{reason}");
            assert_eq!(quoted.first(), Some(&"line11"));
            assert_eq!(quoted.last(), Some(&"line30"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn failure_quotes_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = artifact(
        dir.path(),
        Some("echo 'no space left on device' >&2; exit 1"),
    );
    let env = base_env();
    let (result, _) = build(&CustomBuilder::new(None), &request(&artifact, &env, false)).await;
    match result.unwrap_err() {
        BuildError::Failed { reason, .. } => {
            assert!(reason.contains("exit status 1"), "{reason}");
            assert!(reason.contains("no space left on device"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn command_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = artifact(dir.path(), Some("skiff-no-such-command-xyz --build"));
    let env = base_env();
    let (result, _) = build(&CustomBuilder::new(None), &request(&artifact, &env, false)).await;
    match result.unwrap_err() {
        BuildError::Command {
            image,
            command,
            reason,
        } => {
            assert_eq!(image, "localhost:5000/app");
            assert_eq!(command, "skiff-no-such-command-xyz --build");
            assert!(reason.contains("not found"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn missing_build_command() {
    let dir = tempfile::tempdir().unwrap();
    let env = base_env();
    for command in [None, Some("   ")] {
        let artifact = artifact(dir.path(), command);
        let (result, _) = build(&CustomBuilder::new(None), &request(&artifact, &env, false)).await;
        match result.unwrap_err() {
            BuildError::Failed { reason, .. } => {
                assert!(
                    reason.contains("custom artifact needs `buildCommand`"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn lookup_missing_image_fails() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = artifact(dir.path(), Some("echo pretending to build"));
    let env = base_env();
    let lookup = Arc::new(FakeLookup::default());
    let builder = CustomBuilder::new(Some(lookup.clone()));
    let (result, _) = build(&builder, &request(&artifact, &env, false)).await;
    match result.unwrap_err() {
        BuildError::Failed { reason, .. } => assert!(
            reason.contains(&format!(
                "the build command succeeded but did not produce IMAGE={IMAGE}"
            )),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(lookup.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn lookup_found_image_gives_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = artifact(dir.path(), Some("true"));
    let env = base_env();
    let lookup = Arc::new(FakeLookup {
        known: Some(IMAGE.to_owned()),
        ..FakeLookup::default()
    });
    let (result, _) = build(
        &CustomBuilder::new(Some(lookup)),
        &request(&artifact, &env, false),
    )
    .await;
    assert_eq!(result.unwrap().image_id.as_deref(), Some("sha256:1234"));
}

#[tokio::test]
async fn heavy_output_on_both_streams_does_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    // 4 MiB to stderr before anything on stdout, then the other way round.
    let command = "head -c 4194304 /dev/zero | tr '\\0' 'e' | fold -w 1000 >&2; \
                   head -c 4194304 /dev/zero | tr '\\0' 'o' | fold -w 1000";
    let artifact = artifact(dir.path(), Some(command));
    let env = base_env();
    let (result, lines) = build(&CustomBuilder::new(None), &request(&artifact, &env, false)).await;
    result.unwrap();
    assert!(lines.len() >= 8000, "{}", lines.len());
}

#[tokio::test]
async fn build_command_templates_are_rendered() {
    let dir = tempfile::tempdir().unwrap();
    let rendered = artifact(dir.path(), Some("echo {{.IMAGE_TAG}}-{{.FROM_ENV}}"));
    let env = base_env();
    let (result, lines) = build(&CustomBuilder::new(None), &request(&rendered, &env, false)).await;
    result.unwrap();
    assert_eq!(lines, ["v1-env-value"]);

    // As Skaffold (Go's default `missingkey`): a variable that is not set prints `<no value>`.
    let missing = artifact(dir.path(), Some("echo '{{.NOPE}}'"));
    let (result, lines) = build(&CustomBuilder::new(None), &request(&missing, &env, false)).await;
    result.unwrap();
    assert_eq!(lines, ["<no value>"]);
    // Given to a function, it is an error, naming the field.
    let missing = artifact(dir.path(), Some("echo {{.NOPE | lower}}"));
    let (result, _) = build(&CustomBuilder::new(None), &request(&missing, &env, false)).await;
    match result.unwrap_err() {
        BuildError::Template { field, .. } => assert_eq!(field, "custom.buildCommand"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn missing_context_is_a_command_error() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = artifact(&dir.path().join("nope"), Some("true"));
    let env = base_env();
    let (result, _) = build(&CustomBuilder::new(None), &request(&artifact, &env, false)).await;
    match result.unwrap_err() {
        BuildError::Command { reason, .. } => {
            assert!(reason.contains("does not exist"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn other_builder_kinds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut artifact = artifact(dir.path(), Some("true"));
    artifact.builder = BuilderSpec::Docker(DockerSpec::default());
    let env = base_env();
    let (result, _) = build(&CustomBuilder::new(None), &request(&artifact, &env, false)).await;
    assert!(result.unwrap_err().to_string().contains("docker"));
}

#[test]
fn command_env_lists_skaffold_variables() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = artifact(dir.path(), Some("true"));
    let env = BTreeMap::new();
    let vars = command_env(&request(&artifact, &env, false));
    let names: Vec<&str> = vars.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "BASE",
            "BUILD_CONTEXT",
            "IMAGE",
            "IMAGE_REPO",
            "IMAGE_TAG",
            "PLATFORMS",
            "PUSH_IMAGE",
            "SKIP_TEST"
        ]
    );
}

#[tokio::test]
async fn background_process_holding_the_pipes_does_not_hang_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = artifact(dir.path(), Some("echo started; sleep 8 &"));
    let env = base_env();
    let started = std::time::Instant::now();
    let (result, lines) = build(&CustomBuilder::new(None), &request(&artifact, &env, false)).await;
    result.unwrap();
    assert_eq!(lines, ["started"]);
    assert!(started.elapsed() < Duration::from_secs(20));
}
