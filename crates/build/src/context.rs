//! The build context archive sent to the Docker engine.
//!
//! `docker build` uploads the context directory as a tar stream, leaving out what the
//! `.dockerignore` excludes. [`pack`] does the same, with three properties the dev loop relies
//! on:
//!
//! - **Docker's selection**: files, directories and symbolic links (kept as links, never
//!   followed) that the ignore file does not exclude, with `!` exceptions re-including files
//!   inside excluded directories; the Dockerfile and the ignore file in use are always sent,
//!   even when excluded, as the Docker CLI does. A Dockerfile outside the context is added
//!   under a generated name ([`ContextArchive::dockerfile_in_archive`]) for the engine to be
//!   pointed at.
//! - **Determinism**: entries sorted by path, modification times 0, owner 0:0 with no user or
//!   group names — the same tree gives the same bytes, so nothing downstream sees a spurious
//!   change. Permission bits (the executable bit in particular) are kept.
//! - **Feedback**: the archive reports its size, file count and largest top-level directories,
//!   and [`ContextArchive::large_context_warning`] explains a large upload — usually a missing
//!   `.dockerignore` sending `node_modules` or `.git`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::BuildError;
use crate::dependencies::{EntryKind, walk};
use crate::dockerignore::{DockerIgnore, clean_path};

/// A context above this many bytes gets a warning.
pub const LARGE_CONTEXT_BYTES: u64 = 50 * 1024 * 1024;

/// How many directories [`ContextArchive::largest_dirs`] lists.
const LARGEST_DIRS: usize = 5;

/// A packed build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextArchive {
    /// The tar stream.
    pub tar: Vec<u8>,
    /// The sum of the sizes of the regular files in it.
    pub bytes: u64,
    /// How many regular files it holds.
    pub files: u64,
    /// The largest top-level directories of the context by the bytes of their files, largest
    /// first (ties by name), at most five.
    pub largest_dirs: Vec<(PathBuf, u64)>,
    /// Where the Dockerfile is in the archive (`/`-separated), to tell the engine.
    pub dockerfile_in_archive: String,
    /// The ignore file that was applied, if any.
    pub dockerignore: Option<PathBuf>,
}

impl ContextArchive {
    /// A warning for a context of [`LARGE_CONTEXT_BYTES`] or more, naming its size, its
    /// largest directories and how to leave them out; `None` for a smaller one.
    pub fn large_context_warning(&self) -> Option<String> {
        if self.bytes < LARGE_CONTEXT_BYTES {
            return None;
        }
        let mut text = format!(
            "the build context is {} ({} files), which slows every build",
            human_bytes(self.bytes),
            self.files
        );
        if !self.largest_dirs.is_empty() {
            let dirs: Vec<String> = self
                .largest_dirs
                .iter()
                .map(|(dir, bytes)| format!("{} ({})", dir.display(), human_bytes(*bytes)))
                .collect();
            text.push_str(&format!("; largest directories: {}", dirs.join(", ")));
        }
        let candidates: Vec<String> = self
            .largest_dirs
            .iter()
            .take(3)
            .map(|(dir, _)| dir.display().to_string())
            .collect();
        let example = if candidates.is_empty() {
            "node_modules, .git, build output".to_owned()
        } else {
            candidates.join(", ")
        };
        match &self.dockerignore {
            None => text.push_str(&format!(
                "; add a .dockerignore to the context listing what the image does not need (e.g. {example})"
            )),
            Some(path) => text.push_str(&format!(
                "; add what the image does not need (e.g. {example}) to {}",
                path.display()
            )),
        }
        Some(text)
    }
}

/// One entry to archive.
#[derive(Debug)]
struct Item {
    rel_path: PathBuf,
    path: PathBuf,
    kind: EntryKind,
    mode: u32,
}

/// Pack `context` into a tar, honouring `ignore`, always including the Dockerfile
/// (`dockerfile_rel`, relative to the context or absolute) and `ignore`'s own file.
pub fn pack(
    context: &Path,
    dockerfile_rel: &str,
    ignore: &DockerIgnore,
) -> Result<ContextArchive, BuildError> {
    let mut items: BTreeMap<String, Item> = BTreeMap::new();
    walk(context, "", ignore, &mut |entry| {
        if entry.excluded || entry.kind == EntryKind::Other {
            return Ok(());
        }
        add_parents(context, &entry.rel_path, &mut items)?;
        items.insert(
            entry.rel,
            Item {
                rel_path: entry.rel_path,
                path: entry.path,
                kind: entry.kind,
                mode: mode_of(&entry.metadata),
            },
        );
        Ok(())
    })?;

    let mut forced: Vec<PathBuf> = Vec::new();
    let dockerfile_inside = inside_context(context, Path::new(dockerfile_rel));
    if let Some(rel) = &dockerfile_inside {
        forced.push(rel.clone());
    }
    if let Some(source) = ignore.source() {
        if let Some(rel) = inside_context(context, source) {
            forced.push(rel);
        }
    }
    for rel_path in forced {
        let key = rel_key(&rel_path);
        if items.contains_key(&key) {
            continue;
        }
        let path = context.join(&rel_path);
        let metadata = fs::symlink_metadata(&path).map_err(|source| BuildError::Io {
            path: path.clone(),
            source,
        })?;
        add_parents(context, &rel_path, &mut items)?;
        let kind = if metadata.file_type().is_symlink() {
            EntryKind::Symlink
        } else {
            EntryKind::File
        };
        items.insert(
            key,
            Item {
                rel_path,
                path,
                kind,
                mode: mode_of(&metadata),
            },
        );
    }

    let mut builder = tar::Builder::new(Vec::new());
    let mut bytes = 0u64;
    let mut files = 0u64;
    let mut dir_bytes: HashMap<String, u64> = HashMap::new();
    for (key, item) in &items {
        let io_error = |source: io::Error| BuildError::Io {
            path: item.path.clone(),
            source,
        };
        let mut header = base_header(item.mode);
        match item.kind {
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, &item.rel_path, io::empty())
                    .map_err(io_error)?;
            }
            EntryKind::Symlink => {
                let target = fs::read_link(&item.path).map_err(io_error)?;
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder
                    .append_link(&mut header, &item.rel_path, &target)
                    .map_err(io_error)?;
            }
            EntryKind::File | EntryKind::Other => {
                let data = fs::read(&item.path).map_err(io_error)?;
                let size = data.len() as u64;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(size);
                builder
                    .append_data(&mut header, &item.rel_path, data.as_slice())
                    .map_err(io_error)?;
                bytes += size;
                files += 1;
                if let Some((top, _)) = key.split_once('/') {
                    *dir_bytes.entry(top.to_owned()).or_default() += size;
                }
            }
        }
    }

    let dockerfile_in_archive = match dockerfile_inside {
        Some(rel) => rel_key(&rel),
        None => {
            let path = context.join(dockerfile_rel);
            let data = fs::read(&path).map_err(|source| BuildError::Io {
                path: path.clone(),
                source,
            })?;
            let metadata = fs::metadata(&path).map_err(|source| BuildError::Io {
                path: path.clone(),
                source,
            })?;
            let digest = hex::encode(Sha256::digest(&data));
            let name = format!(".dockerfile.{}", &digest[..20]);
            let mut header = base_header(mode_of(&metadata));
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(data.len() as u64);
            builder
                .append_data(&mut header, &name, data.as_slice())
                .map_err(|source| BuildError::Io {
                    path: path.clone(),
                    source,
                })?;
            bytes += data.len() as u64;
            files += 1;
            name
        }
    };

    let tar = builder.into_inner().map_err(|source| BuildError::Io {
        path: context.to_path_buf(),
        source,
    })?;
    let mut largest_dirs: Vec<(PathBuf, u64)> = dir_bytes
        .into_iter()
        .map(|(dir, bytes)| (PathBuf::from(dir), bytes))
        .collect();
    largest_dirs.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    largest_dirs.truncate(LARGEST_DIRS);
    Ok(ContextArchive {
        tar,
        bytes,
        files,
        largest_dirs,
        dockerfile_in_archive,
        dockerignore: ignore.source().map(Path::to_path_buf),
    })
}

/// A header with the deterministic fields set: mode, owner 0:0, no names, time 0.
fn base_header(mode: u32) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

/// Make sure every parent directory of `rel_path` is in `items` (a file re-included inside an
/// excluded directory still needs its directories).
fn add_parents(
    context: &Path,
    rel_path: &Path,
    items: &mut BTreeMap<String, Item>,
) -> Result<(), BuildError> {
    let mut parents: Vec<&Path> = rel_path
        .ancestors()
        .skip(1)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    parents.reverse();
    for parent in parents {
        let key = rel_key(parent);
        if items.contains_key(&key) {
            continue;
        }
        let path = context.join(parent);
        let metadata = fs::symlink_metadata(&path).map_err(|source| BuildError::Io {
            path: path.clone(),
            source,
        })?;
        items.insert(
            key,
            Item {
                rel_path: parent.to_path_buf(),
                path,
                kind: EntryKind::Dir,
                mode: mode_of(&metadata),
            },
        );
    }
    Ok(())
}

/// `path` relative to `context` when it lies inside it (lexically), else `None`.
fn inside_context(context: &Path, path: &Path) -> Option<PathBuf> {
    if path.is_absolute() {
        let rel = path.strip_prefix(context).ok()?;
        let cleaned = clean_path(&rel_key(rel));
        return (cleaned != "." && cleaned != ".." && !cleaned.starts_with("../"))
            .then(|| PathBuf::from(cleaned));
    }
    let cleaned = clean_path(&path.to_string_lossy().replace('\\', "/"));
    if cleaned == "." || cleaned == ".." || cleaned.starts_with("../") || cleaned.starts_with('/') {
        return None;
    }
    Some(PathBuf::from(cleaned))
}

/// A relative path as a `/`-separated key.
fn rel_key(path: &Path) -> String {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(unix)]
fn mode_of(metadata: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(metadata: &fs::Metadata) -> u32 {
    if metadata.is_dir() { 0o755 } else { 0o644 }
}

/// `123.4 MiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(LARGE_CONTEXT_BYTES), "50.0 MiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn inside_or_outside() {
        let ctx = Path::new("/work/app");
        assert_eq!(
            inside_context(ctx, Path::new("Dockerfile")),
            Some(PathBuf::from("Dockerfile"))
        );
        assert_eq!(
            inside_context(ctx, Path::new("./docker/../build/Dockerfile")),
            Some(PathBuf::from("build/Dockerfile"))
        );
        assert_eq!(inside_context(ctx, Path::new("../Dockerfile")), None);
        assert_eq!(
            inside_context(ctx, Path::new("/work/app/sub/Dockerfile")),
            Some(PathBuf::from("sub/Dockerfile"))
        );
        assert_eq!(
            inside_context(ctx, Path::new("/elsewhere/Dockerfile")),
            None
        );
    }

    #[test]
    fn warning_only_for_large_contexts() {
        let mut archive = ContextArchive {
            tar: Vec::new(),
            bytes: 1000,
            files: 3,
            largest_dirs: vec![(PathBuf::from("node_modules"), 900)],
            dockerfile_in_archive: "Dockerfile".into(),
            dockerignore: None,
        };
        assert_eq!(archive.large_context_warning(), None);
        archive.bytes = 300 * 1024 * 1024;
        archive.largest_dirs = vec![
            (PathBuf::from("node_modules"), 250 * 1024 * 1024),
            (PathBuf::from(".git"), 40 * 1024 * 1024),
        ];
        let text = archive.large_context_warning().unwrap();
        assert!(text.contains("300.0 MiB"), "{text}");
        assert!(
            text.contains("node_modules (250.0 MiB), .git (40.0 MiB)"),
            "{text}"
        );
        assert!(text.contains("add a .dockerignore"), "{text}");
        archive.dockerignore = Some(PathBuf::from("/p/.dockerignore"));
        let text = archive.large_context_warning().unwrap();
        assert!(text.contains("to /p/.dockerignore"), "{text}");
    }
}
