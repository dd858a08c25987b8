//! Kubernetes manifests as they pass from the render stage to the deploy stage.
//!
//! A [`Manifest`] is one object: its YAML text plus the identifying fields the render stage
//! already read (`apiVersion`, `kind`, `metadata.name`, `metadata.namespace`), so the deploy
//! stage can name, order and select objects without parsing YAML again.
//!
//! ```
//! use skiff_types::manifest::{Manifest, ManifestSet};
//!
//! let service = Manifest::new("k8s/app.yaml", "v1", "Service", "apiVersion: v1\nkind: Service\n")
//!     .with_name("web")
//!     .with_namespace("dev");
//! assert_eq!(service.group(), "");
//! assert_eq!(service.id(), "dev/Service/web");
//!
//! let set = ManifestSet { manifests: vec![service.clone(), service] };
//! assert_eq!(set.to_yaml_stream().matches("---\n").count(), 1);
//! ```

use std::fmt;

/// One rendered Kubernetes object, serialized as a single YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Where it came from, for error messages: a file path, `helm release NAME`, ….
    pub origin: String,
    /// `apiVersion`, e.g. `apps/v1` or `v1`.
    pub api_version: String,
    /// `kind`, e.g. `Deployment`.
    pub kind: String,
    /// `metadata.name`; `None` for objects named by `generateName` only.
    pub name: Option<String>,
    /// `metadata.namespace` as rendered; `None` for cluster-scoped objects and objects the
    /// render left without one.
    pub namespace: Option<String>,
    /// The object as one YAML document (no `---`), ending with a newline.
    pub yaml: String,
}

impl Manifest {
    /// A manifest without name or namespace; add them with [`Manifest::with_name`] and
    /// [`Manifest::with_namespace`].
    pub fn new(
        origin: impl Into<String>,
        api_version: impl Into<String>,
        kind: impl Into<String>,
        yaml: impl Into<String>,
    ) -> Manifest {
        Manifest {
            origin: origin.into(),
            api_version: api_version.into(),
            kind: kind.into(),
            name: None,
            namespace: None,
            yaml: yaml.into(),
        }
    }

    /// The same manifest with `metadata.name` recorded.
    pub fn with_name(mut self, name: impl Into<String>) -> Manifest {
        self.name = Some(name.into());
        self
    }

    /// The same manifest with `metadata.namespace` recorded.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Manifest {
        self.namespace = Some(namespace.into());
        self
    }

    /// The API group: `apps` for `apps/v1`, the empty string for the core group (`v1`).
    pub fn group(&self) -> &str {
        match self.api_version.rsplit_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }

    /// `[namespace/]Kind/name`, the way people refer to the object in messages.
    pub fn id(&self) -> String {
        let name = self.name.as_deref().unwrap_or("<unnamed>");
        match &self.namespace {
            Some(namespace) => format!("{namespace}/{}/{name}", self.kind),
            None => format!("{}/{name}", self.kind),
        }
    }
}

/// The objects one render produced, in apply order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestSet {
    /// The objects.
    pub manifests: Vec<Manifest>,
}

impl ManifestSet {
    /// Every object as one multi-document YAML stream, documents separated by `---` lines, as
    /// `kubectl apply -f -` reads it. Empty when there are no objects.
    pub fn to_yaml_stream(&self) -> String {
        let mut out = String::with_capacity(self.manifests.iter().map(|m| m.yaml.len() + 4).sum());
        for (i, manifest) in self.manifests.iter().enumerate() {
            if i > 0 {
                out.push_str("---\n");
            }
            out.push_str(&manifest.yaml);
            if !manifest.yaml.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }

    /// How many objects there are.
    pub fn len(&self) -> usize {
        self.manifests.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.manifests.is_empty()
    }
}

impl fmt::Display for ManifestSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_yaml_stream())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_ids() {
        let deployment =
            Manifest::new("a.yaml", "apps/v1", "Deployment", "x: 1\n").with_name("web");
        assert_eq!(deployment.group(), "apps");
        assert_eq!(deployment.id(), "Deployment/web");
        let crd = Manifest::new(
            "a.yaml",
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "",
        )
        .with_name("foos.example.com");
        assert_eq!(crd.group(), "apiextensions.k8s.io");
        let unnamed = Manifest::new("a.yaml", "v1", "Pod", "").with_namespace("dev");
        assert_eq!(unnamed.id(), "dev/Pod/<unnamed>");
    }

    #[test]
    fn stream_separates_documents() {
        let set = ManifestSet {
            manifests: vec![
                Manifest::new("a", "v1", "A", "a: 1\n"),
                Manifest::new("b", "v1", "B", "b: 2"),
            ],
        };
        assert_eq!(set.to_yaml_stream(), "a: 1\n---\nb: 2\n");
        assert_eq!(set.to_string(), set.to_yaml_stream());
        assert_eq!(ManifestSet::default().to_yaml_stream(), "");
        assert_eq!(set.len(), 2);
        assert!(!set.is_empty());
    }
}
