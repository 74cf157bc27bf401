//! What a sweep did (the Lambda's output), and its CloudWatch metrics.

use crate::plan::Deferred;
use arc_shared::ArcError;
use aws_sdk_cloudwatch::types::{MetricDatum, StandardUnit};
use serde::Serialize;
use std::collections::BTreeMap;

/// At most this many deferred tasks are listed one by one (all are counted).
pub const DEFERRED_LISTED: usize = 200;

/// The sweep's report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SweepSummary {
    /// Nothing was written and nothing started; the counts say what would have been.
    pub dry_run: bool,
    /// `scheduled` or `manual`.
    pub trigger: String,
    /// The sweep's clock reading.
    pub swept_at: String,
    /// FAILED tasks read.
    pub scanned: u64,
    /// Of those, due now (backoff elapsed, or `ignore_backoff`).
    pub due: u64,
    /// Tasks left FAILED for a later sweep (not yet due, over `max_tasks`, over the input bound).
    pub deferred_count: u64,
    /// The first deferred tasks with their due times and reasons.
    pub deferred: Vec<Deferred>,
    /// Tasks moved FAILED → RETRY_QUEUED, per run.
    pub requeued: BTreeMap<String, u64>,
    pub requeued_total: u64,
    /// Retry executions started (or, in a dry run, that would be).
    pub executions_started: Vec<StartedExecution>,
    /// Runs with due tasks left alone, and why (e.g. their execution is still running).
    pub skipped_runs: Vec<SkippedRun>,
    /// Repairs: executions started for orphaned RETRY_QUEUED tasks, tasks sent back to FAILED,
    /// runs whose execution ended finished.
    pub repaired: Vec<Repair>,
    /// FAILED tasks whose `retry_count` had already reached MAX_RETRIES: made
    /// FAILED_PERMANENT (counted on their run once) instead of retried.
    pub made_permanent: Vec<TaskRef>,
    /// Task ids of the request that are not FAILED tasks of the run.
    pub unmatched_task_ids: Vec<String>,
    /// Errors that did not stop the sweep (one run's failure does not block the others).
    pub errors: Vec<SweepError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StartedExecution {
    pub run_id: String,
    pub execution_name: String,
    pub execution_arn: String,
    pub retry_generation: u64,
    pub tasks: u64,
    /// Why: `retry` (a new generation) or `repair` (a claimed generation whose start was lost).
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskRef {
    pub run_id: String,
    pub task_id: String,
    pub retry_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedRun {
    pub run_id: String,
    pub due_tasks: u64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repair {
    pub run_id: String,
    /// `execution_started`, `tasks_unqueued`, `run_finished`, `claim_released`.
    pub action: String,
    pub execution_name: Option<String>,
    /// The execution's status as described (`RUNNING`, `ABORTED`, `NOT_FOUND`, …).
    pub execution_status: Option<String>,
    pub tasks: u64,
    /// The run's status afterwards, when it changed.
    pub run_status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepError {
    pub run_id: Option<String>,
    pub error_type: String,
    pub message: String,
}

impl SweepSummary {
    pub fn defer(&mut self, d: Vec<Deferred>) {
        self.deferred_count += d.len() as u64;
        let room = DEFERRED_LISTED.saturating_sub(self.deferred.len());
        self.deferred.extend(d.into_iter().take(room));
    }

    pub fn error(&mut self, run_id: Option<&str>, e: &ArcError) {
        tracing::error!(run_id, error_type = e.error_type(), error = %e, "sweep error");
        self.errors.push(SweepError {
            run_id: run_id.map(str::to_owned),
            error_type: e.error_type().to_owned(),
            message: e.to_string(),
        });
    }

    /// Runs repaired (distinct).
    pub fn runs_repaired(&self) -> u64 {
        let runs: std::collections::BTreeSet<&str> = self.repaired.iter().map(|r| r.run_id.as_str()).collect();
        runs.len() as u64
    }

    /// Retry executions of a new generation started.
    pub fn runs_retried(&self) -> u64 {
        self.executions_started.iter().filter(|e| e.reason == "retry").count() as u64
    }

    /// The metrics of this sweep, in publishing order.
    pub fn metrics(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("TasksRequeued", self.requeued_total as f64),
            ("TasksDeferred", self.deferred_count as f64),
            ("RunsRetried", self.runs_retried() as f64),
            ("RunsRepaired", self.runs_repaired() as f64),
            ("SweepErrors", self.errors.len() as f64),
        ]
    }
}

/// Publishes the sweep's metrics into `namespace`. A failure is logged, not fatal.
pub async fn publish_metrics(cw: &aws_sdk_cloudwatch::Client, namespace: &str, summary: &SweepSummary) {
    let data: Vec<MetricDatum> = summary
        .metrics()
        .into_iter()
        .map(|(name, value)| MetricDatum::builder().metric_name(name).value(value).unit(StandardUnit::Count).build())
        .collect();
    if let Err(e) = cw.put_metric_data().namespace(namespace).set_metric_data(Some(data)).send().await {
        let e = ArcError::from_sdk("PutMetricData", e);
        tracing::warn!(namespace, error = %e, "sweeper metrics not published");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::DeferReason;

    #[test]
    fn deferred_are_counted_all_and_listed_up_to_the_cap() {
        let mut s = SweepSummary::default();
        let d = |i: usize| Deferred {
            run_id: "r".into(),
            task_id: format!("t{i}"),
            retry_count: 1,
            due_at: None,
            reason: DeferReason::NotYetDue,
        };
        s.defer((0..150).map(d).collect());
        s.defer((150..300).map(d).collect());
        assert_eq!(s.deferred_count, 300);
        assert_eq!(s.deferred.len(), DEFERRED_LISTED);
        let m: BTreeMap<_, _> = s.metrics().into_iter().collect();
        assert_eq!(m["TasksDeferred"], 300.0);
        assert_eq!(m["SweepErrors"], 0.0);
    }
}
