//! handle-error — records a failed Batch job against its task: `FAILED` (retryable, with
//! `next_retry_at` from the shared backoff policy) or `FAILED_PERMANENT`.
//!
//! In: `{run_id, task_id, error: {Error, Cause}}`.
//! Out: `{run_id, task_id, status: "RETRY_SCHEDULED" | "FAILED_PERMANENT", retry_count,
//! error_message, next_retry_at?}` (+ `job_id`, `counted`).
//!
//! Each failed job is counted once: a repeated delivery changes nothing, and a failure the
//! Python worker already counted (`worker_id` = the job id, status already failed) is
//! annotated, not counted again. Writes are conditional on the state read; on a conflict the
//! task is re-read and the decision made again.

use arc_shared::backoff::due_at;
use arc_shared::failure::{
    decide_failure, parse_batch_cause, truncate_chars, FailureDecision, TaskFailureState, MAX_CAUSE_CHARS,
    MESSAGE_CAUSE_CHARS,
};
use arc_shared::ids::{RunId, TaskId};
use arc_shared::input::parse_event;
use arc_shared::records::{n, s, TaskRecord};
use arc_shared::runtime::Env;
use arc_shared::status::TaskStatus;
use arc_shared::store::{conditional, Tables, UpdateExpr};
use arc_shared::time::{format_ts, parse_ts};
use arc_shared::{ArcError, Result};
use aws_sdk_dynamodb::types::TransactWriteItem;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Re-reads on write conflicts before giving up with `Conflict`.
const MAX_ATTEMPTS: usize = 5;

#[derive(Debug, Deserialize)]
struct Input {
    run_id: RunId,
    task_id: TaskId,
    #[serde(default)]
    error: StepFunctionsError,
}

/// The `{Error, Cause}` object Step Functions puts in `ResultPath`.
#[derive(Debug, Default, Deserialize)]
struct StepFunctionsError {
    #[serde(rename = "Error", default)]
    error: Option<String>,
    #[serde(rename = "Cause", default)]
    cause: Option<Value>,
}

pub async fn handle(env: Arc<Env>, event: Value) -> Result<Value> {
    let input: Input = parse_event(event)?;
    let error_type = input.error.error.filter(|e| !e.is_empty()).unwrap_or_else(|| "UnknownError".to_owned());
    let cause = match input.error.cause {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(c)) => c,
        Some(other) => other.to_string(),
    };
    let batch = parse_batch_cause(&cause);
    let job_id = batch.as_ref().and_then(|b| b.job_id.clone());
    let error_message = format!("{error_type}: {}", truncate_chars(&cause, MESSAGE_CAUSE_CHARS));
    let tables = env.tables();
    let (run_id, task_id) = (input.run_id.as_str(), input.task_id.as_str());

    for attempt in 1..=MAX_ATTEMPTS {
        let task = tables.get_task(run_id, task_id).await?.ok_or_else(|| ArcError::task_not_found(run_id, task_id))?;
        let state = TaskFailureState {
            status: task.status.clone(),
            retry_count: task.retry_count,
            worker_id: task.worker_id.clone(),
            last_failed_job_id: task.last_failed_job_id.clone(),
        };
        let decision = decide_failure(
            &state,
            job_id.as_deref(),
            &error_type,
            env.config.max_retries,
            &env.config.non_retryable_errors,
        );
        let (retry_count, permanent, counted) = match decision {
            FailureDecision::AlreadyCounted { permanent, retry_count } => {
                tracing::info!(run_id, task_id, job_id, retry_count, "failure already recorded: nothing changed");
                let status = if permanent { "FAILED_PERMANENT" } else { "RETRY_SCHEDULED" };
                return Ok(output(
                    run_id,
                    task_id,
                    status,
                    retry_count,
                    &error_message,
                    task.next_retry_at,
                    &job_id,
                    false,
                ));
            }
            FailureDecision::TaskCompleted => {
                tracing::warn!(run_id, task_id, job_id, "failure delivered for a COMPLETED task: left completed");
                return Ok(output(
                    run_id,
                    task_id,
                    "COMPLETED",
                    task.retry_count,
                    &error_message,
                    None,
                    &job_id,
                    false,
                ));
            }
            FailureDecision::Record { retry_count, permanent, counted } => (retry_count, permanent, counted),
        };
        let now = env.clock.now();
        let next_retry_at = (!permanent).then(|| {
            // The worker's own record keeps its failure time; ours is now.
            let failed_at = if counted { now } else { task.last_error_at.as_deref().and_then(parse_ts).unwrap_or(now) };
            format_ts(due_at(&env.config.backoff, run_id, task_id, retry_count, failed_at))
        });
        let new_status = if permanent { TaskStatus::FailedPermanent } else { TaskStatus::Failed };
        let ts = format_ts(now);
        let update = task_update(
            &task,
            &new_status,
            retry_count,
            &error_type,
            &cause,
            &ts,
            job_id.as_deref(),
            next_retry_at.as_deref(),
        );
        let written = if permanent {
            write_permanent(&tables, run_id, task_id, update, &ts).await?
        } else {
            write_task(&tables, run_id, task_id, update).await?
        };
        if !written {
            tracing::info!(run_id, task_id, attempt, "task changed while recording the failure: re-reading");
            continue;
        }
        let status = if permanent { "FAILED_PERMANENT" } else { "RETRY_SCHEDULED" };
        tracing::info!(run_id, task_id, job_id, retry_count, status, counted, error_type, "failure recorded");
        return Ok(output(run_id, task_id, status, retry_count, &error_message, next_retry_at, &job_id, counted));
    }
    Err(ArcError::Conflict(format!("task {run_id}/{task_id} kept changing; gave up after {MAX_ATTEMPTS} attempts")))
}

#[allow(clippy::too_many_arguments)]
fn output(
    run_id: &str,
    task_id: &str,
    status: &str,
    retry_count: u32,
    error_message: &str,
    next_retry_at: Option<String>,
    job_id: &Option<String>,
    counted: bool,
) -> Value {
    let mut out = json!({
        "run_id": run_id,
        "task_id": task_id,
        "status": status,
        "retry_count": retry_count,
        "error_message": error_message,
        "counted": counted,
    });
    if let Some(t) = next_retry_at {
        out["next_retry_at"] = json!(t);
    }
    if let Some(j) = job_id {
        out["job_id"] = json!(j);
    }
    out
}

/// The task write, conditional on exactly the state the decision was made from.
#[allow(clippy::too_many_arguments)]
fn task_update(
    read: &TaskRecord,
    status: &TaskStatus,
    retry_count: u32,
    error_type: &str,
    cause: &str,
    now: &str,
    job_id: Option<&str>,
    next_retry_at: Option<&str>,
) -> UpdateExpr {
    let read_status = match &read.status {
        TaskStatus::Other(v) if v.is_empty() => None,
        other => Some(s(other.as_str())),
    };
    let u = UpdateExpr::new()
        .set("status", s(status.as_str()))
        .set("retry_count", n(retry_count))
        .set("last_error_type", s(error_type))
        .set("last_error_cause", s(truncate_chars(cause, MAX_CAUSE_CHARS)))
        .set("last_error_at", s(now))
        .set("updated_at", s(now))
        .set_opt("last_failed_job_id", job_id.map(s))
        .exists("run_id")
        .expect_eq_or_missing("status", read_status)
        .expect_count("retry_count", u64::from(read.retry_count))
        .expect_eq_or_missing("last_failed_job_id", read.last_failed_job_id.as_deref().map(s));
    match next_retry_at {
        Some(t) => u.set("next_retry_at", s(t)),
        None => u.remove("next_retry_at"),
    }
}

/// Writes a retryable failure; `false` when the task changed since it was read.
async fn write_task(tables: &Tables, run_id: &str, task_id: &str, update: UpdateExpr) -> Result<bool> {
    let res = update
        .apply(tables.db.update_item().table_name(&tables.tasks).set_key(Some(Tables::task_key(run_id, task_id))))
        .send()
        .await;
    Ok(conditional("UpdateItem tasks", res)?.is_some())
}

/// Moves the task to FAILED_PERMANENT and counts it on the run in one transaction; `false`
/// when the task changed since it was read.
async fn write_permanent(tables: &Tables, run_id: &str, task_id: &str, update: UpdateExpr, now: &str) -> Result<bool> {
    let task = update.into_transact(&tables.tasks, Tables::task_key(run_id, task_id))?;
    let run = UpdateExpr::new()
        .add("failed_tasks", n(1))
        .set("updated_at", s(now))
        .exists("run_id")
        .into_transact(&tables.runs, Tables::run_key(run_id))?;
    let res = tables
        .db
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().update(task).build())
        .transact_items(TransactWriteItem::builder().update(run).build())
        .send()
        .await;
    match res {
        Ok(_) => Ok(true),
        Err(e) => {
            let Some(reasons) = e.as_service_error().and_then(|se| match se {
                aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => {
                    Some(c.cancellation_reasons().to_vec())
                }
                _ => None,
            }) else {
                return Err(ArcError::from_sdk("TransactWriteItems", e));
            };
            let failed = |i: usize| reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
            if failed(1) {
                Err(ArcError::RunNotFound(run_id.to_owned()))
            } else if failed(0) {
                Ok(false)
            } else {
                Err(ArcError::from_sdk("TransactWriteItems", e))
            }
        }
    }
}
