//! Adversarial tests: ordinary or hostile events that made flink-gitops
//! stop, signal, mark or delete a Flink object that soa-configs still wants,
//! or prune when it could not be sure. Each drives the real binary
//! (`apply --prune`, or the daemon) against the fake API server; each failed
//! before its fix, and the comment on each says why the action is wrong.

mod support;

use serde_json::{Value as Json, json};
use std::time::Duration;
use support::daemon_process::{PATIENCE, daemon_server, serial, wait_for};
use support::fake_apiserver::{FLINK_NAMESPACE, FakeApiServer, Fault, job_complete};
use support::observe::*;
use support::scenario::{
    ALPHA, Env, Run, SHA_A, SHA_B, WITHOUT_CANARY, config_with, deployments, write_file,
    write_soa_configs,
};

/// No mark, no stop signal, no shutdown Job, no DELETE.
fn assert_nothing_pruned(server: &FakeApiServer, run: &Run, context: &str) {
    assert_eq!(
        orphan_marks(server),
        Vec::<String>::new(),
        "{context}: an object soa-configs still wants was marked orphaned\n{}",
        run.text()
    );
    assert_eq!(
        stop_signals(server),
        Vec::<String>::new(),
        "{context}: a stop signal was written\n{}",
        run.text()
    );
    assert_eq!(
        job_creates(server),
        0,
        "{context}: a shutdown Job was created\n{}",
        run.text()
    );
    assert!(
        deletes(server).is_empty(),
        "{context}: deleted {:?}\n{}",
        deletes(server),
        run.text()
    );
}

/// Eight more services with one instance each, so that the mass-prune
/// guard's fraction (25% of 11 managed objects = 2) lets two prunes
/// through, as it would in any real cluster with more than a handful of
/// Flink clusters.
fn add_bystanders(env: &Env) {
    for i in 0..8 {
        let service = format!("bystander{i}");
        env.write(
            &format!("soa/{service}/flink-c1.yaml"),
            "main: {job_type: stateless}\n",
        );
        env.write(
            &format!("soa/{service}/deployments.json"),
            &deployments(&service, &[("main", "c1.main", SHA_B)]),
        );
    }
}

// ---------------------------------------------------------------------------
// 1. Identity is only used for rendered objects: a case-only rename of a
//    service folder whose instances do not render (skipped or failed) prunes
//    them.
// ---------------------------------------------------------------------------

/// `alpha` is renamed `Alpha` (a case-only rename, which the docs promise
/// "updates the object and never prunes it"). `deployments.json` is not
/// regenerated in the same commit (it is written by the deploy pipeline, so
/// its `controls` still say `alpha:c1.main`): both instances of `Alpha` are
/// *skipped* ("not deployed yet"). The docs say an instance that is only
/// skipped is never an orphan, and the objects `alpha-main`/`alpha-canary`
/// are exactly the names `Alpha`'s instances render.
///
/// Observed: the plan's orphan test compares the live labels
/// (`alpha`, `main`) with the skipped entries (`Alpha`, `main`) byte for
/// byte, finds no match, and deletes both running Flink clusters.
#[test]
fn a_case_only_rename_with_a_stale_deployments_json_prunes_nothing() {
    let env = Env::new();
    add_bystanders(&env);
    env.write(
        "flink-gitops.yaml",
        &config_with("prune: {mode: delete, grace: 0s}"),
    );
    env.apply();
    std::fs::rename(env.path("soa/alpha"), env.path("soa/Alpha")).expect("rename");
    env.server.clear_requests();
    let run = env.prune();
    assert!(
        run.stdout.contains("skip"),
        "Alpha's instances are skipped: {}",
        run.text()
    );
    assert_nothing_pruned(
        &env.server,
        &run,
        "case-only rename, stale deployments.json",
    );
    assert!(
        env.server
            .object("flinks", FLINK_NAMESPACE, "alpha-main")
            .is_some()
    );
    assert!(
        env.server
            .object("flinks", FLINK_NAMESPACE, "alpha-canary")
            .is_some()
    );
}

/// The same rename, with `deployments.json` regenerated, in a commit that
/// also breaks one instance (a date in its spec: the instance *fails*,
/// "fails alone"). The docs: "Never an orphan: ... an instance that is
/// only skipped or failed". `Alpha.main` still renders the name
/// `alpha-main`.
///
/// Observed: `alpha-main` (labels `alpha`/`main`) is an orphan, because the
/// failed entry is `Alpha`/`main`, and it is deleted.
#[test]
fn a_case_only_rename_with_a_failing_instance_prunes_nothing() {
    let env = Env::new();
    env.write(
        "flink-gitops.yaml",
        &config_with("prune: {mode: delete, grace: 0s}"),
    );
    env.apply();
    std::fs::rename(env.path("soa/alpha"), env.path("soa/Alpha")).expect("rename");
    env.write(
        "soa/Alpha/deployments.json",
        &deployments(
            "Alpha",
            &[("main", "c1.main", SHA_A), ("canary", "prod.canary", SHA_A)],
        ),
    );
    // A date is not hashable: `Alpha.main` fails alone.
    env.write(
        "soa/Alpha/flink-c1.yaml",
        &ALPHA.replace(
            "  checkpoint_interval_ms: 60000\n",
            "  checkpoint_interval_ms: 60000\n  paused_until: 2026-01-01\n",
        ),
    );
    env.server.clear_requests();
    let run = env.prune();
    assert!(
        run.stderr.contains("Alpha") || run.stdout.contains("failed"),
        "Alpha.main fails: {}",
        run.text()
    );
    assert_nothing_pruned(&env.server, &run, "case-only rename, failing instance");
    assert!(
        env.server
            .object("flinks", FLINK_NAMESPACE, "alpha-main")
            .is_some()
    );
}

// ---------------------------------------------------------------------------
// 2. Unknown services are matched by the label's exact spelling: a service
//    that failed to load under its new spelling cannot block the objects it
//    renders.
// ---------------------------------------------------------------------------

/// `alpha` is renamed `Alpha` in a commit whose `flink-c1.yaml` is broken
/// (invalid YAML): `Alpha` is *unknown*, and "no later stage may treat its
/// instances as removed". Its objects are `alpha-main` and `alpha-canary`
/// (the same names, labelled `alpha`), so which instances `Alpha` wants is
/// exactly what cannot be known.
///
/// Observed: `unknown_services` is looked up with the label `alpha`, which
/// is not there (the unknown service is `Alpha`), so both objects are
/// orphans and are deleted: a prune on doubt.
#[test]
fn a_service_renamed_by_case_into_a_broken_file_prunes_nothing() {
    let env = Env::new();
    add_bystanders(&env);
    env.write(
        "flink-gitops.yaml",
        &config_with("prune: {mode: delete, grace: 0s}"),
    );
    env.apply();
    std::fs::rename(env.path("soa/alpha"), env.path("soa/Alpha")).expect("rename");
    env.write(
        "soa/Alpha/deployments.json",
        &deployments(
            "Alpha",
            &[("main", "c1.main", SHA_A), ("canary", "prod.canary", SHA_A)],
        ),
    );
    env.write(
        "soa/Alpha/flink-c1.yaml",
        &format!("{ALPHA}broken: [unclosed\n"),
    );
    env.server.clear_requests();
    let run = env.prune();
    assert!(
        run.stderr.contains("invalid YAML"),
        "Alpha is unknown: {}",
        run.text()
    );
    assert_nothing_pruned(&env.server, &run, "renamed into a broken file");
    assert!(
        env.server
            .object("flinks", FLINK_NAMESPACE, "alpha-main")
            .is_some()
    );
}

// ---------------------------------------------------------------------------
// 3. Selections (`--service`, `--instance`) and the daemon's incremental
//    scope keep live objects by label, so an object that another service
//    renders (identity before labels) becomes an orphan of the selection.
// ---------------------------------------------------------------------------

/// `payments` had the instance `fraud-scorer`: the object
/// `payments-fraud-scorer`. The team moves it into its own service
/// `payments-fraud` as instance `scorer`: the very same object name. A full
/// `apply --prune` plans it by identity (an update that relabels it), as
/// the docs promise.
fn split_a_service(env: &Env) {
    env.write(
        "soa/payments/flink-c1.yaml",
        "main: {job_type: stateless}\nfraud-scorer: {job_type: stateful}\n",
    );
    env.write(
        "soa/payments/deployments.json",
        &deployments(
            "payments",
            &[
                ("main", "c1.main", SHA_B),
                ("fraud-scorer", "c1.fraud-scorer", SHA_B),
            ],
        ),
    );
}

fn move_the_instance(env: &Env) {
    env.write(
        "soa/payments/flink-c1.yaml",
        "main: {job_type: stateless}\n",
    );
    env.write(
        "soa/payments/deployments.json",
        &deployments("payments", &[("main", "c1.main", SHA_B)]),
    );
    env.write(
        "soa/payments-fraud/flink-c1.yaml",
        "scorer: {job_type: stateful}\n",
    );
    env.write(
        "soa/payments-fraud/deployments.json",
        &deployments("payments-fraud", &[("scorer", "c1.scorer", SHA_B)]),
    );
}

/// After the move, `apply --prune --service payments` ("Only this
/// service"): the selection renders only `payments`, but keeps every live
/// object *labelled* `payments`, including `payments-fraud-scorer`, which
/// `payments-fraud.scorer` renders. soa-configs wants that object (a full
/// run updates it); the selection must leave it alone.
///
/// Observed: it is an orphan of the selection and is deleted.
#[test]
fn apply_prune_for_one_service_never_prunes_an_object_another_service_renders() {
    let env = Env::new();
    env.write(
        "flink-gitops.yaml",
        &config_with("prune: {mode: delete, grace: 0s}"),
    );
    split_a_service(&env);
    env.apply();
    assert!(
        env.server
            .object("flinks", FLINK_NAMESPACE, "payments-fraud-scorer")
            .is_some()
    );
    move_the_instance(&env);
    // What a full run would do: one update, no orphan.
    let diff = env.run("diff", &[]);
    assert!(
        diff.stdout.contains("0 orphaned")
            && diff.stdout.contains("(payments-fraud.scorer): update"),
        "a full plan relabels payments-fraud-scorer: {}",
        diff.text()
    );
    env.server.clear_requests();
    let run = env.run("apply", &["--prune", "--service", "payments"]);
    assert_nothing_pruned(&env.server, &run, "--service payments");
    assert!(
        env.server
            .object("flinks", FLINK_NAMESPACE, "payments-fraud-scorer")
            .is_some()
    );
}

/// The same move, with `apply --prune --instance fraud-scorer`: no instance
/// of that name is left (nothing renders), and every live object *labelled*
/// `fraud-scorer` is kept for the plan, so `payments-fraud-scorer`, which
/// `payments-fraud.scorer` renders, is pruned.
#[test]
fn apply_prune_for_one_instance_name_never_prunes_an_object_another_instance_renders() {
    let env = Env::new();
    env.write(
        "flink-gitops.yaml",
        &config_with("prune: {mode: delete, grace: 0s}"),
    );
    split_a_service(&env);
    env.apply();
    move_the_instance(&env);
    env.server.clear_requests();
    let run = env.run("apply", &["--prune", "--instance", "fraud-scorer"]);
    assert_nothing_pruned(&env.server, &run, "--instance fraud-scorer");
    assert!(
        env.server
            .object("flinks", FLINK_NAMESPACE, "payments-fraud-scorer")
            .is_some()
    );
}

/// The daemon, directory source: the move done the careful way, in two
/// steps. First `payments-fraud/scorer` is added (while `payments` still
/// has `fraud-scorer`, both render one object: both fail, nothing is
/// written). Then `fraud-scorer` is removed from `payments`. The second
/// change touches only `payments`, so the incremental cycle plans
/// `payments` alone and keeps live objects labelled `payments`:
/// `payments-fraud-scorer` is an orphan there, although the whole tree
/// renders it (`payments-fraud.scorer`, no collision any more).
///
/// Observed: the stop signal and a shutdown Job for `payments-fraud-scorer`
/// (it is then only relabelled and the prune cancelled at the next full
/// cycle, after its jobs were stopped with a savepoint; with
/// `prune.mode: delete` it is deleted).
#[test]
fn an_incremental_cycle_never_prunes_an_object_another_service_renders() {
    let _serial = serial();
    let server = daemon_server();
    let soa = tempfile::tempdir().expect("soa");
    write_soa_configs(soa.path());
    let write = |relative: &str, text: &str| write_file(&soa.path().join(relative), text);
    write(
        "payments/flink-c1.yaml",
        "main: {job_type: stateless}\nfraud-scorer: {job_type: stateful}\n",
    );
    write(
        "payments/deployments.json",
        &deployments(
            "payments",
            &[
                ("main", "c1.main", SHA_B),
                ("fraud-scorer", "c1.fraud-scorer", SHA_B),
            ],
        ),
    );
    for i in 0..4 {
        let service = format!("bystander{i}");
        write(
            &format!("{service}/flink-c1.yaml"),
            "main: {job_type: stateless}\n",
        );
        write(
            &format!("{service}/deployments.json"),
            &deployments(&service, &[("main", "c1.main", SHA_B)]),
        );
    }
    let daemon = start(
        &server,
        &format!(
            "source: {{dir: '{}', poll_interval: 1h, debounce: 200ms}}",
            soa.path().display()
        ),
        "",
    );
    wait_for("the first apply", PATIENCE, || names(&server).len() == 9);
    // Step 1: the new service.
    write(
        "payments-fraud/deployments.json",
        &deployments("payments-fraud", &[("scorer", "c1.scorer", SHA_B)]),
    );
    write(
        "payments-fraud/flink-c1.yaml",
        "scorer: {job_type: stateful}\n",
    );
    wait_for("payments-fraud planned", PATIENCE, || {
        daemon.status()["instances"]
            .as_array()
            .is_some_and(|i| i.iter().any(|e| e["service"] == "payments-fraud"))
    });
    std::thread::sleep(Duration::from_millis(500));
    server.clear_requests();
    // Step 2: the old instance goes.
    write("payments/flink-c1.yaml", "main: {job_type: stateless}\n");
    write(
        "payments/deployments.json",
        &deployments("payments", &[("main", "c1.main", SHA_B)]),
    );
    std::thread::sleep(Duration::from_secs(3));
    let run = Run {
        code: 0,
        stdout: daemon.status().to_string(),
        stderr: daemon.log(),
    };
    assert_nothing_pruned(&server, &run, "incremental cycle");
    assert!(
        annotations(&server, "payments-fraud-scorer")
            .get(REQUESTED_AT)
            .is_none()
    );
}

// ---------------------------------------------------------------------------
// 4. A cancelled prune whose Job could not be deleted leaves the old Job
//    behind; a later prune adopts it and deletes on its stale "Complete".
// ---------------------------------------------------------------------------

/// 1. `canary` is removed: stop signal and shutdown Job `alpha-canary-shutdown`.
/// 2. The Job stops the jobs with a savepoint and completes.
/// 3. Before the next run, `canary` is back in git: the run applies it
///    (`desired_state: running`, the jobs start again), drops the signal's
///    annotations, then fails to delete the Job (a 500 through every retry
///    of one run: an API server hiccup). Nothing records that the cancel
///    is unfinished: the next runs never delete that Job.
/// 4. Days later `canary` is removed for good: the signal is written, the
///    Job create answers AlreadyExists, which "is adopted".
/// 5. The next run sees the adopted Job `Complete` and deletes the resource.
///
/// The delete rests on a savepoint taken before the cluster was started
/// again: everything since step 3 is lost. A Job is proof of a savepoint
/// only if it was created for this prune (after `prune-requested-at`, owned
/// by this object).
#[test]
fn a_stale_shutdown_job_is_never_taken_for_this_prunes_savepoint() {
    let env = Env::new();
    env.apply();
    let job = "alpha-canary-shutdown";
    // 1.
    env.write("soa/alpha/flink-c1.yaml", WITHOUT_CANARY);
    let run = env.prune();
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(jobs(&env.server).contains(&job.to_owned()));
    // 2.
    env.server
        .set_job_status(FLINK_NAMESPACE, job, job_complete());
    // 3.
    env.write("soa/alpha/flink-c1.yaml", ALPHA);
    env.server.inject(
        Fault::status(500)
            .method("DELETE")
            .path(&format!("/jobs/{job}"))
            .times(3),
    );
    let run = env.prune();
    assert_ne!(
        run.code,
        0,
        "the failed Job delete is reported: {}",
        run.text()
    );
    assert_eq!(
        annotations(&env.server, "alpha-canary")["paasta.yelp.com/desired_state"],
        "running"
    );
    let again = env.prune();
    assert_eq!(again.code, 0, "{}", again.text());
    // 4.
    env.write("soa/alpha/flink-c1.yaml", WITHOUT_CANARY);
    let run = env.prune();
    assert_eq!(run.code, 0, "{}", run.text());
    // 5.
    env.server.clear_requests();
    let run = env.prune();
    assert!(
        deletes(&env.server).is_empty(),
        "alpha-canary was deleted on the strength of the Job of a cancelled prune \
         (its savepoint predates the restart):\n{:?}\n{}",
        deletes(&env.server),
        run.text()
    );
}

// ---------------------------------------------------------------------------
// 5. The orphan mark survives the instance's return when it comes back
//    skipped or failed, so the next momentary absence skips the grace.
// ---------------------------------------------------------------------------

/// `prune.grace` exists for "a file caught half-written": an editor that
/// truncates, pauses and writes. The grace "counts from the mark", and the
/// mark is dropped when the instance comes back, but only when it comes
/// back *rendered*.
///
/// 1. `canary` is removed: marked `orphaned-since`.
/// 2. It is re-added in a new deploy group not deployed yet: *skipped*,
///    known, no orphan; the mark stays on the object.
/// 3. Time passes (longer than the grace).
/// 4. An editor saves `alpha/flink-c1.yaml` (truncate, pause, write): a run
///    in that moment sees no instance. `alpha-main` is only marked, as the
///    grace promises; `alpha-canary` is signalled to stop at once, its
///    grace counted from the stale mark of step 1.
#[test]
fn a_mark_left_by_an_earlier_removal_never_skips_the_grace() {
    let env = Env::new();
    env.write("flink-gitops.yaml", &config_with("prune: {grace: 3s}"));
    env.apply();
    // 1.
    env.write("soa/alpha/flink-c1.yaml", WITHOUT_CANARY);
    let run = env.prune();
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(
        annotations(&env.server, "alpha-canary")
            .get(ORPHANED_SINCE)
            .is_some()
    );
    // 2.
    env.write(
        "soa/alpha/flink-c1.yaml",
        &ALPHA.replace("deploy_group: prod.canary", "deploy_group: prod.canary2"),
    );
    let run = env.prune();
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(run.stdout.contains("skip"), "{}", run.stdout);
    // 3.
    std::thread::sleep(Duration::from_secs(4));
    // 4.
    env.write("soa/alpha/flink-c1.yaml", "");
    env.server.clear_requests();
    let run = env.prune();
    assert_eq!(
        stop_signals(&env.server),
        Vec::<String>::new(),
        "alpha-canary was signalled the first time it was seen orphaned since it came back:\n{}",
        run.text()
    );
}

// ---------------------------------------------------------------------------
// 6. The default shutdown Job reports success when it finds no job in the
//    state RUNNING, although a job that is restarting has state that no
//    savepoint has saved.
// ---------------------------------------------------------------------------

/// Runs the built-in shutdown script against a fake JobManager whose
/// `/jobs/overview` lists `jobs`; returns its exit code, the stop requests
/// it made, and its output.
fn run_shutdown_script(jobs: Json) -> (i32, usize, String) {
    use axum::routing::{get, post};
    use std::sync::{Arc, Mutex};
    let template = flink_gitops::render::shutdown_job::default_template().expect("template");
    let script = template
        .pointer("/spec/template/spec/containers/0/command/2")
        .and_then(Json::as_str)
        .expect("script")
        .to_owned();
    let stops = Arc::new(Mutex::new(0usize));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    let overview = json!({ "jobs": jobs });
    let counter = stops.clone();
    let app = axum::Router::new()
        .route(
            "/jobs/overview",
            get(move || {
                let overview = overview.clone();
                async move { axum::Json(overview) }
            }),
        )
        .route(
            "/jobs/{jid}/stop",
            post(move || {
                let counter = counter.clone();
                async move {
                    *counter.lock().expect("lock") += 1;
                    axum::Json(json!({"request-id": "t"}))
                }
            }),
        )
        .route(
            "/jobs/{jid}/savepoints/{trigger}",
            get(|| async {
                axum::Json(
                    json!({"status": {"id": "COMPLETED"}, "operation": {"location": "s3://sp/x"}}),
                )
            }),
        );
    runtime.spawn(async move { axum::serve(listener, app).await });
    let output = std::process::Command::new("python3")
        .args(["-c", &script])
        .env("FLINK_GITOPS_DASHBOARD_URL", format!("http://{address}/"))
        .env("FLINK_GITOPS_SAVEPOINT_PATH", "s3://savepoints/svc/")
        // A job that never settles is given up on at this deadline.
        .env("FLINK_GITOPS_STOP_TIMEOUT_SECONDS", "3")
        .output()
        .expect("python3 runs the shutdown script");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stops = *stops.lock().expect("lock");
    (output.status.code().unwrap_or(-1), stops, text)
}

/// The Job completes ("exit 0") when `/jobs/overview` shows no job in the
/// state `RUNNING`, and a Complete Job is what makes flink-gitops DELETE the
/// resource. A streaming job that is `RESTARTING` (a TaskManager lost, a
/// failed checkpoint: routine in production), `INITIALIZING`/`CREATED`
/// (just (re)submitted) or `FAILING` is not `RUNNING` for that instant: the
/// script stops nothing, prints "0 running job(s)", exits 0, and the
/// resource is deleted without any savepoint. The docs promise "the
/// resource is only deleted once every job's state is safe". Only a job
/// in a terminal state (FINISHED, CANCELED, FAILED) may be skipped; any
/// other must be waited for or fail the Job.
#[test]
fn the_shutdown_job_never_succeeds_while_a_job_is_restarting() {
    for state in ["RESTARTING", "INITIALIZING", "CREATED", "FAILING"] {
        let (code, stops, output) = run_shutdown_script(json!([
            {"jid": "j1", "name": "sessionize", "state": state}
        ]));
        assert_ne!(
            code, 0,
            "a job in state {state} was neither stopped with a savepoint ({stops} stops) \
             nor reported, and the Job succeeded (the resource would be deleted):\n{output}"
        );
    }
}

// ---------------------------------------------------------------------------
// 7. An orphan mark that the prune manager does not own is trusted, but
//    never dropped.
// ---------------------------------------------------------------------------

/// `alpha-canary` is wanted, and carries an `orphaned-since` mark written by
/// another field manager: restored from a backup (Velero), moved between
/// clusters with `kubectl get -o yaml | kubectl apply`, or written by hand.
/// The plan sees the mark on a wanted object and "drops" it with an empty
/// apply under the prune manager, which releases only what the prune
/// manager owns: the mark stays, run after run ("pending prune dropped"
/// each time). The first moment the instance looks absent (an editor's
/// truncate-then-write, exactly what the grace is for), the grace is
/// counted from that foreign, years-old mark and the stop signal is
/// written at once.
#[test]
fn a_foreign_orphan_mark_never_skips_the_grace() {
    let env = Env::new();
    env.write("flink-gitops.yaml", &config_with("prune: {grace: 2m}"));
    env.apply();
    env.server.apply_as(
        "kubectl-client-side-apply",
        json!({"apiVersion": "yelp.com/v1alpha1", "kind": "Flink",
               "metadata": {"name": "alpha-canary", "namespace": FLINK_NAMESPACE,
                            "annotations": {ORPHANED_SINCE: "2024-01-01T00:00:00Z"}}}),
    );
    let run = env.prune();
    assert_eq!(run.code, 0, "{}", run.text());
    let again = env.prune();
    assert_eq!(again.code, 0, "{}", again.text());
    // The editor's save: the file is empty for a moment.
    env.write("soa/alpha/flink-c1.yaml", "");
    env.server.clear_requests();
    let run = env.prune();
    assert_eq!(
        stop_signals(&env.server),
        Vec::<String>::new(),
        "alpha-canary was signalled at the first instant it looked absent \
         (mark still on the object: {:?}):\n{}",
        annotations(&env.server, "alpha-canary").get(ORPHANED_SINCE),
        run.text()
    );
}

/// The same with a foreign `prune-requested-at` (a backup taken while an
/// earlier prune was in progress, restored after that prune was
/// cancelled). On the wanted object it cannot be dropped by the prune
/// manager's empty apply, so every run "cancels the prune" again. The
/// first instant the instance looks absent, the object counts as a prune
/// already in progress: no grace, not counted by the mass-prune guard,
/// and in `prune.mode: delete` it is deleted at once while its sibling,
/// absent for the same instant, is only marked.
#[test]
fn a_foreign_prune_request_never_skips_the_grace_or_the_guard() {
    let env = Env::new();
    env.write(
        "flink-gitops.yaml",
        &config_with("prune: {mode: delete, grace: 2m}"),
    );
    env.apply();
    env.server.apply_as(
        "kubectl-client-side-apply",
        json!({"apiVersion": "yelp.com/v1alpha1", "kind": "Flink",
               "metadata": {"name": "alpha-canary", "namespace": FLINK_NAMESPACE,
                            "annotations": {REQUESTED_AT: "2024-01-01T00:00:00Z"}}}),
    );
    let run = env.prune();
    assert_eq!(run.code, 0, "{}", run.text());
    env.write("soa/alpha/flink-c1.yaml", "");
    env.server.clear_requests();
    let run = env.prune();
    assert!(
        deletes(&env.server).is_empty(),
        "deleted at the first instant it looked absent: {:?}\n{}",
        deletes(&env.server),
        run.text()
    );
}

// ---------------------------------------------------------------------------
// 8. The orphan mark and the stop signal are server-side applies without a
//    uid precondition: on an object deleted since the LIST, they create it.
// ---------------------------------------------------------------------------

/// `alpha-canary` is an orphan. While `apply --prune` runs, between its
/// LIST and the stop signal, someone deletes the object (PaaSTA's own
/// `cleanup_kubernetes_cr` during a takeover, or `kubectl delete`). The
/// stop signal is a forced server-side apply of
/// `{metadata: {name, namespace, annotations}}` with no uid precondition,
/// and an apply to a missing object creates it: a new Flink object
/// `alpha-canary` appears with `desired_state: stop`, no PaaSTA labels and
/// no spec. It is invisible to every later plan (no labels), and if
/// `alpha.canary` is ever added back, its create is refused forever
/// ("exists without PaaSTA's service/instance labels"). The delete of
/// the resource carries a uid precondition; the signal and mark must too
/// (`metadata.uid` in the apply body makes a stale apply fail with 409 and
/// never create).
#[test]
fn a_stop_signal_never_recreates_an_object_deleted_meanwhile() {
    let env = Env::new();
    env.apply();
    env.write("soa/alpha/flink-c1.yaml", WITHOUT_CANARY);
    env.server.inject(
        Fault::delay(Duration::from_secs(2))
            .method("PATCH")
            .path("/flinks/alpha-canary"),
    );
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
        .arg("apply")
        .arg("--prune")
        .args(["--soa-dir", env.path("soa").to_str().expect("utf-8")])
        .args([
            "--config",
            env.path("flink-gitops.yaml").to_str().expect("utf-8"),
        ])
        .args(["--kubeconfig", env.kubeconfig.to_str().expect("utf-8")])
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run flink-gitops");
    wait_for("the stop signal in flight", PATIENCE, || {
        env.server.pending_faults() == 0
    });
    assert!(
        env.server
            .remove_object("flinks", FLINK_NAMESPACE, "alpha-canary")
    );
    let output = child.wait_with_output().expect("wait");
    let run = Run::from_output(output);
    let recreated = env.server.object("flinks", FLINK_NAMESPACE, "alpha-canary");
    assert!(
        recreated.is_none(),
        "the stop signal created a new object after the old one was deleted:\n{}\n{}",
        serde_json::to_string_pretty(&recreated).unwrap_or_default(),
        run.text()
    );
}
