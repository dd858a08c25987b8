//! `sync.hooks`: the variables Skaffold gives sync hooks, and host hooks.
//!
//! Hooks see `SKAFFOLD_IMAGE` (the deployed reference), `SKAFFOLD_BUILD_CONTEXT`,
//! `SKAFFOLD_FILES_ADDED_OR_MODIFIED` and `SKAFFOLD_FILES_DELETED` (`;`-separated absolute host
//! paths, as Skaffold documents) and, on Kubernetes, `SKAFFOLD_KUBE_CONTEXT`. Container hooks
//! get them on Docker (exec environment); Kubernetes exec cannot set variables, so there a
//! container hook runs with the container's own environment.

use std::collections::BTreeMap;

use skiff_types::event::Reporter;

use crate::{SyncError, SyncHook, SyncPlan, SyncTarget};

/// The hook variables for `plan` on `target`.
///
/// ```
/// use std::path::PathBuf;
/// use skiff_sync::{FileCopy, SyncPlan, SyncTarget};
///
/// let plan = SyncPlan {
///     context: "/app".into(),
///     copy: vec![
///         FileCopy { source: "/app/a.txt".into(), destination: "/srv/a.txt".into() },
///         FileCopy { source: "/app/b.txt".into(), destination: "/srv/b.txt".into() },
///     ],
///     ..SyncPlan::default()
/// };
/// let target = SyncTarget { image: "web".into(), reference: "web:1".into(), selector: "run=1".into(), kube_context: None, env: Default::default() };
/// let env = skiff_sync::hooks::environment(&target, &plan);
/// assert!(env.contains(&("SKAFFOLD_FILES_ADDED_OR_MODIFIED".to_owned(), "/app/a.txt;/app/b.txt".to_owned())));
/// ```
pub fn environment(target: &SyncTarget, plan: &SyncPlan) -> Vec<(String, String)> {
    let join = |paths: Vec<String>| {
        let mut unique: Vec<String> = Vec::new();
        for path in paths {
            if !unique.contains(&path) {
                unique.push(path);
            }
        }
        unique.join(";")
    };
    let mut env = vec![
        ("SKAFFOLD_IMAGE".to_owned(), target.reference.clone()),
        (
            "SKAFFOLD_BUILD_CONTEXT".to_owned(),
            plan.context.to_string_lossy().into_owned(),
        ),
        (
            "SKAFFOLD_FILES_ADDED_OR_MODIFIED".to_owned(),
            join(
                plan.copy
                    .iter()
                    .map(|c| c.source.to_string_lossy().into_owned())
                    .collect(),
            ),
        ),
        (
            "SKAFFOLD_FILES_DELETED".to_owned(),
            join(
                plan.delete
                    .iter()
                    .map(|d| d.source.to_string_lossy().into_owned())
                    .collect(),
            ),
        ),
    ];
    if let Some(context) = &target.kube_context {
        env.push(("SKAFFOLD_KUBE_CONTEXT".to_owned(), context.clone()));
    }
    env
}

/// Runs the host hooks among `hooks` (in order), skipping those for other operating systems,
/// with `base` plus `vars` as their environment. Their output is reported as messages
/// (`[pre-sync hook] …`).
pub async fn run_host_hooks(
    phase: &'static str,
    hooks: &[SyncHook],
    base: &BTreeMap<String, String>,
    vars: &[(String, String)],
    reporter: &dyn Reporter,
) -> Result<(), SyncError> {
    let mut env = base.clone();
    env.extend(vars.iter().cloned());
    let run = skiff_hooks::HookRun::new(hook_phase(phase), "sync", &env);
    for hook in hooks {
        let SyncHook::Host(host) = hook else {
            continue;
        };
        skiff_hooks::run_host(host, &run, reporter)
            .await
            .map_err(|source| SyncError::HostHook { phase, source })?;
    }
    Ok(())
}

/// How a hook phase (`before`, `after`) is named in output: `pre-sync`, `post-sync`.
pub(crate) fn hook_phase(phase: &str) -> &'static str {
    if phase == "before" {
        "pre-sync"
    } else {
        "post-sync"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use skiff_hooks::HostHook;
    use skiff_types::event::{CollectingReporter, Event};

    fn path() -> BTreeMap<String, String> {
        BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())])
    }

    #[tokio::test]
    async fn host_hook_sees_the_variables() {
        let reporter = CollectingReporter::default();
        let hooks = vec![
            SyncHook::Host(HostHook {
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo files=$SKAFFOLD_FILES_ADDED_OR_MODIFIED".into(),
                ],
                os: vec![],
                dir: None,
            }),
            SyncHook::Host(HostHook {
                command: vec!["false".into()],
                os: vec!["plan9".into()],
                dir: None,
            }),
        ];
        let env = vec![(
            "SKAFFOLD_FILES_ADDED_OR_MODIFIED".to_owned(),
            "/a;/b".to_owned(),
        )];
        run_host_hooks("before", &hooks, &path(), &env, &reporter)
            .await
            .unwrap();
        assert!(reporter.events().iter().any(|e| matches!(
            e,
            Event::Message { text, .. } if text == "[pre-sync hook] files=/a;/b"
        )));
    }

    #[tokio::test]
    async fn failing_host_hook_is_an_error() {
        let hooks = vec![SyncHook::Host(HostHook {
            command: vec!["sh".into(), "-c".into(), "echo bad >&2; exit 3".into()],
            os: vec![],
            dir: None,
        })];
        let error = run_host_hooks(
            "after",
            &hooks,
            &path(),
            &[],
            &skiff_types::event::NullReporter,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("post-sync hook") && error.contains("bad"),
            "{error}"
        );
    }
}
