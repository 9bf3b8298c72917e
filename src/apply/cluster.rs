//! The Kubernetes edge: one LIST per kind, server-side apply, managedFields
//! takeover, namespace creation. Every request goes through [`KubeCluster::send`],
//! which retries 429 (honouring `Retry-After`), 5xx and transport errors with
//! exponential backoff and full jitter.

use super::ApplyError;
use super::gate::WriteGate;
use super::retry::RetryPolicy;
use crate::config::{ApplySettings, KindSettings};
use crate::plan::Policy;
use crate::plan::{ApplyRequest, LiveObject};
use http::{Method, Request, StatusCode};
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::Resource;
use serde_json::{Value as Json, json};
use std::time::Duration;

/// Selects PaaSTA's objects: both identity labels present.
pub const IDENTITY_SELECTOR: &str = "paasta.yelp.com/service,paasta.yelp.com/instance";

const PAGE_SIZE: u32 = 500;

/// A Kubernetes cluster reached through a kube client.
#[derive(Clone)]
pub struct KubeCluster {
    client: kube::Client,
    retry: RetryPolicy,
    /// Checked before every write attempt; `None`: always open.
    gate: Option<WriteGate>,
}

/// A response: status, `Retry-After`, and the JSON body (or `Null`).
struct Reply {
    status: StatusCode,
    body: Json,
}

fn api_resource(kind: &KindSettings) -> ApiResource {
    ApiResource {
        group: kind.group.clone(),
        version: kind.version.clone(),
        api_version: kind.api_version(),
        kind: kind.kind.clone(),
        plural: kind.plural.clone(),
    }
}

fn api_resource_of(request: &ApplyRequest) -> ApiResource {
    let (group, version) = request
        .api_version
        .split_once('/')
        .unwrap_or(("", request.api_version.as_str()));
    ApiResource {
        group: group.to_owned(),
        version: version.to_owned(),
        api_version: request.api_version.clone(),
        kind: request.kind.clone(),
        plural: request.plural.clone(),
    }
}

impl KubeCluster {
    /// Wraps a client; kube's own retry layer should be off (see `connect`).
    #[must_use]
    pub fn new(client: kube::Client, retry: RetryPolicy) -> Self {
        KubeCluster {
            client,
            retry,
            gate: None,
        }
    }

    /// This cluster with every write (any method but GET) passing `gate`
    /// first; reads are never gated.
    #[must_use]
    pub fn gated(&self, gate: WriteGate) -> Self {
        KubeCluster {
            gate: Some(gate),
            ..self.clone()
        }
    }

    /// Connects with a kubeconfig file and context, or in-cluster
    /// configuration, or the default kubeconfig; retries and timeouts come
    /// from the `apply` settings.
    pub async fn connect(
        kubeconfig: Option<&std::path::Path>,
        context: Option<&str>,
        settings: &ApplySettings,
    ) -> Result<Self, ApplyError> {
        let retry = RetryPolicy {
            attempts: settings.retry_attempts,
            ..RetryPolicy::default()
        };
        Self::connect_with(kubeconfig, context, retry, settings.request_timeout).await
    }

    /// [`KubeCluster::connect`] with an explicit retry policy and request timeout.
    pub async fn connect_with(
        kubeconfig: Option<&std::path::Path>,
        context: Option<&str>,
        retry: RetryPolicy,
        request_timeout: Duration,
    ) -> Result<Self, ApplyError> {
        // rustls needs one process-wide provider; a second install is a no-op error.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let options = kube::config::KubeConfigOptions {
            context: context.map(str::to_owned),
            ..Default::default()
        };
        let config_error = |message: String| ApplyError::Connect { message };
        let mut config = match kubeconfig {
            Some(path) => {
                let file = kube::config::Kubeconfig::read_from(path)
                    .map_err(|e| config_error(format!("{}: {e}", path.display())))?;
                kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| config_error(format!("{}: {e}", path.display())))?
            }
            None if context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| config_error(e.to_string()))?,
            None => kube::Config::infer()
                .await
                .map_err(|e| config_error(e.to_string()))?,
        };
        // Our own retry honours the cycle's deadline; kube's would retry for minutes.
        config.default_retry = false;
        config.read_timeout = Some(request_timeout);
        config.connect_timeout = Some(Duration::from_secs(10));
        let client = kube::Client::try_from(config).map_err(|e| config_error(e.to_string()))?;
        Ok(KubeCluster::new(client, retry))
    }

    /// Lists PaaSTA's objects of `kind` in its namespace, page by page.
    pub async fn list(&self, kind: &KindSettings) -> Result<Vec<LiveObject>, ApplyError> {
        let resource = api_resource(kind);
        let namespace = kind.namespace();
        let url = DynamicObject::url_path(&resource, Some(&namespace));
        let builder = kube::core::Request::new(url);
        let subject = format!("{}/{namespace}", kind.kind);
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params = ListParams::default()
                .labels(IDENTITY_SELECTOR)
                .limit(PAGE_SIZE);
            if let Some(token) = &token {
                params = params.continue_token(token);
            }
            let request = builder
                .list(&params)
                .map_err(|e| ApplyError::BuildRequest {
                    subject: subject.clone(),
                    message: e.to_string(),
                })?;
            let reply = self.send(request, &subject).await?;
            if reply.status == StatusCode::NOT_FOUND {
                // No such namespace (or kind) yet: nothing of ours exists.
                return Ok(objects);
            }
            let mut reply = expect_success(reply, &subject)?;
            let items = super::list_items(&mut reply.body, &subject)?;
            for mut object in items {
                // List items of custom resources carry apiVersion/kind; be safe.
                object["apiVersion"] = json!(kind.api_version());
                object["kind"] = json!(kind.kind);
                objects.push(LiveObject {
                    kind: kind.kind.clone(),
                    plural: kind.plural.clone(),
                    api_version: kind.api_version(),
                    object,
                });
            }
            token = reply
                .body
                .pointer("/metadata/continue")
                .and_then(Json::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                return Ok(objects);
            }
        }
    }

    /// Server-side applies `request.body` under `field_manager`, forcing
    /// ownership; `dry_run` sends `dryRun=All`.
    pub async fn apply(
        &self,
        request: &ApplyRequest,
        field_manager: &str,
        dry_run: bool,
    ) -> Result<Json, ApplyError> {
        let resource = api_resource_of(request);
        let url = DynamicObject::url_path(&resource, Some(&request.namespace));
        let mut params = PatchParams::apply(field_manager).force();
        if dry_run {
            params = params.dry_run();
        }
        let subject = subject_of(request);
        let http_request = kube::core::Request::new(url)
            .patch(&request.name, &params, &Patch::Apply(&request.body))
            .map_err(|e| ApplyError::BuildRequest {
                subject: subject.clone(),
                message: e.to_string(),
            })?;
        let reply = expect_success(self.send(http_request, &subject).await?, &subject)?;
        Ok(reply.body)
    }

    /// Sends a JSON request to `uri` (path and query) and returns the status
    /// and body; retries as every request does.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: Option<&Json>,
        subject: &str,
    ) -> Result<(StatusCode, Json), ApplyError> {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(content_type) = content_type {
            builder = builder.header(http::header::CONTENT_TYPE, content_type);
        }
        let bytes = body
            .map(|b| serde_json::to_vec(b).unwrap_or_default())
            .unwrap_or_default();
        let request = builder.body(bytes).map_err(|e| ApplyError::BuildRequest {
            subject: subject.to_owned(),
            message: e.to_string(),
        })?;
        let reply = self.send(request, subject).await?;
        Ok((reply.status, reply.body))
    }

    /// Whether the object of `request` exists (any labels).
    pub async fn exists(&self, request: &ApplyRequest) -> Result<bool, ApplyError> {
        let resource = api_resource_of(request);
        let url = DynamicObject::url_path(&resource, Some(&request.namespace));
        let subject = subject_of(request);
        let http_request = kube::core::Request::new(url)
            .get(&request.name, &kube::api::GetParams::default())
            .map_err(|e| ApplyError::BuildRequest {
                subject: subject.clone(),
                message: e.to_string(),
            })?;
        let reply = self.send(http_request, &subject).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        expect_success(reply, &subject)?;
        Ok(true)
    }

    /// Moves the `Update` ownership of the listed managers to our `Apply`
    /// entry, so that fields PaaSTA wrote and git later drops are removed by
    /// our next apply (Flux's field-manager migration). Guarded by a `test`
    /// of the resourceVersion so a concurrent write is never overwritten.
    pub async fn take_over(
        &self,
        request: &ApplyRequest,
        live: &Json,
        ownership: &Policy,
    ) -> Result<(), ApplyError> {
        let subject = subject_of(request);
        let Some(entries) = super::takeover::rewritten_managed_fields(live, ownership) else {
            return Ok(());
        };
        let resource_version = live
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Json::Null);
        let patch = json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
            {"op": "replace", "path": "/metadata/managedFields", "value": entries},
        ]);
        let resource = api_resource_of(request);
        let url = format!(
            "{}/{}?fieldManager={}",
            DynamicObject::url_path(&resource, Some(&request.namespace)),
            request.name,
            ownership.field_manager
        );
        let http_request = Request::builder()
            .method(Method::PATCH)
            .uri(url)
            .header(http::header::CONTENT_TYPE, "application/json-patch+json")
            .body(serde_json::to_vec(&patch).unwrap_or_default())
            .map_err(|e| ApplyError::BuildRequest {
                subject: subject.clone(),
                message: e.to_string(),
            })?;
        expect_success(self.send(http_request, &subject).await?, &subject)?;
        Ok(())
    }

    /// Creates `namespace` with PaaSTA's labels unless it exists.
    pub async fn ensure_namespace(&self, namespace: &str) -> Result<bool, ApplyError> {
        let subject = format!("Namespace/{namespace}");
        let get = Request::builder()
            .method(Method::GET)
            .uri(format!("/api/v1/namespaces/{namespace}"))
            .body(Vec::new())
            .map_err(|e| ApplyError::BuildRequest {
                subject: subject.clone(),
                message: e.to_string(),
            })?;
        let reply = self.send(get, &subject).await?;
        if reply.status.is_success() {
            return Ok(false);
        }
        if reply.status != StatusCode::NOT_FOUND {
            expect_success(reply, &subject)?;
            return Ok(false);
        }
        let body = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {
                    "name": namespace,
                    "paasta.yelp.com/managed": "true",
                }
            }
        });
        let create = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/namespaces")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default())
            .map_err(|e| ApplyError::BuildRequest {
                subject: subject.clone(),
                message: e.to_string(),
            })?;
        let reply = self.send(create, &subject).await?;
        if reply.status == StatusCode::CONFLICT {
            return Ok(false);
        }
        expect_success(reply, &subject)?;
        Ok(true)
    }

    /// Sends with retries: 429 (after `Retry-After` when given), 5xx and
    /// transport errors are retried up to the policy's attempts; any other
    /// status is returned to the caller.
    async fn send(&self, request: Request<Vec<u8>>, subject: &str) -> Result<Reply, ApplyError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if request.method() != Method::GET
                && let Some(gate) = &self.gate
                && let Err(refusal) = gate.check()
            {
                return Err(ApplyError::WriteRefused {
                    subject: subject.to_owned(),
                    reason: refusal.reason(),
                });
            }
            let copy = clone_request(&request);
            let outcome = self.client.send(copy.map(kube::client::Body::from)).await;
            let (retryable, server_delay, failure) = match outcome {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(http::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let bytes = response.into_body().collect_bytes().await.map_err(|e| {
                        ApplyError::Transport {
                            subject: subject.to_owned(),
                            message: e.to_string(),
                        }
                    })?;
                    let body: Json = serde_json::from_slice(&bytes).unwrap_or(Json::Null);
                    let retryable =
                        status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if !retryable {
                        return Ok(Reply { status, body });
                    }
                    (
                        true,
                        retry_after,
                        ApplyError::from_status(subject, status, &body),
                    )
                }
                Err(e) => (
                    true,
                    None,
                    ApplyError::Transport {
                        subject: subject.to_owned(),
                        message: e.to_string(),
                    },
                ),
            };
            if !retryable || attempt >= self.retry.attempts {
                return Err(failure);
            }
            let delay = self.retry.delay(attempt, server_delay);
            tracing::warn!(subject, attempt, delay_ms = delay.as_millis() as u64, error = %failure, "retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

fn subject_of(request: &ApplyRequest) -> String {
    format!("{}/{}/{}", request.kind, request.namespace, request.name)
}

fn clone_request(request: &Request<Vec<u8>>) -> Request<Vec<u8>> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy
}

fn expect_success(reply: Reply, subject: &str) -> Result<Reply, ApplyError> {
    if reply.status.is_success() {
        Ok(reply)
    } else {
        Err(ApplyError::from_status(subject, reply.status, &reply.body))
    }
}
