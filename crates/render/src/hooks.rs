//! `manifests.hooks`: host commands run before rendering, and after it with the rendered
//! manifests on their standard input — an `after` hook `withChange` replaces them with what it
//! prints, as Skaffold's post-render hooks do.

/// `manifests.hooks`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderHooks {
    /// `before`: run before any source is rendered.
    pub before: Vec<HostHook>,
    /// `after`: run with the rendered manifests on standard input.
    pub after: Vec<PostRenderHook>,
}

impl RenderHooks {
    /// Whether there is no hook.
    pub fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after.is_empty()
    }
}

pub use skiff_hooks::HostHook;

/// An `after` hook.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostRenderHook {
    /// The command.
    pub host: HostHook,
    /// Whether what it prints replaces the rendered manifests.
    pub with_change: bool,
}

/// Runs `hooks` before rendering (`pre-render`).
pub(crate) async fn before(
    hooks: &[HostHook],
    env: &std::collections::BTreeMap<String, String>,
    reporter: &dyn skiff_types::event::Reporter,
) -> Result<(), crate::RenderError> {
    skiff_hooks::run_all(
        hooks,
        &skiff_hooks::HookRun::new("pre-render", "render", env),
        reporter,
    )
    .await
    .map_err(|source| crate::RenderError::Hook {
        field: "manifests.hooks.before",
        source,
    })
}

/// Runs `hook` after rendering with `manifests` on its standard input; returns what it printed
/// when it is `withChange` (and ran on this operating system).
pub(crate) async fn after(
    hook: &PostRenderHook,
    manifests: &str,
    env: &std::collections::BTreeMap<String, String>,
    reporter: &dyn skiff_types::event::Reporter,
) -> Result<Option<String>, crate::RenderError> {
    let run = skiff_hooks::HookRun {
        stdin: Some(manifests),
        capture_stdout: hook.with_change,
        ..skiff_hooks::HookRun::new("post-render", "render", env)
    };
    match skiff_hooks::run_host(&hook.host, &run, reporter).await {
        Ok(skiff_hooks::HookOutcome::Ran { stdout }) => Ok(hook.with_change.then_some(stdout)),
        Ok(skiff_hooks::HookOutcome::Skipped) => Ok(None),
        Err(source) => Err(crate::RenderError::Hook {
            field: "manifests.hooks.after",
            source,
        }),
    }
}
