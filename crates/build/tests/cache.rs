//! Tests of the cache key and the persisted artifact cache.
#![allow(clippy::unwrap_used)] // A failing unwrap is a failing test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use skiff_build::artifact::{CustomSpec, DockerSpec, Requirement};
use skiff_build::cache::{
    ArtifactCache, CACHE_FORMAT_VERSION, CacheInputs, CachedImage, builder_fingerprint, cache_key,
    cache_key_async,
};
use skiff_build::{ArtifactSpec, BuildError, BuilderSpec};
use skiff_types::template::Template;

fn write(dir: &Path, name: &str, contents: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

/// A context with three files and the inputs naming them.
fn fixture() -> (tempfile::TempDir, CacheInputs) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Dockerfile", "FROM scratch\nCOPY . /\n");
    write(dir.path(), "src/main.go", "package main\n");
    write(dir.path(), "src/util/util.go", "package util\n");
    let inputs = CacheInputs {
        builder_fingerprint: builder_fingerprint(&docker_artifact(dir.path())),
        build_args: BTreeMap::from([("VERSION".to_owned(), "1.0".to_owned())]),
        context: dir.path().to_path_buf(),
        files: vec![
            PathBuf::from("Dockerfile"),
            PathBuf::from("src/main.go"),
            PathBuf::from("src/util/util.go"),
        ],
        required_keys: vec!["a".repeat(64)],
    };
    (dir, inputs)
}

fn docker_artifact(context: &Path) -> ArtifactSpec {
    ArtifactSpec {
        image: "app".to_owned(),
        context: context.to_path_buf(),
        builder: BuilderSpec::Docker(DockerSpec {
            dockerfile: "Dockerfile".to_owned(),
            build_args: BTreeMap::from([(
                "VERSION".to_owned(),
                Some(Template::parse("{{.V}}").unwrap()),
            )]),
            ..DockerSpec::default()
        }),
        requires: vec![],
        platforms: vec![],
    }
}

fn key(inputs: &CacheInputs) -> String {
    cache_key(inputs).unwrap()
}

#[test]
fn same_inputs_same_key() {
    let (_dir, inputs) = fixture();
    let first = key(&inputs);
    assert_eq!(first.len(), 64);
    assert!(
        first
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(key(&inputs), first);

    // The same files in another directory give the same key.
    let (_other, mut moved) = fixture();
    moved.builder_fingerprint = inputs.builder_fingerprint.clone();
    assert_eq!(key(&moved), first);
}

#[test]
fn file_order_and_duplicates_do_not_matter() {
    let (_dir, mut inputs) = fixture();
    let before = key(&inputs);
    inputs.files.reverse();
    assert_eq!(key(&inputs), before);
    inputs.files.push(PathBuf::from("./src/main.go"));
    assert_eq!(key(&inputs), before);
}

#[test]
fn one_changed_byte_changes_the_key() {
    let (dir, inputs) = fixture();
    let before = key(&inputs);
    write(dir.path(), "src/main.go", "package mainx\n");
    assert_ne!(key(&inputs), before);
    write(dir.path(), "src/main.go", "package main\n");
    assert_eq!(key(&inputs), before);
    write(dir.path(), "src/main.go", "package maim\n");
    assert_ne!(key(&inputs), before);
}

#[cfg(unix)]
#[test]
fn exec_bit_changes_the_key() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, inputs) = fixture();
    let before = key(&inputs);
    let path = dir.path().join("src/main.go");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let executable = key(&inputs);
    assert_ne!(executable, before);
    // Other permission bits do not matter.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(key(&inputs), before);
}

#[test]
fn build_args_fingerprint_and_required_keys_change_the_key() {
    let (_dir, inputs) = fixture();
    let before = key(&inputs);

    let mut changed = inputs.clone();
    changed
        .build_args
        .insert("VERSION".to_owned(), "1.1".to_owned());
    assert_ne!(key(&changed), before);

    let mut added = inputs.clone();
    added.build_args.insert("EXTRA".to_owned(), String::new());
    assert_ne!(key(&added), before);

    let mut required = inputs.clone();
    required.required_keys = vec!["b".repeat(64)];
    assert_ne!(key(&required), before);

    let mut more_required = inputs.clone();
    more_required.required_keys.push("c".repeat(64));
    assert_ne!(key(&more_required), before);

    let mut fingerprint = inputs.clone();
    fingerprint.builder_fingerprint.push('x');
    assert_ne!(key(&fingerprint), before);

    // A file renamed with the same contents is a different input.
    let mut fewer = inputs.clone();
    fewer.files.pop();
    assert_ne!(key(&fewer), before);
}

#[test]
fn fields_cannot_bleed_into_each_other() {
    let (_dir, mut inputs) = fixture();
    inputs.build_args = BTreeMap::from([("AB".to_owned(), "C".to_owned())]);
    let one = key(&inputs);
    inputs.build_args = BTreeMap::from([("A".to_owned(), "BC".to_owned())]);
    assert_ne!(key(&inputs), one);
}

#[test]
fn builder_fingerprint_follows_options() {
    let dir = Path::new("/ctx");
    let base = docker_artifact(dir);
    let fingerprint = builder_fingerprint(&base);
    assert_eq!(builder_fingerprint(&base.clone()), fingerprint);

    // The context and image name are not part of it.
    let mut moved = base.clone();
    moved.context = PathBuf::from("/elsewhere");
    moved.image = "other".to_owned();
    assert_eq!(builder_fingerprint(&moved), fingerprint);

    let mut target = base.clone();
    if let BuilderSpec::Docker(docker) = &mut target.builder {
        docker.target = Some("prod".to_owned());
    }
    assert_ne!(builder_fingerprint(&target), fingerprint);

    let mut template = base.clone();
    if let BuilderSpec::Docker(docker) = &mut template.builder {
        docker.build_args.insert(
            "VERSION".to_owned(),
            Some(Template::parse("{{.W}}").unwrap()),
        );
    }
    assert_ne!(builder_fingerprint(&template), fingerprint);

    let mut platforms = base.clone();
    platforms.platforms = vec!["linux/arm64".to_owned()];
    assert_ne!(builder_fingerprint(&platforms), fingerprint);

    let mut requires = base.clone();
    requires.requires = vec![Requirement {
        image: "base".to_owned(),
        alias: Some("BASE".to_owned()),
    }];
    let with_alias = builder_fingerprint(&requires);
    assert_ne!(with_alias, fingerprint);
    requires.requires[0].alias = None;
    assert_ne!(builder_fingerprint(&requires), with_alias);

    let custom = |command: &str| ArtifactSpec {
        builder: BuilderSpec::Custom(CustomSpec {
            build_command: Some(command.to_owned()),
            ..CustomSpec::default()
        }),
        ..base.clone()
    };
    assert_ne!(builder_fingerprint(&custom("make")), fingerprint);
    assert_ne!(
        builder_fingerprint(&custom("make")),
        builder_fingerprint(&custom("make image"))
    );
}

#[test]
fn missing_dependency_is_an_error_naming_it() {
    let (dir, mut inputs) = fixture();
    inputs.files.push(PathBuf::from("src/gone.go"));
    match cache_key(&inputs).unwrap_err() {
        BuildError::Io { path, source } => {
            assert_eq!(path, dir.path().join("src/gone.go"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn many_files_hash_in_parallel_and_stay_order_independent() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 0..300 {
        let name = format!("d{}/f{i}.txt", i % 7);
        write(dir.path(), &name, &format!("file {i}\n"));
        files.push(PathBuf::from(name));
    }
    let mut inputs = CacheInputs {
        context: dir.path().to_path_buf(),
        files,
        ..CacheInputs::default()
    };
    let before = key(&inputs);
    inputs.files.reverse();
    assert_eq!(key(&inputs), before);
    write(dir.path(), "d3/f150.txt", "changed\n");
    assert_ne!(key(&inputs), before);
    inputs.files.push(PathBuf::from("d0/missing.txt"));
    assert!(cache_key(&inputs).is_err());
}

#[cfg(unix)]
#[test]
fn symlinks_contribute_their_target() {
    let (dir, mut inputs) = fixture();
    std::os::unix::fs::symlink("src/main.go", dir.path().join("link")).unwrap();
    inputs.files.push(PathBuf::from("link"));
    let before = key(&inputs);
    std::fs::remove_file(dir.path().join("link")).unwrap();
    std::os::unix::fs::symlink("src/util/util.go", dir.path().join("link")).unwrap();
    assert_ne!(key(&inputs), before);
    // A dangling link is still an input, not an error.
    std::fs::remove_file(dir.path().join("link")).unwrap();
    std::os::unix::fs::symlink("nowhere", dir.path().join("link")).unwrap();
    cache_key(&inputs).unwrap();
}

#[tokio::test]
async fn async_key_matches() {
    let (_dir, inputs) = fixture();
    assert_eq!(cache_key_async(inputs.clone()).await.unwrap(), key(&inputs));
}

// ---- ArtifactCache ---------------------------------------------------------------------------

fn image(name: &str, tag: &str) -> CachedImage {
    CachedImage {
        image_name: name.to_owned(),
        reference: format!("{name}:{tag}"),
        image_id: Some(format!("sha256:{}", "1".repeat(64))),
        pushed: false,
    }
}

#[test]
fn missing_file_is_an_empty_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ArtifactCache::open(dir.path().join("nope/cache.json")).unwrap();
    assert!(cache.is_empty());
    assert!(cache.warnings().is_empty());
}

#[test]
fn entries_persist_across_open_save_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/skiff/cache.json");
    let mut cache = ArtifactCache::open(&path).unwrap();
    cache.record("k1", image("app", "v1"));
    cache.record(
        "k2",
        CachedImage {
            reference: format!("web:v2@sha256:{}", "2".repeat(64)),
            image_id: None,
            pushed: true,
            ..image("web", "v2")
        },
    );
    cache.save().unwrap();

    let reopened = ArtifactCache::open(&path).unwrap();
    assert!(reopened.warnings().is_empty());
    assert_eq!(reopened.len(), 2);
    assert_eq!(reopened.lookup("k1", "app"), Some(&image("app", "v1")));
    let web = reopened.lookup("k2", "web").unwrap();
    assert!(web.pushed);
    assert_eq!(web.image_id, None);
    // The key alone is not enough: the image name must match too.
    assert_eq!(reopened.lookup("k1", "web"), None);
    assert_eq!(reopened.lookup("k3", "app"), None);

    let text = std::fs::read_to_string(&path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["version"], CACHE_FORMAT_VERSION);
}

#[test]
fn record_replaces_and_caps() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = ArtifactCache::open(dir.path().join("cache.json")).unwrap();
    cache.record("k", image("app", "v1"));
    cache.record("k", image("app", "v2"));
    cache.record("k", image("other", "v1"));
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.lookup("k", "app").unwrap().reference, "app:v2");

    cache.set_max_entries(3);
    for i in 0..5 {
        cache.record(format!("n{i}"), image("app", &format!("n{i}")));
    }
    assert_eq!(cache.len(), 3);
    assert!(cache.lookup("n1", "app").is_none());
    assert!(cache.lookup("n2", "app").is_some());
    assert!(cache.lookup("n4", "app").is_some());
}

#[test]
fn default_cap_keeps_the_file_small() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    let mut cache = ArtifactCache::open(&path).unwrap();
    for i in 0..1100 {
        cache.record(format!("{i:064}"), image("app", &format!("t{i}")));
    }
    assert_eq!(cache.len(), 1000);
    cache.save().unwrap();
    let reopened = ArtifactCache::open(&path).unwrap();
    assert_eq!(reopened.len(), 1000);
    assert!(reopened.lookup(&format!("{:064}", 99), "app").is_none());
    assert!(reopened.lookup(&format!("{:064}", 100), "app").is_some());
}

#[test]
fn corrupt_file_gives_an_empty_cache_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    for garbage in [
        "{not json",
        "",
        "[1,2,3]",
        "{\"version\":1,\"entries\":[{\"key\":3}]}",
    ] {
        std::fs::write(&path, garbage).unwrap();
        let mut cache = ArtifactCache::open(&path).unwrap();
        assert!(cache.is_empty(), "{garbage:?}");
        assert_eq!(cache.warnings().len(), 1, "{garbage:?}");
        assert!(
            cache.warnings()[0].contains("cache.json"),
            "{:?}",
            cache.warnings()
        );
        // Saving over it repairs it.
        cache.record("k", image("app", "v1"));
        cache.save().unwrap();
        let repaired = ArtifactCache::open(&path).unwrap();
        assert!(repaired.warnings().is_empty());
        assert_eq!(repaired.len(), 1);
    }
}

#[test]
fn other_format_version_is_ignored_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    std::fs::write(
        &path,
        r#"{"version":999,"entries":"whatever the future holds"}"#,
    )
    .unwrap();
    let cache = ArtifactCache::open(&path).unwrap();
    assert!(cache.is_empty());
    assert!(cache.warnings().is_empty());
}

#[test]
fn save_is_atomic_and_leaves_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    let mut cache = ArtifactCache::open(&path).unwrap();
    for round in 0..5 {
        cache.record(format!("k{round}"), image("app", "v"));
        cache.save().unwrap();
    }
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["cache.json"]);
    assert_eq!(ArtifactCache::open(&path).unwrap().len(), 5);
}

#[test]
fn unwritable_location_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the parent directory should be: fails even for root.
    std::fs::write(dir.path().join("blocker"), "").unwrap();
    let path = dir.path().join("blocker/cache.json");
    let mut cache = ArtifactCache::open(&path).unwrap();
    cache.record("k", image("app", "v1"));
    let err = cache.save().unwrap_err();
    match &err {
        BuildError::Io { path: named, .. } => assert_eq!(named, &path),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("blocker/cache.json"), "{err}");
}

#[cfg(unix)]
#[test]
fn read_only_directory_is_an_io_error_naming_the_path() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    let path = locked.join("cache.json");
    let mut cache = ArtifactCache::open(&path).unwrap();
    cache.record("k", image("app", "v1"));
    cache.save().unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    // root ignores permissions; there is nothing to test then.
    let probe = locked.join("probe");
    let privileged = std::fs::write(&probe, "").is_ok();
    let _ = std::fs::remove_file(&probe);
    if !privileged {
        cache.record("k2", image("app", "v2"));
        match cache.save().unwrap_err() {
            BuildError::Io { path: named, .. } => assert_eq!(named, path),
            other => panic!("{other:?}"),
        }
        // The old file is intact.
        assert_eq!(ArtifactCache::open(&path).unwrap().len(), 1);
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Settled files are remembered by their size, inode and times; a rewrite of the same length
/// still changes the key.
#[test]
fn remembered_digests_follow_rewrites_of_settled_files() {
    let (dir, inputs) = fixture();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let before = key(&inputs);
    assert_eq!(
        key(&inputs),
        before,
        "a second key of settled files is the same"
    );
    write(dir.path(), "src/main.go", "package maim\n");
    let changed = key(&inputs);
    assert_ne!(changed, before);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(
        key(&inputs),
        changed,
        "the rewritten file, once settled, keys the same"
    );
    write(dir.path(), "src/main.go", "package main\n");
    assert_eq!(key(&inputs), before);
}
