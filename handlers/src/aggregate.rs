//! aggregate — metrics of a run from its task records, a JSON report to S3, the run record
//! updated.
//!
//! In: `arc_shared::contracts::AggregateInput` (`{run_id, execution_arn?}`).
//! Out: `AggregateOutput`; the report in S3 is `AggregateReport`.
//!
//! The tasks are read with a consistent, paginated query; only the compact row each task
//! contributes to the report is kept. Cost is summed exactly. Given the run's current
//! execution, tasks its Map left in flight (a job that exited 0 without the worker writing
//! COMPLETED, a bookkeeping failure) are first settled as failed attempts. Given an execution
//! that is no longer the run's current one (an old execution redriven), nothing is written and
//! the answer says `superseded: true`. A CANCELLED run's tasks are never settled (its status
//! is complete's, which leaves it CANCELLED).

use arc_shared::budget::Budget;
pub use arc_shared::contracts::AggregateOutput as Output;
use arc_shared::contracts::{AggregateInput, AggregateReport, ReportMetrics};
use arc_shared::input::{optional_arn, parse_event};
use arc_shared::metrics::{Metrics, TaskRow};
use arc_shared::records::{task_row, RunRecord, TaskRecord};
use arc_shared::runtime::Env;
use arc_shared::status::RunStatus;
use arc_shared::status::TaskStatus;
use arc_shared::store::objects::ObjectRef;
use arc_shared::store::SettlePolicy;
use arc_shared::time::format_ts;
use arc_shared::{ArcError, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// What aggregate reads of each task: its report row ([`TaskRow`]) and, for a task left in
/// flight, what settling it conditions on (`status`, `retry_count`, `infra_failures`). The
/// query parses nothing else of the items (the worker's timestamps, error causes, claims).
pub const ROW_ATTRIBUTES: &str = "run_id, task_id, #status, cost_usd, is_correct, retry_count, tokens_input, \
     tokens_output, last_error_type, result_s3_key, failure_class, infra_failures";

/// Whether `execution_arn` (given) is not the run's current execution.
pub fn superseded(run_execution: Option<&str>, execution_arn: Option<&str>) -> bool {
    matches!((run_execution, execution_arn), (Some(current), Some(this)) if current != this)
}

/// Where the report of `run_id` goes in the results bucket.
pub fn report_key(run_id: &str) -> String {
    format!("runs/{run_id}/results/aggregated.json")
}

pub async fn handle(env: Arc<Env>, event: Value) -> Result<Output> {
    let env = env.as_ref();
    let input: AggregateInput = parse_event(event)?;
    let run_id = input.run_id.as_str();
    let execution_arn = optional_arn("execution_arn", input.execution_arn)?;
    let execution_arn = execution_arn.as_deref();
    let tables = env.tables();
    let run = tables.require_run(run_id).await?;
    let superseded = superseded(run.execution_arn.as_deref(), execution_arn);
    if superseded {
        tracing::warn!(
            run_id,
            execution_arn,
            current = run.execution_arn.as_deref(),
            "aggregate of an execution that is no longer the run's current one: nothing written"
        );
    }

    // A CANCELLED run's tasks are left as they are: never settled, never charged.
    let settle = execution_arn.is_some() && !superseded && run.status != RunStatus::Cancelled;
    // The rows are kept only for the report; without a bucket, only the running totals are.
    let keep_rows = env.config.s3_bucket.is_some() && !superseded;
    let mut metrics = Metrics::default();
    let mut rows = Vec::new();
    // Page by page: each task becomes its compact row at once; only the tasks left in flight,
    // to be settled, are kept as records.
    let mut in_flight = Vec::new();
    tables
        .for_each_task_item_projected(run_id, Some(ROW_ATTRIBUTES), |item| {
            // Only a task to settle becomes a record; the others become rows at once.
            let in_flight_now = match item.get("status") {
                Some(AttributeValue::S(s)) => TaskStatus::from(s.clone()).is_in_flight(),
                _ => true,
            };
            if settle && in_flight_now {
                in_flight.push(TaskRecord::from_item(item)?);
            } else {
                add_task(&mut metrics, keep_rows.then_some(&mut rows), task_row(item)?);
            }
            Ok(())
        })
        .await?;
    let settled_tasks = if in_flight.is_empty() { 0 } else { settle_left_in_flight(env, &mut in_flight).await? };
    for t in in_flight {
        add_task(&mut metrics, keep_rows.then_some(&mut rows), TaskRow::from(t));
    }
    // The report lists the tasks in the order of the table (the settled ones came last).
    rows.sort_unstable_by(|a, b| a.task_id.cmp(&b.task_id));
    let accuracy = metrics.accuracy();
    let now = format_ts(env.clock.now());
    let output = |results_s3_key: Option<String>| Output {
        run_id: run_id.to_owned(),
        total_tasks: metrics.total_tasks,
        completed_tasks: metrics.completed_tasks,
        failed_tasks: metrics.failed_tasks,
        total_cost_usd: metrics.total_cost_usd,
        accuracy,
        results_s3_key,
        correct_tasks: metrics.correct_tasks,
        pending_tasks: metrics.pending_tasks,
        retries_pending: metrics.retries_pending,
        failed_permanent_tasks: metrics.failed_permanent_tasks,
        settled_tasks,
        superseded,
    };
    if superseded {
        return Ok(output(run.results_s3_key.clone()));
    }

    let results_s3_key = match &env.config.s3_bucket {
        Some(bucket) => {
            let at = ObjectRef { bucket: bucket.clone(), key: report_key(run_id) };
            let budget = run_budget(&run, &metrics);
            if let Some(b) = budget.as_ref().filter(|b| b.over_budget_tasks > 0) {
                tracing::warn!(run_id, max_cost_usd = %b.max_cost_usd, spent_usd = %b.spent_usd, over_budget = b.over_budget_tasks, "the run's budget does not cover retrying all its failed tasks");
            }
            let report = AggregateReport {
                run_id,
                config_name: run.config_name.as_deref(),
                execution_arn,
                generated_at: &now,
                metrics: ReportMetrics { counts: &metrics, accuracy },
                budget: budget.as_ref(),
                tasks: &rows,
            };
            env.clients.objects.put_json(&at, &report).await?;
            tracing::info!(run_id, bucket, key = at.key, "report written");
            Some(at.key)
        }
        None => None,
    };

    if !tables.record_aggregate(run_id, &metrics, results_s3_key.as_deref(), &now).await? {
        return Err(ArcError::RunNotFound(run_id.to_owned()));
    }
    tracing::info!(
        run_id,
        total = metrics.total_tasks,
        completed = metrics.completed_tasks,
        failed = metrics.failed_tasks,
        retries_pending = metrics.retries_pending,
        settled_tasks,
        cost = %metrics.total_cost_usd,
        accuracy,
        "run aggregated"
    );
    Ok(output(results_s3_key))
}

/// The run's budget against what its tasks cost (the exact sum of their `cost_usd`), and how
/// many of its retryable (FAILED) tasks a retry could still take.
pub fn run_budget(run: &RunRecord, m: &Metrics) -> Option<Budget> {
    let max = run.max_cost_usd?;
    let retryable = m.failed_tasks.saturating_sub(m.failed_permanent_tasks);
    Some(Budget::of(max, m.total_cost_usd, m.completed_tasks, retryable))
}

/// Adds one task's row to the run's figures, and to the report's rows (`rows`, when kept).
fn add_task(metrics: &mut Metrics, rows: Option<&mut Vec<TaskRow>>, row: TaskRow) {
    metrics.add_row(&row);
    if let Some(rows) = rows {
        rows.push(row);
    }
}

/// Settles the tasks this execution's Map left in flight (every task had a job, so a PENDING
/// one is charged too: the failure model's rule) and updates `tasks` to what they are now.
/// Returns how many were settled.
pub(crate) async fn settle_left_in_flight(env: &Env, tasks: &mut [TaskRecord]) -> Result<u64> {
    let policy = SettlePolicy {
        max_retries: env.config.max_retries,
        backoff: &env.config.backoff,
        job_ran: true,
        error_type: UNFINISHED,
        cause: UNFINISHED_CAUSE,
        now: env.clock.now(),
        infra_cap: Some(env.config.infra_max_retries),
    };
    let settled = env.tables().settle_in_flight(tasks, &policy).await?;
    let at: HashMap<String, usize> = tasks.iter().enumerate().map(|(i, t)| (t.task_id.clone(), i)).collect();
    let mut written = 0;
    for st in settled {
        let Some(t) = at.get(&st.task_id).and_then(|i| tasks.get_mut(*i)) else { continue };
        written += u64::from(st.written);
        t.status = st.status;
        t.retry_count = st.retry_count;
        if st.written {
            t.last_error_type = Some(UNFINISHED.to_owned());
        }
    }
    Ok(written)
}

/// `last_error_type` of a task its execution's Map left in flight.
pub const UNFINISHED: &str = "Unfinished";
/// Its `last_error_cause`.
pub const UNFINISHED_CAUSE: &str =
    "Unfinished: the task's job ended without the worker recording COMPLETED or a failure";
