//! End-to-end tests of the `flink-gitops` binary: exit codes, what goes to
//! stdout and stderr, and the `render`/`validate` flags, on the fixture
//! soa-configs and on small trees built in temporary directories.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const SOA_DIR: &str = "fixtures/soa-configs";
const CONFIG: &str = "fixtures/flink-gitops.yaml";
const INVENTORY_SYNC_SKIP: &str = "skipped inventory_sync.main (flink): fixtures/soa-configs/inventory_sync/deployments.json was not found.";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary from the package root, without the `FLINK_GITOPS_*`
/// environment that would otherwise stand in for missing flags.
fn flink_gitops(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("FLINK_GITOPS_SOA_DIR")
        .env_remove("FLINK_GITOPS_CONFIG")
        .output()
        .expect("run flink-gitops");
    Run {
        code: output
            .status
            .code()
            .expect("exit code (not killed by a signal)"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

fn render(extra: &[&str]) -> Run {
    let mut args = vec!["render", "--soa-dir", SOA_DIR, "--config", CONFIG];
    args.extend_from_slice(extra);
    flink_gitops(&args)
}

fn validate(extra: &[&str]) -> Run {
    let mut args = vec!["validate", "--soa-dir", SOA_DIR, "--config", CONFIG];
    args.extend_from_slice(extra);
    flink_gitops(&args)
}

/// `metadata.name` of every document of a YAML stream, in order. Keys are
/// sorted, so the first two-space `name:` of a document is `metadata`'s
/// (`spec` comes later).
fn yaml_names(stream: &str) -> Vec<String> {
    if stream.is_empty() {
        return Vec::new();
    }
    yaml_documents(stream)
        .into_iter()
        .map(|document| {
            document
                .lines()
                .find_map(|line| line.strip_prefix("  name: "))
                .expect("a document without metadata.name")
                .to_owned()
        })
        .collect()
}

/// Splits a YAML stream into its documents, checking that every document
/// (the first one included) starts with a `---` line.
fn yaml_documents(stream: &str) -> Vec<&str> {
    assert!(
        stream.starts_with("---\n"),
        "the stream does not start with `---`: {stream:.80}"
    );
    stream["---\n".len()..].split("\n---\n").collect()
}

/// Kubernetes' label-value rule (at most 63 characters, alphanumeric at both
/// ends, only alphanumerics, `-`, `_` and `.`).
fn valid_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    value.len() <= 63
        && (bytes.is_empty()
            || bytes[0].is_ascii_alphanumeric()
                && bytes[bytes.len() - 1].is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
}

/// The resources PaaSTA renders for `cluster` (fixtures/golden), split into
/// the ones the API server would accept (names) and the ones it would reject
/// for an invalid label value (`service.instance`).
fn golden_resources(cluster: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/golden/{cluster}.jsonl"));
    let text = std::fs::read_to_string(path).expect("golden file");
    let mut accepted = BTreeSet::new();
    let mut rejected = BTreeSet::new();
    for line in text.lines().filter(|line| line.contains("\"apiVersion\"")) {
        let object: serde_json::Value = serde_json::from_str(line).expect("golden line is JSON");
        let labels = object["metadata"]["labels"].as_object().expect("labels");
        if labels
            .values()
            .filter_map(|v| v.as_str())
            .all(valid_label_value)
        {
            let name = object["metadata"]["name"].as_str().expect("name");
            accepted.insert(name.to_owned());
        } else {
            rejected.insert(format!(
                "{}.{}",
                labels["paasta.yelp.com/service"]
                    .as_str()
                    .expect("service label"),
                labels["paasta.yelp.com/instance"]
                    .as_str()
                    .expect("instance label")
            ));
        }
    }
    (accepted, rejected)
}

fn write_file(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A one-service soa-configs tree for cluster `testcluster`: `demo.main` is
/// deployed, `demo.later` is not (its deploy group has no image yet) and has
/// `start_date` written as `later_start_date`.
fn demo_tree(later_start_date: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = dir.path().join("demo");
    write_file(
        &service.join("service.yaml"),
        "description: demo\ndocker_registry: docker-paasta.example.com:443\n",
    );
    write_file(
        &service.join("flink-testcluster.yaml"),
        &format!(
            "main:\n  deploy_group: prod.everything\n  taskmanager:\n    instances: 1\n\
             later:\n  deploy_group: prod.later\n  start_date: {later_start_date}\n"
        ),
    );
    write_file(
        &service.join("deployments.json"),
        r#"{"v1": {}, "v2": {"deployments": {"prod.everything": {"docker_image": "services-demo:paasta-0123456789abcdef0123456789abcdef01234567", "git_sha": "0123456789abcdef0123456789abcdef01234567", "image_version": null}}, "controls": {"demo:testcluster.main": {"desired_state": "start", "force_bounce": null}}}}"#,
    );
    dir
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

// ---------------------------------------------------------------- render

#[test]
fn render_norcal_devc_streams_every_golden_resource_the_api_server_accepts() {
    let run = render(&["--cluster", "norcal-devc"]);
    let (accepted, _) = golden_resources("norcal-devc");
    let documents = yaml_documents(&run.stdout);
    assert_eq!(documents.len(), accepted.len(), "{}", run.stdout);
    assert!(documents.iter().all(|d| d.starts_with("apiVersion: ")));
    let names: BTreeSet<String> = yaml_names(&run.stdout).into_iter().collect();
    assert_eq!(names, accepted);
    assert!(
        run.stdout
            .lines()
            .filter(|l| l.contains("paasta.yelp.com/cluster:"))
            .all(|l| l.ends_with(": norcal-devc")),
        "--cluster must override the configuration's pnw-prod"
    );
}

#[test]
fn render_norcal_devc_reports_the_skip_and_only_the_label_rejected_instance() {
    let run = render(&["--cluster", "norcal-devc"]);
    let (_, rejected) = golden_resources("norcal-devc");
    assert!(run.stderr.contains(INVENTORY_SYNC_SKIP), "{}", run.stderr);
    // Every problem line is about an instance PaaSTA renders but the API
    // server would reject; those fail the run.
    let problems: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.starts_with("skipped "))
        .collect();
    assert_eq!(problems.len(), rejected.len(), "{}", run.stderr);
    for subject in &rejected {
        assert!(
            problems
                .iter()
                .any(|p| p.contains(&format!(": {subject}: "))),
            "{subject} not reported: {}",
            run.stderr
        );
    }
    assert_eq!(run.code, if rejected.is_empty() { 0 } else { 1 });
}

#[test]
fn render_exits_zero_when_every_instance_is_rendered_or_skipped() {
    let rendered = render(&["--cluster", "norcal-devc", "--service", "ad_events"]);
    assert_eq!(rendered.code, 0, "{}", rendered.stderr);
    assert_eq!(yaml_names(&rendered.stdout), ["ad--events-main"]);
    assert_eq!(rendered.stderr, "");

    let skipped = render(&["--cluster", "norcal-devc", "--service", "inventory_sync"]);
    assert_eq!(skipped.code, 0, "{}", skipped.stderr);
    assert_eq!(skipped.stdout, "");
    assert!(
        skipped.stderr.starts_with(INVENTORY_SYNC_SKIP),
        "{}",
        skipped.stderr
    );
}

#[test]
fn render_pnw_prod_fails_but_still_renders_the_good_services() {
    let run = render(&["--cluster", "pnw-prod"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let names = yaml_names(&run.stdout);
    assert_eq!(yaml_documents(&run.stdout).len(), names.len());
    for name in [
        "ad--events-canary--2",
        "ad--events-main",
        "payments--ledger-main",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
    }
    // Exactly what PaaSTA renders (it fails backfill_2024 and cannot load
    // search_indexer too), minus what the API server would reject.
    let (accepted, _) = golden_resources("pnw-prod");
    assert_eq!(names.into_iter().collect::<BTreeSet<_>>(), accepted);
}

#[test]
fn render_pnw_prod_reports_the_invalid_file_and_the_date_instance() {
    let run = render(&["--cluster", "pnw-prod"]);
    assert!(
        run.stderr
            .contains("fixtures/soa-configs/search_indexer/flink-pnw-prod.yaml:14:13:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("service search_indexer could not be loaded"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains("payments_ledger.backfill_2024")
                && l.contains("start_date")
                && l.starts_with("fixtures/soa-configs/payments_ledger/flink-pnw-prod.yaml:")),
        "{}",
        run.stderr
    );
}

#[test]
fn render_json_is_a_sorted_kubectl_list() {
    let run = render(&["--cluster", "pnw-prod", "-o", "json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let list: serde_json::Value = serde_json::from_str(&run.stdout).expect("stdout is JSON");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(list["kind"], "List");
    let object = list.as_object().expect("object");
    assert_eq!(object.len(), 3, "only apiVersion, kind, items: {object:?}");
    let items = list["items"].as_array().expect("items is an array");
    let yaml = render(&["--cluster", "pnw-prod"]);
    assert_eq!(items.len(), yaml_names(&yaml.stdout).len());
    let keys: Vec<(String, String)> = items
        .iter()
        .map(|item| {
            let metadata = &item["metadata"];
            (
                metadata["namespace"]
                    .as_str()
                    .expect("namespace")
                    .to_owned(),
                metadata["name"].as_str().expect("name").to_owned(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    for item in items {
        let sha = item["metadata"]["labels"]["paasta.yelp.com/config_sha"]
            .as_str()
            .expect("config_sha label");
        assert!(sha.starts_with("config"), "{sha}");
    }
}

#[test]
fn render_service_filter_keeps_only_that_service() {
    let run = render(&["--cluster", "pnw-prod", "--service", "ad_events"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        yaml_names(&run.stdout),
        ["ad--events-canary--2", "ad--events-main"]
    );
    // Other services' problems are not loaded, so not reported.
    assert_eq!(run.stderr, "");
}

#[test]
fn render_instance_filter_keeps_only_that_instance_in_every_service() {
    let run = render(&["--cluster", "pnw-prod", "--instance", "main"]);
    assert_eq!(
        yaml_names(&run.stdout),
        [
            "ad--events-main",
            "clickstream--sessionizer-main",
            "fraud--scoring-main",
            "geo--tiles-main",
            "menu--translations-main",
            "notifications--fanout-main",
            "payments--ledger-main",
            "realtime--bidding-main",
            "review--stream-main",
            "user--profiles-main",
        ]
    );
    // search_indexer's instances are unknown, whatever their names.
    assert_eq!(run.code, 1);
    assert!(!run.stderr.contains("backfill_2024"), "{}", run.stderr);
}

#[test]
fn render_service_and_instance_filters_combine() {
    let run = render(&[
        "--cluster",
        "pnw-prod",
        "--service",
        "payments_ledger",
        "--instance",
        "main",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(yaml_names(&run.stdout), ["payments--ledger-main"]);
    assert_eq!(run.stderr, "");
}

#[test]
fn render_uses_the_configured_cluster_without_cluster_flag() {
    let implicit = render(&[]);
    let explicit = render(&["--cluster", "pnw-prod"]);
    assert!(
        implicit
            .stdout
            .contains("paasta.yelp.com/cluster: pnw-prod"),
        "{}",
        implicit.stdout
    );
    assert_eq!(implicit.stdout, explicit.stdout);
    assert_eq!(implicit.stderr, explicit.stderr);
    assert_eq!(implicit.code, explicit.code);
}

// ---------------------------------------------------- usage errors: exit 2

#[test]
fn render_with_missing_soa_dir_exits_2_and_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-soa-configs");
    let run = flink_gitops(&[
        "render",
        "--soa-dir",
        path_str(&missing),
        "--cluster",
        "pnw-prod",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains(path_str(&missing)), "{}", run.stderr);
    assert_eq!(run.stdout, "");
}

#[test]
fn validate_with_missing_soa_dir_exits_2_and_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-soa-configs");
    let run = flink_gitops(&["validate", "--soa-dir", path_str(&missing)]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains(path_str(&missing)), "{}", run.stderr);
    assert_eq!(run.stdout, "");
}

#[test]
fn config_with_unknown_key_exits_2_and_names_key_and_position() {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(
        &mut file,
        b"cluster: pnw-prod\ndocker_registry: r.example.com\ncluster_name: oops\n",
    )
    .expect("write config");
    let config = path_str(file.path());
    let run = flink_gitops(&["render", "--soa-dir", SOA_DIR, "--config", config]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("cluster_name"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("{config}:3:")),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "");
}

#[test]
fn render_without_any_cluster_exits_2() {
    let run = flink_gitops(&["render", "--soa-dir", SOA_DIR]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--cluster"), "{}", run.stderr);
    assert_eq!(run.stdout, "");
}

// -------------------------------------------------------------- validate

#[test]
fn validate_reports_every_problem_of_every_cluster() {
    let run = validate(&[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    for expected in [
        "fixtures/soa-configs/search_indexer/flink-pnw-prod.yaml:14:13: search_indexer: invalid YAML",
        "fixtures/soa-configs/payments_ledger/flink-pnw-prod.yaml:53:15: payments_ledger.backfill_2024: start_date",
        "fixtures/soa-configs/_shared_pipelines/flink-pnw-prod.yaml:4:1: _shared_pipelines.enrichment: the service `_shared_pipelines` cannot be a label value",
    ] {
        assert!(
            run.stderr.contains(expected),
            "missing {expected:?} in:\n{}",
            run.stderr
        );
    }
    assert!(
        run.stdout.contains("2 clusters (norcal-devc, pnw-prod)"),
        "{}",
        run.stdout
    );
    let problems = run.stderr.lines().count();
    assert!(
        run.stdout
            .trim_end()
            .ends_with(&format!(": {problems} problems")),
        "summary disagrees with the {problems} lines on stderr: {}",
        run.stdout
    );
}

#[test]
fn validate_one_cluster_checks_only_that_cluster() {
    let run = validate(&["--cluster", "norcal-devc"]);
    assert!(
        run.stdout.contains("1 clusters (norcal-devc)"),
        "{}",
        run.stdout
    );
    assert!(!run.stderr.contains("pnw-prod"), "{}", run.stderr);
    // Every norcal-devc fixture is valid; pnw-prod's problems do not leak in.
    assert_eq!(run.stderr, "");
    assert_eq!(run.code, 0);
}

#[test]
fn validate_clean_tree_exits_zero() {
    let tree = demo_tree("\"2024-01-01\"");
    let run = flink_gitops(&["validate", "--soa-dir", path_str(tree.path())]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "");
    assert_eq!(
        run.stdout,
        "checked 2 instances in 1 clusters (testcluster): 0 problems\n"
    );
}

#[test]
fn validate_reports_a_date_in_an_instance_that_is_not_deployed() {
    let tree = demo_tree("2024-01-01");
    let run = flink_gitops(&["validate", "--soa-dir", path_str(tree.path())]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let file = tree.path().join("demo/flink-testcluster.yaml");
    assert!(
        run.stderr
            .contains(&format!("{}:7:15: demo.later: start_date", path_str(&file))),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains(": 1 problems"), "{}", run.stdout);
}

#[test]
fn render_only_skips_a_date_in_an_instance_that_is_not_deployed() {
    let tree = demo_tree("2024-01-01");
    let run = flink_gitops(&[
        "render",
        "--soa-dir",
        path_str(tree.path()),
        "--cluster",
        "testcluster",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(yaml_names(&run.stdout), ["demo-main"]);
    assert_eq!(
        run.stderr,
        "skipped demo.later (flink): demo not deployed to prod.later. Has mark-for-deployment been run?\n"
    );
}

// ------------------------------------------------------------------ help

#[test]
fn render_help_lists_its_flags() {
    let run = flink_gitops(&["render", "--help"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for flag in [
        "--soa-dir",
        "--config",
        "--cluster",
        "--service",
        "--instance",
        "--output",
    ] {
        assert!(run.stdout.contains(flag), "{flag} missing:\n{}", run.stdout);
    }
}

#[test]
fn validate_help_lists_its_flags() {
    let run = flink_gitops(&["validate", "--help"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for flag in ["--soa-dir", "--config", "--cluster"] {
        assert!(run.stdout.contains(flag), "{flag} missing:\n{}", run.stdout);
    }
}

#[test]
fn a_misspelt_service_or_instance_is_a_usage_error() {
    let service = render(&["--cluster", "norcal-devc", "--service", "no_such"]);
    assert_eq!(service.code, 2, "{}", service.stderr);
    assert!(service.stderr.contains("`no_such`"), "{}", service.stderr);
    assert_eq!(service.stdout, "");

    let instance = render(&["--cluster", "norcal-devc", "--instance", "no_such"]);
    assert_eq!(instance.code, 2, "{}", instance.stderr);
    assert!(instance.stderr.contains("`no_such`"), "{}", instance.stderr);
}

#[test]
fn an_io_error_is_explained_once() {
    let run = flink_gitops(&["render", "--soa-dir", "/nonexistent/soa", "--cluster", "x"]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr.matches("No such file or directory").count(),
        1,
        "{}",
        run.stderr
    );
}

#[cfg(unix)]
#[test]
fn a_symlink_out_of_the_tree_fails_only_its_service() {
    let outside = tempfile::tempdir().expect("tempdir");
    write_file(&outside.path().join("stolen.yaml"), "main: {}\n");
    let tree = tempfile::tempdir().expect("tempdir");
    let good = "main: {job_type: stateless}\n";
    write_file(&tree.path().join("good/flink-c1.yaml"), good);
    write_file(&tree.path().join("linked/flink-c2.yaml"), good);
    std::os::unix::fs::symlink(
        outside.path().join("stolen.yaml"),
        tree.path().join("linked/flink-c1.yaml"),
    )
    .expect("symlink");
    let run = flink_gitops(&[
        "validate",
        "--soa-dir",
        path_str(tree.path()),
        "--cluster",
        "c1",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let expected = format!(
        "{}/linked/flink-c1.yaml: linked: refused: a symlink that resolves outside the soa-configs root",
        tree.path().display()
    );
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert!(!run.stderr.contains("good"), "{}", run.stderr);
}

#[test]
fn a_configured_limit_names_the_file_line_and_limit() {
    let tree = tempfile::tempdir().expect("tempdir");
    write_file(
        &tree.path().join("svc/flink-c1.yaml"),
        "main:\n  job_type: stateless\n  note: a rather long sentence of text\n",
    );
    write_file(&tree.path().join("other/flink-c1.yaml"), "main: {}\n");
    let config = tree.path().join("flink-gitops.yaml");
    write_file(&config, "limits: {max_scalar_bytes: 16}\n");
    let run = flink_gitops(&[
        "validate",
        "--soa-dir",
        path_str(tree.path()),
        "--config",
        path_str(&config),
        "--cluster",
        "c1",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let expected = format!(
        "{}/svc/flink-c1.yaml:3:9: svc: invalid YAML: a scalar of 30 bytes, over 16 bytes (limit max_scalar_bytes)",
        tree.path().display()
    );
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert!(!run.stderr.contains("other"), "{}", run.stderr);
}
