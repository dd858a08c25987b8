//! The Kubernetes deployer: server-side apply of rendered objects through kube-rs, and the
//! label-guarded deletes behind `dev`'s cleanup and `skiff delete`.
//!
//! * Objects are applied Namespaces first, then CustomResourceDefinitions, then everything else
//!   in input order; custom resources whose CRD is in the same set are applied once the CRD is
//!   `Established`.
//! * Server-side apply with field manager `skiff` (or `ApplyOptions::field_manager`), forcing
//!   conflicts as Skaffold does; Service and container ports without `protocol` get `TCP` first
//!   (Kubernetes 1.20 rejects them under server-side apply otherwise).
//! * Within one deployer, an object whose rendered form did not change since its last apply is
//!   not sent again ([`ApplyAction::Unchanged`]).
//! * An update the server refuses because a field is immutable is [`DeployError::Rejected`]
//!   (suggesting `--force`), or with `force` the object is deleted and re-created.
//! * Every applied object carries `skaffold.dev/run-id=<run id>` and
//!   `app.kubernetes.io/managed-by` (`skiff` unless already set); nothing lacking skiff's labels
//!   is ever deleted by [`Deployer::cleanup`], [`delete_labelled`] or [`delete_by_run_label`].
//! * An error stops the deploy where it happened; nothing already applied is removed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions,
};
use kube::core::GroupVersion;
use kube::discovery::Scope;
use serde_json::Value;
use skiff_types::event::{Event, Level, Reporter};
use skiff_types::manifest::Manifest;

use super::client::{Connection, api_error, api_error_for, explain_unreachable};
use crate::{
    ApplyAction, DeployError, DeployInput, DeployOutcome, Deployer, MANAGED_BY_LABEL,
    MANAGED_BY_VALUE, ManifestSet, RUN_ID_LABEL, ResourceRef,
};

/// The field manager skiff applies with.
pub const DEFAULT_FIELD_MANAGER: &str = "skiff";

/// How long `--force` waits for an object to be gone before re-creating it.
const RECREATE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a CRD of the set may take to become `Established` and served.
const CRD_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(250);
const SOURCE: &str = "deploy";

/// The kinds [`delete_by_run_label`] looks at by default, as (API group, kind), controllers
/// before what they control. PersistentVolumeClaims are left alone (they hold data).
pub const LEFTOVER_KINDS: &[(&str, &str)] = &[
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("batch", "CronJob"),
    ("batch", "Job"),
    ("apps", "ReplicaSet"),
    ("", "Pod"),
    ("", "Service"),
    ("networking.k8s.io", "Ingress"),
    ("", "ConfigMap"),
    ("", "Secret"),
];

/// How the deployer applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    /// `--force`: delete and re-create objects whose update the server refuses because an
    /// immutable field changed.
    pub force: bool,
    /// The server-side apply field manager; `skiff` by default.
    pub field_manager: String,
    /// `deploy.kubectl.flags`: `--force`, `--field-manager`, `--server-side` and
    /// `--force-conflicts` are honoured; the others are reported once as a warning.
    pub kubectl_flags: Vec<String>,
}

impl Default for ApplyOptions {
    fn default() -> ApplyOptions {
        ApplyOptions {
            force: false,
            field_manager: DEFAULT_FIELD_MANAGER.to_owned(),
            kubectl_flags: Vec::new(),
        }
    }
}

/// Applies rendered objects to a cluster (see the [module documentation](self)).
pub struct KubernetesDeployer {
    connection: Connection,
    run_id: String,
    force: bool,
    field_manager: String,
    unhonoured_flags: Vec<String>,
    state: tokio::sync::Mutex<State>,
}

impl std::fmt::Debug for KubernetesDeployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesDeployer")
            .field("connection", &self.connection)
            .field("run_id", &self.run_id)
            .field("force", &self.force)
            .field("field_manager", &self.field_manager)
            .finish_non_exhaustive()
    }
}

/// What the deployer remembers between deploys of one session.
#[derive(Default)]
struct State {
    kinds: KindCache,
    /// What this run applied, in apply order.
    order: Vec<ResourceRef>,
    records: HashMap<ResourceRef, Record>,
    warned_flags: bool,
}

struct Record {
    /// Hash of the body last applied.
    hash: u64,
    /// `resourceVersion` after the last apply.
    resource_version: Option<String>,
    /// `uid` after the last apply: another one means someone deleted it meanwhile.
    uid: Option<String>,
    kind: Kind,
}

impl KubernetesDeployer {
    /// A deployer for `connection` whose objects carry `skaffold.dev/run-id=<run_id>`.
    pub fn new(
        connection: Connection,
        run_id: impl Into<String>,
        options: ApplyOptions,
    ) -> KubernetesDeployer {
        let mut force = options.force;
        let mut field_manager = options.field_manager;
        if field_manager.is_empty() {
            DEFAULT_FIELD_MANAGER.clone_into(&mut field_manager);
        }
        let unhonoured_flags =
            interpret_flags(&options.kubectl_flags, &mut force, &mut field_manager);
        KubernetesDeployer {
            connection,
            run_id: run_id.into(),
            force,
            field_manager,
            unhonoured_flags,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// The connection it deploys through.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The run id its objects carry.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Every object this deployer applied in this run and has not cleaned up, in apply order.
    pub async fn applied(&self) -> Vec<ResourceRef> {
        self.state.lock().await.order.clone()
    }

    /// Applies one object; `state` is updated when the server accepted it.
    async fn apply_one(
        &self,
        state: &mut State,
        mut object: Parsed,
        kind: Kind,
        reporter: &dyn Reporter,
    ) -> Result<(ResourceRef, ApplyAction), DeployError> {
        let namespace = kind.namespaced.then(|| {
            object
                .object
                .metadata
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| self.connection.default_namespace.clone())
        });
        object.object.metadata.namespace.clone_from(&namespace);
        let labels = object
            .object
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new);
        labels.insert(RUN_ID_LABEL.to_owned(), self.run_id.clone());
        labels
            .entry(MANAGED_BY_LABEL.to_owned())
            .or_insert_with(|| MANAGED_BY_VALUE.to_owned());
        fill_protocol_defaults(&object.kind, &mut object.object.data);
        let body = serde_json::to_value(&object.object).map_err(|e| DeployError::Manifest {
            origin: object.origin.clone(),
            message: format!("cannot serialize {}: {e}", object.kind),
        })?;
        let hash = hash_of(&body.to_string());
        let reference = ResourceRef {
            api_version: object.api_version.clone(),
            kind: object.kind.clone(),
            namespace: namespace.clone(),
            name: object.name.clone(),
        };
        let label = describe(&reference);
        let previous = state.records.get(&reference);
        if previous.is_some_and(|r| r.hash == hash) {
            deployed(reporter, &label, "unchanged");
            return Ok((reference, ApplyAction::Unchanged));
        }
        let api = dynamic_api(&self.connection, &kind, namespace.as_deref());
        let before = match previous {
            Some(record) => Before::Applied {
                resource_version: record.resource_version.clone(),
                uid: record.uid.clone(),
            },
            None => look_up(&api, &object.name, &label).await?,
        };
        let params = PatchParams::apply(&self.field_manager).force();
        let (applied, before) = match api.patch(&object.name, &params, &Patch::Apply(&body)).await {
            Ok(applied) => (applied, before),
            Err(error) if is_immutable(&error) => {
                if !self.force {
                    return Err(DeployError::Rejected {
                        object: label,
                        message: format!(
                            "{}; the change needs the object deleted and re-created: deploy again with --force",
                            status_message(&error)
                        ),
                    });
                }
                let applied = self
                    .recreate(&api, &object.name, &label, &body, reporter)
                    .await?;
                (applied, Before::Absent)
            }
            Err(error) => return Err(apply_error(&label, &error)),
        };
        let resource_version = applied.metadata.resource_version.clone();
        let uid = applied.metadata.uid.clone();
        let action = match before {
            Before::Absent => ApplyAction::Created,
            Before::Applied { uid: old_uid, .. } if old_uid != uid => ApplyAction::Created,
            Before::Present(Some(old))
            | Before::Applied {
                resource_version: Some(old),
                ..
            } if Some(&old) == resource_version.as_ref() => ApplyAction::Unchanged,
            Before::Present(_) | Before::Applied { .. } | Before::Unknown => {
                ApplyAction::Configured
            }
        };
        deployed(reporter, &label, action_word(action));
        if !state.records.contains_key(&reference) {
            state.order.push(reference.clone());
        }
        state.records.insert(
            reference.clone(),
            Record {
                hash,
                resource_version,
                uid,
                kind,
            },
        );
        Ok((reference, action))
    }

    /// `--force`: deletes the object (foreground), waits until it is gone, applies `body`.
    async fn recreate(
        &self,
        api: &Api<DynamicObject>,
        name: &str,
        label: &str,
        body: &Value,
        reporter: &dyn Reporter,
    ) -> Result<DynamicObject, DeployError> {
        let operation = format!("delete {label} to re-create it (--force)");
        let uid = match api.get_metadata_opt(name).await {
            Ok(found) => found.and_then(|m| m.metadata.uid),
            Err(error) => return Err(api_error_for(&operation, Some(label), &error)),
        };
        if let Some(uid) = &uid {
            let params = DeleteParams::foreground().preconditions(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            });
            match api.delete(name, &params).await {
                Ok(_) => deployed(reporter, label, "deleted"),
                Err(error) if is_not_found(&error) => {}
                Err(error) => return Err(api_error_for(&operation, Some(label), &error)),
            }
            let deadline = Instant::now() + RECREATE_TIMEOUT;
            loop {
                match api.get_metadata_opt(name).await {
                    Ok(Some(live)) if live.metadata.uid.as_ref() == Some(uid) => {}
                    Ok(_) => break,
                    Err(error) => return Err(api_error_for(&operation, Some(label), &error)),
                }
                if Instant::now() >= deadline {
                    return Err(DeployError::Api {
                        operation,
                        message: format!(
                            "it is still there after {} s (finalizers or dependents that do not go away); nothing was re-created",
                            RECREATE_TIMEOUT.as_secs()
                        ),
                    });
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
        let params = PatchParams::apply(&self.field_manager).force();
        api.patch(name, &params, &Patch::Apply(body))
            .await
            .map_err(|error| apply_error(label, &error))
    }

    /// Waits until every CRD named is `Established`.
    async fn wait_established(&self, crds: &[String]) -> Result<(), DeployError> {
        let api: Api<CustomResourceDefinition> = Api::all(self.connection.client.clone());
        let deadline = Instant::now() + CRD_TIMEOUT;
        for name in crds {
            loop {
                let crd = api.get_opt(name).await.map_err(|error| {
                    api_error(&format!("get customresourcedefinition/{name}"), &error)
                })?;
                let established = crd
                    .and_then(|crd| crd.status)
                    .and_then(|status| status.conditions)
                    .is_some_and(|conditions| {
                        conditions
                            .iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    });
                if established {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(DeployError::NotReady {
                        resource: format!("customresourcedefinition/{name}"),
                        reason: format!("not Established after {} s", CRD_TIMEOUT.as_secs()),
                    });
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
        Ok(())
    }

    /// Resolves the kind of an object whose CRD was just applied, waiting for it to be served.
    async fn rediscover(&self, state: &mut State, object: &Parsed) -> Result<Kind, DeployError> {
        let deadline = Instant::now() + CRD_TIMEOUT;
        loop {
            state.kinds.forget(&object.api_version);
            if let Some(kind) = state
                .kinds
                .resolve(&self.connection.client, &object.api_version, &object.kind)
                .await?
            {
                return Ok(kind);
            }
            if Instant::now() >= deadline {
                return Err(unknown_kind(object));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

#[async_trait::async_trait]
impl Deployer for KubernetesDeployer {
    /// An API server that went away since [`KubernetesDeployer::new`] (crashed, restarting)
    /// fails the deploy with [`DeployError::ClusterUnreachable`]; the deployer stays usable and
    /// the next deploy, once the server answers, applies what changed.
    async fn deploy(
        &self,
        input: &DeployInput<'_>,
        reporter: &dyn Reporter,
    ) -> Result<DeployOutcome, DeployError> {
        match self.apply_all(input, reporter).await {
            Err(error) => Err(explain_unreachable(&self.connection, error).await),
            ok => ok,
        }
    }

    /// Deletes what this deployer applied in this run, newest first, but only objects that
    /// still carry `skaffold.dev/run-id=<this run id>`. Tries every object; returns the first
    /// error.
    async fn cleanup(&self, reporter: &dyn Reporter) -> Result<(), DeployError> {
        match self.delete_applied(reporter).await {
            Err(error) => Err(explain_unreachable(&self.connection, error).await),
            ok => ok,
        }
    }
}

impl KubernetesDeployer {
    async fn apply_all(
        &self,
        input: &DeployInput<'_>,
        reporter: &dyn Reporter,
    ) -> Result<DeployOutcome, DeployError> {
        let mut state = self.state.lock().await;
        if !state.warned_flags && !self.unhonoured_flags.is_empty() {
            state.warned_flags = true;
            reporter.report(Event::Message {
                source: SOURCE,
                level: Level::Warning,
                text: format!(
                    "deploy.kubectl.flags ignored (skiff applies without kubectl and cannot honour them): {}",
                    self.unhonoured_flags.join(" ")
                ),
            });
        }
        let objects = parse_all(input.manifests)?;
        let defined = crd_defined_kinds(&objects);
        // Resolve every kind before applying anything, so that an unknown kind fails the deploy
        // without half of it applied. Kinds defined by a CRD of the set are resolved later.
        let mut kinds = Vec::with_capacity(objects.len());
        for object in &objects {
            let kind = state
                .kinds
                .resolve(&self.connection.client, &object.api_version, &object.kind)
                .await?;
            if kind.is_none()
                && !defined.contains(&(group_of(&object.api_version), object.kind.as_str()))
            {
                return Err(unknown_kind(object));
            }
            kinds.push(kind);
        }
        let mut outcome = DeployOutcome::default();
        let mut crds = Vec::new();
        let mut crds_ready = false;
        for (object, kind) in objects.iter().zip(kinds) {
            let kind = match kind {
                Some(kind) => kind,
                None => {
                    if !crds_ready {
                        self.wait_established(&crds).await?;
                        crds_ready = true;
                    }
                    self.rediscover(&mut state, object).await?
                }
            };
            let (reference, action) = self
                .apply_one(&mut state, object.clone(), kind, reporter)
                .await?;
            if is_crd(object) {
                crds.push(object.name.clone());
            }
            outcome.resources.push((reference, action));
        }
        Ok(outcome)
    }

    async fn delete_applied(&self, reporter: &dyn Reporter) -> Result<(), DeployError> {
        let mut state = self.state.lock().await;
        let mut first_error = None;
        let order = std::mem::take(&mut state.order);
        let mut kept = Vec::new();
        for reference in order.into_iter().rev() {
            let Some(record) = state.records.get(&reference) else {
                continue;
            };
            let api = dynamic_api(
                &self.connection,
                &record.kind,
                reference.namespace.as_deref(),
            );
            let label = describe(&reference);
            let guard = LabelGuard::RunId(&self.run_id);
            match delete_guarded(&api, &reference.name, &label, guard, reporter).await {
                Ok(_) => {
                    state.records.remove(&reference);
                }
                Err(error) => {
                    kept.push(reference);
                    first_error.get_or_insert(error);
                }
            }
        }
        kept.reverse();
        state.order = kept;
        first_error.map_or(Ok(()), Err)
    }
}

/// For `skiff delete`: deletes each object `manifests` names — but only when the live object
/// carries `app.kubernetes.io/managed-by=skiff`; others are left alone with a warning. Objects
/// are deleted in reverse apply order (Namespaces last); kinds the cluster does not know and
/// objects that do not exist are skipped. Tries every object; returns the first error, else
/// what was deleted.
pub async fn delete_labelled(
    connection: &Connection,
    manifests: &ManifestSet,
    reporter: &dyn Reporter,
) -> Result<Vec<ResourceRef>, DeployError> {
    let objects = parse_all(manifests)?;
    let mut kinds = KindCache::default();
    let mut deleted = Vec::new();
    let mut first_error = None;
    for object in objects.iter().rev() {
        let kind = match kinds
            .resolve(&connection.client, &object.api_version, &object.kind)
            .await
        {
            Ok(Some(kind)) => kind,
            Ok(None) => {
                message(
                    reporter,
                    Level::Debug,
                    format!(
                        "{}: the cluster does not serve {} {}; nothing to delete",
                        object.origin, object.api_version, object.kind
                    ),
                );
                continue;
            }
            Err(error) => {
                first_error.get_or_insert(error);
                continue;
            }
        };
        let namespace = kind.namespaced.then(|| {
            object
                .object
                .metadata
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| connection.default_namespace.clone())
        });
        let reference = ResourceRef {
            api_version: object.api_version.clone(),
            kind: object.kind.clone(),
            namespace,
            name: object.name.clone(),
        };
        let api = dynamic_api(connection, &kind, reference.namespace.as_deref());
        let label = describe(&reference);
        match delete_guarded(
            &api,
            &reference.name,
            &label,
            LabelGuard::ManagedBySkiff,
            reporter,
        )
        .await
        {
            Ok(true) => deleted.push(reference),
            Ok(false) => {}
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(explain_unreachable(connection, error).await),
        None => Ok(deleted),
    }
}

/// Deletes leftovers of runs that could not clean up (a SIGKILLed `dev`): objects of `kinds`
/// (API group, kind — e.g. [`LEFTOVER_KINDS`]) labelled `app.kubernetes.io/managed-by=skiff`
/// and, when `run_id` is given, `skaffold.dev/run-id=<run_id>`, in `namespaces` (all
/// namespaces when empty). Objects controlled by another object (a Deployment's ReplicaSets,
/// a Job's Pods) are left to the garbage collector. Kinds the cluster does not serve are
/// skipped. Tries everything; returns the first error, else what was deleted.
pub async fn delete_by_run_label(
    connection: &Connection,
    namespaces: &[String],
    run_id: Option<&str>,
    kinds: &[(&str, &str)],
    reporter: &dyn Reporter,
) -> Result<Vec<ResourceRef>, DeployError> {
    let mut selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}");
    if let Some(run_id) = run_id {
        selector.push_str(&format!(",{RUN_ID_LABEL}={run_id}"));
    }
    let params = ListParams::default().labels(&selector);
    let mut groups: HashMap<&str, Option<kube::discovery::ApiGroup>> = HashMap::new();
    let mut deleted = Vec::new();
    let mut first_error = None;
    for &(group, kind_name) in kinds {
        if !groups.contains_key(group) {
            let found = match kube::discovery::group(&connection.client, group).await {
                Ok(found) => Some(found),
                Err(error) if is_missing(&error) => None,
                Err(error) => {
                    first_error
                        .get_or_insert(api_error(&format!("discover API group `{group}`"), &error));
                    None
                }
            };
            groups.insert(group, found);
        }
        let Some((resource, caps)) = groups
            .get(group)
            .and_then(Option::as_ref)
            .and_then(|g| g.recommended_kind(kind_name))
        else {
            continue;
        };
        let kind = Kind {
            namespaced: matches!(caps.scope, Scope::Namespaced),
            resource,
        };
        let scopes: Vec<Option<&str>> = if kind.namespaced && !namespaces.is_empty() {
            namespaces.iter().map(|n| Some(n.as_str())).collect()
        } else {
            vec![None]
        };
        for scope in scopes {
            let list_api: Api<DynamicObject> = match scope {
                Some(namespace) => {
                    Api::namespaced_with(connection.client.clone(), namespace, &kind.resource)
                }
                None => Api::all_with(connection.client.clone(), &kind.resource),
            };
            let found = match list_api.list_metadata(&params).await {
                Ok(found) => found,
                Err(error) => {
                    let place = scope
                        .map_or_else(|| "all namespaces".to_owned(), |n| format!("namespace {n}"));
                    first_error.get_or_insert(api_error(
                        &format!("list {} in {place}", kind.resource.plural),
                        &error,
                    ));
                    continue;
                }
            };
            for item in found.items {
                let controlled = item
                    .metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|owners| owners.iter().any(|o| o.controller == Some(true)));
                let Some(name) = item.metadata.name.clone() else {
                    continue;
                };
                if controlled || item.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let namespace = item.metadata.namespace.clone().filter(|_| kind.namespaced);
                let reference = ResourceRef {
                    api_version: kind.resource.api_version.clone(),
                    kind: kind.resource.kind.clone(),
                    namespace,
                    name,
                };
                let api = dynamic_api(connection, &kind, reference.namespace.as_deref());
                let label = describe(&reference);
                let guard = match run_id {
                    Some(run_id) => LabelGuard::RunId(run_id),
                    None => LabelGuard::ManagedBySkiff,
                };
                match delete_guarded(&api, &reference.name, &label, guard, reporter).await {
                    Ok(true) => deleted.push(reference),
                    Ok(false) => {}
                    Err(error) => {
                        first_error.get_or_insert(error);
                    }
                }
            }
        }
    }
    match first_error {
        Some(error) => Err(explain_unreachable(connection, error).await),
        None => Ok(deleted),
    }
}

/// Which labels an object must carry to be deleted.
#[derive(Clone, Copy)]
enum LabelGuard<'a> {
    /// `app.kubernetes.io/managed-by=skiff`.
    ManagedBySkiff,
    /// `skaffold.dev/run-id=<id>`.
    RunId(&'a str),
}

/// Deletes `name` (background propagation) if it exists and carries the labels `guard` asks
/// for; the delete is conditional on the uid and resourceVersion checked. Returns whether it
/// deleted.
async fn delete_guarded(
    api: &Api<DynamicObject>,
    name: &str,
    label: &str,
    guard: LabelGuard<'_>,
    reporter: &dyn Reporter,
) -> Result<bool, DeployError> {
    let operation = format!("delete {label}");
    // A conflict means the object changed between the check and the delete: check again.
    for _ in 0..3 {
        let live = match api.get_metadata_opt(name).await {
            Ok(Some(live)) => live,
            Ok(None) => return Ok(false),
            Err(error) => return Err(api_error_for(&operation, Some(label), &error)),
        };
        let labels = live.metadata.labels.unwrap_or_default();
        let (key, value) = match guard {
            LabelGuard::ManagedBySkiff => (MANAGED_BY_LABEL, MANAGED_BY_VALUE),
            LabelGuard::RunId(run_id) => (RUN_ID_LABEL, run_id),
        };
        if labels.get(key).map(String::as_str) != Some(value) {
            message(
                reporter,
                Level::Warning,
                format!(
                    "not deleting {label}: it lacks the label {key}={value}, so skiff did not create it"
                ),
            );
            return Ok(false);
        }
        if live.metadata.deletion_timestamp.is_some() {
            return Ok(false);
        }
        let params = DeleteParams::background().preconditions(Preconditions {
            uid: live.metadata.uid,
            resource_version: live.metadata.resource_version,
        });
        match api.delete(name, &params).await {
            Ok(_) => {
                deployed(reporter, label, "deleted");
                return Ok(true);
            }
            Err(error) if is_not_found(&error) => return Ok(false),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(error) => return Err(api_error_for(&operation, Some(label), &error)),
        }
    }
    Err(DeployError::Api {
        operation,
        message: "the object kept changing while skiff tried to delete it".to_owned(),
    })
}

/// A rendered object, parsed.
#[derive(Clone)]
struct Parsed {
    origin: String,
    api_version: String,
    kind: String,
    name: String,
    object: DynamicObject,
}

/// Parses every manifest and orders them: Namespaces, CRDs, the rest in input order.
fn parse_all(manifests: &ManifestSet) -> Result<Vec<Parsed>, DeployError> {
    let mut objects = manifests
        .manifests
        .iter()
        .map(parse)
        .collect::<Result<Vec<_>, _>>()?;
    objects.sort_by_key(rank);
    Ok(objects)
}

fn parse(manifest: &Manifest) -> Result<Parsed, DeployError> {
    let bad = |message: String| DeployError::Manifest {
        origin: manifest.origin.clone(),
        message,
    };
    let value: Value = serde_yaml::from_str(&manifest.yaml)
        .map_err(|e| bad(format!("not a Kubernetes object: {e}")))?;
    let Value::Object(fields) = &value else {
        return Err(bad(
            "not a Kubernetes object: the document is not a mapping".to_owned(),
        ));
    };
    let text = |key: &str| {
        fields
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let api_version = text("apiVersion")
        .ok_or_else(|| bad("the object has no apiVersion".to_owned()))?
        .to_owned();
    let kind = text("kind")
        .ok_or_else(|| bad(format!("the {api_version} object has no kind")))?
        .to_owned();
    let object: DynamicObject = serde_json::from_value(value.clone())
        .map_err(|e| bad(format!("{kind}: invalid object: {e}")))?;
    let name = match object.metadata.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => name.to_owned(),
        None if object.metadata.generate_name.is_some() => {
            return Err(bad(format!(
                "{kind} has only metadata.generateName; server-side apply needs metadata.name"
            )));
        }
        None => return Err(bad(format!("{kind} has no metadata.name"))),
    };
    Ok(Parsed {
        origin: manifest.origin.clone(),
        api_version,
        kind,
        name,
        object,
    })
}

fn rank(object: &Parsed) -> u8 {
    if object.api_version == "v1" && object.kind == "Namespace" {
        0
    } else if is_crd(object) {
        1
    } else {
        2
    }
}

fn is_crd(object: &Parsed) -> bool {
    object.kind == "CustomResourceDefinition"
        && group_of(&object.api_version) == "apiextensions.k8s.io"
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// The (group, kind) pairs the set's CRDs define.
fn crd_defined_kinds(objects: &[Parsed]) -> HashSet<(&str, &str)> {
    objects
        .iter()
        .filter(|o| is_crd(o))
        .filter_map(|o| {
            let group = o.object.data.pointer("/spec/group")?.as_str()?;
            let kind = o.object.data.pointer("/spec/names/kind")?.as_str()?;
            Some((group, kind))
        })
        .collect()
}

fn unknown_kind(object: &Parsed) -> DeployError {
    DeployError::Manifest {
        origin: object.origin.clone(),
        message: format!(
            "{}/{}: the cluster serves no kind {} in {} (is its CustomResourceDefinition installed?)",
            object.kind.to_ascii_lowercase(),
            object.name,
            object.kind,
            object.api_version
        ),
    }
}

/// Sets `protocol: TCP` where Kubernetes would default it: Service ports and container ports.
/// Kubernetes 1.20 rejects list entries without the `protocol` key under server-side apply.
fn fill_protocol_defaults(kind: &str, data: &mut Value) {
    if kind == "Service" {
        default_protocols(data.pointer_mut("/spec/ports"));
    }
    let pod_specs: &[&str] = match kind {
        "Pod" => &["/spec"],
        "PodTemplate" => &["/template/spec"],
        _ => &[
            "/spec/template/spec",
            "/spec/jobTemplate/spec/template/spec",
        ],
    };
    for path in pod_specs {
        let Some(spec) = data.pointer_mut(path) else {
            continue;
        };
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for container in containers {
                    default_protocols(container.get_mut("ports"));
                }
            }
        }
    }
}

fn default_protocols(ports: Option<&mut Value>) {
    let Some(ports) = ports.and_then(Value::as_array_mut) else {
        return;
    };
    for port in ports.iter_mut().filter_map(Value::as_object_mut) {
        if port.get("protocol").is_none_or(Value::is_null) {
            port.insert("protocol".to_owned(), Value::String("TCP".to_owned()));
        }
    }
}

/// Interprets `deploy.kubectl.flags`; returns those skiff cannot honour.
fn interpret_flags(flags: &[String], force: &mut bool, field_manager: &mut String) -> Vec<String> {
    let mut unhonoured = Vec::new();
    let mut iter = flags.iter().peekable();
    while let Some(flag) = iter.next() {
        let (key, value) = match flag.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (flag.as_str(), None),
        };
        match (key, value) {
            ("--force", None | Some("true")) => *force = true,
            ("--force", Some("false")) => {}
            ("--server-side" | "--force-conflicts" | "--overwrite", None | Some("true")) => {}
            ("--field-manager", Some(value)) if !value.is_empty() => {
                value.clone_into(field_manager)
            }
            ("--field-manager", None) if iter.peek().is_some() => {
                if let Some(value) = iter.next() {
                    value.clone_into(field_manager);
                }
            }
            _ => {
                let mut text = flag.clone();
                // `--flag value`: report the value with its flag.
                if value.is_none() && flag.starts_with("--") {
                    if let Some(next) = iter.next_if(|next| !next.starts_with('-')) {
                        text.push(' ');
                        text.push_str(next);
                    }
                }
                unhonoured.push(text);
            }
        }
    }
    unhonoured
}

/// A kind as the cluster serves it.
#[derive(Clone)]
struct Kind {
    resource: ApiResource,
    namespaced: bool,
}

/// Discovery results by apiVersion, fetched once per apiVersion.
#[derive(Default)]
struct KindCache {
    by_api_version: HashMap<String, Vec<Kind>>,
}

impl KindCache {
    /// The kind, or `None` when the cluster does not serve it.
    async fn resolve(
        &mut self,
        client: &kube::Client,
        api_version: &str,
        kind: &str,
    ) -> Result<Option<Kind>, DeployError> {
        if !self.by_api_version.contains_key(api_version) {
            let kinds = discover(client, api_version).await?;
            self.by_api_version.insert(api_version.to_owned(), kinds);
        }
        Ok(self
            .by_api_version
            .get(api_version)
            .and_then(|kinds| kinds.iter().find(|k| k.resource.kind == kind))
            .cloned())
    }

    fn forget(&mut self, api_version: &str) {
        self.by_api_version.remove(api_version);
    }
}

async fn discover(client: &kube::Client, api_version: &str) -> Result<Vec<Kind>, DeployError> {
    let Ok(group_version) = api_version.parse::<GroupVersion>() else {
        return Ok(Vec::new());
    };
    match kube::discovery::pinned_group(client, &group_version).await {
        Ok(group) => Ok(group
            .versioned_resources(&group_version.version)
            .into_iter()
            .map(|(resource, caps)| Kind {
                namespaced: matches!(caps.scope, Scope::Namespaced),
                resource,
            })
            .collect()),
        Err(error) if is_missing(&error) => Ok(Vec::new()),
        Err(error) => Err(api_error(&format!("discover {api_version}"), &error)),
    }
}

fn dynamic_api(
    connection: &Connection,
    kind: &Kind,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(namespace) => {
            Api::namespaced_with(connection.client.clone(), namespace, &kind.resource)
        }
        None => Api::all_with(connection.client.clone(), &kind.resource),
    }
}

/// Whether the object existed before an apply, and at which resourceVersion.
enum Before {
    Absent,
    /// Found by a GET, at this resourceVersion.
    Present(Option<String>),
    /// Applied earlier in this session (not looked up again).
    Applied {
        resource_version: Option<String>,
        uid: Option<String>,
    },
    /// Not allowed to look (the apply itself may still be allowed).
    Unknown,
}

async fn look_up(api: &Api<DynamicObject>, name: &str, label: &str) -> Result<Before, DeployError> {
    match api.get_metadata_opt(name).await {
        Ok(Some(live)) => Ok(Before::Present(live.metadata.resource_version)),
        Ok(None) => Ok(Before::Absent),
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(Before::Unknown),
        Err(error) => Err(api_error_for(&format!("get {label}"), Some(label), &error)),
    }
}

fn apply_error(label: &str, error: &kube::Error) -> DeployError {
    match error {
        // `namespaces "x" not found` and the like: the object cannot go where it says.
        kube::Error::Api(status) if status.code == 404 => DeployError::Rejected {
            object: label.to_owned(),
            message: status.message.clone(),
        },
        // Server-side apply cannot merge the object (a keyed list entry without its key, as
        // Kubernetes 1.20 does for ports without `protocol`): the object must say more.
        kube::Error::Api(status)
            if status
                .message
                .contains("failed to create typed patch object") =>
        {
            DeployError::Rejected {
                object: label.to_owned(),
                message: format!(
                    "{} (server-side apply needs the field set explicitly)",
                    status.message
                ),
            }
        }
        _ => api_error_for(&format!("apply {label}"), Some(label), error),
    }
}

/// Whether the server refused an update because it would change an immutable field.
fn is_immutable(error: &kube::Error) -> bool {
    let kube::Error::Api(status) = error else {
        return false;
    };
    status.code == 422
        && [
            "field is immutable",
            "updates to statefulset spec for fields other than",
            "pod updates may not change fields",
        ]
        .iter()
        .any(|needle| status.message.contains(needle))
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// A 404 from the API, or discovery not finding a group or kind.
fn is_missing(error: &kube::Error) -> bool {
    is_not_found(error) || matches!(error, kube::Error::Discovery(_))
}

fn status_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

fn hash_of(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// `namespace/kind/name` for namespaced objects, `kind/name` for others.
fn describe(reference: &ResourceRef) -> String {
    match &reference.namespace {
        Some(namespace) => format!("{namespace}/{reference}"),
        None => reference.to_string(),
    }
}

fn action_word(action: ApplyAction) -> &'static str {
    match action {
        ApplyAction::Created => "created",
        ApplyAction::Configured => "configured",
        ApplyAction::Unchanged => "unchanged",
    }
}

fn deployed(reporter: &dyn Reporter, object: &str, action: &str) {
    reporter.report(Event::Deployed {
        object: object.to_owned(),
        action: action.to_owned(),
    });
}

fn message(reporter: &dyn Reporter, level: Level, text: String) {
    reporter.report(Event::Message {
        source: SOURCE,
        level,
        text,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(yaml: &str) -> Manifest {
        Manifest::new("test.yaml", "", "", yaml)
    }

    #[test]
    fn protocols_are_defaulted() {
        let mut service =
            serde_json::json!({"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}});
        fill_protocol_defaults("Service", &mut service);
        assert_eq!(service["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(service["spec"]["ports"][1]["protocol"], "UDP");
        let mut deployment = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 8080}]}]}}}});
        fill_protocol_defaults("Deployment", &mut deployment);
        assert_eq!(
            deployment.pointer("/spec/template/spec/containers/0/ports/0/protocol"),
            Some(&Value::from("TCP"))
        );
        let mut cronjob = serde_json::json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"ports": [{"containerPort": 1}]}]}}}}}});
        fill_protocol_defaults("CronJob", &mut cronjob);
        assert_eq!(
            cronjob.pointer("/spec/jobTemplate/spec/template/spec/containers/0/ports/0/protocol"),
            Some(&Value::from("TCP"))
        );
        let mut pod =
            serde_json::json!({"spec": {"containers": [{"ports": [{"containerPort": 1}]}]}});
        fill_protocol_defaults("Pod", &mut pod);
        assert_eq!(
            pod.pointer("/spec/containers/0/ports/0/protocol"),
            Some(&Value::from("TCP"))
        );
    }

    #[test]
    fn namespaces_then_crds_then_input_order() {
        let set = ManifestSet {
            manifests: vec![
                manifest("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"),
                manifest("apiVersion: example.com/v1\nkind: Foo\nmetadata: {name: f}\n"),
                manifest(
                    "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: foos.example.com}\nspec: {group: example.com, names: {kind: Foo}}\n",
                ),
                manifest("apiVersion: v1\nkind: Namespace\nmetadata: {name: ns}\n"),
                manifest("apiVersion: v1\nkind: Service\nmetadata: {name: b}\n"),
            ],
        };
        let objects = parse_all(&set).expect("parses");
        let names: Vec<_> = objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["ns", "foos.example.com", "a", "f", "b"]);
        assert!(crd_defined_kinds(&objects).contains(&("example.com", "Foo")));
    }

    #[test]
    fn bad_manifests_name_their_origin() {
        for yaml in [
            "a: [",
            "- 1\n",
            "kind: Pod\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {generateName: x-}\n",
        ] {
            match parse(&manifest(yaml)) {
                Err(DeployError::Manifest { origin, .. }) => assert_eq!(origin, "test.yaml"),
                Err(other) => panic!("{yaml}: {other:?}"),
                Ok(_) => panic!("{yaml}: parsed"),
            }
        }
    }

    #[test]
    fn kubectl_flags_are_interpreted() {
        let flags: Vec<String> = [
            "--force",
            "--field-manager",
            "me",
            "--validate=false",
            "--selector",
            "app=x",
            "--server-side",
        ]
        .map(String::from)
        .to_vec();
        let (mut force, mut manager) = (false, "skiff".to_owned());
        let unhonoured = interpret_flags(&flags, &mut force, &mut manager);
        assert!(force);
        assert_eq!(manager, "me");
        assert_eq!(unhonoured, ["--validate=false", "--selector app=x"]);
    }
}
