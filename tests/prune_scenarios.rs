//! The prune protocol through the real binary against the fake API server:
//! signal + Job, delete after success, failures and timeouts keep the
//! resource, cancel, guards, restarts, and PaaSTA-compatible `delete` mode.

mod support;

use serde_json::{Value as Json, json};
use std::collections::BTreeSet;
use support::fake_apiserver::{
    FLINK_NAMESPACE, FLINK_PLURAL, GcAction, JOB_PLURAL, job_complete, job_failed, job_running,
};
use support::scenario::{ALPHA, Env, WITHOUT_CANARY, summary_count};

fn job(env: &Env, name: &str) -> Option<Json> {
    env.server.object(JOB_PLURAL, FLINK_NAMESPACE, name)
}

fn job_creates(env: &Env) -> usize {
    env.server
        .writes()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/jobs"))
        .count()
}

/// Applies everything, then removes `alpha.canary` from git.
fn with_canary_removed() -> Env {
    let env = Env::new();
    env.apply();
    env.write("soa/alpha/flink-c1.yaml", WITHOUT_CANARY);
    env
}

fn prune(env: &Env) -> support::scenario::Run {
    env.run("apply", &["--prune"])
}

#[test]
fn a_removed_instance_is_signalled_and_gets_one_job_but_is_not_deleted() {
    let env = with_canary_removed();
    env.server.clear_requests();
    let run = prune(&env);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let live = env.live("alpha-canary");
    let annotations = &live["metadata"]["annotations"];
    assert_eq!(annotations["paasta.yelp.com/desired_state"], "stop");
    assert_eq!(annotations["yelp.com/desired_state"], "stop");
    assert!(annotations["flink-gitops/prune-requested-at"].is_string());
    assert_eq!(annotations["flink-gitops/prune-revision"], "local");
    let job = job(&env, "alpha-canary-shutdown").expect("shutdown Job");
    assert_eq!(
        job["metadata"]["ownerReferences"][0]["uid"],
        live["metadata"]["uid"]
    );
    assert_eq!(
        job["metadata"]["labels"]["paasta.yelp.com/instance"],
        "canary"
    );
    assert_eq!(job_creates(&env), 1);
    assert!(
        env.server.writes().iter().all(|r| r.method != "DELETE"),
        "nothing is deleted before the Job succeeded"
    );
    // The main instance is untouched.
    assert_eq!(
        env.live("alpha-main")["metadata"]["annotations"]["paasta.yelp.com/desired_state"],
        "running"
    );
}

#[test]
fn a_completed_job_deletes_the_resource_and_the_job_goes_with_it() {
    let env = with_canary_removed();
    prune(&env);
    env.server
        .set_job_status(FLINK_NAMESPACE, "alpha-canary-shutdown", job_complete());
    let run = prune(&env);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        env.server
            .object(FLINK_PLURAL, FLINK_NAMESPACE, "alpha-canary")
            .is_none()
    );
    assert!(
        job(&env, "alpha-canary-shutdown").is_none(),
        "garbage-collected"
    );
    let collected: Vec<String> = env
        .server
        .gc_deleted()
        .iter()
        .filter(|e| e.action == GcAction::Deleted)
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(collected, ["alpha-canary-shutdown"]);
    let delete = env
        .server
        .writes()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .expect("one DELETE");
    assert_eq!(delete.body["propagationPolicy"], "Background");
}

#[test]
fn a_failed_job_keeps_the_resource_and_reports_prune_failed() {
    let env = with_canary_removed();
    prune(&env);
    env.server
        .set_job_status(FLINK_NAMESPACE, "alpha-canary-shutdown", job_failed());
    env.server.clear_requests();
    let run = prune(&env);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("prune-failed"), "{}", run.stdout);
    assert!(run.stdout.contains("PruneFailed"), "{}", run.stdout);
    assert!(
        env.server
            .object(FLINK_PLURAL, FLINK_NAMESPACE, "alpha-canary")
            .is_some()
    );
    assert!(env.server.writes().is_empty(), "no automatic retry");
}

#[test]
fn a_job_running_past_the_timeout_is_reported_and_the_resource_kept() {
    let env = with_canary_removed();
    prune(&env);
    env.server
        .set_job_status(FLINK_NAMESPACE, "alpha-canary-shutdown", job_running());
    env.write(
        "flink-gitops.yaml",
        "cluster: c1\ndocker_registry: registry.example:443\nprune: {timeout: 0s, grace: 0s}\n",
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let run = prune(&env);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("PruneTimedOut"), "{}", run.stdout);
    assert!(
        env.server
            .object(FLINK_PLURAL, FLINK_NAMESPACE, "alpha-canary")
            .is_some()
    );
}

#[test]
fn an_instance_restored_mid_prune_runs_again_and_its_job_is_deleted() {
    let env = with_canary_removed();
    prune(&env);
    assert!(job(&env, "alpha-canary-shutdown").is_some());
    env.write("soa/alpha/flink-c1.yaml", ALPHA);
    let run = prune(&env);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        job(&env, "alpha-canary-shutdown").is_none(),
        "the Job is deleted"
    );
    let annotations = env.live("alpha-canary")["metadata"]["annotations"].clone();
    assert_eq!(annotations["paasta.yelp.com/desired_state"], "running");
    assert_eq!(annotations["yelp.com/desired_state"], "running");
    assert!(
        annotations.get("flink-gitops/prune-requested-at").is_none(),
        "{annotations}"
    );
    assert!(
        annotations.get("flink-gitops/prune-revision").is_none(),
        "{annotations}"
    );
}

#[test]
fn nothing_is_pruned_when_the_service_cannot_be_loaded() {
    let env = Env::new();
    env.apply();
    env.write("soa/alpha/flink-c1.yaml", "main: {broken: [\n");
    env.server.clear_requests();
    let run = prune(&env);
    assert_eq!(run.code, 1, "the broken file is an error");
    assert!(env.server.writes().is_empty(), "{:?}", env.server.writes());
}

#[test]
fn nothing_is_pruned_from_an_empty_tree() {
    let env = Env::new();
    env.apply();
    std::fs::remove_dir_all(env.path("soa/alpha")).expect("rm");
    std::fs::remove_dir_all(env.path("soa/beta_svc")).expect("rm");
    env.server.clear_requests();
    let run = env.run("apply", &["--prune", "--allow-mass-prune"]);
    assert!(
        env.server.writes().is_empty(),
        "{}\n{:?}",
        run.stdout,
        env.server.writes()
    );
    assert_eq!(env.server.objects(FLINK_PLURAL, FLINK_NAMESPACE).len(), 3);
}

#[test]
fn a_mass_removal_is_blocked_until_confirmed_once() {
    let env = Env::new();
    env.apply();
    // Two of three instances at once is over the 25% guard.
    env.write("soa/alpha/flink-c1.yaml", "");
    env.server.clear_requests();
    let blocked = prune(&env);
    assert_eq!(blocked.code, 1, "{}", blocked.stdout);
    assert!(
        blocked.stdout.contains("MassPruneBlocked"),
        "{}",
        blocked.stdout
    );
    assert!(env.server.writes().is_empty());

    let confirmed = env.run("apply", &["--prune", "--allow-mass-prune"]);
    assert_eq!(
        confirmed.code, 0,
        "{}\n{}",
        confirmed.stdout, confirmed.stderr
    );
    assert_eq!(job_creates(&env), 2);
    // Once started, the prunes continue without the flag.
    env.server.clear_requests();
    let again = prune(&env);
    assert_eq!(again.code, 0, "{}", again.stdout);
    assert_eq!(job_creates(&env), 0);
}

#[test]
fn a_restart_between_signal_and_completion_creates_no_second_job() {
    let env = with_canary_removed();
    prune(&env);
    env.server
        .set_job_status(FLINK_NAMESPACE, "alpha-canary-shutdown", job_running());
    env.server.clear_requests();
    let run = prune(&env);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(job_creates(&env), 0);
    assert!(run.stdout.contains("waiting"), "{}", run.stdout);

    // Killed after the signal, before the Job: the next run creates it.
    assert!(
        env.server
            .remove_object(JOB_PLURAL, FLINK_NAMESPACE, "alpha-canary-shutdown")
    );
    prune(&env);
    assert!(job(&env, "alpha-canary-shutdown").is_some());
}

#[test]
fn prune_disabled_is_respected() {
    let env = with_canary_removed();
    let mut live = env.live("alpha-canary");
    live["metadata"]["annotations"]["flink-gitops/prune"] = json!("disabled");
    env.server.replace_as("kubectl-annotate", live);
    env.server.clear_requests();
    let run = prune(&env);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("prune-disabled"), "{}", run.stdout);
    assert!(env.server.writes().is_empty());
}

#[test]
fn diff_lists_prunes_in_plain_words() {
    let env = with_canary_removed();
    let diff = env.run("diff", &["--exit-code"]);
    assert_eq!(diff.code, 1, "{}", diff.stdout);
    assert!(
        diff.stdout
            .contains("stops the jobs with a savepoint, then deletes paasta-flinks/alpha-canary"),
        "{}",
        diff.stdout
    );
    prune(&env);
    env.server
        .set_job_status(FLINK_NAMESPACE, "alpha-canary-shutdown", job_running());
    let json_run = env.run("diff", &["--output", "json"]);
    let plan: Json = serde_json::from_str(&json_run.stdout).expect("json");
    let entry = &plan["prunes"]["entries"][0];
    assert_eq!(entry["action"], "waiting");
    assert_eq!(
        entry["job"],
        json!({"name": "alpha-canary-shutdown", "state": "running"})
    );
}

#[test]
fn apply_without_prune_only_lists() {
    let env = with_canary_removed();
    env.server.clear_requests();
    let run = env.run("apply", &[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.contains("not executed: pass --prune"),
        "{}",
        run.stdout
    );
    assert!(env.server.writes().is_empty());
    assert_eq!(summary_count(&run.stdout, "orphaned"), 1);
}

#[test]
fn delete_mode_reproduces_paasta_cleanup_decisions_on_the_fixtures() {
    let env = Env::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = root.join("fixtures/soa-configs");
    let config = std::fs::read_to_string(root.join("fixtures/flink-gitops.yaml")).expect("config");
    env.write(
        "flink-gitops.yaml",
        &format!(
            "{config}\nprune: {{mode: delete, grace: 0s, max_per_cycle: 100, max_fraction: 1.0}}\n"
        ),
    );
    let run_on_fixtures = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
            .args(["apply", "--soa-dir", fixtures.to_str().expect("utf-8")])
            .args([
                "--config",
                env.path("flink-gitops.yaml").to_str().expect("utf-8"),
            ])
            .args(["--kubeconfig", env.kubeconfig.to_str().expect("utf-8")])
            .args(["--cluster", "norcal-devc"])
            .args(args)
            .output()
            .expect("run");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (code, stdout) = run_on_fixtures(&[]);
    assert_eq!(code, Some(0), "{stdout}");
    let labels = |service: &str, instance: &str| {
        json!({"paasta.yelp.com/service": service, "paasta.yelp.com/instance": instance,
               "paasta.yelp.com/cluster": "norcal-devc", "paasta.yelp.com/config_sha": "configdeadbeef"})
    };
    let extra = |name: &str, labels: Json| {
        json!({"apiVersion": "yelp.com/v1alpha1", "kind": "Flink",
               "metadata": {"name": name, "namespace": FLINK_NAMESPACE, "labels": labels}, "spec": {}})
    };
    // research 4.4: a removed instance and a removed service are deleted; an
    // instance that exists in YAML without deployments is kept; an object
    // without PaaSTA's labels is never touched.
    env.server.insert_as(
        "OpenAPI-Generator",
        extra("ad--events-old", labels("ad_events", "old")),
    );
    env.server.insert_as(
        "OpenAPI-Generator",
        extra("gone--svc-main", labels("gone_svc", "main")),
    );
    env.server.insert_as(
        "OpenAPI-Generator",
        extra("inventory--sync-main", labels("inventory_sync", "main")),
    );
    env.server
        .insert_as("OpenAPI-Generator", extra("handmade", json!({"team": "x"})));
    let before: BTreeSet<String> = names(&env);
    let (code, stdout) = run_on_fixtures(&["--prune"]);
    assert_eq!(code, Some(0), "{stdout}");
    let after = names(&env);
    let deleted: Vec<&String> = before.difference(&after).collect();
    assert_eq!(deleted, ["ad--events-old", "gone--svc-main"]);
}

fn names(env: &Env) -> BTreeSet<String> {
    env.server
        .objects(FLINK_PLURAL, FLINK_NAMESPACE)
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}
