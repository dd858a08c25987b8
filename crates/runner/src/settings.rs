//! Typed stage options from the effective configuration: the one place that reads the schema
//! on the stages' behalf.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use skiff_build::ArtifactSpec;
use skiff_build::artifact::{
    BuilderSpec, CustomDependencies, CustomSpec, DockerSecret, DockerSpec, DockerfileDependency,
    KoSpec, Requirement,
};
use skiff_build::tag::{GitCommitOptions, TagPolicy};
use skiff_config::EffectiveConfig;
use skiff_config::schema::{self, Artifact};
use skiff_hooks::HostHook;
use skiff_types::template::{Template, TemplateError};

use crate::RunnerError;

/// Build settings for all artifacts of the loaded configs.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildSettings {
    /// Every artifact, in configuration order.
    pub artifacts: Vec<ArtifactSpec>,
    /// How tags are chosen, per artifact (same order).
    pub tag_policies: Vec<TagPolicy>,
    /// `build.local.push`: `None` means decide by the target cluster.
    pub push: Option<bool>,
    /// `build.local.concurrency` (0 = as many as there are artifacts).
    pub concurrency: usize,
    /// `build.local.useBuildkit`.
    pub use_buildkit: bool,
    /// `build.insecureRegistries`.
    pub insecure_registries: Vec<String>,
    /// Whether `dev` may rebuild Docker artifacts warm ([`skiff_build::warm`]); off when a
    /// config's `metadata.annotations` says `skiff.dev/warm-builds: "false"` (a place
    /// Skaffold reads and ignores).
    pub warm_builds: bool,
    /// Per artifact (same order): `build.artifacts[].hooks`, run around its build.
    pub artifact_hooks: Vec<BuildHooks>,
    /// `build.hooks`: run before and after the whole build.
    pub hooks: BuildHooks,
}

/// Host commands run before and after a build (`hooks.before`, `hooks.after`), their `dir`
/// resolved against their config's directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildHooks {
    /// `before`.
    pub before: Vec<HostHook>,
    /// `after`.
    pub after: Vec<HostHook>,
}

impl BuildHooks {
    fn of(base_dir: &Path, hooks: Option<&schema::BuildHooks>) -> BuildHooks {
        let convert = |hooks: Option<&Vec<schema::HostHook>>| -> Vec<HostHook> {
            hooks
                .into_iter()
                .flatten()
                .map(|hook| host_hook(base_dir, hook))
                .collect()
        };
        BuildHooks {
            before: convert(hooks.and_then(|h| h.before.as_ref())),
            after: convert(hooks.and_then(|h| h.after.as_ref())),
        }
    }
}

/// A `HostHook` of the config whose files are in `base_dir`.
pub(crate) fn host_hook(base_dir: &Path, hook: &schema::HostHook) -> HostHook {
    HostHook {
        command: hook.command.clone(),
        os: hook.os.clone().unwrap_or_default(),
        dir: hook.dir.as_ref().map(|dir| base_dir.join(dir)),
    }
}

/// The `metadata.annotations` key that turns warm rebuilds off for a config.
pub const WARM_BUILDS_ANNOTATION: &str = "skiff.dev/warm-builds";

fn template(image: &str, field: String, source: &str) -> Result<Template, RunnerError> {
    Template::parse(source).map_err(|source: TemplateError| RunnerError::Template {
        image: image.to_owned(),
        field,
        source,
    })
}

/// Fails with the first template under `prefixes` that a variable that is not set left
/// unexpanded: the stage about to use those fields cannot, as in Skaffold.
pub(crate) fn unresolved_templates(
    configs: &[EffectiveConfig],
    prefixes: &[&str],
) -> Result<(), RunnerError> {
    match configs.iter().find_map(|c| c.unresolved_under(prefixes)) {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}

/// The build settings of `configs` (each config's paths are relative to its own file).
pub fn build_settings(configs: &[EffectiveConfig]) -> Result<BuildSettings, RunnerError> {
    // An `envTemplate` tagger whose variable is not set keeps its source: the tagger renders
    // it when tagging and fails there, naming the variable, as Skaffold does.
    let mut settings = BuildSettings {
        artifacts: Vec::new(),
        tag_policies: Vec::new(),
        push: None,
        concurrency: 1,
        use_buildkit: false,
        insecure_registries: Vec::new(),
        warm_builds: true,
        artifact_hooks: Vec::new(),
        hooks: BuildHooks::default(),
    };
    for config in configs {
        let annotation = config
            .config
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.0.get(WARM_BUILDS_ANNOTATION));
        match annotation.map(|v| v.trim().to_ascii_lowercase()) {
            None => {}
            Some(v) if v == "false" => settings.warm_builds = false,
            Some(v) if v == "true" => {}
            Some(other) => {
                return Err(RunnerError::Settings {
                    message: format!(
                        "{}: metadata.annotations.{WARM_BUILDS_ANNOTATION} is {other:?}; use \"true\" or \"false\"",
                        config.file.display()
                    ),
                });
            }
        }
        let Some(build) = &config.config.build else {
            continue;
        };
        if let Some(local) = &build.local {
            settings.push = settings.push.or(local.push);
            settings.concurrency = usize::try_from(local.concurrency.unwrap_or(1)).unwrap_or(1);
            settings.use_buildkit |= local.use_buildkit.unwrap_or(false);
        }
        settings
            .insecure_registries
            .extend(build.insecure_registries.iter().flatten().cloned());
        // `useDockerCLI: true` asks for Docker's own build: skiff then never assembles
        // Dockerfile images itself.
        let daemon_build = build
            .local
            .as_ref()
            .and_then(|l| l.use_docker_cli)
            .unwrap_or(false);
        let phase_hooks = BuildHooks::of(config.base_dir(), build.hooks.as_ref());
        settings.hooks.before.extend(phase_hooks.before);
        settings.hooks.after.extend(phase_hooks.after);
        for artifact in build.artifacts.iter().flatten() {
            settings
                .artifacts
                .push(artifact_spec(config.base_dir(), artifact, daemon_build)?);
            // `build.platforms` applies to artifacts that name none themselves.
            let spec = settings
                .artifacts
                .last_mut()
                .filter(|s| s.platforms.is_empty());
            if let (Some(spec), Some(platforms)) = (spec, &build.platforms) {
                spec.platforms.clone_from(platforms);
            }
            settings
                .artifact_hooks
                .push(BuildHooks::of(config.base_dir(), artifact.hooks.as_ref()));
            settings
                .tag_policies
                .push(tag_policy(&artifact.image, build.tag_policy.as_ref())?);
        }
    }
    Ok(settings)
}

fn artifact_spec(
    base_dir: &Path,
    artifact: &Artifact,
    daemon_build: bool,
) -> Result<ArtifactSpec, RunnerError> {
    let image = &artifact.image;
    // Lexically clean (`/src/app/.` is `/src/app`), as hooks and messages show it.
    let context: PathBuf = base_dir
        .join(artifact.context.as_deref().unwrap_or("."))
        .components()
        .collect();
    let builder = if let Some(docker) = &artifact.docker {
        let mut build_args = BTreeMap::new();
        for (key, value) in docker.build_args.iter().flat_map(|a| a.0.iter()) {
            let value = value
                .as_deref()
                .map(|v| template(image, format!("docker.buildArgs.{key}"), v))
                .transpose()?;
            build_args.insert(key.clone(), value);
        }
        BuilderSpec::Docker(DockerSpec {
            dockerfile: docker
                .dockerfile
                .clone()
                .unwrap_or_else(|| "Dockerfile".into()),
            target: docker.target.clone(),
            build_args,
            network: docker.network.clone(),
            add_hosts: docker.add_host.clone().unwrap_or_default(),
            cache_from: docker.cache_from.clone().unwrap_or_default(),
            no_cache: docker.no_cache.unwrap_or(false),
            pull_parent: docker.pull_parent.unwrap_or(false),
            secrets: docker
                .secrets
                .iter()
                .flatten()
                .map(|s| DockerSecret {
                    id: s.id.clone(),
                    src: s.src.as_ref().map(|p| context.join(p)),
                    env: s.env.clone(),
                })
                .collect(),
            ssh: docker.ssh.clone(),
            cli_flags: docker.cli_flags.clone().unwrap_or_default(),
            daemon_build,
        })
    } else if let Some(ko) = &artifact.ko {
        let dependencies = ko.dependencies.as_ref();
        BuilderSpec::Ko(KoSpec {
            from_image: ko.from_image.clone(),
            dir: ko.dir.clone().unwrap_or_else(|| ".".into()),
            main: ko.main.clone().unwrap_or_else(|| ".".into()),
            env: ko.env.clone().unwrap_or_default(),
            flags: ko.flags.clone().unwrap_or_default(),
            ldflags: ko.ldflags.clone().unwrap_or_default(),
            labels: ko.labels.clone().map(|l| l.0).unwrap_or_default(),
            dependency_paths: dependencies
                .and_then(|d| d.paths.clone())
                .unwrap_or_else(|| vec!["**/*.go".into()]),
            dependency_ignore: dependencies
                .and_then(|d| d.ignore.clone())
                .unwrap_or_default(),
        })
    } else if let Some(custom) = &artifact.custom {
        let dependencies = custom.dependencies.as_ref();
        BuilderSpec::Custom(CustomSpec {
            build_command: custom.build_command.clone(),
            dependencies: CustomDependencies {
                paths: dependencies
                    .and_then(|d| d.paths.clone())
                    .unwrap_or_default(),
                ignore: dependencies
                    .and_then(|d| d.ignore.clone())
                    .unwrap_or_default(),
                dockerfile: dependencies.and_then(|d| d.dockerfile.as_ref()).map(|d| {
                    DockerfileDependency {
                        path: d.path.clone().unwrap_or_else(|| "Dockerfile".into()),
                        build_args: d.build_args.clone().map(|a| a.0).unwrap_or_default(),
                    }
                }),
                command: dependencies.and_then(|d| d.command.clone()),
            },
        })
    } else {
        let kind = skiff_config::builder_kinds(artifact)
            .first()
            .copied()
            .unwrap_or("unknown");
        BuilderSpec::Unsupported {
            kind: kind.to_owned(),
        }
    };
    Ok(ArtifactSpec {
        image: image.clone(),
        context,
        builder,
        requires: artifact
            .requires
            .iter()
            .flatten()
            .map(|r| Requirement {
                image: r.image.clone(),
                alias: r.alias.clone(),
            })
            .collect(),
        platforms: artifact.platforms.clone().unwrap_or_default(),
    })
}

fn git_options(image: &str, git: &schema::GitTagger) -> Result<GitCommitOptions, RunnerError> {
    Ok(GitCommitOptions {
        variant: git.variant.as_deref().unwrap_or_default().parse().map_err(
            |error: skiff_build::tag::UnknownGitVariant| RunnerError::Settings {
                message: format!("artifact {image}: unknown gitCommit variant `{}`", error.0),
            },
        )?,
        prefix: git.prefix.clone(),
        ignore_changes: git.ignore_changes.unwrap_or(false),
    })
}

fn tag_policy(image: &str, policy: Option<&schema::TagPolicy>) -> Result<TagPolicy, RunnerError> {
    let Some(policy) = policy else {
        return Ok(TagPolicy::GitCommit(GitCommitOptions::default()));
    };
    if let Some(git) = &policy.git_commit {
        return Ok(TagPolicy::GitCommit(git_options(image, git)?));
    }
    if policy.sha256.is_some() {
        return Ok(TagPolicy::Sha256);
    }
    if policy.input_digest.is_some() {
        return Ok(TagPolicy::InputDigest);
    }
    if let Some(date) = &policy.date_time {
        return Ok(TagPolicy::DateTime {
            format: date.format.clone(),
            timezone: date.timezone.clone(),
        });
    }
    if let Some(env) = &policy.env_template {
        return Ok(TagPolicy::EnvTemplate {
            template: template(
                image,
                "tagPolicy.envTemplate.template".into(),
                &env.template,
            )?,
        });
    }
    if let Some(custom) = &policy.custom_template {
        let mut components = Vec::new();
        for component in custom.components.iter().flatten() {
            let name = component.name.clone().unwrap_or_default();
            let nested = schema::TagPolicy {
                git_commit: component.git_commit.clone(),
                sha256: component.sha256.clone(),
                env_template: component.env_template.clone(),
                date_time: component.date_time.clone(),
                custom_template: component.custom_template.clone(),
                input_digest: component.input_digest.clone(),
            };
            components.push((name, tag_policy(image, Some(&nested))?));
        }
        return Ok(TagPolicy::CustomTemplate {
            template: template(
                image,
                "tagPolicy.customTemplate.template".into(),
                &custom.template,
            )?,
            components,
        });
    }
    tag_policy(image, None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn settings(yaml: &str) -> BuildSettings {
        let config = EffectiveConfig {
            file: std::path::PathBuf::from("/p/skaffold.yaml"),
            active_profiles: Vec::new(),
            config: serde_yaml::from_str(yaml).unwrap(),
            unresolved_templates: Vec::new(),
        };
        build_settings(&[config]).unwrap()
    }

    #[test]
    fn build_hooks_are_read_with_their_dir_relative_to_the_config() {
        let s = settings(
            "apiVersion: skaffold/v4beta14\nkind: Config\nbuild:\n  hooks:\n    after:\n    - command: [notify]\n  artifacts:\n  - image: web\n    hooks:\n      before:\n      - command: [sh, -c, 'echo $SKAFFOLD_IMAGE']\n        os: [linux]\n        dir: scripts\n  - image: api\n",
        );
        assert_eq!(s.artifact_hooks.len(), 2);
        let before = &s.artifact_hooks[0].before[0];
        assert_eq!(before.command[0], "sh");
        assert_eq!(before.os, ["linux"]);
        assert_eq!(before.dir.as_deref(), Some(Path::new("/p/scripts")));
        assert_eq!(s.artifact_hooks[1], BuildHooks::default());
        assert_eq!(s.hooks.after[0].command, ["notify"]);
        assert!(s.hooks.before.is_empty());
    }

    #[test]
    fn ko_artifacts_and_the_docker_cli_opt_out_are_read() {
        let s = settings(
            "apiVersion: skaffold/v4beta14\nkind: Config\nbuild:\n  local:\n    useDockerCLI: true\n  artifacts:\n  - image: web\n    docker: {}\n  - image: gopher\n    ko:\n      fromImage: 127.0.0.1:5000/base:v1\n      main: ./cmd/server\n      ldflags: [\"-s\"]\n      env: [\"GOFLAGS=-v\"]\n      labels: {a: b}\n",
        );
        let BuilderSpec::Docker(docker) = &s.artifacts[0].builder else {
            panic!("{:?}", s.artifacts[0]);
        };
        assert!(docker.daemon_build);
        let BuilderSpec::Ko(ko) = &s.artifacts[1].builder else {
            panic!("{:?}", s.artifacts[1]);
        };
        assert_eq!(ko.from_image.as_deref(), Some("127.0.0.1:5000/base:v1"));
        assert_eq!(ko.main, "./cmd/server");
        assert_eq!(ko.dir, ".");
        assert_eq!(ko.ldflags, ["-s"]);
        assert_eq!(ko.env, ["GOFLAGS=-v"]);
        assert_eq!(ko.labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(ko.dependency_paths, ["**/*.go"]);
    }
}
