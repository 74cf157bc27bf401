//! The retry sweeper's reads and writes (docs/ARCHITECTURE.md, "The sweeper"): the tasks it
//! finds through `status-index`, its claim of a run, the task moves FAILED → RETRY_QUEUED →
//! FAILED, and a run's status after its execution ended. Each write is one conditional
//! UpdateItem; a write whose condition fails says so (someone else changed the item first),
//! any other failure is an error. Every expression names `status` as `#status`.

use super::{conditional, each_written, Tables, UpdateExpr, STATUS_INDEX};
use crate::error::{describe_sdk_error, ArcError, Result};
use crate::metrics::Metrics;
use crate::records::{n, s, Item, RunRecord, TaskRecord};
use crate::status::{RunStatus, TaskStatus};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::QueryError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use std::collections::HashMap;

/// What the sweep's plan reads of a FAILED task (50,000 of them with 4,000-character causes
/// would not fit a Lambda's memory; these few attributes do).
const FAILED_PROJECTION: &str = "run_id, task_id, #status, retry_count, last_error_at, updated_at";
/// What repair reads of a RETRY_QUEUED task.
const QUEUED_PROJECTION: &str = "run_id, task_id, #status, retry_count, retry_execution, updated_at";
/// Keys only.
const KEY_PROJECTION: &str = "run_id, task_id";
/// What the breakers count of an ended task (`error` is the worker's text, `#err`).
const ENDED_PROJECTION: &str = "run_id, task_id, #status, failure_class, #err, updated_at";

/// Which `updated_at` a status query keeps (the index's range key).
#[derive(Debug, Clone, Copy)]
enum Updated<'a> {
    Any,
    AtOrBefore(&'a str),
    AtOrAfter(&'a str),
}

/// Tasks read, and the items that could not be read as tasks (reported, not fatal).
#[derive(Debug, Default)]
pub struct Found {
    pub tasks: Vec<TaskRecord>,
    pub corrupt: Vec<ArcError>,
}

impl Found {
    fn push(&mut self, item: Item) {
        match TaskRecord::from_item(item) {
            Ok(t) => self.tasks.push(t),
            Err(e) => self.corrupt.push(e),
        }
    }

    fn extend(&mut self, other: Found) {
        self.tasks.extend(other.tasks);
        self.corrupt.extend(other.corrupt);
    }
}

/// The condition value for "the run's status is still what we read" (absent when never written).
fn seen_status(status: &RunStatus) -> Option<AttributeValue> {
    (!status.as_str().is_empty()).then(|| s(status.as_str()))
}

impl Tables {
    /// FAILED tasks (only what the sweep's plan reads: keys, status, `retry_count`,
    /// `last_error_at`, `updated_at`), when `written_by` is given only those whose `updated_at`
    /// is not after it.
    pub async fn failed_tasks(&self, written_by: Option<&str>) -> Result<Found> {
        let range = written_by.map_or(Updated::Any, Updated::AtOrBefore);
        self.tasks_by_status(&TaskStatus::Failed, range, FAILED_PROJECTION).await
    }

    /// RETRY_QUEUED tasks (keys, status, `retry_count`, `retry_execution`, `updated_at`).
    pub async fn queued_tasks(&self) -> Result<Found> {
        self.tasks_by_status(&TaskStatus::RetryQueued, Updated::Any, QUEUED_PROJECTION).await
    }

    /// PENDING and IN_PROGRESS tasks last written at or before `written_by`, keys only.
    pub async fn stale_in_flight_tasks(&self, written_by: &str) -> Result<Found> {
        let mut found = Found::default();
        for status in [TaskStatus::Pending, TaskStatus::InProgress] {
            found.extend(self.tasks_by_status(&status, Updated::AtOrBefore(written_by), KEY_PROJECTION).await?);
        }
        Ok(found)
    }

    /// Tasks that ended (COMPLETED, FAILED, FAILED_PERMANENT) at or after `since`: what the
    /// sweeper's circuit breakers count (keys, status, class, the worker's error text).
    pub async fn ended_tasks_since(&self, since: &str) -> Result<Found> {
        let mut found = Found::default();
        for status in [TaskStatus::Completed, TaskStatus::Failed, TaskStatus::FailedPermanent] {
            found.extend(self.tasks_by_status(&status, Updated::AtOrAfter(since), ENDED_PROJECTION).await?);
        }
        Ok(found)
    }

    /// Every task of one run (strongly consistent), items that are not tasks set apart.
    pub async fn run_partition(&self, run_id: &str) -> Result<Found> {
        let mut found = Found::default();
        self.for_each_task_item(run_id, |item| {
            found.push(item);
            Ok(())
        })
        .await?;
        Ok(found)
    }

    /// Tasks whose status is `status` (and `updated_at <= written_by` when given), reading
    /// `projection`, through `status-index`, every page.
    async fn tasks_by_status(&self, status: &TaskStatus, updated: Updated<'_>, projection: &str) -> Result<Found> {
        let (key, cutoff) = match updated {
            Updated::Any => ("#status = :status", None),
            Updated::AtOrBefore(c) => ("#status = :status AND updated_at <= :cutoff", Some(c)),
            Updated::AtOrAfter(c) => ("#status = :status AND updated_at >= :cutoff", Some(c)),
        };
        let values: HashMap<String, AttributeValue> = [(":status".to_owned(), s(status.as_str()))]
            .into_iter()
            .chain(cutoff.map(|c| (":cutoff".to_owned(), s(c))))
            .collect();
        let mut names = HashMap::from([("#status".to_owned(), "status".to_owned())]);
        if projection.contains("#err") {
            names.insert("#err".to_owned(), "error".to_owned());
        }
        let mut items = self
            .db
            .query()
            .table_name(&self.tasks)
            .index_name(STATUS_INDEX)
            .key_condition_expression(key)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .projection_expression(projection)
            .into_paginator()
            .items()
            .send();
        let mut found = Found::default();
        while let Some(item) = items.next().await {
            match item {
                Ok(item) => found.push(item),
                Err(e) => return Err(self.status_query_error(e).await),
            }
        }
        Ok(found)
    }

    /// The error of a failed status-index Query: `IndexMissing` when the tasks table exists
    /// without `status-index` (a table created by the Python set's definitions), else the
    /// Query's own error.
    async fn status_query_error(&self, e: SdkError<QueryError, HttpResponse>) -> ArcError {
        let maybe_missing = may_be_missing_index(&e);
        let original = ArcError::from_sdk("Query status-index", e);
        if !maybe_missing {
            return original;
        }
        match self.db.describe_table().table_name(&self.tasks).send().await {
            Ok(out) => {
                let has_index = out
                    .table()
                    .is_some_and(|t| t.global_secondary_indexes().iter().any(|g| g.index_name() == Some(STATUS_INDEX)));
                if has_index {
                    original
                } else {
                    ArcError::IndexMissing { table: self.tasks.clone(), index: STATUS_INDEX.to_owned() }
                }
            }
            Err(d) => {
                tracing::warn!(
                    table = %self.tasks,
                    error = %describe_sdk_error(&d),
                    "Query status-index failed; DescribeTable could not tell whether the index exists"
                );
                original
            }
        }
    }

    /// Claims `run` for retry generation `generation`: sets `retry_generation`, `#status =
    /// RUNNING` and `execution_arn` in one write, conditional on the generation and status read
    /// and on the run not being CANCELLED (an operator's cancel between the read and this write
    /// makes it fail). `None`: another sweeper, an execution or an operator changed the run first.
    pub async fn claim_run(
        &self,
        run: &RunRecord,
        generation: u64,
        execution_arn: &str,
        now: &str,
    ) -> Result<Option<RunRecord>> {
        let r = UpdateExpr::new()
            .set("retry_generation", n(generation))
            .set("status", s(RunStatus::Running.as_str()))
            .set("execution_arn", s(execution_arn))
            .set("updated_at", s(now))
            .exists("run_id")
            .expect_count("retry_generation", generation.saturating_sub(1))
            .expect_eq_or_missing("status", seen_status(&run.status))
            .expect_missing_or_ne("status", s(RunStatus::Cancelled.as_str()))
            .apply(self.db.update_item().table_name(&self.runs).set_key(Some(Tables::run_key(&run.run_id))))
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

    /// Gives a claim back (nothing could be re-queued): the run returns to `previous` (a run
    /// without a status to COMPLETED_WITH_ERRORS), conditional on still holding the claim of
    /// `execution_arn`. The generation stays used. `false`: the run changed meanwhile.
    pub async fn release_claim(
        &self,
        run_id: &str,
        previous: &RunStatus,
        execution_arn: &str,
        now: &str,
    ) -> Result<bool> {
        let status = match previous {
            RunStatus::Other(s) if s.is_empty() => RunStatus::CompletedWithErrors,
            other => other.clone(),
        };
        let r = UpdateExpr::new()
            .set("status", s(status.as_str()))
            .set("updated_at", s(now))
            .expect_eq("status", s(RunStatus::Running.as_str()))
            .expect_eq("execution_arn", s(execution_arn));
        self.update_if(&self.runs, Tables::run_key(run_id), r, "UpdateItem runs (release)").await
    }

    /// Records on the run that `over_budget` of its retryable tasks are not retried for its
    /// budget (`over_budget_tasks`, `over_budget_at`; both removed when `over_budget` is 0).
    /// `false`: the run is gone.
    pub async fn record_budget_stop(&self, run_id: &str, over_budget: u64, now: &str) -> Result<bool> {
        let stopped = over_budget > 0;
        let u = UpdateExpr::new()
            .set_or_remove("over_budget_tasks", stopped.then(|| n(over_budget)))
            .set_or_remove("over_budget_at", stopped.then(|| s(now)));
        self.update_if(&self.runs, Tables::run_key(run_id), u.exists("run_id"), "UpdateItem runs (budget)").await
    }

    /// FAILED → RETRY_QUEUED for execution `execution_name`, each of `tasks` (task id,
    /// `retry_count` as read) conditional on its status and count. Returns the ids moved.
    pub async fn requeue_tasks(
        &self,
        run_id: &str,
        tasks: &[(&str, u32)],
        execution_name: &str,
        now: &str,
    ) -> Result<Vec<String>> {
        each_written(tasks.iter(), |&(task_id, retry_count)| async move {
            let r = UpdateExpr::new()
                .set("status", s(TaskStatus::RetryQueued.as_str()))
                .set("retry_execution", s(execution_name))
                .set("updated_at", s(now))
                .expect_eq("status", s(TaskStatus::Failed.as_str()))
                .expect_count("retry_count", u64::from(retry_count));
            let mut moved =
                self.update_if(&self.tasks, Tables::task_key(run_id, task_id), r, "UpdateItem tasks (requeue)").await?;
            if !moved {
                // Our own write whose answer was lost (the SDK's retry then fails the
                // condition): the task is queued for this very execution, whose name only
                // the claim holder uses.
                moved = self.get_task(run_id, task_id).await?.is_some_and(|t| {
                    t.status == TaskStatus::RetryQueued
                        && t.retry_execution.as_deref() == Some(execution_name)
                        && t.retry_count == retry_count
                });
            }
            if !moved {
                tracing::info!(run_id, task_id, "task changed meanwhile: not re-queued");
            }
            Ok(moved.then(|| task_id.to_owned()))
        })
        .await
    }

    /// RETRY_QUEUED → FAILED for `task_ids`, each conditional on its `retry_execution` being
    /// `execution_name` (absent when `None`): that execution will never run them. Not a failed
    /// attempt: `retry_count` is kept. Returns how many moved.
    pub async fn unqueue_tasks(
        &self,
        run_id: &str,
        task_ids: &[String],
        execution_name: Option<&str>,
        now: &str,
    ) -> Result<u64> {
        let moved = each_written(task_ids.iter(), |task_id| async move {
            let r = UpdateExpr::new()
                .set("status", s(TaskStatus::Failed.as_str()))
                .set("updated_at", s(now))
                .expect_eq("status", s(TaskStatus::RetryQueued.as_str()))
                .expect_eq_or_missing("retry_execution", execution_name.map(s));
            Ok(self
                .update_if(&self.tasks, Tables::task_key(run_id, task_id), r, "UpdateItem tasks (unqueue)")
                .await?
                .then_some(()))
        })
        .await?;
        Ok(moved.len() as u64)
    }

    /// The run's status recomputed (`RunStatus::from_counts`) with its counts after its
    /// execution `execution_arn` ended, conditional on the run still being RUNNING with that
    /// execution. `None`: the run changed meanwhile.
    pub async fn finish_run(
        &self,
        run_id: &str,
        execution_arn: &str,
        counts: &Metrics,
        now: &str,
    ) -> Result<Option<RunRecord>> {
        let status = RunStatus::from_counts(counts.total_tasks, counts.failed_tasks);
        let r = UpdateExpr::new()
            .set("status", s(status.as_str()))
            .set("total_tasks", n(counts.total_tasks))
            .set("completed_tasks", n(counts.completed_tasks))
            .set("failed_tasks", n(counts.failed_tasks))
            .set("retries_pending", n(counts.retries_pending))
            .set("updated_at", s(now))
            .expect_eq("status", s(RunStatus::Running.as_str()))
            .expect_eq("execution_arn", s(execution_arn))
            .apply(self.db.update_item().table_name(&self.runs).set_key(Some(Tables::run_key(run_id))))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match conditional("UpdateItem runs (repair)", r)? {
            Some(out) => out.attributes.map(RunRecord::from_item).transpose(),
            None => Ok(None),
        }
    }
}

/// Whether a failed Query may mean that the index does not exist: DynamoDB answers a query on
/// a missing index with a ValidationException (and some emulators with ResourceNotFound).
fn may_be_missing_index(e: &SdkError<QueryError, HttpResponse>) -> bool {
    e.as_service_error()
        .is_some_and(|se| se.is_resource_not_found_exception() || se.code() == Some("ValidationException"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::types::error::ResourceNotFoundException;
    use aws_smithy_types::body::SdkBody;

    fn query_failed(status: u16, err: QueryError) -> SdkError<QueryError, HttpResponse> {
        SdkError::service_error(err, HttpResponse::new(status.try_into().unwrap(), SdkBody::empty()))
    }

    fn generic(code: &str) -> QueryError {
        QueryError::generic(ErrorMetadata::builder().code(code).message("x").build())
    }

    #[test]
    fn a_missing_index_is_suspected_by_error_kind_only() {
        assert!(may_be_missing_index(&query_failed(400, generic("ValidationException"))));
        let not_found = QueryError::ResourceNotFoundException(ResourceNotFoundException::builder().build());
        assert!(may_be_missing_index(&query_failed(400, not_found)));
        assert!(!may_be_missing_index(&query_failed(400, generic("AccessDeniedException"))));
        assert!(!may_be_missing_index(&query_failed(500, generic("InternalServerError"))));
    }

    #[test]
    fn projections_name_status_through_a_placeholder() {
        for p in [FAILED_PROJECTION, QUEUED_PROJECTION, KEY_PROJECTION] {
            assert!(!p.split(", ").any(|a| a == "status"), "{p}");
        }
    }
}
