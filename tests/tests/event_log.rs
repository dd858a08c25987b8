//! `skiff dev --event-log FILE` with FILE inside a watched artifact context: skiff's own writes
//! to it must not count as changes (they did: every iteration's events started the next one, an
//! endless loop). Needs the Docker engine (`deploy.docker`); skipped without it unless
//! `CI=true`.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skiff_e2e::harness::docker_available;

#[test]
fn event_log_inside_the_context_does_not_trigger_iterations() {
    if !docker_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A custom artifact whose whole directory is its dependency, and whose build fails fast:
    // every iteration writes events, nothing else changes.
    std::fs::write(
        dir.path().join("build.sh"),
        "#!/bin/sh\necho broken >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(
        dir.path().join("build.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("skaffold.yaml"),
        "apiVersion: skaffold/v4beta11\nkind: Config\nbuild:\n  local:\n    push: false\n  artifacts:\n  - image: skiff-e2e-event-log/app\n    custom:\n      buildCommand: ./build.sh\n      dependencies:\n        paths: [\"**\"]\ndeploy:\n  docker:\n    images: [skiff-e2e-event-log/app]\n",
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut child = Command::new(skiff_e2e::skiff_bin())
        .args(["dev", "--event-log=events.jsonl"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env("XDG_CACHE_HOME", cache.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log = dir.path().join("events.jsonl");
    let iterations = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("\"type\":\"iterationFinished\"")
            .count()
    };
    // The first iteration (a failed build) ends…
    let deadline = Instant::now() + Duration::from_secs(60);
    while iterations() == 0 {
        assert!(Instant::now() < deadline, "no iteration finished");
        assert!(child.try_wait().unwrap().is_none(), "skiff exited early");
        std::thread::sleep(Duration::from_millis(100));
    }
    // …and with nothing changed, no other starts.
    std::thread::sleep(Duration::from_secs(5));
    let count = iterations();
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        count,
        1,
        "skiff's own event log started iterations:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}
