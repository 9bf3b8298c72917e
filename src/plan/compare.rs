//! Comparing our intent with a live object.
//!
//! Only the fields of the intent count: whatever the API server or other
//! writers added (status, `resourceVersion`, foreign labels) is not ours.
//! Values compare as JSON does semantically: the API server hands an
//! integral float back as an integer (`2.0` → `2`), so those are equal.
//! Lists are atomic (schemaless custom resources), so a list compares whole.

use super::path::FieldPath;
use crate::value::Value;
use serde_json::Value as Json;
use std::collections::BTreeSet;

/// The leaf paths of `intent` whose live value differs or is missing.
/// Paths in `ignored` are not compared.
#[must_use]
pub fn differing_paths(intent: &Value, live: &Json, ignored: &[FieldPath]) -> Vec<FieldPath> {
    let mut out = Vec::new();
    walk(intent, Some(live), &mut Vec::new(), ignored, &mut out);
    out
}

/// Borrowed keys on the way down; a `FieldPath` is only built for a hit, so
/// an in-sync object costs no allocation. The intent's keys are looked up in
/// the live map by a merge with its (sorted) entries rather than one search
/// per key.
fn walk<'a>(
    intent: &'a Value,
    live: Option<&Json>,
    path: &mut Vec<&'a str>,
    ignored: &[FieldPath],
    out: &mut Vec<FieldPath>,
) {
    // Ignored paths are metadata annotations and labels: check only there.
    if path.len() == 3 && path[0] == "metadata" && ignored.iter().any(|i| i.is(path)) {
        return;
    }
    match intent {
        Value::Map(map) if !map.is_empty() => {
            let live_map = live.and_then(Json::as_object);
            let mut cursor = AscendingLookup::new(
                live_map
                    .into_iter()
                    .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v))),
            );
            for (key, child) in map.iter() {
                let live_child = cursor
                    .advance_to(key)
                    .or_else(|| live_map.and_then(|m| m.get(key)));
                path.push(key);
                walk(child, live_child, path, ignored, out);
                path.pop();
            }
        }
        _ => {
            if !live.is_some_and(|live| semantic_eq(intent, live)) {
                out.push(FieldPath::of(path));
            }
        }
    }
}

/// Finds keys among entries sorted by key when the keys asked for come in
/// ascending order too: one forward pass over the entries for all of them (a
/// merge join) instead of a search per key.
///
/// [`advance_to`](Self::advance_to) answers `None` when the merge does not
/// find the key, either because it is absent or because it was asked out of
/// order (a map in Python's numeric key order); the caller then falls back to
/// a plain lookup, so the answer never depends on the order.
pub(crate) struct AscendingLookup<'a, V, I> {
    entries: I,
    next: Option<(&'a str, &'a V)>,
}

impl<'a, V, I: Iterator<Item = (&'a str, &'a V)>> AscendingLookup<'a, V, I> {
    pub(crate) fn new(mut entries: I) -> Self {
        let next = entries.next();
        AscendingLookup { entries, next }
    }

    /// The value under `key` if the forward pass meets it.
    pub(crate) fn advance_to(&mut self, key: &str) -> Option<&'a V> {
        while let Some((k, v)) = self.next {
            match cmp_keys(k, key) {
                std::cmp::Ordering::Less => self.next = self.entries.next(),
                std::cmp::Ordering::Equal => {
                    self.next = self.entries.next();
                    return Some(v);
                }
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }
}

/// `a.cmp(b)`, settled by the first bytes when they differ (most sibling
/// keys do) without a call to `memcmp`.
fn cmp_keys(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// JSON-semantic equality: numbers compare by value across int and float,
/// maps by key set and values, lists element-wise.
#[must_use]
pub fn semantic_eq(intent: &Value, live: &Json) -> bool {
    match (intent, live) {
        (Value::Null, Json::Null) => true,
        (Value::Bool(a), Json::Bool(b)) => a == b,
        (Value::Str(a), Json::String(b)) => a == b,
        // kube-apiserver keeps an integer outside int64 as a float64: it
        // comes back rounded, and equal is what rounds to the same.
        #[allow(clippy::cast_precision_loss)]
        (Value::Int(a), Json::Number(b)) if i64::try_from(*a).is_err() => {
            b.as_f64().is_some_and(|b| *a as f64 == b)
        }
        (Value::Int(a), Json::Number(b)) => match (b.as_i64(), b.as_u64(), b.as_f64()) {
            (Some(b), _, _) => *a == i128::from(b),
            (_, Some(b), _) => *a == i128::from(b),
            #[allow(clippy::cast_precision_loss)]
            (_, _, Some(b)) => (*a as f64) == b && b.fract() == 0.0,
            _ => false,
        },
        #[allow(clippy::cast_precision_loss)]
        (Value::Float(a), Json::Number(b)) => match b.as_i64() {
            Some(b) => *a == b as f64,
            None => b.as_f64().is_some_and(|b| *a == b),
        },
        (Value::Seq(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| semantic_eq(a, b))
        }
        (Value::Map(a), Json::Object(b)) => {
            let mut cursor = AscendingLookup::new(b.iter().map(|(k, v)| (k.as_str(), v)));
            a.len() == b.len()
                && a.iter().all(|(key, value)| {
                    cursor
                        .advance_to(key)
                        .or_else(|| b.get(key))
                        .is_some_and(|live| semantic_eq(value, live))
                })
        }
        _ => false,
    }
}

/// True when `path` (or a prefix of it that is a non-map leaf) exists in `intent`.
#[must_use]
pub fn intent_has(intent: &Value, path: &FieldPath) -> bool {
    intent_has_keys(intent, path.keys())
}

/// [`intent_has`] over borrowed keys.
#[must_use]
pub fn intent_has_keys<S: AsRef<str>>(intent: &Value, keys: &[S]) -> bool {
    let mut node = intent;
    for key in keys {
        let key = key.as_ref();
        match node {
            Value::Map(map) => match map.get(key) {
                Some(child) => node = child,
                None => return false,
            },
            // A scalar or list in the intent covers everything below it.
            _ => return true,
        }
    }
    true
}

/// The set of leaf paths of a live JSON value below `prefix` (for reports).
#[must_use]
pub fn live_leaves(live: &Json, prefix: &[&str]) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    let mut node = live;
    let mut path = FieldPath::root();
    for key in prefix {
        match node.get(key) {
            Some(child) => node = child,
            None => return out,
        }
        path.push(key);
    }
    collect(node, &mut path, &mut out);
    out
}

fn collect(node: &Json, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match node.as_object() {
        Some(map) if !map.is_empty() => {
            for (key, child) in map {
                path.push(key);
                collect(child, path, out);
                path.pop();
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn intent(json: Json) -> Value {
        Value::from_json(&json)
    }

    #[test]
    fn integral_floats_equal_integers() {
        assert!(semantic_eq(&Value::Float(2.0), &json!(2)));
        assert!(semantic_eq(&Value::Int(2), &json!(2.0)));
        assert!(!semantic_eq(&Value::Float(2.5), &json!(2)));
        assert!(!semantic_eq(&Value::str("2"), &json!(2)));
    }

    #[test]
    fn only_fields_of_the_intent_count() {
        let ours = intent(json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": 1}}));
        let live = json!({
            "metadata": {"labels": {"a": "1", "foreign": "x"}, "resourceVersion": "9", "uid": "u"},
            "spec": {"x": 1.0},
            "status": {"state": "running"}
        });
        assert!(differing_paths(&ours, &live, &[]).is_empty());
    }

    #[test]
    fn differences_and_missing_fields_are_reported_by_path() {
        let ours = intent(json!({"spec": {"x": 1, "y": {"z": [1, 2]}, "new": true}}));
        let live = json!({"spec": {"x": 2, "y": {"z": [1]}}});
        let paths: Vec<String> = differing_paths(&ours, &live, &[])
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(paths, ["spec.new", "spec.x", "spec.y.z"]);
    }

    #[test]
    fn ignored_paths_are_skipped() {
        let ours = intent(json!({"metadata": {"annotations": {"d": "running"}}}));
        let live = json!({"metadata": {"annotations": {"d": "stop"}}});
        let ignored = [FieldPath::of(&["metadata", "annotations", "d"])];
        assert!(differing_paths(&ours, &live, &ignored).is_empty());
        assert_eq!(differing_paths(&ours, &live, &[]).len(), 1);
    }

    #[test]
    fn ascending_lookup_finds_keys_in_order_and_defers_the_rest() {
        let live = json!({"10": 1, "9": 2, "a": 3, "c": 4});
        let map = live.as_object().expect("object");
        let mut cursor = AscendingLookup::new(map.iter().map(|(k, v)| (k.as_str(), v)));
        // Python's numeric order asks "9" before "10": the merge passes "10".
        assert_eq!(cursor.advance_to("9"), Some(&json!(2)));
        assert_eq!(cursor.advance_to("10"), None);
        assert_eq!(cursor.advance_to("b"), None);
        assert_eq!(cursor.advance_to("c"), Some(&json!(4)));
        assert_eq!(cursor.advance_to("d"), None);
    }

    #[test]
    fn an_integer_beyond_int64_equals_its_float64_rounding() {
        let big = Value::Int(12_345_678_901_234_567_890);
        assert!(semantic_eq(&big, &json!(12_345_678_901_234_567_000_u64)));
        assert!(semantic_eq(&big, &json!(12_345_678_901_234_567_890_u64)));
        assert!(!semantic_eq(&big, &json!(12_345_678_901_234_560_000_u64)));
        assert!(!semantic_eq(&Value::Int(7), &json!(7.5)));
    }

    #[test]
    fn maps_in_numeric_key_order_compare_like_any_other() {
        let ours = Value::Map(crate::value::Map::from_sorted(vec![
            ("9".into(), Value::Int(1)),
            ("10".into(), Value::Int(2)),
        ]));
        let live = json!({"9": 1, "10": 2, "extra": 0});
        assert!(differing_paths(&ours, &live, &[]).is_empty());
        let nested = intent(json!({"spec": {"list": [{"b": 1, "a": 2}]}}));
        let live = json!({"spec": {"list": [{"a": 2, "b": 1}]}});
        assert!(differing_paths(&nested, &live, &[]).is_empty());
        let mut reordered = crate::value::Map::new();
        reordered.insert("x", ours);
        let live = json!({"x": {"10": 2, "9": 3}});
        let paths: Vec<String> = differing_paths(&Value::Map(reordered), &live, &[])
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(paths, ["x.9"]);
    }

    #[test]
    fn intent_has_follows_maps() {
        let ours = intent(json!({"spec": {"a": {"b": 1}, "list": [1]}}));
        assert!(intent_has(&ours, &FieldPath::of(&["spec", "a", "b"])));
        assert!(!intent_has(&ours, &FieldPath::of(&["spec", "a", "c"])));
        assert!(intent_has(&ours, &FieldPath::of(&["spec", "list"])));
        assert!(!intent_has(&ours, &FieldPath::of(&["spec", "gone"])));
    }
}
