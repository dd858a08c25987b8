//! The image being assembled: a config (OCI `ImageConfiguration`) plus its layers, from a base.
//!
//! The config and manifest are written as canonical JSON (object keys sorted, no created time
//! from the clock), so the same base, layers and settings always give the same config and
//! manifest digests.

use std::path::PathBuf;
use std::sync::Arc;

use oci_spec::image::{
    Arch, Config, Descriptor, ImageConfiguration, ImageIndexBuilder, ImageManifest,
    ImageManifestBuilder, MediaType, Os, Platform as OciPlatform,
};

use super::layer::{LAYER_MEDIA_TYPE, Layer, sha256_digest};
use crate::BuildError;

/// The media type of OCI image manifests.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The media type of OCI image indexes.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The media type of OCI image configs.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// The creation time written into configs and history: fixed, so digests stay stable.
pub const FIXED_CREATED: &str = "1970-01-01T00:00:00Z";

/// A target platform: `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `v7`, `v8`, …
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl std::str::FromStr for Platform {
    type Err = String;

    fn from_str(text: &str) -> Result<Platform, String> {
        let mut parts = text.trim().split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(os), Some(arch), variant, None) if !os.is_empty() && !arch.is_empty() => {
                Ok(Platform {
                    os: os.to_owned(),
                    architecture: arch.to_owned(),
                    variant: variant.filter(|v| !v.is_empty()).map(str::to_owned),
                })
            }
            _ => Err(format!(
                "platform `{text}` is not `os/arch[/variant]` (e.g. `linux/amd64`)"
            )),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// Where a base layer's bytes can be fetched when they are not in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBlob {
    /// Registry host.
    pub registry: String,
    /// Repository in that registry (without the host).
    pub repository: String,
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLayer {
    /// `sha256:…` of the blob.
    pub digest: String,
    /// The blob's size.
    pub size: u64,
    /// The blob's media type.
    pub media_type: String,
    /// `sha256:…` of the uncompressed tar.
    pub diff_id: String,
    /// The blob, when held in memory.
    pub data: Option<Arc<Vec<u8>>>,
    /// Where to fetch the blob otherwise.
    pub remote: Option<RemoteBlob>,
}

impl ImageLayer {
    /// A layer skiff made.
    pub fn from_layer(layer: &Layer) -> ImageLayer {
        ImageLayer {
            digest: layer.digest.clone(),
            size: layer.size(),
            media_type: LAYER_MEDIA_TYPE.into(),
            diff_id: layer.diff_id.clone(),
            data: Some(Arc::clone(&layer.blob)),
            remote: None,
        }
    }

    /// The OCI descriptor (Docker layer media types mapped to their OCI names).
    pub fn descriptor(&self) -> Result<Descriptor, BuildError> {
        let media_type = match self.media_type.as_str() {
            "application/vnd.docker.image.rootfs.diff.tar.gzip" => LAYER_MEDIA_TYPE,
            "application/vnd.docker.image.rootfs.diff.tar" | "" => {
                "application/vnd.oci.image.layer.v1.tar"
            }
            other => other,
        };
        Ok(Descriptor::new(
            MediaType::from(media_type),
            self.size,
            parse_digest(&self.digest)?,
        ))
    }
}

/// An image: config and layers, base layers first.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// The config (platform, runtime settings, `rootfs.diff_ids`, history).
    pub config: ImageConfiguration,
    /// The layers, matching `config.rootfs.diff_ids`.
    pub layers: Vec<ImageLayer>,
}

/// A serialized document: its bytes and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Canonical JSON.
    pub bytes: Vec<u8>,
    /// `sha256:…` of `bytes`.
    pub digest: String,
}

impl Image {
    /// The empty image (`FROM scratch`) for `platform`.
    pub fn scratch(platform: &Platform) -> Image {
        let mut config = ImageConfiguration::default();
        config.set_os(Os::from(platform.os.as_str()));
        config.set_architecture(Arch::from(platform.architecture.as_str()));
        config.set_variant(platform.variant.clone());
        config.set_created(Some(FIXED_CREATED.to_owned()));
        config.set_config(Some(Config::default()));
        config.set_history(Some(Vec::new()));
        Image {
            config,
            layers: Vec::new(),
        }
    }

    /// The platform the config names.
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.config.os().to_string(),
            architecture: self.config.architecture().to_string(),
            variant: self.config.variant().clone(),
        }
    }

    /// Changes the runtime settings with `change`.
    pub fn update_runtime(&mut self, change: impl FnOnce(&mut Config)) {
        let mut runtime = self.config.config().clone().unwrap_or_default();
        change(&mut runtime);
        self.config.set_config(Some(runtime));
    }

    /// Appends `layer`, recording `created_by` in the history.
    pub fn add_layer(&mut self, layer: &Layer, created_by: &str) {
        self.push_layer(ImageLayer::from_layer(layer), created_by);
    }

    /// Appends an existing layer.
    pub fn push_layer(&mut self, layer: ImageLayer, created_by: &str) {
        self.config
            .rootfs_mut()
            .diff_ids_mut()
            .push(layer.diff_id.clone());
        self.layers.push(layer);
        self.add_history(created_by, false);
    }

    /// Records a config-only step (`ENV`, `CMD`, …) in the history.
    pub fn add_history(&mut self, created_by: &str, empty_layer: bool) {
        let mut entry = oci_spec::image::History::default();
        entry.set_created(Some(FIXED_CREATED.to_owned()));
        entry.set_created_by(Some(created_by.to_owned()));
        if empty_layer {
            entry.set_empty_layer(Some(true));
        }
        let mut history = self.config.history().clone().unwrap_or_default();
        history.push(entry);
        self.config.set_history(Some(history));
        self.config.set_created(Some(FIXED_CREATED.to_owned()));
    }

    /// The config as canonical JSON.
    pub fn config_document(&self) -> Result<Document, BuildError> {
        document(&self.config)
    }

    /// The image manifest (OCI media types).
    pub fn manifest(&self) -> Result<ImageManifest, BuildError> {
        let config = self.config_document()?;
        let mut layers = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            layers.push(layer.descriptor()?);
        }
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                config.bytes.len() as u64,
                parse_digest(&config.digest)?,
            ))
            .layers(layers)
            .build()
            .map_err(|e| internal(format!("building the manifest: {e}")))?;
        Ok(manifest)
    }

    /// The manifest as canonical JSON.
    pub fn manifest_document(&self) -> Result<Document, BuildError> {
        document(&self.manifest()?)
    }

    /// The image ID as Docker reports it: the config digest.
    pub fn id(&self) -> Result<String, BuildError> {
        Ok(self.config_document()?.digest)
    }
}

/// An index over several platform manifests.
pub fn index_document(images: &[Image]) -> Result<Document, BuildError> {
    let mut manifests = Vec::new();
    for image in images {
        let doc = image.manifest_document()?;
        let mut descriptor = Descriptor::new(
            MediaType::ImageManifest,
            doc.bytes.len() as u64,
            parse_digest(&doc.digest)?,
        );
        let platform = image.platform();
        let mut oci = OciPlatform::default();
        oci.set_os(Os::from(platform.os.as_str()));
        oci.set_architecture(Arch::from(platform.architecture.as_str()));
        oci.set_variant(platform.variant);
        descriptor.set_platform(Some(oci));
        manifests.push(descriptor);
    }
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .map_err(|e| internal(format!("building the index: {e}")))?;
    document(&index)
}

/// `value` as canonical JSON (object keys sorted at every level) and its digest.
pub fn document(value: &impl serde::Serialize) -> Result<Document, BuildError> {
    let json = serde_json::to_value(value).map_err(|e| internal(format!("serializing: {e}")))?;
    let bytes =
        serde_json::to_vec(&canonical(json)).map_err(|e| internal(format!("serializing: {e}")))?;
    Ok(Document {
        digest: sha256_digest(&bytes),
        bytes,
    })
}

fn canonical(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(canonical).collect())
        }
        other => other,
    }
}

/// `sha256:…` as an oci-spec digest.
pub fn parse_digest(digest: &str) -> Result<oci_spec::image::Digest, BuildError> {
    digest
        .parse()
        .map_err(|e| internal(format!("`{digest}` is not a digest: {e}")))
}

fn internal(message: String) -> BuildError {
    BuildError::Io {
        path: PathBuf::from("<image>"),
        source: std::io::Error::other(message),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::oci::layer::{FileSource, LayerBuilder, LayerEntry};

    fn image(labels: &[(&str, &str)]) -> Image {
        let mut image = Image::scratch(&Platform::default());
        let mut layer = LayerBuilder::new();
        layer.add(LayerEntry::file(
            "/a",
            0o644,
            FileSource::Bytes(b"a".to_vec()),
        ));
        image.add_layer(&layer.build().unwrap(), "COPY a /a");
        image.update_runtime(|c| {
            c.set_labels(Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ));
            c.set_exposed_ports(Some(vec![
                "80/tcp".into(),
                "443/tcp".into(),
                "53/udp".into(),
            ]));
        });
        image
    }

    #[test]
    fn config_and_manifest_digests_are_stable() {
        let labels: Vec<(String, String)> = (0..20)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .collect();
        let refs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let first = image(&refs).manifest_document().unwrap();
        for _ in 0..5 {
            assert_eq!(image(&refs).manifest_document().unwrap(), first);
        }
        let text = String::from_utf8(image(&refs).config_document().unwrap().bytes).unwrap();
        assert!(
            text.contains("\"ExposedPorts\":{\"443/tcp\":{},\"53/udp\":{},\"80/tcp\":{}}"),
            "{text}"
        );
        assert!(text.contains("\"diff_ids\":[\"sha256:"), "{text}");
    }

    #[test]
    fn platforms_parse() {
        let p: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(p.variant.as_deref(), Some("v7"));
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert!("linux".parse::<Platform>().is_err());
    }
}
