//! `flink-gitops diff`: the plan against the live cluster, nothing written.

use super::live::{plan_against_cluster, runtime};
use super::{CliError, DiffArgs, ExitCode, PlanFormat, plan_output};
use crate::plan::Action;
use std::io::Write;

pub fn run(
    args: &DiffArgs,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let live = runtime()?.block_on(plan_against_cluster(&args.cluster, false))?;
    let plan = &live.plan;
    let text = match args.output {
        PlanFormat::Text => plan_output::text(plan) + &plan_output::prunes_text(&live.prunes),
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
    Ok(match (args.exit_code, errors, changes) {
        (true, true, _) => ExitCode::Usage,
        (true, false, true) => ExitCode::Failures,
        (true, false, false) | (false, false, _) => ExitCode::Success,
        (false, true, _) => ExitCode::Failures,
    })
}
