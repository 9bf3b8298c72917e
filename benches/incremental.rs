//! The daemon's incremental reconcile after a one-service commit: re-render
//! the changed service, then plan it against its live objects.
//!
//! ```text
//! cargo bench --bench incremental
//! ```
//!
//! Target on a 2-core machine: ≤ 5 ms of compute, flat in repository size
//! (measured at 500 and 2,000 services). IO (the git fetch, the LIST) is not
//! part of it. Checked once before timing: exactly one service is rendered
//! again and its instances plan as updates.

#[path = "support/synthetic.rs"]
mod synthetic;

use criterion::{Criterion, criterion_group, criterion_main};
use flink_gitops::config::Settings;
use flink_gitops::daemon::engine::Engine;
use flink_gitops::plan::{self, Action, LiveObject, Policy};
use flink_gitops::source::{Snapshot, read_dir};
use std::collections::BTreeSet;
use std::hint::black_box;
use std::path::Path;

const CLUSTER: &str = "pnw-prod";

fn settings() -> Settings {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/flink-gitops.yaml");
    let text = std::fs::read_to_string(&path).expect("config");
    Settings::parse(&text, "fixtures/flink-gitops.yaml").expect("settings")
}

/// A tree of `services`, its snapshot, a warm engine and the live objects as
/// the cluster holds them after the last apply.
fn setup(services: usize) -> (tempfile::TempDir, Snapshot, Engine, Vec<LiveObject>) {
    let tree = tempfile::tempdir().expect("tempdir");
    let options = synthetic::Options {
        services,
        ..synthetic::Options::default()
    };
    synthetic::generate(tree.path(), &options).expect("generate");
    let settings = settings();
    let selection = settings.file_selection();
    let snapshot = read_dir(tree.path(), &selection).expect("snapshot");
    let mut engine = Engine::new(settings, CLUSTER.to_owned());
    engine.update(&snapshot, None);
    let live = engine
        .desired(None)
        .resources
        .iter()
        .map(|r| LiveObject {
            kind: r.kind.clone(),
            plural: r.plural.clone(),
            api_version: r.api_version.clone(),
            object: r.object.to_json().expect("json"),
        })
        .collect();
    (tree, snapshot, engine, live)
}

/// The snapshot after a commit that changes one service's instance file.
fn commit_one(snapshot: &Snapshot, service: &str) -> Snapshot {
    let mut next = snapshot.clone();
    let files = next.services.get_mut(service).expect("service");
    let file = format!("flink-{CLUSTER}.yaml");
    let text = String::from_utf8(files.files[&file].clone()).expect("utf-8");
    files
        .files
        .insert(file, text.replace("cpus: ", "cpus: 1").into_bytes());
    next
}

fn bench_incremental(c: &mut Criterion) {
    let policy = Policy::default();
    let mut group = c.benchmark_group("incremental_one_service_commit");
    for services in [500, 2_000] {
        let (_tree, snapshot, mut engine, live) = setup(services);
        let service = snapshot
            .services
            .keys()
            .nth(services / 2)
            .expect("a service")
            .clone();
        let changed = BTreeSet::from([service.clone()]);
        let next = commit_one(&snapshot, &service);
        let scoped_live: Vec<LiveObject> = live
            .iter()
            .filter(|o| o.identity().is_some_and(|(s, _)| s == service))
            .cloned()
            .collect();

        let before = engine.counters().services_rendered;
        engine.update(&next, Some(&changed));
        assert_eq!(
            engine.counters().services_rendered,
            before + 1,
            "one service rendered"
        );
        let planned = plan::plan(&engine.desired(Some(&changed)), &scoped_live, &policy);
        assert!(
            planned
                .entries
                .iter()
                .any(|e| matches!(e.action, Action::Update(_))),
            "the commit shows up as updates"
        );

        let mut flip = false;
        group.bench_function(format!("{services}_services"), |b| {
            b.iter(|| {
                flip = !flip;
                let snapshot = if flip { &next } else { &snapshot };
                engine.update(black_box(snapshot), Some(&changed));
                let desired = engine.desired(Some(&changed));
                black_box(plan::plan(&desired, &scoped_live, &policy))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_incremental);
criterion_main!(benches);
