//! The `custom` builder: runs the artifact's `custom.buildCommand` to produce the image.
//!
//! Skaffold hands image building to a user script and tells it what to build through
//! environment variables; this module does the same so existing scripts keep working. The command
//! runs through `sh -c` (`cmd.exe /C` on Windows) in the artifact's context directory with
//! [`BuildRequest::env`] plus:
//!
//! | variable        | value                                                         |
//! |-----------------|---------------------------------------------------------------|
//! | `IMAGE`         | the full reference to produce (`name:tag`)                    |
//! | `PUSH_IMAGE`    | `true` when the script must push the image, else `false`      |
//! | `BUILD_CONTEXT` | the absolute context directory                                |
//! | `PLATFORMS`     | the target platforms, comma-separated (may be empty)          |
//! | `SKIP_TEST`     | `false`                                                       |
//! | `IMAGE_REPO`    | the reference's repository (`name`)                           |
//! | `IMAGE_TAG`     | the reference's tag                                           |
//! | *alias*         | the built reference of each required artifact, by its alias   |
//!
//! These take precedence over variables of the same name in the environment. As in Skaffold, a
//! command containing `{{` is first rendered as a template over the same variables.
//!
//! Both output streams are forwarded line by line as [`Event::BuildOutput`]; the last lines are
//! kept for the error when the command fails. After a successful local build (no push) the
//! optional [`ImageLookup`] checks that the command really produced `$IMAGE`.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skiff_types::event::{Event, Level, Reporter};
use skiff_types::image::{BuiltImage, ImageRef};
use skiff_types::template::{LayeredVars, MissingKey, Template, Vars};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::artifact::{BuilderSpec, CustomSpec};
use crate::{BuildError, BuildRequest, Builder};

/// How many output lines a failure message quotes.
pub const KEPT_LINES: usize = 20;

/// The exit status shells use for "command not found".
const EXIT_NOT_FOUND: i32 = 127;

/// How long output is still read after the command has exited.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// Finds images in the local image store; the runner plugs in the Docker engine.
#[async_trait::async_trait]
pub trait ImageLookup: Send + Sync {
    /// The image ID (`sha256:…`) of `reference` when the store has it, `None` when it does not.
    async fn image_id(&self, reference: &ImageRef) -> Result<Option<String>, BuildError>;
}

/// Builds `custom` artifacts by running their `buildCommand`.
#[derive(Clone, Default)]
pub struct CustomBuilder {
    lookup: Option<Arc<dyn ImageLookup>>,
}

impl std::fmt::Debug for CustomBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomBuilder")
            .field("lookup", &self.lookup.is_some())
            .finish()
    }
}

impl CustomBuilder {
    /// A builder that, when `lookup` is given, checks that a local build produced its image.
    pub fn new(lookup: Option<Arc<dyn ImageLookup>>) -> CustomBuilder {
        CustomBuilder { lookup }
    }
}

/// The variables the build command sees on top of the environment (see the module docs).
pub fn command_env(request: &BuildRequest<'_>) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for (alias, reference) in &request.required {
        vars.insert(alias.clone(), reference.clone());
    }
    let artifact = request.artifact;
    vars.insert("IMAGE".to_owned(), request.tag.to_string());
    vars.insert("PUSH_IMAGE".to_owned(), request.push.to_string());
    vars.insert(
        "BUILD_CONTEXT".to_owned(),
        absolute(&artifact.context).display().to_string(),
    );
    vars.insert("PLATFORMS".to_owned(), artifact.platforms.join(","));
    vars.insert("SKIP_TEST".to_owned(), "false".to_owned());
    vars.insert("IMAGE_REPO".to_owned(), request.tag.repository().to_owned());
    vars.insert(
        "IMAGE_TAG".to_owned(),
        request.tag.tag().unwrap_or_default().to_owned(),
    );
    vars
}

fn absolute(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The last lines of output, shared by the two stream readers.
#[derive(Debug, Default)]
struct Tail(Mutex<VecDeque<String>>);

impl Tail {
    fn push(&self, line: String) {
        if let Ok(mut lines) = self.0.lock() {
            if lines.len() == KEPT_LINES {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    }

    fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|lines| lines.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Forwards every line of `stream` to `reporter` and `tail`. Lines need not be UTF-8.
async fn forward<R: AsyncRead + Unpin>(
    stream: Option<R>,
    image: &str,
    reporter: &dyn Reporter,
    tail: &Tail,
) -> std::io::Result<()> {
    let Some(stream) = stream else {
        return Ok(());
    };
    let mut reader = BufReader::new(stream);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        if reader.read_until(b'\n', &mut buffer).await? == 0 {
            return Ok(());
        }
        while matches!(buffer.last(), Some(b'\n' | b'\r')) {
            buffer.pop();
        }
        let line = String::from_utf8_lossy(&buffer).into_owned();
        tail.push(line.clone());
        reporter.report(Event::BuildOutput {
            image: image.to_owned(),
            line,
        });
    }
}

fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    status.to_string()
}

fn with_last_lines(reason: String, lines: &[String]) -> String {
    if lines.is_empty() {
        return format!("{reason} (no output)");
    }
    format!("{reason}; last output:\n{}", lines.join("\n"))
}

impl CustomBuilder {
    async fn run(
        &self,
        spec: &CustomSpec,
        request: &BuildRequest<'_>,
        reporter: &dyn Reporter,
    ) -> Result<BuiltImage, BuildError> {
        let artifact = request.artifact;
        let image = artifact.image.as_str();
        let Some(command) = spec
            .build_command
            .as_deref()
            .filter(|c| !c.trim().is_empty())
        else {
            return Err(BuildError::Failed {
                image: image.to_owned(),
                reason: "custom artifact needs `buildCommand`: set `custom.buildCommand` to a command that builds $IMAGE".to_owned(),
            });
        };
        let vars = command_env(request);
        let command = if command.contains("{{") {
            let layered = LayeredVars(vec![&vars as &dyn Vars, request.env as &dyn Vars]);
            Template::parse(command)
                .and_then(|template| template.render_with(&layered, MissingKey::NoValue))
                .map_err(|source| BuildError::Template {
                    image: image.to_owned(),
                    field: "custom.buildCommand".to_owned(),
                    source,
                })?
        } else {
            command.to_owned()
        };

        let mut process = if cfg!(windows) {
            let mut process = tokio::process::Command::new("cmd.exe");
            process.arg("/C").arg(&command);
            process
        } else {
            let mut process = tokio::process::Command::new("sh");
            process.arg("-c").arg(&command);
            process
        };
        process
            .current_dir(&artifact.context)
            .env_clear()
            .envs(request.env)
            .envs(&vars)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let command_error = |reason: String| BuildError::Command {
            image: image.to_owned(),
            command: command.clone(),
            reason,
        };
        let mut child = process.spawn().map_err(|err| {
            if !artifact.context.is_dir() {
                command_error(format!(
                    "the context directory {} does not exist",
                    artifact.context.display()
                ))
            } else if err.kind() == std::io::ErrorKind::NotFound {
                command_error(format!("the shell was not found on PATH ({err})"))
            } else {
                command_error(err.to_string())
            }
        })?;

        let tail = Tail::default();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        // Both pipes are drained concurrently, so a command filling one cannot block.
        let readers = async {
            let (out, err) = tokio::join!(
                forward(stdout, image, reporter, &tail),
                forward(stderr, image, reporter, &tail)
            );
            out.and(err)
        };
        tokio::pin!(readers);
        let (status, read_result) = tokio::select! {
            read_result = &mut readers => (child.wait().await, read_result),
            status = child.wait() => {
                // A background process started by the command may hold the pipes open forever;
                // stop reading shortly after the command itself has exited.
                let read_result = match tokio::time::timeout(OUTPUT_GRACE, &mut readers).await {
                    Ok(read_result) => read_result,
                    Err(_) => {
                        reporter.report(Event::Message {
                            source: "build",
                            level: Level::Warning,
                            text: format!(
                                "{image}: the build command exited but something it started still holds its output open; no longer reading it"
                            ),
                        });
                        Ok(())
                    }
                };
                (status, read_result)
            }
        };
        let status = status
            .map_err(|err| command_error(format!("waiting for the command failed: {err}")))?;
        if let Err(read_error) = read_result {
            return Err(command_error(format!(
                "reading its output failed: {read_error}"
            )));
        }
        let lines = tail.lines();
        if !status.success() {
            let not_found = status.code() == Some(EXIT_NOT_FOUND)
                && lines
                    .iter()
                    .any(|l| l.contains("not found") || l.contains("No such file"));
            if not_found {
                return Err(command_error(with_last_lines(
                    "command not found (exit status 127); check that the program exists and is on PATH".to_owned(),
                    &lines,
                )));
            }
            return Err(BuildError::Failed {
                image: image.to_owned(),
                reason: with_last_lines(
                    format!("`{command}` failed with {}", describe_status(status)),
                    &lines,
                ),
            });
        }

        let mut image_id = None;
        if !request.push {
            if let Some(lookup) = &self.lookup {
                match lookup.image_id(&request.tag).await? {
                    Some(id) => image_id = Some(id),
                    None => {
                        return Err(BuildError::Failed {
                            image: image.to_owned(),
                            reason: format!(
                                "the build command succeeded but did not produce IMAGE={}; the command must build (and tag) exactly $IMAGE",
                                request.tag
                            ),
                        });
                    }
                }
            }
        }
        Ok(BuiltImage {
            image_name: artifact.image.clone(),
            reference: request.tag.clone(),
            image_id,
        })
    }
}

#[async_trait::async_trait]
impl Builder for CustomBuilder {
    async fn build(
        &self,
        request: &BuildRequest<'_>,
        reporter: &dyn Reporter,
    ) -> Result<BuiltImage, BuildError> {
        match &request.artifact.builder {
            BuilderSpec::Custom(spec) => self.run(spec, request, reporter).await,
            other => Err(BuildError::Failed {
                image: request.artifact.image.clone(),
                reason: format!(
                    "the custom builder was given a `{}` artifact; it only builds `custom` artifacts",
                    other.kind()
                ),
            }),
        }
    }
}
