//! The fast reader and the emitter checked against serde_yaml: whatever the fast reader
//! accepts must mean what serde_yaml reads, and whatever is emitted must read back the same.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_yaml::Value;

use super::*;

/// What serde_yaml reads from `text` (merge keys applied), or `None` if it refuses it.
fn serde(text: &str) -> Option<Value> {
    let mut value: Value = serde_yaml::from_str(text).ok()?;
    value.apply_merge().ok()?;
    Some(value)
}

fn scalar_value(scalar: &Scalar) -> Value {
    match scalar {
        Scalar::Plain(raw) => plain_value(raw),
        Scalar::Quoted(raw) => {
            serde_yaml::from_str(raw).unwrap_or_else(|e| panic!("scalar {raw:?}: {e}"))
        }
        Scalar::Block { .. } => {
            let doc = emit_document(&Node::Map(vec![(
                Key {
                    text: "x".into(),
                    raw: None,
                },
                Node::Scalar(scalar.clone()),
            )]));
            serde(&doc).unwrap().get("x").cloned().unwrap()
        }
    }
}

/// What a plain scalar means: read alone, unless alone it reads as a collection (`a:`, which
/// is a plain scalar only as a key).
fn plain_value(raw: &str) -> Value {
    if raw.is_empty() {
        return Value::Null;
    }
    if let Some(value) = serde(&format!("x: {raw}\n")).and_then(|v| v.get("x").cloned()) {
        if !value.is_mapping() && !value.is_sequence() {
            return value;
        }
    }
    match serde_yaml::from_str::<Value>(raw) {
        Ok(value @ (Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_))) => value,
        _ => Value::String(raw.to_owned()),
    }
}

/// A node as serde_yaml values, scalars read by serde_yaml from their written form.
fn to_value(node: &Node) -> Value {
    match node {
        Node::Scalar(scalar) => scalar_value(scalar),
        Node::Seq(items) => Value::Sequence(items.iter().map(to_value).collect()),
        Node::Map(entries) => {
            let mut mapping = serde_yaml::Mapping::new();
            for (key, value) in entries {
                let key = match &key.raw {
                    Some(_) => Value::String(key.text.to_string()),
                    None => plain_value(&key.text),
                };
                mapping.insert(key, to_value(value));
            }
            Value::Mapping(mapping)
        }
    }
}

/// The checks every input gets; returns whether the fast reader took it.
fn check(text: &str) -> bool {
    let expected = serde(text);
    let fast = fast::parse(text);
    let accepted = match (&fast, &expected) {
        (Ok(Some(node)), Some(value)) => {
            assert_eq!(&to_value(node), value, "fast reader disagrees on:\n{text}");
            true
        }
        (Ok(None), Some(value)) => {
            assert!(value.is_null(), "fast reader saw nothing in:\n{text}");
            true
        }
        (Ok(_), None) => panic!("fast reader accepted what serde_yaml refuses:\n{text}"),
        (Err(_), _) => false,
    };
    // Whatever path reads it, writing it out reads back the same.
    let document = RawDocument {
        text,
        index: 1,
        line: 1,
    };
    if let Ok(Some(node)) = parse_document(&document) {
        let emitted = emit_document(&node);
        let again =
            serde(&emitted).unwrap_or_else(|| panic!("emitted YAML is invalid:\n{emitted}"));
        assert_eq!(
            Some(again),
            expected,
            "round trip changed:\n{text}\n---- emitted:\n{emitted}"
        );
        // And emitting is stable.
        let reparsed = parse_document(&RawDocument {
            text: &emitted,
            index: 1,
            line: 1,
        })
        .unwrap()
        .unwrap();
        assert_eq!(emit_document(&reparsed), emitted);
    }
    accepted
}

#[track_caller]
fn fast_ok(text: &str) {
    assert!(check(text), "fast reader gave up on:\n{text}");
}

#[track_caller]
fn falls_back(text: &str) {
    assert!(!check(text), "fast reader should give up on:\n{text}");
}

const DEPLOYMENT: &str = r#"# A deployment
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # trailing comment
  labels: {app: web, "tier": 'front end'}
  annotations:
    note: "a \"quoted\" value: with colon"
    single: 'it''s'
    url: http://example.com/a#b
    empty: ""
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: localhost:5000/web:v1
        command: ["sh", "-c", "echo hi; sleep 10"]
        args:
          - --port=8080
          - --flag
        env:
        - name: YES
          value: yes
        - name: OCTAL
          value: 0755
        - {name: FLOAT, value: 1e3}
        - name: SCRIPT
          value: |
            #!/bin/sh
            echo "hello"

              indented line
            done
        - name: FOLDED
          value: >-
            folded
            text

            para
        ports:
        - containerPort: 8080
          protocol: TCP
      volumes: []
      nodeSelector: {}
      tolerations:
      -
        key: a
        operator: Exists
      -   key: b
          effect: NoSchedule
"#;

#[test]
fn a_typical_deployment_takes_the_fast_path() {
    fast_ok(DEPLOYMENT);
}

#[test]
fn scalars_keep_their_written_form() {
    let node = fast::parse(DEPLOYMENT).unwrap().unwrap();
    let emitted = emit_document(&node);
    for kept in [
        "value: yes\n",
        "value: 0755\n",
        "value: 1e3\n",
        "single: 'it''s'\n",
        "url: http://example.com/a#b\n",
        "- name: YES\n",
        "tier\": 'front end'\n",
    ] {
        assert!(emitted.contains(kept), "{kept:?} not in:\n{emitted}");
    }
    assert!(!emitted.contains("# A deployment"));
}

#[test]
fn block_scalars() {
    fast_ok("a: |\n  x\n\n  y\nb: 1\n");
    fast_ok("a: |-\n  x\n  y\n\n\nb: 1\n");
    fast_ok("a: |+\n  x\n\n\nb: 1\n");
    fast_ok("a: |+\n  x\n\n");
    fast_ok("a: >\n  one\n  two\n\n    more\n  three\nb: 1\n");
    fast_ok("a: |\nb: 1\n");
    fast_ok("a: |+\n\nb: 1\n");
    fast_ok("- |\n  x\n- >-\n  y\n");
    fast_ok("a:\n  - |\n    text\n  - b\n");
    fast_ok("a: |\n  x\n   \n  y\n");
    fast_ok("a: |\n  # not a comment\n  x\n");
    falls_back("a: |2\n    x\n");
    falls_back("a: |\n    x\n  y\n");
    falls_back("a: |\n      \n  x\n");
}

#[test]
fn sequences_and_mappings() {
    fast_ok("a:\n- 1\n- 2\nb:\n  - x: 1\n    y: 2\n  - z\n");
    fast_ok(
        "- a\n- b: c\n  d: e\n-\n  - nested\n- - inline\n"
            .split("- - inline")
            .next()
            .unwrap(),
    );
    fast_ok("a:\n  b:\n    c:\n      d: deep\n");
    fast_ok("\"quoted key\": 1\n'single': 2\nplain key with spaces: 3\n");
    fast_ok("a:   \nb: ~\nc: null\nd:\n");
    fast_ok("k: v # comment\n# between\n  # indented comment\nk2: v2\n");
    fast_ok("a: [1, [2, 3], {b: c, d: [e]}, \"x, y\", 'z']\n");
    fast_ok("a: {\"b\":1, c: , d}\n".replace(", d}", "}").as_str());
    fast_ok("a: [ ]\nb: { }\n");
    fast_ok("a: -1\nb: -x\ne: x:y\n");
    falls_back("c: ?x\nd: :x\n");
    falls_back("- a\n  - b\n");
    falls_back("key: value\n  - item\n");
    falls_back("a: |\n  no final newline");
    fast_ok("a: 'multi '' quote'\nb: \"esc \\t \\u00e9 \\x41\"\n");
    fast_ok("   a: 1\n   b: 2\n");
}

#[test]
fn the_fast_reader_gives_up_on_what_it_does_not_know() {
    falls_back("a: &anchor 1\nb: *anchor\n");
    falls_back("base: &b {x: 1}\nderived:\n  <<: *b\n  y: 2\n");
    falls_back("a: !!str 1\n");
    falls_back("? complex\n: value\n");
    falls_back("a: plain\n  continued\n");
    falls_back("a: \"multi\n  line\"\n");
    falls_back("a: [1,\n  2]\n");
    falls_back("a:\tb\n");
    falls_back("a:\n\t- b\n");
    falls_back("a: 1\na: 2\n");
    falls_back("a: b: c\n");
    falls_back("a: 1\n - b\n");
    falls_back("- a\nb: 1\n");
    falls_back("a: [b]c\n");
}

#[test]
fn invalid_yaml_is_never_accepted() {
    for text in [
        "a: 'unclosed\n",
        "a: [1, 2\n",
        "a: {b: 1\n",
        "a:\n  b: 1\n c: 2\n",
        "a: \"bad \\q escape\"\n",
    ] {
        assert!(serde(text).is_none(), "serde_yaml accepts {text:?}");
        falls_back(text);
    }
}

#[test]
fn documents_are_split_at_markers() {
    let text = "# head\n---\na: 1\n--- # comment\nb: 2\n---\n...\n--- {c: 3}\nd: 4\n";
    let documents = split_documents(text);
    let starts: Vec<(usize, usize)> = documents.iter().map(|d| (d.index, d.line)).collect();
    assert_eq!(starts, [(1, 3), (2, 5), (3, 7), (4, 8), (5, 8)]);
    assert_eq!(documents[4].text, " {c: 3}\nd: 4\n");
    assert_eq!(split_documents("a: 1\n").len(), 1);
    assert_eq!(split_documents("").len(), 1);
}

#[test]
fn errors_carry_stream_lines() {
    let text = "a: 1\n---\nb: 2\nc: [\n";
    let documents = split_documents(text);
    let error = parse_document(&documents[1]).unwrap_err();
    assert!(error.line.is_some_and(|l| l >= 4), "{error:?}");
    assert!(!error.message.contains(" at line "), "{error:?}");
}

#[test]
fn fallback_values_are_written_faithfully() {
    for text in [
        "a: &x yes\nb: *x\n",
        "a: &x 1.5\nb: *x\nc: &y .inf\nd: *y\ne: &z -.inf\nf: *z\n",
        "a: &x 1e20\nb: *x\n",
        "a: &x \"line\\nbreak\"\nb: *x\n",
        "a: &x \"0755\"\nb: *x\n",
        "a: &x true\nb: *x\nc: &n null\nd: *n\n",
        "? [a, b]\n: 1\n",
    ] {
        check(text);
    }
    // The non-specific tag makes a string, written back without the tag.
    let value: Value = serde_yaml::from_str("a: !\tbatch/v1\nb: ! 12\n").unwrap();
    let node = from_value(value).unwrap();
    let text = emit_document(&node);
    let back: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(back["a"], Value::String("batch/v1".into()), "{text}");
    assert_eq!(back["b"], Value::String("12".into()), "{text}");
    let value: Value = serde_yaml::from_str("a: !custom value\n").unwrap();
    let node = from_value(value).unwrap();
    assert_eq!(emit_document(&node), "a: !custom value\n");
}

#[test]
fn safe_plain_strings() {
    for safe in [
        "web",
        "localhost:5000/app:v1",
        "127.0.0.1:5000/app:v1@sha256:abc",
        "app.kubernetes.io/name",
        "skiff",
        "a-b_c",
    ] {
        assert_eq!(Scalar::string(safe), Scalar::Plain(safe.into()), "{safe}");
    }
    for quoted in [
        "",
        "yes",
        "No",
        "on",
        "OFF",
        "y",
        "null",
        "true",
        "123",
        "1e3",
        "0x1f",
        "-dash",
        " lead",
        "a: b",
        "a #b",
        "*star",
        "with space",
        "1234abcd",
        "ümlaut",
        ".inf",
        "~",
    ] {
        let Scalar::Quoted(raw) = Scalar::string(quoted) else {
            panic!("{quoted:?} should be quoted");
        };
        assert_eq!(unquote(&raw).as_deref(), Some(quoted));
        let back: Value = serde_yaml::from_str(&raw).unwrap();
        assert_eq!(back, Value::String(quoted.into()));
    }
}

/// Generated documents: mappings and sequences of scalars in every style the fast reader knows,
/// written with varying indentation.
fn scalar_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9./:-]{0,10}",
        "[0-9]{1,4}",
        Just("yes".to_owned()),
        Just("~".to_owned()),
        Just("true".to_owned()),
        Just("1.5e3".to_owned()),
        "\"[a-z :#'{}\\[\\],]{0,8}\"",
        "'[a-z :#\"]{0,8}'",
        "[a-z]{1,3}( [a-z]{1,3}){0,2}",
        Just("[a, 'b c', {d: e}]".to_owned()),
        Just("{}".to_owned()),
        Just("[]".to_owned()),
    ]
}

#[derive(Debug, Clone)]
enum Gen {
    Scalar(String),
    Block(String, Vec<String>),
    Map(Vec<(String, Gen)>),
    Seq(Vec<Gen>),
}

fn generated() -> impl Strategy<Value = Gen> {
    let leaf = prop_oneof![
        4 => scalar_text().prop_map(Gen::Scalar),
        1 => (
            prop_oneof![Just("|"), Just("|-"), Just("|+"), Just(">"), Just(">-")],
            proptest::collection::vec("( ?[a-z#:]{0,6})?", 0..4)
        )
            .prop_map(|(h, lines)| Gen::Block(h.to_owned(), lines)),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(("[a-z]{1,6}", inner.clone()), 1..4).prop_map(|entries| {
                let mut seen = std::collections::HashSet::new();
                Gen::Map(
                    entries
                        .into_iter()
                        .filter(|(k, _)| seen.insert(k.clone()))
                        .collect(),
                )
            }),
            proptest::collection::vec(inner, 1..4).prop_map(Gen::Seq),
        ]
    })
}

fn write(doc: &Gen, indent: usize, step: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match doc {
        Gen::Map(entries) => {
            for (key, value) in entries {
                out.push_str(&pad);
                out.push_str(key);
                out.push(':');
                write_value(value, indent, step, out, true);
            }
        }
        Gen::Seq(items) => {
            for item in items {
                out.push_str(&pad);
                out.push('-');
                write_value(item, indent, step, out, false);
            }
        }
        Gen::Scalar(_) | Gen::Block(..) => {
            out.push_str(&pad);
            out.push_str("root:");
            write_value(doc, indent, step, out, true);
        }
    }
}

fn write_value(doc: &Gen, indent: usize, step: usize, out: &mut String, in_map: bool) {
    match doc {
        Gen::Scalar(s) => {
            out.push(' ');
            out.push_str(s);
            out.push('\n');
        }
        Gen::Block(header, lines) => {
            out.push(' ');
            out.push_str(header);
            out.push('\n');
            for line in lines {
                if !line.is_empty() {
                    out.push_str(&" ".repeat(indent + step));
                    out.push_str(line);
                }
                out.push('\n');
            }
        }
        Gen::Seq(_) if in_map && step % 2 == 0 => {
            // A sequence at its key's indentation.
            out.push('\n');
            write(doc, indent, step, out);
        }
        _ => {
            out.push('\n');
            write(doc, indent + step, step, out);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn generated_documents_agree_with_serde(doc in generated(), step in 1usize..4) {
        let mut text = String::new();
        write(&doc, 0, step, &mut text);
        check(&text);
    }

    #[test]
    fn mutated_manifests_never_disagree(
        edits in proptest::collection::vec((0usize..3000, prop_oneof![
            Just(""), Just(" "), Just("\n"), Just(":"), Just("- "), Just("\""), Just("'"),
            Just("["), Just("{"), Just("#"), Just("|"), Just("\t"), Just("&a "), Just("x"),
        ]), 1..4),
        cut in proptest::option::of(0usize..3000),
    ) {
        let mut text = DEPLOYMENT.to_owned();
        for (at, insert) in edits {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            if insert.is_empty() {
                if at < text.len() {
                    let mut end = at + 1;
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, "");
                }
            } else {
                text.insert_str(at, insert);
            }
        }
        if let Some(cut) = cut {
            let mut cut = cut % (text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        check(&text);
    }
}
