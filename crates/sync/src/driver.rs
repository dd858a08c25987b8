//! What both transports share: find the containers, run the hooks, copy and delete in every
//! container in parallel with retries, follow a replaced container to its successor, and
//! report.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use skiff_types::event::{Event, Reporter};

use crate::archive::{self, Archive};
use crate::hooks::{environment, run_host_hooks};
use crate::{ContainerReport, SyncError, SyncHook, SyncPlan, SyncReport, SyncTarget};

/// Attempts per container for a transient API failure.
const ATTEMPTS: u32 = 3;
/// First pause between attempts; tripled each time.
const BACKOFF: Duration = Duration::from_millis(100);
/// Times the container list is re-read to follow replaced containers.
const ROUNDS: usize = 3;

/// One transport's container operations.
#[async_trait::async_trait]
pub(crate) trait Transport: Send + Sync {
    /// A container it can reach.
    type Container: Clone + Send + Sync + PartialEq;

    /// `pod/container` or the container name.
    fn name(container: &Self::Container) -> String;

    /// The running containers of `target`.
    async fn containers(&self, target: &SyncTarget) -> Result<Vec<Self::Container>, SyncError>;

    /// Unpacks `archive` in `container`.
    async fn copy(
        &self,
        container: &Self::Container,
        target: &SyncTarget,
        archive: &Archive,
    ) -> Result<(), SyncError>;

    /// Deletes `paths` (recursively) in `container`.
    async fn delete(
        &self,
        container: &Self::Container,
        target: &SyncTarget,
        paths: &[String],
    ) -> Result<(), SyncError>;

    /// Runs `command` in `container`; its output.
    async fn exec(
        &self,
        container: &Self::Container,
        command: &[String],
        env: &[(String, String)],
    ) -> Result<String, SyncError>;
}

fn transient(error: &SyncError) -> bool {
    matches!(
        error,
        SyncError::Docker { .. } | SyncError::Kubernetes { .. }
    )
}

async fn with_retries<F, Fut>(mut attempt: F) -> Result<(), SyncError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), SyncError>>,
{
    let mut pause = BACKOFF;
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(error) if transient(&error) && tries < ATTEMPTS => {
                tokio::time::sleep(pause).await;
                pause *= 3;
            }
            other => return other,
        }
    }
}

async fn sync_one<T: Transport>(
    transport: &T,
    container: &T::Container,
    target: &SyncTarget,
    archive: &Archive,
    deletes: &[String],
) -> Result<ContainerReport, SyncError> {
    let started = Instant::now();
    if !deletes.is_empty() {
        with_retries(|| transport.delete(container, target, deletes)).await?;
    }
    if archive.files > 0 {
        with_retries(|| transport.copy(container, target, archive)).await?;
    }
    Ok(ContainerReport {
        container: T::name(container),
        copied: archive.files,
        deleted: deletes.len(),
        bytes: archive.bytes(),
        duration: started.elapsed(),
    })
}

async fn run_hooks<T: Transport>(
    transport: &T,
    phase: &'static str,
    hooks: &[SyncHook],
    containers: &[T::Container],
    (base, env): (&BTreeMap<String, String>, &[(String, String)]),
    reporter: &dyn Reporter,
) -> Result<(), SyncError> {
    for hook in hooks {
        match hook {
            SyncHook::Host(_) => {
                run_host_hooks(phase, std::slice::from_ref(hook), base, env, reporter).await?;
            }
            SyncHook::Container { command } => {
                let results =
                    join_all(containers.iter().map(|c| transport.exec(c, command, env))).await;
                for (container, result) in containers.iter().zip(results) {
                    let output = result.map_err(|e| SyncError::Hook {
                        phase,
                        command: command.join(" "),
                        message: format!("in {}: {e}", T::name(container)),
                    })?;
                    for line in output.lines() {
                        reporter.report(Event::Message {
                            source: "sync",
                            level: skiff_types::event::Level::Info,
                            text: format!(
                                "[{} hook {}] {line}",
                                crate::hooks::hook_phase(phase),
                                T::name(container)
                            ),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

/// Applies `plan` to the containers of `target` through `transport`.
pub(crate) async fn run<T: Transport>(
    transport: &T,
    target: &SyncTarget,
    plan: &SyncPlan,
    reporter: &dyn Reporter,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let archive = archive::build(plan)?;
    let deletes: Vec<String> = plan.delete.iter().map(|d| d.destination.clone()).collect();
    for delete in &deletes {
        archive::entry_name(delete)?;
    }
    let env = environment(target, plan);
    let mut containers = transport.containers(target).await?;
    if containers.is_empty() {
        return Err(SyncError::NoContainer {
            image: target.image.clone(),
            reference: target.reference.clone(),
        });
    }
    run_hooks(
        transport,
        "before",
        &plan.hooks.before,
        &containers,
        (&target.env, &env),
        reporter,
    )
    .await?;
    let mut done: Vec<T::Container> = Vec::new();
    let mut reports = Vec::new();
    let mut last_gone = None;
    for round in 0..ROUNDS {
        let pending: Vec<T::Container> = containers
            .iter()
            .filter(|c| !done.contains(c))
            .cloned()
            .collect();
        if pending.is_empty() {
            break;
        }
        let results = join_all(
            pending
                .iter()
                .map(|c| sync_one(transport, c, target, &archive, &deletes)),
        )
        .await;
        let mut gone = false;
        for (container, result) in pending.into_iter().zip(results) {
            match result {
                Ok(report) => {
                    reports.push(report);
                    done.push(container);
                }
                Err(error @ SyncError::ContainerGone { .. }) => {
                    gone = true;
                    last_gone = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        if !gone {
            break;
        }
        // A replaced container: its successor runs the same image; sync it too.
        tokio::time::sleep(BACKOFF * (round as u32 + 1)).await;
        containers = transport.containers(target).await?;
        containers.retain(|c| !done.contains(c));
        containers.extend(done.iter().cloned());
    }
    if reports.is_empty() {
        return Err(last_gone.unwrap_or(SyncError::NoContainer {
            image: target.image.clone(),
            reference: target.reference.clone(),
        }));
    }
    run_hooks(
        transport,
        "after",
        &plan.hooks.after,
        &done,
        (&target.env, &env),
        reporter,
    )
    .await?;
    let report = SyncReport {
        duration: started.elapsed(),
        containers: reports,
    };
    reporter.report(Event::Synced {
        image: target.image.clone(),
        containers: report
            .containers
            .iter()
            .map(|c| c.container.clone())
            .collect(),
        copied: archive.files,
        deleted: deletes.len(),
        bytes: archive.bytes(),
        duration: report.duration,
    });
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;

    use skiff_types::event::CollectingReporter;

    use super::*;
    use crate::FileCopy;

    /// Containers by name; `gone` ones answer ContainerGone once and are then replaced by
    /// `<name>-next`; `flaky` ones fail once with a transient error.
    #[derive(Default)]
    struct Fake {
        listed: Mutex<Vec<String>>,
        gone: Mutex<Vec<String>>,
        flaky: Mutex<Vec<String>>,
        copied: Mutex<Vec<String>>,
        hooks: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl Transport for Fake {
        type Container = String;

        fn name(container: &String) -> String {
            container.clone()
        }

        async fn containers(&self, _target: &SyncTarget) -> Result<Vec<String>, SyncError> {
            Ok(self.listed.lock().unwrap().clone())
        }

        async fn copy(
            &self,
            container: &String,
            _target: &SyncTarget,
            _archive: &Archive,
        ) -> Result<(), SyncError> {
            let mut gone = self.gone.lock().unwrap();
            if let Some(index) = gone.iter().position(|g| g == container) {
                gone.remove(index);
                let mut listed = self.listed.lock().unwrap();
                listed.retain(|c| c != container);
                listed.push(format!("{container}-next"));
                return Err(SyncError::ContainerGone {
                    container: container.clone(),
                    detail: "replaced".into(),
                });
            }
            let mut flaky = self.flaky.lock().unwrap();
            if let Some(index) = flaky.iter().position(|g| g == container) {
                flaky.remove(index);
                return Err(SyncError::Kubernetes {
                    operation: "exec".into(),
                    message: "connection reset".into(),
                });
            }
            self.copied.lock().unwrap().push(container.clone());
            Ok(())
        }

        async fn delete(
            &self,
            _container: &String,
            _target: &SyncTarget,
            _paths: &[String],
        ) -> Result<(), SyncError> {
            Ok(())
        }

        async fn exec(
            &self,
            container: &String,
            command: &[String],
            _env: &[(String, String)],
        ) -> Result<String, SyncError> {
            self.hooks
                .lock()
                .unwrap()
                .push(format!("{container}: {}", command.join(" ")));
            Ok(String::new())
        }
    }

    fn plan(dir: &std::path::Path) -> SyncPlan {
        std::fs::write(dir.join("a.txt"), "a").unwrap();
        SyncPlan {
            context: dir.to_path_buf(),
            copy: vec![FileCopy {
                source: dir.join("a.txt"),
                destination: "/a.txt".into(),
            }],
            hooks: crate::SyncHooks {
                before: Vec::new(),
                after: vec![SyncHook::Container {
                    command: vec!["reload".into()],
                }],
            },
            ..SyncPlan::default()
        }
    }

    fn target() -> SyncTarget {
        SyncTarget {
            image: "app".into(),
            reference: "app:1".into(),
            selector: "run=1".into(),
            kube_context: None,
            env: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn a_replaced_container_is_synced_through_its_successor_and_retries_happen() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake::default();
        *fake.listed.lock().unwrap() = vec!["a".into(), "b".into()];
        *fake.gone.lock().unwrap() = vec!["b".into()];
        *fake.flaky.lock().unwrap() = vec!["a".into()];
        let reporter = CollectingReporter::default();
        let report = run(&fake, &target(), &plan(dir.path()), &reporter)
            .await
            .unwrap();
        let mut names: Vec<String> = report
            .containers
            .iter()
            .map(|c| c.container.clone())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b-next"]);
        let mut copied = fake.copied.lock().unwrap().clone();
        copied.sort();
        assert_eq!(copied, ["a", "b-next"]);
        let mut hooks = fake.hooks.lock().unwrap().clone();
        hooks.sort();
        assert_eq!(
            hooks,
            ["a: reload", "b-next: reload"],
            "after hooks run where synced"
        );
        assert!(reporter.events().iter().any(|e| matches!(
            e,
            Event::Synced { copied: 1, containers, .. } if containers.len() == 2
        )));
    }

    #[tokio::test]
    async fn no_container_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = run(
            &Fake::default(),
            &target(),
            &plan(dir.path()),
            &CollectingReporter::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, SyncError::NoContainer { .. }));
        assert!(error.rebuild_instead());
    }
}
