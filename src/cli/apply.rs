//! `flink-gitops apply`: execute the plan, and with `--prune` the prune steps.

use super::live::{options, plan_against_cluster, runtime};
use super::{ApplyArgs, CliError, ExitCode, plan_output};
use crate::apply::prune::PruneResult;
use crate::apply::{ApplyReport, execute_at, prune};
use crate::plan::prune::{PruneAction, PrunePlan};
use crate::plan::{Action, Plan};
use crate::render::shutdown_job;
use std::io::Write;

pub fn run(
    args: &ApplyArgs,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let runtime = runtime()?;
    let (plan, prunes, report, pruned, diagnostics) = runtime.block_on(async {
        let live = plan_against_cluster(&args.cluster, args.allow_mass_prune).await?;
        let options = options(&live.settings, args.dry_run);
        let report = execute_at(
            &live.plan,
            &live.cluster,
            &options,
            Some(live.revision.as_str()).filter(|r| *r != "local"),
        )
        .await;
        let pruned = if args.prune && !args.dry_run {
            let template = match &live.settings.prune.job_template {
                Some(template) => template.clone(),
                None => shutdown_job::default_template().map_err(CliError::JobTemplate)?,
            };
            prune::execute(
                &live.prunes,
                &live.cluster,
                &options.policy.field_manager,
                &template,
                &live.revision,
                std::time::SystemTime::now(),
            )
            .await
        } else {
            Vec::new()
        };
        let diagnostics: Vec<String> = live
            .desired
            .diagnostics()
            .map(ToString::to_string)
            .collect();
        Ok::<_, CliError>((live.plan, live.prunes, report, pruned, diagnostics))
    })?;
    for diagnostic in &diagnostics {
        writeln!(stderr, "{diagnostic}")?;
    }
    for failure in report.failures() {
        if let Err(error) = &failure.outcome {
            writeln!(stderr, "error: {error}")?;
        }
    }
    for result in &pruned {
        if let Err(error) = &result.outcome {
            writeln!(stderr, "error: prune of {}: {error}", result.subject)?;
        }
    }
    stdout.write_all(summary(&plan, &report, args.dry_run).as_bytes())?;
    stdout.write_all(prune_summary(&prunes, &pruned, args.prune && !args.dry_run).as_bytes())?;
    let prune_trouble = args.prune
        && (pruned.iter().any(|r| r.outcome.is_err())
            || prunes.entries.iter().any(|e| {
                matches!(
                    e.action,
                    PruneAction::Failed | PruneAction::TimedOut | PruneAction::MassPruneBlocked
                )
            }));
    let failed = report.failures().next().is_some()
        || prune_trouble
        || plan
            .entries
            .iter()
            .any(|e| matches!(e.action, Action::Failed(_) | Action::Blocked(_)));
    Ok(if failed {
        ExitCode::Failures
    } else {
        ExitCode::Success
    })
}

/// The summary table: created / updated / unchanged / skipped / failed.
fn summary(plan: &Plan, report: &ApplyReport, dry_run: bool) -> String {
    let done = |action: &str| {
        report
            .writes
            .iter()
            .filter(|w| w.action == action && w.outcome.is_ok())
            .count()
    };
    let counts = plan.counts();
    let count = |name: &str| counts.get(name).copied().unwrap_or(0);
    let failed = report.failures().count() + count("failed") + count("blocked");
    let mut out = String::new();
    if dry_run {
        out.push_str("dry run (dryRun=All): nothing was stored\n");
    }
    for (label, value) in [
        ("created", done("create")),
        ("updated", done("update")),
        ("unchanged", count("unchanged")),
        ("skipped", count("skip")),
        ("failed", failed),
        ("orphaned", plan.orphans.len()),
        ("unmanaged", plan.unmanaged.len()),
    ] {
        out.push_str(&format!("{label:<10} {value:>8}\n"));
    }
    for namespace in &report.namespaces_created {
        out.push_str(&format!("created namespace {namespace}\n"));
    }
    out.push_str(&format!(
        "{}: {}\n",
        plan.cluster,
        plan_output::summary_line(plan)
    ));
    out
}

/// One line per prune step; what was done when `executed`, else what
/// `apply --prune` would do.
fn prune_summary(prunes: &PrunePlan, results: &[PruneResult], executed: bool) -> String {
    if prunes.entries.is_empty() && prunes.held.is_none() {
        return String::new();
    }
    let mut out = String::new();
    if !executed && !prunes.entries.is_empty() {
        out.push_str("prunes (not executed: pass --prune):\n");
    }
    out.push_str(&plan_output::prunes_text(prunes));
    if executed && !prunes.entries.is_empty() {
        let done = results
            .iter()
            .filter(|result| result.writes && result.outcome.is_ok())
            .count();
        out.push_str(&format!("prune steps executed: {done}\n"));
    }
    out
}
