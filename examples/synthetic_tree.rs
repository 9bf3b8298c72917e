//! Writes a deterministic, realistic synthetic soa-configs tree, for
//! measuring `flink-gitops render` on a tree the size of a real one.
//!
//! ```text
//! cargo run --release --example synthetic_tree -- OUT_DIR \
//!     [--services 2000] [--clusters pnw-prod,norcal-devc] [--seed 1]
//! ```
//!
//! `OUT_DIR` must be empty or not exist yet. The same options always give a
//! byte-identical tree. Render it with a configuration that has a
//! `docker_registry` and `autotuned_defaults: true`, e.g.:
//!
//! ```text
//! flink-gitops render --soa-dir OUT_DIR --cluster pnw-prod \
//!     --config fixtures/flink-gitops.yaml > /dev/null
//! ```
//!
//! The summary printed at the end says how many resources each cluster must
//! render and how many instances it must skip (not deployed yet). The shape
//! of the tree is described in `benches/support/synthetic.rs`, which
//! `benches/render.rs` shares.

#[path = "../benches/support/synthetic.rs"]
mod synthetic;

use std::path::PathBuf;
use std::process::ExitCode;
use synthetic::Options;

const USAGE: &str = "usage: synthetic_tree OUT_DIR [--services N] [--clusters a,b,...] [--seed N]";

fn parse_args(args: impl Iterator<Item = String>) -> Result<(PathBuf, Options), String> {
    let mut options = Options::default();
    let mut out: Option<PathBuf> = None;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--services" => {
                options.services = value("--services")?
                    .parse()
                    .map_err(|e| format!("--services: {e}"))?;
            }
            "--seed" => {
                options.seed = value("--seed")?
                    .parse()
                    .map_err(|e| format!("--seed: {e}"))?;
            }
            "--clusters" => {
                options.clusters = value("--clusters")?
                    .split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect();
                if options.clusters.is_empty() {
                    return Err("--clusters needs at least one cluster".to_owned());
                }
            }
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            _ if out.is_none() => out = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument {arg}")),
        }
    }
    let out = out.ok_or_else(|| "OUT_DIR is required".to_owned())?;
    Ok((out, options))
}

fn main() -> ExitCode {
    let (out, options) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            if message.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let summary = match synthetic::generate(&out, &options) {
        Ok(summary) => summary,
        Err(error) => {
            eprintln!(
                "error: cannot write the tree into {}: {error}",
                out.display()
            );
            return ExitCode::FAILURE;
        }
    };
    #[allow(clippy::cast_precision_loss)]
    let mib = summary.bytes as f64 / (1024.0 * 1024.0);
    println!(
        "wrote {} services ({} files, {mib:.1} MiB) to {} (seed {})",
        summary.services,
        summary.files,
        out.display(),
        options.seed
    );
    for (cluster, counts) in &summary.clusters {
        println!(
            "  {cluster}: {} instances: {} to render, {} not deployed (skipped); {} autotuned_defaults files",
            counts.instances, counts.deployed, counts.not_deployed, counts.autotuned_files
        );
    }
    ExitCode::SUCCESS
}
