//! Every write the sweeper makes: conditional UpdateItems on one run or one task. A write
//! whose condition fails returns `false`/`None` (someone else changed the item); every
//! other failure is an error. Each names `status` as `#status`.

use arc_shared::metrics::Metrics;
use arc_shared::records::{n, s, RunRecord};
use arc_shared::status::{RunStatus, TaskStatus};
use arc_shared::store::{conditional, Tables, UpdateExpr};
use arc_shared::ArcError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

/// The condition value for "the status is still what we read" (absent when never written).
fn seen_status(status: &str) -> Option<AttributeValue> {
    (!status.is_empty()).then(|| s(status))
}

/// Claims `run` for retry generation `generation`: sets `retry_generation`, `#status =
/// RUNNING` and `execution_arn` in one write, conditional on the generation and status read,
/// and on the run not being CANCELLED (an operator's cancel between the read and this write
/// makes it fail). `None`: another sweeper, an execution or an operator changed the run first.
pub async fn claim_run(
    tables: &Tables,
    run: &RunRecord,
    generation: u64,
    execution_arn: &str,
    now: &str,
) -> Result<Option<RunRecord>, ArcError> {
    let r = UpdateExpr::new()
        .set("retry_generation", n(generation))
        .set("status", s(RunStatus::Running.as_str()))
        .set("execution_arn", s(execution_arn))
        .set("updated_at", s(now))
        .exists("run_id")
        .expect_count("retry_generation", generation.saturating_sub(1))
        .expect_eq_or_missing("status", seen_status(run.status.as_str()))
        .expect_missing_or_ne("status", s(RunStatus::Cancelled.as_str()))
        .apply(tables.db.update_item().table_name(&tables.runs).set_key(Some(Tables::run_key(&run.run_id))))
        .return_values(ReturnValue::AllNew)
        .send()
        .await;
    match conditional("UpdateItem runs (claim)", r)? {
        Some(out) => match out.attributes {
            Some(item) => RunRecord::from_item(item).map(Some),
            None => Err(ArcError::Conflict(format!("claim of run {} returned no attributes", run.run_id))),
        },
        None => Ok(None),
    }
}

/// Gives a claim back (nothing could be re-queued): the run returns to the status it had,
/// conditional on still holding this claim. The generation stays used.
pub async fn release_claim(
    tables: &Tables,
    run_id: &str,
    previous: &RunStatus,
    execution_arn: &str,
    now: &str,
) -> Result<bool, ArcError> {
    let status = match previous {
        RunStatus::Other(s) if s.is_empty() => RunStatus::CompletedWithErrors,
        other => other.clone(),
    };
    let r = UpdateExpr::new()
        .set("status", s(status.as_str()))
        .set("updated_at", s(now))
        .expect_eq("status", s(RunStatus::Running.as_str()))
        .expect_eq("execution_arn", s(execution_arn))
        .apply(tables.db.update_item().table_name(&tables.runs).set_key(Some(Tables::run_key(run_id))))
        .send()
        .await;
    Ok(conditional("UpdateItem runs (release)", r)?.is_some())
}

/// FAILED → RETRY_QUEUED for execution `name`, conditional on the status and retry_count read.
pub async fn requeue_task(
    tables: &Tables,
    run_id: &str,
    task_id: &str,
    retry_count: u32,
    name: &str,
    now: &str,
) -> Result<bool, ArcError> {
    let r = UpdateExpr::new()
        .set("status", s(TaskStatus::RetryQueued.as_str()))
        .set("retry_execution", s(name))
        .set("updated_at", s(now))
        .expect_eq("status", s(TaskStatus::Failed.as_str()))
        .expect_count("retry_count", u64::from(retry_count))
        .apply(tables.db.update_item().table_name(&tables.tasks).set_key(Some(Tables::task_key(run_id, task_id))))
        .send()
        .await;
    Ok(conditional("UpdateItem tasks (requeue)", r)?.is_some())
}

/// RETRY_QUEUED (for execution `name`) → FAILED: the execution will never run it. Not a
/// failed attempt: retry_count is kept.
pub async fn unqueue_task(
    tables: &Tables,
    run_id: &str,
    task_id: &str,
    name: &str,
    now: &str,
) -> Result<bool, ArcError> {
    unqueue(tables, run_id, task_id, Some(name), now).await
}

/// A RETRY_QUEUED task without `retry_execution` → FAILED.
pub async fn unqueue_orphan(tables: &Tables, run_id: &str, task_id: &str, now: &str) -> Result<bool, ArcError> {
    unqueue(tables, run_id, task_id, None, now).await
}

/// RETRY_QUEUED → FAILED, conditional on `retry_execution` (absent when `name` is `None`).
async fn unqueue(
    tables: &Tables,
    run_id: &str,
    task_id: &str,
    name: Option<&str>,
    now: &str,
) -> Result<bool, ArcError> {
    let r = UpdateExpr::new()
        .set("status", s(TaskStatus::Failed.as_str()))
        .set("updated_at", s(now))
        .expect_eq("status", s(TaskStatus::RetryQueued.as_str()))
        .expect_eq_or_missing("retry_execution", name.map(s))
        .apply(tables.db.update_item().table_name(&tables.tasks).set_key(Some(Tables::task_key(run_id, task_id))))
        .send()
        .await;
    Ok(conditional("UpdateItem tasks (unqueue)", r)?.is_some())
}
/// The run's status recomputed (`RunStatus::from_counts`) after its execution `arn` ended,
/// conditional on the run still being RUNNING with that execution.
pub async fn finish_run(
    tables: &Tables,
    run_id: &str,
    arn: &str,
    counts: &Metrics,
    now: &str,
) -> Result<Option<RunRecord>, ArcError> {
    let status = RunStatus::from_counts(counts.total_tasks, counts.failed_tasks);
    let r = UpdateExpr::new()
        .set("status", s(status.as_str()))
        .set("total_tasks", n(counts.total_tasks))
        .set("completed_tasks", n(counts.completed_tasks))
        .set("failed_tasks", n(counts.failed_tasks))
        .set("retries_pending", n(counts.retries_pending))
        .set("updated_at", s(now))
        .expect_eq("status", s(RunStatus::Running.as_str()))
        .expect_eq("execution_arn", s(arn))
        .apply(tables.db.update_item().table_name(&tables.runs).set_key(Some(Tables::run_key(run_id))))
        .return_values(ReturnValue::AllNew)
        .send()
        .await;
    match conditional("UpdateItem runs (repair)", r)? {
        Some(out) => out.attributes.map(RunRecord::from_item).transpose(),
        None => Ok(None),
    }
}
