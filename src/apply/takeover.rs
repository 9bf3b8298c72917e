//! Taking field ownership over from PaaSTA's writers.
//!
//! PaaSTA creates and replaces objects with plain updates, so the API server
//! records its fields under an `Update` entry of a manager named after the
//! Python client. A server-side apply only ever removes fields its own
//! manager owns, so without a takeover a key deleted in git would stay in the
//! cluster forever. Before our first write we rewrite those entries into our
//! `Apply` entry, as Flux does when it migrates field managers.

use crate::plan::Policy;
use serde_json::{Map, Value as Json};

/// The `managedFields` list with every `Update` entry of a takeover manager
/// folded into our `Apply` entry; `None` when there is nothing to take over.
#[must_use]
pub fn rewritten_managed_fields(live: &Json, policy: &Policy) -> Option<Vec<Json>> {
    let entries = live.pointer("/metadata/managedFields")?.as_array()?;
    let is_taken_over = |entry: &Json| {
        entry.get("operation").and_then(Json::as_str) == Some("Update")
            && entry
                .get("manager")
                .and_then(Json::as_str)
                .is_some_and(|m| policy.takeover_managers.iter().any(|t| t == m))
    };
    let is_ours = |entry: &Json| {
        entry.get("operation").and_then(Json::as_str) == Some("Apply")
            && entry.get("manager").and_then(Json::as_str) == Some(policy.field_manager.as_str())
    };
    if !entries.iter().any(is_taken_over) {
        return None;
    }
    let mut fields = Json::Object(Map::new());
    let mut template: Option<Json> = None;
    let mut kept = Vec::new();
    for entry in entries {
        if is_taken_over(entry) || is_ours(entry) {
            if let Some(trie) = entry.get("fieldsV1") {
                merge_tries(&mut fields, trie);
            }
            if template.is_none() || is_ours(entry) {
                template = Some(entry.clone());
            }
        } else {
            kept.push(entry.clone());
        }
    }
    let mut ours = template?;
    ours["manager"] = Json::String(policy.field_manager.clone());
    ours["operation"] = Json::String("Apply".to_owned());
    ours["fieldsType"] = Json::String("FieldsV1".to_owned());
    ours["fieldsV1"] = fields;
    if let Some(object) = ours.as_object_mut() {
        object.remove("subresource");
    }
    kept.push(ours);
    Some(kept)
}

/// Union of two `fieldsV1` tries.
fn merge_tries(into: &mut Json, from: &Json) {
    let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) else {
        return;
    };
    for (key, child) in from {
        match into.get_mut(key) {
            Some(existing) => merge_tries(existing, child),
            None => {
                into.insert(key.clone(), child.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paasta_update_entries_fold_into_our_apply_entry() {
        let live = json!({"metadata": {"managedFields": [
            {"manager": "OpenAPI-Generator", "operation": "Update", "apiVersion": "yelp.com/v1alpha1",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:a": {}, "f:gone": {}}}},
            {"manager": "flink-operator", "operation": "Update", "fieldsV1": {"f:metadata": {"f:annotations": {"f:x": {}}}}},
            {"manager": "flink-gitops", "operation": "Apply", "fieldsV1": {"f:spec": {"f:b": {}}}}
        ]}});
        let rewritten = rewritten_managed_fields(&live, &Policy::default()).expect("takeover");
        assert_eq!(rewritten.len(), 2);
        assert_eq!(rewritten[0]["manager"], "flink-operator");
        assert_eq!(rewritten[1]["manager"], "flink-gitops");
        assert_eq!(rewritten[1]["operation"], "Apply");
        assert_eq!(
            rewritten[1]["fieldsV1"],
            json!({"f:spec": {"f:a": {}, "f:gone": {}, "f:b": {}}})
        );
    }

    #[test]
    fn nothing_to_take_over() {
        let live = json!({"metadata": {"managedFields": [
            {"manager": "flink-gitops", "operation": "Apply", "fieldsV1": {}}
        ]}});
        assert!(rewritten_managed_fields(&live, &Policy::default()).is_none());
    }
}
