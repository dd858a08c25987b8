//! The builder each artifact of a config will use, and why, for `skiff diagnose`.

use std::collections::BTreeMap;

use skiff_config::EffectiveConfig;
use skiff_runner::build::builder_choice;

/// `image → "daemonless (Dockerfile has no RUN)"`, `"docker (RUN at Dockerfile:4)"`,
/// `"docker (--docker-daemon-build)"`, … for every artifact of `config`.
pub fn builder_lines(
    config: &EffectiveConfig,
    docker_daemon_build: bool,
) -> BTreeMap<String, String> {
    match skiff_runner::settings::build_settings(std::slice::from_ref(config)) {
        Ok(settings) => settings
            .artifacts
            .iter()
            .map(|artifact| {
                (
                    artifact.image.clone(),
                    builder_choice(artifact, docker_daemon_build).to_string(),
                )
            })
            .collect(),
        Err(error) => config
            .config
            .build
            .iter()
            .flat_map(|b| b.artifacts.iter().flatten())
            .map(|a| (a.image.clone(), format!("unknown ({error})")))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config(dir: &std::path::Path) -> EffectiveConfig {
        std::fs::write(
            dir.join("skaffold.yaml"),
            "apiVersion: skaffold/v4beta14\nkind: Config\nbuild:\n  artifacts:\n  - image: plain\n    context: plain\n  - image: runs\n    context: runs\n  - image: gopher\n    ko: {}\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("plain")).unwrap();
        std::fs::create_dir_all(dir.join("runs")).unwrap();
        std::fs::write(dir.join("plain/Dockerfile"), "FROM scratch\nCOPY a /a\n").unwrap();
        std::fs::write(
            dir.join("runs/Dockerfile"),
            "FROM scratch\nCOPY a /a\n\nRUN [\"/a\"]\n",
        )
        .unwrap();
        let options = skiff_config::LoadOptions {
            config_file: Some(dir.join("skaffold.yaml")),
            working_dir: dir.to_path_buf(),
            profiles: Vec::new(),
            modules: Vec::new(),
            kube_context: None,
            command: "diagnose".into(),
            env: BTreeMap::new(),
        };
        skiff_config::load(&options).unwrap().configs.remove(0)
    }

    #[test]
    fn each_artifact_names_its_builder_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let lines = builder_lines(&config, false);
        assert_eq!(lines["plain"], "daemonless (Dockerfile has no RUN)");
        assert_eq!(lines["runs"], "docker (RUN at Dockerfile:4)");
        assert!(lines["gopher"].starts_with("ko ("), "{lines:?}");
        let forced = builder_lines(&config, true);
        assert_eq!(forced["plain"], "docker (--docker-daemon-build)");
    }
}
