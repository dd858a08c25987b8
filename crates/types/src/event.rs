//! Events the stages emit, and the [`Reporter`] they are sent to.
//!
//! Libraries never print: they describe what happened as an [`Event`], and whoever embeds them
//! (the `skiff` CLI, an IDE plugin, a test) decides how to show or serialize it.

use std::sync::Mutex;
use std::time::Duration;

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
    /// A build of one artifact started.
    BuildStarted {
        /// The artifact's image name.
        image: String,
        /// The builder kind (`docker`, `custom`, …) or `cache` when checking the cache.
        builder: String,
    },
    /// One line of a builder's output (Docker build steps, a custom command's stdout/stderr).
    BuildOutput {
        /// The artifact's image name.
        image: String,
        /// The line, without its newline.
        line: String,
    },
    /// The build context was packed for upload.
    BuildContext {
        /// The artifact's image name.
        image: String,
        /// Bytes sent.
        bytes: u64,
        /// Files sent.
        files: u64,
    },
    /// An artifact is ready.
    BuildFinished {
        /// The artifact's image name.
        image: String,
        /// The reference to deploy (`name:tag` or `name:tag@digest`).
        reference: String,
        /// Whether the cache supplied it without a build.
        cache_hit: bool,
        /// Time from start to ready.
        duration: Duration,
    },
    /// An image was pushed to its registry.
    Pushed {
        /// The artifact's image name.
        image: String,
        /// `name:tag@digest`.
        reference: String,
    },
    /// An object or container was created, changed, or left as it was.
    Deployed {
        /// `kind/name` (`namespace/kind/name` when namespaced), or a container name.
        object: String,
        /// `created`, `configured`, `unchanged`, `deleted`.
        action: String,
    },
    /// A deployed resource became ready (status check).
    ResourceReady {
        /// `kind/name`.
        resource: String,
        /// Time from the start of the status check.
        duration: Duration,
    },
    /// A resource is not ready yet; says why (`1/2 replicas ready`, `ImagePullBackOff`, …).
    ResourceStatus {
        /// `kind/name`.
        resource: String,
        /// The current state, in words.
        status: String,
    },
    /// A local port now forwards to a resource.
    PortForwarded {
        /// What it forwards to: `service/web`, `pod/web-abc`, a container name.
        resource: String,
        /// The remote port.
        remote_port: u16,
        /// The local address, `127.0.0.1:8080`.
        local_address: String,
    },
    /// One line a running container wrote.
    LogLine {
        /// The pod, for Kubernetes containers.
        pod: Option<String>,
        /// The container.
        container: String,
        /// The image it runs (for choosing a colour per image).
        image: Option<String>,
        /// The line, without its newline.
        line: String,
    },
    /// Changed files were copied into (or deleted from) the running containers of an artifact,
    /// without a rebuild.
    Synced {
        /// The artifact's image name.
        image: String,
        /// Containers updated (`pod/container` or a container name).
        containers: Vec<String>,
        /// Files copied into each container.
        copied: usize,
        /// Paths deleted in each container.
        deleted: usize,
        /// Bytes sent to each container.
        bytes: u64,
        /// Time from start of the sync to done in every container.
        duration: Duration,
    },
    /// A dev-loop iteration started.
    IterationStarted {
        /// What triggered it: `initial`, or the changed files (`main.c`, `main.c +2 more`).
        trigger: String,
    },
    /// A dev-loop iteration finished, successfully or not.
    IterationFinished {
        /// What triggered it, as in [`Event::IterationStarted`].
        trigger: String,
        /// One line saying what it did and where the time went, e.g. `main.c → rebuilt app
        /// (0.61 s), applied 1 object, ready in 0.4 s — total 1.12 s`.
        summary: String,
        /// From trigger to done.
        total: Duration,
        /// Each phase (`build`, `render`, `deploy`, `status`) and its duration, in order.
        phases: Vec<(String, Duration)>,
        /// Why it failed (the loop goes on watching), `None` when it succeeded.
        error: Option<String>,
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

    /// The texts of the [`Event::Message`]s received so far, in order.
    pub fn messages(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|event| match event {
                Event::Message { text, .. } => Some(text),
                _ => None,
            })
            .collect()
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
            .filter_map(|e| match e {
                Event::Message { text, .. } => Some(text),
                _ => None,
            })
            .collect();
        assert_eq!(texts, ["a", "b"]);
    }
}
