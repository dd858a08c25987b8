//! Warm rebuilds: a Docker artifact whose Dockerfile compiles in one stage and copies the result
//! into the final one (the article's Go service: `COPY . .` → `RUN go build` → `FROM alpine` →
//! `COPY --from=builder /server .`) rebuilt in seconds, with the user's Dockerfile unchanged.
//!
//! The layer model throws the build tool's own incremental state away: `COPY . .` invalidates
//! every later layer, so `go build` (cargo, npm, make, …) starts cold on every save. Here, after
//! a clean build, each stage the final stage copies from gets a *builder container*: started
//! from that stage's result (what the clean build left: sources, outputs and the tool's caches)
//! and left idle. On a change:
//!
//! 1. the changed files are copied into the container where the stage's `COPY` instructions put
//!    them (and removed files removed), from the first `COPY` the change touches on — each such
//!    `COPY` copies all of its sources again, with their modification times, as a clean build
//!    would;
//! 2. every `RUN` from there on runs again, in order, through exec, with the shell, `ENV`,
//!    `ARG` values, `WORKDIR` and `USER` in effect at that instruction;
//! 3. what the final stage copies `--from` the builder stages is taken out of the containers,
//!    and the final stage is assembled by skiff's daemonless assembler on its base image, then
//!    loaded (or pushed) as any build.
//!
//! Whatever this path cannot reproduce exactly — a changed Dockerfile, `.dockerignore`, build
//! args or base image; a file consumed elsewhere; `RUN` in the final stage; `RUN --mount`,
//! heredocs, `ADD`, `COPY --from` inside a builder stage; a stage without a name; a builder
//! container that is gone — is reported as [`WarmRebuild::NotWarm`] with the reason, and the
//! caller builds clean. A failing `RUN` (a compile error) is a failed build.
//!
//! Builder containers carry [`BUILDER_LABEL`] (the artifact's image) and skiff's run labels;
//! [`WarmBuilder::shutdown`] removes them, [`remove_builder_containers`] removes a project's
//! leftovers (`skiff delete`, a `dev` that was killed).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, ExecConfig, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, ListContainersOptions,
    RemoveContainerOptions, UploadToContainerOptions,
};
use futures_util::StreamExt;
use skiff_types::change::ChangeSet;
use skiff_types::event::{Event, NullReporter, Reporter};
use skiff_types::image::{BuiltImage, ImageRef};
use skiff_types::labels::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, RUN_ID_LABEL};

use crate::artifact::{ArtifactSpec, DockerSpec};
use crate::docker::{DockerBuilder, DockerEngine};
use crate::dockerfile::{Command, CopyInstruction, Dockerfile, InstructionKind};
use crate::dockerignore::{DockerIgnore, PathGlob, clean_path, has_wildcards};
use crate::oci::DaemonlessBuilder;
use crate::oci::builder::{StagePlan, host_platform};
use crate::oci::dockerfile as plan;
use crate::oci::layer::{EntryKind, FileSource, LayerEntry};
use crate::{BuildError, BuildRequest, Builder, BuilderSpec};

/// The label of a builder container, naming the artifact's image.
pub const BUILDER_LABEL: &str = "skiff.dev/builder-for";

/// The command that keeps a builder container idle (and stops at once on `SIGTERM`).
const IDLE: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";

/// What a warm rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarmRebuild {
    /// The image was rebuilt warm; `summary` says where the time went
    /// (`1 file into stage builder, RUN go build 0.8 s, image 0.1 s`).
    Rebuilt {
        /// The image, loaded (or pushed) as the request asked.
        image: BuiltImage,
        /// One line for the iteration report.
        summary: String,
    },
    /// This change cannot be rebuilt warm; the caller builds clean.
    NotWarm {
        /// Why, in words.
        reason: String,
    },
}

/// Options of a [`WarmBuilder`].
#[derive(Debug, Clone, Default)]
pub struct WarmOptions {
    /// The run id the builder containers are labelled with (`skaffold.dev/run-id`).
    pub run_id: String,
}

/// Keeps builder containers and rebuilds through them; see the [module docs](self).
pub struct WarmBuilder {
    engine: Arc<DockerEngine>,
    docker: DockerBuilder,
    daemonless: Arc<DaemonlessBuilder>,
    options: WarmOptions,
    /// Held for the whole of a prepare, so that a rebuild waits for builder containers that
    /// are being started rather than finding none.
    artifacts: Arc<tokio::sync::Mutex<BTreeMap<String, Prepared>>>,
}

impl std::fmt::Debug for WarmBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmBuilder")
            .field("endpoint", &self.engine.endpoint())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// One artifact ready for warm rebuilds, or the reason it is not.
enum Prepared {
    Ready(Box<ReadyArtifact>),
    NotWarm(String),
}

struct ReadyArtifact {
    /// What the containers were made from; a rebuild with other inputs is not warm.
    inputs: Inputs,
    parsed: Dockerfile,
    target: usize,
    dockerfile_path: PathBuf,
    ignore: DockerIgnore,
    stages: BTreeMap<usize, StageContainer>,
}

/// The inputs beyond the context files that decide the build.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inputs {
    dockerfile: String,
    dockerignore: Option<String>,
    build_args: BTreeMap<String, String>,
    target: Option<String>,
    /// Image ID of every base image the needed stages start from.
    bases: BTreeMap<String, Option<String>>,
}

/// A builder container of one stage.
struct StageContainer {
    id: String,
    name: String,
    stage_name: String,
    steps: Vec<Step>,
}

/// One instruction of a builder stage's chain, with what is in effect there.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// A `COPY` (or `ADD` of plain files) from the context; `dest_is_dir`: the destination was
    /// a directory in the clean build.
    Copy {
        line: usize,
        copy: CopyInstruction,
        dest_is_dir: bool,
    },
    /// A `RUN`.
    Run(RunStep),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RunStep {
    line: usize,
    /// The command as the exec runs it (shell form through the stage's `SHELL`).
    command: Vec<String>,
    /// `ENV` values and `ARG`s in effect, `NAME=value`.
    env: Vec<String>,
    workdir: String,
    user: String,
    /// As written, for messages.
    text: String,
}

/// What the base image of a stage chain sets for `RUN`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct BaseConfig {
    workdir: String,
    user: String,
}

impl WarmBuilder {
    /// A warm builder on `engine`, assembling final stages with `daemonless` (which must load
    /// into that engine or push).
    pub fn new(
        engine: Arc<DockerEngine>,
        daemonless: Arc<DaemonlessBuilder>,
        options: WarmOptions,
    ) -> WarmBuilder {
        WarmBuilder {
            docker: DockerBuilder::new(Arc::clone(&engine), false),
            engine,
            daemonless,
            options,
            artifacts: Arc::default(),
        }
    }

    /// After a clean build of `request`'s artifact: starts (or replaces) its builder containers.
    /// Returns `Err(reason)` when the artifact cannot be rebuilt warm; a later
    /// [`WarmBuilder::rebuild`] then says the same reason.
    pub async fn prepare(
        &self,
        request: &BuildRequest<'_>,
        reporter: &dyn Reporter,
    ) -> Result<(), String> {
        let mut artifacts = self.artifacts.lock().await;
        self.prepare_locked(&mut artifacts, request, reporter).await
    }

    /// [`WarmBuilder::prepare`] in the background, for a build that just finished (the caller
    /// need not wait): a rebuild asked for meanwhile waits for it instead of finding no
    /// builder container. Returns once the preparation holds its lock.
    pub async fn prepare_in_background(
        self: &Arc<Self>,
        artifact: ArtifactSpec,
        tag: ImageRef,
        required: BTreeMap<String, String>,
        env: BTreeMap<String, String>,
    ) -> tokio::task::JoinHandle<Result<(), String>> {
        let mut artifacts = Arc::clone(&self.artifacts).lock_owned().await;
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let request = BuildRequest {
                artifact: &artifact,
                tag,
                push: false,
                required,
                env: &env,
            };
            this.prepare_locked(&mut artifacts, &request, &NullReporter)
                .await
        })
    }

    async fn prepare_locked(
        &self,
        artifacts: &mut BTreeMap<String, Prepared>,
        request: &BuildRequest<'_>,
        reporter: &dyn Reporter,
    ) -> Result<(), String> {
        let image = request.artifact.image.clone();
        if let Some(Prepared::Ready(old)) = artifacts.remove(&image) {
            self.remove_containers(old.stages.values()).await;
        }
        let prepared = match self.prepare_ready(request, reporter).await {
            Ok(ready) => Prepared::Ready(Box::new(ready)),
            Err(reason) => Prepared::NotWarm(reason),
        };
        let result = match &prepared {
            Prepared::Ready(_) => Ok(()),
            Prepared::NotWarm(reason) => Err(reason.clone()),
        };
        artifacts.insert(image, prepared);
        result
    }

    async fn prepare_ready(
        &self,
        request: &BuildRequest<'_>,
        reporter: &dyn Reporter,
    ) -> Result<ReadyArtifact, String> {
        let artifact = request.artifact;
        let BuilderSpec::Docker(spec) = &artifact.builder else {
            return Err("only Docker artifacts are rebuilt warm".into());
        };
        if !artifact.platforms.is_empty() {
            return Err("the artifact names platforms".into());
        }
        let (inputs, parsed, target, dockerfile_path, ignore) = self
            .inputs(request, spec)
            .await
            .map_err(|e| e.to_string())?;
        let name = dockerfile_path
            .file_name()
            .map_or_else(|| "Dockerfile".into(), |n| n.to_string_lossy().into_owned());
        if let Some(reason) = plan::needs_engine_beyond_stage_files(&parsed, target, &name) {
            return Err(format!(
                "the final stage needs the Docker engine ({reason})"
            ));
        }
        let warm_stages = copied_stages(&parsed, target);
        if warm_stages.is_empty() {
            return Err("the final stage copies nothing from a stage that builds".into());
        }
        let mut stages = BTreeMap::new();
        for stage in warm_stages {
            match self
                .start_stage(request, spec, &parsed, stage, &name, reporter)
                .await
            {
                Ok(container) => {
                    stages.insert(stage, container);
                }
                Err(reason) => {
                    self.remove_containers(stages.values()).await;
                    return Err(reason);
                }
            }
        }
        Ok(ReadyArtifact {
            inputs,
            parsed,
            target,
            dockerfile_path,
            ignore,
            stages,
        })
    }

    /// The inputs of `request` beyond its files, and the parsed Dockerfile.
    async fn inputs(
        &self,
        request: &BuildRequest<'_>,
        spec: &DockerSpec,
    ) -> Result<(Inputs, Dockerfile, usize, PathBuf, DockerIgnore), BuildError> {
        let plan::LoadedDockerfile {
            path,
            text,
            build_args,
            parsed,
            target,
            ignore,
            ..
        } = plan::load(request, spec)?;
        let dockerignore = ignore
            .source()
            .and_then(|source| std::fs::read_to_string(source).ok());
        let mut bases = BTreeMap::new();
        for stage in parsed.stages_needed(target) {
            let s = &parsed.stages[stage];
            if s.base_stage.is_none() && s.base != "scratch" {
                let id = self.engine.image_id(&s.base).await?;
                bases.insert(s.base.clone(), id);
            }
        }
        Ok((
            Inputs {
                dockerfile: text,
                dockerignore,
                build_args,
                target: spec.target.clone(),
                bases,
            },
            parsed,
            target,
            path,
            ignore,
        ))
    }

    /// Builds stage `stage` (all from the clean build's cache), starts its builder container.
    async fn start_stage(
        &self,
        request: &BuildRequest<'_>,
        spec: &DockerSpec,
        parsed: &Dockerfile,
        stage: usize,
        dockerfile_name: &str,
        reporter: &dyn Reporter,
    ) -> Result<StageContainer, String> {
        let stage_name = parsed.stages[stage].name.clone().ok_or_else(|| {
            format!("stage {stage} of {dockerfile_name} has no name (`FROM … AS name`)")
        })?;
        let chain = plan::stage_chain(parsed, stage);
        let base = plan::base_of(parsed, stage);
        let base_config = self.base_config(&base).await?;
        let steps = stage_steps(parsed, &chain, &base_config, dockerfile_name)?;
        // The stage's result, as the clean build left it: every step is a cache hit.
        let mut stage_artifact = request.artifact.clone();
        stage_artifact.builder = BuilderSpec::Docker(DockerSpec {
            target: Some(stage_name.clone()),
            ..spec.clone()
        });
        let stage_tag = request
            .tag
            .with_tag(format!("skiff-warm-{}", sanitize(&stage_name)));
        let stage_request = BuildRequest {
            artifact: &stage_artifact,
            tag: stage_tag.clone(),
            push: false,
            required: request.required.clone(),
            env: request.env,
        };
        let built = self
            .docker
            .build(&stage_request, &NullReporter)
            .await
            .map_err(|e| format!("building stage {stage_name} again failed: {e}"))?;
        let image_id = built
            .image_id
            .ok_or_else(|| format!("the engine did not say which image stage {stage_name} is"))?;
        let name = format!(
            "skiff-warm-{}-{}-{}",
            sanitize(image_basename(&request.artifact.image)),
            sanitize(&stage_name),
            &self
                .options
                .run_id
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(8)
                .collect::<String>()
        );
        let labels = HashMap::from([
            (BUILDER_LABEL.to_owned(), request.artifact.image.clone()),
            (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
            (RUN_ID_LABEL.to_owned(), self.options.run_id.clone()),
        ]);
        let docker = self.engine.client();
        let _ = docker
            .remove_container(
                &name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
        let body = ContainerCreateBody {
            image: Some(image_id.clone()),
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
            cmd: Some(vec![IDLE.into()]),
            user: Some("0".into()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: spec.network.clone().filter(|n| !n.is_empty()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| format!("cannot create the builder container {name}: {e}"))?;
        // The container holds the image now; the marker tag is not needed.
        let _ = self.engine.remove_image(&stage_tag).await;
        if let Err(e) = docker.start_container(&created.id, None).await {
            let _ = remove_container(docker, &created.id).await;
            return Err(format!(
                "cannot start the builder container {name} (the stage needs /bin/sh): {e}"
            ));
        }
        let mut container = StageContainer {
            id: created.id,
            name,
            stage_name,
            steps,
        };
        // Whether a single-file destination was a directory decides where files land.
        for step in &mut container.steps {
            if let Step::Copy {
                copy, dest_is_dir, ..
            } = step
            {
                if !copy.dest_is_dir() && copy.sources.len() == 1 {
                    let dest = copy.dest_path();
                    let (code, _) = self
                        .exec(
                            &container.id,
                            &["test".into(), "-d".into(), dest],
                            &[],
                            "/",
                            "0",
                            None,
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    *dest_is_dir = code == 0;
                } else {
                    *dest_is_dir = true;
                }
            }
        }
        reporter.report(Event::BuildOutput {
            image: request.artifact.image.clone(),
            line: format!(
                "builder container {} keeps stage {} warm",
                container.name, container.stage_name
            ),
        });
        Ok(container)
    }

    /// The working directory and user the base image sets.
    async fn base_config(&self, base: &str) -> Result<BaseConfig, String> {
        if base == "scratch" {
            return Ok(BaseConfig {
                workdir: "/".into(),
                user: String::new(),
            });
        }
        let inspect = self
            .engine
            .client()
            .inspect_image(base)
            .await
            .map_err(|e| format!("cannot inspect the base image {base}: {e}"))?;
        let config = inspect.config.unwrap_or_default();
        Ok(BaseConfig {
            workdir: config
                .working_dir
                .filter(|w| w.starts_with('/'))
                .unwrap_or_else(|| "/".into()),
            user: config.user.unwrap_or_default(),
        })
    }

    /// Rebuilds `request`'s artifact for `changes` (absolute paths under its context) through
    /// its builder containers, or says why it cannot.
    pub async fn rebuild(
        &self,
        request: &BuildRequest<'_>,
        changes: &ChangeSet,
        reporter: &dyn Reporter,
    ) -> Result<WarmRebuild, BuildError> {
        let not_warm = |reason: String| Ok(WarmRebuild::NotWarm { reason });
        let artifact = request.artifact;
        let BuilderSpec::Docker(spec) = &artifact.builder else {
            return not_warm("only Docker artifacts are rebuilt warm".into());
        };
        let guard = self.artifacts.lock().await;
        let ready = match guard.get(&artifact.image) {
            None => return not_warm("no builder container has been started yet".into()),
            Some(Prepared::NotWarm(reason)) => return not_warm(reason.clone()),
            Some(Prepared::Ready(ready)) => ready,
        };
        let (inputs, ..) = self.inputs(request, spec).await?;
        if let Some(reason) = changed_inputs(&ready.inputs, &inputs) {
            return not_warm(reason);
        }
        for container in ready.stages.values() {
            let running = self
                .engine
                .client()
                .inspect_container(&container.id, None)
                .await
                .ok()
                .and_then(|c| c.state?.running)
                .unwrap_or(false);
            if !running {
                return not_warm(format!(
                    "the builder container {} is gone or stopped",
                    container.name
                ));
            }
        }
        let rel = |path: &PathBuf| -> Option<String> {
            path.strip_prefix(&artifact.context)
                .ok()
                .map(|p| p.to_string_lossy().replace('\\', "/"))
        };
        let changed: Vec<String> = changes.modified.iter().filter_map(rel).collect();
        let deleted: Vec<String> = changes.deleted.iter().filter_map(rel).collect();
        // Where each change enters: a builder stage's step, or the final stage's own COPY.
        let final_copies = final_stage_copies(&ready.parsed, ready.target);
        let mut first_step: BTreeMap<usize, usize> = BTreeMap::new();
        for file in changed.iter().chain(&deleted) {
            let mut entered = final_copies
                .iter()
                .any(|copy| dest_of(copy, file, copy.dest_is_dir()).is_some());
            for (&stage, container) in &ready.stages {
                if let Some(index) = container.steps.iter().position(|step| match step {
                    Step::Copy {
                        copy, dest_is_dir, ..
                    } => dest_of(copy, file, *dest_is_dir).is_some(),
                    Step::Run(_) => false,
                }) {
                    entered = true;
                    let first = first_step.entry(stage).or_insert(index);
                    *first = (*first).min(index);
                }
            }
            if !entered {
                return not_warm(format!(
                    "{file} is not copied by the builder stages or the final stage"
                ));
            }
        }

        let started = Instant::now();
        let mut parts = Vec::new();
        for (&stage, &first) in &first_step {
            let container = &ready.stages[&stage];
            let stage_parts = self
                .replay(request, ready, container, first, &deleted, reporter)
                .await?;
            parts.extend(stage_parts);
        }
        let assembled = Instant::now();
        let image = self.assemble(request, ready, reporter).await?;
        parts.push(format!("image {}", secs(assembled.elapsed())));
        let files = changed.len() + deleted.len();
        let into = if first_step.is_empty() {
            "the final stage".to_owned()
        } else {
            first_step
                .keys()
                .map(|s| format!("stage {}", ready.stages[s].stage_name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let summary = format!(
            "{} into {into}, {} (total {})",
            plural(files, "file"),
            parts.join(", "),
            secs(started.elapsed())
        );
        Ok(WarmRebuild::Rebuilt { image, summary })
    }

    /// Replays `container`'s steps from `first` on: removes `deleted` files, copies each
    /// `COPY`'s sources again, runs each `RUN`. Returns one part per `RUN` (`RUN go build 0.8 s`).
    async fn replay(
        &self,
        request: &BuildRequest<'_>,
        ready: &ReadyArtifact,
        container: &StageContainer,
        first: usize,
        deleted: &[String],
        reporter: &dyn Reporter,
    ) -> Result<Vec<String>, BuildError> {
        let artifact = request.artifact;
        let image = artifact.image.as_str();
        let failed = |reason: String| BuildError::Failed {
            image: image.to_owned(),
            reason,
        };
        let steps = &container.steps[first..];
        let gone: BTreeSet<String> = steps
            .iter()
            .filter_map(|step| match step {
                Step::Copy {
                    copy, dest_is_dir, ..
                } => Some((copy, *dest_is_dir)),
                Step::Run(_) => None,
            })
            .flat_map(|(copy, dir)| deleted.iter().filter_map(move |f| dest_of(copy, f, dir)))
            .collect();
        if !gone.is_empty() {
            let mut command = vec!["rm".to_owned(), "-rf".to_owned(), "--".to_owned()];
            command.extend(gone);
            let (code, output) = self
                .exec(&container.id, &command, &[], "/", "0", None)
                .await?;
            if code != 0 {
                return Err(failed(format!(
                    "removing deleted files from the builder container {} failed: {output}",
                    container.name
                )));
            }
        }
        let mut parts = Vec::new();
        for step in steps {
            match step {
                Step::Copy {
                    line,
                    copy,
                    dest_is_dir,
                } => {
                    let dirs: BTreeSet<String> = if *dest_is_dir {
                        BTreeSet::from([copy.dest_path()])
                    } else {
                        BTreeSet::new()
                    };
                    let entries = plan::copy_entries(
                        copy,
                        &artifact.context,
                        &ready.ignore,
                        &ready.dockerfile_path,
                        *line,
                        &dirs,
                    )?;
                    let archive = upload_archive(&entries, &copy.dest_path())?;
                    self.engine
                        .client()
                        .upload_to_container(
                            &container.id,
                            Some(UploadToContainerOptions {
                                path: "/".to_owned(),
                                ..Default::default()
                            }),
                            bollard::body_full(archive.into()),
                        )
                        .await
                        .map_err(|e| {
                            failed(format!(
                                "copying files into the builder container {} failed: {e}",
                                container.name
                            ))
                        })?;
                }
                Step::Run(run) => {
                    let started = Instant::now();
                    reporter.report(Event::BuildOutput {
                        image: image.to_owned(),
                        line: format!("warm: RUN {}", run.text),
                    });
                    let (code, output) = self
                        .exec(
                            &container.id,
                            &run.command,
                            &run.env,
                            &run.workdir,
                            &run.user,
                            Some((image, reporter)),
                        )
                        .await?;
                    if code != 0 {
                        let tail: Vec<&str> = output.lines().rev().take(20).collect();
                        let tail: Vec<&str> = tail.into_iter().rev().collect();
                        return Err(failed(format!(
                            "RUN {} ({}:{}) exited with code {code}:\n{}",
                            run.text,
                            ready.dockerfile_path.display(),
                            run.line,
                            tail.join("\n")
                        )));
                    }
                    parts.push(format!(
                        "RUN {} {}",
                        short_command(&run.text),
                        secs(started.elapsed())
                    ));
                }
            }
        }
        Ok(parts)
    }

    /// Assembles the final stage with the builder stages' files and delivers it.
    async fn assemble(
        &self,
        request: &BuildRequest<'_>,
        ready: &ReadyArtifact,
        reporter: &dyn Reporter,
    ) -> Result<BuiltImage, BuildError> {
        let artifact = request.artifact;
        let mut stage_files = plan::StageFiles::new();
        for copy in final_stage_copies_from(&ready.parsed, ready.target) {
            let (stage, copy) = copy;
            let Some(container) = ready.stages.get(&stage) else {
                continue;
            };
            for source in copy.source_paths() {
                let path = clean_path(&format!("/{source}"));
                let mut stream = self.engine.client().download_from_container(
                    &container.id,
                    Some(DownloadFromContainerOptions { path: path.clone() }),
                );
                let mut bytes = Vec::new();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| BuildError::Failed {
                        image: artifact.image.clone(),
                        reason: format!(
                            "COPY --from={} {source}: cannot read {path} from the builder container {}: {e}",
                            container.stage_name, container.name
                        ),
                    })?;
                    bytes.extend_from_slice(&chunk);
                }
                stage_files.insert((stage, source.to_owned()), bytes);
            }
        }
        let image = self
            .daemonless
            .assemble_stage(
                artifact,
                StagePlan {
                    parsed: &ready.parsed,
                    target: ready.target,
                    ignore: &ready.ignore,
                    dockerfile: &ready.dockerfile_path,
                },
                &host_platform(),
                false,
                stage_files,
            )
            .await?;
        self.daemonless.deliver(request, &[image], reporter).await
    }

    /// Runs `command` in `container`; returns the exit code and the output. With `stream`,
    /// each output line is also reported as build output of that image.
    async fn exec(
        &self,
        container: &str,
        command: &[String],
        env: &[String],
        workdir: &str,
        user: &str,
        stream: Option<(&str, &dyn Reporter)>,
    ) -> Result<(i64, String), BuildError> {
        let docker = self.engine.client();
        let error = |e: bollard::errors::Error| BuildError::Failed {
            image: container.to_owned(),
            reason: format!("exec in the builder container failed: {e}"),
        };
        let exec = docker
            .create_exec(
                container,
                ExecConfig {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(command.to_vec()),
                    env: (!env.is_empty()).then(|| env.to_vec()),
                    working_dir: Some(workdir.to_owned()),
                    user: (!user.is_empty()).then(|| user.to_owned()),
                    ..Default::default()
                },
            )
            .await
            .map_err(error)?;
        let mut output = String::new();
        let mut pending = String::new();
        match docker
            .start_exec(&exec.id, None::<StartExecOptions>)
            .await
            .map_err(error)?
        {
            StartExecResults::Attached {
                output: mut chunks, ..
            } => {
                while let Some(chunk) = chunks.next().await {
                    let bytes = match chunk.map_err(error)? {
                        LogOutput::StdOut { message } | LogOutput::StdErr { message } => message,
                        LogOutput::Console { message } => message,
                        LogOutput::StdIn { .. } => continue,
                    };
                    let text = String::from_utf8_lossy(&bytes);
                    output.push_str(&text);
                    pending.push_str(&text);
                    while let Some(end) = pending.find('\n') {
                        let line: String = pending.drain(..=end).collect();
                        if let Some((image, reporter)) = stream {
                            reporter.report(Event::BuildOutput {
                                image: image.to_owned(),
                                line: line.trim_end().to_owned(),
                            });
                        }
                    }
                }
            }
            StartExecResults::Detached => {}
        }
        if let (Some((image, reporter)), false) = (stream, pending.trim().is_empty()) {
            reporter.report(Event::BuildOutput {
                image: image.to_owned(),
                line: pending.trim_end().to_owned(),
            });
        }
        let code = docker
            .inspect_exec(&exec.id)
            .await
            .map_err(error)?
            .exit_code
            .unwrap_or(-1);
        Ok((code, output))
    }

    async fn remove_containers<'a>(&self, containers: impl Iterator<Item = &'a StageContainer>) {
        for container in containers {
            let _ = remove_container(self.engine.client(), &container.id).await;
        }
    }

    /// Removes every builder container this builder started; returns their names.
    pub async fn shutdown(&self) -> Vec<String> {
        let mut artifacts = self.artifacts.lock().await;
        let mut removed = Vec::new();
        for prepared in std::mem::take(&mut *artifacts).into_values() {
            if let Prepared::Ready(ready) = prepared {
                for container in ready.stages.values() {
                    if remove_container(self.engine.client(), &container.id).await {
                        removed.push(container.name.clone());
                    }
                }
            }
        }
        removed
    }
}

/// Removes the builder containers skiff started for any of `images` (whatever their run): a
/// `dev` that was killed leaves them. Only containers with skiff's labels are touched. Returns
/// their names.
pub async fn remove_builder_containers(
    engine: &DockerEngine,
    images: &[String],
) -> Result<Vec<String>, BuildError> {
    let docker = engine.client();
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_owned(),
                vec![
                    BUILDER_LABEL.to_owned(),
                    format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"),
                ],
            )])),
            ..Default::default()
        }))
        .await
        .map_err(|e| BuildError::EngineUnavailable {
            endpoint: engine.endpoint().to_owned(),
            reason: e.to_string(),
        })?;
    let mut removed = Vec::new();
    for container in containers {
        let labels = container.labels.unwrap_or_default();
        let ours = labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE)
            && labels
                .get(BUILDER_LABEL)
                .is_some_and(|i| images.contains(i));
        let Some(id) = container.id.filter(|_| ours) else {
            continue;
        };
        if remove_container(docker, &id).await {
            let name = container
                .names
                .and_then(|n| n.into_iter().next())
                .map_or(id, |n| n.trim_start_matches('/').to_owned());
            removed.push(name);
        }
    }
    Ok(removed)
}

/// Removes a builder container at once: it holds nothing to save.
async fn remove_container(docker: &bollard::Docker, id: &str) -> bool {
    docker
        .remove_container(
            id,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .is_ok()
}

/// Why `now` cannot be rebuilt warm from containers made for `then`, if it cannot.
fn changed_inputs(then: &Inputs, now: &Inputs) -> Option<String> {
    if then.dockerfile != now.dockerfile {
        return Some("the Dockerfile changed".into());
    }
    if then.dockerignore != now.dockerignore {
        return Some(".dockerignore changed".into());
    }
    if then.build_args != now.build_args {
        return Some("the build args changed".into());
    }
    if then.target != now.target {
        return Some("the target stage changed".into());
    }
    for (base, id) in &now.bases {
        if then.bases.get(base) != Some(id) {
            return Some(format!("the base image {base} changed"));
        }
    }
    None
}

/// The stages whose files the final stage (`target`'s chain) copies `--from`.
fn copied_stages(parsed: &Dockerfile, target: usize) -> BTreeSet<usize> {
    final_stage_copies_from(parsed, target)
        .into_iter()
        .map(|(stage, _)| stage)
        .collect()
}

/// The `COPY --from=<stage>` instructions of `target`'s chain, with the stage they name.
fn final_stage_copies_from(parsed: &Dockerfile, target: usize) -> Vec<(usize, CopyInstruction)> {
    let mut copies = Vec::new();
    for index in plan::stage_chain(parsed, target) {
        for instruction in &parsed.stages[index].instructions {
            if let InstructionKind::Copy(copy) = &instruction.kind {
                if let Some(stage) = copy
                    .from
                    .as_deref()
                    .and_then(|from| parsed.stage_reference(from, index))
                {
                    copies.push((stage, copy.clone()));
                }
            }
        }
    }
    copies
}

/// The `COPY`/`ADD` instructions from the context of `target`'s chain.
fn final_stage_copies(parsed: &Dockerfile, target: usize) -> Vec<CopyInstruction> {
    let mut copies = Vec::new();
    for index in plan::stage_chain(parsed, target) {
        for instruction in &parsed.stages[index].instructions {
            if let InstructionKind::Copy(copy) | InstructionKind::Add(copy) = &instruction.kind {
                if copy.from.is_none() {
                    copies.push(copy.clone());
                }
            }
        }
    }
    copies
}

/// The steps of a builder stage whose chain is `chain` (oldest stage first): its `COPY`s from
/// the context and its `RUN`s with what is in effect at each; or why the stage cannot be
/// replayed.
fn stage_steps(
    parsed: &Dockerfile,
    chain: &[usize],
    base: &BaseConfig,
    dockerfile_name: &str,
) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut env: Vec<(String, String)> = Vec::new();
    let mut workdir = base.workdir.clone();
    let mut user = base.user.clone();
    let mut shell = vec!["/bin/sh".to_owned(), "-c".to_owned()];
    // ENV names each RUN sees, to catch a later ENV the exec could not hide.
    let mut run_env_names: Vec<(usize, BTreeSet<String>)> = Vec::new();
    for &index in chain {
        // ARG values do not cross stages; ENV does (through the image).
        let mut args: Vec<(String, String)> = Vec::new();
        for instruction in &parsed.stages[index].instructions {
            let at = format!("{dockerfile_name}:{}", instruction.line);
            match &instruction.kind {
                InstructionKind::From { .. } => {}
                InstructionKind::Arg(declarations) => {
                    for declaration in declarations {
                        args.retain(|(name, _)| name != &declaration.name);
                        if let Some(value) = &declaration.value {
                            args.push((declaration.name.clone(), value.clone()));
                        }
                    }
                }
                InstructionKind::Env(pairs) => {
                    for (name, value) in pairs {
                        env.retain(|(n, _)| n != name);
                        env.push((name.clone(), value.clone()));
                    }
                }
                InstructionKind::Workdir(dir) => {
                    workdir = crate::dockerfile::resolve_path(&workdir, dir);
                }
                InstructionKind::User(u) => user = u.clone(),
                InstructionKind::Shell(words) => shell = words.clone(),
                InstructionKind::Copy(copy) | InstructionKind::Add(copy) => {
                    if copy.from.is_some() {
                        return Err(format!(
                            "{} --from at {at} inside a builder stage",
                            instruction.keyword
                        ));
                    }
                    if let Some(why) = plan::copy_needs_engine(copy, instruction.keyword == "ADD") {
                        return Err(format!("{} {why} at {at}", instruction.keyword));
                    }
                    if copy.chown.is_some() || copy.chmod.is_some() {
                        return Err(format!(
                            "{} --chown/--chmod at {at} in a builder stage",
                            instruction.keyword
                        ));
                    }
                    steps.push(Step::Copy {
                        line: instruction.line,
                        copy: copy.clone(),
                        dest_is_dir: copy.dest_is_dir(),
                    });
                }
                InstructionKind::Run(run) => {
                    if !run.mounts.is_empty() || !instruction.flags.is_empty() {
                        return Err(format!("RUN with options at {at} needs BuildKit"));
                    }
                    if !run.heredocs.is_empty() {
                        return Err(format!("RUN with a heredoc at {at}"));
                    }
                    let (command, text) = match &run.command {
                        Command::Exec(words) => (words.clone(), words.join(" ")),
                        Command::Shell(text) => {
                            let mut words = shell.clone();
                            words.push(text.clone());
                            (words, text.clone())
                        }
                    };
                    // Build args are in RUN's environment, behind ENV of the same name.
                    let mut vars: Vec<String> = args
                        .iter()
                        .filter(|(name, _)| !env.iter().any(|(n, _)| n == name))
                        .map(|(n, v)| format!("{n}={v}"))
                        .collect();
                    vars.extend(env.iter().map(|(n, v)| format!("{n}={v}")));
                    run_env_names.push((
                        instruction.line,
                        env.iter().map(|(n, _)| n.clone()).collect(),
                    ));
                    steps.push(Step::Run(RunStep {
                        line: instruction.line,
                        command,
                        env: vars,
                        workdir: workdir.clone(),
                        user: user.clone(),
                        text,
                    }));
                }
                InstructionKind::Other(_)
                | InstructionKind::Entrypoint(_)
                | InstructionKind::Cmd(_)
                | InstructionKind::Expose(_)
                | InstructionKind::Label(_)
                | InstructionKind::Volume(_) => {}
            }
        }
    }
    // The builder container has the stage's final environment; a RUN before an ENV that adds
    // a name would see it when replayed.
    let final_names: BTreeSet<&String> = env.iter().map(|(n, _)| n).collect();
    for (line, names) in &run_env_names {
        if let Some(extra) = final_names.iter().find(|n| !names.contains(**n)) {
            return Err(format!(
                "ENV {extra} is set after the RUN at {dockerfile_name}:{line}, which a replay would see"
            ));
        }
    }
    Ok(steps)
}

/// Where `copy` puts the context file `file` (relative to the context), if it copies it;
/// `dest_is_dir`: the destination is a directory.
fn dest_of(copy: &CopyInstruction, file: &str, dest_is_dir: bool) -> Option<String> {
    let dest = copy.dest_path();
    let into_dir = dest_is_dir || copy.sources.len() > 1;
    let join = |rest: &str| clean_path(&format!("{dest}/{rest}"));
    let base_name = file.rsplit('/').next().unwrap_or(file);
    for source in copy.source_paths() {
        let source = clean_path(&format!("/{source}"))
            .trim_start_matches('/')
            .to_owned();
        if source.is_empty() {
            return Some(join(file));
        }
        if has_wildcards(&source) {
            let glob = PathGlob::new(&source)?;
            if glob.matches(file) {
                return Some(if into_dir || copy.dest_is_dir() {
                    join(base_name)
                } else {
                    dest.clone()
                });
            }
            // A matched directory copies its contents.
            let mut parent = file;
            while let Some((dir, _)) = parent.rsplit_once('/') {
                if glob.matches(dir) {
                    return Some(join(&file[dir.len() + 1..]));
                }
                parent = dir;
            }
            continue;
        }
        if file == source {
            return Some(if into_dir { join(base_name) } else { dest });
        }
        if let Some(rest) = file.strip_prefix(&format!("{source}/")) {
            return Some(join(rest));
        }
    }
    None
}

/// A tar of `entries` (absolute paths) to extract at `/`: files and links, and the directories
/// inside `dest`, with the host files' modification times (build tools compare them); the
/// directories leading to `dest` are left as the container has them.
fn upload_archive(entries: &[LayerEntry], dest: &str) -> Result<Vec<u8>, BuildError> {
    let mut builder = tar::Builder::new(Vec::new());
    let inside = format!("{}/", dest.trim_end_matches('/'));
    for entry in entries {
        let path = entry.path.trim_start_matches('/');
        let mut header = tar::Header::new_gnu();
        header.set_uid(entry.uid);
        header.set_gid(entry.gid);
        header.set_mode(entry.mode);
        let io = |source: std::io::Error| BuildError::Io {
            path: PathBuf::from(&entry.path),
            source,
        };
        match &entry.kind {
            EntryKind::Dir => {
                if !entry.path.starts_with(&inside) {
                    continue;
                }
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                header.set_mtime(now_seconds());
                builder
                    .append_data(&mut header, format!("{path}/"), std::io::empty())
                    .map_err(io)?;
            }
            EntryKind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                header.set_mtime(now_seconds());
                builder.append_link(&mut header, path, target).map_err(io)?;
            }
            EntryKind::File(source) => {
                let (data, mtime) = match source {
                    FileSource::Host(host) => {
                        let io = |source| BuildError::Io {
                            path: host.clone(),
                            source,
                        };
                        let data = std::fs::read(host).map_err(io)?;
                        let mtime = std::fs::metadata(host).map_err(io)?.mtime();
                        (data, u64::try_from(mtime).unwrap_or(0))
                    }
                    FileSource::Bytes(bytes) => (bytes.clone(), now_seconds()),
                };
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(data.len() as u64);
                header.set_mtime(mtime);
                builder
                    .append_data(&mut header, path, data.as_slice())
                    .map_err(io)?;
            }
        }
    }
    builder.into_inner().map_err(|source| BuildError::Io {
        path: PathBuf::from(dest),
        source,
    })
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// The first words of a command, for a summary (`go build`).
fn short_command(text: &str) -> String {
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|w| !w.contains('='))
        .take(2)
        .collect();
    words.join(" ")
}

fn image_basename(image: &str) -> &str {
    let without_tag = image.split('@').next().unwrap_or(image);
    let last = without_tag.rsplit('/').next().unwrap_or(without_tag);
    last.split(':').next().unwrap_or(last)
}

fn sanitize(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    cleaned.trim_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parsed(text: &str) -> Dockerfile {
        crate::dockerfile::parse(text, &BTreeMap::new()).unwrap()
    }

    const ARTICLE: &str = "FROM golang:1.22-alpine AS builder\nWORKDIR /app\nCOPY go.mod go.sum ./\nRUN go mod download\nCOPY . .\nRUN CGO_ENABLED=0 GOOS=linux go build -o /server .\nFROM alpine:3.19\nWORKDIR /app\nCOPY --from=builder /server .\nEXPOSE 8080\nCMD [\"./server\"]\n";

    fn base() -> BaseConfig {
        BaseConfig {
            workdir: "/go".into(),
            user: String::new(),
        }
    }

    #[test]
    fn the_articles_builder_stage_replays_copy_run_copy_run() {
        let d = parsed(ARTICLE);
        assert_eq!(copied_stages(&d, 1), BTreeSet::from([0]));
        assert_eq!(
            plan::needs_engine_beyond_stage_files(&d, 1, "Dockerfile"),
            None
        );
        let steps = stage_steps(&d, &[0], &base(), "Dockerfile").unwrap();
        assert_eq!(steps.len(), 4);
        let Step::Run(build) = &steps[3] else {
            panic!("{steps:?}")
        };
        assert_eq!(
            build.command,
            [
                "/bin/sh",
                "-c",
                "CGO_ENABLED=0 GOOS=linux go build -o /server ."
            ]
        );
        assert_eq!(build.workdir, "/app");
        assert_eq!(build.line, 6);
        assert_eq!(short_command(&build.text), "go build");
    }

    #[test]
    fn files_map_to_where_copy_puts_them() {
        let d = parsed(ARTICLE);
        let steps = stage_steps(&d, &[0], &base(), "Dockerfile").unwrap();
        let copies: Vec<&CopyInstruction> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Copy { copy, .. } => Some(copy),
                Step::Run(_) => None,
            })
            .collect();
        assert_eq!(
            dest_of(copies[0], "go.mod", true).as_deref(),
            Some("/app/go.mod")
        );
        assert_eq!(dest_of(copies[0], "main.go", true), None);
        assert_eq!(
            dest_of(copies[1], "main.go", true).as_deref(),
            Some("/app/main.go")
        );
        assert_eq!(
            dest_of(copies[1], "pkg/a/b.go", true).as_deref(),
            Some("/app/pkg/a/b.go")
        );
        let d = parsed(
            "FROM x AS b\nCOPY src /code/src\nCOPY *.txt /notes/\nCOPY one.c /code/main.c\n",
        );
        let steps = stage_steps(&d, &[0], &base(), "D").unwrap();
        let copy = |i: usize| match &steps[i] {
            Step::Copy { copy, .. } => copy.clone(),
            Step::Run(_) => panic!(),
        };
        assert_eq!(
            dest_of(&copy(0), "src/x/y.c", false).as_deref(),
            Some("/code/src/x/y.c")
        );
        assert_eq!(dest_of(&copy(0), "srcx", false), None);
        assert_eq!(
            dest_of(&copy(1), "a.txt", true).as_deref(),
            Some("/notes/a.txt")
        );
        assert_eq!(dest_of(&copy(1), "d/a.txt", true), None);
        assert_eq!(
            dest_of(&copy(2), "one.c", false).as_deref(),
            Some("/code/main.c")
        );
        assert_eq!(
            dest_of(&copy(2), "one.c", true).as_deref(),
            Some("/code/main.c/one.c")
        );
    }

    #[test]
    fn run_sees_env_args_workdir_user_and_shell_of_its_point() {
        let d = parsed(
            "ARG GLOBAL=g\nFROM x AS b\nARG MODE=fast\nENV A=1\nUSER 1000\nSHELL [\"/bin/bash\", \"-ec\"]\nWORKDIR src\nRUN make $MODE\nENV A=2\nRUN [\"true\"]\n",
        );
        let steps = stage_steps(&d, &[0], &base(), "D").unwrap();
        let Step::Run(first) = &steps[0] else {
            panic!()
        };
        assert_eq!(first.command, ["/bin/bash", "-ec", "make $MODE"]);
        assert_eq!(first.env, ["MODE=fast", "A=1"]);
        assert_eq!(first.workdir, "/go/src");
        assert_eq!(first.user, "1000");
        let Step::Run(second) = &steps[1] else {
            panic!()
        };
        assert_eq!(second.command, ["true"]);
        assert_eq!(second.env, ["MODE=fast", "A=2"]);
    }

    #[test]
    fn what_cannot_be_replayed_says_why() {
        let reason = |text: &str| stage_steps(&parsed(text), &[0], &base(), "D").unwrap_err();
        assert!(
            reason("FROM x AS b\nRUN --mount=type=cache,target=/c make\n").contains("BuildKit")
        );
        assert!(reason("FROM x AS b\nCOPY --from=other /a /a\n").contains("--from"));
        assert!(reason("FROM x AS b\nADD https://example.invalid/a /a\n").contains("URL"));
        assert!(reason("FROM x AS b\nRUN make\nENV LATE=1\n").contains("ENV LATE"));
        let d = parsed("FROM x AS b\nRUN make\nFROM scratch\nRUN echo\nCOPY --from=b /a /a\n");
        assert!(
            plan::needs_engine_beyond_stage_files(&d, 1, "D")
                .unwrap()
                .contains("RUN")
        );
    }

    #[test]
    fn changed_inputs_are_named() {
        let inputs = Inputs {
            dockerfile: "FROM x".into(),
            dockerignore: None,
            build_args: BTreeMap::new(),
            target: None,
            bases: BTreeMap::from([("x".into(), Some("sha256:1".into()))]),
        };
        assert_eq!(changed_inputs(&inputs, &inputs), None);
        let mut other = inputs.clone();
        other.dockerfile.push('\n');
        assert_eq!(
            changed_inputs(&inputs, &other).as_deref(),
            Some("the Dockerfile changed")
        );
        let mut other = inputs.clone();
        other.bases.insert("x".into(), Some("sha256:2".into()));
        assert_eq!(
            changed_inputs(&inputs, &other).as_deref(),
            Some("the base image x changed")
        );
    }

    #[test]
    fn uploads_keep_modification_times_and_leave_parent_directories_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("main.go");
        std::fs::write(&file, "package main\n").unwrap();
        let entries = vec![
            LayerEntry::dir("/app", 0o755),
            LayerEntry::dir("/app/pkg", 0o750),
            LayerEntry::file("/app/main.go", 0o644, FileSource::Host(file.clone())),
        ];
        let archive = upload_archive(&entries, "/app").unwrap();
        let mut tar = tar::Archive::new(archive.as_slice());
        let mut seen = Vec::new();
        for entry in tar.entries().unwrap() {
            let entry = entry.unwrap();
            seen.push((
                entry.path().unwrap().to_string_lossy().into_owned(),
                entry.header().mode().unwrap(),
                entry.header().mtime().unwrap(),
            ));
        }
        let mtime = u64::try_from(std::fs::metadata(&file).unwrap().mtime()).unwrap();
        assert_eq!(
            seen,
            [
                ("app/pkg/".to_owned(), 0o750, seen[0].2),
                ("app/main.go".to_owned(), 0o644, mtime)
            ]
        );
    }
}
