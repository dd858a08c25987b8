//! The build stage as the loop runs it: for each artifact, in dependency order, find its
//! dependency files, compute its cache key and tag, reuse a cached image when one exists, else
//! build it with the artifact's builder, and push when the target needs it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use skiff_build::cache::{self, ArtifactCache, CacheInputs, CachedImage};
use skiff_build::credentials::DockerConfig;
use skiff_build::custom::{CustomBuilder, ImageLookup};
use skiff_build::docker::{DockerBuilder, DockerEngine};
use skiff_build::dockerignore::DockerIgnore;
use skiff_build::oci::DaemonlessBuilder;
use skiff_build::tag::{self, TagInputs, TagPolicy};
use skiff_build::warm::{self, WarmBuilder, WarmOptions, WarmRebuild};
use skiff_build::{ArtifactSpec, BuildError, BuildRequest, Builder, BuilderSpec, dependencies};
use skiff_config::kubeconfig::KubeContext;
use skiff_types::change::ChangeSet;
use skiff_types::event::{Event, Level, Reporter};
use skiff_types::image::{BuiltImage, ImageRef};

use crate::schedule::ArtifactGraph;
use crate::settings::{BuildHooks, BuildSettings};
use crate::{RunnerError, schedule};
use skiff_hooks::HookRun;

/// How many of an artifact's newest image-ID tags stay in the engine besides those in use (a
/// rollback on the cluster can still find them).
const KEPT_IMAGE_ID_TAGS: usize = 3;

/// How a build run behaves; the CLI fills it from flags and the environment.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Environment variables for templates, taggers and commands.
    pub env: BTreeMap<String, String>,
    /// `--default-repo`.
    pub default_repo: Option<String>,
    /// `--push`: `None` defers to `build.local.push`, then to the target cluster.
    pub push: Option<bool>,
    /// `--cache-artifacts` (Skaffold's default: on).
    pub cache_artifacts: bool,
    /// Where the artifact cache persists; `None` keeps it in memory for this run.
    pub cache_file: Option<PathBuf>,
    /// `--build-concurrency`: overrides `build.local.concurrency` (0 = all at once).
    pub concurrency: Option<usize>,
    /// `-t/--tag`: one tag for every artifact, overriding the tag policy.
    pub tag: Option<String>,
    /// `-b/--build-image`: build only these images (and what they require).
    pub only: Vec<String>,
    /// `DOCKER_HOST`.
    pub docker_host: Option<String>,
    /// The Docker config file holding registry credentials.
    pub docker_config: Option<PathBuf>,
    /// The target cluster, when known: a local one shares the engine, so nothing is pushed.
    pub kube_context: Option<KubeContext>,
    /// `--docker-daemon-build`: build every Dockerfile with the Docker engine, even those
    /// skiff could assemble itself (no `RUN`).
    pub docker_daemon_build: bool,
    /// `dev`'s warm rebuilds (`--warm-builds`, on by default in `dev` only): after a clean
    /// Docker build, builder containers are kept, and artifacts with [`BuildOptions::changes`]
    /// are rebuilt through them ([`skiff_build::warm`]). `run`, `build` and `deploy` build clean.
    pub warm_builds: bool,
    /// The files that changed for each artifact to rebuild (absolute paths): what a warm
    /// rebuild replays. An artifact without an entry builds clean.
    pub changes: BTreeMap<String, ChangeSet>,
    /// The run id builder containers are labelled with.
    pub run_id: Option<String>,
    /// The directory skiff runs in (`SKAFFOLD_WORK_DIR` for hooks).
    pub work_dir: Option<PathBuf>,
}

/// Which builder builds an artifact, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuilderChoice {
    /// `daemonless`, `docker`, `ko`, `custom`, `plugged-in`, or the unsupported kind.
    pub builder: String,
    /// Why, in words (`Dockerfile has no RUN`, `RUN at Dockerfile:4`, `--docker-daemon-build`).
    pub reason: String,
}

impl BuilderChoice {
    /// Whether skiff assembles the image itself (no Docker build).
    pub fn is_daemonless(&self) -> bool {
        self.builder == "daemonless" || self.builder == "ko"
    }
}

impl std::fmt::Display for BuilderChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.builder, self.reason)
    }
}

/// The builder that builds `artifact`: `ko` artifacts are built with `go build` and assembled
/// by skiff; Docker artifacts whose Dockerfile (target stage and the stages it needs) has no
/// `RUN` are assembled by skiff ("daemonless") unless `docker_daemon_build`
/// (`--docker-daemon-build`) or the artifact's own opt-out (`build.local.useDockerCLI`) asks
/// for the Docker engine.
pub fn builder_choice(artifact: &ArtifactSpec, docker_daemon_build: bool) -> BuilderChoice {
    let choice = |builder: &str, reason: String| BuilderChoice {
        builder: builder.to_owned(),
        reason,
    };
    match &artifact.builder {
        BuilderSpec::Docker(docker) => {
            if docker_daemon_build {
                return choice("docker", "--docker-daemon-build".into());
            }
            if docker.daemon_build {
                return choice("docker", "build.local.useDockerCLI is set".into());
            }
            let args = artifact.dockerfile_args(docker);
            match skiff_build::oci::builder::daemonless_check(&artifact.context, docker, &args) {
                Ok(()) => choice("daemonless", "Dockerfile has no RUN".into()),
                Err(reason) => choice("docker", reason),
            }
        }
        BuilderSpec::Ko(_) => choice("ko", "go build, image assembled by skiff".into()),
        BuilderSpec::Custom(_) => choice("custom", "buildCommand".into()),
        other => choice(other.kind(), "not supported by skiff".into()),
    }
}

/// Runs builds; holds the builders to use, including any plugged in by an embedder.
#[derive(Default)]
pub struct BuildStage {
    builders: BTreeMap<String, Arc<dyn Builder>>,
    /// The daemonless builder, kept between runs (it caches base images and knows which
    /// layers the engine already holds), with the settings it was made for.
    daemonless: Mutex<Option<(DaemonlessKey, Arc<DaemonlessBuilder>)>>,
    /// The warm builder of `dev` (made on the first build that asks for warm rebuilds), and
    /// the reasons already given why an artifact rebuilt clean.
    warm: tokio::sync::Mutex<Option<Arc<WarmBuilder>>>,
    told_not_warm: Mutex<BTreeSet<(String, String)>>,
}

/// What a daemonless builder was made with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DaemonlessKey {
    docker_host: Option<String>,
    docker_config: Option<PathBuf>,
    insecure_registries: Vec<String>,
    engine: bool,
}

impl std::fmt::Debug for BuildStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildStage")
            .field("custom_builders", &self.builders.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What [`BuildStage::build`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutcome {
    /// The images, in configuration order.
    pub images: Vec<BuiltImage>,
    /// Whether they were pushed.
    pub pushed: bool,
    /// The artifacts rebuilt warm, each with where the time went
    /// (`1 file into stage builder, RUN go build 0.8 s, image 0.1 s (total 1.0 s)`).
    pub warm: BTreeMap<String, String>,
    /// Each built artifact's dependency files as the build listed them (absolute); `None` for a
    /// plugged-in builder. Saves a caller (the dev loop) listing them again.
    pub dependencies: BTreeMap<String, Option<Vec<PathBuf>>>,
}

impl BuildStage {
    /// A stage with skiff's own builders only.
    pub fn new() -> BuildStage {
        BuildStage::default()
    }

    /// Build the artifact `image` with `builder` instead of the one its configuration names.
    pub fn with_builder(
        mut self,
        image: impl Into<String>,
        builder: Arc<dyn Builder>,
    ) -> BuildStage {
        self.builders.insert(image.into(), builder);
        self
    }

    /// The files `artifact`'s image depends on, as absolute paths (its context joined with each
    /// dependency file), computed as a build computes them; `None` when a builder plugged in
    /// with [`BuildStage::with_builder`] builds it, since skiff cannot know that builder's
    /// inputs (a caller should then treat the whole context as input). Required artifacts are
    /// passed to Dockerfiles as build args naming their image.
    pub async fn artifact_dependencies(
        &self,
        artifact: &ArtifactSpec,
        env: &BTreeMap<String, String>,
    ) -> Result<Option<Vec<PathBuf>>, RunnerError> {
        let required: BTreeMap<String, String> = artifact
            .requires
            .iter()
            .map(|r| {
                (
                    r.alias.clone().unwrap_or_else(|| r.image.clone()),
                    r.image.clone(),
                )
            })
            .collect();
        let files = dependency_files(&self.builders, artifact, &required, env).await?;
        Ok(files.map(|files| {
            files
                .into_iter()
                .map(|f| artifact.context.join(f))
                .collect()
        }))
    }

    /// The warm builder, made on first use; `None` without an engine. Builder containers an
    /// earlier `dev` of these artifacts left (it was killed) are removed then.
    async fn warm_builder(
        &self,
        engine: &Arc<DockerEngine>,
        daemonless: Arc<DaemonlessBuilder>,
        artifacts: &[ArtifactSpec],
        options: &BuildOptions,
        reporter: &dyn Reporter,
    ) -> Arc<WarmBuilder> {
        let mut slot = self.warm.lock().await;
        if let Some(warm) = slot.as_ref() {
            return Arc::clone(warm);
        }
        let images: Vec<String> = artifacts.iter().map(|a| a.image.clone()).collect();
        match warm::remove_builder_containers(engine, &images).await {
            Ok(removed) if !removed.is_empty() => warn(
                reporter,
                format!(
                    "removed the builder containers an earlier run left behind: {}",
                    removed.join(", ")
                ),
            ),
            Ok(_) => {}
            Err(error) => warn(
                reporter,
                format!("could not look for builder containers an earlier run left: {error}"),
            ),
        }
        let warm = Arc::new(WarmBuilder::new(
            Arc::clone(engine),
            daemonless,
            WarmOptions {
                run_id: options.run_id.clone().unwrap_or_default(),
            },
        ));
        *slot = Some(Arc::clone(&warm));
        warm
    }

    /// Removes the builder containers of warm rebuilds (the end of `dev`); returns their names.
    pub async fn shutdown(&self) -> Vec<String> {
        let warm = self.warm.lock().await.take();
        match warm {
            Some(warm) => warm.shutdown().await,
            None => Vec::new(),
        }
    }

    /// The daemonless builder for these settings, reused while they stay the same.
    fn daemonless_builder(
        &self,
        engine: Option<Arc<DockerEngine>>,
        docker_config: Option<Arc<DockerConfig>>,
        options: &BuildOptions,
        insecure_registries: &[String],
    ) -> Result<Arc<DaemonlessBuilder>, RunnerError> {
        let key = DaemonlessKey {
            docker_host: options.docker_host.clone(),
            docker_config: options.docker_config.clone(),
            insecure_registries: insecure_registries.to_vec(),
            engine: engine.is_some(),
        };
        let mut slot = self.daemonless.lock().map_err(|_| poisoned())?;
        if let Some((existing, builder)) = slot.as_ref() {
            if *existing == key {
                return Ok(Arc::clone(builder));
            }
        }
        let builder = Arc::new(DaemonlessBuilder::new(
            engine,
            insecure_registries,
            docker_config,
        )?);
        *slot = Some((key, Arc::clone(&builder)));
        Ok(builder)
    }

    /// Build every artifact of `settings` (or those `options.only` selects).
    pub async fn build(
        &self,
        settings: &BuildSettings,
        options: &BuildOptions,
        reporter: &dyn Reporter,
    ) -> Result<BuildOutcome, RunnerError> {
        let selected = select(&settings.artifacts, &options.only)?;
        let artifacts: Vec<ArtifactSpec> = selected
            .iter()
            .map(|&i| settings.artifacts[i].clone())
            .collect();
        let policies: Vec<TagPolicy> = selected
            .iter()
            .map(|&i| settings.tag_policies[i].clone())
            .collect();
        let no_hooks = BuildHooks::default();
        let hooks: Vec<&BuildHooks> = selected
            .iter()
            .map(|&i| settings.artifact_hooks.get(i).unwrap_or(&no_hooks))
            .collect();
        let push = match options.push.or(settings.push) {
            Some(push) => push,
            None => match &options.kube_context {
                Some(context) => !context.is_local(),
                None => false,
            },
        };
        let choices: BTreeMap<String, BuilderChoice> = artifacts
            .iter()
            .filter(|a| !self.builders.contains_key(&a.image))
            .map(|a| {
                (
                    a.image.clone(),
                    builder_choice(a, options.docker_daemon_build),
                )
            })
            .collect();
        // Docker builds need the engine; so does loading a daemonless image when not pushing.
        let daemonless = |a: &ArtifactSpec| {
            choices
                .get(&a.image)
                .is_some_and(BuilderChoice::is_daemonless)
        };
        let needs_engine = choices.values().any(|c| c.builder == "docker")
            || (!push && artifacts.iter().any(daemonless))
            || (push && artifacts.iter().any(|a| !daemonless(a)));
        let wants_engine = needs_engine || choices.values().any(|c| c.is_daemonless());
        let engine = if needs_engine {
            Some(Arc::new(
                DockerEngine::connect(options.docker_host.as_deref()).await?,
            ))
        } else if wants_engine
            || !push
            || artifacts
                .iter()
                .any(|a| matches!(a.builder, BuilderSpec::Custom(_)))
        {
            // The custom builder only uses the engine to check the image exists afterwards;
            // daemonless pushes use it for local base images and the cache when it is there;
            // an image that is not pushed gets its image-ID tag there, whoever built it.
            DockerEngine::connect(options.docker_host.as_deref())
                .await
                .ok()
                .map(Arc::new)
        } else {
            None
        };
        let docker_config = match &options.docker_config {
            Some(path) => Some(Arc::new(DockerConfig::load(path)?)),
            None => None,
        };
        let cache = match (&options.cache_file, options.cache_artifacts) {
            (Some(path), true) => match ArtifactCache::open(path) {
                Ok(cache) => {
                    for warning in cache.warnings() {
                        warn(reporter, warning.clone());
                    }
                    Some(cache)
                }
                // The cache only saves time: an unreadable one means building without it.
                Err(error) => {
                    warn(
                        reporter,
                        format!("the build cache is not used: {error}; building without it"),
                    );
                    None
                }
            },
            _ => None,
        };
        let warm_builds = options.warm_builds && choices.values().any(|c| c.builder == "docker");
        let daemonless = if choices.values().any(BuilderChoice::is_daemonless) || warm_builds {
            Some(self.daemonless_builder(
                engine.clone(),
                docker_config.clone(),
                options,
                &settings.insecure_registries,
            )?)
        } else {
            None
        };
        let warm = match (&engine, &daemonless, warm_builds) {
            (Some(engine), Some(daemonless), true) => Some(
                self.warm_builder(
                    engine,
                    Arc::clone(daemonless),
                    &settings.artifacts,
                    options,
                    reporter,
                )
                .await,
            ),
            _ => None,
        };
        let shared = Shared {
            options,
            push,
            engine,
            daemonless,
            choices,
            docker_config,
            cache: Mutex::new(cache),
            keys: Mutex::new(BTreeMap::new()),
            dependencies: Mutex::new(BTreeMap::new()),
            use_buildkit: settings.use_buildkit,
            builders: &self.builders,
            warm,
            warm_summaries: Mutex::new(BTreeMap::new()),
            told_not_warm: &self.told_not_warm,
        };
        let concurrency = match options.concurrency.unwrap_or(settings.concurrency) {
            0 => artifacts.len().max(1),
            n => n,
        };
        let phase_env = phase_hook_env(options);
        let phase_hooks = |when: &'static str| {
            let (hooks, phase) = match when {
                "before" => (&settings.hooks.before, "pre-build"),
                _ => (&settings.hooks.after, "post-build"),
            };
            let env = &phase_env;
            async move {
                skiff_hooks::run_all(hooks, &HookRun::new(phase, "build", env), reporter)
                    .await
                    .map_err(|source| RunnerError::Hook {
                        field: format!("build.hooks.{when}"),
                        source,
                    })
            }
        };
        phase_hooks("before").await?;
        let outcome = schedule::run(&artifacts, concurrency, |i, required| {
            shared.build_one(&artifacts[i], &policies[i], hooks[i], required, reporter)
        })
        .await?;
        if options.cache_artifacts {
            let cache = shared.cache.lock().map(|mut c| c.take()).unwrap_or(None);
            if let Some(Err(error)) = cache.map(|c| c.save()) {
                warn(
                    reporter,
                    format!(
                        "the build cache was not saved: {error} — builds still work, but their \
                         images are not remembered for the next run; the file on disk is left as \
                         it was"
                    ),
                );
            }
        }
        if let Some(error) = outcome.error {
            return Err(error);
        }
        phase_hooks("after").await?;
        Ok(BuildOutcome {
            images: outcome.built.into_values().collect(),
            pushed: push,
            warm: shared
                .warm_summaries
                .lock()
                .map(|mut w| std::mem::take(&mut *w))
                .unwrap_or_default(),
            dependencies: shared
                .dependencies
                .lock()
                .map(|mut d| std::mem::take(&mut *d))
                .unwrap_or_default(),
        })
    }
}

/// Removes the builder containers warm rebuilds of `settings`' artifacts left on the engine at
/// `docker_host` (a `dev` that was killed), reporting each; part of `skiff delete`. Nothing to
/// do, and no error, when no Docker artifact is configured or no engine answers.
pub async fn delete_builder_containers(
    settings: &BuildSettings,
    docker_host: Option<&str>,
    reporter: &dyn Reporter,
) -> Result<Vec<String>, RunnerError> {
    if !settings
        .artifacts
        .iter()
        .any(|a| matches!(a.builder, BuilderSpec::Docker(_)))
    {
        return Ok(Vec::new());
    }
    let Ok(engine) = DockerEngine::connect(docker_host).await else {
        return Ok(Vec::new());
    };
    let images: Vec<String> = settings.artifacts.iter().map(|a| a.image.clone()).collect();
    let removed = warm::remove_builder_containers(&engine, &images).await?;
    for name in &removed {
        reporter.report(Event::Deployed {
            object: name.clone(),
            action: "deleted".to_owned(),
        });
    }
    Ok(removed)
}

/// The artifacts to build: those named (all when none are), plus what they require.
fn select(artifacts: &[ArtifactSpec], only: &[String]) -> Result<Vec<usize>, RunnerError> {
    if only.is_empty() {
        return Ok((0..artifacts.len()).collect());
    }
    let graph = ArtifactGraph::new(artifacts);
    let mut roots = Vec::new();
    for name in only {
        let i = graph.position(name).ok_or_else(|| RunnerError::Settings {
            message: format!(
                "--build-image {name}: no artifact builds that image; artifacts: {}",
                artifacts
                    .iter()
                    .map(|a| a.image.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
        roots.push(i);
    }
    Ok(graph.closure(roots).into_iter().collect())
}

/// The reference `artifact` is tagged with: `--tag` when given, else its tag policy's tag
/// (`input_digest`: its inputs' digest, for the policies that use it), with `--default-repo`
/// applied. The tagger's warnings go to `reporter`.
pub(crate) async fn tag_reference(
    artifact: &ArtifactSpec,
    policy: &TagPolicy,
    options: &BuildOptions,
    input_digest: Option<&str>,
    reporter: &dyn Reporter,
) -> Result<ImageRef, RunnerError> {
    let tag = match &options.tag {
        Some(tag) => tag.clone(),
        None => {
            let outcome = tag::tag(
                policy,
                &TagInputs {
                    image_name: &artifact.image,
                    context: &artifact.context,
                    env: &options.env,
                    input_digest,
                    now: chrono::Utc::now(),
                },
            )
            .await?;
            for warning in outcome.warnings {
                warn(reporter, format!("{}: {warning}", artifact.image));
            }
            outcome.tag
        }
    };
    Ok(tag::tagged(
        &tag::apply_default_repo(&artifact.image, options.default_repo.as_deref()),
        &tag,
    )?)
}

/// What every build hook sees: the run's environment and Skaffold's static variables.
fn phase_hook_env(options: &BuildOptions) -> BTreeMap<String, String> {
    let mut env = options.env.clone();
    env.extend(skiff_hooks::static_variables(
        options.default_repo.as_deref(),
        None,
        options.work_dir.as_deref(),
    ));
    env
}

/// What a build hook of `artifact` sees: [`phase_hook_env`] and the build's variables
/// (`SKAFFOLD_IMAGE` = `reference`, …).
fn hook_env(
    options: &BuildOptions,
    reference: &ImageRef,
    push: bool,
    artifact: &ArtifactSpec,
) -> BTreeMap<String, String> {
    let mut env = phase_hook_env(options);
    env.extend(skiff_hooks::build_variables(
        reference,
        push,
        &artifact.context,
    ));
    env
}

fn warn(reporter: &dyn Reporter, text: String) {
    reporter.report(Event::Message {
        source: "build",
        level: Level::Warning,
        text,
    });
}

struct Shared<'a> {
    options: &'a BuildOptions,
    push: bool,
    engine: Option<Arc<DockerEngine>>,
    daemonless: Option<Arc<DaemonlessBuilder>>,
    choices: BTreeMap<String, BuilderChoice>,
    docker_config: Option<Arc<DockerConfig>>,
    cache: Mutex<Option<ArtifactCache>>,
    keys: Mutex<BTreeMap<String, String>>,
    dependencies: Mutex<BTreeMap<String, Option<Vec<PathBuf>>>>,
    use_buildkit: bool,
    builders: &'a BTreeMap<String, Arc<dyn Builder>>,
    warm: Option<Arc<WarmBuilder>>,
    warm_summaries: Mutex<BTreeMap<String, String>>,
    told_not_warm: &'a Mutex<BTreeSet<(String, String)>>,
}

impl Shared<'_> {
    fn builder_for(&self, artifact: &ArtifactSpec) -> Result<Arc<dyn Builder>, RunnerError> {
        if let Some(builder) = self.builders.get(&artifact.image) {
            return Ok(Arc::clone(builder));
        }
        let daemonless = self
            .choices
            .get(&artifact.image)
            .is_some_and(BuilderChoice::is_daemonless);
        if daemonless {
            let builder = self
                .daemonless
                .clone()
                .ok_or_else(|| RunnerError::Settings {
                    message: "internal error: the daemonless builder was not set up".into(),
                })?;
            return Ok(builder);
        }
        match &artifact.builder {
            BuilderSpec::Docker(_) => {
                let engine = self.engine.clone().ok_or_else(|| RunnerError::Settings {
                    message: "the Docker engine is needed but was not connected".into(),
                })?;
                let mut builder = DockerBuilder::new(engine, self.use_buildkit);
                if let Some(config) = &self.docker_config {
                    builder = builder.with_docker_config(Arc::clone(config));
                }
                Ok(Arc::new(builder))
            }
            BuilderSpec::Custom(_) => {
                let lookup = self.engine.clone().map(|e| e as Arc<dyn ImageLookup>);
                Ok(Arc::new(CustomBuilder::new(lookup)))
            }
            other => Err(BuildError::Unsupported {
                image: artifact.image.clone(),
                kind: other.kind().to_owned(),
            }
            .into()),
        }
    }

    /// The files the artifact's image depends on, relative to its context; `None` for a
    /// plugged-in builder, whose inputs skiff cannot know.
    async fn dependency_files(
        &self,
        artifact: &ArtifactSpec,
        required: &BTreeMap<String, String>,
    ) -> Result<Option<Vec<PathBuf>>, RunnerError> {
        dependency_files(self.builders, artifact, required, &self.options.env).await
    }

    async fn build_one(
        &self,
        artifact: &ArtifactSpec,
        policy: &TagPolicy,
        hooks: &BuildHooks,
        required: BTreeMap<String, String>,
        reporter: &dyn Reporter,
    ) -> Result<BuiltImage, RunnerError> {
        let started = Instant::now();
        let image = artifact.image.clone();
        let builder = self.builder_for(artifact)?;
        let files = self.dependency_files(artifact, &required).await?;
        if let Ok(mut dependencies) = self.dependencies.lock() {
            dependencies.insert(
                image.clone(),
                files
                    .as_ref()
                    .map(|f| f.iter().map(|f| artifact.context.join(f)).collect()),
            );
        }
        let needs_key = self.options.cache_artifacts || matches!(policy, TagPolicy::InputDigest);
        let key = match (&files, needs_key) {
            (Some(files), true) => {
                let required_keys = {
                    let keys = self.keys.lock().map_err(|_| poisoned())?;
                    artifact
                        .requires
                        .iter()
                        .filter_map(|r| keys.get(&r.image).cloned())
                        .collect()
                };
                let key =
                    artifact_key(artifact, files.clone(), required_keys, &self.options.env).await?;
                self.keys
                    .lock()
                    .map_err(|_| poisoned())?
                    .insert(image.clone(), key.clone());
                Some(key)
            }
            _ => None,
        };
        let reference =
            tag_reference(artifact, policy, self.options, key.as_deref(), reporter).await?;

        if let Some(key) = key.as_deref().filter(|_| self.options.cache_artifacts) {
            if let Some(built) = self
                .reuse_cached(key, artifact, &reference, reporter)
                .await?
            {
                let built = self.deployable(built, reporter).await?;
                reporter.report(Event::BuildFinished {
                    image: image.clone(),
                    reference: built.reference.to_string(),
                    cache_hit: true,
                    duration: started.elapsed(),
                });
                return Ok(built);
            }
        }

        // As in Skaffold, a cache hit runs no hooks: nothing is built.
        let env = hook_env(self.options, &reference, self.push, artifact);
        let field = |when: &str| format!("build.artifacts[{image}].hooks.{when}");
        skiff_hooks::run_all(
            &hooks.before,
            &HookRun::new("pre-build", "build", &env),
            reporter,
        )
        .await
        .map_err(|source| RunnerError::Hook {
            field: field("before"),
            source,
        })?;
        let built = self
            .build_fresh(
                artifact, &builder, reference, required, key, started, reporter,
            )
            .await?;
        skiff_hooks::run_all(
            &hooks.after,
            &HookRun::new("post-build", "build", &env),
            reporter,
        )
        .await
        .map_err(|source| RunnerError::Hook {
            field: field("after"),
            source,
        })?;
        Ok(built)
    }

    /// Builds `artifact` as `reference`: warm when it can, else with its builder.
    #[allow(clippy::too_many_arguments)]
    async fn build_fresh(
        &self,
        artifact: &ArtifactSpec,
        builder: &Arc<dyn Builder>,
        reference: ImageRef,
        required: BTreeMap<String, String>,
        key: Option<String>,
        started: Instant,
        reporter: &dyn Reporter,
    ) -> Result<BuiltImage, RunnerError> {
        let image = artifact.image.clone();
        let engine_build = self
            .choices
            .get(&image)
            .is_some_and(|choice| choice.builder == "docker");
        if let (Some(warm), Some(changes), true) =
            (&self.warm, self.options.changes.get(&image), engine_build)
        {
            let request = BuildRequest {
                artifact,
                tag: reference.clone(),
                push: self.push,
                required: required.clone(),
                env: &self.options.env,
            };
            reporter.report(Event::BuildStarted {
                image: image.clone(),
                builder: "warm".to_owned(),
            });
            match warm.rebuild(&request, changes, reporter).await? {
                WarmRebuild::Rebuilt {
                    image: built,
                    summary,
                } => {
                    let built = self.deployable(built, reporter).await?;
                    if let Ok(mut summaries) = self.warm_summaries.lock() {
                        summaries.insert(image.clone(), summary);
                    }
                    reporter.report(Event::BuildFinished {
                        image,
                        reference: built.reference.to_string(),
                        cache_hit: false,
                        duration: started.elapsed(),
                    });
                    return Ok(built);
                }
                WarmRebuild::NotWarm { reason } => {
                    let first_time = self
                        .told_not_warm
                        .lock()
                        .map(|mut told| told.insert((image.clone(), reason.clone())))
                        .unwrap_or(true);
                    if first_time {
                        reporter.report(Event::Message {
                            source: "build",
                            level: Level::Info,
                            text: format!("clean rebuild of {image}: {reason}"),
                        });
                    }
                }
                _ => {}
            }
        }
        let builder_name = match self.choices.get(&image) {
            Some(choice) if choice.builder == "daemonless" => "daemonless".to_owned(),
            _ => artifact.builder.kind().to_owned(),
        };
        reporter.report(Event::BuildStarted {
            image: image.clone(),
            builder: builder_name,
        });
        let request = BuildRequest {
            artifact,
            tag: reference,
            push: self.push,
            required,
            env: &self.options.env,
        };
        let built = builder.build(&request, reporter).await?;
        if let (Some(warm), true) = (&self.warm, engine_build) {
            // Builder containers start while the image deploys; a rebuild waits for them.
            let _preparing = warm
                .prepare_in_background(
                    artifact.clone(),
                    request.tag.clone(),
                    request.required.clone(),
                    self.options.env.clone(),
                )
                .await;
        }
        if let Some(key) = key.filter(|_| self.options.cache_artifacts) {
            if let Ok(mut cache) = self.cache.lock() {
                if let Some(cache) = cache.as_mut() {
                    cache.record(
                        key,
                        CachedImage {
                            image_name: image.clone(),
                            reference: built.reference.to_string(),
                            image_id: built.image_id.clone(),
                            pushed: self.push,
                        },
                    );
                }
            }
        }
        let built = self.deployable(built, reporter).await?;
        reporter.report(Event::BuildFinished {
            image,
            reference: built.reference.to_string(),
            cache_hit: false,
            duration: started.elapsed(),
        });
        Ok(built)
    }

    /// The reference to deploy `built` as. A pushed image is already `tag@digest`. One that
    /// stays in the local engine is deployed as `name:<image ID>` (also tagged so in the
    /// engine), as Skaffold does: the tagger's tag may name another content after a rebuild
    /// (`gitCommit` on a dirty tree, `latest` outside git, `sha256`), and a reference that did
    /// not change rolls nothing out, while `latest` makes Kubernetes pull. Image-ID tags of
    /// this artifact that no container uses are pruned, keeping the newest few.
    async fn deployable(
        &self,
        built: BuiltImage,
        reporter: &dyn Reporter,
    ) -> Result<BuiltImage, RunnerError> {
        let (Some(engine), Some(image_id), false) = (&self.engine, &built.image_id, self.push)
        else {
            return Ok(built);
        };
        if built.reference.digest().is_some() {
            return Ok(built);
        }
        let reference = engine.tag_with_image_id(&built.reference, image_id).await?;
        match engine
            .prune_image_id_tags(
                reference.repository(),
                &[image_id.as_str()],
                KEPT_IMAGE_ID_TAGS,
            )
            .await
        {
            Ok(removed) => {
                for removed in removed {
                    reporter.report(Event::Message {
                        source: "build",
                        level: Level::Debug,
                        text: format!("removed the unused image tag {removed}"),
                    });
                }
            }
            // Pruning only saves disk: the build stands.
            Err(error) => warn(
                reporter,
                format!(
                    "could not remove old image tags of {}: {error}",
                    built.image_name
                ),
            ),
        }
        Ok(BuiltImage { reference, ..built })
    }

    /// The cached image for `key`, re-tagged (and pushed) as `reference`, when it still exists.
    async fn reuse_cached(
        &self,
        key: &str,
        artifact: &ArtifactSpec,
        reference: &skiff_types::image::ImageRef,
        reporter: &dyn Reporter,
    ) -> Result<Option<BuiltImage>, RunnerError> {
        let hit = {
            let cache = self.cache.lock().map_err(|_| poisoned())?;
            cache
                .as_ref()
                .and_then(|c| c.lookup(key, &artifact.image).cloned())
        };
        let (Some(hit), Some(engine)) = (hit, self.engine.as_ref()) else {
            return Ok(None);
        };
        let local = engine
            .image_id(hit.image_id.as_deref().unwrap_or(&hit.reference))
            .await?;
        let Some(image_id) = local else {
            return Ok(None);
        };
        let same_name_and_tag =
            hit.reference.split('@').next() == Some(reference.to_string().as_str());
        // The engine may hold the image without this name even when the cache recorded it:
        // pulled by digest (a kubelet on this engine pulling what the daemonless builder
        // pushed), or untagged since. Pushing needs the name.
        if !same_name_and_tag
            || engine.image_id(reference).await?.as_deref() != Some(image_id.as_str())
        {
            engine.tag(&image_id, reference).await?;
        }
        let reference = if self.push {
            if hit.pushed
                && same_name_and_tag
                && engine.remote_digest(&hit.reference).await.is_some()
            {
                hit.reference
                    .parse()
                    .map_err(|e| malformed(&hit.reference, e))?
            } else {
                let credentials = match (&self.docker_config, reference.registry()) {
                    (Some(config), Some(registry)) => config.credentials_for(registry)?,
                    _ => None,
                };
                let digest = engine
                    .push(reference, credentials.as_ref(), reporter, &artifact.image)
                    .await?;
                let pushed = format!("{reference}@{digest}");
                pushed.parse().map_err(|e| malformed(&pushed, e))?
            }
        } else {
            reference.clone()
        };
        if let Ok(mut cache) = self.cache.lock() {
            if let Some(cache) = cache.as_mut() {
                cache.record(
                    key,
                    CachedImage {
                        image_name: artifact.image.clone(),
                        reference: reference.to_string(),
                        image_id: Some(image_id.clone()),
                        pushed: self.push,
                    },
                );
            }
        }
        Ok(Some(BuiltImage {
            image_name: artifact.image.clone(),
            reference,
            image_id: Some(image_id),
        }))
    }
}

/// Build args as they enter the cache key: each template's source with the values of the
/// environment variables it reads (`IMAGE_*` values follow from the key itself).
fn key_args(artifact: &ArtifactSpec, env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let BuilderSpec::Docker(docker) = &artifact.builder else {
        return BTreeMap::new();
    };
    docker
        .build_args
        .iter()
        .map(|(name, template)| {
            let value = match template {
                Some(template) => {
                    let mut value = template.source().to_owned();
                    for variable in template.variables() {
                        if let Some(v) = env.get(variable) {
                            value.push_str(&format!("\u{0}{variable}={v}"));
                        }
                    }
                    value
                }
                None => format!("\u{0}env={}", env.get(name).map_or("", String::as_str)),
            };
            (name.clone(), value)
        })
        .collect()
}

/// The artifact's cache key (also its `inputDigest` tag): builder options, build args as
/// [`key_args`] encodes them, its dependency `files` (relative to its context), and the keys
/// of the artifacts it requires, in `requires` order.
pub(crate) async fn artifact_key(
    artifact: &ArtifactSpec,
    files: Vec<PathBuf>,
    required_keys: Vec<String>,
    env: &BTreeMap<String, String>,
) -> Result<String, RunnerError> {
    Ok(cache::cache_key_async(CacheInputs {
        builder_fingerprint: cache::builder_fingerprint(artifact),
        build_args: key_args(artifact, env),
        context: artifact.context.clone(),
        files,
        required_keys,
    })
    .await?)
}

/// The files the artifact's image depends on, relative to its context; `None` for a plugged-in
/// builder, whose inputs skiff cannot know.
pub(crate) async fn dependency_files(
    builders: &BTreeMap<String, Arc<dyn Builder>>,
    artifact: &ArtifactSpec,
    required: &BTreeMap<String, String>,
    env: &BTreeMap<String, String>,
) -> Result<Option<Vec<PathBuf>>, RunnerError> {
    if builders.contains_key(&artifact.image) {
        return Ok(None);
    }
    let dependencies = match &artifact.builder {
        BuilderSpec::Docker(docker) => {
            let ignore =
                DockerIgnore::for_artifact(&artifact.context, Path::new(&docker.dockerfile))?;
            // Required artifacts reach the Dockerfile as build args (`ARG BASE` / `FROM $BASE`).
            let args: BTreeMap<String, Option<String>> = required
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .chain(
                    docker
                        .build_args
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_ref().map(|t| t.source().to_owned()))),
                )
                .collect();
            dependencies::dockerfile_dependencies(
                &artifact.context,
                &docker.dockerfile,
                &args,
                docker.target.as_deref(),
                &ignore,
            )?
        }
        BuilderSpec::Custom(custom) => {
            dependencies::custom_dependencies(
                &artifact.image,
                &artifact.context,
                &custom.dependencies,
                env,
            )
            .await?
        }
        BuilderSpec::Ko(ko) => {
            let deps = skiff_build::artifact::CustomDependencies {
                paths: ko.dependency_paths.clone(),
                ignore: ko.dependency_ignore.clone(),
                ..Default::default()
            };
            dependencies::custom_dependencies(&artifact.image, &artifact.context, &deps, env)
                .await?
        }
        _ => return Ok(None),
    };
    Ok(Some(dependencies.files.into_iter().collect()))
}

fn malformed(reference: &str, error: skiff_types::image::ImageRefError) -> RunnerError {
    RunnerError::Settings {
        message: format!("image reference `{reference}` is malformed: {error}"),
    }
}

fn poisoned() -> RunnerError {
    RunnerError::Settings {
        message: "internal error: a build task panicked".into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use skiff_build::artifact::{DockerSpec, KoSpec};

    fn docker(dir: &Path, dockerfile: &str, spec: DockerSpec) -> ArtifactSpec {
        std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
        ArtifactSpec {
            image: "app".into(),
            context: dir.to_path_buf(),
            builder: BuilderSpec::Docker(DockerSpec {
                dockerfile: "Dockerfile".into(),
                ..spec
            }),
            requires: vec![],
            platforms: vec![],
        }
    }

    #[test]
    fn dockerfiles_without_run_are_daemonless_unless_opted_out() {
        let dir = tempfile::tempdir().unwrap();
        let plain = docker(
            dir.path(),
            "FROM scratch\nCOPY a /a\nCMD [\"/a\"]\n",
            DockerSpec::default(),
        );
        let choice = builder_choice(&plain, false);
        assert!(choice.is_daemonless());
        assert_eq!(choice.to_string(), "daemonless (Dockerfile has no RUN)");
        assert_eq!(
            builder_choice(&plain, true).to_string(),
            "docker (--docker-daemon-build)"
        );
        let opted_out = docker(
            dir.path(),
            "FROM scratch\nCOPY a /a\n",
            DockerSpec {
                daemon_build: true,
                ..DockerSpec::default()
            },
        );
        assert_eq!(
            builder_choice(&opted_out, false).to_string(),
            "docker (build.local.useDockerCLI is set)"
        );
        let runs = docker(
            dir.path(),
            "FROM scratch\nCOPY a /a\n\n\nRUN [\"/a\"]\n",
            DockerSpec::default(),
        );
        let choice = builder_choice(&runs, false);
        assert!(!choice.is_daemonless());
        assert_eq!(choice.to_string(), "docker (RUN at Dockerfile:5)");
        let ko = ArtifactSpec {
            builder: BuilderSpec::Ko(KoSpec::default()),
            ..plain
        };
        assert_eq!(builder_choice(&ko, true).builder, "ko");
    }
}
