//! Which files an artifact depends on, and where a Dockerfile copies them.
//!
//! The dev loop rebuilds an artifact when one of its dependencies changes, the cache keys it
//! by their contents, and `sync.infer` copies changed files straight into running containers
//! instead of rebuilding. All three need the same answer Docker would give:
//!
//! - [`dockerfile_dependencies`]: the sources of every `COPY`/`ADD` (and context bind mounts
//!   of `RUN --mount`) in the stages the target needs — `--from` sources, URLs, git
//!   references and heredocs left out — expanded as Docker expands them (globs with `*`, `?`
//!   and `[...]` that do not cross `/`, directories meaning every file below), minus what the
//!   `.dockerignore` excludes, plus the Dockerfile and the ignore file in use;
//! - [`sync_map`]: for the target stage only, where each context file lands in the image,
//!   following Docker's destination rules;
//! - [`custom_dependencies`]: Skaffold's `custom.dependencies` (`paths`/`ignore` globs, a
//!   `dockerfile`, or a `command` printing a JSON array).
//!
//! Walking the context uses `std::fs` only, visits entries in sorted order, skips directories
//! the `.dockerignore` excludes outright and never follows symbolic links, so nothing outside
//! the context is ever read.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::BuildError;
use crate::artifact::CustomDependencies;
use crate::dockerfile::{
    self, CopyInstruction, CopySource, Dockerfile, InstructionKind, resolve_path,
};
use crate::dockerignore::{DockerIgnore, PathGlob, clean_path, has_wildcards};

/// The files an artifact depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dependencies {
    /// Paths relative to the context, sorted. A Dockerfile or ignore file outside the context
    /// appears as a relative path starting with `..` (or absolute if it has no relation).
    pub files: BTreeSet<PathBuf>,
}

/// Where one context file lands in the image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CopyMapping {
    /// The file, relative to the context.
    pub source: PathBuf,
    /// Its absolute path in the final image.
    pub dest: String,
}

/// The dependencies of a Dockerfile artifact: the sources of the `COPY`/`ADD` instructions
/// (and context `RUN --mount=type=bind` sources) of every stage `target` (default: the last
/// stage) needs, as files relative to `context`, without what `ignore` excludes; plus the
/// Dockerfile and `ignore`'s file.
///
/// A source without wildcards that names nothing in the context (or only excluded files) is
/// a [`BuildError::Dockerfile`] naming the source and its line, as `docker build` would fail;
/// a wildcard matching nothing is allowed, as with BuildKit.
pub fn dockerfile_dependencies(
    context: &Path,
    dockerfile_rel: &str,
    build_args: &BTreeMap<String, Option<String>>,
    target: Option<&str>,
    ignore: &DockerIgnore,
) -> Result<Dependencies, BuildError> {
    let (path, parsed) = read_dockerfile(context, dockerfile_rel, build_args)?;
    let target = parsed
        .target_stage(target)
        .map_err(|e| e.into_build_error(&path))?;
    let mut files = BTreeSet::new();
    files.insert(relative_to(context, &path));
    if let Some(source) = ignore.source() {
        files.insert(relative_to(context, source));
    }
    for index in parsed.stages_needed(target) {
        for instruction in &parsed.stages[index].instructions {
            let line = instruction.line;
            match &instruction.kind {
                InstructionKind::Copy(copy) | InstructionKind::Add(copy) => {
                    if copy.from.is_some() {
                        continue;
                    }
                    for source in local_sources(copy) {
                        for found in resolve_source(context, source, ignore, &path, line)? {
                            files.extend(files_of(context, &found, ignore)?);
                        }
                    }
                }
                InstructionKind::Run(run) => {
                    for mount in &run.mounts {
                        if mount.from.is_some() || !mount.kind.eq_ignore_ascii_case("bind") {
                            continue;
                        }
                        let source = mount.source.as_deref().unwrap_or("");
                        for found in resolve_source(context, source, ignore, &path, line)? {
                            files.extend(files_of(context, &found, ignore)?);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(Dependencies { files })
}

/// For the target stage (default: the last), where each context file its `COPY`/`ADD`
/// instructions without `--from` copy lands in the image: `WORKDIR`-resolved, a directory
/// source copying its contents, `--parents` keeping the source's path, and a file going
/// *into* the destination when it names a directory — it ends with `/` or is `.`, several
/// files are copied, or the directory is known to exist (a `WORKDIR`, a directory an earlier
/// instruction of the stage or its base stages copied to, or a standard directory such as
/// `/usr/local/bin`; what else a base image holds is unknown here) — and *to* it otherwise.
/// Excluded files, URLs, heredocs and `ADD`ed archives (which Docker unpacks) are left out.
/// Mappings come in instruction order, then by source path, each pair once.
pub fn sync_map(
    context: &Path,
    dockerfile_rel: &str,
    build_args: &BTreeMap<String, Option<String>>,
    target: Option<&str>,
    ignore: &DockerIgnore,
) -> Result<Vec<CopyMapping>, BuildError> {
    let (path, parsed) = read_dockerfile(context, dockerfile_rel, build_args)?;
    let target = parsed
        .target_stage(target)
        .map_err(|e| e.into_build_error(&path))?;
    // The stage and the stages it is built on, oldest first: their WORKDIRs and COPY
    // destinations tell which directories exist.
    let mut chain = vec![target];
    while let Some(base) = chain
        .last()
        .and_then(|&i| parsed.stages[i].base_stage)
        .filter(|base| !chain.contains(base))
    {
        chain.push(base);
    }
    chain.reverse();
    let mut dirs: BTreeSet<String> = STANDARD_DIRS.iter().map(|d| (*d).to_owned()).collect();
    let mut mappings: Vec<CopyMapping> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut workdir = "/".to_owned();
    for &index in &chain {
        for instruction in &parsed.stages[index].instructions {
            let (copy, is_add) = match &instruction.kind {
                InstructionKind::Workdir(dir) => {
                    workdir = resolve_path(&workdir, dir);
                    add_dir(&mut dirs, &workdir);
                    continue;
                }
                InstructionKind::Copy(copy) => (copy, false),
                InstructionKind::Add(copy) => (copy, true),
                _ => continue,
            };
            let dest_base = copy.dest_path();
            if index != target || copy.from.is_some() {
                // Only the directories it creates matter.
                if copy.dest_is_dir() || copy.sources.len() > 1 {
                    add_dir(&mut dirs, &dest_base);
                } else {
                    add_dir(&mut dirs, &parent_dir(&dest_base));
                }
                continue;
            }
            let batch = copy_mappings(
                context,
                copy,
                is_add,
                &dest_base,
                &dirs,
                ignore,
                &path,
                instruction.line,
            )?;
            for mapping in batch {
                add_dir(&mut dirs, &parent_dir(&mapping.dest));
                if seen.insert((mapping.source.clone(), mapping.dest.clone())) {
                    mappings.push(mapping);
                }
            }
            if copy.dest_is_dir() {
                add_dir(&mut dirs, &dest_base);
            }
        }
    }
    Ok(mappings)
}

/// Directories nearly every Linux base image has.
const STANDARD_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/etc",
    "/home",
    "/lib",
    "/mnt",
    "/opt",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/usr/local",
    "/usr/local/bin",
    "/usr/local/lib",
    "/usr/local/sbin",
    "/usr/local/share",
    "/usr/sbin",
    "/usr/share",
    "/var",
    "/var/lib",
    "/var/log",
    "/var/tmp",
];

/// The mappings of one `COPY`/`ADD` of the target stage, sorted by source.
#[allow(clippy::too_many_arguments)]
fn copy_mappings(
    context: &Path,
    copy: &CopyInstruction,
    is_add: bool,
    dest_base: &str,
    dirs: &BTreeSet<String>,
    ignore: &DockerIgnore,
    dockerfile: &Path,
    line: usize,
) -> Result<Vec<CopyMapping>, BuildError> {
    let several_sources = copy.sources.len() > 1;
    let mut batch = Vec::new();
    for source in local_sources(copy) {
        if is_add && is_archive(source) {
            continue;
        }
        let found = resolve_source(context, source, ignore, dockerfile, line)?;
        let into_dir =
            copy.dest_is_dir() || several_sources || found.len() > 1 || dirs.contains(dest_base);
        let pivot = copy.parents.then(|| parents_pivot(source));
        for entry in &found {
            let kept = pivot.as_ref().map(|pivot| strip_pivot(&entry.rel, pivot));
            if entry.is_dir {
                let base = match &kept {
                    Some(kept) => join_image(dest_base, kept),
                    None => dest_base.to_owned(),
                };
                for file in files_of(context, entry, ignore)? {
                    let inner = file
                        .strip_prefix(&entry.rel_path)
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|_| file.clone());
                    let dest = join_image(&base, &inner.to_string_lossy());
                    batch.push(CopyMapping { source: file, dest });
                }
            } else {
                let dest = match &kept {
                    Some(kept) => join_image(dest_base, kept),
                    None if into_dir => join_image(dest_base, base_name(&entry.rel)),
                    None => dest_base.to_owned(),
                };
                batch.push(CopyMapping {
                    source: entry.rel_path.clone(),
                    dest,
                });
            }
        }
    }
    batch.sort();
    Ok(batch)
}

/// Record `dir` and its parents as existing.
fn add_dir(dirs: &mut BTreeSet<String>, dir: &str) {
    let mut current = clean_path(dir);
    while dirs.insert(current.clone()) && current != "/" {
        current = parent_dir(&current);
    }
}

/// The parent of an absolute image path (`/` for `/` itself).
fn parent_dir(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => path[..i].to_owned(),
    }
}

/// The dependencies of a custom artifact, with Skaffold's precedence: `dockerfile` (its
/// `COPY`/`ADD` sources, see [`dockerfile_dependencies`], with the artifact's ignore file),
/// else `command` (run with `sh -c` in `context`, with exactly the variables in `env`; its
/// standard output must be a JSON array of paths, relative to the context or absolute),
/// else `paths` — globs relative to the context where `**` crosses directories and a
/// directory stands for every file below — minus `ignore` (`.dockerignore` syntax).
///
/// A `paths` entry that matches nothing is an error, as in Skaffold; so are a command that
/// cannot start, fails, or prints something else than a JSON array of strings
/// ([`BuildError::Command`] naming `image` and the command).
pub async fn custom_dependencies(
    image: &str,
    context: &Path,
    deps: &CustomDependencies,
    env: &BTreeMap<String, String>,
) -> Result<Dependencies, BuildError> {
    if let Some(dockerfile) = &deps.dockerfile {
        let ignore = DockerIgnore::for_artifact(context, Path::new(&dockerfile.path))?;
        return dockerfile_dependencies(
            context,
            &dockerfile.path,
            &dockerfile.build_args,
            None,
            &ignore,
        );
    }
    if let Some(command) = &deps.command {
        return command_dependencies(image, context, command, env).await;
    }
    paths_dependencies(context, &deps.paths, &deps.ignore)
}

async fn command_dependencies(
    image: &str,
    context: &Path,
    command: &str,
    env: &BTreeMap<String, String>,
) -> Result<Dependencies, BuildError> {
    let failed = |reason: String| BuildError::Command {
        image: image.to_owned(),
        command: command.to_owned(),
        reason,
    };
    let shell = if cfg!(unix) { "/bin/sh" } else { "sh" };
    let output = tokio::process::Command::new(shell)
        .arg("-c")
        .arg(command)
        .current_dir(context)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(failed(if tail.is_empty() {
            format!("it {}", output.status)
        } else {
            format!("it {}: {}", output.status, tail.join("\n"))
        }));
    }
    let paths: Vec<String> = serde_json::from_slice(&output.stdout).map_err(|e| {
        failed(format!(
            "its output is not a JSON array of paths ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
                .chars()
                .take(200)
                .collect::<String>()
        ))
    })?;
    let files = paths
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| relative_to(context, Path::new(p)))
        .collect();
    Ok(Dependencies { files })
}

fn paths_dependencies(
    context: &Path,
    paths: &[String],
    ignore: &[String],
) -> Result<Dependencies, BuildError> {
    let ignore = DockerIgnore::from_patterns(ignore).map_err(|e| BuildError::Io {
        path: context.to_path_buf(),
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("custom.dependencies.ignore: {}", e.message),
        ),
    })?;
    let mut files = BTreeSet::new();
    for pattern in paths {
        let matcher = DockerIgnore::from_patterns([pattern]).map_err(|e| BuildError::Io {
            path: context.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("custom.dependencies.paths: {}", e.message),
            ),
        })?;
        let cleaned = clean_path(pattern.trim().trim_start_matches('/'));
        // Walk only below the pattern's literal leading directories.
        let literal: Vec<&str> = cleaned
            .split('/')
            .take_while(|segment| !has_wildcards(segment))
            .collect();
        let (start, whole_is_literal) = if literal.len() == cleaned.split('/').count() {
            (String::new(), true)
        } else {
            (literal.join("/"), false)
        };
        let start = if start == "." { String::new() } else { start };
        let mut matched = false;
        if whole_is_literal && cleaned != "." {
            // A plain path: the file itself, or every file below the directory.
            let abs = context.join(&cleaned);
            let meta = if through_symlink(context, Path::new(&cleaned), false) {
                // Never read through a link: depend on the path as written.
                matched = true;
                files.insert(PathBuf::from(&cleaned));
                Err(io::Error::from(io::ErrorKind::NotFound))
            } else {
                fs::symlink_metadata(&abs)
            };
            match meta {
                Ok(meta) if meta.is_dir() => {
                    matched = true;
                    walk(context, &cleaned, &ignore, &mut |entry| {
                        if entry.is_file_like() && !entry.excluded {
                            files.insert(entry.rel_path);
                        }
                        Ok(())
                    })?;
                }
                Ok(_) => {
                    matched = true;
                    if !ignore.is_excluded(&cleaned) {
                        files.insert(PathBuf::from(&cleaned));
                    }
                }
                Err(_) => {}
            }
        } else if start.is_empty()
            || fs::symlink_metadata(context.join(&start)).is_ok_and(|m| m.is_dir())
        {
            walk(context, &start, &ignore, &mut |entry| {
                if matcher.is_excluded(&entry.rel) {
                    matched = true;
                    if entry.is_file_like() && !entry.excluded {
                        files.insert(entry.rel_path);
                    }
                }
                Ok(())
            })?;
        }
        if !matched {
            return Err(BuildError::Io {
                path: context.join(&cleaned),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "custom.dependencies.paths: pattern {pattern:?} did not match any file"
                    ),
                ),
            });
        }
    }
    Ok(Dependencies { files })
}

// ---------------------------------------------------------------------------------------------
// Dockerfile sources.

fn read_dockerfile(
    context: &Path,
    dockerfile_rel: &str,
    build_args: &BTreeMap<String, Option<String>>,
) -> Result<(PathBuf, Dockerfile), BuildError> {
    let path = context.join(dockerfile_rel);
    let bytes = fs::read(&path).map_err(|source| BuildError::Io {
        path: path.clone(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let parsed = dockerfile::parse(&text, build_args).map_err(|e| e.into_build_error(&path))?;
    Ok((path, parsed))
}

/// The sources of `copy` that come from the build context: not heredocs, URLs or git refs.
fn local_sources(copy: &CopyInstruction) -> impl Iterator<Item = &str> {
    copy.sources.iter().filter_map(|source| match source {
        CopySource::Path(path) if !is_remote(path) => Some(path.as_str()),
        _ => None,
    })
}

/// `scheme://…` or `git@host:…`.
fn is_remote(source: &str) -> bool {
    if source.starts_with("git@") {
        return true;
    }
    match source.find("://") {
        Some(i) => {
            let scheme = &source[..i];
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

/// Whether `ADD` would unpack `source` (judged by its name).
fn is_archive(source: &str) -> bool {
    let lower = source.to_lowercase();
    [
        ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz", ".tar.zst",
    ]
    .iter()
    .any(|ext| lower.ends_with(ext))
}

/// An entry of the context a source names.
#[derive(Debug, Clone)]
struct Found {
    rel: String,
    rel_path: PathBuf,
    is_dir: bool,
}

/// Resolve one `COPY`/`ADD` source (already variable-expanded) against the context, as
/// Docker does: relative to the context root whatever its leading `/` or `..`, globs matched
/// per path segment, excluded entries absent.
fn resolve_source(
    context: &Path,
    source: &str,
    ignore: &DockerIgnore,
    dockerfile: &Path,
    line: usize,
) -> Result<Vec<Found>, BuildError> {
    let cleaned = clean_path(&format!("/{source}"));
    let rel = cleaned.trim_start_matches('/').to_owned();
    if rel.is_empty() {
        return Ok(vec![Found {
            rel: String::new(),
            rel_path: PathBuf::new(),
            is_dir: true,
        }]);
    }
    let error = |message: String| BuildError::Dockerfile {
        path: dockerfile.to_path_buf(),
        line,
        message,
    };
    if !has_wildcards(&rel) {
        let rel_path = PathBuf::from(&rel);
        if through_symlink(context, &rel_path, false) {
            // Never read through a link (it may leave the context): depend on the path as
            // written.
            return Ok(vec![Found {
                rel,
                rel_path,
                is_dir: false,
            }]);
        }
        let meta = match fs::symlink_metadata(context.join(&rel_path)) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(error(format!(
                    "COPY/ADD source `{source}` not found in the build context {}",
                    context.display()
                )));
            }
            Err(source) => {
                return Err(BuildError::Io {
                    path: context.join(&rel_path),
                    source,
                });
            }
        };
        let is_dir = meta.is_dir();
        let present = if is_dir {
            ignore.may_contain_included(&rel)
        } else {
            !ignore.is_excluded(&rel)
        };
        if !present {
            let by = ignore
                .source()
                .map_or_else(|| ".dockerignore".to_owned(), |p| p.display().to_string());
            return Err(error(format!(
                "COPY/ADD source `{source}` is excluded from the build context by {by}"
            )));
        }
        return Ok(vec![Found {
            rel,
            rel_path,
            is_dir,
        }]);
    }
    let mut current = vec![(String::new(), PathBuf::new())];
    let segments: Vec<&str> = rel.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let glob = PathGlob::new(segment).ok_or_else(|| {
            error(format!(
                "COPY/ADD source `{source}`: syntax error in pattern"
            ))
        })?;
        let mut next = Vec::new();
        for (dir, dir_path) in &current {
            if !dir.is_empty() && !ignore.may_contain_included(dir) {
                continue;
            }
            for (name, name_lossy) in read_dir_sorted(&context.join(dir_path))? {
                if !glob.matches(&name_lossy) {
                    continue;
                }
                let rel = join_rel(dir, &name_lossy);
                let rel_path = dir_path.join(&name);
                let Ok(meta) = fs::symlink_metadata(context.join(&rel_path)) else {
                    continue;
                };
                if last || meta.is_dir() {
                    next.push((rel, rel_path));
                }
            }
        }
        current = next;
    }
    let mut found = Vec::new();
    for (rel, rel_path) in current {
        let Ok(meta) = fs::symlink_metadata(context.join(&rel_path)) else {
            continue;
        };
        let is_dir = meta.is_dir();
        let present = if is_dir {
            ignore.may_contain_included(&rel)
        } else {
            !ignore.is_excluded(&rel)
        };
        if present {
            found.push(Found {
                rel,
                rel_path,
                is_dir,
            });
        }
    }
    Ok(found)
}

/// The files (and symbolic links) `found` brings in: itself, or everything below it.
fn files_of(
    context: &Path,
    found: &Found,
    ignore: &DockerIgnore,
) -> Result<Vec<PathBuf>, BuildError> {
    if !found.is_dir {
        return Ok(vec![found.rel_path.clone()]);
    }
    let mut files = Vec::new();
    walk(context, &found.rel, ignore, &mut |entry| {
        if entry.is_file_like() && !entry.excluded {
            files.push(entry.rel_path);
        }
        Ok(())
    })?;
    Ok(files)
}

/// The directory part before a `--parents` pivot (`src/./pkg` → `src`), cleaned; without a
/// pivot, the whole path is kept.
fn parents_pivot(source: &str) -> String {
    let normalized = format!("/{source}");
    match normalized.rfind("/./") {
        Some(i) => clean_path(&normalized[..i])
            .trim_start_matches('/')
            .to_owned(),
        None => String::new(),
    }
}

fn strip_pivot(rel: &str, pivot: &str) -> String {
    if pivot.is_empty() {
        return rel.to_owned();
    }
    rel.strip_prefix(pivot)
        .map(|rest| rest.trim_start_matches('/').to_owned())
        .unwrap_or_else(|| rel.to_owned())
}

fn base_name(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

/// Join an image path and a relative path, cleaned.
fn join_image(base: &str, rel: &str) -> String {
    if rel.is_empty() {
        return clean_path(base);
    }
    clean_path(&format!("{base}/{rel}"))
}

/// `path` relative to `context`: stripped when under it, `..`-relative when the relative
/// spelling is known, else as given.
fn relative_to(context: &Path, path: &Path) -> PathBuf {
    if let Ok(rel) = path.strip_prefix(context) {
        return PathBuf::from(clean_path(&rel.to_string_lossy()));
    }
    if path.is_relative() {
        return PathBuf::from(clean_path(&path.to_string_lossy()));
    }
    path.to_path_buf()
}

// ---------------------------------------------------------------------------------------------
// Walking the context.

/// What a walked entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
    /// A socket, FIFO or device.
    Other,
}

/// One entry met by [`walk`].
#[derive(Debug)]
pub(crate) struct Entry {
    /// The path relative to the context, `/`-separated (lossy for non-UTF-8 names; used for
    /// matching).
    pub rel: String,
    /// The exact relative path.
    pub rel_path: PathBuf,
    /// The absolute (context-joined) path.
    pub path: PathBuf,
    /// What it is.
    pub kind: EntryKind,
    /// Its own metadata (links not followed).
    pub metadata: fs::Metadata,
    /// Whether the `.dockerignore` excludes it. Excluded directories are only visited when
    /// something below them may be re-included.
    pub excluded: bool,
}

impl Entry {
    /// A regular file or a symbolic link.
    pub fn is_file_like(&self) -> bool {
        matches!(self.kind, EntryKind::File | EntryKind::Symlink)
    }
}

/// Visit everything below `start_rel` (relative to `context`, `""` for the root) in sorted
/// depth-first order, parents before children, skipping directories `ignore` excludes with
/// nothing re-includable below. Symbolic links are reported, never followed. Entries that
/// vanish while walking are skipped.
pub(crate) fn walk(
    context: &Path,
    start_rel: &str,
    ignore: &DockerIgnore,
    visit: &mut dyn FnMut(Entry) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    let start_path = if start_rel.is_empty() {
        PathBuf::new()
    } else {
        PathBuf::from(start_rel)
    };
    if !start_rel.is_empty() && through_symlink(context, &start_path, true) {
        return Ok(());
    }
    let mut stack: Vec<(String, PathBuf)> = Vec::new();
    push_children(context, start_rel, &start_path, &mut stack)?;
    while let Some((rel, rel_path)) = stack.pop() {
        let path = context.join(&rel_path);
        let metadata = match fs::symlink_metadata(&path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(BuildError::Io { path, source }),
        };
        let file_type = metadata.file_type();
        let kind = if file_type.is_symlink() {
            EntryKind::Symlink
        } else if file_type.is_dir() {
            EntryKind::Dir
        } else if file_type.is_file() {
            EntryKind::File
        } else {
            EntryKind::Other
        };
        let excluded = ignore.is_excluded(&rel);
        if kind == EntryKind::Dir {
            if excluded && !ignore.may_contain_included(&rel) {
                continue;
            }
            visit(Entry {
                rel: rel.clone(),
                rel_path: rel_path.clone(),
                path,
                kind,
                metadata,
                excluded,
            })?;
            push_children(context, &rel, &rel_path, &mut stack)?;
        } else {
            visit(Entry {
                rel,
                rel_path,
                path,
                kind,
                metadata,
                excluded,
            })?;
        }
    }
    Ok(())
}

/// Push the children of `rel` onto `stack` so they pop in sorted order.
fn push_children(
    context: &Path,
    rel: &str,
    rel_path: &Path,
    stack: &mut Vec<(String, PathBuf)>,
) -> Result<(), BuildError> {
    let dir = context.join(rel_path);
    let children = match read_dir_sorted(&dir) {
        Ok(children) => children,
        Err(BuildError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    for (name, name_lossy) in children.into_iter().rev() {
        stack.push((join_rel(rel, &name_lossy), rel_path.join(name)));
    }
    Ok(())
}

/// The names in `dir`, sorted, each with its lossy UTF-8 spelling.
fn read_dir_sorted(dir: &Path) -> Result<Vec<(OsString, String)>, BuildError> {
    let io_error = |source| BuildError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error)? {
        let name = entry.map_err(io_error)?.file_name();
        let lossy = name.to_string_lossy().into_owned();
        names.push((name, lossy));
    }
    names.sort();
    Ok(names)
}

/// Whether reaching `rel_path` inside `context` goes through a symbolic link: one of its
/// parent directories is a link, or (with `including_self`) it is one.
fn through_symlink(context: &Path, rel_path: &Path, including_self: bool) -> bool {
    let skip = usize::from(!including_self);
    rel_path
        .ancestors()
        .skip(skip)
        .filter(|p| !p.as_os_str().is_empty())
        .any(|p| fs::symlink_metadata(context.join(p)).is_ok_and(|m| m.file_type().is_symlink()))
}

fn join_rel(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let full = dir.path().join(path);
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(full, content).unwrap();
        }
        dir
    }

    fn names(deps: &Dependencies) -> Vec<String> {
        deps.files
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    }

    fn no_args() -> BTreeMap<String, Option<String>> {
        BTreeMap::new()
    }

    #[test]
    fn copy_sources_globs_directories_and_ignore() {
        let dir = tree(&[
            (
                "Dockerfile",
                "FROM node:20 AS build\nWORKDIR /app\nCOPY package*.json ./\nCOPY src ./src\nADD https://example.com/x.tgz /tmp/\nCOPY <<EOF /etc/motd\nhi\nEOF\nFROM nginx\nCOPY --from=build /app/dist /usr/share/nginx/html\nCOPY nginx.conf /etc/nginx/conf.d/default.conf\n",
            ),
            (".dockerignore", "src/**/*.test.js\nnode_modules\n"),
            ("package.json", "{}"),
            ("package-lock.json", "{}"),
            ("src/index.js", ""),
            ("src/lib/util.js", ""),
            ("src/lib/util.test.js", ""),
            ("node_modules/x/index.js", ""),
            ("nginx.conf", ""),
            ("README.md", ""),
        ]);
        let ignore = DockerIgnore::for_artifact(dir.path(), Path::new("Dockerfile")).unwrap();
        let deps =
            dockerfile_dependencies(dir.path(), "Dockerfile", &no_args(), None, &ignore).unwrap();
        assert_eq!(
            names(&deps),
            [
                ".dockerignore",
                "Dockerfile",
                "nginx.conf",
                "package-lock.json",
                "package.json",
                "src/index.js",
                "src/lib/util.js",
            ]
        );
        // Targeting the first stage leaves out the second stage's sources.
        let deps =
            dockerfile_dependencies(dir.path(), "Dockerfile", &no_args(), Some("build"), &ignore)
                .unwrap();
        assert!(!names(&deps).contains(&"nginx.conf".to_owned()));
    }

    #[test]
    fn missing_and_excluded_sources_are_errors() {
        let dir = tree(&[
            (
                "Dockerfile",
                "FROM alpine\nCOPY a.txt /\nCOPY missing.txt /\n",
            ),
            ("a.txt", ""),
        ]);
        let err = dockerfile_dependencies(
            dir.path(),
            "Dockerfile",
            &no_args(),
            None,
            &DockerIgnore::empty(),
        )
        .unwrap_err();
        match err {
            BuildError::Dockerfile { line, message, .. } => {
                assert_eq!(line, 3);
                assert!(message.contains("missing.txt"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let dir = tree(&[("Dockerfile", "FROM alpine\nCOPY a.txt /\n"), ("a.txt", "")]);
        let ignore = DockerIgnore::parse("a.txt").unwrap();
        let err = dockerfile_dependencies(dir.path(), "Dockerfile", &no_args(), None, &ignore)
            .unwrap_err();
        assert!(err.to_string().contains("excluded"), "{err}");
        // A wildcard matching nothing is fine.
        let dir = tree(&[("Dockerfile", "FROM alpine\nCOPY *.lock /\n")]);
        let deps = dockerfile_dependencies(
            dir.path(),
            "Dockerfile",
            &no_args(),
            None,
            &DockerIgnore::empty(),
        )
        .unwrap();
        assert_eq!(names(&deps), ["Dockerfile"]);
    }

    #[test]
    fn build_args_reach_sources_and_bind_mounts_count() {
        let dir = tree(&[
            (
                "Dockerfile",
                "FROM golang\nARG APP=one\nCOPY cmd/${APP} /src/\nRUN --mount=type=bind,source=go.sum,target=go.sum --mount=type=cache,target=/root/.cache true\n",
            ),
            ("cmd/one/main.go", ""),
            ("cmd/two/main.go", ""),
            ("go.sum", ""),
        ]);
        let mut args = BTreeMap::new();
        args.insert("APP".to_owned(), Some("two".to_owned()));
        let deps = dockerfile_dependencies(
            dir.path(),
            "Dockerfile",
            &args,
            None,
            &DockerIgnore::empty(),
        )
        .unwrap();
        assert_eq!(names(&deps), ["Dockerfile", "cmd/two/main.go", "go.sum"]);
    }

    #[test]
    fn sync_map_follows_docker_destination_rules() {
        let dir = tree(&[
            (
                "Dockerfile",
                "FROM node\nWORKDIR /app\nCOPY package.json ./\nCOPY src ./src\nCOPY config.yaml /etc/app.yaml\nCOPY a.txt b.txt docs/\nWORKDIR sub\nCOPY *.md .\nCOPY --from=other /x /y\nADD bundle.tar.gz /opt/\nCOPY --parents web/./static/css/ /srv/\n",
            ),
            ("package.json", ""),
            ("src/index.js", ""),
            ("src/lib/u.js", ""),
            ("config.yaml", ""),
            ("a.txt", ""),
            ("b.txt", ""),
            ("README.md", ""),
            ("NOTES.md", ""),
            ("bundle.tar.gz", ""),
            ("web/static/css/site.css", ""),
        ]);
        let map = sync_map(
            dir.path(),
            "Dockerfile",
            &no_args(),
            None,
            &DockerIgnore::parse("NOTES.md").unwrap(),
        )
        .unwrap();
        let pairs: Vec<(String, String)> = map
            .iter()
            .map(|m| (m.source.to_string_lossy().into_owned(), m.dest.clone()))
            .collect();
        let expected = [
            ("package.json", "/app/package.json"),
            ("src/index.js", "/app/src/index.js"),
            ("src/lib/u.js", "/app/src/lib/u.js"),
            ("config.yaml", "/etc/app.yaml"),
            ("a.txt", "/app/docs/a.txt"),
            ("b.txt", "/app/docs/b.txt"),
            ("README.md", "/app/sub/README.md"),
            ("web/static/css/site.css", "/srv/static/css/site.css"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        assert_eq!(pairs, expected);
    }

    #[test]
    fn sync_map_copies_into_directories_known_to_exist() {
        let dir = tree(&[
            (
                "Dockerfile",
                "FROM python AS base\nWORKDIR /srv/app\nCOPY --from=tools /x /opt/tools/\nFROM base\nCOPY requirements.txt /srv/app\nCOPY run.sh /usr/local/bin\nCOPY run.sh /opt/tools\nCOPY config.yaml /etc/app.yaml\nWORKDIR data\nCOPY config.yaml /srv/app/data\n",
            ),
            ("requirements.txt", ""),
            ("run.sh", ""),
            ("config.yaml", ""),
        ]);
        let map = sync_map(
            dir.path(),
            "Dockerfile",
            &no_args(),
            None,
            &DockerIgnore::empty(),
        )
        .unwrap();
        let pairs: Vec<(String, String)> = map
            .iter()
            .map(|m| (m.source.to_string_lossy().into_owned(), m.dest.clone()))
            .collect();
        let expected = [
            ("requirements.txt", "/srv/app/requirements.txt"),
            ("run.sh", "/usr/local/bin/run.sh"),
            ("run.sh", "/opt/tools/run.sh"),
            ("config.yaml", "/etc/app.yaml"),
            ("config.yaml", "/srv/app/data/config.yaml"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        assert_eq!(pairs, expected);
    }

    #[test]
    fn remote_sources_and_archives() {
        assert!(is_remote("https://example.com/a"));
        assert!(is_remote("git@github.com:moby/moby.git"));
        assert!(is_remote("git://host/repo"));
        assert!(!is_remote("dir/file"));
        assert!(!is_remote("://odd"));
        assert!(is_archive("x.TAR.GZ"));
        assert!(!is_archive("x.gz.txt"));
    }

    #[test]
    fn walk_is_sorted_and_prunes_excluded_directories() {
        let dir = tree(&[
            ("b/2", ""),
            ("b/1", ""),
            ("a", ""),
            ("node_modules/x", ""),
            ("keep/out/x", ""),
            ("keep/out/in", ""),
        ]);
        let ignore = DockerIgnore::parse("node_modules\nkeep/out\n!keep/out/in\n").unwrap();
        let mut seen = Vec::new();
        walk(dir.path(), "", &ignore, &mut |entry| {
            seen.push((entry.rel, entry.excluded));
            Ok(())
        })
        .unwrap();
        let expected = [
            ("a", false),
            ("b", false),
            ("b/1", false),
            ("b/2", false),
            ("keep", false),
            ("keep/out", true),
            ("keep/out/in", false),
            ("keep/out/x", true),
        ];
        let expected: Vec<(String, bool)> = expected
            .iter()
            .map(|(a, b)| ((*a).to_owned(), *b))
            .collect();
        assert_eq!(seen, expected);
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_directories_are_not_followed() {
        let outside = tree(&[("secret/file", "")]);
        let dir = tree(&[("Dockerfile", "FROM a\nCOPY . /app\n"), ("real/file", "")]);
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
        let deps = dockerfile_dependencies(
            dir.path(),
            "Dockerfile",
            &no_args(),
            None,
            &DockerIgnore::empty(),
        )
        .unwrap();
        assert_eq!(names(&deps), ["Dockerfile", "link", "real/file"]);
    }

    #[tokio::test]
    async fn custom_paths_ignore_and_errors() {
        let dir = tree(&[
            ("pkg/a.go", ""),
            ("pkg/sub/b.go", ""),
            ("pkg/sub/b_test.go", ""),
            ("main.go", ""),
            ("docs/x.md", ""),
        ]);
        let deps = CustomDependencies {
            paths: vec!["pkg/**".into(), "main.go".into(), "**/*.md".into()],
            ignore: vec!["**/*_test.go".into()],
            ..CustomDependencies::default()
        };
        let env = BTreeMap::new();
        let found = custom_dependencies("img", dir.path(), &deps, &env)
            .await
            .unwrap();
        assert_eq!(
            names(&found),
            ["docs/x.md", "main.go", "pkg/a.go", "pkg/sub/b.go"]
        );
        let deps = CustomDependencies {
            paths: vec!["nothing/*".into()],
            ..CustomDependencies::default()
        };
        let err = custom_dependencies("img", dir.path(), &deps, &env)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("did not match"), "{err}");
    }

    #[tokio::test]
    async fn custom_command_and_dockerfile() {
        let dir = tree(&[
            ("a.txt", ""),
            ("Dockerfile.build", "FROM a\nCOPY a.txt /\n"),
        ]);
        let mut env = BTreeMap::new();
        env.insert("EXTRA".to_owned(), "b.txt".to_owned());
        env.insert("PATH".to_owned(), "/usr/bin:/bin".to_owned());
        let deps = CustomDependencies {
            command: Some("printf '[\"a.txt\", \"%s\"]' \"$EXTRA\"".into()),
            paths: vec!["ignored-because-command-wins".into()],
            ..CustomDependencies::default()
        };
        let found = custom_dependencies("img", dir.path(), &deps, &env)
            .await
            .unwrap();
        assert_eq!(names(&found), ["a.txt", "b.txt"]);

        let deps = CustomDependencies {
            command: Some("echo not json".into()),
            ..CustomDependencies::default()
        };
        match custom_dependencies("img", dir.path(), &deps, &env).await {
            Err(BuildError::Command {
                command, reason, ..
            }) => {
                assert_eq!(command, "echo not json");
                assert!(reason.contains("JSON"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let deps = CustomDependencies {
            command: Some("echo oops >&2; exit 3".into()),
            ..CustomDependencies::default()
        };
        let err = custom_dependencies("img", dir.path(), &deps, &env)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("oops"), "{err}");

        let deps = CustomDependencies {
            dockerfile: Some(crate::artifact::DockerfileDependency {
                path: "Dockerfile.build".into(),
                build_args: BTreeMap::new(),
            }),
            ..CustomDependencies::default()
        };
        let found = custom_dependencies("img", dir.path(), &deps, &env)
            .await
            .unwrap();
        assert_eq!(names(&found), ["Dockerfile.build", "a.txt"]);
    }
}
