//! Build context packing, dependency discovery and Dockerfile parsing, on real files: the
//! Dockerfiles under `tests/fixtures/dockerfiles/` and temporary context trees.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use skiff_build::BuildError;
use skiff_build::context::{LARGE_CONTEXT_BYTES, pack};
use skiff_build::dependencies::{dockerfile_dependencies, sync_map};
use skiff_build::dockerfile::{self, Command, CopySource, InstructionKind};
use skiff_build::dockerignore::DockerIgnore;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dockerfiles")
        .join(name);
    fs::read_to_string(path).unwrap()
}

fn no_args() -> BTreeMap<String, Option<String>> {
    BTreeMap::new()
}

/// Create `files` (path, content) under a new temporary directory.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let full = dir.path().join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, content).unwrap();
    }
    dir
}

/// One archive entry: (path, type, mode, content or link target).
#[derive(Debug, PartialEq, Eq)]
struct TarEntry {
    path: String,
    kind: char,
    mode: u32,
    data: String,
}

fn entries(tar: &[u8]) -> Vec<TarEntry> {
    let mut archive = tar::Archive::new(tar);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        assert_eq!(header.mtime().unwrap(), 0);
        assert_eq!(header.uid().unwrap(), 0);
        assert_eq!(header.gid().unwrap(), 0);
        assert_eq!(header.username().unwrap().unwrap_or(""), "");
        assert_eq!(header.groupname().unwrap().unwrap_or(""), "");
        let kind = match header.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Regular => 'f',
            other => panic!("unexpected entry type {other:?}"),
        };
        let path = entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_owned();
        let data = if kind == 'l' {
            entry
                .link_name()
                .unwrap()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        } else {
            let mut s = String::new();
            entry.read_to_string(&mut s).unwrap();
            s
        };
        out.push(TarEntry {
            path,
            kind,
            mode: header.mode().unwrap(),
            data,
        });
    }
    out
}

fn paths(tar: &[u8]) -> Vec<String> {
    entries(tar).into_iter().map(|e| e.path).collect()
}

// ---------------------------------------------------------------------------------------------
// Dockerfile fixtures.

#[test]
fn go_multistage_fixture() {
    let parsed = dockerfile::parse(&fixture("go-multistage.Dockerfile"), &no_args()).unwrap();
    assert_eq!(parsed.stages.len(), 2);
    let builder = &parsed.stages[0];
    assert_eq!(builder.name.as_deref(), Some("builder"));
    assert_eq!(builder.base, "golang:1.22-alpine");
    assert_eq!(builder.base_line, 2);
    let keywords: Vec<&str> = builder
        .instructions
        .iter()
        .map(|i| i.keyword.as_str())
        .collect();
    assert_eq!(keywords, ["FROM", "WORKDIR", "COPY", "RUN", "COPY", "RUN"]);
    let InstructionKind::Copy(copy) = &builder.instructions[2].kind else {
        panic!()
    };
    assert_eq!(
        copy.source_paths().collect::<Vec<_>>(),
        ["go.mod", "go.sum"]
    );
    assert_eq!(copy.dest, "./");
    assert_eq!(copy.workdir, "/src");

    let last = &parsed.stages[1];
    assert_eq!(last.base, "alpine:3.19");
    assert_eq!(last.base_line, 9);
    let InstructionKind::Copy(copy) = &last.instructions[2].kind else {
        panic!()
    };
    assert_eq!(copy.from.as_deref(), Some("builder"));
    assert_eq!(copy.dest_path(), "/app");
    assert_eq!(
        last.instructions[4].kind,
        InstructionKind::Entrypoint(Command::Exec(vec!["/app/server".into()]))
    );
    assert_eq!(parsed.target_stage(None).unwrap(), 1);
    assert_eq!(parsed.stages_needed(1), [0, 1]);
    assert!(parsed.has_run());
}

#[test]
fn node_fixture() {
    let parsed = dockerfile::parse(&fixture("node.Dockerfile"), &no_args()).unwrap();
    assert_eq!(
        parsed.directives,
        [("syntax".to_owned(), "docker/dockerfile:1".to_owned())]
    );
    let stage = &parsed.stages[0];
    assert_eq!(stage.base, "node:20-alpine");
    let by_keyword = |k: &str| {
        stage
            .instructions
            .iter()
            .filter(|i| i.keyword == k)
            .collect::<Vec<_>>()
    };
    let env = by_keyword("ENV");
    assert_eq!(env[0].line, 4);
    assert_eq!(env[0].end_line, 5);
    assert_eq!(
        env[0].kind,
        InstructionKind::Env(vec![
            ("NODE_ENV".into(), "production".into()),
            ("PORT".into(), "3000".into())
        ])
    );
    let copies = by_keyword("COPY");
    let InstructionKind::Copy(first) = &copies[0].kind else {
        panic!()
    };
    assert_eq!(first.source_paths().collect::<Vec<_>>(), ["package*.json"]);
    let InstructionKind::Copy(second) = &copies[1].kind else {
        panic!()
    };
    assert_eq!(second.chown.as_deref(), Some("node:node"));
    assert_eq!(second.dest_path(), "/usr/src/app/src");
    assert_eq!(
        by_keyword("EXPOSE")[0].kind,
        InstructionKind::Expose(vec!["3000".into()])
    );
    assert_eq!(
        by_keyword("USER")[0].kind,
        InstructionKind::User("node".into())
    );
    assert_eq!(
        by_keyword("CMD")[0].kind,
        InstructionKind::Cmd(Command::Exec(vec!["node".into(), "src/index.js".into()]))
    );
}

#[test]
fn heredoc_fixture() {
    let parsed = dockerfile::parse(&fixture("heredoc.Dockerfile"), &no_args()).unwrap();
    let ins = &parsed.stages[0].instructions;
    let keywords: Vec<(&str, usize, usize)> = ins
        .iter()
        .map(|i| (i.keyword.as_str(), i.line, i.end_line))
        .collect();
    assert_eq!(
        keywords,
        [
            ("FROM", 2, 2),
            ("RUN", 3, 8),
            ("COPY", 9, 12),
            ("RUN", 13, 17),
            ("COPY", 18, 18),
            ("CMD", 19, 19),
        ]
    );
    let InstructionKind::Run(run) = &ins[1].kind else {
        panic!()
    };
    assert_eq!(run.heredocs.len(), 1);
    assert!(
        run.heredocs[0]
            .content
            .starts_with("set -eux\napt-get update\n")
    );
    let InstructionKind::Copy(copy) = &ins[2].kind else {
        panic!()
    };
    assert_eq!(copy.dest, "/etc/app/config.ini");
    let CopySource::Heredoc(doc) = &copy.sources[0] else {
        panic!()
    };
    assert_eq!(doc.name, "EOT");
    assert!(doc.chomp);
    assert!(!doc.expand, "a quoted delimiter turns expansion off");
    assert_eq!(doc.content, "[server]\nport = $PORT\n");
    let InstructionKind::Run(run) = &ins[3].kind else {
        panic!()
    };
    let names: Vec<&str> = run.heredocs.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["ONE", "TWO"]);
    assert_eq!(run.heredocs[1].content, "print(\"from python\")\n");
    assert_eq!(
        ins[5].kind,
        InstructionKind::Cmd(Command::Shell("python3 /app/app.py".into()))
    );
}

#[test]
fn mixed_fixture_with_escape_directive_and_args() {
    let text = fixture("mixed.Dockerfile");
    let parsed = dockerfile::parse(&text, &no_args()).unwrap();
    assert_eq!(parsed.escape, '`');
    assert_eq!(
        parsed.args_before_from,
        [
            ("BASE_IMAGE".to_owned(), Some("python".to_owned())),
            ("PY_VERSION".to_owned(), Some("3.12".to_owned()))
        ]
    );
    assert_eq!(parsed.stages.len(), 3);
    let base = &parsed.stages[0];
    assert_eq!(base.base, "python:3.12-slim");
    assert_eq!(base.platform.as_deref(), Some("$BUILDPLATFORM"));
    let ins = &base.instructions;
    assert_eq!(
        ins[2].kind,
        InstructionKind::Env(vec![
            ("APP_HOME".into(), "/opt/app".into()),
            ("PYTHONUNBUFFERED".into(), "1".into())
        ])
    );
    assert_eq!(ins[3].kind, InstructionKind::Workdir("/opt/app".into()));
    let InstructionKind::Copy(copy) = &ins[4].kind else {
        panic!()
    };
    assert_eq!(copy.chown.as_deref(), Some("app:app"));
    assert_eq!(copy.chmod.as_deref(), Some("644"));
    assert_eq!(copy.dest_path(), "/opt/app");
    let InstructionKind::Run(run) = &ins[5].kind else {
        panic!()
    };
    assert_eq!(
        run.command,
        Command::Shell("pip install       --no-cache-dir       -r requirements.txt".into())
    );
    assert_eq!((ins[5].line, ins[5].end_line), (10, 13));
    let InstructionKind::Copy(copy) = &ins[6].kind else {
        panic!()
    };
    assert!(copy.json);
    assert_eq!(copy.source_paths().collect::<Vec<_>>(), ["src dir/"]);
    assert_eq!(copy.dest_path(), "/opt/app/src");
    assert_eq!(
        ins[7].kind,
        InstructionKind::Shell(vec![
            "/bin/bash".into(),
            "-o".into(),
            "pipefail".into(),
            "-c".into()
        ])
    );
    // The final stage inherits `base`; only the `test` stage runs the tests.
    assert_eq!(parsed.stages[2].base_stage, Some(0));
    assert_eq!(parsed.stages_needed(2), [0, 2]);
    let test = parsed.target_stage(Some("test")).unwrap();
    assert_eq!(test, 1);
    let InstructionKind::Copy(copy) = &parsed.stages[1].instructions[1].kind else {
        panic!()
    };
    assert_eq!(copy.dest_path(), "/opt/app/tests");
    assert_eq!(
        parsed.stages[2].instructions[2].kind,
        InstructionKind::Cmd(Command::Exec(vec!["--help".into()]))
    );

    // Build args override the defaults before FROM.
    let mut args = BTreeMap::new();
    args.insert("PY_VERSION".to_owned(), Some("3.11".to_owned()));
    let parsed = dockerfile::parse(&text, &args).unwrap();
    assert_eq!(parsed.stages[0].base, "python:3.11-slim");
}

#[test]
fn fixture_dependencies_and_sync_map() {
    let dir = tree(&[
        ("Dockerfile", &fixture("go-multistage.Dockerfile")),
        (".dockerignore", ".git\n*.md\n!README.md\nbin/\n"),
        ("go.mod", "module x"),
        ("go.sum", ""),
        ("cmd/server/main.go", "package main"),
        ("internal/h/h.go", "package h"),
        ("CHANGELOG.md", ""),
        ("README.md", ""),
        (".git/HEAD", "ref"),
        ("bin/server", "binary"),
    ]);
    let ignore = DockerIgnore::for_artifact(dir.path(), Path::new("Dockerfile")).unwrap();
    let deps =
        dockerfile_dependencies(dir.path(), "Dockerfile", &no_args(), None, &ignore).unwrap();
    let files: Vec<PathBuf> = deps.files.into_iter().collect();
    let expected: Vec<PathBuf> = [
        ".dockerignore",
        "Dockerfile",
        "README.md",
        "cmd/server/main.go",
        "go.mod",
        "go.sum",
        "internal/h/h.go",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(files, expected);

    // The final stage copies only from `builder`: nothing to sync from the context.
    assert!(
        sync_map(dir.path(), "Dockerfile", &no_args(), None, &ignore)
            .unwrap()
            .is_empty()
    );
    let map = sync_map(
        dir.path(),
        "Dockerfile",
        &no_args(),
        Some("builder"),
        &ignore,
    )
    .unwrap();
    let pairs: Vec<(String, String)> = map
        .into_iter()
        .map(|m| (m.source.to_string_lossy().into_owned(), m.dest))
        .collect();
    let expected: Vec<(String, String)> = [
        ("go.mod", "/src/go.mod"),
        ("go.sum", "/src/go.sum"),
        (".dockerignore", "/src/.dockerignore"),
        ("Dockerfile", "/src/Dockerfile"),
        ("README.md", "/src/README.md"),
        ("cmd/server/main.go", "/src/cmd/server/main.go"),
        ("go.mod", "/src/go.mod"),
        ("go.sum", "/src/go.sum"),
        ("internal/h/h.go", "/src/internal/h/h.go"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    // `go.mod`/`go.sum` are copied twice to the same place; the map lists each pair once.
    let mut deduped = Vec::new();
    for pair in expected {
        if !deduped.contains(&pair) {
            deduped.push(pair);
        }
    }
    assert_eq!(pairs, deduped);

    // A parse error names the Dockerfile and the line.
    fs::write(
        dir.path().join("Dockerfile"),
        "FROM alpine\nCOPY only-one\n",
    )
    .unwrap();
    match dockerfile_dependencies(dir.path(), "Dockerfile", &no_args(), None, &ignore) {
        Err(BuildError::Dockerfile { path, line, .. }) => {
            assert_eq!(path, dir.path().join("Dockerfile"));
            assert_eq!(line, 2);
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Packing.

#[test]
fn pack_honours_dockerignore_with_exceptions() {
    let dir = tree(&[
        ("Dockerfile", "FROM alpine\nCOPY . /app\n"),
        (
            ".dockerignore",
            "# keep the context small\nnode_modules\n*.log\nbuild\n!build/keep.txt\nDockerfile\n.dockerignore\n",
        ),
        ("src/main.js", "console.log(1)"),
        ("node_modules/left-pad/index.js", "module.exports = 1"),
        ("debug.log", "noise"),
        ("src/nested.log", "kept: *.log only matches at the top"),
        ("build/out.bin", "x"),
        ("build/keep.txt", "kept"),
    ]);
    let ignore = DockerIgnore::for_artifact(dir.path(), Path::new("Dockerfile")).unwrap();
    let archive = pack(dir.path(), "Dockerfile", &ignore).unwrap();
    assert_eq!(
        paths(&archive.tar),
        [
            ".dockerignore",
            "Dockerfile",
            "build",
            "build/keep.txt",
            "src",
            "src/main.js",
            "src/nested.log",
        ]
    );
    assert_eq!(archive.dockerfile_in_archive, "Dockerfile");
    assert_eq!(archive.files, 5);
    let expected_bytes: usize = entries(&archive.tar)
        .iter()
        .filter(|e| e.kind == 'f')
        .map(|e| e.data.len())
        .sum();
    assert_eq!(archive.bytes, expected_bytes as u64);
    assert_eq!(archive.dockerignore, Some(dir.path().join(".dockerignore")));
}

#[test]
fn pack_uses_the_dockerfile_specific_ignore_file() {
    let dir = tree(&[
        ("docker/Dockerfile.dev", "FROM alpine\n"),
        ("docker/Dockerfile.dev.dockerignore", "secrets\n"),
        (".dockerignore", "src\n"),
        ("src/a", "a"),
        ("secrets/key", "k"),
    ]);
    let ignore =
        DockerIgnore::for_artifact(dir.path(), &dir.path().join("docker/Dockerfile.dev")).unwrap();
    let archive = pack(dir.path(), "docker/Dockerfile.dev", &ignore).unwrap();
    assert_eq!(
        paths(&archive.tar),
        [
            ".dockerignore",
            "docker",
            "docker/Dockerfile.dev",
            "docker/Dockerfile.dev.dockerignore",
            "src",
            "src/a",
        ]
    );
    assert_eq!(archive.dockerfile_in_archive, "docker/Dockerfile.dev");
}

#[cfg(unix)]
#[test]
fn pack_keeps_modes_and_symlinks_and_is_deterministic() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let dir = tree(&[
        ("Dockerfile", "FROM alpine\n"),
        ("run.sh", "#!/bin/sh\necho hi\n"),
        ("data/config.json", "{}"),
    ]);
    fs::set_permissions(dir.path().join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(
        dir.path().join("data/config.json"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    symlink("data/config.json", dir.path().join("config.json")).unwrap();
    // A link to a directory outside the context is archived as a link, not followed.
    let outside = tree(&[("secret", "do not send")]);
    symlink(outside.path(), dir.path().join("outside")).unwrap();

    let ignore = DockerIgnore::empty();
    let first = pack(dir.path(), "Dockerfile", &ignore).unwrap();
    let listed = entries(&first.tar);
    let find = |p: &str| listed.iter().find(|e| e.path == p).unwrap();
    assert_eq!(find("run.sh").mode, 0o755);
    assert_eq!(find("run.sh").kind, 'f');
    assert_eq!(find("data/config.json").mode, 0o600);
    assert_eq!(find("config.json").kind, 'l');
    assert_eq!(find("config.json").data, "data/config.json");
    assert_eq!(find("outside").kind, 'l');
    assert!(!listed.iter().any(|e| e.data == "do not send"));
    assert_eq!(find("data").kind, 'd');

    // Touching files (new mtimes) does not change the bytes.
    fs::write(dir.path().join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    let second = pack(dir.path(), "Dockerfile", &ignore).unwrap();
    assert_eq!(first.tar, second.tar);
    assert_eq!(first, second);
}

#[test]
fn pack_adds_a_dockerfile_outside_the_context_under_a_generated_name() {
    let root = tree(&[
        ("Dockerfile.shared", "FROM alpine\nCOPY . /\n"),
        ("app/main.py", "print(1)"),
    ]);
    let context = root.path().join("app");
    let archive = pack(&context, "../Dockerfile.shared", &DockerIgnore::empty()).unwrap();
    assert!(
        archive.dockerfile_in_archive.starts_with(".dockerfile."),
        "{}",
        archive.dockerfile_in_archive
    );
    let listed = entries(&archive.tar);
    let dockerfile = listed
        .iter()
        .find(|e| e.path == archive.dockerfile_in_archive)
        .unwrap();
    assert_eq!(dockerfile.data, "FROM alpine\nCOPY . /\n");
    assert!(listed.iter().any(|e| e.path == "main.py"));
    // Stable across packs.
    let again = pack(&context, "../Dockerfile.shared", &DockerIgnore::empty()).unwrap();
    assert_eq!(archive.dockerfile_in_archive, again.dockerfile_in_archive);
    // A missing Dockerfile is an I/O error naming it.
    match pack(&context, "../nope", &DockerIgnore::empty()) {
        Err(BuildError::Io { path, .. }) => assert!(path.ends_with("nope")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn largest_directories_are_ordered_by_size() {
    let big = "x".repeat(3000);
    let mid = "x".repeat(2000);
    let dir = tree(&[
        ("Dockerfile", "FROM alpine\n"),
        ("a/one", &mid),
        ("b/deep/one", &big),
        ("b/two", "xx"),
        ("c/one", &mid),
        ("d/one", "x"),
        ("e/one", "xx"),
        ("f/one", "xxx"),
        ("top-level-file", &big),
    ]);
    let archive = pack(dir.path(), "Dockerfile", &DockerIgnore::empty()).unwrap();
    let dirs: Vec<(String, u64)> = archive
        .largest_dirs
        .iter()
        .map(|(d, b)| (d.to_string_lossy().into_owned(), *b))
        .collect();
    assert_eq!(
        dirs,
        [
            ("b".to_owned(), 3002),
            ("a".to_owned(), 2000),
            ("c".to_owned(), 2000),
            ("f".to_owned(), 3),
            ("e".to_owned(), 2),
        ]
    );
    assert_eq!(archive.large_context_warning(), None);
}

#[cfg(unix)]
#[test]
fn a_large_context_warns_and_names_its_largest_directory() {
    let dir = tree(&[("Dockerfile", "FROM node\n"), ("src/index.js", "")]);
    fs::create_dir_all(dir.path().join("node_modules")).unwrap();
    // A sparse file: large on paper, cheap on disk.
    let file = fs::File::create(dir.path().join("node_modules/blob")).unwrap();
    file.set_len(LARGE_CONTEXT_BYTES + 1).unwrap();
    let archive = pack(dir.path(), "Dockerfile", &DockerIgnore::empty()).unwrap();
    let text = archive.large_context_warning().unwrap();
    assert!(text.contains("node_modules (50.0 MiB)"), "{text}");
    assert!(text.contains("add a .dockerignore"), "{text}");
    // With node_modules ignored, the warning goes away.
    let ignore = DockerIgnore::parse("node_modules\n").unwrap();
    let archive = pack(dir.path(), "Dockerfile", &ignore).unwrap();
    assert_eq!(archive.large_context_warning(), None);
    assert_eq!(paths(&archive.tar), ["Dockerfile", "src", "src/index.js"]);
}

#[test]
fn pack_handles_long_paths_and_link_targets() {
    let long_dir = "d".repeat(60);
    let long_file = format!("{long_dir}/{long_dir}/{}.txt", "f".repeat(80));
    let dir = tree(&[
        ("Dockerfile", "FROM alpine\n"),
        (long_file.as_str(), "deep"),
    ]);
    #[cfg(unix)]
    std::os::unix::fs::symlink(&long_file, dir.path().join("link")).unwrap();
    let archive = pack(dir.path(), "Dockerfile", &DockerIgnore::empty()).unwrap();
    let listed = entries(&archive.tar);
    let file = listed.iter().find(|e| e.path == long_file).unwrap();
    assert_eq!(file.data, "deep");
    #[cfg(unix)]
    {
        let link = listed.iter().find(|e| e.path == "link").unwrap();
        assert_eq!(link.data, long_file);
    }
}

mod mutations {
    use super::*;
    use proptest::prelude::*;

    const FIXTURES: [&str; 4] = [
        "go-multistage.Dockerfile",
        "node.Dockerfile",
        "heredoc.Dockerfile",
        "mixed.Dockerfile",
    ];

    proptest! {
        /// Realistic Dockerfiles with random damage parse or fail cleanly, never panic.
        #[test]
        fn damaged_fixtures_never_panic(
            which in 0..FIXTURES.len(),
            edits in proptest::collection::vec(
                (any::<prop::sample::Index>(), prop::sample::select(vec![
                    "", "\\", "`", "\n", "$", "${", "}", ":-", "<<", "<<-EOF", "EOF\n", "\"", "'",
                    "[", "]", "#", " ", "\t", "--from=", "AS ", "=", "\u{feff}", "é",
                ]), any::<bool>()),
                0..8,
            ),
        ) {
            let mut text = fixture(FIXTURES[which]);
            for (index, insert, delete) in edits {
                let mut at = index.index(text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                if delete {
                    let end = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
                    text.replace_range(at..end, "");
                } else {
                    text.insert_str(at, insert);
                }
            }
            if let Ok(parsed) = dockerfile::parse(&text, &no_args()) {
                let target = parsed.target_stage(None).unwrap();
                let _ = parsed.stages_needed(target);
                let _ = parsed.has_run();
                for stage in &parsed.stages {
                    let _ = parsed.target_stage(stage.name.as_deref());
                }
            }
        }
    }
}
