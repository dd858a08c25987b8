//! Skaffold's defaults, filled into an effective config so that what `diagnose` prints is
//! what runs.

use crate::schema::{
    DeployConfig, DockerArtifact, GitTagger, KubectlDeploy, LocalBuild, RenderConfig,
    SkaffoldConfig, TagPolicy,
};
use crate::validate::{builder_kinds, tagger_kinds};

/// Skaffold's default status-check deadline.
pub const STATUS_CHECK_DEADLINE_SECONDS: i64 = 600;
/// Manifests read when no renderer is configured.
pub const DEFAULT_RAW_YAML: &str = "k8s/*.yaml";

pub(crate) fn apply(config: &mut SkaffoldConfig) {
    if let Some(build) = config.build.as_mut() {
        for artifact in build.artifacts.iter_mut().flatten() {
            artifact.context.get_or_insert_with(|| ".".to_owned());
            if builder_kinds(artifact).is_empty() {
                artifact.docker = Some(DockerArtifact::default());
            }
            if let Some(docker) = artifact.docker.as_mut() {
                docker
                    .dockerfile
                    .get_or_insert_with(|| "Dockerfile".to_owned());
            }
            if let Some(kaniko) = artifact.kaniko.as_mut() {
                kaniko
                    .dockerfile
                    .get_or_insert_with(|| "Dockerfile".to_owned());
            }
        }
        let policy = build.tag_policy.get_or_insert_with(TagPolicy::default);
        if tagger_kinds(policy).is_empty() {
            policy.git_commit = Some(GitTagger::default());
        }
        if let Some(git) = policy.git_commit.as_mut() {
            git.variant.get_or_insert_with(|| "Tags".to_owned());
        }
        if build.local.is_none() && build.cluster.is_none() && build.google_cloud_build.is_none() {
            build.local = Some(LocalBuild::default());
        }
        if let Some(local) = build.local.as_mut() {
            local.concurrency.get_or_insert(1);
        }
    }

    let manifests = config.manifests.get_or_insert_with(RenderConfig::default);
    let has_renderer = manifests.raw_yaml.as_ref().is_some_and(|r| !r.is_empty())
        || manifests.kustomize.is_some()
        || manifests.helm.is_some()
        || manifests.kpt.as_ref().is_some_and(|k| !k.is_empty())
        || manifests
            .remote_manifests
            .as_ref()
            .is_some_and(|r| !r.is_empty());
    let deploy = config.deploy.get_or_insert_with(DeployConfig::default);
    let has_deployer = deploy.kubectl.is_some()
        || deploy.helm.is_some()
        || deploy.kpt.is_some()
        || deploy.docker.is_some()
        || deploy.cloudrun.is_some();
    if !has_deployer {
        deploy.kubectl = Some(KubectlDeploy::default());
    }
    // As Skaffold: the default manifests are the kubectl deployer's, not every deployer's.
    if !has_renderer && deploy.kubectl.is_some() {
        manifests.raw_yaml = Some(vec![DEFAULT_RAW_YAML.to_owned()]);
    }
    deploy
        .status_check_deadline_seconds
        .get_or_insert(STATUS_CHECK_DEADLINE_SECONDS);
    if *manifests == RenderConfig::default() {
        config.manifests = None;
    }
}
