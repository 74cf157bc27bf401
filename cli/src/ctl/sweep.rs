//! `arcctl sweep` and `arcctl retry`: one request JSON, run by the sweeper library here or sent
//! to the deployed sweeper Lambda, and the summary it returns shown as tables or JSON.

use super::runs::json_text;
use super::Ctx;
use crate::exit::{emit, CliError};
use crate::table::Table;
use arc_shared::ids::{RunId, TaskId};
use arc_shared::time::SystemClock;
use arc_sweeper::{parse_request, SweepDeps, SweepSettings};
use aws_smithy_types::Blob;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// What the operator asked for (already validated by clap).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub dry_run: bool,
    pub ignore_backoff: bool,
    pub run_id: Option<RunId>,
    pub task_ids: Vec<TaskId>,
    pub max_tasks: Option<u64>,
}

impl Request {
    /// The sweeper's manual request, exactly as the Lambda would receive it.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("dry_run".into(), json!(self.dry_run));
        m.insert("ignore_backoff".into(), json!(self.ignore_backoff));
        if let Some(r) = &self.run_id {
            m.insert("run_id".into(), json!(r));
        }
        if !self.task_ids.is_empty() {
            m.insert("task_ids".into(), json!(self.task_ids));
        }
        if let Some(n) = self.max_tasks {
            m.insert("max_tasks".into(), json!(n));
        }
        Value::Object(m)
    }
}

pub async fn sweep(ctx: &Ctx, req: Request, invoke: Option<&str>) -> Result<(), CliError> {
    if let (Some(run_id), None) = (&req.run_id, invoke) {
        // A run that does not exist is exit 3, not an empty sweep. (The deployed sweeper answers
        // RunNotFound itself, so --invoke needs no DynamoDB access here.)
        ctx.tables().require_run(run_id.as_str()).await?;
    }
    let request = req.to_json();
    let summary = match invoke {
        Some(function) => invoke_sweeper(ctx, function, &request).await?,
        None => sweep_here(ctx, request).await?,
    };
    if ctx.json {
        emit(&json_text(&summary)?);
    } else {
        emit(&render(&summary));
    }
    if let Some(unmatched) = summary.get("unmatched_task_ids").and_then(Value::as_array).filter(|a| !a.is_empty()) {
        let ids: Vec<String> = unmatched.iter().map(text).collect();
        eprintln!("arcctl: warning: not FAILED tasks of the run, left alone: {}", ids.join(", "));
    }
    match summary.get("errors").and_then(Value::as_array) {
        Some(errors) if !errors.is_empty() => {
            Err(CliError::failed(format!("the sweep reported {} error(s); see the summary", errors.len())))
        }
        _ => Ok(()),
    }
}

/// Runs the sweeper library in this process, with this process's configuration.
async fn sweep_here(ctx: &Ctx, request: Value) -> Result<Value, CliError> {
    let settings = SweepSettings::from_config(&ctx.config).map_err(|_| {
        CliError::Usage(
            "STATE_MACHINE_ARN is not set: a local sweep starts retry executions on that state machine \
             (or use --invoke FUNCTION_NAME to run the deployed sweeper)"
                .to_owned(),
        )
    })?;
    let deps = SweepDeps {
        tables: ctx.tables(),
        sfn: ctx.clients.sfn.clone(),
        cloudwatch: ctx.clients.cloudwatch.clone(),
        clock: Arc::new(SystemClock),
        settings,
        fault: arc_sweeper::Fault::None,
    };
    let request = parse_request(request)?;
    let summary = Box::pin(arc_sweeper::sweep(&deps, request)).await?;
    serde_json::to_value(&summary).map_err(|e| CliError::failed(format!("sweep summary: {e}")))
}

/// Invokes the deployed sweeper Lambda synchronously with `request`.
async fn invoke_sweeper(ctx: &Ctx, function: &str, request: &Value) -> Result<Value, CliError> {
    let client = aws_sdk_lambda::Client::new(&ctx.sdk);
    let payload = serde_json::to_vec(request).map_err(|e| CliError::failed(format!("request: {e}")))?;
    let out = client.invoke().function_name(function).payload(Blob::new(payload)).send().await.map_err(|e| match e
        .as_service_error()
    {
        Some(se) if se.is_resource_not_found_exception() => {
            CliError::failed(format!("Lambda function {function} not found (check --invoke and AWS_REGION)"))
        }
        _ => CliError::failed(format!("Invoke {function}: {}", arc_shared::error::describe_sdk_error(&e))),
    })?;
    let body = out.payload().map(|b| String::from_utf8_lossy(b.as_ref()).into_owned()).unwrap_or_default();
    if out.function_error().is_some() {
        return Err(function_error(function, &body));
    }
    serde_json::from_str(&body)
        .map_err(|e| CliError::failed(format!("the sweeper {function} answered non-JSON ({e}): {body}")))
}

/// The Lambda's error payload `{errorType, errorMessage}` as a CLI error: the sweeper's stable
/// error types keep their exit codes (RunNotFound → 3, InvalidInput → 2).
fn function_error(function: &str, body: &str) -> CliError {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let kind = v.get("errorType").and_then(Value::as_str).unwrap_or("Unhandled");
    let message = v.get("errorMessage").and_then(Value::as_str).unwrap_or(body);
    let text = format!("the sweeper {function} failed: {kind}: {message}");
    match kind {
        "RunNotFound" | "TaskNotFound" => CliError::NotFound(text),
        "InvalidInput" => CliError::Usage(text),
        _ => CliError::Failed(text),
    }
}

/// A JSON value as table text: strings bare, null as `-`.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn field(v: &Value, k: &str) -> String {
    v.get(k).map_or_else(|| "-".to_owned(), text)
}

fn list<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// The sweep summary for people.
pub fn render(summary: &Value) -> String {
    let mut out = format!(
        "{} sweep at {}{}\nscanned {} FAILED, due {}, deferred {}, re-queued {}, executions started {}",
        field(summary, "trigger"),
        field(summary, "swept_at"),
        if summary.get("dry_run") == Some(&Value::Bool(true)) { " (dry run: nothing written)" } else { "" },
        field(summary, "scanned"),
        field(summary, "due"),
        field(summary, "deferred_count"),
        field(summary, "requeued_total"),
        list(summary, "executions_started").len(),
    );
    let mut section = |title: &str, headers: &[&str], keys: &[&str], rows: &[Value]| {
        if rows.is_empty() {
            return;
        }
        let mut t = Table::new(headers.iter().copied());
        for r in rows {
            t.row(keys.iter().map(|k| field(r, k)));
        }
        out.push_str(&format!("\n\n{title}\n{}", t.render()));
    };
    section(
        "executions started",
        &["RUN", "EXECUTION", "GENERATION", "TASKS", "REASON"],
        &["run_id", "execution_name", "retry_generation", "tasks", "reason"],
        list(summary, "executions_started"),
    );
    section(
        "deferred",
        &["RUN", "TASK", "RETRIES", "DUE AT", "REASON"],
        &["run_id", "task_id", "retry_count", "due_at", "reason"],
        list(summary, "deferred"),
    );
    section(
        "skipped runs",
        &["RUN", "DUE TASKS", "REASON"],
        &["run_id", "due_tasks", "reason"],
        list(summary, "skipped_runs"),
    );
    section(
        "repairs",
        &["RUN", "ACTION", "EXECUTION", "EXECUTION STATUS", "TASKS", "RUN STATUS"],
        &["run_id", "action", "execution_name", "execution_status", "tasks", "run_status"],
        list(summary, "repaired"),
    );
    section("errors", &["RUN", "ERROR", "MESSAGE"], &["run_id", "error_type", "message"], list(summary, "errors"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_what_the_sweeper_parses() {
        let req = Request {
            dry_run: true,
            ignore_backoff: true,
            run_id: Some(RunId::parse("run-a").unwrap()),
            task_ids: vec![TaskId::parse("t1").unwrap()],
            max_tasks: Some(5),
        };
        let v = req.to_json();
        assert_eq!(
            v,
            json!({"dry_run": true, "ignore_backoff": true, "run_id": "run-a", "task_ids": ["t1"], "max_tasks": 5})
        );
        let parsed = parse_request(v).unwrap();
        assert!(parsed.dry_run && parsed.ignore_backoff);
        assert_eq!(parsed.max_tasks, Some(5));
        // No flags is still a manual sweep, never mistaken for a scheduled one.
        assert_eq!(parse_request(Request::default().to_json()).unwrap().trigger, arc_sweeper::Trigger::Manual);
    }

    #[test]
    fn lambda_errors_keep_their_exit_codes() {
        let e = function_error("sw", r#"{"errorType":"RunNotFound","errorMessage":"run run-x not found"}"#);
        assert_eq!(e.code(), crate::exit::NOT_FOUND);
        assert!(e.to_string().contains("run run-x not found"), "{e}");
        let e = function_error("sw", r#"{"errorType":"InvalidInput","errorMessage":"dryrun: unknown field"}"#);
        assert_eq!(e.code(), crate::exit::USAGE);
        let e = function_error("sw", "Task timed out after 900.00 seconds");
        assert_eq!(e.code(), crate::exit::FAILED);
        assert!(e.to_string().contains("Task timed out"), "{e}");
    }

    #[test]
    fn renders_sections_only_when_present() {
        let s = json!({"trigger": "manual", "swept_at": "t", "dry_run": true, "scanned": 2, "due": 1,
            "deferred_count": 1, "requeued_total": 1,
            "executions_started": [{"run_id": "r", "execution_name": "retry-x-g1", "retry_generation": 1, "tasks": 1, "reason": "retry"}],
            "deferred": [], "errors": []});
        let text = render(&s);
        assert!(text.contains("(dry run: nothing written)"), "{text}");
        assert!(text.contains("retry-x-g1"), "{text}");
        assert!(!text.contains("deferred\n"), "{text}");
    }
}
