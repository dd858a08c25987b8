//! The external tools a render may run (`kustomize`, `kubectl kustomize`, `helm`): found in
//! the search path the caller passes, run with the caller's environment only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::RenderError;

/// The first executable file called `name` in `search_path`.
pub fn find_tool(search_path: &[PathBuf], name: &str) -> Option<PathBuf> {
    search_path
        .iter()
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file() || path.with_extension("exe").is_file()
}

/// A command to run: the program, its arguments and its working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCommand {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Where it runs.
    pub dir: PathBuf,
}

impl ToolCommand {
    /// The command line as a person would type it (for messages).
    pub fn display(&self) -> String {
        let name = self
            .program
            .file_name()
            .map_or_else(|| self.program.to_string_lossy(), |n| n.to_string_lossy());
        let mut line = name.into_owned();
        for arg in &self.args {
            line.push(' ');
            if arg.is_empty() || arg.contains([' ', '"', '\'', '$', '\\']) {
                line.push('\'');
                line.push_str(&arg.replace('\'', "'\\''"));
                line.push('\'');
            } else {
                line.push_str(arg);
            }
        }
        line
    }

    /// Runs the command with exactly `env` as its environment; its standard output, or
    /// [`RenderError::ToolFailed`] naming `what` it was for.
    pub(crate) async fn output(
        &self,
        env: &BTreeMap<String, String>,
        what: &str,
    ) -> Result<String, RenderError> {
        let failed = |status: String, stderr: String| RenderError::ToolFailed {
            what: what.to_owned(),
            command: self.display(),
            status,
            stderr,
        };
        let output = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .current_dir(&self.dir)
            .env_clear()
            .envs(env)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|error| failed(format!("could not start: {error}"), String::new()))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(failed(output.status.to_string(), stderr_tail(&stderr)));
        }
        String::from_utf8(output.stdout)
            .map_err(|_| failed("wrote output that is not UTF-8".into(), String::new()))
    }
}

/// The last lines of a failed command's standard error, quoted in [`RenderError::ToolFailed`].
pub(crate) fn stderr_tail(stderr: &str) -> String {
    let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Which program builds kustomizations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KustomizeTool {
    /// A `kustomize` binary (`kustomize build …`).
    Kustomize(PathBuf),
    /// `kubectl kustomize …`.
    Kubectl(PathBuf),
}

impl KustomizeTool {
    /// `kustomize` when installed, else `kubectl`, as Skaffold chooses.
    pub fn find(search_path: &[PathBuf]) -> Option<KustomizeTool> {
        find_tool(search_path, "kustomize")
            .map(KustomizeTool::Kustomize)
            .or_else(|| find_tool(search_path, "kubectl").map(KustomizeTool::Kubectl))
    }

    /// The command that builds the kustomization at `path`: each of `build_args` split at
    /// spaces (as Skaffold does), then the path.
    pub fn command(&self, dir: &Path, path: &str, build_args: &[String]) -> ToolCommand {
        let (program, subcommand) = match self {
            KustomizeTool::Kustomize(program) => (program, "build"),
            KustomizeTool::Kubectl(program) => (program, "kustomize"),
        };
        let mut args = vec![subcommand.to_owned()];
        for arg in build_args {
            args.extend(arg.split(' ').filter(|a| !a.is_empty()).map(str::to_owned));
        }
        args.push(path.to_owned());
        ToolCommand {
            program: program.clone(),
            args,
            dir: dir.to_path_buf(),
        }
    }

    /// `kustomize build` or `kubectl kustomize`, for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            KustomizeTool::Kustomize(_) => "kustomize build",
            KustomizeTool::Kubectl(_) => "kubectl kustomize",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kustomize_command_lines() {
        let tool = KustomizeTool::Kustomize("/usr/bin/kustomize".into());
        let command = tool.command(
            Path::new("/app"),
            "overlays/dev",
            &[
                "--load-restrictor LoadRestrictionsNone".into(),
                "--enable-helm".into(),
            ],
        );
        assert_eq!(
            command.args,
            [
                "build",
                "--load-restrictor",
                "LoadRestrictionsNone",
                "--enable-helm",
                "overlays/dev"
            ]
        );
        let kubectl = KustomizeTool::Kubectl("/usr/bin/kubectl".into());
        let command = kubectl.command(Path::new("/app"), ".", &[]);
        assert_eq!(command.args, ["kustomize", "."]);
        assert_eq!(command.display(), "kubectl kustomize .");
        assert_eq!(kubectl.describe(), "kubectl kustomize");
    }

    #[test]
    fn tools_are_found_only_in_the_search_path() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(find_tool(&[dir.path().into()], "helm"), None);
        let helm = dir.path().join("helm");
        std::fs::write(&helm, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                find_tool(&[dir.path().into()], "helm"),
                None,
                "not executable"
            );
            std::fs::set_permissions(&helm, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert_eq!(
            find_tool(&["/nonexistent".into(), dir.path().into()], "helm"),
            Some(helm)
        );
        assert_eq!(find_tool(&[], "helm"), None);
    }

    #[test]
    fn display_quotes_what_needs_it() {
        let command = ToolCommand {
            program: "/bin/helm".into(),
            args: vec!["--set".into(), "a=b c".into(), String::new()],
            dir: ".".into(),
        };
        assert_eq!(command.display(), "helm --set 'a=b c' ''");
    }
}
