//! Events the stages emit, and the [`Reporter`] they are sent to.
//!
//! Libraries never print: they describe what happened as an [`Event`], and whoever embeds them
//! (the `skiff` CLI, an IDE plugin, a test) decides how to show or serialize it.

use std::sync::Mutex;

/// How much a message matters to the person reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Detail for `-v debug`.
    Debug,
    /// Normal progress.
    Info,
    /// Something the user should fix, though work goes on.
    Warning,
}

/// Something that happened in a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A human-readable message from a stage.
    Message {
        /// The stage or component that speaks, e.g. `config`, `build`.
        source: &'static str,
        /// How much it matters.
        level: Level,
        /// One line of text.
        text: String,
    },
}

/// Receives events. Implementations must be cheap and never block for long: stages call it
/// from hot paths.
pub trait Reporter: Send + Sync {
    /// Handle one event.
    fn report(&self, event: Event);
}

/// A reporter that drops everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullReporter;

impl Reporter for NullReporter {
    fn report(&self, _event: Event) {}
}

/// A reporter that keeps every event in memory; for tests and for callers that render later.
#[derive(Debug, Default)]
pub struct CollectingReporter {
    events: Mutex<Vec<Event>>,
}

impl CollectingReporter {
    /// The events received so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Reporter for CollectingReporter {
    fn report(&self, event: Event) {
        if let Ok(mut events) = self.events.lock() {
            events.push(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collecting_reporter_keeps_order() {
        let reporter = CollectingReporter::default();
        let dyn_reporter: &dyn Reporter = &reporter;
        for text in ["a", "b"] {
            dyn_reporter.report(Event::Message {
                source: "test",
                level: Level::Info,
                text: text.into(),
            });
        }
        let texts: Vec<_> = reporter
            .events()
            .into_iter()
            .map(|Event::Message { text, .. }| text)
            .collect();
        assert_eq!(texts, ["a", "b"]);
    }
}
