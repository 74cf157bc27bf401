//! Switching an existing Python deployment to this product, against moto: the Python set's
//! tables exactly as its definitions create them (no `status-index` on the tasks table, a
//! rate-limits table) holding legacy runs without `total_input_tokens` / `total_output_tokens`.
//! A sweep fails with `IndexMissing` naming the fix; `arcctl doctor` shows ✗ with fixes;
//! `arcctl migrate status-index` and `arcctl migrate backfill-runs` (dry run first) repair
//! the tables; doctor passes; then a retry of a legacy run goes all the way through: the
//! sweep starts an execution, its Initialize re-opens the task, and the Python worker
//! (its faithful double) completes it, adding to the backfilled roll-ups.
//!
//! arcctl runs as the built binary (`cargo build --workspace` builds it), as in cli.rs.

use arc_integration_tests::runtime_api::{invoke_binary, Outcome};
use arc_integration_tests::JsonAnswer;
use arc_integration_tests::{lambda_binary, run_binary, Out, TestEnv};
use arc_shared::records::{n, s, Item};
use arc_shared::store::{batch_put, schema};
use arc_shared::time::SystemClock;
use arc_sweeper::{parse_request, sweep, SweepRequest};
use arc_worker_double::{python_isoformat, Behaviour, Completion, Worker};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ProvisionedThroughput, ScalarAttributeType,
};
use chrono::{Duration, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;
use std::sync::Arc;

fn arcctl(env: &[(String, String)], args: &[&str]) -> Out {
    run_binary("arcctl", env, args)
}

fn item(pairs: Vec<(&str, AttributeValue)>) -> Item {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// A run as the Python set's Initialize / Complete wrote it (PutItem): no token roll-ups.
async fn put_legacy_run(t: &TestEnv, run_id: &str, total: u64, completed: u64, failed: u64) {
    let created = python_isoformat(Utc::now() - Duration::days(10));
    let run = item(vec![
        ("run_id", s(run_id)),
        ("config_name", s("gpt-4o")),
        ("status", s("COMPLETED_WITH_ERRORS")),
        ("created_at", s(&created)),
        ("total_tasks", n(total)),
        ("completed_tasks", n(completed)),
        ("failed_tasks", n(failed)),
        ("total_cost_usd", AttributeValue::N("0.0421".into())),
    ]);
    t.clients.dynamodb.put_item().table_name(&t.config.runs_table).set_item(Some(run)).send().await.unwrap();
}

/// The legacy run's tasks: one COMPLETED, two FAILED by the Python worker ten days ago
/// (`retry_count` 1, its `error`, an old `updated_at`).
async fn put_legacy_tasks(t: &TestEnv, run_id: &str) {
    let old = python_isoformat(Utc::now() - Duration::days(10));
    let task = |id: &str, status: &str, extra: Vec<(&str, AttributeValue)>| {
        let mut it = item(vec![
            ("run_id", s(run_id)),
            ("task_id", s(id)),
            ("status", s(status)),
            ("created_at", s(&old)),
            ("updated_at", s(&old)),
        ]);
        it.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
        it
    };
    let items = vec![
        task(
            "00576224",
            "COMPLETED",
            vec![
                ("cost_usd", AttributeValue::N("0.0421".into())),
                ("tokens_input", n(1200)),
                ("tokens_output", n(300)),
                ("worker_id", s("4100@ip-10-0-1-23.ec2.internal")),
            ],
        ),
        task("009d5c81", "FAILED", vec![("retry_count", n(1)), ("error", s("RateLimitError: 429"))]),
        task("00d62c1b", "FAILED", vec![("retry_count", n(1)), ("error", s("Timeout"))]),
    ];
    batch_put(&t.clients.dynamodb, &t.config.tasks_table, items).await.unwrap();
}

fn check<'a>(doctor: &'a Value, name: &str) -> &'a Value {
    doctor["checks"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name}: {doctor:#}"))
}

async fn create_sweeper_schedule(t: &TestEnv, prefix: &str) {
    use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode, Target};
    let conf = arc_integration_tests::sdk_config(&t.endpoint).await;
    let scheduler = aws_sdk_scheduler::Client::new(&conf);
    scheduler.create_schedule_group().name(prefix).send().await.unwrap();
    scheduler
        .create_schedule()
        .name(format!("{prefix}-sweeper"))
        .group_name(prefix)
        .schedule_expression("rate(15 minutes)")
        .flexible_time_window(FlexibleTimeWindow::builder().mode(FlexibleTimeWindowMode::Off).build().unwrap())
        .target(
            Target::builder()
                .arn(format!("arn:aws:lambda:us-east-1:123456789012:function:{prefix}-sweeper"))
                .role_arn("arn:aws:iam::123456789012:role/scheduler")
                .input("{}")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_python_deployment_is_checked_migrated_and_then_retries_a_legacy_run() {
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let namespace = format!("ArcSwitchTest{suffix}");
    let t = TestEnv::python(&[("CLOUDWATCH_NAMESPACE", namespace.as_str())]).await;
    let sm_arn = t.create_state_machine(&format!("arc-switch-{suffix}")).await;
    let run_id = "run-gpt-4o-20261116-090000-5c0f3a1e";
    let done_run = "run-gpt-4o-20261115-090000-9a8b7c6d";
    put_legacy_run(&t, run_id, 3, 1, 2).await;
    put_legacy_tasks(&t, run_id).await;
    put_legacy_run(&t, done_run, 1, 1, 0).await;

    let mut env = t.lambda_env();
    env.push(("STATE_MACHINE_ARN".into(), sm_arn.clone()));
    env.push(("CLOUDWATCH_NAMESPACE".into(), namespace.clone()));
    env.push(("DYNAMODB_RATE_LIMIT_TABLE".into(), t.rate_limits_table()));

    let deps = t.sweep_deps(&sm_arn, Arc::new(SystemClock));

    // Before the migration: a sweep fails, naming the fix.
    let err = sweep(&deps, SweepRequest::scheduled()).await.expect_err("no status-index");
    assert_eq!(err.error_type(), "IndexMissing", "{err}");
    assert!(err.to_string().contains("arcctl migrate status-index"), "{err}");
    assert!(err.to_string().contains(&t.config.tasks_table), "{err}");
    let out = arcctl(&env, &["sweep", "--dry-run"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("(IndexMissing)") && out.stderr.contains("run: arcctl migrate status-index"),
        "{out:?}"
    );

    // The deployed sweeper (the built Lambda binary) fails its scheduled sweep the same way.
    let outcome = invoke_binary(&lambda_binary("sweeper"), &env, &[json!({})]).remove(0);
    match &outcome {
        Outcome::Err { error_type, error_message } => {
            assert_eq!(error_type, "IndexMissing", "{outcome:?}");
            assert!(error_message.ends_with("run: arcctl migrate status-index"), "{outcome:?}");
        }
        Outcome::Ok(v) => panic!("the sweep succeeded without status-index: {v}"),
    }

    // doctor: ✗ on status-index and the roll-ups, each with its fix; the rest passes.
    let out = arcctl(&env, &["doctor", "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    let v = out.json();
    assert_eq!(v["ok"], false);
    let status_index = check(&v, "status-index");
    assert_eq!(status_index["ok"], false);
    assert_eq!(status_index["fix"], "arcctl migrate status-index");
    let rollups = check(&v, "run roll-ups");
    assert_eq!(rollups["ok"], false);
    assert!(rollups["detail"].as_str().unwrap().contains("2 lack a roll-up"), "{rollups}");
    assert!(rollups["detail"].as_str().unwrap().contains("total_input_tokens 2"), "{rollups}");
    assert_eq!(rollups["fix"], "arcctl migrate backfill-runs", "{rollups}");
    // The breakers table is the module's own: missing until it is applied, which is its fix.
    let breakers = check(&v, "breakers table");
    assert_eq!((breakers["ok"].as_bool(), breakers["fix"].as_str()), (Some(false), Some("terraform apply")), "{v:#}");
    for name in ["runs table", "tasks table", "config-created-index", "state machine", "rate-limits table"] {
        assert_eq!(check(&v, name)["ok"], true, "{name}: {v:#}");
        assert!(check(&v, name).get("fix").is_none(), "{name}");
    }
    let out = arcctl(&env, &["doctor"]);
    println!("$ arcctl doctor   (before the migration)\n{}{}(exit {})", out.stdout, out.stderr, out.code);
    assert_eq!(out.code, 1, "{out:?}");
    let line = |prefix: &str| {
        out.stdout.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}: {out:?}"))
    };
    assert!(line("✗ status-index").contains("has no GSI status-index (the sweeper queries it"), "{}", out.stdout);
    assert!(line("✓ config-created-index").contains("config_name (HASH) / created_at (RANGE)"), "{}", out.stdout);
    assert!(out.stdout.contains("fix: arcctl migrate status-index"), "{}", out.stdout);
    assert!(out.stdout.contains("fix: arcctl migrate backfill-runs"), "{}", out.stdout);
    assert!(out.stderr.contains("3 of 8 checks failed"), "{}", out.stderr);

    // The sweeper Lambda and its schedule: the schedule is there (in the module's group), the
    // function is not.
    let prefix = format!("arc-switch-{suffix}");
    create_sweeper_schedule(&t, &prefix).await;
    let function = format!("{prefix}-sweeper");
    let v = arcctl(&env, &["doctor", "--json", "--function", &function]).json();
    assert_eq!(check(&v, "sweeper function")["ok"], false, "{v:#}");
    assert_eq!(check(&v, "sweeper function")["fix"], "terraform apply", "{v:#}");
    assert_eq!(check(&v, "sweeper schedule")["ok"], true, "{v:#}");
    assert!(check(&v, "sweeper schedule")["detail"].as_str().unwrap().contains("rate(15 minutes), ENABLED"), "{v:#}");
    let v = arcctl(&env, &["doctor", "--json", "--function", "arc-nowhere-sweeper"]).json();
    assert_eq!(check(&v, "sweeper schedule")["ok"], false, "{v:#}");

    // migrate status-index: created and ACTIVE; again: nothing to do.
    let out = arcctl(&env, &["migrate", "status-index", "--poll-seconds", "1"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("status-index on") && out.stdout.contains("created and ACTIVE"), "{out:?}");
    assert!(out.stderr.contains("IndexStatus ACTIVE"), "progress: {}", out.stderr);
    let out = arcctl(&env, &["migrate", "status-index"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("already there and ACTIVE"), "{out:?}");
    let desc = t.clients.dynamodb.describe_table().table_name(&t.config.tasks_table).send().await.unwrap();
    let table = desc.table().unwrap();
    let gsi = table.global_secondary_indexes().iter().find(|g| g.index_name() == Some("status-index")).unwrap();
    assert_eq!(gsi.projection().and_then(|p| p.projection_type()), Some(&ProjectionType::All));
    // The table's own key definitions are kept beside the index's.
    let defs: Vec<&str> = table.attribute_definitions().iter().map(|d| d.attribute_name()).collect();
    for k in ["run_id", "task_id", "status", "updated_at"] {
        assert!(defs.contains(&k), "{defs:?}");
    }

    // backfill-runs --dry-run: reports both runs, writes nothing.
    let before = t.snapshot().await;
    let out = arcctl(&env, &["migrate", "backfill-runs", "--dry-run", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    assert_eq!(
        (v["dry_run"].as_bool(), v["scanned"].as_u64(), v["lacking"].as_u64(), v["updated"].as_u64()),
        (Some(true), Some(2), Some(2), Some(0))
    );
    let listed: Vec<&str> = v["runs"].as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert!(listed.contains(&run_id) && listed.contains(&done_run), "{v:#}");
    assert_eq!(v["runs"][0]["missing"], json!(["total_input_tokens", "total_output_tokens"]));
    let out = arcctl(&env, &["migrate", "backfill-runs", "--dry-run"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("would update 2"), "{}", out.stdout);
    assert!(out.stderr.contains("--start-after"), "progress names the resume key: {}", out.stderr);
    assert_eq!(t.snapshot().await, before, "a dry run wrote something");

    // Deploying the module (step 4 of the cutover) creates the breakers table beside the
    // adopted ones.
    schema::create_breakers_table(&t.clients.dynamodb, &t.config.breakers_table).await.unwrap();

    // backfill-runs: both updated; again: nothing lacking (idempotent); resuming after a key works.
    let out = arcctl(&env, &["migrate", "backfill-runs", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    assert_eq!((v["scanned"].as_u64(), v["lacking"].as_u64(), v["updated"].as_u64()), (Some(2), Some(2), Some(2)));
    let run = t.tables().require_run(run_id).await.unwrap();
    assert_eq!((run.total_input_tokens, run.total_output_tokens), (Some(0), Some(0)));
    assert_eq!((run.completed_tasks, run.failed_tasks), (1, 2), "existing roll-ups are kept");
    assert_eq!(run.total_cost_usd, Some(Decimal::from_str("0.0421").unwrap()));
    let v = arcctl(&env, &["migrate", "backfill-runs", "--json"]).json();
    assert_eq!((v["scanned"].as_u64(), v["lacking"].as_u64(), v["updated"].as_u64()), (Some(2), Some(0), Some(0)));
    let out = arcctl(&env, &["migrate", "backfill-runs", "--start-after", run_id, "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.json()["scanned"].as_u64().unwrap() <= 2);

    // doctor: every check passes.
    let out = arcctl(&env, &["doctor", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    assert_eq!(v["ok"], true, "{v:#}");
    assert!(v["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true && c.get("fix").is_none()), "{v:#}");
    let out = arcctl(&env, &["doctor"]);
    println!("$ arcctl doctor   (after the migration)\n{}{}(exit {})", out.stdout, out.stderr, out.code);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.lines().filter(|l| l.starts_with('✓')).count() == 8, "{}", out.stdout);
    assert!(out.stdout.ends_with("all 8 checks passed\n"), "{}", out.stdout);

    // A scheduled sweep now works: the legacy failures are older than SWEEPER_MAX_AGE_HOURS
    // and stay deferred (too_old).
    let summary = sweep(&deps, parse_request(json!({"dry_run": true})).unwrap()).await.unwrap();
    assert_eq!((summary.scanned, summary.due), (2, 0), "{summary:#?}");
    assert!(summary.executions_started.is_empty());

    // A manual retry of the legacy run starts one execution with both failed tasks.
    let summary =
        sweep(&deps, parse_request(json!({"run_id": run_id, "ignore_backoff": true})).unwrap()).await.unwrap();
    assert!(summary.errors.is_empty(), "{summary:#?}");
    assert_eq!(summary.executions_started.len(), 1, "{summary:#?}");
    let started = &summary.executions_started[0];
    assert_eq!(started.tasks, 2);
    let execution =
        t.clients.sfn.describe_execution().execution_arn(&started.execution_arn).send().await.expect("execution");
    let mut input: Value = serde_json::from_str(execution.input().expect("input")).unwrap();
    assert_eq!(input["retry"], true);
    assert_eq!(input["run_id"], run_id);

    // The retry's Initialize (InitializeRetry's payload: the input and the execution) re-opens
    // the tasks.
    let obj = input.as_object_mut().unwrap();
    obj.remove("triggered_by");
    obj.insert("execution_arn".into(), json!(started.execution_arn));
    let init = arc_handlers::initialize::handle(t.env(), input).await.json().expect("initialize retry");
    assert_eq!(init["retry"], true, "{init}");
    let reopened: Vec<&str> = init["task_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(reopened, ["009d5c81", "00d62c1b"], "{init}");
    let task = t.tables().get_task(run_id, "009d5c81").await.unwrap().unwrap();
    assert_eq!(task.status.as_str(), "PENDING");

    // The Python worker completes a re-opened task: its roll-up arithmetic now works.
    let worker =
        Worker::new(t.clients.dynamodb.clone(), &t.config.runs_table, &t.config.tasks_table, Arc::new(SystemClock));
    let job = worker
        .run_job(
            run_id,
            "009d5c81",
            &[Behaviour::Complete(Completion {
                cost_usd: Decimal::from_str("0.0105").unwrap(),
                tokens_input: 900,
                tokens_output: 250,
                result_s3_key: None,
            })],
        )
        .await;
    assert!(job.succeeded, "{job:#?}");
    let task = t.tables().get_task(run_id, "009d5c81").await.unwrap().unwrap();
    assert_eq!(task.status.as_str(), "COMPLETED");
    let run = t.tables().require_run(run_id).await.unwrap();
    assert_eq!(run.completed_tasks, 2);
    assert_eq!(run.total_input_tokens, Some(900));
    assert_eq!(run.total_output_tokens, Some(250));
    assert_eq!(run.total_cost_usd, Some(Decimal::from_str("0.0526").unwrap()));
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build().unwrap()
}

fn attr(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build().unwrap()
}

fn with_tables(t: &TestEnv, runs: &str, tasks: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> =
        t.lambda_env().into_iter().filter(|(k, _)| k != "RUNS_TABLE" && k != "TASKS_TABLE").collect();
    env.push(("RUNS_TABLE".into(), runs.to_owned()));
    env.push(("TASKS_TABLE".into(), tasks.to_owned()));
    env
}

#[tokio::test]
async fn migrations_refuse_other_tables_size_a_provisioned_index_and_recreate_a_wrong_one() {
    let t = TestEnv::python(&[]).await;
    let db = &t.clients.dynamodb;
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();

    // Not our tables: nothing changed, exit 1.
    let env = with_tables(&t, &t.config.runs_table, &t.rate_limits_table());
    let out = arcctl(&env, &["migrate", "status-index"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("does not look like an arc tasks table"), "{}", out.stderr);
    let env = with_tables(&t, &t.config.tasks_table, &t.config.tasks_table);
    let out = arcctl(&env, &["migrate", "backfill-runs"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("does not look like an arc runs table"), "{}", out.stderr);
    let v = arcctl(&env, &["doctor", "--json"]).json();
    assert_eq!(check(&v, "runs table")["ok"], false, "{v:#}");
    assert_eq!(check(&v, "state machine")["ok"], false);
    assert!(check(&v, "state machine")["fix"].as_str().unwrap().contains("export STATE_MACHINE_ARN="), "{v:#}");
    let missing_limits = format!("no_such_limits_{suffix}");
    let v = arcctl(&env, &["doctor", "--json", "--rate-limits-table", &missing_limits]).json();
    assert!(check(&v, "rate-limits table")["fix"].as_str().unwrap().starts_with("aws dynamodb create-table"), "{v:#}");

    // A provisioned tasks table: the index gets the table's capacity.
    let provisioned = format!("tasks_provisioned_{suffix}");
    db.create_table()
        .table_name(&provisioned)
        .attribute_definitions(attr("run_id"))
        .attribute_definitions(attr("task_id"))
        .key_schema(key("run_id", KeyType::Hash))
        .key_schema(key("task_id", KeyType::Range))
        .provisioned_throughput(
            ProvisionedThroughput::builder().read_capacity_units(7).write_capacity_units(3).build().unwrap(),
        )
        .send()
        .await
        .unwrap();
    let env = with_tables(&t, &t.config.runs_table, &provisioned);
    let out = arcctl(&env, &["migrate", "status-index", "--poll-seconds", "1"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("7 RCU / 3 WCU"), "{}", out.stderr);
    let desc = db.describe_table().table_name(&provisioned).send().await.unwrap();
    let gsi = desc
        .table()
        .unwrap()
        .global_secondary_indexes()
        .iter()
        .find(|g| g.index_name() == Some("status-index"))
        .cloned()
        .unwrap();
    let pt = gsi.provisioned_throughput().unwrap();
    assert_eq!((pt.read_capacity_units(), pt.write_capacity_units()), (Some(7), Some(3)));

    // A status-index of the wrong shape (KEYS_ONLY): refused without --recreate, rebuilt with it.
    let wrong = format!("tasks_keys_only_{suffix}");
    db.create_table()
        .table_name(&wrong)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .attribute_definitions(attr("run_id"))
        .attribute_definitions(attr("task_id"))
        .attribute_definitions(attr("status"))
        .attribute_definitions(attr("updated_at"))
        .key_schema(key("run_id", KeyType::Hash))
        .key_schema(key("task_id", KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("status-index")
                .key_schema(key("status", KeyType::Hash))
                .key_schema(key("updated_at", KeyType::Range))
                .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let env = with_tables(&t, &t.config.runs_table, &wrong);
    let v = arcctl(&env, &["doctor", "--json"]).json();
    assert_eq!(check(&v, "status-index")["fix"], "arcctl migrate status-index --recreate", "{v:#}");
    assert!(check(&v, "status-index")["detail"].as_str().unwrap().contains("KEYS_ONLY"), "{v:#}");
    let out = arcctl(&env, &["migrate", "status-index"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("--recreate"), "{}", out.stderr);
    let out = arcctl(&env, &["migrate", "status-index", "--recreate", "--poll-seconds", "1"]);
    assert_eq!(out.code, 0, "{out:?}");
    let v = arcctl(&env, &["doctor", "--json"]).json();
    assert_eq!(check(&v, "status-index")["ok"], true, "{v:#}");
}
