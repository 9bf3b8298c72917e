//! Pure: what a pull request does to each cluster, for CI.
//!
//! [`compare_revisions`] compares the desired resources of two revisions
//! (the base ones stand in for the live objects: a changed `config_sha` is
//! a restart, a changed `git_sha` a deploy, an instance only the base has a
//! stop-and-delete); [`compare_live`] compares a revision with live objects
//! (listed from the cluster, read from a `kubectl get` dump, or none). Both
//! go through [`plan::plan`]. The [`Report`] renders as a markdown comment
//! ([`markdown`], with a stable [`MARKER`] and under GitHub's size limit),
//! JSON ([`json`], schema [`SCHEMA`]) or text ([`text`]).

use crate::cli::plan_output;
use crate::plan::inventory::Inventory;
use crate::plan::{self, Action, LiveObject, Plan, PlanEntry, Policy, Reason};
use crate::render::{DesiredResource, DesiredSet};
use crate::value::{Value, yaml_out};
use serde_json::{Value as Json, json};
use similar::TextDiff;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The hidden first line of every markdown comment: CI finds the comment it
/// wrote before by it and updates it in place.
pub const MARKER: &str = "<!-- flink-gitops-diff -->";
/// GitHub's limit on the body of an issue or pull-request comment.
pub const GITHUB_COMMENT_LIMIT: usize = 65_536;
/// The `schema` of [`json`] documents.
pub const SCHEMA: &str = "flink-gitops/ci-diff/v1";
/// Lines of context in the unified diffs.
const CONTEXT_LINES: usize = 3;
/// Characters of a sha shown in comments.
const SHORT_SHA: usize = 7;
/// Characters of a `git_sha` shown in plain words.
const SHORT_GIT_SHA: usize = 12;

/// What happens to one instance (or, for [`ChangeKind::Invalid`], what
/// cannot be known).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Create,
    /// A write that does not restart the Flink cluster's configuration
    /// (an image deploy, labels, annotations).
    Update,
    /// The `config_sha` changes: the Flink cluster restarts.
    Restart,
    /// The instance is gone: its jobs stop with a savepoint, then the
    /// resource is deleted.
    StopAndDelete,
    /// A file is invalid or an instance cannot be rendered.
    Invalid,
}

impl ChangeKind {
    /// Every kind, in the order of the summary columns.
    pub const ALL: [ChangeKind; 5] = [
        ChangeKind::Create,
        ChangeKind::Update,
        ChangeKind::Restart,
        ChangeKind::StopAndDelete,
        ChangeKind::Invalid,
    ];

    /// The name used in tables, text and JSON.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Update => "update",
            ChangeKind::Restart => "restart",
            ChangeKind::StopAndDelete => "stop-and-delete",
            ChangeKind::Invalid => "invalid",
        }
    }

    fn marker(self) -> char {
        match self {
            ChangeKind::Create => '+',
            ChangeKind::Update | ChangeKind::Restart => '~',
            ChangeKind::StopAndDelete => '-',
            ChangeKind::Invalid => '!',
        }
    }
}

/// One changed (or invalid) instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub service: String,
    /// Empty for a whole service that failed to load.
    pub instance: String,
    /// `Kind/namespace/name`, or `service.instance`/`service` without object.
    pub subject: String,
    pub kind: ChangeKind,
    /// What happens, in plain words, one sentence each.
    pub what: Vec<String>,
    /// The plan's reasons (updates and restarts).
    pub reasons: Vec<Reason>,
    /// `path:line:column: message` of every problem (invalid only).
    pub diagnostics: Vec<String>,
    /// The unified diff of the rendered YAML (empty when there is none).
    pub diff: String,
}

impl Change {
    /// `service.instance`, or `service` for a whole service.
    #[must_use]
    pub fn name(&self) -> String {
        if self.instance.is_empty() {
            self.service.clone()
        } else {
            format!("{}.{}", self.service, self.instance)
        }
    }
}

/// An instance that is not deployed yet: nothing is written for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub service: String,
    pub instance: String,
    pub reason: String,
}

/// The comparison of one cluster.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterDiff {
    pub cluster: String,
    /// Sorted by service, instance, subject.
    pub changes: Vec<Change>,
    pub unchanged: usize,
    pub skipped: Vec<Skipped>,
}

impl ClusterDiff {
    /// Number of changes of `kind`.
    #[must_use]
    pub fn count(&self, kind: ChangeKind) -> usize {
        self.changes.iter().filter(|c| c.kind == kind).count()
    }

    /// True when something would be written or deleted.
    #[must_use]
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.kind != ChangeKind::Invalid)
    }

    /// True when something is invalid.
    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.changes.iter().any(|c| c.kind == ChangeKind::Invalid)
    }
}

/// What the head revision is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Against {
    /// The base revision's desired resources.
    Revision,
    /// The objects listed from the live cluster.
    LiveCluster,
    /// A `kubectl get` dump.
    LiveFile(String),
    /// An empty cluster.
    Empty,
}

impl Against {
    fn name(&self) -> &'static str {
        match self {
            Against::Revision => "revision",
            Against::LiveCluster => "live",
            Against::LiveFile(_) => "file",
            Against::Empty => "empty",
        }
    }
}

/// The whole comparison, every cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Full sha of the base revision, when there is one.
    pub base: Option<String>,
    /// Full sha of the head revision (`None` for a directory).
    pub head: Option<String>,
    pub against: Against,
    /// The services whose files changed (the only ones rendered), or `None`
    /// when every service was.
    pub services: Option<Vec<String>>,
    /// Sorted by cluster name.
    pub clusters: Vec<ClusterDiff>,
}

impl Report {
    /// True when something would be written or deleted in some cluster.
    #[must_use]
    pub fn has_changes(&self) -> bool {
        self.clusters.iter().any(ClusterDiff::has_changes)
    }

    /// True when some file is invalid or some instance cannot be rendered.
    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.clusters.iter().any(ClusterDiff::has_errors)
    }

    /// Changes of `kind` over every cluster.
    #[must_use]
    pub fn count(&self, kind: ChangeKind) -> usize {
        self.clusters.iter().map(|c| c.count(kind)).sum()
    }
}

/// The base revision's resources as the "live" objects of the head's plan.
/// They carry no managedFields, so a removed field shows in the diff (the
/// whole objects are compared) but not as a `FieldRemoved` reason.
#[must_use]
pub fn as_live_objects(desired: &DesiredSet) -> Vec<LiveObject> {
    desired
        .resources
        .iter()
        .filter_map(|r| {
            Some(LiveObject {
                kind: r.kind.clone(),
                plural: r.plural.clone(),
                api_version: r.api_version.clone(),
                object: r.object.to_json().ok()?,
            })
        })
        .collect()
}

/// Makes the paths of diagnostics and skip reasons relative to the
/// repository: drops `root/` (a snapshot's root, e.g. `repo@sha`).
pub fn strip_root(desired: &mut DesiredSet, root: &str) {
    let prefix = format!("{}/", root.trim_end_matches('/'));
    let strip = |path: &mut String| {
        if let Some(rest) = path.strip_prefix(&prefix) {
            *path = rest.to_owned();
        }
    };
    for diagnostic in desired.unknown_services.values_mut().flatten() {
        strip(&mut diagnostic.path);
    }
    for failed in &mut desired.failed {
        strip(&mut failed.diagnostic.path);
    }
    for skipped in &mut desired.skipped {
        skipped.reason = skipped.reason.replace(&prefix, "");
    }
}

fn unified(before: &str, after: &str, from: &str, to: &str) -> String {
    if before == after {
        return String::new();
    }
    TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(CONTEXT_LINES)
        .header(from, to)
        .to_string()
}

fn short(sha: &str, len: usize) -> &str {
    &sha[..len.min(sha.len())]
}

fn shas(resource: Option<&DesiredResource>) -> String {
    resource.map_or_else(String::new, |r| {
        format!(
            " (config_sha {}, image git sha {})",
            r.config_sha,
            short(&r.git_sha, SHORT_GIT_SHA)
        )
    })
}

/// Plain words for the reasons of an update; `live` words hand edits as
/// such, between revisions every difference is a change.
fn reason_words(reasons: &[Reason], live: bool) -> Vec<String> {
    let or_none = |v: &Option<String>, len: usize| {
        v.as_deref()
            .map_or_else(|| "none".to_owned(), |s| short(s, len).to_owned())
    };
    let mut words = Vec::new();
    let mut changed = Vec::new();
    let mut drifted = Vec::new();
    let mut removed = Vec::new();
    for reason in reasons {
        match reason {
            Reason::ConfigShaChanged { from, to } => words.push(format!(
                "restarts the Flink cluster (config_sha {} → {to})",
                or_none(from, usize::MAX)
            )),
            Reason::GitShaChanged { from, to } => words.push(format!(
                "deploys image git sha {} (was {})",
                short(to, SHORT_GIT_SHA),
                or_none(from, SHORT_GIT_SHA)
            )),
            Reason::Changed(path) => changed.push(path.to_string()),
            Reason::Drift(path) if live => drifted.push(path.to_string()),
            Reason::Drift(path) => changed.push(path.to_string()),
            Reason::FieldRemoved(path) => removed.push(path.to_string()),
            Reason::PruneCancelled => {
                words.push("cancels the prune in progress and runs it again".to_owned());
            }
            Reason::OrphanMarkCleared => {
                words.push("drops the pending prune".to_owned());
            }
        }
    }
    let list = |paths: &[String]| {
        paths
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !changed.is_empty() {
        words.push(format!("changes {}", list(&changed)));
    }
    if !drifted.is_empty() {
        words.push(format!("reverts hand edits of {}", list(&drifted)));
    }
    if !removed.is_empty() {
        words.push(format!("removes {}", list(&removed)));
    }
    words
}

/// The fields of a live object that say what it is: no status, no server
/// metadata.
fn trimmed(object: &Json) -> Value {
    let mut out = serde_json::Map::new();
    for key in ["apiVersion", "kind", "spec"] {
        if let Some(value) = object.get(key) {
            out.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(metadata) = object.get("metadata").and_then(Json::as_object) {
        let kept: serde_json::Map<String, Json> = ["annotations", "labels", "name", "namespace"]
            .iter()
            .filter_map(|k| Some(((*k).to_owned(), metadata.get(*k)?.clone())))
            .collect();
        out.insert("metadata".to_owned(), Json::Object(kept));
    }
    Value::from_json(&Json::Object(out))
}

/// How a plan entry's diff is made.
enum Sides<'a> {
    /// Between revisions: whole base object → whole head object.
    Revisions(&'a BTreeMap<&'a str, &'a DesiredResource>),
    /// Against live objects: the plan's projected live → desired.
    Live,
}

fn from_plan(
    plan: &Plan,
    head: &DesiredSet,
    sides: &Sides<'_>,
    extra_changes: impl Fn(&PlanEntry) -> bool,
) -> ClusterDiff {
    let live = matches!(sides, Sides::Live);
    let head_by_subject: BTreeMap<String, &DesiredResource> =
        head.resources.iter().map(|r| (r.subject(), r)).collect();
    let mut diff = ClusterDiff {
        cluster: plan.cluster.clone(),
        ..ClusterDiff::default()
    };
    let head_yaml = |subject: &str| {
        head_by_subject
            .get(subject)
            .map(|r| yaml_out::to_yaml(&r.object))
            .unwrap_or_default()
    };
    let base_yaml = |subject: &str| match sides {
        Sides::Revisions(base) => base
            .get(subject)
            .map(|r| yaml_out::to_yaml(&r.object))
            .unwrap_or_default(),
        Sides::Live => String::new(),
    };
    let (from, to) = if live {
        ("live", "desired")
    } else {
        ("base", "head")
    };
    for entry in &plan.entries {
        let mut change = Change {
            service: entry.service.clone(),
            instance: entry.instance.clone(),
            subject: entry.subject.clone(),
            kind: ChangeKind::Create,
            what: Vec::new(),
            reasons: Vec::new(),
            diagnostics: Vec::new(),
            diff: String::new(),
        };
        match &entry.action {
            Action::Create => {
                change.what.push(format!(
                    "creates {} and starts its jobs{}",
                    entry.subject,
                    shas(head_by_subject.get(&entry.subject).copied())
                ));
                change.diff = unified("", &head_yaml(&entry.subject), from, to);
            }
            Action::Update(reasons) => {
                change.kind = if reasons
                    .iter()
                    .any(|r| matches!(r, Reason::ConfigShaChanged { .. }))
                {
                    ChangeKind::Restart
                } else {
                    ChangeKind::Update
                };
                change.reasons.clone_from(reasons);
                change.what = reason_words(reasons, live);
                change.diff = if live {
                    plan_output::unified_diff(entry)
                } else {
                    unified(
                        &base_yaml(&entry.subject),
                        &head_yaml(&entry.subject),
                        from,
                        to,
                    )
                };
            }
            Action::Unchanged if extra_changes(entry) => {
                change.kind = ChangeKind::Update;
                change
                    .what
                    .push("updates labels or annotations (no restart, same image)".to_owned());
                change.diff = unified(
                    &base_yaml(&entry.subject),
                    &head_yaml(&entry.subject),
                    from,
                    to,
                );
            }
            Action::Unchanged => {
                diff.unchanged += 1;
                continue;
            }
            Action::Skip(reason) => {
                diff.skipped.push(Skipped {
                    service: entry.service.clone(),
                    instance: entry.instance.clone(),
                    reason: reason.clone(),
                });
                continue;
            }
            // Reported once per service, from the head's unknown services.
            Action::Blocked(_) => continue,
            Action::Failed(message) => {
                change.kind = ChangeKind::Invalid;
                change
                    .what
                    .push("cannot be rendered: nothing is written for it".to_owned());
                change.diagnostics.push(message.clone());
            }
        }
        diff.changes.push(change);
    }
    for orphan in &plan.orphans {
        let before = match sides {
            Sides::Revisions(_) => base_yaml(&orphan.subject),
            Sides::Live => yaml_out::to_yaml(&trimmed(&orphan.object.object)),
        };
        diff.changes.push(Change {
            service: orphan.service.clone(),
            instance: orphan.instance.clone(),
            subject: orphan.subject.clone(),
            kind: ChangeKind::StopAndDelete,
            what: vec![format!(
                "stops the jobs with a savepoint, then deletes {} (with `--prune`)",
                orphan.subject
            )],
            reasons: Vec::new(),
            diagnostics: Vec::new(),
            diff: unified(&before, "", from, to),
        });
    }
    for (service, diagnostics) in &head.unknown_services {
        let blocked = plan
            .entries
            .iter()
            .filter(|e| &e.service == service && matches!(e.action, Action::Blocked(_)))
            .count();
        let mut what = vec![format!(
            "the service `{service}` cannot be loaded: none of its instances is rendered"
        )];
        if blocked > 0 {
            what.push(format!(
                "its {blocked} existing instance(s) are left untouched until it loads again"
            ));
        }
        diff.changes.push(Change {
            service: service.clone(),
            instance: String::new(),
            subject: service.clone(),
            kind: ChangeKind::Invalid,
            what,
            reasons: Vec::new(),
            diagnostics: diagnostics.iter().map(ToString::to_string).collect(),
            diff: String::new(),
        });
    }
    diff.changes.sort_by(|a, b| {
        (&a.service, &a.instance, &a.subject, a.kind).cmp(&(
            &b.service,
            &b.instance,
            &b.subject,
            b.kind,
        ))
    });
    diff.skipped
        .sort_by(|a, b| (&a.service, &a.instance).cmp(&(&b.service, &b.instance)));
    diff
}

/// The head revision's desired resources against the base revision's, for
/// one cluster.
#[must_use]
pub fn compare_revisions(base: &DesiredSet, head: &DesiredSet, policy: &Policy) -> ClusterDiff {
    let live = as_live_objects(base);
    let plan = plan::plan(head, &live, policy);
    let base_by_subject: BTreeMap<String, &DesiredResource> =
        base.resources.iter().map(|r| (r.subject(), r)).collect();
    let base_refs: BTreeMap<&str, &DesiredResource> = base_by_subject
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    let head_by_subject: BTreeMap<String, &DesiredResource> =
        head.resources.iter().map(|r| (r.subject(), r)).collect();
    // The plan ignores labels and annotations it does not own; between
    // revisions every byte of the rendered object counts.
    let differs = |entry: &PlanEntry| match (
        base_refs.get(entry.subject.as_str()),
        head_by_subject.get(&entry.subject),
    ) {
        (Some(b), Some(h)) => b.object != h.object,
        _ => false,
    };
    from_plan(&plan, head, &Sides::Revisions(&base_refs), differs)
}

/// The head revision's desired resources against live objects (listed from
/// the cluster, read from a dump, or none), for one cluster.
#[must_use]
pub fn compare_live(head: &DesiredSet, live: &Inventory, policy: &Policy) -> ClusterDiff {
    let plan = plan::plan_inventory(head, live, policy);
    from_plan(&plan, head, &Sides::Live, |_| false)
}

/// Why a live-objects dump cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct DumpError(pub String);

/// Parses a `kubectl get -o yaml|json` dump: a `List`, a single object, or
/// a multi-document YAML stream of either. Objects of the configured kinds
/// (group, version, kind and namespace) that carry PaaSTA's service and
/// instance labels become live objects; everything else is ignored, like
/// the label-selected LIST of the live cluster.
pub fn parse_live_dump(
    text: &str,
    settings: &crate::config::Settings,
) -> Result<Vec<LiveObject>, DumpError> {
    let documents: Vec<Json> = if text.trim_start().starts_with(['{', '[']) {
        let document: Json =
            serde_json::from_str(text).map_err(|e| DumpError(format!("invalid JSON: {e}")))?;
        vec![document]
    } else {
        split_yaml_documents(text)
            .into_iter()
            .enumerate()
            .filter_map(|(index, document)| {
                yaml_document(&document)
                    .map_err(|e| DumpError(format!("document {}: {e}", index + 1)))
                    .transpose()
            })
            .collect::<Result<_, _>>()?
    };
    let mut objects = Vec::new();
    let mut pending: Vec<Json> = documents;
    while let Some(document) = pending.pop() {
        match document {
            Json::Array(items) => pending.extend(items.into_iter().rev()),
            Json::Object(ref map) if map.get("kind").and_then(Json::as_str) == Some("List") => {
                if let Some(Json::Array(items)) = map.get("items") {
                    pending.extend(items.iter().rev().cloned());
                }
            }
            Json::Object(_) => {
                let api_version = document.get("apiVersion").and_then(Json::as_str);
                let kind_name = document.get("kind").and_then(Json::as_str);
                let Some(kind) = settings.kinds.iter().find(|k| {
                    api_version == Some(k.api_version().as_str())
                        && kind_name == Some(k.kind.as_str())
                }) else {
                    continue;
                };
                let object = LiveObject {
                    kind: kind.kind.clone(),
                    plural: kind.plural.clone(),
                    api_version: kind.api_version(),
                    object: document,
                };
                if object.namespace() == kind.namespace() && object.identity().is_some() {
                    objects.push(object);
                }
            }
            _ => {}
        }
    }
    objects.sort_by(|a, b| {
        (&a.kind, a.namespace(), a.name()).cmp(&(&b.kind, b.namespace(), b.name()))
    });
    objects.dedup_by(|a, b| {
        a.kind == b.kind && a.namespace() == b.namespace() && a.name() == b.name()
    });
    Ok(objects)
}

/// Splits a YAML stream at `---` document markers (not inside block
/// scalars of kubectl's output, which are always indented).
fn split_yaml_documents(text: &str) -> Vec<String> {
    let mut documents = vec![String::new()];
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") || line == "..." {
            documents.push(String::new());
            if let Some(rest) = line.strip_prefix("--- ")
                && let Some(last) = documents.last_mut()
            {
                last.push_str(rest);
                last.push('\n');
            }
            continue;
        }
        if let Some(last) = documents.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    documents
}

fn yaml_document(text: &str) -> Result<Option<Json>, String> {
    let limits = crate::config::yaml::Limits {
        max_document_bytes: usize::MAX,
        ..crate::config::yaml::Limits::default()
    };
    let Some(node) = crate::config::yaml::load(text, &limits).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let value = crate::config::convert::to_value(&node, "").map_err(|e| e.to_string())?;
    value.to_json().map(Some).map_err(|e| e.to_string())
}

fn heading(report: &Report) -> String {
    let head = report.head.as_deref().map_or_else(
        || "the working tree".to_owned(),
        |h| format!("`{}`", short(h, SHORT_SHA)),
    );
    match (&report.against, report.base.as_deref()) {
        (Against::Revision, Some(base)) => {
            format!("`{}` → {head}", short(base, SHORT_SHA))
        }
        (Against::Revision, None) => head,
        (Against::LiveCluster, _) => format!("{head} against the live cluster"),
        (Against::LiveFile(path), _) => format!("{head} against the live objects in `{path}`"),
        (Against::Empty, _) => format!("{head} against an empty cluster"),
    }
}

/// A summary of every cluster: one row each, plus a total.
fn summary_table(report: &Report) -> String {
    let mut out = String::from(
        "| cluster | create | update | restart | stop-and-delete | unchanged | invalid |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for cluster in &report.clusters {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            cluster.cluster,
            cluster.count(ChangeKind::Create),
            cluster.count(ChangeKind::Update),
            cluster.count(ChangeKind::Restart),
            cluster.count(ChangeKind::StopAndDelete),
            cluster.unchanged,
            cluster.count(ChangeKind::Invalid),
        );
    }
    out
}

/// The markdown comment, under GitHub's comment size limit.
#[must_use]
pub fn markdown(report: &Report) -> String {
    markdown_within(report, GITHUB_COMMENT_LIMIT)
}

/// A fence longer than any run of backticks in `text`.
fn fence(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat(longest.max(2) + 1)
}

/// Escapes text for HTML (`<summary>` lines).
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The markdown comment in at most `limit` bytes (GitHub counts
/// characters; bytes are never fewer). The largest diffs are left out
/// first, with a note saying so.
#[must_use]
pub fn markdown_within(report: &Report, limit: usize) -> String {
    let mut omitted: Vec<(usize, usize)> = Vec::new();
    let full = render_markdown(report, &omitted, limit);
    if full.len() <= limit {
        return full;
    }
    // Largest first; ties in document order, so the result is stable.
    let mut diffs: Vec<(usize, usize, usize)> = report
        .clusters
        .iter()
        .enumerate()
        .flat_map(|(c, cluster)| {
            cluster
                .changes
                .iter()
                .enumerate()
                .filter(|(_, change)| !change.diff.is_empty())
                .map(move |(i, change)| (c, i, change.diff.len()))
        })
        .collect();
    diffs.sort_by(|a, b| b.2.cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
    let mut text = full;
    for (c, i, _) in diffs {
        omitted.push((c, i));
        text = render_markdown(report, &omitted, limit);
        if text.len() <= limit {
            return text;
        }
    }
    // Even without diffs it is too long: cut at a line boundary.
    let note = "\n\n_… the rest of this comment was cut to fit GitHub's comment size limit._\n";
    let mut cut = limit.saturating_sub(note.len());
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let cut = text[..cut].rfind('\n').unwrap_or(cut);
    text.truncate(cut);
    text.push_str(note);
    text
}

fn render_markdown(report: &Report, omitted: &[(usize, usize)], limit: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{MARKER}");
    let _ = writeln!(out, "### flink-gitops diff {}\n", heading(report));
    if !omitted.is_empty() {
        let _ = writeln!(
            out,
            "> [!NOTE]\n> {} diff(s) left out, the largest first, to keep this comment under \
             GitHub's {limit}-character limit. Run `flink-gitops diff` for the full output.\n",
            omitted.len()
        );
    }
    if report.has_errors() {
        out.push_str("> [!CAUTION]\n> Some files are invalid: see below.\n\n");
    }
    if report.clusters.is_empty() {
        out.push_str("No Flink instance is affected by this change.\n");
        return out;
    }
    out.push_str(&summary_table(report));
    out.push('\n');
    for (c, cluster) in report.clusters.iter().enumerate() {
        if cluster.changes.is_empty() && cluster.skipped.is_empty() {
            continue;
        }
        let _ = writeln!(out, "#### `{}`\n", cluster.cluster);
        let invalid: Vec<&Change> = cluster
            .changes
            .iter()
            .filter(|ch| ch.kind == ChangeKind::Invalid)
            .collect();
        if !invalid.is_empty() {
            out.push_str("**Invalid**\n\n");
            for ch in &invalid {
                let _ = writeln!(out, "- `{}`: {}", ch.name(), ch.what.join("; "));
            }
            let problems: Vec<&str> = invalid
                .iter()
                .flat_map(|ch| ch.diagnostics.iter().map(String::as_str))
                .collect();
            let body = problems.join("\n");
            let fence = fence(&body);
            let _ = writeln!(out, "\n{fence}text\n{body}\n{fence}\n");
        }
        for (i, change) in cluster.changes.iter().enumerate() {
            if change.kind == ChangeKind::Invalid {
                continue;
            }
            let _ = writeln!(
                out,
                "<details><summary><b>{}</b> <code>{}</code> (<code>{}</code>)</summary>\n",
                change.kind.name(),
                html(&change.name()),
                html(&change.subject)
            );
            for sentence in &change.what {
                let _ = writeln!(out, "- {sentence}");
            }
            out.push('\n');
            if omitted.contains(&(c, i)) {
                let _ = writeln!(
                    out,
                    "_The diff ({} lines) is left out to fit GitHub's comment size limit._\n",
                    change.diff.lines().count()
                );
            } else if !change.diff.is_empty() {
                let fence = fence(&change.diff);
                let _ = writeln!(out, "{fence}diff\n{}{fence}\n", change.diff);
            }
            out.push_str("</details>\n\n");
        }
        if !cluster.skipped.is_empty() {
            out.push_str("Not deployed yet (nothing is written):\n\n");
            for skip in &cluster.skipped {
                let _ = writeln!(
                    out,
                    "- `{}.{}`: {}",
                    skip.service, skip.instance, skip.reason
                );
            }
            out.push('\n');
        }
    }
    out
}

fn summary_json(counts: impl Fn(ChangeKind) -> usize, unchanged: usize, skipped: usize) -> Json {
    json!({
        "create": counts(ChangeKind::Create),
        "update": counts(ChangeKind::Update),
        "restart": counts(ChangeKind::Restart),
        "stop_and_delete": counts(ChangeKind::StopAndDelete),
        "unchanged": unchanged,
        "invalid": counts(ChangeKind::Invalid),
        "skipped": skipped,
    })
}

/// The report as JSON, schema [`SCHEMA`] (see the README).
#[must_use]
pub fn json(report: &Report) -> String {
    let clusters: Vec<Json> = report
        .clusters
        .iter()
        .map(|cluster| {
            let changes: Vec<Json> = cluster
                .changes
                .iter()
                .map(|change| {
                    json!({
                        "service": change.service,
                        "instance": if change.instance.is_empty() { Json::Null } else { json!(change.instance) },
                        "subject": change.subject,
                        "action": change.kind.name(),
                        "what": change.what,
                        "reasons": change.reasons.iter().map(plan_output::reason_json).collect::<Vec<_>>(),
                        "diagnostics": change.diagnostics,
                        "diff": change.diff,
                    })
                })
                .collect();
            let skipped: Vec<Json> = cluster
                .skipped
                .iter()
                .map(|s| json!({"service": s.service, "instance": s.instance, "reason": s.reason}))
                .collect();
            json!({
                "cluster": cluster.cluster,
                "summary": summary_json(|k| cluster.count(k), cluster.unchanged, cluster.skipped.len()),
                "changes": changes,
                "skipped": skipped,
            })
        })
        .collect();
    let unchanged = report.clusters.iter().map(|c| c.unchanged).sum();
    let skipped = report.clusters.iter().map(|c| c.skipped.len()).sum();
    let document = json!({
        "schema": SCHEMA,
        "base": report.base,
        "head": report.head,
        "against": report.against.name(),
        "live_file": match &report.against { Against::LiveFile(path) => json!(path), _ => Json::Null },
        "services": report.services,
        "summary": summary_json(|k| report.count(k), unchanged, skipped),
        "has_changes": report.has_changes(),
        "has_errors": report.has_errors(),
        "clusters": clusters,
    });
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
    text.push('\n');
    text
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const CYAN: &str = "\x1b[36m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// The report for terminals; ANSI colours when `color`.
#[must_use]
pub fn text(report: &Report, color: bool) -> String {
    let paint = |code: &str, line: &str| {
        if color {
            format!("{code}{line}{RESET}")
        } else {
            line.to_owned()
        }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        paint(
            BOLD,
            &format!("flink-gitops diff {}", heading(report).replace('`', ""))
        )
    );
    for cluster in &report.clusters {
        let counts: Vec<String> = [
            ChangeKind::Create,
            ChangeKind::Update,
            ChangeKind::Restart,
            ChangeKind::StopAndDelete,
        ]
        .iter()
        .map(|k| format!("{} {}", cluster.count(*k), k.name()))
        .chain([
            format!("{} unchanged", cluster.unchanged),
            format!("{} invalid", cluster.count(ChangeKind::Invalid)),
        ])
        .collect();
        let _ = writeln!(
            out,
            "{}",
            paint(BOLD, &format!("{}: {}", cluster.cluster, counts.join(", ")))
        );
        for change in &cluster.changes {
            let _ = writeln!(
                out,
                "{} {} ({}): {}",
                change.kind.marker(),
                change.name(),
                change.subject,
                change.kind.name()
            );
            for sentence in change.what.iter().chain(&change.diagnostics) {
                let _ = writeln!(out, "    {sentence}");
            }
            for line in change.diff.lines() {
                let painted = if line.starts_with("+++") || line.starts_with("---") {
                    paint(BOLD, line)
                } else if line.starts_with('+') {
                    paint(GREEN, line)
                } else if line.starts_with('-') {
                    paint(RED, line)
                } else if line.starts_with("@@") {
                    paint(CYAN, line)
                } else {
                    line.to_owned()
                };
                let _ = writeln!(out, "{painted}");
            }
        }
        for skip in &cluster.skipped {
            let _ = writeln!(
                out,
                "  {}.{}: not deployed yet: {}",
                skip.service, skip.instance, skip.reason
            );
        }
    }
    if report.clusters.is_empty() {
        out.push_str("No Flink instance is affected by this change.\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: ChangeKind, service: &str, diff: String) -> Change {
        Change {
            service: service.to_owned(),
            instance: "main".to_owned(),
            subject: format!("Flink/paasta-flinks/{service}-main"),
            kind,
            what: vec!["does something".to_owned()],
            reasons: Vec::new(),
            diagnostics: Vec::new(),
            diff,
        }
    }

    fn report(changes: Vec<Change>) -> Report {
        Report {
            base: Some("a".repeat(40)),
            head: Some("b".repeat(40)),
            against: Against::Revision,
            services: None,
            clusters: vec![ClusterDiff {
                cluster: "c1".to_owned(),
                changes,
                unchanged: 0,
                skipped: Vec::new(),
            }],
        }
    }

    #[test]
    fn markdown_starts_with_the_marker_and_fits_the_limit() {
        let big = |n: usize| format!("@@ -1 +1 @@\n{}", "+line\n".repeat(n));
        let r = report(vec![
            change(ChangeKind::Create, "a", big(10)),
            change(ChangeKind::Create, "b", big(5_000)),
            change(ChangeKind::Restart, "c", big(2_000)),
        ]);
        let full = markdown_within(&r, usize::MAX);
        assert!(full.starts_with(MARKER));
        let cut = markdown_within(&r, 20_000);
        assert!(cut.len() <= 20_000, "{}", cut.len());
        assert!(cut.starts_with(MARKER));
        assert!(cut.contains("1 diff(s) left out"), "{cut}");
        assert!(cut.contains("The diff (5001 lines) is left out"), "{cut}");
        assert!(cut.contains("+line\n"), "the smaller diffs stay");
    }

    #[test]
    fn fences_outgrow_backticks_in_the_diff() {
        assert_eq!(fence("no ticks"), "```");
        assert_eq!(fence("a ```` b"), "`````");
    }

    #[test]
    fn dumps_of_every_shape_parse() {
        let settings = crate::config::Settings::default();
        let object = |name: &str| {
            format!(
                "apiVersion: yelp.com/v1alpha1\nkind: Flink\nmetadata:\n  name: {name}\n  namespace: paasta-flinks\n  labels:\n    paasta.yelp.com/service: s\n    paasta.yelp.com/instance: {name}\n"
            )
        };
        let list = format!(
            "apiVersion: v1\nkind: List\nitems:\n- {}",
            object("a").replace('\n', "\n  ").trim_end()
        );
        assert_eq!(parse_live_dump(&list, &settings).expect("list").len(), 1);
        let stream = format!("---\n{}---\n{}", object("a"), object("b"));
        assert_eq!(
            parse_live_dump(&stream, &settings).expect("stream").len(),
            2
        );
        let single = object("x");
        assert_eq!(
            parse_live_dump(&single, &settings).expect("single").len(),
            1
        );
        let json = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"yelp.com/v1alpha1","kind":"Flink","metadata":{"name":"a","namespace":"paasta-flinks","labels":{"paasta.yelp.com/service":"s","paasta.yelp.com/instance":"a"}}},{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}]}"#;
        assert_eq!(parse_live_dump(json, &settings).expect("json").len(), 1);
        assert!(parse_live_dump("a: [", &settings).is_err());
    }
}
