//! Plan/apply scenarios through the real binary against the fake API server:
//! request counts, field removal, drift, takeover of PaaSTA's objects, the
//! `desired_state` rule, faults and retries.

mod support;

use serde_json::{Value as Json, json};
use std::process::Command;
use std::time::{Duration, Instant};
use support::fake_apiserver::{FLINK_NAMESPACE, FLINK_PLURAL, FakeApiServer, Fault};
use support::scenario::{ALPHA, Env, SHA_A, path_str, summary_count};

#[test]
fn fresh_cluster_gets_one_apply_per_instance() {
    let env = Env::new();
    let run = env.apply();
    assert_eq!(summary_count(&run.stdout, "created"), 3, "{}", run.stdout);
    let mut patched = env.patches();
    patched.sort();
    assert_eq!(patched, ["alpha-canary", "alpha-main", "beta--svc-main"]);
    for request in env.server.writes() {
        assert_eq!(request.field_manager(), Some("flink-gitops"));
        assert_eq!(request.query.get("force").map(String::as_str), Some("true"));
        assert_eq!(
            request.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
    }
    let main = env.live("alpha-main");
    assert_eq!(main["spec"]["checkpoint_interval_ms"], json!(60000));
    assert_eq!(
        main["metadata"]["labels"]["paasta.yelp.com/git_sha"],
        json!(SHA_A)
    );
    assert!(
        main["metadata"]["labels"]["paasta.yelp.com/config_sha"]
            .as_str()
            .is_some_and(|s| s.starts_with("config"))
    );
}

#[test]
fn second_run_lists_once_and_writes_nothing() {
    let env = Env::new();
    env.apply();
    env.server.clear_requests();
    let run = env.apply();
    assert_eq!(env.lists(), 1, "one LIST for the one kind");
    assert!(env.server.writes().is_empty(), "{:?}", env.server.writes());
    assert_eq!(summary_count(&run.stdout, "unchanged"), 3, "{}", run.stdout);
}

#[test]
fn one_instance_edited_in_git_is_exactly_one_patch() {
    let env = Env::new();
    env.apply();
    env.write(
        "soa/beta_svc/flink-c1.yaml",
        "main: {job_type: stateless, parallelism: 4}\n",
    );
    env.server.clear_requests();
    let run = env.apply();
    assert_eq!(env.patches(), ["beta--svc-main"]);
    assert_eq!(summary_count(&run.stdout, "updated"), 1);
    assert_eq!(env.live("beta--svc-main")["spec"]["parallelism"], json!(4));
}

#[test]
fn a_key_removed_from_flink_conf_is_removed_live() {
    let env = Env::new();
    env.apply();
    env.write(
        "soa/alpha/flink-c1.yaml",
        &ALPHA.replace("    execution.checkpointing.interval: '60000'\n", ""),
    );
    env.apply();
    for name in ["alpha-main", "alpha-canary"] {
        let conf = &env.live(name)["spec"]["flink_conf"];
        assert_eq!(conf, &json!({"state.backend.type": "rocksdb"}), "{name}");
    }
}

#[test]
fn a_hand_edit_is_reported_as_drift_and_corrected() {
    let env = Env::new();
    env.apply();
    let mut edited = env.live("alpha-main");
    edited["spec"]["taskmanager"]["instances"] = json!(9);
    env.server.replace_as("kubectl-edit", edited);

    let diff = env.run("diff", &["--exit-code"]);
    assert_eq!(diff.code, 1, "{}\n{}", diff.stdout, diff.stderr);
    assert!(
        diff.stdout.contains("drift at spec.taskmanager.instances"),
        "{}",
        diff.stdout
    );
    assert!(diff.stdout.contains("-    instances: 9"), "{}", diff.stdout);
    assert!(diff.stdout.contains("+    instances: 2"), "{}", diff.stdout);

    env.server.clear_requests();
    env.apply();
    assert_eq!(env.patches(), ["alpha-main"]);
    assert_eq!(
        env.live("alpha-main")["spec"]["taskmanager"]["instances"],
        json!(2)
    );
    let clean = env.run("diff", &["--exit-code"]);
    assert_eq!(clean.code, 0, "{}", clean.stdout);
}

#[test]
fn foreign_annotations_and_the_operator_status_survive() {
    let env = Env::new();
    env.apply();
    env.server.apply_as(
        "flink-operator",
        json!({"apiVersion": "yelp.com/v1alpha1", "kind": "Flink",
               "metadata": {"name": "alpha-main", "namespace": FLINK_NAMESPACE,
                            "annotations": {"flink.yelp.com/dashboard_url": "http://dash/alpha-main"}}}),
    );
    env.server.set_status(
        FLINK_PLURAL,
        FLINK_NAMESPACE,
        "alpha-main",
        json!({"state": "running"}),
    );
    env.write(
        "soa/alpha/flink-c1.yaml",
        &ALPHA.replace("cpus: 1,", "cpus: 2,"),
    );
    env.apply();
    let live = env.live("alpha-main");
    assert_eq!(live["spec"]["taskmanager"]["cpus"], json!(2));
    assert_eq!(
        live["metadata"]["annotations"]["flink.yelp.com/dashboard_url"],
        json!("http://dash/alpha-main")
    );
    assert_eq!(live["status"], json!({"state": "running"}));
}

/// The objects PaaSTA's setup_kubernetes_cr would have created: exactly our
/// rendering, written with plain updates by `manager` (`paasta`, from
/// PaaSTA's user agent `paasta/<component>/v<version>`; `OpenAPI-Generator`
/// for the Python client's default).
fn seed_as(env: &Env, manager: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
        .args(["render", "--soa-dir", path_str(&env.path("soa"))])
        .args([
            "--config",
            path_str(&env.path("flink-gitops.yaml")),
            "-o",
            "json",
        ])
        .output()
        .expect("render");
    let list: Json = serde_json::from_slice(&output.stdout).expect("json list");
    for item in list["items"].as_array().expect("items") {
        env.server.insert_as(manager, item.clone());
    }
}

#[test]
fn paasta_created_objects_need_no_write_then_a_removal_in_git_removes_the_field() {
    for manager in ["paasta", "OpenAPI-Generator"] {
        paasta_created_objects_are_taken_over(manager);
    }
}

fn paasta_created_objects_are_taken_over(manager: &str) {
    let env = Env::new();
    seed_as(&env, manager);
    env.server.clear_requests();
    let run = env.apply();
    assert!(
        env.server.writes().is_empty(),
        "takeover of an in-sync object writes nothing"
    );
    assert_eq!(summary_count(&run.stdout, "unchanged"), 3);

    env.write(
        "soa/beta_svc/flink-c1.yaml",
        "main: {job_type: stateless}\n",
    );
    env.server.clear_requests();
    env.apply();
    let live = env.live("beta--svc-main");
    assert!(
        live["spec"].get("parallelism").is_none(),
        "{manager}: {live}"
    );
    let writes = env.server.writes();
    assert_eq!(
        writes.len(),
        2,
        "ownership takeover, then the apply: {writes:?}"
    );
    assert_eq!(
        writes[0].content_type.as_deref(),
        Some("application/json-patch+json")
    );
    let managers: Vec<&str> = live["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .filter_map(|e| e["manager"].as_str())
        .collect();
    assert_eq!(managers, ["flink-gitops"]);
}

#[test]
fn a_live_stop_is_kept_until_the_config_changes() {
    let env = Env::new();
    env.apply();
    let mut stopped = env.live("alpha-main");
    stopped["metadata"]["annotations"]["paasta.yelp.com/desired_state"] = json!("stop");
    stopped["metadata"]["annotations"]["yelp.com/desired_state"] = json!("stop");
    env.server.replace_as("OpenAPI-Generator", stopped);

    env.server.clear_requests();
    env.apply();
    assert!(env.server.writes().is_empty(), "a stop alone is not drift");

    // A hand edit is corrected, the stop stays.
    let mut edited = env.live("alpha-main");
    edited["spec"]["job_type"] = json!("stateless");
    env.server.replace_as("kubectl-edit", edited);
    env.apply();
    let live = env.live("alpha-main");
    assert_eq!(live["spec"]["job_type"], json!("stateful"));
    assert_eq!(
        live["metadata"]["annotations"]["paasta.yelp.com/desired_state"],
        json!("stop")
    );

    // A config change resets it to running, as PaaSTA does.
    env.write(
        "soa/alpha/flink-c1.yaml",
        &ALPHA.replace("instances: 2", "instances: 3"),
    );
    env.apply();
    let live = env.live("alpha-main");
    assert_eq!(
        live["metadata"]["annotations"]["paasta.yelp.com/desired_state"],
        json!("running")
    );
    assert_eq!(
        live["metadata"]["annotations"]["yelp.com/desired_state"],
        json!("running")
    );
}

#[test]
fn a_server_error_is_retried_and_never_blocks_the_others() {
    let env = Env::new();
    env.server.inject(
        Fault::status(500)
            .method("PATCH")
            .path("alpha-main")
            .times(1),
    );
    env.apply();
    let patches = env.patches();
    assert_eq!(
        patches.iter().filter(|p| *p == "alpha-main").count(),
        2,
        "{patches:?}"
    );
    assert_eq!(env.server.objects(FLINK_PLURAL, FLINK_NAMESPACE).len(), 3);
}

#[test]
fn a_persistent_failure_fails_only_its_instance() {
    let env = Env::new();
    env.server.inject(
        Fault::status(500)
            .method("PATCH")
            .path("alpha-canary")
            .times(100),
    );
    let run = env.run("apply", &[]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("Flink/paasta-flinks/alpha-canary"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("500"), "{}", run.stderr);
    assert_eq!(summary_count(&run.stdout, "created"), 2);
    assert_eq!(summary_count(&run.stdout, "failed"), 1);
    assert!(
        env.server
            .object(FLINK_PLURAL, FLINK_NAMESPACE, "alpha-main")
            .is_some()
    );
    assert!(
        env.server
            .object(FLINK_PLURAL, FLINK_NAMESPACE, "alpha-canary")
            .is_none()
    );
    let attempts = env
        .patches()
        .iter()
        .filter(|p| *p == "alpha-canary")
        .count();
    assert_eq!(attempts, 3, "retry_attempts: 3");
}

#[test]
fn throttling_honours_retry_after() {
    let env = Env::new();
    env.server.inject(
        Fault::status(429)
            .method("PATCH")
            .path("beta--svc-main")
            .retry_after(1)
            .times(1),
    );
    let started = Instant::now();
    env.apply();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After"
    );
    assert!(
        env.server
            .object(FLINK_PLURAL, FLINK_NAMESPACE, "beta--svc-main")
            .is_some()
    );
}

#[test]
fn dry_run_stores_nothing() {
    let env = Env::new();
    let run = env.run("apply", &["--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("dry run"), "{}", run.stdout);
    let patches: Vec<_> = env
        .server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 3);
    assert!(patches.iter().all(|r| r.is_dry_run()));
    assert!(env.server.writes().is_empty());
    assert!(env.server.objects(FLINK_PLURAL, FLINK_NAMESPACE).is_empty());
}

#[test]
fn diff_exit_codes_and_json_schema() {
    let env = Env::new();
    let pending = env.run("diff", &["--exit-code", "--output", "json"]);
    assert_eq!(pending.code, 1, "{}", pending.stderr);
    let plan: Json = serde_json::from_str(&pending.stdout).expect("json");
    assert_eq!(plan["schema"], "flink-gitops/plan/v1");
    assert_eq!(plan["summary"]["create"], 3);
    assert!(env.server.writes().is_empty(), "diff never writes");

    env.apply();
    let clean = env.run("diff", &["--exit-code"]);
    assert_eq!(clean.code, 0, "{}", clean.stdout);

    env.write("soa/beta_svc/flink-c1.yaml", "main: [not, a, mapping]\n");
    let broken = env.run("diff", &["--exit-code"]);
    assert_eq!(
        broken.code, 2,
        "an unknown service is an error: {}",
        broken.stdout
    );
    assert!(broken.stdout.contains("blocked"), "{}", broken.stdout);
}

#[test]
fn removed_instances_are_listed_as_orphans_and_left_alone() {
    let env = Env::new();
    env.apply();
    env.write(
        "soa/alpha/flink-c1.yaml",
        &ALPHA.replace("canary:\n  <<: *base\n  deploy_group: prod.canary\n", ""),
    );
    env.server.clear_requests();
    let run = env.apply();
    assert_eq!(summary_count(&run.stdout, "orphaned"), 1, "{}", run.stdout);
    assert!(env.server.writes().is_empty());
    assert!(
        env.server
            .object(FLINK_PLURAL, FLINK_NAMESPACE, "alpha-canary")
            .is_some()
    );
}

#[test]
fn an_unlabelled_object_with_our_name_is_never_touched() {
    let env = Env::new();
    env.server.insert_as(
        "someone",
        json!({"apiVersion": "yelp.com/v1alpha1", "kind": "Flink",
               "metadata": {"name": "alpha-main", "namespace": FLINK_NAMESPACE}, "spec": {"x": 1}}),
    );
    let run = env.run("apply", &[]);
    // Not listed (no PaaSTA labels), so it is planned as a create, and a
    // forced server-side apply would adopt it: we must not do that.
    assert_eq!(
        env.live("alpha-main")["spec"],
        json!({"x": 1}),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("not ours"), "{}", run.stderr);
    assert_eq!(
        summary_count(&run.stdout, "created"),
        2,
        "the others are created"
    );
}

#[test]
fn missing_namespace_is_created_when_configured() {
    let server = FakeApiServer::start();
    server.register_flink();
    // The ServiceAccount needs the ClusterRole deploy/rbac.yaml documents
    // for this setting (tests/rbac.rs shows the 403 without it).
    server.grant(support::fake_apiserver::Rbac::namespaces_addon());
    let env = Env {
        kubeconfig: server.write_kubeconfig(tempfile::tempdir().expect("tmp").keep().as_path()),
        server,
        dir: Env::new().dir,
    };
    env.write(
        "flink-gitops.yaml",
        "cluster: c1\ndocker_registry: registry.example:443\napply: {create_namespaces: true}\n",
    );
    let run = env.run("apply", &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("created namespace paasta-flinks"),
        "{}",
        run.stdout
    );
    assert_eq!(env.server.objects(FLINK_PLURAL, FLINK_NAMESPACE).len(), 3);
}

/// kube-apiserver keeps an integer beyond int64 as a float64 and returns it
/// rounded: an object in sync stays in sync instead of being written on
/// every run.
#[test]
fn an_integer_beyond_int64_is_in_sync_once_rounded_by_the_api_server() {
    let env = Env::new();
    env.write(
        "soa/beta_svc/flink-c1.yaml",
        "main: {job_type: stateless, flink_conf: {big: 12345678901234567890}}\n",
    );
    env.apply();
    let stored = env.live("beta--svc-main")["spec"]["flink_conf"]["big"].to_string();
    assert_eq!(
        stored, "12345678901234567000",
        "stored as kube-apiserver does"
    );
    env.server.clear_requests();
    let run = env.apply();
    assert_eq!(summary_count(&run.stdout, "updated"), 0, "{}", run.stdout);
    assert!(env.patches().is_empty(), "{:?}", env.patches());
}
