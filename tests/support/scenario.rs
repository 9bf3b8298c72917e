//! A soa-configs tree in a tempdir, the fake API server, and the real binary:
//! what the plan/apply and prune scenario tests share.

use super::fake_apiserver::{FLINK_NAMESPACE, FLINK_PLURAL, FakeApiServer};
use serde_json::{Value as Json, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `_base` template and the `main` instance that `ALPHA` and
/// `WITHOUT_CANARY` share.
macro_rules! alpha_main {
    () => {
        "\
_base: &base
  job_type: stateful
  taskmanager: {cpus: 1, mem: 4096, instances: 2}
  flink_conf:
    state.backend.type: rocksdb
    execution.checkpointing.interval: '60000'
main:
  <<: *base
  checkpoint_interval_ms: 60000
"
    };
}

pub const ALPHA: &str = concat!(
    alpha_main!(),
    "canary:\n  <<: *base\n  deploy_group: prod.canary\n"
);

/// `ALPHA` with the `canary` instance removed from git.
pub const WITHOUT_CANARY: &str = alpha_main!();

pub const BETA: &str = "main: {job_type: stateless, parallelism: 2.0}\n";

pub const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

pub fn deployments(service: &str, entries: &[(&str, &str, &str)]) -> String {
    let mut groups = serde_json::Map::new();
    let mut controls = serde_json::Map::new();
    for (instance, group, sha) in entries {
        groups.insert(
            (*group).to_owned(),
            json!({"docker_image": format!("services-{service}:paasta-{sha}"), "git_sha": sha, "image_version": null}),
        );
        controls.insert(
            format!("{service}:c1.{instance}"),
            json!({"desired_state": "start", "force_bounce": null}),
        );
    }
    json!({"v1": {}, "v2": {"deployments": groups, "controls": controls}}).to_string()
}

/// Writes `text` to `path`, creating its parent directories.
pub fn write_file(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// The scenario's soa-configs under `root`: `alpha` ([`ALPHA`], main and
/// canary on [`SHA_A`]) and `beta_svc` ([`BETA`], main on [`SHA_B`]).
pub fn write_soa_configs(root: &Path) {
    let write = |relative: &str, text: &str| write_file(&root.join(relative), text);
    write("alpha/flink-c1.yaml", ALPHA);
    write(
        "alpha/deployments.json",
        &deployments(
            "alpha",
            &[("main", "c1.main", SHA_A), ("canary", "prod.canary", SHA_A)],
        ),
    );
    write("beta_svc/flink-c1.yaml", BETA);
    write(
        "beta_svc/deployments.json",
        &deployments("beta_svc", &[("main", "c1.main", SHA_B)]),
    );
}

/// The Events in the Flink namespace, oldest first (by `resourceVersion`).
pub fn events(server: &FakeApiServer) -> Vec<Json> {
    let mut events = server.objects("events", FLINK_NAMESPACE);
    events.sort_by_key(|e| {
        e["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    });
    events
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The exit code and the UTF-8 output of a finished process.
    pub fn from_output(output: Output) -> Run {
        Run {
            code: output.status.code().expect("exit code"),
            stdout: String::from_utf8(output.stdout).expect("utf-8"),
            stderr: String::from_utf8(output.stderr).expect("utf-8"),
        }
    }

    /// Both outputs, for an assertion message.
    pub fn text(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

pub struct Env {
    pub server: FakeApiServer,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

impl Env {
    pub fn new() -> Self {
        let server = FakeApiServer::with_flinks();
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = server.write_kubeconfig(dir.path());
        let env = Env {
            server,
            dir,
            kubeconfig,
        };
        write_soa_configs(&env.path("soa"));
        env.write(
            "flink-gitops.yaml",
            "cluster: c1\ndocker_registry: registry.example:443\napply:\n  retry_attempts: 3\nprune:\n  grace: 0s\n",
        );
        env
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn write(&self, relative: &str, text: &str) {
        write_file(&self.path(relative), text);
    }

    pub fn run(&self, command: &str, extra: &[&str]) -> Run {
        let soa = self.path("soa");
        let config = self.path("flink-gitops.yaml");
        let output = Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
            .arg(command)
            .args(["--soa-dir", path_str(&soa), "--config", path_str(&config)])
            .args(["--kubeconfig", path_str(&self.kubeconfig)])
            .args(extra)
            .env_remove("KUBECONFIG")
            .output()
            .expect("run flink-gitops");
        Run::from_output(output)
    }

    /// `apply --prune`.
    pub fn prune(&self) -> Run {
        self.run("apply", &["--prune"])
    }

    pub fn apply(&self) -> Run {
        let run = self.run("apply", &[]);
        assert_eq!(run.code, 0, "apply failed:\n{}\n{}", run.stdout, run.stderr);
        run
    }

    pub fn live(&self, name: &str) -> Json {
        self.server
            .object(FLINK_PLURAL, FLINK_NAMESPACE, name)
            .unwrap_or_else(|| panic!("{name} does not exist"))
    }

    /// PATCHes that were not dry runs, per object name.
    pub fn patches(&self) -> Vec<String> {
        self.server
            .writes()
            .into_iter()
            .filter(|r| r.method == "PATCH" && !r.is_dry_run())
            .map(|r| r.path.rsplit('/').next().unwrap_or_default().to_owned())
            .collect()
    }

    pub fn lists(&self) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with("/flinks"))
            .count()
    }
}

/// The scenario's configuration (cluster c1, no `prune:` section) with
/// `extra` appended.
pub fn config_with(extra: &str) -> String {
    format!(
        "cluster: c1\ndocker_registry: registry.example:443\napply: {{retry_attempts: 3}}\n{extra}\n"
    )
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

pub fn summary_count(stdout: &str, label: &str) -> usize {
    stdout
        .lines()
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(label)).then(|| words.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{stdout}"))
}
