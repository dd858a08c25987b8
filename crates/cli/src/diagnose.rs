//! `skiff diagnose`: the effective configs, as a short summary each and as YAML.

use skiff_config::schema::{Artifact, DeployConfig, RenderConfig, Sync};
use skiff_config::{EffectiveConfig, Loaded, builder_kinds};

/// What shapes the output besides the configs.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// `--yaml-only`: the YAML documents alone, separated by `---`.
    pub yaml_only: bool,
    /// `-n`, shown in the summary.
    pub namespace: Option<String>,
    /// `-d/--default-repo`, shown in the summary.
    pub default_repo: Option<String>,
    /// `--docker-daemon-build`: shown in each artifact's builder line.
    pub docker_daemon_build: bool,
}

/// The whole output of `skiff diagnose`.
pub fn render(loaded: &Loaded, options: &RenderOptions) -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    let total = loaded.configs.len();
    // A project that does not resolve still gets its summary; only sync details need it.
    let project = skiff_runner::project::Project::resolve(&loaded.file, &loaded.configs).ok();
    for (index, config) in loaded.configs.iter().enumerate() {
        let yaml = serde_yaml::to_string(&config.config)?;
        if options.yaml_only {
            if index > 0 {
                out.push_str("---\n");
            }
        } else {
            if index > 0 {
                out.push('\n');
            }
            let sync = crate::diagnose_sync::lines(project.as_ref().map(|p| &p.sync), config);
            for line in summary(index + 1, total, config, options)
                .into_iter()
                .chain(sync)
            {
                out.push_str(&line);
                out.push('\n');
            }
            out.push_str("---\n");
        }
        out.push_str(&yaml);
    }
    Ok(out)
}

/// The human summary of one config, one line per entry.
fn summary(
    number: usize,
    total: usize,
    config: &EffectiveConfig,
    options: &RenderOptions,
) -> Vec<String> {
    let mut lines = Vec::new();
    let file = config.file.display();
    lines.push(match config.name() {
        Some(name) => format!("Configuration {number} of {total}: {name} ({file})"),
        None => format!("Configuration {number} of {total} ({file})"),
    });
    lines.push(if config.active_profiles.is_empty() {
        "  profiles: none active".to_owned()
    } else {
        format!("  profiles: {}", config.active_profiles.join(", "))
    });
    if let Some(namespace) = &options.namespace {
        lines.push(format!("  namespace: {namespace}"));
    }
    if let Some(repo) = &options.default_repo {
        lines.push(format!("  default repo: {repo}"));
    }

    let artifacts = config
        .config
        .build
        .as_ref()
        .and_then(|b| b.artifacts.as_deref())
        .unwrap_or_default();
    if artifacts.is_empty() {
        lines.push("  artifacts: none".to_owned());
    }
    let builders = if artifacts.is_empty() {
        Default::default()
    } else {
        crate::diagnose_builder::builder_lines(config, options.docker_daemon_build)
    };
    for artifact in artifacts {
        lines.push(format!(
            "  artifact {}: {}",
            artifact.image,
            describe_artifact(artifact)
        ));
        if let Some(builder) = builders.get(&artifact.image) {
            lines.push(format!("    builder: {builder}"));
        }
        if let Some(sync) = &artifact.sync {
            lines.extend(
                sync_lines(sync)
                    .into_iter()
                    .map(|l| format!("    sync: {l}")),
            );
        }
    }

    let manifests = config
        .config
        .manifests
        .as_ref()
        .map(manifest_lines)
        .unwrap_or_default();
    let legacy_helm = config
        .config
        .deploy
        .as_ref()
        .and_then(|d| d.helm.as_ref())
        .is_some();
    if manifests.is_empty() && !legacy_helm {
        lines.push("  manifests: none".to_owned());
    }
    lines.extend(manifests.into_iter().map(|l| format!("  manifests: {l}")));

    if let Some(deploy) = &config.config.deploy {
        lines.push(format!("  deploy: {}", describe_deploy(deploy)));
    }
    lines
}

/// `docker, context ., dockerfile Dockerfile`.
fn describe_artifact(artifact: &Artifact) -> String {
    let kinds = builder_kinds(artifact);
    let mut parts = vec![if kinds.is_empty() {
        "no builder".to_owned()
    } else {
        kinds.join("+")
    }];
    if let Some(context) = &artifact.context {
        parts.push(format!("context {context}"));
    }
    let dockerfile = artifact
        .docker
        .as_ref()
        .and_then(|d| d.dockerfile.as_deref())
        .or_else(|| {
            artifact
                .kaniko
                .as_ref()
                .and_then(|k| k.dockerfile.as_deref())
        });
    if let Some(dockerfile) = dockerfile {
        parts.push(format!("dockerfile {dockerfile}"));
    }
    parts.join(", ")
}

/// `SRC → DEST (strip X)`, `infer GLOB`, `auto`.
fn sync_lines(sync: &Sync) -> Vec<String> {
    let mut lines = Vec::new();
    for rule in sync.manual.iter().flatten() {
        let strip = match rule.strip.as_deref() {
            Some(strip) if !strip.is_empty() => format!(" (strip {strip})"),
            _ => String::new(),
        };
        lines.push(format!("{} → {}{strip}", rule.src, rule.dest));
    }
    for glob in sync.infer.iter().flatten() {
        lines.push(format!("infer {glob}"));
    }
    if sync.auto == Some(true) {
        lines.push("auto".to_owned());
    }
    lines
}

/// One line per renderer: `rawYaml k8s/deployment.yaml`, `helm release a, b`, …
fn manifest_lines(manifests: &RenderConfig) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(raw) = manifests.raw_yaml.as_deref().filter(|r| !r.is_empty()) {
        lines.push(format!("rawYaml {}", raw.join(", ")));
    }
    if let Some(remote) = manifests
        .remote_manifests
        .as_deref()
        .filter(|r| !r.is_empty())
    {
        let names: Vec<&str> = remote
            .iter()
            .filter_map(|r| r.manifest.as_deref())
            .collect();
        lines.push(format!("remoteManifests {}", names.join(", ")));
    }
    if let Some(kustomize) = &manifests.kustomize {
        let paths = kustomize.paths.as_deref().filter(|p| !p.is_empty());
        lines.push(format!(
            "kustomize {}",
            paths.map_or(".".to_owned(), |p| p.join(", "))
        ));
    }
    if let Some(helm) = &manifests.helm {
        let names: Vec<&str> = helm.releases.iter().map(|r| r.name.as_str()).collect();
        lines.push(format!("helm {}", names.join(", ")));
    }
    if let Some(kpt) = manifests.kpt.as_deref().filter(|k| !k.is_empty()) {
        lines.push(format!("kpt {}", kpt.join(", ")));
    }
    lines
}

/// `kubectl, status check deadline 600s`.
fn describe_deploy(deploy: &DeployConfig) -> String {
    let mut parts: Vec<String> = [
        ("kubectl", deploy.kubectl.is_some()),
        ("helm", deploy.helm.is_some()),
        ("kpt", deploy.kpt.is_some()),
        ("docker", deploy.docker.is_some()),
        ("cloudrun", deploy.cloudrun.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(kind, _)| kind.to_owned())
    .collect();
    if parts.is_empty() {
        parts.push("no deployer".to_owned());
    }
    if let Some(releases) = deploy.helm.as_ref().and_then(|h| h.releases.as_deref()) {
        let names: Vec<&str> = releases.iter().map(|r| r.name.as_str()).collect();
        if !names.is_empty() {
            parts.push(format!("helm releases {}", names.join(", ")));
        }
    }
    if let Some(context) = &deploy.kube_context {
        parts.push(format!("kube-context {context}"));
    }
    match (deploy.status_check, deploy.status_check_deadline_seconds) {
        (Some(false), _) => parts.push("status check off".to_owned()),
        (_, Some(seconds)) => parts.push(format!("status check deadline {seconds}s")),
        (_, None) => {}
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::PathBuf;

    use skiff_config::schema::SkaffoldConfig;

    use super::*;

    const SYNC: &str = "\
apiVersion: skaffold/v4beta14
kind: Config
metadata:
  name: go-webapp
build:
  artifacts:
  - image: localhost:5000/go-webapp
    context: .
    docker:
      dockerfile: Dockerfile
    sync:
      manual:
      - src: 'internal/**/*.go'
        dest: /app
        strip: internal/
      infer:
      - '**/*.html'
      auto: true
manifests:
  rawYaml:
  - k8s/deployment.yaml
deploy:
  kubectl: {}
  statusCheckDeadlineSeconds: 600
";

    fn loaded(configs: &[(&str, &[&str])]) -> Loaded {
        Loaded {
            file: PathBuf::from("/p/skaffold.yaml"),
            configs: configs
                .iter()
                .map(|(yaml, profiles)| EffectiveConfig {
                    file: PathBuf::from("/p/skaffold.yaml"),
                    active_profiles: profiles.iter().map(|p| (*p).to_owned()).collect(),
                    config: serde_yaml::from_str::<SkaffoldConfig>(yaml).unwrap(),
                    unresolved_templates: Vec::new(),
                })
                .collect(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn the_summary_names_builder_sync_manifests_and_deployer() {
        let out = render(&loaded(&[(SYNC, &[])]), &RenderOptions::default()).unwrap();
        let expected = "\
Configuration 1 of 1: go-webapp (/p/skaffold.yaml)
  profiles: none active
  artifact localhost:5000/go-webapp: docker, context ., dockerfile Dockerfile
    builder: docker (no Dockerfile at /p/Dockerfile)
    sync: internal/**/*.go → /app (strip internal/)
    sync: infer **/*.html
    sync: auto
  manifests: rawYaml k8s/deployment.yaml
  deploy: kubectl, status check deadline 600s
---
apiVersion: skaffold/v4beta14
";
        assert!(out.starts_with(expected), "{out}");
    }

    #[test]
    fn namespace_default_repo_and_profiles_are_summary_lines() {
        let options = RenderOptions {
            namespace: Some("team".to_owned()),
            default_repo: Some("gcr.io/x".to_owned()),
            ..RenderOptions::default()
        };
        let out = render(&loaded(&[(SYNC, &["dev", "fast"])]), &options).unwrap();
        assert!(
            out.contains("\n  profiles: dev, fast\n  namespace: team\n  default repo: gcr.io/x\n"),
            "{out}"
        );
        let yaml = out.split_once("---\n").unwrap().1;
        assert!(
            !yaml.contains("team") && !yaml.contains("gcr.io/x"),
            "{yaml}"
        );
    }

    #[test]
    fn yaml_only_separates_documents_with_dashes() {
        let minimal = "apiVersion: skaffold/v4beta14\nkind: Config\n";
        let options = RenderOptions {
            yaml_only: true,
            ..RenderOptions::default()
        };
        let out = render(&loaded(&[(minimal, &[]), (SYNC, &[])]), &options).unwrap();
        assert!(out.starts_with("apiVersion: skaffold/v4beta14\nkind: Config\n---\napiVersion"));
        assert!(!out.contains("Configuration"));
        let documents: Vec<SkaffoldConfig> = out
            .split("---\n")
            .map(|d| serde_yaml::from_str(d).unwrap())
            .collect();
        assert_eq!(documents.len(), 2);
    }

    #[test]
    fn configs_without_name_artifacts_or_manifests_say_so() {
        let bare = "apiVersion: skaffold/v4beta14\nkind: Config\n";
        let out = render(
            &loaded(&[(bare, &[]), (bare, &[])]),
            &RenderOptions::default(),
        )
        .unwrap();
        assert!(
            out.contains("Configuration 1 of 2 (/p/skaffold.yaml)\n"),
            "{out}"
        );
        assert!(
            out.contains("\n\nConfiguration 2 of 2 (/p/skaffold.yaml)\n"),
            "{out}"
        );
        assert!(
            out.contains("  artifacts: none\n  manifests: none\n"),
            "{out}"
        );
    }

    #[test]
    fn deploy_describes_status_check_off_and_helm_releases() {
        let yaml = "\
apiVersion: skaffold/v4beta14
kind: Config
deploy:
  statusCheck: false
  kubeContext: kind-dev
  helm:
    releases:
    - name: web
      chartPath: chart
";
        let out = render(&loaded(&[(yaml, &[])]), &RenderOptions::default()).unwrap();
        assert!(
            out.contains(
                "  deploy: helm, helm releases web, kube-context kind-dev, status check off\n"
            ),
            "{out}"
        );
        assert!(!out.contains("manifests: none"), "{out}");
    }
}
