//! Deployment-event sinks against real HTTP receivers on 127.0.0.1.
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use flink_gitops::config::report_settings::{
    GithubSettings, NotificationSettings, SlackSettings, WebhookSettings,
};
use flink_gitops::report::events::{DeploymentEvent, EventKind};
use flink_gitops::report::sinks::{Notifier, NotifierOptions};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
    at: Instant,
}

impl Received {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}

/// Scripted answers, then `default` forever; an optional delay per request.
#[derive(Default)]
struct Receiver {
    requests: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<(u16, Option<&'static str>)>>,
    delay: Option<Duration>,
    /// GitHub: deployment ids handed out.
    next_id: Mutex<u64>,
}

async fn record(
    State(receiver): State<Arc<Receiver>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receiver.requests.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        headers,
        body: body.to_vec(),
        at: Instant::now(),
    });
    if let Some(delay) = receiver.delay {
        tokio::time::sleep(delay).await;
    }
    let scripted = receiver.script.lock().unwrap().pop_front();
    let (status, retry_after) = scripted.unwrap_or((200, None));
    let status = StatusCode::from_u16(status).unwrap();
    if uri.path().ends_with("/deployments") && status.is_success() {
        let mut next = receiver.next_id.lock().unwrap();
        *next += 1;
        let body = serde_json::json!({"id": 41 + *next}).to_string();
        return (StatusCode::CREATED, body).into_response();
    }
    match retry_after {
        Some(seconds) => (status, [("retry-after", seconds)], "").into_response(),
        None => (status, "").into_response(),
    }
}

async fn serve(receiver: Arc<Receiver>) -> String {
    let app = Router::new().fallback(post(record)).with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

async fn wait_for(receiver: &Receiver, count: usize) -> Vec<Received> {
    let started = Instant::now();
    loop {
        let requests = receiver.requests.lock().unwrap().clone();
        if requests.len() >= count {
            return requests;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "only {} of {count} requests arrived",
            requests.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn fast() -> NotifierOptions {
    NotifierOptions {
        backoff_base: Duration::from_millis(10),
        backoff_cap: Duration::from_secs(2),
    }
}

fn secret_file(dir: &tempfile::TempDir, name: &str, content: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn webhook(url: String, secret_file: Option<PathBuf>) -> WebhookSettings {
    WebhookSettings {
        url,
        secret_file,
        events: EventKind::ALL.to_vec(),
        timeout: Duration::from_secs(1),
        max_attempts: 4,
    }
}

fn settings_with(webhooks: Vec<WebhookSettings>) -> NotificationSettings {
    NotificationSettings {
        webhooks,
        ..NotificationSettings::default()
    }
}

fn applied(instance: &str, n: usize) -> DeploymentEvent {
    DeploymentEvent::new(EventKind::Applied, "norcal-devc", "0123456789abcdef0123")
        .instance(
            "example_happyhour",
            instance,
            format!("FlinkCluster/paasta-flinks/example-happyhour-{instance}"),
        )
        .commit("Jane Doe <jane@example.com>", "Scale up")
        .shas(Some("config1a2b3c4d".into()), Some("git0123".into()))
        .changes(vec!["spec.taskManager.replicas".into()])
        .message(format!("event {n}"))
}

#[tokio::test]
async fn signed_body_matches_the_schema() {
    let receiver = Arc::new(Receiver::default());
    let url = serve(receiver.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(&dir, "secret", "s3cr3t-value\n");
    let notifier = Notifier::start(
        &settings_with(vec![webhook(format!("{url}/hook"), Some(secret))]),
        fast(),
    )
    .unwrap();
    let event = applied("main", 1);
    notifier.send(event.clone());
    let requests = wait_for(&receiver, 1).await;
    let request = &requests[0];
    assert_eq!(request.path, "/hook");

    let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cr3t-value").unwrap();
    mac.update(&request.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(request.header("x-flink-gitops-signature"), expected);
    assert_eq!(request.header("x-flink-gitops-delivery"), event.id);
    assert_eq!(request.header("x-flink-gitops-event"), "applied");
    assert_eq!(request.header("content-type"), "application/json");

    let body = request.json();
    let object = body.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "changes",
            "cluster",
            "commit",
            "config_sha",
            "git_sha",
            "id",
            "instance",
            "kind",
            "message",
            "revision",
            "schema_version",
            "service",
            "subject",
            "timestamp"
        ]
    );
    assert_eq!(body["schema_version"], 1);
    assert_eq!(body["kind"], "applied");
    assert_eq!(body["id"], event.id.as_str());
    assert_eq!(body["service"], "example_happyhour");
    assert_eq!(body["instance"], "main");
    assert_eq!(body["cluster"], "norcal-devc");
    assert_eq!(
        body["subject"],
        "FlinkCluster/paasta-flinks/example-happyhour-main"
    );
    assert_eq!(body["revision"], "0123456789abcdef0123");
    assert_eq!(body["commit"]["author"], "Jane Doe <jane@example.com>");
    assert_eq!(body["commit"]["subject"], "Scale up");
    assert_eq!(body["config_sha"], "config1a2b3c4d");
    assert_eq!(body["git_sha"], "git0123");
    assert_eq!(
        body["changes"],
        serde_json::json!(["spec.taskManager.replicas"])
    );
    assert!(humantime::parse_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());
    let back: DeploymentEvent = serde_json::from_value(body).unwrap();
    assert_eq!(back, event);

    assert!(notifier.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test]
async fn order_per_instance_and_filters() {
    let receiver = Arc::new(Receiver::default());
    let url = serve(receiver.clone()).await;
    let ready_only = Arc::new(Receiver::default());
    let ready_url = serve(ready_only.clone()).await;
    let mut only_ready = webhook(ready_url, None);
    only_ready.events = vec![EventKind::Ready];
    let notifier =
        Notifier::start(&settings_with(vec![webhook(url, None), only_ready]), fast()).unwrap();
    assert!(notifier.wants(EventKind::Pruned));

    let mut sent = Vec::new();
    for n in 0..30 {
        let instance = if n % 3 == 0 { "a" } else { "b" };
        let event = applied(instance, n);
        sent.push(event.id.clone());
        notifier.send(event);
    }
    let ready =
        DeploymentEvent::new(EventKind::Ready, "norcal-devc", "r").instance("s", "a", "K/n/a");
    notifier.send(ready.clone());
    sent.push(ready.id.clone());

    let requests = wait_for(&receiver, 31).await;
    let ids: Vec<String> = requests
        .iter()
        .map(|r| r.header("x-flink-gitops-delivery"))
        .collect();
    assert_eq!(ids, sent);
    for instance in ["a", "b"] {
        let numbers: Vec<usize> = requests
            .iter()
            .filter(|r| r.json()["instance"] == instance && r.json()["kind"] == "applied")
            .map(|r| {
                r.json()["message"].as_str().unwrap()["event ".len()..]
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    }
    assert!(request_without_signature(&requests[0]));

    let filtered = wait_for(&ready_only, 1).await;
    assert!(notifier.shutdown(Duration::from_secs(1)).await);
    let filtered_now = ready_only.requests.lock().unwrap().len();
    assert_eq!(filtered_now, 1);
    assert_eq!(filtered[0].header("x-flink-gitops-event"), "ready");
}

fn request_without_signature(request: &Received) -> bool {
    !request.headers.contains_key("x-flink-gitops-signature")
}

#[tokio::test]
async fn retries_after_500_with_the_same_delivery_id() {
    let receiver = Arc::new(Receiver::default());
    receiver
        .script
        .lock()
        .unwrap()
        .extend([(500, None), (503, None)]);
    let url = serve(receiver.clone()).await;
    let notifier = Notifier::start(&settings_with(vec![webhook(url, None)]), fast()).unwrap();
    let event = applied("main", 1);
    notifier.send(event.clone());
    let requests = wait_for(&receiver, 3).await;
    for request in &requests {
        assert_eq!(request.header("x-flink-gitops-delivery"), event.id);
        assert_eq!(request.body, requests[0].body);
    }
    assert!(notifier.shutdown(Duration::from_secs(1)).await);
    assert_eq!(receiver.requests.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn retries_after_429_honouring_retry_after() {
    let receiver = Arc::new(Receiver::default());
    receiver.script.lock().unwrap().push_back((429, Some("1")));
    let url = serve(receiver.clone()).await;
    let notifier = Notifier::start(&settings_with(vec![webhook(url, None)]), fast()).unwrap();
    notifier.send(applied("main", 1));
    let started = Instant::now();
    loop {
        if receiver.requests.lock().unwrap().len() >= 2 {
            break;
        }
        assert!(started.elapsed() < Duration::from_millis(2500), "no retry");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let requests = receiver.requests.lock().unwrap().clone();
    let gap = requests[1].at - requests[0].at;
    // The backoff alone (base 10 ms) would retry within milliseconds.
    assert!(gap >= Duration::from_millis(950), "{gap:?}");
    assert!(notifier.shutdown(Duration::from_secs(1)).await);
    assert_eq!(receiver.requests.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn no_retry_after_400() {
    let receiver = Arc::new(Receiver::default());
    receiver.script.lock().unwrap().push_back((400, None));
    let url = serve(receiver.clone()).await;
    let notifier = Notifier::start(&settings_with(vec![webhook(url, None)]), fast()).unwrap();
    let first = applied("main", 1);
    let second = applied("main", 2);
    notifier.send(first.clone());
    notifier.send(second.clone());
    let requests = wait_for(&receiver, 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(notifier.failed(), 1);
    assert_eq!(notifier.delivered(), 1);
    assert!(notifier.shutdown(Duration::from_secs(1)).await);
    let requests_now = receiver.requests.lock().unwrap().clone();
    assert_eq!(requests_now.len(), 2, "the 400 was retried");
    assert_eq!(requests[0].header("x-flink-gitops-delivery"), first.id);
    assert_eq!(requests[1].header("x-flink-gitops-delivery"), second.id);
}

#[tokio::test]
async fn overflow_is_counted_when_the_receiver_is_down() {
    // A port nobody listens on: every attempt is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let mut down = webhook(format!("http://{address}/"), None);
    down.max_attempts = 10;
    let mut settings = settings_with(vec![down]);
    settings.queue_size = 2;
    let notifier = Notifier::start(&settings, fast()).unwrap();
    let started = Instant::now();
    for n in 0..50 {
        notifier.send(applied("main", n));
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "send blocked"
    );
    // At most the queue and the one in flight survive.
    assert!(notifier.dropped() >= 47, "dropped {}", notifier.dropped());
    assert!(!notifier.shutdown(Duration::from_millis(20)).await);
}

#[tokio::test]
async fn overflow_is_counted_when_the_receiver_is_slow() {
    let receiver = Arc::new(Receiver {
        delay: Some(Duration::from_millis(200)),
        ..Receiver::default()
    });
    let url = serve(receiver.clone()).await;
    let mut settings = settings_with(vec![webhook(url, None)]);
    settings.queue_size = 3;
    let notifier = Notifier::start(&settings, fast()).unwrap();
    for n in 0..20 {
        notifier.send(applied("main", n));
    }
    assert!(notifier.dropped() >= 16, "dropped {}", notifier.dropped());
    let dropped = notifier.dropped();
    // Everything queued is delivered by the drain.
    assert!(notifier.shutdown(Duration::from_secs(2)).await);
    assert_eq!(receiver.requests.lock().unwrap().len() as u64, 20 - dropped);
}

#[tokio::test]
async fn github_deployments_and_statuses() {
    let api = Arc::new(Receiver::default());
    let url = serve(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let token = secret_file(&dir, "token", "ghp_token123\n");
    let settings = NotificationSettings {
        github: Some(GithubSettings {
            api_url: format!("{url}/api/v3/"),
            repository: "org/soa-configs".into(),
            token_file: token,
            events: EventKind::ALL.to_vec(),
            timeout: Duration::from_secs(1),
            max_attempts: 3,
        }),
        ..NotificationSettings::default()
    };
    let notifier = Notifier::start(&settings, fast()).unwrap();
    let rev1 = "aaaa1111";
    let rev2 = "bbbb2222";
    let event = |kind, revision: &str, instance: &str| {
        DeploymentEvent::new(kind, "norcal-devc", revision).instance(
            "example_happyhour",
            instance,
            format!("FlinkCluster/paasta-flinks/{instance}"),
        )
    };
    notifier.send(event(EventKind::Applied, rev1, "main"));
    notifier.send(event(EventKind::Ready, rev1, "main"));
    notifier.send(event(EventKind::Applied, rev1, "canary"));
    notifier.send(event(EventKind::Failed, rev1, "canary"));
    notifier.send(event(EventKind::Applied, rev2, "main"));
    // 2 deployments + 2 pending + 5 statuses.
    let requests = wait_for(&api, 9).await;
    assert!(notifier.shutdown(Duration::from_secs(1)).await);
    assert_eq!(api.requests.lock().unwrap().len(), 9);

    for request in &requests {
        assert_eq!(request.header("authorization"), "Bearer ghp_token123");
        assert_eq!(request.header("accept"), "application/vnd.github+json");
    }
    let calls: Vec<(String, String)> = requests
        .iter()
        .map(|r| {
            let body = r.json();
            let what = body["state"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("deploy {}", body["ref"].as_str().unwrap()));
            (r.path.clone(), what)
        })
        .collect();
    let deployments = "/api/v3/repos/org/soa-configs/deployments";
    let statuses = |id: u64| format!("{deployments}/{id}/statuses");
    let expected: Vec<(String, String)> = [
        (deployments.to_owned(), "deploy aaaa1111"),
        (statuses(42), "pending"),
        (statuses(42), "in_progress"),
        (statuses(42), "success"),
        (statuses(42), "in_progress"),
        (statuses(42), "failure"),
        (deployments.to_owned(), "deploy bbbb2222"),
        (statuses(43), "pending"),
        (statuses(43), "in_progress"),
    ]
    .into_iter()
    .map(|(path, what)| (path, what.to_owned()))
    .collect();
    assert_eq!(calls, expected);

    let created = requests[0].json();
    assert_eq!(created["ref"], rev1);
    assert_eq!(created["environment"], "norcal-devc");
    assert_eq!(created["auto_merge"], false);
    assert_eq!(created["required_contexts"], serde_json::json!([]));
    assert_eq!(
        created["payload"],
        serde_json::json!({"service": "example_happyhour", "instance": "main"})
    );
}

#[tokio::test]
async fn slack_gets_one_line() {
    let receiver = Arc::new(Receiver::default());
    let url = serve(receiver.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let url_file = secret_file(&dir, "slack", &format!("{url}/services/T000/B000/XXXX\n"));
    let settings = NotificationSettings {
        slack: vec![SlackSettings {
            url_file,
            events: vec![EventKind::Failed],
            timeout: Duration::from_secs(1),
            max_attempts: 2,
        }],
        ..NotificationSettings::default()
    };
    let notifier = Notifier::start(&settings, fast()).unwrap();
    notifier.send(applied("main", 1));
    notifier.send(
        DeploymentEvent::new(EventKind::Failed, "norcal-devc", "0123456789abcdef")
            .instance("svc", "main", "FlinkCluster/ns/svc-main")
            .message("state FAILED\nafter 5m"),
    );
    let requests = wait_for(&receiver, 1).await;
    assert!(notifier.shutdown(Duration::from_secs(1)).await);
    assert_eq!(receiver.requests.lock().unwrap().len(), 1);
    assert_eq!(requests[0].path, "/services/T000/B000/XXXX");
    assert_eq!(
        requests[0].json(),
        serde_json::json!({
            "text": "flink-gitops failed: svc.main on norcal-devc at 0123456789ab: state FAILED after 5m"
        })
    );
}

#[tokio::test]
async fn secrets_stay_out_of_errors_and_debug() {
    let dir = tempfile::tempdir().unwrap();
    let url_file = secret_file(&dir, "slack", "not-a-url-hunter2\n");
    let settings = NotificationSettings {
        slack: vec![SlackSettings {
            url_file,
            events: EventKind::ALL.to_vec(),
            timeout: Duration::from_secs(1),
            max_attempts: 1,
        }],
        ..NotificationSettings::default()
    };
    let err = Notifier::start(&settings, fast()).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");

    let token = secret_file(&dir, "token", "ghp_hunter2");
    let slack_url = secret_file(&dir, "slack-ok", "https://hooks.example/services/hunter2");
    let settings = NotificationSettings {
        github: Some(GithubSettings {
            api_url: "https://api.github.com".into(),
            repository: "org/repo".into(),
            token_file: token,
            events: EventKind::ALL.to_vec(),
            timeout: Duration::from_secs(1),
            max_attempts: 1,
        }),
        slack: vec![SlackSettings {
            url_file: slack_url,
            events: EventKind::ALL.to_vec(),
            timeout: Duration::from_secs(1),
            max_attempts: 1,
        }],
        ..NotificationSettings::default()
    };
    let notifier = Notifier::start(&settings, fast()).unwrap();
    let shown = format!("{notifier:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(notifier.shutdown(Duration::from_millis(10)).await);
}
