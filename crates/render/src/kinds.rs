//! What skiff knows about Kubernetes kinds: which it transforms and where (Skaffold's
//! allowlist and denylist, plus `resourceSelector`), and which are cluster-scoped.

use crate::options::{ResourceFilter, ResourceSelector};

/// Field paths of one kind that skiff changes (or leaves alone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    /// Paths of image fields; `.*` means every `image` field.
    pub image: Vec<String>,
    /// Paths of label maps; `.*` means the `labels` of every `metadata`.
    pub labels: Vec<String>,
}

const EVERY: &str = ".*";

/// Kinds whose every `image` field and every `metadata` skiff transforms: Skaffold's
/// allowlist, plus `ReplicationController` and `PodTemplate`.
const ALLOW_ALL: &[(&str, &str)] = &[
    ("", "Pod"),
    ("", "Service"),
    ("", "ReplicationController"),
    ("", "PodTemplate"),
    ("apps", "DaemonSet"),
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("apps", "StatefulSet"),
    ("batch", "CronJob"),
    ("batch", "Job"),
    ("extensions", "DaemonSet"),
    ("extensions", "Deployment"),
    ("extensions", "ReplicaSet"),
    ("serving.knative.dev", "Service"),
    ("agones.dev", "Fleet"),
    ("agones.dev", "GameServer"),
    ("argoproj.io", "Rollout"),
    ("argoproj.io", "Workflow"),
    ("argoproj.io", "CronWorkflow"),
    ("argoproj.io", "WorkflowTemplate"),
    ("argoproj.io", "ClusterWorkflowTemplate"),
    ("run.googleapis.com", "Job"),
    ("run.googleapis.com", "WorkerPool"),
];

/// Kinds with images at fixed paths (labels on every `metadata`).
const ALLOW_PATHS: &[(&str, &str, &[&str])] = &[
    ("platform.confluent.io", "Connect", CONFLUENT),
    ("platform.confluent.io", "ControlCenter", CONFLUENT),
    ("platform.confluent.io", "Kafka", CONFLUENT),
    ("platform.confluent.io", "KsqlDB", CONFLUENT),
    ("platform.confluent.io", "SchemaRegistry", CONFLUENT),
    ("platform.confluent.io", "Zookeeper", CONFLUENT),
    ("kafka.strimzi.io", "KafkaConnect", &[".spec.image"]),
    (
        "kafka.strimzi.io",
        "Kafka",
        &[
            ".spec.kafka.image",
            ".spec.zookeeper.image",
            ".spec.entityOperator.topicOperator.image",
            ".spec.entityOperator.userOperator.image",
            ".spec.kafkaExporter.image",
        ],
    ),
];

const CONFLUENT: &[&str] = &[".spec.image.application", ".spec.image.init"];

/// Label maps never touched: a Job's pod template and a StatefulSet's volume claim templates
/// are immutable, so a new run ID there would make the next apply fail.
const DENY_LABELS: &[(&str, &str, &str)] = &[
    (
        "apps",
        "StatefulSet",
        ".spec.volumeClaimTemplates.metadata.labels",
    ),
    ("batch", "Job", ".spec.template.metadata.labels"),
];

/// Kinds that live outside namespaces (built-in ones and a few well-known custom resources).
const CLUSTER_SCOPED: &[&str] = &[
    "APIService",
    "CertificateSigningRequest",
    "ClusterIssuer",
    "ClusterPolicy",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterSecretStore",
    "ClusterTrustBundle",
    "ClusterWorkflowTemplate",
    "ComponentStatus",
    "CSIDriver",
    "CSINode",
    "CustomResourceDefinition",
    "DeviceClass",
    "FlowSchema",
    "GatewayClass",
    "IngressClass",
    "IPAddress",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PodSecurityPolicy",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "ResourceSlice",
    "RuntimeClass",
    "SelfSubjectAccessReview",
    "SelfSubjectReview",
    "SelfSubjectRulesReview",
    "ServiceCIDR",
    "StorageClass",
    "StorageVersion",
    "StorageVersionMigration",
    "SubjectAccessReview",
    "TokenReview",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
    "VolumeAttributesClass",
];

/// Whether objects of `kind` live in a namespace.
pub(crate) fn is_namespaced(kind: &str) -> bool {
    !CLUSTER_SCOPED.contains(&kind)
}

/// The API group of an `apiVersion`: `apps` for `apps/v1`, empty for `v1`.
pub(crate) fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// `Kind.group` → (group, kind), as Kubernetes' `ParseGroupKind`.
fn parse_group_kind(group_kind: &str) -> (String, String) {
    match group_kind.split_once('.') {
        Some((kind, group)) => (group.to_owned(), kind.to_owned()),
        None => (String::new(), group_kind.to_owned()),
    }
}

/// A user path as the visitor spells paths: `.a.b.c`, list indices and `.*` segments dropped
/// (`.spec.containers[0].image` and `.spec.containers.*.image` → `.spec.containers.image`).
fn normalize_path(path: &str) -> String {
    let path = path.trim();
    if path == EVERY {
        return EVERY.to_owned();
    }
    let mut out = String::with_capacity(path.len() + 1);
    for segment in path.split('.') {
        let segment = match segment.find('[') {
            Some(i) => &segment[..i],
            None => segment,
        };
        if segment.is_empty() || segment == "*" {
            continue;
        }
        out.push('.');
        out.push_str(segment);
    }
    out
}

fn filter_of(filter: &ResourceFilter) -> Filter {
    Filter {
        image: filter.image.iter().map(|p| normalize_path(p)).collect(),
        labels: filter.labels.iter().map(|p| normalize_path(p)).collect(),
    }
}

/// The built-in rules with `resourceSelector` applied, as Skaffold consolidates them: a user
/// `allow` entry replaces the built-in entry of its kind and lifts any built-in denial; a user
/// `deny` entry replaces the denial and removes the kind from the allowlist.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selector {
    allow: Vec<(String, String, Filter)>,
    deny: Vec<(String, String, Filter)>,
}

fn upsert(list: &mut Vec<(String, String, Filter)>, group: String, kind: String, filter: Filter) {
    match list.iter_mut().find(|(g, k, _)| *g == group && *k == kind) {
        Some(entry) => entry.2 = filter,
        None => list.push((group, kind, filter)),
    }
}

fn remove(list: &mut Vec<(String, String, Filter)>, group: &str, kind: &str) {
    list.retain(|(g, k, _)| !(g == group && k == kind));
}

impl Selector {
    pub fn new(user: &ResourceSelector) -> Selector {
        let mut selector = Selector::default();
        for (group, kind) in ALLOW_ALL {
            selector.allow.push((
                (*group).to_owned(),
                (*kind).to_owned(),
                Filter {
                    image: vec![EVERY.to_owned()],
                    labels: vec![EVERY.to_owned()],
                },
            ));
        }
        for (group, kind, paths) in ALLOW_PATHS {
            selector.allow.push((
                (*group).to_owned(),
                (*kind).to_owned(),
                Filter {
                    image: paths.iter().map(|p| (*p).to_owned()).collect(),
                    labels: vec![EVERY.to_owned()],
                },
            ));
        }
        for (group, kind, path) in DENY_LABELS {
            selector.deny.push((
                (*group).to_owned(),
                (*kind).to_owned(),
                Filter {
                    image: Vec::new(),
                    labels: vec![(*path).to_owned()],
                },
            ));
        }
        for filter in &user.allow {
            let (group, kind) = parse_group_kind(&filter.group_kind);
            remove(&mut selector.deny, &group, &kind);
            upsert(&mut selector.allow, group, kind, filter_of(filter));
        }
        for filter in &user.deny {
            let (group, kind) = parse_group_kind(&filter.group_kind);
            remove(&mut selector.allow, &group, &kind);
            upsert(&mut selector.deny, group, kind, filter_of(filter));
        }
        selector
    }

    /// The rules for objects of `group`/`kind`.
    pub fn policy(&self, group: &str, kind: &str) -> Policy<'_> {
        fn find<'s>(
            list: &'s [(String, String, Filter)],
            group: &str,
            kind: &str,
        ) -> Option<&'s Filter> {
            list.iter()
                .find(|(g, k, _)| g == group && k == kind)
                .map(|(_, _, f)| f)
        }
        Policy {
            allow: find(&self.allow, group, kind),
            deny: find(&self.deny, group, kind),
        }
    }
}

/// The rules for one kind.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy<'a> {
    allow: Option<&'a Filter>,
    deny: Option<&'a Filter>,
}

impl<'a> Policy<'a> {
    /// Whether every field of the object is visited (the kind is allowlisted and not denied
    /// entirely); otherwise only its top-level fields and its pod templates are.
    pub fn recursive(&self) -> bool {
        self.allow.is_some()
            && !self.deny.is_some_and(|d| {
                d.labels.iter().any(|p| p == EVERY) || d.image.iter().any(|p| p == EVERY)
            })
    }

    /// Whether the field `key` at `navpath` (`.spec.template.spec.containers.image`) holds an
    /// image to replace.
    pub fn image_allowed(&self, navpath: &str, key: &str) -> bool {
        if let Some(deny) = self.deny {
            if deny.image.iter().any(|p| p == EVERY || p == navpath) {
                return false;
            }
        }
        self.allow.is_some_and(|allow| {
            allow
                .image
                .iter()
                .any(|p| (p == EVERY && key == "image") || p == navpath)
        })
    }

    /// Whether an image at a pod-template path of a kind skiff does not know may be replaced
    /// (only an explicit denial stops it).
    pub fn pod_image_denied(&self, navpath: &str) -> bool {
        self.deny
            .is_some_and(|deny| deny.image.iter().any(|p| p == EVERY || p == navpath))
    }

    /// The field of the map at `navpath` (key `key`) that labels go into, if labels go there:
    /// `labels` of every `metadata` for `.*`, or the last segment of an explicit path.
    pub fn labels_field(&self, navpath: &str, key: &str) -> Option<&'a str> {
        let parent = |path: &'a str| path.rsplit_once('.');
        if let Some(deny) = self.deny {
            for path in &deny.labels {
                if path == EVERY {
                    return None;
                }
                if parent(path).is_some_and(|(p, _)| p == navpath) {
                    return None;
                }
            }
        }
        // Every object's own metadata gets labels, allowlisted or not.
        if navpath == ".metadata" {
            return Some("labels");
        }
        let allow = self.allow?;
        for path in &allow.labels {
            if path == EVERY {
                return (key == "metadata").then_some("labels");
            }
            if let Some((p, last)) = parent(path) {
                if p == navpath {
                    return Some(last);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized() {
        assert_eq!(normalize_path(".*"), ".*");
        assert_eq!(
            normalize_path(".spec.containers.*.image"),
            ".spec.containers.image"
        );
        assert_eq!(
            normalize_path("spec.containers[0].image"),
            ".spec.containers.image"
        );
        assert_eq!(normalize_path(".spec.image."), ".spec.image");
    }

    #[test]
    fn group_kinds() {
        assert_eq!(
            parse_group_kind("Rollout.argoproj.io"),
            ("argoproj.io".to_owned(), "Rollout".to_owned())
        );
        assert_eq!(parse_group_kind("Pod"), (String::new(), "Pod".to_owned()));
        assert_eq!(group_of("apps/v1"), "apps");
        assert_eq!(group_of("v1"), "");
        assert_eq!(group_of("serving.knative.dev/v1"), "serving.knative.dev");
    }

    #[test]
    fn job_pod_templates_are_denied_labels() {
        let selector = Selector::new(&ResourceSelector::default());
        let job = selector.policy("batch", "Job");
        assert!(job.recursive());
        assert_eq!(job.labels_field(".metadata", "metadata"), Some("labels"));
        assert_eq!(
            job.labels_field(".spec.template.metadata", "metadata"),
            None
        );
        let sts = selector.policy("apps", "StatefulSet");
        assert_eq!(
            sts.labels_field(".spec.template.metadata", "metadata"),
            Some("labels")
        );
        assert_eq!(
            sts.labels_field(".spec.volumeClaimTemplates.metadata", "metadata"),
            None
        );
        let cm = selector.policy("", "ConfigMap");
        assert!(!cm.recursive());
        assert_eq!(cm.labels_field(".metadata", "metadata"), Some("labels"));
        assert!(!cm.image_allowed(".image", "image"));
    }

    #[test]
    fn user_rules_replace_built_in_ones() {
        let selector = Selector::new(&ResourceSelector {
            allow: vec![ResourceFilter {
                group_kind: "Foo.example.com".into(),
                image: vec![".spec.app.image".into()],
                labels: vec![".spec.podTemplate.metadata.labels".into()],
            }],
            deny: vec![ResourceFilter {
                group_kind: "Deployment.apps".into(),
                image: vec![".*".into()],
                labels: vec![],
            }],
        });
        let foo = selector.policy("example.com", "Foo");
        assert!(foo.recursive());
        assert!(foo.image_allowed(".spec.app.image", "image"));
        assert!(!foo.image_allowed(".spec.other.image", "image"));
        assert_eq!(
            foo.labels_field(".spec.podTemplate.metadata", "metadata"),
            Some("labels")
        );
        let deployment = selector.policy("apps", "Deployment");
        assert!(!deployment.recursive());
        assert!(!deployment.image_allowed(".spec.template.spec.containers.image", "image"));
        assert!(deployment.pod_image_denied(".spec.template.spec.containers.image"));
    }

    #[test]
    fn cluster_scoped_kinds() {
        assert!(!is_namespaced("Namespace"));
        assert!(!is_namespaced("ClusterRoleBinding"));
        assert!(!is_namespaced("CustomResourceDefinition"));
        assert!(is_namespaced("Deployment"));
        assert!(is_namespaced("Role"));
    }
}
