//! One writer, provably: a replica that is told to stop, or that cannot
//! renew its Lease, stops writing at once, and its Lease is released only
//! after its last write. Asserted on the arrival times the fake API server
//! records for each request.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};
use support::daemon_process::{Daemon, LEADER_ELECTION, PATIENCE, daemon_server, serial, wait_for};
use support::fake_apiserver::{FakeApiServer, Fault, RecordedRequest};
use support::scenario::{SHA_B, deployments, write_file, write_soa_configs};

/// How long the fake API server holds each PATCH of a Flink object, so that
/// a cycle of sequential writes lasts seconds.
const SLOW_PATCH: Duration = Duration::from_millis(600);

/// The scenario's soa-configs and `extra` more one-instance services.
fn soa_with(root: &Path, extra: usize) {
    write_soa_configs(root);
    for index in 0..extra {
        let service = format!("svc{index}");
        write_file(
            &root.join(format!("{service}/flink-c1.yaml")),
            "main: {job_type: stateless}\n",
        );
        write_file(
            &root.join(format!("{service}/deployments.json")),
            &deployments(&service, &[("main", "c1.main", SHA_B)]),
        );
    }
}

/// Writes to Flink objects (every method but GET).
fn flink_writes(server: &FakeApiServer) -> Vec<RecordedRequest> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET" && r.path.contains("/flinks"))
        .collect()
}

/// Creates and replacements of the Lease.
fn lease_writes(server: &FakeApiServer) -> Vec<RecordedRequest> {
    server
        .requests()
        .into_iter()
        .filter(|r| (r.method == "PUT" || r.method == "POST") && r.path.contains("/leases"))
        .collect()
}

/// A leading daemon on a tree of `objects` objects whose PATCHes are slow
/// and sequential, once its first PATCH has arrived.
fn leading_mid_cycle(server: &FakeApiServer, soa: &Path, extra_services: usize) -> Daemon {
    soa_with(soa, extra_services);
    server.inject(
        Fault::delay(SLOW_PATCH)
            .method("PATCH")
            .path("/flinks/")
            .times(1000),
    );
    let daemon = Daemon::start(
        server,
        &format!(
            "source: {{dir: '{}', poll_interval: 1h, debounce: 200ms}}",
            soa.display()
        ),
        LEADER_ELECTION,
        "apply: {concurrency: 1}",
    );
    wait_for("the first PATCH", PATIENCE, || {
        !flink_writes(server).is_empty()
    });
    daemon
}

#[test]
fn after_sigterm_nothing_is_written_and_the_lease_is_released_after_the_last_write() {
    let _serial = serial();
    let server = daemon_server();
    let soa = tempfile::tempdir().expect("soa");
    let daemon = leading_mid_cycle(&server, soa.path(), 8);
    daemon.send_term();
    let terminated = Instant::now();
    let (code, log) = daemon.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{log}");

    let writes = flink_writes(&server);
    let late: Vec<String> = writes
        .iter()
        .filter(|r| r.at > terminated + Duration::from_millis(100))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(late.is_empty(), "written after SIGTERM: {late:?}\n{log}");
    assert!(
        writes.len() < 11,
        "the cycle was cut short: {}",
        writes.len()
    );
    let last_write = writes.iter().map(|r| r.at).max().expect("a write");
    let release = lease_writes(&server)
        .into_iter()
        .rfind(|r| r.body["spec"]["holderIdentity"] == "")
        .unwrap_or_else(|| panic!("no release\n{log}"));
    // The last write was answered SLOW_PATCH after it arrived.
    assert!(
        release.at >= last_write + SLOW_PATCH,
        "released {:?} after the last write arrived, before it was answered",
        release.at.duration_since(last_write)
    );
}

#[test]
fn a_leader_that_cannot_renew_stops_writing_before_its_lease_can_expire() {
    let _serial = serial();
    let server = daemon_server();
    let soa = tempfile::tempdir().expect("soa");
    let daemon = leading_mid_cycle(&server, soa.path(), 12);
    // From now on every renewal fails.
    server.inject(
        Fault::status(500)
            .method("PUT")
            .path("/leases/")
            .times(100_000),
    );
    let last_renewal = lease_writes(&server)
        .into_iter()
        .filter(|r| r.fault.is_none())
        .map(|r| r.at)
        .max()
        .expect("a renewal");
    // Lease duration 3 s (LEADER_ELECTION): a standby may take over from
    // then on; the cycle alone would go on writing for 15 × 600 ms.
    std::thread::sleep(Duration::from_secs(5));
    let lease_duration = Duration::from_secs(3);
    let late: Vec<Duration> = flink_writes(&server)
        .iter()
        .filter(|r| r.at >= last_renewal + lease_duration)
        .map(|r| r.at.duration_since(last_renewal))
        .collect();
    assert!(
        late.is_empty(),
        "written after the lease could expire (since the last renewal): {late:?}\n{}",
        daemon.log()
    );
    assert!(
        daemon.log().contains("not the leader") || daemon.log().contains("lost leadership"),
        "{}",
        daemon.log()
    );
}

/// A daemon whose next cycle hangs on a LIST the fake API server holds for
/// a minute (longer than any test waits).
fn stuck_in_a_cycle(server: &FakeApiServer, soa: &Path, extra: &str) -> Daemon {
    soa_with(soa, 0);
    let daemon = Daemon::start(
        server,
        &format!(
            "source: {{dir: '{}', poll_interval: 300ms, debounce: 200ms}}",
            soa.display()
        ),
        support::daemon_process::NO_LEADER_ELECTION,
        &format!("apply: {{request_timeout: 5m}}\n{extra}"),
    );
    daemon.wait_ready();
    server.clear_requests();
    server.inject(
        Fault::delay(Duration::from_secs(60))
            .method("GET")
            .path("/flinks")
            .times(1000),
    );
    wait_for("a LIST held", PATIENCE, || {
        server
            .requests()
            .iter()
            .any(|r| r.method == "GET" && r.path.ends_with("/flinks"))
    });
    daemon
}

#[test]
fn shutdown_timeout_ends_a_stuck_cycle() {
    let _serial = serial();
    let server = daemon_server();
    let soa = tempfile::tempdir().expect("soa");
    let daemon = stuck_in_a_cycle(&server, soa.path(), "shutdown_timeout: 1s");
    let asked = Instant::now();
    daemon.send_term();
    let (code, log) = daemon.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{log}");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}\n{log}",
        asked.elapsed()
    );
    assert!(log.contains("shutdown_timeout elapsed"), "{log}");
}

#[test]
fn a_second_sigterm_ends_a_stuck_cycle() {
    let _serial = serial();
    let server = daemon_server();
    let soa = tempfile::tempdir().expect("soa");
    let daemon = stuck_in_a_cycle(&server, soa.path(), "shutdown_timeout: 10m");
    let asked = Instant::now();
    daemon.send_term();
    std::thread::sleep(Duration::from_millis(500));
    daemon.send_term();
    let (code, log) = daemon.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{log}");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}\n{log}",
        asked.elapsed()
    );
    assert!(log.contains("second shutdown request"), "{log}");
}

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn a_hook_sent_to_the_standby_is_applied_by_the_leader() {
    let _serial = serial();
    let server = daemon_server();
    let repo = support::git_repo::GitRepo::new();
    let secrets = tempfile::tempdir().expect("secrets");
    let secret = secrets.path().join("generic");
    std::fs::write(&secret, "generic-secret\n").expect("secret");
    let hooks = format!("hooks: {{generic_secret_file: '{}'}}", secret.display());
    let caches = [
        tempfile::tempdir().expect("cache"),
        tempfile::tempdir().expect("cache"),
    ];
    // Polling once an hour: only a hook makes either replica fetch.
    let replicas: Vec<Daemon> = caches
        .iter()
        .map(|cache| {
            Daemon::start(
                &server,
                &repo.source(cache.path(), "1h", ""),
                LEADER_ELECTION,
                &hooks,
            )
        })
        .collect();
    wait_for("one leader", PATIENCE, || {
        replicas
            .iter()
            .filter(|d| d.status()["leader"] == serde_json::json!(true))
            .count()
            == 1
    });
    wait_for("the first apply", PATIENCE, || {
        support::daemon_process::flink(&server, "beta--svc-main").is_some()
    });
    let standby = replicas
        .iter()
        .find(|d| d.status()["leader"] == serde_json::json!(false))
        .expect("a standby");
    repo.write(
        "beta_svc/flink-c1.yaml",
        "main: {job_type: stateless, parallelism: 4}\n",
    );
    let pushed = repo.commit("beta: four");
    let body = format!(r#"{{"ref": "refs/heads/master", "after": "{pushed}"}}"#).into_bytes();
    let signature = ("X-Flink-Gitops-Signature", sign("generic-secret", &body));
    let sent = Instant::now();
    assert_eq!(standby.post_hook(&[signature], &body), Some(202));
    wait_for(
        "the leader applied the push",
        Duration::from_secs(10),
        || {
            support::daemon_process::flink(&server, "beta--svc-main")
                .is_some_and(|o| o["spec"]["parallelism"] == serde_json::json!(4))
        },
    );
    // Two retry periods (300 ms each) and a cycle.
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );
}
