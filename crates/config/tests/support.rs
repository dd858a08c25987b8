//! Nothing in skaffold.yaml is silently ignored: each field skiff does not act on warns once,
//! naming itself and where it is; the fields skiff must not go on without are refused by the
//! commands that would do the wrong thing without them.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

use skiff_config::support::{NOT_ACTED_ON, Treatment};
use skiff_config::{ConfigError, LoadOptions, load};

/// A config setting every field of the table, each where Skaffold's schema puts it — but
/// for the build environments other than `local` (one config sets one; the refusal test
/// covers them).
const EVERYTHING: &str = r#"apiVersion: skaffold/v4beta14
kind: Config
build:
  local:
    tryImportMissing: true
  artifacts:
  - image: app
    docker:
      cliFlags: [--quiet]
      squash: true
test:
- image: app
  custom:
  - command: ./test.sh
    dependencies:
      paths: [src/**]
      command: ./list-test-inputs.sh
verify:
- name: smoke
  container:
    name: smoke
    image: alpine
  executionMode:
    kubernetesCluster: {}
customActions:
- name: seed
  containers:
  - name: seed
    image: alpine
  executionMode:
    kubernetesCluster: {}
deploy:
  kpt:
    dir: .
  cloudrun: {}
  logs:
    prefix: none
    jsonParse:
      fields: [message]
  kubectl:
    hooks:
      before:
      - container:
          command: [echo, hi]
          podName: app*
      after:
      - container:
          command: [echo, bye]
          podName: app*
  helm:
    hooks:
      before:
      - container:
          command: [echo, hi]
          podName: app*
      after:
      - container:
          command: [echo, bye]
          podName: app*
    releases:
    - name: app
      chartPath: chart
      wait: true
      recreatePods: true
      skipTests: true
      useHelmSecrets: true
      upgradeOnChange: true
      repo: https://charts.example.com
      dependsOn: [db]
      overrides:
        replicas: 2
      packaged:
        version: 1.0.0
"#;

fn write(dir: &Path, text: &str) {
    std::fs::write(dir.join("skaffold.yaml"), text).unwrap();
}

fn options(dir: &Path, command: &str) -> LoadOptions {
    LoadOptions {
        working_dir: dir.to_path_buf(),
        command: command.to_owned(),
        ..LoadOptions::default()
    }
}

#[test]
fn every_field_skiff_does_not_act_on_is_named_once_by_diagnose() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), EVERYTHING);
    let loaded = load(&options(dir.path(), "diagnose")).unwrap();
    let warned: Vec<String> = loaded.warnings.iter().map(|w| w.message.clone()).collect();
    let mut named = BTreeSet::new();
    let other_environments = ["build.cluster", "build.googleCloudBuild"];
    for (path, treatment) in NOT_ACTED_ON {
        if other_environments.contains(path) {
            continue;
        }
        let (Treatment::Warn(what) | Treatment::Refuse(_, what)) = treatment;
        let field = path.replace("[]", "[0]");
        let expected = format!("`{field}`: {what}");
        let count = warned.iter().filter(|w| **w == expected).count();
        assert_eq!(count, 1, "{expected}\nwarned: {warned:#?}");
        named.insert(field);
    }
    assert_eq!(named.len(), NOT_ACTED_ON.len() - other_environments.len());
    // Each warning points at the line that sets the field.
    let squash = loaded
        .warnings
        .iter()
        .find(|w| w.message.starts_with("`build.artifacts[0].docker.squash`"))
        .unwrap();
    assert_eq!(squash.location.as_ref().unwrap().line, 10, "{squash}");
}

#[test]
fn acting_commands_refuse_what_they_cannot_do_right() {
    let dir = tempfile::tempdir().unwrap();
    for (path, treatment) in NOT_ACTED_ON {
        let Treatment::Refuse(commands, what) = treatment else {
            continue;
        };
        let text = match *path {
            "build.cluster" => "build:\n  artifacts:\n  - image: app\n  cluster: {}\n",
            "build.googleCloudBuild" => "build:\n  googleCloudBuild:\n    projectId: p\n",
            "deploy.kpt" => "deploy:\n  kpt:\n    dir: .\n",
            "deploy.cloudrun" => "deploy:\n  cloudrun: {}\n",
            "deploy.helm.releases[].overrides" => {
                "deploy:\n  helm:\n    releases:\n    - name: a\n      chartPath: c\n      overrides:\n        x: 1\n"
            }
            "deploy.helm.releases[].packaged" => {
                "deploy:\n  helm:\n    releases:\n    - name: a\n      chartPath: c\n      packaged:\n        version: 1.0.0\n"
            }
            "verify[].executionMode.kubernetesCluster" => {
                "verify:\n- name: t\n  container:\n    name: t\n    image: alpine\n  executionMode:\n    kubernetesCluster: {}\n"
            }
            "customActions[].executionMode.kubernetesCluster" => {
                "customActions:\n- name: a\n  containers:\n  - name: t\n    image: alpine\n  executionMode:\n    kubernetesCluster: {}\n"
            }
            other => panic!("no case for the refused field {other}"),
        };
        write(
            dir.path(),
            &format!("apiVersion: skaffold/v4beta14\nkind: Config\n{text}"),
        );
        for command in *commands {
            let error = load(&options(dir.path(), command)).unwrap_err();
            assert!(
                matches!(error, ConfigError::NotSupported { .. }),
                "{command} {path}: {error}"
            );
            let text = error.to_string();
            assert!(text.contains(what), "{text}");
            assert!(text.contains("skaffold.yaml:"), "{text}");
        }
        // The other commands (`diagnose`, `fix`, `delete`, …) still read it, and say it.
        for command in ["diagnose", "fix", "delete", "build", "render", "deploy"] {
            if commands.contains(&command) {
                continue;
            }
            let loaded = load(&options(dir.path(), command)).unwrap();
            assert!(
                loaded.warnings.iter().any(|w| w.message.contains(what)),
                "{command} {path}"
            );
        }
    }
}

#[test]
fn unset_false_and_empty_fields_say_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "apiVersion: skaffold/v4beta14\nkind: Config\nbuild:\n  artifacts:\n  - image: app\n    docker:\n      squash: false\n      cliFlags: []\ntest: []\ndeploy:\n  kubectl: {}\n",
    );
    let loaded = load(&options(dir.path(), "run")).unwrap();
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
}
