//! The reconciler runs as its ServiceAccount, with exactly the permissions of
//! deploy/rbac.yaml (the fake API server enforces RBAC as kube-apiserver
//! does): the scenarios pass with the shipped file, and removing any one verb
//! from it fails a scenario with a 403 that the user sees.

mod support;

use std::collections::BTreeSet;
use support::daemon_process::{Daemon, LEADER_ELECTION, PATIENCE, daemon_server, serial, wait_for};
use support::fake_apiserver::{
    FLINK_NAMESPACE, FLINK_PLURAL, FakeApiServer, JOB_PLURAL, Rbac, SERVICE_ACCOUNT_USER,
    job_complete, job_failed,
};
use support::scenario::{ALPHA, Env, WITHOUT_CANARY, events, write_soa_configs};

/// The scenario environment with Events recorded.
fn env() -> Env {
    let env = Env::new();
    env.server.register_events();
    env
}

/// What the user saw of one run: stdout and stderr (or the daemon's log).
fn output(run: &support::scenario::Run) -> String {
    format!("{}\n{}", run.stdout, run.stderr)
}

fn assert_nothing_denied(server: &FakeApiServer) {
    assert_eq!(
        server.denied(),
        [],
        "the shipped RBAC must allow every call"
    );
}

/// Applies, then removes `alpha.canary` from git.
fn with_canary_removed(env: &Env) {
    env.apply();
    env.write("soa/alpha/flink-c1.yaml", WITHOUT_CANARY);
}

fn prune(env: &Env) -> support::scenario::Run {
    env.run("apply", &["--prune"])
}

// --- (a) The scenarios as the ServiceAccount, with deploy/rbac.yaml as shipped.

#[test]
fn apply_creates_updates_and_records_events_as_the_service_account() {
    let env = env();
    let run = env.apply();
    assert_eq!(
        env.server.objects(FLINK_PLURAL, FLINK_NAMESPACE).len(),
        3,
        "{}",
        output(&run)
    );
    env.write(
        "soa/alpha/flink-c1.yaml",
        &ALPHA.replace("instances: 2", "instances: 3"),
    );
    env.apply();
    assert_eq!(
        env.live("alpha-main")["spec"]["taskmanager"]["instances"],
        3
    );
    let reasons: BTreeSet<String> = events(&env.server)
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        reasons.contains("Created") && reasons.contains("Updated"),
        "{reasons:?}"
    );
    assert!(
        env.server.count("GET", "/flinks/alpha-main") > 0,
        "get before create"
    );
    assert_nothing_denied(&env.server);
}

#[test]
fn a_prune_signals_runs_a_job_and_deletes_as_the_service_account() {
    let env = env();
    with_canary_removed(&env);
    let run = prune(&env);
    assert_eq!(run.code, 0, "{}", output(&run));
    assert!(
        env.server
            .object(JOB_PLURAL, FLINK_NAMESPACE, "alpha-canary-shutdown")
            .is_some()
    );
    env.server
        .set_job_status(FLINK_NAMESPACE, "alpha-canary-shutdown", job_complete());
    let run = prune(&env);
    assert_eq!(run.code, 0, "{}", output(&run));
    assert!(
        env.server
            .object(FLINK_PLURAL, FLINK_NAMESPACE, "alpha-canary")
            .is_none()
    );
    assert_nothing_denied(&env.server);
}

#[test]
fn a_repeated_event_and_a_stale_job_as_the_service_account() {
    let env = env();
    stale_job(&env, None);
    repeated_event(&env, None);
    assert!(
        events(&env.server).iter().any(|e| e["count"] == 2),
        "a repeat is counted"
    );
    assert_nothing_denied(&env.server);
}

#[test]
fn a_leader_election_round_as_the_service_account() {
    let _serial = serial();
    let server = daemon_server();
    let (log, code) = leader_round(&server, None);
    assert_eq!(code, Some(0), "{log}");
    let lease = server
        .object("leases", "flink-gitops", "flink-gitops")
        .expect("the Lease");
    assert_eq!(
        lease["spec"]["holderIdentity"], "",
        "released on SIGTERM: {lease:#}"
    );
    assert_eq!(server.objects(FLINK_PLURAL, FLINK_NAMESPACE).len(), 3);
    assert_nothing_denied(&server);
}

// --- The scenarios, each restricted to `restricted` from the point where the
// verb under test is needed (the set-up before it runs with the shipped RBAC).

/// A first apply: LIST flinks, GET before a create, the apply that creates,
/// the Events.
fn first_apply(env: &Env, restricted: Option<Rbac>) -> String {
    if let Some(rbac) = restricted {
        env.server.set_rbac(rbac);
    }
    output(&env.run("apply", &[]))
}

/// An apply that changes an existing object: PATCH.
fn update(env: &Env, restricted: Option<Rbac>) -> String {
    env.apply();
    env.write(
        "soa/alpha/flink-c1.yaml",
        &ALPHA.replace("instances: 2", "instances: 3"),
    );
    if let Some(rbac) = restricted {
        env.server.set_rbac(rbac);
    }
    output(&env.run("apply", &[]))
}

/// The first prune of a removed instance: the stop signal (PATCH), the
/// shutdown Job (POST).
fn prune_signal(env: &Env, restricted: Option<Rbac>) -> String {
    with_canary_removed(env);
    if let Some(rbac) = restricted {
        env.server.set_rbac(rbac);
    }
    output(&prune(env))
}

/// A prune after the shutdown Job was created: list the shutdown Jobs to
/// read its state; it completed, so DELETE the Flink object.
fn prune_delete(env: &Env, restricted: Option<Rbac>) -> String {
    with_canary_removed(env);
    prune(env);
    env.server
        .set_job_status(FLINK_NAMESPACE, "alpha-canary-shutdown", job_complete());
    if let Some(rbac) = restricted {
        env.server.set_rbac(rbac);
    }
    output(&prune(env))
}

/// A prune that finds a Job of an earlier prune under the shutdown Job's
/// name: POST (409), GET it, DELETE it.
fn stale_job(env: &Env, restricted: Option<Rbac>) -> String {
    with_canary_removed(env);
    env.server.insert_as(
        "someone",
        serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "alpha-canary-shutdown", "namespace": FLINK_NAMESPACE},
            "spec": {},
        }),
    );
    if let Some(rbac) = restricted {
        env.server.set_rbac(rbac);
    }
    output(&prune(env))
}

/// The same PruneFailed Event twice: POST (409), GET, PATCH its count.
fn repeated_event(env: &Env, restricted: Option<Rbac>) -> String {
    env.server.set_rbac(Rbac::shipped());
    if env
        .server
        .object(JOB_PLURAL, FLINK_NAMESPACE, "alpha-canary-shutdown")
        .is_none()
    {
        with_canary_removed(env);
    }
    prune(env);
    env.server
        .set_job_status(FLINK_NAMESPACE, "alpha-canary-shutdown", job_failed());
    prune(env);
    if let Some(rbac) = restricted {
        env.server.set_rbac(rbac);
    }
    output(&prune(env))
}

/// The daemon with leader election: GET the Lease, create it, renew it
/// (PUT), release it on SIGTERM (PUT). Returns its log and exit code.
fn leader_round(server: &FakeApiServer, restricted: Option<Rbac>) -> (String, Option<i32>) {
    if let Some(rbac) = restricted {
        server.set_rbac(rbac);
    }
    let soa = tempfile::tempdir().expect("tempdir");
    write_soa_configs(soa.path());
    let daemon = Daemon::start(
        server,
        &format!(
            "source: {{dir: '{}', poll_interval: 1h, debounce: 200ms}}",
            soa.path().display()
        ),
        LEADER_ELECTION,
        "",
    );
    // Long enough to renew the Lease at least once (retry_period 300ms).
    wait_for("a renewal or a refusal", PATIENCE, || {
        !server.denied().is_empty() || server.count("PUT", "/leases/") > 0
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (code, log) = daemon.terminate();
    (log, code)
}

fn leader_election(restricted: Rbac) -> (FakeApiServer, String) {
    let _serial = serial();
    let server = daemon_server();
    let (log, _) = leader_round(&server, Some(restricted));
    (server, log)
}

/// Which scenario needs a verb, and the call it makes with it.
struct Case {
    role: &'static str,
    rule: usize,
    verb: &'static str,
    /// `(resource, namespace)` named in the 403.
    resource: &'static str,
    namespace: &'static str,
    api_group: &'static str,
    scenario: fn(&Env, Option<Rbac>) -> String,
}

const APP: &str = "flink-gitops";
const LEADER: &str = "flink-gitops-leader-election";

/// Every verb of every rule of deploy/rbac.yaml, and the scenario that
/// needs it (the leases rule runs the daemon, see [`leader_election`]).
const CASES: &[Case] = &[
    case(APP, 0, "list", "flinks", first_apply),
    case(APP, 0, "get", "flinks", first_apply),
    case(APP, 0, "create", "flinks", first_apply),
    case(APP, 0, "patch", "flinks", update),
    case(APP, 0, "delete", "flinks", prune_delete),
    case(APP, 1, "list", "jobs", prune_delete),
    case(APP, 1, "create", "jobs", prune_signal),
    case(APP, 1, "get", "jobs", stale_job),
    case(APP, 1, "delete", "jobs", stale_job),
    case(APP, 2, "create", "events", first_apply),
    case(APP, 2, "get", "events", repeated_event),
    case(APP, 2, "patch", "events", repeated_event),
];

const fn case(
    role: &'static str,
    rule: usize,
    verb: &'static str,
    resource: &'static str,
    scenario: fn(&Env, Option<Rbac>) -> String,
) -> Case {
    let api_group = match resource.as_bytes() {
        b"flinks" => "yelp.com",
        b"jobs" => "batch",
        _ => "",
    };
    Case {
        role,
        rule,
        verb,
        resource,
        namespace: FLINK_NAMESPACE,
        api_group,
        scenario,
    }
}

/// The verbs of the leader-election Role, each needed by one daemon round.
const LEASE_VERBS: &[&str] = &["get", "create", "update"];

/// The message kube-apiserver gives the ServiceAccount for a denied call.
fn denial(verb: &str, resource: &str, api_group: &str, namespace: &str) -> String {
    format!(
        "User \"{SERVICE_ACCOUNT_USER}\" cannot {verb} resource \"{resource}\" in API group \"{api_group}\" in the namespace \"{namespace}\""
    )
}

/// The server refused exactly the call the verb was needed for, and the
/// user's output names it.
fn assert_refused(server: &FakeApiServer, seen: &str, what: &str, expected: &str) {
    let denied = server.denied();
    assert!(
        !denied.is_empty()
            && denied
                .iter()
                .all(|d| d.code == 403 && d.message.contains(expected)),
        "{what}: expected only 403s for `{expected}`, got {denied:#?}\n{seen}"
    );
    assert!(
        seen.contains(expected),
        "{what}: the user is not told `{expected}`:\n{seen}"
    );
}

#[test]
fn the_table_covers_every_verb_of_every_rule() {
    let mut shipped = BTreeSet::new();
    for role in Rbac::shipped().roles {
        for (index, rule) in role.rules.iter().enumerate() {
            for verb in &rule.verbs {
                shipped.insert((role.name.clone(), index, verb.clone()));
            }
        }
    }
    let mut covered: BTreeSet<(String, usize, String)> = CASES
        .iter()
        .map(|c| (c.role.to_owned(), c.rule, c.verb.to_owned()))
        .collect();
    covered.extend(
        LEASE_VERBS
            .iter()
            .map(|v| (LEADER.to_owned(), 0, (*v).to_owned())),
    );
    assert_eq!(covered, shipped);
}

#[test]
fn removing_any_verb_of_the_reconciler_role_fails_a_scenario() {
    for case in CASES {
        let what = format!("{} rule {} without {}", case.role, case.rule, case.verb);
        let env = env();
        let restricted = Rbac::shipped().without_verb(case.role, case.rule, case.verb);
        let seen = (case.scenario)(&env, Some(restricted));
        let expected = denial(case.verb, case.resource, case.api_group, case.namespace);
        assert_refused(&env.server, &seen, &what, &expected);
    }
}

#[test]
fn removing_any_verb_of_the_leader_election_role_fails_the_daemon() {
    for verb in LEASE_VERBS {
        let what = format!("{LEADER} without {verb}");
        let (server, log) = leader_election(Rbac::shipped().without_verb(LEADER, 0, verb));
        let expected = denial(verb, "leases", "coordination.k8s.io", "flink-gitops");
        assert_refused(&server, &log, &what, &expected);
        assert!(
            server.objects(FLINK_PLURAL, FLINK_NAMESPACE).len() < 3 || *verb == "update",
            "{what}: no leader, no writes:\n{log}"
        );
    }
}

// --- (c) `apply.create_namespaces: true` needs the ClusterRole of the comment.

#[test]
fn creating_a_namespace_needs_the_documented_cluster_role() {
    let env = env();
    let server = FakeApiServer::start();
    server.register_flink();
    server.register_jobs();
    server.register_events();
    let env = Env {
        server,
        kubeconfig: env.kubeconfig.clone(),
        dir: env.dir,
    };
    std::fs::write(&env.kubeconfig, env.server.kubeconfig_yaml()).expect("kubeconfig");
    env.write(
        "flink-gitops.yaml",
        "cluster: c1\ndocker_registry: registry.example:443\napply: {create_namespaces: true}\n",
    );
    let run = env.run("apply", &[]);
    assert_ne!(run.code, 0, "{}", output(&run));
    let expected = "namespaces \"paasta-flinks\" is forbidden: User \"system:serviceaccount:flink-gitops:flink-gitops\" cannot get resource \"namespaces\" in API group \"\" in the namespace \"paasta-flinks\"";
    assert_refused(
        &env.server,
        &output(&run),
        "without the ClusterRole",
        expected,
    );

    env.server
        .set_rbac(Rbac::shipped().with(Rbac::namespaces_addon()));
    let denied_before = env.server.denied().len();
    let run = env.run("apply", &[]);
    assert_eq!(run.code, 0, "{}", output(&run));
    assert!(
        run.stdout.contains("created namespace paasta-flinks"),
        "{}",
        run.stdout
    );
    assert_eq!(env.server.objects(FLINK_PLURAL, FLINK_NAMESPACE).len(), 3);
    assert_eq!(
        env.server.denied().len(),
        denied_before,
        "{:#?}",
        env.server.denied()
    );
}

// --- Outside the shipped identity: `status` is run by people.

/// `flink-gitops status` as the ServiceAccount cannot list Pods (nor
/// Events): deploy/rbac.yaml grants neither, so the command is for people
/// with their own credentials; run as the ServiceAccount it says so.
#[test]
fn status_as_the_service_account_cannot_list_pods() {
    let env = env();
    env.apply();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
        .arg("status")
        .args([
            "--config",
            support::scenario::path_str(&env.path("flink-gitops.yaml")),
        ])
        .args(["--kubeconfig", support::scenario::path_str(&env.kubeconfig)])
        .args([
            "--service",
            "alpha",
            "--instance",
            "main",
            "--cluster",
            "c1",
        ])
        .env_remove("KUBECONFIG")
        .env_remove("FLINK_GITOPS_SOA_DIR")
        .env("NO_COLOR", "1")
        .output()
        .expect("run flink-gitops status");
    let seen = output_of(&output);
    assert!(
        seen.contains(&denial("list", "pods", "", FLINK_NAMESPACE)),
        "{seen}"
    );
}

fn output_of(output: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
