//! What a render needs, as typed options: the caller (the runner, from `skaffold.yaml` and the
//! command line) fills them; this crate reads no configuration file and no environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use skiff_types::template::Template;

/// Everything a [`crate::ManifestRenderer`] needs besides the images.
///
/// `RenderOptions::default()` has no sources, adds skiff's labels (without a run ID) and
/// searches no directory for tools.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Where manifests come from, in output order.
    pub sources: Vec<Source>,
    /// The run's ID, set as the `skaffold.dev/run-id` label; `None` leaves that label out.
    pub run_id: Option<String>,
    /// Extra labels (`--label k=v`); they win over skiff's own labels of the same key.
    pub labels: BTreeMap<String, String>,
    /// Whether to add skiff's labels (`skaffold.dev/run-id`, `app.kubernetes.io/managed-by`).
    /// `--label`s are added either way.
    pub add_skiff_labels: bool,
    /// `-n/--namespace`: set on namespaced objects that have none; wins over every source's
    /// default namespace and over helm releases' namespaces.
    pub namespace: Option<String>,
    /// Whether sources' default namespaces (`deploy.kubectl.defaultNamespace`) are set on
    /// objects that have none. Skaffold applies them when deploying, not in what `render`
    /// prints.
    pub source_namespaces: bool,
    /// `resourceSelector`: extra kinds and fields to change, or kinds to leave alone.
    pub resource_selector: ResourceSelector,
    /// `--offline`: never pass cluster settings (`--kube-context`, `--kubeconfig`) to the tools
    /// run (helm); rendering itself never contacts a cluster.
    pub offline: bool,
    /// The kube-context to pass to `helm` when not offline.
    pub kube_context: Option<String>,
    /// The kubeconfig to pass to `helm` when not offline.
    pub kubeconfig: Option<PathBuf>,
    /// Environment variables: the environment of the tools run (`helm`, `kustomize`,
    /// `kubectl`) and the variables of templates (`setValueTemplates`).
    pub env: BTreeMap<String, String>,
    /// Where to look for `helm`, `kustomize` and `kubectl` (the caller's `PATH`, split).
    pub search_path: Vec<PathBuf>,
    /// `manifests.hooks`.
    pub hooks: crate::hooks::RenderHooks,
}

impl Default for RenderOptions {
    fn default() -> RenderOptions {
        RenderOptions {
            sources: Vec::new(),
            run_id: None,
            labels: BTreeMap::new(),
            add_skiff_labels: true,
            namespace: None,
            source_namespaces: true,
            resource_selector: ResourceSelector::default(),
            offline: false,
            kube_context: None,
            kubeconfig: None,
            env: BTreeMap::new(),
            search_path: Vec::new(),
            hooks: crate::hooks::RenderHooks::default(),
        }
    }
}

/// A place manifests come from.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Source {
    /// `manifests.rawYaml`: files matched by globs.
    RawYaml(RawYamlSource),
    /// `manifests.kustomize`: kustomizations built by `kustomize build` or `kubectl kustomize`.
    Kustomize(KustomizeSource),
    /// `manifests.helm`: releases templated by `helm template`.
    Helm(HelmSource),
    /// YAML text given directly, e.g. by an embedder.
    Inline(InlineSource),
    /// A source kind skiff does not render yet (`kpt`, `remoteManifests`, …): rendering fails
    /// with [`crate::RenderError::Unsupported`] naming it.
    Unsupported(UnsupportedSource),
}

/// `manifests.rawYaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawYamlSource {
    /// The directory relative globs are resolved in (the config file's directory).
    pub base_dir: PathBuf,
    /// The globs (`*`, `?`, `[…]`, `{a,b}` and `**`), in order; a glob that matches a
    /// directory takes every file below it.
    pub globs: Vec<String>,
    /// `deploy.kubectl.defaultNamespace` of the config these come from.
    pub default_namespace: Option<String>,
    /// Whether a pattern matching no file is only a warning rather than an error. Skaffold
    /// warns for its default list (`k8s/*.yaml`, the manifests a config without any gets)
    /// and fails validation for any other.
    pub unmatched_is_warning: bool,
}

/// `manifests.kustomize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KustomizeSource {
    /// The directory the tool runs in (the config file's directory).
    pub base_dir: PathBuf,
    /// Kustomization directories, in order.
    pub paths: Vec<String>,
    /// `buildArgs`, each split at spaces as Skaffold does.
    pub build_args: Vec<String>,
    /// `deploy.kubectl.defaultNamespace` of the config these come from.
    pub default_namespace: Option<String>,
}

/// `manifests.helm` (or the legacy `deploy.helm`).
#[derive(Debug, Clone, PartialEq)]
pub struct HelmSource {
    /// The directory `helm` runs in (the config file's directory).
    pub base_dir: PathBuf,
    /// The releases, in order.
    pub releases: Vec<HelmRelease>,
    /// `flags`.
    pub flags: HelmFlags,
    /// `deploy.kubectl.defaultNamespace` of the config these come from.
    pub default_namespace: Option<String>,
}

/// `helm.flags`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelmFlags {
    /// Passed to every `helm` command.
    pub global: Vec<String>,
    /// Passed to `helm template`.
    pub template: Vec<String>,
    /// Passed to `helm dep build`.
    pub dep_build: Vec<String>,
}

/// One helm release.
#[derive(Debug, Clone, PartialEq)]
pub struct HelmRelease {
    /// The release name.
    pub name: String,
    /// The chart.
    pub chart: HelmChart,
    /// `version`: the chart version (`--version`).
    pub version: Option<String>,
    /// `namespace` (`--namespace`); `-n` wins over it.
    pub namespace: Option<String>,
    /// `valuesFiles` (`-f`), which may use `IMAGE_*` variables.
    pub values_files: Vec<Template>,
    /// `setValues` (`--set k=v`).
    pub set_values: BTreeMap<String, String>,
    /// `setValueTemplates` (`--set k=<rendered>`), rendered over the images' variables and the
    /// environment.
    pub set_value_templates: BTreeMap<String, Template>,
    /// `setFiles` (`--set-file k=path`).
    pub set_files: BTreeMap<String, String>,
    /// `createNamespace` (`--create-namespace`).
    pub create_namespace: bool,
    /// Skip `helm dep build` before templating a local chart.
    pub skip_build_dependencies: bool,
}

/// Where a helm chart is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelmChart {
    /// `chartPath`: a chart directory or packaged chart, relative to the source's base dir.
    Path(String),
    /// `remoteChart`: a chart reference (`repo/chart`, `oci://…`) or URL.
    Remote(String),
}

/// YAML text given directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineSource {
    /// What to call it in messages.
    pub origin: String,
    /// The YAML stream.
    pub yaml: String,
    /// The namespace for its namespaced objects that have none (below `-n`).
    pub default_namespace: Option<String>,
}

/// A source kind skiff does not render yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedSource {
    /// What it is, as spelled in `skaffold.yaml`: `manifests.kpt`, `manifests.remoteManifests`.
    pub kind: String,
    /// What was configured (paths, references), for the message.
    pub detail: String,
}

/// `resourceSelector`: which kinds skiff changes, and where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceSelector {
    /// `allow`: kinds to transform, on top of (or replacing) the built-in ones.
    pub allow: Vec<ResourceFilter>,
    /// `deny`: kinds (or fields) to leave alone.
    pub deny: Vec<ResourceFilter>,
}

/// One `resourceSelector` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceFilter {
    /// `groupKind`: `Kind.group` (`Deployment.apps`, `Rollout.argoproj.io`) or `Kind` for the
    /// core group.
    pub group_kind: String,
    /// `image`: field paths holding images (`.spec.template.spec.containers.image`), or `.*`
    /// for every `image` field.
    pub image: Vec<String>,
    /// `labels`: paths of label maps to add skiff's labels to
    /// (`.spec.template.metadata.labels`), or `.*` for every `metadata`.
    pub labels: Vec<String>,
}

impl Source {
    /// The default namespace of the config the source comes from.
    pub(crate) fn default_namespace(&self) -> Option<&str> {
        match self {
            Source::RawYaml(s) => s.default_namespace.as_deref(),
            Source::Kustomize(s) => s.default_namespace.as_deref(),
            Source::Helm(s) => s.default_namespace.as_deref(),
            Source::Inline(s) => s.default_namespace.as_deref(),
            Source::Unsupported(_) => None,
        }
    }
}
