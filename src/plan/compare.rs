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
/// an in-sync object costs no allocation.
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
            for (key, child) in map.iter() {
                path.push(key);
                walk(child, live_map.and_then(|m| m.get(key)), path, ignored, out);
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

/// JSON-semantic equality: numbers compare by value across int and float,
/// maps by key set and values, lists element-wise.
#[must_use]
pub fn semantic_eq(intent: &Value, live: &Json) -> bool {
    match (intent, live) {
        (Value::Null, Json::Null) => true,
        (Value::Bool(a), Json::Bool(b)) => a == b,
        (Value::Str(a), Json::String(b)) => a == b,
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
            a.len() == b.len()
                && a.iter()
                    .all(|(key, value)| b.get(key).is_some_and(|live| semantic_eq(value, live)))
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
    fn intent_has_follows_maps() {
        let ours = intent(json!({"spec": {"a": {"b": 1}, "list": [1]}}));
        assert!(intent_has(&ours, &FieldPath::of(&["spec", "a", "b"])));
        assert!(!intent_has(&ours, &FieldPath::of(&["spec", "a", "c"])));
        assert!(intent_has(&ours, &FieldPath::of(&["spec", "list"])));
        assert!(!intent_has(&ours, &FieldPath::of(&["spec", "gone"])));
    }
}
