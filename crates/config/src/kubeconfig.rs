//! What this crate and the runner need from a kubeconfig: the context in effect and its
//! cluster's server (for `kubeContext` profile activation and for telling whether the cluster
//! shares the local Docker engine). Talking to the cluster belongs to the deploy stage.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The kube-context in effect and the server its cluster points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeContext {
    /// The context's name.
    pub name: String,
    /// The cluster's API server URL, when the kubeconfig names it.
    pub server: Option<String>,
}

impl KubeContext {
    /// Whether the cluster is one of the well-known local ones whose nodes use the local
    /// Docker engine (or can load its images), so images need no push: `kind-*`, `k3d-*`,
    /// `minikube`, `docker-desktop`, `docker-for-desktop`, `rancher-desktop`, or an API server
    /// on loopback.
    pub fn is_local(&self) -> bool {
        let name = self.name.as_str();
        name.starts_with("kind-")
            || name.starts_with("k3d-")
            || matches!(
                name,
                "minikube" | "docker-desktop" | "docker-for-desktop" | "rancher-desktop"
            )
            || self.server.as_deref().is_some_and(is_loopback_url)
    }
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host == "localhost" || host.starts_with("127.") || rest.starts_with("[::1]")
}

/// The kubeconfig files in effect: every `$KUBECONFIG` entry in order (`--kubeconfig` reaches
/// here as `$KUBECONFIG`), else `$HOME/.kube/config`.
fn kubeconfig_paths(env: &BTreeMap<String, String>) -> Vec<PathBuf> {
    match env.get("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(list) => std::env::split_paths(list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        None => env
            .get("HOME")
            .map(|home| PathBuf::from(home).join(".kube").join("config"))
            .into_iter()
            .collect(),
    }
}

/// The context `name` (or the current context when `None`) of the kubeconfig in effect, merged
/// as kubectl and the deploy stage's client merge several files: the first file that sets
/// `current-context` decides it, and the first definition of a context or cluster name wins.
pub fn kube_context(env: &BTreeMap<String, String>, name: Option<&str>) -> Option<KubeContext> {
    let files: Vec<serde_yaml::Value> = kubeconfig_paths(env)
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .filter_map(|text| serde_yaml::from_str(&text).ok())
        .collect();
    if files.is_empty() {
        return None;
    }
    let name = match name {
        Some(name) => name.to_owned(),
        None => files.iter().find_map(|value| {
            value
                .get("current-context")?
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        })?,
    };
    let named = |list: &str, wanted: &str| {
        files.iter().find_map(|value| {
            value
                .get(list)?
                .as_sequence()?
                .iter()
                .find(|entry| entry.get("name").and_then(|n| n.as_str()) == Some(wanted))
                .cloned()
        })
    };
    let server = named("contexts", &name)
        .and_then(|c| {
            c.get("context")?
                .get("cluster")?
                .as_str()
                .map(str::to_owned)
        })
        .and_then(|cluster| named("clusters", &cluster))
        .and_then(|c| c.get("cluster")?.get("server")?.as_str().map(str::to_owned));
    Some(KubeContext { name, server })
}

/// The current context's name.
pub(crate) fn current_context(env: &BTreeMap<String, String>) -> Option<String> {
    kube_context(env, None).map(|c| c.name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_context_and_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: dev\ncontexts:\n- name: dev\n  context: {cluster: c1, user: u}\n- name: prod\n  context: {cluster: c2, user: u}\nclusters:\n- name: c1\n  cluster: {server: \"https://127.0.0.1:6443\"}\n- name: c2\n  cluster: {server: \"https://k8s.example.com\"}\n",
        )
        .unwrap();
        let env = BTreeMap::from([("KUBECONFIG".to_owned(), path.display().to_string())]);
        let current = kube_context(&env, None).unwrap();
        assert_eq!(current.name, "dev");
        assert!(current.is_local());
        let prod = kube_context(&env, Some("prod")).unwrap();
        assert_eq!(prod.server.as_deref(), Some("https://k8s.example.com"));
        assert!(!prod.is_local());
        assert!(
            KubeContext {
                name: "kind-x".into(),
                server: None
            }
            .is_local()
        );
        assert!(kube_context(&BTreeMap::new(), None).is_none());
    }

    #[test]
    fn several_files_merge_as_kubectl_merges_them() {
        let dir = tempfile::tempdir().unwrap();
        // The first file names no current context and defines the remote cluster; the second
        // sets the current context and defines a local cluster of the same name, which loses.
        let first = dir.path().join("a");
        std::fs::write(
            &first,
            "apiVersion: v1\nkind: Config\ncontexts:\n- name: work\n  context: {cluster: shared, user: u}\nclusters:\n- name: shared\n  cluster: {server: \"https://k8s.example.com\"}\n",
        )
        .unwrap();
        let second = dir.path().join("b");
        std::fs::write(
            &second,
            "apiVersion: v1\nkind: Config\ncurrent-context: work\nclusters:\n- name: shared\n  cluster: {server: \"https://127.0.0.1:6443\"}\n",
        )
        .unwrap();
        let list = std::env::join_paths([&first, &second]).unwrap();
        let env = BTreeMap::from([("KUBECONFIG".to_owned(), list.to_string_lossy().into_owned())]);
        let context = kube_context(&env, None).unwrap();
        assert_eq!(context.name, "work");
        assert_eq!(context.server.as_deref(), Some("https://k8s.example.com"));
        assert!(
            !context.is_local(),
            "images for a remote cluster are pushed"
        );
        // A missing entry is skipped, as kubectl skips it.
        let list = std::env::join_paths([dir.path().join("missing"), second.clone()]).unwrap();
        let env = BTreeMap::from([("KUBECONFIG".to_owned(), list.to_string_lossy().into_owned())]);
        assert_eq!(kube_context(&env, None).unwrap().name, "work");
    }
}
