//! The build stage as the runner drives it, against the real Docker engine (and a plugged-in
//! builder that needs none).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use skiff_build::artifact::{ArtifactSpec, BuilderSpec, DockerSpec, Requirement};
use skiff_build::tag::TagPolicy;
use skiff_build::{BuildError, BuildRequest, Builder};
use skiff_runner::build::{BuildOptions, BuildStage};
use skiff_runner::settings::{BuildHooks, BuildSettings};
use skiff_types::event::{CollectingReporter, Event, Reporter};
use skiff_types::image::BuiltImage;

/// The Docker engine from the test environment; `None` (skip) outside CI when it is down.
async fn engine_available() -> bool {
    let host = std::env::var("DOCKER_HOST").ok();
    match skiff_build::docker::DockerEngine::connect(host.as_deref()).await {
        Ok(_) => true,
        Err(error) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "the Docker engine is required in CI (start it with scripts/devenv/up docker): {error}"
            )
        }
        Err(error) => {
            eprintln!("skipping: no Docker engine ({error})");
            false
        }
    }
}

fn settings(artifacts: Vec<ArtifactSpec>) -> BuildSettings {
    let n = artifacts.len();
    BuildSettings {
        artifacts,
        tag_policies: vec![TagPolicy::InputDigest; n],
        push: Some(false),
        concurrency: 2,
        use_buildkit: false,
        insecure_registries: vec![],
        warm_builds: false,
        artifact_hooks: vec![],
        hooks: Default::default(),
    }
}

fn options(cache: &Path) -> BuildOptions {
    BuildOptions {
        env: BTreeMap::new(),
        cache_artifacts: true,
        cache_file: Some(cache.to_path_buf()),
        docker_host: std::env::var("DOCKER_HOST").ok(),
        ..Default::default()
    }
}

fn docker_artifact(image: &str, context: &Path, requires: Vec<Requirement>) -> ArtifactSpec {
    ArtifactSpec {
        image: image.into(),
        context: context.into(),
        builder: BuilderSpec::Docker(DockerSpec {
            dockerfile: "Dockerfile".into(),
            ..Default::default()
        }),
        requires,
        platforms: vec![],
    }
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("skiff-test/{name}-{}-{nanos}", std::process::id())
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

fn started(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::BuildStarted { image, .. } => Some(image.clone()),
            _ => None,
        })
        .collect()
}

fn cache_hits(events: &[Event]) -> Vec<(String, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::BuildFinished {
                image, cache_hit, ..
            } => Some((image.clone(), *cache_hit)),
            _ => None,
        })
        .collect()
}

/// A third party's builder, plugged in for one artifact without touching skiff's crates.
struct RecordingBuilder {
    seen: Mutex<Vec<(String, BTreeMap<String, String>)>>,
}

#[async_trait::async_trait]
impl Builder for RecordingBuilder {
    async fn build(
        &self,
        request: &BuildRequest<'_>,
        reporter: &dyn Reporter,
    ) -> Result<BuiltImage, BuildError> {
        reporter.report(Event::BuildOutput {
            image: request.artifact.image.clone(),
            line: "built by a plugged-in builder".into(),
        });
        self.seen
            .lock()
            .unwrap()
            .push((request.tag.to_string(), request.required.clone()));
        Ok(BuiltImage {
            image_name: request.artifact.image.clone(),
            reference: request.tag.clone(),
            image_id: None,
        })
    }
}

#[tokio::test]
async fn a_plugged_in_builder_builds_in_dependency_order() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = |image: &str, requires: Vec<Requirement>| ArtifactSpec {
        image: image.into(),
        context: dir.path().into(),
        builder: BuilderSpec::Unsupported {
            kind: "bazel".into(),
        },
        requires,
        platforms: vec![],
    };
    let mut settings = settings(vec![
        artifact(
            "app",
            vec![Requirement {
                image: "base".into(),
                alias: Some("BASE".into()),
            }],
        ),
        artifact("base", vec![]),
    ]);
    settings.tag_policies = vec![TagPolicy::Sha256; 2];
    let plugged = Arc::new(RecordingBuilder {
        seen: Mutex::new(Vec::new()),
    });
    let stage = BuildStage::new()
        .with_builder("app", plugged.clone())
        .with_builder("base", plugged.clone());
    let reporter = CollectingReporter::default();
    let options = BuildOptions {
        tag: Some("v7".into()),
        default_repo: Some("127.0.0.1:5000/team".into()),
        ..Default::default()
    };
    let outcome = stage.build(&settings, &options, &reporter).await.unwrap();
    let seen = plugged.seen.lock().unwrap().clone();
    assert_eq!(
        seen[0],
        ("127.0.0.1:5000/team/base:v7".to_owned(), BTreeMap::new())
    );
    assert_eq!(
        seen[1],
        (
            "127.0.0.1:5000/team/app:v7".to_owned(),
            BTreeMap::from([("BASE".to_owned(), "127.0.0.1:5000/team/base:v7".to_owned())])
        )
    );
    assert_eq!(outcome.images.len(), 2);
    assert!(!outcome.pushed);
    // Without the plug-in, the same artifact fails naming its kind.
    let error = BuildStage::new()
        .build(&settings, &options, &reporter)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("`bazel` builder"), "{error}");
}

/// `build.artifacts[].hooks` run around each artifact's build with Skaffold's variables, and
/// `build.hooks` around the whole build; a failing pre-build hook fails that build.
#[tokio::test]
async fn build_hooks_run_around_builds_with_skaffolds_variables() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let sh = |script: String| skiff_hooks::HostHook {
        command: vec!["sh".into(), "-c".into(), script],
        os: vec![],
        dir: None,
    };
    let artifact = ArtifactSpec {
        image: "app".into(),
        context: dir.path().into(),
        builder: BuilderSpec::Unsupported {
            kind: "bazel".into(),
        },
        requires: vec![],
        platforms: vec![],
    };
    let mut settings = settings(vec![artifact]);
    let record = |what: &str| {
        sh(format!(
            "echo \"{what} $SKAFFOLD_IMAGE $SKAFFOLD_IMAGE_REPO $SKAFFOLD_IMAGE_TAG $SKAFFOLD_PUSH_IMAGE $SKAFFOLD_BUILD_CONTEXT $SKAFFOLD_DEFAULT_REPO\" >> {}",
            log.display()
        ))
    };
    settings.artifact_hooks = vec![BuildHooks {
        before: vec![record("before")],
        after: vec![record("after")],
    }];
    settings.hooks = BuildHooks {
        before: vec![sh(format!("echo phase-before >> {}", log.display()))],
        after: vec![sh(format!("echo phase-after >> {}", log.display()))],
    };
    let plugged = Arc::new(RecordingBuilder {
        seen: Mutex::new(Vec::new()),
    });
    let stage = BuildStage::new().with_builder("app", plugged.clone());
    let options = BuildOptions {
        tag: Some("v7".into()),
        default_repo: Some("127.0.0.1:5000/team".into()),
        env: BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]),
        ..Default::default()
    };
    let reporter = CollectingReporter::default();
    stage.build(&settings, &options, &reporter).await.unwrap();
    let context = dir.path().display();
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!(
            "phase-before\n\
             before 127.0.0.1:5000/team/app:v7 127.0.0.1:5000/team/app v7 false {context} 127.0.0.1:5000/team\n\
             after 127.0.0.1:5000/team/app:v7 127.0.0.1:5000/team/app v7 false {context} 127.0.0.1:5000/team\n\
             phase-after\n"
        )
    );
    let messages = reporter.messages();
    assert!(
        messages.contains(&"Starting pre-build hooks...".to_owned()),
        "{messages:?}"
    );

    settings.artifact_hooks[0].before = vec![sh("echo no toolchain >&2; exit 4".into())];
    let built_before = plugged.seen.lock().unwrap().len();
    let error = stage
        .build(&settings, &options, &reporter)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("build.artifacts[app].hooks.before: pre-build hook"),
        "{error}"
    );
    assert!(error.contains("no toolchain"), "{error}");
    assert_eq!(
        plugged.seen.lock().unwrap().len(),
        built_before,
        "nothing was built"
    );
}

#[tokio::test]
async fn required_artifacts_reach_dependents_and_unchanged_ones_come_from_the_cache() {
    if !engine_available().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (base_dir, app_dir) = (dir.path().join("base"), dir.path().join("app"));
    write(
        &base_dir,
        "Dockerfile",
        "FROM scratch\nCOPY base.txt /base.txt\n",
    );
    write(&base_dir, "base.txt", "base v1\n");
    write(
        &app_dir,
        "Dockerfile",
        "ARG BASE\nFROM ${BASE}\nARG BASE\nCOPY app.txt /app.txt\nLABEL base=${BASE}\n",
    );
    write(&app_dir, "app.txt", "app v1\n");
    let (base, app) = (unique("base"), unique("app"));
    let artifacts = vec![
        docker_artifact(
            &app,
            &app_dir,
            vec![Requirement {
                image: base.clone(),
                alias: Some("BASE".into()),
            }],
        ),
        docker_artifact(&base, &base_dir, vec![]),
    ];
    let settings = settings(artifacts);
    let cache = dir.path().join("cache/artifacts.json");

    let reporter = CollectingReporter::default();
    let first = BuildStage::new()
        .build(&settings, &options(&cache), &reporter)
        .await
        .unwrap();
    let events = reporter.events();
    assert_eq!(
        started(&events),
        [base.clone(), app.clone()],
        "base builds first"
    );
    let app_ref = first
        .images
        .iter()
        .find(|i| i.image_name == app)
        .unwrap()
        .reference
        .to_string();
    let base_ref = first
        .images
        .iter()
        .find(|i| i.image_name == base)
        .unwrap()
        .reference
        .to_string();
    let label = std::process::Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{index .Config.Labels \"base\"}}",
            &app_ref,
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), base_ref);
    assert!(cache.is_file(), "the cache persists");

    // Unchanged: both from the cache, no build at all.
    let reporter = CollectingReporter::default();
    let second = BuildStage::new()
        .build(&settings, &options(&cache), &reporter)
        .await
        .unwrap();
    let events = reporter.events();
    assert!(started(&events).is_empty(), "{events:?}");
    assert_eq!(
        cache_hits(&events),
        [(base.clone(), true), (app.clone(), true)]
    );
    assert_eq!(second.images, first.images);

    // A changed dependency of base rebuilds base and, through its key, app.
    write(&base_dir, "base.txt", "base v2\n");
    let reporter = CollectingReporter::default();
    BuildStage::new()
        .build(&settings, &options(&cache), &reporter)
        .await
        .unwrap();
    assert_eq!(started(&reporter.events()), [base.clone(), app.clone()]);

    // A file the Dockerfile does not copy changes nothing.
    write(&app_dir, "notes.md", "not in the image\n");
    let reporter = CollectingReporter::default();
    BuildStage::new()
        .build(&settings, &options(&cache), &reporter)
        .await
        .unwrap();
    assert!(started(&reporter.events()).is_empty());

    // --cache-artifacts=false builds again.
    let reporter = CollectingReporter::default();
    let no_cache = BuildOptions {
        cache_artifacts: false,
        ..options(&cache)
    };
    BuildStage::new()
        .build(&settings, &no_cache, &reporter)
        .await
        .unwrap();
    assert_eq!(started(&reporter.events()).len(), 2);

    for image in [&app, &base] {
        let _ = std::process::Command::new("sh")
            .args([
                "-c",
                &format!(
                    "docker images -q {image} | xargs -r docker rmi -f --no-prune >/dev/null 2>&1"
                ),
            ])
            .status();
    }
}

#[tokio::test]
async fn a_failed_build_keeps_what_was_built_and_the_cache() {
    if !engine_available().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ok/Dockerfile",
        "FROM scratch\nCOPY a.txt /a.txt\n",
    );
    write(dir.path(), "ok/a.txt", "a\n");
    write(
        dir.path(),
        "bad/Dockerfile",
        "FROM scratch\nCOPY missing.txt /m\n",
    );
    let (ok, bad) = (unique("ok"), unique("bad"));
    let mut settings = settings(vec![
        docker_artifact(&ok, &dir.path().join("ok"), vec![]),
        docker_artifact(&bad, &dir.path().join("bad"), vec![]),
    ]);
    settings.concurrency = 1;
    let cache = dir.path().join("cache.json");
    let error = BuildStage::new()
        .build(&settings, &options(&cache), &CollectingReporter::default())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("missing.txt"), "{error}");
    // The good image was built, cached, and is reused on the next run.
    let reporter = CollectingReporter::default();
    let only_ok = BuildOptions {
        only: vec![ok.clone()],
        ..options(&cache)
    };
    BuildStage::new()
        .build(&settings, &only_ok, &reporter)
        .await
        .unwrap();
    assert_eq!(cache_hits(&reporter.events()), [(ok.clone(), true)]);
    let _ = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("docker images -q {ok} | xargs -r docker rmi -f --no-prune >/dev/null 2>&1"),
        ])
        .status();
}

fn engine_tags(repository: &str) -> Vec<String> {
    let output = std::process::Command::new("docker")
        .args(["images", "--format", "{{.Tag}}", repository])
        .output()
        .unwrap();
    assert!(output.status.success());
    let mut tags: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    tags.sort();
    tags
}

fn is_image_id_tag(tag: &str) -> bool {
    tag.len() == 64 && tag.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn images_not_pushed_are_deployed_by_image_id_and_unused_old_ones_are_pruned() {
    if !engine_available().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Dockerfile",
        "FROM scratch\nCOPY a.txt /a.txt\n",
    );
    let repository = unique("by-id");
    let mut settings = settings(vec![docker_artifact(&repository, dir.path(), vec![])]);
    // `sha256` tags every build `latest`: only the image ID tells the builds apart.
    settings.tag_policies = vec![TagPolicy::Sha256];
    let cache = dir.path().join("cache.json");
    let build = |content: &'static str| {
        let settings = settings.clone();
        let options = options(&cache);
        let dir = dir.path().to_path_buf();
        async move {
            write(&dir, "a.txt", content);
            let outcome = BuildStage::new()
                .build(&settings, &options, &CollectingReporter::default())
                .await
                .unwrap();
            outcome.images[0].clone()
        }
    };
    let inspect_id = |reference: &str| {
        let output = std::process::Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}}", reference])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };

    let first = build("one\n").await;
    let id = first.image_id.clone().unwrap();
    assert_eq!(
        first.reference.to_string(),
        format!("{repository}:{}", id.trim_start_matches("sha256:"))
    );
    assert_eq!(inspect_id(&first.reference.to_string()), id);
    // The tagger's tag stays on the image too.
    assert_eq!(inspect_id(&format!("{repository}:latest")), id);
    // Same content, same reference (from the cache or not).
    assert_eq!(build("one\n").await, first);
    // A tag that is not an image ID is never skiff's to remove.
    let kept_by_user = format!("{repository}:kept-by-user");
    let status = std::process::Command::new("docker")
        .args(["tag", &first.reference.to_string(), &kept_by_user])
        .status()
        .unwrap();
    assert!(status.success());

    let second = build("two\n").await;
    assert_ne!(second.reference, first.reference);
    // A container made from the second image keeps its tag however old it gets.
    let container = format!("{}-user", repository.replace('/', "-"));
    let status = std::process::Command::new("docker")
        .args([
            "create",
            "--name",
            &container,
            &second.reference.to_string(),
            "/a.txt",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let mut newest = Vec::new();
    for content in ["three\n", "four\n", "five\n", "six\n"] {
        newest.push(build(content).await.reference.tag().unwrap().to_owned());
    }
    let tags = engine_tags(&repository);
    let id_tags: Vec<&String> = tags.iter().filter(|t| is_image_id_tag(t)).collect();
    let mut expected: Vec<String> = newest[1..].to_vec();
    expected.push(second.reference.tag().unwrap().to_owned());
    expected.sort();
    assert_eq!(id_tags, expected.iter().collect::<Vec<_>>(), "{tags:?}");
    assert!(tags.contains(&"latest".to_owned()), "{tags:?}");
    assert!(tags.contains(&"kept-by-user".to_owned()), "{tags:?}");

    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", &container])
        .output();
    let _ = std::process::Command::new("sh")
        .args([
            "-c",
            &format!(
                "docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' {repository} | xargs -r docker rmi -f >/dev/null 2>&1"
            ),
        ])
        .status();
}
