//! Where the CLI's events go besides the console: the `--event-log` file, the history and live
//! stream of `/v2/events`, and the loop state of `/v2/state` — the JSON and the state are the
//! runner's ([`skiff_runner::events`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use skiff_runner::events::{JsonEvent, LoopState, timestamp};
use skiff_types::event::{Event, Reporter};
use tokio::sync::broadcast;

/// How many events `/v2/events` replays at most (a long session's log lines would otherwise
/// grow without bound).
const MAX_HISTORY: usize = 100_000;

/// Where events go besides the console: the JSON log file, the history and live stream for
/// `/v2/events`, and the aggregated [`LoopState`].
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
    state: LoopState,
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
                state: LoopState::default(),
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
    pub fn state(&self) -> LoopState {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.state.clone()
    }
}

impl Reporter for EventHub {
    fn report(&self, event: Event) {
        let line: Option<Arc<str>> = JsonEvent::new(&event, timestamp())
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use skiff_types::event::{Event, Reporter};

    use super::*;

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
