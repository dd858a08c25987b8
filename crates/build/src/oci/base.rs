//! Base images for the assembler: `scratch`, an image in a registry, an OCI image layout
//! directory (`oci-layout://DIR[:REF]`), or an image in the local Docker engine.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use skiff_types::image::ImageRef;

use super::image::{Image, ImageLayer, Platform, RemoteBlob};
use super::layer::{LAYER_MEDIA_TYPE, Layer, sha256_digest};
use super::registry::{RegistryClient, Repository};
use crate::BuildError;
use crate::docker::DockerEngine;

/// The prefix naming an OCI image layout directory as a base.
pub const LAYOUT_PREFIX: &str = "oci-layout://";

/// Where a base image was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseOrigin {
    /// `scratch`: no layers.
    Scratch,
    /// The local Docker engine (its image ID).
    Engine(String),
    /// A registry (the manifest digest).
    Registry(String),
    /// An OCI layout directory.
    Layout(PathBuf),
}

/// A resolved base image.
#[derive(Debug, Clone)]
pub struct Base {
    /// The image to build on.
    pub image: Image,
    /// Where it was found.
    pub origin: BaseOrigin,
}

/// Resolves `base` for `platform`. A plain reference is looked up in `engine` first (as
/// `docker build` uses a local image when there is one) when `engine` is given, then in its
/// registry. `image_name` is the artifact, for errors.
pub async fn resolve(
    client: &RegistryClient,
    engine: Option<&DockerEngine>,
    base: &str,
    platform: &Platform,
    image_name: &str,
) -> Result<Base, BuildError> {
    let fail = |reason: String| BuildError::BaseImage {
        image: image_name.to_owned(),
        base: base.to_owned(),
        reason,
    };
    if base.eq_ignore_ascii_case("scratch") {
        return Ok(Base {
            image: Image::scratch(platform),
            origin: BaseOrigin::Scratch,
        });
    }
    if let Some(rest) = base.strip_prefix(LAYOUT_PREFIX) {
        let (dir, reference) = split_layout(rest);
        let image = from_layout(Path::new(dir), reference, platform).map_err(fail)?;
        return Ok(Base {
            image,
            origin: BaseOrigin::Layout(PathBuf::from(dir)),
        });
    }
    let reference: ImageRef = base
        .parse()
        .map_err(|e: skiff_types::image::ImageRefError| fail(e.to_string()))?;
    let mut engine_reason = None;
    if let Some(engine) = engine {
        match engine.image_id(base).await {
            Ok(Some(id)) => {
                let image = from_engine(engine, &id).await.map_err(fail)?;
                return Ok(Base {
                    image,
                    origin: BaseOrigin::Engine(id),
                });
            }
            Ok(None) => engine_reason = Some("not in the local engine".to_owned()),
            Err(e) => engine_reason = Some(e.to_string()),
        }
    }
    match from_registry(client, &reference, platform).await {
        Ok((image, digest)) => Ok(Base {
            image,
            origin: BaseOrigin::Registry(digest),
        }),
        Err(e) => {
            let registry_reason = match e {
                BuildError::Registry { action, reason, .. } => format!("{action}: {reason}"),
                BuildError::RegistryUnreachable {
                    registry,
                    action,
                    cause,
                } => format!("{action}: {cause}; {}", crate::registry_question(&registry)),
                other => other.to_string(),
            };
            Err(fail(match engine_reason {
                Some(engine) => format!("{engine}; registry: {registry_reason}"),
                None => registry_reason,
            }))
        }
    }
}

fn split_layout(rest: &str) -> (&str, Option<&str>) {
    // `DIR:REF`, where DIR may itself hold no colon after its last slash.
    match rest.rsplit_once(':') {
        Some((dir, reference)) if !reference.contains('/') && !dir.is_empty() => {
            (dir, Some(reference))
        }
        _ => (rest, None),
    }
}

/// The image `reference` in its registry, for `platform`, and its manifest digest.
pub async fn from_registry(
    client: &RegistryClient,
    reference: &ImageRef,
    platform: &Platform,
) -> Result<(Image, String), BuildError> {
    let repo = Repository::of(reference);
    let wanted = reference
        .digest()
        .or(reference.tag())
        .unwrap_or("latest")
        .to_owned();
    let mut fetched = client.get_manifest(&repo, &wanted).await?;
    let invalid = |what: String| BuildError::Registry {
        registry: repo.registry.clone(),
        action: format!("reading the manifest {}:{wanted}", repo.name),
        reason: what,
    };
    if fetched.media_type.contains("index") || fetched.media_type.contains("manifest.list") {
        let index: ImageIndex = serde_json::from_slice(&fetched.bytes)
            .map_err(|e| invalid(format!("not an image index: {e}")))?;
        let chosen = index
            .manifests()
            .iter()
            .find(|m| {
                m.platform().as_ref().is_some_and(|p| {
                    p.os().to_string() == platform.os
                        && p.architecture().to_string() == platform.architecture
                        && (platform.variant.is_none() || p.variant() == &platform.variant)
                })
            })
            .ok_or_else(|| invalid(format!("the index has no image for {platform}")))?;
        fetched = client.get_manifest(&repo, chosen.digest().as_ref()).await?;
    }
    let manifest: ImageManifest = serde_json::from_slice(&fetched.bytes)
        .map_err(|e| invalid(format!("not an image manifest: {e}")))?;
    let config_bytes = client
        .get_blob(&repo, manifest.config().digest().as_ref())
        .await?;
    let config: ImageConfiguration = serde_json::from_slice(&config_bytes)
        .map_err(|e| invalid(format!("the image config is malformed: {e}")))?;
    let diff_ids = config.rootfs().diff_ids().clone();
    if diff_ids.len() != manifest.layers().len() {
        return Err(invalid(format!(
            "the manifest has {} layers but the config {} diff IDs",
            manifest.layers().len(),
            diff_ids.len()
        )));
    }
    let layers = manifest
        .layers()
        .iter()
        .zip(diff_ids)
        .map(|(descriptor, diff_id)| ImageLayer {
            digest: descriptor.digest().to_string(),
            size: descriptor.size(),
            media_type: descriptor.media_type().to_string(),
            diff_id,
            data: None,
            remote: Some(RemoteBlob {
                registry: repo.registry.clone(),
                repository: repo.name.clone(),
            }),
        })
        .collect();
    Ok((Image { config, layers }, fetched.digest))
}

/// The image `id` of the local engine, exported with `GET /images/{id}/get`.
pub async fn from_engine(engine: &DockerEngine, id: &str) -> Result<Image, String> {
    let mut stream = engine.client().export_image(id);
    let mut archive = Vec::new();
    while let Some(chunk) = stream.next().await {
        archive.extend_from_slice(&chunk.map_err(|e| format!("exporting from the engine: {e}"))?);
    }
    from_docker_archive(&archive)
}

/// An image from a `docker save` archive (classic or OCI-style paths, as `manifest.json`
/// names them).
pub fn from_docker_archive(archive: &[u8]) -> Result<Image, String> {
    let mut files = std::collections::BTreeMap::new();
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| e.to_string())?;
        files.insert(name, data);
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(rename = "Config")]
        config: String,
        #[serde(rename = "Layers")]
        layers: Vec<String>,
    }
    let manifest: Vec<Entry> = serde_json::from_slice(
        files
            .get("manifest.json")
            .ok_or("the exported archive has no manifest.json")?,
    )
    .map_err(|e| format!("manifest.json: {e}"))?;
    let entry = manifest.first().ok_or("manifest.json lists no image")?;
    let config: ImageConfiguration = serde_json::from_slice(
        files
            .get(&entry.config)
            .ok_or_else(|| format!("the archive lacks {}", entry.config))?,
    )
    .map_err(|e| format!("{}: {e}", entry.config))?;
    let diff_ids = config.rootfs().diff_ids().clone();
    if diff_ids.len() != entry.layers.len() {
        return Err("the exported config and layer list disagree".into());
    }
    let mut layers = Vec::new();
    for (path, diff_id) in entry.layers.iter().zip(diff_ids) {
        let data = files
            .get(path)
            .ok_or_else(|| format!("the archive lacks {path}"))?;
        layers.push(layer_from_bytes(data, diff_id).map_err(|e| e.to_string())?);
    }
    Ok(Image { config, layers })
}

/// A layer from a tar (compressed here) or an already gzip-compressed tar.
fn layer_from_bytes(data: &[u8], diff_id: String) -> Result<ImageLayer, BuildError> {
    if data.starts_with(&[0x1f, 0x8b]) {
        return Ok(ImageLayer {
            digest: sha256_digest(data),
            size: data.len() as u64,
            media_type: LAYER_MEDIA_TYPE.into(),
            diff_id,
            data: Some(Arc::new(data.to_vec())),
            remote: None,
        });
    }
    let layer = Layer::from_tar(data)?;
    Ok(ImageLayer {
        diff_id,
        ..ImageLayer::from_layer(&layer)
    })
}

/// The image in the OCI layout at `dir`: the manifest whose
/// `org.opencontainers.image.ref.name` is `reference`, else the one for `platform`, else the
/// only one.
pub fn from_layout(
    dir: &Path,
    reference: Option<&str>,
    platform: &Platform,
) -> Result<Image, String> {
    let read = |path: PathBuf| std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()));
    let blob = |digest: &str| {
        let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
        read(dir.join("blobs").join("sha256").join(hex))
    };
    let index: ImageIndex = serde_json::from_slice(&read(dir.join("index.json"))?)
        .map_err(|e| format!("{}/index.json: {e}", dir.display()))?;
    let manifests = index.manifests();
    let chosen = match reference {
        Some(name) => manifests.iter().find(|m| {
            m.annotations().as_ref().is_some_and(|a| {
                a.get("org.opencontainers.image.ref.name")
                    .is_some_and(|n| n == name)
            })
        }),
        None => manifests
            .iter()
            .find(|m| {
                m.platform().as_ref().is_some_and(|p| {
                    p.os().to_string() == platform.os
                        && p.architecture().to_string() == platform.architecture
                })
            })
            .or_else(|| (manifests.len() == 1).then(|| &manifests[0])),
    }
    .ok_or_else(|| {
        format!(
            "{}/index.json names no image {}",
            dir.display(),
            reference.map_or_else(|| format!("for {platform}"), |r| format!("`{r}`"))
        )
    })?;
    let manifest: ImageManifest = serde_json::from_slice(&blob(chosen.digest().as_ref())?)
        .map_err(|e| format!("the manifest {}: {e}", chosen.digest()))?;
    let config: ImageConfiguration =
        serde_json::from_slice(&blob(manifest.config().digest().as_ref())?)
            .map_err(|e| format!("the config: {e}"))?;
    let diff_ids = config.rootfs().diff_ids().clone();
    if diff_ids.len() != manifest.layers().len() {
        return Err("the manifest and config disagree on the layer count".into());
    }
    let mut layers = Vec::new();
    for (descriptor, diff_id) in manifest.layers().iter().zip(diff_ids) {
        let data = blob(descriptor.digest().as_ref())?;
        layers.push(ImageLayer {
            digest: descriptor.digest().to_string(),
            size: data.len() as u64,
            media_type: descriptor.media_type().to_string(),
            diff_id,
            data: Some(Arc::new(data)),
            remote: None,
        });
    }
    Ok(Image { config, layers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_references_split() {
        assert_eq!(split_layout("/tmp/x"), ("/tmp/x", None));
        assert_eq!(split_layout("/tmp/x:v1"), ("/tmp/x", Some("v1")));
    }
}
