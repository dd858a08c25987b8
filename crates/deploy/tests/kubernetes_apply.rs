//! The Kubernetes deployer against the real cluster: apply, unchanged detection, immutable
//! fields and `--force`, API rejections, kubeconfig and connection faults, RBAC, cleanup and
//! the label-guarded deletes. Each test works in a namespace of its own.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use skiff_deploy::kubernetes::KubernetesDeployer;
use skiff_deploy::kubernetes::apply::{
    ApplyOptions, LEFTOVER_KINDS, delete_by_run_label, delete_labelled,
};
use skiff_deploy::kubernetes::client::{Connection, KubeTarget, connect};
use skiff_deploy::{
    ApplyAction, DeployError, DeployInput, Deployer, MANAGED_BY_LABEL, ManifestSet, RUN_ID_LABEL,
};
use skiff_types::event::{CollectingReporter, Event, Level};
use support::kube::{TestNamespace, manifests, require_cluster};

const PAUSE: &str = "k8s.gcr.io/pause:3.2";

fn deployment(name: &str, namespace: Option<&str>, annotation: &str) -> String {
    let namespace = namespace
        .map(|n| format!("  namespace: {n}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n{namespace}  annotations:\n    note: {annotation}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: pause\n        image: {PAUSE}\n        imagePullPolicy: Never\n        ports:\n        - containerPort: 8080\n"
    )
}

/// A Service whose port has no `protocol` (Kubernetes 1.20 refuses that under server-side apply).
fn service(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector: {{app: {name}}}\n  ports:\n  - port: 80\n    targetPort: 8080\n"
    )
}

fn config_map(name: &str, namespace: Option<&str>, value: &str) -> String {
    let namespace = namespace
        .map(|n| format!("  namespace: {n}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{namespace}data:\n  key: \"{value}\"\n"
    )
}

fn job(name: &str, value: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: pause\n        image: {PAUSE}\n        imagePullPolicy: Never\n        env:\n        - name: VALUE\n          value: \"{value}\"\n"
    )
}

/// The same connection with `namespace` as the default for objects without one.
fn in_namespace(connection: &Connection, namespace: &str) -> Connection {
    Connection {
        default_namespace: namespace.to_owned(),
        ..connection.clone()
    }
}

fn deployer(connection: &Connection, run_id: &str, force: bool) -> KubernetesDeployer {
    KubernetesDeployer::new(
        connection.clone(),
        run_id,
        ApplyOptions {
            force,
            ..ApplyOptions::default()
        },
    )
}

async fn deploy(
    deployer: &KubernetesDeployer,
    set: &ManifestSet,
    reporter: &CollectingReporter,
) -> Result<Vec<(String, ApplyAction)>, DeployError> {
    let input = DeployInput {
        manifests: set,
        images: &[],
    };
    let outcome = deployer.deploy(&input, reporter).await?;
    Ok(outcome
        .resources
        .into_iter()
        .map(|(r, a)| (r.to_string(), a))
        .collect())
}

fn deployed_events(reporter: &CollectingReporter) -> Vec<(String, String)> {
    reporter
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Deployed { object, action } => Some((object, action)),
            _ => None,
        })
        .collect()
}

fn warnings(reporter: &CollectingReporter) -> Vec<String> {
    reporter
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Message {
                level: Level::Warning,
                text,
                ..
            } => Some(text),
            _ => None,
        })
        .collect()
}

fn labels_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

#[tokio::test]
async fn applies_then_skips_unchanged_then_configures() {
    let Some(connection) = require_cluster().await else {
        return;
    };
    let ns = TestNamespace::create(&connection, "apply").await;
    let connection = in_namespace(&connection, &ns.name);
    let deployer = deployer(&connection, "run-apply", false);
    let reporter = CollectingReporter::default();

    // The Deployment names its namespace; the Service (without `protocol`) gets the default.
    let first = manifests(&[&deployment("web", Some(&ns.name), "one"), &service("web")]);
    let outcome = deploy(&deployer, &first, &reporter)
        .await
        .expect("first deploy");
    assert_eq!(
        outcome,
        [
            ("deployment/web".to_owned(), ApplyAction::Created),
            ("service/web".to_owned(), ApplyAction::Created)
        ]
    );
    assert_eq!(
        deployed_events(&reporter),
        [
            (format!("{}/deployment/web", ns.name), "created".to_owned()),
            (format!("{}/service/web", ns.name), "created".to_owned()),
        ]
    );
    let deployments: Api<Deployment> = Api::namespaced(connection.client.clone(), &ns.name);
    let services: Api<Service> = Api::namespaced(connection.client.clone(), &ns.name);
    let live = deployments.get("web").await.expect("deployment exists");
    let labels = labels_of(&live.metadata);
    assert_eq!(
        labels.get(RUN_ID_LABEL).map(String::as_str),
        Some("run-apply")
    );
    assert_eq!(
        labels.get(MANAGED_BY_LABEL).map(String::as_str),
        Some("skiff")
    );
    let svc = services.get("web").await.expect("service exists");
    assert_eq!(
        labels_of(&svc.metadata)
            .get(RUN_ID_LABEL)
            .map(String::as_str),
        Some("run-apply")
    );
    let ports = svc.spec.and_then(|s| s.ports).unwrap_or_default();
    assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
    let service_version = svc.metadata.resource_version.clone();
    // Someone else changes the Deployment's annotation: were the set sent again, the forced
    // apply would set it back. (The Deployment's resourceVersion moves with status updates.)
    let tamper = serde_json::json!({"metadata": {"annotations": {"note": "tampered"}}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(&tamper))
        .await
        .expect("tamper");

    // The same set again: nothing is sent.
    let again = deploy(&deployer, &first, &reporter)
        .await
        .expect("second deploy");
    assert_eq!(
        again,
        [
            ("deployment/web".to_owned(), ApplyAction::Unchanged),
            ("service/web".to_owned(), ApplyAction::Unchanged)
        ]
    );
    let note = |d: Deployment| {
        d.metadata
            .annotations
            .unwrap_or_default()
            .get("note")
            .cloned()
    };
    assert_eq!(
        note(deployments.get("web").await.expect("get")).as_deref(),
        Some("tampered")
    );
    assert_eq!(
        services
            .get("web")
            .await
            .expect("get")
            .metadata
            .resource_version,
        service_version
    );

    // A changed Deployment is configured; the Service is still unchanged.
    let changed = manifests(&[&deployment("web", Some(&ns.name), "two"), &service("web")]);
    let outcome = deploy(&deployer, &changed, &reporter)
        .await
        .expect("third deploy");
    assert_eq!(
        outcome,
        [
            ("deployment/web".to_owned(), ApplyAction::Configured),
            ("service/web".to_owned(), ApplyAction::Unchanged)
        ]
    );
    assert_eq!(
        note(deployments.get("web").await.expect("get")).as_deref(),
        Some("two")
    );
    assert_eq!(
        services
            .get("web")
            .await
            .expect("get")
            .metadata
            .resource_version,
        service_version
    );

    // A new session with the same run id finds the objects as they are: unchanged, not created.
    let fresh = self::deployer(&connection, "run-apply", false);
    let outcome = deploy(&fresh, &changed, &CollectingReporter::default())
        .await
        .expect("new session");
    assert!(
        outcome.iter().all(|(_, a)| *a != ApplyAction::Created),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn immutable_change_is_rejected_without_force_and_recreated_with_it() {
    let Some(connection) = require_cluster().await else {
        return;
    };
    let ns = TestNamespace::create(&connection, "immutable").await;
    let connection = in_namespace(&connection, &ns.name);
    let reporter = CollectingReporter::default();
    let plain = deployer(&connection, "run-immutable", false);
    deploy(&plain, &manifests(&[&job("once", "a")]), &reporter)
        .await
        .expect("create the job");
    let jobs: Api<Job> = Api::namespaced(connection.client.clone(), &ns.name);
    let old_uid = jobs.get("once").await.expect("job").metadata.uid;

    let changed = manifests(&[&job("once", "b")]);
    match deploy(&plain, &changed, &reporter).await {
        Err(DeployError::Rejected { object, message }) => {
            assert!(object.contains("job/once"), "{object}");
            assert!(message.contains("--force"), "{message}");
            assert!(message.contains("immutable"), "{message}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    // Nothing was deleted because of the error.
    assert_eq!(
        jobs.get("once")
            .await
            .expect("job is still there")
            .metadata
            .uid,
        old_uid
    );

    let forced = deployer(&connection, "run-immutable", true);
    let outcome = deploy(&forced, &changed, &reporter)
        .await
        .expect("forced deploy");
    assert_eq!(outcome, [("job/once".to_owned(), ApplyAction::Created)]);
    let live = jobs.get("once").await.expect("re-created job");
    assert_ne!(live.metadata.uid, old_uid);
    let env = live
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers[0].env.clone().unwrap_or_default())
        .unwrap_or_default();
    assert_eq!(env[0].value.as_deref(), Some("b"));
    let events = deployed_events(&reporter);
    let object = format!("{}/job/once", ns.name);
    assert!(
        events.contains(&(object.clone(), "deleted".to_owned())),
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&(object, "created".to_owned())));
}

#[tokio::test]
async fn api_rejection_names_the_object_and_the_servers_message() {
    let Some(connection) = require_cluster().await else {
        return;
    };
    let ns = TestNamespace::create(&connection, "rejected").await;
    let connection = in_namespace(&connection, &ns.name);
    let deployer = deployer(&connection, "run-rejected", false);
    let set = manifests(&[
        &config_map("fine", None, "x"),
        &deployment("Bad_Name", None, "x"),
    ]);
    match deploy(&deployer, &set, &CollectingReporter::default()).await {
        Err(error @ DeployError::Rejected { .. }) => {
            let text = error.to_string();
            assert!(text.contains("deployment/Bad_Name"), "{text}");
            assert!(text.contains("metadata.name: Invalid value"), "{text}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    // What was applied before the failure stays.
    let maps: Api<ConfigMap> = Api::namespaced(connection.client.clone(), &ns.name);
    assert!(maps.get_opt("fine").await.expect("get").is_some());
}

#[tokio::test]
async fn unknown_kind_fails_before_anything_is_applied() {
    let Some(connection) = require_cluster().await else {
        return;
    };
    let ns = TestNamespace::create(&connection, "unknown").await;
    let connection = in_namespace(&connection, &ns.name);
    let deployer = deployer(&connection, "run-unknown", false);
    let set = manifests(&[
        &config_map("first", None, "x"),
        "apiVersion: example.invalid/v1\nkind: Gadget\nmetadata:\n  name: g\n",
    ]);
    match deploy(&deployer, &set, &CollectingReporter::default()).await {
        Err(DeployError::Manifest { origin, message }) => {
            assert_eq!(origin, "test.yaml#1");
            assert!(
                message.contains("Gadget") && message.contains("example.invalid/v1"),
                "{message}"
            );
        }
        other => panic!("expected Manifest, got {other:?}"),
    }
    let maps: Api<ConfigMap> = Api::namespaced(connection.client.clone(), &ns.name);
    assert!(maps.get_opt("first").await.expect("get").is_none());
}

#[tokio::test]
async fn custom_resources_follow_their_crd_in_the_same_set() {
    let Some(connection) = require_cluster().await else {
        return;
    };
    let mut ns = TestNamespace::create(&connection, "crd").await;
    let group = format!("{}.skiff.test", ns.name.replace('-', ""));
    let crd_name = format!("widgets.{group}");
    ns.also_delete("customresourcedefinitions", &crd_name);
    let connection = in_namespace(&connection, &ns.name);
    let crd = format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {crd_name}\nspec:\n  group: {group}\n  scope: Namespaced\n  names: {{plural: widgets, singular: widget, kind: Widget}}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n"
    );
    let widget =
        format!("apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: 3\n");
    let deployer = deployer(&connection, "run-crd", false);
    // The custom resource comes first in the input; the CRD is applied before it anyway.
    let outcome = deploy(
        &deployer,
        &manifests(&[&widget, &crd]),
        &CollectingReporter::default(),
    )
    .await
    .expect("deploy CRD and custom resource");
    assert_eq!(
        outcome,
        [
            (
                format!("customresourcedefinition/{crd_name}"),
                ApplyAction::Created
            ),
            ("widget/w".to_owned(), ApplyAction::Created),
        ]
    );
    deployer
        .cleanup(&CollectingReporter::default())
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn unknown_context_and_unreadable_file_are_kubeconfig_errors() {
    support::kube::install_crypto();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:1\"}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: dev\n  context: {cluster: c, user: u}\n- name: prod\n  context: {cluster: c, user: u}\ncurrent-context: dev\n",
    )
    .expect("write kubeconfig");
    let target = KubeTarget {
        kubeconfig: Some(path.clone()),
        context: Some("staging".into()),
        ..KubeTarget::default()
    };
    match connect(&target).await {
        Err(error @ DeployError::Kubeconfig { .. }) => {
            let text = error.to_string();
            assert!(text.contains("`staging`"), "{text}");
            assert!(text.contains("dev, prod"), "{text}");
            assert!(text.contains(&path.display().to_string()), "{text}");
        }
        other => panic!("expected Kubeconfig, got {other:?}"),
    }
    let missing = dir.path().join("missing");
    match connect(&KubeTarget {
        kubeconfig: Some(missing.clone()),
        ..KubeTarget::default()
    })
    .await
    {
        Err(DeployError::Kubeconfig { kubeconfig, reason }) => {
            assert_eq!(kubeconfig, missing.display().to_string());
            assert!(reason.contains("cannot read"), "{reason}");
        }
        other => panic!("expected Kubeconfig, got {other:?}"),
    }
}

#[tokio::test]
async fn unreachable_server_names_context_and_server() {
    support::kube::install_crypto();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:1\", insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: nowhere\n  context: {cluster: c, user: u}\ncurrent-context: nowhere\n",
    )
    .expect("write kubeconfig");
    let started = Instant::now();
    match connect(&KubeTarget {
        default_kubeconfigs: vec![dir.path().join("absent"), path],
        ..KubeTarget::default()
    })
    .await
    {
        Err(error @ DeployError::ClusterUnreachable { .. }) => {
            let text = error.to_string();
            assert!(
                text.contains("`nowhere`") && text.contains("https://127.0.0.1:1"),
                "{text}"
            );
        }
        other => panic!("expected ClusterUnreachable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn rbac_forbidden_names_verb_resource_and_namespace() {
    let Some(admin) = require_cluster().await else {
        return;
    };
    let ns = TestNamespace::create(&admin, "rbac").await;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.client.clone(), &ns.name);
    let account: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "nobody"}}))
            .expect("account");
    accounts
        .create(&PostParams::default(), &account)
        .await
        .expect("create account");
    // Kubernetes 1.20 creates the account's token Secret.
    let deadline = Instant::now() + Duration::from_secs(30);
    let secret_name = loop {
        let live = accounts.get("nobody").await.expect("account");
        if let Some(name) = live
            .secrets
            .unwrap_or_default()
            .into_iter()
            .find_map(|s| s.name)
        {
            break name;
        }
        assert!(
            Instant::now() < deadline,
            "no token Secret for the service account"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let secrets: Api<Secret> = Api::namespaced(admin.client.clone(), &ns.name);
    let data = secrets
        .get(&secret_name)
        .await
        .expect("token secret")
        .data
        .unwrap_or_default();
    let token = String::from_utf8(data["token"].0.clone()).expect("token text");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, &data["ca.crt"].0).expect("write CA");
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{}\", certificate-authority: \"{}\"}}\nusers:\n- name: nobody\n  user: {{token: \"{token}\"}}\ncontexts:\n- name: nobody\n  context: {{cluster: c, user: nobody, namespace: {}}}\ncurrent-context: nobody\n",
            admin.server,
            ca.display(),
            ns.name
        ),
    )
    .expect("write kubeconfig");
    let connection = connect(&KubeTarget {
        kubeconfig: Some(kubeconfig),
        ..KubeTarget::default()
    })
    .await
    .expect("the service account can connect");
    assert_eq!(connection.default_namespace, ns.name);
    let deployer = deployer(&connection, "run-rbac", false);
    match deploy(
        &deployer,
        &manifests(&[&config_map("denied", None, "x")]),
        &CollectingReporter::default(),
    )
    .await
    {
        Err(error @ DeployError::Forbidden { .. }) => {
            let DeployError::Forbidden {
                verb,
                resource,
                namespace,
                ..
            } = &error
            else {
                unreachable!()
            };
            assert_eq!(verb, "patch", "{error}");
            assert_eq!(resource, "configmaps", "{error}");
            assert_eq!(namespace, &ns.name, "{error}");
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn cleanup_removes_what_this_run_applied_and_still_carries_its_label() {
    let Some(connection) = require_cluster().await else {
        return;
    };
    let ns = TestNamespace::create(&connection, "cleanup").await;
    // A namespace the set itself creates; listed after an object inside it.
    let own = TestNamespace::reserve("cleanup-own");
    let connection = in_namespace(&connection, &ns.name);
    let deployer = deployer(&connection, "run-cleanup", false);
    let namespace = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}\n",
        own.name
    );
    let set = manifests(&[
        &config_map("inside", Some(&own.name), "x"),
        &namespace,
        &config_map("gone", None, "x"),
        &config_map("taken-over", None, "x"),
        &deployment("web", None, "x"),
        &service("web"),
    ]);
    let outcome = deploy(&deployer, &set, &CollectingReporter::default())
        .await
        .expect("deploy");
    assert_eq!(
        outcome[0],
        (format!("namespace/{}", own.name), ApplyAction::Created)
    );
    assert_eq!(deployer.applied().await.len(), 6);

    // Someone else's run now owns `taken-over`: cleanup leaves it.
    let maps: Api<ConfigMap> = Api::namespaced(connection.client.clone(), &ns.name);
    let relabel = serde_json::json!({"metadata": {"labels": {RUN_ID_LABEL: "another-run"}}});
    maps.patch(
        "taken-over",
        &PatchParams::default(),
        &Patch::Merge(&relabel),
    )
    .await
    .expect("relabel");

    let reporter = CollectingReporter::default();
    deployer.cleanup(&reporter).await.expect("cleanup");
    assert!(maps.get_opt("gone").await.expect("get").is_none());
    assert!(maps.get_opt("taken-over").await.expect("get").is_some());
    let deployments: Api<Deployment> = Api::namespaced(connection.client.clone(), &ns.name);
    assert!(deployments.get_opt("web").await.expect("get").is_none());
    let services: Api<Service> = Api::namespaced(connection.client.clone(), &ns.name);
    assert!(services.get_opt("web").await.expect("get").is_none());
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> =
        Api::all(connection.client.clone());
    let own_live = namespaces.get_opt(&own.name).await.expect("get");
    assert!(own_live.is_none_or(|n| n.metadata.deletion_timestamp.is_some()));
    let deleted: Vec<_> = deployed_events(&reporter)
        .into_iter()
        .filter(|(_, a)| a == "deleted")
        .collect();
    assert_eq!(deleted.len(), 5, "{deleted:?}");
    assert!(
        warnings(&reporter)
            .iter()
            .any(|w| w.contains("configmap/taken-over"))
    );
    assert!(deployer.applied().await.is_empty());
}

#[tokio::test]
async fn delete_labelled_spares_objects_without_skiffs_labels() {
    let Some(connection) = require_cluster().await else {
        return;
    };
    let ns = TestNamespace::create(&connection, "delete").await;
    let connection = in_namespace(&connection, &ns.name);
    // Created by someone else, with the name the config uses.
    let maps: Api<ConfigMap> = Api::namespaced(connection.client.clone(), &ns.name);
    let plain: ConfigMap = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "plain"}, "data": {"k": "v"}}),
    )
    .expect("map");
    maps.create(&PostParams::default(), &plain)
        .await
        .expect("create plain");
    let deployer = deployer(&connection, "run-delete", false);
    deploy(
        &deployer,
        &manifests(&[&config_map("owned", None, "x")]),
        &CollectingReporter::default(),
    )
    .await
    .expect("deploy");

    let config = manifests(&[
        &config_map("owned", None, "x"),
        &config_map("plain", None, "x"),
        &config_map("never-deployed", None, "x"),
    ]);
    let reporter = CollectingReporter::default();
    let deleted = delete_labelled(&connection, &config, &reporter)
        .await
        .expect("delete");
    assert_eq!(
        deleted.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["owned"]
    );
    assert!(maps.get_opt("owned").await.expect("get").is_none());
    assert!(
        maps.get_opt("plain").await.expect("get").is_some(),
        "an object without skiff's labels was deleted"
    );
    assert!(
        warnings(&reporter)
            .iter()
            .any(|w| w.contains("configmap/plain") && w.contains(MANAGED_BY_LABEL))
    );
}

#[tokio::test]
async fn delete_by_run_label_removes_leftovers_of_the_run_asked_for() {
    let Some(connection) = require_cluster().await else {
        return;
    };
    let ns = TestNamespace::create(&connection, "leftovers").await;
    let connection = in_namespace(&connection, &ns.name);
    let maps: Api<ConfigMap> = Api::namespaced(connection.client.clone(), &ns.name);
    let plain: ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "plain"}})).expect("map");
    maps.create(&PostParams::default(), &plain)
        .await
        .expect("create plain");
    // A `dev` that was killed before it could clean up.
    let killed = deployer(&connection, "run-killed", false);
    let set = manifests(&[
        &deployment("web", None, "x"),
        &service("web"),
        &config_map("settings", None, "x"),
    ]);
    deploy(&killed, &set, &CollectingReporter::default())
        .await
        .expect("deploy");
    let namespaces = [ns.name.clone()];

    let reporter = CollectingReporter::default();
    let none = delete_by_run_label(
        &connection,
        &namespaces,
        Some("run-other"),
        LEFTOVER_KINDS,
        &reporter,
    )
    .await
    .expect("delete another run's leftovers");
    assert!(none.is_empty(), "{none:?}");
    assert!(maps.get_opt("settings").await.expect("get").is_some());

    let deleted = delete_by_run_label(
        &connection,
        &namespaces,
        Some("run-killed"),
        LEFTOVER_KINDS,
        &reporter,
    )
    .await
    .expect("delete the killed run's leftovers");
    let mut names: Vec<String> = deleted.iter().map(ToString::to_string).collect();
    names.sort();
    // The Deployment's ReplicaSet is left to the garbage collector.
    assert_eq!(
        names,
        ["configmap/settings", "deployment/web", "service/web"]
    );
    assert!(maps.get_opt("settings").await.expect("get").is_none());
    assert!(maps.get_opt("plain").await.expect("get").is_some());
}

#[tokio::test]
async fn kubectl_flags_skiff_cannot_honour_are_reported_once() {
    let Some(connection) = require_cluster().await else {
        return;
    };
    let deployer = KubernetesDeployer::new(
        connection,
        "run-flags",
        ApplyOptions {
            kubectl_flags: vec!["--server-side".into(), "--validate=false".into()],
            ..ApplyOptions::default()
        },
    );
    let reporter = CollectingReporter::default();
    let empty = ManifestSet::default();
    deploy(&deployer, &empty, &reporter).await.expect("deploy");
    deploy(&deployer, &empty, &reporter).await.expect("deploy");
    let warnings = warnings(&reporter);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("--validate=false") && !warnings[0].contains("--server-side"));
}
