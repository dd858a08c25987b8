//! Daemonless images: assembling OCI images from layers and a config, pushing them straight to
//! a registry and loading them into the local Docker engine, without `docker build`.
//!
//! - [`layer`]: deterministic layers (sorted entries, fixed mtime, owner 0:0 unless asked);
//! - [`image`]: the image being assembled (OCI config, manifest, index; canonical JSON);
//! - [`registry`]: a small OCI distribution client (HEAD before upload, cross-repository
//!   mount, monolithic upload, Basic and Bearer auth, plain HTTP only for loopback and
//!   insecure registries);
//! - [`base`]: base images from `scratch`, a registry, an OCI layout directory or the local
//!   engine;
//! - [`deliver`]: pushing, loading into the engine (`docker save` tarball through
//!   `POST /images/load`), writing an OCI layout;
//! - [`dockerfile`]: which Dockerfiles skiff builds itself (no `RUN`) and how, layer per
//!   `COPY`;
//! - [`builder`]: [`builder::DaemonlessBuilder`], the [`crate::Builder`] for those Dockerfiles.

pub mod base;
pub mod builder;
pub mod deliver;
pub mod dockerfile;
pub mod image;
pub mod layer;
pub mod registry;

pub use builder::DaemonlessBuilder;
pub use image::{Image, Platform};
pub use layer::{Layer, LayerBuilder, LayerEntry};
