//! The HTTP side: recording, faults, routing, responses.

use super::faults::RecordedRequest;
use super::gc::DeleteOptions;
use super::ops::{self, APPLY, JSON_PATCH, MERGE, STRATEGIC};
use super::state::{Kind, State};
use super::status::ApiError;
use super::util::parse_query;
use super::{discovery, namespaces};
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

    let result = dispatch(&mut lock(&shared), &incoming);
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
