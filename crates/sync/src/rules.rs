//! Sync rules and the pure decision: sync the changed files, or rebuild (and why).
//!
//! Paths in the container: a manual rule's `dest` is absolute, or relative to the image's
//! `WORKDIR`. Relative destinations are carried as relative paths in the [`SyncPlan`]; each
//! transport resolves them in the container it writes to (Docker: the container's working
//! directory; Kubernetes: `tar` and `rm` run in the container's working directory).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobMatcher};

use crate::{FileCopy, FileDelete, SyncPlan};

/// An artifact's sync rules (`build.artifacts[].sync`), typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncRules {
    /// `sync.manual`.
    pub manual: Vec<ManualRule>,
    /// `sync.infer` with the Dockerfile's copy map; `sync: {}` is `infer: ["**/*"]`.
    pub infer: Option<InferRules>,
    /// `sync.auto`: not supported; a change rebuilds.
    pub auto: bool,
    /// `sync.hooks`.
    pub hooks: SyncHooks,
}

impl SyncRules {
    /// No rule would ever sync a file.
    pub fn is_empty(&self) -> bool {
        self.manual.is_empty() && self.infer.is_none() && !self.auto
    }
}

/// One `sync.manual` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualRule {
    /// Glob relative to the context (`/`-separated, `**` for nested directories).
    pub src: String,
    /// Destination directory: absolute, or relative to the image's `WORKDIR`.
    pub dest: String,
    /// Prefix removed from the file's context-relative path before joining it to `dest`.
    pub strip: Option<String>,
}

/// `sync.infer`: which files may sync, and where the Dockerfile's last stage copies them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InferRules {
    /// Globs relative to the context.
    pub globs: Vec<String>,
    /// The final stage's `COPY`/`ADD` map.
    pub copies: Vec<InferredCopy>,
}

/// One file of the Dockerfile's copy map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferredCopy {
    /// The file, relative to the context.
    pub source: PathBuf,
    /// Its absolute path in the image.
    pub dest: String,
}

/// `sync.hooks`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncHooks {
    /// Run before the files are copied.
    pub before: Vec<SyncHook>,
    /// Run after the files are copied (a container hook here is how a process is restarted).
    pub after: Vec<SyncHook>,
}

impl SyncHooks {
    /// No hooks.
    pub fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after.is_empty()
    }
}

/// One hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncHook {
    /// A command on the host.
    Host(skiff_hooks::HostHook),
    /// A command in every synced container.
    Container {
        /// The command and its arguments.
        command: Vec<String>,
    },
}

/// What to do about a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every changed file maps into the container: copy and delete these.
    Sync(SyncPlan),
    /// Rebuild the image.
    Rebuild {
        /// Why, naming the file that forced it.
        reason: String,
    },
}

fn glob(pattern: &str) -> Option<GlobMatcher> {
    let pattern = pattern.trim_start_matches("./");
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .ok()
        .map(|g: Glob| g.compile_matcher())
}

/// `path` relative to `context`, `/`-separated and without `.`/`..`; `None` when it is not
/// inside the context.
fn relative(context: &Path, path: &Path) -> Option<String> {
    let rel = if path.is_absolute() {
        path.strip_prefix(context).ok()?
    } else {
        path
    };
    let mut parts: Vec<String> = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?.to_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Joins and normalises container path `base` and `rest`; `None` when `..` would climb out of
/// the root (absolute) or out of the working directory (relative).
pub fn container_path(base: &str, rest: &str) -> Option<String> {
    let absolute = base.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in base.split('/').chain(rest.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    if absolute {
        Some(format!("/{joined}"))
    } else if joined.is_empty() {
        None
    } else {
        Some(joined)
    }
}

/// The infer globs, and each source's destinations.
type InferMatch<'a> = (Vec<GlobMatcher>, BTreeMap<&'a Path, Vec<&'a str>>);

/// Where the manual rules put `rel`, or why one of them cannot.
fn manual_dests(rules: &[ManualRule], rel: &str) -> Result<Vec<String>, String> {
    let mut dests = Vec::new();
    for rule in rules {
        let Some(matcher) = glob(&rule.src) else {
            return Err(format!(
                "sync.manual src `{}` is not a valid glob",
                rule.src
            ));
        };
        if !matcher.is_match(rel) {
            continue;
        }
        let stripped = match rule.strip.as_deref() {
            Some(strip) if !strip.is_empty() => rel.strip_prefix(strip).unwrap_or(rel),
            _ => rel,
        };
        match container_path(&rule.dest, stripped) {
            Some(dest) => dests.push(dest),
            None => {
                return Err(format!(
                    "{rel}: sync.manual dest `{}` leaves the container's root or WORKDIR",
                    rule.dest
                ));
            }
        }
    }
    Ok(dests)
}

/// Decides whether the `changed` and `deleted` files of an artifact whose context is
/// `context` can be synced with `rules`, or whether the image must be rebuilt.
///
/// Paths are absolute (or relative to `context`). Every changed file must map to at least one
/// destination: first through the manual rules (every matching rule gives one), else through
/// `infer` (it must match an infer glob *and* be copied by the Dockerfile's last stage). A
/// deleted file is deleted at the manual rules' destinations; a deletion under `infer` rebuilds,
/// as Skaffold does. `sync.auto` always rebuilds. Files outside the context rebuild.
///
/// ```
/// use std::path::{Path, PathBuf};
/// use skiff_sync::rules::{decide, Decision, ManualRule, SyncRules};
///
/// let rules = SyncRules {
///     manual: vec![ManualRule { src: "www/**".into(), dest: "/srv/www".into(), strip: Some("www/".into()) }],
///     ..SyncRules::default()
/// };
/// let context = Path::new("/app");
/// let Decision::Sync(plan) = decide(context, &rules, &[PathBuf::from("/app/www/a/index.html")], &[]) else {
///     panic!("should sync");
/// };
/// assert_eq!(plan.copy[0].destination, "/srv/www/a/index.html");
///
/// let decision = decide(context, &rules, &[PathBuf::from("/app/main.c")], &[]);
/// assert!(matches!(decision, Decision::Rebuild { reason } if reason.starts_with("main.c")));
/// ```
pub fn decide(
    context: &Path,
    rules: &SyncRules,
    changed: &[PathBuf],
    deleted: &[PathBuf],
) -> Decision {
    let rebuild = |reason: String| Decision::Rebuild { reason };
    if rules.auto {
        return rebuild(
            "sync.auto (Jib and Buildpacks) is not supported by skiff; use sync.manual or \
             sync.infer"
                .to_owned(),
        );
    }
    let infer: Option<InferMatch<'_>> = match rules.infer.as_ref() {
        None => None,
        Some(infer) => {
            let mut globs = Vec::new();
            for pattern in &infer.globs {
                match glob(pattern) {
                    Some(matcher) => globs.push(matcher),
                    None => {
                        return rebuild(format!(
                            "sync.infer pattern `{pattern}` is not a valid glob"
                        ));
                    }
                }
            }
            let mut map: BTreeMap<&Path, Vec<&str>> = BTreeMap::new();
            for copy in &infer.copies {
                map.entry(copy.source.as_path())
                    .or_default()
                    .push(copy.dest.as_str());
            }
            Some((globs, map))
        }
    };
    let mut plan = SyncPlan {
        context: context.to_path_buf(),
        ..SyncPlan::default()
    };
    for path in changed {
        let Some(rel) = relative(context, path) else {
            return rebuild(format!(
                "{} is outside the artifact's context {}",
                path.display(),
                context.display()
            ));
        };
        let dests = match manual_dests(&rules.manual, &rel) {
            Ok(dests) => dests,
            Err(reason) => return rebuild(reason),
        };
        let dests = if !dests.is_empty() {
            dests
        } else if let Some((globs, map)) = &infer {
            if !globs.iter().any(|g| g.is_match(&rel)) {
                return rebuild(format!("{rel} matches no sync rule"));
            }
            match map.get(Path::new(&rel)) {
                // The copy map comes from a Dockerfile: normalise it like a manual `dest`.
                Some(dests) => {
                    let mut normalised = Vec::new();
                    for dest in dests {
                        match container_path(dest, "") {
                            Some(dest) => normalised.push(dest),
                            None => {
                                return rebuild(format!(
                                    "{rel}: the Dockerfile copies it to {dest}, which leaves \
                                     the container's root or WORKDIR"
                                ));
                            }
                        }
                    }
                    normalised
                }
                None => {
                    return rebuild(format!(
                        "{rel} matches sync.infer, but the Dockerfile's final stage does not \
                         copy it"
                    ));
                }
            }
        } else {
            return rebuild(format!("{rel} matches no sync rule"));
        };
        let source = context.join(&rel);
        for destination in dests {
            plan.copy.push(FileCopy {
                source: source.clone(),
                destination,
            });
        }
    }
    for path in deleted {
        let Some(rel) = relative(context, path) else {
            return rebuild(format!(
                "{} is outside the artifact's context {}",
                path.display(),
                context.display()
            ));
        };
        let dests = match manual_dests(&rules.manual, &rel) {
            Ok(dests) => dests,
            Err(reason) => return rebuild(reason),
        };
        if dests.is_empty() {
            let why = if infer.is_some() {
                "was deleted; sync.infer rebuilds on deletions"
            } else {
                "was deleted and matches no sync rule"
            };
            return rebuild(format!("{rel} {why}"));
        }
        let source = context.join(&rel);
        for destination in dests {
            plan.delete.push(FileDelete {
                source: source.clone(),
                destination,
            });
        }
    }
    plan.hooks = rules.hooks.clone();
    Decision::Sync(plan)
}

/// What each rule maps to, for `skiff diagnose`: one line per manual rule, and one per
/// inferred copy matched by the infer globs.
pub fn describe(rules: &SyncRules) -> Vec<String> {
    let mut lines = Vec::new();
    for rule in &rules.manual {
        let strip = match rule.strip.as_deref() {
            Some(strip) if !strip.is_empty() => format!(", strip {strip}"),
            _ => String::new(),
        };
        let relative = if rule.dest.starts_with('/') {
            ""
        } else {
            ", relative to WORKDIR"
        };
        lines.push(format!(
            "{} → {} (manual{relative}{strip})",
            rule.src, rule.dest
        ));
    }
    if let Some(infer) = &rules.infer {
        let globs: Vec<GlobMatcher> = infer.globs.iter().filter_map(|g| glob(g)).collect();
        lines.push(format!("infer {}", infer.globs.join(", ")));
        for copy in &infer.copies {
            let source = copy.source.to_string_lossy().replace('\\', "/");
            if globs.iter().any(|g| g.is_match(&source)) {
                lines.push(format!(
                    "{source} → {} (inferred from the Dockerfile)",
                    copy.dest
                ));
            }
        }
    }
    if rules.auto {
        lines.push("auto: not supported by skiff, changes rebuild".to_owned());
    }
    for (when, hooks) in [
        ("before", &rules.hooks.before),
        ("after", &rules.hooks.after),
    ] {
        for hook in hooks {
            let (kind, command) = match hook {
                SyncHook::Host(host) => ("host", &host.command),
                SyncHook::Container { command } => ("container", command),
            };
            lines.push(format!("hook {when} sync ({kind}): {}", command.join(" ")));
        }
    }
    lines
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn manual(src: &str, dest: &str, strip: Option<&str>) -> ManualRule {
        ManualRule {
            src: src.into(),
            dest: dest.into(),
            strip: strip.map(Into::into),
        }
    }

    fn rules(manual: Vec<ManualRule>) -> SyncRules {
        SyncRules {
            manual,
            ..SyncRules::default()
        }
    }

    fn infer(globs: &[&str], copies: &[(&str, &str)]) -> SyncRules {
        SyncRules {
            infer: Some(InferRules {
                globs: globs.iter().map(|g| (*g).to_owned()).collect(),
                copies: copies
                    .iter()
                    .map(|(s, d)| InferredCopy {
                        source: PathBuf::from(s),
                        dest: (*d).to_owned(),
                    })
                    .collect(),
            }),
            ..SyncRules::default()
        }
    }

    const CONTEXT: &str = "/ctx";

    fn paths(files: &[&str]) -> Vec<PathBuf> {
        files.iter().map(|f| Path::new(CONTEXT).join(f)).collect()
    }

    fn sync(rules: &SyncRules, changed: &[&str], deleted: &[&str]) -> SyncPlan {
        match decide(Path::new(CONTEXT), rules, &paths(changed), &paths(deleted)) {
            Decision::Sync(plan) => plan,
            Decision::Rebuild { reason } => panic!("expected a sync, got rebuild: {reason}"),
        }
    }

    fn reason(rules: &SyncRules, changed: &[&str], deleted: &[&str]) -> String {
        match decide(Path::new(CONTEXT), rules, &paths(changed), &paths(deleted)) {
            Decision::Sync(plan) => panic!("expected a rebuild, got {plan:?}"),
            Decision::Rebuild { reason } => reason,
        }
    }

    fn dests(plan: &SyncPlan) -> Vec<&str> {
        plan.copy.iter().map(|c| c.destination.as_str()).collect()
    }

    #[test]
    fn manual_with_strip_and_absolute_dest() {
        let r = rules(vec![manual("www/**", "/srv/www", Some("www/"))]);
        let plan = sync(&r, &["www/msg.txt", "www/css/a.css"], &[]);
        assert_eq!(dests(&plan), ["/srv/www/msg.txt", "/srv/www/css/a.css"]);
        assert_eq!(plan.copy[0].source, Path::new("/ctx/www/msg.txt"));
        assert_eq!(plan.context, Path::new(CONTEXT));
    }

    #[test]
    fn manual_without_strip_keeps_the_path() {
        let r = rules(vec![manual("www/*.txt", "/srv", None)]);
        assert_eq!(
            dests(&sync(&r, &["www/msg.txt"], &[])),
            ["/srv/www/msg.txt"]
        );
    }

    #[test]
    fn strip_that_does_not_prefix_keeps_the_path() {
        let r = rules(vec![manual("**/*.txt", "/srv", Some("static/"))]);
        assert_eq!(dests(&sync(&r, &["www/a.txt"], &[])), ["/srv/www/a.txt"]);
    }

    #[test]
    fn strip_without_trailing_slash() {
        let r = rules(vec![manual("www/**", "/srv", Some("www"))]);
        assert_eq!(dests(&sync(&r, &["www/a.txt"], &[])), ["/srv/a.txt"]);
    }

    #[test]
    fn relative_dest_stays_relative_to_workdir() {
        let r = rules(vec![manual("src/**/*.js", "app", Some("src/"))]);
        assert_eq!(dests(&sync(&r, &["src/lib/u.js"], &[])), ["app/lib/u.js"]);
        let r = rules(vec![manual("*.js", ".", None)]);
        assert_eq!(dests(&sync(&r, &["index.js"], &[])), ["index.js"]);
    }

    #[test]
    fn single_star_does_not_cross_directories() {
        let r = rules(vec![manual("*.txt", "/srv", None)]);
        assert_eq!(
            reason(&r, &["www/a.txt"], &[]),
            "www/a.txt matches no sync rule"
        );
        assert_eq!(dests(&sync(&r, &["a.txt"], &[])), ["/srv/a.txt"]);
    }

    #[test]
    fn leading_dot_slash_in_src_is_ignored() {
        let r = rules(vec![manual("./www/**", "/srv", Some("www/"))]);
        assert_eq!(dests(&sync(&r, &["www/a"], &[])), ["/srv/a"]);
    }

    #[test]
    fn every_matching_rule_copies() {
        let r = rules(vec![
            manual("www/**", "/srv/www", Some("www/")),
            manual("**/*.txt", "/backup", None),
        ]);
        assert_eq!(
            dests(&sync(&r, &["www/a.txt"], &[])),
            ["/srv/www/a.txt", "/backup/www/a.txt"]
        );
    }

    #[test]
    fn one_unmatched_file_rebuilds_naming_it() {
        let r = rules(vec![manual("www/**", "/srv/www", Some("www/"))]);
        assert_eq!(
            reason(&r, &["www/a.txt", "main.c"], &[]),
            "main.c matches no sync rule"
        );
    }

    #[test]
    fn dest_with_dotdot_cannot_escape() {
        let r = rules(vec![manual("**", "../up", None)]);
        assert!(reason(&r, &["a"], &[]).contains("leaves the container's root or WORKDIR"));
        let r = rules(vec![manual("**", "/srv/../../x", None)]);
        assert!(reason(&r, &["a"], &[]).contains("leaves"));
        // Inside the root, `..` is resolved.
        let r = rules(vec![manual("**", "/srv/../etc", None)]);
        assert_eq!(dests(&sync(&r, &["a"], &[])), ["/etc/a"]);
    }

    #[test]
    fn files_outside_the_context_rebuild() {
        let r = rules(vec![manual("**", "/srv", None)]);
        let decision = decide(
            Path::new(CONTEXT),
            &r,
            &[PathBuf::from("/elsewhere/a.txt")],
            &[],
        );
        assert!(
            matches!(decision, Decision::Rebuild { reason } if reason.contains("outside the artifact's context"))
        );
        let decision = decide(Path::new(CONTEXT), &r, &[PathBuf::from("../x")], &[]);
        assert!(matches!(decision, Decision::Rebuild { .. }));
    }

    #[test]
    fn manual_deletes_the_mapped_path() {
        let r = rules(vec![manual("www/**", "/srv/www", Some("www/"))]);
        let plan = sync(&r, &[], &["www/old.txt"]);
        assert!(plan.copy.is_empty());
        assert_eq!(plan.delete[0].destination, "/srv/www/old.txt");
        assert_eq!(plan.delete[0].source, Path::new("/ctx/www/old.txt"));
    }

    #[test]
    fn unmatched_deletion_rebuilds() {
        let r = rules(vec![manual("www/**", "/srv/www", None)]);
        assert_eq!(
            reason(&r, &[], &["main.c"]),
            "main.c was deleted and matches no sync rule"
        );
    }

    #[test]
    fn infer_uses_the_copy_map() {
        let r = infer(
            &["**/*.html", "*.json"],
            &[
                ("static/index.html", "/app/static/index.html"),
                ("package.json", "/app/package.json"),
                ("main.go", "/src/main.go"),
            ],
        );
        let plan = sync(&r, &["static/index.html", "package.json"], &[]);
        assert_eq!(
            dests(&plan),
            ["/app/static/index.html", "/app/package.json"]
        );
    }

    #[test]
    fn infer_rebuilds_when_a_glob_does_not_match() {
        let r = infer(&["**/*.html"], &[("main.go", "/src/main.go")]);
        assert_eq!(
            reason(&r, &["main.go"], &[]),
            "main.go matches no sync rule"
        );
    }

    #[test]
    fn infer_rebuilds_when_the_dockerfile_does_not_copy_the_file() {
        let r = infer(&["**/*"], &[("a.txt", "/a.txt")]);
        assert_eq!(
            reason(&r, &["notes.md"], &[]),
            "notes.md matches sync.infer, but the Dockerfile's final stage does not copy it"
        );
    }

    #[test]
    fn infer_rebuilds_on_deletion() {
        let r = infer(&["**/*"], &[("a.txt", "/a.txt")]);
        assert_eq!(
            reason(&r, &[], &["a.txt"]),
            "a.txt was deleted; sync.infer rebuilds on deletions"
        );
    }

    #[test]
    fn infer_file_copied_twice_goes_to_both() {
        let r = infer(&["**/*"], &[("a.txt", "/a.txt"), ("a.txt", "/b/a.txt")]);
        assert_eq!(dests(&sync(&r, &["a.txt"], &[])), ["/a.txt", "/b/a.txt"]);
    }

    #[test]
    fn manual_wins_over_infer() {
        let mut r = infer(&["**/*"], &[("www/a.txt", "/infer/a.txt")]);
        r.manual = vec![manual("www/**", "/manual", Some("www/"))];
        assert_eq!(dests(&sync(&r, &["www/a.txt"], &[])), ["/manual/a.txt"]);
    }

    #[test]
    fn auto_rebuilds() {
        let r = SyncRules {
            auto: true,
            ..SyncRules::default()
        };
        assert!(reason(&r, &["a"], &[]).contains("sync.auto"));
    }

    #[test]
    fn no_rules_rebuild() {
        assert_eq!(
            reason(&SyncRules::default(), &["a.txt"], &[]),
            "a.txt matches no sync rule"
        );
    }

    #[test]
    fn invalid_glob_rebuilds_with_the_pattern() {
        let r = rules(vec![manual("www/[", "/srv", None)]);
        assert!(reason(&r, &["www/a"], &[]).contains("`www/[`"));
    }

    #[test]
    fn relative_changed_paths_are_context_relative() {
        let r = rules(vec![manual("www/**", "/srv", Some("www/"))]);
        let decision = decide(Path::new(CONTEXT), &r, &[PathBuf::from("www/a")], &[]);
        assert!(
            matches!(decision, Decision::Sync(plan) if plan.copy[0].source == Path::new("/ctx/www/a"))
        );
    }

    #[test]
    fn hooks_are_carried_into_the_plan() {
        let mut r = rules(vec![manual("**", "/srv", None)]);
        r.hooks.after.push(SyncHook::Container {
            command: vec!["kill".into(), "-HUP".into(), "1".into()],
        });
        assert_eq!(sync(&r, &["a"], &[]).hooks, r.hooks);
    }

    #[test]
    fn empty_change_is_an_empty_sync() {
        let r = rules(vec![manual("**", "/srv", None)]);
        assert!(sync(&r, &[], &[]).is_empty());
    }

    #[test]
    fn container_path_normalises() {
        assert_eq!(
            container_path("/srv/", "./a//b").as_deref(),
            Some("/srv/a/b")
        );
        assert_eq!(container_path("/", "a").as_deref(), Some("/a"));
        assert_eq!(container_path("app", "../x"), Some("x".to_owned()));
        assert_eq!(container_path("app", "../../x"), None);
        assert_eq!(container_path(".", ""), None);
    }

    #[test]
    fn describe_lists_rules_and_inferred_copies() {
        let mut r = infer(
            &["www/**"],
            &[("www/a.txt", "/srv/a.txt"), ("main.c", "/main.c")],
        );
        r.manual = vec![manual("www/**", "/srv/www", Some("www/"))];
        r.hooks.after.push(SyncHook::Container {
            command: vec!["kill".into(), "1".into()],
        });
        assert_eq!(
            describe(&r),
            [
                "www/** → /srv/www (manual, strip www/)",
                "infer www/**",
                "www/a.txt → /srv/a.txt (inferred from the Dockerfile)",
                "hook after sync (container): kill 1",
            ]
        );
    }
}
