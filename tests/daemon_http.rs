//! The daemon's HTTP edge through real HTTP/1.1 on 127.0.0.1: a listener on
//! port 0, `serve` spawned, and a hand-written client on a `TcpStream`.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use flink_gitops::config::daemon_settings::HookSettings;
use flink_gitops::daemon::hooks::HookSecrets;
use flink_gitops::daemon::http::{HttpState, Limits, StatusBoard, Trigger, serve, serve_with};
use flink_gitops::daemon::metrics::Metrics;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::{Read, Write};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const GITHUB_SECRET: &str = "gh-secret";
const GITLAB_TOKEN: &str = "gl-token";
const GENERIC_SECRET: &str = "generic-secret";
const PUSH_BODY: &str = r#"{"ref":"refs/heads/main","after":"0123456789abcdef"}"#;

struct Server {
    addr: SocketAddr,
    /// Where `/hooks/push` is served when it has its own listener.
    hooks_addr: Option<SocketAddr>,
    ready: Arc<AtomicBool>,
    status: StatusBoard,
    metrics: Arc<Metrics>,
    triggers: mpsc::Receiver<Trigger>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn stop(mut self) {
        self.shutdown.take().unwrap().send(()).unwrap();
        self.handle.take().unwrap().await.unwrap().unwrap();
    }
}

fn write_secret(dir: &Path, name: &str, value: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{value}\n")).unwrap();
    path
}

/// How a test server differs from the defaults.
struct Options {
    with_secrets: bool,
    max_body_bytes: usize,
    capacity: usize,
    limits: Limits,
    hooks_listener: bool,
    hook_min_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            with_secrets: true,
            max_body_bytes: 4096,
            capacity: 1,
            limits: Limits::default(),
            hooks_listener: false,
            // Every accepted hook triggers, unless a test is about the rate.
            hook_min_interval: Duration::ZERO,
        }
    }
}

/// A server with all three providers configured (or none), a body limit and
/// a trigger channel of `capacity`.
async fn start(with_secrets: bool, max_body_bytes: usize, capacity: usize) -> Server {
    start_with(Options {
        with_secrets,
        max_body_bytes,
        capacity,
        ..Options::default()
    })
    .await
}

async fn start_with(options: Options) -> Server {
    let Options {
        with_secrets,
        max_body_bytes,
        capacity,
        limits,
        hooks_listener,
        hook_min_interval,
    } = options;
    let dir = tempfile::tempdir().unwrap();
    let hooks = if with_secrets {
        let settings = HookSettings {
            github_secret_file: Some(write_secret(dir.path(), "github", GITHUB_SECRET)),
            gitlab_token_file: Some(write_secret(dir.path(), "gitlab", GITLAB_TOKEN)),
            generic_secret_file: Some(write_secret(dir.path(), "generic", GENERIC_SECRET)),
            max_body_bytes,
            ..HookSettings::default()
        };
        Some(Arc::new(HookSecrets::load(&settings).unwrap()))
    } else {
        None
    };
    let (tx, rx) = mpsc::channel(capacity);
    let ready = Arc::new(AtomicBool::new(false));
    let status = StatusBoard::new(&serde_json::json!({ "phase": "starting" }));
    let metrics = Arc::new(Metrics::new());
    let state = HttpState {
        ready: ready.clone(),
        status: status.clone(),
        metrics: metrics.clone(),
        hooks,
        max_body_bytes,
        hook_min_interval,
        triggers: tx,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hooks_listener = if hooks_listener {
        Some(TcpListener::bind("127.0.0.1:0").await.unwrap())
    } else {
        None
    };
    let hooks_addr = hooks_listener.as_ref().map(|l| l.local_addr().unwrap());
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(serve_with(
        listener,
        hooks_listener,
        state,
        limits,
        async move {
            let _ = shutdown_rx.await;
        },
    ));
    Server {
        addr,
        hooks_addr,
        ready,
        status,
        metrics,
        triggers: rx,
        shutdown: Some(shutdown_tx),
        handle: Some(handle),
        _dir: dir,
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close`; the response is read to
/// EOF. A blocking std socket on the blocking pool keeps the client free of
/// dependencies (tokio's `io-util` is not enabled).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let method = method.to_owned();
    let path = path.to_owned();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let body = body.to_vec();
    tokio::task::spawn_blocking(move || blocking_request(addr, &method, &path, &headers, &body))
        .await
        .unwrap()
}

fn blocking_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Response {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    stream.write_all(&raw).unwrap();

    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    parse_response(&out)
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of headers");
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (k, v) = line.split_once(':').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&raw[..eol]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        raw = &raw[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn push(addr: SocketAddr, headers: &[(&str, &str)], body: &[u8]) -> Response {
    request(addr, "POST", "/hooks/push", headers, body).await
}

fn metric_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[tokio::test]
async fn healthz_and_readyz() {
    let server = start(false, 1024, 1).await;
    let r = request(server.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));

    let r = request(server.addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "not ready: no successful sync yet")
    );
    server.ready.store(true, Ordering::Release);
    let r = request(server.addr, "GET", "/readyz", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ready"));

    let r = request(server.addr, "GET", "/nope", &[], b"").await;
    assert_eq!(r.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn metrics_endpoint() {
    let server = start(false, 1024, 1).await;
    server.metrics.set_revision("cafebabe");
    server.metrics.set_leader(true);
    let r = request(server.addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(
        r.body
            .contains("# TYPE flink_gitops_reconcile_duration_seconds histogram")
    );
    assert!(metric_line(
        &r.body,
        "flink_gitops_source_info{revision=\"cafebabe\"} 1"
    ));
    assert!(metric_line(&r.body, "flink_gitops_leader 1"));
    assert!(r.body.ends_with("# EOF\n"), "{}", r.body);
    server.stop().await;
}

#[tokio::test]
async fn status_json() {
    let server = start(false, 1024, 1).await;
    let r = request(server.addr, "GET", "/status", &[], b"").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let doc: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(doc, serde_json::json!({ "phase": "starting" }));

    let published = serde_json::json!({ "revision": "abc", "objects": 3, "ratio": 0.1 });
    server.status.publish(&published);
    let r = request(server.addr, "GET", "/status", &[], b"").await;
    let doc: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(doc, published);
    // Byte for byte what was published, as `axum::Json` served it before.
    assert_eq!(r.body.as_bytes(), &server.status.snapshot()[..]);
    assert_eq!(r.body, serde_json::to_string(&published).unwrap());
    server.stop().await;
}

#[tokio::test]
async fn valid_hooks_are_accepted_and_trigger_a_fetch() {
    let mut server = start(true, 4096, 1).await;
    let body = PUSH_BODY.as_bytes();
    let github = sign(GITHUB_SECRET, body);
    let generic = sign(GENERIC_SECRET, body);
    let cases: [(&str, &str); 3] = [
        ("X-Hub-Signature-256", &github),
        ("X-Gitlab-Token", GITLAB_TOKEN),
        ("X-Flink-Gitops-Signature", &generic),
    ];
    for (name, value) in cases {
        let r = push(
            server.addr,
            &[(name, value), ("Content-Type", "application/json")],
            body,
        )
        .await;
        assert_eq!(r.status, 202, "{name}: {r:?}");
        assert_eq!(server.triggers.try_recv().unwrap(), Trigger::Hook, "{name}");
        assert!(server.triggers.try_recv().is_err(), "{name}");
    }
    let text = server.metrics.encode();
    for provider in ["github", "gitlab", "generic"] {
        let line = format!(
            "flink_gitops_webhook_deliveries_total{{provider=\"{provider}\",result=\"accepted\"}} 1"
        );
        assert!(metric_line(&text, &line), "missing {line}\n{text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn bad_missing_and_oversized_hooks_are_refused_and_counted() {
    let mut server = start(true, 256, 1).await;
    let body = PUSH_BODY.as_bytes();

    // Signed with the wrong secret.
    let wrong = sign("not-the-secret", body);
    let r = push(server.addr, &[("X-Hub-Signature-256", &wrong)], body).await;
    assert_eq!(r.status, 401);
    // Right secret, different body.
    let other = sign(GITHUB_SECRET, b"{}");
    let r = push(server.addr, &[("X-Hub-Signature-256", &other)], body).await;
    assert_eq!(r.status, 401);
    // Wrong GitLab token.
    let r = push(server.addr, &[("X-Gitlab-Token", "guess")], body).await;
    assert_eq!(r.status, 401);
    // Malformed generic signature.
    let r = push(
        server.addr,
        &[("X-Flink-Gitops-Signature", "md5=abc")],
        body,
    )
    .await;
    assert_eq!(r.status, 401);
    // No signature at all.
    let r = push(server.addr, &[], body).await;
    assert_eq!(r.status, 401);
    assert!(!r.body.contains(GITHUB_SECRET));

    // Over the limit, even with a valid signature: 413 before any check.
    let big = vec![b'x'; 1000];
    let signed = sign(GITHUB_SECRET, &big);
    let r = push(server.addr, &[("X-Hub-Signature-256", &signed)], &big).await;
    assert_eq!(r.status, 413);

    assert!(
        server.triggers.try_recv().is_err(),
        "no refused hook may trigger a fetch"
    );

    // One good one, to see accepted next to the rest.
    let good = sign(GITHUB_SECRET, body);
    let r = push(server.addr, &[("X-Hub-Signature-256", &good)], body).await;
    assert_eq!(r.status, 202);
    assert_eq!(server.triggers.try_recv().unwrap(), Trigger::Hook);

    let r = request(server.addr, "GET", "/metrics", &[], b"").await;
    for (labels, n) in [
        ("provider=\"github\",result=\"rejected\"", 2),
        ("provider=\"gitlab\",result=\"rejected\"", 1),
        ("provider=\"generic\",result=\"rejected\"", 1),
        ("provider=\"unknown\",result=\"rejected\"", 1),
        ("provider=\"unknown\",result=\"too_large\"", 1),
        ("provider=\"github\",result=\"accepted\"", 1),
    ] {
        let line = format!("flink_gitops_webhook_deliveries_total{{{labels}}} {n}");
        assert!(metric_line(&r.body, &line), "missing {line}\n{}", r.body);
    }
    server.stop().await;
}

#[tokio::test]
async fn hooks_without_secrets_are_not_found() {
    let server = start(false, 1024, 1).await;
    let body = PUSH_BODY.as_bytes();
    let sig = sign(GITHUB_SECRET, body);
    let r = push(server.addr, &[("X-Hub-Signature-256", &sig)], body).await;
    assert_eq!(r.status, 404);
    server.stop().await;

    // Configured, but with no secret in it: the same.
    let (tx, mut rx) = mpsc::channel(1);
    let state = HttpState {
        ready: Arc::new(AtomicBool::new(true)),
        status: StatusBoard::default(),
        metrics: Arc::new(Metrics::new()),
        hooks: Some(Arc::new(
            HookSecrets::load(&HookSettings::default()).unwrap(),
        )),
        max_body_bytes: 1024,
        hook_min_interval: Duration::ZERO,
        triggers: tx,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let r = push(addr, &[("X-Hub-Signature-256", &sig)], body).await;
    assert_eq!(r.status, 404);
    assert!(rx.try_recv().is_err());
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_burst_of_hooks_coalesces_into_one_pending_fetch() {
    let mut server = start(true, 4096, 1).await;
    let body = PUSH_BODY.as_bytes();
    let sig = sign(GITHUB_SECRET, body);
    let addr = server.addr;
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let sig = sig.clone();
            tokio::spawn(async move {
                push(addr, &[("X-Hub-Signature-256", &sig)], PUSH_BODY.as_bytes())
                    .await
                    .status
            })
        })
        .collect();
    for handle in requests {
        assert_eq!(handle.await.unwrap(), 202);
    }
    assert_eq!(server.triggers.try_recv().unwrap(), Trigger::Hook);
    assert!(
        server.triggers.try_recv().is_err(),
        "exactly one pending fetch"
    );
    assert!(metric_line(
        &server.metrics.encode(),
        "flink_gitops_webhook_deliveries_total{provider=\"github\",result=\"accepted\"} 50"
    ));
    server.stop().await;
}

/// Connects and sends `bytes` (possibly nothing), leaving the socket open.
fn open_raw(addr: SocketAddr, bytes: &[u8]) -> std::net::TcpStream {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    if !bytes.is_empty() {
        stream.write_all(bytes).unwrap();
    }
    stream
}

/// `n` silent connections, opened from several threads: a SYN dropped on a
/// busy backlog costs its connect a 1 s retransmit, and in parallel those
/// waits overlap instead of adding up.
fn open_many(addr: SocketAddr, n: usize) -> Vec<std::net::TcpStream> {
    const THREADS: usize = 16;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let share = n / THREADS + usize::from(t < n % THREADS);
                scope.spawn(move || (0..share).map(|_| open_raw(addr, b"")).collect::<Vec<_>>())
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    })
}

/// Reads until the server closes the connection (EOF or reset), or until
/// nothing arrived for `quiet`: what was read, and whether it was closed.
fn read_until_closed(stream: &mut std::net::TcpStream, quiet: Duration) -> (Vec<u8>, bool) {
    stream.set_read_timeout(Some(quiet)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (out, false);
            }
            Err(_) => return (out, true),
        }
    }
}

/// Reads until `needle` has been received.
fn read_until(stream: &mut std::net::TcpStream, needle: &[u8]) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while !out.windows(needle.len()).any(|w| w == needle) {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before {needle:?}: {out:?}");
        out.extend_from_slice(&buf[..n]);
    }
}

/// `GET /healthz` on a fresh connection, giving up after `quiet`: the status
/// code, or `None` when the connection was closed or stayed silent.
fn try_healthz(addr: SocketAddr, quiet: Duration) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let (raw, _) = read_until_closed(&mut stream, quiet);
    let text = String::from_utf8_lossy(&raw);
    text.split(' ').nth(1)?.parse().ok()
}

fn limits(header_timeout: Duration, request_timeout: Duration, max_connections: usize) -> Limits {
    Limits {
        header_timeout,
        request_timeout,
        max_connections,
    }
}

/// How many idle connections this process can hold beside the server's own
/// sockets, at most `wanted`. The limit is read, never raised.
fn idle_budget(wanted: usize) -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let spare = usize::try_from(limit.saturating_sub(400)).unwrap_or(usize::MAX);
    wanted.min(spare)
}

#[tokio::test]
async fn idle_and_half_sent_connections_are_closed_after_the_header_timeout() {
    let server = start_with(Options {
        limits: limits(Duration::from_millis(300), Duration::from_secs(30), 256),
        ..Options::default()
    })
    .await;
    let addr = server.addr;
    let started = Instant::now();
    let closed = tokio::task::spawn_blocking(move || {
        let mut streams: Vec<_> = (0..20).map(|_| open_raw(addr, b"")).collect();
        streams.push(open_raw(addr, b"GET /hea"));
        // Kept alive after one answered request, then idle.
        let mut kept = open_raw(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        read_until(&mut kept, b"\r\n\r\nok");
        streams.push(kept);
        streams
            .iter_mut()
            .map(|s| read_until_closed(s, Duration::from_secs(5)).1)
            .collect::<Vec<bool>>()
    })
    .await
    .unwrap();
    let elapsed = started.elapsed();
    assert!(closed.iter().all(|c| *c), "still open: {closed:?}");
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    let r = request(server.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_slow_loris_is_dropped_after_the_header_timeout() {
    let server = start_with(Options {
        limits: limits(Duration::from_millis(500), Duration::from_secs(30), 256),
        ..Options::default()
    })
    .await;
    let addr = server.addr;
    let (dropped_after, closed) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut stream = open_raw(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut buf = [0u8; 256];
        // One byte every 50 ms: never a whole head, always some progress.
        while started.elapsed() < Duration::from_secs(5) {
            if stream.write_all(b"a").is_err() {
                return (started.elapsed(), true);
            }
            match stream.read(&mut buf) {
                Ok(0) => return (started.elapsed(), true),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return (started.elapsed(), true),
            }
        }
        (started.elapsed(), false)
    })
    .await
    .unwrap();
    assert!(closed, "a trickled header kept the connection for 5 s");
    assert!(
        dropped_after >= Duration::from_millis(400) && dropped_after < Duration::from_secs(3),
        "{dropped_after:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_slow_body_is_cut_off_by_the_request_timeout() {
    let mut server = start_with(Options {
        limits: limits(Duration::from_secs(10), Duration::from_millis(300), 256),
        ..Options::default()
    })
    .await;
    let addr = server.addr;
    let sig = sign(GITHUB_SECRET, b"x");
    let (raw, closed, elapsed) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let head = format!(
            "POST /hooks/push HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nX-Hub-Signature-256: {sig}\r\n\r\n0123456789"
        );
        let mut stream = open_raw(addr, head.as_bytes());
        let (raw, closed) = read_until_closed(&mut stream, Duration::from_secs(5));
        (raw, closed, started.elapsed())
    })
    .await
    .unwrap();
    assert!(closed, "the slow body kept the connection open");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    let r = parse_response(&raw);
    assert_eq!(r.status, 408, "{r:?}");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(server.triggers.try_recv().is_err());
    server.stop().await;
}

// A worker of its own keeps the accept loop draining the backlog while
// the test's threads connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_beside_many_idle_connections_and_after_the_cap() {
    let header_timeout = Duration::from_secs(2);
    let server = start_with(Options {
        limits: limits(header_timeout, Duration::from_secs(30), 256),
        ..Options::default()
    })
    .await;
    let addr = server.addr;
    let total = idle_budget(1100);

    // Under the cap: idle connections cost a slot each, nothing more.
    let mut idle = tokio::task::spawn_blocking(move || open_many(addr, 200))
        .await
        .unwrap();
    let r = request(addr, "GET", "/healthz", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));

    // Over it: new connections are refused, and the idle ones do not stay.
    let (more, cap_reached) = tokio::task::spawn_blocking(move || {
        let more = open_many(addr, total - 200);
        (more, Instant::now())
    })
    .await
    .unwrap();
    idle.extend(more);

    // Once the header timeout reaps the idle ones, probes answer again.
    let answered = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + header_timeout * 3;
        while Instant::now() < deadline {
            if try_healthz(addr, Duration::from_secs(1)) == Some(200) {
                return Some(cap_reached.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    })
    .await
    .unwrap();
    assert!(answered.is_some(), "/healthz never answered again");

    // And every idle connection was closed by the server.
    let still_open = tokio::task::spawn_blocking(move || {
        idle.iter_mut()
            .map(|s| read_until_closed(s, Duration::from_secs(5)).1)
            .filter(|closed| !closed)
            .count()
    })
    .await
    .unwrap();
    assert_eq!(still_open, 0, "of {total}");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_idle_connections() {
    let server = start_with(Options {
        limits: limits(Duration::from_secs(30), Duration::from_secs(30), 256),
        ..Options::default()
    })
    .await;
    let addr = server.addr;
    let _idle = tokio::task::spawn_blocking(move || {
        let mut streams: Vec<_> = (0..5).map(|_| open_raw(addr, b"")).collect();
        let mut kept = open_raw(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        read_until(&mut kept, b"\r\n\r\nok");
        streams.push(kept);
        streams
    })
    .await
    .unwrap();
    // Let the server accept them all before it is told to stop.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped = tokio::time::timeout(Duration::from_secs(5), server.stop()).await;
    assert!(stopped.is_ok(), "shutdown waited for idle connections");
}

#[tokio::test]
async fn a_hooks_listener_takes_the_hooks_and_only_them() {
    let mut server = start_with(Options {
        hooks_listener: true,
        ..Options::default()
    })
    .await;
    let hooks_addr = server.hooks_addr.unwrap();
    let body = PUSH_BODY.as_bytes();
    let sig = sign(GITHUB_SECRET, body);

    for path in ["/healthz", "/readyz", "/metrics", "/status"] {
        let r = request(server.addr, "GET", path, &[], b"").await;
        assert_ne!(r.status, 404, "{path} on the main listener");
        let r = request(hooks_addr, "GET", path, &[], b"").await;
        assert_eq!(r.status, 404, "{path} on the hooks listener");
    }

    let r = push(server.addr, &[("X-Hub-Signature-256", &sig)], body).await;
    assert_eq!(r.status, 404, "hooks on the main listener");
    assert!(server.triggers.try_recv().is_err());

    let r = push(hooks_addr, &[("X-Hub-Signature-256", &sig)], body).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(server.triggers.try_recv().unwrap(), Trigger::Hook);
    server.stop().await;
}

#[tokio::test]
async fn without_a_hooks_listener_one_listener_serves_everything() {
    let mut server = start_with(Options::default()).await;
    assert_eq!(server.hooks_addr, None);
    let body = PUSH_BODY.as_bytes();
    let sig = sign(GITHUB_SECRET, body);
    let r = request(server.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200);
    let r = push(server.addr, &[("X-Hub-Signature-256", &sig)], body).await;
    assert_eq!(r.status, 202);
    assert_eq!(server.triggers.try_recv().unwrap(), Trigger::Hook);
    server.stop().await;
}

#[tokio::test]
async fn a_burst_of_hooks_triggers_at_most_once_per_min_interval() {
    let interval = Duration::from_secs(1);
    let mut server = start_with(Options {
        hook_min_interval: interval,
        ..Options::default()
    })
    .await;
    // Drained as fast as a daemon could: only the gate may hold triggers back.
    let (_, dummy) = mpsc::channel(1);
    let mut triggers = std::mem::replace(&mut server.triggers, dummy);
    let drainer = tokio::spawn(async move {
        let mut at = Vec::new();
        while let Some(trigger) = triggers.recv().await {
            assert_eq!(trigger, Trigger::Hook);
            at.push(Instant::now());
        }
        at
    });
    let addr = server.addr;
    let sig = sign(GITHUB_SECRET, PUSH_BODY.as_bytes());
    let started = Instant::now();
    let requests: Vec<_> = (0..200)
        .map(|_| {
            let sig = sig.clone();
            tokio::spawn(async move {
                push(addr, &[("X-Hub-Signature-256", &sig)], PUSH_BODY.as_bytes())
                    .await
                    .status
            })
        })
        .collect();
    for handle in requests {
        assert_eq!(handle.await.unwrap(), 202);
    }
    let burst = started.elapsed();
    // The merged trigger fires at the end of the interval.
    tokio::time::sleep(interval + Duration::from_millis(500)).await;
    assert!(metric_line(
        &server.metrics.encode(),
        "flink_gitops_webhook_deliveries_total{provider=\"github\",result=\"accepted\"} 200"
    ));
    server.stop().await;
    let at = drainer.await.unwrap();
    assert!(at.len() >= 2, "the merged hooks never fired: {}", at.len());
    assert!(
        at.len() <= 2 + usize::try_from(burst.as_secs()).unwrap(),
        "{} triggers for a burst of {burst:?}",
        at.len()
    );
    for pair in at.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= interval - Duration::from_millis(50), "{gap:?}");
    }
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_at_once() {
    let server = start_with(Options {
        limits: limits(Duration::from_secs(30), Duration::from_secs(30), 4),
        ..Options::default()
    })
    .await;
    let addr = server.addr;
    let (refused, elapsed, _held) = tokio::task::spawn_blocking(move || {
        // Accepted in order: these four take every slot before the probe.
        let held: Vec<_> = (0..4).map(|_| open_raw(addr, b"")).collect();
        let started = Instant::now();
        let refused = try_healthz(addr, Duration::from_secs(5));
        (refused, started.elapsed(), held)
    })
    .await
    .unwrap();
    assert!(
        matches!(refused, None | Some(503)),
        "over the cap: {refused:?}"
    );
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    server.stop().await;
}
