//! aggregate — metrics of a run from its task records, a JSON report to S3, the run record
//! updated.
//!
//! In: `{run_id, execution_arn?}`.
//! Out: `{run_id, total_tasks, completed_tasks, failed_tasks, total_cost_usd, accuracy,
//! results_s3_key}` + `correct_tasks, pending_tasks, retries_pending, failed_permanent_tasks`.
//!
//! The tasks are read with a consistent, paginated query; only the compact row each task
//! contributes to the report is kept. Cost is summed exactly.

use arc_shared::ids::RunId;
use arc_shared::input::parse_event;
use arc_shared::json::decimal_to_json;
use arc_shared::metrics::{Metrics, TaskRow};
use arc_shared::records::{decimal_attr, n, s};
use arc_shared::runtime::Env;
use arc_shared::store::{conditional, Tables, UpdateExpr};
use arc_shared::time::format_ts;
use arc_shared::{ArcError, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
struct Input {
    run_id: RunId,
    #[serde(default)]
    execution_arn: Option<String>,
}

/// Where the report of `run_id` goes in the results bucket.
pub fn report_key(run_id: &str) -> String {
    format!("runs/{run_id}/results/aggregated.json")
}

pub async fn handle(env: Arc<Env>, event: Value) -> Result<Value> {
    let input: Input = parse_event(event)?;
    let run_id = input.run_id.as_str();
    let tables = env.tables();
    let run = tables.require_run(run_id).await?;

    let mut metrics = Metrics::default();
    // The rows are kept only for the report; without a bucket, only the running totals are.
    let mut rows = env.config.s3_bucket.as_ref().map(|_| Vec::new());
    tables
        .for_each_task(run_id, |t| {
            let row = TaskRow {
                task_id: t.task_id,
                status: t.status.as_str().to_owned(),
                cost_usd: t.cost_usd,
                is_correct: t.is_correct,
                retry_count: t.retry_count,
                tokens_input: t.tokens_input,
                tokens_output: t.tokens_output,
                last_error_type: t.last_error_type,
                result_s3_key: t.result_s3_key,
            };
            metrics.add_row(&row);
            if let Some(rows) = rows.as_mut() {
                rows.push(row);
            }
            Ok(())
        })
        .await?;
    let accuracy = metrics.accuracy();
    let now = format_ts(env.clock.now());

    let results_s3_key = match (&env.config.s3_bucket, rows) {
        (Some(bucket), Some(rows)) => {
            let key = report_key(run_id);
            let report = json!({
                "run_id": run_id,
                "config_name": run.config_name,
                "execution_arn": input.execution_arn,
                "generated_at": now,
                "metrics": {
                    "total_tasks": metrics.total_tasks,
                    "completed_tasks": metrics.completed_tasks,
                    "failed_tasks": metrics.failed_tasks,
                    "failed_permanent_tasks": metrics.failed_permanent_tasks,
                    "correct_tasks": metrics.correct_tasks,
                    "pending_tasks": metrics.pending_tasks,
                    "retries_pending": metrics.retries_pending,
                    "total_cost_usd": decimal_to_json(metrics.total_cost_usd),
                    "accuracy": accuracy,
                    "total_input_tokens": metrics.total_input_tokens,
                    "total_output_tokens": metrics.total_output_tokens,
                },
                "tasks": rows,
            });
            let body =
                serde_json::to_vec(&report).map_err(|e| ArcError::Conflict(format!("report not serializable: {e}")))?;
            env.clients
                .s3
                .put_object()
                .bucket(bucket)
                .key(&key)
                .content_type("application/json")
                .body(body.into())
                .send()
                .await
                .map_err(|e| ArcError::from_sdk("PutObject", e))?;
            tracing::info!(run_id, bucket, key, "report written");
            Some(key)
        }
        _ => None,
    };

    let res = UpdateExpr::new()
        .set("completed_tasks", n(metrics.completed_tasks))
        .set("failed_tasks", n(metrics.failed_tasks))
        .set("total_cost_usd", decimal_attr(metrics.total_cost_usd))
        .set("accuracy", n(accuracy))
        .set("retries_pending", n(metrics.retries_pending))
        .set_opt("results_s3_key", results_s3_key.as_deref().map(s))
        .set("updated_at", s(&now))
        .exists("run_id")
        .apply(tables.db.update_item().table_name(&tables.runs).set_key(Some(Tables::run_key(run_id))))
        .send()
        .await;
    conditional("UpdateItem runs", res)?.ok_or_else(|| ArcError::RunNotFound(run_id.to_owned()))?;
    tracing::info!(
        run_id,
        total = metrics.total_tasks,
        completed = metrics.completed_tasks,
        failed = metrics.failed_tasks,
        retries_pending = metrics.retries_pending,
        cost = %metrics.total_cost_usd,
        accuracy,
        "run aggregated"
    );
    Ok(json!({
        "run_id": run_id,
        "total_tasks": metrics.total_tasks,
        "completed_tasks": metrics.completed_tasks,
        "failed_tasks": metrics.failed_tasks,
        "total_cost_usd": decimal_to_json(metrics.total_cost_usd),
        "accuracy": accuracy,
        "results_s3_key": results_s3_key,
        "correct_tasks": metrics.correct_tasks,
        "pending_tasks": metrics.pending_tasks,
        "retries_pending": metrics.retries_pending,
        "failed_permanent_tasks": metrics.failed_permanent_tasks,
    }))
}
