//! Checks serde cannot make: one builder per artifact, valid image names, known enum values,
//! references between artifacts.

use skiff_types::image::ImageRef;

use crate::document::Document;
use crate::error::{ConfigError, Location};
use crate::locate::{Step, locate};
use crate::resolve::EffectiveConfig;
use crate::schema::{
    Artifact, GIT_TAGGER_VARIANT_VALUES, LOGS_CONFIG_PREFIX_VALUES, SkaffoldConfig, TagPolicy,
};
use crate::suggest::suggestion;

fn invalid(
    location: Location,
    field: String,
    message: String,
    help: Option<String>,
) -> ConfigError {
    ConfigError::Invalid {
        location: Some(location),
        field: Some(field),
        message,
        help,
    }
}

/// The builder kinds an artifact sets, as spelled in YAML.
pub(crate) fn builder_kinds(artifact: &Artifact) -> Vec<&'static str> {
    [
        ("docker", artifact.docker.is_some()),
        ("custom", artifact.custom.is_some()),
        ("ko", artifact.ko.is_some()),
        ("bazel", artifact.bazel.is_some()),
        ("jib", artifact.jib.is_some()),
        ("kaniko", artifact.kaniko.is_some()),
        ("buildpacks", artifact.buildpacks.is_some()),
    ]
    .into_iter()
    .filter_map(|(kind, set)| set.then_some(kind))
    .collect()
}

/// The taggers a tag policy sets, as spelled in YAML.
pub(crate) fn tagger_kinds(policy: &TagPolicy) -> Vec<&'static str> {
    [
        ("gitCommit", policy.git_commit.is_some()),
        ("sha256", policy.sha256.is_some()),
        ("envTemplate", policy.env_template.is_some()),
        ("dateTime", policy.date_time.is_some()),
        ("customTemplate", policy.custom_template.is_some()),
        ("inputDigest", policy.input_digest.is_some()),
    ]
    .into_iter()
    .filter_map(|(kind, set)| set.then_some(kind))
    .collect()
}

fn one_of(
    document: &Document,
    path: &[Step<'_>],
    field: &str,
    kinds: &[&str],
    what: &str,
) -> Result<(), ConfigError> {
    if kinds.len() > 1 {
        return Err(invalid(
            locate(document, path),
            field.to_owned(),
            format!(
                "sets {} {what}s ({}); choose one",
                kinds.len(),
                kinds
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None,
        ));
    }
    Ok(())
}

fn known_value(
    document: &Document,
    path: &[Step<'_>],
    field: &str,
    value: Option<&str>,
    allowed: &[&str],
) -> Result<(), ConfigError> {
    match value {
        Some(value) if !allowed.contains(&value) => Err(invalid(
            locate(document, path),
            field.to_owned(),
            format!("unknown value `{value}`"),
            suggestion(value, allowed, "value"),
        )),
        _ => Ok(()),
    }
}

/// Checks within one config.
pub(crate) fn config(document: &Document, config: &SkaffoldConfig) -> Result<(), ConfigError> {
    use Step::{Index, Key};
    if let Some(build) = &config.build {
        for (i, artifact) in build.artifacts.iter().flatten().enumerate() {
            let at = [Key("build"), Key("artifacts"), Index(i)];
            let field = format!("build.artifacts[{i}]");
            one_of(document, &at, &field, &builder_kinds(artifact), "builder")?;
            let image_at = [Key("build"), Key("artifacts"), Index(i), Key("image")];
            match artifact.image.parse::<ImageRef>() {
                Err(error) => {
                    return Err(invalid(
                        locate(document, &image_at),
                        format!("{field}.image"),
                        error.to_string(),
                        None,
                    ));
                }
                Ok(image) if image.tag().is_some() || image.digest().is_some() => {
                    return Err(invalid(
                        locate(document, &image_at),
                        format!("{field}.image"),
                        format!(
                            "image `{}` carries a tag or digest; skiff chooses the tag",
                            artifact.image
                        ),
                        Some(format!(
                            "write `image: {}` and set a tagPolicy",
                            image.repository()
                        )),
                    ));
                }
                Ok(_) => {}
            }
        }
        let tag_kinds = build
            .tag_policy
            .as_ref()
            .map(tagger_kinds)
            .unwrap_or_default();
        one_of(
            document,
            &[Key("build"), Key("tagPolicy")],
            "build.tagPolicy",
            &tag_kinds,
            "tagger",
        )?;
        let variant = build
            .tag_policy
            .as_ref()
            .and_then(|p| p.git_commit.as_ref())
            .and_then(|g| g.variant.as_deref());
        known_value(
            document,
            &[
                Key("build"),
                Key("tagPolicy"),
                Key("gitCommit"),
                Key("variant"),
            ],
            "build.tagPolicy.gitCommit.variant",
            variant,
            GIT_TAGGER_VARIANT_VALUES,
        )?;
        let build_kinds: Vec<&str> = [
            ("local", build.local.is_some()),
            ("cluster", build.cluster.is_some()),
            ("googleCloudBuild", build.google_cloud_build.is_some()),
        ]
        .into_iter()
        .filter_map(|(kind, set)| set.then_some(kind))
        .collect();
        one_of(
            document,
            &[Key("build")],
            "build",
            &build_kinds,
            "build environment",
        )?;
    }
    if let Some(deploy) = &config.deploy {
        let prefix = deploy.logs.as_ref().and_then(|l| l.prefix.as_deref());
        known_value(
            document,
            &[Key("deploy"), Key("logs"), Key("prefix")],
            "deploy.logs.prefix",
            prefix,
            LOGS_CONFIG_PREFIX_VALUES,
        )?;
        if let Some(deadline) = deploy.status_check_deadline_seconds.filter(|d| *d <= 0) {
            return Err(invalid(
                locate(
                    document,
                    &[Key("deploy"), Key("statusCheckDeadlineSeconds")],
                ),
                "deploy.statusCheckDeadlineSeconds".to_owned(),
                format!("must be a positive number of seconds, not {deadline}"),
                None,
            ));
        }
    }
    Ok(())
}

/// Checks across all loaded configs: artifact images are unique, and `requires` between
/// artifacts names artifacts that exist.
pub(crate) fn across_configs(configs: &[EffectiveConfig]) -> Result<(), ConfigError> {
    let artifacts: Vec<(&EffectiveConfig, &Artifact)> = configs
        .iter()
        .flat_map(|c| {
            c.config
                .build
                .iter()
                .flat_map(|b| b.artifacts.iter().flatten())
                .map(move |a| (c, a))
        })
        .collect();
    for (i, (config, artifact)) in artifacts.iter().enumerate() {
        if let Some((other, _)) = artifacts[..i]
            .iter()
            .find(|(_, a)| a.image == artifact.image)
        {
            return Err(ConfigError::Invalid {
                location: None,
                field: Some("build.artifacts".to_owned()),
                message: format!(
                    "image `{}` is built by two artifacts ({} and {}); each image needs one artifact",
                    artifact.image,
                    other.file.display(),
                    config.file.display()
                ),
                help: None,
            });
        }
        for dependency in artifact.requires.iter().flatten() {
            if !artifacts.iter().any(|(_, a)| a.image == dependency.image) {
                return Err(ConfigError::Invalid {
                    location: None,
                    field: Some("build.artifacts[].requires".to_owned()),
                    message: format!(
                        "artifact `{}` requires `{}`, which no artifact builds ({})",
                        artifact.image,
                        dependency.image,
                        config.file.display()
                    ),
                    help: None,
                });
            }
        }
    }
    Ok(())
}
