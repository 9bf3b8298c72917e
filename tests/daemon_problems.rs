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
