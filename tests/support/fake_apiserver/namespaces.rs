//! The core `namespaces` resource: get, list, create.

use super::state::{State, metadata};
use super::status::ApiError;
use super::util::{new_uid, now_rfc3339};
use serde_json::{Value as Json, json};

/// `GET /api/v1/namespaces/{name}`: the namespace or 404
/// (https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/).
pub fn get(state: &State, name: &str) -> Result<Json, ApiError> {
    state
        .namespaces
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::not_found("namespaces", "", name))
}

/// `GET /api/v1/namespaces`: a `NamespaceList`
/// (https://kubernetes.io/docs/reference/using-api/api-concepts/#collections).
pub fn list(state: &State) -> Json {
    json!({
        "apiVersion": "v1",
        "kind": "NamespaceList",
        "metadata": {"resourceVersion": state.resource_version.to_string()},
        "items": state.namespaces.values().cloned().collect::<Vec<_>>(),
    })
}

/// `POST /api/v1/namespaces`: 201 with an `Active` namespace labelled
/// `kubernetes.io/metadata.name`, 409 AlreadyExists
/// (https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/#automatic-labelling).
pub fn create(state: &mut State, body: &Json, dry_run: bool) -> Result<(u16, Json), ApiError> {
    let name = body
        .pointer("/metadata/name")
        .and_then(Json::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid("Namespace \"\" is invalid: metadata.name: Required value: name or generateName is required")
        })?
        .to_owned();
    if state.namespaces.contains_key(&name) {
        return Err(ApiError::already_exists("namespaces", "", &name));
    }
    let mut namespace = body.clone();
    namespace["apiVersion"] = json!("v1");
    namespace["kind"] = json!("Namespace");
    let meta = metadata(&mut namespace);
    meta.insert("uid".into(), json!(new_uid()));
    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    labels["kubernetes.io/metadata.name"] = json!(name);
    namespace["spec"] = json!({"finalizers": ["kubernetes"]});
    namespace["status"] = json!({"phase": "Active"});
    if !dry_run {
        let rv = state.bump();
        metadata(&mut namespace).insert("resourceVersion".into(), json!(rv));
        state.namespaces.insert(name, namespace.clone());
    }
    Ok((201, namespace))
}
