//! `skiff diagnose -f tests/fixtures/seed/sync/skaffold.yaml` shows the image, the
//! dockerfile, the manifests and the sync rules.

use std::process::Command;

use skiff_e2e::{fixture, skiff_bin};

#[test]
fn diagnose_shows_the_sync_seed_config() {
    let file = fixture("seed/sync/skaffold.yaml");
    let output = Command::new(skiff_bin())
        .arg("diagnose")
        .arg("-f")
        .arg(&file)
        .env_remove("SKAFFOLD_PROFILE")
        .env_remove("SKAFFOLD_MODULE")
        .output()
        .unwrap_or_else(|error| panic!("cannot run skiff: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    for fact in [
        "artifact localhost:5000/go-webapp: docker, context ., dockerfile Dockerfile",
        "sync: internal/**/*.go → /app",
        "sync: cmd/**/*.go → /app",
        "manifests: rawYaml k8s/deployment.yaml",
        "- image: localhost:5000/go-webapp",
        "dockerfile: Dockerfile",
        "- src: internal/**/*.go",
        "- k8s/deployment.yaml",
    ] {
        assert!(stdout.contains(fact), "missing {fact:?} in:\n{stdout}");
    }
    // The one warning: the pre-v3 `deploy.kubectl.manifests` spelling.
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("manifests.rawYaml"), "{stderr}");
}
