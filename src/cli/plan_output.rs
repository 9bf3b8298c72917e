//! Pure renderers of a [`Plan`]: text for terminals, markdown, and JSON with
//! a versioned schema (`flink-gitops/plan/v1`) for other tools.

use crate::plan::prune::{PruneEntry, PrunePlan};
use crate::plan::{Action, Plan, PlanEntry, Reason, Unmanaged, path::FieldPath};
use crate::value::{Map, Value, yaml_out};
use serde_json::{Value as Json, json};
use similar::TextDiff;
use std::fmt::Write;

/// The live object cut down to what we compare: the fields of our intent
/// plus the fields we own that git dropped, so a diff shows only changes
/// that matter.
#[must_use]
pub fn projected_live(entry: &PlanEntry) -> Option<Value> {
    let live = entry.live.as_ref()?;
    let desired = entry.desired.as_ref()?;
    let mut projection = project(desired, live)?;
    if let Action::Update(reasons) = &entry.action {
        for reason in reasons {
            if let Reason::FieldRemoved(path) = reason {
                insert_live(&mut projection, live, path);
            }
        }
    }
    Some(projection)
}

fn project(desired: &Value, live: &Json) -> Option<Value> {
    match desired {
        Value::Map(map) if !map.is_empty() => {
            let live_map = live.as_object()?;
            let mut out = Map::new();
            for (key, child) in map.iter() {
                if let Some(value) = live_map.get(key).and_then(|l| project(child, l)) {
                    out.insert(key, value);
                }
            }
            Some(Value::Map(out))
        }
        _ => Some(Value::from_json(live)),
    }
}

fn insert_live(projection: &mut Value, live: &Json, path: &FieldPath) {
    let keys = path.keys();
    let Some(live_value) = keys.iter().try_fold(live, |node, key| node.get(key)) else {
        return;
    };
    let mut node = projection;
    for (index, key) in keys.iter().enumerate() {
        let Some(map) = node.as_map_mut() else {
            return;
        };
        if index + 1 == keys.len() {
            map.insert(key.clone(), Value::from_json(live_value));
            return;
        }
        if map.get(key).is_none() {
            map.insert(key.clone(), Value::Map(Map::new()));
        }
        let Some(next) = map.get_mut(key) else {
            return;
        };
        node = next;
    }
}

/// The unified diff (3 lines of context) from live to desired YAML.
#[must_use]
pub fn unified_diff(entry: &PlanEntry) -> String {
    let before = projected_live(entry)
        .map(|v| yaml_out::to_yaml(&v))
        .unwrap_or_default();
    let after = match &entry.apply {
        Some(request) => yaml_out::to_yaml(&Value::from_json(&request.body)),
        None => entry
            .desired
            .as_ref()
            .map(yaml_out::to_yaml)
            .unwrap_or_default(),
    };
    TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header("live", "desired")
        .to_string()
}

/// One plan reason as a JSON object (`{"type": ..., ...}`).
#[must_use]
pub fn reason_json(reason: &Reason) -> Json {
    match reason {
        Reason::ConfigShaChanged { from, to } => {
            json!({"type": "config_sha_changed", "from": from, "to": to})
        }
        Reason::GitShaChanged { from, to } => {
            json!({"type": "git_sha_changed", "from": from, "to": to})
        }
        Reason::Changed(path) => json!({"type": "changed", "path": path.to_string()}),
        Reason::Drift(path) => json!({"type": "drift", "path": path.to_string()}),
        Reason::FieldRemoved(path) => json!({"type": "field_removed", "path": path.to_string()}),
        Reason::PruneCancelled => json!({"type": "prune_cancelled"}),
        Reason::OrphanMarkCleared => json!({"type": "orphan_mark_cleared"}),
    }
}

/// The prune steps as JSON objects.
fn prunes_json(prunes: &PrunePlan) -> Json {
    let entries: Vec<Json> = prunes.entries.iter().map(PruneEntry::to_json).collect();
    json!({"entries": entries, "mass_prune_blocked": prunes.mass_prune_blocked, "held": prunes.held})
}

/// `flink-gitops/plan/v1` with the prune steps: see the README for the schema.
#[must_use]
pub fn json_with_prunes(plan: &Plan, prunes: &PrunePlan) -> String {
    let mut document = plan_document(plan);
    document["prunes"] = prunes_json(prunes);
    pretty(&document)
}

/// The prune steps for terminals.
#[must_use]
pub fn prunes_text(prunes: &PrunePlan) -> String {
    let mut out = String::new();
    for entry in &prunes.entries {
        let job = entry
            .job
            .as_ref()
            .map(|(name, state)| format!(" [Job {name}: {}]", state.name()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "- {} ({}.{}): {}: {}{job}",
            entry.orphan.subject,
            entry.orphan.service,
            entry.orphan.instance,
            entry.action.name(),
            entry.message
        );
    }
    if let Some(why) = &prunes.mass_prune_blocked {
        let _ = writeln!(out, "MassPruneBlocked: {why}");
    }
    if let Some(why) = &prunes.held {
        let _ = writeln!(out, "PruneHeld: {why}");
    }
    out
}

/// The prune steps as a markdown list.
#[must_use]
pub fn prunes_markdown(prunes: &PrunePlan) -> String {
    if prunes.entries.is_empty() && prunes.held.is_none() {
        return String::new();
    }
    let mut out = String::from("#### Prunes\n\n");
    for entry in &prunes.entries {
        let _ = writeln!(
            out,
            "- `{}` ({}.{}): **{}**: {}",
            entry.orphan.subject,
            entry.orphan.service,
            entry.orphan.instance,
            entry.action.name(),
            entry.message
        );
    }
    if let Some(why) = &prunes.mass_prune_blocked {
        let _ = writeln!(out, "\n**MassPruneBlocked**: {why}");
    }
    if let Some(why) = &prunes.held {
        let _ = writeln!(out, "\n**PruneHeld**: {why}");
    }
    out.push('\n');
    out
}

/// `flink-gitops/plan/v1` without prune steps.
#[must_use]
pub fn json(plan: &Plan) -> String {
    pretty(&plan_document(plan))
}

fn pretty(document: &Json) -> String {
    let mut text = serde_json::to_string_pretty(document).unwrap_or_default();
    text.push('\n');
    text
}

fn plan_document(plan: &Plan) -> Json {
    let entries: Vec<Json> = plan
        .entries
        .iter()
        .map(|entry| {
            let mut object = entry.to_json();
            if let Action::Update(reasons) = &entry.action {
                object["reasons"] = reasons.iter().map(reason_json).collect();
            }
            if entry.apply.is_some() {
                object["diff"] = json!(unified_diff(entry));
            }
            object
        })
        .collect();
    let orphans: Vec<Json> = plan
        .orphans
        .iter()
        .map(|o| json!({"service": o.service, "instance": o.instance, "subject": o.subject}))
        .collect();
    let mut summary: serde_json::Map<String, Json> =
        ["create", "update", "unchanged", "skip", "blocked", "failed"]
            .iter()
            .map(|name| ((*name).to_owned(), json!(0)))
            .collect();
    for (name, count) in plan.counts() {
        summary.insert(name.to_owned(), json!(count));
    }
    summary.insert("orphans".to_owned(), json!(plan.orphans.len()));
    summary.insert("unmanaged".to_owned(), json!(plan.unmanaged.len()));
    let unmanaged: Vec<Json> = plan.unmanaged.iter().map(Unmanaged::to_json).collect();
    json!({
        "schema": "flink-gitops/plan/v1",
        "cluster": plan.cluster,
        "summary": summary,
        "entries": entries,
        "orphans": orphans,
        "unmanaged": unmanaged,
    })
}

/// One line per counted action, e.g. `2 create, 1 update, 5 unchanged`.
#[must_use]
pub fn summary_line(plan: &Plan) -> String {
    let counts = plan.counts();
    let mut parts: Vec<String> = ["create", "update", "unchanged", "skip", "blocked", "failed"]
        .iter()
        .map(|name| format!("{} {name}", counts.get(name).copied().unwrap_or(0)))
        .collect();
    parts.push(format!("{} orphaned (not pruned)", plan.orphans.len()));
    if !plan.unmanaged.is_empty() {
        parts.push(format!("{} unmanaged", plan.unmanaged.len()));
    }
    parts.join(", ")
}

/// For terminals: the plan and then its prune steps, each orphan once (as
/// its prune step when it has one).
#[must_use]
pub fn text_with_prunes(plan: &Plan, prunes: &PrunePlan) -> String {
    let stepped: std::collections::HashSet<&str> = prunes
        .entries
        .iter()
        .map(|e| e.orphan.subject.as_str())
        .collect();
    text_listing(plan, |subject| !stepped.contains(subject)) + &prunes_text(prunes)
}

/// For terminals: every entry that is not unchanged, with reasons and diff.
#[must_use]
pub fn text(plan: &Plan) -> String {
    text_listing(plan, |_| true)
}

/// [`text`], listing only the orphans `list_orphan` accepts (by subject).
fn text_listing(plan: &Plan, list_orphan: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    for entry in &plan.entries {
        let marker = match entry.action {
            Action::Create => "+",
            Action::Update(_) => "~",
            Action::Unchanged => continue,
            Action::Skip(_) => "-",
            Action::Blocked(_) | Action::Failed(_) => "!",
        };
        let _ = writeln!(
            out,
            "{marker} {} ({}.{}): {}",
            entry.subject,
            entry.service,
            entry.instance,
            entry.action.name()
        );
        if let Action::Update(reasons) = &entry.action {
            for reason in reasons {
                let _ = writeln!(out, "    {reason}");
            }
        }
        if let Some(text) = entry.action.message() {
            let _ = writeln!(out, "    {text}");
        }
        if entry.apply.is_some() {
            out.push_str(&unified_diff(entry));
        }
    }
    for orphan in plan.orphans.iter().filter(|o| list_orphan(&o.subject)) {
        let _ = writeln!(
            out,
            "? {} ({}.{}): no longer in soa-configs (not pruned)",
            orphan.subject, orphan.service, orphan.instance
        );
    }
    for unmanaged in &plan.unmanaged {
        let _ = writeln!(out, "= {}: unmanaged", unmanaged.subject);
        let _ = writeln!(out, "    {}", unmanaged.message());
    }
    let _ = writeln!(out, "{}: {}", plan.cluster, summary_line(plan));
    out
}

/// A markdown report: a summary table and a collapsible diff per change.
#[must_use]
pub fn markdown(plan: &Plan) -> String {
    let counts = plan.counts();
    let count = |name: &str| counts.get(name).copied().unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(out, "### flink-gitops plan for `{}`\n", plan.cluster);
    let _ = writeln!(
        out,
        "| create | update | unchanged | skip | blocked | failed | orphaned |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} | {} |\n",
        count("create"),
        count("update"),
        count("unchanged"),
        count("skip"),
        count("blocked"),
        count("failed"),
        plan.orphans.len()
    );
    for entry in plan
        .entries
        .iter()
        .filter(|e| e.action != Action::Unchanged)
    {
        let _ = writeln!(
            out,
            "<details><summary><code>{}</code> ({}.{}): {}</summary>\n",
            entry.subject,
            entry.service,
            entry.instance,
            entry.action.name()
        );
        if let Action::Update(reasons) = &entry.action {
            for reason in reasons {
                let _ = writeln!(out, "- {reason}");
            }
            out.push('\n');
        }
        if let Some(text) = entry.action.message() {
            let _ = writeln!(out, "{text}\n");
        }
        if entry.apply.is_some() {
            let _ = writeln!(out, "```diff\n{}```\n", unified_diff(entry));
        }
        out.push_str("</details>\n\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ApplyRequest;
    use serde_json::json;

    fn entry(action: Action, live: Json, body: Json) -> PlanEntry {
        PlanEntry {
            service: "svc".into(),
            instance: "main".into(),
            subject: "Flink/ns/svc-main".into(),
            action,
            apply: Some(ApplyRequest {
                api_version: "yelp.com/v1alpha1".into(),
                kind: "Flink".into(),
                plural: "flinks".into(),
                namespace: "ns".into(),
                name: "svc-main".into(),
                body: body.clone(),
                takeover_from: vec![],
                cancel_prune: false,
                clear_orphan_mark: false,
            }),
            live: Some(live),
            desired: Some(Value::from_json(&body)),
        }
    }

    #[test]
    fn diff_shows_changed_and_removed_fields_but_not_foreign_ones() {
        let live = json!({"metadata": {"resourceVersion": "7"}, "spec": {"a": 1, "gone": 2}, "status": {"x": 1}});
        let body = json!({"spec": {"a": 3}});
        let removed = Reason::FieldRemoved(FieldPath::of(&["spec", "gone"]));
        let e = entry(Action::Update(vec![removed]), live, body);
        let diff = unified_diff(&e);
        assert!(diff.contains("-  a: 1\n"), "{diff}");
        assert!(diff.contains("+  a: 3\n"), "{diff}");
        assert!(diff.contains("-  gone: 2\n"), "{diff}");
        assert!(!diff.contains("resourceVersion"), "{diff}");
        assert!(!diff.contains("status"), "{diff}");
    }

    #[test]
    fn json_has_schema_summary_and_reasons() {
        let e = entry(
            Action::Update(vec![Reason::Drift(FieldPath::of(&["spec", "a"]))]),
            json!({"spec": {"a": 1}}),
            json!({"spec": {"a": 2}}),
        );
        let plan = Plan {
            cluster: "c1".into(),
            entries: vec![e],
            orphans: vec![],
            unmanaged: vec![],
            release_marks: vec![],
        };
        let parsed: Json = serde_json::from_str(&json(&plan)).expect("json");
        assert_eq!(parsed["schema"], "flink-gitops/plan/v1");
        assert_eq!(parsed["summary"]["update"], 1);
        assert_eq!(parsed["summary"]["create"], 0);
        assert_eq!(
            parsed["entries"][0]["reasons"][0],
            json!({"type": "drift", "path": "spec.a"})
        );
        assert!(
            parsed["entries"][0]["diff"]
                .as_str()
                .expect("diff")
                .contains("+  a: 2")
        );
    }
}
