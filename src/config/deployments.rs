//! The part of `deployments.json` that PaaSTA's image lookup reads, parsed
//! without building the whole document.
//!
//! PaaSTA reads `v2.deployments[<deploy group>].{docker_image,git_sha}` and
//! checks that `v2.controls["<service>:<cluster>.<instance>"]` exists. This
//! keeps exactly that: every deploy group (the group name is arbitrary), and
//! only the control keys of one service and cluster. The whole file is still
//! parsed by serde_json with the same rules as a `serde_json::Value` (syntax,
//! number range, nesting limit, duplicate keys: the last one wins), so a file
//! that failed to load before still fails, with the same message.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What the image lookup needs from a `deployments.json`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Deployments {
    /// The `v2` section; `None` when the file has none (or is not an object).
    pub v2: Option<DeploymentsV2>,
}

/// `v2`. A `v2` (or `deployments`, `controls`) that is not an object finds
/// nothing, like a lookup in a JSON value of the wrong type.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeploymentsV2 {
    /// `v2.deployments`, by deploy group.
    pub deployments: BTreeMap<String, DeployGroup>,
    /// The keys of `v2.controls` that start with `<service>:<cluster>.`.
    pub controls: BTreeSet<String>,
}

/// One `v2.deployments` entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeployGroup {
    /// `docker_image`, when the key exists.
    pub docker_image: Option<DockerImage>,
    /// Whether the `git_sha` key exists (its value is never read).
    pub has_git_sha: bool,
}

/// A `docker_image` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerImage {
    Str(String),
    Null,
    /// Any other JSON value, as compact JSON text (for the error message).
    Other(String),
}

impl Deployments {
    /// Parses `deployments.json`, keeping the control keys that start with
    /// `control_prefix` (`<service>:<cluster>.`).
    pub fn parse(bytes: &[u8], control_prefix: &str) -> Result<Self, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let v2 = Top { control_prefix }.deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(Deployments { v2 })
    }
}

/// Skips any value, parsing it exactly as `serde_json::Value` would
/// (`deserialize_any`: numbers are range-checked, nesting is limited).
struct Skip;

impl<'de> de::Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_none<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

/// Implements the scalar and sequence arms of a visitor whose value, for
/// anything but an object, is `Default::default()`.
macro_rules! non_objects_are_default {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<Skip>()?.is_some() {}
            Ok(Default::default())
        }
    };
}

/// A map key, borrowed when the input allows it.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The document: `Some(v2)` when it is an object with a `v2` key.
struct Top<'p> {
    control_prefix: &'p str,
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = Option<DeploymentsV2>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = Option<DeploymentsV2>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    non_objects_are_default!();
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut v2 = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if key.0 == "v2" {
                v2 = Some(map.next_value_seed(V2 {
                    control_prefix: self.control_prefix,
                })?);
            } else {
                map.next_value::<Skip>()?;
            }
        }
        Ok(v2)
    }
}

struct V2<'p> {
    control_prefix: &'p str,
}

impl<'de> DeserializeSeed<'de> for V2<'_> {
    type Value = DeploymentsV2;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for V2<'_> {
    type Value = DeploymentsV2;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    non_objects_are_default!();
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut v2 = DeploymentsV2::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "deployments" => v2.deployments = map.next_value_seed(Groups)?,
                "controls" => {
                    v2.controls = map.next_value_seed(Controls {
                        prefix: self.control_prefix,
                    })?;
                }
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(v2)
    }
}

struct Groups;

impl<'de> DeserializeSeed<'de> for Groups {
    type Value = BTreeMap<String, DeployGroup>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Groups {
    type Value = BTreeMap<String, DeployGroup>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    non_objects_are_default!();
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut groups = BTreeMap::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let group = map.next_value_seed(Group)?;
            groups.insert(key.0.into_owned(), group);
        }
        Ok(groups)
    }
}

struct Group;

impl<'de> DeserializeSeed<'de> for Group {
    type Value = DeployGroup;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Group {
    type Value = DeployGroup;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    non_objects_are_default!();
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut group = DeployGroup::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "docker_image" => {
                    group.docker_image = Some(match map.next_value::<serde_json::Value>()? {
                        serde_json::Value::String(image) => DockerImage::Str(image),
                        serde_json::Value::Null => DockerImage::Null,
                        other => DockerImage::Other(other.to_string()),
                    });
                }
                "git_sha" => {
                    map.next_value::<Skip>()?;
                    group.has_git_sha = true;
                }
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(group)
    }
}

struct Controls<'p> {
    prefix: &'p str,
}

impl<'de> DeserializeSeed<'de> for Controls<'_> {
    type Value = BTreeSet<String>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Controls<'_> {
    type Value = BTreeSet<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    non_objects_are_default!();
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut controls = BTreeSet::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            map.next_value::<Skip>()?;
            if key.0.starts_with(self.prefix) {
                controls.insert(key.0.into_owned());
            }
        }
        Ok(controls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "svc:c1.";

    fn parse(text: &str) -> Result<Deployments, serde_json::Error> {
        Deployments::parse(text.as_bytes(), PREFIX)
    }

    #[test]
    fn keeps_groups_and_this_cluster_s_controls() {
        let d = parse(
            r#"{"v1": {"x": [1, 2.5, null]}, "v2": {"deployments": {"prod.everything": {"docker_image": "img", "git_sha": "abc", "image_version": null}, "g2": {"docker_image": null}, "g3": {"docker_image": {"b": 1, "a": [true]}, "git_sha": null}, "g4": 7},
               "controls": {"svc:c1.main": {}, "svc:c2.main": {}, "other:c1.main": null}}}"#,
        )
        .expect("valid");
        let v2 = d.v2.expect("v2");
        assert_eq!(
            v2.deployments["prod.everything"],
            DeployGroup {
                docker_image: Some(DockerImage::Str("img".into())),
                has_git_sha: true
            }
        );
        assert_eq!(v2.deployments["g2"].docker_image, Some(DockerImage::Null));
        assert!(!v2.deployments["g2"].has_git_sha);
        assert_eq!(
            v2.deployments["g3"].docker_image,
            Some(DockerImage::Other(r#"{"a":[true],"b":1}"#.into()))
        );
        assert!(v2.deployments["g3"].has_git_sha);
        assert_eq!(v2.deployments["g4"], DeployGroup::default());
        assert_eq!(v2.controls.iter().collect::<Vec<_>>(), ["svc:c1.main"]);
    }

    #[test]
    fn missing_or_wrongly_typed_sections_find_nothing() {
        assert_eq!(parse("[1]").expect("valid").v2, None);
        assert_eq!(parse(r#"{"v1": {}}"#).expect("valid").v2, None);
        assert_eq!(
            parse(r#"{"v2": null}"#).expect("valid").v2,
            Some(DeploymentsV2::default())
        );
        assert_eq!(
            parse(r#"{"v2": {"deployments": [1], "controls": "x"}}"#)
                .expect("valid")
                .v2,
            Some(DeploymentsV2::default())
        );
    }

    #[test]
    fn the_last_duplicate_key_wins_like_serde_json_value() {
        let d = parse(r#"{"v2": {"deployments": {"g": {}}}, "v2": {"controls": {"svc:c1.a": 1}}}"#)
            .expect("valid");
        let v2 = d.v2.expect("v2");
        assert!(v2.deployments.is_empty());
        assert_eq!(v2.controls.len(), 1);
    }

    #[test]
    fn errors_match_serde_json_value() {
        for text in [
            "{",
            r#"{"v2": {"deployments": {"g": {"docker_image": "x",}}}}"#,
            r#"{"v1": 1e400}"#,
            r#"{"v1": "\ud800"}"#,
            "{} x",
            &format!("{{\"v1\": {}{}}}", "[".repeat(200), "]".repeat(200)),
        ] {
            let ours = parse(text).expect_err(text).to_string();
            let theirs = serde_json::from_str::<serde_json::Value>(text)
                .expect_err(text)
                .to_string();
            assert_eq!(ours, theirs, "{text}");
        }
    }
}
