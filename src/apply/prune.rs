//! IO: executing the prune steps (see `plan::prune` for the protocol).
//!
//! The stop signal is written by a second field manager
//! (`<field_manager>-prune`) so that it never disturbs the ownership of the
//! resource's own fields, and so that a cancelled prune can drop exactly the
//! signal's fields by applying an empty configuration under that manager.

use super::{ApplyError, KubeCluster};
use crate::plan::prune::{
    ANNOTATION_ORPHANED_SINCE, ANNOTATION_REQUESTED_AT, ANNOTATION_REVISION, PruneAction,
    PruneEntry, PrunePlan, job_is_for,
};
use crate::plan::{ApplyRequest, LiveObject};
use crate::render::meta;
use crate::render::shutdown_job;
use http::{Method, StatusCode};
use serde_json::{Value as Json, json};
use std::time::SystemTime;

/// What happened to one prune step.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneResult {
    pub service: String,
    pub instance: String,
    pub subject: String,
    pub action: &'static str,
    /// Whether the step writes (signal, Job, delete), as opposed to waiting or holding.
    pub writes: bool,
    pub message: String,
    pub outcome: Result<(), ApplyError>,
}

pub use crate::plan::prune::prune_manager;

/// Executes every step of `plan` that writes; the others are reported.
pub async fn execute(
    plan: &PrunePlan,
    cluster: &KubeCluster,
    field_manager: &str,
    job_template: &Json,
    revision: &str,
    now: SystemTime,
) -> Vec<PruneResult> {
    let mut results = Vec::with_capacity(plan.entries.len());
    for entry in &plan.entries {
        let outcome = step(entry, cluster, field_manager, job_template, revision, now).await;
        if outcome.is_ok() {
            record_event(entry, cluster, revision).await;
        }
        match &outcome {
            Ok(()) if entry.action.writes() => {
                tracing::info!(subject = %entry.orphan.subject, action = entry.action.name(), "{}", entry.message);
            }
            Ok(()) => {}
            Err(error) => {
                tracing::warn!(subject = %entry.orphan.subject, %error, "prune step failed")
            }
        }
        results.push(PruneResult {
            service: entry.orphan.service.clone(),
            instance: entry.orphan.instance.clone(),
            subject: entry.orphan.subject.clone(),
            action: entry.action.name(),
            writes: entry.action.writes(),
            message: entry.message.clone(),
            outcome,
        });
    }
    results
}

/// `PruneRequested` after the stop signal, `Pruned` after the delete,
/// `PruneFailed` (a Warning) each time a failed or timed-out shutdown Job
/// is observed; nothing for the other steps.
async fn record_event(entry: &PruneEntry, cluster: &KubeCluster, revision: &str) {
    use super::events::{EventReason, Involved, is_commit, record};
    let live = &entry.orphan.object;
    let job = entry.job.as_ref().map(|(name, _)| name.as_str());
    let at = |revision: &str| {
        if is_commit(revision) {
            format!(" at revision {revision}")
        } else {
            String::new()
        }
    };
    // The revision that removed the instance, kept on the resource since the stop.
    let requested_at = live.annotation(ANNOTATION_REVISION).unwrap_or(revision);
    let (reason, message) = match entry.action {
        PruneAction::MarkOrphaned => (
            EventReason::PrunePending,
            format!(
                "Prune pending: the instance is gone from soa-configs{}; it is pruned after {} unless it comes back (prune.grace)",
                at(revision),
                humantime::format_duration(entry.grace)
            ),
        ),
        PruneAction::Signal { .. } => (
            EventReason::PruneRequested,
            format!(
                "Prune requested: the instance is gone from soa-configs{}; stopping with a savepoint through the shutdown Job {}",
                at(revision),
                shutdown_job::job_name(live.name())
            ),
        ),
        PruneAction::Delete => (
            EventReason::Pruned,
            format!(
                "Pruned: deleted after the shutdown Job completed (prune requested{})",
                at(requested_at)
            ),
        ),
        PruneAction::Failed => (
            EventReason::PruneFailed,
            match job {
                Some(job) => format!("Prune failed: shutdown Job {job}: {}", entry.message),
                None => format!("Prune failed: {}", entry.message),
            },
        ),
        // A message without the elapsed time: the same Event each cycle,
        // whose count grows, rather than a new one.
        PruneAction::TimedOut => (
            EventReason::PruneFailed,
            format!(
                "Prune failed: shutdown Job {} ran past prune.timeout; {} is kept",
                job.unwrap_or("(missing)"),
                live.subject()
            ),
        ),
        _ => return,
    };
    record(
        cluster,
        &Involved::of_live(live),
        reason,
        &message,
        Some(requested_at),
    )
    .await;
}

#[tracing::instrument(skip_all, fields(service = %entry.orphan.service, instance = %entry.orphan.instance))]
async fn step(
    entry: &PruneEntry,
    cluster: &KubeCluster,
    field_manager: &str,
    job_template: &Json,
    revision: &str,
    now: SystemTime,
) -> Result<(), ApplyError> {
    let live = &entry.orphan.object;
    match entry.action {
        PruneAction::MarkOrphaned => mark_orphaned(cluster, live, field_manager, now).await,
        PruneAction::Signal { create_job } => {
            let requested_at = humantime::format_rfc3339_seconds(now).to_string();
            signal(cluster, live, field_manager, revision, &requested_at).await?;
            if create_job {
                create_job_for(cluster, live, job_template, &requested_at).await?;
            }
            Ok(())
        }
        PruneAction::CreateJob | PruneAction::Retry => {
            let requested_at = live.annotation(ANNOTATION_REQUESTED_AT).unwrap_or_default();
            if let (PruneAction::Retry, Some((name, _))) = (&entry.action, &entry.job) {
                delete_job(cluster, live.namespace(), name).await?;
            }
            create_job_for(cluster, live, job_template, requested_at).await
        }
        PruneAction::Delete => delete_resource(cluster, live).await,
        PruneAction::Pending { .. }
        | PruneAction::Wait
        | PruneAction::Failed
        | PruneAction::TimedOut
        | PruneAction::Signalled
        | PruneAction::Disabled
        | PruneAction::MassPruneBlocked => Ok(()),
    }
}

fn resource_path(api_version: &str, plural: &str, namespace: &str, name: &str) -> String {
    format!("/apis/{api_version}/namespaces/{namespace}/{plural}/{name}")
}

/// Server-side applies the orphan mark under the prune manager: the grace
/// period counts from it, across restarts and one-shot runs.
async fn mark_orphaned(
    cluster: &KubeCluster,
    live: &LiveObject,
    field_manager: &str,
    now: SystemTime,
) -> Result<(), ApplyError> {
    let annotations = json!({
        ANNOTATION_ORPHANED_SINCE: humantime::format_rfc3339_seconds(now).to_string(),
    });
    apply_as_prune_manager(cluster, &Target::of(live), Some(annotations), field_manager).await
}

/// Server-side applies the stop annotations under the prune manager.
async fn signal(
    cluster: &KubeCluster,
    live: &LiveObject,
    field_manager: &str,
    revision: &str,
    requested_at: &str,
) -> Result<(), ApplyError> {
    let mut annotations = json!({
        meta::ANNOTATION_DESIRED_STATE: "stop",
        meta::ANNOTATION_LEGACY_DESIRED_STATE: "stop",
        ANNOTATION_REQUESTED_AT: requested_at,
        ANNOTATION_REVISION: revision,
    });
    // The apply replaces the prune manager's fields: keep the mark.
    if let Some(since) = live.annotation(ANNOTATION_ORPHANED_SINCE) {
        annotations[ANNOTATION_ORPHANED_SINCE] = json!(since);
    }
    apply_as_prune_manager(cluster, &Target::of(live), Some(annotations), field_manager).await
}

/// The object a prune-manager apply addresses.
struct Target<'a> {
    api_version: &'a str,
    kind: &'a str,
    plural: &'a str,
    namespace: &'a str,
    name: &'a str,
    /// The uid of the object planned for: the apply server-side fails
    /// instead of creating an object deleted meanwhile, or writing to one
    /// recreated under the same name.
    uid: Option<&'a str>,
}

impl<'a> Target<'a> {
    fn of(live: &'a LiveObject) -> Self {
        Target {
            api_version: &live.api_version,
            kind: &live.kind,
            plural: &live.plural,
            namespace: live.namespace(),
            name: live.name(),
            uid: live.object.pointer("/metadata/uid").and_then(Json::as_str),
        }
    }

    fn of_request(request: &'a ApplyRequest, uid: Option<&'a str>) -> Self {
        Target {
            api_version: &request.api_version,
            kind: &request.kind,
            plural: &request.plural,
            namespace: &request.namespace,
            name: &request.name,
            uid,
        }
    }
}

/// Server-side applies `annotations` (or nothing, which releases every field
/// the prune manager owns) under the prune manager.
async fn apply_as_prune_manager(
    cluster: &KubeCluster,
    target: &Target<'_>,
    annotations: Option<Json>,
    field_manager: &str,
) -> Result<(), ApplyError> {
    let mut metadata = json!({"name": target.name, "namespace": target.namespace});
    if let Some(uid) = target.uid {
        metadata["uid"] = json!(uid);
    }
    if let Some(annotations) = annotations {
        metadata["annotations"] = annotations;
    }
    let body = json!({"apiVersion": target.api_version, "kind": target.kind, "metadata": metadata});
    let uri = format!(
        "{}?fieldManager={}&force=true",
        resource_path(
            target.api_version,
            target.plural,
            target.namespace,
            target.name
        ),
        prune_manager(field_manager)
    );
    let subject = format!("{}/{}/{}", target.kind, target.namespace, target.name);
    let (status, reply) = cluster
        .call(
            Method::PATCH,
            &uri,
            Some("application/apply-patch+yaml"),
            Some(&body),
            &subject,
        )
        .await?;
    expect(status, &reply, &subject)
}

async fn create_job_for(
    cluster: &KubeCluster,
    live: &LiveObject,
    template: &Json,
    requested_at: &str,
) -> Result<(), ApplyError> {
    let mut job = shutdown_job::build(template, &live.object);
    // Ties the Job to this prune: a Job left over from an earlier one is
    // never taken for this one's savepoint.
    job["metadata"]["annotations"][ANNOTATION_REQUESTED_AT] = json!(requested_at);
    let name = job
        .pointer("/metadata/name")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_owned();
    let subject = format!("Job/{}/{name}", live.namespace());
    let uri = format!("/apis/batch/v1/namespaces/{}/jobs", live.namespace());
    let (status, reply) = cluster
        .call(
            Method::POST,
            &uri,
            Some("application/json"),
            Some(&job),
            &subject,
        )
        .await?;
    // A deterministic name makes the create idempotent: an existing Job of
    // this prune (an earlier cycle, a restarted reconciler) is adopted; one
    // left over from an earlier prune is deleted, and the next cycle
    // creates this prune's.
    if status == StatusCode::CONFLICT {
        let uri = format!("{uri}/{name}");
        let (status, existing) = cluster
            .call(Method::GET, &uri, None, None, &subject)
            .await?;
        expect(status, &existing, &subject)?;
        if job_is_for(&existing, live, requested_at) {
            return Ok(());
        }
        delete_job(cluster, live.namespace(), &name).await?;
        return Err(ApplyError::StaleJob { subject });
    }
    expect(status, &reply, &subject)
}

/// Deletes a shutdown Job and its pods; a missing Job is fine.
pub async fn delete_job(
    cluster: &KubeCluster,
    namespace: &str,
    name: &str,
) -> Result<(), ApplyError> {
    let uri = format!("/apis/batch/v1/namespaces/{namespace}/jobs/{name}");
    delete_background(cluster, &uri, &format!("Job/{namespace}/{name}"), None).await
}

async fn delete_resource(cluster: &KubeCluster, live: &LiveObject) -> Result<(), ApplyError> {
    let uri = resource_path(
        &live.api_version,
        &live.plural,
        live.namespace(),
        live.name(),
    );
    // Preconditions: delete exactly the object we planned for.
    let uid = live.object.pointer("/metadata/uid");
    delete_background(cluster, &uri, &live.subject(), uid).await
}

/// DELETE with `propagationPolicy: Background` (Jobs default to orphaning
/// their pods), optionally guarded by a uid precondition; a missing object
/// is fine.
async fn delete_background(
    cluster: &KubeCluster,
    uri: &str,
    subject: &str,
    uid: Option<&Json>,
) -> Result<(), ApplyError> {
    let mut body =
        json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"});
    if let Some(uid) = uid {
        body["preconditions"] = json!({"uid": uid});
    }
    let (status, reply) = cluster
        .call(
            Method::DELETE,
            uri,
            Some("application/json"),
            Some(&body),
            subject,
        )
        .await?;
    if status == StatusCode::NOT_FOUND {
        return Ok(());
    }
    expect(status, &reply, subject)
}

/// After a cancelled prune: drop the signal's fields (an empty apply under
/// the prune manager) and delete the shutdown Job.
/// The Job goes first: should its delete fail, the signal stays, and the
/// next cycle cancels again instead of forgetting the Job.
pub async fn cancel(
    cluster: &KubeCluster,
    request: &ApplyRequest,
    uid: Option<&str>,
    field_manager: &str,
) -> Result<(), ApplyError> {
    delete_job(
        cluster,
        &request.namespace,
        &shutdown_job::job_name(&request.name),
    )
    .await?;
    clear_orphan_mark(cluster, request, uid, field_manager).await
}

/// Drops every field the prune manager owns (the orphan mark, a stop
/// signal) with an empty apply under it.
pub async fn clear_orphan_mark(
    cluster: &KubeCluster,
    request: &ApplyRequest,
    uid: Option<&str>,
    field_manager: &str,
) -> Result<(), ApplyError> {
    apply_as_prune_manager(
        cluster,
        &Target::of_request(request, uid),
        None,
        field_manager,
    )
    .await
}

/// Drops the orphan mark of an object that is no orphan any more.
pub async fn release_mark(
    cluster: &KubeCluster,
    live: &LiveObject,
    field_manager: &str,
) -> Result<(), ApplyError> {
    apply_as_prune_manager(cluster, &Target::of(live), None, field_manager).await
}

/// Lists the shutdown Jobs in `namespace`, keyed by (namespace, name).
pub async fn list_jobs(cluster: &KubeCluster, namespace: &str) -> Result<Vec<Json>, ApplyError> {
    let subject = format!("Job/{namespace}");
    let uri = format!(
        "/apis/batch/v1/namespaces/{namespace}/jobs?labelSelector={}",
        shutdown_job::LABEL_SHUTDOWN_OF
    );
    let (status, mut reply) = cluster
        .call(Method::GET, &uri, None, None, &subject)
        .await?;
    if status == StatusCode::NOT_FOUND {
        return Ok(Vec::new());
    }
    expect(status, &reply, &subject)?;
    super::list_items(&mut reply, &subject)
}

fn expect(status: StatusCode, body: &Json, subject: &str) -> Result<(), ApplyError> {
    if status.is_success() {
        Ok(())
    } else {
        Err(ApplyError::from_status(subject, status, body))
    }
}
