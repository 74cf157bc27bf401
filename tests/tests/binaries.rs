//! The built Lambda binaries, driven through a local Lambda Runtime API: the deployed
//! artifact's JSON in and out, cold start included.

use arc_integration_tests::runtime_api::{invoke_binary, Outcome};
use arc_integration_tests::{lambda_binary, TestEnv};
use arc_shared::records::s;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
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

#[tokio::test]
async fn no_secret_or_credential_reaches_a_log_line_or_an_output() {
    let t = TestEnv::new(&[]).await;
    let secret = "sk-live-9c8b7a6f5e4d3c2b";
    let session = "FwoGZXIvYXdzEFAKESESSIONTOKEN0123456789";
    let mut env = t.lambda_env();
    env.retain(|(k, _)| k != "AWS_SECRET_ACCESS_KEY");
    env.push(("AWS_SECRET_ACCESS_KEY".into(), "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY".into()));
    env.push(("AWS_SESSION_TOKEN".into(), session.into()));
    env.push(("RUST_LOG".into(), "debug".into()));
    let init = arc_handlers::initialize::handle(
        t.env(),
        json!({"config_name": "sec", "task_ids": ["t1"], "execution_arn": "arn:aws:states:us-east-1:1:execution:arc:s1",
               "execution_start_time": "2026-11-27T10:00:00Z"}),
    )
    .await
    .unwrap();
    let run_id = init["run_id"].as_str().unwrap().to_owned();
    let cause = json!({"JobId": "job-s1", "StatusReason": "Essential container in task exited",
        "Attempts": [{"Container": {"ExitCode": 1}}],
        "Container": {"Environment": [{"Name": "OPENAI_API_KEY", "Value": secret}], "Command": ["run", "--key", secret]}})
    .to_string();
    let (out, logs) = tokio::task::spawn_blocking(move || {
        let ev = json!({"run_id": run_id, "task_id": "t1", "error": {"Error": "States.TaskFailed", "Cause": cause}});
        arc_integration_tests::runtime_api::invoke_binary_with_logs(&lambda_binary("handle-error"), &env, &[ev])
    })
    .await
    .unwrap();
    let answer = out[0].clone().ok();
    assert_eq!(answer["status"], "RETRY_SCHEDULED");
    assert!(logs.contains("failure recorded"), "the logs were captured: {logs}");
    for needle in [secret, session, "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"] {
        assert!(!logs.contains(needle), "{needle} in the logs");
        assert!(!answer.to_string().contains(needle), "{needle} in the output");
    }
    assert!(!t.snapshot().await.join("\n").contains(secret), "the secret reached the table");
}
