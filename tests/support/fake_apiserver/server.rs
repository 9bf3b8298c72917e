//! The HTTP side: recording, faults, routing, responses.

use super::faults::RecordedRequest;
use super::gc::DeleteOptions;
use super::ops::{self, APPLY, JSON_PATCH, MERGE, STRATEGIC};
use super::state::{Denial, Kind, State};
use super::status::ApiError;
use super::util::parse_query;
use super::{discovery, namespaces, rbac};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub type Shared = Arc<Mutex<State>>;

pub fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every path goes through [`handle`].
pub fn router(shared: Shared) -> axum::Router {
    axum::Router::new().fallback(move |request: Request| handle(shared.clone(), request))
}

fn respond(code: u16, body: &Json, retry_after: Option<u64>) -> Response {
    let mut response = (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn error_response(error: &ApiError) -> Response {
    respond(error.code, &error.to_status(), error.retry_after)
}

/// One request, parsed.
struct Incoming {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    content_type: Option<String>,
    body: Json,
    raw: Vec<u8>,
    user_agent: Option<String>,
    authorization: Option<String>,
}

async fn handle(shared: Shared, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let raw = axum::body::to_bytes(body, 64 << 20)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let header_text = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let body = if raw.is_empty() {
        Json::Null
    } else {
        serde_json::from_slice(&raw)
            .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&raw).into_owned()))
    };
    let incoming = Incoming {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parse_query(parts.uri.query().unwrap_or("")),
        content_type: header_text(header::CONTENT_TYPE),
        body,
        raw,
        user_agent: header_text(header::USER_AGENT),
        authorization: header_text(header::AUTHORIZATION),
    };

    let fault = {
        let mut state = lock(&shared);
        let fault = state
            .faults
            .iter_mut()
            .find(|f| f.matches(&incoming.method, &incoming.path))
            .map(|f| {
                f.times -= 1;
                f.clone()
            });
        state.faults.retain(|f| f.times > 0);
        state.requests.push(RecordedRequest {
            method: incoming.method.clone(),
            path: incoming.path.clone(),
            query: incoming.query.clone(),
            content_type: incoming.content_type.clone(),
            body: incoming.body.clone(),
            user_agent: incoming.user_agent.clone(),
            at: std::time::Instant::now(),
            fault: fault.as_ref().map(|f| f.status),
        });
        fault
    };
    if let Some(fault) = fault {
        if let Some(delay) = fault.delay {
            tokio::time::sleep(delay).await;
        }
        if let Some(body) = fault.raw_body {
            let code = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::OK);
            return (code, [(header::CONTENT_TYPE, "text/html")], body).into_response();
        }
        if fault.status != 0 {
            let message = if fault.status == 429 {
                "Too many requests, please try again later.".to_owned()
            } else {
                format!("fake apiserver: injected {} fault", fault.status)
            };
            let mut error = ApiError::new(fault.status, message);
            error.retry_after = fault.retry_after;
            return error_response(&error);
        }
    }

    let mut state = lock(&shared);
    // As kube-apiserver's filter chain: authentication, then authorization,
    // then the handler (with admission's own authorization checks inside).
    let result = authorize(&mut state, &incoming).and_then(|()| dispatch(&mut state, &incoming));
    drop(state);
    match result {
        Ok((code, body)) => respond(code, &body, None),
        Err(error) => error_response(&error),
    }
}

/// The manager of a non-apply write: `fieldManager`, else the User-Agent
/// up to its first `/`, else `unknown`
/// (https://kubernetes.io/docs/reference/using-api/server-side-apply/#managers:
/// "...defaults to the user agent...").
fn update_manager(incoming: &Incoming) -> String {
    if let Some(manager) = incoming.query.get("fieldManager").filter(|m| !m.is_empty()) {
        return manager.clone();
    }
    incoming
        .user_agent
        .as_deref()
        .and_then(|ua| ua.split('/').next())
        .filter(|prefix| !prefix.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

/// `dryRun=All`; any other value is 400
/// (https://kubernetes.io/docs/reference/using-api/api-concepts/#dry-run).
fn dry_run(incoming: &Incoming) -> Result<bool, ApiError> {
    match incoming.query.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "dryRun: Unsupported value: {other:?}: supported values: \"All\""
        ))),
    }
}

/// `dryRun: ["All"]` in a `DeleteOptions` body, where kube sends it
/// (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/delete-options/).
pub fn body_dry_run(body: &Json) -> bool {
    match body.get("dryRun") {
        Some(Json::Array(values)) => values.iter().any(|v| v == "All"),
        Some(Json::String(value)) => value == "All",
        _ => false,
    }
}

fn json_body(incoming: &Incoming) -> Result<Json, ApiError> {
    if incoming.raw.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    serde_json::from_slice(&incoming.raw).map_err(|e| {
        ApiError::bad_request(format!(
            "the fake apiserver accepts JSON bodies only (YAML is not supported): {e}"
        ))
    })
}

fn media_type(incoming: &Incoming) -> &str {
    incoming
        .content_type
        .as_deref()
        .and_then(|c| c.split(';').next())
        .map_or("", str::trim)
}

fn method_not_allowed() -> ApiError {
    ApiError::new(
        405,
        "the server does not allow this method on the requested resource",
    )
    .details(json!({}))
}

fn dispatch(state: &mut State, incoming: &Incoming) -> Result<(u16, Json), ApiError> {
    let segments: Vec<&str> = incoming.path.split('/').filter(|s| !s.is_empty()).collect();
    let get = incoming.method == "GET";
    if get
        && incoming
            .query
            .get("watch")
            .is_some_and(|w| w == "true" || w == "1")
    {
        return Err(ApiError::bad_request(
            "the fake apiserver does not implement watch",
        ));
    }
    match segments.as_slice() {
        ["version"] if get => Ok((200, discovery::version())),
        ["api"] if get => Ok((
            200,
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
        )),
        ["api", "v1"] if get => Ok((200, discovery::core_resources(state))),
        ["apis"] if get => Ok((200, discovery::groups(state))),
        ["apis", group, version] if get => {
            discovery::resources(state, group, version).map(|r| (200, r))
        }
        ["api", "v1", "namespaces"] => match incoming.method.as_str() {
            "GET" => Ok((200, namespaces::list(state))),
            "POST" => namespaces::create(state, &json_body(incoming)?, dry_run(incoming)?),
            _ => Err(method_not_allowed()),
        },
        ["api", "v1", "namespaces", ns] if get => namespaces::get(state, ns).map(|n| (200, n)),
        // Core kinds registered like custom resources (Events, Pods).
        ["api", "v1", "namespaces", ns, plural] => {
            let kind = known(state, "", "v1", plural)?;
            collection(state, &kind, ns, incoming)
        }
        ["api", "v1", "namespaces", ns, plural, name] => {
            let kind = known(state, "", "v1", plural)?;
            object(state, &kind, ns, name, incoming)
        }
        ["api", "v1", "namespaces", _] => Err(method_not_allowed()),
        ["apis", group, version, plural] => {
            let kind = known(state, group, version, plural)?;
            if !get {
                return Err(method_not_allowed());
            }
            ops::list(state, &kind, None, &incoming.query).map(|l| (200, l))
        }
        ["apis", group, version, "namespaces", ns, plural] => {
            let kind = known(state, group, version, plural)?;
            collection(state, &kind, ns, incoming)
        }
        ["apis", group, version, "namespaces", ns, plural, name] => {
            let kind = known(state, group, version, plural)?;
            object(state, &kind, ns, name, incoming)
        }
        [
            "apis",
            group,
            version,
            "namespaces",
            ns,
            plural,
            name,
            "status",
        ] => {
            let kind = known(state, group, version, plural)?;
            if !get {
                return Err(method_not_allowed());
            }
            ops::get(state, &kind, ns, name).map(|o| (200, o))
        }
        _ => Err(ApiError::unknown_resource()),
    }
}

fn known(state: &State, group: &str, version: &str, plural: &str) -> Result<Kind, ApiError> {
    state
        .kind(group, version, plural)
        .ok_or_else(ApiError::unknown_resource)
}

/// Requests on a namespaced collection: GET (list), POST (create).
fn collection(
    state: &mut State,
    kind: &Kind,
    ns: &str,
    incoming: &Incoming,
) -> Result<(u16, Json), ApiError> {
    match incoming.method.as_str() {
        "GET" => ops::list(state, kind, Some(ns), &incoming.query).map(|l| (200, l)),
        "POST" => ops::create(
            state,
            kind,
            ns,
            json_body(incoming)?,
            &update_manager(incoming),
            dry_run(incoming)?,
        ),
        _ => Err(method_not_allowed()),
    }
}

/// Requests on one object: GET, PUT, PATCH (by content type), DELETE.
fn object(
    state: &mut State,
    kind: &Kind,
    ns: &str,
    name: &str,
    incoming: &Incoming,
) -> Result<(u16, Json), ApiError> {
    match incoming.method.as_str() {
        "GET" => ops::get(state, kind, ns, name).map(|o| (200, o)),
        "PUT" => ops::replace(
            state,
            kind,
            ns,
            name,
            json_body(incoming)?,
            &update_manager(incoming),
            dry_run(incoming)?,
        ),
        "DELETE" => {
            let dry = dry_run(incoming)? || body_dry_run(&incoming.body);
            let options = DeleteOptions::parse(&incoming.body, &incoming.query)?;
            ops::delete(state, kind, ns, name, &incoming.body, &options, dry)
        }
        "PATCH" => {
            let media = media_type(incoming);
            let force = incoming.query.get("force");
            let dry = dry_run(incoming)?;
            match media {
                APPLY => {
                    let manager = incoming
                        .query
                        .get("fieldManager")
                        .filter(|m| !m.is_empty())
                        .ok_or_else(|| {
                            ApiError::invalid(
                                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                            )
                            .details(json!({
                                "group": "meta.k8s.io",
                                "kind": "PatchOptions",
                                "causes": [{"reason": "FieldValueRequired",
                                            "message": "Required value: is required for apply patch",
                                            "field": "fieldManager"}],
                            }))
                        })?;
                    let force = match force.map(String::as_str) {
                        None | Some("" | "false") => false,
                        Some("true") => true,
                        Some(other) => {
                            return Err(ApiError::bad_request(format!(
                                "invalid force value {other:?}"
                            )));
                        }
                    };
                    ops::apply(
                        state,
                        kind,
                        ns,
                        name,
                        &json_body(incoming)?,
                        manager,
                        force,
                        dry,
                    )
                }
                MERGE | JSON_PATCH => {
                    if force.is_some() {
                        return Err(ApiError::invalid(
                            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch",
                        ));
                    }
                    ops::patch(
                        state,
                        kind,
                        ns,
                        name,
                        media,
                        &json_body(incoming)?,
                        &update_manager(incoming),
                        dry,
                    )
                }
                STRATEGIC => Err(ops::unsupported_patch()),
                _ => Err(ops::unsupported_patch()),
            }
        }
        _ => Err(method_not_allowed()),
    }
}

/// Authenticates the bearer token and authorizes the request with RBAC (see
/// [`rbac`]), plus the two checks kube-apiserver makes after the request's
/// own verb:
///
/// - a server-side apply that creates the object is also authorized as a
///   `create` (the apply handler's create validation);
/// - a create (by POST or apply) whose `ownerReferences` set
///   `blockOwnerDeletion: true` needs `update` on the owner's `finalizers`
///   subresource (the OwnerReferencesPermissionEnforcement admission
///   plugin, https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/#ownerreferencespermissionenforcement).
///
/// A refusal is recorded in `state.denied`.
fn authorize(state: &mut State, incoming: &Incoming) -> Result<(), ApiError> {
    let attributes =
        rbac::Attributes::of_request(&incoming.method, &incoming.path, &incoming.query);
    let mut user_name = String::new();
    let result = state
        .auth
        .authenticate(incoming.authorization.as_deref())
        .and_then(|user| {
            user_name.clone_from(&user.name);
            state.auth.authorize(&user, &attributes)?;
            let creates = match incoming.method.as_str() {
                "POST" => true,
                "PATCH" if media_type(incoming) == APPLY => {
                    let creates = creates_by_apply(state, &attributes);
                    if creates {
                        state
                            .auth
                            .authorize(&user, &attributes.with_verb("create"))?;
                    }
                    creates
                }
                _ => false,
            };
            if creates && attributes.resource_request {
                owner_references_permission(state, &user, &attributes, &incoming.body)?;
            }
            Ok(())
        });
    if let Err(error) = &result {
        state.denied.push(Denial {
            method: incoming.method.clone(),
            path: incoming.path.clone(),
            user: user_name,
            code: error.code,
            message: error.message.clone(),
        });
    }
    result
}

/// Whether an apply to this path finds no object (of a registered kind).
fn creates_by_apply(state: &State, attributes: &rbac::Attributes) -> bool {
    let (Some(ns), Some(name)) = (&attributes.namespace, &attributes.name) else {
        return false;
    };
    if attributes.subresource.is_some() {
        return false;
    }
    state
        .kinds
        .iter()
        .find(|k| k.group == attributes.api_group && k.plural == attributes.resource)
        .is_some_and(|kind| ops::get(state, kind, ns, name).is_err())
}

/// OwnerReferencesPermissionEnforcement on a create: every owner reference
/// with `blockOwnerDeletion: true` needs `update` on
/// `<owner plural>/finalizers` of the owner, in the object's namespace.
fn owner_references_permission(
    state: &State,
    user: &rbac::User,
    attributes: &rbac::Attributes,
    body: &Json,
) -> Result<(), ApiError> {
    let references = body
        .pointer("/metadata/ownerReferences")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    for reference in references
        .iter()
        .filter(|r| r.get("blockOwnerDeletion") == Some(&Json::Bool(true)))
    {
        let text = |key: &str| reference.get(key).and_then(Json::as_str).unwrap_or("");
        let Some(owner) = state
            .kinds
            .iter()
            .find(|k| k.api_version() == text("apiVersion") && k.kind == text("kind"))
        else {
            continue;
        };
        let finalizers = rbac::Attributes {
            verb: "update".to_owned(),
            api_group: owner.group.clone(),
            resource: owner.plural.clone(),
            subresource: Some("finalizers".to_owned()),
            namespace: attributes.namespace.clone(),
            name: Some(text("name").to_owned()),
            resource_request: true,
            path: attributes.path.clone(),
        };
        if !state.auth.rbac.allows(user, &finalizers) {
            // admission.NewForbidden names the object being created.
            let mut object = attributes.clone();
            if object.name.is_none() {
                object.name = body
                    .pointer("/metadata/name")
                    .and_then(Json::as_str)
                    .map(str::to_owned);
            }
            return Err(object.forbidden(&format!(
                "cannot set blockOwnerDeletion if an ownerReference refers to a resource \
                 you can't set finalizers on: {}",
                finalizers.denial(user)
            )));
        }
    }
    Ok(())
}
