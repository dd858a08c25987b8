//! `skiff build` → `skiff deploy --build-artifacts` → `skiff delete` through the binary, against
//! the real Docker engine and Kubernetes cluster.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::Path;
use std::process::{Command, Output};

fn kubeconfig() -> String {
    std::env::var("KUBECONFIG")
        .unwrap_or_else(|_| "/var/lib/skiff-devenv/kube/admin.kubeconfig".into())
}

fn kubectl(args: &[&str]) -> Output {
    Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig())
        .args(args)
        .output()
        .unwrap()
}

fn parts_available() -> bool {
    let engine = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    let cluster = kubectl(&["get", "--raw", "/readyz"]).status.success();
    if !(engine && cluster) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the Docker engine and the cluster are required in CI (scripts/devenv/up)"
        );
        eprintln!("skipping: no Docker engine or cluster");
    }
    engine && cluster
}

fn skiff(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env("KUBECONFIG", kubeconfig())
        .output()
        .unwrap()
}

/// `prefix-PID-NANOS`: an object name no other test run uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn build_then_deploy_the_build_artifacts_then_delete() {
    if !parts_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("app.c"), "#include <stdio.h>\n#include <unistd.h>\nint main(void){puts(\"up\");fflush(stdout);for(;;)sleep(3600);}\n").unwrap();
    assert!(
        Command::new("gcc")
            .args(["-static", "-O2", "-o", "app", "app.c"])
            .current_dir(d)
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(
        d.join("Dockerfile"),
        "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\n",
    )
    .unwrap();
    std::fs::write(d.join(".dockerignore"), "*.c\n*.json\n").unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let namespace = format!("skiff-cli-deploy-{nanos}");
    let image = format!("skiff-cli-test/deploy-{nanos}");
    std::fs::write(
        d.join("skaffold.yaml"),
        format!("apiVersion: skaffold/v4\nkind: Config\nbuild:\n  tagPolicy: {{inputDigest: {{}}}}\n  artifacts:\n  - image: {image}\nmanifests:\n  rawYaml: [k8s/*.yaml]\ndeploy:\n  kubectl: {{}}\n  statusCheckDeadlineSeconds: 120\n"),
    )
    .unwrap();
    std::fs::create_dir(d.join("k8s")).unwrap();
    std::fs::write(
        d.join("k8s/app.yaml"),
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app}}\nspec:\n  selector: {{matchLabels: {{app: app}}}}\n  template:\n    metadata: {{labels: {{app: app}}}}\n    spec:\n      containers:\n      - name: app\n        image: {image}\n        imagePullPolicy: Never\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{mode: dev}}\n"),
    )
    .unwrap();
    assert!(
        kubectl(&["create", "namespace", &namespace])
            .status
            .success()
    );
    // An object of the same kind the config does not own, without skiff's labels.
    assert!(
        kubectl(&[
            "-n",
            &namespace,
            "create",
            "configmap",
            "unrelated",
            "--from-literal=a=b"
        ])
        .status
        .success()
    );

    let build = skiff(
        d,
        &[
            "build",
            "-q",
            "--file-output",
            "build.json",
            "--cache-artifacts=false",
        ],
    );
    assert!(build.status.success(), "{}", text(&build));
    let deploy = skiff(
        d,
        &[
            "deploy",
            "-n",
            &namespace,
            "--build-artifacts",
            "build.json",
        ],
    );
    let out = text(&deploy);
    assert!(deploy.status.success(), "{out}");
    assert!(out.contains("deployment/app created"), "{out}");
    assert!(out.contains("deployment/app is ready."), "{out}");
    let labels = kubectl(&[
        "-n",
        &namespace,
        "get",
        "deployment",
        "app",
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    assert!(
        String::from_utf8_lossy(&labels.stdout)
            .contains("\"app.kubernetes.io/managed-by\":\"skiff\"")
    );

    // The same build again: nothing changed, nothing to re-create.
    let again = skiff(
        d,
        &[
            "deploy",
            "-n",
            &namespace,
            "--build-artifacts",
            "build.json",
            "--status-check=false",
        ],
    );
    assert!(again.status.success(), "{}", text(&again));

    let delete = skiff(d, &["delete", "-n", &namespace]);
    let out = text(&delete);
    assert!(delete.status.success(), "{out}");
    assert!(out.contains("deployment/app deleted"), "{out}");
    assert!(
        !kubectl(&["-n", &namespace, "get", "deployment", "app"])
            .status
            .success()
    );
    assert!(
        kubectl(&["-n", &namespace, "get", "configmap", "unrelated"])
            .status
            .success(),
        "unlabelled objects survive"
    );
    let _ = kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
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
fn unknown_kube_context_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("skaffold.yaml"),
        "apiVersion: skaffold/v4\nkind: Config\nmanifests:\n  rawYaml: [k8s/*.yaml]\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("k8s")).unwrap();
    std::fs::write(
        dir.path().join("k8s/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    )
    .unwrap();
    let out = skiff(
        dir.path(),
        &[
            "deploy",
            "--kube-context",
            "no-such-context",
            "--digest-source=none",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let out = text(&out);
    assert!(out.contains("no-such-context"), "{out}");
}

/// `skiff apply` deploys a rendered file as it is (labelled with the run) and waits for it;
/// `skiff delete` finds what it applied when the configuration renders the same objects.
#[test]
fn apply_deploys_a_rendered_file_as_it_is() {
    if !parts_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = unique("skiff-apply");
    std::fs::create_dir_all(dir.path().join("k8s")).unwrap();
    std::fs::write(
        dir.path().join("skaffold.yaml"),
        "apiVersion: skaffold/v4beta11\nkind: Config\nmanifests:\n  rawYaml: [k8s/*.yaml]\ndeploy:\n  kubectl: {}\n",
    )
    .unwrap();
    let manifest = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  greeting: hello\n"
    );
    std::fs::write(dir.path().join("k8s/config.yaml"), &manifest).unwrap();
    let rendered = skiff(dir.path(), &["render", "--offline", "-o", "rendered.yaml"]);
    assert!(rendered.status.success(), "{}", text(&rendered));

    let applied = skiff(dir.path(), &["apply", "rendered.yaml"]);
    assert!(applied.status.success(), "{}", text(&applied));
    let got = kubectl(&[
        "get",
        "configmap",
        &name,
        "-o",
        "jsonpath={.data.greeting} {.metadata.labels}",
    ]);
    let got = String::from_utf8_lossy(&got.stdout).into_owned();
    assert!(got.starts_with("hello "), "{got}");
    assert!(got.contains("skaffold.dev/run-id"), "{got}");

    let deleted = skiff(dir.path(), &["delete"]);
    assert!(deleted.status.success(), "{}", text(&deleted));
    let gone = kubectl(&["get", "configmap", &name]);
    assert!(!gone.status.success(), "deleted");

    let missing = skiff(dir.path(), &["apply", "nope.yaml"]);
    assert!(!missing.status.success());
    assert!(text(&missing).contains("nope.yaml"), "{}", text(&missing));
}

/// `skiff verify` runs each test container to completion and names the failures; `skiff exec`
/// runs an action's containers, stopping the rest at the first failure (`failFast`). Nothing
/// is left on the engine. Uses the devenv's stand-in `alpine:3.19` (busybox).
#[test]
fn verify_and_exec_run_containers_to_completion() {
    if !parts_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = |verify_cmd: &str| {
        format!(
            "apiVersion: skaffold/v4beta11\nkind: Config\nverify:\n\
             - name: passes\n  container:\n    name: passes\n    image: alpine:3.19\n    command: [sh, -c]\n    args: ['echo checking $TARGET']\n    env:\n    - name: TARGET\n      value: web\n\
             - name: second\n  timeout: 2\n  container:\n    name: second\n    image: alpine:3.19\n    command: [sh, -c, '{verify_cmd}']\n\
             customActions:\n\
             - name: seed\n  containers:\n  - name: fails\n    image: alpine:3.19\n    command: [sh, -c, 'echo seeding failed; exit 2']\n  - name: slow\n    image: alpine:3.19\n    command: [sleep, '30']\n"
        )
    };
    std::fs::write(dir.path().join("skaffold.yaml"), config("echo fine")).unwrap();
    let out = skiff(dir.path(), &["verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("[passes] checking web"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("passes: passed in"), "{}", text(&out));

    std::fs::write(dir.path().join("skaffold.yaml"), config("sleep 30")).unwrap();
    let out = skiff(dir.path(), &["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("second: timed out after 2 s"),
        "{}",
        text(&out)
    );

    let out = skiff(dir.path(), &["exec", "seed"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("[fails] seeding failed"), "{said}");
    assert!(said.contains("fails: failed with exit code 2"), "{said}");
    assert!(
        said.contains("slow: stopped (another container failed first)"),
        "{said}"
    );

    let out = skiff(dir.path(), &["exec", "nope"]);
    assert!(
        text(&out).contains("no custom action `nope`; the configuration has: seed"),
        "{}",
        text(&out)
    );

    let left = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            "name=skiff-verify-",
            "--filter",
            "name=skiff-action-",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "containers left"
    );
}

/// Deploy hooks on the real cluster: a host hook before, a container hook after, run in the
/// deployed pod (through exec) once.
#[test]
fn deploy_hooks_run_on_the_host_and_in_the_deployed_pod() {
    if !parts_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = unique("skiff-hook");
    std::fs::create_dir_all(dir.path().join("k8s")).unwrap();
    std::fs::write(
        dir.path().join("skaffold.yaml"),
        "apiVersion: skaffold/v4beta11\nkind: Config\nmanifests:\n  rawYaml: [k8s/*.yaml]\ndeploy:\n  kubectl:\n    hooks:\n      before:\n      - host:\n          command: [sh, -c, 'echo deploying run $SKAFFOLD_RUN_ID']\n      after:\n      - container:\n          command: [sh, -c, 'echo inside $(hostname)']\n          podName: skiff-hook-*\n          containerName: main\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("k8s/pod.yaml"),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: main\n    image: alpine:3.19\n    imagePullPolicy: Never\n    command: [sleep, '300']\n"
        ),
    )
    .unwrap();
    let out = skiff(dir.path(), &["deploy"]);
    let said = text(&out);
    let deleted = skiff(dir.path(), &["delete"]);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("[pre-deploy hook] deploying run "), "{said}");
    assert!(
        said.contains(&format!("[post-deploy hook {name}/main] inside {name}")),
        "{said}"
    );
    assert!(deleted.status.success(), "{}", text(&deleted));
}
