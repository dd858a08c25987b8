//! The dev loop as a library: `skiff run` (one iteration) and `skiff dev` (an iteration per
//! change) without the CLI.
//!
//! An iteration builds (all artifacts the first time, then only those a change affects and
//! their dependents, keeping the other images), renders with every image, deploys through one
//! [`DeploySession`] kept for the whole run (so only changed objects are sent and containers
//! keep their host ports), and waits until the resources are ready. After the first successful
//! deploy, the configuration's `portForward` entries are forwarded and the run's logs followed.
//!
//! A change is mapped to what it affects with the artifacts' dependency sets, computed once per
//! build of each artifact: a dependency of an artifact → rebuild; a manifest source (raw YAML
//! globs, kustomize directories, helm chart directories) → re-render and redeploy without a
//! build; a configuration file → reload the configuration and start over (a configuration that
//! no longer loads is reported and the old one keeps running); anything else is ignored. A
//! failed iteration is reported and the loop goes on watching. Each iteration ends with one
//! [`Event::IterationFinished`].

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use globset::{Glob, GlobSet, GlobSetBuilder};
use skiff_config::EffectiveConfig;
use skiff_config::schema::IntOrString;
use skiff_deploy::kubernetes::forward::{
    ForwardHandle, PortForwardSpec, PortForwarder, RemotePort, ResourceKind,
};
use skiff_deploy::kubernetes::logs::{LogOptions, LogTailer};
use skiff_deploy::{ApplyAction, RUN_ID_LABEL};
use skiff_render::{HelmChart, Source};
use skiff_types::change::ChangeSet;
use skiff_types::event::{Event, Level, Reporter};
use skiff_types::image::BuiltImage;
use skiff_watch::Watcher;

use crate::RunnerError;
use crate::build::{BuildOptions, BuildStage};
use crate::deploy::{DeployRunOptions, DeploySession, DeploySettings, deploy_settings};
use crate::render::{RenderRunOptions, RenderSettings, RenderStage, render_settings};
use crate::settings::{BuildSettings, build_settings};

const SOURCE: &str = "dev";

/// Which ports to forward (`--port-forward`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortForwardMode {
    /// The configuration's `portForward` entries.
    #[default]
    User,
    /// None.
    Off,
}

/// How a run or dev loop behaves; the CLI fills it from flags and the environment.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// Build and render options; `run_id` names the run (and labels what it deploys).
    pub render: RenderRunOptions,
    /// Deploy options; its `run_id` is taken from `render.run_id`.
    pub deploy: DeployRunOptions,
    /// `--port-forward`.
    pub port_forward: PortForwardMode,
    /// `--tail`: follow the logs of what was deployed.
    pub tail: bool,
    /// `--cleanup`: remove what the run deployed when the dev loop stops.
    pub cleanup: bool,
    /// Where the configuration comes from, to reload it when one of its files changes;
    /// `None`: configuration changes are reported and ignored.
    pub reload: Option<skiff_config::LoadOptions>,
}

/// The stages' settings of one loaded configuration.
#[derive(Debug, Clone)]
struct Pipeline {
    build: BuildSettings,
    render: RenderSettings,
    deploy: DeploySettings,
    port_forwards: Vec<skiff_config::schema::PortForwardResource>,
    config_files: BTreeSet<PathBuf>,
    manifests: ManifestMatcher,
}

impl Pipeline {
    fn new(configs: &[EffectiveConfig], options: &DevOptions) -> Result<Pipeline, RunnerError> {
        let mut deploy = deploy_settings(configs);
        if options.port_forward == PortForwardMode::Off {
            deploy.docker_ports.clear();
        }
        let render = render_settings(configs)?;
        let manifests = ManifestMatcher::new(&render.sources)?;
        Ok(Pipeline {
            build: build_settings(configs)?,
            render,
            deploy,
            port_forwards: configs
                .iter()
                .flat_map(|c| c.config.port_forward.iter().flatten().cloned())
                .collect(),
            config_files: configs.iter().map(|c| c.file.clone()).collect(),
            manifests,
        })
    }
}

/// Which changed paths are manifest sources.
#[derive(Debug, Clone)]
struct ManifestMatcher {
    globs: GlobSet,
    dirs: Vec<PathBuf>,
}

impl ManifestMatcher {
    fn new(sources: &[Source]) -> Result<ManifestMatcher, RunnerError> {
        let mut globs = GlobSetBuilder::new();
        let mut dirs = Vec::new();
        for source in sources {
            match source {
                Source::RawYaml(raw) => {
                    for glob in &raw.globs {
                        let pattern = raw.base_dir.join(glob);
                        let glob = Glob::new(&pattern.to_string_lossy()).map_err(|e| {
                            RunnerError::Settings {
                                message: format!("manifests.rawYaml `{glob}`: {e}"),
                            }
                        })?;
                        globs.add(glob);
                    }
                }
                Source::Kustomize(kustomize) => {
                    dirs.extend(kustomize.paths.iter().map(|p| kustomize.base_dir.join(p)));
                }
                Source::Helm(helm) => {
                    for release in &helm.releases {
                        if let HelmChart::Path(path) = &release.chart {
                            dirs.push(helm.base_dir.join(path));
                        }
                    }
                }
                _ => {}
            }
        }
        let globs = globs.build().map_err(|e| RunnerError::Settings {
            message: format!("manifests.rawYaml: {e}"),
        })?;
        Ok(ManifestMatcher { globs, dirs })
    }

    fn matches(&self, path: &Path) -> bool {
        self.globs.is_match(path) || self.dirs.iter().any(|d| path.starts_with(d))
    }

    fn roots(&self, sources: &[Source]) -> Vec<PathBuf> {
        let mut roots: Vec<PathBuf> = self.dirs.clone();
        for source in sources {
            if let Source::RawYaml(raw) = source {
                roots.push(raw.base_dir.clone());
            }
        }
        roots
    }
}

/// What a change calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// Reload the configuration and start over.
    Reload,
    /// Rebuild these artifacts (and their dependents), then render and deploy.
    Rebuild(BTreeSet<String>),
    /// Render and deploy without building.
    Redeploy,
    /// Nothing the loop cares about changed.
    Nothing,
}

/// What is running between iterations.
struct State {
    session: DeploySession,
    /// The last good image of each artifact.
    images: Vec<BuiltImage>,
    /// Artifact image → its dependency files (`None`: its whole context).
    dependencies: BTreeMap<String, Option<BTreeSet<PathBuf>>>,
    forwards: Vec<ForwardHandle>,
    kube_logs: Option<skiff_deploy::kubernetes::logs::LogHandle>,
    docker_logs: Option<skiff_deploy::docker::LogHandle>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("images", &self.images)
            .field("forwards", &self.forwards.len())
            .finish_non_exhaustive()
    }
}

/// The dev loop. See the [module docs](self).
pub struct DevLoop {
    pipeline: Pipeline,
    options: DevOptions,
    build: BuildStage,
    render: RenderStage,
    reporter: Arc<dyn Reporter>,
}

impl std::fmt::Debug for DevLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevLoop")
            .field("pipeline", &self.pipeline)
            .field("options", &self.options)
            .field("build", &self.build)
            .finish_non_exhaustive()
    }
}

/// What an iteration did, for its report.
#[derive(Debug, Default)]
struct Done {
    rebuilt: Vec<String>,
    build: Option<Duration>,
    render: Duration,
    applied: usize,
    apply: Duration,
    status: Option<Duration>,
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// `main.c`, `main.c +2 more`.
fn describe_trigger(paths: &[PathBuf]) -> String {
    let name = |p: &PathBuf| {
        p.file_name().map_or_else(
            || p.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    match paths {
        [] => "no change".to_owned(),
        [one] => name(one),
        [first, rest @ ..] => format!("{} +{} more", name(first), rest.len()),
    }
}

impl DevLoop {
    /// A loop over `configs` (the loaded configuration) with skiff's own stages.
    pub fn new(
        configs: &[EffectiveConfig],
        options: DevOptions,
        reporter: Arc<dyn Reporter>,
    ) -> Result<DevLoop, RunnerError> {
        let mut options = options;
        let run_id = options
            .render
            .run_id
            .clone()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| RunnerError::Settings {
                message: "the dev loop needs a run id".into(),
            })?;
        options.deploy.run_id = run_id;
        Ok(DevLoop {
            pipeline: Pipeline::new(configs, &options)?,
            options,
            build: BuildStage::new(),
            render: RenderStage::new(),
            reporter,
        })
    }

    /// Builds with `build` (e.g. one with a plugged-in builder) instead of skiff's own.
    pub fn with_build_stage(mut self, build: BuildStage) -> DevLoop {
        self.build = build;
        self
    }

    /// Renders with `render` instead of skiff's own render stage.
    pub fn with_render_stage(mut self, render: RenderStage) -> DevLoop {
        self.render = render;
        self
    }

    /// What a watcher should watch: every artifact's context, the manifest sources and the
    /// configuration files.
    pub fn watch_roots(&self) -> Vec<PathBuf> {
        let mut roots: BTreeSet<PathBuf> = self
            .pipeline
            .build
            .artifacts
            .iter()
            .map(|a| a.context.clone())
            .collect();
        roots.extend(self.pipeline.manifests.roots(&self.pipeline.render.sources));
        roots.extend(self.pipeline.config_files.iter().cloned());
        roots.into_iter().collect()
    }

    fn report(&self, level: Level, text: String) {
        self.reporter.report(Event::Message {
            source: SOURCE,
            level,
            text,
        });
    }

    /// `skiff run`: one iteration (build, render, deploy, status check); then, when logs or
    /// port forwards are wanted, keeps them until `shutdown` completes. Leaves what it deployed
    /// running.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), RunnerError> {
        let mut shutdown = Box::pin(shutdown);
        let mut state = self.connect().await?;
        let result = tokio::select! {
            result = self.iteration(&mut state, "run".to_owned(), None) => result,
            () = &mut shutdown => return Ok(()),
        };
        result?;
        if !state.forwards.is_empty()
            || state.kube_logs.is_some()
            || state.docker_logs.is_some()
            || (self.options.port_forward == PortForwardMode::User
                && !self.pipeline.deploy.docker_ports.is_empty())
        {
            shutdown.await;
        }
        detach(&mut state);
        Ok(())
    }

    /// `skiff dev`: a first iteration, then one per change `watcher` reports, until
    /// `shutdown` completes; then stops forwards and logs and (with `cleanup`) removes what
    /// the run deployed. A failed iteration is reported and the loop goes on.
    pub async fn dev(
        mut self,
        mut watcher: Box<dyn Watcher>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), RunnerError> {
        let mut shutdown = Box::pin(shutdown);
        let mut state = self.connect().await?;
        let mut result = Ok(());
        let first = tokio::select! {
            result = self.iteration(&mut state, "initial".to_owned(), None) => Some(result),
            () = &mut shutdown => None,
        };
        if first.is_some() {
            loop {
                let change = tokio::select! {
                    change = watcher.next_change() => change,
                    () = &mut shutdown => break,
                };
                let change = match change {
                    Ok(change) => change,
                    Err(error) => {
                        result = Err(error.into());
                        break;
                    }
                };
                let (plan, relevant) = self.plan(&mut state, &change).await;
                let trigger = describe_trigger(&relevant);
                let rebuild = match plan {
                    Plan::Nothing => continue,
                    Plan::Reload => match self.reload() {
                        Ok(new) => {
                            let restarted = tokio::select! {
                                restarted = self.restart(&mut state, new) => restarted,
                                () = &mut shutdown => break,
                            };
                            if let Err(error) = restarted {
                                result = Err(error);
                                break;
                            }
                            None
                        }
                        Err(error) => {
                            self.report(
                                Level::Warning,
                                format!(
                                    "the changed configuration does not load; keeping the running one: {error}"
                                ),
                            );
                            continue;
                        }
                    },
                    Plan::Rebuild(images) => Some(images),
                    Plan::Redeploy => Some(BTreeSet::new()),
                };
                tokio::select! {
                    _ = self.iteration(&mut state, trigger, rebuild) => {}
                    () = &mut shutdown => break,
                }
            }
        }
        detach(&mut state);
        if self.options.cleanup {
            if let Err(error) = state.session.cleanup(&*self.reporter).await {
                result = result.and(Err(error));
            }
        }
        result
    }

    async fn connect(&self) -> Result<State, RunnerError> {
        let session =
            DeploySession::connect(self.pipeline.deploy.clone(), self.options.deploy.clone())
                .await?;
        Ok(State {
            session,
            images: Vec::new(),
            dependencies: BTreeMap::new(),
            forwards: Vec::new(),
            kube_logs: None,
            docker_logs: None,
        })
    }

    fn reload(&self) -> Result<Pipeline, RunnerError> {
        let Some(load) = &self.options.reload else {
            return Err(RunnerError::Settings {
                message: "this loop was started without a way to reload its configuration".into(),
            });
        };
        let loaded = skiff_config::load(load)?;
        Pipeline::new(&loaded.configs, &self.options)
    }

    /// Switch to a reloaded configuration: a new deploy session when the deploy settings
    /// changed (the old one cleaned up), and everything rebuilt.
    async fn restart(&mut self, state: &mut State, new: Pipeline) -> Result<(), RunnerError> {
        self.report(Level::Info, "configuration changed; restarting".into());
        detach(state);
        let same_deploy = new.deploy == self.pipeline.deploy;
        self.pipeline = new;
        state.images.clear();
        state.dependencies.clear();
        if !same_deploy {
            if let Err(error) = state.session.cleanup(&*self.reporter).await {
                self.report(Level::Warning, format!("cleanup failed: {error}"));
            }
            *state = self.connect().await?;
        }
        Ok(())
    }

    /// What `changes` call for, and the paths that call for it.
    async fn plan(&self, state: &mut State, changes: &ChangeSet) -> (Plan, Vec<PathBuf>) {
        let paths: Vec<&PathBuf> = changes.modified.iter().chain(&changes.deleted).collect();
        if paths
            .iter()
            .any(|p| self.pipeline.config_files.contains(*p))
        {
            if self.options.reload.is_some() {
                let relevant = paths
                    .iter()
                    .filter(|p| self.pipeline.config_files.contains(**p))
                    .map(|p| (*p).clone())
                    .collect();
                return (Plan::Reload, relevant);
            }
            self.report(
                Level::Warning,
                "the configuration changed; restart skiff to use it".into(),
            );
        }
        let mut affected: BTreeSet<String> = BTreeSet::new();
        let mut relevant: Vec<PathBuf> = Vec::new();
        let mut refreshed: BTreeSet<String> = BTreeSet::new();
        for path in &paths {
            for artifact in &self.pipeline.build.artifacts {
                if affected.contains(&artifact.image) || !path.starts_with(&artifact.context) {
                    continue;
                }
                let mut hit = match state.dependencies.get(&artifact.image) {
                    Some(Some(files)) => files.contains(*path),
                    // A plugged-in builder, or not built yet: its whole context is input.
                    Some(None) | None => true,
                };
                // A new file under the context may be a new input (`COPY . .`): list this
                // artifact's dependencies again, once per iteration.
                if !hit
                    && changes.modified.contains(*path)
                    && refreshed.insert(artifact.image.clone())
                {
                    match self
                        .build
                        .artifact_dependencies(artifact, &self.options.render.build.env)
                        .await
                    {
                        Ok(files) => {
                            let files: Option<BTreeSet<PathBuf>> =
                                files.map(|f| f.into_iter().collect());
                            hit = files.as_ref().is_none_or(|f| f.contains(*path));
                            state.dependencies.insert(artifact.image.clone(), files);
                        }
                        Err(_) => hit = true,
                    }
                }
                if hit {
                    affected.insert(artifact.image.clone());
                    if relevant.last() != Some(*path) {
                        relevant.push((*path).clone());
                    }
                }
            }
        }
        if !affected.is_empty() {
            return (Plan::Rebuild(affected), relevant);
        }
        let manifests: Vec<PathBuf> = paths
            .iter()
            .filter(|p| self.pipeline.manifests.matches(p))
            .map(|p| (*p).clone())
            .collect();
        if !manifests.is_empty() {
            return (Plan::Redeploy, manifests);
        }
        (Plan::Nothing, Vec::new())
    }

    /// The artifacts to rebuild for `changed`: those, and every artifact requiring one of
    /// them, transitively.
    fn with_dependents(&self, changed: &BTreeSet<String>) -> Vec<String> {
        let artifacts = &self.pipeline.build.artifacts;
        let mut wanted: BTreeSet<String> = changed.clone();
        loop {
            let before = wanted.len();
            for artifact in artifacts {
                if artifact.requires.iter().any(|r| wanted.contains(&r.image)) {
                    wanted.insert(artifact.image.clone());
                }
            }
            if wanted.len() == before {
                break;
            }
        }
        artifacts
            .iter()
            .map(|a| a.image.clone())
            .filter(|i| wanted.contains(i))
            .collect()
    }

    /// One iteration; `rebuild`: `None` builds everything, an empty set nothing. Reports
    /// [`Event::IterationFinished`] either way.
    async fn iteration(
        &self,
        state: &mut State,
        trigger: String,
        rebuild: Option<BTreeSet<String>>,
    ) -> Result<(), RunnerError> {
        let started = Instant::now();
        self.reporter.report(Event::IterationStarted {
            trigger: trigger.clone(),
        });
        let mut done = Done::default();
        let result = self.steps(state, rebuild, &mut done).await;
        let total = started.elapsed();
        let mut parts = Vec::new();
        let error_line = result
            .as_ref()
            .err()
            .map(|e| first_line(&e.to_string()).to_owned());
        let build_failed = done.build.is_some() && done.rebuilt.is_empty() && result.is_err();
        match done.build {
            Some(build) if build_failed => parts.push(format!(
                "build failed ({}): {}",
                secs(build),
                error_line.as_deref().unwrap_or_default()
            )),
            Some(build) => parts.push(format!(
                "rebuilt {} ({})",
                done.rebuilt.join(", "),
                secs(build)
            )),
            None => {}
        }
        let mut phases = Vec::new();
        if let Some(build) = done.build {
            phases.push(("build".to_owned(), build));
        }
        if result.is_ok() || done.apply > Duration::ZERO {
            phases.push(("render".to_owned(), done.render));
            phases.push(("deploy".to_owned(), done.apply));
            parts.push(if done.applied == 0 {
                "nothing to apply".to_owned()
            } else {
                format!("applied {}", plural(done.applied, "object"))
            });
        }
        if let Some(status) = done.status {
            phases.push(("status".to_owned(), status));
            parts.push(format!("ready in {}", secs(status)));
        }
        if let (Some(error), false) = (&error_line, build_failed) {
            parts.push(format!("failed: {error}"));
        }
        let summary = format!("{trigger} → {} — total {}", parts.join(", "), secs(total));
        self.reporter.report(Event::IterationFinished {
            trigger,
            summary,
            total,
            phases,
            error: result.as_ref().err().map(ToString::to_string),
        });
        if result.is_ok() {
            self.attach(state).await;
        }
        result
    }

    async fn steps(
        &self,
        state: &mut State,
        rebuild: Option<BTreeSet<String>>,
        done: &mut Done,
    ) -> Result<(), RunnerError> {
        let reporter = &*self.reporter;
        let only = match &rebuild {
            None => Some(Vec::new()),
            Some(set) if set.is_empty() => None,
            Some(set) => Some(self.with_dependents(set)),
        };
        if let Some(only) = only.filter(|_| !self.pipeline.build.artifacts.is_empty()) {
            let started = Instant::now();
            let options = BuildOptions {
                only: only.clone(),
                ..self.options.render.build.clone()
            };
            let outcome = self
                .build
                .build(&self.pipeline.build, &options, reporter)
                .await;
            done.build = Some(started.elapsed());
            let outcome = outcome?;
            done.rebuilt = if only.is_empty() {
                outcome
                    .images
                    .iter()
                    .map(|i| i.image_name.clone())
                    .collect()
            } else {
                only
            };
            for image in outcome.images {
                state.images.retain(|i| i.image_name != image.image_name);
                state.images.push(image);
            }
            for artifact in &self.pipeline.build.artifacts {
                if done.rebuilt.contains(&artifact.image) {
                    let files = self
                        .build
                        .artifact_dependencies(artifact, &self.options.render.build.env)
                        .await
                        .ok()
                        .flatten()
                        .map(|f| f.into_iter().collect());
                    state.dependencies.insert(artifact.image.clone(), files);
                }
            }
        }
        let started = Instant::now();
        let mut images = state.images.clone();
        for image in &self.options.render.prebuilt {
            if !images.iter().any(|i| i.image_name == image.image_name) {
                images.push(image.clone());
            }
        }
        let missing: Vec<&str> = self
            .pipeline
            .build
            .artifacts
            .iter()
            .filter(|a| !images.iter().any(|i| i.image_name == a.image))
            .map(|a| a.image.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(RunnerError::Settings {
                message: format!("not built yet: {}", missing.join(", ")),
            });
        }
        let options = RenderRunOptions {
            prebuilt: images,
            ..self.options.render.clone()
        };
        let rendered = self
            .render
            .render(
                &self.pipeline.render,
                &self.pipeline.build,
                &options,
                reporter,
            )
            .await?;
        done.render = started.elapsed();
        let deployed = state
            .session
            .deploy(&rendered.manifests, &rendered.images, reporter)
            .await;
        let deployed = deployed?;
        done.apply = deployed.apply.max(Duration::from_nanos(1));
        done.applied = deployed
            .resources
            .iter()
            .filter(|(_, action)| *action != ApplyAction::Unchanged)
            .count();
        done.status = deployed.status;
        if state.kube_logs.is_none() && self.options.tail {
            if let Some(connection) = state.session.kubernetes() {
                let mut namespaces = vec![connection.default_namespace.clone()];
                namespaces.extend(
                    rendered
                        .manifests
                        .manifests
                        .iter()
                        .filter_map(|m| m.namespace.clone()),
                );
                state.kube_logs = Some(LogTailer::start(
                    connection.client.clone(),
                    namespaces,
                    format!("{RUN_ID_LABEL}={}", self.options.deploy.run_id),
                    LogOptions::default(),
                    Arc::clone(&self.reporter),
                ));
            }
        }
        Ok(())
    }

    /// After a successful deploy: start the port forwards and log streams not running yet.
    async fn attach(&self, state: &mut State) {
        if self.options.tail && state.docker_logs.is_none() {
            if let Some(docker) = state.session.docker() {
                state.docker_logs = Some(docker.follow_logs(Arc::clone(&self.reporter)));
            }
        }
        if self.options.port_forward != PortForwardMode::User || !state.forwards.is_empty() {
            return;
        }
        let Some(connection) = state.session.kubernetes() else {
            return;
        };
        let forwarder = PortForwarder::new(connection.client.clone());
        for entry in &self.pipeline.port_forwards {
            let kind = entry.resource_type.as_deref().unwrap_or("service");
            let Some(resource_type) = ResourceKind::from_skaffold(kind) else {
                self.report(
                    Level::Warning,
                    format!("portForward: resource type `{kind}` cannot be forwarded"),
                );
                continue;
            };
            let (Some(name), Some(port)) = (&entry.resource_name, &entry.port) else {
                continue;
            };
            let port = match port {
                IntOrString::Int(n) => match u16::try_from(*n) {
                    Ok(n) => RemotePort::Number(n),
                    Err(_) => continue,
                },
                IntOrString::String(s) => match s.parse() {
                    Ok(n) => RemotePort::Number(n),
                    Err(_) => RemotePort::Name(s.clone()),
                },
            };
            let spec = PortForwardSpec {
                resource_type,
                name: name.clone(),
                namespace: entry
                    .namespace
                    .clone()
                    .or_else(|| self.options.deploy.namespace.clone())
                    .unwrap_or_else(|| connection.default_namespace.clone()),
                port,
                local_port: entry.local_port.and_then(|p| u16::try_from(p).ok()),
                address: entry.address.clone(),
            };
            match forwarder.start(spec, Arc::clone(&self.reporter)).await {
                Ok(handle) => state.forwards.push(handle),
                Err(error) => self.report(
                    Level::Warning,
                    format!("cannot forward {kind}/{name}: {error}"),
                ),
            }
        }
    }
}

/// Stop the forwards and log streams.
fn detach(state: &mut State) {
    for forward in state.forwards.drain(..) {
        forward.stop();
    }
    if let Some(logs) = state.kube_logs.take() {
        logs.stop();
    }
    if let Some(logs) = state.docker_logs.take() {
        logs.stop();
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}
