//! A faithful double of the Python Batch worker that runs beside this product: exactly its
//! DynamoDB writes (same expressions, conditions, attribute names, timestamp format), its
//! exit codes, and the Batch retry strategy its job definition ships with. It is NOT a
//! friendlier stand-in: where the real worker breaks on a run (a roll-up attribute missing on
//! the run item), so does this double.
//!
//! What the worker does in one container attempt (`docs/ARCHITECTURE.md`, "The Python worker"):
//! 1. Claim: `SET #status = IN_PROGRESS, worker_id = "<pid>@<hostname>", started_at, updated_at`
//!    if `#status = PENDING OR #status = FAILED`; otherwise it logs "already claimed" and exits 0.
//! 2. Complete: an unconditional task update (`COMPLETED`, `completed_at`, `updated_at`,
//!    `cost_usd`, `tokens_input`, `tokens_output`, `result_s3_key` when it has one), then
//!    `SET completed_tasks = completed_tasks + :one, total_cost_usd = total_cost_usd + :cost,
//!    total_input_tokens = total_input_tokens + :in, total_output_tokens = total_output_tokens
//!    + :out, updated_at = :now` on the run. Any exception here goes to the failure path.
//! 3. Fail: GetItem (eventually consistent), `new = retry_count + 1`, `SET retry_count = :new,
//!    #err = :msg, #status = FAILED | FAILED_PERMANENT (new >= MAX_RETRIES), updated_at = :now`
//!    if `attribute_not_exists(retry_count) OR retry_count = :old` (re-read and repeat on a
//!    conflict); when permanent, `SET failed_tasks = failed_tasks + :one, updated_at = :now` on
//!    the run. Then exit 1.
//!
//! The job definition retries the container inside one Batch job (`attempts = 3`,
//! `evaluateOnExit`: exit code 1, status reason `Host EC2*`, reason `Rate*` / `Timeout*`), so a
//! job id can carry up to three attempts; Step Functions sees only the job's end.

use arc_shared::time::Clock;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Timelike, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Container attempts per Batch job (the shipped job definition's `retryStrategy.attempts`).
pub const BATCH_ATTEMPTS: usize = 3;

/// What the task code does in one container attempt, after (or instead of) the claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// The model call succeeds: the completion path.
    Complete(Completion),
    /// The task raises: the failure path records it, then the process exits 1.
    Fail { message: String },
    /// The container is killed after the claim (OOM: 137, SIGTERM on a spot reclaim: 143): no
    /// write at all.
    Killed { exit_code: i64, reason: String },
    /// The attempt fails before the container runs (image pull, host terminated before start):
    /// no claim, no write, no exit code.
    NotStarted { status_reason: String },
}

/// What the completion path writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub cost_usd: Decimal,
    pub tokens_input: u64,
    pub tokens_output: u64,
    pub result_s3_key: Option<String>,
}

/// One container attempt as Batch records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub worker_id: String,
    /// `None` when the container never ran.
    pub exit_code: Option<i64>,
    /// The attempt's `StatusReason`.
    pub status_reason: String,
    /// The container's `Reason` (OOM, image pull), when Batch gives one.
    pub container_reason: Option<String>,
    /// The claim succeeded.
    pub claimed: bool,
    /// The worker's failure path wrote the task (`retry_count` + 1).
    pub recorded_failure: bool,
    /// The completion path wrote `COMPLETED` on the task (it may still have failed after).
    pub wrote_completed: bool,
    pub started_at: DateTime<Utc>,
    pub stopped_at: DateTime<Utc>,
    /// The worker's log lines.
    pub log: Vec<String>,
}

impl Attempt {
    /// Whether the job definition's `evaluateOnExit` retries this attempt.
    pub fn retried_by_batch(&self) -> bool {
        self.exit_code == Some(1)
            || self.status_reason.starts_with("Host EC2")
            || self.container_reason.as_deref().is_some_and(|r| r.starts_with("Rate") || r.starts_with("Timeout"))
    }
}

/// How a Batch job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub job_id: String,
    pub attempts: Vec<Attempt>,
    /// `SUCCEEDED` (the last attempt exited 0) or `FAILED`.
    pub succeeded: bool,
}

impl Job {
    /// The Batch job description that a `.sync` task puts, as a JSON string, in the Cause of
    /// `States.TaskFailed` (the shape of `DescribeJobs`' job, PascalCase as Step Functions
    /// delivers it), including the container environment of the job definition.
    pub fn description(&self, task_id: &str, environment: &[(String, String)]) -> Value {
        let last = self.attempts.last();
        let attempts: Vec<Value> = self
            .attempts
            .iter()
            .map(|a| {
                let mut container = json!({
                    "ContainerInstanceArn": "arn:aws:ecs:us-east-1:123456789012:container-instance/arc/0f1e",
                    "TaskArn": "arn:aws:ecs:us-east-1:123456789012:task/arc/1a2b",
                    "LogStreamName": format!("arc-worker/default/{}", self.job_id),
                    "NetworkInterfaces": [],
                });
                if let Some(code) = a.exit_code {
                    container["ExitCode"] = json!(code);
                }
                if let Some(r) = &a.container_reason {
                    container["Reason"] = json!(r);
                }
                let mut attempt = json!({
                    "Container": container,
                    "StoppedAt": a.stopped_at.timestamp_millis(),
                    "StatusReason": a.status_reason,
                });
                // Batch gives `StartedAt` only to an attempt that reached RUNNING.
                if a.exit_code.is_some() {
                    attempt["StartedAt"] = json!(a.started_at.timestamp_millis());
                }
                attempt
            })
            .collect();
        let env: Vec<Value> = environment.iter().map(|(k, v)| json!({"Name": k, "Value": v})).collect();
        json!({
            "Attempts": attempts,
            "Container": {
                "Command": ["python", "-m", "arc_agi_benchmarking.worker"],
                "Environment": env,
                "ExitCode": last.and_then(|a| a.exit_code),
                "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/arc-worker:latest",
                "LogStreamName": format!("arc-worker/default/{}", self.job_id),
                "Memory": 4096,
                "Secrets": [],
                "Vcpus": 2,
            },
            "CreatedAt": self.attempts.first().map(|a| a.started_at.timestamp_millis()),
            "DependsOn": [],
            "JobArn": format!("arn:aws:batch:us-east-1:123456789012:job/{}", self.job_id),
            "JobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/arc-worker:1",
            "JobId": self.job_id,
            "JobName": format!("arc-task-{task_id}"),
            "JobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/arc",
            "Parameters": {},
            "PlatformCapabilities": ["EC2"],
            "RetryStrategy": {"Attempts": BATCH_ATTEMPTS, "EvaluateOnExit": [
                {"Action": "RETRY", "OnExitCode": "1"},
                {"Action": "RETRY", "OnStatusReason": "Host EC2*"},
                {"Action": "RETRY", "OnReason": "Rate*"},
                {"Action": "RETRY", "OnReason": "Timeout*"},
                {"Action": "EXIT", "OnReason": "*"},
            ]},
            "StartedAt": self.attempts.first().map(|a| a.started_at.timestamp_millis()),
            "Status": if self.succeeded { "SUCCEEDED" } else { "FAILED" },
            "StatusReason": last.map(|a| a.status_reason.clone()),
            "StoppedAt": last.map(|a| a.stopped_at.timestamp_millis()),
            "Tags": {},
        })
    }

    /// The `{Error, Cause}` Step Functions delivers to the Catch of a failed `.sync` job.
    pub fn step_functions_error(&self, task_id: &str, environment: &[(String, String)]) -> Value {
        json!({"Error": "States.TaskFailed", "Cause": self.description(task_id, environment).to_string()})
    }
}

/// The worker, configured as its job definition configures it.
pub struct Worker {
    db: Client,
    runs_table: String,
    tasks_table: String,
    max_retries: u32,
    clock: Arc<dyn Clock>,
    hostname: String,
    next_pid: AtomicU32,
}

/// `datetime.now(timezone.utc).isoformat()`: microseconds, `+00:00`, and (as Python does) no
/// fraction at all when the microsecond is 0.
pub fn python_isoformat(t: DateTime<Utc>) -> String {
    let micros = t.nanosecond() / 1_000;
    if micros == 0 {
        t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    } else {
        format!("{}.{micros:06}+00:00", t.format("%Y-%m-%dT%H:%M:%S"))
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key(run_id: &str, task_id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("run_id".to_owned(), s(run_id)), ("task_id".to_owned(), s(task_id))])
}

/// A DynamoDB error as the worker's code sees it (boto3's ClientError): its code and message.
fn describe<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> String
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(se) => format!("{}: {}", se.code().unwrap_or("Unknown"), se.message().unwrap_or("")),
        None => format!("{e:?}"),
    }
}

impl Worker {
    /// A worker reading `DYNAMODB_RUNS_TABLE` / `DYNAMODB_TASKS_TABLE` = these tables, with the
    /// default `MAX_RETRIES` of 3.
    pub fn new(db: Client, runs_table: &str, tasks_table: &str, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            runs_table: runs_table.to_owned(),
            tasks_table: tasks_table.to_owned(),
            max_retries: 3,
            clock,
            hostname: "ip-10-0-1-23.ec2.internal".to_owned(),
            next_pid: AtomicU32::new(4100),
        }
    }

    /// The worker's own `MAX_RETRIES`.
    pub fn with_max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    fn now(&self) -> String {
        python_isoformat(self.clock.now())
    }

    /// Runs one Batch job for the task: up to [`BATCH_ATTEMPTS`] container attempts, each doing
    /// the next behaviour of `plan` (the last one repeats), retried as the job definition's
    /// `evaluateOnExit` says.
    pub async fn run_job(&self, run_id: &str, task_id: &str, plan: &[Behaviour]) -> Job {
        let job_id = uuid::Uuid::new_v4().to_string();
        let mut attempts: Vec<Attempt> = Vec::new();
        for i in 0..BATCH_ATTEMPTS {
            let Some(b) = plan.get(i).or(plan.last()) else { break };
            let a = self.attempt(run_id, task_id, b).await;
            let again = a.exit_code != Some(0) && a.retried_by_batch();
            attempts.push(a);
            if !again {
                break;
            }
        }
        let succeeded = attempts.last().is_some_and(|a| a.exit_code == Some(0));
        Job { job_id, attempts, succeeded }
    }

    /// One container attempt: a new process (its own pid) doing `behaviour`.
    pub async fn attempt(&self, run_id: &str, task_id: &str, behaviour: &Behaviour) -> Attempt {
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        let started_at = self.clock.now();
        let mut a = Attempt {
            worker_id: format!("{pid}@{}", self.hostname),
            exit_code: None,
            status_reason: String::new(),
            container_reason: None,
            claimed: false,
            recorded_failure: false,
            wrote_completed: false,
            started_at,
            stopped_at: started_at,
            log: Vec::new(),
        };
        if let Behaviour::NotStarted { status_reason } = behaviour {
            a.status_reason = status_reason.clone();
            a.container_reason = Some(status_reason.clone());
            return a;
        }
        match self.claim(run_id, task_id, &a.worker_id).await {
            Ok(true) => a.claimed = true,
            Ok(false) => {
                a.log.push(format!("task {run_id}/{task_id} already claimed; exiting"));
                return self.exit(a, 0, "Essential container in task exited");
            }
            Err(e) => {
                a.log.push(format!("claim failed: {e}"));
                return self.exit(a, 1, "Essential container in task exited");
            }
        }
        match behaviour {
            Behaviour::Killed { exit_code, reason } => {
                a.container_reason = Some(reason.clone());
                let status = if *exit_code == 143 { "Host EC2 (instance i-0abc) terminated." } else { reason };
                self.exit(a, *exit_code, status)
            }
            Behaviour::Complete(c) => match self.complete(run_id, task_id, c, &mut a).await {
                Ok(()) => self.exit(a, 0, "Essential container in task exited"),
                Err(e) => {
                    a.log.push(format!("task failed: {e}"));
                    self.fail(run_id, task_id, &e, &mut a).await;
                    self.exit(a, 1, "Essential container in task exited")
                }
            },
            Behaviour::Fail { message } => {
                a.log.push(format!("task failed: {message}"));
                self.fail(run_id, task_id, message, &mut a).await;
                self.exit(a, 1, "Essential container in task exited")
            }
            Behaviour::NotStarted { .. } => a,
        }
    }

    fn exit(&self, mut a: Attempt, code: i64, status_reason: &str) -> Attempt {
        a.exit_code = Some(code);
        a.status_reason = status_reason.to_owned();
        a.stopped_at = self.clock.now();
        a
    }

    /// Step 1. `Ok(false)`: the condition failed ("already claimed").
    async fn claim(&self, run_id: &str, task_id: &str, worker_id: &str) -> Result<bool, String> {
        let now = self.now();
        let r = self
            .db
            .update_item()
            .table_name(&self.tasks_table)
            .set_key(Some(key(run_id, task_id)))
            .update_expression(
                "SET #status = :in_progress, worker_id = :worker_id, started_at = :now, updated_at = :now",
            )
            .condition_expression("#status = :pending OR #status = :failed")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":in_progress", s("IN_PROGRESS"))
            .expression_attribute_values(":worker_id", s(worker_id))
            .expression_attribute_values(":now", s(&now))
            .expression_attribute_values(":pending", s("PENDING"))
            .expression_attribute_values(":failed", s("FAILED"))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(describe(&e)),
        }
    }

    /// Step 2. An error is the exception that sends the worker to its failure path.
    async fn complete(&self, run_id: &str, task_id: &str, c: &Completion, a: &mut Attempt) -> Result<(), String> {
        let now = self.now();
        let mut set = "SET #status = :completed, completed_at = :now, updated_at = :now, cost_usd = :cost, \
                       tokens_input = :tin, tokens_output = :tout"
            .to_owned();
        let mut req = self
            .db
            .update_item()
            .table_name(&self.tasks_table)
            .set_key(Some(key(run_id, task_id)))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completed", s("COMPLETED"))
            .expression_attribute_values(":now", s(&now))
            .expression_attribute_values(":cost", n(c.cost_usd))
            .expression_attribute_values(":tin", n(c.tokens_input))
            .expression_attribute_values(":tout", n(c.tokens_output));
        if let Some(k) = &c.result_s3_key {
            set.push_str(", result_s3_key = :key");
            req = req.expression_attribute_values(":key", s(k));
        }
        req.update_expression(set).send().await.map_err(|e| describe(&e))?;
        a.wrote_completed = true;
        self.db
            .update_item()
            .table_name(&self.runs_table)
            .key("run_id", s(run_id))
            .update_expression(
                "SET completed_tasks = completed_tasks + :one, total_cost_usd = total_cost_usd + :cost, \
                 total_input_tokens = total_input_tokens + :in, total_output_tokens = total_output_tokens + :out, \
                 updated_at = :now",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":cost", n(c.cost_usd))
            .expression_attribute_values(":in", n(c.tokens_input))
            .expression_attribute_values(":out", n(c.tokens_output))
            .expression_attribute_values(":now", s(&now))
            .send()
            .await
            .map_err(|e| describe(&e))?;
        a.log.push(format!("task {run_id}/{task_id} completed"));
        Ok(())
    }

    /// Step 3: record the failure (re-reading on a conflicting count). Errors are logged: the
    /// process exits 1 either way.
    async fn fail(&self, run_id: &str, task_id: &str, message: &str, a: &mut Attempt) {
        for _ in 0..10 {
            let read =
                self.db.get_item().table_name(&self.tasks_table).set_key(Some(key(run_id, task_id))).send().await;
            let item = match read {
                Ok(out) => out.item.unwrap_or_default(),
                Err(e) => {
                    a.log.push(format!("failure path: GetItem failed: {}", describe(&e)));
                    return;
                }
            };
            let old: Option<u32> = match item.get("retry_count") {
                Some(AttributeValue::N(v)) => v.parse::<Decimal>().ok().and_then(|d| u32::try_from(d).ok()),
                _ => None,
            };
            let new = old.unwrap_or(0) + 1;
            let permanent = new >= self.max_retries;
            let now = self.now();
            let r = self
                .db
                .update_item()
                .table_name(&self.tasks_table)
                .set_key(Some(key(run_id, task_id)))
                .update_expression("SET retry_count = :new, #err = :msg, #status = :status, updated_at = :now")
                .condition_expression("attribute_not_exists(retry_count) OR retry_count = :old")
                .expression_attribute_names("#err", "error")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":new", n(new))
                .expression_attribute_values(":msg", s(message))
                .expression_attribute_values(":status", s(if permanent { "FAILED_PERMANENT" } else { "FAILED" }))
                .expression_attribute_values(":now", s(&now))
                .expression_attribute_values(":old", n(old.unwrap_or(0)))
                .send()
                .await;
            match r {
                Ok(_) => {}
                Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => continue,
                Err(e) => {
                    a.log.push(format!("failure path: UpdateItem failed: {}", describe(&e)));
                    return;
                }
            }
            a.recorded_failure = true;
            a.log.push(format!("task {run_id}/{task_id} failed (retry_count {new}, permanent {permanent})"));
            if permanent {
                let r = self
                    .db
                    .update_item()
                    .table_name(&self.runs_table)
                    .key("run_id", s(run_id))
                    .update_expression("SET failed_tasks = failed_tasks + :one, updated_at = :now")
                    .expression_attribute_values(":one", n(1))
                    .expression_attribute_values(":now", s(&now))
                    .send()
                    .await;
                if let Err(e) = r {
                    a.log.push(format!("failure path: run update failed: {}", describe(&e)));
                }
            }
            return;
        }
        a.log.push("failure path: retry_count kept changing; gave up".to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_are_pythons_isoformat() {
        let t = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        assert_eq!(python_isoformat(t), "2026-11-27T10:00:00+00:00");
        let t = t + chrono::Duration::microseconds(123_456);
        assert_eq!(python_isoformat(t), "2026-11-27T10:00:00.123456+00:00");
        let t = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap() + chrono::Duration::microseconds(7);
        assert_eq!(python_isoformat(t), "2026-11-27T10:00:00.000007+00:00");
    }

    fn attempt(exit_code: Option<i64>, status_reason: &str, reason: Option<&str>) -> Attempt {
        let t = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        Attempt {
            worker_id: "1@h".into(),
            exit_code,
            status_reason: status_reason.into(),
            container_reason: reason.map(str::to_owned),
            claimed: false,
            recorded_failure: false,
            wrote_completed: false,
            started_at: t,
            stopped_at: t,
            log: vec![],
        }
    }

    #[test]
    fn batch_retries_what_the_job_definition_says() {
        assert!(attempt(Some(1), "Essential container in task exited", None).retried_by_batch());
        assert!(!attempt(Some(137), "OutOfMemoryError", Some("OutOfMemoryError: Container killed")).retried_by_batch());
        assert!(attempt(None, "Host EC2 (instance i-1) terminated.", None).retried_by_batch());
        assert!(attempt(Some(2), "x", Some("Timeout waiting for network")).retried_by_batch());
        assert!(!attempt(None, "CannotPullContainerError: x", Some("CannotPullContainerError: x")).retried_by_batch());
    }
}
