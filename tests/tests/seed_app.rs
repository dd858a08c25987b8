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

/// Deletes what a `skiff run` of the app `name` left in the cluster when the test ends, also
/// when it fails before `dev`'s own cleanup.
struct Deployed<'a>(&'a str);

impl Drop for Deployed<'_> {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .args(["delete", "deployment,service", "-l"])
            .arg(format!("app={}", self.0))
            .args(["--ignore-not-found", "--wait=false"])
            .output();
        let _ = Command::new("kubectl")
            .args([
                "delete",
                "deployment",
                self.0,
                "--ignore-not-found",
                "--wait=false",
            ])
            .output();
    }
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

/// `skiff dev` serves the first version, then each of `edits` in turn; returns the iteration
/// line of each edit.
fn dev_serves_every_edit(dir: &Path, args: &[&str], edits: &[&str]) -> (Skiff, Vec<String>) {
    let mut skiff = Skiff::start(dir, args);
    let address = the_forwarded_address(&mut skiff, 0);
    wait_served(&address, "hello from go-webapp", BUILD, &skiff);
    let mut lines = Vec::new();
    for edit in edits {
        let mark = skiff.line_count();
        set_go_message(dir, edit);
        wait_served(&address, edit, BUILD, &skiff);
        lines.push(skiff.wait_line(mark, BUILD, |l| {
            l.starts_with("main.go → ").then(|| l.to_owned())
        }));
    }
    (skiff, lines)
}

/// Every edit was rebuilt through the builder container (the default in `dev`).
fn assert_warm(lines: &[String]) {
    for line in lines {
        assert!(line.contains("warm rebuild of "), "not warm: {line}");
    }
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
    let _deployed = Deployed(&name);
    let mut skiff = Skiff::start(dir.path(), &["dev", "--port-forward=pods"]);
    let address = the_forwarded_address(&mut skiff, 0);
    wait_served(&address, "hello from go-webapp", BUILD, &skiff);
    let mut deployed = vec![deployed_image(&name)];
    assert_content_reference(&deployed[0], &repository);
    for edit in ["first edit", "second edit", "third edit"] {
        let mark = skiff.line_count();
        set_go_message(dir.path(), edit);
        wait_served(&address, edit, BUILD, &skiff);
        let line = skiff.wait_line(mark, BUILD, |l| {
            l.starts_with("main.go → ").then(|| l.to_owned())
        });
        assert_warm(&[line]);
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
    let (mut skiff, lines) = dev_serves_every_edit(
        dir.path(),
        &["dev", "-p", "docker"],
        &["first edit", "second edit", "third edit"],
    );
    assert_warm(&lines);
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
    let _deployed = Deployed(&name);
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

    // Clean rebuilds in dev, as with warm rebuilds off.
    let (mut skiff, lines) = dev_serves_every_edit(
        dir.path(),
        &["dev", "--port-forward=pods", "--warm-builds=false"],
        &["first edit", "second edit"],
    );
    for line in &lines {
        assert!(line.contains("→ rebuilt "), "{line}");
    }
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
    let _deployed = Deployed(&name);
    let cache = tempfile::tempdir().unwrap();
    run_skiff_with_cache(dir.path(), &["run"], cache.path());
    assert_content_reference(&deployed_image(&name), &repository);
    let (mut skiff, lines) =
        dev_serves_every_edit(dir.path(), &["dev", "--port-forward=pods"], &["an edit"]);
    assert_warm(&lines);
    skiff.stop(BUILD);
}

/// The builder containers of `image` (running or not).
fn builder_containers(image: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label=skiff.dev/builder-for={image}"),
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

fn iteration_line(skiff: &mut Skiff, from: usize, trigger: &str) -> String {
    skiff.wait_line(from, BUILD, |l| {
        l.starts_with(&format!("{trigger} → "))
            .then(|| l.to_owned())
    })
}

#[test]
fn dev_rebuilds_warm_survives_a_compile_error_and_rebuilds_a_changed_dockerfile_clean() {
    if !parts_available(true) {
        return;
    }
    let name = unique("go-webapp-warm");
    let image = format!("localhost:5000/{name}");
    let dir = go_webapp_copy(&name);
    git_commit_all(dir.path());
    let _images = EngineImages(image.clone());
    let mut skiff = Skiff::start(dir.path(), &["dev", "--port-forward=pods"]);
    let address = the_forwarded_address(&mut skiff, 0);
    wait_served(&address, "hello from go-webapp", BUILD, &skiff);

    let mark = skiff.line_count();
    set_go_message(dir.path(), "warm");
    wait_served(&address, "warm", BUILD, &skiff);
    let line = iteration_line(&mut skiff, mark, "main.go");
    assert!(
        line.contains("warm rebuild of ") && line.contains("RUN go build "),
        "{line}"
    );
    assert_eq!(builder_containers(&image).len(), 1);

    // A compile error: the compiler's words, and the old version keeps serving.
    let main_go = dir.path().join("main.go");
    let source = std::fs::read_to_string(&main_go).unwrap();
    let mark = skiff.line_count();
    std::fs::write(
        &main_go,
        source.replace("fmt.Fprint(w, message)", "fmt.Fprint(w, missing)"),
    )
    .unwrap();
    let line = iteration_line(&mut skiff, mark, "main.go");
    assert!(line.contains("build failed"), "{line}");
    assert!(
        skiff
            .lines_from(mark)
            .iter()
            .any(|l| l.contains("undefined: missing")),
        "{}",
        skiff.output()
    );
    assert_eq!(http_get(&address).as_deref(), Some("warm"));
    std::fs::write(&main_go, &source).unwrap();
    set_go_message(dir.path(), "fixed");
    wait_served(&address, "fixed", BUILD, &skiff);

    // A changed Dockerfile: a clean build, and the reason said.
    let mark = skiff.line_count();
    let dockerfile = dir.path().join("Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    std::fs::write(&dockerfile, format!("{text}# a comment\n")).unwrap();
    let line = iteration_line(&mut skiff, mark, "Dockerfile");
    assert!(line.contains("→ rebuilt "), "{line}");
    assert!(
        skiff
            .lines_from(mark)
            .iter()
            .any(|l| l.contains("clean rebuild of ") && l.contains("the Dockerfile changed")),
        "{}",
        skiff.output()
    );
    // The clean build started a builder container for the new Dockerfile: warm again.
    let mark = skiff.line_count();
    set_go_message(dir.path(), "warm again");
    wait_served(&address, "warm again", BUILD, &skiff);
    let line = iteration_line(&mut skiff, mark, "main.go");
    assert!(line.contains("warm rebuild of "), "{line}");

    skiff.stop(BUILD);
    assert!(
        builder_containers(&image).is_empty(),
        "a builder container is left"
    );
}

#[test]
fn a_killed_devs_builder_container_is_removed_by_skiff_delete() {
    if !parts_available(false) {
        return;
    }
    let name = unique("go-webapp-kill");
    let image = format!("localhost:5000/{name}");
    let dir = go_webapp_copy(&name);
    let config = dir.path().join("skaffold.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}profiles:\n- name: docker\n  deploy:\n    docker:\n      images:\n      - {image}\n"
        ),
    )
    .unwrap();
    let _images = EngineImages(image.clone());
    let mut skiff = Skiff::start(dir.path(), &["dev", "-p", "docker"]);
    skiff.wait_line(0, BUILD, |l| l.starts_with("initial → ").then_some(()));
    let deadline = std::time::Instant::now() + BUILD;
    while builder_containers(&image).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no builder container:\n{}",
            skiff.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    skiff.kill_hard();
    let left = builder_containers(&image);
    assert_eq!(left.len(), 1);
    let deleted = run_skiff(dir.path(), &["delete", "-p", "docker"]);
    assert!(deleted.contains(&left[0]), "{deleted}");
    assert!(builder_containers(&image).is_empty());
}
