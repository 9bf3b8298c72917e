//! `metadata.managedFields`: one entry per (manager, operation), and how
//! `Update` operations (create, replace, merge and JSON patches) move
//! ownership.
//!
//! Follows https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management
//! and https://kubernetes.io/docs/reference/using-api/server-side-apply/#managers.

use super::fields::{self, FieldSet};
use serde_json::{Map, Value as Json, json};

/// `managedFields[].operation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "Apply",
            Self::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: Option<String>,
    pub time: Option<String>,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl Entry {
    /// `"mgr"` for an applier, `"mgr" using v at t` for an updater, as
    /// conflict messages print a manager
    /// (https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts).
    pub fn describe(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            out.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(
                " using {}",
                self.api_version.as_deref().unwrap_or_default()
            ));
            if let Some(time) = &self.time {
                out.push_str(&format!(" at {time}"));
            }
        }
        out
    }

    fn same_manager(&self, manager: &str, operation: Operation) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.is_none()
    }
}

/// All entries of one object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Managed(pub Vec<Entry>);

impl Managed {
    pub fn get(&self, manager: &str, operation: Operation) -> Option<&Entry> {
        self.0.iter().find(|e| e.same_manager(manager, operation))
    }

    /// The entry of a manager, created empty (stamped `api_version`, no
    /// time) when missing.
    pub fn entry(&mut self, manager: &str, operation: Operation, api_version: &str) -> &mut Entry {
        let index = match self
            .0
            .iter()
            .position(|e| e.same_manager(manager, operation))
        {
            Some(index) => index,
            None => {
                self.0.push(Entry {
                    manager: manager.to_owned(),
                    operation,
                    api_version: Some(api_version.to_owned()),
                    time: None,
                    subresource: None,
                    fields: FieldSet::default(),
                });
                self.0.len() - 1
            }
        };
        &mut self.0[index]
    }

    /// Union of every entry's set.
    pub fn owned_by_anyone(&self) -> FieldSet {
        self.0
            .iter()
            .fold(FieldSet::default(), |acc, e| acc.union(&e.fields))
    }

    /// Drops entries that own nothing, as the apiserver does.
    pub fn drop_empty(&mut self) {
        self.0.retain(|e| !e.fields.is_empty());
    }

    /// Sorts the entries as the apiserver sorts `managedFields`: by
    /// operation (`Apply` first), then time, then manager.
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            (a.operation, &a.time, &a.manager, &a.subresource).cmp(&(
                b.operation,
                &b.time,
                &b.manager,
                &b.subresource,
            ))
        });
    }

    /// The JSON list, in [`Self::sort`] order.
    pub fn encode(&self) -> Json {
        let mut sorted = self.clone();
        sorted.sort();
        Json::Array(
            sorted
                .0
                .iter()
                .map(|e| {
                    let mut out = Map::new();
                    out.insert("manager".into(), json!(e.manager));
                    out.insert("operation".into(), json!(e.operation.as_str()));
                    if let Some(v) = &e.api_version {
                        out.insert("apiVersion".into(), json!(v));
                    }
                    if let Some(t) = &e.time {
                        out.insert("time".into(), json!(t));
                    }
                    out.insert("fieldsType".into(), json!("FieldsV1"));
                    out.insert("fieldsV1".into(), e.fields.to_fields_v1());
                    if let Some(s) = &e.subresource {
                        out.insert("subresource".into(), json!(s));
                    }
                    Json::Object(out)
                })
                .collect(),
        )
    }

    /// Decodes a `managedFields` list; `None` when any entry is malformed
    /// (not an object, `operation` not `Apply`/`Update`, `fieldsType` not
    /// `FieldsV1`). Entries of the same manager and operation are merged.
    pub fn decode(list: &Json) -> Option<Self> {
        let mut managed = Self::default();
        for raw in list.as_array()? {
            let raw = raw.as_object()?;
            let text = |key: &str| raw.get(key).and_then(Json::as_str).map(str::to_owned);
            let operation = match raw.get("operation")?.as_str()? {
                "Apply" => Operation::Apply,
                "Update" => Operation::Update,
                _ => return None,
            };
            if raw.get("fieldsType")?.as_str()? != "FieldsV1" {
                return None;
            }
            let entry = Entry {
                manager: text("manager").unwrap_or_default(),
                operation,
                api_version: text("apiVersion"),
                time: text("time"),
                subresource: text("subresource"),
                fields: raw
                    .get("fieldsV1")
                    .map(FieldSet::from_fields_v1)
                    .unwrap_or_default(),
            };
            match managed.0.iter_mut().find(|e| {
                e.manager == entry.manager
                    && e.operation == entry.operation
                    && e.subresource == entry.subresource
            }) {
                Some(existing) => existing.fields = existing.fields.union(&entry.fields),
                None => managed.0.push(entry),
            }
        }
        Some(managed)
    }
}

/// The entries a non-apply write starts from, as the apiserver decides them
/// ("decodeLiveOrNew"): a request that carries `metadata.managedFields`
/// replaces the entries verbatim (how ownership is migrated); a list of only
/// empty entries (`[{}]`) clears them; an absent or empty list, or one that
/// does not decode, keeps the live entries so clients unaware of the field
/// cannot drop it. See
/// https://kubernetes.io/docs/reference/using-api/server-side-apply/#clearing-managedfields
/// and https://kubernetes.io/docs/reference/using-api/server-side-apply/#transferring-ownership.
pub fn from_request_or_live(request: Option<&Json>, live: &Managed) -> Managed {
    let Some(list) = request.and_then(Json::as_array) else {
        return live.clone();
    };
    if list.is_empty() {
        return live.clone();
    }
    if list
        .iter()
        .all(|e| e.as_object().is_some_and(Map::is_empty))
    {
        return Managed::default();
    }
    Managed::decode(&Json::Array(list.clone())).unwrap_or_else(|| live.clone())
}

/// Records an `Update` operation by `manager` that turned `old` into `new`:
/// the fields it set or changed become its own and leave every other entry;
/// removed fields leave every entry. The manager's entry gets a fresh time
/// when the object changed. See
/// https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management
/// ("whenever a field's value does change, ownership moves from its current
/// manager to the manager making the change").
pub fn record_update(
    managed: &mut Managed,
    old: &Json,
    new: &Json,
    manager: &str,
    api_version: &str,
    now: &str,
) {
    let cmp = fields::compare(old, new);
    if cmp.is_same() {
        return;
    }
    let changed = cmp.changed();
    for entry in &mut managed.0 {
        entry.fields = entry.fields.difference(&changed).difference(&cmp.removed);
    }
    let entry = managed.entry(manager, Operation::Update, api_version);
    entry.fields = entry.fields.union(&changed);
    entry.time = Some(now.to_owned());
    entry.api_version = Some(api_version.to_owned());
    managed.drop_empty();
}
