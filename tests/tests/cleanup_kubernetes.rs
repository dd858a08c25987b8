//! Cleanup safety on the real cluster: `skiff dev` killed with `SIGKILL` cannot clean up, so its
//! labelled Deployment and Service (and their pod) stay behind. The next `skiff dev` of the
//! project takes them over (same run ID, same pod) and `skiff delete` removes them —
//! only because they carry skiff's labels: an object of the same name without them (in the
//! namespace skiff uses, or in another one), and skiff's objects of another project, are never
//! touched. Without the cluster or kubectl the test is skipped, unless `CI=true`.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skiff_e2e::harness::*;

const LONG: Duration = Duration::from_secs(240);
const RUN_ID: &str = "skaffold.dev/run-id";
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// kubectl (the devenv's `KUBECONFIG`); stdout, or the failure.
fn kubectl(args: &[&str]) -> Result<String, String> {
    let output = Command::new("kubectl")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run kubectl: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

fn must(args: &[&str]) -> String {
    kubectl(args).unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
}

fn kubectl_available() -> bool {
    kubectl(&["version", "--client"]).is_ok()
        || missing("kubectl is not installed (scripts/devenv/up installs the cluster's tools)")
}

/// `object` (`deployment/web`) in `namespace`, if it exists: its labels `run-id` and
/// `managed-by` (empty when absent).
fn labels(namespace: &str, object: &str) -> Option<(String, String)> {
    let found = must(&[
        "get",
        object,
        "-n",
        namespace,
        "--ignore-not-found",
        "-o",
        "jsonpath={.metadata.name}|{.metadata.labels.skaffold\\.dev/run-id}|{.metadata.labels.app\\.kubernetes\\.io/managed-by}",
    ]);
    let mut parts = found.split('|');
    let name = parts.next().unwrap_or_default();
    if name.is_empty() {
        return None;
    }
    Some((
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    ))
}

fn exists(namespace: &str, object: &str) -> bool {
    labels(namespace, object).is_some()
}

fn pods(name: &str) -> Vec<String> {
    must(&["get", "pods", "-l", &format!("app={name}"), "-o", "name"])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn wait_gone(namespace: &str, object: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while exists(namespace, object) {
        assert!(
            Instant::now() < deadline,
            "{namespace}/{object} is still there"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `skiff dev` until its first iteration has deployed and the app is ready.
fn dev_until_ready(dir: &Path) -> Skiff {
    let mut skiff = Skiff::start(dir, &["dev", "--port-forward=off", "--tail=false"]);
    let line = skiff.wait_line(0, LONG, |l| {
        l.starts_with("initial → ").then(|| l.to_owned())
    });
    assert!(line.contains("ready in"), "{line}");
    skiff
}

/// Removes, when dropped, everything the test made: the app's objects, the other namespace,
/// the other project's Service, the images.
struct Cleanup {
    name: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let name = &self.name;
        for args in [
            vec![
                "delete",
                "deployment,service,configmap",
                name.as_str(),
                "--ignore-not-found",
                "--wait=false",
            ],
            vec![
                "delete",
                "service",
                &format!("{name}-other-project"),
                "--ignore-not-found",
                "--wait=false",
            ],
            vec![
                "delete",
                "namespace",
                &format!("{name}-other"),
                "--ignore-not-found",
                "--wait=false",
            ],
        ] {
            let _ = Command::new("kubectl")
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "docker images -q localhost:5000/{name} | xargs -r docker rmi -f --no-prune >/dev/null 2>&1"
                ),
            ])
            .status();
    }
}

#[test]
fn dev_killed_on_kubernetes_leaves_labelled_objects_that_next_dev_and_delete_remove_sparing_others()
{
    if !docker_available() || !kube_available() || !kubectl_available() {
        return;
    }
    let name = unique("hello-kkill");
    let deployment = format!("deployment/{name}");
    let service = format!("service/{name}");
    let dir = example_copy_rebuilding(&name);
    let _cleanup = Cleanup { name: name.clone() };
    let namespace = must(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.contexts[0].context.namespace}",
    ]);
    let namespace = if namespace.is_empty() {
        "default".to_owned()
    } else {
        namespace
    };

    // Run 1, killed: its objects and their pod stay behind, with its labels.
    let mut first = dev_until_ready(dir.path());
    let (first_run, managed) = labels(&namespace, &deployment).unwrap();
    assert!(
        !first_run.is_empty() && managed == "skiff",
        "{first_run} {managed}"
    );
    first.kill_hard();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        labels(&namespace, &service),
        Some((first_run.clone(), "skiff".to_owned()))
    );
    assert_eq!(
        labels(&namespace, &deployment),
        Some((first_run.clone(), "skiff".to_owned()))
    );
    assert!(!pods(&name).is_empty(), "the killed run's pod is gone");

    // Not skiff's: the same name in another namespace (no labels), and a ConfigMap with the
    // app's name in skiff's namespace (no labels).
    let other_namespace = format!("{name}-other");
    must(&["create", "namespace", &other_namespace]);
    must(&[
        "create",
        "service",
        "clusterip",
        &name,
        "--tcp=8080:8080",
        "-n",
        &other_namespace,
    ]);
    must(&[
        "create",
        "configmap",
        &name,
        "--from-literal=owner=someone-else",
        "-n",
        &namespace,
    ]);
    // skiff's, but of another project (a name this configuration does not have).
    let other_project = format!("service/{name}-other-project");
    must(&[
        "create",
        "service",
        "clusterip",
        &format!("{name}-other-project"),
        "--tcp=8080:8080",
        "-n",
        &namespace,
    ]);
    must(&[
        "label",
        &other_project,
        "-n",
        &namespace,
        &format!("{MANAGED_BY}=skiff"),
        &format!("{RUN_ID}=another-run"),
    ]);
    let untouched = |skiff_output: &str| {
        assert_eq!(
            labels(&other_namespace, &service),
            Some((String::new(), String::new())),
            "the same-named Service in another namespace changed:\n{skiff_output}"
        );
        assert_eq!(
            labels(&namespace, &format!("configmap/{name}")),
            Some((String::new(), String::new())),
            "the unlabelled ConfigMap changed:\n{skiff_output}"
        );
        assert_eq!(
            labels(&namespace, &other_project),
            Some(("another-run".to_owned(), "skiff".to_owned())),
            "another project's Service changed:\n{skiff_output}"
        );
    };

    // Run 2 of the same project takes the leftovers over: they are its run's objects — the
    // run ID is one per project and target, so they already carry it and nothing restarts.
    let first_pods = pods(&name);
    let mut second = dev_until_ready(dir.path());
    let (second_run, _) = labels(&namespace, &deployment).unwrap();
    assert_eq!(second_run, first_run, "{}", second.output());
    assert_eq!(pods(&name), first_pods, "{}", second.output());
    assert_eq!(
        labels(&namespace, &service),
        Some((second_run.clone(), "skiff".to_owned()))
    );
    untouched(&second.output());

    // Run 2, killed too; `skiff delete` removes its leftovers (the pod goes with its
    // Deployment), and nothing else.
    second.kill_hard();
    assert!(exists(&namespace, &deployment) && exists(&namespace, &service));
    let deleted = run_skiff(dir.path(), &["delete"]);
    for object in [&deployment, &service] {
        assert!(
            deleted.to_lowercase().contains(&object.to_lowercase()),
            "{object} not deleted:\n{deleted}"
        );
    }
    wait_gone(&namespace, &deployment);
    wait_gone(&namespace, &service);
    let deadline = Instant::now() + Duration::from_secs(90);
    while !pods(&name).is_empty() {
        assert!(Instant::now() < deadline, "pods left: {:?}", pods(&name));
        std::thread::sleep(Duration::from_millis(500));
    }
    untouched(&deleted);

    // A Service without skiff's labels with exactly the removed one's name, where skiff
    // deploys: `skiff delete` leaves it alone and says why.
    must(&[
        "create",
        "service",
        "clusterip",
        &name,
        "--tcp=8080:8080",
        "-n",
        &namespace,
    ]);
    let deleted = run_skiff(dir.path(), &["delete"]);
    assert!(deleted.contains("Nothing to delete"), "{deleted}");
    assert!(
        deleted.contains("lacks the label"),
        "no word on the object left alone:\n{deleted}"
    );
    assert_eq!(
        labels(&namespace, &service),
        Some((String::new(), String::new())),
        "the same-named unlabelled Service changed"
    );
    untouched(&deleted);
}
