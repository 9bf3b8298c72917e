//! What `diff` and `apply` share: render, connect, list, plan.

use super::{CliError, ClusterArgs, load_cluster_inputs};
use crate::apply::{ApplyOptions, KubeCluster};
use crate::config::Settings;
use crate::plan::prune::{self as prune_plan, EMPTY_TREE, PruneInputs, PrunePlan};
use crate::plan::{self, Plan, Policy};
use crate::render::DesiredSet;
use crate::{config, render};

/// Everything a live command needs after planning.
pub struct LivePlan {
    pub settings: Settings,
    pub desired: DesiredSet,
    pub plan: Plan,
    pub prunes: PrunePlan,
    /// The source revision, for the prune signal.
    pub revision: String,
    pub cluster: KubeCluster,
}

/// The plan policy and apply options from the settings.
#[must_use]
pub fn options(settings: &Settings, dry_run: bool) -> ApplyOptions {
    ApplyOptions {
        policy: Policy {
            field_manager: settings.apply.field_manager.clone(),
            takeover_managers: settings.apply.takeover_managers.clone(),
        },
        dry_run,
        concurrency: settings.apply.concurrency,
        create_namespaces: settings.apply.create_namespaces,
    }
}

/// Renders the soa-configs, lists the live objects (one LIST per kind) and
/// plans. `--service`/`--instance` narrow both sides, so that nothing outside
/// the selection is ever reported as orphaned.
pub async fn plan_against_cluster(
    args: &ClusterArgs,
    allow_mass_prune: bool,
) -> Result<LivePlan, CliError> {
    // Only this cluster's instance files are read.
    let (settings, cluster, snapshot) = load_cluster_inputs(&args.source, args.cluster.as_deref())?;
    let cluster_name = cluster.ok_or(CliError::MissingCluster)?;
    if let Some(service) = &args.service
        && !snapshot.services.contains_key(service)
    {
        return Err(CliError::UnknownService {
            service: service.clone(),
            soa_dir: snapshot.root.clone(),
        });
    }
    let config_set = config::load(&snapshot, &settings, &cluster_name, args.service.as_deref());
    let desired = render::render(&config_set, &settings, args.instance.as_deref());
    let cluster = args.kube.connect(&settings.apply).await?;
    let mut live = crate::apply::read_live(&cluster, &settings)
        .await
        .map_err(CliError::Cluster)?;
    // The guard's fraction is of every managed object of the cluster, not
    // of the selection.
    let managed = live.managed_in(&cluster_name);
    // The selection's objects by their labels, and any object it renders
    // (identity before labels).
    let rendered: std::collections::BTreeSet<(&str, &str)> = desired
        .resources
        .iter()
        .map(|r| (r.namespace.as_str(), r.name.as_str()))
        .collect();
    live.retain(|object| {
        let identity = object.identity();
        let selected = args
            .service
            .as_deref()
            .is_none_or(|s| identity.is_some_and(|(service, _)| service == s))
            && args
                .instance
                .as_deref()
                .is_none_or(|i| identity.is_some_and(|(_, instance)| instance == i));
        selected || rendered.contains(&(object.namespace(), object.name()))
    });
    let policy = options(&settings, false).policy;
    let mut plan = plan::plan_inventory(&desired, &live, &policy);
    if args.service.is_some() || args.instance.is_some() {
        // Another service or instance may render what the selection
        // dropped: only what the whole tree does not want is an orphan.
        let whole = render::render(
            &config::load(&snapshot, &settings, &cluster_name, None),
            &settings,
            None,
        );
        plan::hold_orphans_wanted_by(&mut plan, &plan::wanted::WantedNames::of(&whole));
    }
    let jobs = crate::apply::read_shutdown_jobs(&cluster, &plan.orphans)
        .await
        .map_err(CliError::Cluster)?;
    // An empty tree is never a reason to prune everything.
    let source_problem = config_set
        .loaded_services()
        .next()
        .is_none()
        .then(|| EMPTY_TREE.to_owned());
    let prunes = prune_plan::plan_prunes(
        &plan.orphans,
        &PruneInputs {
            settings: &settings.prune,
            jobs: &jobs,
            managed,
            allow_mass_prune,
            source_problem,
            now: std::time::SystemTime::now(),
            field_manager: &settings.apply.field_manager,
        },
    );
    Ok(LivePlan {
        settings,
        desired,
        plan,
        prunes,
        revision: snapshot
            .revision
            .clone()
            .unwrap_or_else(|| "local".to_owned()),
        cluster,
    })
}

/// A small runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CliError::Write)
}
