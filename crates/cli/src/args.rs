//! The command line, as clap types. Every global flag can also be set through a
//! `SKAFFOLD_<FLAG>` environment variable, as with Skaffold; a flag on the command line wins.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// A Skaffold-compatible Kubernetes dev loop.
#[derive(Debug, Parser)]
#[command(name = "skiff", version, max_term_width = 100)]
pub struct Cli {
    /// Flags every subcommand accepts.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. Each variant carries its own flags; stages (`dev`, `run`, `build`,
/// `render`, `deploy`, `delete`) join as variants when they exist.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the artifacts: tag them, reuse cached images, build the rest, push when needed.
    Build(BuildArgs),
    /// Apply already rendered manifests (from `skiff render`) to the cluster as they are, with
    /// skiff's labels, then wait until they are ready.
    Apply(ApplyArgs),
    /// Render the manifests and deploy them (Kubernetes or local Docker), then wait until ready.
    Deploy(DeployArgs),
    /// Delete what the configuration deploys: only objects and containers carrying skiff's labels.
    Delete,
    /// Print the effective configuration: profiles, requires, templates and defaults applied.
    Diagnose(DiagnoseArgs),
    /// Upgrade the configuration to a newer apiVersion: print it, or write it with `--overwrite`.
    Fix(FixArgs),
    /// Print the Kubernetes objects to deploy: manifests with images, labels and namespaces.
    Render(RenderArgs),
    /// Build, deploy and wait until ready; with `--tail` or `--port-forward`, stay until Ctrl-C.
    Run(RunArgs),
    /// Run, then rebuild and redeploy on every change until Ctrl-C, then clean up.
    Dev(DevArgs),
    /// Run the `test` section against images already built (`--build-artifacts`, `--images`,
    /// else the tags the taggers compute now), without building.
    Test(TestArgs),
    /// Run the `verify` tests: each container to completion on the local Docker engine.
    Verify(VerifyArgs),
    /// Run a custom action (`customActions`) by name.
    Exec(ExecArgs),
    /// Print skiff's version.
    Version,
}

impl Command {
    /// The name profiles see in `activation[].command`.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Build(_) => "build",
            Command::Apply(_) => "apply",
            Command::Deploy(_) => "deploy",
            Command::Delete => "delete",
            Command::Diagnose(_) => "diagnose",
            Command::Fix(_) => "fix",
            Command::Render(_) => "render",
            Command::Run(_) => "run",
            Command::Dev(_) => "dev",
            Command::Test(_) => "test",
            Command::Verify(_) => "verify",
            Command::Exec(_) => "exec",
            Command::Version => "version",
        }
    }
}

/// Flags accepted before or after any subcommand.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Do not run the `test` section's tests on the built images.
    #[arg(long, env = "SKAFFOLD_SKIP_TESTS")]
    pub skip_tests: bool,

    /// Write the built images as JSON (`{"builds":[{"imageName":…,"tag":…}]}`), for
    /// `skiff deploy --build-artifacts`
    #[arg(long, env = "SKAFFOLD_FILE_OUTPUT", value_name = "FILE")]
    pub file_output: Option<PathBuf>,

    /// Print only the built images as JSON on stdout, no progress
    #[arg(short, long, env = "SKAFFOLD_QUIET")]
    pub quiet: bool,

    /// Push the images (default: unless the target cluster shares the local engine)
    #[arg(
        long,
        env = "SKAFFOLD_PUSH",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true,
        value_name = "BOOL"
    )]
    pub push: Option<bool>,

    /// Build only these images (and what they require); comma-separated, repeatable
    #[arg(
        short = 'b',
        long = "build-image",
        env = "SKAFFOLD_BUILD_IMAGE",
        value_delimiter = ',',
        value_name = "IMAGE"
    )]
    pub build_image: Vec<String>,

    /// Use this tag for every image instead of the tag policy
    #[arg(short, long, env = "SKAFFOLD_TAG")]
    pub tag: Option<String>,

    /// Reuse images whose inputs have not changed
    #[arg(
        long,
        env = "SKAFFOLD_CACHE_ARTIFACTS",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true,
        value_name = "BOOL"
    )]
    pub cache_artifacts: bool,

    /// Where the artifact cache is kept [default: $XDG_CACHE_HOME/skiff/artifacts.json]
    #[arg(long, env = "SKAFFOLD_CACHE_FILE", value_name = "FILE")]
    pub cache_file: Option<PathBuf>,

    /// How many artifacts to build at once (0: all); overrides `build.local.concurrency`
    #[arg(long, env = "SKAFFOLD_BUILD_CONCURRENCY", value_name = "N")]
    pub build_concurrency: Option<usize>,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Path to the Skaffold config file [default: skaffold.yaml, then skaffold.yml]
    #[arg(
        short,
        long,
        global = true,
        env = "SKAFFOLD_FILENAME",
        value_name = "FILE"
    )]
    pub filename: Option<PathBuf>,

    /// Activate profiles by name (comma-separated, repeatable); prefix a name with `-` to
    /// deactivate it
    #[arg(
        short,
        long,
        global = true,
        env = "SKAFFOLD_PROFILE",
        value_delimiter = ',',
        allow_hyphen_values = true,
        value_name = "NAME"
    )]
    pub profile: Vec<String>,

    /// Only use the configs with these `metadata.name`s, and those they require
    /// (comma-separated, repeatable)
    #[arg(
        short,
        long,
        global = true,
        env = "SKAFFOLD_MODULE",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub module: Vec<String>,

    /// The kubeconfig context to use
    #[arg(
        long,
        global = true,
        env = "SKAFFOLD_KUBE_CONTEXT",
        value_name = "CONTEXT"
    )]
    pub kube_context: Option<String>,

    /// Path to the kubeconfig file to use
    #[arg(long, global = true, env = "SKAFFOLD_KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The namespace to deploy into
    #[arg(short, long, global = true, env = "SKAFFOLD_NAMESPACE")]
    pub namespace: Option<String>,

    /// Default registry for images: image names are rewritten into it, as with Skaffold
    #[arg(
        short,
        long,
        global = true,
        env = "SKAFFOLD_DEFAULT_REPO",
        value_name = "REPO"
    )]
    pub default_repo: Option<String>,

    /// How much to log
    #[arg(
        short,
        long,
        global = true,
        env = "SKAFFOLD_VERBOSITY",
        value_enum,
        default_value_t = Verbosity::Warn,
        value_name = "LEVEL"
    )]
    pub verbosity: Verbosity,

    /// Colour the output (also off when NO_COLOR is set or stderr is not a terminal)
    #[arg(
        long,
        global = true,
        env = "SKAFFOLD_COLOR",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true,
        value_name = "BOOL"
    )]
    pub color: bool,

    /// Build every Dockerfile with the Docker engine, also those without `RUN` that skiff
    /// otherwise assembles itself
    #[arg(long, global = true, env = "SKIFF_DOCKER_DAEMON_BUILD")]
    pub docker_daemon_build: bool,
}

impl GlobalArgs {
    /// What `skiff_config::load` needs, for `command`, given the process environment and
    /// working directory. `--kubeconfig` reaches the loader as `KUBECONFIG`.
    pub fn load_options(
        &self,
        command: &str,
        mut env: BTreeMap<String, String>,
        working_dir: PathBuf,
    ) -> skiff_config::LoadOptions {
        if let Some(kubeconfig) = &self.kubeconfig {
            env.insert(
                "KUBECONFIG".to_owned(),
                working_dir.join(kubeconfig).to_string_lossy().into_owned(),
            );
        }
        skiff_config::LoadOptions {
            config_file: self.filename.clone(),
            working_dir,
            profiles: self.profile.clone(),
            modules: self.module.clone(),
            kube_context: self.kube_context.clone(),
            command: command.to_owned(),
            env,
        }
    }

    /// What these flags ask of a run, for [`skiff_runner::project::RunContext::resolve`].
    pub fn run_flags(
        &self,
        working_dir: &std::path::Path,
        run_id: Option<String>,
        env: BTreeMap<String, String>,
    ) -> skiff_runner::project::RunFlags {
        skiff_runner::project::RunFlags {
            kube_context: self.kube_context.clone(),
            namespace: self.namespace.clone(),
            kubeconfig: self.kubeconfig.as_ref().map(|k| working_dir.join(k)),
            run_id,
            profiles: self.profile.clone(),
            env,
            work_dir: Some(working_dir.to_path_buf()),
        }
    }
}

/// Log levels, as Skaffold spells them, least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Verbosity {
    Panic,
    Fatal,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// `skiff fix`.
#[derive(Debug, Args)]
pub struct FixArgs {
    /// The apiVersion to upgrade to [default: the newest skiff reads]
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
    /// Write the upgraded configuration over the file, keeping the old one as FILE.v2
    #[arg(long, conflicts_with = "output")]
    pub overwrite: bool,
    /// Write the upgraded configuration to this file instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `skiff diagnose`.
#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// Only print the effective configs as YAML, without the summary
    #[arg(long)]
    pub yaml_only: bool,

    /// Write the output to FILE instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `skiff render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Write the rendered manifests to FILE instead of standard output
    #[arg(short, long, env = "SKAFFOLD_OUTPUT", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Do not use the cluster: no kube-context for tools, and tags as images unless
    /// --digest-source says otherwise
    #[arg(
        long,
        env = "SKAFFOLD_OFFLINE",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true,
        value_name = "BOOL"
    )]
    pub offline: bool,

    #[command(flatten)]
    pub source: ImageSourceArgs,
}

/// Where the images of a render or deploy come from, and the run's labels.
#[derive(Debug, Args)]
pub struct ImageSourceArgs {
    /// Where images come from: `local` builds them, `remote` resolves the computed tags'
    /// digests in the registry, `tag` uses the computed tags, `none` keeps the manifests'
    /// images [default: tag for a local cluster, remote otherwise]
    #[arg(
        long,
        env = "SKAFFOLD_DIGEST_SOURCE",
        value_parser = ["local", "remote", "tag", "none"],
        value_name = "SOURCE"
    )]
    pub digest_source: Option<String>,

    /// Pre-built images, as NAME=TAG, NAME=IMAGE or IMAGE (comma-separated, repeatable)
    #[arg(
        short,
        long,
        env = "SKAFFOLD_IMAGES",
        value_delimiter = ',',
        value_name = "IMAGE"
    )]
    pub images: Vec<String>,

    /// Use the images of a previous `skiff build --file-output FILE` (`-`: standard input)
    #[arg(
        short = 'a',
        long,
        env = "SKAFFOLD_BUILD_ARTIFACTS",
        value_name = "FILE"
    )]
    pub build_artifacts: Option<PathBuf>,

    /// Add a label to every object, as KEY=VALUE (comma-separated, repeatable)
    #[arg(
        short = 'l',
        long = "label",
        env = "SKAFFOLD_LABEL",
        value_delimiter = ',',
        value_name = "KEY=VALUE"
    )]
    pub labels: Vec<String>,

    /// The run ID in the `skaffold.dev/run-id` label [default: one per configuration file,
    /// kube context, namespace and profiles, so that a second run restarts nothing unchanged;
    /// `render` adds run labels only when this is given, as `skaffold render` adds none]
    #[arg(long, env = "SKAFFOLD_RUN_ID", value_name = "ID")]
    pub run_id: Option<String>,

    /// Use this tag for every image instead of the tag policy
    #[arg(short, long, env = "SKAFFOLD_TAG")]
    pub tag: Option<String>,

    /// Reuse images whose inputs have not changed (--digest-source=local)
    #[arg(
        long,
        env = "SKAFFOLD_CACHE_ARTIFACTS",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true,
        value_name = "BOOL"
    )]
    pub cache_artifacts: bool,

    /// Where the artifact cache is kept [default: $XDG_CACHE_HOME/skiff/artifacts.json]
    #[arg(long, env = "SKAFFOLD_CACHE_FILE", value_name = "FILE")]
    pub cache_file: Option<PathBuf>,

    /// Show the build's progress on standard error (--digest-source=local)
    #[arg(long, env = "SKAFFOLD_LOUD")]
    pub loud: bool,
}

/// How objects are applied and waited for: `deploy`, `apply`, `run`, `dev`.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// Delete and re-create objects whose immutable fields changed
    #[arg(long, env = "SKAFFOLD_FORCE")]
    pub force: bool,

    /// Wait until the deployed resources are ready (default: `deploy.statusCheck`, else on)
    #[arg(
        long,
        env = "SKAFFOLD_STATUS_CHECK",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true,
        value_name = "BOOL"
    )]
    pub status_check: Option<bool>,
}

/// `skiff deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub source: ImageSourceArgs,

    #[command(flatten)]
    pub rollout: RolloutArgs,
}

/// `skiff test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub source: ImageSourceArgs,
}

/// `skiff verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub source: ImageSourceArgs,
}

/// `skiff exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The action's name (`customActions[].name`).
    pub action: String,

    #[command(flatten)]
    pub source: ImageSourceArgs,
}

/// `skiff apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The rendered manifest files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub rollout: RolloutArgs,
}

/// One `--port-forward` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortForwardArg {
    /// The configuration's `portForward` entries.
    User,
    /// Every port of the Services deployed.
    Services,
    /// Every container port of the workloads deployed.
    Pods,
    /// None.
    Off,
}

/// `--port-forward`'s value: a comma-separated list of `user`, `services`, `pods`, `off`;
/// as with Skaffold, `true` (the flag alone) means `user,services` and `false` means `off`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForwardModes(pub Vec<PortForwardArg>);

fn parse_port_forward(value: &str) -> Result<PortForwardModes, String> {
    let mut modes = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.to_ascii_lowercase().as_str() {
            "user" => modes.push(PortForwardArg::User),
            "services" => modes.push(PortForwardArg::Services),
            "pods" => modes.push(PortForwardArg::Pods),
            "true" | "1" => modes.extend([PortForwardArg::User, PortForwardArg::Services]),
            "off" | "false" | "0" => modes.push(PortForwardArg::Off),
            "debug" => {}
            other => {
                return Err(format!(
                    "`{other}` is not a port-forward mode; use user, services, pods, off, true or false"
                ));
            }
        }
    }
    if modes.contains(&PortForwardArg::Off) {
        modes = vec![PortForwardArg::Off];
    }
    Ok(PortForwardModes(modes))
}

/// `--trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TriggerArg {
    /// Filesystem notifications.
    Notify,
    /// Scan the watched trees every `--watch-poll-interval`.
    Polling,
    /// Only when asked: Enter, or `POST /v2/execute` (changes accumulate meanwhile).
    Manual,
}

/// Flags `run` and `dev` share.
#[derive(Debug, Args)]
pub struct LoopArgs {
    #[command(flatten)]
    pub source: ImageSourceArgs,

    /// Do not run the `test` section's tests on built images before deploying them.
    #[arg(long, env = "SKAFFOLD_SKIP_TESTS")]
    pub skip_tests: bool,

    /// Follow the logs of what was deployed (default: off for `run`, on for `dev`).
    #[arg(
        long,
        env = "SKAFFOLD_TAIL",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true,
        value_name = "BOOL"
    )]
    pub tail: Option<bool>,

    /// Which ports to forward: user, services, pods, off, comma-separated; alone or `true`:
    /// user,services (default: off for `run`, user for `dev`).
    #[arg(
        long,
        env = "SKAFFOLD_PORT_FORWARD",
        value_parser = parse_port_forward,
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true,
        value_name = "MODES"
    )]
    pub port_forward: Option<PortForwardModes>,

    /// Write every event as one JSON object per line to FILE.
    #[arg(long, env = "SKAFFOLD_EVENT_LOG", value_name = "FILE")]
    pub event_log: Option<PathBuf>,

    /// Serve the HTTP API (`/v2/events`, `/v2/state`, `POST /v2/execute`) on 127.0.0.1:PORT.
    #[arg(long, env = "SKAFFOLD_RPC_HTTP_PORT", value_name = "PORT")]
    pub rpc_http_port: Option<u16>,

    /// Accepted for Skaffold compatibility and ignored: skiff serves no gRPC API (use
    /// --rpc-http-port).
    #[arg(long, env = "SKAFFOLD_RPC_PORT", value_name = "PORT")]
    pub rpc_port: Option<u16>,

    #[command(flatten)]
    pub rollout: RolloutArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: LoopArgs,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub common: LoopArgs,

    /// Remove what was deployed when `dev` stops.
    #[arg(
        long,
        env = "SKAFFOLD_CLEANUP",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true,
        value_name = "BOOL"
    )]
    pub cleanup: bool,

    /// How changes are noticed.
    #[arg(long, env = "SKAFFOLD_TRIGGER", value_enum, default_value_t = TriggerArg::Notify)]
    pub trigger: TriggerArg,

    /// With `--trigger=polling`: how often to scan, in milliseconds.
    #[arg(
        long,
        env = "SKAFFOLD_WATCH_POLL_INTERVAL",
        default_value_t = 1000,
        value_name = "MS"
    )]
    pub watch_poll_interval: u64,

    /// Rebuild on a change; when false, changes wait for Enter (with --trigger=manual) or
    /// `POST /v2/execute`.
    #[arg(
        long,
        env = "SKAFFOLD_AUTO_BUILD",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true,
        value_name = "BOOL"
    )]
    pub auto_build: bool,

    /// Sync files on a change; when false, they wait for a trigger.
    #[arg(
        long,
        env = "SKAFFOLD_AUTO_SYNC",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true,
        value_name = "BOOL"
    )]
    pub auto_sync: bool,

    /// Redeploy on a change; when false, deploys wait for a trigger.
    #[arg(
        long,
        env = "SKAFFOLD_AUTO_DEPLOY",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true,
        value_name = "BOOL"
    )]
    pub auto_deploy: bool,

    /// Rebuild Docker artifacts that compile in a builder stage warm: keep a container per
    /// builder stage and re-run its `RUN`s there on a change [default: true, unless the
    /// config's `metadata.annotations` says `skiff.dev/warm-builds: "false"`]
    #[arg(
        long,
        env = "SKIFF_WARM_BUILDS",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true,
        value_name = "BOOL"
    )]
    pub warm_builds: Option<bool>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("skiff").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        let before = parse(&["-f", "a.yaml", "-p", "dev", "diagnose"]);
        let after = parse(&["diagnose", "-f", "a.yaml", "-p", "dev"]);
        for cli in [before, after] {
            assert_eq!(cli.global.filename, Some(PathBuf::from("a.yaml")));
            assert_eq!(cli.global.profile, ["dev"]);
        }
    }

    #[test]
    fn profiles_split_on_commas_and_accept_a_leading_dash() {
        let cli = parse(&["diagnose", "-p", "a,-b", "-p", "-c", "--profile=d"]);
        assert_eq!(cli.global.profile, ["a", "-b", "-c", "d"]);
    }

    #[test]
    fn run_and_dev_flags() {
        let Command::Run(run) = parse(&["run", "--tail", "--port-forward"]).command else {
            panic!("not run");
        };
        assert_eq!(run.common.tail, Some(true));
        assert_eq!(
            run.common.port_forward,
            Some(PortForwardModes(vec![
                PortForwardArg::User,
                PortForwardArg::Services
            ]))
        );
        let Command::Dev(dev) = parse(&["dev", "--port-forward=off", "--cleanup=false"]).command
        else {
            panic!("not dev");
        };
        assert_eq!(
            dev.common.port_forward,
            Some(PortForwardModes(vec![PortForwardArg::Off]))
        );
        assert_eq!(dev.common.tail, None);
        assert!(!dev.cleanup);
        assert_eq!(dev.trigger, TriggerArg::Notify);
        assert!(dev.auto_build && dev.auto_sync && dev.auto_deploy);
        let Command::Dev(dev) = parse(&[
            "dev",
            "--port-forward=services,pods",
            "--trigger=manual",
            "--auto-build=false",
            "--auto-deploy=false",
            "--event-log",
            "e.jsonl",
            "--rpc-http-port",
            "50052",
        ])
        .command
        else {
            panic!("not dev");
        };
        assert_eq!(
            dev.common.port_forward,
            Some(PortForwardModes(vec![
                PortForwardArg::Services,
                PortForwardArg::Pods
            ]))
        );
        assert_eq!(dev.trigger, TriggerArg::Manual);
        assert!(!dev.auto_build && dev.auto_sync && !dev.auto_deploy);
        assert_eq!(dev.common.event_log, Some(PathBuf::from("e.jsonl")));
        assert_eq!(dev.common.rpc_http_port, Some(50052));
        assert_eq!(
            parse_port_forward("false"),
            Ok(PortForwardModes(vec![PortForwardArg::Off]))
        );
        assert!(Cli::try_parse_from(["skiff", "dev", "--port-forward=everything"]).is_err());
    }

    #[test]
    fn modules_split_on_commas() {
        let cli = parse(&["diagnose", "-m", "a,b", "--module", "c"]);
        assert_eq!(cli.global.module, ["a", "b", "c"]);
    }

    #[test]
    fn color_defaults_to_true_and_takes_a_boolish_value() {
        assert!(parse(&["version"]).global.color);
        assert!(parse(&["version", "--color"]).global.color);
        assert!(!parse(&["version", "--color=false"]).global.color);
        assert!(!parse(&["version", "--color=0"]).global.color);
    }

    #[test]
    fn verbosity_uses_skaffold_levels() {
        assert_eq!(parse(&["version"]).global.verbosity, Verbosity::Warn);
        assert_eq!(
            parse(&["version", "-v", "debug"]).global.verbosity,
            Verbosity::Debug
        );
        assert!(Cli::try_parse_from(["skiff", "version", "-v", "loud"]).is_err());
    }

    #[test]
    fn build_flags() {
        let cli = parse(&[
            "build",
            "-q",
            "--push",
            "-b",
            "a,b",
            "-t",
            "v1",
            "--cache-artifacts=false",
            "--file-output",
            "out.json",
        ]);
        let Command::Build(args) = cli.command else {
            panic!("expected build");
        };
        assert!(args.quiet);
        assert_eq!(args.push, Some(true));
        assert_eq!(args.build_image, ["a", "b"]);
        assert_eq!(args.tag.as_deref(), Some("v1"));
        assert!(!args.cache_artifacts);
        assert_eq!(args.file_output, Some(PathBuf::from("out.json")));
        let Command::Build(args) = parse(&["build"]).command else {
            panic!("expected build");
        };
        assert_eq!(args.push, None);
        assert!(args.cache_artifacts);
    }

    #[test]
    fn render_flags() {
        let cli = parse(&[
            "render",
            "-o",
            "out.yaml",
            "--offline",
            "--digest-source",
            "none",
            "--images",
            "a=v1,b=v2",
            "-i",
            "c=v3",
            "-a",
            "-",
            "-l",
            "team=blue",
            "--label",
            "x=y,z=w",
            "--run-id",
            "r1",
            "-n",
            "dev",
        ]);
        assert_eq!(cli.command.name(), "render");
        assert_eq!(cli.global.namespace.as_deref(), Some("dev"));
        let Command::Render(args) = cli.command else {
            panic!("expected render");
        };
        assert_eq!(args.output, Some(PathBuf::from("out.yaml")));
        assert!(args.offline);
        assert_eq!(args.source.digest_source.as_deref(), Some("none"));
        assert_eq!(args.source.images, ["a=v1", "b=v2", "c=v3"]);
        assert_eq!(args.source.build_artifacts, Some(PathBuf::from("-")));
        assert_eq!(args.source.labels, ["team=blue", "x=y", "z=w"]);
        assert_eq!(args.source.run_id.as_deref(), Some("r1"));
        assert!(args.source.cache_artifacts);
        let Command::Render(args) = parse(&["render"]).command else {
            panic!("expected render");
        };
        assert!(!args.offline);
        assert_eq!(args.source.digest_source, None);
        assert!(Cli::try_parse_from(["skiff", "render", "--digest-source", "cloud"]).is_err());
    }

    #[test]
    fn deploy_flags() {
        let cli = parse(&[
            "deploy",
            "-a",
            "b.json",
            "--force",
            "--status-check=false",
            "--run-id",
            "r",
        ]);
        let Command::Deploy(args) = cli.command else {
            panic!("expected deploy");
        };
        assert!(args.rollout.force);
        assert_eq!(args.rollout.status_check, Some(false));
        assert_eq!(args.source.build_artifacts, Some(PathBuf::from("b.json")));
        assert_eq!(args.source.run_id.as_deref(), Some("r"));
        assert!(matches!(parse(&["delete"]).command, Command::Delete));
    }

    #[test]
    fn diagnose_flags() {
        let cli = parse(&["diagnose", "--yaml-only", "-o", "out.yaml"]);
        let Command::Diagnose(args) = cli.command else {
            panic!("expected diagnose");
        };
        assert!(args.yaml_only);
        assert_eq!(args.output, Some(PathBuf::from("out.yaml")));
    }
}
