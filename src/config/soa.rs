//! Loading one cluster's instances from a snapshot, with PaaSTA's semantics:
//! `<prefix>-<cluster>.yaml` per service, top-level `_` keys are templates,
//! autotuned defaults are deep-merged under the user's config, `service.yaml`
//! supplies `docker_registry` and defaults for `deploy_group`/`docker_url`.
//!
//! A service whose files cannot be read is [`ServiceState::Unknown`]; every
//! other service loads regardless.

use super::convert::{into_value, to_value};
use super::deployments::Deployments;
use super::parallel::map_in_order;
use super::yaml::{self, Mapping, Node, NodeValue};
use super::{ConfigSet, Diagnostic, InstanceConfig, ServiceConfig, ServiceState, Settings};
use crate::source::{ServiceFiles, Snapshot, display_path};
use crate::value::Value;
use std::collections::BTreeSet;

/// Fewer services than this per thread are not worth a thread.
const SERVICES_PER_THREAD: usize = 64;

/// Loads every service of `snapshot` (or only `only_service`) for `cluster`.
#[must_use]
pub fn load(
    snapshot: &Snapshot,
    settings: &Settings,
    cluster: &str,
    only_service: Option<&str>,
) -> ConfigSet {
    let selected: Vec<(&String, &ServiceFiles)> = snapshot
        .services
        .iter()
        .filter(|(name, _)| only_service.is_none_or(|only| only == name.as_str()))
        .collect();
    // Services load independently: a few std threads share them (see
    // `parallel`); the result does not depend on how they are split.
    let loaded = map_in_order(&selected, SERVICES_PER_THREAD, |&(name, files)| {
        (
            name.clone(),
            load_service(&snapshot.root, name, files, settings, cluster),
        )
    });
    let services = loaded.into_iter().collect();
    ConfigSet {
        cluster: cluster.to_owned(),
        services,
    }
}

/// Loads one service for `cluster` from its files; `root` is how the
/// soa-configs root is shown in paths (a [`Snapshot`]'s `root`).
#[must_use]
pub fn load_service(
    root: &str,
    service: &str,
    files: &ServiceFiles,
    settings: &Settings,
    cluster: &str,
) -> ServiceState {
    ServiceLoader {
        root,
        settings,
        cluster,
        service,
        files,
        diagnostics: Vec::new(),
    }
    .load()
}

/// Every cluster that some service has a `<prefix>-<cluster>.yaml` for.
#[must_use]
pub fn clusters_in(snapshot: &Snapshot, settings: &Settings) -> BTreeSet<String> {
    let selection = settings.file_selection();
    snapshot
        .services
        .values()
        .flat_map(|files| files.files.keys())
        .filter(|path| !path.contains('/'))
        .flat_map(|path| selection.clusters_of(path))
        .map(str::to_owned)
        .collect()
}

struct ServiceLoader<'a> {
    root: &'a str,
    settings: &'a Settings,
    cluster: &'a str,
    service: &'a str,
    files: &'a ServiceFiles,
    diagnostics: Vec<Diagnostic>,
}

/// Keys of `service.yaml` that reach an instance through PaaSTA's merge of
/// the "general" service config under the instance config.
struct ServiceDefaults {
    docker_registry: Option<String>,
    deploy_group: Option<Value>,
    docker_url: Option<Value>,
}

impl ServiceLoader<'_> {
    fn load(mut self) -> ServiceState {
        // Only what this cluster's pipeline reads may make the service
        // unknown: another cluster's instance file is none of its business.
        let refused: Vec<&crate::source::Refusal> = self
            .files
            .refused
            .iter()
            .filter(|refusal| {
                let selection = self.settings.file_selection();
                let name = refusal
                    .path
                    .strip_prefix("autotuned_defaults/")
                    .unwrap_or(&refusal.path);
                let mut clusters = selection.clusters_of(name).peekable();
                clusters.peek().is_none() || clusters.any(|c| c == self.cluster)
            })
            .collect();
        if !refused.is_empty() {
            let diagnostics = refused
                .iter()
                .map(|refusal| {
                    Diagnostic::file(
                        &self.path(&refusal.path),
                        format!("{}: refused: {}", self.service, refusal.reason),
                    )
                })
                .collect();
            return ServiceState::Unknown(diagnostics);
        }
        let defaults = self.service_yaml();
        let deployments = self.deployments_json();
        let mut instances = Vec::new();
        for kind in &self.settings.kinds {
            instances.extend(self.instances_of(&kind.file_prefix, &defaults));
        }
        if !self.diagnostics.is_empty() {
            return ServiceState::Unknown(self.diagnostics);
        }
        ServiceState::Loaded(ServiceConfig {
            name: self.service.to_owned(),
            instances,
            deployments,
            docker_registry: defaults.docker_registry,
            deployments_path: display_path(self.root, self.service, "deployments.json"),
        })
    }

    fn path(&self, file: &str) -> String {
        display_path(self.root, self.service, file)
    }

    /// Reads and parses a YAML file; `None` when absent, empty or unreadable
    /// (unreadable files add a diagnostic).
    fn yaml_file(&mut self, file: &str) -> Option<Node> {
        let bytes = self.files.files.get(file)?;
        let path = self.path(file);
        let Ok(text) = std::str::from_utf8(bytes) else {
            self.diagnostics
                .push(Diagnostic::file(&path, "the file is not valid UTF-8"));
            return None;
        };
        match yaml::load(text, &self.settings.limits) {
            Ok(node) => node,
            Err(e) => {
                self.diagnostics.push(Diagnostic::at(
                    &path,
                    e.mark.line,
                    e.mark.column,
                    format!("{}: invalid YAML: {}", self.service, e.message),
                ));
                None
            }
        }
    }

    /// The top-level mapping of a YAML file. PaaSTA treats an empty or falsy
    /// document as `{}`; anything else that is not a mapping breaks the service.
    fn top_mapping(&mut self, file: &str) -> Option<Mapping> {
        let node = self.yaml_file(file)?;
        match node.value {
            NodeValue::Map(mapping) => Some(mapping),
            NodeValue::Null | NodeValue::Bool(false) => None,
            NodeValue::Int(0) => None,
            NodeValue::Str(ref s) if s.is_empty() => None,
            other => {
                let path = self.path(file);
                self.diagnostics.push(Diagnostic::at(
                    &path,
                    node.mark.line,
                    node.mark.column,
                    format!(
                        "{}: the file must be a mapping, but it is a {}",
                        self.service,
                        other.type_name()
                    ),
                ));
                None
            }
        }
    }

    fn service_yaml(&mut self) -> ServiceDefaults {
        let mut defaults = ServiceDefaults {
            docker_registry: None,
            deploy_group: None,
            docker_url: None,
        };
        let Some(mapping) = self.top_mapping("service.yaml") else {
            return defaults;
        };
        let path = self.path("service.yaml");
        if let Some(node) = mapping.get("docker_registry") {
            match &node.value {
                NodeValue::Str(registry) => defaults.docker_registry = Some(registry.to_string()),
                other => self.diagnostics.push(Diagnostic::at(
                    &path,
                    node.mark.line,
                    node.mark.column,
                    format!(
                        "{}: docker_registry must be a string, found a {}",
                        self.service,
                        other.type_name()
                    ),
                )),
            }
        }
        for (key, slot) in [
            ("deploy_group", &mut defaults.deploy_group),
            ("docker_url", &mut defaults.docker_url),
        ] {
            if let Some(node) = mapping.get(key) {
                match to_value(node, key) {
                    Ok(value) => *slot = Some(value),
                    Err(e) => self.diagnostics.push(Diagnostic::at(
                        &path,
                        e.mark.line,
                        e.mark.column,
                        format!("{}: {e}", self.service),
                    )),
                }
            }
        }
        defaults
    }

    fn deployments_json(&mut self) -> Option<Deployments> {
        let bytes = self.files.files.get("deployments.json")?;
        let limit = self.settings.limits.max_document_bytes;
        if bytes.len() > limit {
            let path = self.path("deployments.json");
            self.diagnostics.push(Diagnostic::at(
                &path,
                1,
                1,
                format!(
                    "{}: the file is {} bytes, over {limit} bytes (limit max_document_bytes)",
                    self.service,
                    bytes.len()
                ),
            ));
            return None;
        }
        let control_prefix = format!("{}:{}.", self.service, self.cluster);
        match Deployments::parse(bytes, &control_prefix) {
            Ok(json) => Some(json),
            Err(e) => {
                let path = self.path("deployments.json");
                self.diagnostics.push(Diagnostic::at(
                    &path,
                    e.line(),
                    e.column(),
                    format!("{}: invalid JSON: {e}", self.service),
                ));
                None
            }
        }
    }

    fn instances_of(
        &mut self,
        file_prefix: &str,
        defaults: &ServiceDefaults,
    ) -> Vec<InstanceConfig> {
        let file = format!("{file_prefix}-{}.yaml", self.cluster);
        let Some(user) = self.top_mapping(&file) else {
            return Vec::new();
        };
        let autotuned_file = format!("autotuned_defaults/{file}");
        let autotuned = if self.settings.autotuned_defaults {
            self.top_mapping(&autotuned_file)
        } else {
            None
        };
        let path = self.path(&file);
        let mut instances = Vec::new();
        for (key, value) in user.into_entries() {
            let NodeValue::Str(instance) = &key.value else {
                self.diagnostics.push(Diagnostic::at(
                    &path,
                    key.mark.line,
                    key.mark.column,
                    format!(
                        "{}: instance names must be strings, found a {} key",
                        self.service,
                        key.value.type_name()
                    ),
                ));
                continue;
            };
            if instance.starts_with('_') {
                continue;
            }
            if !matches!(value.value, NodeValue::Map(_)) {
                self.diagnostics.push(Diagnostic::at(
                    &path,
                    value.mark.line,
                    value.mark.column,
                    format!(
                        "{}.{instance}: an instance must be a mapping, but it is a {}",
                        self.service,
                        value.value.type_name()
                    ),
                ));
                continue;
            }
            let merged = match autotuned.as_ref().and_then(|auto| auto.get(instance)) {
                Some(auto) if !matches!(auto.value, NodeValue::Map(_)) => {
                    let autotuned_path = self.path(&autotuned_file);
                    self.diagnostics.push(Diagnostic::at(
                        &autotuned_path,
                        auto.mark.line,
                        auto.mark.column,
                        format!(
                            "{}.{instance}: autotuned defaults must be a mapping, but they are a {}",
                            self.service,
                            auto.value.type_name()
                        ),
                    ));
                    continue;
                }
                Some(auto) => deep_merge(value, auto),
                None => value,
            };
            instances.push(self.instance(instance, file_prefix, &path, &key, merged, defaults));
        }
        instances
    }

    fn instance(
        &self,
        instance: &str,
        file_prefix: &str,
        path: &str,
        key: &Node,
        merged: Node,
        defaults: &ServiceDefaults,
    ) -> InstanceConfig {
        let field = |name: &str| -> Option<Value> {
            match &merged.value {
                NodeValue::Map(mapping) => mapping.get(name).and_then(|n| to_value(n, name).ok()),
                _ => None,
            }
        };
        let deploy_group = field("deploy_group").or_else(|| defaults.deploy_group.clone());
        let docker_url = field("docker_url").or_else(|| defaults.docker_url.clone());
        let spec = into_value(merged, "").map_err(|e| {
            let subject = format!("{}.{instance}", self.service);
            let field = if e.field.is_empty() {
                "spec".to_owned()
            } else {
                e.field.clone()
            };
            Diagnostic::at(
                path,
                e.mark.line,
                e.mark.column,
                format!("{subject}: {field}: {}", e.message),
            )
        });
        InstanceConfig {
            service: self.service.to_owned(),
            instance: instance.to_owned(),
            file_prefix: file_prefix.to_owned(),
            path: path.to_owned(),
            line: key.mark.line,
            column: key.mark.column,
            spec,
            deploy_group,
            docker_url,
        }
    }
}

/// PaaSTA's `deep_merge_dictionaries(overrides, defaults)`: override keys win;
/// where both sides are mappings, merge recursively; lists are replaced.
fn deep_merge(overrides: Node, defaults: &Node) -> Node {
    let NodeValue::Map(base) = &defaults.value else {
        return overrides;
    };
    let mark = overrides.mark;
    let over = match overrides.value {
        NodeValue::Map(over) => over,
        value => return Node { value, mark },
    };
    let mut result = base.clone();
    for (key, value) in over.into_entries() {
        let merged = match result_value(&result, &key) {
            Some(existing)
                if matches!(value.value, NodeValue::Map(_))
                    && matches!(existing.value, NodeValue::Map(_)) =>
            {
                deep_merge(value, existing)
            }
            _ => value,
        };
        result.insert(key, merged);
    }
    Node {
        value: NodeValue::Map(result),
        mark,
    }
}

fn result_value<'m>(mapping: &'m Mapping, key: &Node) -> Option<&'m Node> {
    mapping
        .iter()
        .find(|(k, _)| k.value == key.value)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::python_json::dumps;
    use std::collections::BTreeMap;

    fn snapshot(files: &[(&str, &str)]) -> Snapshot {
        let mut services: BTreeMap<String, ServiceFiles> = BTreeMap::new();
        for (path, text) in files {
            let (service, file) = path.split_once('/').expect("service/file");
            services
                .entry(service.to_owned())
                .or_default()
                .files
                .insert(file.to_owned(), text.as_bytes().to_vec());
        }
        Snapshot {
            root: "soa".into(),
            revision: None,
            services,
        }
    }

    fn settings(autotuned: bool) -> Settings {
        Settings {
            autotuned_defaults: autotuned,
            ..Settings::default()
        }
    }

    fn loaded<'a>(set: &'a ConfigSet, service: &str) -> &'a ServiceConfig {
        match &set.services[service] {
            ServiceState::Loaded(config) => config,
            ServiceState::Unknown(d) => panic!("{service} unknown: {d:?}"),
        }
    }

    fn spec_json(instance: &InstanceConfig) -> String {
        dumps(instance.spec.as_ref().expect("spec"))
    }

    #[test]
    fn templates_are_dropped_at_top_level_only() {
        let snap = snapshot(&[(
            "svc/flink-c1.yaml",
            "_base: &b {x: 1}\nmain:\n  <<: *b\n  _nested: kept\n",
        )]);
        let set = load(&snap, &settings(false), "c1", None);
        let svc = loaded(&set, "svc");
        assert_eq!(svc.instances.len(), 1);
        assert_eq!(
            spec_json(&svc.instances[0]),
            r#"{"_nested": "kept", "x": 1}"#
        );
    }

    #[test]
    fn autotuned_defaults_merge_under_user_config_when_enabled() {
        let files = [
            (
                "svc/flink-c1.yaml",
                "foo: {taskmanager: {cpus: 1}, jobmanager: {mem: 2}}\n",
            ),
            (
                "svc/autotuned_defaults/flink-c1.yaml",
                "foo: {taskmanager: {mem: 2, cpus: 9}}\nonly_auto: {x: 1}\n",
            ),
        ];
        let snap = snapshot(&files);
        let set = load(&snap, &settings(true), "c1", None);
        let svc = loaded(&set, "svc");
        assert_eq!(
            svc.instances.len(),
            1,
            "autotuned-only instances are dropped"
        );
        assert_eq!(
            spec_json(&svc.instances[0]),
            r#"{"jobmanager": {"mem": 2}, "taskmanager": {"cpus": 1, "mem": 2}}"#
        );
        let set = load(&snap, &settings(false), "c1", None);
        assert_eq!(
            spec_json(&loaded(&set, "svc").instances[0]),
            r#"{"jobmanager": {"mem": 2}, "taskmanager": {"cpus": 1}}"#
        );
    }

    #[test]
    fn a_broken_file_makes_only_its_service_unknown() {
        let snap = snapshot(&[
            ("bad/flink-c1.yaml", "main: {a: 1\n"),
            ("good/flink-c1.yaml", "main: {a: 1}\n"),
        ]);
        let set = load(&snap, &settings(false), "c1", None);
        match &set.services["bad"] {
            ServiceState::Unknown(diagnostics) => {
                let text = diagnostics[0].to_string();
                assert!(text.starts_with("soa/bad/flink-c1.yaml:"), "{text}");
            }
            ServiceState::Loaded(_) => panic!("bad must be unknown"),
        }
        assert_eq!(loaded(&set, "good").instances.len(), 1);
    }

    #[test]
    fn a_file_over_a_limit_fails_only_its_service() {
        let settings = Settings {
            limits: crate::config::yaml::Limits {
                max_scalar_bytes: 16,
                max_document_bytes: 200,
                ..Default::default()
            },
            ..Settings::default()
        };
        let long = "x".repeat(17);
        let snap = snapshot(&[
            ("long/flink-c1.yaml", &format!("main:\n  a: {long}\n")),
            ("big/flink-c1.yaml", "main: {a: 1}\n"),
            (
                "big/deployments.json",
                &format!("{{\"v2\": {{}}, \"pad\": \"{}\"}}", "x".repeat(200)),
            ),
            ("good/flink-c1.yaml", "main: {a: 1}\n"),
        ]);
        let set = load(&snap, &settings, "c1", None);
        let diagnostic = |service: &str| match &set.services[service] {
            ServiceState::Unknown(diagnostics) => diagnostics[0].to_string(),
            ServiceState::Loaded(_) => panic!("{service} must be unknown"),
        };
        let text = diagnostic("long");
        assert!(text.starts_with("soa/long/flink-c1.yaml:2:"), "{text}");
        assert!(text.contains("max_scalar_bytes"), "{text}");
        let text = diagnostic("big");
        assert!(text.starts_with("soa/big/deployments.json:1:1"), "{text}");
        assert!(text.contains("max_document_bytes"), "{text}");
        assert_eq!(loaded(&set, "good").instances.len(), 1);
    }

    #[test]
    fn non_mapping_instances_and_files_make_the_service_unknown() {
        for text in ["main: ~\n", "main: text\n", "- a\n", "1: {}\n"] {
            let snap = snapshot(&[("svc/flink-c1.yaml", text)]);
            let set = load(&snap, &settings(false), "c1", None);
            assert!(
                matches!(set.services["svc"], ServiceState::Unknown(_)),
                "{text:?} must make the service unknown"
            );
        }
    }

    #[test]
    fn a_date_fails_the_instance_not_the_service() {
        let snap = snapshot(&[(
            "svc/flink-c1.yaml",
            "good: {a: 1}\nbad:\n  start: 2024-01-01\n",
        )]);
        let set = load(&snap, &settings(false), "c1", None);
        let svc = loaded(&set, "svc");
        assert!(svc.instances[0].spec.is_ok());
        let err = svc.instances[1].spec.as_ref().expect_err("date");
        assert_eq!(err.line, Some(3));
        assert!(
            err.message.starts_with("svc.bad: start:"),
            "{}",
            err.message
        );
    }

    #[test]
    fn service_yaml_supplies_registry_and_defaults() {
        let snap = snapshot(&[
            (
                "svc/service.yaml",
                "docker_registry: r.example:443\ndeploy_group: prod.x\n",
            ),
            (
                "svc/flink-c1.yaml",
                "a: {}\nb: {deploy_group: '{cluster}.b'}\n",
            ),
        ]);
        let set = load(&snap, &settings(false), "c1", None);
        let svc = loaded(&set, "svc");
        assert_eq!(svc.docker_registry.as_deref(), Some("r.example:443"));
        assert_eq!(svc.instances[0].deploy_group, Some(Value::str("prod.x")));
        assert_eq!(
            svc.instances[1].deploy_group,
            Some(Value::str("{cluster}.b"))
        );
    }

    #[test]
    fn clusters_are_found_from_file_names() {
        let snap = snapshot(&[
            ("a/flink-c1.yaml", ""),
            ("b/flinkeks-c2.yaml", ""),
            ("b/kubernetes-c3.yaml", ""),
        ]);
        let mut settings = Settings::default();
        settings
            .kinds
            .push(super::super::KindSettings::for_prefix("flinkeks"));
        let clusters: Vec<String> = clusters_in(&snap, &settings).into_iter().collect();
        assert_eq!(clusters, ["c1", "c2"]);
    }
}
