//! The `skiff` binary, run for real: output, warnings, errors and exit codes.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");

fn seed(name: &str) -> PathBuf {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/seed");
    Path::new(dir).join(name).canonicalize().unwrap()
}

/// `skiff ARGS` in `dir`, with no `SKAFFOLD_*` or `NO_COLOR` from the outer environment.
fn skiff_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(SKIFF);
    command.current_dir(dir).args(args);
    for (key, _) in std::env::vars_os() {
        if key
            .to_str()
            .is_some_and(|k| k.starts_with("SKAFFOLD_") || k == "NO_COLOR")
        {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command.output().unwrap()
}

fn skiff(dir: &Path, args: &[&str]) -> Output {
    skiff_with(dir, args, &[])
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[track_caller]
fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        stdout(output),
        stderr(output)
    );
}

/// Runs and fails with exit code 1; returns stderr.
#[track_caller]
fn failure(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
    assert!(output.stdout.is_empty(), "{}", stdout(output));
    stderr(output)
}

fn write_config(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("skaffold.yaml"), text).unwrap();
    dir
}

#[test]
fn version_prints_the_version() {
    let output = skiff(Path::new("."), &["version"]);
    assert_success(&output);
    assert_eq!(
        stdout(&output),
        format!("skiff {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// The legacy `deploy.kubectl.manifests` is the one warning, on one line.
#[track_caller]
fn assert_one_legacy_warning(output: &Output, file: &Path) {
    let stderr = stderr(output);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("warning: {}:", file.display())),
        "{stderr}"
    );
    assert!(lines[0].contains("manifests.rawYaml"), "{stderr}");
}

#[test]
fn diagnose_shows_the_minimal_seed_config() {
    let file = seed("minimal/skaffold.yaml");
    let output = skiff(Path::new("/"), &["diagnose", "-f", file.to_str().unwrap()]);
    assert_success(&output);
    let out = stdout(&output);
    assert!(
        out.starts_with(&format!(
            "Configuration 1 of 1: go-webapp ({})\n",
            file.display()
        )),
        "{out}"
    );
    assert!(
        out.contains(
            "\n  artifact localhost:5000/go-webapp: docker, context ., dockerfile Dockerfile\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("\n  manifests: rawYaml k8s/deployment.yaml\n"),
        "{out}"
    );
    assert!(!out.contains("sync:"), "{out}");
    assert_one_legacy_warning(&output, &file);
}

#[test]
fn diagnose_shows_the_sync_seed_config() {
    let file = seed("sync/skaffold.yaml");
    let output = skiff(Path::new("/"), &["diagnose", "-f", file.to_str().unwrap()]);
    assert_success(&output);
    let out = stdout(&output);
    assert!(
        out.contains(
            "\n  artifact localhost:5000/go-webapp: docker, context ., dockerfile Dockerfile\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("\n    sync: internal/**/*.go → /app\n    sync: cmd/**/*.go → /app\n"),
        "{out}"
    );
    assert!(
        out.contains("\n  manifests: rawYaml k8s/deployment.yaml\n"),
        "{out}"
    );
    assert!(
        out.contains("\n  deploy: kubectl, status check deadline 600s\n"),
        "{out}"
    );
    // The YAML after the summary says the same.
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(out.split_once("\n---\n").unwrap().1).unwrap();
    let artifact = &yaml["build"]["artifacts"][0];
    assert_eq!(artifact["image"].as_str(), Some("localhost:5000/go-webapp"));
    assert_eq!(
        artifact["docker"]["dockerfile"].as_str(),
        Some("Dockerfile")
    );
    assert_eq!(
        artifact["sync"]["manual"][1]["src"].as_str(),
        Some("cmd/**/*.go")
    );
    assert_eq!(
        yaml["manifests"]["rawYaml"][0].as_str(),
        Some("k8s/deployment.yaml")
    );
    assert_one_legacy_warning(&output, &file);
}

#[test]
fn diagnose_finds_skaffold_yaml_in_the_working_directory() {
    let output = skiff(&seed("sync"), &["diagnose"]);
    assert_success(&output);
    assert!(stdout(&output).contains("artifact localhost:5000/go-webapp"));
}

#[test]
fn yaml_only_is_yaml_and_nothing_else() {
    for name in ["minimal", "sync"] {
        let output = skiff(&seed(name), &["diagnose", "--yaml-only"]);
        assert_success(&output);
        let out = stdout(&output);
        assert!(
            !out.contains("Configuration") && !out.contains("profiles:"),
            "{out}"
        );
        let yaml: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
        assert_eq!(yaml["apiVersion"].as_str(), Some("skaffold/v4beta14"));
        assert_eq!(
            yaml["build"]["artifacts"][0]["image"].as_str(),
            Some("localhost:5000/go-webapp")
        );
        assert_eq!(stderr(&output).lines().count(), 1);
    }
}

#[test]
fn output_goes_to_the_file_o_names() {
    let dir = tempfile::tempdir().unwrap();
    let file = seed("sync/skaffold.yaml");
    let output = skiff(
        dir.path(),
        &[
            "diagnose",
            "--yaml-only",
            "-f",
            file.to_str().unwrap(),
            "-o",
            "out.yaml",
        ],
    );
    assert_success(&output);
    assert!(output.stdout.is_empty());
    let written = std::fs::read_to_string(dir.path().join("out.yaml")).unwrap();
    let printed = stdout(&skiff(
        dir.path(),
        &["diagnose", "--yaml-only", "-f", file.to_str().unwrap()],
    ));
    assert_eq!(written, printed);
}

#[test]
fn namespace_and_default_repo_are_summary_lines() {
    let output = skiff(
        &seed("sync"),
        &["diagnose", "-n", "team", "--default-repo", "gcr.io/x"],
    );
    assert_success(&output);
    let out = stdout(&output);
    assert!(
        out.contains("\n  namespace: team\n  default repo: gcr.io/x\n"),
        "{out}"
    );
}

/// What `diagnose` prints, with the fixture directory as `[DIR]`.
fn redacted(output: &Output, dir: &Path) -> String {
    stdout(output).replace(&dir.display().to_string(), "[DIR]")
}

#[test]
fn snapshot_sync_seed_yaml_only() {
    let dir = seed("sync");
    let output = skiff(&dir, &["diagnose", "--yaml-only"]);
    assert_success(&output);
    insta::assert_snapshot!("diagnose_sync_yaml_only", redacted(&output, &dir));
}

#[test]
fn snapshot_sync_seed_summary() {
    let dir = seed("sync");
    let output = skiff(&dir, &["diagnose"]);
    assert_success(&output);
    insta::assert_snapshot!("diagnose_sync", redacted(&output, &dir));
}

const TYPO: &str = "\
apiVersion: skaffold/v4beta14
kind: Config
build:
  artifacts:
  - image: app
    docker:
      dockerfle: Dockerfile
";

#[test]
fn an_unknown_field_names_file_line_column_and_the_fix() {
    let dir = write_config(TYPO);
    let stderr = failure(&skiff(dir.path(), &["diagnose"]));
    assert!(stderr.contains("skaffold.yaml:7:7: "), "{stderr}");
    assert!(stderr.contains("`dockerfle`"), "{stderr}");
    assert!(stderr.contains("did you mean `dockerfile`"), "{stderr}");
    // The file is quoted around the spot.
    assert!(stderr.contains("      dockerfle: Dockerfile"), "{stderr}");
}

#[test]
fn a_yaml_syntax_error_is_located() {
    let dir = write_config("apiVersion: skaffold/v4beta14\nkind: [Config\n");
    let stderr = failure(&skiff(dir.path(), &["diagnose"]));
    assert!(stderr.contains("skaffold.yaml:"), "{stderr}");
    assert!(stderr.contains("YAML syntax error"), "{stderr}");
}

const PROFILES: &str = "\
apiVersion: skaffold/v4beta14
kind: Config
build:
  artifacts:
  - image: app
profiles:
- name: dev
  build:
    artifacts:
    - image: app-dev
- name: other
  patches:
  - op: replace
    path: /build/artifacts/0/image
    value: app-other
";

#[test]
fn an_unknown_profile_is_named() {
    let dir = write_config(PROFILES);
    let stderr = failure(&skiff(dir.path(), &["diagnose", "-p", "nope"]));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("`nope`"), "{stderr}");
    assert!(stderr.contains("dev, other"), "{stderr}");
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = failure(&skiff(dir.path(), &["diagnose", "-f", "missing.yaml"]));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&dir.path().join("missing.yaml").display().to_string()),
        "{stderr}"
    );
}

#[test]
fn no_config_in_the_working_directory_points_at_f() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = failure(&skiff(dir.path(), &["diagnose"]));
    assert!(
        stderr.contains("no skaffold.yaml or skaffold.yml"),
        "{stderr}"
    );
    assert!(stderr.contains("-f/--filename"), "{stderr}");
}

#[test]
fn an_empty_file_says_so() {
    let dir = write_config("");
    let stderr = failure(&skiff(dir.path(), &["diagnose"]));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("skaffold.yaml"), "{stderr}");
    assert!(stderr.contains("empty"), "{stderr}");
}

/// The first artifact's image in the `--yaml-only` output.
fn image(output: &Output) -> String {
    assert_success(output);
    let yaml: serde_yaml::Value = serde_yaml::from_str(&stdout(output)).unwrap();
    yaml["build"]["artifacts"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn skaffold_profile_activates_a_profile() {
    let dir = write_config(PROFILES);
    let yaml_only = ["diagnose", "--yaml-only"];
    assert_eq!(image(&skiff(dir.path(), &yaml_only)), "app");
    assert_eq!(
        image(&skiff_with(
            dir.path(),
            &yaml_only,
            &[("SKAFFOLD_PROFILE", "dev")]
        )),
        "app-dev"
    );
    assert_eq!(
        image(&skiff_with(
            dir.path(),
            &yaml_only,
            &[("SKAFFOLD_PROFILE", "dev,other")]
        )),
        "app-other"
    );
}

#[test]
fn a_profile_flag_beats_skaffold_profile() {
    let dir = write_config(PROFILES);
    let env = [("SKAFFOLD_PROFILE", "dev")];
    let with = |args: &[&str]| image(&skiff_with(dir.path(), args, &env));
    assert_eq!(
        with(&["diagnose", "--yaml-only", "-p", "other"]),
        "app-other"
    );
    // A leading `-` deactivates, also as a separate argument.
    assert_eq!(with(&["diagnose", "--yaml-only", "-p", "-dev"]), "app");
    assert_eq!(with(&["-p", "dev,-dev", "diagnose", "--yaml-only"]), "app");
}

#[test]
fn profiles_show_in_the_summary() {
    let dir = write_config(PROFILES);
    let output = skiff(dir.path(), &["diagnose", "-p", "dev", "-p", "other"]);
    assert_success(&output);
    assert!(
        stdout(&output).contains("\n  profiles: dev, other\n"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn skaffold_filename_names_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = seed("sync/skaffold.yaml");
    let output = skiff_with(
        dir.path(),
        &["diagnose"],
        &[("SKAFFOLD_FILENAME", file.to_str().unwrap())],
    );
    assert_success(&output);
    assert!(stdout(&output).contains(&format!("go-webapp ({})", file.display())));
    // The flag wins.
    let other = write_config(TYPO);
    let output = skiff_with(
        other.path(),
        &["diagnose", "-f", file.to_str().unwrap()],
        &[("SKAFFOLD_FILENAME", "nope.yaml")],
    );
    assert_success(&output);
}

#[test]
fn warnings_are_silent_below_warn() {
    let output = skiff(&seed("sync"), &["diagnose", "-v", "error"]);
    assert_success(&output);
    assert!(output.stderr.is_empty(), "{}", stderr(&output));
    let output = skiff_with(
        &seed("sync"),
        &["diagnose"],
        &[("SKAFFOLD_VERBOSITY", "fatal")],
    );
    assert!(output.stderr.is_empty(), "{}", stderr(&output));
}

#[test]
fn a_bad_flag_value_is_a_usage_error() {
    let output = skiff(Path::new("."), &["diagnose", "-v", "loud"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("loud"));
}

/// `skiff ARGS` in `dir` with stderr on a terminal (through `script`), so colour is possible.
/// Returns what the terminal showed, or `None` where `script` is unavailable.
fn on_a_terminal(dir: &Path, args: &str, env: &[(&str, &str)]) -> Option<String> {
    let mut command = Command::new("script");
    command
        .current_dir(dir)
        .args(["-qec", &format!("{SKIFF} {args}"), "/dev/null"])
        .env_remove("NO_COLOR")
        .env_remove("SKAFFOLD_COLOR")
        .envs(env.iter().copied());
    let output = command.output().ok()?;
    output.status.code()?;
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn color_false_and_no_color_leave_out_escapes() {
    let dir = write_config(TYPO);
    let escape = '\u{1b}';
    // Without a terminal there is never colour.
    for args in [
        &["diagnose"][..],
        &["diagnose", "--color=false"],
        &["--color", "diagnose"],
    ] {
        let stderr = failure(&skiff(dir.path(), args));
        assert!(!stderr.contains(escape), "{stderr:?}");
    }
    let stderr = failure(&skiff_with(dir.path(), &["diagnose"], &[("NO_COLOR", "1")]));
    assert!(!stderr.contains(escape), "{stderr:?}");

    // On a terminal, colour unless told otherwise.
    let Some(shown) = on_a_terminal(dir.path(), "diagnose", &[]) else {
        return;
    };
    assert!(
        shown.contains(escape) && shown.contains("dockerfle"),
        "{shown:?}"
    );
    for (args, env) in [
        ("diagnose --color=false", &[][..]),
        ("--color=false diagnose", &[]),
        ("diagnose", &[("NO_COLOR", "1")]),
        ("diagnose", &[("SKAFFOLD_COLOR", "false")]),
    ] {
        let shown = on_a_terminal(dir.path(), args, env).unwrap();
        assert!(shown.contains("dockerfle"), "{shown:?}");
        assert!(!shown.contains(escape), "{args} {env:?}: {shown:?}");
    }
}
