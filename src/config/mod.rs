//! Pure: soa-configs files (a [`Snapshot`](crate::source::Snapshot)) to the
//! typed [`ConfigSet`] of one cluster, with PaaSTA's loading semantics.

pub mod convert;
pub mod daemon_settings;
pub mod deployments;
mod diagnostic;
pub(crate) mod parallel;
pub mod report_settings;
pub mod scalar;
pub mod settings;
mod soa;
pub mod yaml;
mod yaml_subset;

pub use deployments::Deployments;
pub use diagnostic::Diagnostic;
pub use settings::{
    ApplySettings, KindSettings, PruneMode, PruneSettings, Settings, SettingsError,
};
pub use soa::{clusters_in, load, load_service};

use crate::value::Value;
use std::collections::BTreeMap;

/// Every service of one cluster, loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSet {
    pub cluster: String,
    pub services: BTreeMap<String, ServiceState>,
}

/// A service either loaded completely or is unknown.
///
/// "Unknown" is load-bearing: a service whose files could not be read has
/// instances we cannot see, so no later stage may treat them as removed.
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceState {
    Loaded(ServiceConfig),
    Unknown(Vec<Diagnostic>),
}

/// What one service's files say for the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    pub name: String,
    /// Instances of every configured kind, in file order.
    pub instances: Vec<InstanceConfig>,
    /// What the image lookup reads of `deployments.json`, when the file exists.
    pub deployments: Option<Deployments>,
    /// `service.yaml`'s `docker_registry`.
    pub docker_registry: Option<String>,
    /// `deployments.json`'s user-facing path, for skip reasons.
    pub deployments_path: String,
}

/// One instance of one kind, as PaaSTA's loaders see it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceConfig {
    pub service: String,
    pub instance: String,
    /// The kind's file prefix (`flink`, `flinkeks`).
    pub file_prefix: String,
    /// Where the instance is defined.
    pub path: String,
    pub line: usize,
    pub column: usize,
    /// The `spec`: user config deep-merged over autotuned defaults, or why it
    /// cannot be one (a date, unsortable keys).
    pub spec: Result<Value, Diagnostic>,
    /// `deploy_group` from the instance, else `service.yaml`, not interpolated.
    pub deploy_group: Option<Value>,
    /// `docker_url` from the instance, else `service.yaml`.
    pub docker_url: Option<Value>,
}

impl InstanceConfig {
    /// `service.instance`, the subject of messages.
    #[must_use]
    pub fn subject(&self) -> String {
        format!("{}.{}", self.service, self.instance)
    }
}

impl ConfigSet {
    /// Services that failed to load, with their diagnostics.
    pub fn unknown_services(&self) -> impl Iterator<Item = (&String, &Vec<Diagnostic>)> {
        self.services
            .iter()
            .filter_map(|(name, state)| match state {
                ServiceState::Unknown(diagnostics) => Some((name, diagnostics)),
                ServiceState::Loaded(_) => None,
            })
    }

    /// Services that loaded.
    pub fn loaded_services(&self) -> impl Iterator<Item = &ServiceConfig> {
        self.services.values().filter_map(|state| match state {
            ServiceState::Loaded(config) => Some(config),
            ServiceState::Unknown(_) => None,
        })
    }
}
