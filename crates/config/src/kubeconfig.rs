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

fn kubeconfig_path(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    match env.get("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(list) => Some(PathBuf::from(list.split(':').find(|p| !p.is_empty())?)),
        None => Some(PathBuf::from(env.get("HOME")?).join(".kube").join("config")),
    }
}

/// The context `name` (or the current context when `None`) of the kubeconfig that
/// `$KUBECONFIG` (its first entry) or `$HOME/.kube/config` names, when it can be read.
pub fn kube_context(env: &BTreeMap<String, String>, name: Option<&str>) -> Option<KubeContext> {
    let text = std::fs::read_to_string(kubeconfig_path(env)?).ok()?;
    let value: serde_yaml::Value = serde_yaml::from_str(&text).ok()?;
    let name = match name {
        Some(name) => name.to_owned(),
        None => value
            .get("current-context")?
            .as_str()
            .filter(|s| !s.is_empty())?
            .to_owned(),
    };
    let named = |list: &str, wanted: &str| {
        value
            .get(list)?
            .as_sequence()?
            .iter()
            .find(|entry| entry.get("name").and_then(|n| n.as_str()) == Some(wanted))
            .cloned()
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
}
