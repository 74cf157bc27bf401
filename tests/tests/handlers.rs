//! The four handlers against moto: every rule of issue 2, called as the Lambda calls them.

use arc_handlers::{aggregate, complete, handle_error, initialize};
use arc_integration_tests::JsonAnswer;
use arc_integration_tests::TestEnv;
use arc_shared::records::{n, s};
use arc_shared::store::batch_put;
use arc_shared::time::{format_ts, parse_ts, FixedClock};
use arc_shared::ArcError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("task{i:05}")).collect()
}

fn error_type(r: Result<Value, ArcError>) -> (String, String) {
    match r {
        Ok(v) => panic!("expected an error, got {v}"),
        Err(e) => (e.error_type().to_owned(), e.to_string()),
    }
}

/// A failure exactly as Step Functions delivers a Batch `.sync` failure.
fn batch_failure(job_id: &str, task_id: &str) -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/batch_sync_cause.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let cause = v["Cause"].as_str().unwrap().replace("JOB_ID", job_id).replace("TASK_ID", task_id);
    v["Cause"] = Value::String(cause);
    v
}

async fn new_run(t: &TestEnv, n_tasks: usize) -> (String, Vec<String>) {
    let task_ids = ids(n_tasks);
    let out = initialize::handle(t.env(), json!({"config_name": "cfg-a", "task_ids": task_ids})).await.json().unwrap();
    (out["run_id"].as_str().unwrap().to_owned(), task_ids)
}

async fn item(t: &TestEnv, table: &str, key: &[(&str, &str)]) -> Option<HashMap<String, AttributeValue>> {
    let key = key.iter().map(|(k, v)| (k.to_string(), s(*v))).collect();
    t.clients.dynamodb.get_item().table_name(table).set_key(Some(key)).consistent_read(true).send().await.unwrap().item
}

fn attr_s<'a>(item: &'a HashMap<String, AttributeValue>, k: &str) -> &'a str {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or("")
}

fn attr_n(item: &HashMap<String, AttributeValue>, k: &str) -> String {
    item.get(k).and_then(|v| v.as_n().ok()).cloned().unwrap_or_default()
}

// ---------------------------------------------------------------- initialize

#[tokio::test]
async fn initialize_rejects_bad_input_and_writes_nothing() {
    let t = TestEnv::new(&[]).await;
    let many = ids(10_001);
    let cases = vec![
        (json!({"task_ids": ["a"]}), "config_name"),
        (json!({"config_name": "", "task_ids": ["a"]}), "config_name"),
        (json!({"config_name": "has space", "task_ids": ["a"]}), "config_name"),
        (json!({"config_name": "x".repeat(129), "task_ids": ["a"]}), "config_name"),
        (json!({"config_name": "c"}), "task_ids"),
        (json!({"config_name": "c", "task_ids": []}), "task_ids"),
        (json!({"config_name": "c", "task_ids": ["ok", "not/ok"]}), "task_ids[1]"),
        (json!({"config_name": "c", "task_ids": ["x".repeat(101)]}), "task_ids[0]"),
        (json!({"config_name": "c", "task_ids": ["a", "b", "a"]}), "task_ids"),
        (json!({"config_name": "c", "task_ids": many}), "task_ids"),
        (json!({"config_name": "c", "task_ids": "a"}), "task_ids"),
        (json!({"config_name": 7, "task_ids": ["a"]}), "config_name"),
        (json!({"config_name": "c", "task_ids": ["a"], "retry": true}), "run_id"),
        (json!({"config_name": "c", "task_ids": ["a"], "execution_start_time": "noon"}), "execution_start_time"),
        (json!(["not", "an", "object"]), "$"),
        // Free text is bounded (an item stays far below 400 KB): too long is rejected.
        (json!({"config_name": "c", "task_ids": ["a"], "triggered_by": "x".repeat(257)}), "triggered_by"),
        (json!({"config_name": "c", "task_ids": ["a"], "data_source": "é".repeat(1_000_000)}), "data_source"),
        (json!({"config_name": "c", "task_ids": ["a"], "commit_sha": "f".repeat(65)}), "commit_sha"),
        // A list too large for the execution input comes from S3, and only from there.
        (json!({"config_name": "c", "task_ids": ["a"], "task_ids_s3": "s3://b/k.json"}), "task_ids_s3"),
        (json!({"config_name": "c", "task_ids_s3": "b/k.json"}), "task_ids_s3"),
        (json!({"config_name": "c", "task_ids_s3": format!("s3://{}/runs/none.json", t.bucket)}), "task_ids_s3"),
    ];
    for (event, field) in cases {
        match initialize::handle(t.env(), event.clone()).await.json() {
            Err(ArcError::InvalidInput { field: f, .. }) => assert_eq!(f, field, "event {event}"),
            other => panic!("{event}: expected InvalidInput on {field}, got {other:?}"),
        }
    }
    let dup = initialize::handle(t.env(), json!({"config_name": "c", "task_ids": ["a", "b", "a", "b"]})).await.json();
    assert!(error_type(dup).1.contains("duplicate ids: a, b"));
    assert!(t.snapshot().await.is_empty(), "nothing may be written on bad input");
}

#[tokio::test]
async fn initialize_writes_26_tasks_in_batches() {
    let t = TestEnv::new(&[]).await;
    let task_ids = ids(26);
    let out = initialize::handle(
        t.env(),
        json!({"config_name": "gpt-4.1", "task_ids": task_ids, "triggered_by": "ci", "commit_sha": "abc123"}),
    )
    .await
    .json()
    .unwrap();
    assert_eq!(out["total_tasks"], json!(26));
    assert_eq!(out["task_ids"], json!(task_ids));
    assert_eq!(out["config_name"], json!("gpt-4.1"));
    let run_id = out["run_id"].as_str().unwrap();
    assert!(run_id.starts_with("run-gpt-4.1-"), "{run_id}");
    let tasks = t.tables().run_tasks(run_id).await.unwrap();
    assert_eq!(tasks.len(), 26);
    assert!(tasks.iter().all(|t| t.status.as_str() == "PENDING" && t.retry_count == 0));
    let run = t.tables().require_run(run_id).await.unwrap();
    assert_eq!(run.status.as_str(), "RUNNING");
    assert_eq!(run.total_tasks, 26);
    assert_eq!(run.triggered_by.as_deref(), Some("ci"));
    assert_eq!(run.data_source.as_deref(), Some("evaluation"));
    let created = run.created_at.unwrap();
    assert!(created.ends_with("+00:00") && created.len() == "2026-01-01T00:00:00.000000+00:00".len(), "{created}");
}

#[tokio::test]
async fn initialize_writes_10000_tasks() {
    let t = TestEnv::new(&[]).await;
    let (run_id, _) = new_run(&t, 10_000).await;
    let tasks = t.tables().run_tasks(&run_id).await.unwrap();
    assert_eq!(tasks.len(), 10_000);
    assert_eq!(tasks.iter().map(|t| t.task_id.as_str()).collect::<std::collections::HashSet<_>>().len(), 10_000);
}

#[tokio::test]
async fn initialize_twice_for_one_execution_yields_one_run() {
    let t = TestEnv::new(&[]).await;
    let event = json!({
        "config_name": "cfg",
        "task_ids": ids(30),
        "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:arc:exec-1",
        "execution_start_time": "2026-11-26T13:00:00.123Z",
    });
    let first = initialize::handle(t.env(), event.clone()).await.json().unwrap();
    assert!(first["run_id"].as_str().unwrap().starts_with("run-cfg-20261126-130000-"));
    // A crash after the run was written but before every task was: drop some tasks.
    let run_id = first["run_id"].as_str().unwrap().to_owned();
    for i in 0..5 {
        t.clients
            .dynamodb
            .delete_item()
            .table_name(&t.config.tasks_table)
            .key("run_id", s(&run_id))
            .key("task_id", s(format!("task{i:05}")))
            .send()
            .await
            .unwrap();
    }
    let second = initialize::handle(t.env(), event).await.json().unwrap();
    assert_eq!(first, second);
    let runs = t.clients.dynamodb.scan().table_name(&t.config.runs_table).send().await.unwrap();
    assert_eq!(runs.count, 1, "exactly one run");
    assert_eq!(t.tables().run_tasks(&run_id).await.unwrap().len(), 30);
    let run = t.tables().require_run(&run_id).await.unwrap();
    assert_eq!(run.execution_arn.as_deref(), Some("arn:aws:states:us-east-1:123456789012:execution:arc:exec-1"));
}

#[tokio::test]
async fn initialize_retry_reopens_failed_and_queued_tasks_only() {
    let t = TestEnv::new(&[]).await;
    let (run_id, _) = new_run(&t, 4).await;
    for (task, status) in [
        ("task00000", "FAILED"),
        ("task00001", "RETRY_QUEUED"),
        ("task00002", "COMPLETED"),
        ("task00003", "FAILED_PERMANENT"),
    ] {
        t.set_task(&run_id, task, &[("status", s(status)), ("retry_count", n(1))]).await;
    }
    // The run had completed with errors.
    t.set_run(&run_id, &[("status", s("COMPLETED_WITH_ERRORS"))]).await;
    let arn = "arn:aws:states:us-east-1:123456789012:execution:arc:retry-x-g1";
    let event = json!({"run_id": run_id, "config_name": "cfg-a", "retry": true, "execution_arn": arn,
        "task_ids": ["task00000", "task00001", "task00002", "task00003"]});
    let out = initialize::handle(t.env(), event.clone()).await.json().unwrap();
    assert_eq!(out["task_ids"], json!(["task00000", "task00001"]));
    assert_eq!(out["total_tasks"], json!(4));
    let skipped: Vec<&str> =
        out["skipped"].as_array().unwrap().iter().map(|v| v["task_id"].as_str().unwrap()).collect();
    assert_eq!(skipped, vec!["task00002", "task00003"]);
    let tasks = t.tables().run_tasks(&run_id).await.unwrap();
    let status: HashMap<_, _> = tasks.iter().map(|t| (t.task_id.as_str(), t.status.as_str())).collect();
    assert_eq!(status["task00000"], "PENDING");
    assert_eq!(status["task00001"], "PENDING");
    assert_eq!(status["task00002"], "COMPLETED");
    assert_eq!(status["task00003"], "FAILED_PERMANENT");
    assert!(tasks.iter().all(|t| t.retry_count == 1), "a re-open keeps the failure count");
    let run = t.tables().require_run(&run_id).await.unwrap();
    assert_eq!(run.status.as_str(), "RUNNING");
    assert_eq!(run.execution_arn.as_deref(), Some(arn));
    // The same retry Initialize again (Lambda retried it): same tasks handed to the Map.
    let again = initialize::handle(t.env(), event).await.json().unwrap();
    assert_eq!(again["task_ids"], out["task_ids"]);
}

#[tokio::test]
async fn initialize_retry_needs_an_existing_run_and_tasks() {
    let t = TestEnv::new(&[]).await;
    let r = initialize::handle(
        t.env(),
        json!({"run_id": "run-nope", "config_name": "c", "retry": true, "task_ids": ["a"]}),
    )
    .await
    .json();
    assert_eq!(error_type(r).0, "RunNotFound");
    let (run_id, _) = new_run(&t, 2).await;
    let before = t.snapshot().await;
    let r = initialize::handle(
        t.env(),
        json!({"run_id": run_id, "config_name": "c", "retry": true, "task_ids": ["task00000", "ghost"]}),
    )
    .await
    .json();
    let (kind, msg) = error_type(r);
    assert_eq!(kind, "TaskNotFound");
    assert!(msg.contains("ghost"), "{msg}");
    assert_eq!(before, t.snapshot().await, "nothing written");
}

// ---------------------------------------------------------------- handle-error

async fn fail(t: &TestEnv, run_id: &str, task_id: &str, job: &str) -> Value {
    handle_error::handle(t.env(), json!({"run_id": run_id, "task_id": task_id, "error": batch_failure(job, task_id)}))
        .await
        .json()
        .unwrap()
}

#[tokio::test]
async fn third_failure_is_permanent_and_counted_on_the_run_once() {
    let t = TestEnv::new(&[("MAX_RETRIES", "3")]).await;
    let (run_id, _) = new_run(&t, 2).await;
    let o1 = fail(&t, &run_id, "task00000", "job-1").await;
    assert_eq!(o1["status"], "RETRY_SCHEDULED");
    assert_eq!(o1["retry_count"], 1);
    assert!(o1["error_message"].as_str().unwrap().starts_with("States.TaskFailed: {\"Attempts\""));
    assert_eq!(o1["error_message"].as_str().unwrap().chars().count(), "States.TaskFailed: ".len() + 200);
    let next = parse_ts(o1["next_retry_at"].as_str().unwrap()).unwrap();
    let task = t.tables().get_task(&run_id, "task00000").await.unwrap().unwrap();
    assert_eq!(task.status.as_str(), "FAILED");
    assert_eq!(task.last_failed_job_id.as_deref(), Some("job-1"));
    let failed_at = parse_ts(task.last_error_at.as_deref().unwrap()).unwrap();
    assert_eq!(
        next,
        arc_shared::backoff::due_at(&t.config.backoff, &run_id, "task00000", 1, failed_at),
        "next_retry_at comes from the shared backoff policy"
    );
    assert_eq!(fail(&t, &run_id, "task00000", "job-2").await["retry_count"], 2);
    let o3 = fail(&t, &run_id, "task00000", "job-3").await;
    assert_eq!(o3["status"], "FAILED_PERMANENT");
    assert_eq!(o3["retry_count"], 3);
    assert!(o3.get("next_retry_at").is_none());
    let task = t.tables().get_task(&run_id, "task00000").await.unwrap().unwrap();
    assert_eq!(task.status.as_str(), "FAILED_PERMANENT");
    assert_eq!(task.next_retry_at, None);
    assert_eq!(t.tables().require_run(&run_id).await.unwrap().failed_tasks, 1);
    // Delivered again: nothing changes, nothing counted twice.
    let before = t.snapshot().await;
    let again = fail(&t, &run_id, "task00000", "job-3").await;
    assert_eq!(again["status"], "FAILED_PERMANENT");
    assert_eq!(again["retry_count"], 3);
    assert_eq!(before, t.snapshot().await);
}

#[tokio::test]
async fn a_repeated_delivery_of_one_job_is_counted_once() {
    let t = TestEnv::new(&[]).await;
    let (run_id, _) = new_run(&t, 1).await;
    let first = fail(&t, &run_id, "task00000", "job-a").await;
    let before = t.snapshot().await;
    let second = fail(&t, &run_id, "task00000", "job-a").await;
    assert_eq!(second["retry_count"], 1);
    assert_eq!(second["status"], "RETRY_SCHEDULED");
    assert_eq!(second["next_retry_at"], first["next_retry_at"]);
    assert_eq!(before, t.snapshot().await, "a duplicate delivery writes nothing");
}

#[tokio::test]
async fn a_failure_the_python_worker_recorded_is_annotated_not_recounted() {
    let t = TestEnv::new(&[("MAX_RETRIES", "3")]).await;
    let (run_id, _) = new_run(&t, 2).await;
    // What the Python worker writes before it exits non-zero: it claimed the task as
    // "<pid>@<hostname>" (never the job id), then bumped retry_count and set FAILED with its own
    // error, during the job's attempt (tests/fixtures/batch_sync_cause.json: it ran
    // 2025-11-26T13:00:00Z–13:01:00Z). (tests/tests/worker.rs drives the worker double through
    // the same story.)
    for (task, count) in [("task00000", "1"), ("task00001", "3")] {
        t.set_task(
            &run_id,
            task,
            &[
                ("status", s("FAILED")),
                ("worker_id", s("4242@ip-10-0-1-23.ec2.internal")),
                ("started_at", s("2025-11-26T13:00:02.123456+00:00")),
                ("updated_at", s("2025-11-26T13:00:41.654321+00:00")),
                ("retry_count", AttributeValue::N(count.into())),
                ("error", s("model API returned 500")),
            ],
        )
        .await;
    }
    let o = fail(&t, &run_id, "task00000", "job-task00000").await;
    assert_eq!(o["retry_count"], 1, "not counted again");
    assert_eq!(o["counted"], false);
    assert_eq!(o["status"], "RETRY_SCHEDULED");
    let task = t.tables().get_task(&run_id, "task00000").await.unwrap().unwrap();
    assert_eq!(task.retry_count, 1);
    assert_eq!(task.last_failed_job_id.as_deref(), Some("job-task00000"));
    assert_eq!(task.last_error_type.as_deref(), Some("States.TaskFailed"));
    assert_eq!(task.error.as_deref(), Some("model API returned 500"), "the worker's own attributes are kept");
    // The worker's bump reached MAX_RETRIES: permanent, counted on the run once.
    let o = fail(&t, &run_id, "task00001", "job-task00001").await;
    assert_eq!(o["status"], "FAILED_PERMANENT");
    assert_eq!(o["retry_count"], 3);
    assert_eq!(t.tables().require_run(&run_id).await.unwrap().failed_tasks, 1);
}

#[tokio::test]
async fn non_retryable_errors_are_permanent_at_once() {
    let t = TestEnv::new(&[("NON_RETRYABLE_ERRORS", "InvalidTaskData,Other")]).await;
    let (run_id, _) = new_run(&t, 1).await;
    let o = handle_error::handle(
        t.env(),
        json!({"run_id": run_id, "task_id": "task00000", "error": {"Error": "InvalidTaskData", "Cause": "grid is empty"}}),
    )
    .await.json()
    .unwrap();
    assert_eq!(o["status"], "FAILED_PERMANENT");
    assert_eq!(o["retry_count"], 1);
    assert_eq!(o["error_message"], "InvalidTaskData: grid is empty");
}

#[tokio::test]
async fn unknown_task_is_task_not_found_and_nothing_is_written() {
    let t = TestEnv::new(&[]).await;
    let (run_id, _) = new_run(&t, 1).await;
    let before = t.snapshot().await;
    let r = handle_error::handle(
        t.env(),
        json!({"run_id": run_id, "task_id": "ghost", "error": {"Error": "X", "Cause": "y"}}),
    )
    .await
    .json();
    assert_eq!(error_type(r).0, "TaskNotFound");
    let r = handle_error::handle(t.env(), json!({"run_id": run_id, "error": {}})).await.json();
    assert!(matches!(r, Err(ArcError::InvalidInput { ref field, .. }) if field == "task_id"), "{r:?}");
    assert_eq!(before, t.snapshot().await, "no phantom item");
}

#[tokio::test]
async fn multibyte_cause_is_cut_at_4000_characters() {
    let t = TestEnv::new(&[]).await;
    let (run_id, _) = new_run(&t, 1).await;
    let cause = "é€😀".repeat(2000); // 6000 characters, 18000 bytes
    let o = handle_error::handle(
        t.env(),
        json!({"run_id": run_id, "task_id": "task00000", "error": {"Error": "Worker.Crash", "Cause": cause}}),
    )
    .await
    .json()
    .unwrap();
    let task = t.tables().get_task(&run_id, "task00000").await.unwrap().unwrap();
    let stored = task.last_error_cause.unwrap();
    assert_eq!(stored.chars().count(), 4000);
    assert!(cause.starts_with(&stored));
    assert_eq!(o["error_message"].as_str().unwrap().chars().count(), "Worker.Crash: ".len() + 200);
    assert_eq!(task.last_failed_job_id, None, "a plain-text cause has no job id");
}

// ---------------------------------------------------------------- aggregate

#[tokio::test]
async fn aggregate_reads_python_numbers_exactly_and_writes_the_report() {
    let t = TestEnv::new(&[]).await;
    let run_id = "run-py-20261126-120000-abcdef12";
    let now = format_ts(Utc::now());
    let run = HashMap::from([
        ("run_id".to_owned(), s(run_id)),
        ("config_name".to_owned(), s("py-cfg")),
        ("status".to_owned(), s("RUNNING")),
        ("created_at".to_owned(), s(&now)),
        ("total_tasks".to_owned(), AttributeValue::N("5".into())),
    ]);
    batch_put(&t.clients.dynamodb, &t.config.runs_table, vec![run]).await.unwrap();
    // As boto3 writes them: Decimal numbers, bools, and an old status value.
    let task = |id: &str, status: &str, extra: Vec<(&str, AttributeValue)>| {
        let mut m = HashMap::from([
            ("run_id".to_owned(), s(run_id)),
            ("task_id".to_owned(), s(id)),
            ("status".to_owned(), s(status)),
            ("updated_at".to_owned(), s(&now)),
        ]);
        m.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
        m
    };
    let items = vec![
        task(
            "t1",
            "COMPLETED",
            vec![
                ("cost_usd", AttributeValue::N("0.1".into())),
                ("is_correct", AttributeValue::Bool(true)),
                ("tokens_input", AttributeValue::N("1000".into())),
                ("tokens_output", AttributeValue::N("250".into())),
            ],
        ),
        task(
            "t2",
            "COMPLETED",
            vec![("cost_usd", AttributeValue::N("0.2".into())), ("is_correct", AttributeValue::Bool(false))],
        ),
        task(
            "t3",
            "FAILED",
            vec![
                ("cost_usd", AttributeValue::N("0.000000000000000001".into())),
                ("retry_count", AttributeValue::N("1".into())),
            ],
        ),
        task("t4", "FAILED_PERMANENT", vec![("retry_count", AttributeValue::N("3".into()))]),
        task("t5", "RUNNING", vec![]),
    ];
    batch_put(&t.clients.dynamodb, &t.config.tasks_table, items).await.unwrap();

    let out = aggregate::handle(t.env(), json!({"run_id": run_id})).await.json().unwrap();
    assert_eq!(out["total_tasks"], 5);
    assert_eq!(out["completed_tasks"], 2);
    assert_eq!(out["failed_tasks"], 2);
    assert_eq!(out["failed_permanent_tasks"], 1);
    assert_eq!(out["correct_tasks"], 1);
    assert_eq!(out["pending_tasks"], 1, "an unknown status counts as in flight");
    assert_eq!(out["retries_pending"], 1);
    assert_eq!(out["accuracy"], 0.5);
    assert!(out["total_cost_usd"].is_number(), "a decimal is a JSON number");
    assert_eq!(out["total_cost_usd"].to_string(), "0.300000000000000001");
    let key = format!("runs/{run_id}/results/aggregated.json");
    assert_eq!(out["results_s3_key"], key.as_str());

    let obj = t.clients.s3().get_object().bucket(&t.bucket).key(&key).send().await.unwrap();
    let body = obj.body.collect().await.unwrap().into_bytes();
    let report: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(report["metrics"]["total_cost_usd"].to_string(), "0.300000000000000001");
    assert_eq!(report["tasks"].as_array().unwrap().len(), 5);
    assert_eq!(report["metrics"]["total_input_tokens"], 1000);

    let stored = item(&t, &t.config.runs_table, &[("run_id", run_id)]).await.unwrap();
    assert_eq!(attr_n(&stored, "total_cost_usd"), "0.300000000000000001");
    assert_eq!(attr_n(&stored, "completed_tasks"), "2");
    assert_eq!(attr_s(&stored, "results_s3_key"), key);

    let r = aggregate::handle(t.env(), json!({"run_id": "run-missing"})).await.json();
    assert_eq!(error_type(r).0, "RunNotFound");
}

#[tokio::test]
async fn aggregate_without_a_bucket_writes_no_report() {
    let mut t = TestEnv::new(&[]).await;
    t.config.s3_bucket = None;
    let (run_id, _) = new_run(&t, 3).await;
    let out = aggregate::handle(t.env(), json!({"run_id": run_id})).await.json().unwrap();
    assert_eq!(out["results_s3_key"], Value::Null);
    assert_eq!(out["pending_tasks"], 3);
    assert_eq!(out["accuracy"], 0.0);
    let listed = t.clients.s3().list_objects_v2().bucket(&t.bucket).send().await.unwrap();
    assert_eq!(listed.key_count, Some(0));
}

// ---------------------------------------------------------------- complete

async fn published_run_completed(t: &TestEnv, config: &str) -> f64 {
    published(t, config, "RunCompleted").await
}

/// The Sum of everything published for `metric` of `config`, read back from the emulator's
/// CloudWatch (what a dashboard's Sum shows).
async fn published(t: &TestEnv, config: &str, metric: &str) -> f64 {
    let stats = t
        .clients
        .cloudwatch
        .get_metric_statistics()
        .namespace(&t.config.cloudwatch_namespace)
        .metric_name(metric)
        .dimensions(aws_sdk_cloudwatch::types::Dimension::builder().name("ConfigName").value(config).build())
        .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(Utc::now().timestamp() - 3600))
        .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(Utc::now().timestamp() + 3600))
        .period(60)
        .statistics(aws_sdk_cloudwatch::types::Statistic::Sum)
        .send()
        .await
        .unwrap();
    stats.datapoints().iter().filter_map(|d| d.sum()).sum()
}

#[tokio::test]
async fn complete_sets_status_and_publishes_once_per_execution() {
    let t = TestEnv::new(&[]).await;
    let config = format!("cfg-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let out = initialize::handle(t.env(), json!({"config_name": config, "task_ids": ids(4)})).await.json().unwrap();
    let run_id = out["run_id"].as_str().unwrap();
    // The tasks as the worker left them: Complete counts from the table itself.
    for (i, cost) in ["0.5", "0.5", "0.25"].iter().enumerate() {
        t.set_task(
            run_id,
            &format!("task{i:05}"),
            &[("status", s("COMPLETED")), ("cost_usd", AttributeValue::N((*cost).into()))],
        )
        .await;
    }
    t.set_task(
        run_id,
        "task00003",
        &[("status", s("FAILED_PERMANENT")), ("retry_count", AttributeValue::N("3".into()))],
    )
    .await;
    let clock = Arc::new(FixedClock::new(Utc::now() + chrono::Duration::seconds(90)));
    let event = json!({
        "run_id": run_id,
        "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:arc:e1",
        "aggregation": {"run_id": run_id, "total_tasks": 4, "completed_tasks": 3, "failed_tasks": 1,
                        "total_cost_usd": 1.25, "accuracy": 0.6666666666666666, "results_s3_key": null},
    });
    let first = complete::handle(t.env_with_clock(clock.clone()), event.clone()).await.json().unwrap();
    assert_eq!(first["status"], "COMPLETED_WITH_ERRORS");
    assert_eq!(first["metrics_published"], true);
    assert_eq!(first["final_metrics"]["total_cost_usd"].to_string(), "1.25");
    let d = first["final_metrics"]["duration_seconds"].as_f64().unwrap();
    assert!((89.0..=120.0).contains(&d), "{d}");
    clock.advance(chrono::Duration::seconds(30));
    let second = complete::handle(t.env_with_clock(clock), event).await.json().unwrap();
    assert_eq!(second["status"], first["status"]);
    assert_eq!(second["completed_at"], first["completed_at"]);
    assert_eq!(second["final_metrics"], first["final_metrics"]);
    assert_eq!(second["metrics_published"], false);
    assert_eq!(published_run_completed(&t, &config).await, 1.0, "RunCompleted published once");
    let run = t.tables().require_run(run_id).await.unwrap();
    assert_eq!(run.status.as_str(), "COMPLETED_WITH_ERRORS");
}

#[tokio::test]
async fn a_run_retried_twice_publishes_totals_equal_to_its_tasks_table() {
    let t = TestEnv::new(&[]).await;
    let config = format!("cfg-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let exec = |n: u32| format!("arn:aws:states:us-east-1:123456789012:execution:arc:e{n}");
    let out = initialize::handle(
        t.env(),
        json!({"config_name": config, "task_ids": ids(4), "execution_arn": exec(1),
               "execution_start_time": "2026-11-27T10:00:00Z"}),
    )
    .await
    .json()
    .unwrap();
    let run_id = out["run_id"].as_str().unwrap().to_owned();
    let set = |task: &str, status: &str, cost: Option<&str>| {
        let mut attrs = vec![("status", s(status))];
        if let Some(c) = cost {
            attrs.push(("cost_usd", AttributeValue::N(c.into())));
        }
        let (t, run_id, task) = (&t, run_id.clone(), task.to_owned());
        async move { t.set_task(&run_id, &task, &attrs).await }
    };
    let complete_exec = |n: u32| {
        let (t, run_id) = (&t, run_id.clone());
        async move {
            let agg =
                aggregate::handle(t.env(), json!({"run_id": run_id, "execution_arn": exec(n)})).await.json().unwrap();
            complete::handle(t.env(), json!({"run_id": run_id, "aggregation": agg, "execution_arn": exec(n)}))
                .await
                .json()
                .unwrap()
        }
    };
    let retry = |n: u32, task: &str| {
        let (t, run_id, config, task) = (&t, run_id.clone(), config.clone(), task.to_owned());
        async move {
            initialize::handle(
                t.env(),
                json!({"run_id": run_id, "config_name": config, "task_ids": [task], "retry": true, "execution_arn": exec(n)}),
            )
            .await.json()
            .unwrap()
        }
    };
    // The run's own execution: two completed, two failed.
    set("task00000", "COMPLETED", Some("1.0")).await;
    set("task00001", "COMPLETED", Some("1.0")).await;
    set("task00002", "FAILED", None).await;
    set("task00003", "FAILED", None).await;
    let first = complete_exec(1).await;
    assert_eq!(first["status"], "COMPLETED_WITH_ERRORS");
    println!(
        "published after the run's own execution: RunCompleted {}, TasksCompleted {}, TasksFailed {}, TotalCostUSD {}",
        published(&t, &config, "RunCompleted").await,
        published(&t, &config, "TasksCompleted").await,
        published(&t, &config, "TasksFailed").await,
        published(&t, &config, "TotalCostUSD").await,
    );
    // Retry 1 completes task00002; retry 2 completes task00003.
    retry(2, "task00002").await;
    set("task00002", "COMPLETED", Some("0.5")).await;
    let second = complete_exec(2).await;
    assert_eq!(second["status"], "COMPLETED_WITH_ERRORS");
    retry(3, "task00003").await;
    set("task00003", "COMPLETED", Some("0.25")).await;
    let third = complete_exec(3).await;
    assert_eq!(third["status"], "COMPLETED");
    // What a dashboard's Sum shows equals the tasks table: one run, 4 completed, 0 failed,
    // $2.75 (publishing each completion's cumulative figures would show 3 runs, 9 completed,
    // $7.25).
    let tasks = t.tables().run_tasks(&run_id).await.unwrap();
    let table_cost: f64 = tasks.iter().filter_map(|t| t.cost_usd).map(|d| d.to_string().parse::<f64>().unwrap()).sum();
    let totals = [
        published(&t, &config, "RunCompleted").await,
        published(&t, &config, "TasksCompleted").await,
        published(&t, &config, "TasksFailed").await,
        published(&t, &config, "TotalCostUSD").await,
    ];
    println!(
        "published after 3 completions: RunCompleted {}, TasksCompleted {}, TasksFailed {}, TotalCostUSD {}",
        totals[0], totals[1], totals[2], totals[3]
    );
    assert_eq!(totals[0], 1.0);
    assert_eq!(totals[1], tasks.iter().filter(|t| t.status.as_str() == "COMPLETED").count() as f64);
    assert_eq!(totals[2], 0.0);
    assert!((totals[3] - table_cost).abs() < 1e-9, "{} vs {table_cost}", totals[3]);
    // A repeated Complete of the last execution publishes nothing more.
    let again = complete_exec(3).await;
    assert_eq!(again["metrics_published"], false);
    assert_eq!(published(&t, &config, "TasksCompleted").await, 4.0);
}

#[tokio::test]
async fn complete_of_a_superseded_execution_changes_nothing() {
    let t = TestEnv::new(&[]).await;
    let out = initialize::handle(
        t.env(),
        json!({"config_name": "sup", "task_ids": ids(2), "execution_arn": "arn:aws:states:us-east-1:1:execution:arc:old",
               "execution_start_time": "2026-11-27T10:00:00Z"}),
    )
    .await.json()
    .unwrap();
    let run_id = out["run_id"].as_str().unwrap();
    // A newer retry execution owns the run now.
    t.set_run(run_id, &[("execution_arn", s("arn:aws:states:us-east-1:1:execution:arc:retry-g1"))]).await;
    let before = t.snapshot().await;
    let old = "arn:aws:states:us-east-1:1:execution:arc:old";
    let agg = aggregate::handle(t.env(), json!({"run_id": run_id, "execution_arn": old})).await.json().unwrap();
    assert_eq!(agg["superseded"], true);
    let done = complete::handle(t.env(), json!({"run_id": run_id, "aggregation": agg, "execution_arn": old}))
        .await
        .json()
        .unwrap();
    assert_eq!(done["superseded"], true);
    assert_eq!(done["status"], "RUNNING");
    assert_eq!(before, t.snapshot().await, "an old execution redriven by hand wrote something");
}

#[tokio::test]
async fn aggregate_settles_a_claim_left_behind_on_top_of_its_earlier_spared_failures() {
    let t = TestEnv::new(&[("MAX_RETRIES", "3")]).await;
    let exec = "arn:aws:states:us-east-1:1:execution:arc:agg1";
    let out = initialize::handle(
        t.env(),
        json!({"config_name": "inflight-agg", "task_ids": ids(2), "execution_arn": exec,
               "execution_start_time": "2026-11-27T10:00:00Z"}),
    )
    .await
    .json()
    .unwrap();
    let run_id = out["run_id"].as_str().unwrap();
    t.set_task(run_id, "task00000", &[("status", s("COMPLETED")), ("cost_usd", AttributeValue::N("0.1".into()))]).await;
    // Reclaimed twice before (spared, INFRA_MAX_RETRIES 5 by default), claimed again and left.
    t.set_task(
        run_id,
        "task00001",
        &[
            ("status", s("IN_PROGRESS")),
            ("retry_count", AttributeValue::N("1".into())),
            ("infra_failures", AttributeValue::N("2".into())),
            ("worker_id", s("77@host")),
        ],
    )
    .await;
    let agg = aggregate::handle(t.env(), json!({"run_id": run_id, "execution_arn": exec})).await.json().unwrap();
    assert_eq!(agg["settled_tasks"], 1);
    assert_eq!(agg["failed_tasks"], 1);
    let t1 = t.tables().get_task(run_id, "task00001").await.unwrap().unwrap();
    assert_eq!(
        (t1.status.as_str(), t1.retry_count, t1.infra_failures()),
        ("FAILED", 1, 3),
        "a third spared failure, retry_count as it was"
    );
    assert_eq!(t1.failure_class.as_deref(), Some("infrastructure"));
}

#[tokio::test]
async fn complete_ends_tasks_left_in_flight_as_failed_attempts() {
    let t = TestEnv::new(&[("MAX_RETRIES", "3")]).await;
    let exec = "arn:aws:states:us-east-1:1:execution:arc:e1";
    let out = initialize::handle(
        t.env(),
        json!({"config_name": "inflight", "task_ids": ids(3), "execution_arn": exec,
               "execution_start_time": "2026-11-27T10:00:00Z"}),
    )
    .await
    .json()
    .unwrap();
    let run_id = out["run_id"].as_str().unwrap();
    t.set_task(run_id, "task00000", &[("status", s("COMPLETED")), ("cost_usd", AttributeValue::N("0.1".into()))]).await;
    t.set_task(run_id, "task00001", &[("status", s("IN_PROGRESS")), ("worker_id", s("77@host"))]).await;
    t.set_task(run_id, "task00002", &[("retry_count", AttributeValue::N("2".into()))]).await; // PENDING, 2 failures before
    let agg = json!({"total_tasks": 3, "completed_tasks": 1, "failed_tasks": 0, "total_cost_usd": 0.1, "accuracy": 0});
    let done = complete::handle(t.env(), json!({"run_id": run_id, "aggregation": agg, "execution_arn": exec}))
        .await
        .json()
        .unwrap();
    assert_eq!(done["status"], "COMPLETED_WITH_ERRORS");
    assert_eq!(done["final_metrics"]["failed_tasks"], 2);
    // A claim left by a job that ended well (after the Map): a reclaimed attempt, an
    // infrastructure failure spared from retry_count (INFRA_MAX_RETRIES 5 by default).
    let t1 = t.tables().get_task(run_id, "task00001").await.unwrap().unwrap();
    assert_eq!((t1.status.as_str(), t1.retry_count, t1.infra_failures()), ("FAILED", 0, 1), "retryable, spared");
    assert_eq!(t1.failure_class.as_deref(), Some("infrastructure"));
    assert!(t1.next_retry_at.is_some());
    let t2 = t.tables().get_task(run_id, "task00002").await.unwrap().unwrap();
    assert_eq!((t2.status.as_str(), t2.retry_count), ("FAILED_PERMANENT", 3), "the third failed attempt");
    assert_eq!(t.tables().require_run(run_id).await.unwrap().failed_tasks, 2);
}

#[tokio::test]
async fn two_tasks_going_permanent_together_are_both_counted() {
    let t = TestEnv::new(&[("MAX_RETRIES", "1")]).await;
    let (run_id, _) = new_run(&t, 2).await;
    // Both transactions touch the run item; DynamoDB cancels one with TransactionConflict.
    // The emulator is told to answer the first TransactWriteItems of this test's tables so.
    t.inject_fault(json!({
        "target": "DynamoDB_20120810.TransactWriteItems", "body_contains": t.config.runs_table, "count": 1,
        "status": 400,
        "body": json!({"__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                       "message": "Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]",
                       "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}]}).to_string(),
    }))
    .await;
    let (a, b) = tokio::join!(fail(&t, &run_id, "task00000", "job-a"), fail(&t, &run_id, "task00001", "job-b"));
    assert_eq!(t.faults_left(&t.config.runs_table).await, vec![0], "the conflict was answered");
    assert_eq!((a["status"].as_str(), b["status"].as_str()), (Some("FAILED_PERMANENT"), Some("FAILED_PERMANENT")));
    assert_eq!(t.tables().require_run(&run_id).await.unwrap().failed_tasks, 2, "both counted, once each");
}

#[tokio::test]
async fn complete_status_rules() {
    let t = TestEnv::new(&[]).await;
    for (completed, failed, want) in [(3, 0, "COMPLETED"), (0, 3, "FAILED"), (2, 1, "COMPLETED_WITH_ERRORS")] {
        let (run_id, _) = new_run(&t, 3).await;
        let out = complete::handle(
            t.env(),
            json!({"run_id": run_id, "aggregation": {"total_tasks": 3, "completed_tasks": completed, "failed_tasks": failed,
                   "total_cost_usd": "0", "accuracy": 0}}),
        )
        .await.json()
        .unwrap();
        assert_eq!(out["status"], want);
    }
    let r = complete::handle(t.env(), json!({"run_id": "run-none", "aggregation": {"total_tasks": 0, "completed_tasks": 0, "failed_tasks": 0, "total_cost_usd": 0}})).await.json();
    assert_eq!(error_type(r).0, "RunNotFound");
    let r = complete::handle(t.env(), json!({"run_id": "r", "aggregation": {"total_tasks": 1}})).await.json();
    assert!(
        matches!(r, Err(ArcError::InvalidInput { ref field, .. }) if field == "aggregation.completed_tasks"),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_cloudwatch_failure_is_not_fatal() {
    let t = TestEnv::new(&[]).await;
    let (run_id, _) = new_run(&t, 1).await;
    // CloudWatch unreachable: a port nothing listens on.
    let dead = arc_integration_tests::sdk_config("http://127.0.0.1:9").await;
    let mut clients = t.clients.clone();
    clients.cloudwatch = aws_sdk_cloudwatch::Client::new(&dead);
    let env = Arc::new(arc_shared::runtime::Env {
        config: t.config.clone(),
        clients,
        clock: Arc::new(arc_shared::time::SystemClock),
    });
    let out = complete::handle(
        env,
        json!({"run_id": run_id, "aggregation": {"total_tasks": 1, "completed_tasks": 1, "failed_tasks": 0, "total_cost_usd": 0.5, "accuracy": 1.0}}),
    )
    .await.json()
    .unwrap();
    assert_eq!(out["status"], "COMPLETED");
    assert_eq!(out["metrics_published"], false);
    assert_eq!(t.tables().require_run(&run_id).await.unwrap().status.as_str(), "COMPLETED");
}

#[test]
fn timestamps_used_in_fixtures_parse() {
    assert_eq!(
        parse_ts("2026-11-26T12:00:00.000000+00:00"),
        Some(Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap())
    );
}
