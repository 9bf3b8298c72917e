//! `flink-gitops run`: the reconciler daemon.

use super::{CliError, ExitCode, RunArgs, load_settings};
use crate::daemon::run::{DaemonOptions, ShutdownRequests, run as run_daemon};
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
    let options = DaemonOptions {
        settings,
        cluster,
        kubeconfig: args.kube.kubeconfig.clone(),
        context: args.kube.context.clone(),
    };
    // The signal handlers need the runtime.
    runtime
        .block_on(async { run_daemon(options, shutdown_requests()).await })
        .map_err(|e| CliError::Daemon(e.to_string()))?;
    Ok(ExitCode::Success)
}

/// One message per SIGTERM (Kubernetes) or Ctrl-C, for as long as the
/// daemon runs.
fn shutdown_requests() -> ShutdownRequests {
    let (requests, received) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        loop {
            #[cfg(unix)]
            let terminate = async {
                match term.as_mut() {
                    Some(term) => {
                        term.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let terminate = std::future::pending::<()>();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                () = terminate => {},
            }
            if requests.send(()).await.is_err() {
                return;
            }
        }
    });
    received
}
