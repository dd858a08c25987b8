//! `helm` command lines, as Skaffold builds them for `manifests.helm` releases.
//!
//! ```text
//! helm [--kube-context C] dep build CHART [flags.depBuild…] [flags.global…] [--kubeconfig K]
//! helm [--kube-context C] template NAME CHART [flags.template…] [--version V]
//!      [--set k=v (setValues, sorted)] [--set-file k=path (setFiles, sorted)]
//!      [--set k=rendered (setValueTemplates, sorted)] [-f valuesFile…] [--namespace NS]
//!      [flags.global…] [--kubeconfig K]
//! ```
//!
//! `setValueTemplates` and `valuesFiles` are rendered over the images' variables —
//! `IMAGE_REPO_<name>`, `IMAGE_TAG_<name>`, `IMAGE_DIGEST_<name>`, … (see
//! [`image_variables`]) — and then the environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use skiff_types::image::BuiltImage;
use skiff_types::template::{LayeredVars, MissingKey, Template};

use crate::RenderError;
use crate::options::{HelmChart, HelmRelease, HelmSource};
use crate::tools::ToolCommand;

/// The cluster settings passed to `helm` (none when rendering offline).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelmCluster {
    /// `--kube-context`.
    pub kube_context: Option<String>,
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
}

impl HelmCluster {
    fn wrap(&self, helm: &Path, dir: &Path, global: &[String], args: Vec<String>) -> ToolCommand {
        let mut all = Vec::with_capacity(args.len() + global.len() + 4);
        if let Some(context) = &self.kube_context {
            all.push("--kube-context".to_owned());
            all.push(context.clone());
        }
        all.extend(args);
        all.extend(global.iter().cloned());
        if let Some(kubeconfig) = &self.kubeconfig {
            all.push("--kubeconfig".to_owned());
            all.push(kubeconfig.to_string_lossy().into_owned());
        }
        ToolCommand {
            program: helm.to_path_buf(),
            args: all,
            dir: dir.to_path_buf(),
        }
    }
}

/// `helm dep build` for a release with a local chart (`None` for a remote chart or when
/// dependencies are skipped).
pub fn dep_build_command(
    helm: &Path,
    source: &HelmSource,
    release: &HelmRelease,
    cluster: &HelmCluster,
) -> Option<ToolCommand> {
    let HelmChart::Path(chart) = &release.chart else {
        return None;
    };
    if release.skip_build_dependencies {
        return None;
    }
    let mut args = vec!["dep".to_owned(), "build".to_owned(), chart.clone()];
    args.extend(source.flags.dep_build.iter().cloned());
    Some(cluster.wrap(helm, &source.base_dir, &source.flags.global, args))
}

/// The namespace a release renders into: `-n` wins over the release's own.
pub fn release_namespace<'a>(
    release: &'a HelmRelease,
    namespace: Option<&'a str>,
) -> Option<&'a str> {
    namespace
        .filter(|n| !n.is_empty())
        .or(release.namespace.as_deref().filter(|n| !n.is_empty()))
}

/// `helm template` for `release`, with `setValueTemplates` and `valuesFiles` rendered over
/// `images` and `env`; `namespace` is `-n`.
pub fn template_command(
    helm: &Path,
    source: &HelmSource,
    release: &HelmRelease,
    images: &[BuiltImage],
    env: &BTreeMap<String, String>,
    namespace: Option<&str>,
    cluster: &HelmCluster,
) -> Result<ToolCommand, RenderError> {
    let chart = match &release.chart {
        HelmChart::Path(path) | HelmChart::Remote(path) => path.clone(),
    };
    let mut args = vec!["template".to_owned(), release.name.clone(), chart];
    args.extend(source.flags.template.iter().cloned());
    if let Some(version) = release.version.as_deref().filter(|v| !v.is_empty()) {
        args.push("--version".to_owned());
        args.push(version.to_owned());
    }
    for (key, value) in &release.set_values {
        args.push("--set".to_owned());
        args.push(format!("{key}={value}"));
    }
    for (key, path) in &release.set_files {
        args.push("--set-file".to_owned());
        args.push(format!("{key}={path}"));
    }
    let image_vars = image_variables(images);
    let vars = LayeredVars(vec![&image_vars, env]);
    let field = |what: String| format!("helm release `{}`: {what}", release.name);
    for (key, template) in &release.set_value_templates {
        // Skaffold expands these leniently: `<no value>` for a variable that is not set.
        let value = template
            .render_with(&vars, MissingKey::NoValue)
            .map_err(|source| RenderError::Template {
                field: field(format!("setValueTemplates.{key}")),
                source,
            })?;
        let key = if key.contains("{{") {
            Template::parse(key)
                .and_then(|t| t.render_with(&vars, MissingKey::NoValue))
                .map_err(|source| RenderError::Template {
                    field: field(format!("setValueTemplates key `{key}`")),
                    source,
                })?
        } else {
            key.clone()
        };
        // `{{.IMAGE_TAG}}@{{.IMAGE_DIGEST}}` without a digest leaves a `@`: drop it, as Skaffold.
        let value = value.strip_suffix('@').unwrap_or(&value);
        args.push("--set".to_owned());
        args.push(format!("{key}={value}"));
    }
    for (i, template) in release.values_files.iter().enumerate() {
        let file = template
            .render_with(&vars, MissingKey::NoValue)
            .map_err(|source| RenderError::Template {
                field: field(format!("valuesFiles[{i}]")),
                source,
            })?;
        args.push("-f".to_owned());
        args.push(file);
    }
    if let Some(namespace) = release_namespace(release, namespace) {
        args.push("--namespace".to_owned());
        args.push(namespace.to_owned());
    }
    Ok(cluster.wrap(helm, &source.base_dir, &source.flags.global, args))
}

pub use skiff_types::template::image_variable_suffix as variable_suffix;

/// The template variables the built images provide, as Skaffold defines them for helm.
///
/// For each image: `IMAGE_NAME` (the artifact's image name), `IMAGE_REPO` (the built
/// repository, registry included), `IMAGE_TAG`, `IMAGE_DIGEST` (empty when absent),
/// `IMAGE_DOMAIN` (the registry, `docker.io` when the name has none), `IMAGE_REPO_NO_DOMAIN`,
/// `IMAGE_FULLY_QUALIFIED` and `DIGEST` (the whole reference). Each is defined with the suffix
/// `_<name>` ([`variable_suffix`]); the first image's also without a suffix, the second's with
/// the suffix `2`, the third's `3`, and so on.
///
/// ```
/// use skiff_render::helm::image_variables;
/// use skiff_types::image::BuiltImage;
///
/// let built = BuiltImage {
///     image_name: "localhost:5000/web-app".into(),
///     reference: "localhost:5000/web-app:v1".parse().unwrap(),
///     image_id: None,
/// };
/// let vars = image_variables(&[built]);
/// assert_eq!(vars["IMAGE_REPO_localhost_5000_web_app"], "localhost:5000/web-app");
/// assert_eq!(vars["IMAGE_TAG"], "v1");
/// assert_eq!(vars["IMAGE_DIGEST"], "");
/// ```
pub fn image_variables(images: &[BuiltImage]) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for (i, image) in images.iter().enumerate() {
        let reference = &image.reference;
        let repository = reference.repository();
        let domain = reference.registry().unwrap_or("docker.io");
        let no_domain = repository
            .strip_prefix(domain)
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or(repository);
        let full = reference.to_string();
        let values = [
            ("IMAGE_NAME", image.image_name.as_str()),
            ("IMAGE_REPO", repository),
            ("IMAGE_TAG", reference.tag().unwrap_or("")),
            ("IMAGE_DIGEST", reference.digest().unwrap_or("")),
            ("IMAGE_DOMAIN", domain),
            ("IMAGE_REPO_NO_DOMAIN", no_domain),
            ("IMAGE_FULLY_QUALIFIED", full.as_str()),
            ("DIGEST", full.as_str()),
        ];
        let index = if i == 0 {
            String::new()
        } else {
            (i + 1).to_string()
        };
        let suffix = variable_suffix(&image.image_name);
        for (name, value) in values {
            vars.insert(format!("{name}{index}"), value.to_owned());
            vars.insert(format!("{name}_{suffix}"), value.to_owned());
        }
    }
    vars
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::options::HelmFlags;

    fn built(name: &str, reference: &str) -> BuiltImage {
        BuiltImage {
            image_name: name.into(),
            reference: reference.parse().unwrap(),
            image_id: None,
        }
    }

    fn release() -> HelmRelease {
        HelmRelease {
            name: "web".into(),
            chart: HelmChart::Path("charts/web".into()),
            version: None,
            namespace: Some("team".into()),
            values_files: vec![Template::parse("values-{{.ENV_NAME}}.yaml").unwrap()],
            set_values: BTreeMap::from([
                ("replicas".into(), "2".into()),
                ("a.b".into(), "c".into()),
            ]),
            set_value_templates: BTreeMap::from([
                (
                    "image.repository".into(),
                    Template::parse("{{.IMAGE_REPO_localhost_5000_web}}").unwrap(),
                ),
                (
                    "image.tag".into(),
                    Template::parse(
                        "{{.IMAGE_TAG_localhost_5000_web}}@{{.IMAGE_DIGEST_localhost_5000_web}}",
                    )
                    .unwrap(),
                ),
            ]),
            set_files: BTreeMap::from([("config".into(), "files/app.conf".into())]),
            create_namespace: false,
            skip_build_dependencies: false,
        }
    }

    fn source() -> HelmSource {
        HelmSource {
            base_dir: "/project".into(),
            releases: vec![release()],
            flags: HelmFlags {
                global: vec!["--debug".into()],
                template: vec!["--skip-tests".into()],
                dep_build: vec!["--skip-refresh".into()],
            },
            default_namespace: None,
        }
    }

    #[test]
    fn template_command_line_matches_skaffold() {
        let images = [built("localhost:5000/web", "localhost:5000/web:abc")];
        let env = BTreeMap::from([("ENV_NAME".to_owned(), "dev".to_owned())]);
        let cluster = HelmCluster {
            kube_context: Some("dev".into()),
            kubeconfig: Some("/kube/config".into()),
        };
        let command = template_command(
            Path::new("/bin/helm"),
            &source(),
            &release(),
            &images,
            &env,
            None,
            &cluster,
        )
        .unwrap();
        assert_eq!(
            command.args,
            [
                "--kube-context",
                "dev",
                "template",
                "web",
                "charts/web",
                "--skip-tests",
                "--set",
                "a.b=c",
                "--set",
                "replicas=2",
                "--set-file",
                "config=files/app.conf",
                "--set",
                "image.repository=localhost:5000/web",
                "--set",
                "image.tag=abc",
                "-f",
                "values-dev.yaml",
                "--namespace",
                "team",
                "--debug",
                "--kubeconfig",
                "/kube/config"
            ]
        );
        assert_eq!(command.dir, Path::new("/project"));

        let offline = template_command(
            Path::new("/bin/helm"),
            &source(),
            &release(),
            &images,
            &env,
            Some("override"),
            &HelmCluster::default(),
        )
        .unwrap();
        assert_eq!(offline.args[0], "template");
        let ns = offline
            .args
            .iter()
            .position(|a| a == "--namespace")
            .unwrap();
        assert_eq!(offline.args[ns + 1], "override");
    }

    #[test]
    fn dep_build_only_for_local_charts() {
        let helm = Path::new("/bin/helm");
        let command =
            dep_build_command(helm, &source(), &release(), &HelmCluster::default()).unwrap();
        assert_eq!(
            command.args,
            ["dep", "build", "charts/web", "--skip-refresh", "--debug"]
        );
        let mut remote = release();
        remote.chart = HelmChart::Remote("oci://registry/charts/web".into());
        assert!(dep_build_command(helm, &source(), &remote, &HelmCluster::default()).is_none());
        let mut skipped = release();
        skipped.skip_build_dependencies = true;
        assert!(dep_build_command(helm, &source(), &skipped, &HelmCluster::default()).is_none());
    }

    #[test]
    fn missing_template_variables_name_the_release_and_field() {
        let mut release = release();
        release.set_value_templates = BTreeMap::from([(
            "image".into(),
            Template::parse("{{.IMAGE_REPO_other | lower}}").unwrap(),
        )]);
        let error = template_command(
            Path::new("helm"),
            &source(),
            &release,
            &[],
            &BTreeMap::new(),
            None,
            &HelmCluster::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("helm release `web`"), "{error}");
        assert!(error.contains("setValueTemplates.image"), "{error}");
    }

    #[test]
    fn variables_for_several_images() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let vars = image_variables(&[
            built("app", "app:v1"),
            built("gcr.io/p/api", &format!("gcr.io/p/api:v2@{digest}")),
        ]);
        assert_eq!(vars["IMAGE_NAME"], "app");
        assert_eq!(vars["IMAGE_DOMAIN_app"], "docker.io");
        assert_eq!(vars["IMAGE_REPO_NO_DOMAIN_app"], "app");
        assert_eq!(vars["IMAGE_REPO2"], "gcr.io/p/api");
        assert_eq!(vars["IMAGE_TAG_gcr_io_p_api"], "v2");
        assert_eq!(vars["IMAGE_DIGEST_gcr_io_p_api"], digest);
        assert_eq!(vars["IMAGE_DOMAIN2"], "gcr.io");
        assert_eq!(vars["IMAGE_REPO_NO_DOMAIN2"], "p/api");
        assert_eq!(
            vars["IMAGE_FULLY_QUALIFIED_gcr_io_p_api"],
            format!("gcr.io/p/api:v2@{digest}")
        );
    }
}
