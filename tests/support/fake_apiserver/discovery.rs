//! Discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}/{version}`.

use super::state::{Kind, State};
use super::status::ApiError;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

/// `GET /version` (https://kubernetes.io/docs/concepts/overview/kubernetes-api/#api-groups-and-versioning).
pub fn version() -> Json {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-fake",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// Unaggregated discovery documents
/// (https://kubernetes.io/docs/concepts/overview/kubernetes-api/#discovery-api).
pub fn core_resources(state: &State) -> Json {
    let mut resources = vec![json!({
        "name": "namespaces", "singularName": "namespace", "namespaced": false,
        "kind": "Namespace", "verbs": ["create", "get", "list"], "shortNames": ["ns"],
    })];
    for kind in state.kinds.iter().filter(|k| k.group.is_empty()) {
        resources.push(json!({
            "name": kind.plural, "singularName": kind.kind.to_lowercase(), "namespaced": true,
            "kind": kind.kind,
            "verbs": ["delete", "get", "list", "patch", "create", "update"],
        }));
    }
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": resources,
    })
}

pub fn groups(state: &State) -> Json {
    let mut by_group: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for kind in state.kinds.iter().filter(|k| !k.group.is_empty()) {
        let versions = by_group.entry(&kind.group).or_default();
        if !versions.contains(&kind.version.as_str()) {
            versions.push(&kind.version);
        }
    }
    let groups: Vec<Json> = by_group
        .into_iter()
        .map(|(group, versions)| {
            let versions: Vec<Json> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
                .collect();
            json!({"name": group, "versions": versions, "preferredVersion": versions[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn resources(state: &State, group: &str, version: &str) -> Result<Json, ApiError> {
    let kinds: Vec<&Kind> = state
        .kinds
        .iter()
        .filter(|k| !k.group.is_empty() && k.group == group && k.version == version)
        .collect();
    if kinds.is_empty() {
        return Err(ApiError::unknown_resource());
    }
    let mut resources = Vec::new();
    for kind in kinds {
        resources.push(json!({
            "name": kind.plural, "singularName": kind.kind.to_lowercase(), "namespaced": true,
            "kind": kind.kind,
            "verbs": ["delete", "get", "list", "patch", "create", "update"],
        }));
        resources.push(json!({
            "name": format!("{}/status", kind.plural), "singularName": "", "namespaced": true,
            "kind": kind.kind, "verbs": ["get"],
        }));
    }
    Ok(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{group}/{version}"),
        "resources": resources,
    }))
}
