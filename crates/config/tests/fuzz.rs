//! Property tests: arbitrary bytes and mutated valid configs never panic the loader.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use skiff_config::{LoadOptions, load};

const VALID: &str = include_str!("fixtures/patches/skaffold.yaml");
const SEED: &str = include_str!("../../../tests/fixtures/seed/sync/skaffold.yaml");

fn load_bytes(bytes: &[u8], profiles: Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("skaffold.yaml"), bytes).unwrap();
    let result = load(&LoadOptions {
        working_dir: dir.path().into(),
        profiles,
        ..Default::default()
    });
    if let Err(error) = result {
        // Rendering the message must not panic either.
        let _ = error.to_string();
        let _ = error.location();
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, String),
    Duplicate(usize, usize),
}

fn mutate(text: &str, mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for mutation in mutations {
        let len = bytes.len().max(1);
        match mutation {
            Mutation::Delete(at, n) => {
                let at = at % len;
                let end = (at + n).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
            Mutation::Insert(at, s) => {
                let at = (at % len).min(bytes.len());
                bytes.splice(at..at, s.bytes());
            }
            Mutation::Duplicate(at, n) => {
                let at = (at % len).min(bytes.len());
                let end = (at + n).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
        }
    }
    bytes
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let fragments = prop::sample::select(vec![
        ":",
        "- ",
        "\n",
        "  ",
        "{",
        "}",
        "[",
        "]",
        "&a ",
        "*a",
        "---\n",
        "!!str ",
        "'",
        "\"",
        "{{",
        "}}",
        "profiles:\n- name: x\n  patches:\n  - op: add\n    path: /build/0\n",
        "\t",
        "~",
        "<<: *a\n",
        "\u{feff}",
    ]);
    prop_oneof![
        (any::<usize>(), 0usize..16).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), fragments).prop_map(|(a, s)| Mutation::Insert(a, s.to_owned())),
        (any::<usize>(), 0usize..64).prop_map(|(a, n)| Mutation::Duplicate(a, n)),
    ]
}

/// Proptest cases: `default`, or `SKIFF_FUZZ_CASES` for a longer fuzzing run
/// (`SKIFF_FUZZ_CASES=100000 cargo test ... fuzz`).
fn fuzz_cases(default: u32) -> u32 {
    std::env::var("SKIFF_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(fuzz_cases(256)))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        load_bytes(&bytes, Vec::new());
    }

    #[test]
    fn mutated_configs_never_panic(
        base in prop::sample::select(vec![VALID, SEED]),
        mutations in proptest::collection::vec(mutation(), 1..6),
        profile in prop::sample::select(vec![None, Some("hello"), Some("broken"), Some("x")]),
    ) {
        let profiles = profile.map(|p| vec![p.to_owned()]).unwrap_or_default();
        load_bytes(&mutate(base, &mutations), profiles);
    }
}
