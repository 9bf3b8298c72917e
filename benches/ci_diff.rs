//! A pull request touching 5 services of the 2,000-service synthetic
//! repository: `flink-gitops diff --repo --base --head` end to end (the
//! process: reading both revisions from git, rendering the changed
//! services, comparing, writing the JSON report).
//!
//! ```text
//! cargo bench --bench ci_diff
//! ```
//!
//! Target on a 2-core machine: ≤ 200 ms. Checked once before timing: the
//! report names exactly the 5 services.

#[path = "support/synthetic.rs"]
mod synthetic;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.com",
        ])
        .args(args)
        .current_dir(dir)
        .status()
        .expect("git");
    assert!(status.success(), "git {args:?}");
}

fn bench_ci_diff(c: &mut Criterion) {
    let repo = tempfile::tempdir().expect("tempdir");
    synthetic::generate(repo.path(), &synthetic::Options::default()).expect("generate");
    git(repo.path(), &["init", "-q", "-b", "master"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "base"]);
    let mut services: Vec<String> = std::fs::read_dir(repo.path())
        .expect("read")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("flink-pnw-prod.yaml").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    services.sort();
    let touched: Vec<&String> = services
        .iter()
        .step_by(services.len() / 5)
        .take(5)
        .collect();
    for service in &touched {
        let file = repo.path().join(service).join("flink-pnw-prod.yaml");
        let text = std::fs::read_to_string(&file).expect("instance file");
        std::fs::write(&file, text.replace("cpus: ", "cpus: 1")).expect("write");
    }
    git(repo.path(), &["commit", "-q", "-am", "touch 5 services"]);
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/flink-gitops.yaml");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
            .args(["diff", "--repo", repo.path().to_str().expect("utf-8")])
            .args(["--base", "HEAD~1", "--head", "HEAD", "--output", "json"])
            .args(["--config", config.to_str().expect("utf-8")])
            .output()
            .expect("run flink-gitops diff")
    };
    let once = run();
    let report = String::from_utf8(once.stdout).expect("utf-8");
    for service in &touched {
        assert!(
            report.contains(&format!("\"{service}\"")),
            "{service} missing from the report"
        );
    }
    let mut group = c.benchmark_group("ci_diff");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("pr_touching_5_of_2000_services", |b| b.iter(run));
    group.finish();
}

criterion_group!(benches, bench_ci_diff);
criterion_main!(benches);
