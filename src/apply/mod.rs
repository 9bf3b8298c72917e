//! IO: executing a [`Plan`] against a cluster with server-side apply.
//!
//! One PATCH per instance that needs a write and nothing else: unchanged
//! instances cost nothing. Writes run with bounded concurrency; a failure
//! stays with its instance and never stops the others.

mod cluster;
pub mod events;
pub mod gate;
pub mod prune;
mod retry;
pub mod takeover;

pub use cluster::{IDENTITY_SELECTOR, KubeCluster};
pub use retry::RetryPolicy;

use crate::plan::inventory::{self, Inventory};
use crate::plan::{Action, Plan, PlanEntry, Policy};
use futures::StreamExt;
use http::StatusCode;
use serde_json::Value as Json;
use std::collections::BTreeSet;

/// How to execute a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    pub policy: Policy,
    /// Send `dryRun=All`: the API server validates, nothing is stored.
    pub dry_run: bool,
    /// Writes in flight at once.
    pub concurrency: usize,
    /// Create a missing namespace (with PaaSTA's labels) before creating in it.
    pub create_namespaces: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            policy: Policy::default(),
            dry_run: false,
            concurrency: 8,
            create_namespaces: false,
        }
    }
}

/// Why a request to the cluster failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("failed to connect to the Kubernetes API: {message}")]
    Connect { message: String },
    #[error("{subject}: failed to build the request: {message}")]
    BuildRequest { subject: String, message: String },
    #[error("{subject}: failed to reach the Kubernetes API: {message}")]
    Transport { subject: String, message: String },
    #[error(
        "{subject} exists without PaaSTA's service/instance labels; it is not ours and is left untouched"
    )]
    NotOurs { subject: String },
    #[error(
        "{subject}: a shutdown Job left over from an earlier prune was in the way and is deleted; this prune's Job is created next cycle"
    )]
    StaleJob { subject: String },
    #[error("{subject}: not written: {reason}")]
    WriteRefused {
        subject: String,
        reason: &'static str,
    },
    #[error("{subject}: the API server's reply cannot be read: {message}")]
    InvalidReply { subject: String, message: String },
    #[error("{subject}: the API server answered {code} {reason}: {message}")]
    Api {
        subject: String,
        code: u16,
        reason: String,
        message: String,
    },
}

impl ApplyError {
    /// A Kubernetes `Status` answer (or a bare status code) as an error.
    #[must_use]
    pub fn from_status(subject: &str, status: StatusCode, body: &Json) -> Self {
        let text = |key: &str| body.get(key).and_then(Json::as_str).map(str::to_owned);
        ApplyError::Api {
            subject: subject.to_owned(),
            code: status.as_u16(),
            reason: text("reason")
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned()),
            message: text("message").unwrap_or_default(),
        }
    }

    /// A bounded label for metrics and reports.
    #[must_use]
    pub fn category(&self) -> &'static str {
        match self {
            ApplyError::Connect { .. } => "connect",
            ApplyError::BuildRequest { .. } => "request",
            ApplyError::NotOurs { .. } => "not_ours",
            ApplyError::Transport { .. } => "transport",
            ApplyError::InvalidReply { .. } => "invalid_reply",
            ApplyError::WriteRefused { .. } => "write_refused",
            ApplyError::StaleJob { .. } => "stale_job",
            ApplyError::Api { code, .. } if *code == 409 => "conflict",
            ApplyError::Api { code, .. } if *code == 422 => "invalid",
            ApplyError::Api { code, .. } if *code == 429 => "throttled",
            ApplyError::Api { code, .. } if *code >= 500 => "server",
            ApplyError::Api { .. } => "api",
        }
    }
}

/// What happened to one planned write.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteResult {
    pub service: String,
    pub instance: String,
    pub subject: String,
    /// `create` or `update`.
    pub action: &'static str,
    pub outcome: Result<(), ApplyError>,
}

/// The result of executing a plan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApplyReport {
    pub writes: Vec<WriteResult>,
    pub namespaces_created: Vec<String>,
}

impl ApplyReport {
    /// Writes that failed.
    pub fn failures(&self) -> impl Iterator<Item = &WriteResult> {
        self.writes.iter().filter(|w| w.outcome.is_err())
    }
}

/// One LIST per CRD and namespace of the configured kinds: every object
/// carrying PaaSTA's labels, each once, sorted into managed and unmanaged.
pub async fn read_live(
    cluster: &KubeCluster,
    settings: &crate::config::Settings,
) -> Result<Inventory, ApplyError> {
    let mut live = Vec::new();
    for kind in inventory::list_targets(&settings.kinds) {
        live.extend(cluster.list(kind).await?);
    }
    Ok(Inventory::of(&settings.kinds, live))
}

/// The `items` of a successful LIST reply. Anything else is an error: an
/// unreadable reply is never an empty cluster, whose objects would all look
/// removed.
pub(crate) fn list_items(reply: &mut Json, subject: &str) -> Result<Vec<Json>, ApplyError> {
    let invalid = |message: &str| ApplyError::InvalidReply {
        subject: subject.to_owned(),
        message: message.to_owned(),
    };
    match reply.get_mut("items").map(Json::take) {
        Some(Json::Array(items)) => Ok(items),
        Some(_) => Err(invalid("`items` is not a list")),
        None => Err(invalid(
            "a list reply without `items` (not the JSON of a list)",
        )),
    }
}

/// The shutdown Jobs of prunes in progress, keyed by (namespace, name).
/// Nothing is read when no orphan is being pruned, so a cluster in sync
/// costs one LIST per kind and nothing more.
pub async fn read_shutdown_jobs(
    cluster: &KubeCluster,
    orphans: &[crate::plan::Orphan],
) -> Result<std::collections::BTreeMap<(String, String), Json>, ApplyError> {
    let namespaces: BTreeSet<&str> = orphans
        .iter()
        .filter(|o| {
            o.object
                .annotation(crate::plan::prune::ANNOTATION_REQUESTED_AT)
                .is_some()
        })
        .map(|o| o.object.namespace())
        .collect();
    let mut jobs = std::collections::BTreeMap::new();
    for namespace in namespaces {
        for job in prune::list_jobs(cluster, namespace).await? {
            let name = job
                .pointer("/metadata/name")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_owned();
            jobs.insert((namespace.to_owned(), name), job);
        }
    }
    Ok(jobs)
}

/// Executes every write of `plan`.
pub async fn execute(plan: &Plan, cluster: &KubeCluster, options: &ApplyOptions) -> ApplyReport {
    execute_at(plan, cluster, options, None).await
}

/// [`execute`], naming the source `revision` in the Events it records.
pub async fn execute_at(
    plan: &Plan,
    cluster: &KubeCluster,
    options: &ApplyOptions,
    revision: Option<&str>,
) -> ApplyReport {
    let mut report = ApplyReport::default();
    let mut broken_namespaces: Vec<(String, ApplyError)> = Vec::new();
    if options.create_namespaces && !options.dry_run {
        let namespaces: BTreeSet<&str> = plan
            .writes()
            .filter(|e| e.action == Action::Create)
            .filter_map(|e| e.apply.as_ref().map(|a| a.namespace.as_str()))
            .collect();
        for namespace in namespaces {
            match cluster.ensure_namespace(namespace).await {
                Ok(true) => report.namespaces_created.push(namespace.to_owned()),
                Ok(false) => {}
                Err(e) => broken_namespaces.push((namespace.to_owned(), e)),
            }
        }
    }
    let writes = futures::stream::iter(plan.writes().map(|entry| {
        let broken = entry.apply.as_ref().and_then(|a| {
            broken_namespaces
                .iter()
                .find(|(ns, _)| *ns == a.namespace)
                .map(|(_, e)| e.clone())
        });
        async move {
            let outcome = match broken {
                Some(error) => Err(error),
                None => write(entry, cluster, options, revision).await,
            };
            WriteResult {
                service: entry.service.clone(),
                instance: entry.instance.clone(),
                subject: entry.subject.clone(),
                action: entry.action.name(),
                outcome,
            }
        }
    }))
    .buffer_unordered(options.concurrency.max(1))
    .collect::<Vec<_>>()
    .await;
    report.writes = writes;
    if !options.dry_run {
        for object in &plan.release_marks {
            let outcome = prune::release_mark(cluster, object, &options.policy.field_manager).await;
            if outcome.is_ok() {
                tracing::info!(subject = %object.subject(), "pending prune dropped: the object is wanted again");
            }
            let (service, instance) = object.identity().unwrap_or_default();
            report.writes.push(WriteResult {
                service: service.to_owned(),
                instance: instance.to_owned(),
                subject: object.subject(),
                action: "release-mark",
                outcome,
            });
        }
    }
    report.writes.sort_by(|a, b| a.subject.cmp(&b.subject));
    report
}

#[tracing::instrument(skip_all, fields(service = %entry.service, instance = %entry.instance))]
async fn write(
    entry: &PlanEntry,
    cluster: &KubeCluster,
    options: &ApplyOptions,
    revision: Option<&str>,
) -> Result<(), ApplyError> {
    let Some(request) = &entry.apply else {
        return Ok(());
    };
    let live_uid = entry
        .live
        .as_ref()
        .and_then(|live| live.pointer("/metadata/uid"))
        .and_then(Json::as_str);
    if request.only_clears_orphan_mark(&entry.action) {
        if !options.dry_run {
            prune::clear_orphan_mark(cluster, request, live_uid, &options.policy.field_manager)
                .await?;
            tracing::info!(subject = %entry.subject, "pending prune dropped: the instance is back in git");
        }
        return Ok(());
    }
    // We list by PaaSTA's labels, so an object of someone else's under our
    // name is invisible to the plan; a forced apply would adopt it.
    if entry.action == Action::Create && cluster.exists(request).await? {
        return Err(ApplyError::NotOurs {
            subject: entry.subject.clone(),
        });
    }
    if !options.dry_run
        && !request.takeover_from.is_empty()
        && let Some(live) = &entry.live
    {
        cluster.take_over(request, live, &options.policy).await?;
        tracing::info!(subject = %entry.subject, from = ?request.takeover_from, "took over field ownership");
    }
    let applied = cluster
        .apply(request, &options.policy.field_manager, options.dry_run)
        .await?;
    let applied_uid = applied.pointer("/metadata/uid").and_then(Json::as_str);
    if request.cancel_prune && !options.dry_run {
        prune::cancel(cluster, request, applied_uid, &options.policy.field_manager).await?;
        tracing::info!(subject = %entry.subject, "prune cancelled: the instance is back in git");
    } else if request.clear_orphan_mark && !options.dry_run {
        prune::clear_orphan_mark(cluster, request, applied_uid, &options.policy.field_manager)
            .await?;
        tracing::info!(subject = %entry.subject, "pending prune dropped: the instance is back in git");
    }
    tracing::info!(subject = %entry.subject, action = entry.action.name(), dry_run = options.dry_run, "applied");
    if !options.dry_run {
        record_apply_event(entry, request, &applied, cluster, revision).await;
    }
    Ok(())
}

/// `Created`, `Updated` or `DriftCorrected` on the object just written.
async fn record_apply_event(
    entry: &PlanEntry,
    request: &crate::plan::ApplyRequest,
    applied: &Json,
    cluster: &KubeCluster,
    revision: Option<&str>,
) {
    let (reason, reasons): (events::EventReason, &[crate::plan::Reason]) = match &entry.action {
        Action::Create => (events::EventReason::Created, &[]),
        Action::Update(reasons) => (events::EventReason::of_update(reasons), reasons),
        _ => return,
    };
    let involved = events::Involved {
        api_version: request.api_version.clone(),
        kind: request.kind.clone(),
        namespace: request.namespace.clone(),
        name: request.name.clone(),
        uid: events::uid_of(applied),
    };
    let message = events::apply_message(reason, reasons, revision, applied);
    events::record(cluster, &involved, reason, &message, revision).await;
}
