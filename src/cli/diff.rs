//! `flink-gitops diff`: the plan against the live cluster, nothing written
//! (`--soa-dir`); or, for CI, the change between two revisions of a git
//! repository (`--repo --base --head`), optionally against live objects
//! (`--live kube|none|FILE`). The comparisons and their renderings are pure
//! ([`crate::report::ci`]); this module only reads and writes.

use super::live::{options, plan_against_cluster, runtime};
use super::{
    CliError, ClusterArgs, DiffArgs, ExitCode, LiveSource, PlanFormat, SourceArgs, load_settings,
    plan_output,
};
use crate::config::Settings;
use crate::plan::Action;
use crate::plan::inventory::Inventory;
use crate::render::{DesiredSet, meta};
use crate::report::ci::{self, Against, Report};
use crate::source::git::{changed_services_between, clusters_at, snapshot_at};
use crate::source::{FileSelection, Snapshot, read_dir};
use crate::{config, render};
use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};

pub fn run(
    args: &DiffArgs,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    if args.repo.is_none() && matches!(args.live, None | Some(LiveSource::Kube)) {
        return run_plan(args, stdout, stderr);
    }
    let report = build_report(args)?;
    let text = match args.output {
        PlanFormat::Text => ci::text(&report, use_color()),
        PlanFormat::Markdown => ci::markdown(&report),
        PlanFormat::Json => ci::json(&report),
    };
    stdout.write_all(text.as_bytes())?;
    if args.output != PlanFormat::Text {
        for cluster in &report.clusters {
            for change in &cluster.changes {
                for diagnostic in &change.diagnostics {
                    writeln!(stderr, "{}: {diagnostic}", cluster.cluster)?;
                }
            }
        }
    }
    Ok(exit_code(
        args.exit_code,
        report.has_errors(),
        report.has_changes(),
    ))
}

fn exit_code(requested: bool, errors: bool, changes: bool) -> ExitCode {
    match (requested, errors, changes) {
        (true, true, _) => ExitCode::Usage,
        (true, false, true) | (false, true, _) => ExitCode::Failures,
        (true, false, false) | (false, false, _) => ExitCode::Success,
    }
}

/// Colours only on a terminal, and never when `NO_COLOR` is set.
fn use_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The plan of a soa-configs directory against the live cluster.
fn run_plan(
    args: &DiffArgs,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    if args.cluster.len() > 1 {
        return Err(CliError::DiffUsage(
            "diff against the live cluster takes one --cluster (several need --repo)".to_owned(),
        ));
    }
    let soa_dir = args
        .soa_dir
        .clone()
        .ok_or_else(|| CliError::DiffUsage("pass --soa-dir or --repo".to_owned()))?;
    let cluster_args = ClusterArgs {
        source: SourceArgs {
            soa_dir,
            config: args.config.clone(),
        },
        cluster: args.cluster.first().cloned(),
        service: args.service.clone(),
        instance: args.instance.clone(),
        kube: args.kube.clone(),
    };
    let live = runtime()?.block_on(plan_against_cluster(&cluster_args, false))?;
    let plan = &live.plan;
    let text = match args.output {
        PlanFormat::Text => plan_output::text_with_prunes(plan, &live.prunes),
        PlanFormat::Markdown => {
            plan_output::markdown(plan) + &plan_output::prunes_markdown(&live.prunes)
        }
        PlanFormat::Json => plan_output::json_with_prunes(plan, &live.prunes),
    };
    stdout.write_all(text.as_bytes())?;
    for diagnostic in live.desired.diagnostics() {
        writeln!(stderr, "{diagnostic}")?;
    }
    let errors = plan
        .entries
        .iter()
        .any(|e| matches!(e.action, Action::Failed(_) | Action::Blocked(_)));
    let changes = plan.writes().next().is_some() || live.prunes.writes().next().is_some();
    Ok(exit_code(args.exit_code, errors, changes))
}

/// The snapshots a report compares: the head one always, the base one
/// between revisions.
struct Sources {
    head: Snapshot,
    head_sha: Option<String>,
    base: Option<(Snapshot, String)>,
    /// The services rendered, when not all of them.
    only: Option<BTreeSet<String>>,
}

fn read_sources(args: &DiffArgs, selection: &FileSelection) -> Result<Sources, CliError> {
    let Some(repo) = &args.repo else {
        let soa_dir = args
            .soa_dir
            .as_deref()
            .ok_or_else(|| CliError::DiffUsage("pass --soa-dir or --repo".to_owned()))?;
        return Ok(Sources {
            head: read_dir(soa_dir, selection)?,
            head_sha: None,
            base: None,
            only: None,
        });
    };
    let head_rev = args.head.as_deref().unwrap_or("HEAD");
    let Some(base_rev) = args.base.as_deref() else {
        if args.live.is_none() {
            return Err(CliError::DiffUsage(
                "--repo needs --base (the revision to compare with), or --live".to_owned(),
            ));
        }
        let (head, head_sha) = snapshot_at(repo, head_rev, selection, None)?;
        return Ok(Sources {
            head,
            head_sha: Some(head_sha),
            base: None,
            only: None,
        });
    };
    let changed = changed_services_between(repo, base_rev, head_rev, selection)?;
    let (head, head_sha) = snapshot_at(repo, head_rev, selection, Some(&changed))?;
    let base = snapshot_at(repo, base_rev, selection, Some(&changed))?;
    Ok(Sources {
        head,
        head_sha: Some(head_sha),
        base: Some(base),
        only: Some(changed),
    })
}

fn render_cluster(
    snapshot: &Snapshot,
    settings: &Settings,
    cluster: &str,
    args: &DiffArgs,
) -> DesiredSet {
    let config = config::load(snapshot, settings, cluster, args.service.as_deref());
    let mut desired = render::render_owned(config, settings, args.instance.as_deref());
    ci::strip_root(&mut desired, &snapshot.root);
    desired
}

fn read_live_objects(
    args: &DiffArgs,
    settings: &Settings,
) -> Result<(Against, Inventory), CliError> {
    match &args.live {
        None => Ok((Against::Revision, Inventory::default())),
        Some(LiveSource::None) => Ok((Against::Empty, Inventory::default())),
        Some(LiveSource::File(path)) => {
            let display = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| CliError::LiveDump {
                path: display.clone(),
                reason: e.to_string(),
            })?;
            let objects = ci::parse_live_dump(&text, settings).map_err(|e| CliError::LiveDump {
                path: display.clone(),
                reason: e.to_string(),
            })?;
            Ok((
                Against::LiveFile(display),
                Inventory::of(&settings.kinds, objects),
            ))
        }
        Some(LiveSource::Kube) => {
            let objects = runtime()?.block_on(async {
                let cluster = args.kube.connect(&settings.apply).await?;
                crate::apply::read_live(&cluster, settings)
                    .await
                    .map_err(CliError::Cluster)
            })?;
            Ok((Against::LiveCluster, objects))
        }
    }
}

fn build_report(args: &DiffArgs) -> Result<Report, CliError> {
    let settings = load_settings(args.config.as_deref())?;
    let selection = settings.file_selection();
    let policy = options(&settings, false).policy;
    let sources = read_sources(args, &selection)?;
    let (against, mut live) = read_live_objects(args, &settings)?;
    // Only what is rendered is compared: objects of other services are not
    // "gone" from git.
    live.retain(|object| {
        object.identity().is_some_and(|(service, instance)| {
            sources
                .only
                .as_ref()
                .is_none_or(|only| only.contains(service))
                && args.service.as_deref().is_none_or(|s| s == service)
                && args.instance.as_deref().is_none_or(|i| i == instance)
        })
    });
    let clusters: Vec<String> = if !args.cluster.is_empty() {
        let mut named = args.cluster.clone();
        named.sort();
        named.dedup();
        named
    } else {
        match against {
            Against::Revision | Against::Empty => {
                let mut found = config::clusters_in(&sources.head, &settings);
                if let Some((base, _)) = &sources.base {
                    found.extend(config::clusters_in(base, &settings));
                }
                // Every cluster either revision has a file for, not only
                // those of the changed services (tree names, no file reads).
                if let Some(repo) = &args.repo {
                    let prefixes = settings.file_prefixes();
                    found.extend(clusters_at(
                        repo,
                        args.head.as_deref().unwrap_or("HEAD"),
                        &prefixes,
                    )?);
                    if let Some(base) = &args.base {
                        found.extend(clusters_at(repo, base, &prefixes)?);
                    }
                }
                found.into_iter().collect()
            }
            Against::LiveCluster | Against::LiveFile(_) => match &settings.cluster {
                Some(cluster) => vec![cluster.clone()],
                None => {
                    let labelled: BTreeSet<String> = live
                        .iter()
                        .filter_map(|o| o.label(meta::LABEL_CLUSTER).map(str::to_owned))
                        .collect();
                    if labelled.is_empty() || against == Against::LiveCluster {
                        return Err(CliError::MissingCluster);
                    }
                    labelled.into_iter().collect()
                }
            },
        }
    };
    let mut diffs = Vec::new();
    for cluster in &clusters {
        let head = render_cluster(&sources.head, &settings, cluster, args);
        let diff = match (&against, &sources.base) {
            (Against::Revision, Some((base_snapshot, _))) => {
                let base = render_cluster(base_snapshot, &settings, cluster, args);
                ci::compare_revisions(&base, &head, &policy)
            }
            _ => ci::compare_live(&head, &live, &policy),
        };
        diffs.push(diff);
    }
    Ok(Report {
        base: sources.base.map(|(_, sha)| sha),
        head: sources.head_sha,
        against,
        services: sources.only.map(|only| only.into_iter().collect()),
        clusters: diffs,
    })
}
