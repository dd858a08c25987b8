//! Property tests of sync path handling: arbitrary rules (`src`, `dest`, `strip`, inferred
//! copies) and changed/deleted paths never panic, never produce a container destination with a
//! `..` component, and never a source outside the artifact's context; archive entry names are
//! normalised, and a symlink out of the context is refused.
//!
//! `SKIFF_FUZZ_CASES=N` raises the case count for a longer run:
//! `SKIFF_FUZZ_CASES=20000 cargo test -p skiff-sync --test fuzz --release`.

#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use proptest::prelude::*;
use skiff_sync::archive::{build, entry_name};
use skiff_sync::rules::{InferRules, InferredCopy, ManualRule};
use skiff_sync::{Decision, SyncError, SyncRules, decide};

fn fuzz_cases(default: u32) -> u32 {
    std::env::var("SKIFF_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const CONTEXT: &str = "/ctx/app";

/// Path pieces that matter: climbing, current directory, empty parts, globs, odd names.
fn part() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "..", ".", "", "www", "a", "b", "x.txt", "*", "**", "?", "app", "ctx", "etc",
            "passwd", "...", ".hidden", "a b", "\\", "[", "{a,b}",
        ])
        .prop_map(str::to_owned),
        1 => "[^/\0]{0,6}",
    ]
}

/// A `/`-joined path of [`part`]s, absolute or not.
fn path_text() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(part(), 0..6)).prop_map(|(absolute, parts)| {
        let joined = parts.join("/");
        if absolute {
            format!("/{joined}")
        } else {
            joined
        }
    })
}

/// A changed or deleted file: under the context (possibly climbing out), or elsewhere.
fn changed_path() -> impl Strategy<Value = PathBuf> {
    prop_oneof![
        3 => prop::collection::vec(part(), 0..6)
            .prop_map(|parts| PathBuf::from(format!("{CONTEXT}/{}", parts.join("/")))),
        1 => path_text().prop_map(PathBuf::from),
    ]
}

fn manual_rule() -> impl Strategy<Value = ManualRule> {
    (path_text(), path_text(), prop::option::of(path_text()))
        .prop_map(|(src, dest, strip)| ManualRule { src, dest, strip })
}

fn rules() -> impl Strategy<Value = SyncRules> {
    let infer = prop::option::of((
        prop::collection::vec(path_text(), 0..3),
        prop::collection::vec((path_text(), path_text()), 0..4),
    ));
    (prop::collection::vec(manual_rule(), 0..4), infer).prop_map(|(manual, infer)| SyncRules {
        manual,
        infer: infer.map(|(globs, copies)| InferRules {
            globs,
            copies: copies
                .into_iter()
                .map(|(source, dest)| InferredCopy {
                    source: PathBuf::from(source),
                    dest,
                })
                .collect(),
        }),
        ..SyncRules::default()
    })
}

/// A container destination that cannot climb: no `..` part.
fn assert_destination(destination: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        !destination.split('/').any(|p| p == ".."),
        "destination {destination:?} has a `..` part"
    );
    prop_assert!(!destination.is_empty(), "empty destination");
    Ok(())
}

/// A host source inside the context, without `..`.
fn assert_source(source: &Path) -> Result<(), TestCaseError> {
    prop_assert!(
        source.starts_with(CONTEXT),
        "source {} is outside {CONTEXT}",
        source.display()
    );
    prop_assert!(
        !source.components().any(|c| c == Component::ParentDir),
        "source {} has a `..` part",
        source.display()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(fuzz_cases(2000)))]

    #[test]
    fn decide_never_escapes_context_or_destination(
        rules in rules(),
        changed in prop::collection::vec(changed_path(), 0..5),
        deleted in prop::collection::vec(changed_path(), 0..3),
    ) {
        match decide(Path::new(CONTEXT), &rules, &changed, &deleted) {
            Decision::Rebuild { reason } => prop_assert!(!reason.is_empty()),
            Decision::Sync(plan) => {
                prop_assert_eq!(plan.context.as_path(), Path::new(CONTEXT));
                for copy in &plan.copy {
                    assert_source(&copy.source)?;
                    assert_destination(&copy.destination)?;
                    // What the archive would name it is normalised, too.
                    let name = entry_name(&copy.destination).unwrap();
                    prop_assert!(!name.starts_with('/'));
                }
                for delete in &plan.delete {
                    assert_source(&delete.source)?;
                    assert_destination(&delete.destination)?;
                }
            }
        }
    }

    #[test]
    fn entry_names_are_normalised(path in prop_oneof![path_text(), any::<String>()]) {
        if let Ok(name) = entry_name(&path) {
            prop_assert!(!name.is_empty());
            prop_assert!(!name.starts_with('/'));
            prop_assert!(!name.contains('\0'));
            for part in name.split('/') {
                prop_assert!(!matches!(part, "" | "." | ".."), "{name:?} from {path:?}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(fuzz_cases(200)))]

    /// Real files: an archive's entries are the normalised destinations, and a file reached
    /// through a symlink out of the context is refused.
    #[test]
    fn archives_hold_normalised_entries_and_refuse_escaping_links(
        dest in path_text(),
        strip in prop::option::of(path_text()),
        through_link in any::<bool>(),
    ) {
        let root = tempfile::tempdir().unwrap();
        let context = root.path().join("ctx");
        std::fs::create_dir_all(context.join("www")).unwrap();
        std::fs::write(context.join("www/index.html"), "inside").unwrap();
        std::fs::write(root.path().join("secret"), "outside").unwrap();
        std::os::unix::fs::symlink(root.path().join("secret"), context.join("www/link")).unwrap();
        let rules = SyncRules {
            manual: vec![ManualRule { src: "www/*".to_owned(), dest, strip }],
            ..SyncRules::default()
        };
        let file = if through_link { "www/link" } else { "www/index.html" };
        let Decision::Sync(plan) = decide(&context, &rules, &[context.join(file)], &[]) else {
            return Ok(());
        };
        match build(&plan) {
            Ok(archive) => {
                prop_assert!(!through_link, "a symlink out of the context was archived");
                for bytes in [archive.absolute, archive.relative].into_iter().flatten() {
                    let mut tar = tar::Archive::new(bytes.as_slice());
                    for entry in tar.entries().unwrap() {
                        let mut entry = entry.unwrap();
                        let name = entry.path().unwrap().into_owned();
                        prop_assert!(
                            name.components().all(|c| matches!(c, Component::Normal(_))),
                            "entry {}", name.display()
                        );
                        let mut text = String::new();
                        entry.read_to_string(&mut text).unwrap();
                        prop_assert_eq!(text, "inside");
                    }
                }
            }
            Err(SyncError::OutsideContext { .. }) => prop_assert!(through_link),
            Err(SyncError::BadPath { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error: {other}"),
        }
    }
}

/// A Dockerfile copy map is input too: an inferred destination with `..` parts is normalised,
/// or the change rebuilds; it never reaches the container with `..` in it.
#[test]
fn inferred_destinations_are_normalised() {
    for (dest, expected) in [
        ("/srv/../etc/x", Some("/etc/x")),
        ("/srv/./www//a", Some("/srv/www/a")),
        ("/../../a", None),
        ("rel/../../a", None),
    ] {
        let rules = SyncRules {
            infer: Some(InferRules {
                globs: vec!["**".to_owned()],
                copies: vec![InferredCopy {
                    source: PathBuf::from("a"),
                    dest: dest.to_owned(),
                }],
            }),
            ..SyncRules::default()
        };
        let decision = decide(
            Path::new(CONTEXT),
            &rules,
            &[PathBuf::from(format!("{CONTEXT}/a"))],
            &[],
        );
        match (decision, expected) {
            (Decision::Sync(plan), Some(expected)) => {
                assert_eq!(plan.copy[0].destination, expected, "{dest}");
            }
            (Decision::Rebuild { reason }, None) => assert!(reason.contains(dest), "{reason}"),
            (other, _) => panic!("{dest}: {other:?}"),
        }
    }
}
