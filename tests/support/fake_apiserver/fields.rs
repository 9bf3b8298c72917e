//! Field sets: which fields of an object a manager owns, and the `fieldsV1`
//! trie that encodes them.
//!
//! Follows https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management
//! and the `FieldsV1` encoding in
//! https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/#System
//! (`managedFields.fieldsV1`): a map key is `f:<name>`, and `.` marks a map
//! node that is itself a member of the set. A `Flink` is schemaless
//! (`x-kubernetes-preserve-unknown-fields`), so every list is atomic: the
//! whole list is one leaf (`f:jobs: {}`), never `k:`/`v:`/`i:` entries.

use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};

/// A path of `fieldsV1` keys, e.g. `["f:spec", "f:replicas"]`. Keys other
/// than `f:` (list item keys from a foreign entry) are kept verbatim so an
/// entry written through a JSON patch survives a round trip.
pub type FieldPath = Vec<String>;

/// A set of field paths. As in structured-merge-diff, every node of the
/// object below the root is a member: map nodes as well as leaves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<FieldPath>);

/// Metadata the apiserver never tracks in `managedFields`: the
/// `stripMeta` set of the field manager
/// (https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management:
/// "apiVersion, kind, metadata.name, ... are not tracked").
const UNTRACKED_METADATA: [&str; 10] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Whether a path is never tracked: `apiVersion`, `kind`, the `metadata`
/// node itself, server-owned metadata, and `status` (a subresource, reset on
/// writes to the main resource:
/// https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#status-subresource).
pub fn untracked(path: &[String]) -> bool {
    match path {
        [] => true,
        [first, ..] if first == "f:status" => true,
        [only] => only == "f:apiVersion" || only == "f:kind" || only == "f:metadata",
        [first, second, ..] if first == "f:metadata" => second
            .strip_prefix("f:")
            .is_some_and(|key| UNTRACKED_METADATA.contains(&key)),
        _ => false,
    }
}

/// `.spec.replicas`: how conflict messages print a path.
pub fn path_string(path: &[String]) -> String {
    path.iter()
        .map(|key| match key.strip_prefix("f:") {
            Some(name) => format!(".{name}"),
            None => format!("[{key}]"),
        })
        .collect()
}

/// The value at a path, following `f:` keys through maps.
pub fn get<'a>(value: &'a Json, path: &[String]) -> Option<&'a Json> {
    path.iter().try_fold(value, |node, key| {
        node.as_object()?.get(key.strip_prefix("f:")?)
    })
}

/// Removes the value at a path (with everything below it).
pub fn remove(value: &mut Json, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = value;
    for key in parents {
        let Some(next) = key
            .strip_prefix("f:")
            .and_then(|name| node.as_object_mut()?.get_mut(name))
        else {
            return;
        };
        node = next;
    }
    if let (Some(name), Some(map)) = (last.strip_prefix("f:"), node.as_object_mut()) {
        map.remove(name);
    }
}

fn collect(value: &Json, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    if let Some(map) = value.as_object() {
        for (key, child) in map {
            prefix.push(format!("f:{key}"));
            out.insert(prefix.clone());
            collect(child, prefix, out);
            prefix.pop();
        }
    }
}

impl FieldSet {
    /// Every tracked field of an object (or an applied configuration): each
    /// map key at any depth, lists and scalars as leaves.
    pub fn of_value(value: &Json) -> Self {
        let mut out = BTreeSet::new();
        collect(value, &mut Vec::new(), &mut out);
        out.retain(|path| !untracked(path));
        Self(out)
    }

    /// Builds a set from paths.
    pub fn from_paths(paths: impl IntoIterator<Item = FieldPath>) -> Self {
        Self(paths.into_iter().collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, path: &[String]) -> bool {
        self.0.contains(path)
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldPath> {
        self.0.iter()
    }

    pub fn insert(&mut self, path: FieldPath) {
        self.0.insert(path);
    }

    /// Whether some member lies strictly below `path`.
    pub fn has_descendant(&self, path: &[String]) -> bool {
        self.0
            .range(path.to_vec()..)
            .take_while(|p| p.starts_with(path))
            .any(|p| p.len() > path.len())
    }

    #[must_use]
    pub fn union(&self, other: &Self) -> Self {
        Self(self.0.union(&other.0).cloned().collect())
    }

    #[must_use]
    pub fn difference(&self, other: &Self) -> Self {
        Self(self.0.difference(&other.0).cloned().collect())
    }

    #[must_use]
    pub fn intersection(&self, other: &Self) -> Self {
        Self(self.0.intersection(&other.0).cloned().collect())
    }

    /// Decodes a `fieldsV1` trie. A node with no children is a member, and
    /// so is a node holding `.`.
    pub fn from_fields_v1(trie: &Json) -> Self {
        fn walk(node: &Json, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
            let Some(map) = node.as_object() else {
                return;
            };
            for (key, child) in map {
                if key == "." {
                    if !prefix.is_empty() {
                        out.insert(prefix.clone());
                    }
                    continue;
                }
                prefix.push(key.clone());
                if child.as_object().is_none_or(Map::is_empty) {
                    out.insert(prefix.clone());
                } else {
                    walk(child, prefix, out);
                }
                prefix.pop();
            }
        }
        let mut out = BTreeSet::new();
        walk(trie, &mut Vec::new(), &mut out);
        Self(out)
    }

    /// Encodes the set as a `fieldsV1` trie.
    pub fn to_fields_v1(&self) -> Json {
        #[derive(Default)]
        struct Node {
            member: bool,
            children: BTreeMap<String, Node>,
        }
        fn render(node: &Node) -> Json {
            let mut map = Map::new();
            if node.member && !node.children.is_empty() {
                map.insert(".".to_owned(), Json::Object(Map::new()));
            }
            for (key, child) in &node.children {
                map.insert(key.clone(), render(child));
            }
            Json::Object(map)
        }
        let mut root = Node::default();
        for path in &self.0 {
            let mut node = &mut root;
            for key in path {
                node = node.children.entry(key.clone()).or_default();
            }
            node.member = true;
        }
        render(&root)
    }
}

/// How an object changed, as structured-merge-diff's `Comparison`:
/// leaves (or map nodes that changed type) whose value differs are
/// `modified`; fields present only in the new object are `added` (with
/// everything below them), fields only in the old one `removed`. Map nodes
/// present in both are never `modified` themselves.
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    pub fn is_same(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }

    /// `modified ∪ added`: the fields a write set.
    pub fn changed(&self) -> FieldSet {
        self.modified.union(&self.added)
    }
}

/// Compares two objects over tracked fields.
pub fn compare(old: &Json, new: &Json) -> Comparison {
    fn subtree(value: &Json, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        out.insert(prefix.clone());
        collect(value, prefix, out);
    }
    fn walk(
        old: &Map<String, Json>,
        new: &Map<String, Json>,
        prefix: &mut FieldPath,
        cmp: &mut (
            BTreeSet<FieldPath>,
            BTreeSet<FieldPath>,
            BTreeSet<FieldPath>,
        ),
    ) {
        let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        for key in keys {
            prefix.push(format!("f:{key}"));
            match (old.get(key), new.get(key)) {
                (None, Some(n)) => subtree(n, prefix, &mut cmp.0),
                (Some(o), None) => subtree(o, prefix, &mut cmp.2),
                (Some(Json::Object(o)), Some(Json::Object(n))) => walk(o, n, prefix, cmp),
                (Some(o), Some(n)) => {
                    if o != n {
                        cmp.1.insert(prefix.clone());
                        let depth = prefix.len();
                        if o.is_object() {
                            collect(o, prefix, &mut cmp.2);
                        }
                        if n.is_object() {
                            collect(n, prefix, &mut cmp.0);
                        }
                        debug_assert_eq!(depth, prefix.len());
                    }
                }
                (None, None) => {}
            }
            prefix.pop();
        }
    }
    let empty = Map::new();
    let mut cmp = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    walk(
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
        &mut Vec::new(),
        &mut cmp,
    );
    let keep = |mut set: BTreeSet<FieldPath>| {
        set.retain(|path| !untracked(path));
        FieldSet(set)
    };
    Comparison {
        added: keep(cmp.0),
        modified: keep(cmp.1),
        removed: keep(cmp.2),
    }
}
