//! Planning 6,000 rendered instances against 6,000 live objects, all in sync.
//!
//! ```text
//! cargo bench --bench plan
//! ```
//!
//! Target on a 2-core machine: ≤ 50 ms. The live objects are what the API
//! server hands back after our apply: the rendered object with server
//! metadata, an operator annotation, status, integral floats as integers and
//! a managedFields entry of ours covering every field, so every comparison
//! rule (including the owned-field check) does its full work. The plan is
//! checked once to be all-unchanged before anything is timed.

use criterion::{Criterion, criterion_group, criterion_main};
use flink_gitops::config::Settings;
use flink_gitops::plan::{self, Action, LiveObject, Policy};
use flink_gitops::render::flink::{ResourceInput, build};
use flink_gitops::render::{DesiredResource, DesiredSet};
use flink_gitops::value::Value;
use serde_json::{Map, Value as Json, json};
use std::hint::black_box;

/// The allocator of the `flink-gitops` binary (see `src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const INSTANCES: usize = 6_000;
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn spec(index: usize) -> Value {
    Value::from_json(&json!({
        "job_type": if index.is_multiple_of(3) { "stateless" } else { "stateful" },
        "checkpoint_interval_ms": 60_000 + index,
        "deploy_group": "prod.everything",
        "taskmanager": {"cpus": 1.5, "mem": 4096, "instances": 2 + index % 7},
        "jobmanager": {"cpus": 1.0, "mem": 2048},
        "checkpoint_path": format!("s3://checkpoints/svc{index}/"),
        "savepoint_path": format!("s3://savepoints/svc{index}/"),
        "flink_conf": {
            "state.backend.type": "rocksdb",
            "execution.checkpointing.interval": "60000",
            "taskmanager.numberOfTaskSlots": 4,
            "pipeline.max-parallelism": 720,
        },
        "jobs": [{"name": "main", "parallelism": 8}],
    }))
}

/// The `fieldsV1` trie of every leaf of `value`.
fn fields_v1(value: &Json) -> Json {
    match value.as_object() {
        Some(map) if !map.is_empty() => Json::Object(
            map.iter()
                .map(|(k, v)| (format!("f:{k}"), fields_v1(v)))
                .collect::<Map<_, _>>(),
        ),
        _ => json!({}),
    }
}

fn fixture() -> (DesiredSet, Vec<LiveObject>) {
    let settings = Settings::default();
    let kind = &settings.kinds[0];
    let mut desired = DesiredSet {
        cluster: "pnw-prod".into(),
        ..DesiredSet::default()
    };
    let mut live = Vec::with_capacity(INSTANCES);
    for index in 0..INSTANCES {
        let service = format!("service_{}", index / 3);
        let instance = format!("instance_{}", index % 3);
        let spec = spec(index);
        let built = build(&ResourceInput {
            service: &service,
            instance: &instance,
            cluster: "pnw-prod",
            kind,
            settings: &settings,
            spec: &spec,
            git_sha: SHA,
        });
        let mut object = built.object.to_json().expect("json");
        let ours = json!([{
            "manager": "flink-gitops", "operation": "Apply", "apiVersion": "yelp.com/v1alpha1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": fields_v1(&json!({"labels": object["metadata"]["labels"], "annotations": object["metadata"]["annotations"]})),
                         "f:spec": fields_v1(&object["spec"])}
        }]);
        object["metadata"]["resourceVersion"] = json!(index.to_string());
        object["metadata"]["uid"] = json!(format!("uid-{index}"));
        object["metadata"]["generation"] = json!(1);
        object["metadata"]["managedFields"] = ours;
        object["metadata"]["annotations"]["flink.yelp.com/dashboard_url"] = json!("http://dash/");
        object["spec"]["jobmanager"]["cpus"] = json!(1);
        object["status"] = json!({"state": "running", "pod_status": [{"phase": "Running"}]});
        live.push(LiveObject {
            kind: "Flink".into(),
            plural: "flinks".into(),
            api_version: "yelp.com/v1alpha1".into(),
            object,
        });
        desired.resources.push(DesiredResource {
            service,
            instance,
            file_prefix: "flink".into(),
            api_version: kind.api_version(),
            kind: kind.kind.clone(),
            plural: kind.plural.clone(),
            namespace: kind.namespace(),
            name: built.name,
            config_sha: built.config_sha,
            git_sha: SHA.into(),
            object: built.object,
            source: String::new(),
        });
    }
    (desired, live)
}

fn bench_plan(c: &mut Criterion) {
    let (desired, live) = fixture();
    let policy = Policy::default();
    let once = plan::plan(&desired, &live, &policy);
    assert_eq!(once.entries.len(), INSTANCES);
    assert!(
        once.entries.iter().all(|e| e.action == Action::Unchanged),
        "fixture must be in sync: {:?}",
        once.entries.iter().find(|e| e.action != Action::Unchanged)
    );
    c.bench_function("plan_6000_in_sync", |b| {
        b.iter(|| plan::plan(black_box(&desired), black_box(&live), &policy));
    });
}

criterion_group!(benches, bench_plan);
criterion_main!(benches);
