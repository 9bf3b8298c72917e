//! `flink-gitops status`: one instance as `paasta status` shows it (research
//! 6.12), plus what only flink-gitops knows: whether the live object is in
//! step with soa-configs, a prune in progress, the last apply, recent Events.

use super::live::{plan_against_cluster, runtime};
use super::{CliError, ClusterArgs, ExitCode, SourceArgs, StatusArgs, load_settings};
use crate::apply::{KubeCluster, events};
use crate::config::{KindSettings, Settings};
use crate::plan::prune::{ANNOTATION_REQUESTED_AT, JobState, PruneAction, PrunePlan};
use crate::plan::{Action, Plan, Reason};
use crate::render::{meta, shutdown_job};
use http::{Method, StatusCode};
use serde_json::Value as Json;
use std::io::{IsTerminal, Write};

/// PaaSTA's dashboard annotation, written by the Flink operator.
pub const ANNOTATION_DASHBOARD_URL: &str = "flink.yelp.com/dashboard_url";

/// How many Events `-v` shows.
const EVENTS_SHOWN: usize = 5;

/// PaaSTA's colours (`PaastaColors`), or none.
#[derive(Debug, Clone, Copy)]
struct Colours(bool);

impl Colours {
    fn paint(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    fn green(self, text: &str) -> String {
        self.paint("32", text)
    }
    fn yellow(self, text: &str) -> String {
        self.paint("33", text)
    }
    fn red(self, text: &str) -> String {
        self.paint("31", text)
    }
    fn cyan(self, text: &str) -> String {
        self.paint("36", text)
    }
}

/// Everything read from the cluster for one instance.
struct Observed {
    kind: KindSettings,
    object: Json,
    pods: Result<Vec<Json>, String>,
    job: Option<Result<Option<Json>, String>>,
    events: Result<Vec<Json>, String>,
}

pub fn run(
    args: &StatusArgs,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let colours = Colours(
        std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    );
    let name = meta::resource_name(&args.service, &args.instance);
    let runtime = runtime()?;
    let (settings, cluster_name, plan, revision, observed) = runtime.block_on(async {
        let (settings, cluster, plan, revision) = match &args.soa_dir {
            Some(soa_dir) => {
                let cluster_args = ClusterArgs {
                    source: SourceArgs {
                        soa_dir: soa_dir.clone(),
                        config: args.config.clone(),
                    },
                    cluster: args.cluster.clone(),
                    service: Some(args.service.clone()),
                    instance: Some(args.instance.clone()),
                    kube: args.kube.clone(),
                };
                let live = plan_against_cluster(&cluster_args, false).await?;
                (
                    live.settings,
                    live.cluster,
                    Some((live.plan, live.prunes)),
                    Some(live.revision),
                )
            }
            None => {
                let settings = load_settings(args.config.as_deref())?;
                let cluster = args.kube.connect(&settings.apply).await?;
                (settings, cluster, None, None)
            }
        };
        let cluster_name = args
            .cluster
            .clone()
            .or_else(|| settings.cluster.clone())
            .ok_or(CliError::MissingCluster)?;
        let observed = observe(&cluster, &settings, args, &name).await?;
        Ok::<_, CliError>((settings, cluster_name, plan, revision, observed))
    })?;
    let Some(observed) = observed else {
        writeln!(
            stderr,
            "{}.{} in {cluster_name}: no {name} found in {}",
            args.service,
            args.instance,
            settings
                .kinds
                .iter()
                .map(|k| format!("{}/{}", k.namespace(), k.plural))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        return Ok(ExitCode::Failures);
    };
    let text = render(
        args,
        &cluster_name,
        &settings,
        plan.as_ref().map(|(plan, prunes)| (plan, prunes)),
        revision.as_deref(),
        &observed,
        colours,
    );
    stdout.write_all(text.as_bytes())?;
    Ok(ExitCode::Success)
}

/// GET the resource in the first configured kind that has it, then its pods,
/// its shutdown Job when a prune is in progress, and its Events with `-v`.
async fn observe(
    cluster: &KubeCluster,
    settings: &Settings,
    args: &StatusArgs,
    name: &str,
) -> Result<Option<Observed>, CliError> {
    let mut found = None;
    for kind in &settings.kinds {
        let namespace = kind.namespace();
        let uri = format!(
            "/apis/{}/namespaces/{namespace}/{}/{name}",
            kind.api_version(),
            kind.plural
        );
        let subject = format!("{}/{namespace}/{name}", kind.kind);
        let (status, body) = cluster
            .call(Method::GET, &uri, None, None, &subject)
            .await
            .map_err(CliError::Cluster)?;
        if status == StatusCode::NOT_FOUND {
            continue;
        }
        if !status.is_success() {
            return Err(CliError::Cluster(crate::apply::ApplyError::from_status(
                &subject, status, &body,
            )));
        }
        found = Some((kind.clone(), body));
        break;
    }
    let Some((kind, object)) = found else {
        return Ok(None);
    };
    let namespace = kind.namespace();
    let selector = format!(
        "{}={},{}={}",
        meta::LABEL_SERVICE,
        args.service,
        meta::LABEL_INSTANCE,
        args.instance
    );
    let pods = list(
        cluster,
        &format!("/api/v1/namespaces/{namespace}/pods?labelSelector={selector}"),
        &format!("Pod/{namespace}"),
    )
    .await;
    let job = match object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION_REQUESTED_AT))
    {
        Some(_) => {
            let job_name = shutdown_job::job_name(name);
            let subject = format!("Job/{namespace}/{job_name}");
            let uri = format!("/apis/batch/v1/namespaces/{namespace}/jobs/{job_name}");
            Some(
                match cluster.call(Method::GET, &uri, None, None, &subject).await {
                    Ok((StatusCode::NOT_FOUND, _)) => Ok(None),
                    Ok((status, body)) if status.is_success() => Ok(Some(body)),
                    Ok((status, body)) => Err(crate::apply::ApplyError::from_status(
                        &subject, status, &body,
                    )
                    .to_string()),
                    Err(error) => Err(error.to_string()),
                },
            )
        }
        None => None,
    };
    // Always read: "Last applied" names the revision our newest apply Event carries.
    let events = list(
        cluster,
        &format!(
            "/api/v1/namespaces/{namespace}/events?fieldSelector=involvedObject.name={name},involvedObject.kind={}",
            kind.kind
        ),
        &format!("Event/{namespace}"),
    )
    .await;
    Ok(Some(Observed {
        kind,
        object,
        pods,
        job,
        events,
    }))
}

async fn list(cluster: &KubeCluster, uri: &str, subject: &str) -> Result<Vec<Json>, String> {
    match cluster.call(Method::GET, uri, None, None, subject).await {
        Ok((status, body)) if status.is_success() => Ok(body
            .get("items")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default()),
        Ok((status, body)) => {
            Err(crate::apply::ApplyError::from_status(subject, status, &body).to_string())
        }
        Err(error) => Err(error.to_string()),
    }
}

/// Python's `str.title()`: upper-case the first letter of every run of letters.
fn title(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous_letter = false;
    for c in text.chars() {
        if c.is_alphabetic() {
            if previous_letter {
                out.extend(c.to_lowercase());
            } else {
                out.extend(c.to_uppercase());
            }
            previous_letter = true;
        } else {
            out.push(c);
            previous_letter = false;
        }
    }
    out
}

fn text_at<'a>(object: &'a Json, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Json::as_str)
}

fn annotation<'a>(object: &'a Json, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Json::as_str)
}

fn label<'a>(object: &'a Json, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/labels")
        .and_then(|a| a.get(key))
        .and_then(Json::as_str)
}

fn render(
    args: &StatusArgs,
    cluster: &str,
    settings: &Settings,
    plan: Option<(&Plan, &PrunePlan)>,
    revision: Option<&str>,
    observed: &Observed,
    colours: Colours,
) -> String {
    let object = &observed.object;
    let mut out = format!(
        "{}.{} in {cluster}\n",
        args.service,
        colours.cyan(&args.instance)
    );
    let mut line = |text: String| {
        out.push_str("    ");
        out.push_str(&text);
        out.push('\n');
    };
    match object.get("status").filter(|s| !s.is_null()) {
        None => line(colours.red("Flink cluster is not available yet")),
        Some(status) => {
            let sha = label(object, meta::LABEL_CONFIG_SHA).unwrap_or("");
            line(format!(
                "Config SHA: {}",
                sha.strip_prefix("config").unwrap_or(sha)
            ));
            if let Some(url) = annotation(object, ANNOTATION_DASHBOARD_URL) {
                line(format!("Dashboard:  {url}/"));
            }
            let state = status.get("state").and_then(Json::as_str).unwrap_or("");
            let mut state_line = format!(
                "State: {}",
                if state == "running" {
                    colours.green(&title(state))
                } else {
                    colours.yellow(&title(state))
                }
            );
            if let Some(desired) = annotation(object, meta::ANNOTATION_DESIRED_STATE)
                && desired != state
                && desired != "start"
                && desired != "running"
            {
                state_line.push_str(&format!(
                    " ({})",
                    colours.yellow(&format!("desired: {desired}"))
                ));
            }
            line(state_line);
        }
    }
    match &observed.pods {
        Ok(pods) => {
            let phase = |p: &Json| text_at(p, "/status/phase").unwrap_or("").to_owned();
            let running = pods.iter().filter(|p| phase(p) == "Running").count();
            let evicted = pods
                .iter()
                .filter(|p| phase(p) == "Failed" && text_at(p, "/status/reason") == Some("Evicted"))
                .count();
            let evicted_text = if evicted > 0 {
                colours.red(&evicted.to_string())
            } else {
                evicted.to_string()
            };
            line(format!(
                "Pods: {running} running, {evicted_text} evicted, {} other, {} total",
                pods.len() - running - evicted,
                pods.len()
            ));
        }
        Err(error) => line(colours.yellow(&format!("Pods: unknown ({error})"))),
    }
    if let Some((plan, prunes)) = plan {
        let instance = (args.service.as_str(), args.instance.as_str());
        for text in sync_lines(plan, prunes, instance, revision, colours) {
            line(text);
        }
    }
    if let Some(job) = &observed.job {
        let requested = annotation(object, ANNOTATION_REQUESTED_AT).unwrap_or("unknown");
        let job_name = shutdown_job::job_name(text_at(object, "/metadata/name").unwrap_or(""));
        let state = match job {
            Ok(Some(job)) => match JobState::of(job) {
                JobState::Failed => colours.red("failed"),
                state => colours.yellow(state.name()),
            },
            Ok(None) => colours.yellow("missing"),
            Err(error) => colours.red(&format!("unknown ({error})")),
        };
        line(format!(
            "Prune in progress: Job {job_name} {state} (requested {requested})"
        ));
    }
    let events = observed.events.as_ref().map(|events| {
        let mut events: Vec<&Json> = events
            .iter()
            .filter(|e| text_at(e, "/involvedObject/kind") == Some(observed.kind.kind.as_str()))
            .collect();
        // Same second: the microseconds of `eventTime`, then the order stored.
        events.sort_by_key(|e| {
            (
                event_time(e).to_owned(),
                text_at(e, "/eventTime").unwrap_or("").to_owned(),
                text_at(e, "/metadata/resourceVersion")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0),
            )
        });
        events
    });
    let applied = last_applied_line(
        events.as_deref().unwrap_or(&[]),
        object,
        &settings.apply.field_manager,
    );
    if let Some(text) = applied {
        line(text);
    }
    if args.verbose {
        match events {
            Ok(events) => {
                let skip = events.len().saturating_sub(EVENTS_SHOWN);
                if events.is_empty() {
                    line("Events: none".to_owned());
                } else {
                    line("Events:".to_owned());
                }
                for event in events.into_iter().skip(skip) {
                    let kind = text_at(event, "/type").unwrap_or("Normal");
                    let kind = if kind == "Warning" {
                        colours.red(kind)
                    } else {
                        kind.to_owned()
                    };
                    line(format!(
                        "  {} {kind} {}: {}",
                        event_time(event),
                        text_at(event, "/reason").unwrap_or(""),
                        text_at(event, "/message").unwrap_or("")
                    ));
                }
            }
            Err(error) => line(colours.yellow(&format!("Events: unknown ({error})"))),
        }
    }
    out
}

/// When an Event last happened: `lastTimestamp`, else `eventTime` (to the second).
fn event_time(event: &Json) -> &str {
    text_at(event, "/lastTimestamp")
        .or_else(|| text_at(event, "/eventTime"))
        .or_else(|| text_at(event, "/metadata/creationTimestamp"))
        .unwrap_or("")
}

/// "Last applied: revision R at T" from our newest write Event, or the time
/// of our managed-fields entry alone. A write newer than the newest Event
/// (whose recording failed or which expired) has no known revision: naming
/// the Event's would be naming the wrong one.
fn last_applied_line(events: &[&Json], object: &Json, field_manager: &str) -> Option<String> {
    let written = last_applied(object, field_manager);
    match last_applied_revision(events) {
        Some((revision, time)) if written.is_none_or(|w| w <= time) => {
            Some(format!("Last applied: revision {revision} at {time}"))
        }
        _ => written.map(|time| format!("Last applied: {time}")),
    }
}

/// The revision and time of the newest Event of ours that records a write
/// (`Created`, `Updated`, `DriftCorrected`); Events expire (kube-apiserver's
/// `--event-ttl`, one hour by default), so this is often absent.
fn last_applied_revision<'a>(events: &[&'a Json]) -> Option<(&'a str, &'a str)> {
    events.iter().rev().find_map(|event| {
        let ours = text_at(event, "/source/component") == Some(events::COMPONENT)
            || text_at(event, "/reportingComponent") == Some(events::COMPONENT);
        let write = matches!(
            text_at(event, "/reason"),
            Some("Created" | "Updated" | "DriftCorrected")
        );
        let revision = event
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(events::ANNOTATION_EVENT_REVISION))
            .and_then(Json::as_str)?;
        (ours && write).then(|| (revision, event_time(event)))
    })
}

/// The `time` of our manager's `Apply` entry in `managedFields`.
fn last_applied<'a>(object: &'a Json, field_manager: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .find(|e| {
            text_at(e, "/manager") == Some(field_manager)
                && text_at(e, "/operation") == Some("Apply")
        })
        .and_then(|e| text_at(e, "/time"))
}

/// `In sync`, `Drifted` and `Pending` from the plan of this one instance.
fn sync_lines(
    plan: &Plan,
    prunes: &PrunePlan,
    (service, instance): (&str, &str),
    revision: Option<&str>,
    colours: Colours,
) -> Vec<String> {
    let known_revision = revision.filter(|r| *r != "local");
    let Some(entry) = plan
        .entries
        .iter()
        .find(|e| e.service == service && e.instance == instance)
    else {
        // A prune in progress has its own line; these say why none started.
        if let Some(step) = prunes.entries.iter().find(|p| {
            p.orphan.service == service
                && p.orphan.instance == instance
                && matches!(
                    p.action,
                    PruneAction::MarkOrphaned
                        | PruneAction::Pending { .. }
                        | PruneAction::MassPruneBlocked
                        | PruneAction::Disabled
                )
        }) {
            return vec![colours.yellow(&format!(
                "Pending: gone from soa-configs: {}: {}",
                step.action.name(),
                step.message
            ))];
        }
        if plan
            .orphans
            .iter()
            .any(|o| o.service == service && o.instance == instance)
        {
            return vec![colours.yellow("Pending: gone from soa-configs (prune)")];
        }
        if let Some(unmanaged) = plan.unmanaged.iter().find(|u| {
            u.service.as_deref() == Some(service) && u.instance.as_deref() == Some(instance)
        }) {
            return vec![colours.yellow(&format!("Unmanaged: {}", unmanaged.message()))];
        }
        return vec![colours.yellow("Pending: not in soa-configs for this cluster")];
    };
    match &entry.action {
        Action::Unchanged => vec![colours.green(&match known_revision {
            Some(revision) => format!("In sync with revision {revision}"),
            None => "In sync with soa-configs".to_owned(),
        })],
        Action::Update(reasons) => {
            let drifted: Vec<String> = reasons
                .iter()
                .filter_map(|r| match r {
                    Reason::Drift(path) => Some(path.to_string()),
                    _ => None,
                })
                .collect();
            let pending: Vec<String> = reasons
                .iter()
                .filter(|r| !matches!(r, Reason::Drift(_)))
                .map(ToString::to_string)
                .collect();
            let mut lines = Vec::new();
            if !drifted.is_empty() {
                lines.push(colours.yellow(&format!("Drifted: {}", drifted.join(", "))));
            }
            if !pending.is_empty() {
                lines.push(colours.yellow(&format!("Pending: {}", pending.join("; "))));
            }
            lines
        }
        Action::Create => vec![colours.yellow("Pending: create")],
        Action::Skip(reason) => vec![colours.yellow(&format!("Pending: skipped: {reason}"))],
        Action::Blocked(reason) | Action::Failed(reason) => {
            vec![colours.red(&format!("Pending: cannot apply: {reason}"))]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{last_applied_line, title};
    use serde_json::{Value as Json, json};

    fn write_event(reason: &str, revision: &str, time: &str) -> Json {
        json!({
            "metadata": {"annotations": {"flink-gitops/revision": revision}},
            "reason": reason,
            "source": {"component": "flink-gitops"},
            "lastTimestamp": time,
        })
    }

    fn written_at(time: &str) -> Json {
        json!({"metadata": {"managedFields": [
            {"manager": "other", "operation": "Apply", "time": "2001-01-01T00:00:00Z"},
            {"manager": "flink-gitops", "operation": "Apply", "time": time},
        ]}})
    }

    #[test]
    fn the_newest_write_event_names_the_revision() {
        let created = write_event("Created", "aaa", "2026-01-01T00:00:00Z");
        let pruned = write_event("PruneRequested", "ccc", "2026-01-03T00:00:00Z");
        let updated = write_event("Updated", "bbb", "2026-01-02T00:00:00Z");
        let object = written_at("2026-01-02T00:00:00Z");
        assert_eq!(
            last_applied_line(&[&created, &updated, &pruned], &object, "flink-gitops").as_deref(),
            Some("Last applied: revision bbb at 2026-01-02T00:00:00Z")
        );
    }

    #[test]
    fn a_write_newer_than_its_event_has_no_revision() {
        let created = write_event("Created", "aaa", "2026-01-01T00:00:00Z");
        let object = written_at("2026-01-05T00:00:00Z");
        assert_eq!(
            last_applied_line(&[&created], &object, "flink-gitops").as_deref(),
            Some("Last applied: 2026-01-05T00:00:00Z")
        );
        assert_eq!(last_applied_line(&[], &json!({}), "flink-gitops"), None);
    }

    #[test]
    fn other_components_events_are_not_ours() {
        let mut foreign = write_event("Updated", "zzz", "2026-01-02T00:00:00Z");
        foreign["source"]["component"] = json!("kubectl");
        let object = written_at("2026-01-01T00:00:00Z");
        assert_eq!(
            last_applied_line(&[&foreign], &object, "flink-gitops").as_deref(),
            Some("Last applied: 2026-01-01T00:00:00Z")
        );
    }

    #[test]
    fn title_is_pythons() {
        assert_eq!(title("running"), "Running");
        assert_eq!(title("stoppingjobmanager"), "Stoppingjobmanager");
        assert_eq!(title("cleanup_supervisor"), "Cleanup_Supervisor");
        assert_eq!(title(""), "");
    }
}
