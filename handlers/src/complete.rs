//! complete — the run's final status and CloudWatch metrics.
//!
//! In: `{run_id, aggregation, execution_arn?}` (aggregation = aggregate's output).
//! Out: `{run_id, status, completed_at, final_metrics{total_tasks, completed_tasks,
//! failed_tasks, accuracy, total_cost_usd, duration_seconds}}` (+ `metrics_published`,
//! `superseded`).
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
use arc_shared::ids::RunId;
use arc_shared::input::parse_event;
use arc_shared::json::deserialize_decimal;
use arc_shared::metrics::Metrics;
use arc_shared::records::{decimal_attr, n, s, RunRecord};
use arc_shared::runtime::Env;
use arc_shared::status::RunStatus;
use arc_shared::store::{conditional, Tables, UpdateExpr};
use arc_shared::time::{format_ts, parse_ts};
use arc_shared::{ArcError, Result};
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
struct Input {
    run_id: RunId,
    aggregation: Aggregation,
    #[serde(default)]
    execution_arn: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Aggregation {
    total_tasks: u64,
    completed_tasks: u64,
    failed_tasks: u64,
    #[serde(default)]
    accuracy: f64,
    #[serde(deserialize_with = "deserialize_decimal")]
    total_cost_usd: Decimal,
}

/// The figures a run reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalMetrics {
    pub total_tasks: u64,
    pub completed_tasks: u64,
    pub failed_tasks: u64,
    pub accuracy: f64,
    #[serde(with = "arc_shared::json::decimal_number")]
    pub total_cost_usd: Decimal,
    pub duration_seconds: f64,
}

/// Complete's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub run_id: String,
    pub status: String,
    pub completed_at: Option<String>,
    pub final_metrics: FinalMetrics,
    pub metrics_published: bool,
    /// The execution is no longer the run's current one: nothing was written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub superseded: bool,
}

/// What this run has published so far (stored on the run item).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Published {
    run_completed: bool,
    run_cancelled: bool,
    tasks_completed: u64,
    tasks_failed: u64,
    cost_usd: Decimal,
}

const PUBLISHED_RUN: &str = "published_run_completed";
const PUBLISHED_CANCELLED: &str = "published_run_cancelled";
const PUBLISHED_COMPLETED: &str = "published_tasks_completed";
const PUBLISHED_FAILED: &str = "published_tasks_failed";
const PUBLISHED_COST: &str = "published_cost_usd";

impl Published {
    fn of(run: &RunRecord) -> Self {
        Self {
            run_completed: run.published_run_completed.unwrap_or(0) > 0,
            run_cancelled: run.published_run_cancelled.unwrap_or(0) > 0,
            tasks_completed: run.published_tasks_completed.unwrap_or(0),
            tasks_failed: run.published_tasks_failed.unwrap_or(0),
            cost_usd: run.published_cost_usd.unwrap_or_default(),
        }
    }
}

pub async fn handle(env: Arc<Env>, event: Value) -> Result<Value> {
    let out = complete(&env, event).await?;
    serde_json::to_value(out).map_err(|e| ArcError::Conflict(format!("output not serializable: {e}")))
}

/// The typed entry point.
pub async fn complete(env: &Env, event: Value) -> Result<Output> {
    let input: Input = parse_event(event)?;
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
    let execution_arn = input.execution_arn.filter(|a| !a.is_empty());
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
    let (total, completed, failed, accuracy, cost) = if execution_arn.is_some() {
        let mut tasks = tables.run_tasks(run_id).await?;
        if !cancelled {
            settle_left_in_flight(env, &mut tasks).await?;
        }
        let mut m = Metrics::default();
        for t in &tasks {
            m.add(&t.status, t.cost_usd, t.is_correct, (None, None));
        }
        let acc = m.accuracy();
        (m.total_tasks, m.completed_tasks, m.failed_tasks, acc, m.total_cost_usd)
    } else {
        (agg.total_tasks, agg.completed_tasks, agg.failed_tasks, agg.accuracy, agg.total_cost_usd)
    };

    let completed_at = format_ts(now);
    let status = if cancelled { RunStatus::Cancelled } else { RunStatus::from_counts(total, failed) };
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
        tasks_completed: completed,
        tasks_failed: failed,
        cost_usd: cost,
    };
    let update = if cancelled {
        // Never un-cancelled: the write holds only while the run is still CANCELLED.
        UpdateExpr::new()
            .expect_eq("status", s(RunStatus::Cancelled.as_str()))
            .set(PUBLISHED_CANCELLED, n(1))
            .expect_eq_or_missing(PUBLISHED_CANCELLED, run.published_run_cancelled.map(n))
    } else {
        UpdateExpr::new()
            .set("status", s(status.as_str()))
            .expect_missing_or_ne("status", s(RunStatus::Cancelled.as_str()))
            .set(PUBLISHED_RUN, n(1))
    };
    let mut update = update
        .set("completed_at", s(&completed_at))
        .set("updated_at", s(&completed_at))
        .set("duration_seconds", n(duration_seconds))
        .set("total_tasks", n(total))
        .set("completed_tasks", n(completed))
        .set("failed_tasks", n(failed))
        .set("accuracy", n(accuracy))
        .set("total_cost_usd", decimal_attr(cost))
        .set(PUBLISHED_COMPLETED, n(after.tasks_completed))
        .set(PUBLISHED_FAILED, n(after.tasks_failed))
        .set(PUBLISHED_COST, decimal_attr(after.cost_usd))
        .exists("run_id")
        // The publish is decided against exactly the figures read: a concurrent Complete of
        // this run changes them, and this write then fails instead of publishing twice.
        .expect_eq_or_missing(PUBLISHED_COMPLETED, run.published_tasks_completed.map(n))
        .expect_eq_or_missing(PUBLISHED_FAILED, run.published_tasks_failed.map(n))
        .expect_eq_or_missing(PUBLISHED_RUN, run.published_run_completed.map(n));
    if let Some(arn) = &execution_arn {
        update = update.set("completed_by_execution", s(arn)).expect_missing_or_ne("completed_by_execution", s(arn));
    }
    let res = update
        .apply(tables.db.update_item().table_name(&tables.runs).set_key(Some(Tables::run_key(run_id))))
        .send()
        .await;
    if conditional("UpdateItem runs", res)?.is_none() {
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
    let published = publish_metrics(env, &config_name, &status, &before, &after, accuracy, duration_seconds).await;
    tracing::info!(run_id, status = %status, duration_seconds, metrics_published = published, "run completed");
    Ok(Output {
        run_id: run_id.to_owned(),
        status: status.as_str().to_owned(),
        completed_at: Some(completed_at),
        final_metrics: FinalMetrics {
            total_tasks: total,
            completed_tasks: completed,
            failed_tasks: failed,
            accuracy,
            total_cost_usd: cost,
            duration_seconds,
        },
        metrics_published: published,
        superseded: false,
    })
}

fn stored_output(run: &RunRecord) -> Output {
    Output {
        run_id: run.run_id.clone(),
        status: run.status.as_str().to_owned(),
        completed_at: run.completed_at.clone(),
        final_metrics: FinalMetrics {
            total_tasks: run.total_tasks,
            completed_tasks: run.completed_tasks,
            failed_tasks: run.failed_tasks,
            accuracy: run.accuracy.unwrap_or(0.0),
            total_cost_usd: run.total_cost_usd.unwrap_or_default(),
            duration_seconds: run.duration_seconds.unwrap_or(0.0),
        },
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
    let dim = Dimension::builder().name("ConfigName").value(config_name).build();
    let datum = |name: &str, value: f64, unit: StandardUnit| {
        MetricDatum::builder().metric_name(name).value(value).unit(unit).dimensions(dim.clone()).build()
    };
    let cost = (after.cost_usd - before.cost_usd).to_f64().unwrap_or(0.0);
    // A cancelled run is counted once as cancelled, never as completed by this write.
    let run_datum = if *status == RunStatus::Cancelled {
        datum("RunCancelled", if before.run_cancelled { 0.0 } else { 1.0 }, StandardUnit::Count)
    } else {
        datum("RunCompleted", if before.run_completed { 0.0 } else { 1.0 }, StandardUnit::Count)
    };
    let data = vec![
        run_datum,
        datum("TasksCompleted", delta(after.tasks_completed, before.tasks_completed), StandardUnit::Count),
        datum("TasksFailed", delta(after.tasks_failed, before.tasks_failed), StandardUnit::Count),
        datum("Accuracy", accuracy * 100.0, StandardUnit::Percent),
        datum("TotalCostUSD", cost, StandardUnit::None),
        datum("DurationSeconds", duration, StandardUnit::Seconds),
    ];
    match env
        .clients
        .cloudwatch
        .put_metric_data()
        .namespace(&env.config.cloudwatch_namespace)
        .set_metric_data(Some(data))
        .send()
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(
                namespace = %env.config.cloudwatch_namespace,
                status = %status,
                error = %arc_shared::error::describe_sdk_error(&e),
                "publishing CloudWatch metrics failed; the run is completed regardless"
            );
            false
        }
    }
}
