//! Failed requests, answered with a `meta/v1` `Status` object.

use serde_json::{Value as Json, json};

/// An error answered as a `Status` object with `status: Failure`, the body the
/// kube-apiserver returns for every failed request:
/// https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/
/// and https://kubernetes.io/docs/reference/using-api/api-concepts/#response-status-kind
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status code, repeated as `code` in the body.
    pub code: u16,
    /// Machine-readable `reason` (`NotFound`, `Conflict`, ...).
    pub reason: String,
    /// Human-readable `message`.
    pub message: String,
    /// `details` (`name`, `group`, `kind`, `causes`, ...), `Null` to omit.
    pub details: Json,
    /// Seconds for the `Retry-After` header and `details.retryAfterSeconds`.
    pub retry_after: Option<u64>,
}

/// `plural.group`, or the bare plural for the core group, as the apiserver
/// names a resource in messages (`flinks.yelp.com "x" not found`).
pub fn qualified(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{plural}.{group}")
    }
}

fn object_details(plural: &str, group: &str, name: &str) -> Json {
    let mut details = json!({"name": name, "kind": plural});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    details
}

impl ApiError {
    /// An error with the `reason` the apiserver uses for `code`.
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason_for(code).to_owned(),
            message: message.into(),
            details: Json::Null,
            retry_after: None,
        }
    }

    /// Replaces the `reason`.
    #[must_use]
    pub fn reason(mut self, reason: &str) -> Self {
        reason.clone_into(&mut self.reason);
        self
    }

    /// Replaces the `details`.
    #[must_use]
    pub fn details(mut self, details: Json) -> Self {
        self.details = details;
        self
    }

    /// 404 for an object that does not exist.
    pub fn not_found(plural: &str, group: &str, name: &str) -> Self {
        Self::new(
            404,
            format!("{} \"{name}\" not found", qualified(plural, group)),
        )
        .details(object_details(plural, group, name))
    }

    /// 404 for a path that names no known resource.
    pub fn unknown_resource() -> Self {
        Self::new(404, "the server could not find the requested resource").details(json!({}))
    }

    /// 409 `AlreadyExists` for a create of an existing name.
    pub fn already_exists(plural: &str, group: &str, name: &str) -> Self {
        Self::new(
            409,
            format!("{} \"{name}\" already exists", qualified(plural, group)),
        )
        .reason("AlreadyExists")
        .details(object_details(plural, group, name))
    }

    /// 409 `Conflict` for a stale `metadata.resourceVersion` (optimistic
    /// concurrency, https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions).
    pub fn stale(plural: &str, group: &str, name: &str) -> Self {
        Self::new(
            409,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                qualified(plural, group)
            ),
        )
        .details(object_details(plural, group, name))
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    /// 422 `Invalid`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(422, message)
    }

    /// The `Status` body.
    pub fn to_status(&self) -> Json {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.reason.is_empty()
            && let Some(map) = status.as_object_mut()
        {
            map.remove("reason");
        }
        let mut details = self.details.clone();
        if let Some(secs) = self.retry_after {
            if !details.is_object() {
                details = json!({});
            }
            details["retryAfterSeconds"] = json!(secs);
        }
        if !details.is_null() {
            status["details"] = details;
        }
        status
    }
}

/// The `Status.reason` kube-apiserver pairs with an HTTP code
/// (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/).
pub fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

/// The `Status` answered for a successful delete
/// (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/).
pub fn delete_success(plural: &str, group: &str, name: &str, uid: &Json) -> Json {
    let mut details = object_details(plural, group, name);
    if !uid.is_null() {
        details["uid"] = uid.clone();
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}
