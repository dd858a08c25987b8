//! The article's Go service (`examples/go-webapp`: multi-stage Dockerfile on
//! `golang:1.22-alpine` and `alpine:3.19`, its Deployment and skaffold.yaml) driven as a new user
//! drives it: the default tagger in a git repository (a dirty tree after the first edit),
//! outside git (`latest`), the `sha256` tagger, several edits, a second `run`. Every edit must
//! reach what runs — the first wave rebuilt under the same tag and never rolled out.
//!
//! The base images are the stand-ins `scripts/devenv/up` builds (nothing can be pulled here).

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use skiff_e2e::harness::*;

/// A Go build from a cold build cache takes most of a minute on 2 cores, more when other
/// tests build at the same time.
const BUILD: Duration = Duration::from_secs(420);

fn parts_available(kubernetes: bool) -> bool {
    docker_available() && (!kubernetes || kube_available()) && base_images_available()
}

fn base_images_available() -> bool {
    ["golang:1.22-alpine", "alpine:3.19"].iter().all(|image| {
        Command::new("docker")
            .args(["image", "inspect", image])
            .output()
            .is_ok_and(|o| o.status.success())
            || missing(&format!(
                "the stand-in base image {image} is missing (`scripts/devenv/up docker` builds it)"
            ))
    })
}

fn kubectl(args: &[&str]) -> String {
    let output = Command::new("kubectl").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// `name restarts image` of each pod of the Deployment `app`, not being deleted.
fn pods(app: &str) -> Vec<String> {
    let text = kubectl(&[
        "get",
        "pods",
        "-l",
        &format!("app={app}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.containerStatuses[0].restartCount} {.spec.containers[0].image} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ]);
    text.lines()
        .filter(|l| l.split(' ').nth(3).is_none_or(str::is_empty))
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .collect()
}

/// The image reference the Deployment `app` runs.
fn deployed_image(app: &str) -> String {
    kubectl(&[
        "get",
        "deployment",
        app,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ])
}

/// `repository:<64 hex>`: the reference names the image's content, not the tagger's tag.
fn assert_content_reference(reference: &str, repository: &str) {
    let tag = reference
        .strip_prefix(&format!("{repository}:"))
        .unwrap_or_else(|| panic!("{reference} is not a tag of {repository}"));
    assert!(
        tag.len() == 64 && tag.bytes().all(|b| b.is_ascii_hexdigit()),
        "{reference}: the deployed tag is not an image ID"
    );
}

fn the_forwarded_address(skiff: &mut Skiff, from: usize) -> String {
    skiff.wait_line(from, BUILD, |l| {
        l.starts_with("Port forwarding ")
            .then(|| forwarded_address(l))
            .flatten()
    })
}

/// `skiff dev` serves the first version, then each of `edits` in turn.
fn dev_serves_every_edit(dir: &Path, args: &[&str], edits: &[&str]) -> Skiff {
    let mut skiff = Skiff::start(dir, args);
    let address = the_forwarded_address(&mut skiff, 0);
    wait_served(&address, "hello from go-webapp", BUILD, &skiff);
    for edit in edits {
        let mark = skiff.line_count();
        set_go_message(dir, edit);
        wait_served(&address, edit, BUILD, &skiff);
        skiff.wait_line(mark, BUILD, |l| l.starts_with("main.go → ").then_some(()));
    }
    skiff
}

#[test]
fn kubernetes_in_git_with_the_default_tagger_serves_every_edit() {
    if !parts_available(true) {
        return;
    }
    let name = unique("go-webapp-git");
    let repository = format!("localhost:5000/{name}");
    let dir = go_webapp_copy(&name);
    git_commit_all(dir.path());
    let _images = EngineImages(repository.clone());
    let mut skiff = Skiff::start(dir.path(), &["dev", "--port-forward=pods"]);
    let address = the_forwarded_address(&mut skiff, 0);
    wait_served(&address, "hello from go-webapp", BUILD, &skiff);
    let mut deployed = vec![deployed_image(&name)];
    assert_content_reference(&deployed[0], &repository);
    for edit in ["first edit", "second edit", "third edit"] {
        set_go_message(dir.path(), edit);
        wait_served(&address, edit, BUILD, &skiff);
        let now = deployed_image(&name);
        assert_content_reference(&now, &repository);
        assert!(
            !deployed.contains(&now),
            "{now} was deployed before:\n{}",
            skiff.output()
        );
        deployed.push(now);
    }
    // The tagger's own tag (gitCommit, dirty tree) is still on the newest image.
    let tags = Command::new("docker")
        .args(["images", "--format", "{{.Tag}}", &repository])
        .output()
        .unwrap();
    let tags = String::from_utf8_lossy(&tags.stdout);
    assert!(
        tags.lines().any(|t| t.ends_with("-dirty")),
        "no gitCommit tag among {tags}"
    );
    skiff.stop(BUILD);
}

#[test]
fn docker_target_in_git_with_the_default_tagger_serves_every_edit() {
    if !parts_available(false) {
        return;
    }
    let name = unique("go-webapp-dgit");
    let dir = go_webapp_copy(&name);
    let config = dir.path().join("skaffold.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}profiles:\n- name: docker\n  deploy:\n    docker:\n      images:\n      - localhost:5000/{name}\n\
             \x20 portForward:\n  - resourceType: container\n    resourceName: {name}\n    port: 8080\n"
        ),
    )
    .unwrap();
    git_commit_all(dir.path());
    let _images = EngineImages(format!("localhost:5000/{name}"));
    let mut skiff = dev_serves_every_edit(
        dir.path(),
        &["dev", "-p", "docker"],
        &["first edit", "second edit", "third edit"],
    );
    skiff.stop(BUILD);
}

#[test]
fn outside_git_run_twice_restarts_nothing_and_dev_serves_every_edit() {
    if !parts_available(true) {
        return;
    }
    let name = unique("go-webapp-nogit");
    let repository = format!("localhost:5000/{name}");
    let dir = go_webapp_copy(&name);
    assert!(
        !dir.path().join(".git").exists(),
        "the copy must be outside git"
    );
    let _images = EngineImages(repository.clone());
    let cache = tempfile::tempdir().unwrap();

    // Outside git the tagger says `latest`: the pod must still run the local image.
    let first = run_skiff_with_cache(dir.path(), &["run"], cache.path());
    assert!(first.contains("latest"), "no `latest` tag:\n{first}");
    let image = deployed_image(&name);
    assert_content_reference(&image, &repository);
    let before = pods(&name);
    assert_eq!(before.len(), 1, "{before:?}");

    // Nothing changed: the same pod, not restarted.
    run_skiff_with_cache(dir.path(), &["run"], cache.path());
    assert_eq!(deployed_image(&name), image);
    assert_eq!(pods(&name), before);

    let mut skiff = dev_serves_every_edit(
        dir.path(),
        &["dev", "--port-forward=pods"],
        &["first edit", "second edit"],
    );
    skiff.stop(BUILD);
}

#[test]
fn sha256_tagger_run_succeeds_and_dev_serves_an_edit() {
    if !parts_available(true) {
        return;
    }
    let name = unique("go-webapp-sha");
    let repository = format!("localhost:5000/{name}");
    let dir = go_webapp_copy(&name);
    let config = dir.path().join("skaffold.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("build:\n", "build:\n  tagPolicy:\n    sha256: {}\n"),
    )
    .unwrap();
    let _images = EngineImages(repository.clone());
    let cache = tempfile::tempdir().unwrap();
    run_skiff_with_cache(dir.path(), &["run"], cache.path());
    assert_content_reference(&deployed_image(&name), &repository);
    let mut skiff =
        dev_serves_every_edit(dir.path(), &["dev", "--port-forward=pods"], &["an edit"]);
    skiff.stop(BUILD);
}
