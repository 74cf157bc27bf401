//! `arcctl runs list` and `arcctl runs show`.

use super::Ctx;
use crate::exit::{emit, CliError};
use crate::table::Table;
use crate::view;
use arc_shared::budget::Budget;
use arc_shared::ids::{ConfigName, RunId};
use arc_shared::json::decimal_to_json;
use arc_shared::records::{Item, RunRecord};
use arc_shared::status::TaskStatus;
use arc_shared::store::Tables;
use arc_shared::ArcError;
use rust_decimal::Decimal;
use serde_json::json;

/// Items asked for per page (DynamoDB also stops at 1 MB).
const PAGE: i32 = 100;

/// Runs of `config` newest first (config-created-index), or at most `limit` runs of a scan
/// (shown newest first; a scan does not know which runs are the newest overall).
pub async fn list_runs(
    tables: &Tables,
    config: Option<&ConfigName>,
    limit: usize,
) -> Result<(Vec<RunRecord>, Vec<String>), ArcError> {
    let mut runs = Vec::new();
    let mut warnings = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let size = PAGE.min(i32::try_from(limit.saturating_sub(runs.len())).unwrap_or(PAGE)).max(1);
        let page = tables.runs_page(config.map(ConfigName::as_str), size, start.take()).await?;
        for item in page.items {
            match RunRecord::from_item(item) {
                Ok(r) => runs.push(r),
                Err(e) => warnings.push(format!("skipped unreadable run: {e}")),
            }
        }
        match page.next {
            Some(k) if runs.len() < limit => start = Some(k),
            _ => break,
        }
    }
    runs.truncate(limit);
    runs.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.run_id.cmp(&b.run_id)));
    Ok((runs, warnings))
}

pub async fn list(ctx: &Ctx, config: Option<&ConfigName>, limit: usize) -> Result<(), CliError> {
    let (runs, warnings) = list_runs(&ctx.tables(), config, limit).await?;
    for w in &warnings {
        eprintln!("arcctl: warning: {w}");
    }
    if ctx.json {
        let out: Vec<_> = runs.iter().map(view::run_json).collect();
        emit(&json_text(&json!(out))?);
        return Ok(());
    }
    if runs.is_empty() {
        eprintln!("no runs{}", config.map(|c| format!(" of config {c}")).unwrap_or_default());
        return Ok(());
    }
    if config.is_none() && runs.len() >= limit {
        eprintln!(
            "note: the first {limit} runs of a table scan, shown newest first; \
             --config NAME lists a config's newest runs, --limit N scans further"
        );
    }
    let mut t = Table::new(["RUN", "CONFIG", "STATUS", "CREATED", "TASKS", "DONE", "FAILED", "COST", "ACCURACY"]);
    for r in &runs {
        t.row([
            r.run_id.clone(),
            r.config_name.clone().unwrap_or_default(),
            r.status.as_str().to_owned(),
            r.created_at.clone().unwrap_or_default(),
            r.total_tasks.to_string(),
            r.completed_tasks.to_string(),
            r.failed_tasks.to_string(),
            view::money(r.total_cost_usd),
            view::percent(r.accuracy),
        ]);
    }
    emit(&t.render());
    Ok(())
}

pub async fn show(ctx: &Ctx, run_id: &RunId) -> Result<(), CliError> {
    let tables = ctx.tables();
    let run = tables.require_run(run_id.as_str()).await?;
    let tasks = tables.run_tasks(run_id.as_str()).await?;
    let counts = view::status_counts(tasks.iter().map(|t| &t.status));
    let tasks_cost: Decimal = tasks.iter().filter_map(|t| t.cost_usd).sum();
    let correct = tasks.iter().filter(|t| t.status == TaskStatus::Completed && t.is_correct == Some(true)).count();
    let mut failed: Vec<_> = tasks
        .iter()
        .filter(|t| matches!(t.status, TaskStatus::Failed | TaskStatus::FailedPermanent | TaskStatus::RetryQueued))
        .collect();
    failed.sort_by(|a, b| a.task_id.cmp(&b.task_id));

    // The budget as Aggregate reports it: spend is the tasks' exact sum.
    // Retryable: FAILED, and RETRY_QUEUED (re-queued, its cost still to come).
    let retryable = [TaskStatus::Failed, TaskStatus::RetryQueued]
        .iter()
        .map(|s| counts.get(s.as_str()).copied().unwrap_or(0))
        .sum::<u64>();
    let completed = counts.get(TaskStatus::Completed.as_str()).copied().unwrap_or(0);
    let budget = run.max_cost_usd.map(|max| Budget::of(max, tasks_cost, completed, retryable));
    if ctx.json {
        let out = json!({
            "run": view::run_json(&run),
            "budget": budget,
            "status_counts": counts,
            "tasks": tasks.len(),
            "correct_tasks": correct,
            "tasks_cost_usd": decimal_to_json(tasks_cost),
            "failed_tasks": failed.iter().map(|t| view::failed_task_json(t)).collect::<Vec<_>>(),
        });
        emit(&json_text(&out)?);
        return Ok(());
    }

    let mut head = view::run_head(&run);
    if let Some(by) = &run.cancelled_by {
        let reason = run.cancelled_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        head.row([
            "cancelled".to_owned(),
            format!("by {by} at {}{reason}", run.cancelled_at.as_deref().unwrap_or("?")),
        ]);
    }
    head.row(["created", run.created_at.as_deref().unwrap_or("-")]);
    head.row(["completed", run.completed_at.as_deref().unwrap_or("-")]);
    head.row(["execution", run.execution_arn.as_deref().unwrap_or("-")]);
    head.row(["retry generation".to_owned(), run.retry_generation.to_string()]);
    head.row([
        "tasks".to_owned(),
        format!("{} ({} completed, {} failed)", run.total_tasks, run.completed_tasks, run.failed_tasks),
    ]);
    head.row([
        "cost".to_owned(),
        format!("{} (tasks sum {})", view::money(run.total_cost_usd), view::money(Some(tasks_cost))),
    ]);
    head.row(["accuracy".to_owned(), format!("{} ({correct} correct)", view::percent(run.accuracy))]);
    if let Some(b) = &budget {
        let projected = b
            .projected_retry_cost_usd
            .map_or_else(|| "unknown (no task completed yet)".to_owned(), |p| view::money(Some(p)));
        let mut line = format!(
            "{} spent of {}; retrying the {} FAILED / RETRY_QUEUED task(s) ≈ {projected}",
            view::money(Some(b.spent_usd)),
            view::money(Some(b.max_cost_usd)),
            b.retryable_tasks
        );
        if b.over_budget_tasks > 0 {
            line.push_str(&format!("; {} fit, {} NOT retried: over budget", b.fit_tasks, b.over_budget_tasks));
        }
        head.row(["budget".to_owned(), line]);
    }
    if let (Some(n), Some(at)) = (run.over_budget_tasks.filter(|n| *n > 0), &run.over_budget_at) {
        head.row(["retries stopped".to_owned(), format!("{n} task(s) left FAILED for the budget (sweep at {at})")]);
    }
    let report = match (&ctx.config.s3_bucket, &run.results_s3_key) {
        (Some(bucket), Some(key)) => format!("s3://{bucket}/{key}"),
        (None, Some(key)) => key.clone(),
        (_, None) => "-".to_owned(),
    };
    head.row(["report".to_owned(), report]);
    emit(&format!("{}\n", head.render()));
    emit(&view::status_table(&counts).render());
    if !failed.is_empty() {
        let mut t = Table::new(["FAILED TASK", "STATUS", "RETRIES", "NEXT RETRY", "CLASS", "LAST ERROR"]);
        for task in &failed {
            let next = match task.status {
                TaskStatus::Failed => task.next_retry_at.clone().unwrap_or_else(|| "-".to_owned()),
                TaskStatus::RetryQueued => "queued".to_owned(),
                _ => "never".to_owned(),
            };
            t.row([
                task.task_id.clone(),
                task.status.as_str().to_owned(),
                task.retry_count.to_string(),
                next,
                task.failure_class.clone().unwrap_or_else(|| "-".to_owned()),
                view::error_summary(task),
            ]);
        }
        emit(&format!("\n{}", t.render()));
    }
    Ok(())
}

/// Pretty JSON text.
pub fn json_text(v: &impl serde::Serialize) -> Result<String, CliError> {
    serde_json::to_string_pretty(v).map_err(|e| CliError::failed(format!("JSON output: {e}")))
}
