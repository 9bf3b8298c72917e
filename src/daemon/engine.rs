//! The incremental core of the daemon: per-service caches of what
//! `config::load` and `render::render` produced, so that a commit touching
//! one service re-renders that service only. Pure and synchronous.

use crate::config::{self, ConfigSet, Settings};
use crate::render::{self, DesiredSet};
use crate::source::Snapshot;
use std::collections::{BTreeMap, BTreeSet};

/// What the engine did, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineCounters {
    /// Services loaded and rendered since the engine started.
    pub services_rendered: u64,
    /// Updates applied.
    pub updates: u64,
}

/// The rendered state of every service, kept between cycles.
pub struct Engine {
    settings: Settings,
    cluster: String,
    services: BTreeMap<String, DesiredSet>,
    counters: EngineCounters,
}

impl Engine {
    #[must_use]
    pub fn new(settings: Settings, cluster: String) -> Self {
        Engine {
            settings,
            cluster,
            services: BTreeMap::new(),
            counters: EngineCounters::default(),
        }
    }

    #[must_use]
    pub fn counters(&self) -> EngineCounters {
        self.counters
    }

    /// Takes a new snapshot in. `changed` names the services whose files
    /// changed (`None`: everything may have). Returns the services whose
    /// rendering was redone or dropped.
    pub fn update(
        &mut self,
        snapshot: &Snapshot,
        changed: Option<&BTreeSet<String>>,
    ) -> BTreeSet<String> {
        self.counters.updates += 1;
        let mut touched: BTreeSet<String> = BTreeSet::new();
        let gone: Vec<String> = self
            .services
            .keys()
            .filter(|name| !snapshot.services.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            self.services.remove(&name);
            touched.insert(name);
        }
        let to_render: Vec<&String> = snapshot
            .services
            .keys()
            .filter(|name| {
                changed.is_none_or(|c| c.contains(*name)) || !self.services.contains_key(*name)
            })
            .collect();
        for name in to_render {
            let config_set = config::load(snapshot, &self.settings, &self.cluster, Some(name));
            let desired = render::render(&config_set, &self.settings, None);
            self.services.insert(name.clone(), desired);
            self.counters.services_rendered += 1;
            touched.insert(name.clone());
        }
        touched
    }

    /// The desired state of the given services (all when `None`). Two
    /// services that render one object both fail, even when only one of
    /// them is asked for.
    #[must_use]
    pub fn desired(&self, only: Option<&BTreeSet<String>>) -> DesiredSet {
        if only.is_none() || !self.services_collide() {
            return self.merged(only);
        }
        let mut all = self.merged(None);
        render::reject_collisions(&mut all);
        if let Some(only) = only {
            all.resources.retain(|r| only.contains(&r.service));
            all.skipped.retain(|s| only.contains(&s.service));
            all.failed.retain(|f| only.contains(&f.service));
            all.unknown_services.retain(|name, _| only.contains(name));
        }
        all
    }

    /// Whether two services render an object of the same kind, namespace
    /// and name (each service's own collisions were settled when it was
    /// rendered).
    fn services_collide(&self) -> bool {
        let mut seen = std::collections::HashSet::new();
        self.services.values().any(|desired| {
            desired
                .resources
                .iter()
                .any(|r| !seen.insert((r.kind.as_str(), r.namespace.as_str(), r.name.as_str())))
        })
    }

    fn merged(&self, only: Option<&BTreeSet<String>>) -> DesiredSet {
        let mut out = DesiredSet {
            cluster: self.cluster.clone(),
            ..DesiredSet::default()
        };
        for (name, desired) in &self.services {
            if only.is_some_and(|o| !o.contains(name)) {
                continue;
            }
            out.resources.extend(desired.resources.iter().cloned());
            out.skipped.extend(desired.skipped.iter().cloned());
            out.failed.extend(desired.failed.iter().cloned());
            out.unknown_services.extend(
                desired
                    .unknown_services
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        out.resources
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        if only.is_none() {
            render::reject_collisions(&mut out);
        }
        out
    }

    /// True when at least one service loaded: an empty or wholly broken tree
    /// is never a reason to prune.
    #[must_use]
    pub fn has_loaded_services(&self) -> bool {
        self.services
            .values()
            .any(|d| d.unknown_services.is_empty())
    }

    /// What every service wants, for holding back the orphans of a plan of
    /// some services.
    #[must_use]
    pub fn wanted(&self) -> crate::plan::wanted::WantedNames<'_> {
        let mut wanted = crate::plan::wanted::WantedNames::default();
        for desired in self.services.values() {
            wanted.add(desired);
        }
        wanted
    }

    /// How many services the engine knows.
    #[must_use]
    pub fn service_count(&self) -> usize {
        self.services.len()
    }
}

/// The services whose files differ between two snapshots (added, removed or
/// changed), for sources that cannot diff themselves (a directory).
#[must_use]
pub fn changed_services(old: &Snapshot, new: &Snapshot) -> BTreeSet<String> {
    let mut changed: BTreeSet<String> = old
        .services
        .keys()
        .filter(|name| !new.services.contains_key(*name))
        .cloned()
        .collect();
    for (name, files) in &new.services {
        if old.services.get(name) != Some(files) {
            changed.insert(name.clone());
        }
    }
    changed
}

/// The whole desired state rendered in one go (what `render` does), for
/// comparison in tests.
#[must_use]
pub fn render_all(snapshot: &Snapshot, settings: &Settings, cluster: &str) -> DesiredSet {
    let config_set: ConfigSet = config::load(snapshot, settings, cluster, None);
    render::render(&config_set, settings, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ServiceFiles;

    fn snapshot(services: &[(&str, &str)]) -> Snapshot {
        let mut snapshot = Snapshot {
            root: "soa".into(),
            ..Snapshot::default()
        };
        for (name, instances) in services {
            let mut files = ServiceFiles::default();
            files
                .files
                .insert("flink-c1.yaml".into(), instances.as_bytes().to_vec());
            let deployments = format!(
                r#"{{"v2": {{"deployments": {{"c1.main": {{"docker_image": "services-{name}:paasta-abc", "git_sha": "abc"}}}}, "controls": {{"{name}:c1.main": {{}}}}}}}}"#
            );
            files
                .files
                .insert("deployments.json".into(), deployments.into_bytes());
            snapshot.services.insert((*name).to_owned(), files);
        }
        snapshot
    }

    fn settings() -> Settings {
        Settings {
            docker_registry: Some("r:443".into()),
            ..Settings::default()
        }
    }

    #[test]
    fn one_changed_service_is_the_only_one_rendered_and_the_result_is_whole() {
        let mut engine = Engine::new(settings(), "c1".into());
        let first = snapshot(&[
            ("a", "main: {x: 1}\n"),
            ("b", "main: {x: 2}\n"),
            ("c", "main: {x: 3}\n"),
        ]);
        engine.update(&first, None);
        assert_eq!(engine.counters().services_rendered, 3);

        let second = snapshot(&[
            ("a", "main: {x: 1}\n"),
            ("b", "main: {x: 20}\n"),
            ("c", "main: {x: 3}\n"),
        ]);
        let changed = changed_services(&first, &second);
        assert_eq!(changed, BTreeSet::from(["b".to_owned()]));
        let touched = engine.update(&second, Some(&changed));
        assert_eq!(touched, changed);
        assert_eq!(
            engine.counters().services_rendered,
            4,
            "only b was rendered again"
        );
        assert_eq!(engine.desired(None), render_all(&second, &settings(), "c1"));
    }

    #[test]
    fn removed_services_are_dropped_and_reported() {
        let mut engine = Engine::new(settings(), "c1".into());
        let first = snapshot(&[("a", "main: {}\n"), ("b", "main: {}\n")]);
        engine.update(&first, None);
        let second = snapshot(&[("a", "main: {}\n")]);
        let changed = changed_services(&first, &second);
        let touched = engine.update(&second, Some(&changed));
        assert_eq!(touched, BTreeSet::from(["b".to_owned()]));
        assert_eq!(engine.service_count(), 1);
        assert_eq!(engine.desired(None).resources.len(), 1);
    }

    #[test]
    fn two_services_rendering_one_object_both_fail_even_when_one_is_asked_for() {
        let mut engine = Engine::new(settings(), "c1".into());
        // `a_b` and `a--b` both sanitise to `a--b`: the object `a--b-main`.
        engine.update(
            &snapshot(&[
                ("a_b", "main: {}\n"),
                ("a--b", "main: {}\n"),
                ("c", "main: {}\n"),
            ]),
            None,
        );
        let only = BTreeSet::from(["a_b".to_owned()]);
        for desired in [engine.desired(None), engine.desired(Some(&only))] {
            assert!(
                desired.resources.iter().all(|r| r.service == "c"),
                "{:?}",
                desired.resources
            );
            assert!(desired.failed.iter().any(|f| f.service == "a_b"));
        }
        assert_eq!(engine.desired(None).failed.len(), 2);
    }

    #[test]
    fn desired_for_a_subset() {
        let mut engine = Engine::new(settings(), "c1".into());
        engine.update(&snapshot(&[("a", "main: {}\n"), ("b", "main: {}\n")]), None);
        let only = BTreeSet::from(["b".to_owned()]);
        let desired = engine.desired(Some(&only));
        assert_eq!(desired.resources.len(), 1);
        assert_eq!(desired.resources[0].service, "b");
    }
}
