//! [`DaemonlessBuilder`]: builds `docker:` artifacts whose Dockerfile runs nothing, and `ko:`
//! artifacts, without the Docker engine's build — the image is assembled from layers and a
//! config, then pushed straight to the registry (only the blobs it lacks) or loaded into the
//! local engine (only the layers it lacks).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use skiff_types::event::{Event, Reporter};
use skiff_types::image::{BuiltImage, ImageRef};

use super::base::{self, BaseOrigin};
use super::deliver;
use super::dockerfile as plan;
use super::image::{Image, Platform};
use super::layer::LayerCache;
use super::registry::RegistryClient;
use crate::artifact::DockerSpec;
use crate::credentials::DockerConfig;
use crate::docker::DockerEngine;
use crate::{BuildError, BuildRequest, Builder, BuilderSpec};

/// A base image ready to build on, with the directories its filesystem holds.
#[derive(Debug, Clone)]
struct CachedBase {
    image: Image,
    dirs: Arc<BTreeSet<String>>,
    origin: BaseOrigin,
}

/// What [`DaemonlessBuilder::assemble_stage`] assembles: a stage of a parsed Dockerfile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StagePlan<'a> {
    pub parsed: &'a crate::dockerfile::Dockerfile,
    pub target: usize,
    pub ignore: &'a crate::dockerignore::DockerIgnore,
    pub dockerfile: &'a Path,
}

/// Builds images without `docker build`; see the module documentation.
#[derive(Debug)]
pub struct DaemonlessBuilder {
    engine: Option<Arc<DockerEngine>>,
    client: RegistryClient,
    bases: Mutex<BTreeMap<(String, Platform), CachedBase>>,
    loaded: Mutex<BTreeMap<String, String>>,
    layers: Arc<LayerCache>,
}

/// The platform of this machine (`linux/amd64` on x86-64).
pub fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform {
        os: "linux".into(),
        architecture: architecture.into(),
        variant: None,
    }
}

/// Whether skiff builds the Docker artifact `spec` (context `context`) itself: `Ok(())`, or
/// the reason it goes to the Docker engine (`RUN at Dockerfile:4`, `--docker-daemon-build`).
pub fn daemonless_check(
    context: &Path,
    spec: &DockerSpec,
    build_args: &BTreeMap<String, Option<String>>,
) -> Result<(), String> {
    if spec.daemon_build {
        return Err("--docker-daemon-build".into());
    }
    if !spec.cli_flags.is_empty() {
        return Err("docker.cliFlags is set".into());
    }
    let name = if spec.dockerfile.trim().is_empty() {
        "Dockerfile"
    } else {
        spec.dockerfile.as_str()
    };
    let path: std::path::PathBuf = context.join(name).components().collect();
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("no Dockerfile at {}", path.display()),
        _ => format!("{} cannot be read: {e}", path.display()),
    })?;
    let parsed = crate::dockerfile::parse(&text, build_args).map_err(|e| format!("{name}: {e}"))?;
    let target = parsed
        .target_stage(spec.target.as_deref())
        .map_err(|e| format!("{name}: {e}"))?;
    match plan::needs_engine(&parsed, target, name) {
        Some(reason) => Err(reason),
        None => Ok(()),
    }
}

impl DaemonlessBuilder {
    /// A builder that loads into (and takes base images from) `engine` when given, and
    /// reaches registries with the credentials of `config`; `insecure_registries` may be
    /// reached over plain HTTP.
    pub fn new(
        engine: Option<Arc<DockerEngine>>,
        insecure_registries: &[String],
        config: Option<Arc<DockerConfig>>,
    ) -> Result<DaemonlessBuilder, BuildError> {
        Ok(DaemonlessBuilder {
            engine,
            client: RegistryClient::new(insecure_registries, config)?,
            bases: Mutex::default(),
            loaded: Mutex::default(),
            layers: Arc::default(),
        })
    }

    /// The registry client.
    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// The platforms to build `request` for.
    fn platforms(request: &BuildRequest<'_>) -> Result<Vec<Platform>, BuildError> {
        if request.artifact.platforms.is_empty() {
            return Ok(vec![host_platform()]);
        }
        request
            .artifact
            .platforms
            .iter()
            .map(|p| {
                p.parse().map_err(|reason| BuildError::Failed {
                    image: request.artifact.image.clone(),
                    reason,
                })
            })
            .collect()
    }

    /// The base image `reference` for `platform`, cached while it stays the same (an engine
    /// image is re-checked by ID; `refresh` drops a cached registry base).
    pub(crate) async fn base(
        &self,
        reference: &str,
        platform: &Platform,
        image_name: &str,
        refresh: bool,
    ) -> Result<(Image, Arc<BTreeSet<String>>), BuildError> {
        let key = (reference.to_owned(), platform.clone());
        let cached = self.bases.lock().ok().and_then(|m| m.get(&key).cloned());
        if let Some(cached) = cached {
            let still_valid = match &cached.origin {
                BaseOrigin::Scratch => true,
                BaseOrigin::Engine(id) => match &self.engine {
                    Some(engine) => {
                        engine.image_id(reference).await.ok().flatten().as_ref() == Some(id)
                    }
                    None => false,
                },
                BaseOrigin::Registry(_) | BaseOrigin::Layout(_) => !refresh,
            };
            if still_valid {
                return Ok((cached.image, cached.dirs));
            }
        }
        let resolved = base::resolve(
            &self.client,
            self.engine.as_deref(),
            reference,
            platform,
            image_name,
        )
        .await?;
        let mut blobs = Vec::new();
        for layer in &resolved.image.layers {
            blobs.push(
                deliver::layer_bytes(&self.client, layer)
                    .await
                    .map_err(|e| BuildError::BaseImage {
                        image: image_name.to_owned(),
                        base: reference.to_owned(),
                        reason: e.to_string(),
                    })?,
            );
        }
        // Keep the fetched bytes so that loading or pushing elsewhere needs no second fetch.
        let mut image = resolved.image;
        for (layer, blob) in image.layers.iter_mut().zip(&blobs) {
            layer.data = Some(Arc::clone(blob));
        }
        let dirs = Arc::new(plan::directories_of(&blobs)?);
        if let Ok(mut map) = self.bases.lock() {
            map.insert(
                key,
                CachedBase {
                    image: image.clone(),
                    dirs: Arc::clone(&dirs),
                    origin: resolved.origin,
                },
            );
        }
        Ok((image, dirs))
    }

    /// Assembles the images of a `docker:` artifact, one per platform.
    async fn assemble_dockerfile(
        &self,
        request: &BuildRequest<'_>,
        spec: &DockerSpec,
    ) -> Result<Vec<Image>, BuildError> {
        let artifact = request.artifact;
        let plan::LoadedDockerfile {
            path,
            name,
            parsed,
            target,
            ignore,
            ..
        } = plan::load(request, spec)?;
        if let Some(reason) = plan::needs_engine(&parsed, target, &name) {
            return Err(BuildError::Failed {
                image: artifact.image.clone(),
                reason: format!(
                    "the Dockerfile needs the Docker engine ({reason}); build it with the docker builder"
                ),
            });
        }
        let mut images = Vec::new();
        for platform in Self::platforms(request)? {
            images.push(
                self.assemble_stage(
                    artifact,
                    StagePlan {
                        parsed: &parsed,
                        target,
                        ignore: &ignore,
                        dockerfile: &path,
                    },
                    &platform,
                    spec.pull_parent,
                    plan::StageFiles::new(),
                )
                .await?,
            );
        }
        Ok(images)
    }

    /// Assembles stage `plan.target` for `platform` on its base image (`refresh`: look a
    /// registry base up again): files from `artifact`'s context through `plan.ignore`,
    /// `COPY --from` sources from `stage_files`.
    pub(crate) async fn assemble_stage(
        &self,
        artifact: &crate::ArtifactSpec,
        plan: StagePlan<'_>,
        platform: &Platform,
        refresh: bool,
        stage_files: plan::StageFiles,
    ) -> Result<Image, BuildError> {
        let base_ref = plan::base_of(plan.parsed, plan.target);
        let (mut image, dirs) = self
            .base(&base_ref, platform, &artifact.image, refresh)
            .await?;
        let context = artifact.context.clone();
        let parsed = plan.parsed.clone();
        let target = plan.target;
        let ignore = plan.ignore.clone();
        let path = plan.dockerfile.to_path_buf();
        let cache = Arc::clone(&self.layers);
        tokio::task::spawn_blocking(move || {
            plan::apply(
                &mut image,
                &parsed,
                target,
                &context,
                &ignore,
                &path,
                &dirs,
                &cache,
                &stage_files,
            )
            .map(|()| image)
        })
        .await
        .map_err(|e| BuildError::Failed {
            image: artifact.image.clone(),
            reason: format!("the assembling task failed: {e}"),
        })?
    }

    /// Assembles the images of `request`'s artifact (one per platform).
    pub async fn assemble(&self, request: &BuildRequest<'_>) -> Result<Vec<Image>, BuildError> {
        match &request.artifact.builder {
            BuilderSpec::Docker(spec) => self.assemble_dockerfile(request, spec).await,
            BuilderSpec::Ko(spec) => crate::ko::assemble(self, request, spec).await,
            other => Err(BuildError::Unsupported {
                image: request.artifact.image.clone(),
                kind: other.kind().to_owned(),
            }),
        }
    }

    /// Pushes `images` as the request's tag when it asks to push, else loads the one for this
    /// machine's platform into the local engine.
    pub async fn deliver(
        &self,
        request: &BuildRequest<'_>,
        images: &[Image],
        reporter: &dyn Reporter,
    ) -> Result<BuiltImage, BuildError> {
        let artifact = request.artifact;
        let tag = request.tag.clone();
        let say = |line: String| {
            reporter.report(Event::BuildOutput {
                image: artifact.image.clone(),
                line,
            })
        };
        if request.push {
            let report = deliver::push(&self.client, images, &tag).await?;
            say(format!(
                "pushed {} blob(s), {} already there, {} mounted",
                report.uploaded.len(),
                report.existed.len(),
                report.mounted.len()
            ));
            let plain = tag.with_tag(tag.tag().unwrap_or("latest"));
            let reference: ImageRef = format!("{plain}@{}", report.digest).parse().map_err(
                |e: skiff_types::image::ImageRefError| BuildError::Push {
                    reference: plain.to_string(),
                    registry: tag.registry().unwrap_or("docker.io").to_owned(),
                    reason: format!("unusable digest {}: {e}", report.digest),
                },
            )?;
            reporter.report(Event::Pushed {
                image: artifact.image.clone(),
                reference: reference.to_string(),
            });
            let image_id = match images {
                [one] => Some(one.id()?),
                _ => None,
            };
            return Ok(BuiltImage {
                image_name: artifact.image.clone(),
                reference,
                image_id,
            });
        }
        let Some(engine) = &self.engine else {
            return Err(BuildError::Failed {
                image: artifact.image.clone(),
                reason: "the image is neither pushed nor loadable: no Docker engine is connected; push it (--push) or start the engine".into(),
            });
        };
        let host = host_platform();
        let image = images
            .iter()
            .find(|i| i.platform().os == host.os && i.platform().architecture == host.architecture)
            .or_else(|| images.first())
            .ok_or_else(|| BuildError::Failed {
                image: artifact.image.clone(),
                reason: "no image was assembled".into(),
            })?;
        let mut known = vec![tag.to_string()];
        if let Some(previous) = self
            .loaded
            .lock()
            .ok()
            .and_then(|m| m.get(&artifact.image).cloned())
        {
            known.push(previous);
        }
        let started = Instant::now();
        let id = deliver::load(engine, &self.client, image, &tag, &known).await?;
        say(format!(
            "loaded into the Docker engine as {tag} in {} ms",
            started.elapsed().as_millis()
        ));
        if let Ok(mut map) = self.loaded.lock() {
            map.insert(artifact.image.clone(), id.clone());
        }
        Ok(BuiltImage {
            image_name: artifact.image.clone(),
            reference: tag,
            image_id: Some(id),
        })
    }
}

#[async_trait::async_trait]
impl Builder for DaemonlessBuilder {
    async fn build(
        &self,
        request: &BuildRequest<'_>,
        reporter: &dyn Reporter,
    ) -> Result<BuiltImage, BuildError> {
        let started = Instant::now();
        let images = self.assemble(request).await?;
        let layers: usize = images.iter().map(|i| i.layers.len()).sum();
        reporter.report(Event::BuildOutput {
            image: request.artifact.image.clone(),
            line: format!(
                "assembled without the Docker engine: {} image(s), {layers} layer(s) in {} ms",
                images.len(),
                started.elapsed().as_millis()
            ),
        });
        self.deliver(request, &images, reporter).await
    }
}
