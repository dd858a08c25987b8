//! The Docker transport against the real engine: sync into a `FROM scratch` container (no
//! shell, no tar), relative destinations, deletion and container hooks with busybox, and the
//! no-`rm` error.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

use std::path::{Path, PathBuf};

use skiff_sync::docker::DockerSyncer;
use skiff_sync::rules::{ManualRule, SyncHook, SyncRules};
use skiff_sync::{Decision, SyncError, SyncPlan, SyncTarget, Syncer, decide};
use skiff_types::event::{CollectingReporter, Event};
use support::*;

fn plan(context: &Path, rules: &SyncRules, changed: &[&str], deleted: &[&str]) -> SyncPlan {
    let paths =
        |files: &[&str]| -> Vec<PathBuf> { files.iter().map(|f| context.join(f)).collect() };
    match decide(context, rules, &paths(changed), &paths(deleted)) {
        Decision::Sync(plan) => plan,
        Decision::Rebuild { reason } => panic!("expected a sync: {reason}"),
    }
}

fn www_rule(dest: &str) -> SyncRules {
    SyncRules {
        manual: vec![ManualRule {
            src: "www/**".into(),
            dest: dest.into(),
            strip: Some("www/".into()),
        }],
        ..SyncRules::default()
    }
}

/// Runs `reference` as a container labelled with `run_id`; its ID.
fn start(reference: &str, run_id: &str, leftovers: &mut Leftovers) -> String {
    let name = format!("skiff-sync-test-{}", unique());
    leftovers.containers.push(name.clone());
    let output = run(docker().args([
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &format!("{RUN_ID_LABEL}={run_id}"),
        reference,
    ]));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn running_id(name_or_id: &str) -> String {
    let output = run(docker().args(["inspect", "-f", "{{.Id}} {{.State.Running}}", name_or_id]));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn target(reference: &str, run_id: &str) -> SyncTarget {
    SyncTarget {
        image: "sync-test".into(),
        reference: reference.into(),
        selector: format!("{RUN_ID_LABEL}={run_id}"),
        kube_context: None,
        env: std::collections::BTreeMap::new(),
    }
}

#[tokio::test]
async fn syncs_into_a_scratch_container_without_replacing_it() {
    if !engine_available("syncs_into_a_scratch_container_without_replacing_it") {
        return;
    }
    let id = unique();
    let reference = format!("skiff-sync-test-scratch:{id}");
    let mut leftovers = Leftovers::default();
    leftovers.images.push(reference.clone());
    build_scratch_image(&reference, "WORKDIR /app");
    let run_id = format!("sync-{id}");
    let container = start(&reference, &run_id, &mut leftovers);
    // Another container of the run on another image is left alone.
    let before = running_id(&container);

    let context = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(context.path().join("www/css")).unwrap();
    std::fs::write(context.path().join("www/msg.txt"), "new").unwrap();
    std::fs::write(context.path().join("www/css/site.css"), "body{}").unwrap();
    let mut rules = www_rule("/srv/www");
    rules.manual.push(ManualRule {
        src: "*.js".into(),
        dest: "js".into(),
        strip: None,
    });
    std::fs::write(context.path().join("app.js"), "console.log(1)").unwrap();
    let plan = plan(
        context.path(),
        &rules,
        &["www/msg.txt", "www/css/site.css", "app.js"],
        &[],
    );

    let syncer = DockerSyncer::connect(docker_host().as_deref())
        .await
        .unwrap();
    let reporter = CollectingReporter::default();
    let report = syncer
        .sync(&target(&reference, &run_id), &plan, &reporter)
        .await
        .unwrap();

    assert_eq!(report.containers.len(), 1);
    assert_eq!(report.containers[0].copied, 3);
    assert!(report.containers[0].bytes > 0);
    assert_eq!(
        read_in_container(&container, "/srv/www/msg.txt").as_deref(),
        Some("new")
    );
    assert_eq!(
        read_in_container(&container, "/srv/www/css/site.css").as_deref(),
        Some("body{}")
    );
    // Relative to the image's WORKDIR.
    assert_eq!(
        read_in_container(&container, "/app/js/app.js").as_deref(),
        Some("console.log(1)")
    );
    assert_eq!(
        running_id(&container),
        before,
        "the same container keeps running"
    );
    assert!(before.ends_with("true"));
    let synced = reporter
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::Synced {
                image,
                containers,
                copied,
                ..
            } => Some((image, containers, copied)),
            _ => None,
        })
        .expect("a Synced event");
    assert_eq!(synced.0, "sync-test");
    assert_eq!(synced.1.len(), 1);
    assert_eq!(synced.2, 3);

    // Deleting on a scratch image: no `rm`, so the runner must rebuild.
    let delete = self::plan(context.path(), &rules, &[], &["www/msg.txt"]);
    let error = syncer
        .sync(&target(&reference, &run_id), &delete, &reporter)
        .await
        .unwrap_err();
    assert!(matches!(error, SyncError::NoRm { .. }), "{error}");
    assert!(error.rebuild_instead());
}

#[tokio::test]
async fn deletes_and_runs_container_hooks_with_busybox() {
    if !engine_available("deletes_and_runs_container_hooks_with_busybox") {
        return;
    }
    let id = unique();
    let reference = format!("skiff-sync-test-busybox:{id}");
    let mut leftovers = Leftovers::default();
    leftovers.images.push(reference.clone());
    build_busybox_image(&reference);
    let run_id = format!("sync-{id}");
    let container = start(&reference, &run_id, &mut leftovers);

    let context = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(context.path().join("www")).unwrap();
    std::fs::write(context.path().join("www/extra.txt"), "extra").unwrap();
    let mut rules = www_rule("/srv/www");
    rules.hooks.after.push(SyncHook::Container {
        command: vec![
            "sh".into(),
            "-c".into(),
            "echo \"$SKAFFOLD_FILES_ADDED_OR_MODIFIED|$SKAFFOLD_FILES_DELETED\" > /srv/hooked"
                .into(),
        ],
    });
    let syncer = DockerSyncer::connect(docker_host().as_deref())
        .await
        .unwrap();
    let reporter = CollectingReporter::default();

    let copy = plan(context.path(), &rules, &["www/extra.txt"], &["www/msg.txt"]);
    let report = syncer
        .sync(&target(&reference, &run_id), &copy, &reporter)
        .await
        .unwrap();
    assert_eq!(report.containers[0].deleted, 1);
    assert_eq!(
        read_in_container(&container, "/srv/www/extra.txt").as_deref(),
        Some("extra")
    );
    assert_eq!(
        read_in_container(&container, "/srv/www/msg.txt"),
        None,
        "deleted"
    );
    let hooked = read_in_container(&container, "/srv/hooked").expect("the after hook ran");
    assert_eq!(
        hooked.trim(),
        format!(
            "{}|{}",
            context.path().join("www/extra.txt").display(),
            context.path().join("www/msg.txt").display()
        )
    );
}

#[tokio::test]
async fn no_running_container_is_reported() {
    if !engine_available("no_running_container_is_reported") {
        return;
    }
    let syncer = DockerSyncer::connect(docker_host().as_deref())
        .await
        .unwrap();
    let context = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(context.path().join("www")).unwrap();
    std::fs::write(context.path().join("www/a"), "a").unwrap();
    let plan = plan(context.path(), &www_rule("/srv"), &["www/a"], &[]);
    let error = syncer
        .sync(
            &target("skiff-sync-test-none:1", &format!("none-{}", unique())),
            &plan,
            &CollectingReporter::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, SyncError::NoContainer { .. }), "{error}");
}
