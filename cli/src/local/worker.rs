//! A simulated AWS Batch job following the worker contract: claim the task (PENDING →
//! IN_PROGRESS, `worker_id` = the job id), then either write COMPLETED with cost, tokens,
//! `is_correct` and `result_s3_key`, or exit non-zero, which Step Functions delivers to
//! handle_error as `States.TaskFailed` with the Batch job description as the Cause.

use super::execution::call_handler;
use super::prng::Prng;
use arc_shared::records::{decimal_attr, n, s};
use arc_shared::runtime::Env;
use arc_shared::store::{conditional, Tables, UpdateExpr};
use arc_shared::time::format_ts;
use arc_shared::ArcError;
use aws_sdk_dynamodb::types::AttributeValue;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::sync::Arc;

/// How one simulated job went.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// COMPLETED with this cost.
    Completed { cost_usd: Decimal, correct: bool },
    /// The job failed; handle_error answered `RETRY_SCHEDULED` (stored FAILED) or
    /// `FAILED_PERMANENT`. `redelivered`: the failure event was delivered twice.
    /// `self_reported`: the worker recorded the failure itself first (the Python worker's way).
    Failed { permanent: bool, redelivered: bool, self_reported: bool },
    /// The task was not PENDING, so this job did not claim it (as the real worker exits).
    NotClaimed,
}

/// The knobs of the simulation.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSim {
    pub seed: u64,
    pub failure_rate: f64,
    /// Of the jobs that complete, the share that solve the task.
    pub accuracy: f64,
    /// Of the failures, the share delivered to handle_error twice (Step Functions delivers at
    /// least once); each failed job must still be counted once.
    pub redeliver_rate: f64,
    /// Of the failures, the share where the worker records its own failure before exiting
    /// non-zero, as the Python worker does (status FAILED, `retry_count` + 1): handle_error
    /// must annotate it, not count it again.
    pub self_reporting_rate: f64,
}

/// Ways a simulated job fails, with the Batch status reason and the container exit code.
const FAILURES: [(&str, i64); 3] = [
    ("Essential container in task exited", 1),
    ("OutOfMemoryError: Container killed due to memory usage", 137),
    ("Host EC2 (instance i-0abc) terminated.", 143),
];

/// Runs the job for `task_id` of `run_id`; `attempt` (the round) keys its random draws.
pub async fn run_job(
    env: &Arc<Env>,
    sim: WorkerSim,
    run_id: &str,
    task_id: &str,
    attempt: u32,
) -> Result<JobOutcome, ArcError> {
    let mut rng = Prng::keyed(sim.seed, &format!("{task_id}/{attempt}"));
    let job_id = rng.uuid();
    let tables = env.tables();
    let key = Tables::task_key(run_id, task_id);
    let started_at = format_ts(env.clock.now());

    let claim = UpdateExpr::new()
        .set("status", s("IN_PROGRESS"))
        .set("worker_id", s(&job_id))
        .set("started_at", s(&started_at))
        .set("updated_at", s(&started_at))
        .expect_eq("status", s("PENDING"))
        .apply(tables.db.update_item().table_name(&tables.tasks).set_key(Some(key.clone())))
        .send()
        .await;
    if conditional("UpdateItem tasks (claim)", claim)?.is_none() {
        return Ok(JobOutcome::NotClaimed);
    }

    if rng.chance(sim.failure_rate) {
        let (reason, exit_code) = FAILURES[rng.range(0, FAILURES.len() as u64 - 1) as usize];
        let self_reported = rng.chance(sim.self_reporting_rate);
        if self_reported {
            record_own_failure(&tables, key, &job_id, reason, &format_ts(env.clock.now())).await?;
        }
        let cause = batch_job_description(&job_id, task_id, reason, exit_code);
        let event = json!({
            "run_id": run_id,
            "task_id": task_id,
            "error": {"Error": "States.TaskFailed", "Cause": cause.to_string()},
        });
        let out = call_handler(|| arc_handlers::handle_error::handle(env.clone(), event.clone())).await?;
        let permanent = out.get("status").and_then(Value::as_str) == Some("FAILED_PERMANENT");
        let redelivered = rng.chance(sim.redeliver_rate);
        if redelivered {
            call_handler(|| arc_handlers::handle_error::handle(env.clone(), event.clone())).await?;
        }
        return Ok(JobOutcome::Failed { permanent, redelivered, self_reported });
    }

    let cost_usd = Decimal::new(rng.range(1_000, 500_000) as i64, 6);
    let correct = rng.chance(sim.accuracy);
    let result_key = format!("runs/{run_id}/tasks/{task_id}/{job_id}.json");
    if let Some(bucket) = &env.config.s3_bucket {
        let body = json!({"task_id": task_id, "job_id": job_id, "is_correct": correct}).to_string();
        env.clients
            .s3
            .put_object()
            .bucket(bucket)
            .key(&result_key)
            .content_type("application/json")
            .body(body.into_bytes().into())
            .send()
            .await
            .map_err(|e| ArcError::from_sdk("PutObject (task result)", e))?;
    }
    let done_at = format_ts(env.clock.now());
    UpdateExpr::new()
        .set("status", s("COMPLETED"))
        .set("cost_usd", decimal_attr(cost_usd))
        .set("tokens_input", n(rng.range(1_000, 20_000)))
        .set("tokens_output", n(rng.range(100, 4_000)))
        .set("is_correct", AttributeValue::Bool(correct))
        .set("result_s3_key", s(&result_key))
        .set("completed_at", s(&done_at))
        .set("updated_at", s(&done_at))
        .expect_eq("status", s("IN_PROGRESS"))
        .expect_eq("worker_id", s(&job_id))
        .apply(tables.db.update_item().table_name(&tables.tasks).set_key(Some(key)))
        .send()
        .await
        .map_err(|e| ArcError::from_sdk("UpdateItem tasks (complete)", e))?;
    Ok(JobOutcome::Completed { cost_usd, correct })
}

/// What the Python worker writes when its task fails, before it exits non-zero.
async fn record_own_failure(
    tables: &Tables,
    key: arc_shared::records::Item,
    job_id: &str,
    reason: &str,
    now: &str,
) -> Result<(), ArcError> {
    UpdateExpr::new()
        .set("status", s("FAILED"))
        .add("retry_count", n(1))
        .set("error", s(reason))
        .set("updated_at", s(now))
        .expect_eq("status", s("IN_PROGRESS"))
        .expect_eq("worker_id", s(job_id))
        .apply(tables.db.update_item().table_name(&tables.tasks).set_key(Some(key)))
        .send()
        .await
        .map_err(|e| ArcError::from_sdk("UpdateItem tasks (worker failure)", e))?;
    Ok(())
}

/// The Batch job description a `.sync` task puts in the Cause of `States.TaskFailed`.
pub fn batch_job_description(job_id: &str, task_id: &str, reason: &str, exit_code: i64) -> Value {
    json!({
        "Attempts": [{
            "Container": {"ExitCode": exit_code, "LogStreamName": format!("arc-worker/default/{job_id}")},
            "StatusReason": reason,
        }],
        "Container": {"Command": ["python", "-m", "arc_agi_benchmarking.worker"], "ExitCode": exit_code},
        "JobArn": format!("arn:aws:batch:us-east-1:123456789012:job/{job_id}"),
        "JobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/arc-worker:1",
        "JobId": job_id,
        "JobName": task_id,
        "JobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/arc",
        "Status": "FAILED",
        "StatusReason": reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_reads_as_a_batch_failure() {
        let cause = batch_job_description("job-1", "t1", "Essential container in task exited", 137).to_string();
        let parsed = arc_shared::failure::parse_batch_cause(&cause).unwrap();
        assert_eq!(parsed.job_id.as_deref(), Some("job-1"));
        assert_eq!(parsed.exit_code, Some(137));
        assert_eq!(parsed.status_reason.as_deref(), Some("Essential container in task exited"));
    }
}
