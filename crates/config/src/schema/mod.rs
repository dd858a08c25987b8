//! The `skaffold.yaml` schema as typed structs: the raw, unresolved form, exactly as a user
//! writes it. Stage crates never see these; `crate::settings` turns them into typed settings.
//!
//! The structs live in `generated.rs`, produced by `scripts/gen-schema` from Skaffold's
//! published JSON schema (one struct per schema definition, `anyOf` branches merged,
//! `Option` for every non-required field, `deny_unknown_fields` everywhere). This file holds
//! the hand-written helper types the generated code refers to:
//!
//! * [`StringMap`]: `map[string]string` (labels, annotations, `setFiles`, ...);
//! * [`BuildArgs`]: `map[string]*string` (Docker/Kaniko `buildArgs`);
//! * [`IntOrString`]: Kubernetes' `IntOrString` (`portForward[].port`);
//! * [`FlatMap`]: Skaffold's `util.FlatMap` (Helm `setValues`, `setValueTemplates`);
//! * [`YamlValue`]: an arbitrary YAML fragment (Helm `overrides`, JSON patch `value`, ...).
//!
//! Scalars in [`StringMap`] and [`BuildArgs`] keep their YAML source text (`1.20` stays
//! `"1.20"`, `0x1F` stays `"0x1F"`), like Go's yaml.v3 does when it decodes into a string.
//! That requires deserializing straight from YAML text (`serde_yaml::from_str` and
//! friends), which is also the only way serde_yaml errors keep their line/column. Going
//! through a [`serde_yaml::Value`] first works for string values only: the `Value` has
//! already turned `1.20` into a number and forgotten its text.

mod generated;

pub use generated::*;

use std::collections::btree_map;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

// ---------------------------------------------------------------------------
// Scalars as text
// ---------------------------------------------------------------------------

/// What a scalar is being read for; only used in "expected ..." error messages.
#[derive(Debug, Clone, Copy)]
enum Expect<'a> {
    /// The value of `key` in a string map.
    Value(&'a str),
    /// A mapping key.
    Key,
}

impl fmt::Display for Expect<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Value(key) => write!(f, "a string value for key `{key}`"),
            Expect::Key => f.write_str("a string key"),
        }
    }
}

/// Reads one scalar as text. serde_yaml's `deserialize_str` hands over the scalar's source
/// text whatever it looks like (number, bool, ...); the other `visit_*` methods are for
/// deserializers that only have typed values (e.g. [`serde_yaml::Value`] for keys).
struct ScalarText<'a>(Expect<'a>);

impl<'de> Visitor<'de> for ScalarText<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }
}

/// Reads an optional scalar as text: YAML null (`null`, `~`, nothing) is `None`; a quoted
/// `'null'` is the string `"null"`; mappings and sequences are errors.
struct OptionalScalarText<'a>(Expect<'a>);

impl<'de> Visitor<'de> for OptionalScalarText<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_str(ScalarText(self.0)).map(Some)
    }
}

impl<'de> DeserializeSeed<'de> for OptionalScalarText<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_option(self)
    }
}

/// A mapping key, as text.
struct KeyText;

impl<'de> DeserializeSeed<'de> for KeyText {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(ScalarText(Expect::Key))
    }
}

/// Reads a mapping of scalar values; `null` values are `None`. Duplicate keys are errors.
fn visit_scalar_map<'de, A: MapAccess<'de>>(
    mut map: A,
) -> Result<BTreeMap<String, Option<String>>, A::Error> {
    let mut out = BTreeMap::new();
    while let Some(key) = map.next_key_seed(KeyText)? {
        let value = map.next_value_seed(OptionalScalarText(Expect::Value(&key)))?;
        if out.contains_key(&key) {
            return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
        }
        out.insert(key, value);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// StringMap
// ---------------------------------------------------------------------------

/// A YAML mapping of strings to strings (Go `map[string]string`).
///
/// Values may be written as strings, numbers or booleans; they are kept as their YAML text
/// (`1` → `"1"`, `true` → `"true"`, `1.20` → `"1.20"`). A null value becomes `""`. Nested
/// mappings and sequences are rejected with "expected a string value for key \`X\`".
/// Serializes as a plain mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct StringMap(pub BTreeMap<String, String>);

impl StringMap {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// All entries, sorted by key.
    pub fn iter(&self) -> btree_map::Iter<'_, String, String> {
        self.0.iter()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl From<BTreeMap<String, String>> for StringMap {
    fn from(map: BTreeMap<String, String>) -> Self {
        StringMap(map)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for StringMap {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        StringMap(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl<'a> IntoIterator for &'a StringMap {
    type Item = (&'a String, &'a String);
    type IntoIter = btree_map::Iter<'a, String, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'de> Deserialize<'de> for StringMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;

        impl<'de> Visitor<'de> for V {
            type Value = StringMap;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of string keys to string values")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StringMap, A::Error> {
                let map = visit_scalar_map(map)?;
                Ok(StringMap(
                    map.into_iter()
                        .map(|(k, v)| (k, v.unwrap_or_default()))
                        .collect(),
                ))
            }
        }

        d.deserialize_map(V)
    }
}

// ---------------------------------------------------------------------------
// BuildArgs
// ---------------------------------------------------------------------------

/// Docker build arguments (Go `map[string]*string`).
///
/// Like [`StringMap`], except that a null value stays `None`: Docker then takes the value
/// from the environment (`docker build --build-arg KEY`). Serializes `None` as `null`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct BuildArgs(pub BTreeMap<String, Option<String>>);

impl BuildArgs {
    /// The value of `key`: `None` if absent, `Some(None)` if present without a value.
    pub fn get(&self, key: &str) -> Option<Option<&str>> {
        self.0.get(key).map(Option::as_deref)
    }

    /// All entries, sorted by key.
    pub fn iter(&self) -> btree_map::Iter<'_, String, Option<String>> {
        self.0.iter()
    }

    /// Whether there are no build arguments.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of build arguments.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl From<BTreeMap<String, Option<String>>> for BuildArgs {
    fn from(map: BTreeMap<String, Option<String>>) -> Self {
        BuildArgs(map)
    }
}

impl<'a> IntoIterator for &'a BuildArgs {
    type Item = (&'a String, &'a Option<String>);
    type IntoIter = btree_map::Iter<'a, String, Option<String>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'de> Deserialize<'de> for BuildArgs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;

        impl<'de> Visitor<'de> for V {
            type Value = BuildArgs;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of build argument names to string values")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<BuildArgs, A::Error> {
                visit_scalar_map(map).map(BuildArgs)
            }
        }

        d.deserialize_map(V)
    }
}

// ---------------------------------------------------------------------------
// IntOrString
// ---------------------------------------------------------------------------

/// Kubernetes' `IntOrString`: `8080` or `"http"`. A quoted number stays a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IntOrString {
    /// An integer, e.g. a port number.
    Int(i64),
    /// A string, e.g. a named port.
    String(String),
}

impl Default for IntOrString {
    fn default() -> Self {
        IntOrString::Int(0)
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(i) => write!(f, "{i}"),
            IntOrString::String(s) => f.write_str(s),
        }
    }
}

impl From<i64> for IntOrString {
    fn from(i: i64) -> Self {
        IntOrString::Int(i)
    }
}

impl From<String> for IntOrString {
    fn from(s: String) -> Self {
        IntOrString::String(s)
    }
}

impl From<&str> for IntOrString {
    fn from(s: &str) -> Self {
        IntOrString::String(s.to_owned())
    }
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrString::Int(i) => s.serialize_i64(*i),
            IntOrString::String(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;

        impl Visitor<'_> for V {
            type Value = IntOrString;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
                Ok(IntOrString::Int(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i64::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v))
            }
        }

        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// FlatMap
// ---------------------------------------------------------------------------

/// Skaffold's `util.FlatMap`: nested mappings flattened into dotted keys, as Helm's `--set`
/// expects them.
///
/// `{image: {repo: x}}` becomes `"image.repo" = "x"`, and sequence items get an index
/// suffix (`{args: [a, b]}` becomes `"args[0]" = "a"`, `"args[1]" = "b"`), like current
/// Skaffold. Scalars become text (numbers and booleans formatted, null `""`); unlike
/// [`StringMap`] a number is formatted from its value (`1.20` → `"1.2"`), which is what
/// Skaffold does too. Serializes as the flat mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FlatMap(pub BTreeMap<String, String>);

impl FlatMap {
    /// The value of the dotted `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// All entries, sorted by key.
    pub fn iter(&self) -> btree_map::Iter<'_, String, String> {
        self.0.iter()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl From<BTreeMap<String, String>> for FlatMap {
    fn from(map: BTreeMap<String, String>) -> Self {
        FlatMap(map)
    }
}

impl<'a> IntoIterator for &'a FlatMap {
    type Item = (&'a String, &'a String);
    type IntoIter = btree_map::Iter<'a, String, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Flattens one value found at `prefix` into `out`.
struct Flatten<'a> {
    prefix: String,
    out: &'a mut BTreeMap<String, String>,
}

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            f.write_str("a mapping")
        } else {
            write!(f, "a value for key `{}`", self.prefix)
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Literal duplicates within one mapping are errors (as in yaml.v3); a dotted key
        // that collides with a nested one (`a.b: 1` and `a: {b: 2}`) is last-wins, as in
        // Skaffold.
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key_seed(KeyText)? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let prefix = if self.prefix.is_empty() {
                key
            } else {
                format!("{}.{key}", self.prefix)
            };
            map.next_value_seed(Flatten {
                prefix,
                out: &mut *self.out,
            })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.prefix.is_empty() {
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
        }
        let mut index = 0usize;
        loop {
            let prefix = format!("{}[{index}]", self.prefix);
            let seed = Flatten {
                prefix,
                out: &mut *self.out,
            };
            if seq.next_element_seed(seed)?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.scalar(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.scalar(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.scalar(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.scalar(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.scalar(v.to_string())
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<(), E> {
        self.scalar(v.to_string())
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<(), E> {
        self.scalar(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.scalar(v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar(String::new())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.scalar(String::new())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Flatten<'_> {
    fn scalar<E: de::Error>(self, value: String) -> Result<(), E> {
        if self.prefix.is_empty() {
            return Err(E::invalid_type(de::Unexpected::Str(&value), &self));
        }
        self.out.insert(self.prefix, value);
        Ok(())
    }
}

impl<'de> Deserialize<'de> for FlatMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = BTreeMap::new();
        Flatten {
            prefix: String::new(),
            out: &mut out,
        }
        .deserialize(d)?;
        Ok(FlatMap(out))
    }
}

// ---------------------------------------------------------------------------
// YamlValue
// ---------------------------------------------------------------------------

/// An arbitrary YAML fragment, kept as written (Helm `overrides`, JSON patch `value`,
/// Kubernetes objects such as Kaniko `env` or cluster `tolerations`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct YamlValue(pub serde_yaml::Value);

impl From<serde_yaml::Value> for YamlValue {
    fn from(value: serde_yaml::Value) -> Self {
        YamlValue(value)
    }
}

impl From<YamlValue> for serde_yaml::Value {
    fn from(value: YamlValue) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn string_map_keeps_scalar_text() {
        let m: StringMap = serde_yaml::from_str(
            "a: x\nb: 1\nc: true\nd: 1.20\ne: 0x1F\nf:\ng: ~\nh: 'null'\ni: \"2\"\n3: k\n",
        )
        .expect("parse");
        let want = map(&[
            ("a", "x"),
            ("b", "1"),
            ("c", "true"),
            ("d", "1.20"),
            ("e", "0x1F"),
            ("f", ""),
            ("g", ""),
            ("h", "null"),
            ("i", "2"),
            ("3", "k"),
        ]);
        assert_eq!(m, StringMap(want));
        assert_eq!(m.get("b"), Some("1"));
        assert_eq!(m.get("zz"), None);
        assert!(!m.is_empty());
        assert_eq!(m.len(), 10);
        assert_eq!(m.iter().next(), Some((&"3".to_owned(), &"k".to_owned())));
        assert!(StringMap::default().is_empty());
    }

    #[test]
    fn string_map_follows_aliases() {
        let m: StringMap = serde_yaml::from_str("a: &v hello\nb: *v\n").expect("parse");
        assert_eq!(m.get("b"), Some("hello"));
    }

    #[test]
    fn string_map_rejects_nested_values_with_location() {
        let err = serde_yaml::from_str::<StringMap>("a: x\nb:\n  c: d\n").expect_err("nested");
        let msg = err.to_string();
        assert!(msg.contains("expected a string value for key `b`"), "{msg}");
        let loc = err.location().expect("location");
        assert_eq!(loc.line(), 3, "{msg}");

        let err = serde_yaml::from_str::<StringMap>("a: [1, 2]\n").expect_err("list");
        assert!(
            err.to_string()
                .contains("expected a string value for key `a`"),
            "{err}"
        );
        assert_eq!(err.location().expect("location").line(), 1);
    }

    #[test]
    fn string_map_rejects_non_mappings_and_duplicates() {
        let err = serde_yaml::from_str::<StringMap>("[a, b]\n").expect_err("seq");
        assert!(
            err.to_string().contains("a mapping of string keys"),
            "{err}"
        );
        let err = serde_yaml::from_str::<StringMap>("a: 1\na: 2\n").expect_err("dup");
        assert!(err.to_string().contains("duplicate key `a`"), "{err}");
    }

    #[test]
    fn string_map_from_value_accepts_strings() {
        let v: serde_yaml::Value = serde_yaml::from_str("a: x\nb: 'y'\n").expect("value");
        let m: StringMap = serde_yaml::from_value(v).expect("from value");
        assert_eq!(m, StringMap(map(&[("a", "x"), ("b", "y")])));
    }

    #[test]
    fn string_map_serializes_as_mapping() {
        let m = StringMap::from(map(&[("a", "1"), ("b", "x")]));
        let text = serde_yaml::to_string(&m).expect("serialize");
        assert_eq!(text, "a: '1'\nb: x\n");
        let back: StringMap = serde_yaml::from_str(&text).expect("reparse");
        assert_eq!(back, m);
        let collected: StringMap = [("k", "v")].into_iter().collect();
        assert_eq!(collected.get("k"), Some("v"));
        assert_eq!((&collected).into_iter().count(), 1);
    }

    #[test]
    fn build_args_keep_null_as_none() {
        let b: BuildArgs = serde_yaml::from_str("A: x\nB:\nC: null\nD: 3\nE: ''\n").expect("parse");
        assert_eq!(b.get("A"), Some(Some("x")));
        assert_eq!(b.get("B"), Some(None));
        assert_eq!(b.get("C"), Some(None));
        assert_eq!(b.get("D"), Some(Some("3")));
        assert_eq!(b.get("E"), Some(Some("")));
        assert_eq!(b.get("F"), None);
        assert_eq!(b.len(), 5);
        assert!(!b.is_empty());

        let text = serde_yaml::to_string(&b).expect("serialize");
        let back: BuildArgs = serde_yaml::from_str(&text).expect("reparse");
        assert_eq!(back, b);
    }

    #[test]
    fn build_args_reject_nested_values() {
        let err = serde_yaml::from_str::<BuildArgs>("A:\n  - x\n").expect_err("nested");
        assert!(
            err.to_string()
                .contains("expected a string value for key `A`"),
            "{err}"
        );
        assert_eq!(err.location().expect("location").line(), 2);
    }

    #[test]
    fn int_or_string() {
        #[derive(Debug, Deserialize, Serialize, PartialEq)]
        struct P {
            port: IntOrString,
        }
        let p: P = serde_yaml::from_str("port: 8080").expect("int");
        assert_eq!(p.port, IntOrString::Int(8080));
        let p: P = serde_yaml::from_str("port: http").expect("string");
        assert_eq!(p.port, IntOrString::String("http".into()));
        let p: P = serde_yaml::from_str("port: '8080'").expect("quoted");
        assert_eq!(p.port, IntOrString::String("8080".into()));
        assert_eq!(p.port.to_string(), "8080");

        let err = serde_yaml::from_str::<P>("port: 1.5").expect_err("float");
        assert!(err.to_string().contains("an integer or a string"), "{err}");
        let err = serde_yaml::from_str::<P>("port: [1]").expect_err("seq");
        assert!(err.to_string().contains("an integer or a string"), "{err}");

        for port in [IntOrString::Int(5000), IntOrString::from("5000")] {
            let text = serde_yaml::to_string(&P { port: port.clone() }).expect("serialize");
            let back: P = serde_yaml::from_str(&text).expect("reparse");
            assert_eq!(back.port, port, "{text}");
        }
        assert_eq!(IntOrString::default(), IntOrString::Int(0));
    }

    #[test]
    fn flat_map_flattens_nested_mappings() {
        let m: FlatMap = serde_yaml::from_str(
            "image:\n  repo: x\n  tag: 1.20\n  pull:\n    policy: Always\nreplicas: 3\nenabled: true\nempty:\nargs: [a, b]\nplain.key: v\n",
        )
        .expect("parse");
        let want = map(&[
            ("image.repo", "x"),
            ("image.tag", "1.2"),
            ("image.pull.policy", "Always"),
            ("replicas", "3"),
            ("enabled", "true"),
            ("empty", ""),
            ("args[0]", "a"),
            ("args[1]", "b"),
            ("plain.key", "v"),
        ]);
        assert_eq!(m, FlatMap(want));
        assert_eq!(m.get("image.repo"), Some("x"));
        assert_eq!(m.len(), 9);
        assert!(!m.is_empty());
        assert_eq!(m.iter().count(), 9);
    }

    #[test]
    fn flat_map_serializes_flat() {
        let m: FlatMap = serde_yaml::from_str("a:\n  b: c\n").expect("parse");
        let text = serde_yaml::to_string(&m).expect("serialize");
        assert_eq!(text, "a.b: c\n");
        let back: FlatMap = serde_yaml::from_str(&text).expect("reparse");
        assert_eq!(back, m);
    }

    #[test]
    fn flat_map_errors() {
        let err = serde_yaml::from_str::<FlatMap>("- a\n").expect_err("seq");
        assert!(err.to_string().contains("expected a mapping"), "{err}");
        let err = serde_yaml::from_str::<FlatMap>("a:\n  b: 1\n  b: 2\n").expect_err("dup");
        assert!(err.to_string().contains("duplicate key `b`"), "{err}");
        // A dotted key colliding with a nested one: last wins, like Skaffold.
        let m: FlatMap = serde_yaml::from_str("a.b: 1\na:\n  b: 2\n").expect("collision");
        assert_eq!(m.get("a.b"), Some("2"));
    }

    #[test]
    fn yaml_value_is_transparent() {
        let v: YamlValue = serde_yaml::from_str("a: [1, {b: c}]\n").expect("parse");
        let raw: serde_yaml::Value = serde_yaml::from_str("a: [1, {b: c}]\n").expect("raw");
        assert_eq!(v, YamlValue(raw.clone()));
        assert_eq!(
            serde_yaml::to_string(&v).expect("ser"),
            serde_yaml::to_string(&raw).expect("ser raw")
        );
        assert_eq!(YamlValue::default(), YamlValue(serde_yaml::Value::Null));
        assert_eq!(serde_yaml::Value::from(YamlValue::from(raw.clone())), raw);
    }
}
