//! Never stop or delete a Flink cluster that soa-configs still wants: one
//! test per way an ordinary event used to do it (issue 14), each through the
//! real binary (`apply --prune`) or the daemon (`run`) against the fake API
//! server, asserting no DELETE, no stop signal and no shutdown Job for what
//! is still wanted, and the diagnostic that says why.

mod support;

use serde_json::{Value as Json, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::daemon_process::{
    PATIENCE, daemon_server as server, flink as object, serial, wait_for,
};
use support::fake_apiserver::{FLINK_NAMESPACE, FakeApiServer, Fault};
use support::git_repo::GitRepo as Repo;
use support::observe::*;
use support::scenario::{
    ALPHA, Env, Run, SHA_A, SHA_B, WITHOUT_CANARY, config_with, deployments, path_str,
    summary_count, write_file, write_soa_configs,
};

/// Nothing of the prune protocol happened: no stop signal, no shutdown Job,
/// no DELETE.
fn assert_nothing_pruned(server: &FakeApiServer, context: &str) {
    assert_eq!(
        stop_signals(server),
        Vec::<String>::new(),
        "{context}: a stop signal was written"
    );
    assert_eq!(
        job_creates(server),
        0,
        "{context}: a shutdown Job was created"
    );
    assert!(
        deletes(server).is_empty(),
        "{context}: {:?}",
        deletes(server)
    );
}

// ---------------------------------------------------------------------------
// 1. A case-only rename of a service folder
// ---------------------------------------------------------------------------

#[test]
fn a_case_only_rename_of_a_service_folder_prunes_nothing() {
    for mode in ["delete", "shutdown-job"] {
        let env = Env::new();
        env.write(
            "flink-gitops.yaml",
            &config_with(&format!("prune: {{mode: {mode}, grace: 0s}}")),
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
        env.server.clear_requests();
        let run = env.prune();
        assert_eq!(run.code, 0, "{mode}: {}", run.text());
        assert_nothing_pruned(&env.server, mode);
        assert_eq!(summary_count(&run.stdout, "orphaned"), 0, "{}", run.stdout);
        for name in ["alpha-main", "alpha-canary"] {
            let live = env.live(name);
            assert_eq!(
                live["metadata"]["labels"]["paasta.yelp.com/service"], "Alpha",
                "{mode}: the labels follow the folder"
            );
            assert_eq!(
                live["metadata"]["annotations"]["paasta.yelp.com/desired_state"],
                "running"
            );
        }
        let again = env.prune();
        assert_eq!(
            summary_count(&again.stdout, "updated"),
            0,
            "{}",
            again.stdout
        );
    }
}

// ---------------------------------------------------------------------------
// 2. Two configured kinds of one CRD
// ---------------------------------------------------------------------------

#[test]
fn two_kinds_of_one_crd_list_once_and_prune_an_orphan_once() {
    let env = Env::new();
    env.write(
        "flink-gitops.yaml",
        &config_with("prune: {grace: 0s}\nkinds: [{file_prefix: flink}, {file_prefix: flinkeks}]"),
    );
    env.write(
        "soa/beta_svc/flinkeks-c1.yaml",
        "eks: {job_type: stateless}\n",
    );
    env.write(
        "soa/beta_svc/deployments.json",
        &deployments(
            "beta_svc",
            &[("main", "c1.main", SHA_B), ("eks", "c1.eks", SHA_B)],
        ),
    );
    env.apply();
    assert_eq!(
        env.live("beta--svc-eks")["metadata"]["labels"]["paasta.yelp.com/eks"],
        "True"
    );
    env.write("soa/alpha/flink-c1.yaml", WITHOUT_CANARY);
    env.server.clear_requests();
    let run = env.prune();
    assert_eq!(run.code, 0, "{}", run.text());
    assert_eq!(env.lists(), 1, "one LIST for the CRD both kinds share");
    assert_eq!(summary_count(&run.stdout, "orphaned"), 1, "{}", run.stdout);
    assert_eq!(summary_count(&run.stdout, "unchanged"), 3, "{}", run.stdout);
    assert_eq!(stop_signals(&env.server).len(), 1);
    assert_eq!(job_creates(&env.server), 1);
    assert_eq!(
        run.stdout
            .matches("Flink/paasta-flinks/alpha-canary")
            .count(),
        1,
        "{}",
        run.stdout
    );
}

// ---------------------------------------------------------------------------
// 3. A kind removed from the configuration
// ---------------------------------------------------------------------------

#[test]
fn objects_of_a_kind_no_longer_configured_are_unmanaged_never_pruned() {
    let env = Env::new();
    env.write(
        "flink-gitops.yaml",
        &config_with("prune: {mode: delete, grace: 0s}"),
    );
    env.apply();
    // Written for `flinkeks-c1.yaml` when that kind was configured.
    env.server.insert_as(
        "flink-gitops",
        json!({"apiVersion": "yelp.com/v1alpha1", "kind": "Flink",
               "metadata": {"name": "alpha-eksjob", "namespace": FLINK_NAMESPACE,
                            "labels": {"paasta.yelp.com/service": "alpha",
                                       "paasta.yelp.com/instance": "eksjob",
                                       "paasta.yelp.com/cluster": "c1",
                                       "paasta.yelp.com/eks": "True"}},
               "spec": {"job_type": "stateless"}}),
    );
    let version = resource_version(&env.server, "alpha-eksjob");
    env.server.clear_requests();
    let run = env.prune();
    assert_eq!(run.code, 0, "{}", run.text());
    assert_nothing_pruned(&env.server, "unmanaged");
    assert_eq!(resource_version(&env.server, "alpha-eksjob"), version);
    assert_eq!(summary_count(&run.stdout, "unmanaged"), 1, "{}", run.stdout);
    assert_eq!(summary_count(&run.stdout, "orphaned"), 0, "{}", run.stdout);
    let diff = env.run("diff", &["--output", "json"]);
    let document: Json = serde_json::from_str(&diff.stdout).expect("json");
    assert_eq!(
        document["unmanaged"][0]["subject"], "Flink/paasta-flinks/alpha-eksjob",
        "{}",
        diff.stdout
    );
    assert!(
        document["unmanaged"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("never pruned"))
    );
}

// ---------------------------------------------------------------------------
// 4. What is not a regular file, in a directory and in git
// ---------------------------------------------------------------------------

/// `apply --prune` that fails the test if it runs longer than `limit`
/// (a FIFO must never block the reader).
fn prune_within(env: &Env, limit: Duration) -> Run {
    let soa = env.path("soa");
    let config = env.path("flink-gitops.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
        .arg("apply")
        .args(["--soa-dir", path_str(&soa), "--config", path_str(&config)])
        .args(["--kubeconfig", path_str(&env.kubeconfig), "--prune"])
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run flink-gitops");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("apply --prune still runs after {limit:?}: a read blocked");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Run::from_output(child.wait_with_output().expect("output"))
}

fn make_fifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success());
}

#[test]
fn what_is_not_a_regular_file_makes_its_service_unknown_in_a_directory() {
    type Break = fn(&Path);
    let cases: [(&str, &str, Break); 5] = [
        ("flink-c1.yaml", "a folder, not a file", |p| {
            std::fs::create_dir(p).expect("mkdir");
        }),
        ("flink-c1.yaml", "a FIFO, not a file", make_fifo),
        ("deployments.json", "a FIFO, not a file", make_fifo),
        ("service.yaml", "a folder, not a file", |p| {
            std::fs::create_dir(p).expect("mkdir");
        }),
        (
            "autotuned_defaults/flink-c1.yaml",
            "a folder, not a file",
            |p| {
                std::fs::create_dir_all(p).expect("mkdir");
            },
        ),
    ];
    for (file, reason, break_it) in cases {
        let env = Env::new();
        env.write(
            "flink-gitops.yaml",
            &config_with("autotuned_defaults: true\nprune: {mode: delete, grace: 0s}"),
        );
        env.apply();
        let path = env.path("soa/alpha").join(file);
        let _ = std::fs::remove_file(&path);
        break_it(&path);
        env.server.clear_requests();
        let run = prune_within(&env, Duration::from_secs(20));
        assert_eq!(run.code, 1, "{file}: {}", run.text());
        assert_nothing_pruned(&env.server, file);
        assert!(
            writes_to(&env.server, "alpha-").is_empty(),
            "{file}: {:?}",
            writes_to(&env.server, "alpha-")
        );
        assert!(
            run.stderr.contains(&format!("alpha/{file}")) && run.stderr.contains(reason),
            "{file}: {}",
            run.stderr
        );
        assert!(run.stdout.contains("blocked"), "{file}: {}", run.stdout);
        assert_eq!(
            env.live("alpha-canary")["metadata"]["labels"]["paasta.yelp.com/instance"],
            "canary"
        );
    }
}

#[test]
fn a_folder_where_an_instance_file_should_be_in_git_prunes_nothing() {
    let _serial = serial();
    let server = server();
    let repo = Repo::new();
    let cache = tempfile::tempdir().expect("cache");
    let daemon = start_applied(&server, &repo.source(cache.path(), "300ms", ""), "");
    let versions: Vec<(String, String)> = ["alpha-main", "alpha-canary"]
        .iter()
        .map(|n| ((*n).to_owned(), resource_version(&server, n)))
        .collect();
    repo.git(&["rm", "-q", "alpha/flink-c1.yaml"]);
    repo.write("alpha/flink-c1.yaml/notes.txt", "a folder now\n");
    let head = repo.commit("a folder where the instance file was");
    daemon.wait_revision(&head);
    wait_for("alpha reported blocked", PATIENCE, || {
        daemon
            .instance_action("Flink/paasta-flinks/alpha-canary")
            .as_deref()
            == Some("blocked")
    });
    for (name, version) in &versions {
        assert_untouched(&server, name, version);
    }
    assert_nothing_pruned(&server, "git folder");
    let status = daemon.status();
    assert!(
        status.to_string().contains("a folder, not a file"),
        "{status}"
    );
}

// ---------------------------------------------------------------------------
// 5. Force-push protection across a restart
// ---------------------------------------------------------------------------

#[test]
fn a_force_push_refused_while_running_is_refused_after_a_restart() {
    let _serial = serial();
    let server = server();
    let repo = Repo::new();
    let good = repo.head();
    let cache = tempfile::tempdir().expect("cache");
    let source = repo.source(cache.path(), "300ms", "");
    let daemon = start_applied(&server, &source, "");
    let versions = all_versions(&server);
    let rewritten = force_push_unrelated_history(&repo);
    wait_for("the force-push refused", PATIENCE, || {
        daemon.status()["source"]["healthy"] == json!(false)
    });
    daemon.terminate();

    // An OOM kill, a node drain, a rollout: a new process, the same cache.
    let restarted = support::daemon_process::Daemon::start(
        &server,
        &source,
        support::daemon_process::NO_LEADER_ELECTION,
        "",
    );
    wait_for("the force-push refused again", PATIENCE, || {
        restarted.status()["source"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("force-push") && e.contains(&rewritten))
    });
    let cycles = restarted.cycles();
    restarted.wait_cycles(cycles, 2.0);
    assert_eq!(
        restarted.status()["revision"],
        json!(good),
        "the last accepted commit"
    );
    for (name, version) in &versions {
        assert_untouched(&server, name, version);
    }
    assert_nothing_pruned(&server, "restart");
}

// ---------------------------------------------------------------------------
// 6. A non-atomic rewrite in a directory source, and the grace period
// ---------------------------------------------------------------------------

#[test]
fn a_file_truncated_then_rewritten_is_only_marked_pending() {
    let _serial = serial();
    let server = server();
    let soa = tempfile::tempdir().expect("soa");
    write_soa_configs(soa.path());
    let daemon = start(
        &server,
        &format!(
            "source: {{dir: '{}', poll_interval: 1h, debounce: 200ms}}",
            soa.path().display()
        ),
        // The default grace period (2m).
        "prune: {mode: shutdown-job}",
    );
    wait_for("the first apply", PATIENCE, || names(&server).len() == 3);
    let file = soa.path().join("beta_svc/flink-c1.yaml");
    let content = std::fs::read_to_string(&file).expect("read");
    // An editor that truncates, pauses, and writes the same content.
    std::fs::write(&file, "").expect("truncate");
    wait_for("the pending prune marked", PATIENCE, || {
        annotations(&server, "beta--svc-main")
            .get(ORPHANED_SINCE)
            .is_some()
    });
    let pending = daemon.status()["prunes"].to_string();
    assert!(pending.contains("pending-prune"), "{pending}");
    assert!(pending.contains("grace_left_seconds"), "{pending}");
    std::fs::write(&file, &content).expect("write");
    wait_for("the mark dropped", PATIENCE, || {
        annotations(&server, "beta--svc-main")
            .get(ORPHANED_SINCE)
            .is_none()
    });
    assert_nothing_pruned(&server, "rewrite");
    assert_eq!(
        annotations(&server, "beta--svc-main")["paasta.yelp.com/desired_state"],
        "running"
    );
    assert_eq!(names(&server).len(), 3);
}

#[test]
fn the_grace_period_counts_from_the_mark_across_one_shot_runs() {
    let env = Env::new();
    env.write("flink-gitops.yaml", &config_with("prune: {grace: 2m}"));
    env.apply();
    env.write("soa/alpha/flink-c1.yaml", WITHOUT_CANARY);
    let first = env.prune();
    assert_eq!(first.code, 0, "{}", first.text());
    assert!(first.stdout.contains("pending-prune"), "{}", first.stdout);
    assert!(first.stdout.contains("pruned in 2m"), "{}", first.stdout);
    let since = env.live("alpha-canary")["metadata"]["annotations"][ORPHANED_SINCE].clone();
    assert!(since.is_string(), "the mark is written");
    assert_nothing_pruned(&env.server, "first run");

    env.server.clear_requests();
    let second = env.prune();
    assert!(second.stdout.contains("pending-prune"), "{}", second.stdout);
    assert!(env.server.writes().is_empty(), "{:?}", env.server.writes());
    assert_eq!(
        env.live("alpha-canary")["metadata"]["annotations"][ORPHANED_SINCE],
        since,
        "the grace keeps counting from the first mark"
    );

    // Back in git: the mark goes, nothing else is written.
    env.write("soa/alpha/flink-c1.yaml", ALPHA);
    env.server.clear_requests();
    let back = env.prune();
    assert_eq!(back.code, 0, "{}", back.text());
    let annotations = &env.live("alpha-canary")["metadata"]["annotations"];
    assert!(annotations.get(ORPHANED_SINCE).is_none(), "{annotations}");
    let writes: Vec<Option<String>> = env
        .server
        .writes()
        .iter()
        .map(|r| r.field_manager().map(str::to_owned))
        .collect();
    assert_eq!(
        writes,
        [Some(PRUNE_MANAGER.to_owned())],
        "only the mark is dropped"
    );

    // Gone again, with a mark older than the grace period: the prune starts.
    env.write("soa/alpha/flink-c1.yaml", WITHOUT_CANARY);
    env.server.apply_as(
        PRUNE_MANAGER,
        json!({"apiVersion": "yelp.com/v1alpha1", "kind": "Flink",
               "metadata": {"name": "alpha-canary", "namespace": FLINK_NAMESPACE,
                            "annotations": {ORPHANED_SINCE: "2020-01-01T00:00:00Z"}}}),
    );
    let due = env.prune();
    assert_eq!(due.code, 0, "{}", due.text());
    assert_eq!(stop_signals(&env.server).len(), 1, "{}", due.stdout);
    assert_eq!(job_creates(&env.server), 1);
}

// ---------------------------------------------------------------------------
// 7. The mass-prune guard after a push
// ---------------------------------------------------------------------------

#[test]
fn an_incremental_cycle_counts_every_managed_object_for_the_guard() {
    let _serial = serial();
    let server = server();
    let soa = tempfile::tempdir().expect("soa");
    write_soa_configs(soa.path());
    for service in ["s1", "s2", "s3", "s4", "s5", "s6"] {
        write_file(
            &soa.path().join(format!("{service}/flink-c1.yaml")),
            "main: {job_type: stateless}\n",
        );
        write_file(
            &soa.path().join(format!("{service}/deployments.json")),
            &deployments(service, &[("main", "c1.main", SHA_B)]),
        );
    }
    let _daemon = start(
        &server,
        &format!(
            "source: {{dir: '{}', poll_interval: 1h, debounce: 200ms}}",
            soa.path().display()
        ),
        "",
    );
    wait_for("the first apply", PATIENCE, || names(&server).len() == 9);
    // Two of nine objects (22%, under the 25% guard) leave with their service.
    std::fs::remove_dir_all(soa.path().join("alpha")).expect("rm");
    for name in ["alpha-main", "alpha-canary"] {
        wait_signalled(&server, name);
    }
    assert_eq!(job_creates(&server), 2);
    assert!(deletes(&server).is_empty());
}

// ---------------------------------------------------------------------------
// 8. Another cluster's file
// ---------------------------------------------------------------------------

#[test]
fn another_clusters_file_never_blocks_this_cluster() {
    let _serial = serial();
    let server = server();
    let soa = tempfile::tempdir().expect("soa");
    let outside = tempfile::tempdir().expect("outside");
    write_soa_configs(soa.path());
    write_file(&outside.path().join("x.yaml"), "main: {}\n");
    // Over the size limit, and a symlink out of the root: both refused, both
    // for cluster `otherdev` only.
    write_file(
        &soa.path().join("alpha/flink-otherdev.yaml"),
        &"# x\n".repeat(1024),
    );
    std::os::unix::fs::symlink(
        outside.path().join("x.yaml"),
        soa.path().join("beta_svc/flink-otherdev.yaml"),
    )
    .expect("ln");
    let limits = "limits: {max_document_bytes: 2048}";
    let daemon = start(
        &server,
        &format!(
            "source: {{dir: '{}', poll_interval: 1h, debounce: 200ms}}",
            soa.path().display()
        ),
        limits,
    );
    wait_for("all three applied", PATIENCE, || names(&server).len() == 3);
    let status = daemon.status();
    assert!(
        !status["instances"].to_string().contains("blocked"),
        "{status}"
    );

    // The one-shot commands read the same way.
    let env = Env::new();
    std::fs::remove_dir_all(env.path("soa")).expect("rm");
    std::fs::rename(soa.path(), env.path("soa")).expect("mv");
    env.write(
        "flink-gitops.yaml",
        &config_with(&format!("prune: {{grace: 0s}}\n{limits}")),
    );
    let run = env.run("apply", &[]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert_eq!(summary_count(&run.stdout, "created"), 3, "{}", run.stdout);
}

// ---------------------------------------------------------------------------
// 9. An unreadable LIST reply
// ---------------------------------------------------------------------------

#[test]
fn an_unreadable_list_reply_fails_the_run_and_touches_nothing() {
    let env = Env::new();
    env.write(
        "flink-gitops.yaml",
        &config_with("prune: {mode: delete, grace: 0s}"),
    );
    env.apply();
    env.write("soa/alpha/flink-c1.yaml", WITHOUT_CANARY);
    env.server.clear_requests();
    env.server.inject(
        Fault::raw_ok("<html><body>proxy says hello</body></html>")
            .method("GET")
            .path("/flinks"),
    );
    let run = env.prune();
    assert_ne!(run.code, 0, "{}", run.text());
    assert!(
        run.stderr.contains("reply cannot be read"),
        "{}",
        run.stderr
    );
    assert!(env.server.writes().is_empty(), "{:?}", env.server.writes());
    assert!(
        env.server
            .object("flinks", FLINK_NAMESPACE, "alpha-canary")
            .is_some()
    );
    assert!(object(&env.server, "alpha-canary").is_some());
}

#[test]
fn a_force_push_is_refused_by_a_replica_that_starts_with_an_empty_cache() {
    let _serial = serial();
    let server = server();
    let repo = Repo::new();
    let good = repo.head();
    let first_cache = tempfile::tempdir().expect("cache");
    let leader = support::daemon_process::Daemon::start(
        &server,
        &repo.source(first_cache.path(), "300ms", ""),
        support::daemon_process::LEADER_ELECTION,
        "",
    );
    wait_for("the first apply", PATIENCE, || names(&server).len() == 3);
    wait_for("the accepted commit on the Lease", PATIENCE, || {
        server
            .object("leases", "flink-gitops", "flink-gitops")
            .is_some_and(|lease| {
                lease["metadata"]["annotations"]["flink-gitops/accepted-revision"] == json!(good)
            })
    });
    let versions = all_versions(&server);
    leader.terminate();
    let rewritten = force_push_unrelated_history(&repo);

    // The pod is rescheduled: a new process with an empty cache.
    let fresh_cache = tempfile::tempdir().expect("cache");
    let replica = support::daemon_process::Daemon::start(
        &server,
        &repo.source(fresh_cache.path(), "300ms", ""),
        support::daemon_process::LEADER_ELECTION,
        "",
    );
    wait_for("the force-push refused", PATIENCE, || {
        replica.status()["source"]["error"]
            .as_str()
            .is_some_and(|e| {
                e.contains("force-push") && e.contains(&rewritten) && e.contains(&good)
            })
    });
    std::thread::sleep(Duration::from_secs(2));
    for (name, version) in &versions {
        assert_untouched(&server, name, version);
    }
    assert_nothing_pruned(&server, "empty cache");
}

/// The bundled configuration keeps both kinds (`flink`, `flinkeks`, one
/// CRD): each object is listed once and counted once.
#[test]
fn the_bundled_fixtures_count_each_object_once() {
    let env = Env::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = std::fs::read_to_string(root.join("fixtures/flink-gitops.yaml")).expect("config");
    assert!(config.contains("file_prefix: flinkeks"), "{config}");
    env.write(
        "flink-gitops.yaml",
        &format!("{config}\nprune: {{grace: 0s}}\n"),
    );
    let fixtures = root.join("fixtures/soa-configs");
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
            .arg(args[0])
            .args(["--soa-dir", path_str(&fixtures)])
            .args(["--config", path_str(&env.path("flink-gitops.yaml"))])
            .args([
                "--kubeconfig",
                path_str(&env.kubeconfig),
                "--cluster",
                "norcal-devc",
            ])
            .args(&args[1..])
            .env_remove("KUBECONFIG")
            .output()
            .expect("run");
        Run::from_output(output)
    };
    let first = run(&["apply"]);
    assert_eq!(first.code, 0, "{}", first.text());
    let created = summary_count(&first.stdout, "created");
    assert!(created > 3, "{}", first.stdout);
    // An orphan of the eks kind, as an earlier revision left it.
    env.server.insert_as(
        "flink-gitops",
        json!({"apiVersion": "yelp.com/v1alpha1", "kind": "Flink",
               "metadata": {"name": "gone--svc-eks", "namespace": FLINK_NAMESPACE,
                            "labels": {"paasta.yelp.com/service": "gone_svc",
                                       "paasta.yelp.com/instance": "eks",
                                       "paasta.yelp.com/cluster": "norcal-devc",
                                       "paasta.yelp.com/eks": "True"}},
               "spec": {}}),
    );
    env.server.clear_requests();
    let second = run(&["apply", "--prune"]);
    assert_eq!(second.code, 0, "{}", second.text());
    assert_eq!(env.lists(), 1, "one LIST for the CRD both kinds share");
    assert_eq!(
        summary_count(&second.stdout, "unchanged"),
        created,
        "{}",
        second.stdout
    );
    assert_eq!(
        summary_count(&second.stdout, "orphaned"),
        1,
        "{}",
        second.stdout
    );
    let lines_naming = |text: &str| text.lines().filter(|l| l.contains("gone--svc-eks")).count();
    assert_eq!(lines_naming(&second.stdout), 1, "{}", second.stdout);
    assert_eq!(stop_signals(&env.server).len(), 1);
    assert_eq!(job_creates(&env.server), 1);
    let diff = run(&["diff", "--live", "kube"]);
    assert_eq!(lines_naming(&diff.stdout), 1, "{}", diff.text());
}
