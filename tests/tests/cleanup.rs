//! Cleanup safety on the real Docker engine: `skiff dev -p docker` killed with `SIGKILL` cannot
//! clean up, so its labelled containers remain; the next `skiff dev` of the same project and
//! `skiff delete` remove them by label, and never touch a container that lacks skiff's labels
//! (same name pattern, same name, even the same image) nor skiff's containers of another
//! project. Without a Docker engine the test is skipped, unless `CI=true`.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(180);

use skiff_e2e::harness::{
    Skiff, docker_available, example_copy, labelled_containers, run_skiff, unique,
};

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

fn exists(container: &str) -> bool {
    Command::new("docker")
        .args(["inspect", "--type", "container", container])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn run_id_of(container: &str) -> String {
    docker(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"skaffold.dev/run-id\"}}",
        container,
    ])
}

fn networks_of_run(run_id: &str) -> Vec<String> {
    lines(&docker(&[
        "network",
        "ls",
        "--filter",
        &format!("label=skaffold.dev/run-id={run_id}"),
        "--format",
        "{{.Name}}",
    ]))
}

/// Removes, when dropped, the test's own containers and the images of `localhost:5000/<name>`.
struct Cleanup {
    name: String,
    containers: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for container in &self.containers {
            let _ = Command::new("docker")
                .args(["rm", "-f", container])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "docker ps -aq --filter label=skiff.dev/image=localhost:5000/{0} | xargs -r docker rm -f >/dev/null 2>&1; \
                     docker images -q localhost:5000/{0} | xargs -r docker rmi -f --no-prune >/dev/null 2>&1",
                    self.name
                ),
            ])
            .status();
    }
}

/// `skiff dev -p docker` until its container serves; returns it and the container names.
fn dev_until_deployed(dir: &Path, image: &str, extra: &[&str]) -> (Skiff, Vec<String>) {
    let mut args = vec!["dev", "-p", "docker"];
    args.extend_from_slice(extra);
    let mut skiff = Skiff::start(dir, &args);
    skiff.wait_line(0, LONG, |l| l.starts_with("Port forwarding ").then_some(()));
    let containers = labelled_containers(image);
    assert!(!containers.is_empty(), "no container:\n{}", skiff.output());
    (skiff, containers)
}

#[test]
fn dev_killed_leaves_labelled_containers_that_next_dev_and_delete_remove_sparing_others() {
    if !docker_available() {
        return;
    }
    let name = unique("hello-killed");
    let image = format!("localhost:5000/{name}");
    let dir = example_copy(&name);
    let mut cleanup = Cleanup {
        name: name.clone(),
        containers: Vec::new(),
    };

    // Run 1, killed: its containers and network stay behind.
    let (mut first, first_containers) = dev_until_deployed(dir.path(), &image, &[]);
    let first_run = run_id_of(&first_containers[0]);
    first.kill_hard();
    assert_eq!(labelled_containers(&image), first_containers);
    assert_eq!(networks_of_run(&first_run).len(), 1);

    // The same project again (same run ID): it takes the running containers over, the same
    // image leaves them as they are; killed again, they stay.
    let (mut again, again_containers) = dev_until_deployed(dir.path(), &image, &[]);
    assert_eq!(again_containers, first_containers, "{}", again.output());
    again.wait_line(0, LONG, |l| l.contains("unchanged").then_some(()));
    again.kill_hard();
    assert_eq!(labelled_containers(&image), first_containers);

    // Not skiff's: same name pattern, same image, no labels.
    let built = docker(&[
        "inspect",
        "--format",
        "{{.Config.Image}}",
        &first_containers[0],
    ]);
    let lookalike = format!("{}-lookalike", first_containers[0]);
    docker(&["create", "--name", &lookalike, &built]);
    cleanup.containers.push(lookalike.clone());
    assert_eq!(
        docker(&[
            "inspect",
            "--format",
            "{{index .Config.Labels \"app.kubernetes.io/managed-by\"}}",
            &lookalike
        ]),
        "",
        "the test's image must not carry skiff's labels"
    );
    // skiff's, but of another project (another image).
    let other_project = format!("{name}-other-project");
    docker(&[
        "create",
        "--name",
        &other_project,
        "--label",
        "app.kubernetes.io/managed-by=skiff",
        "--label",
        &format!("skaffold.dev/run-id={}", unique("other-run")),
        "--label",
        &format!("skiff.dev/image=localhost:5000/{name}-other"),
        &built,
    ]);
    cleanup.containers.push(other_project.clone());

    // Run 2 of the same images under another run ID removes run 1's leftovers at start, and
    // nothing else.
    let other_run = unique("other-run");
    let (mut second, second_containers) =
        dev_until_deployed(dir.path(), &image, &["--run-id", &other_run]);
    for container in &first_containers {
        assert!(
            !second_containers.contains(container),
            "{container} of the killed run is still there:\n{}",
            second.output()
        );
    }
    second.wait_line(0, LONG, |l| l.contains("earlier run").then_some(()));
    assert!(networks_of_run(&first_run).is_empty());
    assert!(exists(&lookalike), "the unlabelled container was removed");
    assert!(
        exists(&other_project),
        "another project's container was removed"
    );

    // Run 2, killed too; `skiff delete` removes its leftovers, and nothing else.
    let second_run = run_id_of(&second_containers[0]);
    second.kill_hard();
    assert_eq!(labelled_containers(&image), second_containers);
    let deleted = run_skiff(dir.path(), &["delete", "-p", "docker"]);
    for container in &second_containers {
        assert!(deleted.contains(container.as_str()), "{deleted}");
    }
    assert_eq!(labelled_containers(&image), Vec::<String>::new());
    assert!(networks_of_run(&second_run).is_empty());
    assert!(exists(&lookalike), "the unlabelled container was removed");
    assert!(
        exists(&other_project),
        "another project's container was removed"
    );

    // An unlabelled container with exactly a removed container's name: left alone.
    let same_name = second_containers[0].clone();
    docker(&["create", "--name", &same_name, &built]);
    cleanup.containers.push(same_name.clone());
    let deleted = run_skiff(dir.path(), &["delete", "-p", "docker"]);
    assert!(deleted.contains("Nothing to delete"), "{deleted}");
    assert!(
        exists(&same_name),
        "the same-named unlabelled container was removed"
    );
    assert!(exists(&lookalike));
    assert!(exists(&other_project));
}
