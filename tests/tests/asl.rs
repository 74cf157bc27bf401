//! The state machine template (terraform/state_machine.asl.json) walked with a small ASL
//! interpreter that calls the real handlers against moto: every Lambda Task state's
//! Parameters must produce exactly its handler's input contract (terraform/
//! handler_contracts.json), and every JSONPath must resolve against the previous state's real
//! output. A path that does not resolve fails here as it would fail the execution in AWS.
//!
//! The Batch jobs are run by the worker double (the Python worker's exact writes); Retry and
//! Catch are applied as Step Functions applies them; the Distributed Map reads its items from
//! S3 (ItemReader) and runs each as a child execution. The walker also records every state's
//! payload size and the history events each execution would log, for the limits test.

use arc_handlers::{aggregate, complete, handle_error, initialize};
use arc_integration_tests::JsonAnswer;
use arc_integration_tests::{repo_root, TestEnv};
use arc_shared::records::s;
use arc_shared::store::objects::ObjectRef;
use arc_worker_double::{Behaviour, Completion, Worker};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

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
        ("batch_task_timeout_seconds", "21600"),
        ("execution_timeout_seconds", "259200"),
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

/// How the walker's Batch jobs and Lambda invocations go.
#[derive(Default)]
struct Faults {
    /// Tasks whose job fails (the container is killed after the worker's claim).
    failing: BTreeSet<String>,
    /// HandleError's Lambda fails for good (a timeout the Retry does not cover).
    handle_error_dies: bool,
}

struct Walker<'a> {
    t: &'a TestEnv,
    contracts: Value,
    faults: Faults,
    worker: Worker,
    seen: Vec<String>,
    /// Only this many Map items are run as child executions (the limits test); the others'
    /// completions are written in bulk, as their workers would have written them.
    max_children: Option<usize>,
    /// The largest state input/output/result seen, in bytes, and where.
    largest: (usize, String),
}

impl<'a> Walker<'a> {
    fn new(t: &'a TestEnv, faults: Faults) -> Self {
        let worker = Worker::new(
            t.clients.dynamodb.clone(),
            &t.config.runs_table,
            &t.config.tasks_table,
            Arc::new(arc_shared::time::SystemClock),
        );
        Self {
            t,
            contracts: contracts(),
            faults,
            worker,
            seen: Vec::new(),
            max_children: None,
            largest: (0, String::new()),
        }
    }

    fn measure(&mut self, what: &str, v: &Value) {
        let size = v.to_string().len();
        if size > self.largest.0 {
            self.largest = (size, what.to_owned());
        }
    }

    /// A Lambda task: `Ok(Ok(state output))`, or `Ok(Err({Error, Cause}))` when the function
    /// failed (for Retry/Catch); `Err` when the template breaks a contract.
    async fn lambda(
        &mut self,
        name: &str,
        state: &Value,
        input: &Value,
        ctx: &Value,
    ) -> Result<Result<Value, Value>, String> {
        let params = eval_params(&state["Parameters"], input, ctx)?;
        let payload = params["Payload"].clone();
        let contract = self.contracts[name].clone();
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
        self.measure(&format!("{name} payload"), &payload);
        if name == "HandleError" && self.faults.handle_error_dies {
            return Ok(Err(json!({"Error": "Lambda.Unknown", "Cause": "Task timed out after 60.00 seconds"})));
        }
        let env = self.t.env();
        let out = match function {
            "initialize" => initialize::handle(env, payload).await.json(),
            "handle-error" => handle_error::handle(env, payload).await.json(),
            "aggregate" => aggregate::handle(env, payload).await.json(),
            "complete" => complete::handle(env, payload).await.json(),
            other => return Err(format!("unknown function {other}")),
        };
        let out = match out {
            Ok(out) => out,
            Err(e) => return Ok(Err(json!({"Error": e.error_type(), "Cause": e.to_string()}))),
        };
        for field in list("output") {
            assert!(out.get(&field).is_some(), "{name}: output lacks {field}: {out}");
        }
        let mut result = json!({"ExecutedVersion": "$LATEST", "Payload": out, "StatusCode": 200});
        self.measure(&format!("{name} result"), &result);
        if let Some(sel) = state.get("ResultSelector") {
            result = eval_params(sel, &result, ctx)?;
        }
        Ok(Ok(with_result(state, input, result)?))
    }

    /// The Batch job, run by the worker double: it claims the task and completes it, or is
    /// killed after the claim (the job fails with the job description as the Cause).
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
        assert!(state["TimeoutSeconds"].as_u64().is_some_and(|s| s > 0), "the Batch task has a timeout");
        let run_id = input["run_id"].as_str().ok_or("no run_id in the Map item")?;
        let task_id = input["task_id"].as_str().ok_or("no task_id in the Map item")?;
        assert_eq!(params["JobName"], json!(format!("arc-task-{task_id}")));
        let plan = if self.faults.failing.contains(task_id) {
            vec![Behaviour::Killed { exit_code: 137, reason: "OutOfMemoryError: Container killed".into() }]
        } else {
            vec![Behaviour::Complete(Completion {
                cost_usd: Decimal::new(1, 2),
                tokens_input: 100,
                tokens_output: 10,
                result_s3_key: None,
            })]
        };
        let job = self.worker.run_job(run_id, task_id, &plan).await;
        if !job.succeeded {
            return Ok(Err(job.step_functions_error(task_id, &[])));
        }
        // Scoring marks the result.
        self.t.set_task(run_id, task_id, &[("is_correct", aws_sdk_dynamodb::types::AttributeValue::Bool(true))]).await;
        Ok(Ok(json!({"JobId": job.job_id, "Status": "SUCCEEDED"})))
    }

    /// Applies the state's Retry (every matching attempt, as Step Functions would) and Catch
    /// to a failed task; `Ok((next state, output))` when caught, `Err` when the execution fails.
    fn caught(&self, name: &str, state: &Value, input: &Value, error: &Value) -> Result<(String, Value), String> {
        let kind = error["Error"].as_str().unwrap_or("");
        for c in state["Catch"].as_array().into_iter().flatten() {
            let errors = c["ErrorEquals"].as_array().unwrap();
            if errors.iter().any(|e| e == kind || e == "States.ALL") {
                return Ok((c["Next"].as_str().unwrap().to_owned(), with_result(c, input, error.clone())?));
            }
        }
        Err(format!("state {name} failed with {error}: the execution fails"))
    }

    fn retries(state: &Value, kind: &str) -> u64 {
        state["Retry"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["ErrorEquals"].as_array().unwrap().iter().any(|e| e == kind || e == "States.ALL"))
            .map_or(0, |r| r["MaxAttempts"].as_u64().unwrap_or(3))
    }

    async fn run(&mut self, states: &Value, start: &str, mut input: Value, ctx: &Value) -> Result<Value, String> {
        let mut name = start.to_owned();
        loop {
            let state = &states[&name];
            let mut next = state.get("Next").and_then(Value::as_str).map(str::to_owned);
            self.measure(&format!("{name} input"), &input);
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
                    let items: Vec<Value> = match state.get("ItemReader") {
                        Some(reader) => {
                            assert_eq!(reader["Resource"], "arn:aws:states:::s3:getObject");
                            let p = eval_params(&reader["Parameters"], &input, ctx)?;
                            let at = ObjectRef {
                                bucket: p["Bucket"].as_str().ok_or("ItemReader without Bucket")?.to_owned(),
                                key: p["Key"].as_str().ok_or("ItemReader without Key")?.to_owned(),
                            };
                            let ids = self
                                .t
                                .clients
                                .objects
                                .get_string_list(&at, "items")
                                .await
                                .map_err(|e| format!("ItemReader: {e}"))?;
                            ids.into_iter().map(Value::String).collect()
                        }
                        None => resolve(state["ItemsPath"].as_str().unwrap_or("$"), &input, ctx)?
                            .as_array()
                            .ok_or("ItemsPath is not an array")?
                            .clone(),
                    };
                    let inner = &state["ItemProcessor"];
                    let distributed = inner["ProcessorConfig"]["Mode"] == "DISTRIBUTED";
                    for (i, item) in items.iter().enumerate().take(self.max_children.unwrap_or(usize::MAX)) {
                        let mut item_ctx = ctx.clone();
                        item_ctx["Map"] = json!({"Item": {"Value": item, "Index": i}});
                        let selected = eval_params(&state["ItemSelector"], &input, &item_ctx)?;
                        // A Distributed Map runs each item as a child execution of its own.
                        let child_ctx =
                            if distributed { context(&format!("ProcessTasks-child-{i}")) } else { item_ctx };
                        let out = Box::pin(self.run(
                            &inner["States"],
                            inner["StartAt"].as_str().unwrap(),
                            selected,
                            &child_ctx,
                        ))
                        .await;
                        if let Err(e) = out {
                            assert!(state["ToleratedFailurePercentage"] == 100, "a failed item fails the map: {e}");
                        }
                    }
                    if let Some(max) = self.max_children.filter(|m| *m < items.len()) {
                        let run_id = input["run_id"].as_str().ok_or("no run_id at the Map")?;
                        let rest: Vec<arc_shared::records::Item> = items[max..]
                            .iter()
                            .map(|id| {
                                [
                                    ("run_id", s(run_id)),
                                    ("task_id", s(id.as_str().unwrap_or(""))),
                                    ("status", s("COMPLETED")),
                                    ("retry_count", arc_shared::records::n(0)),
                                    ("cost_usd", arc_shared::records::n("0.01")),
                                ]
                                .into_iter()
                                .map(|(k, v)| (k.to_owned(), v))
                                .collect()
                            })
                            .collect();
                        let tables = self.t.tables();
                        arc_shared::store::batch_put(&self.t.clients.dynamodb, &tables.tasks, rest)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    with_result(state, &input, Value::Null)?
                }
                "Task" => {
                    let mut attempt = 0;
                    let outcome = loop {
                        let ctx = {
                            let mut c = ctx.clone();
                            c["State"] =
                                json!({"Name": name, "EnteredTime": "2026-11-26T13:00:01.000Z", "RetryCount": attempt});
                            c
                        };
                        let r = match state["Resource"].as_str().unwrap_or("") {
                            "arn:aws:states:::lambda:invoke" => self.lambda(&name, state, &input, &ctx).await?,
                            "arn:aws:states:::batch:submitJob.sync" => match self.batch_job(state, &input, &ctx).await?
                            {
                                Ok(result) => Ok(with_result(state, &input, result)?),
                                Err(e) => Err(e),
                            },
                            other => return Err(format!("state {name}: unsupported resource {other}")),
                        };
                        match r {
                            Err(e) if attempt < Self::retries(state, e["Error"].as_str().unwrap_or("")) => attempt += 1,
                            other => break other,
                        }
                    };
                    match outcome {
                        Ok(out) => out,
                        Err(error) => {
                            let (n, out) = self.caught(&name, state, &input, &error)?;
                            next = Some(n);
                            out
                        }
                    }
                }
                other => return Err(format!("state {name}: unsupported type {other}")),
            };
            self.measure(&format!("{name} output"), &input);
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
    let mut w = Walker::new(&t, Faults { failing: ["t2".to_owned()].into(), ..Faults::default() });
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
    let t2 = t.tables().get_task(&run_id, "t2").await.unwrap().unwrap();
    assert_eq!((t2.status.as_str(), t2.retry_count), ("FAILED", 1), "the killed job is counted once");
    assert!(t2.last_failure_key.as_deref().is_some_and(|k| k.starts_with("job:")));

    // The retry execution exactly as the sweeper starts it, after it re-queued t2.
    t.set_task(&run_id, "t2", &[("status", s("RETRY_QUEUED"))]).await;
    w.faults.failing.clear();
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

#[tokio::test]
async fn a_handle_error_that_fails_for_good_does_not_fail_the_map_and_its_task_ends_counted() {
    // Every failure counts here (a claim left in flight by a job that ended is otherwise spared
    // as an infrastructure failure up to INFRA_MAX_RETRIES: tests/tests/breaker.rs).
    let t = TestEnv::new(&[("INFRA_MAX_RETRIES", "0")]).await;
    let asl = template();
    let faults = Faults { failing: ["t2".to_owned()].into(), handle_error_dies: true };
    let mut w = Walker::new(&t, faults);
    let input = json!({"config_name": "asl", "task_ids": ["t1", "t2", "t3"]});
    let out = w.run(&asl["States"], asl["StartAt"].as_str().unwrap(), input, &context("e2")).await.unwrap();
    assert_eq!(w.seen, vec!["Initialize", "HandleError", "Aggregate", "Complete"]);
    assert_eq!(out["status"], "COMPLETED_WITH_ERRORS", "the run completes: {out}");
    let run_id = out["run_id"].as_str().unwrap();
    // The worker claimed t2 and was killed; HandleError never recorded it. Aggregate settles
    // it: counted once, retryable.
    let t2 = t.tables().get_task(run_id, "t2").await.unwrap().unwrap();
    assert_eq!((t2.status.as_str(), t2.retry_count), ("FAILED", 1));
    assert_eq!(t2.last_error_type.as_deref(), Some("Unfinished"));
    assert!(t2.next_retry_at.is_some(), "retryable: the sweeper will pick it up");
    assert_eq!(out["final_metrics"]["failed_tasks"], 1);
}

#[tokio::test]
async fn an_s3_server_error_on_aggregate_is_retried() {
    let t = TestEnv::new(&[]).await;
    let asl = template();
    t.inject_fault(json!({
        "method": "PUT", "path_contains": [format!("/{}/", t.bucket), "/results/aggregated.json"], "count": 3, "status": 500,
        "content_type": "application/xml",
        "body": "<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>"
    }))
    .await;
    let mut w = Walker::new(&t, Faults::default());
    let input = json!({"config_name": "asl", "task_ids": ["t1"]});
    let out = w.run(&asl["States"], asl["StartAt"].as_str().unwrap(), input, &context("e3")).await.unwrap();
    // Aggregate's report write got a 500 on each of the SDK's own 3 attempts; the state
    // machine's Retry on DependencyUnavailable ran Aggregate again.
    assert_eq!(w.seen, vec!["Initialize", "Aggregate", "Aggregate", "Complete"]);
    assert_eq!(t.faults_left(&t.bucket).await, vec![0], "all three 500s were answered");
    assert_eq!(out["status"], "COMPLETED");
    t.inject_fault(json!({
        "method": "PUT", "path_contains": [format!("/{}/", t.bucket), "/results/aggregated.json"], "count": 3, "status": 503,
        "content_type": "application/xml",
        "body": "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
    }))
    .await;
    let run_id = out["run_id"].as_str().unwrap();
    let r = aggregate::handle(t.env(), json!({"run_id": run_id})).await.json();
    assert_eq!(r.as_ref().map_err(|e| e.error_type()).err(), Some("DependencyUnavailable"), "{r:?}");
    let again = aggregate::handle(t.env(), json!({"run_id": run_id})).await.json().unwrap();
    assert_eq!(again["completed_tasks"], 1);
}

// ---------------------------------------------------------------- limits

/// Step Functions' limits on a Standard execution.
const MAX_HISTORY_EVENTS: u64 = 25_000;
const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// The history events of one Task state in the worst case: entered + exited, and per attempt
/// (1 + every Retry's MaxAttempts) scheduled, started, (submitted, for `.sync`) and ended.
fn task_events(state: &Value) -> u64 {
    let retries: u64 =
        state["Retry"].as_array().into_iter().flatten().map(|r| r["MaxAttempts"].as_u64().unwrap_or(3)).sum();
    let per_attempt = if state["Resource"].as_str().unwrap_or("").ends_with(".sync") { 4 } else { 3 };
    2 + (1 + retries) * per_attempt
}

/// The most history events a path from `start` can log in one execution, for `items` Map
/// items: an INLINE Map logs every iteration's events in this execution's history; a
/// DISTRIBUTED one logs a fixed handful (entered, map run started and ended, exited) and each
/// item runs in a child execution with its own history.
fn path_events(states: &Value, start: &str, items: u64) -> u64 {
    let s = &states[start];
    let own = match s["Type"].as_str().unwrap_or("") {
        "Task" => task_events(s),
        "Map" => {
            let inner = &s["ItemProcessor"];
            if inner["ProcessorConfig"]["Mode"] == "DISTRIBUTED" {
                5
            } else {
                2 + items * (2 + path_events(&inner["States"], inner["StartAt"].as_str().unwrap(), 0))
            }
        }
        _ => 2,
    };
    let mut next: Vec<&str> = Vec::new();
    next.extend(s["Next"].as_str());
    next.extend(s["Default"].as_str());
    for c in s["Choices"].as_array().into_iter().flatten().chain(s["Catch"].as_array().into_iter().flatten()) {
        next.extend(c["Next"].as_str());
    }
    own + next.into_iter().map(|n| path_events(states, n, items)).max().unwrap_or(0)
}

/// (parent execution, one child execution): worst-case history events, with execution
/// started and ended.
fn history_budget(asl: &Value, items: u64) -> (u64, u64) {
    let parent = 2 + path_events(&asl["States"], asl["StartAt"].as_str().unwrap(), items);
    let map = &asl["States"]["ProcessTasks"]["ItemProcessor"];
    let child = 2 + path_events(&map["States"], map["StartAt"].as_str().unwrap(), 0);
    (parent, child)
}

#[test]
fn history_events_stay_far_below_the_limit_at_10000_tasks() {
    let asl = template();
    for n in [120, 1_000, 10_000] {
        let (parent, child) = history_budget(&asl, n);
        println!("history budget, {n} tasks: parent execution {parent} events, each child execution {child} (limit {MAX_HISTORY_EVENTS})");
        assert!(parent * 2 < MAX_HISTORY_EVENTS && child * 2 < MAX_HISTORY_EVENTS, "{n} tasks: {parent} / {child}");
    }
    // The model is not blind: the same template with an INLINE map would not survive.
    let mut inline = asl.clone();
    inline["States"]["ProcessTasks"]["ItemProcessor"]["ProcessorConfig"] = json!({"Mode": "INLINE"});
    let (parent, _) = history_budget(&inline, 10_000);
    assert!(parent > MAX_HISTORY_EVENTS, "an inline map of 10,000 tasks logs {parent} events");
    // And a Distributed Map runs what map_max_concurrency allows (up to 10,000 children).
    assert_eq!(asl["States"]["ProcessTasks"]["ToleratedFailurePercentage"], 100);
}

#[tokio::test]
async fn payloads_stay_far_below_the_limit_at_10000_tasks_of_100_characters() {
    let t = TestEnv::new(&[]).await;
    let asl = template();
    for n in [120usize, 1_000, 10_000] {
        let ids: Vec<String> = (0..n).map(|i| format!("{i:0>100}")).collect();
        let inline_input = json!({"config_name": "limits", "task_ids": ids}).to_string().len();
        // Too large for an execution input when n is large: the list goes to S3 instead.
        let at = ObjectRef { bucket: t.bucket.clone(), key: format!("runs/inputs/limits-{n}.json") };
        t.clients.objects.put_json(&at, &ids).await.unwrap();
        let input = json!({"config_name": "limits", "task_ids_s3": at.uri()});
        let mut w = Walker::new(&t, Faults::default());
        // Three items run as child executions; the other jobs' completions are written in
        // bulk (what their workers would write), so the run reaches Aggregate and Complete.
        w.max_children = Some(3);
        let ctx = context(&format!("limits-{n}"));
        let out = w.run(&asl["States"], asl["StartAt"].as_str().unwrap(), input, &ctx).await.unwrap();
        assert_eq!(out["final_metrics"]["total_tasks"], n);
        assert_eq!(out["final_metrics"]["completed_tasks"], n, "{out}");
        println!(
            "payload budget, {n} tasks of 100 characters: largest state payload {} bytes ({}); the list inline would be {inline_input} bytes (limit {MAX_PAYLOAD_BYTES})",
            w.largest.0, w.largest.1
        );
        assert!(w.largest.0 * 2 < MAX_PAYLOAD_BYTES, "{n} tasks: {:?}", w.largest);
        if n == 10_000 {
            assert!(inline_input > MAX_PAYLOAD_BYTES, "the S3 list is needed: {inline_input}");
        }
    }
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
