//! Skaffold's `lifecycle-hooks` example — its hook commands, on an app of the same shape (prints
//! `hello.txt` every second, reloads it on `SIGHUP`), built on the `alpine:3.19` stand-in —
//! under `skiff run` and `skiff dev` on the local cluster: every hook's output once per phase, in
//! Skaffold's order, with its variables set; sync hooks around a synced file; the container
//! deploy hook running inside the pod.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use skiff_e2e::harness::*;

const LONG: Duration = Duration::from_secs(300);

fn parts_available() -> bool {
    docker_available()
        && kube_available()
        && (Command::new("docker")
            .args(["image", "inspect", "alpine:3.19"])
            .output()
            .is_ok_and(|o| o.status.success())
            || missing(
                "the stand-in base image alpine:3.19 is missing (`scripts/devenv/up` builds it)",
            ))
}

/// The example's project with the app named `name`.
fn project(dir: &Path, name: &str) {
    let write = |file: &str, text: &str| std::fs::write(dir.join(file), text).unwrap();
    write("hello.txt", "Hello World!\n");
    write(
        "hook.sh",
        "#!/bin/sh\n\ncat << EOF\nBuild specification:\n    WorkDir:        $SKAFFOLD_WORK_DIR\n    Image:          $SKAFFOLD_IMAGE\n    PushImage:      $SKAFFOLD_PUSH_IMAGE\n    ImageRepo:      $SKAFFOLD_IMAGE_REPO\n    ImageTag:       $SKAFFOLD_IMAGE_TAG\n    BuildContext:   $SKAFFOLD_BUILD_CONTEXT\nEOF\n",
    );
    let status = Command::new("chmod")
        .args(["+x", "hook.sh"])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success());
    write(
        "Dockerfile",
        "FROM alpine:3.19\nWORKDIR /app\nCOPY hello.txt .\n\
         CMD [\"sh\", \"-c\", \"trap 'echo received SIGHUP signal. Reloading file hello.txt' HUP; \
         while true; do cat hello.txt; sleep 1; done\"]\n",
    );
    write(
        "deployment.yaml",
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}-deployment\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: {name}\n        image: localhost:5000/{name}\n"
        ),
    );
    // The example's hooks, as its skaffold.yaml has them (image and object names changed).
    write(
        "skaffold.yaml",
        &format!(
            r#"apiVersion: skaffold/v4beta12
kind: Config
manifests:
  rawYaml:
  - deployment.yaml
  hooks:
    before:
      - host:
          command: ["sh", "-c", "echo pre-render host hook running on $(hostname)!"]
    after:
      - host:
          command: ["sh", "-c", "echo post-render host hook running on $(hostname)!"]
build:
  tagPolicy:
    sha256: {{}}
  hooks:
    before:
      - command: ["sh", "-c", "echo pre-build hook running"]
    after:
      - command: ["sh", "-c", "echo post-build hook running"]
  artifacts:
  - image: localhost:5000/{name}
    hooks:
      before:
        - command: ["sh", "-c", "./hook.sh"]
          os: [darwin, linux]
          dir: .
        - command: ["cmd.exe", "/C", "hook.bat"]
          os: [windows]
          dir: .
      after:
        - command: ["sh", "-c", "docker images $SKAFFOLD_IMAGE --digests"]
          os: [darwin, linux]
        - command: ["cmd.exe", "/C", "docker images %SKAFFOLD_IMAGE% --digests"]
          os: [windows]
    sync:
      manual:
        - src: 'hello.txt'
          dest: .
      hooks:
        before:
          - host:
              command: ["sh", "-c", "echo file changes detected: $SKAFFOLD_FILES_ADDED_OR_MODIFIED"]
              os: [darwin, linux]
          - host:
              command: ["cmd.exe", "/C", "echo file changes detected: %SKAFFOLD_FILES_ADDED_OR_MODIFIED%"]
              os: [windows]
        after:
          - container:
              command: ["sh", "-c", "set -x; kill -HUP 1"]
deploy:
  kubectl:
    hooks:
      before:
        - host:
            command: ["sh", "-c", "echo pre-deploy host hook running on $(hostname)!"]
            os: [darwin, linux]
        - container:
            command: ["sh", "-c", "echo pre-deploy container hook running on $(hostname)!"]
            containerName: {name}*
            podName: {name}-deployment*
      after:
        - host:
            command: ["sh", "-c", "echo post-deploy host hook running on $(hostname)!"]
            os: [darwin, linux]
        - container:
            command: ["sh", "-c", "echo post-deploy container hook running on $(hostname)!"]
            containerName: {name}*
            podName: {name}-deployment*
"#
        ),
    );
}

/// The index of the first line of `lines` (from `from`) containing `text`; panics naming it.
fn position(lines: &[String], from: usize, text: &str) -> usize {
    lines
        .iter()
        .skip(from)
        .position(|l| l.contains(text))
        .map(|i| i + from)
        .unwrap_or_else(|| {
            panic!(
                "no line with {text:?} after line {from}:\n{}",
                lines.join("\n")
            )
        })
}

fn count(lines: &[String], text: &str) -> usize {
    lines.iter().filter(|l| l.contains(text)).count()
}

struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = Command::new(skiff_e2e::skiff_bin())
            .arg("delete")
            .current_dir(self.0)
            .output();
    }
}

#[test]
fn the_lifecycle_hooks_example_runs_every_hook_once_per_phase_in_order() {
    if !parts_available() {
        return;
    }
    let name = unique("hooks-example");
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), &name);
    let _images = EngineImages(format!("localhost:5000/{name}"));
    let _cleanup = Cleanup(dir.path());
    let cache = dir.path().join(".cache");

    // `run`: build hooks (global around the artifact's), render hooks, deploy hooks, in order.
    let text = run_skiff_with_cache(dir.path(), &["run"], &cache);
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let pre_build = position(&lines, 0, "[pre-build hook] pre-build hook running");
    let spec = position(&lines, pre_build, "[pre-build hook] Build specification:");
    let image_line = position(&lines, spec, "[pre-build hook]     Image:");
    assert!(
        lines[image_line].contains(&format!("localhost:5000/{name}:")),
        "{}",
        lines[image_line]
    );
    let repo = position(&lines, spec, "[pre-build hook]     ImageRepo:");
    assert!(
        lines[repo].ends_with(&format!("localhost:5000/{name}")),
        "{}",
        lines[repo]
    );
    let context = position(&lines, spec, "[pre-build hook]     BuildContext:");
    assert!(
        lines[context].contains(&*dir.path().to_string_lossy()),
        "{}",
        lines[context]
    );
    let digests = position(&lines, spec, "[post-build hook] REPOSITORY");
    let post_build = position(&lines, digests, "[post-build hook] post-build hook running");
    let pre_render = position(
        &lines,
        post_build,
        "[pre-render hook] pre-render host hook running on",
    );
    let post_render = position(
        &lines,
        pre_render,
        "[post-render hook] post-render host hook running on",
    );
    let pre_deploy = position(
        &lines,
        post_render,
        "[pre-deploy hook] pre-deploy host hook running on",
    );
    let post_deploy = position(
        &lines,
        pre_deploy,
        "[post-deploy hook] post-deploy host hook running on",
    );
    // After the rollout, the container hook runs inside the new pod (its hostname is the
    // pod's name).
    let in_pod = position(&lines, post_deploy, "post-deploy container hook running on");
    assert!(
        lines[in_pod].contains(&format!("running on {name}-deployment-")),
        "{}",
        lines[in_pod]
    );
    for once in [
        "pre-build hook running",
        "post-build hook running",
        "pre-render host hook",
        "post-render host hook",
        "pre-deploy host hook",
        "post-deploy host hook",
        "post-deploy container hook",
    ] {
        assert_eq!(count(&lines, once), 1, "{once}:\n{text}");
    }
    // Nothing ran before the deploy: the pre-deploy container hook found no pod.
    assert_eq!(count(&lines, "pre-deploy container hook"), 0, "{text}");

    // `dev`: the same order; then a synced `hello.txt` runs the sync hooks, the host one
    // naming the file and the container one signalling the app, which reloads it.
    let mut skiff = Skiff::start_with_cache(dir.path(), &["dev"], &cache);
    skiff.wait_line(0, LONG, |l| {
        l.contains("post-deploy container hook running on")
            .then_some(())
    });
    let lines = skiff.lines_from(0);
    // The pod of the `run` is still there when `dev` deploys: its pre-deploy container hook
    // runs in it, as Skaffold's does in `dev`'s later iterations.
    let pre_deploy = position(
        &lines,
        0,
        "[pre-deploy hook] pre-deploy host hook running on",
    );
    position(
        &lines,
        pre_deploy,
        "[post-deploy hook] post-deploy host hook running on",
    );
    let mark = skiff.line_count();
    std::fs::write(dir.path().join("hello.txt"), "Hello from the sync!\n").unwrap();
    skiff.wait_line(mark, LONG, |l| {
        (l.contains("[pre-sync hook] file changes detected:") && l.contains("hello.txt"))
            .then_some(())
    });
    skiff.wait_line(mark, LONG, |l| {
        (l.contains("[post-sync hook ") && l.contains("+ kill -HUP 1")).then_some(())
    });
    // The app got the signal and said so (its log is tailed).
    skiff.wait_line(mark, LONG, |l| {
        l.contains("received SIGHUP signal. Reloading file hello.txt")
            .then_some(())
    });
    skiff.stop(LONG);
    let after: Vec<String> = skiff.lines_from(mark);
    assert_eq!(
        count(&after, "pre-build hook running"),
        0,
        "synced, not rebuilt"
    );
    eprintln!("{}", skiff.output());
}
