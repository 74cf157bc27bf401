//! The run and task writes of the Step Functions path: initialize creates a run and its
//! PENDING tasks or re-opens tasks for a retry, aggregate records its figures, complete
//! finishes the run. Each operation owns its expression; every one is conditional on what
//! its caller read, and says whether it was written.

use super::{batch_put, Tables, UpdateExpr};
use crate::contracts::RunFigures;
use crate::error::{ArcError, Result};
use crate::metrics::Metrics;
use crate::records::{decimal_attr, n, s, Item, RunRecord, TaskRecord, RUN_ROLLUPS};
use crate::status::{RunStatus, TaskStatus};
use rust_decimal::Decimal;
use std::collections::HashMap;

/// A new run's item.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub run_id: &'a str,
    pub config_name: &'a str,
    pub data_source: &'a str,
    pub triggered_by: &'a str,
    pub commit_sha: &'a str,
    pub total_tasks: usize,
    pub execution_arn: Option<&'a str>,
    pub now: &'a str,
    /// The run's budget (`max_cost_usd`); `None`: no limit.
    pub max_cost_usd: Option<Decimal>,
}

/// What a run has published to CloudWatch so far (kept on the run item, written in the same
/// conditional write that decides a publish).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Published {
    pub run_completed: bool,
    pub run_cancelled: bool,
    pub tasks_completed: u64,
    pub tasks_failed: u64,
    pub cost_usd: Decimal,
}

impl Published {
    pub fn of(run: &RunRecord) -> Self {
        Self {
            run_completed: run.published_run_completed.unwrap_or(0) > 0,
            run_cancelled: run.published_run_cancelled.unwrap_or(0) > 0,
            tasks_completed: run.published_tasks_completed.unwrap_or(0),
            tasks_failed: run.published_tasks_failed.unwrap_or(0),
            cost_usd: run.published_cost_usd.unwrap_or_default(),
        }
    }
}

/// complete's write: the run's final status and figures, and what it has now published.
#[derive(Debug, Clone)]
pub struct RunCompletion<'a> {
    /// The run as read: the write holds only while its published figures are still these.
    pub run: &'a RunRecord,
    /// `Cancelled` keeps a CANCELLED run cancelled; anything else never overwrites CANCELLED.
    pub status: &'a RunStatus,
    pub figures: RunFigures,
    pub duration_seconds: f64,
    pub completed_at: &'a str,
    pub published: Published,
    /// The completing execution, when the state machine runs it (a repeat of it writes nothing).
    pub execution_arn: Option<&'a str>,
}

const PUBLISHED_RUN: &str = "published_run_completed";
const PUBLISHED_CANCELLED: &str = "published_run_cancelled";
const PUBLISHED_COMPLETED: &str = "published_tasks_completed";
const PUBLISHED_FAILED: &str = "published_tasks_failed";
const PUBLISHED_COST: &str = "published_cost_usd";

impl Tables {
    /// Creates the run item (RUNNING, every roll-up the Python worker adds to at 0) unless a
    /// run of that id exists: `true` when created.
    pub async fn create_run(&self, r: &NewRun<'_>) -> Result<bool> {
        let mut item: Item = HashMap::from([
            ("run_id".to_owned(), s(r.run_id)),
            ("config_name".to_owned(), s(r.config_name)),
            ("data_source".to_owned(), s(r.data_source)),
            ("status".to_owned(), s(RunStatus::Running.as_str())),
            ("created_at".to_owned(), s(r.now)),
            ("updated_at".to_owned(), s(r.now)),
            ("triggered_by".to_owned(), s(r.triggered_by)),
            ("commit_sha".to_owned(), s(r.commit_sha)),
            ("total_tasks".to_owned(), n(r.total_tasks)),
            ("retry_generation".to_owned(), n(0)),
        ]);
        for rollup in RUN_ROLLUPS {
            item.insert(rollup.to_owned(), n(0));
        }
        if let Some(arn) = r.execution_arn {
            item.insert("execution_arn".to_owned(), s(arn));
        }
        if let Some(max) = r.max_cost_usd {
            item.insert("max_cost_usd".to_owned(), decimal_attr(max));
        }
        let put = self
            .db
            .put_item()
            .table_name(&self.runs)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#run_id)")
            .expression_attribute_names("#run_id", "run_id")
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(ArcError::from_sdk("PutItem runs", e)),
        }
    }

    /// Writes a PENDING task item (`retry_count` 0) per id, in batches.
    pub async fn put_pending_tasks<'a>(
        &self,
        run_id: &str,
        task_ids: impl Iterator<Item = &'a str>,
        now: &str,
    ) -> Result<usize> {
        // Built as the batches go out, not all at once.
        let mut written = 0;
        let items = task_ids.map(|t| {
            written += 1;
            HashMap::from([
                ("run_id".to_owned(), s(run_id)),
                ("task_id".to_owned(), s(t)),
                ("status".to_owned(), s(TaskStatus::Pending.as_str())),
                ("created_at".to_owned(), s(now)),
                ("updated_at".to_owned(), s(now)),
                ("retry_count".to_owned(), n(0)),
            ])
        });
        batch_put(&self.db, &self.tasks, items).await?;
        Ok(written)
    }

    /// Re-opens a FAILED or RETRY_QUEUED task for a retry execution: PENDING, owned by
    /// `execution_name`, no `next_retry_at`. Conditional on the status and `retry_count` read:
    /// `false` when the task changed meanwhile.
    pub async fn reopen_task(&self, task: &TaskRecord, execution_name: Option<&str>, now: &str) -> Result<bool> {
        let res = UpdateExpr::new()
            .set("status", s(TaskStatus::Pending.as_str()))
            .set("updated_at", s(now))
            .set_opt("retry_execution", execution_name.map(s))
            .remove("next_retry_at")
            .expect_eq("status", s(task.status.as_str()))
            .expect_count("retry_count", u64::from(task.retry_count));
        self.update_if(&self.tasks, Tables::task_key(&task.run_id, &task.task_id), res, "UpdateItem tasks").await
    }

    /// The run is RUNNING with this execution; a legacy run (created by the Python set) gets
    /// the roll-ups the worker's completion adds to. Never a CANCELLED run: `false` when the
    /// run is cancelled or gone.
    pub async fn mark_running(&self, run_id: &str, execution_arn: Option<&str>, now: &str) -> Result<bool> {
        let update = RUN_ROLLUPS.iter().fold(UpdateExpr::new(), |u, r| u.set_if_missing(r, n(0)));
        let res = update
            .set("status", s(RunStatus::Running.as_str()))
            .set("updated_at", s(now))
            .set_opt("execution_arn", execution_arn.map(s))
            .exists("run_id")
            .expect_missing_or_ne("status", s(RunStatus::Cancelled.as_str()));
        self.update_if(&self.runs, Tables::run_key(run_id), res, "UpdateItem runs").await
    }

    /// aggregate's figures on the run. Every roll-up the worker adds to is written as a number
    /// (its `x = x + :v` needs them). `false` when the run is gone.
    pub async fn record_aggregate(
        &self,
        run_id: &str,
        m: &Metrics,
        results_s3_key: Option<&str>,
        now: &str,
    ) -> Result<bool> {
        let res = UpdateExpr::new()
            .set("completed_tasks", n(m.completed_tasks))
            .set("failed_tasks", n(m.failed_tasks))
            .set("total_cost_usd", decimal_attr(m.total_cost_usd))
            .set("total_input_tokens", n(m.total_input_tokens))
            .set("total_output_tokens", n(m.total_output_tokens))
            .set("accuracy", n(m.accuracy()))
            .set("retries_pending", n(m.retries_pending))
            .set_opt("results_s3_key", results_s3_key.map(s))
            .set("updated_at", s(now))
            .exists("run_id");
        self.update_if(&self.runs, Tables::run_key(run_id), res, "UpdateItem runs").await
    }

    /// complete's write. `false` when the run is gone, was completed by this execution or
    /// published by a concurrent complete since it was read, or (for any status but
    /// `Cancelled`) was cancelled meanwhile: the caller re-reads it to tell which.
    pub async fn complete_run(&self, c: &RunCompletion<'_>) -> Result<bool> {
        let run = c.run;
        let f = &c.figures;
        let update = if *c.status == RunStatus::Cancelled {
            // Never un-cancelled: the write holds only while the run is still CANCELLED.
            UpdateExpr::new()
                .expect_eq("status", s(RunStatus::Cancelled.as_str()))
                .set(PUBLISHED_CANCELLED, n(1))
                .expect_eq_or_missing(PUBLISHED_CANCELLED, run.published_run_cancelled.map(n))
        } else {
            UpdateExpr::new()
                .set("status", s(c.status.as_str()))
                .expect_missing_or_ne("status", s(RunStatus::Cancelled.as_str()))
                .set(PUBLISHED_RUN, n(1))
        };
        let mut update = update
            .set("completed_at", s(c.completed_at))
            .set("updated_at", s(c.completed_at))
            .set("duration_seconds", n(c.duration_seconds))
            .set("total_tasks", n(f.total_tasks))
            .set("completed_tasks", n(f.completed_tasks))
            .set("failed_tasks", n(f.failed_tasks))
            .set("accuracy", n(f.accuracy))
            .set("total_cost_usd", decimal_attr(f.total_cost_usd))
            .set(PUBLISHED_COMPLETED, n(c.published.tasks_completed))
            .set(PUBLISHED_FAILED, n(c.published.tasks_failed))
            .set(PUBLISHED_COST, decimal_attr(c.published.cost_usd))
            .exists("run_id")
            // The publish is decided against exactly the figures read: a concurrent complete
            // of this run changes them, and this write then fails instead of publishing twice.
            .expect_eq_or_missing(PUBLISHED_COMPLETED, run.published_tasks_completed.map(n))
            .expect_eq_or_missing(PUBLISHED_FAILED, run.published_tasks_failed.map(n))
            .expect_eq_or_missing(PUBLISHED_RUN, run.published_run_completed.map(n));
        if let Some(arn) = c.execution_arn {
            update =
                update.set("completed_by_execution", s(arn)).expect_missing_or_ne("completed_by_execution", s(arn));
        }
        let res = update;
        self.update_if(&self.runs, Tables::run_key(&run.run_id), res, "UpdateItem runs").await
    }
}
