//! Reading `metadata.managedFields`: which fields each field manager owns.
//!
//! The API server records ownership as a `fieldsV1` trie (Kubernetes docs,
//! "Server-Side Apply", field management): `f:<name>` is a map field,
//! `k:`/`v:`/`i:` address list items and `.` marks the node itself. Lists in
//! a schemaless custom resource are atomic, so anything below a list item is
//! collapsed into the list itself.

use super::compare::AscendingLookup;
use super::path::FieldPath;
use crate::value::Value;
use serde_json::Value as Json;
use std::collections::BTreeSet;

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedEntry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub fields: BTreeSet<FieldPath>,
}

/// `metadata.managedFields` of a live object.
fn managed_fields(object: &Json) -> Option<&Vec<Json>> {
    object.get("metadata")?.get("managedFields")?.as_array()
}

/// Parses every entry of `metadata.managedFields` of a live object.
#[must_use]
pub fn entries(object: &Json) -> Vec<ManagedEntry> {
    let Some(list) = managed_fields(object) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|entry| {
            let manager = entry.get("manager")?.as_str()?.to_owned();
            let operation = entry
                .get("operation")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_owned();
            let mut fields = BTreeSet::new();
            if let Some(trie) = entry.get("fieldsV1") {
                collect_leaves(trie, &mut FieldPath::root(), &mut fields);
            }
            Some(ManagedEntry {
                manager,
                operation,
                fields,
            })
        })
        .collect()
}

/// The leaves of the `fieldsV1` tries of the entries `owned` selects, below
/// the `scope` prefixes, that `intent` does not have. Walks the trie and the
/// intent side by side without building field sets, so an in-sync object
/// allocates nothing.
pub fn missing_owned_leaves(
    object: &Json,
    owned: impl Fn(&str, &str) -> bool,
    scope: &[&[&str]],
    intent: &Value,
) -> Vec<FieldPath> {
    let mut out = Vec::new();
    let Some(list) = managed_fields(object) else {
        return out;
    };
    for entry in list {
        let manager = entry.get("manager").and_then(Json::as_str).unwrap_or("");
        let operation = entry.get("operation").and_then(Json::as_str).unwrap_or("");
        if !owned(manager, operation) {
            continue;
        }
        let Some(trie) = entry.get("fieldsV1") else {
            continue;
        };
        for prefix in scope {
            let node = prefix.iter().try_fold(trie, |node, key| {
                node.as_object()?
                    .iter()
                    .find(|(k, _)| k.strip_prefix("f:") == Some(key))
                    .map(|(_, child)| child)
            });
            let Some(node) = node else {
                continue;
            };
            let intent_node = prefix
                .iter()
                .try_fold(intent, |value, key| value.as_map()?.get(key));
            let mut path: Vec<&str> = prefix.to_vec();
            missing_leaves(node, intent_node, &mut path, &mut out);
        }
    }
    out.sort();
    out.dedup();
    out
}

fn missing_leaves<'a>(
    node: &'a Json,
    intent: Option<&Value>,
    path: &mut Vec<&'a str>,
    out: &mut Vec<FieldPath>,
) {
    // A scalar or list in the intent covers everything below it.
    if let Some(intent) = intent
        && !matches!(intent, Value::Map(_))
    {
        return;
    }
    let Some(children) = node.as_object() else {
        return;
    };
    // Keys addressing list items (`i:`, `k:`, `v:`) sort after every `f:`
    // key, so only the keys after the last `f:` key can be one.
    let addresses_list_items = children
        .keys()
        .rev()
        .take_while(|key| !key.starts_with("f:"))
        .any(|key| addresses_list_item(key));
    let mut named = children
        .iter()
        .filter_map(|(key, child)| key.strip_prefix("f:").map(|name| (name, child)))
        .peekable();
    if named.peek().is_none() || addresses_list_items {
        if intent.is_none() {
            out.push(FieldPath::of(path));
        }
        return;
    }
    let intent_map = intent.and_then(Value::as_map);
    // Both sides are sorted by name (`f:` keeps the order): a merge.
    let mut cursor = AscendingLookup::new(intent_map.into_iter().flat_map(|m| m.iter()));
    for (name, child) in named {
        let intent_child = cursor
            .advance_to(name)
            .or_else(|| intent_map.and_then(|m| m.get(name)));
        path.push(name);
        missing_leaves(child, intent_child, path, out);
        path.pop();
    }
}

fn addresses_list_item(key: &str) -> bool {
    key.starts_with("k:") || key.starts_with("v:") || key.starts_with("i:")
}

/// The leaf paths of a `fieldsV1` trie: nodes without `f:` children.
fn collect_leaves(node: &Json, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    let Some(children) = node.as_object() else {
        return;
    };
    let named: Vec<(&str, &Json)> = children
        .iter()
        .filter_map(|(key, child)| key.strip_prefix("f:").map(|name| (name, child)))
        .collect();
    let addresses_list_items = children.keys().any(|key| addresses_list_item(key));
    if named.is_empty() || addresses_list_items {
        if !path.is_root() {
            out.insert(path.clone());
        }
        return;
    }
    for (name, child) in named {
        path.push(name);
        collect_leaves(child, path, out);
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leaves_of_a_fields_v1_trie() {
        let object = json!({"metadata": {"managedFields": [{
            "manager": "flink-gitops",
            "operation": "Apply",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:a": {}, "f:b": {}}},
                "f:spec": {
                    "f:taskmanager": {".": {}, "f:cpus": {}},
                    "f:jobs": {},
                    "f:env": {"k:{\"name\":\"X\"}": {".": {}, "f:value": {}}}
                }
            }
        }]}});
        let parsed = entries(&object);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].manager, "flink-gitops");
        assert_eq!(parsed[0].operation, "Apply");
        let paths: Vec<String> = parsed[0].fields.iter().map(ToString::to_string).collect();
        assert_eq!(
            paths,
            [
                "metadata.labels.a",
                "metadata.labels.b",
                "spec.env",
                "spec.jobs",
                "spec.taskmanager.cpus"
            ]
        );
    }

    #[test]
    fn owned_leaves_missing_from_the_intent() {
        let object = json!({"metadata": {"managedFields": [{
            "manager": "flink-gitops",
            "operation": "Apply",
            "fieldsV1": {
                "f:spec": {
                    "f:a": {},
                    "f:gone": {".": {}, "f:x": {}},
                    "f:env": {".": {}, "k:{\"name\":\"X\"}": {"f:value": {}}},
                    "f:items": {"f:keep": {}, "i:0": {}},
                    "f:zz": {"f:y": {}}
                }
            }
        }]}});
        let intent = Value::from_json(&json!({"spec": {"a": 1, "zz": {"y": 2}}}));
        let missing: Vec<String> = missing_owned_leaves(
            &object,
            |m, o| m == "flink-gitops" && o == "Apply",
            &[&["spec"]],
            &intent,
        )
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(missing, ["spec.env", "spec.gone.x", "spec.items"]);
        let covered = Value::from_json(
            &json!({"spec": {"a": 1, "env": [], "gone": {"x": 1}, "items": {"keep": 1}, "zz": {"y": 2}}}),
        );
        let missing =
            missing_owned_leaves(&object, |m, _| m == "flink-gitops", &[&["spec"]], &covered);
        assert_eq!(missing, Vec::<FieldPath>::new());
    }

    #[test]
    fn objects_without_managed_fields_have_no_entries() {
        assert!(entries(&json!({"metadata": {}})).is_empty());
    }
}
