//! Tests of the taggers, `--default-repo` rewriting and `tagged`, with real git repositories.
#![allow(clippy::unwrap_used)] // A failing unwrap is a failing test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, TimeZone, Utc};
use skiff_build::BuildError;
use skiff_build::tag::{
    DEFAULT_DATE_TIME_FORMAT, GitCommitOptions, GitVariant, TagInputs, TagOutcome, TagPolicy,
    apply_default_repo, format_go_time, sanitize_tag, tag, tagged,
};
use skiff_types::template::Template;

/// An isolated environment for git: no system or user configuration, no discovery above the
/// temporary directory.
fn git_env(root: &Path) -> BTreeMap<String, String> {
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    BTreeMap::from([
        ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".to_owned(), home.display().to_string()),
        ("GIT_CONFIG_NOSYSTEM".to_owned(), "1".to_owned()),
        (
            "GIT_CEILING_DIRECTORIES".to_owned(),
            root.display().to_string(),
        ),
    ])
}

fn git(dir: &Path, env: &BTreeMap<String, String>, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.email=dev@example.com",
            "-c",
            "user.name=Dev",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "tag.gpgsign=false",
        ])
        .arg("-C")
        .arg(dir)
        .args(args)
        .env_clear()
        .envs(env)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A repository with `app/main.go` and `other/readme`, committed once.
struct Repo {
    _temp: tempfile::TempDir,
    root: PathBuf,
    env: BTreeMap<String, String>,
}

impl Repo {
    fn new() -> Repo {
        let temp = tempfile::tempdir().unwrap();
        let env = git_env(temp.path());
        let root = temp.path().join("repo");
        std::fs::create_dir_all(root.join("app")).unwrap();
        std::fs::create_dir_all(root.join("other")).unwrap();
        std::fs::write(root.join("app/main.go"), "package main\n").unwrap();
        std::fs::write(root.join("other/readme"), "hello\n").unwrap();
        git(&root, &env, &["init", "-q"]);
        git(&root, &env, &["add", "."]);
        git(&root, &env, &["commit", "-q", "-m", "first"]);
        Repo {
            _temp: temp,
            root,
            env,
        }
    }

    fn git(&self, args: &[&str]) -> String {
        git(&self.root, &self.env, args)
    }

    fn commit_all(&self, message: &str) {
        self.git(&["add", "."]);
        self.git(&["commit", "-q", "-m", message]);
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 9, 7, 5, 9).unwrap() + chrono::Duration::milliseconds(120)
}

fn inputs<'a>(context: &'a Path, env: &'a BTreeMap<String, String>) -> TagInputs<'a> {
    TagInputs {
        image_name: "skiff-app",
        context,
        env,
        input_digest: None,
        now: now(),
    }
}

fn git_policy(variant: GitVariant) -> TagPolicy {
    TagPolicy::GitCommit(GitCommitOptions {
        variant,
        prefix: None,
        ignore_changes: false,
    })
}

async fn run(policy: &TagPolicy, inputs: &TagInputs<'_>) -> TagOutcome {
    tag(policy, inputs)
        .await
        .unwrap_or_else(|e| panic!("{policy:?}: {e}"))
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit())
}

// ---- gitCommit --------------------------------------------------------------------------------

#[tokio::test]
async fn git_commit_sha_variants() {
    let repo = Repo::new();
    let context = repo.root.join("app");
    let inputs = inputs(&context, &repo.env);

    let full = run(&git_policy(GitVariant::CommitSha), &inputs).await;
    assert_eq!(full.tag, repo.git(&["rev-parse", "HEAD"]));
    assert_eq!(full.tag.len(), 40);
    assert!(is_hex(&full.tag));
    assert!(full.warnings.is_empty(), "{:?}", full.warnings);

    let short = run(&git_policy(GitVariant::AbbrevCommitSha), &inputs).await;
    assert_eq!(short.tag, repo.git(&["rev-parse", "--short", "HEAD"]));
    assert_eq!(short.tag.len(), 7);
    assert!(full.tag.starts_with(&short.tag));
}

#[tokio::test]
async fn git_tree_sha_is_the_context_tree() {
    let repo = Repo::new();
    let context = repo.root.join("app");
    let inputs = inputs(&context, &repo.env);

    let tree = run(&git_policy(GitVariant::TreeSha), &inputs).await.tag;
    assert_eq!(tree, repo.git(&["rev-parse", "HEAD:app"]));
    assert_ne!(tree, repo.git(&["rev-parse", "HEAD^{tree}"]));
    let abbrev = run(&git_policy(GitVariant::AbbrevTreeSha), &inputs)
        .await
        .tag;
    assert_eq!(abbrev.len(), 7);
    assert!(tree.starts_with(&abbrev));

    // A commit touching only `other/` keeps the tree of `app/`.
    std::fs::write(repo.root.join("other/readme"), "changed\n").unwrap();
    repo.commit_all("second");
    assert_eq!(
        run(&git_policy(GitVariant::TreeSha), &inputs).await.tag,
        tree
    );

    // At the repository root, the tree is the root tree.
    let root_inputs = TagInputs {
        context: &repo.root,
        ..inputs
    };
    assert_eq!(
        run(&git_policy(GitVariant::TreeSha), &root_inputs)
            .await
            .tag,
        repo.git(&["rev-parse", "HEAD^{tree}"])
    );
}

#[tokio::test]
async fn git_tags_variant_uses_describe() {
    let repo = Repo::new();
    let context = repo.root.join("app");
    let inputs = inputs(&context, &repo.env);
    let policy = git_policy(GitVariant::Tags);

    // No tag: the abbreviated commit.
    let untagged = run(&policy, &inputs).await.tag;
    assert_eq!(untagged, repo.git(&["rev-parse", "--short", "HEAD"]));

    repo.git(&["tag", "v1.0.0"]);
    assert_eq!(run(&policy, &inputs).await.tag, "v1.0.0");

    std::fs::write(repo.root.join("app/main.go"), "package main // 2\n").unwrap();
    repo.commit_all("second");
    let described = run(&policy, &inputs).await.tag;
    let short = repo.git(&["rev-parse", "--short", "HEAD"]);
    assert_eq!(described, format!("v1.0.0-1-g{short}"));
    assert_eq!(GitVariant::default(), GitVariant::Tags);
}

#[tokio::test]
async fn git_tag_names_are_sanitized_with_a_warning() {
    let repo = Repo::new();
    repo.git(&["tag", "release/2024+1"]);
    let context = repo.root.join("app");
    let outcome = run(&git_policy(GitVariant::Tags), &inputs(&context, &repo.env)).await;
    assert_eq!(outcome.tag, "release_2024_1");
    assert_eq!(outcome.warnings.len(), 1);
    assert!(
        outcome.warnings[0].contains("release/2024+1"),
        "{:?}",
        outcome.warnings
    );
}

#[test]
fn sanitize_tag_matches_skaffold() {
    assert_eq!(sanitize_tag("v1.0.0"), "v1.0.0");
    assert_eq!(sanitize_tag("feature/x"), "feature_x");
    assert_eq!(sanitize_tag("-.-v1"), "___v1");
    assert_eq!(sanitize_tag(&"a".repeat(200)).len(), 128);
}

#[tokio::test]
async fn dirty_suffix_is_scoped_to_the_context() {
    let repo = Repo::new();
    let context = repo.root.join("app");
    let inputs = inputs(&context, &repo.env);
    let sha = repo.git(&["rev-parse", "HEAD"]);
    let policy = git_policy(GitVariant::CommitSha);

    // A change outside the context does not make it dirty.
    std::fs::write(repo.root.join("other/readme"), "changed\n").unwrap();
    assert_eq!(run(&policy, &inputs).await.tag, sha);

    // A modified tracked file in the context does.
    std::fs::write(context.join("main.go"), "package main // edited\n").unwrap();
    assert_eq!(run(&policy, &inputs).await.tag, format!("{sha}-dirty"));

    let ignoring = TagPolicy::GitCommit(GitCommitOptions {
        variant: GitVariant::CommitSha,
        prefix: None,
        ignore_changes: true,
    });
    assert_eq!(run(&ignoring, &inputs).await.tag, sha);

    // So does an untracked file.
    repo.git(&["checkout", "--", "app/main.go"]);
    assert_eq!(run(&policy, &inputs).await.tag, sha);
    std::fs::write(context.join("new.txt"), "new\n").unwrap();
    assert_eq!(run(&policy, &inputs).await.tag, format!("{sha}-dirty"));
}

#[tokio::test]
async fn prefix_goes_before_the_tag_and_dirty_after() {
    let repo = Repo::new();
    let context = repo.root.join("app");
    let inputs = inputs(&context, &repo.env);
    let short = repo.git(&["rev-parse", "--short", "HEAD"]);
    let policy = TagPolicy::GitCommit(GitCommitOptions {
        variant: GitVariant::AbbrevCommitSha,
        prefix: Some("dev-".to_owned()),
        ignore_changes: false,
    });
    assert_eq!(run(&policy, &inputs).await.tag, format!("dev-{short}"));
    std::fs::write(context.join("main.go"), "edited\n").unwrap();
    assert_eq!(
        run(&policy, &inputs).await.tag,
        format!("dev-{short}-dirty")
    );
}

#[tokio::test]
async fn outside_a_repository_falls_back_to_latest_with_a_warning() {
    let temp = tempfile::tempdir().unwrap();
    let env = git_env(temp.path());
    let context = temp.path().join("plain");
    std::fs::create_dir_all(&context).unwrap();
    for variant in [
        GitVariant::Tags,
        GitVariant::CommitSha,
        GitVariant::AbbrevCommitSha,
        GitVariant::TreeSha,
        GitVariant::AbbrevTreeSha,
    ] {
        let outcome = run(&git_policy(variant), &inputs(&context, &env)).await;
        assert_eq!(outcome.tag, "latest");
        assert_eq!(outcome.warnings.len(), 1, "{:?}", outcome.warnings);
        let warning = &outcome.warnings[0];
        assert!(warning.contains("not inside a git repository"), "{warning}");
        assert!(warning.contains("gitCommit"), "{warning}");
        assert!(warning.contains("sha256"), "{warning}");
        assert!(warning.contains("git init"), "{warning}");
    }
}

#[tokio::test]
async fn repository_without_commits_falls_back() {
    let temp = tempfile::tempdir().unwrap();
    let env = git_env(temp.path());
    let root = temp.path().join("empty");
    std::fs::create_dir_all(&root).unwrap();
    git(&root, &env, &["init", "-q"]);
    let outcome = run(&git_policy(GitVariant::CommitSha), &inputs(&root, &env)).await;
    assert_eq!(outcome.tag, "latest");
    assert!(
        outcome.warnings[0].contains("HEAD"),
        "{:?}",
        outcome.warnings
    );
}

#[tokio::test]
async fn missing_git_falls_back() {
    let repo = Repo::new();
    let mut env = repo.env.clone();
    env.insert("PATH".to_owned(), "/nonexistent-skiff-path".to_owned());
    let context = repo.root.join("app");
    let outcome = run(&git_policy(GitVariant::Tags), &inputs(&context, &env)).await;
    assert_eq!(outcome.tag, "latest");
    assert!(
        outcome.warnings[0].contains("install git"),
        "{:?}",
        outcome.warnings
    );
}

#[test]
fn git_variants_parse_case_insensitively() {
    assert_eq!("abbrevcommitsha".parse(), Ok(GitVariant::AbbrevCommitSha));
    assert_eq!("TreeSha".parse(), Ok(GitVariant::TreeSha));
    assert_eq!("".parse(), Ok(GitVariant::Tags));
    assert!(
        "Branch"
            .parse::<GitVariant>()
            .unwrap_err()
            .to_string()
            .contains("Branch")
    );
    assert_eq!(GitVariant::AbbrevTreeSha.as_str(), "AbbrevTreeSha");
}

// ---- sha256, inputDigest -----------------------------------------------------------------------

#[tokio::test]
async fn sha256_is_latest_or_the_written_tag() {
    let env = BTreeMap::new();
    let dir = Path::new(".");
    let outcome = run(&TagPolicy::Sha256, &inputs(dir, &env)).await;
    assert_eq!(
        outcome,
        TagOutcome {
            tag: "latest".to_owned(),
            warnings: vec![]
        }
    );
    let with_tag = TagInputs {
        image_name: "localhost:5000/app:v2",
        ..inputs(dir, &env)
    };
    assert_eq!(run(&TagPolicy::Sha256, &with_tag).await.tag, "v2");
}

#[tokio::test]
async fn input_digest_uses_the_given_digest() {
    let env = BTreeMap::new();
    let dir = Path::new(".");
    let digest = "ab".repeat(32);
    let with_digest = TagInputs {
        input_digest: Some(&digest),
        ..inputs(dir, &env)
    };
    assert_eq!(run(&TagPolicy::InputDigest, &with_digest).await.tag, digest);
    let err = tag(&TagPolicy::InputDigest, &inputs(dir, &env))
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::Tag { .. }), "{err:?}");
    assert!(err.to_string().contains("inputDigest"), "{err}");
}

// ---- dateTime ----------------------------------------------------------------------------------

fn date_time(format: Option<&str>, timezone: Option<&str>) -> TagPolicy {
    TagPolicy::DateTime {
        format: format.map(str::to_owned),
        timezone: timezone.map(str::to_owned),
    }
}

#[tokio::test]
async fn date_time_default_format() {
    let env = BTreeMap::new();
    let dir = Path::new(".");
    let outcome = run(&date_time(None, Some("UTC")), &inputs(dir, &env)).await;
    assert_eq!(outcome.tag, "2024-03-09_07-05-09.12_UTC");
    assert!(outcome.warnings.is_empty());
    assert_eq!(DEFAULT_DATE_TIME_FORMAT, "2006-01-02_15-04-05.999_MST");
}

#[tokio::test]
async fn date_time_zones() {
    let env = BTreeMap::new();
    let dir = Path::new(".");
    let i = inputs(dir, &env);
    assert_eq!(
        run(&date_time(None, Some("Europe/Paris")), &i).await.tag,
        "2024-03-09_08-05-09.12_CET"
    );
    assert_eq!(
        run(
            &date_time(
                Some("2006-01-02T15:04:05Z07:00 MST"),
                Some("America/New_York")
            ),
            &i
        )
        .await
        .tag,
        "2024-03-09T02:05:09-05:00 EST"
    );
    // Zones the tz database names by their offset.
    assert_eq!(
        run(&date_time(Some("15:04 MST"), Some("America/Sao_Paulo")), &i)
            .await
            .tag,
        "04:05 -03"
    );
    let err = tag(&date_time(None, Some("Mars/Olympus")), &i)
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::Tag { .. }), "{err:?}");
    assert!(err.to_string().contains("Mars/Olympus"), "{err}");
}

#[tokio::test]
async fn date_time_local_uses_tz_from_the_env_map() {
    let dir = Path::new(".");
    let env = BTreeMap::from([("TZ".to_owned(), "Asia/Kolkata".to_owned())]);
    assert_eq!(
        run(&date_time(Some("15:04:05 MST"), None), &inputs(dir, &env))
            .await
            .tag,
        "12:35:09 IST"
    );
    assert_eq!(
        run(
            &date_time(Some("15:04 MST"), Some("Local")),
            &inputs(dir, &env)
        )
        .await
        .tag,
        "12:35 IST"
    );
    let colon = BTreeMap::from([("TZ".to_owned(), ":Europe/Paris".to_owned())]);
    assert_eq!(
        run(&date_time(Some("15:04"), None), &inputs(dir, &colon))
            .await
            .tag,
        "08:05"
    );
    let empty = BTreeMap::from([("TZ".to_owned(), String::new())]);
    assert_eq!(
        run(&date_time(Some("15:04 MST"), None), &inputs(dir, &empty))
            .await
            .tag,
        "07:05 UTC"
    );
    let bogus = BTreeMap::from([("TZ".to_owned(), "Nowhere/Special".to_owned())]);
    let outcome = run(&date_time(Some("15:04 MST"), None), &inputs(dir, &bogus)).await;
    assert_eq!(outcome.tag, "07:05 UTC");
    assert!(outcome.warnings[0].contains("Nowhere/Special"));
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, nanos: u32) -> DateTime<chrono_tz::Tz> {
    chrono_tz::UTC
        .with_ymd_and_hms(y, mo, d, h, mi, s)
        .unwrap()
        .with_nanosecond_checked(nanos)
}

trait WithNanos {
    fn with_nanosecond_checked(self, nanos: u32) -> Self;
}

impl WithNanos for DateTime<chrono_tz::Tz> {
    fn with_nanosecond_checked(self, nanos: u32) -> Self {
        chrono::Timelike::with_nanosecond(&self, nanos).unwrap()
    }
}

/// Expected values are what Go's `time.Time.Format` prints.
#[test]
fn go_layouts() {
    let t = utc(2024, 3, 9, 7, 5, 9, 120_000_000);
    let cases = [
        ("2006-01-02_15-04-05.999_MST", "2024-03-09_07-05-09.12_UTC"),
        ("Mon Jan _2 15:04:05 2006", "Sat Mar  9 07:05:09 2024"),
        ("2006-01-02T15:04:05Z07:00", "2024-03-09T07:05:09Z"),
        (
            "2006-01-02T15:04:05.999999999Z07:00",
            "2024-03-09T07:05:09.12Z",
        ),
        (
            "Mon, 02 Jan 2006 15:04:05 -0700",
            "Sat, 09 Mar 2024 07:05:09 +0000",
        ),
        ("02 Jan 06 15:04 MST", "09 Mar 24 07:05 UTC"),
        ("3:04PM", "7:05AM"),
        ("Jan _2 15:04:05.000", "Mar  9 07:05:09.120"),
        ("Jan _2 15:04:05.000000", "Mar  9 07:05:09.120000"),
        ("Monday, January 2, 2006", "Saturday, March 9, 2024"),
        ("06 1 2 3 4 5 pm PM", "24 3 9 7 5 9 am AM"),
        ("002 __2", "069  69"),
        (",000 ,999 .9 .0", ",120 ,12 .1 .1"),
        ("20060102150405", "20240309070509"),
        (
            "Z07 -07 -070000 Z07:00:00 -07:00:00 Z0700",
            "Z +00 +000000 Z +00:00:00 Z",
        ),
        ("x_2006", "x_2024"),
        ("Month Jann Mond", "Month Jann Mond"),
        ("v1.5", "v3.9"),
        ("", ""),
        ("héllo 2006 ✓", "héllo 2024 ✓"),
    ];
    for (layout, expected) in cases {
        assert_eq!(format_go_time(layout, &t), expected, "layout {layout:?}");
    }

    let whole = utc(2024, 3, 9, 7, 5, 9, 0);
    assert_eq!(
        format_go_time("05.999|05,999|05.000", &whole),
        "09|09|09.000"
    );

    let late = utc(2024, 12, 31, 23, 59, 59, 5_000_000);
    assert_eq!(
        format_go_time("03:04 PM Jan 002 __2", &late),
        "11:59 PM Dec 366 366"
    );
    assert_eq!(format_go_time("05.999", &late), "59.005");

    let midnight = utc(2024, 1, 1, 0, 0, 0, 0);
    assert_eq!(
        format_go_time("3 03 PM _2 2 002", &midnight),
        "12 12 AM  1 1 001"
    );

    let kolkata = t.with_timezone(&chrono_tz::Asia::Kolkata);
    assert_eq!(
        format_go_time("15:04 -07:00:00 Z0700 -07 MST", &kolkata),
        "12:35 +05:30:00 +0530 +05 IST"
    );
    let new_york = t.with_timezone(&chrono_tz::America::New_York);
    assert_eq!(
        format_go_time("Z07:00 -0700 MST", &new_york),
        "-05:00 -0500 EST"
    );
}

// ---- envTemplate, customTemplate --------------------------------------------------------------

fn template(source: &str) -> Template {
    Template::parse(source).unwrap()
}

#[tokio::test]
async fn env_template_sees_env_and_image_name() {
    let env = BTreeMap::from([
        ("USER".to_owned(), "dev".to_owned()),
        ("IMAGE_NAME".to_owned(), "ignored".to_owned()),
    ]);
    let dir = Path::new(".");
    let policy = TagPolicy::EnvTemplate {
        template: template("{{.IMAGE_NAME}}-{{.USER}}"),
    };
    assert_eq!(run(&policy, &inputs(dir, &env)).await.tag, "skiff-app-dev");
}

#[tokio::test]
async fn env_template_missing_variable_names_the_field() {
    let env = BTreeMap::new();
    let dir = Path::new(".");
    let policy = TagPolicy::EnvTemplate {
        template: template("{{.RELEASE}}"),
    };
    let err = tag(&policy, &inputs(dir, &env)).await.unwrap_err();
    match &err {
        BuildError::Template { image, field, .. } => {
            assert_eq!(image, "skiff-app");
            assert!(field.contains("envTemplate"), "{field}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("RELEASE"), "{err}");
}

#[tokio::test]
async fn custom_template_renders_components() {
    let repo = Repo::new();
    let context = repo.root.join("app");
    let mut env = repo.env.clone();
    env.insert("FOO".to_owned(), "foo".to_owned());
    let inputs = inputs(&context, &env);
    let short = repo.git(&["rev-parse", "--short", "HEAD"]);

    let policy = TagPolicy::CustomTemplate {
        template: template("{{.FOO}}-{{.GIT}}-{{.WHEN}}"),
        components: vec![
            (
                "FOO".to_owned(),
                TagPolicy::EnvTemplate {
                    template: template("{{.FOO}}"),
                },
            ),
            ("GIT".to_owned(), git_policy(GitVariant::AbbrevCommitSha)),
            ("WHEN".to_owned(), date_time(Some("20060102"), Some("UTC"))),
        ],
    };
    assert_eq!(
        run(&policy, &inputs).await.tag,
        format!("foo-{short}-20240309")
    );

    // Only components are variables: the environment is not.
    let env_only = TagPolicy::CustomTemplate {
        template: template("{{.FOO}}"),
        components: vec![],
    };
    let err = tag(&env_only, &inputs).await.unwrap_err();
    assert!(matches!(err, BuildError::Template { .. }), "{err:?}");
    assert!(err.to_string().contains("FOO"), "{err}");
}

#[tokio::test]
async fn custom_template_predefined_components() {
    let repo = Repo::new();
    let context = repo.root.join("app");
    let in_repo = inputs(&context, &repo.env);
    let described = repo.git(&["describe", "--tags", "--always"]);
    let policy = TagPolicy::CustomTemplate {
        template: template("{{.GIT}}_{{.SHA}}"),
        components: vec![],
    };
    assert_eq!(
        run(&policy, &in_repo).await.tag,
        format!("{described}_latest")
    );

    // Outside a repository the predefined GIT is empty (Skaffold ignores its error)...
    let temp = tempfile::tempdir().unwrap();
    let env = git_env(temp.path());
    let plain = inputs(temp.path(), &env);
    let outcome = run(&policy, &plain).await;
    assert_eq!(outcome.tag, "_latest");
    assert!(!outcome.warnings.is_empty());

    // ...while an explicit gitCommit component makes the whole tagger fall back to `latest`.
    let explicit = TagPolicy::CustomTemplate {
        template: template("v-{{.G}}"),
        components: vec![("G".to_owned(), git_policy(GitVariant::CommitSha))],
    };
    let outcome = run(&explicit, &plain).await;
    assert_eq!(outcome.tag, "latest");
    assert!(
        outcome.warnings[0].contains("component G"),
        "{:?}",
        outcome.warnings
    );
}

#[tokio::test]
async fn custom_template_rejects_nested_custom_templates() {
    let env = BTreeMap::new();
    let dir = Path::new(".");
    let nested = TagPolicy::CustomTemplate {
        template: template("{{.INNER}}"),
        components: vec![(
            "INNER".to_owned(),
            TagPolicy::CustomTemplate {
                template: template("x"),
                components: vec![],
            },
        )],
    };
    let err = tag(&nested, &inputs(dir, &env)).await.unwrap_err();
    assert!(err.to_string().contains("customTemplate"), "{err}");
}

// ---- default repo, tagged ---------------------------------------------------------------------

/// Skaffold's own table (`pkg/skaffold/docker/default_repo_test.go`).
#[test]
fn default_repo_matches_skaffold() {
    let digest = "sha256:81daf011d63b68cfa514ddab7741a1adddd59d3264118dfb0fd9266328bb8883";
    let img_digest = format!("img@{digest}");
    let img_tag_digest = format!("img:tag@{digest}");
    let cases: Vec<(&str, Option<&str>, String)> = vec![
        (
            "gcr.io/some/registry",
            Some("gcr.io/default"),
            "gcr.io/default/gcr.io/some/registry".into(),
        ),
        ("gcr.io/some/registry", None, "gcr.io/some/registry".into()),
        (
            "gcr.io/some/registry",
            Some(""),
            "gcr.io/some/registry".into(),
        ),
        (
            "gcr.io/default/registry",
            Some("gcr.io/default"),
            "gcr.io/default/registry".into(),
        ),
        (
            "eu.gcr.io/project/registry",
            Some("eu.gcr.io/project"),
            "eu.gcr.io/project/registry".into(),
        ),
        (
            "gcr.io/default/example/registry",
            Some("gcr.io/default/repository"),
            "gcr.io/default/repository/example/registry".into(),
        ),
        (
            "gcr.io/some/registry",
            Some("aws_account_id.dkr.ecr.region.amazonaws.com"),
            "aws_account_id.dkr.ecr.region.amazonaws.com/gcr_io_some_registry".into(),
        ),
        (
            "gcr.io/k8s-skaffold/skaffold-example",
            Some("gcr.io/k8s-skaffold"),
            "gcr.io/k8s-skaffold/skaffold-example".into(),
        ),
        (
            "img:tag",
            Some("gcr.io/default"),
            "gcr.io/default/img:tag".into(),
        ),
        (
            &img_digest,
            Some("gcr.io/default"),
            format!("gcr.io/default/img@{digest}"),
        ),
        (
            &img_tag_digest,
            Some("gcr.io/default"),
            format!("gcr.io/default/img:tag@{digest}"),
        ),
        ("myimage", Some("gcr.io/proj"), "gcr.io/proj/myimage".into()),
        (
            "myimage",
            Some("localhost:5000"),
            "localhost:5000/myimage".into(),
        ),
        (
            "localhost:5000/app",
            Some("localhost:5000"),
            "localhost:5000/app".into(),
        ),
        (
            "gcr.io/other/my.image",
            Some("localhost:5000/team"),
            "localhost:5000/team/gcr_io_other_my_image".into(),
        ),
        (
            "gcr.io/other/app:v1",
            Some("us-docker.pkg.dev/my-project/repo"),
            "us-docker.pkg.dev/my-project/repo/gcr.io/other/app:v1".into(),
        ),
    ];
    for (image, repo, expected) in cases {
        assert_eq!(
            apply_default_repo(image, repo),
            expected,
            "{image} with {repo:?}"
        );
    }
}

#[test]
fn default_repo_truncates_long_names() {
    let image = "gcr.io/herewehaveanincrediblylongregistryname/herewealsohaveanabnormallylongimagename/doubtyouveseenanimagethislong/butyouneverknowdoyouimeanpeopledosomecrazystuffoutthere/goodluckpushingthistoanyregistrymyfriend";
    let expected = "aws_account_id.dkr.ecr.region.amazonaws.com/gcr_io_herewehaveanincrediblylongregistryname_herewealsohaveanabnormallylongimagename_doubtyouveseenanimagethislong_butyouneverknowdoyouimeanpeopledosomecrazystuffoutthere_goodluckpushingthistoanyregistrymyfrien";
    assert_eq!(
        apply_default_repo(image, Some("aws_account_id.dkr.ecr.region.amazonaws.com")),
        expected
    );
    assert_eq!(expected.len(), 255);
}

#[test]
fn tagged_builds_checked_references() {
    assert_eq!(
        tagged("localhost:5000/app", "v1").unwrap().to_string(),
        "localhost:5000/app:v1"
    );
    // An existing tag or digest is replaced.
    assert_eq!(
        tagged("app:old@sha256:abcd", "new").unwrap().to_string(),
        "app:new"
    );
    for bad in ["", "a/b", "-x", ".x", "x y", &"a".repeat(129)] {
        let err = tagged("app", bad).unwrap_err();
        assert!(matches!(err, BuildError::Tag { .. }), "{bad:?}: {err:?}");
    }
    let err = tagged("My App", "v1").unwrap_err();
    assert!(err.to_string().contains("My App"), "{err}");
}
