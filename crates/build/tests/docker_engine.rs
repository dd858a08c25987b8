//! The Docker builder against the real engine (`DOCKER_HOST`) and registry
//! (`SKIFF_TEST_REGISTRY`). Without them these tests skip locally and fail in CI.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use skiff_build::artifact::{BuilderSpec, CustomSpec, DockerSecret, DockerSpec};
use skiff_build::docker::{DockerBuilder, DockerEngine};
use skiff_build::{BuildError, Builder};
use skiff_types::event::{CollectingReporter, Event, NullReporter};
use skiff_types::image::ImageRef;
use skiff_types::template::Template;
use support::{
    Cleanup, docker_artifact, request, require_engine, require_registry, unique, write_files,
};

const HELLO_DOCKERFILE: &str = "FROM scratch\nARG GREETING\nCOPY hello /hello\nCOPY msg.txt /msg.txt\nENTRYPOINT [\"/hello\"]\n";

fn builder(engine: DockerEngine) -> DockerBuilder {
    DockerBuilder::new(Arc::new(engine), false)
}

fn no_env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn labels(inspect: &bollard::models::ImageInspect) -> std::collections::HashMap<String, String> {
    inspect
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn scratch_image_builds_and_runs() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let Some(hello) = support::hello_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            ("Dockerfile", HELLO_DOCKERFILE),
            ("msg.txt", "message from the build context\n"),
        ],
    );
    support::copy_binary(&hello, dir.path(), "hello");

    let name = unique("run");
    let tag = format!("{name}:v1");
    let mut cleanup = Cleanup::new();
    cleanup.image(&tag);
    let artifact = docker_artifact(&name, dir.path(), DockerSpec::default());
    let env = no_env();
    let builder = builder(engine);
    let built = builder
        .build(&request(&artifact, &tag, &env), &NullReporter)
        .await
        .unwrap();

    assert_eq!(built.image_name, name);
    assert_eq!(built.reference.to_string(), tag);
    let id = built.image_id.clone().unwrap();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(
        builder.engine().image_id(&built.reference).await.unwrap(),
        Some(id)
    );

    let (status, output) = support::run_image(builder.engine(), &tag).await;
    assert_eq!(status, 0, "{output}");
    assert!(output.contains("skiff-hello-marker"), "{output}");
    assert!(
        output.contains("message from the build context"),
        "{output}"
    );
}

#[tokio::test]
async fn build_args_and_templates_reach_the_build() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            (
                "Dockerfile",
                "FROM scratch\nARG TAG_ARG\nARG GREETING\nARG FROM_ENV\nARG UNSET=arg-default\n\
                 LABEL greeting=\"$GREETING\" tag=\"$TAG_ARG\" env=\"$FROM_ENV\" unset=\"$UNSET\"\n\
                 COPY msg.txt /msg.txt\n",
            ),
            ("msg.txt", "x\n"),
        ],
    );
    let name = unique("args");
    let tag = format!("{name}:t-42");
    let mut cleanup = Cleanup::new();
    cleanup.image(&tag);
    let spec = DockerSpec {
        build_args: BTreeMap::from([
            (
                "GREETING".to_owned(),
                Some(Template::parse("hello {{.WHO}}").unwrap()),
            ),
            (
                "TAG_ARG".to_owned(),
                Some(Template::parse("{{.IMAGE_TAG}}").unwrap()),
            ),
            ("FROM_ENV".to_owned(), None),
            ("UNSET".to_owned(), None),
        ]),
        ..DockerSpec::default()
    };
    let artifact = docker_artifact(&name, dir.path(), spec);
    let env = BTreeMap::from([
        ("WHO".to_owned(), "world".to_owned()),
        ("FROM_ENV".to_owned(), "taken from env".to_owned()),
    ]);
    let builder = builder(engine);
    builder
        .build(&request(&artifact, &tag, &env), &NullReporter)
        .await
        .unwrap();

    let inspect = builder.engine().client().inspect_image(&tag).await.unwrap();
    let labels = labels(&inspect);
    assert_eq!(
        labels.get("greeting").map(String::as_str),
        Some("hello world")
    );
    assert_eq!(labels.get("tag").map(String::as_str), Some("t-42"));
    assert_eq!(
        labels.get("env").map(String::as_str),
        Some("taken from env")
    );
    // A valueless arg missing from the environment is not sent: the ARG default applies.
    assert_eq!(labels.get("unset").map(String::as_str), Some("arg-default"));
}

#[tokio::test]
async fn output_lines_and_context_size_reach_the_reporter() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY msg.txt /msg.txt\nCOPY sub /sub\n",
            ),
            ("msg.txt", "hello\n"),
            ("sub/a.txt", &"a".repeat(3000)),
        ],
    );
    let name = unique("output");
    let tag = format!("{name}:v1");
    let mut cleanup = Cleanup::new();
    cleanup.image(&tag);
    let artifact = docker_artifact(&name, dir.path(), DockerSpec::default());
    let env = no_env();
    let reporter = CollectingReporter::default();
    builder(engine)
        .build(&request(&artifact, &tag, &env), &reporter)
        .await
        .unwrap();

    let events = reporter.events();
    let context = events.iter().find_map(|e| match e {
        Event::BuildContext {
            image,
            bytes,
            files,
        } => Some((image.clone(), *bytes, *files)),
        _ => None,
    });
    let (image, bytes, files) = context.expect("a BuildContext event");
    assert_eq!(image, name);
    assert!(bytes > 3000, "{bytes}");
    assert!(files >= 3, "{files}");

    let lines: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::BuildOutput { image, line } if *image == name => Some(line.clone()),
            _ => None,
        })
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Step 1/3 : FROM scratch")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("COPY sub /sub")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("Successfully tagged {tag}"))),
        "{lines:#?}"
    );
    assert!(
        lines.iter().all(|l| !l.is_empty() && !l.ends_with('\n')),
        "{lines:#?}"
    );
    // The context event comes before the first output line.
    let context_at = events
        .iter()
        .position(|e| matches!(e, Event::BuildContext { .. }))
        .unwrap();
    let first_line_at = events
        .iter()
        .position(|e| matches!(e, Event::BuildOutput { .. }))
        .unwrap();
    assert!(context_at < first_line_at);
}

#[tokio::test]
async fn push_returns_the_digest_the_registry_serves() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let Some(registry) = require_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            ("Dockerfile", "FROM scratch\nCOPY msg.txt /msg.txt\n"),
            ("msg.txt", &unique("content")),
        ],
    );
    let repo_path = unique("push");
    let name = format!("{registry}/{repo_path}");
    let tag = format!("{name}:v1");
    let mut cleanup = Cleanup::new();
    cleanup.image(&tag);
    let artifact = docker_artifact(&name, dir.path(), DockerSpec::default());
    let env = no_env();
    let mut req = request(&artifact, &tag, &env);
    req.push = true;
    let reporter = CollectingReporter::default();
    let builder = builder(engine);
    let built = builder.build(&req, &reporter).await.unwrap();

    let digest = built
        .reference
        .digest()
        .expect("a pushed reference carries its digest")
        .to_owned();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert_eq!(built.reference.to_string(), format!("{tag}@{digest}"));
    assert!(reporter.events().iter().any(|e| matches!(
        e,
        Event::Pushed { image, reference } if *image == name && *reference == built.reference.to_string()
    )));
    assert!(reporter.events().iter().any(|e| matches!(
        e,
        Event::BuildOutput { line, .. } if line.starts_with("push: ")
    )));

    let response = support::http_get(
        &registry,
        &format!("/v2/{repo_path}/manifests/v1"),
        Some("application/vnd.docker.distribution.manifest.v2+json"),
    )
    .unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.headers.get("docker-content-digest"),
        Some(&digest),
        "{response:?}"
    );

    // The engine's distribution endpoint reaches the (insecure, loopback) registry too.
    let remote = builder
        .engine()
        .remote_digest(&built.reference.with_tag("v1"))
        .await;
    assert_eq!(remote.as_ref(), Some(&digest));
    let absent = format!("{name}:no-such-tag");
    assert_eq!(builder.engine().remote_digest(&absent).await, None);

    // Pushing again (nothing new) reports the same digest.
    let again = builder
        .engine()
        .push(&tag.parse().unwrap(), None, &NullReporter, &name)
        .await
        .unwrap();
    assert_eq!(again, digest);
}

#[tokio::test]
async fn missing_dockerfile_is_reported() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("msg.txt", "x")]);
    let spec = DockerSpec {
        dockerfile: "build/Dockerfile.dev".into(),
        ..DockerSpec::default()
    };
    let artifact = docker_artifact("missing", dir.path(), spec);
    let env = no_env();
    let err = builder(engine)
        .build(&request(&artifact, "missing:v1", &env), &NullReporter)
        .await
        .unwrap_err();
    match err {
        BuildError::MissingDockerfile { image, path } => {
            assert_eq!(image, "missing");
            assert_eq!(path, dir.path().join("build/Dockerfile.dev"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn dockerfile_syntax_error_names_the_line() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY msg.txt /msg.txt\n\nFOO bar\n",
            ),
            ("msg.txt", "x"),
        ],
    );
    let name = unique("syntax");
    let artifact = docker_artifact(&name, dir.path(), DockerSpec::default());
    let env = no_env();
    let err = builder(engine)
        .build(
            &request(&artifact, &format!("{name}:v1"), &env),
            &NullReporter,
        )
        .await
        .unwrap_err();
    match &err {
        BuildError::Dockerfile {
            path,
            line,
            message,
        } => {
            assert_eq!(path, &dir.path().join("Dockerfile"));
            assert_eq!(*line, 4);
            assert!(
                message.to_lowercase().contains("unknown instruction"),
                "{message}"
            );
            assert!(message.contains("FOO"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("Dockerfile:4: "), "{err}");
}

#[tokio::test]
async fn unpullable_base_image_is_reported_as_such() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            (
                "Dockerfile",
                "FROM nosuchimage.invalid/x:1\nCOPY msg.txt /msg.txt\n",
            ),
            ("msg.txt", "x"),
        ],
    );
    let name = unique("base");
    let artifact = docker_artifact(&name, dir.path(), DockerSpec::default());
    let env = no_env();
    let err = builder(engine)
        .build(
            &request(&artifact, &format!("{name}:v1"), &env),
            &NullReporter,
        )
        .await
        .unwrap_err();
    match &err {
        BuildError::BaseImage {
            image,
            base,
            reason,
        } => {
            assert_eq!(image, &name);
            assert_eq!(base, "nosuchimage.invalid/x:1");
            assert!(reason.contains("nosuchimage.invalid"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("cannot be pulled"), "{message}");
    assert!(
        message.contains("cannot pull from the internet"),
        "{message}"
    );
}

#[tokio::test]
async fn engine_not_running_says_how_to_start_one() {
    for host in ["unix:///nonexistent.sock", "tcp://127.0.0.1:1"] {
        let err = DockerEngine::connect(Some(host)).await.unwrap_err();
        match &err {
            BuildError::EngineUnavailable { endpoint, reason } => {
                assert_eq!(endpoint, host);
                assert!(!reason.is_empty());
            }
            other => panic!("{host}: {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains(host), "{message}");
        assert!(message.contains("start the engine"), "{message}");
    }
    let err = DockerEngine::connect(Some("unix:///nonexistent.sock"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent.sock does not exist"),
        "{err}"
    );
    let err = DockerEngine::connect(Some("ssh://user@host"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BuildError::EngineUnavailable { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn unreachable_registry_is_named() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            ("Dockerfile", "FROM scratch\nCOPY msg.txt /msg.txt\n"),
            // Content no other test builds: tests run in parallel, and one test's cleanup
            // must not remove an image another test's build is reusing from the cache.
            ("msg.txt", &unique("unreachable-content")),
        ],
    );
    let name = format!("127.0.0.1:5999/{}", unique("unreachable"));
    let tag = format!("{name}:v1");
    let mut cleanup = Cleanup::new();
    cleanup.image(&tag);
    let artifact = docker_artifact(&name, dir.path(), DockerSpec::default());
    let env = no_env();
    let mut req = request(&artifact, &tag, &env);
    req.push = true;
    let builder = builder(engine);
    let err = builder.build(&req, &NullReporter).await.unwrap_err();
    match &err {
        BuildError::Push {
            reference,
            registry,
            reason,
        } => {
            assert_eq!(reference, &tag);
            assert_eq!(registry, "127.0.0.1:5999");
            assert!(
                reason.starts_with("registry 127.0.0.1:5999 unreachable: "),
                "{reason}"
            );
            assert!(reason.contains("connection refused"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // The build itself succeeded: the image is there to push later.
    assert!(builder.engine().image_id(&tag).await.unwrap().is_some());

    // Pushing an image the engine does not have says so.
    let absent: ImageRef = format!("127.0.0.1:5999/{}:v1", unique("absent"))
        .parse()
        .unwrap();
    let err = builder
        .engine()
        .push(&absent, None, &NullReporter, "absent")
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::Push { .. }), "{err:?}");
}

#[tokio::test]
async fn buildkit_only_options_are_refused() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let engine = Arc::new(engine);
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &[("Dockerfile", "FROM scratch\n")]);
    let with_secret = DockerSpec {
        secrets: vec![DockerSecret {
            id: "token".into(),
            env: Some("TOKEN".into()),
            src: None,
        }],
        ..DockerSpec::default()
    };
    let with_ssh = DockerSpec {
        ssh: Some("default".into()),
        ..DockerSpec::default()
    };
    let env = no_env();
    for (spec, feature) in [(with_secret, "secrets"), (with_ssh, "ssh")] {
        let artifact = docker_artifact("bk", dir.path(), spec);
        let classic = DockerBuilder::new(Arc::clone(&engine), false);
        let err = classic
            .build(&request(&artifact, "bk:v1", &env), &NullReporter)
            .await
            .unwrap_err();
        match &err {
            BuildError::NeedsBuildKit { image, feature: f } => {
                assert_eq!(image, "bk");
                assert_eq!(f, feature);
            }
            other => panic!("{other:?}"),
        }
        // Asking for BuildKit does not silently drop them either.
        let buildkit = DockerBuilder::new(Arc::clone(&engine), true);
        let err = buildkit
            .build(&request(&artifact, "bk:v1", &env), &NullReporter)
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, BuildError::Failed { .. }), "{err:?}");
        assert!(
            message.contains(feature) && message.contains("BuildKit session"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn other_builder_kinds_are_unsupported() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut artifact = docker_artifact("other", dir.path(), DockerSpec::default());
    let env = no_env();
    let builder = builder(engine);
    for (spec, kind) in [
        (BuilderSpec::Custom(CustomSpec::default()), "custom"),
        (BuilderSpec::Unsupported { kind: "jib".into() }, "jib"),
    ] {
        artifact.builder = spec;
        let err = builder
            .build(&request(&artifact, "other:v1", &env), &NullReporter)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, BuildError::Unsupported { kind: k, .. } if k == kind),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn failed_build_keeps_the_previous_image() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let Some(cat) = support::cat_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY cat /keep-cat\nCOPY msg.txt /msg.txt\nRUN [\"/keep-cat\", \"/msg.txt\"]\n",
            ),
            ("msg.txt", "version one\n"),
        ],
    );
    support::copy_binary(&cat, dir.path(), "cat");
    let name = unique("keep");
    let (v1, v2) = (format!("{name}:v1"), format!("{name}:v2"));
    let mut cleanup = Cleanup::new();
    cleanup.image(&v1);
    cleanup.image(&v2);
    let artifact = docker_artifact(&name, dir.path(), DockerSpec::default());
    let env = no_env();
    let builder = builder(engine);
    let reporter = CollectingReporter::default();
    let first = builder
        .build(&request(&artifact, &v1, &env), &reporter)
        .await
        .unwrap();
    assert!(
        reporter
            .events()
            .iter()
            .any(|e| matches!(e, Event::BuildOutput { line, .. } if line == "version one")),
        "RUN output is streamed"
    );

    write_files(
        dir.path(),
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY cat /keep-cat\nRUN [\"/keep-cat\", \"/does-not-exist\"]\n",
        )],
    );
    let err = builder
        .build(&request(&artifact, &v2, &env), &NullReporter)
        .await
        .unwrap_err();
    match &err {
        BuildError::Failed { image, reason } => {
            assert_eq!(image, &name);
            assert!(reason.contains("returned a non-zero code: 1"), "{reason}");
            // The last output lines are quoted.
            assert!(
                reason.contains("/does-not-exist: No such file or directory"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        builder.engine().image_id(&v1).await.unwrap(),
        first.image_id
    );
    assert_eq!(builder.engine().image_id(&v2).await.unwrap(), None);
}

#[tokio::test]
async fn extra_hosts_network_target_and_a_packed_archive() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let Some(cat) = support::cat_binary() else {
        return;
    };
    let cat = std::fs::read(cat).unwrap();
    // A context packed by hand, with the Dockerfile outside the root and a stage to stop at.
    let dockerfile = "FROM scratch AS tools\nCOPY cat /cat\nRUN [\"/cat\", \"/etc/hosts\"]\nLABEL stage=tools\n\
                      FROM tools AS final\nLABEL stage=final\n";
    let tar = support::tar_of(&[
        ("cat", &cat, 0o755),
        ("docker/Dockerfile.dev", dockerfile.as_bytes(), 0o644),
    ]);
    let name = unique("hosts");
    let tag = format!("{name}:v1");
    let mut cleanup = Cleanup::new();
    cleanup.image(&tag);
    let dir = tempfile::tempdir().unwrap();
    let spec = DockerSpec {
        dockerfile: "docker/Dockerfile.dev".into(),
        target: Some("tools".into()),
        add_hosts: vec![
            "a.skiff.test:10.1.2.3".into(),
            "b.skiff.test:10.4.5.6".into(),
        ],
        network: Some("bridge".into()),
        no_cache: true,
        ..DockerSpec::default()
    };
    let artifact = docker_artifact(&name, dir.path(), spec);
    let env = no_env();
    let reporter = CollectingReporter::default();
    let builder = builder(engine);
    let built = builder
        .build_archive(
            &request(&artifact, &tag, &env),
            tar,
            "docker/Dockerfile.dev",
            &reporter,
        )
        .await
        .unwrap();
    assert!(built.image_id.is_some());

    let lines: Vec<String> = reporter
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::BuildOutput { line, .. } => Some(line),
            _ => None,
        })
        .collect();
    let hosts_line =
        |host: &str, ip: &str| lines.iter().any(|l| l.contains(ip) && l.contains(host));
    assert!(hosts_line("a.skiff.test", "10.1.2.3"), "{lines:#?}");
    assert!(hosts_line("b.skiff.test", "10.4.5.6"), "{lines:#?}");

    let inspect = builder.engine().client().inspect_image(&tag).await.unwrap();
    assert_eq!(
        labels(&inspect).get("stage").map(String::as_str),
        Some("tools")
    );
}

#[tokio::test]
async fn use_buildkit_builds_with_the_classic_builder_and_says_so_once() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            ("Dockerfile", "FROM scratch\nCOPY msg.txt /msg.txt\n"),
            ("msg.txt", &unique("buildkit-content")),
        ],
    );
    let name = unique("buildkit");
    let mut cleanup = Cleanup::new();
    let builder = DockerBuilder::new(Arc::new(engine), true);
    let artifact = docker_artifact(&name, dir.path(), DockerSpec::default());
    let env = no_env();
    let reporter = CollectingReporter::default();
    for tag in ["v1", "v2"] {
        let tag = format!("{name}:{tag}");
        cleanup.image(&tag);
        builder
            .build(&request(&artifact, &tag, &env), &reporter)
            .await
            .unwrap();
    }
    let warnings: Vec<_> = reporter
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::Message { level: skiff_types::event::Level::Warning, text, .. } if text.contains("useBuildkit")))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
}

#[tokio::test]
async fn dockerignored_files_are_not_sent() {
    let Some(engine) = require_engine().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY keep.txt /keep.txt\nCOPY secret.txt /secret.txt\n",
            ),
            (".dockerignore", "secret.txt\n"),
            ("keep.txt", "keep"),
            ("secret.txt", "do not send"),
        ],
    );
    let name = unique("ignore");
    let mut cleanup = Cleanup::new();
    cleanup.image(format!("{name}:v1"));
    let artifact = docker_artifact(&name, dir.path(), DockerSpec::default());
    let env = no_env();
    let err = builder(engine)
        .build(
            &request(&artifact, &format!("{name}:v1"), &env),
            &NullReporter,
        )
        .await
        .unwrap_err();
    match &err {
        BuildError::Failed { reason, .. } => {
            assert!(reason.contains("secret.txt"), "{reason}");
            assert!(reason.contains("Step 3/3 : COPY secret.txt"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
