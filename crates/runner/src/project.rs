//! The configuration resolved once: [`Project`] holds every stage's typed settings, and
//! [`RunContext`] what one run of it is against (run ID, kube context, namespace, kubeconfig,
//! Docker host). Commands, the dev loop and `diagnose` read these; no stage or loop code reads
//! schema types.
//!
//! ```
//! use skiff_config::{LoadOptions, load};
//! use skiff_runner::project::{Project, RunContext, RunFlags};
//!
//! let dir = std::env::temp_dir().join(format!("skiff-project-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! std::fs::write(
//!     dir.join("skaffold.yaml"),
//!     "apiVersion: skaffold/v4beta11\nkind: Config\nbuild:\n  artifacts:\n  - image: app\n\
//!      portForward:\n- resourceType: service\n  resourceName: app\n  port: 8080\n",
//! )
//! .unwrap();
//! let loaded = load(&LoadOptions { working_dir: dir.clone(), ..LoadOptions::default() }).unwrap();
//! let project = Project::resolve(&loaded.file, &loaded.configs).unwrap();
//! assert_eq!(project.build.artifacts[0].image, "app");
//! assert_eq!(project.port_forwards().unwrap()[0].name, "app");
//!
//! let context = RunContext::resolve(&project, RunFlags::default());
//! assert_eq!(context.run_id.len(), 36);
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use skiff_config::EffectiveConfig;
use skiff_config::UnresolvedTemplate;
use skiff_config::kubeconfig::KubeContext;
use skiff_config::schema::IntOrString;
use skiff_deploy::docker::DockerPort;
use skiff_deploy::kubernetes::client::KubeTarget;
use skiff_deploy::kubernetes::forward::RemotePort;
use skiff_render::ManifestInputs;

use crate::RunnerError;
use crate::deploy::{DeploySettings, deploy_settings, project_run_id};
use crate::render::{RenderSettings, render_settings_unchecked};
use crate::schedule::ArtifactGraph;
use crate::settings::{BuildSettings, build_settings};
use crate::sync::{SyncSettings, sync_settings_of};
use crate::test::{TestSettings, test_settings};
use crate::verify::{CustomAction, VerifyTest, custom_actions, verify_tests};

/// Where strict templates live, per stage that uses them: those fields fail only when their
/// stage runs (as in Skaffold, which expands templates at use).
const RENDER_TEMPLATES: &[&str] = &["manifests.helm", "deploy.helm"];
const PORT_FORWARD_TEMPLATES: &[&str] = &["portForward"];

/// One `portForward` entry, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForward {
    /// `resourceType` as written (`service` when unset): a Kubernetes kind, or `container`
    /// for the Docker deployer.
    pub resource_type: String,
    /// `resourceName`: the object, or on Docker the artifact image.
    pub name: String,
    /// `namespace`; `None`: the run's.
    pub namespace: Option<String>,
    /// `port`: a number or a named port.
    pub port: RemotePort,
    /// `localPort`.
    pub local_port: Option<u16>,
    /// `address`.
    pub address: Option<String>,
}

impl PortForward {
    /// The Docker deployer's published port this entry asks for (named ports mean nothing to
    /// a container).
    pub fn docker_port(&self) -> Option<DockerPort> {
        match &self.port {
            RemotePort::Number(container_port) => Some(DockerPort {
                image: self.name.clone(),
                container_port: *container_port,
                local_port: self.local_port,
                address: self.address.clone(),
            }),
            RemotePort::Name(_) => None,
        }
    }
}

/// Every config's `portForward` entries, typed; entries that cannot forward anything are
/// skipped with a warning naming them.
fn port_forwards(configs: &[EffectiveConfig], warnings: &mut Vec<String>) -> Vec<PortForward> {
    let mut forwards = Vec::new();
    for config in configs {
        for (index, entry) in config.config.port_forward.iter().flatten().enumerate() {
            let field = format!("{}: portForward[{index}]", config.file.display());
            let port = match &entry.port {
                Some(IntOrString::Int(n)) => match u16::try_from(*n) {
                    Ok(n) => Some(RemotePort::Number(n)),
                    Err(_) => {
                        warnings.push(format!(
                            "{field}.port {n} is not a port number (1–65535); the entry is skipped"
                        ));
                        continue;
                    }
                },
                Some(IntOrString::String(s)) => Some(match s.parse() {
                    Ok(n) => RemotePort::Number(n),
                    Err(_) => RemotePort::Name(s.clone()),
                }),
                None => None,
            };
            let (Some(name), Some(port)) = (entry.resource_name.clone(), port) else {
                warnings.push(format!(
                    "{field} needs both resourceName and port; the entry is skipped"
                ));
                continue;
            };
            let local_port = match entry.local_port.map(u16::try_from) {
                None => None,
                Some(Ok(port)) => Some(port),
                Some(Err(_)) => {
                    warnings.push(format!(
                        "{field}.localPort is not a port number (1–65535); a free port is used"
                    ));
                    None
                }
            };
            forwards.push(PortForward {
                resource_type: entry
                    .resource_type
                    .clone()
                    .unwrap_or_else(|| "service".to_owned()),
                name,
                namespace: entry.namespace.clone(),
                port,
                local_port,
                address: entry.address.clone(),
            });
        }
    }
    forwards
}

/// The loaded configuration resolved into every stage's typed settings, once.
#[derive(Debug, Clone)]
pub struct Project {
    /// The root `skaffold.yaml`.
    pub file: PathBuf,
    /// Every config file the project was read from (the root and what it requires).
    pub config_files: BTreeSet<PathBuf>,
    /// The build stage's settings: artifacts, tag policies, local build options.
    pub build: BuildSettings,
    /// Every artifact's sync rules.
    pub sync: SyncSettings,
    /// The tests of built images (`test`).
    pub test: TestSettings,
    /// The `verify` tests.
    pub verify: Vec<VerifyTest>,
    /// The `customActions`.
    pub actions: Vec<CustomAction>,
    /// Where and how to deploy.
    pub deploy: DeploySettings,
    /// `deploy.kubeContext` of the first config that sets one.
    pub kube_context: Option<String>,
    /// What resolving noticed and skipped, each naming its file and field (today: unusable
    /// `portForward` entries, which the dev loop reports when it forwards).
    pub warnings: Vec<String>,
    render: RenderSettings,
    port_forwards: Vec<PortForward>,
    unresolved: Vec<UnresolvedTemplate>,
}

impl Project {
    /// Resolves `configs`, loaded from the root `file` (`skiff_config::Loaded`'s two fields).
    pub fn resolve(file: &Path, configs: &[EffectiveConfig]) -> Result<Project, RunnerError> {
        let build = build_settings(configs)?;
        let sync = sync_settings_of(configs, &build);
        let mut warnings = Vec::new();
        let port_forwards = port_forwards(configs, &mut warnings);
        let deploy = deploy_settings(
            configs,
            port_forwards
                .iter()
                .filter_map(PortForward::docker_port)
                .collect(),
        );
        Ok(Project {
            file: file.to_path_buf(),
            config_files: configs.iter().map(|c| c.file.clone()).collect(),
            build,
            sync,
            test: test_settings(configs),
            verify: verify_tests(configs),
            actions: custom_actions(configs),
            deploy,
            kube_context: configs
                .iter()
                .find_map(|c| c.config.deploy.as_ref()?.kube_context.clone()),
            warnings,
            render: render_settings_unchecked(configs)?,
            port_forwards,
            unresolved: configs
                .iter()
                .flat_map(|c| c.unresolved_templates.iter().cloned())
                .collect(),
        })
    }

    fn check_templates(&self, prefixes: &[&str]) -> Result<(), RunnerError> {
        match self
            .unresolved
            .iter()
            .find(|t| prefixes.iter().any(|p| t.field.starts_with(p)))
        {
            Some(template) => Err(template.to_error().into()),
            None => Ok(()),
        }
    }

    /// The render settings; fails when a Helm field's template names a variable that is not
    /// set (rendering cannot go on without it).
    pub fn render(&self) -> Result<&RenderSettings, RunnerError> {
        self.check_templates(RENDER_TEMPLATES)?;
        Ok(&self.render)
    }

    /// The `portForward` entries; fails when one's template names a variable that is not set.
    pub fn port_forwards(&self) -> Result<&[PortForward], RunnerError> {
        self.check_templates(PORT_FORWARD_TEMPLATES)?;
        Ok(&self.port_forwards)
    }

    /// The render settings, their templates not checked (the loop checks them at start).
    pub(crate) fn render_settings(&self) -> &RenderSettings {
        &self.render
    }

    /// The files whose change calls for a new render and deploy.
    pub fn manifest_inputs(&self) -> Result<ManifestInputs, RunnerError> {
        Ok(ManifestInputs::of(&self.render.sources)?)
    }

    /// The artifacts' dependency graph.
    pub fn graph(&self) -> ArtifactGraph<'_> {
        ArtifactGraph::new(&self.build.artifacts)
    }
}

/// What a run is asked for on the command line (or by an embedder), before it is resolved
/// against a [`Project`].
#[derive(Debug, Clone, Default)]
pub struct RunFlags {
    /// `--kube-context`: wins over the config's `deploy.kubeContext`.
    pub kube_context: Option<String>,
    /// `--namespace`.
    pub namespace: Option<String>,
    /// `--kubeconfig`, absolute (or relative to the working directory).
    pub kubeconfig: Option<PathBuf>,
    /// `--run-id`: otherwise the project's stable one.
    pub run_id: Option<String>,
    /// The active profiles (part of the stable run ID).
    pub profiles: Vec<String>,
    /// The environment the run sees (`KUBECONFIG`, `HOME`, `DOCKER_HOST`, `DOCKER_CONFIG`,
    /// and what templates and hooks read).
    pub env: BTreeMap<String, String>,
    /// The directory skiff runs in.
    pub work_dir: Option<PathBuf>,
}

/// What one run of a project is against, resolved once from [`RunFlags`], the project and the
/// environment: every stage and decision ("is this cluster local?") reads it, so they all look
/// at the same cluster.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The run ID the deployed objects are labelled with.
    pub run_id: String,
    /// The kube context asked for (`--kube-context`, else `deploy.kubeContext`); `None`: the
    /// kubeconfig's current one.
    pub kube_context_name: Option<String>,
    /// That context as the kubeconfig describes it (from every `KUBECONFIG` entry, or
    /// `--kubeconfig`), for decisions such as pushing.
    pub kube_context: Option<KubeContext>,
    /// `--namespace`.
    pub namespace: Option<String>,
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig files used when `--kubeconfig` is not given: every `KUBECONFIG` entry,
    /// else `~/.kube/config`.
    pub default_kubeconfigs: Vec<PathBuf>,
    /// `DOCKER_HOST`, when set.
    pub docker_host: Option<String>,
    /// The Docker config file holding registry credentials.
    pub docker_config: Option<PathBuf>,
    /// The environment of the run.
    pub env: BTreeMap<String, String>,
    /// The directory skiff runs in.
    pub work_dir: Option<PathBuf>,
}

impl RunContext {
    /// Resolves `flags` against `project`.
    pub fn resolve(project: &Project, flags: RunFlags) -> RunContext {
        let RunFlags {
            kube_context,
            namespace,
            kubeconfig,
            run_id,
            profiles,
            mut env,
            work_dir,
        } = flags;
        let kube_context_name = kube_context.or_else(|| project.kube_context.clone());
        // `--kubeconfig` replaces the search path, for skiff-config's reader as for the client.
        if let Some(path) = &kubeconfig {
            env.insert("KUBECONFIG".into(), path.to_string_lossy().into_owned());
        }
        let resolved_context =
            skiff_config::kubeconfig::kube_context(&env, kube_context_name.as_deref());
        let run_id = run_id.unwrap_or_else(|| {
            project_run_id(
                &project.file,
                kube_context_name.as_deref(),
                namespace.as_deref(),
                &profiles,
            )
        });
        let non_empty = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();
        let docker_config = match non_empty("DOCKER_CONFIG") {
            Some(dir) => Some(PathBuf::from(dir).join("config.json")),
            None => env
                .get("HOME")
                .map(|h| PathBuf::from(h).join(".docker").join("config.json")),
        };
        RunContext {
            run_id,
            kube_context: resolved_context,
            default_kubeconfigs: KubeTarget::kubeconfig_search_path(
                env.get("KUBECONFIG").map(OsStr::new),
                env.get("HOME").map(Path::new),
            ),
            kube_context_name,
            namespace,
            kubeconfig,
            docker_host: non_empty("DOCKER_HOST"),
            docker_config,
            env,
            work_dir,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn project(yaml: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("skaffold.yaml");
        std::fs::write(&file, yaml).unwrap();
        let loaded = skiff_config::load(&skiff_config::LoadOptions {
            working_dir: dir.path().to_path_buf(),
            ..skiff_config::LoadOptions::default()
        })
        .unwrap();
        Project::resolve(&loaded.file, &loaded.configs).unwrap()
    }

    #[test]
    fn port_forwards_are_typed_once_and_feed_the_docker_ports() {
        let project = project(
            "apiVersion: skaffold/v4beta11\nkind: Config\n\
             portForward:\n\
             - resourceType: deployment\n  resourceName: web\n  port: http\n  localPort: 9000\n\
             - resourceName: api\n  port: 8080\n\
             - resourceName: broken\n\
             - resourceName: huge\n  port: 70000\n",
        );
        let forwards = project.port_forwards().unwrap();
        assert_eq!(forwards.len(), 2);
        assert_eq!(forwards[0].resource_type, "deployment");
        assert_eq!(forwards[0].port, RemotePort::Name("http".into()));
        assert_eq!(forwards[0].local_port, Some(9000));
        assert_eq!(forwards[1].resource_type, "service");
        assert_eq!(forwards[1].port, RemotePort::Number(8080));
        // Only the numbered port publishes a container port.
        assert_eq!(project.deploy.docker_ports.len(), 1);
        assert_eq!(project.deploy.docker_ports[0].image, "api");
        assert_eq!(project.warnings.len(), 2, "{:?}", project.warnings);
        assert!(project.warnings[0].contains("portForward[2] needs both resourceName and port"));
        assert!(project.warnings[1].contains("portForward[3].port 70000"));
    }

    #[test]
    fn strict_templates_fail_only_the_stage_that_uses_them() {
        let project = project(
            "apiVersion: skaffold/v4beta11\nkind: Config\n\
             manifests:\n  rawYaml: [k8s/*.yaml]\n\
             portForward:\n- resourceName: '{{.SKIFF_SURELY_UNSET_VAR}}'\n  port: 80\n",
        );
        assert!(project.render().is_ok());
        let error = project.port_forwards().unwrap_err().to_string();
        assert!(error.contains("SKIFF_SURELY_UNSET_VAR"), "{error}");
    }

    #[test]
    fn the_run_context_prefers_the_flag_and_reads_the_given_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("config");
        std::fs::write(
            &kubeconfig,
            "apiVersion: v1\nkind: Config\ncurrent-context: a\n\
             clusters:\n- name: a\n  cluster:\n    server: https://127.0.0.1:6443\n\
             - name: b\n  cluster:\n    server: https://remote.example:6443\n\
             contexts:\n- name: a\n  context:\n    cluster: a\n- name: b\n  context:\n    cluster: b\n",
        )
        .unwrap();
        let project = project(
            "apiVersion: skaffold/v4beta11\nkind: Config\ndeploy:\n  kubeContext: b\n  kubectl: {}\n",
        );
        let context = |flags: RunFlags| RunContext::resolve(&project, flags);
        let from_config = context(RunFlags {
            kubeconfig: Some(kubeconfig.clone()),
            ..RunFlags::default()
        });
        assert_eq!(from_config.kube_context_name.as_deref(), Some("b"));
        assert_eq!(
            from_config.kube_context.unwrap().server.as_deref(),
            Some("https://remote.example:6443")
        );
        assert_eq!(
            from_config.default_kubeconfigs,
            std::slice::from_ref(&kubeconfig)
        );
        let from_flag = context(RunFlags {
            kube_context: Some("a".into()),
            kubeconfig: Some(kubeconfig),
            ..RunFlags::default()
        });
        assert_eq!(
            from_flag.kube_context.unwrap().server.as_deref(),
            Some("https://127.0.0.1:6443")
        );
        assert_ne!(from_config.run_id, from_flag.run_id);
    }

    #[test]
    fn push_decisions_follow_every_kubeconfig_entry_or_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        // The first entry names the current context; the second defines it (kubectl merges).
        let first = dir.path().join("first");
        std::fs::write(
            &first,
            "apiVersion: v1\nkind: Config\ncurrent-context: remote\n",
        )
        .unwrap();
        let second = dir.path().join("second");
        std::fs::write(
            &second,
            "apiVersion: v1\nkind: Config\n\
             clusters:\n- name: remote\n  cluster:\n    server: https://remote.example:6443\n\
             contexts:\n- name: remote\n  context:\n    cluster: remote\n",
        )
        .unwrap();
        let local = dir.path().join("local");
        std::fs::write(
            &local,
            "apiVersion: v1\nkind: Config\ncurrent-context: dev\n\
             clusters:\n- name: dev\n  cluster:\n    server: https://127.0.0.1:6443\n\
             contexts:\n- name: dev\n  context:\n    cluster: dev\n",
        )
        .unwrap();
        let project = project("apiVersion: skaffold/v4beta11\nkind: Config\n");
        let env = BTreeMap::from([(
            "KUBECONFIG".to_owned(),
            std::env::join_paths([&first, &second])
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        )]);
        let merged = RunContext::resolve(
            &project,
            RunFlags {
                env: env.clone(),
                ..RunFlags::default()
            },
        );
        let context = merged.kube_context.unwrap();
        assert_eq!(context.name, "remote");
        assert!(!context.is_local(), "a remote cluster gets pushed images");
        assert_eq!(merged.default_kubeconfigs, [first, second]);
        // `--kubeconfig` replaces the entries, for the decision and for the client alike.
        let flagged = RunContext::resolve(
            &project,
            RunFlags {
                kubeconfig: Some(local.clone()),
                env,
                ..RunFlags::default()
            },
        );
        assert!(flagged.kube_context.unwrap().is_local());
        assert_eq!(flagged.default_kubeconfigs, std::slice::from_ref(&local));
        assert_eq!(flagged.kubeconfig, Some(local));
    }
}
