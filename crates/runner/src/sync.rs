//! The sync stage as the dev loop runs it: each artifact's `sync` rules as typed
//! [`SyncRules`], the decision for a change (sync or rebuild, and why), and the sync itself
//! through the transport of the deploy session (local Docker containers or Kubernetes pods).
//!
//! `sync.infer` uses the Dockerfile's final-stage copy map
//! ([`skiff_build::dependencies::sync_map`]); it is computed on first use, kept per artifact
//! and computed again when the Dockerfile or `.dockerignore` changes or a changed file is not in
//! it (a new file in a copied directory). An artifact that another artifact requires is always
//! rebuilt: its image is an input of the other build.
//!
//! A container that cannot be synced into (no `tar` on Kubernetes, no `rm` for a deletion, no
//! container running the image) turns into [`SyncOutcome::Rebuild`]; the stage warns once per
//! artifact and from then on plans a rebuild for it without trying again.
//!
//! ```
//! use std::path::PathBuf;
//! use skiff_runner::sync::{ArtifactSync, SyncSettings, SyncStage};
//! use skiff_sync::rules::{Decision, ManualRule, SyncRules};
//!
//! let settings = SyncSettings {
//!     artifacts: vec![ArtifactSync {
//!         image: "web".into(),
//!         context: PathBuf::from("/src/web"),
//!         rules: SyncRules {
//!             manual: vec![ManualRule { src: "www/**".into(), dest: "/srv/www".into(), strip: Some("www/".into()) }],
//!             ..SyncRules::default()
//!         },
//!         infer_from: None,
//!         required_by: vec![],
//!     }],
//! };
//! let stage = SyncStage::new(settings, "run-1");
//! let decision = stage.plan("web", &[PathBuf::from("/src/web/www/index.html")], &[]);
//! assert!(matches!(decision, Decision::Sync(plan) if plan.copy[0].destination == "/srv/www/index.html"));
//! let decision = stage.plan("web", &[PathBuf::from("/src/web/main.c")], &[]);
//! assert!(matches!(decision, Decision::Rebuild { reason } if reason == "main.c matches no sync rule"));
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use skiff_build::artifact::BuilderSpec;
use skiff_build::dependencies;
use skiff_build::dockerignore::DockerIgnore;
use skiff_config::EffectiveConfig;
use skiff_config::schema;
use skiff_deploy::RUN_ID_LABEL;
use skiff_sync::docker::DockerSyncer;
use skiff_sync::kubernetes::KubernetesSyncer;
use skiff_sync::rules::{Decision, InferRules, InferredCopy, ManualRule, SyncHook, SyncHooks};
use skiff_sync::{SyncError, SyncPlan, SyncReport, SyncRules, SyncTarget, Syncer};
use skiff_types::event::{Event, Level, Reporter};

use crate::RunnerError;
use crate::deploy::DeploySession;
use crate::schedule::ArtifactGraph;
use crate::settings::{BuildSettings, build_settings};

/// Where `sync.infer` reads the Dockerfile's copy map from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferSource {
    /// The Dockerfile, relative to the context.
    pub dockerfile: String,
    /// Build args for `ARG` substitution (required artifacts' aliases hold their image names).
    pub build_args: BTreeMap<String, Option<String>>,
    /// `docker.target`.
    pub target: Option<String>,
}

/// One artifact's sync settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactSync {
    /// The artifact's image name.
    pub image: String,
    /// Its context (absolute when the configuration's path is).
    pub context: PathBuf,
    /// Its rules; `infer.copies` is filled in by [`SyncStage`] from `infer_from`.
    pub rules: SyncRules,
    /// Where the infer map comes from (Docker artifacts, custom artifacts with a Dockerfile
    /// dependency); `None` makes every inferred change a rebuild.
    pub infer_from: Option<InferSource>,
    /// Artifacts requiring this one: when not empty, changes rebuild.
    pub required_by: Vec<String>,
}

/// The sync settings of every artifact that has `sync` rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncSettings {
    /// In configuration order.
    pub artifacts: Vec<ArtifactSync>,
}

impl SyncSettings {
    /// The artifact `image`'s settings, if it has sync rules.
    pub fn artifact(&self, image: &str) -> Option<&ArtifactSync> {
        self.artifacts.iter().find(|a| a.image == image)
    }
}

/// `build.artifacts[].sync` as typed rules: `sync: {}` (nothing listed) is `infer: ["**/*"]`.
pub fn sync_rules(sync: &schema::Sync) -> SyncRules {
    let manual: Vec<ManualRule> = sync
        .manual
        .iter()
        .flatten()
        .map(|r| ManualRule {
            src: r.src.clone(),
            dest: r.dest.clone(),
            strip: r.strip.clone(),
        })
        .collect();
    let auto = sync.auto.unwrap_or(false);
    let globs: Vec<String> = sync.infer.clone().unwrap_or_default();
    let infer = if !globs.is_empty() {
        Some(globs)
    } else if manual.is_empty() && !auto {
        Some(vec!["**/*".to_owned()])
    } else {
        None
    };
    let hook = |item: &schema::SyncHookItem| -> Vec<SyncHook> {
        let mut hooks = Vec::new();
        if let Some(host) = &item.host {
            hooks.push(SyncHook::Host(skiff_hooks::HostHook {
                command: host.command.clone(),
                os: host.os.clone().unwrap_or_default(),
                dir: host.dir.as_ref().map(PathBuf::from),
            }));
        }
        if let Some(container) = &item.container {
            hooks.push(SyncHook::Container {
                command: container.command.clone(),
            });
        }
        hooks
    };
    let hooks = sync.hooks.as_ref();
    SyncRules {
        manual,
        infer: infer.map(|globs| InferRules {
            globs,
            copies: Vec::new(),
        }),
        auto,
        hooks: SyncHooks {
            before: hooks
                .and_then(|h| h.before.as_ref())
                .into_iter()
                .flatten()
                .flat_map(hook)
                .collect(),
            after: hooks
                .and_then(|h| h.after.as_ref())
                .into_iter()
                .flatten()
                .flat_map(hook)
                .collect(),
        },
    }
}

/// The sync settings of `configs`: every artifact with a `sync` section.
pub fn sync_settings(configs: &[EffectiveConfig]) -> Result<SyncSettings, RunnerError> {
    Ok(sync_settings_of(configs, &build_settings(configs)?))
}

/// The sync settings of `configs` whose build settings are `build`.
pub(crate) fn sync_settings_of(configs: &[EffectiveConfig], build: &BuildSettings) -> SyncSettings {
    let syncs: Vec<Option<&schema::Sync>> = configs
        .iter()
        .filter_map(|c| c.config.build.as_ref())
        .flat_map(|b| b.artifacts.iter().flatten())
        .map(|a| a.sync.as_ref())
        .collect();
    let mut settings = SyncSettings::default();
    for (spec, sync) in build.artifacts.iter().zip(syncs) {
        let Some(sync) = sync else {
            continue;
        };
        let infer_from = match &spec.builder {
            BuilderSpec::Docker(docker) => Some(InferSource {
                dockerfile: docker.dockerfile.clone(),
                build_args: spec.dockerfile_args(docker),
                target: docker.target.clone(),
            }),
            BuilderSpec::Custom(custom) => {
                custom
                    .dependencies
                    .dockerfile
                    .as_ref()
                    .map(|dockerfile| InferSource {
                        dockerfile: dockerfile.path.clone(),
                        build_args: dockerfile.build_args.clone(),
                        target: None,
                    })
            }
            _ => None,
        };
        let required_by = ArtifactGraph::new(&build.artifacts).required_by(&spec.image);
        settings.artifacts.push(ArtifactSync {
            image: spec.image.clone(),
            context: spec.context.clone(),
            rules: sync_rules(sync),
            infer_from,
            required_by,
        });
    }
    settings
}

/// The infer map of `artifact`, read from its Dockerfile now.
pub fn infer_map(artifact: &ArtifactSync) -> Result<Vec<InferredCopy>, RunnerError> {
    let Some(source) = &artifact.infer_from else {
        return Ok(Vec::new());
    };
    let ignore = DockerIgnore::for_artifact(&artifact.context, Path::new(&source.dockerfile))?;
    let map = dependencies::sync_map(
        &artifact.context,
        &source.dockerfile,
        &source.build_args,
        source.target.as_deref(),
        &ignore,
    )?;
    Ok(map
        .into_iter()
        .map(|m| InferredCopy {
            source: m.source,
            dest: m.dest,
        })
        .collect())
}

/// What [`SyncStage::sync`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The files are in every container.
    Synced(SyncReport),
    /// The containers cannot take the change: rebuild. The reason was reported (as a
    /// warning) the first time for this artifact.
    Rebuild {
        /// Why.
        reason: String,
    },
}

/// The sync stage of one run. See the [module docs](self).
pub struct SyncStage {
    settings: SyncSettings,
    run_id: String,
    /// Image name → its infer map.
    maps: Mutex<HashMap<String, Vec<InferredCopy>>>,
    /// Image name → why its containers cannot be synced into.
    unsyncable: Mutex<BTreeMap<String, String>>,
    /// Image name → why files cannot be deleted in its containers.
    undeletable: Mutex<BTreeMap<String, String>>,
    docker: tokio::sync::OnceCell<DockerSyncer>,
    kubernetes: tokio::sync::OnceCell<KubernetesSyncer>,
    /// The local Docker engine (`DOCKER_HOST`; `None`: the default socket), through which pods
    /// of a cluster running on it are synced without exec.
    docker_host: Option<String>,
    /// A syncer plugged in instead of skiff's own (an embedder's, or a test's fake).
    plugged: Option<Arc<dyn Syncer>>,
    /// The environment host hooks run with.
    env: BTreeMap<String, String>,
}

impl std::fmt::Debug for SyncStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncStage")
            .field("settings", &self.settings)
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

impl SyncStage {
    /// The stage for run `run_id` (the `skaffold.dev/run-id` label of what it deployed).
    pub fn new(settings: SyncSettings, run_id: impl Into<String>) -> SyncStage {
        SyncStage {
            settings,
            run_id: run_id.into(),
            maps: Mutex::new(HashMap::new()),
            unsyncable: Mutex::new(BTreeMap::new()),
            undeletable: Mutex::new(BTreeMap::new()),
            docker: tokio::sync::OnceCell::new(),
            kubernetes: tokio::sync::OnceCell::new(),
            docker_host: None,
            plugged: None,
            env: BTreeMap::new(),
        }
    }

    /// Syncs with `syncer` into every target instead of skiff's Docker and Kubernetes
    /// syncers.
    pub fn with_syncer(mut self, syncer: Arc<dyn Syncer>) -> SyncStage {
        self.plugged = Some(syncer);
        self
    }

    /// Uses the Docker engine at `docker_host` (`DOCKER_HOST`'s value) for the local
    /// containers, and for pods of a cluster whose containers run on that engine.
    pub fn with_docker_host(mut self, docker_host: Option<String>) -> SyncStage {
        self.docker_host = docker_host;
        self
    }

    /// The environment `sync.hooks` host commands run with (besides their `SKAFFOLD_*`
    /// variables); none by default.
    pub fn with_env(mut self, env: BTreeMap<String, String>) -> SyncStage {
        self.env = env;
        self
    }

    /// The settings.
    pub fn settings(&self) -> &SyncSettings {
        &self.settings
    }

    /// Whether `image` has sync rules (else every change rebuilds it).
    pub fn has_rules(&self, image: &str) -> bool {
        self.settings.artifact(image).is_some()
    }

    /// Sync or rebuild for a change of `image`'s files (`changed` and `deleted` are absolute
    /// paths, or relative to its context). Pure except for reading the Dockerfile for
    /// `sync.infer`.
    pub fn plan(&self, image: &str, changed: &[PathBuf], deleted: &[PathBuf]) -> Decision {
        let rebuild = |reason: String| Decision::Rebuild { reason };
        let Some(artifact) = self.settings.artifact(image) else {
            return rebuild(format!("{image} has no sync rules"));
        };
        if let Some(first) = artifact.required_by.first() {
            return rebuild(format!(
                "{image} is required by {first}, so it is rebuilt rather than synced"
            ));
        }
        if let Some(reason) = self
            .unsyncable
            .lock()
            .ok()
            .and_then(|u| u.get(image).cloned())
        {
            return rebuild(reason);
        }
        if !deleted.is_empty() {
            if let Some(reason) = self
                .undeletable
                .lock()
                .ok()
                .and_then(|u| u.get(image).cloned())
            {
                return rebuild(reason);
            }
        }
        let mut rules = artifact.rules.clone();
        if let Some(infer) = rules.infer.as_mut() {
            match self.copies(artifact, changed) {
                Ok(copies) => infer.copies = copies,
                Err(error) => {
                    return rebuild(format!(
                        "the Dockerfile of {image} cannot be read for sync.infer: {error}"
                    ));
                }
            }
        }
        skiff_sync::decide(&artifact.context, &rules, changed, deleted)
    }

    /// The cached infer map, read again when stale for `changed`.
    fn copies(
        &self,
        artifact: &ArtifactSync,
        changed: &[PathBuf],
    ) -> Result<Vec<InferredCopy>, RunnerError> {
        let Some(source) = &artifact.infer_from else {
            return Ok(Vec::new());
        };
        let relative = |path: &PathBuf| -> PathBuf {
            path.strip_prefix(&artifact.context)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| path.clone())
        };
        let inputs: BTreeSet<PathBuf> = [
            PathBuf::from(&source.dockerfile),
            PathBuf::from(".dockerignore"),
            PathBuf::from(format!("{}.dockerignore", source.dockerfile)),
        ]
        .into_iter()
        .collect();
        let cached = self
            .maps
            .lock()
            .ok()
            .and_then(|m| m.get(&artifact.image).cloned());
        let stale = match &cached {
            None => true,
            Some(map) => changed
                .iter()
                .map(relative)
                .any(|rel| inputs.contains(&rel) || !map.iter().any(|copy| copy.source == rel)),
        };
        if let (false, Some(map)) = (stale, cached) {
            return Ok(map);
        }
        let map = infer_map(artifact)?;
        if let Ok(mut maps) = self.maps.lock() {
            maps.insert(artifact.image.clone(), map.clone());
        }
        Ok(map)
    }

    /// Copies and deletes `plan` in every running container of this run that runs
    /// `reference` (the image `image` as deployed): through the Docker engine when the session
    /// runs `image` as a local container, through the cluster when it deploys to Kubernetes.
    ///
    /// A container that cannot take the change gives [`SyncOutcome::Rebuild`] (warned about
    /// once per artifact); other failures are errors.
    pub async fn sync(
        &self,
        session: &DeploySession,
        image: &str,
        reference: &str,
        plan: &SyncPlan,
        reporter: &dyn Reporter,
    ) -> Result<SyncOutcome, RunnerError> {
        let mut target = SyncTarget {
            image: image.to_owned(),
            reference: reference.to_owned(),
            selector: format!("{RUN_ID_LABEL}={}", self.run_id),
            kube_context: None,
            env: self.env.clone(),
        };
        let mut syncers: Vec<&dyn Syncer> = Vec::new();
        if let Some(syncer) = &self.plugged {
            syncers.push(syncer.as_ref());
        } else if let Some(docker) = session.docker() {
            if session.settings().docker_images.iter().any(|i| i == image) {
                let syncer = self
                    .docker
                    .get_or_try_init(|| DockerSyncer::connect(Some(docker.endpoint())))
                    .await?;
                syncers.push(syncer);
            }
        }
        if let Some(connection) = session.kubernetes().filter(|_| self.plugged.is_none()) {
            target.kube_context = Some(connection.context.clone());
            let syncer = self
                .kubernetes
                .get_or_init(|| async {
                    let syncer = KubernetesSyncer::new(connection.client.clone(), None);
                    match DockerSyncer::connect(self.docker_host.as_deref()).await {
                        Ok(engine) => syncer.with_local_engine(engine),
                        Err(_) => syncer,
                    }
                })
                .await;
            syncers.push(syncer);
        }
        let mut report = SyncReport::default();
        let mut missing = None;
        for syncer in syncers {
            match syncer.sync(&target, plan, reporter).await {
                Ok(done) => {
                    report.containers.extend(done.containers);
                    report.duration += done.duration;
                }
                Err(error @ SyncError::NoContainer { .. }) => missing = Some(error),
                Err(error) if error.rebuild_instead() => {
                    return Ok(self.give_up(image, &error, reporter));
                }
                Err(error) => return Err(error.into()),
            }
        }
        if report.containers.is_empty() {
            let error = missing.unwrap_or(SyncError::NoContainer {
                image: image.to_owned(),
                reference: reference.to_owned(),
            });
            // Not remembered: the containers may be starting.
            return Ok(SyncOutcome::Rebuild {
                reason: error.to_string(),
            });
        }
        Ok(SyncOutcome::Synced(report))
    }

    /// Remembers that `image` cannot be synced and warns once.
    fn give_up(&self, image: &str, error: &SyncError, reporter: &dyn Reporter) -> SyncOutcome {
        let reason = error.to_string();
        // A file outside the context is about that change, not about the containers.
        let memory = match error {
            SyncError::NoTar { .. } => Some(&self.unsyncable),
            SyncError::NoRm { .. } => Some(&self.undeletable),
            _ => None,
        };
        let first = match memory.map(Mutex::lock) {
            Some(Ok(mut memory)) => memory.insert(image.to_owned(), reason.clone()).is_none(),
            _ => true,
        };
        if first {
            reporter.report(Event::Message {
                source: "sync",
                level: Level::Warning,
                text: reason.clone(),
            });
        }
        SyncOutcome::Rebuild { reason }
    }
}

/// What `artifact`'s rules map to, one line each (for `skiff diagnose`): manual rules, the
/// inferred copies the `infer` globs select (read from the Dockerfile now), and the hooks.
pub fn describe(artifact: &ArtifactSync) -> Result<Vec<String>, RunnerError> {
    let mut rules = artifact.rules.clone();
    if let Some(infer) = rules.infer.as_mut() {
        infer.copies = infer_map(artifact)?;
    }
    Ok(skiff_sync::rules::describe(&rules))
}

/// Which of the context-relative `files` `artifact`'s rules (manual or inferred) would sync,
/// for `skiff diagnose`'s advice about compiled sources.
pub fn synced_files(artifact: &ArtifactSync, files: &[PathBuf]) -> Vec<PathBuf> {
    let mut rules = artifact.rules.clone();
    if let Some(infer) = rules.infer.as_mut() {
        infer.copies = infer_map(artifact).unwrap_or_default();
    }
    files
        .iter()
        .filter(|file| {
            matches!(
                skiff_sync::decide(
                    &artifact.context,
                    &rules,
                    &[artifact.context.join(file)],
                    &[]
                ),
                Decision::Sync(_)
            )
        })
        .cloned()
        .collect()
}
