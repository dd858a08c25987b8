//! Sync settings from a `skaffold.yaml` and the sync-or-rebuild decisions of the runner's sync
//! stage: manual rules with `strip` and a relative `dest`, `infer` from the Dockerfile (map
//! refreshed when it changes or a new file appears), `sync: {}`, an artifact required by
//! another, and changes outside the rules.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use skiff_runner::sync::{SyncStage, sync_settings};
use skiff_sync::rules::{Decision, ManualRule, SyncHook};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The fixture, copied to a temporary directory (tests write into it), and its configs.
fn fixture() -> (
    tempfile::TempDir,
    PathBuf,
    Vec<skiff_config::EffectiveConfig>,
) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sync"),
        &root,
    );
    let loaded = skiff_config::load(&skiff_config::LoadOptions {
        config_file: None,
        working_dir: root.clone(),
        profiles: Vec::new(),
        modules: Vec::new(),
        kube_context: None,
        command: "dev".into(),
        env: BTreeMap::new(),
    })
    .unwrap();
    (dir, root, loaded.configs)
}

fn sync_dests(decision: Decision) -> Vec<String> {
    match decision {
        Decision::Sync(plan) => plan
            .copy
            .iter()
            .map(|c| c.destination.clone())
            .chain(plan.delete.iter().map(|d| format!("rm {}", d.destination)))
            .collect(),
        Decision::Rebuild { reason } => panic!("expected a sync, got a rebuild: {reason}"),
    }
}

fn rebuild_reason(decision: Decision) -> String {
    match decision {
        Decision::Rebuild { reason } => reason,
        Decision::Sync(plan) => panic!("expected a rebuild, got {plan:?}"),
    }
}

#[test]
fn settings_come_from_the_artifacts_sync_sections() {
    let (_dir, root, configs) = fixture();
    let settings = sync_settings(&configs).unwrap();
    let images: Vec<&str> = settings
        .artifacts
        .iter()
        .map(|a| a.image.as_str())
        .collect();
    assert_eq!(
        images,
        ["manual-app", "infer-app", "base"],
        "`unsynced` has no sync"
    );

    let manual = settings.artifact("manual-app").unwrap();
    assert_eq!(manual.context, root.join("manual"));
    assert_eq!(
        manual.rules.manual[0],
        ManualRule {
            src: "www/**".into(),
            dest: "srv".into(),
            strip: Some("www/".into()),
        }
    );
    assert!(manual.rules.infer.is_none());
    assert_eq!(
        manual.rules.hooks.after,
        [
            SyncHook::Container {
                command: vec!["kill".into(), "-HUP".into(), "1".into()],
            },
            SyncHook::Host(skiff_hooks::HostHook {
                command: vec!["sh".into(), "-c".into(), "echo synced".into()],
                os: vec!["linux".into()],
                dir: None,
            }),
        ]
    );

    let infer = settings.artifact("infer-app").unwrap();
    assert_eq!(infer.rules.infer.as_ref().unwrap().globs, ["static/**"]);
    let source = infer.infer_from.as_ref().unwrap();
    assert_eq!(source.dockerfile, "Dockerfile");
    assert_eq!(
        source.build_args.get("BASE"),
        Some(&Some("base".to_owned()))
    );

    let base = settings.artifact("base").unwrap();
    assert_eq!(
        base.rules.infer.as_ref().unwrap().globs,
        ["**/*"],
        "sync: {{}} infers all"
    );
    assert_eq!(base.required_by, ["infer-app"]);
}

#[test]
fn manual_rules_with_strip_and_relative_dest() {
    let (_dir, root, configs) = fixture();
    let stage = SyncStage::new(sync_settings(&configs).unwrap(), "run-1");
    let context = root.join("manual");
    assert_eq!(
        sync_dests(stage.plan(
            "manual-app",
            &[context.join("www/css/site.css"), context.join("app.conf")],
            &[context.join("www/index.html")],
        )),
        ["srv/css/site.css", "/etc/app/app.conf", "rm srv/index.html"]
    );
    // The plan carries the hooks.
    let Decision::Sync(plan) = stage.plan("manual-app", &[context.join("app.conf")], &[]) else {
        panic!("expected a sync");
    };
    assert_eq!(plan.hooks.after.len(), 2);
    assert_eq!(plan.context, context);
}

#[test]
fn a_change_outside_the_rules_rebuilds_naming_the_file() {
    let (_dir, root, configs) = fixture();
    let stage = SyncStage::new(sync_settings(&configs).unwrap(), "run-1");
    let context = root.join("manual");
    assert_eq!(
        rebuild_reason(stage.plan(
            "manual-app",
            &[context.join("www/index.html"), context.join("main.c")],
            &[],
        )),
        "main.c matches no sync rule"
    );
    assert_eq!(
        rebuild_reason(stage.plan("manual-app", &[], &[context.join("main.c")])),
        "main.c was deleted and matches no sync rule"
    );
    assert_eq!(
        rebuild_reason(stage.plan("unsynced", &[root.join("base/base.txt")], &[])),
        "unsynced has no sync rules"
    );
    assert!(!stage.has_rules("unsynced"));
}

#[test]
fn infer_follows_the_dockerfile() {
    let (_dir, root, configs) = fixture();
    let stage = SyncStage::new(sync_settings(&configs).unwrap(), "run-1");
    let context = root.join("infer");
    assert_eq!(
        sync_dests(stage.plan("infer-app", &[context.join("static/index.html")], &[])),
        ["/app/static/index.html"]
    );
    // Copied by the Dockerfile, but not matched by `infer`.
    assert_eq!(
        rebuild_reason(stage.plan("infer-app", &[context.join("main.c")], &[])),
        "main.c matches no sync rule"
    );
    // Inferred deletions rebuild.
    assert_eq!(
        rebuild_reason(stage.plan("infer-app", &[], &[context.join("static/index.html")])),
        "static/index.html was deleted; sync.infer rebuilds on deletions"
    );
    // A new file in a copied directory is found (the map is read again).
    std::fs::write(context.join("static/new.css"), "p {}").unwrap();
    assert_eq!(
        sync_dests(stage.plan("infer-app", &[context.join("static/new.css")], &[])),
        ["/app/static/new.css"]
    );
    // The Dockerfile changes: that change rebuilds, and later syncs use the new map.
    std::fs::write(
        context.join("Dockerfile"),
        "ARG BASE\nFROM $BASE\nCOPY static /srv/static\n",
    )
    .unwrap();
    assert_eq!(
        rebuild_reason(stage.plan("infer-app", &[context.join("Dockerfile")], &[])),
        "Dockerfile matches no sync rule"
    );
    assert_eq!(
        sync_dests(stage.plan("infer-app", &[context.join("static/index.html")], &[])),
        ["/srv/static/index.html"]
    );
}

#[test]
fn an_artifact_required_by_another_is_rebuilt() {
    let (_dir, root, configs) = fixture();
    let stage = SyncStage::new(sync_settings(&configs).unwrap(), "run-1");
    assert_eq!(
        rebuild_reason(stage.plan("base", &[root.join("base/base.txt")], &[])),
        "base is required by infer-app, so it is rebuilt rather than synced"
    );
}

/// Whether `docker` and `gcc` work; else skip (or fail when `CI=true`).
#[allow(clippy::print_stderr)]
fn engine_available(test: &str) -> bool {
    let docker = std::process::Command::new("docker")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    let gcc = std::process::Command::new("gcc")
        .arg("--version")
        .output()
        .is_ok();
    if docker && gcc {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: CI=true requires a Docker engine and gcc (`scripts/devenv/up docker`)"
    );
    eprintln!("skipping {test}: no Docker engine or gcc");
    false
}

fn run(command: &mut std::process::Command) -> String {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{command:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Removes the image on drop (`--no-prune`: parent layers are shared).
struct RemoveImage(String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f", "--no-prune", &self.0])
            .output();
    }
}

#[tokio::test]
async fn syncs_through_the_docker_deploy_session_and_warns_once_about_rm() {
    use skiff_runner::deploy::{DeployRunOptions, DeploySession, DeploySettings};
    use skiff_runner::sync::SyncOutcome;
    use skiff_types::event::{CollectingReporter, Event, Level};
    use skiff_types::image::BuiltImage;
    use skiff_types::manifest::ManifestSet;

    if !engine_available("syncs_through_the_docker_deploy_session_and_warns_once_about_rm") {
        return;
    }
    let (_dir, root, configs) = fixture();
    // A `FROM scratch` image of the manual-app artifact: a static sleeper and its files.
    let context = root.join("manual");
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(
        scratch.path().join("sleep.c"),
        "#include <unistd.h>\nint main(void) { for (;;) pause(); }\n",
    )
    .unwrap();
    run(std::process::Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(scratch.path().join("sleep"))
        .arg(scratch.path().join("sleep.c")));
    copy_dir(&context.join("www"), &scratch.path().join("www"));
    std::fs::write(
        scratch.path().join("Dockerfile"),
        "FROM scratch\nWORKDIR /app\nCOPY www srv\nCOPY sleep /sleep\nENTRYPOINT [\"/sleep\"]\n",
    )
    .unwrap();
    let unique = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            ^ u128::from(std::process::id())
    );
    let reference = format!("skiff-runner-sync-test:{unique}");
    let _image = RemoveImage(reference.clone());
    run(std::process::Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", &reference])
        .arg(scratch.path()));

    let run_id = format!("sync-{unique}");
    let session = DeploySession::connect(
        DeploySettings {
            kubernetes: false,
            docker_images: vec!["manual-app".into()],
            use_compose: false,
            docker_ports: Vec::new(),
            status_check: false,
            deadline: std::time::Duration::from_secs(30),
            tolerate_failures: false,
            kubectl_flags: Vec::new(),
            hooks: Default::default(),
        },
        DeployRunOptions {
            run_id: run_id.clone(),
            docker_host: std::env::var("DOCKER_HOST").ok(),
            ..DeployRunOptions::default()
        },
    )
    .await
    .unwrap();
    let reporter = CollectingReporter::default();
    let built = BuiltImage {
        image_name: "manual-app".into(),
        reference: reference.parse().unwrap(),
        image_id: None,
    };
    let result = async {
        session
            .deploy(&ManifestSet::default(), &[built], &reporter)
            .await
            .unwrap();
        let container = session.docker().unwrap().containers().await[0].id.clone();

        let stage = SyncStage::new(sync_settings(&configs).unwrap(), run_id.clone());
        std::fs::write(context.join("www/index.html"), "synced").unwrap();
        let Decision::Sync(plan) = stage.plan("manual-app", &[context.join("www/index.html")], &[])
        else {
            panic!("expected a sync");
        };
        // Only the copy: the fixture's hooks need a shell in the container.
        let plan = skiff_sync::SyncPlan {
            hooks: Default::default(),
            ..plan
        };
        let outcome = stage
            .sync(&session, "manual-app", &reference, &plan, &reporter)
            .await
            .unwrap();
        let SyncOutcome::Synced(report) = outcome else {
            panic!("expected a sync, got {outcome:?}");
        };
        assert_eq!(report.containers.len(), 1);
        let out = scratch.path().join("out");
        run(std::process::Command::new("docker")
            .args(["cp", &format!("{container}:/app/srv/index.html")])
            .arg(&out));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "synced");
        assert_eq!(
            session.docker().unwrap().containers().await[0].id,
            container
        );

        // No `rm` in a scratch image: a deletion rebuilds, with one warning.
        let Decision::Sync(delete) =
            stage.plan("manual-app", &[], &[context.join("www/css/site.css")])
        else {
            panic!("expected a sync");
        };
        let outcome = stage
            .sync(&session, "manual-app", &reference, &delete, &reporter)
            .await
            .unwrap();
        assert!(
            matches!(&outcome, SyncOutcome::Rebuild { reason } if reason.contains("has no `rm`")),
            "{outcome:?}"
        );
        let again = stage.plan("manual-app", &[], &[context.join("www/css/site.css")]);
        assert!(matches!(again, Decision::Rebuild { reason } if reason.contains("has no `rm`")));
        // Copies still sync.
        assert!(matches!(
            stage.plan("manual-app", &[context.join("www/index.html")], &[]),
            Decision::Sync(_)
        ));
        let warnings = reporter
            .events()
            .into_iter()
            .filter(|e| matches!(e, Event::Message { level: Level::Warning, text, .. } if text.contains("has no `rm`")))
            .count();
        assert_eq!(warnings, 1);
    };
    // Clean up also when an assertion fails.
    let outcome = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(result)).await;
    session.cleanup(&reporter).await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
