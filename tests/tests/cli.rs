//! The operator CLI (`arcctl`) and the local lifecycle (`arc-local`), as built binaries against
//! moto (issue 5): every arcctl command, bad arguments (exit 2), a run id that does not exist
//! (exit 3), and a small lifecycle whose final accounting must add up.
//!
//! The binaries come from `cargo build -p arc-cli` (the test command builds every binary first).

use arc_integration_tests::{repo_root, run_binary, Out, TestEnv};
use arc_shared::records::{n, s, Item};
use arc_shared::store::batch_put;
use arc_shared::time::format_ts;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, TimeZone, Utc};
use serde_json::Value;

fn run(binary: &str, env: &[(String, String)], args: &[&str]) -> Out {
    run_binary(binary, env, args)
}

struct World {
    t: TestEnv,
    env: Vec<(String, String)>,
    sm_arn: String,
}

async fn world() -> World {
    let t = TestEnv::new(&[]).await;
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let sm_arn = t.create_state_machine(&format!("arcctl-{suffix}")).await;
    let mut env = t.lambda_env();
    env.push(("CLOUDWATCH_NAMESPACE".into(), format!("ArcCliTest{suffix}")));
    World { t, env, sm_arn }
}

impl World {
    fn with_state_machine(&self) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.push(("STATE_MACHINE_ARN".into(), self.sm_arn.clone()));
        env
    }

    async fn put_run(&self, run_id: &str, config: &str, created_hours_ago: i64, status: &str) {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        let item: Item = [
            ("run_id", s(run_id)),
            ("config_name", s(config)),
            ("status", s(status)),
            ("created_at", s(format_ts(t0 - Duration::hours(created_hours_ago)))),
            ("total_tasks", n(3)),
            ("completed_tasks", n(1)),
            ("failed_tasks", n(2)),
            ("total_cost_usd", AttributeValue::N("0.123456789012345678".into())),
            ("accuracy", n(1)),
            ("results_s3_key", s(format!("runs/{run_id}/results/aggregated.json"))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        self.t
            .clients
            .dynamodb
            .put_item()
            .table_name(&self.t.config.runs_table)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }

    /// Three tasks: one COMPLETED, one FAILED (retryable, failed a minute ago: its backoff of
    /// at least 150 s has not elapsed), one FAILED_PERMANENT.
    async fn put_tasks(&self, run_id: &str) {
        let failed_at = format_ts(Utc::now() - Duration::minutes(1));
        let cause = r#"{"JobId":"job-9","StatusReason":"Essential container in task exited","Attempts":[{"Container":{"ExitCode":137}}]}"#;
        let task = |id: &str, status: &str, extra: Vec<(&str, AttributeValue)>| -> Item {
            let mut item: Item =
                [("run_id", s(run_id)), ("task_id", s(id)), ("status", s(status)), ("updated_at", s(&failed_at))]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
            item.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
            item
        };
        let failure = |count: u32| {
            vec![
                ("retry_count", n(count)),
                ("last_error_type", s("States.TaskFailed")),
                ("last_error_cause", s(cause)),
                ("last_error_at", s(&failed_at)),
                ("next_retry_at", s(format_ts(Utc::now() + Duration::hours(1)))),
            ]
        };
        let items = vec![
            task(
                "t-done",
                "COMPLETED",
                vec![
                    ("cost_usd", AttributeValue::N("0.123456789012345678".into())),
                    ("is_correct", AttributeValue::Bool(true)),
                ],
            ),
            task("t-retry", "FAILED", failure(1)),
            task("t-dead", "FAILED_PERMANENT", failure(3)),
        ];
        batch_put(&self.t.clients.dynamodb, &self.t.config.tasks_table, items).await.unwrap();
    }

    async fn task_status(&self, run_id: &str, task_id: &str) -> String {
        let t = self.t.tables().get_task(run_id, task_id).await.unwrap().expect("task");
        t.status.as_str().to_owned()
    }

    async fn executions(&self) -> usize {
        let list = self.t.clients.sfn.list_executions().state_machine_arn(&self.sm_arn).send().await.unwrap();
        list.executions().len()
    }
}

#[tokio::test]
async fn runs_list_queries_the_config_index_newest_first_or_scans_up_to_the_limit() {
    let w = world().await;
    w.put_run("run-a-old", "cfg-a", 30, "COMPLETED").await;
    w.put_run("run-a-new", "cfg-a", 1, "COMPLETED_WITH_ERRORS").await;
    w.put_run("run-a-mid", "cfg-a", 10, "FAILED").await;
    w.put_run("run-b-1", "cfg-b", 5, "RUNNING").await;

    let out = run("arcctl", &w.env, &["runs", "list", "--config", "cfg-a", "--json"]);
    assert_eq!(out.code, 0);
    let ids: Vec<String> =
        out.json().as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["run-a-new", "run-a-mid", "run-a-old"]);
    // Money stays an exact JSON number.
    assert!(out.stdout.contains("\"total_cost_usd\": 0.123456789012345678"), "{}", out.stdout);

    let out = run("arcctl", &w.env, &["runs", "list", "--config", "cfg-a", "--limit", "2", "--json"]);
    let ids: Vec<String> =
        out.json().as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["run-a-new", "run-a-mid"]);

    let out = run("arcctl", &w.env, &["runs", "list", "--limit", "3", "--json"]);
    assert_eq!(out.code, 0);
    assert_eq!(out.json().as_array().unwrap().len(), 3);

    let out = run("arcctl", &w.env, &["runs", "list"]);
    assert_eq!(out.code, 0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("RUN ") && lines[0].contains("STATUS") && lines[0].contains("COST"), "{}", out.stdout);
    assert_eq!(lines.len(), 5, "{}", out.stdout);
    assert!(lines[1].starts_with("run-a-new "), "newest first: {}", out.stdout);
    assert!(out.stdout.contains("$0.123456789012345678"), "{}", out.stdout);

    let out = run("arcctl", &w.env, &["runs", "list", "--config", "no-such-config", "--json"]);
    assert_eq!((out.code, out.json()), (0, Value::Array(vec![])));
}

#[tokio::test]
async fn runs_show_counts_statuses_and_lists_failed_tasks_with_their_last_error() {
    let w = world().await;
    w.put_run("run-s", "cfg-s", 2, "COMPLETED_WITH_ERRORS").await;
    w.put_tasks("run-s").await;

    let out = run("arcctl", &w.env, &["runs", "show", "run-s"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(&format!("s3://{}/runs/run-s/results/aggregated.json", w.t.bucket)), "{}", out.stdout);
    assert!(out.stdout.contains("COMPLETED_WITH_ERRORS"));
    assert!(out.stdout.contains("$0.123456789012345678"));
    assert!(out.stdout.contains("100.0%"));
    let row = |task: &str| {
        out.stdout.lines().find(|l| l.starts_with(task)).unwrap_or_else(|| panic!("{task}: {}", out.stdout))
    };
    assert!(row("t-retry").contains("FAILED"));
    assert!(row("t-retry").contains("Essential container in task exited (exit 137)"));
    assert!(row("t-dead").contains("FAILED_PERMANENT") && row("t-dead").contains("never"));
    assert!(!out.stdout.lines().any(|l| l.starts_with("t-done")), "completed tasks are not listed as failed");

    let v = run("arcctl", &w.env, &["runs", "show", "run-s", "--json"]).json();
    assert_eq!(v["status_counts"]["COMPLETED"], 1);
    assert_eq!(v["status_counts"]["FAILED"], 1);
    assert_eq!(v["status_counts"]["FAILED_PERMANENT"], 1);
    assert_eq!(v["run"]["status"], "COMPLETED_WITH_ERRORS");
    assert_eq!(v["tasks_cost_usd"].to_string(), "0.123456789012345678");
    let failed = v["failed_tasks"].as_array().unwrap();
    assert_eq!(failed.len(), 2);
    let retry = failed.iter().find(|t| t["task_id"] == "t-retry").unwrap();
    assert_eq!(retry["retry_count"], 1);
    assert!(retry["next_retry_at"].is_string());
    assert!(retry["last_error_cause"].as_str().unwrap().contains("job-9"));
}

#[tokio::test]
async fn sweep_dry_run_writes_nothing_then_retry_requeues_and_starts_one_execution() {
    let w = world().await;
    w.put_run("run-r", "cfg-r", 2, "COMPLETED_WITH_ERRORS").await;
    w.put_tasks("run-r").await;
    let env = w.with_state_machine();
    let before = w.t.snapshot().await;

    // Backoff not elapsed: nothing is due.
    let out = run("arcctl", &env, &["sweep", "--dry-run", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    assert_eq!(
        (v["dry_run"].as_bool(), v["due"].as_u64(), v["requeued_total"].as_u64()),
        (Some(true), Some(0), Some(0))
    );

    let out = run("arcctl", &env, &["sweep", "--dry-run", "--now", "--run-id", "run-r"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("dry run: nothing written"), "{}", out.stdout);
    assert!(out.stdout.contains("re-queued 1"), "{}", out.stdout);
    assert_eq!(w.t.snapshot().await, before, "a dry run wrote something");
    assert_eq!(w.executions().await, 0);

    // --max-tasks bounds a sweep: of two due tasks (two runs), one is re-queued, one deferred.
    w.put_run("run-r2", "cfg-r", 2, "COMPLETED_WITH_ERRORS").await;
    w.put_tasks("run-r2").await;
    let v = run("arcctl", &env, &["sweep", "--dry-run", "--now", "--max-tasks", "1", "--json"]).json();
    assert_eq!(
        (v["due"].as_u64(), v["requeued_total"].as_u64(), v["deferred_count"].as_u64()),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(v["deferred"][0]["reason"], "max_tasks");
    assert_eq!(w.executions().await, 0);

    // A task id that is not a FAILED task is reported and left alone.
    let out = run("arcctl", &env, &["retry", "run-r", "--task-id", "t-done", "--task-id", "t-retry", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["requeued_total"], 1);
    assert_eq!(v["executions_started"].as_array().unwrap().len(), 1);
    assert_eq!(v["executions_started"][0]["run_id"], "run-r");
    assert!(out.stderr.contains("t-done"), "{}", out.stderr);
    assert_eq!(w.task_status("run-r", "t-retry").await, "RETRY_QUEUED");
    assert_eq!(w.task_status("run-r", "t-dead").await, "FAILED_PERMANENT");
    assert_eq!(w.task_status("run-r", "t-done").await, "COMPLETED");
    assert_eq!(w.executions().await, 1);

    // The deployed sweeper path: an unknown function is a clear error (exit 1), nothing started.
    let out = run("arcctl", &env, &["sweep", "--now", "--invoke", "arc-no-such-sweeper"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("arc-no-such-sweeper"), "{}", out.stderr);
    assert_eq!(w.executions().await, 1);
}

#[tokio::test]
async fn bad_arguments_exit_2_and_unknown_runs_exit_3() {
    let w = world().await;
    let env = w.with_state_machine();
    for args in [
        vec!["runs", "list", "--limit", "0"],
        vec!["runs", "list", "--limit", "many"],
        vec!["runs", "list", "--config", "has space"],
        vec!["runs", "show"],
        vec!["runs", "show", "run/../x"],
        vec!["sweep", "--task-id", "t1"],
        vec!["sweep", "--max-tasks", "0"],
        vec!["sweep", "--dryrun"],
        vec!["retry"],
        vec!["retry", "run-x", "--task-id", "a.b"],
        vec!["launch"],
    ] {
        let out = run("arcctl", &env, &args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(out.stderr.contains("error"), "{args:?}: {}", out.stderr);
    }
    // A local sweep needs the state machine.
    let out = run("arcctl", &w.env, &["sweep", "--dry-run"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("STATE_MACHINE_ARN"), "{}", out.stderr);
    // Malformed configuration names the variable.
    let mut bad = w.env.clone();
    bad.push(("MAX_RETRIES".into(), "abc".into()));
    let out = run("arcctl", &bad, &["runs", "list"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("MAX_RETRIES"), "{}", out.stderr);

    for args in [
        vec!["runs", "show", "run-missing"],
        vec!["runs", "show", "run-missing", "--json"],
        vec!["retry", "run-missing"],
        vec!["sweep", "--run-id", "run-missing", "--now"],
    ] {
        let out = run("arcctl", &env, &args);
        assert_eq!(out.code, 3, "{args:?}: {out:?}");
        assert!(out.stderr.contains("run-missing"), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert_eq!(w.executions().await, 0);
    assert!(w.t.snapshot().await.is_empty());
}

#[tokio::test]
async fn arc_local_outage_shows_the_breaker_opening_probing_and_closing_in_one_run() {
    let endpoint = arc_integration_tests::moto_endpoint();
    let env = vec![("AWS_ENDPOINT_URL".to_owned(), endpoint)];
    let out = run(
        "arc-local",
        &env,
        &["--tasks", "30", "--seed", "11", "--failure-rate", "0", "--outage", "3", "--max-rounds", "20"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    // Printed per round, in this order: opened, half-opened (probe fails: the provider is
    // still down), re-opened, half-opened again (the provider is back), closed.
    let at = |needle: &str, from: usize| {
        out.stdout[from..]
            .find(needle)
            .map(|i| i + from)
            .unwrap_or_else(|| panic!("{needle:?} after {from}: {}", out.stdout))
    };
    let opened = at("(opened now)", 0);
    let half = at("(half_opened now)", opened);
    let reopened = at("(reopened now)", half);
    let half2 = at("(half_opened now)", reopened);
    let closed = at("(closed now)", half2);
    assert!(out.stdout[opened..].contains("30 of 30 tasks that ended in the last 1800 s failed for the provider"));
    assert!(closed > half2);
    let last = out.stdout.lines().last().unwrap_or("");
    assert!(last.starts_with("accounting OK: 30 tasks = 30 completed + 0 failed permanently"), "{}", out.stdout);
}

#[tokio::test]
async fn arc_local_runs_a_small_lifecycle_to_matching_totals() {
    // Against this test process's emulator; the lifecycle makes its own tables and bucket.
    let endpoint = arc_integration_tests::moto_endpoint();
    let env = vec![("AWS_ENDPOINT_URL".to_owned(), endpoint), ("MAX_RETRIES".to_owned(), "3".to_owned())];
    let out = run("arc-local", &env, &["--tasks", "12", "--seed", "7", "--failure-rate", "0.6"]);
    assert_eq!(out.code, 0, "{out:?}");
    let last = out.stdout.lines().last().unwrap_or("");
    assert!(last.starts_with("accounting OK: 12 tasks = "), "{}", out.stdout);
    // The seed fixes every outcome: the same split every time.
    assert!(last.contains("12 tasks = 10 completed + 2 failed permanently"), "{last}");
    assert!(out.stdout.contains("round 0: execution of run run-local-sim-"), "{}", out.stdout);
    assert!(out.stdout.contains("report              s3://arc-local-results-"), "{}", out.stdout);
    assert!(out.stderr.contains("12/12"), "progress bar: {}", out.stderr);

    let out = run("arc-local", &env, &["--tasks", "0"]);
    assert_eq!(out.code, 2, "{out:?}");
    let out = run("arc-local", &env, &["--failure-rate", "2"]);
    assert_eq!(out.code, 2, "{out:?}");
    // Malformed configuration fails before anything is started, naming the variable.
    let bad = vec![
        ("AWS_ENDPOINT_URL".to_owned(), "http://127.0.0.1:9".to_owned()),
        ("MAX_RETRIES".to_owned(), "abc".to_owned()),
    ];
    let out = run("arc-local", &bad, &["--tasks", "2"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("MAX_RETRIES"), "{}", out.stderr);
    assert!(repo_root().join("scripts/moto.sh").exists());
}
