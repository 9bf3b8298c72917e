//! The fault matrix (issue 8, point 4): one test per row, each injecting the
//! fault into the real binary (`apply`, or the `run` daemon) against the fake
//! API server and asserting that nothing is lost: live objects of whatever
//! could not be read are neither pruned nor touched, the rest is reconciled,
//! and the fault is reported.

mod support;

use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::daemon_process::{
    Daemon, PATIENCE, daemon_server as server, flink as object, sample, serial, wait_for,
};
use support::fake_apiserver::{FLINK_NAMESPACE, FakeApiServer, Fault, job_complete, job_running};
use support::git_repo::GitRepo as Repo;
use support::observe::*;
use support::scenario::{
    ALPHA, Env, Run, SHA_B, WITHOUT_CANARY, deployments, path_str, summary_count, write_file,
    write_soa_configs,
};

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// [`Env::new`] (`alpha` with main and canary, `beta_svc`) and three more
/// services with one instance each: five services, six instances.
fn five_services() -> Env {
    let env = Env::new();
    for service in ["gamma", "delta", "epsilon"] {
        env.write(
            &format!("soa/{service}/flink-c1.yaml"),
            "main: {job_type: stateless, parallelism: 1}\n",
        );
        env.write(
            &format!("soa/{service}/deployments.json"),
            &deployments(service, &[("main", "c1.main", SHA_B)]),
        );
    }
    env
}

// ---------------------------------------------------------------------------
// Row 1: invalid YAML in 2 of 5 services
// ---------------------------------------------------------------------------

#[test]
fn fault_invalid_yaml_in_two_of_five_services() {
    let env = five_services();
    env.apply();
    let before: BTreeMap<String, String> = ["beta--svc-main", "delta-main"]
        .iter()
        .map(|name| ((*name).to_owned(), resource_version(&env.server, name)))
        .collect();
    // Every service changes in git; two of them no longer parse.
    env.write(
        "soa/alpha/flink-c1.yaml",
        &ALPHA.replace("instances: 2", "instances: 3"),
    );
    env.write(
        "soa/gamma/flink-c1.yaml",
        "main: {job_type: stateless, parallelism: 3}\n",
    );
    env.write(
        "soa/epsilon/flink-c1.yaml",
        "main: {job_type: stateless, parallelism: 3}\n",
    );
    env.write(
        "soa/beta_svc/flink-c1.yaml",
        "main:\n  job_type: stateless\n  parallelism: [3, 4\n",
    );
    env.write(
        "soa/delta/flink-c1.yaml",
        "main:\n  job_type: stateless\n   parallelism: 3\n",
    );
    env.server.clear_requests();
    // The guard is lifted: only the unknown-service rule protects them.
    let run = env.run("apply", &["--prune", "--allow-mass-prune"]);
    // Exit 1: a service failed, everything else was done.
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    // Each broken file is named with its line and column.
    for (file, position, service) in [
        ("soa/beta_svc/flink-c1.yaml", ":4:1: ", "beta_svc"),
        ("soa/delta/flink-c1.yaml", ":3:15: ", "delta"),
    ] {
        let expected = format!(
            "{}{position}{service}: invalid YAML",
            path_str(&env.path(file))
        );
        assert!(
            run.stderr.contains(&expected),
            "no `{expected}` in:\n{}",
            run.stderr
        );
    }
    // The three good services are applied.
    assert_eq!(summary_count(&run.stdout, "updated"), 4, "{}", run.stdout);
    assert_eq!(summary_count(&run.stdout, "failed"), 2, "{}", run.stdout);
    assert_eq!(summary_count(&run.stdout, "orphaned"), 0, "{}", run.stdout);
    assert_eq!(
        env.live("alpha-main")["spec"]["taskmanager"]["instances"],
        json!(3)
    );
    assert_eq!(
        env.live("alpha-canary")["spec"]["taskmanager"]["instances"],
        json!(3)
    );
    assert_eq!(env.live("gamma-main")["spec"]["parallelism"], json!(3));
    assert_eq!(env.live("epsilon-main")["spec"]["parallelism"], json!(3));
    // The broken services' objects: not pruned, not signalled, not written.
    for (name, version) in &before {
        assert_untouched(&env.server, name, version);
        assert!(writes_to(&env.server, name).is_empty(), "{name}");
    }
    assert!(deletes(&env.server).is_empty());
    assert!(jobs(&env.server).is_empty());
    assert_eq!(names(&env.server).len(), 6);
}

// ---------------------------------------------------------------------------
// Row 2: a file truncated mid-write in the watched directory
// ---------------------------------------------------------------------------

#[test]
fn fault_file_truncated_mid_write_in_the_directory_source() {
    let _serial = serial();
    let server = server();
    let soa = tempfile::tempdir().expect("soa");
    let write = |relative: &str, text: &str| write_file(&soa.path().join(relative), text);
    write_soa_configs(soa.path());
    write("gamma/flink-c1.yaml", "main: {job_type: stateless}\n");
    let gamma_deployments = deployments("gamma", &[("main", "c1.main", SHA_B)]);
    write("gamma/deployments.json", &gamma_deployments);
    let daemon = start(
        &server,
        &format!(
            "source: {{dir: '{}', poll_interval: 1h, debounce: 300ms}}",
            soa.path().display()
        ),
        "",
    );
    wait_for("the first apply", PATIENCE, || names(&server).len() == 4);
    let versions: BTreeMap<&str, String> = ["alpha-main", "alpha-canary", "gamma-main"]
        .into_iter()
        .map(|name| (name, resource_version(&server, name)))
        .collect();

    // beta_svc changes; at the same moment two files are caught half-written:
    // alpha's instance file inside a flow mapping and a quoted string (its
    // prefix alone would parse as `main` only, so a reader that trusted it
    // would prune `canary`), and gamma's deployments.json inside a string.
    write(
        "beta_svc/flink-c1.yaml",
        "main: {job_type: stateless, parallelism: 5}\n",
    );
    write(
        "alpha/flink-c1.yaml",
        &format!("{WITHOUT_CANARY}canary: {{<<: *base, deploy_group: \"prod.can"),
    );
    write(
        "gamma/deployments.json",
        &gamma_deployments[..gamma_deployments.len() / 2],
    );
    wait_for("beta_svc reconciled", PATIENCE, || {
        object(&server, "beta--svc-main").is_some_and(|o| o["spec"]["parallelism"] == json!(5))
    });
    // Whichever cycles the watcher's events fall into, each instance of the
    // broken files is reported blocked (the status lists a cycle's services).
    let mut blocked = std::collections::BTreeSet::new();
    wait_for("alpha and gamma reported blocked", PATIENCE, || {
        for name in ["alpha-main", "alpha-canary", "gamma-main"] {
            let subject = format!("Flink/paasta-flinks/{name}");
            if daemon.instance_action(&subject).as_deref() == Some("blocked") {
                blocked.insert(name);
            }
        }
        blocked.len() == 3
    });
    for (name, version) in &versions {
        assert_untouched(&server, name, version);
    }
    assert!(jobs(&server).is_empty());
    assert!(deletes(&server).is_empty());

    // The write completes: the next event reconciles both services.
    write(
        "alpha/flink-c1.yaml",
        &ALPHA.replace("instances: 2", "instances: 4"),
    );
    write("gamma/deployments.json", &gamma_deployments);
    wait_for("alpha reconciled once whole", PATIENCE, || {
        ["alpha-main", "alpha-canary"].iter().all(|name| {
            object(&server, name).is_some_and(|o| o["spec"]["taskmanager"]["instances"] == json!(4))
        })
    });
    assert_eq!(
        resource_version(&server, "gamma-main"),
        versions["gamma-main"]
    );
    assert!(jobs(&server).is_empty());
    assert!(deletes(&server).is_empty());
    assert_eq!(names(&server).len(), 4);
}

// ---------------------------------------------------------------------------
// Row 3: git fetch failure after a good revision
// ---------------------------------------------------------------------------

/// The daemon on [`Repo::new`] after [`with_a_broken_remote`].
struct BrokenRemote {
    daemon: Daemon,
    server: FakeApiServer,
    repo: Repo,
    /// Where the remote was moved to.
    moved: PathBuf,
    /// `resourceVersion` of every Flink object after the first apply.
    versions: BTreeMap<String, String>,
    _cache: tempfile::TempDir,
}

impl BrokenRemote {
    /// The remote is back where it was.
    fn restore(&self) {
        std::fs::rename(&self.moved, self.repo.path()).expect("restore the remote");
    }
}

/// Starts the daemon on a new [`Repo`], waits for its first apply, breaks
/// the remote (its path disappears: a removed mount, a moved repository),
/// waits for two cycles with an orphan present, and checks that nothing was
/// lost.
fn with_a_broken_remote() -> BrokenRemote {
    let server = server();
    let repo = Repo::new();
    let cache = tempfile::tempdir().expect("cache");
    let good = repo.head();
    let daemon = start_applied(&server, &repo.source(cache.path(), "300ms", ""), "");
    let versions = all_versions(&server);

    let moved = repo.path().with_extension("moved");
    std::fs::rename(repo.path(), &moved).expect("remove the remote");
    wait_for("the source reported unhealthy", PATIENCE, || {
        daemon.status()["source"]["healthy"] == json!(false)
    });
    let status = daemon.status();
    let error = status["source"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("failed to fetch branch master"), "{status}");
    assert_eq!(status["revision"], json!(good), "the last good revision");
    assert!(daemon.metric("flink_gitops_errors_total", "category=\"source\"") >= 1.0);
    assert_eq!(daemon.get("/readyz").map(|(c, _)| c), Some(200));

    // An orphan appears while the source is broken: cycles go on with the
    // last good snapshot and see it, but prune nothing.
    insert_orphan(&server);
    let cycles = daemon.cycles();
    daemon.wait_cycles(cycles, 2.0);
    assert_eq!(
        daemon.metric("flink_gitops_objects", "action=\"orphaned\""),
        1.0
    );
    assert_eq!(daemon.status()["source"]["healthy"], json!(false));
    assert!(
        annotations(&server, "alpha-old")
            .get(REQUESTED_AT)
            .is_none()
    );
    for (name, version) in &versions {
        assert_untouched(&server, name, version);
    }
    assert!(jobs(&server).is_empty());
    assert!(deletes(&server).is_empty());
    BrokenRemote {
        daemon,
        server,
        repo,
        moved,
        versions,
        _cache: cache,
    }
}

#[test]
fn fault_git_fetch_failure_keeps_the_last_good_revision() {
    let _serial = serial();
    let broken = with_a_broken_remote();
    let (daemon, server, repo) = (&broken.daemon, &broken.server, &broken.repo);

    // The remote is back with a new commit: the source is healthy, beta's
    // change is applied, and only now is the orphan signalled (the control:
    // a healthy source does prune it).
    broken.restore();
    repo.write(
        "beta_svc/flink-c1.yaml",
        "main: {job_type: stateless, parallelism: 8}\n",
    );
    let fixed = repo.commit("beta: eight");
    wait_signalled(server, "alpha-old");
    // The status is published when the cycle ends, just after its writes.
    daemon.wait_revision(&fixed);
    assert_eq!(daemon.status()["source"]["healthy"], json!(true));
    assert_eq!(
        object(server, "beta--svc-main").expect("beta")["spec"]["parallelism"],
        json!(8)
    );
    assert!(deletes(server).is_empty(), "the Job has not completed");
    for name in ["alpha-main", "alpha-canary"] {
        assert_untouched(server, name, &broken.versions[name]);
    }
}

#[test]
fn fault_git_fetch_recovery_without_a_new_commit_reports_the_source_healthy() {
    let _serial = serial();
    let broken = with_a_broken_remote();
    let (daemon, server) = (&broken.daemon, &broken.server);

    // The same remote comes back, the branch where it was.
    broken.restore();
    wait_for("the source healthy again", PATIENCE, || {
        daemon.status()["source"]["healthy"] == json!(true)
    });
    assert_eq!(daemon.status()["source"]["error"], Json::Null);
    wait_signalled(server, "alpha-old");
}

// ---------------------------------------------------------------------------
// Row 4: force-push to an unrelated history
// ---------------------------------------------------------------------------

/// Replaces `master` with a root commit (no parent: an unrelated history)
/// in which `alpha.canary` is removed and `beta_svc` changed.

#[test]
fn fault_force_push_to_an_unrelated_history_is_refused() {
    let _serial = serial();
    let server = server();
    let repo = Repo::new();
    let good = repo.head();
    let cache = tempfile::tempdir().expect("cache");
    let daemon = start_applied(&server, &repo.source(cache.path(), "300ms", ""), "");
    let versions = all_versions(&server);

    let rewritten = force_push_unrelated_history(&repo);
    wait_for("the force-push refused", PATIENCE, || {
        daemon.status()["source"]["healthy"] == json!(false)
    });
    let cycles = daemon.cycles();
    daemon.wait_cycles(cycles, 2.0);
    let status = daemon.status();
    let error = status["source"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("force-push"), "{status}");
    assert!(error.contains(&rewritten), "{status}");
    assert!(error.contains(&good), "{status}");
    assert_eq!(status["revision"], json!(good), "the last good revision");
    assert!(daemon.log().contains("accept_force_push"));
    // Neither the removal of canary nor beta's change is taken from it.
    for (name, version) in &versions {
        assert_untouched(&server, name, version);
    }
    assert!(jobs(&server).is_empty());
    assert!(deletes(&server).is_empty());
}

#[test]
fn fault_force_push_accepted_by_configuration_follows_the_prune_rules() {
    let _serial = serial();
    let server = server();
    let repo = Repo::new();
    let cache = tempfile::tempdir().expect("cache");
    let daemon = start_applied(
        &server,
        &repo.source(cache.path(), "300ms", ", accept_force_push: true"),
        "",
    );
    let main_version = resource_version(&server, "alpha-main");

    let rewritten = force_push_unrelated_history(&repo);
    wait_for("the rewritten history applied", PATIENCE, || {
        object(&server, "beta--svc-main").is_some_and(|o| o["spec"]["parallelism"] == json!(6))
    });
    wait_signalled(&server, "alpha-canary");
    // The status is published when the cycle ends, just after its writes.
    daemon.wait_revision(&rewritten);
    assert_eq!(daemon.status()["source"]["healthy"], json!(true));
    // One orphan of three is within the guard: the protocol starts (stop
    // signal and shutdown Job), and nothing is deleted before the Job
    // completes.
    assert_eq!(jobs(&server), ["alpha-canary-shutdown"]);
    assert!(deletes(&server).is_empty());
    assert_eq!(names(&server).len(), 3);
    assert_untouched(&server, "alpha-main", &main_version);
}

// ---------------------------------------------------------------------------
// Row 5: an empty tree
// ---------------------------------------------------------------------------

#[test]
fn fault_empty_tree_prunes_nothing() {
    let env = Env::new();
    env.apply();
    let versions = all_versions(&env.server);
    // No service folder at all: even with the guard lifted, nothing goes.
    std::fs::remove_dir_all(env.path("soa/alpha")).expect("rm");
    std::fs::remove_dir_all(env.path("soa/beta_svc")).expect("rm");
    env.server.clear_requests();
    let run = env.run("apply", &["--prune", "--allow-mass-prune"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        env.server.writes().is_empty(),
        "{}\n{:?}",
        run.stdout,
        env.server.writes()
    );
    assert_eq!(all_versions(&env.server), versions);

    // Service folders whose files are all gone: their instances are
    // removed, which the mass-prune guard holds and reports.
    std::fs::create_dir_all(env.path("soa/alpha")).expect("mkdir");
    std::fs::create_dir_all(env.path("soa/beta_svc")).expect("mkdir");
    let run = env.run("apply", &["--prune"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("MassPruneBlocked: 3 new prunes exceed the guard"),
        "{}",
        run.stdout
    );
    // Held steps are not executed steps.
    assert!(
        run.stdout.contains("prune steps executed: 0\n"),
        "{}",
        run.stdout
    );
    assert!(env.server.writes().is_empty(), "{:?}", env.server.writes());
    assert_eq!(all_versions(&env.server), versions);
}

#[test]
fn fault_empty_tree_refusal_is_reported() {
    let env = Env::new();
    env.apply();
    let writes_before = env.server.writes().len();
    std::fs::remove_dir_all(env.path("soa/alpha")).expect("rm");
    std::fs::remove_dir_all(env.path("soa/beta_svc")).expect("rm");
    let run = env.run("apply", &["--prune", "--allow-mass-prune"]);
    assert_eq!(env.server.writes().len(), writes_before, "no write at all");
    let held = "PruneHeld: 3 orphaned objects are kept and nothing is pruned: \
                no service of soa-configs loaded (an empty tree, or every service failed)";
    assert!(
        run.stdout.contains(held),
        "the refusal to prune from an empty tree is not explained:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        !run.stdout.contains("prune steps executed"),
        "{}",
        run.stdout
    );
    let diff = env.run("diff", &["-o", "json"]);
    let document: Json = serde_json::from_str(&diff.stdout).expect("plan JSON");
    assert!(
        document["prunes"]["held"]
            .as_str()
            .is_some_and(|why| why.contains("an empty tree")),
        "{}",
        diff.stdout
    );
}

#[test]
fn fault_empty_git_tree_prunes_nothing() {
    let _serial = serial();
    let server = server();
    let repo = Repo::new();
    let cache = tempfile::tempdir().expect("cache");
    let daemon = start_applied(&server, &repo.source(cache.path(), "300ms", ""), "");
    let versions = all_versions(&server);
    let initial = repo.head();

    repo.git(&["rm", "-rq", "."]);
    let empty = repo.commit("remove everything");
    daemon.wait_revision(&empty);
    let cycles = daemon.cycles();
    daemon.wait_cycles(cycles, 2.0);
    // Every object is seen without an instance, and none is pruned.
    assert_eq!(
        daemon.metric("flink_gitops_objects", "action=\"orphaned\""),
        3.0
    );
    assert_eq!(daemon.status()["prunes"], json!([]));
    assert_eq!(all_versions(&server), versions);
    assert!(jobs(&server).is_empty());
    assert!(deletes(&server).is_empty());

    // The tree comes back: nothing to do, nothing was lost.
    repo.git(&["checkout", "-q", &initial, "--", "."]);
    let restored = repo.commit("restore everything");
    daemon.wait_revision(&restored);
    let cycles = daemon.cycles();
    daemon.wait_cycles(cycles, 1.0);
    assert_eq!(
        daemon.metric("flink_gitops_objects", "action=\"unchanged\""),
        3.0
    );
    assert_eq!(all_versions(&server), versions);
}

// ---------------------------------------------------------------------------
// Row 6: API 429 / 500 / dropped connections / 409 on some objects
// ---------------------------------------------------------------------------

/// A loopback proxy in front of the fake API server that answers each
/// request on its own upstream connection, and drops the connection
/// without an answer for the first `times` requests whose request line
/// contains every one of `needles`: what a request timing out or a reset
/// looks like to the client (its 30 s read timeout is not waited for).
struct DropProxy {
    addr: SocketAddr,
    dropped: Arc<AtomicUsize>,
}

impl DropProxy {
    fn start(upstream: SocketAddr, needles: &'static [&'static str], times: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let dropped = Arc::new(AtomicUsize::new(0));
        let counter = dropped.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let _ = Self::serve(client, upstream, needles, times, &counter);
                });
            }
        });
        DropProxy { addr, dropped }
    }

    fn serve(
        mut client: TcpStream,
        upstream: SocketAddr,
        needles: &[&str],
        times: usize,
        dropped: &AtomicUsize,
    ) -> std::io::Result<()> {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            let n = client.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..n]);
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buffer.len() < head_end + 4 + length {
            let n = client.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
        let request_line = head.lines().next().unwrap_or_default();
        if needles.iter().all(|n| request_line.contains(n))
            && dropped
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| {
                    (d < times).then_some(d + 1)
                })
                .is_ok()
        {
            return client.shutdown(std::net::Shutdown::Both);
        }
        // One request per connection: the answer carries `connection: close`.
        let mut forwarded: String = head
            .lines()
            .filter(|l| {
                !l.split(':')
                    .next()
                    .is_some_and(|n| n.eq_ignore_ascii_case("connection"))
            })
            .map(|l| format!("{l}\r\n"))
            .collect();
        forwarded.push_str("Connection: close\r\n\r\n");
        let mut server = TcpStream::connect(upstream)?;
        server.write_all(forwarded.as_bytes())?;
        server.write_all(&buffer[head_end + 4..])?;
        let mut response = Vec::new();
        server.read_to_end(&mut response)?;
        client.write_all(&response)?;
        client.shutdown(std::net::Shutdown::Both)
    }
}

#[test]
fn fault_api_errors_are_retried_and_reported_and_nothing_is_deleted() {
    let env = five_services();
    env.apply();
    let versions = all_versions(&env.server);
    // Every instance changes in git.
    env.write(
        "soa/alpha/flink-c1.yaml",
        &ALPHA.replace("instances: 2", "instances: 3"),
    );
    for service in ["beta_svc", "gamma", "delta", "epsilon"] {
        env.write(
            &format!("soa/{service}/flink-c1.yaml"),
            "main: {job_type: stateless, parallelism: 3}\n",
        );
    }
    // An object only the cluster has, so that `--prune` has work to do.
    insert_orphan(&env.server);
    env.server.clear_requests();

    // Transient: the LIST once, alpha-main throttled (Retry-After), alpha-canary
    // two 500s, beta's connection dropped twice. Lasting: gamma a 409 (not
    // retried), delta 503 on every attempt.
    env.server
        .inject(Fault::status(500).method("GET").path("/flinks").times(1));
    env.server.inject(
        Fault::status(429)
            .method("PATCH")
            .path("/alpha-main")
            .retry_after(1)
            .times(1),
    );
    env.server.inject(
        Fault::status(500)
            .method("PATCH")
            .path("/alpha-canary")
            .times(2),
    );
    env.server.inject(
        Fault::status(409)
            .method("PATCH")
            .path("/gamma-main")
            .times(1),
    );
    env.server.inject(
        Fault::status(503)
            .method("PATCH")
            .path("/delta-main")
            .times(100),
    );
    let proxy = DropProxy::start(env.server.addr(), &["PATCH", "/beta--svc-main"], 2);
    let kubeconfig = env.path("proxy-kubeconfig");
    std::fs::write(
        &kubeconfig,
        env.server
            .kubeconfig_yaml()
            .replace(&env.server.url(), &format!("http://{}", proxy.addr)),
    )
    .expect("kubeconfig");

    let run = apply_with(&env, &kubeconfig, &["--prune"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    // Retried and applied.
    assert_eq!(proxy.dropped.load(Ordering::SeqCst), 2);
    assert_eq!(patch_attempts(&env.server, "alpha-main"), 2);
    assert_eq!(patch_attempts(&env.server, "alpha-canary"), 3);
    assert_eq!(
        patch_attempts(&env.server, "beta--svc-main"),
        1,
        "after two drops"
    );
    for name in ["alpha-main", "alpha-canary"] {
        assert_eq!(
            env.live(name)["spec"]["taskmanager"]["instances"],
            json!(3),
            "{name}"
        );
    }
    for name in ["beta--svc-main", "epsilon-main"] {
        assert_eq!(env.live(name)["spec"]["parallelism"], json!(3), "{name}");
    }
    // A conflict is not retried; a lasting 5xx gives up after retry_attempts.
    assert_eq!(patch_attempts(&env.server, "gamma-main"), 1);
    assert_eq!(patch_attempts(&env.server, "delta-main"), 3);
    assert_eq!(summary_count(&run.stdout, "updated"), 4, "{}", run.stdout);
    assert_eq!(summary_count(&run.stdout, "failed"), 2, "{}", run.stdout);
    for (subject, code) in [
        ("Flink/paasta-flinks/gamma-main", "409"),
        ("Flink/paasta-flinks/delta-main", "503"),
    ] {
        assert!(
            run.stderr
                .lines()
                .any(|l| l.starts_with("error: ") && l.contains(subject) && l.contains(code)),
            "{subject} {code} not reported:\n{}",
            run.stderr
        );
    }
    for name in ["gamma-main", "delta-main"] {
        assert_eq!(
            resource_version(&env.server, name),
            versions[name],
            "{name}"
        );
    }
    // Nothing is deleted; the one orphan gets its stop signal only.
    assert!(deletes(&env.server).is_empty());
    assert_eq!(names(&env.server).len(), 7);
    assert!(
        annotations(&env.server, "alpha-old")
            .get(REQUESTED_AT)
            .is_some()
    );

    // The next run, without faults, converges.
    env.server.clear_faults();
    env.server.clear_requests();
    let run = env.run("apply", &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let mut patched = env.patches();
    patched.sort();
    assert_eq!(patched, ["delta-main", "gamma-main"]);
    assert!(deletes(&env.server).is_empty());
}

/// `apply --soa-dir <env>/soa` with another kubeconfig.
#[test]
fn fault_a_request_past_its_timeout_is_retried() {
    let env = Env::new();
    env.write(
        "flink-gitops.yaml",
        "cluster: c1\ndocker_registry: registry.example:443\napply: {retry_attempts: 3, request_timeout: 300ms}\nprune: {grace: 0s}\n",
    );
    // The API server holds the first PATCH of alpha-main far past the timeout.
    env.server.inject(
        Fault::delay(Duration::from_secs(20))
            .method("PATCH")
            .path("/alpha-main")
            .times(1),
    );
    let run = env.run("apply", &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // Waiting out the held response would have made it one attempt.
    assert_eq!(
        patch_attempts(&env.server, "alpha-main"),
        2,
        "timed out, then retried"
    );
    assert_eq!(patch_attempts(&env.server, "beta--svc-main"), 1);
    assert_eq!(
        names(&env.server),
        ["alpha-canary", "alpha-main", "beta--svc-main"]
    );
    assert!(deletes(&env.server).is_empty());
}

fn apply_with(env: &Env, kubeconfig: &Path, extra: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
        .args(["apply", "--soa-dir", path_str(&env.path("soa"))])
        .args(["--config", path_str(&env.path("flink-gitops.yaml"))])
        .args(["--kubeconfig", path_str(kubeconfig)])
        .args(extra)
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .output()
        .expect("run flink-gitops");
    Run::from_output(output)
}

// ---------------------------------------------------------------------------
// Row 7: the reconciler killed between the stop signal and the delete
// ---------------------------------------------------------------------------

/// Starts `apply --prune` on `env`, waits until the fake API server has
/// received a request with `method` whose path contains `path_contains`, then kills the
/// process (SIGKILL) while that request is held (20 s, then a 503) by a
/// delay fault.
fn kill_during(env: &Env, method: &str, path_contains: &str) {
    env.server.inject(
        Fault::status(503)
            .method(method)
            .path(path_contains)
            .with_delay(Duration::from_secs(20)),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
        .args(["apply", "--prune", "--soa-dir", path_str(&env.path("soa"))])
        .args(["--config", path_str(&env.path("flink-gitops.yaml"))])
        .args(["--kubeconfig", path_str(&env.kubeconfig)])
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start apply");
    wait_for(&format!("{method} {path_contains}"), PATIENCE, || {
        env.server.count(method, path_contains) > 0
    });
    child.kill().expect("kill");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "killed");
}

fn requested_at(env: &Env) -> Option<String> {
    annotations(&env.server, "alpha-canary")
        .get(REQUESTED_AT)
        .and_then(Json::as_str)
        .map(str::to_owned)
}

#[test]
fn fault_killed_between_stop_signal_and_delete_resumes_the_prune() {
    let env = Env::new();
    env.apply();
    env.write("soa/alpha/flink-c1.yaml", WITHOUT_CANARY);
    env.server.clear_requests();

    // Killed right after the stop signal, while the Job is being created
    // (the create is held, then fails: the Job never exists).
    kill_during(&env, "POST", "/jobs");
    assert_eq!(signals(&env.server), 1);
    let signalled_at = requested_at(&env).expect("the stop signal was written");
    assert_eq!(
        annotations(&env.server, "alpha-canary")["paasta.yelp.com/desired_state"],
        "stop"
    );
    assert!(jobs(&env.server).is_empty());
    assert!(deletes(&env.server).is_empty());

    // The next run creates the Job, without a second stop signal.
    env.server.clear_requests();
    let run = env.run("apply", &["--prune"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(signals(&env.server), 0, "no second stop signal");
    assert_eq!(job_creates(&env.server), 1);
    assert_eq!(jobs(&env.server), ["alpha-canary-shutdown"]);
    assert_eq!(requested_at(&env), Some(signalled_at.clone()));
    assert!(deletes(&env.server).is_empty());

    // Runs while the Job runs: no write at all.
    env.server
        .set_job_status(FLINK_NAMESPACE, "alpha-canary-shutdown", job_running());
    env.server.clear_requests();
    let run = env.run("apply", &["--prune"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("waiting"), "{}", run.stdout);
    assert!(env.server.writes().is_empty(), "{:?}", env.server.writes());

    // The Job completes; killed during the DELETE (held, then failed).
    env.server
        .set_job_status(FLINK_NAMESPACE, "alpha-canary-shutdown", job_complete());
    env.server.clear_requests();
    kill_during(&env, "DELETE", "/flinks/alpha-canary");
    assert!(object(&env.server, "alpha-canary").is_some());
    assert_eq!(signals(&env.server), 0);
    assert_eq!(job_creates(&env.server), 0);

    // The next run deletes it (that object, by uid), once, and nothing else.
    let uid = env.live("alpha-canary")["metadata"]["uid"].clone();
    env.server.clear_requests();
    let run = env.run("apply", &["--prune"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let delete: Vec<_> = env
        .server
        .writes()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(delete.len(), 1, "{delete:?}");
    assert!(delete[0].path.ends_with("/flinks/alpha-canary"));
    assert_eq!(delete[0].body["preconditions"]["uid"], uid);
    assert_eq!(signals(&env.server), 0, "no second stop signal");
    assert_eq!(job_creates(&env.server), 0);
    assert!(object(&env.server, "alpha-canary").is_none());
    assert!(jobs(&env.server).is_empty(), "the Job is collected with it");
    assert_eq!(names(&env.server), ["alpha-main", "beta--svc-main"]);
}

// ---------------------------------------------------------------------------
// Row 8: a deployment-webhook receiver down for a long time
// ---------------------------------------------------------------------------

/// `http://127.0.0.1:<port>/events` where nothing listens: every attempt is
/// refused.
fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{address}/events")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_webhook_receiver_down_bounded_queue_counts_drops() {
    use flink_gitops::config::report_settings::{NotificationSettings, WebhookSettings};
    use flink_gitops::report::events::{DeploymentEvent, EventKind};
    use flink_gitops::report::sinks::{Notifier, NotifierOptions};

    let settings = NotificationSettings {
        webhooks: vec![WebhookSettings {
            url: closed_port_url(),
            secret_file: None,
            events: EventKind::ALL.to_vec(),
            timeout: Duration::from_secs(1),
            max_attempts: 10,
        }],
        queue_size: 4,
        ..NotificationSettings::default()
    };
    // The daemon's own backoff (1 s doubling to 2 min): the one event in
    // flight keeps its worker busy for minutes.
    let notifier = Notifier::start(&settings, NotifierOptions::default()).expect("notifier");
    let started = Instant::now();
    for n in 0..1000 {
        notifier.send(
            DeploymentEvent::new(EventKind::Applied, "c1", "0123456789abcdef")
                .instance("alpha", "main", "Flink/paasta-flinks/alpha-main")
                .message(format!("event {n}")),
        );
    }
    let sending = started.elapsed();
    // Never waits on the receiver: one attempt's backoff alone is up to 1 s.
    assert!(sending < Duration::from_secs(1), "sending took {sending:?}");
    // The queue (4) and at most the one event in flight are kept; every
    // other event is dropped and counted.
    let dropped = notifier.dropped();
    assert!((995..=996).contains(&dropped), "dropped {dropped}");
    assert_eq!(notifier.delivered(), 0);
    assert_eq!(notifier.failed(), 0, "still retrying the first one");
    // Shutdown gives up at its deadline instead of waiting for the receiver.
    let stopping = Instant::now();
    assert!(!notifier.shutdown(Duration::from_millis(100)).await);
    assert!(stopping.elapsed() < Duration::from_secs(5));
}

#[test]
fn fault_webhook_receiver_down_never_slows_the_daemon() {
    let _serial = serial();
    let server = server();
    let repo = Repo::new();
    let cache = tempfile::tempdir().expect("cache");
    let daemon = start_applied(
        &server,
        &repo.source(cache.path(), "300ms", ""),
        &format!(
            "notifications: {{queue_size: 1, webhooks: [{{url: '{}', max_attempts: 10}}]}}",
            closed_port_url()
        ),
    );
    // Three `applied` events for a queue of one behind a stuck delivery.
    wait_for("the drop logged", PATIENCE, || {
        daemon
            .log()
            .contains("dropping notification events: the queue is full")
    });
    // Commits keep being applied while the receiver stays down.
    for parallelism in [3, 4, 5] {
        repo.write(
            "beta_svc/flink-c1.yaml",
            &format!("main: {{job_type: stateless, parallelism: {parallelism}}}\n"),
        );
        let head = repo.commit(&format!("beta: {parallelism}"));
        wait_for(&format!("parallelism {parallelism}"), PATIENCE, || {
            object(&server, "beta--svc-main")
                .is_some_and(|o| o["spec"]["parallelism"] == json!(parallelism))
        });
        // The cycle ends (and is counted) just after its writes.
        daemon.wait_revision(&head);
    }
    // No cycle waited on the receiver: each delivery attempt is followed
    // by up to seconds of backoff, ten attempts per event.
    let metrics = daemon.metrics();
    let cycles = sample(
        &metrics,
        "flink_gitops_reconcile_duration_seconds_count",
        "",
    );
    let fast = sample(
        &metrics,
        "flink_gitops_reconcile_duration_seconds_bucket",
        "le=\"2.5\"",
    );
    assert!(cycles >= 4.0, "{metrics}");
    assert_eq!(fast, cycles, "a cycle took over 2.5 s");
    // The drops are counted where a platform engineer looks.
    let dropped = sample(
        &metrics,
        "flink_gitops_notifications_total",
        "result=\"dropped\"",
    );
    assert!(dropped >= 2.0, "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            "flink_gitops_notifications_total",
            "result=\"delivered\""
        ),
        0.0
    );
    assert!(deletes(&server).is_empty());
}

// ---------------------------------------------------------------------------
// Row 9: push hooks with a bad, missing or malformed signature, oversized,
// replayed
// ---------------------------------------------------------------------------

/// A refused hook: what it is, its headers, its body, the expected status.
type Refused<'a> = (&'a str, Vec<(&'a str, String)>, Vec<u8>, u16);

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Polls for `window` that `check` stays true (a negative: something must
/// not happen).
fn holds_for(what: &str, window: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + window;
    while Instant::now() < deadline {
        assert!(check(), "{what} no longer holds");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn fault_push_hooks_refused_or_replayed_trigger_nothing_stale() {
    let _serial = serial();
    let server = server();
    let repo = Repo::new();
    let cache = tempfile::tempdir().expect("cache");
    let secrets = tempfile::tempdir().expect("secrets");
    let github = secrets.path().join("github");
    let generic = secrets.path().join("generic");
    std::fs::write(&github, "gh-secret\n").expect("secret");
    std::fs::write(&generic, "generic-secret\n").expect("secret");
    let daemon = start_applied(
        &server,
        &repo.source(cache.path(), "1h", ""),
        &format!(
            "hooks: {{github_secret_file: '{}', generic_secret_file: '{}', max_body_bytes: 1024}}",
            github.display(),
            generic.display()
        ),
    );
    let cycles = daemon.cycles();
    let beta = resource_version(&server, "beta--svc-main");

    repo.write(
        "beta_svc/flink-c1.yaml",
        "main: {job_type: stateless, parallelism: 9}\n",
    );
    let pushed = repo.commit("beta: nine");
    let body = format!(r#"{{"ref": "refs/heads/master", "after": "{pushed}"}}"#).into_bytes();
    let delivery = (
        "X-GitHub-Delivery",
        "72d3162e-cc78-11e3-81ab-4c9367dc0958".to_owned(),
    );
    let refused: [Refused; 5] = [
        (
            "signed with another secret",
            vec![
                ("X-Hub-Signature-256", sign("not-the-secret", &body)),
                delivery.clone(),
            ],
            body.clone(),
            401,
        ),
        (
            "signed over another body",
            vec![("X-Hub-Signature-256", sign("gh-secret", b"{}"))],
            body.clone(),
            401,
        ),
        ("no signature", vec![delivery.clone()], body.clone(), 401),
        (
            "malformed generic signature",
            vec![("X-Flink-Gitops-Signature", "md5=00".to_owned())],
            body.clone(),
            401,
        ),
        (
            "over max_body_bytes, validly signed",
            vec![("X-Hub-Signature-256", sign("gh-secret", &[b' '; 4096]))],
            vec![b' '; 4096],
            413,
        ),
    ];
    for (what, headers, body, status) in &refused {
        assert_eq!(daemon.post_hook(headers, body), Some(*status), "{what}");
    }
    for (labels, n) in [
        ("provider=\"github\",result=\"rejected\"", 2.0),
        ("provider=\"unknown\",result=\"rejected\"", 1.0),
        ("provider=\"generic\",result=\"rejected\"", 1.0),
        ("provider=\"unknown\",result=\"too_large\"", 1.0),
    ] {
        assert_eq!(
            daemon.metric("flink_gitops_webhook_deliveries_total", labels),
            n,
            "{labels}"
        );
    }
    // None of them starts a cycle: the pushed commit stays unapplied.
    holds_for(
        "no reconcile after refused hooks",
        Duration::from_secs(1),
        || daemon.cycles() == cycles && resource_version(&server, "beta--svc-main") == beta,
    );

    // The genuine delivery: 202, one cycle, the commit applied.
    let signed = vec![("X-Hub-Signature-256", sign("gh-secret", &body)), delivery];
    assert_eq!(daemon.post_hook(&signed, &body), Some(202));
    wait_for("the pushed commit applied", PATIENCE, || {
        object(&server, "beta--svc-main").is_some_and(|o| o["spec"]["parallelism"] == json!(9))
    });
    daemon.wait_cycles(cycles, 1.0);

    // Delivery ids are not remembered: a replay is accepted (202), and only
    // asks for a fetch of the branch as it is now. After a newer commit, the
    // replayed hook of the older push applies the newer commit, never the
    // older content again.
    repo.write(
        "beta_svc/flink-c1.yaml",
        "main: {job_type: stateless, parallelism: 10}\n",
    );
    let newer = repo.commit("beta: ten");
    assert_eq!(daemon.post_hook(&signed, &body), Some(202));
    wait_for("the newer commit applied", PATIENCE, || {
        object(&server, "beta--svc-main").is_some_and(|o| o["spec"]["parallelism"] == json!(10))
    });
    daemon.wait_revision(&newer);
    // Replayed once more, with nothing new: a fetch, no cycle, no write.
    let cycles = daemon.cycles();
    let beta = resource_version(&server, "beta--svc-main");
    assert_eq!(daemon.post_hook(&signed, &body), Some(202));
    holds_for(
        "no reconcile after a replay",
        Duration::from_secs(1),
        || daemon.cycles() == cycles && resource_version(&server, "beta--svc-main") == beta,
    );
    assert_eq!(
        daemon.metric(
            "flink_gitops_webhook_deliveries_total",
            "provider=\"github\",result=\"accepted\""
        ),
        3.0
    );
    assert_eq!(names(&server).len(), 3);
}
