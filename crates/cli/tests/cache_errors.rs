//! `skiff build` when the artifact cache file cannot be written or read: a warning naming the
//! path, and the build still succeeds. Against the real Docker engine.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::Path;
use std::process::{Command, Output};

fn skiff(dir: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_skiff"));
    command.current_dir(dir).args(args).env("NO_COLOR", "1");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

fn engine_available() -> bool {
    let ok = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var("CI").as_deref() == Ok("true") {
        panic!("the Docker engine is required in CI (scripts/devenv/up docker)");
    }
    if !ok {
        eprintln!("skipping: no Docker engine");
    }
    ok
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("skiff-cli-cache-test/{name}-{}-{nanos}", std::process::id())
}

/// A `FROM scratch` project with one data file: cheap to build, nothing to pull.
fn project(dir: &Path, image: &str) {
    std::fs::write(dir.join("data.txt"), image).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY data.txt /data.txt\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("skaffold.yaml"),
        format!(
            "apiVersion: skaffold/v4\nkind: Config\nbuild:\n  local:\n    push: false\n  artifacts:\n  - image: {image}\n"
        ),
    )
    .unwrap();
}

fn remove_image(image: &str) {
    let _ = Command::new("sh")
        .args([
            "-c",
            &format!(
                "docker images -q {image} | xargs -r docker rmi -f --no-prune >/dev/null 2>&1"
            ),
        ])
        .status();
}

fn assert_built_with_warning(out: &Output, image: &str, path: &Path) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("Building [{image}]")),
        "{stdout}\n{stderr}"
    );
    let all = format!("{stdout}\n{stderr}");
    let warning = all
        .lines()
        .find(|l| l.contains("build cache") && l.contains(&path.display().to_string()))
        .unwrap_or_else(|| panic!("no warning naming {}:\n{all}", path.display()));
    assert!(
        warning.to_lowercase().contains("warn"),
        "not a warning: {warning}"
    );
}

/// `XDG_CACHE_HOME` names a regular file: `$XDG_CACHE_HOME/skiff/artifacts.json` can be
/// neither created nor written (`ENOTDIR`, also for root, unlike a read-only directory).
#[test]
fn unwritable_cache_file_is_a_warning_naming_it_and_the_build_succeeds() {
    if !engine_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = unique("unwritable");
    project(dir.path(), &image);
    let not_a_dir = dir.path().join("cache-home-is-a-file");
    std::fs::write(&not_a_dir, "not a directory").unwrap();
    let out = skiff(
        dir.path(),
        &["build"],
        &[("XDG_CACHE_HOME", not_a_dir.as_os_str())],
    );
    remove_image(&image);
    assert_built_with_warning(&out, &image, &not_a_dir.join("skiff/artifacts.json"));
    // The file that stood in the way is left as it was.
    assert_eq!(
        std::fs::read_to_string(&not_a_dir).unwrap(),
        "not a directory"
    );
}

/// `--cache-file` names a directory: it can be neither read nor replaced. Before the fix the
/// build failed on reading it.
#[test]
fn cache_file_that_is_a_directory_is_a_warning_and_the_build_succeeds() {
    if !engine_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = unique("isdir");
    project(dir.path(), &image);
    let cache_dir = dir.path().join("cache-is-a-dir");
    std::fs::create_dir(&cache_dir).unwrap();
    std::fs::write(cache_dir.join("keep"), "kept").unwrap();
    let arg = format!("--cache-file={}", cache_dir.display());
    let out = skiff(dir.path(), &["build", &arg], &[]);
    remove_image(&image);
    assert_built_with_warning(&out, &image, &cache_dir);
    assert_eq!(
        std::fs::read_to_string(cache_dir.join("keep")).unwrap(),
        "kept"
    );
}
