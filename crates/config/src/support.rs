//! What skiff does not act on, said once at load: every field of `skaffold.yaml` that skiff
//! accepts but ignores gets a warning naming the field and what skiff does instead, and the
//! fields where going on would do the wrong thing (build with the local engine what was meant
//! to build in a cluster, deploy nothing) are refused. One table, [`NOT_ACTED_ON`], so
//! `README.md` and the tests read the same list.

use serde_yaml::Value;

use crate::document::Document;
use crate::error::{ConfigError, Warning};
use crate::locate::{Step, locate};
use crate::schema::SkaffoldConfig;

/// What skiff does with a field it does not act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Load, with this warning (what skiff does instead).
    Warn(&'static str),
    /// Refuse to load for these commands (those that would do the wrong thing without the
    /// field), saying this (what to do); warn with it for the others.
    Refuse(&'static [&'static str], &'static str),
}

/// The commands that build.
const BUILDING: &[&str] = &["build", "run", "dev"];
/// The commands that deploy.
const DEPLOYING: &[&str] = &["deploy", "apply", "run", "dev"];
/// The commands that render (every deploying one does).
const RENDERING: &[&str] = &["render", "deploy", "run", "dev"];

/// Each field (a dotted path; `[]` for every item of a list) skiff does not act on, and what it
/// does about it. A field counts as set when it is present and not `false`, empty or null.
pub const NOT_ACTED_ON: &[(&str, Treatment)] = &[
    (
        "build.cluster",
        Treatment::Refuse(
            BUILDING,
            "building in a Kubernetes cluster (kaniko) is not supported by skiff, and building \
             with the local Docker engine instead would not be what this config asks for; \
             remove `build.cluster` (for example in a profile) to build locally",
        ),
    ),
    (
        "build.googleCloudBuild",
        Treatment::Refuse(
            BUILDING,
            "Google Cloud Build is not supported by skiff; remove `build.googleCloudBuild` \
             (for example in a profile) to build with the local Docker engine",
        ),
    ),
    (
        "deploy.kpt",
        Treatment::Refuse(
            DEPLOYING,
            "deploying with kpt is not supported by skiff (it would deploy nothing); use \
             `deploy.kubectl` with the manifests under `manifests.rawYaml`",
        ),
    ),
    (
        "deploy.cloudrun",
        Treatment::Refuse(
            DEPLOYING,
            "deploying to Cloud Run is not supported by skiff",
        ),
    ),
    (
        "deploy.helm.releases[].overrides",
        Treatment::Refuse(
            RENDERING,
            "`overrides` is not applied by skiff; put these values in a file listed under \
             `valuesFiles`",
        ),
    ),
    (
        "deploy.helm.releases[].packaged",
        Treatment::Refuse(
            RENDERING,
            "packaging a chart (`packaged`) is not supported by skiff; deploy the chart \
             directory with `chartPath`",
        ),
    ),
    (
        "test[].custom[].dependencies.command",
        Treatment::Warn(
            "skiff does not run a command to list a test's dependencies; list them under \
             `dependencies.paths` to have `dev` run the test again when they change",
        ),
    ),
    (
        "verify[].executionMode.kubernetesCluster",
        Treatment::Refuse(
            &["verify"],
            "running verify tests as Kubernetes Jobs is not supported by skiff yet; remove \
             `executionMode` to run them on the local Docker engine",
        ),
    ),
    (
        "customActions[].executionMode.kubernetesCluster",
        Treatment::Refuse(
            &["exec"],
            "running custom actions as Kubernetes Jobs is not supported by skiff yet; remove \
             `executionMode` to run them on the local Docker engine",
        ),
    ),
    (
        "deploy.helm.releases[].wait",
        Treatment::Warn(
            "skiff renders releases with `helm template` and applies them itself, then waits \
             for them with its status check; `wait` has no effect",
        ),
    ),
    (
        "deploy.helm.releases[].recreatePods",
        Treatment::Warn(
            "skiff applies rendered releases itself: pods restart when their template \
             changes; `recreatePods` has no effect",
        ),
    ),
    (
        "deploy.helm.releases[].skipTests",
        Treatment::Warn("skiff runs no helm tests; `skipTests` has no effect"),
    ),
    (
        "deploy.helm.releases[].useHelmSecrets",
        Treatment::Warn(
            "helm-secrets is not used by skiff: encrypted values files are read as they are",
        ),
    ),
    (
        "deploy.helm.releases[].upgradeOnChange",
        Treatment::Warn(
            "skiff applies only the objects that changed on every deploy; `upgradeOnChange` \
             has no effect",
        ),
    ),
    (
        "deploy.helm.releases[].repo",
        Treatment::Warn(
            "`repo` is not passed to helm; name the chart as `repo/chart` with the repository \
             added by `helm repo add`",
        ),
    ),
    (
        "deploy.helm.releases[].dependsOn",
        Treatment::Warn("skiff applies every release in one pass; `dependsOn` does not order them"),
    ),
    (
        "deploy.logs.prefix",
        Treatment::Warn(
            "skiff prefixes every log line with its pod and container; `logs.prefix` has no \
             effect",
        ),
    ),
    (
        "deploy.logs.jsonParse",
        Treatment::Warn("log lines are shown as they are; `logs.jsonParse` has no effect"),
    ),
    (
        "build.artifacts[].docker.cliFlags",
        Treatment::Warn(
            "skiff builds through the Docker engine's API, which takes no CLI flags; \
             `cliFlags` are not passed",
        ),
    ),
    (
        "build.artifacts[].docker.squash",
        Treatment::Warn("images are not squashed by skiff; `squash` has no effect"),
    ),
    (
        "build.local.tryImportMissing",
        Treatment::Warn(
            "skiff does not import missing images from the registry; `tryImportMissing` has \
             no effect",
        ),
    ),
];

/// Steps of one concrete occurrence of a table path.
type Occurrence = Vec<(String, Option<usize>)>;

fn is_set(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => false,
        Value::Sequence(items) => !items.is_empty(),
        Value::Mapping(_) => true,
        Value::String(text) => !text.is_empty(),
        _ => true,
    }
}

/// Every place `pattern` is set in `value`.
fn occurrences(value: &Value, pattern: &[&str], prefix: &Occurrence, out: &mut Vec<Occurrence>) {
    let Some((first, rest)) = pattern.split_first() else {
        if is_set(value) {
            out.push(prefix.clone());
        }
        return;
    };
    let (key, each) = match first.strip_suffix("[]") {
        Some(key) => (key, true),
        None => (*first, false),
    };
    let Some(child) = value.as_mapping().and_then(|m| m.get(key)) else {
        return;
    };
    if each {
        for (index, item) in child.as_sequence().into_iter().flatten().enumerate() {
            let mut at = prefix.clone();
            at.push((key.to_owned(), Some(index)));
            occurrences(item, rest, &at, out);
        }
    } else {
        let mut at = prefix.clone();
        at.push((key.to_owned(), None));
        occurrences(child, rest, &at, out);
    }
}

fn dotted(occurrence: &Occurrence) -> String {
    occurrence
        .iter()
        .map(|(key, index)| match index {
            Some(index) => format!("{key}[{index}]"),
            None => key.clone(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Warns about (or, when `command` would do the wrong thing without it, refuses) what
/// `config` (read from `document`, profiles applied) sets and skiff does not act on.
pub(crate) fn check(
    document: &Document,
    config: &SkaffoldConfig,
    command: &str,
    warnings: &mut Vec<Warning>,
) -> Result<(), ConfigError> {
    // The typed config serializes to what it holds; only set fields are looked at.
    let Ok(value) = serde_yaml::to_value(config) else {
        return Ok(());
    };
    for (path, treatment) in NOT_ACTED_ON {
        let pattern: Vec<&str> = path.split('.').collect();
        let mut found = Vec::new();
        occurrences(&value, &pattern, &Vec::new(), &mut found);
        for occurrence in found {
            let steps: Vec<Step<'_>> = occurrence
                .iter()
                .flat_map(|(key, index)| {
                    std::iter::once(Step::Key(key.as_str())).chain(index.map(Step::Index))
                })
                .collect();
            let location = locate(document, &steps);
            let field = dotted(&occurrence);
            let (refused, what) = match treatment {
                Treatment::Warn(what) => (false, *what),
                Treatment::Refuse(commands, what) => (commands.contains(&command), *what),
            };
            if refused {
                return Err(ConfigError::NotSupported {
                    location: Some(location),
                    field,
                    message: what.to_owned(),
                });
            }
            warnings.push(Warning {
                location: Some(location),
                message: format!("`{field}`: {what}"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn found(yaml: &str, path: &str) -> Vec<String> {
        let value: Value = serde_yaml::from_str(yaml).unwrap();
        let pattern: Vec<&str> = path.split('.').collect();
        let mut out = Vec::new();
        occurrences(&value, &pattern, &Vec::new(), &mut out);
        out.iter().map(dotted).collect()
    }

    #[test]
    fn set_fields_are_found_in_every_list_item() {
        let yaml = "deploy:\n  helm:\n    releases:\n    - name: a\n      wait: true\n    - name: b\n      wait: false\n    - name: c\n      wait: true\n";
        assert_eq!(
            found(yaml, "deploy.helm.releases[].wait"),
            [
                "deploy.helm.releases[0].wait",
                "deploy.helm.releases[2].wait"
            ]
        );
        assert!(found("test: []\n", "test").is_empty());
        assert_eq!(
            found("build:\n  cluster: {}\n", "build.cluster"),
            ["build.cluster"]
        );
    }
}
