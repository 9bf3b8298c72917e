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

use super::{FileSelection, ServiceFiles, Snapshot};
use crate::config::daemon_settings::{GitCredentials, GitSettings};
use git2::cert::Cert;
use git2::{
    AutotagOption, CertificateCheckStatus, Commit, Cred, CredentialType, ErrorCode, FetchOptions,
    ObjectType, Oid, Progress, ProxyOptions, Reference, RemoteCallbacks, Repository, Tree,
};
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

const MODE_TREE: i32 = 0o040_000;
const MODE_SYMLINK: i32 = 0o120_000;
const MODE_GITLINK: i32 = 0o160_000;
const AUTOTUNED_DEFAULTS: &str = "autotuned_defaults";
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);
const SHORT_SHA_LEN: usize = 12;
const ACCEPTED_REF_PREFIX: &str = "refs/flink-gitops/accepted/";

/// One soa-configs branch of one repository, cloned bare into
/// `cache_dir/<sanitised url>-<hash>`.
pub struct GitSource {
    repo: Repository,
    /// The configured URL, which may hold a password: handed to libgit2 only.
    url: String,
    /// The URL with any userinfo password stripped: the only one shown.
    display_url: String,
    /// The password written in the URL, to scrub from libgit2's messages.
    url_password: Option<String>,
    /// `[host]:port` for ssh on a non-standard port, for known_hosts.
    ssh_port: Option<u16>,
    branch: String,
    credentials: GitCredentials,
    accept_force_push: bool,
    selection: FileSelection,
    /// `refs/flink-gitops/accepted/<branch>`, which also keeps the accepted
    /// commit's objects reachable in the cache.
    accepted_ref: String,
    last: Option<Accepted>,
    /// Whether a snapshot went out since `open`: until then the caller
    /// holds nothing, even when `last` came from an earlier run.
    delivered_since_open: bool,
    warned_unverified_host_key: bool,
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
}

impl fmt::Debug for GitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitSource")
            .field("url", &self.display_url)
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
    pub fn open(settings: &GitSettings, selection: FileSelection) -> Result<Self, GitError> {
        let url = parse_url(&settings.url);
        let display_url = url.redacted(&settings.url);
        let refname = format!("refs/heads/{}", settings.branch);
        if settings.branch.is_empty() || !Reference::is_valid_name(&refname) {
            return Err(GitError::InvalidBranch {
                branch: settings.branch.clone(),
            });
        }
        let path = settings.cache_dir.join(cache_name(&display_url));
        let open_error = |reason: String| GitError::OpenCache {
            url: display_url.clone(),
            path: path.clone(),
            reason,
        };
        std::fs::create_dir_all(&settings.cache_dir).map_err(|e| open_error(e.to_string()))?;
        let repo = if path.exists() {
            match Repository::open_bare(&path) {
                Ok(repo) if repo.is_bare() => repo,
                opened => {
                    let reason = match opened {
                        Ok(_) => "not a bare repository".to_owned(),
                        Err(e) => e.message().to_owned(),
                    };
                    tracing::warn!(
                        path = %path.display(), url = %display_url, %reason,
                        "the git cache is unusable; recreating it"
                    );
                    std::fs::remove_dir_all(&path).map_err(|e| open_error(e.to_string()))?;
                    Repository::init_bare(&path).map_err(|e| open_error(e.message().to_owned()))?
                }
            }
        } else {
            Repository::init_bare(&path).map_err(|e| open_error(e.message().to_owned()))?
        };
        let accepted_ref = format!("{ACCEPTED_REF_PREFIX}{}", settings.branch);
        let last = read_accepted(&repo, &accepted_ref).map_err(open_error)?;
        Ok(GitSource {
            repo,
            url: settings.url.clone(),
            url_password: url.password.map(str::to_owned),
            ssh_port: url.port,
            display_url,
            branch: settings.branch.clone(),
            credentials: settings.credentials.clone(),
            accept_force_push: settings.accept_force_push,
            selection,
            accepted_ref,
            last,
            delivered_since_open: false,
            warned_unverified_host_key: false,
        })
    }

    /// The full sha of the last accepted commit: after `open`, the one an
    /// earlier run recorded in the cache (if any), even before a fetch.
    #[must_use]
    pub fn last_revision(&self) -> Option<&str> {
        self.last.as_ref().map(|last| last.revision.as_str())
    }

    /// The repository URL as shown to users (any password stripped).
    #[must_use]
    pub fn display_url(&self) -> &str {
        &self.display_url
    }

    /// Fetches the branch and, when it moved, reads the new commit.
    ///
    /// On any error the last accepted commit stays as it was.
    pub fn fetch(&mut self) -> Result<FetchOutcome, GitError> {
        let head = self.fetch_head()?;
        let unchanged = self.last.as_ref().is_some_and(|last| last.commit == head);
        if unchanged && self.delivered_since_open {
            return Ok(FetchOutcome::Unchanged);
        }
        let revision = head.to_string();
        let read_error = |e: git2::Error| GitError::ReadCommit {
            url: self.display_url.clone(),
            revision: revision.clone(),
            reason: self.scrub(e.message(), None),
        };
        let commit = self.repo.find_commit(head).map_err(read_error)?;
        let changed_services = match &self.last {
            None => None,
            // Not a descendant of itself, yet no force-push either.
            Some(_) if unchanged => None,
            Some(last) => {
                let diff_error = |e: git2::Error| GitError::Diff {
                    url: self.display_url.clone(),
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
                        self.changed_services(&previous, &commit)
                            .map_err(diff_error)?,
                    )
                } else if self.accept_force_push {
                    tracing::warn!(
                        url = %self.display_url, branch = %self.branch,
                        previous = %last.revision, %revision,
                        "accepting a force-push: the new head does not descend from the last accepted commit"
                    );
                    None
                } else {
                    return Err(GitError::ForcePushed {
                        url: self.display_url.clone(),
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
                url: self.display_url.clone(),
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
            url: self.display_url.clone(),
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
        let snapshot = self.read_snapshot(commit)?;
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

    /// Fetches the branch into `refs/remotes/origin/<branch>` and returns the
    /// commit the remote advertises for it.
    fn fetch_head(&mut self) -> Result<Oid, GitError> {
        let secrets = self.read_secrets()?;
        let state = CallbackState {
            display_url: &self.display_url,
            credentials: &self.credentials,
            password: secrets.password.as_deref(),
            known_hosts: secrets.known_hosts.as_ref(),
            ssh_port: self.ssh_port,
            warned_unverified_host_key: Cell::new(self.warned_unverified_host_key),
            tried: Cell::new(CredentialType::empty()),
            auth_failure: RefCell::new(None),
            host_key_failure: RefCell::new(None),
            progress_logged: Cell::new(false),
        };
        let refspec = format!(
            "+refs/heads/{branch}:refs/remotes/origin/{branch}",
            branch = self.branch
        );
        let fetched = {
            let state = &state;
            let mut callbacks = RemoteCallbacks::new();
            callbacks.credentials(|_url, user_from_url, allowed| {
                state.credential(user_from_url, allowed)
            });
            callbacks.certificate_check(|cert, host| state.check_certificate(cert, host));
            let mut last_log = Instant::now();
            callbacks.transfer_progress(move |progress| {
                if last_log.elapsed() >= PROGRESS_INTERVAL {
                    last_log = Instant::now();
                    state.log_progress(&progress);
                }
                true
            });
            let mut proxy = ProxyOptions::new();
            proxy.auto();
            let mut options = FetchOptions::new();
            options
                .remote_callbacks(callbacks)
                .proxy_options(proxy)
                .download_tags(AutotagOption::None)
                .update_fetchhead(false);
            self.repo
                .remote_anonymous(&self.url)
                .and_then(|mut remote| {
                    remote.fetch(&[refspec.as_str()], Some(&mut options), None)?;
                    let wanted = format!("refs/heads/{}", self.branch);
                    let head = remote
                        .list()?
                        .iter()
                        .find(|head| head.name() == wanted)
                        .map(git2::RemoteHead::oid);
                    Ok(head)
                })
        };
        self.warned_unverified_host_key = state.warned_unverified_host_key.get();
        let password = secrets.password.as_deref();
        let head = match fetched {
            Ok(head) => head,
            Err(error) => {
                let reason = self.scrub(error.message(), password);
                if let Some((host, reason)) = state.host_key_failure.take() {
                    return Err(GitError::VerifyHostKey {
                        url: self.display_url.clone(),
                        host,
                        reason: self.scrub(&reason, password),
                    });
                }
                if let Some(reason) = state.auth_failure.take() {
                    return Err(GitError::Authenticate {
                        url: self.display_url.clone(),
                        reason: self.scrub(&reason, password),
                    });
                }
                if error.code() == ErrorCode::Auth {
                    return Err(GitError::Authenticate {
                        url: self.display_url.clone(),
                        reason,
                    });
                }
                if reason.contains("remote ref") {
                    return Err(self.branch_missing());
                }
                return Err(GitError::Fetch {
                    url: self.display_url.clone(),
                    branch: self.branch.clone(),
                    reason,
                });
            }
        };
        if state.progress_logged.get() {
            tracing::info!(url = %self.display_url, branch = %self.branch, "fetch complete");
        }
        let head = head.ok_or_else(|| self.branch_missing())?;
        // The tracking ref must now hold the advertised commit.
        let tracking = format!("refs/remotes/origin/{}", self.branch);
        match self.repo.refname_to_id(&tracking) {
            Ok(id) if id == head => Ok(head),
            Ok(_) | Err(_) => Err(GitError::Fetch {
                url: self.display_url.clone(),
                branch: self.branch.clone(),
                reason: format!("the fetch did not update {tracking} to {head}"),
            }),
        }
    }

    fn branch_missing(&self) -> GitError {
        GitError::BranchMissing {
            url: self.display_url.clone(),
            branch: self.branch.clone(),
        }
    }

    /// Reads the password and known_hosts before connecting, so that an
    /// unreadable file is reported as such rather than as a refused login.
    fn read_secrets(&self) -> Result<Secrets, GitError> {
        let read_error = |from: String, reason: String| GitError::ReadCredentials {
            url: self.display_url.clone(),
            from,
            reason,
        };
        let password = if let Some(path) = &self.credentials.password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| read_error(path.display().to_string(), e.to_string()))?;
            Some(text.trim_end_matches(['\n', '\r']).to_owned())
        } else if let Some(name) = &self.credentials.password_env {
            let value = std::env::var(name).map_err(|e| {
                let reason = match e {
                    std::env::VarError::NotPresent => "not set",
                    std::env::VarError::NotUnicode(_) => "not valid unicode",
                };
                read_error(format!("environment variable {name}"), reason.to_owned())
            })?;
            Some(value)
        } else {
            None
        };
        let known_hosts = match &self.credentials.known_hosts_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| read_error(path.display().to_string(), e.to_string()))?;
                Some(KnownHosts::parse(&text))
            }
            None => None,
        };
        Ok(Secrets {
            password,
            known_hosts,
        })
    }

    /// Replaces the configured URL and any password in a libgit2 message.
    fn scrub(&self, message: &str, password: Option<&str>) -> String {
        let mut message = message.replace(&self.url, &self.display_url);
        for secret in [self.url_password.as_deref(), password]
            .into_iter()
            .flatten()
        {
            if !secret.is_empty() {
                message = message.replace(secret, "***");
            }
        }
        message
    }

    /// The top-level folders with a changed path between two commits.
    fn changed_services(
        &self,
        previous: &Commit<'_>,
        commit: &Commit<'_>,
    ) -> Result<BTreeSet<String>, git2::Error> {
        let diff =
            self.repo
                .diff_tree_to_tree(Some(&previous.tree()?), Some(&commit.tree()?), None)?;
        let mut services = BTreeSet::new();
        for delta in diff.deltas() {
            for path in [delta.old_file().path(), delta.new_file().path()]
                .into_iter()
                .flatten()
            {
                if let Some(service) = service_of(path) {
                    services.insert(service.to_owned());
                }
            }
            services.extend(linked_service_folder(&delta));
        }
        Ok(services)
    }

    fn read_snapshot(&self, commit: &Commit<'_>) -> Result<Snapshot, git2::Error> {
        read_commit_snapshot(&self.repo, &self.selection, &self.display_url, commit, None)
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

/// Reads the selected files of every top-level service folder of `commit`
/// (only the folders in `only`, when given; the others are not listed).
fn read_commit_snapshot(
    repo: &Repository,
    selection: &FileSelection,
    display_url: &str,
    commit: &Commit<'_>,
    only: Option<&BTreeSet<String>>,
) -> Result<Snapshot, git2::Error> {
    let revision = commit.id().to_string();
    let short = &revision[..SHORT_SHA_LEN.min(revision.len())];
    let mut services = BTreeMap::new();
    for entry in commit.tree()?.iter() {
        let Ok(name) = std::str::from_utf8(entry.name_bytes()) else {
            continue;
        };
        if name.starts_with('.') || only.is_some_and(|only| !only.contains(name)) {
            continue;
        }
        match entry.filemode() {
            MODE_TREE => {
                let tree = repo.find_tree(entry.id())?;
                let mut files = ServiceFiles::default();
                read_service_tree(repo, selection, &tree, "", &mut files)?;
                services.insert(name.to_owned(), files);
            }
            // Not followed, and not skipped either: a skipped folder would
            // look like a removed service and have its instances pruned.
            MODE_SYMLINK => {
                services.insert(
                    name.to_owned(),
                    ServiceFiles::refused("a symlinked service folder (symlinks are not followed)"),
                );
            }
            MODE_GITLINK => {
                services.insert(
                    name.to_owned(),
                    ServiceFiles::refused("a git submodule (submodules are not followed)"),
                );
            }
            _ => {}
        }
    }
    Ok(Snapshot {
        root: format!("{display_url}@{short}"),
        revision: Some(revision),
        services,
    })
}

/// Reads the selected blobs of a service folder (`prefix` empty) or of
/// its `autotuned_defaults` folder.
///
/// An entry the pipeline would read that is not what it expects is refused,
/// never skipped: a skipped instance file looks removed and gets pruned.
fn read_service_tree(
    repo: &Repository,
    selection: &FileSelection,
    tree: &Tree<'_>,
    prefix: &str,
    files: &mut ServiceFiles,
) -> Result<(), git2::Error> {
    for entry in tree.iter() {
        let Ok(name) = std::str::from_utf8(entry.name_bytes()) else {
            continue;
        };
        let path_in_service = format!("{prefix}{name}");
        let is_autotuned_dir = prefix.is_empty() && name == AUTOTUNED_DEFAULTS;
        if !is_autotuned_dir && !selection.wants(&path_in_service) {
            continue;
        }
        let mode = entry.filemode();
        let refusal = match (mode, entry.kind()) {
            (MODE_SYMLINK, _) => "a symlink (symlinks are not followed)".to_owned(),
            (MODE_GITLINK, _) => "a git submodule (submodules are not followed)".to_owned(),
            (_, Some(ObjectType::Tree)) if is_autotuned_dir => {
                let subtree = repo.find_tree(entry.id())?;
                let prefix = format!("{AUTOTUNED_DEFAULTS}/");
                read_service_tree(repo, selection, &subtree, &prefix, files)?;
                continue;
            }
            (_, Some(ObjectType::Tree)) => "a folder, not a file".to_owned(),
            (_, Some(ObjectType::Blob)) if is_autotuned_dir => "a file, not a folder".to_owned(),
            (_, Some(ObjectType::Blob)) => {
                // The header alone gives the size: a huge blob is never loaded.
                let (size, _) = repo.odb()?.read_header(entry.id())?;
                if size > selection.max_file_bytes {
                    let size = u64::try_from(size).unwrap_or(u64::MAX);
                    files.refuse_size(path_in_service, size, selection.max_file_bytes);
                } else {
                    let blob = repo.find_blob(entry.id())?;
                    files.files.insert(path_in_service, blob.content().to_vec());
                }
                continue;
            }
            _ => format!("not a file or a folder (git mode {mode:o})"),
        };
        files.refuse(path_in_service, refusal);
    }
    Ok(())
}

/// Opens a local repository (a work tree, or a bare one) to read revisions
/// from its object database; nothing is checked out or fetched.
fn open_local(repo_path: &Path) -> Result<Repository, GitError> {
    Repository::open(repo_path).map_err(|e| GitError::OpenRepository {
        path: repo_path.display().to_string(),
        reason: e.message().to_owned(),
    })
}

/// The commit `rev` names (a sha, a branch, `HEAD~1`, `origin/main`...).
fn resolve_commit<'r>(
    repo: &'r Repository,
    repo_path: &Path,
    rev: &str,
) -> Result<Commit<'r>, GitError> {
    repo.revparse_single(rev)
        .and_then(|object| object.peel_to_commit())
        .map_err(|e| GitError::UnknownRevision {
            path: repo_path.display().to_string(),
            revision: rev.to_owned(),
            reason: e.message().to_owned(),
        })
}

/// Reads the snapshot of revision `rev` of the local repository at
/// `repo_path`, straight from the object database (no checkout), with the
/// commit's full sha. With `only`, only those service folders are read.
/// The snapshot's `root` is `<repo_path>@<short sha>`.
pub fn snapshot_at(
    repo_path: &Path,
    rev: &str,
    selection: &FileSelection,
    only: Option<&BTreeSet<String>>,
) -> Result<(Snapshot, String), GitError> {
    let repo = open_local(repo_path)?;
    let commit = resolve_commit(&repo, repo_path, rev)?;
    let revision = commit.id().to_string();
    let display = repo_path.display().to_string();
    let snapshot =
        read_commit_snapshot(&repo, selection, &display, &commit, only).map_err(|e| {
            GitError::ReadCommit {
                url: display.clone(),
                revision: revision.clone(),
                reason: e.message().to_owned(),
            }
        })?;
    Ok((snapshot, revision))
}

/// The clusters that revision `rev` has an instance file for
/// (`<service>/<prefix>-<cluster>.yaml`), read from tree entry names only:
/// no file is read.
pub fn clusters_at(
    repo_path: &Path,
    rev: &str,
    file_prefixes: &[String],
) -> Result<BTreeSet<String>, GitError> {
    let repo = open_local(repo_path)?;
    let commit = resolve_commit(&repo, repo_path, rev)?;
    let read_error = |e: git2::Error| GitError::ReadCommit {
        url: repo_path.display().to_string(),
        revision: commit.id().to_string(),
        reason: e.message().to_owned(),
    };
    let tree = commit.tree().map_err(read_error)?;
    let selection = FileSelection {
        file_prefixes: file_prefixes.to_vec(),
        ..FileSelection::default()
    };
    let mut clusters = BTreeSet::new();
    for service in tree.iter() {
        if service.kind() != Some(git2::ObjectType::Tree) {
            continue;
        }
        let Ok(folder) = service.to_object(&repo).and_then(|o| o.peel_to_tree()) else {
            continue;
        };
        for entry in folder.iter() {
            if let Ok(name) = entry.name() {
                clusters.extend(selection.clusters_of(name).map(str::to_owned));
            }
        }
    }
    Ok(clusters)
}

/// The full sha of revision `rev` of the local repository at `repo_path`.
pub fn resolve_revision(repo_path: &Path, rev: &str) -> Result<String, GitError> {
    let repo = open_local(repo_path)?;
    Ok(resolve_commit(&repo, repo_path, rev)?.id().to_string())
}

/// The service folders with a changed file that `selection` reads (instance
/// files of the configured prefixes, `service.yaml`, `deployments.json`,
/// autotuned defaults) between revisions `base` and `head`. A rename counts
/// for both folders; a file the pipeline does not read changes nothing.
pub fn changed_services_between(
    repo_path: &Path,
    base: &str,
    head: &str,
    selection: &FileSelection,
) -> Result<BTreeSet<String>, GitError> {
    let repo = open_local(repo_path)?;
    let base_commit = resolve_commit(&repo, repo_path, base)?;
    let head_commit = resolve_commit(&repo, repo_path, head)?;
    let diff_error = |e: git2::Error| GitError::Diff {
        url: repo_path.display().to_string(),
        previous: base_commit.id().to_string(),
        revision: head_commit.id().to_string(),
        reason: e.message().to_owned(),
    };
    let diff = repo
        .diff_tree_to_tree(
            Some(&base_commit.tree().map_err(diff_error)?),
            Some(&head_commit.tree().map_err(diff_error)?),
            None,
        )
        .map_err(diff_error)?;
    let mut services = BTreeSet::new();
    for delta in diff.deltas() {
        for path in [delta.old_file().path(), delta.new_file().path()]
            .into_iter()
            .flatten()
        {
            let Some(service) = service_of(path) else {
                continue;
            };
            let Ok(in_service) = path.strip_prefix(service) else {
                continue;
            };
            if in_service.to_str().is_some_and(|p| selection.wants(p)) {
                services.insert(service.to_owned());
            }
        }
        services.extend(linked_service_folder(&delta));
    }
    Ok(services)
}

/// A top-level symlink or submodule that appeared, changed or went away:
/// it stands where a service folder would, and is refused as one.
fn linked_service_folder(delta: &git2::DiffDelta<'_>) -> Option<String> {
    [delta.old_file(), delta.new_file()]
        .iter()
        .find_map(|file| {
            let mode = i32::from(file.mode());
            let path = file.path()?;
            let linked = mode == MODE_SYMLINK || mode == MODE_GITLINK;
            let top_level = path.components().count() == 1;
            let name = path.to_str()?;
            (linked && top_level && !name.starts_with('.')).then(|| name.to_owned())
        })
}

/// The service a changed path belongs to: its first component, when the
/// path lies inside a top-level folder that is not hidden.
fn service_of(path: &Path) -> Option<&str> {
    let mut components = path.components();
    let Some(Component::Normal(first)) = components.next() else {
        return None;
    };
    components.next()?;
    let first = first.to_str()?;
    (!first.starts_with('.')).then_some(first)
}

struct Secrets {
    password: Option<String>,
    known_hosts: Option<KnownHosts>,
}

/// What the libgit2 callbacks of one fetch share.
struct CallbackState<'a> {
    display_url: &'a str,
    credentials: &'a GitCredentials,
    password: Option<&'a str>,
    known_hosts: Option<&'a KnownHosts>,
    ssh_port: Option<u16>,
    warned_unverified_host_key: Cell<bool>,
    /// Each credential type is offered at most once per fetch: libgit2 asks
    /// again after a refusal, forever.
    tried: Cell<CredentialType>,
    auth_failure: RefCell<Option<String>>,
    host_key_failure: RefCell<Option<(String, String)>>,
    progress_logged: Cell<bool>,
}

impl CallbackState<'_> {
    fn credential(
        &self,
        user_from_url: Option<&str>,
        allowed: CredentialType,
    ) -> Result<Cred, git2::Error> {
        let first_try = |kind: CredentialType| {
            let tried = self.tried.get();
            if allowed.contains(kind) && !tried.contains(kind) {
                self.tried.set(tried | kind);
                true
            } else {
                false
            }
        };
        let ssh_user = user_from_url.unwrap_or("git");
        if first_try(CredentialType::USERNAME) {
            return Cred::username(ssh_user);
        }
        if let Some(key) = &self.credentials.ssh_key_file
            && first_try(CredentialType::SSH_KEY)
        {
            return Cred::ssh_key(ssh_user, None, key, None);
        }
        if let Some(password) = self.password
            && first_try(CredentialType::USER_PASS_PLAINTEXT)
        {
            let user = self
                .credentials
                .username
                .as_deref()
                .or(user_from_url)
                .unwrap_or("git");
            return Cred::userpass_plaintext(user, password);
        }
        let tried = self.tried.get();
        let reason =
            if tried.intersects(CredentialType::SSH_KEY | CredentialType::USER_PASS_PLAINTEXT) {
                "the server refused the configured credentials".to_owned()
            } else if allowed.contains(CredentialType::SSH_KEY) {
                "the server asks for an ssh key and source.git.credentials.ssh_key_file is not set"
                    .to_owned()
            } else if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                "the server asks for a password and neither source.git.credentials.password_file \
             nor password_env is set"
                    .to_owned()
            } else {
                format!("the server asks for credentials of an unsupported kind ({allowed:?})")
            };
        self.auth_failure.replace(Some(reason.clone()));
        Err(git2::Error::from_str(&reason))
    }

    fn check_certificate(
        &self,
        cert: &Cert<'_>,
        host: &str,
    ) -> Result<CertificateCheckStatus, git2::Error> {
        let Some(hostkey) = cert.as_hostkey() else {
            // TLS: libgit2's own verification against the system roots.
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        let Some(known_hosts) = self.known_hosts else {
            if !self.warned_unverified_host_key.replace(true) {
                tracing::warn!(
                    url = %self.display_url, host,
                    "accepting the ssh host key without verification: \
                     set source.git.credentials.known_hosts_file to verify it"
                );
            }
            return Ok(CertificateCheckStatus::CertificateOk);
        };
        let name = match self.ssh_port {
            Some(port) if port != 22 => format!("[{host}]:{port}"),
            _ => host.to_owned(),
        };
        let key = HostKey {
            blob: hostkey.hostkey(),
            sha256: hostkey.hash_sha256(),
        };
        let reason = match known_hosts.check(&name, &key) {
            HostKeyCheck::Match => return Ok(CertificateCheckStatus::CertificateOk),
            HostKeyCheck::Unknown => "the host is not in known_hosts_file",
            HostKeyCheck::Mismatch => "the host key does not match the one in known_hosts_file",
            HostKeyCheck::Revoked => "the host key is revoked in known_hosts_file",
            HostKeyCheck::NoKey => "the server presented no usable host key",
        };
        self.host_key_failure
            .replace(Some((name, reason.to_owned())));
        Err(git2::Error::from_str(reason))
    }

    fn log_progress(&self, progress: &Progress<'_>) {
        self.progress_logged.set(true);
        tracing::info!(
            url = %self.display_url,
            received_objects = progress.received_objects(),
            total_objects = progress.total_objects(),
            indexed_objects = progress.indexed_objects(),
            received_bytes = progress.received_bytes(),
            "fetching: {}/{} objects, {} received",
            progress.received_objects(),
            progress.total_objects(),
            human_bytes(progress.received_bytes()),
        );
    }
}

fn human_bytes(bytes: usize) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The cache folder of a repository: a readable tail of the URL and a hash
/// of the whole (password-less) URL.
fn cache_name(display_url: &str) -> String {
    let digest = Sha256::digest(display_url.as_bytes());
    let tail = display_url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or_default();
    let tail = tail.strip_suffix(".git").unwrap_or(tail);
    let tail: String = tail
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let tail = tail.trim_start_matches('.');
    let tail = if tail.is_empty() { "repo" } else { tail };
    format!("{tail}-{}", hex::encode(&digest[..8]))
}

/// The parts of a git URL that matter here.
#[derive(Debug, Default, PartialEq)]
struct UrlParts<'a> {
    /// `user:password@` of `scheme://user:password@host/…`.
    userinfo: Option<&'a str>,
    password: Option<&'a str>,
    port: Option<u16>,
}

/// Splits `scheme://[user[:password]@]host[:port]/path` or the scp-like
/// `[user@]host:path`.
fn parse_url(url: &str) -> UrlParts<'_> {
    let Some((_scheme, rest)) = url.split_once("://") else {
        return UrlParts::default();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority),
    };
    let password = userinfo
        .and_then(|info| info.split_once(':'))
        .map(|(_, p)| p);
    let port = if let Some(bracketed) = hostport.strip_prefix('[') {
        bracketed
            .split_once("]:")
            .and_then(|(_, port)| port.parse().ok())
    } else {
        hostport
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
    };
    UrlParts {
        userinfo,
        password,
        port,
    }
}

impl UrlParts<'_> {
    /// The URL without the password of its userinfo.
    fn redacted(&self, url: &str) -> String {
        match (self.userinfo, url.split_once("://")) {
            (Some(userinfo), Some((scheme, rest))) if self.password.is_some() => {
                let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
                let after = &rest[userinfo.len()..];
                let after = after.strip_prefix('@').unwrap_or(after);
                if user.is_empty() {
                    format!("{scheme}://{after}")
                } else {
                    format!("{scheme}://{user}@{after}")
                }
            }
            _ => url.to_owned(),
        }
    }
}

/// The host key a server presented.
struct HostKey<'a> {
    /// The key in ssh wire format, as base64-encoded in known_hosts.
    blob: Option<&'a [u8]>,
    sha256: Option<&'a [u8; 32]>,
}

impl HostKey<'_> {
    fn is(&self, known: &[u8]) -> Option<bool> {
        if let Some(blob) = self.blob {
            return Some(blob == known);
        }
        self.sha256
            .map(|hash| hash.as_slice() == Sha256::digest(known).as_slice())
    }
}

#[derive(Debug, PartialEq, Eq)]
enum HostKeyCheck {
    Match,
    Mismatch,
    Unknown,
    Revoked,
    NoKey,
}

/// An OpenSSH known_hosts file: plain, wildcard, negated and hashed
/// (`|1|salt|hash`) host patterns; `@revoked` keys; `@cert-authority` lines
/// are ignored (certificates are not supported).
#[derive(Debug, Default)]
struct KnownHosts {
    entries: Vec<KnownHost>,
}

#[derive(Debug)]
struct KnownHost {
    revoked: bool,
    hosts: String,
    key: Vec<u8>,
}

impl KnownHosts {
    fn parse(text: &str) -> Self {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut revoked = false;
            let mut hosts = fields.next();
            if let Some(marker) = hosts.filter(|h| h.starts_with('@')) {
                if marker != "@revoked" {
                    continue;
                }
                revoked = true;
                hosts = fields.next();
            }
            let (Some(hosts), Some(_key_type), Some(key)) = (hosts, fields.next(), fields.next())
            else {
                continue;
            };
            let Some(key) = base64_decode(key) else {
                continue;
            };
            entries.push(KnownHost {
                revoked,
                hosts: hosts.to_owned(),
                key,
            });
        }
        KnownHosts { entries }
    }

    /// Checks the key `name` (`host` or `[host]:port`) presented.
    fn check(&self, name: &str, key: &HostKey<'_>) -> HostKeyCheck {
        if key.blob.is_none() && key.sha256.is_none() {
            return HostKeyCheck::NoKey;
        }
        let name = name.to_ascii_lowercase();
        if self
            .entries
            .iter()
            .any(|entry| entry.revoked && key.is(&entry.key) == Some(true))
        {
            return HostKeyCheck::Revoked;
        }
        let mut known = false;
        for entry in self
            .entries
            .iter()
            .filter(|e| !e.revoked && hosts_match(&e.hosts, &name))
        {
            known = true;
            if key.is(&entry.key) == Some(true) {
                return HostKeyCheck::Match;
            }
        }
        if known {
            HostKeyCheck::Mismatch
        } else {
            HostKeyCheck::Unknown
        }
    }
}

/// Whether a known_hosts host field matches `name` (lower case).
fn hosts_match(hosts: &str, name: &str) -> bool {
    if let Some(hashed) = hosts.strip_prefix("|1|") {
        let Some((salt, hash)) = hashed.split_once('|') else {
            return false;
        };
        let (Some(salt), Some(hash)) = (base64_decode(salt), base64_decode(hash)) else {
            return false;
        };
        return hmac_sha1(&salt, name.as_bytes()).as_slice() == hash.as_slice();
    }
    let mut matched = false;
    for pattern in hosts.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(pattern) => (true, pattern),
            None => (false, pattern),
        };
        if wildcard_match(pattern.to_ascii_lowercase().as_bytes(), name.as_bytes()) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// `*` and `?` glob matching.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| wildcard_match(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && wildcard_match(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && wildcard_match(rest, &text[1..]),
    }
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.trim_end_matches('=').bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// HMAC-SHA1, which hashed known_hosts entries use (RFC 2104).
fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..20].copy_from_slice(&sha1(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(message);
    let mut outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&sha1(&inner));
    sha1(&outer)
}

/// SHA-1 (FIPS 180-4), only for matching hashed known_hosts names.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut state: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut message = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_be_bytes());
    for chunk in message.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (word, bytes) in w.iter_mut().zip(chunk.chunks_exact(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = state;
        for (i, word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let next = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*word);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = next;
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d, e]) {
            *s = s.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (bytes, word) in out.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base64_encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn sha1_and_hmac_match_the_reference_vectors() {
        assert_eq!(
            hex::encode(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex::encode(sha1(&[b'a'; 1000])),
            "291e9a6c66994949b57ba5e650361e98fc36b1ba"
        );
        // RFC 2202, test cases 1 and 6.
        assert_eq!(
            hex::encode(hmac_sha1(&[0x0b; 20], b"Hi There")),
            "b617318655057264e28bc0b6fb378c8ef146be00"
        );
        assert_eq!(
            hex::encode(hmac_sha1(
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112"
        );
    }

    #[test]
    fn base64_round_trips() {
        for bytes in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            assert_eq!(base64_decode(&base64_encode(bytes)).as_deref(), Some(bytes));
        }
        assert_eq!(base64_decode("not base64!"), None);
    }

    #[test]
    fn known_hosts_checks_plain_wildcard_port_hashed_and_revoked_entries() {
        let good = b"\0\0\0\x0bssh-ed25519 good key".to_vec();
        let other = b"\0\0\0\x0bssh-ed25519 other key".to_vec();
        let revoked = b"\0\0\0\x0bssh-ed25519 revoked".to_vec();
        let salt = b"0123456789abcdef0123";
        let hashed_name = format!(
            "|1|{}|{}",
            base64_encode(salt),
            base64_encode(&hmac_sha1(salt, b"hashed.example.com"))
        );
        let text = format!(
            "# comment\n\
             github.com,140.82.1.1 ssh-ed25519 {good}\n\
             *.corp.example.com,!bad.corp.example.com ssh-ed25519 {good}\n\
             [git.example.com]:2222 ssh-ed25519 {good}\n\
             {hashed_name} ssh-ed25519 {good}\n\
             @revoked * ssh-ed25519 {revoked}\n\
             @cert-authority * ssh-ed25519 {other}\n\
             broken line\n",
            good = base64_encode(&good),
            other = base64_encode(&other),
            revoked = base64_encode(&revoked),
        );
        let known = KnownHosts::parse(&text);
        fn key(blob: &[u8]) -> HostKey<'_> {
            HostKey {
                blob: Some(blob),
                sha256: None,
            }
        }
        assert_eq!(known.check("github.com", &key(&good)), HostKeyCheck::Match);
        assert_eq!(known.check("GitHub.com", &key(&good)), HostKeyCheck::Match);
        assert_eq!(
            known.check("github.com", &key(&other)),
            HostKeyCheck::Mismatch
        );
        assert_eq!(
            known.check("a.corp.example.com", &key(&good)),
            HostKeyCheck::Match
        );
        assert_eq!(
            known.check("bad.corp.example.com", &key(&good)),
            HostKeyCheck::Unknown
        );
        assert_eq!(
            known.check("[git.example.com]:2222", &key(&good)),
            HostKeyCheck::Match
        );
        assert_eq!(
            known.check("git.example.com", &key(&good)),
            HostKeyCheck::Unknown
        );
        assert_eq!(
            known.check("hashed.example.com", &key(&good)),
            HostKeyCheck::Match
        );
        assert_eq!(
            known.check("unknown.example.com", &key(&good)),
            HostKeyCheck::Unknown
        );
        assert_eq!(
            known.check("github.com", &key(&revoked)),
            HostKeyCheck::Revoked
        );
        let digest: [u8; 32] = Sha256::digest(&good).into();
        let by_hash = HostKey {
            blob: None,
            sha256: Some(&digest),
        };
        assert_eq!(known.check("github.com", &by_hash), HostKeyCheck::Match);
        let none = HostKey {
            blob: None,
            sha256: None,
        };
        assert_eq!(known.check("github.com", &none), HostKeyCheck::NoKey);
    }

    #[test]
    fn urls_lose_their_password_and_keep_their_port() {
        let cases = [
            (
                "https://user:s3cret@github.com/org/repo.git",
                "https://user@github.com/org/repo.git",
                None,
            ),
            (
                "https://:tok@github.com/org/repo.git",
                "https://github.com/org/repo.git",
                None,
            ),
            (
                "https://token@github.com/org/repo.git",
                "https://token@github.com/org/repo.git",
                None,
            ),
            (
                "ssh://git@git.example.com:2222/soa.git",
                "ssh://git@git.example.com:2222/soa.git",
                Some(2222),
            ),
            (
                "ssh://git@[::1]:2200/soa.git",
                "ssh://git@[::1]:2200/soa.git",
                Some(2200),
            ),
            (
                "git@github.com:org/repo.git",
                "git@github.com:org/repo.git",
                None,
            ),
            ("file:///srv/soa", "file:///srv/soa", None),
        ];
        for (url, shown, port) in cases {
            let parts = parse_url(url);
            assert_eq!(parts.redacted(url), shown, "{url}");
            assert_eq!(parts.port, port, "{url}");
        }
    }

    #[test]
    fn cache_names_are_readable_and_distinct() {
        let a = cache_name("https://github.com/org/soa-configs.git");
        let b = cache_name("https://github.com/other/soa-configs.git");
        assert!(a.starts_with("soa-configs-"), "{a}");
        assert_ne!(a, b);
        assert!(cache_name("file:///").starts_with("repo-"));
        assert!(cache_name("https://h/..").starts_with("repo-"));
    }

    #[test]
    fn changed_paths_map_to_services() {
        assert_eq!(service_of(Path::new("svc/flink-c1.yaml")), Some("svc"));
        assert_eq!(
            service_of(Path::new("svc/autotuned_defaults/flink-c1.yaml")),
            Some("svc")
        );
        assert_eq!(service_of(Path::new("README.md")), None);
        assert_eq!(service_of(Path::new(".github/workflows/ci.yaml")), None);
    }
}
