//! Kubernetes Events recorded after each write, and the PaaSTA-shaped
//! `status` command, through the real binary against the fake API server.

mod support;

use serde_json::{Value as Json, json};
use std::process::Command;
use support::fake_apiserver::{FLINK_NAMESPACE, FLINK_PLURAL, JOB_PLURAL, job_complete};
use support::scenario::{Env, Run, WITHOUT_CANARY, events, path_str};

/// The scenario environment with core/v1 Events and Pods served.
fn env() -> Env {
    let env = Env::new();
    env.server.register_events();
    env.server.register_pods();
    env
}

fn reasons_for(env: &Env, name: &str) -> Vec<String> {
    events(&env.server)
        .iter()
        .filter(|e| e["involvedObject"]["name"] == name)
        .map(|e| e["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `flink-gitops status` with NO_COLOR=1, the scenario's configuration and
/// an admin kubeconfig: `status` is run by people with their own
/// credentials, and it lists Pods and Events, which the reconciler's
/// ServiceAccount is not granted (deploy/rbac.yaml).
fn status(env: &Env, extra: &[&str]) -> Run {
    let config = env.path("flink-gitops.yaml");
    let kubeconfig = env.server.write_admin_kubeconfig(env.dir.path());
    let output = Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
        .arg("status")
        .args(["--config", path_str(&config)])
        .args(["--kubeconfig", path_str(&kubeconfig)])
        .args(extra)
        .env_remove("KUBECONFIG")
        .env_remove("FLINK_GITOPS_SOA_DIR")
        .env("NO_COLOR", "1")
        .output()
        .expect("run flink-gitops");
    Run::from_output(output)
}

/// `status` of alpha.<instance> in c1, planned against the scenario's soa-configs.
fn status_of(env: &Env, instance: &str, verbose: bool) -> Run {
    let soa = env.path("soa");
    let mut args = vec![
        "-s",
        "alpha",
        "-i",
        instance,
        "-c",
        "c1",
        "--soa-dir",
        path_str(&soa),
    ];
    if verbose {
        args.push("-v");
    }
    let run = status(env, &args);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    run
}

/// RFC 3339 times become `[time]`.
fn snapshot(name: &str, text: &str) {
    let times = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z").expect("regex");
    insta::assert_snapshot!(name, times.replace_all(text, "[time]"));
}

fn pod_labels(instance: &str) -> Json {
    json!({"paasta.yelp.com/service": "alpha", "paasta.yelp.com/instance": instance})
}

#[test]
fn creates_updates_and_drift_corrections_are_recorded_on_the_resource() {
    let env = env();
    env.apply();
    let live = env.live("alpha-main");
    let created: Vec<Json> = events(&env.server)
        .into_iter()
        .filter(|e| e["involvedObject"]["name"] == "alpha-main")
        .collect();
    assert_eq!(created.len(), 1, "{created:#?}");
    let event = &created[0];
    assert_eq!(event["reason"], "Created");
    assert_eq!(event["type"], "Normal");
    assert_eq!(
        event["involvedObject"],
        json!({
            "apiVersion": "yelp.com/v1alpha1",
            "kind": "Flink",
            "name": "alpha-main",
            "namespace": FLINK_NAMESPACE,
            "uid": live["metadata"]["uid"],
        })
    );
    assert_eq!(event["source"]["component"], "flink-gitops");
    assert_eq!(event["reportingComponent"], "flink-gitops");
    assert_eq!(event["count"], 1);
    assert!(
        event["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("alpha-main.")),
        "{event:#}"
    );
    for key in ["firstTimestamp", "lastTimestamp", "eventTime", "message"] {
        assert!(event[key].is_string(), "{key} in {event:#}");
    }
    assert_eq!(reasons_for(&env, "alpha-canary"), ["Created"]);
    assert_eq!(reasons_for(&env, "beta--svc-main"), ["Created"]);

    // A change in git: Updated.
    env.write(
        "soa/alpha/flink-c1.yaml",
        &support::scenario::ALPHA.replace("instances: 2", "instances: 3"),
    );
    env.apply();
    assert_eq!(reasons_for(&env, "alpha-main"), ["Created", "Updated"]);

    // A hand edit: DriftCorrected.
    let mut edited = env.live("alpha-main");
    edited["spec"]["taskmanager"]["instances"] = json!(9);
    env.server.replace_as("kubectl-edit", edited);
    env.apply();
    assert_eq!(
        reasons_for(&env, "alpha-main"),
        ["Created", "Updated", "DriftCorrected"]
    );
    let last = events(&env.server).pop().expect("an event");
    assert!(
        last["message"]
            .as_str()
            .is_some_and(|m| m.contains("drift at spec.taskmanager.instances")),
        "{last:#}"
    );

    // Nothing to do: no Event.
    let before = events(&env.server).len();
    env.apply();
    assert_eq!(events(&env.server).len(), before);
}

#[test]
fn prune_requests_and_prunes_are_recorded() {
    let env = env();
    env.apply();
    env.write("soa/alpha/flink-c1.yaml", WITHOUT_CANARY);
    let run = env.run("apply", &["--prune"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        reasons_for(&env, "alpha-canary"),
        ["Created", "PruneRequested"]
    );
    let requested = events(&env.server).pop().expect("an event");
    assert_eq!(requested["type"], "Normal");
    assert_eq!(requested["involvedObject"]["kind"], "Flink");
    assert!(
        requested["message"]
            .as_str()
            .is_some_and(|m| m.contains("alpha-canary-shutdown")),
        "{requested:#}"
    );

    env.server
        .set_job_status(FLINK_NAMESPACE, "alpha-canary-shutdown", job_complete());
    let run = env.run("apply", &["--prune"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        env.server
            .object(FLINK_PLURAL, FLINK_NAMESPACE, "alpha-canary")
            .is_none()
    );
    assert_eq!(
        reasons_for(&env, "alpha-canary"),
        ["Created", "PruneRequested", "Pruned"]
    );
}

#[test]
fn a_failed_shutdown_job_is_a_warning() {
    let env = env();
    env.apply();
    env.write("soa/alpha/flink-c1.yaml", WITHOUT_CANARY);
    env.run("apply", &["--prune"]);
    env.server.set_job_status(
        FLINK_NAMESPACE,
        "alpha-canary-shutdown",
        support::fake_apiserver::job_failed(),
    );
    env.run("apply", &["--prune"]);
    let failed = events(&env.server).pop().expect("an event");
    assert_eq!(failed["reason"], "PruneFailed");
    assert_eq!(failed["type"], "Warning");
    assert!(
        env.server
            .object(JOB_PLURAL, FLINK_NAMESPACE, "alpha-canary-shutdown")
            .is_some()
    );
}

/// The canary removed from git, signalled, and its shutdown Job failed: each
/// `apply --prune` from here on reports PruneFailed.
fn with_a_failed_prune() -> Env {
    let env = env();
    env.apply();
    env.write("soa/alpha/flink-c1.yaml", WITHOUT_CANARY);
    let run = env.run("apply", &["--prune"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    env.server.set_job_status(
        FLINK_NAMESPACE,
        "alpha-canary-shutdown",
        support::fake_apiserver::job_failed(),
    );
    env
}

/// One failing `apply --prune` (exit 1: the prune failed).
fn failing_prune(env: &Env) {
    let run = env.run("apply", &["--prune"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("PruneFailed"), "{}", run.stdout);
}

fn prune_failed_events(env: &Env) -> Vec<Json> {
    events(&env.server)
        .into_iter()
        .filter(|e| e["reason"] == "PruneFailed")
        .collect()
}

#[test]
fn a_prune_failing_every_cycle_is_one_warning_with_a_count() {
    let env = with_a_failed_prune();
    for _ in 0..3 {
        failing_prune(&env);
    }
    let failed = prune_failed_events(&env);
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let event = &failed[0];
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["involvedObject"]["name"], "alpha-canary");
    assert_eq!(event["count"], 3, "{event:#}");
    let first = event["firstTimestamp"].as_str().expect("firstTimestamp");
    let last = event["lastTimestamp"].as_str().expect("lastTimestamp");
    assert!(first <= last, "{event:#}");
    // The name is derived from what the Event says, not drawn at random.
    let name = event["metadata"]["name"].as_str().expect("a name");
    let hash = name
        .strip_prefix("alpha-canary.")
        .expect("the object's name");
    assert!(
        hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{name}"
    );
    // The first cycle created it; each repeat merge-patched it.
    let patches: Vec<_> = env
        .server
        .event_writes()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 2, "{patches:#?}");
    for patch in &patches {
        assert_eq!(
            patch.content_type.as_deref(),
            Some("application/merge-patch+json")
        );
        assert!(
            patch.path.ends_with(&format!("/events/{name}")),
            "{patch:?}"
        );
    }
    // The other Events of the canary are untouched.
    assert_eq!(
        reasons_for(&env, "alpha-canary"),
        ["Created", "PruneRequested", "PruneFailed"]
    );
}

#[test]
fn distinct_reasons_and_objects_give_distinct_events() {
    let env = with_a_failed_prune();
    failing_prune(&env);
    failing_prune(&env);
    let all = events(&env.server);
    let mut names: Vec<&str> = all
        .iter()
        .filter_map(|e| e["metadata"]["name"].as_str())
        .collect();
    let total = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), total, "{all:#?}");
    // Three objects created, one requested, one failed (twice).
    assert_eq!(total, 5, "{all:#?}");
    for name in ["alpha-main", "beta--svc-main"] {
        assert_eq!(reasons_for(&env, name), ["Created"], "{name}");
    }
    let counts: Vec<(String, u64)> = all
        .iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_owned(),
                e["count"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("Created".to_owned(), 1),
            ("Created".to_owned(), 1),
            ("Created".to_owned(), 1),
            ("PruneRequested".to_owned(), 1),
            ("PruneFailed".to_owned(), 2),
        ]
    );
}

#[test]
fn an_event_that_expired_is_recorded_again() {
    let env = with_a_failed_prune();
    failing_prune(&env);
    failing_prune(&env);
    let expired = prune_failed_events(&env);
    assert_eq!(expired.len(), 1, "{expired:#?}");
    assert_eq!(expired[0]["count"], 2);
    let name = expired[0]["metadata"]["name"]
        .as_str()
        .expect("a name")
        .to_owned();
    // kube-apiserver deletes Events after --event-ttl (1h by default).
    assert!(env.server.remove_object("events", FLINK_NAMESPACE, &name));

    failing_prune(&env);
    let again = prune_failed_events(&env);
    assert_eq!(again.len(), 1, "{again:#?}");
    assert_eq!(again[0]["metadata"]["name"], name.as_str());
    assert_eq!(again[0]["count"], 1, "a new Event: {:#}", again[0]);

    failing_prune(&env);
    assert_eq!(prune_failed_events(&env)[0]["count"], 2);
}

#[test]
fn an_event_that_expires_between_the_read_and_the_update_is_created_again() {
    let env = with_a_failed_prune();
    failing_prune(&env);
    let name = prune_failed_events(&env)[0]["metadata"]["name"]
        .as_str()
        .expect("a name")
        .to_owned();
    // The PATCH finds the Event gone, as when it expires after the read.
    env.server.clear_requests();
    env.server.inject(
        support::fake_apiserver::Fault::status(404)
            .method("PATCH")
            .path("/events/"),
    );
    failing_prune(&env);
    let requests: Vec<String> = env
        .server
        .requests()
        .iter()
        .filter(|r| r.path.contains("/events"))
        .map(|r| format!("{} {}", r.method, r.path.rsplit('/').next().unwrap_or("")))
        .collect();
    assert_eq!(
        requests,
        [
            "POST events".to_owned(),
            format!("GET {name}"),
            format!("PATCH {name}"),
            "POST events".to_owned(),
            format!("GET {name}"),
            format!("PATCH {name}"),
        ]
    );
    assert_eq!(env.server.pending_faults(), 0);
    let failed = prune_failed_events(&env);
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0]["count"], 2, "{:#}", failed[0]);
}

#[test]
fn an_event_that_cannot_be_updated_does_not_fail_the_prune() {
    let env = with_a_failed_prune();
    failing_prune(&env);
    env.server.inject(
        support::fake_apiserver::Fault::status(403)
            .method("PATCH")
            .path("/events/"),
    );
    // Still the prune's own exit code and report, not the Event's.
    failing_prune(&env);
    assert_eq!(prune_failed_events(&env)[0]["count"], 1);
    failing_prune(&env);
    assert_eq!(prune_failed_events(&env)[0]["count"], 2);
}

#[test]
fn an_event_that_cannot_be_recorded_does_not_fail_the_write() {
    // Events are not served at all: every POST gets 404.
    let env = Env::new();
    let run = env.apply();
    assert!(run.stdout.contains("created"), "{}", run.stdout);
    assert!(
        env.server
            .object(FLINK_PLURAL, FLINK_NAMESPACE, "alpha-main")
            .is_some()
    );
    assert_eq!(env.server.event_writes().len(), 3);
}

#[test]
fn status_of_a_running_instance() {
    let env = env();
    env.apply();
    env.server.set_status(
        FLINK_PLURAL,
        FLINK_NAMESPACE,
        "alpha-main",
        json!({"state": "running"}),
    );
    env.server.apply_as(
        "flink-operator",
        json!({
            "apiVersion": "yelp.com/v1alpha1", "kind": "Flink",
            "metadata": {"name": "alpha-main", "namespace": FLINK_NAMESPACE, "annotations": {
                "flink.yelp.com/dashboard_url": "http://flink.eks.c1.paasta:31080/alpha-main",
            }},
        }),
    );
    env.server
        .insert_pod(FLINK_NAMESPACE, "jm", pod_labels("main"), "Running", None);
    env.server
        .insert_pod(FLINK_NAMESPACE, "tm-1", pod_labels("main"), "Running", None);
    env.server.insert_pod(
        FLINK_NAMESPACE,
        "tm-2",
        pod_labels("main"),
        "Failed",
        Some("Evicted"),
    );
    env.server
        .insert_pod(FLINK_NAMESPACE, "tm-3", pod_labels("main"), "Pending", None);
    // Someone else's pod.
    env.server.insert_pod(
        FLINK_NAMESPACE,
        "other",
        pod_labels("canary"),
        "Running",
        None,
    );
    snapshot("status_running", &status_of(&env, "main", false).stdout);
    snapshot(
        "status_running_verbose",
        &status_of(&env, "main", true).stdout,
    );
}

#[test]
fn status_of_a_stopped_instance() {
    let env = env();
    env.apply();
    let mut stopped = env.live("alpha-main");
    stopped["metadata"]["annotations"]["paasta.yelp.com/desired_state"] = json!("stop");
    stopped["metadata"]["annotations"]["yelp.com/desired_state"] = json!("stop");
    env.server.replace_as("OpenAPI-Generator", stopped);
    env.server.set_status(
        FLINK_PLURAL,
        FLINK_NAMESPACE,
        "alpha-main",
        json!({"state": "stopped"}),
    );
    snapshot("status_stopped", &status_of(&env, "main", false).stdout);
}

#[test]
fn status_of_an_instance_without_status_and_with_drift() {
    let env = env();
    env.apply();
    let mut edited = env.live("alpha-main");
    edited["spec"]["taskmanager"]["instances"] = json!(9);
    env.server.replace_as("kubectl-edit", edited);
    snapshot(
        "status_missing_status",
        &status_of(&env, "main", false).stdout,
    );
}

#[test]
fn status_of_an_instance_with_a_pending_change() {
    let env = env();
    env.apply();
    env.write(
        "soa/alpha/flink-c1.yaml",
        &support::scenario::ALPHA.replace("job_type: stateful", "job_type: stateless"),
    );
    let run = status_of(&env, "main", false);
    assert!(
        run.stdout
            .contains("    Pending: config_sha changed (config"),
        "{}",
        run.stdout
    );
}

#[test]
fn status_without_soa_dir_shows_only_the_cluster() {
    let env = env();
    env.apply();
    let run = status(&env, &["-s", "alpha", "-i", "main", "-c", "c1"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    snapshot("status_without_soa_dir", &run.stdout);
}

#[test]
fn status_of_an_instance_being_pruned() {
    let env = env();
    env.apply();
    env.write("soa/alpha/flink-c1.yaml", WITHOUT_CANARY);
    let run = env.run("apply", &["--prune"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    env.server.set_status(
        FLINK_PLURAL,
        FLINK_NAMESPACE,
        "alpha-canary",
        json!({"state": "running"}),
    );
    snapshot(
        "status_prune_in_progress",
        &status_of(&env, "canary", true).stdout,
    );
}

#[test]
fn status_of_a_missing_instance_exits_1() {
    let env = env();
    env.apply();
    let run = status(&env, &["-s", "alpha", "-i", "nope", "-c", "c1"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("no alpha-nope found"), "{}", run.stderr);
}
