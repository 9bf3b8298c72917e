//! The shutdown Job of the prune protocol, built from a template: a
//! deterministic name, PaaSTA's identity labels, an ownerReference to the
//! Flink resource (so deleting the resource collects the Job) and the
//! environment the stop script needs.

use crate::config::convert::to_value;
use crate::config::yaml::{Limits, load};
use md5::{Digest, Md5};
use serde_json::{Value as Json, json};

/// `deploy/prune/shutdown-job.yaml`, built in.
pub const DEFAULT_TEMPLATE: &str = include_str!("../../deploy/prune/shutdown-job.yaml");

/// Marks a Job as the shutdown Job of the named resource.
pub const LABEL_SHUTDOWN_OF: &str = "flink-gitops/shutdown-of";

/// Job names become the `job-name` label of its pods: 63 characters at most.
const MAX_JOB_NAME: usize = 63;

/// The built-in template as JSON.
pub fn default_template() -> Result<Json, String> {
    let node = load(DEFAULT_TEMPLATE, &Limits::default())
        .map_err(|e| format!("built-in shutdown Job template: {e}"))?
        .ok_or_else(|| "built-in shutdown Job template is empty".to_owned())?;
    to_value(&node, "")
        .map_err(|e| format!("built-in shutdown Job template: {e}"))?
        .to_json()
        .map_err(|e| format!("built-in shutdown Job template: {e}"))
}

/// `<resource>-shutdown`, shortened with a hash when it would exceed 63
/// characters, so the same resource always gets the same Job.
#[must_use]
pub fn job_name(resource_name: &str) -> String {
    let plain = format!("{resource_name}-shutdown");
    if plain.len() <= MAX_JOB_NAME {
        return plain;
    }
    let digest = Md5::digest(resource_name.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let keep = MAX_JOB_NAME - "-shutdown".len() - hash.len() - 1;
    let head: String = resource_name.chars().take(keep).collect();
    format!("{}-{hash}-shutdown", head.trim_end_matches(['-', '.']))
}

/// The Job for `resource` (a live Flink object) from `template`.
#[must_use]
pub fn build(template: &Json, resource: &Json) -> Json {
    let text = |pointer: &str| {
        resource
            .pointer(pointer)
            .and_then(Json::as_str)
            .unwrap_or("")
    };
    let name = text("/metadata/name");
    let namespace = text("/metadata/namespace");
    let label = |key: &str| {
        resource
            .pointer("/metadata/labels")
            .and_then(|labels| labels.get(key))
            .cloned()
            .unwrap_or(Json::Null)
    };
    let dashboard = resource
        .pointer("/metadata/annotations")
        .and_then(|a| {
            a.get("flink.yelp.com/dashboard_url")
                .or_else(|| a.get("paasta.yelp.com/dashboard_base_url"))
        })
        .and_then(Json::as_str)
        .unwrap_or("");
    let savepoint_path = resource
        .pointer("/spec/savepoint_path")
        .and_then(Json::as_str)
        .unwrap_or("");
    let mut job = template.clone();
    job["apiVersion"] = json!("batch/v1");
    job["kind"] = json!("Job");
    let mut labels = serde_json::Map::new();
    for key in [
        "paasta.yelp.com/service",
        "paasta.yelp.com/instance",
        "paasta.yelp.com/cluster",
    ] {
        let value = label(key);
        if !value.is_null() {
            labels.insert(key.to_owned(), value);
        }
    }
    labels.insert(LABEL_SHUTDOWN_OF.to_owned(), json!(name));
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        json!("flink-gitops"),
    );
    job["metadata"] = json!({
        "name": job_name(name),
        "namespace": namespace,
        "labels": labels,
        "ownerReferences": [{
            "apiVersion": resource.get("apiVersion").cloned().unwrap_or(Json::Null),
            "kind": resource.get("kind").cloned().unwrap_or(Json::Null),
            "name": name,
            "uid": resource.pointer("/metadata/uid").cloned().unwrap_or(Json::Null),
            // No blockOwnerDeletion: the resource is deleted with Background
            // propagation, which never waits for dependents, so it would
            // change nothing, yet it needs `update` on flinks/finalizers
            // where OwnerReferencesPermissionEnforcement runs (OpenShift).
        }],
    });
    let env = [
        ("FLINK_GITOPS_RESOURCE_NAME", name),
        ("FLINK_GITOPS_RESOURCE_NAMESPACE", namespace),
        ("FLINK_GITOPS_DASHBOARD_URL", dashboard),
        ("FLINK_GITOPS_SAVEPOINT_PATH", savepoint_path),
    ];
    if let Some(containers) = job
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Json::as_array_mut)
    {
        for container in containers {
            let mut list: Vec<Json> = container
                .get("env")
                .and_then(Json::as_array)
                .cloned()
                .unwrap_or_default();
            list.retain(|e| {
                !env.iter()
                    .any(|(k, _)| e.get("name").and_then(Json::as_str) == Some(k))
            });
            list.extend(env.iter().map(|(k, v)| json!({"name": k, "value": v})));
            container["env"] = Json::Array(list);
        }
    }
    job
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource() -> Json {
        json!({
            "apiVersion": "yelp.com/v1alpha1", "kind": "Flink",
            "metadata": {
                "name": "svc-main", "namespace": "paasta-flinks", "uid": "u-1",
                "labels": {"paasta.yelp.com/service": "svc", "paasta.yelp.com/instance": "main",
                           "paasta.yelp.com/cluster": "c1"},
                "annotations": {"paasta.yelp.com/dashboard_base_url": "http://base/",
                                "flink.yelp.com/dashboard_url": "http://dash/svc-main"}
            },
            "spec": {"savepoint_path": "s3://sp/"}
        })
    }

    #[test]
    fn the_built_in_template_parses_and_builds() {
        let template = default_template().expect("template");
        let job = build(&template, &resource());
        assert_eq!(job["metadata"]["name"], "svc-main-shutdown");
        assert_eq!(job["metadata"]["namespace"], "paasta-flinks");
        assert_eq!(job["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(job["metadata"]["labels"][LABEL_SHUTDOWN_OF], "svc-main");
        assert_eq!(
            job["metadata"]["labels"]["paasta.yelp.com/instance"],
            "main"
        );
        let env = &job["spec"]["template"]["spec"]["containers"][0]["env"];
        let value = |name: &str| {
            env.as_array()
                .and_then(|l| l.iter().find(|e| e["name"] == name))
                .map(|e| e["value"].clone())
        };
        assert_eq!(
            value("FLINK_GITOPS_DASHBOARD_URL"),
            Some(json!("http://dash/svc-main"))
        );
        assert_eq!(
            value("FLINK_GITOPS_SAVEPOINT_PATH"),
            Some(json!("s3://sp/"))
        );
    }

    /// The default Job needs nothing of the Kubernetes API, and asks
    /// nothing that needs more RBAC than `deploy/rbac.yaml` grants.
    #[test]
    fn the_default_job_mounts_no_token_and_blocks_no_owner_deletion() {
        let template = default_template().expect("template");
        let job = build(&template, &resource());
        assert_eq!(
            job.pointer("/spec/template/spec/automountServiceAccountToken"),
            Some(&Json::Bool(false))
        );
        let owner = job
            .pointer("/metadata/ownerReferences/0")
            .expect("an owner");
        assert!(owner.get("blockOwnerDeletion").is_none(), "{owner}");
    }

    #[test]
    fn long_names_are_shortened_deterministically() {
        let long = "a".repeat(80);
        let name = job_name(&long);
        assert!(name.len() <= 63, "{name}");
        assert!(name.ends_with("-shutdown"));
        assert_eq!(name, job_name(&long));
        assert_ne!(name, job_name(&"b".repeat(80)));
    }
}
