//! Fault injection and the request log.

use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::time::Duration;

/// A fault served to the next `times` requests that match `method` (any
/// when `None`, compared case-insensitively) and whose path contains
/// `path_contains` (the path only, not the query).
///
/// - `delay`: the request waits this long first (a slow apiserver, for
///   client timeouts).
/// - `status` non-zero: the request then fails with a `Status` of that code
///   and the apiserver's `reason` for it
///   (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/);
///   with `retry_after`, a `Retry-After` header and
///   `details.retryAfterSeconds`, as API Priority and Fairness rejects an
///   overloaded request with 429 Too Many Requests
///   (https://kubernetes.io/docs/concepts/cluster-administration/flow-control/).
/// - `status == 0`: after the delay the request is served normally.
///
/// Faults are checked in the order injected; the first match is used up.
#[derive(Clone, Debug, Default)]
pub struct Fault {
    pub method: Option<String>,
    pub path_contains: String,
    pub status: u16,
    pub retry_after: Option<u64>,
    pub times: usize,
    pub delay: Option<Duration>,
    /// Answer `status` with this raw body instead of a Kubernetes Status
    /// (a proxy's error page, a truncated reply).
    pub raw_body: Option<String>,
}

impl Fault {
    /// The next matching request fails with `status`.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            times: 1,
            ..Self::default()
        }
    }

    /// The next matching request is served normally after `delay`.
    pub fn delay(delay: Duration) -> Self {
        Self {
            delay: Some(delay),
            times: 1,
            ..Self::default()
        }
    }

    /// Only requests with this HTTP method (`GET`, `PATCH`, ...).
    #[must_use]
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_owned());
        self
    }

    /// Only requests whose path contains `fragment`.
    #[must_use]
    pub fn path(mut self, fragment: &str) -> Self {
        fragment.clone_into(&mut self.path_contains);
        self
    }

    /// Affect this many requests instead of one.
    #[must_use]
    pub fn times(mut self, times: usize) -> Self {
        self.times = times;
        self
    }

    /// Send `Retry-After: secs` with the error.
    #[must_use]
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The next matching request is answered `200 OK` with `body` as is
    /// (not what the API server would send).
    pub fn raw_ok(body: &str) -> Self {
        Self {
            status: 200,
            times: 1,
            raw_body: Some(body.to_owned()),
            ..Self::default()
        }
    }

    /// Also delay an error response.
    #[must_use]
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        self.times > 0
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.contains(&self.path_contains)
    }
}

/// One request as the fake received it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`.
    pub method: String,
    /// The URL path, without the query.
    pub path: String,
    /// Decoded query parameters (a repeated key keeps its last value).
    pub query: BTreeMap<String, String>,
    pub content_type: Option<String>,
    /// The body as JSON when it parses, else as a JSON string of its text;
    /// `Null` when empty.
    pub body: Json,
    pub user_agent: Option<String>,
    /// When it arrived, before any injected delay.
    pub at: std::time::Instant,
    /// The status of the injected fault that answered it, if any
    /// (`Some(0)` for a delay-only fault).
    pub fault: Option<u16>,
}

impl RecordedRequest {
    /// `dryRun=All` in the query, or `dryRun: ["All"]` in a delete body
    /// (https://kubernetes.io/docs/reference/using-api/api-concepts/#dry-run).
    pub fn is_dry_run(&self) -> bool {
        self.query.get("dryRun").is_some_and(|v| v == "All")
            || super::server::body_dry_run(&self.body)
    }

    /// Any method but `GET`/`HEAD`.
    pub fn is_write(&self) -> bool {
        self.method != "GET" && self.method != "HEAD"
    }

    /// The `fieldManager` query parameter.
    pub fn field_manager(&self) -> Option<&str> {
        self.query.get("fieldManager").map(String::as_str)
    }
}
