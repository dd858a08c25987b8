//! The deploy stage as the loop runs it: choose the deployer the configuration names, apply
//! what was rendered, wait until it is ready, and delete it again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use skiff_config::EffectiveConfig;
use skiff_config::schema;
use skiff_deploy::docker::{DockerDeployOptions, DockerDeployer, DockerPort, DockerTarget};
use skiff_deploy::kubernetes::KubernetesDeployer;
use skiff_deploy::kubernetes::apply::{ApplyOptions, delete_labelled};
use skiff_deploy::kubernetes::client::{KubeTarget, connect};
use skiff_deploy::kubernetes::status::{KubernetesStatusChecker, StatusOptions, is_checked};
use skiff_deploy::{ApplyAction, DeployInput, Deployer, ResourceRef};
use skiff_types::event::Reporter;
use skiff_types::image::BuiltImage;
use skiff_types::manifest::ManifestSet;

use crate::RunnerError;

/// Where and how the configuration deploys.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploySettings {
    /// Rendered objects go to Kubernetes (`deploy.kubectl`, `deploy.helm`).
    pub kubernetes: bool,
    /// `deploy.docker.images`: artifacts run as local containers.
    pub docker_images: Vec<String>,
    /// `deploy.docker.useCompose`.
    pub use_compose: bool,
    /// Container ports to publish for the Docker deployer (from `portForward`).
    pub docker_ports: Vec<DockerPort>,
    /// `deploy.statusCheck` (default on).
    pub status_check: bool,
    /// `deploy.statusCheckDeadlineSeconds`.
    pub deadline: Duration,
    /// `deploy.tolerateFailuresUntilDeadline`.
    pub tolerate_failures: bool,
    /// `deploy.kubectl.flags.global` and `.apply`, reported when skiff cannot honour them.
    pub kubectl_flags: Vec<String>,
    /// `deploy.kubectl.hooks` and `deploy.helm.hooks`: run before the deploy and after its
    /// status check.
    pub hooks: DeployHooks,
}

/// Hooks run before and after a deploy, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployHooks {
    /// `before`.
    pub before: Vec<DeployHook>,
    /// `after`.
    pub after: Vec<DeployHook>,
}

/// One deploy hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployHook {
    /// A command on this machine (`dir` resolved against its config's).
    Host(skiff_hooks::HostHook),
    /// A command in the run's running containers whose pod and container names match (globs,
    /// as Skaffold's `podName`/`containerName`); each container runs it once per phase.
    Container {
        /// The command.
        command: Vec<String>,
        /// `podName`.
        pod_name: String,
        /// `containerName`; `None`: every container of a matching pod.
        container_name: Option<String>,
    },
}

/// The deploy settings of `configs`, publishing `docker_ports` on the Docker deployer.
pub(crate) fn deploy_settings(
    configs: &[EffectiveConfig],
    docker_ports: Vec<DockerPort>,
) -> DeploySettings {
    let mut settings = DeploySettings {
        kubernetes: false,
        docker_images: Vec::new(),
        use_compose: false,
        docker_ports,
        status_check: true,
        deadline: Duration::from_secs(skiff_config::STATUS_CHECK_DEADLINE_SECONDS.unsigned_abs()),
        tolerate_failures: false,
        kubectl_flags: Vec::new(),
        hooks: DeployHooks::default(),
    };
    for config in configs {
        let Some(deploy) = &config.config.deploy else {
            continue;
        };
        settings.kubernetes |= deploy.kubectl.is_some() || deploy.helm.is_some();
        let hooks = [
            deploy.kubectl.as_ref().and_then(|k| k.hooks.as_ref()),
            deploy.helm.as_ref().and_then(|h| h.hooks.as_ref()),
        ];
        for hooks in hooks.into_iter().flatten() {
            let convert = |items: Option<&Vec<schema::DeployHookItem>>| -> Vec<DeployHook> {
                items
                    .into_iter()
                    .flatten()
                    .filter_map(|item| match (&item.host, &item.container) {
                        (Some(host), _) => Some(DeployHook::Host(crate::settings::host_hook(
                            config.base_dir(),
                            host,
                        ))),
                        (None, Some(container)) => Some(DeployHook::Container {
                            command: container.command.clone(),
                            pod_name: container.pod_name.clone(),
                            container_name: container.container_name.clone(),
                        }),
                        (None, None) => None,
                    })
                    .collect()
            };
            settings.hooks.before.extend(convert(hooks.before.as_ref()));
            settings.hooks.after.extend(convert(hooks.after.as_ref()));
        }
        if let Some(kubectl) = &deploy.kubectl {
            if let Some(flags) = &kubectl.flags {
                settings
                    .kubectl_flags
                    .extend(flags.global.iter().flatten().cloned());
                settings
                    .kubectl_flags
                    .extend(flags.apply.iter().flatten().cloned());
            }
        }
        if let Some(docker) = &deploy.docker {
            settings.docker_images.extend(docker.images.iter().cloned());
            settings.use_compose |= docker.use_compose.unwrap_or(false);
        }
        settings.status_check &= deploy.status_check.unwrap_or(true);
        if let Some(seconds) = deploy.status_check_deadline_seconds {
            settings.deadline = Duration::from_secs(seconds.unsigned_abs());
        }
        settings.tolerate_failures |= deploy.tolerate_failures_until_deadline.unwrap_or(false);
    }
    settings
}

/// The run ID a project gets when none is given (`--run-id`): the same for every `run`, `dev`
/// and `deploy` of one configuration file against one target (kube context, namespace,
/// profiles), different for any other. The ID is part of the labels on pod templates, so a
/// fresh one per invocation (Skaffold's way) restarts every pod on each `skaffold run` even
/// when nothing changed; a stable one leaves them alone and lets a second run take over what
/// the first left.
///
/// ```
/// use std::path::Path;
/// use skiff_runner::deploy::project_run_id;
///
/// let id = project_run_id(Path::new("/src/app/skaffold.yaml"), Some("kind-dev"), None, &[]);
/// assert_eq!(id.len(), 36);
/// assert_eq!(id, project_run_id(Path::new("/src/app/skaffold.yaml"), Some("kind-dev"), None, &[]));
/// assert_ne!(id, project_run_id(Path::new("/src/other/skaffold.yaml"), Some("kind-dev"), None, &[]));
/// ```
pub fn project_run_id(
    config_file: &Path,
    kube_context: Option<&str>,
    namespace: Option<&str>,
    profiles: &[String],
) -> String {
    use sha2::{Digest, Sha256};
    let mut profiles = profiles.to_vec();
    profiles.sort();
    let mut hasher = Sha256::new();
    for part in [
        config_file.to_string_lossy().as_ref(),
        kube_context.unwrap_or_default(),
        namespace.unwrap_or_default(),
        &profiles.join(","),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let mut bytes: [u8; 16] = [0; 16];
    bytes.copy_from_slice(&hasher.finalize()[..16]);
    // Shaped as a name-based UUID (version 5, RFC 4122 variant), like Skaffold's random ones.
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// How a deploy run behaves; the CLI fills it from flags and the environment.
#[derive(Debug, Clone, Default)]
pub struct DeployRunOptions {
    /// The run's ID (`skaffold.dev/run-id`).
    pub run_id: String,
    /// `--force`: re-create objects whose immutable fields changed.
    pub force: bool,
    /// `--status-check`: overrides `deploy.statusCheck`.
    pub status_check: Option<bool>,
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig files `$KUBECONFIG` (or `~/.kube/config`) names.
    pub default_kubeconfigs: Vec<PathBuf>,
    /// `--kube-context`, else `deploy.kubeContext`.
    pub kube_context: Option<String>,
    /// `-n/--namespace`.
    pub namespace: Option<String>,
    /// `DOCKER_HOST`.
    pub docker_host: Option<String>,
    /// The run's environment, which deploy hooks see (with their `SKAFFOLD_*` variables).
    pub env: std::collections::BTreeMap<String, String>,
    /// The directory skiff runs in (`SKAFFOLD_WORK_DIR` for hooks).
    pub work_dir: Option<PathBuf>,
    /// Serve `deploy.docker` ports from this process, so that a new container takes over
    /// without a gap (`dev` sets it: its process stays up while the containers run).
    pub port_proxy: bool,
}

impl DeployRunOptions {
    fn kube_target(&self) -> KubeTarget {
        KubeTarget {
            kubeconfig: self.kubeconfig.clone(),
            default_kubeconfigs: self.default_kubeconfigs.clone(),
            context: self.kube_context.clone(),
            namespace: self.namespace.clone(),
        }
    }
}

/// What a deploy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployReport {
    /// Every object or container and what happened to it.
    pub resources: Vec<(ResourceRef, ApplyAction)>,
}

/// Deploy `manifests` (Kubernetes) and `images` (Docker) as `settings` say, then wait until
/// the Kubernetes resources are ready.
pub async fn deploy(
    settings: &DeploySettings,
    manifests: &ManifestSet,
    images: &[BuiltImage],
    options: &DeployRunOptions,
    reporter: &dyn Reporter,
) -> Result<DeployReport, RunnerError> {
    let session = DeploySession::connect(settings.clone(), options.clone()).await?;
    let deployed = session.deploy(manifests, images, reporter).await?;
    Ok(DeployReport {
        resources: deployed.resources,
    })
}

/// `skiff delete`: remove what the configuration's rendered objects name (only objects that
/// carry skiff's labels) and the configuration's local containers: those carrying skiff's
/// labels and running one of `deploy.docker.images`, of any run (a killed `dev` leaves its
/// containers behind); other projects' containers are left alone.
pub async fn delete(
    settings: &DeploySettings,
    manifests: &ManifestSet,
    options: &DeployRunOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<ResourceRef>, RunnerError> {
    let mut deleted = Vec::new();
    if !settings.docker_images.is_empty() {
        deleted.extend(
            skiff_deploy::docker::delete_labelled_images(
                options.docker_host.as_deref(),
                &settings.docker_images,
                reporter,
            )
            .await?,
        );
    }
    if settings.kubernetes && !manifests.manifests.is_empty() {
        let connection = connect(&options.kube_target()).await?;
        deleted.extend(delete_labelled(&connection, manifests, reporter).await?);
    }
    Ok(deleted)
}

/// One deploy target kept alive across the iterations of a run (`skiff run`, `skiff dev`): the
/// same deployers each time, so the Kubernetes deployer sends only the objects that changed and
/// the Docker deployer replaces only containers whose image changed (keeping their host
/// ports), and [`DeploySession::cleanup`] removes what this run created.
pub struct DeploySession {
    settings: DeploySettings,
    options: DeployRunOptions,
    docker: Option<DockerDeployer>,
    kubernetes: Option<(
        KubernetesDeployer,
        skiff_deploy::kubernetes::client::Connection,
    )>,
    /// A deployer plugged in instead of skiff's own (an embedder's, or a test's fake).
    plugged: Option<Arc<dyn Deployer>>,
    /// The containers each phase's container hooks ran in (`phase:namespace/pod:container`).
    visited: std::sync::Mutex<BTreeSet<String>>,
}

/// What one [`DeploySession::deploy`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionDeploy {
    /// Every object or container and what happened to it.
    pub resources: Vec<(ResourceRef, ApplyAction)>,
    /// Time spent applying.
    pub apply: Duration,
    /// Time the status check took; `None` when there was none.
    pub status: Option<Duration>,
}

impl std::fmt::Debug for DeploySession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploySession")
            .field("settings", &self.settings)
            .field("options", &self.options)
            .field("docker", &self.docker)
            .field("kubernetes", &self.kubernetes)
            .field("plugged", &self.plugged.is_some())
            .finish()
    }
}

impl DeploySession {
    /// Connects to the targets `settings` name (the Docker engine for `deploy.docker`, the
    /// cluster for `deploy.kubectl`/`deploy.helm`).
    pub async fn connect(
        settings: DeploySettings,
        options: DeployRunOptions,
    ) -> Result<DeploySession, RunnerError> {
        let docker = if settings.docker_images.is_empty() {
            None
        } else {
            Some(
                DockerDeployer::connect(
                    DockerTarget {
                        docker_host: options.docker_host.clone(),
                    },
                    DockerDeployOptions {
                        run_id: options.run_id.clone(),
                        images: settings.docker_images.clone(),
                        ports: settings.docker_ports.clone(),
                        use_compose: settings.use_compose,
                        port_proxy: options.port_proxy,
                        ..DockerDeployOptions::default()
                    },
                )
                .await?,
            )
        };
        let kubernetes = if settings.kubernetes {
            let connection = connect(&options.kube_target()).await?;
            let deployer = KubernetesDeployer::new(
                connection.clone(),
                options.run_id.clone(),
                ApplyOptions {
                    force: options.force,
                    kubectl_flags: settings.kubectl_flags.clone(),
                    ..ApplyOptions::default()
                },
            );
            Some((deployer, connection))
        } else {
            None
        };
        Ok(DeploySession {
            settings,
            options,
            docker,
            kubernetes,
            plugged: None,
            visited: std::sync::Mutex::new(BTreeSet::new()),
        })
    }

    /// A session that deploys with `deployer` (connecting to nothing itself): an embedder's
    /// own deployer, or a test's fake. There is no status check, log tailing or port
    /// forwarding of skiff's own then.
    pub fn with_deployer(
        settings: DeploySettings,
        options: DeployRunOptions,
        deployer: Arc<dyn Deployer>,
    ) -> DeploySession {
        DeploySession {
            settings,
            options,
            docker: None,
            kubernetes: None,
            plugged: Some(deployer),
            visited: std::sync::Mutex::new(BTreeSet::new()),
        }
    }

    /// The settings this session deploys with.
    pub fn settings(&self) -> &DeploySettings {
        &self.settings
    }

    /// The Docker deployer, when the configuration deploys to the local engine.
    pub fn docker(&self) -> Option<&DockerDeployer> {
        self.docker.as_ref()
    }

    /// The cluster connection, when the configuration deploys to Kubernetes.
    pub fn kubernetes(&self) -> Option<&skiff_deploy::kubernetes::client::Connection> {
        self.kubernetes.as_ref().map(|(_, c)| c)
    }

    /// Deploys `manifests` and `images`, then (unless turned off) waits until the Kubernetes
    /// resources are ready.
    pub async fn deploy(
        &self,
        manifests: &ManifestSet,
        images: &[BuiltImage],
        reporter: &dyn Reporter,
    ) -> Result<SessionDeploy, RunnerError> {
        let input = DeployInput { manifests, images };
        let mut result = SessionDeploy::default();
        self.run_hooks("before", manifests, reporter).await?;
        let started = std::time::Instant::now();
        if let Some(deployer) = &self.plugged {
            result.resources = deployer.deploy(&input, reporter).await?.resources;
            result.apply = started.elapsed();
            self.run_hooks("after", manifests, reporter).await?;
            return Ok(result);
        }
        if let Some(docker) = &self.docker {
            result
                .resources
                .extend(docker.deploy(&input, reporter).await?.resources);
        }
        let mut checked: BTreeSet<ResourceRef> = BTreeSet::new();
        if let Some((deployer, _)) = &self.kubernetes {
            if !manifests.manifests.is_empty() {
                let outcome = deployer.deploy(&input, reporter).await?;
                checked.extend(
                    outcome
                        .resources
                        .iter()
                        .map(|(resource, _)| resource.clone())
                        .filter(is_checked),
                );
                result.resources.extend(outcome.resources);
            }
        }
        result.apply = started.elapsed();
        let status_check = self
            .options
            .status_check
            .unwrap_or(self.settings.status_check);
        if let (Some((_, connection)), true) = (&self.kubernetes, status_check) {
            if !checked.is_empty() {
                let started = std::time::Instant::now();
                let checked: Vec<ResourceRef> = checked.into_iter().collect();
                KubernetesStatusChecker::new(
                    connection.client.clone(),
                    StatusOptions {
                        deadline: self.settings.deadline,
                        tolerate_failures_until_deadline: self.settings.tolerate_failures,
                        ..StatusOptions::default()
                    },
                )
                .wait_ready(&checked, reporter)
                .await?;
                result.status = Some(started.elapsed());
            }
        }
        self.run_hooks("after", manifests, reporter).await?;
        Ok(result)
    }

    /// Runs the deploy hooks of `when` (`before`, `after`) with Skaffold's variables: the run
    /// ID, the kube context, and the namespaces deployed to (after the deploy, with those the
    /// manifests name).
    async fn run_hooks(
        &self,
        when: &str,
        manifests: &ManifestSet,
        reporter: &dyn Reporter,
    ) -> Result<(), RunnerError> {
        let (hooks, phase) = match when {
            "before" => (&self.settings.hooks.before, "pre-deploy"),
            _ => (&self.settings.hooks.after, "post-deploy"),
        };
        if hooks.is_empty() {
            return Ok(());
        }
        let connection = self.kubernetes.as_ref().map(|(_, connection)| connection);
        let deploy_namespace: Vec<String> = self
            .options
            .namespace
            .clone()
            .or_else(|| connection.map(|c| c.default_namespace.clone()))
            .into_iter()
            .collect();
        // Every namespace deployed to, the manifests' included: where container hooks look,
        // and what post-deploy hooks are told.
        let mut all_namespaces = deploy_namespace.clone();
        for namespace in manifests
            .manifests
            .iter()
            .filter_map(|m| m.namespace.clone())
        {
            if !all_namespaces.contains(&namespace) {
                all_namespaces.push(namespace);
            }
        }
        let namespaces = if when == "after" {
            &all_namespaces
        } else {
            &deploy_namespace
        };
        let mut env = self.options.env.clone();
        env.extend(skiff_hooks::static_variables(
            None,
            None,
            self.options.work_dir.as_deref(),
        ));
        env.extend(skiff_hooks::deploy_variables(
            &self.options.run_id,
            connection.map(|c| c.context.as_str()).unwrap_or_default(),
            namespaces,
        ));
        let run = skiff_hooks::HookRun::new(phase, "deploy", &env);
        let say = |text: String| {
            reporter.report(skiff_types::event::Event::Message {
                source: "deploy",
                level: skiff_types::event::Level::Info,
                text,
            });
        };
        say(format!("Starting {phase} hooks..."));
        for hook in hooks {
            match hook {
                DeployHook::Host(host) => {
                    skiff_hooks::run_host(host, &run, reporter)
                        .await
                        .map_err(|source| RunnerError::Hook {
                            field: format!("deploy.hooks.{when}"),
                            source,
                        })?;
                }
                DeployHook::Container {
                    command,
                    pod_name,
                    container_name,
                } => {
                    let Some(connection) = connection else {
                        reporter.report(skiff_types::event::Event::Message {
                            source: "deploy",
                            level: skiff_types::event::Level::Warning,
                            text: format!(
                                "{phase} container hook `{}`: no cluster to run it in",
                                command.join(" ")
                            ),
                        });
                        continue;
                    };
                    self.run_container_hook(
                        connection,
                        &all_namespaces,
                        phase,
                        (command, pod_name, container_name.as_deref()),
                        reporter,
                    )
                    .await?;
                }
            }
        }
        say(format!("Completed {phase} hooks"));
        Ok(())
    }

    /// Runs `command` in every running container of the run whose pod name matches `pod_name`
    /// (and container name `container_name`), once per container and phase, as Skaffold does:
    /// a pre-deploy hook reaches the containers of the previous deploy, a post-deploy hook
    /// the new ones.
    async fn run_container_hook(
        &self,
        connection: &skiff_deploy::kubernetes::client::Connection,
        namespaces: &[String],
        phase: &str,
        (command, pod_name, container_name): (&[String], &str, Option<&str>),
        reporter: &dyn Reporter,
    ) -> Result<(), RunnerError> {
        use k8s_openapi::api::core::v1::Pod;
        use kube::api::{Api, ListParams};

        let failed = |message: String| RunnerError::Settings {
            message: format!("{phase} container hook `{}`: {message}", command.join(" ")),
        };
        let glob = |pattern: &str| {
            globset::Glob::new(pattern)
                .map(|g| g.compile_matcher())
                .map_err(|e| failed(format!("`{pattern}` is not a valid pattern: {e}")))
        };
        let pods_matcher = glob(pod_name)?;
        let containers_matcher = container_name.map(glob).transpose()?;
        let selector = format!("{}={}", skiff_deploy::RUN_ID_LABEL, self.options.run_id);
        for namespace in namespaces {
            let api: Api<Pod> = Api::namespaced(connection.client.clone(), namespace);
            let pods = api
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| failed(format!("cannot list pods in {namespace}: {e}")))?;
            for pod in pods.items {
                let Some(name) = pod.metadata.name.clone() else {
                    continue;
                };
                let running =
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                if !running
                    || pod.metadata.deletion_timestamp.is_some()
                    || !pods_matcher.is_match(&name)
                {
                    continue;
                }
                let containers = pod.spec.iter().flat_map(|s| s.containers.iter());
                for container in containers {
                    if containers_matcher
                        .as_ref()
                        .is_some_and(|m| !m.is_match(&container.name))
                    {
                        continue;
                    }
                    let key = format!("{phase}:{namespace}/{name}:{}", container.name);
                    let first = self
                        .visited
                        .lock()
                        .map(|mut visited| visited.insert(key))
                        .unwrap_or(true);
                    if !first {
                        continue;
                    }
                    let ran = skiff_connect::kubernetes::exec(
                        &connection.client,
                        namespace,
                        &name,
                        &container.name,
                        command,
                        None,
                    )
                    .await
                    .map_err(|e| failed(format!("in {name}/{}: {e}", container.name)))?;
                    for line in ran.output.lines() {
                        reporter.report(skiff_types::event::Event::Message {
                            source: "deploy",
                            level: skiff_types::event::Level::Info,
                            text: format!("[{phase} hook {name}/{}] {line}", container.name),
                        });
                    }
                    if ran.exit_code() != Some(0) {
                        return Err(failed(format!(
                            "in {name}/{} failed: {}",
                            container.name,
                            ran.message()
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes what this session deployed: the run's containers and network, and the objects
    /// the Kubernetes deployer applied. Both are attempted; the first error is returned.
    pub async fn cleanup(&self, reporter: &dyn Reporter) -> Result<(), RunnerError> {
        let mut first: Option<RunnerError> = None;
        if let Some(deployer) = &self.plugged {
            if let Err(error) = deployer.cleanup(reporter).await {
                first.get_or_insert(error.into());
            }
        }
        if let Some(docker) = &self.docker {
            if let Err(error) = docker.cleanup(reporter).await {
                first.get_or_insert(error.into());
            }
        }
        if let Some((deployer, _)) = &self.kubernetes {
            if let Err(error) = deployer.cleanup(reporter).await {
                first.get_or_insert(error.into());
            }
        }
        match first {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;

    use skiff_deploy::{DeployError, DeployOutcome};
    use skiff_types::event::CollectingReporter;
    use skiff_types::manifest::Manifest;

    use super::*;

    #[derive(Default)]
    struct CountingDeployer {
        deploys: Mutex<usize>,
    }

    #[async_trait::async_trait]
    impl Deployer for CountingDeployer {
        async fn deploy(
            &self,
            _input: &DeployInput<'_>,
            _reporter: &dyn Reporter,
        ) -> Result<DeployOutcome, DeployError> {
            *self.deploys.lock().unwrap() += 1;
            Ok(DeployOutcome::default())
        }

        async fn cleanup(&self, _reporter: &dyn Reporter) -> Result<(), DeployError> {
            Ok(())
        }
    }

    fn sh(script: String) -> skiff_hooks::HostHook {
        skiff_hooks::HostHook {
            command: vec!["sh".into(), "-c".into(), script],
            os: vec![],
            dir: None,
        }
    }

    #[tokio::test]
    async fn deploy_hooks_run_before_and_after_with_the_run_and_its_namespaces() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("hooks.log");
        let record = |what: &str| {
            sh(format!(
                "echo \"{what} $SKAFFOLD_RUN_ID $SKAFFOLD_NAMESPACES $SKAFFOLD_WORK_DIR\" >> {}",
                log.display()
            ))
        };
        let mut settings = deploy_settings(&[], Vec::new());
        settings.hooks = DeployHooks {
            before: vec![DeployHook::Host(record("before"))],
            after: vec![DeployHook::Host(record("after"))],
        };
        let options = DeployRunOptions {
            run_id: "run-1".into(),
            namespace: Some("dev".into()),
            env: std::collections::BTreeMap::from([(
                "PATH".to_owned(),
                "/usr/bin:/bin".to_owned(),
            )]),
            work_dir: Some("/src/app".into()),
            ..DeployRunOptions::default()
        };
        let deployer = Arc::new(CountingDeployer::default());
        let session =
            DeploySession::with_deployer(settings.clone(), options.clone(), deployer.clone());
        let mut manifests = ManifestSet::default();
        let mut other = Manifest::new("k8s/db.yaml", "v1", "Service", "kind: Service\n");
        other.namespace = Some("data".into());
        manifests.manifests.push(other);
        let reporter = CollectingReporter::default();
        session.deploy(&manifests, &[], &reporter).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "before run-1 dev /src/app\nafter run-1 dev,data /src/app\n"
        );
        assert_eq!(*deployer.deploys.lock().unwrap(), 1);

        settings.hooks.before = vec![DeployHook::Host(sh(
            "echo cluster not ready >&2; exit 1".into()
        ))];
        let session = DeploySession::with_deployer(settings, options, deployer.clone());
        let error = session
            .deploy(&manifests, &[], &reporter)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("deploy.hooks.before: pre-deploy hook"),
            "{error}"
        );
        assert!(error.contains("cluster not ready"), "{error}");
        assert_eq!(*deployer.deploys.lock().unwrap(), 1, "nothing deployed");
    }
}
