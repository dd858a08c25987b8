//! Skaffold's taggers: what tag an artifact's image gets, plus `--default-repo` rewriting.
//!
//! Every `build.tagPolicy` of `skaffold.yaml` has a [`TagPolicy`] variant and behaves as Skaffold's
//! tagger of the same name:
//!
//! * `gitCommit` runs `git` in the artifact's context ([`GitVariant`] picks the command); a
//!   `-dirty` suffix marks uncommitted changes under the context unless `ignoreChanges` is set.
//!   Outside a git repository (or without `git`) Skaffold falls back to its `sha256` tagger, so
//!   the tag is `latest` and [`TagOutcome::warnings`] says why and how to fix it.
//! * `sha256` yields `latest` (or the tag already written in the image name). Skaffold's
//!   "checksum" tagger never hashes anything itself: the image's digest is appended to the
//!   reference (`name:latest@sha256:…`) when it is pushed or deployed, which is what makes the
//!   reference unique.
//! * `inputDigest` yields the hex digest of the artifact's inputs, computed by
//!   [`crate::cache::cache_key`] and passed in [`TagInputs::input_digest`].
//! * `dateTime` formats the current time with a Go time layout (see [`format_go_time`]) in a
//!   time zone (`Local`, `UTC` or an IANA name).
//! * `envTemplate` renders a template over the environment plus `IMAGE_NAME`.
//! * `customTemplate` renders a template over named component taggers; `GIT`, `DATE` and `SHA`
//!   are predefined, as in Skaffold.
//!
//! The module never reads the process environment: variables arrive in [`TagInputs::env`], and
//! `git` runs with a cleared environment holding only `PATH`, `HOME` and git's own configuration
//! variables from that map.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Offset, Timelike, Utc};
use chrono_tz::{OffsetName, Tz};
use skiff_types::image::ImageRef;
use skiff_types::template::{LayeredVars, Template, Vars};

use crate::BuildError;

/// Skaffold's default `dateTime.format`.
pub const DEFAULT_DATE_TIME_FORMAT: &str = "2006-01-02_15-04-05.999_MST";

/// Docker's maximum tag length; longer git tags are truncated, as Skaffold does.
const MAX_TAG_LENGTH: usize = 128;

/// Skaffold truncates image names longer than this after applying `--default-repo`.
const MAX_IMAGE_NAME_LENGTH: usize = 255;

/// Variables passed from [`TagInputs::env`] to `git`; everything else is cleared.
const GIT_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "XDG_CONFIG_HOME",
    "USERPROFILE",
    "SYSTEMROOT",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
];

/// A `build.tagPolicy`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TagPolicy {
    /// `gitCommit`: the git commit, tag or tree the context is at.
    GitCommit(GitCommitOptions),
    /// `sha256`: `latest`; the digest is appended once the image is pushed or deployed.
    Sha256,
    /// `inputDigest`: the digest of the artifact's inputs (files, build args, builder options).
    InputDigest,
    /// `dateTime`: the current time.
    DateTime {
        /// A Go time layout; `None` means [`DEFAULT_DATE_TIME_FORMAT`].
        format: Option<String>,
        /// `Local` (the default), `UTC` or an IANA zone name such as `Europe/Paris`.
        timezone: Option<String>,
    },
    /// `envTemplate`: a template over the environment and `IMAGE_NAME`.
    EnvTemplate {
        /// The template.
        template: Template,
    },
    /// `customTemplate`: a template over named component taggers.
    CustomTemplate {
        /// The template; it sees the component names (and `GIT`, `DATE`, `SHA`) as variables.
        template: Template,
        /// Named taggers, evaluated before the template. A component cannot itself be a
        /// `customTemplate`.
        components: Vec<(String, TagPolicy)>,
    },
}

/// `gitCommit` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitCommitOptions {
    /// Which git object names the tag.
    pub variant: GitVariant,
    /// Text put before the tag.
    pub prefix: Option<String>,
    /// Do not add `-dirty` when the context has uncommitted changes.
    pub ignore_changes: bool,
}

/// `gitCommit.variant`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum GitVariant {
    /// `Tags` (the default): `git describe --tags --always` — the tag at HEAD, a
    /// `tag-N-gSHA` description, or the abbreviated commit when there is no tag.
    #[default]
    Tags,
    /// `CommitSha`: the full commit SHA of HEAD.
    CommitSha,
    /// `AbbrevCommitSha`: the abbreviated commit SHA of HEAD (7 characters unless ambiguous).
    AbbrevCommitSha,
    /// `TreeSha`: the SHA of the tree of the context directory at HEAD.
    TreeSha,
    /// `AbbrevTreeSha`: the abbreviated SHA of that tree.
    AbbrevTreeSha,
}

impl GitVariant {
    /// The spelling in `skaffold.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            GitVariant::Tags => "Tags",
            GitVariant::CommitSha => "CommitSha",
            GitVariant::AbbrevCommitSha => "AbbrevCommitSha",
            GitVariant::TreeSha => "TreeSha",
            GitVariant::AbbrevTreeSha => "AbbrevTreeSha",
        }
    }
}

/// Why a string is not a [`GitVariant`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a valid git tagger variant; use Tags, CommitSha, AbbrevCommitSha, TreeSha or AbbrevTreeSha"
)]
pub struct UnknownGitVariant(pub String);

impl FromStr for GitVariant {
    type Err = UnknownGitVariant;

    /// Parses a variant case-insensitively, as Skaffold does; the empty string is `Tags`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "" | "tags" => Ok(GitVariant::Tags),
            "commitsha" => Ok(GitVariant::CommitSha),
            "abbrevcommitsha" => Ok(GitVariant::AbbrevCommitSha),
            "treesha" => Ok(GitVariant::TreeSha),
            "abbrevtreesha" => Ok(GitVariant::AbbrevTreeSha),
            _ => Err(UnknownGitVariant(s.to_owned())),
        }
    }
}

/// What a tagger needs to know about the artifact and the moment.
#[derive(Debug, Clone, Copy)]
pub struct TagInputs<'a> {
    /// The image name as configured (`build.artifacts[].image`), before `--default-repo`.
    pub image_name: &'a str,
    /// The artifact's context directory.
    pub context: &'a Path,
    /// Environment variables (for templates, `TZ`, and `PATH`/`HOME` for `git`).
    pub env: &'a BTreeMap<String, String>,
    /// Hex digest of the artifact's inputs, from [`crate::cache::cache_key`]; required by
    /// [`TagPolicy::InputDigest`].
    pub input_digest: Option<&'a str>,
    /// The current time, for `dateTime`.
    pub now: DateTime<Utc>,
}

/// A computed tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagOutcome {
    /// The tag (without the image name).
    pub tag: String,
    /// Things the user should know, e.g. that a fallback tag was used.
    pub warnings: Vec<String>,
}

/// Computes the tag `policy` gives the artifact described by `inputs`.
///
/// Errors: a `dateTime` zone that does not exist, a template variable that is not set, an
/// `inputDigest` without a digest, or a `customTemplate` component that is itself a
/// `customTemplate`. A `gitCommit` tagger that cannot run git falls back to `latest` with a
/// warning instead, like Skaffold.
pub async fn tag(policy: &TagPolicy, inputs: &TagInputs<'_>) -> Result<TagOutcome, BuildError> {
    let mut warnings = Vec::new();
    let tag = match policy {
        TagPolicy::CustomTemplate {
            template,
            components,
        } => custom_template(template, components, inputs, &mut warnings).await?,
        other => match simple_tag(other, inputs, &mut warnings).await? {
            Ok(tag) => tag,
            Err(failure) => {
                warnings.push(failure.fallback_warning(inputs));
                sha256_tag(inputs.image_name)
            }
        },
    };
    Ok(TagOutcome { tag, warnings })
}

/// Evaluates every policy but `customTemplate`. The inner error is a git failure, which the
/// caller turns into the `latest` fallback.
async fn simple_tag(
    policy: &TagPolicy,
    inputs: &TagInputs<'_>,
    warnings: &mut Vec<String>,
) -> Result<Result<String, GitFailure>, BuildError> {
    let tag = match policy {
        TagPolicy::GitCommit(options) => return Ok(git_commit(options, inputs, warnings).await),
        TagPolicy::Sha256 => sha256_tag(inputs.image_name),
        TagPolicy::InputDigest => match inputs.input_digest {
            Some(digest) if !digest.is_empty() => digest.to_owned(),
            _ => {
                return Err(BuildError::Tag {
                    image: inputs.image_name.to_owned(),
                    reason: "the inputDigest tagger needs the artifact's input digest, which was not computed".to_owned(),
                });
            }
        },
        TagPolicy::DateTime { format, timezone } => {
            date_time(format.as_deref(), timezone.as_deref(), inputs, warnings)?
        }
        TagPolicy::EnvTemplate { template } => {
            let image_vars =
                BTreeMap::from([("IMAGE_NAME".to_owned(), inputs.image_name.to_owned())]);
            let vars = LayeredVars(vec![&image_vars, inputs.env as &dyn Vars]);
            template
                .render(&vars)
                .map_err(|source| BuildError::Template {
                    image: inputs.image_name.to_owned(),
                    field: "tagPolicy.envTemplate.template".to_owned(),
                    source,
                })?
        }
        TagPolicy::CustomTemplate { .. } => {
            return Err(BuildError::Tag {
                image: inputs.image_name.to_owned(),
                reason: "a customTemplate component cannot itself be a customTemplate".to_owned(),
            });
        }
    };
    Ok(Ok(tag))
}

/// Skaffold's `customTemplate`: components first (the predefined `GIT`, `DATE` and `SHA` only
/// when the template uses them and no component of that name is given), then the template.
async fn custom_template(
    template: &Template,
    components: &[(String, TagPolicy)],
    inputs: &TagInputs<'_>,
    warnings: &mut Vec<String>,
) -> Result<String, BuildError> {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    for name in template.variables() {
        if components.iter().any(|(component, _)| component == name) {
            continue;
        }
        let predefined = match name {
            "GIT" => TagPolicy::GitCommit(GitCommitOptions::default()),
            "DATE" => TagPolicy::DateTime {
                format: None,
                timezone: None,
            },
            "SHA" => TagPolicy::Sha256,
            _ => continue,
        };
        // Skaffold ignores errors of the predefined components: the value is then empty.
        let value = match simple_tag(&predefined, inputs, warnings).await {
            Ok(Ok(value)) => value,
            Ok(Err(failure)) => {
                warnings.push(format!(
                    "customTemplate: the predefined component {name} is empty: {}",
                    failure.describe(inputs)
                ));
                String::new()
            }
            Err(err) => {
                warnings.push(format!(
                    "customTemplate: the predefined component {name} is empty: {err}"
                ));
                String::new()
            }
        };
        vars.insert(name.to_owned(), value);
    }
    for (name, policy) in components {
        match simple_tag(policy, inputs, warnings).await? {
            Ok(value) => {
                vars.insert(name.clone(), value);
            }
            Err(failure) => {
                // Skaffold fails the whole tagger, then falls back to `sha256`.
                warnings.push(format!(
                    "customTemplate component {name}: {}",
                    failure.fallback_warning(inputs)
                ));
                return Ok(sha256_tag(inputs.image_name));
            }
        }
    }
    template
        .render(&vars)
        .map_err(|source| BuildError::Template {
            image: inputs.image_name.to_owned(),
            field: "tagPolicy.customTemplate.template".to_owned(),
            source,
        })
}

/// The `sha256` tagger: the tag written in the image name, or `latest`.
fn sha256_tag(image_name: &str) -> String {
    match ImageRef::from_str(image_name) {
        Ok(reference) => reference.tag().unwrap_or("latest").to_owned(),
        Err(_) => "latest".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// gitCommit

/// Why git could not name the commit.
#[derive(Debug)]
enum GitFailure {
    /// `git` could not be started.
    NotInstalled(std::io::Error),
    /// `git` ran and failed.
    Failed { args: String, stderr: String },
}

impl GitFailure {
    fn describe(&self, inputs: &TagInputs<'_>) -> String {
        let context = inputs.context.display();
        match self {
            GitFailure::NotInstalled(err) => format!("cannot run git ({err})"),
            GitFailure::Failed { stderr, .. } if stderr.contains("not a git repository") => {
                format!("{context} is not inside a git repository")
            }
            GitFailure::Failed { args, stderr } => {
                format!("`git {args}` in {context} failed: {stderr}")
            }
        }
    }

    fn fallback_warning(&self, inputs: &TagInputs<'_>) -> String {
        let fix = match self {
            GitFailure::NotInstalled(_) => "install git and put it on PATH",
            GitFailure::Failed { stderr, .. } if stderr.contains("not a git repository") => {
                "run `git init` and commit"
            }
            GitFailure::Failed { stderr, .. } if stderr.contains("dubious ownership") => {
                "mark the repository as safe (`git config --global --add safe.directory <repo>`)"
            }
            GitFailure::Failed { .. } => "make sure HEAD has a commit that contains the context",
        };
        format!(
            "the gitCommit tagger cannot tag {}: {}; using the sha256 tagger's tag `latest` instead. To fix, {fix}, or choose another tagPolicy (e.g. `inputDigest: {{}}` or `sha256: {{}}`)",
            inputs.image_name,
            self.describe(inputs)
        )
    }
}

async fn git_commit(
    options: &GitCommitOptions,
    inputs: &TagInputs<'_>,
    warnings: &mut Vec<String>,
) -> Result<String, GitFailure> {
    let git = |args: &'static [&'static str]| {
        run_git(
            inputs.context,
            inputs.env,
            args.iter().map(|a| (*a).to_owned()).collect(),
        )
    };
    let reference = match options.variant {
        GitVariant::Tags => git(&["describe", "--tags", "--always"]).await?,
        GitVariant::CommitSha => git(&["rev-list", "-1", "HEAD"]).await?,
        GitVariant::AbbrevCommitSha => git(&["rev-list", "-1", "HEAD", "--abbrev-commit"]).await?,
        GitVariant::TreeSha | GitVariant::AbbrevTreeSha => {
            // `--show-prefix` is the context's path relative to the top level ("" or "sub/").
            let prefix = git(&["rev-parse", "--show-prefix"]).await?;
            let mut args = vec!["rev-parse".to_owned()];
            if options.variant == GitVariant::AbbrevTreeSha {
                args.push("--short".to_owned());
            }
            args.push(format!("HEAD:{prefix}"));
            run_git(inputs.context, inputs.env, args).await?
        }
    };
    let sanitized = sanitize_tag(&reference);
    if sanitized != reference {
        warnings.push(format!(
            "using {sanitized:?} instead of {reference:?} as an image tag"
        ));
    }
    let prefix = options.prefix.as_deref().unwrap_or("");
    if !options.ignore_changes {
        let changes = git(&["status", ".", "--porcelain"]).await?;
        if !changes.is_empty() {
            return Ok(format!("{prefix}{sanitized}-dirty"));
        }
    }
    Ok(format!("{prefix}{sanitized}"))
}

/// Runs `git -C <context> <args>` with a cleared environment and returns its trimmed stdout.
async fn run_git(
    context: &Path,
    env: &BTreeMap<String, String>,
    args: Vec<String>,
) -> Result<String, GitFailure> {
    let mut command = tokio::process::Command::new("git");
    command
        .arg("-C")
        .arg(context)
        .args(&args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for name in GIT_ENV {
        if let Some(value) = env.get(*name) {
            command.env(name, value);
        }
    }
    // English messages (we look for "not a git repository"), no prompts, and no index lock that
    // could collide with the user's own git commands.
    command
        .env("LC_ALL", "C")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0");
    let output = command.output().await.map_err(GitFailure::NotInstalled)?;
    if !output.status.success() {
        return Err(GitFailure::Failed {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Turns a git reference into a valid Docker tag, as Skaffold does: characters other than
/// `[A-Za-z0-9._-]` become `_`, leading `-` and `.` become `_`, and the result is cut at 128
/// characters.
pub fn sanitize_tag(tag: &str) -> String {
    let mut leading = true;
    let mut out: String = tag
        .chars()
        .map(|c| {
            let c = if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c
            } else {
                '_'
            };
            if leading && matches!(c, '-' | '.') {
                '_'
            } else {
                leading = false;
                c
            }
        })
        .collect();
    out.truncate(MAX_TAG_LENGTH);
    out
}

// ---------------------------------------------------------------------------------------------
// dateTime

fn date_time(
    format: Option<&str>,
    timezone: Option<&str>,
    inputs: &TagInputs<'_>,
    warnings: &mut Vec<String>,
) -> Result<String, BuildError> {
    let layout = format
        .filter(|f| !f.is_empty())
        .unwrap_or(DEFAULT_DATE_TIME_FORMAT);
    let zone = match timezone.filter(|z| !z.is_empty()).unwrap_or("Local") {
        "Local" => local_zone(inputs.env, warnings),
        "UTC" => Tz::UTC,
        name => Tz::from_str(name).map_err(|_| BuildError::Tag {
            image: inputs.image_name.to_owned(),
            reason: format!(
                "bad timezone provided: {name:?}; use `Local`, `UTC` or an IANA time zone name such as `Europe/Paris`"
            ),
        })?,
    };
    Ok(format_go_time(layout, &inputs.now.with_timezone(&zone)))
}

/// Go's `Local`: `TZ` from `env` (empty means UTC, a leading `:` is ignored), else the zone
/// `/etc/localtime` links to, else `/etc/timezone`, else UTC.
fn local_zone(env: &BTreeMap<String, String>, warnings: &mut Vec<String>) -> Tz {
    if let Some(tz) = env.get("TZ") {
        let name = tz.strip_prefix(':').unwrap_or(tz);
        if name.is_empty() {
            return Tz::UTC;
        }
        if let Some(zone) = zone_from_name(name) {
            return zone;
        }
        warnings.push(format!(
            "the TZ environment variable {tz:?} is not a known time zone; the dateTime tagger uses UTC"
        ));
        return Tz::UTC;
    }
    if let Ok(target) = std::fs::read_link("/etc/localtime") {
        if let Some(zone) = target.to_str().and_then(zone_from_name) {
            return zone;
        }
    }
    if let Ok(name) = std::fs::read_to_string("/etc/timezone") {
        if let Some(zone) = zone_from_name(name.trim()) {
            return zone;
        }
    }
    if Path::new("/etc/localtime").exists() {
        warnings.push(
            "cannot tell the local time zone (/etc/localtime is not a link to a zoneinfo file); the dateTime tagger uses UTC — set `timezone` or TZ".to_owned(),
        );
    }
    Tz::UTC
}

/// A zone from an IANA name or a path ending in `zoneinfo/<name>`.
fn zone_from_name(name: &str) -> Option<Tz> {
    let name = match name.rfind("zoneinfo/") {
        Some(i) => &name[i + "zoneinfo/".len()..],
        None => name,
    };
    Tz::from_str(name).ok()
}

/// One element of a Go time layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    UpperPm,
    LowerPm,
    Tz,
    Iso8601Tz,
    Iso8601SecondsTz,
    Iso8601ShortTz,
    Iso8601ColonTz,
    Iso8601ColonSecondsTz,
    NumTz,
    NumSecondsTz,
    NumShortTz,
    NumColonTz,
    NumColonSecondsTz,
    /// Fractional seconds: `.000` (fixed digits) or `.999` (trailing zeros trimmed).
    Frac {
        trim: bool,
        digits: usize,
        separator: char,
    },
}

/// Splits `layout` at its first element, as Go's `nextStdChunk`: text before, the element, text
/// after.
fn next_chunk(layout: &str) -> (&str, Option<Std>, &str) {
    let b = layout.as_bytes();
    let has = |i: usize, s: &str| layout.get(i..).is_some_and(|rest| rest.starts_with(s));
    let lower_at = |i: usize| b.get(i).is_some_and(u8::is_ascii_lowercase);
    let mut i = 0;
    while i < b.len() {
        let found = |std: Std, len: usize| (&layout[..i], Some(std), &layout[i + len..]);
        match b[i] {
            b'J' if has(i, "Jan") => {
                if has(i, "January") {
                    return found(Std::LongMonth, 7);
                }
                if !lower_at(i + 3) {
                    return found(Std::Month, 3);
                }
            }
            b'M' => {
                if has(i, "Mon") {
                    if has(i, "Monday") {
                        return found(Std::LongWeekDay, 6);
                    }
                    if !lower_at(i + 3) {
                        return found(Std::WeekDay, 3);
                    }
                }
                if has(i, "MST") {
                    return found(Std::Tz, 3);
                }
            }
            b'0' => {
                if let Some(&d @ b'1'..=b'6') = b.get(i + 1) {
                    let std = [
                        Std::ZeroMonth,
                        Std::ZeroDay,
                        Std::ZeroHour12,
                        Std::ZeroMinute,
                        Std::ZeroSecond,
                        Std::Year,
                    ][usize::from(d - b'1')];
                    return found(std, 2);
                }
                if has(i, "002") {
                    return found(Std::ZeroYearDay, 3);
                }
            }
            b'1' => {
                if has(i, "15") {
                    return found(Std::Hour, 2);
                }
                return found(Std::NumMonth, 1);
            }
            b'2' => {
                if has(i, "2006") {
                    return found(Std::LongYear, 4);
                }
                return found(Std::Day, 1);
            }
            b'_' => {
                if has(i, "_2") {
                    // `_2006` is a literal `_` followed by the year.
                    if has(i, "_2006") {
                        return (&layout[..i + 1], Some(Std::LongYear), &layout[i + 5..]);
                    }
                    return found(Std::UnderDay, 2);
                }
                if has(i, "__2") {
                    return found(Std::UnderYearDay, 3);
                }
            }
            b'3' => return found(Std::Hour12, 1),
            b'4' => return found(Std::Minute, 1),
            b'5' => return found(Std::Second, 1),
            b'P' if has(i, "PM") => return found(Std::UpperPm, 2),
            b'p' if has(i, "pm") => return found(Std::LowerPm, 2),
            b'-' => {
                for (text, std) in [
                    ("-070000", Std::NumSecondsTz),
                    ("-07:00:00", Std::NumColonSecondsTz),
                    ("-0700", Std::NumTz),
                    ("-07:00", Std::NumColonTz),
                    ("-07", Std::NumShortTz),
                ] {
                    if has(i, text) {
                        return found(std, text.len());
                    }
                }
            }
            b'Z' => {
                for (text, std) in [
                    ("Z070000", Std::Iso8601SecondsTz),
                    ("Z07:00:00", Std::Iso8601ColonSecondsTz),
                    ("Z0700", Std::Iso8601Tz),
                    ("Z07:00", Std::Iso8601ColonTz),
                    ("Z07", Std::Iso8601ShortTz),
                ] {
                    if has(i, text) {
                        return found(std, text.len());
                    }
                }
            }
            c @ (b'.' | b',') => {
                if let Some(&digit @ (b'0' | b'9')) = b.get(i + 1) {
                    let mut j = i + 1;
                    while b.get(j) == Some(&digit) {
                        j += 1;
                    }
                    // Only a fractional second if the run of digits ends here.
                    if !b.get(j).is_some_and(u8::is_ascii_digit) {
                        let std = Std::Frac {
                            trim: digit == b'9',
                            digits: j - (i + 1),
                            separator: char::from(c),
                        };
                        return found(std, j - i);
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    (layout, None, "")
}

/// Appends `value` zero-padded to `width` digits (Go's `appendInt`).
fn push_int(out: &mut String, value: i64, width: usize) {
    if value < 0 {
        out.push('-');
    }
    let digits = value.unsigned_abs().to_string();
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(&digits);
}

const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Formats `time` with a Go time layout, as Go's `time.Time.Format` does.
///
/// The layout is written for Go's reference time `Mon Jan 2 15:04:05 MST 2006`; every element
/// Go knows is supported: `2006 06 01 1 Jan January 02 2 _2 002 __2 15 03 3 04 4 05 5 PM pm Mon
/// Monday MST -0700 -07:00 -07 -070000 -07:00:00 Z0700 Z07:00 Z07 Z070000 Z07:00:00`, and
/// fractional seconds `.000`/`,000` (fixed digits) and `.999`/`,999` (trailing zeros — and the
/// separator, when nothing is left — removed). Everything else is copied literally.
///
/// `MST` prints the zone's abbreviation (`UTC`, `CET`, `EST`); zones whose tz database
/// abbreviation is numeric print it the same way (`+0530`, `-03`).
///
/// ```
/// use chrono::TimeZone;
/// use skiff_build::tag::{format_go_time, DEFAULT_DATE_TIME_FORMAT};
///
/// let t = chrono_tz::UTC.with_ymd_and_hms(2024, 3, 9, 7, 5, 9).unwrap();
/// assert_eq!(format_go_time(DEFAULT_DATE_TIME_FORMAT, &t), "2024-03-09_07-05-09_UTC");
/// assert_eq!(format_go_time("Jan _2 3:04PM", &t), "Mar  9 7:05AM");
/// ```
pub fn format_go_time(layout: &str, time: &DateTime<Tz>) -> String {
    let offset = time.offset().fix().local_minus_utc();
    let zone_name = match time.offset().abbreviation() {
        Some(name) => name.to_owned(),
        None => numeric_zone_name(offset),
    };
    let year = i64::from(time.year());
    let month0 = time.month0() as usize;
    let day = i64::from(time.day());
    let hour = i64::from(time.hour());
    let minute = i64::from(time.minute());
    let second = i64::from(time.second());
    // A leap second shows as nanosecond >= 1e9 in chrono; Go has none.
    let nanos = i64::from(time.nanosecond() % 1_000_000_000);
    let year_day = i64::from(time.ordinal());
    let weekday = time.weekday().num_days_from_sunday() as usize;

    let mut out = String::with_capacity(layout.len() + 10);
    let mut rest = layout;
    loop {
        let (prefix, std, suffix) = next_chunk(rest);
        out.push_str(prefix);
        let Some(std) = std else { break };
        rest = suffix;
        match std {
            Std::Year => push_int(&mut out, year.rem_euclid(100), 2),
            Std::LongYear => push_int(&mut out, year, 4),
            Std::Month => out.push_str(&LONG_MONTHS[month0][..3]),
            Std::LongMonth => out.push_str(LONG_MONTHS[month0]),
            Std::NumMonth => push_int(&mut out, month0 as i64 + 1, 0),
            Std::ZeroMonth => push_int(&mut out, month0 as i64 + 1, 2),
            Std::WeekDay => out.push_str(&LONG_DAYS[weekday][..3]),
            Std::LongWeekDay => out.push_str(LONG_DAYS[weekday]),
            Std::Day => push_int(&mut out, day, 0),
            Std::UnderDay => {
                if day < 10 {
                    out.push(' ');
                }
                push_int(&mut out, day, 0);
            }
            Std::ZeroDay => push_int(&mut out, day, 2),
            Std::UnderYearDay => {
                if year_day < 100 {
                    out.push(' ');
                    if year_day < 10 {
                        out.push(' ');
                    }
                }
                push_int(&mut out, year_day, 0);
            }
            Std::ZeroYearDay => push_int(&mut out, year_day, 3),
            Std::Hour => push_int(&mut out, hour, 2),
            Std::Hour12 | Std::ZeroHour12 => {
                let h = match hour % 12 {
                    0 => 12,
                    h => h,
                };
                push_int(&mut out, h, if std == Std::Hour12 { 0 } else { 2 });
            }
            Std::Minute => push_int(&mut out, minute, 0),
            Std::ZeroMinute => push_int(&mut out, minute, 2),
            Std::Second => push_int(&mut out, second, 0),
            Std::ZeroSecond => push_int(&mut out, second, 2),
            Std::UpperPm => out.push_str(if hour >= 12 { "PM" } else { "AM" }),
            Std::LowerPm => out.push_str(if hour >= 12 { "pm" } else { "am" }),
            Std::Tz => out.push_str(&zone_name),
            Std::Iso8601Tz
            | Std::Iso8601SecondsTz
            | Std::Iso8601ShortTz
            | Std::Iso8601ColonTz
            | Std::Iso8601ColonSecondsTz
            | Std::NumTz
            | Std::NumSecondsTz
            | Std::NumShortTz
            | Std::NumColonTz
            | Std::NumColonSecondsTz => push_numeric_zone(&mut out, std, offset),
            Std::Frac {
                trim,
                digits,
                separator,
            } => push_fraction(&mut out, nanos, trim, digits, separator),
        }
    }
    out
}

/// The tz database's spelling of an unnamed zone: `+03`, `-0330`.
fn numeric_zone_name(offset: i32) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let minutes = offset.unsigned_abs() / 60;
    if minutes % 60 == 0 {
        format!("{sign}{:02}", minutes / 60)
    } else {
        format!("{sign}{:02}{:02}", minutes / 60, minutes % 60)
    }
}

fn push_numeric_zone(out: &mut String, std: Std, offset: i32) {
    let iso = matches!(
        std,
        Std::Iso8601Tz
            | Std::Iso8601SecondsTz
            | Std::Iso8601ShortTz
            | Std::Iso8601ColonTz
            | Std::Iso8601ColonSecondsTz
    );
    if iso && offset == 0 {
        out.push('Z');
        return;
    }
    let colon = matches!(
        std,
        Std::Iso8601ColonTz | Std::Iso8601ColonSecondsTz | Std::NumColonTz | Std::NumColonSecondsTz
    );
    let short = matches!(std, Std::Iso8601ShortTz | Std::NumShortTz);
    let seconds = matches!(
        std,
        Std::Iso8601SecondsTz
            | Std::NumSecondsTz
            | Std::Iso8601ColonSecondsTz
            | Std::NumColonSecondsTz
    );
    out.push(if offset < 0 { '-' } else { '+' });
    let abs = i64::from(offset.unsigned_abs());
    let zone = abs / 60;
    push_int(out, zone / 60, 2);
    if !short {
        if colon {
            out.push(':');
        }
        push_int(out, zone % 60, 2);
    }
    if seconds {
        if colon {
            out.push(':');
        }
        push_int(out, abs % 60, 2);
    }
}

fn push_fraction(out: &mut String, nanos: i64, trim: bool, digits: usize, separator: char) {
    if trim && (digits == 0 || nanos == 0) {
        return;
    }
    let mut fraction = format!("{nanos:09}");
    fraction.truncate(digits.min(9));
    if trim {
        let kept = fraction.trim_end_matches('0').len();
        fraction.truncate(kept);
        if fraction.is_empty() {
            return;
        }
    }
    out.push(separator);
    out.push_str(&fraction);
}

// ---------------------------------------------------------------------------------------------
// References

/// Applies Skaffold's `--default-repo` to an image name, as Skaffold's
/// `SubstituteDefaultRepoIntoImage` does.
///
/// * No default repo, or the image already starts with it: unchanged.
/// * A default repo on a registry with multi-level repositories (`gcr.io` and its regional
///   hosts, `*-docker.pkg.dev`), written as `<host>/<project>…`: the image is appended to it,
///   keeping its path (`gcr.io/default` + `gcr.io/some/app` → `gcr.io/default/gcr.io/some/app`);
///   when the image is on the same `<host>/<project>` only the rest of its path is appended.
/// * Any other default repo: the image's `/`, `.`, `_`, `:` and `@` become `_` and the result is
///   appended (`localhost:5000` + `gcr.io/some/app` → `localhost:5000/gcr_io_some_app`).
///
/// The name is cut at 255 characters; a tag or digest on the image is kept.
/// (Skaffold's `multi-level-repo` global-config override is not supported.)
pub fn apply_default_repo(image: &str, default_repo: Option<&str>) -> String {
    let Some(default_repo) = default_repo.filter(|r| !r.is_empty()) else {
        return image.to_owned();
    };
    let (name, suffix) = split_name(image);
    let mut replaced = if name.starts_with(default_repo) {
        name.to_owned()
    } else {
        let original_prefix = gcp_prefix(name);
        let default_prefix = gcp_prefix(default_repo);
        if default_prefix.contains("gcr.io") || default_prefix.contains("-docker.pkg.dev") {
            if original_prefix == default_prefix {
                format!("{default_repo}/{}", &name[original_prefix.len()..])
            } else {
                format!("{default_repo}/{name}")
            }
        } else {
            let escaped: String = name
                .chars()
                .map(|c| {
                    if matches!(c, '/' | '.' | '_' | ':' | '@') {
                        '_'
                    } else {
                        c
                    }
                })
                .collect();
            format!("{default_repo}/{escaped}")
        }
    };
    if replaced.len() > MAX_IMAGE_NAME_LENGTH {
        let mut end = MAX_IMAGE_NAME_LENGTH;
        while !replaced.is_char_boundary(end) {
            end -= 1;
        }
        replaced.truncate(end);
    }
    replaced.push_str(suffix);
    replaced
}

/// Splits `name[:tag][@digest]` into the name and the rest (`:tag@digest`).
fn split_name(image: &str) -> (&str, &str) {
    let without_digest = image.find('@').unwrap_or(image.len());
    let last_slash = image[..without_digest].rfind('/').map_or(0, |i| i + 1);
    let end = image[last_slash..without_digest]
        .find(':')
        .map_or(without_digest, |i| last_slash + i);
    (&image[..end], &image[end..])
}

/// The start of `name` matching Skaffold's `^<domain>/<gcp project id>/?` (empty when it does
/// not match): a registry host (dot-separated labels, optional port), a slash, then a GCP
/// project ID (`[a-z][a-z0-9-]{4,28}[a-z0-9]`), then an optional slash.
fn gcp_prefix(name: &str) -> &str {
    let Some(slash) = name.find('/') else {
        return "";
    };
    if !is_domain(&name[..slash]) {
        return "";
    }
    let project = &name.as_bytes()[slash + 1..];
    if !project.first().is_some_and(u8::is_ascii_lowercase) {
        return "";
    }
    let run = project
        .iter()
        .take(30)
        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || **c == b'-')
        .count();
    // The longest length in 6..=run whose last character is not `-`.
    let Some(len) = (6..=run).rev().find(|&len| project[len - 1] != b'-') else {
        return "";
    };
    let mut end = slash + 1 + len;
    if name.as_bytes().get(end) == Some(&b'/') {
        end += 1;
    }
    &name[..end]
}

/// Docker's `DomainRegexp`: labels of letters, digits and inner `-`, separated by `.`,
/// optionally followed by `:port`.
fn is_domain(host: &str) -> bool {
    let (labels, port) = match host.split_once(':') {
        Some((labels, port)) => (labels, Some(port)),
        None => (host, None),
    };
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    labels.split('.').all(label_ok)
        && port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// `image` tagged with `tag` (replacing any tag and digest it had), checked as an image
/// reference. The tag must be a valid Docker tag: up to 128 of `[A-Za-z0-9_.-]`, not starting
/// with `.` or `-`.
pub fn tagged(image: &str, tag: &str) -> Result<ImageRef, BuildError> {
    let invalid = |reason: String| BuildError::Tag {
        image: image.to_owned(),
        reason,
    };
    let valid_tag = !tag.is_empty()
        && tag.len() <= MAX_TAG_LENGTH
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !tag.starts_with(['.', '-']);
    if !valid_tag {
        return Err(invalid(format!(
            "{tag:?} is not a valid image tag: a tag is 1 to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
        )));
    }
    let reference = ImageRef::from_str(image).map_err(|err| invalid(err.to_string()))?;
    Ok(reference.with_tag(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_follow_go() {
        assert_eq!(next_chunk("Jann"), ("Jann", None, ""));
        assert_eq!(next_chunk("Month"), ("Month", None, ""));
        assert_eq!(next_chunk("x_2006"), ("x_", Some(Std::LongYear), ""));
        assert_eq!(
            next_chunk(".000x"),
            (
                "",
                Some(Std::Frac {
                    trim: false,
                    digits: 3,
                    separator: '.'
                }),
                "x"
            )
        );
        // `.001` is not a fraction (the zeros are followed by a digit): `01` is the month.
        assert_eq!(next_chunk(".001"), (".0", Some(Std::ZeroMonth), ""));
    }

    #[test]
    fn gcp_prefixes() {
        assert_eq!(gcp_prefix("gcr.io/default/app"), "gcr.io/default/");
        assert_eq!(gcp_prefix("gcr.io/default"), "gcr.io/default");
        assert_eq!(gcp_prefix("gcr.io/some/app"), "");
        assert_eq!(gcp_prefix("app"), "");
        assert_eq!(
            gcp_prefix("localhost:5000/project-x"),
            "localhost:5000/project-x"
        );
        assert_eq!(gcp_prefix("gcr.io/proj-/x"), "");
        assert_eq!(gcp_prefix("gcr.io/proj-ab-/x"), "gcr.io/proj-ab");
    }

    #[test]
    fn split_names() {
        assert_eq!(split_name("a/b:c@sha256:00"), ("a/b", ":c@sha256:00"));
        assert_eq!(split_name("localhost:5000/a"), ("localhost:5000/a", ""));
        assert_eq!(split_name("a@sha256:00"), ("a", "@sha256:00"));
    }
}
