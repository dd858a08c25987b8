//! The status check against the real one-node cluster: each test works in its own namespace
//! `skiff-status-<name>-<random>`, created and deleted by the test.
//!
//! Without a cluster (`KUBECONFIG`) the tests skip with a note; with `CI=true` they fail.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

#[path = "support/status_support.rs"]
mod status_support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event as KubeEvent, Pod};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use skiff_deploy::kubernetes::status::{StatusCheck, StatusSummary};
use skiff_deploy::{DeployError, ResourceRef};
use skiff_types::event::{CollectingReporter, Event, Level};
use status_support::*;
use tokio::time::Instant;

/// Runs the check (through the object-safe trait, as the runner does), with a safety net well
/// beyond the check's own deadline so a broken check fails instead of hanging.
async fn check(
    checker: &dyn StatusCheck,
    resources: &[ResourceRef],
    reporter: &CollectingReporter,
    deadline: Duration,
) -> (Result<StatusSummary, DeployError>, Duration) {
    let start = Instant::now();
    let result = tokio::time::timeout(
        deadline + Duration::from_secs(60),
        checker.wait_ready(resources, reporter),
    )
    .await
    .expect("the status check outlived its own deadline");
    (result, start.elapsed())
}

/// The reason of a `NotReady` error for `resource`.
fn not_ready(result: Result<StatusSummary, DeployError>, resource: &str) -> String {
    match result {
        Err(DeployError::NotReady {
            resource: r,
            reason,
        }) => {
            eprintln!("{r} is not ready: {reason}");
            assert_eq!(r, resource, "reason: {reason}");
            reason
        }
        other => panic!("expected {resource} to be NotReady, got {other:?}"),
    }
}

/// A pause container whose readiness probe never succeeds (nothing listens on port 9).
fn never_ready() -> serde_json::Value {
    let mut container = container(PAUSE_IMAGE, "IfNotPresent", &[]);
    container["readinessProbe"] = json!({"tcpSocket": {"port": 9}, "periodSeconds": 1});
    container
}

#[tokio::test]
async fn deployment_of_pause_becomes_ready() {
    in_namespace("ready", |client, ns| async move {
        let mut web = deployment("web", container(PAUSE_IMAGE, "IfNotPresent", &[]));
        web["spec"]["replicas"] = json!(2);
        create::<Deployment>(&client, &ns, web).await;
        let web = resource("apps/v1", "Deployment", &ns, "web");
        let service = resource("v1", "Service", &ns, "not-checked");
        let reporter = CollectingReporter::default();
        let deadline = Duration::from_secs(120);
        let checker = checker(&client, deadline, false);

        let (result, _) = check(&checker, &[web.clone(), service], &reporter, deadline).await;

        let summary = result.unwrap();
        assert_eq!(summary.ready.len(), 1, "{summary:?}");
        assert_eq!(summary.ready[0].0, web);
        assert!(summary.ready[0].1 <= summary.total);
        assert_eq!(ready_events(&reporter), ["deployment/web"]);
        let last = reporter.events().pop().unwrap();
        match last {
            Event::Message { level, text, .. } => {
                assert_eq!(level, Level::Info);
                assert!(text.starts_with("Deployments stabilized in "), "{text}");
                assert!(text.ends_with('s'), "{text}");
            }
            other => panic!("expected the summary message last, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn image_that_cannot_be_pulled_fails_fast() {
    in_namespace("pull", |client, ns| async move {
        create::<Deployment>(
            &client,
            &ns,
            deployment("bad", container("nosuch.invalid/x:1", "Always", &[])),
        )
        .await;
        let reporter = CollectingReporter::default();
        let deadline = Duration::from_secs(120);
        let checker = checker(&client, deadline, false);
        let bad = resource("apps/v1", "Deployment", &ns, "bad");

        let (result, took) = check(&checker, &[bad], &reporter, deadline).await;

        let reason = not_ready(result, "deployment/bad");
        assert!(
            reason.contains("ErrImagePull") || reason.contains("ImagePullBackOff"),
            "{reason}"
        );
        assert!(reason.contains("container app in pod bad-"), "{reason}");
        assert!(took < Duration::from_secs(60), "took {took:?}: {reason}");
        assert!(ready_events(&reporter).is_empty());
    })
    .await;
}

#[tokio::test]
async fn missing_image_that_must_not_be_pulled_fails_fast() {
    in_namespace("never", |client, ns| async move {
        create::<Deployment>(
            &client,
            &ns,
            deployment(
                "absent",
                container("skiff-test/no-such-image:never", "Never", &[]),
            ),
        )
        .await;
        let reporter = CollectingReporter::default();
        let deadline = Duration::from_secs(120);
        let checker = checker(&client, deadline, false);
        let absent = resource("apps/v1", "Deployment", &ns, "absent");

        let (result, took) = check(&checker, &[absent], &reporter, deadline).await;

        let reason = not_ready(result, "deployment/absent");
        assert!(reason.contains("ErrImageNeverPull"), "{reason}");
        assert!(took < Duration::from_secs(60), "took {took:?}: {reason}");
    })
    .await;
}

#[tokio::test]
async fn crash_looping_container_fails_with_its_last_log_line() {
    in_namespace("crash", |client, ns| async move {
        let image = app_image();
        create::<Deployment>(
            &client,
            &ns,
            deployment("crash", container(image, "IfNotPresent", &["crash"])),
        )
        .await;
        let reporter = CollectingReporter::default();
        let deadline = Duration::from_secs(120);
        let checker = checker(&client, deadline, false);
        let crash = resource("apps/v1", "Deployment", &ns, "crash");

        let (result, took) = check(&checker, &[crash], &reporter, deadline).await;

        let reason = not_ready(result, "deployment/crash");
        assert!(
            reason.contains("CrashLoopBackOff") || reason.contains("exit code 1"),
            "{reason}"
        );
        assert!(reason.contains("last exit code 1"), "{reason}");
        assert!(
            reason.contains(&format!("{APP_LINE} crash")),
            "the container's output is missing: {reason}"
        );
        assert!(took < Duration::from_secs(60), "took {took:?}: {reason}");
    })
    .await;
}

#[tokio::test]
async fn job_that_succeeds_is_ready() {
    in_namespace("job-ok", |client, ns| async move {
        let image = app_image();
        let mut pod = template("migrate", container(image, "IfNotPresent", &["ok"]));
        pod["spec"]["restartPolicy"] = json!("Never");
        create::<Job>(
            &client,
            &ns,
            json!({"metadata": {"name": "migrate"}, "spec": {"backoffLimit": 0, "template": pod}}),
        )
        .await;
        let reporter = CollectingReporter::default();
        let deadline = Duration::from_secs(120);
        let checker = checker(&client, deadline, false);
        let job = resource("batch/v1", "Job", &ns, "migrate");

        let (result, _) = check(&checker, &[job], &reporter, deadline).await;

        assert_eq!(result.unwrap().ready.len(), 1);
        assert_eq!(ready_events(&reporter), ["job/migrate"]);
    })
    .await;
}

#[tokio::test]
async fn job_that_fails_is_not_ready_with_its_reason() {
    in_namespace("job-fail", |client, ns| async move {
        let image = app_image();
        let mut pod = template("migrate", container(image, "IfNotPresent", &["crash"]));
        pod["spec"]["restartPolicy"] = json!("Never");
        create::<Job>(
            &client,
            &ns,
            json!({"metadata": {"name": "migrate"}, "spec": {"backoffLimit": 0, "template": pod}}),
        )
        .await;
        let reporter = CollectingReporter::default();
        let deadline = Duration::from_secs(120);
        let checker = checker(&client, deadline, false);
        let job = resource("batch/v1", "Job", &ns, "migrate");

        let (result, took) = check(&checker, &[job], &reporter, deadline).await;

        let reason = not_ready(result, "job/migrate");
        assert!(
            reason.contains("exited with code 1") || reason.contains("BackoffLimitExceeded"),
            "{reason}"
        );
        assert!(took < Duration::from_secs(60), "took {took:?}: {reason}");
    })
    .await;
}

#[tokio::test]
async fn bare_pods_become_ready_or_complete() {
    in_namespace("pod", |client, ns| async move {
        let image = app_image();
        let running = template("sandbox", container(PAUSE_IMAGE, "IfNotPresent", &[]));
        let mut running_pod = json!({"metadata": {"name": "sandbox"}});
        running_pod["spec"] = running["spec"].clone();
        create::<Pod>(&client, &ns, running_pod).await;
        let once = template("once", container(image, "IfNotPresent", &["ok"]));
        let mut once_pod = json!({"metadata": {"name": "once"}});
        once_pod["spec"] = once["spec"].clone();
        once_pod["spec"]["restartPolicy"] = json!("Never");
        create::<Pod>(&client, &ns, once_pod).await;
        let reporter = CollectingReporter::default();
        let deadline = Duration::from_secs(120);
        let checker = checker(&client, deadline, false);
        let pods = [
            resource("v1", "Pod", &ns, "sandbox"),
            resource("v1", "Pod", &ns, "once"),
        ];

        let (result, _) = check(&checker, &pods, &reporter, deadline).await;

        assert_eq!(result.unwrap().ready.len(), 2);
        let mut ready = ready_events(&reporter);
        ready.sort();
        assert_eq!(ready, ["pod/once", "pod/sandbox"]);
    })
    .await;
}

#[tokio::test]
async fn unschedulable_pod_fails_with_the_schedulers_message() {
    in_namespace("unsched", |client, ns| async move {
        let mut nowhere = deployment("nowhere", container(PAUSE_IMAGE, "IfNotPresent", &[]));
        nowhere["spec"]["template"]["spec"]["nodeSelector"] =
            json!({"skiff.dev/no-such-node": "true"});
        create::<Deployment>(&client, &ns, nowhere).await;
        let reporter = CollectingReporter::default();
        let deadline = Duration::from_secs(120);
        let checker = checker(&client, deadline, false);
        let nowhere = resource("apps/v1", "Deployment", &ns, "nowhere");

        let (result, took) = check(&checker, &[nowhere], &reporter, deadline).await;

        let reason = not_ready(result, "deployment/nowhere");
        assert!(
            reason.starts_with("Unschedulable: pod nowhere-"),
            "{reason}"
        );
        assert!(
            reason.contains("node"),
            "the scheduler's message is missing: {reason}"
        );
        assert!(took < Duration::from_secs(60), "took {took:?}: {reason}");
    })
    .await;
}

#[tokio::test]
async fn short_deadline_ends_the_check_with_the_last_status() {
    in_namespace("deadline", |client, ns| async move {
        create::<Deployment>(&client, &ns, deployment("slow", never_ready())).await;
        let reporter = CollectingReporter::default();
        let deadline = Duration::from_secs(5);
        let checker = checker(&client, deadline, false);
        let slow = resource("apps/v1", "Deployment", &ns, "slow");

        let (result, took) = check(&checker, &[slow], &reporter, deadline).await;

        let reason = not_ready(result, "deployment/slow");
        assert!(reason.starts_with("not ready after 5s: "), "{reason}");
        assert!(reason.contains("replicas available"), "{reason}");
        assert!(took >= deadline, "took {took:?}");
        assert!(took < Duration::from_secs(30), "took {took:?}");
        let statuses = status_events(&reporter, "deployment/slow");
        assert!(!statuses.is_empty(), "no progress was reported");
    })
    .await;
}

#[tokio::test]
async fn tolerated_failures_are_reported_until_the_deadline() {
    in_namespace("tolerate", |client, ns| async move {
        create::<Deployment>(
            &client,
            &ns,
            deployment(
                "absent",
                container("skiff-test/no-such-image:never", "Never", &[]),
            ),
        )
        .await;
        // The kubelet needs a moment (longer on a loaded machine) before the pod's container
        // is waiting with ErrImageNeverPull: the check starts once it is.
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let started = Instant::now();
        loop {
            let list = pods.list(&ListParams::default()).await.unwrap();
            let waiting = list.items.iter().any(|pod| {
                pod.status
                    .iter()
                    .flat_map(|s| s.container_statuses.iter().flatten())
                    .any(|c| {
                        c.state
                            .as_ref()
                            .and_then(|s| s.waiting.as_ref())
                            .and_then(|w| w.reason.as_deref())
                            == Some("ErrImageNeverPull")
                    })
            });
            if waiting {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the pod never reached ErrImageNeverPull"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let reporter = CollectingReporter::default();
        let deadline = Duration::from_secs(10);
        let checker = checker(&client, deadline, true);
        let absent = resource("apps/v1", "Deployment", &ns, "absent");

        let (result, took) = check(&checker, &[absent], &reporter, deadline).await;

        let reason = not_ready(result, "deployment/absent");
        assert!(reason.starts_with("not ready after 10s: "), "{reason}");
        assert!(reason.contains("ErrImageNeverPull"), "{reason}");
        assert!(took >= deadline, "took {took:?}");
        let statuses = status_events(&reporter, "deployment/absent");
        assert!(
            statuses.iter().any(|s| s.contains("ErrImageNeverPull")),
            "{statuses:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn statefulset_and_daemonset_become_ready_together() {
    in_namespace("sets", |client, ns| async move {
        let pause = || container(PAUSE_IMAGE, "IfNotPresent", &[]);
        create::<StatefulSet>(
            &client,
            &ns,
            json!({"metadata": {"name": "db"}, "spec": {
                "replicas": 2, "serviceName": "db", "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": {"app": "db"}}, "template": template("db", pause())
            }}),
        )
        .await;
        create::<DaemonSet>(
            &client,
            &ns,
            json!({"metadata": {"name": "agent"}, "spec": {
                "selector": {"matchLabels": {"app": "agent"}}, "template": template("agent", pause())
            }}),
        )
        .await;
        let reporter = CollectingReporter::default();
        let deadline = Duration::from_secs(120);
        let checker = checker(&client, deadline, false);
        let sets = [
            resource("apps/v1", "StatefulSet", &ns, "db"),
            resource("apps/v1", "DaemonSet", &ns, "agent"),
        ];

        let (result, _) = check(&checker, &sets, &reporter, deadline).await;

        assert_eq!(result.unwrap().ready.len(), 2);
        let mut ready = ready_events(&reporter);
        ready.sort();
        assert_eq!(ready, ["daemonset/agent", "statefulset/db"]);
    })
    .await;
}

#[tokio::test]
async fn first_failure_cancels_the_other_checks() {
    in_namespace("cancel", |client, ns| async move {
        create::<Deployment>(&client, &ns, deployment("slow", never_ready())).await;
        create::<Deployment>(
            &client,
            &ns,
            deployment(
                "absent",
                container("skiff-test/no-such-image:never", "Never", &[]),
            ),
        )
        .await;
        let reporter = CollectingReporter::default();
        let deadline = Duration::from_secs(120);
        let checker = checker(&client, deadline, false);
        let both = [
            resource("apps/v1", "Deployment", &ns, "slow"),
            resource("apps/v1", "Deployment", &ns, "absent"),
        ];

        let (result, took) = check(&checker, &both, &reporter, deadline).await;

        let reason = not_ready(result, "deployment/absent");
        assert!(reason.contains("ErrImageNeverPull"), "{reason}");
        assert!(took < Duration::from_secs(60), "took {took:?}: {reason}");
    })
    .await;
}

#[tokio::test]
async fn fixed_deployment_is_ready_while_the_old_pods_still_crash() {
    in_namespace("fixed", |client, ns| async move {
        let image = app_image();
        create::<Deployment>(
            &client,
            &ns,
            deployment("web", container(image, "IfNotPresent", &["crash"])),
        )
        .await;
        let deadline = Duration::from_secs(120);
        let checker = checker(&client, deadline, false);
        let web = resource("apps/v1", "Deployment", &ns, "web");
        let reporter = CollectingReporter::default();
        let (result, _) = check(&checker, std::slice::from_ref(&web), &reporter, deadline).await;
        let reason = not_ready(result, "deployment/web");
        assert!(reason.contains("CrashLoopBackOff"), "{reason}");

        // The fix: the new ReplicaSet's pod runs, the old one keeps crashing until it is
        // scaled down after the new one is available.
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let fix = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "args": ["sleep"]}
        ]}}}});
        deployments
            .patch("web", &PatchParams::default(), &Patch::Strategic(&fix))
            .await
            .unwrap();
        let reporter = CollectingReporter::default();
        let (result, _) = check(&checker, std::slice::from_ref(&web), &reporter, deadline).await;

        let summary = result.unwrap();
        assert_eq!(summary.ready.len(), 1, "{summary:?}");
        assert_eq!(ready_events(&reporter), ["deployment/web"]);
    })
    .await;
}

/// Mounts the ConfigMap `config_map`, which the test never creates: the kubelet cannot set the
/// pod up and says so only in `FailedMount` events (retried with backoff, the first within a
/// second or two), while the container stays `ContainerCreating`, which is no failure of its own.
fn with_missing_config_map(mut pod_spec: serde_json::Value, config_map: &str) -> serde_json::Value {
    pod_spec["volumes"] = json!([{"name": "cfg", "configMap": {"name": config_map}}]);
    pod_spec["containers"][0]["volumeMounts"] = json!([{"name": "cfg", "mountPath": "/cfg"}]);
    pod_spec
}

/// Waits until the kubelet has reported `reason` for a pod whose name starts with `pod_prefix`,
/// so the check below does not depend on how busy the shared node is.
async fn wait_for_pod_event(client: &Client, namespace: &str, pod_prefix: &str, reason: &str) {
    let events: Api<KubeEvent> = Api::namespaced(client.clone(), namespace);
    let fields = format!("involvedObject.kind=Pod,reason={reason}");
    let params = ListParams::default().fields(&fields);
    for _ in 0..240 {
        let listed = events.list(&params).await.unwrap();
        if listed.items.iter().any(|e| {
            e.involved_object
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(pod_prefix))
        }) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the kubelet reported no {reason} for pod {pod_prefix}* in {namespace} within 120s");
}

#[tokio::test]
async fn pod_warning_events_explain_a_stuck_pod_until_the_deadline() {
    in_namespace("events", |client, ns| async move {
        let missing = "skiff-no-such-config";
        let pause = || container(PAUSE_IMAGE, "IfNotPresent", &[]);
        let mut web = deployment("web", pause());
        web["spec"]["template"]["spec"] =
            with_missing_config_map(web["spec"]["template"]["spec"].clone(), missing);
        create::<Deployment>(&client, &ns, web).await;
        let bare = template("bare", pause());
        let bare = json!({"metadata": {"name": "bare"},
            "spec": with_missing_config_map(bare["spec"].clone(), missing)});
        create::<Pod>(&client, &ns, bare).await;
        wait_for_pod_event(&client, &ns, "web-", "FailedMount").await;
        wait_for_pod_event(&client, &ns, "bare", "FailedMount").await;
        let deadline = Duration::from_secs(10);
        let checker = checker(&client, deadline, false);
        let (web_reporter, bare_reporter) =
            (CollectingReporter::default(), CollectingReporter::default());
        let web = [resource("apps/v1", "Deployment", &ns, "web")];
        let bare = [resource("v1", "Pod", &ns, "bare")];

        let ((web_result, web_took), (bare_result, bare_took)) = tokio::join!(
            check(&checker, &web, &web_reporter, deadline),
            check(&checker, &bare, &bare_reporter, deadline),
        );

        // Not a fast failure: a mount (or sandbox) error may pass, so only the deadline ends the
        // check, and its message says why.
        let web_statuses = status_events(&web_reporter, "deployment/web");
        let bare_statuses = status_events(&bare_reporter, "pod/bare");
        let mount_error = format!("configmap \"{missing}\" not found");
        for (reason, took, pod, statuses) in [
            (
                not_ready(web_result, "deployment/web"),
                web_took,
                "; pod web-",
                &web_statuses,
            ),
            (
                not_ready(bare_result, "pod/bare"),
                bare_took,
                "; pod bare: ",
                &bare_statuses,
            ),
        ] {
            assert!(reason.starts_with("not ready after 10s: "), "{reason}");
            assert!(reason.contains(pod), "{reason}\n{statuses:?}");
            assert!(reason.contains("FailedMount: "), "{reason}\n{statuses:?}");
            assert!(reason.contains(&mount_error), "{reason}\n{statuses:?}");
            assert!(!reason.contains('\n'), "{reason}");
            assert!(took >= deadline, "took {took:?}: {reason}");
            assert!(
                statuses.iter().any(|s| s.contains(pod)
                    && s.contains("FailedMount: ")
                    && s.contains(&mount_error)),
                "{statuses:?}"
            );
        }
        assert!(
            web_statuses
                .iter()
                .any(|s| s.starts_with("0/1 replicas available; pod web-")),
            "{web_statuses:?}"
        );
        assert!(
            bare_statuses
                .iter()
                .any(|s| s.starts_with("Pending: ContainerCreating; pod bare: ")),
            "{bare_statuses:?}"
        );
    })
    .await;
}
