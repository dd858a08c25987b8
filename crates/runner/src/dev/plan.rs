//! What a change calls for, decided without I/O: which artifacts a changed file feeds (from
//! their known dependency files), whether their sync rules cover it, whether manifests or the
//! configuration changed — and how plans accumulate into the work owed until the phases that
//! carry it out may run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use skiff_build::ArtifactSpec;
use skiff_render::ManifestInputs;
use skiff_types::change::ChangeSet;
use skiff_types::event::Level;

use crate::test::TestWatch;

/// What a change calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Plan {
    /// Reload the configuration and start over.
    Reload,
    /// Sync these artifacts' changed files into their containers, rebuild those (and their
    /// dependents), then render and deploy when anything was rebuilt.
    Update {
        /// Artifact image → its changed files, when its sync rules cover all of them. The
        /// files are synced when the sync phase runs, which decides again on everything owed
        /// by then (later changes may no longer be syncable).
        sync: BTreeMap<String, ChangedFiles>,
        /// Artifacts to rebuild, with the files that changed for each.
        rebuild: BTreeMap<String, ChangedFiles>,
    },
    /// Render and deploy without building.
    Redeploy,
    /// Run these artifacts' tests again on their current images: only test dependencies
    /// changed.
    Retest(BTreeSet<String>),
    /// Nothing the loop cares about changed.
    Nothing,
}

/// The changed and deleted files of one artifact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ChangedFiles {
    pub changed: BTreeSet<PathBuf>,
    pub deleted: BTreeSet<PathBuf>,
}

impl ChangedFiles {
    /// `later` on top of these: a file deleted then written again is changed, and the other
    /// way round deleted.
    pub fn merge(&mut self, later: ChangedFiles) {
        for path in later.changed {
            self.deleted.remove(&path);
            self.changed.insert(path);
        }
        for path in later.deleted {
            self.changed.remove(&path);
            self.deleted.insert(path);
        }
    }

    pub fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        self.changed.iter().chain(&self.deleted)
    }
}

/// Whether an artifact's sync rules cover its changed files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SyncVerdict {
    /// The artifact has no sync rules.
    NoRules,
    /// The rules cover every file.
    Sync,
    /// The rules do not cover them, and why.
    Rebuild(String),
}

/// What the planner reads: the loaded project's inputs and what the loop knows of each
/// artifact's dependency files.
#[derive(Debug)]
pub(super) struct PlanInputs<'a> {
    /// Every config file (a change reloads the configuration).
    pub config_files: &'a BTreeSet<PathBuf>,
    /// Whether the loop can reload its configuration.
    pub can_reload: bool,
    pub artifacts: &'a [ArtifactSpec],
    /// Artifact image → its dependency files (`None`, or no entry: its whole context).
    pub dependencies: &'a BTreeMap<String, Option<BTreeSet<PathBuf>>>,
    pub manifests: &'a ManifestInputs,
    /// The test dependencies of each image with tests (none with `--skip-tests`).
    pub tests: &'a [TestWatch],
}

/// A plan, the changed paths that call for it, and what the loop should tell the user.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Planned {
    pub plan: Plan,
    pub relevant: Vec<PathBuf>,
    pub notes: Vec<(Level, String)>,
}

/// The artifacts whose dependency files should be listed again before planning `changes`: a
/// new file under an artifact's context that its known dependencies do not list may be a new
/// input (`COPY . .`).
pub(super) fn stale_dependencies(inputs: &PlanInputs<'_>, changes: &ChangeSet) -> Vec<usize> {
    let mut stale = Vec::new();
    for (index, artifact) in inputs.artifacts.iter().enumerate() {
        let Some(Some(files)) = inputs.dependencies.get(&artifact.image) else {
            continue;
        };
        if changes
            .modified
            .iter()
            .any(|path| path.starts_with(&artifact.context) && !files.contains(path))
        {
            stale.push(index);
        }
    }
    stale
}

/// What `changes` call for. `sync` says whether an artifact's rules cover its changed files.
pub(super) fn plan(
    inputs: &PlanInputs<'_>,
    changes: &ChangeSet,
    sync: &dyn Fn(&str, &ChangedFiles) -> SyncVerdict,
) -> Planned {
    let mut notes = Vec::new();
    let paths: Vec<&PathBuf> = changes.modified.iter().chain(&changes.deleted).collect();
    let config: Vec<PathBuf> = paths
        .iter()
        .filter(|p| inputs.config_files.contains(**p))
        .map(|p| (*p).clone())
        .collect();
    if !config.is_empty() {
        if inputs.can_reload {
            return Planned {
                plan: Plan::Reload,
                relevant: config,
                notes,
            };
        }
        notes.push((
            Level::Warning,
            "the configuration changed; restart skiff to use it".into(),
        ));
    }
    let mut affected: BTreeMap<String, ChangedFiles> = BTreeMap::new();
    let mut relevant: Vec<PathBuf> = Vec::new();
    for path in &paths {
        for artifact in inputs.artifacts {
            if !path.starts_with(&artifact.context) {
                continue;
            }
            let hit = match inputs.dependencies.get(&artifact.image) {
                Some(Some(files)) => files.contains(*path),
                // A plugged-in builder, or not built yet: its whole context is input.
                Some(None) | None => true,
            };
            if !hit {
                continue;
            }
            let files = affected.entry(artifact.image.clone()).or_default();
            if changes.deleted.contains(*path) {
                files.deleted.insert((*path).clone());
            } else {
                files.changed.insert((*path).clone());
            }
            if relevant.last() != Some(*path) {
                relevant.push((*path).clone());
            }
        }
    }
    if !affected.is_empty() {
        let mut synced = BTreeMap::new();
        let mut rebuild = BTreeMap::new();
        for (image, files) in affected {
            match sync(&image, &files) {
                SyncVerdict::NoRules => {
                    rebuild.insert(image, files);
                }
                SyncVerdict::Sync => {
                    synced.insert(image, files);
                }
                SyncVerdict::Rebuild(reason) => {
                    notes.push((Level::Info, format!("rebuilding {image}: {reason}")));
                    rebuild.insert(image, files);
                }
            }
        }
        return Planned {
            plan: Plan::Update {
                sync: synced,
                rebuild,
            },
            relevant,
            notes,
        };
    }
    let manifests: Vec<PathBuf> = paths
        .iter()
        .filter(|p| inputs.manifests.matches(p))
        .map(|p| (*p).clone())
        .collect();
    if !manifests.is_empty() {
        return Planned {
            plan: Plan::Redeploy,
            relevant: manifests,
            notes,
        };
    }
    let mut retest = BTreeSet::new();
    let mut relevant = Vec::new();
    for path in &paths {
        for watch in inputs.tests.iter().filter(|w| w.matches(path)) {
            retest.insert(watch.image().to_owned());
            if relevant.last() != Some(*path) {
                relevant.push((*path).clone());
            }
        }
    }
    let plan = if retest.is_empty() {
        Plan::Nothing
    } else {
        Plan::Retest(retest)
    };
    Planned {
        plan,
        relevant,
        notes,
    }
}

/// Work the accumulated changes call for that has not run yet.
#[derive(Debug, Default)]
pub(super) struct Owed {
    /// Artifacts to rebuild.
    pub rebuild: BTreeSet<String>,
    /// The changed files of artifacts to rebuild, as far as known (what a warm rebuild
    /// replays; an artifact to rebuild without an entry builds clean).
    pub changes: BTreeMap<String, ChangedFiles>,
    /// Artifacts whose changed files are to be synced.
    pub sync: BTreeMap<String, ChangedFiles>,
    /// Render and deploy.
    pub redeploy: bool,
    /// The changed paths that call for it, for the iteration's trigger.
    pub paths: Vec<PathBuf>,
    /// Artifacts whose tests are to run again, and the changed paths that call for it
    /// (never one owed a rebuild: the build runs its tests).
    pub retest: BTreeSet<String>,
    pub retest_paths: Vec<PathBuf>,
}

impl Owed {
    pub fn add_paths(&mut self, paths: impl IntoIterator<Item = PathBuf>) {
        for path in paths {
            if !self.paths.contains(&path) {
                self.paths.push(path);
            }
        }
    }

    /// Adds what an update, a redeploy or a retest calls for (other plans owe nothing).
    pub fn absorb(&mut self, plan: Plan, relevant: Vec<PathBuf>) {
        match plan {
            Plan::Update { sync, rebuild } => {
                // A rebuild runs the tests anyway.
                for image in rebuild.keys() {
                    self.retest.remove(image);
                }
                for (image, files) in sync {
                    // An artifact already owed a rebuild gets these files with it.
                    if self.rebuild.contains(&image) {
                        self.changes.entry(image).or_default().merge(files);
                    } else {
                        self.sync.entry(image).or_default().merge(files);
                    }
                }
                for image in rebuild.keys() {
                    if let Some(files) = self.sync.remove(image) {
                        self.add_paths(files.paths().cloned().collect::<Vec<_>>());
                        self.changes.entry(image.clone()).or_default().merge(files);
                    }
                }
                if !rebuild.is_empty() {
                    for (image, files) in rebuild {
                        self.rebuild.insert(image.clone());
                        self.changes.entry(image).or_default().merge(files);
                    }
                    self.redeploy = true;
                    self.add_paths(relevant);
                }
            }
            Plan::Redeploy => {
                self.redeploy = true;
                self.add_paths(relevant);
            }
            Plan::Retest(images) => {
                self.retest
                    .extend(images.into_iter().filter(|i| !self.rebuild.contains(i)));
                for path in relevant {
                    if !self.retest_paths.contains(&path) {
                        self.retest_paths.push(path);
                    }
                }
            }
            Plan::Reload | Plan::Nothing => {}
        }
    }

    /// `image`'s files could not be synced: rebuild it instead.
    pub fn rebuild_instead(&mut self, image: String, files: ChangedFiles) {
        self.retest.remove(&image);
        self.rebuild.insert(image.clone());
        self.redeploy = true;
        self.add_paths(files.paths().cloned().collect::<Vec<_>>());
        self.changes.entry(image).or_default().merge(files);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use skiff_build::artifact::BuilderSpec;

    use super::*;

    fn artifact(image: &str, context: &str) -> ArtifactSpec {
        ArtifactSpec {
            image: image.into(),
            context: context.into(),
            builder: BuilderSpec::Unsupported {
                kind: "test".into(),
            },
            requires: Vec::new(),
            platforms: Vec::new(),
        }
    }

    fn files(changed: &[&str], deleted: &[&str]) -> ChangedFiles {
        ChangedFiles {
            changed: changed.iter().map(PathBuf::from).collect(),
            deleted: deleted.iter().map(PathBuf::from).collect(),
        }
    }

    fn change(modified: &[&str], deleted: &[&str]) -> ChangeSet {
        ChangeSet {
            modified: modified.iter().map(PathBuf::from).collect(),
            deleted: deleted.iter().map(PathBuf::from).collect(),
        }
    }

    struct Fixture {
        config_files: BTreeSet<PathBuf>,
        artifacts: Vec<ArtifactSpec>,
        dependencies: BTreeMap<String, Option<BTreeSet<PathBuf>>>,
        manifests: ManifestInputs,
        tests: Vec<TestWatch>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let mut dependencies = BTreeMap::new();
            dependencies.insert(
                "app".to_owned(),
                Some(BTreeSet::from([
                    PathBuf::from("/p/app/main.go"),
                    PathBuf::from("/p/app/www/index.html"),
                ])),
            );
            Fixture {
                config_files: BTreeSet::from([PathBuf::from("/p/skaffold.yaml")]),
                artifacts: vec![artifact("app", "/p/app"), artifact("web", "/p/web")],
                dependencies,
                manifests: ManifestInputs::of(&[]).unwrap(),
                tests: test_watches(),
            }
        }

        fn inputs(&self, can_reload: bool) -> PlanInputs<'_> {
            PlanInputs {
                config_files: &self.config_files,
                can_reload,
                artifacts: &self.artifacts,
                dependencies: &self.dependencies,
                manifests: &self.manifests,
                tests: &self.tests,
            }
        }
    }

    /// `app`'s tests depend on `/p/tests/**` except `*.md`, and on `/p/app/main.go`.
    fn test_watches() -> Vec<TestWatch> {
        use crate::test::{CustomTest, ImageTests, TestSettings};
        TestSettings {
            tests: vec![ImageTests {
                image: "app".into(),
                context: "/p".into(),
                custom: vec![CustomTest {
                    command: "true".into(),
                    timeout: None,
                    dependency_paths: vec!["tests".into(), "app/main.go".into()],
                    dependency_ignore: vec!["**/*.md".into()],
                }],
                structure_tests: Vec::new(),
                structure_tests_args: Vec::new(),
                base_dir: "/p".into(),
            }],
        }
        .watches()
        .unwrap()
    }

    #[test]
    fn a_test_dependency_alone_reruns_the_tests_and_a_rebuild_takes_them_over() {
        let fixture = Fixture::new();
        let planned = plan(
            &fixture.inputs(true),
            &change(&["/p/tests/api_test.sh", "/p/tests/README.md"], &[]),
            &www_syncs,
        );
        assert_eq!(
            planned.plan,
            Plan::Retest(BTreeSet::from(["app".to_owned()]))
        );
        assert_eq!(planned.relevant, [PathBuf::from("/p/tests/api_test.sh")]);
        assert_eq!(
            plan(
                &fixture.inputs(true),
                &change(&["/p/tests/README.md"], &[]),
                &www_syncs
            )
            .plan,
            Plan::Nothing
        );
        // A file that is both an input of the image and a test dependency: rebuilt (and so
        // tested).
        let planned = plan(
            &fixture.inputs(true),
            &change(&["/p/app/main.go"], &[]),
            &www_syncs,
        );
        assert!(matches!(planned.plan, Plan::Update { .. }));

        let mut owed = Owed::default();
        owed.absorb(
            Plan::Retest(BTreeSet::from(["app".to_owned()])),
            vec!["/p/tests/api_test.sh".into()],
        );
        assert!(owed.retest.contains("app"));
        assert!(!owed.redeploy);
        owed.absorb(planned.plan, planned.relevant);
        assert!(owed.retest.is_empty(), "the rebuild runs the tests");
        // Nor is a retest owed for an image already owed a rebuild, or rebuilt instead of synced.
        owed.absorb(
            Plan::Retest(BTreeSet::from(["app".to_owned()])),
            vec!["/p/tests/api_test.sh".into()],
        );
        assert!(owed.retest.is_empty());
        let mut owed = Owed::default();
        owed.absorb(
            Plan::Retest(BTreeSet::from(["web".to_owned()])),
            vec!["/p/tests/web_test.sh".into()],
        );
        owed.rebuild_instead("web".into(), files(&["/p/web/index.html"], &[]));
        assert!(owed.retest.is_empty());
    }

    fn www_syncs(image: &str, files: &ChangedFiles) -> SyncVerdict {
        if image != "app" {
            return SyncVerdict::NoRules;
        }
        match files.paths().all(|p| p.starts_with("/p/app/www")) {
            true => SyncVerdict::Sync,
            false => SyncVerdict::Rebuild("main.go is not covered by the sync rules".into()),
        }
    }

    #[test]
    fn a_config_change_reloads_or_is_noted() {
        let fixture = Fixture::new();
        let changes = change(&["/p/skaffold.yaml", "/p/app/main.go"], &[]);
        let planned = plan(&fixture.inputs(true), &changes, &www_syncs);
        assert_eq!(planned.plan, Plan::Reload);
        assert_eq!(planned.relevant, [PathBuf::from("/p/skaffold.yaml")]);
        let planned = plan(&fixture.inputs(false), &changes, &www_syncs);
        assert!(matches!(planned.plan, Plan::Update { .. }));
        assert_eq!(
            planned.notes[0],
            (
                Level::Warning,
                "the configuration changed; restart skiff to use it".to_owned()
            )
        );
    }

    #[test]
    fn files_go_to_the_artifacts_they_feed_synced_or_rebuilt() {
        let fixture = Fixture::new();
        let planned = plan(
            &fixture.inputs(true),
            &change(&["/p/app/www/index.html", "/p/web/x.css"], &[]),
            &www_syncs,
        );
        assert_eq!(
            planned.plan,
            Plan::Update {
                sync: BTreeMap::from([("app".into(), files(&["/p/app/www/index.html"], &[]))]),
                // Never built: its whole context is input.
                rebuild: BTreeMap::from([("web".into(), files(&["/p/web/x.css"], &[]))]),
            }
        );
        let planned = plan(
            &fixture.inputs(true),
            &change(&["/p/app/main.go"], &["/p/app/www/index.html"]),
            &www_syncs,
        );
        let Plan::Update { sync, rebuild } = planned.plan else {
            panic!("{:?}", planned.plan);
        };
        assert!(sync.is_empty());
        assert_eq!(
            rebuild["app"],
            files(&["/p/app/main.go"], &["/p/app/www/index.html"])
        );
        assert_eq!(
            planned.notes,
            [(
                Level::Info,
                "rebuilding app: main.go is not covered by the sync rules".to_owned()
            )]
        );
    }

    #[test]
    fn files_no_artifact_depends_on_change_nothing() {
        let fixture = Fixture::new();
        let changes = change(&["/p/app/README.md", "/p/other.txt"], &[]);
        let planned = plan(&fixture.inputs(true), &changes, &www_syncs);
        assert_eq!(planned.plan, Plan::Nothing);
        // The new file in app's context may be a new input: list app's dependencies again.
        assert_eq!(stale_dependencies(&fixture.inputs(true), &changes), [0]);
        assert!(
            stale_dependencies(&fixture.inputs(true), &change(&["/p/app/main.go"], &[])).is_empty()
        );
    }

    #[test]
    fn manifest_changes_redeploy() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("k8s")).unwrap();
        let source = skiff_render::Source::RawYaml(skiff_render::RawYamlSource {
            base_dir: dir.path().to_path_buf(),
            globs: vec!["k8s/*.yaml".into()],
            default_namespace: None,
            unmatched_is_warning: true,
        });
        let mut fixture = Fixture::new();
        fixture.manifests = ManifestInputs::of(&[source]).unwrap();
        let manifest = dir.path().join("k8s/app.yaml");
        let changes = ChangeSet {
            modified: BTreeSet::from([manifest.clone()]),
            ..ChangeSet::default()
        };
        let planned = plan(&fixture.inputs(true), &changes, &www_syncs);
        assert_eq!(planned.plan, Plan::Redeploy);
        assert_eq!(planned.relevant, [manifest]);
        assert!(Path::new(&planned.relevant[0]).ends_with("k8s/app.yaml"));
    }

    #[test]
    fn owed_work_accumulates_and_a_rebuild_takes_pending_syncs_along() {
        let mut owed = Owed::default();
        owed.absorb(
            Plan::Update {
                sync: BTreeMap::from([("app".into(), files(&["/p/app/www/a.html"], &[]))]),
                rebuild: BTreeMap::new(),
            },
            vec!["/p/app/www/a.html".into()],
        );
        assert_eq!(owed.sync.len(), 1);
        assert!(!owed.redeploy);
        owed.absorb(
            Plan::Update {
                sync: BTreeMap::new(),
                rebuild: BTreeMap::from([("app".into(), files(&["/p/app/main.go"], &[]))]),
            },
            vec!["/p/app/main.go".into()],
        );
        assert!(owed.sync.is_empty(), "the rebuild carries the synced file");
        assert_eq!(
            owed.changes["app"],
            files(&["/p/app/main.go", "/p/app/www/a.html"], &[])
        );
        assert!(owed.redeploy);
        // A later syncable change of an artifact owed a rebuild joins the rebuild.
        owed.absorb(
            Plan::Update {
                sync: BTreeMap::from([("app".into(), files(&[], &["/p/app/www/a.html"]))]),
                rebuild: BTreeMap::new(),
            },
            Vec::new(),
        );
        assert!(owed.sync.is_empty());
        assert_eq!(
            owed.changes["app"],
            files(&["/p/app/main.go"], &["/p/app/www/a.html"])
        );
        owed.rebuild_instead("web".into(), files(&["/p/web/x.css"], &[]));
        assert!(owed.rebuild.contains("web"));
        assert_eq!(owed.paths.len(), 3);
        owed.absorb(Plan::Redeploy, vec!["/p/k8s/app.yaml".into()]);
        assert_eq!(owed.paths.len(), 4);
    }
}
