//! One fixture per feature of `skaffold.yaml` loading, with the effective configs snapshotted.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use skiff_config::{ConfigError, LoadOptions, Loaded, load};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

struct Load<'a> {
    dir: &'a str,
    profiles: &'a [&'a str],
    modules: &'a [&'a str],
    env: &'a [(&'a str, &'a str)],
    command: &'a str,
    kube_context: Option<&'a str>,
}

impl Default for Load<'_> {
    fn default() -> Self {
        Load {
            dir: "",
            profiles: &[],
            modules: &[],
            env: &[],
            command: "diagnose",
            kube_context: None,
        }
    }
}

impl Load<'_> {
    fn run(&self) -> Result<Loaded, ConfigError> {
        load(&LoadOptions {
            config_file: None,
            working_dir: fixture(self.dir),
            profiles: self.profiles.iter().map(|s| s.to_string()).collect(),
            modules: self.modules.iter().map(|s| s.to_string()).collect(),
            kube_context: self.kube_context.map(str::to_owned),
            command: self.command.to_owned(),
            env: self
                .env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        })
    }

    /// The effective configs as `diagnose --yaml-only` would show them, with paths made
    /// relative to the fixtures directory.
    fn yaml(&self) -> String {
        let loaded = self.run().unwrap_or_else(|e| panic!("{e}"));
        let root = fixture("").canonicalize().unwrap();
        loaded
            .configs
            .iter()
            .map(|c| {
                format!(
                    "# {} profiles={:?}\n{}",
                    c.file.strip_prefix(&root).unwrap().display(),
                    c.active_profiles,
                    serde_yaml::to_string(&c.config).unwrap()
                )
            })
            .collect::<Vec<_>>()
            .join("---\n")
    }
}

#[test]
fn defaults_fill_what_skaffold_fills() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("skaffold.yml"),
        "apiVersion: skaffold/v4\nkind: Config\nbuild:\n  artifacts:\n  - image: a\n  - image: b\n    custom:\n      buildCommand: make\n",
    )
    .unwrap();
    let loaded = load(&LoadOptions {
        working_dir: dir.path().into(),
        ..Default::default()
    })
    .unwrap();
    insta::assert_snapshot!(serde_yaml::to_string(&loaded.configs[0].config).unwrap());
}

#[test]
fn profile_sections_replace_base_sections() {
    insta::assert_snapshot!(
        "profiles_none",
        Load {
            dir: "profiles",
            ..Default::default()
        }
        .yaml()
    );
    insta::assert_snapshot!(
        "profiles_release_and_docker",
        Load {
            dir: "profiles",
            profiles: &["release,local-docker"],
            ..Default::default()
        }
        .yaml()
    );
}

#[test]
fn patches_apply_in_order() {
    insta::assert_snapshot!(
        Load {
            dir: "patches",
            profiles: &["hello"],
            ..Default::default()
        }
        .yaml()
    );
}

#[test]
fn a_failing_patch_names_profile_and_path() {
    let error = Load {
        dir: "patches",
        profiles: &["broken"],
        ..Default::default()
    }
    .run()
    .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("profile `broken`"), "{message}");
    assert!(message.contains("/build/artifacts/7"), "{message}");
    assert_eq!(error.location().unwrap().line, 38, "{message}");
}

#[test]
fn activation_by_env_command_and_kube_context() {
    let active = |load: Load<'_>| load.run().unwrap().configs[0].active_profiles.clone();
    assert!(
        active(Load {
            dir: "activation",
            ..Default::default()
        })
        .is_empty()
    );
    assert_eq!(
        active(Load {
            dir: "activation",
            env: &[("CI", "true")],
            ..Default::default()
        }),
        ["ci"]
    );
    assert_eq!(
        active(Load {
            dir: "activation",
            env: &[("BUILD_ID", "42")],
            ..Default::default()
        }),
        ["ci"]
    );
    assert_eq!(
        active(Load {
            dir: "activation",
            command: "dev",
            ..Default::default()
        }),
        ["not-prod"]
    );
    assert!(
        active(Load {
            dir: "activation",
            command: "dev",
            env: &[("STAGE", "prod")],
            ..Default::default()
        })
        .is_empty()
    );
    // requiresAllActivations: the kube-context alone is not enough.
    assert!(
        active(Load {
            dir: "activation",
            kube_context: Some("kind-dev"),
            ..Default::default()
        })
        .is_empty()
    );
    assert_eq!(
        active(Load {
            dir: "activation",
            kube_context: Some("kind-dev"),
            command: "run",
            ..Default::default()
        }),
        ["kind-dev"]
    );
    // `-p -NAME` wins over activation.
    assert!(
        active(Load {
            dir: "activation",
            env: &[("CI", "true")],
            profiles: &["-ci"],
            ..Default::default()
        })
        .is_empty()
    );
    insta::assert_snapshot!(
        Load {
            dir: "activation",
            env: &[("CI", "true")],
            command: "dev",
            kube_context: Some("kind-x"),
            ..Default::default()
        }
        .yaml()
    );
}

#[test]
fn requires_loads_dependencies_first_with_their_profiles() {
    insta::assert_snapshot!(
        "requires_plain",
        Load {
            dir: "requires/app",
            ..Default::default()
        }
        .yaml()
    );
    insta::assert_snapshot!(
        "requires_fast_activates_slim",
        Load {
            dir: "requires/app",
            profiles: &["fast"],
            ..Default::default()
        }
        .yaml()
    );
}

#[test]
fn modules_select_configs_and_their_requires() {
    let names = |modules: &[&str]| -> Vec<String> {
        Load {
            dir: "modules",
            modules,
            ..Default::default()
        }
        .run()
        .unwrap()
        .configs
        .iter()
        .map(|c| c.name().unwrap().to_owned())
        .collect()
    };
    assert_eq!(names(&[]), ["shared", "frontend", "backend"]);
    assert_eq!(names(&["frontend"]), ["shared", "frontend"]);
    assert_eq!(names(&["backend"]), ["backend"]);
    let error = Load {
        dir: "modules",
        modules: &["nope"],
        ..Default::default()
    }
    .run()
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "module `nope` is not defined in {}; available: shared, frontend, backend",
            fixture("modules/skaffold.yaml")
                .canonicalize()
                .unwrap()
                .display()
        )
    );
}

#[test]
fn cyclic_requires_are_an_error() {
    let error = Load {
        dir: "cycle/a",
        ..Default::default()
    }
    .run()
    .unwrap_err();
    assert_eq!(error.to_string(), "cyclic `requires`: a → b → a");
}

#[test]
fn templates_render_from_env_and_keep_image_variables() {
    insta::assert_snapshot!(
        Load {
            dir: "templating",
            env: &[
                ("APP_VERSION", "1.4.2"),
                ("STAGE", "qa"),
                ("NAMESPACE", "team-a"),
                ("USER", "ana")
            ],
            ..Default::default()
        }
        .yaml()
    );
}

#[test]
fn an_unset_variable_gives_no_value_with_one_warning_naming_the_field() {
    let loaded = Load {
        dir: "templating",
        env: &[
            ("STAGE", "qa"),
            ("NAMESPACE", "team-a"),
            ("APP_VERSON", "1"),
        ],
        ..Default::default()
    }
    .run()
    .unwrap_or_else(|e| panic!("{e}"));
    // As Skaffold's `ExpandEnvTemplate`: the build arg is `<no value>`.
    let build = loaded.configs[0].config.build.as_ref().unwrap();
    let docker = build.artifacts.as_ref().unwrap()[0]
        .docker
        .as_ref()
        .unwrap();
    let args = &docker.build_args.as_ref().unwrap().0;
    assert_eq!(args["VERSION"].as_deref(), Some("<no value>"));
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    let about: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains("APP_VERSION"))
        .collect();
    assert_eq!(about.len(), 1, "{warnings:?}");
    let warning = about[0];
    assert!(
        warning.contains("build.artifacts[0].docker.buildArgs.VERSION"),
        "{warning}"
    );
    assert!(warning.contains("skaffold.yaml:8:"), "{warning}");
    assert!(warning.contains("did you mean `APP_VERSON`?"), "{warning}");
    assert!(warning.contains("default"), "{warning}");
}

#[test]
fn an_unset_variable_where_skaffold_is_strict_fails_where_the_field_is_used() {
    // Helm release names fail in Skaffold (`missingkey=error`) when it renders them; loading
    // (`diagnose`) goes on. So here: a warning now, the error for the stage that uses it.
    let loaded = Load {
        dir: "templating",
        env: &[("APP_VERSION", "1"), ("NAMESPACE", "team-a")],
        ..Default::default()
    }
    .run()
    .unwrap_or_else(|e| panic!("{e}"));
    let config = &loaded.configs[0];
    let error = config
        .unresolved_under(&["manifests.helm"])
        .expect("the release name is unresolved");
    let message = error.to_string();
    assert!(
        message.contains("manifests.helm.releases[0].name"),
        "{message}"
    );
    assert!(message.contains("STAGE"), "{message}");
    assert!(message.contains("default"), "{message}");
    assert!(config.unresolved_under(&["build"]).is_none());
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.message.contains("manifests.helm.releases[0].name")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn every_api_version_loads_and_is_upgraded() {
    for version in skiff_config::SUPPORTED_API_VERSIONS {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("skaffold.yaml"),
            format!(
                "apiVersion: {version}\nkind: Config\nmetadata:\n  name: v\nbuild:\n  artifacts:\n  - image: app\n    docker:\n      dockerfile: Dockerfile\nmanifests:\n  rawYaml: [k8s/app.yaml]\ndeploy:\n  kubectl: {{}}\nportForward:\n- resourceType: deployment\n  resourceName: app\n  port: 8080\n"
            ),
        )
        .unwrap();
        let loaded = load(&LoadOptions {
            working_dir: dir.path().into(),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{version}: {e}"));
        let config = &loaded.configs[0].config;
        assert_eq!(
            config.api_version.as_deref(),
            Some(skiff_config::LATEST_API_VERSION),
            "{version}"
        );
        assert_eq!(config.port_forward.as_ref().unwrap().len(), 1, "{version}");
    }
}

#[test]
fn seed_configs_load_with_one_legacy_warning() {
    for seed in ["minimal", "sync"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/seed")
            .join(seed);
        let loaded = load(&LoadOptions {
            working_dir: dir,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(loaded.warnings.len(), 1, "{seed}: {:?}", loaded.warnings);
        let warning = loaded.warnings[0].to_string();
        assert!(warning.contains("manifests.rawYaml"), "{warning}");
        let text = std::fs::read_to_string(loaded.file.clone()).unwrap();
        let line = text.lines().position(|l| l == "    manifests:").unwrap() + 1;
        assert!(
            warning.contains(&format!("skaffold.yaml:{line}:5")),
            "{warning}"
        );
        let config = &loaded.configs[0].config;
        let artifact = &config.build.as_ref().unwrap().artifacts.as_ref().unwrap()[0];
        assert_eq!(artifact.image, "localhost:5000/go-webapp");
        assert_eq!(
            artifact.docker.as_ref().unwrap().dockerfile.as_deref(),
            Some("Dockerfile")
        );
        let raw = config
            .manifests
            .as_ref()
            .unwrap()
            .raw_yaml
            .as_ref()
            .unwrap();
        assert_eq!(raw, &["k8s/deployment.yaml"]);
        assert!(
            config
                .deploy
                .as_ref()
                .unwrap()
                .kubectl
                .as_ref()
                .unwrap()
                .manifests
                .is_none()
        );
        if seed == "sync" {
            let rules = artifact.sync.as_ref().unwrap().manual.as_ref().unwrap();
            assert_eq!(rules.len(), 2);
            assert_eq!(
                (rules[0].src.as_str(), rules[0].dest.as_str()),
                ("internal/**/*.go", "/app")
            );
        }
    }
}
