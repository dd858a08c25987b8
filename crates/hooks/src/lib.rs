//! Skaffold's lifecycle host hooks, run one way by every stage: a command on this machine,
//! skipped on other operating systems (`os`, Go's names), in its `dir`, with the environment
//! the caller gives it (the run's environment plus the phase's `SKAFFOLD_*` variables), its
//! output reported line by line as `[pre-build hook] …` and its failure an error naming the
//! phase, the command, its exit status and the end of its output.
//!
//! Build (`build.artifacts[].hooks`), deploy (`deploy.*.hooks`), render (`manifests.hooks`)
//! and sync (`sync.hooks`) hooks all run through [`run_host`]; the variables each phase sets
//! are built by [`build_variables`], [`deploy_variables`] and [`static_variables`].
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::collections::BTreeMap;
//! use skiff_hooks::{HookRun, HostHook, run_host};
//! use skiff_types::event::CollectingReporter;
//!
//! let hook = HostHook {
//!     command: vec!["sh".into(), "-c".into(), "echo built $SKAFFOLD_IMAGE".into()],
//!     os: vec![],
//!     dir: None,
//! };
//! let env = BTreeMap::from([
//!     ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
//!     ("SKAFFOLD_IMAGE".to_owned(), "app:v1".to_owned()),
//! ]);
//! let reporter = CollectingReporter::default();
//! run_host(&hook, &HookRun::new("post-build", "build", &env), &reporter).await.unwrap();
//! assert!(reporter.messages().contains(&"[post-build hook] built app:v1".to_owned()));
//! # });
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use skiff_types::event::{Event, Level, Reporter};
use skiff_types::image::ImageRef;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};

/// How many lines of a failed hook's output its error carries.
const TAIL_LINES: usize = 20;

/// A command run on this machine (Skaffold's `HostHook`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostHook {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Operating systems (Go's names: `linux`, `darwin`, `windows`) it runs on; empty: all.
    pub os: Vec<String>,
    /// Where it runs (absolute: the config's `dir` resolved against its file); `None`: the
    /// process's working directory, as in Skaffold.
    pub dir: Option<PathBuf>,
}

/// How one hook runs.
#[derive(Debug, Clone)]
pub struct HookRun<'a> {
    /// `pre-build`, `post-deploy`, …: names the hook in its output and errors.
    pub phase: &'a str,
    /// The event source its output is reported under (`build`, `deploy`, `render`, `sync`).
    pub source: &'static str,
    /// The whole environment the command sees.
    pub env: &'a BTreeMap<String, String>,
    /// What its standard input gets; `None`: nothing (closed).
    pub stdin: Option<&'a str>,
    /// Keep standard output instead of reporting it (a post-render hook's manifests).
    pub capture_stdout: bool,
}

impl<'a> HookRun<'a> {
    /// A hook of `phase`, reported under `source`, seeing `env`, no input, output reported.
    pub fn new(phase: &'a str, source: &'static str, env: &'a BTreeMap<String, String>) -> Self {
        HookRun {
            phase,
            source,
            env,
            stdin: None,
            capture_stdout: false,
        }
    }
}

/// What running a hook came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// It is for another operating system.
    Skipped,
    /// It ran and succeeded; its standard output when captured (else empty).
    Ran {
        /// Standard output, when [`HookRun::capture_stdout`].
        stdout: String,
    },
}

/// Why a hook failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HookError {
    /// The hook names no command.
    #[error("{phase} hook has no command")]
    Empty {
        /// The hook's phase.
        phase: String,
    },
    /// The command could not be started.
    #[error("{phase} hook `{command}` could not start: {source}")]
    Start {
        /// The hook's phase.
        phase: String,
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The command failed.
    #[error("{phase} hook `{command}` failed ({status}){}", tail_text(output))]
    Failed {
        /// The hook's phase.
        phase: String,
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The last lines it printed (standard error, or standard output when it printed
        /// nothing there).
        output: String,
    },
}

fn tail_text(output: &str) -> String {
    if output.is_empty() {
        String::new()
    } else {
        format!(":\n{output}")
    }
}

/// The operating system as Go (and so `os` in hooks) names it.
pub fn go_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

fn report(reporter: &dyn Reporter, source: &'static str, level: Level, text: String) {
    reporter.report(Event::Message {
        source,
        level,
        text,
    });
}

async fn lines(
    stream: Option<impl AsyncRead + Unpin>,
    mut each: impl FnMut(String),
) -> std::io::Result<()> {
    let Some(stream) = stream else {
        return Ok(());
    };
    let mut lines = BufReader::new(stream).lines();
    while let Some(line) = lines.next_line().await? {
        each(line);
    }
    Ok(())
}

fn tail(lines: &[String]) -> String {
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines[start..].join("\n")
}

/// How [`stream`] handles a command's input and output.
#[derive(Debug, Clone)]
pub struct Streaming<'a> {
    /// Put before each reported line (`[pre-build hook] `, `[test app] `).
    pub prefix: &'a str,
    /// The event source lines are reported under.
    pub source: &'static str,
    /// What standard input gets (the child must have been spawned with it piped).
    pub stdin: Option<&'a str>,
    /// Keep standard output without reporting it.
    pub capture_stdout: bool,
}

/// What a streamed command printed, and how it ended.
#[derive(Debug)]
pub struct Streamed {
    /// Its exit status, or why it could not be waited for (or its output read).
    pub status: std::io::Result<std::process::ExitStatus>,
    /// Standard output, line by line.
    pub stdout: Vec<String>,
    /// Standard error, line by line.
    pub stderr: Vec<String>,
}

impl Streamed {
    /// The last lines it printed: of standard error, or of standard output when it printed
    /// nothing there — what a failure message shows.
    pub fn tail(&self) -> String {
        if self.stderr.is_empty() {
            tail(&self.stdout)
        } else {
            tail(&self.stderr)
        }
    }
}

/// Feeds `child` its input, reports each line it prints as it comes (`{prefix}{line}`), and
/// waits for it. The child's standard output and error must be piped. Dropping the future
/// drops the child (spawn it with `kill_on_drop` to have it killed, as on a timeout).
pub async fn stream(
    mut child: tokio::process::Child,
    streaming: &Streaming<'_>,
    reporter: &dyn Reporter,
) -> Streamed {
    let writer = {
        let stdin = child.stdin.take();
        let input = streaming.stdin.map(str::to_owned);
        async move {
            if let (Some(input), Some(mut stdin)) = (input, stdin) {
                // A command that does not read its input closes the pipe early: not an error.
                let _ = stdin.write_all(input.as_bytes()).await;
            }
        }
    };
    let prefix = streaming.prefix;
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let out = lines(child.stdout.take(), |line| {
        if !streaming.capture_stdout {
            report(
                reporter,
                streaming.source,
                Level::Info,
                format!("{prefix}{line}"),
            );
        }
        stdout.push(line);
    });
    let err = lines(child.stderr.take(), |line| {
        report(
            reporter,
            streaming.source,
            Level::Info,
            format!("{prefix}{line}"),
        );
        stderr.push(line);
    });
    let ((), read_out, read_err) = tokio::join!(writer, out, err);
    let status = match (child.wait().await, read_out.and(read_err)) {
        (Ok(status), Ok(())) => Ok(status),
        (Err(error), _) | (_, Err(error)) => Err(error),
    };
    Streamed {
        status,
        stdout,
        stderr,
    }
}

/// Runs `hook` as `run` says, streaming its output to `reporter` as it comes.
pub async fn run_host(
    hook: &HostHook,
    run: &HookRun<'_>,
    reporter: &dyn Reporter,
) -> Result<HookOutcome, HookError> {
    let command_line = hook.command.join(" ");
    if !hook.os.is_empty() && !hook.os.iter().any(|os| os == go_os()) {
        report(
            reporter,
            run.source,
            Level::Debug,
            format!(
                "{} hook `{command_line}` skipped: it runs on {}",
                run.phase,
                hook.os.join(", ")
            ),
        );
        return Ok(HookOutcome::Skipped);
    }
    let Some((program, args)) = hook.command.split_first() else {
        return Err(HookError::Empty {
            phase: run.phase.to_owned(),
        });
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(run.env)
        .stdin(if run.stdin.is_some() {
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
    let child = command.spawn().map_err(|source| HookError::Start {
        phase: run.phase.to_owned(),
        command: command_line.clone(),
        source,
    })?;
    let prefix = format!("[{} hook] ", run.phase);
    let streaming = Streaming {
        prefix: &prefix,
        source: run.source,
        stdin: run.stdin,
        capture_stdout: run.capture_stdout,
    };
    let streamed = stream(child, &streaming, reporter).await;
    let failed = |status: String| HookError::Failed {
        phase: run.phase.to_owned(),
        command: command_line.clone(),
        status,
        output: streamed.tail(),
    };
    match &streamed.status {
        Ok(status) if status.success() => {}
        Ok(status) => return Err(failed(status.to_string())),
        Err(error) => return Err(failed(format!("could not run: {error}"))),
    }
    let mut stdout = streamed.stdout.join("\n");
    if !stdout.is_empty() {
        stdout.push('\n');
    }
    Ok(HookOutcome::Ran {
        stdout: if run.capture_stdout {
            stdout
        } else {
            String::new()
        },
    })
}

/// Runs `hooks` in order (Skaffold's "Starting pre-build hooks..." and "Completed …" around
/// them when there are any); the first failure stops the rest.
pub async fn run_all(
    hooks: &[HostHook],
    run: &HookRun<'_>,
    reporter: &dyn Reporter,
) -> Result<(), HookError> {
    if hooks.is_empty() {
        return Ok(());
    }
    report(
        reporter,
        run.source,
        Level::Info,
        format!("Starting {} hooks...", run.phase),
    );
    for hook in hooks {
        run_host(hook, run, reporter).await?;
    }
    report(
        reporter,
        run.source,
        Level::Info,
        format!("Completed {} hooks", run.phase),
    );
    Ok(())
}

/// The variables every hook sees (Skaffold's static ones): `SKAFFOLD_DEFAULT_REPO` when set,
/// `SKAFFOLD_HTTP_PORT` when serving, and `SKAFFOLD_WORK_DIR` when known.
pub fn static_variables(
    default_repo: Option<&str>,
    http_port: Option<u16>,
    work_dir: Option<&std::path::Path>,
) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    if let Some(repo) = default_repo {
        vars.push(("SKAFFOLD_DEFAULT_REPO".to_owned(), repo.to_owned()));
    }
    if let Some(port) = http_port {
        vars.push(("SKAFFOLD_HTTP_PORT".to_owned(), port.to_string()));
    }
    if let Some(dir) = work_dir {
        vars.push((
            "SKAFFOLD_WORK_DIR".to_owned(),
            dir.to_string_lossy().into_owned(),
        ));
    }
    vars
}

/// A build hook's variables: `SKAFFOLD_IMAGE` (the reference being built), `SKAFFOLD_PUSH_IMAGE`,
/// `SKAFFOLD_IMAGE_REPO`, `SKAFFOLD_IMAGE_TAG` (empty without a tag) and
/// `SKAFFOLD_BUILD_CONTEXT`.
///
/// ```
/// let image = "localhost:5000/app:v1".parse().unwrap();
/// let vars = skiff_hooks::build_variables(&image, false, "/src/app".as_ref());
/// assert!(vars.contains(&("SKAFFOLD_IMAGE_REPO".into(), "localhost:5000/app".into())));
/// assert!(vars.contains(&("SKAFFOLD_IMAGE_TAG".into(), "v1".into())));
/// assert!(vars.contains(&("SKAFFOLD_PUSH_IMAGE".into(), "false".into())));
/// ```
pub fn build_variables(
    image: &ImageRef,
    push: bool,
    context: &std::path::Path,
) -> Vec<(String, String)> {
    vec![
        ("SKAFFOLD_IMAGE".to_owned(), image.to_string()),
        ("SKAFFOLD_PUSH_IMAGE".to_owned(), push.to_string()),
        (
            "SKAFFOLD_IMAGE_REPO".to_owned(),
            image.repository().to_owned(),
        ),
        (
            "SKAFFOLD_IMAGE_TAG".to_owned(),
            image.tag().unwrap_or_default().to_owned(),
        ),
        (
            "SKAFFOLD_BUILD_CONTEXT".to_owned(),
            context.to_string_lossy().into_owned(),
        ),
    ]
}

/// A deploy hook's variables: `SKAFFOLD_RUN_ID`, `SKAFFOLD_KUBE_CONTEXT` and
/// `SKAFFOLD_NAMESPACES` (comma-separated).
pub fn deploy_variables(
    run_id: &str,
    kube_context: &str,
    namespaces: &[String],
) -> Vec<(String, String)> {
    vec![
        ("SKAFFOLD_RUN_ID".to_owned(), run_id.to_owned()),
        ("SKAFFOLD_KUBE_CONTEXT".to_owned(), kube_context.to_owned()),
        ("SKAFFOLD_NAMESPACES".to_owned(), namespaces.join(",")),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use skiff_types::event::CollectingReporter;

    use super::*;

    fn sh(script: &str) -> HostHook {
        HostHook {
            command: vec!["sh".into(), "-c".into(), script.into()],
            os: vec![],
            dir: None,
        }
    }

    fn env() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
            ("SKAFFOLD_RUN_ID".to_owned(), "run-1".to_owned()),
        ])
    }

    #[tokio::test]
    async fn output_streams_with_the_phase_and_the_environment_is_exactly_the_given_one() {
        let reporter = CollectingReporter::default();
        let env = env();
        let dir = tempfile::tempdir().unwrap();
        let hook = HostHook {
            dir: Some(dir.path().to_path_buf()),
            ..sh("echo id=$SKAFFOLD_RUN_ID home=${HOME:-unset}; pwd; echo oops >&2")
        };
        let outcome = run_host(
            &hook,
            &HookRun::new("pre-deploy", "deploy", &env),
            &reporter,
        )
        .await
        .unwrap();
        assert_eq!(
            outcome,
            HookOutcome::Ran {
                stdout: String::new()
            }
        );
        let said = reporter.messages();
        assert!(
            said.contains(&"[pre-deploy hook] id=run-1 home=unset".to_owned()),
            "{said:?}"
        );
        assert!(
            said.contains(&"[pre-deploy hook] oops".to_owned()),
            "{said:?}"
        );
        let pwd = std::fs::canonicalize(dir.path()).unwrap();
        assert!(
            said.iter().any(|l| l.ends_with(&*pwd.to_string_lossy())),
            "{said:?}"
        );
    }

    #[tokio::test]
    async fn input_is_given_and_output_captured() {
        let env = env();
        let run = HookRun {
            stdin: Some("kind: Pod\n"),
            capture_stdout: true,
            ..HookRun::new("post-render", "render", &env)
        };
        let reporter = CollectingReporter::default();
        let outcome = run_host(&sh("sed s/Pod/Service/"), &run, &reporter)
            .await
            .unwrap();
        assert_eq!(
            outcome,
            HookOutcome::Ran {
                stdout: "kind: Service\n".into()
            }
        );
        assert!(reporter.messages().is_empty());
    }

    #[tokio::test]
    async fn failures_name_phase_command_status_and_output_and_stop_the_rest() {
        let env = env();
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let hooks = [
            sh("echo compile error >&2; exit 3"),
            sh(&format!("touch {}", marker.display())),
        ];
        let reporter = CollectingReporter::default();
        let error = run_all(&hooks, &HookRun::new("pre-build", "build", &env), &reporter)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("pre-build hook `sh -c echo compile error"),
            "{error}"
        );
        assert!(error.contains("exit status: 3"), "{error}");
        assert!(error.ends_with("compile error"), "{error}");
        assert!(!marker.exists());
        let error = run_host(
            &HostHook {
                command: vec!["/nonexistent/tool".into()],
                ..HostHook::default()
            },
            &HookRun::new("post-build", "build", &env),
            &reporter,
        )
        .await
        .unwrap_err();
        assert!(matches!(error, HookError::Start { .. }), "{error}");
    }

    #[tokio::test]
    async fn other_operating_systems_skip() {
        let env = env();
        let hook = HostHook {
            os: vec!["plan9".into()],
            ..sh("exit 1")
        };
        let outcome = run_host(
            &hook,
            &HookRun::new("pre-sync", "sync", &env),
            &CollectingReporter::default(),
        )
        .await
        .unwrap();
        assert_eq!(outcome, HookOutcome::Skipped);
        let hook = HostHook {
            os: vec![go_os().into()],
            ..sh("true")
        };
        assert!(matches!(
            run_host(
                &hook,
                &HookRun::new("pre-sync", "sync", &env),
                &CollectingReporter::default()
            )
            .await
            .unwrap(),
            HookOutcome::Ran { .. }
        ));
    }
}
