//! handle-error — records a failed Batch job against its task: `FAILED` (retryable, with
//! `next_retry_at` from the shared backoff policy) or `FAILED_PERMANENT`.
//!
//! In: `{run_id, task_id, error: {Error, Cause}, delivery?: {execution_arn, entered_at}}`.
//! Out: `{run_id, task_id, status: "RETRY_SCHEDULED" | "FAILED_PERMANENT", retry_count,
//! error_message, next_retry_at?}` (+ `job_id`, `counted`).
//!
//! The failure model (`arc_shared::failure`): each delivery is counted once (keyed on the Batch
//! job id, else on the state machine's delivery key); a failure the Python worker already
//! recorded is annotated, not counted again; one it could not record (killed, timed out, failed
//! before its claim) is counted. The Cause is stored redacted (no container environment,
//! secrets or command) beside the parsed fields operators need. Writes are conditional on the
//! state read; on a change the task is re-read and the decision made again.

use arc_shared::backoff::due_at;
use arc_shared::failure::{
    decide_failure, parse_batch_cause, redact_cause, truncate_chars, Delivery, FailureDecision, TaskFailureState,
    MAX_ERROR_TYPE_CHARS, MESSAGE_CAUSE_CHARS,
};
use arc_shared::ids::{RunId, TaskId};
use arc_shared::input::parse_event;
use arc_shared::runtime::Env;
use arc_shared::store::{FailureWrite, SeenTask, Written};
use arc_shared::time::{format_ts, parse_ts};
use arc_shared::{ArcError, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Re-reads on write conflicts before giving up.
const MAX_ATTEMPTS: u32 = 8;

#[derive(Debug, Deserialize)]
struct Input {
    run_id: RunId,
    task_id: TaskId,
    #[serde(default)]
    error: StepFunctionsError,
    #[serde(default)]
    delivery: Option<DeliveryKey>,
}

/// The `{Error, Cause}` object Step Functions puts in `ResultPath`.
#[derive(Debug, Default, Deserialize)]
struct StepFunctionsError {
    #[serde(rename = "Error", default)]
    error: Option<String>,
    #[serde(rename = "Cause", default)]
    cause: Option<Value>,
}

/// Where the state machine delivered this failure from (`$$.Execution.Id`,
/// `$$.State.EnteredTime`): the same across HandleError's own retries.
#[derive(Debug, Deserialize)]
struct DeliveryKey {
    execution_arn: String,
    entered_at: String,
}

/// handle-error's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub run_id: String,
    pub task_id: String,
    /// `RETRY_SCHEDULED`, `FAILED_PERMANENT`, or `COMPLETED` for a late failure of a
    /// completed task.
    pub status: String,
    pub retry_count: u32,
    pub error_message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_retry_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// This delivery added one to `retry_count`.
    pub counted: bool,
}

const RETRY_SCHEDULED: &str = "RETRY_SCHEDULED";
const FAILED_PERMANENT: &str = "FAILED_PERMANENT";

pub async fn handle(env: Arc<Env>, event: Value) -> Result<Value> {
    let out = record(&env, event).await?;
    serde_json::to_value(out).map_err(|e| ArcError::Conflict(format!("output not serializable: {e}")))
}

/// The typed entry point (the runtime adapter above serializes it).
pub async fn record(env: &Env, event: Value) -> Result<Output> {
    let input: Input = parse_event(event)?;
    let error_type = input
        .error
        .error
        .as_deref()
        .filter(|e| !e.is_empty())
        .map_or_else(|| "UnknownError".to_owned(), |e| truncate_chars(e, MAX_ERROR_TYPE_CHARS).to_owned());
    let raw_cause = match input.error.cause {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(c)) => c,
        Some(other) => other.to_string(),
    };
    let batch = parse_batch_cause(&raw_cause);
    let cause = redact_cause(&raw_cause);
    drop(raw_cause);
    let job_id = batch.as_ref().and_then(|b| b.job_id.clone());
    let delivery = Delivery::new(
        job_id.as_deref(),
        input.delivery.as_ref().map(|d| (d.execution_arn.as_str(), d.entered_at.as_str())),
        &error_type,
    );
    let error_message = format!("{error_type}: {}", truncate_chars(&cause, MESSAGE_CAUSE_CHARS));
    let tables = env.tables();
    let (run_id, task_id) = (input.run_id.as_str(), input.task_id.as_str());
    let answer = |status: &str, retry_count: u32, next_retry_at: Option<String>, counted: bool| Output {
        run_id: run_id.to_owned(),
        task_id: task_id.to_owned(),
        status: status.to_owned(),
        retry_count,
        error_message: error_message.clone(),
        next_retry_at,
        job_id: job_id.clone(),
        counted,
    };

    for attempt in 1..=MAX_ATTEMPTS {
        let task = tables.get_task(run_id, task_id).await?.ok_or_else(|| ArcError::task_not_found(run_id, task_id))?;
        let state = TaskFailureState {
            status: task.status.clone(),
            retry_count: task.retry_count,
            claimed_at: task.started_at.as_deref().and_then(parse_ts),
            updated_at: task.updated_at.as_deref().and_then(parse_ts),
            last_error_at: task.last_error_at.as_deref().and_then(parse_ts),
            last_failed_job_id: task.last_failed_job_id.clone(),
            last_failure_key: task.last_failure_key.clone(),
        };
        let rec = match decide_failure(&state, &delivery, env.config.max_retries, &env.config.non_retryable_errors) {
            FailureDecision::AlreadyCounted { permanent, retry_count } => {
                tracing::info!(run_id, task_id, job_id, retry_count, "failure already recorded: nothing changed");
                let status = if permanent { FAILED_PERMANENT } else { RETRY_SCHEDULED };
                return Ok(answer(status, retry_count, task.next_retry_at, false));
            }
            FailureDecision::TaskCompleted => {
                tracing::warn!(run_id, task_id, job_id, "failure delivered for a COMPLETED task: left completed");
                return Ok(answer("COMPLETED", task.retry_count, None, false));
            }
            FailureDecision::Record(rec) => rec,
        };
        let now = env.clock.now();
        // A failure the worker recorded happened at its last write; ours happens now.
        let failed_at = if rec.at_workers_record { state.updated_at.unwrap_or(now) } else { now };
        let next_retry_at = (!rec.permanent)
            .then(|| format_ts(due_at(&env.config.backoff, run_id, task_id, rec.retry_count, failed_at)));
        let (failed_at_s, now_s) = (format_ts(failed_at), format_ts(now));
        let status = if rec.permanent {
            arc_shared::status::TaskStatus::FailedPermanent
        } else {
            arc_shared::status::TaskStatus::Failed
        };
        let seen = SeenTask {
            status: &task.status,
            retry_count: task.retry_count,
            last_failed_job_id: task.last_failed_job_id.as_deref(),
            last_failure_key: task.last_failure_key.as_deref(),
        };
        let write = FailureWrite {
            status,
            retry_count: rec.retry_count,
            error_type: &error_type,
            cause: &cause,
            failed_at: &failed_at_s,
            now: &now_s,
            batch: batch.as_ref(),
            failure_key: delivery.key.as_deref(),
            next_retry_at: next_retry_at.as_deref(),
        };
        match tables.record_failure(run_id, task_id, &seen, &write, rec.newly_permanent).await? {
            Written::Yes => {}
            Written::Changed => {
                tracing::info!(run_id, task_id, attempt, "task changed while recording the failure: re-reading");
                continue;
            }
            Written::Contended => {
                tracing::info!(run_id, task_id, attempt, "transaction cancelled for contention: trying again");
                tokio::time::sleep(Duration::from_millis(25 * u64::from(attempt) + jitter_ms(task_id, attempt))).await;
                continue;
            }
        }
        let status = if rec.permanent { FAILED_PERMANENT } else { RETRY_SCHEDULED };
        tracing::info!(
            run_id,
            task_id,
            job_id,
            retry_count = rec.retry_count,
            status,
            counted = rec.counted,
            error_type,
            exit_code = batch.as_ref().and_then(|b| b.exit_code),
            "failure recorded"
        );
        return Ok(answer(status, rec.retry_count, next_retry_at, rec.counted));
    }
    Err(ArcError::DependencyUnavailable {
        operation: "record failure".to_owned(),
        message: format!("task {run_id}/{task_id} kept changing; gave up after {MAX_ATTEMPTS} attempts"),
    })
}

/// A few milliseconds that differ between tasks, so two contending writers do not retry in
/// lockstep.
fn jitter_ms(task_id: &str, attempt: u32) -> u64 {
    task_id.bytes().fold(u64::from(attempt), |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) % 40
}
