//! Helpers for tests against the real cluster: finding it (or skipping), unique names, a
//! namespace per test that is deleted even when the test fails, and manifests from YAML.

#![allow(clippy::print_stderr)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ::kube::api::{Api, DeleteParams, PostParams};
use k8s_openapi::api::core::v1::Namespace;
use skiff_deploy::kubernetes::client::{Connection, KubeTarget, connect};
use skiff_types::manifest::{Manifest, ManifestSet};

/// The kubeconfig `scripts/devenv/up` writes, used when `KUBECONFIG` is not set.
pub const DEVENV_KUBECONFIG: &str = "/var/lib/skiff-devenv/kube/admin.kubeconfig";

/// Installs the rustls crypto provider skiff uses (ring); idempotent.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The target the tests use: `KUBECONFIG`'s files, else the devenv's kubeconfig.
pub fn target() -> KubeTarget {
    let mut paths =
        KubeTarget::kubeconfig_search_path(std::env::var_os("KUBECONFIG").as_deref(), None);
    if paths.is_empty() {
        paths.push(PathBuf::from(DEVENV_KUBECONFIG));
    }
    KubeTarget {
        default_kubeconfigs: paths,
        ..KubeTarget::default()
    }
}

/// A connection to the test cluster, or `None` (the test should return) when there is none.
/// With `CI=true` a missing cluster fails the test instead.
pub async fn require_cluster() -> Option<Connection> {
    install_crypto();
    match connect(&target()).await {
        Ok(connection) => Some(connection),
        Err(error) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(
                !ci,
                "CI=true but the test cluster is not reachable ({error}); start it with `eval \"$(../shared/devenv/up)\"` and export KUBECONFIG"
            );
            eprintln!("skipping: no Kubernetes cluster ({error})");
            None
        }
    }
}

/// A DNS-label-safe name, unique across test processes: `skiff-test-<name>-<random>`.
pub fn unique(name: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let seed = u64::from(nanos)
        ^ (u64::from(std::process::id()) << 20)
        ^ u64::from(COUNTER.fetch_add(1, Ordering::Relaxed)) << 40;
    let mut random = String::new();
    let mut n = seed;
    for _ in 0..6 {
        random.push(char::from_digit((n % 36) as u32, 36).unwrap_or('x'));
        n /= 36;
    }
    format!("skiff-test-{name}-{random}")
}

/// A namespace (or any cluster-scoped object named in `extra`) that is deleted when dropped,
/// from a thread of its own so that it also happens when the test panics.
pub struct TestNamespace {
    /// The namespace's name.
    pub name: String,
    cleanup: Vec<(String, String)>,
}

impl TestNamespace {
    /// Creates `skiff-test-<name>-<random>`.
    pub async fn create(connection: &Connection, name: &str) -> TestNamespace {
        let namespace = TestNamespace::reserve(name);
        let api: Api<Namespace> = Api::all(connection.client.clone());
        let object: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": namespace.name }
        }))
        .expect("namespace object");
        api.create(&PostParams::default(), &object)
            .await
            .expect("create the test namespace");
        namespace
    }

    /// A unique namespace name that is deleted on drop but not created (the test creates it).
    pub fn reserve(name: &str) -> TestNamespace {
        TestNamespace {
            name: unique(name),
            cleanup: Vec::new(),
        }
    }

    /// Also delete this cluster-scoped object (`customresourcedefinitions`, name) on drop.
    pub fn also_delete(&mut self, plural: &str, name: &str) {
        self.cleanup.push((plural.to_owned(), name.to_owned()));
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        let extra = std::mem::take(&mut self.cleanup);
        let done = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(connection) = connect(&target()).await else {
                    return;
                };
                let client = connection.client;
                for (plural, object) in extra {
                    if plural == "customresourcedefinitions" {
                        let api: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
                            Api::all(client.clone());
                        let _ = api.delete(&object, &DeleteParams::background()).await;
                    }
                }
                let api: Api<Namespace> = Api::all(client);
                let _ = api.delete(&name, &DeleteParams::background()).await;
            });
        });
        let _ = done.join();
    }
}

/// A set of manifests, one per YAML document given, with origin `test.yaml#<index>`.
pub fn manifests(documents: &[&str]) -> ManifestSet {
    ManifestSet {
        manifests: documents
            .iter()
            .enumerate()
            .map(|(i, yaml)| Manifest::new(format!("test.yaml#{i}"), "", "", *yaml))
            .collect(),
    }
}
