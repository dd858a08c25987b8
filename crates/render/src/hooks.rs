//! `manifests.hooks`: host commands run before rendering, and after it with the rendered
//! manifests on their standard input — an `after` hook `withChange` replaces them with what it
//! prints, as Skaffold's post-render hooks do.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use skiff_types::event::{Event, Level, Reporter};
use tokio::io::AsyncWriteExt;

use crate::RenderError;

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

/// A command run on this machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostHook {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Operating systems (Go's names: `linux`, `darwin`, `windows`) it runs on; empty: all.
    pub os: Vec<String>,
    /// Where it runs; `None`: skiff's working directory.
    pub dir: Option<PathBuf>,
}

/// An `after` hook.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostRenderHook {
    /// The command.
    pub host: HostHook,
    /// Whether what it prints replaces the rendered manifests.
    pub with_change: bool,
}

/// The operating system as Go (and so `os` in hooks) names it.
fn go_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

fn report(reporter: &dyn Reporter, level: Level, text: String) {
    reporter.report(Event::Message {
        source: "render",
        level,
        text,
    });
}

/// Runs `hook` with `env`, `input` on its standard input. Returns `None` when it does not
/// run on this operating system, else its standard output (which is also reported, line by
/// line, unless `capture`).
pub(crate) async fn run(
    hook: &HostHook,
    phase: &str,
    env: &BTreeMap<String, String>,
    input: Option<&str>,
    capture: bool,
    reporter: &dyn Reporter,
) -> Result<Option<String>, RenderError> {
    if !hook.os.is_empty() && !hook.os.iter().any(|os| os == go_os()) {
        report(
            reporter,
            Level::Debug,
            format!(
                "{phase} hook `{}` skipped: it runs on {}",
                hook.command.join(" "),
                hook.os.join(", ")
            ),
        );
        return Ok(None);
    }
    let failed = |status: String, stderr: String| RenderError::ToolFailed {
        what: format!("manifests.hooks.{phase}"),
        command: hook.command.join(" "),
        status,
        stderr,
    };
    let Some((program, args)) = hook.command.split_first() else {
        return Err(failed("has no command".into(), String::new()));
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = &hook.dir {
        command.current_dir(dir);
    }
    let mut child = command
        .spawn()
        .map_err(|error| failed(format!("could not start: {error}"), String::new()))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A hook that does not read its input closes the pipe early: not an error.
        let _ = stdin.write_all(input.as_bytes()).await;
        drop(stdin);
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|error| failed(format!("could not run: {error}"), String::new()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    for line in stderr.lines() {
        report(reporter, Level::Info, line.to_owned());
    }
    if !output.status.success() {
        return Err(failed(
            output.status.to_string(),
            crate::tools::stderr_tail(&stderr),
        ));
    }
    if !capture {
        for line in stdout.lines() {
            report(reporter, Level::Info, line.to_owned());
        }
    }
    Ok(Some(stdout))
}

/// Reports that the hooks of `phase` start (Skaffold's "Starting pre-render hooks...").
pub(crate) fn starting(reporter: &dyn Reporter, phase: &str) {
    report(
        reporter,
        Level::Info,
        format!("Starting {phase}-render hooks..."),
    );
}

/// Reports that the hooks of `phase` completed.
pub(crate) fn completed(reporter: &dyn Reporter, phase: &str) {
    report(
        reporter,
        Level::Info,
        format!("Completed {phase}-render hooks"),
    );
}
