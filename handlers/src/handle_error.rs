//! handle-error — records a failed Batch job against its task: `FAILED` (retryable, with
//! `next_retry_at` from the shared backoff policy) or `FAILED_PERMANENT`.
//!
//! In: `arc_shared::contracts::HandleErrorInput` (`{run_id, task_id, error: {Error, Cause},
//! delivery?}`). Out: `HandleErrorOutput` (`status` RETRY_SCHEDULED | FAILED_PERMANENT, or
//! COMPLETED for a late failure of a completed task).
//!
//! The failure model (`arc_shared::failure`): each delivery is counted once (keyed on the Batch
//! job id, else on the state machine's delivery key); a failure the Python worker already
//! recorded is annotated, not counted again; one it could not record (killed, timed out, failed
//! before its claim) is counted. The Cause is stored redacted (no container environment,
//! secrets or command) beside the parsed fields operators need. Writes are conditional on the
//! state read; on a change the task is re-read and the decision made again.

use arc_shared::backoff::due_at;
use arc_shared::class::{classify, Evidence};
pub use arc_shared::contracts::HandleErrorOutput as Output;
use arc_shared::contracts::{FailureOutcome, HandleErrorInput};
use arc_shared::failure::{
    decide_failure, parse_batch_cause, redact_cause, truncate_chars, Delivery, FailureDecision, LastAttempt,
    TaskFailureState, MAX_ERROR_TYPE_CHARS, MESSAGE_CAUSE_CHARS,
};
use arc_shared::input::{check_len, parse_event, MAX_ARN_CHARS};
use arc_shared::runtime::Env;
use arc_shared::store::{FailureWrite, SeenTask, Written};
use arc_shared::time::{format_ts, parse_ts};
use arc_shared::{ArcError, Result};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// `delivery.entered_at` (`$$.State.EnteredTime`, or the job id arc-local passes) at most.
const MAX_DELIVERY_TIME_CHARS: usize = 256;
/// Re-reads on write conflicts before giving up.
const MAX_ATTEMPTS: u32 = 8;

pub async fn handle(env: Arc<Env>, event: Value) -> Result<Output> {
    let input: HandleErrorInput = parse_event(event)?;
    if let Some(d) = &input.delivery {
        // Stored as the failure key (`sfn:<execution>#<entered time>`): bounded like any ARN.
        check_len("delivery.execution_arn", &d.execution_arn, MAX_ARN_CHARS)?;
        check_len("delivery.entered_at", &d.entered_at, MAX_DELIVERY_TIME_CHARS)?;
    }
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
        batch.as_ref().map_or(LastAttempt::Unknown, |b| b.last_attempt),
    );
    let error_message = format!("{error_type}: {}", truncate_chars(&cause, MESSAGE_CAUSE_CHARS));
    let tables = env.tables();
    let (run_id, task_id) = (input.run_id.as_str(), input.task_id.as_str());
    let answer = |status: FailureOutcome, retry_count: u32, next_retry_at: Option<String>, counted: bool| Output {
        run_id: run_id.to_owned(),
        task_id: task_id.to_owned(),
        status,
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
            claim: task.started_at.clone(),
            claimed_at: task.started_at.as_deref().and_then(parse_ts),
            updated_at: task.updated_at.as_deref().and_then(parse_ts),
            last_error_at: task.last_error_at.as_deref().and_then(parse_ts),
            last_failed_job_id: task.last_failed_job_id.clone(),
            last_failure_key: task.last_failure_key.clone(),
            recorded_retry_count: task.recorded_retry_count.map(|k| u32::try_from(k).unwrap_or(u32::MAX)),
            worker_recorded_claim: task.worker_recorded_claim.clone(),
            attributed_claim: task.attributed_claim.clone(),
            infra_failures: task.infra_failures(),
        };
        // Whose fault: the job description, and the worker's own error text when the worker
        // recorded this failure itself.
        let evidence = Evidence {
            batch: batch.as_ref(),
            cause: Some(&cause),
            worker_error: state.worker_recorded(&delivery).then_some(task.error.as_deref()).flatten(),
        };
        let class = classify(&env.config.class_rules, &evidence);
        let delivery = delivery.clone().classified(class, env.config.infra_max_retries);
        let rec = match decide_failure(&state, &delivery, env.config.max_retries, &env.config.non_retryable_errors) {
            FailureDecision::AlreadyCounted { permanent, retry_count } => {
                tracing::info!(run_id, task_id, job_id, retry_count, "failure already recorded: nothing changed");
                let status = if permanent { FailureOutcome::FailedPermanent } else { FailureOutcome::RetryScheduled };
                return Ok(answer(status, retry_count, task.next_retry_at, false));
            }
            FailureDecision::TaskCompleted => {
                tracing::warn!(run_id, task_id, job_id, "failure delivered for a COMPLETED task: left completed");
                return Ok(answer(FailureOutcome::Completed, task.retry_count, None, false));
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
            seen_workers_claim: rec.seen_workers_claim.as_deref(),
            attributed_claim: if rec.at_workers_record { task.started_at.as_deref() } else { None },
            class: rec.class,
            infra_failures: rec.spared.then_some(rec.infra_failures),
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
        let outcome = if rec.permanent { FailureOutcome::FailedPermanent } else { FailureOutcome::RetryScheduled };
        tracing::info!(
            run_id,
            task_id,
            job_id,
            retry_count = rec.retry_count,
            status = outcome.as_str(),
            counted = rec.counted,
            failure_class = rec.class.as_str(),
            spared = rec.spared,
            error_type,
            exit_code = batch.as_ref().and_then(|b| b.exit_code),
            "failure recorded"
        );
        return Ok(answer(outcome, rec.retry_count, next_retry_at, rec.counted));
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
