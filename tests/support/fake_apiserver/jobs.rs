//! `batch/v1` Jobs: the status the Job controller writes, and owner
//! references.
//!
//! The fake stores Jobs like custom resources (see [`super::ops`]): no
//! defaulting or validation of `spec` (the real apiserver defaults
//! `parallelism`, `completions`, `backoffLimit`, ... and generates
//! `spec.selector`), and no controller: nothing runs, and `status` changes
//! only through [`super::FakeApiServer::set_job_status`].

use super::util::now_rfc3339;
use serde_json::{Value as Json, json};

fn condition(kind: &str, reason: &str, message: &str, now: &str) -> Json {
    json!({
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "message": message,
        "reason": reason,
        "status": "True",
        "type": kind,
    })
}

/// The `status` of a Job whose one Pod is running and ready: `active: 1`,
/// `ready: 1`, `startTime`, no conditions
/// (https://kubernetes.io/docs/concepts/workloads/controllers/job/#running-an-example-job,
/// fields per https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/job-v1/#JobStatus).
pub fn job_running() -> Json {
    json!({
        "active": 1,
        "ready": 1,
        "startTime": now_rfc3339(),
        "terminating": 0,
        "uncountedTerminatedPods": {},
    })
}

/// The `status` of a Job that succeeded with its one completion: the
/// `SuccessCriteriaMet` and then the terminal `Complete` condition (reason
/// `CompletionsReached`), `succeeded: 1`, `completionTime`, no `active`
/// (https://kubernetes.io/docs/concepts/workloads/controllers/job/#terminal-job-conditions
/// and https://kubernetes.io/docs/concepts/workloads/controllers/job/#job-termination-and-cleanup).
pub fn job_complete() -> Json {
    let now = now_rfc3339();
    let message = "Reached expected number of succeeded pods";
    json!({
        "completionTime": now,
        "conditions": [
            condition("SuccessCriteriaMet", "CompletionsReached", message, &now),
            condition("Complete", "CompletionsReached", message, &now),
        ],
        "ready": 0,
        "startTime": now,
        "succeeded": 1,
        "terminating": 0,
        "uncountedTerminatedPods": {},
    })
}

/// The `status` of a Job that failed: the `FailureTarget` and then the
/// terminal `Failed` condition (reason `BackoffLimitExceeded`), `failed: 1`
/// (one failed Pod, as with `backoffLimit: 0`), no `completionTime`, no
/// `active`
/// (https://kubernetes.io/docs/concepts/workloads/controllers/job/#terminal-job-conditions
/// and https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-backoff-failure-policy).
pub fn job_failed() -> Json {
    let now = now_rfc3339();
    let message = "Job has reached the specified backoff limit";
    json!({
        "conditions": [
            condition("FailureTarget", "BackoffLimitExceeded", message, &now),
            condition("Failed", "BackoffLimitExceeded", message, &now),
        ],
        "failed": 1,
        "ready": 0,
        "startTime": now,
        "terminating": 0,
        "uncountedTerminatedPods": {},
    })
}

/// The `metadata.ownerReferences` entry a controller puts on an object it
/// owns: `apiVersion`, `kind`, `name` and `uid` of `owner` (an object as
/// served), `controller: true`, `blockOwnerDeletion: true`
/// (https://kubernetes.io/docs/concepts/overview/working-with-objects/owners-dependents/).
/// Panics when `owner` lacks one of those fields.
pub fn owner_reference(owner: &Json) -> Json {
    let text = |pointer: &str| {
        owner
            .pointer(pointer)
            .and_then(Json::as_str)
            .unwrap_or_else(|| panic!("owner_reference: the owner has no {pointer}"))
    };
    json!({
        "apiVersion": text("/apiVersion"),
        "kind": text("/kind"),
        "name": text("/metadata/name"),
        "uid": text("/metadata/uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}
