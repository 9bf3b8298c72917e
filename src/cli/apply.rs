//! `flink-gitops apply`: execute the plan.

use super::live::{options, plan_against_cluster, runtime};
use super::{ApplyArgs, CliError, ExitCode, plan_output};
use crate::apply::{ApplyReport, execute};
use crate::plan::{Action, Plan};
use std::io::Write;

pub fn run(
    args: &ApplyArgs,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let runtime = runtime()?;
    let (plan, report, diagnostics) = runtime.block_on(async {
        let live = plan_against_cluster(&args.cluster).await?;
        let options = options(&live.settings, args.dry_run);
        let report = execute(&live.plan, &live.cluster, &options).await;
        let diagnostics: Vec<String> = live
            .desired
            .diagnostics()
            .map(ToString::to_string)
            .collect();
        Ok::<_, CliError>((live.plan, report, diagnostics))
    })?;
    for diagnostic in &diagnostics {
        writeln!(stderr, "{diagnostic}")?;
    }
    for failure in report.failures() {
        if let Err(error) = &failure.outcome {
            writeln!(stderr, "error: {error}")?;
        }
    }
    stdout.write_all(summary(&plan, &report, args.dry_run).as_bytes())?;
    let failed = report.failures().next().is_some()
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
    out.push_str(&format!(
        "{:<10} {:>8}\n{:<10} {:>8}\n{:<10} {:>8}\n{:<10} {:>8}\n{:<10} {:>8}\n{:<10} {:>8}\n",
        "created",
        done("create"),
        "updated",
        done("update"),
        "unchanged",
        count("unchanged"),
        "skipped",
        count("skip"),
        "failed",
        failed,
        "orphaned",
        plan.orphans.len(),
    ));
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
