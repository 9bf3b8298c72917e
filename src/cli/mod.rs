//! The command line: `render` and `validate`.
//!
//! Commands write results to `stdout` and diagnostics to `stderr`, both passed
//! in so tests can capture them; they return an [`ExitCode`].

mod apply;
mod diff;
mod live;
mod output;
pub mod plan_output;
mod render;
mod run;
mod status;
mod validate;

use crate::config::{Settings, SettingsError};
use crate::source::{Snapshot, SourceError, read_dir, read_dir_for_cluster};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Everything rendered, was skipped, or validated.
    Success = 0,
    /// At least one service or instance failed.
    Failures = 1,
    /// A usage or configuration error: nothing was rendered.
    Usage = 2,
}

/// Keeps Flink clusters on Kubernetes in step with a PaaSTA soa-configs repository.
#[derive(Debug, Parser)]
#[command(name = "flink-gitops", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render the desired Flink custom resources of one cluster, exactly as
    /// PaaSTA's setup_kubernetes_cr would create them.
    Render(RenderArgs),
    /// Check every instance file of every cluster (or one) and print every problem.
    Validate(ValidateArgs),
    /// Show what `apply` would change in the live cluster, with a diff per change.
    Diff(DiffArgs),
    /// Apply the changes to the live cluster (server-side apply, minimal writes).
    Apply(ApplyArgs),
    /// Run the reconciler daemon: poll git (or watch a directory), serve hooks,
    /// health, metrics and status, and keep the cluster in step.
    Run(RunArgs),
    /// Show one instance as `paasta status` does, plus whether it is in step
    /// with soa-configs, a prune in progress and (with -v) recent Events.
    Status(StatusArgs),
}

/// `status`: one instance in the live cluster.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The service.
    #[arg(long, short = 's')]
    pub service: String,
    /// The instance.
    #[arg(long, short = 'i')]
    pub instance: String,
    /// The cluster; defaults to `cluster` of the configuration.
    #[arg(long, short = 'c')]
    pub cluster: Option<String>,
    /// Also show the object's last Events.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// The reconciler configuration (flink-gitops.yaml); built-in PaaSTA defaults when absent.
    #[arg(long, value_name = "FILE", env = "FLINK_GITOPS_CONFIG")]
    pub config: Option<PathBuf>,
    /// The soa-configs directory: when given, render and plan this one
    /// instance to show whether it is in sync, drifted or pending.
    #[arg(long, value_name = "DIR")]
    pub soa_dir: Option<PathBuf>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The reconciler configuration (flink-gitops.yaml).
    #[arg(long, value_name = "FILE", env = "FLINK_GITOPS_CONFIG")]
    pub config: PathBuf,
    /// The cluster; defaults to `cluster` of the configuration.
    #[arg(long, short = 'c')]
    pub cluster: Option<String>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// Where the Kubernetes API server is: options of every command that talks to one.
#[derive(Debug, Clone, clap::Args)]
pub struct KubeArgs {
    /// Kubeconfig file; default: $KUBECONFIG, ~/.kube/config, then in-cluster configuration.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context; default: the current context.
    #[arg(long)]
    pub context: Option<String>,
}

impl KubeArgs {
    /// Connects with the `apply` settings' retries and request timeout.
    pub async fn connect(
        &self,
        settings: &crate::config::ApplySettings,
    ) -> Result<crate::apply::KubeCluster, CliError> {
        crate::apply::KubeCluster::connect(
            self.kubeconfig.as_deref(),
            self.context.as_deref(),
            settings,
        )
        .await
        .map_err(CliError::Cluster)
    }
}

/// Options of commands that talk to a cluster.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// The cluster (files `<prefix>-<cluster>.yaml`); defaults to `cluster` of the configuration.
    #[arg(long, short = 'c')]
    pub cluster: Option<String>,
    /// Only this service.
    #[arg(long, short = 's')]
    pub service: Option<String>,
    /// Only instances with this name.
    #[arg(long, short = 'i')]
    pub instance: Option<String>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `diff`: the plan against the live cluster (`--soa-dir`), or a
/// comparison of two revisions of a git repository for CI (`--repo`).
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The soa-configs directory (one folder per service); not used with --repo.
    #[arg(
        long,
        value_name = "DIR",
        env = "FLINK_GITOPS_SOA_DIR",
        required_unless_present = "repo"
    )]
    pub soa_dir: Option<PathBuf>,
    /// The reconciler configuration (flink-gitops.yaml); built-in PaaSTA defaults when absent.
    #[arg(long, value_name = "FILE", env = "FLINK_GITOPS_CONFIG")]
    pub config: Option<PathBuf>,
    /// A local soa-configs git repository: revisions are read from its
    /// object database, nothing is checked out.
    #[arg(long, value_name = "PATH")]
    pub repo: Option<PathBuf>,
    /// The revision the change starts from (the pull request's target);
    /// only services whose files changed since it are rendered.
    #[arg(long, value_name = "REV", requires = "repo")]
    pub base: Option<String>,
    /// The revision with the change; default HEAD.
    #[arg(long, value_name = "REV", requires = "repo")]
    pub head: Option<String>,
    /// The cluster (files `<prefix>-<cluster>.yaml`); repeat for several.
    /// With --repo and no --live: every cluster a changed service has a file for.
    #[arg(long, short = 'c')]
    pub cluster: Vec<String>,
    /// Only this service.
    #[arg(long, short = 's')]
    pub service: Option<String>,
    /// Only instances with this name.
    #[arg(long, short = 'i')]
    pub instance: Option<String>,
    /// Compare with `kube` (the live cluster), `none` (an empty cluster) or a
    /// FILE (a `kubectl get -o yaml|json` dump) instead of the base revision.
    #[arg(long, value_name = "kube|none|FILE", value_parser = parse_live)]
    pub live: Option<LiveSource>,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = PlanFormat::Text)]
    pub output: PlanFormat,
    /// Exit 0 when nothing would change, 1 when something would, 2 on any error.
    #[arg(long)]
    pub exit_code: bool,
}

/// What `diff --live` compares with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveSource {
    /// The live cluster (kubeconfig).
    Kube,
    /// An empty cluster.
    None,
    /// A `kubectl get -o yaml|json` dump.
    File(PathBuf),
}

fn parse_live(value: &str) -> Result<LiveSource, String> {
    Ok(match value {
        "kube" => LiveSource::Kube,
        "none" => LiveSource::None,
        "" => return Err("expected kube, none or a file".to_owned()),
        path => LiveSource::File(PathBuf::from(path)),
    })
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Send every write with dryRun=All: the API server validates, nothing is stored.
    #[arg(long)]
    pub dry_run: bool,
    /// Run the prune protocol for clusters removed from soa-configs (stop
    /// with a savepoint through the shutdown Job, then delete).
    #[arg(long)]
    pub prune: bool,
    /// With --prune: go past the mass-prune guard this once.
    #[arg(long, requires = "prune")]
    pub allow_mass_prune: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Markdown,
    Json,
}

/// Options shared by commands that read soa-configs.
#[derive(Debug, clap::Args)]
pub struct SourceArgs {
    /// The soa-configs directory (one folder per service).
    #[arg(long, value_name = "DIR", env = "FLINK_GITOPS_SOA_DIR")]
    pub soa_dir: PathBuf,
    /// The reconciler configuration (flink-gitops.yaml); built-in PaaSTA defaults when absent.
    #[arg(long, value_name = "FILE", env = "FLINK_GITOPS_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// The cluster to render for (files `<prefix>-<cluster>.yaml`); defaults to `cluster` of the configuration.
    #[arg(long, short = 'c')]
    pub cluster: Option<String>,
    /// Only this service.
    #[arg(long, short = 's')]
    pub service: Option<String>,
    /// Only instances with this name (in every selected service).
    #[arg(long, short = 'i')]
    pub instance: Option<String>,
    /// Output format: a multi-document YAML stream, or a kubectl-style JSON List.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Only this cluster; by default every cluster some service has a file for.
    #[arg(long, short = 'c')]
    pub cluster: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Yaml,
    Json,
}

/// Why a command could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("failed to read the configuration {path}")]
    ReadConfig {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    InvalidConfig(#[from] SettingsError),
    #[error(transparent)]
    ReadSource(#[from] SourceError),
    #[error("no cluster given: pass --cluster or set `cluster` in the configuration")]
    MissingCluster,
    #[error("no service folder named `{service}` in {soa_dir}")]
    UnknownService { service: String, soa_dir: String },
    #[error("no instance named `{instance}` in {scope} for cluster {cluster}")]
    UnknownInstance {
        instance: String,
        scope: String,
        cluster: String,
    },
    #[error(transparent)]
    Cluster(crate::apply::ApplyError),
    #[error("invalid shutdown Job template: {0}")]
    JobTemplate(String),
    #[error(transparent)]
    Git(#[from] crate::source::git::GitError),
    #[error("failed to read the live objects in {path}: {reason}")]
    LiveDump { path: String, reason: String },
    #[error("{0}")]
    DiffUsage(String),
    #[error("the daemon stopped: {0}")]
    Daemon(String),
    #[error("failed to write the output")]
    Write(#[from] std::io::Error),
}

/// Runs the parsed command line.
pub fn run(
    cli: &Cli,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    match &cli.command {
        Command::Render(args) => render::run(args, stdout, stderr),
        Command::Validate(args) => validate::run(args, stdout, stderr),
        Command::Diff(args) => diff::run(args, stdout, stderr),
        Command::Apply(args) => apply::run(args, stdout, stderr),
        Command::Run(args) => run::run(args, stdout, stderr),
        Command::Status(args) => status::run(args, stdout, stderr),
    }
}

/// Reads the configuration file, or the defaults when none is given.
fn load_settings(path: Option<&Path>) -> Result<Settings, CliError> {
    let Some(path) = path else {
        return Ok(Settings::default());
    };
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| CliError::ReadConfig {
        path: display.clone(),
        source,
    })?;
    Ok(Settings::parse(&text, &display)?)
}

/// Reads the settings and the soa-configs snapshot they select.
fn load_inputs(args: &SourceArgs) -> Result<(Settings, Snapshot), CliError> {
    let settings = load_settings(args.config.as_deref())?;
    let selection = settings.file_selection();
    let snapshot = read_dir(&args.soa_dir, &selection)?;
    Ok((settings, snapshot))
}

/// Like `load_inputs`, but when the cluster is known (from `cluster` or the
/// configuration) only that cluster's instance files are read. Returns the
/// cluster too (`None` when neither names one; the caller decides whether
/// that is an error, after the snapshot was read as before).
/// The cluster from the command line, else `cluster` in `flink-gitops.yaml`.
fn chosen_cluster(cluster: Option<&str>, settings: &Settings) -> Option<String> {
    cluster
        .map(str::to_owned)
        .or_else(|| settings.cluster.clone())
}

fn load_cluster_inputs(
    source: &SourceArgs,
    cluster: Option<&str>,
) -> Result<(Settings, Option<String>, Snapshot), CliError> {
    let settings = load_settings(source.config.as_deref())?;
    let cluster = chosen_cluster(cluster, &settings);
    let selection = settings.file_selection();
    let snapshot = match &cluster {
        Some(cluster) => read_dir_for_cluster(&source.soa_dir, &selection, cluster)?,
        None => read_dir(&source.soa_dir, &selection)?,
    };
    Ok((settings, cluster, snapshot))
}
