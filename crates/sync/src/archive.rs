//! The tar archive a sync sends: one regular-file entry per copied file, named by its
//! normalised container path, owned by root, with the file's permission bits.
//!
//! A source is opened through its real path: one that is (or passes through) a symbolic link
//! resolving outside the context is refused with [`SyncError::OutsideContext`].

use std::io::Read;
use std::path::Path;

use crate::{SyncError, SyncPlan};

/// The archives of one plan: entries for absolute destinations (names relative to `/`), and
/// entries for destinations relative to the container's working directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Archive {
    /// Entries to unpack at `/`; `None` when there are none.
    pub absolute: Option<Vec<u8>>,
    /// Entries to unpack in the working directory; `None` when there are none.
    pub relative: Option<Vec<u8>>,
    /// Files in both.
    pub files: usize,
}

impl Archive {
    /// Total bytes of both archives.
    pub fn bytes(&self) -> u64 {
        let len = |a: &Option<Vec<u8>>| a.as_ref().map_or(0, |a| a.len() as u64);
        len(&self.absolute) + len(&self.relative)
    }
}

/// A container path as a tar entry name: no leading `/`, no empty, `.` or `..` parts.
pub fn entry_name(path: &str) -> Result<String, SyncError> {
    let bad = |reason: &str| SyncError::BadPath {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(bad("it contains `..`")),
            part if part.contains('\0') => return Err(bad("it contains a NUL byte")),
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err(bad("it names no file"));
    }
    Ok(parts.join("/"))
}

/// Reads the plan's files and builds its archives.
pub fn build(plan: &SyncPlan) -> Result<Archive, SyncError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SyncError::Io { path, source }
    };
    let context = plan.context.canonicalize().map_err(io(&plan.context))?;
    let mut absolute = tar::Builder::new(Vec::new());
    let mut relative = tar::Builder::new(Vec::new());
    let (mut any_absolute, mut any_relative) = (false, false);
    let mut files = 0;
    for copy in &plan.copy {
        let real = copy.source.canonicalize().map_err(io(&copy.source))?;
        if !real.starts_with(&context) {
            return Err(SyncError::OutsideContext {
                path: copy.source.clone(),
                target: real,
                context: plan.context.clone(),
            });
        }
        let metadata = std::fs::metadata(&real).map_err(io(&copy.source))?;
        if !metadata.is_file() {
            // A directory or special file: its files sync on their own.
            continue;
        }
        let mut data = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
        std::fs::File::open(&real)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(io(&copy.source))?;
        let name = entry_name(&copy.destination)?;
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(data.len() as u64);
        header.set_mode(mode(&metadata));
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(
            metadata
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs()),
        );
        let builder = if copy.destination.starts_with('/') {
            any_absolute = true;
            &mut absolute
        } else {
            any_relative = true;
            &mut relative
        };
        builder
            .append_data(&mut header, &name, data.as_slice())
            .map_err(io(&copy.source))?;
        files += 1;
    }
    let finish =
        |builder: tar::Builder<Vec<u8>>, any: bool| -> Result<Option<Vec<u8>>, SyncError> {
            if !any {
                return Ok(None);
            }
            builder.into_inner().map(Some).map_err(io(&plan.context))
        };
    Ok(Archive {
        absolute: finish(absolute, any_absolute)?,
        relative: finish(relative, any_relative)?,
        files,
    })
}

#[cfg(unix)]
fn mode(metadata: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode(_metadata: &std::fs::Metadata) -> u32 {
    0o644
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::FileCopy;

    fn entries(archive: &[u8]) -> Vec<(String, String, u32)> {
        let mut reader = tar::Archive::new(archive);
        reader
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                let mode = e.header().mode().unwrap();
                let mut text = String::new();
                e.read_to_string(&mut text).unwrap();
                (name, text, mode)
            })
            .collect()
    }

    #[test]
    fn entry_names_are_normalised() {
        assert_eq!(entry_name("/srv//www/./a").unwrap(), "srv/www/a");
        assert_eq!(entry_name("app/a").unwrap(), "app/a");
        assert!(entry_name("/srv/../etc").is_err());
        assert!(entry_name("/").is_err());
    }

    #[test]
    fn builds_absolute_and_relative_archives() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "hello").unwrap();
        std::fs::write(dir.path().join("b.js"), "js").unwrap();
        let plan = SyncPlan {
            context: dir.path().to_path_buf(),
            copy: vec![
                FileCopy {
                    source: dir.path().join("a.txt"),
                    destination: "/srv/www/a.txt".into(),
                },
                FileCopy {
                    source: dir.path().join("b.js"),
                    destination: "app/b.js".into(),
                },
            ],
            ..SyncPlan::default()
        };
        let archive = build(&plan).unwrap();
        assert_eq!(archive.files, 2);
        let absolute = entries(archive.absolute.as_deref().unwrap());
        assert_eq!(absolute[0].0, "srv/www/a.txt");
        assert_eq!(absolute[0].1, "hello");
        assert_eq!(
            entries(archive.relative.as_deref().unwrap())[0].0,
            "app/b.js"
        );
        assert!(archive.bytes() > 1024);
    }

    #[cfg(unix)]
    #[test]
    fn symlink_out_of_the_context_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
        let plan = SyncPlan {
            context: dir.path().to_path_buf(),
            copy: vec![FileCopy {
                source: dir.path().join("link"),
                destination: "/x".into(),
            }],
            ..SyncPlan::default()
        };
        assert!(matches!(
            build(&plan),
            Err(SyncError::OutsideContext { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn symlink_inside_the_context_copies_the_target_and_keeps_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("run.sh"), "#!/bin/sh").unwrap();
        std::fs::set_permissions(
            dir.path().join("run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("run.sh", dir.path().join("link")).unwrap();
        let plan = SyncPlan {
            context: dir.path().to_path_buf(),
            copy: vec![FileCopy {
                source: dir.path().join("link"),
                destination: "/bin/run".into(),
            }],
            ..SyncPlan::default()
        };
        let archive = build(&plan).unwrap();
        let entries = entries(archive.absolute.as_deref().unwrap());
        assert_eq!(entries[0], ("bin/run".into(), "#!/bin/sh".into(), 0o755));
    }

    #[test]
    fn missing_source_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let plan = SyncPlan {
            context: dir.path().to_path_buf(),
            copy: vec![FileCopy {
                source: dir.path().join("gone.txt"),
                destination: "/x".into(),
            }],
            ..SyncPlan::default()
        };
        let error = build(&plan).unwrap_err().to_string();
        assert!(error.contains("gone.txt"), "{error}");
    }
}
