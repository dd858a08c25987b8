//! `skiff build` through the binary, against the real Docker engine and registry.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::Path;
use std::process::{Command, Output};

fn skiff(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_skiff"));
    command.current_dir(dir).args(args).env("NO_COLOR", "1");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

fn engine_available() -> bool {
    let ok = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var("CI").as_deref() == Ok("true") {
        panic!("the Docker engine is required in CI (scripts/devenv/up docker)");
    }
    if !ok {
        eprintln!("skipping: no Docker engine");
    }
    ok
}

fn registry() -> String {
    std::env::var("SKIFF_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into())
}

/// A `FROM scratch` project whose image is a static binary compiled here.
fn project(dir: &Path, image: &str) {
    std::fs::write(
        dir.join("hello.c"),
        "#include <stdio.h>\nint main(void){puts(\"hello from skiff\");return 0;}\n",
    )
    .unwrap();
    let gcc = Command::new("gcc")
        .args(["-static", "-O2", "-o", "hello", "hello.c"])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(gcc.success());
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY hello /hello\nENTRYPOINT [\"/hello\"]\n",
    )
    .unwrap();
    std::fs::write(dir.join(".dockerignore"), "hello.c\n*.json\n").unwrap();
    std::fs::write(
        dir.join("skaffold.yaml"),
        format!("apiVersion: skaffold/v4\nkind: Config\nbuild:\n  tagPolicy:\n    inputDigest: {{}}\n  artifacts:\n  - image: {image}\n"),
    )
    .unwrap();
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{}/skiff-cli-test/{name}-{}-{nanos}",
        registry(),
        std::process::id()
    )
}

#[test]
fn build_writes_file_output_reuses_the_cache_and_pushes() {
    if !engine_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = unique("hello");
    project(dir.path(), &image);
    let cache = dir.path().join("cache.json");
    let cache_arg = format!("--cache-file={}", cache.display());

    let first = skiff(
        dir.path(),
        &["build", "--file-output", "out.json", &cache_arg],
        &[],
    );
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(stdout.contains(&format!("Building [{image}]")), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out.json")).unwrap())
            .unwrap();
    let tag = json["builds"][0]["tag"].as_str().unwrap().to_owned();
    assert_eq!(json["builds"][0]["imageName"], image.as_str());
    // Not pushed: the reference names the image's content (`name:<image ID>`), as Skaffold's.
    let id = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", &tag])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&id.stdout).trim().to_owned();
    assert_eq!(tag, format!("{image}:{}", id.trim_start_matches("sha256:")));
    let run = Command::new("docker")
        .args(["run", "--rm", &tag])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hello from skiff\n");

    // Unchanged: a cache hit, and -q prints only the JSON.
    let second = skiff(dir.path(), &["build", "-q", &cache_arg], &[]);
    assert!(second.status.success());
    let out: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(out["builds"][0]["tag"], tag.as_str());

    // --push: the reference carries the registry's digest.
    let pushed = skiff(dir.path(), &["build", "-q", "--push", &cache_arg], &[]);
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let out: serde_json::Value = serde_json::from_slice(&pushed.stdout).unwrap();
    let reference = out["builds"][0]["tag"].as_str().unwrap();
    // Pushed: the tagger's tag (the input digest here) and the registry's digest.
    let (tagged, digest) = reference.split_once('@').unwrap();
    assert!(digest.starts_with("sha256:"), "{reference}");
    assert!(tagged.starts_with(&format!("{image}:")), "{reference}");
    assert_ne!(tagged, tag, "{reference}");

    let _ = Command::new("sh")
        .args([
            "-c",
            &format!(
                "docker images -q {image} | xargs -r docker rmi -f --no-prune >/dev/null 2>&1"
            ),
        ])
        .status();
}

#[test]
fn engine_down_says_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), "skiff-cli-test/down");
    let out = skiff(
        dir.path(),
        &["build", "--cache-artifacts=false"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the Docker engine at unix:///nonexistent/docker.sock"),
        "{stderr}"
    );
    // The library says what to do without naming this repository's scripts.
    assert!(
        stderr.contains("start the engine, or point DOCKER_HOST at one"),
        "{stderr}"
    );
    assert!(!stderr.contains("scripts/devenv"), "{stderr}");
}

#[test]
fn unknown_build_image_lists_the_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), "skiff-cli-test/list");
    let out = skiff(dir.path(), &["build", "-b", "nope"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "--build-image nope: no artifact builds that image; artifacts: skiff-cli-test/list"
        ),
        "{stderr}"
    );
}

/// The `test` section runs on what was built, with `IMAGE` set, and hooks around the build;
/// a failing test fails `skiff build` unless `--skip-tests`.
#[test]
fn build_runs_hooks_and_tests_of_the_built_image() {
    if !engine_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = unique("tested");
    project(dir.path(), &image);
    let yaml = std::fs::read_to_string(dir.path().join("skaffold.yaml")).unwrap();
    let yaml = yaml.replace(
        &format!("  - image: {image}\n"),
        &format!(
            "  - image: {image}\n    hooks:\n      before:\n      - command: [sh, -c, 'echo building $SKAFFOLD_IMAGE_REPO']\n      after:\n      - command: [sh, -c, 'echo built $SKAFFOLD_IMAGE_TAG']\n"
        ),
    ) + &format!(
        "test:\n- image: {image}\n  custom:\n  - command: docker run --rm $IMAGE | grep -q 'hello from skiff' && echo tested $IMAGE\n  - command: test ! -f broken || (echo the test saw broken >&2; exit 1)\n    timeoutSeconds: 60\n"
    );
    std::fs::write(dir.path().join("skaffold.yaml"), yaml).unwrap();
    let docker_host = std::env::var("DOCKER_HOST").unwrap_or_default();
    let env = [("DOCKER_HOST", docker_host.as_str())];
    // Progress goes to standard output, errors to standard error (as Skaffold).
    let said = |out: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let out = skiff(dir.path(), &["build", "--push=false"], &env);
    let stderr = said(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("[pre-build hook] building {image}")),
        "{stderr}"
    );
    assert!(stderr.contains("[post-build hook] built "), "{stderr}");
    assert!(
        stderr.contains(&format!("[test {image}] tested {image}")),
        "{stderr}"
    );

    std::fs::write(dir.path().join("broken"), "").unwrap();
    let out = skiff(dir.path(), &["build", "--push=false"], &env);
    let stderr = said(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("test of {image} failed")),
        "{stderr}"
    );
    assert!(stderr.contains("the test saw broken"), "{stderr}");
    let out = skiff(dir.path(), &["build", "--push=false", "--skip-tests"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `skiff test`: the tests alone, against the tag the tagger computes (the input digest, as
    // the build tagged it), without a build.
    let out = skiff(dir.path(), &["test"], &env);
    let said_test = said(&out);
    assert_eq!(out.status.code(), Some(1), "{said_test}");
    assert!(said_test.contains("the test saw broken"), "{said_test}");
    assert!(!said_test.contains("Building"), "{said_test}");
    std::fs::remove_file(dir.path().join("broken")).unwrap();
    let out = skiff(dir.path(), &["test"], &env);
    let said_test = said(&out);
    assert!(out.status.success(), "{said_test}");
    assert!(
        said_test.contains(&format!("[test {image}] tested {image}:")),
        "{said_test}"
    );
    assert!(said_test.contains("tests passed in"), "{said_test}");
    // With `--images`, that image is what is tested.
    let out = skiff(
        dir.path(),
        &["test", "--images", &format!("{image}={image}:not-built")],
        &env,
    );
    let said_test = said(&out);
    assert_eq!(out.status.code(), Some(1), "{said_test}");
    assert!(
        said_test.contains(&format!("{image}:not-built")),
        "{said_test}"
    );

    let _ = Command::new("docker")
        .args(["image", "rm", "-f", &format!("{image}:latest")])
        .output();
}
