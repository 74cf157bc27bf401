//! The retry sweeper against moto (issue 3): backoff with an injected clock, dry run, filters,
//! bounds, four sweepers at once, the built sweeper SIGKILLed between claim and start, ended executions, repair of
//! RUNNING runs, bad inputs, and the built binary through the Runtime API.
//!
//! moto's Step Functions holds a state machine but does not run it (execute_state_machine is
//! off): a started execution stays RUNNING until StopExecution makes it ABORTED.

use arc_integration_tests::chaos::{Ctl, Invocation};
use arc_integration_tests::runtime_api::invoke_binary;
use arc_integration_tests::JsonAnswer;
use arc_integration_tests::{lambda_binary, TestEnv};
use arc_shared::backoff::due_at;
use arc_shared::records::{n, s, Item};
use arc_shared::status::RunStatus;
use arc_shared::store::batch_put;
use arc_shared::store::executions::EndedStatus;
use arc_shared::time::{format_ts, FixedClock};
use arc_shared::ArcError;
use arc_sweeper::plan::{execution_name, DeferReason, RetryInput, MAX_EXECUTION_INPUT_BYTES};
use arc_sweeper::summary::{ExecutionStatus, RepairAction, StartReason};
use arc_sweeper::{parse_request, sweep, SweepDeps, SweepRequest, SweepSummary};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

struct World {
    t: TestEnv,
    deps: SweepDeps,
    clock: Arc<FixedClock>,
    sm_arn: String,
    namespace: String,
}

async fn world(overrides: &[(&str, &str)]) -> World {
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let namespace = format!("ArcSweeperTest{suffix}");
    let mut vars: Vec<(&str, &str)> = vec![("CLOUDWATCH_NAMESPACE", namespace.as_str())];
    vars.extend_from_slice(overrides);
    let t = TestEnv::new(&vars).await;
    let sm_arn = t.create_state_machine(&format!("arc-{suffix}")).await;
    let clock = Arc::new(FixedClock::new(t0()));
    let deps = t.sweep_deps(&sm_arn, clock.clone());
    World { t, deps, clock, sm_arn, namespace }
}

fn manual(v: Value) -> SweepRequest {
    parse_request(v).expect("valid request")
}

/// A run as initialize / complete write it.
async fn put_run(w: &World, run_id: &str, status: &str, execution_arn: Option<&str>, total: usize) {
    let mut item: Item = [
        ("run_id", s(run_id)),
        ("config_name", s("cfg-a")),
        ("data_source", s("evaluation")),
        ("status", s(status)),
        ("created_at", s(format_ts(t0() - Duration::hours(3)))),
        ("updated_at", s(format_ts(t0() - Duration::hours(2)))),
        ("triggered_by", s("test")),
        ("total_tasks", n(total)),
        ("completed_tasks", n(0)),
        ("failed_tasks", n(total)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if let Some(arn) = execution_arn {
        item.insert("execution_arn".into(), s(arn));
    }
    w.t.clients.dynamodb.put_item().table_name(&w.t.config.runs_table).set_item(Some(item)).send().await.unwrap();
}

/// A FAILED task exactly as handle-error writes it.
fn failed_task(run_id: &str, task_id: &str, retry_count: u32, failed_at: DateTime<Utc>) -> Item {
    task_item(run_id, task_id, "FAILED", retry_count, Some(failed_at))
}

fn task_item(run_id: &str, task_id: &str, status: &str, retry_count: u32, failed_at: Option<DateTime<Utc>>) -> Item {
    let mut item: Item = [
        ("run_id", s(run_id)),
        ("task_id", s(task_id)),
        ("status", s(status)),
        ("retry_count", n(retry_count)),
        ("created_at", s(format_ts(t0() - Duration::hours(3)))),
        ("updated_at", s(format_ts(failed_at.unwrap_or(t0() - Duration::hours(1))))),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if let Some(at) = failed_at.filter(|_| status == "FAILED") {
        item.insert("last_error_type".into(), s("States.TaskFailed"));
        item.insert("last_error_cause".into(), s("Essential container in task exited"));
        item.insert("last_error_at".into(), s(format_ts(at)));
    }
    item
}

async fn put_tasks(w: &World, items: Vec<Item>) {
    batch_put(&w.t.clients.dynamodb, &w.t.config.tasks_table, items).await.expect("seed tasks");
}

async fn task(w: &World, run_id: &str, task_id: &str) -> HashMap<String, AttributeValue> {
    w.t.clients
        .dynamodb
        .get_item()
        .table_name(&w.t.config.tasks_table)
        .set_key(Some([("run_id".to_owned(), s(run_id)), ("task_id".to_owned(), s(task_id))].into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("task exists")
}

async fn run(w: &World, run_id: &str) -> HashMap<String, AttributeValue> {
    w.t.clients
        .dynamodb
        .get_item()
        .table_name(&w.t.config.runs_table)
        .set_key(Some([("run_id".to_owned(), s(run_id))].into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("run exists")
}

fn attr<'a>(item: &'a HashMap<String, AttributeValue>, k: &str) -> &'a str {
    match item.get(k) {
        Some(AttributeValue::S(v)) | Some(AttributeValue::N(v)) => v,
        _ => "",
    }
}

/// Every execution of the state machine: name → (status, input).
async fn executions(w: &World) -> BTreeMap<String, (String, RetryInput)> {
    let mut out = BTreeMap::new();
    let list = w.t.clients.sfn.list_executions().state_machine_arn(&w.sm_arn).max_results(1000).send().await.unwrap();
    assert!(list.next_token().is_none(), "more than 1000 executions");
    for e in list.executions() {
        let d = w.t.clients.sfn.describe_execution().execution_arn(e.execution_arn()).send().await.unwrap();
        let input: RetryInput = serde_json::from_str(d.input().unwrap_or("{}")).unwrap_or(RetryInput {
            run_id: String::new(),
            config_name: String::new(),
            task_ids: vec![],
            retry: false,
            triggered_by: String::new(),
        });
        assert!(out.insert(e.name().to_owned(), (d.status().as_str().to_owned(), input)).is_none(), "duplicate name");
    }
    out
}

async fn stop(w: &World, execution_arn: &str) {
    w.t.clients.sfn.stop_execution().execution_arn(execution_arn).send().await.unwrap();
}

async fn metric_names(w: &World) -> BTreeSet<String> {
    let out = w.t.clients.cloudwatch.list_metrics().namespace(&w.namespace).send().await.unwrap();
    out.metrics().iter().filter_map(|m| m.metric_name().map(str::to_owned)).collect()
}

// ---------------------------------------------------------------- backoff

#[tokio::test]
async fn due_and_deferred_follow_the_backoff_and_jitter_is_stable() {
    // MAX_RETRIES above the counts used here: a task at MAX_RETRIES is made permanent instead.
    let w = world(&[("MAX_RETRIES", "10")]).await;
    let r = "run-cfg-a-20261126-090000-0000000a";
    put_run(&w, r, "COMPLETED_WITH_ERRORS", None, 5).await;
    // Base 300 s, cap 21600 s, jitter in [0.5, 1]:
    // once failed 10 min ago: due (≤ 300 s); three times 5 min ago: 600–1200 s, not due;
    // nine times 7 h ago: capped at ≤ 6 h, due; twice 2 min ago: 300–600 s, not due;
    // once 1 s ago: below the query's coarse `updated_at` cutoff (base / 4), not even scanned.
    put_tasks(
        &w,
        vec![
            failed_task(r, "t-once", 1, t0() - Duration::minutes(10)),
            failed_task(r, "t-thrice", 3, t0() - Duration::minutes(5)),
            failed_task(r, "t-capped", 9, t0() - Duration::hours(7)),
            failed_task(r, "t-fresh", 2, t0() - Duration::minutes(2)),
            failed_task(r, "t-just-now", 1, t0() - Duration::seconds(1)),
        ],
    )
    .await;
    let backoff = w.deps.settings.backoff;
    let thrice_due = due_at(&backoff, r, "t-thrice", 3, t0() - Duration::minutes(5));

    let dry = json!({"dry_run": true});
    let first = sweep(&w.deps, manual(dry.clone())).await.unwrap();
    assert_eq!(first.scanned, 4, "{first:#?}");
    assert_eq!(first.due, 2, "{first:#?}");
    assert_eq!(first.requeued[r], 2);
    let deferred: BTreeMap<&str, Option<&str>> =
        first.deferred.iter().map(|d| (d.task_id.as_str(), d.due_at.as_deref())).collect();
    assert_eq!(deferred.len(), 2);
    assert_eq!(deferred["t-thrice"], Some(format_ts(thrice_due).as_str()));

    // The same due time on every sweep (jitter is a pure function), and due exactly then.
    w.clock.set(thrice_due - Duration::milliseconds(1));
    let again = sweep(&w.deps, manual(dry.clone())).await.unwrap();
    let d: Vec<_> = again.deferred.iter().filter(|d| d.task_id == "t-thrice").collect();
    assert_eq!(d[0].due_at.as_deref(), Some(format_ts(thrice_due).as_str()));
    w.clock.set(thrice_due);
    let at_due = sweep(&w.deps, manual(dry)).await.unwrap();
    let seeded = [
        ("t-once", 1, Duration::minutes(10)),
        ("t-thrice", 3, Duration::minutes(5)),
        ("t-capped", 9, Duration::hours(7)),
        ("t-fresh", 2, Duration::minutes(2)),
        ("t-just-now", 1, Duration::seconds(1)),
    ];
    let want_due =
        seeded.iter().filter(|(id, rc, ago)| due_at(&backoff, r, id, *rc, t0() - *ago) <= thrice_due).count();
    assert!(want_due >= 3);
    assert_eq!(at_due.due as usize, want_due);
    assert!(at_due.deferred.iter().all(|d| d.task_id != "t-thrice"));

    // A real scheduled sweep at t0 re-queues exactly the due ones into one execution.
    w.clock.set(t0());
    let real = sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    assert_eq!(real.requeued_total, 2);
    assert_eq!(real.deferred_count, 2);
    let name = execution_name(r, 1);
    let ex = executions(&w).await;
    assert_eq!(ex.len(), 1);
    let (status, input) = &ex[&name];
    assert_eq!(status, "RUNNING");
    assert_eq!(input.task_ids, vec!["t-capped", "t-once"]);
    assert_eq!((input.run_id.as_str(), input.config_name.as_str(), input.retry), (r, "cfg-a", true));
    assert_eq!(input.triggered_by, "sweeper");
    for id in ["t-once", "t-capped"] {
        let it = task(&w, r, id).await;
        assert_eq!(attr(&it, "status"), "RETRY_QUEUED");
        assert_eq!(attr(&it, "retry_execution"), name);
        assert_eq!(attr(&it, "updated_at"), format_ts(t0()));
    }
    assert_eq!(attr(&task(&w, r, "t-thrice").await, "status"), "FAILED");
    let rr = run(&w, r).await;
    assert_eq!(attr(&rr, "status"), "RUNNING");
    assert_eq!(attr(&rr, "retry_generation"), "1");
    assert_eq!(attr(&rr, "execution_arn"), format!("{}:{name}", w.sm_arn.replace(":stateMachine:", ":execution:")));

    // The run is RUNNING now: later due tasks wait for the next generation.
    w.clock.set(thrice_due);
    let later = sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    assert_eq!(later.requeued_total, 0);
    assert_eq!(later.skipped_runs.len(), 1, "{later:#?}");
    assert_eq!(executions(&w).await.len(), 1);
}

// ---------------------------------------------------------------- dry run

#[tokio::test]
async fn dry_run_changes_nothing_and_starts_nothing() {
    let w = world(&[]).await;
    let old = t0() - Duration::hours(1);
    for i in 0..3 {
        let r = format!("run-dry-{i}");
        put_run(&w, &r, "COMPLETED_WITH_ERRORS", None, 5).await;
        put_tasks(&w, (0..5).map(|j| failed_task(&r, &format!("t{j}"), 1, old)).collect()).await;
    }
    // A RUNNING run whose execution was stopped, and an orphaned RETRY_QUEUED task.
    let live =
        w.t.clients
            .sfn
            .start_execution()
            .state_machine_arn(&w.sm_arn)
            .name("first-run")
            .input("{}")
            .send()
            .await
            .unwrap();
    stop(&w, live.execution_arn()).await;
    put_run(&w, "run-stopped", "RUNNING", Some(live.execution_arn()), 2).await;
    put_tasks(
        &w,
        vec![
            task_item("run-stopped", "p0", "PENDING", 0, None),
            task_item("run-stopped", "p1", "IN_PROGRESS", 0, None),
        ],
    )
    .await;
    let mut orphan = task_item("run-dry-0", "q0", "RETRY_QUEUED", 1, None);
    orphan.insert("retry_execution".into(), s("retry-0000000000000000-g7"));
    put_tasks(&w, vec![orphan]).await;

    let before = w.t.snapshot().await;
    let out = sweep(&w.deps, manual(json!({"dry_run": true, "ignore_backoff": true}))).await.unwrap();
    assert!(out.dry_run);
    assert_eq!(out.requeued_total, 15, "{out:#?}");
    assert_eq!(out.executions_started.len(), 3);
    let actions: BTreeSet<&str> = out.repaired.iter().map(|r| r.action.as_str()).collect();
    assert!(actions.contains("run_finished") && actions.contains("tasks_unqueued"), "{out:#?}");
    assert_eq!(w.t.snapshot().await, before, "a dry run wrote something");
    assert_eq!(executions(&w).await.len(), 1, "a dry run started something");
    assert!(metric_names(&w).await.is_empty(), "a dry run published metrics");
}

// ---------------------------------------------------------------- filters

#[tokio::test]
async fn ignore_backoff_run_id_and_task_ids_filters() {
    let w = world(&[]).await;
    let fresh = t0() - Duration::seconds(5);
    for r in ["run-f1", "run-f2"] {
        put_run(&w, r, "COMPLETED_WITH_ERRORS", None, 4).await;
        put_tasks(&w, (0..4).map(|j| failed_task(r, &format!("t{j}"), 1, fresh)).collect()).await;
    }
    // A FAILED task with no usable timestamp is due (found through its run's partition).
    put_run(&w, "run-nots", "FAILED", None, 1).await;
    let mut no_ts = task_item("run-nots", "x", "FAILED", 1, None);
    no_ts.remove("updated_at");
    put_tasks(&w, vec![no_ts]).await;

    let scheduled = sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    assert_eq!(scheduled.requeued_total, 0, "{scheduled:#?}");
    assert!(executions(&w).await.is_empty());

    let some =
        sweep(&w.deps, manual(json!({"run_id": "run-f1", "task_ids": ["t1", "t3", "nope"], "ignore_backoff": true})))
            .await
            .unwrap();
    assert_eq!(some.scanned, 2);
    assert_eq!(some.requeued["run-f1"], 2);
    assert_eq!(some.unmatched_task_ids, vec!["nope"]);
    let ex = executions(&w).await;
    assert_eq!(ex[&execution_name("run-f1", 1)].1.task_ids, vec!["t1", "t3"]);
    for (id, want) in [("t0", "FAILED"), ("t1", "RETRY_QUEUED"), ("t2", "FAILED"), ("t3", "RETRY_QUEUED")] {
        assert_eq!(attr(&task(&w, "run-f1", id).await, "status"), want, "{id}");
    }
    for j in 0..4 {
        assert_eq!(attr(&task(&w, "run-f2", &format!("t{j}")).await, "status"), "FAILED");
    }

    let whole = sweep(&w.deps, manual(json!({"run_id": "run-f2", "ignore_backoff": true}))).await.unwrap();
    assert_eq!(whole.requeued.keys().collect::<Vec<_>>(), vec!["run-f2"]);
    assert_eq!(whole.requeued["run-f2"], 4);

    let missing = sweep(&w.deps, manual(json!({"run_id": "run-typo", "ignore_backoff": true}))).await.unwrap_err();
    assert_eq!(missing.error_type(), "RunNotFound", "{missing}");

    let nots = sweep(&w.deps, manual(json!({"run_id": "run-nots"}))).await.unwrap();
    assert_eq!(nots.requeued_total, 1, "{nots:#?}");
    assert_eq!(executions(&w).await.len(), 3);
    let published = metric_names(&w).await;
    for m in ["TasksRequeued", "TasksDeferred", "RunsRetried", "RunsRepaired", "SweepErrors"] {
        assert!(published.contains(m), "{m} not published: {published:?}");
    }
}

// ---------------------------------------------------------------- bounds

#[tokio::test]
async fn max_tasks_bounds_a_sweep() {
    let w = world(&[("SWEEPER_MAX_TASKS", "25")]).await;
    let old = t0() - Duration::hours(2);
    for r in ["run-m1", "run-m2"] {
        put_run(&w, r, "COMPLETED_WITH_ERRORS", None, 20).await;
        put_tasks(&w, (0..20).map(|j| failed_task(r, &format!("t{j:02}"), 1, old)).collect()).await;
    }
    let limited = sweep(&w.deps, manual(json!({"max_tasks": 7}))).await.unwrap();
    assert_eq!(limited.requeued_total, 7);
    assert_eq!(limited.deferred_count, 33);
    assert!(limited.deferred.iter().all(|d| serde_json::to_value(d.reason).unwrap() == "max_tasks"));
    let full = sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    // run of the first sweep is RUNNING now; the other gets at most SWEEPER_MAX_TASKS = 25.
    assert_eq!(full.requeued_total, 20, "{full:#?}");
    assert_eq!(executions(&w).await.len(), 2);
}

#[tokio::test]
async fn execution_input_never_exceeds_256_kib() {
    let w = world(&[("SWEEPER_MAX_TASKS", "100000")]).await;
    let r = "run-big";
    let n_tasks = 2_700;
    put_run(&w, r, "COMPLETED_WITH_ERRORS", None, n_tasks).await;
    let long = |j: usize| format!("{j:0>100}");
    put_tasks(&w, (0..n_tasks).map(|j| failed_task(r, &long(j), 1, t0() - Duration::hours(1))).collect()).await;
    let out = sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    let ex = executions(&w).await;
    assert_eq!(ex.len(), 1);
    let (_, input) = &ex[&execution_name(r, 1)];
    let bytes = serde_json::to_string(input).unwrap().len();
    assert!(bytes <= MAX_EXECUTION_INPUT_BYTES, "{bytes}");
    assert!(bytes + 103 > MAX_EXECUTION_INPUT_BYTES, "the input should be full: {bytes}");
    assert_eq!(out.requeued_total as usize, input.task_ids.len());
    assert_eq!(out.deferred_count as usize, n_tasks - input.task_ids.len());
    assert!(out.deferred.iter().all(|d| serde_json::to_value(d.reason).unwrap() == "input_size"));
    // The rest stays FAILED for a later generation, never a second execution of this one.
    let rest = &out.deferred[0];
    assert_eq!(attr(&task(&w, r, &rest.task_id).await, "status"), "FAILED");
}

// ---------------------------------------------------------------- concurrency

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_sweepers_at_once_requeue_every_task_exactly_once() {
    let w = world(&[("SWEEPER_MAX_TASKS", "5000")]).await;
    let runs: Vec<String> = (0..50).map(|i| format!("run-c-{i:02}")).collect();
    let mut items = Vec::new();
    for r in &runs {
        put_run(&w, r, "COMPLETED_WITH_ERRORS", None, 40).await;
        items.extend((0..40).map(|j| failed_task(r, &format!("t{j:02}"), 1, t0() - Duration::hours(1))));
    }
    put_tasks(&w, items).await;
    let req = SweepRequest::scheduled;
    let (a, b, c, d) =
        tokio::join!(sweep(&w.deps, req()), sweep(&w.deps, req()), sweep(&w.deps, req()), sweep(&w.deps, req()));
    let outs: Vec<SweepSummary> = vec![a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap()];
    assert_eq!(outs.iter().map(|o| o.requeued_total).sum::<u64>(), 2000, "{outs:#?}");
    assert_eq!(outs.iter().map(|o| o.executions_started.len()).sum::<usize>(), 50);
    assert!(outs.iter().all(|o| o.errors.is_empty()), "{outs:#?}");
    let ex = executions(&w).await;
    assert_eq!(ex.len(), 50);
    for r in &runs {
        let name = execution_name(r, 1);
        let (status, input) = &ex[&name];
        assert_eq!(status, "RUNNING");
        assert_eq!(input.task_ids.len(), 40, "{r}");
    }
    let mut start = None;
    let mut queued = 0;
    loop {
        let page =
            w.t.clients
                .dynamodb
                .scan()
                .table_name(&w.t.config.tasks_table)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .unwrap();
        for it in page.items() {
            assert_eq!(attr(it, "status"), "RETRY_QUEUED");
            assert_eq!(attr(it, "retry_execution"), execution_name(attr(it, "run_id"), 1));
            queued += 1;
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    assert_eq!(queued, 2000);
}

// ---------------------------------------------------------------- crashes and ended executions

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_claim_and_start_is_repaired_exactly_once() {
    // The real thing: the built sweeper, SIGKILLed while its StartExecution is held by the
    // emulator (tests/support/moto_serial.py), after it claimed the run and re-queued its tasks.
    let w = world(&[]).await;
    let now = Utc::now();
    w.clock.set(now);
    let r = "run-crash";
    put_run(&w, r, "COMPLETED_WITH_ERRORS", None, 5).await;
    put_tasks(&w, (0..5).map(|j| failed_task(r, &format!("t{j}"), 1, now - Duration::hours(1))).collect()).await;
    let sm_name = w.sm_arn.rsplit(':').next().unwrap().to_owned();
    let ctl = Ctl::new(&w.t.endpoint);
    let hold = format!("crash-{sm_name}");
    ctl.hold(&hold, 1, "before", &json!({"operations": ["StartExecution"], "contains": [sm_name]}));
    let mut env = w.t.lambda_env();
    env.push(("STATE_MACHINE_ARN".into(), w.sm_arn.clone()));
    env.push(("CLOUDWATCH_NAMESPACE".into(), w.namespace.clone()));
    let mut sweeper = Invocation::start(&lambda_binary("sweeper"), &env, json!({}));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while ctl.hold_state(&hold)["held"] != true {
        assert!(
            std::time::Instant::now() < deadline,
            "the sweeper never reached StartExecution: {:?}",
            sweeper.outcome()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    sweeper.kill();
    ctl.release(&hold, "drop");
    assert_eq!(sweeper.outcome(), None, "killed before it answered");
    let name = execution_name(r, 1);
    assert_eq!(attr(&run(&w, r).await, "status"), "RUNNING");
    assert_eq!(attr(&task(&w, r, "t0").await, "status"), "RETRY_QUEUED");
    assert!(executions(&w).await.is_empty());

    // Right after: the claim is fresh (its sweeper might still be working): left alone.
    let soon = sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    assert!(soon.executions_started.is_empty(), "{soon:#?}");
    assert!(executions(&w).await.is_empty());

    // A later sweep starts the same-named execution with the same input, once.
    w.clock.advance(Duration::minutes(16));
    let repair = sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    assert_eq!(repair.executions_started.len(), 1, "{repair:#?}");
    assert_eq!(repair.executions_started[0].execution_name, name);
    assert_eq!(repair.executions_started[0].reason, StartReason::Repair);
    let again = sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    assert!(again.executions_started.is_empty(), "{again:#?}");
    let ex = executions(&w).await;
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[&name].1.task_ids, vec!["t0", "t1", "t2", "t3", "t4"]);
}

#[tokio::test]
async fn an_execution_that_ended_is_not_done() {
    let w = world(&[]).await;
    let r = "run-abort";
    put_run(&w, r, "COMPLETED_WITH_ERRORS", None, 4).await;
    let mut items: Vec<Item> = (0..3).map(|j| failed_task(r, &format!("t{j}"), 1, t0() - Duration::hours(1))).collect();
    items.push(task_item(r, "done", "COMPLETED", 0, None));
    put_tasks(&w, items).await;
    sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    let name = execution_name(r, 1);
    let arn = attr(&run(&w, r).await, "execution_arn").to_owned();
    // moto's StopExecution gives ABORTED; FAILED and TIMED_OUT are handled the same way.
    stop(&w, &arn).await;

    w.clock.advance(Duration::minutes(1));
    let out = sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    let finished: Vec<_> = out.repaired.iter().filter(|x| x.action == RepairAction::RunFinished).collect();
    assert_eq!(finished.len(), 1, "{out:#?}");
    assert_eq!(finished[0].execution_status, Some(ExecutionStatus::Ended(EndedStatus::Aborted)));
    assert_eq!(finished[0].tasks, 3);
    for j in 0..3 {
        let it = task(&w, r, &format!("t{j}")).await;
        assert_eq!(attr(&it, "status"), "FAILED", "back to FAILED, not done");
        assert_eq!(attr(&it, "retry_count"), "1", "never started: not a failed attempt");
    }
    let rr = run(&w, r).await;
    assert_eq!(attr(&rr, "status"), "COMPLETED_WITH_ERRORS");
    assert_eq!(attr(&rr, "failed_tasks"), "3");

    // The next generation retries them under a new name; the aborted one is never reused.
    let next = sweep(&w.deps, manual(json!({"ignore_backoff": true}))).await.unwrap();
    assert_eq!(next.executions_started.len(), 1, "{next:#?}");
    assert_eq!(next.executions_started[0].execution_name, execution_name(r, 2));
    let ex = executions(&w).await;
    assert_eq!(ex[&name].0, "ABORTED");
    assert_eq!(ex[&execution_name(r, 2)].1.task_ids, vec!["t0", "t1", "t2"]);
}

#[tokio::test]
async fn a_running_run_whose_execution_was_stopped_is_repaired() {
    let w = world(&[("MAX_RETRIES", "3")]).await;
    let start =
        |name: &str| w.t.clients.sfn.start_execution().state_machine_arn(&w.sm_arn).name(name).input("{}").send();
    let dead = start("run-dead-exec").await.unwrap();
    let alive = start("run-alive-exec").await.unwrap();
    stop(&w, dead.execution_arn()).await;
    let long_ago = t0() - Duration::hours(1);
    put_run(&w, "run-dead", "RUNNING", Some(dead.execution_arn()), 5).await;
    put_run(&w, "run-alive", "RUNNING", Some(alive.execution_arn()), 1).await;
    let mut pending = task_item("run-dead", "p", "PENDING", 0, Some(long_ago));
    pending.insert("updated_at".into(), s(format_ts(long_ago)));
    put_tasks(
        &w,
        vec![
            pending,
            task_item("run-dead", "w", "IN_PROGRESS", 2, Some(long_ago)),
            task_item("run-dead", "c1", "COMPLETED", 0, Some(long_ago)),
            task_item("run-dead", "c2", "COMPLETED", 0, Some(long_ago)),
            task_item("run-dead", "f", "FAILED_PERMANENT", 3, Some(long_ago)),
            task_item("run-alive", "a", "IN_PROGRESS", 0, Some(long_ago)),
        ],
    )
    .await;

    let out = sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    assert_eq!(out.repaired.len(), 1, "{out:#?}");
    assert_eq!(out.repaired[0].run_id, "run-dead");
    assert_eq!(out.repaired[0].run_status, Some(RunStatus::CompletedWithErrors));
    // PENDING: no worker ever claimed it, so the ended execution is not charged to it.
    let p = task(&w, "run-dead", "p").await;
    assert_eq!(attr(&p, "status"), "FAILED");
    assert_eq!(attr(&p, "retry_count"), "0");
    assert_eq!(attr(&p, "last_error_type"), "ExecutionEnded");
    assert_eq!(attr(&p, "last_error_cause"), "ExecutionEnded: ABORTED");
    assert_eq!(attr(&p, "last_error_at"), format_ts(t0()));
    assert!(!attr(&p, "next_retry_at").is_empty());
    let wk = task(&w, "run-dead", "w").await;
    assert_eq!(attr(&wk, "status"), "FAILED_PERMANENT", "third failed attempt with MAX_RETRIES=3");
    assert_eq!(attr(&wk, "retry_count"), "3");
    let rr = run(&w, "run-dead").await;
    assert_eq!(attr(&rr, "status"), "COMPLETED_WITH_ERRORS");
    assert_eq!(attr(&rr, "failed_tasks"), "3");
    assert_eq!(attr(&run(&w, "run-alive").await, "status"), "RUNNING");
    assert_eq!(attr(&task(&w, "run-alive", "a").await, "status"), "IN_PROGRESS");
    assert_eq!(attr(&task(&w, "run-dead", "c1").await, "status"), "COMPLETED");
    // Repaired once: a second sweep finds nothing more to repair.
    let again = sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    assert!(again.repaired.is_empty(), "{again:#?}");
}

// ---------------------------------------------------------------- bad inputs

#[tokio::test]
async fn bad_inputs_are_invalid_input_and_write_nothing() {
    let w = world(&[]).await;
    put_run(&w, "run-b", "COMPLETED_WITH_ERRORS", None, 2).await;
    // The built binary below sweeps on the wall clock: these failures are an hour old by it
    // (a fixed date would one day be older than SWEEPER_MAX_AGE_HOURS).
    let failed_at = Utc::now() - Duration::hours(1);
    put_tasks(&w, (0..2).map(|j| failed_task("run-b", &format!("t{j}"), 1, failed_at)).collect()).await;
    let before = w.t.snapshot().await;
    let cases = [
        (json!({"dryrun": true}), "dryrun"),
        (json!({"dry_run": true, "ignore_backof": true}), "ignore_backof"),
        (json!({"task_ids": ["t0"]}), "task_ids"),
        (json!({"dry_run": "true"}), "dry_run"),
        (json!({"max_tasks": "ten"}), "max_tasks"),
        (json!({"run_id": ["run-b"]}), "run_id"),
        (json!({"run_id": "run-b", "task_ids": "t0"}), "task_ids"),
        (json!([]), "$"),
    ];
    for (event, field) in cases {
        match parse_request(event.clone()) {
            Err(ArcError::InvalidInput { field: f, .. }) => assert_eq!(f, field, "{event}"),
            other => panic!("{event}: expected InvalidInput, got {other:?}"),
        }
    }
    // The built binary, through the Runtime API: the same errors, then a real sweep.
    let mut env = w.t.lambda_env();
    env.push(("STATE_MACHINE_ARN".into(), w.sm_arn.clone()));
    env.push(("CLOUDWATCH_NAMESPACE".into(), w.namespace.clone()));
    let outcomes =
        invoke_binary(&lambda_binary("sweeper"), &env, &[json!({"dryrun": true}), json!({"task_ids": ["t0"]})]);
    for o in &outcomes {
        assert_eq!(o.err_type(), Some("InvalidInput"), "{o:?}");
    }
    assert_eq!(w.t.snapshot().await, before, "a rejected request wrote something");
    assert!(executions(&w).await.is_empty());

    let event: Value =
        serde_json::from_str(include_str!("../../sweeper/fixtures/eventbridge-scheduled-event.json")).unwrap();
    let summary = invoke_binary(&lambda_binary("sweeper"), &env, &[event]).remove(0).ok();
    println!("sweep summary from the binary: {}", serde_json::to_string_pretty(&summary).unwrap());
    assert_eq!(summary["trigger"], "scheduled");
    assert_eq!(summary["requeued_total"], 2);
    assert_eq!(summary["executions_started"][0]["execution_name"], execution_name("run-b", 1));
    assert_eq!(executions(&w).await.len(), 1);
}

// ---------------------------------------------------------------- the retry execution's Initialize

#[tokio::test]
async fn the_retry_input_reopens_the_tasks_through_initialize() {
    let w = world(&[]).await;
    let r = "run-e2e";
    put_run(&w, r, "COMPLETED_WITH_ERRORS", None, 3).await;
    put_tasks(
        &w,
        vec![
            failed_task(r, "t0", 1, t0() - Duration::hours(1)),
            failed_task(r, "t1", 2, t0() - Duration::hours(2)),
            task_item(r, "ok", "COMPLETED", 0, None),
        ],
    )
    .await;
    sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    let name = execution_name(r, 1);
    let (_, input) = executions(&w).await.remove(&name).unwrap();
    let arn = attr(&run(&w, r).await, "execution_arn").to_owned();
    // What the state machine's InitializeRetry state passes: the input's fields + $$.Execution.Id.
    let payload = json!({
        "run_id": input.run_id, "task_ids": input.task_ids, "config_name": input.config_name,
        "retry": true, "execution_arn": arn,
    });
    arc_handlers::initialize::handle(w.t.env(), payload).await.json().expect("initialize retry");
    for id in ["t0", "t1"] {
        assert_eq!(attr(&task(&w, r, id).await, "status"), "PENDING", "{id}");
    }
    assert_eq!(attr(&task(&w, r, "ok").await, "status"), "COMPLETED");
    let rr = run(&w, r).await;
    assert_eq!(attr(&rr, "status"), "RUNNING");
    assert_eq!(attr(&rr, "execution_arn"), arn);
    // The retry execution is live and its tasks are in flight: nothing to repair or retry.
    w.clock.advance(Duration::hours(1));
    let out = sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    assert!(out.repaired.is_empty() && out.executions_started.is_empty(), "{out:#?}");
}

#[tokio::test]
async fn execution_already_exists_is_described_never_assumed_done() {
    let w = world(&[]).await;
    let old = t0() - Duration::hours(1);
    // Two runs whose generation-1 name is already taken (e.g. a retry_generation reset by hand):
    // one by an execution that ended, one by a live execution carrying only t0.
    let mut names = BTreeMap::new();
    for (r, stop_it) in [("run-x-ended", true), ("run-x-live", false)] {
        put_run(&w, r, "COMPLETED_WITH_ERRORS", None, 3).await;
        put_tasks(&w, (0..3).map(|j| failed_task(r, &format!("t{j}"), 1, old)).collect()).await;
        let input = RetryInput::new(r, "cfg-a", vec!["t0".into()]).to_json();
        let name = execution_name(r, 1);
        let ex =
            w.t.clients
                .sfn
                .start_execution()
                .state_machine_arn(&w.sm_arn)
                .name(&name)
                .input(input)
                .send()
                .await
                .unwrap();
        if stop_it {
            stop(&w, ex.execution_arn()).await;
        }
        names.insert(r, name);
    }
    let out = sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    assert!(out.errors.is_empty(), "{out:#?}");
    // Ended: not done. Every task is FAILED again (retry_count kept) and the run is not RUNNING.
    for j in 0..3 {
        let it = task(&w, "run-x-ended", &format!("t{j}")).await;
        assert_eq!((attr(&it, "status"), attr(&it, "retry_count")), ("FAILED", "1"));
    }
    assert_eq!(attr(&run(&w, "run-x-ended").await, "status"), "FAILED", "every task failed");
    // Live: the task it carries stays queued for it; the others go back to FAILED.
    assert_eq!(attr(&task(&w, "run-x-live", "t0").await, "status"), "RETRY_QUEUED");
    for id in ["t1", "t2"] {
        assert_eq!(attr(&task(&w, "run-x-live", id).await, "status"), "FAILED", "{id}");
    }
    assert_eq!(attr(&run(&w, "run-x-live").await, "status"), "RUNNING");
    // The ended run's next sweep uses a new name; still one execution per name.
    let next = sweep(&w.deps, manual(json!({"ignore_backoff": true}))).await.unwrap();
    let started: Vec<&str> = next.executions_started.iter().map(|e| e.execution_name.as_str()).collect();
    assert_eq!(started, vec![execution_name("run-x-ended", 2).as_str()], "{next:#?}");
    let ex = executions(&w).await;
    assert_eq!(ex.len(), 3);
    assert_eq!(ex[&names["run-x-ended"]].0, "ABORTED");
    assert_eq!(ex[&execution_name("run-x-ended", 2)].1.task_ids, vec!["t0", "t1", "t2"]);
}

#[tokio::test]
async fn an_unreadable_item_is_reported_and_the_rest_is_retried() {
    let w = world(&[]).await;
    let old = t0() - Duration::hours(1);
    put_run(&w, "run-ok", "COMPLETED_WITH_ERRORS", None, 1).await;
    put_run(&w, "run-bad", "COMPLETED_WITH_ERRORS", None, 1).await;
    let mut bad = failed_task("run-bad", "t0", 1, old);
    // An attribute the sweep reads (it projects only what its plan needs, so a bad cost_usd
    // would not even be read).
    bad.insert("retry_count".into(), s("lots"));
    put_tasks(&w, vec![failed_task("run-ok", "t0", 1, old), bad]).await;
    let out = sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    assert_eq!(out.requeued.keys().collect::<Vec<_>>(), vec!["run-ok"], "{out:#?}");
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].error_type, "CorruptItem");
    assert!(out.errors[0].message.contains("run-bad/t0"), "{}", out.errors[0].message);
    assert_eq!(attr(&task(&w, "run-bad", "t0").await, "status"), "FAILED");
}

// ---------------------------------------------------------------- the first sweep after a switch

#[tokio::test]
async fn old_failures_are_left_for_an_operator_and_exhausted_ones_made_permanent_once() {
    let w = world(&[("MAX_RETRIES", "3"), ("SWEEPER_MAX_AGE_HOURS", "72")]).await;
    let r = "run-cfg-a-20261120-090000-0000000b";
    put_run(&w, r, "COMPLETED_WITH_ERRORS", None, 4).await;
    put_tasks(
        &w,
        vec![
            failed_task(r, "young", 1, t0() - Duration::hours(5)),
            failed_task(r, "old", 1, t0() - Duration::hours(100)),
            // A worker with another MAX_RETRIES (or a lowered one) left it FAILED at 3.
            failed_task(r, "exhausted", 3, t0() - Duration::hours(5)),
            failed_task(r, "exhausted-old", 4, t0() - Duration::hours(200)),
        ],
    )
    .await;
    // A dry run says what the first scheduled sweep would do, and writes nothing.
    let before = w.t.snapshot().await;
    let dry = sweep(&w.deps, manual(json!({"dry_run": true}))).await.unwrap();
    assert_eq!(before, w.t.snapshot().await);
    let reasons: BTreeMap<&str, DeferReason> = dry.deferred.iter().map(|d| (d.task_id.as_str(), d.reason)).collect();
    assert_eq!(reasons.get("old"), Some(&DeferReason::TooOld), "{dry:#?}");
    assert_eq!(dry.requeued_total, 1);
    assert_eq!(dry.made_permanent.len(), 2);

    let out = sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    assert_eq!(out.requeued.get(r), Some(&1), "only the young failure: {out:#?}");
    assert_eq!(attr(&task(&w, r, "old").await, "status"), "FAILED");
    for id in ["exhausted", "exhausted-old"] {
        assert_eq!(attr(&task(&w, r, id).await, "status"), "FAILED_PERMANENT", "{id}");
    }
    assert_eq!(
        attr(&run(&w, r).await, "failed_tasks"),
        "4",
        "a finished run's figures already count its FAILED tasks: made permanent, not counted again"
    );
    // A second sweep does not count them again.
    let again = sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    assert!(again.made_permanent.is_empty(), "{again:#?}");
    assert_eq!(attr(&run(&w, r).await, "failed_tasks"), "4");

    // A manual request for the run retries the old failure whatever its age.
    stop(&w, &out.executions_started[0].execution_arn).await;
    sweep(&w.deps, SweepRequest::scheduled()).await.unwrap(); // repairs the stopped execution
    let manual_out = sweep(&w.deps, manual(json!({"run_id": r, "ignore_backoff": true}))).await.unwrap();
    let retried = executions(&w).await;
    let last = &manual_out.executions_started[0];
    assert!(retried[&last.execution_name].1.task_ids.contains(&"old".to_owned()), "{manual_out:#?}");
}

#[tokio::test]
async fn a_retry_input_initialize_would_reject_is_skipped_with_the_reason() {
    let w = world(&[]).await;
    let old = t0() - Duration::hours(1);
    // Legacy ids written by other tools: a config name with a space, a task id with a slash.
    put_run(&w, "run-legacy", "COMPLETED_WITH_ERRORS", None, 2).await;
    w.t.set_run("run-legacy", &[("config_name", s("gpt 4 (legacy)"))]).await;
    put_run(&w, "run-mixed", "COMPLETED_WITH_ERRORS", None, 2).await;
    put_tasks(
        &w,
        vec![
            failed_task("run-legacy", "t0", 1, old),
            failed_task("run-mixed", "ok-task", 1, old),
            failed_task("run-mixed", "bad/task", 1, old),
        ],
    )
    .await;
    let out = sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    let skipped: Vec<(&str, &str)> = out.skipped_runs.iter().map(|s| (s.run_id.as_str(), s.reason.as_str())).collect();
    assert_eq!(skipped.len(), 1, "{out:#?}");
    assert_eq!(skipped[0].0, "run-legacy");
    assert!(skipped[0].1.contains("config_name"), "{}", skipped[0].1);
    let bad: Vec<_> = out.deferred.iter().filter(|d| d.reason == DeferReason::InvalidId).collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].task_id, "bad/task");
    // One execution, for the valid task of run-mixed; none for run-legacy, on every sweep.
    let ex = executions(&w).await;
    assert_eq!(ex.len(), 1, "{ex:?}");
    assert_eq!(ex.values().next().unwrap().1.task_ids, vec!["ok-task"]);
    assert_eq!(attr(&task(&w, "run-legacy", "t0").await, "status"), "FAILED");
    let again = sweep(&w.deps, SweepRequest::scheduled()).await.unwrap();
    assert!(again.executions_started.iter().all(|e| e.run_id != "run-legacy"));
}
