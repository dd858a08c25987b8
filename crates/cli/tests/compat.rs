//! Compatibility with Skaffold 2.14, case by case: each directory under `tests/compat` is a
//! project, with what Skaffold itself printed for it (recorded by
//! `scripts/skaffold-compat/record` from a Skaffold built from its published source):
//! `expected.fix` (`skaffold fix --version skaffold/v4beta12`) and `expected.render`
//! (`skaffold render --offline --digest-source=none`). skiff must do the same: the same
//! upgraded configuration and the same objects (ignoring key and document order, run labels,
//! and the null, false and empty values Go's YAML output leaves out), and fail where Skaffold
//! fails.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_yaml::Value;

const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "{cases:?}");
    cases
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("expected.") {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// `skiff ARGS` in a copy of `case`, as the recording ran Skaffold: no kube config, no
/// `SKAFFOLD_*` or `SKIFF_COMPAT_UNSET` from the outer environment.
fn skiff(case: &Path, args: &[&str]) -> Output {
    let work = tempfile::tempdir().unwrap();
    copy_dir(case, work.path());
    let mut command = Command::new(SKIFF);
    command
        .current_dir(work.path())
        .args(args)
        .env("NO_COLOR", "1")
        .env("KUBECONFIG", "/nonexistent")
        .env_remove("SKIFF_COMPAT_UNSET")
        .stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("SKAFFOLD_")) {
            command.env_remove(key);
        }
    }
    command.output().unwrap()
}

/// A recorded run: its exit code and standard output.
fn expected(case: &Path, what: &str) -> (i32, String) {
    let text = std::fs::read_to_string(case.join(format!("expected.{what}"))).unwrap();
    let (status, stdout) = text.split_once('\n').unwrap();
    (
        status.strip_prefix("exit ").unwrap().parse().unwrap(),
        stdout.to_owned(),
    )
}

/// Skaffold prints a note about `--digest-source=none`, and what pre-render hooks print, on
/// standard output: top-level lines that cannot be part of an object's YAML.
fn without_noise(text: &str) -> String {
    text.lines()
        .filter(|l| {
            !(l.starts_with("--digest-source set to")
                || (!l.is_empty()
                    && !l.starts_with(char::is_whitespace)
                    && !l.contains(':')
                    && !l.starts_with(['-', '#'])))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(&without_noise(text))
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// Without what Go's YAML output omits (null, false, empty) and without run labels.
fn normalize(value: Value) -> Value {
    match value {
        Value::Mapping(map) => Value::Mapping(
            map.into_iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        Some("skaffold.dev/run-id" | "app.kubernetes.io/managed-by")
                    )
                })
                .map(|(k, v)| (k, normalize(v)))
                .filter(|(_, v)| match v {
                    Value::Null | Value::Bool(false) => false,
                    Value::Sequence(s) => !s.is_empty(),
                    Value::Mapping(m) => !m.is_empty(),
                    _ => true,
                })
                .collect(),
        ),
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(normalize).collect()),
        other => other,
    }
}

fn sorted(docs: Vec<Value>) -> Vec<String> {
    let mut docs: Vec<String> = docs
        .into_iter()
        .map(|d| serde_yaml::to_string(&sort_keys(normalize(d))).unwrap())
        .collect();
    docs.sort();
    docs
}

fn sort_keys(value: Value) -> Value {
    match value {
        Value::Mapping(map) => {
            let mut entries: Vec<(Value, Value)> =
                map.into_iter().map(|(k, v)| (k, sort_keys(v))).collect();
            entries.sort_by(|a, b| {
                serde_yaml::to_string(&a.0)
                    .unwrap()
                    .cmp(&serde_yaml::to_string(&b.0).unwrap())
            });
            Value::Mapping(entries.into_iter().collect())
        }
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

fn check(case: &Path, what: &str, args: &[&str], failures: &mut Vec<String>) {
    let name = case.file_name().unwrap().to_string_lossy().into_owned();
    let (status, stdout) = expected(case, what);
    let output = skiff(case, args);
    let ours = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if status != 0 {
        if output.status.success() {
            failures.push(format!(
                "{name}: `skaffold {what}` fails, `skiff {what}` succeeds:\n{ours}"
            ));
        }
        return;
    }
    if !output.status.success() {
        failures.push(format!("{name}: `skiff {what}` fails:\n{stderr}"));
        return;
    }
    let already = |s: &str| s.starts_with("config is already version");
    if already(&stdout) || already(&ours) {
        if already(&stdout) != already(&ours) {
            failures.push(format!(
                "{name}: {what}: skaffold printed\n{stdout}\nskiff printed\n{ours}"
            ));
        }
        return;
    }
    let (theirs, mine) = (sorted(documents(&stdout)), sorted(documents(&ours)));
    if theirs != mine {
        failures.push(format!(
            "{name}: {what} differs\n--- skaffold\n{}\n--- skiff\n{}\n--- skiff stderr\n{stderr}",
            theirs.join("---\n"),
            mine.join("---\n")
        ));
    }
}

#[test]
fn skiff_fix_upgrades_as_skaffold_fix_does() {
    let mut failures = Vec::new();
    for case in cases() {
        check(
            &case,
            "fix",
            &[
                "fix",
                "-f",
                "skaffold.yaml",
                "--version",
                "skaffold/v4beta12",
            ],
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn skiff_render_prints_what_skaffold_render_prints() {
    let mut failures = Vec::new();
    for case in cases() {
        check(
            &case,
            "render",
            &[
                "render",
                "-f",
                "skaffold.yaml",
                "--offline",
                "--digest-source=none",
            ],
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn fix_overwrite_keeps_a_backup_and_comments() {
    let dir = tempfile::tempdir().unwrap();
    let original = "# the app\napiVersion: skaffold/v2beta10\nkind: Config\nbuild:\n  # what we build\n  artifacts:\n  - image: app\ndeploy:\n  kubectl:\n    manifests: [k8s/*.yaml]\n";
    std::fs::write(dir.path().join("skaffold.yaml"), original).unwrap();
    let run = |args: &[&str]| {
        Command::new(SKIFF)
            .current_dir(dir.path())
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let printed = run(&["fix"]);
    assert!(printed.status.success(), "{printed:?}");
    let printed = String::from_utf8(printed.stdout).unwrap();
    assert!(
        printed.starts_with("# the app\napiVersion: skaffold/v4beta14\n"),
        "{printed}"
    );
    assert!(
        printed.contains("  # what we build\n  artifacts:\n"),
        "{printed}"
    );
    assert!(
        printed.contains("manifests:\n  rawYaml:\n  - k8s/*.yaml\n"),
        "{printed}"
    );
    // Printing changed nothing on disk.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("skaffold.yaml")).unwrap(),
        original
    );

    let written = run(&["fix", "--overwrite"]);
    assert!(written.status.success(), "{written:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("skaffold.yaml.v2")).unwrap(),
        original
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("skaffold.yaml")).unwrap(),
        printed
    );
    let again = run(&["fix"]);
    assert_eq!(
        String::from_utf8(again.stdout).unwrap(),
        "config is already version skaffold/v4beta14\n"
    );
    // The upgraded file loads without the upgrade warning.
    let diagnose = run(&["diagnose", "--yaml-only"]);
    assert!(diagnose.status.success(), "{diagnose:?}");
    assert!(
        !String::from_utf8(diagnose.stderr)
            .unwrap()
            .contains("out of date"),
        "no upgrade needed any more"
    );
}
