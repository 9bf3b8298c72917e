//! The reconciler's own configuration, `flink-gitops.yaml`.
//!
//! The keys mean what the PaaSTA system-config keys of the same name mean
//! (`docker_registry`, `dashboard_links`, `cr_owners`,
//! `kubernetes_custom_resources`, `auto_config_instance_types_enabled`), so a
//! platform team can translate its `/etc/paasta` one to one. Every key has a
//! default; an unknown key or a wrong type is an error naming the key.

use super::convert::to_value;
use super::yaml::{self, Limits, Mark, Node, NodeValue};
use serde::Deserialize;
use std::collections::BTreeMap;

/// `flink-gitops.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The Kubernetes cluster this reconciler manages, as named in
    /// soa-configs file names (`flink-<cluster>.yaml`). `--cluster` overrides it.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Registry prepended to `deployments.json` images when a service's
    /// `service.yaml` has no `docker_registry`.
    #[serde(default)]
    pub docker_registry: Option<String>,
    /// `{cluster: {Flink: url}}`: the `paasta.yelp.com/dashboard_base_url`
    /// annotation; default `http://flink.eks.<cluster>.paasta:31080/`.
    #[serde(default)]
    pub dashboard_links: BTreeMap<String, BTreeMap<String, String>>,
    /// `{<lowercase kind>: owner}`: adds the `yelp.com/owner` label.
    #[serde(default)]
    pub cr_owners: BTreeMap<String, String>,
    /// Deep-merge `<service>/autotuned_defaults/<prefix>-<cluster>.yaml` under
    /// each instance (PaaSTA's `auto_config_instance_types_enabled`).
    #[serde(default)]
    pub autotuned_defaults: bool,
    /// The custom-resource kinds to manage, one per instance file prefix.
    #[serde(default = "default_kinds")]
    pub kinds: Vec<KindSettings>,
    /// How changes are written to the cluster.
    #[serde(default)]
    pub apply: ApplySettings,
    /// How clusters removed from soa-configs are stopped and deleted.
    #[serde(default)]
    pub prune: PruneSettings,
    /// Where the daemon reads soa-configs from.
    #[serde(default)]
    pub source: super::daemon_settings::SourceSettings,
    /// The daemon's HTTP endpoints.
    #[serde(default)]
    pub server: super::daemon_settings::ServerSettings,
    /// The daemon's push-hook receiver.
    #[serde(default)]
    pub hooks: super::daemon_settings::HookSettings,
    /// The daemon's leader election.
    #[serde(default)]
    pub leader_election: super::daemon_settings::LeaderSettings,
    /// Where deployment events are delivered.
    #[serde(default)]
    pub notifications: super::report_settings::NotificationSettings,
    /// Bounds on what one soa-configs file may make the loader do.
    #[serde(default)]
    pub limits: Limits,
    /// How long the daemon lets the cycle in flight end after a shutdown
    /// request (it writes nothing more meanwhile) before abandoning it and
    /// releasing its Lease. Keep it under the pod's grace period.
    #[serde(
        default = "default_shutdown_timeout",
        deserialize_with = "super::daemon_settings::duration"
    )]
    pub shutdown_timeout: std::time::Duration,
}

fn default_shutdown_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(30)
}

/// What pruning does with a cluster whose instance left soa-configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PruneMode {
    /// Signal stop, run the shutdown Job (savepoints), delete after it succeeds.
    ShutdownJob,
    /// Only signal stop through the annotations; the operator does the rest.
    AnnotateOnly,
    /// Delete at once, as PaaSTA's cleanup_kubernetes_cr does (opt-in).
    Delete,
    /// Never prune.
    Off,
}

/// The `prune` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneSettings {
    #[serde(default = "default_prune_mode")]
    pub mode: PruneMode,
    /// How long an object must be seen orphaned, continuously, before its
    /// first prune step (`0s`: at once). Covers a bad commit reverted within
    /// minutes and a file caught half-written.
    #[serde(
        default = "default_prune_grace",
        deserialize_with = "super::daemon_settings::duration"
    )]
    pub grace: std::time::Duration,
    /// How long a shutdown Job may run before the prune is reported timed
    /// out (the resource is kept), e.g. `30m`.
    #[serde(
        default = "default_prune_timeout",
        deserialize_with = "super::daemon_settings::duration"
    )]
    pub timeout: std::time::Duration,
    /// At most this many new prunes per cycle; above it nothing new is pruned.
    #[serde(default = "default_max_per_cycle")]
    pub max_per_cycle: usize,
    /// At most this fraction of the managed objects may be pruned at once.
    #[serde(default = "default_max_fraction")]
    pub max_fraction: f64,
    /// Delete a failed shutdown Job and run it again (default: keep the
    /// resource and report PruneFailed until someone acts).
    #[serde(default)]
    pub retry_failed: bool,
    /// A batch/v1 Job manifest used for shutdown Jobs; default:
    /// `deploy/prune/shutdown-job.yaml`, built in.
    #[serde(default)]
    pub job_template: Option<serde_json::Value>,
}

fn default_prune_mode() -> PruneMode {
    PruneMode::ShutdownJob
}
fn default_prune_grace() -> std::time::Duration {
    std::time::Duration::from_secs(2 * 60)
}
fn default_prune_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(30 * 60)
}
fn default_max_per_cycle() -> usize {
    10
}
fn default_max_fraction() -> f64 {
    0.25
}

impl Default for PruneSettings {
    fn default() -> Self {
        PruneSettings {
            mode: default_prune_mode(),
            grace: default_prune_grace(),
            timeout: default_prune_timeout(),
            max_per_cycle: default_max_per_cycle(),
            max_fraction: default_max_fraction(),
            retry_failed: false,
            job_template: None,
        }
    }
}

/// The `apply` section: how changes are written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplySettings {
    /// Our server-side-apply field manager.
    #[serde(default = "default_field_manager")]
    pub field_manager: String,
    /// Managers whose `Update` ownership moves to us on our first write to an
    /// object (PaaSTA's Python client appears as `OpenAPI-Generator`).
    #[serde(default = "crate::plan::default_takeover_managers")]
    pub takeover_managers: Vec<String>,
    /// Writes in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Create a missing namespace with PaaSTA's labels before creating in it.
    #[serde(default)]
    pub create_namespaces: bool,
    /// Attempts per request on 429, 5xx and network errors, the first included.
    #[serde(default = "default_retry_attempts")]
    pub retry_attempts: u32,
    /// How long one API request may wait for its response before it counts
    /// as a network error (and is retried), e.g. `30s`.
    #[serde(
        default = "default_request_timeout",
        deserialize_with = "super::daemon_settings::duration"
    )]
    pub request_timeout: std::time::Duration,
}

fn default_field_manager() -> String {
    "flink-gitops".to_owned()
}
fn default_concurrency() -> usize {
    8
}
fn default_retry_attempts() -> u32 {
    5
}
fn default_request_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(30)
}

impl Default for ApplySettings {
    fn default() -> Self {
        ApplySettings {
            field_manager: default_field_manager(),
            takeover_managers: crate::plan::default_takeover_managers(),
            concurrency: default_concurrency(),
            create_namespaces: false,
            retry_attempts: default_retry_attempts(),
            request_timeout: default_request_timeout(),
        }
    }
}

/// One managed custom-resource kind (PaaSTA's `kubernetes_custom_resources` entry).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindSettings {
    /// Instance files are `<file_prefix>-<cluster>.yaml`. A prefix ending in
    /// `eks` adds the `paasta.yelp.com/eks: "True"` label.
    pub file_prefix: String,
    #[serde(default = "default_group")]
    pub group: String,
    #[serde(default = "default_version")]
    pub version: String,
    /// Must equal the CRD's `spec.names.kind` (case-sensitive).
    #[serde(default = "default_kind")]
    pub kind: String,
    #[serde(default = "default_plural")]
    pub plural: String,
    /// Defaults to `paasta-<plural>`, as PaaSTA hard-codes it.
    #[serde(default)]
    pub namespace: Option<String>,
}

fn default_kinds() -> Vec<KindSettings> {
    vec![KindSettings::for_prefix("flink")]
}
fn default_group() -> String {
    "yelp.com".to_owned()
}
fn default_version() -> String {
    "v1alpha1".to_owned()
}
fn default_kind() -> String {
    "Flink".to_owned()
}
fn default_plural() -> String {
    "flinks".to_owned()
}

impl KindSettings {
    /// The PaaSTA defaults for a file prefix.
    #[must_use]
    pub fn for_prefix(file_prefix: &str) -> Self {
        KindSettings {
            file_prefix: file_prefix.to_owned(),
            group: default_group(),
            version: default_version(),
            kind: default_kind(),
            plural: default_plural(),
            namespace: None,
        }
    }

    /// `<group>/<version>`.
    #[must_use]
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }

    /// The namespace resources of this kind live in.
    #[must_use]
    pub fn namespace(&self) -> String {
        self.namespace
            .clone()
            .unwrap_or_else(|| format!("paasta-{}", self.plural))
    }

    /// The CRD this kind's objects are of: `(group, plural)`.
    #[must_use]
    pub fn crd(&self) -> (&str, &str) {
        (&self.group, &self.plural)
    }

    /// PaaSTA's `is_eks`: the prefix ends in `eks`.
    #[must_use]
    pub fn is_eks(&self) -> bool {
        self.file_prefix.ends_with("eks")
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            cluster: None,
            docker_registry: None,
            dashboard_links: BTreeMap::new(),
            cr_owners: BTreeMap::new(),
            autotuned_defaults: false,
            kinds: default_kinds(),
            apply: ApplySettings::default(),
            prune: PruneSettings::default(),
            source: super::daemon_settings::SourceSettings::default(),
            server: super::daemon_settings::ServerSettings::default(),
            hooks: super::daemon_settings::HookSettings::default(),
            leader_election: super::daemon_settings::LeaderSettings::default(),
            notifications: super::report_settings::NotificationSettings::default(),
            limits: Limits::default(),
            shutdown_timeout: default_shutdown_timeout(),
        }
    }
}

/// Why `flink-gitops.yaml` could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("{path}:{mark}: failed to parse the configuration: {message}")]
    Parse {
        path: String,
        mark: Mark,
        message: String,
    },
    #[error("{path}:{mark}: invalid configuration key `{key}`: {message}")]
    InvalidKey {
        path: String,
        mark: Mark,
        key: String,
        message: String,
    },
}

impl Settings {
    /// Parses `flink-gitops.yaml`; `path` is only used in messages.
    pub fn parse(text: &str, path: &str) -> Result<Settings, SettingsError> {
        let parse_error = |mark: Mark, message: String| SettingsError::Parse {
            path: path.to_owned(),
            mark,
            message,
        };
        let Some(root) =
            yaml::load(text, &Limits::default()).map_err(|e| parse_error(e.mark, e.message))?
        else {
            return Ok(Settings::default());
        };
        let json = to_value(&root, "")
            .map_err(|e| parse_error(e.mark, e.to_string()))?
            .to_json()
            .map_err(|e| parse_error(root.mark, e.to_string()))?;
        let settings: Settings = serde_path_to_error::deserialize(json).map_err(|e| {
            let segments: Vec<String> = e.path().iter().map(ToString::to_string).collect();
            let key = e.path().to_string();
            let mark = locate(&root, &segments).unwrap_or(root.mark);
            SettingsError::InvalidKey {
                path: path.to_owned(),
                mark,
                key,
                message: e.into_inner().to_string(),
            }
        })?;
        settings.check(&root, path)?;
        Ok(settings)
    }

    fn check(&self, root: &Node, path: &str) -> Result<(), SettingsError> {
        let invalid = |key: &str, message: String| SettingsError::InvalidKey {
            path: path.to_owned(),
            mark: locate(root, &[key.to_owned()]).unwrap_or(root.mark),
            key: key.to_owned(),
            message,
        };
        if self.apply.field_manager.is_empty() {
            return Err(invalid(
                "apply",
                "field_manager must not be empty".to_owned(),
            ));
        }
        if self.apply.concurrency == 0 || self.apply.retry_attempts == 0 {
            return Err(invalid(
                "apply",
                "concurrency and retry_attempts must be at least 1".to_owned(),
            ));
        }
        if self.apply.request_timeout.is_zero() {
            return Err(invalid(
                "apply",
                "request_timeout must be longer than 0s".to_owned(),
            ));
        }
        if self.source.git.is_some() && self.source.dir.is_some() {
            return Err(invalid(
                "source",
                "set either source.git or source.dir, not both".to_owned(),
            ));
        }
        if self.leader_election.retry_period >= self.leader_election.lease_duration {
            return Err(invalid(
                "leader_election",
                "retry_period must be shorter than lease_duration".to_owned(),
            ));
        }
        if !(0.0..=1.0).contains(&self.prune.max_fraction) {
            return Err(invalid(
                "prune",
                "max_fraction must be between 0 and 1".to_owned(),
            ));
        }
        if let Some(template) = &self.prune.job_template
            && (template.get("kind").and_then(serde_json::Value::as_str) != Some("Job")
                || template.pointer("/spec/template/spec/containers").is_none())
        {
            return Err(invalid(
                "prune",
                "job_template must be a batch/v1 Job with spec.template.spec.containers".to_owned(),
            ));
        }
        let limits = &self.limits;
        if [
            limits.max_depth,
            limits.max_alias_nodes,
            limits.max_document_bytes,
            limits.max_scalar_bytes,
            limits.max_nodes,
        ]
        .contains(&0)
        {
            return Err(invalid(
                "limits",
                "every limit must be at least 1".to_owned(),
            ));
        }
        if self.kinds.is_empty() {
            return Err(invalid(
                "kinds",
                "at least one kind must be managed".to_owned(),
            ));
        }
        let mut prefixes = std::collections::BTreeSet::new();
        for kind in &self.kinds {
            if kind.file_prefix.is_empty() || kind.file_prefix.contains(['/', '.']) {
                return Err(invalid(
                    "kinds",
                    format!(
                        "file_prefix `{}` must be a plain word like `flink`",
                        kind.file_prefix
                    ),
                ));
            }
            if !prefixes.insert(kind.file_prefix.as_str()) {
                return Err(invalid(
                    "kinds",
                    format!("file_prefix `{}` is listed twice", kind.file_prefix),
                ));
            }
        }
        if let Some(message) = kinds_sharing_objects(&self.kinds) {
            return Err(invalid("kinds", message));
        }
        Ok(())
    }

    /// The kind settings for a file prefix.
    #[must_use]
    pub fn kind(&self, file_prefix: &str) -> Option<&KindSettings> {
        self.kinds.iter().find(|k| k.file_prefix == file_prefix)
    }

    /// The configured file prefixes, in configuration order.
    #[must_use]
    pub fn file_prefixes(&self) -> Vec<String> {
        self.kinds.iter().map(|k| k.file_prefix.clone()).collect()
    }

    /// What the sources read: the configured kinds' files, up to the
    /// document size limit.
    #[must_use]
    pub fn file_selection(&self) -> crate::source::FileSelection {
        crate::source::FileSelection {
            file_prefixes: self.file_prefixes(),
            max_file_bytes: self.limits.max_document_bytes,
        }
    }
}

/// Each live object must belong to exactly one configured kind: two kinds
/// of one CRD and namespace are told apart only by the eks label, and one
/// CRD has one kind name. Names both kinds of the first clash.
fn kinds_sharing_objects(kinds: &[KindSettings]) -> Option<String> {
    for (index, a) in kinds.iter().enumerate() {
        for b in &kinds[index + 1..] {
            if a.crd() != b.crd() {
                continue;
            }
            let (group, plural) = a.crd();
            if a.kind != b.kind {
                return Some(format!(
                    "kinds `{}` and `{}` use the same CRD ({plural}.{group}) under different kind names (`{}`, `{}`)",
                    a.file_prefix, b.file_prefix, a.kind, b.kind
                ));
            }
            if a.namespace() == b.namespace() && a.is_eks() == b.is_eks() {
                return Some(format!(
                    "kinds `{}` and `{}` would own the same objects: same CRD ({plural}.{group}), namespace `{}` and eks-ness; give one another namespace, or remove one",
                    a.file_prefix,
                    b.file_prefix,
                    a.namespace()
                ));
            }
        }
    }
    None
}

/// Finds the node at a serde path (`kinds`, `[0]`, `plural`) for its position.
fn locate(root: &Node, segments: &[String]) -> Option<Mark> {
    let mut node = root;
    let mut mark = root.mark;
    for segment in segments {
        if let Some(index) = segment.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            let index: usize = index.parse().ok()?;
            match &node.value {
                NodeValue::Seq(items) => node = items.get(index)?,
                _ => return Some(mark),
            }
        } else {
            match &node.value {
                NodeValue::Map(mapping) => match mapping.get_entry(segment) {
                    Some((key, value)) => {
                        mark = key.mark;
                        node = value;
                        continue;
                    }
                    None => return Some(mark),
                },
                _ => return Some(mark),
            }
        }
        mark = node.mark;
    }
    Some(mark)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_paasta_defaults() {
        let settings = Settings::parse("", "f.yaml").expect("defaults");
        assert_eq!(settings, Settings::default());
        let flink = &settings.kinds[0];
        assert_eq!(flink.api_version(), "yelp.com/v1alpha1");
        assert_eq!(flink.kind, "Flink");
        assert_eq!(flink.namespace(), "paasta-flinks");
        assert!(!flink.is_eks());
        assert!(KindSettings::for_prefix("flinkeks").is_eks());
    }

    #[test]
    fn full_file_parses() {
        let text = "cluster: pnw-prod\ndocker_registry: r:443\ndashboard_links: {pnw-prod: {Flink: http://x}}\ncr_owners: {flink: team}\nautotuned_defaults: yes\nkinds:\n- file_prefix: flink\n- {file_prefix: flinkeks, namespace: other}\n";
        let settings = Settings::parse(text, "f.yaml").expect("settings");
        assert_eq!(settings.cluster.as_deref(), Some("pnw-prod"));
        assert!(settings.autotuned_defaults);
        assert_eq!(settings.kinds[1].namespace(), "other");
        assert_eq!(settings.file_prefixes(), ["flink", "flinkeks"]);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = Settings::parse("cluster: a\nclustr: b\n", "f.yaml").expect_err("unknown");
        let text = err.to_string();
        assert!(text.contains("clustr"), "{text}");
        assert!(text.starts_with("f.yaml:"), "{text}");
    }

    #[test]
    fn request_timeout_is_a_duration_above_zero() {
        let settings =
            Settings::parse("apply: {request_timeout: 2m}\n", "f.yaml").expect("timeout");
        assert_eq!(
            settings.apply.request_timeout,
            std::time::Duration::from_secs(120)
        );
        let err = Settings::parse("apply: {request_timeout: 0s}\n", "f.yaml").expect_err("zero");
        assert!(err.to_string().contains("request_timeout"), "{err}");
    }

    #[test]
    fn limits_are_configurable_and_checked() {
        let settings =
            Settings::parse("limits: {max_scalar_bytes: 64}\n", "f.yaml").expect("limits");
        assert_eq!(settings.limits.max_scalar_bytes, 64);
        assert_eq!(settings.limits.max_depth, Limits::default().max_depth);
        let err = Settings::parse("limits:\n  max_items: 1\n", "f.yaml").expect_err("unknown");
        assert!(err.to_string().contains("max_items"), "{err}");
        let settings = Settings::parse("limits: {max_nodes: 500}\n", "f.yaml").expect("max_nodes");
        assert_eq!(settings.limits.max_nodes, 500);
        for zero in ["max_depth", "max_nodes"] {
            let text = format!("cluster: a\nlimits: {{{zero}: 0}}\n");
            let err = Settings::parse(&text, "f.yaml").expect_err("zero");
            match err {
                SettingsError::InvalidKey { key, mark, .. } => {
                    assert_eq!(key, "limits");
                    assert_eq!(mark.line, 2);
                }
                other => panic!("{zero}: {other}"),
            }
        }
    }

    #[test]
    fn wrong_type_names_the_nested_key_and_line() {
        let err = Settings::parse("kinds:\n- file_prefix: flink\n  plural: [x]\n", "f.yaml")
            .expect_err("wrong type");
        match err {
            SettingsError::InvalidKey { key, mark, .. } => {
                assert_eq!(key, "kinds[0].plural");
                assert_eq!(mark.line, 3);
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn prune_section_parses_durations_and_modes() {
        let settings = Settings::parse(
            "prune: {mode: annotate-only, timeout: 1h 30m, max_per_cycle: 3}\n",
            "f.yaml",
        )
        .expect("prune");
        assert_eq!(settings.prune.mode, PruneMode::AnnotateOnly);
        assert_eq!(settings.prune.timeout, std::time::Duration::from_secs(5400));
        assert_eq!(settings.prune.max_per_cycle, 3);
        assert!(Settings::parse("prune: {mode: sometimes}\n", "f.yaml").is_err());
        assert!(Settings::parse("prune: {timeout: soon}\n", "f.yaml").is_err());
        assert!(Settings::parse("prune: {job_template: {kind: Pod}}\n", "f.yaml").is_err());
    }

    #[test]
    fn prune_grace_defaults_to_two_minutes_and_zero_turns_it_off() {
        let settings = Settings::parse("", "f.yaml").expect("defaults");
        assert_eq!(settings.prune.grace, std::time::Duration::from_secs(120));
        let off = Settings::parse("prune: {grace: 0s}\n", "f.yaml").expect("off");
        assert!(off.prune.grace.is_zero());
        assert!(Settings::parse("prune: {grace: later}\n", "f.yaml").is_err());
    }

    #[test]
    fn kinds_that_would_own_the_same_objects_are_refused_naming_both() {
        // PaaSTA's pair: one CRD and namespace, told apart by eks-ness.
        Settings::parse(
            "kinds: [{file_prefix: flink}, {file_prefix: flinkeks}]\n",
            "f.yaml",
        )
        .expect("flink and flinkeks share a CRD");
        for text in [
            "kinds: [{file_prefix: flink}, {file_prefix: other}]\n",
            "kinds: [{file_prefix: aeks}, {file_prefix: beks}]\n",
            "kinds: [{file_prefix: flink}, {file_prefix: other, kind: Other}]\n",
        ] {
            let err = Settings::parse(text, "f.yaml").expect_err(text);
            let message = err.to_string();
            assert!(message.contains("kinds `"), "{message}");
            let (first, second) = if text.contains("aeks") {
                ("aeks", "beks")
            } else {
                ("flink", "other")
            };
            assert!(
                message.contains(&format!("`{first}` and `{second}`")),
                "{message}"
            );
        }
        Settings::parse(
            "kinds: [{file_prefix: flink}, {file_prefix: other, namespace: elsewhere}]\n",
            "f.yaml",
        )
        .expect("another namespace is other objects");
    }

    #[test]
    fn duplicate_prefixes_are_refused() {
        let err = Settings::parse(
            "kinds: [{file_prefix: flink}, {file_prefix: flink}]\n",
            "f.yaml",
        )
        .expect_err("dup");
        assert!(err.to_string().contains("twice"), "{err}");
    }
}
