//! One fetch, bounded in time and cancellable.
//!
//! libgit2 blocks in `recv` on a remote that accepts the connection and
//! never answers, and calls none of our callbacks meanwhile. Its socket
//! timeouts (`git2::opts::set_server_timeout_in_milliseconds`) are process
//! globals behind an `unsafe fn`, which this crate forbids, and they would
//! not cover ssh (libssh2 does its own I/O). So the fetch runs on a thread
//! of its own, with its own handle on the cache repository; the caller waits
//! for it until the deadline or a cancellation. Every callback libgit2 does
//! make checks the same deadline and flags, so a fetch that is slow rather
//! than silent stops at once; one that stays silent is left behind, and
//! [`super::GitSource`] starts no other fetch on the cache until it ended.

use super::credentials::{CallbackState, Secrets};
use crate::config::daemon_settings::GitCredentials;
use git2::{AutotagOption, CredentialType, FetchOptions, Oid, ProxyOptions, RemoteCallbacks};
use git2::{Progress, Repository};
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);
/// How often the waiting caller looks at the deadline and the flags.
const WAIT_SLICE: Duration = Duration::from_millis(25);
/// How long an aborted fetch gets to notice and end by itself before it is
/// left behind.
const ABORT_GRACE: Duration = Duration::from_millis(500);

/// When a fetch must stop: past its deadline, or once either flag is set
/// (`cancel` is the source's, for shutdown; `abort` this fetch's, set by
/// the waiting caller when it gives up).
pub(super) struct Stop {
    pub deadline: Instant,
    pub cancel: Arc<AtomicBool>,
    pub abort: Arc<AtomicBool>,
}

impl Stop {
    pub fn stopped(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
            || self.abort.load(Ordering::SeqCst)
            || Instant::now() >= self.deadline
    }

    /// An error for libgit2 to abort with, once stopped.
    pub fn check(&self) -> Result<(), git2::Error> {
        if self.stopped() {
            Err(git2::Error::from_str("the fetch was stopped"))
        } else {
            Ok(())
        }
    }
}

/// Everything the fetch thread needs, owned.
pub(super) struct FetchJob {
    pub cache: PathBuf,
    pub url: String,
    pub display_url: String,
    pub branch: String,
    pub credentials: GitCredentials,
    pub secrets: Secrets,
    pub ssh_port: Option<u16>,
    pub stop: Stop,
}

/// What the fetch thread found.
pub(super) struct FetchReport {
    /// The commit the remote advertises for the branch, if it has it.
    pub head: Result<Option<Oid>, git2::Error>,
    pub auth_failure: Option<String>,
    pub host_key_failure: Option<(String, String)>,
    pub progress_logged: bool,
}

/// How a fetch ended, for the caller.
pub(super) enum Ended {
    Finished(Box<FetchReport>),
    TimedOut,
    Cancelled,
    /// The fetch thread died without a report (a panic in libgit2's
    /// callbacks or ours).
    Lost,
}

/// Runs `job` on a thread of its own and waits for it as [`Stop`] allows.
/// A thread still running when the caller gives up is returned with
/// the outcome, for the caller to wait on before it touches the cache again.
pub(super) fn run_bounded(job: FetchJob) -> std::io::Result<(Ended, Option<JoinHandle<()>>)> {
    let (cancel, abort, deadline) = (
        job.stop.cancel.clone(),
        job.stop.abort.clone(),
        job.stop.deadline,
    );
    let (sender, receiver) = mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("git-fetch".to_owned())
        .spawn(move || {
            // The receiver is gone when the caller gave up: nothing to tell.
            let _ = sender.send(run(job));
        })?;
    let gave_up = loop {
        match receiver.recv_timeout(WAIT_SLICE) {
            Ok(report) => {
                let _ = thread.join();
                return Ok((Ended::Finished(Box::new(report)), None));
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
                return Ok((Ended::Lost, None));
            }
            Err(RecvTimeoutError::Timeout) if cancel.load(Ordering::SeqCst) => {
                break Ended::Cancelled;
            }
            Err(RecvTimeoutError::Timeout) if Instant::now() >= deadline => break Ended::TimedOut,
            Err(RecvTimeoutError::Timeout) => {}
        }
    };
    abort.store(true, Ordering::SeqCst);
    match receiver.recv_timeout(ABORT_GRACE) {
        // It completed just in time: its result stands.
        Ok(report) if report.head.is_ok() => {
            let _ = thread.join();
            Ok((Ended::Finished(Box::new(report)), None))
        }
        Ok(_) | Err(RecvTimeoutError::Disconnected) => {
            let _ = thread.join();
            Ok((gave_up, None))
        }
        Err(RecvTimeoutError::Timeout) => Ok((gave_up, Some(thread))),
    }
}

fn run(job: FetchJob) -> FetchReport {
    let state = CallbackState {
        display_url: &job.display_url,
        credentials: &job.credentials,
        secrets: &job.secrets,
        ssh_port: job.ssh_port,
        stop: &job.stop,
        tried: Cell::new(CredentialType::empty()),
        auth_failure: RefCell::new(None),
        host_key_failure: RefCell::new(None),
    };
    let progress_logged = Cell::new(false);
    let head = fetch(&job, &state, &progress_logged);
    FetchReport {
        head,
        auth_failure: state.auth_failure.take(),
        host_key_failure: state.host_key_failure.take(),
        progress_logged: progress_logged.get(),
    }
}

/// Fetches the branch into `refs/remotes/origin/<branch>` and returns the
/// commit the remote advertises for it.
fn fetch(
    job: &FetchJob,
    state: &CallbackState<'_>,
    progress_logged: &Cell<bool>,
) -> Result<Option<Oid>, git2::Error> {
    // A handle of its own: `Repository` is not `Sync`, and a fetch left
    // behind must not hold the source's.
    let repo = Repository::open_bare(&job.cache)?;
    let refspec = format!(
        "+refs/heads/{branch}:refs/remotes/origin/{branch}",
        branch = job.branch
    );
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(|_url, user_from_url, allowed| state.credential(user_from_url, allowed));
    callbacks.certificate_check(|cert, host| state.check_certificate(cert, host));
    let mut last_log = Instant::now();
    callbacks.transfer_progress(move |progress| {
        if last_log.elapsed() >= PROGRESS_INTERVAL {
            last_log = Instant::now();
            progress_logged.set(true);
            log_progress(&job.display_url, &progress);
        }
        !job.stop.stopped()
    });
    callbacks.sideband_progress(|_| !job.stop.stopped());
    let mut proxy = ProxyOptions::new();
    proxy.auto();
    let mut options = FetchOptions::new();
    options
        .remote_callbacks(callbacks)
        .proxy_options(proxy)
        .download_tags(AutotagOption::None)
        .update_fetchhead(false);
    let mut remote = repo.remote_anonymous(&job.url)?;
    remote.fetch(&[refspec.as_str()], Some(&mut options), None)?;
    let wanted = format!("refs/heads/{}", job.branch);
    let head = remote
        .list()?
        .iter()
        .find(|head| head.name() == wanted)
        .map(git2::RemoteHead::oid);
    Ok(head)
}

fn log_progress(display_url: &str, progress: &Progress<'_>) {
    tracing::info!(
        url = %display_url,
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
