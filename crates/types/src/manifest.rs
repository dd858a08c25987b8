//! Kubernetes manifests as they pass from the render stage to the deploy stage.

/// One rendered Kubernetes object, serialized as a single YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Where it came from, for error messages: a file path, `helm release NAME`, ….
    pub origin: String,
    /// The object as one YAML document (no `---`).
    pub yaml: String,
}

/// The objects one render produced, in apply order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestSet {
    /// The objects.
    pub manifests: Vec<Manifest>,
}
