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
//!
//! Changes accumulate until a phase may run: with [`DevOptions::auto_build`] (or `auto_deploy`)
//! off, or with a watcher that hands changes over only when asked
//! ([`Trigger::Manual`](skiff_watch::Trigger::Manual)), the loop waits for [`DevControl::execute`]; an iteration
//! then covers everything changed since the last one. [`DevLoop::control`] hands out the
//! control handle before the loop starts.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use skiff_config::EffectiveConfig;
use skiff_deploy::kubernetes::forward::{
    ForwardHandle, PortForwardSpec, PortForwarder, RemotePort, ResourceKind,
};
use skiff_deploy::kubernetes::logs::{LogOptions, LogTailer};
use skiff_deploy::{ApplyAction, Deployer, RUN_ID_LABEL};
use skiff_render::ManifestInputs;
use skiff_types::change::ChangeSet;
use skiff_types::event::{Event, Level, Reporter};
use skiff_types::image::BuiltImage;
use skiff_types::manifest::Manifest;
use skiff_watch::{IgnoreRules, Watcher};
use tokio::sync::mpsc;

use crate::RunnerError;
use crate::build::{BuildOptions, BuildStage};
use crate::deploy::{DeployRunOptions, DeploySession};
use crate::project::{PortForward, Project};
use crate::render::{RenderRunOptions, RenderSettings, RenderStage};
use crate::schedule::ArtifactGraph;
use crate::sync::{SyncOutcome, SyncStage};

mod plan;
use plan::{ChangedFiles, Owed, Plan, PlanInputs, Planned, SyncVerdict};
use skiff_sync::Syncer;
use skiff_sync::rules::Decision;

const SOURCE: &str = "dev";

/// Which ports to forward (`--port-forward`, a list of modes as with Skaffold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortForwardMode {
    /// The configuration's `portForward` entries.
    #[default]
    User,
    /// Every port of every Service the run deploys.
    Services,
    /// Every container port of the run's workloads (Pods, Deployments, StatefulSets,
    /// DaemonSets, ReplicaSets), forwarded through the workload so that a new pod after a
    /// redeploy is picked up.
    Pods,
    /// None (the same as an empty list).
    Off,
}

/// A phase the loop runs on its own unless its auto switch is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Rebuilding artifacts (`--auto-build`).
    Build,
    /// Syncing files into running containers (`--auto-sync`).
    Sync,
    /// Rendering and deploying (`--auto-deploy`).
    Deploy,
}

/// Phases to run now (Skaffold's `POST /v2/execute` body; Enter with `--trigger=manual`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecuteRequest {
    /// Rebuild what the accumulated changes affect.
    pub build: bool,
    /// Sync what the accumulated changes allow.
    pub sync: bool,
    /// Render and deploy.
    pub deploy: bool,
}

impl ExecuteRequest {
    /// Every phase.
    pub fn all() -> ExecuteRequest {
        ExecuteRequest {
            build: true,
            sync: true,
            deploy: true,
        }
    }

    fn merge(&mut self, other: ExecuteRequest) {
        self.build |= other.build;
        self.sync |= other.sync;
        self.deploy |= other.deploy;
    }

    fn wants(&self, phase: Phase) -> bool {
        match phase {
            Phase::Build => self.build,
            Phase::Sync => self.sync,
            Phase::Deploy => self.deploy,
        }
    }
}

/// What a [`DevControl`] tells the loop.
#[derive(Debug, Clone, Copy)]
enum ControlMessage {
    Execute(ExecuteRequest),
    AutoChanged,
}

/// Controls a running [`DevLoop::dev`] from elsewhere (an HTTP API, a key press, an IDE):
/// trigger phases, switch automatic phases on and off. Cheap to clone; usable from any thread.
/// Calls made after the loop stopped have no effect.
#[derive(Debug, Clone)]
pub struct DevControl {
    shared: Arc<ControlShared>,
}

#[derive(Debug)]
struct ControlShared {
    auto_build: AtomicBool,
    auto_sync: AtomicBool,
    auto_deploy: AtomicBool,
    sender: mpsc::UnboundedSender<ControlMessage>,
}

impl DevControl {
    fn new(options: &DevOptions) -> (DevControl, mpsc::UnboundedReceiver<ControlMessage>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let shared = ControlShared {
            auto_build: AtomicBool::new(options.auto_build),
            auto_sync: AtomicBool::new(options.auto_sync),
            auto_deploy: AtomicBool::new(options.auto_deploy),
            sender,
        };
        (
            DevControl {
                shared: Arc::new(shared),
            },
            receiver,
        )
    }

    /// Run the requested phases over everything changed since the last iteration (with a
    /// [`Trigger::Manual`](skiff_watch::Trigger::Manual) watcher: ask it for its changes first).
    /// Nothing happens when nothing changed.
    pub fn execute(&self, request: ExecuteRequest) {
        // The receiver is gone only when the loop has stopped: nothing to trigger then.
        let _ = self.shared.sender.send(ControlMessage::Execute(request));
    }

    /// Switch the automatic run of `phase` on or off. Turned on, changes already waiting for
    /// that phase run at once.
    pub fn set_auto(&self, phase: Phase, enabled: bool) {
        self.flag(phase).store(enabled, Ordering::SeqCst);
        let _ = self.shared.sender.send(ControlMessage::AutoChanged);
    }

    /// Whether `phase` runs on its own when a change calls for it.
    pub fn auto(&self, phase: Phase) -> bool {
        self.flag(phase).load(Ordering::SeqCst)
    }

    fn flag(&self, phase: Phase) -> &AtomicBool {
        match phase {
            Phase::Build => &self.shared.auto_build,
            Phase::Sync => &self.shared.auto_sync,
            Phase::Deploy => &self.shared.auto_deploy,
        }
    }
}

/// How a run or dev loop behaves; the CLI fills it from flags and the environment.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// Build and render options; `run_id` names the run (and labels what it deploys).
    pub render: RenderRunOptions,
    /// Deploy options; its `run_id` is taken from `render.run_id`.
    pub deploy: DeployRunOptions,
    /// `--port-forward`: the modes in force (empty, or only [`PortForwardMode::Off`]: none).
    pub port_forward: Vec<PortForwardMode>,
    /// `--tail`: follow the logs of what was deployed.
    pub tail: bool,
    /// `--cleanup`: remove what the run deployed when the dev loop stops.
    pub cleanup: bool,
    /// Where the configuration comes from, to reload it when one of its files changes;
    /// `None`: configuration changes are reported and ignored.
    pub reload: Option<skiff_config::LoadOptions>,
    /// `--auto-build`: rebuild on a change without waiting for [`DevControl::execute`].
    pub auto_build: bool,
    /// `--auto-sync`: sync on a change without waiting for [`DevControl::execute`].
    pub auto_sync: bool,
    /// `--auto-deploy`: redeploy on a change without waiting for [`DevControl::execute`].
    pub auto_deploy: bool,
    /// `--skip-tests`: built images are not tested before they are deployed.
    pub skip_tests: bool,
}

impl DevOptions {
    /// Whether ports of `mode` are forwarded.
    pub fn forwards(&self, mode: PortForwardMode) -> bool {
        mode != PortForwardMode::Off && self.port_forward.contains(&mode)
    }
}

/// One loaded configuration as the loop runs it: the resolved project, the forwards it asks
/// for and the files that call for a redeploy.
#[derive(Debug, Clone)]
struct Pipeline {
    project: Project,
    /// `portForward` entries, when user forwards are on.
    port_forwards: Vec<PortForward>,
    manifests: ManifestInputs,
    /// What runs an image's tests again without a rebuild (nothing with `--skip-tests`).
    test_watches: Vec<crate::test::TestWatch>,
}

impl Pipeline {
    fn new(mut project: Project, options: &DevOptions) -> Result<Pipeline, RunnerError> {
        let port_forwards = if options.forwards(PortForwardMode::User) {
            project.port_forwards()?.to_vec()
        } else {
            project.deploy.docker_ports.clear();
            Vec::new()
        };
        let manifests = project.manifest_inputs()?;
        // Strict templates of the render stage fail at start, not on the first change.
        project.render()?;
        let test_watches = if options.skip_tests {
            Vec::new()
        } else {
            project.test.watches()?
        };
        Ok(Pipeline {
            project,
            port_forwards,
            manifests,
            test_watches,
        })
    }

    fn render(&self) -> &RenderSettings {
        self.project.render_settings()
    }
}

/// What is running between iterations.
struct State {
    session: DeploySession,
    /// The changed files of the artifacts the next iteration rebuilds (for warm rebuilds).
    changes: BTreeMap<String, ChangedFiles>,
    /// The last good image of each artifact.
    images: Vec<BuiltImage>,
    /// Artifact image → its dependency files (`None`: its whole context).
    dependencies: BTreeMap<String, Option<BTreeSet<PathBuf>>>,
    forwards: Vec<ForwardHandle>,
    /// What `forwards` forward to (`namespace/kind/name:port`), started or failed.
    forwarded: BTreeSet<String>,
    /// The manifests of the last successful deploy.
    manifests: Vec<Manifest>,
    /// The images of the last successful deploy, as put into the manifests.
    deployed: Vec<BuiltImage>,
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

/// The sync stage of `pipeline`: skiff's Docker and Kubernetes syncers, or `plugged` instead.
fn sync_stage(
    pipeline: &Pipeline,
    options: &DevOptions,
    plugged: Option<&Arc<dyn Syncer>>,
) -> SyncStage {
    let stage = SyncStage::new(pipeline.project.sync.clone(), options.deploy.run_id.clone())
        .with_docker_host(options.deploy.docker_host.clone())
        .with_env(options.render.build.env.clone());
    match plugged {
        Some(syncer) => stage.with_syncer(syncer.clone()),
        None => stage,
    }
}

/// The dev loop. See the [module docs](self).
pub struct DevLoop {
    pipeline: Pipeline,
    options: DevOptions,
    build: BuildStage,
    render: RenderStage,
    sync: SyncStage,
    /// A deployer plugged in instead of skiff's own.
    deployer: Option<Arc<dyn Deployer>>,
    /// A syncer plugged in instead of skiff's own.
    syncer: Option<Arc<dyn Syncer>>,
    reporter: Arc<dyn Reporter>,
    control: DevControl,
    control_rx: Option<mpsc::UnboundedReceiver<ControlMessage>>,
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
    /// Rebuilt images whose content is what was there before (same deployed reference).
    same_image: Vec<String>,
    /// Artifacts rebuilt warm, with where the time went.
    warm: BTreeMap<String, String>,
    build: Option<Duration>,
    render: Duration,
    applied: usize,
    apply: Duration,
    status: Option<Duration>,
    /// The deploy was left for a trigger (`--auto-deploy=false`).
    deploy_waits: bool,
    /// How long the tests of the built images took; `None`: none ran.
    test: Option<Duration>,
}

fn millis(d: Duration) -> String {
    format!("{} ms", d.as_millis())
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
        // The root file only names the stable run ID, which the loop is given.
        let root = configs.last().map(|c| c.file.clone()).unwrap_or_default();
        DevLoop::with_project(Project::resolve(&root, configs)?, options, reporter)
    }

    /// A loop over an already resolved `project` with skiff's own stages.
    pub fn with_project(
        project: Project,
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
        options.deploy.run_id = run_id.clone();
        options.render.build.run_id = Some(run_id);
        let (control, control_rx) = DevControl::new(&options);
        let pipeline = Pipeline::new(project, &options)?;
        for warning in &pipeline.project.warnings {
            reporter.report(Event::Message {
                source: SOURCE,
                level: Level::Warning,
                text: warning.clone(),
            });
        }
        Ok(DevLoop {
            sync: sync_stage(&pipeline, &options, None),
            pipeline,
            options,
            build: BuildStage::new(),
            render: RenderStage::new(),
            deployer: None,
            syncer: None,
            reporter,
            control,
            control_rx: Some(control_rx),
        })
    }

    /// A handle to trigger phases and switch the automatic ones while [`DevLoop::dev`] runs.
    pub fn control(&self) -> DevControl {
        self.control.clone()
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

    /// Deploys (and cleans up) with `deployer` instead of skiff's Kubernetes and Docker
    /// deployers.
    pub fn with_deployer(mut self, deployer: Box<dyn Deployer>) -> DevLoop {
        self.deployer = Some(Arc::from(deployer));
        self
    }

    /// Syncs with `syncer` instead of skiff's Docker and Kubernetes syncers.
    pub fn with_syncer(mut self, syncer: Box<dyn Syncer>) -> DevLoop {
        let syncer: Arc<dyn Syncer> = Arc::from(syncer);
        self.sync = sync_stage(&self.pipeline, &self.options, Some(&syncer));
        self.syncer = Some(syncer);
        self
    }

    /// What a watcher should watch: every artifact's context, the manifest sources and the
    /// configuration files.
    pub fn watch_roots(&self) -> Vec<PathBuf> {
        let mut roots: BTreeSet<PathBuf> = self
            .pipeline
            .project
            .build
            .artifacts
            .iter()
            .map(|a| a.context.clone())
            .collect();
        roots.extend(self.pipeline.manifests.roots());
        roots.extend(self.pipeline.project.config_files.iter().cloned());
        roots.extend(
            self.pipeline
                .test_watches
                .iter()
                .map(|w| w.context().to_path_buf()),
        );
        roots.into_iter().collect()
    }

    /// What a watcher should ignore: for a path under Docker artifacts' contexts, what every
    /// one of those artifacts' `.dockerignore` excludes (the Dockerfile and the ignore file
    /// themselves always count). Configuration files, manifest sources and test dependencies are
    /// never ignored.
    pub fn watch_ignore(&self) -> IgnoreRules {
        let mut contexts = Vec::new();
        for artifact in &self.pipeline.project.build.artifacts {
            let ignore = match &artifact.builder {
                skiff_build::BuilderSpec::Docker(docker) => {
                    let dockerfile = artifact.context.join(&docker.dockerfile);
                    match skiff_build::dockerignore::DockerIgnore::for_artifact(
                        &artifact.context,
                        &dockerfile,
                    ) {
                        Ok(ignore) if !ignore.is_empty() => {
                            let always: Vec<PathBuf> = ignore
                                .source()
                                .map(Path::to_path_buf)
                                .into_iter()
                                .chain(std::iter::once(dockerfile))
                                .collect();
                            Some((ignore, always))
                        }
                        Ok(_) => None,
                        Err(error) => {
                            self.report(
                                Level::Warning,
                                format!("watching all of {}: {error}", artifact.context.display()),
                            );
                            None
                        }
                    }
                }
                _ => None,
            };
            contexts.push((artifact.context.clone(), ignore));
        }
        if contexts.iter().all(|(_, ignore)| ignore.is_none()) {
            return IgnoreRules::default();
        }
        let config_files = self.pipeline.project.config_files.clone();
        let manifests = self.pipeline.manifests.clone();
        let tests = self.pipeline.test_watches.clone();
        let exclude = move |path: &Path| {
            if config_files.contains(path)
                || manifests.matches(path)
                || tests.iter().any(|t| t.matches(path))
            {
                return false;
            }
            let mut under_any = false;
            for (context, ignore) in &contexts {
                let Ok(relative) = path.strip_prefix(context) else {
                    continue;
                };
                under_any = true;
                let Some((ignore, always)) = ignore else {
                    return false;
                };
                let relative = relative.to_string_lossy().replace('\\', "/");
                if relative.is_empty()
                    || always.iter().any(|a| a == path)
                    || !ignore.is_excluded(&relative)
                {
                    return false;
                }
            }
            under_any
        };
        IgnoreRules {
            exclude: vec![Arc::new(exclude)],
            extra_dirs: Vec::new(),
        }
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
            result = self.iteration(&mut state, "run".to_owned(), None, true) => result,
            () = &mut shutdown => return Ok(()),
        };
        result?;
        if !state.forwards.is_empty()
            || state.kube_logs.is_some()
            || state.docker_logs.is_some()
            || (self.options.forwards(PortForwardMode::User)
                && !self.pipeline.project.deploy.docker_ports.is_empty())
        {
            shutdown.await;
        }
        detach(&mut state);
        Ok(())
    }

    /// `skiff dev`: a first iteration, then one per change `watcher` reports, until
    /// `shutdown` completes; then stops forwards and logs and (with `cleanup`) removes what
    /// the run deployed. A failed iteration is reported and the loop goes on. Changes whose
    /// phase is not automatic (see [`DevControl`]) wait for [`DevControl::execute`].
    pub async fn dev(
        mut self,
        mut watcher: Box<dyn Watcher>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), RunnerError> {
        let mut shutdown = Box::pin(shutdown);
        // This process stays up while the containers run: it serves their ports, so that a
        // new version takes over without a gap.
        self.options.deploy.port_proxy = true;
        let mut control_rx = self.control_rx.take();
        let hand_over = watcher.trigger_handle();
        let mut state = self.connect().await?;
        let mut result = Ok(());
        let first = tokio::select! {
            result = self.iteration(&mut state, "initial".to_owned(), None, true) => Some(result),
            () = &mut shutdown => None,
        };
        let mut owed = Owed::default();
        let mut intents = ExecuteRequest::default();
        // An execute request asked the watcher for its changes; decide once they are here.
        let mut awaiting_hand_over = false;
        let mut told_waiting = false;
        while first.is_some() {
            let message = tokio::select! {
                change = watcher.next_change() => Ok(change),
                Some(message) = recv(&mut control_rx) => Err(message),
                () = &mut shutdown => break,
            };
            match message {
                Ok(Err(error)) => {
                    result = Err(error.into());
                    break;
                }
                Ok(Ok(change)) => {
                    awaiting_hand_over = false;
                    let Planned { plan, relevant, .. } = self.plan(&mut state, &change).await;
                    match plan {
                        Plan::Nothing => {}
                        Plan::Reload => {
                            match self.reload() {
                                Ok(new) => {
                                    let restarted = tokio::select! {
                                        restarted = self.restart(&mut state, new) => restarted,
                                        () = &mut shutdown => break,
                                    };
                                    if let Err(error) = restarted {
                                        result = Err(error);
                                        break;
                                    }
                                    if let Err(error) =
                                        watcher.set_roots(self.watch_roots(), self.watch_ignore())
                                    {
                                        self.report(
                                        Level::Warning,
                                        format!("cannot watch the new configuration's files: {error}"),
                                    );
                                    }
                                    owed = Owed::default();
                                    intents = ExecuteRequest::default();
                                    let trigger = describe_trigger(&relevant);
                                    tokio::select! {
                                        _ = self.iteration(&mut state, trigger, None, true) => {}
                                        () = &mut shutdown => break,
                                    }
                                    continue;
                                }
                                Err(error) => {
                                    self.report(
                                    Level::Warning,
                                    format!(
                                        "the changed configuration does not load; keeping the running one: {error}"
                                    ),
                                );
                                }
                            }
                        }
                        Plan::Update { .. } | Plan::Redeploy | Plan::Retest(_) => {
                            owed.absorb(plan, relevant)
                        }
                    }
                }
                Err(ControlMessage::Execute(request)) => {
                    intents.merge(request);
                    if let Some(hand_over) = &hand_over {
                        hand_over.fire();
                        awaiting_hand_over = true;
                    }
                }
                Err(ControlMessage::AutoChanged) => {}
            }
            if awaiting_hand_over {
                continue;
            }
            if !owed.sync.is_empty() && self.phase_enabled(Phase::Sync, &intents) {
                let sync = std::mem::take(&mut owed.sync);
                let fallback = tokio::select! {
                    fallback = self.sync_iteration(&mut state, sync) => fallback,
                    () = &mut shutdown => break,
                };
                for (image, files) in fallback {
                    owed.rebuild_instead(image, files);
                }
            }
            // Tests belong to the build phase; an image owed a rebuild is tested with it.
            if !owed.retest.is_empty() && self.phase_enabled(Phase::Build, &intents) {
                let images = std::mem::take(&mut owed.retest);
                let paths = std::mem::take(&mut owed.retest_paths);
                if !images.is_empty() {
                    tokio::select! {
                        () = self.retest_iteration(&state, &images, &paths) => {}
                        () = &mut shutdown => break,
                    }
                }
            }
            let build = !owed.rebuild.is_empty() && self.phase_enabled(Phase::Build, &intents);
            let deploy = owed.redeploy
                && self.phase_enabled(Phase::Deploy, &intents)
                && (owed.rebuild.is_empty() || build);
            intents = ExecuteRequest::default();
            if !build && !deploy {
                if (!owed.rebuild.is_empty() || owed.redeploy || !owed.sync.is_empty())
                    && !told_waiting
                {
                    told_waiting = true;
                    let phase = if !owed.rebuild.is_empty() {
                        "build"
                    } else if owed.redeploy {
                        "deploy"
                    } else {
                        "sync"
                    };
                    let mut paths = owed.paths.clone();
                    paths.extend(owed.sync.values().flat_map(|f| f.paths().cloned()));
                    self.report(
                        Level::Info,
                        format!(
                            "{} changed; waiting for a trigger to {phase} (automatic {phase} is off)",
                            describe_trigger(&paths),
                        ),
                    );
                }
                continue;
            }
            told_waiting = false;
            let trigger = describe_trigger(&owed.paths);
            let rebuild = std::mem::take(&mut owed.rebuild);
            let changes = std::mem::take(&mut owed.changes);
            if deploy {
                owed.redeploy = false;
                owed.paths.clear();
            }
            state.changes = changes;
            tokio::select! {
                _ = self.iteration(&mut state, trigger, Some(rebuild), deploy) => {}
                () = &mut shutdown => break,
            }
        }
        detach(&mut state);
        if self.options.cleanup {
            if let Err(error) = state.session.cleanup(&*self.reporter).await {
                result = result.and(Err(error));
            }
        }
        for name in self.build.shutdown().await {
            self.reporter.report(Event::Deployed {
                object: name,
                action: "deleted".to_owned(),
            });
        }
        result
    }

    /// Whether `phase` may run now: automatic, or asked for.
    fn phase_enabled(&self, phase: Phase, intents: &ExecuteRequest) -> bool {
        self.control.auto(phase) || intents.wants(phase)
    }

    async fn connect(&self) -> Result<State, RunnerError> {
        let session = match &self.deployer {
            Some(deployer) => DeploySession::with_deployer(
                self.pipeline.project.deploy.clone(),
                self.options.deploy.clone(),
                deployer.clone(),
            ),
            None => {
                DeploySession::connect(
                    self.pipeline.project.deploy.clone(),
                    self.options.deploy.clone(),
                )
                .await?
            }
        };
        Ok(State {
            session,
            changes: BTreeMap::new(),
            images: Vec::new(),
            dependencies: BTreeMap::new(),
            forwards: Vec::new(),
            forwarded: BTreeSet::new(),
            manifests: Vec::new(),
            deployed: Vec::new(),
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
        Pipeline::new(
            Project::resolve(&loaded.file, &loaded.configs)?,
            &self.options,
        )
    }

    /// Switch to a reloaded configuration: a new deploy session when the deploy settings
    /// changed (the old one cleaned up), and everything rebuilt.
    async fn restart(&mut self, state: &mut State, new: Pipeline) -> Result<(), RunnerError> {
        self.report(Level::Info, "configuration changed; restarting".into());
        detach(state);
        for warning in &new.project.warnings {
            self.report(Level::Warning, warning.clone());
        }
        let same_deploy = new.project.deploy == self.pipeline.project.deploy;
        self.pipeline = new;
        self.sync = sync_stage(&self.pipeline, &self.options, self.syncer.as_ref());
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

    /// What `changes` call for, and the paths that call for it. Lists the dependencies of
    /// artifacts a new file may feed again first; the rest is [`plan::plan`].
    async fn plan(&self, state: &mut State, changes: &ChangeSet) -> Planned {
        let artifacts = &self.pipeline.project.build.artifacts;
        let stale = {
            let inputs = self.plan_inputs(state);
            plan::stale_dependencies(&inputs, changes)
        };
        for index in stale {
            let artifact = &artifacts[index];
            let files = match self
                .build
                .artifact_dependencies(artifact, &self.options.render.build.env)
                .await
            {
                Ok(files) => files.map(|f| f.into_iter().collect()),
                // Unknown: the whole context is input until the next build lists them.
                Err(_) => None,
            };
            state.dependencies.insert(artifact.image.clone(), files);
        }
        let planned = plan::plan(&self.plan_inputs(state), changes, &|image, files| {
            if !self.sync.has_rules(image) {
                return SyncVerdict::NoRules;
            }
            let changed: Vec<PathBuf> = files.changed.iter().cloned().collect();
            let deleted: Vec<PathBuf> = files.deleted.iter().cloned().collect();
            match self.sync.plan(image, &changed, &deleted) {
                Decision::Sync(_) => SyncVerdict::Sync,
                Decision::Rebuild { reason } => SyncVerdict::Rebuild(reason),
            }
        });
        for (level, note) in &planned.notes {
            self.report(*level, note.clone());
        }
        planned
    }

    fn plan_inputs<'a>(&'a self, state: &'a State) -> PlanInputs<'a> {
        PlanInputs {
            config_files: &self.pipeline.project.config_files,
            can_reload: self.options.reload.is_some(),
            artifacts: &self.pipeline.project.build.artifacts,
            dependencies: &state.dependencies,
            manifests: &self.pipeline.manifests,
            tests: &self.pipeline.test_watches,
        }
    }

    /// Runs the tests of `images` again on their current images (their test dependencies
    /// changed, nothing they are built from), reporting it as one iteration. A failure is
    /// the iteration's error; what runs is not touched either way.
    async fn retest_iteration(&self, state: &State, images: &BTreeSet<String>, paths: &[PathBuf]) {
        let trigger = describe_trigger(paths);
        self.reporter.report(Event::IterationStarted {
            trigger: trigger.clone(),
        });
        let started = Instant::now();
        let names = images.iter().cloned().collect::<Vec<_>>().join(", ");
        let result = crate::test::run_tests(
            &self.pipeline.project.test.only(images),
            &state.images,
            &self.options.render.build.env,
            &*self.reporter,
        )
        .await;
        let total = started.elapsed();
        let (summary, error) = match result {
            Ok(Some(_)) => (
                format!("{trigger} → tests of {names} passed ({})", millis(total)),
                None,
            ),
            Ok(None) => (
                format!("{trigger} → {names} has no built image to test yet"),
                None,
            ),
            Err(error) => (
                format!("{trigger} → tests of {names} failed"),
                Some(error.to_string()),
            ),
        };
        self.reporter.report(Event::IterationFinished {
            trigger,
            summary,
            total,
            phases: vec![("test".to_owned(), total)],
            error,
        });
    }

    /// Copies the `owed` files into the running containers of their artifacts, reporting one
    /// [`Event::IterationFinished`] when anything was tried. Returns the artifacts to rebuild
    /// instead: their rules no longer cover the files, nothing of theirs is deployed yet, or
    /// their containers cannot take files (no `tar`, no `rm`; said once by the sync stage).
    async fn sync_iteration(
        &self,
        state: &mut State,
        owed: BTreeMap<String, ChangedFiles>,
    ) -> Vec<(String, ChangedFiles)> {
        let started = Instant::now();
        let paths: Vec<PathBuf> = owed.values().flat_map(|f| f.paths().cloned()).collect();
        let trigger = describe_trigger(&paths);
        let mut fallback = Vec::new();
        let mut decide = Duration::ZERO;
        let mut copy = Duration::ZERO;
        let mut containers = 0;
        let mut errors: Vec<String> = Vec::new();
        let mut announced = false;
        for (image, files) in owed {
            let decided = Instant::now();
            let changed: Vec<PathBuf> = files.changed.iter().cloned().collect();
            let deleted: Vec<PathBuf> = files.deleted.iter().cloned().collect();
            let decision = self.sync.plan(&image, &changed, &deleted);
            decide += decided.elapsed();
            let plan = match decision {
                Decision::Sync(plan) => plan,
                Decision::Rebuild { reason } => {
                    self.report(Level::Info, format!("rebuilding {image}: {reason}"));
                    fallback.push((image, files));
                    continue;
                }
            };
            let Some(reference) = state
                .deployed
                .iter()
                .find(|i| i.image_name == image)
                .map(|i| i.reference.to_string())
            else {
                fallback.push((image, files));
                continue;
            };
            if !announced {
                announced = true;
                self.reporter.report(Event::IterationStarted {
                    trigger: trigger.clone(),
                });
            }
            let copying = Instant::now();
            let outcome = self
                .sync
                .sync(&state.session, &image, &reference, &plan, &*self.reporter)
                .await;
            copy += copying.elapsed();
            match outcome {
                Ok(SyncOutcome::Synced(report)) => containers += report.containers.len(),
                Ok(SyncOutcome::Rebuild { .. }) => fallback.push((image, files)),
                Err(error) => {
                    // The transport's error says the engine is unreachable in the client's
                    // words; the deployer names the engine and what to do, once per outage.
                    // (After the engine is back, the container it stopped is not running:
                    // the sync stage asks for a rebuild then.)
                    if let Some(docker) = state.session.docker() {
                        docker.check_engine(&*self.reporter).await;
                    }
                    errors.push(format!("{image}: {}", first_line(&error.to_string())));
                }
            }
        }
        if !announced {
            return fallback;
        }
        let total = started.elapsed();
        let mut parts = Vec::new();
        if containers > 0 {
            parts.push(format!(
                "synced into {} in {} (decide {}, copy {})",
                plural(containers, "container"),
                millis(total),
                millis(decide),
                millis(copy)
            ));
        }
        if !fallback.is_empty() {
            let images: Vec<&str> = fallback.iter().map(|(i, _)| i.as_str()).collect();
            parts.push(format!("rebuilding {} instead", images.join(", ")));
        }
        if !errors.is_empty() {
            parts.push(format!("sync failed: {}", errors.join("; ")));
        }
        let summary = format!("{trigger} → {}", parts.join(", "));
        self.reporter.report(Event::IterationFinished {
            trigger,
            summary,
            total,
            phases: vec![("sync".to_owned(), copy)],
            error: (!errors.is_empty()).then(|| errors.join("; ")),
        });
        fallback
    }

    /// One iteration; `rebuild`: `None` builds everything, an empty set nothing; `deploy`:
    /// render and deploy after the build. Reports [`Event::IterationFinished`] either way.
    async fn iteration(
        &self,
        state: &mut State,
        trigger: String,
        rebuild: Option<BTreeSet<String>>,
        deploy: bool,
    ) -> Result<(), RunnerError> {
        let started = Instant::now();
        self.reporter.report(Event::IterationStarted {
            trigger: trigger.clone(),
        });
        let mut done = Done::default();
        let result = self.steps(state, rebuild, deploy, &mut done).await;
        if result.is_err() {
            // A build that failed because the engine went away says so only in the builder's
            // words (a custom script's `docker build`, say); the deployer names the engine and
            // what to do, once per outage.
            if let Some(docker) = state.session.docker() {
                docker.check_engine(&*self.reporter).await;
            }
        }
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
            Some(build) => {
                for (image, summary) in &done.warm {
                    parts.push(format!("warm rebuild of {image}: {summary}"));
                }
                let clean: Vec<&str> = done
                    .rebuilt
                    .iter()
                    .filter(|i| !done.warm.contains_key(*i))
                    .map(String::as_str)
                    .collect();
                if !clean.is_empty() {
                    parts.push(format!("rebuilt {} ({})", clean.join(", "), secs(build)));
                }
                if !done.same_image.is_empty() {
                    parts.push(format!(
                        "the image of {} did not change",
                        done.same_image.join(", ")
                    ));
                }
            }
            None => {}
        }
        let mut phases = Vec::new();
        if let Some(build) = done.build {
            phases.push(("build".to_owned(), build));
        }
        if let Some(test) = done.test {
            phases.push(("test".to_owned(), test));
            parts.push(format!("tested ({})", secs(test)));
        }
        if done.deploy_waits {
            parts.push("deploy waits for a trigger".to_owned());
        } else if result.is_ok() || done.apply > Duration::ZERO {
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
        deploy: bool,
        done: &mut Done,
    ) -> Result<(), RunnerError> {
        let reporter = &*self.reporter;
        let only = match &rebuild {
            None => Some(Vec::new()),
            Some(set) if set.is_empty() => None,
            Some(set) => Some(
                ArtifactGraph::new(&self.pipeline.project.build.artifacts).with_dependents(set),
            ),
        };
        if let Some(only) = only.filter(|_| !self.pipeline.project.build.artifacts.is_empty()) {
            let started = Instant::now();
            let changes = std::mem::take(&mut state.changes)
                .into_iter()
                .map(|(image, files)| {
                    let mut set = ChangeSet::default();
                    for path in files.changed {
                        set.record_modified(path);
                    }
                    for path in files.deleted {
                        set.record_deleted(path);
                    }
                    (image, set)
                })
                .collect();
            let options = BuildOptions {
                only: only.clone(),
                changes,
                ..self.options.render.build.clone()
            };
            let outcome = self
                .build
                .build(&self.pipeline.project.build, &options, reporter)
                .await;
            done.build = Some(started.elapsed());
            let outcome = outcome?;
            done.warm.clone_from(&outcome.warm);
            done.rebuilt = if only.is_empty() {
                outcome
                    .images
                    .iter()
                    .map(|i| i.image_name.clone())
                    .collect()
            } else {
                only
            };
            if !self.options.skip_tests {
                // A failing test keeps the last good images: what runs keeps serving.
                done.test = crate::test::run_tests(
                    &self.pipeline.project.test,
                    &outcome.images,
                    &self.options.render.build.env,
                    reporter,
                )
                .await?;
            }
            for image in outcome.images {
                if state.images.contains(&image) {
                    done.same_image.push(image.image_name.clone());
                }
                state.images.retain(|i| i.image_name != image.image_name);
                state.images.push(image);
            }
            for (image, files) in outcome.dependencies {
                state
                    .dependencies
                    .insert(image, files.map(|f| f.into_iter().collect()));
            }
        }
        if !deploy {
            done.deploy_waits = true;
            return Ok(());
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
            .project
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
                self.pipeline.render(),
                &self.pipeline.project.build,
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
        state.manifests.clone_from(&rendered.manifests.manifests);
        state.deployed.clone_from(&rendered.images);
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
        let Some(connection) = state.session.kubernetes() else {
            return;
        };
        let namespace = self
            .options
            .deploy
            .namespace
            .clone()
            .unwrap_or_else(|| connection.default_namespace.clone());
        let mut specs = Vec::new();
        if self.options.forwards(PortForwardMode::User) {
            specs.extend(self.user_forwards(&namespace));
        }
        if self.options.forwards(PortForwardMode::Services) {
            specs.extend(service_forwards(&state.manifests, &namespace));
        }
        if self.options.forwards(PortForwardMode::Pods) {
            specs.extend(workload_forwards(&state.manifests, &namespace));
        }
        let forwarder = PortForwarder::new(connection.client.clone());
        for spec in specs {
            let key = format!("{}/{}:{}", spec.namespace, spec.resource(), spec.port);
            if !state.forwarded.insert(key) {
                continue;
            }
            let resource = spec.resource();
            match forwarder.start(spec, Arc::clone(&self.reporter)).await {
                Ok(handle) => state.forwards.push(handle),
                Err(error) => self.report(
                    Level::Warning,
                    format!("cannot forward {resource}: {error}"),
                ),
            }
        }
    }

    /// The configuration's `portForward` entries.
    fn user_forwards(&self, namespace: &str) -> Vec<PortForwardSpec> {
        let mut specs = Vec::new();
        for entry in &self.pipeline.port_forwards {
            let Some(resource_type) = ResourceKind::from_skaffold(&entry.resource_type) else {
                self.report(
                    Level::Warning,
                    format!(
                        "portForward: resource type `{}` cannot be forwarded",
                        entry.resource_type
                    ),
                );
                continue;
            };
            specs.push(PortForwardSpec {
                resource_type,
                name: entry.name.clone(),
                namespace: entry
                    .namespace
                    .clone()
                    .unwrap_or_else(|| namespace.to_owned()),
                port: entry.port.clone(),
                local_port: entry.local_port,
                address: entry.address.clone(),
            });
        }
        specs
    }
}

/// The parts of a manifest port forwarding reads.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct PortsManifest {
    spec: PortsSpec,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct PortsSpec {
    /// A Service's ports.
    ports: Vec<ServicePort>,
    /// A Pod's containers.
    containers: Vec<PortsContainer>,
    /// A workload's pod template.
    template: Option<Box<PortsTemplate>>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct ServicePort {
    port: Option<u16>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct PortsTemplate {
    spec: PortsSpec,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct PortsContainer {
    ports: Vec<ContainerPort>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ContainerPort {
    container_port: Option<u16>,
}

/// A forward on the same port number locally (or the next free one).
fn spec_for(
    kind: ResourceKind,
    manifest: &Manifest,
    namespace: &str,
    port: u16,
) -> Option<PortForwardSpec> {
    Some(PortForwardSpec {
        resource_type: kind,
        name: manifest.name.clone()?,
        namespace: manifest
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.to_owned()),
        port: RemotePort::Number(port),
        local_port: Some(port),
        address: None,
    })
}

/// `--port-forward=services`: every port of every Service deployed.
fn service_forwards(manifests: &[Manifest], namespace: &str) -> Vec<PortForwardSpec> {
    let mut specs = Vec::new();
    for manifest in manifests.iter().filter(|m| m.kind == "Service") {
        let Ok(parsed) = serde_yaml::from_str::<PortsManifest>(&manifest.yaml) else {
            continue;
        };
        for port in parsed.spec.ports.iter().filter_map(|p| p.port) {
            specs.extend(spec_for(ResourceKind::Service, manifest, namespace, port));
        }
    }
    specs
}

/// `--port-forward=pods`: every container port of every workload deployed, through the
/// workload (a ready pod of it at each connection).
fn workload_forwards(manifests: &[Manifest], namespace: &str) -> Vec<PortForwardSpec> {
    let mut specs = Vec::new();
    for manifest in manifests {
        let kind = match manifest.kind.as_str() {
            "Pod" => ResourceKind::Pod,
            "Deployment" => ResourceKind::Deployment,
            "StatefulSet" => ResourceKind::StatefulSet,
            "DaemonSet" => ResourceKind::DaemonSet,
            "ReplicaSet" => ResourceKind::ReplicaSet,
            _ => continue,
        };
        let Ok(parsed) = serde_yaml::from_str::<PortsManifest>(&manifest.yaml) else {
            continue;
        };
        let pod = match parsed.spec.template {
            Some(template) => template.spec,
            None => parsed.spec,
        };
        let ports: BTreeSet<u16> = pod
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().filter_map(|p| p.container_port))
            .collect();
        for port in ports {
            specs.extend(spec_for(kind, manifest, namespace, port));
        }
    }
    specs
}

/// The next control message, or never when there is no receiver.
async fn recv<T>(receiver: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match receiver {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// Stop the forwards and log streams.
fn detach(state: &mut State) {
    state.forwarded.clear();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_and_workloads_give_their_ports() {
        let service = Manifest::new(
            "k8s/svc.yaml",
            "v1",
            "Service",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n    targetPort: 8080\n  - name: admin\n    port: 9000\n",
        )
        .with_name("web");
        let deployment = Manifest::new(
            "k8s/deploy.yaml",
            "apps/v1",
            "Deployment",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        ports:\n        - containerPort: 8080\n      - name: b\n        ports:\n        - containerPort: 8080\n        - containerPort: 5005\n",
        )
        .with_name("web")
        .with_namespace("team");
        let pod = Manifest::new(
            "k8s/pod.yaml",
            "v1",
            "Pod",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: one\nspec:\n  containers:\n  - name: a\n    ports:\n    - containerPort: 7000\n",
        )
        .with_name("one");
        let manifests = [service, deployment, pod];
        let services: Vec<String> = service_forwards(&manifests, "default")
            .iter()
            .map(|s| {
                format!(
                    "{}/{} {} {:?}",
                    s.namespace,
                    s.resource(),
                    s.port,
                    s.local_port
                )
            })
            .collect();
        assert_eq!(
            services,
            [
                "default/service/web 80 Some(80)",
                "default/service/web 9000 Some(9000)"
            ]
        );
        let pods: Vec<String> = workload_forwards(&manifests, "default")
            .iter()
            .map(|s| format!("{}/{} {}", s.namespace, s.resource(), s.port))
            .collect();
        assert_eq!(
            pods,
            [
                "team/deployment/web 5005",
                "team/deployment/web 8080",
                "default/pod/one 7000"
            ]
        );
    }

    #[test]
    fn execute_requests_merge() {
        let mut intents = ExecuteRequest::default();
        assert!(!intents.wants(Phase::Build));
        intents.merge(ExecuteRequest {
            deploy: true,
            ..ExecuteRequest::default()
        });
        assert!(intents.wants(Phase::Deploy) && !intents.wants(Phase::Sync));
        intents.merge(ExecuteRequest::all());
        assert_eq!(intents, ExecuteRequest::all());
    }
}
