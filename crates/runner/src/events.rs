//! Events for tools: every [`Event`] as one JSON object per line ([`JsonEvent`]), the state of
//! the dev loop aggregated from them ([`LoopState`]), and [`FanOut`] to send them to several
//! reporters. The CLI writes them to `--event-log` and serves them on its HTTP API
//! (`/v2/events`, `/v2/state`); an embedder can do the same with its own transport.
//!
//! The JSON shape is skiff's own, close to Skaffold's v2 events: a `type` field (the event's
//! name in camelCase), an RFC 3339 `timestamp`, the event's fields in camelCase, durations as
//! whole milliseconds (`durationMs`, `totalMs`).
//!
//! ```
//! use skiff_runner::events::{JsonEvent, LoopState, PhaseStatus};
//! use skiff_types::event::Event;
//!
//! let event = Event::IterationStarted { trigger: "main.go".into() };
//! let line = JsonEvent::new(&event, "2026-01-01T00:00:00.000Z".into()).unwrap().to_line().unwrap();
//! assert!(line.contains(r#""type":"iterationStarted""#));
//! let mut state = LoopState::default();
//! state.apply(&event);
//! assert!(state.iteration.running);
//! assert_eq!(state.deploy_state.status, PhaseStatus::NotStarted);
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use skiff_types::event::{Event, Level, Reporter};

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

/// Now, as events are stamped: RFC 3339 with milliseconds, UTC.
pub fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Where a phase (or an artifact's build, or the status check) stands; serialized as Skaffold's
/// state API spells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum PhaseStatus {
    /// Not run yet.
    #[default]
    #[serde(rename = "Not Started")]
    NotStarted,
    /// Running.
    #[serde(rename = "In Progress")]
    InProgress,
    /// Done.
    Complete,
    /// The status check passed.
    Succeeded,
    /// Failed.
    Failed,
}

/// A phase's state in `/v2/state`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseState {
    /// Where the phase stands.
    pub status: PhaseStatus,
    /// Whether the phase runs on its own (filled in when served).
    pub auto_trigger: bool,
}

impl Default for PhaseState {
    fn default() -> Self {
        PhaseState {
            status: PhaseStatus::NotStarted,
            auto_trigger: true,
        }
    }
}

/// The build's state: each artifact's status.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildState {
    /// Image name → its build's status.
    pub artifacts: BTreeMap<String, PhaseStatus>,
    /// Whether builds run on their own.
    pub auto_trigger: bool,
}

/// The status check's state: each resource's last status.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCheckState {
    /// Where the check stands.
    pub status: PhaseStatus,
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
pub struct LoopState {
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

impl Default for LoopState {
    fn default() -> Self {
        LoopState {
            build_state: BuildState {
                artifacts: BTreeMap::new(),
                auto_trigger: true,
            },
            deploy_state: PhaseState::default(),
            status_check_state: StatusCheckState::default(),
            file_sync_state: PhaseState::default(),
            forwarded_ports: BTreeMap::new(),
            iteration: IterationState::default(),
        }
    }
}

impl LoopState {
    /// Fold one event in.
    pub fn apply(&mut self, event: &Event) {
        use PhaseStatus::{Complete, Failed, InProgress, Succeeded};
        match event {
            Event::IterationStarted { trigger } => {
                self.iteration.running = true;
                self.iteration.last_trigger = Some(trigger.clone());
            }
            Event::BuildStarted { image, .. } => {
                self.build_state.artifacts.insert(image.clone(), InProgress);
            }
            Event::BuildFinished { image, .. } => {
                self.build_state.artifacts.insert(image.clone(), Complete);
            }
            Event::Deployed { .. } => self.deploy_state.status = InProgress,
            Event::ResourceStatus { resource, status } => {
                self.status_check_state.status = InProgress;
                self.status_check_state
                    .resources
                    .insert(resource.clone(), status.clone());
            }
            Event::ResourceReady { resource, .. } => {
                self.status_check_state.status = InProgress;
                self.status_check_state
                    .resources
                    .insert(resource.clone(), "Ready".to_owned());
            }
            Event::Synced { .. } => self.file_sync_state.status = Complete,
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
                    if *status == InProgress {
                        *status = Failed;
                    }
                }
                if ran("deploy") {
                    self.deploy_state.status =
                        if failed && self.status_check_state.status != InProgress {
                            Failed
                        } else {
                            Complete
                        };
                } else if failed && self.deploy_state.status == InProgress {
                    self.deploy_state.status = Failed;
                }
                if ran("status") || self.status_check_state.status == InProgress {
                    self.status_check_state.status = if failed { Failed } else { Succeeded };
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
        let mut state = LoopState::default();
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
        assert_eq!(state.build_state.artifacts["a"], PhaseStatus::Complete);
        assert_eq!(state.build_state.artifacts["b"], PhaseStatus::Failed);
        assert_eq!(state.deploy_state.status, PhaseStatus::NotStarted);
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
        assert_eq!(state.deploy_state.status, PhaseStatus::Complete);
        assert_eq!(state.status_check_state.status, PhaseStatus::Succeeded);
        assert_eq!(
            serde_json::to_value(&state).unwrap()["statusCheckState"]["status"],
            "Succeeded"
        );
        assert_eq!(
            serde_json::to_value(LoopState::default()).unwrap()["deployState"]["status"],
            "Not Started"
        );
        assert_eq!(state.status_check_state.resources["deployment/a"], "Ready");
        assert_eq!(
            state.forwarded_ports["service/a:80"].local_address,
            "127.0.0.1:8080"
        );
        assert_eq!(state.iteration.count, 2);
        assert_eq!(state.iteration.last_error, None);
    }
}
