//! Following the logs of the deployer's containers.

use super::*;

/// Following logs: stops when stopped or dropped. See [`DockerDeployer::follow_logs`].
#[must_use = "logs are followed only while the handle lives"]
pub struct LogHandle {
    pub(super) hub: Arc<LogHub>,
    pub(super) session: u64,
}

impl LogHandle {
    /// Stops following.
    pub fn stop(self) {
        // Dropping does it.
    }
}

impl Drop for LogHandle {
    fn drop(&mut self) {
        self.hub.stop(self.session);
    }
}

impl fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogHandle")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// The log followers of one deployer.
pub(super) struct LogHub {
    pub(super) docker: Docker,
    pub(super) runtime: Option<Handle>,
    pub(super) inner: StdMutex<LogHubInner>,
    pub(super) health: Arc<EngineHealth>,
}

impl fmt::Debug for LogHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("LogHub")
            .field("session", &inner.session)
            .field("following", &inner.reporter.is_some())
            .field("containers", &inner.containers.len())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
pub(super) struct LogHubInner {
    /// Where lines go while following.
    pub(super) reporter: Option<Arc<dyn Reporter>>,
    /// Counts [`LogHub::start`] calls, so that an old handle cannot stop a newer session.
    pub(super) session: u64,
    /// Container ID → its follower.
    pub(super) containers: BTreeMap<String, Followed>,
    /// Followers of removed containers, reading their last lines.
    pub(super) draining: Vec<JoinHandle<()>>,
}

pub(super) struct Followed {
    pub(super) name: String,
    pub(super) image: String,
    /// Lines of this container reported so far (the next follower skips them).
    pub(super) reported: Arc<AtomicU64>,
    pub(super) task: Option<JoinHandle<()>>,
}

impl LogHub {
    pub(super) fn lock(&self) -> MutexGuard<'_, LogHubInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts following every known container; returns the session.
    pub(super) fn start(&self, reporter: Arc<dyn Reporter>) -> u64 {
        let mut inner = self.lock();
        inner.session += 1;
        inner.reporter = Some(Arc::clone(&reporter));
        if self.runtime.is_none() {
            warn(
                &*reporter,
                "container logs cannot be followed outside a Tokio runtime".to_owned(),
            );
        }
        let ids: Vec<String> = inner.containers.keys().cloned().collect();
        for id in ids {
            self.spawn(&mut inner, &id);
        }
        inner.session
    }

    /// Stops following, if `session` is still the current one.
    pub(super) fn stop(&self, session: u64) {
        let mut inner = self.lock();
        if inner.session != session {
            return;
        }
        inner.reporter = None;
        for followed in inner.containers.values_mut() {
            if let Some(task) = followed.task.take() {
                task.abort();
            }
        }
        for task in inner.draining.drain(..) {
            task.abort();
        }
    }

    /// A container of the run was started: follow it.
    pub(super) fn add(&self, id: &str, name: &str, image: &str) {
        let mut inner = self.lock();
        inner
            .containers
            .entry(id.to_owned())
            .or_insert_with(|| Followed {
                name: name.to_owned(),
                image: image.to_owned(),
                reported: Arc::new(AtomicU64::new(0)),
                task: None,
            });
        self.spawn(&mut inner, id);
    }

    /// A known container was started again: follow it again (skipping lines already reported).
    pub(super) fn follow(&self, id: &str) {
        let mut inner = self.lock();
        self.spawn(&mut inner, id);
    }

    /// A container was removed: its follower reads to the end, and it is not followed again.
    pub(super) fn retire(&self, id: &str) {
        let mut inner = self.lock();
        if let Some(task) = inner.containers.remove(id).and_then(|f| f.task) {
            inner.draining.push(task);
        }
        inner.draining.retain(|t| !t.is_finished());
    }

    pub(super) fn retire_all(&self) {
        let mut inner = self.lock();
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut inner.containers)
            .into_values()
            .filter_map(|f| f.task)
            .collect();
        inner.draining.extend(tasks);
        inner.draining.retain(|t| !t.is_finished());
    }

    /// (Re)starts the follower of container `id` when following.
    pub(super) fn spawn(&self, inner: &mut LogHubInner, id: &str) {
        let (Some(reporter), Some(runtime)) = (inner.reporter.clone(), self.runtime.as_ref())
        else {
            return;
        };
        let Some(followed) = inner.containers.get_mut(id) else {
            return;
        };
        if let Some(task) = followed.task.take() {
            task.abort();
        }
        let follower = Follower {
            docker: self.docker.clone(),
            health: Arc::clone(&self.health),
            id: id.to_owned(),
            name: followed.name.clone(),
            image: followed.image.clone(),
            reported: Arc::clone(&followed.reported),
            reporter,
        };
        followed.task = Some(runtime.spawn(follower.run()));
    }
}

/// Follows one container's output.
pub(super) struct Follower {
    pub(super) docker: Docker,
    pub(super) health: Arc<EngineHealth>,
    pub(super) id: String,
    pub(super) name: String,
    pub(super) image: String,
    pub(super) reported: Arc<AtomicU64>,
    pub(super) reporter: Arc<dyn Reporter>,
}

impl Follower {
    pub(super) async fn run(self) {
        let mut failures = 0;
        let mut away = Duration::ZERO;
        loop {
            // Always from the start: lines are counted, and those already reported skipped,
            // so a re-opened stream repeats nothing.
            let options = LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                tail: "all".to_owned(),
                ..Default::default()
            };
            let mut stream = self.docker.logs(&self.id, Some(options));
            let mut seen = 0_u64;
            let mut stdout = LineBuffer::default();
            let mut stderr = LineBuffer::default();
            let mut failure = None;
            let mut opened = false;
            while let Some(item) = stream.next().await {
                if !opened && item.is_ok() {
                    opened = true;
                    away = Duration::ZERO;
                    self.health.back(&*self.reporter);
                }
                let lines = match item {
                    Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                        stdout.push(&message)
                    }
                    Ok(LogOutput::StdErr { message }) => stderr.push(&message),
                    Ok(LogOutput::StdIn { .. }) => Vec::new(),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                };
                for line in lines {
                    self.emit(&mut seen, line);
                }
            }
            // The engine is away (stopped, restarting): say so once, and wait for it rather
            // than give up — a container that survives the restart (live-restore) goes on
            // logging. A stream also ends when the engine shuts down, so an end is checked
            // too. A container the restart stopped ends its stream (or is gone: 404) once the
            // engine is back; a replaced container's follower is aborted.
            let unreachable = match &failure {
                None => match ping(&self.docker, &self.health.endpoint).await {
                    Err(DeployError::EngineUnavailable { reason, .. }) => Some(reason),
                    _ => None,
                },
                Some(error) if is_unreachable(error) => Some(describe(error)),
                Some(_) => None,
            };
            if let Some(reason) = unreachable {
                self.health.lost(&*self.reporter, &reason);
                away = (away * 2).clamp(Duration::from_millis(250), LOG_RECONNECT_MAX);
                tokio::time::sleep(away).await;
                continue;
            }
            match failure {
                None => {
                    // The container stopped: its unterminated last lines count too.
                    for line in stdout.finish().into_iter().chain(stderr.finish()) {
                        self.emit(&mut seen, line);
                    }
                    return;
                }
                Some(EngineError::DockerResponseServerError {
                    status_code: 404, ..
                }) => return,
                Some(error) => {
                    failures += 1;
                    if failures > LOG_RETRIES {
                        warn(
                            &*self.reporter,
                            format!(
                                "stopped following the logs of {}: {}",
                                self.name,
                                describe(&error)
                            ),
                        );
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    pub(super) fn emit(&self, seen: &mut u64, line: String) {
        *seen += 1;
        if *seen <= self.reported.load(Ordering::SeqCst) {
            return;
        }
        self.reporter.report(Event::LogLine {
            pod: None,
            container: self.name.clone(),
            image: Some(self.image.clone()),
            line,
        });
        self.reported.store(*seen, Ordering::SeqCst);
    }
}

/// Splits a byte stream into lines.
#[derive(Debug, Default)]
pub(super) struct LineBuffer {
    pub(super) pending: Vec<u8>,
}

impl LineBuffer {
    /// Adds bytes; returns the lines they complete.
    pub(super) fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let rest = self.pending.split_off(end + 1);
            let line = std::mem::replace(&mut self.pending, rest);
            lines.push(to_line(&line[..end]));
        }
        lines
    }

    /// The unterminated rest, if any.
    pub(super) fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let line = std::mem::take(&mut self.pending);
        Some(to_line(&line))
    }
}

pub(super) fn to_line(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}
