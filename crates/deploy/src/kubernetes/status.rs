//! Status check: waits until the workloads of a deploy are rolled out, and fails fast (with the
//! reason) when one of them cannot get there.
//!
//! Deployments, StatefulSets, DaemonSets, Jobs and bare Pods are checked; other kinds are not
//! waited for. Each resource is followed with watches — on the object itself, on its pods and,
//! for a Deployment, on its ReplicaSets (to tell the newest rollout's pods from old ones) — so a
//! pod that cannot pull its image or crash-loops is noticed as soon as the kubelet says so.
//!
//! Failures that stop the check at once (unless [`StatusOptions::tolerate_failures_until_deadline`]):
//! a container waiting with `ImagePullBackOff`, `ErrImagePull`, `ErrImageNeverPull`,
//! `InvalidImageName`, `CreateContainerConfigError`, `CreateContainerError`, `RunContainerError`
//! or `CrashLoopBackOff` (with the container's last log lines), a container that exited non-zero in
//! a pod that is never restarted, an unschedulable pod, a failed pod or Job, and a Deployment
//! whose `progressDeadlineSeconds` passed. The whole check ends at [`StatusOptions::deadline`]
//! (or earlier for a Deployment with a shorter `progressDeadlineSeconds`).
//!
//! A pod that stays not ready without such a reason often says why only in a Warning event
//! (`FailedMount`, `FailedCreatePodSandBox`, `FailedAttachVolume`, a failing readiness probe, …):
//! its newest one goes into the status line and into the deadline's message, e.g.
//! `0/1 replicas available; pod web-abc: FailedMount: MountVolume.SetUp failed for volume "cfg" :
//! configmap "cfg" not found (x3)`. Events are listed per pod, only for pods not ready for a
//! while, at most every few seconds and for a few pods per resource. They never fail the check
//! by themselves: such errors can pass, and the deadline still decides.
//!
//! Progress goes to the [`Reporter`]: [`Event::ResourceStatus`] whenever a resource's status
//! text changes, [`Event::ResourceReady`] once per resource, and a closing
//! `Deployments stabilized in 1.23s` message.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::{BoxStream, FuturesUnordered};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Event as KubeEvent, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, LogParams};
use kube::core::Selector;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use skiff_types::event::{Event, Level, Reporter};
use tokio::time::Instant;

use crate::{DeployError, ResourceRef};

/// Container waiting reasons that mean the pod will not come up without a change.
pub const FATAL_WAITING_REASONS: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "CrashLoopBackOff",
];

/// The annotation the deployment controller puts on a Deployment and its ReplicaSets.
const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// The label of a StatefulSet's pods naming their revision.
const CONTROLLER_REVISION_LABEL: &str = "controller-revision-hash";
/// The label of a DaemonSet's pods naming the DaemonSet generation they were made from.
const POD_TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// Consecutive watch errors (each after a backoff) before the check gives up.
const MAX_CONSECUTIVE_WATCH_ERRORS: u32 = 5;
/// How long fetching a crashed container's logs may take.
const LOG_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The `source` of the messages this module reports.
const SOURCE: &str = "deploy";
/// How long a pod stays not ready before its events are looked up: most pods start within this,
/// and looking up events for each of them would cost a request per pod for nothing.
const EVENT_GRACE: Duration = Duration::from_millis(1500);
/// At most one event lookup per stuck pod this often.
const EVENT_INTERVAL: Duration = Duration::from_secs(2);
/// How many stuck pods of one resource have their events looked up: replicas stuck the same way
/// need no request each to say why.
const MAX_EVENT_PODS: usize = 3;
/// How long one event lookup may take.
const EVENT_FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest event message a status line carries, in characters.
const MAX_EVENT_MESSAGE: usize = 240;

/// How the status check behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusOptions {
    /// `statusCheckDeadlineSeconds`: the whole check ends after this long (default 600 s).
    pub deadline: Duration,
    /// `tolerateFailuresUntilDeadline`: report failures as status and keep waiting until the
    /// deadline instead of failing at once.
    pub tolerate_failures_until_deadline: bool,
    /// How many of a crashed container's last log lines go into the failure reason (0: none).
    pub log_lines_on_crash: usize,
}

impl Default for StatusOptions {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(600),
            tolerate_failures_until_deadline: false,
            log_lines_on_crash: 10,
        }
    }
}

/// What a successful status check saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusSummary {
    /// Every checked resource, in the order they became ready, with the time from the start of
    /// the check.
    pub ready: Vec<(ResourceRef, Duration)>,
    /// How long the whole check took.
    pub total: Duration,
}

/// Waits until deployed resources are ready; what the runner composes after a deploy.
#[async_trait]
pub trait StatusCheck: Send + Sync {
    /// Wait until every checkable resource of `resources` is ready, reporting progress.
    ///
    /// Kinds without a status check are skipped. The first failure ends the check (unless
    /// failures are tolerated until the deadline) with [`DeployError::NotReady`].
    async fn wait_ready(
        &self,
        resources: &[ResourceRef],
        reporter: &dyn Reporter,
    ) -> Result<StatusSummary, DeployError>;
}

/// Whether the status check waits for `resource` (Deployments, StatefulSets, DaemonSets, Jobs
/// and Pods; everything else is not waited for).
pub fn is_checked(resource: &ResourceRef) -> bool {
    CheckedKind::of(resource).is_some()
}

/// The Kubernetes status check, through kube-rs watches.
#[derive(Clone)]
pub struct KubernetesStatusChecker {
    client: Client,
    options: StatusOptions,
}

impl fmt::Debug for KubernetesStatusChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubernetesStatusChecker")
            .field("default_namespace", &self.client.default_namespace())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl KubernetesStatusChecker {
    /// A checker talking to the cluster behind `client`. Resources without a namespace are
    /// looked up in the client's default namespace.
    pub fn new(client: Client, options: StatusOptions) -> Self {
        Self { client, options }
    }

    /// The options in use.
    pub fn options(&self) -> &StatusOptions {
        &self.options
    }

    /// Wait until every checkable resource of `resources` is ready (see [`StatusCheck`]).
    pub async fn wait_ready(
        &self,
        resources: &[ResourceRef],
        reporter: &dyn Reporter,
    ) -> Result<StatusSummary, DeployError> {
        let start = Instant::now();
        let mut seen = BTreeSet::new();
        let checked: Vec<(&ResourceRef, CheckedKind)> = resources
            .iter()
            .filter(|r| seen.insert(*r))
            .filter_map(|r| CheckedKind::of(r).map(|kind| (r, kind)))
            .collect();
        let mut pending: FuturesUnordered<_> = checked
            .iter()
            .map(|&(resource, kind)| async move {
                let result = self.check_one(resource, kind, start, reporter).await;
                (resource, result)
            })
            .collect();
        let mut ready = Vec::with_capacity(checked.len());
        while let Some((resource, result)) = pending.next().await {
            // An error returns at once; dropping `pending` cancels the other checks.
            ready.push((resource.clone(), result?));
        }
        let total = start.elapsed();
        if !ready.is_empty() {
            reporter.report(Event::Message {
                source: SOURCE,
                level: Level::Info,
                text: format!("Deployments stabilized in {:.2}s", total.as_secs_f64()),
            });
        }
        Ok(StatusSummary { ready, total })
    }

    async fn check_one(
        &self,
        resource: &ResourceRef,
        kind: CheckedKind,
        start: Instant,
        reporter: &dyn Reporter,
    ) -> Result<Duration, DeployError> {
        let check = ResourceCheck {
            client: &self.client,
            options: &self.options,
            resource,
            namespace: resource
                .namespace
                .as_deref()
                .unwrap_or_else(|| self.client.default_namespace()),
            start,
            reporter,
        };
        match kind {
            CheckedKind::Deployment => check.run::<Deployment>().await,
            CheckedKind::StatefulSet => check.run::<StatefulSet>().await,
            CheckedKind::DaemonSet => check.run::<DaemonSet>().await,
            CheckedKind::Job => check.run::<Job>().await,
            CheckedKind::Pod => check.run::<Pod>().await,
        }
    }
}

#[async_trait]
impl StatusCheck for KubernetesStatusChecker {
    async fn wait_ready(
        &self,
        resources: &[ResourceRef],
        reporter: &dyn Reporter,
    ) -> Result<StatusSummary, DeployError> {
        KubernetesStatusChecker::wait_ready(self, resources, reporter).await
    }
}

/// The kinds with a status check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckedKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
    Pod,
}

impl CheckedKind {
    fn of(resource: &ResourceRef) -> Option<Self> {
        let group = resource
            .api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group);
        match (group, resource.kind.as_str()) {
            ("apps", "Deployment") => Some(Self::Deployment),
            ("apps", "StatefulSet") => Some(Self::StatefulSet),
            ("apps", "DaemonSet") => Some(Self::DaemonSet),
            ("batch", "Job") => Some(Self::Job),
            ("", "Pod") => Some(Self::Pod),
            _ => None,
        }
    }
}

/// What a workload says about itself, before its pods are looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Rolled out / completed.
    Ready,
    /// Not there yet; the status in words.
    Pending(String),
    /// Failed; tolerated until the deadline when asked to.
    Failed(String),
    /// Its own deadline passed (`ProgressDeadlineExceeded`); never tolerated.
    Expired(String),
}

/// A kind the status check follows.
trait Workload:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// Whether its pods' ReplicaSets must be watched to tell which pods count.
    const WATCHES_REPLICA_SETS: bool = false;

    /// Its own state, from its status.
    fn verdict(&self) -> Verdict;

    /// The selector of its pods, when it has pods of its own.
    fn pod_selector(&self) -> Option<&LabelSelector> {
        None
    }

    /// A deadline of its own (a Deployment's `progressDeadlineSeconds`).
    fn own_deadline(&self) -> Option<Duration> {
        None
    }

    /// Whether `pod` (selected by [`Workload::pod_selector`]) belongs to its current revision.
    fn counts_pod(&self, pod: &Pod, replica_sets: &BTreeMap<String, ReplicaSet>) -> bool;

    /// Itself, when it is a Pod.
    fn as_pod(&self) -> Option<&Pod> {
        None
    }
}

fn owned_by(object: &impl ResourceExt, owner_uid: &str) -> bool {
    object
        .owner_references()
        .iter()
        .any(|owner| owner.uid == owner_uid)
}

fn observed(generation: Option<i64>, observed_generation: Option<i64>) -> bool {
    match (generation, observed_generation) {
        (Some(generation), Some(observed)) => observed >= generation,
        (None, _) => true,
        (Some(_), None) => false,
    }
}

const WAITING_FOR_CONTROLLER: &str = "waiting for the controller to observe the change";

impl Workload for Deployment {
    const WATCHES_REPLICA_SETS: bool = true;

    fn verdict(&self) -> Verdict {
        let Some(status) = &self.status else {
            return Verdict::Pending(WAITING_FOR_CONTROLLER.into());
        };
        if !observed(self.metadata.generation, status.observed_generation) {
            return Verdict::Pending(WAITING_FOR_CONTROLLER.into());
        }
        let conditions = status.conditions.as_deref().unwrap_or_default();
        if let Some(c) = conditions.iter().find(|c| {
            c.type_.as_deref() == Some("Progressing")
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        }) {
            return Verdict::Expired(format!(
                "ProgressDeadlineExceeded: {}",
                c.message
                    .as_deref()
                    .unwrap_or("the rollout made no progress")
            ));
        }
        let wanted = self.spec.replicas.unwrap_or(1);
        let updated = status.updated_replicas.unwrap_or(0);
        let total = status.replicas.unwrap_or(0);
        let available = status.available_replicas.unwrap_or(0);
        let replica_failure = conditions
            .iter()
            .find(|c| {
                c.type_.as_deref() == Some("ReplicaFailure") && c.status.as_deref() == Some("True")
            })
            .map(|c| {
                format!(
                    " ({}: {})",
                    c.reason.as_deref().unwrap_or("ReplicaFailure"),
                    c.message.as_deref().unwrap_or_default()
                )
            })
            .unwrap_or_default();
        if updated < wanted {
            Verdict::Pending(format!(
                "waiting for rollout: {updated}/{wanted} replicas updated{replica_failure}"
            ))
        } else if total > updated {
            Verdict::Pending(format!(
                "waiting for rollout: {} old replicas pending termination",
                total - updated
            ))
        } else if available < updated {
            Verdict::Pending(format!(
                "{available}/{wanted} replicas available{replica_failure}"
            ))
        } else {
            Verdict::Ready
        }
    }

    fn pod_selector(&self) -> Option<&LabelSelector> {
        Some(&self.spec.selector)
    }

    fn own_deadline(&self) -> Option<Duration> {
        let seconds = self.spec.progress_deadline_seconds?;
        u64::try_from(seconds).ok().map(Duration::from_secs)
    }

    fn counts_pod(&self, pod: &Pod, replica_sets: &BTreeMap<String, ReplicaSet>) -> bool {
        // Until the controller has seen the latest spec, the revision annotation names the
        // previous rollout, whose pods may be the very ones this deploy replaces.
        let seen = self.status.as_ref().and_then(|s| s.observed_generation);
        if !observed(self.metadata.generation, seen) {
            return false;
        }
        let (Some(uid), Some(revision)) = (
            self.metadata.uid.as_deref(),
            self.annotations().get(REVISION_ANNOTATION),
        ) else {
            return false;
        };
        replica_sets
            .values()
            .find(|rs| {
                owned_by(*rs, uid) && rs.annotations().get(REVISION_ANNOTATION) == Some(revision)
            })
            .and_then(|rs| rs.metadata.uid.as_deref())
            .is_some_and(|rs_uid| owned_by(pod, rs_uid))
    }
}

impl Workload for StatefulSet {
    fn verdict(&self) -> Verdict {
        let Some(status) = &self.status else {
            return Verdict::Pending(WAITING_FOR_CONTROLLER.into());
        };
        if !observed(self.metadata.generation, status.observed_generation) {
            return Verdict::Pending(WAITING_FOR_CONTROLLER.into());
        }
        let wanted = self.spec.replicas.unwrap_or(1);
        let ready = status.ready_replicas.unwrap_or(0);
        if ready < wanted {
            return Verdict::Pending(format!("{ready}/{wanted} replicas ready"));
        }
        let strategy = self.spec.update_strategy.as_ref();
        if strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete") {
            return Verdict::Ready;
        }
        let updated = status.updated_replicas.unwrap_or(0);
        let partition = strategy
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0);
        if partition > 0 {
            let to_update = (wanted - partition).max(0);
            return if updated < to_update {
                Verdict::Pending(format!(
                    "waiting for partitioned rollout: {updated}/{to_update} replicas updated"
                ))
            } else {
                Verdict::Ready
            };
        }
        if status.update_revision.is_some() && status.update_revision != status.current_revision {
            return Verdict::Pending(format!(
                "waiting for rollout: {updated}/{wanted} replicas updated"
            ));
        }
        Verdict::Ready
    }

    fn pod_selector(&self) -> Option<&LabelSelector> {
        Some(&self.spec.selector)
    }

    fn counts_pod(&self, pod: &Pod, _: &BTreeMap<String, ReplicaSet>) -> bool {
        let seen = self.status.as_ref().and_then(|s| s.observed_generation);
        let Some(uid) = self.metadata.uid.as_deref() else {
            return false;
        };
        if !observed(self.metadata.generation, seen) {
            return false;
        }
        let revision = self
            .status
            .as_ref()
            .and_then(|s| s.update_revision.as_ref());
        owned_by(pod, uid)
            && revision.is_none_or(|r| pod.labels().get(CONTROLLER_REVISION_LABEL) == Some(r))
    }
}

impl Workload for DaemonSet {
    fn verdict(&self) -> Verdict {
        let Some(status) = &self.status else {
            return Verdict::Pending(WAITING_FOR_CONTROLLER.into());
        };
        if !observed(self.metadata.generation, status.observed_generation) {
            return Verdict::Pending(WAITING_FOR_CONTROLLER.into());
        }
        let desired = status.desired_number_scheduled;
        let updated = status.updated_number_scheduled.unwrap_or(0);
        let ready = status.number_ready;
        if updated < desired {
            Verdict::Pending(format!(
                "waiting for rollout: {updated}/{desired} pods updated"
            ))
        } else if ready < desired {
            Verdict::Pending(format!("{ready}/{desired} pods ready"))
        } else {
            Verdict::Ready
        }
    }

    fn pod_selector(&self) -> Option<&LabelSelector> {
        Some(&self.spec.selector)
    }

    fn counts_pod(&self, pod: &Pod, _: &BTreeMap<String, ReplicaSet>) -> bool {
        // Pods of an older template (being replaced by the rollout) do not count.
        let current = match (
            pod.labels().get(POD_TEMPLATE_GENERATION_LABEL),
            self.metadata.generation,
        ) {
            (Some(label), Some(generation)) => label == &generation.to_string(),
            _ => true,
        };
        current
            && self
                .metadata
                .uid
                .as_deref()
                .is_some_and(|uid| owned_by(pod, uid))
    }
}

impl Workload for Job {
    fn verdict(&self) -> Verdict {
        let status = self.status.as_ref();
        let conditions = status
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default();
        let holds = |kind: &str| {
            conditions
                .iter()
                .find(|c| c.type_ == kind && c.status == "True")
        };
        if holds("Complete").is_some() {
            return Verdict::Ready;
        }
        if let Some(c) = holds("Failed") {
            return Verdict::Failed(format!(
                "{}: {}",
                c.reason.as_deref().unwrap_or("Failed"),
                c.message.as_deref().unwrap_or("the job failed")
            ));
        }
        let succeeded = status.and_then(|s| s.succeeded).unwrap_or(0);
        let active = status.and_then(|s| s.active).unwrap_or(0);
        let failed = status.and_then(|s| s.failed).unwrap_or(0);
        let failed = if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        };
        match self.spec.as_ref().and_then(|s| s.completions) {
            Some(completions) if succeeded >= completions => Verdict::Ready,
            Some(completions) => Verdict::Pending(format!(
                "{succeeded}/{completions} completions, {active} active{failed}"
            )),
            None => Verdict::Pending(format!("{succeeded} succeeded, {active} active{failed}")),
        }
    }

    fn pod_selector(&self) -> Option<&LabelSelector> {
        self.spec.as_ref().and_then(|s| s.selector.as_ref())
    }

    fn counts_pod(&self, pod: &Pod, _: &BTreeMap<String, ReplicaSet>) -> bool {
        self.metadata
            .uid
            .as_deref()
            .is_some_and(|uid| owned_by(pod, uid))
    }
}

impl Workload for Pod {
    fn verdict(&self) -> Verdict {
        let Some(status) = &self.status else {
            return Verdict::Pending("Pending".into());
        };
        let phase = status.phase.as_deref().unwrap_or("Pending");
        if phase == "Succeeded" {
            return Verdict::Ready;
        }
        let conditions = status.conditions.as_deref().unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
        {
            return Verdict::Ready;
        }
        if phase == "Failed" {
            return Verdict::Failed(format!(
                "{}: {}",
                status.reason.as_deref().unwrap_or("Failed"),
                status.message.as_deref().unwrap_or("the pod failed")
            ));
        }
        let waiting = all_container_statuses(self)
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.as_deref())
            .next();
        Verdict::Pending(match waiting {
            Some(reason) => format!("{phase}: {reason}"),
            None if phase == "Running" => "Running, not ready".into(),
            None => phase.into(),
        })
    }

    fn counts_pod(&self, _: &Pod, _: &BTreeMap<String, ReplicaSet>) -> bool {
        false
    }

    fn as_pod(&self) -> Option<&Pod> {
        Some(self)
    }
}

fn all_container_statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    let status = pod.status.as_ref();
    let init = status.and_then(|s| s.init_container_statuses.as_deref());
    let main = status.and_then(|s| s.container_statuses.as_deref());
    init.unwrap_or_default()
        .iter()
        .chain(main.unwrap_or_default())
}

/// Which log of a container shows why it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CrashLog {
    /// The previous (crashed) instance, falling back to the current one.
    Previous,
    /// The current (terminated) instance.
    Current,
}

/// Why a pod will not become ready without a change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodProblem {
    pod: String,
    container: Option<String>,
    reason: String,
    message: String,
    restarts: i32,
    log: Option<CrashLog>,
}

impl PodProblem {
    /// One line: `CrashLoopBackOff: container app in pod web-abc: back-off … (exit code 1)`.
    fn summary(&self) -> String {
        let place = match &self.container {
            Some(container) => format!("container {container} in pod {}", self.pod),
            None => format!("pod {}", self.pod),
        };
        if self.message.is_empty() {
            format!("{}: {place}", self.reason)
        } else {
            format!("{}: {place}: {}", self.reason, self.message)
        }
    }
}

/// The first reason `pod` cannot become ready, if any.
fn pod_problem(pod: &Pod) -> Option<PodProblem> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let name = pod.name_any();
    let status = pod.status.as_ref()?;
    let problem = |container: Option<&str>, reason: &str, message: String, restarts, log| {
        Some(PodProblem {
            pod: name.clone(),
            container: container.map(str::to_owned),
            reason: reason.to_owned(),
            message,
            restarts,
            log,
        })
    };
    if let Some(c) = status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        })
    {
        return problem(
            None,
            "Unschedulable",
            c.message.clone().unwrap_or_default(),
            0,
            None,
        );
    }
    let never_restarted =
        pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) == Some("Never");
    for container in all_container_statuses(pod) {
        let state = container.state.as_ref();
        if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
            let reason = waiting.reason.as_deref().unwrap_or_default();
            if FATAL_WAITING_REASONS.contains(&reason) {
                let mut message = waiting.message.clone().unwrap_or_default();
                let last_exit = container
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref());
                if let Some(last) = last_exit {
                    let exit = format!(
                        "last exit code {} ({})",
                        last.exit_code,
                        last.reason.as_deref().unwrap_or("Error")
                    );
                    message = if message.is_empty() {
                        exit
                    } else {
                        format!("{message}; {exit}")
                    };
                }
                let log = (reason == "CrashLoopBackOff").then_some(CrashLog::Previous);
                return problem(
                    Some(&container.name),
                    reason,
                    message,
                    container.restart_count,
                    log,
                );
            }
        }
        if let Some(terminated) = state.and_then(|s| s.terminated.as_ref())
            && terminated.exit_code != 0
            && never_restarted
        {
            let mut message = format!("exited with code {}", terminated.exit_code);
            if let Some(detail) = terminated.message.as_deref().filter(|m| !m.is_empty()) {
                message = format!("{message}: {detail}");
            }
            return problem(
                Some(&container.name),
                terminated.reason.as_deref().unwrap_or("Error"),
                message,
                container.restart_count,
                Some(CrashLog::Current),
            );
        }
    }
    if status.phase.as_deref() == Some("Failed") {
        return problem(
            None,
            status.reason.as_deref().unwrap_or("Failed"),
            status.message.clone().unwrap_or_default(),
            0,
            None,
        );
    }
    None
}

/// The newest Warning event of one pod, as a status line shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodWarning {
    pod: String,
    reason: String,
    /// The first line of the event's message, shortened.
    message: String,
    /// How often the event happened.
    count: i32,
    /// When it last happened.
    at: Option<Timestamp>,
}

impl PodWarning {
    /// One line: `pod web-abc: FailedMount: MountVolume.SetUp failed … (x3)`.
    fn summary(&self) -> String {
        let mut text = format!("pod {}: {}", self.pod, self.reason);
        if !self.message.is_empty() {
            text.push_str(": ");
            text.push_str(&self.message);
        }
        if self.count > 1 {
            text.push_str(&format!(" (x{})", self.count));
        }
        text
    }
}

/// Which pod the events are looked up for: events outlive their pod, and a pod recreated under
/// the same name (a bare Pod, a StatefulSet replica) must not show its predecessor's.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodIdentity {
    name: String,
    uid: Option<String>,
    created: Option<Timestamp>,
}

impl PodIdentity {
    fn of(pod: &Pod) -> Self {
        Self {
            name: pod.name_any(),
            uid: pod.metadata.uid.clone(),
            created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
        }
    }

    /// Whether `event` is about this very pod.
    fn concerns(&self, event: &KubeEvent) -> bool {
        let about = &event.involved_object;
        if about.kind.as_deref().is_some_and(|k| k != "Pod")
            || about.name.as_deref().is_some_and(|n| n != self.name)
        {
            return false;
        }
        // The uid tells pods apart even when the node's clock is behind the API server's.
        if let (Some(uid), Some(event_uid)) = (&self.uid, &about.uid) {
            return uid == event_uid;
        }
        match (self.created, event_time(event)) {
            (Some(created), Some(at)) => at >= created,
            _ => true,
        }
    }
}

/// When `event` last happened: the newest of the timestamps old- and new-style events carry.
fn event_time(event: &KubeEvent) -> Option<Timestamp> {
    [
        event.last_timestamp.as_ref().map(|t| t.0),
        event.event_time.as_ref().map(|t| t.0),
        event
            .series
            .as_ref()
            .and_then(|s| s.last_observed_time.as_ref())
            .map(|t| t.0),
        event.first_timestamp.as_ref().map(|t| t.0),
        event.metadata.creation_timestamp.as_ref().map(|t| t.0),
    ]
    .into_iter()
    .flatten()
    .max()
}

/// How often `event` happened (`count` of old-style events, `series.count` of new-style ones).
fn event_count(event: &KubeEvent) -> i32 {
    let series = event.series.as_ref().and_then(|s| s.count);
    event.count.max(series).unwrap_or(1).max(1)
}

/// The newest Warning event about `pod` among `events`, if any.
fn newest_warning(pod: &PodIdentity, events: &[KubeEvent]) -> Option<PodWarning> {
    events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning") && pod.concerns(e))
        // Times have one-second precision: of two events in the same second, the more frequent.
        .max_by_key(|e| (event_time(e), event_count(e)))
        .map(|e| PodWarning {
            pod: pod.name.clone(),
            reason: e.reason.clone().unwrap_or_else(|| "Warning".into()),
            message: one_line(e.message.as_deref().unwrap_or_default(), MAX_EVENT_MESSAGE),
            count: event_count(e),
            at: event_time(e),
        })
}

/// The first non-empty line of `text`, at most `max` characters: a longer one keeps its start
/// and its end, since an error chain (`rpc error: … network: could not find bridge docker0`)
/// names the root cause last.
fn one_line(text: &str, max: usize) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    let chars = line.chars().count();
    if chars <= max {
        return line.to_owned();
    }
    let head = max * 2 / 5;
    let tail = max.saturating_sub(head + 1);
    let start: String = line.chars().take(head).collect();
    let end: String = line.chars().skip(chars - tail).collect();
    format!("{}…{}", start.trim_end(), end.trim_start())
}

/// The pods of a resource that are not ready, and what their events said when last looked up.
///
/// Events are only listed for a pod that has stayed not ready for [`EVENT_GRACE`], at most once
/// per [`EVENT_INTERVAL`], and for at most [`MAX_EVENT_PODS`] pods, so a healthy rollout costs
/// no extra request and a stuck one a few cheap ones.
#[derive(Debug, Default)]
struct PodWarnings {
    pods: BTreeMap<String, StuckPod>,
    /// Listing events is forbidden (or not served); the status goes on without them.
    disabled: bool,
}

#[derive(Debug)]
struct StuckPod {
    identity: PodIdentity,
    since: Instant,
    fetched: Option<Instant>,
    warning: Option<PodWarning>,
}

impl PodWarnings {
    /// Follows exactly `stuck` (the pods that are not ready now, up to [`MAX_EVENT_PODS`] of
    /// them by name): a pod no longer stuck is forgotten, a recreated one starts afresh.
    fn track<'p>(&mut self, stuck: impl IntoIterator<Item = &'p Pod>, now: Instant) {
        let mut identities: Vec<PodIdentity> = stuck.into_iter().map(PodIdentity::of).collect();
        identities.sort_by(|a, b| a.name.cmp(&b.name));
        identities.truncate(MAX_EVENT_PODS);
        let mut pods = BTreeMap::new();
        for identity in identities {
            let kept = self
                .pods
                .remove(&identity.name)
                .filter(|p| p.identity.uid == identity.uid);
            let entry = kept.unwrap_or_else(|| StuckPod {
                identity: identity.clone(),
                since: now,
                fetched: None,
                warning: None,
            });
            pods.insert(identity.name, entry);
        }
        self.pods = pods;
    }

    /// Forgets every pod (the resource is ready, gone or has a problem of its own).
    fn clear(&mut self) {
        self.pods.clear();
    }

    /// When the events of a pod are next due.
    fn due_at(pod: &StuckPod) -> Instant {
        let after_grace = pod.since + EVENT_GRACE;
        pod.fetched
            .map_or(after_grace, |f| after_grace.max(f + EVENT_INTERVAL))
    }

    /// The pods whose events are due at `now`.
    fn due(&self, now: Instant) -> Vec<PodIdentity> {
        if self.disabled {
            return Vec::new();
        }
        self.pods
            .values()
            .filter(|p| Self::due_at(p) <= now)
            .map(|p| p.identity.clone())
            .collect()
    }

    /// When the next lookup is due, if any.
    fn next_due(&self) -> Option<Instant> {
        if self.disabled {
            return None;
        }
        self.pods.values().map(Self::due_at).min()
    }

    /// Takes the outcome of one lookup: the events listed, or `None` when the list failed
    /// (the warning seen before stays).
    fn record(&mut self, pod: &PodIdentity, now: Instant, events: Option<&[KubeEvent]>) {
        let Some(entry) = self.pods.get_mut(&pod.name) else {
            return;
        };
        entry.fetched = Some(now);
        if let Some(events) = events {
            entry.warning = newest_warning(&entry.identity, events);
        }
    }

    /// The newest warning of all pods followed.
    fn newest(&self) -> Option<&PodWarning> {
        self.pods
            .values()
            .filter_map(|p| p.warning.as_ref())
            .max_by_key(|w| w.at)
    }
}

/// The pods of `object` (its current revision's) that are not ready and not going away.
fn stuck_pods<'a, K: Workload>(
    object: &'a K,
    pods: Option<&'a SelectedWatch<Pod>>,
    replica_sets: Option<&'a SelectedWatch<ReplicaSet>>,
) -> Vec<&'a Pod> {
    let not_ready =
        |pod: &&Pod| pod.metadata.deletion_timestamp.is_none() && pod.verdict() != Verdict::Ready;
    if let Some(pod) = object.as_pod() {
        return [pod].into_iter().filter(not_ready).collect();
    }
    let no_replica_sets = BTreeMap::new();
    let replica_sets = replica_sets.map_or(&no_replica_sets, |w| &w.cache.items);
    pods.map(|watch| {
        watch
            .cache
            .items
            .values()
            .filter(|pod| object.counts_pod(pod, replica_sets))
            .filter(not_ready)
            .collect()
    })
    .unwrap_or_default()
}

/// The objects one watch has listed, following the watcher's init/apply/delete protocol.
#[derive(Debug)]
struct Cache<K> {
    items: BTreeMap<String, K>,
    relisting: Option<BTreeMap<String, K>>,
    synced: bool,
}

impl<K> Default for Cache<K> {
    fn default() -> Self {
        Self {
            items: BTreeMap::new(),
            relisting: None,
            synced: false,
        }
    }
}

impl<K: ResourceExt> Cache<K> {
    fn apply(&mut self, event: watcher::Event<K>) {
        match event {
            watcher::Event::Init => self.relisting = Some(BTreeMap::new()),
            watcher::Event::InitApply(object) => {
                self.relisting
                    .get_or_insert_with(BTreeMap::new)
                    .insert(object.name_any(), object);
            }
            watcher::Event::InitDone => {
                self.items = self.relisting.take().unwrap_or_default();
                self.synced = true;
            }
            watcher::Event::Apply(object) => {
                self.items.insert(object.name_any(), object);
            }
            watcher::Event::Delete(object) => {
                self.items.remove(&object.name_any());
            }
        }
    }
}

type WatchStream<K> = BoxStream<'static, watcher::Result<watcher::Event<K>>>;

/// A watch whose label selector may change (a recreated workload).
struct SelectedWatch<K> {
    selector: String,
    stream: WatchStream<K>,
    cache: Cache<K>,
}

impl<
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + fmt::Debug
        + Send
        + 'static,
> SelectedWatch<K>
{
    fn ensure(slot: &mut Option<Self>, client: &Client, namespace: &str, selector: String) {
        if slot.as_ref().is_some_and(|w| w.selector == selector) {
            return;
        }
        let api: Api<K> = Api::namespaced(client.clone(), namespace);
        let config = watcher::Config::default().labels(&selector);
        *slot = Some(Self {
            stream: watcher(api, config).default_backoff().boxed(),
            selector,
            cache: Cache::default(),
        });
    }
}

/// Waits for the next item of an optional watch; never finishes when there is none.
async fn next_of<K>(
    watch: &mut Option<SelectedWatch<K>>,
) -> Option<watcher::Result<watcher::Event<K>>> {
    match watch {
        Some(watch) => watch.stream.next().await,
        None => std::future::pending().await,
    }
}

/// What woke the check of one resource up.
enum Update<K> {
    Object(Option<watcher::Result<watcher::Event<K>>>),
    Pods(Option<watcher::Result<watcher::Event<Pod>>>),
    ReplicaSets(Option<watcher::Result<watcher::Event<ReplicaSet>>>),
    /// The events of a stuck pod are due.
    PodEvents,
    Deadline,
}

/// Sleeps until `at`; never wakes up without one.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Feeds one watch event to a cache; an error comes back with the resource it concerns.
fn feed<K: ResourceExt>(
    cache: &mut Cache<K>,
    event: watcher::Result<watcher::Event<K>>,
    what: String,
) -> Result<(), (watcher::Error, String)> {
    cache.apply(event.map_err(|e| (e, what))?);
    Ok(())
}

/// Feeds one event of an optional watch; a watch that ended is dropped (and restarted by the
/// next evaluation).
fn feed_selected<K: ResourceExt + Resource<DynamicType = ()>>(
    slot: &mut Option<SelectedWatch<K>>,
    event: Option<watcher::Result<watcher::Event<K>>>,
) -> Result<(), (watcher::Error, String)> {
    match (slot.as_mut(), event) {
        (Some(watch), Some(event)) => feed(&mut watch.cache, event, resource_name::<K>()),
        (_, None) => {
            *slot = None;
            Ok(())
        }
        (None, Some(_)) => Ok(()),
    }
}

/// `deployments.apps`, `pods`: how RBAC and kubectl name a resource type.
fn resource_name<K: Resource<DynamicType = ()>>() -> String {
    let group = K::group(&());
    if group.is_empty() {
        K::plural(&()).into_owned()
    } else {
        format!("{}.{group}", K::plural(&()))
    }
}

/// A label selector as a query string (`app=web,tier in (a,b)`); all objects when it cannot be
/// expressed.
fn selector_string(selector: &LabelSelector) -> String {
    Selector::try_from(selector.clone())
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// `5s`, `2.5s`.
fn format_seconds(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

/// The check of one resource.
struct ResourceCheck<'a> {
    client: &'a Client,
    options: &'a StatusOptions,
    resource: &'a ResourceRef,
    namespace: &'a str,
    start: Instant,
    reporter: &'a dyn Reporter,
}

/// What the check of one resource has seen so far.
#[derive(Debug, Default)]
struct Progress {
    /// The last status line reported.
    reported: Option<String>,
    /// The last full status (a failure with its log lines), for the deadline message.
    last: String,
    /// The failure whose full text is in `last`, so logs are fetched once per failure.
    problem: Option<PodProblem>,
}

impl PodProblem {
    /// Whether `other` is the same failure (same container, reason and restart).
    fn same_as(&self, other: &Self) -> bool {
        self.pod == other.pod
            && self.container == other.container
            && self.reason == other.reason
            && self.restarts == other.restarts
    }
}

impl ResourceCheck<'_> {
    async fn run<K: Workload>(&self) -> Result<Duration, DeployError> {
        let api: Api<K> = Api::namespaced(self.client.clone(), self.namespace);
        let fields = format!("metadata.name={}", self.resource.name);
        let mut objects: WatchStream<K> = watcher(api, watcher::Config::default().fields(&fields))
            .default_backoff()
            .boxed();
        let mut object_cache: Cache<K> = Cache::default();
        let mut pods: Option<SelectedWatch<Pod>> = None;
        let mut replica_sets: Option<SelectedWatch<ReplicaSet>> = None;
        let mut deadline = self.options.deadline;
        let mut errors = 0;
        let mut progress = Progress {
            last: "waiting for the object to exist".into(),
            ..Progress::default()
        };
        let mut warnings = PodWarnings::default();
        loop {
            let update = tokio::select! {
                biased;
                () = tokio::time::sleep_until(self.start + deadline) => Update::Deadline,
                event = objects.next() => Update::Object(event),
                event = next_of(&mut pods) => Update::Pods(event),
                event = next_of(&mut replica_sets) => Update::ReplicaSets(event),
                () = sleep_until_some(warnings.next_due()) => Update::PodEvents,
            };
            let from_watch = !matches!(update, Update::PodEvents);
            let fed = match update {
                Update::Deadline => {
                    return Err(self.not_ready(format!(
                        "not ready after {}: {}",
                        format_seconds(deadline),
                        progress.last
                    )));
                }
                Update::Object(None) => {
                    return Err(DeployError::Api {
                        operation: format!(
                            "watch {} in namespace {}",
                            resource_name::<K>(),
                            self.namespace
                        ),
                        message: "the watch ended".into(),
                    });
                }
                Update::Object(Some(event)) => feed(&mut object_cache, event, resource_name::<K>()),
                Update::Pods(event) => feed_selected(&mut pods, event),
                Update::ReplicaSets(event) => feed_selected(&mut replica_sets, event),
                Update::PodEvents => Ok(()),
            };
            if let Err((error, what)) = fed {
                errors += 1;
                match self.fatal_watch_error(&error, &what, errors) {
                    Some(fatal) => return Err(fatal),
                    None => continue,
                }
            }
            // A lookup between two failing watch attempts must not hide that they keep failing.
            if from_watch {
                errors = 0;
            }
            if !object_cache.synced {
                continue;
            }
            let Some(object) = object_cache.items.get(&self.resource.name) else {
                let waiting = "waiting for the object to exist".to_owned();
                progress.problem = None;
                warnings.clear();
                self.set_status(&mut progress, waiting.clone(), waiting);
                continue;
            };
            if let Some(own) = object.own_deadline() {
                deadline = self.options.deadline.min(own);
            }
            if let Some(selector) = object.pod_selector() {
                let selector = selector_string(selector);
                if K::WATCHES_REPLICA_SETS {
                    SelectedWatch::ensure(
                        &mut replica_sets,
                        self.client,
                        self.namespace,
                        selector.clone(),
                    );
                }
                SelectedWatch::ensure(&mut pods, self.client, self.namespace, selector);
            }
            let verdict = object.verdict();
            if verdict == Verdict::Ready {
                let duration = self.start.elapsed();
                self.reporter.report(Event::ResourceReady {
                    resource: self.resource.to_string(),
                    duration,
                });
                return Ok(duration);
            }
            let problem = match object.as_pod() {
                Some(pod) => pod_problem(pod),
                None => {
                    let no_replica_sets = BTreeMap::new();
                    let replica_sets = replica_sets
                        .as_ref()
                        .map_or(&no_replica_sets, |w| &w.cache.items);
                    pods.as_ref().and_then(|watch| {
                        watch
                            .cache
                            .items
                            .values()
                            .filter(|pod| object.counts_pod(pod, replica_sets))
                            .find_map(pod_problem)
                    })
                }
            };
            let tolerate = self.options.tolerate_failures_until_deadline;
            if problem.is_some() {
                warnings.clear();
            }
            match (problem, verdict) {
                (_, Verdict::Expired(reason)) => {
                    let reason = if progress.problem.is_some() || warnings.newest().is_some() {
                        format!("{reason}; last status: {}", progress.last)
                    } else {
                        reason
                    };
                    return Err(self.not_ready(reason));
                }
                (Some(problem), _) if !tolerate => {
                    return Err(self.not_ready(self.describe(&problem).await));
                }
                (Some(problem), _) => {
                    let known = progress
                        .problem
                        .as_ref()
                        .is_some_and(|p| p.same_as(&problem));
                    let full = if known {
                        progress.last.clone()
                    } else {
                        self.describe(&problem).await
                    };
                    let summary = problem.summary();
                    progress.problem = Some(problem);
                    self.set_status(&mut progress, summary, full);
                }
                (None, Verdict::Failed(reason)) if !tolerate => {
                    return Err(self.not_ready(reason));
                }
                (None, Verdict::Failed(status) | Verdict::Pending(status)) => {
                    progress.problem = None;
                    warnings.track(
                        stuck_pods(object, pods.as_ref(), replica_sets.as_ref()),
                        Instant::now(),
                    );
                    self.look_up_events(&mut warnings, self.start + deadline)
                        .await;
                    // Not a failure: a sandbox or mount error may pass; the deadline decides.
                    let status = match warnings.newest() {
                        Some(warning) => format!("{status}; {}", warning.summary()),
                        None => status,
                    };
                    self.set_status(&mut progress, status.clone(), status);
                }
                (None, Verdict::Ready) => {}
            }
        }
    }

    /// Reports `line` when it differs from the last one, and keeps `full` for the deadline.
    fn set_status(&self, progress: &mut Progress, line: String, full: String) {
        if progress.reported.as_deref() != Some(line.as_str()) {
            self.reporter.report(Event::ResourceStatus {
                resource: self.resource.to_string(),
                status: line.clone(),
            });
            progress.reported = Some(line);
        }
        progress.last = full;
    }

    fn not_ready(&self, reason: String) -> DeployError {
        DeployError::NotReady {
            resource: self.resource.to_string(),
            reason,
        }
    }

    /// Lists the Warning events of the stuck pods that are due (see [`PodWarnings`]), giving up
    /// at `deadline` at the latest.
    async fn look_up_events(&self, warnings: &mut PodWarnings, deadline: Instant) {
        let due = warnings.due(Instant::now());
        if due.is_empty() {
            return;
        }
        let api: Api<KubeEvent> = Api::namespaced(self.client.clone(), self.namespace);
        let lookups = due.iter().map(|pod| {
            let fields = format!(
                "involvedObject.kind=Pod,involvedObject.name={},type=Warning",
                pod.name
            );
            let api = &api;
            async move {
                let params = ListParams::default().fields(&fields);
                let until = deadline.min(Instant::now() + EVENT_FETCH_TIMEOUT);
                tokio::time::timeout_at(until, api.list(&params)).await
            }
        });
        let results = futures_util::future::join_all(lookups).await;
        let now = Instant::now();
        for (pod, result) in due.iter().zip(results) {
            match result {
                Ok(Ok(list)) => warnings.record(pod, now, Some(&list.items)),
                Ok(Err(error)) => {
                    // Without the right to list events the status says what it can.
                    if matches!(client_status(&error), Some((403 | 404, _))) {
                        warnings.disabled = true;
                    }
                    warnings.record(pod, now, None);
                }
                Err(_) => warnings.record(pod, now, None),
            }
        }
    }

    /// A failure in words, with the crashed container's last log lines.
    async fn describe(&self, problem: &PodProblem) -> String {
        let mut text = problem.summary();
        if let (Some(log), Some(container)) = (problem.log, problem.container.as_deref())
            && self.options.log_lines_on_crash > 0
            && let Some(lines) = self.crash_log(&problem.pod, container, log).await
        {
            text.push_str(&format!("\nlast log lines of container {container}:"));
            for line in lines.lines() {
                text.push_str("\n  ");
                text.push_str(line);
            }
        }
        text
    }

    /// The last [`StatusOptions::log_lines_on_crash`] lines of a container's log: the previous
    /// instance's for a crash loop (falling back to the current one), the current one's else.
    async fn crash_log(&self, pod: &str, container: &str, log: CrashLog) -> Option<String> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), self.namespace);
        let tail_lines = i64::try_from(self.options.log_lines_on_crash).unwrap_or(i64::MAX);
        let attempts: &[bool] = match log {
            CrashLog::Previous => &[true, false],
            CrashLog::Current => &[false],
        };
        for &previous in attempts {
            let params = LogParams {
                container: Some(container.to_owned()),
                previous,
                tail_lines: Some(tail_lines),
                ..LogParams::default()
            };
            if let Ok(Ok(text)) =
                tokio::time::timeout(LOG_FETCH_TIMEOUT, api.logs(pod, &params)).await
                && !text.trim().is_empty()
            {
                return Some(text.trim_end().to_owned());
            }
        }
        None
    }

    /// The error that ends the check, when a watch error is not worth retrying (RBAC, missing
    /// resource type) or has repeated too often.
    fn fatal_watch_error(
        &self,
        error: &watcher::Error,
        what: &str,
        attempts: u32,
    ) -> Option<DeployError> {
        let (verb, status) = match error {
            watcher::Error::InitialListFailed(e) => ("list", client_status(e)),
            watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
                ("watch", client_status(e))
            }
            watcher::Error::WatchError(status) => {
                ("watch", Some((status.code, status.message.clone())))
            }
            _ => ("watch", None),
        };
        let message = status
            .as_ref()
            .map_or_else(|| error.to_string(), |(_, message)| message.clone());
        let api_error = |message: String| DeployError::Api {
            operation: format!("{verb} {what} in namespace {}", self.namespace),
            message,
        };
        match status.map(|(code, _)| code) {
            Some(403) => Some(DeployError::Forbidden {
                verb: verb.into(),
                resource: what.into(),
                namespace: self.namespace.into(),
                message,
            }),
            Some(401 | 404) => Some(api_error(message)),
            _ if attempts >= MAX_CONSECUTIVE_WATCH_ERRORS => Some(api_error(format!(
                "{message} (failed {attempts} times in a row)"
            ))),
            _ => None,
        }
    }
}

/// The HTTP status code and message of an API error.
fn client_status(error: &kube::Error) -> Option<(u16, String)> {
    match error {
        kube::Error::Api(status) => Some((status.code, status.message.clone())),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A failing unwrap is a failing test.
mod tests {
    use serde_json::json;

    use super::*;

    fn from<K: DeserializeOwned>(value: serde_json::Value) -> K {
        serde_json::from_value(value).unwrap()
    }

    fn reference(api_version: &str, kind: &str) -> ResourceRef {
        ResourceRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: None,
            name: "x".into(),
        }
    }

    fn deployment(status: serde_json::Value) -> Deployment {
        from(json!({
            "metadata": {
                "name": "web", "uid": "d-uid", "generation": 2,
                "annotations": {"deployment.kubernetes.io/revision": "2"}
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}},
                "progressDeadlineSeconds": 30
            },
            "status": status
        }))
    }

    fn pod(name: &str, spec: serde_json::Value, status: serde_json::Value) -> Pod {
        from(json!({"metadata": {"name": name}, "spec": spec, "status": status}))
    }

    fn waiting(reason: &str, message: &str) -> serde_json::Value {
        json!({"state": {"waiting": {"reason": reason, "message": message}}})
    }

    fn container(name: &str, mut state: serde_json::Value) -> serde_json::Value {
        let fields =
            json!({"name": name, "image": "img", "imageID": "", "ready": false, "restartCount": 3});
        for (key, value) in fields.as_object().unwrap() {
            state[key] = value.clone();
        }
        state
    }

    #[test]
    fn only_workload_kinds_are_checked() {
        assert!(is_checked(&reference("apps/v1", "Deployment")));
        assert!(is_checked(&reference("apps/v1", "StatefulSet")));
        assert!(is_checked(&reference("apps/v1", "DaemonSet")));
        assert!(is_checked(&reference("batch/v1", "Job")));
        assert!(is_checked(&reference("v1", "Pod")));
        assert!(!is_checked(&reference("v1", "Service")));
        assert!(!is_checked(&reference("v1", "ConfigMap")));
        assert!(!is_checked(&reference("example.com/v1", "Deployment")));
        assert!(!is_checked(&reference("batch/v1beta1", "CronJob")));
    }

    #[test]
    fn deployment_verdicts_follow_the_rollout() {
        let unobserved = deployment(
            json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
        );
        assert_eq!(
            unobserved.verdict(),
            Verdict::Pending(WAITING_FOR_CONTROLLER.into())
        );
        let updating = deployment(
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2}),
        );
        assert_eq!(
            updating.verdict(),
            Verdict::Pending("waiting for rollout: 1/2 replicas updated".into())
        );
        let old = deployment(
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}),
        );
        assert_eq!(
            old.verdict(),
            Verdict::Pending("waiting for rollout: 1 old replicas pending termination".into())
        );
        let half = deployment(
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}),
        );
        assert_eq!(
            half.verdict(),
            Verdict::Pending("1/2 replicas available".into())
        );
        let done = deployment(
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
        );
        assert_eq!(done.verdict(), Verdict::Ready);
        let expired = deployment(json!({
            "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                            "message": "ReplicaSet \"web-1\" has timed out progressing."}]
        }));
        assert_eq!(
            expired.verdict(),
            Verdict::Expired(
                "ProgressDeadlineExceeded: ReplicaSet \"web-1\" has timed out progressing.".into()
            )
        );
        assert_eq!(done.own_deadline(), Some(Duration::from_secs(30)));
    }

    #[test]
    fn deployment_pods_count_only_for_the_newest_replica_set() {
        let observed = deployment(json!({"observedGeneration": 2}));
        let rs = |name: &str, revision: &str| -> (String, ReplicaSet) {
            let rs = from(json!({"metadata": {
                "name": name, "uid": format!("{name}-uid"),
                "annotations": {"deployment.kubernetes.io/revision": revision},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-uid"}]
            }}));
            (name.to_owned(), rs)
        };
        let replica_sets: BTreeMap<_, _> = [rs("web-old", "1"), rs("web-new", "2")].into();
        let owned = |owner: &str| -> Pod {
            from(json!({"metadata": {"name": "p", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": format!("{owner}-uid")}
            ]}}))
        };
        assert!(observed.counts_pod(&owned("web-new"), &replica_sets));
        assert!(!observed.counts_pod(&owned("web-old"), &replica_sets));
        let unobserved = deployment(json!({"observedGeneration": 1}));
        assert!(!unobserved.counts_pod(&owned("web-new"), &replica_sets));
    }

    #[test]
    fn statefulset_daemonset_and_job_verdicts() {
        let sts = |status: serde_json::Value| -> StatefulSet {
            from(json!({
                "metadata": {"name": "db", "generation": 1},
                "spec": {"replicas": 2, "serviceName": "db", "selector": {}, "template": {},
                         "updateStrategy": {"type": "RollingUpdate"}},
                "status": status
            }))
        };
        assert_eq!(
            sts(json!({"observedGeneration": 1, "replicas": 2, "readyReplicas": 1})).verdict(),
            Verdict::Pending("1/2 replicas ready".into())
        );
        assert_eq!(
            sts(json!({"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 1,
                       "currentRevision": "db-1", "updateRevision": "db-2"}))
            .verdict(),
            Verdict::Pending("waiting for rollout: 1/2 replicas updated".into())
        );
        assert_eq!(
            sts(json!({"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2,
                       "currentRevision": "db-2", "updateRevision": "db-2"}))
            .verdict(),
            Verdict::Ready
        );

        let ds = |status: serde_json::Value| -> DaemonSet {
            from(json!({"metadata": {"name": "agent", "generation": 1},
                        "spec": {"selector": {}, "template": {}}, "status": status}))
        };
        let counts = |desired, updated, ready| {
            json!({"observedGeneration": 1, "currentNumberScheduled": desired, "numberMisscheduled": 0,
                   "desiredNumberScheduled": desired, "updatedNumberScheduled": updated, "numberReady": ready})
        };
        assert_eq!(
            ds(counts(1, 0, 0)).verdict(),
            Verdict::Pending("waiting for rollout: 0/1 pods updated".into())
        );
        assert_eq!(
            ds(counts(1, 1, 0)).verdict(),
            Verdict::Pending("0/1 pods ready".into())
        );
        assert_eq!(ds(counts(1, 1, 1)).verdict(), Verdict::Ready);

        let job = |status: serde_json::Value| -> Job {
            from(
                json!({"metadata": {"name": "migrate"}, "spec": {"completions": 1, "template": {}}, "status": status}),
            )
        };
        assert_eq!(
            job(json!({"active": 1})).verdict(),
            Verdict::Pending("0/1 completions, 1 active".into())
        );
        assert_eq!(job(json!({"succeeded": 1})).verdict(), Verdict::Ready);
        assert_eq!(
            job(json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}))
            .verdict(),
            Verdict::Failed(
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
            )
        );
    }

    #[test]
    fn pod_verdicts() {
        let ready = pod(
            "p",
            json!({"containers": []}),
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}),
        );
        assert_eq!(ready.verdict(), Verdict::Ready);
        let done = pod(
            "p",
            json!({"containers": []}),
            json!({"phase": "Succeeded"}),
        );
        assert_eq!(done.verdict(), Verdict::Ready);
        let creating = pod(
            "p",
            json!({"containers": []}),
            json!({"phase": "Pending", "containerStatuses": [container("app", waiting("ContainerCreating", ""))]}),
        );
        assert_eq!(
            creating.verdict(),
            Verdict::Pending("Pending: ContainerCreating".into())
        );
        assert_eq!(pod_problem(&creating), None);
    }

    #[test]
    fn image_and_crash_problems_are_fatal() {
        let pull = pod(
            "web-1",
            json!({"containers": []}),
            json!({"phase": "Pending", "containerStatuses": [
                container("app", waiting("ErrImagePull", "rpc error: no such host"))
            ]}),
        );
        let problem = pod_problem(&pull).unwrap();
        assert_eq!(
            problem.summary(),
            "ErrImagePull: container app in pod web-1: rpc error: no such host"
        );
        assert_eq!(problem.log, None);

        let mut crash = container("app", waiting("CrashLoopBackOff", "back-off 10s"));
        crash["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error"}});
        let crashing = pod(
            "web-2",
            json!({"containers": []}),
            json!({"phase": "Running", "containerStatuses": [crash]}),
        );
        let problem = pod_problem(&crashing).unwrap();
        assert_eq!(
            problem.summary(),
            "CrashLoopBackOff: container app in pod web-2: back-off 10s; last exit code 1 (Error)"
        );
        assert_eq!(problem.log, Some(CrashLog::Previous));

        let exited = json!({"state": {"terminated": {"exitCode": 2, "reason": "Error"}}});
        let never = pod(
            "job-1",
            json!({"containers": [], "restartPolicy": "Never"}),
            json!({"phase": "Failed", "containerStatuses": [container("task", exited.clone())]}),
        );
        let problem = pod_problem(&never).unwrap();
        assert_eq!(
            problem.summary(),
            "Error: container task in pod job-1: exited with code 2"
        );
        assert_eq!(problem.log, Some(CrashLog::Current));
        let always = pod(
            "web-3",
            json!({"containers": [], "restartPolicy": "Always"}),
            json!({"phase": "Running", "containerStatuses": [container("app", exited)]}),
        );
        assert_eq!(pod_problem(&always), None);
    }

    #[test]
    fn unschedulable_and_deleted_pods() {
        let status = json!({"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 node(s) didn't match node selector."
        }]});
        let pending = pod("web-4", json!({"containers": []}), status.clone());
        assert_eq!(
            pod_problem(&pending).unwrap().summary(),
            "Unschedulable: pod web-4: 0/1 nodes are available: 1 node(s) didn't match node selector."
        );
        let mut deleting = pending.clone();
        deleting.metadata.deletion_timestamp = from(json!("2024-01-01T00:00:00Z"));
        assert_eq!(pod_problem(&deleting), None);
    }

    #[test]
    fn cache_follows_the_watch_protocol() {
        let named = |name: &str| -> Pod { from(json!({"metadata": {"name": name}})) };
        let mut cache: Cache<Pod> = Cache::default();
        cache.apply(watcher::Event::Init);
        cache.apply(watcher::Event::InitApply(named("a")));
        assert!(!cache.synced && cache.items.is_empty());
        cache.apply(watcher::Event::InitDone);
        assert!(cache.synced);
        cache.apply(watcher::Event::Apply(named("b")));
        cache.apply(watcher::Event::Delete(named("a")));
        assert_eq!(cache.items.keys().collect::<Vec<_>>(), ["b"]);
        // A relist replaces everything.
        cache.apply(watcher::Event::Init);
        cache.apply(watcher::Event::InitApply(named("c")));
        cache.apply(watcher::Event::InitDone);
        assert_eq!(cache.items.keys().collect::<Vec<_>>(), ["c"]);
    }

    #[test]
    fn seconds_are_formatted_briefly() {
        assert_eq!(format_seconds(Duration::from_secs(5)), "5s");
        assert_eq!(format_seconds(Duration::from_millis(2500)), "2.5s");
        assert_eq!(resource_name::<Deployment>(), "deployments.apps");
        assert_eq!(resource_name::<Pod>(), "pods");
        let selector: LabelSelector = from(json!({"matchLabels": {"app": "web"}}));
        assert_eq!(selector_string(&selector), "app=web");
    }

    fn event(value: serde_json::Value) -> KubeEvent {
        let mut event = json!({
            "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "web-abc", "uid": "pod-uid"},
            "type": "Warning", "reason": "FailedMount", "count": 1,
            "message": "MountVolume.SetUp failed for volume \"cfg\" : configmap \"cfg\" not found",
            "lastTimestamp": "2026-01-01T10:00:05Z"
        });
        for (key, value) in value.as_object().unwrap() {
            if value.is_null() {
                event.as_object_mut().unwrap().remove(key);
            } else {
                event[key] = value.clone();
            }
        }
        from(event)
    }

    fn identity(uid: Option<&str>) -> PodIdentity {
        PodIdentity {
            name: "web-abc".into(),
            uid: uid.map(str::to_owned),
            created: Some("2026-01-01T10:00:00Z".parse().unwrap()),
        }
    }

    #[test]
    fn newest_warning_of_the_pod_makes_the_status_line() {
        let events = [
            event(json!({"reason": "FailedCreatePodSandBox", "count": 12,
                "message": "failed to set up sandbox container network\nsecond line",
                "lastTimestamp": "2026-01-01T10:00:09Z"})),
            event(json!({"count": 3})),
            // Normal events never explain a stuck pod.
            event(
                json!({"type": "Normal", "reason": "Pulling", "lastTimestamp": "2026-01-01T10:00:30Z"}),
            ),
        ];
        let warning = newest_warning(&identity(Some("pod-uid")), &events).unwrap();
        assert_eq!(
            warning.summary(),
            "pod web-abc: FailedCreatePodSandBox: failed to set up sandbox container network (x12)"
        );
        let mount = newest_warning(&identity(Some("pod-uid")), &events[1..]).unwrap();
        assert_eq!(
            mount.summary(),
            "pod web-abc: FailedMount: MountVolume.SetUp failed for volume \"cfg\" : configmap \"cfg\" not found (x3)"
        );
        let once = newest_warning(&identity(None), &[event(json!({"message": "  once  "}))]);
        assert_eq!(once.unwrap().summary(), "pod web-abc: FailedMount: once");
        assert_eq!(newest_warning(&identity(None), &events[2..]), None);
        assert_eq!(newest_warning(&identity(None), &[]), None);
    }

    #[test]
    fn events_of_an_earlier_pod_with_the_same_name_are_ignored() {
        // Another uid: an earlier pod, whatever the times say.
        let other = event(
            json!({"involvedObject": {"kind": "Pod", "name": "web-abc", "uid": "old"},
            "lastTimestamp": "2026-01-01T10:05:00Z"}),
        );
        assert_eq!(newest_warning(&identity(Some("pod-uid")), &[other]), None);
        // The same uid counts even when the node's clock is behind.
        let skewed = event(json!({"lastTimestamp": "2026-01-01T09:59:58Z"}));
        assert!(newest_warning(&identity(Some("pod-uid")), &[skewed]).is_some());
        // Without uids, the times decide: older than the pod means an earlier pod.
        let anonymous = |at: &str| {
            event(
                json!({"involvedObject": {"kind": "Pod", "name": "web-abc"}, "lastTimestamp": at}),
            )
        };
        let pod = identity(Some("pod-uid"));
        assert_eq!(
            newest_warning(&pod, &[anonymous("2026-01-01T09:59:59Z")]),
            None
        );
        assert!(newest_warning(&pod, &[anonymous("2026-01-01T10:00:00Z")]).is_some());
        // Another pod's event (a field selector the server ignored) does not count.
        let neighbour =
            event(json!({"involvedObject": {"kind": "Pod", "name": "web-xyz", "uid": "pod-uid"}}));
        assert_eq!(newest_warning(&pod, &[neighbour]), None);
    }

    #[test]
    fn new_style_events_have_their_time_and_count_in_the_series() {
        let series = event(json!({
            "count": null, "lastTimestamp": null,
            "eventTime": "2026-01-01T10:00:01.000000Z",
            "series": {"count": 7, "lastObservedTime": "2026-01-01T10:00:20.000000Z"},
            "reason": "FailedAttachVolume"
        }));
        let plain = event(json!({"lastTimestamp": "2026-01-01T10:00:10Z"}));
        assert_eq!(event_count(&series), 7);
        assert_eq!(event_count(&event(json!({"count": null}))), 1);
        let warning = newest_warning(&identity(Some("pod-uid")), &[series, plain]).unwrap();
        assert_eq!(warning.reason, "FailedAttachVolume");
        assert_eq!(warning.count, 7);
    }

    #[test]
    fn long_messages_keep_their_start_and_their_root_cause() {
        assert_eq!(one_line("\n  first \nsecond", 100), "first");
        assert_eq!(one_line("", 100), "");
        let long = format!(
            "Failed to create pod sandbox: rpc error: {} network: could not find bridge docker0",
            "x".repeat(400)
        );
        let short = one_line(&long, 80);
        assert!(short.chars().count() <= 80, "{short}");
        assert!(short.starts_with("Failed to create pod sandbox"), "{short}");
        assert!(short.ends_with("could not find bridge docker0"), "{short}");
        assert!(short.contains('…'), "{short}");
        // Characters, not bytes: no panic in the middle of a multi-byte one.
        assert_eq!(one_line(&"é".repeat(10), 5).chars().count(), 5);
    }

    fn stuck(name: &str, uid: &str) -> Pod {
        from(json!({
            "metadata": {"name": name, "uid": uid, "creationTimestamp": "2026-01-01T10:00:00Z"},
            "spec": {"containers": []},
            "status": {"phase": "Pending"}
        }))
    }

    #[test]
    fn events_are_looked_up_rarely_and_only_for_stuck_pods() {
        let t0 = Instant::now();
        let a = stuck("web-a", "uid-a");
        let mut warnings = PodWarnings::default();
        assert_eq!(warnings.next_due(), None);
        warnings.track([&a], t0);
        // A pod that just started gets its chance to start before anything is asked.
        assert!(warnings.due(t0).is_empty());
        assert_eq!(warnings.next_due(), Some(t0 + EVENT_GRACE));
        let due = warnings.due(t0 + EVENT_GRACE);
        assert_eq!(due, [PodIdentity::of(&a)]);
        let listed =
            event(json!({"involvedObject": {"kind": "Pod", "name": "web-a", "uid": "uid-a"}}));
        warnings.record(
            &due[0],
            t0 + EVENT_GRACE,
            Some(std::slice::from_ref(&listed)),
        );
        assert_eq!(warnings.newest().unwrap().pod, "web-a");
        // Watch events in between ask nothing until the interval passed.
        warnings.track([&a], t0 + EVENT_GRACE + Duration::from_millis(500));
        assert!(
            warnings
                .due(t0 + EVENT_GRACE + EVENT_INTERVAL / 2)
                .is_empty()
        );
        assert_eq!(warnings.next_due(), Some(t0 + EVENT_GRACE + EVENT_INTERVAL));
        // A failed lookup keeps what was seen, and waits as long.
        let later = t0 + EVENT_GRACE + EVENT_INTERVAL;
        warnings.record(&due[0], later, None);
        assert_eq!(warnings.newest().unwrap().pod, "web-a");
        assert_eq!(warnings.next_due(), Some(later + EVENT_INTERVAL));
        // A pod recreated under the same name starts afresh.
        let again = stuck("web-a", "uid-a2");
        warnings.track([&again], later);
        assert_eq!(warnings.newest(), None);
        assert_eq!(warnings.next_due(), Some(later + EVENT_GRACE));
        // A pod that became ready (no longer passed in) is forgotten.
        warnings.track([], later);
        assert_eq!(warnings.next_due(), None);
        // Forbidden: no lookups at all.
        warnings.track([&a], t0);
        warnings.disabled = true;
        assert_eq!(warnings.next_due(), None);
        assert!(warnings.due(later).is_empty());
    }

    #[test]
    fn only_a_few_pods_are_followed_and_the_newest_warning_wins() {
        let t0 = Instant::now();
        let pods: Vec<Pod> = ["web-e", "web-d", "web-c", "web-b", "web-a"]
            .iter()
            .map(|name| stuck(name, &format!("{name}-uid")))
            .collect();
        let mut warnings = PodWarnings::default();
        warnings.track(&pods, t0);
        let due = warnings.due(t0 + EVENT_GRACE);
        let names: Vec<_> = due.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names.len(), MAX_EVENT_PODS);
        assert_eq!(names, ["web-a", "web-b", "web-c"]);
        let about = |name: &str, at: &str| {
            event(
                json!({"involvedObject": {"kind": "Pod", "name": name, "uid": format!("{name}-uid")},
                "lastTimestamp": at}),
            )
        };
        let now = t0 + EVENT_GRACE;
        warnings.record(
            &due[0],
            now,
            Some(&[about("web-a", "2026-01-01T10:00:03Z")]),
        );
        warnings.record(
            &due[1],
            now,
            Some(&[about("web-b", "2026-01-01T10:00:07Z")]),
        );
        warnings.record(&due[2], now, Some(&[]));
        assert_eq!(warnings.newest().unwrap().pod, "web-b");
        warnings.clear();
        assert_eq!(warnings.newest(), None);
        assert_eq!(warnings.next_due(), None);
    }

    #[test]
    fn stuck_pods_are_the_current_ones_not_ready() {
        let job: Job = from(json!({"metadata": {"name": "migrate", "uid": "job-uid"},
            "spec": {"template": {}}}));
        let owned = |name: &str, status: serde_json::Value, deleting: bool| -> (String, Pod) {
            let mut pod: Pod = from(json!({"metadata": {"name": name, "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": "migrate", "uid": "job-uid"}
            ]}, "status": status}));
            if deleting {
                pod.metadata.deletion_timestamp = from(json!("2026-01-01T00:00:00Z"));
            }
            (name.to_owned(), pod)
        };
        let cache = Cache {
            items: [
                owned("pending", json!({"phase": "Pending"}), false),
                owned("done", json!({"phase": "Succeeded"}), false),
                owned("going", json!({"phase": "Pending"}), true),
                ("stranger".to_owned(), stuck("stranger", "s")),
            ]
            .into(),
            ..Cache::default()
        };
        let watch = SelectedWatch {
            selector: String::new(),
            stream: futures_util::stream::empty().boxed(),
            cache,
        };
        let names: Vec<String> = stuck_pods(&job, Some(&watch), None)
            .into_iter()
            .map(|p| p.name_any())
            .collect();
        assert_eq!(names, ["pending"]);
        assert!(stuck_pods(&job, None, None).is_empty());
        let bare = stuck("bare", "b");
        assert_eq!(stuck_pods(&bare, None, None).len(), 1);
        let ready = pod(
            "p",
            json!({"containers": []}),
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}),
        );
        assert!(stuck_pods(&ready, None, None).is_empty());
    }

    #[tokio::test]
    async fn nothing_to_check_returns_at_once() {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let checker = KubernetesStatusChecker::new(client, StatusOptions::default());
        let reporter = skiff_types::event::CollectingReporter::default();
        let service = reference("v1", "Service");
        let summary = checker.wait_ready(&[service], &reporter).await.unwrap();
        assert!(summary.ready.is_empty());
        assert!(reporter.events().is_empty());
    }
}
