//! `flink-gitops diff --repo --base --head` for CI: fixture pull requests as
//! real commits of a repository built with the git CLI, golden markdown and
//! JSON per case, the comment size limit, `--live FILE`, exit codes, and the
//! CI examples in `deploy/ci/`.

mod support;

use flink_gitops::config::{convert, yaml};
use flink_gitops::value::Value;
use serde_json::{Value as Json, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::git_repo::git_dated;
use support::scenario::{ALPHA, Run, SHA_A, SHA_B};

const SHA_C: &str = "cccccccccccccccccccccccccccccccccccccccc";

const BETA: &str = "main: {job_type: stateless, parallelism: 2}\n";
const GAMMA_C1: &str = "main: {job_type: stateless, deploy_group: prod.everything}\n";
const GAMMA_C2: &str =
    "main: {job_type: stateless, deploy_group: prod.everything, parallelism: 3}\n";

/// `deployments.json` with the deploy groups' shas, and controls for
/// every instance name the fixtures use in clusters c1 and c2.
fn deployments(service: &str, groups: &[(&str, &str)]) -> String {
    let mut controls = serde_json::Map::new();
    for cluster in ["c1", "c2"] {
        for instance in ["main", "canary", "extra"]
            .into_iter()
            .map(str::to_owned)
            .chain((0..300).map(|i| format!("i{i:03}")))
        {
            controls.insert(
                format!("{service}:{cluster}.{instance}"),
                json!({"desired_state": "start", "force_bounce": null}),
            );
        }
    }
    let mut deployments = serde_json::Map::new();
    for (group, sha) in groups {
        deployments.insert(
            (*group).to_owned(),
            json!({"docker_image": format!("services-{service}:paasta-{sha}"), "git_sha": sha, "image_version": null}),
        );
    }
    serde_json::to_string_pretty(
        &json!({"v1": {}, "v2": {"deployments": deployments, "controls": controls}}),
    )
    .expect("json")
}

/// A soa-configs repository with a base commit; each case is a branch off
/// it with one commit.
struct Repo {
    dir: tempfile::TempDir,
    base: String,
}

/// [`git_dated`] at a fixed date: the commits' shas are the same on every
/// run.
fn git(dir: &Path, args: &[&str]) -> String {
    git_dated(dir, "2026-01-01T00:00:00Z", args)
}

impl Repo {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = Repo {
            dir,
            base: String::new(),
        };
        std::fs::create_dir_all(repo.soa()).expect("mkdir");
        git(&repo.soa(), &["init", "-q"]);
        repo.write("alpha/flink-c1.yaml", ALPHA);
        repo.write(
            "alpha/deployments.json",
            &deployments("alpha", &[("c1.main", SHA_A), ("prod.canary", SHA_A)]),
        );
        repo.write("alpha/kubernetes-c1.yaml", "web: {cpus: 1}\n");
        repo.write("beta_svc/flink-c1.yaml", BETA);
        repo.write(
            "beta_svc/deployments.json",
            &deployments("beta_svc", &[("c1.main", SHA_B)]),
        );
        repo.write("gamma/flink-c1.yaml", GAMMA_C1);
        repo.write("gamma/flink-c2.yaml", GAMMA_C2);
        repo.write(
            "gamma/deployments.json",
            &deployments("gamma", &[("prod.everything", SHA_C)]),
        );
        std::fs::write(
            repo.dir.path().join("flink-gitops.yaml"),
            "docker_registry: registry.example:443\n",
        )
        .expect("write config");
        let base = repo.commit("base");
        Repo { base, ..repo }
    }

    fn soa(&self) -> PathBuf {
        self.dir.path().join("soa")
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.soa().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    fn commit(&self, message: &str) -> String {
        git(&self.soa(), &["add", "-A"]);
        git(
            &self.soa(),
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        git(&self.soa(), &["rev-parse", "HEAD"])
    }

    /// A branch off the base commit with `change` committed.
    fn case(&self, name: &str, change: impl FnOnce(&Repo)) -> String {
        git(&self.soa(), &["checkout", "-q", "-B", name, &self.base]);
        change(self);
        self.commit(name)
    }

    fn diff(&self, extra: &[&str]) -> Run {
        let config = self.dir.path().join("flink-gitops.yaml");
        let output = Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
            .arg("diff")
            .arg("--repo")
            .arg(self.soa())
            .arg("--config")
            .arg(config)
            .args(extra)
            .env_remove("FLINK_GITOPS_SOA_DIR")
            .env_remove("FLINK_GITOPS_CONFIG")
            .env_remove("KUBECONFIG")
            .output()
            .expect("run flink-gitops");
        Run::from_output(output)
    }

    /// The comparison of `head` with the base commit.
    fn compare(&self, head: &str, output: &str) -> Run {
        self.diff(&[
            "--base",
            &self.base,
            "--head",
            head,
            "--output",
            output,
            "--exit-code",
        ])
    }

    /// Commit shas and the temporary path replaced by stable names.
    fn stable(&self, text: &str, head: &str) -> String {
        let mut text = text.to_owned();
        for (sha, name) in [(head, "HEAD"), (self.base.as_str(), "BASE")] {
            text = text.replace(sha, &format!("<{name}>"));
            text = text.replace(&sha[..7], &format!("<{name}>"));
        }
        text.replace(&self.dir.path().display().to_string(), "<TMP>")
    }
}

/// Golden markdown and JSON of one case; returns the exit code.
fn golden(repo: &Repo, name: &str, head: &str) -> i32 {
    let markdown = repo.compare(head, "markdown");
    assert!(
        markdown.stdout.starts_with("<!-- flink-gitops-diff -->\n"),
        "{}\n{}",
        markdown.stdout,
        markdown.stderr
    );
    insta::assert_snapshot!(
        format!("ci_diff_{name}_markdown"),
        repo.stable(&markdown.stdout, head)
    );
    let json_run = repo.compare(head, "json");
    assert_eq!(json_run.code, markdown.code);
    let parsed: Json = serde_json::from_str(&json_run.stdout).expect("json");
    assert_eq!(parsed["schema"], "flink-gitops/ci-diff/v1");
    insta::assert_snapshot!(
        format!("ci_diff_{name}_json"),
        repo.stable(&json_run.stdout, head)
    );
    markdown.code
}

#[test]
fn add_an_instance() {
    let repo = Repo::new();
    let head = repo.case("add", |r| {
        r.write(
            "beta_svc/flink-c1.yaml",
            &format!("{BETA}extra: {{job_type: stateless, deploy_group: c1.main}}\n"),
        );
    });
    assert_eq!(golden(&repo, "add_instance", &head), 1);
}

#[test]
fn change_flink_conf_restarts() {
    let repo = Repo::new();
    let head = repo.case("conf", |r| {
        r.write("alpha/flink-c1.yaml", &ALPHA.replace("'60000'", "'30000'"));
    });
    assert_eq!(golden(&repo, "change_flink_conf", &head), 1);
}

#[test]
fn change_only_the_image() {
    let repo = Repo::new();
    let head = repo.case("image", |r| {
        r.write(
            "alpha/deployments.json",
            &deployments("alpha", &[("c1.main", SHA_B), ("prod.canary", SHA_A)]),
        );
    });
    assert_eq!(golden(&repo, "change_image", &head), 1);
}

#[test]
fn remove_an_instance() {
    let repo = Repo::new();
    let head = repo.case("remove", |r| {
        r.write(
            "alpha/flink-c1.yaml",
            &ALPHA.replace("canary:\n  <<: *base\n  deploy_group: prod.canary\n", ""),
        );
    });
    assert_eq!(golden(&repo, "remove_instance", &head), 1);
}

#[test]
fn remove_a_whole_service() {
    let repo = Repo::new();
    let head = repo.case("remove-service", |r| {
        std::fs::remove_dir_all(r.soa().join("beta_svc")).expect("rm");
    });
    assert_eq!(golden(&repo, "remove_service", &head), 1);
}

#[test]
fn rename_a_service() {
    let repo = Repo::new();
    let head = repo.case("rename", |r| {
        git(&r.soa(), &["mv", "beta_svc", "beta_new"]);
        r.write(
            "beta_new/deployments.json",
            &deployments("beta_new", &[("c1.main", SHA_B)]),
        );
    });
    assert_eq!(golden(&repo, "rename_service", &head), 1);
}

#[test]
fn break_a_file() {
    let repo = Repo::new();
    let head = repo.case("broken", |r| {
        r.write("beta_svc/flink-c1.yaml", "main: {job_type: stateless\n");
    });
    assert_eq!(golden(&repo, "broken_file", &head), 2);
    let markdown = repo.compare(&head, "markdown").stdout;
    assert!(
        markdown.contains("beta_svc/flink-c1.yaml:2:1:"),
        "path:line:column relative to the repository: {markdown}"
    );
    let without_flag = repo.diff(&["--base", &repo.base, "--head", &head]);
    assert_eq!(without_flag.code, 1, "{}", without_flag.stdout);
}

#[test]
fn touch_a_file_of_another_instance_type() {
    let repo = Repo::new();
    let head = repo.case("unrelated", |r| {
        r.write("alpha/kubernetes-c1.yaml", "web: {cpus: 2}\n");
    });
    assert_eq!(golden(&repo, "unrelated_file", &head), 0);
}

#[test]
fn a_change_spanning_two_clusters() {
    let repo = Repo::new();
    let head = repo.case("two-clusters", |r| {
        r.write(
            "gamma/deployments.json",
            &deployments("gamma", &[("prod.everything", SHA_A)]),
        );
    });
    assert_eq!(golden(&repo, "two_clusters", &head), 1);
    let only_c2 = repo.diff(&[
        "--base",
        &repo.base,
        "--head",
        &head,
        "--cluster",
        "c2",
        "-o",
        "json",
    ]);
    let parsed: Json = serde_json::from_str(&only_c2.stdout).expect("json");
    assert_eq!(parsed["clusters"].as_array().map(Vec::len), Some(1));
    assert_eq!(parsed["clusters"][0]["cluster"], "c2");
}

#[test]
fn exit_codes_and_text_output() {
    let repo = Repo::new();
    let same = repo.diff(&["--base", &repo.base, "--head", &repo.base, "--exit-code"]);
    assert_eq!(same.code, 0, "{}{}", same.stdout, same.stderr);
    // Every cluster of the repository is listed, each without a change.
    assert!(
        same.stdout
            .contains("c1: 0 create, 0 update, 0 restart, 0 stop-and-delete"),
        "{}",
        same.stdout
    );
    let head = repo.case("conf", |r| {
        r.write(
            "beta_svc/flink-c1.yaml",
            "main: {job_type: stateless, parallelism: 5}\n",
        );
    });
    let changed = repo.diff(&["--base", &repo.base, "--head", &head, "--exit-code"]);
    assert_eq!(changed.code, 1, "{}{}", changed.stdout, changed.stderr);
    assert!(!changed.stdout.contains('\x1b'), "no colour off a terminal");
    assert!(
        changed.stdout.contains("c1: 0 create, 0 update, 1 restart"),
        "{}",
        changed.stdout
    );
    assert!(
        changed.stdout.contains("+  parallelism: 5"),
        "{}",
        changed.stdout
    );
    let without_flag = repo.diff(&["--base", &repo.base, "--head", &head]);
    assert_eq!(without_flag.code, 0);
    let bad_revision = repo.diff(&["--base", "no-such-branch", "--head", &head]);
    assert_eq!(bad_revision.code, 2);
    assert!(
        bad_revision.stderr.contains("no-such-branch"),
        "{}",
        bad_revision.stderr
    );
    let no_base = repo.diff(&["--head", &head]);
    assert_eq!(no_base.code, 2);
    assert!(no_base.stderr.contains("--base"), "{}", no_base.stderr);
}

#[test]
fn a_large_change_is_cut_to_githubs_comment_limit() {
    let repo = Repo::new();
    let head = repo.case("large", |r| {
        let mut text = String::new();
        for i in 0..300 {
            text.push_str(&format!(
                "i{i:03}:\n  job_type: stateless\n  deploy_group: prod.everything\n  flink_conf:\n"
            ));
            for k in 0..20 {
                text.push_str(&format!("    key.number.{k}: value-{i}-{k}\n"));
            }
        }
        r.write("huge/flink-c1.yaml", &text);
        r.write(
            "huge/deployments.json",
            &deployments("huge", &[("prod.everything", SHA_A)]),
        );
    });
    let run = repo.compare(&head, "markdown");
    assert_eq!(run.code, 1, "{}", run.stderr);
    let markdown = run.stdout;
    assert!(markdown.len() <= 65_536, "{}", markdown.len());
    assert!(markdown.starts_with("<!-- flink-gitops-diff -->\n"));
    assert!(
        markdown.contains("diff(s) left out, the largest first"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| `c1` | 300 |"),
        "every instance is still counted"
    );
    let full: Json =
        serde_json::from_str(&repo.compare(&head, "json").stdout).expect("json is never cut");
    assert_eq!(full["summary"]["create"], 300);
}

/// A `kubectl get -o json` List of what the base revision renders, as the
/// live cluster would hold it after an apply, with server fields, a hand
/// edit, and an object whose instance is gone.
fn live_dump(repo: &Repo) -> Json {
    let checkout = repo.dir.path().join("base-checkout");
    git(
        &repo.soa(),
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            checkout.to_str().expect("utf-8"),
            &repo.base,
        ],
    );
    let output = Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
        .args(["render", "--cluster", "c1", "--output", "json", "--soa-dir"])
        .arg(&checkout)
        .arg("--config")
        .arg(repo.dir.path().join("flink-gitops.yaml"))
        .output()
        .expect("render");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut list: Json = serde_json::from_slice(&output.stdout).expect("list");
    let items = list["items"].as_array_mut().expect("items");
    for item in items.iter_mut() {
        item["metadata"]["resourceVersion"] = json!("42");
        item["metadata"]["uid"] = json!("0000-1111");
        item["status"] = json!({"state": "running"});
    }
    let beta = items
        .iter_mut()
        .find(|i| i["metadata"]["name"] == "beta--svc-main")
        .expect("beta");
    beta["spec"]["parallelism"] = json!(9);
    let mut zombie = items[0].clone();
    zombie["metadata"]["name"] = json!("alpha-old");
    zombie["metadata"]["labels"]["paasta.yelp.com/instance"] = json!("old");
    items.push(zombie);
    items.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrelated"}}));
    list
}

#[test]
fn live_file_dump_in_json_and_yaml() {
    let repo = Repo::new();
    let head = repo.case("conf", |r| {
        r.write("alpha/flink-c1.yaml", &ALPHA.replace("'60000'", "'30000'"));
    });
    let dump = live_dump(&repo);
    let json_path = repo.dir.path().join("live.json");
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&dump).expect("json"),
    )
    .expect("write");
    let run = repo.diff(&[
        "--head",
        &head,
        "--live",
        json_path.to_str().expect("utf-8"),
        "--cluster",
        "c1",
        "--output",
        "markdown",
        "--exit-code",
    ]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    insta::assert_snapshot!(
        "ci_diff_live_file_markdown",
        repo.stable(&run.stdout, &head)
    );
    assert!(
        run.stdout
            .contains("reverts hand edits of `spec.parallelism`"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("deletes Flink/paasta-flinks/alpha-old"),
        "{}",
        run.stdout
    );

    // The same objects as a multi-document YAML stream.
    let items = dump["items"].as_array().expect("items");
    let stream: String = items
        .iter()
        .map(|item| {
            format!(
                "---\n{}",
                flink_gitops::value::yaml_out::to_yaml(&Value::from_json(item))
            )
        })
        .collect();
    let yaml_path = repo.dir.path().join("live.yaml");
    std::fs::write(&yaml_path, stream).expect("write");
    let from_yaml = repo.diff(&[
        "--head",
        &head,
        "--live",
        yaml_path.to_str().expect("utf-8"),
        "--cluster",
        "c1",
        "--output",
        "markdown",
    ]);
    assert_eq!(
        repo.stable(&from_yaml.stdout, &head)
            .replace("live.yaml", "live.json"),
        repo.stable(&run.stdout, &head)
    );

    // With --base, only the changed services are compared with the dump.
    let narrowed = repo.diff(&[
        "--base",
        &repo.base,
        "--head",
        &head,
        "--live",
        json_path.to_str().expect("utf-8"),
        "--cluster",
        "c1",
        "--output",
        "json",
    ]);
    let parsed: Json = serde_json::from_str(&narrowed.stdout).expect("json");
    assert_eq!(parsed["services"], json!(["alpha"]));
    assert_eq!(parsed["summary"]["restart"], 2);
    assert_eq!(parsed["summary"]["stop_and_delete"], 1, "alpha.old");
    assert_eq!(
        parsed["summary"]["update"], 0,
        "beta's hand edit is not this change's"
    );

    let empty = repo.diff(&[
        "--head",
        &head,
        "--live",
        "none",
        "--cluster",
        "c1",
        "-o",
        "json",
    ]);
    let parsed: Json = serde_json::from_str(&empty.stdout).expect("json");
    assert_eq!(parsed["against"], "empty");
    assert_eq!(
        parsed["summary"]["create"], 4,
        "alpha.main, alpha.canary, beta_svc.main, gamma.main"
    );
}

fn load_yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .expect("read the CI example");
    let node = yaml::load(&text, &yaml::Limits::default())
        .expect("valid YAML")
        .expect("a document");
    convert::to_value(&node, "").expect("plain data")
}

#[test]
fn the_github_workflow_parses_and_runs_the_built_binary() {
    let workflow = load_yaml("deploy/ci/github-actions.yml");
    let jobs = workflow
        .pointer(&["jobs"])
        .and_then(Value::as_map)
        .expect("jobs");
    assert!(
        workflow.pointer(&["on", "pull_request"]).is_some(),
        "runs on pull requests"
    );
    let text = serde_json::to_string(&workflow.to_json().expect("json")).expect("json");
    assert!(text.contains("target/release/flink-gitops"), "{text}");
    assert!(
        text.contains("<!-- flink-gitops-diff -->"),
        "finds its comment by the marker"
    );
    assert!(text.contains("--output markdown"));
    assert!(text.contains("pull_request.base.sha"));
    assert!(!jobs.is_empty());
}

#[test]
fn the_gitlab_job_parses() {
    let job = load_yaml("deploy/ci/gitlab-ci.yml");
    let text = serde_json::to_string(&job.to_json().expect("json")).expect("json");
    assert!(text.contains("target/release/flink-gitops"), "{text}");
    assert!(text.contains("<!-- flink-gitops-diff -->"));
    assert!(text.contains("CI_MERGE_REQUEST_DIFF_BASE_SHA"));
    assert!(
        text.contains("merge_requests"),
        "creates or updates a merge-request note"
    );
}

/// The README's first command: the bundled fixtures against the bundled live
/// snapshot show a create, updates, a restart and a prune.
#[test]
fn the_bundled_fixtures_against_the_bundled_live_snapshot() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
        .current_dir(root)
        .args([
            "diff",
            "--soa-dir",
            "fixtures/soa-configs",
            "--config",
            "fixtures/flink-gitops.yaml",
        ])
        .args([
            "--cluster",
            "norcal-devc",
            "--live",
            "fixtures/live/norcal-devc.yaml",
        ])
        .args(["--output", "markdown", "--exit-code"])
        .output()
        .expect("run");
    let markdown = String::from_utf8(output.stdout).expect("utf-8");
    assert_eq!(output.status.code(), Some(1), "changes: {markdown}");
    assert!(
        markdown.starts_with("<!-- flink-gitops-diff -->"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| `norcal-devc` | 1 | 2 | 1 | 1 | 11 | 0 |"),
        "{markdown}"
    );
    for needle in [
        "<b>create</b> <code>experiment_metrics.load_test</code>",
        "restarts the Flink cluster (config_sha config1a2b3c4d → config87dc872c)",
        "deploys image git sha 4181d84f40f3 (was 000000000000)",
        "reverts hand edits of `spec.job_type`",
        "stops the jobs with a savepoint, then deletes Flink/paasta-flinks/user--profiles-backfill",
    ] {
        assert!(
            markdown.contains(needle),
            "missing {needle:?} in:\n{markdown}"
        );
    }
}

#[cfg(unix)]
#[test]
fn a_symlinked_service_folder_is_refused_in_review() {
    let repo = Repo::new();
    let head = repo.case("linked", |r| {
        std::os::unix::fs::symlink("beta_svc", r.soa().join("linked_svc")).expect("symlink");
    });
    let markdown = repo.compare(&head, "markdown");
    assert_eq!(markdown.code, 2, "{}\n{}", markdown.stdout, markdown.stderr);
    assert!(
        markdown.stdout.contains(
            "linked_svc: refused: a symlinked service folder (symlinks are not followed)"
        ),
        "{}",
        markdown.stdout
    );
}
