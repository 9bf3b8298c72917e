//! `flink-gitops run`: the reconciler daemon.

use super::{CliError, ExitCode, RunArgs, load_settings};
use crate::daemon::run::{DaemonOptions, run as run_daemon};
use std::io::Write;

pub fn run(
    args: &RunArgs,
    _stdout: &mut dyn Write,
    _stderr: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let settings = load_settings(Some(&args.config))?;
    let cluster = args
        .cluster
        .clone()
        .or_else(|| settings.cluster.clone())
        .ok_or(CliError::MissingCluster)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Write)?;
    runtime
        .block_on(run_daemon(
            DaemonOptions {
                settings,
                cluster,
                kubeconfig: args.kube.kubeconfig.clone(),
                context: args.kube.context.clone(),
            },
            shutdown_signal(),
        ))
        .map_err(|e| CliError::Daemon(e.to_string()))?;
    Ok(ExitCode::Success)
}

/// SIGTERM (Kubernetes) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown requested");
}
