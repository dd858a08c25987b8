//! Which files a render reads, so a watcher knows which changes need a new render: the files
//! `rawYaml` globs select (a glob that names a directory takes every file below it, as when
//! rendering), kustomization directories, and helm charts, values files and `--set-file`s.

use std::path::{Path, PathBuf};

use crate::glob::matcher;
use crate::options::HelmChart;
use crate::{RenderError, Source};

/// The inputs of a set of sources; see [`ManifestInputs::matches`].
#[derive(Debug, Clone)]
pub struct ManifestInputs {
    globs: Vec<globset::GlobMatcher>,
    /// The directories `rawYaml` globs are relative to.
    glob_dirs: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    files: Vec<PathBuf>,
}

impl ManifestInputs {
    /// The inputs of `sources`. Fails on a malformed glob, as rendering would.
    pub fn of(sources: &[Source]) -> Result<ManifestInputs, RenderError> {
        let mut inputs = ManifestInputs {
            globs: Vec::new(),
            glob_dirs: Vec::new(),
            dirs: Vec::new(),
            files: Vec::new(),
        };
        for source in sources {
            match source {
                Source::RawYaml(raw) => {
                    inputs.glob_dirs.push(raw.base_dir.clone());
                    for glob in &raw.globs {
                        if glob.starts_with("http://") || glob.starts_with("https://") {
                            continue;
                        }
                        inputs.globs.push(matcher(&raw.base_dir, glob)?);
                    }
                }
                Source::Kustomize(kustomize) => inputs
                    .dirs
                    .extend(kustomize.paths.iter().map(|p| kustomize.base_dir.join(p))),
                Source::Helm(helm) => {
                    for release in &helm.releases {
                        if let HelmChart::Path(path) = &release.chart {
                            inputs.dirs.push(helm.base_dir.join(path));
                        }
                        // Values files that name images are rendered per build; their literal
                        // part is still the file.
                        for template in &release.values_files {
                            if template.is_literal() {
                                inputs.files.push(helm.base_dir.join(template.source()));
                            }
                        }
                        inputs
                            .files
                            .extend(release.set_files.values().map(|f| helm.base_dir.join(f)));
                    }
                }
                _ => {}
            }
        }
        Ok(inputs)
    }

    /// The directories to watch for these inputs.
    pub fn roots(&self) -> Vec<PathBuf> {
        let mut roots: Vec<PathBuf> = self.glob_dirs.clone();
        roots.extend(self.dirs.iter().cloned());
        roots.extend(
            self.files
                .iter()
                .filter_map(|f| f.parent().map(Path::to_path_buf)),
        );
        roots.sort();
        roots.dedup();
        roots
    }

    /// Whether a change to `path` (absolute, or relative to the same directory the sources'
    /// base directories are) changes what the sources render.
    pub fn matches(&self, path: &Path) -> bool {
        self.files.iter().any(|f| f == path)
            || self.dirs.iter().any(|d| path.starts_with(d))
            || path
                .ancestors()
                .any(|p| self.globs.iter().any(|g| g.is_match(p)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use skiff_types::template::Template;

    use super::*;
    use crate::options::{HelmFlags, HelmRelease, HelmSource, RawYamlSource};

    fn raw(globs: &[&str]) -> Source {
        Source::RawYaml(RawYamlSource {
            base_dir: "/p".into(),
            globs: globs.iter().map(|g| (*g).to_owned()).collect(),
            default_namespace: None,
            unmatched_is_warning: false,
        })
    }

    #[test]
    fn raw_yaml_globs_match_as_rendering_expands_them() {
        let inputs = ManifestInputs::of(&[raw(&["k8s/*.yaml", "deploy"])]).unwrap();
        assert!(inputs.matches(Path::new("/p/k8s/app.yaml")));
        // `*` does not cross a directory.
        assert!(!inputs.matches(Path::new("/p/k8s/sub/app.yaml")));
        assert!(!inputs.matches(Path::new("/p/k8s/app.yml")));
        // A directory takes every file below it.
        assert!(inputs.matches(Path::new("/p/deploy/nested/svc.yaml")));
        assert!(!inputs.matches(Path::new("/p/deployment.yaml")));
        let inputs = ManifestInputs::of(&[raw(&["manifests/**"])]).unwrap();
        assert!(inputs.matches(Path::new("/p/manifests/a/b/c.yaml")));
    }

    #[test]
    fn helm_charts_values_and_set_files() {
        let release = HelmRelease {
            name: "web".into(),
            chart: HelmChart::Path("charts/web".into()),
            version: None,
            namespace: None,
            values_files: vec![
                Template::parse("values/dev.yaml").unwrap(),
                Template::parse("values/{{.IMAGE_TAG}}.yaml").unwrap(),
            ],
            set_values: BTreeMap::new(),
            set_value_templates: BTreeMap::new(),
            set_files: BTreeMap::from([("cert".to_owned(), "certs/tls.pem".to_owned())]),
            create_namespace: false,
            skip_build_dependencies: false,
        };
        let inputs = ManifestInputs::of(&[Source::Helm(HelmSource {
            base_dir: "/p".into(),
            releases: vec![release],
            flags: HelmFlags::default(),
            default_namespace: None,
        })])
        .unwrap();
        assert!(inputs.matches(Path::new("/p/charts/web/templates/deployment.yaml")));
        assert!(inputs.matches(Path::new("/p/values/dev.yaml")));
        assert!(inputs.matches(Path::new("/p/certs/tls.pem")));
        assert!(!inputs.matches(Path::new("/p/values/other.yaml")));
    }
}
