//! The daemon as a process: `flink-gitops run` against the fake API server,
//! its HTTP endpoints over loopback, and the waiting that goes with it.

use super::fake_apiserver::{FLINK_NAMESPACE, FLINK_PLURAL, FakeApiServer};
use super::scenario::path_str;
use serde_json::Value as Json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a daemon test waits for anything.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Leader election with short leases (in the namespace `flink-gitops`,
/// which [`daemon_server`] creates), for tests of two replicas.
pub const LEADER_ELECTION: &str =
    "leader_election: {namespace: flink-gitops, lease_duration: 3s, retry_period: 300ms}";

/// No leader election: the daemon always writes.
pub const NO_LEADER_ELECTION: &str = "leader_election: {enabled: false}";

/// The daemon tests run real processes with timing (leases, debounce,
/// intervals): one at a time, so a loaded 2-core machine does not starve
/// them.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Polls `check` until it holds; fails the test after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A minimal HTTP/1.1 client for loopback tests: the status and the body,
/// `None` when the server cannot be reached or does not answer HTTP.
pub fn http(
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
    // A server may answer (413) before reading a large body, then close.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

/// The sum of the samples of metric `name` whose label text contains
/// `labels` (every sample of it when empty).
pub fn sample(metrics: &str, name: &str, labels: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.split([' ', '{']).next() == Some(name) && (labels.is_empty() || l.contains(labels))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The fake API server for a daemon: the Flink kind, Jobs,
/// `paasta-flinks`, Events (so that the daemon's Events are recorded rather
/// than logged as failures), and Leases in the namespace `flink-gitops`.
pub fn daemon_server() -> FakeApiServer {
    let server = FakeApiServer::with_flinks();
    server.register_events();
    server.register_leases();
    server.create_namespace("flink-gitops");
    server
}

/// The Flink object `name` in `paasta-flinks`, if it exists.
pub fn flink(server: &FakeApiServer, name: &str) -> Option<Json> {
    server.object(FLINK_PLURAL, FLINK_NAMESPACE, name)
}

/// A `flink-gitops run` process, its stderr collected as it goes.
pub struct Daemon {
    child: Child,
    pub port: u16,
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Runs the daemon for cluster c1 against `server`, with `source`, its
    /// HTTP server on a free port, `leader_election` ([`LEADER_ELECTION`],
    /// [`NO_LEADER_ELECTION`]) and then `extra` in its configuration.
    /// Without a `prune:` section in `extra`, prunes start at once
    /// (`prune.grace: 0s`), as the protocol's tests expect.
    pub fn start(server: &FakeApiServer, source: &str, leader_election: &str, extra: &str) -> Self {
        let extra = if extra.contains("prune:") {
            extra.to_owned()
        } else {
            format!("{extra}\nprune: {{grace: 0s}}")
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = server.write_kubeconfig(dir.path());
        let port = free_port();
        let config = format!(
            "cluster: c1\ndocker_registry: registry.example:443\n{source}\n\
             server: {{listen: '127.0.0.1:{port}'}}\n{leader_election}\n{extra}\n"
        );
        let config_path = dir.path().join("flink-gitops.yaml");
        std::fs::write(&config_path, config).expect("config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
            .args(["run", "--config", path_str(&config_path)])
            .args(["--kubeconfig", path_str(&kubeconfig)])
            .env("RUST_LOG", "flink_gitops=info")
            .env("NO_COLOR", "1")
            .env_remove("KUBECONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the daemon");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap_or_else(PoisonError::into_inner);
                log.push_str(&line);
                log.push('\n');
            }
        });
        Daemon {
            child,
            port,
            log,
            reader: Some(reader),
            _dir: dir,
        }
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http(self.port, "GET", path, &[], b"")
    }

    /// POST `/hooks/push`: the status.
    pub fn post_hook(&self, headers: &[(&str, String)], body: &[u8]) -> Option<u16> {
        http(self.port, "POST", "/hooks/push", headers, body).map(|(code, _)| code)
    }

    /// `/status` (null when unreachable).
    pub fn status(&self) -> Json {
        self.get("/status")
            .and_then(|(_, body)| serde_json::from_str(&body).ok())
            .unwrap_or(Json::Null)
    }

    /// One scrape of `/metrics` (empty when unreachable).
    pub fn metrics(&self) -> String {
        self.get("/metrics")
            .map(|(_, text)| text)
            .unwrap_or_default()
    }

    /// [`sample`] from a fresh scrape.
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        sample(&self.metrics(), name, labels)
    }

    /// Reconcile cycles finished so far.
    pub fn cycles(&self) -> f64 {
        self.metric("flink_gitops_reconcile_duration_seconds_count", "")
    }

    pub fn wait_ready(&self) {
        wait_for("/readyz", PATIENCE, || {
            self.get("/readyz").is_some_and(|(code, _)| code == 200)
        });
    }

    /// Waits until `n` more reconcile cycles than `after` have finished.
    pub fn wait_cycles(&self, after: f64, n: f64) {
        wait_for(&format!("{n} more reconcile cycles"), PATIENCE, || {
            self.cycles() >= after + n
        });
    }

    /// Waits until `/status` names `revision`: the status is published
    /// when a cycle ends, just after its writes.
    pub fn wait_revision(&self, revision: &str) {
        wait_for(&format!("the status to name {revision}"), PATIENCE, || {
            self.status()["revision"] == revision
        });
    }

    /// The action `/status` reports for the instance `subject`.
    pub fn instance_action(&self, subject: &str) -> Option<String> {
        self.status()["instances"]
            .as_array()?
            .iter()
            .find(|i| i["subject"] == subject)
            .and_then(|i| i["action"].as_str().map(str::to_owned))
    }

    /// SIGTERM, then waits up to 20 s for the exit (killed after that):
    /// the exit code (none when killed) and the whole stderr.
    pub fn terminate(self) -> (Option<i32>, String) {
        self.send_term();
        self.wait_exit(Duration::from_secs(20))
    }

    /// Sends SIGTERM and returns at once.
    pub fn send_term(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Waits up to `patience` for the exit (killed after that): the exit
    /// code (none when killed) and the whole stderr.
    pub fn wait_exit(mut self, patience: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + patience;
        let code = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (code, self.log())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
