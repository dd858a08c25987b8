//! Bad input: each case asserts the message and where it points.
#![allow(clippy::unwrap_used)]

use skiff_config::{ConfigError, LoadOptions, load};

/// Load `text` as `skaffold.yaml` in a fresh directory; the error and the file's path.
fn load_text(text: &str, profiles: &[&str]) -> (ConfigError, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("skaffold.yaml");
    std::fs::write(&file, text).unwrap();
    let error = load(&LoadOptions {
        working_dir: dir.path().into(),
        profiles: profiles.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    })
    .unwrap_err();
    (error, file)
}

fn at(error: &ConfigError) -> (usize, usize) {
    let location = error
        .location()
        .unwrap_or_else(|| panic!("no location: {error}"));
    (location.line, location.column)
}

const HEAD: &str = "apiVersion: skaffold/v4\nkind: Config\n";

#[test]
fn unknown_field_is_located_with_a_suggestion() {
    let (error, file) = load_text(
        &format!(
            "{HEAD}build:\n  artifacts:\n  - image: app\n    docker:\n      dockerfle: Dockerfile.dev\n"
        ),
        &[],
    );
    assert_eq!(at(&error), (7, 7));
    assert_eq!(
        error.to_string(),
        format!(
            "{}:7:7: build.artifacts[0].docker: unknown field `dockerfle`; did you mean `dockerfile`?",
            file.display()
        )
    );
}

#[test]
fn unknown_top_level_field() {
    let (error, _) = load_text(&format!("{HEAD}deplyo:\n  kubectl: {{}}\n"), &[]);
    assert_eq!(at(&error), (3, 1));
    assert!(
        error
            .to_string()
            .ends_with("unknown field `deplyo`; did you mean `deploy`?"),
        "{error}"
    );
}

#[test]
fn misplaced_field_lists_what_belongs_there() {
    // `image` belongs to the artifact, not to `build`.
    let (error, _) = load_text(&format!("{HEAD}build:\n  image: app\n"), &[]);
    assert_eq!(at(&error), (4, 3));
    let message = error.to_string();
    assert!(
        message.contains("build: unknown field `image`"),
        "{message}"
    );
    assert!(message.contains("`artifacts`"), "{message}");
}

#[test]
fn wrong_type_says_what_was_expected() {
    let (error, _) = load_text(
        &format!("{HEAD}build:\n  artifacts:\n  - image: app\n    docker:\n      noCache: maybe\n"),
        &[],
    );
    assert_eq!(at(&error), (7, 16));
    let message = error.to_string();
    assert!(
        message.contains(
            "build.artifacts[0].docker.noCache: invalid type: string \"maybe\", expected a boolean"
        ),
        "{message}"
    );

    let (error, _) = load_text(&format!("{HEAD}build:\n  artifacts: app\n"), &[]);
    assert!(error.to_string().contains("expected a sequence"), "{error}");
}

#[test]
fn bad_api_version() {
    let (error, _) = load_text("apiVersion: skaffold/v9beta1\nkind: Config\n", &[]);
    assert_eq!(at(&error), (1, 13));
    let message = error.to_string();
    assert!(
        message.contains("unsupported apiVersion `skaffold/v9beta1`"),
        "{message}"
    );
    assert!(message.contains("skaffold/v1alpha1"), "{message}");

    let (error, _) = load_text("kind: Config\nbuild: {}\n", &[]);
    assert!(
        error.to_string().contains("missing field `apiVersion`"),
        "{error}"
    );

    let (error, _) = load_text("apiVersion: skaffold/v4\nkind: Pod\n", &[]);
    assert_eq!(at(&error), (2, 7));
    assert!(
        error.to_string().contains("unsupported kind `Pod`"),
        "{error}"
    );
}

#[test]
fn empty_file() {
    let (error, file) = load_text("", &[]);
    assert!(matches!(error, ConfigError::Empty { .. }));
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}: the file is empty", file.display()))
    );
    let (error, _) = load_text("# only a comment\n---\n", &[]);
    assert!(matches!(error, ConfigError::Empty { .. }), "{error}");
}

#[test]
fn yaml_syntax_error() {
    let (error, file) = load_text(
        &format!("{HEAD}build:\n  artifacts:\n  - image: app\n   context: .\n"),
        &[],
    );
    assert!(matches!(error, ConfigError::Syntax { .. }), "{error}");
    assert_eq!(at(&error).0, 6);
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}:6:", file.display())),
        "{error}"
    );

    let (error, _) = load_text(&format!("{HEAD}build: {{artifacts: [\n"), &[]);
    assert!(matches!(error, ConfigError::Syntax { .. }), "{error}");
}

#[test]
fn missing_required_image() {
    let (error, _) = load_text(
        &format!("{HEAD}build:\n  artifacts:\n  - context: app\n"),
        &[],
    );
    assert_eq!(at(&error), (5, 5));
    assert!(
        error
            .to_string()
            .contains("build.artifacts[0]: missing field `image`"),
        "{error}"
    );
}

#[test]
fn unknown_profile_lists_the_defined_ones() {
    let (error, file) = load_text(
        &format!("{HEAD}profiles:\n- name: dev\n- name: prod\n"),
        &["nope"],
    );
    assert_eq!(
        error.to_string(),
        format!(
            "profile `nope` is not defined in {}; available: dev, prod",
            file.display()
        )
    );
    let (error, _) = load_text(HEAD, &["-nope"]);
    assert!(error.to_string().contains("(it defines none)"), "{error}");
}

#[test]
fn cyclic_requires_within_one_file() {
    let (error, _) = load_text(
        "apiVersion: skaffold/v4\nkind: Config\nmetadata: {name: one}\nrequires:\n- configs: [two]\n---\napiVersion: skaffold/v4\nkind: Config\nmetadata: {name: two}\nrequires:\n- configs: [one]\n",
        &[],
    );
    assert_eq!(error.to_string(), "cyclic `requires`: one → two → one");
}

#[test]
fn requires_naming_a_missing_config() {
    let (error, _) = load_text(&format!("{HEAD}requires:\n- configs: [ghost]\n"), &[]);
    assert_eq!(at(&error), (4, 1));
    assert!(
        error
            .to_string()
            .contains("`requires` names config `ghost`"),
        "{error}"
    );
}

#[test]
fn two_builders_on_one_artifact() {
    let (error, _) = load_text(
        &format!(
            "{HEAD}build:\n  artifacts:\n  - image: app\n  - image: api\n    docker: {{}}\n    custom:\n      buildCommand: make\n"
        ),
        &[],
    );
    assert_eq!(at(&error), (6, 3));
    assert!(
        error
            .to_string()
            .contains("build.artifacts[1]: sets 2 builders (`docker`, `custom`); choose one"),
        "{error}"
    );
}

#[test]
fn image_with_tag_and_bad_enum_value() {
    let (error, _) = load_text(
        &format!("{HEAD}build:\n  artifacts:\n  - image: app:v1\n"),
        &[],
    );
    assert_eq!(at(&error), (5, 5));
    assert!(error.to_string().contains("carries a tag"), "{error}");

    let (error, _) = load_text(
        &format!("{HEAD}build:\n  tagPolicy:\n    gitCommit:\n      variant: CommitSHA\n"),
        &[],
    );
    assert_eq!(at(&error), (6, 7));
    assert!(
        error.to_string().contains("did you mean `CommitSha`?"),
        "{error}"
    );
}

#[test]
fn bad_activation_regex_names_the_profile() {
    let (error, _) = load_text(
        &format!("{HEAD}profiles:\n- name: broken\n  activation:\n  - env: MODE=(\n"),
        &[],
    );
    assert_eq!(at(&error), (6, 3));
    assert!(
        error
            .to_string()
            .contains("profile `broken`: activation `env: MODE=(`"),
        "{error}"
    );
}

#[test]
fn unsupported_builders_parse_and_are_reported_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("skaffold.yaml"),
        format!("{HEAD}build:\n  artifacts:\n  - image: app\n    jib:\n      project: svc\n    context: java\n"),
    )
    .unwrap();
    let loaded = load(&LoadOptions {
        working_dir: dir.path().into(),
        ..Default::default()
    })
    .unwrap();
    let artifact = &loaded.configs[0]
        .config
        .build
        .as_ref()
        .unwrap()
        .artifacts
        .as_ref()
        .unwrap()[0];
    assert_eq!(skiff_config::builder_kinds(artifact), ["jib"]);
}

#[test]
fn missing_file_names_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let error = load(&LoadOptions {
        working_dir: dir.path().into(),
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no skaffold.yaml or skaffold.yml in"),
        "{error}"
    );
    let error = load(&LoadOptions {
        working_dir: dir.path().into(),
        config_file: Some("other.yaml".into()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(error.to_string().contains("other.yaml"), "{error}");
}

#[test]
fn errors_in_an_older_file_point_at_the_users_text() {
    // Nothing moves in this upgrade: the text itself is read.
    let (error, _) = load_text(
        "apiVersion: skaffold/v2beta26\nkind: Config\nbuild:\n  artifacts:\n  - image: app\n    docker:\n      dockerfle: D\n",
        &[],
    );
    assert_eq!(at(&error), (7, 7), "{error}");
    assert!(
        error.to_string().contains("did you mean `dockerfile`?"),
        "{error}"
    );

    // Manifests move to `manifests.rawYaml`: the upgraded tree is read, errors still point
    // at the field as written.
    let (error, _) = load_text(
        "apiVersion: skaffold/v2beta26\nkind: Config\nbuild:\n  artifacts:\n  - image: app\n    docker:\n      dockerfle: D\ndeploy:\n  kubectl:\n    manifests: [k8s/*.yaml]\n",
        &[],
    );
    assert_eq!(at(&error), (7, 7), "{error}");
    assert!(error.to_string().contains("dockerfle"), "{error}");

    // What Skaffold refuses to upgrade, skiff refuses, naming the field.
    let (error, _) = load_text(
        "apiVersion: skaffold/v1alpha5\nkind: Config\nbuild:\n  acr: {}\n",
        &[],
    );
    assert_eq!(at(&error).0, 4, "{error}");
    assert!(error.to_string().contains("build.acr"), "{error}");
}
