//! `skiff render` through the binary: the YAML it prints (golden snapshots of a small
//! multi-service app), its flags, its errors, and the digest sources against the real Docker
//! engine and registry.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");

fn app() -> PathBuf {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/render/app"
    );
    Path::new(dir).canonicalize().unwrap()
}

/// `skiff ARGS` in `dir` with stdin `input`, without `SKAFFOLD_*` from the outer environment,
/// and `PATH` limited to the system directories (no helm there).
fn skiff_in(dir: &Path, args: &[&str], env: &[(&str, &str)], input: Option<&str>) -> Output {
    let mut command = Command::new(SKIFF);
    command
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("SKAFFOLD_")) {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().unwrap();
    if let Some(input) = input {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn skiff(args: &[&str]) -> Output {
    skiff_in(&app(), args, &[], None)
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[track_caller]
fn success(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

#[track_caller]
fn failure(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
    assert!(output.stdout.is_empty(), "{}", stdout(output));
    stderr(output)
}

const IMAGES: &str =
    "localhost:5000/shop-web=localhost:5000/shop-web:v1,localhost:5000/shop-api=v2";

#[test]
fn renders_the_multi_service_app() {
    let output = skiff(&[
        "render",
        "--images",
        IMAGES,
        "--run-id",
        "test-run",
        "--offline",
    ]);
    let yaml = success(&output);
    assert_eq!(stderr(&output), "");
    insta::assert_snapshot!("render_app", yaml);
}

#[test]
fn namespace_and_labels_from_the_command_line() {
    let output = skiff(&[
        "render",
        "-i",
        IMAGES,
        "--run-id",
        "test-run",
        "-n",
        "team-a",
        "-l",
        "tier=backend,owner=payments",
        "--offline",
    ]);
    insta::assert_snapshot!("render_app_namespace_labels", success(&output));
}

#[test]
fn rendering_is_deterministic_and_writes_files() {
    let first = success(&skiff(&[
        "render",
        "-i",
        IMAGES,
        "--run-id",
        "r",
        "--offline",
    ]));
    let second = success(&skiff(&[
        "render",
        "-i",
        IMAGES,
        "--run-id",
        "r",
        "--offline",
    ]));
    assert_eq!(first, second);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rendered.yaml");
    let output = skiff(&[
        "render",
        "-i",
        IMAGES,
        "--run-id",
        "r",
        "--offline",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(success(&output), "");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), first);
}

#[test]
fn render_is_the_same_every_time_and_carries_no_run_id() {
    // The default run ID (one per project and target, see `skiff_runner::deploy::
    // project_run_id`) belongs to deploys; `render` prints none, as `skaffold render`.
    let first = success(&skiff(&["render", "-i", IMAGES, "--offline"]));
    let second = success(&skiff(&["render", "-i", IMAGES, "--offline"]));
    assert_eq!(
        first, second,
        "a second render of the same project changes nothing"
    );
    assert!(!first.contains("skaffold.dev/run-id"), "{first}");
}

#[test]
fn build_artifacts_from_a_file_or_stdin() {
    let json = r#"{"builds":[{"imageName":"localhost:5000/shop-web","tag":"localhost:5000/shop-web:v1"},{"imageName":"localhost:5000/shop-api","tag":"localhost:5000/shop-api:v2"}]}"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("builds.json");
    std::fs::write(&file, json).unwrap();
    let expected = success(&skiff(&[
        "render",
        "-i",
        IMAGES,
        "--run-id",
        "r",
        "--offline",
    ]));
    let from_file = skiff(&[
        "render",
        "--build-artifacts",
        file.to_str().unwrap(),
        "--run-id",
        "r",
        "--offline",
    ]);
    assert_eq!(success(&from_file), expected);
    let from_stdin = skiff_in(
        &app(),
        &["render", "-a", "-", "--run-id", "r", "--offline"],
        &[],
        Some(json),
    );
    assert_eq!(success(&from_stdin), expected);
    // --images wins over the file for the same artifact.
    let mixed = skiff(&[
        "render",
        "-a",
        file.to_str().unwrap(),
        "-i",
        "localhost:5000/shop-web=v9",
        "--run-id",
        "r",
        "--offline",
    ]);
    let yaml = success(&mixed);
    assert!(
        yaml.contains("image: localhost:5000/shop-web:v9\n"),
        "{yaml}"
    );
    assert!(
        yaml.contains("image: localhost:5000/shop-api:v2\n"),
        "{yaml}"
    );
}

#[test]
fn digest_source_tag_uses_the_tag_policy_and_none_keeps_the_manifests() {
    // The app's tag policy is `sha256`: the tag is `latest`.
    let tagged = success(&skiff(&["render", "--digest-source=tag", "--run-id", "r"]));
    assert!(
        tagged.contains("image: localhost:5000/shop-web:latest\n"),
        "{tagged}"
    );
    assert!(
        tagged.contains("image: localhost:5000/shop-api:latest\n"),
        "{tagged}"
    );
    // --default-repo rewrites the built name; manifests still name the configured one.
    let rewritten = success(&skiff(&[
        "render",
        "--digest-source",
        "tag",
        "-d",
        "registry.example.com/team",
        "-t",
        "v5",
        "--run-id",
        "r",
    ]));
    assert!(
        rewritten.contains("image: registry.example.com/team/localhost_5000_shop-web:v5\n"),
        "{rewritten}"
    );
    let kept = success(&skiff(&["render", "--digest-source=none", "--run-id", "r"]));
    assert!(kept.contains("image: localhost:5000/shop-web\n"), "{kept}");
    assert!(
        kept.contains("image: localhost:5000/shop-api:latest\n"),
        "{kept}"
    );
    assert!(
        kept.contains("image: prom/statsd-exporter:v0.26.0\n"),
        "{kept}"
    );
}

fn project(yaml: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("skaffold.yaml"), yaml).unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

#[test]
fn a_strict_template_with_an_unset_variable_fails_only_where_it_is_used() {
    let dir = project(
        "apiVersion: skaffold/v4\nkind: Config\nmanifests:\n  rawYaml: [k8s/*.yaml]\nportForward:\n- resourceType: service\n  resourceName: \"web-{{.STAGE}}\"\n  port: 80\n",
        &[(
            "k8s/pod.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: nginx\n",
        )],
    );
    // Rendering does not use port-forward targets: it works, with a warning.
    let output = skiff_in(dir.path(), &["render", "--offline"], &[], None);
    assert!(success(&output).contains("name: web"));
    assert!(
        stderr(&output).contains("portForward[0].resourceName"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn render_without_a_run_id_adds_no_run_labels() {
    let dir = project(
        "apiVersion: skaffold/v4\nkind: Config\nmanifests:\n  rawYaml: [k8s/*.yaml]\n",
        &[(
            "k8s/pod.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: nginx\n",
        )],
    );
    let out = success(&skiff_in(dir.path(), &["render", "--offline"], &[], None));
    assert!(!out.contains("skaffold.dev/run-id"), "{out}");
    assert!(!out.contains("managed-by"), "{out}");
    let out = success(&skiff_in(
        dir.path(),
        &["render", "--offline", "--label", "team=a"],
        &[],
        None,
    ));
    assert!(out.contains("team: a"), "{out}");
    assert!(!out.contains("skaffold.dev/run-id"), "{out}");
}

#[test]
fn the_default_glob_matching_nothing_warns_any_other_fails() {
    // Skaffold's default `k8s/*.yaml` in a project without manifests: a warning, no objects.
    let dir = project("apiVersion: skaffold/v4\nkind: Config\n", &[]);
    let output = skiff_in(dir.path(), &["render", "--offline"], &[], None);
    assert_eq!(success(&output), "");
    assert!(
        stderr(&output).contains("k8s/*.yaml did not match any file"),
        "{}",
        stderr(&output)
    );

    // Any other list: Skaffold's validation fails, naming the entry; so does skiff.
    let dir = project(
        "apiVersion: skaffold/v4\nkind: Config\nmanifests:\n  rawYaml: [deploy/*.yaml]\n",
        &[],
    );
    let error = failure(&skiff_in(dir.path(), &["render", "--offline"], &[], None));
    assert!(
        error.starts_with("error: manifests.rawYaml: `deploy/*.yaml` matches no file (in "),
        "{error}"
    );
}

#[test]
fn bad_yaml_fails_with_file_document_and_line() {
    let dir = project(
        "apiVersion: skaffold/v4\nkind: Config\nmanifests:\n  rawYaml: [k8s/*.yaml]\n",
        &[(
            "k8s/app.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  labels: {oops\n",
        )],
    );
    let error = failure(&skiff_in(dir.path(), &["render", "--offline"], &[], None));
    let file = dir.path().join("k8s/app.yaml").canonicalize().unwrap();
    assert!(
        error.starts_with(&format!("error: {}:", file.display())),
        "{error}"
    );
    assert!(error.contains(": document 2: invalid YAML: "), "{error}");
    let line: usize = error[format!("error: {}:", file.display()).len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((9..=10).contains(&line), "{error}");
}

#[test]
fn kpt_and_missing_helm_are_clear_errors() {
    let kpt = project(
        "apiVersion: skaffold/v4\nkind: Config\nmanifests:\n  kpt: [config]\n",
        &[],
    );
    let error = failure(&skiff_in(kpt.path(), &["render", "--offline"], &[], None));
    assert!(
        error.starts_with("error: manifests.kpt is not supported by skiff yet (config)"),
        "{error}"
    );
    let helm = project(
        "apiVersion: skaffold/v4\nkind: Config\nmanifests:\n  helm:\n    releases:\n    - name: web\n      chartPath: charts/web\n",
        &[],
    );
    let error = failure(&skiff_in(helm.path(), &["render", "--offline"], &[], None));
    assert!(
        error.starts_with("error: helm release `web` needs `helm`, which is not installed (looked in: /usr/local/bin:/usr/bin:/bin)"),
        "{error}"
    );
}

#[test]
fn kustomize_through_kubectl() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("kubectl is required in CI");
        }
        eprintln!("skipping: no kubectl");
        return;
    }
    let dir = project(
        "apiVersion: skaffold/v4\nkind: Config\nbuild:\n  artifacts:\n  - image: localhost:5000/web\nmanifests:\n  kustomize:\n    paths: [overlay]\n",
        &[
            ("base/kustomization.yaml", "resources: [pod.yaml]\n"),
            (
                "base/pod.yaml",
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: localhost:5000/web\n",
            ),
            (
                "overlay/kustomization.yaml",
                "resources: [../base]\nnamespace: staging\nnameSuffix: -v2\n",
            ),
        ],
    );
    let output = skiff_in(
        dir.path(),
        &[
            "render",
            "-i",
            "localhost:5000/web=abc",
            "--run-id",
            "r",
            "-v",
            "info",
        ],
        &[],
        None,
    );
    let yaml = success(&output);
    assert_eq!(
        yaml,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-v2\n  namespace: staging\n  labels:\n    app.kubernetes.io/managed-by: skiff\n    skaffold.dev/run-id: r\nspec:\n  containers:\n  - image: localhost:5000/web:abc\n    name: web\n"
    );
    assert!(
        stderr(&output).contains("kubectl kustomize"),
        "{}",
        stderr(&output)
    );
}

fn engine_and_registry() -> Option<String> {
    let ok = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("the Docker engine is required in CI (scripts/devenv/up docker registry)");
        }
        eprintln!("skipping: no Docker engine");
        return None;
    }
    Some(std::env::var("SKIFF_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into()))
}

/// `local` builds, `remote` finds the pushed image's digest without building, `tag` only
/// computes: all three agree on the tag.
#[test]
fn local_remote_and_tag_digest_sources() {
    let Some(registry) = engine_and_registry() else {
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let image = format!(
        "{registry}/skiff-cli-test/render-{}-{nanos}",
        std::process::id()
    );
    let dir = project(
        &format!(
            "apiVersion: skaffold/v4\nkind: Config\nbuild:\n  tagPolicy: {{inputDigest: {{}}}}\n  artifacts:\n  - image: {image}\nmanifests:\n  rawYaml: [pod.yaml]\n"
        ),
        &[
            ("Dockerfile", "FROM scratch\nCOPY msg.txt /msg.txt\n"),
            ("msg.txt", "hello\n"),
            (
                "pod.yaml",
                &format!(
                    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: p\n    image: {image}\n"
                ),
            ),
        ],
    );
    let env: Vec<(String, String)> = ["DOCKER_HOST", "HOME"]
        .iter()
        .filter_map(|k| Some(((*k).to_owned(), std::env::var(k).ok()?)))
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let cache = format!("--cache-file={}", dir.path().join("cache.json").display());
    let image_of = |yaml: &str| {
        yaml.lines()
            .find_map(|l| l.trim().strip_prefix("image: "))
            .unwrap()
            .to_owned()
    };

    let tagged = image_of(&success(&skiff_in(
        dir.path(),
        &["render", "--digest-source=tag"],
        &env,
        None,
    )));
    assert!(tagged.starts_with(&format!("{image}:")), "{tagged}");

    // Not pushed yet: remote cannot find it.
    let error = failure(&skiff_in(
        dir.path(),
        &["render", "--digest-source=remote"],
        &env,
        None,
    ));
    assert!(
        error.contains(&format!("failed to resolve the digest of {tagged}")),
        "{error}"
    );

    let local = skiff_in(
        dir.path(),
        &["render", "--digest-source=local", "--loud", &cache],
        &env,
        None,
    );
    // Built and not pushed: the reference names the image's content (`name:<image ID>`).
    let built = image_of(&success(&local));
    let id = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", &tagged])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&id.stdout).trim().to_owned();
    assert_eq!(
        built,
        format!("{image}:{}", id.trim_start_matches("sha256:"))
    );
    assert!(
        stderr(&local).contains(&format!("Building [{image}]")),
        "{}",
        stderr(&local)
    );

    let pushed = skiff_in(dir.path(), &["build", "-q", "--push", &cache], &env, None);
    let out: serde_json::Value = serde_json::from_slice(&pushed.stdout).unwrap();
    let reference = out["builds"][0]["tag"].as_str().unwrap().to_owned();
    assert!(
        reference.starts_with(&format!("{tagged}@sha256:")),
        "{reference}"
    );
    let remote = success(&skiff_in(
        dir.path(),
        &["render", "--digest-source=remote"],
        &env,
        None,
    ));
    assert_eq!(image_of(&remote), reference);

    let _ = Command::new("sh")
        .args([
            "-c",
            &format!(
                "docker images -q {image} | xargs -r docker rmi -f --no-prune >/dev/null 2>&1"
            ),
        ])
        .status();
}
