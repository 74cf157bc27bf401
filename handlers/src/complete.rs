//! complete — the run's final status and CloudWatch metrics.
//!
//! In: `{run_id, aggregation, execution_arn?}` (aggregation = aggregate's output).
//! Out: `{run_id, status, completed_at, final_metrics{total_tasks, completed_tasks,
//! failed_tasks, accuracy, total_cost_usd, duration_seconds}}` (+ `metrics_published`).
//!
//! Status: all failed → FAILED; any failed → COMPLETED_WITH_ERRORS; else COMPLETED. The run
//! records which execution completed it: a repeated invocation for the same execution
//! returns the stored result and publishes nothing. A CloudWatch failure is logged, not fatal.

use arc_shared::ids::RunId;
use arc_shared::input::parse_event;
use arc_shared::json::{decimal_to_json, deserialize_decimal};
use arc_shared::records::{decimal_attr, n, s, RunRecord};
use arc_shared::runtime::Env;
use arc_shared::status::RunStatus;
use arc_shared::store::{conditional, Tables, UpdateExpr};
use arc_shared::time::{format_ts, parse_ts};
use arc_shared::{ArcError, Result};
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Value};
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

pub async fn handle(env: Arc<Env>, event: Value) -> Result<Value> {
    let input: Input = parse_event(event)?;
    let agg = input.aggregation;
    if agg.completed_tasks + agg.failed_tasks > agg.total_tasks {
        return Err(ArcError::invalid("aggregation", "completed_tasks + failed_tasks exceeds total_tasks"));
    }
    if !(0.0..=1.0).contains(&agg.accuracy) {
        return Err(ArcError::invalid("aggregation.accuracy", "must be between 0 and 1"));
    }
    let run_id = input.run_id.as_str();
    let execution_arn = input.execution_arn.filter(|a| !a.is_empty());
    let tables = env.tables();
    let run = tables.require_run(run_id).await?;
    if execution_arn.is_some() && run.completed_by_execution == execution_arn {
        tracing::info!(run_id, execution_arn, "already completed by this execution: returning the stored result");
        return Ok(stored_output(&run, false));
    }

    let now = env.clock.now();
    let completed_at = format_ts(now);
    let status = RunStatus::from_counts(agg.total_tasks, agg.failed_tasks);
    let duration_seconds = run
        .created_at
        .as_deref()
        .and_then(parse_ts)
        .map(|c| (now - c).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    let mut update = UpdateExpr::new()
        .set("status", s(status.as_str()))
        .set("completed_at", s(&completed_at))
        .set("updated_at", s(&completed_at))
        .set("duration_seconds", n(duration_seconds))
        .set("total_tasks", n(agg.total_tasks))
        .set("completed_tasks", n(agg.completed_tasks))
        .set("failed_tasks", n(agg.failed_tasks))
        .set("accuracy", n(agg.accuracy))
        .set("total_cost_usd", decimal_attr(agg.total_cost_usd))
        .exists("run_id");
    if let Some(arn) = &execution_arn {
        update = update.set("completed_by_execution", s(arn)).expect_missing_or_ne("completed_by_execution", s(arn));
    }
    let res = update
        .apply(tables.db.update_item().table_name(&tables.runs).set_key(Some(Tables::run_key(run_id))))
        .send()
        .await;
    if conditional("UpdateItem runs", res)?.is_none() {
        // Gone, or a concurrent invocation of the same execution completed it first.
        let again = tables.require_run(run_id).await?;
        if execution_arn.is_some() && again.completed_by_execution == execution_arn {
            return Ok(stored_output(&again, false));
        }
        return Err(ArcError::Conflict(format!("run {run_id} changed while completing it")));
    }

    let config_name = run.config_name.clone().unwrap_or_else(|| "unknown".to_owned());
    let published = publish_metrics(&env, &config_name, &status, &agg, duration_seconds).await;
    tracing::info!(run_id, status = %status, duration_seconds, metrics_published = published, "run completed");
    Ok(json!({
        "run_id": run_id,
        "status": status.as_str(),
        "completed_at": completed_at,
        "final_metrics": {
            "total_tasks": agg.total_tasks,
            "completed_tasks": agg.completed_tasks,
            "failed_tasks": agg.failed_tasks,
            "accuracy": agg.accuracy,
            "total_cost_usd": decimal_to_json(agg.total_cost_usd),
            "duration_seconds": duration_seconds,
        },
        "metrics_published": published,
    }))
}

fn stored_output(run: &RunRecord, published: bool) -> Value {
    json!({
        "run_id": run.run_id,
        "status": run.status.as_str(),
        "completed_at": run.completed_at,
        "final_metrics": {
            "total_tasks": run.total_tasks,
            "completed_tasks": run.completed_tasks,
            "failed_tasks": run.failed_tasks,
            "accuracy": run.accuracy.unwrap_or(0.0),
            "total_cost_usd": decimal_to_json(run.total_cost_usd.unwrap_or_default()),
            "duration_seconds": run.duration_seconds.unwrap_or(0.0),
        },
        "metrics_published": published,
    })
}

/// Publishes the run's metrics; a failure is logged and reported as `false`.
async fn publish_metrics(env: &Env, config_name: &str, status: &RunStatus, agg: &Aggregation, duration: f64) -> bool {
    let dim = Dimension::builder().name("ConfigName").value(config_name).build();
    let datum = |name: &str, value: f64, unit: StandardUnit| {
        MetricDatum::builder().metric_name(name).value(value).unit(unit).dimensions(dim.clone()).build()
    };
    let data = vec![
        datum("RunCompleted", 1.0, StandardUnit::Count),
        datum("TasksCompleted", agg.completed_tasks as f64, StandardUnit::Count),
        datum("TasksFailed", agg.failed_tasks as f64, StandardUnit::Count),
        datum("Accuracy", agg.accuracy * 100.0, StandardUnit::Percent),
        datum("TotalCostUSD", agg.total_cost_usd.to_f64().unwrap_or(0.0), StandardUnit::None),
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
