//! Helpers for the status-check tests: the real cluster, a namespace per test, a tiny test image.
//!
//! A cluster that cannot be reached makes a test skip locally and fail in CI (`CI=true`).

#![allow(dead_code, clippy::unwrap_used, clippy::print_stderr)]

use std::future::Future;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use skiff_deploy::ResourceRef;
use skiff_deploy::kubernetes::status::{KubernetesStatusChecker, StatusOptions};
use skiff_types::event::{CollectingReporter, Event};

/// An image that is always there: the cluster's own pod sandbox image.
pub const PAUSE_IMAGE: &str = "k8s.gcr.io/pause:3.2";
/// The line the test app prints before it does what its first argument says.
pub const APP_LINE: &str = "skiff-status-app: mode";

/// Whether this run is CI, where a missing cluster is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A missing cluster: panic in CI, otherwise print why the test is skipped.
pub fn missing(why: &str) {
    let message = format!("the Kubernetes cluster is not available: {why}");
    if in_ci() {
        panic!(
            "{message} (CI=true: tests needing it fail; start it with `scripts/devenv/up` and export KUBECONFIG)"
        );
    }
    eprintln!("skipping: {message} (with CI=true this fails the test)");
}

/// A client for the cluster of `KUBECONFIG` that answered a version request, or `None` (after
/// a skip note) outside CI.
pub async fn cluster() -> Option<Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match Client::try_default().await {
        Ok(client) => client,
        Err(e) => {
            missing(&format!("no usable kubeconfig: {e}"));
            return None;
        }
    };
    match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await {
        Ok(Ok(_)) => Some(client),
        Ok(Err(e)) => {
            missing(&format!("the API server did not answer: {e}"));
            None
        }
        Err(_) => {
            missing("the API server did not answer within 10s");
            None
        }
    }
}

/// `skiff-status-<what>-<random>`: a namespace name no other test (or run) uses.
pub fn namespace_name(what: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = nanos ^ std::process::id().rotate_left(16) ^ n.wrapping_mul(0x9e37_79b9);
    format!("skiff-status-{what}-{random:08x}")
}

/// Runs `body` with a client and a fresh namespace `skiff-status-<what>-<random>`, deleted
/// afterwards even when `body` panics. Skips (or fails in CI) without a cluster.
pub async fn in_namespace<F, Fut>(what: &str, body: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(client) = cluster().await else {
        return;
    };
    let name = namespace_name(what);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap();
    wait_for_service_account(&client, &name).await;
    let outcome = tokio::spawn(body(client.clone(), name.clone())).await;
    let _ = namespaces.delete(&name, &DeleteParams::background()).await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// Pods of a new namespace are refused until its `default` service account has a token.
async fn wait_for_service_account(client: &Client, namespace: &str) {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    for _ in 0..300 {
        if let Ok(Some(account)) = accounts.get_opt("default").await
            && account.secrets.as_ref().is_some_and(|s| !s.is_empty())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("namespace {namespace}: no default service account token after 30s");
}

/// Creates `object` (JSON of a `K`) in `namespace`.
pub async fn create<K>(client: &Client, namespace: &str, object: Value) -> K
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let object: K = serde_json::from_value(object).unwrap();
    api.create(&PostParams::default(), &object).await.unwrap()
}

/// A `ResourceRef` in `namespace`.
pub fn resource(api_version: &str, kind: &str, namespace: &str, name: &str) -> ResourceRef {
    ResourceRef {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: Some(namespace.into()),
        name: name.into(),
    }
}

/// A checker with `deadline`, tolerating failures when asked.
pub fn checker(client: &Client, deadline: Duration, tolerate: bool) -> KubernetesStatusChecker {
    KubernetesStatusChecker::new(
        client.clone(),
        StatusOptions {
            deadline,
            tolerate_failures_until_deadline: tolerate,
            log_lines_on_crash: 10,
        },
    )
}

/// A container: `image` with `args` and `pull_policy`.
pub fn container(image: &str, pull_policy: &str, args: &[&str]) -> Value {
    json!({"name": "app", "image": image, "imagePullPolicy": pull_policy, "args": args})
}

/// A pod template labelled `app: <name>` running `container`.
pub fn template(name: &str, container: Value) -> Value {
    json!({
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 0}
    })
}

/// A one-replica Deployment `name` running `container`.
pub fn deployment(name: &str, container: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": template(name, container)
        }
    })
}

/// The test app image (`FROM scratch` + a static binary), built once per test process:
/// `/app ok` prints a line and exits 0, `/app crash` prints a line and exits 1, `/app sleep`
/// prints a line and runs until stopped.
pub fn app_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("app.c");
        std::fs::write(
            &source,
            r#"#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "ok";
    printf("skiff-status-app: mode %s\n", mode);
    fflush(stdout);
    if (strcmp(mode, "crash") == 0) return 1;
    if (strcmp(mode, "sleep") == 0) for (;;) pause();
    return 0;
}
"#,
        )
        .unwrap();
        run(Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(dir.path().join("app"))
            .arg(&source));
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\n",
        )
        .unwrap();
        let tag = "skiff-test/status-app:v1".to_owned();
        run(Command::new("docker")
            .args(["build", "-q", "-t", &tag])
            .arg(dir.path()));
        tag
    })
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The `resource` of every `ResourceReady` event.
pub fn ready_events(reporter: &CollectingReporter) -> Vec<String> {
    reporter
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::ResourceReady { resource, .. } => Some(resource),
            _ => None,
        })
        .collect()
}

/// The `status` of every `ResourceStatus` event of `resource`.
pub fn status_events(reporter: &CollectingReporter, resource: &str) -> Vec<String> {
    reporter
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::ResourceStatus {
                resource: r,
                status,
            } if r == resource => Some(status),
            _ => None,
        })
        .collect()
}
