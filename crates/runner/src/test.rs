//! The test phase: after a build and before anything is deployed, each built image's `test`
//! entries run — `custom` commands (with `IMAGE` set to the built reference, in the test's
//! context, within `timeoutSeconds`) and `structureTests` through the
//! `container-structure-test` binary. A failing test fails the build's phase: `run` stops,
//! `dev` keeps the old version serving and goes on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use skiff_build::dockerignore::DockerIgnore;
use skiff_config::EffectiveConfig;
use skiff_types::event::{Event, Level, Reporter};
use skiff_types::image::BuiltImage;

use crate::RunnerError;

/// The binary `structureTests` run with.
pub const STRUCTURE_TEST_BINARY: &str = "container-structure-test";

/// One `custom` test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomTest {
    /// The command, run with `sh -c`.
    pub command: String,
    /// `timeoutSeconds`; `None`: no limit.
    pub timeout: Option<Duration>,
    /// `dependencies.paths` (globs relative to the test's context): the files whose change
    /// calls for running it again.
    pub dependency_paths: Vec<String>,
    /// `dependencies.ignore`: globs of files under `dependency_paths` that do not.
    pub dependency_ignore: Vec<String>,
}

/// The tests of one image (`test[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageTests {
    /// `image`: the artifact's image name.
    pub image: String,
    /// `context`, resolved against its config: where custom tests run.
    pub context: PathBuf,
    /// `custom`.
    pub custom: Vec<CustomTest>,
    /// `structureTests`: config files (globs resolved against the config's directory).
    pub structure_tests: Vec<String>,
    /// `structureTestsArgs`.
    pub structure_tests_args: Vec<String>,
    /// The config's directory, which `structureTests` globs are relative to.
    pub base_dir: PathBuf,
}

/// Every config's `test` entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestSettings {
    /// In configuration order.
    pub tests: Vec<ImageTests>,
}

impl TestSettings {
    /// Whether there is no test.
    pub fn is_empty(&self) -> bool {
        self.tests.is_empty()
    }

    /// The tests of `images` only.
    pub fn only(&self, images: &BTreeSet<String>) -> TestSettings {
        TestSettings {
            tests: self
                .tests
                .iter()
                .filter(|t| images.contains(&t.image))
                .cloned()
                .collect(),
        }
    }

    /// What `dev` watches to run an image's tests again without a rebuild: each image's
    /// `dependencies.paths` (minus `ignore`) under its test context. Fails on a glob that
    /// does not parse, naming it.
    pub fn watches(&self) -> Result<Vec<TestWatch>, RunnerError> {
        let mut watches = Vec::new();
        for tests in &self.tests {
            let paths: Vec<&String> = tests
                .custom
                .iter()
                .flat_map(|c| &c.dependency_paths)
                .collect();
            if paths.is_empty() {
                continue;
            }
            let ignore: Vec<&String> = tests
                .custom
                .iter()
                .flat_map(|c| &c.dependency_ignore)
                .collect();
            watches.push(TestWatch {
                image: tests.image.clone(),
                context: tests.context.clone(),
                paths: patterns(&tests.image, "paths", &paths)?,
                ignore: patterns(&tests.image, "ignore", &ignore)?,
            });
        }
        Ok(watches)
    }
}

/// The files whose change runs one image's tests again (see [`TestSettings::watches`]).
/// `paths` and `ignore` match as a custom artifact's `dependencies` do (`.dockerignore`
/// syntax: a directory stands for everything below it).
#[derive(Debug, Clone)]
pub struct TestWatch {
    image: String,
    context: PathBuf,
    paths: DockerIgnore,
    ignore: DockerIgnore,
}

impl TestWatch {
    /// The artifact image whose tests these are.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The directory the dependency globs are relative to (the test's `context`).
    pub fn context(&self) -> &Path {
        &self.context
    }

    /// Whether a change to `path` (absolute) calls for the tests again.
    pub fn matches(&self, path: &Path) -> bool {
        path.strip_prefix(&self.context).is_ok_and(|relative| {
            let relative = relative.to_string_lossy().replace('\\', "/");
            self.paths.is_excluded(&relative) && !self.ignore.is_excluded(&relative)
        })
    }
}

fn patterns(image: &str, field: &str, patterns: &[&String]) -> Result<DockerIgnore, RunnerError> {
    DockerIgnore::from_patterns(patterns)
        .map_err(|e| failed(image, format!("test dependencies.{field}: {}", e.message)))
}

/// The test settings of `configs`.
pub fn test_settings(configs: &[EffectiveConfig]) -> TestSettings {
    let mut settings = TestSettings::default();
    for config in configs {
        let base_dir = config.base_dir().to_path_buf();
        for test in config.config.test.iter().flatten() {
            settings.tests.push(ImageTests {
                image: test.image.clone(),
                context: base_dir.join(test.context.as_deref().unwrap_or(".")),
                custom: test
                    .custom
                    .iter()
                    .flatten()
                    .map(|custom| CustomTest {
                        command: custom.command.clone(),
                        timeout: custom
                            .timeout_seconds
                            .filter(|s| *s > 0)
                            .map(|s| Duration::from_secs(s.unsigned_abs())),
                        dependency_paths: custom
                            .dependencies
                            .as_ref()
                            .and_then(|d| d.paths.clone())
                            .unwrap_or_default(),
                        dependency_ignore: custom
                            .dependencies
                            .as_ref()
                            .and_then(|d| d.ignore.clone())
                            .unwrap_or_default(),
                    })
                    .collect(),
                structure_tests: test.structure_tests.clone().unwrap_or_default(),
                structure_tests_args: test.structure_tests_args.clone().unwrap_or_default(),
                base_dir: base_dir.clone(),
            });
        }
    }
    settings
}

fn failed(image: &str, message: String) -> RunnerError {
    RunnerError::Test {
        image: image.to_owned(),
        message,
    }
}

/// Runs `command` (`described` in messages), streaming its output as `[test IMAGE] …` lines;
/// fails after `timeout`, or naming its exit status with the end of its output.
async fn run_command(
    image: &str,
    mut command: tokio::process::Command,
    described: &str,
    timeout: Option<Duration>,
    reporter: &dyn Reporter,
) -> Result<(), RunnerError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .map_err(|e| failed(image, format!("`{described}` could not start: {e}")))?;
    let prefix = format!("[test {image}] ");
    let streaming = skiff_hooks::Streaming {
        prefix: &prefix,
        source: "test",
        stdin: None,
        capture_stdout: false,
    };
    let run = skiff_hooks::stream(child, &streaming, reporter);
    // On the timeout the child is dropped, and so killed.
    let streamed = match timeout {
        Some(limit) => tokio::time::timeout(limit, run).await.map_err(|_| {
            failed(
                image,
                format!(
                    "`{described}` did not finish within {} s (timeoutSeconds)",
                    limit.as_secs()
                ),
            )
        })?,
        None => run.await,
    };
    let status = streamed
        .status
        .as_ref()
        .map_err(|e| failed(image, format!("`{described}` could not run: {e}")))?;
    if status.success() {
        return Ok(());
    }
    Err(failed(
        image,
        format!("`{described}` failed ({status}):\n{}", streamed.tail()),
    ))
}

fn structure_test_configs(tests: &ImageTests) -> Result<Vec<PathBuf>, RunnerError> {
    let mut files = Vec::new();
    for pattern in &tests.structure_tests {
        let matcher = globset::Glob::new(pattern)
            .map_err(|e| {
                failed(
                    &tests.image,
                    format!("structureTests `{pattern}` is not a valid glob: {e}"),
                )
            })?
            .compile_matcher();
        let literal = tests.base_dir.join(pattern);
        if literal.is_file() {
            files.push(literal);
            continue;
        }
        let mut matched = Vec::new();
        collect(&tests.base_dir, &tests.base_dir, &matcher, &mut matched);
        if matched.is_empty() {
            return Err(failed(
                &tests.image,
                format!(
                    "structureTests `{pattern}` matches no file under {}",
                    tests.base_dir.display()
                ),
            ));
        }
        matched.sort();
        files.extend(matched);
    }
    Ok(files)
}

fn collect(root: &Path, dir: &Path, matcher: &globset::GlobMatcher, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, matcher, out);
        } else if path
            .strip_prefix(root)
            .is_ok_and(|relative| matcher.is_match(relative))
        {
            out.push(path);
        }
    }
}

/// Runs the tests of every image in `images` that has some, in configuration order; the first
/// failure stops the rest. `env` is the run's environment (custom tests also get `IMAGE`).
/// Returns how long the tests took, `None` when there was none.
pub async fn run_tests(
    settings: &TestSettings,
    images: &[BuiltImage],
    env: &BTreeMap<String, String>,
    reporter: &dyn Reporter,
) -> Result<Option<Duration>, RunnerError> {
    let started = Instant::now();
    let mut ran = false;
    for tests in &settings.tests {
        let Some(built) = images.iter().find(|i| i.image_name == tests.image) else {
            continue;
        };
        let reference = built.reference.to_string();
        for custom in &tests.custom {
            ran = true;
            reporter.report(Event::Message {
                source: "test",
                level: Level::Info,
                text: format!("Running custom test command: {:?}", custom.command),
            });
            let mut command = tokio::process::Command::new("sh");
            command
                .arg("-c")
                .arg(&custom.command)
                .env_clear()
                .envs(env)
                .env("IMAGE", &reference)
                .current_dir(&tests.context);
            run_command(
                &tests.image,
                command,
                &custom.command,
                custom.timeout,
                reporter,
            )
            .await?;
        }
        if !tests.structure_tests.is_empty() {
            ran = true;
            let search_path: Vec<PathBuf> = env
                .get("PATH")
                .map(|path| std::env::split_paths(path).collect())
                .unwrap_or_default();
            let Some(binary) = skiff_render::tools::find_tool(&search_path, STRUCTURE_TEST_BINARY)
            else {
                return Err(failed(
                    &tests.image,
                    format!(
                        "structureTests need the `{STRUCTURE_TEST_BINARY}` binary on PATH; \
                         install it (https://github.com/GoogleContainerTools/container-structure-test) \
                         or run with --skip-tests"
                    ),
                ));
            };
            let configs = structure_test_configs(tests)?;
            let mut command = tokio::process::Command::new(&binary);
            command
                .args(["test", "--image", &reference])
                .args(&tests.structure_tests_args)
                .env_clear()
                .envs(env)
                .current_dir(&tests.base_dir);
            for config in &configs {
                command.arg("--config").arg(config);
            }
            let described = format!("{STRUCTURE_TEST_BINARY} test --image {reference}");
            run_command(&tests.image, command, &described, None, reporter).await?;
        }
    }
    Ok(ran.then(|| started.elapsed()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use skiff_types::event::CollectingReporter;

    use super::*;

    fn built(image: &str, reference: &str) -> BuiltImage {
        BuiltImage {
            image_name: image.into(),
            reference: reference.parse().unwrap(),
            image_id: None,
        }
    }

    fn env() -> BTreeMap<String, String> {
        BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())])
    }

    fn tests(dir: &Path, custom: Vec<CustomTest>) -> TestSettings {
        TestSettings {
            tests: vec![ImageTests {
                image: "app".into(),
                context: dir.to_path_buf(),
                custom,
                structure_tests: vec![],
                structure_tests_args: vec![],
                base_dir: dir.to_path_buf(),
            }],
        }
    }

    fn custom(command: &str, timeout: Option<u64>) -> CustomTest {
        CustomTest {
            command: command.into(),
            timeout: timeout.map(Duration::from_secs),
            dependency_paths: vec![],
            dependency_ignore: vec![],
        }
    }

    #[tokio::test]
    async fn custom_tests_see_the_image_and_run_in_their_context() {
        let dir = tempfile::tempdir().unwrap();
        let settings = tests(
            dir.path(),
            vec![custom("echo testing $IMAGE in $(pwd)", None)],
        );
        let reporter = CollectingReporter::default();
        let took = run_tests(&settings, &[built("app", "app:v1")], &env(), &reporter)
            .await
            .unwrap();
        assert!(took.is_some());
        let pwd = std::fs::canonicalize(dir.path()).unwrap();
        assert!(
            reporter
                .messages()
                .contains(&format!("[test app] testing app:v1 in {}", pwd.display())),
            "{:?}",
            reporter.messages()
        );
        // Images without tests, and no images, run nothing.
        let none = run_tests(&settings, &[built("web", "web:v1")], &env(), &reporter)
            .await
            .unwrap();
        assert_eq!(none, None);
    }

    #[tokio::test]
    async fn a_failing_or_slow_test_fails_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let settings = tests(
            dir.path(),
            vec![custom("echo expected 2 got 3; exit 1", None)],
        );
        let error = run_tests(
            &settings,
            &[built("app", "app:v1")],
            &env(),
            &CollectingReporter::default(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("test of app failed: `echo expected 2 got 3; exit 1` failed"),
            "{error}"
        );
        assert!(error.ends_with("expected 2 got 3"), "{error}");
        let settings = tests(dir.path(), vec![custom("sleep 5", Some(1))]);
        let error = run_tests(
            &settings,
            &[built("app", "app:v1")],
            &env(),
            &CollectingReporter::default(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(error.contains("did not finish within 1 s"), "{error}");
    }

    #[tokio::test]
    async fn structure_tests_without_their_binary_say_what_to_install() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = tests(dir.path(), vec![]);
        settings.tests[0].structure_tests = vec!["structure.yaml".into()];
        let error = run_tests(
            &settings,
            &[built("app", "app:v1")],
            &env(),
            &CollectingReporter::default(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("`container-structure-test` binary on PATH"),
            "{error}"
        );
    }
}
