//! Git repositories made with the `git` CLI: hermetic (a fixed identity, no
//! user or system configuration) so that what the tests read never depends
//! on the machine.

use super::scenario::{write_file, write_soa_configs};
use std::path::Path;
use std::process::Command;

/// Runs `git` in `dir` with a fixed identity and no user configuration;
/// returns its trimmed stdout, failing the test unless it succeeds.
pub fn git(dir: &Path, args: &[&str]) -> String {
    run_git(dir, None, args)
}

/// [`git`] with the author and committer dates fixed at `date`, so that a
/// commit's sha depends only on its content and message.
pub fn git_dated(dir: &Path, date: &str, args: &[&str]) -> String {
    run_git(dir, Some(date), args)
}

fn run_git(dir: &Path, date: Option<&str>, args: &[&str]) -> String {
    let mut command = Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Test Author",
            "-c",
            "user.email=author@example.com",
            "-c",
            "init.defaultBranch=master",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    if let Some(date) = date {
        command
            .env("GIT_AUTHOR_DATE", date)
            .env("GIT_COMMITTER_DATE", date);
    }
    let output = command.output().expect("run git");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A git repository of soa-configs in a tempdir, on branch `master`,
/// changed with the git CLI.
pub struct GitRepo {
    dir: tempfile::TempDir,
}

impl GitRepo {
    /// A repository without a commit.
    pub fn empty() -> Self {
        let repo = GitRepo {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        repo.git(&["init", "-q", "-b", "master"]);
        repo
    }

    /// The scenario's soa-configs ([`write_soa_configs`]: `alpha` with main
    /// and canary, `beta_svc` with main), committed.
    pub fn new() -> Self {
        let repo = GitRepo::empty();
        write_soa_configs(repo.path());
        repo.commit("initial soa-configs");
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    /// [`git`] in this repository.
    pub fn git(&self, args: &[&str]) -> String {
        git(self.path(), args)
    }

    pub fn write(&self, relative: &str, text: &str) {
        write_file(&self.path().join(relative), text);
    }

    /// Stages everything and commits; returns the new head.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.head()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    /// The daemon's `source:` for this repository's `master`, cloned into
    /// `cache`, polled every `poll`; `extra` is appended to the `git:`
    /// mapping (`", accept_force_push: true"`).
    pub fn source(&self, cache: &Path, poll: &str, extra: &str) -> String {
        format!(
            "source: {{git: {{url: '{}', branch: master, cache_dir: '{}'{extra}}}, poll_interval: {poll}}}",
            self.url(),
            cache.display()
        )
    }
}
