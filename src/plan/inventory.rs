//! Pure: which configured kind each live object belongs to.
//!
//! Kinds are read one LIST per CRD and namespace, however many kinds share
//! it: PaaSTA's `flink` and `flinkeks` are both `flinks.yelp.com` in
//! `paasta-flinks`. Each listed object is claimed by exactly one kind, the
//! one of its CRD and namespace whose eks-ness matches the object's
//! `paasta.yelp.com/eks` label (PaaSTA writes `"True"` for `*eks` prefixes).
//! An object no configured kind claims is *unmanaged*: reported, never
//! pruned. The configuration guarantees at most one claimant
//! (`Settings::check`).

use super::LiveObject;
use crate::config::KindSettings;
use crate::render::meta;
use std::collections::HashSet;

/// The API group of an `apiVersion` (`yelp.com/v1alpha1` → `yelp.com`;
/// the core group is empty).
#[must_use]
pub fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(group, _)| group)
}

/// One LIST: the first configured kind of each CRD and namespace.
#[must_use]
pub fn list_targets(kinds: &[KindSettings]) -> Vec<&KindSettings> {
    let mut seen = HashSet::new();
    kinds
        .iter()
        .filter(|kind| seen.insert((kind.group.as_str(), kind.plural.as_str(), kind.namespace())))
        .collect()
}

/// Whether a live object carries PaaSTA's eks label.
fn is_eks(object: &LiveObject) -> bool {
    object.label(meta::LABEL_EKS) == Some("True")
}

/// The configured kind that owns `object`, if any.
#[must_use]
pub fn claimant<'k>(kinds: &'k [KindSettings], object: &LiveObject) -> Option<&'k KindSettings> {
    let group = group_of(&object.api_version);
    let eks = is_eks(object);
    kinds.iter().find(|kind| {
        kind.group == group
            && kind.plural == object.plural
            && kind.namespace() == object.namespace()
            && kind.is_eks() == eks
    })
}

/// The live objects of a cluster, each once, split by whether a configured
/// kind claims them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    pub managed: Vec<LiveObject>,
    pub unmanaged: Vec<LiveObject>,
}

impl Inventory {
    /// Sorts `listed` into managed and unmanaged objects; an object listed
    /// twice (same CRD, namespace and name) is kept once.
    #[must_use]
    pub fn of(kinds: &[KindSettings], listed: Vec<LiveObject>) -> Self {
        let mut inventory = Inventory::default();
        let mut seen = HashSet::new();
        for object in listed {
            let key = (
                group_of(&object.api_version).to_owned(),
                object.plural.clone(),
                object.namespace().to_owned(),
                object.name().to_owned(),
            );
            if !seen.insert(key) {
                continue;
            }
            match claimant(kinds, &object) {
                Some(_) => inventory.managed.push(object),
                None => inventory.unmanaged.push(object),
            }
        }
        inventory
    }

    /// Every object as managed: what a plan over one kind's objects sees.
    #[must_use]
    pub fn all_managed(objects: Vec<LiveObject>) -> Self {
        Inventory {
            managed: objects,
            unmanaged: Vec::new(),
        }
    }

    /// Managed objects of `cluster` (PaaSTA's labels naming it): what the
    /// mass-prune guard's fraction is taken of.
    #[must_use]
    pub fn managed_in(&self, cluster: &str) -> usize {
        self.managed
            .iter()
            .filter(|o| o.identity().is_some() && o.label(meta::LABEL_CLUSTER) == Some(cluster))
            .count()
    }

    /// Keeps only the objects `keep` accepts, on both sides.
    pub fn retain(&mut self, mut keep: impl FnMut(&LiveObject) -> bool) {
        self.managed.retain(&mut keep);
        self.unmanaged.retain(&mut keep);
    }

    /// Every object, managed first.
    pub fn iter(&self) -> impl Iterator<Item = &LiveObject> {
        self.managed.iter().chain(&self.unmanaged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listed(name: &str, eks: bool, plural: &str) -> LiveObject {
        let mut labels =
            json!({"paasta.yelp.com/service": "svc", "paasta.yelp.com/instance": name});
        if eks {
            labels["paasta.yelp.com/eks"] = json!("True");
        }
        LiveObject {
            kind: "Flink".into(),
            plural: plural.into(),
            api_version: "yelp.com/v1alpha1".into(),
            object: json!({"metadata": {"name": name, "namespace": "paasta-flinks", "labels": labels}}),
        }
    }

    fn kinds(prefixes: &[&str]) -> Vec<KindSettings> {
        prefixes
            .iter()
            .map(|p| KindSettings::for_prefix(p))
            .collect()
    }

    #[test]
    fn kinds_of_one_crd_and_namespace_are_listed_once() {
        let both = kinds(&["flink", "flinkeks"]);
        let targets: Vec<&str> = list_targets(&both)
            .iter()
            .map(|k| k.file_prefix.as_str())
            .collect();
        assert_eq!(targets, ["flink"]);
        let mut elsewhere = kinds(&["flink", "flinkeks"]);
        elsewhere[1].namespace = Some("other".into());
        assert_eq!(list_targets(&elsewhere).len(), 2);
    }

    #[test]
    fn each_object_is_claimed_by_the_kind_of_its_eks_ness() {
        let both = kinds(&["flink", "flinkeks"]);
        let plain = listed("a", false, "flinks");
        let eks = listed("b", true, "flinks");
        assert_eq!(
            claimant(&both, &plain).map(|k| k.file_prefix.as_str()),
            Some("flink")
        );
        assert_eq!(
            claimant(&both, &eks).map(|k| k.file_prefix.as_str()),
            Some("flinkeks")
        );
    }

    #[test]
    fn objects_of_a_kind_not_configured_are_unmanaged() {
        let inventory = Inventory::of(
            &kinds(&["flink"]),
            vec![
                listed("a", false, "flinks"),
                listed("b", true, "flinks"),
                listed("c", false, "others"),
            ],
        );
        let names = |objects: &[LiveObject]| -> Vec<String> {
            objects.iter().map(|o| o.name().to_owned()).collect()
        };
        assert_eq!(names(&inventory.managed), ["a"]);
        assert_eq!(names(&inventory.unmanaged), ["b", "c"]);
        let only_eks = Inventory::of(&kinds(&["flinkeks"]), vec![listed("a", false, "flinks")]);
        assert_eq!(names(&only_eks.unmanaged), ["a"]);
    }

    #[test]
    fn an_object_listed_twice_is_kept_once() {
        let inventory = Inventory::of(
            &kinds(&["flink", "flinkeks"]),
            vec![listed("a", false, "flinks"), listed("a", false, "flinks")],
        );
        assert_eq!(inventory.managed.len(), 1);
    }
}
