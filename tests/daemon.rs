//! The daemon end to end: a real git repository (file:// and `git daemon`),
//! the fake API server, the HTTP endpoints, incremental re-rendering,
//! broken sources, two replicas and SIGTERM.

mod support;

use serde_json::{Value as Json, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::fake_apiserver::{FLINK_NAMESPACE, FLINK_PLURAL, FakeApiServer};
use support::scenario::{ALPHA, BETA, SHA_A, SHA_B, deployments};

/// A git repository of soa-configs in a tempdir, changed with the git CLI.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Self {
        let repo = Repo {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        repo.git(&["init", "-q", "-b", "master"]);
        repo.write("alpha/flink-c1.yaml", ALPHA);
        repo.write(
            "alpha/deployments.json",
            &deployments(
                "alpha",
                &[("main", "c1.main", SHA_A), ("canary", "prod.canary", SHA_A)],
            ),
        );
        repo.write("beta_svc/flink-c1.yaml", BETA);
        repo.write(
            "beta_svc/deployments.json",
            &deployments("beta_svc", &[("main", "c1.main", SHA_B)]),
        );
        repo.commit("initial soa-configs");
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    fn git(&self, args: &[&str]) {
        let status = Command::new("git")
            .args(["-c", "user.name=dev", "-c", "user.email=dev@example.com"])
            .args(args)
            .current_dir(self.path())
            .status()
            .expect("git");
        assert!(status.success(), "git {args:?}");
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }

    fn head(&self) -> String {
        let output = Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(self.path())
            .output()
            .expect("git rev-parse");
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A `flink-gitops run` process.
struct Daemon {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(server: &FakeApiServer, source: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = server.write_kubeconfig(dir.path());
        let port = free_port();
        let config = format!(
            "cluster: c1\ndocker_registry: registry.example:443\n{source}\nserver: {{listen: '127.0.0.1:{port}'}}\nleader_election: {{namespace: flink-gitops, lease_duration: 3s, retry_period: 300ms}}\n{extra}\n"
        );
        let config_path = dir.path().join("flink-gitops.yaml");
        std::fs::write(&config_path, config).expect("config");
        let child = Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
            .args(["run", "--config", config_path.to_str().expect("utf-8")])
            .args(["--kubeconfig", kubeconfig.to_str().expect("utf-8")])
            .env("RUST_LOG", "flink_gitops=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the daemon");
        Daemon {
            child,
            port,
            _dir: dir,
        }
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        http(self.port, "GET", path, &[], b"")
    }

    fn status(&self) -> Json {
        self.get("/status")
            .and_then(|(_, body)| serde_json::from_str(&body).ok())
            .unwrap_or(Json::Null)
    }

    fn metric(&self, name: &str) -> f64 {
        let Some((_, text)) = self.get("/metrics") else {
            return 0.0;
        };
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn terminate(mut self) -> (Option<i32>, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        let code = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        (code, stderr)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 client for loopback tests.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// The daemon tests run real processes with timing (leases, debounce):
/// one at a time, so a loaded 2-core CI machine does not starve them.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn server() -> FakeApiServer {
    let server = FakeApiServer::with_flinks();
    server.register_leases();
    server.create_namespace("flink-gitops");
    server
}

fn live(server: &FakeApiServer, name: &str) -> Option<Json> {
    server.object(FLINK_PLURAL, FLINK_NAMESPACE, name)
}

fn git_source(repo: &Repo, cache: &Path, poll: &str) -> String {
    format!(
        "source: {{git: {{url: '{}', branch: master, cache_dir: '{}'}}, poll_interval: {poll}}}",
        repo.url(),
        cache.display()
    )
}

#[test]
fn git_daemon_applies_then_rerenders_only_the_changed_service() {
    let _serial = serial();
    let server = server();
    server.register_events();
    let repo = Repo::new();
    let first = repo.head();
    let cache = tempfile::tempdir().expect("cache");
    let daemon = Daemon::start(&server, &git_source(&repo, cache.path(), "1s"), "");
    wait_for("readyz", Duration::from_secs(30), || {
        daemon.get("/readyz").is_some_and(|(code, _)| code == 200)
    });
    wait_for("the first apply", Duration::from_secs(30), || {
        live(&server, "alpha-main").is_some() && live(&server, "beta--svc-main").is_some()
    });
    assert_eq!(daemon.get("/healthz").map(|(c, _)| c), Some(200));
    assert_eq!(
        applied_revisions(&server, "beta--svc-main"),
        [("Created".to_owned(), first.clone())]
    );
    let rendered_before = daemon.metric("flink_gitops_services_rendered_total");
    assert_eq!(rendered_before, 2.0);

    repo.write(
        "beta_svc/flink-c1.yaml",
        "main: {job_type: stateless, parallelism: 7}\n",
    );
    repo.commit("beta: more parallelism");
    wait_for("the change applied", Duration::from_secs(30), || {
        live(&server, "beta--svc-main").is_some_and(|o| o["spec"]["parallelism"] == json!(7))
    });
    assert_eq!(
        daemon.metric("flink_gitops_services_rendered_total"),
        3.0,
        "only beta_svc was rendered again"
    );
    // The status is published when the cycle ends, just after its writes.
    wait_for(
        "the status names the commit",
        Duration::from_secs(30),
        || daemon.status()["commit"]["subject"] == "beta: more parallelism",
    );
    assert!(daemon.metric("flink_gitops_leader") >= 1.0);
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
    let mut events = server.objects("events", FLINK_NAMESPACE);
    events.retain(|e| e["involvedObject"]["name"] == name);
    events.sort_by_key(|e| {
        e["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    });
    events
        .iter()
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

/// The stdout of `flink-gitops status ARGS` against the fake API server.
fn status_command(server: &FakeApiServer, args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = server.write_kubeconfig(dir.path());
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
    let daemon = Daemon::start(&server, &git_source(&repo, cache.path(), "500ms"), "");
    wait_for("readyz", Duration::from_secs(30), || {
        daemon.get("/readyz").is_some_and(|(code, _)| code == 200)
    });
    wait_for("the first apply", Duration::from_secs(30), || {
        live(&server, "alpha-main").is_some() && live(&server, "alpha-canary").is_some()
    });
    // The remote goes away: nothing may be read as "everything was removed".
    std::fs::remove_dir_all(repo.path().join(".git")).expect("break the remote");
    wait_for(
        "the source reported unhealthy",
        Duration::from_secs(30),
        || daemon.status()["source"]["healthy"] == json!(false),
    );
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
    let daemon = Daemon::start(&server, &git_source(&repo, cache.path(), "500ms"), "");
    wait_for("readyz", Duration::from_secs(30), || {
        daemon.get("/readyz").is_some_and(|(code, _)| code == 200)
    });
    wait_for("the first apply", Duration::from_secs(30), || {
        live(&server, "alpha-canary").is_some()
    });
    repo.write("alpha/flink-c1.yaml", "main: {broken: [\n");
    repo.commit("oops");
    wait_for("alpha blocked", Duration::from_secs(30), || {
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
    wait_for("the fix applied", Duration::from_secs(30), || {
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
    let daemon = Daemon::start(
        &server,
        &git_source(&repo, cache.path(), "1h"),
        &format!("hooks: {{github_secret_file: '{}'}}", secret_file.display()),
    );
    wait_for("readyz", Duration::from_secs(30), || {
        daemon.get("/readyz").is_some_and(|(code, _)| code == 200)
    });
    let body = br#"{"ref": "refs/heads/master"}"#;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").expect("key");
    mac.update(body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let hook = |signature: Option<&str>| {
        let headers: Vec<(&str, String)> = signature
            .map(|s| vec![("X-Hub-Signature-256", s.to_owned())])
            .unwrap_or_default();
        http(daemon.port, "POST", "/hooks/push", &headers, body).map(|(code, _)| code)
    };
    assert_eq!(hook(None), Some(401));
    assert_eq!(hook(Some("sha256=00")), Some(401));

    let cycles_before = daemon.metric("flink_gitops_reconcile_duration_seconds_count");
    repo.write(
        "beta_svc/flink-c1.yaml",
        "main: {job_type: stateless, parallelism: 9}\n",
    );
    repo.commit("beta: nine");
    let started = Instant::now();
    for _ in 0..50 {
        assert_eq!(hook(Some(&signature)), Some(202));
    }
    wait_for("the pushed change applied", Duration::from_secs(30), || {
        live(&server, "beta--svc-main").is_some_and(|o| o["spec"]["parallelism"] == json!(9))
    });
    let latency = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let cycles = daemon.metric("flink_gitops_reconcile_duration_seconds_count") - cycles_before;
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
    let a = Daemon::start(&server, &git_source(&repo, cache_a.path(), "500ms"), "");
    let b = Daemon::start(&server, &git_source(&repo, cache_b.path(), "500ms"), "");
    wait_for("one leader", Duration::from_secs(30), || {
        a.metric("flink_gitops_leader") + b.metric("flink_gitops_leader") == 1.0
    });
    let (leader, standby) = if a.metric("flink_gitops_leader") == 1.0 {
        (a, b)
    } else {
        (b, a)
    };
    wait_for("the leader's first apply", Duration::from_secs(30), || {
        live(&server, "alpha-main").is_some()
    });
    let (code, _) = leader.terminate();
    assert_eq!(code, Some(0), "SIGTERM is a clean exit");
    wait_for("the standby leads", Duration::from_secs(30), || {
        standby.metric("flink_gitops_leader") == 1.0
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
    let write = |relative: &str, text: &str| {
        let path: PathBuf = soa.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
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
        "leader_election: {enabled: false}",
    );
    wait_for("readyz", Duration::from_secs(30), || {
        daemon.get("/readyz").is_some_and(|(code, _)| code == 200)
    });
    // A half-written file fails to parse: the service is unknown, never removed.
    write("beta_svc/flink-c1.yaml", "main: {job_type: stat");
    std::thread::sleep(Duration::from_millis(800));
    assert!(live(&server, "beta--svc-main").is_some());
    write(
        "beta_svc/flink-c1.yaml",
        "main: {job_type: stateless, parallelism: 3}\n",
    );
    wait_for(
        "the watched change applied",
        Duration::from_secs(30),
        || live(&server, "beta--svc-main").is_some_and(|o| o["spec"]["parallelism"] == json!(3)),
    );
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
    let daemon = Daemon::start(
        &server,
        &git_source(&repo, cache.path(), "300ms"),
        &format!(
            "notifications: {{webhooks: [{{url: 'http://127.0.0.1:{}/events', secret_file: '{}'}}], ready_timeout: 1h}}",
            receiver.port,
            secret_file.display()
        ),
    );
    let subject = "Flink/paasta-flinks/alpha-main";
    wait_for("applied event", Duration::from_secs(30), || {
        receiver.kinds_for(subject).contains(&"applied".to_owned())
    });
    server.set_status(
        FLINK_PLURAL,
        FLINK_NAMESPACE,
        "alpha-main",
        json!({"state": "running"}),
    );
    wait_for("ready event", Duration::from_secs(30), || {
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
