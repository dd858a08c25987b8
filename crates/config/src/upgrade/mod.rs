//! Older apiVersions (`skaffold/v1alpha1` … `skaffold/v3`), upgraded in memory one version at a
//! time, as Skaffold upgrades them.
//!
//! Skaffold upgrades a config by cloning it through JSON into the next version's types (values
//! follow their Go field names, so a renamed YAML key or a changed nesting carries over, and a
//! field the next version lacks is dropped), then by a hand-written step where a field changed
//! shape. The first part, derived from Skaffold's own schema packages, is the table in
//! `fields.rs`; the second is [`special`], written here. Both work on the YAML tree, so the
//! result is what Skaffold would have read, and a dropped field is named in a note instead of
//! vanishing.

mod fields;
mod special;

use serde_yaml::{Mapping, Value};

use fields::FIELD_STEPS;

/// Every apiVersion Skaffold has published, oldest first.
pub(crate) const CHAIN: &[&str] = &[
    "skaffold/v1alpha1",
    "skaffold/v1alpha2",
    "skaffold/v1alpha3",
    "skaffold/v1alpha4",
    "skaffold/v1alpha5",
    "skaffold/v1beta1",
    "skaffold/v1beta2",
    "skaffold/v1beta3",
    "skaffold/v1beta4",
    "skaffold/v1beta5",
    "skaffold/v1beta6",
    "skaffold/v1beta7",
    "skaffold/v1beta8",
    "skaffold/v1beta9",
    "skaffold/v1beta10",
    "skaffold/v1beta11",
    "skaffold/v1beta12",
    "skaffold/v1beta13",
    "skaffold/v1beta14",
    "skaffold/v1beta15",
    "skaffold/v1beta16",
    "skaffold/v1beta17",
    "skaffold/v1",
    "skaffold/v2alpha1",
    "skaffold/v2alpha2",
    "skaffold/v2alpha3",
    "skaffold/v2alpha4",
    "skaffold/v2beta1",
    "skaffold/v2beta2",
    "skaffold/v2beta3",
    "skaffold/v2beta4",
    "skaffold/v2beta5",
    "skaffold/v2beta6",
    "skaffold/v2beta7",
    "skaffold/v2beta8",
    "skaffold/v2beta9",
    "skaffold/v2beta10",
    "skaffold/v2beta11",
    "skaffold/v2beta12",
    "skaffold/v2beta13",
    "skaffold/v2beta14",
    "skaffold/v2beta15",
    "skaffold/v2beta16",
    "skaffold/v2beta17",
    "skaffold/v2beta18",
    "skaffold/v2beta19",
    "skaffold/v2beta20",
    "skaffold/v2beta21",
    "skaffold/v2beta22",
    "skaffold/v2beta23",
    "skaffold/v2beta24",
    "skaffold/v2beta25",
    "skaffold/v2beta26",
    "skaffold/v2beta27",
    "skaffold/v2beta28",
    "skaffold/v2beta29",
    "skaffold/v3alpha1",
    "skaffold/v3",
];

/// The version an upgraded config ends at: the newest of Skaffold 2.14, which the generated
/// table reaches; skiff reads it (and every newer v4 version) directly.
pub(crate) const UPGRADED_TO: &str = "skaffold/v4beta12";

/// Whether `version` is one skiff reads by upgrading.
pub(crate) fn is_older(version: &str) -> bool {
    CHAIN.contains(&version)
}

/// One step of the generated table: the changes of the upgrade from `from` to `to`.
pub(crate) struct FieldStep {
    from: &'static str,
    #[allow(dead_code)]
    to: &'static str,
    ops: &'static [FieldOp],
}

/// At every mapping matching `at` (`*`: each item of a sequence, each value of a mapping), the
/// value at `from` moves to `to` (an empty `to` merges its keys into the mapping), or is
/// dropped when `to` is `None`.
pub(crate) struct FieldOp {
    at: &'static [&'static str],
    from: &'static [&'static str],
    to: Option<&'static [&'static str]>,
}

/// Something the upgrade did that the user should know: a field dropped, a meaning changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    /// The field in the user's file (`build.artifacts[0].plugin`), when there is one.
    pub field: Option<String>,
    pub message: String,
}

/// A config that cannot be upgraded (Skaffold refuses it too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UpgradeError {
    /// The field in the user's file.
    pub field: String,
    pub message: String,
}

/// What an upgrade produced.
#[derive(Debug, Clone)]
pub(crate) struct Upgraded {
    /// The document as [`UPGRADED_TO`] (or `target`) reads it.
    pub tree: Value,
    pub notes: Vec<Note>,
}

/// Upgrades the document `tree` of apiVersion `from` up to `target` (`None`: as far as the
/// table goes, [`UPGRADED_TO`]). `target` must not be older than `from`.
pub(crate) fn upgrade(
    tree: &Value,
    from: &str,
    target: Option<&str>,
) -> Result<Upgraded, UpgradeError> {
    let mut tree = tree.clone();
    let mut notes = Vec::new();
    let Some(mut index) = CHAIN.iter().position(|v| *v == from) else {
        return Ok(Upgraded { tree, notes });
    };
    let stop = target.and_then(|t| CHAIN.iter().position(|v| *v == t));
    loop {
        if stop == Some(index) {
            break;
        }
        let version = CHAIN[index];
        let next = CHAIN.get(index + 1).copied().unwrap_or(UPGRADED_TO);
        let old = tree.clone();
        let mut handled = Vec::new();
        if version == "skaffold/v1alpha1" {
            tree = special::from_v1alpha1(&old, &mut notes);
        } else {
            let mut dropped = Vec::new();
            if let Some(step) = FIELD_STEPS.iter().find(|s| s.from == version) {
                for op in step.ops {
                    apply(&mut tree, op, &mut Vec::new(), &mut dropped);
                }
            }
            special::step(version, &old, &mut tree, &mut handled, &mut notes)?;
            for field in dropped {
                if !handled.iter().any(|h: &String| is_within(&field, h)) {
                    notes.push(Note {
                        message: format!(
                            "`{field}` is not part of {next}, the apiVersion after {version}: Skaffold drops it when upgrading, and so does skiff; remove it"
                        ),
                        field: Some(field),
                    });
                }
            }
        }
        if let Value::Mapping(map) = &mut tree {
            map.insert("apiVersion".into(), next.into());
        }
        if index + 1 >= CHAIN.len() {
            break;
        }
        index += 1;
    }
    Ok(Upgraded { tree, notes })
}

/// Whether the field path `field` is `prefix` or below it.
fn is_within(field: &str, prefix: &str) -> bool {
    field == prefix
        || field
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// A concrete path, as written in messages: `build.artifacts[0].docker`.
pub(crate) fn display_path(path: &[PathStep]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            PathStep::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            PathStep::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathStep {
    Key(String),
    Index(usize),
}

/// Applies `op` at every mapping below `value` that matches `op.at[depth..]`.
fn apply(value: &mut Value, op: &FieldOp, path: &mut Vec<PathStep>, dropped: &mut Vec<String>) {
    let depth = path.len();
    if depth < op.at.len() {
        let segment = op.at[depth];
        match value {
            Value::Mapping(map) if segment == "*" => {
                for (key, child) in map.iter_mut() {
                    path.push(PathStep::Key(key_text(key)));
                    apply(child, op, path, dropped);
                    path.pop();
                }
            }
            Value::Sequence(items) if segment == "*" => {
                for (i, child) in items.iter_mut().enumerate() {
                    path.push(PathStep::Index(i));
                    apply(child, op, path, dropped);
                    path.pop();
                }
            }
            Value::Mapping(map) => {
                if let Some(child) = map.get_mut(segment) {
                    path.push(PathStep::Key(segment.to_owned()));
                    apply(child, op, path, dropped);
                    path.pop();
                }
            }
            _ => {}
        }
        return;
    }
    let Some(taken) = take(value, op.from) else {
        return;
    };
    match op.to {
        None => {
            let mut full = path.clone();
            full.extend(op.from.iter().map(|k| PathStep::Key((*k).to_owned())));
            dropped.push(display_path(&full));
        }
        Some([]) => {
            if let (Value::Mapping(target), Value::Mapping(entries)) = (value, taken) {
                for (key, entry) in entries {
                    target.entry(key).or_insert(entry);
                }
            }
        }
        Some(to) => put(value, to, taken),
    }
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim_end().to_owned())
            .unwrap_or_default(),
    }
}

/// Removes and returns the value at `path` below `value`.
pub(crate) fn take(value: &mut Value, path: &[&str]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut current = value;
    for key in parents {
        current = current.as_mapping_mut()?.get_mut(*key)?;
    }
    current.as_mapping_mut()?.remove(*last)
}

/// The value at `path` below `value`.
pub(crate) fn get<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut current = value;
    for key in path {
        current = current.as_mapping()?.get(*key)?;
    }
    Some(current)
}

/// The mapping at `path` below `value`, created (replacing anything that is not a mapping)
/// where missing.
pub(crate) fn mapping_at<'a>(value: &'a mut Value, path: &[&str]) -> &'a mut Mapping {
    let mut current = value;
    for key in path {
        if !current.is_mapping() {
            *current = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(map) = current else {
            unreachable!("made a mapping above")
        };
        current = map
            .entry((*key).into())
            .or_insert_with(|| Value::Mapping(Mapping::new()));
    }
    if !current.is_mapping() {
        *current = Value::Mapping(Mapping::new());
    }
    match current {
        Value::Mapping(map) => map,
        _ => unreachable!("made a mapping above"),
    }
}

/// Sets the value at `path` below `value`, creating mappings on the way.
pub(crate) fn put(value: &mut Value, path: &[&str], new: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    mapping_at(value, parents).insert((*last).into(), new);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn every_generated_step_is_in_the_chain() {
        for step in FIELD_STEPS {
            assert!(CHAIN.contains(&step.from), "{}", step.from);
        }
    }

    #[test]
    fn renames_follow_go_field_names() {
        let old = yaml(
            "apiVersion: skaffold/v1alpha3\nkind: Config\nbuild:\n  artifacts:\n  - imageName: app\n    workspace: src\n    docker:\n      dockerfilePath: Dockerfile.dev\n  local:\n    skipPush: true\n",
        );
        let upgraded = upgrade(&old, "skaffold/v1alpha3", Some("skaffold/v1alpha4")).unwrap();
        assert_eq!(
            upgraded.tree,
            yaml(
                "apiVersion: skaffold/v1alpha4\nkind: Config\nbuild:\n  artifacts:\n  - image: app\n    context: src\n    docker:\n      dockerfile: Dockerfile.dev\n  local:\n    push: false\n"
            )
        );
        assert!(upgraded.notes.is_empty(), "{:?}", upgraded.notes);
    }

    #[test]
    fn a_dropped_field_is_named() {
        let old = yaml(
            "apiVersion: skaffold/v2beta8\nkind: Config\nbuild:\n  artifacts:\n  - image: app\n    kaniko:\n      flags: [--x]\n",
        );
        let upgraded = upgrade(&old, "skaffold/v2beta8", Some("skaffold/v2beta9")).unwrap();
        assert_eq!(upgraded.notes.len(), 1);
        assert_eq!(
            upgraded.notes[0].field.as_deref(),
            Some("build.artifacts[0].kaniko.flags")
        );
    }
}
