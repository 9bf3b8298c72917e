//! Pure: a [`ConfigSet`] to the desired custom resources of one cluster.
//!
//! Each instance ends up in exactly one bucket: rendered, skipped (not
//! deployed yet, PaaSTA's `NoDeploymentsAvailable`) or failed (with a
//! diagnostic). Services that failed to load stay *unknown* and are carried
//! through so that later stages never mistake their instances for removals.

pub mod flink;
pub mod image;
pub mod meta;
mod names;
pub mod shutdown_job;

use crate::config::parallel::{map_in_order, map_in_order_owned};
use crate::config::{ConfigSet, Diagnostic, InstanceConfig, ServiceConfig, ServiceState, Settings};
use crate::value::Value;
use image::ImageLookup;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The desired state of one cluster.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DesiredSet {
    pub cluster: String,
    /// Sorted by namespace, then name.
    pub resources: Vec<DesiredResource>,
    pub skipped: Vec<SkippedInstance>,
    pub failed: Vec<FailedInstance>,
    /// Services whose files could not be loaded: their instances are unknown.
    pub unknown_services: BTreeMap<String, Vec<Diagnostic>>,
}

/// One rendered custom resource and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredResource {
    pub service: String,
    pub instance: String,
    pub file_prefix: String,
    pub api_version: String,
    pub kind: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
    pub config_sha: String,
    pub git_sha: String,
    /// The full object, in Python `sort_keys` order.
    pub object: Value,
    /// `path:line` of the instance definition.
    pub source: String,
}

impl DesiredResource {
    /// `Kind/namespace/name`, the subject of messages about the object.
    #[must_use]
    pub fn subject(&self) -> String {
        format!("{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// An instance that is not deployed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedInstance {
    pub service: String,
    pub instance: String,
    pub file_prefix: String,
    pub reason: String,
}

/// An instance that cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedInstance {
    pub service: String,
    pub instance: String,
    pub file_prefix: String,
    pub diagnostic: Diagnostic,
}

impl DesiredSet {
    /// True when nothing failed: every service loaded and every instance
    /// rendered or was skipped.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty() && self.unknown_services.is_empty()
    }

    /// Every diagnostic: unknown services first, then failed instances.
    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.unknown_services
            .values()
            .flatten()
            .chain(self.failed.iter().map(|f| &f.diagnostic))
    }
}

/// Fewer services than this per thread are not worth a thread.
const SERVICES_PER_THREAD: usize = 64;

/// Renders every loaded instance of `config` (or only instances named
/// `only_instance`, in every service, like PaaSTA's `--instance`).
#[must_use]
pub fn render(config: &ConfigSet, settings: &Settings, only_instance: Option<&str>) -> DesiredSet {
    let mut desired = DesiredSet {
        cluster: config.cluster.clone(),
        unknown_services: config
            .unknown_services()
            .map(|(name, diagnostics)| (name.clone(), diagnostics.clone()))
            .collect(),
        ..DesiredSet::default()
    };
    let services: Vec<&ServiceConfig> = config.loaded_services().collect();
    // Instances render independently: a few std threads share the services
    // (see `config::parallel`); outcomes come back in service order.
    let outcomes = map_in_order(&services, SERVICES_PER_THREAD, |service| {
        service
            .instances
            .iter()
            .filter(|instance| only_instance.is_none_or(|only| only == instance.instance))
            .map(|instance| {
                let spec = Cow::Borrowed(&instance.spec);
                let outcome = render_instance(service, instance, spec, &config.cluster, settings);
                (instance, outcome)
            })
            .collect::<Vec<_>>()
    });
    collect(&mut desired, outcomes);
    desired
}

/// [`render`] for a configuration that is not needed afterwards: each spec
/// moves into its resource instead of being copied, which keeps the peak
/// memory of `flink-gitops render` down. Same result as [`render`].
#[must_use]
pub fn render_owned(
    config: ConfigSet,
    settings: &Settings,
    only_instance: Option<&str>,
) -> DesiredSet {
    let ConfigSet { cluster, services } = config;
    let services: Vec<(String, ServiceState)> = services.into_iter().collect();
    let rendered = map_in_order_owned(services, SERVICES_PER_THREAD, |(name, state)| {
        let rendered = render_service(state, &cluster, settings, only_instance);
        (name, rendered)
    });
    assemble(cluster, rendered)
}

/// One service rendered on its own, to be put together with the others by
/// [`assemble`]. [`render_owned`] is `render_service` on every service, then
/// `assemble`; [`crate::pipeline`] renders each service right after loading it.
#[derive(Debug)]
pub struct RenderedService(Rendered);

#[derive(Debug)]
enum Rendered {
    Unknown(Vec<Diagnostic>),
    Instances(Vec<(InstanceNames, Outcome)>),
}

/// Renders the instances of one loaded service (or passes on why it is
/// unknown), consuming its configuration.
#[must_use]
pub fn render_service(
    state: ServiceState,
    cluster: &str,
    settings: &Settings,
    only_instance: Option<&str>,
) -> RenderedService {
    let mut service = match state {
        ServiceState::Loaded(service) => service,
        ServiceState::Unknown(diagnostics) => {
            return RenderedService(Rendered::Unknown(diagnostics));
        }
    };
    let instances = std::mem::take(&mut service.instances);
    let outcomes = instances
        .into_iter()
        .filter(|instance| only_instance.is_none_or(|only| only == instance.instance))
        .map(|mut instance| {
            let spec = std::mem::replace(&mut instance.spec, Ok(Value::Null));
            let outcome = render_instance(&service, &instance, Cow::Owned(spec), cluster, settings);
            let names = InstanceNames {
                service: instance.service,
                instance: instance.instance,
                file_prefix: instance.file_prefix,
            };
            (names, outcome)
        })
        .collect();
    RenderedService(Rendered::Instances(outcomes))
}

/// The desired state of `cluster` from its services rendered one by one, in
/// service order.
#[must_use]
pub fn assemble(
    cluster: String,
    services: impl IntoIterator<Item = (String, RenderedService)>,
) -> DesiredSet {
    let mut desired = DesiredSet {
        cluster,
        ..DesiredSet::default()
    };
    let mut outcomes = Vec::new();
    for (name, RenderedService(rendered)) in services {
        match rendered {
            Rendered::Unknown(diagnostics) => {
                desired.unknown_services.insert(name, diagnostics);
            }
            Rendered::Instances(instances) => outcomes.push(instances),
        }
    }
    collect(&mut desired, outcomes);
    desired
}

#[derive(Debug)]
enum Outcome {
    Rendered(Box<DesiredResource>),
    Skipped(String),
    Failed(Diagnostic),
}

/// Whose outcome it is, for the skipped and failed lists.
#[derive(Debug)]
struct InstanceNames {
    service: String,
    instance: String,
    file_prefix: String,
}

/// Names taken only for skipped and failed instances: cloned from a
/// borrowed configuration, moved from an owned one.
trait IntoNames {
    fn into_names(self) -> InstanceNames;
}

impl IntoNames for &InstanceConfig {
    fn into_names(self) -> InstanceNames {
        InstanceNames {
            service: self.service.clone(),
            instance: self.instance.clone(),
            file_prefix: self.file_prefix.clone(),
        }
    }
}

impl IntoNames for InstanceNames {
    fn into_names(self) -> InstanceNames {
        self
    }
}

/// Files each outcome into `desired` (fresh: no resources yet), in order;
/// the resources sorted by namespace and name, colliding ones failed.
fn collect(desired: &mut DesiredSet, outcomes: Vec<Vec<(impl IntoNames, Outcome)>>) {
    // The rendered resources are sorted as boxes, then moved out once into
    // a vector sized at once: this runs on one thread, after the parallel
    // rendering, over thousands of resources of a few hundred bytes each.
    let mut rendered: Vec<Box<DesiredResource>> = Vec::new();
    for (names, outcome) in outcomes.into_iter().flatten() {
        match outcome {
            Outcome::Rendered(resource) => rendered.push(resource),
            Outcome::Skipped(reason) => {
                let names = names.into_names();
                desired.skipped.push(SkippedInstance {
                    service: names.service,
                    instance: names.instance,
                    file_prefix: names.file_prefix,
                    reason,
                });
            }
            Outcome::Failed(diagnostic) => {
                let names = names.into_names();
                desired.failed.push(FailedInstance {
                    service: names.service,
                    instance: names.instance,
                    file_prefix: names.file_prefix,
                    diagnostic,
                });
            }
        }
    }
    rendered.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    desired.resources = rendered.into_iter().map(|resource| *resource).collect();
    // Sorted (stably), colliding objects sit in one run of equal namespace
    // and name; only when there is one does the full check run (removing
    // objects keeps the order, so checking after sorting changes nothing).
    if has_collision(&desired.resources) {
        reject_name_collisions(desired);
    }
}

/// Fails every instance whose object another instance renders too, in a
/// set whose resources are sorted by namespace and name (a set assembled
/// from services rendered one by one, as the daemon keeps them).
pub fn reject_collisions(desired: &mut DesiredSet) {
    if has_collision(&desired.resources) {
        reject_name_collisions(desired);
    }
}

/// Whether two resources, sorted by namespace and name, are the same object.
fn has_collision(resources: &[DesiredResource]) -> bool {
    resources
        .chunk_by(|a, b| a.namespace == b.namespace && a.name == b.name)
        .filter(|run| run.len() > 1)
        .any(|run| {
            run.iter()
                .enumerate()
                .any(|(i, a)| run[i + 1..].iter().any(|b| b.kind == a.kind))
        })
}

fn instance_diagnostic(instance: &InstanceConfig, message: &str) -> Diagnostic {
    Diagnostic::at(
        &instance.path,
        instance.line,
        instance.column,
        format!("{}: {message}", instance.subject()),
    )
}

/// PaaSTA's order: the deployments lookup decides skips before anything can
/// fail on the spec itself.
fn render_instance(
    service: &ServiceConfig,
    instance: &InstanceConfig,
    spec: Cow<'_, Result<Value, Diagnostic>>,
    cluster: &str,
    settings: &Settings,
) -> Outcome {
    let Some(kind) = settings.kind(&instance.file_prefix) else {
        return Outcome::Failed(instance_diagnostic(
            instance,
            "no kind is configured for this file",
        ));
    };
    let git_sha = match image::lookup(
        service,
        instance,
        cluster,
        settings.docker_registry.as_deref(),
    ) {
        ImageLookup::GitSha(sha) => sha,
        ImageLookup::NotDeployed(reason) => return Outcome::Skipped(reason),
        ImageLookup::Invalid(message) => {
            return Outcome::Failed(instance_diagnostic(instance, &message));
        }
    };
    let spec: Cow<'_, Value> = match spec {
        Cow::Borrowed(Ok(spec)) => Cow::Borrowed(spec),
        Cow::Owned(Ok(spec)) => Cow::Owned(spec),
        Cow::Borrowed(Err(diagnostic)) => return Outcome::Failed(diagnostic.clone()),
        Cow::Owned(Err(diagnostic)) => return Outcome::Failed(diagnostic),
    };
    // `build_with_spec` takes the spec itself; the input's is not read.
    let unread = Value::Null;
    let built = flink::build_with_spec(
        &flink::ResourceInput {
            service: &instance.service,
            instance: &instance.instance,
            cluster,
            kind,
            settings,
            spec: &unread,
            git_sha: &git_sha,
        },
        spec.into_owned(),
    );
    // Checked on the built name: building has no effect beyond its result,
    // which a bad name discards.
    if let Err(message) = names::check_named(
        &built.name,
        &instance.service,
        &instance.instance,
        cluster,
        &git_sha,
    ) {
        return Outcome::Failed(instance_diagnostic(instance, &message));
    }
    Outcome::Rendered(Box::new(DesiredResource {
        service: instance.service.clone(),
        instance: instance.instance.clone(),
        file_prefix: instance.file_prefix.clone(),
        api_version: kind.api_version(),
        kind: kind.kind.clone(),
        plural: kind.plural.clone(),
        namespace: kind.namespace(),
        name: built.name,
        config_sha: built.config_sha,
        git_sha,
        object: built.object,
        source: format!("{}:{}", instance.path, instance.line),
    }))
}

/// Two instances that would write the same object (e.g. `a_b`/`a--b`, or the
/// same instance in `flink` and `flinkeks` files of one namespace) both fail:
/// applying either would silently overwrite the other.
fn reject_name_collisions(desired: &mut DesiredSet) {
    // Sorting indices by object identity puts collisions next to each other
    // without copying any name.
    let resources = &desired.resources;
    let identity = |i: usize| {
        let r = &resources[i];
        (r.kind.as_str(), r.namespace.as_str(), r.name.as_str())
    };
    let mut order: Vec<usize> = (0..resources.len()).collect();
    order.sort_by(|&a, &b| identity(a).cmp(&identity(b)).then(a.cmp(&b)));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && identity(order[end]) == identity(order[start]) {
            end += 1;
        }
        if end - start > 1 {
            groups.push(order[start..end].to_vec());
        }
        start = end;
    }
    if groups.is_empty() {
        return;
    }
    let mut colliding: Vec<usize> = Vec::new();
    for indices in &groups {
        let sources: Vec<String> = indices
            .iter()
            .map(|&i| {
                format!(
                    "{}.{} ({})",
                    desired.resources[i].service,
                    desired.resources[i].instance,
                    desired.resources[i].source
                )
            })
            .collect();
        for &index in indices {
            let resource = &desired.resources[index];
            let (path, line) = resource
                .source
                .rsplit_once(':')
                .map_or((resource.source.as_str(), 0), |(p, l)| {
                    (p, l.parse().unwrap_or(0))
                });
            let diagnostic = Diagnostic {
                path: path.to_owned(),
                line: Some(line),
                column: None,
                message: format!(
                    "{}.{}: renders {} which is also rendered by {}",
                    resource.service,
                    resource.instance,
                    resource.subject(),
                    sources.join(" and ")
                ),
            };
            desired.failed.push(FailedInstance {
                service: resource.service.clone(),
                instance: resource.instance.clone(),
                file_prefix: resource.file_prefix.clone(),
                diagnostic,
            });
            colliding.push(index);
        }
    }
    colliding.sort_unstable();
    for index in colliding.into_iter().rev() {
        desired.resources.remove(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::read_dir;
    use std::path::Path;

    #[test]
    fn instances_that_render_the_same_object_both_fail_and_the_rest_are_sorted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let service = dir.path().join("svc");
        std::fs::create_dir_all(&service).expect("mkdir");
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let instances = ["zeta", "a_b", "a--b", "solo", "eks_only"];
        let groups: Vec<String> = instances
            .iter()
            .map(|instance| {
                format!(
                    r#""c1.{instance}": {{"docker_image": "services-svc:paasta-{sha}", "git_sha": "{sha}"}}"#
                )
            })
            .collect();
        let controls: Vec<String> = instances
            .iter()
            .map(|instance| format!(r#""svc:c1.{instance}": {{"desired_state": "start"}}"#))
            .collect();
        let deployments = format!(
            r#"{{"v2": {{"deployments": {{{}}}, "controls": {{{}}}}}}}"#,
            groups.join(", "),
            controls.join(", ")
        );
        for (file, text) in [
            ("deployments.json", deployments.as_str()),
            // `a_b` and `a--b` both make the object `svc-a--b`.
            ("flink-c1.yaml", "zeta: {}\na_b: {}\na--b: {}\nsolo: {}\n"),
            ("flinkeks-c1.yaml", "eks_only: {}\n"),
            // Same name and namespace as `flink`'s `solo`, another kind: no collision.
            ("flinkx-c1.yaml", "solo: {}\n"),
        ] {
            std::fs::write(service.join(file), text).expect("write");
        }
        let settings = Settings::parse(
            "docker_registry: registry.example.com\nkinds:\n  - file_prefix: flink\n  - file_prefix: flinkeks\n  - {file_prefix: flinkx, kind: FlinkX, plural: flinkxs, namespace: paasta-flinks}\n",
            "flink-gitops.yaml",
        )
        .expect("settings");
        let snapshot = read_dir(dir.path(), &settings.file_selection()).expect("tree");
        let config = crate::config::load(&snapshot, &settings, "c1", None);
        let desired = render_owned(config.clone(), &settings, None);
        assert!(
            desired.unknown_services.is_empty(),
            "{:?}",
            desired.unknown_services
        );
        assert!(desired.skipped.is_empty(), "{:?}", desired.skipped);
        assert_eq!(desired.failed.len(), 2, "{:?}", desired.failed);
        let rendered: Vec<(&str, &str)> = desired
            .resources
            .iter()
            .map(|r| (r.name.as_str(), r.kind.as_str()))
            .collect();
        assert_eq!(
            rendered,
            [
                ("svc-eks--only", "Flink"),
                ("svc-solo", "Flink"),
                ("svc-solo", "FlinkX"),
                ("svc-zeta", "Flink"),
            ]
        );
        let failed: Vec<&str> = desired.failed.iter().map(|f| f.instance.as_str()).collect();
        assert_eq!(failed, ["a_b", "a--b"]);
        assert!(
            desired.failed[0].diagnostic.message.contains("svc.a--b"),
            "{:?}",
            desired.failed[0].diagnostic
        );
        assert_eq!(render(&config, &settings, None), desired);
    }

    #[test]
    fn render_owned_matches_render_on_the_fixture_tree() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("fixtures/flink-gitops.yaml")).expect("read");
        let settings = Settings::parse(&text, "flink-gitops.yaml").expect("settings");
        let selection = settings.file_selection();
        let snapshot = read_dir(&root.join("fixtures/soa-configs"), &selection).expect("tree");
        for cluster in crate::config::clusters_in(&snapshot, &settings) {
            let config = crate::config::load(&snapshot, &settings, &cluster, None);
            for only in [None, Some("main")] {
                let borrowed = render(&config, &settings, only);
                let owned = render_owned(config.clone(), &settings, only);
                assert_eq!(owned, borrowed, "{cluster} {only:?}");
            }
        }
    }
}
