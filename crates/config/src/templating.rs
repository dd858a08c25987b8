//! The fields Skaffold templates, rendered once at load time (the environment does not change
//! during a run, so this gives what Skaffold's expansion at use gives).
//!
//! A template that needs only environment variables is rendered here and replaced by its
//! result. One that uses `IMAGE_*` variables (which exist only after a build) keeps its source,
//! but is still checked now: its syntax, and the variables it needs. A variable that is not set
//! is what Skaffold makes of it in that field: `<no value>` (with a warning naming the field)
//! where Skaffold expands leniently, an error naming the field where it is strict.

use std::collections::BTreeMap;
use std::path::Path;

use skiff_types::template::{LayeredVars, MissingKey, Template, TemplateError, Vars};

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

/// A templated field whose template prints a variable that is not set (so it gave
/// `<no value>`, as Skaffold's does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnsetVariable {
    /// The field, as a dotted path (`build.artifacts[0].docker.buildArgs.KEY`).
    pub field: String,
    /// The variable.
    pub name: String,
}

/// A field where Skaffold is strict about variables, whose template needs one that is not
/// set. Skaffold fails only where it uses the field (helm release names when rendering, the
/// tagger when building, …), so the stage that uses it reports this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnresolvedTemplate {
    /// The file.
    pub file: std::path::PathBuf,
    /// The field, as a dotted path.
    pub field: String,
    /// Why it cannot be expanded.
    pub error: TemplateError,
}

impl UnresolvedTemplate {
    /// The error to report where the field is used.
    pub fn to_error(&self) -> ConfigError {
        ConfigError::Template {
            file: self.file.clone(),
            field: self.field.clone(),
            source: self.error.clone(),
        }
    }
}

/// What rendering a config's templates left to report.
#[derive(Debug, Default)]
pub(crate) struct Rendered {
    pub unset: Vec<UnsetVariable>,
    pub unresolved: Vec<UnresolvedTemplate>,
}

struct Renderer<'a> {
    file: &'a Path,
    env: &'a BTreeMap<String, String>,
    out: Rendered,
}

impl Renderer<'_> {
    /// Renders `value` in place. `missing` is what Skaffold does there with a variable that
    /// is not set: most fields go through its lenient `ExpandEnvTemplate` (`<no value>`);
    /// helm release names, chart paths, namespaces and versions, port-forward targets and
    /// taggers fail instead.
    fn field(
        &mut self,
        field: String,
        value: &mut String,
        missing: MissingKey,
    ) -> Result<(), ConfigError> {
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
        let rendered = match template.render_with(&vars, missing) {
            Ok(rendered) => rendered,
            Err(source @ TemplateError::MissingVariable { .. }) => {
                self.out.unresolved.push(UnresolvedTemplate {
                    file: self.file.to_path_buf(),
                    field,
                    error: source,
                });
                return Ok(());
            }
            Err(source) => return Err(error(source)),
        };
        for name in template.unset_variables(&vars) {
            self.out.unset.push(UnsetVariable {
                field: field.clone(),
                name: name.to_owned(),
            });
        }
        if !deferred {
            *value = rendered;
        }
        Ok(())
    }

    fn lenient(&mut self, field: String, value: &mut String) -> Result<(), ConfigError> {
        self.field(field, value, MissingKey::NoValue)
    }

    fn strict(&mut self, field: String, value: &mut String) -> Result<(), ConfigError> {
        self.field(field, value, MissingKey::Error)
    }

    fn list(&mut self, field: &str, values: Option<&mut Vec<String>>) -> Result<(), ConfigError> {
        for (i, value) in values.into_iter().flatten().enumerate() {
            self.lenient(format!("{field}[{i}]"), value)?;
        }
        Ok(())
    }

    fn option(
        &mut self,
        field: String,
        value: Option<&mut String>,
        missing: MissingKey,
    ) -> Result<(), ConfigError> {
        match value {
            Some(value) => self.field(field, value, missing),
            None => Ok(()),
        }
    }

    fn helm_releases(
        &mut self,
        prefix: &str,
        releases: &mut [HelmRelease],
    ) -> Result<(), ConfigError> {
        use MissingKey::{Error, NoValue};
        for (i, release) in releases.iter_mut().enumerate() {
            let at = format!("{prefix}[{i}]");
            self.strict(format!("{at}.name"), &mut release.name)?;
            self.option(
                format!("{at}.chartPath"),
                release.chart_path.as_mut(),
                Error,
            )?;
            self.option(format!("{at}.namespace"), release.namespace.as_mut(), Error)?;
            self.option(format!("{at}.version"), release.version.as_mut(), Error)?;
            self.list(&format!("{at}.valuesFiles"), release.values_files.as_mut())?;
            if let Some(templates) = release.set_value_templates.as_mut() {
                for (key, value) in templates.0.iter_mut() {
                    self.option(
                        format!("{at}.setValueTemplates.{key}"),
                        Some(value),
                        NoValue,
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// Render (or check, when they need a build) every templated field of `config`.
///
/// Returns the variables that are not set where a template printed them, and the fields
/// left unexpanded because Skaffold is strict there.
pub(crate) fn render_env_templates(
    file: &Path,
    config: &mut SkaffoldConfig,
    env: &BTreeMap<String, String>,
) -> Result<Rendered, ConfigError> {
    use MissingKey::{Error, NoValue};
    let mut r = Renderer {
        file,
        env,
        out: Rendered::default(),
    };
    if let Some(build) = config.build.as_mut() {
        for (i, artifact) in build.artifacts.iter_mut().flatten().enumerate() {
            let at = format!("build.artifacts[{i}]");
            if let Some(args) = artifact.docker.as_mut().and_then(|d| d.build_args.as_mut()) {
                for (key, value) in args.0.iter_mut() {
                    r.option(
                        format!("{at}.docker.buildArgs.{key}"),
                        value.as_mut(),
                        NoValue,
                    )?;
                }
            }
            if let Some(ko) = artifact.ko.as_mut() {
                r.list(&format!("{at}.ko.env"), ko.env.as_mut())?;
                r.list(&format!("{at}.ko.flags"), ko.flags.as_mut())?;
                r.list(&format!("{at}.ko.ldflags"), ko.ldflags.as_mut())?;
                if let Some(labels) = ko.labels.as_mut() {
                    for (key, value) in labels.0.iter_mut() {
                        r.lenient(format!("{at}.ko.labels.{key}"), value)?;
                    }
                }
            }
        }
        if let Some(policy) = build.tag_policy.as_mut() {
            if let Some(tagger) = policy.env_template.as_mut() {
                // Skaffold renders `<no value>` here, which then fails as a tag; failing with
                // the variable's name says more.
                r.strict(
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
                NoValue,
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
            Error,
        )?;
        r.option(
            format!("portForward[{i}].resourceName"),
            forward.resource_name.as_mut(),
            Error,
        )?;
    }
    Ok(r.out)
}
