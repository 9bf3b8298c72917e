//! Parity with PaaSTA 1.64.0: for every fixture cluster, every resource PaaSTA
//! renders (fixtures/golden/*.jsonl, produced by scripts/paasta_golden.py) is
//! rendered byte-identically (as `json.dumps(sort_keys=True)`), with the same
//! skip and failure decisions.
//!
//! The one allowed difference is a resource PaaSTA renders that the
//! Kubernetes API server would reject (an invalid label value): we fail that
//! instance up front. The test proves the rejection from the golden resource
//! itself rather than from a list of names.

use flink_gitops::config::{self, Settings};
use flink_gitops::render::{self, DesiredSet};
use flink_gitops::source::read_dir;
use flink_gitops::value::python_json::dumps;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const CLUSTERS: [&str; 2] = ["pnw-prod", "norcal-devc"];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn render_cluster(cluster: &str) -> DesiredSet {
    let root = manifest_dir();
    let text = std::fs::read_to_string(root.join("fixtures/flink-gitops.yaml")).expect("config");
    let settings = Settings::parse(&text, "fixtures/flink-gitops.yaml").expect("settings");
    // The golden skip messages carry the soa dir exactly as PaaSTA was given it.
    std::env::set_current_dir(root).expect("cd");
    let selection = settings.file_selection();
    let snapshot = read_dir(Path::new("fixtures/soa-configs"), &selection).expect("snapshot");
    let config_set = config::load(&snapshot, &settings, cluster, None);
    render::render(&config_set, &settings, None)
}

#[derive(Default)]
struct Golden {
    /// `service.instance` → the exact JSON line.
    resources: BTreeMap<String, String>,
    skips: BTreeMap<String, String>,
    errors: BTreeSet<String>,
    service_errors: BTreeSet<String>,
}

fn golden(cluster: &str) -> Golden {
    let path = manifest_dir().join(format!("fixtures/golden/{cluster}.jsonl"));
    let text = std::fs::read_to_string(&path).expect("golden file");
    let mut golden = Golden::default();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let json: serde_json::Value = serde_json::from_str(line).expect("golden line is JSON");
        let str_of = |key: &str| json[key].as_str().map(str::to_owned);
        if let Some(subject) = str_of("skip") {
            golden
                .skips
                .insert(subject, str_of("why").unwrap_or_default());
        } else if let Some(subject) = str_of("error") {
            golden.errors.insert(subject);
        } else if let Some(service) = str_of("service_error") {
            golden.service_errors.insert(service);
        } else {
            let labels = &json["metadata"]["labels"];
            let subject = format!(
                "{}.{}",
                labels["paasta.yelp.com/service"]
                    .as_str()
                    .expect("service label"),
                labels["paasta.yelp.com/instance"]
                    .as_str()
                    .expect("instance label")
            );
            golden.resources.insert(subject, line.to_owned());
        }
    }
    golden
}

/// Kubernetes' label-value rule, checked on the golden object itself.
fn api_server_rejects_labels(line: &str) -> bool {
    let json: serde_json::Value = serde_json::from_str(line).expect("json");
    let labels = json["metadata"]["labels"].as_object().expect("labels");
    labels.values().filter_map(|v| v.as_str()).any(|value| {
        let bytes = value.as_bytes();
        value.len() > 63
            || !bytes.is_empty()
                && (!bytes[0].is_ascii_alphanumeric()
                    || !bytes[bytes.len() - 1].is_ascii_alphanumeric()
                    || !bytes
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
    })
}

#[test]
fn every_resource_is_byte_identical_to_paasta() {
    for cluster in CLUSTERS {
        let golden = golden(cluster);
        let desired = render_cluster(cluster);
        assert!(!golden.resources.is_empty(), "{cluster}: empty golden file");
        let ours: BTreeMap<String, String> = desired
            .resources
            .iter()
            .map(|r| (format!("{}.{}", r.service, r.instance), dumps(&r.object)))
            .collect();
        let failed: BTreeSet<String> = desired
            .failed
            .iter()
            .map(|f| format!("{}.{}", f.service, f.instance))
            .collect();
        for (subject, line) in &golden.resources {
            match ours.get(subject) {
                Some(our_line) => {
                    assert_eq!(our_line, line, "{cluster}: {subject} differs from PaaSTA")
                }
                None => {
                    assert!(
                        failed.contains(subject) && api_server_rejects_labels(line),
                        "{cluster}: {subject} rendered by PaaSTA is missing from ours and is not a resource the API server would reject"
                    );
                }
            }
        }
        for subject in ours.keys() {
            assert!(
                golden.resources.contains_key(subject),
                "{cluster}: we render {subject}, PaaSTA does not"
            );
        }
    }
}

#[test]
fn skip_and_failure_decisions_match_paasta() {
    for cluster in CLUSTERS {
        let golden = golden(cluster);
        let desired = render_cluster(cluster);
        let skips: BTreeMap<String, String> = desired
            .skipped
            .iter()
            .map(|s| (format!("{}.{}", s.service, s.instance), s.reason.clone()))
            .collect();
        assert_eq!(skips, golden.skips, "{cluster}: skips and their reasons");
        let unknown: BTreeSet<String> = desired.unknown_services.keys().cloned().collect();
        assert_eq!(
            unknown, golden.service_errors,
            "{cluster}: services that fail to load"
        );
        for error in &golden.errors {
            assert!(
                desired
                    .failed
                    .iter()
                    .any(|f| &format!("{}.{}", f.service, f.instance) == error),
                "{cluster}: PaaSTA fails {error}, we do not"
            );
        }
    }
}

#[test]
fn config_sha_labels_match_the_hash_of_the_golden_body() {
    // Independent of our renderer: recompute PaaSTA's hash from each golden
    // body with our JSON emulation, proving the emulation on real output.
    for cluster in CLUSTERS {
        for line in golden(cluster).resources.values() {
            let json: serde_json::Value = serde_json::from_str(line).expect("json");
            let expected = json["metadata"]["labels"]["paasta.yelp.com/config_sha"]
                .as_str()
                .expect("config_sha")
                .to_owned();
            let mut pre_image = json.clone();
            let metadata = pre_image["metadata"].as_object_mut().expect("metadata");
            for key in ["yelp.com/desired_state", "paasta.yelp.com/desired_state"] {
                metadata["annotations"]
                    .as_object_mut()
                    .expect("annotations")
                    .remove(key);
            }
            for key in [
                "yelp.com/paasta_config_sha",
                "paasta.yelp.com/config_sha",
                "paasta.yelp.com/git_sha",
            ] {
                metadata["labels"]
                    .as_object_mut()
                    .expect("labels")
                    .remove(key);
            }
            let value = flink_gitops::value::Value::from_json(&pre_image);
            assert_eq!(render::flink::config_hash(&value), expected);
        }
    }
}
