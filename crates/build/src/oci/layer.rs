//! Deterministic filesystem layers.
//!
//! A [`LayerBuilder`] collects entries (files from the host or from memory, directories,
//! symbolic links) by their path in the image and writes them as a gzip-compressed tar with
//! entries sorted by path, modification time 0, the owner given (0:0 unless asked), no user or
//! group names and nothing else from the host: the same entries always give the same bytes, so
//! the same digest, and an unchanged layer is never sent twice.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest as _, Sha256};

use crate::BuildError;

/// The media type of the layers skiff writes.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Where a file's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// A file on the host, read when the layer is written.
    Host(PathBuf),
    /// Content held in memory.
    Bytes(Vec<u8>),
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File(FileSource),
    /// A directory.
    Dir,
    /// A symbolic link to `target` (as written, never resolved).
    Symlink(String),
}

/// One entry of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    /// The absolute path in the image (`/app/main`).
    pub path: String,
    /// Permission bits (`0o755`), including setuid/setgid/sticky.
    pub mode: u32,
    /// Owner user id.
    pub uid: u64,
    /// Owner group id.
    pub gid: u64,
    /// What it is.
    pub kind: EntryKind,
}

impl LayerEntry {
    /// A file owned by root.
    pub fn file(path: impl Into<String>, mode: u32, source: FileSource) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            mode,
            uid: 0,
            gid: 0,
            kind: EntryKind::File(source),
        }
    }

    /// A directory owned by root.
    pub fn dir(path: impl Into<String>, mode: u32) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            mode,
            uid: 0,
            gid: 0,
            kind: EntryKind::Dir,
        }
    }

    /// A symbolic link owned by root.
    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            mode: 0o777,
            uid: 0,
            gid: 0,
            kind: EntryKind::Symlink(target.into()),
        }
    }
}

/// A finished layer: its compressed bytes and digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The gzip-compressed tar.
    pub blob: Arc<Vec<u8>>,
    /// `sha256:…` of `blob` (the manifest's layer digest).
    pub digest: String,
    /// `sha256:…` of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: String,
}

impl Layer {
    /// The compressed size in bytes.
    pub fn size(&self) -> u64 {
        self.blob.len() as u64
    }
}

/// Collects entries and writes a deterministic layer.
#[derive(Debug, Clone, Default)]
pub struct LayerBuilder {
    entries: BTreeMap<String, LayerEntry>,
}

/// `path` made absolute and clean (`//a/./b/` → `/a/b`).
pub fn clean_image_path(path: &str) -> String {
    crate::dockerignore::clean_path(&format!("/{path}"))
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> LayerBuilder {
        LayerBuilder::default()
    }

    /// Adds `entry`, replacing an earlier entry at the same path.
    pub fn add(&mut self, mut entry: LayerEntry) {
        entry.path = clean_image_path(&entry.path);
        if entry.path == "/" {
            return;
        }
        self.entries.insert(entry.path.clone(), entry);
    }

    /// Whether an entry exists at `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(&clean_image_path(path))
    }

    /// The entries, sorted by path.
    pub fn entries(&self) -> impl Iterator<Item = &LayerEntry> {
        self.entries.values()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The uncompressed tar.
    pub fn tar(&self) -> Result<Vec<u8>, BuildError> {
        let mut tar = tar::Builder::new(Vec::new());
        // Sorted so that a directory comes before what it holds ("a" < "a/b"), whatever
        // other names sort between them.
        let mut paths: Vec<&String> = self.entries.keys().collect();
        paths.sort_by(|a, b| a.split('/').cmp(b.split('/')));
        for path in paths {
            let entry = &self.entries[path];
            let name = entry.path.trim_start_matches('/');
            let mut header = tar::Header::new_gnu();
            header.set_mode(entry.mode & 0o7777);
            header.set_uid(entry.uid);
            header.set_gid(entry.gid);
            header.set_mtime(0);
            let io = |source: std::io::Error| BuildError::Io {
                path: PathBuf::from(&entry.path),
                source,
            };
            match &entry.kind {
                EntryKind::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    tar.append_data(&mut header, format!("{name}/"), std::io::empty())
                        .map_err(io)?;
                }
                EntryKind::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    tar.append_link(&mut header, name, target).map_err(io)?;
                }
                EntryKind::File(source) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    let data = match source {
                        FileSource::Bytes(bytes) => std::borrow::Cow::Borrowed(bytes.as_slice()),
                        FileSource::Host(host) => {
                            std::borrow::Cow::Owned(std::fs::read(host).map_err(|source| {
                                BuildError::Io {
                                    path: host.clone(),
                                    source,
                                }
                            })?)
                        }
                    };
                    header.set_size(data.len() as u64);
                    tar.append_data(&mut header, name, data.as_ref())
                        .map_err(io)?;
                }
            }
        }
        tar.into_inner().map_err(|source| BuildError::Io {
            path: PathBuf::from("<layer>"),
            source,
        })
    }

    /// Writes the layer: tar, gzip (fixed header, no name or time), digests.
    pub fn build(&self) -> Result<Layer, BuildError> {
        let tar = self.tar()?;
        Layer::from_tar(&tar)
    }
}

/// Layers already written, by what they were made from: a file's path, size, modification
/// time, inode and the entry's mode and owner stand for its content, so an unchanged layer is
/// not read, tarred and compressed again. Bounded; cleared when full.
#[derive(Debug, Default)]
pub struct LayerCache {
    layers: std::sync::Mutex<BTreeMap<String, Layer>>,
}

/// How many layers a [`LayerCache`] keeps.
const CACHED_LAYERS: usize = 512;

impl LayerCache {
    /// An empty cache.
    pub fn new() -> LayerCache {
        LayerCache::default()
    }

    /// The layer of `builder`: the cached one when its inputs are unchanged (`true`), else a
    /// new one (`false`).
    pub fn build(&self, builder: &LayerBuilder) -> Result<(Layer, bool), BuildError> {
        let key = builder.fingerprint()?;
        if let Some(layer) = self.layers.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok((layer, true));
        }
        let layer = builder.build()?;
        if let Ok(mut map) = self.layers.lock() {
            if map.len() >= CACHED_LAYERS {
                map.clear();
            }
            map.insert(key, layer.clone());
        }
        Ok((layer, false))
    }
}

impl LayerBuilder {
    /// What the layer is made from, as a digest: entries, and for host files their metadata.
    pub fn fingerprint(&self) -> Result<String, BuildError> {
        use std::os::unix::fs::MetadataExt;
        let mut hasher = Sha256::new();
        for entry in self.entries.values() {
            hasher.update(format!(
                "{}\0{:o}\0{}\0{}\0",
                entry.path, entry.mode, entry.uid, entry.gid
            ));
            match &entry.kind {
                EntryKind::Dir => hasher.update(b"d"),
                EntryKind::Symlink(target) => hasher.update(format!("l{target}")),
                EntryKind::File(FileSource::Bytes(bytes)) => {
                    hasher.update(b"b");
                    hasher.update(Sha256::digest(bytes));
                }
                EntryKind::File(FileSource::Host(path)) => {
                    let meta = std::fs::metadata(path).map_err(|source| BuildError::Io {
                        path: path.clone(),
                        source,
                    })?;
                    hasher.update(format!(
                        "h{}\0{}\0{}\0{}\0{}\0{}\0{}",
                        path.display(),
                        meta.len(),
                        meta.mtime(),
                        meta.mtime_nsec(),
                        meta.ctime_nsec(),
                        meta.ino(),
                        meta.dev()
                    ));
                }
            }
            hasher.update(b"\n");
        }
        Ok(hex::encode(hasher.finalize()))
    }
}

impl Layer {
    /// A layer from an uncompressed tar.
    pub fn from_tar(tar: &[u8]) -> Result<Layer, BuildError> {
        let diff_id = sha256_digest(tar);
        let mut gz = GzEncoder::new(Vec::with_capacity(tar.len() / 2 + 64), Compression::fast());
        let io = |source: std::io::Error| BuildError::Io {
            path: PathBuf::from("<layer>"),
            source,
        };
        gz.write_all(tar).map_err(io)?;
        let blob = gz.finish().map_err(io)?;
        Ok(Layer {
            digest: sha256_digest(&blob),
            blob: Arc::new(blob),
            diff_id,
        })
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample(reverse: bool) -> LayerBuilder {
        let mut entries = vec![
            LayerEntry::dir("/app", 0o755),
            LayerEntry::file("/app/a.txt", 0o644, FileSource::Bytes(b"a".to_vec())),
            LayerEntry::file("/app-x", 0o600, FileSource::Bytes(b"x".to_vec())),
            LayerEntry::symlink("/app/link", "a.txt"),
        ];
        if reverse {
            entries.reverse();
        }
        let mut builder = LayerBuilder::new();
        for e in entries {
            builder.add(e);
        }
        builder
    }

    #[test]
    fn same_entries_same_digest_whatever_the_order() {
        let a = sample(false).build().unwrap();
        let b = sample(true).build().unwrap();
        assert_eq!(a.digest, b.digest);
        assert_eq!(a.diff_id, b.diff_id);
        assert_ne!(a.digest, a.diff_id);
    }

    #[test]
    fn directories_come_before_their_contents_and_owners_are_root() {
        let tar = sample(false).tar().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<(String, u64, u64, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        let paths: Vec<&str> = names.iter().map(|n| n.0.as_str()).collect();
        assert_eq!(paths, ["app/", "app/a.txt", "app/link", "app-x"]);
        assert!(names.iter().all(|n| n.1 == 0 && n.2 == 0 && n.3 == 0));
    }

    #[test]
    fn the_cache_reuses_unchanged_layers_and_sees_changed_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "one").unwrap();
        let mut builder = LayerBuilder::new();
        builder.add(LayerEntry::file(
            "/f",
            0o644,
            FileSource::Host(file.clone()),
        ));
        let cache = LayerCache::new();
        let (first, reused) = cache.build(&builder).unwrap();
        assert!(!reused);
        let (again, reused) = cache.build(&builder).unwrap();
        assert!(reused);
        assert_eq!(first, again);
        std::fs::write(&file, "two, longer").unwrap();
        let (changed, reused) = cache.build(&builder).unwrap();
        assert!(!reused);
        assert_ne!(changed.digest, first.digest);
    }

    #[test]
    fn a_changed_file_changes_the_digest() {
        let a = sample(false).build().unwrap();
        let mut changed = sample(false);
        changed.add(LayerEntry::file(
            "/app/a.txt",
            0o644,
            FileSource::Bytes(b"b".to_vec()),
        ));
        assert_ne!(a.digest, changed.build().unwrap().digest);
    }
}
