//! Reads and writes of namespaced custom resources.
//!
//! The verbs follow https://kubernetes.io/docs/reference/using-api/api-concepts/#api-verbs
//! (get, list, create, update = PUT, patch, delete).

use super::fields::untracked;
use super::gc;
use super::managed::{self, Managed};
use super::patch::{PatchError, json_patch, merge_patch};
use super::selector::{FieldSelector, LabelSelector};
use super::ssa;
use super::state::{Kind, State, Stored, metadata};
use super::status::{ApiError, delete_success};
use super::util::{hex_decode, hex_encode, normalize_numbers, now_rfc3339};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

/// Content types of `PATCH`
/// (https://kubernetes.io/docs/reference/using-api/api-concepts/#patch-and-apply).
pub const APPLY: &str = "application/apply-patch+yaml";
pub const MERGE: &str = "application/merge-patch+json";
pub const JSON_PATCH: &str = "application/json-patch+json";
pub const STRATEGIC: &str = "application/strategic-merge-patch+json";

/// `GET .../{plural}/{name}`.
pub fn get(state: &State, kind: &Kind, ns: &str, name: &str) -> Result<Json, ApiError> {
    state
        .objects
        .get(&State::key(kind, ns, name))
        .map(Stored::served)
        .ok_or_else(|| ApiError::not_found(&kind.plural, &kind.group, name))
}

/// A `continue` token: the resourceVersion of the first page and the last
/// key served, hex-encoded JSON (opaque to clients).
fn continue_token(rv: &str, ns: &str, name: &str) -> String {
    hex_encode(
        json!({"rv": rv, "ns": ns, "name": name})
            .to_string()
            .as_bytes(),
    )
}

fn parse_continue(token: &str) -> Result<(String, String, String), ApiError> {
    let invalid = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    let bytes = hex_decode(token).ok_or_else(invalid)?;
    let value: Json = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let field = |k: &str| value.get(k).and_then(Json::as_str).map(str::to_owned);
    Ok((
        field("rv").ok_or_else(invalid)?,
        field("ns").ok_or_else(invalid)?,
        field("name").ok_or_else(invalid)?,
    ))
}

/// `GET .../{plural}` in one namespace (`ns = Some`) or all.
///
/// - `labelSelector` / `fieldSelector`: see [`LabelSelector`], [`FieldSelector`].
/// - `limit` / `continue`: items in namespace/name order, at most `limit`
///   per page; when more match, `metadata.continue` holds an opaque token
///   and, without selectors, `metadata.remainingItemCount` the count left
///   (https://kubernetes.io/docs/reference/using-api/api-concepts/#retrieving-large-results-sets-in-chunks).
///   Later pages report the first page's `resourceVersion`, but (unlike
///   etcd) show the objects as they are now, not a snapshot.
/// - The list is `<Kind>List` with `metadata.resourceVersion`
///   (https://kubernetes.io/docs/reference/using-api/api-concepts/#collections);
///   each item carries `apiVersion` and `kind`.
pub fn list(
    state: &State,
    kind: &Kind,
    ns: Option<&str>,
    query: &BTreeMap<String, String>,
) -> Result<Json, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    let limit: usize = match query.get("limit").filter(|l| !l.is_empty()) {
        Some(l) => l
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        None => 0,
    };
    let (rv, after) = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rv, ns, name) = parse_continue(token)?;
            (rv, Some((ns, name)))
        }
        None => (state.resource_version.to_string(), None),
    };
    let matching: Vec<(&String, &String, &Stored)> = state
        .objects
        .iter()
        .filter(|((g, p, o_ns, _), _)| {
            *g == kind.group && *p == kind.plural && ns.is_none_or(|ns| ns == o_ns)
        })
        .filter(|((_, _, o_ns, o_name), _)| {
            after
                .as_ref()
                .is_none_or(|(a_ns, a_name)| (o_ns, o_name) > (a_ns, a_name))
        })
        .filter(|(_, stored)| labels.matches(&stored.object) && fields.matches(&stored.object))
        .map(|((_, _, o_ns, o_name), stored)| (o_ns, o_name, stored))
        .collect();
    let page = if limit > 0 && matching.len() > limit {
        &matching[..limit]
    } else {
        &matching[..]
    };
    let mut meta = json!({"resourceVersion": rv});
    if page.len() < matching.len() {
        if let Some((last_ns, last_name, _)) = page.last() {
            meta["continue"] = json!(continue_token(&rv, last_ns, last_name));
        }
        if labels == LabelSelector::default() && fields.is_empty() {
            meta["remainingItemCount"] = json!(matching.len() - page.len());
        }
    }
    Ok(json!({
        "apiVersion": kind.api_version(),
        "kind": format!("{}List", kind.kind),
        "metadata": meta,
        "items": page.iter().map(|(_, _, s)| s.served()).collect::<Vec<_>>(),
    }))
}

/// 404 unless the namespace exists: the apiserver refuses to create an
/// object in a missing namespace
/// (https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/).
pub fn require_namespace(state: &State, ns: &str) -> Result<(), ApiError> {
    if state.namespaces.contains_key(ns) {
        Ok(())
    } else {
        Err(ApiError::not_found("namespaces", "", ns))
    }
}

/// `apiVersion` and `kind` must be set and name this resource.
fn check_type(kind: &Kind, object: &Json) -> Result<(), ApiError> {
    let api_version = object.get("apiVersion").and_then(Json::as_str);
    let object_kind = object.get("kind").and_then(Json::as_str);
    match (api_version, object_kind) {
        (None, _) | (Some(""), _) => Err(ApiError::bad_request(
            "Object 'apiVersion' is missing in the request body",
        )),
        (_, None) | (_, Some("")) => Err(ApiError::bad_request(
            "Object 'Kind' is missing in the request body",
        )),
        (Some(v), Some(k)) if v != kind.api_version() || k != kind.kind => {
            Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({})",
                kind.api_version()
            )))
        }
        _ => Ok(()),
    }
}

/// A name or namespace in the body must match the URL
/// (https://kubernetes.io/docs/reference/using-api/api-concepts/#api-verbs).
fn check_name(object: &Json, ns: &str, name: Option<&str>) -> Result<(), ApiError> {
    let meta = object.get("metadata");
    let body_ns = meta.and_then(|m| m.get("namespace")).and_then(Json::as_str);
    if body_ns.is_some_and(|b| !b.is_empty() && b != ns) {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let body_name = meta.and_then(|m| m.get("name")).and_then(Json::as_str);
    if let (Some(url), Some(body)) = (name, body_name)
        && body != url
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body}) does not match the name on the URL ({url})"
        )));
    }
    Ok(())
}

/// `metadata.resourceVersion` in a body is a precondition: it must equal
/// the live one, else 409 Conflict; on a create it is refused (500)
/// (https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions,
/// optimistic concurrency).
fn check_resource_version(
    kind: &Kind,
    name: &str,
    live: Option<&Stored>,
    object: &Json,
) -> Result<(), ApiError> {
    let Some(wanted) = object
        .pointer("/metadata/resourceVersion")
        .and_then(Json::as_str)
        .filter(|rv| !rv.is_empty())
    else {
        return Ok(());
    };
    match live {
        // The storage layer refuses it with a plain error, which the
        // apiserver answers as a 500 without a reason.
        None => Err(ApiError::new(
            500,
            "resourceVersion should not be set on objects to be created",
        )
        .reason("")),
        Some(live) => {
            let current = live.object.pointer("/metadata/resourceVersion");
            if current.and_then(Json::as_str) == Some(wanted) {
                Ok(())
            } else {
                Err(ApiError::stale(&kind.plural, &kind.group, name))
            }
        }
    }
}

/// `metadata.uid` in an apply is a precondition, as kube-apiserver treats
/// it (`rest.DefaultUpdatedObjectInfo` preconditions; create-on-apply with a
/// uid fails): a mismatch, or no object to match, is a 409.
fn check_uid(live: Option<&Stored>, object: &Json) -> Result<(), ApiError> {
    let Some(wanted) = object
        .pointer("/metadata/uid")
        .and_then(Json::as_str)
        .filter(|uid| !uid.is_empty())
    else {
        return Ok(());
    };
    let current = live
        .and_then(|l| l.object.pointer("/metadata/uid"))
        .and_then(Json::as_str)
        .unwrap_or_default();
    if current == wanted {
        return Ok(());
    }
    Err(ApiError::new(
        409,
        format!(
            "Precondition failed: UID in precondition: {wanted}, UID in object meta: {current}"
        ),
    )
    .reason("Conflict"))
}

/// A non-apply write (create, update, merge or JSON patch) as an `Update`
/// operation by `manager`: ownership per [`managed::record_update`],
/// entries from the body per [`managed::from_request_or_live`].
fn update_write(
    state: &mut State,
    kind: &Kind,
    ns: &str,
    name: &str,
    mut new: Json,
    manager: &str,
    dry_run: bool,
) -> Result<(u16, Json), ApiError> {
    let live = state.objects.get(&State::key(kind, ns, name)).cloned();
    check_type(kind, &new)?;
    check_name(&new, ns, Some(name))?;
    check_resource_version(kind, name, live.as_ref(), &new)?;
    if live.is_none() {
        require_namespace(state, ns)?;
    }
    let live_managed = live.as_ref().map(|l| l.managed.clone()).unwrap_or_default();
    let mut managed: Managed =
        managed::from_request_or_live(new.pointer("/metadata/managedFields"), &live_managed);
    metadata(&mut new).remove("managedFields");
    normalize_numbers(&mut new);
    let live_object = live
        .as_ref()
        .map_or_else(|| json!({}), |l| l.object.clone());
    if let Some(map) = new.as_object_mut() {
        match live_object.get("status") {
            Some(status) => map.insert("status".into(), status.clone()),
            None => map.remove("status"),
        };
    }
    managed::record_update(
        &mut managed,
        &live_object,
        &new,
        manager,
        &kind.api_version(),
        &now_rfc3339(),
    );
    let (created, served) = state.commit(
        kind,
        ns,
        name,
        Stored {
            object: new,
            managed,
        },
        dry_run,
    );
    Ok((if created { 201 } else { 200 }, served))
}

/// `POST .../{plural}`: 201, or 409 AlreadyExists. `metadata.generateName`
/// is honoured when `name` is absent.
pub fn create(
    state: &mut State,
    kind: &Kind,
    ns: &str,
    body: Json,
    manager: &str,
    dry_run: bool,
) -> Result<(u16, Json), ApiError> {
    check_type(kind, &body)?;
    check_name(&body, ns, None)?;
    let meta = body.get("metadata");
    let name = match meta.and_then(|m| m.get("name")).and_then(Json::as_str) {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => match meta
            .and_then(|m| m.get("generateName"))
            .and_then(Json::as_str)
        {
            Some(prefix) if !prefix.is_empty() => {
                format!("{prefix}{:05x}", rand::random::<u32>() & 0xfffff)
            }
            _ => {
                return Err(ApiError::invalid(format!(
                    "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                    kind.kind
                )));
            }
        },
    };
    require_namespace(state, ns)?;
    if state.objects.contains_key(&State::key(kind, ns, &name)) {
        return Err(ApiError::already_exists(&kind.plural, &kind.group, &name));
    }
    update_write(state, kind, ns, &name, body, manager, dry_run)
}

/// `PUT .../{plural}/{name}`: replaces the object; 404 when absent (custom
/// resources do not create on update).
pub fn replace(
    state: &mut State,
    kind: &Kind,
    ns: &str,
    name: &str,
    body: Json,
    manager: &str,
    dry_run: bool,
) -> Result<(u16, Json), ApiError> {
    get(state, kind, ns, name)?;
    update_write(state, kind, ns, name, body, manager, dry_run)
}

/// `PATCH` with a merge patch or a JSON patch, applied to the object as
/// served (so a JSON patch may `test` `/metadata/resourceVersion` or
/// replace `/metadata/managedFields`). A failed JSON patch operation is 422.
#[allow(clippy::too_many_arguments)]
pub fn patch(
    state: &mut State,
    kind: &Kind,
    ns: &str,
    name: &str,
    content_type: &str,
    body: &Json,
    manager: &str,
    dry_run: bool,
) -> Result<(u16, Json), ApiError> {
    let mut doc = get(state, kind, ns, name)?;
    match content_type {
        MERGE => {
            if !body.is_object() {
                return Err(ApiError::bad_request("merge patch must be a JSON object"));
            }
            merge_patch(&mut doc, body);
        }
        JSON_PATCH => json_patch(&mut doc, body).map_err(|e| match e {
            PatchError::Malformed(m) => ApiError::bad_request(m),
            PatchError::Failed(m) => ApiError::invalid(m),
        })?,
        _ => return Err(unsupported_patch()),
    }
    update_write(state, kind, ns, name, doc, manager, dry_run)
}

/// 415 `UnsupportedMediaType` for a patch type custom resources do not
/// support: strategic merge patch needs Go struct tags a CRD does not have
/// (https://kubernetes.io/docs/concepts/extend-kubernetes/api-extension/custom-resources/#advanced-features-and-flexibility,
/// row "strategic-merge-patch").
pub fn unsupported_patch() -> ApiError {
    ApiError::new(
        415,
        format!(
            "the body of the request was in an unknown format - accepted media types include: \
             {JSON_PATCH}, {MERGE}, {APPLY}"
        ),
    )
}

/// `PATCH` with `application/apply-patch+yaml`: server-side apply, see
/// [`ssa::apply`]. Creates the object (201) when absent.
///
/// Validation as the apiserver's: `fieldManager` is required (422,
/// `PatchOptions.meta.k8s.io "" is invalid`), the configuration must name
/// `apiVersion`/`kind` of this resource, and must not carry
/// `metadata.managedFields` (400)
/// (https://kubernetes.io/docs/reference/using-api/server-side-apply/#managers).
/// `status` in the configuration is ignored (a subresource), so is
/// server-owned metadata; `metadata.resourceVersion`, when given, is a
/// precondition.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    state: &mut State,
    kind: &Kind,
    ns: &str,
    name: &str,
    body: &Json,
    manager: &str,
    force: bool,
    dry_run: bool,
) -> Result<(u16, Json), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the object provided is unrecognized (must be of type Object)",
        ));
    }
    check_type(kind, body)?;
    check_name(body, ns, Some(name))?;
    if body.pointer("/metadata/managedFields").is_some() {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    let key = State::key(kind, ns, name);
    let live = state.objects.get(&key).cloned();
    check_resource_version(kind, name, live.as_ref(), body)?;
    check_uid(live.as_ref(), body)?;
    if live.is_none() {
        require_namespace(state, ns)?;
    }
    let mut config = body.clone();
    normalize_numbers(&mut config);
    if let Some(map) = config.as_object_mut() {
        map.remove("status");
    }
    let meta = metadata(&mut config);
    meta.retain(|key, _| !untracked(&["f:metadata".to_owned(), format!("f:{key}")]));
    meta.insert("name".into(), json!(name));
    meta.insert("namespace".into(), json!(ns));
    let (object, managed) = ssa::apply(
        live.as_ref().map(|l| (&l.object, &l.managed)),
        &config,
        manager,
        &kind.api_version(),
        force,
        &now_rfc3339(),
    )?;
    let (created, served) = state.commit(kind, ns, name, Stored { object, managed }, dry_run);
    Ok((if created { 201 } else { 200 }, served))
}

/// `DELETE .../{plural}/{name}`: 200 with a `Success` Status, 404 when
/// absent. `preconditions.resourceVersion` / `preconditions.uid` in the body
/// must match (409)
/// (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/delete-options/);
/// `options` must be valid (422, see [`gc::DeleteOptions::propagation`]),
/// checked after the lookup and before the preconditions, as the apiserver
/// does. The object's dependents are then handled by the garbage collector
/// per the propagation policy, see [`gc::delete`]. A dry run checks all of
/// this and deletes nothing.
pub fn delete(
    state: &mut State,
    kind: &Kind,
    ns: &str,
    name: &str,
    body: &Json,
    options: &gc::DeleteOptions,
    dry_run: bool,
) -> Result<(u16, Json), ApiError> {
    let key = State::key(kind, ns, name);
    let live = state
        .objects
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&kind.plural, &kind.group, name))?;
    let uid = live
        .object
        .pointer("/metadata/uid")
        .cloned()
        .unwrap_or(Json::Null);
    let policy = options.propagation(kind)?;
    if let Some(pre) = body.get("preconditions") {
        let live_rv = live.object.pointer("/metadata/resourceVersion");
        if let Some(rv) = pre.get("resourceVersion").filter(|v| !v.is_null())
            && Some(rv) != live_rv
        {
            return Err(ApiError::stale(&kind.plural, &kind.group, name));
        }
        if let Some(want) = pre.get("uid").filter(|v| !v.is_null())
            && *want != uid
        {
            return Err(ApiError::new(
                409,
                format!(
                    "Precondition failed: UID in precondition: {}, UID in object meta: {}",
                    want.as_str().unwrap_or_default(),
                    uid.as_str().unwrap_or_default()
                ),
            ));
        }
    }
    if !dry_run {
        gc::delete(state, &key, policy);
    }
    Ok((200, delete_success(&kind.plural, &kind.group, name, &uid)))
}
