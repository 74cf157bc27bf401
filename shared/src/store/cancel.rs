//! An operator's writes on a run (`arcctl runs cancel` / `arcctl runs resume`): cancelling it
//! for good and lifting the cancellation. Each run write is one conditional UpdateItem naming
//! `status` as `#status`; resume's task moves are conditional on each task as it was read.
//!
//! A CANCELLED run's tasks are left as they are: no writer re-queues, repairs or re-opens them
//! (the sweeper skips the run, initialize's retry mode refuses it, aggregate/complete do not
//! settle it). Resume moves what the stopped execution left in flight to FAILED without
//! charging an attempt, so the sweeper retries it.

use super::{conditional, each_written, Tables, UpdateExpr};
use crate::config::BackoffConfig;
use crate::error::{ArcError, Result};
use crate::metrics::Metrics;
use crate::records::{n, s, RunRecord, TaskRecord};
use crate::status::{RunStatus, TaskStatus};
use crate::time::format_ts;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};

/// `last_error_type` of a task a cancelled execution left in flight, moved to FAILED by resume.
pub const CANCELLED_ERROR_TYPE: &str = "Cancelled";

/// Who cancels a run, why and when (one write).
#[derive(Debug, Clone, Copy)]
pub struct Cancellation<'a> {
    pub by: &'a str,
    pub reason: Option<&'a str>,
    pub at: &'a str,
}

/// The condition value for "the task's status is still what we read" (absent when never written).
fn seen_status(status: &TaskStatus) -> Option<AttributeValue> {
    match status {
        TaskStatus::Other(v) if v.is_empty() => None,
        other => Some(s(other.as_str())),
    }
}

impl Tables {
    /// Marks `run_id` CANCELLED with `cancelled_by`, `cancelled_reason` and `cancelled_at` in
    /// one write, conditional on the run existing and not being CANCELLED already. Returns the
    /// run as written — its `execution_arn` is the execution to stop: once the run is
    /// CANCELLED no writer changes it (the sweeper's claim and initialize's retry mode are
    /// conditional on the run not being CANCELLED) — or `None` when the condition failed.
    pub async fn cancel_run(&self, run_id: &str, c: &Cancellation<'_>) -> Result<Option<RunRecord>> {
        let update = UpdateExpr::new()
            .set("status", s(RunStatus::Cancelled.as_str()))
            .set("cancelled_by", s(c.by))
            .set("cancelled_at", s(c.at))
            .set("updated_at", s(c.at))
            .exists("run_id")
            .expect_missing_or_ne("status", s(RunStatus::Cancelled.as_str()));
        let update = match c.reason {
            Some(r) => update.set("cancelled_reason", s(r)),
            None => update.remove("cancelled_reason"),
        };
        let res = update
            .apply(self.db.update_item().table_name(&self.runs).set_key(Some(Tables::run_key(run_id))))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match conditional("UpdateItem runs (cancel)", res)? {
            Some(out) => match out.attributes {
                Some(item) => RunRecord::from_item(item).map(Some),
                None => Err(ArcError::Conflict(format!("cancel of run {run_id} returned no attributes"))),
            },
            None => Ok(None),
        }
    }

    /// The in-flight tasks of `tasks` (PENDING, IN_PROGRESS, statuses this product does not
    /// know) become FAILED without a charge: `retry_count` kept, `last_error_type =
    /// Cancelled`, `last_error_cause = cause`, `next_retry_at` from the backoff — each
    /// conditional on the status and `retry_count` read (a task a worker finished meanwhile is
    /// left alone). Returns the ids moved.
    pub async fn release_in_flight(
        &self,
        tasks: &[TaskRecord],
        backoff: &BackoffConfig,
        cause: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        let now_s = format_ts(now);
        each_written(tasks.iter().filter(|t| t.status.is_in_flight()), |t| {
            let now_s = now_s.as_str();
            async move {
                let next = crate::backoff::due_at(backoff, &t.run_id, &t.task_id, t.retry_count, now);
                let res = UpdateExpr::new()
                    .set("status", s(TaskStatus::Failed.as_str()))
                    .set("last_error_type", s(CANCELLED_ERROR_TYPE))
                    .set("last_error_cause", s(cause))
                    .set("last_error_at", s(now_s))
                    .set("next_retry_at", s(format_ts(next)))
                    .set("updated_at", s(now_s))
                    .exists("run_id")
                    .expect_eq_or_missing("status", seen_status(&t.status))
                    .expect_count("retry_count", u64::from(t.retry_count));
                let written = self
                    .update_if(&self.tasks, Tables::task_key(&t.run_id, &t.task_id), res, "UpdateItem tasks (release)")
                    .await?;
                if !written {
                    tracing::info!(run_id = %t.run_id, task_id = %t.task_id, "task changed meanwhile: left as it is");
                }
                Ok(written.then(|| t.task_id.clone()))
            }
        })
        .await
    }

    /// Lifts the cancellation of `run_id`: `#status = status`, the counts from the tasks,
    /// `resumed_by` / `resumed_at` set and `cancelled_*` removed, in one write conditional on
    /// the run still being CANCELLED. `None` when it is not (any more).
    pub async fn resume_run(
        &self,
        run_id: &str,
        status: &RunStatus,
        counts: &Metrics,
        by: &str,
        now: &str,
    ) -> Result<Option<RunRecord>> {
        let res = UpdateExpr::new()
            .set("status", s(status.as_str()))
            .set("completed_tasks", n(counts.completed_tasks))
            .set("failed_tasks", n(counts.failed_tasks))
            .set("retries_pending", n(counts.retries_pending))
            .set("resumed_by", s(by))
            .set("resumed_at", s(now))
            .set("updated_at", s(now))
            .remove("cancelled_by")
            .remove("cancelled_reason")
            .remove("cancelled_at")
            .expect_eq("status", s(RunStatus::Cancelled.as_str()))
            .apply(self.db.update_item().table_name(&self.runs).set_key(Some(Tables::run_key(run_id))))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match conditional("UpdateItem runs (resume)", res)? {
            Some(out) => out.attributes.map(RunRecord::from_item).transpose(),
            None => Ok(None),
        }
    }
}

/// The status a resumed run gets: COMPLETED when every task is COMPLETED, else
/// COMPLETED_WITH_ERRORS — a status the sweeper retries FAILED tasks of.
pub fn resumed_status(counts: &Metrics) -> RunStatus {
    if counts.total_tasks > 0 && counts.completed_tasks == counts.total_tasks {
        RunStatus::Completed
    } else {
        RunStatus::CompletedWithErrors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(statuses: &[TaskStatus]) -> Metrics {
        let mut m = Metrics::default();
        for st in statuses {
            m.add(st, None, None, (None, None));
        }
        m
    }

    #[test]
    fn a_resumed_run_is_completed_with_errors_unless_every_task_completed() {
        use TaskStatus::*;
        assert_eq!(resumed_status(&counts(&[Completed, Completed])), RunStatus::Completed);
        assert_eq!(resumed_status(&counts(&[Completed, Failed])), RunStatus::CompletedWithErrors);
        assert_eq!(resumed_status(&counts(&[Failed, FailedPermanent])), RunStatus::CompletedWithErrors);
        assert_eq!(resumed_status(&counts(&[Completed, RetryQueued])), RunStatus::CompletedWithErrors);
        assert_eq!(resumed_status(&counts(&[])), RunStatus::CompletedWithErrors);
    }
}
