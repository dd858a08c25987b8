//! skiff's watch stage: tells the dev loop which files changed.
//!
//! This crate owns the [`Watcher`] trait and its default implementation, [`NotifyWatcher`]: it
//! waits for filesystem activity under the roots it was given, drops what the [`IgnoreRules`]
//! exclude (`.git`, skiff's own cache directories, editor temp files, whatever the caller's
//! `.dockerignore` predicates exclude), coalesces a burst of events into one [`ChangeSet`] once
//! the tree has been quiet for [`WatchOptions::quiet_period`], and hands it over.
//!
//! Events that arrive while the consumer is busy are buffered and returned by the next call to
//! [`Watcher::next_change`]; nothing is lost. `next_change` is cancel-safe: dropping its future
//! (for instance in a `tokio::select!`) keeps everything accumulated so far for the next call.
//!
//! ```no_run
//! use skiff_types::event::NullReporter;
//! use skiff_watch::{NotifyWatcher, WatchOptions, Watcher};
//! use std::sync::Arc;
//!
//! # async fn demo() -> Result<(), skiff_watch::WatchError> {
//! let options = WatchOptions { roots: vec![".".into()], ..WatchOptions::default() };
//! let mut watcher = NotifyWatcher::new(options, Arc::new(NullReporter))?;
//! loop {
//!     let changes = watcher.next_change().await?;
//!     let _ = (changes.modified, changes.deleted); // rebuild, sync, redeploy...
//! }
//! # }
//! ```

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind, MetadataKind, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher as _};
use skiff_types::event::{Event, Level, Reporter};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::time::Instant;

pub use skiff_types::change::ChangeSet;

/// The default quiet period: how long the tree must stay still before a burst is handed over.
pub const DEFAULT_QUIET_PERIOD: Duration = Duration::from_millis(50);

/// The polling interval used when notifications are unavailable (inotify limit reached).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// A burst of continuous activity is handed over after at most this long, so that a file written
/// without pause (a log, say) cannot hold the dev loop back forever. Later events go into the next
/// change set.
const MAX_BURST: Duration = Duration::from_secs(5);

/// The name events of this stage carry as their `source`.
const SOURCE: &str = "watch";

/// How changes are noticed (`--trigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Filesystem notifications.
    Notify,
    /// Scan the tree every interval.
    Polling(Duration),
    /// Only when asked (Enter on a terminal, or the control API): see [`ManualTrigger`].
    Manual,
}

/// A caller-supplied exclusion: `true` means "ignore this path". It is called with the absolute
/// path of a changed file. A path is dropped when any predicate returns `true`, so a predicate
/// should only answer `true` for paths under its own context.
pub type ExcludeFn = Arc<dyn Fn(&Path) -> bool + Send + Sync>;

/// Which paths never count as changes.
///
/// Always ignored: anything inside a `.git` directory, editor temp files (`*.swp`, `*.swx`,
/// `*.swo`, `*~`, `4913`, `.#*`, `#*#`). In addition: [`extra_dirs`](Self::extra_dirs) and
/// whatever an [`exclude`](Self::exclude) predicate rejects.
#[derive(Clone, Default)]
pub struct IgnoreRules {
    /// `.dockerignore`-style predicates, typically one per artifact context.
    pub exclude: Vec<ExcludeFn>,
    /// Directories to ignore, e.g. skiff's cache. An absolute path ignores that directory; a
    /// relative one (`.skiff`, `build/cache`) ignores it under every root.
    pub extra_dirs: Vec<PathBuf>,
}

impl fmt::Debug for IgnoreRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IgnoreRules")
            .field(
                "exclude",
                &format_args!("[{} predicate(s)]", self.exclude.len()),
            )
            .field("extra_dirs", &self.extra_dirs)
            .finish()
    }
}

impl IgnoreRules {
    /// Whether `path` (absolute), seen under the watch root `root`, is to be ignored.
    pub fn ignores(&self, root: &Path, path: &Path) -> bool {
        let relative = path.strip_prefix(root).unwrap_or(path);
        let in_git = relative
            .components()
            .any(|c| matches!(c, Component::Normal(name) if name == ".git"));
        if in_git {
            return true;
        }
        if path.file_name().is_some_and(is_editor_temp_file) {
            return true;
        }
        let in_extra_dir = self.extra_dirs.iter().any(|dir| {
            if dir.is_absolute() {
                path.starts_with(dir)
            } else if dir.components().count() == 1 {
                relative
                    .components()
                    .any(|c| c.as_os_str() == dir.as_os_str())
            } else {
                relative.starts_with(dir)
            }
        });
        in_extra_dir || self.exclude.iter().any(|exclude| exclude(path))
    }
}

/// Whether a file name is one editors write and remove around a save (vim swap files and its
/// `4913` probe, backup files, emacs lock and autosave files).
pub fn is_editor_temp_file(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    name == "4913"
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".swo")
        || name.starts_with(".#")
        || (name.len() >= 2 && name.starts_with('#') && name.ends_with('#'))
}

/// What a watcher watches and how.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Directories (watched recursively) and files (only that file) to watch.
    pub roots: Vec<PathBuf>,
    /// How long the tree must stay quiet before a burst of events is handed over.
    pub quiet_period: Duration,
    /// How changes are noticed.
    pub trigger: Trigger,
    /// Paths that never count as changes.
    pub ignore: IgnoreRules,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            roots: Vec::new(),
            quiet_period: DEFAULT_QUIET_PERIOD,
            trigger: Trigger::Notify,
            ignore: IgnoreRules::default(),
        }
    }
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

    /// Watch `roots` with `ignore` from now on (the dev loop calls it after a configuration
    /// reload). Changes seen so far are kept. The default does nothing: a watcher that cannot
    /// change what it watches keeps watching its original roots.
    fn set_roots(&mut self, roots: Vec<PathBuf>, ignore: IgnoreRules) -> Result<(), WatchError> {
        let _ = (roots, ignore);
        Ok(())
    }

    /// A handle that makes a pending (or the next) [`next_change`](Self::next_change) hand
    /// over what has accumulated at once (the only way with [`Trigger::Manual`]); `None` (the
    /// default) when the watcher has no such handle.
    fn trigger_handle(&self) -> Option<ManualTrigger> {
        None
    }
}

/// A handle that makes a pending (or the next) [`Watcher::next_change`] of a [`NotifyWatcher`]
/// return at once with what has accumulated, possibly nothing. With [`Trigger::Manual`] it is the
/// only way changes are handed over. Cheap to clone; firing several times before the watcher
/// looks counts once.
#[derive(Debug, Clone, Default)]
pub struct ManualTrigger {
    notify: Arc<tokio::sync::Notify>,
}

impl ManualTrigger {
    /// Ask for the accumulated changes to be handed over now.
    pub fn fire(&self) {
        self.notify.notify_one();
    }
}

/// The filesystem backend in use. Only held, never read: dropping it stops the watch.
#[allow(dead_code)]
enum Backend {
    Native(notify::RecommendedWatcher),
    Polling(notify::PollWatcher),
}

/// What the notify callback thread sends.
type Message = notify::Result<notify::Event>;

/// The default [`Watcher`]: filesystem notifications via `notify` (inotify on Linux), or polling.
///
/// When the system's inotify watch limit is reached it falls back to polling every
/// [`DEFAULT_POLL_INTERVAL`] and reports one warning saying so.
pub struct NotifyWatcher {
    roots: Vec<Root>,
    quiet_period: Duration,
    trigger: Trigger,
    ignore: IgnoreRules,
    reporter: Arc<dyn Reporter>,
    backend: Backend,
    sender: UnboundedSender<Message>,
    receiver: UnboundedReceiver<Message>,
    /// Paths seen since the last hand-over; `true` when the path was created (or renamed into
    /// place), so that a new directory is scanned for the files already inside it.
    pending: BTreeMap<PathBuf, bool>,
    manual: ManualTrigger,
    fell_back: bool,
}

impl fmt::Debug for NotifyWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifyWatcher")
            .field("roots", &self.roots)
            .field("quiet_period", &self.quiet_period)
            .field("trigger", &self.trigger)
            .field("ignore", &self.ignore)
            .field("polling", &matches!(self.backend, Backend::Polling(_)))
            .field("pending", &self.pending.len())
            .finish()
    }
}

/// One watch root, made absolute.
#[derive(Debug, Clone)]
struct Root {
    path: PathBuf,
    is_dir: bool,
}

impl NotifyWatcher {
    /// Start watching `options.roots`. Every root must exist.
    pub fn new(options: WatchOptions, reporter: Arc<dyn Reporter>) -> Result<Self, WatchError> {
        Self::start(options, reporter, false)
    }

    fn start(
        options: WatchOptions,
        reporter: Arc<dyn Reporter>,
        force_fallback: bool,
    ) -> Result<Self, WatchError> {
        let roots = resolve_roots(&options.roots)?;
        let (sender, receiver) = unbounded_channel();
        let backend = start_backend(
            &roots,
            &sender,
            options.trigger,
            force_fallback,
            reporter.as_ref(),
        )?;
        Ok(NotifyWatcher {
            roots,
            quiet_period: options.quiet_period,
            trigger: options.trigger,
            ignore: options.ignore,
            reporter,
            fell_back: force_fallback
                || matches!(
                    (&backend, options.trigger),
                    (Backend::Polling(_), Trigger::Notify | Trigger::Manual)
                ),
            backend,
            sender,
            receiver,
            pending: BTreeMap::new(),
            manual: ManualTrigger::default(),
        })
    }

    /// A handle to hand over the accumulated changes on demand; see [`ManualTrigger`].
    pub fn manual_trigger(&self) -> ManualTrigger {
        self.manual.clone()
    }

    /// Watch `roots` with `ignore` from now on, keeping the changes seen so far: the backend is
    /// started again on the new roots (polling, if the watcher had fallen back to polling).
    /// Every root must exist; on error the old roots stay watched.
    pub fn set_roots(
        &mut self,
        roots: Vec<PathBuf>,
        ignore: IgnoreRules,
    ) -> Result<(), WatchError> {
        let roots = resolve_roots(&roots)?;
        let backend = if self.fell_back {
            polling_backend(&roots, &self.sender, DEFAULT_POLL_INTERVAL)?
        } else {
            start_backend(
                &roots,
                &self.sender,
                self.trigger,
                false,
                self.reporter.as_ref(),
            )?
        };
        if matches!(backend, Backend::Polling(_))
            && matches!(self.trigger, Trigger::Notify | Trigger::Manual)
        {
            self.fell_back = true;
        }
        self.backend = backend;
        self.roots = roots;
        self.ignore = ignore;
        Ok(())
    }

    /// Whether the watcher polls (because of [`Trigger::Polling`] or the inotify-limit fallback).
    pub fn is_polling(&self) -> bool {
        matches!(self.backend, Backend::Polling(_))
    }

    fn is_relevant(&self, path: &Path) -> bool {
        self.roots.iter().any(|root| {
            let under = if root.is_dir {
                path.starts_with(&root.path)
            } else {
                path == root.path
            };
            under && !self.ignore.ignores(&root.path, path)
        })
    }

    /// Fold one message from the backend into `pending`.
    fn absorb(&mut self, message: Message) {
        let event = match message {
            Ok(event) => event,
            Err(err) => {
                if should_fall_back(&err) && !self.fell_back {
                    self.fall_back_at_runtime(&err);
                } else {
                    self.reporter.report(Event::Message {
                        source: SOURCE,
                        level: Level::Debug,
                        text: format!("file watch error: {err}"),
                    });
                }
                return;
            }
        };
        let created = match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => false,
            EventKind::Access(_) => return,
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => return,
            EventKind::Create(_) => true,
            EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => true,
            _ => false,
        };
        for path in event.paths {
            if self.is_relevant(&path) {
                let entry = self.pending.entry(path).or_insert(false);
                *entry |= created;
            }
        }
    }

    /// The native backend hit the watch limit while running (a new directory could not be
    /// watched): switch to polling so that nothing goes unseen.
    fn fall_back_at_runtime(&mut self, err: &notify::Error) {
        match polling_backend(&self.roots, &self.sender, DEFAULT_POLL_INTERVAL) {
            Ok(backend) => {
                report_fallback(self.reporter.as_ref(), err);
                self.backend = backend;
                self.fell_back = true;
                // Files created where the watch failed may have gone unseen: look at the roots'
                // new directories at the next hand-over.
                let unseen: Vec<PathBuf> = err
                    .paths
                    .iter()
                    .filter(|p| self.is_relevant(p))
                    .cloned()
                    .collect();
                for path in unseen {
                    self.pending.insert(path, true);
                }
            }
            Err(poll_err) => self.reporter.report(Event::Message {
                source: SOURCE,
                level: Level::Warning,
                text: format!("file watch limit reached and polling failed too: {poll_err}"),
            }),
        }
    }

    /// Absorb whatever the backend has already sent, without waiting.
    fn drain(&mut self) -> Result<(), WatchError> {
        loop {
            match self.receiver.try_recv() {
                Ok(message) => self.absorb(message),
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => return Ok(()),
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    return Err(WatchError::Stopped);
                }
            }
        }
    }

    /// Turn `pending` into a change set, looking at the disk to tell writes from removals.
    fn hand_over(&mut self) -> ChangeSet {
        let mut changes = ChangeSet::default();
        for (path, created) in std::mem::take(&mut self.pending) {
            match std::fs::symlink_metadata(&path) {
                Ok(metadata) if metadata.is_dir() => {
                    if created {
                        self.record_tree(&path, &mut changes);
                    }
                }
                Ok(_) => changes.record_modified(path),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    changes.record_deleted(path);
                }
                Err(_) => changes.record_modified(path),
            }
        }
        changes
    }

    /// Record every file under a newly created directory (its files may predate the watch).
    fn record_tree(&self, dir: &Path, changes: &mut ChangeSet) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !self.is_relevant(&path) {
                continue;
            }
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => self.record_tree(&path, changes),
                Ok(_) => changes.record_modified(path),
                Err(_) => {}
            }
        }
    }

    /// Wait for the first message, or a manual fire. Returns `true` when fired.
    async fn wait_first(&mut self) -> Result<bool, WatchError> {
        let notify = Arc::clone(&self.manual.notify);
        tokio::select! {
            () = notify.notified() => Ok(true),
            message = self.receiver.recv() => match message {
                Some(message) => {
                    self.absorb(message);
                    Ok(false)
                }
                None => Err(WatchError::Stopped),
            },
        }
    }

    /// Wait until no event arrived for the quiet period (or a manual fire, or [`MAX_BURST`]).
    async fn wait_quiet(&mut self) -> Result<(), WatchError> {
        let notify = Arc::clone(&self.manual.notify);
        let give_up = Instant::now() + MAX_BURST;
        loop {
            let deadline = (Instant::now() + self.quiet_period).min(give_up);
            tokio::select! {
                () = notify.notified() => return Ok(()),
                () = tokio::time::sleep_until(deadline) => return Ok(()),
                message = self.receiver.recv() => match message {
                    Some(message) => self.absorb(message),
                    None => return Err(WatchError::Stopped),
                },
            }
        }
    }
}

#[async_trait::async_trait]
impl Watcher for NotifyWatcher {
    async fn next_change(&mut self) -> Result<ChangeSet, WatchError> {
        loop {
            self.drain()?;
            if self.trigger == Trigger::Manual {
                while !self.wait_first().await? {}
                self.drain()?;
                return Ok(self.hand_over());
            }
            if self.pending.is_empty() && self.wait_first().await? {
                self.drain()?;
                return Ok(self.hand_over());
            }
            if self.pending.is_empty() {
                continue;
            }
            self.wait_quiet().await?;
            let changes = self.hand_over();
            if !changes.is_empty() {
                return Ok(changes);
            }
        }
    }

    fn set_roots(&mut self, roots: Vec<PathBuf>, ignore: IgnoreRules) -> Result<(), WatchError> {
        NotifyWatcher::set_roots(self, roots, ignore)
    }

    fn trigger_handle(&self) -> Option<ManualTrigger> {
        Some(self.manual.clone())
    }
}

/// The roots made absolute, each checked to exist.
fn resolve_roots(roots: &[PathBuf]) -> Result<Vec<Root>, WatchError> {
    let mut resolved = Vec::with_capacity(roots.len());
    for root in roots {
        let path = std::path::absolute(root).map_err(|source| WatchError::Watch {
            path: root.clone(),
            source,
        })?;
        let metadata = std::fs::metadata(&path).map_err(|source| WatchError::Watch {
            path: path.clone(),
            source,
        })?;
        resolved.push(Root {
            path,
            is_dir: metadata.is_dir(),
        });
    }
    Ok(resolved)
}

/// The backend for `trigger`: notifications, falling back to polling (with a warning) when the
/// watch limit is reached, or polling.
fn start_backend(
    roots: &[Root],
    sender: &UnboundedSender<Message>,
    trigger: Trigger,
    force_fallback: bool,
    reporter: &dyn Reporter,
) -> Result<Backend, WatchError> {
    match trigger {
        Trigger::Polling(interval) => polling_backend(roots, sender, interval),
        Trigger::Notify | Trigger::Manual => {
            let native = if force_fallback {
                Err((
                    PathBuf::new(),
                    notify::Error::new(notify::ErrorKind::MaxFilesWatch),
                ))
            } else {
                native_backend(roots, sender)
            };
            match native {
                Ok(backend) => Ok(backend),
                Err((_, err)) if should_fall_back(&err) => {
                    report_fallback(reporter, &err);
                    polling_backend(roots, sender, DEFAULT_POLL_INTERVAL)
                }
                Err((path, err)) => Err(watch_error(path, err)),
            }
        }
    }
}

/// Whether a failure to set up notifications means "out of watches" (or inotify instances, or
/// file descriptors), so that polling is the way forward.
fn should_fall_back(err: &notify::Error) -> bool {
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    const ENOSPC: i32 = 28;
    match &err.kind {
        notify::ErrorKind::MaxFilesWatch => true,
        notify::ErrorKind::Io(io) => {
            matches!(io.raw_os_error(), Some(ENFILE | EMFILE | ENOSPC))
                || io.kind() == std::io::ErrorKind::StorageFull
        }
        _ => false,
    }
}

fn report_fallback(reporter: &dyn Reporter, err: &notify::Error) {
    reporter.report(Event::Message {
        source: SOURCE,
        level: Level::Warning,
        text: format!(
            "cannot watch files with notifications ({err}); polling every {} ms instead. \
             Raise the limit with `sudo sysctl fs.inotify.max_user_watches=524288` \
             (persist it in /etc/sysctl.conf)",
            DEFAULT_POLL_INTERVAL.as_millis()
        ),
    });
}

fn watch_error(path: PathBuf, err: notify::Error) -> WatchError {
    let source = match err.kind {
        notify::ErrorKind::Io(io) => io,
        kind => std::io::Error::other(notify::Error::new(kind)),
    };
    WatchError::Watch { path, source }
}

/// What to register with the backend: directory roots recursively (nested ones dropped), file
/// roots through their parent directory, unless a directory root already covers it.
fn watch_plan(roots: &[Root]) -> Vec<(PathBuf, RecursiveMode)> {
    let dirs: Vec<&Path> = roots
        .iter()
        .filter(|r| r.is_dir)
        .map(|r| r.path.as_path())
        .collect();
    let mut plan: Vec<(PathBuf, RecursiveMode)> = Vec::new();
    for dir in &dirs {
        let nested = dirs
            .iter()
            .any(|other| other != dir && dir.starts_with(other));
        let duplicate = plan.iter().any(|(p, _)| p == dir);
        if !nested && !duplicate {
            plan.push((dir.to_path_buf(), RecursiveMode::Recursive));
        }
    }
    for root in roots.iter().filter(|r| !r.is_dir) {
        let parent = root.path.parent().unwrap_or(&root.path);
        let covered = dirs.iter().any(|dir| parent.starts_with(dir));
        let duplicate = plan.iter().any(|(p, _)| p == parent);
        if !covered && !duplicate {
            plan.push((parent.to_path_buf(), RecursiveMode::NonRecursive));
        }
    }
    plan
}

fn callback(sender: &UnboundedSender<Message>) -> impl Fn(Message) + Send + 'static {
    let sender = sender.clone();
    move |message| {
        // The receiver is gone only when the watcher is dropped; nothing to do then.
        let _ = sender.send(message);
    }
}

fn native_backend(
    roots: &[Root],
    sender: &UnboundedSender<Message>,
) -> Result<Backend, (PathBuf, notify::Error)> {
    let mut watcher = notify::RecommendedWatcher::new(callback(sender), notify::Config::default())
        .map_err(|err| (PathBuf::new(), err))?;
    for (path, mode) in watch_plan(roots) {
        watcher.watch(&path, mode).map_err(|err| (path, err))?;
    }
    Ok(Backend::Native(watcher))
}

fn polling_backend(
    roots: &[Root],
    sender: &UnboundedSender<Message>,
    interval: Duration,
) -> Result<Backend, WatchError> {
    let config = notify::Config::default().with_poll_interval(interval);
    let mut watcher = notify::PollWatcher::new(callback(sender), config)
        .map_err(|err| watch_error(PathBuf::new(), err))?;
    for (path, mode) in watch_plan(roots) {
        watcher
            .watch(&path, mode)
            .map_err(|err| watch_error(path.clone(), err))?;
    }
    Ok(Backend::Polling(watcher))
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_types::event::CollectingReporter;

    #[test]
    fn falls_back_on_watch_limits_only() {
        assert!(should_fall_back(&notify::Error::new(
            notify::ErrorKind::MaxFilesWatch
        )));
        assert!(should_fall_back(&notify::Error::io(
            std::io::Error::from_raw_os_error(24)
        )));
        assert!(should_fall_back(&notify::Error::io(
            std::io::Error::from_raw_os_error(28)
        )));
        assert!(!should_fall_back(&notify::Error::path_not_found()));
        assert!(!should_fall_back(&notify::Error::io(std::io::Error::from(
            std::io::ErrorKind::PermissionDenied
        ))));
    }

    #[test]
    fn editor_temp_files() {
        for name in [".a.swp", "a.swx", "a~", "4913", ".#a.rs", "#a.rs#"] {
            assert!(is_editor_temp_file(OsStr::new(name)), "{name}");
        }
        for name in ["a.rs", "#", "skaffold.yaml", "49130"] {
            assert!(!is_editor_temp_file(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn ignore_rules() {
        let rules = IgnoreRules {
            exclude: vec![Arc::new(|p: &Path| p.ends_with("secret.txt"))],
            extra_dirs: vec![".skiff".into(), "/abs/cache".into(), "out/tmp".into()],
        };
        let root = Path::new("/p");
        assert!(rules.ignores(root, Path::new("/p/.git/HEAD")));
        assert!(rules.ignores(root, Path::new("/p/sub/.git/index")));
        assert!(rules.ignores(root, Path::new("/p/a/.skiff/x")));
        assert!(rules.ignores(root, Path::new("/p/out/tmp/x")));
        assert!(!rules.ignores(root, Path::new("/p/a/out/tmp/x")));
        assert!(rules.ignores(Path::new("/abs"), Path::new("/abs/cache/x")));
        assert!(rules.ignores(root, Path::new("/p/secret.txt")));
        assert!(!rules.ignores(root, Path::new("/p/main.go")));
        // `.git` above the root does not matter.
        assert!(!rules.ignores(Path::new("/x/.git/p"), Path::new("/x/.git/p/a")));
    }

    #[test]
    fn plan_drops_nested_and_covered_roots() {
        let roots = [
            Root {
                path: "/p".into(),
                is_dir: true,
            },
            Root {
                path: "/p/app".into(),
                is_dir: true,
            },
            Root {
                path: "/p/skaffold.yaml".into(),
                is_dir: false,
            },
            Root {
                path: "/q/k8s.yaml".into(),
                is_dir: false,
            },
            Root {
                path: "/q/other.yaml".into(),
                is_dir: false,
            },
        ];
        let plan = watch_plan(&roots);
        assert_eq!(
            plan,
            vec![
                (PathBuf::from("/p"), RecursiveMode::Recursive),
                (PathBuf::from("/q"), RecursiveMode::NonRecursive),
            ]
        );
    }

    #[tokio::test]
    async fn forced_fallback_polls_and_warns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reporter = Arc::new(CollectingReporter::default());
        let options = WatchOptions {
            roots: vec![dir.path().to_path_buf()],
            ..WatchOptions::default()
        };
        let mut watcher = NotifyWatcher::start(options, reporter.clone(), true).expect("watcher");
        assert!(watcher.is_polling());
        let warnings: Vec<_> = reporter
            .events()
            .into_iter()
            .filter(|e| matches!(e, Event::Message { level: Level::Warning, text, .. } if text.contains("max_user_watches")))
            .collect();
        assert_eq!(warnings.len(), 1);

        let file = dir.path().join("a.txt");
        std::fs::write(&file, "x").expect("write");
        let changes = tokio::time::timeout(Duration::from_secs(5), watcher.next_change())
            .await
            .expect("in time")
            .expect("changes");
        assert!(changes.modified.contains(&file), "{changes:?}");
    }
}
