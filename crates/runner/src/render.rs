//! The render stage as the loop runs it: the configs' `manifests` turned into
//! [`skiff_render`] sources ([`render_settings`]), the images chosen by `--digest-source`
//! (pre-built ones from `--images`/`--build-artifacts`, tags computed without building, remote
//! digests, or a local build), then the objects rendered.
//!
//! `--digest-source` as Skaffold defines it:
//!
//! | value | images |
//! |---|---|
//! | `local` | built (as `skiff build` would, cache included) |
//! | `remote` | tags computed by the tag policies, resolved to `tag@digest` in the registry; nothing is built |
//! | `tag` | tags computed by the tag policies; nothing is built |
//! | `none` | the manifests' own images are kept |
//!
//! The default is `tag` when the target cluster is local (or unknown), `remote` otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use skiff_build::ArtifactSpec;
use skiff_build::credentials::DockerConfig;
use skiff_build::docker::DockerEngine;
use skiff_build::tag::TagPolicy;
use skiff_config::EffectiveConfig;
use skiff_config::kubeconfig::KubeContext;
use skiff_config::schema::{self, HelmDeployFlags};
use skiff_render::{
    HelmChart, HelmFlags, HelmRelease, HelmSource, KustomizeSource, ManifestRenderer,
    RawYamlSource, RenderOptions, Renderer, ResourceFilter, ResourceSelector, Source,
    UnsupportedSource,
};
use skiff_types::event::{Event, Level, Reporter};
use skiff_types::image::BuiltImage;
use skiff_types::manifest::ManifestSet;
use skiff_types::template::Template;

use crate::RunnerError;
use crate::build::tag_reference;
use crate::build::{BuildOptions, BuildStage};
use crate::schedule::ArtifactGraph;
use crate::settings::BuildSettings;

/// Render settings of the loaded configs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderSettings {
    /// Every config's sources, in config order; within a config as Skaffold orders renderers
    /// (kpt, raw YAML and remote manifests, kustomize, helm).
    pub sources: Vec<Source>,
    /// Every config's `resourceSelector`, merged in config order.
    pub resource_selector: ResourceSelector,
    /// Every config's `manifests.hooks`, in config order (their directories resolved against
    /// the config's).
    pub hooks: skiff_render::hooks::RenderHooks,
    /// Settings skiff accepts but does not act on, for the user to know.
    pub warnings: Vec<String>,
}

fn settings_error(message: String) -> RunnerError {
    RunnerError::Settings { message }
}

fn unsupported(kind: &str, detail: impl Into<String>) -> Source {
    Source::Unsupported(UnsupportedSource {
        kind: kind.to_owned(),
        detail: detail.into(),
    })
}

fn template(field: &str, source: &str) -> Result<Template, RunnerError> {
    Template::parse(source).map_err(|error| settings_error(format!("{field}: {error}")))
}

fn helm_flags(flags: Option<&HelmDeployFlags>) -> HelmFlags {
    let list = |f: Option<&Vec<String>>| f.cloned().unwrap_or_default();
    HelmFlags {
        global: list(flags.and_then(|f| f.global.as_ref())),
        template: list(flags.and_then(|f| f.template.as_ref())),
        dep_build: list(flags.and_then(|f| f.dep_build.as_ref())),
    }
}

fn helm_release(field: &str, release: &schema::HelmRelease) -> Result<HelmRelease, RunnerError> {
    let chart = match (&release.remote_chart, &release.chart_path) {
        (Some(remote), _) if !remote.is_empty() => HelmChart::Remote(remote.clone()),
        (_, Some(path)) if !path.is_empty() => HelmChart::Path(path.clone()),
        _ => {
            return Err(settings_error(format!(
                "{field} (`{}`): set chartPath or remoteChart",
                release.name
            )));
        }
    };
    let mut values_files = Vec::new();
    for (i, file) in release.values_files.iter().flatten().enumerate() {
        values_files.push(template(&format!("{field}.valuesFiles[{i}]"), file)?);
    }
    let mut set_value_templates = BTreeMap::new();
    for (key, value) in release.set_value_templates.iter().flat_map(|t| t.iter()) {
        set_value_templates.insert(
            key.clone(),
            template(&format!("{field}.setValueTemplates.{key}"), value)?,
        );
    }
    Ok(HelmRelease {
        name: release.name.clone(),
        chart,
        version: release.version.clone(),
        namespace: release.namespace.clone(),
        values_files,
        set_values: release
            .set_values
            .as_ref()
            .map(|v| v.0.clone())
            .unwrap_or_default(),
        set_value_templates,
        set_files: release
            .set_files
            .as_ref()
            .map(|v| v.0.clone())
            .unwrap_or_default(),
        create_namespace: release.create_namespace.unwrap_or(false),
        skip_build_dependencies: release.skip_build_dependencies.unwrap_or(false),
    })
}

fn filters(filters: Option<&Vec<schema::ResourceFilter>>) -> Vec<ResourceFilter> {
    filters
        .into_iter()
        .flatten()
        .map(|f| ResourceFilter {
            group_kind: f.group_kind.clone(),
            image: f.image.clone().unwrap_or_default(),
            labels: f.labels.clone().unwrap_or_default(),
        })
        .collect()
}

/// The render settings of `configs` (each config's paths are relative to its own file).
/// Fails when a Helm field's template names a variable that is not set.
pub fn render_settings(configs: &[EffectiveConfig]) -> Result<RenderSettings, RunnerError> {
    crate::settings::unresolved_templates(configs, &["manifests.helm", "deploy.helm"])?;
    render_settings_unchecked(configs)
}

/// [`render_settings`] without the template check, which [`crate::project::Project`] makes
/// when rendering asks for them.
pub(crate) fn render_settings_unchecked(
    configs: &[EffectiveConfig],
) -> Result<RenderSettings, RunnerError> {
    let mut settings = RenderSettings::default();
    for config in configs {
        let base_dir = config.base_dir().to_path_buf();
        let deploy = config.config.deploy.as_ref();
        let kubectl = deploy.and_then(|d| d.kubectl.as_ref());
        let default_namespace = kubectl
            .and_then(|k| k.default_namespace.clone())
            .filter(|n| !n.is_empty() && !n.contains("{{"));
        if let Some(selector) = &config.config.resource_selector {
            settings
                .resource_selector
                .allow
                .extend(filters(selector.allow.as_ref()));
            settings
                .resource_selector
                .deny
                .extend(filters(selector.deny.as_ref()));
        }
        let mut manifest_releases = BTreeSet::new();
        if let Some(manifests) = &config.config.manifests {
            if let Some(kpt) = manifests.kpt.as_ref().filter(|k| !k.is_empty()) {
                settings
                    .sources
                    .push(unsupported("manifests.kpt", kpt.join(", ")));
            }
            if let Some(globs) = manifests.raw_yaml.as_ref().filter(|g| !g.is_empty()) {
                settings.sources.push(Source::RawYaml(RawYamlSource {
                    base_dir: base_dir.clone(),
                    globs: globs.clone(),
                    default_namespace: default_namespace.clone(),
                    // Skaffold's validation skips its default list and fails on any other
                    // entry that matches nothing; rendering then warns about the default.
                    unmatched_is_warning: globs.len() == 1
                        && globs[0] == skiff_config::DEFAULT_RAW_YAML,
                }));
            }
            if let Some(remote) = manifests
                .remote_manifests
                .as_ref()
                .filter(|r| !r.is_empty())
            {
                let names: Vec<&str> = remote
                    .iter()
                    .filter_map(|r| r.manifest.as_deref())
                    .collect();
                settings
                    .sources
                    .push(unsupported("manifests.remoteManifests", names.join(", ")));
            }
            if let Some(kustomize) = &manifests.kustomize {
                settings.sources.push(Source::Kustomize(KustomizeSource {
                    base_dir: base_dir.clone(),
                    paths: kustomize
                        .paths
                        .clone()
                        .unwrap_or_else(|| vec![".".to_owned()]),
                    build_args: kustomize.build_args.clone().unwrap_or_default(),
                    default_namespace: default_namespace.clone(),
                }));
            }
            if let Some(helm) = &manifests.helm {
                let mut releases = Vec::new();
                for (i, release) in helm.releases.iter().enumerate() {
                    releases.push(helm_release(
                        &format!("manifests.helm.releases[{i}]"),
                        release,
                    )?);
                    manifest_releases.insert(release.name.clone());
                }
                settings.sources.push(Source::Helm(HelmSource {
                    base_dir: base_dir.clone(),
                    releases,
                    flags: helm_flags(helm.flags.as_ref()),
                    default_namespace: default_namespace.clone(),
                }));
            }
            for (field, set) in [
                (
                    "manifests.transform",
                    manifests.transform.as_ref().is_some_and(|t| !t.is_empty()),
                ),
                (
                    "manifests.validate",
                    manifests.validate.as_ref().is_some_and(|v| !v.is_empty()),
                ),
            ] {
                if set {
                    settings.sources.push(unsupported(field, "kpt functions"));
                }
            }
            if let Some(hooks) = &manifests.hooks {
                use skiff_render::hooks::{HostHook, PostRenderHook};
                let dir = |d: &Option<String>| d.as_ref().map(|d| base_dir.join(d));
                for item in hooks.before.iter().flatten() {
                    if let Some(host) = &item.host {
                        settings.hooks.before.push(HostHook {
                            command: host.command.clone(),
                            os: host.os.clone().unwrap_or_default(),
                            dir: dir(&host.dir),
                        });
                    }
                }
                for item in hooks.after.iter().flatten() {
                    if let Some(host) = &item.host {
                        settings.hooks.after.push(PostRenderHook {
                            host: HostHook {
                                command: host.command.clone(),
                                os: host.os.clone().unwrap_or_default(),
                                dir: dir(&host.dir),
                            },
                            with_change: host.with_change.unwrap_or(false),
                        });
                    }
                }
            }
            if manifests.output.is_some() {
                settings.warnings.push(format!(
                    "{}: manifests.output is ignored; use `skiff render -o FILE`",
                    config.file.display()
                ));
            }
        }
        if let Some(remote) = kubectl
            .and_then(|k| k.remote_manifests.as_ref())
            .filter(|r| !r.is_empty())
        {
            settings.sources.push(unsupported(
                "deploy.kubectl.remoteManifests",
                remote.join(", "),
            ));
        }
        // The helm deployer's releases render through `helm template` too.
        if let Some(helm) = deploy.and_then(|d| d.helm.as_ref()) {
            let mut releases = Vec::new();
            for (i, release) in helm.releases.iter().flatten().enumerate() {
                if !manifest_releases.contains(&release.name) {
                    releases.push(helm_release(
                        &format!("deploy.helm.releases[{i}]"),
                        release,
                    )?);
                }
            }
            if !releases.is_empty() {
                settings.sources.push(Source::Helm(HelmSource {
                    base_dir: base_dir.clone(),
                    releases,
                    flags: helm_flags(helm.flags.as_ref()),
                    default_namespace: default_namespace.clone(),
                }));
            }
        }
    }
    Ok(settings)
}

/// Where the images of a render come from (`--digest-source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestSource {
    /// Build the images (as `skiff build`) and use what was built.
    Local,
    /// Compute the tags and resolve their digests in the registry; build nothing.
    Remote,
    /// Compute the tags; build nothing.
    Tag,
    /// Keep the images the manifests name.
    None,
}

impl DigestSource {
    /// Skaffold's default: `tag` for a cluster that shares the local engine (or when there is
    /// no cluster to ask), `remote` otherwise.
    pub fn default_for(context: Option<&KubeContext>) -> DigestSource {
        match context {
            Some(context) if !context.is_local() => DigestSource::Remote,
            _ => DigestSource::Tag,
        }
    }

    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestSource::Local => "local",
            DigestSource::Remote => "remote",
            DigestSource::Tag => "tag",
            DigestSource::None => "none",
        }
    }
}

impl FromStr for DigestSource {
    type Err = RunnerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "local" => DigestSource::Local,
            "remote" => DigestSource::Remote,
            "tag" => DigestSource::Tag,
            "none" => DigestSource::None,
            other => {
                return Err(settings_error(format!(
                    "--digest-source {other:?}: use local, remote, tag or none"
                )));
            }
        })
    }
}

/// How a render run behaves; the CLI fills it from flags and the environment.
#[derive(Debug, Clone, Default)]
pub struct RenderRunOptions {
    /// `--digest-source`; `None`: [`DigestSource::default_for`] the target cluster.
    pub digest_source: Option<DigestSource>,
    /// Images already built (`--build-artifacts`, `--images`): used as they are, whatever the
    /// digest source.
    pub prebuilt: Vec<BuiltImage>,
    /// For computing tags and building: the environment, `--default-repo`, the Docker engine,
    /// the target cluster (`kube_context`), the cache.
    pub build: BuildOptions,
    /// The run's ID (`skaffold.dev/run-id`).
    pub run_id: Option<String>,
    /// `--label`s.
    pub labels: BTreeMap<String, String>,
    /// Leave out the run labels (`skaffold.dev/run-id`, `app.kubernetes.io/managed-by`): what
    /// `render` prints, as Skaffold's does, carries none; they belong to a deploy.
    pub without_run_labels: bool,
    /// Leave out `deploy.kubectl.defaultNamespace` (still `-n`): as Skaffold, `render` prints
    /// objects without the namespace the deployer would apply them in.
    pub without_deploy_namespace: bool,
    /// `-n/--namespace`.
    pub namespace: Option<String>,
    /// `--offline`.
    pub offline: bool,
    /// `--kube-context` (or `deploy.kubeContext`), passed to `helm` unless offline.
    pub kube_context: Option<String>,
    /// `--kubeconfig`, passed to `helm` unless offline.
    pub kubeconfig: Option<PathBuf>,
    /// Where tools are looked for (the caller's `PATH`, split).
    pub search_path: Vec<PathBuf>,
}

/// What a render produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOutcome {
    /// The objects.
    pub manifests: ManifestSet,
    /// The images put into them.
    pub images: Vec<BuiltImage>,
    /// Where the images came from.
    pub digest_source: DigestSource,
}

/// The render options for `settings` and a run's `options`.
pub fn render_options(settings: &RenderSettings, options: &RenderRunOptions) -> RenderOptions {
    RenderOptions {
        sources: settings.sources.clone(),
        run_id: options.run_id.clone(),
        labels: options.labels.clone(),
        add_skiff_labels: !options.without_run_labels,
        namespace: options.namespace.clone().filter(|n| !n.is_empty()),
        source_namespaces: !options.without_deploy_namespace,
        resource_selector: settings.resource_selector.clone(),
        offline: options.offline,
        kube_context: options.kube_context.clone(),
        kubeconfig: options.kubeconfig.clone(),
        env: options.build.env.clone(),
        search_path: options.search_path.clone(),
        hooks: settings.hooks.clone(),
    }
}

/// Runs renders: chooses the images, then renders with skiff's renderer or one plugged in.
#[derive(Default)]
pub struct RenderStage {
    build: BuildStage,
    renderer: Option<Arc<dyn Renderer>>,
}

impl std::fmt::Debug for RenderStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderStage")
            .field("build", &self.build)
            .field("custom_renderer", &self.renderer.is_some())
            .finish()
    }
}

fn report(reporter: &dyn Reporter, level: Level, text: String) {
    reporter.report(Event::Message {
        source: "render",
        level,
        text,
    });
}

impl RenderStage {
    /// A stage with skiff's own builders and renderer.
    pub fn new() -> RenderStage {
        RenderStage::default()
    }

    /// Builds (`--digest-source=local`) with `build` instead of the default build stage.
    pub fn with_build_stage(mut self, build: BuildStage) -> RenderStage {
        self.build = build;
        self
    }

    /// Renders with `renderer` instead of a [`ManifestRenderer`] for the settings.
    pub fn with_renderer(mut self, renderer: Arc<dyn Renderer>) -> RenderStage {
        self.renderer = Some(renderer);
        self
    }

    /// The images to render with, in artifact order (then pre-built images of no artifact).
    pub async fn images(
        &self,
        build: &BuildSettings,
        options: &RenderRunOptions,
        reporter: &dyn Reporter,
    ) -> Result<(Vec<BuiltImage>, DigestSource), RunnerError> {
        let source = options
            .digest_source
            .unwrap_or_else(|| DigestSource::default_for(options.build.kube_context.as_ref()));
        let prebuilt: BTreeMap<&str, &BuiltImage> = options
            .prebuilt
            .iter()
            .map(|b| (b.image_name.as_str(), b))
            .collect();
        let missing: Vec<usize> = (0..build.artifacts.len())
            .filter(|&i| !prebuilt.contains_key(build.artifacts[i].image.as_str()))
            .collect();
        let mut found: BTreeMap<String, BuiltImage> = BTreeMap::new();
        if !missing.is_empty() {
            match source {
                DigestSource::None => report(
                    reporter,
                    Level::Info,
                    "--digest-source set to 'none', tags listed in Kubernetes manifests will be used for render"
                        .into(),
                ),
                DigestSource::Tag => {
                    for image in self.tags(build, &missing, &options.build, reporter).await? {
                        found.insert(image.image_name.clone(), image);
                    }
                }
                DigestSource::Remote => {
                    let tagged = self.tags(build, &missing, &options.build, reporter).await?;
                    for image in resolve_remote(tagged, &options.build).await? {
                        found.insert(image.image_name.clone(), image);
                    }
                }
                DigestSource::Local => {
                    let only = missing
                        .iter()
                        .map(|&i| build.artifacts[i].image.clone())
                        .collect();
                    let build_options = BuildOptions {
                        only,
                        ..options.build.clone()
                    };
                    let outcome = self.build.build(build, &build_options, reporter).await?;
                    for image in outcome.images {
                        found.insert(image.image_name.clone(), image);
                    }
                }
            }
        }
        let mut images = Vec::new();
        for artifact in &build.artifacts {
            let name = artifact.image.as_str();
            if let Some(image) = prebuilt.get(name) {
                images.push((*image).clone());
            } else if let Some(image) = found.remove(name) {
                images.push(image);
            }
        }
        for image in &options.prebuilt {
            if !build.artifacts.iter().any(|a| a.image == image.image_name) {
                images.push(image.clone());
            }
        }
        Ok((images, source))
    }

    /// Chooses the images and renders every source of `settings`.
    pub async fn render(
        &self,
        settings: &RenderSettings,
        build: &BuildSettings,
        options: &RenderRunOptions,
        reporter: &dyn Reporter,
    ) -> Result<RenderOutcome, RunnerError> {
        for warning in &settings.warnings {
            report(reporter, Level::Warning, warning.clone());
        }
        let (images, digest_source) = self.images(build, options, reporter).await?;
        let manifests = match &self.renderer {
            Some(renderer) => renderer.render(&images, reporter).await?,
            None => {
                ManifestRenderer::new(render_options(settings, options))
                    .render(&images, reporter)
                    .await?
            }
        };
        Ok(RenderOutcome {
            manifests,
            images,
            digest_source,
        })
    }

    /// The references the tag policies give the artifacts `indices` (and what they require),
    /// without building: the tag `skiff build` would give them.
    async fn tags(
        &self,
        build: &BuildSettings,
        indices: &[usize],
        options: &BuildOptions,
        reporter: &dyn Reporter,
    ) -> Result<Vec<BuiltImage>, RunnerError> {
        let wanted: BTreeSet<usize> = indices.iter().copied().collect();
        let mut references: BTreeMap<String, String> = BTreeMap::new();
        let mut keys: BTreeMap<String, String> = BTreeMap::new();
        let mut images = Vec::new();
        let graph = ArtifactGraph::new(&build.artifacts);
        for i in graph.order()? {
            let artifact = &build.artifacts[i];
            let policy = &build.tag_policies[i];
            let needed_by_wanted =
                wanted.contains(&i) || indices.iter().any(|&w| graph.requires(w, &artifact.image));
            if !needed_by_wanted {
                continue;
            }
            // `--tag` needs no digest; otherwise only the policies that use one compute it.
            let key = if options.tag.is_none() && uses_input_digest(policy) {
                let required = artifact.requirement_args(|image| references.get(image).cloned());
                let key = input_digest(artifact, &required, &keys, &options.env).await?;
                keys.insert(artifact.image.clone(), key.clone());
                Some(key)
            } else {
                None
            };
            let reference =
                tag_reference(artifact, policy, options, key.as_deref(), reporter).await?;
            references.insert(artifact.image.clone(), reference.to_string());
            if wanted.contains(&i) {
                images.push(BuiltImage {
                    image_name: artifact.image.clone(),
                    reference,
                    image_id: None,
                });
            }
        }
        Ok(images)
    }
}

/// Whether artifact `index` requires `image`, directly or not.
fn uses_input_digest(policy: &TagPolicy) -> bool {
    match policy {
        TagPolicy::InputDigest => true,
        TagPolicy::CustomTemplate { components, .. } => {
            components.iter().any(|(_, p)| uses_input_digest(p))
        }
        _ => false,
    }
}

/// The `inputDigest` of an artifact, computed as the build stage does (its dependency files,
/// evaluated build args, builder options and the keys of what it requires).
async fn input_digest(
    artifact: &ArtifactSpec,
    required: &BTreeMap<String, String>,
    keys: &BTreeMap<String, String>,
    env: &BTreeMap<String, String>,
) -> Result<String, RunnerError> {
    let Some(files) =
        crate::build::dependency_files(&BTreeMap::new(), artifact, required, env).await?
    else {
        return Err(skiff_build::BuildError::Unsupported {
            image: artifact.image.clone(),
            kind: artifact.builder.kind().to_owned(),
        }
        .into());
    };
    let required_keys = artifact
        .requires
        .iter()
        .filter_map(|r| keys.get(&r.image).cloned())
        .collect();
    crate::build::artifact_key(artifact, files, required_keys, env).await
}

/// `tagged` resolved to `tag@digest` in its registry.
async fn resolve_remote(
    tagged: Vec<BuiltImage>,
    options: &BuildOptions,
) -> Result<Vec<BuiltImage>, RunnerError> {
    if tagged.is_empty() {
        return Ok(tagged);
    }
    let engine = DockerEngine::connect(options.docker_host.as_deref()).await?;
    let docker_config = match &options.docker_config {
        Some(path) => Some(DockerConfig::load(path)?),
        None => None,
    };
    let mut resolved = Vec::with_capacity(tagged.len());
    for image in tagged {
        let credentials = match (&docker_config, image.reference.registry()) {
            (Some(config), Some(registry)) => config.credentials_for(registry)?,
            _ => None,
        };
        let digest = engine
            .remote_digest_with(&image.reference, credentials.as_ref())
            .await
            .ok_or_else(|| {
                settings_error(format!(
                    "failed to resolve the digest of {}: does the image exist remotely? (build and push it first, or render with --digest-source=tag)",
                    image.reference
                ))
            })?;
        let text = format!("{}@{digest}", image.reference);
        let reference = text
            .parse()
            .map_err(|e| settings_error(format!("image reference `{text}` is malformed: {e}")))?;
        resolved.push(BuiltImage { reference, ..image });
    }
    Ok(resolved)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use skiff_build::BuilderSpec;
    use std::path::Path;

    fn load(yaml: &str) -> (tempfile::TempDir, Vec<EffectiveConfig>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("skaffold.yaml"), yaml).unwrap();
        let loaded = skiff_config::load(&skiff_config::LoadOptions {
            working_dir: dir.path().into(),
            env: BTreeMap::from([("USER".to_owned(), "dev".to_owned())]),
            ..Default::default()
        })
        .unwrap();
        (dir, loaded.configs)
    }

    #[test]
    fn every_source_kind_in_skaffolds_order() {
        let (dir, configs) = load(
            r#"apiVersion: skaffold/v4beta11
kind: Config
manifests:
  rawYaml: [k8s/*.yaml]
  kustomize:
    buildArgs: ["--load-restrictor LoadRestrictionsNone"]
  helm:
    flags: {template: [--skip-tests]}
    releases:
    - name: web
      chartPath: charts/web
      namespace: team
      valuesFiles: [values.yaml]
      setValues: {replicas: 2}
      setValueTemplates:
        image.repository: "{{.IMAGE_REPO_web}}"
        owner: "{{.USER}}"
deploy:
  kubectl:
    defaultNamespace: dev
resourceSelector:
  allow:
  - groupKind: Widget.example.com
    image: [.spec.image]
"#,
        );
        let settings = render_settings(&configs).unwrap();
        assert_eq!(settings.sources.len(), 3);
        let Source::RawYaml(raw) = &settings.sources[0] else {
            panic!("{:?}", settings.sources[0]);
        };
        assert_eq!(raw.globs, ["k8s/*.yaml"]);
        assert_eq!(raw.base_dir, dir.path());
        assert_eq!(raw.default_namespace.as_deref(), Some("dev"));
        let Source::Kustomize(kustomize) = &settings.sources[1] else {
            panic!("{:?}", settings.sources[1]);
        };
        assert_eq!(kustomize.paths, ["."]);
        assert_eq!(
            kustomize.build_args,
            ["--load-restrictor LoadRestrictionsNone"]
        );
        let Source::Helm(helm) = &settings.sources[2] else {
            panic!("{:?}", settings.sources[2]);
        };
        assert_eq!(helm.flags.template, ["--skip-tests"]);
        let release = &helm.releases[0];
        assert_eq!(release.chart, HelmChart::Path("charts/web".into()));
        assert_eq!(release.set_values["replicas"], "2");
        // Templates needing only the environment were rendered when loading; IMAGE_* wait.
        assert_eq!(release.set_value_templates["owner"].source(), "dev");
        assert_eq!(
            release.set_value_templates["image.repository"].source(),
            "{{.IMAGE_REPO_web}}"
        );
        assert_eq!(
            settings.resource_selector.allow[0].group_kind,
            "Widget.example.com"
        );
    }

    #[test]
    fn kpt_and_remote_manifests_are_refused_when_rendering() {
        let (_dir, configs) = load(
            "apiVersion: skaffold/v4\nkind: Config\nmanifests:\n  kpt: [kpt-dir]\n  remoteManifests:\n  - manifest: deployment/web\ndeploy:\n  kubectl: {}\n",
        );
        let settings = render_settings(&configs).unwrap();
        let kinds: Vec<String> = settings
            .sources
            .iter()
            .map(|s| match s {
                Source::Unsupported(u) => format!("{}: {}", u.kind, u.detail),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "manifests.kpt: kpt-dir",
                "manifests.remoteManifests: deployment/web"
            ]
        );
    }

    #[test]
    fn legacy_kubectl_manifests_and_helm_deployer_releases() {
        let (_dir, configs) = load(
            "apiVersion: skaffold/v4\nkind: Config\ndeploy:\n  kubectl:\n    manifests: [k8s/app.yaml]\n  helm:\n    releases:\n    - name: db\n      remoteChart: bitnami/postgresql\n      version: 12.1.0\n",
        );
        let settings = render_settings(&configs).unwrap();
        let Source::RawYaml(raw) = &settings.sources[0] else {
            panic!("{:?}", settings.sources);
        };
        assert_eq!(raw.globs, ["k8s/app.yaml"]);
        let Source::Helm(helm) = &settings.sources[1] else {
            panic!("{:?}", settings.sources);
        };
        assert_eq!(
            helm.releases[0].chart,
            HelmChart::Remote("bitnami/postgresql".into())
        );
        assert_eq!(helm.releases[0].version.as_deref(), Some("12.1.0"));
    }

    #[test]
    fn a_release_without_a_chart_is_an_error() {
        let (_dir, configs) = load(
            "apiVersion: skaffold/v4\nkind: Config\nmanifests:\n  helm:\n    releases:\n    - name: web\n",
        );
        let error = render_settings(&configs).unwrap_err().to_string();
        assert_eq!(
            error,
            "manifests.helm.releases[0] (`web`): set chartPath or remoteChart"
        );
    }

    fn custom(image: &str, context: &Path, requires: &[(&str, &str)]) -> ArtifactSpec {
        ArtifactSpec {
            image: image.into(),
            context: context.into(),
            builder: BuilderSpec::Custom(skiff_build::artifact::CustomSpec {
                build_command: Some("true".into()),
                dependencies: skiff_build::artifact::CustomDependencies {
                    paths: vec!["**".into()],
                    ..Default::default()
                },
            }),
            requires: requires
                .iter()
                .map(|(image, alias)| skiff_build::artifact::Requirement {
                    image: (*image).into(),
                    alias: Some((*alias).into()),
                })
                .collect(),
            platforms: vec![],
        }
    }

    /// `--digest-source=tag` gives the tags a build would: `inputDigest` included.
    #[tokio::test]
    async fn tags_match_what_a_build_produces() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["base", "app"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("main.txt"), name).unwrap();
        }
        let build = BuildSettings {
            artifacts: vec![
                custom(
                    "localhost:5000/app",
                    &dir.path().join("app"),
                    &[("localhost:5000/base", "BASE")],
                ),
                custom("localhost:5000/base", &dir.path().join("base"), &[]),
            ],
            tag_policies: vec![TagPolicy::InputDigest, TagPolicy::InputDigest],
            push: Some(false),
            concurrency: 1,
            use_buildkit: false,
            insecure_registries: vec![],
            warm_builds: false,
            artifact_hooks: vec![],
            hooks: Default::default(),
        };
        let build_options = BuildOptions {
            env: BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]),
            default_repo: Some("registry.example.com/team".into()),
            docker_host: Some("unix:///nonexistent/docker.sock".into()),
            ..BuildOptions::default()
        };
        let reporter = skiff_types::event::NullReporter;
        let built = BuildStage::new()
            .build(&build, &build_options, &reporter)
            .await
            .unwrap();
        let options = RenderRunOptions {
            digest_source: Some(DigestSource::Tag),
            build: build_options,
            ..RenderRunOptions::default()
        };
        let (tagged, source) = RenderStage::new()
            .images(&build, &options, &reporter)
            .await
            .unwrap();
        assert_eq!(source, DigestSource::Tag);
        let mut built = built.images;
        built.sort_by(|a, b| a.image_name.cmp(&b.image_name));
        let mut tagged_sorted = tagged.clone();
        tagged_sorted.sort_by(|a, b| a.image_name.cmp(&b.image_name));
        assert_eq!(tagged_sorted, built);
        assert!(
            tagged[0]
                .reference
                .to_string()
                .starts_with("registry.example.com/team/localhost_5000_app:"),
            "{tagged:?}"
        );

        // Pre-built images win; `none` keeps only those.
        let prebuilt = BuiltImage {
            image_name: "localhost:5000/base".into(),
            reference: "localhost:5000/base:given".parse().unwrap(),
            image_id: None,
        };
        let options = RenderRunOptions {
            digest_source: Some(DigestSource::None),
            prebuilt: vec![prebuilt.clone()],
            ..options
        };
        let (images, _) = RenderStage::new()
            .images(&build, &options, &reporter)
            .await
            .unwrap();
        assert_eq!(images, [prebuilt]);
    }

    #[test]
    fn digest_sources() {
        assert_eq!("tag".parse::<DigestSource>().unwrap(), DigestSource::Tag);
        assert!("digest".parse::<DigestSource>().is_err());
        let local = KubeContext {
            name: "kind-dev".into(),
            server: None,
        };
        let remote = KubeContext {
            name: "gke".into(),
            server: Some("https://1.2.3.4".into()),
        };
        assert_eq!(DigestSource::default_for(Some(&local)), DigestSource::Tag);
        assert_eq!(
            DigestSource::default_for(Some(&remote)),
            DigestSource::Remote
        );
        assert_eq!(DigestSource::default_for(None), DigestSource::Tag);
        for source in [
            DigestSource::Local,
            DigestSource::Remote,
            DigestSource::Tag,
            DigestSource::None,
        ] {
            assert_eq!(source.as_str().parse::<DigestSource>().unwrap(), source);
        }
    }
}
