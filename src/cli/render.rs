//! `flink-gitops render`.

use super::output::{json_list, report_problems};
use super::{CliError, ExitCode, OutputFormat, RenderArgs, chosen_cluster, load_settings};
use crate::config::parallel::map_in_order;
use crate::pipeline;
use crate::source::DirListing;
use crate::value::Value;
use crate::value::yaml_out::to_yaml;
use std::io::Write;

/// Documents formatted together before they are written.
const YAML_BATCH: usize = 1024;

pub fn run(
    args: &RenderArgs,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let settings = load_settings(args.source.config.as_deref())?;
    let cluster = chosen_cluster(args.cluster.as_deref(), &settings);
    let listing = DirListing::open(
        &args.source.soa_dir,
        &settings.file_selection(),
        cluster.as_deref(),
    )?;
    let cluster = cluster.ok_or(CliError::MissingCluster)?;
    if let Some(service) = &args.service
        && !listing.names().any(|name| name == service)
    {
        return Err(CliError::UnknownService {
            service: service.clone(),
            soa_dir: listing.root().to_owned(),
        });
    }
    let desired = pipeline::render_listing(
        &listing,
        &settings,
        &cluster,
        args.service.as_deref(),
        args.instance.as_deref(),
    );
    if let Some(instance) = &args.instance {
        let found = desired.resources.iter().any(|r| &r.instance == instance)
            || desired.skipped.iter().any(|s| &s.instance == instance)
            || desired.failed.iter().any(|f| &f.instance == instance);
        // An unknown service may hold it: then the diagnostics say why.
        if !found && desired.unknown_services.is_empty() {
            return Err(CliError::UnknownInstance {
                instance: instance.clone(),
                scope: args
                    .service
                    .clone()
                    .unwrap_or_else(|| "any service".to_owned()),
                cluster,
            });
        }
    }
    let objects = desired.resources.iter().map(|r| &r.object);
    match args.output {
        OutputFormat::Yaml => {
            // A batch of documents at a time is formatted by a few threads
            // (order unchanged); memory stays bounded by the batch.
            let objects: Vec<&Value> = objects.collect();
            let mut buffered = std::io::BufWriter::with_capacity(64 * 1024, &mut *stdout);
            for batch in objects.chunks(YAML_BATCH) {
                let documents = map_in_order(batch, 64, |value| to_yaml(value));
                for document in &documents {
                    buffered.write_all(b"---\n")?;
                    buffered.write_all(document.as_bytes())?;
                }
            }
            buffered.flush()?;
        }
        OutputFormat::Json => stdout.write_all(json_list(objects).as_bytes())?,
    }
    stdout.flush()?;
    report_problems(&desired, stderr)?;
    let code = if desired.is_clean() {
        ExitCode::Success
    } else {
        ExitCode::Failures
    };
    // The process exits next: freeing thousands of resource trees one
    // allocation at a time would take longer than the operating system
    // takes to reclaim the memory at once (a tenth of the render's time).
    std::mem::forget(desired);
    Ok(code)
}
