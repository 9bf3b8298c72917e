//! The daemon says what is wrong once: a problem is logged when it appears
//! and when it clears, counted once, and listed on `/status` meanwhile.

mod support;

use serde_json::Value as Json;
use support::daemon_process::{
    Daemon, NO_LEADER_ELECTION, PATIENCE, daemon_server, serial, wait_for,
};
use support::scenario::{ALPHA, write_file, write_soa_configs};

fn problems(daemon: &Daemon) -> Vec<Json> {
    daemon.status()["problems"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_broken_file_is_one_problem_said_once_until_it_is_fixed() {
    let _serial = serial();
    let server = daemon_server();
    let soa = tempfile::tempdir().expect("soa");
    write_soa_configs(soa.path());
    let daemon = Daemon::start(
        &server,
        &format!(
            "source: {{dir: '{}', poll_interval: 300ms, debounce: 100ms}}",
            soa.path().display()
        ),
        NO_LEADER_ELECTION,
        "",
    );
    daemon.wait_ready();
    write_file(
        &soa.path().join("alpha/flink-c1.yaml"),
        "main: {job_type: [\n",
    );
    wait_for("the problem listed", PATIENCE, || {
        problems(&daemon).iter().any(|p| {
            p["kind"] == "load"
                && p["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("alpha/flink-c1.yaml"))
        })
    });
    // Many full cycles later, still one problem, counted and logged once.
    let cycles = daemon.cycles();
    daemon.wait_cycles(cycles, 5.0);
    assert_eq!(problems(&daemon).len(), 1, "{:?}", problems(&daemon));
    assert_eq!(
        daemon.metric("flink_gitops_errors_total", "category=\"load\""),
        1.0
    );
    let log = daemon.log();
    assert_eq!(log.matches("invalid YAML").count(), 1, "{log}");

    write_file(&soa.path().join("alpha/flink-c1.yaml"), ALPHA);
    wait_for("the problem cleared", PATIENCE, || {
        problems(&daemon).is_empty()
    });
    assert!(daemon.log().contains("resolved"), "{}", daemon.log());
}

/// A git remote that accepts the connection and never answers: each fetch
/// fails within `source.git.timeout`, `/status` says so, and a SIGTERM
/// still ends the daemon at once.
#[test]
fn a_silent_git_remote_fails_each_fetch_within_the_timeout() {
    let _serial = serial();
    let server = daemon_server();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Accept and hold every connection, answering nothing.
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keeper = held.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            keeper.lock().expect("lock").push(stream);
        }
    });
    let cache = tempfile::tempdir().expect("cache");
    let started = std::time::Instant::now();
    let daemon = Daemon::start(
        &server,
        &format!(
            "source: {{git: {{url: 'git://127.0.0.1:{port}/soa', branch: master, cache_dir: '{}', timeout: 1s}}, poll_interval: 300ms}}",
            cache.path().display()
        ),
        NO_LEADER_ELECTION,
        "",
    );
    wait_for("the fetch reported failing", PATIENCE, || {
        let status = daemon.status();
        status["source"]["healthy"] == serde_json::json!(false)
            && problems(&daemon).iter().any(|p| p["kind"] == "source")
    });
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // The first fetch gives up at the timeout; later ones say that it still
    // holds its connection (a fetch with no callbacks cannot be cut short).
    wait_for("the timeout logged", PATIENCE, || {
        daemon.log().contains("no answer within 1s")
    });
    assert_eq!(
        daemon.get("/readyz").map(|(code, _)| code),
        Some(503),
        "never synced"
    );
    let asked = std::time::Instant::now();
    daemon.send_term();
    let (code, log) = daemon.wait_exit(std::time::Duration::from_secs(20));
    assert_eq!(code, Some(0), "{log}");
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    drop(held);
}
