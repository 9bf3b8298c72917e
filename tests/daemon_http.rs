//! The daemon's HTTP edge through real HTTP/1.1 on 127.0.0.1: a listener on
//! port 0, `serve` spawned, and a hand-written client on a `TcpStream`.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use flink_gitops::config::daemon_settings::HookSettings;
use flink_gitops::daemon::hooks::HookSecrets;
use flink_gitops::daemon::http::{HttpState, Trigger, serve};
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
    ready: Arc<AtomicBool>,
    status: Arc<RwLock<serde_json::Value>>,
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

/// A server with all three providers configured (or none), a body limit and
/// a trigger channel of `capacity`.
async fn start(with_secrets: bool, max_body_bytes: usize, capacity: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let hooks = if with_secrets {
        let settings = HookSettings {
            github_secret_file: Some(write_secret(dir.path(), "github", GITHUB_SECRET)),
            gitlab_token_file: Some(write_secret(dir.path(), "gitlab", GITLAB_TOKEN)),
            generic_secret_file: Some(write_secret(dir.path(), "generic", GENERIC_SECRET)),
            max_body_bytes,
        };
        Some(Arc::new(HookSecrets::load(&settings).unwrap()))
    } else {
        None
    };
    let (tx, rx) = mpsc::channel(capacity);
    let ready = Arc::new(AtomicBool::new(false));
    let status = Arc::new(RwLock::new(serde_json::json!({ "phase": "starting" })));
    let metrics = Arc::new(Metrics::new());
    let state = HttpState {
        ready: ready.clone(),
        status: status.clone(),
        metrics: metrics.clone(),
        hooks,
        max_body_bytes,
        triggers: tx,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(serve(listener, state, async move {
        let _ = shutdown_rx.await;
    }));
    Server {
        addr,
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

    *server.status.write().unwrap() = serde_json::json!({ "revision": "abc", "objects": 3 });
    let r = request(server.addr, "GET", "/status", &[], b"").await;
    let doc: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(doc, serde_json::json!({ "revision": "abc", "objects": 3 }));
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
        status: Arc::new(RwLock::new(serde_json::Value::Null)),
        metrics: Arc::new(Metrics::new()),
        hooks: Some(Arc::new(
            HookSecrets::load(&HookSettings::default()).unwrap(),
        )),
        max_body_bytes: 1024,
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
