//! skiff's watch stage: tells the dev loop which files changed.
//!
//! This crate owns the [`Watcher`] trait: an implementation waits for filesystem activity under
//! the roots it was given, coalesces a burst of events into one [`ChangeSet`], and applies
//! ignore rules. The default notify-based implementation arrives with the dev-loop work.
//!
//! ```
//! use skiff_watch::{Trigger, WatchOptions};
//! use std::time::Duration;
//!
//! let options = WatchOptions { roots: vec![".".into()], quiet_period: Duration::from_millis(50), trigger: Trigger::Notify };
//! assert_eq!(options.trigger, Trigger::Notify);
//! ```

use std::path::PathBuf;
use std::time::Duration;

pub use skiff_types::change::ChangeSet;

/// How changes are noticed (`--trigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Filesystem notifications.
    Notify,
    /// Scan the tree every interval.
    Polling(Duration),
    /// Only when asked (Enter on a terminal, or the control API).
    Manual,
}

/// What a watcher watches and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOptions {
    /// Directories and files to watch, recursively.
    pub roots: Vec<PathBuf>,
    /// How long the tree must stay quiet before a burst of events is handed over.
    pub quiet_period: Duration,
    /// How changes are noticed.
    pub trigger: Trigger,
}

/// Errors of the watch stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// A root could not be watched.
    #[error("cannot watch {path}: {source}")]
    Watch {
        /// The root.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The watcher was shut down.
    #[error("the watcher has stopped")]
    Stopped,
}

/// Waits for changes under a set of roots.
#[async_trait::async_trait]
pub trait Watcher: Send + Sync {
    /// Wait for the next coalesced set of changes.
    async fn next_change(&mut self) -> Result<ChangeSet, WatchError>;
}
