//! The git source against real repositories made with the `git` CLI, served
//! over `file://` and over `git daemon` on 127.0.0.1.

mod support;

use flink_gitops::config::daemon_settings::{GitCredentials, GitSettings};
use flink_gitops::source::FileSelection;
use flink_gitops::source::git::{FetchOutcome, GitError, GitSource, GitUpdate};
use std::collections::BTreeSet;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::daemon_process::free_port;
use support::git_repo::git;

/// A working repository (`<tmp>/soa`) that tests commit to, and a cache
/// directory for the source.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("soa")).expect("mkdir");
        let fixture = Fixture { dir };
        git(&fixture.work(), &["init", "-q"]);
        fixture
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("soa")
    }

    fn file_url(&self) -> String {
        format!("file://{}", self.work().display())
    }

    fn write(&self, path: &str, content: &str) {
        let path = self.work().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }

    fn remove(&self, path: &str) {
        git(&self.work(), &["rm", "-q", "-r", path]);
    }

    /// Stages everything and commits; returns the sha.
    fn commit(&self, message: &str) -> String {
        git(&self.work(), &["add", "-A"]);
        self.commit_staged(message)
    }

    fn commit_staged(&self, message: &str) -> String {
        git(&self.work(), &["commit", "-q", "-m", message]);
        git(&self.work(), &["rev-parse", "HEAD"])
    }

    fn settings(&self, url: &str, cache: &str) -> GitSettings {
        GitSettings {
            url: url.to_owned(),
            branch: "master".to_owned(),
            cache_dir: self.dir.path().join(cache),
            credentials: GitCredentials::default(),
            accept_force_push: false,
            timeout: Duration::from_secs(60),
        }
    }

    fn open(&self, url: &str) -> GitSource {
        GitSource::open(&self.settings(url, "cache"), selection()).expect("open")
    }

    /// The bare repository the source keeps in the cache directory `cache`.
    fn cache_repo(&self, cache: &str) -> PathBuf {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join(cache))
            .expect("cache dir")
            .map(|entry| entry.expect("entry").path())
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries.remove(0)
    }

    /// The commit recorded as accepted for `master` in the cache `cache`.
    fn accepted(&self, cache: &str) -> String {
        git(
            &self.cache_repo(cache),
            &["rev-parse", "--verify", "refs/flink-gitops/accepted/master"],
        )
    }

    /// Three services, files the pipeline reads and files it ignores.
    fn seed(&self) -> String {
        self.write("svc-a/service.yaml", "description: a\n");
        self.write("svc-a/flink-c1.yaml", "main: {parallelism: 1}\n");
        self.write("svc-a/kubernetes-c1.yaml", "main: {}\n");
        self.write(
            "svc-a/autotuned_defaults/flink-c1.yaml",
            "main: {cpus: 2}\n",
        );
        self.write("svc-a/autotuned_defaults/kubernetes-c1.yaml", "{}\n");
        self.write("svc-a/nested/flink-c1.yaml", "{}\n");
        self.write("svc-b/deployments.json", "{\"v2\": {}}\n");
        self.write("svc-b/flink-c2.yaml", "main: {}\n");
        self.write("svc-c/README.md", "no instances\n");
        self.write(".github/flink-c1.yaml", "hidden\n");
        self.write("README.md", "soa-configs\n");
        self.commit("Seed soa-configs\n\nWith a body.")
    }
}

fn selection() -> FileSelection {
    FileSelection {
        file_prefixes: vec!["flink".to_owned()],
        ..FileSelection::default()
    }
}

fn updated(outcome: Result<FetchOutcome, GitError>) -> GitUpdate {
    match outcome {
        Ok(FetchOutcome::Updated(update)) => update,
        Ok(FetchOutcome::Unchanged) => panic!("expected an update, got Unchanged"),
        Err(error) => panic!("expected an update, got {error}"),
    }
}

fn set(names: &[&str]) -> Option<BTreeSet<String>> {
    Some(names.iter().map(|name| (*name).to_owned()).collect())
}

/// `git daemon` exporting the fixture's temp dir; killed on drop.
///
/// `git-daemon` is started directly, not through `git daemon`: killing the
/// `git` wrapper would leave the daemon serving.
struct Daemon {
    child: Child,
    port: u16,
}

impl Daemon {
    fn start(base: &Path) -> Self {
        Self::start_on(base, free_port())
    }

    fn start_on(base: &Path, port: u16) -> Self {
        let exec_path = git(Path::new("."), &["--exec-path"]);
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args([
                "--reuseaddr",
                "--export-all",
                &format!("--base-path={}", base.display()),
                "--listen=127.0.0.1",
                &format!("--port={port}"),
            ])
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn git daemon");
        let daemon = Daemon { child, port };
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        daemon
    }

    fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn git_source_can_move_to_a_blocking_thread() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<GitSource>();
    assert_send::<GitError>();
}

#[test]
fn first_fetch_reads_the_selected_files_of_every_service() {
    let fixture = Fixture::new();
    let sha = fixture.seed();
    let url = fixture.file_url();
    let mut source = fixture.open(&url);
    assert_eq!(source.last_revision(), None);

    let update = updated(source.fetch());
    assert_eq!(update.changed_services, None);
    assert_eq!(update.revision, sha);
    assert_eq!(update.author, "Test Author <author@example.com>");
    assert_eq!(update.subject, "Seed soa-configs");
    let snapshot = &update.snapshot;
    assert_eq!(snapshot.revision.as_deref(), Some(sha.as_str()));
    assert_eq!(snapshot.root, format!("{url}@{}", &sha[..12]));
    let services: Vec<&str> = snapshot.services.keys().map(String::as_str).collect();
    assert_eq!(services, ["svc-a", "svc-b", "svc-c"]);
    let svc_a = &snapshot.services["svc-a"].files;
    let files: Vec<&str> = svc_a.keys().map(String::as_str).collect();
    assert_eq!(
        files,
        [
            "autotuned_defaults/flink-c1.yaml",
            "flink-c1.yaml",
            "service.yaml"
        ]
    );
    assert_eq!(svc_a["flink-c1.yaml"], b"main: {parallelism: 1}\n");
    assert_eq!(
        svc_a["autotuned_defaults/flink-c1.yaml"],
        b"main: {cpus: 2}\n"
    );
    assert_eq!(
        snapshot.services["svc-b"].files["deployments.json"],
        b"{\"v2\": {}}\n"
    );
    assert!(snapshot.services["svc-c"].files.is_empty());
    assert_eq!(source.last_revision(), Some(sha.as_str()));

    assert_eq!(source.fetch().expect("fetch"), FetchOutcome::Unchanged);
    assert_eq!(source.last_revision(), Some(sha.as_str()));
}

#[test]
fn new_commits_report_the_services_they_touch_over_git_daemon() {
    let fixture = Fixture::new();
    fixture.seed();
    let daemon = Daemon::start(fixture.dir.path());
    let mut source = fixture.open(&daemon.url("soa"));
    updated(source.fetch());

    fixture.write("svc-a/flink-c1.yaml", "main: {parallelism: 2}\n");
    let second = fixture.commit("Scale svc-a");
    let update = updated(source.fetch());
    assert_eq!(update.changed_services, set(&["svc-a"]));
    assert_eq!(update.revision, second);
    assert_eq!(update.subject, "Scale svc-a");
    assert_eq!(
        update.snapshot.services["svc-a"].files["flink-c1.yaml"],
        b"main: {parallelism: 2}\n"
    );
    assert_eq!(source.fetch().expect("fetch"), FetchOutcome::Unchanged);

    fixture.remove("svc-b");
    fixture.write("README.md", "top-level files are not services\n");
    fixture.write(".github/flink-c1.yaml", "hidden folders are not services\n");
    fixture.write(
        "svc-c/notes.txt",
        "unselected files still mark the service\n",
    );
    let third = fixture.commit("Retire svc-b");
    let update = updated(source.fetch());
    assert_eq!(update.changed_services, set(&["svc-b", "svc-c"]));
    assert!(!update.snapshot.services.contains_key("svc-b"));
    assert_eq!(source.last_revision(), Some(third.as_str()));

    // Two commits at once: the union of what they touched.
    fixture.write("svc-d/flink-c1.yaml", "main: {}\n");
    fixture.commit("Add svc-d");
    fixture.write(
        "svc-a/autotuned_defaults/flink-c1.yaml",
        "main: {cpus: 3}\n",
    );
    fixture.commit("Autotune svc-a");
    let update = updated(source.fetch());
    assert_eq!(update.changed_services, set(&["svc-a", "svc-d"]));

    // A symlink where a service folder would be is a (refused) service.
    std::os::unix::fs::symlink("svc-a", fixture.work().join("svc-linked")).expect("ln");
    fixture.commit("Link svc-a");
    let update = updated(source.fetch());
    assert_eq!(update.changed_services, set(&["svc-linked"]));
    assert_eq!(update.snapshot.services["svc-linked"].refused.len(), 1);
}

#[test]
fn a_force_push_is_refused_unless_accepted() {
    let fixture = Fixture::new();
    let first = fixture.seed();
    let url = fixture.file_url();
    let mut strict = GitSource::open(&fixture.settings(&url, "strict"), selection()).expect("open");
    let mut lenient_settings = fixture.settings(&url, "lenient");
    lenient_settings.accept_force_push = true;
    let mut lenient = GitSource::open(&lenient_settings, selection()).expect("open");
    updated(strict.fetch());
    updated(lenient.fetch());

    // An unrelated history replaces the branch.
    git(&fixture.work(), &["checkout", "-q", "--orphan", "rewrite"]);
    git(&fixture.work(), &["rm", "-q", "-r", "--cached", "."]);
    std::fs::remove_dir_all(fixture.work().join("svc-b")).expect("rm");
    let rewritten = fixture.commit("Rewrite history");
    git(&fixture.work(), &["branch", "-f", "master", "rewrite"]);

    for _ in 0..2 {
        match strict.fetch() {
            Err(GitError::ForcePushed {
                previous, revision, ..
            }) => {
                assert_eq!(previous, first);
                assert_eq!(revision, rewritten);
            }
            other => panic!("expected ForcePushed, got {other:?}"),
        }
        assert_eq!(strict.last_revision(), Some(first.as_str()));
    }

    let update = updated(lenient.fetch());
    assert_eq!(update.changed_services, None);
    assert_eq!(update.revision, rewritten);
    assert!(!update.snapshot.services.contains_key("svc-b"));
    assert_eq!(lenient.last_revision(), Some(rewritten.as_str()));
    assert_eq!(lenient.fetch().expect("fetch"), FetchOutcome::Unchanged);
}

#[test]
fn a_stopped_git_daemon_keeps_the_last_revision() {
    let fixture = Fixture::new();
    let first = fixture.seed();
    let mut daemon = Daemon::start(fixture.dir.path());
    let mut source = fixture.open(&daemon.url("soa"));
    updated(source.fetch());

    daemon.stop();
    fixture.write("svc-a/flink-c1.yaml", "main: {parallelism: 5}\n");
    fixture.commit("Scale svc-a");
    match source.fetch() {
        Err(error @ GitError::Fetch { .. }) => {
            assert!(error.to_string().contains("127.0.0.1"), "{error}");
        }
        other => panic!("expected Fetch, got {other:?}"),
    }
    assert_eq!(source.last_revision(), Some(first.as_str()));

    // Once the remote is back, the change is picked up relative to `first`.
    let _daemon = Daemon::start_on(fixture.dir.path(), daemon.port);
    let update = updated(source.fetch());
    assert_eq!(update.changed_services, set(&["svc-a"]));
}

#[test]
fn a_deleted_file_remote_keeps_the_last_revision() {
    let fixture = Fixture::new();
    let first = fixture.seed();
    let mut source = fixture.open(&fixture.file_url());
    updated(source.fetch());

    std::fs::remove_dir_all(fixture.work()).expect("rm");
    match source.fetch() {
        Err(GitError::Fetch { url, branch, .. }) => {
            assert_eq!(url, fixture.file_url());
            assert_eq!(branch, "master");
        }
        other => panic!("expected Fetch, got {other:?}"),
    }
    assert_eq!(source.last_revision(), Some(first.as_str()));
}

#[test]
fn a_deleted_branch_is_reported_as_missing() {
    let fixture = Fixture::new();
    let first = fixture.seed();
    let daemon = Daemon::start(fixture.dir.path());
    let mut over_file = fixture.open(&fixture.file_url());
    let mut over_daemon = GitSource::open(
        &fixture.settings(&daemon.url("soa"), "cache-daemon"),
        selection(),
    )
    .expect("open");
    updated(over_file.fetch());
    updated(over_daemon.fetch());

    git(&fixture.work(), &["checkout", "-q", "-b", "elsewhere"]);
    git(&fixture.work(), &["branch", "-q", "-D", "master"]);
    for source in [&mut over_file, &mut over_daemon] {
        match source.fetch() {
            Err(GitError::BranchMissing { branch, .. }) => assert_eq!(branch, "master"),
            other => panic!("expected BranchMissing, got {other:?}"),
        }
        assert_eq!(source.last_revision(), Some(first.as_str()));
    }

    // A branch that never existed is missing from the first fetch on.
    let mut settings = fixture.settings(&fixture.file_url(), "cache-never");
    settings.branch = "never".to_owned();
    let mut never = GitSource::open(&settings, selection()).expect("open");
    assert!(
        matches!(never.fetch(), Err(GitError::BranchMissing { .. })),
        "expected BranchMissing"
    );
    assert_eq!(never.last_revision(), None);
}

#[test]
fn symlinks_and_submodules_are_refused_and_make_their_service_unknown() {
    let fixture = Fixture::new();
    let seed = fixture.seed();
    let work = fixture.work();
    std::os::unix::fs::symlink("flink-c1.yaml", work.join("svc-a/flink-c9.yaml")).expect("ln");
    std::os::unix::fs::symlink("svc-a", work.join("svc-linked")).expect("ln");
    std::os::unix::fs::symlink("/etc/passwd", work.join("svc-b/flink-c3.yaml")).expect("ln");
    // A symlink the pipeline never reads is not refused.
    std::os::unix::fs::symlink("/etc/passwd", work.join("svc-c/NOTES.txt")).expect("ln");
    git(&work, &["add", "-A"]);
    for gitlink in ["svc-submodule", "svc-b/flink-c4.yaml"] {
        git(
            &work,
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("160000,{seed},{gitlink}"),
            ],
        );
    }
    fixture.commit_staged("Add links");

    let mut source = fixture.open(&fixture.file_url());
    let snapshot = updated(source.fetch()).snapshot;
    let services: Vec<&str> = snapshot.services.keys().map(String::as_str).collect();
    // Listed, so that nothing of theirs looks removed.
    assert_eq!(
        services,
        ["svc-a", "svc-b", "svc-c", "svc-linked", "svc-submodule"]
    );
    let refused = |service: &str| -> Vec<(String, String)> {
        snapshot.services[service]
            .refused
            .iter()
            .map(|r| (r.path.clone(), r.reason.clone()))
            .collect()
    };
    let symlink = "a symlink (symlinks are not followed)".to_owned();
    let submodule = "a git submodule (submodules are not followed)".to_owned();
    assert_eq!(
        refused("svc-a"),
        [("flink-c9.yaml".to_owned(), symlink.clone())]
    );
    assert_eq!(
        refused("svc-b"),
        [
            ("flink-c3.yaml".to_owned(), symlink),
            ("flink-c4.yaml".to_owned(), submodule)
        ]
    );
    assert_eq!(refused("svc-c"), []);
    assert_eq!(
        refused("svc-linked"),
        [(
            String::new(),
            "a symlinked service folder (symlinks are not followed)".to_owned()
        )]
    );
    assert_eq!(
        refused("svc-submodule"),
        [(
            String::new(),
            "a git submodule (submodules are not followed)".to_owned()
        )]
    );
    // The refused targets are never read.
    let files: Vec<&str> = snapshot.services["svc-b"]
        .files
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(files, ["deployments.json", "flink-c2.yaml"]);

    // The config stage turns each refusal of a file the cluster reads into a
    // diagnostic and the service into an unknown one; the others load. The
    // refused files are for clusters c9, c3 and c4: c1 reads none of them.
    let settings = flink_gitops::config::Settings::default();
    let unknown_for = |cluster: &str| -> Vec<String> {
        flink_gitops::config::load(&snapshot, &settings, cluster, None)
            .unknown_services()
            .map(|(name, _)| name.clone())
            .collect()
    };
    assert_eq!(unknown_for("c1"), ["svc-linked", "svc-submodule"]);
    assert_eq!(unknown_for("c9"), ["svc-a", "svc-linked", "svc-submodule"]);
    let config = flink_gitops::config::load(&snapshot, &settings, "c3", None);
    let unknown: Vec<&str> = config
        .unknown_services()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(unknown, ["svc-b", "svc-linked", "svc-submodule"]);
    let (_, diagnostics) = config
        .unknown_services()
        .find(|(name, _)| *name == "svc-b")
        .expect("svc-b");
    let text = diagnostics[0].to_string();
    assert!(text.contains("/svc-b/flink-c3.yaml"), "{text}");
    assert!(text.contains("refused: a symlink"), "{text}");
}

#[test]
fn folders_and_files_in_the_wrong_place_are_refused_and_make_their_service_unknown() {
    let fixture = Fixture::new();
    fixture.seed();
    for service in [
        "svc-instance-dir",
        "svc-deployments-dir",
        "svc-service-dir",
        "svc-autotuned-instance-dir",
        "svc-autotuned-file",
    ] {
        fixture.write(&format!("{service}/flink-c2.yaml"), "main: {}\n");
    }
    fixture.write("svc-instance-dir/flink-c1.yaml/main.yaml", "{}\n");
    fixture.write("svc-deployments-dir/deployments.json/v2.json", "{}\n");
    fixture.write("svc-service-dir/service.yaml/x.yaml", "{}\n");
    fixture.write(
        "svc-autotuned-instance-dir/autotuned_defaults/flink-c1.yaml/main.yaml",
        "{}\n",
    );
    fixture.write("svc-autotuned-file/autotuned_defaults", "flink-c1.yaml\n");
    // Folders the pipeline never reads are not refused.
    fixture.write("svc-c/flinkdocs/flink-c1.yaml", "{}\n");
    fixture.commit("Folders and files in the wrong place");

    let mut source = fixture.open(&fixture.file_url());
    let snapshot = updated(source.fetch()).snapshot;
    let refused = |service: &str| -> Vec<(String, String)> {
        snapshot.services[service]
            .refused
            .iter()
            .map(|r| (r.path.clone(), r.reason.clone()))
            .collect()
    };
    let folder = "a folder, not a file".to_owned();
    for (service, path) in [
        ("svc-instance-dir", "flink-c1.yaml"),
        ("svc-deployments-dir", "deployments.json"),
        ("svc-service-dir", "service.yaml"),
        (
            "svc-autotuned-instance-dir",
            "autotuned_defaults/flink-c1.yaml",
        ),
    ] {
        assert_eq!(
            refused(service),
            [(path.to_owned(), folder.clone())],
            "{service}"
        );
    }
    assert_eq!(
        refused("svc-autotuned-file"),
        [(
            "autotuned_defaults".to_owned(),
            "a file, not a folder".to_owned()
        )]
    );
    // What else these services hold is still read.
    for service in [
        "svc-instance-dir",
        "svc-deployments-dir",
        "svc-service-dir",
        "svc-autotuned-instance-dir",
        "svc-autotuned-file",
    ] {
        let files: Vec<&str> = snapshot.services[service]
            .files
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(files, ["flink-c2.yaml"], "{service}");
    }
    for service in ["svc-a", "svc-b", "svc-c"] {
        assert_eq!(refused(service), [], "{service}");
    }
    assert_eq!(snapshot.services["svc-a"].files.len(), 3);
    assert_eq!(snapshot.services["svc-b"].files.len(), 2);

    let settings = flink_gitops::config::Settings::default();
    let config = flink_gitops::config::load(&snapshot, &settings, "c1", None);
    let unknown: Vec<&str> = config
        .unknown_services()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(
        unknown,
        [
            "svc-autotuned-file",
            "svc-autotuned-instance-dir",
            "svc-deployments-dir",
            "svc-instance-dir",
            "svc-service-dir"
        ]
    );
}

#[test]
fn reopening_a_cache_delivers_the_recorded_commit_in_full() {
    let fixture = Fixture::new();
    let sha = fixture.seed();
    let url = fixture.file_url();
    {
        let mut source = fixture.open(&url);
        updated(source.fetch());
    }
    let mut source = fixture.open(&url);
    assert_eq!(source.last_revision(), Some(sha.as_str()));
    // The remote has not moved, but the caller's state went with the
    // restart: the first fetch hands over everything again.
    let update = updated(source.fetch());
    assert_eq!(update.changed_services, None);
    assert_eq!(update.revision, sha);
    assert_eq!(update.snapshot.services.len(), 3);
    assert_eq!(source.fetch().expect("fetch"), FetchOutcome::Unchanged);
    assert_eq!(fixture.accepted("cache"), sha);
    let caches = std::fs::read_dir(fixture.dir.path().join("cache"))
        .expect("cache dir")
        .count();
    assert_eq!(caches, 1, "one bare repository per URL");

    // A descendant found by the first fetch after a restart is checked
    // against the recorded commit, and still rendered in full.
    drop(source);
    fixture.write("svc-a/flink-c1.yaml", "main: {parallelism: 3}\n");
    let moved = fixture.commit("Scale svc-a");
    let mut source = fixture.open(&url);
    let update = updated(source.fetch());
    assert_eq!(update.changed_services, None);
    assert_eq!(update.revision, moved);
    assert_eq!(fixture.accepted("cache"), moved);
    fixture.write("svc-b/flink-c2.yaml", "main: {parallelism: 2}\n");
    fixture.commit("Scale svc-b");
    let update = updated(source.fetch());
    assert_eq!(update.changed_services, set(&["svc-b"]));
}

#[test]
fn a_force_push_while_stopped_is_refused_after_a_restart_unless_accepted() {
    let fixture = Fixture::new();
    let first = fixture.seed();
    let url = fixture.file_url();
    let second = {
        let mut source = fixture.open(&url);
        updated(source.fetch());
        fixture.write("svc-d/flink-c1.yaml", "main: {}\n");
        let second = fixture.commit("Add svc-d");
        assert_eq!(updated(source.fetch()).changed_services, set(&["svc-d"]));
        second
    };

    // Rewound while no source was running: svc-d would look removed.
    git(&fixture.work(), &["reset", "-q", "--hard", &first]);
    for _ in 0..2 {
        let mut source = fixture.open(&url);
        assert_eq!(source.last_revision(), Some(second.as_str()));
        match source.fetch() {
            Err(GitError::ForcePushed {
                previous, revision, ..
            }) => {
                assert_eq!(previous, second);
                assert_eq!(revision, first);
            }
            other => panic!("expected ForcePushed, got {other:?}"),
        }
        assert_eq!(source.last_revision(), Some(second.as_str()));
        assert_eq!(fixture.accepted("cache"), second);
    }

    let mut settings = fixture.settings(&url, "cache");
    settings.accept_force_push = true;
    let mut lenient = GitSource::open(&settings, selection()).expect("open");
    let update = updated(lenient.fetch());
    assert_eq!(update.changed_services, None);
    assert_eq!(update.revision, first);
    assert!(!update.snapshot.services.contains_key("svc-d"));
    assert_eq!(fixture.accepted("cache"), first);
    assert_eq!(lenient.fetch().expect("fetch"), FetchOutcome::Unchanged);
}

#[test]
fn an_empty_cache_accepts_any_head_as_a_first_clone() {
    let fixture = Fixture::new();
    fixture.seed();
    let url = fixture.file_url();
    {
        let mut source = fixture.open(&url);
        updated(source.fetch());
    }
    // An unrelated history, refused by the cache that saw the old one...
    git(&fixture.work(), &["checkout", "-q", "--orphan", "rewrite"]);
    git(&fixture.work(), &["rm", "-q", "-r", "--cached", "."]);
    std::fs::remove_dir_all(fixture.work().join("svc-b")).expect("rm");
    let rewritten = fixture.commit("Rewrite history");
    git(&fixture.work(), &["branch", "-f", "master", "rewrite"]);
    assert!(matches!(
        fixture.open(&url).fetch(),
        Err(GitError::ForcePushed { .. })
    ));

    // ...is a first clone for an empty one.
    let mut fresh = GitSource::open(&fixture.settings(&url, "fresh"), selection()).expect("open");
    assert_eq!(fresh.last_revision(), None);
    let update = updated(fresh.fetch());
    assert_eq!(update.changed_services, None);
    assert_eq!(update.revision, rewritten);
    assert_eq!(fixture.accepted("fresh"), rewritten);
}

#[test]
fn a_recorded_commit_missing_from_the_cache_is_refused_at_open() {
    let fixture = Fixture::new();
    fixture.seed();
    let url = fixture.file_url();
    updated(fixture.open(&url).fetch());
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let refs = fixture
        .cache_repo("cache")
        .join("refs/flink-gitops/accepted");
    std::fs::create_dir_all(&refs).expect("mkdir");
    std::fs::write(refs.join("master"), format!("{missing}\n")).expect("write ref");
    // Without the commit no ancestry can be checked: taking the remote's
    // head as a first clone would let a force-push through.
    match GitSource::open(&fixture.settings(&url, "cache"), selection()) {
        Err(error @ GitError::OpenCache { .. }) => {
            assert!(error.to_string().contains(missing), "{error}");
        }
        other => panic!("expected OpenCache, got {other:?}"),
    }
}

#[test]
fn errors_never_show_the_password_of_the_url() {
    let fixture = Fixture::new();
    let port = free_port();
    let url = format!("https://deploy:s3cr3t-t0ken@127.0.0.1:{port}/org/soa-configs.git");
    let mut source = GitSource::open(&fixture.settings(&url, "cache"), selection()).expect("open");
    assert_eq!(
        source.display_url(),
        format!("https://deploy@127.0.0.1:{port}/org/soa-configs.git")
    );
    assert!(!format!("{source:?}").contains("s3cr3t"));
    let error = source.fetch().expect_err("nothing listens there");
    assert!(matches!(error, GitError::Fetch { .. }), "{error:?}");
    let shown = error.to_string();
    assert!(shown.contains("deploy@127.0.0.1"), "{shown}");
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert!(!format!("{error:?}").contains("s3cr3t"), "{error:?}");
    for entry in std::fs::read_dir(fixture.dir.path().join("cache")).expect("cache") {
        let name = entry.expect("entry").file_name();
        assert!(!name.to_string_lossy().contains("s3cr3t"), "{name:?}");
    }
}

#[test]
fn unreadable_credentials_are_reported_without_their_content() {
    let fixture = Fixture::new();
    fixture.seed();
    let mut settings = fixture.settings(&fixture.file_url(), "cache");
    settings.credentials.password_file = Some(fixture.dir.path().join("missing-token"));
    let mut source = GitSource::open(&settings, selection()).expect("open");
    match source.fetch() {
        Err(error @ GitError::ReadCredentials { .. }) => {
            assert!(error.to_string().contains("missing-token"), "{error}");
        }
        other => panic!("expected ReadCredentials, got {other:?}"),
    }

    // A readable token is only offered when the server asks: file:// does not.
    let token = fixture.dir.path().join("token");
    std::fs::write(&token, "tok3n-value\n").expect("write");
    settings.credentials.password_file = Some(token);
    settings.credentials.username = Some("bot".to_owned());
    let mut source = GitSource::open(&settings, selection()).expect("open");
    updated(source.fetch());

    settings.credentials.password_file = None;
    settings.credentials.password_env = Some("FLINK_GITOPS_TEST_UNSET_TOKEN_VARIABLE".to_owned());
    let mut source = GitSource::open(&settings, selection()).expect("open");
    match source.fetch() {
        Err(error @ GitError::ReadCredentials { .. }) => {
            assert!(
                error
                    .to_string()
                    .contains("FLINK_GITOPS_TEST_UNSET_TOKEN_VARIABLE")
            );
        }
        other => panic!("expected ReadCredentials, got {other:?}"),
    }
}

/// An HTTP server that refuses every request with `401 Basic`, recording
/// the `Authorization` headers it was sent; stopped on drop.
struct RefusingServer {
    port: u16,
    authorizations: Arc<Mutex<Vec<Option<String>>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RefusingServer {
    fn start() -> Self {
        use std::io::{BufRead, BufReader};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen, stopped) = (authorizations.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut authorization = None;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("authorization")
                    {
                        authorization = Some(value.trim().to_owned());
                    }
                    line.clear();
                }
                seen.lock().expect("lock").push(authorization);
                let _ = stream.write_all(
                    b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"soa\"\r\n\
                      Content-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        RefusingServer {
            port,
            authorizations,
            stop,
            thread: Some(thread),
        }
    }

    fn authorizations(&self) -> Vec<Option<String>> {
        self.authorizations.lock().expect("lock").clone()
    }
}

impl Drop for RefusingServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn https_credentials_are_offered_once_and_never_shown() {
    let fixture = Fixture::new();
    let server = RefusingServer::start();
    let url = format!("http://127.0.0.1:{}/org/soa-configs.git", server.port);
    let token = fixture.dir.path().join("token");
    std::fs::write(&token, "tok3n-value\n").expect("write");
    let mut settings = fixture.settings(&url, "cache");
    settings.credentials.username = Some("bot".to_owned());
    settings.credentials.password_file = Some(token);
    let mut source = GitSource::open(&settings, selection()).expect("open");
    let error = source.fetch().expect_err("the server refuses everything");
    assert!(matches!(error, GitError::Authenticate { .. }), "{error:?}");
    assert!(!error.to_string().contains("tok3n"), "{error}");
    // `bot:tok3n-value` (trailing newline trimmed), sent once.
    let sent: Vec<Option<String>> = server.authorizations();
    let with_token = sent
        .iter()
        .filter(|a| a.as_deref() == Some("Basic Ym90OnRvazNuLXZhbHVl"))
        .count();
    assert_eq!(with_token, 1, "{sent:?}");
    assert_eq!(sent.iter().flatten().count(), 1, "{sent:?}");

    // Without a configured password the server's demand is explained.
    let mut settings = fixture.settings(&url, "cache-anonymous");
    settings.credentials = GitCredentials::default();
    let mut source = GitSource::open(&settings, selection()).expect("open");
    match source.fetch() {
        Err(error @ GitError::Authenticate { .. }) => {
            assert!(error.to_string().contains("password_file"), "{error}");
        }
        other => panic!("expected Authenticate, got {other:?}"),
    }
}

#[test]
fn an_invalid_branch_name_is_refused_at_open() {
    let fixture = Fixture::new();
    let mut settings = fixture.settings(&fixture.file_url(), "cache");
    settings.branch = "main:refs/heads/other".to_owned();
    assert!(matches!(
        GitSource::open(&settings, selection()),
        Err(GitError::InvalidBranch { .. })
    ));
}

#[test]
fn a_blob_over_the_size_limit_is_refused_unread() {
    let fixture = Fixture::new();
    fixture.seed();
    fixture.write(
        "svc-b/flink-c1.yaml",
        &format!("main: {{note: {}}}\n", "x".repeat(64)),
    );
    fixture.commit("A large file");
    let small = FileSelection {
        file_prefixes: vec!["flink".to_owned()],
        max_file_bytes: 40,
    };
    let mut source =
        GitSource::open(&fixture.settings(&fixture.file_url(), "cache"), small).expect("open");
    let snapshot = updated(source.fetch()).snapshot;
    let svc_b = &snapshot.services["svc-b"];
    assert!(!svc_b.files.contains_key("flink-c1.yaml"));
    let refused: Vec<(&str, &str)> = svc_b
        .refused
        .iter()
        .map(|r| (r.path.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(
        refused,
        [(
            "flink-c1.yaml",
            "the file is 79 bytes, over 40 bytes (limit max_document_bytes)"
        )]
    );
    // Files under the limit are read as usual.
    assert!(snapshot.services["svc-a"].refused.is_empty());
    assert!(
        snapshot.services["svc-a"]
            .files
            .contains_key("flink-c1.yaml")
    );
}

/// Accepts connections and never answers; the connections close on drop.
struct HangingServer {
    port: u16,
    held: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HangingServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let held = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (kept, stopped) = (held.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    kept.lock().expect("lock").push(stream);
                }
            }
        });
        HangingServer {
            port,
            held,
            stop,
            thread: Some(thread),
        }
    }

    fn connections(&self) -> usize {
        self.held.lock().expect("lock").len()
    }
}

impl Drop for HangingServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.held.lock().expect("lock").clear();
    }
}

/// The pack files of the cache `cache`.
fn packs(fixture: &Fixture, cache: &str) -> usize {
    std::fs::read_dir(fixture.cache_repo(cache).join("objects/pack"))
        .expect("pack dir")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "pack"))
        })
        .count()
}

/// This process's descriptors open on files under `dir`: other tests run
/// in the same process, so only these are this test's.
fn descriptors_under(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

#[test]
fn many_fetches_keep_packs_and_descriptors_bounded() {
    let fixture = Fixture::new();
    fixture.seed();
    let mut source = fixture.open(&fixture.file_url());
    updated(source.fetch());
    let baseline = descriptors_under(fixture.dir.path());
    for i in 0..200 {
        fixture.write(
            "svc-a/flink-c1.yaml",
            &format!("main: {{parallelism: {i}}}\n"),
        );
        let sha = fixture.commit(&format!("Scale svc-a to {i}"));
        assert_eq!(updated(source.fetch()).revision, sha);
    }
    let packs = packs(&fixture, "cache");
    assert!(packs <= 33, "{packs} packs in the cache");
    let descriptors = descriptors_under(fixture.dir.path());
    assert!(
        descriptors <= baseline + 40,
        "{descriptors} descriptors open in the fixture, {baseline} after the first fetch"
    );
    // The compacted cache still serves: history, ancestry and the record.
    assert_eq!(source.fetch().expect("fetch"), FetchOutcome::Unchanged);
    fixture.write("svc-b/flink-c2.yaml", "main: {parallelism: 9}\n");
    let last = fixture.commit("Scale svc-b");
    let update = updated(source.fetch());
    assert_eq!(update.changed_services, set(&["svc-b"]));
    assert_eq!(fixture.accepted("cache"), last);
    drop(source);
    let mut reopened = fixture.open(&fixture.file_url());
    assert_eq!(reopened.last_revision(), Some(last.as_str()));
    assert_eq!(updated(reopened.fetch()).revision, last);
}

/// A source for `url` with a one-second timeout.
fn open_with_timeout(fixture: &Fixture, url: &str, timeout: Duration) -> GitSource {
    let mut settings = fixture.settings(url, "cache");
    settings.timeout = timeout;
    GitSource::open(&settings, selection()).expect("open")
}

#[test]
fn a_remote_that_never_answers_times_out_over_git_and_http() {
    let fixture = Fixture::new();
    let server = HangingServer::start();
    for url in [
        format!("git://127.0.0.1:{}/x", server.port),
        format!("http://user:s3cret@127.0.0.1:{}/x", server.port),
    ] {
        let mut source = open_with_timeout(&fixture, &url, Duration::from_secs(1));
        let started = Instant::now();
        let error = source.fetch().expect_err("no answer");
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_secs(1), "{url}: {elapsed:?}");
        assert!(elapsed < Duration::from_secs(4), "{url}: {elapsed:?}");
        assert!(
            matches!(error, GitError::FetchTimedOut { .. }),
            "{url}: {error:?}"
        );
        let shown = error.to_string();
        assert!(shown.contains(source.display_url()), "{shown}");
        assert!(shown.contains("within 1s"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        // The silent fetch still waits: none other starts on the cache.
        assert!(
            matches!(source.fetch(), Err(GitError::FetchStillRunning { .. })),
            "{url}"
        );
    }
    assert!(server.connections() >= 2);
}

#[test]
fn a_fetch_left_waiting_on_a_silent_remote_ends_when_the_remote_goes_away() {
    let fixture = Fixture::new();
    fixture.seed();
    let server = HangingServer::start();
    let port = server.port;
    let mut source = open_with_timeout(
        &fixture,
        &format!("git://127.0.0.1:{port}/soa"),
        Duration::from_millis(500),
    );
    assert!(matches!(
        source.fetch(),
        Err(GitError::FetchTimedOut { .. })
    ));
    drop(server);
    // The same URL now served: once the left-behind fetch ended, fetching
    // works again.
    let _daemon = Daemon::start_on(fixture.dir.path(), port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match source.fetch() {
            Ok(FetchOutcome::Updated(_)) => break,
            Err(GitError::FetchStillRunning { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => panic!("expected an update, got {other:?}"),
        }
    }
}

#[test]
fn a_cancel_from_another_thread_ends_the_fetch_early() {
    let fixture = Fixture::new();
    let server = HangingServer::start();
    let url = format!("http://127.0.0.1:{}/x", server.port);
    let mut source = open_with_timeout(&fixture, &url, Duration::from_secs(60));
    let cancel = source.cancel_handle();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        cancel.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let started = Instant::now();
    let error = source.fetch().expect_err("cancelled");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, GitError::FetchCancelled { .. }),
        "{error:?}"
    );
    canceller.join().expect("canceller");
    // Cancelled for good: a shutdown starts no new fetch.
    assert!(matches!(
        source.fetch(),
        Err(GitError::FetchCancelled { .. })
    ));
}

#[test]
fn an_ssh_remote_without_known_hosts_is_refused_at_open() {
    let fixture = Fixture::new();
    for url in [
        "ssh://git@127.0.0.1:2222/soa.git",
        "ssh://deploy:pw@git.example.com/soa.git",
        "git@github.com:org/soa-configs.git",
        "git+ssh://git.example.com/soa.git",
    ] {
        match GitSource::open(&fixture.settings(url, "cache"), selection()) {
            Err(error @ GitError::MissingKnownHosts { .. }) => {
                let shown = error.to_string();
                assert!(shown.contains("known_hosts_file"), "{shown}");
                assert!(shown.contains("insecure_skip_host_key_check"), "{shown}");
                assert!(!shown.contains(":pw@"), "{shown}");
            }
            other => panic!("{url}: expected MissingKnownHosts, got {other:?}"),
        }
    }
    // Other transports need no known_hosts.
    for url in [
        fixture.file_url(),
        "https://github.com/org/soa.git".to_owned(),
    ] {
        GitSource::open(&fixture.settings(&url, "cache"), selection()).expect("open");
    }
}

#[test]
fn an_ssh_remote_opens_with_known_hosts_or_the_insecure_opt_out() {
    let fixture = Fixture::new();
    let url = "ssh://git@127.0.0.1:2222/soa.git";
    let mut settings = fixture.settings(url, "cache");
    settings.credentials.insecure_skip_host_key_check = true;
    GitSource::open(&settings, selection()).expect("open without verification");

    let known_hosts = fixture.dir.path().join("known_hosts");
    std::fs::write(&known_hosts, "").expect("write");
    let mut settings = fixture.settings(url, "cache");
    settings.credentials.known_hosts_file = Some(known_hosts);
    GitSource::open(&settings, selection()).expect("open with known_hosts");
}

#[test]
fn a_token_in_the_url_is_never_shown() {
    let fixture = Fixture::new();
    let port = free_port();
    for (url, secret) in [
        (
            format!("https://ghp_S3CRET@127.0.0.1:{port}/org/soa.git"),
            "ghp_S3CRET",
        ),
        (
            format!("https://u:pa/ss@127.0.0.1:{port}/org/soa.git"),
            "pa/ss",
        ),
        (
            format!("https://u:p@ss@127.0.0.1:{port}/org/soa.git"),
            "p@ss",
        ),
        (
            format!("https://127.0.0.1:{port}/org/soa.git?private_token=glpat-S3CRET"),
            "glpat-S3CRET",
        ),
    ] {
        let mut settings = fixture.settings(&url, "cache");
        settings.timeout = Duration::from_secs(5);
        let mut source = GitSource::open(&settings, selection()).expect("open");
        assert!(!source.display_url().contains(secret), "{url}");
        assert!(!format!("{source:?}").contains(secret), "{url}");
        let error = source.fetch().expect_err("nothing listens there");
        assert!(!error.to_string().contains(secret), "{error}");
        assert!(!format!("{error:?}").contains(secret), "{error:?}");
    }
    for entry in std::fs::read_dir(fixture.dir.path().join("cache")).expect("cache") {
        let name = entry.expect("entry").file_name();
        assert!(!name.to_string_lossy().contains("S3CRET"), "{name:?}");
    }
}
