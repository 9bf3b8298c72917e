//! What the fault-matrix and prune-safety tests observe on the fake API
//! server (writes, prune steps, objects) and how they start a daemon.

use super::daemon_process::{Daemon, NO_LEADER_ELECTION, PATIENCE, flink as object, wait_for};
use super::fake_apiserver::{FLINK_NAMESPACE, FLINK_PLURAL, FakeApiServer, JOB_PLURAL};
use super::git_repo::GitRepo as Repo;
use super::scenario::WITHOUT_CANARY;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

pub const PRUNE_MANAGER: &str = "flink-gitops-prune";
pub const REQUESTED_AT: &str = "flink-gitops/prune-requested-at";
pub const ORPHANED_SINCE: &str = "flink-gitops/orphaned-since";

/// Prune-manager PATCHes that write only the orphan mark, by path.
pub fn orphan_marks(server: &FakeApiServer) -> Vec<String> {
    server
        .writes()
        .iter()
        .filter(|r| r.method == "PATCH" && r.field_manager() == Some(PRUNE_MANAGER))
        .filter(|r| {
            r.body["metadata"]["annotations"]
                .get(ORPHANED_SINCE)
                .is_some()
                && r.body["metadata"]["annotations"]
                    .get(REQUESTED_AT)
                    .is_none()
        })
        .map(|r| r.path.clone())
        .collect()
}

/// Prune-manager PATCHes that write the stop signal (not the orphan mark),
/// by path.
pub fn stop_signals(server: &FakeApiServer) -> Vec<String> {
    server
        .writes()
        .iter()
        .filter(|r| r.method == "PATCH" && r.field_manager() == Some(PRUNE_MANAGER))
        .filter(|r| {
            r.body["metadata"]["annotations"]
                .get(REQUESTED_AT)
                .is_some()
        })
        .map(|r| r.path.clone())
        .collect()
}

pub fn names(server: &FakeApiServer) -> Vec<String> {
    let mut names: Vec<String> = server
        .objects(FLINK_PLURAL, FLINK_NAMESPACE)
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

pub fn resource_version(server: &FakeApiServer, name: &str) -> String {
    object(server, name).unwrap_or_else(|| panic!("{name} is gone"))["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

pub fn annotations(server: &FakeApiServer, name: &str) -> Json {
    object(server, name).unwrap_or_else(|| panic!("{name} is gone"))["metadata"]["annotations"]
        .clone()
}

/// Every write (not a dry run, not an Event) whose path names `name`.
pub fn writes_to(server: &FakeApiServer, name: &str) -> Vec<String> {
    server
        .writes()
        .into_iter()
        .filter(|r| r.path.contains(name))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

pub fn deletes(server: &FakeApiServer) -> Vec<String> {
    server
        .writes()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path)
        .collect()
}

pub fn job_creates(server: &FakeApiServer) -> usize {
    server
        .writes()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/jobs"))
        .count()
}

pub fn signals(server: &FakeApiServer) -> usize {
    server
        .writes()
        .iter()
        .filter(|r| r.method == "PATCH" && r.field_manager() == Some(PRUNE_MANAGER))
        .count()
}

pub fn jobs(server: &FakeApiServer) -> Vec<String> {
    server
        .objects(JOB_PLURAL, FLINK_NAMESPACE)
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// PATCH attempts per object name, dry runs excluded, faulted ones included.
pub fn patch_attempts(server: &FakeApiServer, name: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && !r.is_dry_run())
        .filter(|r| r.path.rsplit('/').next() == Some(name))
        .count()
}

/// The daemon (leader election off: it always writes), ready.
pub fn start(server: &FakeApiServer, source: &str, extra: &str) -> Daemon {
    let daemon = Daemon::start(server, source, NO_LEADER_ELECTION, extra);
    daemon.wait_ready();
    daemon
}

/// [`start`] on [`Repo::new`]'s soa-configs, once their three objects are
/// applied.
pub fn start_applied(server: &FakeApiServer, source: &str, extra: &str) -> Daemon {
    let daemon = start(server, source, extra);
    wait_for("the first apply", PATIENCE, || names(server).len() == 3);
    daemon
}

/// A live object of service `alpha`, instance `old`, on cluster c1, as an
/// earlier revision would have left it: an orphan for any plan.
pub fn insert_orphan(server: &FakeApiServer) {
    server.insert_as(
        "flink-gitops",
        json!({"apiVersion": "yelp.com/v1alpha1", "kind": "Flink",
               "metadata": {"name": "alpha-old", "namespace": FLINK_NAMESPACE,
                            "labels": {"paasta.yelp.com/service": "alpha",
                                       "paasta.yelp.com/instance": "old",
                                       "paasta.yelp.com/cluster": "c1",
                                       "paasta.yelp.com/config_sha": "configdeadbeef"}},
               "spec": {"job_type": "stateless"}}),
    );
}

/// `resourceVersion` of every Flink object, by name.
pub fn all_versions(server: &FakeApiServer) -> BTreeMap<String, String> {
    names(server)
        .into_iter()
        .map(|name| {
            let version = resource_version(server, &name);
            (name, version)
        })
        .collect()
}

/// Waits for the stop signal of a prune on `name`.
pub fn wait_signalled(server: &FakeApiServer, name: &str) {
    wait_for(&format!("{name} signalled"), PATIENCE, || {
        annotations(server, name).get(REQUESTED_AT).is_some()
    });
}

pub fn assert_untouched(server: &FakeApiServer, name: &str, version: &str) {
    assert_eq!(
        resource_version(server, name),
        version,
        "{name} was written: {:?}",
        writes_to(server, name)
    );
    assert!(
        annotations(server, name).get(REQUESTED_AT).is_none(),
        "{name} was signalled"
    );
}

/// Rewrites the branch to an unrelated history without `alpha.canary` (and
/// with another parallelism for `beta_svc`); returns the new head.
pub fn force_push_unrelated_history(repo: &Repo) -> String {
    repo.git(&["checkout", "-q", "--orphan", "rewritten"]);
    repo.write("alpha/flink-c1.yaml", WITHOUT_CANARY);
    repo.write(
        "beta_svc/flink-c1.yaml",
        "main: {job_type: stateless, parallelism: 6}\n",
    );
    let head = repo.commit("rewritten history");
    repo.git(&["branch", "-M", "rewritten", "master"]);
    head
}
