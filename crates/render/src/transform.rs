//! The changes skiff makes to each object: images replaced by the ones built, labels added,
//! the namespace filled in.

use std::collections::HashMap;

use skiff_types::image::{BuiltImage, ImageRef};

use crate::kinds::{Policy, Selector, group_of, is_namespaced};
use crate::yaml::{Key, Node, Scalar};

/// Pod-spec paths of kinds skiff does not know (custom resources with pod templates).
const POD_SPEC_PATHS: &[&[&str]] = &[
    &["spec", "template", "spec"],
    &["spec", "jobTemplate", "spec", "template", "spec"],
];

/// Container lists of a pod spec.
const CONTAINER_FIELDS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// The transformation of one render, shared by every object.
#[derive(Debug)]
pub(crate) struct Transformer {
    selector: Selector,
    /// Artifact image name → (index in `images`, the reference to deploy).
    images: HashMap<String, (usize, String)>,
    labels: Vec<(String, String)>,
}

impl Transformer {
    pub fn new(
        selector: Selector,
        images: &[BuiltImage],
        labels: &[(String, String)],
    ) -> Transformer {
        let mut by_name = HashMap::new();
        for (i, image) in images.iter().enumerate() {
            by_name.insert(image.image_name.clone(), (i, image.reference.to_string()));
        }
        Transformer {
            selector,
            images: by_name,
            labels: labels.to_vec(),
        }
    }

    /// Replaces images and adds labels in `object` (a mapping), marking the images used in
    /// `used` (indexed like the images given to [`Transformer::new`]).
    pub fn apply<'a>(
        &'a self,
        object: &mut Node<'a>,
        api_version: &str,
        kind: &str,
        used: &mut [bool],
    ) {
        let policy = self.selector.policy(group_of(api_version), kind);
        let Node::Map(entries) = object else {
            return;
        };
        let labels = self
            .labels
            .iter()
            .map(|(k, v)| (Key::new(k), Node::Scalar(Scalar::string(v))))
            .collect();
        let mut visit = Visit {
            transformer: self,
            policy,
            used,
            labels,
            navpath: String::with_capacity(64),
        };
        visit.mapping(entries, policy.recursive(), !self.labels.is_empty());
        if !policy.recursive() {
            visit.pod_templates(entries);
        }
    }

    /// The reference for the image `value`, when it names an artifact.
    fn replacement(&self, value: &str) -> Option<(usize, &str)> {
        let reference: ImageRef = value.parse().ok()?;
        self.images
            .get(reference.repository())
            .map(|(i, r)| (*i, r.as_str()))
    }
}

struct Visit<'a, 'u> {
    transformer: &'a Transformer,
    policy: Policy<'a>,
    used: &'u mut [bool],
    labels: Vec<(Key<'a>, Node<'a>)>,
    navpath: String,
}

impl<'a> Visit<'a, '_> {
    /// Visits the entries of a mapping; `recursive`: descend into values.
    fn mapping(&mut self, entries: &mut [(Key<'a>, Node<'a>)], recursive: bool, labels: bool) {
        for (key, value) in entries.iter_mut() {
            let len = self.navpath.len();
            self.navpath.push('.');
            self.navpath.push_str(&key.text);
            let mut descend = recursive;
            let mut labels_below = labels;
            if labels {
                if let Some(field) = self.policy.labels_field(&self.navpath, &key.text) {
                    if add_labels(value, field, &self.labels) {
                        labels_below = false;
                    }
                }
            }
            if self.policy.image_allowed(&self.navpath, &key.text) {
                if let Node::Scalar(scalar) = value {
                    self.replace(scalar);
                    descend = false;
                }
            }
            if descend {
                self.node(value, labels_below);
            }
            self.navpath.truncate(len);
        }
    }

    fn node(&mut self, node: &mut Node<'a>, labels: bool) {
        match node {
            Node::Map(entries) => self.mapping(entries, true, labels),
            Node::Seq(items) => {
                // List items keep their parent's path.
                for item in items {
                    self.node(item, labels);
                }
            }
            Node::Scalar(_) => {}
        }
    }

    fn replace(&mut self, scalar: &mut Scalar<'a>) {
        let Some(value) = scalar.as_str() else {
            return;
        };
        let transformer = self.transformer;
        if let Some((i, reference)) = transformer.replacement(&value) {
            if let Some(flag) = self.used.get_mut(i) {
                *flag = true;
            }
            *scalar = Scalar::string(reference);
        }
    }

    /// Images in the pod templates of a kind skiff does not transform throughout.
    fn pod_templates(&mut self, entries: &mut [(Key<'a>, Node<'a>)]) {
        for path in POD_SPEC_PATHS {
            let Some(spec) = find_path(entries, path) else {
                continue;
            };
            for field in CONTAINER_FIELDS {
                let navpath = format!(".{}.{field}.image", path.join("."));
                if self.policy.pod_image_denied(&navpath) {
                    continue;
                }
                let Some(Node::Seq(containers)) = spec.get_mut(field) else {
                    continue;
                };
                for container in containers {
                    if let Some(Node::Scalar(image)) = container.get_mut("image") {
                        self.replace(image);
                    }
                }
            }
        }
    }
}

fn find_path<'n, 'a>(
    entries: &'n mut [(Key<'a>, Node<'a>)],
    path: &[&str],
) -> Option<&'n mut Node<'a>> {
    let (first, rest) = path.split_first()?;
    let mut node = entries
        .iter_mut()
        .find(|(k, _)| k.text == *first)
        .map(|(_, v)| v)?;
    for key in rest {
        node = node.get_mut(key)?;
    }
    Some(node)
}

/// Adds `labels` to the map `field` of `metadata` (creating it), keeping labels already there,
/// as Skaffold does. Returns whether `metadata` was a mapping (or null) that took them.
fn add_labels<'a>(metadata: &mut Node<'a>, field: &'a str, labels: &[(Key<'a>, Node<'a>)]) -> bool {
    if metadata.is_null() {
        *metadata = Node::Map(Vec::new());
    }
    let Node::Map(entries) = metadata else {
        return false;
    };
    match entries.iter_mut().find(|(k, _)| k.text == field) {
        None => entries.push((Key::new(field), Node::Map(labels.to_vec()))),
        Some((_, existing)) => {
            if existing.is_null() {
                *existing = Node::Map(Vec::new());
            }
            let Node::Map(existing) = existing else {
                return false;
            };
            for (key, value) in labels {
                if !existing.iter().any(|(k, _)| k.text == key.text) {
                    existing.push((key.clone(), value.clone()));
                }
            }
        }
    }
    true
}

/// Sets `metadata.namespace` of a namespaced object that has none; returns the namespace the
/// object ends up with.
pub(crate) fn set_namespace<'a>(
    object: &mut Node<'a>,
    kind: &str,
    namespace: Option<&'a str>,
) -> Option<String> {
    let Node::Map(entries) = object else {
        return None;
    };
    let current = entries
        .iter()
        .find(|(k, _)| k.text == "metadata")
        .and_then(|(_, m)| m.get("namespace"))
        .and_then(|n| n.as_str().map(|s| s.into_owned()))
        .filter(|s| !s.is_empty());
    if current.is_some() || !is_namespaced(kind) {
        return current;
    }
    let namespace = namespace?;
    let value = Node::Scalar(Scalar::string(namespace));
    let metadata = match entries.iter().position(|(k, _)| k.text == "metadata") {
        Some(i) => &mut entries[i].1,
        None => {
            entries.push((Key::new("metadata"), Node::Map(Vec::new())));
            let last = entries.len() - 1;
            &mut entries[last].1
        }
    };
    if metadata.is_null() {
        *metadata = Node::Map(Vec::new());
    }
    let Node::Map(fields) = metadata else {
        return None;
    };
    if let Some((_, existing)) = fields.iter_mut().find(|(k, _)| k.text == "namespace") {
        *existing = value;
    } else {
        // Right after the name, where people look for it.
        let at = fields
            .iter()
            .position(|(k, _)| k.text == "name" || k.text == "generateName")
            .map_or(0, |i| i + 1);
        fields.insert(at, (Key::new("namespace"), value));
    }
    Some(namespace.to_owned())
}
