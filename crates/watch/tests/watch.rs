//! The notify watcher against the real filesystem, in temporary directories.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use skiff_types::event::NullReporter;
use skiff_watch::{ChangeSet, IgnoreRules, NotifyWatcher, Trigger, WatchOptions, Watcher};

/// Generous: the machine running the tests may be loaded.
const ARRIVES_WITHIN: Duration = Duration::from_secs(5);

/// How long to wait to conclude that nothing (more) comes.
const NOTHING_WITHIN: Duration = Duration::from_millis(600);

/// A temp dir, canonicalized so that event paths compare equal.
fn temp_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().canonicalize().expect("canonicalize");
    (dir, path)
}

fn watcher(roots: Vec<PathBuf>, trigger: Trigger, ignore: IgnoreRules) -> NotifyWatcher {
    let options = WatchOptions {
        roots,
        quiet_period: Duration::from_millis(100),
        trigger,
        ignore,
    };
    NotifyWatcher::new(options, Arc::new(NullReporter)).expect("watcher")
}

fn watch_dir(root: &Path) -> NotifyWatcher {
    watcher(
        vec![root.to_path_buf()],
        Trigger::Notify,
        IgnoreRules::default(),
    )
}

async fn next(watcher: &mut NotifyWatcher) -> ChangeSet {
    tokio::time::timeout(ARRIVES_WITHIN, watcher.next_change())
        .await
        .expect("a change set within 5 s")
        .expect("no watch error")
}

async fn nothing(watcher: &mut NotifyWatcher) {
    if let Ok(changes) = tokio::time::timeout(NOTHING_WITHIN, watcher.next_change()).await {
        panic!("expected no change set, got {changes:?}");
    }
}

/// Collect change sets until one mentions `marker` (as modified); return them merged.
async fn until_modified(watcher: &mut NotifyWatcher, marker: &Path) -> ChangeSet {
    let mut all = ChangeSet::default();
    let deadline = tokio::time::Instant::now() + ARRIVES_WITHIN;
    while !all.modified.contains(marker) {
        let changes = tokio::time::timeout_at(deadline, watcher.next_change())
            .await
            .unwrap_or_else(|_| panic!("{} not seen within 5 s; got {all:?}", marker.display()))
            .expect("no watch error");
        all.merge(changes);
    }
    all
}

fn write(path: &Path, content: &str) {
    std::fs::write(path, content).expect("write");
}

#[tokio::test]
async fn one_write_one_change_set() {
    let (_guard, root) = temp_dir();
    let mut watcher = watch_dir(&root);
    let file = root.join("main.go");
    write(&file, "package main");
    let changes = next(&mut watcher).await;
    assert_eq!(changes.modified.iter().collect::<Vec<_>>(), [&file]);
    assert!(changes.deleted.is_empty());
    nothing(&mut watcher).await;
}

#[tokio::test]
async fn a_burst_is_one_change_set() {
    let (_guard, root) = temp_dir();
    std::fs::create_dir(root.join("a")).expect("mkdir");
    std::fs::create_dir(root.join("b")).expect("mkdir");
    let mut watcher = watch_dir(&root);
    let files: Vec<PathBuf> = (0..20)
        .map(|i| {
            root.join(if i % 2 == 0 { "a" } else { "b" })
                .join(format!("f{i}.txt"))
        })
        .collect();
    for file in &files {
        write(file, "x");
    }
    let changes = next(&mut watcher).await;
    assert_eq!(changes.modified.len(), 20, "{changes:?}");
    for file in &files {
        assert!(
            changes.modified.contains(file),
            "{} missing",
            file.display()
        );
    }
    nothing(&mut watcher).await;
}

#[tokio::test]
async fn writes_while_the_consumer_is_busy_are_kept() {
    let (_guard, root) = temp_dir();
    let mut watcher = watch_dir(&root);
    let first = root.join("first.txt");
    write(&first, "1");
    assert!(next(&mut watcher).await.modified.contains(&first));

    // The consumer is busy (an iteration runs): nobody calls next_change.
    let second = root.join("second.txt");
    write(&second, "2");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let changes = next(&mut watcher).await;
    assert_eq!(changes.modified.iter().collect::<Vec<_>>(), [&second]);
}

#[tokio::test]
async fn a_cancelled_wait_loses_nothing() {
    let (_guard, root) = temp_dir();
    let mut watcher = watch_dir(&root);
    let file = root.join("a.txt");
    write(&file, "1");
    // Give up on the wait right away (as a `select!` would), then ask again.
    let _ = tokio::time::timeout(Duration::from_millis(1), watcher.next_change()).await;
    assert!(next(&mut watcher).await.modified.contains(&file));
}

#[tokio::test]
async fn delete_is_reported_as_deleted() {
    let (_guard, root) = temp_dir();
    let file = root.join("old.txt");
    write(&file, "x");
    let mut watcher = watch_dir(&root);
    std::fs::remove_file(&file).expect("rm");
    let changes = next(&mut watcher).await;
    assert!(changes.deleted.contains(&file), "{changes:?}");
    assert!(changes.modified.is_empty(), "{changes:?}");
}

#[tokio::test]
async fn create_then_delete_in_one_burst_is_not_a_modification() {
    let (_guard, root) = temp_dir();
    let mut watcher = watch_dir(&root);
    let transient = root.join("transient.txt");
    let marker = root.join("marker.txt");
    write(&transient, "x");
    write(&marker, "x");
    std::fs::remove_file(&transient).expect("rm");
    let changes = until_modified(&mut watcher, &marker).await;
    assert!(!changes.modified.contains(&transient), "{changes:?}");
}

#[tokio::test]
async fn rename_is_a_deletion_and_a_write() {
    let (_guard, root) = temp_dir();
    let from = root.join("from.txt");
    write(&from, "x");
    let mut watcher = watch_dir(&root);
    let to = root.join("to.txt");
    std::fs::rename(&from, &to).expect("mv");
    let changes = until_modified(&mut watcher, &to).await;
    assert!(changes.deleted.contains(&from), "{changes:?}");
    assert!(!changes.modified.contains(&from), "{changes:?}");
}

#[tokio::test]
async fn a_vim_style_save_is_one_modification() {
    let (_guard, root) = temp_dir();
    let file = root.join("app.py");
    write(&file, "old");
    let mut watcher = watch_dir(&root);
    // What vim does with `backupcopy=no`: probe, back up by renaming, write anew, drop the backup.
    write(&root.join("4913"), "");
    std::fs::remove_file(root.join("4913")).expect("rm");
    write(&root.join(".app.py.swp"), "swap");
    std::fs::rename(&file, root.join("app.py~")).expect("mv");
    write(&file, "new");
    std::fs::remove_file(root.join("app.py~")).expect("rm");
    let changes = next(&mut watcher).await;
    assert_eq!(changes.modified.iter().collect::<Vec<_>>(), [&file]);
    assert!(changes.deleted.is_empty(), "{changes:?}");
}

#[tokio::test]
async fn a_new_directory_is_watched() {
    let (_guard, root) = temp_dir();
    let mut watcher = watch_dir(&root);
    let dir = root.join("pkg").join("deep");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let first = dir.join("a.go");
    write(&first, "x");
    let changes = until_modified(&mut watcher, &first).await;
    assert!(
        !changes.modified.contains(&dir),
        "directories are not files: {changes:?}"
    );

    // Later writes in the new directory arrive through its own watch.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = dir.join("b.go");
    write(&second, "y");
    until_modified(&mut watcher, &second).await;
}

#[tokio::test]
async fn git_and_editor_temp_files_are_ignored() {
    let (_guard, root) = temp_dir();
    std::fs::create_dir_all(root.join(".git").join("refs")).expect("mkdir");
    std::fs::create_dir(root.join(".skiff-cache")).expect("mkdir");
    let ignore = IgnoreRules {
        extra_dirs: vec![".skiff-cache".into()],
        ..IgnoreRules::default()
    };
    let mut watcher = watcher(vec![root.clone()], Trigger::Notify, ignore);
    let ignored = [
        root.join(".git").join("HEAD"),
        root.join(".git").join("refs").join("main"),
        root.join(".a.swp"),
        root.join("a~"),
        root.join("4913"),
        root.join(".#a.rs"),
        root.join("#a.rs#"),
        root.join(".skiff-cache").join("entry"),
    ];
    for path in &ignored {
        write(path, "x");
    }
    // Nothing at all for ignored paths only.
    nothing(&mut watcher).await;

    let marker = root.join("a.rs");
    write(&marker, "x");
    let changes = until_modified(&mut watcher, &marker).await;
    for path in &ignored {
        assert!(
            !changes.modified.contains(path),
            "{} not ignored",
            path.display()
        );
    }
}

#[tokio::test]
async fn an_exclude_predicate_hides_a_path() {
    let (_guard, root) = temp_dir();
    let context = root.clone();
    let ignore = IgnoreRules {
        exclude: vec![Arc::new(move |path: &Path| {
            path.strip_prefix(&context)
                .is_ok_and(|relative| relative.starts_with("node_modules"))
        })],
        ..IgnoreRules::default()
    };
    std::fs::create_dir(root.join("node_modules")).expect("mkdir");
    let mut watcher = watcher(vec![root.clone()], Trigger::Notify, ignore);
    let hidden = root.join("node_modules").join("lib.js");
    let marker = root.join("index.js");
    write(&hidden, "x");
    write(&marker, "x");
    let changes = until_modified(&mut watcher, &marker).await;
    assert!(!changes.modified.contains(&hidden), "{changes:?}");
}

#[tokio::test]
async fn a_file_root_sees_only_itself() {
    let (_guard, root) = temp_dir();
    let config = root.join("skaffold.yaml");
    let sibling = root.join("README.md");
    write(&config, "apiVersion: skaffold/v4beta11");
    let mut watcher = watcher(
        vec![config.clone()],
        Trigger::Notify,
        IgnoreRules::default(),
    );

    write(&sibling, "x");
    nothing(&mut watcher).await;

    write(&config, "apiVersion: skaffold/v4beta12");
    let changes = next(&mut watcher).await;
    assert_eq!(changes.modified.iter().collect::<Vec<_>>(), [&config]);

    // Replaced by rename (as editors save): still seen.
    let temp = root.join("skaffold.yaml.new");
    write(&temp, "apiVersion: skaffold/v4beta13");
    std::fs::rename(&temp, &config).expect("mv");
    let changes = next(&mut watcher).await;
    assert_eq!(changes.modified.iter().collect::<Vec<_>>(), [&config]);
}

#[tokio::test]
async fn file_and_directory_roots_together() {
    let (_guard, root) = temp_dir();
    let app = root.join("app");
    std::fs::create_dir(&app).expect("mkdir");
    let config = root.join("skaffold.yaml");
    write(&config, "a");
    let mut watcher = watcher(
        vec![app.clone(), config.clone()],
        Trigger::Notify,
        IgnoreRules::default(),
    );
    write(&root.join("unrelated.txt"), "x");
    let source = app.join("main.go");
    write(&source, "x");
    write(&config, "b");
    let changes = until_modified(&mut watcher, &source).await;
    let changes = if changes.modified.contains(&config) {
        changes
    } else {
        let mut all = changes;
        all.merge(until_modified(&mut watcher, &config).await);
        all
    };
    assert_eq!(changes.modified.len(), 2, "{changes:?}");
}

#[tokio::test]
async fn a_missing_root_is_an_error() {
    let (_guard, root) = temp_dir();
    let options = WatchOptions {
        roots: vec![root.join("absent")],
        ..WatchOptions::default()
    };
    let err = NotifyWatcher::new(options, Arc::new(NullReporter)).expect_err("missing root");
    assert!(err.to_string().contains("absent"), "{err}");
}

#[tokio::test]
async fn polling_detects_a_change() {
    let (_guard, root) = temp_dir();
    let existing = root.join("existing.txt");
    write(&existing, "old");
    let mut watcher = watcher(
        vec![root.clone()],
        Trigger::Polling(Duration::from_millis(100)),
        IgnoreRules::default(),
    );
    assert!(watcher.is_polling());
    let file = root.join("new.txt");
    write(&file, "x");
    until_modified(&mut watcher, &file).await;

    std::fs::remove_file(&existing).expect("rm");
    let mut changes = next(&mut watcher).await;
    while !changes.deleted.contains(&existing) {
        changes.merge(next(&mut watcher).await);
    }
}

#[tokio::test]
async fn manual_trigger_hands_over_only_when_fired() {
    let (_guard, root) = temp_dir();
    let mut watcher = watcher(vec![root.clone()], Trigger::Manual, IgnoreRules::default());
    let trigger = watcher.manual_trigger();

    let file = root.join("a.txt");
    write(&file, "x");
    nothing(&mut watcher).await;
    nothing(&mut watcher).await;

    trigger.clone().fire();
    let changes = next(&mut watcher).await;
    assert_eq!(changes.modified.iter().collect::<Vec<_>>(), [&file]);

    // Fired with nothing new: an empty change set.
    trigger.fire();
    assert!(next(&mut watcher).await.is_empty());
    nothing(&mut watcher).await;
}

#[tokio::test]
async fn manual_trigger_fired_from_another_task() {
    let (_guard, root) = temp_dir();
    let mut watcher = watcher(vec![root.clone()], Trigger::Manual, IgnoreRules::default());
    let trigger = watcher.manual_trigger();
    let file = root.join("a.txt");
    write(&file, "x");
    let firing = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.fire();
    });
    let changes = next(&mut watcher).await;
    assert!(changes.modified.contains(&file), "{changes:?}");
    firing.await.expect("task");
}

#[tokio::test]
async fn the_trait_is_object_safe() {
    let (_guard, root) = temp_dir();
    let mut watcher: Box<dyn Watcher> = Box::new(watch_dir(&root));
    let file = root.join("x");
    write(&file, "x");
    let changes = tokio::time::timeout(ARRIVES_WITHIN, watcher.next_change())
        .await
        .expect("in time")
        .expect("changes");
    assert!(changes.modified.contains(&file));
}

#[tokio::test]
async fn set_roots_switches_the_watched_trees_and_ignores() {
    let (_a_dir, a) = temp_dir();
    let (_b_dir, b) = temp_dir();
    let mut watcher = watch_dir(&a);
    write(&a.join("one.txt"), "1");
    assert!(
        next(&mut watcher)
            .await
            .modified
            .contains(&a.join("one.txt"))
    );

    let ignore = IgnoreRules {
        exclude: vec![Arc::new(|p: &Path| p.ends_with("skip.txt"))],
        ..IgnoreRules::default()
    };
    Watcher::set_roots(&mut watcher, vec![b.clone()], ignore).expect("new roots");
    write(&a.join("old-root.txt"), "x");
    write(&b.join("skip.txt"), "x");
    nothing(&mut watcher).await;
    write(&b.join("two.txt"), "2");
    let changes = next(&mut watcher).await;
    assert_eq!(
        changes.modified.iter().collect::<Vec<_>>(),
        [&b.join("two.txt")],
        "{changes:?}"
    );
    assert!(
        Watcher::set_roots(
            &mut watcher,
            vec![b.join("missing")],
            IgnoreRules::default()
        )
        .is_err()
    );
}

#[tokio::test]
async fn manual_mode_hands_over_only_when_fired_and_keeps_everything() {
    let (_dir, root) = temp_dir();
    let mut watcher = watcher(vec![root.clone()], Trigger::Manual, IgnoreRules::default());
    let trigger = Watcher::trigger_handle(&watcher).expect("a trigger handle");
    write(&root.join("a.txt"), "a");
    write(&root.join("b.txt"), "b");
    nothing(&mut watcher).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    trigger.fire();
    let changes = next(&mut watcher).await;
    assert!(
        changes.modified.contains(&root.join("a.txt")),
        "{changes:?}"
    );
    assert!(
        changes.modified.contains(&root.join("b.txt")),
        "{changes:?}"
    );
}
