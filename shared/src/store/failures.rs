//! The writes of the failure model (`crate::failure`): recording a failed job on its task
//! (handle-error), settling a task left in flight (Complete, the sweeper's repair), and making
//! an exhausted task permanent (the sweeper). Each is one conditional task write, made in one
//! transaction with the run's `failed_tasks` + 1 when it moves the task to FAILED_PERMANENT, so
//! the run's counter moves exactly when the task does.

use super::{Tables, UpdateExpr};
use crate::class::FailureClass;
use crate::error::{ArcError, Result};
use crate::failure::{BatchCause, Settled};
use crate::records::{n, s};
use crate::status::TaskStatus;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};

/// How a conditional write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Yes,
    /// The task changed since it was read: read it again and decide again.
    Changed,
    /// DynamoDB cancelled the transaction for contention (another transaction on the run
    /// item, throttling): nothing was written; try again after a pause.
    Contended,
}

/// A failure to write on a task.
#[derive(Debug, Clone)]
pub struct FailureWrite<'a> {
    pub status: TaskStatus,
    pub retry_count: u32,
    pub error_type: &'a str,
    /// Already redacted and bounded.
    pub cause: &'a str,
    /// When the failure happened (`last_error_at`).
    pub failed_at: &'a str,
    pub now: &'a str,
    pub batch: Option<&'a BatchCause>,
    pub failure_key: Option<&'a str>,
    pub next_retry_at: Option<&'a str>,
    /// The worker's claim whose failure record this write has seen (`worker_recorded_claim`).
    pub seen_workers_claim: Option<&'a str>,
    /// The worker's claim whose record this write takes as the delivered job's failure
    /// (`attributed_claim`).
    pub attributed_claim: Option<&'a str>,
    /// Whose fault it was (`failure_class`).
    pub class: FailureClass,
    /// `infra_failures` to write when this failure was spared from `retry_count`.
    pub infra_failures: Option<u32>,
}

/// What the write is conditional on: the task as it was read.
#[derive(Debug, Clone)]
pub struct SeenTask<'a> {
    pub status: &'a TaskStatus,
    pub retry_count: u32,
    pub last_failed_job_id: Option<&'a str>,
    pub last_failure_key: Option<&'a str>,
}

fn seen_status(status: &TaskStatus) -> Option<AttributeValue> {
    match status {
        TaskStatus::Other(v) if v.is_empty() => None,
        other => Some(s(other.as_str())),
    }
}

impl FailureWrite<'_> {
    fn update(&self, seen: &SeenTask<'_>) -> UpdateExpr {
        let b = self.batch;
        let u = UpdateExpr::new()
            .set("status", s(self.status.as_str()))
            .set("retry_count", n(self.retry_count))
            .set("recorded_retry_count", n(self.retry_count))
            .set("last_error_type", s(self.error_type))
            .set("last_error_cause", s(self.cause))
            .set("last_error_at", s(self.failed_at))
            .set("updated_at", s(self.now))
            .set_opt("worker_recorded_claim", self.seen_workers_claim.map(s))
            .set_opt("attributed_claim", self.attributed_claim.map(s))
            .set("failure_class", s(self.class.as_str()))
            .set_opt("infra_failures", self.infra_failures.map(n))
            .set_opt("last_failed_job_id", b.and_then(|b| b.job_id.as_deref()).map(s))
            .set_opt("last_failure_key", self.failure_key.map(s))
            .set_opt("last_error_status_reason", b.and_then(|b| b.status_reason.as_deref()).map(s))
            .set_opt("last_error_exit_code", b.and_then(|b| b.exit_code).map(n))
            .set_opt("last_error_container_reason", b.and_then(|b| b.container_reason.as_deref()).map(s))
            .set_opt("last_error_log_stream", b.and_then(|b| b.log_stream_name.as_deref()).map(s))
            .set_opt("last_error_attempts", b.map(|b| n(b.attempts)))
            .exists("run_id")
            .expect_eq_or_missing("status", seen_status(seen.status))
            .expect_count("retry_count", u64::from(seen.retry_count))
            .expect_eq_or_missing("last_failed_job_id", seen.last_failed_job_id.map(s))
            .expect_eq_or_missing("last_failure_key", seen.last_failure_key.map(s));
        u.set_or_remove("next_retry_at", self.next_retry_at.map(s))
    }
}

impl Tables {
    /// Records a failure on a task as it was `seen`; with `count_on_run` (the task becomes
    /// FAILED_PERMANENT by this write) the run's `failed_tasks` + 1 in the same transaction.
    pub async fn record_failure(
        &self,
        run_id: &str,
        task_id: &str,
        seen: &SeenTask<'_>,
        failure: &FailureWrite<'_>,
        count_on_run: bool,
    ) -> Result<Written> {
        self.write_task_counting_run(run_id, task_id, failure.update(seen), count_on_run, failure.now).await
    }

    /// A task left in flight by an execution that is over becomes FAILED (or FAILED_PERMANENT)
    /// with `last_error_type = error_type`, charged an attempt when `settled.counted`.
    async fn settle_task(
        &self,
        t: &crate::records::TaskRecord,
        settled: Settled,
        (error_type, cause): (&str, &str),
        next_retry_at: Option<&str>,
        now: &str,
    ) -> Result<Written> {
        let status = if settled.permanent { TaskStatus::FailedPermanent } else { TaskStatus::Failed };
        let u = UpdateExpr::new()
            .set("status", s(status.as_str()))
            .set("retry_count", n(settled.retry_count))
            .set("recorded_retry_count", n(settled.retry_count))
            .set("last_error_type", s(error_type))
            .set("last_error_cause", s(cause))
            .set("last_error_at", s(now))
            .set("updated_at", s(now))
            .set(
                "failure_class",
                s(if settled.spared { FailureClass::Infrastructure } else { FailureClass::Task }.as_str()),
            )
            .exists("run_id")
            .expect_eq_or_missing("status", seen_status(&t.status))
            .expect_count("retry_count", u64::from(t.retry_count));
        let u = if settled.spared {
            u.set("infra_failures", n(t.infra_failures().saturating_add(1)))
                .expect_count("infra_failures", u64::from(t.infra_failures()))
        } else {
            u
        };
        let u = u.set_or_remove("next_retry_at", next_retry_at.map(s));
        self.write_task_counting_run(&t.run_id, &t.task_id, u, settled.permanent, now).await
    }

    /// A FAILED task whose `retry_count` already reached MAX_RETRIES (written by a worker with
    /// another setting, or before MAX_RETRIES was lowered) becomes FAILED_PERMANENT; with
    /// `count_on_run` the run's `failed_tasks` + 1 in the same transaction (a run whose figures
    /// Aggregate wrote already counts its FAILED tasks there).
    pub async fn make_permanent(
        &self,
        run_id: &str,
        task_id: &str,
        seen_retry_count: u32,
        count_on_run: bool,
        now: &str,
    ) -> Result<Written> {
        let u = UpdateExpr::new()
            .set("status", s(TaskStatus::FailedPermanent.as_str()))
            .set("updated_at", s(now))
            .remove("next_retry_at")
            .expect_eq("status", s(TaskStatus::Failed.as_str()))
            .expect_count("retry_count", u64::from(seen_retry_count));
        self.write_task_counting_run(run_id, task_id, u, count_on_run, now).await
    }

    async fn write_task_counting_run(
        &self,
        run_id: &str,
        task_id: &str,
        task: UpdateExpr,
        count_on_run: bool,
        now: &str,
    ) -> Result<Written> {
        if !count_on_run {
            let res = task
                .apply(self.db.update_item().table_name(&self.tasks).set_key(Some(Tables::task_key(run_id, task_id))))
                .send()
                .await;
            return Ok(match super::conditional("UpdateItem tasks", res)? {
                Some(_) => Written::Yes,
                None => Written::Changed,
            });
        }
        let task = task.into_transact(&self.tasks, Tables::task_key(run_id, task_id))?;
        let run = UpdateExpr::new()
            .add("failed_tasks", n(1))
            .set("updated_at", s(now))
            .exists("run_id")
            .into_transact(&self.runs, Tables::run_key(run_id))?;
        let res = self
            .db
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(task).build())
            .transact_items(TransactWriteItem::builder().update(run).build())
            .send()
            .await;
        let err = match res {
            Ok(_) => return Ok(Written::Yes),
            Err(e) => e,
        };
        let reasons = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c)) => c.cancellation_reasons().to_vec(),
            _ => return Err(ArcError::from_sdk("TransactWriteItems", err)),
        };
        let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
        match (code(0), code(1)) {
            (_, "ConditionalCheckFailed") => Err(ArcError::RunNotFound(run_id.to_owned())),
            ("ConditionalCheckFailed", _) => Ok(Written::Changed),
            // Any other cancellation (TransactionConflict, ThrottlingError,
            // ProvisionedThroughputExceeded…) wrote nothing and may succeed when tried again.
            _ => Ok(Written::Contended),
        }
    }
}

/// How [`Tables::settle_in_flight`] treats the tasks it is given.
#[derive(Debug, Clone)]
pub struct SettlePolicy<'a> {
    pub max_retries: u32,
    pub backoff: &'a crate::config::BackoffConfig,
    /// Every task had a job (Complete): a `PENDING` task is charged too.
    pub job_ran: bool,
    /// `last_error_type` of a settled task (`Unfinished`, `ExecutionEnded`).
    pub error_type: &'a str,
    /// Its `last_error_cause` (e.g. `ExecutionEnded: ABORTED`).
    pub cause: &'a str,
    pub now: chrono::DateTime<chrono::Utc>,
    /// `INFRA_MAX_RETRIES` when a claimed task left in flight by a job that ended well is an
    /// infrastructure failure (Aggregate and Complete, after the Map); `None`: always counted.
    pub infra_cap: Option<u32>,
}

/// One in-flight task settled (or left alone because it changed meanwhile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledTask {
    pub task_id: String,
    /// Its status now: FAILED / FAILED_PERMANENT when written; as read again otherwise.
    pub status: TaskStatus,
    pub retry_count: u32,
    pub counted: bool,
    pub written: bool,
}

/// Task writes in flight at once.
const SETTLE_CONCURRENCY: usize = 16;

impl Tables {
    /// Ends every in-flight task of `tasks` as the failure model says
    /// ([`crate::failure::settle_in_flight`]): FAILED with `next_retry_at`, or FAILED_PERMANENT
    /// counted on the run. A task that changed meanwhile (a worker finished it) is read again
    /// and reported as it now is.
    pub async fn settle_in_flight(
        &self,
        tasks: &[crate::records::TaskRecord],
        policy: &SettlePolicy<'_>,
    ) -> Result<Vec<SettledTask>> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let now_s = crate::time::format_ts(policy.now);
        stream::iter(tasks.iter().filter_map(|t| {
            crate::failure::settle_in_flight(&t.status, t.retry_count, policy.max_retries, policy.job_ran)
                .map(|settled| match policy.infra_cap {
                    Some(cap) => crate::failure::spare_left_claimed(
                        settled,
                        &t.status,
                        t.infra_failures(),
                        cap,
                        policy.max_retries,
                    ),
                    None => settled,
                })
                .map(|settled| (t, settled))
        }))
        .map(|(t, settled)| {
            let now_s = now_s.as_str();
            async move {
                let next = (!settled.permanent).then(|| {
                    crate::time::format_ts(crate::backoff::due_at(
                        policy.backoff,
                        &t.run_id,
                        &t.task_id,
                        settled.retry_count,
                        policy.now,
                    ))
                });
                let mut written = Written::Contended;
                for attempt in 1..=8u64 {
                    written =
                        self.settle_task(t, settled, (policy.error_type, policy.cause), next.as_deref(), now_s).await?;
                    if written != Written::Contended {
                        break;
                    }
                    // Another permanent failure of this run holds the run item: pause, retry.
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                }
                if written == Written::Yes {
                    let status = if settled.permanent { TaskStatus::FailedPermanent } else { TaskStatus::Failed };
                    tracing::info!(run_id = %t.run_id, task_id = %t.task_id, retry_count = settled.retry_count,
                        counted = settled.counted, status = status.as_str(), error_type = policy.error_type,
                        "in-flight task settled");
                    return Ok(SettledTask {
                        task_id: t.task_id.clone(),
                        status,
                        retry_count: settled.retry_count,
                        counted: settled.counted,
                        written: true,
                    });
                }
                let now = self.get_task(&t.run_id, &t.task_id).await?;
                tracing::info!(run_id = %t.run_id, task_id = %t.task_id, "task changed meanwhile: not settled");
                Ok(SettledTask {
                    task_id: t.task_id.clone(),
                    status: now.as_ref().map_or_else(|| t.status.clone(), |n| n.status.clone()),
                    retry_count: now.as_ref().map_or(t.retry_count, |n| n.retry_count),
                    counted: false,
                    written: false,
                })
            }
        })
        .buffer_unordered(super::concurrency(SETTLE_CONCURRENCY))
        .try_collect()
        .await
    }
}
