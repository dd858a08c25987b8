//! `sync.hooks`: the variables Skaffold gives sync hooks, and host hooks.
//!
//! Hooks see `SKAFFOLD_IMAGE` (the deployed reference), `SKAFFOLD_BUILD_CONTEXT`,
//! `SKAFFOLD_FILES_ADDED_OR_MODIFIED` and `SKAFFOLD_FILES_DELETED` (`;`-separated absolute host
//! paths, as Skaffold documents) and, on Kubernetes, `SKAFFOLD_KUBE_CONTEXT`. Container hooks
//! get them on Docker (exec environment); Kubernetes exec cannot set variables, so there a
//! container hook runs with the container's own environment.

use skiff_types::event::{Event, Level, Reporter};

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
/// let target = SyncTarget { image: "web".into(), reference: "web:1".into(), selector: "run=1".into(), kube_context: None };
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

/// Runs the host hooks among `hooks` (in order), skipping those for other operating systems.
/// Their output is reported as messages.
pub async fn run_host_hooks(
    phase: &'static str,
    hooks: &[SyncHook],
    env: &[(String, String)],
    reporter: &dyn Reporter,
) -> Result<(), SyncError> {
    for hook in hooks {
        let SyncHook::Host { command, os, dir } = hook else {
            continue;
        };
        if !os.is_empty() && !os.iter().any(|o| o == std::env::consts::OS) {
            continue;
        }
        let failed = |message: String| SyncError::Hook {
            phase,
            command: command.join(" "),
            message,
        };
        let Some((program, args)) = command.split_first() else {
            return Err(failed("the command is empty".to_owned()));
        };
        let mut process = tokio::process::Command::new(program);
        process
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(dir) = dir {
            process.current_dir(dir);
        }
        let output = process
            .output()
            .await
            .map_err(|e| failed(format!("cannot start `{program}`: {e}")))?;
        for line in String::from_utf8_lossy(&output.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&output.stderr).lines())
        {
            reporter.report(Event::Message {
                source: "sync",
                level: Level::Info,
                text: format!("[{phase}-sync hook] {line}"),
            });
        }
        if !output.status.success() {
            return Err(failed(format!(
                "exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use skiff_types::event::CollectingReporter;

    #[tokio::test]
    async fn host_hook_sees_the_variables() {
        let reporter = CollectingReporter::default();
        let hooks = vec![
            SyncHook::Host {
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo files=$SKAFFOLD_FILES_ADDED_OR_MODIFIED".into(),
                ],
                os: vec![],
                dir: None,
            },
            SyncHook::Host {
                command: vec!["false".into()],
                os: vec!["plan9".into()],
                dir: None,
            },
        ];
        let env = vec![(
            "SKAFFOLD_FILES_ADDED_OR_MODIFIED".to_owned(),
            "/a;/b".to_owned(),
        )];
        run_host_hooks("before", &hooks, &env, &reporter)
            .await
            .unwrap();
        assert!(reporter.events().iter().any(|e| matches!(
            e,
            Event::Message { text, .. } if text == "[before-sync hook] files=/a;/b"
        )));
    }

    #[tokio::test]
    async fn failing_host_hook_is_an_error() {
        let hooks = vec![SyncHook::Host {
            command: vec!["sh".into(), "-c".into(), "echo bad >&2; exit 3".into()],
            os: vec![],
            dir: None,
        }];
        let error = run_host_hooks("after", &hooks, &[], &skiff_types::event::NullReporter)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("after sync") && error.contains("bad"),
            "{error}"
        );
    }
}
