//! A soa-configs git repository: one bare clone in the cache directory,
//! fetched on demand, read straight from commit trees (no checkout).
//!
//! The API is blocking; the daemon calls it from `spawn_blocking`. The last
//! *accepted* commit is recorded in the cache repository itself, as the ref
//! `refs/flink-gitops/accepted/<branch>`: a failed fetch, a deleted branch or
//! a refused force-push leaves it untouched, and it outlives a restart, so
//! that a branch rewound while the reconciler was down is still refused as a
//! force-push rather than pruned. Only an empty cache (a first clone) takes
//! the remote's head without checking its ancestry. The first fetch after
//! [`GitSource::open`] always delivers the whole snapshot, as all new: the
//! caller's state did not survive the restart.

mod compact;
mod credentials;
mod fetch;
mod tree;
mod url;

pub use compact::{CompactError, MAX_PACKS};
pub use tree::{changed_services_between, clusters_at, resolve_revision, snapshot_at};

use super::{FileSelection, Snapshot};
use crate::config::daemon_settings::{GitCredentials, GitSettings};
use fetch::{Ended, FetchJob, Stop};
use git2::{Commit, ErrorCode, Oid, Reference, Repository};
use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};
use url::GitUrl;

const ACCEPTED_REF_PREFIX: &str = "refs/flink-gitops/accepted/";

/// One soa-configs branch of one repository, cloned bare into
/// `cache_dir/<sanitised url>-<hash>`.
pub struct GitSource {
    repo: Repository,
    /// The configured URL, which may hold secrets: handed to libgit2 only.
    url: String,
    /// What is shown of the URL, and what to scrub from libgit2's messages.
    parsed_url: GitUrl,
    branch: String,
    credentials: GitCredentials,
    accept_force_push: bool,
    selection: FileSelection,
    timeout: Duration,
    cancel: Arc<AtomicBool>,
    /// A fetch given up on while libgit2 still waited for the remote: no
    /// other fetch or compaction touches the cache until it ended.
    stalled: Option<Stalled>,
    last_fetched: Option<SystemTime>,
    /// `refs/flink-gitops/accepted/<branch>`, which also keeps the accepted
    /// commit's objects reachable in the cache.
    accepted_ref: String,
    last: Option<Accepted>,
    /// A commit accepted elsewhere (recorded on the leader's Lease), that
    /// the first head of an empty cache must descend from.
    required_ancestor: Option<String>,
    /// Whether a snapshot went out since `open`: until then the caller
    /// holds nothing, even when `last` came from an earlier run.
    delivered_since_open: bool,
}

struct Stalled {
    thread: JoinHandle<()>,
    since: Instant,
}

struct Accepted {
    commit: Oid,
    revision: String,
}

/// A newly accepted commit.
#[derive(Debug, Clone, PartialEq)]
pub struct GitUpdate {
    /// `root` is `<url>@<short sha>`, `revision` the full sha.
    pub snapshot: Snapshot,
    /// The top-level folders touched since the last accepted commit,
    /// deleted ones included. `None` when everything must be considered new:
    /// the first snapshot since [`GitSource::open`], or an accepted
    /// force-push.
    pub changed_services: Option<BTreeSet<String>>,
    /// The full sha of the commit.
    pub revision: String,
    /// The commit's author, `Name <email>`.
    pub author: String,
    /// The first line of the commit message.
    pub subject: String,
}

/// What a fetch found.
#[derive(Debug, Clone, PartialEq)]
pub enum FetchOutcome {
    /// The branch still points at the last accepted commit.
    Unchanged,
    /// A new commit was accepted.
    Updated(GitUpdate),
}

/// Why the git source could not produce a snapshot. Messages name the
/// repository by its URL without password and never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("failed to open the git repository {path}: {reason}")]
    OpenRepository { path: String, reason: String },
    #[error("no revision `{revision}` in the git repository {path}: {reason}")]
    UnknownRevision {
        path: String,
        revision: String,
        reason: String,
    },
    #[error("branch `{branch}` is not a valid git branch name")]
    InvalidBranch { branch: String },
    #[error("failed to open the git cache {path} for {url}: {reason}")]
    OpenCache {
        url: String,
        path: PathBuf,
        reason: String,
    },
    #[error("failed to read the git credentials for {url} from {from}: {reason}")]
    ReadCredentials {
        url: String,
        from: String,
        reason: String,
    },
    #[error("failed to authenticate to {url}: {reason}")]
    Authenticate { url: String, reason: String },
    #[error("failed to verify the ssh host key of {host} for {url}: {reason}")]
    VerifyHostKey {
        url: String,
        host: String,
        reason: String,
    },
    #[error("failed to fetch branch {branch} from {url}: {reason}")]
    Fetch {
        url: String,
        branch: String,
        reason: String,
    },
    #[error("branch {branch} does not exist in {url}")]
    BranchMissing { url: String, branch: String },
    #[error(
        "refusing commit {revision} of branch {branch} in {url}: it does not descend from the last \
         accepted commit {previous} (a force-push); set source.git.accept_force_push to accept it"
    )]
    ForcePushed {
        url: String,
        branch: String,
        previous: String,
        revision: String,
    },
    #[error("failed to read commit {revision} of {url}: {reason}")]
    ReadCommit {
        url: String,
        revision: String,
        reason: String,
    },
    #[error("failed to compare commits {previous} and {revision} of {url}: {reason}")]
    Diff {
        url: String,
        previous: String,
        revision: String,
        reason: String,
    },
    #[error(
        "failed to record commit {revision} of branch {branch} in {url} as accepted in the git \
         cache: {reason}"
    )]
    RecordAccepted {
        url: String,
        branch: String,
        revision: String,
        reason: String,
    },
    #[error(
        "failed to fetch branch {branch} from {url}: no answer within {timeout} \
         (source.git.timeout)"
    )]
    FetchTimedOut {
        url: String,
        branch: String,
        timeout: String,
    },
    #[error("the fetch of branch {branch} from {url} was cancelled")]
    FetchCancelled { url: String, branch: String },
    #[error(
        "not fetching branch {branch} from {url}: the fetch given up {elapsed} ago still waits \
         for the remote to answer"
    )]
    FetchStillRunning {
        url: String,
        branch: String,
        elapsed: String,
    },
    #[error("failed to start a fetch of branch {branch} from {url}")]
    StartFetch {
        url: String,
        branch: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "refusing the ssh remote {url}: source.git.credentials.known_hosts_file is not set, so \
         its host key cannot be verified (set source.git.credentials.\
         insecure_skip_host_key_check: true to connect without verifying it)"
    )]
    MissingKnownHosts { url: String },
}

impl fmt::Debug for GitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitSource")
            .field("url", &self.parsed_url.display)
            .field("branch", &self.branch)
            .field("cache", &self.repo.path())
            .field("last_revision", &self.last_revision())
            .finish_non_exhaustive()
    }
}

impl GitSource {
    /// Opens (or creates) the bare clone for `settings.url` in
    /// `settings.cache_dir`, with the commit an earlier run accepted. No
    /// network access happens yet.
    ///
    /// An ssh remote without `credentials.known_hosts_file` is refused unless
    /// `credentials.insecure_skip_host_key_check` is set.
    pub fn open(settings: &GitSettings, selection: FileSelection) -> Result<Self, GitError> {
        let parsed_url = GitUrl::parse(&settings.url);
        let display_url = parsed_url.display.clone();
        let refname = format!("refs/heads/{}", settings.branch);
        if settings.branch.is_empty() || !Reference::is_valid_name(&refname) {
            return Err(GitError::InvalidBranch {
                branch: settings.branch.clone(),
            });
        }
        let credentials = &settings.credentials;
        if parsed_url.ssh && credentials.known_hosts_file.is_none() {
            if !credentials.insecure_skip_host_key_check {
                return Err(GitError::MissingKnownHosts { url: display_url });
            }
            tracing::warn!(
                url = %display_url,
                "the ssh host key will not be verified \
                 (source.git.credentials.insecure_skip_host_key_check): anyone on the path to \
                 the server can serve soa-configs"
            );
        }
        let path = settings.cache_dir.join(url::cache_name(&display_url));
        let repo = open_cache(&path, &settings.cache_dir, &display_url)?;
        let accepted_ref = format!("{ACCEPTED_REF_PREFIX}{}", settings.branch);
        let last = read_accepted(&repo, &accepted_ref).map_err(|reason| GitError::OpenCache {
            url: display_url.clone(),
            path: path.clone(),
            reason,
        })?;
        Ok(GitSource {
            repo,
            url: settings.url.clone(),
            parsed_url,
            branch: settings.branch.clone(),
            credentials: settings.credentials.clone(),
            accept_force_push: settings.accept_force_push,
            selection,
            timeout: settings.timeout,
            cancel: Arc::new(AtomicBool::new(false)),
            stalled: None,
            last_fetched: None,
            accepted_ref,
            last,
            required_ancestor: None,
            delivered_since_open: false,
        })
    }

    /// The full sha of the last accepted commit: after `open`, the one an
    /// earlier run recorded in the cache (if any), even before a fetch.
    #[must_use]
    pub fn last_revision(&self) -> Option<&str> {
        self.last.as_ref().map(|last| last.revision.as_str())
    }

    /// The repository URL as shown to users: no password, token or secret
    /// query value.
    #[must_use]
    pub fn display_url(&self) -> &str {
        &self.parsed_url.display
    }

    /// A flag that, once set, stops the fetch in flight within about 25ms and
    /// makes every later [`GitSource::fetch`] fail with
    /// [`GitError::FetchCancelled`], from any thread: for shutdown. Storing
    /// `false` again lets fetches run.
    #[must_use]
    pub fn cancel_handle(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// When a fetch last reached the remote and read the branch, whether it
    /// moved or not (a refused force-push counts: the remote answered).
    #[must_use]
    pub fn last_fetched(&self) -> Option<SystemTime> {
        self.last_fetched
    }

    /// Fetches the branch and, when it moved, reads the new commit.
    ///
    /// Takes at most about `source.git.timeout`. On any error the last
    /// accepted commit stays as it was.
    pub fn fetch(&mut self) -> Result<FetchOutcome, GitError> {
        let head = self.fetch_head()?;
        self.last_fetched = Some(SystemTime::now());
        let outcome = self.accept(head);
        self.compact();
        outcome
    }

    /// With an empty cache, a commit accepted elsewhere (another replica, a
    /// pod since rescheduled) takes the place of the local record: the first
    /// head must descend from it, or be accepted as a force-push.
    pub fn require_descent_from(&mut self, revision: &str) {
        if self.last.is_none() {
            self.required_ancestor = Some(revision.to_owned());
        }
    }

    fn check_required_ancestor(&self, head: Oid, revision: &str) -> Result<(), GitError> {
        let Some(ancestor) = &self.required_ancestor else {
            return Ok(());
        };
        // Absent from the fetched history, or not an ancestor: a rewind.
        let descends = Oid::from_str(ancestor).ok().is_some_and(|oid| {
            oid == head
                || (self.repo.find_commit(oid).is_ok()
                    && self.repo.graph_descendant_of(head, oid).unwrap_or(false))
        });
        if descends {
            return Ok(());
        }
        if self.accept_force_push {
            tracing::warn!(
                url = %self.display_url(), branch = %self.branch, previous = %ancestor, %revision,
                "accepting a force-push: the new head does not descend from the commit recorded on the Lease"
            );
            return Ok(());
        }
        Err(GitError::ForcePushed {
            url: self.display_url().to_owned(),
            branch: self.branch.clone(),
            previous: ancestor.clone(),
            revision: revision.to_owned(),
        })
    }

    /// Checks `head` against the last accepted commit and, when it is new
    /// and acceptable, reads and records it.
    fn accept(&mut self, head: Oid) -> Result<FetchOutcome, GitError> {
        let display_url = self.display_url().to_owned();
        let unchanged = self.last.as_ref().is_some_and(|last| last.commit == head);
        if unchanged && self.delivered_since_open {
            return Ok(FetchOutcome::Unchanged);
        }
        let revision = head.to_string();
        let read_error = |e: git2::Error| GitError::ReadCommit {
            url: display_url.clone(),
            revision: revision.clone(),
            reason: self.scrub(e.message(), None),
        };
        let commit = self.repo.find_commit(head).map_err(read_error)?;
        let changed_services = match &self.last {
            None => {
                self.check_required_ancestor(head, &revision)?;
                None
            }
            // Not a descendant of itself, yet no force-push either.
            Some(_) if unchanged => None,
            Some(last) => {
                let diff_error = |e: git2::Error| GitError::Diff {
                    url: display_url.clone(),
                    previous: last.revision.clone(),
                    revision: revision.clone(),
                    reason: self.scrub(e.message(), None),
                };
                let descends = self
                    .repo
                    .graph_descendant_of(head, last.commit)
                    .map_err(diff_error)?;
                if descends && !self.delivered_since_open {
                    None
                } else if descends {
                    let previous = self.repo.find_commit(last.commit).map_err(diff_error)?;
                    Some(
                        tree::changed_services(&self.repo, &previous, &commit)
                            .map_err(diff_error)?,
                    )
                } else if self.accept_force_push {
                    tracing::warn!(
                        url = %display_url, branch = %self.branch,
                        previous = %last.revision, %revision,
                        "accepting a force-push: the new head does not descend from the last accepted commit"
                    );
                    None
                } else {
                    return Err(GitError::ForcePushed {
                        url: display_url,
                        branch: self.branch.clone(),
                        previous: last.revision.clone(),
                        revision,
                    });
                }
            }
        };
        let update = self
            .update_of(&commit, changed_services)
            .map_err(read_error)?;
        // Recorded before it is handed out: an accepted commit that a
        // restart forgot would let a rewind to an older one through.
        let log_message = format!("flink-gitops: accept {revision}");
        self.repo
            .reference(&self.accepted_ref, head, true, &log_message)
            .map_err(|e| GitError::RecordAccepted {
                url: display_url.clone(),
                branch: self.branch.clone(),
                revision: revision.clone(),
                reason: self.scrub(e.message(), None),
            })?;
        self.last = Some(Accepted {
            commit: head,
            revision: revision.clone(),
        });
        self.delivered_since_open = true;
        Ok(FetchOutcome::Updated(update))
    }

    /// The last accepted commit as recorded in the cache, read without a
    /// fetch: what a restarted daemon keeps reconciling while its first
    /// fetch fails or is refused (nothing is pruned meanwhile). `None` once
    /// a snapshot was handed out, or when nothing was ever accepted.
    pub fn recorded(&mut self) -> Result<Option<GitUpdate>, GitError> {
        let Some(last) = &self.last else {
            return Ok(None);
        };
        if self.delivered_since_open {
            return Ok(None);
        }
        let read_error = |e: git2::Error| GitError::ReadCommit {
            url: self.display_url().to_owned(),
            revision: last.revision.clone(),
            reason: self.scrub(e.message(), None),
        };
        let commit = self.repo.find_commit(last.commit).map_err(read_error)?;
        let update = self.update_of(&commit, None).map_err(read_error)?;
        self.delivered_since_open = true;
        Ok(Some(update))
    }

    /// `commit` read, with its author and subject.
    fn update_of(
        &self,
        commit: &Commit<'_>,
        changed_services: Option<BTreeSet<String>>,
    ) -> Result<GitUpdate, git2::Error> {
        let snapshot = tree::read_commit_snapshot(
            &self.repo,
            &self.selection,
            self.display_url(),
            commit,
            None,
        )?;
        let author = commit.author();
        let author = format!(
            "{} <{}>",
            String::from_utf8_lossy(author.name_bytes()),
            String::from_utf8_lossy(author.email_bytes())
        );
        let subject = String::from_utf8_lossy(commit.message_bytes())
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        Ok(GitUpdate {
            snapshot,
            changed_services,
            revision: commit.id().to_string(),
            author,
            subject,
        })
    }

    /// Fetches the branch into `refs/remotes/origin/<branch>` within the
    /// timeout and returns the commit the remote advertises for it.
    fn fetch_head(&mut self) -> Result<Oid, GitError> {
        let display_url = self.display_url().to_owned();
        if self.cancel.load(Ordering::SeqCst) {
            return Err(self.cancelled());
        }
        if let Some(stalled) = self.stalled.take() {
            if !stalled.thread.is_finished() {
                let elapsed = Duration::from_secs(stalled.since.elapsed().as_secs());
                self.stalled = Some(stalled);
                return Err(GitError::FetchStillRunning {
                    url: display_url,
                    branch: self.branch.clone(),
                    elapsed: humantime::format_duration(elapsed).to_string(),
                });
            }
            // It ended: its outcome is stale, and joining only reaps it.
            let _ = stalled.thread.join();
        }
        let secrets = credentials::read_secrets(&self.credentials, &display_url)?;
        let password = secrets.password.clone();
        let job = FetchJob {
            cache: self.repo.path().to_owned(),
            url: self.url.clone(),
            display_url: display_url.clone(),
            branch: self.branch.clone(),
            credentials: self.credentials.clone(),
            secrets,
            ssh_port: self.parsed_url.port,
            stop: Stop {
                deadline: Instant::now() + self.timeout,
                cancel: self.cancel.clone(),
                abort: Arc::new(AtomicBool::new(false)),
            },
        };
        let (ended, left_behind) =
            fetch::run_bounded(job).map_err(|source| GitError::StartFetch {
                url: display_url.clone(),
                branch: self.branch.clone(),
                source,
            })?;
        if let Some(thread) = left_behind {
            tracing::warn!(
                url = %display_url, branch = %self.branch,
                "the remote does not answer: the fetch is left to end by itself, and no other \
                 starts until it has"
            );
            self.stalled = Some(Stalled {
                thread,
                since: Instant::now(),
            });
        }
        let report = match ended {
            Ended::Finished(report) => report,
            Ended::TimedOut => {
                return Err(GitError::FetchTimedOut {
                    url: display_url,
                    branch: self.branch.clone(),
                    timeout: humantime::format_duration(self.timeout).to_string(),
                });
            }
            Ended::Cancelled => return Err(self.cancelled()),
            Ended::Lost => {
                return Err(GitError::Fetch {
                    url: display_url,
                    branch: self.branch.clone(),
                    reason: "the fetch thread ended without a result".to_owned(),
                });
            }
        };
        let password = password.as_deref();
        let head = match report.head {
            Ok(head) => head,
            Err(error) => {
                let reason = self.scrub(error.message(), password);
                if let Some((host, reason)) = report.host_key_failure {
                    return Err(GitError::VerifyHostKey {
                        url: display_url,
                        host,
                        reason: self.scrub(&reason, password),
                    });
                }
                if let Some(reason) = report.auth_failure {
                    return Err(GitError::Authenticate {
                        url: display_url,
                        reason: self.scrub(&reason, password),
                    });
                }
                if error.code() == ErrorCode::Auth {
                    return Err(GitError::Authenticate {
                        url: display_url,
                        reason,
                    });
                }
                if reason.contains("remote ref") {
                    return Err(self.branch_missing());
                }
                return Err(GitError::Fetch {
                    url: display_url,
                    branch: self.branch.clone(),
                    reason,
                });
            }
        };
        if report.progress_logged {
            tracing::info!(url = %display_url, branch = %self.branch, "fetch complete");
        }
        let head = head.ok_or_else(|| self.branch_missing())?;
        // The tracking ref must now hold the advertised commit.
        let tracking = format!("refs/remotes/origin/{}", self.branch);
        match self.repo.refname_to_id(&tracking) {
            Ok(id) if id == head => Ok(head),
            Ok(_) | Err(_) => Err(GitError::Fetch {
                url: display_url,
                branch: self.branch.clone(),
                reason: format!("the fetch did not update {tracking} to {head}"),
            }),
        }
    }

    /// Compacts the cache's packs when there are too many. A failure costs
    /// descriptors, not correctness: it is logged, and tried again after the
    /// next fetch.
    fn compact(&mut self) {
        let tracking = format!("refs/remotes/origin/{}", self.branch);
        let refs = [self.accepted_ref.as_str(), tracking.as_str()];
        match compact::compact_if_needed(&self.repo, &refs) {
            Ok(false) => {}
            Ok(true) => match Repository::open_bare(self.repo.path()) {
                // The old handle still holds the removed packs open.
                Ok(repo) => self.repo = repo,
                Err(e) => tracing::warn!(
                    url = %self.display_url(), error = %e.message(),
                    "failed to reopen the git cache after compacting it"
                ),
            },
            Err(error) => tracing::warn!(
                url = %self.display_url(), error = %error,
                "failed to compact the git cache"
            ),
        }
    }

    fn cancelled(&self) -> GitError {
        GitError::FetchCancelled {
            url: self.display_url().to_owned(),
            branch: self.branch.clone(),
        }
    }

    fn branch_missing(&self) -> GitError {
        GitError::BranchMissing {
            url: self.display_url().to_owned(),
            branch: self.branch.clone(),
        }
    }

    /// A libgit2 message with the configured URL and any secret replaced.
    fn scrub(&self, message: &str, password: Option<&str>) -> String {
        self.parsed_url.scrub(&self.url, message, password)
    }
}

/// The bare clone at `path`, created when missing and recreated when it is
/// not a usable bare repository.
fn open_cache(
    path: &std::path::Path,
    cache_dir: &std::path::Path,
    display_url: &str,
) -> Result<Repository, GitError> {
    let open_error = |reason: String| GitError::OpenCache {
        url: display_url.to_owned(),
        path: path.to_owned(),
        reason,
    };
    std::fs::create_dir_all(cache_dir).map_err(|e| open_error(e.to_string()))?;
    if !path.exists() {
        return Repository::init_bare(path).map_err(|e| open_error(e.message().to_owned()));
    }
    match Repository::open_bare(path) {
        Ok(repo) if repo.is_bare() => Ok(repo),
        opened => {
            let reason = match opened {
                Ok(_) => "not a bare repository".to_owned(),
                Err(e) => e.message().to_owned(),
            };
            tracing::warn!(
                path = %path.display(), url = %display_url, %reason,
                "the git cache is unusable; recreating it"
            );
            std::fs::remove_dir_all(path).map_err(|e| open_error(e.to_string()))?;
            Repository::init_bare(path).map_err(|e| open_error(e.message().to_owned()))
        }
    }
}

/// The commit an earlier run accepted, from the ref `accepted_ref`. Only a
/// missing ref means there was none: a ref whose commit cannot be read is an
/// error, since taking the remote's head as a first clone would let a
/// force-push through.
fn read_accepted(repo: &Repository, accepted_ref: &str) -> Result<Option<Accepted>, String> {
    let commit = match repo.refname_to_id(accepted_ref) {
        Ok(commit) => commit,
        Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(format!("failed to read {accepted_ref}: {}", e.message())),
    };
    let revision = commit.to_string();
    repo.find_commit(commit).map_err(|e| {
        format!(
            "the last accepted commit {revision} ({accepted_ref}) cannot be read: {}; without it \
             a force-push cannot be detected (removing the cache accepts the remote's head as a \
             first clone)",
            e.message()
        )
    })?;
    Ok(Some(Accepted { commit, revision }))
}
