//! The reconcile loop: triggers (interval, push hooks, file events) merged
//! into one queue; each trigger fetches the source, re-renders what changed,
//! plans against the live cluster and, on the leader only, applies and
//! prunes. A broken fetch or a bad commit keeps the last good snapshot and
//! never prunes.

use super::engine::{Engine, changed_services};
use super::hooks::HookSecrets;
use super::http::{self, HttpState, Trigger};
use super::leader::{FetchRelay, LeaderElector, default_identity};
use super::metrics::{Metrics, NotificationTotals};
use super::problems::{Problem, Problems};
use crate::apply::gate::WriteGate;
use crate::apply::{self, ApplyOptions, KubeCluster};
use crate::config::{PruneMode, Settings};
use crate::plan::prune::{EMPTY_TREE, PruneAction, PruneInputs, plan_prunes};
use crate::plan::{self, Action, Policy};
use crate::render::shutdown_job;
use crate::report::events::{DeploymentEvent, EventKind};
use crate::report::sinks::{Notifier, NotifierOptions};
use crate::source::git::{FetchOutcome, GitSource};
use crate::source::{FileSelection, Snapshot, read_dir};
use rand::Rng;
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};
use tokio::sync::{mpsc, watch};

/// How the daemon was started.
pub struct DaemonOptions {
    pub settings: Settings,
    pub cluster: String,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// Shutdown requests (SIGTERM, Ctrl-C), one message each: the first stops
/// all writing and lets the cycle in flight end; a second, or
/// `shutdown_timeout` after the first, abandons that cycle.
pub type ShutdownRequests = mpsc::Receiver<()>;

/// Why the daemon could not start (once running, errors are reported, not fatal).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("no source configured: set source.git or source.dir in the configuration")]
    NoSource,
    #[error(transparent)]
    Connect(#[from] apply::ApplyError),
    #[error("failed to open the git source: {0}")]
    OpenGit(String),
    #[error("failed to listen on {address}: {source}")]
    Listen {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid hook secrets: {0}")]
    Hooks(String),
    #[error("invalid shutdown Job template: {0}")]
    JobTemplate(String),
    #[error("invalid notifications: {0}")]
    Notifications(String),
    #[error("failed to read the accepted revision recorded on the Lease: {0}")]
    ReadAcceptedRevision(String),
}

/// One snapshot from the source and what changed in it.
struct SourceUpdate {
    snapshot: Snapshot,
    /// `None`: everything may have changed.
    changed: Option<BTreeSet<String>>,
    revision: String,
    author: Option<String>,
    subject: Option<String>,
}

enum Source {
    Git(Arc<Mutex<GitSource>>),
    Dir {
        path: PathBuf,
        selection: FileSelection,
        last: Option<Snapshot>,
    },
}

impl Source {
    async fn poll(&mut self) -> Result<Option<SourceUpdate>, String> {
        match self {
            Source::Git(git) => {
                let git = git.clone();
                let outcome = tokio::task::spawn_blocking(move || {
                    let mut source = git
                        .lock()
                        .map_err(|_| "git source lock poisoned".to_owned())?;
                    source.fetch().map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())??;
                Ok(match outcome {
                    FetchOutcome::Unchanged => None,
                    FetchOutcome::Updated(update) => Some(SourceUpdate {
                        snapshot: update.snapshot,
                        changed: update.changed_services,
                        revision: update.revision,
                        author: Some(update.author),
                        subject: Some(update.subject),
                    }),
                })
            }
            Source::Dir {
                path,
                selection,
                last,
            } => {
                let (path_copy, selection_copy) = (path.clone(), selection.clone());
                let snapshot =
                    tokio::task::spawn_blocking(move || read_dir(&path_copy, &selection_copy))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                let changed = match last {
                    Some(previous) => {
                        let changed = changed_services(previous, &snapshot);
                        if changed.is_empty() {
                            return Ok(None);
                        }
                        Some(changed)
                    }
                    None => None,
                };
                *last = Some(snapshot.clone());
                Ok(Some(SourceUpdate {
                    snapshot,
                    changed,
                    revision: "local".to_owned(),
                    author: None,
                    subject: None,
                }))
            }
        }
    }
}

impl Source {
    /// The last accepted snapshot from before a restart, when the first
    /// fetch since then failed (git only: a directory has no history).
    async fn recorded(&mut self) -> Result<Option<SourceUpdate>, String> {
        let Source::Git(git) = self else {
            return Ok(None);
        };
        let git = git.clone();
        let recorded = tokio::task::spawn_blocking(move || {
            let mut source = git
                .lock()
                .map_err(|_| "git source lock poisoned".to_owned())?;
            source.recorded().map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        Ok(recorded.map(|update| SourceUpdate {
            snapshot: update.snapshot,
            changed: None,
            revision: update.revision,
            author: Some(update.author),
            subject: Some(update.subject),
        }))
    }
}

/// The state shared with the HTTP endpoints.
struct Shared {
    ready: Arc<AtomicBool>,
    status: http::StatusBoard,
    metrics: Arc<Metrics>,
}

/// Runs until `shutdown` resolves; the current cycle always finishes.
pub async fn run(
    options: DaemonOptions,
    mut shutdown: ShutdownRequests,
) -> Result<(), DaemonError> {
    let DaemonOptions {
        settings,
        cluster: cluster_name,
        kubeconfig,
        context,
    } = options;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let selection = settings.file_selection();
    // Set at shutdown: a fetch in flight stops at once.
    let mut fetch_cancel = None;
    let mut source = match (&settings.source.git, &settings.source.dir) {
        (Some(git), _) => {
            let git = GitSource::open(git, selection.clone())
                .map_err(|e| DaemonError::OpenGit(e.to_string()))?;
            fetch_cancel = Some(git.cancel_handle());
            Source::Git(Arc::new(Mutex::new(git)))
        }
        (None, Some(dir)) => Source::Dir {
            path: dir.clone(),
            selection: selection.clone(),
            last: None,
        },
        (None, None) => return Err(DaemonError::NoSource),
    };
    let ungated =
        KubeCluster::connect(kubeconfig.as_deref(), context.as_deref(), &settings.apply).await?;
    // Every write but the Lease's passes the gate: leadership (up to the
    // renew deadline) and shutdown close it.
    let gate = if settings.leader_election.enabled {
        WriteGate::for_leader()
    } else {
        WriteGate::open()
    };
    let cluster = ungated.gated(gate.clone());
    let job_template = match &settings.prune.job_template {
        Some(template) => template.clone(),
        None => shutdown_job::default_template().map_err(DaemonError::JobTemplate)?,
    };
    let hooks =
        HookSecrets::load(&settings.hooks).map_err(|e| DaemonError::Hooks(e.to_string()))?;
    let notifier = Notifier::start(&settings.notifications, NotifierOptions::default())
        .map_err(|e| DaemonError::Notifications(e.to_string()))?;
    let shared = Shared {
        ready: Arc::new(AtomicBool::new(false)),
        status: http::StatusBoard::new(&json!({"state": "starting"})),
        metrics: Arc::new(Metrics::new()),
    };
    // Capacity 1: a burst of triggers coalesces into one pending cycle.
    let (trigger_tx, mut trigger_rx) = mpsc::channel::<Trigger>(1);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (release_tx, release_rx) = watch::channel(false);
    // Set when the cycle in flight must be abandoned (a second request, or
    // shutdown_timeout after the first).
    let (abandon_tx, abandon_rx) = watch::channel(false);
    let stopped = {
        let stop_rx = stop_rx.clone();
        move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        }
    };

    let listener = tokio::net::TcpListener::bind(&settings.server.listen)
        .await
        .map_err(|source| DaemonError::Listen {
            address: settings.server.listen.clone(),
            source,
        })?;
    let hooks_listener =
        match &settings.server.hooks_listen {
            Some(address) => Some(tokio::net::TcpListener::bind(address).await.map_err(
                |source| DaemonError::Listen {
                    address: address.clone(),
                    source,
                },
            )?),
            None => None,
        };
    let http_state = HttpState {
        ready: shared.ready.clone(),
        status: shared.status.clone(),
        metrics: shared.metrics.clone(),
        hooks: (!hooks.is_empty()).then(|| Arc::new(hooks)),
        max_body_bytes: settings.hooks.max_body_bytes,
        hook_min_interval: settings.hooks.min_interval,
        triggers: trigger_tx.clone(),
    };
    let server = tokio::spawn(http::serve_with(
        listener,
        hooks_listener,
        http_state,
        http::Limits::from(&settings.server),
        stopped(),
    ));

    let (leader_tx, leader_rx) = watch::channel(!settings.leader_election.enabled);
    let relay = FetchRelay::new(trigger_tx.clone());
    // The last accepted commit, recorded on the Lease by the leader.
    let accepted_revision: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let elector = if settings.leader_election.enabled {
        let namespace = settings
            .leader_election
            .namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".to_owned());
        let identity = settings
            .leader_election
            .identity
            .clone()
            .unwrap_or_else(default_identity);
        let elector = LeaderElector::new(
            ungated.clone(),
            &settings.leader_election,
            identity,
            namespace,
        )
        .with_gate(gate.clone())
        .with_relay(relay.clone())
        .with_accepted_revision(accepted_revision.clone());
        // A rescheduled pod starts with an empty cache: the commit the
        // leader recorded stands in for the local record, so a force-push
        // made meanwhile is still refused.
        if let Source::Git(git) = &source {
            match elector.recorded_revision().await {
                Ok(Some(revision)) => {
                    if let Ok(mut git) = git.lock() {
                        git.require_descent_from(&revision);
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    return Err(DaemonError::ReadAcceptedRevision(error.to_string()));
                }
            }
        }
        // Released only once this process has stopped writing.
        let mut released = release_rx.clone();
        let release = async move {
            let _ = released.wait_for(|release| *release).await;
        };
        Some(tokio::spawn(elector.run(leader_tx, release)))
    } else {
        None
    };

    let interval = settings.source.poll_interval;
    let ticker_tx = trigger_tx.clone();
    let ticker = tokio::spawn(async move {
        loop {
            let _ = ticker_tx.try_send(Trigger::Interval);
            let jitter = rand::rng().random_range(0.9..1.1);
            tokio::time::sleep(interval.mul_f64(jitter)).await;
        }
    });
    let _watcher = match &source {
        Source::Dir { path, .. } => Some(super::watch::watch_dir(
            path,
            settings.source.debounce,
            trigger_tx.clone(),
        )),
        Source::Git(_) => None,
    };

    tokio::spawn({
        let stop_tx = stop_tx.clone();
        let gate = gate.clone();
        let timeout = settings.shutdown_timeout;
        async move {
            if shutdown.recv().await.is_none() {
                return;
            }
            gate.shut();
            if let Some(cancel) = &fetch_cancel {
                cancel.store(true, Ordering::SeqCst);
            }
            tracing::info!(
                "shutdown requested: writing stopped; the cycle in flight ends, or is abandoned after {} or at a second request",
                humantime::format_duration(timeout)
            );
            let _ = stop_tx.send(true);
            tokio::select! {
                _ = shutdown.recv() => tracing::warn!("second shutdown request: abandoning the cycle in flight"),
                () = tokio::time::sleep(timeout) => tracing::warn!("shutdown_timeout elapsed: abandoning the cycle in flight"),
            }
            let _ = abandon_tx.send(true);
        }
    });

    let mut engine = Engine::new(settings.clone(), cluster_name.clone());
    let mut reconciler = Reconciler {
        settings: &settings,
        gate: &gate,
        cluster: &cluster,
        cluster_name: &cluster_name,
        job_template: &job_template,
        shared: &shared,
        revision: None,
        source_error: None,
        notifier: &notifier,
        pending_ready: BTreeMap::new(),
        prune_failures_reported: BTreeSet::new(),
        sync_failing: false,
        unmanaged_reported: BTreeSet::new(),
        last_fetch: None,
        accepted_revision: accepted_revision.clone(),
        problems: Problems::default(),
    };
    let mut stop_rx = stop_rx;
    let mut leader_changes = leader_rx.clone();
    loop {
        let trigger = tokio::select! {
            trigger = trigger_rx.recv() => trigger,
            // A new leader reconciles at once instead of at the next interval.
            Ok(()) = leader_changes.changed() => {
                if *leader_changes.borrow_and_update() { Some(Trigger::Manual) } else { continue }
            }
            _ = stop_rx.wait_for(|stop| *stop) => None,
        };
        let Some(trigger) = trigger else {
            break;
        };
        let is_leader = *leader_rx.borrow();
        shared.metrics.set_leader(is_leader);
        if trigger == Trigger::Hook && !is_leader {
            relay.request();
        }
        let cycle = reconciler.cycle(&mut source, &mut engine, trigger, is_leader);
        let mut abandon = abandon_rx.clone();
        let finished = tokio::select! {
            () = cycle => true,
            _ = abandon.wait_for(|abandon| *abandon) => false,
        };
        if !finished {
            break;
        }
    }
    tracing::info!("shutting down: no cycle is writing any more");
    drop(reconciler);
    gate.shut();
    let _ = release_tx.send(true);
    if !notifier.shutdown(std::time::Duration::from_secs(10)).await {
        tracing::warn!("some deployment events were not delivered before shutdown");
    }
    ticker.abort();
    if let Some(elector) = elector {
        let _ = elector.await;
    }
    let _ = server.await;
    Ok(())
}

/// What one cycle reports on `/status`.
#[derive(Default)]
struct Published {
    /// The problems the cycle found.
    found: Vec<Problem>,
    entries: Vec<Json>,
    prunes: Vec<Json>,
    /// Objects no configured kind claims.
    unmanaged: Vec<Json>,
}

struct Reconciler<'a> {
    settings: &'a Settings,
    /// Open while this process may write (leader, not shutting down).
    gate: &'a WriteGate,
    cluster: &'a KubeCluster,
    cluster_name: &'a str,
    job_template: &'a Json,
    shared: &'a Shared,
    revision: Option<(String, Option<String>, Option<String>)>,
    source_error: Option<String>,
    notifier: &'a Notifier,
    /// Applied instances waiting to reach the ready state, by subject.
    pending_ready: BTreeMap<String, PendingReady>,
    /// Prunes whose failure was already announced.
    prune_failures_reported: BTreeSet<String>,
    /// A sync failure was announced and not yet followed by a success.
    sync_failing: bool,
    /// Unmanaged objects already logged.
    unmanaged_reported: BTreeSet<String>,
    /// When the source last answered (a fetch or a rescan that succeeded).
    last_fetch: Option<SystemTime>,
    /// The last commit accepted, for the leader to record on the Lease.
    accepted_revision: Arc<Mutex<Option<String>>>,
    /// What is wrong now.
    problems: Problems,
}

/// An applied instance whose readiness is being watched.
struct PendingReady {
    service: String,
    instance: String,
    config_sha: Option<String>,
    git_sha: Option<String>,
    deadline: Instant,
}

impl Reconciler<'_> {
    #[tracing::instrument(skip_all, fields(trigger = ?trigger))]
    async fn cycle(
        &mut self,
        source: &mut Source,
        engine: &mut Engine,
        trigger: Trigger,
        is_leader: bool,
    ) {
        let started = Instant::now();
        let polled = source.poll().await;
        if polled.is_ok() {
            self.last_fetch = Some(SystemTime::now());
        }
        let scope = match polled {
            Ok(Some(update)) => {
                self.source_error = None;
                let rendered_before = engine.counters().services_rendered;
                let touched = engine.update(&update.snapshot, update.changed.as_ref());
                let rendered = engine.counters().services_rendered - rendered_before;
                self.shared
                    .metrics
                    .services_rendered(usize::try_from(rendered).unwrap_or(usize::MAX));
                self.shared.metrics.set_revision(&update.revision);
                if update.revision != "local"
                    && let Ok(mut accepted) = self.accepted_revision.lock()
                {
                    *accepted = Some(update.revision.clone());
                }
                self.revision = Some((update.revision, update.author, update.subject));
                // A full plan on the interval and after the first snapshot;
                // a push plans the services it changed.
                match (trigger, update.changed) {
                    (Trigger::Interval | Trigger::Manual, _) | (_, None) => None,
                    (_, Some(_)) => Some(touched),
                }
            }
            Ok(None) => {
                // The remote is back, unchanged: healthy again, and worth a
                // full cycle so that the status and pruning catch up.
                let recovered = self.source_error.take().is_some();
                if recovered || matches!(trigger, Trigger::Interval | Trigger::Manual) {
                    None
                } else {
                    return;
                }
            }
            Err(error) => {
                // Said once, as a problem: when it appears, changes, clears.
                self.note_problems(vec![source_problem(&error)], false);
                self.shared.metrics.error("source");
                self.sync_failed(&error);
                self.source_error = Some(error);
                if engine.service_count() == 0 {
                    // Restarted on a failing source: keep reconciling the
                    // last accepted revision (drift is still reverted; the
                    // source error holds every prune).
                    match source.recorded().await {
                        Ok(Some(update)) => {
                            tracing::info!(revision = %update.revision, "reconciling the last accepted revision recorded before the restart");
                            engine.update(&update.snapshot, None);
                            self.shared.metrics.set_revision(&update.revision);
                            self.revision = Some((update.revision, update.author, update.subject));
                        }
                        Ok(None) => {
                            self.publish_status(None, &Published::default(), is_leader);
                            return;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "failed to read the last accepted revision");
                            self.publish_status(None, &Published::default(), is_leader);
                            return;
                        }
                    }
                }
                None
            }
        };
        match self.reconcile(engine, scope.as_ref(), is_leader).await {
            Ok(mut published) => {
                let mut found = std::mem::take(&mut published.found);
                if let Some(error) = &self.source_error {
                    found.push(source_problem(error));
                }
                self.note_problems(found, scope.is_none());
                self.shared.metrics.observe_reconcile(started.elapsed());
                self.shared.metrics.set_last_sync(SystemTime::now());
                if self.source_error.is_none() {
                    self.shared.ready.store(true, Ordering::SeqCst);
                    self.sync_failing = false;
                }
                self.publish_status(None, &published, is_leader);
            }
            Err(error) => {
                self.note_problems(
                    vec![Problem::new("cluster", "cluster", error.to_string())],
                    false,
                );
                self.shared.metrics.error(error.category());
                self.sync_failed(&error.to_string());
                self.publish_status(Some(error.to_string()), &Published::default(), is_leader);
            }
        }
    }

    async fn reconcile(
        &mut self,
        engine: &Engine,
        scope: Option<&BTreeSet<String>>,
        is_leader: bool,
    ) -> Result<Published, apply::ApplyError> {
        let desired = engine.desired(scope);
        let mut live = apply::read_live(self.cluster, self.settings).await?;
        // The guard's fraction is of every managed object of the cluster,
        // whatever this cycle plans.
        let managed = live.managed_in(self.cluster_name);
        self.watch_readiness(&live.managed);
        if let Some(scope) = scope {
            // The scoped services' objects, and any object they render
            // (whatever its labels say: identity before labels).
            let wanted: BTreeSet<(&str, &str)> = desired
                .resources
                .iter()
                .map(|r| (r.namespace.as_str(), r.name.as_str()))
                .collect();
            live.retain(|o| {
                o.identity()
                    .is_some_and(|(service, _)| scope.contains(service))
                    || wanted.contains(&(o.namespace(), o.name()))
            });
        }
        let policy = Policy {
            field_manager: self.settings.apply.field_manager.clone(),
            takeover_managers: self.settings.apply.takeover_managers.clone(),
        };
        let mut plan = plan::plan_inventory(&desired, &live, &policy);
        if scope.is_some() {
            // Another service may render what a pushed service dropped.
            plan::hold_orphans_wanted_by(&mut plan, &engine.wanted());
        }
        let jobs = apply::read_shutdown_jobs(self.cluster, &plan.orphans).await?;
        let prunes = plan_prunes(
            &plan.orphans,
            &PruneInputs {
                settings: &self.settings.prune,
                jobs: &jobs,
                managed,
                allow_mass_prune: false,
                source_problem: match &self.source_error {
                    Some(error) => Some(format!("the source is failing ({error})")),
                    None if !engine.has_loaded_services() => Some(EMPTY_TREE.to_owned()),
                    None => None,
                },
                now: SystemTime::now(),
                field_manager: &policy.field_manager,
            },
        );
        let mut found = Vec::new();
        for (service, diagnostics) in &desired.unknown_services {
            for diagnostic in diagnostics {
                found.push(Problem::new(
                    "load",
                    diagnostic.path.clone(),
                    diagnostic.to_string(),
                ));
            }
            if diagnostics.is_empty() {
                found.push(Problem::new(
                    "load",
                    service.clone(),
                    format!("{service} failed to load"),
                ));
            }
        }
        for failed in &desired.failed {
            found.push(Problem::new(
                "render",
                format!("{}.{}", failed.service, failed.instance),
                failed.diagnostic.to_string(),
            ));
        }
        if let Some(held) = &prunes.held {
            found.push(Problem::new("prune_held", self.cluster_name, held.clone()));
        }
        if let Some(blocked) = &prunes.mass_prune_blocked {
            found.push(Problem::new(
                "mass_prune_blocked",
                self.cluster_name,
                blocked.clone(),
            ));
        }
        for entry in &prunes.entries {
            if matches!(entry.action, PruneAction::Failed | PruneAction::TimedOut) {
                found.push(Problem::new(
                    "prune_failed",
                    entry.orphan.subject.clone(),
                    entry.message.clone(),
                ));
            }
        }
        let mut counts: BTreeMap<&str, usize> = plan.counts();
        counts.insert("orphaned", plan.orphans.len());
        counts.insert("unmanaged", plan.unmanaged.len());
        // An incremental cycle sees only its services' objects.
        if scope.is_none() {
            self.report_unmanaged(&plan.unmanaged);
        }
        self.shared.metrics.set_objects(&counts);
        let mut failures: BTreeMap<String, String> = BTreeMap::new();
        if is_leader {
            let options = ApplyOptions {
                policy: policy.clone(),
                dry_run: false,
                concurrency: self.settings.apply.concurrency,
                create_namespaces: self.settings.apply.create_namespaces,
            };
            let revision = self.revision.as_ref().map(|(r, _, _)| r.as_str());
            let report = apply::execute_at(&plan, self.cluster, &options, revision).await;
            for write in report.failures() {
                if let Err(error) = &write.outcome {
                    // A refused write is this replica standing down, not a fault.
                    if !matches!(error, apply::ApplyError::WriteRefused { .. }) {
                        self.shared.metrics.error(error.category());
                    }
                    failures.insert(write.subject.clone(), error.to_string());
                }
            }
            self.announce_applied(&plan, &report);
            if self.settings.prune.mode != PruneMode::Off {
                let revision = self
                    .revision
                    .as_ref()
                    .map_or("unknown", |(r, _, _)| r.as_str());
                for result in apply::prune::execute(
                    &prunes,
                    self.cluster,
                    &policy.field_manager,
                    self.job_template,
                    revision,
                    SystemTime::now(),
                )
                .await
                {
                    match result.outcome {
                        Err(error) => {
                            self.shared.metrics.error(error.category());
                            failures.insert(result.subject, error.to_string());
                        }
                        Ok(()) => self.announce_prune_step(
                            &result.service,
                            &result.instance,
                            &result.subject,
                            result.action,
                            &result.message,
                        ),
                    }
                }
            }
        }
        let entries = plan
            .entries
            .iter()
            .map(|entry| {
                let mut object = entry.to_json();
                if let Action::Update(reasons) = &entry.action {
                    object["reasons"] = reasons.iter().map(ToString::to_string).collect();
                }
                if let Some(error) = failures.get(&entry.subject) {
                    object["error"] = json!(error);
                }
                object
            })
            .collect();
        let prunes = prunes
            .entries
            .iter()
            .map(|p| {
                let mut object = p.to_json();
                object["error"] = json!(failures.get(&p.orphan.subject));
                object
            })
            .collect();
        for (subject, error) in &failures {
            found.push(Problem::new("write", subject.clone(), error.clone()));
        }
        Ok(Published {
            found,
            entries,
            prunes,
            unmanaged: plan
                .unmanaged
                .iter()
                .map(plan::Unmanaged::to_json)
                .collect(),
        })
    }

    fn event(&self, kind: EventKind) -> DeploymentEvent {
        let (revision, author, subject) = self
            .revision
            .clone()
            .unwrap_or_else(|| ("unknown".to_owned(), None, None));
        let event = DeploymentEvent::new(kind, self.cluster_name, revision);
        match (author, subject) {
            (Some(author), Some(subject)) => event.commit(author, subject),
            _ => event,
        }
    }

    /// `applied` for every successful write; the instance is then watched
    /// until it is ready, fails, or times out.
    fn announce_applied(&mut self, plan: &plan::Plan, report: &apply::ApplyReport) {
        let timeout = self.settings.notifications.ready_timeout;
        for write in report.writes.iter().filter(|w| w.outcome.is_ok()) {
            let Some(entry) = plan.entries.iter().find(|e| e.subject == write.subject) else {
                continue;
            };
            // Dropping a pending prune's mark deploys nothing.
            if entry
                .apply
                .as_ref()
                .is_some_and(|a| a.only_clears_orphan_mark(&entry.action))
            {
                continue;
            }
            let changes = match &entry.action {
                Action::Update(reasons) => reasons.iter().map(ToString::to_string).collect(),
                _ => vec!["created".to_owned()],
            };
            let label = |key: &str| {
                entry
                    .apply
                    .as_ref()
                    .and_then(|a| {
                        a.body
                            .pointer(&format!("/metadata/labels/{}", key.replace('/', "~1")))
                    })
                    .and_then(Json::as_str)
                    .map(str::to_owned)
            };
            let (config_sha, git_sha) = (
                label(crate::render::meta::LABEL_CONFIG_SHA),
                label(crate::render::meta::LABEL_GIT_SHA),
            );
            let event = self
                .event(EventKind::Applied)
                .instance(
                    entry.service.clone(),
                    entry.instance.clone(),
                    entry.subject.clone(),
                )
                .shas(config_sha.clone(), git_sha.clone())
                .changes(changes)
                .message(format!("{} applied", entry.subject));
            self.notifier.send(event);
            self.pending_ready.insert(
                entry.subject.clone(),
                PendingReady {
                    service: entry.service.clone(),
                    instance: entry.instance.clone(),
                    config_sha,
                    git_sha,
                    deadline: Instant::now() + timeout,
                },
            );
        }
    }

    /// `ready` when an applied instance's `status.state` reaches the ready
    /// state; `failed` on a failed state or after the timeout.
    fn watch_readiness(&mut self, live: &[plan::LiveObject]) {
        if self.pending_ready.is_empty() {
            return;
        }
        // Outcomes are the writer's to announce: a replica that stopped
        // leading leaves them to the new leader.
        if !self.gate.is_open() {
            self.pending_ready.clear();
            return;
        }
        let notifications = &self.settings.notifications;
        let mut finished = Vec::new();
        for (subject, pending) in &self.pending_ready {
            let state = live
                .iter()
                .find(|o| &o.subject() == subject)
                .and_then(|o| o.object.pointer("/status/state"))
                .and_then(Json::as_str)
                .map(str::to_lowercase);
            let outcome = match state.as_deref() {
                Some(state) if state == notifications.ready_state.to_lowercase() => {
                    Some((EventKind::Ready, format!("{subject} reached {state}")))
                }
                Some(state)
                    if notifications
                        .failed_states
                        .iter()
                        .any(|f| f.eq_ignore_ascii_case(state)) =>
                {
                    Some((EventKind::Failed, format!("{subject} is {state}")))
                }
                _ if Instant::now() > pending.deadline => Some((
                    EventKind::Failed,
                    format!(
                        "{subject} did not reach {} within {}",
                        notifications.ready_state,
                        humantime::format_duration(notifications.ready_timeout)
                    ),
                )),
                _ => None,
            };
            if let Some((kind, message)) = outcome {
                let event = self
                    .event(kind)
                    .instance(
                        pending.service.clone(),
                        pending.instance.clone(),
                        subject.clone(),
                    )
                    .shas(pending.config_sha.clone(), pending.git_sha.clone())
                    .message(message);
                self.notifier.send(event);
                finished.push(subject.clone());
            }
        }
        for subject in finished {
            self.pending_ready.remove(&subject);
        }
    }

    /// `prune_requested`, `pruned` and (once) `prune_failed`.
    fn announce_prune_step(
        &mut self,
        service: &str,
        instance: &str,
        subject: &str,
        action: &str,
        message: &str,
    ) {
        let kind = match action {
            "prune" => EventKind::PruneRequested,
            "delete" => EventKind::Pruned,
            "prune-failed" | "prune-timed-out" => {
                if !self.prune_failures_reported.insert(subject.to_owned()) {
                    return;
                }
                EventKind::PruneFailed
            }
            _ => return,
        };
        let event = self
            .event(kind)
            .instance(service.to_owned(), instance.to_owned(), subject.to_owned())
            .message(message.to_owned());
        self.notifier.send(event);
    }

    /// Logs each object when it becomes unmanaged (not again while it
    /// stays so), and when it no longer is.
    fn report_unmanaged(&mut self, unmanaged: &[plan::Unmanaged]) {
        let now: BTreeSet<String> = unmanaged.iter().map(|u| u.subject.clone()).collect();
        for object in unmanaged {
            if !self.unmanaged_reported.contains(&object.subject) {
                tracing::warn!(subject = %object.subject, "{}", object.message());
            }
        }
        for subject in self.unmanaged_reported.difference(&now) {
            tracing::info!(%subject, "no longer unmanaged");
        }
        self.unmanaged_reported = now;
    }

    /// Takes in a cycle's problems: each is logged when it appears, changes
    /// or clears, and counted once when it appears (the kinds not already
    /// counted where they happen).
    fn note_problems(&mut self, found: Vec<Problem>, complete: bool) {
        let changes = self.problems.update(found, complete);
        for kind in changes.appeared {
            if matches!(
                kind,
                "load" | "render" | "prune_held" | "mass_prune_blocked" | "prune_failed"
            ) {
                self.shared.metrics.error(kind);
            }
        }
    }

    /// `sync_failed`, once per failing streak.
    fn sync_failed(&mut self, error: &str) {
        if self.sync_failing {
            return;
        }
        self.sync_failing = true;
        let event = self.event(EventKind::SyncFailed).message(error.to_owned());
        self.notifier.send(event);
    }

    fn publish_status(&self, error: Option<String>, published: &Published, is_leader: bool) {
        let Published {
            entries,
            prunes,
            unmanaged,
            ..
        } = published;
        self.shared.metrics.set_notifications(NotificationTotals {
            delivered: self.notifier.delivered(),
            failed: self.notifier.failed(),
            dropped: self.notifier.dropped(),
        });
        let (revision, author, subject) = self
            .revision
            .clone()
            .map_or((None, None, None), |(r, a, s)| (Some(r), a, s));
        let document = json!({
            "cluster": self.cluster_name,
            "revision": revision,
            "commit": {"author": author, "subject": subject},
            "leader": is_leader,
            "source": {
                "healthy": self.source_error.is_none(),
                "error": self.source_error,
                "last_fetch": self.last_fetch.map(|at| humantime::format_rfc3339_seconds(at).to_string()),
            },
            "last_error": error,
            "updated_at": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            "problems": self.problems.to_json(),
            "instances": entries,
            "prunes": prunes,
            "unmanaged": unmanaged,
        });
        // A failed cycle keeps the last known instances.
        if entries.is_empty() && error.is_some() {
            self.shared.status.update(|status| {
                status["last_error"] = document["last_error"].clone();
                status["source"] = document["source"].clone();
                status["problems"] = document["problems"].clone();
                status["updated_at"] = document["updated_at"].clone();
            });
        } else {
            self.shared.status.publish(&document);
        }
    }
}

/// A failing source, as a problem.
fn source_problem(error: &str) -> Problem {
    Problem::new(
        "source",
        "source",
        format!(
            "the source is failing; the last good snapshot is kept and nothing is pruned: {error}"
        ),
    )
}
