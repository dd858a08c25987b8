//! Delivering an assembled image: pushing it to a registry, loading it into the local Docker
//! engine, or writing an OCI image layout directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use skiff_types::image::ImageRef;

use super::image::{Image, ImageLayer, MANIFEST_MEDIA_TYPE, index_document};
use super::registry::{BlobPush, RegistryClient, Repository};
use crate::BuildError;
use crate::docker::DockerEngine;

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// The digest of the manifest (or index) the tag now names.
    pub digest: String,
    /// Blobs uploaded (layers and config), by digest.
    pub uploaded: Vec<String>,
    /// Blobs the registry already had.
    pub existed: Vec<String>,
    /// Blobs mounted from another repository.
    pub mounted: Vec<String>,
}

fn push_error(target: &ImageRef, error: BuildError) -> BuildError {
    let registry = Repository::of(target).registry;
    match error {
        // The registry is down or hung: say what to do about the push.
        BuildError::RegistryUnreachable { action, cause, .. } => BuildError::Push {
            reference: target.to_string(),
            reason: format!("{action}: {cause}; {}", crate::push_again_hint(&registry)),
            registry,
        },
        BuildError::Registry { action, reason, .. } => BuildError::Push {
            reference: target.to_string(),
            registry,
            reason: format!("{action}: {reason}"),
        },
        other => other,
    }
}

/// The bytes of `layer`: in memory, or fetched from where it came from.
pub async fn layer_bytes(
    client: &RegistryClient,
    layer: &ImageLayer,
) -> Result<Arc<Vec<u8>>, BuildError> {
    if let Some(data) = &layer.data {
        return Ok(Arc::clone(data));
    }
    let Some(remote) = &layer.remote else {
        return Err(BuildError::Registry {
            registry: "-".into(),
            action: format!("reading layer {}", layer.digest),
            reason: "the layer is neither in memory nor in a known registry".into(),
        });
    };
    let repo = Repository {
        registry: remote.registry.clone(),
        name: remote.repository.clone(),
    };
    Ok(Arc::new(client.get_blob(&repo, &layer.digest).await?))
}

/// Pushes the blobs of `image` (skipping those the registry has, mounting those from another
/// repository of the same registry) and its manifest under `reference` (a tag or digest).
async fn push_manifest(
    client: &RegistryClient,
    image: &Image,
    repo: &Repository,
    reference: &str,
    report: &mut PushReport,
) -> Result<String, BuildError> {
    let pushes = image.layers.iter().map(|layer| async move {
        let mount_from = layer
            .remote
            .as_ref()
            .filter(|r| r.registry == repo.registry)
            .map(|r| r.repository.as_str());
        let outcome = client
            .push_blob(repo, &layer.digest, mount_from, || {
                layer_bytes(client, layer)
            })
            .await?;
        Ok::<_, BuildError>((layer.digest.clone(), outcome))
    });
    let mut outcomes = futures_util::future::try_join_all(pushes).await?;
    let config = image.config_document()?;
    let config_bytes = Arc::new(config.bytes.clone());
    let outcome = client
        .push_blob(repo, &config.digest, None, || async { Ok(config_bytes) })
        .await?;
    outcomes.push((config.digest.clone(), outcome));
    for (digest, outcome) in outcomes {
        match outcome {
            BlobPush::Existed => report.existed.push(digest),
            BlobPush::Mounted => report.mounted.push(digest),
            BlobPush::Uploaded => report.uploaded.push(digest),
        }
    }
    let manifest = image.manifest_document()?;
    client
        .put_manifest(repo, reference, MANIFEST_MEDIA_TYPE, &manifest.bytes)
        .await?;
    Ok(manifest.digest)
}

/// Pushes `images` as `target` (`latest` when it has no tag): one image as a manifest, several
/// (one per platform) as an index over their manifests.
pub async fn push(
    client: &RegistryClient,
    images: &[Image],
    target: &ImageRef,
) -> Result<PushReport, BuildError> {
    let repo = Repository::of(target);
    let tag = target.tag().unwrap_or("latest").to_owned();
    let mut report = PushReport::default();
    let result = async {
        match images {
            [one] => push_manifest(client, one, &repo, &tag, &mut report).await,
            many => {
                for image in many {
                    let digest = image.manifest_document()?.digest;
                    push_manifest(client, image, &repo, &digest, &mut report).await?;
                }
                let index = index_document(many)?;
                client
                    .put_manifest(&repo, &tag, super::image::INDEX_MEDIA_TYPE, &index.bytes)
                    .await?;
                Ok(index.digest)
            }
        }
    }
    .await;
    report.digest = result.map_err(|e| push_error(target, e))?;
    Ok(report)
}

/// The image as a `docker save` archive (`manifest.json`, the config, one `layer.tar` per
/// layer — gzip-compressed, which `docker load` accepts) tagged `tag`. Layers whose diff IDs
/// are in `omit` are left out of the archive (the engine has them; it only reads a layer's
/// file when it lacks the layer).
pub async fn docker_archive(
    client: &RegistryClient,
    image: &Image,
    tag: &ImageRef,
    omit: &BTreeSet<String>,
) -> Result<Vec<u8>, BuildError> {
    let config = image.config_document()?;
    let config_name = format!("{}.json", hex_of(&config.digest));
    let mut layer_names = Vec::new();
    let mut tar = tar::Builder::new(Vec::new());
    let io = |source: std::io::Error| BuildError::Io {
        path: PathBuf::from("<docker archive>"),
        source,
    };
    let append = |tar: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, data).map_err(io)
    };
    for layer in &image.layers {
        let name = format!("{}/layer.tar", hex_of(&layer.diff_id));
        if !omit.contains(&layer.diff_id) {
            let bytes = layer_bytes(client, layer).await?;
            append(&mut tar, &name, &bytes)?;
        }
        layer_names.push(name);
    }
    append(&mut tar, &config_name, &config.bytes)?;
    let repo_tag = tag.with_tag(tag.tag().unwrap_or("latest")).to_string();
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [repo_tag],
        "Layers": layer_names,
    }]);
    append(&mut tar, "manifest.json", manifest.to_string().as_bytes())?;
    tar.into_inner().map_err(io)
}

fn hex_of(digest: &str) -> &str {
    digest.split_once(':').map_or(digest, |(_, hex)| hex)
}

/// Loads `image` into `engine` as `tag` and returns its image ID (the config digest). Layers
/// the engine already holds for the same layer chain (found through the images named
/// `known`, e.g. the previous build of this tag and the base) are not sent again.
pub async fn load(
    engine: &DockerEngine,
    client: &RegistryClient,
    image: &Image,
    tag: &ImageRef,
    known: &[String],
) -> Result<String, BuildError> {
    let mut omit = BTreeSet::new();
    for reference in known {
        let Ok(inspect) = engine.client().inspect_image(reference).await else {
            continue;
        };
        let present = inspect.root_fs.and_then(|r| r.layers).unwrap_or_default();
        for (ours, theirs) in image.config.rootfs().diff_ids().iter().zip(&present) {
            if ours != theirs {
                break;
            }
            omit.insert(ours.clone());
        }
    }
    let archive = docker_archive(client, image, tag, &omit).await?;
    let shown = tag.with_tag(tag.tag().unwrap_or("latest")).to_string();
    let fail = |reason: String| BuildError::Load {
        reference: shown.clone(),
        endpoint: engine.endpoint().to_owned(),
        reason,
    };
    let options = bollard::query_parameters::ImportImageOptions {
        quiet: true,
        ..Default::default()
    };
    let mut stream =
        engine
            .client()
            .import_image(options, bollard::body_full(archive.into()), None);
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(error) = info.error_detail.and_then(|d| d.message) {
                    return Err(fail(error));
                }
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    let id = image.id()?;
    match engine.image_id(&shown).await? {
        Some(found) if found == id => Ok(id),
        Some(found) => Err(fail(format!(
            "the engine reports image ID {found} for the tag, expected {id}"
        ))),
        None => Err(fail(
            "the engine does not show the tag after loading".into(),
        )),
    }
}

/// Writes `images` as an OCI image layout in `dir` (created), with an index naming each
/// manifest and, when given, `ref_name` as `org.opencontainers.image.ref.name`.
pub async fn write_layout(
    client: &RegistryClient,
    images: &[Image],
    dir: &Path,
    ref_name: Option<&str>,
) -> Result<String, BuildError> {
    let blobs = dir.join("blobs").join("sha256");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    std::fs::create_dir_all(&blobs).map_err(io(&blobs))?;
    let write_blob = |digest: &str, bytes: &[u8]| {
        let path = blobs.join(hex_of(digest));
        if path.exists() {
            return Ok(());
        }
        std::fs::write(&path, bytes).map_err(io(&path))
    };
    let mut manifests = Vec::new();
    for image in images {
        for layer in &image.layers {
            write_blob(&layer.digest, &layer_bytes(client, layer).await?)?;
        }
        let config = image.config_document()?;
        write_blob(&config.digest, &config.bytes)?;
        let manifest = image.manifest_document()?;
        write_blob(&manifest.digest, &manifest.bytes)?;
        let platform = image.platform();
        let mut descriptor = serde_json::json!({
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": manifest.digest,
            "size": manifest.bytes.len(),
            "platform": {"os": platform.os, "architecture": platform.architecture},
        });
        if let Some(name) = ref_name {
            descriptor["annotations"] =
                serde_json::json!({"org.opencontainers.image.ref.name": name});
        }
        manifests.push(descriptor);
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": super::image::INDEX_MEDIA_TYPE,
        "manifests": manifests,
    });
    let layout = dir.join("oci-layout");
    std::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io(&layout))?;
    let index_path = dir.join("index.json");
    let bytes = index.to_string().into_bytes();
    std::fs::write(&index_path, &bytes).map_err(io(&index_path))?;
    Ok(super::layer::sha256_digest(&bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::credentials::DockerConfig;
    use crate::oci::image::Platform;
    use base64::Engine as _;

    /// A push to a registry nothing listens on fails at once (no retries that hang), names the
    /// registry and the image and says what to do, in words rather than the HTTP client's
    /// chain, and never shows the credentials skiff would have sent.
    #[tokio::test]
    async fn a_push_to_a_registry_that_is_down_says_what_to_do() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let registry = format!("127.0.0.1:{port}");
        let secret = "s3cr3t-passw0rd";
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("me:{secret}"));
        let config = DockerConfig::from_json(
            &format!(r#"{{"auths":{{"{registry}":{{"auth":"{auth}"}}}}}}"#),
            Path::new("config.json"),
        )
        .unwrap();
        let client = RegistryClient::new(&[], Some(Arc::new(config))).unwrap();
        let target: ImageRef = format!("{registry}/team/app:v2").parse().unwrap();
        let image = Image::scratch(&Platform::default());
        let error = push(&client, &[image], &target).await.unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, BuildError::Push { .. }), "{error:?}");
        assert!(
            text.starts_with(&format!(
                "pushing {registry}/team/app:v2 to {registry} failed: "
            )),
            "{text}"
        );
        for wanted in [
            "cannot connect (",
            "onnection refused",
            &format!("is the registry running at {registry}?"),
            "pushes again on the next change",
        ] {
            assert!(text.contains(wanted), "{wanted:?} missing: {text}");
        }
        for unwanted in [
            "client error (Connect)",
            "error sending request",
            secret,
            &auth,
        ] {
            assert!(!text.contains(unwanted), "{unwanted:?} shown: {text}");
        }
        assert!(!text.contains('\n'), "one line: {text}");
    }

    /// A registry that accepts connections but never answers (hung, stopped) fails the push
    /// within the small-request limit, with the same advice.
    #[tokio::test]
    async fn a_push_to_a_hung_registry_gives_up() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let registry = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        // Accepts and holds every connection, answering nothing.
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                held.push(stream);
            }
        });
        let client = RegistryClient::new(&[], None)
            .unwrap()
            .with_small_request_timeout(std::time::Duration::from_millis(300));
        let target: ImageRef = format!("{registry}/app:v1").parse().unwrap();
        let error = push(&client, &[Image::scratch(&Platform::default())], &target)
            .await
            .unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, BuildError::Push { .. }), "{error:?}");
        assert!(text.contains("did not answer in time"), "{text}");
        assert!(
            text.contains(&format!("is the registry running at {registry}?")),
            "{text}"
        );
    }
}
