//! The dev loop driven by a channel watcher and a plugged-in builder: what a change triggers,
//! failures that keep the loop alive, configuration reloads, shutdown. No engine or cluster
//! is needed: the configuration deploys nothing (`deploy.docker.images: []`).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use skiff_build::{BuildError, BuildRequest, Builder};
use skiff_runner::build::{BuildOptions, BuildStage};
use skiff_runner::deploy::DeployRunOptions;
use skiff_runner::dev::{DevLoop, DevOptions, ExecuteRequest, Phase, PortForwardMode};
use skiff_runner::render::{DigestSource, RenderRunOptions};
use skiff_types::change::ChangeSet;
use skiff_types::event::{CollectingReporter, Event, Level, Reporter};
use skiff_types::image::BuiltImage;
use skiff_watch::{WatchError, Watcher};
use tokio::sync::mpsc;

/// Builds `app:<n>`; fails while `<context>/fail` exists.
#[derive(Debug, Default)]
struct CountingBuilder {
    builds: AtomicUsize,
}

#[async_trait::async_trait]
impl Builder for CountingBuilder {
    async fn build(
        &self,
        request: &BuildRequest<'_>,
        _reporter: &dyn Reporter,
    ) -> Result<BuiltImage, BuildError> {
        if request.artifact.context.join("fail").exists() {
            return Err(BuildError::Unsupported {
                image: request.artifact.image.clone(),
                kind: "broken on purpose".into(),
            });
        }
        let n = self.builds.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(BuiltImage {
            image_name: request.artifact.image.clone(),
            reference: format!("app:v{n}").parse().unwrap(),
            image_id: None,
        })
    }
}

struct ChannelWatcher(mpsc::UnboundedReceiver<ChangeSet>);

#[async_trait::async_trait]
impl Watcher for ChannelWatcher {
    async fn next_change(&mut self) -> Result<ChangeSet, WatchError> {
        self.0.recv().await.ok_or(WatchError::Stopped)
    }
}

const CONFIG: &str = r#"apiVersion: skaffold/v4beta11
kind: Config
build:
  tagPolicy:
    sha256: {}
  artifacts:
  - image: app
    context: app
    custom:
      buildCommand: "false"
manifests:
  rawYaml:
  - k8s/*.yaml
deploy:
  docker:
    images: []
"#;

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: app\nspec:\n  containers:\n  - name: app\n    image: app\n";

fn changed(path: PathBuf) -> ChangeSet {
    let mut change = ChangeSet::default();
    change.record_modified(path);
    change
}

fn finished(reporter: &CollectingReporter) -> Vec<(String, Option<String>)> {
    reporter
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::IterationFinished { summary, error, .. } => Some((summary, error)),
            _ => None,
        })
        .collect()
}

async fn wait_for(reporter: &CollectingReporter, what: impl Fn(&[Event]) -> bool) {
    for _ in 0..500 {
        if what(&reporter.events()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out; events: {:#?}", reporter.events());
}

async fn wait_iterations(reporter: &CollectingReporter, n: usize) {
    wait_for(reporter, |events| {
        events
            .iter()
            .filter(|e| matches!(e, Event::IterationFinished { .. }))
            .count()
            >= n
    })
    .await;
}

fn options(dir: &Path) -> DevOptions {
    DevOptions {
        render: RenderRunOptions {
            digest_source: Some(DigestSource::Tag),
            prebuilt: Vec::new(),
            build: BuildOptions::default(),
            run_id: Some("test-run".into()),
            labels: BTreeMap::new(),
            without_run_labels: false,
            without_deploy_namespace: false,
            namespace: None,
            offline: true,
            kube_context: None,
            kubeconfig: None,
            search_path: Vec::new(),
        },
        deploy: DeployRunOptions::default(),
        port_forward: vec![PortForwardMode::Off],
        tail: false,
        cleanup: true,
        reload: Some(skiff_config::LoadOptions {
            config_file: None,
            working_dir: dir.to_path_buf(),
            profiles: Vec::new(),
            modules: Vec::new(),
            kube_context: None,
            command: "dev".into(),
            env: BTreeMap::new(),
        }),
        auto_build: true,
        auto_sync: true,
        auto_deploy: true,
        skip_tests: false,
    }
}

#[tokio::test]
async fn changes_rebuild_redeploy_or_are_ignored_and_failures_keep_the_loop_alive() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::create_dir_all(root.join("k8s")).unwrap();
    std::fs::write(root.join("app/main.c"), "int main(){}\n").unwrap();
    std::fs::write(root.join("k8s/pod.yaml"), POD).unwrap();
    std::fs::write(root.join("skaffold.yaml"), CONFIG).unwrap();
    let options = options(&root);
    let loaded = skiff_config::load(options.reload.as_ref().unwrap()).unwrap();

    let builder = Arc::new(CountingBuilder::default());
    let reporter = Arc::new(CollectingReporter::default());
    let dev = DevLoop::new(&loaded.configs, options, reporter.clone())
        .unwrap()
        .with_build_stage(BuildStage::new().with_builder("app", builder.clone()));
    let roots = dev.watch_roots();
    assert!(roots.contains(&root.join("app")), "{roots:?}");
    assert!(roots.contains(&root.join("skaffold.yaml")), "{roots:?}");

    let (changes, rx) = mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(dev.dev(Box::new(ChannelWatcher(rx)), async move {
        let _ = stopped.await;
    }));

    wait_iterations(&reporter, 1).await;
    assert_eq!(builder.builds.load(Ordering::SeqCst), 1);
    let (summary, error) = &finished(&reporter)[0];
    assert!(summary.starts_with("initial → rebuilt app ("), "{summary}");
    assert!(error.is_none());

    // A source file of the artifact: rebuilt.
    changes.send(changed(root.join("app/main.c"))).unwrap();
    wait_iterations(&reporter, 2).await;
    assert_eq!(builder.builds.load(Ordering::SeqCst), 2);
    let (summary, _) = &finished(&reporter)[1];
    assert!(summary.starts_with("main.c → rebuilt app ("), "{summary}");

    // A file nobody uses: no iteration. A manifest: redeployed without a build.
    changes.send(changed(root.join("README.md"))).unwrap();
    changes.send(changed(root.join("k8s/pod.yaml"))).unwrap();
    wait_iterations(&reporter, 3).await;
    assert_eq!(builder.builds.load(Ordering::SeqCst), 2);
    let (summary, _) = &finished(&reporter)[2];
    assert!(summary.starts_with("pod.yaml → "), "{summary}");
    assert!(!summary.contains("rebuilt"), "{summary}");

    // A failing build: reported, and the loop goes on; the next save retries.
    std::fs::write(root.join("app/fail"), "").unwrap();
    changes.send(changed(root.join("app/main.c"))).unwrap();
    wait_iterations(&reporter, 4).await;
    let (summary, error) = &finished(&reporter)[3];
    assert!(summary.contains("failed"), "{summary}");
    assert!(error.as_deref().unwrap().contains("broken on purpose"));
    std::fs::remove_file(root.join("app/fail")).unwrap();
    changes.send(changed(root.join("app/main.c"))).unwrap();
    wait_iterations(&reporter, 5).await;
    assert!(finished(&reporter)[4].1.is_none());
    assert_eq!(builder.builds.load(Ordering::SeqCst), 3);

    // A configuration that no longer loads: reported, the old loop keeps running.
    std::fs::write(root.join("skaffold.yaml"), "apiVersion: [\n").unwrap();
    changes.send(changed(root.join("skaffold.yaml"))).unwrap();
    wait_for(&reporter, |events| {
        events.iter().any(|e| {
            matches!(e, Event::Message { level: Level::Warning, text, .. }
                if text.contains("does not load"))
        })
    })
    .await;
    changes.send(changed(root.join("app/main.c"))).unwrap();
    wait_iterations(&reporter, 6).await;
    assert_eq!(builder.builds.load(Ordering::SeqCst), 4);

    // A good configuration again: reloaded, everything rebuilt.
    std::fs::write(root.join("skaffold.yaml"), CONFIG).unwrap();
    changes.send(changed(root.join("skaffold.yaml"))).unwrap();
    wait_iterations(&reporter, 7).await;
    assert_eq!(builder.builds.load(Ordering::SeqCst), 5);

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(finished(&reporter).len(), 7);
}

/// A channel watcher that records the roots it is told to watch after a reload.
struct RecordingWatcher {
    changes: mpsc::UnboundedReceiver<ChangeSet>,
    roots: Arc<std::sync::Mutex<Vec<Vec<PathBuf>>>>,
}

#[async_trait::async_trait]
impl Watcher for RecordingWatcher {
    async fn next_change(&mut self) -> Result<ChangeSet, WatchError> {
        self.changes.recv().await.ok_or(WatchError::Stopped)
    }

    fn set_roots(
        &mut self,
        roots: Vec<PathBuf>,
        _ignore: skiff_watch::IgnoreRules,
    ) -> Result<(), WatchError> {
        self.roots.lock().unwrap().push(roots);
        Ok(())
    }
}

#[tokio::test]
async fn without_auto_build_or_deploy_changes_wait_for_execute() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::create_dir_all(root.join("k8s")).unwrap();
    std::fs::write(root.join("app/main.c"), "int main(){}\n").unwrap();
    std::fs::write(root.join("k8s/pod.yaml"), POD).unwrap();
    std::fs::write(root.join("skaffold.yaml"), CONFIG).unwrap();
    let mut options = options(&root);
    options.auto_build = false;
    let loaded = skiff_config::load(options.reload.as_ref().unwrap()).unwrap();
    let builder = Arc::new(CountingBuilder::default());
    let reporter = Arc::new(CollectingReporter::default());
    let dev = DevLoop::new(&loaded.configs, options, reporter.clone())
        .unwrap()
        .with_build_stage(BuildStage::new().with_builder("app", builder.clone()));
    let control = dev.control();
    assert!(!control.auto(Phase::Build));
    assert!(control.auto(Phase::Deploy));
    let (changes, rx) = mpsc::unbounded_channel();
    let set_roots = Arc::new(std::sync::Mutex::new(Vec::new()));
    let watcher = RecordingWatcher {
        changes: rx,
        roots: Arc::clone(&set_roots),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(dev.dev(Box::new(watcher), async move {
        let _ = stopped.await;
    }));

    // The first iteration always runs.
    wait_iterations(&reporter, 1).await;
    assert_eq!(builder.builds.load(Ordering::SeqCst), 1);

    // Two saves without auto-build: nothing runs; they are announced as waiting.
    changes.send(changed(root.join("app/main.c"))).unwrap();
    changes.send(changed(root.join("app/other.c"))).unwrap();
    wait_for(&reporter, |events| {
        events.iter().any(
            |e| matches!(e, Event::Message { text, .. } if text.contains("waiting for a trigger")),
        )
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(finished(&reporter).len(), 1);

    // Execute: one iteration covering both changes.
    control.execute(ExecuteRequest::all());
    wait_iterations(&reporter, 2).await;
    assert_eq!(builder.builds.load(Ordering::SeqCst), 2);
    let (summary, error) = &finished(&reporter)[1];
    assert!(
        summary.starts_with("main.c +1 more → rebuilt app"),
        "{summary}"
    );
    assert!(error.is_none(), "{error:?}");

    // Auto-deploy off, auto-build back on: a save builds, the deploy waits for a trigger.
    control.set_auto(Phase::Deploy, false);
    control.set_auto(Phase::Build, true);
    changes.send(changed(root.join("app/main.c"))).unwrap();
    wait_iterations(&reporter, 3).await;
    let (summary, _) = &finished(&reporter)[2];
    assert!(summary.contains("rebuilt app"), "{summary}");
    assert!(summary.contains("deploy waits for a trigger"), "{summary}");
    // Asking for the deploy only: deployed, not built again.
    control.execute(ExecuteRequest {
        deploy: true,
        ..ExecuteRequest::default()
    });
    wait_iterations(&reporter, 4).await;
    assert_eq!(builder.builds.load(Ordering::SeqCst), 3);
    let (summary, _) = &finished(&reporter)[3];
    assert!(summary.starts_with("main.c → "), "{summary}");
    assert!(!summary.contains("rebuilt"), "{summary}");
    assert!(!summary.contains("waits"), "{summary}");

    // A manifest change waits for the deploy switch; turning it on runs it.
    changes.send(changed(root.join("k8s/pod.yaml"))).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(finished(&reporter).len(), 4);
    control.set_auto(Phase::Deploy, true);
    wait_iterations(&reporter, 5).await;
    assert!(finished(&reporter)[4].0.starts_with("pod.yaml → "));

    // A reload hands the watcher the new configuration's roots.
    changes.send(changed(root.join("skaffold.yaml"))).unwrap();
    wait_iterations(&reporter, 6).await;
    let recorded = set_roots.lock().unwrap().clone();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert!(recorded[0].contains(&root.join("app")), "{recorded:?}");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[test]
fn dockerignore_excludes_reach_the_watcher_but_never_config_or_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("k8s")).unwrap();
    std::fs::write(root.join("k8s/pod.yaml"), POD).unwrap();
    std::fs::write(root.join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
    std::fs::write(
        root.join(".dockerignore"),
        "*.md\nnode_modules\nk8s\nskaffold.yaml\nDockerfile\n",
    )
    .unwrap();
    let config = "apiVersion: skaffold/v4beta11\nkind: Config\nbuild:\n  artifacts:\n  - image: app\n    docker: {}\nmanifests:\n  rawYaml:\n  - k8s/*.yaml\ndeploy:\n  docker:\n    images: []\n";
    std::fs::write(root.join("skaffold.yaml"), config).unwrap();
    let options = options(&root);
    let loaded = skiff_config::load(options.reload.as_ref().unwrap()).unwrap();
    let dev = DevLoop::new(
        &loaded.configs,
        options,
        Arc::new(CollectingReporter::default()),
    )
    .unwrap();
    let ignore = dev.watch_ignore();
    let ignored = |p: &str| ignore.ignores(&root, &root.join(p));
    assert!(ignored("README.md"));
    assert!(ignored("node_modules/x/index.js"));
    assert!(!ignored("main.go"));
    assert!(!ignored("skaffold.yaml"), "the configuration always counts");
    assert!(!ignored("k8s/pod.yaml"), "manifests always count");
    assert!(!ignored("Dockerfile"), "the Dockerfile always counts");
    assert!(!ignored(".dockerignore"), "the ignore file always counts");
}

#[tokio::test]
async fn a_file_under_a_raw_yaml_directory_and_a_helm_values_file_trigger_a_redeploy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::create_dir_all(root.join("k8s/nested")).unwrap();
    std::fs::create_dir_all(root.join("charts/web")).unwrap();
    std::fs::create_dir_all(root.join("values")).unwrap();
    std::fs::write(root.join("app/main.c"), "int main(){}\n").unwrap();
    std::fs::write(root.join("k8s/nested/pod.yaml"), POD).unwrap();
    std::fs::write(root.join("values/dev.yaml"), "replicas: 1\n").unwrap();
    // The same loop as above, manifests from a directory and a helm release (no helm here:
    // its render fails, and the loop goes on; what matters is which changes start one).
    let config = CONFIG.replace(
        "manifests:\n  rawYaml:\n  - k8s/*.yaml\n",
        "manifests:\n  rawYaml:\n  - k8s\n  helm:\n    releases:\n    - name: web\n      chartPath: charts/web\n      valuesFiles: [values/dev.yaml]\n",
    );
    std::fs::write(root.join("skaffold.yaml"), config).unwrap();
    let options = options(&root);
    let loaded = skiff_config::load(options.reload.as_ref().unwrap()).unwrap();
    let builder = Arc::new(CountingBuilder::default());
    let reporter = Arc::new(CollectingReporter::default());
    let dev = DevLoop::new(&loaded.configs, options, reporter.clone())
        .unwrap()
        .with_build_stage(BuildStage::new().with_builder("app", builder.clone()));
    let roots = dev.watch_roots();
    assert!(roots.contains(&root.join("values")), "{roots:?}");
    let (changes, rx) = mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(dev.dev(Box::new(ChannelWatcher(rx)), async move {
        let _ = stopped.await;
    }));
    wait_iterations(&reporter, 1).await;

    changes
        .send(changed(root.join("k8s/nested/pod.yaml")))
        .unwrap();
    wait_iterations(&reporter, 2).await;
    let (summary, _) = &finished(&reporter)[1];
    assert!(summary.starts_with("pod.yaml → "), "{summary}");
    assert!(!summary.contains("rebuilt"), "{summary}");

    changes.send(changed(root.join("values/dev.yaml"))).unwrap();
    wait_iterations(&reporter, 3).await;
    let (summary, _) = &finished(&reporter)[2];
    assert!(summary.starts_with("dev.yaml → "), "{summary}");
    assert_eq!(builder.builds.load(Ordering::SeqCst), 1);

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

/// Records what it is asked to deploy and clean up.
#[derive(Clone, Default)]
struct FakeDeployer {
    deployed: Arc<std::sync::Mutex<Vec<Vec<String>>>>,
    cleanups: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl skiff_deploy::Deployer for FakeDeployer {
    async fn deploy(
        &self,
        input: &skiff_deploy::DeployInput<'_>,
        _reporter: &dyn Reporter,
    ) -> Result<skiff_deploy::DeployOutcome, skiff_deploy::DeployError> {
        let images: Vec<String> = input
            .images
            .iter()
            .map(|i| i.reference.to_string())
            .collect();
        self.deployed.lock().unwrap().push(images);
        Ok(skiff_deploy::DeployOutcome::default())
    }

    async fn cleanup(&self, _reporter: &dyn Reporter) -> Result<(), skiff_deploy::DeployError> {
        self.cleanups.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Records the files it is asked to copy.
#[derive(Clone, Default)]
struct FakeSyncer {
    copied: Arc<std::sync::Mutex<Vec<String>>>,
}

#[async_trait::async_trait]
impl skiff_sync::Syncer for FakeSyncer {
    async fn sync(
        &self,
        target: &skiff_sync::SyncTarget,
        plan: &skiff_sync::SyncPlan,
        _reporter: &dyn Reporter,
    ) -> Result<skiff_sync::SyncReport, skiff_sync::SyncError> {
        let mut copied = self.copied.lock().unwrap();
        for copy in &plan.copy {
            copied.push(format!("{} {}", target.reference, copy.destination));
        }
        Ok(skiff_sync::SyncReport {
            containers: vec![skiff_sync::ContainerReport {
                container: "fake".into(),
                copied: plan.copy.len(),
                deleted: plan.delete.len(),
                bytes: 0,
                duration: Duration::ZERO,
            }],
            duration: Duration::ZERO,
        })
    }
}

#[tokio::test]
async fn plugged_in_deployer_and_syncer_see_every_deploy_sync_and_cleanup() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::create_dir_all(root.join("k8s")).unwrap();
    std::fs::write(root.join("app/main.c"), "int main(){}\n").unwrap();
    std::fs::write(root.join("app/index.html"), "<p>1</p>\n").unwrap();
    std::fs::write(root.join("k8s/pod.yaml"), POD).unwrap();
    let config = CONFIG.replace(
        "    custom:\n",
        "    sync:\n      manual:\n      - src: '*.html'\n        dest: /srv\n    custom:\n",
    );
    std::fs::write(root.join("skaffold.yaml"), config).unwrap();
    let options = options(&root);
    let loaded = skiff_config::load(options.reload.as_ref().unwrap()).unwrap();
    let builder = Arc::new(CountingBuilder::default());
    let deployer = FakeDeployer::default();
    let syncer = FakeSyncer::default();
    let reporter = Arc::new(CollectingReporter::default());
    let dev = DevLoop::new(&loaded.configs, options, reporter.clone())
        .unwrap()
        .with_build_stage(BuildStage::new().with_builder("app", builder.clone()))
        .with_deployer(Box::new(deployer.clone()))
        .with_syncer(Box::new(syncer.clone()));
    let (changes, rx) = mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(dev.dev(Box::new(ChannelWatcher(rx)), async move {
        let _ = stopped.await;
    }));
    wait_iterations(&reporter, 1).await;
    assert_eq!(
        *deployer.deployed.lock().unwrap(),
        [vec!["app:v1".to_owned()]]
    );

    // A file the sync rules cover: synced into what runs, not rebuilt or redeployed.
    changes.send(changed(root.join("app/index.html"))).unwrap();
    wait_iterations(&reporter, 2).await;
    assert_eq!(*syncer.copied.lock().unwrap(), ["app:v1 /srv/index.html"]);
    assert_eq!(builder.builds.load(Ordering::SeqCst), 1);
    assert_eq!(deployer.deployed.lock().unwrap().len(), 1);

    // A source file: rebuilt and the new image deployed.
    changes.send(changed(root.join("app/main.c"))).unwrap();
    wait_iterations(&reporter, 3).await;
    assert_eq!(
        deployer.deployed.lock().unwrap().last().unwrap(),
        &["app:v2".to_owned()]
    );

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(
        deployer.cleanups.load(Ordering::SeqCst),
        1,
        "cleaned up on exit"
    );
}

/// A failing test fails the iteration and deploys nothing: the last good image keeps
/// running; once the test passes again the new image deploys. Deploy hooks run around each
/// deploy, with the run's variables.
#[tokio::test]
async fn a_failing_test_keeps_the_old_version_and_deploy_hooks_run_around_deploys() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::create_dir_all(root.join("k8s")).unwrap();
    std::fs::write(root.join("app/main.c"), "int main(){}\n").unwrap();
    std::fs::write(root.join("k8s/pod.yaml"), POD).unwrap();
    let log = root.join("hooks.log");
    let config = format!(
        "{CONFIG}test:\n- image: app\n  context: app\n  custom:\n  - command: test ! -f broken || (echo broken on purpose; exit 1)\n"
    )
    .replace(
        "deploy:\n  docker:\n    images: []\n",
        &format!(
            "deploy:\n  docker:\n    images: []\n  kubectl:\n    hooks:\n      before:\n      - host:\n          command: [sh, -c, 'echo before $SKAFFOLD_RUN_ID >> {0}']\n      after:\n      - host:\n          command: [sh, -c, 'echo after >> {0}']\n",
            log.display()
        ),
    );
    std::fs::write(root.join("skaffold.yaml"), config).unwrap();
    let mut options = options(&root);
    let env = BTreeMap::from([("PATH".to_owned(), std::env::var("PATH").unwrap())]);
    options.render.build.env = env.clone();
    options.deploy.env = env;
    let loaded = skiff_config::load(options.reload.as_ref().unwrap()).unwrap();
    let builder = Arc::new(CountingBuilder::default());
    let deployer = FakeDeployer::default();
    let reporter = Arc::new(CollectingReporter::default());
    let dev = DevLoop::new(&loaded.configs, options, reporter.clone())
        .unwrap()
        .with_build_stage(BuildStage::new().with_builder("app", builder.clone()))
        .with_deployer(Box::new(deployer.clone()));
    let (changes, rx) = mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(dev.dev(Box::new(ChannelWatcher(rx)), async move {
        let _ = stopped.await;
    }));
    wait_iterations(&reporter, 1).await;
    assert_eq!(
        *deployer.deployed.lock().unwrap(),
        [vec!["app:v1".to_owned()]]
    );

    std::fs::write(root.join("app/broken"), "").unwrap();
    changes.send(changed(root.join("app/main.c"))).unwrap();
    wait_iterations(&reporter, 2).await;
    let (_, error) = finished(&reporter).last().cloned().unwrap();
    let error = error.unwrap();
    assert!(error.contains("test of app failed"), "{error}");
    assert_eq!(
        builder.builds.load(Ordering::SeqCst),
        2,
        "built, then tested"
    );
    assert_eq!(
        deployer.deployed.lock().unwrap().len(),
        1,
        "nothing deployed"
    );

    std::fs::remove_file(root.join("app/broken")).unwrap();
    changes.send(changed(root.join("app/main.c"))).unwrap();
    wait_iterations(&reporter, 3).await;
    assert_eq!(
        deployer.deployed.lock().unwrap().last().unwrap(),
        &["app:v3".to_owned()]
    );
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    let hooks = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = hooks.lines().collect();
    assert_eq!(lines.len(), 4, "{hooks}");
    assert_eq!(
        lines,
        ["before test-run", "after", "before test-run", "after"]
    );
}

#[tokio::test]
async fn a_test_dependency_change_reruns_only_the_tests() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::create_dir_all(root.join("k8s")).unwrap();
    std::fs::create_dir_all(root.join("checks")).unwrap();
    std::fs::write(root.join("app/main.c"), "int main(){}\n").unwrap();
    std::fs::write(root.join("k8s/pod.yaml"), POD).unwrap();
    std::fs::write(root.join("checks/expect.txt"), "ok\n").unwrap();
    let runs = root.join("runs.log");
    let config = format!(
        "{CONFIG}test:\n- image: app\n  custom:\n  - command: echo \"$IMAGE\" >> {}; grep -q ok checks/expect.txt\n    dependencies:\n      paths: [checks]\n      ignore: ['**/*.md']\n",
        runs.display()
    );
    std::fs::write(root.join("skaffold.yaml"), config).unwrap();
    let mut options = options(&root);
    let env = BTreeMap::from([("PATH".to_owned(), std::env::var("PATH").unwrap())]);
    options.render.build.env = env.clone();
    options.deploy.env = env;
    let loaded = skiff_config::load(options.reload.as_ref().unwrap()).unwrap();
    let builder = Arc::new(CountingBuilder::default());
    let deployer = FakeDeployer::default();
    let reporter = Arc::new(CollectingReporter::default());
    let dev = DevLoop::new(&loaded.configs, options, reporter.clone())
        .unwrap()
        .with_build_stage(BuildStage::new().with_builder("app", builder.clone()))
        .with_deployer(Box::new(deployer.clone()));
    let roots = dev.watch_roots();
    assert!(
        roots.contains(&root),
        "the test context is watched: {roots:?}"
    );
    let (changes, rx) = mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(dev.dev(Box::new(ChannelWatcher(rx)), async move {
        let _ = stopped.await;
    }));
    wait_iterations(&reporter, 1).await;

    // The test's dependency changes to something that fails: the tests run again on the
    // deployed image, fail, and nothing is built or deployed.
    std::fs::write(root.join("checks/expect.txt"), "not good\n").unwrap();
    changes
        .send(changed(root.join("checks/expect.txt")))
        .unwrap();
    wait_iterations(&reporter, 2).await;
    let (summary, error) = finished(&reporter).last().cloned().unwrap();
    assert!(summary.contains("tests of app failed"), "{summary}");
    assert!(error.unwrap().contains("test of app failed"));
    // Fixed: they pass.
    std::fs::write(root.join("checks/expect.txt"), "ok again\n").unwrap();
    changes
        .send(changed(root.join("checks/expect.txt")))
        .unwrap();
    wait_iterations(&reporter, 3).await;
    let (summary, error) = finished(&reporter).last().cloned().unwrap();
    assert!(summary.contains("tests of app passed"), "{summary}");
    assert_eq!(error, None);
    // An ignored file under the dependencies does nothing.
    changes.send(changed(root.join("checks/NOTES.md"))).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(finished(&reporter).len(), 3);

    assert_eq!(builder.builds.load(Ordering::SeqCst), 1, "never rebuilt");
    assert_eq!(
        deployer.deployed.lock().unwrap().len(),
        1,
        "never redeployed"
    );
    let tested = std::fs::read_to_string(&runs).unwrap();
    assert_eq!(tested.lines().collect::<Vec<_>>(), ["app:v1"; 3]);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}
