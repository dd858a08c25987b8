//! The fields Skaffold templates, rendered once at load time.
//!
//! A template that needs only environment variables is rendered here and replaced by its
//! result. One that uses `IMAGE_*` variables (which exist only after a build) keeps its source,
//! but is still checked now: its syntax, and that every other variable it uses is set or has a
//! default — so a typo fails at start-up, naming the field, not halfway through a build.

use std::collections::BTreeMap;
use std::path::Path;

use skiff_types::template::{LayeredVars, Template, TemplateError, Vars};

use crate::error::ConfigError;
use crate::schema::{HelmRelease, SkaffoldConfig};

/// Names a build provides; templates that use them are rendered by the stages.
fn is_build_variable(name: &str) -> bool {
    name.starts_with("IMAGE_")
}

/// Stands in for every `IMAGE_*` variable while checking deferred templates.
struct BuildPlaceholders;

impl Vars for BuildPlaceholders {
    fn get(&self, name: &str) -> Option<&str> {
        is_build_variable(name).then_some("placeholder")
    }
}

struct Renderer<'a> {
    file: &'a Path,
    env: &'a BTreeMap<String, String>,
}

impl Renderer<'_> {
    fn field(&self, field: String, value: &mut String) -> Result<(), ConfigError> {
        let error = |source: TemplateError| ConfigError::Template {
            file: self.file.to_path_buf(),
            field: field.clone(),
            source,
        };
        let template = Template::parse(value).map_err(error)?;
        if template.is_literal() {
            return Ok(());
        }
        let deferred = template.variables().iter().any(|v| is_build_variable(v));
        let vars = LayeredVars(vec![self.env, &BuildPlaceholders]);
        let rendered = template.render(&vars).map_err(error)?;
        if !deferred {
            *value = rendered;
        }
        Ok(())
    }

    fn list(&self, field: &str, values: Option<&mut Vec<String>>) -> Result<(), ConfigError> {
        for (i, value) in values.into_iter().flatten().enumerate() {
            self.field(format!("{field}[{i}]"), value)?;
        }
        Ok(())
    }

    fn option(&self, field: String, value: Option<&mut String>) -> Result<(), ConfigError> {
        match value {
            Some(value) => self.field(field, value),
            None => Ok(()),
        }
    }

    fn helm_releases(&self, prefix: &str, releases: &mut [HelmRelease]) -> Result<(), ConfigError> {
        for (i, release) in releases.iter_mut().enumerate() {
            let at = format!("{prefix}[{i}]");
            self.field(format!("{at}.name"), &mut release.name)?;
            self.option(format!("{at}.chartPath"), release.chart_path.as_mut())?;
            self.option(format!("{at}.namespace"), release.namespace.as_mut())?;
            self.option(format!("{at}.version"), release.version.as_mut())?;
            self.list(&format!("{at}.valuesFiles"), release.values_files.as_mut())?;
            if let Some(templates) = release.set_value_templates.as_mut() {
                for (key, value) in templates.0.iter_mut() {
                    self.field(format!("{at}.setValueTemplates.{key}"), value)?;
                }
            }
        }
        Ok(())
    }
}

/// Render (or check, when they need a build) every templated field of `config`.
pub(crate) fn render_env_templates(
    file: &Path,
    config: &mut SkaffoldConfig,
    env: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let r = Renderer { file, env };
    if let Some(build) = config.build.as_mut() {
        for (i, artifact) in build.artifacts.iter_mut().flatten().enumerate() {
            let at = format!("build.artifacts[{i}]");
            if let Some(args) = artifact.docker.as_mut().and_then(|d| d.build_args.as_mut()) {
                for (key, value) in args.0.iter_mut() {
                    r.option(format!("{at}.docker.buildArgs.{key}"), value.as_mut())?;
                }
            }
            if let Some(ko) = artifact.ko.as_mut() {
                r.list(&format!("{at}.ko.env"), ko.env.as_mut())?;
                r.list(&format!("{at}.ko.flags"), ko.flags.as_mut())?;
                r.list(&format!("{at}.ko.ldflags"), ko.ldflags.as_mut())?;
                if let Some(labels) = ko.labels.as_mut() {
                    for (key, value) in labels.0.iter_mut() {
                        r.field(format!("{at}.ko.labels.{key}"), value)?;
                    }
                }
            }
        }
        if let Some(policy) = build.tag_policy.as_mut() {
            if let Some(tagger) = policy.env_template.as_mut() {
                r.field(
                    "build.tagPolicy.envTemplate.template".into(),
                    &mut tagger.template,
                )?;
            }
        }
    }
    if let Some(manifests) = config.manifests.as_mut() {
        if let Some(kustomize) = manifests.kustomize.as_mut() {
            r.list("manifests.kustomize.paths", kustomize.paths.as_mut())?;
        }
        if let Some(helm) = manifests.helm.as_mut() {
            r.helm_releases("manifests.helm.releases", &mut helm.releases)?;
        }
    }
    if let Some(deploy) = config.deploy.as_mut() {
        if let Some(kubectl) = deploy.kubectl.as_mut() {
            r.option(
                "deploy.kubectl.defaultNamespace".into(),
                kubectl.default_namespace.as_mut(),
            )?;
        }
        if let Some(releases) = deploy.helm.as_mut().and_then(|h| h.releases.as_mut()) {
            r.helm_releases("deploy.helm.releases", releases)?;
        }
    }
    for (i, forward) in config.port_forward.iter_mut().flatten().enumerate() {
        r.option(
            format!("portForward[{i}].namespace"),
            forward.namespace.as_mut(),
        )?;
        r.option(
            format!("portForward[{i}].resourceName"),
            forward.resource_name.as_mut(),
        )?;
    }
    Ok(())
}
