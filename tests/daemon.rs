//! The daemon end to end: a real git repository (file:// and `git daemon`),
//! the fake API server, the HTTP endpoints, incremental re-rendering,
//! broken sources, two replicas and SIGTERM.

mod support;

use serde_json::{Value as Json, json};
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};
use support::daemon_process::{
    Daemon, LEADER_ELECTION, NO_LEADER_ELECTION, PATIENCE, daemon_server as server, flink as live,
    serial, wait_for,
};
use support::fake_apiserver::{FLINK_NAMESPACE, FLINK_PLURAL, FakeApiServer};
use support::git_repo::GitRepo as Repo;
use support::scenario::{ALPHA, BETA, SHA_B, deployments, events, write_file};

/// The daemon with leader election on short leases.
fn start(server: &FakeApiServer, source: &str, extra: &str) -> Daemon {
    Daemon::start(server, source, LEADER_ELECTION, extra)
}

#[test]
fn git_daemon_applies_then_rerenders_only_the_changed_service() {
    let _serial = serial();
    let server = server();
    let repo = Repo::new();
    let first = repo.head();
    let cache = tempfile::tempdir().expect("cache");
    let daemon = start(&server, &repo.source(cache.path(), "1s", ""), "");
    daemon.wait_ready();
    wait_for("the first apply", PATIENCE, || {
        live(&server, "alpha-main").is_some() && live(&server, "beta--svc-main").is_some()
    });
    assert_eq!(daemon.get("/healthz").map(|(c, _)| c), Some(200));
    assert_eq!(
        applied_revisions(&server, "beta--svc-main"),
        [("Created".to_owned(), first.clone())]
    );
    let rendered_before = daemon.metric("flink_gitops_services_rendered_total", "");
    assert_eq!(rendered_before, 2.0);

    repo.write(
        "beta_svc/flink-c1.yaml",
        "main: {job_type: stateless, parallelism: 7}\n",
    );
    repo.commit("beta: more parallelism");
    wait_for("the change applied", PATIENCE, || {
        live(&server, "beta--svc-main").is_some_and(|o| o["spec"]["parallelism"] == json!(7))
    });
    assert_eq!(
        daemon.metric("flink_gitops_services_rendered_total", ""),
        3.0,
        "only beta_svc was rendered again"
    );
    // The status is published when the cycle ends, just after its writes.
    wait_for("the status names the commit", PATIENCE, || {
        daemon.status()["commit"]["subject"] == "beta: more parallelism"
    });
    assert!(daemon.metric("flink_gitops_leader", "") >= 1.0);
    let second = repo.head();
    assert_eq!(
        applied_revisions(&server, "beta--svc-main"),
        [
            ("Created".to_owned(), first),
            ("Updated".to_owned(), second.clone())
        ]
    );
    let status = status_command(&server, &["-s", "beta_svc", "-i", "main", "-c", "c1"]);
    assert!(
        status.contains(&format!("Last applied: revision {second} at ")),
        "{status}"
    );
    let (code, _) = daemon.terminate();
    assert_eq!(code, Some(0));
}

/// (reason, revision annotation) of the Events recorded on `name`, oldest first.
fn applied_revisions(server: &FakeApiServer, name: &str) -> Vec<(String, String)> {
    events(server)
        .iter()
        .filter(|e| e["involvedObject"]["name"] == name)
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_owned(),
                e["metadata"]["annotations"]["flink-gitops/revision"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// The stdout of `flink-gitops status ARGS` against the fake API server, as
/// the admin: `status` is run by people, and it lists Pods and Events, which
/// the reconciler's ServiceAccount is not granted.
fn status_command(server: &FakeApiServer, args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = server.write_admin_kubeconfig(dir.path());
    let output = Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
        .arg("status")
        .args(["--kubeconfig", kubeconfig.to_str().expect("utf-8")])
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("FLINK_GITOPS_SOA_DIR")
        .env("NO_COLOR", "1")
        .output()
        .expect("run flink-gitops status");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn a_broken_remote_keeps_the_last_snapshot_and_prunes_nothing() {
    let _serial = serial();
    let server = server();
    let repo = Repo::new();
    let cache = tempfile::tempdir().expect("cache");
    let daemon = start(&server, &repo.source(cache.path(), "500ms", ""), "");
    daemon.wait_ready();
    wait_for("the first apply", PATIENCE, || {
        live(&server, "alpha-main").is_some() && live(&server, "alpha-canary").is_some()
    });
    // The remote goes away: nothing may be read as "everything was removed".
    std::fs::remove_dir_all(repo.path().join(".git")).expect("break the remote");
    wait_for("the source reported unhealthy", PATIENCE, || {
        daemon.status()["source"]["healthy"] == json!(false)
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(live(&server, "alpha-main").is_some());
    assert!(live(&server, "alpha-canary").is_some());
    let annotations = &live(&server, "alpha-canary").expect("kept")["metadata"]["annotations"];
    assert!(annotations.get("flink-gitops/prune-requested-at").is_none());
    assert!(server.objects("jobs", FLINK_NAMESPACE).is_empty());
}

#[test]
fn a_bad_commit_fails_its_service_and_a_fix_recovers() {
    let _serial = serial();
    let server = server();
    let repo = Repo::new();
    let cache = tempfile::tempdir().expect("cache");
    let daemon = start(&server, &repo.source(cache.path(), "500ms", ""), "");
    daemon.wait_ready();
    wait_for("the first apply", PATIENCE, || {
        live(&server, "alpha-canary").is_some()
    });
    repo.write("alpha/flink-c1.yaml", "main: {broken: [\n");
    repo.commit("oops");
    wait_for("alpha blocked", PATIENCE, || {
        daemon.status()["instances"]
            .as_array()
            .is_some_and(|i| i.iter().any(|e| e["action"] == "blocked"))
    });
    assert!(
        live(&server, "alpha-canary").is_some(),
        "an unknown service is never pruned"
    );
    repo.write(
        "alpha/flink-c1.yaml",
        &ALPHA.replace("instances: 2", "instances: 4"),
    );
    repo.commit("fix");
    wait_for("the fix applied", PATIENCE, || {
        live(&server, "alpha-main")
            .is_some_and(|o| o["spec"]["taskmanager"]["instances"] == json!(4))
    });
}

#[test]
fn push_hooks_need_a_valid_signature_and_a_burst_is_one_fetch() {
    let _serial = serial();
    use hmac::{Hmac, Mac};
    let server = server();
    let repo = Repo::new();
    let cache = tempfile::tempdir().expect("cache");
    let secrets = tempfile::tempdir().expect("secrets");
    let secret_file = secrets.path().join("github");
    std::fs::write(&secret_file, "s3cret\n").expect("secret");
    let daemon = start(
        &server,
        &repo.source(cache.path(), "1h", ""),
        &format!("hooks: {{github_secret_file: '{}'}}", secret_file.display()),
    );
    daemon.wait_ready();
    let body = br#"{"ref": "refs/heads/master"}"#;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").expect("key");
    mac.update(body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let hook = |signature: Option<&str>| {
        let headers: Vec<(&str, String)> = signature
            .map(|s| vec![("X-Hub-Signature-256", s.to_owned())])
            .unwrap_or_default();
        daemon.post_hook(&headers, body)
    };
    assert_eq!(hook(None), Some(401));
    assert_eq!(hook(Some("sha256=00")), Some(401));

    let cycles_before = daemon.metric("flink_gitops_reconcile_duration_seconds_count", "");
    repo.write(
        "beta_svc/flink-c1.yaml",
        "main: {job_type: stateless, parallelism: 9}\n",
    );
    repo.commit("beta: nine");
    let started = Instant::now();
    for _ in 0..50 {
        assert_eq!(hook(Some(&signature)), Some(202));
    }
    wait_for("the pushed change applied", PATIENCE, || {
        live(&server, "beta--svc-main").is_some_and(|o| o["spec"]["parallelism"] == json!(9))
    });
    let latency = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let cycles = daemon.metric("flink_gitops_reconcile_duration_seconds_count", "") - cycles_before;
    assert!(
        cycles <= 2.0,
        "50 hooks coalesced into at most two cycles, got {cycles}"
    );
    eprintln!("push → applied: {latency:?}");
}

#[test]
fn two_replicas_elect_one_leader_and_the_standby_takes_over() {
    let _serial = serial();
    let server = server();
    let repo = Repo::new();
    let cache_a = tempfile::tempdir().expect("cache");
    let cache_b = tempfile::tempdir().expect("cache");
    let a = start(&server, &repo.source(cache_a.path(), "500ms", ""), "");
    let b = start(&server, &repo.source(cache_b.path(), "500ms", ""), "");
    wait_for("one leader", PATIENCE, || {
        a.metric("flink_gitops_leader", "") + b.metric("flink_gitops_leader", "") == 1.0
    });
    let (leader, standby) = if a.metric("flink_gitops_leader", "") == 1.0 {
        (a, b)
    } else {
        (b, a)
    };
    wait_for("the leader's first apply", PATIENCE, || {
        live(&server, "alpha-main").is_some()
    });
    let (code, _) = leader.terminate();
    assert_eq!(code, Some(0), "SIGTERM is a clean exit");
    wait_for("the standby leads", PATIENCE, || {
        standby.metric("flink_gitops_leader", "") == 1.0
    });
    let lease = server
        .object("leases", "flink-gitops", "flink-gitops")
        .expect("lease");
    assert!(
        lease["spec"]["leaseTransitions"].as_u64().unwrap_or(0) >= 1,
        "{lease}"
    );
}

#[test]
fn a_directory_source_is_watched() {
    let _serial = serial();
    let server = server();
    let soa = tempfile::tempdir().expect("soa");
    let write = |relative: &str, text: &str| write_file(&soa.path().join(relative), text);
    write("beta_svc/flink-c1.yaml", BETA);
    write(
        "beta_svc/deployments.json",
        &deployments("beta_svc", &[("main", "c1.main", SHA_B)]),
    );
    let daemon = Daemon::start(
        &server,
        &format!(
            "source: {{dir: '{}', poll_interval: 1h, debounce: 200ms}}",
            soa.path().display()
        ),
        NO_LEADER_ELECTION,
        "",
    );
    daemon.wait_ready();
    // A half-written file fails to parse: the service is unknown, never removed.
    write("beta_svc/flink-c1.yaml", "main: {job_type: stat");
    std::thread::sleep(Duration::from_millis(800));
    assert!(live(&server, "beta--svc-main").is_some());
    write(
        "beta_svc/flink-c1.yaml",
        "main: {job_type: stateless, parallelism: 3}\n",
    );
    wait_for("the watched change applied", PATIENCE, || {
        live(&server, "beta--svc-main").is_some_and(|o| o["spec"]["parallelism"] == json!(3))
    });
}

/// Every request a [`Receiver`] got: (request head, raw body, parsed body).
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>, Json)>>>;

/// A loopback HTTP receiver that records every request body and answers 200.
struct Receiver {
    port: u16,
    bodies: Received,
}

impl Receiver {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let bodies: Received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut stream = stream;
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body_start) = loop {
                    let n = stream.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break (String::new(), 0);
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        break (
                            String::from_utf8_lossy(&buffer[..end]).into_owned(),
                            end + 4,
                        );
                    }
                };
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                while buffer.len() < body_start + length {
                    let n = stream.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                }
                let raw = buffer[body_start..].to_vec();
                let body = serde_json::from_slice(&raw).unwrap_or(Json::Null);
                sink.lock().expect("lock").push((head, raw, body));
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Receiver { port, bodies }
    }

    fn kinds_for(&self, subject: &str) -> Vec<String> {
        self.bodies
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, _, body)| body["subject"] == subject)
            .filter_map(|(_, _, body)| body["kind"].as_str().map(str::to_owned))
            .collect()
    }
}

#[test]
fn deployment_events_are_signed_and_follow_readiness() {
    use hmac::{Hmac, Mac};
    let _serial = serial();
    let server = server();
    let repo = Repo::new();
    let cache = tempfile::tempdir().expect("cache");
    let secrets = tempfile::tempdir().expect("secrets");
    let secret_file = secrets.path().join("webhook");
    std::fs::write(&secret_file, "hook-secret\n").expect("secret");
    let receiver = Receiver::start();
    let daemon = start(
        &server,
        &repo.source(cache.path(), "300ms", ""),
        &format!(
            "notifications: {{webhooks: [{{url: 'http://127.0.0.1:{}/events', secret_file: '{}'}}], ready_timeout: 1h}}",
            receiver.port,
            secret_file.display()
        ),
    );
    let subject = "Flink/paasta-flinks/alpha-main";
    wait_for("applied event", PATIENCE, || {
        receiver.kinds_for(subject).contains(&"applied".to_owned())
    });
    server.set_status(
        FLINK_PLURAL,
        FLINK_NAMESPACE,
        "alpha-main",
        json!({"state": "running"}),
    );
    wait_for("ready event", PATIENCE, || {
        receiver.kinds_for(subject) == ["applied", "ready"]
    });
    let bodies = receiver.bodies.lock().expect("lock").clone();
    let (head, raw, body) = bodies
        .iter()
        .find(|(_, _, b)| b["subject"] == subject)
        .expect("event");
    assert_eq!(body["service"], "alpha");
    assert_eq!(body["cluster"], "c1");
    assert_eq!(body["commit"]["subject"], "initial soa-configs");
    let signature = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("x-flink-gitops-signature: ")
                .or_else(|| l.strip_prefix("X-Flink-Gitops-Signature: "))
        })
        .expect("signature header")
        .trim()
        .to_owned();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"hook-secret").expect("key");
    mac.update(raw);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(signature, expected, "the receiver can verify the body");
    drop(daemon);
}
