//! Server-side apply: merge, prune, conflicts, ownership.
//!
//! Follows https://kubernetes.io/docs/reference/using-api/server-side-apply/
//! for a schemaless custom resource (maps merge per key, lists are atomic).
//! The order of steps is structured-merge-diff's `Updater.Apply`: merge the
//! configuration into the live object, make the applier own exactly the
//! applied fields, prune what it stopped applying, then look for conflicts
//! between the live and the resulting object.

use super::fields::{self, FieldSet, path_string};
use super::managed::{Managed, Operation};
use super::status::ApiError;
use serde_json::{Value as Json, json};

/// Merges an applied configuration into an object: maps merge per key,
/// recursively; lists and scalars are replaced
/// (https://kubernetes.io/docs/reference/using-api/server-side-apply/#merge-strategy:
/// without a schema every list is `atomic` and every map `granular`).
pub fn merge(live: &mut Json, config: &Json) {
    match (live, config) {
        (Json::Object(live), Json::Object(config)) => {
            for (key, value) in config {
                match live.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value);
                    }
                    _ => {
                        live.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (live, config) => *live = config.clone(),
    }
}

/// Applies `config` as `manager` to `live` (`None`: the object does not
/// exist yet) and returns the new object and entries.
///
/// - The applied field set F is every map key and leaf in `config`.
/// - Fields the manager applied last time but not now are removed unless
///   another entry owns them or something below them
///   (https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management:
///   "If you remove a field from a manifest and apply that manifest,
///   Server-Side Apply checks if there are any other field managers that also
///   own the field. If the field is not owned by any other field managers, it
///   is either deleted from the live object...").
/// - A field owned by another entry whose value this apply changes is a
///   conflict (409) unless `force`, which moves the field to the applier;
///   an unchanged value is shared
///   (https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts).
///   "Another entry" includes the same manager's own `Update` entry, as in
///   the apiserver, which keys entries by manager *and* operation.
pub fn apply(
    live: Option<(&Json, &Managed)>,
    config: &Json,
    manager: &str,
    api_version: &str,
    force: bool,
    now: &str,
) -> Result<(Json, Managed), ApiError> {
    let empty = json!({});
    let (live_obj, mut managed) = match live {
        Some((obj, managed)) => (obj, managed.clone()),
        None => (&empty, Managed::default()),
    };
    let applied = FieldSet::of_value(config);
    let mut merged = live_obj.clone();
    merge(&mut merged, config);

    let last = managed
        .get(manager, Operation::Apply)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let had_entry = managed.get(manager, Operation::Apply).is_some();
    managed.entry(manager, Operation::Apply, api_version).fields = applied.clone();

    // Prune what this manager stopped applying.
    let owned = managed.owned_by_anyone();
    for path in last.difference(&applied).iter() {
        if !owned.contains(path) && !owned.has_descendant(path) {
            fields::remove(&mut merged, path);
        }
    }

    // Conflicts and ownership changes against every other entry.
    let cmp = fields::compare(live_obj, &merged);
    let changed = cmp.changed();
    let mut conflicts: Vec<(String, String)> = Vec::new();
    for entry in &managed.0 {
        if entry.manager == manager && entry.operation == Operation::Apply {
            continue;
        }
        for path in entry.fields.intersection(&changed).iter() {
            conflicts.push((entry.describe(), path_string(path)));
        }
    }
    if !conflicts.is_empty() && !force {
        conflicts.sort();
        return Err(conflict_error(&conflicts));
    }
    for entry in &mut managed.0 {
        if entry.manager == manager && entry.operation == Operation::Apply {
            continue;
        }
        entry.fields = entry.fields.difference(&changed).difference(&cmp.removed);
    }
    let object_changed = merged != *live_obj;
    let entry = managed.entry(manager, Operation::Apply, api_version);
    if object_changed || !had_entry {
        entry.time = Some(now.to_owned());
    }
    managed.drop_empty();
    Ok((merged, managed))
}

/// The 409 an apply answers on conflicts, worded like the apiserver's:
/// `Apply failed with 1 conflict: conflict with "mgr" using v at t: .spec.x`
/// or, for several, one `conflicts with "mgr":` block per manager
/// (https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts).
/// Each conflict is also a `FieldManagerConflict` cause.
fn conflict_error(conflicts: &[(String, String)]) -> ApiError {
    let message = if let [(manager, field)] = conflicts {
        format!("Apply failed with 1 conflict: conflict with {manager}: {field}")
    } else {
        let mut lines = Vec::new();
        let mut current: Option<&str> = None;
        for (manager, field) in conflicts {
            if current != Some(manager) {
                lines.push(format!("conflicts with {manager}:"));
                current = Some(manager);
            }
            lines.push(format!("- {field}"));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    let causes: Vec<Json> = conflicts
        .iter()
        .map(|(manager, field)| {
            json!({
                "type": "FieldManagerConflict",
                "message": format!("conflict with {manager}"),
                "field": field,
            })
        })
        .collect();
    ApiError::new(409, message).details(json!({ "causes": causes }))
}
