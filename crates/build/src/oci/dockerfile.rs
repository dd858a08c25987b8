//! Dockerfiles skiff builds without the Docker engine: those whose target stage (and the stages
//! it is built on) run nothing — only `FROM`, `ARG`, `ENV`, `LABEL`, `WORKDIR`, `USER`,
//! `EXPOSE`, `VOLUME`, `STOPSIGNAL`, `SHELL`, `MAINTAINER`, `ENTRYPOINT`, `CMD` and
//! `COPY`/`ADD` of local files. Each `COPY`/`ADD` becomes one layer, following the classic
//! builder's semantics: a directory source copies its contents, a destination ending in `/`
//! (or several sources, or an existing directory) receives files by their base name, missing
//! parent directories are created `0755`, file modes are kept, owners are 0:0 unless
//! `--chown` names numeric ids; `WORKDIR` creates its directory.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::BuildError;
use crate::dependencies::{EntryKind, walk};
use crate::dockerfile::{Command, CopyInstruction, CopySource, Dockerfile, InstructionKind};
use crate::dockerignore::{DockerIgnore, PathGlob, clean_path, has_wildcards};

use super::image::Image;
use super::layer::{FileSource, LayerBuilder, LayerCache, LayerEntry};

/// The `PATH` Docker sets for a Linux stage whose base has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why the Docker engine is needed for stage `target` of `dockerfile` (shown as
/// `dockerfile_name`), or `None` when skiff can build it itself.
pub fn needs_engine(
    dockerfile: &Dockerfile,
    target: usize,
    dockerfile_name: &str,
) -> Option<String> {
    engine_reason(dockerfile, target, dockerfile_name, false)
}

/// [`needs_engine`] for assembling with the files of earlier stages at hand ([`StageFiles`]):
/// a `COPY --from` naming a stage of the Dockerfile (by name or index, with plain paths as
/// sources) is assembled too.
pub fn needs_engine_beyond_stage_files(
    dockerfile: &Dockerfile,
    target: usize,
    dockerfile_name: &str,
) -> Option<String> {
    engine_reason(dockerfile, target, dockerfile_name, true)
}

fn engine_reason(
    dockerfile: &Dockerfile,
    target: usize,
    dockerfile_name: &str,
    stage_files: bool,
) -> Option<String> {
    let chain = stage_chain(dockerfile, target);
    for &index in &chain {
        for instruction in &dockerfile.stages[index].instructions {
            let at = format!("{dockerfile_name}:{}", instruction.line);
            let reason = match &instruction.kind {
                InstructionKind::Run(_) => Some(format!("RUN at {at}")),
                InstructionKind::Copy(copy)
                    if stage_files
                        && copy.from.as_deref().is_some_and(|from| {
                            dockerfile.stage_reference(from, index).is_some()
                        }) =>
                {
                    let plain = CopyInstruction {
                        from: None,
                        ..copy.clone()
                    };
                    copy_needs_engine(&plain, false)
                        .or_else(|| {
                            plain
                                .source_paths()
                                .any(has_wildcards)
                                .then(|| "--from with a pattern".to_owned())
                        })
                        .map(|why| format!("COPY {why} at {at}"))
                }
                InstructionKind::Copy(copy) | InstructionKind::Add(copy) => {
                    copy_needs_engine(copy, instruction.keyword == "ADD")
                        .map(|why| format!("{} {why} at {at}", instruction.keyword))
                }
                InstructionKind::Other(_)
                    if !matches!(instruction.keyword.as_str(), "STOPSIGNAL" | "MAINTAINER") =>
                {
                    Some(format!("{} at {at}", instruction.keyword))
                }
                _ => None,
            };
            if reason.is_some() {
                return reason;
            }
        }
    }
    // A stage built on a stage outside the chain cannot happen; a base that is an earlier
    // stage is in the chain.
    None
}

pub(crate) fn copy_needs_engine(copy: &CopyInstruction, is_add: bool) -> Option<String> {
    if copy.from.is_some() {
        return Some("--from".into());
    }
    if copy.parents {
        return Some("--parents".into());
    }
    if !copy.exclude.is_empty() {
        return Some("--exclude".into());
    }
    if let Some(chown) = &copy.chown {
        if parse_chown(chown).is_none() {
            return Some(format!(
                "--chown={chown} (user and group names need the image's /etc/passwd)"
            ));
        }
    }
    for source in &copy.sources {
        match source {
            CopySource::Heredoc(_) => return Some("of a heredoc".into()),
            CopySource::Path(path) => {
                if path.contains("://") || path.starts_with("git@") {
                    return Some(format!("of a URL ({path})"));
                }
                if is_add && is_archive(path) {
                    return Some(format!("of an archive ({path}), which Docker unpacks"));
                }
            }
        }
    }
    None
}

fn is_archive(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    [
        ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst",
    ]
    .iter()
    .any(|ext| lower.ends_with(ext))
}

/// `uid[:gid]` with numeric ids (a missing gid is the uid, as Docker does).
fn parse_chown(chown: &str) -> Option<(u64, u64)> {
    let (user, group) = chown.split_once(':').unwrap_or((chown, ""));
    let uid = match user {
        "root" => 0,
        u => u.parse().ok()?,
    };
    let gid = match group {
        "" => uid,
        "root" => 0,
        g => g.parse().ok()?,
    };
    Some((uid, gid))
}

/// The stage and the stages it is built on, oldest first.
pub fn stage_chain(dockerfile: &Dockerfile, target: usize) -> Vec<usize> {
    let mut chain = vec![target];
    while let Some(base) = chain
        .last()
        .and_then(|&i| dockerfile.stages.get(i))
        .and_then(|s| s.base_stage)
        .filter(|b| !chain.contains(b))
    {
        chain.push(base);
    }
    chain.reverse();
    chain
}

/// The base image of stage `target`'s chain (`scratch`, a reference).
pub fn base_of(dockerfile: &Dockerfile, target: usize) -> String {
    let chain = stage_chain(dockerfile, target);
    chain
        .first()
        .and_then(|&i| dockerfile.stages.get(i))
        .map(|s| s.base.clone())
        .unwrap_or_else(|| "scratch".into())
}

/// A Docker artifact's Dockerfile as a build of `request` sees it.
#[derive(Debug, Clone)]
pub(crate) struct LoadedDockerfile {
    /// The Dockerfile's path (clean).
    pub path: PathBuf,
    /// Its name as written in the config (`Dockerfile` when none is), for messages.
    pub name: String,
    /// Its text.
    pub text: String,
    /// The build args, rendered.
    pub build_args: BTreeMap<String, String>,
    /// The text parsed with those args.
    pub parsed: Dockerfile,
    /// The target stage.
    pub target: usize,
    /// The `.dockerignore` that applies.
    pub ignore: DockerIgnore,
}

/// Reads, renders the build args of, and parses `request`'s Dockerfile (`spec`).
pub(crate) fn load(
    request: &crate::BuildRequest<'_>,
    spec: &crate::artifact::DockerSpec,
) -> Result<LoadedDockerfile, BuildError> {
    let artifact = request.artifact;
    let name = if spec.dockerfile.trim().is_empty() {
        "Dockerfile"
    } else {
        spec.dockerfile.as_str()
    };
    let path: PathBuf = artifact.context.join(name).components().collect();
    let text = std::fs::read_to_string(&path).map_err(|_| BuildError::MissingDockerfile {
        image: artifact.image.clone(),
        path: path.clone(),
    })?;
    let build_args = crate::docker::render_build_args(request, spec)?;
    let parsed = crate::dockerfile::parse(&text, &parser_args(&build_args))
        .map_err(|e| e.into_build_error(&path))?;
    let target = parsed
        .target_stage(spec.target.as_deref())
        .map_err(|e| e.into_build_error(&path))?;
    let ignore = DockerIgnore::for_artifact(&artifact.context, &path)?;
    Ok(LoadedDockerfile {
        path,
        name: name.to_owned(),
        text,
        build_args,
        parsed,
        target,
        ignore,
    })
}

/// What `COPY --from=<stage>` copies: for each (stage index, source path as written), the
/// source as the Docker engine's archive endpoint returns it — a tar whose first path
/// component is the source's base name (a file, or a directory and its contents).
pub type StageFiles = BTreeMap<(usize, String), Vec<u8>>;

/// Applies the instructions of `target`'s stage chain to `image` (already the chain's base),
/// reading `COPY`/`ADD` sources from `context` through `ignore`, and `COPY --from=<stage>`
/// sources from `stage_files`. `base_dirs` are the directories the base image holds (absolute
/// paths). Layers whose inputs are unchanged come from `cache`.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    image: &mut Image,
    dockerfile: &Dockerfile,
    target: usize,
    context: &Path,
    ignore: &DockerIgnore,
    dockerfile_path: &Path,
    base_dirs: &BTreeSet<String>,
    cache: &LayerCache,
    stage_files: &StageFiles,
) -> Result<(), BuildError> {
    let mut dirs = base_dirs.clone();
    dirs.insert("/".into());
    let runtime = image.config.config().clone().unwrap_or_default();
    let mut workdir = runtime
        .working_dir()
        .clone()
        .filter(|w| w.starts_with('/'))
        .unwrap_or_else(|| "/".into());
    // Docker gives every stage the default PATH when its base has none.
    if !runtime
        .env()
        .iter()
        .flatten()
        .any(|e| e.starts_with("PATH="))
    {
        image.update_runtime(|c| {
            let mut env = c.env().clone().unwrap_or_default();
            env.push(format!("PATH={DEFAULT_PATH}"));
            c.set_env(Some(env));
        });
    }
    let mut shell = vec!["/bin/sh".to_owned(), "-c".to_owned()];
    let mut cmd_set = false;
    for &index in &stage_chain(dockerfile, target) {
        for instruction in &dockerfile.stages[index].instructions {
            let line = instruction.line;
            let history = history_text(instruction);
            match &instruction.kind {
                InstructionKind::From { .. } | InstructionKind::Arg(_) => {}
                InstructionKind::Env(pairs) => {
                    image.update_runtime(|c| {
                        let mut env = c.env().clone().unwrap_or_default();
                        for (name, value) in pairs {
                            env.retain(|e| {
                                e.split_once('=').map_or(e.as_str(), |(k, _)| k) != name
                            });
                            env.push(format!("{name}={value}"));
                        }
                        c.set_env(Some(env));
                    });
                    image.add_history(&history, true);
                }
                InstructionKind::Label(pairs) => {
                    image.update_runtime(|c| {
                        let mut labels = c.labels().clone().unwrap_or_default();
                        for (k, v) in pairs {
                            labels.insert(k.clone(), v.clone());
                        }
                        c.set_labels(Some(labels));
                    });
                    image.add_history(&history, true);
                }
                InstructionKind::Workdir(dir) => {
                    workdir = crate::dockerfile::resolve_path(&workdir, dir);
                    let wd = workdir.clone();
                    image.update_runtime(|c| {
                        c.set_working_dir(Some(wd));
                    });
                    let mut layer = LayerBuilder::new();
                    add_parents(&mut layer, &mut dirs, &format!("{workdir}/x"), 0, 0);
                    if layer.is_empty() {
                        image.add_history(&history, true);
                    } else {
                        image.add_layer(&cache.build(&layer)?.0, &history);
                    }
                }
                InstructionKind::User(user) => {
                    let user = user.clone();
                    image.update_runtime(|c| {
                        c.set_user(Some(user));
                    });
                    image.add_history(&history, true);
                }
                InstructionKind::Expose(ports) => {
                    let mut expanded = Vec::new();
                    for port in ports {
                        expanded.extend(expand_port(port).ok_or_else(|| {
                            BuildError::Dockerfile {
                                path: dockerfile_path.to_path_buf(),
                                line,
                                message: format!("EXPOSE {port}: not a port, port/proto or range"),
                            }
                        })?);
                    }
                    image.update_runtime(|c| {
                        let mut all = c.exposed_ports().clone().unwrap_or_default();
                        for p in expanded {
                            if !all.contains(&p) {
                                all.push(p);
                            }
                        }
                        all.sort();
                        c.set_exposed_ports(Some(all));
                    });
                    image.add_history(&history, true);
                }
                InstructionKind::Volume(volumes) => {
                    image.update_runtime(|c| {
                        let mut all = c.volumes().clone().unwrap_or_default();
                        for v in volumes {
                            if !all.contains(v) {
                                all.push(v.clone());
                            }
                        }
                        all.sort();
                        c.set_volumes(Some(all));
                    });
                    image.add_history(&history, true);
                }
                InstructionKind::Shell(words) => {
                    shell = words.clone();
                    image.add_history(&history, true);
                }
                InstructionKind::Entrypoint(command) => {
                    let words = command_words(command, &shell);
                    let reset_cmd = !cmd_set;
                    image.update_runtime(|c| {
                        c.set_entrypoint(Some(words));
                        if reset_cmd {
                            c.set_cmd(None);
                        }
                    });
                    image.add_history(&history, true);
                }
                InstructionKind::Cmd(command) => {
                    let words = command_words(command, &shell);
                    cmd_set = true;
                    image.update_runtime(|c| {
                        c.set_cmd(Some(words));
                    });
                    image.add_history(&history, true);
                }
                InstructionKind::Copy(copy) | InstructionKind::Add(copy) => {
                    let mut layer = LayerBuilder::new();
                    match copy
                        .from
                        .as_deref()
                        .and_then(|from| dockerfile.stage_reference(from, index))
                    {
                        Some(stage) => copy_from_stage(
                            &mut layer,
                            &mut dirs,
                            copy,
                            stage,
                            stage_files,
                            dockerfile_path,
                            line,
                        )?,
                        None => copy_into(
                            &mut layer,
                            &mut dirs,
                            copy,
                            context,
                            ignore,
                            dockerfile_path,
                            line,
                        )?,
                    }
                    if layer.is_empty() {
                        image.add_history(&history, true);
                    } else {
                        image.add_layer(&cache.build(&layer)?.0, &history);
                    }
                }
                InstructionKind::Other(args) => match instruction.keyword.as_str() {
                    "STOPSIGNAL" => {
                        let signal = args.trim().to_owned();
                        image.update_runtime(|c| {
                            c.set_stop_signal(Some(signal));
                        });
                        image.add_history(&history, true);
                    }
                    "MAINTAINER" => {
                        image.config.set_author(Some(args.trim().to_owned()));
                        image.add_history(&history, true);
                    }
                    other => {
                        return Err(BuildError::Dockerfile {
                            path: dockerfile_path.to_path_buf(),
                            line,
                            message: format!(
                                "{other} needs the Docker engine; build with --docker-daemon-build"
                            ),
                        });
                    }
                },
                InstructionKind::Run(_) => {
                    return Err(BuildError::Dockerfile {
                        path: dockerfile_path.to_path_buf(),
                        line,
                        message: "RUN needs the Docker engine; skiff's own builder only assembles files and settings".into(),
                    });
                }
            }
        }
    }
    Ok(())
}

fn history_text(instruction: &crate::dockerfile::Instruction) -> String {
    let detail = match &instruction.kind {
        InstructionKind::Copy(c) | InstructionKind::Add(c) => format!(
            "{} {}",
            c.source_paths().collect::<Vec<_>>().join(" "),
            c.dest
        ),
        InstructionKind::Workdir(d) => d.clone(),
        InstructionKind::Env(pairs) | InstructionKind::Label(pairs) => pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        InstructionKind::Entrypoint(c) | InstructionKind::Cmd(c) => match c {
            Command::Exec(words) => serde_json::to_string(words).unwrap_or_default(),
            Command::Shell(text) => text.clone(),
        },
        InstructionKind::Expose(p) | InstructionKind::Volume(p) => p.join(" "),
        InstructionKind::User(u) => u.clone(),
        InstructionKind::Other(o) => o.clone(),
        _ => String::new(),
    };
    format!("{} {detail} # skiff", instruction.keyword)
}

fn command_words(command: &Command, shell: &[String]) -> Vec<String> {
    match command {
        Command::Exec(words) => words.clone(),
        Command::Shell(text) => {
            let mut words = shell.to_vec();
            words.push(text.clone());
            words
        }
    }
}

/// `80` → `80/tcp`; `53/udp`; `8000-8002/tcp` → three ports.
fn expand_port(port: &str) -> Option<Vec<String>> {
    let (range, proto) = port.split_once('/').unwrap_or((port, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return None;
    }
    let (start, end) = match range.split_once('-') {
        Some((a, b)) => (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?),
        None => {
            let p = range.parse::<u16>().ok()?;
            (p, p)
        }
    };
    if end < start {
        return None;
    }
    Some((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// Adds entries for the missing parents of `path` (not `path` itself), `0755` and owned by
/// `uid:gid`.
fn add_parents(
    layer: &mut LayerBuilder,
    dirs: &mut BTreeSet<String>,
    path: &str,
    uid: u64,
    gid: u64,
) {
    let mut missing = Vec::new();
    let mut current = parent_of(&clean_path(path));
    while !dirs.contains(&current) {
        missing.push(current.clone());
        current = parent_of(&current);
    }
    for dir in missing.into_iter().rev() {
        layer.add(LayerEntry {
            uid,
            gid,
            ..LayerEntry::dir(dir.clone(), 0o755)
        });
        dirs.insert(dir);
    }
}

fn parent_of(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => path[..i].to_owned(),
    }
}

fn join(base: &str, rel: &str) -> String {
    clean_path(&format!("{base}/{rel}"))
}

/// A matched source.
struct Source {
    rel: String,
    path: PathBuf,
    is_dir: bool,
}

fn resolve_sources(
    context: &Path,
    pattern: &str,
    ignore: &DockerIgnore,
    dockerfile: &Path,
    line: usize,
) -> Result<Vec<Source>, BuildError> {
    let rel = clean_path(&format!("/{pattern}"))
        .trim_start_matches('/')
        .to_owned();
    let error = |message: String| BuildError::Dockerfile {
        path: dockerfile.to_path_buf(),
        line,
        message,
    };
    if rel.is_empty() {
        return Ok(vec![Source {
            rel: String::new(),
            path: context.to_path_buf(),
            is_dir: true,
        }]);
    }
    if !has_wildcards(&rel) {
        let path = context.join(&rel);
        // Docker follows a link named as a source (it must stay in the context).
        let meta = std::fs::metadata(&path).map_err(|_| {
            error(format!(
                "COPY/ADD source `{pattern}` not found in the build context {}",
                context.display()
            ))
        })?;
        let canonical_context = context
            .canonicalize()
            .unwrap_or_else(|_| context.to_path_buf());
        if !path
            .canonicalize()
            .is_ok_and(|p| p.starts_with(&canonical_context))
        {
            return Err(error(format!(
                "COPY/ADD source `{pattern}` points outside the build context"
            )));
        }
        let present = if meta.is_dir() {
            ignore.may_contain_included(&rel) || !ignore.is_excluded(&rel)
        } else {
            !ignore.is_excluded(&rel)
        };
        if !present {
            return Err(error(format!(
                "COPY/ADD source `{pattern}` is excluded from the build context by .dockerignore"
            )));
        }
        return Ok(vec![Source {
            rel,
            path,
            is_dir: meta.is_dir(),
        }]);
    }
    let glob = PathGlob::new(&rel).ok_or_else(|| error(format!("bad pattern `{pattern}`")))?;
    let mut found: Vec<Source> = Vec::new();
    walk(context, "", ignore, &mut |entry| {
        if entry.excluded || !glob.matches(&entry.rel) {
            return Ok(());
        }
        if found
            .iter()
            .any(|f| f.is_dir && entry.rel.starts_with(&format!("{}/", f.rel)))
        {
            return Ok(());
        }
        found.push(Source {
            rel: entry.rel.clone(),
            path: entry.path.clone(),
            is_dir: entry.kind == EntryKind::Dir,
        });
        Ok(())
    })?;
    found.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(found)
}

/// The entries `copy` puts into an image from `context`, given the directories the image
/// already holds (`dirs`, which decide whether a single-file destination is a directory);
/// parent directories that are missing are among them.
pub(crate) fn copy_entries(
    copy: &CopyInstruction,
    context: &Path,
    ignore: &DockerIgnore,
    dockerfile: &Path,
    line: usize,
    dirs: &BTreeSet<String>,
) -> Result<Vec<LayerEntry>, BuildError> {
    let mut layer = LayerBuilder::new();
    let mut dirs = dirs.clone();
    // The root always exists: the search for missing parents stops there.
    dirs.insert("/".into());
    copy_into(
        &mut layer, &mut dirs, copy, context, ignore, dockerfile, line,
    )?;
    Ok(layer.entries().cloned().collect())
}

#[allow(clippy::too_many_arguments)]
fn copy_into(
    layer: &mut LayerBuilder,
    dirs: &mut BTreeSet<String>,
    copy: &CopyInstruction,
    context: &Path,
    ignore: &DockerIgnore,
    dockerfile: &Path,
    line: usize,
) -> Result<(), BuildError> {
    let ((uid, gid), chmod) = owner_and_mode(copy, dockerfile, line)?;
    let dest = copy.dest_path();
    let mut sources = Vec::new();
    for pattern in copy.source_paths() {
        sources.extend(resolve_sources(context, pattern, ignore, dockerfile, line)?);
    }
    let into_dir =
        copy.dest_is_dir() || sources.len() > 1 || copy.sources.len() > 1 || dirs.contains(&dest);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    for source in sources {
        if source.is_dir {
            add_destination_dir(layer, dirs, &dest, uid, gid);
            let prefix = if source.rel.is_empty() {
                String::new()
            } else {
                format!("{}/", source.rel)
            };
            let mut entries = Vec::new();
            walk(context, &source.rel, ignore, &mut |entry| {
                if entry.excluded && entry.kind != EntryKind::Dir {
                    return Ok(());
                }
                let inner = entry
                    .rel
                    .strip_prefix(&prefix)
                    .unwrap_or(&entry.rel)
                    .to_owned();
                let target = join(&dest, &inner);
                let mode = entry.metadata.permissions().mode() & 0o7777;
                let kind = match entry.kind {
                    EntryKind::Dir => Some(LayerEntry::dir(target.clone(), chmod.unwrap_or(mode))),
                    EntryKind::File => Some(LayerEntry::file(
                        target.clone(),
                        chmod.unwrap_or(mode),
                        FileSource::Host(entry.path.clone()),
                    )),
                    EntryKind::Symlink => {
                        let link = std::fs::read_link(&entry.path).map_err(io(&entry.path))?;
                        Some(LayerEntry::symlink(target.clone(), link.to_string_lossy()))
                    }
                    EntryKind::Other => None,
                };
                if let Some(e) = kind {
                    entries.push(LayerEntry { uid, gid, ..e });
                }
                Ok(())
            })?;
            for entry in entries {
                if matches!(entry.kind, super::layer::EntryKind::Dir) {
                    dirs.insert(entry.path.clone());
                }
                layer.add(entry);
            }
        } else {
            let target = if into_dir {
                join(&dest, source.rel.rsplit('/').next().unwrap_or(&source.rel))
            } else {
                dest.clone()
            };
            let meta = std::fs::metadata(&source.path).map_err(io(&source.path))?;
            add_parents(layer, dirs, &target, uid, gid);
            layer.add(LayerEntry {
                uid,
                gid,
                ..LayerEntry::file(
                    target,
                    chmod.unwrap_or(meta.permissions().mode() & 0o7777),
                    FileSource::Host(source.path.clone()),
                )
            });
        }
    }
    Ok(())
}

/// The owner (`--chown`, numeric ids only; else 0:0) and mode (`--chmod`) of what `copy` adds.
fn owner_and_mode(
    copy: &CopyInstruction,
    dockerfile: &Path,
    line: usize,
) -> Result<((u64, u64), Option<u32>), BuildError> {
    let error = |message: String| BuildError::Dockerfile {
        path: dockerfile.to_path_buf(),
        line,
        message,
    };
    let owner = match &copy.chown {
        Some(chown) => parse_chown(chown).ok_or_else(|| {
            error(format!(
                "--chown={chown}: skiff's own builder takes numeric ids only"
            ))
        })?,
        None => (0, 0),
    };
    let mode = match &copy.chmod {
        Some(text) => Some(
            u32::from_str_radix(text, 8)
                .map_err(|_| error(format!("--chmod={text}: not an octal mode")))?,
        ),
        None => None,
    };
    Ok((owner, mode))
}

/// The destination directory of a directory source and its missing parents. One that does not
/// exist yet is created 0755 (the source directory's own mode is not copied, as with Docker's
/// classic builder).
fn add_destination_dir(
    layer: &mut LayerBuilder,
    dirs: &mut BTreeSet<String>,
    dest: &str,
    uid: u64,
    gid: u64,
) {
    add_parents(layer, dirs, dest, uid, gid);
    if !dirs.contains(dest) {
        layer.add(LayerEntry {
            uid,
            gid,
            ..LayerEntry::dir(dest.to_owned(), 0o755)
        });
        dirs.insert(dest.to_owned());
    }
}

/// `COPY --from=<stage>` with the stage's files from `stage_files`, as the classic builder
/// copies them: a file to the destination (or into it, when it names a directory), a
/// directory's contents into the destination; owners 0:0 unless `--chown`; modes kept.
fn copy_from_stage(
    layer: &mut LayerBuilder,
    dirs: &mut BTreeSet<String>,
    copy: &CopyInstruction,
    stage: usize,
    stage_files: &StageFiles,
    dockerfile: &Path,
    line: usize,
) -> Result<(), BuildError> {
    let error = |message: String| BuildError::Dockerfile {
        path: dockerfile.to_path_buf(),
        line,
        message,
    };
    let ((uid, gid), chmod) = owner_and_mode(copy, dockerfile, line)?;
    let dest = copy.dest_path();
    let sources: Vec<&str> = copy.source_paths().collect();
    let into_dir = copy.dest_is_dir() || sources.len() > 1 || dirs.contains(&dest);
    let io = |source: std::io::Error| BuildError::Io {
        path: dockerfile.to_path_buf(),
        source,
    };
    for source in sources {
        let archive = stage_files
            .get(&(stage, source.to_owned()))
            .ok_or_else(|| {
                error(format!(
                    "the files of COPY --from source {source} are missing"
                ))
            })?;
        let mut entries = Vec::new();
        let mut source_is_dir = false;
        let mut tar = tar::Archive::new(archive.as_slice());
        for entry in tar.entries().map_err(io)? {
            let mut entry = entry.map_err(io)?;
            let path = entry.path().map_err(io)?.to_string_lossy().into_owned();
            let path = clean_path(&format!("/{path}"));
            // The first component is the source's own name.
            let inner = path
                .trim_start_matches('/')
                .split_once('/')
                .map(|(_, rest)| rest.to_owned());
            let header = entry.header();
            let mode = header.mode().map_err(io)? & 0o7777;
            let kind = header.entry_type();
            if inner.is_none() && kind.is_dir() {
                source_is_dir = true;
                continue;
            }
            let target = match &inner {
                Some(inner) => join(&dest, inner),
                None if into_dir => join(&dest, path.trim_start_matches('/')),
                None => dest.clone(),
            };
            let made = if kind.is_dir() {
                LayerEntry::dir(target, chmod.unwrap_or(mode))
            } else if kind.is_symlink() {
                let link = entry
                    .link_name()
                    .map_err(io)?
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default();
                LayerEntry::symlink(target, link)
            } else if kind.is_file() {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).map_err(io)?;
                LayerEntry::file(target, chmod.unwrap_or(mode), FileSource::Bytes(data))
            } else {
                return Err(error(format!(
                    "COPY --from source {source}: {path} is neither a file, a directory nor a symbolic link"
                )));
            };
            entries.push(LayerEntry { uid, gid, ..made });
        }
        if source_is_dir {
            add_destination_dir(layer, dirs, &dest, uid, gid);
        }
        for entry in entries {
            add_parents(layer, dirs, &entry.path, uid, gid);
            if matches!(entry.kind, super::layer::EntryKind::Dir) {
                dirs.insert(entry.path.clone());
            }
            layer.add(entry);
        }
    }
    Ok(())
}

/// The directories of `image`'s filesystem (absolute paths), read from its layers
/// (`layer_bytes` gives each layer's blob, compressed or not).
pub fn directories_of(blobs: &[std::sync::Arc<Vec<u8>>]) -> Result<BTreeSet<String>, BuildError> {
    let mut dirs = BTreeSet::new();
    let io = |source: std::io::Error| BuildError::Io {
        path: PathBuf::from("<base layer>"),
        source,
    };
    for blob in blobs {
        let reader: Box<dyn Read> = if blob.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::GzDecoder::new(blob.as_slice()))
        } else {
            Box::new(blob.as_slice())
        };
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().map_err(io)? {
            let entry = entry.map_err(io)?;
            let path = entry.path().map_err(io)?.to_string_lossy().into_owned();
            let path = clean_path(&format!("/{path}"));
            let name = path.rsplit('/').next().unwrap_or_default();
            if let Some(removed) = name.strip_prefix(".wh.") {
                let gone = join(&parent_of(&path), removed);
                dirs.retain(|d: &String| d != &gone && !d.starts_with(&format!("{gone}/")));
                continue;
            }
            if entry.header().entry_type().is_dir() {
                dirs.insert(path.clone());
            }
            let mut parent = parent_of(&path);
            while parent != "/" && dirs.insert(parent.clone()) {
                parent = parent_of(&parent);
            }
        }
    }
    Ok(dirs)
}

/// Build args as the parser takes them.
pub fn parser_args(args: &BTreeMap<String, String>) -> BTreeMap<String, Option<String>> {
    args.iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parsed(text: &str) -> Dockerfile {
        crate::dockerfile::parse(text, &BTreeMap::new()).unwrap()
    }

    #[test]
    fn reasons_name_the_instruction_and_line() {
        let d = parsed("FROM scratch\nCOPY a /a\nRUN x\n");
        assert_eq!(
            needs_engine(&d, 0, "Dockerfile").as_deref(),
            Some("RUN at Dockerfile:3")
        );
        let d = parsed("FROM scratch AS a\nCOPY a /a\nFROM scratch\nCOPY --from=a /a /b\n");
        assert_eq!(
            needs_engine(&d, 1, "Dockerfile").as_deref(),
            Some("COPY --from at Dockerfile:4")
        );
        let d = parsed("FROM scratch\nADD https://example.invalid/x /x\n");
        assert!(needs_engine(&d, 0, "Dockerfile").unwrap().contains("URL"));
        let d = parsed("FROM scratch\nCOPY --chown=app a /a\n");
        assert!(needs_engine(&d, 0, "D").unwrap().contains("--chown=app"));
        let d = parsed(
            "FROM scratch\nENV A=1\nWORKDIR /app\nCOPY --chown=1000:1000 a b /app/\nEXPOSE 80\nCMD [\"/a\"]\n",
        );
        assert_eq!(needs_engine(&d, 0, "Dockerfile"), None);
        // A RUN in a stage the target does not need does not count.
        let d = parsed("FROM scratch AS tools\nRUN x\nFROM scratch\nCOPY a /a\n");
        assert_eq!(needs_engine(&d, 1, "Dockerfile"), None);
    }

    #[test]
    fn ports_expand() {
        assert_eq!(expand_port("80").unwrap(), ["80/tcp"]);
        assert_eq!(expand_port("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(expand_port("8000-8002").unwrap().len(), 3);
        assert!(expand_port("http").is_none());
    }

    #[test]
    fn chown_parses_numeric_ids() {
        assert_eq!(parse_chown("1000"), Some((1000, 1000)));
        assert_eq!(parse_chown("1000:2000"), Some((1000, 2000)));
        assert_eq!(parse_chown("root:root"), Some((0, 0)));
        assert_eq!(parse_chown("app"), None);
    }
}
