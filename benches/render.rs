//! Rendering one cluster of a 2,000-service soa-configs tree.
//!
//! ```text
//! cargo bench --bench render
//! ```
//!
//! The tree (~3 instances per service and cluster, see
//! `benches/support/synthetic.rs`) is generated once into a tempdir and
//! rendered for `pnw-prod` with `fixtures/flink-gitops.yaml`. Target on a
//! 2-core machine: the end-to-end `read_load_render` ≤ 100 ms. The other
//! benches split it into its stages, plus the YAML output that
//! `flink-gitops render` writes after rendering:
//!
//! * `read_load_render`: `pipeline::render_listing`, what `flink-gitops
//!   render` does: each thread reads, loads and renders one service at a time
//!   (the page cache is warm: the tree was just written); the result is
//!   dropped outside the timing, as the command leaves it to the process exit;
//! * `read_load_render_staged`: the same result stage by stage,
//!   `source::read_dir_for_cluster` + `config::load` + `render::render_owned`;
//! * `read_dir`, `config_load`, `render_render`: each stage alone, on the
//!   previous stage's output;
//! * `yaml_stream`: `value::yaml_out::to_yaml_stream` of the rendered objects.
//!
//! Before anything is timed, the rendered, skipped and failed counts are
//! checked against what the generator wrote, so a broken tree or renderer
//! cannot make the benchmark quietly measure nothing.

#[path = "support/synthetic.rs"]
mod synthetic;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use flink_gitops::config::{self, Settings};
use flink_gitops::source::{DirListing, read_dir_for_cluster};
use flink_gitops::value::yaml_out::to_yaml_stream;
use flink_gitops::{pipeline, render};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

/// The allocator of the `flink-gitops` binary (see `src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CLUSTER: &str = "pnw-prod";

fn settings() -> Settings {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/flink-gitops.yaml");
    let text = std::fs::read_to_string(&path).expect("read fixtures/flink-gitops.yaml");
    Settings::parse(&text, &path.display().to_string()).expect("valid fixtures/flink-gitops.yaml")
}

fn bench_render(c: &mut Criterion) {
    let tree = tempfile::tempdir().expect("tempdir");
    let options = synthetic::Options::default();
    let summary = synthetic::generate(tree.path(), &options).expect("generate the tree");
    let expected = summary.clusters[CLUSTER];
    let root = tree.path();
    let settings = settings();
    let selection = settings.file_selection();

    // Once, outside the timing: the pipeline sees what the generator wrote.
    let snapshot = read_dir_for_cluster(root, &selection, CLUSTER).expect("read the tree");
    let config_set = config::load(&snapshot, &settings, CLUSTER, None);
    let desired = render::render(&config_set, &settings, None);
    assert_eq!(snapshot.services.len(), summary.services, "services read");
    assert_eq!(
        config_set.unknown_services().count(),
        0,
        "services that failed to load"
    );
    assert!(
        desired.failed.is_empty(),
        "failed instances: {:?}",
        desired.failed.first()
    );
    assert_eq!(
        desired.resources.len(),
        expected.deployed,
        "rendered resources"
    );
    assert_eq!(
        desired.skipped.len(),
        expected.not_deployed,
        "skipped instances"
    );
    eprintln!(
        "tree: {} services, {} files, {} bytes; {CLUSTER}: {} resources rendered, {} skipped",
        summary.services,
        summary.files,
        summary.bytes,
        desired.resources.len(),
        desired.skipped.len()
    );

    let mut group = c.benchmark_group(format!("{CLUSTER}_{}_services", summary.services));
    // Each iteration takes tens to hundreds of milliseconds: flat sampling
    // keeps the run time bounded (criterion's advice for long benchmarks).
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(20));
    // The rendered set is dropped outside the timing, as `flink-gitops
    // render` leaves it to the process exit.
    group.bench_function("read_load_render", |b| {
        b.iter_with_large_drop(|| {
            let listing = DirListing::open(black_box(root), &selection, Some(CLUSTER))
                .expect("list the tree");
            pipeline::render_listing(&listing, &settings, CLUSTER, None, None)
        });
    });
    group.bench_function("read_load_render_staged", |b| {
        b.iter_with_large_drop(|| {
            let snapshot =
                read_dir_for_cluster(black_box(root), &selection, CLUSTER).expect("read the tree");
            let config_set = config::load(&snapshot, &settings, CLUSTER, None);
            render::render_owned(config_set, &settings, None)
        });
    });
    group.bench_function("read_dir", |b| {
        b.iter(|| {
            read_dir_for_cluster(black_box(root), &selection, CLUSTER).expect("read the tree")
        });
    });
    group.bench_function("config_load", |b| {
        b.iter(|| config::load(black_box(&snapshot), &settings, CLUSTER, None));
    });
    group.bench_function("render_render", |b| {
        b.iter(|| render::render(black_box(&config_set), &settings, None));
    });
    group.bench_function("yaml_stream", |b| {
        b.iter(|| to_yaml_stream(black_box(&desired).resources.iter().map(|r| &r.object)));
    });
    group.finish();
}

criterion_group!(benches, bench_render);
criterion_main!(benches);
