//! The built-in shutdown Job's script, run with python3 against a fake
//! JobManager REST API: it stops every running job with a savepoint into the
//! configured path and fails when any stop fails.

use axum::extract::{Path as UrlPath, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use flink_gitops::render::shutdown_job::default_template;
use serde_json::{Value as Json_, json};
use std::process::Command;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Flink {
    stops: Vec<(String, Json_)>,
    polls: usize,
    fail_savepoint: bool,
}

type Shared = Arc<Mutex<Flink>>;

async fn overview() -> Json<Json_> {
    Json(json!({"jobs": [
        {"jid": "j1", "name": "sessionize", "state": "RUNNING"},
        {"jid": "j2", "name": "backfill", "state": "FINISHED"},
        {"jid": "j3", "name": "enrich", "state": "RUNNING"}
    ]}))
}

async fn stop(
    State(flink): State<Shared>,
    UrlPath(jid): UrlPath<String>,
    Json(body): Json<Json_>,
) -> Json<Json_> {
    let mut flink = flink.lock().expect("lock");
    flink.stops.push((jid.clone(), body));
    Json(json!({"request-id": format!("trigger-{jid}")}))
}

async fn savepoint(
    State(flink): State<Shared>,
    UrlPath((jid, _trigger)): UrlPath<(String, String)>,
) -> Json<Json_> {
    let mut flink = flink.lock().expect("lock");
    flink.polls += 1;
    if flink.polls % 2 == 1 {
        return Json(json!({"status": {"id": "IN_PROGRESS"}}));
    }
    if flink.fail_savepoint && jid == "j3" {
        return Json(json!({"status": {"id": "COMPLETED"},
                           "operation": {"failure-cause": {"class": "java.io.IOException"}}}));
    }
    Json(
        json!({"status": {"id": "COMPLETED"}, "operation": {"location": format!("s3://sp/{jid}")}}),
    )
}

/// Serves the fake JobManager and runs the script; returns its exit code and
/// the stop requests it made.
fn run_script(fail_savepoint: bool) -> (i32, Vec<(String, Json_)>, String) {
    let template = default_template().expect("template");
    let script = template
        .pointer("/spec/template/spec/containers/0/command/2")
        .and_then(Json_::as_str)
        .expect("script")
        .to_owned();
    let flink: Shared = Arc::new(Mutex::new(Flink {
        fail_savepoint,
        ..Flink::default()
    }));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    let app = Router::new()
        .route("/jobs/overview", get(overview))
        .route("/jobs/{jid}/stop", post(stop))
        .route("/jobs/{jid}/savepoints/{trigger}", get(savepoint))
        .with_state(flink.clone());
    runtime.spawn(async move { axum::serve(listener, app).await });
    let output = Command::new("python3")
        .args(["-c", &script])
        .env("FLINK_GITOPS_DASHBOARD_URL", format!("http://{address}/"))
        .env("FLINK_GITOPS_SAVEPOINT_PATH", "s3://savepoints/svc/")
        .output()
        .expect("python3 runs the shutdown script");
    let stops = flink.lock().expect("lock").stops.clone();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stops, stderr)
}

#[test]
fn stops_every_running_job_with_a_savepoint() {
    let (code, stops, stderr) = run_script(false);
    assert_eq!(code, 0, "{stderr}");
    let jobs: Vec<&str> = stops.iter().map(|(jid, _)| jid.as_str()).collect();
    assert_eq!(jobs, ["j1", "j3"], "only RUNNING jobs are stopped");
    for (_, body) in &stops {
        assert_eq!(
            body,
            &json!({"drain": false, "targetDirectory": "s3://savepoints/svc/"})
        );
    }
}

#[test]
fn a_failed_savepoint_fails_the_job() {
    let (code, stops, stderr) = run_script(true);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stops.len(), 2, "the other jobs are still stopped");
    assert!(stderr.contains("failed to stop enrich (j3)"), "{stderr}");
}
