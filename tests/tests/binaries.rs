//! The built Lambda binaries, driven through a local Lambda Runtime API: the deployed
//! artifact's JSON in and out, cold start included.

use arc_integration_tests::chaos::{scenario, Scenario};
use arc_integration_tests::runtime_api::{invoke_binary, Outcome};
use arc_integration_tests::{lambda_binary, TestEnv};
use arc_shared::records::s;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use std::process::Command;

#[tokio::test]
async fn the_four_handler_binaries_serve_a_whole_run() {
    let t = TestEnv::new(&[]).await;
    let env = t.lambda_env();
    let arn = "arn:aws:states:us-east-1:123456789012:execution:arc:bin-1";
    let init_event = json!({"config_name": "bin-cfg", "task_ids": ["t1", "t2", "t3"], "execution_arn": arn,
                            "execution_start_time": "2026-11-26T13:00:00Z", "triggered_by": "test"});
    let out = tokio::task::spawn_blocking({
        let env = env.clone();
        move || {
            invoke_binary(
                &lambda_binary("initialize"),
                &env,
                &[init_event.clone(), json!({"config_name": "bin-cfg"}), json!("just a string"), init_event],
            )
        }
    })
    .await
    .unwrap();
    for o in &out {
        println!("initialize -> {o:?}");
    }
    let first = out[0].clone().ok();
    assert_eq!(first["total_tasks"], 3);
    assert_eq!(first["task_ids"], json!(["t1", "t2", "t3"]));
    assert_eq!(out[1].err_type(), Some("InvalidInput"));
    assert!(matches!(&out[1], Outcome::Err { error_message, .. } if error_message.starts_with("task_ids:")));
    assert_eq!(out[2].err_type(), Some("InvalidInput"), "a malformed event reaches our parser");
    assert_eq!(out[3].clone().ok(), first, "a repeated Initialize of one execution answers the same");
    let run_id = first["run_id"].as_str().unwrap().to_owned();

    // Complete t1 and t2 as the worker does; t3's Batch job fails.
    for (task, correct) in [("t1", true), ("t2", false)] {
        t.set_task(
            &run_id,
            task,
            &[
                ("status", s("COMPLETED")),
                ("cost_usd", AttributeValue::N("0.015".into())),
                ("is_correct", AttributeValue::Bool(correct)),
            ],
        )
        .await;
    }
    let cause = json!({"JobId": "job-t3", "StatusReason": "Essential container in task exited",
                       "Attempts": [{"Container": {"ExitCode": 1}}]})
    .to_string();
    let run = run_id.clone();
    let he = tokio::task::spawn_blocking({
        let env = env.clone();
        move || {
            invoke_binary(
                &lambda_binary("handle-error"),
                &env,
                &[
                    json!({"run_id": run, "task_id": "t3", "error": {"Error": "States.TaskFailed", "Cause": cause}}),
                    json!({"run_id": run, "task_id": "nope", "error": {"Error": "States.TaskFailed", "Cause": "x"}}),
                ],
            )
        }
    })
    .await
    .unwrap();
    for o in &he {
        println!("handle-error -> {o:?}");
    }
    let failed = he[0].clone().ok();
    assert_eq!(failed["status"], "RETRY_SCHEDULED");
    assert_eq!(failed["retry_count"], 1);
    assert_eq!(failed["job_id"], "job-t3");
    assert_eq!(he[1].err_type(), Some("TaskNotFound"));

    let run = run_id.clone();
    let agg = tokio::task::spawn_blocking({
        let env = env.clone();
        move || invoke_binary(&lambda_binary("aggregate"), &env, &[json!({"run_id": run, "execution_arn": arn})])
    })
    .await
    .unwrap()
    .remove(0)
    .ok();
    println!("aggregate -> {agg}");
    assert_eq!(agg["completed_tasks"], 2);
    assert_eq!(agg["failed_tasks"], 1);
    assert_eq!(agg["retries_pending"], 1);
    assert_eq!(agg["accuracy"], 0.5);
    assert_eq!(agg["total_cost_usd"].to_string(), "0.03");

    let run = run_id.clone();
    let done = tokio::task::spawn_blocking({
        let env = env.clone();
        let agg = agg.clone();
        move || {
            let ev = json!({"run_id": run, "aggregation": agg, "execution_arn": arn});
            invoke_binary(&lambda_binary("complete"), &env, &[ev.clone(), ev])
        }
    })
    .await
    .unwrap();
    for o in &done {
        println!("complete -> {o:?}");
    }
    let c1 = done[0].clone().ok();
    let c2 = done[1].clone().ok();
    assert_eq!(c1["status"], "COMPLETED_WITH_ERRORS");
    assert_eq!(c1["final_metrics"]["total_cost_usd"].to_string(), "0.03");
    assert_eq!(c1["metrics_published"], true);
    assert_eq!(c2["completed_at"], c1["completed_at"]);
    assert_eq!(c2["metrics_published"], false);
}

#[test]
fn a_malformed_setting_fails_cold_start_naming_the_variable() {
    for name in ["initialize", "handle-error", "aggregate", "complete"] {
        let out = Command::new(lambda_binary(name))
            .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("MAX_RETRIES", "abc")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name} must not start");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("MAX_RETRIES"), "{name}: {text}");
    }
}

/// Credentials as a deployed function has them (its role's temporary keys).
const KEY_ID: &str = "ASIABINARIESKEYID7EXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYBINARIESSECRETKEY";
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEBINARIESSESSIONTOKEN/0123456789abcdefghijklmnop==";
/// A secret in the job definition's environment, as a Batch Cause carries it.
const JOB_SECRET: &str = "sk-live-9c8b7a6f5e4d3c2b";

/// What each of the five binaries logged and answered, success and error paths, with AWS keys
/// and a session token in the environment and logs at `level` (JSON lines when `json`).
async fn run_all_five(level: &str, json_logs: bool) -> Vec<(String, String, Vec<Outcome>)> {
    let t = TestEnv::new(&[]).await;
    let state_machine = t.create_state_machine(&format!("creds-{}", t.config.runs_table)).await;
    let mut env: Vec<(String, String)> = t
        .lambda_env()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS_KEY") && !k.starts_with("AWS_SECRET"))
        .collect();
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ("RUST_LOG", level),
        ("STATE_MACHINE_ARN", state_machine.as_str()),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }
    if json_logs {
        env.push(("AWS_LAMBDA_LOG_FORMAT".to_owned(), "JSON".to_owned()));
    }
    let arn = "arn:aws:states:us-east-1:123456789012:execution:arc:creds-1";
    let run_id = arc_handlers::initialize::derive_run_id(
        &arc_shared::ids::ConfigName::parse("creds").unwrap(),
        Some(arn),
        arc_shared::time::parse_ts("2026-11-27T10:00:00Z").unwrap(),
    );
    let cause = json!({"JobId": "job-creds-t1", "StatusReason": "Essential container in task exited",
        "Attempts": [{"Container": {"ExitCode": 1}}],
        "Container": {"Environment": [{"Name": "OPENAI_API_KEY", "Value": JOB_SECRET}], "Command": ["run", "--key", JOB_SECRET]}})
    .to_string();
    let figures =
        json!({"total_tasks": 2, "completed_tasks": 0, "failed_tasks": 1, "accuracy": 0, "total_cost_usd": 0});
    // Success and error paths of each, in the order a run goes through them.
    let plan: Vec<(&str, Vec<Value>)> = vec![
        (
            "initialize",
            vec![
                json!({"config_name": "creds", "task_ids": ["t1", "t2"], "execution_arn": arn,
                       "execution_start_time": "2026-11-27T10:00:00Z"}),
                json!({"config_name": "creds", "task_ids": ["t/1"]}),
            ],
        ),
        (
            "handle-error",
            vec![
                json!({"run_id": run_id, "task_id": "t1", "error": {"Error": "States.TaskFailed", "Cause": cause}}),
                json!({"run_id": run_id, "task_id": "nope", "error": {"Error": "States.TaskFailed", "Cause": cause}}),
            ],
        ),
        ("aggregate", vec![json!({"run_id": run_id, "execution_arn": arn}), json!({"run_id": "run-missing"})]),
        (
            "complete",
            vec![
                json!({"run_id": run_id, "aggregation": figures, "execution_arn": arn}),
                json!({"run_id": run_id, "aggregation": {"total_tasks": 1}}),
            ],
        ),
        (
            "sweeper",
            vec![
                json!({"run_id": run_id, "ignore_backoff": true}),
                json!({"dryrun": true}),
                json!({"run_id": "run-missing"}),
                json!({}),
            ],
        ),
    ];
    let mut out = Vec::new();
    for (name, events) in plan {
        let env = env.clone();
        let (outcomes, logs) = tokio::task::spawn_blocking(move || {
            arc_integration_tests::runtime_api::invoke_binary_with_logs(&lambda_binary(name), &env, &events)
        })
        .await
        .unwrap();
        out.push((name.to_owned(), logs, outcomes));
    }
    // A cold start that fails (a malformed setting) is an error path too.
    for name in ["initialize", "sweeper"] {
        let run = Command::new(lambda_binary(name))
            .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("MAX_RETRIES", "abc")
            .output()
            .unwrap();
        let logs = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
        out.push((format!("{name} (cold start)"), logs, Vec::new()));
    }
    assert!(t.snapshot().await.iter().all(|l| !l.contains(JOB_SECRET)), "the job's secret reached a table");
    out
}

/// Where a credential or the job's secret shows up in what the binaries logged or answered.
fn leaks(runs: &[(String, String, Vec<Outcome>)]) -> Vec<String> {
    let mut found = Vec::new();
    for (name, logs, outcomes) in runs {
        for needle in [KEY_ID, SECRET_KEY, SESSION_TOKEN, JOB_SECRET] {
            if let Some(line) = logs.lines().find(|l| l.contains(needle)) {
                found.push(format!("{name} logged {needle}: {}", line.chars().take(200).collect::<String>()));
            }
            if outcomes.iter().any(|o| format!("{o:?}").contains(needle)) {
                found.push(format!("{name} answered {needle}"));
            }
        }
    }
    found
}

#[tokio::test]
async fn no_credential_or_secret_reaches_a_log_line_or_an_output_of_any_function() {
    let s = Scenario {
        name: "no_credentials_in_logs",
        done: "the five built binaries (initialize, handle-error, aggregate, complete, sweeper), success and error paths (InvalidInput, TaskNotFound, RunNotFound, a failed cold start), with AWS keys and a session token in the environment and a job secret in a Batch Cause; logs at DEBUG (text) and TRACE (JSON)".to_owned(),
        runs: 2,
        checked: "each function answered as expected; no access key id, secret key, session token or job secret in any log line, answer or table".to_owned(),
    };
    scenario(s, async {
        let mut failures = Vec::new();
        for (level, json_logs) in [("debug", false), ("trace", true)] {
            let runs = run_all_five(level, json_logs).await;
            let by_name: std::collections::BTreeMap<&str, &[Outcome]> =
                runs.iter().map(|(n, _, o)| (n.as_str(), o.as_slice())).collect();
            let kinds = |name: &str| -> Vec<Option<String>> {
                by_name[name].iter().map(|o| o.err_type().map(str::to_owned)).collect()
            };
            let want: [(&str, Vec<Option<&str>>); 5] = [
                ("initialize", vec![None, Some("InvalidInput")]),
                ("handle-error", vec![None, Some("TaskNotFound")]),
                ("aggregate", vec![None, Some("RunNotFound")]),
                ("complete", vec![None, Some("InvalidInput")]),
                ("sweeper", vec![None, Some("InvalidInput"), Some("RunNotFound"), None]),
            ];
            for (name, expected) in want {
                let expected: Vec<Option<String>> = expected.into_iter().map(|e| e.map(str::to_owned)).collect();
                if kinds(name) != expected {
                    failures.push(format!("{level}: {name} answered {:?}", by_name[name]));
                }
            }
            for (name, logs, _) in &runs {
                if logs.trim().is_empty() {
                    failures.push(format!("{level}: {name}: nothing logged (the logs were not captured)"));
                }
            }
            failures.extend(leaks(&runs).into_iter().map(|l| format!("{level}: {l}")));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join(" | "))
        }
    })
    .await;
}
