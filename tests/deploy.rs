//! The files in deploy/ are valid and say what the code does.

use flink_gitops::config::yaml::{Limits, NodeValue, load};
use flink_gitops::config::{ApplySettings, KindSettings, Settings};
use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect(path)
}

#[test]
fn example_configuration_parses_and_documents_the_defaults() {
    let settings = Settings::parse(
        &read("deploy/config/flink-gitops.yaml"),
        "deploy/config/flink-gitops.yaml",
    )
    .expect("example configuration");
    let defaults = Settings::default();
    assert_eq!(settings.apply, ApplySettings::default());
    assert_eq!(
        settings.prune,
        flink_gitops::config::PruneSettings::default()
    );
    assert_eq!(settings.kinds.len(), defaults.kinds.len());
    let (example, default) = (&settings.kinds[0], &defaults.kinds[0]);
    assert_eq!(example.file_prefix, default.file_prefix);
    assert_eq!(example.api_version(), default.api_version());
    assert_eq!(
        (&example.kind, &example.plural),
        (&default.kind, &default.plural)
    );
    assert_eq!(example.namespace(), default.namespace());
    assert_eq!(settings.dashboard_links, defaults.dashboard_links);
    assert_eq!(settings.cr_owners, defaults.cr_owners);
    assert_eq!(settings.autotuned_defaults, defaults.autotuned_defaults);
}

#[test]
fn crd_matches_the_default_kind() {
    let node = load(&read("deploy/crds/flink.yaml"), &Limits::default())
        .expect("yaml")
        .expect("document");
    let value = flink_gitops::config::convert::to_value(&node, "").expect("value");
    let kind = KindSettings::for_prefix("flink");
    let spec = value.pointer(&["spec"]).expect("spec");
    assert_eq!(
        spec.pointer(&["group"]).and_then(|v| v.as_str()),
        Some(kind.group.as_str())
    );
    assert_eq!(
        spec.pointer(&["names", "kind"]).and_then(|v| v.as_str()),
        Some(kind.kind.as_str())
    );
    assert_eq!(
        spec.pointer(&["names", "plural"]).and_then(|v| v.as_str()),
        Some(kind.plural.as_str())
    );
    let NodeValue::Map(_) = node.value else {
        panic!("CRD must be a mapping")
    };
}

#[test]
fn rbac_grants_only_what_the_reconciler_uses() {
    let text = read("deploy/rbac.yaml");
    let verbs: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("verbs:"))
        .collect();
    assert_eq!(
        verbs,
        [
            "    verbs: [\"get\", \"list\", \"patch\", \"create\", \"delete\"]",
            "    verbs: [\"create\", \"get\", \"list\", \"delete\"]",
            "    verbs: [\"create\", \"get\", \"patch\"]",
            "    verbs: [\"get\", \"create\", \"update\"]",
        ]
    );
    let rules: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter(|l| l.contains("resources:") || l.contains("verbs:") || l.contains("apiGroups:"))
        .collect();
    assert!(
        rules.iter().all(|l| !l.contains('*')),
        "no wildcards: {rules:?}"
    );
    assert!(
        rules.iter().all(|l| !l.contains("secrets")),
        "no secrets: {rules:?}"
    );
}

#[test]
fn every_manifest_parses_and_the_kustomization_lists_existing_files() {
    let kustomization = read("deploy/kustomization.yaml");
    let node = load(&kustomization, &Limits::default())
        .expect("yaml")
        .expect("doc");
    let value = flink_gitops::config::convert::to_value(&node, "").expect("value");
    let Some(flink_gitops::value::Value::Seq(resources)) = value.pointer(&["resources"]) else {
        panic!("resources list");
    };
    for resource in resources {
        let file = resource.as_str().expect("file name");
        let text = read(&format!("deploy/{file}"));
        for document in text.split("\n---\n") {
            load(document, &Limits::default()).unwrap_or_else(|e| panic!("deploy/{file}: {e}"));
        }
    }
}

#[test]
fn deployment_is_hardened_and_probed() {
    let text = read("deploy/deployment.yaml");
    for needle in [
        "replicas: 2",
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "drop: [ALL]",
        "path: /healthz",
        "path: /readyz",
        "resources:",
        "topologyKey: kubernetes.io/hostname",
        "containerPort: 8081",
    ] {
        assert!(text.contains(needle), "deployment lacks {needle}");
    }
    let pdb = read("deploy/pdb.yaml");
    assert!(pdb.contains("kind: PodDisruptionBudget") && pdb.contains("minAvailable: 1"));
    assert!(read("deploy/kustomization.yaml").contains("  - pdb.yaml"));
}

#[test]
fn the_configmap_holds_a_valid_configuration() {
    let text = read("deploy/configmap.yaml");
    let node = load(&text, &Limits::default()).expect("yaml").expect("doc");
    let value = flink_gitops::config::convert::to_value(&node, "").expect("value");
    let config = value
        .pointer(&["data", "flink-gitops.yaml"])
        .and_then(|v| v.as_str())
        .expect("flink-gitops.yaml key");
    let settings = Settings::parse(config, "configmap").expect("valid configuration");
    assert!(settings.source.git.is_some());
}

/// The scheduled fuzz job runs every cargo-fuzz target, for a bounded time.
#[test]
fn the_fuzz_workflow_runs_every_fuzz_target_for_a_bounded_time() {
    let manifest = read("fuzz/Cargo.toml");
    let targets: Vec<&str> = manifest
        .lines()
        .filter_map(|line| line.strip_prefix("name = \""))
        .filter_map(|rest| rest.strip_suffix('"'))
        .filter(|name| *name != "flink-gitops-fuzz")
        .collect();
    assert_eq!(
        targets,
        ["yaml_loader", "yaml_fast_path", "python_json", "push_hook"]
    );
    for target in &targets {
        let source = format!("fuzz/fuzz_targets/{target}.rs");
        assert!(read(&source).contains("fuzz_target!"), "{source}");
    }
    let workflow = read(".github/workflows/fuzz.yml");
    let node = load(&workflow, &Limits::default())
        .expect("valid YAML")
        .expect("a document");
    let json = flink_gitops::config::convert::to_value(&node, "")
        .expect("plain data")
        .to_json()
        .expect("JSON");
    assert!(json["on"]["schedule"][0]["cron"].is_string(), "{json}");
    let matrix: Vec<&str> = json["jobs"]["fuzz"]["strategy"]["matrix"]["target"]
        .as_array()
        .expect("a target matrix")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert_eq!(matrix, targets);
    let steps = json["jobs"]["fuzz"]["steps"].as_array().expect("steps");
    assert!(
        steps
            .iter()
            .any(|step| step["run"].as_str().is_some_and(
                |run| run.starts_with("cargo fuzz run ") && run.contains("-max_total_time=")
            )),
        "{json}"
    );
    assert!(
        !read(".ci/run").contains("cargo fuzz"),
        "not part of .ci/run"
    );
}
