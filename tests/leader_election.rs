//! Leader election on a `coordination.k8s.io/v1` Lease against the fake API
//! server over real HTTP: creation, renewal, exclusion, takeover after
//! expiry, release, conflicts, and the `run` loop.

mod support;

use flink_gitops::apply::{KubeCluster, RetryPolicy};
use flink_gitops::config::daemon_settings::LeaderSettings;
use flink_gitops::daemon::leader::{LeaderElector, default_identity};
use serde_json::{Value as Json, json};
use std::time::{Duration, Instant};
use support::fake_apiserver::{FakeApiServer, Fault};

const NS: &str = "flink-gitops";
const LEASE: &str = "flink-gitops";
const LEASE_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/flink-gitops/leases";

struct Env {
    server: FakeApiServer,
    cluster: KubeCluster,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn new() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = FakeApiServer::start();
        server.register_leases();
        server.create_namespace(NS);
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = server.write_kubeconfig(dir.path());
        let retry = RetryPolicy {
            attempts: 2,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(20),
        };
        let cluster =
            KubeCluster::connect_with(Some(&kubeconfig), None, retry, Duration::from_secs(30))
                .await
                .expect("connect");
        Env {
            server,
            cluster,
            _dir: dir,
        }
    }

    fn elector(&self, identity: &str, lease_duration: Duration) -> LeaderElector {
        let settings = LeaderSettings {
            lease_duration,
            retry_period: Duration::from_millis(200),
            ..LeaderSettings::default()
        };
        LeaderElector::new(
            self.cluster.clone(),
            &settings,
            identity.to_owned(),
            NS.to_owned(),
        )
    }

    fn lease(&self) -> Json {
        self.server
            .object("leases", NS, LEASE)
            .expect("the lease exists")
    }

    fn spec(&self, key: &str) -> Json {
        self.lease()["spec"][key].clone()
    }
}

fn is_micro_time(value: &Json) -> bool {
    let text = value.as_str().unwrap_or_default();
    // 2026-11-26T12:00:00.123456Z
    text.len() == 27
        && text.ends_with('Z')
        && text.as_bytes()[19] == b'.'
        && humantime::parse_rfc3339(text).is_ok()
}

#[tokio::test]
async fn a_single_elector_creates_the_lease_and_leads() {
    let env = Env::new().await;
    let mut a = env.elector("a", Duration::from_secs(2));
    assert!(a.try_acquire_or_renew().await.expect("round"));
    assert!(a.is_leader());
    let lease = env.lease();
    assert_eq!(lease["apiVersion"], json!("coordination.k8s.io/v1"));
    assert_eq!(lease["kind"], json!("Lease"));
    let spec = &lease["spec"];
    assert_eq!(spec["holderIdentity"], json!("a"));
    assert_eq!(spec["leaseDurationSeconds"], json!(2));
    assert_eq!(spec["leaseTransitions"], json!(0));
    assert!(is_micro_time(&spec["acquireTime"]), "{spec}");
    assert!(is_micro_time(&spec["renewTime"]), "{spec}");
    assert_eq!(env.server.count("POST", LEASE_PATH), 1);

    // Renewal: a guarded PUT that moves renewTime and keeps acquireTime.
    let first_rv = lease["metadata"]["resourceVersion"].clone();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(a.try_acquire_or_renew().await.expect("renew"));
    let renewed = env.lease();
    assert_eq!(renewed["spec"]["acquireTime"], spec["acquireTime"]);
    assert_ne!(renewed["spec"]["renewTime"], spec["renewTime"]);
    assert_eq!(renewed["spec"]["leaseTransitions"], json!(0));
    let put = env
        .server
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PUT")
        .expect("a PUT");
    assert_eq!(put.path, format!("{LEASE_PATH}/{LEASE}"));
    assert_eq!(put.body["metadata"]["resourceVersion"], first_rv);
}

#[tokio::test]
async fn two_electors_have_exactly_one_leader() {
    let env = Env::new().await;
    let mut a = env.elector("a", Duration::from_secs(2));
    let mut b = env.elector("b", Duration::from_secs(2));
    // Racing for a fresh lease: one POST wins, the other gets 409.
    let (ra, rb) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
    let (ra, rb) = (ra.expect("a"), rb.expect("b"));
    assert!(ra ^ rb, "a={ra} b={rb}");
    let holder = if ra { "a" } else { "b" };
    for _ in 0..5 {
        let (ra, rb) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
        let (ra, rb) = (ra.expect("a"), rb.expect("b"));
        assert!(ra ^ rb, "a={ra} b={rb}");
        assert_eq!(ra, holder == "a");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(env.spec("holderIdentity"), json!(holder));
    assert_eq!(env.spec("leaseTransitions"), json!(0));
}

#[tokio::test]
async fn a_standby_takes_over_once_the_leader_stops_renewing() {
    let env = Env::new().await;
    let lease_duration = Duration::from_secs(2);
    let mut a = env.elector("a", lease_duration);
    let mut b = env.elector("b", lease_duration);
    assert!(a.try_acquire_or_renew().await.expect("a"));
    let acquired = env.spec("acquireTime");
    let stopped = Instant::now();
    drop(a); // the leader dies
    let mut b_rounds = 0;
    loop {
        let leads = b.try_acquire_or_renew().await.expect("b");
        if leads {
            break;
        }
        b_rounds += 1;
        assert!(stopped.elapsed() < Duration::from_secs(4), "no takeover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(b_rounds > 5, "b waited its rounds");
    assert!(
        stopped.elapsed() >= lease_duration,
        "taken over after {:?}",
        stopped.elapsed()
    );
    assert_eq!(env.spec("holderIdentity"), json!("b"));
    assert_eq!(env.spec("leaseTransitions"), json!(1));
    assert_ne!(env.spec("acquireTime"), acquired);

    // The old leader, back, finds the lease taken and stays a standby.
    let mut a = env.elector("a", lease_duration);
    assert!(!a.try_acquire_or_renew().await.expect("a again"));
    assert!(b.try_acquire_or_renew().await.expect("b renews"));
    assert_eq!(env.spec("leaseTransitions"), json!(1));
}

#[tokio::test]
async fn release_hands_over_without_waiting_for_expiry() {
    let env = Env::new().await;
    // A long lease: only a release can hand it over within the test.
    let mut a = env.elector("a", Duration::from_secs(60));
    let mut b = env.elector("b", Duration::from_secs(60));
    assert!(a.try_acquire_or_renew().await.expect("a"));
    assert!(!b.try_acquire_or_renew().await.expect("b"));
    a.release().await.expect("release");
    assert!(!a.is_leader());
    assert_eq!(env.spec("holderIdentity"), json!(""));
    assert_eq!(env.spec("leaseDurationSeconds"), json!(1));
    assert!(b.try_acquire_or_renew().await.expect("b takes over"));
    assert_eq!(env.spec("holderIdentity"), json!("b"));
    assert_eq!(env.spec("leaseTransitions"), json!(1));
    assert_eq!(env.spec("leaseDurationSeconds"), json!(60));
    // Releasing a lease one does not hold changes nothing.
    let rv = env.lease()["metadata"]["resourceVersion"].clone();
    a.release().await.expect("release by a standby");
    assert_eq!(env.lease()["metadata"]["resourceVersion"], rv);
    assert_eq!(env.spec("holderIdentity"), json!("b"));
}

#[tokio::test]
async fn a_conflict_during_renewal_is_not_leadership_for_that_round() {
    let env = Env::new().await;
    let mut a = env.elector("a", Duration::from_secs(2));
    assert!(a.try_acquire_or_renew().await.expect("a"));
    env.server
        .inject(Fault::status(409).method("PUT").path("leases"));
    assert!(!a.try_acquire_or_renew().await.expect("a round with 409"));
    assert!(!a.is_leader());
    assert_eq!(env.server.pending_faults(), 0);
    // Still the holder on the server: the next round renews.
    assert!(a.try_acquire_or_renew().await.expect("a renews"));
    assert_eq!(env.spec("leaseTransitions"), json!(0));
}

#[tokio::test]
async fn a_stale_resource_version_is_refused_by_the_fake() {
    let env = Env::new().await;
    let mut a = env.elector("a", Duration::from_secs(2));
    assert!(a.try_acquire_or_renew().await.expect("a"));
    let stale = env.lease();
    assert!(a.try_acquire_or_renew().await.expect("a renews"));
    let mut body = stale.clone();
    body["spec"]["holderIdentity"] = json!("intruder");
    let path = format!("{LEASE_PATH}/{LEASE}");
    let response = env.server.raw(
        "PUT",
        &path,
        Some("application/json"),
        Some(&body.to_string()),
    );
    assert_eq!(response.status, 409);
    assert_eq!(env.spec("holderIdentity"), json!("a"));
}

#[tokio::test]
async fn run_publishes_leadership_and_releases_on_shutdown() {
    let env = Env::new().await;
    let a = env.elector("a", Duration::from_secs(2));
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(a.run(tx, async {
        let _ = stopped.await;
    }));
    tokio::time::timeout(Duration::from_secs(2), rx.wait_for(|leads| *leads))
        .await
        .expect("leadership within 2s")
        .expect("channel open");
    assert_eq!(env.spec("holderIdentity"), json!("a"));
    // A few renewals.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(env.server.count("PUT", LEASE_PATH) >= 2);
    assert!(*rx.borrow());
    stop.send(()).expect("stop");
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("run returns")
        .expect("no panic");
    assert!(!*rx.borrow_and_update());
    assert_eq!(env.spec("holderIdentity"), json!(""));
}

#[tokio::test]
async fn run_steps_down_before_the_lease_can_expire() {
    let env = Env::new().await;
    let lease_duration = Duration::from_secs(1);
    let a = env.elector("a", lease_duration);
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(a.run(tx, async {
        let _ = stopped.await;
    }));
    tokio::time::timeout(Duration::from_secs(2), rx.wait_for(|leads| *leads))
        .await
        .expect("leadership")
        .expect("channel open");
    // The apiserver stops answering lease requests.
    env.server
        .inject(Fault::status(503).path("leases").times(10_000));
    let broken = Instant::now();
    tokio::time::timeout(Duration::from_secs(2), rx.wait_for(|leads| !*leads))
        .await
        .expect("stepped down")
        .expect("channel open");
    assert!(
        broken.elapsed() < lease_duration,
        "stepped down after {:?}",
        broken.elapsed()
    );
    env.server.clear_faults();
    // Nobody took it: once the apiserver answers again, a leads again.
    tokio::time::timeout(Duration::from_secs(2), rx.wait_for(|leads| *leads))
        .await
        .expect("leads again")
        .expect("channel open");
    stop.send(()).expect("stop");
    task.await.expect("no panic");
    assert_eq!(env.spec("holderIdentity"), json!(""));
}

#[test]
fn default_identity_prefers_the_pod_name() {
    // POD_NAME is not set under cargo test unless the environment does.
    let identity = default_identity();
    match std::env::var("POD_NAME") {
        Ok(pod) if !pod.trim().is_empty() => assert_eq!(identity, pod.trim()),
        _ => assert!(!identity.is_empty()),
    }
}
