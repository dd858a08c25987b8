//! What to build: the typed options of one artifact, resolved from the configuration by the
//! runner. This crate never sees `skaffold.yaml` itself.

use std::collections::BTreeMap;
use std::path::PathBuf;

use skiff_types::template::Template;

/// One artifact to build.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactSpec {
    /// The image name as configured (`build.artifacts[].image`), before `--default-repo`.
    pub image: String,
    /// The context directory (absolute).
    pub context: PathBuf,
    /// How to build it.
    pub builder: BuilderSpec,
    /// Artifacts this one needs built first; their images reach the build as build args named
    /// by `alias`.
    pub requires: Vec<Requirement>,
    /// Target platforms (`linux/amd64`, …); empty means the engine's own.
    pub platforms: Vec<String>,
}

impl ArtifactSpec {
    /// The build args naming required artifacts: each aliased requirement → what `reference`
    /// gives for its image (its built reference, or its name before it is built); requirements
    /// `reference` knows nothing of are left out.
    ///
    /// ```
    /// use skiff_build::artifact::{ArtifactSpec, BuilderSpec, Requirement};
    ///
    /// let app = ArtifactSpec {
    ///     image: "app".into(),
    ///     context: ".".into(),
    ///     builder: BuilderSpec::Unsupported { kind: "example".into() },
    ///     requires: vec![
    ///         Requirement { image: "base".into(), alias: Some("BASE".into()) },
    ///         Requirement { image: "tools".into(), alias: None },
    ///     ],
    ///     platforms: vec![],
    /// };
    /// let args = app.requirement_args(|image| Some(format!("{image}:v1")));
    /// assert_eq!(args.into_iter().collect::<Vec<_>>(), [("BASE".to_owned(), "base:v1".to_owned())]);
    /// ```
    pub fn requirement_args(
        &self,
        reference: impl Fn(&str) -> Option<String>,
    ) -> BTreeMap<String, String> {
        self.requires
            .iter()
            .filter_map(|r| Some((r.alias.clone()?, reference(&r.image)?)))
            .collect()
    }

    /// The `ARG` values a Dockerfile of this artifact sees before anything is built: the
    /// required artifacts' image names by alias, then `docker`'s `buildArgs` (unexpanded
    /// templates as written; `None` when only declared).
    pub fn dockerfile_args(&self, docker: &DockerSpec) -> BTreeMap<String, Option<String>> {
        self.requirement_args(|image| Some(image.to_owned()))
            .into_iter()
            .map(|(alias, image)| (alias, Some(image)))
            .chain(
                docker
                    .build_args
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_ref().map(|t| t.source().to_owned()))),
            )
            .collect()
    }
}

/// An artifact this one depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The required artifact's image name.
    pub image: String,
    /// The build-arg name its built reference is passed as; `None` means it is only ordered.
    pub alias: Option<String>,
}

/// The builder kind and its options.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BuilderSpec {
    /// A Dockerfile built by the Docker engine.
    Docker(DockerSpec),
    /// A user command that produces the image.
    Custom(CustomSpec),
    /// A Go program built with `go build` and put on a base image, as `ko` does.
    Ko(KoSpec),
    /// A builder kind skiff parses but does not run (`jib`, `bazel`, …); building fails,
    /// naming it.
    Unsupported {
        /// The kind, as spelled in skaffold.yaml.
        kind: String,
    },
}

impl BuilderSpec {
    /// The kind, as spelled in skaffold.yaml.
    pub fn kind(&self) -> &str {
        match self {
            BuilderSpec::Docker(_) => "docker",
            BuilderSpec::Custom(_) => "custom",
            BuilderSpec::Ko(_) => "ko",
            BuilderSpec::Unsupported { kind } => kind,
        }
    }
}

/// `docker:` options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DockerSpec {
    /// The Dockerfile, relative to the context (default `Dockerfile`).
    pub dockerfile: String,
    /// The stage to build (`--target`).
    pub target: Option<String>,
    /// Build args; templates may use `IMAGE_REPO`, `IMAGE_TAG`, `IMAGE_NAME` and the
    /// environment. `None` takes the value from the environment, as Docker does.
    pub build_args: BTreeMap<String, Option<Template>>,
    /// `--network`.
    pub network: Option<String>,
    /// `--add-host` entries (`host:ip`).
    pub add_hosts: Vec<String>,
    /// Images to use as cache sources.
    pub cache_from: Vec<String>,
    /// Do not use the engine's layer cache.
    pub no_cache: bool,
    /// Always try to pull newer base images.
    pub pull_parent: bool,
    /// Build secrets (BuildKit only).
    pub secrets: Vec<DockerSecret>,
    /// SSH agent forwarding (BuildKit only).
    pub ssh: Option<String>,
    /// Extra `docker build` flags (only meaningful for the Docker CLI).
    pub cli_flags: Vec<String>,
    /// Build with the Docker engine even when skiff could assemble the image itself (the
    /// Dockerfile has no `RUN`): `--docker-daemon-build` or `build.local.useDockerCLI`.
    pub daemon_build: bool,
}

/// `ko:` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KoSpec {
    /// The base image (`fromImage`); `None` means `scratch` (nothing can be pulled from the
    /// internet here, so ko's distroless default is not used).
    pub from_image: Option<String>,
    /// The directory `go build` runs in, relative to the context (`dir`, default `.`).
    pub dir: String,
    /// The main package (`main`, default `.`), relative to `dir`.
    pub main: String,
    /// `KEY=value` entries added to `go build`'s environment (`env`).
    pub env: Vec<String>,
    /// Extra `go build` flags (`flags`).
    pub flags: Vec<String>,
    /// Linker flags (`ldflags`).
    pub ldflags: Vec<String>,
    /// Labels added to the image config (`labels`).
    pub labels: BTreeMap<String, String>,
    /// Globs (relative to the context) of the files the image depends on
    /// (`dependencies.paths`, default `**/*.go`, plus `go.mod`/`go.sum`).
    pub dependency_paths: Vec<String>,
    /// Globs to leave out (`dependencies.ignore`).
    pub dependency_ignore: Vec<String>,
}

/// One `docker.secrets` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerSecret {
    /// The secret's id in the Dockerfile.
    pub id: String,
    /// A file holding it.
    pub src: Option<PathBuf>,
    /// An environment variable holding it.
    pub env: Option<String>,
}

/// `custom:` options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomSpec {
    /// The shell command that builds (and, when asked, pushes) `$IMAGE`.
    pub build_command: Option<String>,
    /// What the artifact depends on.
    pub dependencies: CustomDependencies,
}

/// `custom.dependencies`: how to find the files a custom artifact depends on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomDependencies {
    /// Globs relative to the context.
    pub paths: Vec<String>,
    /// Globs relative to the context to leave out.
    pub ignore: Vec<String>,
    /// A Dockerfile whose `COPY`/`ADD` sources are the dependencies.
    pub dockerfile: Option<DockerfileDependency>,
    /// A command printing a JSON array of paths.
    pub command: Option<String>,
}

/// `custom.dependencies.dockerfile`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerfileDependency {
    /// The Dockerfile, relative to the context.
    pub path: String,
    /// Build args used while reading it (for `ARG` substitution).
    pub build_args: BTreeMap<String, Option<String>>,
}
