//! Building, tagging and pushing images with a Docker engine, over its HTTP API.
//!
//! [`DockerEngine`] is a connection to one engine (`DOCKER_HOST`): it inspects, tags, pushes and
//! removes images. [`DockerBuilder`] implements [`Builder`] for `docker:` artifacts: it packs the
//! build context (honouring `.dockerignore`), renders the build args, sends the build to the
//! engine and streams its output to the reporter as [`Event::BuildOutput`] lines, then pushes
//! the image when asked.
//!
//! Builds use the engine's classic builder: BuildKit over the engine API needs a gRPC session
//! that this client does not open. Options that only BuildKit provides (`secrets`, `ssh`,
//! `RUN --mount`) are refused with [`BuildError::NeedsBuildKit`] or a clear
//! [`BuildError::Failed`] instead of being ignored.
//!
//! Engine messages are turned into errors a person can act on: a base image that cannot be
//! pulled is [`BuildError::BaseImage`], a Dockerfile syntax error is [`BuildError::Dockerfile`]
//! with its line, a registry that refuses a push is [`BuildError::Push`] naming the registry.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bollard::Docker;
use bollard::errors::Error as EngineError;
use bollard::query_parameters::{
    BuildImageOptions, ListContainersOptions, ListImagesOptions, PushImageOptions,
    RemoveImageOptions, TagImageOptions,
};
use futures_util::StreamExt;
use skiff_types::event::{Event, Level, Reporter};
use skiff_types::image::{BuiltImage, ImageRef};
use skiff_types::template::{LayeredVars, MissingKey, Vars};

use crate::artifact::DockerSpec;
use crate::credentials::{Credentials, DockerConfig};
use crate::{BuildError, BuildRequest, Builder, BuilderSpec};

pub use skiff_connect::DEFAULT_DOCKER_HOST;
use skiff_connect::{DockerConnection, describe, is_unreachable};

/// How many output lines a failed build's error quotes.
const KEPT_LINES: usize = 20;

/// The reporter source for messages from this module.
const SOURCE: &str = "build";

/// A connection to one Docker engine.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    endpoint: String,
}

impl DockerEngine {
    /// Connects to the engine at `docker_host` (the value of `DOCKER_HOST`: `unix:///path`,
    /// `tcp://host:port` or `http://host:port`; `None` or empty means
    /// [`DEFAULT_DOCKER_HOST`]), sharing the process's connection to it
    /// ([`DockerConnection::shared`]).
    ///
    /// Fails with [`BuildError::EngineUnavailable`] when nothing answers there.
    pub async fn connect(docker_host: Option<&str>) -> Result<DockerEngine, BuildError> {
        let connection = DockerConnection::shared(docker_host).await?;
        Ok(DockerEngine::from_connection(connection))
    }

    /// An engine over a connection the run already made.
    pub fn from_connection(connection: DockerConnection) -> DockerEngine {
        DockerEngine {
            endpoint: connection.endpoint().to_owned(),
            docker: connection.client().clone(),
        }
    }

    /// The endpoint this engine was reached at.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The underlying API client, for calls this type does not wrap.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// The image ID (`sha256:…`) of `reference` (a name, `name:tag`, or an ID), or `None` when
    /// the engine has no such image.
    pub async fn image_id(
        &self,
        reference: &(impl fmt::Display + ?Sized),
    ) -> Result<Option<String>, BuildError> {
        let reference = reference.to_string();
        match self.docker.inspect_image(&reference).await {
            Ok(inspect) => Ok(inspect.id),
            Err(EngineError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.engine_error(&reference, &e)),
        }
    }

    /// Tags the local image `source` (a reference or an ID) as `target` (`latest` when
    /// `target` has no tag).
    pub async fn tag(
        &self,
        source: &(impl fmt::Display + ?Sized),
        target: &ImageRef,
    ) -> Result<(), BuildError> {
        let source = source.to_string();
        let options = TagImageOptions {
            repo: Some(target.repository().to_owned()),
            tag: Some(target.tag().unwrap_or("latest").to_owned()),
        };
        match self.docker.tag_image(&source, Some(options)).await {
            Ok(()) => Ok(()),
            Err(EngineError::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(BuildError::Failed {
                image: target.to_string(),
                reason: format!(
                    "cannot tag {source} as {target}: the engine has no image {source}"
                ),
            }),
            Err(e) => Err(self.engine_error(&target.to_string(), &e)),
        }
    }

    /// Tags the local image `image_id` as `reference`'s repository with the ID's hex as tag and
    /// returns that reference: one that changes whenever the image does, so that a deploy of
    /// an image that is not pushed rolls out exactly when its content changed (Skaffold's
    /// `TagWithImageID`). Fails when `image_id` is not a `sha256:` image ID.
    pub async fn tag_with_image_id(
        &self,
        reference: &ImageRef,
        image_id: &str,
    ) -> Result<ImageRef, BuildError> {
        let unique = reference
            .with_image_id(image_id)
            .ok_or_else(|| BuildError::Failed {
                image: reference.to_string(),
                reason: format!("`{image_id}` is not a sha256 image ID"),
            })?;
        if self.image_id(&unique).await?.as_deref() != Some(image_id) {
            self.tag(image_id, &unique).await?;
        }
        Ok(unique)
    }

    /// Removes the image-ID tags ([`DockerEngine::tag_with_image_id`]) of `repository` that are
    /// no longer needed: kept are those of `keep` (image IDs), of images any container (running
    /// or not) was created from, and of the `keep_last` newest images; the others are untagged,
    /// and an image left with no tag is deleted. Only tags that spell the image's own ID are
    /// touched — what `tag_with_image_id` made — never the tagger's tags or anyone else's.
    /// Returns the references removed.
    pub async fn prune_image_id_tags(
        &self,
        repository: &str,
        keep: &[&str],
        keep_last: usize,
    ) -> Result<Vec<String>, BuildError> {
        let images = self
            .docker
            .list_images(Some(ListImagesOptions {
                filters: Some(HashMap::from([(
                    "reference".to_owned(),
                    vec![repository.to_owned()],
                )])),
                ..Default::default()
            }))
            .await
            .map_err(|e| self.engine_error(repository, &e))?;
        let tagged: Vec<(i64, String, String)> = images
            .into_iter()
            .flat_map(|image| {
                let hex = image
                    .id
                    .strip_prefix("sha256:")
                    .unwrap_or(&image.id)
                    .to_owned();
                let own = format!("{repository}:{hex}");
                image
                    .repo_tags
                    .contains(&own)
                    .then(|| (image.created, image.id.clone(), own))
            })
            .collect();
        if tagged.len() <= keep_last {
            return Ok(Vec::new());
        }
        // Newest by when the engine last tagged the image: images skiff assembles itself have
        // a fixed creation time (reproducible digests), and a cache hit is tagged anew.
        let mut tagged: Vec<(i64, String, String)> = {
            let mut by_use = Vec::with_capacity(tagged.len());
            for (created, id, reference) in tagged {
                let last_tagged = self
                    .docker
                    .inspect_image(&id)
                    .await
                    .ok()
                    .and_then(|i| i.metadata?.last_tag_time)
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                    .and_then(|t| t.timestamp_nanos_opt());
                by_use.push((
                    last_tagged.unwrap_or(created.saturating_mul(1_000_000_000)),
                    id,
                    reference,
                ));
            }
            by_use
        };
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                ..Default::default()
            }))
            .await
            .map_err(|e| self.engine_error(repository, &e))?;
        let in_use: HashSet<String> = containers.into_iter().filter_map(|c| c.image_id).collect();
        tagged.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        let mut removed = Vec::new();
        for (_, id, reference) in tagged.into_iter().skip(keep_last) {
            if keep.contains(&id.as_str()) || in_use.contains(&id) {
                continue;
            }
            match self.remove_image(&reference).await {
                Ok(_) => removed.push(reference),
                // In use by a container created since the listing, or a parent of another
                // image: it stays, as the engine decided.
                Err(BuildError::Failed { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(removed)
    }

    /// Removes the local image `reference` (untagging it when other tags remain). Returns
    /// `false` when there was no such image.
    pub async fn remove_image(
        &self,
        reference: &(impl fmt::Display + ?Sized),
    ) -> Result<bool, BuildError> {
        let reference = reference.to_string();
        let options = RemoveImageOptions {
            force: false,
            noprune: false,
            platforms: None,
        };
        match self
            .docker
            .remove_image(&reference, Some(options), None)
            .await
        {
            Ok(_) => Ok(true),
            Err(EngineError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(self.engine_error(&reference, &e)),
        }
    }

    /// Pushes `reference` (`latest` when it has no tag) to its registry, reporting progress
    /// as [`Event::BuildOutput`] lines for `image_name`, and returns the manifest digest
    /// (`sha256:…`) the registry stored.
    pub async fn push(
        &self,
        reference: &ImageRef,
        credentials: Option<&Credentials>,
        reporter: &dyn Reporter,
        image_name: &str,
    ) -> Result<String, BuildError> {
        let tag = reference.tag().unwrap_or("latest");
        let registry = reference.registry().unwrap_or("docker.io").to_owned();
        let shown = reference.with_tag(tag).to_string();
        let push_error = |reason: String| BuildError::Push {
            reference: shown.clone(),
            registry: registry.clone(),
            reason,
        };
        let options = PushImageOptions {
            tag: Some(tag.to_owned()),
            platform: None,
        };
        let mut stream = self.docker.push_image(
            reference.repository(),
            Some(options),
            credentials.map(Credentials::to_bollard),
        );
        let mut digest = None;
        let mut last_line = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    let Some(status) = info.status else { continue };
                    if let Some(found) = digest_in(&status) {
                        digest = Some(found);
                    }
                    let in_progress = info
                        .progress_detail
                        .as_ref()
                        .is_some_and(|p| p.current.is_some());
                    let line = status.trim().to_owned();
                    if in_progress || line.is_empty() || line == last_line {
                        continue;
                    }
                    reporter.report(Event::BuildOutput {
                        image: image_name.to_owned(),
                        line: format!("push: {line}"),
                    });
                    last_line = line;
                }
                Err(EngineError::DockerStreamError { error }) => {
                    return Err(push_error(push_reason(&registry, &error)));
                }
                Err(EngineError::DockerResponseServerError {
                    status_code,
                    message,
                }) => {
                    let reason = if status_code == 404 {
                        format!("the engine has no image {shown}; build it first ({message})")
                    } else {
                        push_reason(
                            &registry,
                            &format!("engine answered HTTP {status_code}: {message}"),
                        )
                    };
                    return Err(push_error(reason));
                }
                Err(e) if is_unreachable(&e) => {
                    return Err(BuildError::EngineUnavailable {
                        endpoint: self.endpoint.clone(),
                        reason: describe(&e),
                    });
                }
                Err(e) => return Err(push_error(describe(&e))),
            }
        }
        if let Some(digest) = digest {
            return Ok(digest);
        }
        // Older engines may not print the digest; the engine still records it.
        let repo_digests = self
            .docker
            .inspect_image(&shown)
            .await
            .ok()
            .and_then(|i| i.repo_digests)
            .unwrap_or_default();
        let prefix = format!("{}@", reference.repository());
        repo_digests
            .iter()
            .find_map(|d| d.strip_prefix(&prefix).map(str::to_owned))
            .ok_or_else(|| push_error(format!("registry {registry} did not report a digest")))
    }

    /// The digest (`sha256:…`) the registry holds for `reference`, asked through the engine's
    /// distribution endpoint; `None` when the registry cannot be asked (unreachable, unknown
    /// image, or an insecure registry the endpoint does not support).
    pub async fn remote_digest(&self, reference: &(impl fmt::Display + ?Sized)) -> Option<String> {
        self.remote_digest_with(reference, None).await
    }

    /// [`DockerEngine::remote_digest`] with credentials for the registry.
    pub async fn remote_digest_with(
        &self,
        reference: &(impl fmt::Display + ?Sized),
        credentials: Option<&Credentials>,
    ) -> Option<String> {
        self.docker
            .inspect_registry_image(
                &reference.to_string(),
                credentials.map(Credentials::to_bollard),
            )
            .await
            .ok()
            .and_then(|d| d.descriptor.digest)
            .filter(|d| d.starts_with("sha256:"))
    }

    /// Turns an API error into a [`BuildError`]: losing the engine is
    /// [`BuildError::EngineUnavailable`], anything else a failure concerning `subject`.
    fn engine_error(&self, subject: &str, error: &EngineError) -> BuildError {
        if is_unreachable(error) {
            BuildError::EngineUnavailable {
                endpoint: self.endpoint.clone(),
                reason: describe(error),
            }
        } else {
            BuildError::Failed {
                image: subject.to_owned(),
                reason: describe(error),
            }
        }
    }
}

/// The engine as the image store a `custom` build's result is looked up in.
#[async_trait::async_trait]
impl crate::custom::ImageLookup for DockerEngine {
    async fn image_id(&self, reference: &ImageRef) -> Result<Option<String>, BuildError> {
        DockerEngine::image_id(self, reference).await
    }
}

/// Builds `docker:` artifacts with a [`DockerEngine`].
#[derive(Debug)]
pub struct DockerBuilder {
    engine: Arc<DockerEngine>,
    use_buildkit: bool,
    config: Option<Arc<DockerConfig>>,
    warned_buildkit: AtomicBool,
}

impl DockerBuilder {
    /// A builder using `engine`. `use_buildkit` is `build.local.useBuildkit`; see the module
    /// documentation for what it changes.
    pub fn new(engine: Arc<DockerEngine>, use_buildkit: bool) -> DockerBuilder {
        DockerBuilder {
            engine,
            use_buildkit,
            config: None,
            warned_buildkit: AtomicBool::new(false),
        }
    }

    /// Uses the registry credentials of `config` to pull base images and to push.
    pub fn with_docker_config(mut self, config: Arc<DockerConfig>) -> DockerBuilder {
        self.config = Some(config);
        self
    }

    /// The engine this builder uses.
    pub fn engine(&self) -> &DockerEngine {
        &self.engine
    }

    /// Builds `request` from an already packed context: `tar` holds the context and the
    /// Dockerfile at `dockerfile_in_archive`. [`Builder::build`] packs the context and calls
    /// this; callers that pack differently can call it directly.
    pub async fn build_archive(
        &self,
        request: &BuildRequest<'_>,
        tar: Vec<u8>,
        dockerfile_in_archive: &str,
        reporter: &dyn Reporter,
    ) -> Result<BuiltImage, BuildError> {
        let artifact = request.artifact;
        let image = artifact.image.as_str();
        let spec = docker_spec(request)?;
        self.check_features(image, spec, reporter)?;

        let platform = match artifact.platforms.as_slice() {
            [] => String::new(),
            [one] => one.clone(),
            many => {
                return Err(BuildError::Failed {
                    image: image.to_owned(),
                    reason: format!(
                        "building for several platforms ({}) needs buildx; the engine builds one platform at a time — pick one with `platforms`",
                        many.join(", ")
                    ),
                });
            }
        };
        let build_args = render_build_args(request, spec)?;
        let options = BuildImageOptions {
            dockerfile: dockerfile_in_archive.to_owned(),
            t: Some(build_tag(&request.tag)),
            target: spec.target.clone().unwrap_or_default(),
            buildargs: (!build_args.is_empty()).then(|| {
                build_args
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }),
            networkmode: spec.network.clone().filter(|n| !n.is_empty()),
            cachefrom: (!spec.cache_from.is_empty()).then(|| spec.cache_from.clone()),
            nocache: spec.no_cache,
            pull: spec.pull_parent.then(|| "1".to_owned()),
            rm: true,
            forcerm: true,
            platform,
            ..BuildImageOptions::default()
        };
        let registry_auth = match &self.config {
            Some(config) => {
                let config = Arc::clone(config);
                tokio::task::spawn_blocking(move || config.all_credentials())
                    .await
                    .ok()
            }
            None => None,
        };

        let docker = with_extra_hosts(self.engine.client(), &spec.add_hosts);
        let mut stream =
            docker.build_image(options, registry_auth, Some(bollard::body_full(tar.into())));
        let mut log = BuildLog::default();
        let mut image_id = None;
        let mut failure: Option<String> = None;
        let mut pending = String::new();
        let emit = |log: &mut BuildLog, line: &str| {
            let line = line.trim_end();
            if !line.is_empty() {
                log.push(line);
                reporter.report(Event::BuildOutput {
                    image: image.to_owned(),
                    line: line.to_owned(),
                });
            }
        };
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream.as_deref() {
                        // Output arrives in arbitrary pieces: only whole lines are reported.
                        pending.push_str(text);
                        while let Some(end) = pending.find('\n') {
                            let line: String = pending.drain(..=end).collect();
                            emit(&mut log, &line);
                        }
                    }
                    if let Some(status) = info.status.as_deref() {
                        emit(&mut log, &std::mem::take(&mut pending));
                        let in_progress = info
                            .progress_detail
                            .as_ref()
                            .is_some_and(|p| p.current.is_some());
                        let line = match info.id.as_deref() {
                            Some(id) if !id.is_empty() => format!("{id}: {}", status.trim()),
                            _ => status.trim().to_owned(),
                        };
                        if !in_progress && !line.is_empty() && log.last() != Some(line.as_str()) {
                            log.push(&line);
                            reporter.report(Event::BuildOutput {
                                image: image.to_owned(),
                                line,
                            });
                        }
                    }
                    if let Some(id) = info.aux.and_then(|aux| aux.id) {
                        image_id = Some(id);
                    }
                }
                Err(EngineError::DockerStreamError { error }) => {
                    failure = Some(error);
                    break;
                }
                Err(EngineError::DockerResponseServerError { message, .. }) => {
                    failure = Some(message);
                    break;
                }
                Err(e) if is_unreachable(&e) => {
                    return Err(BuildError::EngineUnavailable {
                        endpoint: self.engine.endpoint.clone(),
                        reason: describe(&e),
                    });
                }
                Err(e) => {
                    failure = Some(describe(&e));
                    break;
                }
            }
        }
        emit(&mut log, &std::mem::take(&mut pending));
        if let Some(message) = failure {
            let dockerfile = dockerfile_path(&artifact.context, spec);
            return Err(classify_failure(
                &FailureContext {
                    image,
                    dockerfile: &dockerfile,
                    build_args: &build_args,
                    use_buildkit: self.use_buildkit,
                    log: &log,
                },
                &message,
            ));
        }

        let image_id = match image_id {
            Some(id) => Some(id),
            None => self.engine.image_id(&request.tag).await?,
        };
        let mut built = BuiltImage {
            image_name: artifact.image.clone(),
            reference: request.tag.clone(),
            image_id,
        };
        if request.push {
            let credentials = self.credentials_for(&request.tag).await?;
            let digest = self
                .engine
                .push(&request.tag, credentials.as_ref(), reporter, image)
                .await?;
            built.reference = with_digest(&request.tag, &digest)?;
            reporter.report(Event::Pushed {
                image: artifact.image.clone(),
                reference: built.reference.to_string(),
            });
        }
        Ok(built)
    }

    /// Refuses what the classic builder cannot do, and says once that BuildKit is not used.
    fn check_features(
        &self,
        image: &str,
        spec: &DockerSpec,
        reporter: &dyn Reporter,
    ) -> Result<(), BuildError> {
        let feature = if !spec.secrets.is_empty() {
            Some("secrets")
        } else if spec.ssh.is_some() {
            Some("ssh")
        } else {
            None
        };
        if let Some(feature) = feature {
            return Err(if self.use_buildkit {
                BuildError::Failed {
                    image: image.to_owned(),
                    reason: format!(
                        "`{feature}` needs a BuildKit session, which skiff's engine-API builder cannot open yet; build this artifact with a `custom` builder running `DOCKER_BUILDKIT=1 docker build`"
                    ),
                }
            } else {
                BuildError::NeedsBuildKit {
                    image: image.to_owned(),
                    feature: feature.to_owned(),
                }
            });
        }
        if self.use_buildkit && !self.warned_buildkit.swap(true, Ordering::Relaxed) {
            reporter.report(Event::Message {
                source: SOURCE,
                level: Level::Warning,
                text: "build.local.useBuildkit is set, but skiff builds through the Docker engine API with the classic builder; BuildKit-only Dockerfile features (RUN --mount, heredocs) are not available".to_owned(),
            });
        }
        Ok(())
    }

    /// The credentials for `reference`'s registry, if a Docker config was given.
    async fn credentials_for(
        &self,
        reference: &ImageRef,
    ) -> Result<Option<Credentials>, BuildError> {
        let Some(config) = &self.config else {
            return Ok(None);
        };
        let config = Arc::clone(config);
        let registry = reference.registry().unwrap_or("docker.io").to_owned();
        tokio::task::spawn_blocking(move || config.credentials_for(&registry))
            .await
            .map_err(|e| BuildError::Push {
                reference: reference.to_string(),
                registry: reference.registry().unwrap_or("docker.io").to_owned(),
                reason: format!("looking up credentials failed: {e}"),
            })?
    }
}

#[async_trait::async_trait]
impl Builder for DockerBuilder {
    async fn build(
        &self,
        request: &BuildRequest<'_>,
        reporter: &dyn Reporter,
    ) -> Result<BuiltImage, BuildError> {
        let artifact = request.artifact;
        let spec = docker_spec(request)?;
        self.check_features(&artifact.image, spec, reporter)?;
        let dockerfile = dockerfile_path(&artifact.context, spec);
        if !dockerfile.is_file() {
            return Err(BuildError::MissingDockerfile {
                image: artifact.image.clone(),
                path: dockerfile,
            });
        }
        let ignore =
            crate::dockerignore::DockerIgnore::for_artifact(&artifact.context, &dockerfile)?;
        let archive = crate::context::pack(&artifact.context, dockerfile_rel(spec), &ignore)?;
        reporter.report(Event::BuildContext {
            image: artifact.image.clone(),
            bytes: archive.bytes,
            files: archive.files,
        });
        if let Some(text) = archive.large_context_warning() {
            reporter.report(Event::Message {
                source: SOURCE,
                level: Level::Warning,
                text,
            });
        }
        let dockerfile_in_archive = archive.dockerfile_in_archive.clone();
        self.build_archive(request, archive.tar, &dockerfile_in_archive, reporter)
            .await
    }
}

/// The Docker options of `request`, or [`BuildError::Unsupported`] for other builder kinds.
fn docker_spec<'a>(request: &BuildRequest<'a>) -> Result<&'a DockerSpec, BuildError> {
    match &request.artifact.builder {
        BuilderSpec::Docker(spec) => Ok(spec),
        other => Err(BuildError::Unsupported {
            image: request.artifact.image.clone(),
            kind: other.kind().to_owned(),
        }),
    }
}

/// The Dockerfile as written relative to the context (`Dockerfile` when unset).
fn dockerfile_rel(spec: &DockerSpec) -> &str {
    if spec.dockerfile.trim().is_empty() {
        "Dockerfile"
    } else {
        &spec.dockerfile
    }
}

/// The Dockerfile on disk.
fn dockerfile_path(context: &Path, spec: &DockerSpec) -> PathBuf {
    context.join(dockerfile_rel(spec))
}

/// The build args sent to the engine: `buildArgs` rendered as templates over `IMAGE_REPO`,
/// `IMAGE_TAG`, `IMAGE_NAME`, the required artifacts' aliases and the environment (first
/// wins), plus each required artifact's alias set to its built reference (unless `buildArgs`
/// sets it). An arg without a value takes the environment's value, or is left out (Docker's
/// semantics for `--build-arg NAME`).
pub fn render_build_args(
    request: &BuildRequest<'_>,
    spec: &DockerSpec,
) -> Result<BTreeMap<String, String>, BuildError> {
    let repository = request.tag.repository().to_owned();
    let image_vars = BTreeMap::from([
        ("IMAGE_REPO".to_owned(), repository.clone()),
        (
            "IMAGE_TAG".to_owned(),
            request.tag.tag().unwrap_or("latest").to_owned(),
        ),
        ("IMAGE_NAME".to_owned(), repository),
    ]);
    let vars = LayeredVars(vec![&image_vars, &request.required, request.env]);
    let mut args = BTreeMap::new();
    for (name, value) in &spec.build_args {
        match value {
            Some(template) => {
                let rendered =
                    template
                        .render_with(&vars, MissingKey::NoValue)
                        .map_err(|source| BuildError::Template {
                            image: request.artifact.image.clone(),
                            field: format!("docker.buildArgs.{name}"),
                            source,
                        })?;
                args.insert(name.clone(), rendered);
            }
            None => {
                if let Some(value) = Vars::get(request.env, name) {
                    args.insert(name.clone(), value.to_owned());
                }
            }
        }
    }
    for requirement in &request.artifact.requires {
        let Some(alias) = &requirement.alias else {
            continue;
        };
        if spec.build_args.contains_key(alias) {
            continue;
        }
        if let Some(reference) = request.required.get(alias) {
            args.insert(alias.clone(), reference.clone());
        }
    }
    Ok(args)
}

/// The `t` a build is tagged with: the reference without any digest.
fn build_tag(reference: &ImageRef) -> String {
    match reference.tag() {
        Some(tag) => reference.with_tag(tag).to_string(),
        None => reference.repository().to_owned(),
    }
}

/// `reference` pinned to `digest`: `name:tag@sha256:…`.
fn with_digest(reference: &ImageRef, digest: &str) -> Result<ImageRef, BuildError> {
    let plain = build_tag(reference);
    format!("{plain}@{digest}")
        .parse()
        .map_err(|e| BuildError::Push {
            reference: plain.clone(),
            registry: reference.registry().unwrap_or("docker.io").to_owned(),
            reason: format!("the registry reported an unusable digest `{digest}`: {e}"),
        })
}

/// A copy of `docker` whose build requests carry one `extrahosts` parameter per entry: the
/// engine reads the parameter repeatedly (a comma-joined value is one invalid host), which the
/// typed options cannot express.
fn with_extra_hosts(docker: &Docker, hosts: &[String]) -> Docker {
    let extra: String = hosts
        .iter()
        .filter(|h| !h.trim().is_empty())
        .map(|h| format!("&extrahosts={}", query_escape(h.trim())))
        .collect();
    if extra.is_empty() {
        return docker.clone();
    }
    docker.clone().with_request_modifier(move |mut request| {
        if request.uri().path().ends_with("/build") {
            let uri = request.uri().to_string();
            let rewritten = if uri.contains('?') {
                format!("{uri}{extra}")
            } else {
                format!("{uri}?{}", &extra[1..])
            };
            if let Ok(parsed) = rewritten.parse() {
                *request.uri_mut() = parsed;
            }
        }
        request
    })
}

/// Percent-encodes a query value.
fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The `sha256:…` digest in a push status line such as `v1: digest: sha256:… size: 528`.
fn digest_in(status: &str) -> Option<String> {
    let (_, rest) = status.split_once("digest: ")?;
    let digest = rest.split_whitespace().next()?;
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| digest.to_owned())
}

/// A push error in words that name what to fix.
fn push_reason(registry: &str, message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    let message = message.trim();
    if lower.contains("server gave http response to https client") {
        format!(
            "registry {registry} speaks plain HTTP but the engine expects HTTPS; add it to the engine's `insecure-registries`: {message}"
        )
    } else if [
        "connection refused",
        "dial tcp",
        "no such host",
        "i/o timeout",
        "network is unreachable",
        "connection reset",
        "no route to host",
    ]
    .iter()
    .any(|p| lower.contains(p))
    {
        format!(
            "registry {registry} unreachable: {message}; {}",
            crate::push_again_hint(registry)
        )
    } else if lower.contains("unauthorized") || lower.contains("authentication required") {
        format!(
            "HTTP 401 Unauthorized from {registry}: {message}; log in (`docker login {registry}`) or configure credentials"
        )
    } else if lower.contains("denied") {
        format!(
            "HTTP 403 Forbidden from {registry}: {message}; the credentials may not push to this repository"
        )
    } else if let Some(status) = http_status_in(&lower) {
        format!("HTTP {status} from {registry}: {message}")
    } else if lower.contains("does not exist locally") || lower.contains("no such image") {
        format!("{message}; build the image first")
    } else {
        message.to_owned()
    }
}

/// The status in `received unexpected HTTP status: 500 Internal Server Error`.
fn http_status_in(lower: &str) -> Option<u16> {
    let (_, rest) = lower.split_once("http status: ")?;
    rest.get(..3)?.parse().ok()
}

/// The last lines of a build and the step it was in.
#[derive(Debug, Default)]
struct BuildLog {
    lines: VecDeque<String>,
    /// The image of the `FROM` step running, when the current step is one.
    from_base: Option<String>,
    in_from_step: bool,
}

impl BuildLog {
    fn push(&mut self, line: &str) {
        if let Some(instruction) = step_instruction(line) {
            let mut words = instruction.split_whitespace();
            let keyword = words.next().unwrap_or_default();
            self.in_from_step = keyword.eq_ignore_ascii_case("FROM");
            self.from_base = if self.in_from_step {
                words.find(|w| !w.starts_with("--")).map(str::to_owned)
            } else {
                None
            };
        }
        if self.lines.len() == KEPT_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line.to_owned());
    }

    fn last(&self) -> Option<&str> {
        self.lines.back().map(String::as_str)
    }

    fn tail(&self) -> String {
        self.lines
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The instruction of a classic-builder step line: `Step 2/5 : RUN make` → `RUN make`.
fn step_instruction(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("Step ")?;
    let (counter, instruction) = rest.split_once(" : ")?;
    counter
        .chars()
        .all(|c| c.is_ascii_digit() || c == '/')
        .then_some(instruction.trim())
}

/// What a failed build's error is judged against.
struct FailureContext<'a> {
    image: &'a str,
    dockerfile: &'a Path,
    /// The build args sent, for reading the Dockerfile's `FROM` lines as the engine did.
    build_args: &'a BTreeMap<String, String>,
    use_buildkit: bool,
    log: &'a BuildLog,
}

/// Turns the engine's error message into the most specific [`BuildError`].
fn classify_failure(context: &FailureContext<'_>, message: &str) -> BuildError {
    let message = message.trim();
    let lower = message.to_ascii_lowercase();
    let image = context.image.to_owned();

    if let Some((line, text)) = parse_error_line(message) {
        return BuildError::Dockerfile {
            path: context.dockerfile.to_path_buf(),
            line,
            message: text,
        };
    }
    if lower.contains("requires buildkit") {
        let feature = if lower.contains("--mount") {
            "RUN --mount"
        } else {
            "this Dockerfile syntax"
        };
        return if context.use_buildkit {
            BuildError::Failed {
                image,
                reason: format!(
                    "{message} (skiff's engine-API builder uses the classic builder; build this artifact with a `custom` builder running `DOCKER_BUILDKIT=1 docker build`)"
                ),
            }
        } else {
            BuildError::NeedsBuildKit {
                image,
                feature: feature.to_owned(),
            }
        };
    }

    const PULL_FAILURES: &[&str] = &[
        "pull access denied",
        "manifest unknown",
        "repository does not exist",
        "not found",
        "no such host",
        "dial tcp",
        "i/o timeout",
        "connection refused",
        "network is unreachable",
        "temporary failure in name resolution",
        "server misbehaving",
        "tls handshake timeout",
        "unauthorized",
        "toomanyrequests",
        "request canceled while waiting for connection",
    ];
    const CERTAIN_PULL_FAILURES: &[&str] = &[
        "pull access denied",
        "manifest unknown",
        "repository does not exist",
    ];
    let pull_failure = PULL_FAILURES.iter().any(|p| lower.contains(p));
    let certain = CERTAIN_PULL_FAILURES.iter().any(|p| lower.contains(p))
        || (lower.contains("manifest for ") && lower.contains("not found"));
    if !lower.contains("invalid reference format")
        && ((context.log.in_from_step && pull_failure) || certain)
    {
        let base = context
            .log
            .from_base
            .clone()
            .filter(|b| context.log.in_from_step && !b.contains('$'))
            .or_else(|| base_in_message(message))
            .or_else(|| {
                std::fs::read_to_string(context.dockerfile)
                    .ok()
                    .and_then(|text| first_external_base(&text, context.build_args))
            })
            .unwrap_or_else(|| "base image".to_owned());
        return BuildError::BaseImage {
            image,
            base,
            reason: message.to_owned(),
        };
    }

    let tail = context.log.tail();
    let reason = if tail.is_empty() {
        message.to_owned()
    } else {
        format!("{message}\nlast output:\n{tail}")
    };
    BuildError::Failed { image, reason }
}

/// `dockerfile parse error line 3: unknown instruction: FOO` (also `… on line 3 …`) → (3,
/// `unknown instruction: FOO`).
fn parse_error_line(message: &str) -> Option<(usize, String)> {
    let lower = message.to_ascii_lowercase();
    let start = lower.find("dockerfile parse error")? + "dockerfile parse error".len();
    let rest = message[start..].trim_start();
    let rest = rest.strip_prefix("on ").unwrap_or(rest);
    let rest = rest.strip_prefix("line ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let line = digits.parse().ok()?;
    let text = rest[digits.len()..]
        .trim_start_matches(':')
        .trim()
        .to_owned();
    Some((line, text))
}

/// The image a pull error names: `pull access denied for X, …`, `manifest for X not found`,
/// or a registry URL `https://host/v2/repo/manifests/tag`.
fn base_in_message(message: &str) -> Option<String> {
    if let Some((_, rest)) = message.split_once("pull access denied for ") {
        let name = rest.split([',', ' ']).next()?;
        return (!name.is_empty()).then(|| name.to_owned());
    }
    if let Some((_, rest)) = message.split_once("manifest for ") {
        let name = rest.split_whitespace().next()?;
        return (!name.is_empty()).then(|| name.to_owned());
    }
    for scheme in ["https://", "http://"] {
        let Some((_, rest)) = message.split_once(scheme) else {
            continue;
        };
        let url = rest.split(['"', ' ', '\'']).next()?;
        let (host, path) = url.split_once("/v2/")?;
        if let Some((repo, tag)) = path.split_once("/manifests/") {
            let repo = if host.ends_with("docker.io") {
                repo.strip_prefix("library/").unwrap_or(repo).to_owned()
            } else {
                format!("{host}/{repo}")
            };
            let separator = if tag.starts_with("sha256:") { '@' } else { ':' };
            return Some(format!("{repo}{separator}{tag}"));
        }
    }
    None
}

/// The first image a Dockerfile's stages are built on that is not an earlier stage or
/// `scratch`, with build args substituted as the engine does.
fn first_external_base(text: &str, build_args: &BTreeMap<String, String>) -> Option<String> {
    let args = build_args
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    let parsed = crate::dockerfile::parse(text, &args).ok()?;
    parsed
        .stages
        .into_iter()
        .find(|stage| stage.base_stage.is_none() && !stage.base.eq_ignore_ascii_case("scratch"))
        .map(|stage| stage.base)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ArtifactSpec;
    use crate::artifact::Requirement;
    use skiff_types::template::Template;

    static NO_ARGS: BTreeMap<String, String> = BTreeMap::new();

    fn context<'a>(log: &'a BuildLog, dockerfile: &'a Path) -> FailureContext<'a> {
        FailureContext {
            image: "app",
            dockerfile,
            build_args: &NO_ARGS,
            use_buildkit: false,
            log,
        }
    }

    #[test]
    fn parse_errors_carry_the_line() {
        let log = BuildLog::default();
        let path = Path::new("/ctx/Dockerfile");
        for message in [
            "dockerfile parse error line 3: unknown instruction: FOO",
            "failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 3: unknown instruction: FOO",
            "Dockerfile parse error on line 3: unknown instruction: FOO (did you mean FROM?)",
        ] {
            match classify_failure(&context(&log, path), message) {
                BuildError::Dockerfile {
                    path: p,
                    line,
                    message,
                } => {
                    assert_eq!(p, path);
                    assert_eq!(line, 3);
                    assert!(message.starts_with("unknown instruction: FOO"), "{message}");
                }
                other => panic!("{message}: {other:?}"),
            }
        }
    }

    #[test]
    fn pull_failures_in_a_from_step_are_base_image_errors() {
        let mut log = BuildLog::default();
        log.push("Step 1/3 : FROM --platform=linux/amd64 nosuchimage.invalid/x:1 AS build");
        let message = "Get \"https://nosuchimage.invalid/v2/\": dial tcp: lookup nosuchimage.invalid on 10.0.0.1:53: no such host";
        match classify_failure(
            &context(&log, Path::new("/nonexistent/Dockerfile")),
            message,
        ) {
            BuildError::BaseImage {
                image,
                base,
                reason,
            } => {
                assert_eq!(image, "app");
                assert_eq!(base, "nosuchimage.invalid/x:1");
                assert!(reason.contains("no such host"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn base_is_found_in_the_message_or_the_dockerfile() {
        let log = BuildLog::default();
        let path = Path::new("/nonexistent/Dockerfile");
        let base = |message: &str| match classify_failure(&context(&log, path), message) {
            BuildError::BaseImage { base, .. } => base,
            other => panic!("{message}: {other:?}"),
        };
        assert_eq!(
            base(
                "pull access denied for nosuch/app, repository does not exist or may require 'docker login'"
            ),
            "nosuch/app"
        );
        assert_eq!(
            base("manifest for 127.0.0.1:5000/x:9 not found: manifest unknown"),
            "127.0.0.1:5000/x:9"
        );

        let dir = tempfile::tempdir().unwrap();
        let dockerfile = dir.path().join("Dockerfile");
        std::fs::write(
            &dockerfile,
            "# syntax\nFROM scratch AS s\nFROM registry.invalid/base:2\n",
        )
        .unwrap();
        match classify_failure(
            &context(&log, &dockerfile),
            "manifest unknown: manifest unknown",
        ) {
            BuildError::BaseImage { base, .. } => assert_eq!(base, "registry.invalid/base:2"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_failures_quote_the_last_lines() {
        let mut log = BuildLog::default();
        for i in 0..30 {
            log.push(&format!("line {i}"));
        }
        log.push("Step 2/3 : RUN curl http://x.invalid");
        // A network error outside a FROM step is the build's own failure.
        match classify_failure(&context(&log, Path::new("/x")), "dial tcp: no such host") {
            BuildError::Failed { reason, .. } => {
                assert!(reason.contains("dial tcp"));
                assert!(reason.contains("Step 2/3"));
                assert!(!reason.contains("line 5\n"));
                assert_eq!(reason.lines().count(), 2 + KEPT_LINES);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mount_without_buildkit() {
        let log = BuildLog::default();
        let message =
            "the --mount option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/";
        assert!(matches!(
            classify_failure(&context(&log, Path::new("/x")), message),
            BuildError::NeedsBuildKit { feature, .. } if feature == "RUN --mount"
        ));
    }

    #[test]
    fn first_external_base_skips_stages_and_scratch() {
        let text = "ARG V=1\nFROM scratch AS s\nFROM s AS t\nFROM alpine:$V\n";
        let none = BTreeMap::new();
        assert_eq!(
            first_external_base(text, &none).as_deref(),
            Some("alpine:1")
        );
        let args = BTreeMap::from([("V".to_owned(), "3".to_owned())]);
        assert_eq!(
            first_external_base(text, &args).as_deref(),
            Some("alpine:3")
        );
        assert_eq!(first_external_base("FROM scratch\n", &none), None);
    }

    #[test]
    fn push_digests_and_reasons() {
        let d = "a".repeat(64);
        assert_eq!(
            digest_in(&format!("v1: digest: sha256:{d} size: 528")),
            Some(format!("sha256:{d}"))
        );
        assert_eq!(digest_in("Pushed"), None);
        let r = push_reason(
            "127.0.0.1:5999",
            "Get \"http://127.0.0.1:5999/v2/\": dial tcp 127.0.0.1:5999: connect: connection refused",
        );
        assert!(
            r.starts_with("registry 127.0.0.1:5999 unreachable: "),
            "{r}"
        );
        assert!(r.contains("connection refused"), "{r}");
        assert!(
            r.contains("is the registry running at 127.0.0.1:5999?")
                && r.contains("pushes again on the next change"),
            "{r}"
        );
        assert!(push_reason("r", "unauthorized: authentication required").contains("HTTP 401"));
        assert!(
            push_reason("r", "denied: requested access to the resource is denied")
                .contains("HTTP 403")
        );
        assert!(
            push_reason(
                "r",
                "received unexpected HTTP status: 500 Internal Server Error"
            )
            .contains("HTTP 500")
        );
    }

    #[test]
    fn base_from_registry_urls() {
        assert_eq!(
            base_in_message(
                "failed to do request: Head \"https://nosuchimage.invalid/v2/x/manifests/1\": dial tcp"
            ),
            Some("nosuchimage.invalid/x:1".to_owned())
        );
        assert_eq!(
            base_in_message(
                "Head \"https://registry-1.docker.io/v2/library/alpine/manifests/3\": x"
            ),
            Some("alpine:3".to_owned())
        );
    }

    #[test]
    fn step_lines() {
        assert_eq!(step_instruction("Step 1/2 : FROM x"), Some("FROM x"));
        assert_eq!(step_instruction("Step one : FROM x"), None);
        assert_eq!(step_instruction(" ---> Running"), None);
    }

    #[test]
    fn escapes_query_values() {
        assert_eq!(query_escape("a.test:1.2.3.4"), "a.test:1.2.3.4");
        assert_eq!(query_escape("h:::1 &x"), "h:::1%20%26x");
    }

    fn artifact(build_args: BTreeMap<String, Option<Template>>) -> ArtifactSpec {
        ArtifactSpec {
            image: "app".into(),
            context: PathBuf::from("/ctx"),
            builder: BuilderSpec::Docker(DockerSpec {
                build_args,
                ..DockerSpec::default()
            }),
            requires: vec![Requirement {
                image: "base".into(),
                alias: Some("BASE".into()),
            }],
            platforms: vec![],
        }
    }

    #[test]
    fn build_args_render_with_image_vars_required_and_env() {
        let args = BTreeMap::from([
            (
                "TAG".to_owned(),
                Some(Template::parse("{{.IMAGE_TAG}}").unwrap()),
            ),
            (
                "REPO".to_owned(),
                Some(Template::parse("{{.IMAGE_REPO}}/{{.IMAGE_NAME}}").unwrap()),
            ),
            (
                "USER_ARG".to_owned(),
                Some(Template::parse("{{.USER}}-{{.BASE}}").unwrap()),
            ),
            ("FROM_ENV".to_owned(), None),
            ("UNSET".to_owned(), None),
        ]);
        let a = artifact(args);
        let env = BTreeMap::from([
            ("USER".to_owned(), "dev".to_owned()),
            ("FROM_ENV".to_owned(), "e".to_owned()),
            ("IMAGE_TAG".to_owned(), "ignored".to_owned()),
        ]);
        let request = BuildRequest {
            artifact: &a,
            tag: "127.0.0.1:5000/app:v7".parse().unwrap(),
            push: false,
            required: BTreeMap::from([("BASE".to_owned(), "base:1".to_owned())]),
            env: &env,
        };
        let BuilderSpec::Docker(spec) = &a.builder else {
            unreachable!()
        };
        let rendered = render_build_args(&request, spec).unwrap();
        assert_eq!(rendered["TAG"], "v7");
        assert_eq!(rendered["REPO"], "127.0.0.1:5000/app/127.0.0.1:5000/app");
        assert_eq!(rendered["USER_ARG"], "dev-base:1");
        assert_eq!(rendered["FROM_ENV"], "e");
        assert_eq!(rendered["BASE"], "base:1");
        assert!(!rendered.contains_key("UNSET"));

        let bad = artifact(BTreeMap::from([(
            "X".to_owned(),
            Some(Template::parse("{{.NOPE}}").unwrap()),
        )]));
        let request = BuildRequest {
            artifact: &bad,
            ..request
        };
        let BuilderSpec::Docker(spec) = &bad.builder else {
            unreachable!()
        };
        // As Skaffold (Go's default `missingkey`): a variable that is not set prints `<no value>`.
        let args = render_build_args(&request, spec).unwrap();
        assert_eq!(args.get("X").map(String::as_str), Some("<no value>"));

        let bad = artifact(BTreeMap::from([(
            "X".to_owned(),
            Some(Template::parse("{{.NOPE | lower}}").unwrap()),
        )]));
        let request = BuildRequest {
            artifact: &bad,
            ..request
        };
        let BuilderSpec::Docker(spec) = &bad.builder else {
            unreachable!()
        };
        let err = render_build_args(&request, spec).unwrap_err();
        assert!(
            matches!(&err, BuildError::Template { field, .. } if field == "docker.buildArgs.X"),
            "{err:?}"
        );
    }

    #[test]
    fn digest_is_appended_to_the_tag() {
        let d = format!("sha256:{}", "b".repeat(64));
        let r: ImageRef = "127.0.0.1:5000/app:v1".parse().unwrap();
        assert_eq!(
            with_digest(&r, &d).unwrap().to_string(),
            format!("127.0.0.1:5000/app:v1@{d}")
        );
    }
}
