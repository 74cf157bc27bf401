//! The state machine template (terraform/state_machine.asl.json) walked with a small ASL
//! interpreter that calls the real handlers against moto: every Lambda Task state's
//! Parameters must produce exactly its handler's input contract (terraform/
//! handler_contracts.json), and every JSONPath must resolve against the previous state's real
//! output. A path that does not resolve fails here as it would fail the execution in AWS.

use arc_handlers::{aggregate, complete, handle_error, initialize};
use arc_integration_tests::{repo_root, TestEnv};
use arc_shared::records::{n, s};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

fn template() -> Value {
    let text = std::fs::read_to_string(repo_root().join("terraform/state_machine.asl.json")).unwrap();
    let vars = [
        ("initialize_arn", "arn:aws:lambda:us-east-1:123456789012:function:arc-initialize"),
        ("handle_error_arn", "arn:aws:lambda:us-east-1:123456789012:function:arc-handle-error"),
        ("aggregate_arn", "arn:aws:lambda:us-east-1:123456789012:function:arc-aggregate"),
        ("complete_arn", "arn:aws:lambda:us-east-1:123456789012:function:arc-complete"),
        ("batch_job_queue_arn", "arn:aws:batch:us-east-1:123456789012:job-queue/q"),
        ("batch_job_definition_arn", "arn:aws:batch:us-east-1:123456789012:job-definition/d:1"),
        ("results_bucket", "bucket"),
        ("runs_table", "runs"),
        ("tasks_table", "tasks"),
        ("map_max_concurrency", "10"),
    ];
    let mut rendered = text;
    for (k, v) in vars {
        rendered = rendered.replace(&format!("${{{k}}}"), v);
    }
    assert!(!rendered.contains("${"), "a template variable is left unrendered");
    serde_json::from_str(&rendered).unwrap()
}

fn contracts() -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo_root().join("terraform/handler_contracts.json")).unwrap())
        .unwrap()
}

/// Resolves a reference path (`$`, `$.a.b`, `$$.Execution.Id`).
fn resolve(path: &str, input: &Value, ctx: &Value) -> Result<Value, String> {
    let (mut cur, rest) = if let Some(r) = path.strip_prefix("$$") {
        (ctx, r)
    } else if let Some(r) = path.strip_prefix('$') {
        (input, r)
    } else {
        return Err(format!("not a path: {path}"));
    };
    for part in rest.split('.').filter(|p| !p.is_empty()) {
        cur = cur.get(part).ok_or_else(|| format!("path {path} does not resolve: no field {part:?} in {cur}"))?;
    }
    Ok(cur.clone())
}

fn args_of<'a>(call: &'a str, name: &str) -> Result<Vec<&'a str>, String> {
    let inner = call.strip_prefix(name).and_then(|r| r.strip_prefix('(')).and_then(|r| r.strip_suffix(')'));
    inner.map(|i| i.split(", ").collect()).ok_or_else(|| format!("bad intrinsic {call}"))
}

/// A `.$` value: a path or one of the intrinsics the template uses.
fn eval_dynamic(expr: &str, input: &Value, ctx: &Value) -> Result<Value, String> {
    if expr.starts_with("States.JsonMerge") {
        let args = args_of(expr, "States.JsonMerge")?;
        let (mut a, b) = (resolve(args[0], input, ctx)?, resolve(args[1], input, ctx)?);
        if let (Some(a), Some(b)) = (a.as_object_mut(), b.as_object()) {
            a.extend(b.clone());
        }
        return Ok(a);
    }
    if expr.starts_with("States.Format") {
        let args = args_of(expr, "States.Format")?;
        let mut out = args[0].trim_matches('\'').to_owned();
        for a in &args[1..] {
            let v = resolve(a, input, ctx)?;
            out = out.replacen("{}", v.as_str().unwrap_or(&v.to_string()), 1);
        }
        return Ok(Value::String(out));
    }
    resolve(expr, input, ctx)
}

fn eval_params(p: &Value, input: &Value, ctx: &Value) -> Result<Value, String> {
    Ok(match p {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                match (k.strip_suffix(".$"), v) {
                    (Some(key), Value::String(expr)) => {
                        out.insert(key.to_owned(), eval_dynamic(expr, input, ctx)?);
                    }
                    _ => {
                        out.insert(k.clone(), eval_params(v, input, ctx)?);
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| eval_params(v, input, ctx)).collect::<Result<_, _>>()?),
        other => other.clone(),
    })
}

fn with_result(state: &Value, input: &Value, result: Value) -> Result<Value, String> {
    let merged = match state.get("ResultPath") {
        None => result,
        Some(Value::Null) => input.clone(),
        Some(Value::String(p)) if p == "$" => result,
        Some(Value::String(p)) => {
            let key = p.strip_prefix("$.").ok_or_else(|| format!("unsupported ResultPath {p}"))?;
            let mut out = input.clone();
            out.as_object_mut().ok_or("ResultPath into a non-object")?.insert(key.to_owned(), result);
            out
        }
        Some(other) => return Err(format!("bad ResultPath {other}")),
    };
    match state.get("OutputPath").and_then(Value::as_str) {
        Some(p) => resolve(p, &merged, &Value::Null),
        None => Ok(merged),
    }
}

struct Walker<'a> {
    t: &'a TestEnv,
    contracts: Value,
    failing: BTreeSet<String>,
    seen: Vec<String>,
}

impl Walker<'_> {
    async fn lambda(&mut self, name: &str, state: &Value, input: &Value, ctx: &Value) -> Result<Value, String> {
        let params = eval_params(&state["Parameters"], input, ctx)?;
        let payload = params["Payload"].clone();
        let contract = &self.contracts[name];
        let function = contract["function"].as_str().ok_or(format!("no contract for state {name}"))?;
        let arn = params["FunctionName"].as_str().unwrap_or("");
        assert!(arn.ends_with(&format!("-{function}")), "{name} invokes {arn}, not {function}");
        let keys: BTreeSet<String> = payload.as_object().ok_or("payload is not an object")?.keys().cloned().collect();
        let list = |k: &str| -> BTreeSet<String> {
            contract[k].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
        };
        let (required, optional) = (list("required"), list("optional"));
        assert!(required.is_subset(&keys), "{name}: payload {keys:?} lacks some of {required:?}");
        let allowed: BTreeSet<String> = required.union(&optional).cloned().collect();
        assert!(keys.is_subset(&allowed), "{name}: payload {keys:?} has fields outside the contract {allowed:?}");
        self.seen.push(name.to_owned());
        let env = self.t.env();
        let out = match function {
            "initialize" => initialize::handle(env, payload).await,
            "handle-error" => handle_error::handle(env, payload).await,
            "aggregate" => aggregate::handle(env, payload).await,
            "complete" => complete::handle(env, payload).await,
            other => return Err(format!("unknown function {other}")),
        }
        .map_err(|e| format!("{name}: {} {e}", e.error_type()))?;
        for field in list("output") {
            assert!(out.get(&field).is_some(), "{name}: output lacks {field}: {out}");
        }
        let mut result = json!({"ExecutedVersion": "$LATEST", "Payload": out, "StatusCode": 200});
        if let Some(sel) = state.get("ResultSelector") {
            result = eval_params(sel, &result, ctx)?;
        }
        with_result(state, input, result)
    }

    /// The Batch job, as the worker does it: claim, then complete, or fail the job.
    async fn batch_job(&mut self, state: &Value, input: &Value, ctx: &Value) -> Result<Result<Value, Value>, String> {
        let params = eval_params(&state["Parameters"], input, ctx)?;
        let env: Vec<String> = params["ContainerOverrides"]["Environment"]
            .as_array()
            .ok_or("no container environment")?
            .iter()
            .map(|e| e["Name"].as_str().unwrap_or("").to_owned())
            .collect();
        for want in ["RUN_ID", "TASK_ID", "CONFIG_NAME", "S3_BUCKET", "DYNAMODB_RUNS_TABLE", "DYNAMODB_TASKS_TABLE"] {
            assert!(env.iter().any(|e| e == want), "the worker needs {want}");
        }
        let run_id = input["run_id"].as_str().ok_or("no run_id in the Map item")?;
        let task_id = input["task_id"].as_str().ok_or("no task_id in the Map item")?;
        assert_eq!(params["JobName"], json!(format!("arc-task-{task_id}")));
        if self.failing.contains(task_id) {
            let cause = json!({"JobId": format!("job-{task_id}"), "StatusReason": "Essential container in task exited",
                               "Attempts": [{"Container": {"ExitCode": 1}}]});
            return Ok(Err(json!({"Error": "States.TaskFailed", "Cause": cause.to_string()})));
        }
        self.t
            .set_task(
                run_id,
                task_id,
                &[
                    ("status", s("COMPLETED")),
                    ("cost_usd", n("0.01")),
                    ("is_correct", aws_sdk_dynamodb::types::AttributeValue::Bool(true)),
                ],
            )
            .await;
        Ok(Ok(json!({"JobId": format!("job-{task_id}"), "Status": "SUCCEEDED"})))
    }

    async fn run(&mut self, states: &Value, start: &str, mut input: Value, ctx: &Value) -> Result<Value, String> {
        let mut name = start.to_owned();
        loop {
            let state = &states[&name];
            let mut next = state.get("Next").and_then(Value::as_str).map(str::to_owned);
            input = match state["Type"].as_str().unwrap_or("") {
                "Choice" => {
                    let chosen = state["Choices"].as_array().unwrap().iter().find(|c| choice_matches(c, &input));
                    next = Some(chosen.map(|c| &c["Next"]).unwrap_or(&state["Default"]).as_str().unwrap().to_owned());
                    input
                }
                "Pass" => {
                    let result = match state.get("Parameters") {
                        Some(p) => eval_params(p, &input, ctx)?,
                        None => input.clone(),
                    };
                    with_result(state, &input, result)?
                }
                "Map" => {
                    let items = resolve(state["ItemsPath"].as_str().unwrap_or("$"), &input, ctx)?;
                    let inner = &state["ItemProcessor"];
                    for item in items.as_array().ok_or("ItemsPath is not an array")? {
                        let mut item_ctx = ctx.clone();
                        item_ctx["Map"] = json!({"Item": {"Value": item}});
                        let selected = eval_params(&state["ItemSelector"], &input, &item_ctx)?;
                        Box::pin(self.run(&inner["States"], inner["StartAt"].as_str().unwrap(), selected, &item_ctx))
                            .await?;
                    }
                    with_result(state, &input, Value::Null)?
                }
                "Task" if state["Resource"] == "arn:aws:states:::lambda:invoke" => {
                    self.lambda(&name, state, &input, ctx).await?
                }
                "Task" if state["Resource"] == "arn:aws:states:::batch:submitJob.sync" => {
                    match self.batch_job(state, &input, ctx).await? {
                        Ok(result) => with_result(state, &input, result)?,
                        Err(error) => {
                            let catch = &state["Catch"][0];
                            next = Some(catch["Next"].as_str().unwrap().to_owned());
                            with_result(catch, &input, error)?
                        }
                    }
                }
                other => return Err(format!("state {name}: unsupported type {other}")),
            };
            match next {
                Some(n) => name = n,
                None => return Ok(input),
            }
        }
    }
}

fn choice_matches(rule: &Value, input: &Value) -> bool {
    if let Some(all) = rule.get("And").and_then(Value::as_array) {
        return all.iter().all(|r| choice_matches(r, input));
    }
    let v = resolve(rule["Variable"].as_str().unwrap_or("$"), input, &Value::Null).ok();
    if let Some(want) = rule.get("IsPresent") {
        return v.is_some() == (want == &json!(true));
    }
    if let Some(want) = rule.get("IsBoolean") {
        return v.as_ref().is_some_and(Value::is_boolean) == (want == &json!(true));
    }
    if let Some(want) = rule.get("BooleanEquals") {
        return v.as_ref() == Some(want);
    }
    panic!("unsupported choice rule {rule}")
}

fn context(execution: &str) -> Value {
    json!({"Execution": {"Id": format!("arn:aws:states:us-east-1:123456789012:execution:arc:{execution}"),
                         "StartTime": "2026-11-26T13:00:00.123Z", "Name": execution}})
}

#[tokio::test]
async fn a_new_run_then_its_retry_flow_through_the_state_machine() {
    let t = TestEnv::new(&[]).await;
    let asl = template();
    let mut w = Walker { t: &t, contracts: contracts(), failing: ["t2".to_owned()].into(), seen: Vec::new() };
    // The smallest execution input a user starts: optional fields come from the defaults.
    let out = w
        .run(
            &asl["States"],
            asl["StartAt"].as_str().unwrap(),
            json!({"config_name": "asl", "task_ids": ["t1", "t2", "t3"]}),
            &context("e1"),
        )
        .await
        .unwrap();
    assert_eq!(out["status"], "COMPLETED_WITH_ERRORS");
    assert_eq!(out["final_metrics"]["completed_tasks"], 2);
    assert_eq!(out["final_metrics"]["failed_tasks"], 1);
    assert_eq!(w.seen, vec!["Initialize", "HandleError", "Aggregate", "Complete"]);
    let run_id = out["run_id"].as_str().unwrap().to_owned();
    let run = t.tables().require_run(&run_id).await.unwrap();
    assert_eq!(run.data_source.as_deref(), Some("evaluation"));
    assert_eq!(run.triggered_by.as_deref(), Some("unknown"));

    // The retry execution exactly as the sweeper starts it, after it re-queued t2.
    t.set_task(&run_id, "t2", &[("status", s("RETRY_QUEUED"))]).await;
    w.failing.clear();
    w.seen.clear();
    let retry_input =
        json!({"run_id": run_id, "config_name": "asl", "task_ids": ["t2"], "retry": true, "triggered_by": "sweeper"});
    let out =
        w.run(&asl["States"], asl["StartAt"].as_str().unwrap(), retry_input, &context("retry-abc-g1")).await.unwrap();
    assert_eq!(w.seen, vec!["InitializeRetry", "Aggregate", "Complete"]);
    assert_eq!(out["status"], "COMPLETED");
    assert_eq!(out["final_metrics"]["completed_tasks"], 3);
    let run = t.tables().require_run(&run_id).await.unwrap();
    assert!(run.execution_arn.unwrap().ends_with(":retry-abc-g1"));
}

#[test]
fn lambda_tasks_retry_transient_errors_and_never_invalid_input() {
    let asl = template();
    let mut tasks = Vec::new();
    for (name, state) in asl["States"].as_object().unwrap() {
        tasks.push((name.clone(), state.clone()));
    }
    for (name, state) in asl["States"]["ProcessTasks"]["ItemProcessor"]["States"].as_object().unwrap() {
        tasks.push((name.clone(), state.clone()));
    }
    let mut lambdas = 0;
    for (name, state) in tasks.iter().filter(|(_, s)| s["Resource"] == "arn:aws:states:::lambda:invoke") {
        lambdas += 1;
        let retried: BTreeSet<&str> = state["Retry"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no Retry"))
            .iter()
            .flat_map(|r| r["ErrorEquals"].as_array().unwrap().iter().filter_map(Value::as_str))
            .collect();
        for e in ["DependencyUnavailable", "Lambda.ServiceException", "Lambda.TooManyRequestsException"] {
            assert!(retried.contains(e), "{name} does not retry {e}");
        }
        for e in ["InvalidInput", "States.ALL", "RunNotFound", "TaskNotFound"] {
            assert!(!retried.contains(e), "{name} must not retry {e}");
        }
    }
    assert_eq!(lambdas, 5, "Initialize, InitializeRetry, HandleError, Aggregate, Complete");
}
