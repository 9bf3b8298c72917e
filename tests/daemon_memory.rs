//! The daemon's memory on a tree the size of a real one (docs/memory.md).
//!
//! Ignored: it takes minutes and measures rather than checks. The figures
//! worth writing down are a release binary's, named by `MEMORY_BIN`:
//!
//! ```text
//! cargo build --release --bin flink-gitops
//! MEMORY_BIN=target/release/flink-gitops \
//!     cargo test --test daemon_memory -- --ignored --nocapture
//! ```
//!
//! It writes the 2,000-service synthetic tree (`benches/support/synthetic.rs`,
//! cluster `c1`), starts `flink-gitops run` on it against the in-process fake
//! API server, and samples the process's `VmRSS` and `VmHWM` (peak) from
//! `/proc/<pid>/status` after the first sync and while service files change
//! (`MEMORY_TOUCHES`, 1000 by default, each waiting for its cycle). The
//! figures are printed, and the test fails only if RSS keeps growing.

mod support;
#[path = "../benches/support/synthetic.rs"]
#[allow(dead_code)]
mod synthetic;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::daemon_process::{daemon_server, free_port, http, sample, serial, wait_for};
use support::fake_apiserver::{FLINK_NAMESPACE, FLINK_PLURAL, FakeApiServer};

/// `flink-gitops run` for cluster `c1` on the directory `soa`, its stderr in
/// `dir/daemon.log`; the binary is `MEMORY_BIN` or the one cargo built.
fn start_daemon(server: &FakeApiServer, soa: &Path, dir: &Path, port: u16) -> Child {
    let kubeconfig = server.write_kubeconfig(dir);
    let config = format!(
        "cluster: c1\ndocker_registry: registry.example:443\nautotuned_defaults: true\n\
         source: {{dir: '{}', poll_interval: 1h, debounce: 50ms}}\n\
         server: {{listen: '127.0.0.1:{port}'}}\nleader_election: {{enabled: false}}\n",
        soa.display()
    );
    let config_path = dir.join("flink-gitops.yaml");
    std::fs::write(&config_path, config).expect("config");
    let log = std::fs::File::create(dir.join("daemon.log")).expect("log");
    let binary =
        std::env::var("MEMORY_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_flink-gitops").into());
    Command::new(binary)
        .arg("run")
        .arg("--config")
        .arg(&config_path)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env("RUST_LOG", "flink_gitops=warn")
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the daemon")
}

/// Kills the daemon if the test fails part way.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reconcile cycles finished so far (0 while unreachable).
fn cycles(port: u16) -> f64 {
    let metrics = http(port, "GET", "/metrics", &[], b"").map_or_else(String::new, |(_, m)| m);
    sample(
        &metrics,
        "flink_gitops_reconcile_duration_seconds_count",
        "",
    )
}

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The service files `flink-c1.yaml` of the tree, in name order.
fn instance_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("read the tree")
        .filter_map(|e| Some(e.ok()?.path().join("flink-c1.yaml")))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
#[ignore = "measures the daemon's memory for minutes; see docs/memory.md"]
fn daemon_memory_on_the_synthetic_tree() {
    let _serial = serial();
    let services: usize = std::env::var("MEMORY_SERVICES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(synthetic::DEFAULT_SERVICES);
    let touches: usize = std::env::var("MEMORY_TOUCHES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let soa = tempfile::tempdir().expect("tempdir");
    let root = soa.path().join("soa");
    let summary = synthetic::generate(
        &root,
        &synthetic::Options {
            services,
            clusters: vec!["c1".to_owned(), "norcal-devc".to_owned()],
            seed: synthetic::DEFAULT_SEED,
        },
    )
    .expect("generate the tree");
    let deployed = summary.clusters["c1"].deployed;
    println!(
        "tree: {} services, {} files, {} bytes; c1: {deployed} resources",
        summary.services, summary.files, summary.bytes
    );

    let server = daemon_server();
    let started = Instant::now();
    let port = free_port();
    let mut daemon = Running(start_daemon(&server, &root, soa.path(), port));
    let pid = daemon.0.id();
    wait_for("the first sync", Duration::from_secs(900), || {
        http(port, "GET", "/readyz", &[], b"").is_some_and(|(code, _)| code == 200)
    });
    wait_for("every resource", Duration::from_secs(60), || {
        server.objects(FLINK_PLURAL, FLINK_NAMESPACE).len() >= deployed
    });
    let first = cycles(port);
    let (rss, peak) = rss_kib(pid);
    println!(
        "after the first sync ({:.0?}, {first} cycles): VmRSS {}, VmHWM {}",
        started.elapsed(),
        mib(rss),
        mib(peak)
    );

    let files = instance_files(&root);
    let mut samples = vec![(0, rss)];
    let started = Instant::now();
    for touch in 1..=touches {
        let file = &files[(touch * 7919) % files.len()];
        let mut text = std::fs::read_to_string(file).expect("read");
        // A changed comment: the service is read, parsed and rendered again
        // (the cycle is real), the resources stay the same.
        text.push_str(&format!("# touch {touch}\n"));
        std::fs::write(file, text).expect("write");
        let before = cycles(port);
        wait_for(
            &format!("the cycle of touch {touch}"),
            Duration::from_secs(120),
            || cycles(port) > before,
        );
        if touch % (touches / 10).max(1) == 0 || touch == touches {
            let (rss, peak) = rss_kib(pid);
            samples.push((touch, rss));
            println!(
                "after {touch} touches ({:.0?}): VmRSS {}, VmHWM {}",
                started.elapsed(),
                mib(rss),
                mib(peak)
            );
        }
    }
    let (_, peak) = rss_kib(pid);
    println!("peak over the run (VmHWM): {}", mib(peak));
    // A leak shows as RSS still climbing over the second half of the run;
    // allocator noise stays within a few MB.
    let half = samples[samples.len() / 2].1;
    let last = samples[samples.len() - 1].1;
    assert!(
        last <= half + half / 5,
        "RSS grew from {} to {} over the second half",
        mib(half),
        mib(last)
    );
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = daemon.0.wait().expect("the daemon's exit");
    let log = std::fs::read_to_string(soa.path().join("daemon.log")).unwrap_or_default();
    assert!(status.success(), "{status}\n{log}");
}
