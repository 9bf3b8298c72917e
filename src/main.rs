//! The `flink-gitops` binary: parse arguments, run a command, map the result
//! to an exit code (see `cli::ExitCode`).

use clap::Parser;
use flink_gitops::cli::{Cli, ExitCode, run};

/// mimalloc: loading and rendering make millions of small allocations; it
/// is markedly faster at them (and at freeing) than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr; RUST_LOG overrides. The daemon reports at info, the
    // one-shot commands only warnings (their output is the report).
    let default_level = if matches!(cli.command, flink_gitops::cli::Command::Run(_)) {
        "info"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let mut stdout = std::io::stdout().lock();
    // Not locked: log lines from worker threads write to stderr too.
    let mut stderr = std::io::stderr();
    let code = match run(&cli, &mut stdout, &mut stderr) {
        Ok(code) => code,
        Err(error) => {
            let error = anyhow::Error::from(error);
            // A closed pipe (`| head`) is not a failure of ours.
            if error.chain().any(|cause| {
                cause
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                ExitCode::Success
            } else {
                eprintln!("error: {error:#}");
                ExitCode::Usage
            }
        }
    };
    std::process::ExitCode::from(code as u8)
}
