//! Profiles: which are active, and what they do to a configuration.
//!
//! A profile is active when `-p` names it, when a parent config's `requires.activeProfiles`
//! asks for it, or when its `activation` rules match (any rule; all of them with
//! `requiresAllActivations`); `-p -NAME` deactivates it whatever else says. Active profiles
//! apply in the order they are defined: each section a profile sets (`build`, `test`,
//! `manifests`, `deploy`, `portForward`, `resourceSelector`, `verify`, `customActions`)
//! replaces the base section, then its `patches` apply to the resulting tree.

use std::collections::BTreeMap;

use regex::Regex;
use serde_yaml::Value;

use crate::document::Document;
use crate::error::ConfigError;
use crate::locate::{Step, locate};
use crate::patch::{self, PatchOp};
use crate::schema::{Activation, Profile};

/// The sections a profile may replace, as spelled in YAML.
const SECTIONS: &[&str] = &[
    "build",
    "test",
    "manifests",
    "deploy",
    "portForward",
    "resourceSelector",
    "verify",
    "customActions",
];

/// What decides activation, gathered once.
#[derive(Debug, Clone)]
pub(crate) struct ActivationContext<'a> {
    /// Environment variables.
    pub env: &'a BTreeMap<String, String>,
    /// The kube-context in effect, when known.
    pub kube_context: Option<&'a str>,
    /// The skiff command being run (`dev`, `run`, `diagnose`, …).
    pub command: &'a str,
}

/// Profile names requested on the command line (`-p a,-b`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ProfileRequest {
    pub enabled: Vec<String>,
    pub disabled: Vec<String>,
}

impl ProfileRequest {
    pub fn parse(names: &[String]) -> ProfileRequest {
        let mut request = ProfileRequest::default();
        for name in names.iter().flat_map(|n| n.split(',')).map(str::trim) {
            if let Some(disabled) = name.strip_prefix('-') {
                request.disabled.push(disabled.to_owned());
            } else if !name.is_empty() {
                request.enabled.push(name.to_owned());
            }
        }
        request
    }
}

/// The names of the profiles of `document` that are active, in definition order.
pub(crate) fn active_profiles(
    document: &Document,
    request: &ProfileRequest,
    required_by_parent: &[String],
    context: &ActivationContext<'_>,
) -> Result<Vec<String>, ConfigError> {
    let mut active = Vec::new();
    for (index, profile) in document.config.profiles.iter().flatten().enumerate() {
        let name = &profile.name;
        if request.disabled.contains(name) {
            continue;
        }
        let wanted = request.enabled.contains(name)
            || required_by_parent.contains(name)
            || auto_activated(document, index, profile, context)?;
        if wanted {
            active.push(name.clone());
        }
    }
    Ok(active)
}

fn auto_activated(
    document: &Document,
    index: usize,
    profile: &Profile,
    context: &ActivationContext<'_>,
) -> Result<bool, ConfigError> {
    let rules = profile.activation.as_deref().unwrap_or_default();
    if rules.is_empty() {
        return Ok(false);
    }
    let mut results = Vec::with_capacity(rules.len());
    for (rule_index, rule) in rules.iter().enumerate() {
        let here = || {
            locate(
                document,
                &[
                    Step::Key("profiles"),
                    Step::Index(index),
                    Step::Key("activation"),
                    Step::Index(rule_index),
                ],
            )
        };
        results.push(
            rule_matches(rule, context).map_err(|message| ConfigError::Activation {
                location: here(),
                profile: profile.name.clone(),
                message,
            })?,
        );
    }
    Ok(if profile.requires_all_activations.unwrap_or(false) {
        results.iter().all(|&r| r)
    } else {
        results.iter().any(|&r| r)
    })
}

/// Every condition a rule sets must hold; a rule that sets none never matches.
fn rule_matches(rule: &Activation, context: &ActivationContext<'_>) -> Result<bool, String> {
    let mut any = false;
    if let Some(env) = &rule.env {
        any = true;
        let (key, pattern) = env.split_once('=').ok_or_else(|| {
            format!("activation `env: {env}` must have the form KEY=VALUE (VALUE is a regular expression; `!` in front negates it)")
        })?;
        let actual = context.env.get(key).map(String::as_str).unwrap_or("");
        if !satisfies(pattern, actual).map_err(|e| format!("activation `env: {env}`: {e}"))? {
            return Ok(false);
        }
    }
    if let Some(pattern) = &rule.kube_context {
        any = true;
        let actual = context.kube_context.unwrap_or("");
        if !satisfies(pattern, actual)
            .map_err(|e| format!("activation `kubeContext: {pattern}`: {e}"))?
        {
            return Ok(false);
        }
    }
    if let Some(pattern) = &rule.command {
        any = true;
        if !satisfies(pattern, context.command)
            .map_err(|e| format!("activation `command: {pattern}`: {e}"))?
        {
            return Ok(false);
        }
    }
    Ok(any)
}

/// Skaffold's matching: equal, or the (unanchored) regular expression matches; a leading `!`
/// negates.
fn satisfies(expected: &str, actual: &str) -> Result<bool, String> {
    if let Some(negated) = expected.strip_prefix('!') {
        return satisfies(negated, actual).map(|m| !m);
    }
    if expected == actual {
        return Ok(true);
    }
    let regex = Regex::new(expected).map_err(|e| format!("invalid regular expression: {e}"))?;
    Ok(regex.is_match(actual))
}

/// Apply the named profiles to `document`'s tree, in definition order.
pub(crate) fn apply_profiles(document: &Document, active: &[String]) -> Result<Value, ConfigError> {
    let mut tree = document.tree.clone();
    let profiles_tree = tree
        .as_mapping_mut()
        .and_then(|m| m.remove("profiles"))
        .unwrap_or(Value::Null);
    for (index, profile) in document.config.profiles.iter().flatten().enumerate() {
        if !active.contains(&profile.name) {
            continue;
        }
        let profile_tree = profiles_tree.get(index).cloned().unwrap_or(Value::Null);
        if let (Some(base), Some(overlay)) = (tree.as_mapping_mut(), profile_tree.as_mapping()) {
            for section in SECTIONS {
                if let Some(value) = overlay.get(*section).filter(|v| !v.is_null()) {
                    base.insert(Value::from(*section), value.clone());
                }
            }
        }
        let mut ops = Vec::new();
        for (patch_index, raw) in profile.patches.iter().flatten().enumerate() {
            let op_name = raw.op.as_deref().unwrap_or("replace");
            let value = raw.value.as_ref().map(|v| v.0.clone());
            let op = PatchOp::from_parts(op_name, &raw.path, raw.from.as_deref(), value).map_err(
                |source| {
                    patch_error(
                        document,
                        index,
                        patch_index,
                        profile,
                        op_name,
                        &raw.path,
                        source,
                    )
                },
            )?;
            ops.push(op);
        }
        patch::apply_all(&mut tree, &ops).map_err(|(patch_index, source)| {
            let op = &ops[patch_index];
            patch_error(
                document,
                index,
                patch_index,
                profile,
                op.name(),
                op.path(),
                source,
            )
        })?;
    }
    Ok(tree)
}

fn patch_error(
    document: &Document,
    profile_index: usize,
    patch_index: usize,
    profile: &Profile,
    op: &str,
    path: &str,
    source: patch::PatchError,
) -> ConfigError {
    ConfigError::Patch {
        location: Box::new(locate(
            document,
            &[
                Step::Key("profiles"),
                Step::Index(profile_index),
                Step::Key("patches"),
                Step::Index(patch_index),
            ],
        )),
        profile: profile.name.clone(),
        index: patch_index,
        op: op.to_owned(),
        path: path.to_owned(),
        source: Box::new(source),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn skaffold_matching() {
        assert!(satisfies("minikube", "minikube").unwrap());
        assert!(satisfies("kind-.*", "kind-dev").unwrap());
        assert!(satisfies("!prod", "dev").unwrap());
        assert!(!satisfies("!prod", "prod").unwrap());
        assert!(satisfies("", "").unwrap());
        assert!(satisfies("(", "x").is_err());
    }

    #[test]
    fn request_parsing() {
        let r = ProfileRequest::parse(&["a,-b".into(), "c".into()]);
        assert_eq!(r.enabled, ["a", "c"]);
        assert_eq!(r.disabled, ["b"]);
    }
}
