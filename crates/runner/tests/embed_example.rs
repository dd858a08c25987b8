//! Builds and runs `examples/embed.rs` against the real Docker engine (`deploy.docker`), so
//! the embedding example cannot rot: its plugged-in `ShellBuilder` must build the image and
//! the loop must start a container that runs it. Without an engine the test is skipped,
//! unless `CI=true`, where it fails.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::Path;
use std::process::{Command, Stdio};

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().unwrap()
}

fn docker_available() -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("no Docker engine answers (CI=true: `scripts/devenv/up docker` starts one)");
    }
    if !ok {
        eprintln!("skipped: no Docker engine answers (`docker info` failed)");
    }
    ok
}

/// A static program that says hello and waits.
const PROGRAM: &str = "#include <stdio.h>\n#include <unistd.h>\nint main(void){puts(\"hello from the embed example\");fflush(stdout);for(;;)pause();}\n";

fn project(dir: &Path, image: &str) {
    std::fs::write(dir.join("main.c"), PROGRAM).unwrap();
    let gcc = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(dir.join("hello"))
        .arg(dir.join("main.c"))
        .status()
        .unwrap();
    assert!(gcc.success(), "gcc -static failed");
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY hello /hello\nENTRYPOINT [\"/hello\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("skaffold.yaml"),
        format!(
            "apiVersion: skaffold/v4beta11\nkind: Config\nbuild:\n  tagPolicy:\n    sha256: {{}}\n  artifacts:\n  - image: {image}\n    docker: {{}}\ndeploy:\n  docker:\n    images: [{image}]\n"
        ),
    )
    .unwrap();
}

fn containers(image: &str) -> Vec<String> {
    let output = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=skiff.dev/image={image}"),
        "--format",
        "{{.Names}}",
    ]);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_embed_example_builds_with_its_own_builder_and_deploys() {
    if !docker_available() {
        return;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let image = format!("skiff-embed-{}-{nanos}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), &image);

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "run",
            "-q",
            "-p",
            "skiff-runner",
            "--example",
            "embed",
            "--",
        ])
        .arg(dir.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    eprintln!("stdout:\n{stdout}\nstderr:\n{stderr}");

    // Clean up whatever happened, then judge.
    let names = containers(&image);
    let logs = names
        .first()
        .map(|name| {
            let out = docker(&["logs", name]);
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .unwrap_or_default();
    for name in &names {
        docker(&["rm", "-f", name]);
    }
    docker(&["rmi", "-f", "--no-prune", &format!("{image}:latest")]);

    assert!(output.status.success(), "the example failed");
    assert!(
        stdout.contains(&format!("ShellBuilder: built {image}:")),
        "the plugged-in builder did not build"
    );
    assert!(stdout.contains("run → rebuilt"), "no iteration line");
    assert_eq!(names.len(), 1, "one container deployed: {names:?}");
    assert!(
        logs.contains("hello from the embed example"),
        "the container runs the built program; logs: {logs:?}"
    );
}
