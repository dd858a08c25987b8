//! The artifact cache: skip builds whose inputs have not changed.
//!
//! Like Skaffold's artifact cache, an artifact's *key* is a SHA-256 over everything that
//! determines the image — the builder options, the evaluated build args, the contents and
//! executable bits of the files it depends on, and the keys of the artifacts it requires — so
//! the same key means the same image. [`cache_key`] computes it (the same hex digest is the tag
//! of the `inputDigest` tagger); [`ArtifactCache`] remembers which image each key produced, in a
//! small JSON file, so the next run can reuse it instead of building.
//!
//! The cache is an optimisation: a missing, unreadable-as-JSON or older-format file just means
//! an empty cache, and a failure to save it is an error the caller reports and moves past.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::BuildError;
use crate::artifact::{ArtifactSpec, BuilderSpec};

/// The version of the cache file format; files with another version are ignored.
pub const CACHE_FORMAT_VERSION: u32 = 1;

/// How many entries [`ArtifactCache`] keeps by default; the oldest are dropped first.
pub const DEFAULT_MAX_ENTRIES: usize = 1000;

/// Files hashed per thread before hashing is spread over several threads.
const FILES_PER_THREAD: usize = 16;

/// Everything an artifact's key is computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheInputs {
    /// A deterministic encoding of the builder options; see [`builder_fingerprint`].
    pub builder_fingerprint: String,
    /// The evaluated build args (for custom artifacts: whatever extra values reach the command).
    pub build_args: BTreeMap<String, String>,
    /// The context directory the files are relative to.
    pub context: PathBuf,
    /// The dependency files, relative to `context`, in any order (duplicates are ignored).
    pub files: Vec<PathBuf>,
    /// The keys of the required artifacts, in the order of the artifact's `requires`.
    pub required_keys: Vec<String>,
}

/// A deterministic encoding of what an artifact's builder does, for [`CacheInputs`].
///
/// Every option is written out explicitly, field by field (not with `Debug`), so the encoding
/// only changes when an option's value does — or when this function gains a field, which is the
/// intended way to invalidate old keys. It covers the builder kind and options (template build
/// args by their source; their values belong in [`CacheInputs::build_args`]), the target
/// platforms and the `requires` aliases. The context path and the image name are left out, so
/// moving a project or renaming an image keeps its key.
pub fn builder_fingerprint(artifact: &ArtifactSpec) -> String {
    let mut out = Encoder::default();
    out.field("fingerprint", "v1");
    out.field("kind", artifact.builder.kind());
    match &artifact.builder {
        BuilderSpec::Docker(docker) => {
            out.field("dockerfile", &docker.dockerfile);
            out.option("target", docker.target.as_deref());
            for (name, value) in &docker.build_args {
                out.field("buildArg", name);
                out.option("buildArgTemplate", value.as_ref().map(|t| t.source()));
            }
            out.option("network", docker.network.as_deref());
            out.list("addHost", &docker.add_hosts);
            out.list("cacheFrom", &docker.cache_from);
            out.field("noCache", &docker.no_cache.to_string());
            out.field("pullParent", &docker.pull_parent.to_string());
            for secret in &docker.secrets {
                out.field("secret", &secret.id);
                out.option(
                    "secretSrc",
                    secret.src.as_ref().map(|p| p.to_string_lossy()).as_deref(),
                );
                out.option("secretEnv", secret.env.as_deref());
            }
            out.option("ssh", docker.ssh.as_deref());
            out.list("cliFlag", &docker.cli_flags);
        }
        BuilderSpec::Custom(custom) => {
            out.option("buildCommand", custom.build_command.as_deref());
            let deps = &custom.dependencies;
            out.list("depPath", &deps.paths);
            out.list("depIgnore", &deps.ignore);
            if let Some(dockerfile) = &deps.dockerfile {
                out.field("depDockerfile", &dockerfile.path);
                for (name, value) in &dockerfile.build_args {
                    out.field("depBuildArg", name);
                    out.option("depBuildArgValue", value.as_deref());
                }
            }
            out.option("depCommand", deps.command.as_deref());
        }
        BuilderSpec::Ko(ko) => {
            out.option("fromImage", ko.from_image.as_deref());
            out.field("dir", &ko.dir);
            out.field("main", &ko.main);
            out.list("env", &ko.env);
            out.list("flag", &ko.flags);
            out.list("ldflag", &ko.ldflags);
            for (name, value) in &ko.labels {
                out.field("label", name);
                out.field("labelValue", value);
            }
        }
        BuilderSpec::Unsupported { .. } => {}
    }
    out.list("platform", &artifact.platforms);
    for requirement in &artifact.requires {
        out.field("requires", &requirement.image);
        out.option("alias", requirement.alias.as_deref());
    }
    out.finish()
}

/// A length-prefixed text encoding: `name=<len>:<value>;`, unambiguous whatever the values hold.
#[derive(Default)]
struct Encoder(String);

impl Encoder {
    fn field(&mut self, name: &str, value: &str) {
        self.0.push_str(&format!("{name}={}:{value};", value.len()));
    }

    fn option(&mut self, name: &str, value: Option<&str>) {
        match value {
            Some(value) => self.field(name, value),
            None => self.0.push_str(&format!("{name}~;")),
        }
    }

    fn list(&mut self, name: &str, values: &[String]) {
        self.0.push_str(&format!("{name}#{};", values.len()));
        for value in values {
            self.field(name, value);
        }
    }

    fn finish(self) -> String {
        self.0
    }
}

/// Feeds length-prefixed fields to a SHA-256.
struct KeyHasher(Sha256);

impl KeyHasher {
    fn bytes(&mut self, tag: u8, bytes: &[u8]) {
        self.0.update([tag]);
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }
}

/// What a dependency file contributes to the key.
#[derive(Debug, Clone)]
struct FileDigest {
    kind: u8,
    executable: bool,
    digest: [u8; 32],
}

/// The artifact's cache key: a lowercase hex SHA-256 over `inputs`.
///
/// Files are hashed streaming, in sorted path order (so the order of `inputs.files` does not
/// matter), spread over a few threads when there are many; each contributes its path relative to
/// the context (with `/` separators), its executable bit and a SHA-256 of its contents. A
/// symbolic link contributes its target, as the Docker build context carries links, not what
/// they point to; a directory contributes only its presence.
///
/// This reads files synchronously; from async code call [`cache_key_async`] or use
/// `spawn_blocking`.
///
/// # Errors
///
/// [`BuildError::Io`] naming the file when a dependency is missing or unreadable.
pub fn cache_key(inputs: &CacheInputs) -> Result<String, BuildError> {
    let mut files: Vec<(String, &Path)> = inputs
        .files
        .iter()
        .map(|file| (normalize(file), file.as_path()))
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files.dedup_by(|a, b| a.0 == b.0);

    let digests = hash_files(&inputs.context, &files)?;

    let mut hasher = KeyHasher(Sha256::new());
    hasher.bytes(b'V', b"skiff-cache-key-v1");
    hasher.bytes(b'B', inputs.builder_fingerprint.as_bytes());
    for (name, value) in &inputs.build_args {
        hasher.bytes(b'A', name.as_bytes());
        hasher.bytes(b'a', value.as_bytes());
    }
    for ((name, _), file) in files.iter().zip(&digests) {
        hasher.bytes(b'F', name.as_bytes());
        hasher.bytes(file.kind, &[u8::from(file.executable)]);
        hasher.bytes(b'h', &file.digest);
    }
    for key in &inputs.required_keys {
        hasher.bytes(b'R', key.as_bytes());
    }
    Ok(hex::encode(hasher.0.finalize()))
}

/// [`cache_key`] on a blocking thread, for async callers.
pub async fn cache_key_async(inputs: CacheInputs) -> Result<String, BuildError> {
    let context = inputs.context.clone();
    tokio::task::spawn_blocking(move || cache_key(&inputs))
        .await
        .map_err(|err| BuildError::Io {
            path: context,
            source: std::io::Error::other(format!("hashing the inputs stopped: {err}")),
        })?
}

/// `path` with `/` separators and `.` components removed.
fn normalize(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::RootDir => parts.push(String::new()),
            other => parts.push(other.as_os_str().to_string_lossy().into_owned()),
        }
    }
    parts.join("/")
}

fn hash_files(context: &Path, files: &[(String, &Path)]) -> Result<Vec<FileDigest>, BuildError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(8)
        .min(files.len().div_ceil(FILES_PER_THREAD))
        .max(1);
    if threads == 1 {
        return files
            .iter()
            .map(|(_, file)| hash_file(context, file))
            .collect();
    }
    let chunk = files.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(_, file)| hash_file(context, file))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut digests = Vec::with_capacity(files.len());
        for handle in handles {
            let part = handle.join().map_err(|_| BuildError::Io {
                path: context.to_path_buf(),
                source: std::io::Error::other("a file-hashing thread panicked"),
            })??;
            digests.extend(part);
        }
        Ok(digests)
    })
}

fn hash_file(context: &Path, file: &Path) -> Result<FileDigest, BuildError> {
    let path = context.join(file);
    let io_error = |source: std::io::Error| BuildError::Io {
        path: path.clone(),
        source,
    };
    let metadata = std::fs::symlink_metadata(&path).map_err(io_error)?;
    let stamp = Stamp::of(&metadata);
    if let Some(digest) = stamp.as_ref().and_then(|s| memo::get(&path, s)) {
        return Ok(digest);
    }
    let mut hasher = Sha256::new();
    let kind = if metadata.file_type().is_symlink() {
        let target = std::fs::read_link(&path).map_err(io_error)?;
        hasher.update(target.to_string_lossy().as_bytes());
        b'l'
    } else if metadata.is_dir() {
        b'd'
    } else {
        let mut reader = std::fs::File::open(&path).map_err(io_error)?;
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(io_error(err)),
            };
            hasher.update(&buffer[..read]);
        }
        b'f'
    };
    let digest = FileDigest {
        kind,
        executable: is_executable(&metadata),
        digest: hasher.finalize().into(),
    };
    if let Some(stamp) = stamp {
        memo::put(path, stamp, digest.clone());
    }
    Ok(digest)
}

/// What identifies one version of a regular file without reading it: size, inode, and the
/// modification and change times in nanoseconds (as git's index does).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    inode: u64,
    modified: i128,
    changed: i128,
    mode: u32,
}

impl Stamp {
    /// `None` for what is not a regular file, and for a file changed in the last two seconds:
    /// a write in the same clock tick as the hash could leave the times unchanged ("racy
    /// clean"), so such a file is hashed every time until it settles.
    #[cfg(unix)]
    fn of(metadata: &std::fs::Metadata) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        if !metadata.is_file() {
            return None;
        }
        let nanos = |secs: i64, nsec: i64| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
        let modified = nanos(metadata.mtime(), metadata.mtime_nsec());
        let changed = nanos(metadata.ctime(), metadata.ctime_nsec());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos();
        let now = i128::try_from(now).ok()?;
        if now - modified.max(changed) < 2_000_000_000 {
            return None;
        }
        Some(Stamp {
            len: metadata.len(),
            inode: metadata.ino(),
            modified,
            changed,
            mode: metadata.mode(),
        })
    }

    #[cfg(not(unix))]
    fn of(_metadata: &std::fs::Metadata) -> Option<Stamp> {
        None
    }
}

/// Digests of files already read by this process, so that a dev loop re-keying a large context
/// after one change reads only what changed.
mod memo {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, OnceLock};

    use super::{FileDigest, Stamp};

    type Memo = Mutex<HashMap<PathBuf, (Stamp, FileDigest)>>;

    fn memo() -> &'static Memo {
        static MEMO: OnceLock<Memo> = OnceLock::new();
        MEMO.get_or_init(Memo::default)
    }

    pub(super) fn get(path: &Path, stamp: &Stamp) -> Option<FileDigest> {
        let memo = memo().lock().ok()?;
        memo.get(path)
            .filter(|(known, _)| known == stamp)
            .map(|(_, digest)| digest.clone())
    }

    pub(super) fn put(path: PathBuf, stamp: Stamp, digest: FileDigest) {
        if let Ok(mut memo) = memo().lock() {
            memo.insert(path, (stamp, digest));
        }
    }
}

#[cfg(unix)]
fn is_executable(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    !metadata.file_type().is_symlink() && metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_metadata: &std::fs::Metadata) -> bool {
    false
}

/// An image the cache remembers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedImage {
    /// The artifact's image name as configured.
    pub image_name: String,
    /// The reference built: `name:tag`, or `name:tag@digest` once pushed.
    pub reference: String,
    /// The engine's image ID, when the image was built into a local engine.
    pub image_id: Option<String>,
    /// Whether the image was pushed to its registry.
    pub pushed: bool,
}

/// One entry of the cache file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredEntry {
    key: String,
    #[serde(flatten)]
    image: CachedImage,
}

/// The cache file.
#[derive(Debug, Serialize, Deserialize)]
struct StoredCache {
    version: u32,
    entries: Vec<StoredEntry>,
}

/// Only the version, to tell a different format from a corrupt file.
#[derive(Deserialize)]
struct StoredVersion {
    version: u32,
}

/// Images built before, by cache key, persisted as a small JSON file.
///
/// Entries are kept in recording order and capped (see [`DEFAULT_MAX_ENTRIES`]); recording an
/// entry again makes it the most recent.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    path: PathBuf,
    /// Oldest first.
    entries: Vec<StoredEntry>,
    max_entries: usize,
    warnings: Vec<String>,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl ArtifactCache {
    /// Opens the cache stored at `path`.
    ///
    /// A missing file (or a path under a regular file), or one written in another format version,
    /// gives an empty cache; so does a corrupt file, with a warning (see
    /// [`ArtifactCache::warnings`]).
    ///
    /// # Errors
    ///
    /// [`BuildError::Io`] when the file exists but cannot be read.
    pub fn open(path: impl Into<PathBuf>) -> Result<ArtifactCache, BuildError> {
        let path = path.into();
        let mut cache = ArtifactCache {
            path,
            entries: Vec::new(),
            max_entries: DEFAULT_MAX_ENTRIES,
            warnings: Vec::new(),
        };
        let bytes = match std::fs::read(&cache.path) {
            Ok(bytes) => bytes,
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(cache);
            }
            Err(source) => {
                return Err(BuildError::Io {
                    path: cache.path,
                    source,
                });
            }
        };
        match serde_json::from_slice::<StoredVersion>(&bytes) {
            Ok(StoredVersion { version }) if version != CACHE_FORMAT_VERSION => return Ok(cache),
            _ => {}
        }
        match serde_json::from_slice::<StoredCache>(&bytes) {
            Ok(stored) => {
                cache.entries = stored.entries;
                cache.trim();
            }
            Err(err) => cache.warnings.push(format!(
                "the build cache {} is corrupt ({err}); starting with an empty cache",
                cache.path.display()
            )),
        }
        Ok(cache)
    }

    /// Where the cache is stored.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Problems found while opening, for the caller to report.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// How many entries the cache holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keep at most `max_entries` entries (at least one), dropping the oldest.
    pub fn set_max_entries(&mut self, max_entries: usize) {
        self.max_entries = max_entries.max(1);
        self.trim();
    }

    /// The image recorded for `key` and the artifact `image_name`, if any.
    pub fn lookup(&self, key: &str, image_name: &str) -> Option<&CachedImage> {
        self.entries
            .iter()
            .rev()
            .find(|entry| entry.key == key && entry.image.image_name == image_name)
            .map(|entry| &entry.image)
    }

    /// Remembers that `key` produced `image`, replacing what was recorded for the same key and
    /// image name. Call [`ArtifactCache::save`] to persist.
    pub fn record(&mut self, key: impl Into<String>, image: CachedImage) {
        let key = key.into();
        self.entries
            .retain(|entry| !(entry.key == key && entry.image.image_name == image.image_name));
        self.entries.push(StoredEntry { key, image });
        self.trim();
    }

    fn trim(&mut self) {
        if self.entries.len() > self.max_entries {
            let excess = self.entries.len() - self.max_entries;
            self.entries.drain(..excess);
        }
    }

    /// Writes the cache to its file atomically: a temporary file in the same directory, then a
    /// rename. Parent directories are created.
    ///
    /// # Errors
    ///
    /// [`BuildError::Io`] naming the cache file when it cannot be written (read-only directory,
    /// full disk, …); the file on disk is then unchanged.
    pub fn save(&self) -> Result<(), BuildError> {
        let io_error = |source: std::io::Error| BuildError::Io {
            path: self.path.clone(),
            source,
        };
        let stored = StoredCache {
            version: CACHE_FORMAT_VERSION,
            entries: self.entries.clone(),
        };
        let mut bytes = serde_json::to_vec(&stored).map_err(|err| io_error(err.into()))?;
        bytes.push(b'\n');

        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(io_error)?;
        let file_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "cache".to_owned());
        let temp = dir.join(format!(
            ".{file_name}.{}.{}.tmp",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&temp, &self.path)
        })();
        if let Err(err) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(io_error(err));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_failed_save_names_the_file_and_keeps_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blocker"), "").unwrap();
        let path = dir.path().join("blocker/artifacts.json");
        let err = ArtifactCache::open(&path).unwrap().save().unwrap_err();
        let BuildError::Io {
            path: named,
            source,
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(named, &path);
        // Callers may still tell a full disk from a read-only one: the kind is the system's.
        let system = std::fs::create_dir_all(dir.path().join("blocker")).unwrap_err();
        assert_eq!(source.kind(), system.kind());
        let text = err.to_string();
        assert!(text.starts_with(&path.display().to_string()), "{text}");
        assert_eq!(std::fs::read(dir.path().join("blocker")).unwrap(), b"");
    }
}
