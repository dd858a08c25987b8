//! The Kubernetes transport against the real cluster: copy and delete through exec in a pod
//! whose image has busybox's `tar`, a container hook after the sync, and the no-`tar` error for
//! a `FROM scratch` image. Images are built in the engine the kubelet uses
//! (`imagePullPolicy: Never`); each test has its own namespace, deleted at the end.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, AttachParams, DeleteParams, PostParams};
use skiff_sync::kubernetes::KubernetesSyncer;
use skiff_sync::rules::{ManualRule, SyncHook, SyncRules};
use skiff_sync::{Decision, SyncError, SyncPlan, SyncTarget, Syncer, decide};
use skiff_types::event::{CollectingReporter, Event};
use support::*;
use tokio::io::AsyncReadExt;

/// A client for the test cluster, or `None` (skip) when there is none; CI=true fails instead.
async fn cluster(test: &str) -> Option<kube::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let reachable = async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| e.to_string())?;
        client
            .apiserver_version()
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(client)
    };
    match reachable.await {
        Ok(client) => Some(client),
        Err(error) => {
            assert!(
                !ci(),
                "{test}: CI=true but no Kubernetes cluster ({error}); start it with \
                 `scripts/devenv/up` and export KUBECONFIG"
            );
            eprintln!("skipping {test}: no Kubernetes cluster ({error})");
            None
        }
    }
}

/// A namespace deleted on drop (from its own thread, also when the test panicked).
struct TestNamespace {
    name: String,
}

impl TestNamespace {
    async fn create(client: &kube::Client) -> TestNamespace {
        let name = format!("skiff-test-sync-{}", unique());
        let api: Api<Namespace> = Api::all(client.clone());
        let object: Namespace =
            serde_json::from_value(serde_json::json!({ "metadata": { "name": name } })).unwrap();
        api.create(&PostParams::default(), &object).await.unwrap();
        TestNamespace { name }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(client) = kube::Client::try_default().await {
                    let api: Api<Namespace> = Api::all(client);
                    let _ = api.delete(&name, &DeleteParams::background()).await;
                }
            });
        })
        .join();
    }
}

/// Creates pod `name` running `image` with the run label, and waits until it runs.
async fn start_pod(client: &kube::Client, namespace: &str, name: &str, image: &str, run_id: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "labels": { RUN_ID_LABEL: run_id } },
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false,
            "containers": [{ "name": "app", "image": image, "imagePullPolicy": "Never" }]
        }
    }))
    .unwrap();
    // A fresh namespace's service account may not exist yet: retry for a while.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match api.create(&PostParams::default(), &pod).await {
            Ok(_) => break,
            Err(error) if Instant::now() < deadline => {
                eprintln!("creating pod {name}: {error}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => panic!("cannot create pod {name}: {error}"),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let pod = api.get(name).await.unwrap();
        let running = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|s| {
                s.iter()
                    .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            });
        if running {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pod {name} did not run within 90 s: {:?}",
            pod.status
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `command`'s stdout in the pod's container.
async fn exec_output(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    command: &[&str],
) -> String {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut process = api
        .exec(
            pod,
            command.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
            &AttachParams::default().stderr(false),
        )
        .await
        .unwrap();
    let mut out = String::new();
    process
        .stdout()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    out
}

fn plan(
    context: &std::path::Path,
    rules: &SyncRules,
    changed: &[&str],
    deleted: &[&str],
) -> SyncPlan {
    let paths =
        |files: &[&str]| -> Vec<PathBuf> { files.iter().map(|f| context.join(f)).collect() };
    match decide(context, rules, &paths(changed), &paths(deleted)) {
        Decision::Sync(plan) => plan,
        Decision::Rebuild { reason } => panic!("expected a sync: {reason}"),
    }
}

fn rules() -> SyncRules {
    SyncRules {
        manual: vec![ManualRule {
            src: "www/**".into(),
            dest: "/srv/www".into(),
            strip: Some("www/".into()),
        }],
        ..SyncRules::default()
    }
}

fn target(reference: &str, run_id: &str) -> SyncTarget {
    SyncTarget {
        image: "sync-test".into(),
        reference: reference.into(),
        selector: format!("{RUN_ID_LABEL}={run_id}"),
        kube_context: Some("test".into()),
        env: std::collections::BTreeMap::new(),
    }
}

#[tokio::test]
async fn copies_deletes_and_runs_the_after_hook_through_exec() {
    let test = "copies_deletes_and_runs_the_after_hook_through_exec";
    let Some(client) = cluster(test).await else {
        return;
    };
    if !engine_available(test) {
        return;
    }
    let id = unique();
    let reference = format!("skiff-sync-test-kbusybox:{id}");
    let mut leftovers = Leftovers::default();
    leftovers.images.push(reference.clone());
    build_busybox_image(&reference);
    let namespace = TestNamespace::create(&client).await;
    let run_id = format!("sync-{id}");
    start_pod(&client, &namespace.name, "web", &reference, &run_id).await;

    let context = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(context.path().join("www/css")).unwrap();
    std::fs::write(context.path().join("www/msg.txt"), "new").unwrap();
    std::fs::write(context.path().join("www/css/site.css"), "body{}").unwrap();
    let mut rules = rules();
    rules.hooks.after.push(SyncHook::Container {
        command: vec!["sh".into(), "-c".into(), "echo hooked > /srv/hooked".into()],
    });
    let syncer = KubernetesSyncer::new(client.clone(), Some(namespace.name.clone()));
    let reporter = CollectingReporter::default();
    let copy = plan(
        context.path(),
        &rules,
        &["www/msg.txt", "www/css/site.css"],
        &[],
    );
    let report = syncer
        .sync(&target(&reference, &run_id), &copy, &reporter)
        .await
        .unwrap();
    assert_eq!(report.containers.len(), 1);
    assert_eq!(report.containers[0].container, "web/app");
    assert_eq!(report.containers[0].copied, 2);
    let cat = |path: &'static str| {
        let (client, namespace) = (client.clone(), namespace.name.clone());
        async move { exec_output(&client, &namespace, "web", &["cat", path]).await }
    };
    assert_eq!(cat("/srv/www/msg.txt").await, "new");
    assert_eq!(cat("/srv/www/css/site.css").await, "body{}");
    assert_eq!(
        cat("/srv/hooked").await.trim(),
        "hooked",
        "the after hook ran"
    );
    assert!(
        reporter
            .events()
            .iter()
            .any(|e| matches!(e, Event::Synced { containers, .. } if containers == &["web/app"]))
    );

    // A second sync reuses the working unpack command; then delete.
    std::fs::write(context.path().join("www/msg.txt"), "newer").unwrap();
    let again = plan(
        context.path(),
        &rules,
        &["www/msg.txt"],
        &["www/css/site.css"],
    );
    let report = syncer
        .sync(&target(&reference, &run_id), &again, &reporter)
        .await
        .unwrap();
    assert_eq!(report.containers[0].deleted, 1);
    assert_eq!(cat("/srv/www/msg.txt").await, "newer");
    let listing = exec_output(&client, &namespace.name, "web", &["ls", "/srv/www/css"]).await;
    assert!(!listing.contains("site.css"), "site.css deleted: {listing}");
    assert!(cat("/srv/www/css/site.css").await.is_empty());
}

#[tokio::test]
async fn image_without_tar_gives_the_no_tar_error() {
    let test = "image_without_tar_gives_the_no_tar_error";
    let Some(client) = cluster(test).await else {
        return;
    };
    if !engine_available(test) {
        return;
    }
    let id = unique();
    let reference = format!("skiff-sync-test-knotar:{id}");
    let mut leftovers = Leftovers::default();
    leftovers.images.push(reference.clone());
    build_scratch_image(&reference, "");
    let namespace = TestNamespace::create(&client).await;
    let run_id = format!("sync-{id}");
    start_pod(&client, &namespace.name, "scratch", &reference, &run_id).await;

    let context = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(context.path().join("www")).unwrap();
    std::fs::write(context.path().join("www/msg.txt"), "new").unwrap();
    let syncer = KubernetesSyncer::new(client.clone(), Some(namespace.name.clone()));
    let error = syncer
        .sync(
            &target(&reference, &run_id),
            &plan(context.path(), &rules(), &["www/msg.txt"], &[]),
            &CollectingReporter::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, SyncError::NoTar { .. }), "{error}");
    assert!(error.rebuild_instead());
    assert!(error.to_string().contains("scratch/app"), "{error}");

    // The pod runs on the local engine: through it, the copy needs no `tar`.
    let engine = skiff_sync::docker::DockerSyncer::connect(docker_host().as_deref())
        .await
        .unwrap();
    let syncer = KubernetesSyncer::new(client.clone(), Some(namespace.name.clone()))
        .with_local_engine(engine);
    let report = syncer
        .sync(
            &target(&reference, &run_id),
            &plan(context.path(), &rules(), &["www/msg.txt"], &[]),
            &CollectingReporter::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.containers.len(), 1);
    let pod = Api::<Pod>::namespaced(client.clone(), &namespace.name)
        .get("scratch")
        .await
        .unwrap();
    let id = pod.status.unwrap().container_statuses.unwrap()[0]
        .container_id
        .clone()
        .unwrap();
    let id = id.strip_prefix("docker://").unwrap();
    assert_eq!(
        read_in_container(id, "/srv/www/msg.txt").as_deref(),
        Some("new")
    );
}
