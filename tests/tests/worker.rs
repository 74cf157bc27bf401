//! Coexistence with the real Python Batch worker, driven by its double (worker-double/): the
//! worker's exact writes against runs and tasks our `initialize` created, its Batch jobs of up
//! to three attempts, and every failure delivered to handle-error as Step Functions delivers
//! it. Each failed attempt must be counted exactly once, whoever records it, and every
//! repeated delivery must change nothing.

use arc_handlers::{aggregate, handle_error, initialize};
use arc_integration_tests::JsonAnswer;
use arc_integration_tests::TestEnv;
use arc_shared::records::{s, TaskRecord};
use arc_shared::time::{parse_ts, SystemClock};
use arc_sweeper::plan::FailedTask;
use arc_worker_double::{Behaviour, Completion, Job, Worker};
use aws_sdk_dynamodb::types::AttributeValue;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;
use std::sync::Arc;

const EXEC: &str = "arn:aws:states:us-east-1:123456789012:execution:arc:run-1";

fn fail() -> Behaviour {
    Behaviour::Fail { message: "RateLimitError: 429 Too Many Requests".into() }
}

fn oom() -> Behaviour {
    Behaviour::Killed { exit_code: 137, reason: "OutOfMemoryError: Container killed due to memory usage".into() }
}

fn not_started() -> Behaviour {
    Behaviour::NotStarted { status_reason: "CannotPullContainerError: failed to resolve ref".into() }
}

fn complete(cost: &str) -> Behaviour {
    Behaviour::Complete(Completion {
        cost_usd: Decimal::from_str(cost).unwrap(),
        tokens_input: 1200,
        tokens_output: 300,
        result_s3_key: Some("runs/r/tasks/t.json".into()),
    })
}

struct World {
    t: TestEnv,
    worker: Worker,
    run_id: String,
}

async fn world(n: usize) -> World {
    // Every failure counts in these worlds (INFRA_MAX_RETRIES 0): they pin who counts each of
    // the worker's paths once. Sparing infrastructure failures (a spot reclaim, an image that
    // cannot be pulled) is tested with the same worker in tests/tests/breaker.rs.
    let t = TestEnv::new(&[("MAX_RETRIES", "3"), ("INFRA_MAX_RETRIES", "0")]).await;
    let ids: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
    let out = initialize::handle(
        t.env(),
        json!({"config_name": "coexist", "task_ids": ids, "execution_arn": EXEC,
               "execution_start_time": "2026-11-27T10:00:00Z"}),
    )
    .await
    .json()
    .unwrap();
    let worker =
        Worker::new(t.clients.dynamodb.clone(), &t.config.runs_table, &t.config.tasks_table, Arc::new(SystemClock));
    World { run_id: out["run_id"].as_str().unwrap().to_owned(), t, worker }
}

impl World {
    async fn job(&self, task: &str, plan: &[Behaviour]) -> Job {
        self.worker.run_job(&self.run_id, task, plan).await
    }

    /// Delivers a failed job to handle-error as Step Functions does.
    async fn deliver(&self, task: &str, job: &Job) -> Value {
        let event = json!({
            "run_id": self.run_id, "task_id": task,
            "error": job.step_functions_error(task, &[("RUN_ID".into(), self.run_id.clone())]),
            "delivery": {"execution_arn": format!("{EXEC}/child-{task}"), "entered_at": "2026-11-27T10:05:00Z"},
        });
        handle_error::handle(self.t.env(), event).await.json().unwrap()
    }

    async fn task(&self, task: &str) -> TaskRecord {
        self.t.tables().get_task(&self.run_id, task).await.unwrap().unwrap()
    }

    async fn run_failed_tasks(&self) -> u64 {
        self.t.tables().require_run(&self.run_id).await.unwrap().failed_tasks
    }

    /// `next_retry_at` as handle-error wrote it equals the due time the sweeper computes.
    async fn assert_due_times_agree(&self, task: &str) {
        let t = self.task(task).await;
        let sweeper_due = FailedTask::from_record(&t).due_at(&self.t.config.backoff).unwrap();
        let written = t.next_retry_at.as_deref().and_then(parse_ts).unwrap();
        assert_eq!(written, sweeper_due, "{task}: next_retry_at {:?}", t.next_retry_at);
    }

    /// Re-delivers `job` and checks nothing in either table changes.
    async fn redelivery_changes_nothing(&self, task: &str, job: &Job) {
        let before = self.t.snapshot().await;
        let again = self.deliver(task, job).await;
        assert_eq!(again["counted"], false);
        assert_eq!(before, self.t.snapshot().await, "{task}: a repeated delivery wrote something");
        self.read_back(task).await;
    }

    /// Prints the task and its run as read back from the tables (`--nocapture` shows it).
    async fn read_back(&self, task: &str) {
        let t = self.task(task).await;
        let r = self.t.tables().require_run(&self.run_id).await.unwrap();
        let scenario = std::thread::current().name().unwrap_or("?").to_owned();
        println!(
            "read back [{scenario}]: task {task} status={} retry_count={} | run completed_tasks={} failed_tasks={} total_cost_usd={}",
            t.status.as_str(),
            t.retry_count,
            r.completed_tasks,
            r.failed_tasks,
            r.total_cost_usd.map_or("-".to_owned(), |c| c.to_string())
        );
    }
}

#[tokio::test]
async fn the_worker_completes_tasks_of_a_run_initialize_created_and_aggregate_sees_the_cost() {
    let w = world(2).await;
    let run = w.t.tables().require_run(&w.run_id).await.unwrap();
    assert_eq!((run.total_input_tokens, run.total_output_tokens), (Some(0), Some(0)), "roll-ups exist as numbers");
    for (task, cost) in [("t0", "0.125"), ("t1", "0.300000000000000001")] {
        let job = w.job(task, &[complete(cost)]).await;
        assert!(job.succeeded, "{:?}", job.attempts);
        assert_eq!(job.attempts.len(), 1);
        assert!(job.attempts[0].log.iter().any(|l| l.ends_with("completed")), "{:?}", job.attempts[0].log);
    }
    let run = w.t.tables().require_run(&w.run_id).await.unwrap();
    assert_eq!(run.completed_tasks, 2, "the worker's `completed_tasks + :one`");
    assert_eq!(run.total_cost_usd, Some(Decimal::from_str("0.425000000000000001").unwrap()));
    assert_eq!(run.total_input_tokens, Some(2400));
    let agg = aggregate::handle(w.t.env(), json!({"run_id": w.run_id, "execution_arn": EXEC})).await.json().unwrap();
    assert_eq!(agg["completed_tasks"], 2);
    assert_eq!(agg["total_cost_usd"].to_string(), "0.425000000000000001");
    // Aggregate keeps every roll-up a number the worker can add to.
    let run = w.t.tables().require_run(&w.run_id).await.unwrap();
    assert_eq!((run.total_input_tokens, run.total_output_tokens), (Some(2400), Some(600)));
    w.read_back("t1").await;
}

#[tokio::test]
async fn the_double_breaks_where_the_real_worker_breaks() {
    // A run item without the roll-ups (as the Python set created runs): the worker's completion
    // is rejected by DynamoDB and the worker records a failure on a task it had completed.
    let w = world(1).await;
    let key = arc_shared::store::Tables::run_key(&w.run_id);
    w.t.clients
        .dynamodb
        .update_item()
        .table_name(&w.t.config.runs_table)
        .set_key(Some(key))
        .update_expression("REMOVE total_input_tokens, total_output_tokens")
        .send()
        .await
        .unwrap();
    let job = w.job("t0", &[complete("0.1")]).await;
    // Each attempt completes the task (the model was paid for), breaks on the run update,
    // records a failure and exits 1; Batch runs it three times.
    assert_eq!(job.attempts.len(), 3);
    for a in &job.attempts {
        assert!(a.wrote_completed && a.recorded_failure, "{:?}", a.log);
        assert_eq!(a.exit_code, Some(1));
        assert!(a.log.iter().any(|l| l.contains("ValidationException")), "{:?}", a.log);
    }
    let t = w.task("t0").await;
    assert_eq!((t.status.as_str(), t.retry_count), ("FAILED_PERMANENT", 3));
}

#[tokio::test]
async fn a_job_the_worker_failed_once_is_counted_once() {
    let w = world(1).await;
    // Attempt 1: the task raises, the worker records it (retry_count 1) and exits 1; Batch
    // retries; attempt 2 cannot start. The job fails and is delivered.
    let job = w.job("t0", &[fail(), not_started()]).await;
    assert!(!job.succeeded);
    assert_eq!(job.attempts.len(), 2);
    let out = w.deliver("t0", &job).await;
    assert_eq!((out["retry_count"].as_u64(), out["counted"].as_bool()), (Some(1), Some(false)), "{out}");
    assert_eq!(out["status"], "RETRY_SCHEDULED");
    let t = w.task("t0").await;
    assert_eq!((t.status.as_str(), t.retry_count), ("FAILED", 1));
    assert_eq!(t.last_failed_job_id.as_deref(), Some(job.job_id.as_str()));
    assert_eq!(t.error.as_deref(), Some("RateLimitError: 429 Too Many Requests"), "the worker's own attribute kept");
    // The failure happened when the worker wrote it, during attempt 1: that is `last_error_at`,
    // and the due time follows from it exactly as the sweeper computes it.
    let failed_at = t.last_error_at.as_deref().and_then(parse_ts).unwrap();
    assert!(failed_at >= job.attempts[0].started_at && failed_at <= job.attempts[0].stopped_at, "{failed_at}");
    w.assert_due_times_agree("t0").await;
    w.redelivery_changes_nothing("t0", &job).await;
}

#[tokio::test]
async fn three_attempts_in_one_job_are_permanent_with_count_three_and_the_run_counted_once() {
    let w = world(2).await;
    let job = w.job("t0", &[fail(), fail(), fail()]).await;
    assert_eq!(job.attempts.len(), 3, "Batch retried exit code 1 twice");
    assert!(job.attempts.iter().all(|a| a.recorded_failure));
    assert_eq!(w.run_failed_tasks().await, 1, "the worker counted the run when it made the task permanent");
    let out = w.deliver("t0", &job).await;
    assert_eq!(out["status"], "FAILED_PERMANENT");
    assert_eq!((out["retry_count"].as_u64(), out["counted"].as_bool()), (Some(3), Some(false)));
    let t = w.task("t0").await;
    assert_eq!((t.status.as_str(), t.retry_count), ("FAILED_PERMANENT", 3));
    assert_eq!(w.run_failed_tasks().await, 1, "handle-error does not count the run again");
    w.redelivery_changes_nothing("t0", &job).await;
    assert_eq!(w.run_failed_tasks().await, 1);
}

#[tokio::test]
async fn a_job_that_fails_before_the_claim_is_counted() {
    let w = world(1).await;
    let job = w.job("t0", &[not_started()]).await;
    assert_eq!(job.attempts.len(), 1, "an image that cannot be pulled is not retried by Batch");
    assert!(!job.attempts[0].claimed);
    let out = w.deliver("t0", &job).await;
    assert_eq!((out["retry_count"].as_u64(), out["counted"].as_bool()), (Some(1), Some(true)), "{out}");
    let t = w.task("t0").await;
    assert_eq!((t.status.as_str(), t.retry_count), ("FAILED", 1));
    assert_eq!(t.last_error_status_reason_or_default(), "CannotPullContainerError: failed to resolve ref");
    w.assert_due_times_agree("t0").await;
    w.redelivery_changes_nothing("t0", &job).await;

    // The next job (after the sweeper re-opened the task) is recorded by the worker: counted
    // once, by the worker.
    w.t.set_task(&w.run_id, "t0", &[("status", s("PENDING"))]).await;
    let job2 = w.job("t0", &[fail(), oom()]).await;
    assert_eq!(job2.attempts.len(), 2);
    let out = w.deliver("t0", &job2).await;
    // Attempt 1 recorded by the worker (2), attempt 2 claimed and was killed: counted here (3).
    assert_eq!((out["retry_count"].as_u64(), out["counted"].as_bool()), (Some(3), Some(true)), "{out}");
    assert_eq!(out["status"], "FAILED_PERMANENT");
    assert_eq!(w.run_failed_tasks().await, 1, "made permanent by handle-error: counted on the run once");
    w.redelivery_changes_nothing("t0", &job2).await;
}

#[tokio::test]
async fn the_next_job_recorded_by_the_worker_is_counted_once() {
    let w = world(1).await;
    let job1 = w.job("t0", &[oom()]).await;
    let out = w.deliver("t0", &job1).await;
    assert_eq!((out["retry_count"].as_u64(), out["counted"].as_bool()), (Some(1), Some(true)));
    // Re-opened by a retry execution, then the worker records the next job's failure itself.
    w.t.set_task(&w.run_id, "t0", &[("status", s("PENDING"))]).await;
    let job2 = w.job("t0", &[fail(), not_started()]).await;
    let out = w.deliver("t0", &job2).await;
    assert_eq!((out["retry_count"].as_u64(), out["counted"].as_bool()), (Some(2), Some(false)), "{out}");
    w.assert_due_times_agree("t0").await;
    w.redelivery_changes_nothing("t0", &job2).await;
}

#[tokio::test]
async fn a_killed_container_is_counted_and_a_spot_reclaim_left_in_flight_is_settled_once() {
    let w = world(2).await;
    let job = w.job("t0", &[oom()]).await;
    assert_eq!(job.attempts.len(), 1, "137 is not retried by the job definition");
    let out = w.deliver("t0", &job).await;
    assert_eq!((out["retry_count"].as_u64(), out["counted"].as_bool()), (Some(1), Some(true)));
    w.redelivery_changes_nothing("t0", &job).await;

    // A spot reclaim after the claim: Batch retries, the next attempt finds the task
    // IN_PROGRESS, logs "already claimed" and exits 0 — the job succeeds, the task stays in
    // flight. Aggregate of the run's execution settles it: one failed attempt, retryable.
    let spot = Behaviour::Killed { exit_code: 143, reason: "Host EC2 (instance i-0abc) terminated.".into() };
    let job = w.job("t1", &[spot, complete("0.2")]).await;
    assert!(job.succeeded);
    assert!(job.attempts[1].log.iter().any(|l| l.contains("already claimed")));
    assert_eq!(w.task("t1").await.status.as_str(), "IN_PROGRESS");
    let agg = aggregate::handle(w.t.env(), json!({"run_id": w.run_id, "execution_arn": EXEC})).await.json().unwrap();
    assert_eq!(agg["settled_tasks"], 1);
    let t = w.task("t1").await;
    assert_eq!((t.status.as_str(), t.retry_count), ("FAILED", 1));
    w.assert_due_times_agree("t1").await;
    let before = w.t.snapshot().await;
    let again = aggregate::handle(w.t.env(), json!({"run_id": w.run_id, "execution_arn": EXEC})).await.json().unwrap();
    assert_eq!(again["settled_tasks"], 0, "settled once");
    let after = w.t.snapshot().await;
    let tasks_only = |v: &Vec<String>| v.iter().filter(|l| l.contains("task_id=")).cloned().collect::<Vec<_>>();
    assert_eq!(tasks_only(&before), tasks_only(&after));
    w.read_back("t1").await;
}

#[tokio::test]
async fn a_failure_without_a_job_id_is_counted_once_across_handle_errors_own_retries() {
    let w = world(1).await;
    // A Batch task timed out (States.Timeout: no job description), after the worker's claim.
    let _ = w.worker.attempt(&w.run_id, "t0", &complete("0")).await;
    w.t.set_task(&w.run_id, "t0", &[("status", s("IN_PROGRESS"))]).await;
    let event = json!({
        "run_id": w.run_id, "task_id": "t0",
        "error": {"Error": "States.Timeout", "Cause": "The task timed out."},
        "delivery": {"execution_arn": format!("{EXEC}/child-t0"), "entered_at": "2026-11-27T10:05:00Z"},
    });
    let first = handle_error::handle(w.t.env(), event.clone()).await.json().unwrap();
    assert_eq!((first["retry_count"].as_u64(), first["counted"].as_bool()), (Some(1), Some(true)));
    let before = w.t.snapshot().await;
    let second = handle_error::handle(w.t.env(), event).await.json().unwrap();
    assert_eq!((second["retry_count"].as_u64(), second["counted"].as_bool()), (Some(1), Some(false)));
    assert_eq!(before, w.t.snapshot().await);
    w.read_back("t0").await;
}

#[tokio::test]
async fn secrets_in_the_batch_cause_never_reach_the_table_or_the_output() {
    let w = world(1).await;
    let job = w.job("t0", &[oom()]).await;
    let secret = "sk-live-4f9a8b7c6d5e";
    let env = [("OPENAI_API_KEY".to_owned(), secret.to_owned()), ("RUN_ID".to_owned(), w.run_id.clone())];
    let mut error = job.step_functions_error("t0", &env);
    // Also the lowercase shape some tools write.
    let mut cause: Value = serde_json::from_str(error["Cause"].as_str().unwrap()).unwrap();
    cause["Container"]["environment"] = json!([{"name": "ANTHROPIC_API_KEY", "value": format!("{secret}-2")}]);
    error["Cause"] = json!(cause.to_string());
    let event = json!({"run_id": w.run_id, "task_id": "t0", "error": error});
    let out = handle_error::handle(w.t.env(), event).await.json().unwrap();
    assert!(!out.to_string().contains(secret), "{out}");
    let snapshot = w.t.snapshot().await.join("\n");
    assert!(!snapshot.contains(secret), "the secret reached the table");
    let t = w.task("t0").await;
    let stored = t.last_error_cause.clone().unwrap_or_default();
    println!("redacted last_error_cause: {stored}");
    assert!(stored.contains("[redacted]") && stored.contains(&job.job_id), "{stored}");
    assert_eq!(t.last_error_exit_code_or_default(), 137);
}

/// Attributes handle-error writes beside the redacted cause, read from the raw item.
trait Parsed {
    fn last_error_status_reason_or_default(&self) -> String;
    fn last_error_exit_code_or_default(&self) -> i64;
}

impl Parsed for TaskRecord {
    fn last_error_status_reason_or_default(&self) -> String {
        // Not on TaskRecord: the test reads it back from the cause's parsed fields instead.
        self.last_error_cause
            .as_deref()
            .and_then(arc_shared::failure::parse_batch_cause)
            .and_then(|c| c.status_reason)
            .unwrap_or_default()
    }

    fn last_error_exit_code_or_default(&self) -> i64 {
        self.last_error_cause
            .as_deref()
            .and_then(arc_shared::failure::parse_batch_cause)
            .and_then(|c| c.exit_code)
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn parsed_failure_fields_are_stored_for_operators() {
    let w = world(1).await;
    let job = w.job("t0", &[oom()]).await;
    w.deliver("t0", &job).await;
    let item =
        w.t.clients
            .dynamodb
            .get_item()
            .table_name(&w.t.config.tasks_table)
            .set_key(Some(arc_shared::store::Tables::task_key(&w.run_id, "t0")))
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
    let get = |k: &str| item.get(k).cloned();
    assert_eq!(get("last_error_exit_code"), Some(AttributeValue::N("137".into())));
    assert_eq!(get("last_error_attempts"), Some(AttributeValue::N("1".into())));
    assert_eq!(get("last_failed_job_id"), Some(s(&job.job_id)));
    assert!(matches!(get("last_error_log_stream"), Some(AttributeValue::S(l)) if l.contains(&job.job_id)));
    assert!(
        matches!(get("last_error_container_reason"), Some(AttributeValue::S(r)) if r.starts_with("OutOfMemoryError"))
    );
}
