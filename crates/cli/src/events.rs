//! Events for tools: every [`Event`] as one JSON object per line (`--event-log FILE`, the
//! `/v2/events` stream), and the state of the dev loop aggregated from them (`/v2/state`).
//!
//! The JSON shape is skiff's own, close to Skaffold's v2 events: a `type` field (the event's
//! name in camelCase), an RFC 3339 `timestamp`, the event's fields in camelCase, durations as
//! whole milliseconds (`durationMs`, `totalMs`).

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use skiff_types::event::{Event, Level, Reporter};
use tokio::sync::broadcast;

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// One phase of an iteration and its duration.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonPhase<'a> {
    phase: &'a str,
    duration_ms: u64,
}

/// An [`Event`] as it is serialized.
#[derive(Debug, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
enum JsonEventKind<'a> {
    Message {
        source: &'a str,
        level: &'static str,
        text: &'a str,
    },
    BuildStarted {
        image: &'a str,
        builder: &'a str,
    },
    BuildOutput {
        image: &'a str,
        line: &'a str,
    },
    BuildContext {
        image: &'a str,
        bytes: u64,
        files: u64,
    },
    BuildFinished {
        image: &'a str,
        reference: &'a str,
        cache_hit: bool,
        duration_ms: u64,
    },
    Pushed {
        image: &'a str,
        reference: &'a str,
    },
    Deployed {
        object: &'a str,
        action: &'a str,
    },
    ResourceReady {
        resource: &'a str,
        duration_ms: u64,
    },
    ResourceStatus {
        resource: &'a str,
        status: &'a str,
    },
    PortForwarded {
        resource: &'a str,
        remote_port: u16,
        local_address: &'a str,
    },
    LogLine {
        pod: Option<&'a str>,
        container: &'a str,
        image: Option<&'a str>,
        line: &'a str,
    },
    Synced {
        image: &'a str,
        containers: &'a [String],
        copied: usize,
        deleted: usize,
        bytes: u64,
        duration_ms: u64,
    },
    IterationStarted {
        trigger: &'a str,
    },
    IterationFinished {
        trigger: &'a str,
        summary: &'a str,
        total_ms: u64,
        phases: Vec<JsonPhase<'a>>,
        error: Option<&'a str>,
    },
}

/// An event with its time, as one JSON line.
#[derive(Debug, Serialize)]
pub struct JsonEvent<'a> {
    timestamp: String,
    #[serde(flatten)]
    kind: JsonEventKind<'a>,
}

impl<'a> JsonEvent<'a> {
    /// The JSON form of `event`, stamped `timestamp`; `None` for an event kind this version
    /// does not know.
    pub fn new(event: &'a Event, timestamp: String) -> Option<JsonEvent<'a>> {
        let kind = match event {
            Event::Message {
                source,
                level,
                text,
            } => JsonEventKind::Message {
                source,
                level: match level {
                    Level::Debug => "debug",
                    Level::Info => "info",
                    Level::Warning => "warning",
                },
                text,
            },
            Event::BuildStarted { image, builder } => {
                JsonEventKind::BuildStarted { image, builder }
            }
            Event::BuildOutput { image, line } => JsonEventKind::BuildOutput { image, line },
            Event::BuildContext {
                image,
                bytes,
                files,
            } => JsonEventKind::BuildContext {
                image,
                bytes: *bytes,
                files: *files,
            },
            Event::BuildFinished {
                image,
                reference,
                cache_hit,
                duration,
            } => JsonEventKind::BuildFinished {
                image,
                reference,
                cache_hit: *cache_hit,
                duration_ms: millis(*duration),
            },
            Event::Pushed { image, reference } => JsonEventKind::Pushed { image, reference },
            Event::Deployed { object, action } => JsonEventKind::Deployed { object, action },
            Event::ResourceReady { resource, duration } => JsonEventKind::ResourceReady {
                resource,
                duration_ms: millis(*duration),
            },
            Event::ResourceStatus { resource, status } => {
                JsonEventKind::ResourceStatus { resource, status }
            }
            Event::PortForwarded {
                resource,
                remote_port,
                local_address,
            } => JsonEventKind::PortForwarded {
                resource,
                remote_port: *remote_port,
                local_address,
            },
            Event::LogLine {
                pod,
                container,
                image,
                line,
            } => JsonEventKind::LogLine {
                pod: pod.as_deref(),
                container,
                image: image.as_deref(),
                line,
            },
            Event::Synced {
                image,
                containers,
                copied,
                deleted,
                bytes,
                duration,
            } => JsonEventKind::Synced {
                image,
                containers,
                copied: *copied,
                deleted: *deleted,
                bytes: *bytes,
                duration_ms: millis(*duration),
            },
            Event::IterationStarted { trigger } => JsonEventKind::IterationStarted { trigger },
            Event::IterationFinished {
                trigger,
                summary,
                total,
                phases,
                error,
            } => JsonEventKind::IterationFinished {
                trigger,
                summary,
                total_ms: millis(*total),
                phases: phases
                    .iter()
                    .map(|(phase, duration)| JsonPhase {
                        phase,
                        duration_ms: millis(*duration),
                    })
                    .collect(),
                error: error.as_deref(),
            },
            _ => return None,
        };
        Some(JsonEvent { timestamp, kind })
    }

    /// One line of JSON, without its newline.
    pub fn to_line(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A phase's state in `/v2/state`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseState {
    /// `Not Started`, `In Progress`, `Complete`, `Failed`.
    pub status: String,
    /// Whether the phase runs on its own (filled in when served).
    pub auto_trigger: bool,
}

impl Default for PhaseState {
    fn default() -> Self {
        PhaseState {
            status: NOT_STARTED.to_owned(),
            auto_trigger: true,
        }
    }
}

const NOT_STARTED: &str = "Not Started";
const IN_PROGRESS: &str = "In Progress";
const COMPLETE: &str = "Complete";
const FAILED: &str = "Failed";

/// The build's state: each artifact's status.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildState {
    /// Image name → `In Progress`, `Complete`, `Failed`.
    pub artifacts: BTreeMap<String, String>,
    /// Whether builds run on their own.
    pub auto_trigger: bool,
}

/// The status check's state: each resource's last status.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCheckState {
    /// `Not Started`, `In Progress`, `Succeeded`, `Failed`.
    pub status: String,
    /// `kind/name` → its last status (`Ready` once ready).
    pub resources: BTreeMap<String, String>,
}

/// One forwarded port.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardedPort {
    /// `service/web`.
    pub resource: String,
    /// The port on the resource.
    pub remote_port: u16,
    /// `127.0.0.1:9080`.
    pub local_address: String,
}

/// The iterations so far.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IterationState {
    /// Iterations finished.
    pub count: u64,
    /// Whether one runs now.
    pub running: bool,
    /// What triggered the last one.
    pub last_trigger: Option<String>,
    /// The last one's summary line.
    pub last_summary: Option<String>,
    /// The last one's duration.
    pub last_total_ms: Option<u64>,
    /// Why the last one failed.
    pub last_error: Option<String>,
}

/// The dev loop's state, aggregated from its events (`GET /v2/state`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// Builds.
    pub build_state: BuildState,
    /// Render and deploy.
    pub deploy_state: PhaseState,
    /// Waiting for readiness.
    pub status_check_state: StatusCheckState,
    /// File sync.
    pub file_sync_state: PhaseState,
    /// `resource:remotePort` → the forward.
    pub forwarded_ports: BTreeMap<String, ForwardedPort>,
    /// Iterations.
    pub iteration: IterationState,
}

impl Default for State {
    fn default() -> Self {
        State {
            build_state: BuildState {
                artifacts: BTreeMap::new(),
                auto_trigger: true,
            },
            deploy_state: PhaseState::default(),
            status_check_state: StatusCheckState {
                status: NOT_STARTED.to_owned(),
                resources: BTreeMap::new(),
            },
            file_sync_state: PhaseState::default(),
            forwarded_ports: BTreeMap::new(),
            iteration: IterationState::default(),
        }
    }
}

impl State {
    /// Fold one event in.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::IterationStarted { trigger } => {
                self.iteration.running = true;
                self.iteration.last_trigger = Some(trigger.clone());
            }
            Event::BuildStarted { image, .. } => {
                self.build_state
                    .artifacts
                    .insert(image.clone(), IN_PROGRESS.to_owned());
            }
            Event::BuildFinished { image, .. } => {
                self.build_state
                    .artifacts
                    .insert(image.clone(), COMPLETE.to_owned());
            }
            Event::Deployed { .. } => IN_PROGRESS.clone_into(&mut self.deploy_state.status),
            Event::ResourceStatus { resource, status } => {
                IN_PROGRESS.clone_into(&mut self.status_check_state.status);
                self.status_check_state
                    .resources
                    .insert(resource.clone(), status.clone());
            }
            Event::ResourceReady { resource, .. } => {
                IN_PROGRESS.clone_into(&mut self.status_check_state.status);
                self.status_check_state
                    .resources
                    .insert(resource.clone(), "Ready".to_owned());
            }
            Event::Synced { .. } => COMPLETE.clone_into(&mut self.file_sync_state.status),
            Event::PortForwarded {
                resource,
                remote_port,
                local_address,
            } => {
                self.forwarded_ports.insert(
                    format!("{resource}:{remote_port}"),
                    ForwardedPort {
                        resource: resource.clone(),
                        remote_port: *remote_port,
                        local_address: local_address.clone(),
                    },
                );
            }
            Event::IterationFinished {
                summary,
                total,
                phases,
                error,
                ..
            } => {
                let ran = |name: &str| phases.iter().any(|(phase, _)| phase == name);
                let failed = error.is_some();
                for status in self.build_state.artifacts.values_mut() {
                    if status == IN_PROGRESS {
                        FAILED.clone_into(status);
                    }
                }
                if ran("deploy") {
                    let status = if failed && self.status_check_state.status != IN_PROGRESS {
                        FAILED
                    } else {
                        COMPLETE
                    };
                    status.clone_into(&mut self.deploy_state.status);
                } else if failed && self.deploy_state.status == IN_PROGRESS {
                    FAILED.clone_into(&mut self.deploy_state.status);
                }
                if ran("status") || self.status_check_state.status == IN_PROGRESS {
                    let status = if failed { FAILED } else { "Succeeded" };
                    status.clone_into(&mut self.status_check_state.status);
                }
                self.iteration.count += 1;
                self.iteration.running = false;
                self.iteration.last_summary = Some(summary.clone());
                self.iteration.last_total_ms = Some(millis(*total));
                self.iteration.last_error.clone_from(error);
            }
            _ => {}
        }
    }
}

/// How many events `/v2/events` replays at most (a long session's log lines would otherwise
/// grow without bound).
const MAX_HISTORY: usize = 100_000;

/// Where events go besides the console: the JSON log file, the history and live stream for
/// `/v2/events`, and the aggregated [`State`].
#[derive(Debug)]
pub struct EventHub {
    inner: Mutex<HubInner>,
    live: broadcast::Sender<Arc<str>>,
}

#[derive(Debug)]
struct HubInner {
    log: Option<BufWriter<File>>,
    /// Kept only when the HTTP API serves them; the oldest go beyond [`MAX_HISTORY`].
    history: Option<VecDeque<Arc<str>>>,
    state: State,
}

impl EventHub {
    /// A hub writing to `log` (created, truncated) when given, and keeping the history for
    /// `/v2/events` when `serve` is set.
    pub fn new(log: Option<&Path>, serve: bool) -> anyhow::Result<EventHub> {
        let log = match log {
            Some(path) => Some(BufWriter::new(File::create(path).with_context(|| {
                format!("cannot create the event log {}", path.display())
            })?)),
            None => None,
        };
        let (live, _) = broadcast::channel(4096);
        Ok(EventHub {
            inner: Mutex::new(HubInner {
                log,
                history: serve.then(VecDeque::new),
                state: State::default(),
            }),
            live,
        })
    }

    /// Every event so far as JSON lines, and a receiver of those that follow (no gap, no
    /// duplicate).
    pub fn subscribe(&self) -> (Vec<Arc<str>>, broadcast::Receiver<Arc<str>>) {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let history = inner
            .history
            .as_ref()
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default();
        (history, self.live.subscribe())
    }

    /// The state so far.
    pub fn state(&self) -> State {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.state.clone()
    }
}

impl Reporter for EventHub {
    fn report(&self, event: Event) {
        let line: Option<Arc<str>> = JsonEvent::new(&event, now())
            .and_then(|json| json.to_line())
            .map(Arc::from);
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.state.apply(&event);
        let Some(line) = line else {
            return;
        };
        if let Some(log) = &mut inner.log {
            // A full disk is not worth stopping the dev loop for; the file simply ends early.
            let _ = writeln!(log, "{line}").and_then(|()| log.flush());
        }
        if let Some(history) = &mut inner.history {
            if history.len() >= MAX_HISTORY {
                history.pop_front();
            }
            history.push_back(Arc::clone(&line));
            // Nobody listening is fine.
            let _ = self.live.send(line);
        }
    }
}

/// Sends each event to every reporter in turn.
pub struct FanOut(pub Vec<Arc<dyn Reporter>>);

impl std::fmt::Debug for FanOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FanOut({} reporters)", self.0.len())
    }
}

impl Reporter for FanOut {
    fn report(&self, event: Event) {
        if let Some((last, rest)) = self.0.split_last() {
            for reporter in rest {
                reporter.report(event.clone());
            }
            last.report(event);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn json(event: &Event) -> serde_json::Value {
        let line = JsonEvent::new(event, "2026-01-01T00:00:00.000Z".into())
            .unwrap()
            .to_line()
            .unwrap();
        serde_json::from_str(&line).unwrap()
    }

    #[test]
    fn events_are_tagged_camel_case_with_milliseconds() {
        let finished = Event::IterationFinished {
            trigger: "main.c".into(),
            summary: "main.c → rebuilt app".into(),
            total: Duration::from_millis(1120),
            phases: vec![("build".into(), Duration::from_millis(610))],
            error: None,
        };
        assert_eq!(
            json(&finished),
            serde_json::json!({
                "timestamp": "2026-01-01T00:00:00.000Z",
                "type": "iterationFinished",
                "trigger": "main.c",
                "summary": "main.c → rebuilt app",
                "totalMs": 1120,
                "phases": [{"phase": "build", "durationMs": 610}],
                "error": null,
            })
        );
        let forwarded = Event::PortForwarded {
            resource: "service/web".into(),
            remote_port: 8080,
            local_address: "127.0.0.1:9080".into(),
        };
        let value = json(&forwarded);
        assert_eq!(value["type"], "portForwarded");
        assert_eq!(value["remotePort"], 8080);
        assert_eq!(value["localAddress"], "127.0.0.1:9080");
        let built = Event::BuildFinished {
            image: "app".into(),
            reference: "app:v1".into(),
            cache_hit: false,
            duration: Duration::from_millis(1500),
        };
        assert_eq!(json(&built)["durationMs"], 1500);
        assert_eq!(json(&built)["cacheHit"], false);
    }

    #[test]
    fn state_follows_an_iteration() {
        let mut state = State::default();
        state.apply(&Event::IterationStarted {
            trigger: "initial".into(),
        });
        for image in ["a", "b"] {
            state.apply(&Event::BuildStarted {
                image: image.into(),
                builder: "docker".into(),
            });
        }
        state.apply(&Event::BuildFinished {
            image: "a".into(),
            reference: "a:1".into(),
            cache_hit: false,
            duration: Duration::from_millis(5),
        });
        assert!(state.iteration.running);
        state.apply(&Event::IterationFinished {
            trigger: "initial".into(),
            summary: "initial → build failed".into(),
            total: Duration::from_millis(7),
            phases: vec![("build".into(), Duration::from_millis(6))],
            error: Some("b failed".into()),
        });
        assert_eq!(state.build_state.artifacts["a"], COMPLETE);
        assert_eq!(state.build_state.artifacts["b"], FAILED);
        assert_eq!(state.deploy_state.status, NOT_STARTED);
        assert_eq!(state.iteration.count, 1);
        assert!(!state.iteration.running);

        state.apply(&Event::Deployed {
            object: "deployment/a".into(),
            action: "created".into(),
        });
        state.apply(&Event::ResourceReady {
            resource: "deployment/a".into(),
            duration: Duration::from_millis(3),
        });
        state.apply(&Event::PortForwarded {
            resource: "service/a".into(),
            remote_port: 80,
            local_address: "127.0.0.1:8080".into(),
        });
        state.apply(&Event::IterationFinished {
            trigger: "a.c".into(),
            summary: "a.c → applied".into(),
            total: Duration::from_millis(9),
            phases: vec![
                ("render".into(), Duration::from_millis(1)),
                ("deploy".into(), Duration::from_millis(2)),
                ("status".into(), Duration::from_millis(3)),
            ],
            error: None,
        });
        assert_eq!(state.deploy_state.status, COMPLETE);
        assert_eq!(state.status_check_state.status, "Succeeded");
        assert_eq!(state.status_check_state.resources["deployment/a"], "Ready");
        assert_eq!(
            state.forwarded_ports["service/a:80"].local_address,
            "127.0.0.1:8080"
        );
        assert_eq!(state.iteration.count, 2);
        assert_eq!(state.iteration.last_error, None);
    }

    #[test]
    fn the_hub_logs_keeps_history_and_streams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let hub = EventHub::new(Some(&path), true).unwrap();
        hub.report(Event::IterationStarted {
            trigger: "initial".into(),
        });
        let (history, mut live) = hub.subscribe();
        assert_eq!(history.len(), 1);
        hub.report(Event::Pushed {
            image: "a".into(),
            reference: "a:1@sha256:0".into(),
        });
        let next = live.try_recv().unwrap();
        assert!(next.contains("\"type\":\"pushed\""), "{next}");
        let text = std::fs::read_to_string(&path).unwrap();
        let types: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"].to_string())
            .collect();
        assert_eq!(types, ["\"iterationStarted\"", "\"pushed\""]);
    }
}
