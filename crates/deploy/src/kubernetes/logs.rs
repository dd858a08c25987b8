//! Following the logs of every container of a run's pods (`--tail`, on by default in `dev`).
//!
//! A [`LogTailer`] watches the pods that match a label selector (normally
//! `skaffold.dev/run-id=<id>`) in each namespace of the run — a watch, so pods created by a
//! redeploy are picked up as soon as the API server announces them — and follows the log of every
//! container and init container as soon as it has started (or already terminated: its output is
//! still shown).
//!
//! No line is reported twice: each container of each pod has one follower, which asks for
//! timestamped lines and remembers the timestamp of the last line it reported. When a stream ends
//! (the container stopped, restarted, or the connection dropped) the follower resumes from that
//! timestamp and skips what it has already seen, so a restarted container's new output follows
//! the old without repeating it.
//!
//! Lines are reported raw as [`Event::LogLine`]; the CLI prefixes and colours them. The prefix
//! style chosen by `deploy.logs.prefix` travels in the [`LogHandle`] ([`LogHandle::prefix`]), and
//! [`format_prefix`] renders it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::io::AsyncBufReadExt;
use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, LogParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event as WatchEvent};
use skiff_types::event::{Event, Level, Reporter};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The component name in the events this module reports.
const SOURCE: &str = "logs";
/// How long a follower waits before looking again at a running container whose stream ended.
const RETRY: Duration = Duration::from_secs(1);

/// How log lines are prefixed (`deploy.logs.prefix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LogPrefix {
    /// `[pod container]`, or `[container]` when the pod and the container have the same name
    /// (Skaffold's default).
    #[default]
    Auto,
    /// `[container]`.
    Container,
    /// `[pod container]`.
    PodAndContainer,
    /// No prefix.
    None,
}

impl LogPrefix {
    /// Parses a `deploy.logs.prefix` value (`auto`, `container`, `podAndContainer`, `none`;
    /// case-insensitive).
    ///
    /// ```
    /// use skiff_deploy::kubernetes::logs::LogPrefix;
    /// assert_eq!(LogPrefix::from_skaffold("podAndContainer"), Some(LogPrefix::PodAndContainer));
    /// assert_eq!(LogPrefix::from_skaffold("bogus"), None);
    /// ```
    pub fn from_skaffold(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "auto" => Some(Self::Auto),
            "container" => Some(Self::Container),
            "podandcontainer" => Some(Self::PodAndContainer),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// The prefix of a line from `container` of `pod` in the given style: `[pod container]`,
/// `[container]` or nothing (no trailing space).
///
/// ```
/// use skiff_deploy::kubernetes::logs::{format_prefix, LogPrefix};
/// assert_eq!(format_prefix(LogPrefix::PodAndContainer, "web-7d4", "web"), "[web-7d4 web]");
/// assert_eq!(format_prefix(LogPrefix::Container, "web-7d4", "web"), "[web]");
/// assert_eq!(format_prefix(LogPrefix::Auto, "web-7d4", "web"), "[web-7d4 web]");
/// assert_eq!(format_prefix(LogPrefix::Auto, "web", "web"), "[web]");
/// assert_eq!(format_prefix(LogPrefix::None, "web-7d4", "web"), "");
/// ```
pub fn format_prefix(prefix: LogPrefix, pod: &str, container: &str) -> String {
    match prefix {
        LogPrefix::None => String::new(),
        LogPrefix::Container => format!("[{container}]"),
        LogPrefix::Auto if pod == container || pod.is_empty() => format!("[{container}]"),
        LogPrefix::Auto | LogPrefix::PodAndContainer => format!("[{pod} {container}]"),
    }
}

/// How to follow logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogOptions {
    /// The prefix style, handed back by [`LogHandle::prefix`] for whoever prints the lines.
    pub prefix: LogPrefix,
    /// Only lines written after the tailer started (for containers that were already running:
    /// no old output). `false`: each container's output from its start.
    pub since_start: bool,
}

/// Follows the logs of a run's pods.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogTailer;

impl LogTailer {
    /// Starts following every container of every pod matching `selector` (a label selector,
    /// e.g. `skaffold.dev/run-id=<id>`) in each of `namespaces`, reporting each line as
    /// [`Event::LogLine`].
    ///
    /// Runs in background tasks until the handle is stopped or dropped; must be called within a
    /// Tokio runtime. Problems (a namespace that cannot be watched, a log that cannot be read)
    /// are reported as messages, never fatal.
    pub fn start(
        client: kube::Client,
        namespaces: Vec<String>,
        selector: String,
        options: LogOptions,
        reporter: Arc<dyn Reporter>,
    ) -> LogHandle {
        let floor = options.since_start.then(now);
        let mut seen = HashSet::new();
        let tasks = namespaces
            .into_iter()
            .filter(|ns| seen.insert(ns.clone()))
            .map(|namespace| {
                let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
                let config = watcher::Config::default().labels(&selector);
                let events = watcher::watcher(api.clone(), config).default_backoff();
                tokio::spawn(tail_namespace(
                    api,
                    namespace,
                    events,
                    floor,
                    reporter.clone(),
                ))
            })
            .collect();
        LogHandle {
            prefix: options.prefix,
            tasks,
        }
    }
}

/// Running log followers. Dropping it stops them, like [`LogHandle::stop`].
#[derive(Debug)]
pub struct LogHandle {
    prefix: LogPrefix,
    tasks: Vec<JoinHandle<()>>,
}

impl LogHandle {
    /// The prefix style the lines should be shown with.
    pub fn prefix(&self) -> LogPrefix {
        self.prefix
    }

    /// [`format_prefix`] in this handle's style.
    pub fn format_prefix(&self, pod: &str, container: &str) -> String {
        format_prefix(self.prefix, pod, container)
    }

    /// Stops watching and following; no line is reported after the tasks have unwound.
    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }

    /// Whether every task has ended (after [`LogHandle::stop`]).
    pub fn is_stopped(&self) -> bool {
        self.tasks.iter().all(JoinHandle::is_finished)
    }
}

impl Drop for LogHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a follower needs to know about its container.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ContainerView {
    state: State,
    /// Which instance of the container: restart count and container id.
    instance: (i32, Option<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not started (or no status yet).
    Waiting,
    Running,
    Terminated,
}

impl ContainerView {
    fn of(status: Option<&ContainerStatus>) -> Self {
        let Some(status) = status else {
            return Self {
                state: State::Waiting,
                instance: (0, None),
            };
        };
        let current = status.state.as_ref();
        let state = if current.is_some_and(|s| s.running.is_some()) {
            State::Running
        } else if current.is_some_and(|s| s.terminated.is_some()) {
            State::Terminated
        } else {
            State::Waiting
        };
        Self {
            state,
            instance: (status.restart_count, status.container_id.clone()),
        }
    }

    fn started(&self) -> bool {
        matches!(self.state, State::Running | State::Terminated)
    }
}

/// One pod being followed: a channel per container to its follower.
struct PodEntry {
    containers: HashMap<String, watch::Sender<ContainerView>>,
}

/// Watches one namespace and keeps one follower per container; ends when aborted (the
/// followers, owned by the [`JoinSet`], end with it).
async fn tail_namespace<S>(
    api: Api<Pod>,
    namespace: String,
    events: S,
    floor: Option<Timestamp>,
    reporter: Arc<dyn Reporter>,
) where
    S: Stream<Item = Result<WatchEvent<Pod>, watcher::Error>> + Send,
{
    let mut events = std::pin::pin!(events);
    let mut pods: HashMap<String, PodEntry> = HashMap::new();
    let mut followers = JoinSet::new();
    let mut relisted: Option<HashSet<String>> = None;
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { break };
                match event {
                    Ok(event) => {
                        last_error = None;
                        match event {
                            WatchEvent::Init => relisted = Some(HashSet::new()),
                            WatchEvent::InitApply(pod) => {
                                if let (Some(seen), Some(uid)) = (relisted.as_mut(), pod.metadata.uid.clone()) {
                                    seen.insert(uid);
                                }
                                update_pod(&api, &mut pods, &mut followers, pod, floor, &reporter);
                            }
                            WatchEvent::Apply(pod) => {
                                update_pod(&api, &mut pods, &mut followers, pod, floor, &reporter);
                            }
                            WatchEvent::Delete(pod) => {
                                // Dropping the senders lets the followers finish the stream they
                                // are reading (the container's last words) and end.
                                if let Some(uid) = pod.metadata.uid {
                                    pods.remove(&uid);
                                }
                            }
                            WatchEvent::InitDone => {
                                if let Some(seen) = relisted.take() {
                                    pods.retain(|uid, _| seen.contains(uid));
                                }
                            }
                        }
                    }
                    // 410 Gone: the server no longer has the watch's resource version (an
                    // API server that restarted has a new watch cache); the watcher lists again
                    // by itself, and nothing is lost — not worth a warning.
                    Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                        reporter.report(Event::Message {
                            source: SOURCE,
                            level: Level::Debug,
                            text: format!(
                                "watch of the pods in namespace `{namespace}` expired; listing again"
                            ),
                        });
                    }
                    Err(e) => {
                        let text = format!("cannot watch the pods in namespace `{namespace}`: {e}");
                        if last_error.as_ref() != Some(&text) {
                            reporter.report(Event::Message {
                                source: SOURCE,
                                level: Level::Warning,
                                text: text.clone(),
                            });
                            last_error = Some(text);
                        }
                    }
                }
            }
            Some(_) = followers.join_next(), if !followers.is_empty() => {}
        }
    }
}

/// Brings the followers of `pod` up to date: new containers get one, known ones learn their
/// new state.
fn update_pod(
    api: &Api<Pod>,
    pods: &mut HashMap<String, PodEntry>,
    followers: &mut JoinSet<()>,
    pod: Pod,
    floor: Option<Timestamp>,
    reporter: &Arc<dyn Reporter>,
) {
    let (Some(uid), Some(name)) = (pod.metadata.uid.clone(), pod.metadata.name.clone()) else {
        return;
    };
    let Some(spec) = pod.spec.as_ref() else {
        return;
    };
    let status = pod.status.as_ref();
    let statuses: Vec<&ContainerStatus> = status
        .into_iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .collect();
    let containers: Vec<&Container> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .collect();
    let entry = pods.entry(uid).or_insert_with(|| PodEntry {
        containers: HashMap::new(),
    });
    for container in containers {
        let view = ContainerView::of(statuses.iter().copied().find(|s| s.name == container.name));
        match entry.containers.get(&container.name) {
            Some(sender) => {
                sender.send_if_modified(|current| {
                    let changed = *current != view;
                    if changed {
                        *current = view;
                    }
                    changed
                });
            }
            None => {
                let (sender, receiver) = watch::channel(view);
                entry.containers.insert(container.name.clone(), sender);
                followers.spawn(follow(
                    Follower {
                        api: api.clone(),
                        pod: name.clone(),
                        container: container.name.clone(),
                        image: container.image.clone(),
                        reporter: reporter.clone(),
                    },
                    receiver,
                    floor,
                ));
            }
        }
    }
}

/// One container's follower.
struct Follower {
    api: Api<Pod>,
    pod: String,
    container: String,
    image: Option<String>,
    reporter: Arc<dyn Reporter>,
}

impl Follower {
    fn line(&self, line: String) {
        self.reporter.report(Event::LogLine {
            pod: Some(self.pod.clone()),
            container: self.container.clone(),
            image: self.image.clone(),
            line,
        });
    }

    fn debug(&self, text: String) {
        self.reporter.report(Event::Message {
            source: SOURCE,
            level: Level::Debug,
            text,
        });
    }

    /// Reads the container's log from `cursor` until the stream ends.
    async fn read(&self, cursor: &mut Cursor) -> Result<(), String> {
        let params = LogParams {
            container: Some(self.container.clone()),
            follow: true,
            timestamps: true,
            since_time: cursor.since_time(),
            ..LogParams::default()
        };
        let stream = self
            .api
            .log_stream(&self.pod, &params)
            .await
            .map_err(|e| e.to_string())?;
        let mut stream = std::pin::pin!(stream);
        cursor.begin_stream();
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            let read = stream
                .read_until(b'\n', &mut buffer)
                .await
                .map_err(|e| e.to_string())?;
            if read == 0 {
                return Ok(());
            }
            let raw = String::from_utf8_lossy(&buffer);
            let raw = raw.trim_end_matches(['\n', '\r']);
            match split_timestamp(raw) {
                Some((timestamp, text)) => {
                    if cursor.accept(timestamp) {
                        self.line(text.to_owned());
                    }
                }
                // Every line of the container's output carries the timestamp asked for; one
                // without is the kubelet or the runtime explaining why there is no log (the
                // container was removed with its pod, its log file is gone), not the app's.
                None => self.debug(format!(
                    "log of container `{}` of pod/{}: {raw}",
                    self.container, self.pod
                )),
            }
        }
    }
}

/// Follows one container across its instances until its pod goes away.
async fn follow(
    follower: Follower,
    mut view: watch::Receiver<ContainerView>,
    floor: Option<Timestamp>,
) {
    let mut cursor = Cursor::new(floor);
    // An instance whose log was read to the end after it had terminated: nothing more to come.
    let mut finished: Option<(i32, Option<String>)> = None;
    loop {
        let current = view.borrow_and_update().clone();
        if !current.started() || finished.as_ref() == Some(&current.instance) {
            if view.changed().await.is_err() {
                return;
            }
            continue;
        }
        if let Err(e) = follower.read(&mut cursor).await {
            follower.debug(format!(
                "cannot read the log of container `{}` of pod/{}: {e}",
                follower.container, follower.pod
            ));
        }
        if current.state == State::Terminated {
            finished = Some(current.instance);
            continue;
        }
        // The container was running: its stream ended because it stopped or restarted, or the
        // connection dropped. Look again when its state changes, or in a moment.
        tokio::select! {
            changed = view.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Where a follower is in a container's log: the timestamp of the last line reported and how
/// many lines carried exactly that timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    last: Option<Timestamp>,
    reported_at_last: usize,
    skip_at_last: usize,
}

impl Cursor {
    fn new(floor: Option<Timestamp>) -> Self {
        Self {
            last: floor,
            reported_at_last: 0,
            skip_at_last: 0,
        }
    }

    /// `sinceTime` for the next request: the last timestamp, rounded down to the second (the
    /// API takes whole seconds; what is read again is skipped).
    fn since_time(&self) -> Option<Timestamp> {
        self.last
            .map(|t| Timestamp::from_second(t.as_second()).unwrap_or(t))
    }

    /// A new stream starts: the lines stamped exactly `last` that were reported come again.
    fn begin_stream(&mut self) {
        self.skip_at_last = self.reported_at_last;
    }

    /// Whether a line stamped `timestamp` is new.
    fn accept(&mut self, timestamp: Timestamp) -> bool {
        match self.last {
            Some(last) if timestamp < last => false,
            Some(last) if timestamp == last => {
                if self.skip_at_last > 0 {
                    self.skip_at_last -= 1;
                    false
                } else {
                    self.reported_at_last += 1;
                    true
                }
            }
            _ => {
                self.last = Some(timestamp);
                self.reported_at_last = 1;
                self.skip_at_last = 0;
                true
            }
        }
    }
}

/// Splits `2021-03-04T05:06:07.123456789Z text` into the timestamp and the text.
fn split_timestamp(line: &str) -> Option<(Timestamp, &str)> {
    let (stamp, text) = line.split_once(' ').unwrap_or((line, ""));
    let timestamp = stamp.parse::<Timestamp>().ok()?;
    Some((timestamp, text))
}

/// The current time as a [`Timestamp`].
fn now() -> Timestamp {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
    let nanos = i32::try_from(since_epoch.subsec_nanos()).unwrap_or(0);
    Timestamp::new(seconds, nanos).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl fmt::Display for LogPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Container => "container",
            Self::PodAndContainer => "podAndContainer",
            Self::None => "none",
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn timestamps_split_off() {
        let (t, text) = split_timestamp("2021-03-04T05:06:07.123456789Z hello world").unwrap();
        assert_eq!(t, ts("2021-03-04T05:06:07.123456789Z"));
        assert_eq!(text, "hello world");
        let (_, text) = split_timestamp("2021-03-04T05:06:07Z").unwrap();
        assert_eq!(text, "");
        assert!(split_timestamp("not a timestamp").is_none());
    }

    #[test]
    fn cursor_skips_what_was_reported() {
        let mut cursor = Cursor::new(None);
        cursor.begin_stream();
        let a = ts("2021-01-01T00:00:01.5Z");
        let b = ts("2021-01-01T00:00:02.25Z");
        assert!(cursor.accept(a));
        assert!(cursor.accept(b));
        assert!(cursor.accept(b)); // two lines in the same nanosecond
        assert_eq!(cursor.since_time(), Some(ts("2021-01-01T00:00:02Z")));

        // The stream is read again from the second: everything so far is skipped once.
        cursor.begin_stream();
        assert!(!cursor.accept(a));
        assert!(!cursor.accept(b));
        assert!(!cursor.accept(b));
        assert!(cursor.accept(b)); // a third line with that stamp is new
        assert!(cursor.accept(ts("2021-01-01T00:00:03Z")));
    }

    #[test]
    fn floor_drops_older_lines() {
        let mut cursor = Cursor::new(Some(ts("2021-01-01T00:00:10Z")));
        cursor.begin_stream();
        assert!(!cursor.accept(ts("2021-01-01T00:00:09Z")));
        assert!(cursor.accept(ts("2021-01-01T00:00:10Z")));
        assert!(cursor.accept(ts("2021-01-01T00:00:11Z")));
    }

    #[test]
    fn prefixes_parse_and_print() {
        for prefix in [
            LogPrefix::Auto,
            LogPrefix::Container,
            LogPrefix::PodAndContainer,
            LogPrefix::None,
        ] {
            assert_eq!(LogPrefix::from_skaffold(&prefix.to_string()), Some(prefix));
        }
    }

    #[test]
    fn now_is_recent() {
        assert!(now() > ts("2024-01-01T00:00:00Z"));
    }
}
