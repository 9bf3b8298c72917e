//! `flink-gitops validate`: every problem of every cluster, nothing rendered.
//!
//! Beyond what `render` reports, a spec problem (a date, unsortable keys) is
//! reported even for instances that are not deployed yet, because it will
//! fail them on their first deployment.

use super::load_cluster_inputs;
use super::{CliError, ExitCode, ValidateArgs, load_inputs};
use crate::config::{self, Diagnostic, ServiceState};
use crate::render;
use std::collections::BTreeSet;
use std::io::Write;

pub fn run(
    args: &ValidateArgs,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    // With --cluster only that cluster's files are read; without it, every
    // cluster's (the cluster of the configuration does not narrow validate).
    let (settings, snapshot) = match &args.cluster {
        Some(cluster) => {
            let (settings, _, snapshot) = load_cluster_inputs(&args.source, Some(cluster))?;
            (settings, snapshot)
        }
        None => load_inputs(&args.source)?,
    };
    let clusters: BTreeSet<String> = match &args.cluster {
        Some(cluster) => BTreeSet::from([cluster.clone()]),
        None => config::clusters_in(&snapshot, &settings),
    };
    // One file can be broken for several reasons but is reported once per line.
    let mut problems: BTreeSet<Diagnostic> = BTreeSet::new();
    let mut instances = 0usize;
    for cluster in &clusters {
        let config_set = config::load(&snapshot, &settings, cluster, None);
        for state in config_set.services.values() {
            match state {
                ServiceState::Unknown(diagnostics) => problems.extend(diagnostics.iter().cloned()),
                ServiceState::Loaded(service) => {
                    instances += service.instances.len();
                    for instance in &service.instances {
                        if let Err(diagnostic) = &instance.spec {
                            problems.insert(diagnostic.clone());
                        }
                    }
                }
            }
        }
        let desired = render::render(&config_set, &settings, None);
        problems.extend(desired.failed.iter().map(|f| f.diagnostic.clone()));
    }
    for problem in &problems {
        writeln!(stderr, "{problem}")?;
    }
    writeln!(
        stdout,
        "checked {instances} instances in {} clusters ({}): {} problems",
        clusters.len(),
        clusters.iter().cloned().collect::<Vec<_>>().join(", "),
        problems.len()
    )?;
    Ok(if problems.is_empty() {
        ExitCode::Success
    } else {
        ExitCode::Failures
    })
}
