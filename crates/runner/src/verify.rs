//! `verify` tests and `customActions`: containers run to completion on the local Docker engine
//! (`executionMode.local`, the default), their output streamed, each reported passed or failed
//! with its time, and removed afterwards. An image that names an artifact runs as the build
//! given for it (`--build-artifacts`, `-i`).

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use skiff_config::EffectiveConfig;
use skiff_config::schema::VerifyContainer;
use skiff_deploy::docker::{OneShot, OneShotOutcome, run_to_completion};
use skiff_types::event::{Event, Level, Reporter};
use skiff_types::image::BuiltImage;

use crate::RunnerError;

/// A container to run to completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRun {
    /// `name`.
    pub name: String,
    /// `image`: an artifact's image name or any image in the engine.
    pub image: String,
    /// `command`: replaces the entrypoint.
    pub command: Option<Vec<String>>,
    /// `args`.
    pub args: Vec<String>,
    /// `env`.
    pub env: Vec<(String, String)>,
}

impl ContainerRun {
    fn of(container: &VerifyContainer) -> ContainerRun {
        ContainerRun {
            name: container.name.clone(),
            image: container.image.clone(),
            command: container.command.clone(),
            args: container.args.clone().unwrap_or_default(),
            env: container
                .env
                .iter()
                .flatten()
                .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
                .collect(),
        }
    }
}

/// One `verify` test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyTest {
    /// `name`.
    pub name: String,
    /// `container`.
    pub container: ContainerRun,
    /// `timeout` (seconds).
    pub timeout: Option<Duration>,
}

/// One `customActions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomAction {
    /// `name`.
    pub name: String,
    /// `containers`, run at the same time.
    pub containers: Vec<ContainerRun>,
    /// `timeout` (seconds), for every container.
    pub timeout: Option<Duration>,
    /// `failFast` (default true): the first failure stops the other containers.
    pub fail_fast: bool,
}

fn seconds(value: Option<i64>) -> Option<Duration> {
    value
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s.unsigned_abs()))
}

/// Every config's `verify` tests.
pub fn verify_tests(configs: &[EffectiveConfig]) -> Vec<VerifyTest> {
    configs
        .iter()
        .flat_map(|c| c.config.verify.iter().flatten())
        .map(|test| VerifyTest {
            name: test.name.clone(),
            container: ContainerRun::of(&test.container),
            timeout: seconds(test.timeout),
        })
        .collect()
}

/// Every config's `customActions`.
pub fn custom_actions(configs: &[EffectiveConfig]) -> Vec<CustomAction> {
    configs
        .iter()
        .flat_map(|c| c.config.custom_actions.iter().flatten())
        .map(|action| CustomAction {
            name: action.name.clone(),
            containers: action.containers.iter().map(ContainerRun::of).collect(),
            timeout: seconds(action.timeout),
            fail_fast: action.fail_fast.unwrap_or(true),
        })
        .collect()
}

/// How one container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerResult {
    /// The test's or container's name.
    pub name: String,
    /// How it ended (`Stopped`: another container failed first, `failFast`).
    pub outcome: OneShotOutcome,
}

impl ContainerResult {
    fn line(&self) -> String {
        match &self.outcome {
            OneShotOutcome::Exited { code: 0, duration } => {
                format!("{}: passed in {:.1} s", self.name, duration.as_secs_f64())
            }
            OneShotOutcome::Exited { code, duration } => format!(
                "{}: failed with exit code {code} after {:.1} s",
                self.name,
                duration.as_secs_f64()
            ),
            OneShotOutcome::TimedOut { after } => {
                format!("{}: timed out after {} s", self.name, after.as_secs())
            }
            OneShotOutcome::Stopped => {
                format!("{}: stopped (another container failed first)", self.name)
            }
        }
    }

    fn passed(&self) -> bool {
        self.outcome.passed()
    }
}

fn one_shot(
    kind: &str,
    run: &ContainerRun,
    images: &[BuiltImage],
    timeout: Option<Duration>,
) -> OneShot {
    let image = images
        .iter()
        .find(|i| i.image_name == run.image)
        .map_or_else(|| run.image.clone(), |i| i.reference.to_string());
    OneShot {
        name: run.name.clone(),
        kind: kind.to_owned(),
        image,
        command: run.command.clone(),
        args: run.args.clone(),
        env: run.env.clone(),
        timeout,
    }
}

/// Runs `runs` at the same time; with `fail_fast`, the first failure removes the others.
async fn run_all(
    kind: &str,
    runs: Vec<OneShot>,
    docker_host: Option<&str>,
    run_id: &str,
    fail_fast: bool,
    reporter: &dyn Reporter,
) -> Result<Vec<ContainerResult>, RunnerError> {
    let (stop_all, stopped) = tokio::sync::watch::channel(false);
    let mut pending: FuturesUnordered<_> = runs
        .iter()
        .map(|spec| {
            let mut stopped = stopped.clone();
            async move {
                let stop = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                (
                    spec.name.clone(),
                    run_to_completion(docker_host, run_id, spec, stop, reporter).await,
                )
            }
        })
        .collect();
    let mut results = Vec::new();
    while let Some((name, outcome)) = pending.next().await {
        let result = ContainerResult {
            name,
            outcome: outcome?,
        };
        reporter.report(Event::Message {
            source: kind_source(kind),
            level: if result.passed() {
                Level::Info
            } else {
                Level::Warning
            },
            text: result.line(),
        });
        let failed = !result.passed();
        results.push(result);
        if failed && fail_fast {
            // The others are killed and removed by their own runs, which then end here.
            let _ = stop_all.send(true);
        }
    }
    Ok(results)
}

fn kind_source(kind: &str) -> &'static str {
    if kind == "action" { "exec" } else { "verify" }
}

fn failures(what: &str, results: &[ContainerResult]) -> Result<(), RunnerError> {
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed())
        .map(ContainerResult::line)
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(RunnerError::Verify {
            what: what.to_owned(),
            failed,
        })
    }
}

/// `skiff verify`: every test, at the same time, on the engine at `docker_host`; fails naming
/// each test that did not pass.
pub async fn verify(
    tests: &[VerifyTest],
    images: &[BuiltImage],
    docker_host: Option<&str>,
    run_id: &str,
    reporter: &dyn Reporter,
) -> Result<Vec<ContainerResult>, RunnerError> {
    let runs = tests
        .iter()
        .map(|t| one_shot("verify", &t.container, images, t.timeout))
        .collect();
    let results = run_all("verify", runs, docker_host, run_id, false, reporter).await?;
    failures("verify", &results)?;
    Ok(results)
}

/// `skiff exec ACTION`: the action's containers at the same time.
pub async fn exec(
    action: &CustomAction,
    images: &[BuiltImage],
    docker_host: Option<&str>,
    run_id: &str,
    reporter: &dyn Reporter,
) -> Result<Vec<ContainerResult>, RunnerError> {
    let runs = action
        .containers
        .iter()
        .map(|c| one_shot("action", c, images, action.timeout))
        .collect();
    let results = run_all(
        "action",
        runs,
        docker_host,
        run_id,
        action.fail_fast,
        reporter,
    )
    .await?;
    failures(&format!("action {}", action.name), &results)?;
    Ok(results)
}
