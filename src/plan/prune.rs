//! Pure: what to do with each orphan (a live object whose instance left a
//! service that loaded), following the prune protocol:
//!
//! ```text
//!              instance removed from git
//!                         │
//!                         ▼
//!   mark orphaned-since ── back in git ──▶ mark dropped, nothing else
//!                         │ seen orphaned for prune.grace
//!                         ▼
//!   ┌──────────── guards pass? ─── no ──▶ MassPruneBlocked (nothing new pruned)
//!   │ yes
//!   ▼
//! signal: desired_state=stop, prune-requested-at, prune-revision
//!   │      + create Job <name>-shutdown (shutdown-job mode)
//!   ▼
//! wait ── Job Complete ──▶ DELETE resource (Background) ──▶ pruned, Job collected
//!   │ ── Job Failed ────▶ PruneFailed, resource kept (retry only if configured)
//!   │ ── past timeout ──▶ PruneTimedOut, resource kept
//!   │ ── instance back ─▶ cancel: delete Job, apply the resource (running)
//! ```
//!
//! All state lives in the cluster (the annotations and the Job), so a
//! restarted reconciler, or the next one-shot `apply --prune`, continues
//! where the last one stopped; the grace period too, which counts from the
//! orphan mark.

use super::{LiveObject, Orphan};
use crate::config::{PruneMode, PruneSettings};
use crate::render::shutdown_job;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// When the stop signal was written (RFC 3339).
pub const ANNOTATION_REQUESTED_AT: &str = "flink-gitops/prune-requested-at";
/// The source revision that removed the instance.
pub const ANNOTATION_REVISION: &str = "flink-gitops/prune-revision";
/// When the object was first seen orphaned (RFC 3339): the grace period
/// counts from it. Written by the prune manager, dropped when the instance
/// is back.
pub const ANNOTATION_ORPHANED_SINCE: &str = "flink-gitops/orphaned-since";
/// `disabled` keeps an object from ever being pruned.
pub const ANNOTATION_PRUNE: &str = "flink-gitops/prune";

/// The field manager of the prune protocol's writes (the orphan mark, the
/// stop signal): a second manager, so that they never disturb the
/// ownership of the resource's own fields.
#[must_use]
pub fn prune_manager(field_manager: &str) -> String {
    format!("{field_manager}-prune")
}

/// The value of `annotation` on `object` when the prune manager of
/// `field_manager` owns it: only then is it a mark or a signal of ours. A
/// copy from a restored backup or a copied manifest is ignored.
#[must_use]
pub fn owned_annotation<'a>(
    object: &'a LiveObject,
    annotation: &str,
    field_manager: &str,
) -> Option<&'a str> {
    let value = object.annotation(annotation)?;
    let path = super::path::FieldPath::of(&["metadata", "annotations", annotation]);
    let is_prune_manager = |manager: &str| {
        manager
            .strip_suffix("-prune")
            .is_some_and(|ours| ours == field_manager)
    };
    super::managed_fields::entries(&object.object)
        .iter()
        .any(|entry| is_prune_manager(&entry.manager) && entry.fields.contains(&path))
        .then_some(value)
}

/// Whether `job` was created for the prune of `object` requested at
/// `requested_at`: owned by that object (its uid) and stamped with that
/// request time (or, from a release that did not stamp Jobs, created after
/// it). A Job left over from an earlier prune, say one cancelled while its
/// delete failed, is not: its completion says nothing of today's state.
#[must_use]
pub fn job_is_for(job: &Json, object: &LiveObject, requested_at: &str) -> bool {
    let uid = object
        .object
        .pointer("/metadata/uid")
        .and_then(Json::as_str);
    let owned = job
        .pointer("/metadata/ownerReferences")
        .and_then(Json::as_array)
        .is_some_and(|owners| {
            owners
                .iter()
                .any(|o| uid.is_some() && o.get("uid").and_then(Json::as_str) == uid)
        });
    if !owned {
        return false;
    }
    match job
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION_REQUESTED_AT))
        .and_then(Json::as_str)
    {
        Some(stamp) => stamp == requested_at,
        None => {
            let time = |text: Option<&str>| text.and_then(|t| humantime::parse_rfc3339(t).ok());
            let created = time(
                job.pointer("/metadata/creationTimestamp")
                    .and_then(Json::as_str),
            );
            matches!((created, time(Some(requested_at))), (Some(c), Some(r)) if c >= r)
        }
    }
}

/// The source problem of a tree in which no service loaded.
pub const EMPTY_TREE: &str = "no service of soa-configs loaded (an empty tree, or every service failed), and an empty tree is never a reason to prune";

/// The state of a shutdown Job, read from its status conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Running,
    Complete,
    Failed,
}

impl JobState {
    /// Reads a Job's `status` (Kubernetes Job conditions `Complete`/`Failed`).
    #[must_use]
    pub fn of(job: &Json) -> Self {
        let condition = |kind: &str| {
            job.pointer("/status/conditions")
                .and_then(Json::as_array)
                .is_some_and(|conditions| {
                    conditions.iter().any(|c| {
                        c.get("type").and_then(Json::as_str) == Some(kind)
                            && c.get("status").and_then(Json::as_str) == Some("True")
                    })
                })
        };
        if condition("Complete") {
            JobState::Complete
        } else if condition("Failed") {
            JobState::Failed
        } else {
            JobState::Running
        }
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Complete => "complete",
            JobState::Failed => "failed",
        }
    }
}

/// One step of the protocol for one orphan.
#[derive(Debug, Clone, PartialEq)]
pub enum PruneAction {
    /// Seen orphaned for the first time: write the orphan mark; the prune
    /// waits for `prune.grace`.
    MarkOrphaned,
    /// Orphaned for less than `prune.grace`: nothing is done yet.
    Pending { left: Duration },
    /// Write the stop signal; create the shutdown Job when `create_job`.
    Signal { create_job: bool },
    /// Signalled, but its Job is missing (deleted, or a restart between the
    /// signal and the create): create it; AlreadyExists is adopted.
    CreateJob,
    /// The Job is running.
    Wait,
    /// The Job completed, or `delete` mode: delete the resource.
    Delete,
    /// The Job failed: the resource is kept.
    Failed,
    /// The Job failed and `retry_failed` is set: delete it and start again.
    Retry,
    /// The Job ran past `prune.timeout`: the resource is kept.
    TimedOut,
    /// Signalled in `annotate-only` mode: the operator does the rest.
    Signalled,
    /// `flink-gitops/prune: disabled`.
    Disabled,
    /// Too many new prunes at once.
    MassPruneBlocked,
}

impl PruneAction {
    /// A short name for reports.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            PruneAction::MarkOrphaned | PruneAction::Pending { .. } => "pending-prune",
            PruneAction::Signal { .. } => "prune",
            PruneAction::CreateJob => "create-job",
            PruneAction::Wait => "waiting",
            PruneAction::Delete => "delete",
            PruneAction::Failed => "prune-failed",
            PruneAction::Retry => "retry",
            PruneAction::TimedOut => "prune-timed-out",
            PruneAction::Signalled => "signalled",
            PruneAction::Disabled => "prune-disabled",
            PruneAction::MassPruneBlocked => "mass-prune-blocked",
        }
    }

    /// True when executing the step writes something.
    #[must_use]
    pub fn writes(&self) -> bool {
        matches!(
            self,
            PruneAction::MarkOrphaned
                | PruneAction::Signal { .. }
                | PruneAction::CreateJob
                | PruneAction::Delete
                | PruneAction::Retry
        )
    }
}

/// One orphan and its step.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneEntry {
    pub orphan: Orphan,
    pub action: PruneAction,
    /// The shutdown Job's name and state, when it exists.
    pub job: Option<(String, JobState)>,
    /// What happens, in plain words.
    pub message: String,
    /// `prune.grace` when the plan was made.
    pub grace: Duration,
}

impl PruneEntry {
    /// The step as reported in `diff --output json`, `/status` and the like.
    #[must_use]
    pub fn to_json(&self) -> Json {
        let mut object = serde_json::json!({
            "service": self.orphan.service,
            "instance": self.orphan.instance,
            "subject": self.orphan.subject,
            "action": self.action.name(),
            "job": self.job.as_ref().map(|(name, state)| serde_json::json!({"name": name, "state": state.name()})),
            "message": self.message,
        });
        if let Some(left) = self.grace_left() {
            object["grace_left_seconds"] = Json::from(left.as_secs());
        }
        object
    }
}

impl PruneEntry {
    /// How long until the first prune step, while the prune is pending.
    #[must_use]
    pub fn grace_left(&self) -> Option<Duration> {
        match (&self.action, self.grace) {
            (PruneAction::Pending { left }, _) => Some(*left),
            (PruneAction::MarkOrphaned, grace) => Some(grace),
            _ => None,
        }
    }
}

/// The prune steps of one cycle.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PrunePlan {
    pub entries: Vec<PruneEntry>,
    /// Why new prunes were held back, when they were.
    pub mass_prune_blocked: Option<String>,
    /// Why nothing at all was pruned, when the source could not be trusted
    /// and there were orphans (their entries are then absent).
    pub held: Option<String>,
}

impl PrunePlan {
    /// Entries whose step writes.
    pub fn writes(&self) -> impl Iterator<Item = &PruneEntry> {
        self.entries.iter().filter(|e| e.action.writes())
    }
}

/// What the decision depends on besides the orphans.
pub struct PruneInputs<'a> {
    pub settings: &'a PruneSettings,
    /// Shutdown Jobs by (namespace, name).
    pub jobs: &'a BTreeMap<(String, String), Json>,
    /// Live objects of this cluster carrying PaaSTA's labels.
    pub managed: usize,
    /// `--allow-mass-prune`.
    pub allow_mass_prune: bool,
    /// Why the source cannot be trusted (a failing fetch, an empty tree):
    /// then nothing is pruned at all.
    pub source_problem: Option<String>,
    pub now: SystemTime,
    /// Our field manager: the prune manager's name derives from it.
    pub field_manager: &'a str,
}

impl PruneInputs<'_> {
    /// `annotation` of `orphan` when written by our prune manager.
    fn ours<'o>(&self, orphan: &'o Orphan, annotation: &str) -> Option<&'o str> {
        owned_annotation(&orphan.object, annotation, self.field_manager)
    }
}

/// Decides the step of every orphan.
#[must_use]
pub fn plan_prunes(orphans: &[Orphan], inputs: &PruneInputs<'_>) -> PrunePlan {
    let settings = inputs.settings;
    if settings.mode == PruneMode::Off {
        return PrunePlan::default();
    }
    if let Some(problem) = &inputs.source_problem {
        return PrunePlan {
            held: (!orphans.is_empty()).then(|| {
                format!(
                    "{} orphaned objects are kept and nothing is pruned: {problem}",
                    orphans.len()
                )
            }),
            ..PrunePlan::default()
        };
    }
    let annotation = |o: &Orphan, key: &str| o.object.annotation(key).map(str::to_owned);
    // New prunes are those past their grace period: a pending one is only
    // marked, which stops nothing.
    let is_new = |o: &Orphan| {
        annotation(o, ANNOTATION_PRUNE).as_deref() != Some("disabled")
            && inputs.ours(o, ANNOTATION_REQUESTED_AT).is_none()
            && grace_left(o, inputs).is_none()
    };
    let new_count = orphans.iter().filter(|o| is_new(o)).count();
    // The fraction always allows one prune, so small clusters can prune at all.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let fraction_limit = ((settings.max_fraction * inputs.managed as f64).floor() as usize).max(1);
    let over_fraction = new_count > fraction_limit;
    let blocked = (new_count > settings.max_per_cycle || over_fraction) && !inputs.allow_mass_prune;
    let mass_prune_blocked = blocked.then(|| {
        format!(
            "{new_count} new prunes exceed the guard (at most {} per cycle and {:.0}% of the {} managed objects); nothing new is pruned: check the change, then run `apply --prune --allow-mass-prune` once",
            settings.max_per_cycle,
            settings.max_fraction * 100.0,
            inputs.managed
        )
    });
    let entries = orphans
        .iter()
        .map(|orphan| {
            let job_name = shutdown_job::job_name(orphan.object.name());
            let requested_at = inputs.ours(orphan, ANNOTATION_REQUESTED_AT);
            let job = inputs
                .jobs
                .get(&(orphan.object.namespace().to_owned(), job_name.clone()))
                .filter(|job| requested_at.is_some_and(|at| job_is_for(job, &orphan.object, at)))
                .map(|job| (job_name.clone(), JobState::of(job)));
            let (action, message) = decide(orphan, job.as_ref(), blocked, inputs);
            PruneEntry {
                orphan: orphan.clone(),
                action,
                job,
                message,
                grace: settings.grace,
            }
        })
        .collect();
    PrunePlan {
        entries,
        mass_prune_blocked,
        held: None,
    }
}

/// `None` when the grace period is over (or off); else whether the orphan
/// still needs its mark, and the time left.
fn grace_left(orphan: &Orphan, inputs: &PruneInputs<'_>) -> Option<(bool, Duration)> {
    let grace = inputs.settings.grace;
    if grace.is_zero() {
        return None;
    }
    let since = inputs
        .ours(orphan, ANNOTATION_ORPHANED_SINCE)
        .and_then(|at| humantime::parse_rfc3339(at).ok());
    let Some(since) = since else {
        // Unmarked, or a mark that cannot be read: the grace starts now.
        return Some((true, grace));
    };
    // A mark in the future (a clock step back) counts as written now.
    let elapsed = inputs.now.duration_since(since).unwrap_or(Duration::ZERO);
    grace
        .checked_sub(elapsed)
        .filter(|left| !left.is_zero())
        .map(|left| (false, left))
}

/// A duration in whole seconds, for messages.
fn whole_seconds(duration: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(duration.as_secs()))
}

fn decide(
    orphan: &Orphan,
    job: Option<&(String, JobState)>,
    blocked: bool,
    inputs: &PruneInputs<'_>,
) -> (PruneAction, String) {
    let settings = inputs.settings;
    let target = format!("{}/{}", orphan.object.namespace(), orphan.object.name());
    if orphan.object.annotation(ANNOTATION_PRUNE) == Some("disabled") {
        return (
            PruneAction::Disabled,
            format!("{target} is annotated {ANNOTATION_PRUNE}: disabled and is kept"),
        );
    }
    let requested_at = inputs.ours(orphan, ANNOTATION_REQUESTED_AT);
    let Some(requested_at) = requested_at else {
        if let Some((needs_mark, left)) = grace_left(orphan, inputs) {
            let message = format!(
                "{target} is gone from soa-configs; pruned in {} unless it comes back (prune.grace {})",
                whole_seconds(left),
                whole_seconds(settings.grace)
            );
            return if needs_mark {
                (PruneAction::MarkOrphaned, message)
            } else {
                (PruneAction::Pending { left }, message)
            };
        }
        if blocked {
            return (
                PruneAction::MassPruneBlocked,
                format!("{target} would be pruned, but the mass-prune guard holds it"),
            );
        }
        return match settings.mode {
            PruneMode::Delete => (
                PruneAction::Delete,
                format!("deletes {target} at once (prune.mode: delete)"),
            ),
            PruneMode::AnnotateOnly => (
                PruneAction::Signal { create_job: false },
                format!(
                    "signals stop on {target}; the operator stops and removes it (prune.mode: annotate-only)"
                ),
            ),
            PruneMode::ShutdownJob | PruneMode::Off => (
                PruneAction::Signal { create_job: true },
                format!("stops the jobs with a savepoint, then deletes {target}"),
            ),
        };
    };
    match settings.mode {
        PruneMode::Delete => {
            return (
                PruneAction::Delete,
                format!("deletes {target} (prune.mode: delete)"),
            );
        }
        PruneMode::AnnotateOnly => {
            return (
                PruneAction::Signalled,
                format!("stop signalled on {target} at {requested_at}; waiting for the operator"),
            );
        }
        PruneMode::ShutdownJob | PruneMode::Off => {}
    }
    let Some((job_name, state)) = job else {
        return (
            PruneAction::CreateJob,
            format!("stop signalled at {requested_at}; creates the shutdown Job for {target}"),
        );
    };
    match state {
        JobState::Complete => (
            PruneAction::Delete,
            format!("shutdown Job {job_name} completed: deletes {target}"),
        ),
        JobState::Failed if settings.retry_failed => (
            PruneAction::Retry,
            format!("shutdown Job {job_name} failed: runs it again (prune.retry_failed)"),
        ),
        JobState::Failed => (
            PruneAction::Failed,
            format!(
                "PruneFailed: shutdown Job {job_name} failed; {target} is kept (delete the Job to try again)"
            ),
        ),
        JobState::Running => {
            let elapsed = humantime::parse_rfc3339(requested_at)
                .ok()
                .and_then(|at| inputs.now.duration_since(at).ok())
                .unwrap_or(Duration::ZERO);
            if elapsed > settings.timeout {
                (
                    PruneAction::TimedOut,
                    format!(
                        "PruneTimedOut: shutdown Job {job_name} has run for {} (prune.timeout {}); {target} is kept",
                        humantime::format_duration(Duration::from_secs(elapsed.as_secs())),
                        humantime::format_duration(settings.timeout)
                    ),
                )
            } else {
                (
                    PruneAction::Wait,
                    format!("shutdown Job {job_name} is running for {target}"),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::LiveObject;
    use serde_json::json;

    /// An orphan whose `annotations` were written by our prune manager.
    fn orphan(name: &str, annotations: Json) -> Orphan {
        let owned: serde_json::Map<String, Json> = annotations
            .as_object()
            .map(|a| a.keys().map(|k| (format!("f:{k}"), json!({}))).collect())
            .unwrap_or_default();
        let mut orphan = foreign_orphan(name, annotations);
        orphan.object.object["metadata"]["managedFields"] = json!([{
            "manager": "flink-gitops-prune", "operation": "Apply",
            "fieldsV1": {"f:metadata": {"f:annotations": owned}}
        }]);
        orphan
    }

    /// An orphan whose annotations someone else wrote (a restored backup).
    fn foreign_orphan(name: &str, annotations: Json) -> Orphan {
        let object = json!({
            "apiVersion": "yelp.com/v1alpha1", "kind": "Flink",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                         "labels": {"paasta.yelp.com/service": "svc", "paasta.yelp.com/instance": name,
                                    "paasta.yelp.com/cluster": "c1"},
                         "annotations": annotations}
        });
        Orphan {
            service: "svc".into(),
            instance: name.into(),
            subject: format!("Flink/ns/{name}"),
            object: LiveObject {
                kind: "Flink".into(),
                plural: "flinks".into(),
                api_version: "yelp.com/v1alpha1".into(),
                object,
            },
        }
    }

    /// The defaults without the grace period: the protocol's steps at once.
    fn no_grace() -> PruneSettings {
        PruneSettings {
            grace: Duration::ZERO,
            ..PruneSettings::default()
        }
    }

    /// The shutdown Job of `orphan`'s prune in `state`.
    fn job(orphan: Option<&Orphan>, state: &str) -> Json {
        let mut job = match state {
            "running" => json!({"status": {"active": 1}}),
            other => json!({"status": {"conditions": [{"type": other, "status": "True"}]}}),
        };
        if let Some(orphan) = orphan {
            job["metadata"] = json!({
                "ownerReferences": [{"uid": orphan.object.object["metadata"]["uid"]}],
                "annotations": {ANNOTATION_REQUESTED_AT: orphan.object.annotation(ANNOTATION_REQUESTED_AT)},
            });
        }
        job
    }

    fn run(
        orphans: &[Orphan],
        jobs: &[(&str, &str)],
        settings: &PruneSettings,
        managed: usize,
        allow: bool,
    ) -> PrunePlan {
        let jobs: BTreeMap<(String, String), Json> = jobs
            .iter()
            .map(|(name, state)| {
                let orphan = orphans.iter().find(|o| o.instance == *name);
                (
                    ("ns".to_owned(), format!("{name}-shutdown")),
                    job(orphan, state),
                )
            })
            .collect();
        plan_prunes(
            orphans,
            &PruneInputs {
                settings,
                jobs: &jobs,
                managed,
                allow_mass_prune: allow,
                source_problem: None,
                now: humantime::parse_rfc3339("2026-11-26T12:00:00Z").expect("time"),
                field_manager: "flink-gitops",
            },
        )
    }

    fn actions(plan: &PrunePlan) -> Vec<&'static str> {
        plan.entries.iter().map(|e| e.action.name()).collect()
    }

    fn requested(at: &str) -> Json {
        json!({ANNOTATION_REQUESTED_AT: at, "paasta.yelp.com/desired_state": "stop"})
    }

    #[test]
    fn a_new_orphan_is_signalled_with_a_job() {
        let plan = run(&[orphan("a", json!({}))], &[], &no_grace(), 10, false);
        assert_eq!(
            plan.entries[0].action,
            PruneAction::Signal { create_job: true }
        );
        assert!(
            plan.entries[0]
                .message
                .contains("stops the jobs with a savepoint, then deletes ns/a")
        );
    }

    #[test]
    fn the_job_decides_wait_delete_failed_and_timeout() {
        let settings = no_grace();
        let recent = requested("2026-11-26T11:50:00Z");
        let old = requested("2026-11-26T10:00:00Z");
        let orphans = [
            orphan("running", recent.clone()),
            orphan("done", recent.clone()),
            orphan("broken", recent.clone()),
            orphan("slow", old),
            orphan("lost", recent),
        ];
        let jobs = [
            ("running", "running"),
            ("done", "Complete"),
            ("broken", "Failed"),
            ("slow", "running"),
        ];
        let plan = run(&orphans, &jobs, &settings, 100, false);
        assert_eq!(
            actions(&plan),
            [
                "waiting",
                "delete",
                "prune-failed",
                "prune-timed-out",
                "create-job"
            ]
        );
        let retry = PruneSettings {
            retry_failed: true,
            ..no_grace()
        };
        let plan = run(&orphans[2..3], &jobs, &retry, 100, false);
        assert_eq!(actions(&plan), ["retry"]);
    }

    #[test]
    fn guards_hold_back_new_prunes_but_not_those_in_progress() {
        let settings = no_grace();
        let mut orphans: Vec<Orphan> = (0..4)
            .map(|i| orphan(&format!("n{i}"), json!({})))
            .collect();
        orphans.push(orphan("old", requested("2026-11-26T11:59:00Z")));
        // 4 new of 10 managed objects is over 25%.
        let plan = run(&orphans, &[("old", "running")], &settings, 10, false);
        assert!(plan.mass_prune_blocked.is_some());
        assert_eq!(
            actions(&plan),
            ["mass-prune-blocked"; 4]
                .iter()
                .copied()
                .chain(["waiting"])
                .collect::<Vec<_>>()
        );
        let allowed = run(&orphans, &[("old", "running")], &settings, 10, true);
        assert!(allowed.mass_prune_blocked.is_none());
        assert_eq!(allowed.writes().count(), 4);
        let per_cycle = PruneSettings {
            max_per_cycle: 2,
            ..no_grace()
        };
        assert!(
            run(&orphans, &[], &per_cycle, 1000, false)
                .mass_prune_blocked
                .is_some()
        );
    }

    #[test]
    fn disabled_annotation_off_mode_and_an_unhealthy_source_prune_nothing() {
        let disabled = orphan("a", json!({ANNOTATION_PRUNE: "disabled"}));
        let plan = run(std::slice::from_ref(&disabled), &[], &no_grace(), 10, false);
        assert_eq!(actions(&plan), ["prune-disabled"]);
        assert_eq!(plan.writes().count(), 0);
        let off = PruneSettings {
            mode: PruneMode::Off,
            ..no_grace()
        };
        assert!(
            run(&[orphan("b", json!({}))], &[], &off, 10, false)
                .entries
                .is_empty()
        );
        let jobs = BTreeMap::new();
        let settings = no_grace();
        let untrusted = |orphans: &[Orphan]| {
            plan_prunes(
                orphans,
                &PruneInputs {
                    settings: &settings,
                    jobs: &jobs,
                    managed: 10,
                    allow_mass_prune: true,
                    source_problem: Some("the fetch failed".to_owned()),
                    now: SystemTime::now(),
                    field_manager: "flink-gitops",
                },
            )
        };
        let unhealthy = untrusted(&[orphan("b", json!({}))]);
        assert!(unhealthy.entries.is_empty());
        assert_eq!(
            unhealthy.held.as_deref(),
            Some("1 orphaned objects are kept and nothing is pruned: the fetch failed")
        );
        let quiet = untrusted(&[]);
        assert_eq!(quiet.held, None, "nothing to hold back, nothing to say");
    }

    #[test]
    fn annotate_only_and_delete_modes() {
        let annotate = PruneSettings {
            mode: PruneMode::AnnotateOnly,
            ..no_grace()
        };
        let orphans = [
            orphan("new", json!({})),
            orphan("old", requested("2026-11-26T11:00:00Z")),
        ];
        let plan = run(&orphans, &[], &annotate, 100, false);
        assert_eq!(
            plan.entries[0].action,
            PruneAction::Signal { create_job: false }
        );
        assert_eq!(plan.entries[1].action, PruneAction::Signalled);
        let delete = PruneSettings {
            mode: PruneMode::Delete,
            ..no_grace()
        };
        assert_eq!(
            actions(&run(&orphans, &[], &delete, 100, false)),
            ["delete", "delete"]
        );
    }

    #[test]
    fn job_state_reads_conditions() {
        assert_eq!(JobState::of(&job(None, "Complete")), JobState::Complete);
        assert_eq!(JobState::of(&job(None, "Failed")), JobState::Failed);
        assert_eq!(JobState::of(&job(None, "running")), JobState::Running);
        assert_eq!(
            JobState::of(
                &json!({"status": {"conditions": [{"type": "Complete", "status": "False"}]}})
            ),
            JobState::Running
        );
    }

    #[test]
    fn a_new_orphan_is_marked_then_pending_until_its_grace_is_over() {
        let settings = PruneSettings::default();
        assert_eq!(settings.grace, Duration::from_secs(120));
        // `now` is 12:00:00.
        let unmarked = orphan("a", json!({}));
        let recent = orphan(
            "b",
            json!({ANNOTATION_ORPHANED_SINCE: "2026-11-26T11:59:30Z"}),
        );
        let due = orphan(
            "c",
            json!({ANNOTATION_ORPHANED_SINCE: "2026-11-26T11:58:00Z"}),
        );
        let unreadable = orphan("d", json!({ANNOTATION_ORPHANED_SINCE: "yesterday"}));
        let future = orphan(
            "e",
            json!({ANNOTATION_ORPHANED_SINCE: "2026-11-26T13:00:00Z"}),
        );
        let plan = run(
            &[unmarked, recent, due, unreadable, future],
            &[],
            &settings,
            100,
            false,
        );
        let steps: Vec<&PruneAction> = plan.entries.iter().map(|e| &e.action).collect();
        assert_eq!(
            steps,
            [
                &PruneAction::MarkOrphaned,
                &PruneAction::Pending {
                    left: Duration::from_secs(90)
                },
                &PruneAction::Signal { create_job: true },
                &PruneAction::MarkOrphaned,
                &PruneAction::Pending {
                    left: Duration::from_secs(120)
                },
            ]
        );
        assert_eq!(
            plan.entries[1].message,
            "ns/b is gone from soa-configs; pruned in 1m 30s unless it comes back (prune.grace 2m)"
        );
        assert_eq!(plan.entries[1].to_json()["grace_left_seconds"], 90);
        assert_eq!(plan.entries[1].action.name(), "pending-prune");
        assert!(plan.entries[0].action.writes(), "the mark is written");
        assert!(!plan.entries[1].action.writes());
    }

    #[test]
    fn pending_prunes_do_not_count_against_the_guard() {
        let settings = PruneSettings::default();
        let orphans: Vec<Orphan> = (0..6)
            .map(|i| orphan(&format!("n{i}"), json!({})))
            .collect();
        let plan = run(&orphans, &[], &settings, 10, false);
        assert!(plan.mass_prune_blocked.is_none());
        assert_eq!(actions(&plan), ["pending-prune"; 6]);
        let due: Vec<Orphan> = (0..6)
            .map(|i| {
                orphan(
                    &format!("n{i}"),
                    json!({ANNOTATION_ORPHANED_SINCE: "2026-11-26T11:00:00Z"}),
                )
            })
            .collect();
        assert!(
            run(&due, &[], &settings, 10, false)
                .mass_prune_blocked
                .is_some()
        );
    }

    #[test]
    fn the_grace_period_holds_in_every_mode() {
        for mode in [
            PruneMode::Delete,
            PruneMode::AnnotateOnly,
            PruneMode::ShutdownJob,
        ] {
            let settings = PruneSettings {
                mode,
                ..PruneSettings::default()
            };
            let plan = run(&[orphan("a", json!({}))], &[], &settings, 100, false);
            assert_eq!(
                plan.entries[0].action,
                PruneAction::MarkOrphaned,
                "{mode:?}"
            );
        }
    }

    #[test]
    fn prune_annotations_someone_else_wrote_are_not_ours() {
        // A restored backup carries a stop signal and an old mark.
        let restored = foreign_orphan(
            "a",
            json!({ANNOTATION_REQUESTED_AT: "2020-01-01T00:00:00Z",
                   ANNOTATION_ORPHANED_SINCE: "2020-01-01T00:00:00Z"}),
        );
        let plan = run(&[restored], &[], &PruneSettings::default(), 100, false);
        assert_eq!(plan.entries[0].action, PruneAction::MarkOrphaned);
        // Delete mode: no shortcut past the guard either.
        let delete = PruneSettings {
            mode: PruneMode::Delete,
            grace: Duration::ZERO,
            ..PruneSettings::default()
        };
        let restored: Vec<Orphan> = (0..5)
            .map(|i| {
                foreign_orphan(
                    &format!("n{i}"),
                    json!({ANNOTATION_REQUESTED_AT: "2020-01-01T00:00:00Z"}),
                )
            })
            .collect();
        let plan = run(&restored, &[], &delete, 10, false);
        assert_eq!(actions(&plan), ["mass-prune-blocked"; 5]);
    }

    #[test]
    fn a_job_of_an_earlier_prune_is_not_this_prunes_job() {
        let signalled = orphan("a", requested("2026-11-26T11:50:00Z"));
        let mut stale = job(Some(&signalled), "Complete");
        stale["metadata"]["annotations"][ANNOTATION_REQUESTED_AT] = json!("2026-11-20T00:00:00Z");
        assert!(!job_is_for(
            &stale,
            &signalled.object,
            "2026-11-26T11:50:00Z"
        ));
        let mut other_owner = job(Some(&signalled), "Complete");
        other_owner["metadata"]["ownerReferences"][0]["uid"] = json!("uid-someone-else");
        assert!(!job_is_for(
            &other_owner,
            &signalled.object,
            "2026-11-26T11:50:00Z"
        ));
        let fresh = job(Some(&signalled), "Complete");
        assert!(job_is_for(
            &fresh,
            &signalled.object,
            "2026-11-26T11:50:00Z"
        ));
        // An unstamped Job of an older release counts when created after the request.
        let mut legacy = job(Some(&signalled), "Complete");
        legacy["metadata"]["annotations"] = json!({});
        legacy["metadata"]["creationTimestamp"] = json!("2026-11-26T11:50:05Z");
        assert!(job_is_for(
            &legacy,
            &signalled.object,
            "2026-11-26T11:50:00Z"
        ));
        legacy["metadata"]["creationTimestamp"] = json!("2026-11-26T11:00:00Z");
        assert!(!job_is_for(
            &legacy,
            &signalled.object,
            "2026-11-26T11:50:00Z"
        ));
        // Planned: a stale Complete Job is no reason to delete.
        let jobs: BTreeMap<(String, String), Json> =
            BTreeMap::from([(("ns".to_owned(), "a-shutdown".to_owned()), stale)]);
        let settings = no_grace();
        let plan = plan_prunes(
            std::slice::from_ref(&signalled),
            &PruneInputs {
                settings: &settings,
                jobs: &jobs,
                managed: 100,
                allow_mass_prune: false,
                source_problem: None,
                now: humantime::parse_rfc3339("2026-11-26T12:00:00Z").expect("time"),
                field_manager: "flink-gitops",
            },
        );
        assert_eq!(actions(&plan), ["create-job"]);
    }
}
