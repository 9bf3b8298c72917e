//! Reading `metadata.managedFields`: which fields each field manager owns.
//!
//! The API server records ownership as a `fieldsV1` trie (Kubernetes docs,
//! "Server-Side Apply", field management): `f:<name>` is a map field,
//! `k:`/`v:`/`i:` address list items and `.` marks the node itself. Lists in
//! a schemaless custom resource are atomic, so anything below a list item is
//! collapsed into the list itself.

use super::path::FieldPath;
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

/// Parses every entry of `metadata.managedFields` of a live object.
#[must_use]
pub fn entries(object: &Json) -> Vec<ManagedEntry> {
    let Some(list) = object
        .pointer("/metadata/managedFields")
        .and_then(Json::as_array)
    else {
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

/// The leaf paths of a `fieldsV1` trie: nodes without `f:` children.
fn collect_leaves(node: &Json, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    let Some(children) = node.as_object() else {
        return;
    };
    let named: Vec<(&str, &Json)> = children
        .iter()
        .filter_map(|(key, child)| key.strip_prefix("f:").map(|name| (name, child)))
        .collect();
    let addresses_list_items = children
        .keys()
        .any(|key| key.starts_with("k:") || key.starts_with("v:") || key.starts_with("i:"));
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
    fn objects_without_managed_fields_have_no_entries() {
        assert!(entries(&json!({"metadata": {}})).is_empty());
    }
}
