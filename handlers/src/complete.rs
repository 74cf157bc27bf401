//! complete — the run's final status and CloudWatch metrics.
//!
//! In: `arc_shared::contracts::CompleteInput` (`{run_id, aggregation, execution_arn?}`, the
//! aggregation being aggregate's answer). Out: `CompleteOutput`.
//!
//! Status: all failed → FAILED; any failed → COMPLETED_WITH_ERRORS; else COMPLETED. Given the
//! run's current execution, tasks still in flight are first settled as failed attempts (so no
//! task stays IN_PROGRESS forever) and the counts are read from the tasks table itself.
//!
//! Metrics count each run once: `RunCompleted` = 1 the first time the run completes, and
//! `TasksCompleted`, `TasksFailed`, `TotalCostUSD` as deltas against what this run already
//! published, which the run item records in the same conditional write that decides the
//! publish. So a run retried twice adds up on the dashboard to what its tasks table says. A
//! repeated invocation for the same execution returns the stored result and publishes nothing;
//! an execution that is no longer the run's current one changes nothing. A CloudWatch failure
//! is logged, not fatal.
//!
//! A CANCELLED run (an operator stopped it; its old execution redriven, or its Complete already
//! running when it was cancelled) stays CANCELLED: its tasks are not settled, the write is
//! conditional on the status, and it publishes `RunCancelled` = 1 once per run (kept as
//! `published_run_cancelled`) instead of `RunCompleted`, with the same task deltas.

use crate::aggregate::{settle_left_in_flight, superseded};
pub use arc_shared::contracts::CompleteOutput as Output;
use arc_shared::contracts::{CompleteInput, FinalMetrics, RunFigures};
use arc_shared::input::{optional_arn, parse_event};
use arc_shared::metrics::Metrics;
use arc_shared::records::RunRecord;
use arc_shared::runtime::Env;
use arc_shared::status::RunStatus;
use arc_shared::store::metrics::{put_metrics, Datum, Unit};
use arc_shared::store::{Published, RunCompletion};
use arc_shared::time::{format_ts, parse_ts};
use arc_shared::{ArcError, Result};
use rust_decimal::prelude::ToPrimitive;
use serde_json::Value;
use std::sync::Arc;

pub async fn handle(env: Arc<Env>, event: Value) -> Result<Output> {
    let env = env.as_ref();
    let input: CompleteInput = parse_event(event)?;
    let agg = input.aggregation;
    let counted = agg.completed_tasks.checked_add(agg.failed_tasks);
    if counted.is_none_or(|c| c > agg.total_tasks) {
        return Err(ArcError::invalid("aggregation", "completed_tasks + failed_tasks exceeds total_tasks"));
    }
    if !(0.0..=1.0).contains(&agg.accuracy) {
        return Err(ArcError::invalid("aggregation.accuracy", "must be between 0 and 1"));
    }
    if agg.total_cost_usd.is_sign_negative() {
        return Err(ArcError::invalid("aggregation.total_cost_usd", "must not be negative"));
    }
    let run_id = input.run_id.as_str();
    let execution_arn = optional_arn("execution_arn", input.execution_arn)?;
    let tables = env.tables();
    let run = tables.require_run(run_id).await?;
    if superseded(run.execution_arn.as_deref(), execution_arn.as_deref()) {
        tracing::warn!(
            run_id,
            execution_arn,
            current = run.execution_arn.as_deref(),
            "complete of an execution that is no longer the run's current one: nothing written"
        );
        return Ok(Output { superseded: true, ..stored_output(&run) });
    }
    if execution_arn.is_some() && run.completed_by_execution == execution_arn {
        tracing::info!(run_id, execution_arn, "already completed by this execution: returning the stored result");
        return Ok(stored_output(&run));
    }

    let now = env.clock.now();
    let cancelled = run.status == RunStatus::Cancelled;
    // The state machine's path: settle what is still in flight (never for a CANCELLED run: its
    // tasks are left as they are), count from the table.
    let figures = if execution_arn.is_some() {
        let mut tasks = tables.run_tasks(run_id).await?;
        if !cancelled {
            settle_left_in_flight(env, &mut tasks).await?;
        }
        let mut m = Metrics::default();
        for t in &tasks {
            m.add(&t.status, t.cost_usd, t.is_correct, (None, None));
        }
        m.figures()
    } else {
        agg
    };

    let completed_at = format_ts(now);
    let status = if cancelled {
        RunStatus::Cancelled
    } else {
        RunStatus::from_counts(figures.total_tasks, figures.failed_tasks)
    };
    let duration_seconds = run
        .created_at
        .as_deref()
        .and_then(parse_ts)
        .map(|c| (now - c).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    let before = Published::of(&run);
    let after = Published {
        run_completed: before.run_completed || !cancelled,
        run_cancelled: before.run_cancelled || cancelled,
        tasks_completed: figures.completed_tasks,
        tasks_failed: figures.failed_tasks,
        cost_usd: figures.total_cost_usd,
    };
    let completion = RunCompletion {
        run: &run,
        status: &status,
        figures,
        duration_seconds,
        completed_at: &completed_at,
        published: after,
        execution_arn: execution_arn.as_deref(),
    };
    if !tables.complete_run(&completion).await? {
        // Gone, or a concurrent invocation completed it first.
        let again = tables.require_run(run_id).await?;
        if execution_arn.is_some() && again.completed_by_execution == execution_arn {
            return Ok(stored_output(&again));
        }
        if !cancelled && again.status == RunStatus::Cancelled {
            tracing::warn!(run_id, "run cancelled while completing it: left CANCELLED, nothing published");
            return Ok(stored_output(&again));
        }
        return Err(ArcError::Conflict(format!("run {run_id} changed while completing it")));
    }

    let config_name = run.config_name.clone().unwrap_or_else(|| "unknown".to_owned());
    let published =
        publish_metrics(env, &config_name, &status, &before, &after, figures.accuracy, duration_seconds).await;
    tracing::info!(run_id, status = %status, duration_seconds, metrics_published = published, "run completed");
    Ok(Output {
        run_id: run_id.to_owned(),
        status,
        completed_at: Some(completed_at),
        final_metrics: FinalMetrics::new(figures, duration_seconds),
        metrics_published: published,
        superseded: false,
    })
}

fn stored_output(run: &RunRecord) -> Output {
    Output {
        run_id: run.run_id.clone(),
        status: run.status.clone(),
        completed_at: run.completed_at.clone(),
        final_metrics: FinalMetrics::new(
            RunFigures {
                total_tasks: run.total_tasks,
                completed_tasks: run.completed_tasks,
                failed_tasks: run.failed_tasks,
                accuracy: run.accuracy.unwrap_or(0.0),
                total_cost_usd: run.total_cost_usd.unwrap_or_default(),
            },
            run.duration_seconds.unwrap_or(0.0),
        ),
        metrics_published: false,
        superseded: false,
    }
}

/// `after - before` as a metric value (a count may go down: a failed task retried and
/// completed moves from TasksFailed to TasksCompleted).
fn delta(after: u64, before: u64) -> f64 {
    after as f64 - before as f64
}

/// Publishes the run's metrics as deltas against `before`; a failure is logged and reported
/// as `false`.
#[allow(clippy::too_many_arguments)]
async fn publish_metrics(
    env: &Env,
    config_name: &str,
    status: &RunStatus,
    before: &Published,
    after: &Published,
    accuracy: f64,
    duration: f64,
) -> bool {
    let cost = (after.cost_usd - before.cost_usd).to_f64().unwrap_or(0.0);
    // A cancelled run is counted once as cancelled, never as completed by this write.
    let run_datum = if *status == RunStatus::Cancelled {
        Datum::count("RunCancelled", if before.run_cancelled { 0.0 } else { 1.0 })
    } else {
        Datum::count("RunCompleted", if before.run_completed { 0.0 } else { 1.0 })
    };
    let data = [
        run_datum,
        Datum::count("TasksCompleted", delta(after.tasks_completed, before.tasks_completed)),
        Datum::count("TasksFailed", delta(after.tasks_failed, before.tasks_failed)),
        Datum::new("Accuracy", accuracy * 100.0, Unit::Percent),
        Datum::new("TotalCostUSD", cost, Unit::None),
        Datum::new("DurationSeconds", duration, Unit::Seconds),
    ];
    let namespace = &env.config.cloudwatch_namespace;
    match put_metrics(&env.clients.cloudwatch, namespace, &data, &[("ConfigName", config_name)]).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(
                namespace = %namespace,
                status = %status,
                error = %e,
                "publishing CloudWatch metrics failed; the run is completed regardless"
            );
            false
        }
    }
}
