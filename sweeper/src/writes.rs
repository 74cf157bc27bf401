//! Every write the sweeper makes: conditional UpdateItems on one run or one task. A write
//! whose condition fails returns `false`/`None` (someone else changed the item); every
//! other failure is an error. Each names `status` as `#status`.

use arc_shared::records::{n, s, Item, RunRecord};
use arc_shared::status::{RunStatus, TaskStatus};
use arc_shared::store::Tables;
use arc_shared::ArcError;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use std::collections::HashMap;

/// A small UpdateItem: expressions plus their values; `#status` is always named.
struct Update {
    set: String,
    condition: String,
    values: HashMap<String, AttributeValue>,
}

impl Update {
    fn new(set: &str, condition: &str) -> Self {
        Self { set: set.to_owned(), condition: condition.to_owned(), values: HashMap::new() }
    }

    fn value(mut self, name: &str, v: AttributeValue) -> Self {
        self.values.insert(name.to_owned(), v);
        self
    }

    fn build(self, b: UpdateItemFluentBuilder, key: Item) -> UpdateItemFluentBuilder {
        let b = b.set_key(Some(key)).update_expression(self.set).condition_expression(self.condition);
        let b = if self.values.is_empty() { b } else { b.set_expression_attribute_values(Some(self.values)) };
        b.expression_attribute_names("#status", "status")
    }
}

/// Ok(Some(out)) when written, Ok(None) when the condition failed.
fn outcome(
    op: &str,
    r: Result<UpdateItemOutput, SdkError<UpdateItemError, HttpResponse>>,
) -> Result<Option<UpdateItemOutput>, ArcError> {
    match r {
        Ok(out) => Ok(Some(out)),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => Ok(None),
        Err(e) => Err(ArcError::from_sdk(op, e)),
    }
}

/// `retry_count = :rc`, also true when the attribute is absent and `:rc` is 0.
fn retry_count_is(rc: u32) -> &'static str {
    if rc == 0 {
        "(attribute_not_exists(retry_count) OR retry_count = :rc)"
    } else {
        "retry_count = :rc"
    }
}

/// The condition "the run's status is still what we read".
fn run_status_is(status: &RunStatus) -> (&'static str, Option<AttributeValue>) {
    match status {
        RunStatus::Other(s) if s.is_empty() => ("attribute_not_exists(#status)", None),
        other => ("#status = :seen_status", Some(s(other.as_str()))),
    }
}

/// Claims `run` for retry generation `generation`: sets `retry_generation`, `#status =
/// RUNNING` and `execution_arn` in one write, conditional on the generation and status read.
/// `None`: another sweeper (or an execution) changed the run first.
pub async fn claim_run(
    tables: &Tables,
    run: &RunRecord,
    generation: u64,
    execution_arn: &str,
    now: &str,
) -> Result<Option<RunRecord>, ArcError> {
    let prev = generation.saturating_sub(1);
    let gen_cond = if prev == 0 {
        "(attribute_not_exists(retry_generation) OR retry_generation = :prev)"
    } else {
        "retry_generation = :prev"
    };
    let (status_cond, seen) = run_status_is(&run.status);
    let mut u = Update::new(
        "SET retry_generation = :gen, #status = :running, execution_arn = :arn, updated_at = :now",
        &format!("attribute_exists(run_id) AND {gen_cond} AND {status_cond}"),
    )
    .value(":gen", n(generation))
    .value(":prev", n(prev))
    .value(":running", s(RunStatus::Running.as_str()))
    .value(":arn", s(execution_arn))
    .value(":now", s(now));
    if let Some(v) = seen {
        u = u.value(":seen_status", v);
    }
    let r = u
        .build(tables.db.update_item().table_name(&tables.runs), Tables::run_key(&run.run_id))
        .return_values(ReturnValue::AllNew)
        .send()
        .await;
    match outcome("UpdateItem runs (claim)", r)? {
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
    let r = Update::new("SET #status = :prev_status, updated_at = :now", "#status = :running AND execution_arn = :arn")
        .value(":prev_status", s(status.as_str()))
        .value(":now", s(now))
        .value(":running", s(RunStatus::Running.as_str()))
        .value(":arn", s(execution_arn))
        .build(tables.db.update_item().table_name(&tables.runs), Tables::run_key(run_id))
        .send()
        .await;
    Ok(outcome("UpdateItem runs (release)", r)?.is_some())
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
    let r = Update::new(
        "SET #status = :queued, retry_execution = :name, updated_at = :now",
        &format!("#status = :failed AND {}", retry_count_is(retry_count)),
    )
    .value(":queued", s(TaskStatus::RetryQueued.as_str()))
    .value(":failed", s(TaskStatus::Failed.as_str()))
    .value(":rc", n(retry_count))
    .value(":name", s(name))
    .value(":now", s(now))
    .build(tables.db.update_item().table_name(&tables.tasks), Tables::task_key(run_id, task_id))
    .send()
    .await;
    Ok(outcome("UpdateItem tasks (requeue)", r)?.is_some())
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
    let r = Update::new("SET #status = :failed, updated_at = :now", "#status = :queued AND retry_execution = :name")
        .value(":queued", s(TaskStatus::RetryQueued.as_str()))
        .value(":failed", s(TaskStatus::Failed.as_str()))
        .value(":name", s(name))
        .value(":now", s(now))
        .build(tables.db.update_item().table_name(&tables.tasks), Tables::task_key(run_id, task_id))
        .send()
        .await;
    Ok(outcome("UpdateItem tasks (unqueue)", r)?.is_some())
}

/// A RETRY_QUEUED task without `retry_execution` → FAILED.
pub async fn unqueue_orphan(tables: &Tables, run_id: &str, task_id: &str, now: &str) -> Result<bool, ArcError> {
    let r = Update::new(
        "SET #status = :failed, updated_at = :now",
        "#status = :queued AND attribute_not_exists(retry_execution)",
    )
    .value(":queued", s(TaskStatus::RetryQueued.as_str()))
    .value(":failed", s(TaskStatus::Failed.as_str()))
    .value(":now", s(now))
    .build(tables.db.update_item().table_name(&tables.tasks), Tables::task_key(run_id, task_id))
    .send()
    .await;
    Ok(outcome("UpdateItem tasks (unqueue)", r)?.is_some())
}

/// What an in-flight task of an ended execution becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedAttempt {
    pub status: TaskStatus,
    pub retry_count: u32,
    pub cause: String,
    pub next_retry_at: Option<String>,
}

/// PENDING / IN_PROGRESS (status `seen`, count `seen_rc`) → FAILED or FAILED_PERMANENT with
/// `last_error_type = ExecutionEnded`, counted as a failed attempt.
pub async fn fail_in_flight(
    tables: &Tables,
    run_id: &str,
    task_id: &str,
    seen: &TaskStatus,
    seen_rc: u32,
    ended: &EndedAttempt,
    now: &str,
) -> Result<bool, ArcError> {
    let set = if ended.next_retry_at.is_some() {
        "SET #status = :st, retry_count = :new_rc, last_error_type = :et, last_error_cause = :cause, \
         last_error_at = :now, updated_at = :now, next_retry_at = :next"
    } else {
        "SET #status = :st, retry_count = :new_rc, last_error_type = :et, last_error_cause = :cause, \
         last_error_at = :now, updated_at = :now REMOVE next_retry_at"
    };
    let mut u = Update::new(set, &format!("#status = :seen AND {}", retry_count_is(seen_rc)))
        .value(":st", s(ended.status.as_str()))
        .value(":new_rc", n(ended.retry_count))
        .value(":et", s("ExecutionEnded"))
        .value(":cause", s(&ended.cause))
        .value(":now", s(now))
        .value(":seen", s(seen.as_str()))
        .value(":rc", n(seen_rc));
    if let Some(next) = &ended.next_retry_at {
        u = u.value(":next", s(next));
    }
    let r = u.build(tables.db.update_item().table_name(&tables.tasks), Tables::task_key(run_id, task_id)).send().await;
    Ok(outcome("UpdateItem tasks (execution ended)", r)?.is_some())
}

/// Counts of a run's tasks after a repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunCounts {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    pub retries_pending: u64,
}

/// The run's status recomputed (`RunStatus::from_counts`) after its execution `arn` ended,
/// conditional on the run still being RUNNING with that execution.
pub async fn finish_run(
    tables: &Tables,
    run_id: &str,
    arn: &str,
    counts: RunCounts,
    now: &str,
) -> Result<Option<RunRecord>, ArcError> {
    let status = RunStatus::from_counts(counts.total, counts.failed);
    let r = Update::new(
        "SET #status = :st, total_tasks = :total, completed_tasks = :completed, failed_tasks = :failed, \
         retries_pending = :pending, updated_at = :now",
        "#status = :running AND execution_arn = :arn",
    )
    .value(":st", s(status.as_str()))
    .value(":total", n(counts.total))
    .value(":completed", n(counts.completed))
    .value(":failed", n(counts.failed))
    .value(":pending", n(counts.retries_pending))
    .value(":now", s(now))
    .value(":running", s(RunStatus::Running.as_str()))
    .value(":arn", s(arn))
    .build(tables.db.update_item().table_name(&tables.runs), Tables::run_key(run_id))
    .return_values(ReturnValue::AllNew)
    .send()
    .await;
    match outcome("UpdateItem runs (repair)", r)? {
        Some(out) => out.attributes.map(RunRecord::from_item).transpose(),
        None => Ok(None),
    }
}
