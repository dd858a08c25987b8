//! A Dockerfile parser faithful to BuildKit's.
//!
//! skiff reads Dockerfiles to find what an artifact depends on (`COPY`/`ADD` sources), which
//! stages a `--target` needs, where copied files land in the image (for `sync.infer`) and
//! whether a build runs commands at all. Getting this wrong means missed rebuilds or broken
//! file sync, so the parser follows BuildKit's `frontend/dockerfile/parser`, `instructions` and
//! `shell` packages rather than a grammar of its own:
//!
//! - parser directives (`# syntax=`, `# escape=` — backslash or backtick — and `# check=`) at
//!   the top; line continuations with the escape character; comment lines and empty lines
//!   inside a continued instruction are dropped; a UTF-8 byte-order mark is ignored;
//! - heredocs (`RUN <<EOF`, `COPY <<EOF /dest`, `<<-EOF` stripping leading tabs, several on
//!   one line, quoted delimiters that turn off expansion) for `RUN`, `COPY`, `ADD` and their
//!   `ONBUILD` forms;
//! - JSON (exec) form `["a", "b"]`, falling back to the shell form when the JSON is malformed,
//!   and an error for arrays of non-strings, as Docker does;
//! - case-insensitive keywords, `--flag=value` options on any instruction, `FROM [--platform=…]
//!   image [AS name]`, `ENV k=v k2="v 2"` and the legacy `ENV k v`;
//! - variable substitution (`$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}`, `${VAR-d}`,
//!   `${VAR+a}`, `${VAR:?msg}`, `${VAR#pat}`, `${VAR%pat}`, `${VAR/pat/repl}`, quotes and
//!   escapes) applied where Docker applies it — `FROM` (with the `ARG`s declared before the
//!   first `FROM`), `COPY`/`ADD` sources, destination and flags, `ENV`, `ARG` defaults,
//!   `LABEL`, `WORKDIR`, `USER`, `EXPOSE`, `VOLUME` — using the stage's `ENV` (which wins) and
//!   `ARG`s, build args overriding `ARG` defaults. A global `ARG` must be re-declared inside a
//!   stage to be visible there. A stage built on an earlier stage inherits its `ENV`, `ARG`s
//!   and `WORKDIR`; a base image's own `ENV`/`WORKDIR` are unknown here (`WORKDIR` starts at
//!   `/`).
//!
//! Deliberate differences: unknown `--flags` are accepted (newer Docker versions keep adding
//! them), `FROM --platform` is expanded leaving unknown variables such as `$BUILDPLATFORM` as
//! written, and the built-in platform args (`TARGETARCH`, …) only have values when the caller
//! passes them as build args. Parsing never panics, whatever the input; substitutions are
//! bounded in nesting and size.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use crate::BuildError;
use crate::dockerignore::clean_path;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The build stages, in order.
    pub stages: Vec<Stage>,
    /// The `ARG`s declared before the first `FROM` (visible to `FROM` lines only), with their
    /// effective values: the build arg when given, else the default.
    pub args_before_from: Vec<(String, Option<String>)>,
    /// The escape character (`\` unless `# escape=` says otherwise).
    pub escape: char,
    /// The parser directives, as (lower-case name, value), e.g. `("syntax", "docker/dockerfile:1")`.
    pub directives: Vec<(String, String)>,
}

/// One build stage: a `FROM` and the instructions up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The `AS` name, lower-cased as Docker matches names case-insensitively.
    pub name: Option<String>,
    /// The base image (or earlier stage's name) after `ARG` substitution.
    pub base: String,
    /// The 1-based line of the `FROM`.
    pub base_line: usize,
    /// The index of the earlier stage `base` names, if it names one.
    pub base_stage: Option<usize>,
    /// `--platform`, expanded (unknown variables left as written).
    pub platform: Option<String>,
    /// The stage's instructions, starting with its `FROM`.
    pub instructions: Vec<Instruction>,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The 1-based line where it starts.
    pub line: usize,
    /// The 1-based line where it ends (continuations and heredocs included).
    pub end_line: usize,
    /// The keyword, upper-case.
    pub keyword: String,
    /// The `--name[=value]` options, values expanded where Docker expands them.
    pub flags: Vec<Flag>,
    /// The typed arguments.
    pub kind: InstructionKind,
}

/// A `--name[=value]` option of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The name, without `--`.
    pub name: String,
    /// The value after `=`, if any.
    pub value: Option<String>,
}

/// The typed arguments of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstructionKind {
    /// `FROM`.
    From {
        /// The image after substitution.
        image: String,
        /// The `AS` name, lower-cased.
        name: Option<String>,
        /// `--platform`.
        platform: Option<String>,
    },
    /// `ARG name[=default] …`.
    Arg(Vec<ArgDeclaration>),
    /// `ENV`, as (name, value) pairs after substitution.
    Env(Vec<(String, String)>),
    /// `COPY`.
    Copy(CopyInstruction),
    /// `ADD`.
    Add(CopyInstruction),
    /// `RUN`.
    Run(RunInstruction),
    /// `WORKDIR`, after substitution (as written: relative paths are relative to the previous
    /// working directory).
    Workdir(String),
    /// `ENTRYPOINT`.
    Entrypoint(Command),
    /// `CMD`.
    Cmd(Command),
    /// `EXPOSE`, each port after substitution.
    Expose(Vec<String>),
    /// `USER`, after substitution.
    User(String),
    /// `LABEL`, as (key, value) pairs after substitution.
    Label(Vec<(String, String)>),
    /// `VOLUME`, each path after substitution.
    Volume(Vec<String>),
    /// `SHELL` (always JSON form).
    Shell(Vec<String>),
    /// `HEALTHCHECK`, `ONBUILD`, `STOPSIGNAL`, `MAINTAINER`: the arguments as written.
    Other(String),
}

/// One name declared by `ARG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDeclaration {
    /// The name.
    pub name: String,
    /// The default after substitution, if one is written.
    pub default: Option<String>,
    /// The value in effect: the build arg, else the default, else (inside a stage) the value
    /// of the global `ARG` of that name; `None` when unset.
    pub value: Option<String>,
}

/// A command in exec (JSON) or shell form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `["executable", "arg"]`.
    Exec(Vec<String>),
    /// `command line`, as written (the shell expands variables, not the builder).
    Shell(String),
}

/// A `RUN` instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInstruction {
    /// The command.
    pub command: Command,
    /// The heredocs attached to the command, in order.
    pub heredocs: Vec<Heredoc>,
    /// The `--mount` options.
    pub mounts: Vec<Mount>,
}

/// A `RUN --mount=…` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `type` (`bind` when not given).
    pub kind: String,
    /// `from`: a stage or image to mount from instead of the build context.
    pub from: Option<String>,
    /// `source`/`src`.
    pub source: Option<String>,
    /// `target`/`dst`/`destination`.
    pub target: Option<String>,
    /// Every `key[=value]` field, as written.
    pub options: Vec<(String, Option<String>)>,
}

/// A `COPY` or `ADD` instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyInstruction {
    /// `--from`: a stage name or index, or an image.
    pub from: Option<String>,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// The sources, after substitution.
    pub sources: Vec<CopySource>,
    /// The destination, after substitution, as written.
    pub dest: String,
    /// Whether the JSON form was used.
    pub json: bool,
    /// The working directory in effect (absolute), against which a relative `dest` resolves.
    pub workdir: String,
}

impl CopyInstruction {
    /// The destination as an absolute path in the image (`WORKDIR` applied, cleaned).
    pub fn dest_path(&self) -> String {
        let joined = if self.dest.starts_with('/') {
            self.dest.clone()
        } else {
            format!("{}/{}", self.workdir, self.dest)
        };
        clean_path(&joined)
    }

    /// Whether the destination names a directory: it ends with `/` or is `.` (Docker's rule).
    pub fn dest_is_dir(&self) -> bool {
        self.dest.is_empty() || self.dest == "." || self.dest.ends_with('/')
    }

    /// The sources that are paths (not heredocs).
    pub fn source_paths(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().filter_map(|s| match s {
            CopySource::Path(p) => Some(p.as_str()),
            CopySource::Heredoc(_) => None,
        })
    }
}

/// One source of `COPY`/`ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// A path, glob or URL (relative to the context or the `--from` stage).
    Path(String),
    /// Inline content from a heredoc.
    Heredoc(Heredoc),
}

/// A heredoc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word (quotes removed).
    pub name: String,
    /// The content, each line with its line ending; leading tabs removed for `<<-`.
    pub content: String,
    /// Whether variables in the content are expanded (the delimiter was not quoted).
    pub expand: bool,
    /// Whether it was written `<<-`.
    pub chomp: bool,
    /// The file descriptor written before `<<` (`2<<EOF`), if any.
    pub fd: Option<u32>,
}

/// A Dockerfile error: where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DockerfileError {
    /// The 1-based line; 0 when the error concerns no particular line (e.g. a missing
    /// target stage).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DockerfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl DockerfileError {
    fn new(line: usize, message: impl Into<String>) -> DockerfileError {
        DockerfileError {
            line,
            message: message.into(),
        }
    }

    /// As a [`BuildError::Dockerfile`] naming the Dockerfile at `path`.
    pub fn into_build_error(self, path: impl Into<PathBuf>) -> BuildError {
        BuildError::Dockerfile {
            path: path.into(),
            line: self.line,
            message: self.message,
        }
    }
}

/// Build args Docker defines itself; visible to `FROM` lines without an `ARG` (their values
/// come from the caller's build args).
const BUILTIN_ARGS: &[&str] = &[
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
];

/// The instructions Docker knows.
const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Parse `text` with `build_args` (`--build-arg`s; a `None` value counts as not given, the
/// caller resolves values from the environment).
pub fn parse(
    text: &str,
    build_args: &BTreeMap<String, Option<String>>,
) -> Result<Dockerfile, DockerfileError> {
    let source = read_nodes(text)?;
    let mut builder = StageBuilder {
        escape: source.escape,
        build_args,
        meta_args: Vec::new(),
        stages: Vec::new(),
        states: Vec::new(),
        spent: Cell::new(0),
    };
    for node in &source.nodes {
        builder.add(node)?;
    }
    if builder.stages.is_empty() {
        let line = source.nodes.last().map_or(1, |n| n.line);
        return Err(DockerfileError::new(
            line,
            "the Dockerfile has no FROM instruction: there is no stage to build",
        ));
    }
    Ok(Dockerfile {
        stages: builder.stages,
        args_before_from: builder.meta_args,
        escape: source.escape,
        directives: source.directives,
    })
}

impl Dockerfile {
    /// The index of the stage to build: the one named `target` (case-insensitively), or the
    /// last stage.
    pub fn target_stage(&self, target: Option<&str>) -> Result<usize, DockerfileError> {
        match target {
            None => Ok(self.stages.len().saturating_sub(1)),
            Some(target) => {
                let wanted = target.to_lowercase();
                self.stages
                    .iter()
                    .position(|s| s.name.as_deref() == Some(wanted.as_str()))
                    .ok_or_else(|| {
                        let names: Vec<&str> =
                            self.stages.iter().filter_map(|s| s.name.as_deref()).collect();
                        DockerfileError::new(
                            0,
                            if names.is_empty() {
                                format!(
                                    "target stage {target:?} could not be found: no stage has an `AS` name"
                                )
                            } else {
                                format!(
                                    "target stage {target:?} could not be found; the stages are {}",
                                    names.join(", ")
                                )
                            },
                        )
                    })
            }
        }
    }

    /// The stage a `--from` value (or a `FROM` base) names, seen from stage `current`: an
    /// `AS` name (case-insensitive) of another stage, or the index of an earlier stage.
    /// `None` means an image.
    pub fn stage_reference(&self, reference: &str, current: usize) -> Option<usize> {
        let lower = reference.to_lowercase();
        if let Some(index) = self
            .stages
            .iter()
            .enumerate()
            .position(|(i, s)| i != current && s.name.as_deref() == Some(lower.as_str()))
        {
            return Some(index);
        }
        match reference.parse::<usize>() {
            Ok(index) if index < current => Some(index),
            _ => None,
        }
    }

    /// The stages stage `index` uses directly: its base stage, `COPY/ADD --from` stages and
    /// `RUN --mount from=` stages.
    pub fn stage_dependencies(&self, index: usize) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        let Some(stage) = self.stages.get(index) else {
            return out;
        };
        if let Some(base) = stage.base_stage {
            out.insert(base);
        }
        for instruction in &stage.instructions {
            let from = match &instruction.kind {
                InstructionKind::Copy(c) | InstructionKind::Add(c) => {
                    c.from.iter().map(String::as_str).collect::<Vec<_>>()
                }
                InstructionKind::Run(r) => {
                    r.mounts.iter().filter_map(|m| m.from.as_deref()).collect()
                }
                _ => Vec::new(),
            };
            for reference in from {
                if let Some(dep) = self.stage_reference(reference, index) {
                    out.insert(dep);
                }
            }
        }
        out.remove(&index);
        out
    }

    /// Stage `target` and every stage it needs, directly or not, in index order.
    pub fn stages_needed(&self, target: usize) -> Vec<usize> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(index) = todo.pop() {
            if index >= self.stages.len() || !seen.insert(index) {
                continue;
            }
            todo.extend(self.stage_dependencies(index));
        }
        seen.into_iter().collect()
    }

    /// Whether building the default target (the last stage) runs a `RUN` instruction in it or
    /// in any stage it needs.
    pub fn has_run(&self) -> bool {
        self.stage_has_run(self.stages.len().saturating_sub(1))
    }

    /// Whether building stage `target` runs a `RUN` instruction (in it or a stage it needs).
    pub fn stage_has_run(&self, target: usize) -> bool {
        self.stages_needed(target).into_iter().any(|i| {
            self.stages[i]
                .instructions
                .iter()
                .any(|ins| matches!(ins.kind, InstructionKind::Run(_)))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Stage building: expansion and typed instructions.

/// The variables of a stage while it is being parsed.
#[derive(Debug, Clone, Default)]
struct StageState {
    env: BTreeMap<String, String>,
    args: BTreeMap<String, Option<String>>,
    workdir: String,
}

impl StageState {
    fn lookup(&self, name: &str) -> Option<String> {
        self.env
            .get(name)
            .cloned()
            .or_else(|| self.args.get(name).cloned().flatten())
    }
}

struct StageBuilder<'a> {
    escape: char,
    build_args: &'a BTreeMap<String, Option<String>>,
    meta_args: Vec<(String, Option<String>)>,
    stages: Vec<Stage>,
    states: Vec<StageState>,
    /// Bytes produced by substitutions so far (see [`MAX_TOTAL_EXPANSION`]).
    spent: Cell<usize>,
}

impl StageBuilder<'_> {
    /// Expand `word` with this Dockerfile's escape character, charging the result to the
    /// substitution budget.
    fn expand(
        &self,
        word: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
        skip_unset: bool,
    ) -> Result<String, String> {
        let value = expand_word(word, self.escape, lookup, skip_unset)?;
        self.charge(value.len())?;
        Ok(value)
    }

    /// Count `bytes` against [`MAX_TOTAL_EXPANSION`]: repeated substitutions of long values
    /// could otherwise turn a small Dockerfile into gigabytes.
    fn charge(&self, bytes: usize) -> Result<(), String> {
        let total = self.spent.get().saturating_add(bytes);
        self.spent.set(total);
        if total > MAX_TOTAL_EXPANSION {
            return Err(format!(
                "variable substitution produces more than {} MiB of text",
                MAX_TOTAL_EXPANSION >> 20
            ));
        }
        Ok(())
    }

    fn build_arg(&self, name: &str) -> Option<String> {
        self.build_args.get(name).cloned().flatten()
    }

    fn meta_lookup(&self, name: &str) -> Option<String> {
        if let Some((_, value)) = self.meta_args.iter().rev().find(|(n, _)| n == name) {
            return value.clone();
        }
        if BUILTIN_ARGS.contains(&name) {
            return self.build_arg(name);
        }
        None
    }

    fn add(&mut self, node: &Node) -> Result<(), DockerfileError> {
        let keyword = node.cmd.to_uppercase();
        if !KEYWORDS.contains(&keyword.as_str()) {
            return Err(DockerfileError::new(
                node.line,
                format!("unknown instruction: {}", node.cmd),
            ));
        }
        if keyword == "FROM" {
            return self.add_from(node);
        }
        if self.stages.is_empty() {
            if keyword == "ARG" {
                return self.add_meta_arg(node);
            }
            return Err(DockerfileError::new(
                node.line,
                format!(
                    "no build stage in current context: {keyword} must come after a FROM instruction (only ARG may come before)"
                ),
            ));
        }
        let index = self.states.len() - 1;
        let mut state = std::mem::take(&mut self.states[index]);
        let result = self.stage_instruction(node, &keyword, &mut state);
        self.states[index] = state;
        let instruction = result?;
        if let Some(stage) = self.stages.last_mut() {
            stage.instructions.push(instruction);
        }
        Ok(())
    }

    fn add_meta_arg(&mut self, node: &Node) -> Result<(), DockerfileError> {
        let words = parse_words(&node.args, self.escape);
        if words.is_empty() {
            return Err(DockerfileError::new(
                node.line,
                "ARG requires at least one argument",
            ));
        }
        for word in words {
            let (name, default) = split_arg(&word, node.line)?;
            let default = match default {
                Some(raw) => Some(
                    self.expand(&raw, &|n| self.meta_lookup(n), false)
                        .map_err(|e| DockerfileError::new(node.line, e))?,
                ),
                None => None,
            };
            let value = self.build_arg(&name).or(default);
            self.meta_args.push((name, value));
        }
        Ok(())
    }

    fn add_from(&mut self, node: &Node) -> Result<(), DockerfileError> {
        let line = node.line;
        let flags = parse_flags(&node.flags, line, &|word| {
            self.expand(word, &|n| self.meta_lookup(n), true)
        })?;
        let args = split_whitespace(&node.args);
        if args.len() != 1 && args.len() != 3 {
            return Err(DockerfileError::new(
                line,
                "FROM requires either one or three arguments: FROM <image> [AS <name>]",
            ));
        }
        let mut name = None;
        if args.len() == 3 {
            if !args[1].eq_ignore_ascii_case("as") {
                return Err(DockerfileError::new(
                    line,
                    format!(
                        "FROM: expected AS as the second argument, found {:?}",
                        args[1]
                    ),
                ));
            }
            let stage_name = args[2].to_lowercase();
            if !valid_stage_name(&stage_name) {
                return Err(DockerfileError::new(
                    line,
                    format!(
                        "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                        args[2]
                    ),
                ));
            }
            if self
                .stages
                .iter()
                .any(|s| s.name.as_deref() == Some(stage_name.as_str()))
            {
                return Err(DockerfileError::new(
                    line,
                    format!("duplicate stage name {stage_name:?}"),
                ));
            }
            name = Some(stage_name);
        }
        let image = self
            .expand(args[0], &|n| self.meta_lookup(n), false)
            .map_err(|e| DockerfileError::new(line, e))?;
        if image.is_empty() {
            return Err(DockerfileError::new(
                line,
                format!("base name ({}) should not be blank", args[0]),
            ));
        }
        let platform = flags
            .iter()
            .find(|f| f.name == "platform")
            .and_then(|f| f.value.clone());
        let lower = image.to_lowercase();
        let base_stage = self
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()));
        let state = match base_stage {
            Some(base) => {
                let inherited = &self.states[base];
                let size: usize = inherited
                    .env
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .chain(
                        inherited
                            .args
                            .iter()
                            .map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len)),
                    )
                    .sum();
                self.charge(size)
                    .map_err(|e| DockerfileError::new(line, e))?;
                inherited.clone()
            }
            None => StageState {
                workdir: "/".to_owned(),
                ..StageState::default()
            },
        };
        self.states.push(state);
        self.stages.push(Stage {
            name: name.clone(),
            base: image.clone(),
            base_line: line,
            base_stage,
            platform: platform.clone(),
            instructions: vec![Instruction {
                line,
                end_line: node.end_line,
                keyword: "FROM".to_owned(),
                flags,
                kind: InstructionKind::From {
                    image,
                    name,
                    platform,
                },
            }],
        });
        Ok(())
    }

    fn stage_instruction(
        &self,
        node: &Node,
        keyword: &str,
        state: &mut StageState,
    ) -> Result<Instruction, DockerfileError> {
        let line = node.line;
        let escape = self.escape;
        let err = |message: String| DockerfileError::new(line, message);
        let expand = |word: &str, state: &StageState| -> Result<String, DockerfileError> {
            self.expand(word, &|n| state.lookup(n), false).map_err(err)
        };
        let flags = parse_flags(&node.flags, line, &|word| {
            self.expand(word, &|n| state.lookup(n), false)
        })?;
        // Instructions with options accept any (newer Docker versions keep adding some);
        // the others reject them, as Docker does (`CMD --help` is an error, not a command).
        if let Some(flag) = flags.first() {
            if !matches!(keyword, "COPY" | "ADD" | "RUN" | "HEALTHCHECK") {
                return Err(err(format!(
                    "unknown flag: {} ({keyword} takes no --options; use the JSON form to pass an argument starting with --)",
                    flag.name
                )));
            }
        }
        let kind = match keyword {
            "ARG" => {
                let words = parse_words(&node.args, escape);
                if words.is_empty() {
                    return Err(err("ARG requires at least one argument".to_owned()));
                }
                let mut declarations = Vec::new();
                for word in words {
                    let (name, default) = split_arg(&word, line)?;
                    let default = match default {
                        Some(raw) => Some(expand(&raw, state)?),
                        None => None,
                    };
                    let value = self
                        .build_arg(&name)
                        .or_else(|| default.clone())
                        .or_else(|| {
                            self.meta_args
                                .iter()
                                .rev()
                                .find(|(n, _)| *n == name)
                                .and_then(|(_, v)| v.clone())
                        });
                    state.args.insert(name.clone(), value.clone());
                    declarations.push(ArgDeclaration {
                        name,
                        default,
                        value,
                    });
                }
                InstructionKind::Arg(declarations)
            }
            "ENV" | "LABEL" => {
                let pairs = parse_name_val(&node.args, keyword, escape).map_err(err)?;
                let mut expanded = Vec::new();
                for (key, value) in pairs {
                    let key = expand(&key, state)?;
                    if key.is_empty() {
                        return Err(err(format!("{keyword} names can not be blank")));
                    }
                    expanded.push((key, expand(&value, state)?));
                }
                if keyword == "ENV" {
                    for (key, value) in &expanded {
                        state.env.insert(key.clone(), value.clone());
                    }
                    InstructionKind::Env(expanded)
                } else {
                    InstructionKind::Label(expanded)
                }
            }
            "COPY" | "ADD" => {
                let args = match &node.json {
                    Some(list) => list.clone(),
                    None => split_whitespace(&node.args)
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                };
                if args.len() < 2 {
                    return Err(err(format!(
                        "{keyword} requires at least two arguments, but only {} provided. Destination could not be determined",
                        if args.is_empty() {
                            "none was"
                        } else {
                            "one was"
                        }
                    )));
                }
                let (dest_raw, sources_raw) = match args.split_last() {
                    Some(split) => split,
                    None => return Err(err(format!("{keyword} requires at least two arguments"))),
                };
                if matches!(parse_heredoc(dest_raw), Ok(Some(_))) {
                    return Err(err(format!(
                        "{keyword} does not support heredocs as a destination"
                    )));
                }
                let mut sources = Vec::new();
                for raw in sources_raw {
                    if let Ok(Some(spec)) = parse_heredoc(raw) {
                        // The content was read with the line; a heredoc named in the JSON
                        // form has none, as in Docker.
                        let heredoc = node
                            .heredocs
                            .iter()
                            .find(|h| h.name == spec.name)
                            .cloned()
                            .unwrap_or(spec);
                        sources.push(CopySource::Heredoc(heredoc));
                    } else {
                        sources.push(CopySource::Path(expand(raw, state)?));
                    }
                }
                let dest = expand(dest_raw, state)?;
                let copy = CopyInstruction {
                    from: flag_value(&flags, "from"),
                    chown: flag_value(&flags, "chown"),
                    chmod: flag_value(&flags, "chmod"),
                    link: flag_bool(&flags, "link", line)?,
                    parents: flag_bool(&flags, "parents", line)?,
                    exclude: flags
                        .iter()
                        .filter(|f| f.name == "exclude")
                        .filter_map(|f| f.value.clone())
                        .collect(),
                    sources,
                    dest,
                    json: node.json.is_some(),
                    workdir: state.workdir.clone(),
                };
                if keyword == "COPY" {
                    InstructionKind::Copy(copy)
                } else {
                    InstructionKind::Add(copy)
                }
            }
            "RUN" => {
                let command = match &node.json {
                    Some(list) => Command::Exec(list.clone()),
                    None => {
                        if node.args.is_empty() {
                            return Err(err("RUN requires at least one argument".to_owned()));
                        }
                        Command::Shell(node.args.clone())
                    }
                };
                let mounts = flags
                    .iter()
                    .filter(|f| f.name == "mount")
                    .map(|f| parse_mount(f.value.as_deref().unwrap_or_default()))
                    .collect();
                InstructionKind::Run(RunInstruction {
                    command,
                    heredocs: node.heredocs.clone(),
                    mounts,
                })
            }
            "CMD" | "ENTRYPOINT" => {
                let command = match &node.json {
                    Some(list) => Command::Exec(list.clone()),
                    None => Command::Shell(node.args.clone()),
                };
                if keyword == "CMD" {
                    InstructionKind::Cmd(command)
                } else {
                    InstructionKind::Entrypoint(command)
                }
            }
            "SHELL" => match &node.json {
                Some(list) if !list.is_empty() => InstructionKind::Shell(list.clone()),
                Some(_) => return Err(err("SHELL requires at least one argument".to_owned())),
                None => {
                    return Err(err(
                        "SHELL requires the arguments to be in JSON form".to_owned()
                    ));
                }
            },
            "WORKDIR" => {
                if node.args.is_empty() {
                    return Err(err("WORKDIR requires exactly one argument".to_owned()));
                }
                let dir = expand(&node.args, state)?;
                state.workdir = resolve_path(&state.workdir, &dir);
                InstructionKind::Workdir(dir)
            }
            "USER" => {
                if node.args.is_empty() {
                    return Err(err("USER requires exactly one argument".to_owned()));
                }
                InstructionKind::User(expand(&node.args, state)?)
            }
            "EXPOSE" => {
                let ports = split_whitespace(&node.args);
                if ports.is_empty() {
                    return Err(err("EXPOSE requires at least one argument".to_owned()));
                }
                let mut out = Vec::new();
                for port in ports {
                    out.push(expand(port, state)?);
                }
                InstructionKind::Expose(out)
            }
            "VOLUME" => {
                let raw: Vec<String> = match &node.json {
                    Some(list) => list.clone(),
                    None => split_whitespace(&node.args)
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                };
                if raw.is_empty() {
                    return Err(err("VOLUME requires at least one argument".to_owned()));
                }
                let mut out = Vec::new();
                for path in raw {
                    let path = expand(&path, state)?;
                    if path.trim().is_empty() {
                        return Err(err("VOLUME specified can not be an empty string".to_owned()));
                    }
                    out.push(path);
                }
                InstructionKind::Volume(out)
            }
            _ => InstructionKind::Other(node.args.clone()),
        };
        Ok(Instruction {
            line,
            end_line: node.end_line,
            keyword: keyword.to_owned(),
            flags,
            kind,
        })
    }
}

fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' || c == '.'
        })
}

/// `ARG name[=default]` → (name, raw default).
fn split_arg(word: &str, line: usize) -> Result<(String, Option<String>), DockerfileError> {
    let (name, default) = match word.split_once('=') {
        Some((name, default)) => (name, Some(default.to_owned())),
        None => (word, None),
    };
    if name.is_empty() {
        return Err(DockerfileError::new(line, "ARG names can not be blank"));
    }
    Ok((name.to_owned(), default))
}

/// Resolve `path` against the absolute directory `base`, cleaned (how `WORKDIR` and `COPY`
/// destinations resolve).
pub(crate) fn resolve_path(base: &str, path: &str) -> String {
    if path.starts_with('/') {
        clean_path(path)
    } else {
        clean_path(&format!("{base}/{path}"))
    }
}

fn parse_flags(
    raw: &[String],
    line: usize,
    expand: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Vec<Flag>, DockerfileError> {
    let mut flags = Vec::new();
    for word in raw {
        let Some(body) = word.strip_prefix("--") else {
            return Err(DockerfileError::new(
                line,
                format!("arg should start with -- : {word}"),
            ));
        };
        let (name, value) = match body.split_once('=') {
            Some((name, value)) => (
                name.to_owned(),
                Some(expand(value).map_err(|e| DockerfileError::new(line, e))?),
            ),
            None => (body.to_owned(), None),
        };
        flags.push(Flag { name, value });
    }
    Ok(flags)
}

fn flag_value(flags: &[Flag], name: &str) -> Option<String> {
    flags
        .iter()
        .rev()
        .find(|f| f.name == name)
        .map(|f| f.value.clone().unwrap_or_default())
}

fn flag_bool(flags: &[Flag], name: &str, line: usize) -> Result<bool, DockerfileError> {
    match flags.iter().rev().find(|f| f.name == name) {
        None => Ok(false),
        Some(Flag { value: None, .. }) => Ok(true),
        Some(Flag {
            value: Some(value), ..
        }) => match value.to_lowercase().as_str() {
            "true" | "" => Ok(true),
            "false" => Ok(false),
            _ => Err(DockerfileError::new(
                line,
                format!("expecting boolean value for flag {name}, not: {value}"),
            )),
        },
    }
}

/// Parse a `--mount` value: comma-separated `key[=value]` fields.
fn parse_mount(value: &str) -> Mount {
    let mut mount = Mount {
        kind: "bind".to_owned(),
        from: None,
        source: None,
        target: None,
        options: Vec::new(),
    };
    for field in split_csv(value) {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_lowercase(), Some(v.to_owned())),
            None => (field.trim().to_lowercase(), None),
        };
        match (key.as_str(), &val) {
            ("type", Some(v)) => mount.kind = v.clone(),
            ("from", Some(v)) => mount.from = Some(v.clone()),
            ("source" | "src", Some(v)) => mount.source = Some(v.clone()),
            ("target" | "dst" | "destination", Some(v)) => mount.target = Some(v.clone()),
            _ => {}
        }
        mount.options.push((key, val));
    }
    mount
}

/// Split a CSV record (as Go's `encoding/csv` reads one line): commas separate fields,
/// double quotes group.
fn split_csv(value: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            other => field.push(other),
        }
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
    }
    fields
}

// ---------------------------------------------------------------------------------------------
// Reading lines into instructions (BuildKit's `parser` package).

/// One logical instruction as read, before typing.
#[derive(Debug, Clone)]
struct Node {
    line: usize,
    end_line: usize,
    /// The keyword as written.
    cmd: String,
    /// The `--flag` words, raw.
    flags: Vec<String>,
    /// The rest of the line after the flags, trimmed.
    args: String,
    /// The JSON array, for instructions that accept the JSON form and used it.
    json: Option<Vec<String>>,
    heredocs: Vec<Heredoc>,
}

struct Source {
    nodes: Vec<Node>,
    escape: char,
    directives: Vec<(String, String)>,
}

#[derive(Default)]
struct Directives {
    done: bool,
    seen: Vec<(String, String)>,
}

impl Directives {
    /// Look at `line` (left-trimmed) for a parser directive while they are allowed.
    fn check(
        &mut self,
        line: &str,
        line_no: usize,
        escape: &mut char,
    ) -> Result<(), DockerfileError> {
        if self.done {
            return Ok(());
        }
        let Some((name, value)) = parse_directive(line) else {
            self.done = true;
            return Ok(());
        };
        let name = name.to_lowercase();
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(());
        }
        if self.seen.iter().any(|(n, _)| *n == name) {
            return Err(DockerfileError::new(
                line_no,
                format!("only one {name} parser directive can be used"),
            ));
        }
        if name == "escape" {
            *escape = match value {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(DockerfileError::new(
                        line_no,
                        format!("invalid escape token '{value}' does not match ` or \\"),
                    ));
                }
            };
        }
        self.seen.push((name, value.to_owned()));
        Ok(())
    }
}

/// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` → (name, value).
fn parse_directive(line: &str) -> Option<(&str, &str)> {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r');
    let rest = line.strip_prefix('#')?.trim_start_matches(is_space);
    let name_len = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let name = &rest[..name_len];
    if !name.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let rest = rest[name_len..].trim_start_matches(is_space);
    let value = rest.strip_prefix('=')?.trim_matches(is_space);
    if value.is_empty() {
        return None;
    }
    Some((name, value))
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// BuildKit's `([^E])E[ \t]*$|^E[ \t]*$` for escape `E`: strip a line-continuation escape;
/// the bool is true when the line does *not* continue.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    let Some(before) = trimmed.strip_suffix(escape) else {
        return (line, true);
    };
    if before.is_empty() {
        return ("", false);
    }
    if before.ends_with(escape) {
        return (line, true);
    }
    (before, false)
}

fn read_nodes(text: &str) -> Result<Source, DockerfileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut escape = '\\';
    let mut directives = Directives::default();
    let mut nodes = Vec::new();
    let mut idx = 0;
    while idx < lines.len() {
        let first = trim_newline(lines[idx]).trim_start();
        idx += 1;
        let start_line = idx;
        directives.check(first, start_line, &mut escape)?;
        let first = if first.starts_with('#') { "" } else { first };
        let (first, mut end_of_line) = trim_continuation(first, escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut buf = first.to_owned();
        while !end_of_line && idx < lines.len() {
            let raw = lines[idx];
            idx += 1;
            if is_comment(raw) {
                continue;
            }
            let text = trim_newline(raw);
            if text.trim_start().is_empty() {
                continue;
            }
            let (part, eol) = trim_continuation(text, escape);
            end_of_line = eol;
            buf.push_str(part);
        }
        let Some((cmd, flags, args)) = split_command(&buf) else {
            continue;
        };
        let lower = cmd.to_lowercase();
        let json = match lower.as_str() {
            "add" | "copy" | "volume" | "cmd" | "entrypoint" | "run" | "shell" => {
                parse_json(&args).map_err(|e| DockerfileError::new(start_line, e))?
            }
            _ => None,
        };
        let can_have_heredocs = match lower.as_str() {
            "add" | "copy" | "run" => json.is_none(),
            "onbuild" => split_command(&args).is_some_and(|(child, _, child_args)| {
                matches!(child.to_lowercase().as_str(), "add" | "copy" | "run")
                    && !matches!(parse_json(&child_args), Ok(Some(_)))
            }),
            _ => false,
        };
        let mut heredocs = Vec::new();
        if can_have_heredocs && buf.contains("<<") {
            let specs =
                heredocs_from_line(&buf).map_err(|e| DockerfileError::new(start_line, e))?;
            for spec in specs {
                let mut content = String::new();
                let mut terminated = false;
                while idx < lines.len() {
                    let raw = lines[idx];
                    idx += 1;
                    let mut candidate = trim_newline(raw);
                    if spec.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == spec.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(raw);
                }
                if !terminated {
                    return Err(DockerfileError::new(
                        start_line,
                        format!("unterminated heredoc: no line `{}` ends it", spec.name),
                    ));
                }
                if spec.chomp {
                    content = chomp_heredoc(&content);
                }
                heredocs.push(Heredoc { content, ..spec });
            }
        }
        nodes.push(Node {
            line: start_line,
            end_line: idx,
            cmd,
            flags,
            args,
            json,
            heredocs,
        });
    }
    if nodes.is_empty() {
        return Err(DockerfileError::new(
            lines.len().max(1),
            "file with no instructions",
        ));
    }
    Ok(Source {
        nodes,
        escape,
        directives: directives.seen,
    })
}

/// Remove leading tabs from every line (`<<-`).
fn chomp_heredoc(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|line| line.trim_start_matches('\t'))
        .collect()
}

/// Docker's `reWhitespace`: `[\t\v\f\r ]`.
fn is_separator(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Split on runs of `[\t\v\f\r ]`, dropping empty pieces.
fn split_whitespace(s: &str) -> Vec<&str> {
    s.split(is_separator).filter(|w| !w.is_empty()).collect()
}

/// `splitCommand`: keyword, flag words, trimmed rest.
fn split_command(line: &str) -> Option<(String, Vec<String>, String)> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return None;
    }
    let (cmd, rest) = match trimmed.find(is_separator) {
        Some(i) => (&trimmed[..i], trimmed[i..].trim_start_matches(is_separator)),
        None => (trimmed, ""),
    };
    let (args, flags) = extract_builder_flags(rest);
    Some((cmd.to_owned(), flags, args.trim().to_owned()))
}

/// BuildKit's `extractBuilderFlags`: leading `--flag` words (quotes and `\` honoured) and the
/// rest of the line.
fn extract_builder_flags(line: &str) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = line.chars().collect();
    let rest_from = |pos: usize| chars[pos..].iter().collect::<String>();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= chars.len() {
        let ch = chars.get(pos).copied().unwrap_or('\0');
        if phase == Phase::Spaces {
            if pos == chars.len() {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            if ch != '-' || chars.get(pos + 1) != Some(&'-') {
                return (rest_from(pos), words);
            }
            phase = Phase::Word;
        }
        if pos == chars.len() {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (rest_from(pos), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            let mut c = ch;
            if c == '\\' {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                c = chars[pos];
            }
            word.push(c);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        let mut c = ch;
        if c == '\\' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            c = chars[pos];
        }
        word.push(c);
        pos += 1;
    }
    (String::new(), words)
}

/// BuildKit's `parseWords`: split on whitespace honouring quotes and escapes, which are kept.
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= n {
        let mut ch = chars.get(pos).copied().unwrap_or('\0');
        if phase == Phase::Spaces {
            if pos == n {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if pos == n {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == n {
                    pos += 1;
                    continue;
                }
                word.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == n {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            word.push(ch);
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    words
}

/// BuildKit's `parseNameVal` for `ENV`/`LABEL`: `k=v …` or the legacy `k v`.
fn parse_name_val(
    rest: &str,
    keyword: &str,
    escape: char,
) -> Result<Vec<(String, String)>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Err(format!("{keyword} requires at least one argument"));
    };
    if !first.contains('=') {
        let trimmed = rest.trim_start_matches(is_separator);
        return match trimmed.find(is_separator) {
            Some(i) => Ok(vec![(
                trimmed[..i].to_owned(),
                trimmed[i..].trim_start_matches(is_separator).to_owned(),
            )]),
            None => Err(format!("{keyword} must have two arguments")),
        };
    }
    let mut pairs = Vec::new();
    for word in &words {
        match word.split_once('=') {
            Some((k, v)) => pairs.push((k.to_owned(), v.to_owned())),
            None => {
                return Err(format!(
                    "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
                ));
            }
        }
    }
    Ok(pairs)
}

/// `parseJSON`: `Ok(Some)` for a JSON array of strings, `Ok(None)` when `rest` is not JSON
/// (the shell form applies), `Err` for a JSON array holding something else than strings.
fn parse_json(rest: &str) -> Result<Option<Vec<String>>, String> {
    use serde::Deserialize;
    let trimmed = rest.trim_start();
    if !trimmed.starts_with('[') {
        return Ok(None);
    }
    // Like Go's json.Decoder: read one value and ignore what follows it.
    let mut deserializer = serde_json::Deserializer::from_str(trimmed);
    let Ok(value) = serde_json::Value::deserialize(&mut deserializer) else {
        return Ok(None);
    };
    let serde_json::Value::Array(items) = value else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            serde_json::Value::String(s) => out.push(s),
            _ => {
                return Err(
                    "when using JSON array syntax, arrays must be comprised of strings only"
                        .to_owned(),
                );
            }
        }
    }
    Ok(Some(out))
}

/// `<<[-]WORD` → the heredoc it opens (content empty), `Ok(None)` when `src` is not one.
fn parse_heredoc(src: &str) -> Result<Option<Heredoc>, String> {
    let digits_len = src.find(|c: char| !c.is_ascii_digit()).unwrap_or(src.len());
    let Some(rest) = src[digits_len..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let fd = if digits_len == 0 {
        None
    } else {
        Some(src[..digits_len].parse::<u32>().unwrap_or(0))
    };
    let empty = |_: &str| -> Option<String> { None };
    let words = Lexer::new(rest, '\\', &empty)
        .skip_unset()
        .words()
        .map_err(|e| format!("failed to process {rest:?}: {e}"))?;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw_words = Lexer::new(rest, '\\', &empty)
        .skip_unset()
        .raw_quotes()
        .words()
        .map_err(|e| format!("failed to process {rest:?}: {e}"))?;
    if raw_words.len() != words.len() {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    Ok(Some(Heredoc {
        expand: quotes(&words[0]) == quotes(&raw_words[0]),
        name: words[0].clone(),
        content: String::new(),
        chomp,
        fd,
    }))
}

/// The heredocs a line opens, in order.
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let empty = |_: &str| -> Option<String> { None };
    let words = Lexer::new(line, '\\', &empty)
        .skip_unset()
        .raw_quotes()
        .raw_escapes()
        .words()
        .unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

// ---------------------------------------------------------------------------------------------
// Variable substitution (BuildKit's `shell` package).

/// How deeply `${…}` may nest.
const MAX_NESTING: usize = 64;
/// The longest result a substitution may produce.
const MAX_EXPANSION: usize = 1 << 20;
/// The most text all substitutions of one Dockerfile may produce together.
const MAX_TOTAL_EXPANSION: usize = 64 << 20;
/// The longest value a pattern substitution (`#`, `%`, `/`) works on.
const MAX_PATTERN_VALUE: usize = 4096;

/// Expand one word (Docker's `ProcessWord`): quotes removed, escapes applied, variables
/// substituted, whitespace kept.
fn expand_word(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
    skip_unset: bool,
) -> Result<String, String> {
    let mut lexer = Lexer::new(word, escape, lookup);
    lexer.skip_unset = skip_unset;
    lexer
        .process()
        .map(|(word, _)| word)
        .map_err(|e| format!("failed to process {word:?}: {e}"))
}

/// Expand and split into words (Docker's `ProcessWords`).
#[cfg(test)]
fn expand_words(
    word: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    Lexer::new(word, '\\', lookup).words()
}

#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for c in s.chars() {
            self.add_char(c);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_unset: bool,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    depth: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &str, escape: char, lookup: &'a dyn Fn(&str) -> Option<String>) -> Lexer<'a> {
        Lexer {
            chars: text.chars().collect(),
            pos: 0,
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset: false,
            lookup,
            depth: 0,
        }
    }

    fn skip_unset(mut self) -> Self {
        self.skip_unset = true;
        self
    }

    fn raw_quotes(mut self) -> Self {
        self.raw_quotes = true;
        self
    }

    fn raw_escapes(mut self) -> Self {
        self.raw_escapes = true;
        self
    }

    fn words(mut self) -> Result<Vec<String>, String> {
        self.process().map(|(_, words)| words)
    }

    fn process(&mut self) -> Result<(String, Vec<String>), String> {
        self.stop_on(None)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn stop_on(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let value = self.dollar()?;
                    result.push_str(&value);
                    words.add_string(&value);
                }
                '\'' => {
                    let value = self.single_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                '"' => {
                    let value = self.double_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                _ => {
                    self.pos += 1;
                    if ch == self.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        match self.next() {
                            None => break,
                            Some(c) => {
                                words.add_raw_char(c);
                                result.push(c);
                            }
                        }
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
            if result.len() > MAX_EXPANSION {
                return Err("the substitution result is too long".to_owned());
            }
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        Ok((result, words.finish()))
    }

    fn single_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        let open = self.next();
        if self.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .to_owned(),
                    );
                }
                Some('\'') => {
                    if self.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        let open = self.next();
        if self.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .to_owned(),
                    );
                }
                Some('"') => {
                    self.pos += 1;
                    if self.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.dollar()?;
                    result.push_str(&value);
                }
                Some(c) => {
                    self.pos += 1;
                    let mut c = c;
                    if c == self.escape {
                        if self.raw_escapes {
                            result.push(c);
                        }
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                c = n;
                                self.pos += 1;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(c);
                }
            }
            if result.len() > MAX_EXPANSION {
                return Err("the substitution result is too long".to_owned());
            }
        }
    }

    fn lookup(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.pos += 1;
        if self.peek() == Some('{') {
            self.pos += 1;
            if self.depth >= MAX_NESTING {
                return Err("substitutions nested too deeply".to_owned());
            }
            self.depth += 1;
            let result = self.curly();
            self.depth -= 1;
            return result;
        }
        let name = self.name();
        if name.is_empty() {
            return Ok("$".to_owned());
        }
        Ok(match self.lookup(&name) {
            Some(value) => value,
            None if self.skip_unset => format!("${name}"),
            None => String::new(),
        })
    }

    /// The word of `${name<op>word}` up to the closing brace.
    fn brace_word(&mut self, raw_escapes: bool) -> Result<String, String> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes || saved;
        let result = self.stop_on(Some('}'));
        self.raw_escapes = saved;
        match result {
            Ok((word, _)) => Ok(word),
            Err(e) => {
                if self.peek().is_none() {
                    Err("syntax error: missing '}'".to_owned())
                } else {
                    Err(e)
                }
            }
        }
    }

    fn curly(&mut self) -> Result<String, String> {
        match self.peek() {
            None => return Err("syntax error: missing '}'".to_owned()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".to_owned()),
            Some(_) => {}
        }
        let name = self.name();
        let op = self.next();
        let unset_message = |word: &str, default: &str| {
            if word.is_empty() {
                format!("{name}: {default}")
            } else {
                format!("{name}: {word}")
            }
        };
        match op {
            Some('}') => Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some('?') => {
                let word = self.brace_word(false)?;
                match self.lookup(&name) {
                    Some(value) => Ok(value),
                    None if self.skip_unset => Ok(format!("${{{name}?{word}}}")),
                    None => Err(unset_message(&word, "is not allowed to be unset")),
                }
            }
            Some(':') => {
                let modifier = self.next();
                let word = self.brace_word(false)?;
                let found = self.lookup(&name);
                if found.is_none() && self.skip_unset {
                    return Ok(format!(
                        "${{{name}:{}{word}}}",
                        modifier.map(String::from).unwrap_or_default()
                    ));
                }
                let is_set = found.is_some();
                let value = found.unwrap_or_default();
                match modifier {
                    Some('+') => Ok(if value.is_empty() { value } else { word }),
                    Some('-') => Ok(if value.is_empty() { word } else { value }),
                    Some('?') => {
                        if !is_set {
                            Err(unset_message(&word, "is not allowed to be unset"))
                        } else if value.is_empty() {
                            Err(unset_message(&word, "is not allowed to be empty"))
                        } else {
                            Ok(value)
                        }
                    }
                    Some(m) => Err(format!("unsupported modifier ({m}) in substitution")),
                    None => Err("syntax error: missing '}'".to_owned()),
                }
            }
            Some(op @ ('-' | '+')) => {
                let word = self.brace_word(false)?;
                let found = self.lookup(&name);
                if found.is_none() && self.skip_unset {
                    return Ok(format!("${{{name}{op}{word}}}"));
                }
                Ok(match (op, found) {
                    ('-', Some(value)) => value,
                    ('-', None) => word,
                    (_, Some(_)) => word,
                    (_, None) => String::new(),
                })
            }
            Some(op @ ('#' | '%')) => {
                let greedy = self.peek() == Some(op);
                if greedy {
                    self.pos += 1;
                }
                let pattern = self.brace_word(true)?;
                let found = self.lookup(&name);
                if found.is_none() && self.skip_unset {
                    let doubled = if greedy {
                        op.to_string()
                    } else {
                        String::new()
                    };
                    return Ok(format!("${{{name}{op}{doubled}{pattern}}}"));
                }
                let value = found.unwrap_or_default();
                let tokens = shell_pattern(&pattern)
                    .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
                if op == '#' {
                    trim_prefix(&tokens, &value, greedy)
                } else {
                    trim_suffix(&tokens, &value, greedy)
                }
            }
            Some('/') => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let saved = self.raw_escapes;
                self.raw_escapes = true;
                let pattern = self.stop_on(Some('/'));
                self.raw_escapes = saved;
                let (pattern, _) = pattern?;
                let replacement = self.brace_word(true)?;
                let found = self.lookup(&name);
                if found.is_none() && self.skip_unset {
                    let slashes = if all { "//" } else { "/" };
                    return Ok(format!("${{{name}{slashes}{pattern}/{replacement}}}"));
                }
                let tokens = shell_pattern(&pattern)
                    .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
                replace_pattern(&tokens, &found.unwrap_or_default(), &replacement, all)
            }
            None => Err("syntax error: missing '}'".to_owned()),
            Some(_) => Err("missing ':' in substitution".to_owned()),
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                while let Some(c) = self.peek() {
                    if !c.is_numeric() {
                        break;
                    }
                    name.push(c);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return ch.to_string();
            }
            if !(ch.is_alphabetic() || ch.is_numeric() || ch == '_') {
                break;
            }
            name.push(ch);
            self.pos += 1;
        }
        name
    }
}

/// An element of a `${var#pattern}` pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatternToken {
    Literal(char),
    /// `?`: any character but a newline.
    Any,
    /// `*`: any run of characters without a newline.
    Star,
}

/// BuildKit's `convertShellPatternToRegex`, as tokens: `*`, `?`, and `\*`, `\?`, `\\`
/// escapes; `\}` and `\/` stand for `}` and `/`.
fn shell_pattern(pattern: &str) -> Result<Vec<PatternToken>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut pos = 0;
    while pos < chars.len() {
        let c = chars[pos];
        pos += 1;
        match c {
            '*' => tokens.push(PatternToken::Star),
            '?' => tokens.push(PatternToken::Any),
            '\\' => match chars.get(pos) {
                Some('}' | '/') => {}
                Some(&e @ ('*' | '?' | '\\')) => {
                    pos += 1;
                    tokens.push(PatternToken::Literal(e));
                }
                Some(other) => return Err(format!("invalid escape '\\{other}'")),
                None => return Err("invalid escape '\\' at the end".to_owned()),
            },
            other => tokens.push(PatternToken::Literal(other)),
        }
    }
    Ok(tokens)
}

/// The ends `e` (in chars) such that `tokens` match `text[start..e]`.
fn pattern_ends(tokens: &[PatternToken], text: &[char], start: usize) -> Vec<bool> {
    let n = text.len();
    let mut current = vec![false; n + 1];
    if start <= n {
        current[start] = true;
    }
    for token in tokens {
        let mut next = vec![false; n + 1];
        match token {
            PatternToken::Literal(_) | PatternToken::Any => {
                for p in start..n {
                    if current[p] {
                        next[p + 1] = match token {
                            PatternToken::Literal(l) => text[p] == *l,
                            _ => text[p] != '\n',
                        };
                    }
                }
            }
            PatternToken::Star => {
                let mut active = false;
                for p in start..=n {
                    active |= current[p];
                    next[p] = active;
                    if p < n && text[p] == '\n' {
                        active = false;
                    }
                }
            }
        }
        current = next;
        if !current.iter().any(|&b| b) {
            break;
        }
    }
    current
}

fn check_pattern_value(value: &str) -> Result<Vec<char>, String> {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() > MAX_PATTERN_VALUE {
        return Err(format!(
            "pattern substitution on a value longer than {MAX_PATTERN_VALUE} characters"
        ));
    }
    Ok(chars)
}

fn trim_prefix(tokens: &[PatternToken], value: &str, greedy: bool) -> Result<String, String> {
    let chars = check_pattern_value(value)?;
    let ends = pattern_ends(tokens, &chars, 0);
    let end = if greedy {
        ends.iter().rposition(|&b| b)
    } else {
        ends.iter().position(|&b| b)
    };
    Ok(match end {
        Some(end) => chars[end..].iter().collect(),
        None => value.to_owned(),
    })
}

fn trim_suffix(tokens: &[PatternToken], value: &str, greedy: bool) -> Result<String, String> {
    let reversed_tokens: Vec<PatternToken> = tokens.iter().rev().copied().collect();
    let reversed: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reversed_tokens, &reversed, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

fn replace_pattern(
    tokens: &[PatternToken],
    value: &str,
    replacement: &str,
    all: bool,
) -> Result<String, String> {
    let chars = check_pattern_value(value)?;
    let n = chars.len();
    let mut out = String::new();
    let mut pos = 0;
    let mut last_match_end = None;
    while pos <= n {
        let ends = pattern_ends(tokens, &chars, pos);
        let end = ends.iter().rposition(|&b| b).filter(|&e| e >= pos);
        match end {
            Some(end) if !(end == pos && last_match_end == Some(pos)) => {
                out.push_str(replacement);
                if out.len() > MAX_EXPANSION {
                    return Err("the substitution result is too long".to_owned());
                }
                last_match_end = Some(end);
                if !all {
                    out.extend(&chars[end..]);
                    return Ok(out);
                }
                if end == pos {
                    if pos < n {
                        out.push(chars[pos]);
                    }
                    pos += 1;
                } else {
                    pos = end;
                }
            }
            _ => {
                if pos < n {
                    out.push(chars[pos]);
                }
                pos += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn no_args() -> BTreeMap<String, Option<String>> {
        BTreeMap::new()
    }

    fn parse_ok(text: &str) -> Dockerfile {
        parse(text, &no_args()).unwrap()
    }

    fn parse_err(text: &str) -> DockerfileError {
        parse(text, &no_args()).unwrap_err()
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    fn exp(word: &str, vars: &[(&str, &str)]) -> String {
        expand_word(word, '\\', &env(vars), false).unwrap()
    }

    #[test]
    fn substitution_forms() {
        let vars = [
            ("A", "alpha"),
            ("E", ""),
            ("P", "/usr/local/bin/tool.tar.gz"),
        ];
        assert_eq!(exp("$A", &vars), "alpha");
        assert_eq!(exp("${A}x", &vars), "alphax");
        assert_eq!(exp("$Ax", &vars), "");
        assert_eq!(exp("${U:-def}", &vars), "def");
        assert_eq!(exp("${E:-def}", &vars), "def");
        assert_eq!(exp("${E-def}", &vars), "");
        assert_eq!(exp("${U-def}", &vars), "def");
        assert_eq!(exp("${A:+alt}", &vars), "alt");
        assert_eq!(exp("${E:+alt}", &vars), "");
        assert_eq!(exp("${E+alt}", &vars), "alt");
        assert_eq!(exp("${U:-${A}}", &vars), "alpha");
        assert_eq!(exp("'$A'", &vars), "$A");
        assert_eq!(exp("\"$A b\"", &vars), "alpha b");
        assert_eq!(exp("\\$A", &vars), "$A");
        assert_eq!(exp("a\\ b", &vars), "a b");
        assert_eq!(exp("$", &vars), "$");
        assert_eq!(exp("$1x", &vars), "x");
        assert_eq!(exp("${P#*/}", &vars), "usr/local/bin/tool.tar.gz");
        assert_eq!(exp("${P##*/}", &vars), "tool.tar.gz");
        assert_eq!(exp("${P%.*}", &vars), "/usr/local/bin/tool.tar");
        assert_eq!(exp("${P%%.*}", &vars), "/usr/local/bin/tool");
        assert_eq!(exp("${P/local/opt}", &vars), "/usr/opt/bin/tool.tar.gz");
        assert_eq!(exp("${P//\\//:}", &vars), ":usr:local:bin:tool.tar.gz");
        let e = expand_word("${U:?must be set}", '\\', &env(&vars), false).unwrap_err();
        assert!(e.contains("U: must be set"), "{e}");
        let e = expand_word("${A", '\\', &env(&vars), false).unwrap_err();
        assert!(e.contains("missing '}'"), "{e}");
        let e = expand_word("${}", '\\', &env(&vars), false).unwrap_err();
        assert!(e.contains("bad substitution"), "{e}");
        let e = expand_word("'open", '\\', &env(&vars), false).unwrap_err();
        assert!(e.contains("single-quote"), "{e}");
        assert_eq!(
            expand_word("${U}-$U", '\\', &env(&vars), true).unwrap(),
            "${U}-$U"
        );
        assert_eq!(
            expand_words("a $A \"b c\"", &env(&vars)).unwrap(),
            ["a", "alpha", "b c"]
        );
        assert_eq!(expand_word("`$A", '`', &env(&vars), false).unwrap(), "$A");
    }

    #[test]
    fn substitution_output_is_bounded() {
        // Each line doubles the value: without a budget this would need terabytes.
        let mut text = String::from("FROM a\nENV A=0123456789abcdef0123456789abcdef\n");
        for _ in 0..64 {
            text.push_str("ENV A=$A$A\n");
        }
        let e = parse_err(&text);
        assert!(
            e.message.contains("too long") || e.message.contains("MiB"),
            "{e}"
        );
        // Many copies of a large value hit the overall budget.
        let mut text = format!("FROM a\nENV B={}\n", "x".repeat(512 * 1024));
        for i in 0..200 {
            text.push_str(&format!("ENV C{i}=$B\n"));
        }
        let e = parse_err(&text);
        assert!(e.message.contains("MiB"), "{e}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = "${A:-".repeat(10_000);
        assert!(expand_word(&text, '\\', &env(&[]), false).is_err());
        let text = format!("FROM alpine\nENV X={}\n", "${A:-".repeat(10_000));
        assert!(parse(&text, &no_args()).is_err());
    }

    #[test]
    fn continuations_comments_and_empty_lines() {
        let d = parse_ok(
            "FROM alpine\nRUN apk add \\\n    # a comment inside\n\n    curl \\\n  git\nRUN echo done\n",
        );
        let ins = &d.stages[0].instructions;
        assert_eq!(ins.len(), 3);
        assert_eq!(ins[1].line, 2);
        assert_eq!(ins[1].end_line, 6);
        assert_eq!(
            ins[1].kind,
            InstructionKind::Run(RunInstruction {
                command: Command::Shell("apk add     curl   git".to_owned()),
                heredocs: vec![],
                mounts: vec![],
            })
        );
        assert_eq!(ins[2].line, 7);
        // An escaped escape at the end is not a continuation.
        let d = parse_ok("FROM alpine\nRUN echo a\\\\\nRUN echo b\n");
        assert_eq!(d.stages[0].instructions.len(), 3);
    }

    #[test]
    fn escape_directive() {
        let d = parse_ok("# escape=`\nFROM mcr.microsoft.com/windows\nCOPY a\\b `\n  c:\\dest\\\n");
        assert_eq!(d.escape, '`');
        assert_eq!(d.directives, [("escape".to_owned(), "`".to_owned())]);
        let InstructionKind::Copy(copy) = &d.stages[0].instructions[1].kind else {
            panic!()
        };
        assert_eq!(copy.source_paths().collect::<Vec<_>>(), ["a\\b"]);
        assert_eq!(copy.dest, "c:\\dest\\");
        // A directive after a comment is just a comment.
        let d = parse_ok("# hello\n# escape=`\nFROM a\n");
        assert_eq!(d.escape, '\\');
        let e = parse_err("# escape=x\nFROM a\n");
        assert_eq!(e.line, 1);
        let e = parse_err("# escape=`\n# escape=\\\nFROM a\n");
        assert!(e.message.contains("only one escape"), "{e}");
    }

    #[test]
    fn heredocs() {
        let text = "FROM alpine\nRUN <<EOF\nset -e\necho $HOME\nEOF\nRUN <<-A cat >/x <<'B'\n\t\tindented\n\tA\nliteral $X\nB\nCOPY <<EOF /etc/conf\nkey=value\nEOF\nRUN echo after\n";
        let d = parse_ok(text);
        let ins = &d.stages[0].instructions;
        let InstructionKind::Run(run) = &ins[1].kind else {
            panic!()
        };
        assert_eq!(run.command, Command::Shell("<<EOF".to_owned()));
        assert_eq!(run.heredocs.len(), 1);
        assert_eq!(run.heredocs[0].name, "EOF");
        assert_eq!(run.heredocs[0].content, "set -e\necho $HOME\n");
        assert!(run.heredocs[0].expand);
        assert_eq!((ins[1].line, ins[1].end_line), (2, 5));
        let InstructionKind::Run(run) = &ins[2].kind else {
            panic!()
        };
        assert_eq!(run.heredocs.len(), 2);
        assert_eq!(run.heredocs[0].content, "indented\n");
        assert!(run.heredocs[0].chomp);
        assert_eq!(run.heredocs[1].name, "B");
        assert!(!run.heredocs[1].expand);
        assert_eq!(run.heredocs[1].content, "literal $X\n");
        let InstructionKind::Copy(copy) = &ins[3].kind else {
            panic!()
        };
        assert_eq!(copy.dest, "/etc/conf");
        assert_eq!(copy.source_paths().count(), 0);
        let CopySource::Heredoc(doc) = &copy.sources[0] else {
            panic!()
        };
        assert_eq!(doc.content, "key=value\n");
        assert_eq!(ins[4].line, 14);
        let e = parse_err("FROM a\nRUN <<EOF\nnever ends\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unterminated heredoc"), "{e}");
        // Not a heredoc: quoted, or JSON form.
        let d = parse_ok("FROM a\nRUN echo \"<<EOF\"\nRUN [\"sh\", \"-c\", \"cat <<EOF\"]\n");
        assert_eq!(d.stages[0].instructions.len(), 3);
    }

    #[test]
    fn json_and_shell_forms() {
        let d = parse_ok(
            "FROM a\nCMD [\"/server\", \"--port\", \"80\"]\nENTRYPOINT exec /server\nRUN [\"broken\", \nSHELL [\"/bin/bash\", \"-c\"]\n",
        );
        let ins = &d.stages[0].instructions;
        assert_eq!(
            ins[1].kind,
            InstructionKind::Cmd(Command::Exec(vec![
                "/server".into(),
                "--port".into(),
                "80".into()
            ]))
        );
        assert_eq!(
            ins[2].kind,
            InstructionKind::Entrypoint(Command::Shell("exec /server".into()))
        );
        assert!(matches!(
            &ins[3].kind,
            InstructionKind::Run(RunInstruction { command: Command::Shell(s), .. }) if s == "[\"broken\","
        ));
        assert_eq!(
            ins[4].kind,
            InstructionKind::Shell(vec!["/bin/bash".into(), "-c".into()])
        );
        let e = parse_err("FROM a\nCMD [1, 2]\n");
        assert!(e.message.contains("strings only"), "{e}");
        let e = parse_err("FROM a\nSHELL /bin/sh -c\n");
        assert!(e.message.contains("JSON"), "{e}");
    }

    #[test]
    fn env_forms_and_scoping() {
        let d = parse_ok(
            "FROM a\nENV A=1 B=\"two words\" C=$A\nENV LEGACY value with spaces\nENV D=${A}-${B}\n",
        );
        let ins = &d.stages[0].instructions;
        assert_eq!(
            ins[1].kind,
            InstructionKind::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), String::new()),
            ])
        );
        assert_eq!(
            ins[2].kind,
            InstructionKind::Env(vec![("LEGACY".into(), "value with spaces".into())])
        );
        assert_eq!(
            ins[3].kind,
            InstructionKind::Env(vec![("D".into(), "1-two words".into())])
        );
        let e = parse_err("FROM a\nENV ONLYKEY\n");
        assert!(e.message.contains("two arguments"), "{e}");
        let e = parse_err("FROM a\nENV A=1 B\n");
        assert!(e.message.contains("can't find ="), "{e}");
    }

    #[test]
    fn args_and_build_args() {
        let text = "ARG BASE=alpine\nARG TAG\nFROM ${BASE}:${TAG:-3.19} AS one\nARG BASE\nARG LOCAL=x\nWORKDIR /$BASE/$LOCAL/$TAG\nFROM one\nWORKDIR sub\nCOPY a b\n";
        let d = parse_ok(text);
        assert_eq!(d.stages[0].base, "alpine:3.19");
        assert_eq!(
            d.args_before_from,
            [
                ("BASE".to_owned(), Some("alpine".to_owned())),
                ("TAG".to_owned(), None)
            ]
        );
        assert_eq!(
            d.stages[0].instructions[3].kind,
            InstructionKind::Workdir("/alpine/x/".into())
        );
        assert_eq!(d.stages[1].base_stage, Some(0));
        let InstructionKind::Copy(copy) = &d.stages[1].instructions[2].kind else {
            panic!()
        };
        assert_eq!(copy.workdir, "/alpine/x/sub");
        assert_eq!(copy.dest_path(), "/alpine/x/sub/b");

        let mut args = BTreeMap::new();
        args.insert("BASE".to_owned(), Some("debian".to_owned()));
        args.insert("TAG".to_owned(), Some("12".to_owned()));
        args.insert("LOCAL".to_owned(), Some("y".to_owned()));
        args.insert("UNUSED".to_owned(), None);
        let d = parse(text, &args).unwrap();
        assert_eq!(d.stages[0].base, "debian:12");
        assert_eq!(
            d.stages[0].instructions[3].kind,
            InstructionKind::Workdir("/debian/y/".into())
        );
        // A global ARG not re-declared in the stage is not visible there.
        let d = parse_ok("ARG V=1\nFROM a\nWORKDIR /$V\n");
        assert_eq!(
            d.stages[0].instructions[1].kind,
            InstructionKind::Workdir("/".into())
        );
        // ENV wins over ARG.
        let d = parse_ok("FROM a\nARG X=arg\nENV X=env\nWORKDIR /$X\n");
        assert_eq!(
            d.stages[0].instructions[3].kind,
            InstructionKind::Workdir("/env".into())
        );
    }

    #[test]
    fn from_forms_and_errors() {
        let d = parse_ok("from --platform=$BUILDPLATFORM golang:1.22 as Build\nfrom scratch\n");
        assert_eq!(d.stages[0].name.as_deref(), Some("build"));
        assert_eq!(d.stages[0].platform.as_deref(), Some("$BUILDPLATFORM"));
        assert_eq!(d.stages[0].instructions[0].keyword, "FROM");
        assert_eq!(d.stages[1].base, "scratch");
        assert_eq!(d.target_stage(None).unwrap(), 1);
        assert_eq!(d.target_stage(Some("BUILD")).unwrap(), 0);
        assert!(
            d.target_stage(Some("nope"))
                .unwrap_err()
                .message
                .contains("build")
        );

        let e = parse_err("RUN echo\nFROM a\n");
        assert_eq!(e.line, 1);
        assert!(e.message.contains("no build stage"), "{e}");
        let e = parse_err("FROM a\n\nFOO bar\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("unknown instruction: FOO"), "{e}");
        let e = parse_err("FROM a\nCOPY onlyone\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("at least two arguments"), "{e}");
        let e = parse_err("FROM a b\n");
        assert!(e.message.contains("one or three"), "{e}");
        let e = parse_err("FROM a AS 1x\n");
        assert!(e.message.contains("invalid name"), "{e}");
        let e = parse_err("FROM a AS x\nFROM b AS X\n");
        assert!(e.message.contains("duplicate"), "{e}");
        let e = parse_err("ARG A\n");
        assert!(e.message.contains("no FROM"), "{e}");
        let e = parse_err("# just a comment\n\n");
        assert!(e.message.contains("no instructions"), "{e}");
        let e = parse_err("FROM ${EMPTY}\n");
        assert!(e.message.contains("should not be blank"), "{e}");
        let e = parse_err("FROM a\nCMD --help\n");
        assert!(e.message.contains("unknown flag: help"), "{e}");
        let e = parse_err("FROM a\nCOPY --link=maybe a b\n");
        assert!(e.message.contains("boolean"), "{e}");
    }

    #[test]
    fn copy_flags_and_stage_dependencies() {
        let text = "FROM golang AS build\nRUN go build\nFROM alpine AS tools\nFROM scratch AS unused\nRUN x\nFROM alpine\nCOPY --from=build --chown=app:app --chmod=755 --link /out /app/\nCOPY --from=nginx:latest /etc/nginx /etc/nginx\nRUN --mount=type=bind,from=tools,source=/bin,target=/t true\n";
        let d = parse_ok(text);
        let InstructionKind::Copy(copy) = &d.stages[3].instructions[1].kind else {
            panic!()
        };
        assert_eq!(copy.from.as_deref(), Some("build"));
        assert_eq!(copy.chown.as_deref(), Some("app:app"));
        assert_eq!(copy.chmod.as_deref(), Some("755"));
        assert!(copy.link);
        assert!(!copy.parents);
        let InstructionKind::Run(run) = &d.stages[3].instructions[3].kind else {
            panic!()
        };
        assert_eq!(run.mounts[0].kind, "bind");
        assert_eq!(run.mounts[0].from.as_deref(), Some("tools"));
        assert_eq!(run.mounts[0].source.as_deref(), Some("/bin"));
        assert_eq!(d.stages_needed(3), [0, 1, 3]);
        assert!(d.has_run());
        assert_eq!(d.stages_needed(2), [2]);
        assert!(!d.stage_has_run(1));
    }

    #[test]
    fn keywords_are_case_insensitive_and_other_instructions_kept() {
        let d = parse_ok(
            "FROM a\nhealthcheck --interval=5s CMD curl -f http://localhost/\nOnBuild RUN <<EOF\necho hi\nEOF\nstopsignal SIGTERM\nlabel a=b \"c d\"=e\nexpose 80/tcp $P\nuser app\nvolume [\"/data\"]\n",
        );
        let ins = &d.stages[0].instructions;
        assert_eq!(ins[1].keyword, "HEALTHCHECK");
        assert_eq!(ins[1].flags[0].name, "interval");
        assert_eq!(
            ins[1].kind,
            InstructionKind::Other("CMD curl -f http://localhost/".into())
        );
        assert_eq!(ins[2].kind, InstructionKind::Other("RUN <<EOF".into()));
        assert_eq!(ins[3].line, 6);
        assert_eq!(
            ins[4].kind,
            InstructionKind::Label(vec![("a".into(), "b".into()), ("c d".into(), "e".into())])
        );
        assert_eq!(
            ins[5].kind,
            InstructionKind::Expose(vec!["80/tcp".into(), String::new()])
        );
        assert_eq!(ins[6].kind, InstructionKind::User("app".into()));
        assert_eq!(ins[7].kind, InstructionKind::Volume(vec!["/data".into()]));
    }

    #[test]
    fn error_converts_to_build_error() {
        let e = parse_err("FROM a\nNOPE\n");
        match e.into_build_error("/ctx/Dockerfile") {
            BuildError::Dockerfile {
                path,
                line,
                message,
            } => {
                assert_eq!(path, PathBuf::from("/ctx/Dockerfile"));
                assert_eq!(line, 2);
                assert!(message.contains("NOPE"));
            }
            other => panic!("{other:?}"),
        }
    }

    /// Proptest cases: `default`, or `SKIFF_FUZZ_CASES` for a longer fuzzing run
    /// (`SKIFF_FUZZ_CASES=100000 cargo test ... fuzz`).
    fn fuzz_cases(default: u32) -> u32 {
        std::env::var("SKIFF_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(fuzz_cases(256)))]
        #[test]
        fn parse_never_panics(text in "(FROM|RUN|COPY|ADD|ENV|ARG|WORKDIR|#|<<|EOF|\\$|\\{|\\}|:|-|\\+|\\?|%|/|\\\\|`|\"|'|\\[|\\]|,| |\t|\n|a|=|AS|--from=|escape=)*") {
            let _ = parse(&text, &BTreeMap::new());
        }

        #[test]
        fn parse_never_panics_on_any_text(text in any::<String>()) {
            let _ = parse(&text, &BTreeMap::new());
            let _ = parse(&format!("FROM a\n{text}"), &BTreeMap::new());
        }

        #[test]
        fn expansion_never_panics(word in "(\\$|\\{|\\}|:|-|\\+|\\?|#|%|/|\\*|\\\\|\"|'|A|b| )*") {
            let vars = [("A", "a/b.c"), ("b", "")];
            let _ = expand_word(&word, '\\', &env(&vars), false);
            let _ = expand_word(&word, '`', &env(&vars), true);
        }
    }
}
