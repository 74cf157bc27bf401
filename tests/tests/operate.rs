//! Operating a run end to end from `arcctl` (the built binary) against moto: start (validated
//! as Initialize validates, idempotent, large lists through S3), watch (ends with the run's
//! exit code while the run finishes under it), cancel for good (the execution is stopped; no
//! sweep, no old execution, no Initialize brings the run back), resume (its tasks retryable
//! again), and report (CSV row for row equal to the tasks table).
//!
//! moto's Step Functions keeps executions without running them: the tests play the state
//! machine's part (Initialize with the execution's input and ids, Aggregate, Complete).

use arc_handlers::{aggregate, complete, initialize};
use arc_integration_tests::{lambda_binary, run_binary, Out, TestEnv};
use arc_shared::records::{n, s};
use arc_shared::store::Cancellation;
use arc_shared::time::{format_ts, SystemClock};
use arc_shared::ArcError;
use arc_sweeper::plan::RetryInput;
use arc_sweeper::{parse_request, sweep, SweepDeps, SweepRequest};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;

struct World {
    t: TestEnv,
    /// arcctl's environment, with STATE_MACHINE_ARN.
    env: Vec<(String, String)>,
    sm_arn: String,
    namespace: String,
    deps: SweepDeps,
}

async fn world() -> World {
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let namespace = format!("ArcOperateTest{suffix}");
    let t = TestEnv::new(&[("CLOUDWATCH_NAMESPACE", namespace.as_str())]).await;
    let sm_arn = t.create_state_machine(&format!("operate-{suffix}")).await;
    let mut env = t.lambda_env();
    env.push(("CLOUDWATCH_NAMESPACE".into(), namespace.clone()));
    env.push(("STATE_MACHINE_ARN".into(), sm_arn.clone()));
    let deps = t.sweep_deps(&sm_arn, Arc::new(SystemClock));
    World { t, env, sm_arn, namespace, deps }
}

fn arcctl(w: &World, args: &[&str]) -> Out {
    run_binary("arcctl", &w.env, args)
}

impl World {
    /// Every execution of the state machine: name → (status, input).
    async fn executions(&self) -> BTreeMap<String, (String, Value)> {
        let list = self
            .t
            .clients
            .sfn
            .list_executions()
            .state_machine_arn(&self.sm_arn)
            .max_results(1000)
            .send()
            .await
            .unwrap();
        let mut out = BTreeMap::new();
        for e in list.executions() {
            let d = self.t.clients.sfn.describe_execution().execution_arn(e.execution_arn()).send().await.unwrap();
            let input = serde_json::from_str(d.input().unwrap_or("null")).unwrap();
            out.insert(e.name().to_owned(), (d.status().as_str().to_owned(), input));
        }
        out
    }

    async fn execution_status(&self, arn: &str) -> String {
        let d = self.t.clients.sfn.describe_execution().execution_arn(arn).send().await.unwrap();
        d.status().as_str().to_owned()
    }

    /// The state machine's Initialize step for execution `arn`: its input with the optional
    /// fields' defaults (DefaultOptionalInputs / ApplyInputDefaults), `$$.Execution.Id` and
    /// `$$.Execution.StartTime`.
    async fn initialize_execution(&self, arn: &str) -> initialize::Output {
        let d = self.t.clients.sfn.describe_execution().execution_arn(arn).send().await.unwrap();
        let input: Value = serde_json::from_str(d.input().unwrap()).unwrap();
        let mut merged = json!({"task_ids": null, "task_ids_s3": null, "data_source": "evaluation",
            "triggered_by": "unknown", "commit_sha": ""});
        for (k, v) in input.as_object().unwrap() {
            merged[k] = v.clone();
        }
        let start = DateTime::from_timestamp(d.start_date().secs(), d.start_date().subsec_nanos()).unwrap();
        merged["execution_arn"] = json!(arn);
        merged["execution_start_time"] = json!(start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        initialize::handle(self.t.env(), merged).await.expect("initialize")
    }

    /// `arcctl runs start` + the execution's Initialize: (run id, execution ARN).
    async fn started_run(&self, config: &str, ids: &[&str]) -> (String, String) {
        let mut args = vec!["runs", "start", "--config", config, "--json"];
        for id in ids {
            args.extend(["--task-id", id]);
        }
        let out = arcctl(self, &args);
        assert_eq!(out.code, 0, "{out:?}");
        let v = out.json();
        let arn = v["execution_arn"].as_str().unwrap().to_owned();
        let init = self.initialize_execution(&arn).await;
        assert_eq!(init.run_id, v["run_id"].as_str().unwrap(), "start printed the run id Initialize derives");
        (init.run_id, arn)
    }

    async fn aggregate_and_complete(&self, run_id: &str, arn: &str) -> complete::Output {
        let env = self.t.env();
        let agg =
            aggregate::handle(env.clone(), json!({"run_id": run_id, "execution_arn": arn})).await.expect("aggregate");
        complete::handle(env.clone(), json!({"run_id": run_id, "execution_arn": arn, "aggregation": agg}))
            .await
            .expect("complete")
    }

    async fn task_item(&self, run_id: &str, task_id: &str) -> BTreeMap<String, AttributeValue> {
        let out = self
            .t
            .clients
            .dynamodb
            .get_item()
            .table_name(&self.t.config.tasks_table)
            .set_key(Some(arc_shared::store::Tables::task_key(run_id, task_id)))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        out.item.expect("task").into_iter().collect()
    }

    async fn run_item(&self, run_id: &str) -> BTreeMap<String, AttributeValue> {
        let out = self
            .t
            .clients
            .dynamodb
            .get_item()
            .table_name(&self.t.config.runs_table)
            .set_key(Some(arc_shared::store::Tables::run_key(run_id)))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        out.item.expect("run").into_iter().collect()
    }

    async fn metric_names(&self) -> Vec<String> {
        let out = self.t.clients.cloudwatch.list_metrics().namespace(&self.namespace).send().await.unwrap();
        let mut names: Vec<String> = out.metrics().iter().filter_map(|m| m.metric_name().map(str::to_owned)).collect();
        names.sort();
        names.dedup();
        names
    }
}

fn attr(item: &BTreeMap<String, AttributeValue>, k: &str) -> String {
    match item.get(k) {
        Some(AttributeValue::S(v)) | Some(AttributeValue::N(v)) => v.clone(),
        Some(AttributeValue::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn ago(minutes: i64) -> String {
    format_ts(Utc::now() - Duration::minutes(minutes))
}

/// A task as the worker (or handle-error) left it, written an hour ago.
async fn set_task(
    w: &World,
    run_id: &str,
    task_id: &str,
    status: &str,
    retry_count: u32,
    extra: &[(&str, AttributeValue)],
) {
    let mut attrs: Vec<(&str, AttributeValue)> =
        vec![("status", s(status)), ("retry_count", n(retry_count)), ("updated_at", s(ago(60)))];
    attrs.extend(extra.iter().cloned());
    w.t.set_task(run_id, task_id, &attrs).await;
}

fn completed(cost: &str, correct: bool) -> Vec<(&'static str, AttributeValue)> {
    vec![
        ("cost_usd", AttributeValue::N(cost.to_owned())),
        ("is_correct", AttributeValue::Bool(correct)),
        ("tokens_input", n(1200)),
        ("tokens_output", n(300)),
        ("completed_at", s(ago(50))),
    ]
}

fn failure(exit_code: i64) -> Vec<(&'static str, AttributeValue)> {
    vec![
        ("last_error_type", s("States.TaskFailed")),
        ("last_error_cause", s("Essential container in task exited")),
        ("last_error_at", s(ago(60))),
        ("last_error_exit_code", n(exit_code)),
    ]
}

// ---------------------------------------------------------------- cancel / resume

#[tokio::test]
async fn a_cancelled_run_is_stopped_for_good_and_resume_makes_it_retryable_again() {
    let w = world().await;
    let (run_id, arn) = w.started_run("cfg-cancel", &["t1", "t2", "t3", "t4", "t5", "t6"]).await;
    let max = w.t.config.max_retries;
    // What the execution left when it was cancelled: one done, one claimed, one failed (due),
    // one never claimed, one queued for a retry execution that never started, one exhausted.
    set_task(&w, &run_id, "t1", "COMPLETED", 0, &completed("0.25", true)).await;
    set_task(&w, &run_id, "t2", "IN_PROGRESS", 0, &[("started_at", s(ago(60)))]).await;
    set_task(&w, &run_id, "t3", "FAILED", 1, &failure(1)).await;
    set_task(&w, &run_id, "t4", "PENDING", 0, &[]).await;
    set_task(&w, &run_id, "t5", "RETRY_QUEUED", 1, &[("retry_execution", s("retry-never-started-g1"))]).await;
    set_task(&w, &run_id, "t6", "FAILED", max, &failure(137)).await;

    let out = arcctl(&w, &["runs", "cancel", &run_id, "--reason", "wrong model", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    assert_eq!(v["status"], "CANCELLED");
    assert_eq!(v["cancelled_reason"], "wrong model");
    assert_eq!(v["execution"], "stopped");
    assert!(!v["cancelled_by"].as_str().unwrap_or("").is_empty(), "{v}");
    assert_eq!(w.execution_status(&arn).await, "ABORTED");
    let run = w.run_item(&run_id).await;
    assert_eq!(attr(&run, "status"), "CANCELLED");
    assert!(!attr(&run, "cancelled_at").is_empty());

    // The next scheduled sweep neither repairs nor retries it, nor makes its exhausted task
    // permanent: every item as it was, no execution started.
    let before = w.t.snapshot().await;
    let executions = w.executions().await.len();
    let summary = sweep(&w.deps, SweepRequest::scheduled()).await.expect("sweep");
    assert!(summary.executions_started.is_empty(), "{summary:?}");
    assert!(summary.repaired.iter().all(|r| r.run_id != run_id), "{summary:?}");
    assert!(summary.made_permanent.is_empty(), "{summary:?}");
    let skipped: Vec<_> = summary.skipped_runs.iter().filter(|r| r.run_id == run_id).collect();
    assert_eq!(skipped.len(), 1, "{summary:?}");
    assert_eq!(skipped[0].reason, "run is CANCELLED");
    assert_eq!(w.t.snapshot().await, before, "a sweep changed a cancelled run");
    assert_eq!(w.executions().await.len(), executions);

    // A manual request for it is a clear error, writing nothing.
    let manual = parse_request(json!({"run_id": run_id, "ignore_backoff": true})).unwrap();
    match sweep(&w.deps, manual).await {
        Err(ArcError::Conflict(m)) => assert!(m.contains(&format!("`arcctl runs resume {run_id}` first")), "{m}"),
        other => panic!("{other:?}"),
    }
    let out = arcctl(&w, &["retry", &run_id]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("CANCELLED") && out.stderr.contains("arcctl runs resume"), "{}", out.stderr);
    // Initialize's retry mode refuses it too.
    let retry = json!({"run_id": run_id, "config_name": "cfg-cancel", "task_ids": ["t3"], "retry": true,
        "execution_arn": format!("{}:retry-x-g1", w.sm_arn.replace(":stateMachine:", ":execution:"))});
    match initialize::handle(w.t.env(), retry).await {
        Err(e @ ArcError::Conflict(_)) => assert!(e.to_string().contains("is CANCELLED"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.t.snapshot().await, before, "nothing written");
    assert_eq!(w.executions().await.len(), executions);

    // Its old execution's Aggregate and Complete (redriven by hand) do not un-cancel it, do not
    // settle its tasks, and publish RunCancelled (once), not RunCompleted.
    let done = w.aggregate_and_complete(&run_id, &arn).await;
    assert_eq!(done.status.as_str(), "CANCELLED");
    assert!(done.metrics_published);
    let run = w.run_item(&run_id).await;
    assert_eq!(attr(&run, "status"), "CANCELLED");
    assert_eq!(attr(&run, "published_run_cancelled"), "1");
    assert_eq!(attr(&run, "published_run_completed"), "");
    assert_eq!(attr(&w.task_item(&run_id, "t2").await, "status"), "IN_PROGRESS");
    assert_eq!(attr(&w.task_item(&run_id, "t4").await, "status"), "PENDING");
    let again = complete::handle(
        w.t.env(),
        json!({"run_id": run_id, "execution_arn": arn, "aggregation": {"total_tasks": 6, "completed_tasks": 1,
            "failed_tasks": 2, "accuracy": 1.0, "total_cost_usd": 0.25}}),
    )
    .await
    .unwrap();
    assert_eq!((again.status.as_str(), again.metrics_published), ("CANCELLED", false));
    let metrics = w.metric_names().await;
    assert!(metrics.contains(&"RunCancelled".to_owned()), "{metrics:?}");
    assert!(!metrics.contains(&"RunCompleted".to_owned()), "{metrics:?}");

    // A second cancel says so (exit 1).
    let out = arcctl(&w, &["runs", "cancel", &run_id]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("already CANCELLED"), "{}", out.stderr);

    // Resume: in-flight tasks FAILED without a charge, the run retryable again.
    let out = arcctl(&w, &["runs", "resume", &run_id, "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    assert_eq!(v["status"], "COMPLETED_WITH_ERRORS");
    assert_eq!(v["in_flight_moved_to_failed"], json!(["t2", "t4"]));
    let run = w.run_item(&run_id).await;
    assert_eq!(attr(&run, "status"), "COMPLETED_WITH_ERRORS");
    assert_eq!(attr(&run, "cancelled_by"), "");
    for t in ["t2", "t4"] {
        let item = w.task_item(&run_id, t).await;
        assert_eq!((attr(&item, "status"), attr(&item, "retry_count")), ("FAILED".into(), "0".into()), "{t}");
        assert_eq!(attr(&item, "last_error_type"), "Cancelled");
    }
    assert_eq!(attr(&w.task_item(&run_id, "t1").await, "status"), "COMPLETED");
    let out = arcctl(&w, &["runs", "resume", &run_id]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("not CANCELLED"), "{}", out.stderr);

    // The next sweep with ignore_backoff starts a retry of its FAILED tasks.
    let manual = parse_request(json!({"run_id": run_id, "ignore_backoff": true})).unwrap();
    let summary = sweep(&w.deps, manual).await.expect("sweep");
    assert_eq!(summary.executions_started.len(), 1, "{summary:?}");
    let started = &summary.executions_started[0];
    let ex = w.executions().await;
    let (status, input) = &ex[&started.execution_name];
    assert_eq!(status, "RUNNING");
    let input: RetryInput = serde_json::from_value(input.clone()).unwrap();
    assert_eq!(input.task_ids, ["t2", "t3", "t4"]);
    assert_eq!(summary.made_permanent.len(), 1, "the exhausted task is now made permanent: {summary:?}");
    assert_eq!(attr(&w.run_item(&run_id).await, "status"), "RUNNING");
}

#[tokio::test]
async fn a_cancel_between_the_sweepers_read_and_its_claim_makes_the_claim_fail() {
    let w = world().await;
    let (run_id, arn) = w.started_run("cfg-race", &["a", "b"]).await;
    set_task(&w, &run_id, "a", "COMPLETED", 0, &completed("0.5", false)).await;
    set_task(&w, &run_id, "b", "FAILED", 1, &failure(1)).await;
    w.aggregate_and_complete(&run_id, &arn).await;
    let tables = w.t.tables();
    let read = tables.require_run(&run_id).await.unwrap();
    assert_eq!(read.status.as_str(), "COMPLETED_WITH_ERRORS");

    let now = format_ts(Utc::now());
    let cancelled = tables
        .cancel_run(&run_id, &Cancellation { by: "tester", reason: None, at: &now })
        .await
        .unwrap()
        .expect("cancelled");
    assert_eq!(cancelled.status.as_str(), "CANCELLED");
    assert!(tables.cancel_run(&run_id, &Cancellation { by: "x", reason: None, at: &now }).await.unwrap().is_none());
    assert!(tables
        .cancel_run("run-missing", &Cancellation { by: "x", reason: None, at: &now })
        .await
        .unwrap()
        .is_none());

    let next = format!("{}:retry-x-g1", w.sm_arn.replace(":stateMachine:", ":execution:"));
    let claim = tables.claim_run(&read, 1, &next, &now).await.unwrap();
    assert!(claim.is_none(), "a claim decided on the status read before the cancel");
    let run = tables.require_run(&run_id).await.unwrap();
    assert_eq!((run.status.as_str(), run.retry_generation), ("CANCELLED", 0));
    assert_eq!(run.execution_arn.as_deref(), Some(arn.as_str()));
}

// ---------------------------------------------------------------- start

#[tokio::test]
async fn start_validates_like_initialize_starts_once_per_input_and_sends_large_lists_through_s3() {
    let w = world().await;

    // Same input and --name twice: one execution, same ARN and run id.
    let args =
        ["runs", "start", "--config", "cfg-s", "--task-id", "a", "--task-id", "b", "--name", "nightly-1", "--json"];
    let first = arcctl(&w, &args);
    assert_eq!(first.code, 0, "{first:?}");
    let second = arcctl(&w, &args);
    assert_eq!(second.code, 0, "{second:?}");
    assert_eq!(first.json()["execution_arn"], second.json()["execution_arn"]);
    assert_eq!(first.json()["run_id"], second.json()["run_id"]);
    assert_eq!((first.json()["started"].as_bool(), second.json()["started"].as_bool()), (Some(true), Some(false)));
    let ex = w.executions().await;
    assert_eq!(ex.len(), 1, "{ex:?}");
    assert_eq!(ex["nightly-1"].1, json!({"config_name": "cfg-s", "task_ids": ["a", "b"]}));
    // The same name with another input: exit 1, nothing started.
    let out = arcctl(&w, &["runs", "start", "--config", "cfg-s", "--task-id", "c", "--name", "nightly-1"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("nightly-1") && out.stderr.contains("different input"), "{}", out.stderr);
    assert_eq!(w.executions().await.len(), 1);

    // Without --name: named after the input and the minute (a repeat within it starts nothing).
    let args = ["runs", "start", "--config", "cfg-s", "--task-id", "x", "--triggered-by", "ci", "--json"];
    let mut names = Vec::new();
    for _ in 0..3 {
        let out = arcctl(&w, &args);
        assert_eq!(out.code, 0, "{out:?}");
        names.push(out.json()["execution_name"].as_str().unwrap().to_owned());
    }
    // Two of three calls fall in one minute whatever the clock does.
    assert!(names[0] == names[1] || names[1] == names[2], "{names:?}");
    let distinct: std::collections::BTreeSet<&String> = names.iter().collect();
    assert_eq!(w.executions().await.len(), 1 + distinct.len());
    let name = &names[1];
    assert!(name.starts_with("run-cfg-s-") && name.len() == "run-cfg-s-".len() + 12 + 1 + 8, "{name}");

    // An input Initialize would reject: exit 2 naming the field, nothing started.
    let before = w.executions().await.len();
    for (args, field) in [
        (vec!["--config", "cfg-s", "--task-id", "ok", "--task-id", "b/ad"], "task_ids[1]"),
        (vec!["--config", "cfg s", "--task-id", "ok"], "config_name"),
        (vec!["--config", "cfg-s", "--task-id", "ok", "--task-id", "ok"], "task_ids"),
        (vec!["--config", "cfg-s", "--task-id", "ok", "--commit-sha", &"f".repeat(65)], "commit_sha"),
    ] {
        let mut all = vec!["runs", "start"];
        all.extend(args);
        let out = arcctl(&w, &all);
        assert_eq!(out.code, 2, "{all:?}: {out:?}");
        assert!(out.stderr.contains(field), "{field}: {}", out.stderr);
        assert!(out.stdout.is_empty());
    }
    let mut no_sm = w.env.clone();
    no_sm.retain(|(k, _)| k != "STATE_MACHINE_ARN");
    let out = run_binary("arcctl", &no_sm, &["runs", "start", "--config", "c", "--task-id", "a"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("STATE_MACHINE_ARN"), "{}", out.stderr);
    assert_eq!(w.executions().await.len(), before, "a rejected input started something");

    // 2,100 ids of 100 characters do not fit an execution input: they go to S3.
    let ids: Vec<String> = (0..2100).map(|i| format!("{i:0>100}")).collect();
    let file = std::env::temp_dir().join(format!("arc-ids-{}.json", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, serde_json::to_string(&ids).unwrap()).unwrap();
    let out =
        arcctl(&w, &["runs", "start", "--config", "cfg-big", "--task-ids-file", file.to_str().unwrap(), "--json"]);
    let _ = std::fs::remove_file(&file);
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    let name = v["execution_name"].as_str().unwrap();
    let uri = format!("s3://{}/runs/inputs/{name}.json", w.t.bucket);
    assert_eq!(v["task_ids_s3"], uri.as_str());
    let ex = w.executions().await;
    assert_eq!(ex[name].1, json!({"config_name": "cfg-big", "task_ids_s3": uri}));
    let init = w.initialize_execution(v["execution_arn"].as_str().unwrap()).await;
    assert_eq!(init.total_tasks, 2100);
    assert_eq!(init.run_id, v["run_id"].as_str().unwrap());
}

// ---------------------------------------------------------------- watch

/// `arcctl runs watch` started in the background; its output once it exits (or after 60 s).
fn spawn_watch(w: &World, run_id: &str, json: bool) -> tokio::task::JoinHandle<Out> {
    let mut cmd = Command::new(lambda_binary("arcctl"));
    cmd.args(["runs", "watch", run_id, "--interval", "1"])
        .env_remove("STATE_MACHINE_ARN")
        .envs(w.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if json {
        cmd.arg("--json");
    }
    let child = cmd.spawn().expect("spawn arcctl");
    tokio::task::spawn_blocking(move || {
        let out = child.wait_with_output().expect("wait");
        let o = Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        println!("$ arcctl runs watch\n{}{}(exit {})", o.stdout, o.stderr, o.code);
        o
    })
}

async fn finished(handle: tokio::task::JoinHandle<Out>) -> Out {
    tokio::time::timeout(std::time::Duration::from_secs(60), handle).await.expect("watch ended").expect("joined")
}

#[tokio::test]
async fn watch_follows_a_run_until_it_ends_and_exits_by_its_status() {
    let w = world().await;
    let (run_id, arn) = w.started_run("cfg-watch", &["a", "b", "c"]).await;
    let watcher = spawn_watch(&w, &run_id, true);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(!watcher.is_finished(), "watch ended while the run was RUNNING");
    for (t, cost) in [("a", "0.1"), ("b", "0.2"), ("c", "0.000000000000000003")] {
        set_task(&w, &run_id, t, "COMPLETED", 0, &completed(cost, t != "c")).await;
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }
    let done = w.aggregate_and_complete(&run_id, &arn).await;
    assert_eq!(done.status.as_str(), "COMPLETED");
    let out = finished(watcher).await;
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<Value> = out.stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert!(lines.len() >= 2, "{}", out.stdout);
    assert_eq!(lines[0]["status"], "RUNNING");
    assert_eq!(lines[0]["ended"], false);
    let last = lines.last().unwrap();
    assert_eq!((last["status"].as_str(), last["ended"].as_bool()), (Some("COMPLETED"), Some(true)));
    assert_eq!(last["completed_tasks"], 3);
    assert_eq!(last["cost_usd"].to_string(), "0.300000000000000003");

    // A run that ends with an error: exit 1, the final line says how it ended.
    let (run_id, arn) = w.started_run("cfg-watch", &["d", "e"]).await;
    let watcher = spawn_watch(&w, &run_id, false);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    set_task(&w, &run_id, "d", "COMPLETED", 0, &completed("1", true)).await;
    set_task(&w, &run_id, "e", "FAILED_PERMANENT", 3, &failure(137)).await;
    let done = w.aggregate_and_complete(&run_id, &arn).await;
    assert_eq!(done.status.as_str(), "COMPLETED_WITH_ERRORS");
    let out = finished(watcher).await;
    assert_eq!(out.code, 1, "{out:?}");
    let last = out.stdout.lines().last().unwrap_or("");
    assert!(last.starts_with(&format!("run {run_id} ended COMPLETED_WITH_ERRORS: 1 of 2 completed")), "{last}");
    assert!(out.stderr.contains("ended COMPLETED_WITH_ERRORS"), "{}", out.stderr);

    // A cancelled run ends the watch at once (its tasks stay in flight), exit 1; none: exit 3.
    let (run_id, _) = w.started_run("cfg-watch", &["f"]).await;
    assert_eq!(arcctl(&w, &["runs", "cancel", &run_id]).code, 0);
    let out = finished(spawn_watch(&w, &run_id, false)).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("ended CANCELLED"), "{}", out.stdout);
    let out = arcctl(&w, &["runs", "watch", "run-missing"]);
    assert_eq!(out.code, 3, "{out:?}");
}

// ---------------------------------------------------------------- report

/// A CSV line split into fields (the test data holds no quoted fields).
fn fields(line: &str) -> Vec<String> {
    line.split(',').map(str::to_owned).collect()
}

#[tokio::test]
async fn report_csv_matches_the_tasks_table_row_for_row() {
    let w = world().await;
    let (run_id, arn) = w.started_run("cfg-report", &["r3", "r1", "r2", "r4"]).await;
    set_task(&w, &run_id, "r1", "COMPLETED", 0, &completed("0.123456789012345678", true)).await;
    set_task(&w, &run_id, "r2", "COMPLETED", 1, &completed("2.5", false)).await;
    set_task(&w, &run_id, "r3", "FAILED", 1, &failure(1)).await;
    set_task(&w, &run_id, "r4", "FAILED_PERMANENT", 3, &failure(137)).await;
    // Before Aggregate: no report in S3, the summary comes from the tasks.
    let v = arcctl(&w, &["runs", "report", &run_id, "--json"]).json();
    assert_eq!(v["summary_source"], "tasks table");
    assert_eq!(v["summary"]["total_tasks"], 4);
    w.aggregate_and_complete(&run_id, &arn).await;

    let file = std::env::temp_dir().join(format!("arc-report-{}.csv", uuid::Uuid::new_v4().simple()));
    let out = arcctl(&w, &["runs", "report", &run_id, "--csv", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "task_id,status,is_correct,cost_usd,tokens_input,tokens_output,retry_count,last_error_type,last_error_exit_code"
    );
    // Row for row, in task id order, from the items themselves.
    let mut items = Vec::new();
    for t in ["r1", "r2", "r3", "r4"] {
        items.push(w.task_item(&run_id, t).await);
    }
    assert_eq!(lines.len(), 1 + items.len(), "{text}");
    for (line, item) in lines[1..].iter().zip(&items) {
        let want: Vec<String> = [
            "task_id",
            "status",
            "is_correct",
            "cost_usd",
            "tokens_input",
            "tokens_output",
            "retry_count",
            "last_error_type",
            "last_error_exit_code",
        ]
        .iter()
        .map(|k| attr(item, k))
        .collect();
        assert_eq!(fields(line), want, "{line}");
    }
    assert_eq!(fields(lines[1])[3], "0.123456789012345678", "money keeps every digit");
    assert!(
        out.stdout.contains(&format!("s3://{}/runs/{run_id}/results/aggregated.json", w.t.bucket)),
        "{}",
        out.stdout
    );

    // Filtered by status; JSON with the S3 report's summary.
    let v =
        arcctl(&w, &["runs", "report", &run_id, "--status", "failed_permanent", "--status", "FAILED", "--json"]).json();
    let ids: Vec<&str> = v["tasks"].as_array().unwrap().iter().map(|t| t["task_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["r3", "r4"]);
    assert_eq!(v["tasks"][1]["last_error_exit_code"], 137);
    assert_eq!(v["summary_source"], format!("s3://{}/runs/{run_id}/results/aggregated.json", w.t.bucket));
    assert_eq!(v["summary"]["total_tasks"], 4);
    assert_eq!(v["summary"]["total_cost_usd"].to_string(), "2.623456789012345678");
    let out = arcctl(&w, &["runs", "report", &run_id]);
    assert_eq!(out.code, 0, "{out:?}");
    let row = out.stdout.lines().find(|l| l.starts_with("r4 ")).unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(row.contains("FAILED_PERMANENT") && row.contains("137"), "{row}");
    assert_eq!(arcctl(&w, &["runs", "report", "run-missing"]).code, 3);
}
